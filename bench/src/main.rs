//! `engine-bench`: per-layer latency of a toprt model.
//!
//! With no arguments it builds (once, deterministically, cached under `target/`) a
//! BERT-base-shaped model with random weights and times batch 1 × 128 tokens.

use serde_json::json;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};
use toprt::tokenize::Encoded;
use toprt::{Model, Outputs, Session, SessionOptions};

const USAGE: &str = "usage: engine-bench [--model FILE] [--batch N] [--seq-len N] [--threads N] [--iters N]
                    [--warmup N] [--isa scalar|avx2|avx512] [--json OUT]";

struct Args {
    model: Option<PathBuf>,
    batch: usize,
    seq_len: usize,
    threads: usize,
    iters: usize,
    warmup: usize,
    isa: Option<toprt::Isa>,
    json: Option<PathBuf>,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args { model: None, batch: 1, seq_len: 128, threads: 1, iters: 10, warmup: 2, isa: None, json: None };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let mut v = || it.next().ok_or_else(|| format!("{k} needs a value"));
        let num = |s: String| s.parse::<usize>().map_err(|_| format!("{k} expects a non-negative integer, got '{s}'"));
        match k.as_str() {
            "--model" => a.model = Some(PathBuf::from(v()?)),
            "--batch" => a.batch = num(v()?)?,
            "--seq-len" => a.seq_len = num(v()?)?,
            "--threads" => a.threads = num(v()?)?,
            "--iters" => a.iters = num(v()?)?,
            "--warmup" => a.warmup = num(v()?)?,
            "--isa" => a.isa = Some(v()?.parse().map_err(|e: toprt_kernels::IsaError| e.to_string())?),
            "--json" => a.json = Some(PathBuf::from(v()?)),
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown option '{other}' (see --help)")),
        }
    }
    if a.batch == 0 || a.seq_len == 0 || a.iters == 0 {
        return Err("--batch, --seq-len and --iters must be at least 1".into());
    }
    Ok(a)
}

/// The cache folder: `<target>/engine-bench/`, next to the running binary.
fn cache_dir() -> PathBuf {
    let exe = std::env::current_exe().ok();
    let target = exe.as_deref().and_then(Path::parent).and_then(Path::parent).map(Path::to_path_buf);
    target.unwrap_or_else(|| PathBuf::from("target")).join("engine-bench")
}

/// Builds the default model once; rebuilt when the file format version changes
/// (the version is in the file name).
fn default_model() -> Result<PathBuf, String> {
    let dir = cache_dir();
    let path = dir.join(format!("bert-base-random-seed1-v{}.toprt", toprt::format::FORMAT_VERSION));
    if path.is_file() {
        return Ok(path);
    }
    eprint!("building the default BERT-base-shaped model (random weights, once) ... ");
    let _ = std::io::stderr().flush();
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let cfg = toprt_convert::synthetic::bert_base_config();
    let bytes = toprt_convert::synthetic::random_bert_file(&cfg, 2, 1).map_err(|e| e.to_string())?;
    toprt_convert::writer::write_atomic(&path, &bytes, true).map_err(|e| e.to_string())?;
    eprintln!("done ({})", path.display());
    Ok(path)
}

/// Deterministic token ids: [CLS] random… [SEP] for BERT-style vocabularies.
fn make_batch(model: &Model, batch: usize, len: usize) -> Vec<Encoded> {
    let vocab = model.manifest().model.vocab_size as u64;
    let mut rng = toprt_convert::synthetic::Rng::new(7);
    (0..batch)
        .map(|_| {
            let ids = (0..len)
                .map(|i| match i {
                    0 => 101u32.min(vocab as u32 - 1),
                    i if i + 1 == len => 102u32.min(vocab as u32 - 1),
                    _ => (rng.uniform() as f64 * vocab as f64) as u32 % vocab as u32,
                })
                .collect::<Vec<_>>();
            Encoded { token_type_ids: vec![0; ids.len()], input_ids: ids, truncated: false }
        })
        .collect()
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn percentile(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * p).round() as usize]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn run() -> Result<(), String> {
    let a = parse_args()?;
    let path = match &a.model {
        Some(p) => p.clone(),
        None => default_model()?,
    };
    let model = Model::open(&path).map_err(|e| e.to_string())?;
    let cfg = model.manifest().model.clone();
    let seq_len = a.seq_len.min(model.max_length());
    let opts =
        SessionOptions { threads: a.threads, isa: a.isa, max_tokens: (a.batch * seq_len).max(1), ..Default::default() };
    let mut session = Session::new(&model, &opts).map_err(|e| e.to_string())?;
    let batch = make_batch(&model, a.batch, seq_len);
    let want = Outputs { logits: true, embedding: true, hidden_states: false };
    let n_layers = cfg.num_layers;

    eprint!("warming up ({} runs) ", a.warmup);
    for _ in 0..a.warmup {
        session.run_encoded(batch.clone(), want).map_err(|e| e.to_string())?;
        eprint!(".");
    }
    eprintln!();
    session.set_layer_timing(true);
    session.take_layer_timing();
    let mut totals = Vec::with_capacity(a.iters);
    let mut attn: Vec<Vec<f64>> = vec![Vec::new(); n_layers];
    let mut ffn: Vec<Vec<f64>> = vec![Vec::new(); n_layers];
    for i in 0..a.iters {
        let input = batch.clone();
        let t0 = Instant::now();
        session.run_encoded(input, want).map_err(|e| e.to_string())?;
        totals.push(ms(t0.elapsed()));
        for (l, t) in session.take_layer_timing().iter().enumerate() {
            attn[l].push(ms(t.attention));
            ffn[l].push(ms(t.ffn));
        }
        eprint!("\rmeasuring {}/{}", i + 1, a.iters);
    }
    eprintln!();

    let (d, ff, h) = (cfg.hidden_size as f64, cfg.intermediate_size as f64, cfg.num_heads as f64);
    let tokens = (a.batch * seq_len) as f64;
    let n = seq_len as f64;
    // MACs per layer (PRUNING.md): 4·n·d² + 2·n²·d + H·n² (attention) + 2·n·d·d_ff (FFN), per sequence.
    let layer_gflop = 2.0 * a.batch as f64 * (4.0 * n * d * d + 2.0 * n * n * d + h * n * n + 2.0 * n * d * ff) / 1e9;
    let (med, p90) = (median(&mut totals.clone()), percentile(&mut totals.clone(), 0.9));
    println!(
        "toprt engine-bench: {} ({:?}, {} layers, hidden {}), batch {} × {} tokens, {} thread(s), isa {}",
        path.display(),
        cfg.arch,
        n_layers,
        cfg.hidden_size,
        a.batch,
        seq_len,
        session.threads(),
        session.isa()
    );
    println!(
        "{:>5} {:>7} {:>9} {:>9} {:>9} {:>7} {:>8}",
        "layer", "tokens", "attn ms", "ffn ms", "total ms", "GFLOP", "GFLOP/s"
    );
    let mut layers_json = Vec::new();
    for l in 0..n_layers {
        let (am, fm) = (median(&mut attn[l]), median(&mut ffn[l]));
        let total = am + fm;
        println!(
            "{l:>5} {:>7} {am:>9.3} {fm:>9.3} {total:>9.3} {layer_gflop:>7.3} {:>8.1}",
            tokens,
            layer_gflop / (total / 1e3)
        );
        layers_json.push(json!({"layer": l, "tokens": tokens, "ms": total, "attention_ms": am, "ffn_ms": fm,
            "gflop": layer_gflop, "gflops": layer_gflop / (total / 1e3)}));
    }
    let total_gflop = layer_gflop * n_layers as f64;
    println!(
        "latency: median {med:.2} ms, p90 {p90:.2} ms over {} runs; throughput {:.1} sequences/s, {:.0} tokens/s; {:.1} GFLOP/s overall",
        a.iters,
        a.batch as f64 / (med / 1e3),
        tokens / (med / 1e3),
        total_gflop / (med / 1e3)
    );
    if let Some(out) = &a.json {
        let doc = json!({
            "schema": 1,
            "model": path.display().to_string(),
            "batch": a.batch, "seq_len": seq_len, "threads": session.threads(), "isa": session.isa().to_string(),
            "runs": [{"name": "dense", "median_ms": med, "p90_ms": p90, "iters": a.iters, "layers": layers_json}],
        });
        let text = serde_json::to_string_pretty(&doc).map_err(|e| e.to_string())?;
        std::fs::write(out, text).map_err(|e| format!("{}: {e}", out.display()))?;
        eprintln!("wrote {}", out.display());
    }
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("engine-bench: error: {e}");
            ExitCode::FAILURE
        }
    }
}
