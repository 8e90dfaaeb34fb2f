//! The calibrator's error type.

use std::path::PathBuf;

/// Why a calibration was refused. Messages name the file, line, model or linear at fault;
/// no output file is written when any of them occurs.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {msg}")]
    Data { path: PathBuf, msg: String },
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{0}")]
    Model(#[from] toprt::Error),
    #[error("{0}")]
    Convert(#[from] toprt_convert::ConvertError),
    #[error("{0}")]
    Options(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
