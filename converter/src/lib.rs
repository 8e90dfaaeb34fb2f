//! toprt-convert: turns a Hugging Face BERT/RoBERTa checkpoint folder into a `.toprt`
//! model file (see `docs/FORMAT.md`).
//!
//! Steps: read `config.json` → load tensors (safetensors, sharded safetensors, or
//! `pytorch_model.bin` read in pure Rust) → choose the head → bake (fused QKV, scale
//! folded into Q, packed panels) → embed the tokenizer → write atomically.

pub mod bake;
pub mod checkpoint;
pub mod config;
pub mod error;
pub mod safetensors;
pub mod synthetic;
pub mod tokenizer;
pub mod torch;
pub mod writer;

pub use error::{ConvertError, Result};

use std::path::{Path, PathBuf};
use toprt::format::{Manifest, Pooling, TokenizerSpec, FORMAT_VERSION};

/// What to convert and how.
#[derive(Clone, Debug, Default)]
pub struct ConvertOptions {
    /// Take the tokenizer from this folder instead of the checkpoint folder.
    pub tokenizer_dir: Option<PathBuf>,
    /// Write a file without a tokenizer (token-id input only).
    pub no_tokenizer: bool,
    /// Override the pooling method.
    pub pooling: Option<Pooling>,
    /// Replace an existing output file.
    pub force: bool,
}

/// What a conversion did.
#[derive(Clone, Debug)]
pub struct Report {
    pub manifest: Manifest,
    /// Checkpoint tensors not used by the engine (also recorded in the manifest).
    pub ignored: Vec<String>,
    pub weight_files: Vec<PathBuf>,
    pub tokenizer_source: Option<String>,
    pub bytes: usize,
}

/// Parses a `--pooling` value.
///
/// # Errors
/// An unknown name.
pub fn parse_pooling(s: &str) -> Result<Pooling> {
    match s {
        "mean" => Ok(Pooling::Mean),
        "cls" => Ok(Pooling::Cls),
        "pooler" => Ok(Pooling::Pooler),
        "none" => Ok(Pooling::None),
        other => Err(ConvertError::Options(format!("unknown pooling '{other}' (expected mean, cls, pooler or none)"))),
    }
}

/// Converts the checkpoint in `dir` into a complete file image (not yet written).
///
/// # Errors
/// Any [`ConvertError`], naming the file, tensor or setting at fault.
pub fn convert_to_bytes(dir: &Path, opts: &ConvertOptions) -> Result<(Vec<u8>, Report)> {
    let cfg = config::read_config(dir)?;
    let st = config::read_sentence_transformer(dir)?;
    let loaded = checkpoint::load(dir)?;
    let found = bake::head_tensors(&loaded.tensors, cfg.model.arch);
    let head = config::choose_head(&cfg, st.as_ref(), opts.pooling, found);
    let baked = bake::bake(&loaded.tensors, &cfg.model, &head)?;
    let tok = if opts.no_tokenizer {
        None
    } else {
        Some(tokenizer::find(opts.tokenizer_dir.as_deref().unwrap_or(dir), cfg.model.arch)?)
    };
    let max_len = cfg.model.max_len();
    let tokenizer_spec = tok.as_ref().map(|t| TokenizerSpec {
        json: t.json.clone(),
        max_length: t.model_max_length.map_or(max_len, |m| m.min(max_len)),
    });
    let manifest = Manifest {
        format_version: FORMAT_VERSION,
        producer: format!("toprt-convert {}", env!("CARGO_PKG_VERSION")),
        model: cfg.model.clone(),
        head,
        tokenizer: tokenizer_spec,
        keep_rules: Vec::new(),
        ignored_tensors: baked.ignored.clone(),
        source: serde_json::json!({
            "architectures": cfg.architectures,
            "weights_format": loaded.format,
            "sentence_transformers": st.is_some(),
        }),
        tensors: Vec::new(),
    };
    let bytes = writer::to_bytes(manifest, &baked.tensors)?;
    let (_, manifest) = toprt::format::validate(&bytes, false)
        .map_err(|e| ConvertError::Options(format!("internal: written file does not validate: {e}")))?;
    let report = Report {
        manifest,
        ignored: baked.ignored,
        weight_files: loaded.files,
        tokenizer_source: tok.map(|t| t.source),
        bytes: bytes.len(),
    };
    Ok((bytes, report))
}

/// Converts `dir` and writes `out` atomically.
///
/// # Errors
/// See [`convert_to_bytes`]; [`ConvertError::OutputExists`] without `force`.
pub fn convert(dir: &Path, out: &Path, opts: &ConvertOptions) -> Result<Report> {
    if out.exists() && !opts.force {
        return Err(ConvertError::OutputExists(out.to_path_buf()));
    }
    let (bytes, report) = convert_to_bytes(dir, opts)?;
    writer::write_atomic(out, &bytes, opts.force)?;
    Ok(report)
}
