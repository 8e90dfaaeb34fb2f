//! The encoder forward pass over a packed batch, read top to bottom like the paper:
//! embed; then per layer: attention, prune and compact, feed-forward. The head runs
//! after it (`head.rs`).
//!
//! Every buffer is a `[rows, width]` row-major matrix over the *alive* tokens of the
//! whole batch, back to back; a segment table says which rows belong to which sequence
//! (`workspace.rs`). Pruning compacts these rows in place (`compact.rs`), so every
//! later GEMM and attention runs on fewer rows. Nothing here allocates: all buffers
//! live in the [`Workspace`], sized once.

use crate::attention;
use crate::compact::{self, Buf};
use crate::linear::{Gathered, GatheredQuantized, LinearPath, Linears, QuantizeTo, Quantized, RowsMut, Then};
use crate::model::ModelInner;
use crate::par;
use crate::pool::Pool;
use crate::prune::{self, PruneControl};
use crate::weights::LinearKind;
use crate::workspace::{LayerStats, LayerTiming, Workspace};
use std::time::{Duration, Instant};
use toprt_format::{KeepRule, Precision};
use toprt_kernels::gemm::{Epilogue, GemmParams, Operands};
use toprt_kernels::Kernels;

/// A look at the `f32` input rows `[t, k]` of each encoder linear as the pass runs it
/// (`Session::observe_linear_inputs`; calibration reads activation ranges with it).
pub type Observer<'a> = dyn FnMut(usize, LinearKind, &[f32]) + 'a;

/// What the pass must do besides the dense encoder.
pub(crate) struct Plan<'a> {
    /// `rule_after[l]`: the keep-rule applied right after layer `l`'s attention (location
    /// `l + 1`), if any.
    pub rule_after: &'a [Option<KeepRule>],
    pub ctl: PruneControl,
    /// Final states of every token are needed (hidden states; mean pooling uses only the
    /// tokens that reach the last layer): pruned tokens then run the FFN of the layer
    /// where they are dropped, and their output is kept at their original position.
    pub token_outputs: bool,
    /// Only the first token's final state is read ([`crate::Outputs::first_token_only`]):
    /// after the last layer's attention every other row is dropped, so that layer's
    /// output projection and FFN run on one row per sequence. The first token's row
    /// comes out bit-identical (every kernel computes a row the same whatever the other
    /// rows of the call).
    pub first_token_only: bool,
    /// How the encoder's linear layers run.
    pub linear: LinearPath,
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
    mut observe: Option<&mut Observer>,
) {
    let cfg = &model.manifest.model;
    let (d, nh, dh, eps) = (cfg.hidden_size, cfg.num_heads, cfg.head_dim(), cfg.layer_norm_eps);
    // Pre-norm layers (ModernBERT) keep the residual stream in `hidden` and `h1` and
    // give each linear its normalised input in `normed`; a gated FFN's `[a, g]` rows
    // go to `glu` and `gelu(a) · g` to `inter`.
    let (pre, gated, layers) = (cfg.norm_first, cfg.gated_ffn, model.weights.layers.len());
    let window = |li: usize| cfg.local_attention.as_ref().and_then(|w| w.half_window(li));
    let (df, fff, hf) = (d as f64, cfg.ffn_mac_width(), nh as f64);
    let linears = Linears { model, kernels: k, pool, path: plan.linear };
    // int8 sessions: whether linear `kind` of layer `li` runs on the int8 GEMM (its
    // producer then quantises its input rows).
    let int8 = |li: usize, kind: LinearKind| {
        plan.linear == LinearPath::Int8
            && model.weights.layers.get(li).is_some_and(|l| l.linear(kind).precision == Precision::Int8)
    };
    // The input channels linear `kind` of layer `li` keeps in f32 (its producer gathers
    // them apart).
    let outliers = |li: usize, kind: LinearKind| -> &[u32] {
        let int8 = model.weights.layers.get(li).and_then(|l| l.linear(kind).int8.as_ref());
        int8.and_then(|c| c.outliers.as_ref()).map_or(&[], |o| &o.index)
    };
    let (stride, xs) = (ws.q_stride, ws.x_stride);
    let mut t = ws.ids.len();
    ws.kept.clear();
    ws.kept_index.clear();
    ws.layer_stats.iter_mut().for_each(|s| *s = LayerStats::default());
    if t == 0 {
        return;
    }

    // hidden: [t, d] = LN(word[id] + position[pos_id] + token_type[type])
    // (qa: [t, stride] = quantised hidden, for an int8 first QKV)
    embed(model, k, pool, ws, t, int8(0, LinearKind::Qkv).then(|| outliers(0, LinearKind::Qkv)));

    for (li, layer) in model.weights.layers.iter().enumerate() {
        let t0 = Instant::now();
        let rule = plan.rule_after.get(li).and_then(Option::as_ref).filter(|_| plan.ctl.enabled);
        let score = rule.is_some_and(|r| compact::needs_scores(r, plan.ctl));
        ws.layer_stats[li] = LayerStats {
            attention_tokens: t,
            query_tokens: t,
            ffn_tokens: t,
            min_len: ws.segments.iter().map(|s| s.len).min().unwrap_or(0),
            max_len: ws.segments.iter().map(|s| s.len).max().unwrap_or(0),
            macs: ws.segments.iter().map(|s| prune::layer_macs(s.len as f64, 0.0, df, fff, hf)).sum(),
        };

        // ---- attention ----
        // qkv: [t, 3d] = hidden · Wqkv + b   (Q pre-scaled by 1/sqrt(dh); pre-norm:
        // normed · Wqkv + b, but layer 0 has no input norm)
        let qa = Quantized { words: &ws.qa, scales: &ws.qa_scale, stride, outliers: &ws.xa, x_stride: xs };
        let input = if pre && li > 0 { &ws.normed[..] } else { &ws.hidden[..] };
        let (x, out) = ((input, Some(qa)), &mut ws.qkv);
        if let Some(f) = observe.as_deref_mut() {
            f(li, LinearKind::Qkv, &x.0[..t * d]);
        }
        // The last layer, when only the first token's state is read and no keep-rule
        // needs its scores: only each sequence's first query is computed (its `Q` row
        // and context row; `K` and `V` of every row). Disentangled attention (DeBERTa)
        // computes its terms from every query and keeps the full pass.
        // (`order`, the ranking scratch, holds each sequence's first row.)
        let mut firsts = 0;
        if plan.first_token_only
            && li + 1 == layers
            && !score
            && model.weights.disentangled.is_none()
            && ws.segments.iter().any(|s| s.len > 1)
        {
            for seg in ws.segments.iter().filter(|seg| seg.len > 0) {
                ws.order[firsts] = seg.offset as u32;
                firsts += 1;
            }
        }
        let first_queries = firsts > 0 && {
            let g = Gathered {
                x: &mut ws.ctx,
                q: int8(li, LinearKind::Qkv).then(|| GatheredQuantized {
                    words: &mut ws.qb,
                    scales: &mut ws.qb_scale,
                    outliers: &mut ws.xb,
                }),
                out: &mut ws.h1,
            };
            linears.run_qkv_first_queries(li, x, t, &ws.order[..firsts], g, &mut ws.a16, out)
        };
        if !first_queries {
            linears.run(li, LinearKind::Qkv, x, t, &mut ws.a16, out, Then::Bias, None);
        }
        ws.layer_stats[li].query_tokens = if first_queries { firsts } else { t };
        // Rotary embeddings: Q and K rotated by each row's original position.
        if let Some(rotary) = &model.weights.rotary {
            let (positions, local) = (&ws.positions, window(li).is_some());
            par::rows(pool, &mut ws.qkv, t, 3 * d, &|r, row| rotary.rotate(row, d, positions[r] as usize, local));
        }
        let tq = Instant::now();
        // ctx: [t, d] = per (sequence, head): softmax(q kᵀ) v
        // colsum: [nh, max_tokens] = Σ_q p[h, q, j]   (only before a keep-rule)
        attention::run(
            k,
            pool,
            if plan.linear == LinearPath::Bf16 && k.has_gemm_bf16() { Operands::Bf16 } else { Operands::F32 },
            first_queries,
            &ws.qkv[..t * 3 * d],
            &mut ws.ctx[..t * d],
            &ws.segments,
            nh,
            dh,
            &mut ws.scores,
            ws.score_stride,
            score.then_some(&mut ws.colsum[..]),
            ws.max_tokens,
            model.weights.relative_bias.as_ref().map(|table| attention::Bias { table, positions: &ws.positions[..t] }),
            window(li).map(|half| attention::Window { half, positions: &ws.positions[..t] }),
            model.weights.disentangled.as_ref().map(|tables| attention::Rel {
                tables,
                layer: li,
                positions: &ws.positions[..t],
            }),
        );
        let t1 = Instant::now();

        // ---- prune and compact ----
        // Keep decisions for location li + 1, then compaction of ctx and hidden before
        // the FFN, unless token outputs need this layer's FFN for the dropped tokens.
        let pruned = rule.is_some_and(|rule| compact::decide(ws, rule, plan.ctl, nh, t, li + 1, score));
        if pruned && !plan.token_outputs {
            t = compact::compact_rows(ws, t, &mut [Buf::Ctx, Buf::Hidden], d);
            ws.layer_stats[li].ffn_tokens = t;
        }
        // The last layer, when only the first token's state is read: the other rows'
        // output projection and FFN would be thrown away.
        if plan.first_token_only && li + 1 == layers && compact::keep_first_only(ws, t) {
            t = compact::compact_rows(ws, t, &mut [Buf::Ctx, Buf::Hidden], d);
            ws.layer_stats[li].ffn_tokens = t;
        }
        // (qb: [t, stride] = quantised ctx, for an int8 AttentionOut)
        if int8(li, LinearKind::AttentionOut) {
            let q = QuantizeTo::new(&mut ws.qb, &mut ws.qb_scale, stride).with_outliers(
                outliers(li, LinearKind::AttentionOut),
                &mut ws.xb,
                xs,
            );
            // SAFETY: par::rows hands each row to one task.
            par::rows(pool, &mut ws.ctx, t, d, &|i, row| unsafe { q.put(k, i, row) });
        }
        let t2 = Instant::now();

        // ---- feed-forward ----
        // Each linear's output rows are quantised by it for the next linear when that
        // one is int8 (h1 → qa, inter → qb, hidden → qa).
        // h1: [t, d] = LN(hidden + ctx · Wo + bo)
        // (pre-norm: h1 = hidden + ctx · Wo + bo, normed = LN(h1))
        let norm = if pre {
            let into = RowsMut::new(&mut ws.normed, d);
            Then::ResidualNormInto { residual: &ws.hidden, norm: &layer.attention_norm, eps, into }
        } else {
            Then::ResidualLayerNorm { residual: &ws.hidden, norm: &layer.attention_norm, eps }
        };
        let (xq, to) = (
            Quantized { words: &ws.qb, scales: &ws.qb_scale, stride, outliers: &ws.xb, x_stride: xs },
            QuantizeTo::when(&mut ws.qa, &mut ws.qa_scale, stride, int8(li, LinearKind::Intermediate))
                .map(|q| q.with_outliers(outliers(li, LinearKind::Intermediate), &mut ws.xa, xs)),
        );
        let (x, out) = ((&ws.ctx[..], Some(xq)), &mut ws.h1);
        if let Some(f) = observe.as_deref_mut() {
            f(li, LinearKind::AttentionOut, &x.0[..t * d]);
        }
        let tl = Instant::now();
        linears.run(li, LinearKind::AttentionOut, x, t, &mut ws.a16, out, norm, to);
        let mut ffn_linears = tl.elapsed();
        // inter: [t, d_ff] = gelu(h1 · W1 + b1)
        // (pre-norm: of normed; gated: glu = [a, g] = · W1 + b1, inter = gelu(a) · g)
        let (xq, to) = (
            Quantized { words: &ws.qa, scales: &ws.qa_scale, stride, outliers: &ws.xa, x_stride: xs },
            QuantizeTo::when(&mut ws.qb, &mut ws.qb_scale, stride, int8(li, LinearKind::Output))
                .map(|q| q.with_outliers(outliers(li, LinearKind::Output), &mut ws.xb, xs)),
        );
        let input = if pre { &ws.normed[..] } else { &ws.h1[..] };
        let (out, then) = match gated {
            true => (&mut ws.glu, Then::GeGlu { into: RowsMut::new(&mut ws.inter, cfg.intermediate_size) }),
            false => (&mut ws.inter, Then::Gelu),
        };
        let x = (input, Some(xq));
        if let Some(f) = observe.as_deref_mut() {
            f(li, LinearKind::Intermediate, &x.0[..t * d]);
        }
        let tl = Instant::now();
        linears.run(li, LinearKind::Intermediate, x, t, &mut ws.a16, out, then, to);
        ffn_linears += tl.elapsed();
        // hidden: [t, d] = LN(h1 + inter · W2 + b2)
        // (pre-norm: hidden = h1 + inter · W2 + b2, normed = LN(hidden) with the next
        // layer's input norm; after the last layer, hidden = LN(...) with the final one)
        let norm = if pre && li + 1 < layers {
            let into = RowsMut::new(&mut ws.normed, d);
            Then::ResidualNormInto { residual: &ws.h1, norm: &layer.output_norm, eps, into }
        } else {
            Then::ResidualLayerNorm { residual: &ws.h1, norm: &layer.output_norm, eps }
        };
        let next_qkv_int8 = int8(li + 1, LinearKind::Qkv);
        let (xq, to) = (
            Quantized { words: &ws.qb, scales: &ws.qb_scale, stride, outliers: &ws.xb, x_stride: xs },
            QuantizeTo::when(&mut ws.qa, &mut ws.qa_scale, stride, next_qkv_int8)
                .map(|q| q.with_outliers(outliers(li + 1, LinearKind::Qkv), &mut ws.xa, xs)),
        );
        let (x, out) = ((&ws.inter[..], Some(xq)), &mut ws.hidden);
        if let Some(f) = observe.as_deref_mut() {
            f(li, LinearKind::Output, &x.0[..t * cfg.intermediate_size]);
        }
        let tl = Instant::now();
        linears.run(li, LinearKind::Output, x, t, &mut ws.a16, out, norm, to);
        let t3 = Instant::now();
        ffn_linears += t3 - tl;
        ws.layer_stats[li].macs +=
            ws.segments.iter().map(|s| prune::layer_macs(0.0, s.len as f64, df, fff, hf)).sum::<f64>();

        // Token outputs: dropped tokens leave with this layer's output (their state
        // entering the prune location), written at their original rows.
        let mut late_prune = Duration::ZERO;
        if pruned && plan.token_outputs {
            let tp = Instant::now();
            // Pre-norm: they leave with the final norm of their residual stream.
            let last = &model.weights.layers[layers - 1].output_norm;
            let (w, b) = (model.f32s(&last.weight), model.f32s(&last.bias));
            let final_norm = |row: &mut [f32]| k.layernorm(row, w, b, eps);
            compact::scatter_final(ws, t, d, true, pre.then_some(&final_norm));
            let (mut bufs, mut n) = ([Buf::Hidden, Buf::Hidden, Buf::Hidden], 1);
            for (yes, b) in [(pre, Buf::Normed), (next_qkv_int8, Buf::HiddenQuantized)] {
                if yes {
                    bufs[n] = b;
                    n += 1;
                }
            }
            t = compact::compact_rows(ws, t, &mut bufs[..n], d);
            late_prune = tp.elapsed();
        }

        if let Some(slot) = timing.as_deref_mut().and_then(|tm| tm.get_mut(li)) {
            slot.attention += t1 - t0;
            slot.linears += (tq - t0) + ffn_linears;
            slot.attention_core += t1 - tq;
            slot.prune += (t2 - t1) + late_prune;
            slot.ffn += t3 - t2;
        }
    }
    if plan.token_outputs {
        compact::scatter_final(ws, t, d, false, None);
    }
}

/// `hidden[..t]` = LN(word[id] + position[pos_id] + token_type[type]) per token (ELECTRA
/// with narrower embeddings: that sum and LayerNorm at the embedding width in
/// `ws.embed`, then `hidden = embed · W_project + b`), and with `quantize` (the first
/// QKV's outlier channels) each row quantised into `qa` for an int8 QKV.
fn embed(model: &ModelInner, k: &Kernels, pool: &Pool, ws: &mut Workspace, t: usize, quantize: Option<&[u32]>) {
    let (w, d, eps) = (&model.weights, model.manifest.model.hidden_size, model.manifest.model.layer_norm_eps);
    let e = model.manifest.model.embedding_width();
    // (Rotary models have no position table: a zero row stands for it.)
    let (word, typ) = (model.f32s(&w.word), model.f32s(&w.token_type));
    let pos = w.position.as_ref().map_or(&[][..], |p| model.f32s(p));
    let (lw, lb) = (model.f32s(&w.embedding_norm.weight), model.f32s(&w.embedding_norm.bias));
    let (ids, types, pos_ids) = (&ws.ids, &ws.type_ids, &ws.pos_ids);
    let q = quantize.map(|outliers| {
        QuantizeTo::new(&mut ws.qa, &mut ws.qa_scale, ws.q_stride).with_outliers(outliers, &mut ws.xa, ws.x_stride)
    });
    let project = w.embedding_project.as_ref();
    let table = if project.is_some() { &mut ws.embed } else { &mut ws.hidden };
    par::rows(pool, table, t, e, &|r, row| {
        let (id, ty, p) = (ids[r] as usize, types[r] as usize, pos_ids[r] as usize);
        let pe = if pos.is_empty() { &w.zero_row[..] } else { &pos[p * e..p * e + e] };
        let (we, te) = (&word[id * e..id * e + e], &typ[ty * e..ty * e + e]);
        k.embed_add_layernorm(row, we, pe, te, lw, lb, eps);
        if let (Some(q), None) = (&q, project) {
            // SAFETY: par::rows hands each row to one task.
            unsafe { q.put(k, r, row) };
        }
    });
    let Some((pw, pb)) = project else { return };
    let mut p = GemmParams::new(
        &ws.embed[..t * e],
        e,
        t,
        e,
        model.f32s(pw),
        d,
        &mut ws.hidden[..t * d],
        d,
        Epilogue::Bias(model.f32s(pb)),
    )
    .unwrap_or_else(|err| panic!("internal shape error in the embedding projection: {err}"));
    par::gemm(k, pool, &mut p);
    if let Some(q) = &q {
        par::rows(pool, &mut ws.hidden, t, d, &|r, row| {
            // SAFETY: par::rows hands each row to one task.
            unsafe { q.put(k, r, row) };
        });
    }
}
