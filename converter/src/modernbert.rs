//! Baking a ModernBERT checkpoint: its pre-norm layers under the names the engine's
//! pass reads (`ModelConfig::norm_first`, the `MODERNBERT` naming in `bake.rs`), its
//! fused `Wqkv` with the attention scale folded into Q, its gated `Wi` whole
//! (`[d, 2 · d_ff]`), and every bias the config turns off stored as zeros, so the
//! engine runs one kind of linear and LayerNorm.

use crate::config::ModernbertBiases;
use crate::error::Result;
use toprt_format::{Classifier, HeadConfig, Layout, ModelConfig};
use toprt_kernels::pack::pack_linear_weight;

/// One baked `f32` tensor.
pub(crate) struct Part {
    pub name: String,
    pub layout: Layout,
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

/// Reads a checkpoint tensor by canonical name, checking its shape (`bake.rs`'s source).
pub(crate) type Take<'a, 'b> = dyn FnMut(&str, &[usize]) -> Result<&'b [f32]> + 'a;

/// Every tensor of a ModernBERT model, in file order.
///
/// # Errors
/// A missing or misshapen tensor (named as the checkpoint names it).
pub(crate) fn bake(
    src: &mut Take,
    cfg: &ModelConfig,
    head: &HeadConfig,
    biases: ModernbertBiases,
) -> Result<Vec<Part>> {
    let mut parts = Vec::new();
    let out = &mut parts;
    let (d, ff, l) = (cfg.hidden_size, cfg.intermediate_size, cfg.num_layers);
    let row = |out: &mut Vec<Part>, name: &str, data: Vec<f32>, shape: &[usize]| {
        out.push(Part { name: name.into(), layout: Layout::RowMajor, shape: shape.to_vec(), data })
    };
    // A bias the config has, or zeros.
    let bias = |src: &mut Take, name: &str, n: usize, present: bool| -> Result<Vec<f32>> {
        if present {
            Ok(src(name, &[n])?.to_vec())
        } else {
            Ok(vec![0.0; n])
        }
    };
    let norm = |src: &mut Take, out: &mut Vec<Part>, from: &str, to: &str| -> Result<()> {
        let w = src(&format!("{from}.weight"), &[d])?.to_vec();
        let b = bias(src, &format!("{from}.bias"), d, biases.norm)?;
        row(out, &format!("{to}.weight"), w, &[d]);
        row(out, &format!("{to}.bias"), b, &[d]);
        Ok(())
    };
    // nn.Linear [n, k] → packed logical [k, n], rows scaled by `scale(row)`.
    let linear = |src: &mut Take,
                  out: &mut Vec<Part>,
                  from: &str,
                  to: &str,
                  (n, k): (usize, usize),
                  has_bias: bool,
                  scale: &dyn Fn(usize) -> f32|
     -> Result<()> {
        let w = src(&format!("{from}.weight"), &[n, k])?;
        let w: Vec<f32> =
            w.chunks_exact(k).enumerate().flat_map(|(o, r)| r.iter().map(move |x| x * scale(o))).collect();
        let b = bias(src, &format!("{from}.bias"), n, has_bias)?;
        let b = b.iter().enumerate().map(|(o, x)| x * scale(o)).collect();
        out.push(Part {
            name: format!("{to}.weight"),
            layout: Layout::Panel32,
            shape: vec![k, n],
            data: pack_linear_weight(&w, n, k),
        });
        row(out, &format!("{to}.bias"), b, &[n]);
        Ok(())
    };
    let one = |_: usize| 1.0f32;

    let word = src("embeddings.word_embeddings.weight", &[cfg.vocab_size, d])?.to_vec();
    row(out, "embeddings.word_embeddings.weight", word, &[cfg.vocab_size, d]);
    // No token types: zero rows add nothing (pair type ids change nothing, as in HF).
    let types = cfg.type_vocab_size;
    row(out, "embeddings.token_type_embeddings.weight", vec![0.0; types * d], &[types, d]);
    norm(src, out, "embeddings.LayerNorm", "embeddings.LayerNorm")?;

    // Hugging Face scales q·kᵀ by 1/sqrt(head_dim) after the rotation; the rotation is
    // linear, so the factor folds into Wq's rows.
    let scale = 1.0f32 / (cfg.head_dim() as f32).sqrt();
    for i in 0..l {
        let p = format!("encoder.layer.{i}");
        let q_scale = |o: usize| if o < d { scale } else { 1.0 };
        let qkv = format!("{p}.attention.self.qkv");
        linear(src, out, &qkv, &qkv, (3 * d, d), biases.attention, &q_scale)?;
        let dense = format!("{p}.attention.output.dense");
        linear(src, out, &dense, &dense, (d, d), biases.attention, &one)?;
        let ffn_norm = format!("{p}.attention.output.LayerNorm");
        norm(src, out, &ffn_norm, &ffn_norm)?;
        let wi = format!("{p}.intermediate.dense");
        linear(src, out, &wi, &wi, (2 * ff, d), biases.mlp, &one)?;
        let wo = format!("{p}.output.dense");
        linear(src, out, &wo, &wo, (d, ff), biases.mlp, &one)?;
        // The norm after this layer: the next layer's attention input norm, or the
        // final norm (layer 0 has none: its input is the embeddings' LayerNorm).
        let next = if i + 1 < l {
            format!("encoder.layer.{}.attention.input_norm", i + 1)
        } else {
            "encoder.final_norm".into()
        };
        norm(src, out, &next, &format!("{p}.output.LayerNorm"))?;
    }

    if let Some(Classifier::Modernbert | Classifier::ModernbertMean) = head.classifier {
        linear(src, out, "head.dense", "head.dense", (d, d), biases.classifier, &one)?;
        norm(src, out, "head.norm", "head.norm")?;
        linear(src, out, "classifier", "classifier", (head.num_labels, d), true, &one)?;
    }
    Ok(parts)
}
