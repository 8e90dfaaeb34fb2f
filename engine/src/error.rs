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
    Isa(#[from] toprt_kernels::Error),
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    #[error("this model file embeds no tokenizer: pass token ids instead of text")]
    NoTokenizer,
    /// An input the tokenizer could not encode (e.g. a text pair whose special tokens
    /// alone exceed the maximum length).
    #[error("input {index}: {msg}")]
    Input { index: usize, msg: String },
    #[error("empty batch: nothing to run")]
    EmptyBatch,
    /// A sequence with no tokens at all (only token-id input can be empty: text always
    /// gets its special tokens).
    #[error("input {index}: empty sequence (no tokens)")]
    EmptySequence { index: usize },
    #[error("input {index}: {len} tokens exceeds the maximum length {max} (truncation disabled)")]
    TooLong { index: usize, len: usize, max: usize },
    #[error("input {index}: token id {id} at position {position} is outside the vocabulary (size {vocab_size})")]
    TokenId { index: usize, position: usize, id: u32, vocab_size: usize },
    #[error(
        "input {index}: token type id {type_id} at position {position} is out of range (type vocabulary size {type_vocab_size})"
    )]
    TokenTypeId { index: usize, position: usize, type_id: u32, type_vocab_size: usize },
    #[error("input {index}: {type_ids} token_type_ids for {input_ids} input_ids")]
    TypeIdsLength { index: usize, type_ids: usize, input_ids: usize },
    /// [`crate::Session::forward`] was given more than one pass holds ([`crate::Session::run`]
    /// splits such batches instead).
    #[error("batch of {sequences} sequences and {tokens} tokens exceeds the session's token budget of {budget} (use run(), which splits it)")]
    OverBudget { sequences: usize, tokens: usize, budget: usize },
    #[error("invalid option: {0}")]
    Options(String),
}

impl Error {
    /// The same error with its input index moved by `offset`: for a caller that ran its
    /// list in chunks and reports positions in the whole list. Errors about no input
    /// in particular are unchanged.
    pub fn offset_input(self, offset: usize) -> Error {
        match self {
            Error::Input { index, msg } => Error::Input { index: index + offset, msg },
            Error::EmptySequence { index } => Error::EmptySequence { index: index + offset },
            Error::TooLong { index, len, max } => Error::TooLong { index: index + offset, len, max },
            Error::TokenId { index, position, id, vocab_size } => {
                Error::TokenId { index: index + offset, position, id, vocab_size }
            }
            Error::TokenTypeId { index, position, type_id, type_vocab_size } => {
                Error::TokenTypeId { index: index + offset, position, type_id, type_vocab_size }
            }
            Error::TypeIdsLength { index, type_ids, input_ids } => {
                Error::TypeIdsLength { index: index + offset, type_ids, input_ids }
            }
            other => other,
        }
    }
}

/// A refused file image keeps its kind and message.
impl From<toprt_format::Error> for Error {
    fn from(e: toprt_format::Error) -> Error {
        match e {
            toprt_format::Error::Format(m) => Error::Format(m),
            toprt_format::Error::Version { found, supported } => Error::Version { found, supported },
            toprt_format::Error::Checksum(m) => Error::Checksum(m),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
