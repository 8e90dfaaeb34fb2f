//! The converter's output is durable and reproducible:
//!
//! * the same input and options give byte-identical files, within one process and
//!   across processes (safetensors and `pytorch_model.bin`, with and without
//!   keep-rules);
//! * a conversion killed with SIGKILL at any moment leaves either no output or the
//!   complete file, never a partial one, and the next run succeeds and cleans up the
//!   killed run's temporary file;
//! * a conversion that fails (missing tensor, unwritable folder, the output path taken
//!   by a folder, a write that fails half-way) leaves nothing behind.
//!
//! The binaries come from the same target folder as this test (`scripts/test.sh`
//! builds them first).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use toprt::Model;
use toprt_convert::checkpoint::TensorData;
use toprt_convert::{ConvertError, ConvertOptions};
use toprt_tests::*;

fn bin(name: &str) -> PathBuf {
    toprt_tests::workspace_bin(name)
}

/// A fresh, empty folder under the test temp folder.
fn fresh_dir(name: &str) -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Names of the entries of `dir`, sorted.
fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    v.sort();
    v
}

fn temps(dir: &Path) -> Vec<String> {
    listing(dir).into_iter().filter(|n| n.contains(".tmp-")).collect()
}

fn convert_cli(dir: &Path, out: &Path, extra: &[&str]) -> std::process::Output {
    Command::new(bin("toprt-convert")).arg(dir).arg("-o").arg(out).args(extra).stdin(Stdio::null()).output().unwrap()
}

#[test]
fn conversion_is_byte_identical() {
    let manual = ConvertOptions { keep_ratio: Some(vec![0.7]), prune_layers: Some(vec![1]), ..Default::default() };
    let top = ConvertOptions { tokenizer_dir: Some(fixture("tiny-bert-st")), ..Default::default() };
    // (fixture, options, CLI flags for the same options, keep-rules expected)
    let cases: Vec<(&str, ConvertOptions, Vec<String>, bool)> = vec![
        ("tiny-bert-st", ConvertOptions::default(), vec![], false),
        ("tiny-bert-pt", ConvertOptions::default(), vec![], false),
        ("tiny-roberta-st", ConvertOptions::default(), vec![], false),
        ("tiny-roberta-pt", ConvertOptions::default(), vec![], false),
        ("tiny-bert-st", manual, vec!["--keep-ratio".into(), "0.7".into(), "--prune-layers".into(), "1".into()], true),
        (
            "tiny-bert-pt",
            ConvertOptions { keep_count: Some(vec![4]), prune_layers: Some(vec![1]), ..Default::default() },
            vec!["--keep-count".into(), "4".into(), "--prune-layers".into(), "1".into()],
            true,
        ),
        ("top-best", top, vec!["--tokenizer".into(), fixture("tiny-bert-st").to_string_lossy().into_owned()], true),
        ("ltp-tiny", ConvertOptions::default(), vec![], true),
    ];
    let dir = fresh_dir("determinism");
    for (k, (name, opts, flags, rules)) in cases.into_iter().enumerate() {
        let a = dir.join(format!("{k}-a.toprt"));
        let b = dir.join(format!("{k}-b.toprt"));
        toprt_convert::convert(&fixture(name), &a, &opts).unwrap_or_else(|e| panic!("{name}: {e}"));
        toprt_convert::convert(&fixture(name), &b, &opts).unwrap_or_else(|e| panic!("{name}: {e}"));
        let (ba, bb) = (std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
        assert_eq!(ba, bb, "{name} (case {k}): two conversions in one process differ");
        let m = Model::open(&a).unwrap();
        assert_eq!(!m.manifest().keep_rules.is_empty(), rules, "{name} (case {k}): keep-rules");
        // Across processes (different hash seeds, allocation patterns); LTP reads its
        // schedule from the checkpoint, so no flags are needed there either.
        {
            let c = dir.join(format!("{k}-cli.toprt"));
            let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
            let o = convert_cli(&fixture(name), &c, &flags);
            assert!(o.status.success(), "{name}: {}", String::from_utf8_lossy(&o.stderr));
            assert_eq!(std::fs::read(&c).unwrap(), ba, "{name} (case {k}): the CLI's file differs from the library's");
        }
    }
    assert!(temps(&dir).is_empty(), "temporary files left: {:?}", temps(&dir));
}

/// Writes a BERT-shaped checkpoint folder (config.json, model.safetensors; no
/// tokenizer) of about `hidden² · 12 · layers + vocab · hidden` floats.
fn synthetic_checkpoint(dir: &Path, hidden: usize, layers: usize) {
    let cfg = toprt_format::ModelConfig {
        hidden_size: hidden,
        num_layers: layers,
        num_heads: hidden / 64,
        intermediate_size: 4 * hidden,
        ..toprt_convert::synthetic::bert_base_config()
    };
    let config = serde_json::json!({
        "model_type": "bert", "architectures": ["BertModel"], "vocab_size": cfg.vocab_size,
        "hidden_size": hidden, "num_hidden_layers": layers, "num_attention_heads": cfg.num_heads,
        "intermediate_size": cfg.intermediate_size, "max_position_embeddings": cfg.max_position_embeddings,
        "type_vocab_size": 2, "layer_norm_eps": 1e-12, "hidden_act": "gelu", "pad_token_id": 0,
    });
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
    let tensors = toprt_convert::synthetic::random_bert(&cfg, 0, 3);
    let mut header = serde_json::Map::new();
    let mut at = 0;
    for t in &tensors {
        let TensorData::F32(v) = &t.data else { unreachable!("synthetic tensors are f32") };
        header.insert(
            t.name.clone(),
            serde_json::json!({"dtype": "F32", "shape": t.shape, "data_offsets": [at, at + 4 * v.len()]}),
        );
        at += 4 * v.len();
    }
    let h = serde_json::to_vec(&header).unwrap();
    let mut out = Vec::with_capacity(8 + h.len() + at);
    out.extend((h.len() as u64).to_le_bytes());
    out.extend(h);
    for t in &tensors {
        let TensorData::F32(v) = &t.data else { unreachable!() };
        out.extend(v.iter().flat_map(|x| x.to_le_bytes()));
    }
    std::fs::write(dir.join("model.safetensors"), out).unwrap();
}

/// When to send SIGKILL: a fixed delay after the start, or a delay after the
/// temporary output file appears (the process is then writing or syncing it).
#[derive(Clone, Copy, Debug)]
enum KillAt {
    AfterStart(Duration),
    AfterTempAppears(Duration),
}

impl std::fmt::Display for KillAt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KillAt::AfterStart(d) => write!(f, "{} ms after the start", d.as_millis()),
            KillAt::AfterTempAppears(d) => write!(f, "{} ms after the temporary file appears", d.as_millis()),
        }
    }
}

/// What one killed run left.
struct Killed {
    /// The process had not finished when it was killed.
    killed_running: bool,
    /// The temporary file existed when the kill was sent.
    temp_seen: bool,
    /// The output file existed afterwards (and was checked complete).
    output: bool,
    /// The temporary files left behind.
    temps: usize,
}

fn kill_run(ckpt: &Path, out: &Path, at: KillAt, reference: &[u8]) -> Killed {
    let dir = out.parent().unwrap();
    let prefix = format!(".{}.tmp-", out.file_name().unwrap().to_string_lossy());
    let mut child = Command::new(bin("toprt-convert"))
        .arg(ckpt)
        .args(["--no-tokenizer", "--force", "-o"])
        .arg(out)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let mut temp_since: Option<Instant> = None;
    let mut finished = false;
    loop {
        if child.try_wait().unwrap().is_some() {
            finished = true;
            break;
        }
        if temp_since.is_none() && listing(dir).iter().any(|n| n.starts_with(&prefix)) {
            temp_since = Some(Instant::now());
        }
        let due = match at {
            KillAt::AfterStart(d) => start.elapsed() >= d,
            KillAt::AfterTempAppears(d) => temp_since.is_some_and(|t| t.elapsed() >= d),
        };
        if due {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(120), "conversion did not finish in 120 s");
        std::thread::sleep(Duration::from_micros(500));
    }
    let temp_seen = listing(dir).iter().any(|n| n.starts_with(&prefix));
    let killed_running = !finished && child.try_wait().unwrap().is_none();
    let _ = child.kill();
    let _ = child.wait();
    let output = out.exists();
    if output {
        let bytes = std::fs::read(out).unwrap();
        assert!(Model::open(out).is_ok(), "{at:?}: the output exists but does not open");
        assert_eq!(bytes, reference, "{at:?}: the output exists but differs from a complete conversion");
    }
    Killed { killed_running, temp_seen, output, temps: temps(dir).len() }
}

#[test]
fn killed_conversion_leaves_no_partial_file() {
    let ckpt = fresh_dir("kill-ckpt");
    synthetic_checkpoint(&ckpt, 256, 4);
    let dir = fresh_dir("kill-out");
    let out = dir.join("model.toprt");
    let t = Instant::now();
    let o = convert_cli(&ckpt, &out, &["--no-tokenizer"]);
    let full = t.elapsed();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let reference = std::fs::read(&out).unwrap();
    let mut report = format!(
        "\nconversion of a {:.0} MB synthetic checkpoint: {:.0} ms\n\n| SIGKILL at | still running | temporary file seen | output afterwards | temporary files left |\n|---|---|---|---|---|\n",
        reference.len() as f64 / 1e6,
        full.as_secs_f64() * 1e3
    );
    let mut plan: Vec<KillAt> = [0.0, 0.25, 0.5, 0.75, 0.9]
        .iter()
        .map(|f| KillAt::AfterStart(full.mul_f64(*f)))
        .chain([0, 2, 10].map(|ms| KillAt::AfterTempAppears(Duration::from_millis(ms))))
        .collect();
    let mut mid_write = 0;
    let mut k = 0;
    while k < plan.len() {
        std::fs::remove_file(&out).ok();
        let r = kill_run(&ckpt, &out, plan[k], &reference);
        report += &format!(
            "| {} | {} | {} | {} | {} |\n",
            plan[k],
            r.killed_running,
            r.temp_seen,
            if r.output { "complete file" } else { "none" },
            r.temps
        );
        // A kill that lands after the rename (while the folder is synced, or the process
        // exits) leaves the complete file, which `kill_run` has checked byte for byte;
        // one that lands before it must leave no output and the temporary file.
        if r.killed_running && r.temp_seen && !r.output {
            mid_write += 1;
            assert!(r.temps >= 1, "killed while writing, yet no temporary file is left");
        }
        if !r.killed_running {
            assert!(r.output && r.temps == 0, "a finished run must leave exactly the output");
        }
        // The next run succeeds and removes the killed run's temporary file.
        let o = convert_cli(&ckpt, &out, &["--no-tokenizer", "--force"]);
        assert!(o.status.success(), "run after a kill failed: {}", String::from_utf8_lossy(&o.stderr));
        assert_eq!(std::fs::read(&out).unwrap(), reference);
        assert_eq!(listing(&dir), ["model.toprt"], "left behind after the run that followed a kill");
        // The machine may be too fast or too slow for the planned instants: retry the
        // "while writing" kill until it hits at least once (at most 5 more times).
        if k + 1 == plan.len() && mid_write == 0 && plan.len() < 13 {
            plan.push(KillAt::AfterTempAppears(Duration::ZERO));
        }
        k += 1;
    }
    println!("{}", report.replace(env!("CARGO_TARGET_TMPDIR"), "<tmp>"));
    assert!(mid_write >= 1, "no kill landed while the file was being written:{report}");
}

#[test]
fn failed_conversion_leaves_nothing() {
    let mut table = String::from("\n| failure | error | folder afterwards |\n|---|---|---|\n");
    // A missing tensor: detected before anything is written.
    let ckpt = fresh_dir("fail-missing-ckpt");
    for e in std::fs::read_dir(fixture("tiny-bert-st")).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), ckpt.join(e.file_name())).unwrap();
    }
    let st = ckpt.join("model.safetensors");
    let mut ts = toprt_convert::checkpoint::safetensors::parse(&std::fs::read(&st).unwrap()).unwrap();
    ts.retain(|t| t.name != "bert.encoder.layer.0.output.dense.weight");
    std::fs::write(&st, safetensors_bytes(&ts)).unwrap();
    let dir = fresh_dir("fail-missing-out");
    let e = toprt_convert::convert(&ckpt, &dir.join("m.toprt"), &Default::default()).unwrap_err();
    assert!(matches!(e, ConvertError::MissingTensor { .. }), "{e}");
    assert!(listing(&dir).is_empty(), "{:?}", listing(&dir));
    table += &format!("| checkpoint lacks a tensor | {e} | empty |\n");

    let good = fixture("tiny-bert-st");
    // The output path is taken by a folder (with --force): the file is written and
    // synced, then the rename fails; the temporary file must go.
    let dir = fresh_dir("fail-isdir");
    std::fs::create_dir(dir.join("m.toprt")).unwrap();
    std::fs::write(dir.join("m.toprt").join("keep"), b"x").unwrap();
    let opts = ConvertOptions { force: true, ..Default::default() };
    let e = toprt_convert::convert(&good, &dir.join("m.toprt"), &opts).unwrap_err();
    assert!(matches!(e, ConvertError::Io { .. }) && e.to_string().contains("m.toprt"), "{e}");
    assert_eq!(listing(&dir), ["m.toprt"]);
    assert_eq!(listing(&dir.join("m.toprt")), ["keep"]);
    table += &format!("| output path is a non-empty folder, `--force` | {e} | unchanged |\n");

    // The output folder does not exist.
    let dir = fresh_dir("fail-nodir");
    let e = toprt_convert::convert(&good, &dir.join("missing/m.toprt"), &Default::default()).unwrap_err();
    assert!(e.to_string().contains("missing/m.toprt"), "{e}");
    assert!(listing(&dir).is_empty());
    table += &format!("| output folder does not exist | {e} | empty |\n");

    // A write that fails half-way: the file-size limit (RLIMIT_FSIZE) of a child shell
    // makes write() fail with EFBIG (SIGXFSZ ignored) after 16 KiB.
    let dir = fresh_dir("fail-fsize");
    let out = dir.join("m.toprt");
    let script = "trap '' XFSZ; ulimit -f 16; exec \"$0\" \"$1\" -o \"$2\"";
    let o = Command::new("bash")
        .args(["-c", script])
        .arg(bin("toprt-convert"))
        .arg(&good)
        .arg(&out)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr).lines().next().unwrap_or("").to_string();
    assert!(!o.status.success(), "the size-limited conversion succeeded");
    assert!(err.contains("File too large") && err.contains("m.toprt"), "{err}");
    assert!(listing(&dir).is_empty(), "{:?}", listing(&dir));
    table += &format!("| write fails after 16 KiB (file size limit) | {err} | empty |\n");

    // A read-only folder. Root may write anyway; then this case is skipped, saying so.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let dir = fresh_dir("fail-readonly");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o555)).unwrap();
        let probe = dir.join("probe");
        if std::fs::write(&probe, b"").is_ok() {
            std::fs::remove_file(&probe).unwrap();
            table += "| read-only folder | skipped: this user (root) can write to read-only folders | |\n";
        } else {
            let e = toprt_convert::convert(&good, &dir.join("m.toprt"), &Default::default()).unwrap_err();
            assert!(e.to_string().contains("m.toprt"), "{e}");
            assert!(listing(&dir).is_empty());
            table += &format!("| read-only folder | {e} | empty |\n");
        }
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    // Without --force an existing file is never replaced, even one that appears after
    // the first check (the final step is a hard link, which refuses to replace).
    let dir = fresh_dir("fail-exists");
    let out = dir.join("m.toprt");
    let image = convert_bytes(&good);
    std::fs::write(&out, b"precious").unwrap();
    let e = toprt_convert::writer::write_atomic(&out, &image, false).unwrap_err();
    assert!(matches!(e, ConvertError::OutputExists(_)), "{e}");
    assert_eq!(std::fs::read(&out).unwrap(), b"precious");
    assert_eq!(listing(&dir), ["m.toprt"]);
    table += &format!("| output exists, no `--force` | {e} | unchanged |\n");
    // The folders are this machine's; the table shows them as `<tmp>`.
    println!("{}", table.replace(env!("CARGO_TARGET_TMPDIR"), "<tmp>"));
}

#[test]
fn stale_temp_files_do_not_block_or_linger() {
    let dir = fresh_dir("stale");
    let out = dir.join("m.toprt");
    // Temporary files of writers that are gone (pids just below the kernel's largest,
    // 2^22, which no live process here has), one of a live process (this one), and one
    // for another output; only the dead writers' are removed.
    let dead = [".m.toprt.tmp-4194303-0", ".m.toprt.tmp-4194302"];
    let live = format!(".m.toprt.tmp-{}-999", std::process::id());
    let other = ".other.toprt.tmp-4194303-0";
    for n in dead.iter().copied().chain([live.as_str(), other]) {
        std::fs::write(dir.join(n), b"partial").unwrap();
    }
    toprt_convert::writer::write_atomic(&out, &convert_bytes(&fixture("tiny-bert-st")), false).unwrap();
    assert!(Model::open(&out).is_ok());
    let mut want = vec!["m.toprt".to_string(), live, other.to_string()];
    want.sort();
    if cfg!(target_os = "linux") {
        assert_eq!(listing(&dir), want, "stale temporary files of dead writers are removed; others are kept");
    } else {
        assert!(listing(&dir).contains(&"m.toprt".to_string()));
    }
}
