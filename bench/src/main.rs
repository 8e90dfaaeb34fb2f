//! `engine-bench`: per-layer latency of a toprt model.
//!
//! With no arguments it builds (once, deterministically, cached under `target/`) a
//! BERT-base-shaped model with random weights and a ToP-style keep-rule schedule, and
//! times batch 1 × 128 tokens dense and pruned, layer by layer.

use serde_json::json;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};
use toprt::tokenize::Encoded;
use toprt::{Model, Outputs, PruneControl, Session, SessionOptions};

const USAGE: &str = "usage: engine-bench [--model FILE] [--batch N] [--seq-len N] [--threads N] [--iters N]
                    [--warmup N] [--isa scalar|avx2|avx512] [--no-prune] [--pad-to N] [--json OUT]";

struct Args {
    model: Option<PathBuf>,
    batch: usize,
    seq_len: usize,
    threads: usize,
    iters: Option<usize>,
    warmup: usize,
    isa: Option<toprt::Isa>,
    json: Option<PathBuf>,
    no_prune: bool,
    pad_to: Option<usize>,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        model: None,
        batch: 1,
        seq_len: 128,
        threads: 1,
        iters: None,
        warmup: 2,
        isa: None,
        json: None,
        no_prune: false,
        pad_to: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let mut v = || it.next().ok_or_else(|| format!("{k} needs a value"));
        let num = |s: String| s.parse::<usize>().map_err(|_| format!("{k} expects a non-negative integer, got '{s}'"));
        match k.as_str() {
            "--model" => a.model = Some(PathBuf::from(v()?)),
            "--batch" => a.batch = num(v()?)?,
            "--seq-len" => a.seq_len = num(v()?)?,
            "--threads" => a.threads = num(v()?)?,
            "--iters" => a.iters = Some(num(v()?)?),
            "--no-prune" => a.no_prune = true,
            "--pad-to" => a.pad_to = Some(num(v()?)?),
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
    if a.batch == 0 || a.seq_len == 0 || a.iters == Some(0) {
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
    let path = dir.join(format!("bert-base-random-seed1-top25-v{}.toprt", toprt::format::FORMAT_VERSION));
    if path.is_file() {
        return Ok(path);
    }
    eprint!("building the default BERT-base-shaped model (random weights, once) ... ");
    let _ = std::io::stderr().flush();
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let cfg = toprt_convert::synthetic::bert_base_config();
    let bytes = toprt_convert::synthetic::random_bert_file(&cfg, 2, 1).map_err(|e| e.to_string())?;
    // The default ToP-style schedule: bin_num 25, prune locations 2..11, ~85% of the bins
    // kept per location (non-monotone masks), about 45% token sparsity at 128 tokens.
    let rules = toprt_convert::synthetic::top_schedule(cfg.num_layers, 2, 25, 0.85, 1);
    let bytes = toprt_convert::writer::with_keep_rules(&bytes, rules).map_err(|e| e.to_string())?;
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

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn percentile(v: &[f64], p: f64) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * p).round() as usize]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Medians of one configuration (dense or pruned).
struct RunResult {
    name: &'static str,
    totals: Vec<f64>,
    attn: Vec<f64>,
    prune: Vec<f64>,
    ffn: Vec<f64>,
    stats: Vec<toprt::LayerStats>,
}

impl RunResult {
    fn median(&self) -> f64 {
        median(&self.totals)
    }
    fn macs(&self) -> f64 {
        self.stats.iter().map(|s| s.macs).sum()
    }
    fn layer_ms(&self, l: usize) -> f64 {
        self.attn[l] + self.prune[l] + self.ffn[l]
    }
}

fn measure(
    session: &mut Session,
    batch: &[Encoded],
    ctl: PruneControl,
    a: &Args,
    name: &'static str,
) -> Result<RunResult, String> {
    let want = Outputs { logits: true, embedding: true, hidden_states: false };
    let layers = session.layer_stats().len();
    for _ in 0..a.warmup {
        session.run_encoded_with(batch.to_vec(), want, ctl).map_err(|e| e.to_string())?;
        eprint!(".");
    }
    session.set_layer_timing(true);
    session.take_layer_timing();
    let (mut totals, mut attn, mut prune, mut ffn) =
        (Vec::new(), vec![Vec::new(); layers], vec![Vec::new(); layers], vec![Vec::new(); layers]);
    let started = Instant::now();
    let mut i = 0;
    // --iters N runs exactly N; by default at least 5 runs and up to 10 within ~20 s.
    while match a.iters {
        Some(n) => i < n,
        None => i < 5 || (i < 10 && started.elapsed() < Duration::from_secs(20)),
    } {
        let input = batch.to_vec();
        let t0 = Instant::now();
        session.run_encoded_with(input, want, ctl).map_err(|e| e.to_string())?;
        totals.push(ms(t0.elapsed()));
        for (l, t) in session.take_layer_timing().iter().enumerate() {
            attn[l].push(ms(t.attention));
            prune[l].push(ms(t.prune));
            ffn[l].push(ms(t.ffn));
        }
        i += 1;
        eprint!("\r{name}: {i} runs, median {:.1} ms   ", median(&totals));
    }
    eprintln!();
    session.set_layer_timing(false);
    Ok(RunResult {
        name,
        totals,
        attn: attn.iter().map(|v| median(v)).collect(),
        prune: prune.iter().map(|v| median(v)).collect(),
        ffn: ffn.iter().map(|v| median(v)).collect(),
        stats: session.layer_stats().to_vec(),
    })
}

fn run_json(r: &RunResult, batch: usize, extra: serde_json::Value) -> serde_json::Value {
    let layers: Vec<serde_json::Value> = (0..r.stats.len())
        .map(|l| {
            let s = &r.stats[l];
            let gflop = 2.0 * s.macs / 1e9;
            json!({"layer": l, "tokens": s.attention_tokens as f64 / batch as f64, "tokens_min": s.min_len,
                "tokens_max": s.max_len, "ffn_tokens": s.ffn_tokens as f64 / batch as f64, "ms": r.layer_ms(l),
                "attention_ms": r.attn[l], "prune_ms": r.prune[l], "ffn_ms": r.ffn[l], "gflop": gflop,
                "gflops": gflop / (r.layer_ms(l) / 1e3)})
        })
        .collect();
    let mut v = json!({"name": r.name, "median_ms": r.median(), "p90_ms": percentile(&r.totals, 0.9),
        "iters": r.totals.len(), "gflop": 2.0 * r.macs() / 1e9, "layers": layers});
    if let (Some(o), Some(e)) = (v.as_object_mut(), extra.as_object()) {
        o.extend(e.clone());
    }
    v
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
    let has_rules = !model.manifest().keep_rules.is_empty();
    eprintln!(
        "toprt engine-bench: {} — batch {} × {} tokens, {} thread(s), isa {}",
        path.display(),
        a.batch,
        seq_len,
        session.threads(),
        session.isa()
    );
    let dense = measure(&mut session, &batch, PruneControl::DENSE, &a, "dense")?;
    let pruned = if has_rules && !a.no_prune {
        Some(measure(&mut session, &batch, PruneControl::default(), &a, "pruned")?)
    } else {
        None
    };

    println!(
        "toprt engine-bench: {} ({:?}, {} layers, hidden {}), batch {} × {} tokens, {} thread(s), isa {}",
        path.display(),
        cfg.arch,
        cfg.num_layers,
        cfg.hidden_size,
        a.batch,
        seq_len,
        session.threads(),
        session.isa()
    );
    match &pruned {
        None => {
            println!(
                "{:>5} {:>7} {:>9} {:>9} {:>9} {:>7} {:>8}",
                "layer", "tokens", "attn ms", "ffn ms", "total ms", "GFLOP", "GFLOP/s"
            );
            for l in 0..cfg.num_layers {
                let g = 2.0 * dense.stats[l].macs / 1e9;
                println!(
                    "{l:>5} {:>7} {:>9.3} {:>9.3} {:>9.3} {g:>7.3} {:>8.1}",
                    dense.stats[l].attention_tokens / a.batch,
                    dense.attn[l],
                    dense.ffn[l],
                    dense.layer_ms(l),
                    g / (dense.layer_ms(l) / 1e3)
                );
            }
            if !has_rules {
                println!("(the model has no keep-rules: dense only)");
            }
        }
        Some(p) => {
            println!(
                "{:>5} | {:>6} {:>8} {:>7} | {:>17} {:>8} {:>8} {:>8} {:>8} {:>7} {:>7}",
                "", "dense", "", "", "pruned", "", "", "", "", "", ""
            );
            println!(
                "{:>5} | {:>6} {:>8} {:>7} | {:>17} {:>8} {:>8} {:>8} {:>8} {:>7} {:>7}",
                "layer",
                "tokens",
                "ms",
                "GFLOP/s",
                "tokens mean/min/max",
                "attn ms",
                "prune ms",
                "ffn ms",
                "total",
                "GFLOP",
                "GFLOP/s"
            );
            for l in 0..cfg.num_layers {
                let (ds, ps) = (&dense.stats[l], &p.stats[l]);
                let (dg, pg) = (2.0 * ds.macs / 1e9, 2.0 * ps.macs / 1e9);
                let tokens =
                    format!("{:.1}/{}/{}", ps.attention_tokens as f64 / a.batch as f64, ps.min_len, ps.max_len);
                println!(
                    "{l:>5} | {:>6} {:>8.3} {:>7.1} | {tokens:>17} {:>8.3} {:>8.3} {:>8.3} {:>8.3} {pg:>7.3} {:>7.1}",
                    ds.attention_tokens / a.batch,
                    dense.layer_ms(l),
                    dg / (dense.layer_ms(l) / 1e3),
                    p.attn[l],
                    p.prune[l],
                    p.ffn[l],
                    p.layer_ms(l),
                    pg / (p.layer_ms(l) / 1e3)
                );
            }
        }
    }
    let tokens = (a.batch * seq_len) as f64;
    for r in std::iter::once(&dense).chain(pruned.as_ref()) {
        println!(
            "{:>6}: median {:.2} ms, p90 {:.2} ms over {} runs; {:.1} sequences/s, {:.0} tokens/s; {:.2} GFLOP, {:.1} GFLOP/s",
            r.name,
            r.median(),
            percentile(&r.totals, 0.9),
            r.totals.len(),
            a.batch as f64 / (r.median() / 1e3),
            tokens / (r.median() / 1e3),
            2.0 * r.macs() / 1e9,
            2.0 * r.macs() / 1e9 / (r.median() / 1e3)
        );
    }
    let mut runs = vec![run_json(&dense, a.batch, json!({}))];
    if let Some(p) = &pruned {
        let speedup = dense.median() / p.median();
        let mac_red = dense.macs() / p.macs();
        let pad = a.pad_to.unwrap_or(seq_len).max(seq_len);
        let padded = a.batch as f64 * toprt::prune::encoder_macs(model.manifest(), &vec![(pad, pad); cfg.num_layers]);
        let overhead: f64 = p.prune.iter().sum::<f64>() / p.median() * 100.0;
        println!(
            "speedup pruned vs dense: {speedup:.2}x; MAC reduction {mac_red:.2}x vs unpadded input, {:.2}x vs input padded to {pad} (ToP's papers count the padded baseline); speedup / MAC reduction = {:.2}",
            padded / p.macs(),
            speedup / mac_red
        );
        println!("pruning overhead (decisions + compaction, scores are fused into attention): {overhead:.2}% of the pruned forward");
        runs.push(run_json(
            p,
            a.batch,
            json!({"mac_reduction": mac_red, "mac_reduction_padded": padded / p.macs(), "padded_to": pad,
                "speedup": speedup, "prune_overhead_pct": overhead}),
        ));
    }
    if let Some(out) = &a.json {
        let doc = json!({
            "schema": 1,
            "model": path.display().to_string(),
            "batch": a.batch, "seq_len": seq_len, "threads": session.threads(), "isa": session.isa().to_string(),
            "runs": runs,
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
