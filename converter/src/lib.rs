//! toprt-convert: turns a Hugging Face BERT/RoBERTa checkpoint folder into a `.toprt`
//! model file (see `docs/FORMAT.md`).
//!
//! Steps: read `config.json` → load tensors (safetensors, sharded safetensors, or
//! `pytorch_model.bin` read in pure Rust) → choose the head → bake (fused QKV, scale
//! folded into Q, packed panels) → embed the tokenizer → write atomically.
//!
//! [`cli::main`] is the `toprt-convert` command itself, taking its arguments.

pub mod bake;
pub mod checkpoint;
pub mod cli;
pub mod config;
mod deberta;
pub mod error;
mod modernbert;
pub mod schedule;
pub mod synthetic;
pub mod tokenizer;
pub mod writer;

pub use error::{ConvertError, Result};

use std::path::{Path, PathBuf};
use toprt_format::{Manifest, Pooling, Precision, TokenizerSpec, FORMAT_VERSION};

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
    /// ToP masks from this file instead of `zs.pt` in the checkpoint folder.
    pub zs: Option<PathBuf>,
    /// LTP: the padded length the thresholds were trained with (default 128).
    pub ltp_ref_len: Option<usize>,
    /// Manual schedule: keep ratio per layer (or one value for `prune_layers`).
    pub keep_ratio: Option<Vec<f32>>,
    /// Manual schedule: keep count per layer (or one value for `prune_layers`).
    pub keep_count: Option<Vec<usize>>,
    /// Locations for a single `keep_ratio` / `keep_count` value.
    pub prune_layers: Option<Vec<usize>>,
    /// Precision of the encoder's linear weights (`--dtype`); default `f32`.
    pub dtype: Precision,
}

/// Parses a `--dtype` value.
///
/// # Errors
/// An unknown name.
pub fn parse_dtype(s: &str) -> Result<Precision> {
    s.parse().map_err(|e: toprt_format::UnknownPrecision| ConvertError::Options(e.to_string()))
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
    /// Where the keep-rules came from, and other remarks for the user.
    pub notes: Vec<String>,
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
    let mut baked = bake::bake(&loaded.tensors, &cfg.model, &head, &cfg.raw)?;
    let mut notes = Vec::new();
    let mut quantization = None;
    if opts.dtype == Precision::Int8 {
        bake::to_int8(&mut baked.tensors, &|_| bake::LinearPlan::Int8 { outliers: Vec::new() })?;
        quantization = Some(toprt_format::Quantization {
            scheme: bake::INT8_SCHEME.into(),
            f32_linears: Vec::new(),
            calibration: serde_json::Value::Null,
        });
        notes.push(
            "every encoder linear weight stored as int8 (symmetric per output channel); the rest stays f32. \
             toprt-calibrate --dtype int8 keeps the linears that int8 would hurt in f32, measured on your text"
                .into(),
        );
    }
    if opts.dtype == Precision::Bf16 {
        bake::to_bf16(&mut baked.tensors);
        notes.push("encoder linear weights stored as bf16 (rounded to nearest even); the rest stays f32".into());
    }
    let keep_rules = choose_schedule(dir, opts, &cfg, &loaded.tensors, &mut baked.ignored, &mut notes)?;
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
        keep_rules,
        ignored_tensors: baked.ignored.clone(),
        source: serde_json::json!({
            "architectures": cfg.architectures,
            "weights_format": loaded.format,
            "sentence_transformers": st.is_some(),
        }),
        quantization,
        keep_rule_calibration: None,
        tensors: Vec::new(),
    };
    let bytes = writer::to_bytes(manifest, &baked.tensors)?;
    let manifest = writer::decode(&bytes, false)
        .map(|i| i.manifest)
        .map_err(|e| ConvertError::Options(format!("internal: written file does not validate: {e}")))?;
    let report = Report {
        manifest,
        ignored: baked.ignored,
        weight_files: loaded.files,
        tokenizer_source: tok.map(|t| t.source),
        bytes: bytes.len(),
        notes,
    };
    Ok((bytes, report))
}

/// Picks the keep-rules: at most one source among a manual schedule, ToP's `zs.pt`
/// (in the folder or `--zs`), and LTP thresholds in the state dict.
fn choose_schedule(
    dir: &Path,
    opts: &ConvertOptions,
    cfg: &config::HfConfig,
    tensors: &[checkpoint::Tensor],
    ignored: &mut Vec<String>,
    notes: &mut Vec<String>,
) -> Result<Vec<toprt_format::LayerKeepRule>> {
    let n = cfg.model.num_layers;
    let manual = opts.keep_ratio.is_some() || opts.keep_count.is_some() || opts.prune_layers.is_some();
    if opts.keep_ratio.is_some() && opts.keep_count.is_some() {
        return Err(ConvertError::Options("give --keep-ratio or --keep-count, not both".into()));
    }
    let zs = opts.zs.clone().or_else(|| Some(dir.join("zs.pt")).filter(|p| p.is_file()));
    let ltp = schedule::from_ltp(tensors, &cfg.raw, n, opts.ltp_ref_len.unwrap_or(128))?;
    if dir.join("l0_module.pt").is_file() {
        notes.push("ignored l0_module.pt (a pickled Python object, never read); ToP masks come from zs.pt".into());
        if zs.is_none() && !manual {
            return Err(ConvertError::Options(format!(
                "{} has l0_module.pt but no zs.pt: pass --zs FILE (toprt never unpickles l0_module.pt)",
                dir.display()
            )));
        }
    }
    let sources = [manual, zs.is_some(), ltp.is_some()].iter().filter(|&&b| b).count();
    if sources > 1 {
        return Err(ConvertError::Options(
            "more than one pruning schedule given (manual --keep-*, zs.pt, LTP thresholds); keep one".into(),
        ));
    }
    if opts.ltp_ref_len.is_some() && ltp.is_none() {
        return Err(ConvertError::Options("--ltp-ref-len given but the checkpoint has no LTP thresholds".into()));
    }
    if manual {
        let rules =
            schedule::manual(opts.keep_ratio.as_deref(), opts.keep_count.as_deref(), opts.prune_layers.as_deref(), n)?;
        notes.push(format!("manual top-k schedule at layers {:?}", rules.iter().map(|r| r.layer).collect::<Vec<_>>()));
        return Ok(rules);
    }
    if let Some(zs) = zs {
        let rules = schedule::from_zs(&zs, n)?;
        notes.push(format!(
            "ToP rank-bin schedule from {} at layers {:?}",
            zs.display(),
            rules.iter().map(|r| r.layer).collect::<Vec<_>>()
        ));
        return Ok(rules);
    }
    if let Some((rules, used)) = ltp {
        ignored.retain(|n| !used.contains(n));
        notes.push(format!(
            "LTP threshold schedule (L_ref = {}) at layers {:?}",
            opts.ltp_ref_len.unwrap_or(128),
            rules.iter().map(|r| r.layer).collect::<Vec<_>>()
        ));
        return Ok(rules);
    }
    Ok(Vec::new())
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
