//! `toprt._toprt`: the native half of the `toprt` Python package, over the Rust crates
//! (not over the C ABI). The Python half (`python/toprt/`) re-exports these classes and
//! adds the error classes, `toprt.ray` and `python -m toprt`.
//!
//! Every call that runs the engine, the converter or a command releases the GIL, so
//! Python threads with a session each run in parallel. Every error is raised as a
//! `toprt.Error` subclass carrying the Rust message; nothing here panics on user input.

mod errors;
mod inputs;
mod model;
mod outputs;

use pyo3::prelude::*;
use std::path::PathBuf;

/// Converts a Hugging Face checkpoint folder into a `.toprt` file (the converter of
/// `toprt-convert`, with the same options). Returns a dict with what the conversion did.
#[pyfunction]
#[pyo3(signature = (checkpoint_dir, out, *, dtype="f32", tokenizer=None, no_tokenizer=false, pooling=None,
    force=false, zs=None, ltp_ref_len=None, keep_ratio=None, keep_count=None, prune_layers=None))]
#[allow(clippy::too_many_arguments)]
fn convert<'py>(
    py: Python<'py>,
    checkpoint_dir: PathBuf,
    out: PathBuf,
    dtype: &str,
    tokenizer: Option<PathBuf>,
    no_tokenizer: bool,
    pooling: Option<&str>,
    force: bool,
    zs: Option<PathBuf>,
    ltp_ref_len: Option<usize>,
    keep_ratio: Option<inputs::OneOrMany<f32>>,
    keep_count: Option<inputs::OneOrMany<usize>>,
    prune_layers: Option<inputs::OneOrMany<usize>>,
) -> PyResult<Bound<'py, PyAny>> {
    let opts = toprt_convert::ConvertOptions {
        tokenizer_dir: tokenizer,
        no_tokenizer,
        pooling: pooling.map(toprt_convert::parse_pooling).transpose().map_err(errors::convert)?,
        force,
        zs,
        ltp_ref_len,
        keep_ratio: keep_ratio.map(|v| v.0),
        keep_count: keep_count.map(|v| v.0),
        prune_layers: prune_layers.map(|v| v.0),
        dtype: toprt_convert::parse_dtype(dtype).map_err(errors::convert)?,
    };
    let report = py.detach(|| toprt_convert::convert(&checkpoint_dir, &out, &opts)).map_err(errors::convert)?;
    let summary = serde_json::json!({
        "out": out.to_string_lossy(),
        "bytes": report.bytes,
        "ignored_tensors": report.ignored,
        "weight_files": report.weight_files.iter().map(|p| p.to_string_lossy()).collect::<Vec<_>>(),
        "tokenizer_source": report.tokenizer_source,
        "notes": report.notes,
    });
    outputs::json_to_py(py, &summary)
}

/// Runs one of the toprt commands in this process, by the same code as its binary:
/// `convert` (toprt-convert), `run` / `inspect` (toprt), `calibrate` (toprt-calibrate),
/// `bench` (engine-bench). `args` are the command's arguments; returns its exit status.
/// Output goes to the process's stdout / stderr (file descriptors 1 and 2).
#[pyfunction]
fn _command(py: Python<'_>, name: &str, args: Vec<String>) -> PyResult<u8> {
    let argv = |program: &str, sub: Option<&str>| {
        let mut v = vec![program.to_string()];
        v.extend(sub.map(str::to_string));
        v.extend(args.iter().cloned());
        v
    };
    let code = match name {
        "convert" => {
            let a = argv("toprt-convert", None);
            py.detach(|| toprt_convert::cli::main(a))
        }
        "run" | "inspect" => {
            let a = argv("toprt", Some(name));
            py.detach(|| toprt_cli::main(a))
        }
        "calibrate" => {
            let a = argv("toprt-calibrate", None);
            py.detach(|| toprt_calibrate::cli::main(a))
        }
        "bench" => {
            let a = argv("engine-bench", None);
            py.detach(|| toprt_bench::cli::main(a))
        }
        other => return Err(errors::input(format!("unknown command '{other}'"))),
    };
    // ExitCode keeps its value private; the commands exit with small codes.
    Ok((0..=u8::MAX).find(|&c| std::process::ExitCode::from(c) == code).unwrap_or(1))
}

#[pymodule]
fn _toprt(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_class::<model::Model>()?;
    m.add_class::<model::Session>()?;
    m.add_class::<outputs::RunResult>()?;
    m.add_function(wrap_pyfunction!(convert, m)?)?;
    m.add_function(wrap_pyfunction!(_command, m)?)?;
    Ok(())
}
