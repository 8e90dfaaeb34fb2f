//! Attention for one (sequence, head): `softmax(q kᵀ) v` over the packed QKV rows, with
//! the column sums of the probabilities (the pruning importance) accumulated in the same
//! pass when asked.
//!
//! Both products run on the session's weight-GEMM microkernels, so attention gets the
//! same register tiling as the projections instead of a row-at-a-time loop that is bound
//! by loads and stores:
//!
//! 1. `K` of the head is packed into the GEMM's panel layout as the `[dh, n]` operand
//!    `kᵀ`, and `V` as the `[n, dh]` operand (padding columns zeroed).
//! 2. Query rows go in blocks of [`QUERY_BLOCK`]: `S = Q·kᵀ` (`[rows, n]`, the scale is
//!    already folded into `Wq`), a softmax per row, the row added into the column sums,
//!    then `O = P·V` written straight into this head's columns of the context rows.
//!
//! Per worker that is `kᵀ` + `V` + one score block: for n = 512 and dh = 64, 128 KiB
//! each, so the working set of a head stays in L2. Every element is one accumulation
//! chain in a fixed order (`e` ascending for a score, `j` ascending for an output, the
//! GEMM's contract), and a query row's results depend on nothing but that row and the
//! sequence's keys and values: outputs do not depend on the batch, the block a row falls
//! in, or the thread.
//!
//! In a bf16 session (bf16 weights on a bf16 GEMM) both products run in bf16 too
//! ([`head_bf16`]): `Q`, `K`, `V` and the probabilities are rounded to bf16 pairs, the
//! scores, softmax, column sums and outputs stay f32. On AMX that made a head 1.5× faster
//! at 128 tokens and 1.9× at 512 (one thread, in isolation).

use crate::disentangled::{HeadRel, RelTables, Terms};
use crate::par::SharedMut;
use crate::pool::Pool;
use crate::workspace::Segment;
use std::ops::Range;
use toprt_kernels::gemm::{Epilogue, GemmParams, Operands};
use toprt_kernels::pack::{self, NR};
use toprt_kernels::Kernels;

/// Query rows per score block.
pub(crate) const QUERY_BLOCK: usize = 64;

/// One head of one sequence.
pub(crate) struct HeadTask<'a> {
    /// Packed `[rows, 3d]` QKV of the whole batch.
    pub qkv: &'a [f32],
    pub d: usize,
    pub dh: usize,
    pub head: usize,
    /// First row and length of the sequence.
    pub offset: usize,
    pub len: usize,
    /// Query rows computed, from the first (`len`, or 1 when only the first token's
    /// context is read: the other rows' `Q` and context are then never touched).
    pub queries: usize,
    pub kernels: &'a Kernels,
    /// The operands of both products: `f32`, or bf16 pairs in bf16 sessions
    /// ([`head_bf16`]).
    pub operands: Operands,
    /// MPNet: the relative position bias added to the scores before the softmax.
    pub bias: Option<HeadBias<'a>>,
    /// Sliding-window layers (ModernBERT): keys outside the query's window get no
    /// probability.
    pub window: Option<HeadWindow<'a>>,
    /// DeBERTa: the disentangled attention terms' tables.
    pub rel: Option<HeadRel<'a>>,
}

/// A sliding window over original positions: query `i` sees key `j` only when
/// `|pos_i - pos_j| <= half` (`positions`: the segment's alive rows, ascending), so the
/// window is the same with pruning and packing.
#[derive(Clone, Copy)]
pub(crate) struct HeadWindow<'a> {
    pub half: usize,
    pub positions: &'a [u32],
}

impl HeadWindow<'_> {
    /// The keys (rows) that query rows `rows` see together: the union of their windows,
    /// one run of rows, as positions ascend.
    fn keys(&self, rows: Range<usize>) -> Range<usize> {
        let (first, last) = (self.positions[rows.start] as usize, self.positions[rows.end - 1] as usize);
        let lo = self.positions.partition_point(|&q| (q as usize) + self.half < first);
        lo..self.positions.partition_point(|&q| q as usize <= last + self.half)
    }

    /// Masks query row `i`'s scores outside its window (`-inf`, zero after the
    /// softmax); `scores` are those of keys `from..`.
    fn mask(&self, i: usize, scores: &mut [f32], from: usize) {
        let keys = self.keys(i..i + 1);
        let (lo, hi) = (keys.start.saturating_sub(from).min(scores.len()), (keys.end - from).min(scores.len()));
        scores[..lo].fill(f32::NEG_INFINITY);
        scores[hi..].fill(f32::NEG_INFINITY);
    }
}

/// The sliding window of a layer for the whole pass: its half-width and every alive
/// row's original position (`ws.positions`).
#[derive(Clone, Copy)]
pub(crate) struct Window<'a> {
    pub half: usize,
    pub positions: &'a [u32],
}

/// The relative position bias of one head: `row[center + pos_j - pos_i]` is added to
/// the score of query `i` and key `j`, by their original positions (`positions`, the
/// segment's alive rows), so it holds after pruning.
#[derive(Clone, Copy)]
pub(crate) struct HeadBias<'a> {
    pub row: &'a [f32],
    pub center: usize,
    pub positions: &'a [u32],
}

impl HeadBias<'_> {
    /// Adds the bias of query row `i` (of the segment) to its scores, those of keys
    /// `from..`.
    fn add(&self, i: usize, scores: &mut [f32], from: usize) {
        let base = self.center - self.positions[i] as usize;
        for (s, &pj) in scores.iter_mut().zip(&self.positions[from..]) {
            *s += self.row[base + pj as usize];
        }
    }
}

/// MPNet's bias for the whole pass: the expanded table and every alive row's original
/// position (`ws.positions`).
#[derive(Clone, Copy)]
pub(crate) struct Bias<'a> {
    pub table: &'a crate::weights::RelativeBias,
    pub positions: &'a [u32],
}

/// DeBERTa's disentangled attention for one layer of the whole pass: the tables and
/// every alive row's original position (`ws.positions`).
#[derive(Clone, Copy)]
pub(crate) struct Rel<'a> {
    pub tables: &'a RelTables,
    pub layer: usize,
    pub positions: &'a [u32],
}

/// Scaled-dot-product attention per (sequence, head) over the packed `qkv` rows, one
/// pool task per (sequence, head). A segment only attends to itself, so no mask exists
/// anywhere. With `colsum`, the column sums of the probabilities (the pruning
/// importance) are accumulated in the same pass: `colsum[h * stride_cs + row] = Σ_q p`.
/// With `Operands::Bf16` (a bf16 session on a bf16 GEMM) both products run on bf16 pairs.
/// With `first_query_only` only each sequence's first query row is computed (its `Q`
/// alone is read, its context row alone written; no column sums).
#[allow(clippy::too_many_arguments)]
pub(crate) fn run(
    k: &Kernels,
    pool: &Pool,
    operands: Operands,
    first_query_only: bool,
    qkv: &[f32],
    ctx: &mut [f32],
    segs: &[Segment],
    nh: usize,
    dh: usize,
    scratch: &mut [f32],
    stride: usize,
    colsum: Option<&mut [f32]>,
    stride_cs: usize,
    bias: Option<Bias>,
    window: Option<Window>,
    rel: Option<Rel>,
) {
    let d = nh * dh;
    assert!(!first_query_only || (colsum.is_none() && rel.is_none()), "first-query attention takes no scores or terms");
    let rel_rows = rel.map_or(0, |r| r.tables.rows());
    let ctx_ptr = SharedMut::new(ctx.as_mut_ptr());
    let ctx_len = ctx.len();
    let sc_ptr = SharedMut::new(scratch.as_mut_ptr());
    let sc_len = scratch.len();
    let (cs_ptr, cs_len) = match colsum {
        Some(c) => (Some(SharedMut::new(c.as_mut_ptr())), c.len()),
        None => (None, 0),
    };
    pool.run(segs.len() * nh, &|task, worker| {
        let (seg, h) = (segs[task / nh], task % nh);
        assert!(
            (worker + 1) * stride <= sc_len
                && scratch_len(seg.len, dh, rel_rows) <= stride
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
        let bias = bias.map(|b| {
            let (row, center) = b.table.head(h);
            HeadBias { row, center, positions: &b.positions[seg.offset..seg.offset + seg.len] }
        });
        let window =
            window.map(|w| HeadWindow { half: w.half, positions: &w.positions[seg.offset..seg.offset + seg.len] });
        let rel = rel.map(|r| r.tables.head(r.layer, h, &r.positions[seg.offset..seg.offset + seg.len]));
        let queries = if first_query_only { seg.len.min(1) } else { seg.len };
        let t = HeadTask {
            qkv,
            d,
            dh,
            head: h,
            offset: seg.offset,
            len: seg.len,
            queries,
            kernels: k,
            operands,
            bias,
            window,
            rel,
        };
        // SAFETY: rows of this segment, columns of this head of ctx, and its colsum region
        // belong to this task alone; bounds asserted above; the tier was checked at
        // session creation.
        unsafe { head(&t, ctx_ptr.get(), cs, scr) };
    });
}

/// Rounds a count of floats up to whole 64-byte lines.
fn lines(n: usize) -> usize {
    n.next_multiple_of(16)
}

/// `n` padded to the AMX `k` step (32 values) for the `P·V` product.
fn n_pad(n: usize) -> usize {
    n.next_multiple_of(32)
}

/// Words per row of the bf16 `Q` block: `dh / 2` pairs, padded to whole lines.
fn q_row_words(dh: usize) -> usize {
    lines(dh.div_ceil(2))
}

/// Scratch floats one worker needs for sequences up to `max_len`, for either path
/// (f32: packed `kᵀ`, packed `V`, one score block; bf16 adds the `Q` and `P` pairs),
/// every region on whole 64-byte lines, after the disentangled terms' blocks when
/// their tables have `rel_rows` rows (0: none).
pub(crate) fn scratch_len(max_len: usize, dh: usize, rel_rows: usize) -> usize {
    let rel = if rel_rows > 0 { RelTables::scratch_len(max_len, rel_rows) } else { 0 };
    rel + paths_len(max_len, dh)
}

/// [`scratch_len`] without the disentangled terms.
fn paths_len(max_len: usize, dh: usize) -> usize {
    let block = QUERY_BLOCK.min(max_len);
    let f32_path = lines(pack::packed_len(dh, max_len)) + lines(pack::packed_len(max_len, dh)) + lines(block * max_len);
    let np = n_pad(max_len);
    let bf16_path = lines(pack::packed_len_bf16(dh, max_len))
        + lines(pack::packed_len_bf16(np, dh))
        + lines(max_len * q_row_words(dh))
        + lines(block * max_len)
        + lines(block * np / 2);
    f32_path.max(bf16_path)
}

/// Computes one head of one sequence.
///
/// # Safety
/// `out` must point to a `[rows, d]` buffer in which rows `offset..offset+len`, columns
/// `head*dh..(head+1)*dh` belong to this call alone; `colsum`, when non-null, to `len`
/// floats owned by this call. `scratch` holds at least `scratch_len(len, dh, rows)`
/// floats (`rows` those of `t.rel`'s tables), and `qkv` covers the sequence's rows.
pub(crate) unsafe fn head(t: &HeadTask, out: *mut f32, colsum: *mut f32, scratch: &mut [f32]) {
    let (n, dh, d) = (t.len, t.dh, t.d);
    if n == 0 {
        return;
    }
    let (terms, scratch) = match &t.rel {
        Some(rel) => {
            let (buf, rest) = scratch.split_at_mut(RelTables::scratch_len(n, rel.rows()));
            let rows = &t.qkv[t.offset * 3 * d..];
            let (q, kx) = (&rows[t.head * dh..], &rows[d + t.head * dh..]);
            (Some(rel.terms(t.kernels, q, kx, 3 * d, buf)), rest)
        }
        None => (None, scratch),
    };
    // (The bf16 path keeps a few per-key rows on the stack: head sizes up to 512.)
    if t.operands == Operands::Bf16 && dh <= 512 {
        // SAFETY: forwarded contract.
        return unsafe { head_bf16(t, terms.as_ref(), out, colsum, scratch) };
    }
    // SAFETY: forwarded contract.
    unsafe { head_f32(t, terms.as_ref(), out, colsum, scratch) }
}

/// [`head`] on f32 operands, with the disentangled `terms` computed.
///
/// # Safety
/// As [`head`].
unsafe fn head_f32(t: &HeadTask, terms: Option<&Terms>, out: *mut f32, colsum: *mut f32, scratch: &mut [f32]) {
    let (n, dh, d) = (t.len, t.dh, t.d);
    let ld = 3 * d;
    let (kt, rest) = scratch.split_at_mut(lines(pack::packed_len(dh, n)));
    let (vp, rest) = rest.split_at_mut(lines(pack::packed_len(n, dh)));
    let (kt, vp) = (&mut kt[..pack::packed_len(dh, n)], &mut vp[..pack::packed_len(n, dh)]);
    let qc = t.head * dh;
    let kc = d + t.head * dh;
    let vc = 2 * d + t.head * dh;
    let rows = &t.qkv[t.offset * ld..(t.offset + n) * ld];

    // kᵀ: element (e, j) = K[j, e]; panel j / NR, column j % NR.
    t.kernels.pack_rows(&rows[kc..], ld, n, dh, kt);
    // V of keys `keys`: element (j, e) = V[keys.start + j, e]; panel e / NR.
    let pack_v = |vp: &mut [f32], keys: Range<usize>| {
        let kn = keys.len();
        for p in 0..pack::panels(dh) {
            let (e0, w) = (p * NR, NR.min(dh - p * NR));
            let panel = &mut vp[p * kn * NR..(p + 1) * kn * NR];
            for (j, row) in rows[keys.start * ld..keys.end * ld].chunks_exact(ld).enumerate() {
                panel[j * NR..j * NR + w].copy_from_slice(&row[vc + e0..vc + e0 + w]);
                panel[j * NR + w..(j + 1) * NR].fill(0.0);
            }
        }
    };
    // Without a window every block sees every key: V is packed once. With one, each
    // block computes only the keys its rows' windows cover (from a panel boundary of
    // kᵀ), and packs their V.
    if t.window.is_none() {
        pack_v(vp, 0..n);
    }
    let kt = &*kt;

    let mut cs = if colsum.is_null() {
        None
    } else {
        // SAFETY: `colsum` has `len` floats owned by this call (contract).
        let c = unsafe { std::slice::from_raw_parts_mut(colsum, n) };
        c.fill(0.0);
        Some(c)
    };
    let mut q0 = 0;
    while q0 < t.queries {
        let m = QUERY_BLOCK.min(t.queries - q0);
        let keys = match &t.window {
            Some(w) => {
                // The keys of the whole block even when fewer of its queries run: a row's
                // sums must not depend on how many queries are computed.
                let keys = w.keys(q0..q0 + QUERY_BLOCK.min(n - q0));
                let keys = keys.start / NR * NR..keys.end;
                pack_v(vp, keys.clone());
                keys
            }
            None => 0..n,
        };
        let (from, kn) = (keys.start, keys.len());
        let s = &mut rest[..m * kn];
        let q = &rows[q0 * ld + qc..];
        // (`from` is a multiple of NR: its panels of kᵀ start at from · dh.)
        let mut p = GemmParams::new(
            q,
            ld,
            m,
            dh,
            &kt[from * dh..from * dh + pack::packed_len(dh, kn)],
            kn,
            s,
            kn,
            Epilogue::None,
        )
        .expect("attention score shapes");
        t.kernels.gemm(&mut p);
        for (i, row) in s.chunks_exact_mut(kn).enumerate() {
            if let Some(b) = &t.bias {
                b.add(q0 + i, row, from);
            }
            if let Some(r) = terms {
                r.add(q0 + i, row, from);
            }
            if let Some(w) = &t.window {
                w.mask(q0 + i, row, from);
            }
            t.kernels.softmax(row);
            if let Some(c) = cs.as_deref_mut() {
                for (c, &p) in c[from..].iter_mut().zip(row.iter()) {
                    *c += p;
                }
            }
        }
        // SAFETY: rows offset+q0.., columns head*dh..+dh of `out` belong to this call
        // (contract); `(m-1)*d + dh` floats from there lie inside the `[rows, d]` buffer.
        let mut p = unsafe {
            GemmParams::with_raw_c(
                s,
                kn,
                m,
                kn,
                &vp[..pack::packed_len(kn, dh)],
                dh,
                out.add((t.offset + q0) * d + qc),
                d,
                Epilogue::None,
            )
        }
        .expect("attention output shapes");
        t.kernels.gemm(&mut p);
        q0 += m;
    }
}

/// [`head`] on bf16 operands, for sessions whose GEMMs run in bf16: `Q`, `K`, `V` and
/// the probabilities are rounded to bf16 pairs and both products run on the bf16 GEMM
/// (AMX where there is one); the scores, the softmax, its column sums and the output
/// stay f32. `P·V` runs over `n` padded to 32 (zero probabilities and zero `V` rows), so
/// its `k` is a whole number of AMX steps. The same per-row independence holds as for
/// the f32 path: a row's result depends only on its own query and the sequence's keys
/// and values.
///
/// # Safety
/// As [`head`].
unsafe fn head_bf16(t: &HeadTask, terms: Option<&Terms>, out: *mut f32, colsum: *mut f32, scratch: &mut [f32]) {
    let (n, dh, d) = (t.len, t.dh, t.d);
    let (ld, np, ldq) = (3 * d, n_pad(n), q_row_words(dh));
    let (pairs_dh, pairs_n) = (dh.div_ceil(2), np / 2);
    let words: &mut [u32] = bytemuck::cast_slice_mut(scratch);
    let (kt, rest) = words.split_at_mut(lines(pack::packed_len_bf16(dh, n)));
    let (vp, rest) = rest.split_at_mut(lines(pack::packed_len_bf16(np, dh)));
    let (qp, rest) = rest.split_at_mut(lines(n * ldq));
    let block = QUERY_BLOCK.min(n);
    let (sw, rest) = rest.split_at_mut(lines(block * n));
    let pp = &mut rest[..block * pairs_n];
    let kt = &mut kt[..pack::packed_len_bf16(dh, n)];
    let vp = &mut vp[..pack::packed_len_bf16(np, dh)];
    let (qc, kc, vc) = (t.head * dh, d + t.head * dh, 2 * d + t.head * dh);
    let rows = &t.qkv[t.offset * ld..(t.offset + n) * ld];

    // Q: [queries, dh] as pairs, one line-aligned row per query.
    for (i, row) in rows.chunks_exact(ld).take(t.queries).enumerate() {
        t.kernels.to_bf16_pairs(&row[qc..qc + dh], &mut qp[i * ldq..i * ldq + pairs_dh]);
    }
    // kᵀ: panel32x2 of the logical [dh, n]: key j is column j, its dh values in pairs.
    kt.fill(0);
    let mut kpairs = [0u32; 256];
    for (j, row) in rows.chunks_exact(ld).enumerate() {
        let kw = &mut kpairs[..pairs_dh];
        t.kernels.to_bf16_pairs(&row[kc..kc + dh], kw);
        let panel = &mut kt[(j / NR) * pairs_dh * NR..(j / NR + 1) * pairs_dh * NR];
        for (p, &w) in kw.iter().enumerate() {
            panel[p * NR + j % NR] = w;
        }
    }
    // V: panel32x2 of the logical [np, dh]: rows 2p and 2p + 1 of V share pair row p;
    // rows past n are zero.
    vp.fill(0);
    let mut inter = [0.0f32; 1024];
    let mut vw = [0u32; 512];
    for p in 0..n.div_ceil(2) {
        let (r0, r1) = (2 * p, 2 * p + 1);
        let v0 = &rows[r0 * ld + vc..r0 * ld + vc + dh];
        for e in 0..dh {
            inter[2 * e] = v0[e];
            inter[2 * e + 1] = if r1 < n { rows[r1 * ld + vc + e] } else { 0.0 };
        }
        t.kernels.to_bf16_pairs(&inter[..2 * dh], &mut vw[..dh]);
        for (e, &w) in vw[..dh].iter().enumerate() {
            vp[(e / NR) * pairs_n * NR + p * NR + e % NR] = w;
        }
    }
    let (kt, vp, qp) = (&*kt, &*vp, &*qp);

    let mut cs = if colsum.is_null() {
        None
    } else {
        // SAFETY: `colsum` has `len` floats owned by this call (contract).
        let c = unsafe { std::slice::from_raw_parts_mut(colsum, n) };
        c.fill(0.0);
        Some(c)
    };
    let s: &mut [f32] = bytemuck::cast_slice_mut(sw);
    let mut q0 = 0;
    while q0 < t.queries {
        let m = QUERY_BLOCK.min(t.queries - q0);
        let sb = &mut s[..m * n];
        let mut p = GemmParams::new_bf16(&qp[q0 * ldq..(q0 + m) * ldq], ldq, m, dh, kt, n, sb, n, Epilogue::None)
            .expect("bf16 attention score shapes");
        t.kernels.gemm(&mut p);
        for (i, row) in sb.chunks_exact_mut(n).enumerate() {
            if let Some(b) = &t.bias {
                b.add(q0 + i, row, 0);
            }
            if let Some(r) = terms {
                r.add(q0 + i, row, 0);
            }
            if let Some(w) = &t.window {
                w.mask(q0 + i, row, 0);
            }
            t.kernels.softmax(row);
            if let Some(c) = cs.as_deref_mut() {
                for (c, &p) in c.iter_mut().zip(row.iter()) {
                    *c += p;
                }
            }
            let pr = &mut pp[i * pairs_n..(i + 1) * pairs_n];
            t.kernels.to_bf16_pairs(row, pr);
            pr[n.div_ceil(2)..].fill(0);
        }
        // SAFETY: as in `head`: rows offset+q0.., columns head*dh..+dh of `out` belong to
        // this call.
        let mut p = unsafe {
            GemmParams::with_raw_c_bf16(
                &pp[..m * pairs_n],
                pairs_n,
                m,
                np,
                vp,
                dh,
                out.add((t.offset + q0) * d + qc),
                d,
                Epilogue::None,
            )
        }
        .expect("bf16 attention output shapes");
        t.kernels.gemm(&mut p);
        q0 += m;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use toprt_kernels::{pack, Cpu, Isa, Kernels};

    /// xorshift values in [-1, 1), deterministic per seed.
    fn rng(mut seed: u64) -> impl FnMut() -> f32 {
        move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
        }
    }

    /// softmax(q kᵀ) v and the probability column sums in f64, straight from the
    /// definition.
    fn reference(qkv: &[f32], d: usize, dh: usize, h: usize, off: usize, n: usize) -> (Vec<f64>, Vec<f64>) {
        let at = |r: usize, c: usize| f64::from(qkv[(off + r) * 3 * d + c]);
        let (mut out, mut cs) = (vec![0.0; n * dh], vec![0.0; n]);
        for i in 0..n {
            let s: Vec<f64> =
                (0..n).map(|j| (0..dh).map(|e| at(i, h * dh + e) * at(j, d + h * dh + e)).sum()).collect();
            let mx = s.iter().cloned().fold(f64::MIN, f64::max);
            let z: f64 = s.iter().map(|x| (x - mx).exp()).sum();
            for j in 0..n {
                let p = (s[j] - mx).exp() / z;
                cs[j] += p;
                for e in 0..dh {
                    out[i * dh + e] += p * at(j, 2 * d + h * dh + e);
                }
            }
        }
        (out, cs)
    }

    /// Head `t` computed for its first query alone against `full`, the output of the
    /// whole head: that row bit for bit, read from `Q`'s first row only (the other
    /// queries' `Q` are NaN), nothing else written.
    fn check_first_query(t: HeadTask, full: &[f32], scratch: &mut [f32], what: &str) {
        let (d, dh, h, off) = (t.d, t.dh, t.head, t.offset);
        let mut q_first = t.qkv.to_vec();
        for r in off + 1..off + t.len {
            q_first[r * 3 * d + h * dh..r * 3 * d + (h + 1) * dh].fill(f32::NAN);
        }
        let mut first = vec![f32::NAN; full.len()];
        let t = HeadTask { qkv: &q_first, queries: 1, ..t };
        // SAFETY: `first` is as large as the caller's `[rows, d]` output; no column
        // sums; the scratch was sized for the head.
        unsafe { head(&t, first.as_mut_ptr(), std::ptr::null_mut(), scratch) };
        for (c, x) in first.iter().enumerate() {
            let (r, e) = (c / d, c % d);
            if r == off && e / dh == h {
                assert_eq!(x.to_bits(), full[c].to_bits(), "{what}: first query ({e})");
            } else {
                assert!(x.is_nan(), "{what}: first-query head wrote ({r}, {e})");
            }
        }
    }

    #[test]
    fn every_tier_matches_the_f64_definition() {
        let mut rnd = rng(0x1234_5678);
        for isa in Isa::ALL {
            let Ok(k) = Kernels::for_isa(isa) else { continue };
            for &(nh, dh) in &[(2usize, 8usize), (2, 64), (1, 40)] {
                let d = nh * dh;
                for &n in &[1usize, 2, 31, 32, 33, 63, 64, 65, 130] {
                    let off = 3; // the sequence sits after another one in the batch
                    let rows = off + n + 2;
                    let qkv: Vec<f32> = (0..rows * 3 * d).map(|_| rnd()).collect();
                    let mut out = vec![f32::NAN; rows * d];
                    let mut cs = vec![f32::NAN; n];
                    let mut scratch = vec![f32::NAN; scratch_len(n, dh, 0)];
                    for h in 0..nh {
                        let t = HeadTask {
                            qkv: &qkv,
                            d,
                            dh,
                            head: h,
                            offset: off,
                            len: n,
                            queries: n,
                            kernels: &k,
                            operands: Operands::F32,
                            bias: None,
                            window: None,
                            rel: None,
                        };
                        // SAFETY: out is [rows, d]; cs has n floats; scratch is sized.
                        unsafe { head(&t, out.as_mut_ptr(), cs.as_mut_ptr(), &mut scratch) };
                        let (want, want_cs) = reference(&qkv, d, dh, h, off, n);
                        for i in 0..n {
                            for e in 0..dh {
                                let got = f64::from(out[(off + i) * d + h * dh + e]);
                                let w = want[i * dh + e];
                                assert!((got - w).abs() <= 1e-5, "{isa} n {n} dh {dh} h {h} ({i},{e}): {got} vs {w}");
                            }
                        }
                        for j in 0..n {
                            assert!((f64::from(cs[j]) - want_cs[j]).abs() <= 1e-4, "{isa} n {n} colsum {j}");
                        }
                        check_first_query(t, &out, &mut scratch, &format!("{isa} n {n}"));
                    }
                    // Rows of the other sequences are never written.
                    assert!(out[..off * d].iter().chain(&out[(off + n) * d..]).all(|x| x.is_nan()));
                }
            }
        }
    }

    /// The bf16 products against the definition on the same bf16-rounded `Q`, `K`, `V`
    /// and probabilities, in f64. The f32 softmax may round a probability to the other
    /// side of a bf16 tie than the f64 one, which moves an output by at most one bf16
    /// ulp of that probability times `|v|`: the bound is `2^-8 · max|v|`, plus f32
    /// accumulation. The column sums come from the f32 probabilities (1e-4 as above).
    #[test]
    fn bf16_products_match_the_rounded_definition() {
        // Each native bf16 GEMM of this CPU: `vdpbf16ps`, and AMX where there is one.
        let cpu = Cpu::detected();
        let mut kernels: Vec<(Kernels, &str)> = Vec::new();
        if let Ok(k) = Kernels::for_cpu(Isa::Avx512, &cpu.without_amx()) {
            if k.has_gemm_bf16() {
                kernels.push((k, "avx512bf16"));
            }
        }
        if cpu.has_amx_bf16() {
            kernels.push((Kernels::for_isa(Isa::Avx512).unwrap(), "amx"));
        }
        if kernels.is_empty() {
            println!("skipped: no bf16 GEMM on this CPU");
            return;
        }
        let round = |x: f32| pack::f32_from_bf16(pack::bf16_from_f32(x));
        let mut rnd = rng(0x9876_5432);
        for (k, name) in kernels {
            for &(nh, dh) in &[(2usize, 8usize), (2, 64), (1, 40), (2, 32)] {
                let d = nh * dh;
                for &n in &[1usize, 2, 31, 32, 33, 63, 64, 65, 130] {
                    let off = 3;
                    let rows = off + n + 2;
                    let qkv: Vec<f32> = (0..rows * 3 * d).map(|_| rnd()).collect();
                    let rounded: Vec<f32> = qkv.iter().map(|&x| round(x)).collect();
                    let mut out = vec![f32::NAN; rows * d];
                    let mut cs = vec![f32::NAN; n];
                    let mut scratch = vec![f32::NAN; scratch_len(n, dh, 0)];
                    for h in 0..nh {
                        let t = HeadTask {
                            qkv: &qkv,
                            d,
                            dh,
                            head: h,
                            offset: off,
                            len: n,
                            queries: n,
                            kernels: &k,
                            operands: Operands::Bf16,
                            bias: None,
                            window: None,
                            rel: None,
                        };
                        // SAFETY: out is [rows, d]; cs has n floats; scratch is sized.
                        unsafe { head(&t, out.as_mut_ptr(), cs.as_mut_ptr(), &mut scratch) };
                        // The definition on rounded operands, with rounded probabilities.
                        let at = |r: usize, c: usize| f64::from(rounded[(off + r) * 3 * d + c]);
                        let vmax = (0..n)
                            .flat_map(|j| (0..dh).map(move |e| (j, e)))
                            .map(|(j, e)| at(j, 2 * d + h * dh + e).abs())
                            .fold(0.0, f64::max);
                        let (_, want_cs) = reference(&rounded, d, dh, h, off, n);
                        for i in 0..n {
                            let s: Vec<f64> = (0..n)
                                .map(|j| (0..dh).map(|e| at(i, h * dh + e) * at(j, d + h * dh + e)).sum())
                                .collect();
                            let mx = s.iter().cloned().fold(f64::MIN, f64::max);
                            let z: f64 = s.iter().map(|x| (x - mx).exp()).sum();
                            for e in 0..dh {
                                let w: f64 = (0..n)
                                    .map(|j| {
                                        f64::from(round(((s[j] - mx).exp() / z) as f32)) * at(j, 2 * d + h * dh + e)
                                    })
                                    .sum();
                                let got = f64::from(out[(off + i) * d + h * dh + e]);
                                let bound = vmax / 256.0 + 1e-5;
                                assert!((got - w).abs() <= bound, "{name} n {n} dh {dh} h {h} ({i},{e}): {got} vs {w}");
                            }
                        }
                        for j in 0..n {
                            assert!((f64::from(cs[j]) - want_cs[j]).abs() <= 1e-4, "{name} n {n} colsum {j}");
                        }
                        check_first_query(t, &out, &mut scratch, &format!("{name} n {n}"));
                    }
                    assert!(
                        out[..off * d].iter().chain(&out[(off + n) * d..]).all(|x| x.is_nan()),
                        "{name}: other rows written"
                    );
                }
            }
        }
    }
}
