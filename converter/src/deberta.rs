//! Baking a DeBERTa-v2 / v3 checkpoint: BERT's layer under BERT's names (the fused QKV
//! from `query_proj`, `key_proj`, `value_proj`, with the attention scale
//! `1/sqrt(head_dim · scale_factor)` folded into Q), and per layer the two position
//! tables of its disentangled attention (`toprt_format::Disentangled`), computed here
//! once from the normalised relative embeddings:
//!
//! - `attention.self.pos_key = key(rel)` (c2p), `key` being `key_proj`, or
//!   `pos_key_proj` without `share_att_key`;
//! - `attention.self.pos_query = query(rel) / scale` (p2c), `query` being `query_proj`
//!   or `pos_query_proj`.
//!
//! Both are `[2·span, d]`, row-major `f32` in every file precision. With the scale in
//! Q, `q'·pos_key` and `k·pos_query'` are exactly Hugging Face's scaled terms.

use crate::config::DebertaFacts;
use crate::error::Result;
use crate::modernbert::{Part, Take};
use toprt_format::{Classifier, HeadConfig, Layout, ModelConfig};
use toprt_kernels::pack::pack_linear_weight;

/// Every tensor of a DeBERTa-v2 model, in file order.
///
/// # Errors
/// A missing or misshapen tensor (named as the checkpoint names it).
pub(crate) fn bake(src: &mut Take, cfg: &ModelConfig, head: &HeadConfig, facts: DebertaFacts) -> Result<Vec<Part>> {
    let mut parts = Vec::new();
    let out = &mut parts;
    let (d, ff) = (cfg.hidden_size, cfg.intermediate_size);
    let row = |out: &mut Vec<Part>, name: &str, data: Vec<f32>, shape: &[usize]| {
        out.push(Part { name: name.into(), layout: Layout::RowMajor, shape: shape.to_vec(), data })
    };
    let copy = |src: &mut Take, out: &mut Vec<Part>, name: &str, shape: &[usize]| -> Result<()> {
        let data = src(name, shape)?.to_vec();
        row(out, name, data, shape);
        Ok(())
    };
    // nn.Linear [n, k] → packed logical [k, n].
    let linear = |src: &mut Take, out: &mut Vec<Part>, from: &str, to: &str, (n, k): (usize, usize)| -> Result<()> {
        let w = src(&format!("{from}.weight"), &[n, k])?;
        out.push(Part {
            name: format!("{to}.weight"),
            layout: Layout::Panel32,
            shape: vec![k, n],
            data: pack_linear_weight(w, n, k),
        });
        let b = src(&format!("{from}.bias"), &[n])?.to_vec();
        row(out, &format!("{to}.bias"), b, &[n]);
        Ok(())
    };

    copy(src, out, "embeddings.word_embeddings.weight", &[cfg.vocab_size, d])?;
    if cfg.has_position_table() {
        copy(src, out, "embeddings.position_embeddings.weight", &[cfg.max_position_embeddings, d])?;
    }
    let types = "embeddings.token_type_embeddings.weight";
    if facts.token_types {
        copy(src, out, types, &[cfg.type_vocab_size, d])?;
    } else {
        // No token types: zero rows add nothing (pair type ids change nothing, as in HF).
        row(out, types, vec![0.0; cfg.type_vocab_size * d], &[cfg.type_vocab_size, d]);
    }
    copy(src, out, "embeddings.LayerNorm.weight", &[d])?;
    copy(src, out, "embeddings.LayerNorm.bias", &[d])?;

    // The relative embeddings every layer projects, normalised once.
    let rel = match cfg.disentangled {
        Some(r) => {
            let mut rel = src("encoder.rel_embeddings.weight", &[2 * r.span, d])?.to_vec();
            if facts.norm_rel {
                let w = src("encoder.LayerNorm.weight", &[d])?;
                let b = src("encoder.LayerNorm.bias", &[d])?;
                rel.chunks_exact_mut(d).for_each(|x| layernorm(x, w, b, cfg.layer_norm_eps));
            }
            Some((r, rel))
        }
        None => None,
    };

    let scale = 1.0f32 / (cfg.head_dim() as f32 * facts.scale_factor as f32).sqrt();
    for l in 0..cfg.num_layers {
        let p = format!("encoder.layer.{l}");
        let part = |name: &str| format!("{p}.attention.self.{name}");
        let (mut w, mut b) = (Vec::with_capacity(3 * d * d), Vec::with_capacity(3 * d));
        for (name, s) in [("query_proj", scale), ("key_proj", 1.0), ("value_proj", 1.0)] {
            w.extend(src(&format!("{}.weight", part(name)), &[d, d])?.iter().map(|x| x * s));
            b.extend(src(&format!("{}.bias", part(name)), &[d])?.iter().map(|x| x * s));
        }
        out.push(Part {
            name: part("qkv.weight"),
            layout: Layout::Panel32,
            shape: vec![d, 3 * d],
            data: pack_linear_weight(&w, 3 * d, d),
        });
        row(out, &part("qkv.bias"), b, &[3 * d]);
        if let Some((r, rel)) = &rel {
            let proj = |src: &mut Take, shared: &str, own: &str, s: f32| -> Result<Vec<f32>> {
                let name = part(if facts.share_att_key { shared } else { own });
                let w = src(&format!("{name}.weight"), &[d, d])?;
                let b = src(&format!("{name}.bias"), &[d])?;
                Ok(project(rel, w, b, d, s))
            };
            if r.c2p {
                let t = proj(src, "key_proj", "pos_key_proj", 1.0)?;
                row(out, &part("pos_key"), t, &[2 * r.span, d]);
            }
            if r.p2c {
                let t = proj(src, "query_proj", "pos_query_proj", scale)?;
                row(out, &part("pos_query"), t, &[2 * r.span, d]);
            }
        }
        let dense = format!("{p}.attention.output.dense");
        linear(src, out, &dense, &dense, (d, d))?;
        copy(src, out, &format!("{p}.attention.output.LayerNorm.weight"), &[d])?;
        copy(src, out, &format!("{p}.attention.output.LayerNorm.bias"), &[d])?;
        let inter = format!("{p}.intermediate.dense");
        linear(src, out, &inter, &inter, (ff, d))?;
        let output = format!("{p}.output.dense");
        linear(src, out, &output, &output, (d, ff))?;
        copy(src, out, &format!("{p}.output.LayerNorm.weight"), &[d])?;
        copy(src, out, &format!("{p}.output.LayerNorm.bias"), &[d])?;
    }

    if head.classifier == Some(Classifier::Deberta) {
        // ContextPooler (dense → GELU on the first token) and the classifier, under
        // RoBERTa's head names.
        linear(src, out, "pooler.dense", "classifier.dense", (d, d))?;
        linear(src, out, "classifier", "classifier.out_proj", (head.num_labels, d))?;
    }
    Ok(parts)
}

/// LayerNorm of one row in place (biased variance), accumulated in f64.
fn layernorm(x: &mut [f32], w: &[f32], b: &[f32], eps: f32) {
    let n = x.len() as f64;
    let mean = x.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
    let var = x.iter().map(|&v| (f64::from(v) - mean).powi(2)).sum::<f64>() / n;
    let inv = 1.0 / (var + f64::from(eps)).sqrt();
    for ((v, &w), &b) in x.iter_mut().zip(w).zip(b) {
        *v = ((f64::from(*v) - mean) * inv * f64::from(w) + f64::from(b)) as f32;
    }
}

/// `(rows · wᵀ + b) · s` for an nn.Linear `w: [d, d]`, each product in 16 f32 lanes
/// summed in f64.
fn project(rows: &[f32], w: &[f32], b: &[f32], d: usize, s: f32) -> Vec<f32> {
    let dot = |x: &[f32], y: &[f32]| -> f64 {
        let mut acc = [0.0f32; 16];
        for (a, c) in x.chunks_exact(16).zip(y.chunks_exact(16)) {
            for i in 0..16 {
                acc[i] += a[i] * c[i];
            }
        }
        let tail = x.len() / 16 * 16;
        let rest: f64 = x[tail..].iter().zip(&y[tail..]).map(|(&a, &c)| f64::from(a) * f64::from(c)).sum();
        acc.iter().map(|&a| f64::from(a)).sum::<f64>() + rest
    };
    let mut out = Vec::with_capacity(rows.len());
    for x in rows.chunks_exact(d) {
        for (wo, &bo) in w.chunks_exact(d).zip(b) {
            out.push(((dot(x, wo) + f64::from(bo)) as f32) * s);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn project_is_the_linear_map() {
        let d = 19;
        let rows: Vec<f32> = (0..3 * d).map(|i| ((i * 7 % 11) as f32 - 5.0) / 4.0).collect();
        let w: Vec<f32> = (0..d * d).map(|i| ((i * 5 % 13) as f32 - 6.0) / 8.0).collect();
        let b: Vec<f32> = (0..d).map(|i| i as f32 / 10.0).collect();
        let got = project(&rows, &w, &b, d, 0.5);
        for r in 0..3 {
            for o in 0..d {
                let want: f64 =
                    (0..d).map(|k| f64::from(rows[r * d + k]) * f64::from(w[o * d + k])).sum::<f64>() + f64::from(b[o]);
                assert!((f64::from(got[r * d + o]) - want * 0.5).abs() < 1e-5, "({r}, {o})");
            }
        }
    }
}
