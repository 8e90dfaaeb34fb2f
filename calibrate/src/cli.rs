//! The `toprt-calibrate` command line:
//! `toprt-calibrate MODEL.toprt --data FILE -o OUT.toprt [--dtype int8] [--target-mac-reduction X]`.
//!
//! The whole command is [`main`], a library function taking the arguments, so that the
//! binary (`src/main.rs`) and the Python package (`python -m toprt calibrate`) run the
//! same code in-process.

use crate::{chart, data, int8, prune};
use clap::Parser;
use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;
use toprt_args::count;

/// Fit a converted toprt model to real text, without training.
///
/// --target-mac-reduction X (or --target-speedup X, timed on this CPU) searches keep-rules (token pruning) for a model that was
/// never trained to prune: the dense model, in the file's precision, runs the
/// calibration text and is the teacher; the search gives each prune location a top-k
/// ratio or an importance threshold (or none), pruning one location a step more at a
/// time where the fidelity to the teacher (class probabilities, embedding cosine or
/// token states) suffers least per MAC saved, until the MACs on this text fall by X. Any rules MODEL had are replaced.
///
/// --dtype int8 quantises an f32 model to int8 where the data says it is safe: the
/// model runs the calibration text in f32; each encoder linear keeps its --outliers
/// largest input channels in f32 (BERT's LayerNorm outputs carry a few channels 10-50
/// times the rest), and a linear whose output error in int8 exceeds --bound stays f32.
/// With both, the model is quantised first and the rules are searched in int8.
/// What was done is recorded in OUT (toprt inspect prints it).
///
/// The data is JSONL ({"text": ..., "text_pair": ..., "label": ...} per line) or TSV
/// with a header naming a text (or sentence) column. --limit texts are drawn from it
/// with --seed: the same inputs and options give a byte-identical OUT. OUT is written
/// under a temporary name beside it and renamed into place; nothing is written on an
/// error. Progress goes to stderr.
#[derive(Parser)]
#[command(name = "toprt-calibrate", version, verbatim_doc_comment)]
struct Cli {
    /// The model to calibrate (.toprt, f32 weights for --dtype int8).
    #[arg(value_name = "MODEL")]
    model: PathBuf,

    /// Calibration text: JSONL or TSV (see above). Its texts are never evaluated here.
    #[arg(long, value_name = "FILE")]
    data: PathBuf,

    /// The calibrated model file to write.
    #[arg(short = 'o', long = "output", value_name = "OUT")]
    out: PathBuf,

    /// Replace OUT if it exists.
    #[arg(short = 'f', long)]
    force: bool,

    /// Quantise to int8 with the precision guard (the only precision it calibrates).
    #[arg(long, value_name = "DTYPE", value_parser = dtype)]
    dtype: Option<toprt_format::Precision>,

    /// Texts drawn from the data (all of them if it has fewer; at least 16).
    #[arg(long, value_name = "N", default_value_t = 512, value_parser = count, allow_negative_numbers = true)]
    limit: usize,

    /// Seed of the draw and of the row sample: the same seed gives the same file.
    #[arg(long, value_name = "N", default_value_t = 0, value_parser = seed, allow_negative_numbers = true)]
    seed: u64,

    /// Input channels per linear kept in f32 (at most an eighth of the inputs; 0: none).
    #[arg(
        long,
        value_name = "N",
        default_value_t = int8::Int8Options::default().outliers,
        value_parser = count,
        allow_negative_numbers = true
    )]
    outliers: usize,

    /// Largest relative output error of a linear in int8 (‖Y_int8 − Y‖ / ‖Y‖ on the
    /// calibration rows); linears above it stay f32.
    #[arg(
        long,
        value_name = "X",
        default_value_t = int8::Int8Options::default().bound,
        value_parser = bound,
        allow_negative_numbers = true,
        verbatim_doc_comment
    )]
    bound: f64,

    /// Search keep-rules until the MACs on the calibration text fall by this factor (> 1,
    /// e.g. 2.0; dense MACs / pruned MACs, unpadded).
    #[arg(long, value_name = "X", value_parser = reduction, allow_negative_numbers = true)]
    target_mac_reduction: Option<f64>,

    /// Search keep-rules until the calibration text runs this many times faster than
    /// dense on this CPU (> 1; measured at --batch, dense and pruned alternating).
    #[arg(long, value_name = "X", value_parser = reduction, allow_negative_numbers = true, conflicts_with = "target_mac_reduction")]
    target_speedup: Option<f64>,

    /// Classifiers: also score the keep-rule search on the labelled calibration texts
    /// (the accuracy lost against dense joins the objective).
    #[arg(long)]
    labels: bool,

    /// Sequences per pass of the keep-rule search (packed, no padding).
    #[arg(long, value_name = "N", default_value_t = prune::SearchOptions::default().batch, value_parser = count, allow_negative_numbers = true)]
    batch: usize,

    /// Worker threads (0 = one per logical CPU).
    #[arg(long, value_name = "N", default_value_t = 0, value_parser = count, allow_negative_numbers = true)]
    threads: usize,

    /// Also write what was found into this folder: int8.json (per linear), and for the
    /// keep-rule search keep_rules.json (the front searched, uniform top-k, the schedule
    /// chosen) and keep_rules.svg (the two fronts as a chart).
    #[arg(long, value_name = "DIR")]
    report: Option<PathBuf>,
}

/// Fewest texts a calibration accepts: fewer rows could not show a linear's range.
const MIN_TEXTS: usize = 16;

fn seed(v: &str) -> Result<u64, String> {
    v.parse().map_err(|_| format!("expects a non-negative integer, got '{v}'"))
}

fn bound(v: &str) -> Result<f64, String> {
    match v.parse::<f64>() {
        Ok(x) if x.is_finite() && x > 0.0 => Ok(x),
        _ => Err(format!("expects a positive number (a relative error, e.g. 0.02), got '{v}'")),
    }
}

fn reduction(v: &str) -> Result<f64, String> {
    match v.parse::<f64>() {
        Ok(x) if x.is_finite() && x > 1.0 => Ok(x),
        _ => Err(format!("expects a factor above 1 (e.g. 1.5 or 2.0), got '{v}'")),
    }
}

fn dtype(v: &str) -> Result<toprt_format::Precision, String> {
    match v.parse::<toprt_format::Precision>() {
        Ok(toprt_format::Precision::Int8) => Ok(toprt_format::Precision::Int8),
        Ok(p) => {
            Err(format!("'{v}': calibration quantises to int8 only ({p} needs no data: use toprt-convert --dtype {p})"))
        }
        Err(e) => Err(format!("'{v}': {e}")),
    }
}

/// `limit` texts drawn from `all` with `seed` (a seeded shuffle's first `limit`), in
/// file order; all of them if there are fewer.
fn draw(mut all: Vec<data::Text>, limit: usize, seed: u64) -> Vec<data::Text> {
    if all.len() <= limit {
        return all;
    }
    let mut idx: Vec<usize> = (0..all.len()).collect();
    let mut s = seed ^ 0x5eed_5eed_5eed_5eed;
    for i in (1..idx.len()).rev() {
        s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        idx.swap(i, ((s >> 33) % (i as u64 + 1)) as usize);
    }
    let mut pick = idx[..limit].to_vec();
    pick.sort_unstable();
    let mut keep = vec![false; all.len()];
    pick.iter().for_each(|&i| keep[i] = true);
    let mut i = 0;
    all.retain(|_| {
        i += 1;
        keep[i - 1]
    });
    all
}

fn run(cli: Cli) -> Result<(), String> {
    let target = match (cli.target_mac_reduction, cli.target_speedup) {
        (Some(x), _) => Some(prune::Target::MacReduction(x)),
        (None, Some(x)) => Some(prune::Target::Speedup(x)),
        (None, None) => None,
    };
    if cli.dtype.is_none() && target.is_none() {
        return Err(
            "nothing to calibrate: give --dtype int8, --target-mac-reduction X (or --target-speedup X), or both".into(),
        );
    }
    if cli.out.exists() && !cli.force {
        return Err(format!("{} exists (pass --force to replace it)", cli.out.display()));
    }
    if cli.batch == 0 {
        return Err("--batch must be at least 1".into());
    }
    let mut image = std::fs::read(&cli.model).map_err(|e| format!("{}: {e}", cli.model.display()))?;
    let all = data::load(&cli.data, None).map_err(|e| e.to_string())?;
    let texts = draw(all, cli.limit, cli.seed);
    if texts.len() < MIN_TEXTS {
        return Err(format!(
            "{}: {} texts; calibration needs at least {MIN_TEXTS} (a few hundred is better)",
            cli.data.display(),
            texts.len()
        ));
    }
    let model_error = |e: crate::Error| match e {
        // What is wrong with the model: name its file.
        crate::Error::Model(_) | crate::Error::Options(_) => {
            format!("{}: {e}", cli.model.display())
        }
        _ => e.to_string(),
    };
    if let Some(dir) = &cli.report {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let facts = serde_json::json!({ "file": cli.data.file_name().map(|f| f.to_string_lossy().into_owned()) });
    if cli.dtype.is_some() {
        let opts = int8::Int8Options {
            outliers: cli.outliers,
            bound: cli.bound,
            seed: cli.seed,
            threads: cli.threads,
            ..Default::default()
        };
        let outcome =
            int8::quantize(&image, &texts, facts.clone(), &opts, &mut |line| eprintln!("toprt-calibrate: {line}"))
                .map_err(model_error)?;
        eprintln!("{:<44} {:>10} {:>9}", "linear", "error", "runs in");
        for l in &outcome.linears {
            eprintln!("{:<44} {:>10.5} {:>9}", l.linear, l.error, if l.f32 { "f32" } else { "int8" });
        }
        if outcome.linears.iter().all(|l| l.f32) {
            eprintln!(
                "toprt-calibrate: warning: every linear's int8 error exceeds --bound {}: OUT holds no int8 linear \
                 and runs as f32 (raise --bound, or add --outliers)",
                cli.bound
            );
        }
        if let Some(dir) = &cli.report {
            let rows: Vec<_> = outcome
                .linears
                .iter()
                .map(
                    |l| serde_json::json!({"linear": l.linear, "error": l.error, "outliers": l.outliers, "f32": l.f32}),
                )
                .collect();
            write_report(&dir.join("int8.json"), &serde_json::json!({"linears": rows}))?;
        }
        image = outcome.image;
    }
    if let Some(target) = target {
        let opts = prune::SearchOptions {
            target,
            batch: cli.batch,
            threads: cli.threads,
            labels: cli.labels,
            ..Default::default()
        };
        let outcome = prune::search(&image, &texts, facts, &opts, &mut |line| eprintln!("toprt-calibrate: {line}"))
            .map_err(model_error)?;
        let c = &outcome.chosen;
        eprintln!(
            "toprt-calibrate: keep-rules: MAC reduction {:.3}x{} on the calibration text (target: {}), {} {:.5}",
            c.mac_reduction,
            outcome.record["speedup"].as_f64().map(|s| format!(", measured speedup {s:.3}x")).unwrap_or_default(),
            match target {
                prune::Target::MacReduction(x) => format!("MAC reduction {x}x"),
                prune::Target::Speedup(x) => format!("speedup {x}x"),
            },
            outcome.record["objective"].as_str().unwrap_or(outcome.objective.name()),
            c.loss
        );
        for (i, r) in c.schedule.iter().enumerate() {
            eprintln!("  location {:>2} (from layer {}'s attention): {}", i + 1, i, r.describe());
        }
        if let Some(dir) = &cli.report {
            let report = serde_json::json!({
                "objective": outcome.record["objective"],
                "record": outcome.record,
                "chosen": c.to_json(),
                "front": outcome.front.iter().map(prune::Point::to_json).collect::<Vec<_>>(),
                "uniform_top_k": outcome.uniform.iter().map(prune::Point::to_json).collect::<Vec<_>>(),
            });
            write_report(&dir.join("keep_rules.json"), &report)?;
            let svg = dir.join("keep_rules.svg");
            std::fs::write(&svg, chart::svg(&outcome)).map_err(|e| format!("{}: {e}", svg.display()))?;
        }
        image = outcome.image;
    }
    toprt_convert::writer::write_atomic(&cli.out, &image, cli.force).map_err(|e| e.to_string())?;
    eprintln!("toprt-calibrate: wrote {} ({:.1} MB)", cli.out.display(), image.len() as f64 / 1e6);
    Ok(())
}

fn write_report(path: &std::path::Path, value: &serde_json::Value) -> Result<(), String> {
    let text = serde_json::to_string_pretty(value).map_err(|e| e.to_string())?;
    std::fs::write(path, text + "\n").map_err(|e| format!("{}: {e}", path.display()))
}

/// Runs `toprt-calibrate` with `args` and returns its exit status.
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
    toprt_args::main("toprt-calibrate", args, run)
}
