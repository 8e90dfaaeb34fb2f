//! The last layer on the first token alone: when the outputs asked for read only the
//! first token's final state (a classifier's logits, a [CLS]- or pooler-pooled
//! embedding), the engine drops every other row after the last layer's attention, so
//! that layer's output projection and FFN run on one row per sequence. Checked here: the
//! outputs are bit-identical to a pass that computes every row (asking for the token
//! states turns the shortcut off), dense and pruned, in every file precision, on every
//! encoder type with a first-token head; the layer statistics show the one row; and the
//! outputs that need every row (mean pooling, ModernBERT's mean head, token states) keep
//! them. Run under each tier by `scripts/test.sh` (`TOPRT_ISA`).

use toprt::{Input, Model, OpenOptions, Outputs, Session, SessionOptions};
use toprt_format::{KeepRule, LayerKeepRule, Precision};
use toprt_tests::*;

/// Classifier fixtures (the head reads the first token) and the embedding-only MiniLM
/// (mean pooling: every row reaches the end).
const CLASSIFIERS: [&str; 8] = [
    "tiny-bert-st",
    "tiny-roberta-st",
    "tiny-xlmr-st",
    "tiny-distilbert-st",
    "tiny-electra-st",
    "tiny-deberta-st",
    "tiny-deberta-v2-st",
    "tiny-modernbert-bias-st",
];

const LOGITS: Outputs = Outputs { logits: true, embedding: true, hidden_states: false };
const WITH_STATES: Outputs = Outputs { logits: true, embedding: true, hidden_states: true };

/// A batch of sequences of mixed lengths (1 to 40 tokens) of deterministic ids.
fn batch(vocab: usize) -> Vec<Vec<u32>> {
    let mut s = 0x2545_F491_4F6C_DD1Du64;
    [1usize, 2, 5, 17, 40, 9]
        .iter()
        .map(|&n| {
            (0..n)
                .map(|_| {
                    s ^= s << 13;
                    s ^= s >> 7;
                    s ^= s << 17;
                    (s % vocab as u64) as u32
                })
                .collect()
        })
        .collect()
}

/// Runs `seqs` with `want`: the outputs, and the rows the last layer's FFN ran on and
/// whose queries its attention computed.
fn run(s: &mut Session, seqs: &[Vec<u32>], want: Outputs) -> (Vec<toprt::SequenceOutput>, (usize, usize)) {
    let inputs: Vec<Input> = seqs.iter().map(|ids| Input::Ids { input_ids: ids, token_type_ids: None }).collect();
    let out = s.run(&inputs, want).unwrap();
    let last = s.layer_stats().last().unwrap();
    (out, (last.ffn_tokens, last.query_tokens))
}

/// The first-token pass against the full one: same logits and embeddings, bit for bit,
/// and one FFN row and one query per sequence in the last layer (alive rows otherwise;
/// DeBERTa's disentangled attention computes every query).
fn check(image: &[u8], name: &str, rules: &[LayerKeepRule]) {
    let model = Model::from_bytes(image, &OpenOptions::default()).unwrap();
    let m = model.manifest();
    assert!(LOGITS.first_token_only(m), "{name}: a first-token head");
    assert!(!WITH_STATES.first_token_only(m), "{name}: token states need every row");
    let mut s = Session::new(&model, &SessionOptions { threads: 2, ..Default::default() }).unwrap();
    s.set_keep_rules(rules).unwrap();
    let seqs = batch(m.model.vocab_size);
    let (fast, (fast_rows, fast_queries)) = run(&mut s, &seqs, LOGITS);
    let (full, (full_rows, full_queries)) = run(&mut s, &seqs, WITH_STATES);
    assert_eq!(fast_rows, seqs.len(), "{name}: the last FFN runs on the first tokens only");
    assert!(full_rows > seqs.len(), "{name}: with token states every alive row runs ({full_rows})");
    let alive = s.layer_stats().last().unwrap().attention_tokens;
    assert_eq!(full_queries, alive, "{name}: with token states every query runs");
    if name.contains("deberta") {
        assert_eq!(fast_queries, alive, "{name}: disentangled attention computes every query");
    } else {
        assert_eq!(fast_queries, seqs.len(), "{name}: the last attention computes the first queries only");
    }
    for (i, (a, b)) in fast.iter().zip(&full).enumerate() {
        assert!(a.logits.is_some(), "{name}: logits");
        assert_eq!(a.logits, b.logits, "{name} ({}): sequence {i}'s logits differ", s.linear_kernel());
        assert_eq!(a.embedding, b.embedding, "{name} ({}): sequence {i}'s embedding differs", s.linear_kernel());
        assert_eq!(a.kept, b.kept, "{name}: sequence {i}'s kept sets");
    }
    // Alone and batched stay bit-identical on the shortcut too.
    for (i, ids) in seqs.iter().enumerate() {
        let (alone, _) = run(&mut s, std::slice::from_ref(ids), LOGITS);
        assert_eq!(alone[0], fast[i], "{name}: sequence {i} alone differs from batched");
    }
}

fn top_k(layer: usize, ratio: f32) -> LayerKeepRule {
    LayerKeepRule { layer, rule: KeepRule::TopK { count: None, ratio: Some(ratio) } }
}

#[test]
fn classifiers_run_the_last_ffn_on_the_first_token_bit_identically() {
    for name in CLASSIFIERS {
        let image = convert_bytes(&fixture(name));
        check(&image, name, &[]);
        check(&image, &format!("{name} pruned"), &[top_k(1, 0.6)]);
    }
}

#[test]
fn bf16_and_int8_files_too() {
    for dtype in [Precision::Bf16, Precision::Int8] {
        for name in ["tiny-bert-st", "tiny-modernbert-bias-st"] {
            let opts = toprt_convert::ConvertOptions { dtype, ..Default::default() };
            let image = toprt_convert::convert_to_bytes(&fixture(name), &opts).unwrap().0;
            check(&image, &format!("{name} {dtype:?}"), &[top_k(1, 0.6)]);
        }
    }
}

/// Mean pooling (MiniLM's embedding, ModernBERT's mean head) reads every row that
/// reaches the end: no shortcut, every alive row through the last FFN.
#[test]
fn mean_pooling_keeps_every_row() {
    for dir in [minilm_dir(), fixture("tiny-modernbert-st")] {
        let model = convert_and_open(&dir);
        let m = model.manifest();
        assert!(!LOGITS.first_token_only(m), "{}: a mean-pooled head", dir.display());
        let mut s = Session::new(&model, &SessionOptions { threads: 1, ..Default::default() }).unwrap();
        let seqs = batch(m.model.vocab_size.min(1000));
        let (_, rows) = run(&mut s, &seqs, LOGITS);
        let all = seqs.iter().map(Vec::len).sum::<usize>();
        assert_eq!(rows, (all, all), "{}: every row's FFN and query", dir.display());
    }
}

/// The MAC model (`toprt inspect`, the keep-rule search) counts the shortcut as the
/// engine runs it.
#[test]
fn mac_model_counts_the_first_token_ffn() {
    let model = convert_and_open(&fixture("tiny-bert-st"));
    let m = model.manifest();
    let layers = m.model.num_layers;
    let lengths = toprt::prune::schedule_lengths(m, 20, true).unwrap();
    assert_eq!(lengths[layers - 1], (20, 1));
    assert!(lengths[..layers - 1].iter().all(|&l| l == (20, 20)));
    assert_eq!(toprt::prune::schedule_lengths(m, 20, false).unwrap()[layers - 1], (20, 20));
    let mut s = Session::new(&model, &SessionOptions { threads: 1, ..Default::default() }).unwrap();
    let ids: Vec<u32> = (0..20).collect();
    run(&mut s, &[ids], LOGITS);
    let engine: f64 = s.layer_stats().iter().map(|l| l.macs).sum();
    let model_macs = toprt::prune::encoder_macs(m, &lengths);
    assert!((engine - model_macs).abs() <= 1e-9 * model_macs, "engine {engine} vs model {model_macs}");
}
