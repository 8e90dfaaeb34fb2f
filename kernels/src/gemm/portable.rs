//! The portable tier's `f32` GEMM, `portable_sgemm_gemm`: the [`gemm`] crate's kernels
//! (NEON on AArch64, its own runtime choice on x86-64) on toprt's packed panels, with
//! the epilogue applied by the generic bodies on 4-lane [`Emu`] vectors.
//!
//! ## One panel, transposed, no packing
//! A panel is `k × 32` row-major (`pack.rs`): read as `Bᵀ` it is a column-major
//! `32 × k` matrix with leading dimension 32, which is the layout the crate's
//! microkernel loads vectors from. So each panel is one call computing
//! `Cᵀ[cols, m] = Bᵀ[cols, k] · Aᵀ[k, m]`, where `Aᵀ` is `A` read with unit row stride
//! (the broadcast operand) and `Cᵀ` is `C` read with unit row stride: the crate packs
//! neither operand on x86-64.
//!
//! ## The same bits alone and in any batch
//! The crate picks its `k` blocking from the number of rows as well (a different `kc`
//! for ≤ 64 rows than for more, and a matrix-vector path for one row), so a row's sum
//! would be split differently when the batch changes. This file removes both: it cuts
//! `k` into fixed chunks of [`KC`] (the crate then never splits a chunk: its `kc` is
//! `min(k, 512)` or at least 512), adding each chunk's sum to `C` (`C += A·B` over
//! the chunk, one rounding), and runs a single row as two identical rows. Every output
//! is then the same chain of operations whatever `m` is (tested for 1, 37 and 130 rows).
//!
//! bf16 weights are widened to `f32` (there is no bf16 GEMM here) and int8 runs on the
//! scalar twin.

use super::microkernel::finish_rows;
use super::{GemmParams, Operands};
use crate::cpu::{Cpu, Isa};
use crate::gemm::driver::Finish;
use crate::pack::NR;
use crate::simd::emu::Emu;
use crate::Kernels;
use std::ops::Range;

/// Lanes of the epilogue's vectors.
const LANES: usize = 4;
/// The fixed `k` chunk: the crate computes each in one block whatever the row count.
pub(crate) const KC: usize = 512;
/// Rows the tier tests treat as its register tile (the crate's f32 tile is 4 rows of
/// broadcasts on x86-64), for their edge shapes.
#[cfg(test)]
pub(crate) const MR: usize = 4;

/// The portable [`super::GemmFn`].
///
/// # Safety
/// See [`super::GemmFn`].
pub(crate) unsafe fn portable_sgemm_gemm(p: &GemmParams, panels: Range<usize>) {
    assert_eq!(p.operands, Operands::F32, "a {:?} GEMM given to the portable f32 kernel", p.operands);
    let (m, k, n) = (p.m, p.k, p.n);
    if m == 0 || panels.is_empty() {
        return;
    }
    if m == 1 {
        // The crate runs a single row on its matrix-vector path, another order of
        // operations: run it as two copies of the row and keep one.
        let mut a2 = vec![0.0f32; 2 * k];
        a2[..k].copy_from_slice(&p.a[..k]);
        a2[k..].copy_from_slice(&p.a[..k]);
        let cols = (panels.end * NR).min(n) - panels.start * NR;
        let mut c2 = vec![0.0f32; 2 * n];
        // SAFETY: a2 holds 2 rows of k, c2 2 rows of n; the panels are the caller's.
        unsafe { panels_into(p, &a2, k, 2, c2.as_mut_ptr(), n, panels.clone()) };
        let col0 = panels.start * NR;
        // SAFETY: row 0 of C covers these columns (GemmParams::new checked C for [m, n]).
        unsafe { std::ptr::copy_nonoverlapping(c2.as_ptr().add(col0), p.c.add(col0), cols) };
    } else {
        // SAFETY: forwarded contract: A covers m rows of lda, C covers [m, n] at ldc.
        unsafe { panels_into(p, p.a, p.lda, m, p.c, p.ldc, panels.clone()) };
    }
    for panel in panels {
        let col0 = panel * NR;
        let cols = NR.min(n - col0);
        // SAFETY: C and the epilogue operands cover [m, n] (GemmParams::new); Emu is
        // plain Rust.
        unsafe {
            finish_rows::<Emu<LANES>, { NR / LANES }>(p.c.add(col0), p.ldc, m, cols, Finish::at(&p.epilogue, 0, col0))
        };
    }
}

/// `C[0..m, panels] = A · B` without the epilogue: one crate call per panel and `k`
/// chunk.
///
/// # Safety
/// `a` holds `m` rows of `lda ≥ k` floats, `c` covers `m` rows of `ldc ≥ n` floats, and
/// `p.b` covers every panel of the range.
unsafe fn panels_into(p: &GemmParams, a: &[f32], lda: usize, m: usize, c: *mut f32, ldc: usize, panels: Range<usize>) {
    let (k, n) = (p.k, p.n);
    for panel in panels {
        let col0 = panel * NR;
        let cols = NR.min(n - col0);
        let b = p.b.as_ptr().wrapping_add(panel * k * NR);
        if k < 3 {
            // The crate's path for k ≤ 2 stores a product of zero without adding it to
            // +0, so it can keep a -0 the chain from +0 turns into +0: the scalar
            // twin's chain, here.
            for i in 0..m {
                for j in 0..cols {
                    let mut acc = 0.0f32;
                    for kk in 0..k {
                        // SAFETY: kk < k ≤ lda of row i < m; the panel holds k rows of NR.
                        acc += a[i * lda + kk] * unsafe { *b.add(kk * NR + j) };
                    }
                    // SAFETY: row i < m of C, column col0 + j < n.
                    unsafe { *c.add(i * ldc + col0 + j) = acc };
                }
            }
            continue;
        }
        let mut k0 = 0;
        while k0 < k {
            let kc = KC.min(k - k0);
            // SAFETY: Bᵀ is the panel's rows k0..k0 + kc (column stride NR, unit row
            // stride, cols ≤ NR rows); Aᵀ is A's columns k0..k0 + kc of m rows (unit row
            // stride, column stride lda); Cᵀ is C's [m, cols] block at col0 (unit row
            // stride, column stride ldc). The first chunk never reads C.
            unsafe {
                crate_gemm([cols, m, kc], (c.add(col0), ldc), k0 > 0, (b.add(k0 * NR), NR), (a.as_ptr().add(k0), lda))
            };
            k0 += kc;
        }
    }
}

/// The crate's `dst[r, c] (+)= Σ lhs[r, k] · rhs[k, c]` over `[rows, cols, k]`, every
/// operand given as (pointer, column stride) with unit row stride, single-threaded:
/// `accumulate` adds to `dst`, else `dst` is never read.
///
/// # Safety
/// Each pointer covers its matrix at that column stride.
unsafe fn crate_gemm(
    [rows, cols, k]: [usize; 3],
    (dst, dst_cs): (*mut f32, usize),
    accumulate: bool,
    (lhs, lhs_cs): (*const f32, usize),
    (rhs, rhs_cs): (*const f32, usize),
) {
    // SAFETY: forwarded contract.
    unsafe {
        gemm::gemm(
            rows,
            cols,
            k,
            dst,
            dst_cs as isize,
            1,
            accumulate,
            lhs,
            lhs_cs as isize,
            1,
            rhs,
            rhs_cs as isize,
            1,
            1.0f32,
            1.0f32,
            false,
            false,
            false,
            gemm::Parallelism::None,
        )
    }
}

/// The kernel's name with the path the crate takes on this CPU (the same test as the
/// crate's dispatch with the features toprt builds it with): the recorded output
/// hashes differ between them.
fn name() -> &'static str {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("fma") {
        return "portable_sgemm_gemm_fma";
    }
    #[cfg(target_arch = "aarch64")]
    if std::arch::is_aarch64_feature_detected!("neon") {
        return "portable_sgemm_gemm_neon";
    }
    "portable_sgemm_gemm_scalar"
}

/// Runs one small product through the crate on the calling thread, once per process,
/// so that its lazily detected cache sizes and kernel choice exist before a thread
/// pool's workers call it at once (a worker waiting on that initialisation would leave
/// a thread handle behind at exit that leak checkers report).
fn warm_up() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let (a, b) = ([1.0f32; 8 * 8], [1.0f32; 8 * 8]);
        let mut c = [0.0f32; 8 * 8];
        // SAFETY: three 8 × 8 matrices with unit row stride and column stride 8.
        unsafe { crate_gemm([8, 8, 8], (c.as_mut_ptr(), 8), false, (a.as_ptr(), 8), (b.as_ptr(), 8)) };
        assert_eq!(c[0], 8.0, "the gemm crate's warm-up product");
    });
}

/// Installs this file's GEMM in `k` (every CPU runs the portable tier).
pub(crate) fn plug(k: &mut Kernels, cpu: &Cpu) {
    if cpu.supports(Isa::Portable) {
        warm_up();
        k.sgemm = portable_sgemm_gemm;
        k.sgemm_name = name();
    }
}
