//! Baking checkpoint tensors into the engine's layout: fused QKV with the attention
//! scale folded into Q, every linear weight transposed and packed into panels, and the
//! head's tensors chosen by the head description. Every tensor the checkpoint has but
//! the engine does not use is reported.

use crate::checkpoint::{Tensor, TensorData};
use crate::error::{ConvertError, Result};
use std::collections::{BTreeMap, BTreeSet};
use toprt_format::{Arch, Classifier, HeadConfig, Layout, ModelConfig, Pooling, Precision};
use toprt_kernels::pack::{self, pack_linear_weight};

/// A tensor ready to be written.
pub struct OutTensor {
    pub name: String,
    pub layout: Layout,
    pub shape: Vec<usize>,
    pub data: Blob,
}

/// The elements of a tensor: `f32` values, or the 32-bit pair words of a bf16
/// `panel32x2` weight.
pub enum Blob {
    F32(Vec<f32>),
    Bf16Pairs(Vec<u32>),
    /// The quad words of an int8 `panel32x4` weight.
    Int8Quads(Vec<u32>),
}

impl Blob {
    /// The precision the file records for these elements.
    pub fn dtype(&self) -> Precision {
        match self {
            Blob::F32(_) => Precision::F32,
            Blob::Bf16Pairs(_) => Precision::Bf16,
            Blob::Int8Quads(_) => Precision::Int8,
        }
    }

    /// The little-endian bytes as written.
    pub fn bytes(&self) -> &[u8] {
        match self {
            Blob::F32(v) => bytemuck::cast_slice(v),
            Blob::Bf16Pairs(v) | Blob::Int8Quads(v) => bytemuck::cast_slice(v),
        }
    }
}

/// Whether `name` is one of the encoder's four linear weights per layer (the tensors a
/// bf16 file stores as bf16).
pub fn is_encoder_linear(name: &str) -> bool {
    let Some(rest) = name.strip_prefix("encoder.layer.") else { return false };
    let Some((layer, what)) = rest.split_once('.') else { return false };
    layer.bytes().all(|b| b.is_ascii_digit())
        && matches!(
            what,
            "attention.self.qkv.weight"
                | "attention.output.dense.weight"
                | "intermediate.dense.weight"
                | "output.dense.weight"
        )
}

/// Rounds the encoder's linear weights to bf16 (`panel32x2`, nearest even); every other
/// tensor (embeddings, biases, LayerNorms, pooler and classifier) stays `f32`.
pub fn to_bf16(tensors: &mut [OutTensor]) {
    for t in tensors.iter_mut().filter(|t| is_encoder_linear(&t.name) && t.layout == Layout::Panel32) {
        let (k, n) = (t.shape[0], t.shape[1]);
        if let Blob::F32(packed) = &t.data {
            // Back to the [n, k] nn.Linear order the packer takes.
            let mut w = vec![0.0f32; n * k];
            for o in 0..n {
                for kk in 0..k {
                    w[o * k + kk] = pack::packed_at(packed, k, kk, o);
                }
            }
            t.data = Blob::Bf16Pairs(pack::pack_linear_weight_bf16(&w, n, k));
            t.layout = Layout::Panel32x2;
        }
    }
}

/// The scheme an int8 file records ([`toprt_format::Quantization::scheme`]).
pub const INT8_SCHEME: &str = "int8 weights symmetric per output channel; activations per token, dynamic";

/// How one encoder linear is stored in an int8 file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LinearPlan {
    /// Kept in `f32`.
    F32,
    /// int8, except the input channels `outliers` (ascending), whose weight rows stay
    /// `f32`: their activations are too large for the row's int8 step (a few channels
    /// of BERT's LayerNorm outputs are 10-50 times the rest).
    Int8 { outliers: Vec<usize> },
}

/// Quantises the encoder's linear weights to int8 (`panel32x4`,
/// [`pack::quantize_linear_weight_i8`]) as `plan` says per linear (by name, e.g.
/// `encoder.layer.0.output.dense`); each int8 weight `X.weight` gets its per-column
/// `X.weight_scale` and `X.weight_sum` (`f32`, `[n]`) right after it, and with outlier
/// channels `X.outlier_index` (`f32`, `[c]`, the channels) and `X.outlier_weight`
/// (`f32` `panel32`, `[c, n]`, their weight rows, which the int8 weight holds as
/// zeros). Everything else stays `f32`. Returns the linears kept in `f32`, in order.
///
/// # Errors
/// A weight that is not `f32` (a bf16 file), one with a non-finite value, or an outlier
/// channel outside the input.
pub fn to_int8(tensors: &mut Vec<OutTensor>, plan: &dyn Fn(&str) -> LinearPlan) -> Result<Vec<String>> {
    let mut out = Vec::with_capacity(tensors.len() + 8 * 24);
    let mut kept = Vec::new();
    for mut t in tensors.drain(..) {
        if !is_encoder_linear(&t.name) {
            out.push(t);
            continue;
        }
        let linear = t.name.trim_end_matches(".weight").to_string();
        let outliers = match plan(&linear) {
            LinearPlan::F32 => {
                kept.push(linear);
                out.push(t);
                continue;
            }
            LinearPlan::Int8 { outliers } => outliers,
        };
        let Blob::F32(packed) = &t.data else {
            return Err(ConvertError::Options(format!(
                "{}: int8 quantisation takes f32 weights, this one is {}",
                t.name,
                t.data.dtype()
            )));
        };
        let (k, n) = (t.shape[0], t.shape[1]);
        let mut w = vec![0.0f32; n * k];
        for o in 0..n {
            for kk in 0..k {
                w[o * k + kk] = pack::packed_at(packed, k, kk, o);
            }
        }
        if let Some(bad) = w.iter().position(|v| !v.is_finite()) {
            return Err(ConvertError::Options(format!("{}: weight {bad} is not finite", t.name)));
        }
        if !outliers.windows(2).all(|p| p[0] < p[1]) || outliers.last().is_some_and(|&j| j >= k) {
            return Err(ConvertError::Options(format!(
                "{linear}: outlier channels {outliers:?} are not ascending channels of 0..{k}"
            )));
        }
        // The outlier channels' weight rows leave the int8 weight for an f32 one.
        let c = outliers.len();
        let mut wo = vec![0.0f32; n * c];
        for o in 0..n {
            for (ci, &j) in outliers.iter().enumerate() {
                wo[o * c + ci] = w[o * k + j];
                w[o * k + j] = 0.0;
            }
        }
        let q = pack::quantize_linear_weight_i8(&w, n, k);
        t.data = Blob::Int8Quads(q.packed);
        t.layout = Layout::Panel32x4;
        out.push(t);
        for (suffix, v) in [("weight_scale", q.scale), ("weight_sum", q.sum)] {
            out.push(OutTensor {
                name: format!("{linear}.{suffix}"),
                layout: Layout::RowMajor,
                shape: vec![n],
                data: Blob::F32(v),
            });
        }
        if c > 0 {
            out.push(OutTensor {
                name: format!("{linear}.outlier_index"),
                layout: Layout::RowMajor,
                shape: vec![c],
                data: Blob::F32(outliers.iter().map(|&j| j as f32).collect()),
            });
            out.push(OutTensor {
                name: format!("{linear}.outlier_weight"),
                layout: Layout::Panel32,
                shape: vec![c, n],
                data: Blob::F32(pack_linear_weight(&wo, n, c)),
            });
        }
    }
    *tensors = out;
    Ok(kept)
}

/// Checkpoint tensors by canonical name (architecture prefix stripped, old
/// `gamma`/`beta` LayerNorm names mapped to `weight`/`bias`).
struct Source<'a> {
    by_name: BTreeMap<String, &'a Tensor>,
    used: BTreeSet<String>,
    arch: Arch,
}

/// How an architecture's checkpoint names its tensors where they differ from BERT's
/// (the names baking uses), after the architecture's prefix.
struct Naming {
    /// The checkpoint's prefix of a layer's tensors (`encoder.layer.` for BERT).
    layers: &'static str,
    /// A layer's parts: (checkpoint, BERT).
    layer: &'static [(&'static str, &'static str)],
    /// Head tensors: (checkpoint, BERT or RoBERTa).
    head: &'static [(&'static str, &'static str)],
    /// Put before the names of missing tensors in messages (but the head's).
    message_prefix: &'static str,
}

const AS_BERT: Naming = Naming { layers: "encoder.layer.", layer: &[], head: &[], message_prefix: "" };

/// DistilBERT's layer and head; its classifier is stored under RoBERTa's names.
const DISTILBERT: Naming = Naming {
    layers: "transformer.layer.",
    layer: &[
        ("attention.q_lin.", "attention.self.query."),
        ("attention.k_lin.", "attention.self.key."),
        ("attention.v_lin.", "attention.self.value."),
        ("attention.out_lin.", "attention.output.dense."),
        ("sa_layer_norm.", "attention.output.LayerNorm."),
        ("ffn.lin1.", "intermediate.dense."),
        ("ffn.lin2.", "output.dense."),
        ("output_layer_norm.", "output.LayerNorm."),
    ],
    head: &[("pre_classifier.", "classifier.dense."), ("classifier.", "classifier.out_proj.")],
    message_prefix: "distilbert.",
};

/// MPNet's layer parts that differ from BERT's.
const MPNET: Naming = Naming {
    layers: "encoder.layer.",
    layer: &[
        ("attention.attn.q.", "attention.self.query."),
        ("attention.attn.k.", "attention.self.key."),
        ("attention.attn.v.", "attention.self.value."),
        ("attention.attn.o.", "attention.output.dense."),
        ("attention.LayerNorm.", "attention.output.LayerNorm."),
    ],
    head: &[],
    message_prefix: "",
};

/// ModernBERT's names. Its pre-norm layer's norms are stored where the post-norm
/// pass reads them (`ModelConfig::norm_first`): `mlp_norm` as
/// `attention.output.LayerNorm`, and layer `l + 1`'s `attn_norm` (`final_norm` after
/// the last layer) as layer `l`'s `output.LayerNorm`.
const MODERNBERT: Naming = Naming {
    layers: "layers.",
    layer: &[
        ("attn.Wqkv.", "attention.self.qkv."),
        ("attn.Wo.", "attention.output.dense."),
        ("attn_norm.", "attention.input_norm."),
        ("mlp_norm.", "attention.output.LayerNorm."),
        ("mlp.Wi.", "intermediate.dense."),
        ("mlp.Wo.", "output.dense."),
    ],
    head: &[
        ("embeddings.tok_embeddings.", "embeddings.word_embeddings."),
        ("embeddings.norm.", "embeddings.LayerNorm."),
        ("final_norm.", "encoder.final_norm."),
    ],
    message_prefix: "model.",
};

/// DeBERTa's encoder keeps BERT's names (under `deberta.`); its head sits outside it.
const DEBERTA: Naming = Naming {
    layers: "encoder.layer.",
    layer: &[],
    head: &[("pooler.", "pooler."), ("classifier.", "classifier.")],
    message_prefix: "deberta.",
};

fn naming(arch: Arch) -> &'static Naming {
    match arch {
        Arch::DebertaV2 => &DEBERTA,
        Arch::Distilbert => &DISTILBERT,
        Arch::Mpnet => &MPNET,
        Arch::Modernbert => &MODERNBERT,
        Arch::Bert | Arch::Roberta | Arch::Electra => &AS_BERT,
    }
}

/// `name` with its longest prefix among the `pairs` (`.0` when `forward`, else `.1`)
/// replaced by its partner.
fn swap_prefix(name: &str, pairs: &[(&str, &str)], forward: bool) -> Option<String> {
    pairs
        .iter()
        .map(|&(a, b)| if forward { (a, b) } else { (b, a) })
        .filter(|(from, _)| name.starts_with(from))
        .max_by_key(|(from, _)| from.len())
        .map(|(from, to)| format!("{to}{}", &name[from.len()..]))
}

impl Naming {
    /// A checkpoint name (prefix stripped) in BERT's terms; `None`: not one it renames.
    fn bert_name(&self, n: &str) -> Option<String> {
        if let Some((layer, part)) = n.strip_prefix(self.layers).and_then(|rest| rest.split_once('.')) {
            return Some(format!("encoder.layer.{layer}.{}", swap_prefix(part, self.layer, true)?));
        }
        swap_prefix(n, self.head, true)
    }

    /// The checkpoint's own name for a BERT name (for messages about missing tensors).
    fn checkpoint_name(&self, canonical: &str) -> String {
        if let Some(head) = swap_prefix(canonical, self.head, false) {
            return head;
        }
        let layer = canonical.strip_prefix("encoder.layer.").and_then(|rest| rest.split_once('.'));
        let name = match layer.and_then(|(layer, part)| Some((layer, swap_prefix(part, self.layer, false)?))) {
            Some((layer, part)) => format!("{}{layer}.{part}", self.layers),
            None => canonical.to_string(),
        };
        format!("{}{name}", self.message_prefix)
    }
}

/// The checkpoint's own name for a canonical name (for messages about missing tensors).
fn checkpoint_name(canonical: &str, arch: Arch) -> String {
    naming(arch).checkpoint_name(canonical)
}

fn canonical(name: &str, arch: Arch) -> String {
    let prefix = match arch {
        Arch::Bert => "bert.",
        Arch::Roberta => "roberta.",
        Arch::Distilbert => "distilbert.",
        Arch::Electra => "electra.",
        Arch::Mpnet => "mpnet.",
        Arch::Modernbert => "model.",
        Arch::DebertaV2 => "deberta.",
    };
    let n = name.strip_prefix(prefix).or_else(|| name.strip_prefix("ibert.")).unwrap_or(name);
    if let Some(mapped) = naming(arch).bert_name(n) {
        return mapped;
    }
    if let Some(base) = n.strip_suffix("LayerNorm.gamma") {
        format!("{base}LayerNorm.weight")
    } else if let Some(base) = n.strip_suffix("LayerNorm.beta") {
        format!("{base}LayerNorm.bias")
    } else {
        n.to_string()
    }
}

impl<'a> Source<'a> {
    fn take(&mut self, name: &str, shape: &[usize]) -> Result<&'a [f32]> {
        let t = self.by_name.get(name).ok_or_else(|| ConvertError::MissingTensor {
            name: checkpoint_name(name, self.arch),
            expected: shape.to_vec(),
        })?;
        if t.shape != shape {
            return Err(ConvertError::BadShape {
                name: t.name.clone(),
                found: t.shape.clone(),
                expected: shape.to_vec(),
            });
        }
        match &t.data {
            TensorData::F32(v) => {
                if let Some(i) = v.iter().position(|x| !x.is_finite()) {
                    return Err(ConvertError::BadTensor {
                        name: t.name.clone(),
                        msg: format!("non-finite value {} at element {i}", v[i]),
                    });
                }
                self.used.insert(name.to_string());
                Ok(v)
            }
            TensorData::Other(dt) => Err(ConvertError::BadTensor {
                name: t.name.clone(),
                msg: format!("dtype {dt} is not a floating-point type"),
            }),
        }
    }

    fn has(&self, name: &str) -> bool {
        self.by_name.contains_key(name)
    }

    /// `out` with the checkpoint's tensors left unused.
    fn finish(&self, tensors: &[Tensor], out: Vec<OutTensor>) -> Baked {
        let ignored = tensors
            .iter()
            .filter(|t| !self.used.contains(&canonical(&t.name, self.arch)))
            .map(|t| t.name.clone())
            .collect();
        Baked { tensors: out, ignored }
    }
}

/// Which head tensors the checkpoint has.
pub fn head_tensors(tensors: &[Tensor], arch: Arch) -> crate::config::HeadTensors {
    let has = |n: &str| tensors.iter().any(|t| canonical(&t.name, arch) == n);
    let classifier = match arch {
        Arch::Bert => has("classifier.weight"),
        Arch::Roberta | Arch::Distilbert | Arch::Electra | Arch::Mpnet => has("classifier.out_proj.weight"),
        Arch::Modernbert => has("classifier.weight") && has("head.dense.weight"),
        Arch::DebertaV2 => has("classifier.weight") && has("pooler.dense.weight"),
    };
    crate::config::HeadTensors {
        pooler: has("pooler.dense.weight"),
        classifier,
        discriminator: has("discriminator_predictions.dense_prediction.weight"),
    }
}

/// The baked tensors and the names of the checkpoint tensors left unused.
pub struct Baked {
    pub tensors: Vec<OutTensor>,
    pub ignored: Vec<String>,
}

/// Bakes `tensors` for `cfg` and `head`.
///
/// # Errors
/// A missing or misshapen tensor, named with the expected shape; duplicate names.
pub fn bake(tensors: &[Tensor], cfg: &ModelConfig, head: &HeadConfig, raw: &serde_json::Value) -> Result<Baked> {
    let mut by_name = BTreeMap::new();
    for t in tensors {
        if by_name.insert(canonical(&t.name, cfg.arch), t).is_some() {
            return Err(ConvertError::BadTensor {
                name: t.name.clone(),
                msg: "appears twice (after prefix normalisation)".into(),
            });
        }
    }
    let mut src = Source { by_name, used: BTreeSet::new(), arch: cfg.arch };
    let mut out = Vec::new();
    if matches!(cfg.arch, Arch::Modernbert | Arch::DebertaV2) {
        let take = &mut |name: &str, shape: &[usize]| src.take(name, shape);
        let parts = if cfg.arch == Arch::Modernbert {
            crate::modernbert::bake(take, cfg, head, crate::config::ModernbertBiases::of(raw))?
        } else {
            crate::deberta::bake(take, cfg, head, crate::config::DebertaFacts::of(raw)?)?
        };
        let out = parts.into_iter().map(|p| OutTensor {
            name: p.name,
            layout: p.layout,
            shape: p.shape,
            data: Blob::F32(p.data),
        });
        return Ok(src.finish(tensors, out.collect()));
    }
    let (d, ff) = (cfg.hidden_size, cfg.intermediate_size);
    let row = |out: &mut Vec<OutTensor>, src: &mut Source, name: &str, shape: &[usize]| -> Result<()> {
        let data = src.take(name, shape)?.to_vec();
        out.push(OutTensor {
            name: name.into(),
            layout: Layout::RowMajor,
            shape: shape.to_vec(),
            data: Blob::F32(data),
        });
        Ok(())
    };
    // A linear layer: weight [n_out, k_in] → packed logical [k_in, n_out]; bias [n_out].
    let linear = |out: &mut Vec<OutTensor>, src: &mut Source, from: &str, to: &str, n: usize, k: usize| -> Result<()> {
        let w = src.take(&format!("{from}.weight"), &[n, k])?;
        let b = src.take(&format!("{from}.bias"), &[n])?;
        out.push(OutTensor {
            name: format!("{to}.weight"),
            layout: Layout::Panel32,
            shape: vec![k, n],
            data: Blob::F32(pack_linear_weight(w, n, k)),
        });
        out.push(OutTensor {
            name: format!("{to}.bias"),
            layout: Layout::RowMajor,
            shape: vec![n],
            data: Blob::F32(b.to_vec()),
        });
        Ok(())
    };

    // The embedding tables' width: ELECTRA's small models embed narrower than the
    // encoder and project up.
    let e = cfg.embedding_width();
    row(&mut out, &mut src, "embeddings.word_embeddings.weight", &[cfg.vocab_size, e])?;
    row(&mut out, &mut src, "embeddings.position_embeddings.weight", &[cfg.max_position_embeddings, e])?;
    if matches!(cfg.arch, Arch::Distilbert | Arch::Mpnet) {
        // No token types: zero rows add nothing to the embeddings.
        out.push(OutTensor {
            name: "embeddings.token_type_embeddings.weight".into(),
            layout: Layout::RowMajor,
            shape: vec![cfg.type_vocab_size, e],
            data: Blob::F32(vec![0.0; cfg.type_vocab_size * e]),
        });
    } else {
        row(&mut out, &mut src, "embeddings.token_type_embeddings.weight", &[cfg.type_vocab_size, e])?;
    }
    row(&mut out, &mut src, "embeddings.LayerNorm.weight", &[e])?;
    row(&mut out, &mut src, "embeddings.LayerNorm.bias", &[e])?;
    if cfg.embedding_size.is_some() {
        linear(&mut out, &mut src, "embeddings_project", "embeddings_project", d, e)?;
    }
    if let Some(rows) = cfg.relative_attention_buckets {
        // MPNet's relative position bias, one column per head, shared by every layer.
        row(&mut out, &mut src, "encoder.relative_attention_bias.weight", &[rows, cfg.num_heads])?;
    }

    // Hugging Face divides q·kᵀ by sqrt(head_dim) in f32; folding the same factor into
    // Wq and bq saves a pass over every score matrix.
    let scale = 1.0f32 / (cfg.head_dim() as f32).sqrt();
    for l in 0..cfg.num_layers {
        let p = format!("encoder.layer.{l}");
        let mut w = Vec::with_capacity(3 * d * d);
        let mut b = Vec::with_capacity(3 * d);
        for (part, s) in [("query", scale), ("key", 1.0), ("value", 1.0)] {
            let wi = src.take(&format!("{p}.attention.self.{part}.weight"), &[d, d])?;
            let bi = src.take(&format!("{p}.attention.self.{part}.bias"), &[d])?;
            w.extend(wi.iter().map(|x| x * s));
            b.extend(bi.iter().map(|x| x * s));
        }
        out.push(OutTensor {
            name: format!("{p}.attention.self.qkv.weight"),
            layout: Layout::Panel32,
            shape: vec![d, 3 * d],
            data: Blob::F32(pack_linear_weight(&w, 3 * d, d)),
        });
        out.push(OutTensor {
            name: format!("{p}.attention.self.qkv.bias"),
            layout: Layout::RowMajor,
            shape: vec![3 * d],
            data: Blob::F32(b),
        });
        linear(
            &mut out,
            &mut src,
            &format!("{p}.attention.output.dense"),
            &format!("{p}.attention.output.dense"),
            d,
            d,
        )?;
        row(&mut out, &mut src, &format!("{p}.attention.output.LayerNorm.weight"), &[d])?;
        row(&mut out, &mut src, &format!("{p}.attention.output.LayerNorm.bias"), &[d])?;
        linear(&mut out, &mut src, &format!("{p}.intermediate.dense"), &format!("{p}.intermediate.dense"), ff, d)?;
        linear(&mut out, &mut src, &format!("{p}.output.dense"), &format!("{p}.output.dense"), d, ff)?;
        row(&mut out, &mut src, &format!("{p}.output.LayerNorm.weight"), &[d])?;
        row(&mut out, &mut src, &format!("{p}.output.LayerNorm.bias"), &[d])?;
    }

    let labels = head.num_labels;
    match head.classifier {
        Some(Classifier::Bert) => {
            linear(&mut out, &mut src, "pooler.dense", "pooler.dense", d, d)?;
            linear(&mut out, &mut src, "classifier", "classifier", labels, d)?;
        }
        Some(Classifier::Roberta | Classifier::Distilbert | Classifier::Electra) => {
            linear(&mut out, &mut src, "classifier.dense", "classifier.dense", d, d)?;
            linear(&mut out, &mut src, "classifier.out_proj", "classifier.out_proj", labels, d)?;
        }
        Some(Classifier::Modernbert | Classifier::ModernbertMean | Classifier::Deberta) => {
            return Err(ConvertError::Config(format!("a {:?} head on a {:?} model", head.classifier, cfg.arch)));
        }
        Some(Classifier::ElectraDiscriminator) => {
            let p = "discriminator_predictions";
            linear(&mut out, &mut src, &format!("{p}.dense"), &format!("{p}.dense"), d, d)?;
            linear(&mut out, &mut src, &format!("{p}.dense_prediction"), &format!("{p}.dense_prediction"), labels, d)?;
        }
        None if head.pooling == Pooling::Pooler => {
            if !src.has("pooler.dense.weight") {
                return Err(ConvertError::MissingTensor { name: "pooler.dense.weight".into(), expected: vec![d, d] });
            }
            linear(&mut out, &mut src, "pooler.dense", "pooler.dense", d, d)?;
        }
        None => {}
    }
    Ok(src.finish(tensors, out))
}
