//! The `cli_jsonl` target: the input reader of `toprt run`, on a shared tiny model.

use std::sync::{Mutex, OnceLock};
use toprt::cli_input::{parse_line, Line, LineReader};
use toprt::{Model, OpenOptions, Session, SessionOptions};

use super::tiny::*;

/// One session on [`TinyModel::BertTopBins`], shared by the targets that need a model
/// with a tokenizer but do not test the model itself.
fn shared_session() -> &'static Mutex<Session> {
    static S: OnceLock<Mutex<Session>> = OnceLock::new();
    S.get_or_init(|| {
        let model =
            Model::from_bytes(&tiny_model(TinyModel::BertTopBins), &OpenOptions::default()).expect("tiny model opens");
        let opts = SessionOptions { threads: 1, max_tokens: 64, ..Default::default() };
        Mutex::new(Session::new(&model, &opts).expect("tiny session"))
    })
}

/// The JSON form of a parsed line (for round trips).
pub fn line_json(line: &Line) -> serde_json::Value {
    match line {
        Line::Text(t, p) => serde_json::json!({"text": t, "text_pair": p}),
        Line::Ids(i, t) => serde_json::json!({"input_ids": i, "token_type_ids": t}),
    }
}

/// Fuzz target `cli_jsonl`: the input reader of `toprt run`, then tokenizing and
/// checking each parsed line as the CLI does before running it.
pub fn cli_jsonl(data: &[u8]) -> bool {
    let lines = data.split(|&b| b == b'\n').count();
    let session = shared_session().lock().unwrap_or_else(|e| e.into_inner());
    let mut all_ok = true;
    for item in LineReader::new(data, "input.jsonl") {
        let (n, line) = match item {
            Ok(x) => x,
            Err(msg) => {
                assert!(msg.contains("line "), "error without a line number: {msg}");
                all_ok = false;
                continue;
            }
        };
        assert!(n >= 1 && n <= lines, "line number {n} of {lines}");
        let again = parse_line(&line_json(&line).to_string(), n).expect("a parsed line's JSON form parses");
        assert_eq!(again, line, "line {n} does not round-trip");
        if let Ok(enc) = session.prepare(0, &line.as_input()) {
            assert!(!enc.input_ids.is_empty() && enc.input_ids.len() <= session.max_length());
            assert_eq!(enc.input_ids.len(), enc.token_type_ids.len());
        }
    }
    all_ok
}
