//! The command lines' own documentation and their argument errors: `--help` of every
//! binary and subcommand names every option (with a description and the defaults),
//! `-h` gives the short form, and a bad value is refused with a one-line error that
//! names the option and the value, before any work starts.

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

fn bin(name: &str) -> PathBuf {
    toprt_tests::workspace_bin(name)
}

fn run(name: &str, args: &[&str]) -> Output {
    Command::new(bin(name)).args(args).stdin(Stdio::null()).output().unwrap()
}

/// Every option of `cmd` (binary, then subcommand if any), as a user types it.
struct Cli {
    cmd: &'static [&'static str],
    options: &'static [&'static str],
    /// Option name and the default `--help` must show for it.
    defaults: &'static [(&'static str, &'static str)],
    /// Facts a user needs that `--help` must state.
    facts: &'static [&'static str],
}

const CLIS: &[Cli] = &[
    Cli {
        cmd: &["toprt", "run"],
        options: &[
            "--model",
            "-m",
            "--input",
            "-i",
            "--output",
            "-o",
            "--batch-size",
            "--threads",
            "--max-length",
            "--no-truncate",
            "--hidden-states",
            "--kept",
            "--no-prune",
            "--keep-scale",
            "--isa",
            "--verbose",
            "-v",
        ],
        defaults: &[("--output", "-"), ("--batch-size", "32"), ("--threads", "0"), ("--keep-scale", "1")],
        facts: &[
            r#"{"text": "#,
            r#""text_pair""#,
            r#"{"input_ids": [101, 7592, 102], "token_type_ids": [0, 0, 0]}"#,
            "`-` reads stdin",
            "`-` writes stdout",
            "one per logical CPU",
            "scalar, portable, avx2 or avx512",
            "last_hidden_state",
            "exit status is 1",
        ],
    },
    Cli {
        cmd: &["toprt", "inspect"],
        options: &["[MODEL]", "--json", "--lengths", "--pad-to", "--cpu"],
        defaults: &[],
        facts: &["16,32,64,128,256,512", "padded to N", "vs unpadded", "default: 128"],
    },
    Cli {
        cmd: &["toprt-convert"],
        options: &[
            "<CHECKPOINT_DIR>",
            "--output",
            "-o",
            "--tokenizer",
            "--no-tokenizer",
            "--pooling",
            "--force",
            "-f",
            "--dtype",
            "--zs",
            "--ltp-ref-len",
            "--keep-ratio",
            "--keep-count",
            "--prune-layers",
        ],
        defaults: &[("--dtype", "f32")],
        facts: &[
            "mean, cls, pooler or none",
            "f32, bf16 or int8",
            "toprt-calibrate",
            "R[,R...]",
            "default: 128",
            "config.json",
        ],
    },
    Cli {
        cmd: &["toprt-calibrate"],
        options: &[
            "<MODEL>",
            "--data",
            "--output",
            "-o",
            "--force",
            "-f",
            "--dtype",
            "--limit",
            "--seed",
            "--outliers",
            "--bound",
            "--target-mac-reduction",
            "--target-speedup",
            "--labels",
            "--batch",
            "--threads",
            "--report",
        ],
        defaults: &[
            ("--limit", "512"),
            ("--seed", "0"),
            ("--outliers", "8"),
            ("--bound", "0.02"),
            ("--batch", "32"),
            ("--threads", "0"),
        ],
        facts: &["JSONL", "TSV", "byte-identical", "toprt inspect", "stays f32", "teacher", "keep_rules.svg"],
    },
    Cli {
        cmd: &["engine-bench"],
        options: &[
            "--model",
            "--batch",
            "--seq-len",
            "--lengths",
            "--input",
            "--tokenizer",
            "--limit",
            "--threads",
            "--iters",
            "--warmup",
            "--isa",
            "--json",
            "--svg",
            "--no-prune",
            "--mmap",
            "--pad-to",
            "--dtype",
            "--compare",
        ],
        defaults: &[("--batch", "1"), ("--seq-len", "128"), ("--threads", "1"), ("--warmup", "2"), ("--dtype", "f32")],
        facts: &["engine-bench --compare <A.json> <B.json>", "N[,N...]", "up to eight", "padded to N", "schema"],
    },
];

/// The option's entry in a help text: its declaration (`-o, --output <FILE>`, `--json`,
/// `<MODEL>`) and its description (the rest of the line, and the lines below it up to
/// the next declaration).
fn entry(help: &str, option: &str) -> Option<(String, String)> {
    let indent = |l: &str| l.len() - l.trim_start().len();
    let is_decl = |l: &str| matches!(indent(l), 2 | 6) && l.trim_start().starts_with(['-', '<', '[']);
    let declares = |l: &str| {
        let decl = l.trim_start().split("  ").next().unwrap_or_default();
        is_decl(l) && decl.split([',', ' ']).any(|w| w == option)
    };
    let lines: Vec<&str> = help.lines().collect();
    let at = lines.iter().position(|l| declares(l))?;
    let first = lines[at].trim_start();
    let (decl, rest) = first.split_once("  ").unwrap_or((first, ""));
    let mut text = rest.trim().to_string();
    for l in lines[at + 1..].iter().take_while(|l| !is_decl(l) && (l.trim().is_empty() || indent(l) > 6)) {
        text.push(' ');
        text.push_str(l.trim());
    }
    Some((decl.to_string(), text))
}

#[test]
fn help_lists_every_option_with_its_meaning_and_default() {
    for c in CLIS {
        let what = c.cmd.join(" ");
        let long = run(c.cmd[0], &[&c.cmd[1..], &["--help"]].concat());
        let short = run(c.cmd[0], &[&c.cmd[1..], &["-h"]].concat());
        assert!(long.status.success() && short.status.success(), "{what} --help / -h failed");
        assert!(long.stderr.is_empty() && short.stderr.is_empty(), "{what}: help goes to stdout");
        let (long, short) = (String::from_utf8(long.stdout).unwrap(), String::from_utf8(short.stdout).unwrap());
        assert!(short.len() < long.len(), "{what}: -h is not the short form");
        assert!(long.contains(&format!("Usage: {what}")), "{what} --help has no usage line:\n{long}");
        // A description of the command before its usage line.
        let about = long.split("Usage:").next().unwrap();
        assert!(about.split_whitespace().count() >= 5, "{what} --help does not say what it does:\n{long}");
        for help in [&long, &short] {
            for opt in c.options {
                let (decl, text) =
                    entry(help, opt).unwrap_or_else(|| panic!("{what} help does not list {opt}:\n{help}"));
                assert!(text.split_whitespace().count() >= 4, "{what}: {decl} has no description: {text:?}");
            }
        }
        for (opt, default) in c.defaults {
            let (decl, text) = entry(&long, opt).unwrap();
            assert!(
                text.contains(&format!("[default: {default}]")),
                "{what}: {decl} does not show its default: {text}"
            );
        }
        for fact in c.facts {
            assert!(long.contains(fact), "{what} --help does not mention {fact:?}:\n{long}");
        }
    }
    // The top level of `toprt` lists its commands; `toprt help run` is `toprt run --help`.
    let top = String::from_utf8(run("toprt", &["--help"]).stdout).unwrap();
    assert!(top.contains("run ") && top.contains("inspect ") && top.contains("toprt-convert"), "{top}");
    assert_eq!(run("toprt", &["help", "run"]).stdout, run("toprt", &["run", "--help"]).stdout);
}

/// Runs a command line that must be refused as a usage error; returns its stderr.
fn refused(name: &str, args: &[&str]) -> String {
    let o = run(name, args);
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(1), "{name} {args:?}: exit {:?}, stderr {err}", o.status);
    assert!(o.stdout.is_empty(), "{name} {args:?} wrote to stdout");
    assert_eq!(err.trim_end().lines().count(), 1, "{name} {args:?}: error is not one line:\n{err}");
    assert!(err.starts_with(&format!("{name}: error: ")), "{name} {args:?}: {err}");
    err
}

#[test]
fn bad_values_name_the_option_and_the_value() {
    // No model file exists at this path: every line below must fail in the parser.
    let m = "/nonexistent/m.toprt";
    let cases: &[(&str, &[&str], &str, &str)] = &[
        ("toprt", &["run", "-m", m, "-i", "-", "--batch-size", "x"], "--batch-size", "'x'"),
        ("toprt", &["run", "-m", m, "-i", "-", "--batch-size", "0"], "--batch-size", "at least 1"),
        ("toprt", &["run", "-m", m, "-i", "-", "--threads", "-2"], "--threads", "'-2'"),
        ("toprt", &["run", "-m", m, "-i", "-", "--threads", "1,2"], "--threads", "'1,2'"),
        ("toprt", &["run", "-m", m, "-i", "-", "--max-length", "1.5"], "--max-length", "'1.5'"),
        ("toprt", &["run", "-m", m, "-i", "-", "--keep-scale", "half"], "--keep-scale", "'half'"),
        ("toprt", &["run", "-m", m, "-i", "-", "--isa", "avx3"], "--isa", "'avx3'"),
        ("toprt", &["inspect", m, "--lengths", "16,x"], "--lengths", "'x'"),
        ("toprt", &["inspect", m, "--pad-to", "-64"], "--pad-to", "'-64'"),
        ("toprt-convert", &["/nonexistent", "-o", m, "--dtype", "f16"], "--dtype", "'f16'"),
        ("toprt-convert", &["/nonexistent", "-o", m, "--pooling", "max"], "--pooling", "'max'"),
        ("toprt-convert", &["/nonexistent", "-o", m, "--ltp-ref-len", "x"], "--ltp-ref-len", "'x'"),
        ("toprt-convert", &["/nonexistent", "-o", m, "--keep-ratio", "0.9,most"], "--keep-ratio", "'most'"),
        ("toprt-convert", &["/nonexistent", "-o", m, "--keep-count", "8,-1"], "--keep-count", "'-1'"),
        ("toprt-convert", &["/nonexistent", "-o", m, "--prune-layers", "2;4"], "--prune-layers", "'2;4'"),
        ("engine-bench", &["--batch", "0"], "--batch", "at least 1"),
        ("engine-bench", &["--seq-len", "long"], "--seq-len", "'long'"),
        ("engine-bench", &["--lengths", "16,0"], "--lengths", "16,0"),
        ("engine-bench", &["--threads", "1,x"], "--threads", "'x'"),
        ("engine-bench", &["--threads", "1,2,3,4,5,6,7,8,9"], "--threads", "eight"),
        ("engine-bench", &["--iters", "0"], "--iters", "at least 1"),
        ("engine-bench", &["--warmup", "-1"], "--warmup", "'-1'"),
        ("engine-bench", &["--limit", "all"], "--limit", "'all'"),
        ("engine-bench", &["--pad-to", "x"], "--pad-to", "'x'"),
        ("engine-bench", &["--isa", "neon"], "--isa", "'neon'"),
        ("engine-bench", &["--dtype", "int4"], "--dtype", "'int4'"),
        ("toprt-calibrate", &[m, "--data", m, "-o", m, "--dtype", "bf16"], "--dtype", "int8 only"),
        ("toprt-calibrate", &[m, "--data", m, "-o", m, "--limit", "many"], "--limit", "'many'"),
        ("toprt-calibrate", &[m, "--data", m, "-o", m, "--bound", "tight"], "--bound", "'tight'"),
        ("toprt-calibrate", &[m, "--data", m, "-o", m, "--bound", "0"], "--bound", "positive"),
        ("toprt-calibrate", &[m, "--data", m, "-o", m, "--outliers", "-1"], "--outliers", "'-1'"),
        (
            "toprt-calibrate",
            &[m, "--data", m, "-o", m, "--target-mac-reduction", "0.9"],
            "--target-mac-reduction",
            "above 1",
        ),
        ("toprt-calibrate", &[m, "--data", m, "-o", m, "--batch", "x"], "--batch", "'x'"),
        ("toprt-calibrate", &[m, "--data", m, "-o", m, "--target-speedup", "1"], "--target-speedup", "above 1"),
    ];
    for (name, args, option, value) in cases {
        let err = refused(name, args);
        assert!(err.contains(option) && err.contains(value), "{name} {args:?}: {err:?} lacks {option} or {value}");
    }
    // The parsers' own reasons come through.
    let err = refused("toprt-convert", &["/nonexistent", "-o", m, "--dtype", "f16"]);
    assert!(err.contains("f32") && err.contains("bf16"), "{err}");
    let err = refused("toprt", &["run", "-m", m, "-i", "-", "--isa", "avx3"]);
    assert!(err.contains("avx512"), "{err}");
}

#[test]
fn usage_mistakes_are_one_line_errors() {
    let m = "/nonexistent/m.toprt";
    let cases: &[(&str, &[&str], &[&str])] = &[
        ("toprt", &[], &["missing command", "run", "inspect"]),
        ("toprt", &["frobnicate"], &["unknown command 'frobnicate'"]),
        ("toprt", &["runn"], &["unknown command 'runn'", "'run'"]),
        ("toprt", &["run", "--input", "-"], &["--model"]),
        ("toprt", &["run", "-m", m, "-i", "-", "--treads", "2"], &["'--treads'", "'--threads'"]),
        ("toprt", &["run", "-m", m, "-i", "-", "--batch-size"], &["--batch-size"]),
        ("toprt", &["inspect"], &["<MODEL>"]),
        ("toprt-convert", &["/nonexistent"], &["--output"]),
        ("toprt-convert", &["-o", m], &["<CHECKPOINT_DIR>"]),
        ("toprt-convert", &["/nonexistent", "-o", m, "--forse"], &["'--forse'", "'--force'"]),
        ("engine-bench", &["--compare", "a.json"], &["--compare", "2 values"]),
        ("engine-bench", &["--no-such-option"], &["'--no-such-option'"]),
    ];
    for (name, args, wants) in cases {
        let err = refused(name, args);
        for w in *wants {
            assert!(err.contains(w), "{name} {args:?}: {err:?} lacks {w:?}");
        }
    }
}

#[test]
fn options_keep_their_forms() {
    // An option given twice: the last one counts, as it always has.
    let o = run("toprt", &["run", "-m", "/nonexistent/first.toprt", "--model", "/nonexistent/second.toprt", "-i", "-"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("second.toprt") && !err.contains("first.toprt"), "{err}");
    // Options before the positional argument, and `--option=value`.
    let o = run("toprt", &["inspect", "--lengths=16,64", "--pad-to", "64", "/nonexistent/m.toprt"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("/nonexistent/m.toprt"), "{err}");
    // A comma list may have spaces after its commas.
    let o = run("toprt", &["inspect", "/nonexistent/m.toprt", "--lengths", "16, 64"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("/nonexistent/m.toprt"), "{err}");
    // Versions.
    for b in ["toprt", "toprt-convert", "engine-bench"] {
        let o = run(b, &["--version"]);
        assert!(o.status.success() && String::from_utf8_lossy(&o.stdout).starts_with(b), "{b} --version");
    }
}
