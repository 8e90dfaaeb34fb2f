//! The one generic GEMM microkernel body: an `R × (NV·LANES)` register tile over one `k`
//! block, then the fused epilogue. Every tier, every row count and both operand kinds
//! are instantiations of [`tile`]; see the module docs of [`crate::gemm`] for the
//! contract and the accumulation order this body implements.
//!
//! The multiply-accumulate of one `k` step is a parameter ([`Mac`]): an f32 FMA
//! ([`Fma`]) for `f32` operands, or `vdpbf16ps` for bf16 pairs, where one step is a
//! pair of `k` rows (`gemm::avx512`). The driver does not know the difference: a step
//! reads one 32-bit word per `A` row and a 128-byte row of the `B` panel either way.
//!
//! The epilogue (bias, GELU, residual) runs inside the tile call, right after the `k`
//! loop, on the tile it has just stored (still in L1): one extra L1 store + load per
//! vector, under 0.5 % of the tile's work. Applying it to the accumulator registers
//! directly was tried: LLVM then hoists the ~15 GELU constants above the `k` loop and,
//! in the 20-accumulator AVX-512 tile, spills accumulators inside the hot loop (seen in
//! the generated assembly).
//!
//! The `k` loop ([`steps`]) runs inline or, for the 10-row AVX-512 tiles, in a function
//! of its own ([`StepsFn`]), where LLVM keeps every `A` row pointer in a register.

use super::driver::{self, Dequant, Finish, TileJob};
use crate::pack::NR;
use crate::simd::{self, load_n, store_n, Simd};

/// The multiply-accumulate of one `k` step: `acc + a·b`, with `a` the broadcast word of
/// one `A` row and `b` a vector of the `B` panel row.
pub(crate) trait Mac<S: Simd> {
    /// # Safety
    /// The CPU supports `S` and whatever instruction the implementation uses.
    unsafe fn mac(a: S::V, b: S::V, acc: S::V) -> S::V;
}

/// `f32` operands: one fused multiply-add per lane.
pub(crate) struct Fma;

impl<S: Simd> Mac<S> for Fma {
    #[inline(always)]
    unsafe fn mac(a: S::V, b: S::V, acc: S::V) -> S::V {
        // SAFETY: forwarded contract.
        unsafe { S::fma(a, b, acc) }
    }
}

/// What a tile's `k` loop reads: the `A` row pointers (at the block's first `k`), the
/// `B` block (row stride `NR`), its steps, and the tile's share of the next `B` block to
/// prefetch (`pf_lines` lines from `pf`, into L1 or L2). The row pointers come in by
/// value: a loop that derived them from the [`TileJob`] itself (`a + r·lda`) spilled
/// again (45 stack accesses per 80 FMAs).
pub(crate) struct Steps<const R: usize> {
    pub ap: [*const f32; R],
    pub b: *const f32,
    pub kc: usize,
    pub pf: *const f32,
    pub pf_lines: usize,
    /// Into L1 rather than L2.
    pub pf_l1: bool,
}

/// A tier's `k` loop for `R` rows: [`steps`] instantiated in a function of its own
/// (`#[inline(never)]`, the tier's target features), the accumulators passed in and out.
///
/// Why apart from the tile: compiled inside [`tile`], LLVM allocated registers for the
/// loop together with the epilogue, the int8 dequantisation and the tile's bookkeeping,
/// and in the 20-accumulator AVX-512 tiles it kept `A` row pointers on the stack and
/// shuffled accumulators through spare registers inside the hot loop (seen in the
/// generated assembly: 13-91 stack accesses per 80 FMAs; 0-1 alone). On a Zen 5 core
/// that took `avx512_sgemm_10x32` from 82-90 % of the FMA peak to 91-95 % on the BERT
/// shapes (`gemm_table`, hot and `--cold`). The price is a round trip of the
/// accumulators through the stack and a call per tile: tiles with fewer registers in
/// use (the 6 × 16 AVX2 tiles, the 8-row int8 tile) were clean inline already and lost
/// 2-5 % to that price on short `k` (the int8 tile), so they pass `None` and keep the
/// loop inline.
///
/// # Safety
/// As [`steps`].
pub(crate) type StepsFn<V, const R: usize, const NV: usize> = unsafe fn(&mut [[V; NV]; R], &Steps<R>);

/// Defines a tier's [`StepsFn`]: `$name::<R>` runs [`steps`] for `$simd` and `$mac`
/// with `$features` enabled, never inlined.
macro_rules! steps_fn {
    ($name:ident, $simd:ty, $mac:ty, $nv:expr, $features:literal) => {
        /// The tile's `k` loop, compiled apart ([`$crate::gemm::microkernel::StepsFn`]).
        ///
        /// # Safety
        /// As [`$crate::gemm::microkernel::steps`]; the CPU has the features enabled here.
        #[target_feature(enable = $features)]
        #[inline(never)]
        unsafe fn $name<const R: usize>(
            acc: &mut [[<$simd as $crate::simd::Simd>::V; $nv]; R],
            s: &$crate::gemm::microkernel::Steps<R>,
        ) {
            // SAFETY: forwarded contract; the features are enabled on this function.
            unsafe { $crate::gemm::microkernel::steps::<$simd, $mac, R, $nv>(acc, s) }
        }
    };
}
pub(crate) use steps_fn;

/// The `k` loop of a tile: per `k`, `NV` loads of `B`, `R` broadcasts of `A`, `R·NV`
/// multiply-accumulates; no branches. Unrolled by 4 so the pointer updates are
/// amortised; `acc` is copied into a local array only ever indexed by constants, so it
/// lives in registers.
///
/// # Safety
/// The CPU supports `S` and `M`; `s.ap[r]` covers `s.kc` words, `s.b` covers `s.kc`
/// rows of `NV·LANES` floats (stride `NR`). Prefetches never fault.
#[inline(always)]
pub(crate) unsafe fn steps<S: Simd, M: Mac<S>, const R: usize, const NV: usize>(
    acc_io: &mut [[S::V; NV]; R],
    s: &Steps<R>,
) {
    let mut acc = *acc_io;
    // The next B block's lines go out `PF` at a time, one batch per unrolled step (1 a
    // step unless the tile's share has more lines than the tile has steps), so they
    // trickle out instead of queueing up in front of the tile's own loads. `PF` is a
    // constant of the loop: a count read at run time made LLVM wrap the prefetches in a
    // loop of their own that shuffled the row pointers through registers every step.
    let per = s.pf_lines.div_ceil((s.kc / 4).max(1));
    // SAFETY (all arms): forwarded contract.
    unsafe {
        match (per, s.pf_l1) {
            (0, _) => steps_pf::<S, M, R, NV, 0, false>(&mut acc, s),
            (1, false) => steps_pf::<S, M, R, NV, 1, false>(&mut acc, s),
            (2, false) => steps_pf::<S, M, R, NV, 2, false>(&mut acc, s),
            (3 | 4, false) => steps_pf::<S, M, R, NV, 4, false>(&mut acc, s),
            (_, false) => steps_pf::<S, M, R, NV, 8, false>(&mut acc, s),
            (1, true) => steps_pf::<S, M, R, NV, 1, true>(&mut acc, s),
            (2, true) => steps_pf::<S, M, R, NV, 2, true>(&mut acc, s),
            (3 | 4, true) => steps_pf::<S, M, R, NV, 4, true>(&mut acc, s),
            (_, true) => steps_pf::<S, M, R, NV, 8, true>(&mut acc, s),
        }
    }
    *acc_io = acc;
}

/// [`steps`] with `PF` prefetches per unrolled step while the tile's share lasts; what
/// is left of it (fewer than `PF` lines, or lines the steps ran out for) goes out after
/// the last step.
///
/// # Safety
/// As [`steps`].
#[inline(always)]
unsafe fn steps_pf<S: Simd, M: Mac<S>, const R: usize, const NV: usize, const PF: usize, const L1: bool>(
    acc: &mut [[S::V; NV]; R],
    s: &Steps<R>,
) {
    let ap = s.ap;
    let mut b = s.b;
    let mut kk = 0;
    let (mut pf, mut left) = (s.pf, s.pf_lines);
    // SAFETY (block): forwarded contract; every `k` and row read is inside the block.
    unsafe {
        if PF > 0 {
            while left >= PF && kk + 4 <= s.kc {
                prefetch_lines::<L1>(&mut pf, PF);
                left -= PF;
                four_steps::<S, M, R, NV>(acc, &ap, b, kk);
                b = b.add(4 * NR);
                kk += 4;
            }
        }
        while kk + 4 <= s.kc {
            four_steps::<S, M, R, NV>(acc, &ap, b, kk);
            b = b.add(4 * NR);
            kk += 4;
        }
        while kk < s.kc {
            step::<S, M, R, NV>(acc, &ap, b, kk);
            b = b.add(NR);
            kk += 1;
        }
    }
    prefetch_lines::<L1>(&mut pf, left);
}

/// Steps `kk .. kk + 4` of the tile, `B` at step `kk`: the unrolled body of [`steps`].
///
/// # Safety
/// As [`step`], for each of the four steps.
#[inline(always)]
unsafe fn four_steps<S: Simd, M: Mac<S>, const R: usize, const NV: usize>(
    acc: &mut [[S::V; NV]; R],
    ap: &[*const f32; R],
    b: *const f32,
    kk: usize,
) {
    for u in 0..4 {
        // SAFETY: forwarded contract.
        unsafe { step::<S, M, R, NV>(acc, ap, b.add(u * NR), kk + u) };
    }
}

/// Lanes of vector `j` that hold valid columns: all of them in a full tile, else what
/// is left of `cols` (possibly 0).
#[inline(always)]
fn lanes<S: Simd, const FULL: bool>(cols: usize, j: usize) -> usize {
    if FULL {
        S::LANES
    } else {
        cols.saturating_sub(j * S::LANES).min(S::LANES)
    }
}

/// Computes one register tile: `R` rows × `NV` vectors of `S::LANES` columns.
///
/// # Safety
/// The CPU supports `S`; the job's pointers cover what it names: `A` rows `0..R` ×
/// `0..kc` (stride `lda`), `B` rows `0..kc` × `NV·LANES` columns (stride `NR`), `C` and
/// the epilogue operands `R` rows × `cols` columns. Only those `C` elements are written.
/// `k_loop`: the tier's [`StepsFn`] for `R` rows, or `None` to run [`steps`] inline.
#[inline(always)]
pub(crate) unsafe fn tile<S: Simd, M: Mac<S>, const R: usize, const NV: usize>(
    t: &TileJob,
    k_loop: Option<StepsFn<S::V, R, NV>>,
) {
    debug_assert!(t.cols >= 1 && t.cols <= NV * S::LANES);
    if t.cols == NV * S::LANES {
        tile_body::<S, M, R, NV, true>(t, k_loop)
    } else {
        tile_body::<S, M, R, NV, false>(t, k_loop)
    }
}

/// [`tile`] for a tile whose columns are all valid (`FULL`) or not.
///
/// # Safety
/// As [`tile`].
#[inline(always)]
unsafe fn tile_body<S: Simd, M: Mac<S>, const R: usize, const NV: usize, const FULL: bool>(
    t: &TileJob,
    k_loop: Option<StepsFn<S::V, R, NV>>,
) {
    let l = S::LANES;
    let mut acc = [[S::zero(); NV]; R];
    if !t.first {
        for (r, acc_r) in acc.iter_mut().enumerate() {
            for (j, acc_rj) in acc_r.iter_mut().enumerate() {
                let n = lanes::<S, FULL>(t.cols, j);
                if n > 0 {
                    *acc_rj = load_n::<S>(t.c.add(r * t.ldc + j * l), n);
                }
            }
        }
    }

    let ap: [*const f32; R] = std::array::from_fn(|r| t.a.add(r * t.lda));
    let job = Steps { ap, b: t.b, kc: t.kc, pf: t.pf, pf_lines: t.pf_lines, pf_l1: t.pf_l1 };
    match k_loop {
        Some(f) => f(&mut acc, &job),
        None => steps::<S, M, R, NV>(&mut acc, &job),
    }

    // int8, last block: the exact i32 sums become f32 (see `Dequant`), one column
    // vector at a time so its scale and correction are loaded once.
    if let Some(dq) = t.dequant {
        for j in 0..NV {
            let n = lanes::<S, FULL>(t.cols, j);
            if n > 0 {
                let (col, corr) = dequant_columns::<S>(&dq, j * l, n);
                for (r, acc_r) in acc.iter_mut().enumerate() {
                    acc_r[j] = dequant::<S>(acc_r[j], *dq.row.add(r), col, corr, dq.zero_point);
                }
            }
        }
        // Outlier channels: `oc` f32 steps on the dequantised sums, as an f32 tile
        // would do them (the panel is padded to NR columns, so full loads stay inside).
        if dq.oc > 0 {
            let ap: [*const f32; R] = std::array::from_fn(|r| dq.ox.add(r * dq.old));
            let mut w = dq.ow;
            for kk in 0..dq.oc {
                step::<S, Fma, R, NV>(&mut acc, &ap, w, kk);
                w = w.add(NR);
            }
        }
    }

    // Park the tile in C (full-precision sums), then apply the epilogue from there:
    // the epilogue neither competes with `acc` for registers nor forces it to memory.
    for (r, acc_r) in acc.iter().enumerate() {
        for (j, &x) in acc_r.iter().enumerate() {
            let n = lanes::<S, FULL>(t.cols, j);
            if n > 0 {
                store_n::<S>(t.c.add(r * t.ldc + j * l), n, x);
            }
        }
    }
    match t.finish {
        Finish::Partial | Finish::Store => {}
        Finish::Bias(bias) => epilogue::<S, R, NV, FULL>(
            t,
            bias,
            #[inline(always)]
            |x, _, _| x,
        ),
        Finish::BiasGelu(bias) => epilogue::<S, R, NV, FULL>(
            t,
            bias,
            #[inline(always)]
            |x, _, _| simd::gelu::<S>(x),
        ),
        Finish::BiasResidualGelu { bias, res, ldr } => epilogue::<S, R, NV, FULL>(
            t,
            bias,
            #[inline(always)]
            |x, off, n| simd::gelu::<S>(S::add(x, load_n::<S>(res.add(off.0 * ldr + off.1), n))),
        ),
        Finish::BiasResidual { bias, res, ldr } => epilogue::<S, R, NV, FULL>(
            t,
            bias,
            #[inline(always)]
            |x, off, n| S::add(x, load_n::<S>(res.add(off.0 * ldr + off.1), n)),
        ),
    }
}

/// The column scales and the zero-point correction `128 · col_sum` (as `i32` bits) of
/// the `n` columns from `col` of an int8 tile.
///
/// # Safety
/// `n` floats readable at `dq.col + col` and `dq.col_sum + col`; see [`Simd`].
#[inline(always)]
unsafe fn dequant_columns<S: Simd>(dq: &Dequant, col: usize, n: usize) -> (S::V, S::V) {
    let scale = load_n::<S>(dq.col.add(col), n);
    // `128 · col_sum` is exact in f32 (a power-of-two multiple of an exact integer).
    let corr = S::f32_to_i32(S::mul(load_n::<S>(dq.col_sum.add(col), n), S::splat(128.0)));
    (scale, corr)
}

/// `f32(sum - corr?) · (row_scale · col_scale)`: the dequantisation every int8 tier
/// and the scalar twin compute, in this order.
///
/// # Safety
/// See [`Simd`].
#[inline(always)]
unsafe fn dequant<S: Simd>(sum: S::V, row_scale: f32, col_scale: S::V, corr: S::V, zero_point: bool) -> S::V {
    let exact = if zero_point { S::sub_i32(sum, corr) } else { sum };
    S::mul(S::i32_to_f32(exact), S::mul(S::splat(row_scale), col_scale))
}

/// Turns a block of `rows` × `cols` (at most `NV·LANES`) of `C` holding the `i32` sums
/// of an int8 call into `f32` ([`Dequant`]): the step before [`finish_rows`] for kernels
/// whose tiles are not register tiles of this module (AMX).
///
/// # Safety
/// The CPU supports `S`; `c` (row stride `ldc`) covers `rows × cols`, and `dq`'s
/// pointers `rows` row scales and `cols` column values.
#[inline(always)]
pub(crate) unsafe fn dequant_rows<S: Simd, const NV: usize>(
    c: *mut f32,
    ldc: usize,
    rows: usize,
    cols: usize,
    dq: &Dequant,
) {
    let l = S::LANES;
    for j in 0..NV {
        let n = lanes::<S, false>(cols, j);
        if n == 0 {
            continue;
        }
        // SAFETY (block): columns j·l .. j·l + n and rows < rows lie inside the block.
        unsafe {
            let (col, corr) = dequant_columns::<S>(dq, j * l, n);
            for r in 0..rows {
                let p = c.add(r * ldc + j * l);
                let mut v = dequant::<S>(load_n::<S>(p, n), *dq.row.add(r), col, corr, dq.zero_point);
                // Outlier channels, in the order of the register tiles (`tile_body`).
                for kk in 0..dq.oc {
                    let x = S::splat(*dq.ox.add(r * dq.old + kk));
                    v = S::fma(x, S::load(dq.ow.add(kk * NR + j * l)), v);
                }
                store_n::<S>(p, n, v);
            }
        }
    }
}

/// One `k` step of the tile: `NV` loads of `B`, `R` broadcasts of `A`, `R·NV`
/// multiply-accumulates. A function, not a closure: a closure is not always inlined into
/// the `#[target_feature]` entry, and outside it every intrinsic becomes a call (seen:
/// the VNNI tile at 1% of its peak).
///
/// # Safety
/// As [`tile`]: the CPU supports `S` and `M`; `b` covers `NV·LANES` floats, each `ap[r]`
/// the word `kk`.
#[inline(always)]
unsafe fn step<S: Simd, M: Mac<S>, const R: usize, const NV: usize>(
    acc: &mut [[S::V; NV]; R],
    ap: &[*const f32; R],
    b: *const f32,
    kk: usize,
) {
    // SAFETY (block): forwarded contract.
    unsafe {
        let bv: [S::V; NV] = std::array::from_fn(|j| S::load(b.add(j * S::LANES)));
        for (acc_r, a_r) in acc.iter_mut().zip(ap) {
            let ar = S::splat(*a_r.add(kk));
            for (acc_rj, &bj) in acc_r.iter_mut().zip(&bv) {
                *acc_rj = M::mac(ar, bj, *acc_rj);
            }
        }
    }
}

/// Prefetches `n` lines from `*pf` into L1 (`L1`) or L2 and moves `*pf` past them.
#[inline(always)]
fn prefetch_lines<const L1: bool>(pf: &mut *const f32, n: usize) {
    for _ in 0..n {
        driver::prefetch::<L1>(*pf);
        *pf = pf.wrapping_add(16);
    }
}

/// Rewrites every valid vector of the tile in `C` as `f(c + bias, (row, col), lanes)`.
///
/// # Safety
/// As [`tile`]; `bias` covers the tile's columns, and `f` reads only what the job's
/// epilogue operands cover.
#[inline(always)]
unsafe fn epilogue<S: Simd, const R: usize, const NV: usize, const FULL: bool>(
    t: &TileJob,
    bias: *const f32,
    f: impl Fn(S::V, (usize, usize), usize) -> S::V,
) {
    let l = S::LANES;
    for j in 0..NV {
        let n = lanes::<S, FULL>(t.cols, j);
        if n == 0 {
            continue;
        }
        let bv = load_n::<S>(bias.add(j * l), n);
        for r in 0..R {
            let p = t.c.add(r * t.ldc + j * l);
            store_n::<S>(p, n, f(S::add(load_n::<S>(p, n), bv), (r, j * l), n));
        }
    }
}

/// Applies `finish` to a block of `rows` × `cols` (at most `NV·LANES`) of `C` already
/// holding the raw sums: the epilogue of kernels whose tiles are not register tiles of
/// this module (AMX stores its tiles to `C` first). Same arithmetic as [`tile`]'s.
///
/// # Safety
/// The CPU supports `S`; `c` (row stride `ldc`) and the operands of `finish` cover
/// `rows × cols`.
#[inline(always)]
pub(crate) unsafe fn finish_rows<S: Simd, const NV: usize>(
    c: *mut f32,
    ldc: usize,
    rows: usize,
    cols: usize,
    finish: Finish,
) {
    // SAFETY (all arms): forwarded contract.
    unsafe {
        match finish {
            Finish::Partial | Finish::Store => {}
            Finish::Bias(bias) => rows_epilogue::<S, NV>(
                c,
                ldc,
                rows,
                cols,
                bias,
                #[inline(always)]
                |x, _, _, _| x,
            ),
            Finish::BiasGelu(bias) => rows_epilogue::<S, NV>(
                c,
                ldc,
                rows,
                cols,
                bias,
                #[inline(always)]
                |x, _, _, _| simd::gelu::<S>(x),
            ),
            Finish::BiasResidualGelu { bias, res, ldr } => rows_epilogue::<S, NV>(
                c,
                ldc,
                rows,
                cols,
                bias,
                #[inline(always)]
                |x, r, col, n| simd::gelu::<S>(S::add(x, load_n::<S>(res.add(r * ldr + col), n))),
            ),
            Finish::BiasResidual { bias, res, ldr } => rows_epilogue::<S, NV>(
                c,
                ldc,
                rows,
                cols,
                bias,
                #[inline(always)]
                |x, r, col, n| S::add(x, load_n::<S>(res.add(r * ldr + col), n)),
            ),
        }
    }
}

/// Rewrites every valid vector of the block as `f(c + bias, row, col, lanes)`.
///
/// # Safety
/// As [`finish_rows`]; `bias` covers the block's columns.
#[inline(always)]
unsafe fn rows_epilogue<S: Simd, const NV: usize>(
    c: *mut f32,
    ldc: usize,
    rows: usize,
    cols: usize,
    bias: *const f32,
    f: impl Fn(S::V, usize, usize, usize) -> S::V,
) {
    let l = S::LANES;
    for j in 0..NV {
        let n = lanes::<S, false>(cols, j);
        if n == 0 {
            continue;
        }
        // SAFETY: columns j·l .. j·l + n lie inside the block (contract).
        let bv = unsafe { load_n::<S>(bias.add(j * l), n) };
        for r in 0..rows {
            // SAFETY: row r < rows, inside the block.
            unsafe {
                let p = c.add(r * ldc + j * l);
                store_n::<S>(p, n, f(S::add(load_n::<S>(p, n), bv), r, j * l, n));
            }
        }
    }
}
