//! The head after the encoder: the pooler / classifier GEMMs on each sequence's first
//! row, or a token classifier's on every token ([`dense_layers`]), and the sentence embedding of one sequence ([`embedding`]): mean,
//! first-token or pooler pooling, then L2 normalisation when the model asks for it.

use crate::model::ModelInner;
use crate::par;
use crate::pool::Pool;
use crate::workspace::Workspace;
use toprt_format::{Classifier, Pooling, Task};
use toprt_kernels::gemm::{Epilogue, GemmParams};
use toprt_kernels::Kernels;

/// `c[..m, n] = a[..m, k] · W + bias`; shapes are guaranteed by workspace sizing and model
/// validation, so a failure here is a bug in the engine, not bad input.
#[allow(clippy::too_many_arguments)]
fn params<'a>(
    a: &'a [f32],
    m: usize,
    k: usize,
    w: &'a [f32],
    n: usize,
    c: &'a mut [f32],
    bias: &'a [f32],
    gelu: bool,
) -> GemmParams<'a> {
    let epilogue = if gelu { Epilogue::BiasGelu(bias) } else { Epilogue::Bias(bias) };
    GemmParams::new(a, k, m, k, w, n, c, n, epilogue)
        .unwrap_or_else(|e| panic!("internal shape error in the head: {e}"))
}

/// Head computations: on the first-token rows, fills `ws.head_out` (`[S, labels]`) for
/// classification, or `ws.head_mid` (`[S, d]`) with the pooler output; for a token
/// classifier, `ws.head_out` (`[T, labels]`, original rows) from `ws.final_states`
/// (which the pass must have filled: token outputs).
pub(crate) fn dense_layers(model: &ModelInner, k: &Kernels, pool: &Pool, ws: &mut Workspace) -> bool {
    let d = model.manifest.model.hidden_size;
    let Some((pw, pb)) = &model.weights.pooler else { return false };
    let classifier = model.manifest.head.classifier;
    let gelu = matches!(
        classifier,
        Some(
            Classifier::Electra
                | Classifier::Deberta
                | Classifier::ElectraDiscriminator
                | Classifier::Modernbert
                | Classifier::ModernbertMean
        )
    );
    let (rows, input) = if model.manifest.head.task == Task::TokenClassification {
        let t = ws.orig_segments.last().map_or(0, |s| s.offset + s.len);
        (t, &ws.final_states[..t * d])
    } else {
        let s = ws.segments.len();
        let mean = classifier == Some(Classifier::ModernbertMean);
        for (i, seg) in ws.segments.iter().enumerate() {
            let dst = &mut ws.head_in[i * d..i * d + d];
            let rows = &ws.hidden[seg.offset * d..(seg.offset + seg.len) * d];
            if mean {
                // The mean of the tokens that reach the end, as embedding pooling.
                mean_rows(rows, seg.len, dst);
            } else {
                dst.copy_from_slice(&rows[..d]);
            }
        }
        (s, &ws.head_in[..s * d])
    };
    let s = rows;
    let mut p = params(input, s, d, model.f32s(pw), d, &mut ws.head_mid[..s * d], model.f32s(pb), gelu);
    par::gemm(k, pool, &mut p);
    match classifier {
        Some(Classifier::Distilbert) => ws.head_mid[..s * d].iter_mut().for_each(|v| *v = v.max(0.0)),
        // GELU came with the GEMM.
        Some(Classifier::Electra | Classifier::Deberta | Classifier::ElectraDiscriminator) => {}
        // GELU came with the GEMM; then `head.norm`.
        Some(Classifier::Modernbert | Classifier::ModernbertMean) => {
            let norm = model.weights.head_norm.as_ref().expect("bound with the ModernBERT head");
            let (w, b, eps) = (model.f32s(&norm.weight), model.f32s(&norm.bias), model.manifest.model.layer_norm_eps);
            ws.head_mid[..s * d].chunks_exact_mut(d).for_each(|r| k.layernorm(r, w, b, eps));
        }
        Some(Classifier::Bert | Classifier::Roberta) | None => {
            ws.head_mid[..s * d].iter_mut().for_each(|v| *v = v.tanh())
        }
    }
    if let Some((cw, cb)) = &model.weights.classifier {
        let labels = model.manifest.head.num_labels;
        let mut p = params(
            &ws.head_mid[..s * d],
            s,
            d,
            model.f32s(cw),
            labels,
            &mut ws.head_out[..s * labels],
            model.f32s(cb),
            false,
        );
        par::gemm(k, pool, &mut p);
    }
    true
}

/// The pooled embedding of sequence `i` of the last pass: `rows` are the final states
/// of its tokens that reached the last layer (`[len, d]`, in order, [CLS] first; every
/// token without pruning), `len` their count.
pub(crate) fn embedding(model: &ModelInner, ws: &Workspace, i: usize, rows: &[f32], len: usize) -> Vec<f32> {
    let h = &model.manifest.head;
    let d = model.manifest.model.hidden_size;
    let mut v = match h.pooling {
        Pooling::Mean => {
            let mut acc = vec![0.0f32; d];
            mean_rows(rows, len, &mut acc);
            acc
        }
        Pooling::Cls => rows[..d].to_vec(),
        Pooling::Pooler => ws.head_mid[i * d..i * d + d].to_vec(),
        Pooling::None => unreachable!("callers ask only models with a pooling method"),
    };
    if h.normalize {
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
        v.iter_mut().for_each(|x| *x /= norm);
    }
    v
}

/// `out` = the sum of the `out.len()`-wide `rows`, divided by `len`.
fn mean_rows(rows: &[f32], len: usize, out: &mut [f32]) {
    out.fill(0.0);
    for r in rows.chunks_exact(out.len()) {
        out.iter_mut().zip(r).for_each(|(a, &x)| *a += x);
    }
    let n = len as f32;
    out.iter_mut().for_each(|a| *a /= n);
}
