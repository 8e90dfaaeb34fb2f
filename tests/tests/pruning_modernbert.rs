//! ModernBERT prunes like its masking reference: pre-norm layers, rotary embeddings and
//! sliding windows by *original* positions, a gated GELU FFN. The reference below is
//! written from Hugging Face's `modeling_modernbert.py` in f64 over the checkpoint's own
//! tensor names, keeps every token in the sequence (pruned ones as masked keys whose
//! rows are still computed), and gives a pruned token the final norm of its state where
//! it was pruned. The compacting engine must keep the same tokens and give the same
//! outputs, alone and batched.

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

/// The checkpoint's tensors in f64 by name (`model.` prefix stripped); absent biases
/// read as zeros.
struct Ref {
    cfg: ModelConfig,
    t: HashMap<String, Vec<f64>>,
    mean: bool,
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
                    let name = x.name.strip_prefix("model.").unwrap_or(&x.name).to_string();
                    Some((name, v.iter().map(|&f| f64::from(f)).collect()))
                }
                _ => None,
            })
            .collect();
        let mean = hf.raw.get("classifier_pooling").and_then(|p| p.as_str()) == Some("mean");
        Ref { cfg: hf.model, t, mean }
    }

    fn w(&self, name: &str) -> &[f64] {
        self.t.get(name).unwrap_or_else(|| panic!("reference lacks {name}"))
    }

    /// `x: [n, k] · W[out, k]ᵀ + b` (b zero when the checkpoint has none).
    fn linear(&self, x: &[f64], n: usize, k: usize, name: &str) -> Vec<f64> {
        let w = self.w(&format!("{name}.weight"));
        let out = w.len() / k;
        let b = self.t.get(&format!("{name}.bias"));
        let mut y = vec![0.0; n * out];
        for i in 0..n {
            for o in 0..out {
                let dot: f64 = (0..k).map(|kk| x[i * k + kk] * w[o * k + kk]).sum();
                y[i * out + o] = dot + b.map_or(0.0, |b| b[o]);
            }
        }
        y
    }

    fn layernorm(&self, x: &mut [f64], name: &str) {
        let d = self.cfg.hidden_size;
        let w = self.w(&format!("{name}.weight"));
        let b = self.t.get(&format!("{name}.bias"));
        for row in x.chunks_mut(d) {
            let mean = row.iter().sum::<f64>() / d as f64;
            let var = row.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / d as f64;
            let inv = 1.0 / (var + f64::from(self.cfg.layer_norm_eps)).sqrt();
            for j in 0..d {
                row[j] = (row[j] - mean) * inv * w[j] + b.map_or(0.0, |b| b[j]);
            }
        }
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
    let (dh, ff) = (d / nh, c.intermediate_size);
    let we = m.w("embeddings.tok_embeddings.weight");
    let mut h: Vec<f64> = ids.iter().flat_map(|&id| we[id as usize * d..id as usize * d + d].to_vec()).collect();
    m.layernorm(&mut h, "embeddings.norm");
    let rotary = c.rotary.unwrap();
    let (mut alive, mut fin, mut kept) = (vec![true; n], vec![0.0; n * d], Vec::new());
    for l in 0..c.num_layers {
        let p = format!("layers.{l}");
        let local = c.local_attention.as_ref().and_then(|w| w.half_window(l));
        let theta = if local.is_some() { rotary.local_theta } else { rotary.theta };
        let mut a = h.clone();
        if l > 0 {
            m.layernorm(&mut a, &format!("{p}.attn_norm"));
        }
        let mut qkv = m.linear(&a, n, d, &format!("{p}.attn.Wqkv"));
        // Rotate-half rotary embeddings of q and k by position i.
        for i in 0..n {
            for part in 0..2 {
                for hh in 0..nh {
                    let base = i * 3 * d + part * d + hh * dh;
                    for e in 0..dh / 2 {
                        let angle = i as f64 / theta.powf((2 * e) as f64 / dh as f64);
                        let (x, y) = (qkv[base + e], qkv[base + e + dh / 2]);
                        qkv[base + e] = x * angle.cos() - y * angle.sin();
                        qkv[base + e + dh / 2] = y * angle.cos() + x * angle.sin();
                    }
                }
            }
        }
        let at = |i: usize, part: usize, hh: usize, e: usize| qkv[i * 3 * d + part * d + hh * dh + e];
        let (mut ctx, mut colsum) = (vec![0.0; n * d], vec![0.0; n]);
        // (A pruned query row's output is never used: with a window it may see no alive
        // key at all, so it is left at zero; pruned keys get probability 0.)
        for hh in 0..nh {
            for i in (0..n).filter(|&i| alive[i]) {
                let s: Vec<f64> = (0..n)
                    .map(|j| {
                        if !alive[j] || local.is_some_and(|w| i.abs_diff(j) > w) {
                            return f64::NEG_INFINITY;
                        }
                        (0..dh).map(|e| at(i, 0, hh, e) * at(j, 1, hh, e)).sum::<f64>() / (dh as f64).sqrt()
                    })
                    .collect();
                let mx = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let ex: Vec<f64> = s.iter().map(|x| (x - mx).exp()).collect();
                let z: f64 = ex.iter().sum();
                for j in (0..n).filter(|&j| alive[j]) {
                    let pj = ex[j] / z;
                    colsum[j] += pj;
                    for e in 0..dh {
                        ctx[i * d + hh * dh + e] += pj * at(j, 2, hh, e);
                    }
                }
            }
        }
        let dropped = ref_prune(rules, l + 1, &colsum, &alive, nh, &mut kept);
        let o = m.linear(&ctx, n, d, &format!("{p}.attn.Wo"));
        let x: Vec<f64> = h.iter().zip(&o).map(|(a, b)| a + b).collect();
        let mut normed = x.clone();
        m.layernorm(&mut normed, &format!("{p}.mlp_norm"));
        let wi = m.linear(&normed, n, d, &format!("{p}.mlp.Wi"));
        let inter: Vec<f64> =
            (0..n * ff).map(|i| gelu(wi[(i / ff) * 2 * ff + i % ff]) * wi[(i / ff) * 2 * ff + ff + i % ff]).collect();
        let y = m.linear(&inter, n, ff, &format!("{p}.mlp.Wo"));
        h = x.iter().zip(&y).map(|(a, b)| a + b).collect();
        for j in dropped {
            let mut row = h[j * d..j * d + d].to_vec();
            m.layernorm(&mut row, "final_norm");
            fin[j * d..j * d + d].copy_from_slice(&row);
            alive[j] = false;
        }
    }
    let survivors: Vec<usize> = (0..n).filter(|&j| alive[j]).collect();
    for &j in &survivors {
        let mut row = h[j * d..j * d + d].to_vec();
        m.layernorm(&mut row, "final_norm");
        fin[j * d..j * d + d].copy_from_slice(&row);
    }
    // The head: the mean of the tokens that reach the end, or the first token.
    let pooled: Vec<f64> = if m.mean {
        (0..d).map(|e| survivors.iter().map(|&j| fin[j * d + e]).sum::<f64>() / survivors.len() as f64).collect()
    } else {
        fin[..d].to_vec()
    };
    let mut mid: Vec<f64> = m.linear(&pooled, 1, d, "head.dense").into_iter().map(gelu).collect();
    m.layernorm(&mut mid, "head.norm");
    RefOut { logits: m.linear(&mid, 1, d, "classifier"), final_states: fin, kept }
}

fn random_ids(n: usize, seed: u64, vocab: usize) -> Vec<u32> {
    let mut rng = synthetic::Rng::new(seed);
    (0..n)
        .map(|i| if i == 0 { 1 } else { 5 + (rng.uniform() * (vocab - 5) as f32) as u32 % (vocab as u32 - 5) })
        .collect()
}

/// Each fixture with keep-rules after a global layer (0) and a sliding one (1), against
/// the reference: the same kept sets, logits and final states, with and without token
/// outputs, and batched bit-identical to alone.
#[test]
fn modernbert_prunes_like_the_reference() {
    for fx in ["tiny-modernbert-st", "tiny-modernbert-bias-st"] {
        let dir = fixture(fx);
        let opts = toprt_convert::ConvertOptions {
            keep_ratio: Some(vec![0.5]),
            prune_layers: Some(vec![1, 2]),
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
        // Past the windows (±8, ±4), so pruned keys fall both in and out of them.
        let seqs: Vec<Vec<u32>> =
            [3usize, 12, 40, 150].iter().map(|&n| random_ids(n, n as u64 + 11, r.cfg.vocab_size)).collect();
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
