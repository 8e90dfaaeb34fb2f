//! The `engine-bench` command line: its options, the timing loop and the run.
//!
//! The whole command is [`main`], a library function taking the arguments, so that the
//! binary (`src/main.rs`) and the Python package (`python -m toprt bench`) run the same
//! code in-process.

use crate::report::{self, Agreement, RunResult};
use crate::texts;
use clap::{ArgAction, Parser};
use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};
use toprt::tokenize::Encoded;
use toprt::{Model, Outputs, PruneControl, Session, SessionOptions};
use toprt_args::{at_least_one, count, counts};

/// Per-layer latency of a toprt model, dense and pruned.
///
/// With no options it times a built-in BERT-base-shaped model (random weights and a
/// ToP-style keep-rule schedule: bin_num 25, prune locations 2..11), built once and
/// cached under target/engine-bench/ (or $TOPRT_CACHE_DIR/engine-bench/), on batch 1 x 128 synthetic tokens. Dense and
/// pruned runs alternate round by round, so a drift in the machine's speed hits both
/// alike. --model times a converted model instead, --lengths a batch of mixed lengths,
/// and --input real texts, for which it also reports how much pruning changes the
/// answers.
///
/// The report (stdout) gives per layer the tokens alive, the attention, pruning and FFN
/// time, GFLOP, GFLOP/s and % of this machine's FMA peak (measured at start); then the
/// median and p90 latency, throughput, the speedup of pruned over dense, and the MAC
/// reduction against the unpadded input and against input padded to --pad-to.
/// Progress goes to stderr. On an error the exit status is 1 and stderr says why.
///
/// engine-bench --compare A.json B.json prints two --json results side by side instead.
#[derive(Parser)]
#[command(
    name = "engine-bench",
    version,
    verbatim_doc_comment,
    args_override_self = true,
    override_usage = "engine-bench [OPTIONS]\n       engine-bench --compare <A.json> <B.json>"
)]
pub(crate) struct Args {
    /// A converted model file, timed with its own keep-rules.
    ///
    /// Default: the built-in BERT-base-shaped model described above.
    #[arg(long, value_name = "FILE", verbatim_doc_comment)]
    model: Option<PathBuf>,

    /// Sequences per forward pass: the synthetic batch, or texts per batch with --input.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 1,
        value_parser = at_least_one,
        allow_negative_numbers = true,
        verbatim_doc_comment
    )]
    batch: usize,

    /// Tokens in each synthetic sequence (at most the model's maximum).
    #[arg(
        long,
        value_name = "N",
        default_value_t = 128,
        value_parser = at_least_one,
        allow_negative_numbers = true,
        verbatim_doc_comment
    )]
    seq_len: usize,

    // `::std::vec::Vec`: a single value split by its parser; clap takes a plain `Vec` field
    // for an option that may be repeated.
    /// A synthetic batch of mixed lengths instead of --seq-len.
    ///
    /// The lengths are cycled over --batch: --batch 4 --lengths 16,128 runs sequences of
    /// 16, 128, 16 and 128 tokens.
    #[arg(long, value_name = "N[,N...]", value_parser = lengths, allow_negative_numbers = true, verbatim_doc_comment)]
    lengths: Option<::std::vec::Vec<usize>>,

    /// Time real texts instead of synthetic tokens, and report how pruning changes them.
    ///
    /// The texts run in batches of --batch. The agreement of dense and pruned runs is
    /// reported as top-1 agreement, cosine of the outputs, and accuracy if the texts have
    /// labels. A .jsonl or .json file has one {"text": ..., "text_pair": ..., "label": ...}
    /// per line (text_pair and label optional); any other file is TSV with a header naming
    /// a text (or sentence) column and optional text_pair and label columns (GLUE's
    /// dev.tsv layout).
    #[arg(long, value_name = "FILE", verbatim_doc_comment)]
    input: Option<PathBuf>,

    /// With --input: the tokenizer folder to use instead of the model's own.
    ///
    /// A folder with tokenizer.json, or vocab.txt. The built-in model has no tokenizer,
    /// so --input needs this with it.
    #[arg(long, value_name = "DIR", verbatim_doc_comment)]
    tokenizer: Option<PathBuf>,

    /// With --input: time only the first N texts (default: all).
    #[arg(long, value_name = "N", value_parser = count, allow_negative_numbers = true, verbatim_doc_comment)]
    limit: Option<usize>,

    /// Worker threads (0 = one per logical CPU), or up to eight comma-separated counts.
    ///
    /// Several counts run alternately round by round. The report then adds a
    /// thread-scaling table and the FMA peak of all threads probing at once (it shows
    /// when threads share FMA units); the per-layer report is the last count's.
    #[arg(
        long,
        value_name = "N[,N...]",
        default_value = "1",
        value_parser = thread_counts,
        allow_negative_numbers = true,
        verbatim_doc_comment
    )]
    threads: ::std::vec::Vec<usize>,

    /// Timed rounds per configuration (default: 5 to 15, within about 12 s each).
    ///
    /// Without it: at least 5 rounds and up to 15 while the time spent stays under about
    /// 12 s per configuration; a single round when the inputs hold over 8192 tokens.
    #[arg(long, value_name = "N", value_parser = at_least_one, allow_negative_numbers = true, verbatim_doc_comment)]
    iters: Option<usize>,

    /// Untimed warm-up rounds per configuration.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 2,
        value_parser = count,
        allow_negative_numbers = true,
        verbatim_doc_comment
    )]
    warmup: usize,

    /// Force a kernel tier: scalar, portable, avx2 or avx512.
    ///
    /// Default: the TOPRT_ISA environment variable, else the best tier this CPU has.
    /// A tier this CPU lacks is an error.
    #[arg(long, value_name = "ISA", value_parser = isa, verbatim_doc_comment)]
    isa: Option<toprt::Isa>,

    /// Also write the results as JSON, for --compare.
    ///
    /// The schema is bench/engine-bench.schema.json.
    #[arg(long, value_name = "FILE", verbatim_doc_comment)]
    json: Option<PathBuf>,

    /// Also write an SVG chart of per-layer time (dense vs pruned) and tokens alive.
    #[arg(long, value_name = "FILE", verbatim_doc_comment)]
    svg: Option<PathBuf>,

    /// Time the dense model only, even if it has keep-rules.
    #[arg(long, verbatim_doc_comment)]
    no_prune: bool,

    /// Run from the model file's memory mapping instead of a copy in memory.
    ///
    /// By default a model is copied into anonymous memory at open, in transparent huge
    /// pages where Linux grants them (toprt::OpenOptions::copy_to_memory); this times the
    /// other choice. With --dtype bf16 or int8 the converted model is always in memory.
    #[arg(long, verbatim_doc_comment)]
    mmap: bool,

    /// The padded baseline of the MAC reduction (default: the longest sequence).
    ///
    /// The report compares the pruned MACs with the unpadded input and with every
    /// sequence padded to N tokens, as ToP's papers count (SST-2 pads to 64). N below the
    /// longest sequence counts as the longest.
    #[arg(long, value_name = "N", value_parser = count, allow_negative_numbers = true, verbatim_doc_comment)]
    pad_to: Option<usize>,

    /// f32 runs the model file as stored; bf16 or int8 first convert its encoder weights.
    ///
    /// bf16 rounds the encoder's linear weights to bf16 in memory (the file is unchanged)
    /// and runs them on the bf16 GEMM this CPU has: AMX tiles, AVX512_BF16, or else the
    /// f32 kernels on the weights widened back once. int8 quantises every linear as
    /// `toprt-convert --dtype int8` does (no calibration: speed, not quality) and runs
    /// them on the int8 GEMM this CPU has (AMX, AVX512-VNNI, AVX-VNNI, AVX2 or scalar).
    #[arg(
        long = "dtype",
        value_name = "DTYPE",
        default_value = "f32",
        value_parser = dtype,
        action = ArgAction::Set,
        verbatim_doc_comment
    )]
    dtype: toprt_format::Precision,

    /// Print two --json results side by side and exit; nothing runs.
    ///
    /// Per run and per layer, with the ratio B/A. The other options are ignored.
    #[arg(long, num_args = 2, value_names = ["A.json", "B.json"], verbatim_doc_comment)]
    compare: Option<Vec<PathBuf>>,
}

fn lengths(v: &str) -> Result<Vec<usize>, String> {
    let l = counts(v)?;
    match l.contains(&0) {
        true => Err(format!("must be at least 1 each, got '{v}'")),
        false => Ok(l),
    }
}

fn thread_counts(v: &str) -> Result<Vec<usize>, String> {
    let t = counts(v)?;
    match t.len() {
        1..=8 => Ok(t),
        n => Err(format!("takes one to eight thread counts, got {n}")),
    }
}

/// Through the kernels' own names for the tiers.
fn isa(v: &str) -> Result<toprt::Isa, String> {
    v.parse::<toprt::Isa>().map_err(|e| format!("'{v}': {e}"))
}

/// The `--dtype` precision, as the converter reads the name.
fn dtype(v: &str) -> Result<toprt_format::Precision, String> {
    toprt_convert::parse_dtype(v).map_err(|e| format!("'{v}': {e}"))
}

/// The cache folder: `$TOPRT_CACHE_DIR/engine-bench/` when that is set (as
/// `python -m toprt bench` does: there the running binary is Python), else
/// `<target>/engine-bench/`, next to the running binary.
fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("TOPRT_CACHE_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir).join("engine-bench");
    }
    let exe = std::env::current_exe().ok();
    let target = exe.as_deref().and_then(Path::parent).and_then(Path::parent).map(Path::to_path_buf);
    target.unwrap_or_else(|| PathBuf::from("target")).join("engine-bench")
}

/// Builds the default model once; rebuilt when the file format version changes
/// (the version is in the file name).
fn default_model() -> Result<PathBuf, String> {
    let dir = cache_dir();
    let path = dir.join(format!("bert-base-random-seed1-top25-v{}.toprt", toprt_format::FORMAT_VERSION));
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
                    acc.query_tokens += s.query_tokens;
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
                r.linear_runs[l].push(ms(t.linears));
                r.core_runs[l].push(ms(t.attention_core));
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

fn run(a: Args) -> Result<(), String> {
    if let Some([x, y]) = a.compare.as_deref() {
        return report::compare(x, y);
    }
    let path = match &a.model {
        Some(p) => p.clone(),
        None => default_model()?,
    };
    let model = match a.dtype {
        toprt_format::Precision::F32 => {
            let opts = toprt::OpenOptions { copy_to_memory: !a.mmap, ..toprt::OpenOptions::default() };
            Model::open_with(&path, &opts).map_err(|e| e.to_string())?
        }
        dtype => {
            // The same file with its encoder weights rounded to bf16, or quantised to int8
            // (every linear, as toprt-convert --dtype int8 does), in memory.
            let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            let bytes = if dtype == toprt_format::Precision::Bf16 {
                toprt_convert::writer::with_bf16_weights(&bytes)
            } else {
                let plan = |_: &str| toprt_convert::bake::LinearPlan::Int8 { outliers: Vec::new() };
                toprt_convert::writer::with_int8_weights(&bytes, &plan, serde_json::Value::Null)
            }
            .map_err(|e| e.to_string())?;
            Model::from_bytes(&bytes, &toprt::OpenOptions::default()).map_err(|e| e.to_string())?
        }
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
    eprintln!("linears: {}", sessions[0].linear_choice());
    // "% of peak" is against the peak of the instruction the linears run on: the f32
    // FMA, or vpdpbusd for int8 (GOP/s), or vdpbf16ps / AMX for native bf16.
    let (peak, peak_label) = match model.precision() {
        toprt_format::Precision::Int8 => match toprt_kernels::peak_probe_int8() {
            Some(p) => (p, "int8 vpdpbusd peak"),
            None => (toprt_kernels::peak_probe(sessions[0].isa()), "f32 FMA peak (no VNNI)"),
        },
        _ => (toprt_kernels::peak_probe(sessions[0].isa()), "f32 FMA peak"),
    };
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
        peak_label: peak_label.into(),
        bandwidth_gbs: toprt_kernels::bandwidth_probe(),
        // What the linears stream: a bf16 file widened for an f32 GEMM streams f32.
        weight_bytes: match sessions[0].linear_precision() {
            toprt_format::Precision::F32 => 4.0,
            toprt_format::Precision::Bf16 => 2.0,
            toprt_format::Precision::Int8 => 1.0,
        },
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

/// Runs `engine-bench` with `args` and returns its exit status.
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
    toprt_args::main("engine-bench", args, run)
}
