//! `engine-bench`: per-layer latency of a toprt model, dense and pruned.
//!
//! With no arguments it builds (once, deterministically, cached under `target/`) a
//! BERT-base-shaped model with random weights and a ToP-style keep-rule schedule, and
//! times batch 1 × 128 tokens dense and pruned (alternating run by run), layer by layer.
//! `--input FILE` times real texts instead and reports how much pruning changes the
//! answers.

mod report;
mod texts;

use report::{Agreement, RunResult};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};
use toprt::tokenize::Encoded;
use toprt::{Model, Outputs, PruneControl, Session, SessionOptions};

const USAGE: &str =
    "usage: engine-bench [--model FILE] [--batch N] [--seq-len N | --input FILE [--tokenizer DIR] [--limit N]]
                    [--threads N[,N...]] [--iters N] [--warmup N] [--isa scalar|avx2|avx512] [--no-prune]
                    [--dtype f32|bf16]
                    [--pad-to N] [--json OUT] [--svg OUT]
       engine-bench --compare A.json B.json";

pub(crate) struct Args {
    model: Option<PathBuf>,
    batch: usize,
    seq_len: usize,
    /// Mixed lengths for a synthetic batch (`--lengths 16,128,...`, cycled over the batch).
    lengths: Option<Vec<usize>>,
    input: Option<PathBuf>,
    tokenizer: Option<PathBuf>,
    limit: Option<usize>,
    /// Thread counts; more than one runs them alternately and reports the scaling.
    threads: Vec<usize>,
    iters: Option<usize>,
    warmup: usize,
    isa: Option<toprt::Isa>,
    json: Option<PathBuf>,
    svg: Option<PathBuf>,
    no_prune: bool,
    pad_to: Option<usize>,
    compare: Option<(PathBuf, PathBuf)>,
    /// Run the model with its encoder weights rounded to bf16 (`--dtype bf16`).
    bf16: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        model: None,
        batch: 1,
        seq_len: 128,
        lengths: None,
        input: None,
        tokenizer: None,
        limit: None,
        threads: vec![1],
        iters: None,
        warmup: 2,
        isa: None,
        json: None,
        svg: None,
        no_prune: false,
        pad_to: None,
        compare: None,
        bf16: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let mut v = || it.next().ok_or_else(|| format!("{k} needs a value"));
        let num = |s: String| s.parse::<usize>().map_err(|_| format!("{k} expects a non-negative integer, got '{s}'"));
        match k.as_str() {
            "--model" => a.model = Some(PathBuf::from(v()?)),
            "--batch" => a.batch = num(v()?)?,
            "--seq-len" => a.seq_len = num(v()?)?,
            "--lengths" => {
                let s = v()?;
                a.lengths = Some(s.split(',').map(|x| num(x.trim().to_string())).collect::<Result<_, _>>()?);
            }
            "--input" => a.input = Some(PathBuf::from(v()?)),
            "--tokenizer" => a.tokenizer = Some(PathBuf::from(v()?)),
            "--limit" => a.limit = Some(num(v()?)?),
            "--threads" => {
                let s = v()?;
                a.threads = s.split(',').map(|x| num(x.trim().to_string())).collect::<Result<_, _>>()?;
            }
            "--iters" => a.iters = Some(num(v()?)?),
            "--warmup" => a.warmup = num(v()?)?,
            "--isa" => a.isa = Some(v()?.parse().map_err(|e: toprt_kernels::Error| e.to_string())?),
            "--json" => a.json = Some(PathBuf::from(v()?)),
            "--svg" => a.svg = Some(PathBuf::from(v()?)),
            "--no-prune" => a.no_prune = true,
            "--pad-to" => a.pad_to = Some(num(v()?)?),
            "--dtype" => a.bf16 = toprt_convert::parse_dtype(&v()?).map_err(|e| e.to_string())?,
            "--compare" => {
                let x = PathBuf::from(v()?);
                let y = PathBuf::from(it.next().ok_or("--compare needs two files")?);
                a.compare = Some((x, y));
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown option '{other}' (see --help)")),
        }
    }
    if a.batch == 0
        || a.seq_len == 0
        || a.iters == Some(0)
        || a.lengths.as_ref().is_some_and(|l| l.is_empty() || l.contains(&0))
    {
        return Err("--batch, --seq-len, --lengths and --iters must be at least 1".into());
    }
    if a.threads.is_empty() || a.threads.len() > 8 {
        return Err("--threads takes one to eight thread counts".into());
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
fn synthetic_batch(model: &Model, lengths: &[usize]) -> Vec<Encoded> {
    let vocab = model.manifest().model.vocab_size as u32;
    let mut rng = toprt_convert::synthetic::Rng::new(7);
    lengths
        .iter()
        .map(|&len| {
            let ids = (0..len)
                .map(|i| match i {
                    0 => 101u32.min(vocab - 1),
                    i if i + 1 == len => 102u32.min(vocab - 1),
                    _ => (rng.uniform() as f64 * vocab as f64) as u32 % vocab,
                })
                .collect::<Vec<_>>();
            Encoded { token_type_ids: vec![0; ids.len()], input_ids: ids, truncated: false }
        })
        .collect()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// One timed configuration: a session (thread count) and a pruning control.
#[derive(Clone, Copy)]
struct Cfg {
    session: usize,
    ctl: PruneControl,
    name: &'static str,
}

/// Times the configurations `cfgs` (dense and pruned, per thread count) over all
/// `batches`, interleaved: every round runs each configuration once, so on a machine
/// whose speed drifts (other tenants, turbo) every configuration sees the same drift
/// and the ratios between them stay honest.
fn measure(
    sessions: &mut [Session],
    batches: &[Vec<Encoded>],
    cfgs: &[Cfg],
    a: &Args,
) -> Result<Vec<RunResult>, String> {
    let want = Outputs { logits: true, embedding: false, hidden_states: false };
    let layers = sessions[0].layer_stats().len();
    let sequences: usize = batches.iter().map(Vec::len).sum();
    let tokens: usize = batches.iter().flatten().map(|e| e.input_ids.len()).sum();
    for _ in 0..a.warmup {
        for c in cfgs {
            for b in batches {
                sessions[c.session].forward(b, want, c.ctl).map_err(|e| e.to_string())?;
            }
        }
        eprint!(".");
    }
    for s in sessions.iter_mut() {
        s.set_layer_timing(true);
        s.take_layer_timing();
    }
    let mut runs: Vec<RunResult> =
        cfgs.iter().map(|c| RunResult::new(c.name, sessions[c.session].threads(), layers, sequences, tokens)).collect();
    let started = Instant::now();
    // --iters N runs exactly N rounds; by default at least 5 and up to 15 within ~12 s
    // per configuration (one round for long real-text inputs).
    let long = tokens > 8192;
    let budget = Duration::from_secs(12 * cfgs.len() as u64);
    while match a.iters {
        Some(n) => runs[0].totals.len() < n,
        None if long => runs[0].totals.is_empty(),
        None => runs[0].totals.len() < 5 || (runs[0].totals.len() < 15 && started.elapsed() < budget),
    } {
        for (r, c) in runs.iter_mut().zip(cfgs) {
            let session = &mut sessions[c.session];
            let t0 = Instant::now();
            let mut stats = vec![toprt::LayerStats::default(); layers];
            for b in batches {
                session.forward(b, want, c.ctl).map_err(|e| e.to_string())?;
                for (acc, s) in stats.iter_mut().zip(session.layer_stats()) {
                    acc.attention_tokens += s.attention_tokens;
                    acc.ffn_tokens += s.ffn_tokens;
                    acc.min_len = if acc.macs == 0.0 { s.min_len } else { acc.min_len.min(s.min_len) };
                    acc.max_len = acc.max_len.max(s.max_len);
                    acc.macs += s.macs;
                }
            }
            r.totals.push(ms(t0.elapsed()));
            r.stats = stats;
            for (l, t) in session.take_layer_timing().iter().enumerate() {
                r.attn_runs[l].push(ms(t.attention));
                r.prune_runs[l].push(ms(t.prune));
                r.ffn_runs[l].push(ms(t.ffn));
            }
        }
        let progress: Vec<String> = runs
            .iter()
            .map(|r| {
                let t = if a.threads.len() > 1 { format!(" ×{}", r.threads) } else { String::new() };
                format!("{}{t} median {:.1} ms", r.name, report::median(&r.totals))
            })
            .collect();
        eprint!("\r{} rounds: {}   ", runs[0].totals.len(), progress.join(", "));
    }
    eprintln!();
    for s in sessions.iter_mut() {
        s.set_layer_timing(false);
    }
    Ok(runs)
}

/// Runs every text dense and pruned (untimed) and compares the answers.
fn agreement(session: &mut Session, batches: &[Vec<Encoded>], labels: &[Option<usize>]) -> Result<Agreement, String> {
    let want = Outputs { logits: true, embedding: true, hidden_states: false };
    let mut ag = Agreement::default();
    let mut i = 0;
    for b in batches {
        let dense = session.run_encoded_with(b.clone(), want, PruneControl::DENSE).map_err(|e| e.to_string())?;
        let pruned = session.run_encoded_with(b.clone(), want, PruneControl::default()).map_err(|e| e.to_string())?;
        for (d, p) in dense.iter().zip(&pruned) {
            ag.add(d, p, labels.get(i).copied().flatten());
            i += 1;
        }
    }
    Ok(ag)
}

fn run() -> Result<(), String> {
    let a = parse_args()?;
    if let Some((x, y)) = &a.compare {
        return report::compare(x, y);
    }
    let path = match &a.model {
        Some(p) => p.clone(),
        None => default_model()?,
    };
    let model = if a.bf16 {
        // The same file with its encoder weights rounded to bf16, in memory.
        let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let bf16 = toprt_convert::writer::with_bf16_weights(&bytes).map_err(|e| e.to_string())?;
        Model::from_bytes(&bf16, &toprt::OpenOptions::default()).map_err(|e| e.to_string())?
    } else {
        Model::open(&path).map_err(|e| e.to_string())?
    };
    let max_len = model.max_length();
    // The sequences, grouped into batches.
    let (seqs, labels, source) = match &a.input {
        Some(file) => {
            let t = texts::load(file, a.limit)?;
            let enc = texts::tokenize(&model, a.tokenizer.as_deref(), &t, max_len)?;
            let labels = t.iter().map(|x| x.label).collect::<Vec<_>>();
            (enc, labels, format!("{} ({} texts)", file.display(), t.len()))
        }
        None => {
            let lengths: Vec<usize> = match &a.lengths {
                Some(l) => (0..a.batch).map(|i| l[i % l.len()].min(max_len)).collect(),
                None => vec![a.seq_len.min(max_len); a.batch],
            };
            let desc = match &a.lengths {
                Some(_) => format!("batch {} of mixed lengths {:?}", a.batch, lengths),
                None => format!("batch {} × {} tokens", a.batch, lengths[0]),
            };
            (synthetic_batch(&model, &lengths), Vec::new(), desc)
        }
    };
    let batches: Vec<Vec<Encoded>> = seqs.chunks(a.batch).map(<[Encoded]>::to_vec).collect();
    let budget = batches.iter().map(|b| b.iter().map(|e| e.input_ids.len()).sum::<usize>()).max().unwrap_or(1);
    if budget > SessionOptions::MAX_TOKENS {
        // One forward pass holds a whole batch; splitting it would time something else.
        return Err(format!(
            "a batch of {} sequences holds {budget} tokens; one forward pass takes at most {} (use a smaller --batch)",
            a.batch,
            SessionOptions::MAX_TOKENS
        ));
    }
    let mut sessions = Vec::with_capacity(a.threads.len());
    for &threads in &a.threads {
        let opts = SessionOptions { threads, isa: a.isa, max_tokens: budget.max(1), ..Default::default() };
        sessions.push(Session::new(&model, &opts).map_err(|e| e.to_string())?);
    }
    let has_rules = !model.manifest().keep_rules.is_empty();
    let counts: Vec<String> = sessions.iter().map(|s| s.threads().to_string()).collect();
    eprintln!(
        "toprt engine-bench: {} — {source}, {} thread(s){}, isa {}, {} weights on {}",
        path.display(),
        counts.join(", "),
        if counts.len() > 1 { " alternately" } else { "" },
        sessions[0].isa(),
        model.precision(),
        sessions[0].linear_kernel()
    );
    let peak = toprt_kernels::peak_probe(sessions[0].isa());
    // With several thread counts: the FMA probe alone and on all of the largest count's
    // threads at once, alternately (best of three each). Below the one-thread peak, the
    // threads share FMA units (SMT siblings, or a hypervisor placing two vCPUs on one
    // core), and no compute-bound program can scale.
    let max_threads = sessions.iter().map(Session::threads).max().unwrap_or(1);
    let peak_together = (a.threads.len() > 1).then(|| {
        let isa = sessions[0].isa();
        let (mut alone, mut together) = (0.0f64, vec![0.0f64; max_threads]);
        for _ in 0..3 {
            alone = alone.max(toprt_kernels::peak_probe(isa));
            let now: Vec<f64> = std::thread::scope(|s| {
                let hs: Vec<_> = (0..max_threads).map(|_| s.spawn(move || toprt_kernels::peak_probe(isa))).collect();
                hs.into_iter().map(|h| h.join().unwrap_or(0.0)).collect()
            });
            for (t, x) in together.iter_mut().zip(now) {
                *t = t.max(x);
            }
        }
        (alone, together)
    });
    let mut cfgs = Vec::new();
    for session in 0..sessions.len() {
        cfgs.push(Cfg { session, ctl: PruneControl::DENSE, name: "dense" });
        if has_rules && !a.no_prune {
            cfgs.push(Cfg { session, ctl: PruneControl::default(), name: "pruned" });
        }
    }
    let all = measure(&mut sessions, &batches, &cfgs, &a)?;
    // The full report is for the last thread count; the others go into the scaling table.
    let per_session = cfgs.len() / sessions.len();
    let scaling: Vec<report::Scaling> = all
        .chunks(per_session)
        .map(|c| report::Scaling {
            threads: c[0].threads,
            dense_ms: c[0].median(),
            pruned_ms: c.get(1).map(RunResult::median),
        })
        .collect();
    let mut last = all.into_iter().skip(cfgs.len() - per_session);
    let dense = last.next().ok_or("no dense run")?;
    let pruned = last.next();
    let session = sessions.last_mut().ok_or("no session")?;
    let agree = if a.input.is_some() && pruned.is_some() {
        eprintln!("agreement pass (every text dense and pruned) ...");
        Some(agreement(session, &batches, &labels)?)
    } else {
        None
    };
    let ctx = report::Context {
        model_path: path.display().to_string(),
        manifest: model.manifest().clone(),
        source,
        batch: a.batch,
        threads: session.threads(),
        isa: session.isa().to_string(),
        precision: model.precision().to_string(),
        gemm: session.linear_kernel(),
        scaling: if scaling.len() > 1 { scaling } else { Vec::new() },
        peak_together,
        peak_gflops: peak,
        pad_to: a.pad_to,
        lengths: seqs.iter().map(|e| e.input_ids.len()).collect(),
        has_rules,
    };
    report::print(&ctx, &dense, pruned.as_ref(), agree.as_ref());
    if let Some(out) = &a.json {
        report::write_json(out, &ctx, &dense, pruned.as_ref(), agree.as_ref())?;
        eprintln!("wrote {}", out.display());
    }
    if let Some(out) = &a.svg {
        report::write_svg(out, &ctx, &dense, pruned.as_ref())?;
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
