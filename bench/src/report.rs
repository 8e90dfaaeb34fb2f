//! What engine-bench prints and writes: the per-layer table, the JSON document
//! (schema in `bench/engine-bench.schema.json`), the SVG chart, and `--compare`.

use serde_json::{json, Value};
use std::path::Path;
use toprt::{LayerStats, SequenceOutput};
use toprt_format::Manifest;

/// Version of the JSON document; fields are only ever added.
pub const SCHEMA: u64 = 1;

pub fn median(v: &[f64]) -> f64 {
    percentile(v, 0.5)
}

pub fn percentile(v: &[f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * p).round() as usize]
}

/// The measurements of one configuration.
pub struct RunResult {
    pub name: &'static str,
    /// Threads of the session that ran it.
    pub threads: usize,
    /// Wall time of each iteration (all batches), ms.
    pub totals: Vec<f64>,
    pub attn_runs: Vec<Vec<f64>>,
    pub prune_runs: Vec<Vec<f64>>,
    pub ffn_runs: Vec<Vec<f64>>,
    /// Of a layer's time: its four linears (with their fused epilogues), and the
    /// attention core.
    pub linear_runs: Vec<Vec<f64>>,
    pub core_runs: Vec<Vec<f64>>,
    /// Per layer, summed over the batches of one iteration.
    pub stats: Vec<LayerStats>,
    pub sequences: usize,
    pub tokens: usize,
}

impl RunResult {
    pub fn new(name: &'static str, threads: usize, layers: usize, sequences: usize, tokens: usize) -> RunResult {
        RunResult {
            name,
            threads,
            totals: Vec::new(),
            attn_runs: vec![Vec::new(); layers],
            prune_runs: vec![Vec::new(); layers],
            ffn_runs: vec![Vec::new(); layers],
            linear_runs: vec![Vec::new(); layers],
            core_runs: vec![Vec::new(); layers],
            stats: vec![LayerStats::default(); layers],
            sequences,
            tokens,
        }
    }
    pub fn median(&self) -> f64 {
        median(&self.totals)
    }
    pub fn macs(&self) -> f64 {
        self.stats.iter().map(|s| s.macs).sum()
    }
    fn attn(&self, l: usize) -> f64 {
        median(&self.attn_runs[l])
    }
    fn prune(&self, l: usize) -> f64 {
        median(&self.prune_runs[l])
    }
    fn ffn(&self, l: usize) -> f64 {
        median(&self.ffn_runs[l])
    }
    fn linears(&self, l: usize) -> f64 {
        median(&self.linear_runs[l])
    }
    fn core(&self, l: usize) -> f64 {
        median(&self.core_runs[l])
    }
    /// GFLOP of layer `l`'s four linears as they ran: `2 · (2·d² · attention rows + d² ·
    /// query rows + (d² + 2·d·d_ff) · FFN rows)` — `Q` only where a query is computed
    /// (one row per sequence in a last layer read at its first token), the output
    /// projection after the compaction, on the FFN's rows (the FLOPs model of
    /// docs/PRUNING.md charges both at the attention length, as ToP's does) — with `d_ff`
    /// the FFN's MAC width (1.5 × the intermediate size for a gated FFN, whose first
    /// linear is twice as wide).
    fn linear_gflop(&self, l: usize, d: f64, dff: f64) -> f64 {
        let s = &self.stats[l];
        let qkv = d * d * (2.0 * s.attention_tokens as f64 + s.query_tokens as f64);
        2.0 * (qkv + (d * d + 2.0 * d * dff) * s.ffn_tokens as f64) / 1e9
    }
    fn layer_ms(&self, l: usize) -> f64 {
        self.attn(l) + self.prune(l) + self.ffn(l)
    }
    fn gflop(&self, l: usize) -> f64 {
        2.0 * self.stats[l].macs / 1e9
    }
    fn tokens_mean(&self, l: usize) -> f64 {
        self.stats[l].attention_tokens as f64 / self.sequences.max(1) as f64
    }
    fn prune_total(&self) -> f64 {
        (0..self.stats.len()).map(|l| self.prune(l)).sum()
    }
}

/// Dense vs pruned answers on real texts.
#[derive(Default)]
pub struct Agreement {
    pub n: usize,
    pub top1_same: usize,
    /// Texts with logits (classifiers): the top-1 agreement is over these.
    pub top1_n: usize,
    pub cos_sum: f64,
    pub cos_min: f64,
    pub cos_n: usize,
    pub labelled: usize,
    pub dense_correct: usize,
    pub pruned_correct: usize,
}

fn argmax(v: &[f32]) -> usize {
    v.iter().enumerate().fold((0, f32::NEG_INFINITY), |(bi, bv), (i, &x)| if x > bv { (i, x) } else { (bi, bv) }).0
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum();
    let n = |v: &[f32]| v.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    dot / (n(a) * n(b)).max(1e-30)
}

impl Agreement {
    pub fn add(&mut self, d: &SequenceOutput, p: &SequenceOutput, label: Option<usize>) {
        if self.n == 0 {
            self.cos_min = f64::INFINITY;
        }
        self.n += 1;
        if let (Some(dl), Some(pl)) = (&d.logits, &p.logits) {
            let (a, b) = (argmax(dl), argmax(pl));
            self.top1_same += (a == b) as usize;
            self.top1_n += 1;
            if let Some(l) = label {
                self.labelled += 1;
                self.dense_correct += (a == l) as usize;
                self.pruned_correct += (b == l) as usize;
            }
        }
        let (de, pe) = match (&d.embedding, &p.embedding) {
            (Some(x), Some(y)) => (x.as_slice(), y.as_slice()),
            _ => match (&d.logits, &p.logits) {
                (Some(x), Some(y)) => (x.as_slice(), y.as_slice()),
                _ => return,
            },
        };
        let c = cosine(de, pe);
        self.cos_sum += c;
        self.cos_min = self.cos_min.min(c);
        self.cos_n += 1;
    }
    fn json(&self) -> Value {
        json!({"texts": self.n, "top1_agreement": (self.top1_n > 0).then(|| self.top1_same as f64 / self.top1_n as f64),
            "cosine_mean": self.cos_sum / self.cos_n.max(1) as f64, "cosine_min": self.cos_min,
            "labelled": self.labelled,
            "accuracy_dense": (self.labelled > 0).then(|| self.dense_correct as f64 / self.labelled as f64),
            "accuracy_pruned": (self.labelled > 0).then(|| self.pruned_correct as f64 / self.labelled as f64)})
    }
}

/// The medians of one thread count in a `--threads a,b,...` run.
pub struct Scaling {
    pub threads: usize,
    pub dense_ms: f64,
    pub pruned_ms: Option<f64>,
}

/// Facts about the run that every output carries.
pub struct Context {
    pub model_path: String,
    pub manifest: Manifest,
    pub source: String,
    pub batch: usize,
    pub threads: usize,
    pub isa: String,
    /// Precision of the encoder weights (`f32` or `bf16`) and the GEMM kernel they ran on.
    pub precision: String,
    pub gemm: String,
    pub peak_gflops: f64,
    /// What `peak_gflops` measures: the f32 FMA, or the int8 dot product.
    pub peak_label: String,
    /// Memory read bandwidth of one thread, GB/s (`toprt_kernels::bandwidth_probe`).
    pub bandwidth_gbs: f64,
    /// Bytes per encoder linear weight element in this file (4 f32, 2 bf16, 1 int8).
    pub weight_bytes: f64,
    pub pad_to: Option<usize>,
    pub lengths: Vec<usize>,
    pub has_rules: bool,
    /// One entry per thread count when several ran alternately (empty otherwise).
    pub scaling: Vec<Scaling>,
    /// With several thread counts: the FMA peak of one thread alone, and of each of the
    /// largest count's threads all probing at once (best of alternating runs).
    pub peak_together: Option<(f64, Vec<f64>)>,
}

impl Context {
    /// MACs of the dense model on every input padded to `pad`.
    fn padded_macs(&self, pad: usize) -> f64 {
        let layers = self.manifest.model.num_layers;
        self.lengths.len() as f64 * toprt::prune::encoder_macs(&self.manifest, &vec![(pad, pad); layers])
    }
    fn pad(&self) -> usize {
        let longest = self.lengths.iter().copied().max().unwrap_or(1);
        self.pad_to.unwrap_or(longest).max(longest)
    }
    fn pct(&self, gflops: f64) -> f64 {
        100.0 * gflops / (self.peak_gflops * self.threads as f64)
    }
}

pub fn print(ctx: &Context, dense: &RunResult, pruned: Option<&RunResult>, agree: Option<&Agreement>) {
    let c = &ctx.manifest.model;
    println!(
        "toprt engine-bench: {} ({:?}, {} layers, hidden {}, {} weights on {}); {}; {} thread(s), isa {}; {} {:.1} GFLOP/s per core",
        ctx.model_path,
        c.arch,
        c.num_layers,
        c.hidden_size,
        ctx.precision,
        ctx.gemm,
        ctx.source,
        ctx.threads,
        ctx.isa,
        ctx.peak_label,
        ctx.peak_gflops
    );
    let p = pruned.unwrap_or(dense);
    println!(
        "{:>5} | {:>7} {:>8} {:>7} {:>5} | {:>15} {:>8} {:>8} {:>8} {:>8} {:>7} {:>7} {:>5}",
        "",
        "dense",
        "",
        "",
        "",
        if pruned.is_some() { "pruned" } else { "(no pruning)" },
        "",
        "",
        "",
        "",
        "",
        "",
        ""
    );
    println!(
        "{:>5} | {:>7} {:>8} {:>7} {:>5} | {:>15} {:>8} {:>8} {:>8} {:>8} {:>7} {:>7} {:>5}",
        "layer",
        "tokens",
        "ms",
        "GFLOP/s",
        "%peak",
        "tok mean/min/max",
        "attn ms",
        "prune ms",
        "ffn ms",
        "total",
        "GFLOP",
        "GFLOP/s",
        "%peak"
    );
    for l in 0..c.num_layers {
        let dg = dense.gflop(l) / (dense.layer_ms(l) / 1e3);
        let pg = p.gflop(l) / (p.layer_ms(l) / 1e3);
        let s = &p.stats[l];
        println!(
            "{l:>5} | {:>7.1} {:>8.3} {:>7.1} {:>5.1} | {:>15} {:>8.3} {:>8.3} {:>8.3} {:>8.3} {:>7.3} {:>7.1} {:>5.1}",
            dense.tokens_mean(l),
            dense.layer_ms(l),
            dg,
            ctx.pct(dg),
            format!("{:.1}/{}/{}", p.tokens_mean(l), s.min_len, s.max_len),
            p.attn(l),
            p.prune(l),
            p.ffn(l),
            p.layer_ms(l),
            p.gflop(l),
            pg,
            ctx.pct(pg)
        );
    }
    // Where a layer's time goes: its GEMMs (rate against this precision's peak), the
    // attention core, and the rest (pruning, compaction, quantising the context).
    let (d, dff) = (c.hidden_size as f64, c.ffn_mac_width());
    // Weight bytes a layer's four linears stream, once per pass.
    let weight_gb = (4.0 * d * d + 2.0 * d * dff) * ctx.weight_bytes / 1e9;
    println!(
        "per layer, ms: GEMMs (the four linears with their fused epilogues; % of peak, weights streamed in GB/s \
         against the {:.1} GB/s read probe) / attention core (q·kᵀ, softmax, ·v) / rest",
        ctx.bandwidth_gbs
    );
    let split = |r: &RunResult, l: usize| {
        let (g, a) = (r.linears(l), r.core(l));
        let secs = (g / 1e3).max(1e-12);
        let rate = r.linear_gflop(l, d, dff) / secs;
        format!(
            "{g:.3} ({:.0}%, {:.1} GB/s) / {a:.3} / {:.3}",
            ctx.pct(rate),
            weight_gb / secs,
            (r.layer_ms(l) - g - a).max(0.0)
        )
    };
    for l in 0..c.num_layers {
        match pruned {
            Some(p) => println!("  layer {l:>2}: dense {:<38} pruned {}", split(dense, l), split(p, l)),
            None => println!("  layer {l:>2}: dense {}", split(dense, l)),
        }
    }
    for r in std::iter::once(dense).chain(pruned) {
        let g = 2.0 * r.macs() / 1e9;
        println!(
            "{:>6}: latency median {:.2} ms, p90 {:.2} ms over {} runs; {:.1} sequences/s, {:.0} tokens/s; {:.2} GFLOP, {:.1} GFLOP/s ({:.0}% of peak)",
            r.name,
            r.median(),
            percentile(&r.totals, 0.9),
            r.totals.len(),
            r.sequences as f64 / (r.median() / 1e3),
            r.tokens as f64 / (r.median() / 1e3),
            g,
            g / (r.median() / 1e3),
            ctx.pct(g / (r.median() / 1e3))
        );
    }
    if let Some(p) = pruned {
        let speedup = dense.median() / p.median();
        let red = dense.macs() / p.macs();
        let pad = ctx.pad();
        println!(
            "speedup pruned vs dense {speedup:.2}x; MAC reduction {red:.2}x vs the unpadded input, {:.2}x vs input padded to {pad} tokens (the baseline ToP's papers use); speedup / MAC reduction = {:.2}",
            ctx.padded_macs(pad) / p.macs(),
            speedup / red
        );
        println!(
            "pruning overhead (keep decisions + compaction; scores are fused into attention): {:.3} ms = {:.2}% of the pruned forward",
            p.prune_total(),
            100.0 * p.prune_total() / p.median()
        );
    } else if !ctx.has_rules {
        println!("(the model has no keep-rules: dense only)");
    }
    if let Some(base) = ctx.scaling.first() {
        println!(
            "thread scaling (the counts ran alternately, run by run; the table above is for {} threads):",
            ctx.threads
        );
        println!(
            "{:>8} {:>10} {:>9} {:>11} {:>10} {:>9}",
            "threads", "dense ms", "speedup", "efficiency", "pruned ms", "speedup"
        );
        for sc in &ctx.scaling {
            let sp = base.dense_ms / sc.dense_ms;
            let eff = sp * base.threads as f64 / sc.threads as f64;
            let (pm, ps) = match (sc.pruned_ms, base.pruned_ms) {
                (Some(p), Some(b)) => (format!("{p:.2}"), format!("{:.2}x", b / p)),
                _ => ("-".into(), "-".into()),
            };
            println!("{:>8} {:>10.2} {:>8.2}x {:>10.0}% {pm:>10} {ps:>9}", sc.threads, sc.dense_ms, sp, 100.0 * eff);
        }
        if let Some((alone, p)) = &ctx.peak_together {
            let min = p.iter().copied().fold(f64::INFINITY, f64::min);
            println!(
                "FMA probe on {} threads at once: {} GFLOP/s per thread (one thread alone: {alone:.1}){}",
                p.len(),
                p.iter().map(|x| format!("{x:.1}")).collect::<Vec<_>>().join(", "),
                if min < 0.75 * alone {
                    " -- the threads share FMA units (SMT siblings or co-scheduled vCPUs): compute-bound code cannot scale here"
                } else {
                    ""
                }
            );
        }
    }
    if let Some(a) = agree {
        println!(
            "agreement over {} texts: {}cosine(dense, pruned) mean {:.5}, min {:.5}{}",
            a.n,
            if a.top1_n > 0 {
                format!("top-1 dense = pruned for {:.2}%; ", 100.0 * a.top1_same as f64 / a.top1_n as f64)
            } else {
                String::new()
            },
            a.cos_sum / a.cos_n.max(1) as f64,
            a.cos_min,
            if a.labelled > 0 {
                format!(
                    "; accuracy dense {:.2}%, pruned {:.2}% ({} labelled)",
                    100.0 * a.dense_correct as f64 / a.labelled as f64,
                    100.0 * a.pruned_correct as f64 / a.labelled as f64,
                    a.labelled
                )
            } else {
                String::new()
            }
        );
    }
}

fn run_json(ctx: &Context, r: &RunResult) -> Value {
    let layers: Vec<Value> = (0..r.stats.len())
        .map(|l| {
            let s = &r.stats[l];
            let gflops = r.gflop(l) / (r.layer_ms(l) / 1e3);
            json!({"layer": l, "tokens": r.tokens_mean(l), "tokens_min": s.min_len, "tokens_max": s.max_len,
                "ffn_tokens": s.ffn_tokens as f64 / r.sequences.max(1) as f64, "ms": r.layer_ms(l),
                "attention_ms": r.attn(l), "prune_ms": r.prune(l), "ffn_ms": r.ffn(l), "linears_ms": r.linears(l), "attention_core_ms": r.core(l), "gflop": r.gflop(l),
                "gflops": gflops, "pct_peak": ctx.pct(gflops)})
        })
        .collect();
    json!({"name": r.name, "median_ms": r.median(), "p90_ms": percentile(&r.totals, 0.9), "iters": r.totals.len(),
        "sequences": r.sequences, "tokens": r.tokens, "throughput_seq_s": r.sequences as f64 / (r.median() / 1e3),
        "gflop": 2.0 * r.macs() / 1e9, "prune_ms": r.prune_total(), "layers": layers})
}

/// The JSON document (see `bench/engine-bench.schema.json`).
pub fn document(ctx: &Context, dense: &RunResult, pruned: Option<&RunResult>, agree: Option<&Agreement>) -> Value {
    let mut runs = vec![run_json(ctx, dense)];
    if let Some(p) = pruned {
        let mut v = run_json(ctx, p);
        let pad = ctx.pad();
        if let Some(o) = v.as_object_mut() {
            o.insert("mac_reduction".into(), json!(dense.macs() / p.macs()));
            o.insert("mac_reduction_padded".into(), json!(ctx.padded_macs(pad) / p.macs()));
            o.insert("padded_to".into(), json!(pad));
            o.insert("speedup".into(), json!(dense.median() / p.median()));
            o.insert("prune_overhead_pct".into(), json!(100.0 * p.prune_total() / p.median()));
        }
        runs.push(v);
    }
    json!({"schema": SCHEMA, "tool": format!("engine-bench {}", env!("CARGO_PKG_VERSION")), "model": ctx.model_path,
        "input": ctx.source, "batch": ctx.batch, "threads": ctx.threads, "isa": ctx.isa,
        "precision": ctx.precision, "gemm_kernel": ctx.gemm,
        "peak_gflops_per_core": ctx.peak_gflops, "bandwidth_gbs": ctx.bandwidth_gbs, "runs": runs, "agreement": agree.map(Agreement::json),
        "scaling": (!ctx.scaling.is_empty()).then(|| scaling_json(&ctx.scaling)),
        "peak_gflops_per_thread_together": ctx.peak_together.as_ref().map(|(_, p)| p)})
}

fn scaling_json(sc: &[Scaling]) -> Value {
    let base = &sc[0];
    Value::Array(
        sc.iter()
            .map(|s| {
                json!({"threads": s.threads, "dense_median_ms": s.dense_ms, "pruned_median_ms": s.pruned_ms,
                    "dense_speedup": base.dense_ms / s.dense_ms,
                    "pruned_speedup": s.pruned_ms.zip(base.pruned_ms).map(|(p, b)| b / p)})
            })
            .collect(),
    )
}

pub fn write_json(
    out: &Path,
    ctx: &Context,
    dense: &RunResult,
    pruned: Option<&RunResult>,
    agree: Option<&Agreement>,
) -> Result<(), String> {
    let text = serde_json::to_string_pretty(&document(ctx, dense, pruned, agree)).map_err(|e| e.to_string())?;
    std::fs::write(out, text).map_err(|e| format!("{}: {e}", out.display()))
}

/// A bar chart: per-layer ms dense vs pruned, and the tokens alive (right axis).
pub fn write_svg(out: &Path, ctx: &Context, dense: &RunResult, pruned: Option<&RunResult>) -> Result<(), String> {
    let layers = ctx.manifest.model.num_layers;
    let (w, h, left, right, top, bottom) = (960.0, 420.0, 70.0, 70.0, 50.0, 60.0);
    let plot_w = w - left - right;
    let plot_h = h - top - bottom;
    let max_ms = (0..layers)
        .map(|l| dense.layer_ms(l))
        .chain(pruned.iter().flat_map(|p| (0..layers).map(|l| p.layer_ms(l))))
        .fold(0.0, f64::max)
        .max(1e-9);
    let max_tok = (0..layers).map(|l| dense.tokens_mean(l)).fold(0.0, f64::max).max(1.0);
    let slot = plot_w / layers as f64;
    let bar = slot * 0.38;
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n<text x=\"{left}\" y=\"22\" font-size=\"15\">engine-bench: per-layer time, dense vs pruned ({}; {} thread(s), {})</text>\n",
        esc(&ctx.source), ctx.threads, ctx.isa
    );
    s += &format!(
        "<line x1=\"{left}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"black\"/>\n",
        top + plot_h,
        left + plot_w,
        top + plot_h
    );
    for i in 0..=4 {
        let v = max_ms * i as f64 / 4.0;
        let y = top + plot_h - plot_h * i as f64 / 4.0;
        s += &format!("<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{v:.1}</text><line x1=\"{left}\" y1=\"{y}\" x2=\"{}\" y2=\"{y}\" stroke=\"#ddd\"/>\n", left - 6.0, y + 4.0, left + plot_w);
        let t = max_tok * i as f64 / 4.0;
        s += &format!("<text x=\"{}\" y=\"{}\">{t:.0}</text>\n", left + plot_w + 6.0, y + 4.0);
    }
    s += &format!(
        "<text x=\"16\" y=\"{}\" transform=\"rotate(-90 16 {})\">ms per layer</text>\n",
        top + plot_h / 2.0,
        top + plot_h / 2.0
    );
    s += &format!(
        "<text x=\"{}\" y=\"{}\" transform=\"rotate(90 {} {})\">tokens alive (mean)</text>\n",
        w - 14.0,
        top + plot_h / 2.0 - 50.0,
        w - 14.0,
        top + plot_h / 2.0 - 50.0
    );
    let mut line = String::new();
    for l in 0..layers {
        let x0 = left + slot * l as f64 + slot * 0.1;
        let hd = plot_h * dense.layer_ms(l) / max_ms;
        s += &format!("<rect x=\"{x0:.1}\" y=\"{:.1}\" width=\"{bar:.1}\" height=\"{hd:.1}\" fill=\"#9aa\"><title>layer {l} dense {:.3} ms</title></rect>\n", top + plot_h - hd, dense.layer_ms(l));
        if let Some(p) = pruned {
            let hp = plot_h * p.layer_ms(l) / max_ms;
            s += &format!("<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{bar:.1}\" height=\"{hp:.1}\" fill=\"#2a6fdb\"><title>layer {l} pruned {:.3} ms</title></rect>\n", x0 + bar, top + plot_h - hp, p.layer_ms(l));
            let y = top + plot_h - plot_h * p.tokens_mean(l) / max_tok;
            line += &format!("{:.1},{y:.1} ", x0 + bar);
        }
        s += &format!("<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{l}</text>\n", x0 + bar, top + plot_h + 16.0);
    }
    if !line.is_empty() {
        s += &format!("<polyline points=\"{line}\" fill=\"none\" stroke=\"#d33\" stroke-width=\"2\"/>\n");
    }
    s += &format!("<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">layer</text>\n", left + plot_w / 2.0, h - 24.0);
    let ly = h - 10.0;
    s += &format!("<rect x=\"{left}\" y=\"{}\" width=\"12\" height=\"10\" fill=\"#9aa\"/><text x=\"{}\" y=\"{ly}\">dense ms</text>\n", ly - 9.0, left + 16.0);
    if pruned.is_some() {
        s += &format!("<rect x=\"{}\" y=\"{}\" width=\"12\" height=\"10\" fill=\"#2a6fdb\"/><text x=\"{}\" y=\"{ly}\">pruned ms</text>\n", left + 100.0, ly - 9.0, left + 116.0);
        s += &format!("<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"#d33\" stroke-width=\"2\"/><text x=\"{}\" y=\"{ly}\">tokens alive (pruned)</text>\n", left + 210.0, ly - 4.0, left + 226.0, ly - 4.0, left + 232.0);
    }
    s += "</svg>\n";
    std::fs::write(out, s).map_err(|e| format!("{}: {e}", out.display()))
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

fn load(p: &Path) -> Result<Value, String> {
    let t = std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))?;
    let v: Value = serde_json::from_str(&t).map_err(|e| format!("{}: {e}", p.display()))?;
    match v["schema"].as_u64() {
        Some(s) if s <= SCHEMA => Ok(v),
        other => Err(format!("{}: not an engine-bench document of schema <= {SCHEMA} (found {other:?})", p.display())),
    }
}

/// `--compare A.json B.json`: runs side by side, ratios B / A.
pub fn compare(a: &Path, b: &Path) -> Result<(), String> {
    let (da, db) = (load(a)?, load(b)?);
    println!("A = {}\nB = {}", a.display(), b.display());
    for k in ["model", "input", "threads", "isa"] {
        if da[k] != db[k] {
            println!("note: {k} differs: A {} / B {}", da[k], db[k]);
        }
    }
    let empty = vec![];
    let runs_b = db["runs"].as_array().unwrap_or(&empty);
    for ra in da["runs"].as_array().unwrap_or(&empty) {
        let name = ra["name"].as_str().unwrap_or("?");
        let Some(rb) = runs_b.iter().find(|r| r["name"] == ra["name"]) else {
            println!("run '{name}' only in A");
            continue;
        };
        let f = |v: &Value, k: &str| v[k].as_f64().unwrap_or(f64::NAN);
        println!(
            "run '{name}': median {:.3} ms -> {:.3} ms (B/A {:.3}), p90 {:.3} -> {:.3} (B/A {:.3})",
            f(ra, "median_ms"),
            f(rb, "median_ms"),
            f(rb, "median_ms") / f(ra, "median_ms"),
            f(ra, "p90_ms"),
            f(rb, "p90_ms"),
            f(rb, "p90_ms") / f(ra, "p90_ms")
        );
        println!("  {:>5} {:>8} {:>8} {:>10} {:>10} {:>7}", "layer", "tok A", "tok B", "ms A", "ms B", "B/A");
        let (la, lb) = (ra["layers"].as_array().unwrap_or(&empty), rb["layers"].as_array().unwrap_or(&empty));
        for (x, y) in la.iter().zip(lb) {
            println!(
                "  {:>5} {:>8.1} {:>8.1} {:>10.3} {:>10.3} {:>7.3}",
                x["layer"],
                f(x, "tokens"),
                f(y, "tokens"),
                f(x, "ms"),
                f(y, "ms"),
                f(y, "ms") / f(x, "ms")
            );
        }
    }
    for rb in runs_b {
        if !da["runs"].as_array().unwrap_or(&empty).iter().any(|r| r["name"] == rb["name"]) {
            println!("run '{}' only in B", rb["name"].as_str().unwrap_or("?"));
        }
    }
    Ok(())
}
