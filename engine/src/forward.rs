//! The encoder forward pass over a packed batch, read top to bottom like the paper:
//! embed, then per layer: project QKV, attend (scoring tokens where a keep-rule follows),
//! maybe prune, project, feed-forward.
//!
//! Every buffer is a `[rows, width]` row-major matrix over the *alive* tokens of the
//! whole batch, back to back; a segment table says which rows belong to which sequence.
//! Pruning compacts these rows in place, so every later GEMM and attention runs on fewer
//! rows. Nothing here allocates: all buffers live in the [`Workspace`], sized once.

use crate::attention;
use crate::model::ModelInner;
use crate::pool::Pool;
use crate::prune::{self, PruneControl};
use std::time::{Duration, Instant};
use toprt_format::KeepRule;
use toprt_kernels::aligned::AVec;
use toprt_kernels::gemm::{Epilogue, GemmParams};
use toprt_kernels::Kernels;

/// Rows `offset .. offset + len` of the packed buffers hold one sequence.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Segment {
    pub offset: usize,
    pub len: usize,
}

/// Tokens alive in one layer of the last forward pass.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct LayerStats {
    /// Rows the attention ran on (all sequences).
    pub attention_tokens: usize,
    /// Rows the FFN ran on.
    pub ffn_tokens: usize,
    /// Shortest and longest sequence at the attention.
    pub min_len: usize,
    pub max_len: usize,
    /// Multiply-accumulates this layer executed (FLOPs model of docs/PRUNING.md, with the
    /// real per-sequence attention and FFN lengths).
    pub macs: f64,
}

/// Per-layer wall time, filled when timing is requested.
#[derive(Clone, Copy, Debug, Default)]
pub struct LayerTiming {
    /// QKV projection + attention (+ importance scores where needed).
    pub attention: Duration,
    /// Keep decisions + compaction (+ recording pruned tokens' outputs).
    pub prune: Duration,
    /// Output projection, LayerNorms, FFN.
    pub ffn: Duration,
}

/// One kept set: the original positions (ascending, CLS = 0) of the tokens of sequence
/// `seq` that enter layer `layer`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct KeptEntry {
    pub seq: u32,
    pub layer: u32,
    pub start: u32,
    pub len: u32,
}

/// Every buffer the forward pass touches, sized from the session's token budget.
pub(crate) struct Workspace {
    pub max_tokens: usize,
    /// Per token: `[tokens]`.
    pub ids: Vec<u32>,
    pub type_ids: Vec<u32>,
    /// Original position of each alive row in its sequence (0 = first token).
    pub positions: Vec<u32>,
    /// Row of the position-embedding table for each token (BERT: the position;
    /// RoBERTa: `pad + 1 + position`, or `pad` for pad tokens, as Hugging Face does).
    pub pos_ids: Vec<u32>,
    /// Current (compacted) segments.
    pub segments: Vec<Segment>,
    /// Segments as loaded, before any pruning (index into `final_states`).
    pub orig_segments: Vec<Segment>,
    // hidden: [tokens, d]
    pub hidden: AVec<f32>,
    // qkv: [tokens, 3d]
    pub qkv: AVec<f32>,
    // ctx: [tokens, d]
    pub ctx: AVec<f32>,
    // h1: [tokens, d]
    pub h1: AVec<f32>,
    // inter: [tokens, d_ff]
    pub inter: AVec<f32>,
    /// The input of a bf16 GEMM rounded to bf16 pairs: `[tokens, max(d, d_ff) / 2]`
    /// words (empty unless the session runs bf16 GEMMs).
    pub a16: AVec<u32>,
    /// Final token states at original rows (token outputs only): `[tokens, d]`.
    pub final_states: AVec<f32>,
    /// Attention scratch per worker (`kᵀ` tile + one score row): `[threads, max_len·(dh+1)]`.
    pub scores: AVec<f32>,
    pub score_stride: usize,
    /// Column sums of the attention probabilities per head: `[heads, max_tokens]`.
    pub colsum: Vec<f32>,
    /// Importance score per alive row: `[tokens]`.
    pub importance: Vec<f32>,
    /// Keep flag per alive row and ranking scratch: `[tokens]`.
    pub keep: Vec<bool>,
    pub order: Vec<u32>,
    /// Kept sets of the last pass (original positions), indexed by `kept_index`.
    pub kept: Vec<u32>,
    pub kept_index: Vec<KeptEntry>,
    pub layer_stats: Vec<LayerStats>,
    // head_in / head_mid: [sequences, d]; head_out: [sequences, labels]
    pub head_in: AVec<f32>,
    pub head_mid: AVec<f32>,
    pub head_out: AVec<f32>,
}

impl Workspace {
    pub fn new(model: &ModelInner, max_tokens: usize, max_len: usize, threads: usize, path: LinearPath) -> Workspace {
        let c = &model.manifest.model;
        let (d, ff) = (c.hidden_size, c.intermediate_size);
        let labels = model.manifest.head.num_labels.max(1);
        let rules = model.manifest.keep_rules.len();
        Workspace {
            max_tokens,
            ids: Vec::with_capacity(max_tokens),
            type_ids: Vec::with_capacity(max_tokens),
            positions: Vec::with_capacity(max_tokens),
            pos_ids: Vec::with_capacity(max_tokens),
            segments: Vec::with_capacity(max_tokens),
            orig_segments: Vec::with_capacity(max_tokens),
            hidden: AVec::zeroed(max_tokens * d),
            qkv: AVec::zeroed(max_tokens * 3 * d),
            ctx: AVec::zeroed(max_tokens * d),
            h1: AVec::zeroed(max_tokens * d),
            inter: AVec::zeroed(max_tokens * ff),
            a16: match path {
                LinearPath::Bf16 => AVec::zeroed(max_tokens * bf16_row_words(d.max(ff))),
                LinearPath::F32 | LinearPath::Bf16Widened => AVec::zeroed(0),
            },
            final_states: AVec::zeroed(max_tokens * d),
            scores: AVec::zeroed(threads * attention::scratch_len(max_len, c.head_dim())),
            score_stride: attention::scratch_len(max_len, c.head_dim()),
            colsum: if rules > 0 { vec![0.0; c.num_heads * max_tokens] } else { Vec::new() },
            importance: vec![0.0; max_tokens],
            keep: vec![true; max_tokens],
            order: vec![0; max_tokens],
            kept: Vec::with_capacity(rules * max_tokens),
            kept_index: Vec::with_capacity(rules * max_tokens),
            layer_stats: vec![LayerStats::default(); c.num_layers],
            head_in: AVec::zeroed(max_tokens * d),
            head_mid: AVec::zeroed(max_tokens * d),
            head_out: AVec::zeroed(max_tokens * labels),
        }
    }

    /// Bytes held by the workspace.
    pub fn bytes(&self) -> usize {
        let f = self.hidden.len() + self.qkv.len() + self.ctx.len() + self.h1.len() + self.inter.len() + self.a16.len();
        let g = self.final_states.len() + self.scores.len() + self.colsum.len() + self.importance.len();
        let h = self.head_in.len() + self.head_mid.len() + self.head_out.len();
        4 * (f + g + h) + 16 * self.ids.capacity() + 4 * self.kept.capacity() + 16 * self.kept_index.capacity()
    }
}

/// What the pass must do besides the dense encoder.
pub(crate) struct Plan<'a> {
    /// `rule_after[l]`: the keep-rule applied right after layer `l`'s attention (location
    /// `l + 1`), if any.
    pub rule_after: &'a [Option<KeepRule>],
    pub ctl: PruneControl,
    /// Final states of every token are needed (hidden states or mean pooling): pruned
    /// tokens then run the FFN of the layer where they are dropped, and their output is
    /// kept at their original position.
    pub token_outputs: bool,
    /// How the encoder's linear layers run.
    pub linear: LinearPath,
}

/// How a session runs the encoder's linear layers, fixed at session creation from the
/// model's precision and the kernel table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LinearPath {
    /// `f32` weights, `f32` GEMM.
    F32,
    /// bf16 weights on a bf16 GEMM ([`Kernels::has_gemm_bf16`]): each input is rounded to
    /// bf16 pairs first, the sums and everything else stay `f32`.
    Bf16,
    /// bf16 weights on a CPU without bf16 GEMMs: the `f32` GEMM on the weights widened
    /// once per model (exactly the file's values; the inputs are not rounded).
    Bf16Widened,
}

impl LinearPath {
    pub fn new(precision: toprt_format::Precision, k: &Kernels) -> LinearPath {
        match (precision, k.has_gemm_bf16()) {
            (toprt_format::Precision::F32, _) => LinearPath::F32,
            (toprt_format::Precision::Bf16, true) => LinearPath::Bf16,
            (toprt_format::Precision::Bf16, false) => LinearPath::Bf16Widened,
        }
    }
}

/// The GEMM of encoder linear `which` (in [`crate::model::LayerWeights::linears`]
/// order) of layer `li`: `out[..t, n] = epilogue(x[..t, k] · W)`. On the bf16 path the
/// input rows are first rounded into `a16`, split across the pool.
#[allow(clippy::too_many_arguments)]
fn linear<'a>(
    model: &'a ModelInner,
    k: &Kernels,
    pool: &Pool,
    path: LinearPath,
    (li, which): (usize, usize),
    x: &'a [f32],
    t: usize,
    a16: &'a mut [u32],
    out: &'a mut [f32],
    ep: Epilogue<'a>,
) -> GemmParams<'a> {
    let w = model.weights.layers[li].linears()[which];
    let (kdim, n) = (w.k, w.n);
    let shape = |e: toprt_kernels::Error| -> ! { panic!("internal shape error in forward pass: {e}") };
    match path {
        LinearPath::F32 => params(&x[..t * kdim], t, kdim, model.f32s(&w.range), n, &mut out[..t * n], ep),
        LinearPath::Bf16Widened => {
            params(&x[..t * kdim], t, kdim, &model.widened()[li][which], n, &mut out[..t * n], ep)
        }
        LinearPath::Bf16 => {
            let (kp, lda) = (kdim.div_ceil(2), bf16_row_words(kdim));
            let ptr = SharedMut(a16.as_mut_ptr());
            assert!(a16.len() >= t * lda && x.len() >= t * kdim);
            let chunk = t.div_ceil(pool.threads()).max(1);
            pool.run(t.div_ceil(chunk), &|task, _| {
                for r in task * chunk..((task + 1) * chunk).min(t) {
                    // SAFETY: row r of `a16` lies inside it (asserted) and belongs to this
                    // task alone.
                    let dst = unsafe { std::slice::from_raw_parts_mut(ptr.get().add(r * lda), kp) };
                    k.to_bf16_pairs(&x[r * kdim..(r + 1) * kdim], dst);
                }
            });
            let a16: &'a [u32] = a16;
            GemmParams::new_bf16(&a16[..t * lda], lda, t, kdim, model.u32s(&w.range), n, &mut out[..t * n], n, ep)
                .unwrap_or_else(|e| shape(e))
        }
    }
}

/// Words per row of the bf16 GEMM input for `k` values: the pairs, padded to a multiple
/// of 16 words so every row starts on a 64-byte line (AMX tile rows, vector loads).
fn bf16_row_words(k: usize) -> usize {
    k.div_ceil(2).next_multiple_of(16)
}

/// A raw pointer that may be shared by tasks that write disjoint parts of one buffer.
struct SharedMut<T>(*mut T);

impl<T> Clone for SharedMut<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for SharedMut<T> {}
// SAFETY: every user writes a region no other task of the same `Pool::run` touches.
unsafe impl<T> Send for SharedMut<T> {}
// SAFETY: as above.
unsafe impl<T> Sync for SharedMut<T> {}

impl<T> SharedMut<T> {
    /// The pointer (a method, so closures capture the `Sync` wrapper, not the field).
    fn get(&self) -> *mut T {
        self.0
    }
}

/// Panel chunks per thread of a split GEMM. The caller starts its first chunk before a
/// worker has seen the job, so with two chunks per thread the worker's last one ends
/// late and the caller waits (4% of a 2-thread pass spent in `Pool::run`, perf);
/// smaller last chunks even it out. 4 per thread ran BERT-base 1 × 128 on 2 threads
/// 3–4% faster than 2, interleaved in one process; 6 was no better than 4.
const CHUNKS_PER_THREAD: usize = 4;

/// Runs a validated GEMM, split by column panels across the pool.
fn gemm(k: &Kernels, pool: &Pool, p: &GemmParams) {
    let panels = p.panels();
    let threads = pool.threads();
    // Fork only when each thread gets real work.
    if threads == 1 || panels < 2 || p.m() * panels < 16 {
        // SAFETY: the only call on `p` while it runs.
        unsafe { k.gemm_panels(p, 0..panels) };
        return;
    }
    let chunk = panels.div_ceil(threads * CHUNKS_PER_THREAD).max(1);
    let tasks = panels.div_ceil(chunk);
    pool.run(tasks, &|t, _| {
        let r = t * chunk..((t + 1) * chunk).min(panels);
        // SAFETY: tasks cover disjoint panel ranges inside 0..panels.
        unsafe { k.gemm_panels(p, r) };
    });
}

/// Rows per task below which splitting a GEMM by rows costs more than it saves: every
/// row task streams all the weights from memory, and a task of fewer rows than one
/// GEMM row block (`MC`, 256 rows for avx2) reuses each weight panel less.
const MIN_ROWS_PER_TASK: usize = 256;

/// Whether `LN(A·W + b + residual)` over `m` rows runs as the fused row-split GEMM +
/// LayerNorm (no second pass over `C`). Below `threads × MIN_ROWS_PER_TASK` rows (BERT's
/// 1 × 128 on 2 threads, every pruned layer) splitting by panels reads each weight
/// once, so the GEMM is split by panels and LayerNorm runs after, split by rows. Both
/// give bit-identical results.
fn fused_layernorm(m: usize, threads: usize) -> bool {
    threads == 1 || m >= threads * MIN_ROWS_PER_TASK
}

/// The fused path: row blocks across the pool, each over all panels.
fn gemm_layernorm_rows(k: &Kernels, pool: &Pool, p: &GemmParams, w: &[f32], b: &[f32], eps: f32) {
    let m = p.m();
    let tasks = pool.threads().min(m.div_ceil(MIN_ROWS_PER_TASK)).max(1);
    let chunk = m.div_ceil(tasks);
    pool.run(tasks, &|t, _| {
        let rows = t * chunk..((t + 1) * chunk).min(m);
        // SAFETY: tasks own disjoint row blocks of C.
        unsafe { k.sgemm_bias_residual_layernorm(p, w, b, eps, rows) };
    });
}

/// Builds `GemmParams`; shapes are guaranteed by workspace sizing and model validation,
/// so a failure here is a bug in the engine, not bad input.
fn params<'a>(
    a: &'a [f32],
    m: usize,
    kdim: usize,
    b: &'a [f32],
    n: usize,
    c: &'a mut [f32],
    ep: Epilogue<'a>,
) -> GemmParams<'a> {
    match GemmParams::new(a, kdim, m, kdim, b, n, c, n, ep) {
        Ok(p) => p,
        Err(e) => panic!("internal shape error in forward pass: {e}"),
    }
}

/// Applies `f` to each of `rows` rows of width `w` of `buf`, split across the pool.
fn par_rows(pool: &Pool, buf: &mut [f32], rows: usize, w: usize, f: &(dyn Fn(usize, &mut [f32]) + Sync)) {
    let threads = pool.threads();
    let chunk = rows.div_ceil(threads).max(1);
    let tasks = rows.div_ceil(chunk);
    let ptr = SharedMut(buf.as_mut_ptr());
    assert!(buf.len() >= rows * w);
    pool.run(tasks, &|t, _| {
        for r in t * chunk..((t + 1) * chunk).min(rows) {
            // SAFETY: row r lies inside buf (asserted above) and belongs to this task only.
            let row = unsafe { std::slice::from_raw_parts_mut(ptr.get().add(r * w), w) };
            f(r, row);
        }
    });
}

/// The encoder over `ws.segments`; leaves the final states of the alive rows in
/// `ws.hidden[..alive*d]` (and, with token outputs, of every token in `ws.final_states`).
pub(crate) fn encode(
    model: &ModelInner,
    k: &Kernels,
    pool: &Pool,
    ws: &mut Workspace,
    plan: &Plan,
    mut timing: Option<&mut [LayerTiming]>,
) {
    let cfg = &model.manifest.model;
    let w = &model.weights;
    let (d, ff, nh) = (cfg.hidden_size, cfg.intermediate_size, cfg.num_heads);
    let dh = cfg.head_dim();
    let eps = cfg.layer_norm_eps;
    let mut t = ws.ids.len();
    ws.kept.clear();
    ws.kept_index.clear();
    ws.layer_stats.iter_mut().for_each(|s| *s = LayerStats::default());
    if t == 0 {
        return;
    }

    // hidden: [t, d] = LN(word[id] + position[pos_id] + token_type[type])
    {
        let (word, pos, typ) = (model.f32s(&w.word), model.f32s(&w.position), model.f32s(&w.token_type));
        let (lw, lb) = (model.f32s(&w.emb_ln_w), model.f32s(&w.emb_ln_b));
        let (ids, types, pos_ids) = (&ws.ids, &ws.type_ids, &ws.pos_ids);
        par_rows(pool, &mut ws.hidden, t, d, &|r, row| {
            let (id, ty, p) = (ids[r] as usize, types[r] as usize, pos_ids[r] as usize);
            let (we, pe, te) = (&word[id * d..id * d + d], &pos[p * d..p * d + d], &typ[ty * d..ty * d + d]);
            k.embed_add_layernorm(row, we, pe, te, lw, lb, eps);
        });
    }

    for (li, lw) in w.layers.iter().enumerate() {
        let t0 = Instant::now();
        let rule = plan.rule_after.get(li).and_then(Option::as_ref).filter(|_| plan.ctl.enabled);
        let score = rule.is_some_and(|r| needs_scores(r, plan.ctl));
        let (df, fff, hf) = (d as f64, ff as f64, nh as f64);
        ws.layer_stats[li] = LayerStats {
            attention_tokens: t,
            ffn_tokens: t,
            min_len: ws.segments.iter().map(|s| s.len).min().unwrap_or(0),
            max_len: ws.segments.iter().map(|s| s.len).max().unwrap_or(0),
            macs: ws.segments.iter().map(|s| prune::layer_macs(s.len as f64, 0.0, df, fff, hf)).sum(),
        };

        // qkv: [t, 3d] = hidden · Wqkv + b   (Q pre-scaled by 1/sqrt(dh))
        let p = linear(
            model,
            k,
            pool,
            plan.linear,
            (li, 0),
            &ws.hidden,
            t,
            &mut ws.a16,
            &mut ws.qkv,
            Epilogue::Bias(model.f32s(&lw.qkv_b)),
        );
        gemm(k, pool, &p);

        // ctx: [t, d] = per (sequence, head): softmax(q kᵀ) v
        // colsum: [nh, max_tokens] = Σ_q p[h, q, j]   (only before a keep-rule)
        let colsum = if score { Some(&mut ws.colsum[..]) } else { None };
        attention(
            k,
            pool,
            plan.linear,
            &ws.qkv[..t * 3 * d],
            &mut ws.ctx[..t * d],
            &ws.segments,
            nh,
            dh,
            &mut ws.scores,
            ws.score_stride,
            colsum,
            ws.max_tokens,
        );
        let t1 = Instant::now();

        // Keep decisions (for location li + 1), then compaction before the FFN unless
        // token outputs need this layer's FFN for the tokens being dropped.
        let mut pruned = false;
        if let Some(rule) = rule {
            pruned = decide(ws, rule, plan.ctl, nh, t, li + 1, score);
            if pruned && !plan.token_outputs {
                let new_t = compact_rows(ws, t, &mut [Buf::Ctx, Buf::Hidden], d);
                ws.layer_stats[li].ffn_tokens = new_t;
                t = new_t;
            }
        }
        let t2 = Instant::now();

        // h1: [t, d] = LN(hidden + ctx · Wo + bo)
        let p = linear(
            model,
            k,
            pool,
            plan.linear,
            (li, 1),
            &ws.ctx,
            t,
            &mut ws.a16,
            &mut ws.h1,
            Epilogue::BiasResidual { bias: model.f32s(&lw.attn_out_b), residual: &ws.hidden[..t * d], ldr: d },
        );
        let (lnw, lnb) = (model.f32s(&lw.attn_ln_w), model.f32s(&lw.attn_ln_b));
        if fused_layernorm(t, pool.threads()) {
            gemm_layernorm_rows(k, pool, &p, lnw, lnb, eps);
        } else {
            gemm(k, pool, &p);
            par_rows(pool, &mut ws.h1, t, d, &|_, row| k.layernorm(row, lnw, lnb, eps));
        }

        // inter: [t, d_ff] = gelu(h1 · W1 + b1)
        let p = linear(
            model,
            k,
            pool,
            plan.linear,
            (li, 2),
            &ws.h1,
            t,
            &mut ws.a16,
            &mut ws.inter,
            Epilogue::BiasGelu(model.f32s(&lw.ffn_in_b)),
        );
        gemm(k, pool, &p);

        // hidden: [t, d] = LN(h1 + inter · W2 + b2)
        let p = linear(
            model,
            k,
            pool,
            plan.linear,
            (li, 3),
            &ws.inter,
            t,
            &mut ws.a16,
            &mut ws.hidden,
            Epilogue::BiasResidual { bias: model.f32s(&lw.ffn_out_b), residual: &ws.h1[..t * d], ldr: d },
        );
        let (lnw, lnb) = (model.f32s(&lw.ffn_ln_w), model.f32s(&lw.ffn_ln_b));
        if fused_layernorm(t, pool.threads()) {
            gemm_layernorm_rows(k, pool, &p, lnw, lnb, eps);
        } else {
            gemm(k, pool, &p);
            par_rows(pool, &mut ws.hidden, t, d, &|_, row| k.layernorm(row, lnw, lnb, eps));
        }
        let t3 = Instant::now();
        ws.layer_stats[li].macs +=
            ws.segments.iter().map(|s| prune::layer_macs(0.0, s.len as f64, df, fff, hf)).sum::<f64>();

        // Token outputs: dropped tokens leave with this layer's output (their state
        // entering the prune location), written at their original rows.
        let mut t_prune_late = Duration::ZERO;
        if pruned && plan.token_outputs {
            let tp = Instant::now();
            scatter_final(ws, t, d, true);
            t = compact_rows(ws, t, &mut [Buf::Hidden], d);
            t_prune_late = tp.elapsed();
        }

        if let Some(tm) = timing.as_deref_mut() {
            if let Some(slot) = tm.get_mut(li) {
                slot.attention += t1 - t0;
                slot.prune += (t2 - t1) + t_prune_late;
                slot.ffn += t3 - t2;
            }
        }
    }
    if plan.token_outputs {
        scatter_final(ws, t, d, false);
    }
}

/// Whether a rule's decision reads the importance scores.
fn needs_scores(rule: &KeepRule, ctl: PruneControl) -> bool {
    match rule {
        KeepRule::None | KeepRule::TopBins { gate: false, .. } => false,
        KeepRule::TopBins { .. } => rule.is_active() || ctl.keep_scale != 1.0,
        KeepRule::Threshold { .. } | KeepRule::TopK { .. } => true,
    }
}

/// Scores the alive rows, decides every sequence's keep set for `location`, records the
/// kept original positions; returns whether any row is dropped.
fn decide(
    ws: &mut Workspace,
    rule: &KeepRule,
    ctl: PruneControl,
    nh: usize,
    t: usize,
    location: usize,
    scored: bool,
) -> bool {
    if scored {
        // importance[r] = Σ_h colsum[h, r]   (heads in a fixed order)
        let mt = ws.max_tokens;
        for r in 0..t {
            let mut s = 0.0f32;
            for h in 0..nh {
                s += ws.colsum[h * mt + r];
            }
            ws.importance[r] = s;
        }
    } else {
        ws.importance[..t].fill(0.0);
    }
    let mut kept_total = 0;
    for (si, seg) in ws.segments.iter().enumerate() {
        let rows = seg.offset..seg.offset + seg.len;
        kept_total += prune::decide(
            rule,
            ctl,
            &ws.importance[rows.clone()],
            &ws.positions[rows.clone()],
            nh,
            &mut ws.order[rows.clone()],
            &mut ws.keep[rows.clone()],
        );
        let start = ws.kept.len();
        for r in rows {
            if ws.keep[r] {
                ws.kept.push(ws.positions[r]);
            }
        }
        ws.kept_index.push(KeptEntry {
            seq: si as u32,
            layer: location as u32,
            start: start as u32,
            len: (ws.kept.len() - start) as u32,
        });
    }
    kept_total < t
}

#[derive(Clone, Copy)]
enum Buf {
    Ctx,
    Hidden,
}

/// Removes the rows with `keep == false` from the named buffers, from `positions`, and
/// from the segment table, in place and in order. Returns the new row count.
fn compact_rows(ws: &mut Workspace, t: usize, bufs: &mut [Buf], d: usize) -> usize {
    let mut w = 0;
    for r in 0..t {
        if !ws.keep[r] {
            continue;
        }
        if w != r {
            for b in bufs.iter() {
                let buf = match b {
                    Buf::Ctx => &mut ws.ctx,
                    Buf::Hidden => &mut ws.hidden,
                };
                buf.copy_within(r * d..r * d + d, w * d);
            }
            ws.positions[w] = ws.positions[r];
        }
        w += 1;
    }
    let mut offset = 0;
    for seg in ws.segments.iter_mut() {
        let kept = ws.keep[seg.offset..seg.offset + seg.len].iter().filter(|&&k| k).count();
        *seg = Segment { offset, len: kept };
        offset += kept;
    }
    ws.keep[..t].fill(true);
    w
}

/// Copies rows of `hidden` to their original rows of `final_states`: only the rows being
/// dropped (`dropped_only`), or every alive row (end of the pass).
fn scatter_final(ws: &mut Workspace, t: usize, d: usize, dropped_only: bool) {
    for (seg, orig) in ws.segments.iter().zip(&ws.orig_segments) {
        for r in seg.offset..seg.offset + seg.len {
            if dropped_only && ws.keep[r] {
                continue;
            }
            let dst = (orig.offset + ws.positions[r] as usize) * d;
            ws.final_states[dst..dst + d].copy_from_slice(&ws.hidden[r * d..r * d + d]);
        }
    }
    debug_assert!(t <= ws.max_tokens);
}

/// Scaled-dot-product attention per (sequence, head) over the packed `qkv` rows, one
/// pool task per (sequence, head). A segment only attends to itself, so no mask exists
/// anywhere. With `colsum`, the column sums of the probabilities (the pruning
/// importance) are accumulated in the same pass: `colsum[h * stride_cs + row] = Σ_q p`.
#[allow(clippy::too_many_arguments)]
fn attention(
    k: &Kernels,
    pool: &Pool,
    path: LinearPath,
    qkv: &[f32],
    ctx: &mut [f32],
    segs: &[Segment],
    nh: usize,
    dh: usize,
    scratch: &mut [f32],
    stride: usize,
    colsum: Option<&mut [f32]>,
    stride_cs: usize,
) {
    let d = nh * dh;
    let ctx_ptr = SharedMut(ctx.as_mut_ptr());
    let ctx_len = ctx.len();
    let sc_ptr = SharedMut(scratch.as_mut_ptr());
    let sc_len = scratch.len();
    let (cs_ptr, cs_len) = match colsum {
        Some(c) => (Some(SharedMut(c.as_mut_ptr())), c.len()),
        None => (None, 0),
    };
    // bf16 sessions run the attention products on the bf16 GEMM too.
    let bf16 = path == LinearPath::Bf16 && k.has_gemm_bf16();
    pool.run(segs.len() * nh, &|task, worker| {
        let (seg, h) = (segs[task / nh], task % nh);
        assert!(
            (worker + 1) * stride <= sc_len
                && attention::scratch_len(seg.len, dh) <= stride
                && (seg.offset + seg.len) * d <= ctx_len
                && (seg.offset + seg.len) * 3 * d <= qkv.len()
        );
        // SAFETY: each worker owns scratch slice `worker` (one task at a time per worker).
        let scr = unsafe { std::slice::from_raw_parts_mut(sc_ptr.get().add(worker * stride), stride) };
        let cs = match cs_ptr {
            Some(p) => {
                assert!(h * stride_cs + seg.offset + seg.len <= cs_len);
                // SAFETY: in bounds (asserted); the (head, sequence) region is this task's.
                unsafe { p.get().add(h * stride_cs + seg.offset) }
            }
            None => std::ptr::null_mut(),
        };
        let t = attention::HeadTask { qkv, d, dh, head: h, offset: seg.offset, len: seg.len, kernels: k, bf16 };
        // SAFETY: rows of this segment, columns of this head of ctx, and its colsum region
        // belong to this task alone; bounds asserted above; the tier was checked at
        // session creation.
        unsafe { attention::head(&t, ctx_ptr.get(), cs, scr) };
    });
}

/// Head computations on the first-token rows: fills `ws.head_out` (`[S, labels]`) for
/// classification, or `ws.head_mid` (`[S, d]`) with the pooler output.
pub(crate) fn head_pooler(model: &ModelInner, k: &Kernels, pool: &Pool, ws: &mut Workspace) -> bool {
    let d = model.manifest.model.hidden_size;
    let s = ws.segments.len();
    let Some((pw, pb)) = &model.weights.pooler else { return false };
    for (i, seg) in ws.segments.iter().enumerate() {
        ws.head_in[i * d..i * d + d].copy_from_slice(&ws.hidden[seg.offset * d..seg.offset * d + d]);
    }
    let p = params(
        &ws.head_in[..s * d],
        s,
        d,
        model.f32s(pw),
        d,
        &mut ws.head_mid[..s * d],
        Epilogue::Bias(model.f32s(pb)),
    );
    gemm(k, pool, &p);
    for v in &mut ws.head_mid[..s * d] {
        *v = v.tanh();
    }
    if let Some((cw, cb)) = &model.weights.classifier {
        let labels = model.manifest.head.num_labels;
        let p = params(
            &ws.head_mid[..s * d],
            s,
            d,
            model.f32s(cw),
            labels,
            &mut ws.head_out[..s * labels],
            Epilogue::Bias(model.f32s(cb)),
        );
        gemm(k, pool, &p);
    }
    true
}
