//! The torch reader's error type. Every message says where the problem is: the byte of
//! the archive or of `data.pkl`, the entry, the global or the tensor.

use std::path::PathBuf;

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

/// A [`TorchError::Pickle`] at byte `offset` of `data.pkl`.
pub(super) fn perr(offset: usize, msg: impl Into<String>) -> TorchError {
    TorchError::Pickle { offset, msg: msg.into() }
}
