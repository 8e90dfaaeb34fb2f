//! The engine's error type.

use std::path::PathBuf;

/// Every way the engine can refuse a file or an input. Messages name the file, tensor,
/// layer or input at fault.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("invalid model file: {0}")]
    Format(String),
    #[error(
        "unsupported model file version {found} (this build reads version {supported}; re-convert the checkpoint)"
    )]
    Version { found: u32, supported: u32 },
    #[error("checksum mismatch in {0} (the file is corrupt)")]
    Checksum(String),
    #[error("model file lacks tensor '{name}' or it has the wrong shape (expected {expected:?})")]
    Tensor { name: String, expected: Vec<usize> },
    #[error("{0}")]
    Isa(#[from] toprt_kernels::IsaError),
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    #[error("this model file embeds no tokenizer: pass token ids instead of text")]
    NoTokenizer,
    #[error("input {index}: {msg}")]
    Input { index: usize, msg: String },
    #[error("empty batch: nothing to run")]
    EmptyBatch,
    #[error("input {index}: {len} tokens exceeds the maximum length {max} (truncation disabled)")]
    TooLong { index: usize, len: usize, max: usize },
    #[error("invalid option: {0}")]
    Options(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
