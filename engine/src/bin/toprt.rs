//! The `toprt` command line: `toprt run` (JSONL in, JSONL out) and `toprt inspect`.

use serde_json::{json, Map, Value};
use std::io::{BufRead, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use toprt::cli_input::{Line, LineReader};
use toprt::{Input, Model, Outputs, Session, SessionOptions};

const USAGE: &str = "usage:
  toprt run --model M.toprt --input IN.jsonl [--output OUT.jsonl] [--batch-size N] [--threads N]
            [--max-length N] [--no-truncate] [--hidden-states] [--isa scalar|avx2|avx512]
            [--kept] [--no-prune] [--keep-scale X]
      IN lines: {\"text\": ...} | {\"text\": ..., \"text_pair\": ...} | {\"input_ids\": [...], \"token_type_ids\": [...]}
      (`-` reads stdin / writes stdout; output defaults to stdout)
  toprt inspect M.toprt [--json] [--lengths N,N,...] [--pad-to N]";

struct RunArgs {
    model: PathBuf,
    input: String,
    output: String,
    batch: usize,
    opts: SessionOptions,
    hidden: bool,
    kept: bool,
}

fn parse_usize(name: &str, v: &str) -> Result<usize, String> {
    v.parse().map_err(|_| format!("{name} expects a non-negative integer, got '{v}'"))
}

fn parse_run(args: &[String]) -> Result<RunArgs, String> {
    let mut model = None;
    let mut input = None;
    let mut output = "-".to_string();
    let mut batch = 32;
    let mut opts = SessionOptions::default();
    let mut hidden = false;
    let mut kept = false;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = |n: &str| it.next().cloned().ok_or_else(|| format!("{n} needs a value"));
        match a.as_str() {
            "--model" | "-m" => model = Some(PathBuf::from(value(a)?)),
            "--input" | "-i" => input = Some(value(a)?),
            "--output" | "-o" => output = value(a)?,
            "--batch-size" => batch = parse_usize(a, &value(a)?)?,
            "--threads" => opts.threads = parse_usize(a, &value(a)?)?,
            "--max-length" => opts.max_length = Some(parse_usize(a, &value(a)?)?),
            "--no-truncate" => opts.truncate = false,
            "--hidden-states" => hidden = true,
            "--kept" => kept = true,
            "--no-prune" => opts.prune.enabled = false,
            "--keep-scale" => {
                let v = value(a)?;
                opts.prune.keep_scale = v.parse().map_err(|_| format!("--keep-scale expects a number, got '{v}'"))?;
            }
            "--isa" => opts.isa = Some(value(a)?.parse().map_err(|e: toprt_kernels::Error| e.to_string())?),
            other => return Err(format!("unknown option '{other}'")),
        }
    }
    if batch == 0 {
        return Err("--batch-size must be at least 1".into());
    }
    Ok(RunArgs {
        model: model.ok_or("missing --model")?,
        input: input.ok_or("missing --input")?,
        output,
        batch,
        opts,
        hidden,
        kept,
    })
}

fn open_input(path: &str) -> Result<Box<dyn BufRead>, String> {
    if path == "-" {
        Ok(Box::new(std::io::BufReader::new(std::io::stdin())))
    } else {
        let f = std::fs::File::open(path).map_err(|e| format!("{path}: {e}"))?;
        Ok(Box::new(std::io::BufReader::new(f)))
    }
}

fn cmd_run(args: &[String]) -> Result<(), String> {
    let a = parse_run(args)?;
    let model = Model::open(&a.model).map_err(|e| e.to_string())?;
    let mut session = Session::new(&model, &a.opts).map_err(|e| e.to_string())?;
    let want = Outputs { logits: true, embedding: true, hidden_states: a.hidden };
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
                run_batch(&mut session, &pending, want, a.kept, &mut out)?;
                pending.clear();
            }
            if done {
                break;
            }
        }
        out.flush().map_err(|e| format!("writing output: {e}"))
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
            o.insert("logits".into(), json!(l));
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

fn cmd_inspect(args: &[String]) -> Result<(), String> {
    let mut path = None;
    let mut as_json = false;
    let mut lengths: Option<Vec<usize>> = None;
    let mut pad_to: Option<usize> = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--json" => as_json = true,
            "--lengths" => {
                let v = it.next().ok_or("--lengths needs a value")?;
                lengths = Some(v.split(',').map(|x| parse_usize("--lengths", x.trim())).collect::<Result<_, _>>()?);
            }
            "--pad-to" => pad_to = Some(parse_usize("--pad-to", it.next().ok_or("--pad-to needs a value")?)?),
            s if s.starts_with('-') => return Err(format!("unknown option '{s}'")),
            s => path = Some(s.to_string()),
        }
    }
    let path = path.ok_or("missing model file")?;
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
    println!(
        "model:       {:?}, {} layers, hidden {}, {} heads, FFN {}, vocab {}",
        c.arch, c.num_layers, c.hidden_size, c.num_heads, c.intermediate_size, c.vocab_size
    );
    println!(
        "weights:     {} encoder linear weights{}",
        model.precision(),
        match model.precision() {
            toprt::Precision::F32 => "",
            toprt::Precision::Bf16 => " (bf16 GEMMs on AMX / AVX512_BF16; other CPUs widen them to f32 once)",
        }
    );
    println!(
        "positions:   {} (max sequence {} tokens), type vocab {}, LN eps {:e}",
        c.max_position_embeddings,
        model.max_length(),
        c.type_vocab_size,
        c.layer_norm_eps
    );
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
    println!(
        "  {:>6}  {:>9}  {:>9}  {:>12}  {:>12}  tokens per layer",
        "tokens", "GMAC", "pruned", "vs unpadded", "vs padded"
    );
    for n in lengths {
        let Some(pruned) = schedule_lengths(m, n) else {
            println!("  {n:>6}  data-dependent (threshold rules): measure with engine-bench --input");
            continue;
        };
        let dense = encoder_macs(m, &vec![(n, n); m.model.num_layers]);
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

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let r = match args.first().map(String::as_str) {
        Some("run") => cmd_run(&args[1..]),
        Some("inspect") => cmd_inspect(&args[1..]),
        Some("-h" | "--help" | "help") => {
            println!("{USAGE}");
            Ok(())
        }
        Some(other) => Err(format!("unknown command '{other}'\n{USAGE}")),
        None => Err(format!("missing command\n{USAGE}")),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line: the reason (usage text is shown by --help).
            eprintln!("toprt: error: {}", e.lines().next().unwrap_or("failed"));
            ExitCode::FAILURE
        }
    }
}
