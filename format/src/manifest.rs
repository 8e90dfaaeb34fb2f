//! The JSON manifest: the encoder's configuration, the head, the embedded tokenizer,
//! the keep-rules and the tensor directory. See `docs/FORMAT.md` for every field.

use crate::error::{Error, Result};
use crate::tensor::TensorEntry;
use serde::{Deserialize, Serialize};

/// Encoder family, as in the checkpoint's `model_type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Arch {
    Bert,
    Roberta,
    /// DistilBERT: BERT's layer without token types (the converter stores a zero
    /// token-type table, so type ids change nothing, as in Hugging Face).
    Distilbert,
    /// ELECTRA: BERT's layer; the embeddings may be narrower than the encoder
    /// (`embedding_size`), projected up by `embeddings_project`.
    Electra,
    /// MPNet: BERT's layer without token types, RoBERTa's position ids (pad id 1), and a
    /// relative position bias added to every layer's attention scores
    /// (`relative_attention_buckets`).
    Mpnet,
    /// ModernBERT: pre-norm layers (`norm_first`), a gated GELU feed-forward
    /// (`gated_ffn`), rotary position embeddings instead of a position table
    /// (`rotary`), sliding-window attention on some layers (`local_attention`), and no
    /// token types.
    Modernbert,
    /// DeBERTa-v2 and v3: BERT's post-norm layer with disentangled attention
    /// (`disentangled`: content-to-position and position-to-content scores over
    /// bucketed relative positions), an optional absolute position table, and
    /// `Classifier::Deberta`.
    #[serde(rename = "deberta-v2")]
    DebertaV2,
}

/// DeBERTa's disentangled attention. With `idx(i, j) = clamp(bucket(pos_i - pos_j) +
/// span, 0, 2·span - 1)` over original positions (so it holds after pruning), the score
/// of query `i` and key `j` gains `q_i · pos_key[idx]` (c2p) and `k_j · pos_query[idx]`
/// (p2c), each layer's `attention.self.pos_key` / `pos_query` (`[2·span, d]`, f32) being
/// its key and query projections of the normalised relative embeddings, baked by the
/// converter (the 1/sqrt(dh · (1 + terms)) scale folded into Wq and `pos_query`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Disentangled {
    /// Rows on each side of distance 0 in the position tables (`att_span`).
    pub span: usize,
    /// `position_buckets`: distances past `buckets / 2` are log-bucketed up to
    /// `max_relative_positions`; absent: distances are used as they are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buckets: Option<usize>,
    pub max_relative_positions: usize,
    /// Content-to-position term (`pos_key`).
    pub c2p: bool,
    /// Position-to-content term (`pos_query`).
    pub p2c: bool,
    /// The absolute position table is added to the embeddings too
    /// (`position_biased_input`).
    pub position_table: bool,
}

impl Disentangled {
    /// `bucket(delta)` as Hugging Face's `make_log_bucket_position` computes it, in
    /// `f32`: distances within `buckets / 2` as they are, longer ones on a log scale
    /// reaching `buckets / 2 - 1` more steps at `max_relative_positions`.
    pub fn bucket(&self, delta: i64) -> i64 {
        let Some(size) = self.buckets else { return delta };
        let mid = (size / 2) as i64;
        let abs = if delta < mid && delta > -mid { mid - 1 } else { delta.abs() };
        if abs <= mid {
            return delta;
        }
        let ratio = ((self.max_relative_positions - 1) as f64 / mid as f64) as f32;
        let log = ((abs as f32 / mid as f32).ln() / ratio.ln() * (mid - 1) as f32).ceil() + mid as f32;
        log as i64 * delta.signum()
    }

    /// The position-table row of distance `delta = pos_i - pos_j`.
    pub fn index(&self, delta: i64) -> usize {
        (self.bucket(delta) + self.span as i64).clamp(0, 2 * self.span as i64 - 1) as usize
    }
}

/// Rotary position embeddings (ModernBERT): query and key pairs `(x_i, x_{i + dh/2})`
/// of each head are rotated by `pos · theta^(-2i/dh)`, `pos` the token's original
/// position, so they hold after pruning.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Rotary {
    /// Base of the global-attention layers.
    pub theta: f64,
    /// Base of the sliding-window layers (`local_attention`).
    pub local_theta: f64,
}

/// Sliding-window attention (ModernBERT's local layers): on the listed layers, query
/// `i` sees key `j` only when `|pos_i - pos_j| <= window / 2`, by original positions.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LocalAttention {
    /// The whole window (`local_attention`): `window / 2` positions on each side.
    pub window: usize,
    /// The layers that use it, ascending.
    pub layers: Vec<usize>,
}

impl LocalAttention {
    /// Half-width of layer `layer`'s window, if it is a local layer.
    pub fn half_window(&self, layer: usize) -> Option<usize> {
        self.layers.binary_search(&layer).is_ok().then_some(self.window / 2)
    }
}

/// The number of log-spaced relative-position buckets MPNet's attention bias uses
/// (its code fixes 32, whatever the table's size), and the distance past which they
/// saturate (128).
pub const MPNET_BUCKETS: usize = 32;
pub const MPNET_MAX_DISTANCE: usize = 128;

/// The encoder's hyper-parameters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    pub arch: Arch,
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_layers: usize,
    pub num_heads: usize,
    pub intermediate_size: usize,
    pub max_position_embeddings: usize,
    pub type_vocab_size: usize,
    pub layer_norm_eps: f32,
    /// Always `gelu` (exact erf) for now.
    pub hidden_act: String,
    pub pad_token_id: u32,
    /// Position id of the first token: 0 for BERT, `pad_token_id + 1` for RoBERTa.
    pub position_offset: usize,
    /// Width of the embedding tables when it differs from `hidden_size` (ELECTRA's
    /// small models): the embedding LayerNorm runs at this width and
    /// `embeddings_project` maps its rows to `hidden_size`. Absent: `hidden_size`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embedding_size: Option<usize>,
    /// MPNet: rows of the relative attention bias table
    /// (`encoder.relative_attention_bias.weight`, `[rows, num_heads]`); the buckets
    /// used are the first [`MPNET_BUCKETS`]. Absent for every other architecture.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relative_attention_buckets: Option<usize>,
    /// Pre-norm layers: each layer normalises its input for the attention (layer 0:
    /// no norm) and the attention's residual sum for the FFN, and keeps the sums as
    /// the residual stream. Stored as the post-norm names would be:
    /// `attention.output.LayerNorm` is the FFN's input norm, `output.LayerNorm` of layer
    /// `l` the next layer's attention input norm (the final norm after the last).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub norm_first: bool,
    /// Gated FFN: `intermediate.dense` is `[d, 2 · d_ff]`, and the FFN's inner rows are
    /// `gelu(a) · g` of its halves `[a, g]`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub gated_ffn: bool,
    /// Rotary position embeddings, instead of a position table.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotary: Option<Rotary>,
    /// Sliding-window attention on some layers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_attention: Option<LocalAttention>,
    /// DeBERTa's disentangled attention (`relative_attention`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disentangled: Option<Disentangled>,
}

impl ModelConfig {
    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_heads.max(1)
    }

    /// Width of the embedding tables (`embedding_size`, else `hidden_size`).
    pub fn embedding_width(&self) -> usize {
        self.embedding_size.unwrap_or(self.hidden_size)
    }

    /// The FFN width `w` for which `2 · d · w` is its multiply-adds per token:
    /// `intermediate_size`, or 1.5 times it for a gated FFN (`[d, 2 · d_ff]` in,
    /// `[d_ff, d]` out).
    pub fn ffn_mac_width(&self) -> f64 {
        let ff = self.intermediate_size as f64;
        if self.gated_ffn {
            1.5 * ff
        } else {
            ff
        }
    }

    /// Whether the embeddings add an absolute position table (not with rotary
    /// embeddings, nor DeBERTa's relative-only models).
    pub fn has_position_table(&self) -> bool {
        self.rotary.is_none() && self.disentangled.is_none_or(|r| r.position_table)
    }

    /// Longest sequence the position table allows.
    pub fn max_len(&self) -> usize {
        self.max_position_embeddings.saturating_sub(self.position_offset)
    }

    /// # Errors
    /// Zero or inconsistent sizes.
    pub fn validate(&self) -> Result<()> {
        let c = self;
        if c.hidden_size == 0 || c.num_heads == 0 || !c.hidden_size.is_multiple_of(c.num_heads) {
            return Err(Error::Format(format!(
                "hidden_size {} is not a positive multiple of num_heads {}",
                c.hidden_size, c.num_heads
            )));
        }
        if c.vocab_size == 0 || c.intermediate_size == 0 || c.type_vocab_size == 0 || c.max_len() == 0 {
            return Err(Error::Format("model config has a zero vocab, FFN, type-vocab or position size".into()));
        }
        if c.hidden_act != "gelu" {
            return Err(Error::Format(format!("hidden_act '{}' is not supported (only exact gelu)", c.hidden_act)));
        }
        // RoBERTa position ids run from pad + 1 up to pad + max_len: any other offset
        // would index past the position table.
        if let Some(e) = c.embedding_size {
            if e == 0 || e == c.hidden_size || c.arch != Arch::Electra {
                return Err(Error::Format(format!(
                    "embedding_size {e} is only for ELECTRA models whose embeddings are narrower or wider than \
                     hidden_size {} (nonzero, and absent when equal)",
                    c.hidden_size
                )));
            }
        }
        let modern = c.arch == Arch::Modernbert;
        if modern != (c.norm_first && c.gated_ffn && c.rotary.is_some()) || (!modern && c.local_attention.is_some()) {
            return Err(Error::Format(
                "norm_first, gated_ffn, rotary and local_attention are ModernBERT's, and it needs the first three"
                    .into(),
            ));
        }
        if let Some(r) = c.rotary {
            let ok = |t: f64| t.is_finite() && t > 1.0;
            if !(ok(r.theta) && ok(r.local_theta) && c.head_dim().is_multiple_of(2)) {
                return Err(Error::Format(format!(
                    "rotary embeddings need bases above 1 (found {} and {}) and an even head size (found {})",
                    r.theta,
                    r.local_theta,
                    c.head_dim()
                )));
            }
        }
        if let Some(l) = &c.local_attention {
            let ascending = l.layers.windows(2).all(|p| p[0] < p[1]);
            if l.window < 2 || !ascending || l.layers.last().is_some_and(|&x| x >= c.num_layers) {
                return Err(Error::Format(format!(
                    "local_attention needs a window of at least 2 (found {}) and ascending layers below {} (found {:?})",
                    l.window, c.num_layers, l.layers
                )));
            }
        }
        if let Some(r) = c.disentangled {
            let buckets_ok = r.buckets.is_none_or(|b| b >= 2 && r.max_relative_positions > b / 2 + 1);
            let span_ok = r.span >= 1 && r.span == r.buckets.unwrap_or(r.max_relative_positions);
            if c.arch != Arch::DebertaV2 || !(r.c2p || r.p2c) || !buckets_ok || !span_ok {
                return Err(Error::Format(format!(
                    "disentangled attention is DeBERTa's, needs c2p or p2c, a span equal to its buckets (else to \
                     max_relative_positions) and max_relative_positions above buckets / 2 + 1 (found {r:?})"
                )));
            }
        }
        match (c.arch, c.relative_attention_buckets) {
            (Arch::Mpnet, Some(n)) if n >= MPNET_BUCKETS => {}
            (Arch::Mpnet, n) => {
                return Err(Error::Format(format!(
                    "MPNet needs relative_attention_buckets >= {MPNET_BUCKETS} (found {n:?})"
                )));
            }
            (_, Some(n)) => {
                return Err(Error::Format(format!("relative_attention_buckets {n} is only for MPNet models")));
            }
            (_, None) => {}
        }
        let offset = match c.arch {
            Arch::Bert | Arch::Distilbert | Arch::Electra | Arch::Modernbert | Arch::DebertaV2 => 0,
            Arch::Roberta | Arch::Mpnet => c.pad_token_id as usize + 1,
        };
        if c.position_offset != offset {
            return Err(Error::Format(format!(
                "position_offset {} does not match {:?} with pad_token_id {} (expected {offset})",
                c.position_offset, c.arch, c.pad_token_id
            )));
        }
        if !(c.layer_norm_eps.is_finite() && c.layer_norm_eps >= 0.0) {
            return Err(Error::Format("layer_norm_eps must be finite and >= 0".into()));
        }
        Ok(())
    }
}

/// What the model computes after the encoder.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Task {
    /// Token states (and an embedding if `pooling` is set).
    Encoder,
    /// Logits from a classification head.
    Classification,
    /// A sentence embedding.
    Embedding,
    /// Logits for every token (`[len, num_labels]`): ELECTRA's discriminator. A pruned
    /// token's logits come from its state entering the layer where it was pruned, as
    /// its hidden state does.
    TokenClassification,
}

/// How a sequence is reduced to one vector.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Pooling {
    None,
    /// The final hidden state of the first token.
    Cls,
    /// BERT pooler: `tanh(dense(h[CLS]))`.
    Pooler,
    /// Mean over all tokens of the sequence.
    Mean,
}

/// Classification head shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Classifier {
    /// `classifier(pooler(h[CLS]))` — BERT.
    Bert,
    /// `out_proj(tanh(dense(h[CLS])))` — RoBERTa.
    Roberta,
    /// `classifier(relu(pre_classifier(h[CLS])))` — DistilBERT; stored under RoBERTa's
    /// names (`classifier.dense`, `classifier.out_proj`).
    Distilbert,
    /// `out_proj(gelu(dense(h[CLS])))` — ELECTRA, under RoBERTa's names.
    Electra,
    /// `classifier(LN(gelu(head.dense(h[CLS]))))` — ModernBERT (`head.dense`,
    /// `head.norm`, `classifier`), applied to the final-normed states.
    Modernbert,
    /// [`Classifier::Modernbert`] on the mean of the sequence's final states (its
    /// `classifier_pooling: "mean"`; with pruning, of the tokens reaching the end).
    ModernbertMean,
    /// `classifier(gelu(pooler.dense(h[CLS])))` — DeBERTa's `ContextPooler` and
    /// classifier, stored under RoBERTa's names (`classifier.dense`,
    /// `classifier.out_proj`).
    Deberta,
    /// Per token: `dense_prediction(gelu(dense(h)))` — ELECTRA's replaced-token
    /// discriminator (`discriminator_predictions.*`, one label), a
    /// [`Task::TokenClassification`] head.
    ElectraDiscriminator,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HeadConfig {
    pub task: Task,
    pub pooling: Pooling,
    /// L2-normalise the pooled embedding.
    pub normalize: bool,
    pub classifier: Option<Classifier>,
    pub num_labels: usize,
    /// Label names by class index (may be empty).
    #[serde(default)]
    pub id2label: Vec<String>,
}

/// The embedded tokenizer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TokenizerSpec {
    /// A Hugging Face `tokenizer.json` document (padding and truncation are ignored:
    /// the engine never pads and truncates to `max_length`).
    pub json: String,
    /// Default maximum sequence length in tokens, special tokens included.
    pub max_length: usize,
}

/// A token keep-rule (see `docs/PRUNING.md`). Every rule scores the alive tokens of a
/// sequence with the attention probabilities of the layer *before* its location:
/// `s_j = Σ_heads Σ_alive-query-rows p[h, q, j]`, then chooses which tokens survive.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum KeepRule {
    /// No pruning here.
    None,
    /// ToP rank-bins: rank the alive non-CLS tokens by score (descending; ties by
    /// original position), map rank `r` of `eff` to `bin = trunc(f32(r)/(f32(eff)+1e-6) ·
    /// bin_num)` in float32, keep iff `token_z[bin] != 0`. `gate == false` (ToP's
    /// `pruner_z == 0`) disables the location. [CLS] is always kept.
    TopBins { token_z: Vec<f32>, gate: bool },
    /// LTP absolute threshold: keep iff `s_j / (num_heads · l_ref) >= max(1e-5, theta)`.
    /// [CLS] is always kept (LTP itself does not protect it).
    Threshold { theta: f32, l_ref: usize },
    /// Top-k (PoWER-BERT style): keep [CLS] and the best `k - 1` others, with `k` an
    /// absolute count (`count`) or a fraction of the alive tokens (`ratio`, rounded up).
    TopK {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        count: Option<usize>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ratio: Option<f32>,
    },
}

impl KeepRule {
    /// # Errors
    /// A rule whose parameters make no sense.
    pub fn validate(&self) -> Result<(), String> {
        match self {
            KeepRule::None => Ok(()),
            KeepRule::TopBins { token_z, .. } if token_z.is_empty() || token_z.len() > 100_000 => {
                Err(format!("top_bins: bin_num must be in 1..=100000, got {}", token_z.len()))
            }
            KeepRule::TopBins { token_z, .. } if token_z.iter().any(|z| !z.is_finite()) => {
                Err("top_bins: token_z has a non-finite value".into())
            }
            KeepRule::TopBins { .. } => Ok(()),
            KeepRule::Threshold { theta, l_ref } if !theta.is_finite() || *l_ref == 0 => {
                Err(format!("threshold: theta must be finite and l_ref >= 1 (got {theta}, {l_ref})"))
            }
            KeepRule::Threshold { .. } => Ok(()),
            KeepRule::TopK { count: Some(c), ratio: None } if *c >= 1 => Ok(()),
            KeepRule::TopK { count: None, ratio: Some(r) } if r.is_finite() && *r > 0.0 && *r <= 1.0 => Ok(()),
            KeepRule::TopK { .. } => Err("top_k: give exactly one of count >= 1 or ratio in (0, 1]".into()),
        }
    }

    /// Whether the rule can remove tokens.
    pub fn is_active(&self) -> bool {
        match self {
            KeepRule::None => false,
            KeepRule::TopBins { token_z, gate } => *gate && token_z.contains(&0.0),
            KeepRule::Threshold { .. } | KeepRule::TopK { .. } => true,
        }
    }
}

/// A keep-rule at a layer boundary.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LayerKeepRule {
    /// The prune location: the first layer whose attention sees only the kept tokens.
    /// The decision uses the attention of layer `layer - 1` and is applied right after it,
    /// before that layer's FFN (ToP's convention; `1 <= layer < num_layers`).
    pub layer: usize,
    pub rule: KeepRule,
}

/// The JSON manifest.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format_version: u32,
    pub producer: String,
    pub model: ModelConfig,
    pub head: HeadConfig,
    pub tokenizer: Option<TokenizerSpec>,
    #[serde(default)]
    pub keep_rules: Vec<LayerKeepRule>,
    /// Checkpoint tensors the converter did not use, listed for the record.
    #[serde(default)]
    pub ignored_tensors: Vec<String>,
    /// Free-form facts about the source checkpoint.
    #[serde(default)]
    pub source: serde_json::Value,
    /// How the linears of an int8 file were quantised; absent elsewhere.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantization: Option<Quantization>,
    /// How `keep_rules` were found when `toprt-calibrate` searched them (data
    /// fingerprint and count, target, the MAC reduction and fidelity reached); absent
    /// for rules from training or set by hand, and dropped when the rules change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_rule_calibration: Option<serde_json::Value>,
    pub tensors: Vec<TensorEntry>,
}

/// The record of an int8 file's quantisation (`docs/FORMAT.md`, "int8 files"). Which
/// linear runs in which precision is what the tensor directory says; this names the
/// scheme, lists the linears kept in `f32`, and says how they were chosen.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Quantization {
    /// The scheme, e.g. `"int8 weights symmetric per output channel; activations per
    /// token, dynamic"`.
    pub scheme: String,
    /// Encoder linears kept in `f32` (`encoder.layer.L.intermediate.dense`, …), in order.
    #[serde(default)]
    pub f32_linears: Vec<String>,
    /// How they were chosen: `null` when every linear is int8 (`toprt-convert --dtype
    /// int8`), else the calibration's facts (data hash and count, bound, errors).
    #[serde(default)]
    pub calibration: serde_json::Value,
}
