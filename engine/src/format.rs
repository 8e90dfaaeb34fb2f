//! The `.toprt` model file: a fixed 64-byte header, a JSON manifest, then 64-byte aligned
//! tensor blobs. See `docs/FORMAT.md` for the byte-level description.
//!
//! Reading validates everything before any tensor is used: magic, version, every header
//! field against the real file size, the manifest checksum, and for every tensor its
//! dtype, shape, layout, offset, length, alignment and (unless disabled) its CRC-32.
//! After [`validate`] succeeds, viewing a tensor is a bounds-checked cast of bytes that
//! are known to be in range and aligned.

use crate::error::Error;
use serde::{Deserialize, Serialize};

/// First 8 bytes of every `.toprt` file.
pub const MAGIC: [u8; 8] = *b"TOPRTMDL";
/// The format version this build reads and writes.
pub const FORMAT_VERSION: u32 = 1;
/// Size of the fixed header.
pub const HEADER_LEN: usize = 64;
/// Alignment of the data section and of every tensor blob.
pub const ALIGN: usize = 64;

/// The fixed header, little-endian.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub version: u32,
    pub flags: u32,
    pub manifest_offset: u64,
    pub manifest_len: u64,
    pub manifest_crc32: u32,
    pub data_offset: u64,
    pub data_len: u64,
}

impl Header {
    /// Serialises the header into its 64 bytes.
    pub fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[0..8].copy_from_slice(&MAGIC);
        b[8..12].copy_from_slice(&self.version.to_le_bytes());
        b[12..16].copy_from_slice(&self.flags.to_le_bytes());
        b[16..24].copy_from_slice(&self.manifest_offset.to_le_bytes());
        b[24..32].copy_from_slice(&self.manifest_len.to_le_bytes());
        b[32..36].copy_from_slice(&self.manifest_crc32.to_le_bytes());
        b[40..48].copy_from_slice(&self.data_offset.to_le_bytes());
        b[48..56].copy_from_slice(&self.data_len.to_le_bytes());
        let crc = crc32fast::hash(&b[0..60]);
        b[60..64].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// Parses and checks the header of a file of `file_len` bytes.
    ///
    /// # Errors
    /// [`Error::Format`] naming the field that is wrong.
    pub fn parse(bytes: &[u8]) -> Result<Header, Error> {
        let file_len = bytes.len() as u64;
        if bytes.len() < HEADER_LEN {
            return Err(fmt_err(format!(
                "file is {} bytes, shorter than the {HEADER_LEN}-byte header (truncated?)",
                bytes.len()
            )));
        }
        if bytes[0..8] != MAGIC {
            return Err(fmt_err("bad magic: not a .toprt model file".into()));
        }
        let u32_at = |o: usize| u32::from_le_bytes([bytes[o], bytes[o + 1], bytes[o + 2], bytes[o + 3]]);
        let u64_at = |o: usize| {
            let mut a = [0u8; 8];
            a.copy_from_slice(&bytes[o..o + 8]);
            u64::from_le_bytes(a)
        };
        let version = u32_at(8);
        if version != FORMAT_VERSION {
            return Err(Error::Version { found: version, supported: FORMAT_VERSION });
        }
        if crc32fast::hash(&bytes[0..60]) != u32_at(60) {
            return Err(fmt_err("header checksum mismatch (corrupt file)".into()));
        }
        let h = Header {
            version,
            flags: u32_at(12),
            manifest_offset: u64_at(16),
            manifest_len: u64_at(24),
            manifest_crc32: u32_at(32),
            data_offset: u64_at(40),
            data_len: u64_at(48),
        };
        if h.flags != 0 {
            return Err(fmt_err(format!("unknown header flags {:#x}", h.flags)));
        }
        let manifest_end = h.manifest_offset.checked_add(h.manifest_len);
        if h.manifest_offset < HEADER_LEN as u64 || manifest_end.is_none_or(|e| e > h.data_offset) {
            return Err(fmt_err(format!(
                "manifest range {}+{} does not lie between the header and the data section at {}",
                h.manifest_offset, h.manifest_len, h.data_offset
            )));
        }
        if !h.data_offset.is_multiple_of(ALIGN as u64) {
            return Err(fmt_err(format!("data section offset {} is not {ALIGN}-byte aligned", h.data_offset)));
        }
        if h.data_offset.checked_add(h.data_len) != Some(file_len) {
            return Err(fmt_err(format!(
                "file is {file_len} bytes but the header says {} + {} (truncated or padded file)",
                h.data_offset, h.data_len
            )));
        }
        Ok(h)
    }
}

fn fmt_err(msg: String) -> Error {
    Error::Format(msg)
}

/// Element type of a tensor blob.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DType {
    F32,
    /// bfloat16 (the top 16 bits of an IEEE f32), only in the `panel32x2` layout.
    Bf16,
}

impl DType {
    pub fn size(self) -> usize {
        match self {
            DType::F32 => 4,
            DType::Bf16 => 2,
        }
    }
}

/// How a tensor's elements are laid out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Layout {
    /// Plain row-major.
    RowMajor,
    /// Logical `[k, n]` weight packed in 32-column panels (see `toprt_kernels::pack`).
    Panel32,
    /// Logical `[k, n]` bf16 weight in 32-column panels of `k`-row pairs
    /// (`toprt_kernels::pack`, "bf16 weights").
    #[serde(rename = "panel32x2")]
    Panel32x2,
}

/// One entry of the tensor directory.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TensorEntry {
    pub name: String,
    pub dtype: DType,
    pub shape: Vec<usize>,
    pub layout: Layout,
    /// Byte offset from the start of the data section; a multiple of 64.
    pub offset: u64,
    /// Byte length of the blob.
    pub length: u64,
    /// CRC-32 (IEEE) of the blob.
    pub crc32: u32,
}

impl TensorEntry {
    /// Bytes the blob must have for its dtype, shape and layout.
    ///
    /// # Errors
    /// An overflowing shape, or a layout the shape cannot have.
    pub fn expected_len(&self) -> Result<u64, Error> {
        let bad = |why: &str| Error::Format(format!("tensor '{}': {why}", self.name));
        let elems = match (self.layout, self.dtype) {
            (Layout::RowMajor, DType::F32) => self.shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d)),
            (Layout::Panel32, DType::F32) => match self.shape[..] {
                [k, n] => {
                    toprt_kernels::pack::panels(n).checked_mul(k).and_then(|x| x.checked_mul(toprt_kernels::pack::NR))
                }
                _ => return Err(bad("panel32 layout needs a 2-D [k, n] shape")),
            },
            (Layout::Panel32x2, DType::Bf16) => match self.shape[..] {
                // Pairs of k rows, two bf16 values per column of each pair row.
                [k, n] => toprt_kernels::pack::panels(n)
                    .checked_mul(k.div_ceil(2))
                    .and_then(|x| x.checked_mul(2 * toprt_kernels::pack::NR)),
                _ => return Err(bad("panel32x2 layout needs a 2-D [k, n] shape")),
            },
            (layout, dtype) => return Err(bad(&format!("dtype {dtype:?} cannot have the {layout:?} layout"))),
        };
        elems.and_then(|e| e.checked_mul(self.dtype.size())).map(|b| b as u64).ok_or_else(|| bad("shape overflows"))
    }
}

/// Encoder family, as in the checkpoint's `model_type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Arch {
    Bert,
    Roberta,
}

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
}

impl ModelConfig {
    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_heads.max(1)
    }

    /// Longest sequence the position table allows.
    pub fn max_len(&self) -> usize {
        self.max_position_embeddings.saturating_sub(self.position_offset)
    }

    /// # Errors
    /// Zero or inconsistent sizes.
    pub fn validate(&self) -> Result<(), Error> {
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
        let offset = match c.arch {
            Arch::Bert => 0,
            Arch::Roberta => c.pad_token_id as usize + 1,
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
    pub tensors: Vec<TensorEntry>,
}

/// Checks a whole file image and returns its header and manifest.
///
/// # Errors
/// [`Error::Format`] / [`Error::Version`] / [`Error::Checksum`] naming what is wrong.
pub fn validate(bytes: &[u8], verify_checksums: bool) -> Result<(Header, Manifest), Error> {
    let h = Header::parse(bytes)?;
    // Header::parse proved manifest_offset + manifest_len <= data_offset <= file length.
    let m_bytes = &bytes[h.manifest_offset as usize..(h.manifest_offset + h.manifest_len) as usize];
    if crc32fast::hash(m_bytes) != h.manifest_crc32 {
        return Err(Error::Checksum("manifest".into()));
    }
    let manifest: Manifest =
        serde_json::from_slice(m_bytes).map_err(|e| fmt_err(format!("manifest is not valid: {e}")))?;
    if manifest.format_version != FORMAT_VERSION {
        return Err(Error::Version { found: manifest.format_version, supported: FORMAT_VERSION });
    }
    manifest.model.validate()?;
    let mut last = 0;
    for r in &manifest.keep_rules {
        if r.layer == 0 || r.layer >= manifest.model.num_layers || r.layer <= last {
            return Err(fmt_err(format!(
                "keep-rule at layer {}: locations must be increasing and within 1..{}",
                r.layer, manifest.model.num_layers
            )));
        }
        last = r.layer;
        r.rule.validate().map_err(|e| fmt_err(format!("keep-rule at layer {}: {e}", r.layer)))?;
    }
    let data = &bytes[h.data_offset as usize..];
    let mut seen = std::collections::HashSet::new();
    for t in &manifest.tensors {
        if !seen.insert(t.name.as_str()) {
            return Err(fmt_err(format!("tensor '{}' appears twice in the directory", t.name)));
        }
        let want = t.expected_len()?;
        if t.length != want {
            return Err(fmt_err(format!(
                "tensor '{}': length {} bytes, but dtype/shape/layout need {want}",
                t.name, t.length
            )));
        }
        if t.offset % ALIGN as u64 != 0 {
            return Err(fmt_err(format!("tensor '{}': offset {} is not {ALIGN}-byte aligned", t.name, t.offset)));
        }
        if t.offset.checked_add(t.length).is_none_or(|end| end > h.data_len) {
            return Err(fmt_err(format!(
                "tensor '{}': bytes {}..+{} run past the data section ({} bytes; truncated file?)",
                t.name, t.offset, t.length, h.data_len
            )));
        }
        if verify_checksums {
            let blob = &data[t.offset as usize..(t.offset + t.length) as usize];
            if crc32fast::hash(blob) != t.crc32 {
                return Err(Error::Checksum(format!("tensor '{}'", t.name)));
            }
        }
    }
    Ok((h, manifest))
}
