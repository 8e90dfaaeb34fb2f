//! Real texts for `--input`: JSONL (`{"text", "text_pair"?, "label"?}`) or TSV with a
//! header naming a `text` column and optionally `text_pair` / `label` columns (the
//! layout of GLUE and of the data under `../shared/data/`).

use std::path::Path;
use toprt::tokenize::Encoded;
use toprt::Model;

pub struct Text {
    pub text: String,
    pub pair: Option<String>,
    pub label: Option<usize>,
}

fn label_index(v: &str, names: &[String]) -> Option<usize> {
    v.trim().parse().ok().or_else(|| names.iter().position(|n| n.eq_ignore_ascii_case(v.trim())))
}

/// Reads up to `limit` texts.
///
/// # Errors
/// A missing file (with a hint about `../shared/data`), or a malformed line.
pub fn load(path: &Path, limit: Option<usize>) -> Result<Vec<Text>, String> {
    let body = std::fs::read_to_string(path).map_err(|e| {
        let hint = if path.to_string_lossy().contains("shared/data") {
            " (the evaluation data under ../shared/data is not present on this machine)"
        } else {
            ""
        };
        format!("{}: {e}{hint}", path.display())
    })?;
    let limit = limit.unwrap_or(usize::MAX);
    let mut out = Vec::new();
    let is_jsonl = path.extension().is_some_and(|e| e == "jsonl" || e == "json");
    if is_jsonl {
        for (i, line) in body.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()).take(limit) {
            let v: serde_json::Value =
                serde_json::from_str(line).map_err(|e| format!("{}:{}: {e}", path.display(), i + 1))?;
            let text = v["text"].as_str().ok_or_else(|| format!("{}:{}: no \"text\"", path.display(), i + 1))?;
            let label = match &v["label"] {
                serde_json::Value::Number(n) => n.as_u64().map(|n| n as usize),
                serde_json::Value::String(s) => label_index(s, &[]),
                _ => None,
            };
            out.push(Text { text: text.to_string(), pair: v["text_pair"].as_str().map(String::from), label });
        }
    } else {
        let mut lines = body.lines();
        let header: Vec<&str> =
            lines.next().ok_or_else(|| format!("{}: empty file", path.display()))?.split('\t').collect();
        let col = |name: &str| header.iter().position(|h| h.trim().eq_ignore_ascii_case(name));
        let text_col = col("text").or(col("sentence")).ok_or_else(|| {
            format!("{}: TSV header {:?} has no 'text' (or 'sentence') column", path.display(), header)
        })?;
        let (pair_col, label_col) = (col("text_pair"), col("label"));
        let mut names: Vec<String> = Vec::new();
        for (i, line) in lines.enumerate().filter(|(_, l)| !l.trim().is_empty()).take(limit) {
            let f: Vec<&str> = line.split('\t').collect();
            let text = f.get(text_col).ok_or_else(|| format!("{}:{}: missing text column", path.display(), i + 2))?;
            let label = label_col.and_then(|c| f.get(c)).and_then(|v| {
                label_index(v, &names).or_else(|| {
                    names.push(v.trim().to_string());
                    Some(names.len() - 1)
                })
            });
            out.push(Text {
                text: text.to_string(),
                pair: pair_col.and_then(|c| f.get(c)).map(|s| s.to_string()),
                label,
            });
        }
    }
    if out.is_empty() {
        return Err(format!("{}: no texts", path.display()));
    }
    Ok(out)
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
