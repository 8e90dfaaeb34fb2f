//! The encoder forward pass over a packed batch, read top to bottom like the paper:
//! embed, then per layer: project QKV, attend, project, feed-forward.
//!
//! Every buffer is a `[rows, width]` row-major matrix over the *alive* tokens of the
//! whole batch, back to back; a segment table says which rows belong to which sequence.
//! Nothing here allocates: all buffers live in the [`Workspace`], sized once.

use crate::model::ModelInner;
use crate::pool::Pool;
use toprt_kernels::gemm::{Epilogue, GemmParams};
use toprt_kernels::Kernels;

/// Rows `offset .. offset + len` of the packed buffers hold one sequence.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Segment {
    pub offset: usize,
    pub len: usize,
}

/// Every buffer the forward pass touches, sized from the session's token budget.
pub(crate) struct Workspace {
    pub max_tokens: usize,
    /// Per token: `[tokens]`.
    pub ids: Vec<u32>,
    pub type_ids: Vec<u32>,
    /// Original position of each token in its sequence (0 = first token).
    pub positions: Vec<u32>,
    /// Row of the position-embedding table for each token (BERT: the position;
    /// RoBERTa: `pad + 1 + position`, or `pad` for pad tokens, as Hugging Face does).
    pub pos_ids: Vec<u32>,
    pub segments: Vec<Segment>,
    // hidden: [tokens, d]
    pub hidden: Vec<f32>,
    // qkv: [tokens, 3d]
    pub qkv: Vec<f32>,
    // ctx: [tokens, d]
    pub ctx: Vec<f32>,
    // h1: [tokens, d]
    pub h1: Vec<f32>,
    // inter: [tokens, d_ff]
    pub inter: Vec<f32>,
    /// One attention score row per worker: `[threads, max_len]`.
    pub scores: Vec<f32>,
    pub score_stride: usize,
    // head_in / head_mid: [sequences, d]; head_out: [sequences, labels]
    pub head_in: Vec<f32>,
    pub head_mid: Vec<f32>,
    pub head_out: Vec<f32>,
}

impl Workspace {
    pub fn new(model: &ModelInner, max_tokens: usize, max_len: usize, threads: usize) -> Workspace {
        let c = &model.manifest.model;
        let (d, ff) = (c.hidden_size, c.intermediate_size);
        let labels = model.manifest.head.num_labels.max(1);
        Workspace {
            max_tokens,
            ids: Vec::with_capacity(max_tokens),
            type_ids: Vec::with_capacity(max_tokens),
            positions: Vec::with_capacity(max_tokens),
            pos_ids: Vec::with_capacity(max_tokens),
            segments: Vec::with_capacity(max_tokens),
            hidden: vec![0.0; max_tokens * d],
            qkv: vec![0.0; max_tokens * 3 * d],
            ctx: vec![0.0; max_tokens * d],
            h1: vec![0.0; max_tokens * d],
            inter: vec![0.0; max_tokens * ff],
            scores: vec![0.0; threads * max_len],
            score_stride: max_len,
            head_in: vec![0.0; max_tokens * d],
            head_mid: vec![0.0; max_tokens * d],
            head_out: vec![0.0; max_tokens * labels],
        }
    }

    /// Bytes held by the workspace.
    pub fn bytes(&self) -> usize {
        4 * (self.hidden.len() + self.qkv.len() + self.ctx.len() + self.h1.len() + self.inter.len())
            + 4 * (self.scores.len() + self.head_in.len() + self.head_mid.len() + self.head_out.len())
            + 16 * self.ids.capacity()
    }
}

/// A raw pointer that may be shared by tasks that write disjoint parts of one buffer.
#[derive(Clone, Copy)]
struct SharedMut(*mut f32);
// SAFETY: every user writes a region no other task of the same `Pool::run` touches.
unsafe impl Send for SharedMut {}
// SAFETY: as above.
unsafe impl Sync for SharedMut {}

impl SharedMut {
    /// The pointer (a method, so closures capture the `Sync` wrapper, not the field).
    fn get(&self) -> *mut f32 {
        self.0
    }
}

/// Per-layer wall time, filled when timing is requested.
#[derive(Clone, Copy, Debug, Default)]
pub struct LayerTiming {
    pub attention: std::time::Duration,
    pub ffn: std::time::Duration,
}

/// Runs a validated GEMM, split by column panels across the pool.
fn gemm(k: &Kernels, pool: &Pool, p: &GemmParams) {
    let panels = p.panels();
    let threads = pool.threads();
    // Fork only when each thread gets real work.
    if threads == 1 || panels < 2 || p.m() * panels < 16 {
        toprt_kernels::gemm::sgemm_packed(k.sgemm, p);
        return;
    }
    let chunk = panels.div_ceil(threads * 2).max(1);
    let tasks = panels.div_ceil(chunk);
    pool.run(tasks, &|t, _| {
        let r = t * chunk..((t + 1) * chunk).min(panels);
        // SAFETY: tasks cover disjoint panel ranges inside 0..panels.
        unsafe { (k.sgemm)(p, r) };
    });
}

/// Builds `GemmParams`; shapes are guaranteed by workspace sizing and model validation,
/// so a failure here is a bug in the engine, not bad input.
#[allow(clippy::too_many_arguments)]
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

/// The encoder over `ws.segments`; leaves the final states in `ws.hidden[..tokens*d]`.
pub(crate) fn encode(
    model: &ModelInner,
    k: &Kernels,
    pool: &Pool,
    ws: &mut Workspace,
    mut timing: Option<&mut [LayerTiming]>,
) {
    let cfg = &model.manifest.model;
    let w = &model.weights;
    let (d, ff, nh) = (cfg.hidden_size, cfg.intermediate_size, cfg.num_heads);
    let dh = cfg.head_dim();
    let eps = cfg.layer_norm_eps;
    let t = ws.ids.len();
    if t == 0 {
        return;
    }

    // hidden: [t, d] = LN(word[id] + position[pos_id] + token_type[type])
    {
        let (word, pos, typ) = (model.f32s(&w.word), model.f32s(&w.position), model.f32s(&w.token_type));
        let (lw, lb) = (model.f32s(&w.emb_ln_w), model.f32s(&w.emb_ln_b));
        let (ids, types, pos_ids) = (&ws.ids, &ws.type_ids, &ws.pos_ids);
        par_rows(pool, &mut ws.hidden, t, d, &|r, row| {
            let (id, ty) = (ids[r] as usize, types[r] as usize);
            let p = pos_ids[r] as usize;
            let (we, pe, te) = (&word[id * d..id * d + d], &pos[p * d..p * d + d], &typ[ty * d..ty * d + d]);
            for j in 0..d {
                row[j] = we[j] + te[j] + pe[j];
            }
            (k.layernorm)(row, lw, lb, eps);
        });
    }

    for (li, lw) in w.layers.iter().enumerate() {
        let t0 = std::time::Instant::now();
        // qkv: [t, 3d] = hidden · Wqkv + b   (Q pre-scaled by 1/sqrt(dh))
        let p = params(
            &ws.hidden[..t * d],
            t,
            d,
            model.f32s(&lw.qkv_w),
            3 * d,
            &mut ws.qkv[..t * 3 * d],
            Epilogue::Bias(model.f32s(&lw.qkv_b)),
        );
        gemm(k, pool, &p);

        // ctx: [t, d] = per (sequence, head): softmax(q kᵀ) v
        attention(
            k,
            pool,
            &ws.qkv[..t * 3 * d],
            &mut ws.ctx[..t * d],
            &ws.segments,
            nh,
            dh,
            &mut ws.scores,
            ws.score_stride,
        );
        let t1 = std::time::Instant::now();

        // h1: [t, d] = LN(hidden + ctx · Wo + bo)
        let p = params(
            &ws.ctx[..t * d],
            t,
            d,
            model.f32s(&lw.attn_out_w),
            d,
            &mut ws.h1[..t * d],
            Epilogue::BiasResidual { bias: model.f32s(&lw.attn_out_b), residual: &ws.hidden[..t * d], ldr: d },
        );
        gemm(k, pool, &p);
        let (lnw, lnb) = (model.f32s(&lw.attn_ln_w), model.f32s(&lw.attn_ln_b));
        par_rows(pool, &mut ws.h1, t, d, &|_, row| (k.layernorm)(row, lnw, lnb, eps));

        // inter: [t, d_ff] = gelu(h1 · W1 + b1)
        let p = params(
            &ws.h1[..t * d],
            t,
            d,
            model.f32s(&lw.ffn_in_w),
            ff,
            &mut ws.inter[..t * ff],
            Epilogue::BiasGelu(model.f32s(&lw.ffn_in_b)),
        );
        gemm(k, pool, &p);

        // hidden: [t, d] = LN(h1 + inter · W2 + b2)
        let p = params(
            &ws.inter[..t * ff],
            t,
            ff,
            model.f32s(&lw.ffn_out_w),
            d,
            &mut ws.hidden[..t * d],
            Epilogue::BiasResidual { bias: model.f32s(&lw.ffn_out_b), residual: &ws.h1[..t * d], ldr: d },
        );
        gemm(k, pool, &p);
        let (lnw, lnb) = (model.f32s(&lw.ffn_ln_w), model.f32s(&lw.ffn_ln_b));
        par_rows(pool, &mut ws.hidden, t, d, &|_, row| (k.layernorm)(row, lnw, lnb, eps));

        if let Some(tm) = timing.as_deref_mut() {
            if let Some(slot) = tm.get_mut(li) {
                let t2 = std::time::Instant::now();
                slot.attention += t1 - t0;
                slot.ffn += t2 - t1;
            }
        }
    }
}

/// Scaled-dot-product attention per (sequence, head) over the packed `qkv` rows.
/// A segment only attends to itself, so no mask exists anywhere.
#[allow(clippy::too_many_arguments)]
fn attention(
    k: &Kernels,
    pool: &Pool,
    qkv: &[f32],
    ctx: &mut [f32],
    segs: &[Segment],
    nh: usize,
    dh: usize,
    scores: &mut [f32],
    stride: usize,
) {
    let d = nh * dh;
    let ctx_ptr = SharedMut(ctx.as_mut_ptr());
    let ctx_len = ctx.len();
    let sc_ptr = SharedMut(scores.as_mut_ptr());
    let sc_len = scores.len();
    pool.run(segs.len() * nh, &|task, worker| {
        let (seg, h) = (segs[task / nh], task % nh);
        assert!((worker + 1) * stride <= sc_len && seg.len <= stride && (seg.offset + seg.len) * d <= ctx_len);
        // SAFETY: each worker owns score row `worker` (one task at a time per worker).
        let srow = unsafe { std::slice::from_raw_parts_mut(sc_ptr.get().add(worker * stride), seg.len) };
        for i in 0..seg.len {
            let qi = (seg.offset + i) * 3 * d + h * dh;
            let q = &qkv[qi..qi + dh];
            for (j, s) in srow.iter_mut().enumerate() {
                let kj = (seg.offset + j) * 3 * d + d + h * dh;
                let kr = &qkv[kj..kj + dh];
                let mut acc = 0.0f32;
                for e in 0..dh {
                    acc += q[e] * kr[e];
                }
                *s = acc;
            }
            (k.softmax)(srow);
            // SAFETY: row (offset+i), columns h*dh..(h+1)*dh belong to this (sequence,
            // head) task alone; bounds asserted above.
            let out = unsafe { std::slice::from_raw_parts_mut(ctx_ptr.get().add((seg.offset + i) * d + h * dh), dh) };
            out.fill(0.0);
            for (j, &pj) in srow.iter().enumerate() {
                let vj = (seg.offset + j) * 3 * d + 2 * d + h * dh;
                let vr = &qkv[vj..vj + dh];
                for e in 0..dh {
                    out[e] += pj * vr[e];
                }
            }
        }
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
