//! [`Model`]: an opened, validated `.toprt` file, shareable across threads.

use crate::error::{Error, Result};
use crate::tokenize::TextTokenizer;
use crate::weights::{bind_weights, packed_bytes, LinearKind, TRange, Weights};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use toprt_format::{self as format, Manifest, Precision};
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

pub(crate) struct ModelInner {
    storage: Storage,
    pub manifest: Manifest,
    pub weights: Weights,
    pub tokenizer: Option<TextTokenizer>,
    pub path: Option<PathBuf>,
    /// bf16 linear weights widened to `f32` `panel32`, per layer, indexed by
    /// [`LinearKind`]: made once, by the first session on a CPU
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

    /// Linear `kind` of layer `layer`, widened from bf16 to `f32` (made by [`Self::widen`]
    /// or on first use).
    pub fn widened(&self, layer: usize, kind: LinearKind) -> &[f32] {
        &self.widen()[layer][kind as usize]
    }

    /// Widens every bf16 linear weight to `f32` once (see `widened`); later calls return
    /// the same copies.
    pub fn widen(&self) -> &[[Vec<f32>; 4]] {
        self.widened.get_or_init(|| {
            self.weights
                .layers
                .iter()
                .map(|l| {
                    LinearKind::ALL.map(|kind| {
                        let w = l.linear(kind);
                        toprt_kernels::pack::widen_bf16_panels(self.u32s(&w.weight), w.k, w.n)
                    })
                })
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
        let weights = bind_weights(&manifest, bytes, header.data_offset as usize)?;
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

    /// The file the model was opened from (None for a model given as bytes).
    pub fn path(&self) -> Option<&Path> {
        self.inner.path.as_deref()
    }

    /// Hidden size `d`.
    pub fn hidden_size(&self) -> usize {
        self.inner.manifest.model.hidden_size
    }

    /// Precision of the encoder's linear weights.
    pub fn precision(&self) -> Precision {
        self.inner.weights.precision
    }

    /// How many of the encoder's linear layers the file keeps in `f32` although its
    /// precision is lower: the linears an int8 calibration left in `f32`
    /// (`toprt-calibrate`). 0 for `f32` and bf16 files and for plain int8 ones.
    pub fn f32_linears(&self) -> usize {
        let w = &self.inner.weights;
        if w.precision == Precision::F32 {
            return 0;
        }
        w.layers
            .iter()
            .map(|l| {
                crate::weights::LinearKind::ALL
                    .iter()
                    .filter(|&&kind| l.linear(kind).precision == Precision::F32)
                    .count()
            })
            .sum()
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
