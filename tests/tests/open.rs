//! Where an opened model's bytes live ([`OpenOptions::copy_to_memory`]): a copy in
//! anonymous memory (the default), the file's own mapping, or a copy of a byte buffer
//! ([`Model::from_bytes`]). The three must run the same model: outputs bit-identical,
//! dense and pruned, and the same errors for a damaged file.

use toprt::{Input, Model, OpenOptions, Outputs, PruneControl, Session, SessionOptions};
use toprt_tests::*;

/// Logits and embedding of a few sequences of mixed lengths, with pruning on or off.
fn outputs(m: &Model, prune: bool) -> Vec<(Vec<f32>, Vec<f32>)> {
    let mut s = Session::new(m, &SessionOptions { threads: 1, ..Default::default() }).expect("session");
    let texts = ["a short one", "the quick brown fox jumps over the lazy dog again and again", "x"];
    let inputs: Vec<Input> = texts.iter().map(|t| Input::Text(t)).collect();
    let control = if prune { PruneControl::default() } else { PruneControl::DENSE };
    let want = Outputs { logits: true, embedding: true, hidden_states: false };
    s.run_with(&inputs, want, control)
        .expect("run")
        .into_iter()
        .map(|o| (o.logits.unwrap_or_default(), o.embedding.unwrap_or_default()))
        .collect()
}

#[test]
fn copied_mapped_and_from_bytes_run_the_same_model() {
    let bytes = harness::tiny_model(harness::TinyModel::BertTopBins);
    let path = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("open-copy-or-map.toprt");
    std::fs::write(&path, &bytes).unwrap();
    let copied = Model::open(&path).expect("opens copied (the default)");
    let mapped = Model::open_with(&path, &OpenOptions { copy_to_memory: false, ..OpenOptions::default() })
        .expect("opens mapped");
    let from_bytes = Model::from_bytes(&bytes, &OpenOptions::default()).expect("opens from bytes");
    for prune in [false, true] {
        let want = outputs(&mapped, prune);
        assert!(want.iter().all(|(l, _)| !l.is_empty()), "the fixture is a classifier");
        assert_eq!(outputs(&copied, prune), want, "copy vs mapping, prune {prune}");
        assert_eq!(outputs(&from_bytes, prune), want, "from_bytes vs mapping, prune {prune}");
    }
}

#[test]
fn a_damaged_file_fails_the_same_whether_copied_or_mapped() {
    let mut bytes = harness::tiny_model(harness::TinyModel::BertTopBins);
    // A byte in the middle of the tensor data.
    let (_, data) = harness::split_toprt(&bytes);
    let at = bytes.len() - data.len() / 2;
    bytes[at] ^= 0x40;
    let path = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("open-damaged.toprt");
    std::fs::write(&path, &bytes).unwrap();
    let copied = Model::open(&path).unwrap_err().to_string();
    let mapped = Model::open_with(&path, &OpenOptions { copy_to_memory: false, ..OpenOptions::default() })
        .unwrap_err()
        .to_string();
    assert_eq!(copied, mapped);
    assert!(copied.to_lowercase().contains("checksum") || copied.contains("CRC"), "{copied}");
    // An empty buffer is an error, not a crash (the copy of zero bytes is a valid mapping).
    assert!(Model::from_bytes(&[], &OpenOptions::default()).is_err());
}
