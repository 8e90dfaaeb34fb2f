//! `toprt-convert <checkpoint-dir> -o model.toprt [--tokenizer DIR] [--pooling P] [--force]`

use std::path::PathBuf;
use std::process::ExitCode;
use toprt_convert::{convert, parse_dtype, parse_pooling, ConvertOptions};

const USAGE: &str = "usage: toprt-convert <checkpoint-dir> -o <model.toprt> [--tokenizer DIR] [--no-tokenizer]
         [--pooling mean|cls|pooler|none] [--dtype f32|bf16] [--force]
         [--zs FILE] [--ltp-ref-len N] [--keep-ratio R[,R...]] [--keep-count K[,K...]] [--prune-layers L[,L...]]";

fn list<T: std::str::FromStr>(flag: &str, v: &str) -> Result<Vec<T>, String> {
    v.split(',').map(|x| x.trim().parse::<T>().map_err(|_| format!("{flag}: cannot parse '{x}'"))).collect()
}

fn run(args: Vec<String>) -> Result<(), String> {
    let mut dir = None;
    let mut out = None;
    let mut opts = ConvertOptions::default();
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        let mut value = |name: &str| it.next().ok_or_else(|| format!("{name} needs a value\n{USAGE}"));
        match a.as_str() {
            "-o" | "--output" => out = Some(PathBuf::from(value("-o")?)),
            "--tokenizer" => opts.tokenizer_dir = Some(PathBuf::from(value("--tokenizer")?)),
            "--no-tokenizer" => opts.no_tokenizer = true,
            "--pooling" => opts.pooling = Some(parse_pooling(&value("--pooling")?).map_err(|e| e.to_string())?),
            "--force" | "-f" => opts.force = true,
            "--dtype" => opts.dtype = parse_dtype(&value("--dtype")?).map_err(|e| e.to_string())?,
            "--zs" => opts.zs = Some(PathBuf::from(value("--zs")?)),
            "--ltp-ref-len" => {
                let v = value("--ltp-ref-len")?;
                opts.ltp_ref_len = Some(v.parse().map_err(|_| format!("--ltp-ref-len: cannot parse '{v}'"))?)
            }
            "--keep-ratio" => opts.keep_ratio = Some(list("--keep-ratio", &value("--keep-ratio")?)?),
            "--keep-count" => opts.keep_count = Some(list("--keep-count", &value("--keep-count")?)?),
            "--prune-layers" => opts.prune_layers = Some(list("--prune-layers", &value("--prune-layers")?)?),
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            s if s.starts_with('-') => return Err(format!("unknown option {s}\n{USAGE}")),
            s if dir.is_none() => dir = Some(PathBuf::from(s)),
            s => return Err(format!("unexpected argument {s}\n{USAGE}")),
        }
    }
    let dir = dir.ok_or_else(|| format!("missing checkpoint folder\n{USAGE}"))?;
    let out = out.ok_or_else(|| format!("missing -o <model.toprt>\n{USAGE}"))?;
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

fn main() -> ExitCode {
    match run(std::env::args().skip(1).collect()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("toprt-convert: error: {}", e.lines().next().unwrap_or(""));
            for l in e.lines().skip(1) {
                eprintln!("{l}");
            }
            ExitCode::FAILURE
        }
    }
}
