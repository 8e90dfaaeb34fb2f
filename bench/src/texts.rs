//! Real texts for `--input`: JSONL (`{"text", "text_pair"?, "label"?}`) or TSV with a
//! header naming a `text` column and optionally `text_pair` / `label` columns (the
//! layout of GLUE and of the data under `../shared/data/`), read as `toprt-calibrate`
//! reads them; and their tokenization.

use std::path::Path;
use toprt::tokenize::Encoded;
use toprt::Model;

pub use toprt_calibrate::data::Text;

/// Reads up to `limit` texts ([`toprt_calibrate::data::load`], the reader
/// `toprt-calibrate` uses, so both tools read the same files the same way).
///
/// # Errors
/// A missing file (with a hint about `../shared/data`), or a malformed line.
pub fn load(path: &Path, limit: Option<usize>) -> Result<Vec<Text>, String> {
    toprt_calibrate::data::load(path, limit).map_err(|e| e.to_string())
}

/// Tokenizes with the model's tokenizer, or with the one in `tokenizer_dir` (for models
/// converted without one, like the built-in default), truncating to `max_len`.
///
/// # Errors
/// No tokenizer available, or a tokenizer failure.
pub fn tokenize(
    model: &Model,
    tokenizer_dir: Option<&Path>,
    texts: &[Text],
    max_len: usize,
) -> Result<Vec<Encoded>, String> {
    let external;
    let tok = match (tokenizer_dir, model.tokenizer()) {
        (Some(dir), _) => {
            let found = toprt_convert::tokenizer::find(dir, model.manifest().model.arch).map_err(|e| e.to_string())?;
            let spec = toprt_format::TokenizerSpec { json: found.json, max_length: max_len };
            external = toprt::tokenize::TextTokenizer::from_spec(&spec).map_err(|e| e.to_string())?;
            &external
        }
        (None, Some(t)) => t,
        (None, None) => {
            return Err(
                "this model embeds no tokenizer: pass --tokenizer DIR (a folder with tokenizer.json or vocab.txt)"
                    .into(),
            )
        }
    };
    let session_tok = tok.for_session(max_len, true).map_err(|e| e.to_string())?;
    let vocab = model.manifest().model.vocab_size;
    texts
        .iter()
        .map(|t| {
            let e = toprt::tokenize::encode(&session_tok, &t.text, t.pair.as_deref()).map_err(|e| e.to_string())?;
            if e.input_ids.iter().any(|&i| i as usize >= vocab) {
                return Err(format!("the tokenizer produces ids beyond the model's vocabulary ({vocab})"));
            }
            Ok(e)
        })
        .collect()
}
