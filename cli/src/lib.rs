//! The `toprt` command line: `toprt run` (JSONL in, JSONL out) and `toprt inspect`.
//!
//! The whole command is [`main`], a library function taking the arguments, so that the
//! `toprt` binary (`src/main.rs`) and the Python package (`python -m toprt run|inspect`)
//! run the same code in-process: same output, same help, same exit codes.

use clap::{Args, Parser, Subcommand};
use serde_json::{json, Map, Value};
use std::ffi::OsString;
use std::io::{BufRead, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use toprt::cli_input::{Line, LineReader};
use toprt::format::Task;
use toprt::{Input, Isa, Model, Outputs, PruneControl, Session, SessionOptions};
use toprt_args::{at_least_one, count, counts};

/// CPU inference for BERT-family encoders that makes token pruning real.
///
/// `toprt run` runs a model on JSONL input, one JSON result per line; `toprt inspect`
/// prints what a model file holds. Model files come from `toprt-convert`.
///
/// On any error the exit status is 1 and stderr gets one line with the reason.
/// `toprt <COMMAND> --help` describes each command and its options.
#[derive(Parser)]
#[command(name = "toprt", version, verbatim_doc_comment)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    #[command(args_override_self = true)]
    Run(RunArgs),
    #[command(args_override_self = true)]
    Inspect(InspectArgs),
}

/// Run a model on JSONL input and write one JSON result per line.
///
/// Each non-blank input line is one JSON object, one of:
///   {"text": "a sentence"}
///   {"text": "a question", "text_pair": "a passage"}
///   {"input_ids": [101, 7592, 102], "token_type_ids": [0, 0, 0]}
/// Text needs a model with an embedded tokenizer. Token ids include the special tokens;
/// "token_type_ids" may be left out (all 0). Blank lines are skipped, and an empty input
/// gives an empty output.
///
/// Each output line, in input order, holds "input_ids" and "token_type_ids" as run,
/// "logits" (classifier heads; a token classifier, ELECTRA's discriminator, gives one
/// row per token) and/or "embedding" (models with pooling), and with the
/// options below "last_hidden_state" and "kept".
///
/// On any error (a bad line, an input too long with --no-truncate, an unreadable file)
/// the exit status is 1, stderr gets one line with the reason and the input line number,
/// and no output file is left behind. Warnings (a truncated input) also go to stderr.
#[derive(Args)]
#[command(verbatim_doc_comment)]
struct RunArgs {
    /// The model file (.toprt, written by toprt-convert).
    #[arg(short, long, value_name = "FILE", verbatim_doc_comment)]
    model: PathBuf,

    /// The JSONL input file; `-` reads stdin.
    #[arg(short, long, value_name = "FILE", verbatim_doc_comment)]
    input: String,

    /// Where the JSONL results go; `-` writes stdout.
    ///
    /// A file is written under a temporary name beside it and renamed into place when
    /// every line has run, so an error never leaves a partial output.
    #[arg(short, long, value_name = "FILE", default_value = "-", verbatim_doc_comment)]
    output: String,

    /// Input lines per batch (at least 1).
    ///
    /// A batch of more than 2048 tokens runs as several forward passes of whole lines.
    /// The results do not depend on the batch size.
    #[arg(
        long = "batch-size",
        value_name = "N",
        default_value_t = 32,
        value_parser = at_least_one,
        allow_negative_numbers = true,
        verbatim_doc_comment
    )]
    batch: usize,

    /// Worker threads; 0 = one per logical CPU.
    ///
    /// The calling thread is one of them; at most 1024.
    #[arg(
        long,
        value_name = "N",
        default_value_t = SessionOptions::default().threads,
        value_parser = count,
        allow_negative_numbers = true,
        verbatim_doc_comment
    )]
    threads: usize,

    /// Longest input in tokens, special tokens included (default: the model's maximum).
    ///
    /// At most the model's maximum. A longer input is cut to N tokens, with a warning on
    /// stderr: text by the tokenizer, which keeps the special tokens (longest first for
    /// pairs), token ids by keeping the first N. With --no-truncate it is an error.
    #[arg(long, value_name = "N", value_parser = count, allow_negative_numbers = true, verbatim_doc_comment)]
    max_length: Option<usize>,

    /// Refuse an input longer than --max-length instead of cutting it.
    #[arg(long, verbatim_doc_comment)]
    no_truncate: bool,

    /// Add "last_hidden_state" to each output line.
    ///
    /// One row of hidden-size floats per token ([len][hidden]), as the encoder ends.
    #[arg(long = "hidden-states", verbatim_doc_comment)]
    hidden: bool,

    /// Add "kept" to each output line: the tokens each prune location kept.
    ///
    /// {"<layer>": [positions]}: original token positions, ascending, [CLS] = 0. A
    /// location whose gate is off still appears. Empty for a model without keep-rules
    /// and with --no-prune.
    #[arg(long, verbatim_doc_comment)]
    kept: bool,

    /// Run dense: ignore the model's keep-rules.
    ///
    /// The output is bit-identical to that of the same model without keep-rules.
    #[arg(long, verbatim_doc_comment)]
    no_prune: bool,

    /// The pruning dial: above 1 keeps more tokens, below 1 fewer.
    ///
    /// 1 runs the keep-rules as trained; X must be a positive finite number.
    /// ToP rank bins: the kept count is scaled, then filled up or trimmed in rank order;
    /// LTP thresholds: theta / X; top-k rules: k * X.
    #[arg(
        long,
        value_name = "X",
        default_value_t = PruneControl::default().keep_scale,
        value_parser = number,
        allow_negative_numbers = true,
        verbatim_doc_comment
    )]
    keep_scale: f32,

    /// Force a kernel tier: scalar, portable, avx2 or avx512.
    ///
    /// Default: the TOPRT_ISA environment variable, else the best tier this CPU has.
    /// A tier this CPU lacks is an error.
    #[arg(long, value_name = "ISA", value_parser = isa, verbatim_doc_comment)]
    isa: Option<Isa>,

    /// Say on stderr how the model runs, and how far the run has got.
    ///
    /// At the start: the model's precision, the kernel tier, the threads, the pruning,
    /// and which GEMM kernel the linear layers run on and why (e.g. bf16 weights widened
    /// to f32 where this CPU's bf16 products are slower). Every few seconds: the lines
    /// done. At the end: lines, batches, seconds.
    #[arg(short, long, verbatim_doc_comment)]
    verbose: bool,
}

impl RunArgs {
    fn session_options(&self) -> SessionOptions {
        let mut opts = SessionOptions {
            threads: self.threads,
            max_length: self.max_length,
            truncate: !self.no_truncate,
            isa: self.isa,
            ..SessionOptions::default()
        };
        opts.prune.enabled = !self.no_prune;
        opts.prune.keep_scale = self.keep_scale;
        opts
    }
}

/// Print what a model file holds, after verifying every tensor's checksum.
///
/// The summary gives the architecture, the weights' precision, the head and pooling,
/// the tokenizer, the pruning schedule (keep-rules) with its expected MAC reduction at
/// several input lengths, and the tensors. `toprt inspect --cpu` describes this CPU
/// instead.
#[derive(Args)]
#[command(verbatim_doc_comment)]
struct InspectArgs {
    /// The model file (.toprt).
    #[arg(value_name = "MODEL", required_unless_present = "cpu", verbatim_doc_comment)]
    path: Option<String>,

    /// Describe this CPU instead of a model: features, caches, kernel tiers.
    ///
    /// Its instruction-set features, whether the OS grants AMX, its caches and the
    /// kernel tiers toprt can run on it. The last line is `tiers: scalar avx2 avx512` (the tiers this CPU supports);
    /// scripts/test.sh reads it to know which tiers to test.
    #[arg(long, conflicts_with_all = ["path", "json", "lengths", "pad_to"], verbatim_doc_comment)]
    cpu: bool,

    /// Print the manifest as JSON instead of the summary.
    ///
    /// The embedded tokenizer.json is shown as its size.
    #[arg(long, verbatim_doc_comment)]
    json: bool,

    // `::std::vec::Vec`: a single value split by its parser; clap takes a plain `Vec` field
    // for an option that may be repeated.
    /// Input lengths in tokens for the expected-MAC table, comma-separated.
    ///
    /// Default: 16,32,64,128,256,512, up to the model's maximum. The table is printed for
    /// models with keep-rules: per length, the encoder's dense and pruned GMACs, the MAC
    /// reduction against that unpadded input and against input padded to --pad-to, and
    /// the tokens alive per layer. Threshold (LTP) rules depend on the data and show no
    /// numbers; measure those with engine-bench --input.
    #[arg(long, value_name = "N[,N...]", value_parser = counts, allow_negative_numbers = true, verbatim_doc_comment)]
    lengths: Option<::std::vec::Vec<usize>>,

    /// The padded baseline of the MAC table (default: 128, or the model's maximum if less).
    ///
    /// The "vs padded" column compares the pruned MACs with every input padded to N
    /// tokens (never below its own length), as ToP's papers count: SST-2 pads to 64.
    /// "vs unpadded" compares with the input as it is.
    #[arg(long, value_name = "N", value_parser = count, allow_negative_numbers = true, verbatim_doc_comment)]
    pad_to: Option<usize>,
}

fn number(v: &str) -> Result<f32, String> {
    v.parse().map_err(|_| format!("expects a number, got '{v}'"))
}

/// Through the kernels' own names for the tiers.
fn isa(v: &str) -> Result<Isa, String> {
    v.parse::<Isa>().map_err(|e| format!("'{v}': {e}"))
}

fn open_input(path: &str) -> Result<Box<dyn BufRead>, String> {
    if path == "-" {
        Ok(Box::new(std::io::BufReader::new(std::io::stdin())))
    } else {
        let f = std::fs::File::open(path).map_err(|e| format!("{path}: {e}"))?;
        Ok(Box::new(std::io::BufReader::new(f)))
    }
}

fn cmd_run(a: RunArgs) -> Result<(), String> {
    let model = Model::open(&a.model).map_err(|e| e.to_string())?;
    let mut session = Session::new(&model, &a.session_options()).map_err(|e| e.to_string())?;
    let want = Outputs { logits: true, embedding: true, hidden_states: a.hidden };
    // A token classifier's logits are one row per token.
    let head = &model.manifest().head;
    let token_labels = (head.task == Task::TokenClassification).then_some(head.num_labels);
    if a.verbose {
        let p = session.prune_control();
        let pruning = match (model.manifest().keep_rules.len(), p.enabled) {
            (0, _) => "none (no keep-rules)".to_string(),
            (n, false) => format!("off (--no-prune; {n} keep-rules in the file)"),
            (n, true) => format!("{n} keep-rules, keep scale {}", p.keep_scale),
        };
        eprintln!(
            "toprt run: {} ({} weights), tier {}, {} thread(s), pruning {pruning}",
            a.model.display(),
            model.precision(),
            session.isa(),
            session.threads()
        );
        eprintln!("toprt run: linears run as {}; {}", session.linear_kernel(), session.linear_choice());
    }
    let started = std::time::Instant::now();
    let mut last_progress = started;
    let (mut lines_done, mut batches) = (0usize, 0usize);
    let reader = open_input(&a.input)?;
    // Write to a temporary file and rename at the end, so an error never leaves a
    // half-written output behind.
    let (tmp, mut out): (Option<PathBuf>, Box<dyn Write>) = if a.output == "-" {
        (None, Box::new(BufWriter::new(std::io::stdout().lock())))
    } else {
        let p = Path::new(&a.output);
        let tmp = p.with_file_name(format!(
            ".{}.tmp-{}",
            p.file_name().map(|f| f.to_string_lossy()).unwrap_or_default(),
            std::process::id()
        ));
        let f = std::fs::File::create(&tmp).map_err(|e| format!("{}: {e}", tmp.display()))?;
        (Some(tmp), Box::new(BufWriter::new(f)))
    };
    let result = (|| {
        let mut pending: Vec<(usize, Line)> = Vec::with_capacity(a.batch);
        let mut lines = LineReader::new(reader, &a.input);
        loop {
            let next = lines.next().transpose()?;
            let done = next.is_none();
            if let Some(item) = next {
                pending.push(item);
            }
            if pending.len() == a.batch || (done && !pending.is_empty()) {
                run_batch(&mut session, &pending, want, a.kept, token_labels, &mut out)?;
                lines_done += pending.len();
                batches += 1;
                pending.clear();
                if a.verbose && last_progress.elapsed().as_secs_f64() >= 5.0 {
                    last_progress = std::time::Instant::now();
                    eprintln!("toprt run: {lines_done} lines ({:.0} s)", started.elapsed().as_secs_f64());
                }
            }
            if done {
                break;
            }
        }
        out.flush().map_err(|e| format!("writing output: {e}"))?;
        if a.verbose {
            let secs = started.elapsed().as_secs_f64();
            eprintln!(
                "toprt run: {lines_done} lines in {batches} batch(es), {secs:.2} s ({:.1} lines/s)",
                lines_done as f64 / secs.max(1e-9)
            );
        }
        Ok(())
    })();
    drop(out);
    match (result, tmp) {
        (Ok(()), Some(tmp)) => std::fs::rename(&tmp, &a.output).map_err(|e| format!("{}: {e}", a.output)),
        (Err(e), Some(tmp)) => {
            let _ = std::fs::remove_file(tmp);
            Err(e)
        }
        (r, None) => r,
    }
}

fn run_batch(
    session: &mut Session,
    pending: &[(usize, Line)],
    want: Outputs,
    with_kept: bool,
    token_labels: Option<usize>,
    out: &mut dyn Write,
) -> Result<(), String> {
    let inputs: Vec<Input> = pending.iter().map(|(_, l)| l.as_input()).collect();
    let mut encoded = Vec::with_capacity(inputs.len());
    for (k, inp) in inputs.iter().enumerate() {
        let line = pending[k].0;
        let e = session.prepare(k, inp).map_err(|e| format!("line {line}: {}", strip_index(&e.to_string())))?;
        if e.truncated {
            eprintln!("toprt: warning: line {line}: input truncated to {} tokens", session.max_length());
        }
        encoded.push(e);
    }
    let results = session.run_encoded(encoded, want).map_err(|e| e.to_string())?;
    for r in results {
        let mut o = Map::new();
        o.insert("input_ids".into(), json!(r.input_ids));
        o.insert("token_type_ids".into(), json!(r.token_type_ids));
        if let Some(l) = r.logits {
            let l = match token_labels {
                Some(n) => Value::Array(l.chunks(n.max(1)).map(|row| json!(row)).collect()),
                None => json!(l),
            };
            o.insert("logits".into(), l);
        }
        if let Some(e) = r.embedding {
            o.insert("embedding".into(), json!(e));
        }
        if let Some(h) = r.last_hidden_state {
            let d = session_hidden(&h, r.input_ids.len());
            o.insert("last_hidden_state".into(), Value::Array(h.chunks(d).map(|row| json!(row)).collect()));
        }
        if with_kept {
            let kept: Map<String, Value> = r.kept.iter().map(|(l, idx)| (l.to_string(), json!(idx))).collect();
            o.insert("kept".into(), Value::Object(kept));
        }
        serde_json::to_writer(&mut *out, &Value::Object(o)).map_err(|e| format!("writing output: {e}"))?;
        out.write_all(b"\n").map_err(|e| format!("writing output: {e}"))?;
    }
    Ok(())
}

fn session_hidden(h: &[f32], len: usize) -> usize {
    (h.len() / len.max(1)).max(1)
}

/// `input 3: msg` → `msg` (the CLI reports line numbers instead).
fn strip_index(s: &str) -> String {
    match s.split_once(": ") {
        Some((head, rest)) if head.starts_with("input ") => rest.to_string(),
        _ => s.to_string(),
    }
}

fn cmd_inspect(a: InspectArgs) -> Result<(), String> {
    let InspectArgs { path, cpu, json: as_json, lengths, pad_to } = a;
    if cpu {
        println!("{}", toprt_kernels::Cpu::detected());
        return Ok(());
    }
    let path = path.ok_or("missing MODEL")?;
    let model = Model::open(&path).map_err(|e| e.to_string())?;
    let m = model.manifest();
    if as_json {
        let mut v = serde_json::to_value(m).map_err(|e| e.to_string())?;
        if let Some(t) = v.get_mut("tokenizer").and_then(|t| t.as_object_mut()) {
            let n = t.get("json").and_then(|j| j.as_str()).map_or(0, str::len);
            t.insert("json".into(), json!(format!("<{n} bytes>")));
        }
        println!("{}", serde_json::to_string_pretty(&v).map_err(|e| e.to_string())?);
        return Ok(());
    }
    let c = &m.model;
    let bytes: u64 = m.tensors.iter().map(|t| t.length).sum();
    println!("file:        {path}");
    println!("format:      version {} ({})", m.format_version, m.producer);
    // The checkpoint's own class, as the converter recorded it (an XLM-RoBERTa runs as a
    // RoBERTa, and says which it is).
    let named = m.source.get("architectures").and_then(|a| a.get(0)).and_then(|a| a.as_str()).unwrap_or("");
    println!(
        "model:       {:?}{}, {} layers, hidden {}, {} heads, FFN {}, vocab {}{}",
        c.arch,
        if named.is_empty() { String::new() } else { format!(" ({named})") },
        c.num_layers,
        c.hidden_size,
        c.num_heads,
        c.intermediate_size,
        c.vocab_size,
        c.embedding_size.map(|e| format!(", embeddings {e} projected to {}", c.hidden_size)).unwrap_or_default()
    );
    println!(
        "weights:     {} encoder linear weights{}",
        model.precision(),
        match model.precision() {
            toprt::Precision::F32 => String::new(),
            toprt::Precision::Bf16 => " (bf16 GEMMs on AMX / AVX512_BF16; other CPUs widen them to f32 once)".into(),
            toprt::Precision::Int8 => {
                let q = m.quantization.as_ref();
                let kept = q.map_or(0, |q| q.f32_linears.len());
                let how = match q.map(|q| &q.calibration) {
                    Some(c) if !c.is_null() => "chosen by toprt-calibrate",
                    _ => "toprt-convert --dtype int8, no calibration",
                };
                format!(" ({kept} of {} linears kept in f32; {how})", 4 * c.num_layers)
            }
        }
    );
    if let Some(q) = &m.quantization {
        println!("int8:        {}", q.scheme);
        if let Some(line) = calibration_summary(&q.calibration) {
            println!("calibration: {line}");
        }
        for l in &q.f32_linears {
            println!("             f32: {l}");
        }
    }
    match Session::new(&model, &SessionOptions { threads: 1, max_tokens: 1, ..Default::default() }) {
        Ok(s) => println!("runs as:     {} (this CPU, tier {})", s.linear_choice(), s.isa()),
        Err(e) => println!("runs as:     cannot run on this CPU: {e}"),
    }
    println!(
        "positions:   {} (max sequence {} tokens), type vocab {}, LN eps {:e}",
        c.max_position_embeddings,
        model.max_length(),
        c.type_vocab_size,
        c.layer_norm_eps
    );
    if let Some(r) = c.rotary {
        let window = c.local_attention.as_ref().map_or(String::new(), |l| {
            format!("; sliding window {} (|i - j| <= {}) on layers {:?}", l.window, l.window / 2, l.layers)
        });
        println!("rotary:      theta {} global, {} local{window}", r.theta, r.local_theta);
    }
    if let Some(r) = c.disentangled {
        let terms = [(r.c2p, "c2p"), (r.p2c, "p2c")].iter().filter(|t| t.0).map(|t| t.1).collect::<Vec<_>>();
        let buckets = r.buckets.map_or("distances as they are".into(), |b| {
            format!("{b} buckets, log-spaced past distance {} up to {}", b / 2, r.max_relative_positions)
        });
        println!(
            "relative:    disentangled attention ({}), span {}, {buckets}{}",
            terms.join(" + "),
            r.span,
            if r.position_table { "; absolute position table too" } else { "; no absolute position table" }
        );
    }
    if c.norm_first || c.gated_ffn {
        let parts = [(c.norm_first, "pre-norm layers"), (c.gated_ffn, "gated GELU FFN")];
        println!("layers:      {}", parts.iter().filter(|p| p.0).map(|p| p.1).collect::<Vec<_>>().join(", "));
    }
    let h = &m.head;
    println!(
        "head:        {:?}, pooling {:?}{}{}",
        h.task,
        h.pooling,
        if h.normalize { " + L2 normalize" } else { "" },
        h.classifier
            .map(|k| format!(", {k:?} classifier, {} labels {:?}", h.num_labels, h.id2label))
            .unwrap_or_default()
    );
    match &m.tokenizer {
        Some(t) => {
            println!("tokenizer:   embedded ({} bytes of tokenizer.json), max length {}", t.json.len(), t.max_length)
        }
        None => println!("tokenizer:   none (token-id input only)"),
    }
    if m.keep_rules.is_empty() {
        println!("keep-rules:  none (dense)");
    } else {
        println!("keep-rules:  (location L: decided from layer L-1's attention, applied before its FFN)");
        for r in &m.keep_rules {
            println!("  layer {:>2}: {}", r.layer, describe_rule(&r.rule));
        }
        if let Some(line) = m.keep_rule_calibration.as_ref().and_then(keep_rule_calibration_summary) {
            println!("calibrated:  {line}");
        }
        print_mac_table(m, &lengths, pad_to, model.max_length());
    }
    println!("tensors:     {} ({:.1} MB, checksums verified)", m.tensors.len(), bytes as f64 / 1e6);
    if !m.ignored_tensors.is_empty() {
        println!("unused:      {} checkpoint tensors: {}", m.ignored_tensors.len(), m.ignored_tensors.join(", "));
    }
    Ok(())
}

fn describe_rule(r: &toprt::format::KeepRule) -> String {
    use toprt::format::KeepRule;
    match r {
        KeepRule::None => "none".into(),
        KeepRule::TopBins { token_z, gate } => {
            let mask: String = token_z.iter().map(|&z| if z != 0.0 { '1' } else { '0' }).collect();
            let kept = token_z.iter().filter(|&&z| z != 0.0).count();
            format!(
                "ToP rank-bins, bin_num {}, {kept} bins kept {mask}{}",
                token_z.len(),
                if *gate { "" } else { " (gate off: no pruning)" }
            )
        }
        KeepRule::Threshold { theta, l_ref } => format!("LTP threshold θ = {theta:.6}, L_ref = {l_ref}"),
        KeepRule::TopK { count: Some(c), .. } => format!("top-k: keep {c} tokens"),
        KeepRule::TopK { ratio: Some(r), .. } => format!("top-k: keep {:.1}% of alive tokens", r * 100.0),
        KeepRule::TopK { .. } => "top-k".into(),
    }
}

/// Expected MAC reduction of the schedule at some input lengths.
fn print_mac_table(m: &toprt::format::Manifest, lengths: &Option<Vec<usize>>, pad_to: Option<usize>, max_len: usize) {
    use toprt::prune::{encoder_macs, schedule_lengths};
    let default: Vec<usize> = [16, 32, 64, 128, 256, 512].into_iter().filter(|&n| n <= max_len).collect();
    let lengths = lengths.clone().unwrap_or(default);
    let pad = pad_to.unwrap_or(max_len.min(128));
    println!("expected MACs (FLOPs model of docs/PRUNING.md; vs unpadded input, and vs input padded to {pad}):");
    // The head's default outputs read only the first token: toprt's runs, dense and
    // pruned, give the last layer's FFN that token alone; the padded peer computes all.
    let first = toprt::Outputs::default().first_token_only(m);
    if first {
        println!("  (the head reads only the first token: the last layer's FFN runs on it alone)");
    }
    println!(
        "  {:>6}  {:>9}  {:>9}  {:>12}  {:>12}  tokens per layer",
        "tokens", "GMAC", "pruned", "vs unpadded", "vs padded"
    );
    for n in lengths {
        let Some(pruned) = schedule_lengths(m, n, first) else {
            println!("  {n:>6}  data-dependent (threshold rules): measure with engine-bench --input");
            continue;
        };
        let mut dense = vec![(n, n); m.model.num_layers];
        if let (true, Some(last)) = (first, dense.last_mut()) {
            last.1 = n.min(1);
        }
        let dense = encoder_macs(m, &dense);
        let padded = encoder_macs(m, &vec![(pad.max(n), pad.max(n)); m.model.num_layers]);
        let p = encoder_macs(m, &pruned);
        let per_layer: Vec<String> = pruned.iter().map(|(a, _)| a.to_string()).collect();
        println!(
            "  {n:>6}  {:>9.3}  {:>9.3}  {:>11.2}x  {:>11.2}x  {}",
            dense / 1e9,
            p / 1e9,
            dense / p,
            padded / p,
            per_layer.join(",")
        );
    }
}

/// Runs the `toprt` command with `args` and returns its exit status.
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
    toprt_args::main("toprt", args, |cli: Cli| {
        let r = match cli.command {
            Command::Run(a) => cmd_run(a),
            Command::Inspect(a) => cmd_inspect(a),
        };
        // One line: the reason (usage text is shown by --help).
        r.map_err(|e| e.lines().next().unwrap_or("failed").to_string())
    })
}

/// One line on how `toprt-calibrate` searched the keep-rules (the manifest's
/// `keep_rule_calibration`): the texts and their fingerprint, the target, and the MAC
/// reduction and fidelity reached on them.
fn keep_rule_calibration_summary(c: &serde_json::Value) -> Option<String> {
    let c = c.as_object()?;
    let get = |k: &str| c.get(k).map(|v| v.to_string()).unwrap_or_else(|| "?".into());
    let file = c.get("data").and_then(|d| d.get("file")).and_then(|f| f.as_str()).unwrap_or("?");
    let fidelity = match (c.get("agreement").and_then(|v| v.as_f64()), c.get("cosine").and_then(|v| v.as_f64())) {
        (Some(a), _) => format!("top-1 agreement {:.2}%", 100.0 * a),
        (_, Some(cos)) => format!("cosine {cos:.5}"),
        _ => format!("{} {}", get("objective").trim_matches('"'), get("loss")),
    };
    let target = match c.get("target_speedup").and_then(|v| v.as_f64()) {
        Some(x) => format!(
            "target speedup {x}x on this CPU, measured {}x (MAC reduction {}x)",
            get("speedup"),
            get("mac_reduction")
        ),
        None => format!("target MAC reduction {}x, reached {}x", get("target_mac_reduction"), get("mac_reduction")),
    };
    Some(format!(
        "by toprt-calibrate on {} texts ({} tokens) of {file}, {}; {target}, {fidelity} with the dense {} teacher",
        get("texts"),
        get("tokens"),
        get("fingerprint").trim_matches('"'),
        get("teacher").trim_matches('"').trim_start_matches("dense, ")
    ))
}

/// One line on how `toprt-calibrate` chose an int8 file's precision (the manifest's
/// `quantization.calibration`; `toprt inspect --json` shows all of it): the texts, the
/// bound and outliers, and the largest error among the linears left int8.
fn calibration_summary(c: &serde_json::Value) -> Option<String> {
    let c = c.as_object()?;
    let get = |k: &str| c.get(k).map(|v| v.to_string()).unwrap_or_else(|| "?".into());
    let file = c.get("data").and_then(|d| d.get("file")).and_then(|f| f.as_str()).unwrap_or("?");
    let mut line = format!(
        "{} texts ({} tokens) of {file}, seed {}; {} outlier channels per linear, bound {}",
        get("texts"),
        get("tokens"),
        get("seed"),
        get("outlier_channels"),
        get("bound")
    );
    let bound = c.get("bound").and_then(|b| b.as_f64()).unwrap_or(f64::INFINITY);
    let worst = c
        .get("errors")
        .and_then(|e| e.as_object())
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| v.as_f64().map(|v| (k, v)))
        .filter(|(_, v)| *v <= bound)
        .max_by(|a, b| a.1.total_cmp(&b.1));
    if let Some((name, err)) = worst {
        line += &format!("; largest int8 error {err:.4} ({name})");
    }
    Some(line)
}
