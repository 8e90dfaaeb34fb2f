//! [`Model`]: an opened, validated `.toprt` file, shareable across threads.

use crate::error::{Error, Result};
use crate::tokenize::TextTokenizer;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use toprt_format::{self as format, Arch, Classifier, Layout, Manifest, Pooling, Precision, Task};
use toprt_kernels::aligned::AVec;

/// Options for [`Model::open_with`].
#[derive(Clone, Debug)]
pub struct OpenOptions {
    /// Verify the CRC-32 of every tensor at open (default true). Costs one pass over
    /// the file; a flipped byte is then reported at open instead of producing garbage.
    pub verify_checksums: bool,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions { verify_checksums: true }
    }
}

/// Where the file bytes live.
enum Storage {
    Mmap(memmap2::Mmap),
    /// A copy in 64-byte aligned memory (for models given as a buffer).
    Owned(AVec<u8>),
}

impl Storage {
    fn bytes(&self) -> &[u8] {
        match self {
            Storage::Mmap(m) => m,
            Storage::Owned(v) => v,
        }
    }
}

/// Byte range of an `f32` tensor inside the file image.
pub(crate) type TRange = Range<usize>;

/// One packed encoder linear weight: its byte range and logical `[k, n]`.
#[derive(Clone, Debug)]
pub(crate) struct Linear {
    pub range: TRange,
    pub k: usize,
    pub n: usize,
}

pub(crate) struct LayerWeights {
    /// Packed `[d, 3d]`, Q columns pre-scaled by `1/sqrt(head_dim)`.
    pub qkv_w: Linear,
    pub qkv_b: TRange,
    /// Packed `[d, d]`.
    pub attn_out_w: Linear,
    pub attn_out_b: TRange,
    pub attn_ln_w: TRange,
    pub attn_ln_b: TRange,
    /// Packed `[d, d_ff]`.
    pub ffn_in_w: Linear,
    pub ffn_in_b: TRange,
    /// Packed `[d_ff, d]`.
    pub ffn_out_w: Linear,
    pub ffn_out_b: TRange,
    pub ffn_ln_w: TRange,
    pub ffn_ln_b: TRange,
}

impl LayerWeights {
    /// The four linear weights, in the order of the forward pass.
    pub fn linears(&self) -> [&Linear; 4] {
        [&self.qkv_w, &self.attn_out_w, &self.ffn_in_w, &self.ffn_out_w]
    }
}

pub(crate) struct Weights {
    /// Of every encoder linear weight (pooler and classifier stay `f32`).
    pub precision: Precision,
    pub word: TRange,
    pub position: TRange,
    pub token_type: TRange,
    pub emb_ln_w: TRange,
    pub emb_ln_b: TRange,
    pub layers: Vec<LayerWeights>,
    /// `(w packed [d, d], b)` of the BERT pooler / RoBERTa classifier dense layer.
    pub pooler: Option<(TRange, TRange)>,
    /// `(w packed [d, labels], b)`.
    pub classifier: Option<(TRange, TRange)>,
}

pub(crate) struct ModelInner {
    storage: Storage,
    pub manifest: Manifest,
    pub weights: Weights,
    pub tokenizer: Option<TextTokenizer>,
    pub path: Option<PathBuf>,
    /// bf16 linear weights widened to `f32` `panel32`, per layer in
    /// [`LayerWeights::linears`] order: made once, by the first session on a CPU
    /// without bf16 GEMMs, and shared by every later one.
    widened: std::sync::OnceLock<Vec<[Vec<f32>; 4]>>,
}

impl ModelInner {
    /// The `f32` view of a validated tensor range.
    #[inline]
    pub fn f32s(&self, r: &TRange) -> &[f32] {
        // Ranges were validated in bounds and 64-byte aligned at open, and the storage
        // base is 64-byte aligned (page-aligned mmap or AVec).
        bytemuck::cast_slice(&self.storage.bytes()[r.clone()])
    }

    /// The 32-bit word view of a validated tensor range (bf16 pairs).
    #[inline]
    pub fn u32s(&self, r: &TRange) -> &[u32] {
        // As in `f32s`.
        bytemuck::cast_slice(&self.storage.bytes()[r.clone()])
    }

    /// The bf16 weights widened to `f32` (made on first use; see `widened`).
    pub fn widened(&self) -> &[[Vec<f32>; 4]] {
        self.widened.get_or_init(|| {
            self.weights
                .layers
                .iter()
                .map(|l| l.linears().map(|w| toprt_kernels::pack::widen_bf16_panels(self.u32s(&w.range), w.k, w.n)))
                .collect()
        })
    }
}

/// An opened model. Cheap to clone; all clones share one mapping. `Send + Sync`.
#[derive(Clone)]
pub struct Model {
    pub(crate) inner: Arc<ModelInner>,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model").field("path", &self.inner.path).field("config", &self.inner.manifest.model).finish()
    }
}

impl Model {
    /// Opens and validates a `.toprt` file (memory-mapped, checksums verified).
    ///
    /// # Errors
    /// I/O errors, and any [`Error::Format`], [`Error::Version`], [`Error::Checksum`] or
    /// [`Error::Tensor`] found while validating.
    pub fn open(path: impl AsRef<Path>) -> Result<Model> {
        Model::open_with(path, &OpenOptions::default())
    }

    /// [`Model::open`] with options.
    ///
    /// # Errors
    /// See [`Model::open`].
    pub fn open_with(path: impl AsRef<Path>, opts: &OpenOptions) -> Result<Model> {
        let path = path.as_ref();
        let io = |source| Error::Io { path: path.to_path_buf(), source };
        let file = std::fs::File::open(path).map_err(io)?;
        // SAFETY: the mapping is read-only; toprt never writes model files in place (the
        // converter writes a temporary file and renames it). Like every mmap reader we
        // rely on the file not being truncated by another process while mapped.
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(io)?;
        Model::from_storage(Storage::Mmap(map), Some(path.to_path_buf()), opts)
    }

    /// Opens a model from a byte buffer (copied into aligned memory).
    ///
    /// # Errors
    /// See [`Model::open`].
    pub fn from_bytes(bytes: &[u8], opts: &OpenOptions) -> Result<Model> {
        let mut v = AVec::<u8>::zeroed(bytes.len());
        v.copy_from_slice(bytes);
        Model::from_storage(Storage::Owned(v), None, opts)
    }

    fn from_storage(storage: Storage, path: Option<PathBuf>, opts: &OpenOptions) -> Result<Model> {
        let bytes = storage.bytes();
        if !(bytes.as_ptr() as usize).is_multiple_of(format::ALIGN) {
            return Err(Error::Format("model storage is not 64-byte aligned".into()));
        }
        let image = format::image::decode(bytes, opts.verify_checksums, &packed_bytes)?;
        let (header, manifest) = (image.header, image.manifest);
        let weights = bind_weights(&manifest, header.data_offset as usize)?;
        let tokenizer = match &manifest.tokenizer {
            Some(spec) => Some(TextTokenizer::from_spec(spec)?),
            None => None,
        };
        Ok(Model {
            inner: Arc::new(ModelInner {
                storage,
                manifest,
                weights,
                tokenizer,
                path,
                widened: std::sync::OnceLock::new(),
            }),
        })
    }

    /// The manifest (config, head, keep-rules, tensor directory).
    pub fn manifest(&self) -> &Manifest {
        &self.inner.manifest
    }

    /// Hidden size `d`.
    pub fn hidden_size(&self) -> usize {
        self.inner.manifest.model.hidden_size
    }

    /// Precision of the encoder's linear weights.
    pub fn precision(&self) -> Precision {
        self.inner.weights.precision
    }

    /// Longest accepted sequence, special tokens included.
    pub fn max_length(&self) -> usize {
        let m = &self.inner.manifest;
        let tok = m.tokenizer.as_ref().map_or(usize::MAX, |t| t.max_length);
        m.model.max_len().min(tok)
    }

    /// The embedded tokenizer, if any.
    pub fn tokenizer(&self) -> Option<&TextTokenizer> {
        self.inner.tokenizer.as_ref()
    }

    /// Whether text inputs are accepted.
    pub fn has_tokenizer(&self) -> bool {
        self.inner.tokenizer.is_some()
    }
}

/// Sizes of the packed layouts for the file's validation: the kernels define them.
pub(crate) fn packed_bytes(layout: Layout, k: usize, n: usize) -> Option<u64> {
    toprt_kernels::pack::packed_bytes(layout.name(), k, n)
}

/// Finds every tensor the forward pass needs, checks its shape and layout, and returns
/// absolute byte ranges.
fn bind_weights(m: &Manifest, data_offset: usize) -> Result<Weights> {
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
    // The encoder's linear weights are all f32 `panel32` or all bf16 `panel32x2`; the
    // first one decides which.
    let first = index.get("encoder.layer.0.attention.self.qkv.weight").map(|t| t.layout);
    let (precision, layout) = match first {
        Some(Layout::Panel32x2) => (Precision::Bf16, Layout::Panel32x2),
        _ => (Precision::F32, Layout::Panel32),
    };
    let linear = |name: &str, k: usize, n: usize| -> Result<Linear> {
        match index.get(name) {
            Some(t) if t.layout != layout && t.shape == [k, n] => Err(Error::Format(format!(
                "tensor '{name}' is {:?} {:?}, but the encoder's first weight is {layout:?}: the encoder's linear \
                 weights must all have one precision",
                t.dtype, t.layout
            ))),
            _ => Ok(Linear { range: get(name, layout, &[k, n])?, k, n }),
        }
    };
    let mut layers = Vec::with_capacity(l);
    for i in 0..l {
        let p = |s: &str| format!("encoder.layer.{i}.{s}");
        layers.push(LayerWeights {
            qkv_w: linear(&p("attention.self.qkv.weight"), d, d3)?,
            qkv_b: row(&p("attention.self.qkv.bias"), &[d3])?,
            attn_out_w: linear(&p("attention.output.dense.weight"), d, d)?,
            attn_out_b: row(&p("attention.output.dense.bias"), &[d])?,
            attn_ln_w: row(&p("attention.output.LayerNorm.weight"), &[d])?,
            attn_ln_b: row(&p("attention.output.LayerNorm.bias"), &[d])?,
            ffn_in_w: linear(&p("intermediate.dense.weight"), d, ff)?,
            ffn_in_b: row(&p("intermediate.dense.bias"), &[ff])?,
            ffn_out_w: linear(&p("output.dense.weight"), ff, d)?,
            ffn_out_b: row(&p("output.dense.bias"), &[d])?,
            ffn_ln_w: row(&p("output.LayerNorm.weight"), &[d])?,
            ffn_ln_b: row(&p("output.LayerNorm.bias"), &[d])?,
        });
    }
    let h = &m.head;
    let labels = h.num_labels;
    let (pooler, classifier) = match (h.task, h.classifier) {
        (Task::Classification, Some(Classifier::Bert)) => (
            Some((packed("pooler.dense.weight", d, d)?, row("pooler.dense.bias", &[d])?)),
            Some((packed("classifier.weight", d, labels)?, row("classifier.bias", &[labels])?)),
        ),
        (Task::Classification, Some(Classifier::Roberta)) => (
            Some((packed("classifier.dense.weight", d, d)?, row("classifier.dense.bias", &[d])?)),
            Some((packed("classifier.out_proj.weight", d, labels)?, row("classifier.out_proj.bias", &[labels])?)),
        ),
        (Task::Classification, None) => {
            return Err(Error::Format("classification head without a classifier kind".into()));
        }
        _ if h.pooling == Pooling::Pooler => {
            (Some((packed("pooler.dense.weight", d, d)?, row("pooler.dense.bias", &[d])?)), None)
        }
        _ => (None, None),
    };
    if h.task == Task::Classification && labels == 0 {
        return Err(Error::Format("classification head with zero labels".into()));
    }
    // The session sizes its logits buffer by the label count: without a classifier no
    // tensor vouches for it.
    if h.task != Task::Classification && labels != 0 {
        return Err(Error::Format(format!("{:?} head with num_labels {labels} (expected 0)", h.task)));
    }
    if h.task == Task::Embedding && h.pooling == Pooling::None {
        return Err(Error::Format("embedding head without a pooling method".into()));
    }
    if c.arch == Arch::Roberta && h.classifier == Some(Classifier::Bert) {
        return Err(Error::Format("RoBERTa model with a BERT classifier head".into()));
    }
    Ok(Weights {
        precision,
        word: row("embeddings.word_embeddings.weight", &[c.vocab_size, d])?,
        position: row("embeddings.position_embeddings.weight", &[c.max_position_embeddings, d])?,
        token_type: row("embeddings.token_type_embeddings.weight", &[c.type_vocab_size, d])?,
        emb_ln_w: row("embeddings.LayerNorm.weight", &[d])?,
        emb_ln_b: row("embeddings.LayerNorm.bias", &[d])?,
        layers,
        pooler,
        classifier,
    })
}
