//! DeBERTa-v2/v3 prunes like its masking reference: disentangled attention whose
//! content-to-position and position-to-content terms use *original* positions, so a
//! pruned token's absence changes nothing about its neighbours' distances. The reference
//! below is written from Hugging Face's `modeling_deberta_v2.py` in f64 over the
//! checkpoint's own tensor names (the relative embeddings normalised and projected per
//! layer here, not by the converter), keeps every token in the sequence (pruned ones as
//! masked keys), and gives a pruned token its state after the layer where it was pruned.
//! The compacting engine must keep the same tokens and give the same outputs, alone and
//! batched.

use std::collections::HashMap;
use toprt::{Input, Model, OpenOptions, Outputs, Session, SessionOptions};
use toprt_convert::checkpoint::TensorData;
use toprt_convert::synthetic;
use toprt_format::{LayerKeepRule, ModelConfig};
use toprt_tests::masking::{erf, ref_prune, rel_err};
use toprt_tests::*;

/// f32 engine against the f64 reference: logits relative, final states absolute (O(1)).
const LOGITS_REL: f64 = 1e-4;
const HIDDEN_ABS: f64 = 1e-4;

/// The checkpoint's tensors in f64 by name (`deberta.` prefix stripped) and the config
/// facts the reference reads itself.
struct Ref {
    cfg: ModelConfig,
    t: HashMap<String, Vec<f64>>,
    raw: serde_json::Value,
}

impl Ref {
    fn new(dir: &std::path::Path) -> Ref {
        let hf = toprt_convert::config::read_config(dir).unwrap();
        let t = toprt_convert::checkpoint::load(dir)
            .unwrap()
            .tensors
            .into_iter()
            .filter_map(|x| match x.data {
                TensorData::F32(v) => {
                    let name = x.name.strip_prefix("deberta.").unwrap_or(&x.name).to_string();
                    Some((name, v.iter().map(|&f| f64::from(f)).collect()))
                }
                _ => None,
            })
            .collect();
        Ref { cfg: hf.model, t, raw: hf.raw }
    }

    fn w(&self, name: &str) -> &[f64] {
        self.t.get(name).unwrap_or_else(|| panic!("reference lacks {name}"))
    }

    /// `x: [n, k] · W[out, k]ᵀ + b`.
    fn linear(&self, x: &[f64], n: usize, k: usize, name: &str) -> Vec<f64> {
        let w = self.w(&format!("{name}.weight"));
        let b = self.w(&format!("{name}.bias"));
        let out = w.len() / k;
        let mut y = vec![0.0; n * out];
        for i in 0..n {
            for o in 0..out {
                y[i * out + o] = (0..k).map(|kk| x[i * k + kk] * w[o * k + kk]).sum::<f64>() + b[o];
            }
        }
        y
    }

    fn layernorm(&self, x: &mut [f64], name: &str) {
        let d = self.cfg.hidden_size;
        let (w, b) = (self.w(&format!("{name}.weight")), self.w(&format!("{name}.bias")));
        for row in x.chunks_mut(d) {
            let mean = row.iter().sum::<f64>() / d as f64;
            let var = row.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / d as f64;
            let inv = 1.0 / (var + f64::from(self.cfg.layer_norm_eps)).sqrt();
            for j in 0..d {
                row[j] = (row[j] - mean) * inv * w[j] + b[j];
            }
        }
    }

    fn flag(&self, key: &str) -> bool {
        self.raw.get(key).and_then(|v| v.as_bool()).unwrap_or(false)
    }

    /// Hugging Face's `make_log_bucket_position` of one distance, in f64.
    fn bucket(&self, delta: i64) -> i64 {
        let buckets = self.raw.get("position_buckets").and_then(|v| v.as_i64()).unwrap_or(-1);
        let max_pos = match self.raw.get("max_relative_positions").and_then(|v| v.as_i64()).unwrap_or(-1) {
            m if m < 1 => self.cfg.max_position_embeddings as i64,
            m => m,
        };
        if buckets <= 0 {
            return delta;
        }
        let mid = buckets / 2;
        let abs = if delta.abs() < mid { mid - 1 } else { delta.abs() };
        if abs <= mid {
            return delta;
        }
        let log = ((abs as f64 / mid as f64).ln() / ((max_pos - 1) as f64 / mid as f64).ln() * (mid - 1) as f64).ceil();
        (log as i64 + mid) * delta.signum()
    }

    /// Rows on each side of distance 0 in the relative embeddings.
    fn span(&self) -> i64 {
        (self.w("encoder.rel_embeddings.weight").len() / self.cfg.hidden_size / 2) as i64
    }
}

fn gelu(x: f64) -> f64 {
    0.5 * x * (1.0 + erf(x / std::f64::consts::SQRT_2))
}

struct RefOut {
    logits: Vec<f64>,
    final_states: Vec<f64>,
    kept: Vec<(usize, Vec<u32>)>,
}

/// One sequence through the masking reference.
fn reference(m: &Ref, ids: &[u32], rules: &[LayerKeepRule]) -> RefOut {
    let c = &m.cfg;
    let (n, d, nh) = (ids.len(), c.hidden_size, c.num_heads);
    let dh = d / nh;
    let we = m.w("embeddings.word_embeddings.weight");
    let mut h: Vec<f64> = ids.iter().flat_map(|&id| we[id as usize * d..id as usize * d + d].to_vec()).collect();
    if m.raw.get("position_biased_input").and_then(|v| v.as_bool()).unwrap_or(true) {
        let pe = m.w("embeddings.position_embeddings.weight");
        h.iter_mut().enumerate().for_each(|(x, v)| *v += pe[x]);
    }
    if let Some(te) = m.t.get("embeddings.token_type_embeddings.weight") {
        h.iter_mut().enumerate().for_each(|(x, v)| *v += te[x % d]);
    }
    m.layernorm(&mut h, "embeddings.LayerNorm");
    let mut rel = m.w("encoder.rel_embeddings.weight").to_vec();
    if m.raw.get("norm_rel_ebd").and_then(|v| v.as_str()).is_some_and(|s| s.contains("layer_norm")) {
        m.layernorm(&mut rel, "encoder.LayerNorm");
    }
    let span = m.span();
    let rows = rel.len() / d;
    let types = format!("{:?}", m.raw.get("pos_att_type"));
    let (c2p, p2c) = (types.contains("c2p"), types.contains("p2c"));
    let scale = ((dh * (1 + usize::from(c2p) + usize::from(p2c))) as f64).sqrt();
    let idx = |i: usize, j: usize| (m.bucket(i as i64 - j as i64) + span).clamp(0, 2 * span - 1) as usize;
    let (mut alive, mut fin, mut kept) = (vec![true; n], vec![0.0; n * d], Vec::new());
    for l in 0..c.num_layers {
        let p = format!("encoder.layer.{l}");
        let a = |name: &str| format!("{p}.attention.self.{name}");
        let q = m.linear(&h, n, d, &a("query_proj"));
        let k = m.linear(&h, n, d, &a("key_proj"));
        let v = m.linear(&h, n, d, &a("value_proj"));
        let shared = m.flag("share_att_key");
        let pos_k = m.linear(&rel, rows, d, &a(if shared { "key_proj" } else { "pos_key_proj" }));
        let pos_q = if p2c {
            m.linear(&rel, rows, d, &a(if shared { "query_proj" } else { "pos_query_proj" }))
        } else {
            Vec::new()
        };
        let dot = |x: &[f64], xi: usize, y: &[f64], yi: usize, hh: usize| -> f64 {
            (0..dh).map(|e| x[xi * d + hh * dh + e] * y[yi * d + hh * dh + e]).sum()
        };
        let (mut ctx, mut colsum) = (vec![0.0; n * d], vec![0.0; n]);
        for hh in 0..nh {
            for i in (0..n).filter(|&i| alive[i]) {
                let s: Vec<f64> = (0..n)
                    .map(|j| {
                        if !alive[j] {
                            return f64::NEG_INFINITY;
                        }
                        let r = idx(i, j);
                        let mut s = dot(&q, i, &k, j, hh);
                        if c2p {
                            s += dot(&q, i, &pos_k, r, hh);
                        }
                        if p2c {
                            s += dot(&k, j, &pos_q, r, hh);
                        }
                        s / scale
                    })
                    .collect();
                let mx = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let ex: Vec<f64> = s.iter().map(|x| (x - mx).exp()).collect();
                let z: f64 = ex.iter().sum();
                for j in (0..n).filter(|&j| alive[j]) {
                    let pj = ex[j] / z;
                    colsum[j] += pj;
                    for e in 0..dh {
                        ctx[i * d + hh * dh + e] += pj * v[j * d + hh * dh + e];
                    }
                }
            }
        }
        let dropped = ref_prune(rules, l + 1, &colsum, &alive, nh, &mut kept);
        let o = m.linear(&ctx, n, d, &format!("{p}.attention.output.dense"));
        let mut x: Vec<f64> = h.iter().zip(&o).map(|(a, b)| a + b).collect();
        m.layernorm(&mut x, &format!("{p}.attention.output.LayerNorm"));
        let inter: Vec<f64> = m.linear(&x, n, d, &format!("{p}.intermediate.dense")).into_iter().map(gelu).collect();
        let y = m.linear(&inter, n, c.intermediate_size, &format!("{p}.output.dense"));
        h = x.iter().zip(&y).map(|(a, b)| a + b).collect();
        m.layernorm(&mut h, &format!("{p}.output.LayerNorm"));
        for j in dropped {
            fin[j * d..j * d + d].copy_from_slice(&h[j * d..j * d + d]);
            alive[j] = false;
        }
    }
    for j in (0..n).filter(|&j| alive[j]) {
        fin[j * d..j * d + d].copy_from_slice(&h[j * d..j * d + d]);
    }
    // ContextPooler: dense → GELU on the first token; then the classifier.
    let mid: Vec<f64> = m.linear(&fin[..d], 1, d, "pooler.dense").into_iter().map(gelu).collect();
    RefOut { logits: m.linear(&mid, 1, d, "classifier"), final_states: fin, kept }
}

fn random_ids(n: usize, seed: u64, vocab: usize) -> Vec<u32> {
    let mut rng = synthetic::Rng::new(seed);
    (0..n)
        .map(|i| if i == 0 { 1 } else { 5 + (rng.uniform() * (vocab - 5) as f32) as u32 % (vocab as u32 - 5) })
        .collect()
}

/// Each fixture with top-k rules, against the reference: the same kept sets, logits and
/// final states, with and without token outputs, and batched bit-identical to alone.
#[test]
fn deberta_prunes_like_the_reference() {
    for (fx, layers) in [("tiny-deberta-st", vec![1, 2]), ("tiny-deberta-v2-st", vec![1])] {
        let dir = fixture(fx);
        let opts = toprt_convert::ConvertOptions {
            keep_ratio: Some(vec![0.5]),
            prune_layers: Some(layers),
            ..Default::default()
        };
        let (bytes, report) = toprt_convert::convert_to_bytes(&dir, &opts).unwrap();
        assert!(report.ignored.is_empty(), "{fx}: unused tensors: {:?}", report.ignored);
        let rules = report.manifest.keep_rules.clone();
        let r = Ref::new(&dir);
        let model = Model::from_bytes(&bytes, &OpenOptions::default()).unwrap();
        let mut s = Session::new(&model, &SessionOptions { threads: 2, ..Default::default() }).unwrap();
        let all = Outputs { logits: true, embedding: false, hidden_states: true };
        let logits_only = Outputs { logits: true, embedding: false, hidden_states: false };
        // Past the exact distances and the buckets' reach, so pruned tokens leave
        // survivors at distances of every kind.
        let seqs: Vec<Vec<u32>> =
            [3usize, 12, 40, 150].iter().map(|&n| random_ids(n, n as u64 + 29, r.cfg.vocab_size)).collect();
        let mut alone = Vec::new();
        for (i, ids) in seqs.iter().enumerate() {
            let want = reference(&r, ids, &rules);
            let input = [Input::Ids { input_ids: ids, token_type_ids: None }];
            let full = s.run(&input, all).unwrap().remove(0);
            let fast = s.run(&input, logits_only).unwrap().remove(0);
            if ids.len() > 10 {
                assert!(full.kept[0].1.len() < ids.len(), "{fx} seq {i}: nothing pruned");
            }
            assert_eq!(full.kept, want.kept, "{fx} seq {i}: kept sets differ from the masking reference");
            assert_eq!(fast.kept, want.kept, "{fx} seq {i}: kept sets (no token outputs) differ");
            for (tag, out) in [("token outputs", &full), ("logits only", &fast)] {
                let e = rel_err(out.logits.as_ref().unwrap(), &want.logits);
                assert!(e <= LOGITS_REL, "{fx} seq {i} ({tag}): logits rel err {e:e}");
            }
            let hs = full.last_hidden_state.as_ref().unwrap();
            let worst = hs.iter().zip(&want.final_states).map(|(a, b)| (f64::from(*a) - b).abs()).fold(0.0, f64::max);
            assert!(worst <= HIDDEN_ABS, "{fx} seq {i}: final state diff {worst:e}");
            alone.push(full);
        }
        let inputs: Vec<Input> = seqs.iter().map(|ids| Input::Ids { input_ids: ids, token_type_ids: None }).collect();
        for (b, a) in s.run(&inputs, all).unwrap().iter().zip(&alone) {
            assert_eq!(b, a, "{fx}: batched output differs from alone");
        }
        let rev: Vec<Input> = inputs.iter().rev().copied().collect();
        for (b, a) in s.run(&rev, all).unwrap().iter().zip(alone.iter().rev()) {
            assert_eq!(b, a, "{fx}: reversed batch differs");
        }
    }
}

/// The engine's distance buckets are Hugging Face's, from the table its
/// `make_log_bucket_position` gives for each distance up to 8192 (`make_golden.py`),
/// for DeBERTa-v3's settings and others; and they are odd in the distance.
#[test]
fn buckets_match_hugging_face() {
    let text = std::fs::read_to_string(fixture("deberta-buckets.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let cases = v["cases"].as_array().unwrap();
    assert!(cases.len() >= 4);
    for case in cases {
        let (size, max) =
            (case["bucket_size"].as_u64().unwrap() as usize, case["max_position"].as_u64().unwrap() as usize);
        let r = toprt_format::Disentangled {
            span: size,
            buckets: Some(size),
            max_relative_positions: max,
            c2p: true,
            p2c: true,
            position_table: false,
        };
        let want = case["buckets"].as_array().unwrap();
        assert_eq!(want.len(), 8193);
        for (delta, w) in want.iter().enumerate() {
            let w = w.as_i64().unwrap();
            assert_eq!(r.bucket(delta as i64), w, "buckets {size}, max {max}: distance {delta}");
            assert_eq!(r.bucket(-(delta as i64)), -w, "buckets {size}, max {max}: distance -{delta}");
        }
    }
}
