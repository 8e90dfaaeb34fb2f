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

mod zip;

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use self::zip::ZipArchive;
use super::decode;
use super::dtype::DType;

/// Maximum nesting depth of dictionaries/lists when flattening the loaded
/// object into tensor names (also the guard against reference cycles).
pub const MAX_NESTING: usize = 64;

/// Materialized tensor bytes may total at most this many times the input
/// size (plus 1 MiB); see the module documentation.
pub const MAX_EXPANSION: u64 = 8;

/// Maximum number of tensor dimensions accepted.
const MAX_DIMS: usize = 64;

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

/// Errors of the torch checkpoint reader.
#[derive(Debug, thiserror::Error)]
pub enum TorchError {
    /// The file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A pre-1.6 checkpoint (bare pickle stream or tar archive).
    #[error(
        "legacy (pre-1.6, non-zip) torch format not supported; re-save with torch>=1.6 \
         (torch.save(torch.load(f), f2))"
    )]
    LegacyFormat,
    /// A `torch.jit.save` archive rather than a `torch.save` checkpoint.
    #[error(
        "'{prefix}' is a TorchScript archive (torch.jit.save), not a torch.save checkpoint; \
         save model.state_dict() with torch.save instead"
    )]
    TorchScript {
        /// The archive prefix.
        prefix: String,
    },
    /// Structural problem in the ZIP container.
    #[error("malformed zip archive at byte {offset}: {msg}")]
    Zip {
        /// Byte offset in the file.
        offset: u64,
        /// What is wrong.
        msg: String,
    },
    /// A ZIP entry is compressed; torch always writes stored entries.
    #[error("zip entry '{name}' uses compression method {method}; only stored (0) entries are supported")]
    CompressedEntry {
        /// Entry name.
        name: String,
        /// ZIP compression method.
        method: u16,
    },
    /// A ZIP entry does not match its CRC-32.
    #[error("zip entry '{name}' is corrupt: CRC-32 {actual:#010x}, expected {expected:#010x}")]
    CrcMismatch {
        /// Entry name.
        name: String,
        /// Recorded CRC.
        expected: u32,
        /// Computed CRC.
        actual: u32,
    },
    /// The archive has no usable `<prefix>/data.pkl`.
    #[error("not a torch checkpoint: {0}")]
    NotACheckpoint(String),
    /// A required entry is missing.
    #[error("zip entry '{name}' is missing (needed by {needed_by})")]
    MissingEntry {
        /// Entry name.
        name: String,
        /// What needs it.
        needed_by: String,
    },
    /// The checkpoint was written on a big-endian machine.
    #[error("unsupported byteorder '{0}' (only 'little' is supported)")]
    ByteOrder(String),
    /// Malformed pickle data.
    #[error("data.pkl byte {offset}: {msg}")]
    Pickle {
        /// Offset of the opcode in `data.pkl`.
        offset: usize,
        /// What is wrong.
        msg: String,
    },
    /// A pickle opcode outside the supported subset.
    #[error("data.pkl byte {offset}: unsupported pickle opcode {opcode:#04x} ({name})")]
    UnsupportedOpcode {
        /// Offset of the opcode in `data.pkl`.
        offset: usize,
        /// Opcode byte.
        opcode: u8,
        /// Opcode name, if known.
        name: &'static str,
    },
    /// A pickle global outside the allowlist.
    #[error(
        "data.pkl byte {offset}: refusing pickle global '{module}.{name}' (only tensors, storages \
         and dicts of a state dict are allowed)"
    )]
    ForbiddenGlobal {
        /// Offset of the opcode in `data.pkl`.
        offset: usize,
        /// Module part.
        module: String,
        /// Name part.
        name: String,
    },
    /// A torch dtype / storage type this reader does not support.
    #[error("data.pkl byte {offset}: unsupported torch dtype or storage type 'torch.{name}'")]
    UnsupportedDType {
        /// Offset of the opcode in `data.pkl`.
        offset: usize,
        /// Attribute name under `torch`.
        name: String,
    },
    /// A tensor is inconsistent with its storage.
    #[error("tensor '{name}': {msg}")]
    Tensor {
        /// Tensor name.
        name: String,
        /// What is wrong.
        msg: String,
    },
    /// The loaded object is not a dictionary of tensors, or is too deep /
    /// large / has duplicate names.
    #[error("unsupported checkpoint structure: {0}")]
    Structure(String),
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
    let mut flat = Flattener {
        budget: pkl.len().saturating_add(16),
        names: HashSet::new(),
        tensors: Vec::new(),
        skipped: Vec::new(),
    };
    match &root {
        Value::Dict(_) => flat.visit(&root, "", 0)?,
        other => {
            return Err(TorchError::Structure(format!(
                "top-level object is {}, expected a dict of tensors",
                other.kind()
            )))
        }
    }
    let mut store = StorageReader {
        archive: &archive,
        prefix: &prefix,
        cache: HashMap::new(),
        budget: (bytes.len() as u64).saturating_mul(MAX_EXPANSION).saturating_add(1 << 20),
    };
    let mut tensors = Vec::with_capacity(flat.tensors.len());
    for (name, desc) in flat.tensors {
        let t = store.materialize(name, &desc)?;
        tensors.push(t);
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

// ---------------------------------------------------------------------------
// Pickle values
// ---------------------------------------------------------------------------

type Seq = Rc<RefCell<Vec<Value>>>;
type DictRef = Rc<RefCell<DictObj>>;

/// A Python `dict` / `OrderedDict` (insertion ordered).
#[derive(Default)]
struct DictObj {
    entries: Vec<(Value, Value)>,
    index: HashMap<Key, usize>,
}

/// Hashable view of a dictionary key (for overwrite-on-duplicate semantics).
#[derive(PartialEq, Eq, Hash)]
enum Key {
    None,
    Bool(bool),
    Int(i64),
    Float(u64),
    Str(Rc<str>),
    Bytes(Rc<[u8]>),
}

/// Whitelisted callables and type tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Global {
    OrderedDict,
    Set,
    FrozenSet,
    RebuildTensor,
    RebuildTensorV2,
    RebuildTensorV3,
    RebuildParameter,
    RebuildParameterWithState,
    RebuildFromTypeV2,
    TensorType,
    ParameterType,
    /// A typed storage class (`torch.FloatStorage`, ...).
    StorageType(DType),
    /// `torch.UntypedStorage` (a storage of bytes).
    UntypedStorage,
    /// A dtype object (`torch.float32`, ...).
    DType(DType),
}

/// Result of a persistent load: a reference to `<prefix>/data/<key>`.
#[derive(Debug)]
struct StorageRef {
    key: Rc<str>,
    /// `None` for an untyped (byte) storage.
    dtype: Option<DType>,
    /// Number of elements (bytes for untyped storages).
    numel: u64,
}

/// A tensor view on a storage, not yet materialized.
#[derive(Debug)]
struct TensorDesc {
    storage: Rc<StorageRef>,
    dtype: DType,
    offset: u64,
    shape: Vec<usize>,
    stride: Vec<u64>,
}

#[derive(Clone)]
enum Value {
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(Rc<str>),
    Bytes(Rc<[u8]>),
    Tuple(Seq),
    List(Seq),
    Set(Seq),
    Dict(DictRef),
    Global(Global),
    Storage(Rc<StorageRef>),
    Tensor(Rc<TensorDesc>),
}

impl Value {
    fn kind(&self) -> &'static str {
        match self {
            Value::None => "None",
            Value::Bool(_) => "a bool",
            Value::Int(_) => "an int",
            Value::Float(_) => "a float",
            Value::Str(_) => "a str",
            Value::Bytes(_) => "bytes",
            Value::Tuple(_) => "a tuple",
            Value::List(_) => "a list",
            Value::Set(_) => "a set",
            Value::Dict(_) => "a dict",
            Value::Global(_) => "a global",
            Value::Storage(_) => "a storage",
            Value::Tensor(_) => "a tensor",
        }
    }

    fn key(&self) -> Option<Key> {
        Some(match self {
            Value::None => Key::None,
            Value::Bool(b) => Key::Bool(*b),
            Value::Int(i) => Key::Int(*i),
            Value::Float(f) => Key::Float(f.to_bits()),
            Value::Str(s) => Key::Str(s.clone()),
            Value::Bytes(b) => Key::Bytes(b.clone()),
            _ => return None,
        })
    }
}

// ---------------------------------------------------------------------------
// Restricted unpickler
// ---------------------------------------------------------------------------

fn opcode_name(op: u8) -> &'static str {
    match op {
        b'(' => "MARK",
        b'.' => "STOP",
        b'0' => "POP",
        b'1' => "POP_MARK",
        b'2' => "DUP",
        b'F' => "FLOAT",
        b'I' => "INT",
        b'J' => "BININT",
        b'K' => "BININT1",
        b'L' => "LONG",
        b'M' => "BININT2",
        b'N' => "NONE",
        b'P' => "PERSID",
        b'Q' => "BINPERSID",
        b'R' => "REDUCE",
        b'S' => "STRING",
        b'T' => "BINSTRING",
        b'U' => "SHORT_BINSTRING",
        b'V' => "UNICODE",
        b'X' => "BINUNICODE",
        b'a' => "APPEND",
        b'b' => "BUILD",
        b'c' => "GLOBAL",
        b'd' => "DICT",
        b'}' => "EMPTY_DICT",
        b'e' => "APPENDS",
        b'g' => "GET",
        b'h' => "BINGET",
        b'i' => "INST",
        b'j' => "LONG_BINGET",
        b'l' => "LIST",
        b']' => "EMPTY_LIST",
        b'o' => "OBJ",
        b'p' => "PUT",
        b'q' => "BINPUT",
        b'r' => "LONG_BINPUT",
        b's' => "SETITEM",
        b't' => "TUPLE",
        b')' => "EMPTY_TUPLE",
        b'u' => "SETITEMS",
        b'G' => "BINFLOAT",
        0x80 => "PROTO",
        0x81 => "NEWOBJ",
        0x82 => "EXT1",
        0x83 => "EXT2",
        0x84 => "EXT4",
        0x85 => "TUPLE1",
        0x86 => "TUPLE2",
        0x87 => "TUPLE3",
        0x88 => "NEWTRUE",
        0x89 => "NEWFALSE",
        0x8a => "LONG1",
        0x8b => "LONG4",
        b'B' => "BINBYTES",
        b'C' => "SHORT_BINBYTES",
        0x8c => "SHORT_BINUNICODE",
        0x8d => "BINUNICODE8",
        0x8e => "BINBYTES8",
        0x8f => "EMPTY_SET",
        0x90 => "ADDITEMS",
        0x91 => "FROZENSET",
        0x92 => "NEWOBJ_EX",
        0x93 => "STACK_GLOBAL",
        0x94 => "MEMOIZE",
        0x95 => "FRAME",
        0x96 => "BYTEARRAY8",
        0x97 => "NEXT_BUFFER",
        0x98 => "READONLY_BUFFER",
        _ => "unknown opcode",
    }
}

/// Resolves `module.name` against the allowlist.
fn resolve_global(module: &str, name: &str, at: usize) -> Result<Global, TorchError> {
    let g = match (module, name) {
        ("collections", "OrderedDict") => Global::OrderedDict,
        ("builtins" | "__builtin__", "set") => Global::Set,
        ("builtins" | "__builtin__", "frozenset") => Global::FrozenSet,
        ("torch._utils", "_rebuild_tensor") => Global::RebuildTensor,
        ("torch._utils", "_rebuild_tensor_v2") => Global::RebuildTensorV2,
        ("torch._utils", "_rebuild_tensor_v3") => Global::RebuildTensorV3,
        ("torch._utils", "_rebuild_parameter") => Global::RebuildParameter,
        ("torch._utils", "_rebuild_parameter_with_state") => Global::RebuildParameterWithState,
        ("torch._tensor" | "torch._utils", "_rebuild_from_type_v2") => Global::RebuildFromTypeV2,
        ("torch" | "torch._tensor", "Tensor") => Global::TensorType,
        ("torch.nn.parameter", "Parameter") => Global::ParameterType,
        ("torch" | "torch.storage", "UntypedStorage") => Global::UntypedStorage,
        ("torch" | "torch.cuda", n) if DType::from_torch_storage_class(n).is_some() => {
            Global::StorageType(DType::from_torch_storage_class(n).unwrap_or(DType::U8))
        }
        ("torch", n) if DType::from_torch_name(n).is_some() => {
            Global::DType(DType::from_torch_name(n).unwrap_or(DType::U8))
        }
        ("torch" | "torch.cuda", n) if is_other_torch_dtype(n) => {
            return Err(TorchError::UnsupportedDType { offset: at, name: n.to_owned() })
        }
        _ => return Err(TorchError::ForbiddenGlobal { offset: at, module: module.to_owned(), name: name.to_owned() }),
    };
    Ok(g)
}

/// Torch storage classes / dtypes that exist but are not supported here
/// (complex, quantized, float8, unsigned > 8 bits, sub-byte, ...).
fn is_other_torch_dtype(n: &str) -> bool {
    let digits = |rest: &str| !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_digit());
    n.ends_with("Storage")
        || ["complex", "float8_", "float4_", "qint", "quint", "bits"].iter().any(|p| n.starts_with(p))
        || n.strip_prefix("uint").is_some_and(digits)
        || n.strip_prefix("int").is_some_and(digits)
        || matches!(n, "cfloat" | "cdouble" | "chalf")
}

fn perr(offset: usize, msg: impl Into<String>) -> TorchError {
    TorchError::Pickle { offset, msg: msg.into() }
}

/// The restricted pickle machine.
///
/// Every container it creates is also kept in `seqs` / `dicts`; on drop the
/// contents of all containers are cleared while these registries still hold
/// them, so that dropping deeply nested or cyclic structures never recurses
/// (no stack overflow) and never leaks.
struct Unpickler<'a> {
    data: &'a [u8],
    pos: usize,
    stack: Vec<Value>,
    marks: Vec<usize>,
    memo: HashMap<u32, Value>,
    seqs: Vec<Seq>,
    dicts: Vec<DictRef>,
}

impl Drop for Unpickler<'_> {
    fn drop(&mut self) {
        self.stack.clear();
        self.memo.clear();
        for s in &self.seqs {
            if let Ok(mut b) = s.try_borrow_mut() {
                let contents = std::mem::take(&mut *b);
                drop(b);
                drop(contents);
            }
        }
        for d in &self.dicts {
            if let Ok(mut b) = d.try_borrow_mut() {
                let contents = std::mem::take(&mut *b);
                drop(b);
                drop(contents);
            }
        }
    }
}

impl<'a> Unpickler<'a> {
    fn new(data: &'a [u8]) -> Self {
        Unpickler {
            data,
            pos: 0,
            stack: Vec::new(),
            marks: Vec::new(),
            memo: HashMap::new(),
            seqs: Vec::new(),
            dicts: Vec::new(),
        }
    }

    fn take(&mut self, n: usize, at: usize, what: &str) -> Result<&'a [u8], TorchError> {
        let data = self.data;
        let s = self.pos.checked_add(n).and_then(|end| data.get(self.pos..end)).ok_or_else(|| {
            perr(
                at,
                format!("{what}: needs {n} bytes but data.pkl has only {} left", data.len().saturating_sub(self.pos)),
            )
        })?;
        self.pos += n;
        Ok(s)
    }

    fn u8(&mut self, at: usize, what: &str) -> Result<u8, TorchError> {
        Ok(self.take(1, at, what)?.first().copied().unwrap_or(0))
    }

    fn arr<const N: usize>(&mut self, at: usize, what: &str) -> Result<[u8; N], TorchError> {
        let s = self.take(N, at, what)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    fn len_u64(&mut self, v: u64, at: usize, what: &str) -> Result<&'a [u8], TorchError> {
        let n = usize::try_from(v).map_err(|_| perr(at, format!("{what}: length {v} too large")))?;
        self.take(n, at, what)
    }

    fn line(&mut self, at: usize, what: &str) -> Result<&'a str, TorchError> {
        let data = self.data;
        let rest = data.get(self.pos..).unwrap_or(&[]);
        let nl = rest.iter().position(|&b| b == b'\n').ok_or_else(|| perr(at, format!("{what}: missing newline")))?;
        let s = rest.get(..nl).unwrap_or(&[]);
        self.pos += nl + 1;
        std::str::from_utf8(s).map_err(|_| perr(at, format!("{what}: not valid UTF-8")))
    }

    fn frame_base(&self) -> usize {
        self.marks.last().copied().unwrap_or(0)
    }

    fn push(&mut self, v: Value) {
        self.stack.push(v);
    }

    fn pop(&mut self, at: usize) -> Result<Value, TorchError> {
        if self.stack.len() <= self.frame_base() {
            return Err(perr(at, "stack underflow"));
        }
        self.stack.pop().ok_or_else(|| perr(at, "stack underflow"))
    }

    fn top(&self, at: usize) -> Result<&Value, TorchError> {
        if self.stack.len() <= self.frame_base() {
            return Err(perr(at, "stack underflow"));
        }
        self.stack.last().ok_or_else(|| perr(at, "stack underflow"))
    }

    fn pop_mark(&mut self, at: usize) -> Result<Vec<Value>, TorchError> {
        let m = self.marks.pop().ok_or_else(|| perr(at, "no MARK on the stack"))?;
        if m > self.stack.len() {
            return Err(perr(at, "corrupt MARK"));
        }
        Ok(self.stack.split_off(m))
    }

    fn new_seq(&mut self, items: Vec<Value>) -> Seq {
        let s = Rc::new(RefCell::new(items));
        self.seqs.push(s.clone());
        s
    }

    fn new_dict(&mut self) -> DictRef {
        let d = Rc::new(RefCell::new(DictObj::default()));
        self.dicts.push(d.clone());
        d
    }

    fn memo_put(&mut self, idx: u32, at: usize) -> Result<(), TorchError> {
        let v = self.top(at)?.clone();
        self.memo.insert(idx, v);
        Ok(())
    }

    fn memo_get(&mut self, idx: u32, at: usize) -> Result<(), TorchError> {
        let v = self.memo.get(&idx).cloned().ok_or_else(|| perr(at, format!("memo key {idx} not found")))?;
        self.push(v);
        Ok(())
    }

    fn str_value(raw: &[u8], at: usize) -> Result<Value, TorchError> {
        let s = std::str::from_utf8(raw).map_err(|_| perr(at, "string is not valid UTF-8"))?;
        Ok(Value::Str(Rc::from(s)))
    }

    fn int_from_le(raw: &[u8], at: usize) -> Result<Value, TorchError> {
        if raw.len() > 8 {
            return Err(perr(at, format!("{}-byte integer does not fit in 64 bits", raw.len())));
        }
        let Some(&last) = raw.last() else {
            return Ok(Value::Int(0));
        };
        let fill = if last & 0x80 != 0 { 0xff } else { 0 };
        let mut a = [fill; 8];
        for (d, s) in a.iter_mut().zip(raw) {
            *d = *s;
        }
        Ok(Value::Int(i64::from_le_bytes(a)))
    }

    /// Runs the machine to `STOP` and returns the unpickled object.
    #[allow(clippy::too_many_lines)]
    fn run(&mut self) -> Result<Value, TorchError> {
        loop {
            let at = self.pos;
            let Some(&op) = self.data.get(at) else {
                return Err(perr(at, "unexpected end of data.pkl (no STOP opcode)"));
            };
            self.pos += 1;
            match op {
                0x80 => {
                    let v = self.u8(at, "PROTO")?;
                    if v > 5 {
                        return Err(perr(at, format!("unsupported pickle protocol {v}")));
                    }
                }
                0x95 => {
                    let n = u64::from_le_bytes(self.arr::<8>(at, "FRAME")?);
                    let left = self.data.len().saturating_sub(self.pos);
                    if n > left as u64 {
                        return Err(perr(at, format!("FRAME of {n} bytes but only {left} left")));
                    }
                }
                b'.' => return self.pop(at),
                b'(' => self.marks.push(self.stack.len()),
                b'0' => {
                    self.pop(at)?;
                }
                b'1' => {
                    self.pop_mark(at)?;
                }
                b'2' => {
                    let v = self.top(at)?.clone();
                    self.push(v);
                }
                b'N' => self.push(Value::None),
                0x88 => self.push(Value::Bool(true)),
                0x89 => self.push(Value::Bool(false)),
                b'J' => {
                    let v = i32::from_le_bytes(self.arr::<4>(at, "BININT")?);
                    self.push(Value::Int(i64::from(v)));
                }
                b'K' => {
                    let v = self.u8(at, "BININT1")?;
                    self.push(Value::Int(i64::from(v)));
                }
                b'M' => {
                    let v = u16::from_le_bytes(self.arr::<2>(at, "BININT2")?);
                    self.push(Value::Int(i64::from(v)));
                }
                0x8a => {
                    let n = self.u8(at, "LONG1")?;
                    let raw = self.take(usize::from(n), at, "LONG1")?;
                    let v = Self::int_from_le(raw, at)?;
                    self.push(v);
                }
                0x8b => {
                    let n = i32::from_le_bytes(self.arr::<4>(at, "LONG4")?);
                    let n = usize::try_from(n).map_err(|_| perr(at, "LONG4 with negative length"))?;
                    let raw = self.take(n, at, "LONG4")?;
                    let v = Self::int_from_le(raw, at)?;
                    self.push(v);
                }
                b'G' => {
                    let v = f64::from_be_bytes(self.arr::<8>(at, "BINFLOAT")?);
                    self.push(Value::Float(v));
                }
                0x8c => {
                    let n = self.u8(at, "SHORT_BINUNICODE")?;
                    let raw = self.take(usize::from(n), at, "SHORT_BINUNICODE")?;
                    let v = Self::str_value(raw, at)?;
                    self.push(v);
                }
                b'X' => {
                    let n = u32::from_le_bytes(self.arr::<4>(at, "BINUNICODE")?);
                    let raw = self.len_u64(u64::from(n), at, "BINUNICODE")?;
                    let v = Self::str_value(raw, at)?;
                    self.push(v);
                }
                0x8d => {
                    let n = u64::from_le_bytes(self.arr::<8>(at, "BINUNICODE8")?);
                    let raw = self.len_u64(n, at, "BINUNICODE8")?;
                    let v = Self::str_value(raw, at)?;
                    self.push(v);
                }
                b'U' => {
                    let n = self.u8(at, "SHORT_BINSTRING")?;
                    let raw = self.take(usize::from(n), at, "SHORT_BINSTRING")?;
                    let v = Self::str_value(raw, at)?;
                    self.push(v);
                }
                b'T' => {
                    let n = i32::from_le_bytes(self.arr::<4>(at, "BINSTRING")?);
                    let n = usize::try_from(n).map_err(|_| perr(at, "BINSTRING with negative length"))?;
                    let raw = self.take(n, at, "BINSTRING")?;
                    let v = Self::str_value(raw, at)?;
                    self.push(v);
                }
                b'C' => {
                    let n = self.u8(at, "SHORT_BINBYTES")?;
                    let raw = self.take(usize::from(n), at, "SHORT_BINBYTES")?;
                    self.push(Value::Bytes(Rc::from(raw)));
                }
                b'B' => {
                    let n = u32::from_le_bytes(self.arr::<4>(at, "BINBYTES")?);
                    let raw = self.len_u64(u64::from(n), at, "BINBYTES")?;
                    self.push(Value::Bytes(Rc::from(raw)));
                }
                0x8e => {
                    let n = u64::from_le_bytes(self.arr::<8>(at, "BINBYTES8")?);
                    let raw = self.len_u64(n, at, "BINBYTES8")?;
                    self.push(Value::Bytes(Rc::from(raw)));
                }
                b')' => {
                    let t = self.new_seq(Vec::new());
                    self.push(Value::Tuple(t));
                }
                b't' => {
                    let items = self.pop_mark(at)?;
                    let t = self.new_seq(items);
                    self.push(Value::Tuple(t));
                }
                0x85..=0x87 => {
                    let n = usize::from(op - 0x84);
                    let mut items = Vec::with_capacity(n);
                    for _ in 0..n {
                        items.push(self.pop(at)?);
                    }
                    items.reverse();
                    let t = self.new_seq(items);
                    self.push(Value::Tuple(t));
                }
                b']' => {
                    let l = self.new_seq(Vec::new());
                    self.push(Value::List(l));
                }
                b'a' => {
                    let v = self.pop(at)?;
                    match self.top(at)? {
                        Value::List(l) => l.borrow_mut().push(v),
                        other => return Err(perr(at, format!("APPEND to {}", other.kind()))),
                    }
                }
                b'e' => {
                    let items = self.pop_mark(at)?;
                    match self.top(at)? {
                        Value::List(l) => l.borrow_mut().extend(items),
                        other => return Err(perr(at, format!("APPENDS to {}", other.kind()))),
                    }
                }
                b'}' => {
                    let d = self.new_dict();
                    self.push(Value::Dict(d));
                }
                b's' => {
                    let v = self.pop(at)?;
                    let k = self.pop(at)?;
                    self.set_items(vec![k, v], at)?;
                }
                b'u' => {
                    let items = self.pop_mark(at)?;
                    self.set_items(items, at)?;
                }
                0x8f => {
                    let s = self.new_seq(Vec::new());
                    self.push(Value::Set(s));
                }
                0x90 => {
                    let items = self.pop_mark(at)?;
                    match self.top(at)? {
                        Value::Set(s) => s.borrow_mut().extend(items),
                        other => return Err(perr(at, format!("ADDITEMS to {}", other.kind()))),
                    }
                }
                0x91 => {
                    let items = self.pop_mark(at)?;
                    let s = self.new_seq(items);
                    self.push(Value::Set(s));
                }
                b'q' => {
                    let i = self.u8(at, "BINPUT")?;
                    self.memo_put(u32::from(i), at)?;
                }
                b'r' => {
                    let i = u32::from_le_bytes(self.arr::<4>(at, "LONG_BINPUT")?);
                    self.memo_put(i, at)?;
                }
                0x94 => {
                    let i = u32::try_from(self.memo.len()).map_err(|_| perr(at, "memo full"))?;
                    self.memo_put(i, at)?;
                }
                b'h' => {
                    let i = self.u8(at, "BINGET")?;
                    self.memo_get(u32::from(i), at)?;
                }
                b'j' => {
                    let i = u32::from_le_bytes(self.arr::<4>(at, "LONG_BINGET")?);
                    self.memo_get(i, at)?;
                }
                b'c' => {
                    let module = self.line(at, "GLOBAL module")?;
                    let name = self.line(at, "GLOBAL name")?;
                    let g = resolve_global(module, name, at)?;
                    self.push(Value::Global(g));
                }
                0x93 => {
                    let name = self.pop(at)?;
                    let module = self.pop(at)?;
                    let (Value::Str(module), Value::Str(name)) = (&module, &name) else {
                        return Err(perr(
                            at,
                            format!("STACK_GLOBAL needs two str, got {} and {}", module.kind(), name.kind()),
                        ));
                    };
                    let g = resolve_global(module, name, at)?;
                    self.push(Value::Global(g));
                }
                b'R' => {
                    let args = self.pop(at)?;
                    let func = self.pop(at)?;
                    let Value::Global(g) = func else {
                        return Err(perr(at, format!("REDUCE on {}, not a global", func.kind())));
                    };
                    let Value::Tuple(args) = args else {
                        return Err(perr(at, format!("REDUCE arguments are {}, not a tuple", args.kind())));
                    };
                    let args = args.borrow().clone();
                    let v = self.call(g, &args, at, true)?;
                    self.push(v);
                }
                b'b' => {
                    let state = self.pop(at)?;
                    match self.top(at)? {
                        // Attributes of an OrderedDict subclass instance (e.g. the
                        // `_metadata` of a state dict): irrelevant for tensors.
                        Value::Dict(_) => drop(state),
                        other => return Err(perr(at, format!("BUILD on {} is not supported", other.kind()))),
                    }
                }
                b'Q' => {
                    let pid = self.pop(at)?;
                    let s = Self::persistent_load(&pid, at)?;
                    self.push(Value::Storage(Rc::new(s)));
                }
                _ => return Err(TorchError::UnsupportedOpcode { offset: at, opcode: op, name: opcode_name(op) }),
            }
        }
    }

    fn set_items(&mut self, items: Vec<Value>, at: usize) -> Result<(), TorchError> {
        if items.len() % 2 == 1 {
            return Err(perr(at, "SETITEMS with an odd number of items"));
        }
        let Value::Dict(d) = self.top(at)? else {
            return Err(perr(at, format!("SETITEM(S) on {}", self.top(at)?.kind())));
        };
        let mut d = d.borrow_mut();
        let mut it = items.into_iter();
        while let (Some(k), Some(v)) = (it.next(), it.next()) {
            match k.key() {
                Some(key) => {
                    if let Some(&i) = d.index.get(&key) {
                        if let Some(slot) = d.entries.get_mut(i) {
                            slot.1 = v;
                        }
                    } else {
                        let i = d.entries.len();
                        d.index.insert(key, i);
                        d.entries.push((k, v));
                    }
                }
                None => d.entries.push((k, v)),
            }
        }
        Ok(())
    }

    /// `('storage', storage_type, key, location, numel)`; location ignored.
    fn persistent_load(pid: &Value, at: usize) -> Result<StorageRef, TorchError> {
        let Value::Tuple(t) = pid else {
            return Err(perr(at, format!("persistent id is {}, expected a tuple", pid.kind())));
        };
        let t = t.borrow();
        let [Value::Str(tag), ty, Value::Str(key), Value::Str(_location), Value::Int(numel)] = t.as_slice() else {
            return Err(perr(at, "persistent id is not ('storage', storage_type, key, location, numel)"));
        };
        if &**tag != "storage" {
            return Err(perr(at, format!("unsupported persistent id kind '{tag}'")));
        }
        let dtype = match ty {
            Value::Global(Global::StorageType(d) | Global::DType(d)) => Some(*d),
            Value::Global(Global::UntypedStorage) => None,
            other => {
                return Err(perr(at, format!("persistent id storage type is {}, not a storage class", other.kind())))
            }
        };
        let numel = u64::try_from(*numel).map_err(|_| perr(at, format!("negative storage size {numel}")))?;
        Ok(StorageRef { key: key.clone(), dtype, numel })
    }

    /// Calls a whitelisted global. `nested_ok` allows one level of
    /// `_rebuild_from_type_v2` indirection.
    fn call(&mut self, g: Global, args: &[Value], at: usize, nested_ok: bool) -> Result<Value, TorchError> {
        match g {
            Global::OrderedDict => {
                if !args.is_empty() {
                    return Err(perr(at, "OrderedDict() with arguments is not supported"));
                }
                Ok(Value::Dict(self.new_dict()))
            }
            Global::Set | Global::FrozenSet => {
                let items = match args {
                    [] => Vec::new(),
                    [Value::List(s) | Value::Tuple(s) | Value::Set(s)] => s.borrow().clone(),
                    _ => return Err(perr(at, "set() expects one list argument")),
                };
                Ok(Value::Set(self.new_seq(items)))
            }
            Global::RebuildTensor => match args {
                [s, o, size, stride] => rebuild_tensor(s, o, size, stride, None, at),
                _ => Err(perr(at, format!("_rebuild_tensor expects 4 arguments, got {}", args.len()))),
            },
            Global::RebuildTensorV2 => match args {
                [s, o, size, stride, _rg, _hooks] | [s, o, size, stride, _rg, _hooks, _] => {
                    rebuild_tensor(s, o, size, stride, None, at)
                }
                _ => Err(perr(at, format!("_rebuild_tensor_v2 expects 6 or 7 arguments, got {}", args.len()))),
            },
            Global::RebuildTensorV3 => match args {
                [s, o, size, stride, _rg, _hooks, dt] | [s, o, size, stride, _rg, _hooks, dt, _] => {
                    let Value::Global(Global::DType(dt)) = dt else {
                        return Err(perr(at, format!("_rebuild_tensor_v3 dtype is {}", dt.kind())));
                    };
                    rebuild_tensor(s, o, size, stride, Some(*dt), at)
                }
                _ => Err(perr(at, format!("_rebuild_tensor_v3 expects 7 or 8 arguments, got {}", args.len()))),
            },
            Global::RebuildParameter | Global::RebuildParameterWithState => match args {
                [t @ Value::Tensor(_), _rg, _hooks] | [t @ Value::Tensor(_), _rg, _hooks, _] => Ok(t.clone()),
                _ => Err(perr(at, "_rebuild_parameter expects (tensor, requires_grad, hooks[, state])")),
            },
            Global::RebuildFromTypeV2 => {
                let [Value::Global(func), Value::Global(Global::TensorType | Global::ParameterType), Value::Tuple(fargs), _state] =
                    args
                else {
                    return Err(perr(
                        at,
                        "_rebuild_from_type_v2 expects (rebuild function, torch.Tensor/Parameter, args, state)",
                    ));
                };
                if !nested_ok
                    || !matches!(
                        func,
                        Global::RebuildTensor
                            | Global::RebuildTensorV2
                            | Global::RebuildTensorV3
                            | Global::RebuildParameter
                            | Global::RebuildParameterWithState
                    )
                {
                    return Err(perr(at, format!("_rebuild_from_type_v2 cannot call {func:?}")));
                }
                let fargs = fargs.borrow().clone();
                self.call(*func, &fargs, at, false)
            }
            Global::TensorType
            | Global::ParameterType
            | Global::StorageType(_)
            | Global::UntypedStorage
            | Global::DType(_) => Err(perr(at, format!("{g:?} cannot be called"))),
        }
    }
}

fn as_u64(v: &Value, what: &str, at: usize) -> Result<u64, TorchError> {
    match v {
        Value::Int(i) => u64::try_from(*i).map_err(|_| perr(at, format!("{what} is negative ({i})"))),
        other => Err(perr(at, format!("{what} is {}, expected an int", other.kind()))),
    }
}

fn as_u64_seq(v: &Value, what: &str, at: usize) -> Result<Vec<u64>, TorchError> {
    let (Value::Tuple(s) | Value::List(s)) = v else {
        return Err(perr(at, format!("{what} is {}, expected a tuple", v.kind())));
    };
    let s = s.borrow();
    if s.len() > MAX_DIMS {
        return Err(perr(at, format!("{what} has {} dimensions (max {MAX_DIMS})", s.len())));
    }
    s.iter().map(|x| as_u64(x, what, at)).collect()
}

fn rebuild_tensor(
    storage: &Value,
    offset: &Value,
    size: &Value,
    stride: &Value,
    dtype: Option<DType>,
    at: usize,
) -> Result<Value, TorchError> {
    let Value::Storage(storage) = storage else {
        return Err(perr(at, format!("tensor storage is {}, not a persistent storage", storage.kind())));
    };
    let dtype = dtype
        .or(storage.dtype)
        .ok_or_else(|| perr(at, "tensor on an untyped storage without a dtype (needs _rebuild_tensor_v3)"))?;
    let offset = as_u64(offset, "storage offset", at)?;
    let shape = as_u64_seq(size, "size", at)?
        .into_iter()
        .map(|d| usize::try_from(d).map_err(|_| perr(at, format!("dimension {d} too large"))))
        .collect::<Result<Vec<_>, _>>()?;
    let stride = as_u64_seq(stride, "stride", at)?;
    if shape.len() != stride.len() {
        return Err(perr(at, format!("size has {} dimensions but stride has {}", shape.len(), stride.len())));
    }
    Ok(Value::Tensor(Rc::new(TensorDesc { storage: storage.clone(), dtype, offset, shape, stride })))
}

// ---------------------------------------------------------------------------
// Flattening and materialization
// ---------------------------------------------------------------------------

struct Flattener {
    /// Remaining node visits (bounds work on shared / cyclic structures).
    budget: usize,
    names: HashSet<String>,
    tensors: Vec<(String, Rc<TensorDesc>)>,
    skipped: Vec<String>,
}

impl Flattener {
    fn child_name(prefix: &str, key: &str) -> String {
        if prefix.is_empty() {
            key.to_owned()
        } else {
            format!("{prefix}.{key}")
        }
    }

    fn visit(&mut self, v: &Value, name: &str, depth: usize) -> Result<(), TorchError> {
        if depth > MAX_NESTING {
            return Err(TorchError::Structure(format!(
                "'{name}' is nested more than {MAX_NESTING} levels deep (or contains a cycle)"
            )));
        }
        self.budget = self.budget.checked_sub(1).ok_or_else(|| {
            TorchError::Structure("object graph is larger than data.pkl allows (shared references?)".into())
        })?;
        match v {
            Value::Dict(d) => {
                let d = d.borrow();
                for (k, val) in &d.entries {
                    let key = match k {
                        Value::Str(s) => s.to_string(),
                        Value::Int(i) => i.to_string(),
                        Value::Bool(b) => if *b { "True" } else { "False" }.to_owned(),
                        other => {
                            return Err(TorchError::Structure(format!(
                                "key of '{name}' is {}, expected str or int",
                                other.kind()
                            )))
                        }
                    };
                    self.visit(val, &Self::child_name(name, &key), depth + 1)?;
                }
            }
            Value::List(s) | Value::Tuple(s) => {
                let s = s.borrow();
                for (i, val) in s.iter().enumerate() {
                    self.visit(val, &Self::child_name(name, &i.to_string()), depth + 1)?;
                }
            }
            Value::Tensor(t) => {
                if !self.names.insert(name.to_owned()) {
                    return Err(TorchError::Structure(format!("duplicate tensor name '{name}'")));
                }
                self.tensors.push((name.to_owned(), t.clone()));
            }
            _ => self.skipped.push(name.to_owned()),
        }
        Ok(())
    }
}

struct StorageReader<'z, 'a> {
    archive: &'z ZipArchive<'a>,
    prefix: &'z str,
    /// CRC-verified storage entries by key.
    cache: HashMap<Rc<str>, &'a [u8]>,
    /// Remaining bytes that may be materialized.
    budget: u64,
}

impl StorageReader<'_, '_> {
    fn materialize(&mut self, name: String, t: &TensorDesc) -> Result<TorchTensor, TorchError> {
        let terr = |msg: String| TorchError::Tensor { name: name.clone(), msg };
        let st = &t.storage;
        let raw = if let Some(r) = self.cache.get(&st.key) {
            *r
        } else {
            let entry = format!("{}/data/{}", self.prefix, st.key);
            let r = self
                .archive
                .read(&entry)?
                .ok_or_else(|| TorchError::MissingEntry { name: entry, needed_by: format!("tensor '{name}'") })?;
            self.cache.insert(st.key.clone(), r);
            r
        };
        let st_elsize = st.dtype.map_or(1, DType::size_in_bytes) as u64;
        let declared = st.numel.checked_mul(st_elsize).filter(|&b| b <= raw.len() as u64).ok_or_else(|| {
            terr(format!(
                "storage '{}' declares {} elements but its entry has only {} bytes",
                st.key,
                st.numel,
                raw.len()
            ))
        })?;
        let elsize = t.dtype.size_in_bytes();
        let capacity = declared / elsize as u64;

        let numel = t
            .shape
            .iter()
            .try_fold(1u64, |acc, &d| acc.checked_mul(d as u64))
            .ok_or_else(|| terr(format!("shape {:?} overflows", t.shape)))?;
        let nbytes = numel.checked_mul(elsize as u64).ok_or_else(|| terr(format!("shape {:?} overflows", t.shape)))?;
        if nbytes > self.budget {
            return Err(terr(format!(
                "materializing {nbytes} bytes exceeds the limit ({MAX_EXPANSION}x the file size in total); \
                 expanded/overlapping views are not supported at this size"
            )));
        }
        self.budget -= nbytes;
        let nbytes = usize::try_from(nbytes).map_err(|_| terr("tensor too large".into()))?;

        let mut data = Vec::with_capacity(nbytes);
        if numel > 0 {
            // Largest element index touched by the view.
            let mut max = t.offset;
            for (&d, &s) in t.shape.iter().zip(&t.stride) {
                max = (d as u64 - 1)
                    .checked_mul(s)
                    .and_then(|x| max.checked_add(x))
                    .ok_or_else(|| terr("stride arithmetic overflows".into()))?;
            }
            if max >= capacity {
                return Err(terr(format!(
                    "view (offset {}, shape {:?}, stride {:?}) reaches element {max} but storage '{}' \
                     has {capacity} {} elements",
                    t.offset,
                    t.shape,
                    t.stride,
                    st.key,
                    t.dtype.torch_name()
                )));
            }
            let bytes = usize::try_from(declared).ok().and_then(|d| raw.get(..d)).unwrap_or(&[]);
            copy_view(bytes, elsize, t, &mut data).ok_or_else(|| terr("element out of storage bounds".into()))?;
        }
        Ok(TorchTensor { name, dtype: t.dtype, shape: t.shape.clone(), data })
    }
}

/// Appends the elements of view `t` over `storage` (bounds already checked;
/// returns `None` instead of panicking should any index still be out of
/// range). Requires every dimension to be non-zero.
fn copy_view(storage: &[u8], elsize: usize, t: &TensorDesc, out: &mut Vec<u8>) -> Option<()> {
    let get = |elem: u64, count: u64| -> Option<&[u8]> {
        let start = usize::try_from(elem).ok()?.checked_mul(elsize)?;
        let len = usize::try_from(count).ok()?.checked_mul(elsize)?;
        storage.get(start..start.checked_add(len)?)
    };
    // Contiguous (row-major) layout: one copy. Size-1 dims' strides are free.
    let mut expected = 1u64;
    let mut contiguous = true;
    for (&d, &s) in t.shape.iter().zip(&t.stride).rev() {
        if d != 1 && s != expected {
            contiguous = false;
            break;
        }
        expected = expected.checked_mul(d as u64)?;
    }
    if contiguous {
        out.extend_from_slice(get(t.offset, expected)?);
        return Some(());
    }
    let (&inner_len, outer_shape) = t.shape.split_last()?;
    let (&inner_stride, outer_stride) = t.stride.split_last()?;
    let mut idx = vec![0usize; outer_shape.len()];
    loop {
        let mut base = t.offset;
        for (&i, &s) in idx.iter().zip(outer_stride) {
            base = base.checked_add((i as u64).checked_mul(s)?)?;
        }
        if inner_stride == 1 {
            out.extend_from_slice(get(base, inner_len as u64)?);
        } else {
            for i in 0..inner_len as u64 {
                out.extend_from_slice(get(base.checked_add(i.checked_mul(inner_stride)?)?, 1)?);
            }
        }
        // Odometer increment over the outer dimensions.
        let mut carried = true;
        for (i, &d) in idx.iter_mut().zip(outer_shape).rev() {
            *i += 1;
            if *i < d {
                carried = false;
                break;
            }
            *i = 0;
        }
        if carried {
            return Some(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::zip::tests::build_zip;
    use super::*;

    macro_rules! fixture {
        ($f:literal) => {
            concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/torch/", $f)
        };
    }

    const FIXTURES: [&str; 5] = [
        fixture!("f32_views.pt"),
        fixture!("dtypes.pt"),
        fixture!("nested.pt"),
        fixture!("protocol4.pt"),
        fixture!("zs_cuda.pt"),
    ];

    fn load(path: &str) -> Vec<TorchTensor> {
        read_torch_state_dict(Path::new(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    fn get<'t>(ts: &'t [TorchTensor], name: &str) -> &'t TorchTensor {
        ts.iter().find(|t| t.name == name).unwrap_or_else(|| panic!("no tensor {name}"))
    }

    fn check(ts: &[TorchTensor], name: &str, dtype: DType, shape: &[usize], vals: &[f32]) {
        let t = get(ts, name);
        assert_eq!(t.dtype, dtype, "{name}");
        assert_eq!(t.shape, shape, "{name}");
        assert_eq!(t.data.len(), t.numel() * dtype.size_in_bytes(), "{name}");
        assert_eq!(t.to_f32_vec().unwrap(), vals, "{name}");
    }

    fn seq(n: usize) -> Vec<f32> {
        (0..n).map(|i| i as f32).collect()
    }

    // ----- pickle / archive builders for synthetic inputs -------------------

    fn global(m: &str, n: &str) -> Vec<u8> {
        format!("c{m}\n{n}\n").into_bytes()
    }

    fn s(x: &str) -> Vec<u8> {
        let mut v = vec![0x8c, x.len() as u8];
        v.extend_from_slice(x.as_bytes());
        v
    }

    fn int(i: i32) -> Vec<u8> {
        let mut v = vec![b'J'];
        v.extend_from_slice(&i.to_le_bytes());
        v
    }

    fn ints(xs: &[i32]) -> Vec<u8> {
        let mut v = vec![b'('];
        for &x in xs {
            v.extend(int(x));
        }
        v.push(b't');
        v
    }

    /// `_rebuild_tensor_v2(storage(key, FloatStorage, numel), offset, size, stride, False, OrderedDict())`
    fn tensor(key: &str, numel: i32, offset: i32, size: &[i32], stride: &[i32]) -> Vec<u8> {
        let mut v = global("torch._utils", "_rebuild_tensor_v2");
        v.extend(b"((");
        v.extend(s("storage"));
        v.extend(global("torch", "FloatStorage"));
        v.extend(s(key));
        v.extend(s("cpu"));
        v.extend(int(numel));
        v.extend(b"tQ");
        v.extend(int(offset));
        v.extend(ints(size));
        v.extend(ints(stride));
        v.push(0x89);
        v.extend(global("collections", "OrderedDict"));
        v.extend(b")Rt");
        v.push(b'R');
        v
    }

    /// `{name: tensor, ...}` pickle.
    fn dict_pickle(items: &[(&str, Vec<u8>)]) -> Vec<u8> {
        let mut v = vec![0x80, 2, b'}', b'('];
        for (k, t) in items {
            v.extend(s(k));
            v.extend_from_slice(t);
        }
        v.extend(b"u.");
        v
    }

    fn f32_bytes(xs: &[f32]) -> Vec<u8> {
        xs.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    fn archive(pkl: &[u8], storages: &[(&str, Vec<u8>)]) -> Vec<u8> {
        let names: Vec<String> = storages.iter().map(|(k, _)| format!("archive/data/{k}")).collect();
        let mut files: Vec<(&str, &[u8])> = vec![("archive/data.pkl", pkl), ("archive/byteorder", b"little")];
        for (n, (_, d)) in names.iter().zip(storages) {
            files.push((n, d));
        }
        files.push(("archive/version", b"3\n"));
        build_zip(&files, false)
    }

    fn synthetic() -> Vec<u8> {
        let pkl =
            dict_pickle(&[("w", tensor("0", 6, 0, &[2, 3], &[3, 1])), ("wt", tensor("0", 6, 0, &[3, 2], &[1, 3]))]);
        archive(&pkl, &[("0", f32_bytes(&seq(6)))])
    }

    fn err_of(bytes: &[u8]) -> TorchError {
        match read_torch_state_dict_from_bytes(bytes) {
            Ok(t) => panic!("expected an error, got {} tensors", t.len()),
            Err(e) => e,
        }
    }

    fn xorshift(state: &mut u64) -> u64 {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        *state
    }

    // ----- fixtures written by scripts/make_torch_fixtures.py ---------------

    #[test]
    fn fixture_f32_views_parameters_and_shared_storage() {
        let ts = load(fixture!("f32_views.pt"));
        let names: Vec<&str> = ts.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "linear.weight",
                "linear.bias",
                "param_with_state",
                "tensor_with_state",
                "base",
                "transposed",
                "row1",
                "strided",
                "emb.weight",
                "lm_head.weight"
            ]
        );
        use DType::F32;
        check(&ts, "linear.weight", F32, &[2, 3], &[0.0, 0.5, 1.0, 1.5, 2.0, 2.5]);
        check(&ts, "linear.bias", F32, &[2], &[-1.0, 1.0]);
        check(&ts, "param_with_state", F32, &[3], &[10.0, 11.0, 12.0]);
        check(&ts, "tensor_with_state", F32, &[2], &[100.0, 101.0]);
        check(&ts, "base", F32, &[3, 4], &seq(12));
        check(&ts, "transposed", F32, &[4, 3], &[0.0, 4.0, 8.0, 1.0, 5.0, 9.0, 2.0, 6.0, 10.0, 3.0, 7.0, 11.0]);
        check(&ts, "row1", F32, &[4], &[4.0, 5.0, 6.0, 7.0]);
        check(&ts, "strided", F32, &[3, 2], &[0.0, 2.0, 4.0, 6.0, 8.0, 10.0]);
        check(&ts, "emb.weight", F32, &[5], &[-2.0, -1.0, 0.0, 1.0, 2.0]);
        check(&ts, "lm_head.weight", F32, &[5], &[-2.0, -1.0, 0.0, 1.0, 2.0]);
    }

    #[test]
    fn fixture_dtypes_scalar_and_empty() {
        let ts = load(fixture!("dtypes.pt"));
        use DType::*;
        check(&ts, "f16", F16, &[6], &[-0.5, -0.25, 0.0, 0.25, 0.5, 0.75]);
        assert_eq!(get(&ts, "f16").data.get(..2), Some(&[0x00, 0xb8][..]));
        check(&ts, "bf16", BF16, &[6], &[-2.0, -0.5, 1.0, 2.5, 4.0, 5.5]);
        check(&ts, "f64", F64, &[3], &[0.0, 0.125, 0.25]);
        let i64s: Vec<i64> =
            get(&ts, "i64").data.chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().unwrap())).collect();
        assert_eq!(i64s, [-5, 999_999_999_995, 1_999_999_999_995, 2_999_999_999_995]);
        assert_eq!(get(&ts, "i64").dtype, I64);
        check(&ts, "i32", I32, &[4], &[-2.0, -1.0, 0.0, 1.0]);
        check(&ts, "i16", I16, &[3], &[0.0, -300.0, -600.0]);
        check(&ts, "i8", I8, &[4], &[-3.0, -2.0, -1.0, 0.0]);
        check(&ts, "u8", U8, &[4], &[250.0, 251.0, 252.0, 253.0]);
        check(&ts, "bool", Bool, &[3], &[1.0, 0.0, 1.0]);
        check(&ts, "scalar", F32, &[], &[3.5]);
        check(&ts, "empty", F32, &[0, 3], &[]);
    }

    #[test]
    fn fixture_nested_checkpoint_is_flattened() {
        let c = read_torch_checkpoint(Path::new(fixture!("nested.pt"))).unwrap();
        let names: Vec<&str> = c.tensors.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(
            names,
            ["state_dict.0.weight", "state_dict.0.bias", "state_dict.1.weight", "state_dict.1.bias", "aux.0"]
        );
        assert_eq!(c.skipped, ["epoch", "lr", "tag", "aux.1"]);
        use DType::F32;
        check(&c.tensors, "state_dict.0.weight", F32, &[2, 3], &seq(6));
        check(&c.tensors, "state_dict.0.bias", F32, &[2], &[0.5, -0.5]);
        check(&c.tensors, "state_dict.1.weight", F32, &[2], &[1.0, 1.0]);
        check(&c.tensors, "state_dict.1.bias", F32, &[2], &[0.0, 0.0]);
        check(&c.tensors, "aux.0", F32, &[2], &[7.0, 8.0]);
    }

    #[test]
    fn fixture_protocol4() {
        let ts = load(fixture!("protocol4.pt"));
        check(&ts, "a", DType::F32, &[2, 2], &seq(4));
        check(&ts, "b", DType::I64, &[3], &seq(3));
    }

    #[test]
    fn fixture_zs_with_cuda_location() {
        let ts = load(fixture!("zs_cuda.pt"));
        assert_eq!(ts.len(), 2);
        let token: Vec<f32> = (0..12).map(|i| i as f32 / 16.0).collect();
        check(&ts, "token_z", DType::F32, &[3, 4], &token);
        check(&ts, "pruner_z", DType::F32, &[3], &[-1.0, 0.0, 1.0]);
    }

    #[test]
    fn legacy_format_is_refused() {
        let e = read_torch_state_dict(Path::new(fixture!("legacy.pt"))).unwrap_err();
        assert!(matches!(e, TorchError::LegacyFormat), "{e}");
        assert!(e.to_string().contains("re-save with torch>=1.6"));
    }

    #[test]
    fn missing_file_is_io_error() {
        let e = read_torch_state_dict(Path::new(fixture!("does_not_exist.pt"))).unwrap_err();
        assert!(matches!(e, TorchError::Io { .. }), "{e}");
    }

    // ----- robustness --------------------------------------------------------

    #[test]
    fn truncation_at_every_byte_is_an_error() {
        for path in FIXTURES {
            let bytes = std::fs::read(path).unwrap();
            for cut in 0..bytes.len() {
                assert!(
                    read_torch_state_dict_from_bytes(&bytes[..cut]).is_err(),
                    "{path} truncated at {cut} was accepted"
                );
            }
        }
        let bytes = synthetic();
        for cut in 0..bytes.len() {
            assert!(read_torch_state_dict_from_bytes(&bytes[..cut]).is_err());
        }
    }

    #[test]
    fn byte_flips_never_panic() {
        // Raw flips (mostly caught by the zip structure / CRC checks).
        let bytes = std::fs::read(fixture!("f32_views.pt")).unwrap();
        for i in 0..bytes.len() {
            for bit in [0, 3, 7] {
                let mut m = bytes.clone();
                m[i] ^= 1 << bit;
                let _ = read_torch_state_dict_from_bytes(&m);
            }
        }
    }

    #[test]
    fn pickle_mutations_with_valid_crc_never_panic() {
        // Mutate data.pkl and the storages, then re-zip with correct CRCs so
        // the pickle machine and the tensor materialization get exercised.
        let mut rng = 0x9e37_79b9_7f4a_7c15u64;
        for path in FIXTURES {
            let bytes = std::fs::read(path).unwrap();
            let z = ZipArchive::parse(&bytes).unwrap();
            let entries: Vec<(String, Vec<u8>)> =
                z.entries().iter().map(|e| (e.name.clone(), z.read(&e.name).unwrap().unwrap().to_vec())).collect();
            let pkl_idx = entries.iter().position(|(n, _)| n.ends_with("/data.pkl")).unwrap();
            for round in 0..400 {
                let mut es = entries.clone();
                let target = if round % 4 == 3 { (xorshift(&mut rng) as usize) % es.len() } else { pkl_idx };
                let data = &mut es[target].1;
                if data.is_empty() {
                    continue;
                }
                let flips = 1 + xorshift(&mut rng) % 4;
                for _ in 0..flips {
                    let i = (xorshift(&mut rng) as usize) % data.len();
                    match xorshift(&mut rng) % 3 {
                        0 => data[i] ^= 1 << (xorshift(&mut rng) % 8),
                        1 => data[i] = xorshift(&mut rng) as u8,
                        _ => {
                            let cut = i.max(1);
                            data.truncate(cut);
                        }
                    }
                }
                let files: Vec<(&str, &[u8])> = es.iter().map(|(n, d)| (n.as_str(), d.as_slice())).collect();
                let _ = read_torch_state_dict_from_bytes(&build_zip(&files, round % 2 == 0));
            }
        }
    }

    #[test]
    fn random_pickles_never_panic() {
        let mut rng = 42u64;
        let ops: &[u8] = b"()tN.}]esuaqhjrRbQKJMXcG012\x80\x85\x86\x87\x88\x89\x8a\x8c\x8f\x90\x91\x93\x94\x95";
        for _ in 0..3000 {
            let len = (xorshift(&mut rng) % 64) as usize;
            let mut p = Vec::with_capacity(len);
            for _ in 0..len {
                let r = xorshift(&mut rng);
                p.push(if r % 3 == 1 { r as u8 >> 3 } else { ops[(r as usize >> 8) % ops.len()] });
            }
            let mut vm = Unpickler::new(&p);
            let _ = vm.run();
        }
    }

    #[test]
    fn os_system_global_is_refused() {
        // The classic exploit: os.system('echo pwned') via REDUCE.
        let mut pkl = vec![0x80, 2];
        pkl.extend(global("os", "system"));
        pkl.extend(b"(");
        pkl.extend(s("echo pwned"));
        pkl.extend(b"tR.");
        let e = err_of(&archive(&pkl, &[]));
        match &e {
            TorchError::ForbiddenGlobal { module, name, offset } => {
                assert_eq!((module.as_str(), name.as_str(), *offset), ("os", "system", 2));
            }
            other => panic!("unexpected {other}"),
        }
        assert!(e.to_string().contains("'os.system'"), "{e}");
    }

    #[test]
    fn other_dangerous_globals_are_refused() {
        for (m, n) in [
            ("builtins", "eval"),
            ("__builtin__", "getattr"),
            ("subprocess", "Popen"),
            ("torch", "load"),
            ("torch", "interpolate"),
            ("torch._utils", "_rebuild_device_tensor_from_numpy"),
            ("numpy.core.multiarray", "_reconstruct"),
            ("__main__", "Net"),
        ] {
            // Via STACK_GLOBAL (protocol 4 style) as well as GLOBAL.
            let mut p1 = vec![0x80, 4];
            p1.extend(s(m));
            p1.extend(s(n));
            p1.extend(b"\x93).");
            let mut p2 = vec![0x80, 2];
            p2.extend(global(m, n));
            p2.push(b'.');
            for p in [p1, p2] {
                match err_of(&archive(&p, &[])) {
                    TorchError::ForbiddenGlobal { module, name, .. } => {
                        assert_eq!((module.as_str(), name.as_str()), (m, n))
                    }
                    other => panic!("{m}.{n}: unexpected {other}"),
                }
            }
        }
    }

    #[test]
    fn unsupported_dtype_is_named() {
        for n in ["ComplexFloatStorage", "uint16", "float8_e4m3fn", "complex64", "qint8"] {
            let mut p = vec![0x80, 2];
            p.extend(global("torch", n));
            p.push(b'.');
            match err_of(&archive(&p, &[])) {
                TorchError::UnsupportedDType { name, .. } => assert_eq!(name, n),
                other => panic!("unexpected {other}"),
            }
        }
    }

    #[test]
    fn unsupported_opcodes_are_refused() {
        for (op, name) in [(b'i', "INST"), (0x81, "NEWOBJ"), (b'o', "OBJ"), (0x82, "EXT1"), (b'P', "PERSID")] {
            let p = [0x80, 2, b'(', op, b'.'];
            match err_of(&archive(&p, &[])) {
                TorchError::UnsupportedOpcode { opcode, name: n, offset } => {
                    assert_eq!((opcode, n, offset), (op, name, 3));
                }
                other => panic!("unexpected {other}"),
            }
        }
    }

    #[test]
    fn synthetic_views_and_shared_storage() {
        let ts = read_torch_state_dict_from_bytes(&synthetic()).unwrap();
        check(&ts, "w", DType::F32, &[2, 3], &seq(6));
        check(&ts, "wt", DType::F32, &[3, 2], &[0.0, 3.0, 1.0, 4.0, 2.0, 5.0]);
    }

    #[test]
    fn zip64_archive_is_read() {
        let pkl = dict_pickle(&[("w", tensor("0", 2, 0, &[2], &[1]))]);
        let st = f32_bytes(&[1.5, -2.0]);
        let files: Vec<(&str, &[u8])> = vec![("m/data.pkl", &pkl), ("m/data/0", &st)];
        let ts = read_torch_state_dict_from_bytes(&build_zip(&files, true)).unwrap();
        check(&ts, "w", DType::F32, &[2], &[1.5, -2.0]);
    }

    #[test]
    fn out_of_bounds_view_names_the_tensor() {
        let pkl = dict_pickle(&[("bad", tensor("0", 6, 2, &[2, 3], &[3, 1]))]);
        match err_of(&archive(&pkl, &[("0", f32_bytes(&seq(6)))])) {
            TorchError::Tensor { name, msg } => {
                assert_eq!(name, "bad");
                assert!(msg.contains("reaches element 7"), "{msg}");
            }
            other => panic!("unexpected {other}"),
        }
        // Storage entry shorter than the declared numel.
        let pkl = dict_pickle(&[("short", tensor("0", 6, 0, &[6], &[1]))]);
        assert!(matches!(
            err_of(&archive(&pkl, &[("0", f32_bytes(&seq(5)))])),
            TorchError::Tensor { name, .. } if name == "short"
        ));
        // Missing storage entry.
        let pkl = dict_pickle(&[("gone", tensor("7", 1, 0, &[1], &[1]))]);
        assert!(matches!(
            err_of(&archive(&pkl, &[])),
            TorchError::MissingEntry { name, .. } if name == "archive/data/7"
        ));
    }

    #[test]
    fn huge_expanded_view_is_refused() {
        // stride 0 over a 1-element storage: 2^40 elements from a 4-byte storage.
        let pkl = dict_pickle(&[("expanded", tensor("0", 1, 0, &[1 << 20, 1 << 20], &[0, 0]))]);
        match err_of(&archive(&pkl, &[("0", f32_bytes(&[1.0]))])) {
            TorchError::Tensor { name, msg } => {
                assert_eq!(name, "expanded");
                assert!(msg.contains("exceeds the limit"), "{msg}");
            }
            other => panic!("unexpected {other}"),
        }
        // A small expanded view is fine.
        let pkl = dict_pickle(&[("e", tensor("0", 1, 0, &[2, 2], &[0, 0]))]);
        let ts = read_torch_state_dict_from_bytes(&archive(&pkl, &[("0", f32_bytes(&[3.0]))])).unwrap();
        check(&ts, "e", DType::F32, &[2, 2], &[3.0; 4]);
    }

    #[test]
    fn big_endian_is_refused() {
        let pkl = dict_pickle(&[]);
        let z = build_zip(&[("a/data.pkl", &pkl), ("a/byteorder", b"big")], false);
        assert!(matches!(err_of(&z), TorchError::ByteOrder(o) if o == "big"));
        // Without a byteorder entry little-endian is assumed.
        let z = build_zip(&[("a/data.pkl", &pkl)], false);
        assert!(read_torch_state_dict_from_bytes(&z).unwrap().is_empty());
    }

    #[test]
    fn non_checkpoint_archives_are_refused() {
        let z = build_zip(&[("a/readme.txt", b"hi")], false);
        assert!(matches!(err_of(&z), TorchError::NotACheckpoint(_)));
        let pkl = dict_pickle(&[]);
        let z = build_zip(&[("m/data.pkl", &pkl), ("m/constants.pkl", &pkl), ("m/code/m.py", b"")], false);
        assert!(matches!(err_of(&z), TorchError::TorchScript { prefix } if prefix == "m"));
        assert!(matches!(err_of(b"not a zip at all, just text"), TorchError::Zip { .. }));
        // Top-level object that is not a dict.
        let mut pkl = vec![0x80, 2];
        pkl.extend(tensor("0", 1, 0, &[], &[]));
        pkl.push(b'.');
        assert!(matches!(err_of(&archive(&pkl, &[("0", f32_bytes(&[1.0]))])), TorchError::Structure(_)));
    }

    #[test]
    fn deep_nesting_does_not_overflow_the_stack() {
        // 1e6 nested 1-tuples: no recursion in the VM, nor when dropping.
        let mut p = vec![0x80, 2, b')'];
        p.extend(std::iter::repeat_n(0x85, 1_000_000));
        p.push(b'.');
        assert!(matches!(err_of(&archive(&p, &[])), TorchError::Structure(_)));
        // Long chain of lists linked through the memo after construction.
        let n = 200_000u32;
        let mut p = vec![0x80, 2];
        for i in 0..n {
            p.push(b']');
            p.push(b'r');
            p.extend(i.to_le_bytes());
            p.push(b'0');
        }
        for i in 0..n - 1 {
            p.push(b'j');
            p.extend(i.to_le_bytes());
            p.push(b'j');
            p.extend((i + 1).to_le_bytes());
            p.extend(b"a0");
        }
        p.extend(b"}K\x00j\x00\x00\x00\x00s.");
        match err_of(&archive(&p, &[])) {
            TorchError::Structure(msg) => assert!(msg.contains("nested more than"), "{msg}"),
            other => panic!("unexpected {other}"),
        }
    }

    #[test]
    fn cycles_and_shared_subgraphs_are_bounded() {
        // d = {}; d['self'] = d
        let mut p = vec![0x80, 2, b'}', b'q', 0];
        p.extend(s("self"));
        p.extend(b"h\x00s.");
        assert!(matches!(err_of(&archive(&p, &[])), TorchError::Structure(_)));
        // d_i = {'a': d_{i+1}, 'b': d_{i+1}} for 40 levels: 2^40 paths.
        let mut p = vec![0x80, 2, b'}', b'q', 0];
        for i in 1..40u8 {
            p.extend(b"}q");
            p.push(i);
            p.extend(b"0h");
            p.push(i - 1);
            p.push(b'(');
            p.extend(s("a"));
            p.push(b'h');
            p.push(i);
            p.extend(s("b"));
            p.push(b'h');
            p.push(i);
            p.extend(b"u0");
        }
        p.extend(b"h\x00.");
        match err_of(&archive(&p, &[])) {
            TorchError::Structure(msg) => assert!(msg.contains("larger than"), "{msg}"),
            other => panic!("unexpected {other}"),
        }
    }

    #[test]
    fn duplicate_flattened_names_are_refused() {
        let mut p = vec![0x80, 2, b'}', b'('];
        p.extend(s("a.b"));
        p.extend(tensor("0", 1, 0, &[], &[]));
        p.extend(s("a"));
        p.extend(b"}(");
        p.extend(s("b"));
        p.extend(tensor("0", 1, 0, &[], &[]));
        p.extend(b"uu.");
        match err_of(&archive(&p, &[("0", f32_bytes(&[1.0]))])) {
            TorchError::Structure(msg) => {
                assert!(msg.contains("duplicate tensor name 'a.b'"), "{msg}")
            }
            other => panic!("unexpected {other}"),
        }
    }

    #[test]
    fn to_f32_vec_names_the_tensor_of_a_partial_element() {
        let t = TorchTensor { name: "w".into(), dtype: DType::F32, shape: vec![1], data: vec![0; 5] };
        match t.to_f32_vec() {
            Err(TorchError::Tensor { name, msg }) => {
                assert_eq!(name, "w");
                assert!(msg.contains("not a whole number"), "{msg}");
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}
