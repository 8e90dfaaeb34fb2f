//! engine-bench as a user runs it: on a small converted model with a schedule, its
//! `--json` output validates against `bench/engine-bench.schema.json`, `--compare` of a
//! run with itself gives ratios of 1, `--svg` writes a chart, `--input` reads texts.

use serde_json::Value;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use toprt_tests::*;

fn bin(name: &str) -> PathBuf {
    toprt_tests::workspace_bin(name)
}

fn tmp(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name)
}

/// The subset of JSON Schema the schema file uses: type, required, properties, items,
/// enum, minimum, maximum, minItems.
fn validate(v: &Value, s: &Value, path: &str) -> Result<(), String> {
    if let Some(t) = s.get("type") {
        let types: Vec<&str> = match t {
            Value::String(x) => vec![x.as_str()],
            Value::Array(a) => a.iter().filter_map(|x| x.as_str()).collect(),
            _ => vec![],
        };
        let ok = types.iter().any(|t| match *t {
            "object" => v.is_object(),
            "array" => v.is_array(),
            "string" => v.is_string(),
            "integer" => v.is_u64() || v.is_i64(),
            "number" => v.is_number(),
            "null" => v.is_null(),
            "boolean" => v.is_boolean(),
            _ => false,
        });
        if !ok {
            return Err(format!("{path}: {v} is not of type {types:?}"));
        }
    }
    if v.is_null() {
        return Ok(());
    }
    if let Some(e) = s.get("enum").and_then(|e| e.as_array()) {
        if !e.contains(v) {
            return Err(format!("{path}: {v} not in {e:?}"));
        }
    }
    if let (Some(m), Some(x)) = (s.get("minimum").and_then(|m| m.as_f64()), v.as_f64()) {
        if x < m {
            return Err(format!("{path}: {x} < minimum {m}"));
        }
    }
    if let (Some(m), Some(x)) = (s.get("maximum").and_then(|m| m.as_f64()), v.as_f64()) {
        if x > m {
            return Err(format!("{path}: {x} > maximum {m}"));
        }
    }
    if let Some(req) = s.get("required").and_then(|r| r.as_array()) {
        for k in req.iter().filter_map(|k| k.as_str()) {
            if v.get(k).is_none() {
                return Err(format!("{path}: missing required '{k}'"));
            }
        }
    }
    if let (Some(props), Some(obj)) = (s.get("properties").and_then(|p| p.as_object()), v.as_object()) {
        for (k, sub) in props {
            if let Some(x) = obj.get(k) {
                validate(x, sub, &format!("{path}.{k}"))?;
            }
        }
    }
    if let (Some(items), Some(arr)) = (s.get("items"), v.as_array()) {
        if let Some(m) = s.get("minItems").and_then(|m| m.as_u64()) {
            if (arr.len() as u64) < m {
                return Err(format!("{path}: fewer than {m} items"));
            }
        }
        for (i, x) in arr.iter().enumerate() {
            validate(x, items, &format!("{path}[{i}]"))?;
        }
    }
    Ok(())
}

/// `bench/engine-bench.schema.json`.
fn schema() -> Value {
    serde_json::from_str(&std::fs::read_to_string(root().join("bench/engine-bench.schema.json")).unwrap()).unwrap()
}

fn small_model() -> PathBuf {
    let out = tmp("bench-small.toprt");
    let o = Command::new(bin("toprt-convert"))
        .arg(fixture("top-best"))
        .args(["--tokenizer"])
        .arg(fixture("tiny-bert-st"))
        .arg("-o")
        .arg(&out)
        .arg("--force")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    out
}

fn bench(args: &[&str]) -> (String, String) {
    let o = Command::new(bin("engine-bench")).args(args).stdin(Stdio::null()).output().unwrap();
    let (out, err) = (String::from_utf8_lossy(&o.stdout).into_owned(), String::from_utf8_lossy(&o.stderr).into_owned());
    assert!(o.status.success(), "engine-bench {args:?} failed: {err}");
    (out, err)
}

#[test]
fn json_validates_compare_is_one_svg_written() {
    let model = small_model();
    let (json, svg) = (tmp("bench.json"), tmp("bench.svg"));
    let m = model.to_str().unwrap();
    let (out, _) = bench(&[
        "--model",
        m,
        "--batch",
        "4",
        "--lengths",
        "9,40,120,3",
        "--iters",
        "3",
        "--warmup",
        "1",
        "--json",
        json.to_str().unwrap(),
        "--svg",
        svg.to_str().unwrap(),
    ]);
    assert!(out.contains("speedup pruned vs dense") && out.contains("MAC reduction"), "{out}");
    assert_eq!(
        out.lines().filter(|l| l.trim_start().starts_with(|c: char| c.is_ascii_digit()) && l.contains('|')).count(),
        4,
        "one row per layer:\n{out}"
    );
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let schema = schema();
    validate(&doc, &schema, "$").unwrap();
    let runs = doc["runs"].as_array().unwrap();
    assert_eq!(runs.iter().map(|r| r["name"].as_str().unwrap()).collect::<Vec<_>>(), vec!["dense", "pruned"]);
    assert!(runs[1]["mac_reduction"].as_f64().unwrap() > 1.0);
    assert_eq!(runs[1]["layers"][0]["tokens_max"], 120);
    // A document that lies fails validation (the validator is not vacuous).
    let mut bad = doc.clone();
    bad["runs"][0]["median_ms"] = Value::from("fast");
    assert!(validate(&bad, &schema, "$").is_err());
    bad = doc.clone();
    bad.as_object_mut().unwrap().remove("runs");
    assert!(validate(&bad, &schema, "$").is_err());

    let (cmp, _) = bench(&["--compare", json.to_str().unwrap(), json.to_str().unwrap()]);
    let ratios: Vec<f64> =
        cmp.lines().filter_map(|l| l.split_whitespace().last()?.trim_end_matches(')').parse().ok()).collect();
    assert!(ratios.len() >= 8, "{cmp}");
    assert!(ratios.iter().all(|r| (r - 1.0).abs() < 1e-9), "{cmp}");
    let s = std::fs::read_to_string(&svg).unwrap();
    assert!(s.starts_with("<svg") && s.contains("pruned ms") && s.trim_end().ends_with("</svg>"));
}

#[test]
fn real_text_mode_reports_agreement() {
    let model = small_model();
    let texts = tmp("texts.tsv");
    std::fs::write(&texts, "text\tlabel\na fine film\t1\nan awful , boring mess of a movie that drags on\t0\nok\t1\n")
        .unwrap();
    let (out, _) = bench(&[
        "--model",
        model.to_str().unwrap(),
        "--input",
        texts.to_str().unwrap(),
        "--batch",
        "2",
        "--iters",
        "2",
        "--warmup",
        "0",
    ]);
    assert!(out.contains("agreement over 3 texts") && out.contains("accuracy dense"), "{out}");
    // A batch larger than one forward pass can hold is refused up front, with the fix.
    let o = Command::new(bin("engine-bench"))
        .arg("--model")
        .arg(&model)
        .args(["--batch", "2000", "--seq-len", "64", "--iters", "1"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("128000 tokens") && err.contains("smaller --batch"), "{err}");
    let o =
        Command::new(bin("engine-bench")).args(["--input", "/nonexistent/shared/data/sst2/dev.tsv"]).output().unwrap();
    assert!(
        !o.status.success() && String::from_utf8_lossy(&o.stderr).contains("not present"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn thread_counts_run_alternately_with_a_scaling_table() {
    let model = small_model();
    let json = tmp("bench-scaling.json");
    let (out, _) = bench(&[
        "--model",
        model.to_str().unwrap(),
        "--threads",
        "1,2",
        "--batch",
        "3",
        "--seq-len",
        "40",
        "--iters",
        "2",
        "--warmup",
        "0",
        "--json",
        json.to_str().unwrap(),
    ]);
    assert!(out.contains("thread scaling") && out.contains("2 thread(s)"), "{out}");
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let schema = schema();
    validate(&doc, &schema, "$").unwrap();
    assert_eq!(doc["threads"], 2, "the full report is the last count's");
    let sc = doc["scaling"].as_array().unwrap();
    assert_eq!(sc.iter().map(|s| s["threads"].as_u64().unwrap()).collect::<Vec<_>>(), vec![1, 2]);
    assert_eq!(sc[0]["dense_speedup"].as_f64().unwrap(), 1.0);
    assert!(sc.iter().all(|s| s["pruned_median_ms"].as_f64().is_some_and(|m| m > 0.0)));
    assert_eq!(sc[1]["dense_median_ms"], doc["runs"][0]["median_ms"]);
    // One count: no scaling table.
    let (out, _) = bench(&["--model", model.to_str().unwrap(), "--iters", "1", "--warmup", "0"]);
    assert!(!out.contains("thread scaling"), "{out}");
    let o = Command::new(bin("engine-bench")).args(["--threads", "1,x"]).output().unwrap();
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("--threads expects"));
}

#[test]
fn bf16_weights_run_and_are_reported() {
    let model = small_model();
    let json = tmp("bench-bf16.json");
    let (out, err) = bench(&[
        "--model",
        model.to_str().unwrap(),
        "--dtype",
        "bf16",
        "--iters",
        "1",
        "--warmup",
        "0",
        "--json",
        json.to_str().unwrap(),
    ]);
    assert!(out.contains("bf16 weights on") && err.contains("bf16 weights on"), "{out}\n{err}");
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let schema = schema();
    validate(&doc, &schema, "$").unwrap();
    assert_eq!(doc["precision"], "bf16");
    assert!(doc["gemm_kernel"].as_str().is_some_and(|g| g.contains("bf16")), "{}", doc["gemm_kernel"]);
    let o = Command::new(bin("engine-bench")).args(["--dtype", "int4"]).output().unwrap();
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("unknown dtype"));
}
