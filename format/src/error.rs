//! The format's error type.

/// Why a file image was refused. Messages name the field, tensor or keep-rule at fault.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    /// A structural fault: a bad header field, a manifest that does not parse or lies, a
    /// tensor entry out of bounds.
    #[error("invalid model file: {0}")]
    Format(String),
    /// A file of another format version (re-convert it).
    #[error(
        "unsupported model file version {found} (this build reads version {supported}; re-convert the checkpoint)"
    )]
    Version { found: u32, supported: u32 },
    /// A checksum that does not match: the named part is corrupt.
    #[error("checksum mismatch in {0} (the file is corrupt)")]
    Checksum(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

pub(crate) fn format_err(msg: impl Into<String>) -> Error {
    Error::Format(msg.into())
}
