//! The weights of an opened model, bound by name: every tensor the forward pass reads,
//! found in the file's directory and checked for shape and layout once, at open. The
//! encoder's linear layers are named as in the checkpoint (`attention.self.qkv`,
//! `attention.output.dense`, `intermediate.dense`, `output.dense`) through
//! [`LinearKind`], never by position.

use crate::error::{Error, Result};
use std::ops::Range;
use toprt_format::{self as format, Arch, Classifier, Layout, Manifest, Pooling, Precision, Task};
use toprt_kernels::pack::NR;

/// Byte range of a tensor inside the file image.
pub(crate) type TRange = Range<usize>;

/// The four linear layers of an encoder layer, in the order of the forward pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinearKind {
    /// `attention.self.{query,key,value}`, fused: `[d, 3d]`, Q pre-scaled by
    /// `1/sqrt(head_dim)`.
    Qkv,
    /// `attention.output.dense`: `[d, d]`, followed by the attention LayerNorm.
    AttentionOut,
    /// `intermediate.dense`: `[d, d_ff]`, followed by GELU.
    Intermediate,
    /// `output.dense`: `[d_ff, d]`, followed by the output LayerNorm.
    Output,
}

impl LinearKind {
    /// All four, in the order of the forward pass (and of their index).
    pub const ALL: [LinearKind; 4] =
        [LinearKind::Qkv, LinearKind::AttentionOut, LinearKind::Intermediate, LinearKind::Output];
}

/// One encoder linear layer: its packed weight (logical `[k, n]`) and bias.
#[derive(Clone, Debug)]
pub(crate) struct Linear {
    pub weight: TRange,
    pub bias: TRange,
    pub k: usize,
    pub n: usize,
    /// `f32` (`panel32`), bf16 (`panel32x2`) or int8 (`panel32x4`).
    pub precision: Precision,
    /// int8 weights: the per-column scales and sums (`X.weight_scale`, `X.weight_sum`).
    pub int8: Option<Int8Columns>,
}

/// The column tables of an int8 weight.
#[derive(Clone, Debug)]
pub(crate) struct Int8Columns {
    pub scale: TRange,
    pub sum: TRange,
    /// Input channels kept in `f32` (`X.outlier_index`, `X.outlier_weight`).
    pub outliers: Option<Outliers>,
}

/// The outlier channels of an int8 linear: their indices (ascending, below `k`) and
/// their `f32` weight rows, packed `[c, n]`. The int8 weight holds zeros there, the
/// producer of the input quantises the row without them and gathers them apart.
#[derive(Clone, Debug)]
pub(crate) struct Outliers {
    pub index: Vec<u32>,
    pub weight: TRange,
}

/// A LayerNorm's weight and bias.
#[derive(Clone, Debug)]
pub(crate) struct Norm {
    pub weight: TRange,
    pub bias: TRange,
}

/// One encoder layer.
pub(crate) struct LayerWeights {
    pub qkv: Linear,
    pub attention_out: Linear,
    /// `attention.output.LayerNorm`.
    pub attention_norm: Norm,
    pub intermediate: Linear,
    pub output: Linear,
    /// `output.LayerNorm`.
    pub output_norm: Norm,
}

impl LayerWeights {
    /// The linear layer `kind`.
    pub fn linear(&self, kind: LinearKind) -> &Linear {
        match kind {
            LinearKind::Qkv => &self.qkv,
            LinearKind::AttentionOut => &self.attention_out,
            LinearKind::Intermediate => &self.intermediate,
            LinearKind::Output => &self.output,
        }
    }
}

pub(crate) struct Weights {
    /// Of the encoder's linear weights (pooler and classifier stay `f32`): `f32`, bf16
    /// (all of them), or int8 (at least one; an int8 file may keep some in `f32`).
    pub precision: Precision,
    pub word: TRange,
    /// The absolute position table; `None` with rotary embeddings (ModernBERT).
    pub position: Option<TRange>,
    pub token_type: TRange,
    /// A row of zeros at the embedding width: the position row of models without a
    /// position table.
    pub zero_row: Vec<f32>,
    /// `embeddings.LayerNorm` (at the embedding width).
    pub embedding_norm: Norm,
    /// `(w packed [e, d], b)`: ELECTRA's `embeddings_project`, when the embedding width
    /// `e` differs from the encoder's.
    pub embedding_project: Option<(TRange, TRange)>,
    pub layers: Vec<LayerWeights>,
    /// `(w packed [d, d], b)` of the BERT pooler / RoBERTa classifier dense layer /
    /// ELECTRA discriminator's dense layer.
    pub pooler: Option<(TRange, TRange)>,
    /// `(w packed [d, labels], b)`.
    pub classifier: Option<(TRange, TRange)>,
    /// MPNet's relative position bias, expanded per head and distance.
    pub relative_bias: Option<RelativeBias>,
    /// ModernBERT's `head.norm`, after the head's dense layer and GELU.
    pub head_norm: Option<Norm>,
    /// ModernBERT's rotary tables.
    pub rotary: Option<RotaryTables>,
    /// DeBERTa's disentangled attention tables.
    pub disentangled: Option<crate::disentangled::RelTables>,
}

/// Rotary embeddings' `cos` and `sin` per original position and frequency, for the
/// global and the sliding-window layers' bases: row `p` of a table holds
/// `cos(p · f_i)` (or `sin`) for `i < dh/2`, `f_i = 1 / theta^(2i/dh)`, computed in `f32`
/// as Hugging Face does.
/// Positions past the tables (a file may claim any `max_position_embeddings`, and
/// nothing else vouches for it) get their angles computed on the fly.
pub(crate) struct RotaryTables {
    pub half: usize,
    /// `[global, local]` inverse frequencies `f_i`.
    inv: [Vec<f32>; 2],
    /// `[global, local]`, each `(cos, sin)` of `[rows, half]`.
    tables: [(Vec<f32>, Vec<f32>); 2],
    rows: usize,
}

/// Positions the rotary tables hold (ModernBERT's own limit): 4 MiB for head size 64.
const ROTARY_TABLE_ROWS: usize = 8192;

impl RotaryTables {
    fn new(r: format::Rotary, dh: usize, max_len: usize) -> RotaryTables {
        let half = dh / 2;
        let rows = max_len.min(ROTARY_TABLE_ROWS);
        let inv = |theta: f64| -> Vec<f32> {
            (0..half).map(|i| 1.0f32 / (theta as f32).powf((2 * i) as f32 / dh as f32)).collect()
        };
        let inv = [inv(r.theta), inv(r.local_theta)];
        let table = |inv: &[f32]| {
            let (mut cos, mut sin) = (Vec::with_capacity(rows * half), Vec::with_capacity(rows * half));
            for p in 0..rows {
                for &f in inv {
                    let a = p as f32 * f;
                    cos.push(a.cos());
                    sin.push(a.sin());
                }
            }
            (cos, sin)
        };
        let tables = [table(&inv[0]), table(&inv[1])];
        RotaryTables { half, inv, tables, rows }
    }

    /// Rotates the query and key parts of one `[3d]` QKV row, at original position
    /// `pos`, with the local layers' base when `local`: each head's pair
    /// `(x_i, x_{i+half})` becomes `(x_i c - x_{i+half} s, x_{i+half} c + x_i s)`.
    pub fn rotate(&self, row: &mut [f32], d: usize, pos: usize, local: bool) {
        let h = self.half;
        let (cos, sin) = &self.tables[usize::from(local)];
        let (mut far_c, mut far_s) = (Vec::new(), Vec::new());
        let (c, s) = if pos < self.rows {
            (&cos[pos * h..pos * h + h], &sin[pos * h..pos * h + h])
        } else {
            for &f in &self.inv[usize::from(local)] {
                far_c.push((pos as f32 * f).cos());
                far_s.push((pos as f32 * f).sin());
            }
            (&far_c[..], &far_s[..])
        };
        for head in row[..2 * d].chunks_exact_mut(2 * h) {
            let (lo, hi) = head.split_at_mut(h);
            for i in 0..h {
                let (a, b) = (lo[i], hi[i]);
                lo[i] = a * c[i] + -b * s[i];
                hi[i] = b * c[i] + a * s[i];
            }
        }
    }
}

/// MPNet's relative position bias, expanded at open to one value per head and signed
/// distance `j - i` between a key and a query (original positions, so it holds after
/// pruning): `table[h * span + (max_len - 1) + (j - i)]`, `span = 2 · max_len - 1`.
pub(crate) struct RelativeBias {
    pub table: Vec<f32>,
    pub max_len: usize,
}

impl RelativeBias {
    /// Head `h`'s row and the index of distance 0 in it.
    pub fn head(&self, h: usize) -> (&[f32], usize) {
        let span = 2 * self.max_len - 1;
        (&self.table[h * span..(h + 1) * span], self.max_len - 1)
    }
}

/// MPNet's bucket of a relative position `j - i` (key minus query): exact for distances
/// below 8, log-spaced up to 128, then the last bucket; keys after the query get the
/// upper 16. Computed in `f32` as Hugging Face's `relative_position_bucket` does, so the
/// boundaries agree (the golden tests check every distance of a 512-token sequence).
pub fn relative_position_bucket(relative_position: i64) -> usize {
    let half = format::MPNET_BUCKETS / 2;
    let max_exact = half / 2;
    let n = -relative_position;
    let upper = if n < 0 { half } else { 0 };
    let n = n.unsigned_abs() as usize;
    if n < max_exact {
        return upper + n;
    }
    let scale = ((format::MPNET_MAX_DISTANCE / max_exact) as f64).ln() as f32;
    let large = max_exact + ((n as f32 / max_exact as f32).ln() / scale * (half - max_exact) as f32) as usize;
    upper + large.min(half - 1)
}

/// Sizes of the packed layouts for the file's validation: the kernels define them.
pub(crate) fn packed_bytes(layout: Layout, k: usize, n: usize) -> Option<u64> {
    toprt_kernels::pack::packed_bytes(layout.name(), k, n)
}

/// Finds every tensor the forward pass needs, checks its shape and layout, and returns
/// absolute byte ranges.
pub(crate) fn bind_weights(m: &Manifest, bytes: &[u8], data_offset: usize) -> Result<Weights> {
    let c = &m.model;
    let (d, ff, l) = (c.hidden_size, c.intermediate_size, c.num_layers);
    // Sizes come from the file: a lying one must give an error, not an overflow or an
    // allocation sized by the claim. Every layer needs 16 tensors, so a layer count
    // beyond the directory is refused before anything is reserved for it.
    let d3 = d.checked_mul(3).ok_or_else(|| Error::Format(format!("hidden_size {d} is too large")))?;
    if l > m.tensors.len() {
        return Err(Error::Format(format!(
            "num_layers {l} is more than the {} tensors of the directory allow",
            m.tensors.len()
        )));
    }
    let index: std::collections::HashMap<&str, &format::TensorEntry> =
        m.tensors.iter().map(|t| (t.name.as_str(), t)).collect();
    let get = |name: &str, layout: Layout, shape: &[usize]| -> Result<TRange> {
        match index.get(name) {
            Some(t) if t.layout == layout && t.shape == shape => {
                let start = data_offset + t.offset as usize;
                Ok(start..start + t.length as usize)
            }
            _ => Err(Error::Tensor { name: name.to_string(), expected: shape.to_vec() }),
        }
    };
    let row = |name: &str, shape: &[usize]| get(name, Layout::RowMajor, shape);
    let packed = |name: &str, k: usize, n: usize| get(name, Layout::Panel32, &[k, n]);
    // The encoder's linear weights are all bf16 `panel32x2`, or each f32 `panel32` or
    // int8 `panel32x4` (an int8 file may keep some linears in f32); the first decides
    // whether the file is bf16.
    let first = index.get("encoder.layer.0.attention.self.qkv.weight").map(|t| t.layout);
    let bf16 = first == Some(Layout::Panel32x2);
    let weight = |name: &str, k: usize, n: usize| -> Result<(TRange, Precision)> {
        let allowed =
            |l: Layout| if bf16 { l == Layout::Panel32x2 } else { matches!(l, Layout::Panel32 | Layout::Panel32x4) };
        match index.get(name) {
            Some(t) if !allowed(t.layout) && t.shape == [k, n] => Err(Error::Format(format!(
                "tensor '{name}' is {:?} {:?}, but the encoder's first weight is {:?}: the encoder's linear \
                 weights must all have one precision (an int8 file may keep some in f32)",
                t.dtype,
                t.layout,
                first.unwrap_or(Layout::Panel32)
            ))),
            Some(t) if allowed(t.layout) => Ok((get(name, t.layout, &[k, n])?, t.dtype)),
            _ => Err(Error::Tensor { name: name.to_string(), expected: vec![k, n] }),
        }
    };
    let f32s = |r: &TRange| -> &[f32] { bytemuck::cast_slice(&bytes[r.clone()]) };
    // An int8 weight's column tables: positive finite scales, integral sums a `k`-deep
    // column of -127..=127 can have; the weight itself never holds -128 (the AVX2
    // kernel's saturation bound relies on it).
    let int8_columns = |name: &str, weight: &TRange, k: usize, n: usize| -> Result<Int8Columns> {
        let scale = row(&format!("{name}.weight_scale"), &[n])?;
        let sum = row(&format!("{name}.weight_sum"), &[n])?;
        if let Some((j, v)) = f32s(&scale).iter().enumerate().find(|(_, v)| !(v.is_finite() && **v > 0.0)) {
            return Err(Error::Format(format!(
                "tensor '{name}.weight_scale': column {j} has scale {v} (must be positive and finite)"
            )));
        }
        let limit = 127.0 * k as f64;
        if let Some((j, v)) =
            f32s(&sum).iter().enumerate().find(|(_, v)| !(v.fract() == 0.0 && f64::from(v.abs()) <= limit))
        {
            return Err(Error::Format(format!(
                "tensor '{name}.weight_sum': column {j} has sum {v} (must be an integer within ±127·{k})"
            )));
        }
        if let Some(at) = bytes[weight.clone()].iter().position(|&b| b == 0x80) {
            return Err(Error::Format(format!(
                "tensor '{name}.weight': byte {at} is -128 (int8 weights lie in -127..=127)"
            )));
        }
        // The sums must be the weight's: a wrong one would shift every output of its
        // column by 128 · error · scale, silently. One pass over the bytes, in the
        // panel32x4 order: each 128-byte quad row holds 4 bytes of each of 32 columns.
        let mut got = vec![0i64; n];
        let quads = k.div_ceil(4);
        for (i, quad_row) in bytes[weight.clone()].chunks_exact(4 * NR).enumerate() {
            let first = (i / quads) * NR;
            for (c, b) in quad_row.chunks_exact(4).enumerate().take(n.saturating_sub(first)) {
                got[first + c] += b.iter().map(|&x| i64::from(x as i8)).sum::<i64>();
            }
        }
        if let Some((j, (&v, g))) = f32s(&sum).iter().zip(&got).enumerate().find(|(_, (v, g))| **v as i64 != **g) {
            return Err(Error::Format(format!(
                "tensor '{name}.weight_sum': column {j} has sum {v}, but its weights sum to {g}"
            )));
        }
        let index_name = format!("{name}.outlier_index");
        let outliers = match index.get(index_name.as_str()) {
            None => None,
            Some(t) => {
                let c = t.shape.first().copied().unwrap_or(0);
                let range = row(&index_name, &[c])?;
                let values = f32s(&range);
                let ok = c > 0
                    && values.iter().all(|v| v.fract() == 0.0 && *v >= 0.0 && (*v as usize) < k)
                    && values.windows(2).all(|p| p[0] < p[1]);
                if !ok {
                    return Err(Error::Format(format!(
                        "tensor '{index_name}': outlier channels must be ascending integers below {k}"
                    )));
                }
                let weight = get(&format!("{name}.outlier_weight"), Layout::Panel32, &[c, n])?;
                Some(Outliers { index: values.iter().map(|&v| v as u32).collect(), weight })
            }
        };
        Ok(Int8Columns { scale, sum, outliers })
    };
    let mut int8_seen = false;
    let mut layers = Vec::with_capacity(l);
    for i in 0..l {
        let p = |s: &str| format!("encoder.layer.{i}.{s}");
        let mut linear = |name: &str, k: usize, n: usize| -> Result<Linear> {
            let (w, precision) = weight(&p(&format!("{name}.weight")), k, n)?;
            let int8 = match precision {
                Precision::Int8 => {
                    int8_seen = true;
                    Some(int8_columns(&p(name), &w, k, n)?)
                }
                _ => None,
            };
            Ok(Linear { weight: w, bias: row(&p(&format!("{name}.bias")), &[n])?, k, n, precision, int8 })
        };
        let norm = |name: &str| -> Result<Norm> {
            Ok(Norm {
                weight: row(&p(&format!("{name}.weight")), &[d])?,
                bias: row(&p(&format!("{name}.bias")), &[d])?,
            })
        };
        layers.push(LayerWeights {
            qkv: linear("attention.self.qkv", d, d3)?,
            attention_out: linear("attention.output.dense", d, d)?,
            attention_norm: norm("attention.output.LayerNorm")?,
            intermediate: linear("intermediate.dense", d, if c.gated_ffn { 2 * ff } else { ff })?,
            output: linear("output.dense", ff, d)?,
            output_norm: norm("output.LayerNorm")?,
        });
    }
    let h = &m.head;
    let labels = h.num_labels;
    let (pooler, classifier) = match (h.task, h.classifier) {
        (Task::Classification, Some(Classifier::Bert)) => (
            Some((packed("pooler.dense.weight", d, d)?, row("pooler.dense.bias", &[d])?)),
            Some((packed("classifier.weight", d, labels)?, row("classifier.bias", &[labels])?)),
        ),
        (
            Task::Classification,
            Some(Classifier::Roberta | Classifier::Distilbert | Classifier::Electra | Classifier::Deberta),
        ) => (
            Some((packed("classifier.dense.weight", d, d)?, row("classifier.dense.bias", &[d])?)),
            Some((packed("classifier.out_proj.weight", d, labels)?, row("classifier.out_proj.bias", &[labels])?)),
        ),
        (Task::Classification, Some(Classifier::Modernbert | Classifier::ModernbertMean)) => (
            Some((packed("head.dense.weight", d, d)?, row("head.dense.bias", &[d])?)),
            Some((packed("classifier.weight", d, labels)?, row("classifier.bias", &[labels])?)),
        ),
        (Task::TokenClassification, Some(Classifier::ElectraDiscriminator)) => {
            let p = "discriminator_predictions";
            (
                Some((packed(&format!("{p}.dense.weight"), d, d)?, row(&format!("{p}.dense.bias"), &[d])?)),
                Some((
                    packed(&format!("{p}.dense_prediction.weight"), d, labels)?,
                    row(&format!("{p}.dense_prediction.bias"), &[labels])?,
                )),
            )
        }
        (Task::Classification | Task::TokenClassification, classifier) => {
            return Err(Error::Format(format!("{:?} head with a {classifier:?} classifier", h.task)));
        }
        (_, Some(classifier)) => {
            return Err(Error::Format(format!("{:?} head with a {classifier:?} classifier", h.task)));
        }
        _ if h.pooling == Pooling::Pooler => {
            (Some((packed("pooler.dense.weight", d, d)?, row("pooler.dense.bias", &[d])?)), None)
        }
        _ => (None, None),
    };
    let logits = matches!(h.task, Task::Classification | Task::TokenClassification);
    if logits && labels == 0 {
        return Err(Error::Format("classification head with zero labels".into()));
    }
    // The session sizes its logits buffer by the label count: without a classifier no
    // tensor vouches for it.
    if !logits && labels != 0 {
        return Err(Error::Format(format!("{:?} head with num_labels {labels} (expected 0)", h.task)));
    }
    if h.task == Task::Embedding && h.pooling == Pooling::None {
        return Err(Error::Format("embedding head without a pooling method".into()));
    }
    if matches!(c.arch, Arch::Roberta | Arch::Mpnet) && h.classifier == Some(Classifier::Bert) {
        return Err(Error::Format("RoBERTa model with a BERT classifier head".into()));
    }
    if (c.arch == Arch::Distilbert) != (h.classifier == Some(Classifier::Distilbert)) && h.classifier.is_some() {
        return Err(Error::Format(format!("{:?} model with a {:?} classifier head", c.arch, h.classifier)));
    }
    let modern_head = matches!(h.classifier, Some(Classifier::Modernbert | Classifier::ModernbertMean));
    if (c.arch == Arch::Modernbert) != modern_head && h.classifier.is_some() {
        return Err(Error::Format(format!("{:?} model with a {:?} classifier head", c.arch, h.classifier)));
    }
    let electra_head = matches!(h.classifier, Some(Classifier::Electra | Classifier::ElectraDiscriminator));
    if (c.arch == Arch::Electra) != electra_head && h.classifier.is_some() {
        return Err(Error::Format(format!("{:?} model with a {:?} classifier head", c.arch, h.classifier)));
    }
    if (c.arch == Arch::DebertaV2) != (h.classifier == Some(Classifier::Deberta)) && h.classifier.is_some() {
        return Err(Error::Format(format!("{:?} model with a {:?} classifier head", c.arch, h.classifier)));
    }
    let e = c.embedding_width();
    let embedding_project = match c.embedding_size {
        Some(_) => Some((packed("embeddings_project.weight", e, d)?, row("embeddings_project.bias", &[d])?)),
        None => None,
    };
    let precision = if bf16 {
        Precision::Bf16
    } else if int8_seen {
        Precision::Int8
    } else {
        Precision::F32
    };
    let relative_bias = match c.relative_attention_buckets {
        None => None,
        Some(rows) => {
            let nh = c.num_heads;
            let w = f32s(&row("encoder.relative_attention_bias.weight", &[rows, nh])?);
            let max_len = c.max_len();
            let span = 2 * max_len - 1;
            let mut table = vec![0.0f32; nh * span];
            for (i, delta) in (-(max_len as i64 - 1)..max_len as i64).enumerate() {
                let b = relative_position_bucket(delta);
                for h in 0..nh {
                    table[h * span + i] = w[b * nh + h];
                }
            }
            Some(RelativeBias { table, max_len })
        }
    };
    let head_norm = match modern_head {
        true => Some(Norm { weight: row("head.norm.weight", &[d])?, bias: row("head.norm.bias", &[d])? }),
        false => None,
    };
    // The position table (not with rotary embeddings or relative-only DeBERTa).
    let rotary = c.rotary.map(|r| RotaryTables::new(r, c.head_dim(), c.max_len()));
    let position = match c.has_position_table() {
        true => Some(row("embeddings.position_embeddings.weight", &[c.max_position_embeddings, e])?),
        false => None,
    };
    let disentangled = match c.disentangled {
        None => None,
        Some(r) => {
            let shape = [2 * r.span, d];
            let table = |on: bool, name: &str| -> Result<Vec<Option<&[f32]>>> {
                (0..l)
                    .map(|i| {
                        let p = format!("encoder.layer.{i}.attention.self.{name}");
                        on.then(|| row(&p, &shape).map(|t| f32s(&t))).transpose()
                    })
                    .collect()
            };
            let (keys, queries) = (table(r.c2p, "pos_key")?, table(r.p2c, "pos_query")?);
            Some(crate::disentangled::RelTables::new(r, c.num_heads, c.head_dim(), c.max_len(), &keys, &queries)?)
        }
    };
    Ok(Weights {
        disentangled,
        relative_bias,
        head_norm,
        rotary,
        precision,
        word: row("embeddings.word_embeddings.weight", &[c.vocab_size, e])?,
        position,
        zero_row: vec![0.0; e],
        token_type: row("embeddings.token_type_embeddings.weight", &[c.type_vocab_size, e])?,
        embedding_norm: Norm {
            weight: row("embeddings.LayerNorm.weight", &[e])?,
            bias: row("embeddings.LayerNorm.bias", &[e])?,
        },
        embedding_project,
        layers,
        pooler,
        classifier,
    })
}
