//! The C interface as C programs use it:
//!
//! * `include/toprt.h` agrees with `engine/src/capi/` (functions and their parameter
//!   types, constants, struct layouts as a C compiler lays them out) and with the
//!   symbols `libtoprt.so` exports;
//! * `examples/c/classify.c`, built with `cc` against `libtoprt.a`, prints the same ids,
//!   logits (as raw bits), labels and kept positions as the Rust API, for a dense and a
//!   pruned model;
//! * `tests/c/bad_args.c` calls every function with bad arguments and gets an error
//!   code and a message each time;
//! * both C programs run clean under valgrind memcheck;
//! * the static library links with nothing but libc, libm, libpthread and libdl.
//!
//! The library is built by `cargo build` with this test's profile (`scripts/test.sh`
//! builds it first; here that is a no-op unless sources changed).

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use toprt::{Input, Model, Outputs, PruneControl, Session, SessionOptions};
use toprt_tests::*;

/// The libraries the README's link line names (besides the static library itself).
const LINK_LIBS: &[&str] = &["-lm", "-lpthread", "-ldl"];
/// Warnings are errors, so the header stays clean under strict C.
const C_FLAGS: &[&str] = &["-std=c11", "-O1", "-g", "-Wall", "-Wextra", "-Werror", "-pedantic"];

fn tmp(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name)
}

/// `target/<profile>`: the folder above this test binary's `deps/`.
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent().and_then(|d| d.parent()).unwrap().to_path_buf()
}

fn output_text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// Runs a command with a deadline, so that a blocked child fails the test instead of
/// hanging it.
fn run_with_deadline(cmd: &mut Command, limit: Duration, what: &str) -> Output {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
    // Drain the pipes on threads, so that a chatty child never blocks on a full pipe.
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let out_t = std::thread::spawn(move || {
        let mut v = Vec::new();
        std::io::Read::read_to_end(&mut out, &mut v).map(|_| v).unwrap_or_default()
    });
    let err_t = std::thread::spawn(move || {
        let mut v = Vec::new();
        std::io::Read::read_to_end(&mut err, &mut v).map(|_| v).unwrap_or_default()
    });
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            let so = String::from_utf8_lossy(&out_t.join().unwrap()).into_owned();
            let se = String::from_utf8_lossy(&err_t.join().unwrap()).into_owned();
            panic!("{what} did not finish within {limit:?}; killed it.\nstdout:\n{so}\nstderr:\n{se}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output { status, stdout: out_t.join().unwrap(), stderr: err_t.join().unwrap() }
}

/// Newest modification time of the files under `dir` (recursively).
fn newest_mtime(dir: &Path) -> std::time::SystemTime {
    let mut newest = std::time::SystemTime::UNIX_EPOCH;
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        let t = if p.is_dir() { newest_mtime(&p) } else { e.metadata().and_then(|m| m.modified()).unwrap_or(newest) };
        newest = newest.max(t);
    }
    newest
}

/// `libtoprt.a` from this test's target folder, built by
/// `cargo build --release --workspace --lib --bins` (scripts/test.sh does that first).
/// The test does not run cargo itself: a nested build can re-resolve features and
/// rewrite libraries other test binaries of the same `cargo test` still use. A missing
/// library, or one older than the engine or kernel sources, fails with instructions.
fn static_lib() -> &'static Path {
    static LIB: OnceLock<PathBuf> = OnceLock::new();
    LIB.get_or_init(|| {
        let dir = profile_dir();
        let profile = dir.file_name().and_then(OsStr::to_str).unwrap_or("release").to_string();
        let lib = dir.join("libtoprt.a");
        let hint = format!("run `cargo build --{profile} --workspace --lib --bins` first (scripts/test.sh does)");
        assert!(lib.is_file(), "{} is missing: {hint}", lib.display());
        let built = std::fs::metadata(&lib).and_then(|m| m.modified()).unwrap();
        for src in ["engine/src", "kernels/src", "format/src", "engine/Cargo.toml"] {
            let p = root().join(src);
            let newest =
                if p.is_dir() { newest_mtime(&p) } else { std::fs::metadata(&p).and_then(|m| m.modified()).unwrap() };
            assert!(newest <= built, "{} is older than {src}: {hint}", lib.display());
        }
        lib
    })
}

/// Converts a checkpoint folder into a file under the test temp folder (once per name).
fn converted(name: &str, dir: &str, tokenizer: Option<&str>) -> PathBuf {
    let out = tmp(name);
    let opts =
        toprt_convert::ConvertOptions { tokenizer_dir: tokenizer.map(fixture), force: true, ..Default::default() };
    toprt_convert::convert(&fixture(dir), &out, &opts).unwrap_or_else(|e| panic!("converting {dir}: {e}"));
    out
}

/// `tests/fixtures/tiny-bert-st`: a dense 3-class classifier with a tokenizer.
fn dense_model() -> &'static Path {
    static M: OnceLock<PathBuf> = OnceLock::new();
    M.get_or_init(|| converted("capi-dense.toprt", "tiny-bert-st", None))
}

/// `tests/fixtures/top-best` (a ToP checkpoint with keep-rules), with the tokenizer of
/// tiny-bert-st.
fn pruned_model() -> &'static Path {
    static M: OnceLock<PathBuf> = OnceLock::new();
    M.get_or_init(|| converted("capi-pruned.toprt", "top-best", Some("tiny-bert-st")))
}

/// Compiles one C file against the header and the static library with the README's
/// link line.
fn compile_c(src: &Path, name: &str, extra: &[&str]) -> PathBuf {
    let exe = tmp(name);
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let mut cmd = Command::new(&cc);
    cmd.args(C_FLAGS).arg("-I").arg(root().join("include")).arg(src).arg(static_lib()).args(LINK_LIBS).args(extra);
    cmd.arg("-o").arg(&exe);
    let o = cmd.output().unwrap_or_else(|e| panic!("cannot run the C compiler `{cc}`: {e}"));
    assert!(o.status.success(), "compiling {} failed:\n{:?}\n{}", src.display(), cmd, output_text(&o));
    exe
}

fn classify_exe() -> &'static Path {
    static E: OnceLock<PathBuf> = OnceLock::new();
    E.get_or_init(|| compile_c(&root().join("examples/c/classify.c"), "capi-classify", &[]))
}

fn bad_args_exe() -> &'static Path {
    static E: OnceLock<PathBuf> = OnceLock::new();
    E.get_or_init(|| compile_c(&root().join("tests/c/bad_args.c"), "capi-bad-args", &[]))
}

// ---- the example against the Rust API ----------------------------------------------

/// What `classify` prints for one input, or what the Rust API says it should print.
#[derive(Debug, Default, PartialEq)]
struct Printed {
    ids: Vec<u32>,
    truncated: bool,
    logits_bits: Vec<u32>,
    argmax: usize,
    label: String,
    kept: Vec<(usize, usize, Vec<u32>)>,
}

fn parse_classify(stdout: &str) -> BTreeMap<usize, Printed> {
    let mut all: BTreeMap<usize, Printed> = BTreeMap::new();
    for line in stdout.lines() {
        let rest = line.strip_prefix("input ").unwrap_or_else(|| panic!("unexpected line: {line}"));
        let (index, rest) = rest.split_once(": ").unwrap();
        let p = all.entry(index.parse().unwrap()).or_default();
        let words: Vec<&str> = rest.split_whitespace().collect();
        match words[0] {
            "tokens" => {
                assert_eq!(words[2], "truncated");
                p.truncated = words[3] == "1";
                p.ids = words[5..].iter().map(|w| w.parse().unwrap()).collect();
                assert_eq!(p.ids.len(), words[1].parse::<usize>().unwrap(), "{line}");
            }
            "logits" => {
                let bits = words.iter().position(|w| *w == "bits").unwrap();
                p.logits_bits = words[bits + 1..]
                    .iter()
                    .map(|w| u32::from_str_radix(w.trim_start_matches("0x"), 16).unwrap())
                    .collect();
                // The decimal print is the same number.
                for (dec, bits) in words[1..bits].iter().zip(&p.logits_bits) {
                    assert_eq!(dec.parse::<f32>().unwrap().to_bits(), *bits, "{line}");
                }
            }
            "argmax" => {
                p.argmax = words[1].parse().unwrap();
                p.label = words[2].to_string();
            }
            "layer" => {
                // layer L kept K of N: positions
                let positions: Vec<u32> = words[6..].iter().map(|w| w.parse().unwrap()).collect();
                assert_eq!(positions.len(), words[3].parse::<usize>().unwrap(), "{line}");
                assert_eq!(words[5].trim_end_matches(':').parse::<usize>().unwrap(), p.ids.len(), "{line}");
                p.kept.push((words[1].parse().unwrap(), positions.len(), positions));
            }
            other => panic!("unexpected line kind {other}: {line}"),
        }
    }
    all
}

/// The Rust API's answer for the same texts and settings, in the same shape.
fn expected(model: &Path, texts: &[&str], pairs: bool, prune: PruneControl) -> BTreeMap<usize, Printed> {
    let model = Model::open(model).unwrap();
    let labels = model.manifest().head.id2label.clone();
    let opts = SessionOptions { threads: 2, prune, ..Default::default() };
    let mut session = Session::new(&model, &opts).unwrap();
    let inputs: Vec<Input> = if pairs {
        texts.chunks(2).map(|c| Input::Pair(c[0], c[1])).collect()
    } else {
        texts.iter().map(|t| Input::Text(t)).collect()
    };
    let out = session.run(&inputs, Outputs::default()).unwrap();
    out.into_iter()
        .enumerate()
        .map(|(i, o)| {
            let logits = o.logits.expect("a classifier");
            // First maximum, as the C example's loop picks it.
            let argmax = (1..logits.len()).fold(0, |best, k| if logits[k] > logits[best] { k } else { best });
            let p = Printed {
                truncated: o.truncated,
                logits_bits: logits.iter().map(|x| x.to_bits()).collect(),
                argmax,
                label: labels.get(argmax).cloned().unwrap_or_else(|| format!("class_{argmax}")),
                kept: o.kept.into_iter().map(|(l, v)| (l, v.len(), v)).collect(),
                ids: o.input_ids,
            };
            (i, p)
        })
        .collect()
}

/// One run of the example: its flags, and the same settings for the Rust API.
struct Case<'a> {
    name: &'a str,
    model: &'a Path,
    texts: Vec<&'a str>,
    pairs: bool,
    ctl: PruneControl,
    flags: Vec<&'a str>,
}

fn long_text() -> String {
    "the quick brown fox jumps over the lazy dog while the cat sleeps ".repeat(80)
}

#[test]
fn c_example_matches_the_rust_api_bit_for_bit() {
    let long = long_text();
    let texts: Vec<&str> = vec![
        "hello world",
        "the quick brown fox",
        "A sentence with UTF-8: café, naïve, 東京.",
        "",
        long.as_str(), // longer than 512 tokens: truncated
    ];
    let pair_texts = ["what is it?", "it is a test of pairs", "another question", "and its rather longer passage"];
    let pruning_texts = [
        "a rather long sentence so that the keep rules have tokens to drop here",
        "short one",
        "the quick brown fox jumps over the lazy dog and keeps running far away",
    ];
    let on = PruneControl::default();
    let half = PruneControl { enabled: true, keep_scale: 0.5 };
    let cases = [
        Case { name: "dense texts", model: dense_model(), texts: texts.clone(), pairs: false, ctl: on, flags: vec![] },
        Case {
            name: "dense pairs",
            model: dense_model(),
            texts: pair_texts.to_vec(),
            pairs: true,
            ctl: on,
            flags: vec!["--pairs"],
        },
        Case {
            name: "pruned",
            model: pruned_model(),
            texts: pruning_texts.to_vec(),
            pairs: false,
            ctl: on,
            flags: vec![],
        },
        Case {
            name: "pruned pairs",
            model: pruned_model(),
            texts: pair_texts.to_vec(),
            pairs: true,
            ctl: on,
            flags: vec!["--pairs"],
        },
        Case {
            name: "pruning off",
            model: pruned_model(),
            texts: pruning_texts.to_vec(),
            pairs: false,
            ctl: PruneControl::DENSE,
            flags: vec!["--no-prune"],
        },
        Case {
            name: "keep-scale 0.5",
            model: pruned_model(),
            texts: pruning_texts.to_vec(),
            pairs: false,
            ctl: half,
            flags: vec!["--keep-scale", "0.5"],
        },
    ];
    let mut any_pruned = false;
    for Case { name, model, texts, pairs, ctl, flags } in cases {
        let o = Command::new(classify_exe())
            .args(&flags)
            .args(["--threads", "2"])
            .arg(model)
            .args(&texts)
            .output()
            .unwrap();
        assert!(o.status.success(), "{name}: classify failed:\n{}", output_text(&o));
        let got = parse_classify(&String::from_utf8(o.stdout).unwrap());
        let want = expected(model, &texts, pairs, ctl);
        assert_eq!(got.len(), texts.len() / if pairs { 2 } else { 1 }, "{name}: one block per input");
        assert_eq!(got, want, "{name}: the C example and the Rust API disagree");
        if name == "dense texts" {
            assert!(got[&4].truncated && got[&4].ids.len() == 512, "{name}: the long text is truncated");
        }
        if name == "pruning off" {
            assert!(got.values().all(|p| p.kept.is_empty()), "{name}: no kept sets when pruning is off");
        }
        any_pruned |= got.values().any(|p| p.kept.iter().any(|(_, n, _)| *n < p.ids.len()));
        println!("{name}: {} inputs agree bit for bit", got.len());
    }
    assert!(any_pruned, "the pruned model dropped no token at all; the comparison proves little");
}

#[test]
fn c_example_reports_errors_with_a_nonzero_exit() {
    let o = Command::new(classify_exe()).arg(tmp("capi-no-such.toprt")).arg("text").output().unwrap();
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("TOPRT_ERR_IO") && err.contains("capi-no-such.toprt"), "{err}");
    let o = Command::new(classify_exe()).arg(dense_model()).output().unwrap();
    assert_eq!(o.status.code(), Some(2), "usage error");
}

// ---- bad arguments -----------------------------------------------------------------

fn check_bad_args_output(o: &Output, what: &str) {
    let text = String::from_utf8_lossy(&o.stdout);
    let summary = text.lines().last().unwrap_or("");
    assert!(
        o.status.success() && summary.ends_with("checks, 0 failed"),
        "{what}: bad_args failed (status {:?}):\n{}",
        o.status,
        output_text(o)
    );
    let checks: usize = summary.split_whitespace().next().unwrap().parse().unwrap();
    assert!(checks >= 200, "{what}: only {checks} checks ran");
    for code in ["NULL_POINTER", "INVALID_ARGUMENT", "INVALID_UTF8", "BUFFER_TOO_SMALL", "BAD_HANDLE", "BUSY"] {
        assert!(text.contains(&format!("TOPRT_ERR_{code}:")), "{what}: no check produced TOPRT_ERR_{code}");
    }
    for code in ["IO", "MODEL", "INPUT", "UNAVAILABLE", "OUT_OF_RANGE"] {
        assert!(text.contains(&format!("TOPRT_ERR_{code}:")), "{what}: no check produced TOPRT_ERR_{code}");
    }
    println!("{what}: {summary}");
}

#[test]
fn c_bad_arguments_get_error_codes_never_a_crash() {
    let o = run_with_deadline(
        Command::new(bad_args_exe()).arg(dense_model()).arg(pruned_model()),
        Duration::from_secs(120),
        "bad_args",
    );
    check_bad_args_output(&o, "bad_args");
}

// ---- valgrind ----------------------------------------------------------------------

/// Blocks that may still be reachable at exit: process-wide caches of dependencies,
/// allocated once and never freed by design. Matched against the allocation stack.
/// toprt itself keeps nothing once every handle is freed (its handle table releases its
/// arrays when it empties), so any other reachable block is a forgotten handle or a
/// cache in toprt, and fails the test.
const KNOWN_REACHABLE: &[(&str, &str)] =
    &[("ahash::random_state", "ahash's process-wide random seeds (ahash is the tokenizers crate's hasher)")];

/// The "still reachable" loss records of a valgrind report, each with its stack.
fn reachable_records(report: &str) -> Vec<String> {
    let mut records = Vec::new();
    let mut current: Option<String> = None;
    for line in report.lines() {
        // Strip the "==PID== " prefix.
        let body = line.split_once("== ").map_or(line, |(_, b)| b);
        if body.contains("are still reachable in loss record") {
            records.extend(current.take());
            current = Some(format!("{body}\n"));
        } else if let Some(r) = current.as_mut() {
            if body.trim().is_empty() {
                records.extend(current.take());
            } else {
                r.push_str(body);
                r.push('\n');
            }
        }
    }
    records.extend(current);
    records
}

/// Runs a program under valgrind memcheck and requires: exit status 0 (memcheck exits
/// with 99 on any error or definite/indirect/possible leak), no errors, nothing lost,
/// and nothing still reachable beyond [`KNOWN_REACHABLE`]. No suppressions are used.
fn memcheck(exe: &Path, args: &[&OsStr], what: &str) -> Output {
    let found = Command::new("valgrind").arg("--version").output().map(|o| o.status.success()).unwrap_or(false);
    assert!(
        found,
        "valgrind is not installed, and the memcheck tests need it: install it (`apt-get install -y valgrind`; \
         scripts/test.sh does this when run as root)"
    );
    let mut cmd = Command::new("valgrind");
    cmd.args([
        "--leak-check=full",
        "--error-exitcode=99",
        "--errors-for-leak-kinds=definite,indirect,possible",
        "--show-leak-kinds=all",
        "--num-callers=40",
    ])
    .arg(exe)
    .args(args);
    // valgrind cannot run AVX-512 code (it hides AVX-512 from CPUID, so the automatic
    // choice never picks it); a forced TOPRT_ISA=avx512 runs automatic here instead.
    if std::env::var("TOPRT_ISA").is_ok_and(|v| v.trim().eq_ignore_ascii_case("avx512")) {
        println!("{what}: TOPRT_ISA=avx512 cleared for valgrind, which does not emulate AVX-512");
        cmd.env_remove("TOPRT_ISA");
    }
    let o = run_with_deadline(&mut cmd, Duration::from_secs(900), &format!("valgrind {what}"));
    let err = String::from_utf8_lossy(&o.stderr);
    let summary: Vec<&str> = err
        .lines()
        .filter(|l| {
            ["in use at exit", "total heap usage", "definitely lost", "indirectly lost", "possibly lost"]
                .iter()
                .chain(&["still reachable", "ERROR SUMMARY", "All heap blocks were freed"])
                .any(|k| l.contains(k))
        })
        .collect();
    println!("{what} under valgrind:\n{}", summary.join("\n"));
    assert!(
        o.status.success(),
        "{what}: valgrind reported errors or leaks (status {:?}):\n{}",
        o.status,
        output_text(&o)
    );
    assert!(err.contains("ERROR SUMMARY: 0 errors from 0 contexts"), "{what}:\n{err}");
    for kind in ["definitely lost", "indirectly lost", "possibly lost"] {
        assert!(
            err.lines().filter(|l| l.contains(kind)).all(|l| l.contains(&format!("{kind}: 0 bytes"))),
            "{what}: {kind}:\n{err}"
        );
    }
    let records = reachable_records(&err);
    for r in &records {
        assert!(
            KNOWN_REACHABLE.iter().any(|(frame, _)| r.contains(frame)),
            "{what}: a block is still reachable at exit and is no known process-wide cache of a dependency: a \
             handle the program did not free, or memory toprt keeps:\n{r}"
        );
    }
    println!("{what}: {} still-reachable records, all known caches: {KNOWN_REACHABLE:?}", records.len());
    o
}

#[test]
fn c_example_under_valgrind() {
    let long = long_text();
    let args: Vec<&OsStr> =
        vec!["--threads".as_ref(), "2".as_ref(), pruned_model().as_os_str(), "hello world".as_ref(), long.as_ref()];
    let o = memcheck(classify_exe(), &args, "classify (pruned model)");
    assert!(String::from_utf8_lossy(&o.stdout).contains("kept"), "the pruned model prints kept sets");
    let args: Vec<&OsStr> =
        vec!["--pairs".as_ref(), dense_model().as_os_str(), "a question".as_ref(), "a passage".as_ref()];
    memcheck(classify_exe(), &args, "classify --pairs (dense model)");
}

#[test]
fn c_bad_arguments_under_valgrind() {
    let o = memcheck(bad_args_exe(), &[dense_model().as_os_str(), pruned_model().as_os_str()], "bad_args");
    check_bad_args_output(&o, "bad_args under valgrind");
}

// ---- linking -----------------------------------------------------------------------

/// Shared libraries an executable needs (`readelf -d`).
fn needed(exe: &Path) -> Vec<String> {
    let o = Command::new("readelf").arg("-d").arg(exe).output().expect("readelf (binutils) is needed by this test");
    assert!(o.status.success(), "{}", output_text(&o));
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter(|l| l.contains("(NEEDED)"))
        .filter_map(|l| l.split('[').nth(1).map(|s| s.trim_end_matches(']').to_string()))
        .collect()
}

fn is_allowed(lib: &str, extra: &[&str]) -> bool {
    let base = lib.split(".so").next().unwrap_or(lib);
    ["libc", "libm", "libpthread", "libdl"].contains(&base) || base.starts_with("ld-linux") || extra.contains(&base)
}

#[test]
fn static_library_needs_only_libc_libm_pthread_dl() {
    // The README's line; `cc` itself adds GCC's unwinder, libgcc_s, as it does for any
    // program that can unwind.
    let libs = needed(classify_exe());
    assert!(libs.iter().all(|l| is_allowed(l, &["libgcc_s"])), "unexpected shared libraries: {libs:?}");
    // With -static-libgcc the unwinder is linked in, and nothing beyond the C library's
    // own parts remains.
    let exe = compile_c(&root().join("examples/c/classify.c"), "capi-classify-static-libgcc", &["-static-libgcc"]);
    let libs = needed(&exe);
    assert!(libs.iter().all(|l| is_allowed(l, &[])), "unexpected shared libraries: {libs:?}");
    let o = Command::new(&exe).arg(dense_model()).arg("it links and runs").output().unwrap();
    assert!(o.status.success(), "{}", output_text(&o));
    println!("NEEDED with the README's line: {:?}; with -static-libgcc: {libs:?}", needed(classify_exe()));
}

// ---- header and Rust side in sync --------------------------------------------------

/// `/* */` and `//` comments removed.
fn strip_comments(src: &str) -> String {
    let mut out = String::new();
    let mut rest = src;
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix("/*") {
            rest = r.split_once("*/").map_or("", |(_, after)| after);
            out.push(' ');
        } else if let Some(r) = rest.strip_prefix("//") {
            rest = r.split_once('\n').map_or("", |(_, after)| after);
            out.push('\n');
        } else {
            let c = rest.chars().next().unwrap();
            out.push(c);
            rest = &rest[c.len_utf8()..];
        }
    }
    out
}

/// A C type as the Rust spelling capi.rs must use for it, e.g. `const toprt_model *` →
/// `*const toprt_model`, `toprt_model **` → `*mut *mut toprt_model`.
fn rust_type_of_c(c: &str) -> String {
    let c = c.replace('*', " * ");
    let tokens: Vec<&str> = c.split_whitespace().collect();
    let stars = tokens.iter().filter(|t| **t == "*").count();
    let base_const = tokens.iter().take_while(|t| **t != "*").any(|t| *t == "const");
    let base = tokens.iter().take_while(|t| **t != "*").find(|t| **t != "const").copied().unwrap_or("?");
    let base = match base {
        "size_t" => "usize",
        "uint32_t" => "u32",
        "int32_t" => "i32",
        "float" => "f32",
        "char" => "c_char",
        "void" if stars > 0 => "c_void",
        "void" => "()",
        other => other,
    };
    let mut t = base.to_string();
    for level in 0..stars {
        let qual = if level == 0 && base_const { "const" } else { "mut" };
        t = format!("*{qual} {t}");
    }
    t
}

/// `name → (return type, parameter types)` of the header's prototypes, in Rust spelling.
fn header_functions(header: &str) -> BTreeMap<String, (String, Vec<String>)> {
    // Drop preprocessor lines and brace blocks (struct and enum bodies, extern "C").
    // The `extern "C" {` wrapper and its lone closing brace go too.
    let no_pp: String = header
        .lines()
        .filter(|l| !l.trim_start().starts_with('#') && l.trim() != "extern \"C\" {" && l.trim() != "}")
        .collect::<Vec<_>>()
        .join("\n");
    let mut flat = String::new();
    let mut depth = 0;
    for c in no_pp.chars() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            _ if depth == 0 => flat.push(c),
            _ => {}
        }
    }
    let mut fns = BTreeMap::new();
    for decl in flat.split(';') {
        let decl = decl.split_whitespace().collect::<Vec<_>>().join(" ");
        if decl.starts_with("typedef") || !decl.contains('(') {
            continue;
        }
        let (head, params) = decl.split_once('(').unwrap();
        let params = params.trim_end().trim_end_matches(')');
        let name_at = head.rfind(|c: char| !(c.is_alphanumeric() || c == '_')).map_or(0, |i| i + 1);
        let (ret, name) = head.split_at(name_at);
        let params: Vec<String> = if params.trim() == "void" {
            vec![]
        } else {
            params
                .split(',')
                .map(|p| {
                    // Drop the parameter name.
                    let p = p.trim();
                    let at = p.rfind(|c: char| !(c.is_alphanumeric() || c == '_')).unwrap();
                    rust_type_of_c(&p[..=at])
                })
                .collect()
        };
        fns.insert(name.to_string(), (rust_type_of_c(ret), params));
    }
    fns
}

/// `name → (return type, parameter types)` of every `extern "C" fn` in `engine/src/capi/`, each of
/// which must be `#[no_mangle]`.
fn rust_functions(src: &str) -> BTreeMap<String, (String, Vec<String>)> {
    let mut fns = BTreeMap::new();
    let mut rest = src;
    while let Some(at) = rest.find("extern \"C\" fn ") {
        let before = &rest[..at];
        let after = &rest[at + "extern \"C\" fn ".len()..];
        let attr_line = before.lines().rev().nth(1).unwrap_or("").trim();
        let (name, sig) = after.split_once('(').unwrap();
        let (params, tail) = sig.split_once(')').unwrap();
        let body_at = tail.find('{').unwrap();
        let ret = tail[..body_at].trim().trim_start_matches("->").trim();
        assert_eq!(attr_line, "#[no_mangle]", "capi.rs: `{name}` is not #[no_mangle]");
        let params: Vec<String> = params
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(|p| p.split_once(':').unwrap().1.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect();
        fns.insert(name.trim().to_string(), (if ret.is_empty() { "()".to_string() } else { ret.to_string() }, params));
        rest = &after[body_at..];
    }
    fns
}

/// Integer constants of the header: `#define NAME value` and `NAME = value` in enums.
fn header_constants(header: &str) -> BTreeMap<String, i64> {
    let parse = |v: &str| -> i64 {
        match v.trim() {
            "((size_t)-1)" => -1,
            v => v.trim_end_matches(['u', 'U']).parse().unwrap_or_else(|_| panic!("constant value {v}")),
        }
    };
    let mut out = BTreeMap::new();
    for line in header.lines() {
        if let Some(d) = line.trim().strip_prefix("#define TOPRT_") {
            if let Some((name, v)) = d.split_once(char::is_whitespace) {
                out.insert(format!("TOPRT_{name}"), parse(v));
            }
        }
    }
    for item in header.split(['{', '}', ',', ';']) {
        if let Some((name, v)) = item.split_once('=') {
            let name = name.trim();
            if name.starts_with("TOPRT_") && !name.contains(char::is_whitespace) {
                out.insert(name.to_string(), parse(v));
            }
        }
    }
    out
}

/// Field names, in order, of each `typedef struct NAME { ... } NAME;`.
fn header_structs(header: &str) -> BTreeMap<String, Vec<String>> {
    let mut out = BTreeMap::new();
    let mut rest = header;
    while let Some(at) = rest.find("typedef struct ") {
        let after = &rest[at + "typedef struct ".len()..];
        let (name, tail) = after.split_once(char::is_whitespace).unwrap();
        let tail = tail.trim_start();
        if let Some(body) = tail.strip_prefix('{') {
            let (body, _) = body.split_once('}').unwrap();
            let fields = body
                .split(';')
                .map(str::trim)
                .filter(|f| !f.is_empty())
                .map(|f| f.rsplit(|c: char| !(c.is_alphanumeric() || c == '_')).next().unwrap().to_string())
                .collect();
            out.insert(name.to_string(), fields);
        }
        rest = after;
    }
    out
}

#[test]
fn header_matches_the_rust_side() {
    let header = strip_comments(&std::fs::read_to_string(root().join("include/toprt.h")).unwrap());
    // Every file of the C interface's module, in name order.
    let mut files: Vec<_> = std::fs::read_dir(root().join("engine/src/capi"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "rs"))
        .collect();
    files.sort();
    let capi: String = files.iter().map(|p| std::fs::read_to_string(p).unwrap()).collect::<Vec<_>>().join("\n");

    // Functions: the same names, return types and parameter types, both ways.
    let c_fns = header_functions(&header);
    let rust_fns = rust_functions(&capi);
    assert!(c_fns.len() >= 25, "parsed only {} prototypes from toprt.h: {c_fns:?}", c_fns.len());
    for (name, sig) in &c_fns {
        let rust = rust_fns.get(name).unwrap_or_else(|| panic!("toprt.h declares {name}, capi.rs lacks it"));
        assert_eq!(rust, sig, "{name}: capi.rs (left) and toprt.h (right) disagree");
    }
    for name in rust_fns.keys() {
        assert!(c_fns.contains_key(name), "capi.rs exports {name}, toprt.h does not declare it");
    }

    // Constants, both ways.
    let c_consts = header_constants(&header);
    let rust_consts: BTreeMap<String, i64> =
        toprt::capi::constants().into_iter().map(|(n, v)| (n.to_string(), v)).collect();
    assert_eq!(c_consts, rust_consts, "constants of toprt.h (left) and capi.rs (right) differ");

    // Structs: the same fields in the same order, and the same offsets and sizes as the
    // C compiler lays them out.
    let c_structs = header_structs(&header);
    let layouts = toprt::capi::struct_layouts();
    let rust_structs: BTreeMap<String, Vec<String>> =
        layouts.iter().map(|l| (l.name.to_string(), l.fields.iter().map(|(f, _)| f.to_string()).collect())).collect();
    assert_eq!(c_structs, rust_structs, "struct fields of toprt.h (left) and capi.rs (right) differ");
    let mut prog = String::from("#include <stddef.h>\n#include <stdio.h>\n#include \"toprt.h\"\nint main(void) {\n");
    let mut want = String::new();
    for toprt::capi::StructLayout { name, size, fields } in &layouts {
        prog += &format!("    printf(\"{name} %zu\\n\", sizeof({name}));\n");
        want += &format!("{name} {size}\n");
        for (f, off) in fields {
            prog += &format!("    printf(\"{name}.{f} %zu\\n\", offsetof({name}, {f}));\n");
            want += &format!("{name}.{f} {off}\n");
        }
    }
    prog += "    return 0;\n}\n";
    let src = tmp("capi-layout.c");
    std::fs::write(&src, prog).unwrap();
    let exe = tmp("capi-layout");
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let o = Command::new(&cc)
        .args(C_FLAGS)
        .arg("-I")
        .arg(root().join("include"))
        .arg(&src)
        .arg("-o")
        .arg(&exe)
        .output()
        .unwrap_or_else(|e| panic!("cannot run the C compiler `{cc}`: {e}"));
    assert!(o.status.success(), "{}", output_text(&o));
    let got = Command::new(&exe).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&got.stdout), want, "struct layouts: C (left) and Rust (right) differ");

    // The header is also valid C99 and C++.
    for (compiler, std) in [(cc.as_str(), "-std=c99"), ("c++", "-std=c++11")] {
        let lang = if compiler == "c++" { "c++" } else { "c" };
        let o = Command::new(compiler)
            .args(["-fsyntax-only", "-Wall", "-Wextra", "-Werror", "-pedantic", std, "-x", lang, "-I"])
            .arg(root().join("include"))
            .arg(root().join("include/toprt.h"))
            .output();
        match o {
            Ok(o) => assert!(o.status.success(), "toprt.h under {compiler} {std}:\n{}", output_text(&o)),
            Err(e) if compiler == "c++" => {
                println!("SKIPPED: no C++ compiler (`c++`: {e}); toprt.h not checked as C++")
            }
            Err(e) => panic!("cannot run {compiler}: {e}"),
        }
    }
}

#[test]
fn shared_library_exports_exactly_the_header_functions() {
    static_lib();
    let so = profile_dir().join("libtoprt.so");
    assert!(so.is_file(), "{} is missing; the engine crate must list crate-type \"cdylib\"", so.display());
    let o = Command::new("nm").args(["-D", "--defined-only"]).arg(&so).output().expect("nm (binutils)");
    assert!(o.status.success(), "{}", output_text(&o));
    let exported: Vec<String> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().nth(2))
        .filter(|s| s.starts_with("toprt_"))
        .map(str::to_string)
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let header = strip_comments(&std::fs::read_to_string(root().join("include/toprt.h")).unwrap());
    let declared: Vec<String> = header_functions(&header).into_keys().collect();
    assert_eq!(exported, declared, "libtoprt.so exports (left) and toprt.h declares (right) different functions");
}
