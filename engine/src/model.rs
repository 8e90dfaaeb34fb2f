//! [`Model`]: an opened, validated `.toprt` file, shareable across threads.

use crate::error::{Error, Result};
use crate::tokenize::TextTokenizer;
use crate::weights::{bind_weights, packed_bytes, LinearKind, TRange, Weights};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use toprt_format::{self as format, Manifest, Precision};

/// Options for [`Model::open_with`].
#[derive(Clone, Debug)]
pub struct OpenOptions {
    /// Verify the CRC-32 of every tensor at open (default true). Costs one pass over
    /// the file; a flipped byte is then reported at open instead of producing garbage.
    pub verify_checksums: bool,
    /// Run from a copy of the file in anonymous memory, in transparent huge pages where
    /// Linux grants them (default true), instead of from the file's page-cache mapping.
    /// Every pass streams all the weights once; from the mapping (4 KiB page-cache pages
    /// scattered in physical memory) the GEMMs of pruned 29-row layers ran 5-10 %
    /// slower on an AMD Zen 5 (engine-bench: pruned pass 4 % slower). The price is a
    /// private copy per process (the mapping's pages are shared between processes that
    /// open the same file) and one more pass over the file at open. Models opened from
    /// bytes ([`Model::from_bytes`]) are always copied.
    pub copy_to_memory: bool,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions { verify_checksums: true, copy_to_memory: true }
    }
}

/// Where the file bytes live: the file's mapping, or a page-aligned anonymous copy
/// ([`anonymous_copy`]).
struct Storage(memmap2::Mmap);

impl Storage {
    fn bytes(&self) -> &[u8] {
        &self.0
    }
}

/// `bytes` copied into a read-only anonymous mapping, advised into transparent huge
/// pages (Linux; elsewhere, or where the kernel declines, ordinary pages).
fn anonymous_copy(bytes: &[u8]) -> std::io::Result<memmap2::Mmap> {
    let mut anon = memmap2::MmapMut::map_anon(bytes.len())?;
    #[cfg(target_os = "linux")]
    {
        // Only a hint: a kernel without THP (or with THP off) answers an error, and the
        // copy is then made in ordinary pages.
        let _ = anon.advise(memmap2::Advice::HugePage);
    }
    anon.copy_from_slice(bytes);
    anon.make_read_only()
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
        // base is 64-byte aligned (a page-aligned mapping).
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
    /// Opens and validates a `.toprt` file (copied into memory, checksums verified; see
    /// [`OpenOptions`]).
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
        let storage = if opts.copy_to_memory { anonymous_copy(&map).map_err(io)? } else { map };
        Model::from_storage(Storage(storage), Some(path.to_path_buf()), opts)
    }

    /// Opens a model from a byte buffer (copied into an anonymous mapping, as
    /// [`OpenOptions::copy_to_memory`] does for files).
    ///
    /// # Errors
    /// See [`Model::open`].
    pub fn from_bytes(bytes: &[u8], opts: &OpenOptions) -> Result<Model> {
        let copy = anonymous_copy(bytes).map_err(|source| Error::Io { path: PathBuf::from("<bytes>"), source })?;
        Model::from_storage(Storage(copy), None, opts)
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
