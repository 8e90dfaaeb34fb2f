//! Finding or building the tokenizer to embed: `tokenizer.json` as is, or a BERT
//! WordPiece tokenizer built from `vocab.txt` + `tokenizer_config.json`, or a RoBERTa
//! byte-level BPE from `vocab.json` + `merges.txt`.

use crate::error::{io_err, ConvertError, Result};
use serde_json::Value;
use std::path::Path;
use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::decoders::wordpiece::WordPiece as WordPieceDecoder;
use tokenizers::models::bpe::BPE;
use tokenizers::models::wordpiece::WordPiece;
use tokenizers::normalizers::bert::BertNormalizer;
use tokenizers::pre_tokenizers::bert::BertPreTokenizer;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::processors::bert::BertProcessing;
use tokenizers::processors::roberta::RobertaProcessing;
use tokenizers::{AddedToken, Model, Tokenizer};
use toprt_format::Arch;

/// The tokenizer document and what it was made from.
pub struct FoundTokenizer {
    pub json: String,
    pub source: String,
    /// `model_max_length` from `tokenizer_config.json`, if sensible.
    pub model_max_length: Option<usize>,
}

fn tokenizer_config(dir: &Path) -> Result<Value> {
    let p = dir.join("tokenizer_config.json");
    if !p.is_file() {
        return Ok(Value::Null);
    }
    let t = std::fs::read_to_string(&p).map_err(io_err(&p))?;
    serde_json::from_str(&t).map_err(|e| ConvertError::Parse { path: p, msg: e.to_string() })
}

fn special(cfg: &Value, key: &str, default: &str) -> String {
    match cfg.get(key) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Object(o)) => o.get("content").and_then(|c| c.as_str()).unwrap_or(default).to_string(),
        _ => default.to_string(),
    }
}

/// Looks for a tokenizer in `dir`.
///
/// # Errors
/// [`ConvertError::Tokenizer`] when none is found or it cannot be built.
pub fn find(dir: &Path, arch: Arch) -> Result<FoundTokenizer> {
    let cfg = tokenizer_config(dir)?;
    let model_max_length =
        cfg.get("model_max_length").and_then(|m| m.as_u64()).filter(|&m| m > 0 && m < 1 << 20).map(|m| m as usize);
    let tj = dir.join("tokenizer.json");
    let tok_err = |e: tokenizers::Error| ConvertError::Tokenizer(format!("{}: {e}", dir.display()));
    let (tok, source) = if tj.is_file() {
        let t = Tokenizer::from_file(&tj).map_err(tok_err)?;
        (t, "tokenizer.json")
    } else if matches!(arch, Arch::Mpnet | Arch::Modernbert | Arch::DebertaV2) {
        // MPNet's vocab.txt is WordPiece, but its pair template (<s> A </s></s> B </s>)
        // is not BERT's; ModernBERT ships only tokenizer.json; DeBERTa's spm.model is
        // read through its tokenizer.json: only it says either.
        return Err(ConvertError::Tokenizer(format!(
            "no tokenizer.json in {} ({arch:?}'s tokenizer is read from tokenizer.json only); pass --tokenizer DIR or --no-tokenizer",
            dir.display()
        )));
    } else if dir.join("vocab.txt").is_file() {
        let vocab = dir.join("vocab.txt");
        let lower = cfg.get("do_lower_case").and_then(|b| b.as_bool()).unwrap_or(true);
        let strip = cfg.get("strip_accents").and_then(|b| b.as_bool());
        let chinese = cfg.get("tokenize_chinese_chars").and_then(|b| b.as_bool()).unwrap_or(true);
        let (unk, sep, cls) = (
            special(&cfg, "unk_token", "[UNK]"),
            special(&cfg, "sep_token", "[SEP]"),
            special(&cfg, "cls_token", "[CLS]"),
        );
        let vocab_s = vocab.to_str().ok_or_else(|| ConvertError::Tokenizer("vocab path is not UTF-8".into()))?;
        let wp = WordPiece::from_file(vocab_s).unk_token(unk).build().map_err(tok_err)?;
        let id = |t: &str| {
            wp.get_vocab()
                .get(t)
                .copied()
                .ok_or_else(|| ConvertError::Tokenizer(format!("special token {t} is not in vocab.txt")))
        };
        let (sep_id, cls_id) = (id(&sep)?, id(&cls)?);
        let specials: Vec<AddedToken> = [
            ("unk_token", "[UNK]"),
            ("sep_token", "[SEP]"),
            ("pad_token", "[PAD]"),
            ("cls_token", "[CLS]"),
            ("mask_token", "[MASK]"),
        ]
        .iter()
        .map(|(k, d)| special(&cfg, k, d))
        .filter(|s| wp.get_vocab().contains_key(s))
        .map(|s| AddedToken::from(s, true))
        .collect();
        let mut t = Tokenizer::new(wp);
        // As the Hugging Face fast tokenizer does: special tokens written in the text are
        // matched verbatim (before normalisation) and map to their ids.
        t.add_special_tokens(&specials);
        t.with_normalizer(Some(BertNormalizer::new(true, chinese, strip, lower)));
        t.with_pre_tokenizer(Some(BertPreTokenizer));
        t.with_post_processor(Some(BertProcessing::new((sep, sep_id), (cls, cls_id))));
        t.with_decoder(Some(WordPieceDecoder::default()));
        (t, "vocab.txt + tokenizer_config.json")
    } else if arch == Arch::Roberta && dir.join("vocab.json").is_file() && dir.join("merges.txt").is_file() {
        let (v, m) = (dir.join("vocab.json"), dir.join("merges.txt"));
        let (vs, ms) = (v.to_string_lossy().into_owned(), m.to_string_lossy().into_owned());
        let bpe = BPE::from_file(&vs, &ms).build().map_err(tok_err)?;
        let (sep, cls) = (special(&cfg, "sep_token", "</s>"), special(&cfg, "cls_token", "<s>"));
        let id = |t: &str| {
            bpe.get_vocab()
                .get(t)
                .copied()
                .ok_or_else(|| ConvertError::Tokenizer(format!("special token {t} is not in vocab.json")))
        };
        let (sep_id, cls_id) = (id(&sep)?, id(&cls)?);
        let prefix = cfg.get("add_prefix_space").and_then(|b| b.as_bool()).unwrap_or(false);
        let mut t = Tokenizer::new(bpe);
        t.with_pre_tokenizer(Some(ByteLevel::new(prefix, true, true)));
        t.with_post_processor(Some(
            RobertaProcessing::new((sep, sep_id), (cls, cls_id)).trim_offsets(true).add_prefix_space(prefix),
        ));
        t.with_decoder(Some(ByteLevelDecoder::default()));
        (t, "vocab.json + merges.txt")
    } else {
        return Err(ConvertError::Tokenizer(format!(
            "no tokenizer in {} (need tokenizer.json, or vocab.txt for BERT, or vocab.json + merges.txt for RoBERTa); pass --tokenizer DIR or --no-tokenizer",
            dir.display()
        )));
    };
    let json = tok.to_string(false).map_err(tok_err)?;
    Ok(FoundTokenizer { json, source: format!("{} ({source})", dir.display()), model_max_length })
}
