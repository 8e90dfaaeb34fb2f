//! The converter's error type.

use std::path::PathBuf;

/// Why a conversion failed. Messages name the file, tensor or setting at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: {msg}")]
    Parse { path: PathBuf, msg: String },
    #[error(
        "unsupported model_type '{0}' (toprt converts 'bert' (incl. MiniLM), 'roberta', 'xlm-roberta', 'camembert', 'distilbert', 'electra', 'mpnet', 'modernbert' and 'deberta-v2' (DeBERTa-v2 and v3) checkpoints)"
    )]
    UnsupportedModelType(String),
    #[error("config.json: {0}")]
    Config(String),
    #[error("checkpoint is missing tensor '{name}' (expected shape {expected:?})")]
    MissingTensor { name: String, expected: Vec<usize> },
    #[error("tensor '{name}' has shape {found:?}, expected {expected:?}")]
    BadShape { name: String, found: Vec<usize>, expected: Vec<usize> },
    #[error("tensor '{name}': {msg}")]
    BadTensor { name: String, msg: String },
    #[error("no weights found in {0} (looked for model.safetensors, model.safetensors.index.json, pytorch_model.bin, pytorch_model.bin.index.json)")]
    NoWeights(PathBuf),
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    #[error("output {0} exists; pass --force to overwrite it")]
    OutputExists(PathBuf),
    #[error("{0}")]
    Options(String),
    #[error("torch checkpoint {path}: {msg}")]
    Torch { path: PathBuf, msg: String },
}

pub type Result<T, E = ConvertError> = std::result::Result<T, E>;

pub(crate) fn io_err(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> ConvertError + '_ {
    move |source| ConvertError::Io { path: path.to_path_buf(), source }
}
