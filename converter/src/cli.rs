//! The `toprt-convert` command line:
//! `toprt-convert <checkpoint-dir> -o model.toprt [--tokenizer DIR] [--pooling P] [--force]`.
//!
//! The whole command is [`main`], a library function taking the arguments, so that the
//! binary (`src/main.rs`) and the Python package (`python -m toprt convert`) run the same
//! code in-process.

use crate::{convert, parse_dtype, parse_pooling, ConvertOptions};
use clap::{ArgAction, Parser};
use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;
use toprt_args::{count, counts};
use toprt_format::Pooling;
use toprt_format::Precision;

/// Convert a Hugging Face BERT/RoBERTa checkpoint folder into a toprt model file.
///
/// The folder holds config.json (model_type bert, which includes MiniLM, or roberta),
/// the weights (model.safetensors, a sharded model.safetensors.index.json, or
/// pytorch_model.bin, read without Python) and a tokenizer (tokenizer.json; or
/// vocab.txt + tokenizer_config.json for BERT, vocab.json + merges.txt for RoBERTa).
///
/// The head follows the checkpoint: *ForSequenceClassification gives logits; a
/// sentence-transformers folder gives its pooling (and L2 normalisation if it lists a
/// Normalize module); a bare encoder gives token states, and the pooler output if it has
/// a pooler. Checkpoint tensors the engine does not use are listed and recorded.
///
/// A pruning schedule (keep-rules) comes from at most one source: ToP's zs.pt in the
/// folder (or --zs), LTP thresholds in the weights, or a manual --keep-ratio or
/// --keep-count. A folder with l0_module.pt but no zs.pt needs --zs.
///
/// OUT is written under a temporary name beside it, synced and renamed into place, so
/// a failed or killed conversion leaves no partial file; the same input and options give
/// a byte-identical file. A summary and notes go to stderr. On an error the exit status
/// is 1 and stderr says why.
#[derive(Parser)]
#[command(name = "toprt-convert", version, verbatim_doc_comment, args_override_self = true)]
struct Cli {
    /// The Hugging Face checkpoint folder to convert.
    #[arg(value_name = "CHECKPOINT_DIR", verbatim_doc_comment)]
    dir: PathBuf,

    /// The model file to write.
    ///
    /// An existing file is refused unless --force is given.
    #[arg(short, long = "output", value_name = "OUT", verbatim_doc_comment)]
    out: PathBuf,

    /// Take the tokenizer from this folder instead of the checkpoint folder.
    ///
    /// For checkpoints without one, such as ToP's best/ folders.
    #[arg(long, value_name = "DIR", verbatim_doc_comment)]
    tokenizer: Option<PathBuf>,

    /// Write no tokenizer: the model then accepts token ids only.
    #[arg(long, verbatim_doc_comment)]
    no_tokenizer: bool,

    /// Override the pooling: mean, cls, pooler or none (default: from the checkpoint).
    ///
    /// How a sequence becomes the "embedding" output: the mean of its final token states,
    /// the final state of [CLS], BERT's pooler (tanh(dense(h[CLS]))), or no embedding.
    #[arg(long, value_name = "POOLING", value_parser = pooling, verbatim_doc_comment)]
    pooling: Option<Pooling>,

    /// Replace OUT if it exists.
    #[arg(short, long, verbatim_doc_comment)]
    force: bool,

    /// Store the encoder's linear weights as f32, bf16 or int8.
    ///
    /// The embeddings, biases, LayerNorms and the head stay f32 either way.
    /// bf16 rounds the weights to nearest even (the file is about 3/4 of the f32 one);
    /// CPUs with AMX, or AVX512_BF16 faster than their f32 FMA, run bf16 GEMMs; others
    /// widen the weights to f32 once per model.
    /// int8 quantises every linear symmetrically per output channel (about 40 % of the
    /// f32 file for BERT-base); activations are quantised per token at run time, on any
    /// x86-64 CPU. For answers closer to f32, convert to f32 and run toprt-calibrate
    /// --dtype int8 on a few hundred sentences of your text instead.
    #[arg(
        long = "dtype",
        value_name = "DTYPE",
        default_value = "f32",
        value_parser = dtype,
        action = ArgAction::Set,
        verbatim_doc_comment
    )]
    dtype: Precision,

    /// ToP masks from this file instead of zs.pt in the checkpoint folder.
    ///
    /// A torch zs.pt ({token_z: [n_prune, bin_num], pruner_z: [n_prune]}), or the same
    /// two entries as JSON: {"token_z": [[...], ...], "pruner_z": [...]}.
    #[arg(long, value_name = "FILE", verbatim_doc_comment)]
    zs: Option<PathBuf>,

    /// LTP: the padded length the thresholds were trained with (default: 128).
    ///
    /// Stored in the file as the thresholds' divisor. Only for checkpoints with LTP
    /// thresholds.
    #[arg(long, value_name = "N", value_parser = count, allow_negative_numbers = true, verbatim_doc_comment)]
    ltp_ref_len: Option<usize>,

    // `::std::vec::Vec`: a single value split by its parser; clap takes a plain `Vec` field
    // for an option that may be repeated.
    /// Manual schedule: keep this fraction of the tokens alive, in (0, 1].
    ///
    /// One value per layer (entry i is prune location i; entry 0 must be 1), or one
    /// value for every --prune-layers location. A ratio of 1 means no rule there.
    #[arg(long, value_name = "R[,R...]", value_parser = ratios, allow_negative_numbers = true, verbatim_doc_comment)]
    keep_ratio: Option<::std::vec::Vec<f32>>,

    /// Manual schedule: keep this many tokens.
    ///
    /// One value per layer, or one for every --prune-layers location, as --keep-ratio.
    /// A count of 0 means no rule there. Give --keep-ratio or --keep-count, not both.
    #[arg(long, value_name = "K[,K...]", value_parser = counts, allow_negative_numbers = true, verbatim_doc_comment)]
    keep_count: Option<::std::vec::Vec<usize>>,

    /// Prune locations for a single --keep-ratio or --keep-count value.
    ///
    /// Default: every location from 1 to the number of layers - 1. The rule at location
    /// L is decided from layer L-1's attention scores and applied before layer L-1's FFN.
    #[arg(long, value_name = "L[,L...]", value_parser = counts, allow_negative_numbers = true, verbatim_doc_comment)]
    prune_layers: Option<::std::vec::Vec<usize>>,
}

fn ratios(v: &str) -> Result<Vec<f32>, String> {
    v.split(',')
        .map(|x| x.trim().parse().map_err(|_| format!("expects comma-separated numbers, got '{x}' in '{v}'")))
        .collect()
}

fn pooling(v: &str) -> Result<Pooling, String> {
    parse_pooling(v).map_err(|e| format!("'{v}': {e}"))
}

/// The `--dtype` precision, as the library reads the name.
fn dtype(v: &str) -> Result<Precision, String> {
    parse_dtype(v).map_err(|e| format!("'{v}': {e}"))
}

fn run(cli: Cli) -> Result<(), String> {
    let (dir, out) = (cli.dir, cli.out);
    let opts = ConvertOptions {
        tokenizer_dir: cli.tokenizer,
        no_tokenizer: cli.no_tokenizer,
        pooling: cli.pooling,
        force: cli.force,
        zs: cli.zs,
        ltp_ref_len: cli.ltp_ref_len,
        keep_ratio: cli.keep_ratio,
        keep_count: cli.keep_count,
        prune_layers: cli.prune_layers,
        dtype: cli.dtype,
    };
    let r = convert(&dir, &out, &opts).map_err(|e| e.to_string())?;
    let m = &r.manifest;
    eprintln!(
        "converted {} ({:?}, {} layers, hidden {}, {:?} head, pooling {:?}) from {} weights",
        dir.display(),
        m.model.arch,
        m.model.num_layers,
        m.model.hidden_size,
        m.head.task,
        m.head.pooling,
        m.source.get("weights_format").and_then(|f| f.as_str()).unwrap_or("?"),
    );
    match &r.tokenizer_source {
        Some(s) => eprintln!("tokenizer: {s}"),
        None => eprintln!("tokenizer: none (token-id input only)"),
    }
    for n in &r.notes {
        eprintln!("note: {n}");
    }
    if !r.ignored.is_empty() {
        eprintln!("unused checkpoint tensors ({}), recorded in the manifest:", r.ignored.len());
        for n in &r.ignored {
            eprintln!("  {n}");
        }
    }
    eprintln!("wrote {} ({:.1} MB)", out.display(), r.bytes as f64 / 1e6);
    Ok(())
}

/// Runs `toprt-convert` with `args` and returns its exit status.
///
/// `args` is the whole command line as [`std::env::args_os`] gives it: the first item is
/// the program name. Output goes to stdout and stderr as the binary writes them; a
/// command-line mistake is reported on stderr as one line (exit status 1), `--help` and
/// `--version` print to stdout (exit status 0). It never exits the process.
pub fn main<I, T>(args: I) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    toprt_args::main("toprt-convert", args, run)
}
