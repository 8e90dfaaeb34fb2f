//! The input lines of `toprt run`: one JSON object per line, either
//! `{"text": ..., "text_pair": ...}` or `{"input_ids": [...], "token_type_ids": [...]}`.
//!
//! The parser lives in the library (not in the binary) so that it is tested and fuzzed
//! like the other readers of untrusted input. Errors are the CLI's one-line messages,
//! prefixed with the input line number.

use crate::session::Input;
use serde_json::Value;
use std::io::BufRead;

/// One parsed input line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Line {
    /// `text`, with the optional `text_pair`.
    Text(String, Option<String>),
    /// `input_ids`, with the optional `token_type_ids`.
    Ids(Vec<u32>, Option<Vec<u32>>),
}

impl Line {
    /// The line as an engine input (borrowing its strings and ids).
    pub fn as_input(&self) -> Input<'_> {
        match self {
            Line::Text(t, None) => Input::Text(t),
            Line::Text(t, Some(p)) => Input::Pair(t, p),
            Line::Ids(i, t) => Input::Ids { input_ids: i, token_type_ids: t.as_deref() },
        }
    }
}

fn ids(v: &Value, key: &str, line: usize) -> Result<Vec<u32>, String> {
    v.as_array()
        .ok_or_else(|| format!("line {line}: \"{key}\" must be an array of integers"))?
        .iter()
        .map(|x| x.as_u64().filter(|&x| x <= u32::MAX as u64).map(|x| x as u32))
        .collect::<Option<Vec<u32>>>()
        .ok_or_else(|| format!("line {line}: \"{key}\" must contain only non-negative integers below 2^32"))
}

/// Parses input line number `line` (1-based, used in the messages).
///
/// # Errors
/// A message naming the line: invalid JSON, not an object, both or neither of `text`
/// and `input_ids`, a field of the wrong type, or an id outside `0..2^32`.
pub fn parse_line(text: &str, line: usize) -> Result<Line, String> {
    let v: Value = serde_json::from_str(text).map_err(|e| format!("line {line}: invalid JSON: {e}"))?;
    let obj = v.as_object().ok_or_else(|| format!("line {line}: expected a JSON object"))?;
    let str_field = |k: &str| match obj.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(format!("line {line}: \"{k}\" must be a string")),
    };
    if let Some(ids_v) = obj.get("input_ids") {
        if obj.contains_key("text") {
            return Err(format!("line {line}: give either \"text\" or \"input_ids\", not both"));
        }
        let input_ids = ids(ids_v, "input_ids", line)?;
        let types = match obj.get("token_type_ids") {
            None | Some(Value::Null) => None,
            Some(t) => Some(ids(t, "token_type_ids", line)?),
        };
        return Ok(Line::Ids(input_ids, types));
    }
    match str_field("text")? {
        Some(t) => Ok(Line::Text(t, str_field("text_pair")?)),
        None => Err(format!("line {line}: expected \"text\" or \"input_ids\"")),
    }
}

/// The non-blank lines of a JSONL input, parsed, with their 1-based line numbers.
/// Blank lines are skipped; a read error (e.g. invalid UTF-8) names the input and line.
pub struct LineReader<R> {
    lines: std::iter::Enumerate<std::io::Lines<R>>,
    name: String,
}

impl<R: BufRead> LineReader<R> {
    /// Reads `reader`, called `name` in messages (the path, or `-` for stdin).
    pub fn new(reader: R, name: &str) -> LineReader<R> {
        LineReader { lines: reader.lines().enumerate(), name: name.to_string() }
    }
}

impl<R: BufRead> Iterator for LineReader<R> {
    type Item = Result<(usize, Line), String>;

    fn next(&mut self) -> Option<Self::Item> {
        for (i, l) in self.lines.by_ref() {
            let l = match l {
                Ok(l) => l,
                Err(e) => return Some(Err(format!("{}: line {}: {e}", self.name, i + 1))),
            };
            if l.trim().is_empty() {
                continue;
            }
            return Some(parse_line(&l, i + 1).map(|line| (i + 1, line)));
        }
        None
    }
}
