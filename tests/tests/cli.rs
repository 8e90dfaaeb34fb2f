//! The command-line tools as a user runs them: `toprt-convert`, `toprt run`,
//! `toprt inspect`. Binaries come from the same target folder as this test
//! (`scripts/test.sh` builds them first).

use serde_json::Value;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use toprt_tests::*;

fn bin(name: &str) -> PathBuf {
    toprt_tests::workspace_bin(name)
}

fn tmp(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name)
}

fn run(cmd: &mut Command) -> Output {
    cmd.stdin(Stdio::null()).output().unwrap()
}

fn convert(dir: &std::path::Path, name: &str) -> PathBuf {
    let out = tmp(name);
    let o = run(Command::new(bin("toprt-convert")).arg(dir).arg("-o").arg(&out).arg("--force"));
    assert!(o.status.success(), "convert failed: {}", String::from_utf8_lossy(&o.stderr));
    out
}

fn run_jsonl(model: &std::path::Path, lines: &[Value], extra: &[&str]) -> (Output, Vec<Value>) {
    // Tests run in parallel threads of one process: every call gets its own files.
    static CALL: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = CALL.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let input = tmp(&format!("in-{}-{n}.jsonl", std::process::id()));
    let output = tmp(&format!("out-{}-{n}.jsonl", std::process::id()));
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    std::fs::write(&input, text).unwrap();
    let _ = std::fs::remove_file(&output);
    let o = run(Command::new(bin("toprt"))
        .args(["run", "--model"])
        .arg(model)
        .arg("--input")
        .arg(&input)
        .arg("--output")
        .arg(&output)
        .args(extra));
    let out = std::fs::read_to_string(&output)
        .map(|t| t.lines().map(|l| serde_json::from_str(l).unwrap()).collect())
        .unwrap_or_default();
    (o, out)
}

fn floats(v: &Value) -> Vec<f32> {
    v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect()
}

#[test]
fn convert_inspect_run_minilm_against_hf_goldens() {
    let model = convert(&minilm_dir(), "cli-minilm.toprt");
    let o = run(Command::new(bin("toprt")).arg("inspect").arg(&model));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success() && text.contains("6 layers") && text.contains("Mean + L2 normalize"), "{text}");

    let cases: Vec<Value> =
        serde_json::from_str(&std::fs::read_to_string(root().join("tests/golden/minilm/cases.json")).unwrap()).unwrap();
    let gold = golden_tensors(&root().join("tests/golden/minilm/outputs.safetensors"));
    // Each golden case twice: as token ids and (where it has one) as text.
    let mut lines = Vec::new();
    let mut which = Vec::new();
    for (i, c) in cases.iter().enumerate() {
        if c["truncation"].is_object() && c["truncation"]["max_length"] != 512 {
            continue;
        }
        lines.push(serde_json::json!({"input_ids": c["input_ids"], "token_type_ids": c["token_type_ids"]}));
        which.push(i);
        match c["kind"].as_str().unwrap() {
            "text" => lines.push(serde_json::json!({"text": c["text"]})),
            "pair" => lines.push(serde_json::json!({"text": c["text"], "text_pair": c["text_pair"]})),
            _ => continue,
        }
        which.push(i);
    }
    let (o, out) = run_jsonl(&model, &lines, &["--hidden-states", "--batch-size", "5", "--threads", "2"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(out.len(), lines.len());
    for (r, &i) in out.iter().zip(&which) {
        assert_eq!(r["input_ids"], cases[i]["input_ids"], "case {i}: input_ids");
        let emb = floats(&r["embedding"]);
        let cos = cosine(&emb, &gold[&format!("case{i}.embedding")]);
        assert!(cos >= 0.99999, "case {i}: embedding cosine {cos}");
        let hs: Vec<f32> = r["last_hidden_state"].as_array().unwrap().iter().flat_map(floats).collect();
        let (d, at) = max_abs_diff(&hs, &gold[&format!("case{i}.last_hidden_state")]);
        assert!(d <= 1e-4, "case {i}: hidden max abs diff {d:e} at {at}");
    }
}

#[test]
fn run_classifier_logits_and_pairs() {
    let model = convert(&fixture("tiny-bert-pt"), "cli-tiny-bert.toprt");
    let lines = vec![
        serde_json::json!({"text": "a fine film"}),
        serde_json::json!({"text": "is it?", "text_pair": "yes it is"}),
        serde_json::json!({"input_ids": [2, 100, 3], "token_type_ids": [0, 0, 0]}),
    ];
    let (o, out) = run_jsonl(&model, &lines, &[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(out.len(), 3);
    for r in &out {
        assert_eq!(floats(&r["logits"]).len(), 3);
        assert!(r.get("last_hidden_state").is_none());
    }
    assert!(out[1]["token_type_ids"].as_array().unwrap().contains(&Value::from(1)));
    // Same results through the library.
    let m = toprt::Model::open(&model).unwrap();
    let mut s = toprt::Session::new(&m, &Default::default()).unwrap();
    let lib = s.run(&[toprt::Input::Text("a fine film")], Default::default()).unwrap();
    assert_eq!(floats(&out[0]["logits"]), lib[0].logits.clone().unwrap());
}

#[test]
fn run_errors_are_one_line_and_leave_no_output() {
    let model = convert(&fixture("tiny-bert-st"), "cli-tiny-err.toprt");
    let bad = [
        (serde_json::json!({"txt": "typo"}), "line 2: expected \"text\" or \"input_ids\""),
        (serde_json::json!({"input_ids": [2, 99999, 3]}), "line 2: token id 99999"),
        (serde_json::json!({"input_ids": [2, -1]}), "line 2: \"input_ids\" must contain only non-negative"),
        (serde_json::json!({"input_ids": []}), "line 2: empty sequence"),
        (serde_json::json!({"text": 5}), "line 2: \"text\" must be a string"),
    ];
    for (line, want) in bad {
        let (o, out) = run_jsonl(&model, &[serde_json::json!({"text": "ok"}), line], &[]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "accepted bad input");
        assert!(err.contains(want), "stderr {err:?} lacks {want:?}");
        assert_eq!(err.trim_end().lines().count(), 1, "more than one line: {err}");
        assert!(out.is_empty(), "output written despite the error");
    }
    let o = run(Command::new(bin("toprt")).args(["run", "--model", "/nonexistent.toprt", "--input", "-"]));
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("/nonexistent.toprt"));
    let o = run(Command::new(bin("toprt")).args(["frobnicate"]));
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("unknown command"));
}

#[test]
fn run_truncation_warns_or_errors() {
    let model = convert(&fixture("tiny-bert-st"), "cli-tiny-trunc.toprt");
    let long = serde_json::json!({"text": "word ".repeat(100)});
    let (o, out) = run_jsonl(&model, std::slice::from_ref(&long), &["--max-length", "8"]);
    assert!(o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("warning: line 1: input truncated to 8 tokens"));
    assert_eq!(out[0]["input_ids"].as_array().unwrap().len(), 8);
    let (o, _) = run_jsonl(&model, &[long], &["--max-length", "8", "--no-truncate"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("exceeds the maximum length 8"));
}

#[test]
fn convert_cli_errors() {
    let out = tmp("cli-exists.toprt");
    std::fs::write(&out, b"keep").unwrap();
    let o = run(Command::new(bin("toprt-convert")).arg(fixture("tiny-bert-st")).arg("-o").arg(&out));
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("--force"));
    assert_eq!(std::fs::read(&out).unwrap(), b"keep");
    let o = run(Command::new(bin("toprt-convert")).arg("/nonexistent-dir").arg("-o").arg(tmp("x.toprt")));
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("/nonexistent-dir"));
    let o = run(Command::new(bin("toprt-convert"))
        .arg(fixture("tiny-bert-st"))
        .args(["--dtype", "f16", "-o"])
        .arg(tmp("x.toprt")));
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("unknown dtype 'f16'"));
}

/// ModernBERT from the command line: `inspect` names the architecture and its
/// attention, and `run` scores a text pair through the embedded tokenizer.
#[test]
fn convert_inspect_run_modernbert() {
    let out = tmp("cli-modernbert.toprt");
    let o =
        run(Command::new(bin("toprt-convert")).arg(fixture("tiny-modernbert-st")).args(["--force", "-o"]).arg(&out));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = run(Command::new(bin("toprt")).arg("inspect").arg(&out));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("model:       Modernbert (ModernBertForSequenceClassification)"), "{text}");
    assert!(text.contains("sliding window 16 (|i - j| <= 8) on layers [1, 2]"), "{text}");
    assert!(text.contains("pre-norm layers, gated GELU FFN"), "{text}");
    let (o, res) = run_jsonl(&out, &[serde_json::json!({"text": "a fine film", "text_pair": "it is"})], &[]);
    assert!(o.status.success() && res[0]["logits"].as_array().is_some_and(|e| e.len() == 3), "{res:?}");
    assert_eq!(res[0]["token_type_ids"], serde_json::json!([0, 0, 0, 0, 0, 0, 1, 1, 1]), "{res:?}");
}

/// DeBERTa from the command line: `inspect` names the architecture and its
/// disentangled attention, and `run` scores a text pair through the embedded tokenizer.
#[test]
fn convert_inspect_run_deberta() {
    let out = tmp("cli-deberta.toprt");
    let o = run(Command::new(bin("toprt-convert")).arg(fixture("tiny-deberta-st")).args(["--force", "-o"]).arg(&out));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = run(Command::new(bin("toprt")).arg("inspect").arg(&out));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("model:       DebertaV2 (DebertaV2ForSequenceClassification)"), "{text}");
    assert!(text.contains("disentangled attention (c2p + p2c), span 16, 16 buckets"), "{text}");
    assert!(text.contains("no absolute position table"), "{text}");
    assert!(text.contains("Deberta classifier"), "{text}");
    let (o, res) = run_jsonl(&out, &[serde_json::json!({"text": "a fine film", "text_pair": "it is"})], &[]);
    assert!(o.status.success() && res[0]["logits"].as_array().is_some_and(|e| e.len() == 3), "{res:?}");
    let types = res[0]["token_type_ids"].as_array().unwrap();
    assert!(types.first() == Some(&0.into()) && types.last() == Some(&1.into()), "{res:?}");
}

#[test]
fn convert_bf16_and_inspect() {
    let out = tmp("cli-bf16.toprt");
    let o = run(Command::new(bin("toprt-convert"))
        .arg(fixture("tiny-bert-st"))
        .args(["--dtype", "bf16", "--force", "-o"])
        .arg(&out));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stderr).contains("stored as bf16"));
    let o = run(Command::new(bin("toprt")).arg("inspect").arg(&out));
    assert!(String::from_utf8_lossy(&o.stdout).contains("weights:     bf16"), "{}", String::from_utf8_lossy(&o.stdout));
    let (o, res) = run_jsonl(&out, &[serde_json::json!({"text": "a short test"})], &[]);
    assert!(o.status.success() && res[0]["logits"].as_array().is_some_and(|e| e.len() == 3), "{res:?}");
}

/// `--dtype int8`: the converter says every linear is int8; `inspect` and `run
/// --verbose` say which kernel runs them and why; --verbose changes nothing on stdout.
#[test]
fn convert_int8_inspect_and_run_verbose() {
    let out = tmp("cli-int8.toprt");
    let o = run(Command::new(bin("toprt-convert"))
        .arg(fixture("tiny-bert-st"))
        .args(["--dtype", "int8", "--force", "-o"])
        .arg(&out));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success() && err.contains("int8"), "{err}");
    let o = run(Command::new(bin("toprt")).arg("inspect").arg(&out));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("weights:     int8") && text.contains("runs as:     int8 weights on "), "{text}");
    let line = [serde_json::json!({"text": "a short test"})];
    let (o, quiet) = run_jsonl(&out, &line, &[]);
    assert!(o.status.success() && o.stderr.is_empty(), "{}", String::from_utf8_lossy(&o.stderr));
    let (o, loud) = run_jsonl(&out, &line, &["--verbose"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert_eq!(quiet, loud, "--verbose changed the results");
    assert!(err.contains("(int8 weights)") && err.contains("linears run as ") && err.contains("gemm_i8"), "{err}");
    assert!(err.contains("1 lines in 1 batch(es)"), "{err}");
}

#[test]
fn run_kept_and_inspect_schedule() {
    let out = tmp("cli-top.toprt");
    let o = run(Command::new(bin("toprt-convert"))
        .arg(fixture("top-best"))
        .arg("-o")
        .arg(&out)
        .arg("--force")
        .arg("--tokenizer")
        .arg(fixture("tiny-bert-st")));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stderr).contains("l0_module.pt"));
    let o = run(Command::new(bin("toprt")).arg("inspect").arg(&out).args(["--lengths", "16,64", "--pad-to", "64"]));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("ToP rank-bins, bin_num 20") && text.contains("gate off") && text.contains("vs padded"),
        "{text}"
    );
    let lines = vec![serde_json::json!({"text": "one two three four five six seven eight nine ten"})];
    let (o, res) = run_jsonl(&out, &lines, &["--kept"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let kept = res[0]["kept"].as_object().unwrap();
    assert_eq!(kept.keys().cloned().collect::<Vec<_>>(), vec!["1", "2", "3"]);
    for v in kept.values() {
        assert_eq!(v[0], 0, "CLS is kept and listed as 0");
    }
    let (_, dense) = run_jsonl(&out, &lines, &["--kept", "--no-prune"]);
    assert!(dense[0]["kept"].as_object().unwrap().is_empty());
    let (o, _) = run_jsonl(&out, &lines, &["--keep-scale", "0"]);
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("keep_scale"));
}

/// `toprt inspect --cpu` prints the kernels' one CPU probe: its tier line is what
/// scripts/test.sh reads, so it must list exactly the tiers `Isa::supported` accepts.
#[test]
fn inspect_cpu_lists_the_supported_tiers() {
    let o = run(Command::new(bin("toprt")).args(["inspect", "--cpu"]));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = String::from_utf8(o.stdout).unwrap();
    let tiers = text.lines().find_map(|l| l.strip_prefix("tiers: ")).expect("a 'tiers: ' line");
    let want: Vec<String> = toprt::Isa::ALL.iter().filter(|i| i.supported()).map(|i| i.to_string()).collect();
    assert_eq!(tiers.split(' ').collect::<Vec<_>>(), want, "{text}");
    assert!(text.contains("caches: ") && text.contains("amx: "), "{text}");
}
