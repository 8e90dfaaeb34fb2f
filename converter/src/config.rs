//! Mapping a Hugging Face `config.json` (and a sentence-transformers folder's
//! `modules.json` / `1_Pooling/config.json`) to toprt's model and head description.

use crate::error::{io_err, ConvertError, Result};
use serde_json::Value;
use std::path::Path;
use toprt_format::{Arch, Classifier, HeadConfig, ModelConfig, Pooling, Task};

/// What `config.json` says, plus the facts the head needs.
#[derive(Clone, Debug)]
pub struct HfConfig {
    pub model: ModelConfig,
    pub architectures: Vec<String>,
    pub num_labels: usize,
    pub id2label: Vec<String>,
    pub raw: Value,
}

fn get_usize(v: &Value, key: &str, default: Option<usize>) -> Result<usize> {
    match v.get(key) {
        Some(x) => x
            .as_u64()
            .map(|x| x as usize)
            .ok_or_else(|| ConvertError::Config(format!("\"{key}\" must be a non-negative integer, found {x}"))),
        None => default.ok_or_else(|| ConvertError::Config(format!("missing \"{key}\""))),
    }
}

/// Reads and maps `dir/config.json`.
///
/// # Errors
/// [`ConvertError::UnsupportedModelType`] for anything but bert/roberta/distilbert/electra/mpnet
/// (and RoBERTa's relatives), and
/// [`ConvertError::Config`] naming a missing or invalid field.
pub fn read_config(dir: &Path) -> Result<HfConfig> {
    let path = dir.join("config.json");
    let text = std::fs::read_to_string(&path).map_err(io_err(&path))?;
    let v: Value =
        serde_json::from_str(&text).map_err(|e| ConvertError::Parse { path: path.clone(), msg: e.to_string() })?;
    parse_config(v)
}

/// Maps a parsed `config.json`.
///
/// # Errors
/// See [`read_config`].
pub fn parse_config(v: Value) -> Result<HfConfig> {
    let model_type = v
        .get("model_type")
        .and_then(|m| m.as_str())
        .ok_or_else(|| ConvertError::Config("missing \"model_type\"".into()))?;
    let arch = match model_type {
        "bert" => Arch::Bert,
        // LTP checkpoints are I-BERT (quant_mode off), i.e. RoBERTa with an "ibert." prefix.
        // XLM-RoBERTa and CamemBERT are RoBERTa's layout with their own vocabulary
        // (SentencePiece, in tokenizer.json).
        "roberta" | "ibert" | "ltp" | "xlm-roberta" | "camembert" => Arch::Roberta,
        "distilbert" => Arch::Distilbert,
        "electra" => Arch::Electra,
        "mpnet" => Arch::Mpnet,
        "modernbert" => return parse_modernbert(v),
        "deberta-v2" => return parse_deberta(v),
        other => return Err(ConvertError::UnsupportedModelType(other.to_string())),
    };
    // DistilBERT names its sizes differently and has no token types.
    let distil = arch == Arch::Distilbert;
    let key = |bert: &'static str, distilbert: &'static str| if distil { distilbert } else { bert };
    let act = v.get(key("hidden_act", "activation")).and_then(|a| a.as_str()).unwrap_or("gelu");
    if act != "gelu" {
        return Err(ConvertError::Config(format!(
            "hidden_act \"{act}\" is not supported (toprt implements the exact erf \"gelu\")"
        )));
    }
    if let Some(p) = v.get("position_embedding_type").and_then(|p| p.as_str()) {
        if p != "absolute" {
            return Err(ConvertError::Config(format!(
                "position_embedding_type \"{p}\" is not supported (only \"absolute\")"
            )));
        }
    }
    let default_pad = if matches!(arch, Arch::Roberta | Arch::Mpnet) { 1 } else { 0 };
    let pad = get_usize(&v, "pad_token_id", Some(default_pad))?;
    if arch == Arch::Mpnet && pad != 1 {
        // MPNet's embeddings number positions from a padding id fixed at 1 in its code.
        return Err(ConvertError::Config(format!("MPNet's pad_token_id must be 1 (found {pad})")));
    }
    let pad = u32::try_from(pad)
        .map_err(|_| ConvertError::Config(format!("\"pad_token_id\" {pad} does not fit a 32-bit token id")))?;
    let hidden_size = get_usize(&v, key("hidden_size", "dim"), None)?;
    // ELECTRA's small models embed at 128 and project up to the encoder's width.
    let embedding_size = match arch {
        Arch::Electra => match get_usize(&v, "embedding_size", Some(hidden_size))? {
            0 => return Err(ConvertError::Config("\"embedding_size\" must be positive".into())),
            e => (e != hidden_size).then_some(e),
        },
        _ => None,
    };
    let model = ModelConfig {
        arch,
        vocab_size: get_usize(&v, "vocab_size", None)?,
        hidden_size,
        num_layers: get_usize(&v, key("num_hidden_layers", "n_layers"), None)?,
        num_heads: get_usize(&v, key("num_attention_heads", "n_heads"), None)?,
        intermediate_size: get_usize(&v, key("intermediate_size", "hidden_dim"), None)?,
        max_position_embeddings: get_usize(&v, "max_position_embeddings", Some(512))?,
        // DistilBERT: two zero rows (bake.rs), so BERT-style pair type ids are accepted
        // and, as in Hugging Face, change nothing.
        // MPNet: no token types (its tokenizer gives zeros), one zero row (bake.rs).
        type_vocab_size: match arch {
            Arch::Distilbert => 2,
            Arch::Mpnet => 1,
            _ => get_usize(&v, "type_vocab_size", Some(2))?,
        },
        // DistilBERT's LayerNorms use PyTorch's default eps, 1e-12 in its code.
        layer_norm_eps: if distil {
            1e-12
        } else {
            v.get("layer_norm_eps").and_then(|e| e.as_f64()).unwrap_or(1e-12) as f32
        },
        hidden_act: "gelu".into(),
        pad_token_id: pad,
        position_offset: if matches!(arch, Arch::Roberta | Arch::Mpnet) { pad as usize + 1 } else { 0 },
        embedding_size,
        relative_attention_buckets: if arch == Arch::Mpnet {
            Some(get_usize(&v, "relative_attention_num_buckets", Some(32))?)
        } else {
            None
        },
        norm_first: false,
        gated_ffn: false,
        rotary: None,
        local_attention: None,
        disentangled: None,
    };
    finish(model, v)
}

/// The labels and architectures of a mapped config.
fn finish(model: ModelConfig, v: Value) -> Result<HfConfig> {
    model.validate().map_err(|e| ConvertError::Config(e.to_string()))?;
    let architectures: Vec<String> = v
        .get("architectures")
        .and_then(|a| a.as_array())
        .map(|a| a.iter().filter_map(|s| s.as_str().map(String::from)).collect())
        .unwrap_or_default();
    let mut id2label: Vec<(usize, String)> = v
        .get("id2label")
        .and_then(|m| m.as_object())
        .map(|m| m.iter().filter_map(|(k, l)| Some((k.parse().ok()?, l.as_str()?.to_string()))).collect())
        .unwrap_or_default();
    id2label.sort();
    let num_labels = match v.get("num_labels").and_then(|n| n.as_u64()) {
        Some(n) => n as usize,
        None if !id2label.is_empty() => id2label.len(),
        None => 2,
    };
    let id2label = if id2label.len() == num_labels && id2label.iter().enumerate().all(|(i, (k, _))| *k == i) {
        id2label.into_iter().map(|(_, l)| l).collect()
    } else {
        Vec::new()
    };
    Ok(HfConfig { model, architectures, num_labels, id2label, raw: v })
}

/// The biases a ModernBERT config turns on (`*_bias`; all off in ModernBERT's own
/// models): absent ones are stored as zeros.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ModernbertBiases {
    pub attention: bool,
    pub mlp: bool,
    pub norm: bool,
    pub classifier: bool,
}

impl ModernbertBiases {
    /// Read from the raw `config.json` (`false` when absent, as in Hugging Face).
    pub fn of(raw: &Value) -> ModernbertBiases {
        let flag = |k: &str| raw.get(k).and_then(Value::as_bool).unwrap_or(false);
        ModernbertBiases {
            attention: flag("attention_bias"),
            mlp: flag("mlp_bias"),
            norm: flag("norm_bias"),
            classifier: flag("classifier_bias"),
        }
    }
}

/// ModernBERT's `config.json`: both the older keys (`global_attn_every_n_layers`,
/// `global_rope_theta`, `local_rope_theta`) and the newer `layer_types` /
/// `rope_parameters` that transformers 5 writes.
fn parse_modernbert(v: Value) -> Result<HfConfig> {
    for key in ["hidden_activation", "classifier_activation"] {
        match v.get(key).and_then(Value::as_str).unwrap_or("gelu") {
            "gelu" => {}
            other => {
                return Err(ConvertError::Config(format!(
                    "\"{key}\" \"{other}\" is not supported (toprt implements the exact erf \"gelu\")"
                )))
            }
        }
    }
    match v.get("classifier_pooling").and_then(Value::as_str).unwrap_or("cls") {
        "cls" | "mean" => {}
        other => {
            return Err(ConvertError::Config(format!(
                "\"classifier_pooling\" \"{other}\" is not supported (only \"cls\" or \"mean\")"
            )))
        }
    }
    let num_layers = get_usize(&v, "num_hidden_layers", None)?;
    // Which layers slide: `layer_types`, else every layer but each n-th.
    let local: Vec<usize> = match v.get("layer_types").filter(|t| !t.is_null()) {
        Some(types) => {
            let types =
                types.as_array().ok_or_else(|| ConvertError::Config("\"layer_types\" must be a list".into()))?;
            if types.len() != num_layers {
                return Err(ConvertError::Config(format!(
                    "\"layer_types\" has {} entries for {num_layers} layers",
                    types.len()
                )));
            }
            let mut local = Vec::new();
            for (i, t) in types.iter().enumerate() {
                match t.as_str() {
                    Some("full_attention") => {}
                    Some("sliding_attention") => local.push(i),
                    _ => {
                        return Err(ConvertError::Config(format!("layer_types[{i}] {t} is not a known attention type")))
                    }
                }
            }
            local
        }
        None => match get_usize(&v, "global_attn_every_n_layers", Some(3))? {
            0 => return Err(ConvertError::Config("\"global_attn_every_n_layers\" must be positive".into())),
            n => (0..num_layers).filter(|i| i % n != 0).collect(),
        },
    };
    // Rotary bases: `rope_parameters[type].rope_theta`, else the older keys.
    let theta = |kind: &str, old: &str, default: f64| -> Result<f64> {
        let params = v.get("rope_parameters").and_then(|p| p.get(kind)).filter(|p| !p.is_null());
        if let Some(p) = params {
            let ty = p.get("rope_type").and_then(Value::as_str).unwrap_or("default");
            if ty != "default" {
                return Err(ConvertError::Config(format!(
                    "rope_parameters.{kind}.rope_type \"{ty}\" is not supported (only \"default\")"
                )));
            }
            if let Some(t) = p.get("rope_theta") {
                return t
                    .as_f64()
                    .ok_or_else(|| ConvertError::Config(format!("rope_parameters.{kind}.rope_theta {t}")));
            }
        }
        match v.get(old) {
            Some(t) => t.as_f64().ok_or_else(|| ConvertError::Config(format!("\"{old}\" must be a number, found {t}"))),
            None => Ok(default),
        }
    };
    let rotary = toprt_format::Rotary {
        theta: theta("full_attention", "global_rope_theta", 160_000.0)?,
        local_theta: theta("sliding_attention", "local_rope_theta", 10_000.0)?,
    };
    let pad = get_usize(&v, "pad_token_id", Some(50283))?;
    let pad = u32::try_from(pad)
        .map_err(|_| ConvertError::Config(format!("\"pad_token_id\" {pad} does not fit a 32-bit token id")))?;
    let model = ModelConfig {
        arch: Arch::Modernbert,
        vocab_size: get_usize(&v, "vocab_size", None)?,
        hidden_size: get_usize(&v, "hidden_size", None)?,
        num_layers,
        num_heads: get_usize(&v, "num_attention_heads", None)?,
        intermediate_size: get_usize(&v, "intermediate_size", None)?,
        max_position_embeddings: get_usize(&v, "max_position_embeddings", Some(8192))?,
        // No token types: two zero rows (bake.rs), so pair type ids change nothing.
        type_vocab_size: 2,
        layer_norm_eps: v.get("norm_eps").and_then(Value::as_f64).unwrap_or(1e-5) as f32,
        hidden_act: "gelu".into(),
        pad_token_id: pad,
        position_offset: 0,
        embedding_size: None,
        relative_attention_buckets: None,
        norm_first: true,
        gated_ffn: true,
        rotary: Some(rotary),
        local_attention: (!local.is_empty())
            .then(|| {
                get_usize(&v, "local_attention", Some(128))
                    .map(|window| toprt_format::LocalAttention { window, layers: local })
            })
            .transpose()?,
        disentangled: None,
    };
    finish(model, v)
}

fn get_i64(v: &Value, key: &str, default: i64) -> Result<i64> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(x) => x.as_i64().ok_or_else(|| ConvertError::Config(format!("\"{key}\" must be an integer, found {x}"))),
    }
}

/// What a DeBERTa-v2 `config.json` says beyond [`ModelConfig`], for baking.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DebertaFacts {
    /// The position tables come from the content projections (`share_att_key`), not
    /// from `pos_key_proj` / `pos_query_proj`.
    pub share_att_key: bool,
    /// `encoder.LayerNorm` normalises the relative embeddings (`norm_rel_ebd`).
    pub norm_rel: bool,
    /// The checkpoint has a token-type table (`type_vocab_size > 0`).
    pub token_types: bool,
    /// `1 + ` the position terms in `pos_att_type`: q·kᵀ and both terms are divided by
    /// `sqrt(head_dim · scale_factor)`.
    pub scale_factor: usize,
}

impl DebertaFacts {
    /// # Errors
    /// An unknown `pos_att_type` entry.
    pub fn of(raw: &Value) -> Result<DebertaFacts> {
        let (c2p, p2c) = pos_att_type(raw)?;
        Ok(DebertaFacts {
            share_att_key: raw.get("share_att_key").and_then(Value::as_bool).unwrap_or(false),
            norm_rel: raw.get("norm_rel_ebd").and_then(Value::as_str).is_some_and(|n| n.contains("layer_norm")),
            token_types: get_usize(raw, "type_vocab_size", Some(0))? > 0,
            scale_factor: 1 + usize::from(c2p) + usize::from(p2c),
        })
    }
}

/// DeBERTa's `pos_att_type` (a list, or `"p2c|c2p"` as older configs write it):
/// whether it has `c2p` and `p2c`.
fn pos_att_type(v: &Value) -> Result<(bool, bool)> {
    let items: Vec<String> = match v.get("pos_att_type") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) => s.to_lowercase().split('|').map(|x| x.trim().to_string()).collect(),
        Some(Value::Array(a)) => a.iter().map(|x| x.as_str().unwrap_or("?").to_string()).collect(),
        Some(other) => return Err(ConvertError::Config(format!("\"pos_att_type\" must be a list, found {other}"))),
    };
    if let Some(bad) = items.iter().find(|x| !matches!(x.as_str(), "c2p" | "p2c" | "")) {
        return Err(ConvertError::Config(format!(
            "\"pos_att_type\" entry \"{bad}\" is not supported (only \"c2p\" and \"p2c\")"
        )));
    }
    Ok((items.iter().any(|x| x == "c2p"), items.iter().any(|x| x == "p2c")))
}

/// DeBERTa-v2 and v3's `config.json` (`model_type` "deberta-v2").
fn parse_deberta(v: Value) -> Result<HfConfig> {
    for key in ["hidden_act", "pooler_hidden_act"] {
        match v.get(key).and_then(Value::as_str).unwrap_or("gelu") {
            "gelu" => {}
            other => {
                return Err(ConvertError::Config(format!(
                    "\"{key}\" \"{other}\" is not supported (toprt implements the exact erf \"gelu\")"
                )))
            }
        }
    }
    let hidden_size = get_usize(&v, "hidden_size", None)?;
    let num_heads = get_usize(&v, "num_attention_heads", None)?;
    if get_usize(&v, "conv_kernel_size", Some(0))? > 0 {
        return Err(ConvertError::Config("DeBERTa's convolution layer (\"conv_kernel_size\") is not supported".into()));
    }
    for (key, want) in [
        ("embedding_size", hidden_size),
        ("pooler_hidden_size", hidden_size),
        ("attention_head_size", hidden_size / num_heads.max(1)),
    ] {
        if let Some(x) = v.get(key).filter(|x| !x.is_null()) {
            if x.as_u64() != Some(want as u64) {
                return Err(ConvertError::Config(format!(
                    "\"{key}\" {x} is not supported (toprt runs DeBERTa with it equal to {want})"
                )));
            }
        }
    }
    let max_position_embeddings = get_usize(&v, "max_position_embeddings", Some(512))?;
    let position_table = v.get("position_biased_input").and_then(Value::as_bool).unwrap_or(true);
    let (c2p, p2c) = pos_att_type(&v)?;
    let relative = v.get("relative_attention").and_then(Value::as_bool).unwrap_or(false) && (c2p || p2c);
    let disentangled = if relative {
        let buckets = get_i64(&v, "position_buckets", -1)?;
        let max_rel = match get_i64(&v, "max_relative_positions", -1)? {
            m if m < 1 => max_position_embeddings,
            m => m as usize,
        };
        let buckets = (buckets > 0).then_some(buckets as usize);
        Some(toprt_format::Disentangled {
            span: buckets.unwrap_or(max_rel),
            buckets,
            max_relative_positions: max_rel,
            c2p,
            p2c,
            position_table,
        })
    } else if !position_table {
        return Err(ConvertError::Config(
            "a DeBERTa config with neither relative attention nor \"position_biased_input\" gives the model no \
             positions"
                .into(),
        ));
    } else {
        None
    };
    let pad = get_usize(&v, "pad_token_id", Some(0))?;
    let pad = u32::try_from(pad)
        .map_err(|_| ConvertError::Config(format!("\"pad_token_id\" {pad} does not fit a 32-bit token id")))?;
    let model = ModelConfig {
        arch: Arch::DebertaV2,
        vocab_size: get_usize(&v, "vocab_size", None)?,
        hidden_size,
        num_layers: get_usize(&v, "num_hidden_layers", None)?,
        num_heads,
        intermediate_size: get_usize(&v, "intermediate_size", None)?,
        max_position_embeddings,
        // No token types (v3): two zero rows (deberta.rs), so pair type ids change
        // nothing, as in Hugging Face.
        type_vocab_size: match get_usize(&v, "type_vocab_size", Some(0))? {
            0 => 2,
            n => n,
        },
        layer_norm_eps: v.get("layer_norm_eps").and_then(Value::as_f64).unwrap_or(1e-7) as f32,
        hidden_act: "gelu".into(),
        pad_token_id: pad,
        position_offset: 0,
        embedding_size: None,
        relative_attention_buckets: None,
        norm_first: false,
        gated_ffn: false,
        rotary: None,
        local_attention: None,
        disentangled,
    };
    finish(model, v)
}

/// Sentence-transformers pipeline facts of a folder, if it is one.
#[derive(Clone, Debug, PartialEq)]
pub struct SentenceTransformer {
    pub pooling: Pooling,
    pub normalize: bool,
}

/// Reads `modules.json` and the pooling module's `config.json`.
///
/// # Errors
/// Unreadable files, or a pooling mode toprt does not implement.
pub fn read_sentence_transformer(dir: &Path) -> Result<Option<SentenceTransformer>> {
    let path = dir.join("modules.json");
    if !path.is_file() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(&path).map_err(io_err(&path))?;
    let modules: Vec<Value> =
        serde_json::from_str(&text).map_err(|e| ConvertError::Parse { path: path.clone(), msg: e.to_string() })?;
    let mut pooling = None;
    let mut normalize = false;
    for m in &modules {
        let ty = m.get("type").and_then(|t| t.as_str()).unwrap_or("");
        let sub = m.get("path").and_then(|p| p.as_str()).unwrap_or("");
        if ty.ends_with("models.Pooling") {
            if sub.contains("..") || Path::new(sub).is_absolute() {
                return Err(ConvertError::Parse { path, msg: format!("module path '{sub}' leaves the folder") });
            }
            let pc = dir.join(sub).join("config.json");
            let t = std::fs::read_to_string(&pc).map_err(io_err(&pc))?;
            let c: Value =
                serde_json::from_str(&t).map_err(|e| ConvertError::Parse { path: pc.clone(), msg: e.to_string() })?;
            let flag = |k: &str| c.get(k).and_then(|b| b.as_bool()).unwrap_or(false);
            let modes: Vec<&str> = [
                "pooling_mode_cls_token",
                "pooling_mode_mean_tokens",
                "pooling_mode_max_tokens",
                "pooling_mode_mean_sqrt_len_tokens",
                "pooling_mode_weightedmean_tokens",
                "pooling_mode_lasttoken",
            ]
            .into_iter()
            .filter(|k| flag(k))
            .collect();
            pooling = Some(match modes.as_slice() {
                ["pooling_mode_cls_token"] => Pooling::Cls,
                ["pooling_mode_mean_tokens"] => Pooling::Mean,
                other => {
                    return Err(ConvertError::Parse {
                        path: pc,
                        msg: format!(
                            "pooling modes {other:?} are not supported (toprt implements exactly one of cls or mean)"
                        ),
                    });
                }
            });
        } else if ty.ends_with("models.Normalize") {
            normalize = true;
        } else if ty.ends_with("models.Transformer") {
        } else {
            return Err(ConvertError::Parse {
                path,
                msg: format!("sentence-transformers module '{ty}' is not supported"),
            });
        }
    }
    Ok(pooling.map(|pooling| SentenceTransformer { pooling, normalize }))
}

/// What the checkpoint's tensors show about its head.
#[derive(Clone, Copy, Debug, Default)]
pub struct HeadTensors {
    pub pooler: bool,
    /// A sequence-classification head (`classifier.weight` for BERT,
    /// `classifier.out_proj.weight` for RoBERTa).
    pub classifier: bool,
    /// ELECTRA's replaced-token discriminator (`discriminator_predictions.*`).
    pub discriminator: bool,
}

/// Decides the head from the architecture, the folder and the `--pooling` override.
/// Without `architectures` in the config, the head's tensors decide.
pub fn choose_head(
    cfg: &HfConfig,
    st: Option<&SentenceTransformer>,
    pooling_override: Option<Pooling>,
    found: HeadTensors,
) -> HeadConfig {
    // (DeBERTa's pooler is its classifier's first layer, GELU, not BERT's tanh pooler.)
    let has_pooler = found.pooler && cfg.model.arch != Arch::DebertaV2;
    let named = |suffix: &str| cfg.architectures.iter().any(|a| a.ends_with(suffix));
    let (is_cls, is_disc) = if cfg.architectures.is_empty() {
        (found.classifier, !found.classifier && found.discriminator)
    } else {
        (named("ForSequenceClassification"), named("ElectraForPreTraining"))
    };
    if is_disc && cfg.model.arch == Arch::Electra {
        // One logit per token: how likely the discriminator thinks it was replaced.
        return HeadConfig {
            task: Task::TokenClassification,
            pooling: pooling_override.unwrap_or(Pooling::None),
            normalize: false,
            classifier: Some(Classifier::ElectraDiscriminator),
            num_labels: 1,
            id2label: Vec::new(),
        };
    }
    if is_cls {
        let classifier = match cfg.model.arch {
            Arch::Bert => Classifier::Bert,
            // MPNet's head is RoBERTa's: dense → tanh → out_proj.
            Arch::Roberta | Arch::Mpnet => Classifier::Roberta,
            Arch::Distilbert => Classifier::Distilbert,
            Arch::Electra => Classifier::Electra,
            Arch::Modernbert if cfg.raw.get("classifier_pooling").and_then(Value::as_str) == Some("mean") => {
                Classifier::ModernbertMean
            }
            Arch::Modernbert => Classifier::Modernbert,
            Arch::DebertaV2 => Classifier::Deberta,
        };
        return HeadConfig {
            task: Task::Classification,
            pooling: pooling_override.unwrap_or(Pooling::None),
            normalize: false,
            classifier: Some(classifier),
            num_labels: cfg.num_labels,
            id2label: cfg.id2label.clone(),
        };
    }
    let (pooling, normalize) = match (pooling_override, st) {
        (Some(p), st) => (p, st.is_some_and(|s| s.normalize) && p != Pooling::None),
        (None, Some(s)) => (s.pooling, s.normalize),
        (None, None) if has_pooler => (Pooling::Pooler, false),
        (None, None) => (Pooling::None, false),
    };
    let task = if st.is_some() && pooling != Pooling::None { Task::Embedding } else { Task::Encoder };
    HeadConfig { task, pooling, normalize, classifier: None, num_labels: 0, id2label: Vec::new() }
}
