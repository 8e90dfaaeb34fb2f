//! Token pruning against a slow, obviously correct *masking* reference: nothing is
//! compacted, pruned tokens stay in the sequence as masked keys, their rows are computed
//! but excluded from later importance scores, and each pruned token's final state is its
//! state entering the layer where it was pruned. The compacting engine must give the
//! same kept sets per layer and the same outputs.
//!
//! The reference works in f64 with its own decision code written from the spec
//! (docs/PRUNING.md); only the checkpoint tensors are shared with the engine.

use std::collections::HashMap;
use toprt::{Input, Model, OpenOptions, Outputs, PruneControl, SequenceOutput, Session, SessionOptions};
use toprt_convert::checkpoint::{Tensor, TensorData};
use toprt_convert::synthetic;
use toprt_format::{KeepRule, LayerKeepRule, ModelConfig};
use toprt_tests::masking::{erf, ref_prune, rel_err};
use toprt_tests::*;

/// Logits: relative error bound of the issue (f32 engine vs f64 reference).
const LOGITS_REL: f64 = 1e-4;
/// Final token states of the random models (values O(1)).
const HIDDEN_ABS: f64 = 1e-4;

struct Ref {
    cfg: ModelConfig,
    t: HashMap<String, Vec<f64>>,
}

impl Ref {
    fn new(cfg: &ModelConfig, tensors: &[Tensor]) -> Ref {
        let t = tensors
            .iter()
            .filter_map(|x| match &x.data {
                TensorData::F32(v) => Some((x.name.clone(), v.iter().map(|&f| f as f64).collect())),
                _ => None,
            })
            .collect();
        Ref { cfg: cfg.clone(), t }
    }
    fn w(&self, name: &str) -> &[f64] {
        self.t.get(name).unwrap_or_else(|| panic!("reference lacks {name}"))
    }
    /// `x: [n, k]` · `W[out, k]ᵀ` + b
    fn linear(&self, x: &[f64], n: usize, k: usize, name: &str) -> Vec<f64> {
        let (w, b) = (self.w(&format!("{name}.weight")), self.w(&format!("{name}.bias")));
        let out = b.len();
        let mut y = vec![0.0; n * out];
        for i in 0..n {
            for o in 0..out {
                y[i * out + o] = b[o] + (0..k).map(|kk| x[i * k + kk] * w[o * k + kk]).sum::<f64>();
            }
        }
        y
    }
    /// MPNet's bias for head `h`, query `i`, key `j` (original positions); 0 elsewhere.
    fn relative_bias(&self, h: usize, i: usize, j: usize) -> f64 {
        match self.t.get("encoder.relative_attention_bias.weight") {
            Some(w) => w[toprt::relative_position_bucket(j as i64 - i as i64) * self.cfg.num_heads + h],
            None => 0.0,
        }
    }
    fn layernorm(&self, x: &mut [f64], d: usize, name: &str) {
        let (w, b) = (self.w(&format!("{name}.weight")), self.w(&format!("{name}.bias")));
        for row in x.chunks_mut(d) {
            let mean = row.iter().sum::<f64>() / d as f64;
            let var = row.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / d as f64;
            let inv = 1.0 / (var + self.cfg.layer_norm_eps as f64).sqrt();
            for j in 0..d {
                row[j] = (row[j] - mean) * inv * w[j] + b[j];
            }
        }
    }
}

struct RefOut {
    logits: Option<Vec<f64>>,
    final_states: Vec<f64>,
    kept: Vec<(usize, Vec<u32>)>,
}

/// One sequence through the masking reference (BERT; classifier head if present).
fn reference(m: &Ref, ids: &[u32], rules: &[LayerKeepRule]) -> RefOut {
    let c = &m.cfg;
    let (n, d, nh) = (ids.len(), c.hidden_size, c.num_heads);
    let dh = d / nh;
    let (we, pe, te) = (
        m.w("embeddings.word_embeddings.weight"),
        m.w("embeddings.position_embeddings.weight"),
        m.w("embeddings.token_type_embeddings.weight"),
    );
    // ELECTRA's narrower embeddings are projected up to the encoder's width.
    let e = c.embedding_width();
    let mut h = vec![0.0; n * e];
    for (i, &id) in ids.iter().enumerate() {
        for j in 0..e {
            // (RoBERTa-style position ids start at pad + 1; the inputs here hold no pad id.)
            h[i * e + j] = we[id as usize * e + j] + pe[(c.position_offset + i) * e + j] + te[j];
        }
    }
    m.layernorm(&mut h, e, "embeddings.LayerNorm");
    if c.embedding_size.is_some() {
        h = m.linear(&h, n, e, "embeddings_project");
    }
    let mut alive = vec![true; n];
    let mut fin = vec![0.0; n * d];
    let mut kept = Vec::new();
    for l in 0..c.num_layers {
        let p = format!("encoder.layer.{l}");
        let q = m.linear(&h, n, d, &format!("{p}.attention.self.query"));
        let k = m.linear(&h, n, d, &format!("{p}.attention.self.key"));
        let v = m.linear(&h, n, d, &format!("{p}.attention.self.value"));
        let mut ctx = vec![0.0; n * d];
        let mut colsum = vec![0.0; n];
        for hh in 0..nh {
            for i in 0..n {
                // Masked keys get probability exactly 0 (the -inf additive mask).
                let s: Vec<f64> = (0..n)
                    .map(|j| {
                        if !alive[j] {
                            return f64::NEG_INFINITY;
                        }
                        (0..dh).map(|e| q[i * d + hh * dh + e] * k[j * d + hh * dh + e]).sum::<f64>()
                            / (dh as f64).sqrt()
                            + m.relative_bias(hh, i, j)
                    })
                    .collect();
                let mx = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let ex: Vec<f64> = s.iter().map(|x| (x - mx).exp()).collect();
                let z: f64 = ex.iter().sum();
                for j in 0..n {
                    let pj = ex[j] / z;
                    if alive[i] {
                        colsum[j] += pj; // only alive query rows count
                    }
                    for e in 0..dh {
                        ctx[i * d + hh * dh + e] += pj * v[j * d + hh * dh + e];
                    }
                }
            }
        }
        let dropped = ref_prune(rules, l + 1, &colsum, &alive, nh, &mut kept);
        let a = m.linear(&ctx, n, d, &format!("{p}.attention.output.dense"));
        let mut h1: Vec<f64> = a.iter().zip(&h).map(|(x, y)| x + y).collect();
        m.layernorm(&mut h1, d, &format!("{p}.attention.output.LayerNorm"));
        let mut inter = m.linear(&h1, n, d, &format!("{p}.intermediate.dense"));
        inter.iter_mut().for_each(|x| *x = 0.5 * *x * (1.0 + erf(*x / std::f64::consts::SQRT_2)));
        let o = m.linear(&inter, n, c.intermediate_size, &format!("{p}.output.dense"));
        h = o.iter().zip(&h1).map(|(x, y)| x + y).collect();
        m.layernorm(&mut h, d, &format!("{p}.output.LayerNorm"));
        for j in dropped {
            fin[j * d..j * d + d].copy_from_slice(&h[j * d..j * d + d]);
            alive[j] = false;
        }
    }
    for j in (0..n).filter(|&j| alive[j]) {
        fin[j * d..j * d + d].copy_from_slice(&h[j * d..j * d + d]);
    }
    let logits = m.t.contains_key("classifier.weight").then(|| {
        let mut pooled = m.linear(&fin[..d], 1, d, "pooler.dense");
        pooled.iter_mut().for_each(|x| *x = x.tanh());
        m.linear(&pooled, 1, d, "classifier")
    });
    RefOut { logits, final_states: fin, kept }
}

fn small_cfg() -> ModelConfig {
    ModelConfig {
        vocab_size: 300,
        hidden_size: 64,
        num_layers: 6,
        num_heads: 4,
        intermediate_size: 128,
        max_position_embeddings: 128,
        ..synthetic::bert_base_config()
    }
}

fn engine_model(cfg: &ModelConfig, tensors: &[Tensor], rules: Vec<LayerKeepRule>) -> Model {
    let bytes = synthetic::file_from_tensors(cfg, 3, tensors, "pruning test").unwrap();
    let bytes = toprt_convert::writer::with_keep_rules(&bytes, rules).unwrap();
    Model::from_bytes(&bytes, &OpenOptions::default()).unwrap()
}

fn bins(pattern: &str) -> KeepRule {
    KeepRule::TopBins { token_z: pattern.chars().map(|c| if c == '1' { 1.0 } else { 0.0 }).collect(), gate: true }
}

/// Runs every sequence alone (logits only, and with hidden states) and in one batch, and
/// compares with the reference.
fn check(model: &Model, r: &Ref, rules: &[LayerKeepRule], seqs: &[Vec<u32>], what: &str) -> Vec<SequenceOutput> {
    let mut s = Session::new(model, &SessionOptions { threads: 2, ..Default::default() }).unwrap();
    let all = Outputs { logits: true, embedding: true, hidden_states: true };
    let cls_only = Outputs { logits: true, embedding: false, hidden_states: false };
    let mut alone = Vec::new();
    for (i, ids) in seqs.iter().enumerate() {
        let want = reference(r, ids, rules);
        let input = [Input::Ids { input_ids: ids, token_type_ids: None }];
        let full = s.run(&input, all).unwrap().remove(0);
        let fast = s.run(&input, cls_only).unwrap().remove(0);
        assert_eq!(full.kept, want.kept, "{what} seq {i}: kept sets differ from the masking reference");
        assert_eq!(fast.kept, want.kept, "{what} seq {i}: kept sets (no token outputs) differ");
        if let Some(wl) = &want.logits {
            for (tag, out) in [("token outputs", &full), ("CLS only", &fast)] {
                let e = rel_err(out.logits.as_ref().unwrap(), wl);
                assert!(e <= LOGITS_REL, "{what} seq {i} ({tag}): logits rel err {e:e}");
            }
        }
        let hs = full.last_hidden_state.as_ref().unwrap();
        let (mut worst, mut at) = (0.0, 0);
        for (j, (a, b)) in hs.iter().zip(&want.final_states).enumerate() {
            if (*a as f64 - b).abs() > worst {
                (worst, at) = ((*a as f64 - b).abs(), j);
            }
        }
        assert!(worst <= HIDDEN_ABS, "{what} seq {i}: final state diff {worst:e} at token {}", at / r.cfg.hidden_size);
        alone.push(full);
    }
    // Batch invariance with pruning: identical kept sets and bit-identical outputs.
    let inputs: Vec<Input> = seqs.iter().map(|ids| Input::Ids { input_ids: ids, token_type_ids: None }).collect();
    let batched = s.run(&inputs, all).unwrap();
    for (i, (b, a)) in batched.iter().zip(&alone).enumerate() {
        assert_eq!(b, a, "{what} seq {i}: batched output differs from alone");
    }
    let rev: Vec<Input> = inputs.iter().rev().copied().collect();
    let batched = s.run(&rev, all).unwrap();
    for (b, a) in batched.iter().zip(alone.iter().rev()) {
        assert_eq!(b, a, "{what}: reversed batch differs");
    }
    alone
}

fn random_ids(n: usize, seed: u64, vocab: usize) -> Vec<u32> {
    let mut rng = synthetic::Rng::new(seed);
    (0..n)
        .map(|i| {
            if i == 0 {
                101 % vocab as u32
            } else {
                5 + (rng.uniform() * (vocab - 5) as f32) as u32 % (vocab as u32 - 5)
            }
        })
        .collect()
}

#[test]
fn top_bins_non_monotone_gated_and_extremes() {
    let cfg = small_cfg();
    let tensors = synthetic::random_bert(&cfg, 3, 11);
    let r = Ref::new(&cfg, &tensors);
    let rules = vec![
        LayerKeepRule { layer: 1, rule: bins("1101100101000010100111011") },
        LayerKeepRule { layer: 2, rule: KeepRule::TopBins { token_z: vec![0.0; 25], gate: false } },
        LayerKeepRule { layer: 3, rule: bins("11111111111111111101100111") },
        LayerKeepRule { layer: 5, rule: bins("10111011101110111011") },
    ];
    let model = engine_model(&cfg, &tensors, rules.clone());
    let seqs: Vec<Vec<u32>> =
        [1, 2, 3, 5, 17, 31, 32, 33, 64, 100].iter().map(|&n| random_ids(n, n as u64, cfg.vocab_size)).collect();
    let outs = check(&model, &r, &rules, &seqs, "top-bins");
    // The schedule really prunes: the longest sequence loses tokens.
    let last = outs.last().unwrap();
    assert!(last.kept.last().unwrap().1.len() < 100, "nothing was pruned");
}

#[test]
fn everything_but_cls_pruned() {
    let cfg = small_cfg();
    let tensors = synthetic::random_bert(&cfg, 3, 12);
    let r = Ref::new(&cfg, &tensors);
    let rules = vec![LayerKeepRule { layer: 2, rule: bins(&"0".repeat(20)) }];
    let model = engine_model(&cfg, &tensors, rules.clone());
    let seqs: Vec<Vec<u32>> = [1, 2, 40].iter().map(|&n| random_ids(n, 7 + n as u64, cfg.vocab_size)).collect();
    let outs = check(&model, &r, &rules, &seqs, "all-but-cls");
    assert_eq!(outs[2].kept, vec![(2, vec![0])]);
}

#[test]
fn threshold_and_top_k_rules() {
    let cfg = small_cfg();
    let tensors = synthetic::random_bert(&cfg, 3, 13);
    let r = Ref::new(&cfg, &tensors);
    let seqs: Vec<Vec<u32>> = [1, 4, 20, 50].iter().map(|&n| random_ids(n, 100 + n as u64, cfg.vocab_size)).collect();
    // Thresholds near the mean score of a 50-token input (mean score = H, / (H · L_ref)).
    let rules = vec![
        LayerKeepRule { layer: 1, rule: KeepRule::Threshold { theta: 0.8 / 50.0, l_ref: 50 } },
        LayerKeepRule { layer: 3, rule: KeepRule::Threshold { theta: 1.0 / 50.0, l_ref: 50 } },
    ];
    check(&engine_model(&cfg, &tensors, rules.clone()), &r, &rules, &seqs, "threshold");
    let rules = vec![
        LayerKeepRule { layer: 2, rule: KeepRule::TopK { count: None, ratio: Some(0.7) } },
        LayerKeepRule { layer: 4, rule: KeepRule::TopK { count: Some(6), ratio: None } },
    ];
    check(&engine_model(&cfg, &tensors, rules.clone()), &r, &rules, &seqs, "top-k");
}

#[test]
fn exact_ties_break_by_position() {
    let cfg = small_cfg();
    let mut tensors = synthetic::random_bert(&cfg, 3, 14);
    // No position information: identical tokens get bit-identical states and scores.
    for t in tensors.iter_mut().filter(|t| t.name == "embeddings.position_embeddings.weight") {
        t.data = TensorData::F32(vec![0.0; t.shape.iter().product()]);
    }
    let r = Ref::new(&cfg, &tensors);
    let rules = vec![LayerKeepRule { layer: 1, rule: KeepRule::TopK { count: Some(4), ratio: None } }];
    let model = engine_model(&cfg, &tensors, rules.clone());
    let seq = vec![vec![101, 7, 7, 7, 7, 7, 7, 7]];
    let outs = check(&model, &r, &rules, &seq, "ties");
    assert_eq!(outs[0].kept, vec![(1, vec![0, 1, 2, 3])], "ties must keep the earliest positions");
}

#[test]
fn disabled_and_scaled_pruning() {
    let cfg = small_cfg();
    let tensors = synthetic::random_bert(&cfg, 3, 15);
    let rules = vec![LayerKeepRule { layer: 2, rule: bins("1101101101101101101101101") }];
    let pruned = engine_model(&cfg, &tensors, rules);
    let dense = engine_model(&cfg, &tensors, Vec::new());
    let ids = random_ids(60, 5, cfg.vocab_size);
    let input = [Input::Ids { input_ids: &ids, token_type_ids: None }];
    let all = Outputs { logits: true, embedding: true, hidden_states: true };
    let mut s = Session::new(&pruned, &SessionOptions { threads: 1, ..Default::default() }).unwrap();
    let off = s.run_with(&input, all, PruneControl::DENSE).unwrap().remove(0);
    let mut sd = Session::new(&dense, &SessionOptions { threads: 1, ..Default::default() }).unwrap();
    let want = sd.run(&input, all).unwrap().remove(0);
    assert!(off.kept.is_empty());
    assert_eq!(off.logits, want.logits, "disabled pruning must equal the dense model bit for bit");
    let base = s.run(&input, all).unwrap().remove(0).kept[0].1.len();
    let more =
        s.run_with(&input, all, PruneControl { enabled: true, keep_scale: 1.3 }).unwrap().remove(0).kept[0].1.len();
    let less =
        s.run_with(&input, all, PruneControl { enabled: true, keep_scale: 0.5 }).unwrap().remove(0).kept[0].1.len();
    assert!(less < base && base < more, "keep_scale dial: {less} {base} {more}");
    assert!(s.run_with(&input, all, PruneControl { enabled: true, keep_scale: -1.0 }).is_err());
}

#[test]
fn minilm_with_top_schedule_matches_reference() {
    let dir = minilm_dir();
    let loaded = toprt_convert::checkpoint::load(&dir).unwrap();
    let cfg = toprt_convert::config::read_config(&dir).unwrap().model;
    let r = Ref::new(&cfg, &loaded.tensors);
    let rules = synthetic::top_schedule(cfg.num_layers, 2, 25, 0.7, 3);
    let bytes = toprt_convert::writer::with_keep_rules(&convert_bytes(&dir), rules.clone()).unwrap();
    let model = Model::from_bytes(&bytes, &OpenOptions::default()).unwrap();
    let mut s = Session::new(&model, &SessionOptions { threads: 2, ..Default::default() }).unwrap();
    let texts = ["a gripping, beautifully shot film that never finds its heart .", "the cat sat on the mat", "ok", "Why few targets are better than many: the economic targets set out at the Lisbon summit were meant to help Europe leapfrog the United States."];
    let all = Outputs { logits: true, embedding: true, hidden_states: true };
    let mut alone = Vec::new();
    for t in texts {
        let out = s.run(&[Input::Text(t)], all).unwrap().remove(0);
        let want = reference(&r, &out.input_ids, &rules);
        assert_eq!(out.kept, want.kept, "MiniLM '{t}': kept sets differ");
        let d = cfg.hidden_size;
        let n = out.input_ids.len();
        let diff = out
            .last_hidden_state
            .as_ref()
            .unwrap()
            .iter()
            .zip(&want.final_states)
            .map(|(a, b)| (*a as f64 - b).abs())
            .fold(0.0, f64::max);
        assert!(diff <= 1e-4, "MiniLM '{t}': final states diff {diff:e}");
        // Mean pooling over the tokens that reach the last layer (the last kept set; all
        // tokens where nothing is pruned), normalised.
        let survivors: Vec<usize> = match want.kept.iter().max_by_key(|(layer, _)| *layer) {
            Some((_, kept)) => kept.iter().map(|&p| p as usize).collect(),
            None => (0..n).collect(),
        };
        let mut mean = vec![0.0f64; d];
        for &p in &survivors {
            let row = &want.final_states[p * d..(p + 1) * d];
            mean.iter_mut().zip(row).for_each(|(m, x)| *m += x / survivors.len() as f64);
        }
        let e: Vec<f32> = out.embedding.clone().unwrap();
        let cos = cosine(&e, &mean.iter().map(|&x| x as f32).collect::<Vec<_>>());
        assert!(cos >= 0.99999, "MiniLM '{t}': embedding cosine {cos}");
        alone.push(out);
    }
    let inputs: Vec<Input> = texts.iter().map(|t| Input::Text(t)).collect();
    for (b, a) in s.run(&inputs, all).unwrap().iter().zip(&alone) {
        assert_eq!(b, a, "MiniLM: batched output differs from alone");
    }
    assert!(alone[3].kept.iter().any(|(_, k)| k.len() < alone[3].input_ids.len()), "nothing pruned");
}

/// A ToP `best/` folder (pytorch_model.bin, zs.pt saved from CUDA, l0_module.pt, no
/// tokenizer): converted with `--tokenizer`, its kept sets and logits follow the
/// reference semantics.
#[test]
fn top_best_folder_converts_and_matches_reference() {
    let dir = fixture("top-best");
    let opts = toprt_convert::ConvertOptions { tokenizer_dir: Some(fixture("tiny-bert-st")), ..Default::default() };
    // Without a tokenizer the error says how to give one.
    let e = toprt_convert::convert_to_bytes(&dir, &Default::default()).unwrap_err().to_string();
    assert!(e.contains("--tokenizer"), "{e}");
    let (bytes, report) = toprt_convert::convert_to_bytes(&dir, &opts).unwrap();
    assert!(report.notes.iter().any(|n| n.contains("l0_module.pt")), "{:?}", report.notes);
    assert_eq!(report.ignored, vec!["bert.embeddings.position_ids".to_string()]);
    let rules = report.manifest.keep_rules.clone();
    assert_eq!(rules.iter().map(|r| r.layer).collect::<Vec<_>>(), vec![1, 2, 3], "last n_prune layers");
    assert!(matches!(&rules[1].rule, KeepRule::TopBins { gate: false, .. }), "pruner_z = 0 disables the location");
    assert!(matches!(&rules[0].rule, KeepRule::TopBins { token_z, gate: true } if token_z.len() == 20));

    let loaded = toprt_convert::checkpoint::load(&dir).unwrap();
    let tensors: Vec<Tensor> = loaded
        .tensors
        .into_iter()
        .map(|mut t| {
            t.name = t.name.strip_prefix("bert.").unwrap_or(&t.name).to_string();
            t
        })
        .collect();
    let cfg = toprt_convert::config::read_config(&dir).unwrap().model;
    let r = Ref::new(&cfg, &tensors);
    let model = Model::from_bytes(&bytes, &OpenOptions::default()).unwrap();
    let mut s = Session::new(&model, &SessionOptions { threads: 1, ..Default::default() }).unwrap();
    for text in
        ["the movie was good", "a long and winding review of a film that goes on and on about nothing much at all", "x"]
    {
        let out = s.run(&[Input::Text(text)], Outputs::default()).unwrap().remove(0);
        let want = reference(&r, &out.input_ids, &rules);
        assert_eq!(out.kept, want.kept, "'{text}'");
        let e = rel_err(out.logits.as_ref().unwrap(), want.logits.as_ref().unwrap());
        assert!(e <= LOGITS_REL, "'{text}': logits rel err {e:e}");
    }
}

#[test]
fn ltp_checkpoint_thresholds() {
    let dir = fixture("ltp-tiny");
    let (bytes, report) = toprt_convert::convert_to_bytes(&dir, &Default::default()).unwrap();
    // θ_l = final · l / N + δ_l; the last layer's rule would prune nothing later.
    assert_eq!(
        report.manifest.keep_rules,
        vec![LayerKeepRule { layer: 1, rule: KeepRule::Threshold { theta: 0.012, l_ref: 128 } }]
    );
    assert!(report.ignored.iter().all(|n| !n.contains("keep_threshold")), "{:?}", report.ignored);
    let opts = toprt_convert::ConvertOptions { ltp_ref_len: Some(64), ..Default::default() };
    let (_, report) = toprt_convert::convert_to_bytes(&dir, &opts).unwrap();
    assert!(matches!(report.manifest.keep_rules[0].rule, KeepRule::Threshold { l_ref: 64, .. }));
    // With L_ref = 128 the cut is s >= 0.012 · H · 128 = 6.1, above the mean score (H = 4).
    let model = Model::from_bytes(&bytes, &OpenOptions::default()).unwrap();
    let mut s = Session::new(&model, &SessionOptions { threads: 1, ..Default::default() }).unwrap();
    let out = s
        .run(&[Input::Text("an example sentence that is long enough to lose a few tokens")], Outputs::default())
        .unwrap();
    assert_eq!(out[0].kept.len(), 1);
    assert!(out[0].kept[0].1.len() < out[0].input_ids.len(), "threshold pruned nothing");
}

#[test]
fn manual_schedules() {
    use toprt_convert::schedule::manual;
    let r = manual(Some(&[0.8]), None, Some(&[2, 4]), 6).unwrap();
    assert_eq!(r.iter().map(|x| x.layer).collect::<Vec<_>>(), vec![2, 4]);
    let r = manual(Some(&[1.0, 1.0, 0.9, 1.0, 0.5, 0.5]), None, None, 6).unwrap();
    assert_eq!(r.iter().map(|x| x.layer).collect::<Vec<_>>(), vec![2, 4, 5]);
    let r = manual(None, Some(&[16]), None, 4).unwrap();
    assert_eq!(r.len(), 3);
    assert!(manual(Some(&[0.5, 1.0, 1.0]), None, None, 3).unwrap_err().to_string().contains("layer 0"));
    assert!(manual(Some(&[0.5, 0.5]), None, None, 6).is_err());
    assert!(manual(Some(&[1.5]), None, None, 6).is_err());
    assert!(manual(Some(&[0.5]), None, Some(&[7]), 6).is_err());
    // Through the converter: a manual schedule on a folder with zs.pt is ambiguous.
    let opts = toprt_convert::ConvertOptions {
        keep_ratio: Some(vec![0.5]),
        tokenizer_dir: Some(fixture("tiny-bert-st")),
        ..Default::default()
    };
    let e = toprt_convert::convert_to_bytes(&fixture("top-best"), &opts).unwrap_err().to_string();
    assert!(e.contains("more than one pruning schedule"), "{e}");
    let opts = toprt_convert::ConvertOptions {
        keep_ratio: Some(vec![0.5]),
        prune_layers: Some(vec![1]),
        ..Default::default()
    };
    let (_, rep) = toprt_convert::convert_to_bytes(&fixture("tiny-bert-st"), &opts).unwrap();
    assert_eq!(rep.manifest.keep_rules.len(), 1);
}

/// DistilBERT (no token types, its own layer names, a ReLU classifier head) prunes like
/// BERT: the tiny random DistilBERT with a top-k rule against the masking reference,
/// its tensors renamed here by a table of our own (not the converter's), and the head
/// computed here from the reference's final [CLS] state.
#[test]
fn distilbert_prunes_like_the_reference() {
    let dir = fixture("tiny-distilbert-st");
    let opts = toprt_convert::ConvertOptions {
        keep_ratio: Some(vec![0.5]),
        prune_layers: Some(vec![1]),
        ..Default::default()
    };
    let (bytes, report) = toprt_convert::convert_to_bytes(&dir, &opts).unwrap();
    assert!(report.ignored.is_empty(), "unused DistilBERT tensors: {:?}", report.ignored);
    let rules = report.manifest.keep_rules.clone();
    assert_eq!(rules.len(), 1);
    let cfg = toprt_convert::config::read_config(&dir).unwrap().model;
    let rename = [
        ("attention.q_lin", "attention.self.query"),
        ("attention.k_lin", "attention.self.key"),
        ("attention.v_lin", "attention.self.value"),
        ("attention.out_lin", "attention.output.dense"),
        ("sa_layer_norm", "attention.output.LayerNorm"),
        ("ffn.lin1", "intermediate.dense"),
        ("ffn.lin2", "output.dense"),
        ("output_layer_norm", "output.LayerNorm"),
    ];
    let mut tensors: Vec<Tensor> = toprt_convert::checkpoint::load(&dir)
        .unwrap()
        .tensors
        .into_iter()
        .map(|mut t| {
            let n =
                t.name.strip_prefix("distilbert.").unwrap_or(&t.name).replace("transformer.layer.", "encoder.layer.");
            t.name = rename.iter().fold(n, |n, (from, to)| n.replace(from, to));
            // The head stays out of the reference's BERT head; it is computed below.
            if t.name.starts_with("pre_classifier.") || t.name.starts_with("classifier.") {
                t.name = format!("distil.{}", t.name);
            }
            t
        })
        .collect();
    let d = cfg.hidden_size;
    tensors.push(Tensor {
        name: "embeddings.token_type_embeddings.weight".into(),
        shape: vec![2, d],
        data: TensorData::F32(vec![0.0; 2 * d]),
    });
    let r = Ref::new(&cfg, &tensors);
    let model = Model::from_bytes(&bytes, &OpenOptions::default()).unwrap();
    let seqs: Vec<Vec<u32>> = [5usize, 17, 40, 96].iter().map(|&n| random_ids(n, n as u64, cfg.vocab_size)).collect();
    let outs = check(&model, &r, &rules, &seqs, "distilbert");
    for (i, (ids, out)) in seqs.iter().zip(&outs).enumerate() {
        assert!(out.kept[0].1.len() < ids.len(), "seq {i}: nothing pruned");
        let want = reference(&r, ids, &rules);
        let mut mid = r.linear(&want.final_states[..d], 1, d, "distil.pre_classifier");
        mid.iter_mut().for_each(|x| *x = x.max(0.0));
        let logits = r.linear(&mid, 1, d, "distil.classifier");
        let e = rel_err(out.logits.as_ref().unwrap(), &logits);
        assert!(e <= LOGITS_REL, "seq {i}: logits rel err {e:e}");
    }
}

/// ELECTRA (embeddings narrower than the encoder, projected up) prunes like BERT: the
/// tiny random sequence classifier and discriminator with a top-k rule against the
/// masking reference, their heads computed here from the reference's final states (the
/// discriminator's on every token: a pruned token's logit comes from its state where
/// it was pruned).
#[test]
fn electra_prunes_like_the_reference() {
    let gelu = |x: &mut f64| *x = 0.5 * *x * (1.0 + erf(*x / std::f64::consts::SQRT_2));
    for (fx, disc) in [("tiny-electra-st", false), ("tiny-electra-disc-st", true)] {
        let dir = fixture(fx);
        let opts = toprt_convert::ConvertOptions {
            keep_ratio: Some(vec![0.5]),
            prune_layers: Some(vec![1]),
            ..Default::default()
        };
        let (bytes, report) = toprt_convert::convert_to_bytes(&dir, &opts).unwrap();
        assert!(report.ignored.is_empty(), "{fx}: unused tensors: {:?}", report.ignored);
        let rules = report.manifest.keep_rules.clone();
        let cfg = toprt_convert::config::read_config(&dir).unwrap().model;
        assert_eq!(cfg.embedding_size, Some(16));
        let tensors: Vec<Tensor> = toprt_convert::checkpoint::load(&dir)
            .unwrap()
            .tensors
            .into_iter()
            .map(|mut t| {
                t.name = t.name.strip_prefix("electra.").unwrap_or(&t.name).to_string();
                t
            })
            .collect();
        let r = Ref::new(&cfg, &tensors);
        let model = Model::from_bytes(&bytes, &OpenOptions::default()).unwrap();
        let seqs: Vec<Vec<u32>> =
            [5usize, 17, 40, 96].iter().map(|&n| random_ids(n, n as u64 + 7, cfg.vocab_size)).collect();
        let outs = check(&model, &r, &rules, &seqs, fx);
        let d = cfg.hidden_size;
        for (i, (ids, out)) in seqs.iter().zip(&outs).enumerate() {
            assert!(out.kept[0].1.len() < ids.len(), "{fx} seq {i}: nothing pruned");
            let want = reference(&r, ids, &rules);
            let (rows, states, head) = if disc {
                (ids.len(), &want.final_states[..], "discriminator_predictions.dense")
            } else {
                (1, &want.final_states[..d], "classifier.dense")
            };
            let mut mid = r.linear(states, rows, d, head);
            mid.iter_mut().for_each(gelu);
            let out_name = if disc { "discriminator_predictions.dense_prediction" } else { "classifier.out_proj" };
            let logits = r.linear(&mid, rows, d, out_name);
            let got = out.logits.as_ref().unwrap();
            assert_eq!(got.len(), logits.len(), "{fx} seq {i}: logits length");
            let e = rel_err(got, &logits);
            assert!(e <= LOGITS_REL, "{fx} seq {i}: logits rel err {e:e}");
        }
    }
}

/// MPNet (relative position bias by original positions, RoBERTa's position ids, its own
/// layer names, no token types) prunes like BERT: the tiny random MPNet with a top-k rule
/// against the masking reference, renamed by the test's own table, its RoBERTa-style
/// head computed from the reference's final [CLS] state.
#[test]
fn mpnet_prunes_like_the_reference() {
    let dir = fixture("tiny-mpnet-st");
    let opts = toprt_convert::ConvertOptions {
        keep_ratio: Some(vec![0.5]),
        prune_layers: Some(vec![1]),
        ..Default::default()
    };
    let (bytes, report) = toprt_convert::convert_to_bytes(&dir, &opts).unwrap();
    assert!(report.ignored.is_empty(), "unused MPNet tensors: {:?}", report.ignored);
    let rules = report.manifest.keep_rules.clone();
    let cfg = toprt_convert::config::read_config(&dir).unwrap().model;
    let rename = [
        ("attention.attn.q.", "attention.self.query."),
        ("attention.attn.k.", "attention.self.key."),
        ("attention.attn.v.", "attention.self.value."),
        ("attention.attn.o.", "attention.output.dense."),
        ("attention.LayerNorm.", "attention.output.LayerNorm."),
    ];
    let mut tensors: Vec<Tensor> = toprt_convert::checkpoint::load(&dir)
        .unwrap()
        .tensors
        .into_iter()
        .map(|mut t| {
            let n = t.name.strip_prefix("mpnet.").unwrap_or(&t.name).to_string();
            t.name = rename.iter().fold(n, |n, (from, to)| n.replace(from, to));
            t
        })
        .collect();
    let d = cfg.hidden_size;
    tensors.push(Tensor {
        name: "embeddings.token_type_embeddings.weight".into(),
        shape: vec![1, d],
        data: TensorData::F32(vec![0.0; d]),
    });
    let r = Ref::new(&cfg, &tensors);
    let model = Model::from_bytes(&bytes, &OpenOptions::default()).unwrap();
    // Long enough that distances reach the log-spaced buckets and past 128.
    let seqs: Vec<Vec<u32>> =
        [5usize, 17, 40, 150].iter().map(|&n| random_ids(n, n as u64 + 3, cfg.vocab_size)).collect();
    let outs = check(&model, &r, &rules, &seqs, "mpnet");
    for (i, (ids, out)) in seqs.iter().zip(&outs).enumerate() {
        assert!(out.kept[0].1.len() < ids.len(), "seq {i}: nothing pruned");
        let want = reference(&r, ids, &rules);
        let mut mid = r.linear(&want.final_states[..d], 1, d, "classifier.dense");
        mid.iter_mut().for_each(|x| *x = x.tanh());
        let logits = r.linear(&mid, 1, d, "classifier.out_proj");
        let e = rel_err(out.logits.as_ref().unwrap(), &logits);
        assert!(e <= LOGITS_REL, "seq {i}: logits rel err {e:e}");
    }
}
