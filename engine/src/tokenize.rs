//! Text → token ids with the tokenizer embedded in the model file (a Hugging Face
//! `tokenizer.json`, run by the `tokenizers` crate, so ids match the Python fast
//! tokenizers exactly).
//!
//! Padding settings of the embedded document are dropped (toprt never pads) and its
//! truncation settings are replaced by the session's maximum length: longest-first for
//! pairs, as `transformers` does with `truncation=True`.

use crate::error::{Error, Result};
use tokenizers::{PostProcessor, Tokenizer, TruncationDirection, TruncationParams, TruncationStrategy};
use toprt_format::TokenizerSpec;

/// The model's tokenizer, as loaded from the file.
#[derive(Clone)]
pub struct TextTokenizer {
    base: Tokenizer,
}

/// One tokenized sequence.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Encoded {
    pub input_ids: Vec<u32>,
    pub token_type_ids: Vec<u32>,
    /// Tokens dropped by truncation.
    pub truncated: bool,
}

impl TextTokenizer {
    /// Parses the embedded `tokenizer.json`.
    ///
    /// # Errors
    /// [`Error::Tokenizer`] when the document does not parse.
    pub fn from_spec(spec: &TokenizerSpec) -> Result<TextTokenizer> {
        let bad = |e: &dyn std::fmt::Display| Error::Tokenizer(format!("embedded tokenizer.json: {e}"));
        // `tokenizers` panics instead of failing on some malformed documents (a syntax
        // error inside "decoder" hits an `expect`), so the JSON is checked first, with
        // the same parser and nesting limit. A panic left in `tokenizers` on a valid
        // document still becomes an error, not a crash of the caller.
        serde_json::from_str::<serde_json::Value>(&spec.json).map_err(|e| bad(&e))?;
        let parsed = std::panic::catch_unwind(|| spec.json.parse::<Tokenizer>())
            .map_err(|_| bad(&"the tokenizers crate panicked while reading it"))?;
        let mut base = parsed.map_err(|e| bad(&e))?;
        base.with_padding(None);
        base.with_truncation(None).map_err(|e| Error::Tokenizer(e.to_string()))?;
        Ok(TextTokenizer { base })
    }

    /// Special tokens the tokenizer adds around a text pair (`[CLS] a [SEP] b [SEP]`: 3
    /// for BERT; 4 for RoBERTa). A session's maximum length must be at least this, or
    /// truncation could not honour it.
    pub fn pair_special_tokens(&self) -> usize {
        self.base.get_post_processor().map_or(0, |p| p.added_tokens(true))
    }

    /// A copy configured for one session: truncate to `max_len` tokens (special tokens
    /// included) when `truncate`, otherwise no truncation (the caller checks the length).
    ///
    /// # Errors
    /// When the tokenizer cannot truncate to `max_len` (e.g. shorter than its specials).
    pub fn for_session(&self, max_len: usize, truncate: bool) -> Result<Tokenizer> {
        let mut t = self.base.clone();
        if truncate {
            // `tokenizers` subtracts the special tokens from `max_length` unchecked (an
            // overflow panic, or no truncation at all when overflow checks are off), so
            // a budget shorter than them is refused here.
            let specials = t.get_post_processor().map_or(0, |p| p.added_tokens(false).max(p.added_tokens(true)));
            if max_len < specials {
                return Err(Error::Tokenizer(format!(
                    "maximum length {max_len} is shorter than the {specials} special tokens the tokenizer adds"
                )));
            }
            t.with_truncation(Some(TruncationParams {
                direction: TruncationDirection::Right,
                max_length: max_len,
                strategy: TruncationStrategy::LongestFirst,
                stride: 0,
            }))
            .map_err(|e| Error::Tokenizer(e.to_string()))?;
        }
        Ok(t)
    }
}

/// Tokenizes one text or text pair with a session tokenizer.
///
/// # Errors
/// [`Error::Tokenizer`] on tokenizer failure (e.g. a pair that cannot be truncated).
pub fn encode(tok: &Tokenizer, text: &str, pair: Option<&str>) -> Result<Encoded> {
    let enc = match pair {
        None => tok.encode(text, true),
        Some(p) => tok.encode((text, p), true),
    }
    .map_err(|e| Error::Tokenizer(e.to_string()))?;
    Ok(Encoded {
        input_ids: enc.get_ids().to_vec(),
        token_type_ids: enc.get_type_ids().to_vec(),
        truncated: !enc.get_overflowing().is_empty(),
    })
}
