//! The int8 precision guard: quantise an `f32` model to int8 where its data says it is
//! safe, measured on real text.
//!
//! 1. The `f32` model runs the calibration text; each encoder linear's `f32` input rows
//!    are observed as the pass computes them (`Session::observe_linear_inputs`): the
//!    largest magnitude of every input channel, and a sample of rows.
//! 2. **Outlier channels.** BERT's LayerNorm outputs carry a few channels 10-50 times
//!    larger than the rest; with one scale per row they take the whole int8 range, and
//!    every other value of the row gets a coarse step. The `outliers` channels with the
//!    largest magnitudes of each linear stay `f32` (their weight rows too); the row is
//!    quantised without them. On all-MiniLM-L6-v2 eight per linear took the embedding
//!    cosine to Hugging Face fp32 on the goldens from 0.9952 mean / 0.9836 worst to
//!    0.9993 / 0.9984.
//! 3. **The guard.** Each linear's output error when quantised so, on the sampled rows:
//!    `‖Y_int8 − Y_f32‖ / ‖Y_f32‖` with the very quantisers and kernels a session runs.
//!    A linear whose error exceeds `bound` stays `f32`.
//!
//! The result is an ordinary int8 file (mixed precision per linear) whose manifest
//! records the choice: the data's fingerprint and count, the outlier channels, the bound,
//! and every linear's error.

use crate::data::{self, Text};
use crate::error::{Error, Result};
use serde_json::json;
use toprt::{LinearKind, Model, OpenOptions, Session, SessionOptions};
use toprt_convert::bake::LinearPlan;
use toprt_format::Precision;
use toprt_kernels::gemm::{Epilogue, GemmParams, Int8Scales};
use toprt_kernels::{pack, Kernels};

/// How the guard runs.
#[derive(Clone, Debug)]
pub struct Int8Options {
    /// Input channels per linear kept in `f32` (at most an eighth of the inputs).
    pub outliers: usize,
    /// Largest relative output error a linear may have in int8.
    pub bound: f64,
    /// Rows per linear its error is measured on (a seeded sample of the observed rows).
    pub rows: usize,
    /// Seed of the row sample.
    pub seed: u64,
    /// Threads of the calibration session (0: one per logical CPU).
    pub threads: usize,
}

impl Default for Int8Options {
    fn default() -> Self {
        Int8Options { outliers: 8, bound: 0.02, rows: 2048, seed: 0, threads: 0 }
    }
}

/// What the guard found for one linear.
#[derive(Clone, Debug, PartialEq)]
pub struct LinearChoice {
    /// `encoder.layer.L.intermediate.dense`, …
    pub linear: String,
    /// Relative output error in int8 (with its outlier channels kept apart).
    pub error: f64,
    pub outliers: Vec<usize>,
    /// Kept in `f32` (its error exceeds the bound).
    pub f32: bool,
}

/// The quantised file and the choice behind it.
pub struct Int8Outcome {
    pub image: Vec<u8>,
    pub linears: Vec<LinearChoice>,
}

const KINDS: [(LinearKind, &str); 4] = [
    (LinearKind::Qkv, "attention.self.qkv"),
    (LinearKind::AttentionOut, "attention.output.dense"),
    (LinearKind::Intermediate, "intermediate.dense"),
    (LinearKind::Output, "output.dense"),
];

/// A tiny seeded generator for the row sample (splitmix64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// Observations of one linear's inputs: the largest magnitude per channel and a
/// reservoir sample of rows.
struct Seen {
    k: usize,
    absmax: Vec<f32>,
    rows: Vec<f32>,
    count: usize,
}

/// Quantises the `f32` model `image` to int8 as the data `texts` says (module docs).
/// `data_facts` (e.g. the data file's name) goes into the record; `progress` gets a
/// line per step.
///
/// # Errors
/// A model that is not `f32`, data its tokenizer refuses, or a bad option.
pub fn quantize(
    image: &[u8],
    texts: &[Text],
    data_facts: serde_json::Value,
    opts: &Int8Options,
    progress: &mut dyn FnMut(&str),
) -> Result<Int8Outcome> {
    let model = Model::from_bytes(image, &OpenOptions::default())?;
    if model.precision() != Precision::F32 {
        return Err(Error::Options(format!(
            "the int8 guard measures against the f32 weights: calibrate an f32 model (this one is {})",
            model.precision()
        )));
    }
    if opts.rows == 0 || !(opts.bound.is_finite() && opts.bound > 0.0) {
        return Err(Error::Options("rows must be at least 1 and the bound a positive number".into()));
    }
    let cfg = &model.manifest().model;
    let layers = cfg.num_layers;
    let mut session = Session::new(&model, &SessionOptions { threads: opts.threads, ..Default::default() })?;
    let encoded = data::encode(&session, texts)?;
    let tokens: usize = encoded.iter().map(|e| e.input_ids.len()).sum();
    progress(&format!("int8: observing the f32 model on {} texts ({tokens} tokens)", texts.len()));
    let mut seen: Vec<Seen> = (0..layers * 4)
        .map(|i| {
            let k = if i % 4 == 3 { cfg.intermediate_size } else { cfg.hidden_size };
            Seen { k, absmax: vec![0.0; k], rows: Vec::new(), count: 0 }
        })
        .collect();
    let mut rng = Rng(opts.seed ^ 0x746f_7072_7463_616c);
    let cap = opts.rows;
    session.observe_linear_inputs(&encoded, &mut |layer, kind, rows| {
        let s = &mut seen[layer * 4 + KINDS.iter().position(|(k, _)| *k == kind).unwrap_or(0)];
        for row in rows.chunks_exact(s.k) {
            for (m, v) in s.absmax.iter_mut().zip(row) {
                *m = m.max(v.abs());
            }
            // Reservoir sampling: every row has the same chance to be measured.
            if s.count < cap {
                s.rows.extend_from_slice(row);
            } else {
                let j = (rng.next() % (s.count as u64 + 1)) as usize;
                if j < cap {
                    s.rows[j * s.k..(j + 1) * s.k].copy_from_slice(row);
                }
            }
            s.count += 1;
        }
    })?;

    let file = toprt_convert::writer::decode(image, false).map_err(toprt::Error::from)?;
    let kernels = Kernels::from_env().map_err(toprt::Error::from)?;
    let mut linears = Vec::with_capacity(layers * 4);
    for layer in 0..layers {
        for (ki, (_, name)) in KINDS.iter().enumerate() {
            let s = &seen[layer * 4 + ki];
            let linear = format!("encoder.layer.{layer}.{name}");
            let entry = file
                .manifest
                .tensors
                .iter()
                .find(|t| t.name == format!("{linear}.weight"))
                .ok_or_else(|| Error::Options(format!("the model has no {linear}.weight")))?;
            let (k, n) = (entry.shape[0], entry.shape[1]);
            let packed: Vec<f32> =
                file.blob(entry).chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
            let mut order: Vec<usize> = (0..k).collect();
            order.sort_by(|&a, &b| s.absmax[b].total_cmp(&s.absmax[a]).then(a.cmp(&b)));
            let mut outliers: Vec<usize> = order[..opts.outliers.min(k / 8)].to_vec();
            outliers.sort_unstable();
            let error = output_error(&kernels, &packed, k, n, &s.rows, &outliers);
            let f32 = error > opts.bound;
            linears.push(LinearChoice { linear, error, outliers, f32 });
        }
        progress(&format!("int8: measured layer {}/{layers}", layer + 1));
    }
    let kept = linears.iter().filter(|l| l.f32).count();
    progress(&format!(
        "int8: {} of {} linears int8 ({kept} kept in f32, error above {}), {} outlier channels each",
        linears.len() - kept,
        linears.len(),
        opts.bound,
        opts.outliers
    ));
    let plan = |name: &str| match linears.iter().find(|l| l.linear == name) {
        Some(l) if !l.f32 => LinearPlan::Int8 { outliers: l.outliers.clone() },
        _ => LinearPlan::F32,
    };
    let record = json!({
        "data": data_facts,
        "texts": texts.len(),
        "tokens": tokens,
        "fingerprint": data::fingerprint(texts),
        "outlier_channels": opts.outliers,
        "bound": opts.bound,
        "rows_per_linear": opts.rows,
        "seed": opts.seed,
        "errors": linears.iter().map(|l| (l.linear.clone(), json!((l.error * 1e6).round() / 1e6))).collect::<serde_json::Map<_, _>>(),
    });
    let image = toprt_convert::writer::with_int8_weights(image, &plan, record)?;
    Ok(Int8Outcome { image, linears })
}

/// `‖Y_int8 − Y‖ / ‖Y‖` of `rows` (`[m, k]`) times the packed `f32` weight `[k, n]`,
/// where `Y_int8` quantises the weight and the rows as a session does, with the
/// `outliers` channels kept in `f32`.
fn output_error(kernels: &Kernels, packed: &[f32], k: usize, n: usize, rows: &[f32], outliers: &[usize]) -> f64 {
    let m = rows.len() / k;
    if m == 0 {
        return 0.0;
    }
    let mut y = vec![0.0f32; m * n];
    let mut p = GemmParams::new(rows, k, m, k, packed, n, &mut y, n, Epilogue::None).expect("f32 shapes");
    kernels.gemm(&mut p);
    // The int8 weight without the outlier rows, and the rows without the outlier channels.
    let mut w = vec![0.0f32; n * k];
    for o in 0..n {
        for kk in 0..k {
            w[o * k + kk] = pack::packed_at(packed, k, kk, o);
        }
    }
    let wo: Vec<Vec<f32>> = outliers.iter().map(|&j| (0..n).map(|o| w[o * k + j]).collect()).collect();
    for o in 0..n {
        for &j in outliers {
            w[o * k + j] = 0.0;
        }
    }
    let q = pack::quantize_linear_weight_i8(&w, n, k);
    let stride = k.div_ceil(4);
    let (mut a, mut scales) = (vec![0u32; m * stride], vec![0.0f32; m]);
    let mut row = vec![0.0f32; k];
    for i in 0..m {
        row.copy_from_slice(&rows[i * k..(i + 1) * k]);
        for &j in outliers {
            row[j] = 0.0;
        }
        scales[i] = kernels.quantize_row(&row, &mut a[i * stride..(i + 1) * stride]);
    }
    let mut yq = vec![0.0f32; m * n];
    let s = Int8Scales { row: &scales, col: &q.scale, col_sum: &q.sum };
    let mut p =
        GemmParams::new_int8(&a, stride, m, k, &q.packed, n, &mut yq, n, Epilogue::None, s).expect("int8 shapes");
    kernels.gemm(&mut p);
    let (mut err, mut norm) = (0.0f64, 0.0f64);
    for i in 0..m {
        for o in 0..n {
            let side: f32 = outliers.iter().zip(&wo).map(|(&j, col)| rows[i * k + j] * col[o]).sum();
            let (got, want) = (f64::from(yq[i * n + o] + side), f64::from(y[i * n + o]));
            err += (got - want).powi(2);
            norm += want.powi(2);
        }
    }
    (err / norm.max(f64::MIN_POSITIVE)).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The measured error is ~0 with every channel apart (nothing left to quantise),
    /// small for smooth data, larger when one channel dominates, and small again with
    /// that channel (and only that one) kept apart.
    #[test]
    fn output_error_sees_outliers() {
        let kernels = Kernels::scalar();
        let (k, n, m) = (64, 40, 50);
        let mut rng = Rng(1);
        let mut uniform = || (rng.next() % 2001) as f32 / 1000.0 - 1.0;
        let w: Vec<f32> = (0..n * k).map(|_| uniform()).collect();
        let packed = pack::pack_linear_weight(&w, n, k);
        let mut rows: Vec<f32> = (0..m * k).map(|_| uniform()).collect();
        let smooth = output_error(&kernels, &packed, k, n, &rows, &[]);
        assert!(smooth > 0.0 && smooth < 0.02, "{smooth}");
        for i in 0..m {
            rows[i * k + 5] *= 300.0;
        }
        let spiky = output_error(&kernels, &packed, k, n, &rows, &[]);
        let apart = output_error(&kernels, &packed, k, n, &rows, &[5]);
        // One channel 300 times the rest takes the row's int8 range: the others lose
        // their resolution (measured 3x the smooth error, relative to a far larger Y).
        assert!(spiky > 2.0 * smooth, "{spiky} vs {smooth}");
        // Kept apart, the rest quantise as finely as before, against the larger Y.
        assert!(apart < 0.1 * spiky, "{apart} vs {spiky}");
        // The wrong channel kept apart does not help.
        let wrong = output_error(&kernels, &packed, k, n, &rows, &[6]);
        assert!(wrong > 0.5 * spiky, "{wrong} vs {spiky}");
        let all: Vec<usize> = (0..k).collect();
        assert!(output_error(&kernels, &packed, k, n, &rows, &all) < 1e-6);
    }
}
