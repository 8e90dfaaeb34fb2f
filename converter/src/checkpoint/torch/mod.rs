//! Safe, pure-Rust reader for checkpoints written by `torch.save`.
//!
//! Reads the ZIP-based format written by `torch.save` since torch 1.6
//! (e.g. `pytorch_model.bin` of Hugging Face checkpoints, or the `zs.pt`
//! mask file of the `ToP` pruning method) and returns the tensors of the
//! saved (possibly nested) dictionary, without Python and without ever
//! executing anything from the file.
//!
//! # How it works
//!
//! A torch checkpoint is a ZIP archive with stored (uncompressed) entries:
//! `<prefix>/data.pkl` (a pickle describing the object), one
//! `<prefix>/data/<key>` entry per tensor storage, `<prefix>/version`,
//! optionally `<prefix>/byteorder` and some bookkeeping entries. The prefix is
//! arbitrary (usually `archive` or the file stem).
//!
//! `data.pkl` is interpreted by a *restricted* pickle virtual machine that
//! only knows the opcodes and globals a state dict needs:
//!
//! * opcodes: `PROTO`, `FRAME`, `STOP`, `MARK`, `POP`, `POP_MARK`, `DUP`,
//!   `NONE`, `NEWTRUE`, `NEWFALSE`, `BININT`, `BININT1`, `BININT2`, `LONG1`,
//!   `LONG4` (values must fit in `i64`), `BINFLOAT`, `SHORT_BINUNICODE`,
//!   `BINUNICODE`, `BINUNICODE8`, `SHORT_BINSTRING`, `BINSTRING` (decoded as
//!   UTF-8 text), `SHORT_BINBYTES`, `BINBYTES`, `BINBYTES8`, `EMPTY_TUPLE`,
//!   `TUPLE`, `TUPLE1`, `TUPLE2`, `TUPLE3`, `EMPTY_LIST`, `APPEND`, `APPENDS`,
//!   `EMPTY_DICT`, `SETITEM`, `SETITEMS`, `EMPTY_SET`, `ADDITEMS`,
//!   `FROZENSET`, `BINPUT`, `LONG_BINPUT`, `MEMOIZE`, `BINGET`, `LONG_BINGET`,
//!   `GLOBAL`, `STACK_GLOBAL`, `REDUCE`, `BUILD`, `BINPERSID`.
//! * globals: `collections.OrderedDict`, `builtins.set`/`frozenset`,
//!   `torch._utils._rebuild_tensor`, `_rebuild_tensor_v2`,
//!   `_rebuild_tensor_v3`, `_rebuild_parameter`,
//!   `_rebuild_parameter_with_state`, `torch._tensor._rebuild_from_type_v2`
//!   (with `torch.Tensor` / `torch.nn.parameter.Parameter` as the type), the
//!   typed storage classes `torch.{Float,Double,Half,BFloat16,Long,Int,Short,
//!   Char,Byte,Bool}Storage`, `torch.UntypedStorage` and the dtype objects
//!   `torch.float32`, `torch.float16`, ... of the supported [`DType`]s.
//!
//! Every other opcode (notably `INST`, `OBJ`, `NEWOBJ`, `EXT*` and the text
//! protocol-0 opcodes) is refused with [`TorchError::UnsupportedOpcode`], and
//! every other global (`os.system`, `builtins.eval`, model classes,
//! `numpy` reconstructors, ...) with [`TorchError::ForbiddenGlobal`]; nothing
//! is ever imported or called. `BUILD` is only accepted on dictionaries,
//! where its state (e.g. the `_metadata` attribute of a state dict's
//! `OrderedDict`) is ignored. Storage locations (`"cpu"`, `"cuda:0"`, ...) are
//! ignored: everything is read into host memory.
//!
//! Tensors are materialized as contiguous, row-major, little-endian bytes
//! from their storage, storage offset and strides, so non-contiguous views
//! (e.g. transposes) and tensors sharing one storage (tied weights) are
//! handled; every element index is checked against the storage size.
//!
//! # Limits
//!
//! All work and memory is bounded by the input size: the pickle stack, memo
//! and containers grow at most by one value per opcode, strings and byte
//! strings are bounded by the remaining input, nesting while flattening is
//! limited to [`MAX_NESTING`] levels, and the total number of bytes
//! materialized for all tensors is limited to [`MAX_EXPANSION`] times the
//! file size plus 1 MiB (this only matters for overlapping views such as
//! `expand`ed tensors, which would otherwise let a tiny file request an
//! arbitrarily large allocation).
//!
//! The legacy pre-1.6 format (a bare pickle stream or tar file) is detected
//! and refused with [`TorchError::LegacyFormat`]; `TorchScript` archives
//! (`torch.jit.save`) are refused with [`TorchError::TorchScript`].
//!
//! # Layout
//!
//! `zip.rs` reads the container; `pickle.rs` runs the opcodes over the objects
//! of `value.rs`; `globals.rs` is the allowlist of globals and what calling
//! each one does; `rebuild.rs` turns `_rebuild_tensor*` calls into views and
//! views into bytes; `flatten.rs` names the tensors of the nested dictionary;
//! `error.rs` holds [`TorchError`]. This file ties them together: find the
//! archive's prefix, check its byte order, unpickle, flatten, materialize.

mod error;
mod flatten;
mod globals;
mod pickle;
mod rebuild;
mod value;
mod zip;

#[cfg(test)]
mod tests;

use std::path::Path;

use self::flatten::Flattener;
use self::pickle::Unpickler;
use self::rebuild::StorageReader;
use self::value::Value;
use self::zip::ZipArchive;
use super::decode;
use super::dtype::DType;

pub use self::error::TorchError;
pub use self::flatten::MAX_NESTING;
pub use self::rebuild::MAX_EXPANSION;

/// One tensor of a checkpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct TorchTensor {
    /// Key in the saved dictionary; keys of nested dictionaries (and indices
    /// of nested lists) are joined with `.`, e.g. `state_dict.fc.weight`.
    pub name: String,
    /// Element type.
    pub dtype: DType,
    /// Shape; empty for a 0-dim (scalar) tensor.
    pub shape: Vec<usize>,
    /// Contiguous row-major little-endian element bytes
    /// (`numel() * dtype.size_in_bytes()` bytes).
    pub data: Vec<u8>,
}

impl TorchTensor {
    /// Number of elements (product of the shape; 1 for a 0-dim tensor).
    #[must_use]
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    /// Converts the elements to `f32` (see [`decode::to_f32`]).
    ///
    /// # Errors
    /// [`TorchError::Tensor`] when `data` is not a whole number of elements (only
    /// possible if it was modified by hand).
    pub fn to_f32_vec(&self) -> Result<Vec<f32>, TorchError> {
        decode::to_f32(self.dtype, &self.data).map_err(|msg| TorchError::Tensor { name: self.name.clone(), msg })
    }
}

/// A loaded checkpoint: its tensors plus the names of skipped non-tensor
/// leaves.
#[derive(Debug, Clone, PartialEq)]
pub struct TorchCheckpoint {
    /// Tensors in the order of the saved dictionary (depth first).
    pub tensors: Vec<TorchTensor>,
    /// Dotted names of leaves that are not tensors (ints, floats, strings,
    /// `None`, sets, ...), which were skipped.
    pub skipped: Vec<String>,
}

/// Reads all tensors of the (possibly nested) dictionary saved in `path`.
///
/// Non-tensor leaves are skipped; use [`read_torch_checkpoint`] to learn their
/// names.
///
/// # Errors
/// [`TorchError::Io`] if the file cannot be read, otherwise as
/// [`read_torch_state_dict_from_bytes`].
pub fn read_torch_state_dict(path: &Path) -> Result<Vec<TorchTensor>, TorchError> {
    read_torch_checkpoint(path).map(|c| c.tensors)
}

/// Like [`read_torch_state_dict`], also reporting skipped non-tensor leaves.
///
/// # Errors
/// [`TorchError::Io`] if the file cannot be read, otherwise as
/// [`read_torch_state_dict_from_bytes`].
pub fn read_torch_checkpoint(path: &Path) -> Result<TorchCheckpoint, TorchError> {
    let bytes = std::fs::read(path).map_err(|source| TorchError::Io { path: path.to_path_buf(), source })?;
    read_torch_checkpoint_from_bytes(&bytes)
}

/// Reads all tensors of the (possibly nested) dictionary saved in a
/// `torch.save` file held in memory.
///
/// # Errors
/// * [`TorchError::LegacyFormat`] / [`TorchError::TorchScript`] for files in
///   another torch format,
/// * [`TorchError::Zip`], [`TorchError::CompressedEntry`],
///   [`TorchError::CrcMismatch`], [`TorchError::MissingEntry`],
///   [`TorchError::NotACheckpoint`] for container problems,
/// * [`TorchError::ByteOrder`] for big-endian checkpoints,
/// * [`TorchError::Pickle`], [`TorchError::UnsupportedOpcode`],
///   [`TorchError::ForbiddenGlobal`], [`TorchError::UnsupportedDType`] for
///   pickle content outside the supported subset,
/// * [`TorchError::Tensor`] for tensors whose view does not fit their storage,
/// * [`TorchError::Structure`] if the top-level object is not a dictionary,
///   names collide, nesting is too deep or the size limits are exceeded.
pub fn read_torch_state_dict_from_bytes(bytes: &[u8]) -> Result<Vec<TorchTensor>, TorchError> {
    read_torch_checkpoint_from_bytes(bytes).map(|c| c.tensors)
}

/// Like [`read_torch_state_dict_from_bytes`], also reporting skipped
/// non-tensor leaves.
///
/// # Errors
/// As [`read_torch_state_dict_from_bytes`].
pub fn read_torch_checkpoint_from_bytes(bytes: &[u8]) -> Result<TorchCheckpoint, TorchError> {
    if bytes.first() == Some(&0x80) || bytes.get(257..262) == Some(&b"ustar"[..]) {
        return Err(TorchError::LegacyFormat);
    }
    let archive = ZipArchive::parse(bytes)?;
    let prefix = find_prefix(&archive)?;

    if let Some(order) = archive.read(&format!("{prefix}/byteorder"))? {
        let order = String::from_utf8_lossy(order);
        if order.trim() != "little" {
            return Err(TorchError::ByteOrder(order.trim().chars().take(64).collect()));
        }
    }
    let pkl_name = format!("{prefix}/data.pkl");
    let pkl = archive
        .read(&pkl_name)?
        .ok_or_else(|| TorchError::MissingEntry { name: pkl_name.clone(), needed_by: "the checkpoint".into() })?;

    let mut vm = Unpickler::new(pkl);
    let root = vm.run()?;
    let mut flat = Flattener::new(pkl.len());
    match &root {
        Value::Dict(_) => flat.visit(&root, "", 0)?,
        other => {
            return Err(TorchError::Structure(format!(
                "top-level object is {}, expected a dict of tensors",
                other.kind()
            )))
        }
    }
    let mut store = StorageReader::new(&archive, &prefix, bytes.len());
    let mut tensors = Vec::with_capacity(flat.tensors.len());
    for (name, desc) in flat.tensors {
        let data = store.materialize(&name, &desc)?;
        tensors.push(TorchTensor { name, dtype: desc.dtype, shape: desc.shape.clone(), data });
    }
    Ok(TorchCheckpoint { tensors, skipped: flat.skipped })
}

/// Finds the unique `<prefix>` with a `<prefix>/data.pkl` entry.
fn find_prefix(archive: &ZipArchive<'_>) -> Result<String, TorchError> {
    let mut found: Option<&str> = None;
    for e in archive.entries() {
        let Some(p) = e.name.strip_suffix("/data.pkl") else {
            continue;
        };
        if p.contains('/') {
            continue;
        }
        if let Some(prev) = found {
            return Err(TorchError::NotACheckpoint(format!("several pickles ('{prev}/data.pkl' and '{p}/data.pkl')")));
        }
        found = Some(p);
    }
    let prefix =
        found.ok_or_else(|| TorchError::NotACheckpoint("zip archive has no '<prefix>/data.pkl' entry".into()))?;
    if archive.entry(&format!("{prefix}/constants.pkl")).is_some()
        || archive.entries().iter().any(|e| e.name.starts_with(&format!("{prefix}/code/")))
    {
        return Err(TorchError::TorchScript { prefix: prefix.to_owned() });
    }
    Ok(prefix.to_owned())
}
