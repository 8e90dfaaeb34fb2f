//! Calibration and evaluation text: JSONL (`{"text", "text_pair"?, "label"?}` per line)
//! or TSV with a header naming a `text` (or `sentence`) column and optionally
//! `text_pair` and `label` columns (GLUE's layout, and the data under
//! `../shared/data/`).

use crate::error::{Error, Result};
use std::path::Path;

/// One text (or text pair), with its label when the file has one.
#[derive(Clone, Debug, PartialEq)]
pub struct Text {
    pub text: String,
    pub pair: Option<String>,
    pub label: Option<usize>,
}

fn label_index(v: &str, names: &[String]) -> Option<usize> {
    v.trim().parse().ok().or_else(|| names.iter().position(|n| n.eq_ignore_ascii_case(v.trim())))
}

/// Reads up to `limit` texts in file order.
///
/// # Errors
/// A missing or unreadable file (with a hint where it is the shared evaluation data), a
/// malformed line (named by number), a TSV header without a text column, or no text at
/// all.
pub fn load(path: &Path, limit: Option<usize>) -> Result<Vec<Text>> {
    let bad = |msg: String| Error::Data { path: path.to_path_buf(), msg };
    let body = std::fs::read_to_string(path).map_err(|e| {
        let hint = if path.to_string_lossy().contains("shared/data") {
            " (the evaluation data under ../shared/data is not present on this machine)"
        } else {
            ""
        };
        bad(format!("{e}{hint}"))
    })?;
    let limit = limit.unwrap_or(usize::MAX);
    let mut out = Vec::new();
    let is_jsonl = path.extension().is_some_and(|e| e == "jsonl" || e == "json");
    if is_jsonl {
        for (i, line) in body.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()).take(limit) {
            let v: serde_json::Value = serde_json::from_str(line).map_err(|e| bad(format!("line {}: {e}", i + 1)))?;
            let text = v["text"].as_str().ok_or_else(|| bad(format!("line {}: no \"text\" string", i + 1)))?;
            let label = match &v["label"] {
                serde_json::Value::Number(n) => n.as_u64().map(|n| n as usize),
                serde_json::Value::String(s) => label_index(s, &[]),
                _ => None,
            };
            out.push(Text { text: text.to_string(), pair: v["text_pair"].as_str().map(String::from), label });
        }
    } else {
        let mut lines = body.lines();
        let header: Vec<&str> = lines.next().ok_or_else(|| bad("empty file".into()))?.split('\t').collect();
        let col = |name: &str| header.iter().position(|h| h.trim().eq_ignore_ascii_case(name));
        let text_col = col("text")
            .or(col("sentence"))
            .ok_or_else(|| bad(format!("TSV header {header:?} has no 'text' (or 'sentence') column")))?;
        let (pair_col, label_col) = (col("text_pair"), col("label"));
        let mut names: Vec<String> = Vec::new();
        for (i, line) in lines.enumerate().filter(|(_, l)| !l.trim().is_empty()).take(limit) {
            let f: Vec<&str> = line.split('\t').collect();
            let text = f.get(text_col).ok_or_else(|| bad(format!("line {}: missing the text column", i + 2)))?;
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
        return Err(bad("no texts".into()));
    }
    Ok(out)
}

/// A stable fingerprint of the texts a calibration used (FNV-1a, 64 bits, over every
/// text, pair and label), recorded in the output file.
pub fn fingerprint(texts: &[Text]) -> String {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    let mut eat = |b: &[u8]| {
        for &x in b {
            h = (h ^ u64::from(x)).wrapping_mul(0x0100_0000_01b3);
        }
    };
    for t in texts {
        eat(t.text.as_bytes());
        eat(&[0]);
        eat(t.pair.as_deref().unwrap_or("").as_bytes());
        eat(&[1]);
        eat(&t.label.map_or(u64::MAX, |l| l as u64).to_le_bytes());
    }
    format!("fnv1a64:{h:016x}")
}

/// Encodes texts with the model's tokenizer, cut to `max_len` tokens.
///
/// # Errors
/// A model without a tokenizer, or a text its tokenizer refuses (named by index).
pub fn encode(session: &toprt::Session, texts: &[Text]) -> Result<Vec<toprt::tokenize::Encoded>> {
    texts
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let input = match &t.pair {
                Some(p) => toprt::Input::Pair(&t.text, p),
                None => toprt::Input::Text(&t.text),
            };
            session.prepare(i, &input).map_err(Error::from)
        })
        .collect()
}
