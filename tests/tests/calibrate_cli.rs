//! `toprt-calibrate` as a user runs it: a calibrated file that is deterministic, says how
//! it was made (`toprt inspect`), and runs; and clear errors that leave nothing behind.

use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use toprt_tests::*;

fn tmp(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name)
}

fn run(name: &str, args: &[&std::ffi::OsStr]) -> Output {
    Command::new(workspace_bin(name)).args(args).stdin(Stdio::null()).output().unwrap()
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// The tiny BERT fixture as an f32 file, and a JSONL of `n` distinct sentences.
fn inputs(tag: &str, n: usize) -> (PathBuf, PathBuf) {
    let model = tmp(&format!("calib-{tag}.toprt"));
    std::fs::write(&model, convert_bytes(&fixture("tiny-bert-st"))).unwrap();
    let data = tmp(&format!("calib-{tag}.jsonl"));
    let words = ["the", "film", "is", "a", "quiet", "and", "charming", "mess", "of", "ideas", "never", "dull"];
    let lines: String = (0..n)
        .map(|i| {
            let s: Vec<&str> = (0..3 + i % 9).map(|j| words[(i * 7 + j * 5) % words.len()]).collect();
            format!("{}\n", json!({"text": s.join(" "), "label": i % 2}))
        })
        .collect();
    std::fs::write(&data, lines).unwrap();
    (model, data)
}

fn calibrate(model: &Path, data: &Path, out: &Path, extra: &[&str]) -> Output {
    let mut args: Vec<&std::ffi::OsStr> =
        vec![model.as_os_str(), "--data".as_ref(), data.as_os_str(), "-o".as_ref(), out.as_os_str()];
    args.extend(["--dtype", "int8", "--threads", "2"].iter().map(|s| -> &std::ffi::OsStr { s.as_ref() }));
    args.extend(extra.iter().map(|s| s.as_ref() as &std::ffi::OsStr));
    run("toprt-calibrate", &args)
}

#[test]
fn calibrated_file_is_deterministic_inspectable_and_runs() {
    let (model, data) = inputs("ok", 40);
    let (a, b) = (tmp("calib-a.toprt"), tmp("calib-b.toprt"));
    for out in [&a, &b] {
        let _ = std::fs::remove_file(out);
        let o = calibrate(&model, &data, out, &["--limit", "32", "--outliers", "2"]);
        assert!(o.status.success(), "{}", text(&o));
        // Progress and the per-linear table go to stderr; nothing to stdout.
        assert!(o.stdout.is_empty() && String::from_utf8_lossy(&o.stderr).contains("runs in"), "{}", text(&o));
    }
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap(), "same inputs, different files");
    let o = run("toprt", &["inspect".as_ref(), a.as_os_str()]);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(t.contains("weights:     int8") && t.contains("chosen by toprt-calibrate"), "{t}");
    assert!(t.contains("calibration: 32 texts") && t.contains("2 outlier channels per linear"), "{t}");
    // Another seed draws other texts: another file.
    let c = tmp("calib-c.toprt");
    let o = calibrate(&model, &data, &c, &["--limit", "32", "--outliers", "2", "--seed", "5", "--force"]);
    assert!(o.status.success(), "{}", text(&o));
    assert_ne!(std::fs::read(&a).unwrap(), std::fs::read(&c).unwrap(), "--seed changed nothing");
    let m = open_model(&std::fs::read(&a).unwrap());
    assert_eq!(m.precision(), toprt::Precision::Int8);
    let mut s = toprt::Session::new(&m, &toprt::SessionOptions::default()).unwrap();
    let out = s.run(&[toprt::Input::Text("a quiet film")], toprt::Outputs::default()).unwrap();
    assert!(out[0].logits.as_ref().is_some_and(|l| l.len() == 3 && l.iter().all(|v| v.is_finite())));
    // A bound nothing meets keeps every linear in f32, and says so: the file runs as f32.
    let o = calibrate(&model, &data, &c, &["--bound", "1e-9", "--force"]);
    assert!(o.status.success() && text(&o).contains("holds no int8 linear"), "{}", text(&o));
    let all_f32 = open_model(&std::fs::read(&c).unwrap());
    let q = all_f32.manifest().quantization.as_ref().expect("the calibration is recorded");
    assert_eq!(q.f32_linears.len(), 4 * all_f32.manifest().model.num_layers, "{:?}", q.f32_linears);
    assert_eq!(all_f32.precision(), toprt::Precision::F32);
}

fn open_model(bytes: &[u8]) -> toprt::Model {
    toprt::Model::from_bytes(bytes, &toprt::OpenOptions::default()).unwrap()
}

#[test]
fn calibration_errors_are_clear_and_write_nothing() {
    let (model, data) = inputs("err", 40);
    let (few_model, few) = inputs("few", 5);
    let out = tmp("calib-err-out.toprt");
    let _ = std::fs::remove_file(&out);
    let missing = tmp("calib-no-such.jsonl");
    let bf16 = tmp("calib-bf16.toprt");
    std::fs::write(&bf16, toprt_convert::writer::with_bf16_weights(&convert_bytes(&fixture("tiny-bert-st"))).unwrap())
        .unwrap();
    let not_text = tmp("calib-bad.tsv");
    std::fs::write(&not_text, "id\tscore\n1\t2\n").unwrap();
    for (model, data, want) in [
        (&model, &missing, "calib-no-such.jsonl"),
        (&few_model, &few, "calibration needs at least 16"),
        (&model, &not_text, "no 'text'"),
        (&bf16, &data, "f32"),
        (&data, &data, "calib-err.jsonl"),
    ] {
        let o = calibrate(model, data, &out, &[]);
        let t = text(&o);
        assert_eq!(o.status.code(), Some(1), "{t}");
        assert!(t.contains(want), "wanted {want:?} in: {t}");
        assert!(!t.contains("panicked"), "{t}");
        assert!(!out.exists(), "a failed calibration left {}", out.display());
    }
    // No --dtype: nothing to do. An existing output without --force: refused, untouched.
    let o = run(
        "toprt-calibrate",
        &[model.as_os_str(), "--data".as_ref(), data.as_os_str(), "-o".as_ref(), out.as_os_str()],
    );
    assert!(!o.status.success() && text(&o).contains("--dtype int8"), "{}", text(&o));
    std::fs::write(&out, b"keep me").unwrap();
    let o = calibrate(&model, &data, &out, &[]);
    assert!(!o.status.success() && text(&o).contains("--force"), "{}", text(&o));
    assert_eq!(std::fs::read(&out).unwrap(), b"keep me");
}

/// `--target-mac-reduction`: keep-rules searched on the text, written with a record that
/// `toprt inspect` shows, a report (JSON and SVG) when asked; with `--dtype int8` too, the
/// file is int8 and pruned. An unreachable target fails with the best reachable, writing
/// nothing.
#[test]
fn keep_rule_search_from_the_command_line() {
    let (model, data) = inputs("rules", 40);
    let out = tmp("calib-rules-out.toprt");
    let report = tmp("calib-rules-report");
    let _ = std::fs::remove_dir_all(&report);
    let args = |extra: &[&str]| -> Vec<std::ffi::OsString> {
        let mut a: Vec<std::ffi::OsString> =
            vec![model.clone().into(), "--data".into(), data.clone().into(), "-o".into(), out.clone().into()];
        a.extend(["--threads", "2", "--force", "--target-mac-reduction", "1.2"].iter().map(|s| s.into()));
        a.extend(extra.iter().map(|s| s.into()));
        a
    };
    let a = args(&["--report", report.to_str().unwrap()]);
    let o = run_owned(&a);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("keep-rules: MAC reduction"), "{}", text(&o));
    let m = open_model(&std::fs::read(&out).unwrap());
    assert_eq!(m.precision(), toprt::Precision::F32);
    assert!(!m.manifest().keep_rules.is_empty());
    let rec = m.manifest().keep_rule_calibration.as_ref().expect("the search is recorded");
    assert!(rec["mac_reduction"].as_f64().unwrap() >= 1.2, "{rec}");
    assert_eq!(rec["data"]["file"], "calib-rules.jsonl");
    let o = run("toprt", &["inspect".as_ref(), out.as_os_str()]);
    assert!(text(&o).contains("calibrated:  by toprt-calibrate on 40 texts"), "{}", text(&o));
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(report.join("keep_rules.json")).unwrap()).unwrap();
    assert!(json["front"].as_array().unwrap().len() >= 2 && json["uniform_top_k"].as_array().is_some(), "{json}");
    let svg = std::fs::read_to_string(report.join("keep_rules.svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("uniform top-k") && svg.trim_end().ends_with("</svg>"));
    // Both at once: int8, then the rules searched in int8.
    let o = run_owned(&args(&["--dtype", "int8"]));
    assert!(o.status.success(), "{}", text(&o));
    let m = open_model(&std::fs::read(&out).unwrap());
    assert_eq!(m.precision(), toprt::Precision::Int8);
    assert_eq!(m.manifest().keep_rule_calibration.as_ref().unwrap()["teacher"], "dense, int8");
    // Out of reach: an error naming the best reachable, no file.
    std::fs::remove_file(&out).unwrap();
    let mut a = args(&[]);
    let at = a.iter().position(|s| s == "1.2").unwrap();
    a[at] = "40".into();
    let o = run_owned(&a);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("out of reach") && text(&o).contains("best reached"), "{}", text(&o));
    assert!(!out.exists());
    // A speedup no schedule gives: measured, refused, no file (timing decides nothing
    // else here: 40x is out of reach on any machine).
    let mut a = args(&[]);
    let at = a.iter().position(|s| s == "--target-mac-reduction").unwrap();
    a[at] = "--target-speedup".into();
    a[at + 1] = "40".into();
    let o = run_owned(&a);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("speedup 40.00x is out of reach"), "{}", text(&o));
    assert!(!out.exists());
    // Both targets at once: refused.
    let mut a = args(&["--target-speedup", "1.5"]);
    a.retain(|s| s != "--force");
    let o = run_owned(&a);
    assert!(!o.status.success() && text(&o).contains("--target-speedup"), "{}", text(&o));
}

fn run_owned(args: &[std::ffi::OsString]) -> Output {
    let a: Vec<&std::ffi::OsStr> = args.iter().map(|s| s.as_os_str()).collect();
    run("toprt-calibrate", &a)
}
