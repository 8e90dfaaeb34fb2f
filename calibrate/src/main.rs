//! `toprt-calibrate MODEL.toprt --data FILE -o OUT.toprt --dtype int8`

use clap::Parser;
use std::path::PathBuf;
use std::process::ExitCode;
use toprt_calibrate::{data, int8};

/// Fit a converted toprt model to real text, without training.
///
/// --dtype int8 quantises an f32 model to int8 where the data says it is safe: the
/// model runs the calibration text in f32; each encoder linear keeps its --outliers
/// largest input channels in f32 (BERT's LayerNorm outputs carry a few channels 10-50
/// times the rest), and a linear whose output error in int8 exceeds --bound stays f32.
/// The choice is recorded in OUT (toprt inspect prints it).
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

    /// Worker threads (0 = one per logical CPU).
    #[arg(long, value_name = "N", default_value_t = 0, value_parser = count, allow_negative_numbers = true)]
    threads: usize,

    /// Also write the per-linear findings as JSON into this folder (int8.json).
    #[arg(long, value_name = "DIR")]
    report: Option<PathBuf>,
}

/// Fewest texts a calibration accepts: fewer rows could not show a linear's range.
const MIN_TEXTS: usize = 16;

fn count(v: &str) -> Result<usize, String> {
    v.parse().map_err(|_| format!("expects a non-negative integer, got '{v}'"))
}

fn seed(v: &str) -> Result<u64, String> {
    v.parse().map_err(|_| format!("expects a non-negative integer, got '{v}'"))
}

fn bound(v: &str) -> Result<f64, String> {
    match v.parse::<f64>() {
        Ok(x) if x.is_finite() && x > 0.0 => Ok(x),
        _ => Err(format!("expects a positive number (a relative error, e.g. 0.02), got '{v}'")),
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
    let Some(_) = cli.dtype else {
        return Err("nothing to calibrate: give --dtype int8".into());
    };
    if cli.out.exists() && !cli.force {
        return Err(format!("{} exists (pass --force to replace it)", cli.out.display()));
    }
    let image = std::fs::read(&cli.model).map_err(|e| format!("{}: {e}", cli.model.display()))?;
    let all = data::load(&cli.data, None).map_err(|e| e.to_string())?;
    let texts = draw(all, cli.limit, cli.seed);
    if texts.len() < MIN_TEXTS {
        return Err(format!(
            "{}: {} texts; calibration needs at least {MIN_TEXTS} (a few hundred is better)",
            cli.data.display(),
            texts.len()
        ));
    }
    let opts = int8::Int8Options {
        outliers: cli.outliers,
        bound: cli.bound,
        seed: cli.seed,
        threads: cli.threads,
        ..Default::default()
    };
    let facts = serde_json::json!({ "file": cli.data.file_name().map(|f| f.to_string_lossy().into_owned()) });
    let outcome = int8::quantize(&image, &texts, facts, &opts, &mut |line| eprintln!("toprt-calibrate: {line}"))
        .map_err(|e| match e {
            // What is wrong with the model: name its file.
            toprt_calibrate::Error::Model(_) | toprt_calibrate::Error::Options(_) => {
                format!("{}: {e}", cli.model.display())
            }
            _ => e.to_string(),
        })?;
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
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let rows: Vec<_> = outcome
            .linears
            .iter()
            .map(|l| serde_json::json!({"linear": l.linear, "error": l.error, "outliers": l.outliers, "f32": l.f32}))
            .collect();
        let path = dir.join("int8.json");
        let text = serde_json::to_string_pretty(&serde_json::json!({"linears": rows})).map_err(|e| e.to_string())?;
        std::fs::write(&path, text + "\n").map_err(|e| format!("{}: {e}", path.display()))?;
    }
    toprt_convert::writer::write_atomic(&cli.out, &outcome.image, cli.force).map_err(|e| e.to_string())?;
    eprintln!("toprt-calibrate: wrote {} ({:.1} MB)", cli.out.display(), outcome.image.len() as f64 / 1e6);
    Ok(())
}

fn main() -> ExitCode {
    match Cli::try_parse() {
        Ok(cli) => match run(cli) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("toprt-calibrate: error: {e}");
                ExitCode::FAILURE
            }
        },
        Err(e) if !e.use_stderr() => {
            print!("{e}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            let msg = e.to_string();
            eprintln!("toprt-calibrate: error: {}", msg.lines().next().unwrap_or("").trim_start_matches("error: "));
            ExitCode::FAILURE
        }
    }
}
