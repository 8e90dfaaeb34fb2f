//! The one generic GEMM microkernel body: an `R × (NV·LANES)` register tile over one `k`
//! block, then the fused epilogue. Every tier and every row count is an instantiation
//! of [`tile`]; see the module docs of [`crate::gemm`] for the contract and the
//! accumulation order this body implements.
//!
//! The epilogue (bias, GELU, residual) runs inside the tile call, right after the `k`
//! loop, on the tile it has just stored (still in L1): one extra L1 store + load per
//! vector, under 0.5 % of the tile's work. Applying it to the accumulator registers
//! directly was tried: LLVM then hoists the ~15 GELU constants above the `k` loop and,
//! in the 20-accumulator AVX-512 tile, spills accumulators inside the hot loop (seen in
//! the generated assembly).

use super::{Finish, TileJob};
use crate::pack::NR;
use crate::simd::{self, load_n, store_n, Simd};

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
#[inline(always)]
pub(crate) unsafe fn tile<S: Simd, const R: usize, const NV: usize>(t: &TileJob) {
    debug_assert!(t.cols >= 1 && t.cols <= NV * S::LANES);
    if t.cols == NV * S::LANES {
        tile_body::<S, R, NV, true>(t)
    } else {
        tile_body::<S, R, NV, false>(t)
    }
}

#[inline(always)]
unsafe fn tile_body<S: Simd, const R: usize, const NV: usize, const FULL: bool>(t: &TileJob) {
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

    // The hot loop: per k, NV loads of B, R broadcasts of A, R·NV FMAs; no branches.
    // Unrolled by 4 so the pointer updates are amortised; `acc` is only ever indexed
    // by constants, so it lives in registers.
    let ap: [*const f32; R] = std::array::from_fn(|r| t.a.add(r * t.lda));
    let mut b = t.b;
    let mut kk = 0;
    let step = |acc: &mut [[S::V; NV]; R], b: *const f32, kk: usize| {
        let bv: [S::V; NV] = std::array::from_fn(|j| S::load(b.add(j * l)));
        for (acc_r, a_r) in acc.iter_mut().zip(&ap) {
            let ar = S::splat(*a_r.add(kk));
            for (acc_rj, &bj) in acc_r.iter_mut().zip(&bv) {
                *acc_rj = S::fma(ar, bj, *acc_rj);
            }
        }
    };
    // The next B block's lines go out `per` at a time, one batch per unrolled step (1 a
    // step unless the tile's share has more lines than the tile has steps), so they
    // trickle out instead of queueing up in front of the tile's own loads.
    let per = t.pf_lines.div_ceil((t.kc / 4).max(1));
    let (mut pf, mut left) = (t.pf, t.pf_lines);
    let mut prefetch = |n: usize| {
        for _ in 0..n {
            super::prefetch::<false>(pf);
            pf = pf.wrapping_add(16);
        }
    };
    while left > 0 && kk + 4 <= t.kc {
        prefetch(per.min(left));
        left -= per.min(left);
        for u in 0..4 {
            step(&mut acc, b.add(u * NR), kk + u);
        }
        b = b.add(4 * NR);
        kk += 4;
    }
    while kk + 4 <= t.kc {
        for u in 0..4 {
            step(&mut acc, b.add(u * NR), kk + u);
        }
        b = b.add(4 * NR);
        kk += 4;
    }
    while kk < t.kc {
        step(&mut acc, b, kk);
        b = b.add(NR);
        kk += 1;
    }
    // A block shorter than 4 steps had no step to spread its lines over.
    prefetch(left);

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
        Finish::BiasResidual { bias, res, ldr } => epilogue::<S, R, NV, FULL>(
            t,
            bias,
            #[inline(always)]
            |x, off, n| S::add(x, load_n::<S>(res.add(off.0 * ldr + off.1), n)),
        ),
    }
}

/// Rewrites every valid vector of the tile in `C` as `f(c + bias, (row, col), lanes)`.
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
