//! The fuzz targets' seed corpora and every input a fuzzer once crashed on, run through
//! the same harnesses as `fuzz/` (see `tests/harness.rs`), so that a fixed bug stays
//! fixed without a fuzzer.

use std::path::{Path, PathBuf};
use toprt_tests::harness::{self, TARGETS};
use toprt_tests::root;

fn files_in(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(rd) => rd.filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| p.is_file()).collect(),
        Err(_) => Vec::new(),
    };
    v.sort();
    v
}

/// `fuzz/corpus/<target>/` holds exactly the seeds of `harness::seeds()`, byte for byte
/// (so they follow format changes). `TOPRT_WRITE_FUZZ_SEEDS=1` rewrites them.
#[test]
fn seed_corpus_is_committed_and_current() {
    let seeds = harness::seeds();
    let write = std::env::var_os("TOPRT_WRITE_FUZZ_SEEDS").is_some();
    for (target, name, bytes) in &seeds {
        let p = root().join("fuzz/corpus").join(target).join(name);
        if write {
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, bytes).unwrap();
        }
        let committed = std::fs::read(&p).unwrap_or_else(|e| {
            panic!("{}: {e}; run this test with TOPRT_WRITE_FUZZ_SEEDS=1 to write the seeds", p.display())
        });
        assert!(committed == *bytes, "{} is stale; rerun with TOPRT_WRITE_FUZZ_SEEDS=1", p.display());
    }
    for target in TARGETS {
        for p in files_in(&root().join("fuzz/corpus").join(target)) {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            assert!(
                seeds.iter().any(|(t, n, _)| *t == target && *n == name),
                "{} is not a seed of harness::seeds(); add it there or delete it",
                p.display()
            );
        }
    }
    let total: usize = seeds.iter().map(|(_, _, b)| b.len()).sum();
    assert!(total < 256 << 10, "the seed corpus grew to {total} bytes; keep it small");
}

/// Seeds named `valid-*` are inputs their reader must accept; every seed runs without
/// a panic.
#[test]
fn seeds_run_and_valid_ones_are_accepted() {
    for (target, name, bytes) in harness::seeds() {
        let accepted = harness::run_target(target, &bytes);
        if name.starts_with("valid-") {
            assert!(accepted, "{target}/{name} was refused");
        }
    }
}

/// Every input under `tests/fixtures/fuzz-regressions/<target>/` once crashed its
/// target; each now runs to an accept or a clean refusal.
#[test]
fn fuzz_crashes_stay_fixed() {
    let dir = root().join("tests/fixtures/fuzz-regressions");
    for target in TARGETS {
        for p in files_in(&dir.join(target)) {
            let bytes = std::fs::read(&p).unwrap();
            let r = std::panic::catch_unwind(|| harness::run_target(target, &bytes));
            assert!(r.is_ok(), "{} panics again", p.display());
        }
    }
}
