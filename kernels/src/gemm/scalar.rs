//! The scalar twins of the GEMM: obviously correct, the references every SIMD tier is
//! tested against, and (for `f32`) the portable fallback.
//!
//! * `f32`: each output is one chain of multiply-then-add over `k` ascending (two
//!   roundings per step, no FMA contraction). The inner loop runs over the 32
//!   contiguous columns of a panel row, so the compiler can vectorise it with the
//!   baseline instruction set.
//! * bf16 pairs: each output is the chain `vdpbf16ps` computes: per pair, the product
//!   of the odd (high) halves is added, then the product of the even (low) halves, each
//!   with one rounding to nearest even (bf16 × bf16 is exact in f32, so each step is a
//!   fused multiply-add), with denormal inputs read as zero and denormal sums flushed
//!   to zero, as the instruction does (Intel SDM, VDPBF16PS). Only the tests run it:
//!   CPUs without bf16 dot products widen bf16 weights to `f32` instead.
//! * int8 quads: the exact integer sum, then the dequantisation of every int8 tier
//!   and the fused multiply-adds of the outlier channels ([`scalar_gemm_i8`]); also
//!   the portable int8 kernel.

use super::{Epilogue, GemmParams, Operands};
use crate::ops;
use crate::pack::NR;
use std::ops::Range;

/// Rows per register tile of the scalar twin.
const MR: usize = 4;

/// The scalar [`super::GemmFn`].
///
/// # Safety
/// See [`super::GemmFn`].
pub(crate) unsafe fn scalar_sgemm_packed(p: &GemmParams, panels: Range<usize>) {
    assert_eq!(p.operands, Operands::F32, "bf16 operands given to the f32 GEMM");
    let full = p.m / MR * MR;
    for panel in panels {
        let mut row = 0;
        while row < full {
            // SAFETY: forwarded contract of this function; row + MR <= m.
            unsafe { tile::<MR>(p, panel, row) };
            row += MR;
        }
        while row < p.m {
            // SAFETY: forwarded contract of this function; row + 1 <= m.
            unsafe { tile::<1>(p, panel, row) };
            row += 1;
        }
    }
}

/// # Safety
/// See [`super::GemmFn`]; additionally `row + R <= p.m`.
#[inline(always)]
unsafe fn tile<const R: usize>(p: &GemmParams, panel: usize, row: usize) {
    let k = p.steps;
    let bp = &p.b[panel * k * NR..(panel + 1) * k * NR];
    let mut acc = [[0.0f32; NR]; R];
    for kk in 0..k {
        let b = &bp[kk * NR..kk * NR + NR];
        for (r, acc_r) in acc.iter_mut().enumerate() {
            let a = p.a[(row + r) * p.lda + kk];
            for j in 0..NR {
                acc_r[j] += a * b[j];
            }
        }
    }
    let col0 = panel * NR;
    let cols = NR.min(p.n - col0);
    for (r, acc_r) in acc.iter().enumerate() {
        let i = row + r;
        // SAFETY: GemmParams::new proved `(m-1)*ldc + n` floats behind `c`; `i < m` and
        // `col0 + cols <= n`, and this panel's columns belong to this call alone.
        let out = unsafe { std::slice::from_raw_parts_mut(p.c.add(i * p.ldc + col0), cols) };
        store_row(&p.epilogue, i, col0, &acc_r[..cols], out);
    }
}

/// The bf16 [`super::GemmFn`] twin (see the module docs).
///
/// # Safety
/// See [`super::GemmFn`].
#[cfg(test)]
pub(crate) unsafe fn scalar_gemm_bf16(p: &GemmParams, panels: Range<usize>) {
    assert_eq!(p.operands, Operands::Bf16, "f32 operands given to the bf16 GEMM");
    let (pairs, word) = (p.steps, |x: f32| x.to_bits());
    // bf16 halves of a pair word as f32, denormals read as zero.
    let half = |w: u32, hi: bool| {
        let v = f32::from_bits(if hi { w & 0xffff_0000 } else { w << 16 });
        if v.is_subnormal() {
            0.0f32.copysign(v)
        } else {
            v
        }
    };
    let ftz = |v: f32| if v.is_subnormal() { 0.0f32.copysign(v) } else { v };
    for panel in panels {
        let bp = &p.b[panel * pairs * NR..(panel + 1) * pairs * NR];
        let col0 = panel * NR;
        let cols = NR.min(p.n - col0);
        for i in 0..p.m {
            let mut acc = [0.0f32; NR];
            for kk in 0..pairs {
                let a = word(p.a[i * p.lda + kk]);
                for (j, acc_j) in acc.iter_mut().enumerate() {
                    let b = word(bp[kk * NR + j]);
                    *acc_j = ftz(half(a, true).mul_add(half(b, true), *acc_j));
                    *acc_j = ftz(half(a, false).mul_add(half(b, false), *acc_j));
                }
            }
            // SAFETY: as in `tile`: row i < m, columns col0..col0 + cols <= n, this
            // call's panels.
            let out = unsafe { std::slice::from_raw_parts_mut(p.c.add(i * p.ldc + col0), cols) };
            store_row(&p.epilogue, i, col0, &acc[..cols], out);
        }
    }
}

/// The int8 [`super::GemmFn`]: the portable kernel and the twin every int8 tier is
/// tested against. Each output's integer sum `Σ_k q_a · q_w` is exact (`i32`, see
/// [`super::MAX_K_INT8`]), so every tier gives the same sum; the dequantisation and the
/// epilogue then follow the same `f32` steps as the SIMD tiers
/// ([`super::Int8Scales`]).
///
/// # Safety
/// See [`super::GemmFn`].
pub(crate) unsafe fn scalar_gemm_i8(p: &GemmParams, panels: Range<usize>) {
    assert_eq!(p.operands, Operands::Int8, "{:?} operands given to the int8 GEMM", p.operands);
    let scales = p.int8.expect("int8 params carry their scales");
    let quads = p.steps;
    let byte = |w: u32, i: usize| (w >> (8 * i)) as u8;
    for panel in panels {
        let bp = &p.b[panel * quads * NR..(panel + 1) * quads * NR];
        let col0 = panel * NR;
        let cols = NR.min(p.n - col0);
        for i in 0..p.m {
            let mut acc = [0i32; NR];
            for q in 0..quads {
                let a = p.a[i * p.lda + q].to_bits();
                for (j, acc_j) in acc.iter_mut().enumerate() {
                    let w = bp[q * NR + j].to_bits();
                    for t in 0..4 {
                        *acc_j += (i32::from(byte(a, t)) - 128) * i32::from(byte(w, t) as i8);
                    }
                }
            }
            let rs = scales.row[i];
            let mut y = [0.0f32; NR];
            for j in 0..cols {
                y[j] = (acc[j] as f32) * (rs * scales.col[col0 + j]);
            }
            // Outlier channels: one fused multiply-add each, channels ascending.
            if let Some(o) = p.outliers {
                let wp = &o.w[panel * o.c * NR..(panel + 1) * o.c * NR];
                for kk in 0..o.c {
                    let x = o.x[i * o.ld + kk];
                    for j in 0..cols {
                        y[j] = x.mul_add(wp[kk * NR + j], y[j]);
                    }
                }
            }
            // SAFETY: as in `tile`: row i < m, columns col0..col0 + cols <= n, this
            // call's panels.
            let out = unsafe { std::slice::from_raw_parts_mut(p.c.add(i * p.ldc + col0), cols) };
            store_row(&p.epilogue, i, col0, &y[..cols], out);
        }
    }
}

#[inline(always)]
fn store_row(ep: &Epilogue, i: usize, col0: usize, acc: &[f32], out: &mut [f32]) {
    let cols = acc.len();
    match *ep {
        Epilogue::None => out.copy_from_slice(acc),
        Epilogue::Bias(b) => {
            for ((o, &a), &b) in out.iter_mut().zip(acc).zip(&b[col0..col0 + cols]) {
                *o = a + b;
            }
        }
        Epilogue::BiasGelu(b) => {
            for ((o, &a), &b) in out.iter_mut().zip(acc).zip(&b[col0..col0 + cols]) {
                *o = ops::gelu_scalar(a + b);
            }
        }
        Epilogue::BiasResidualGelu { bias, residual, ldr } => {
            let res = &residual[i * ldr + col0..i * ldr + col0 + cols];
            for (((o, &a), &b), &r) in out.iter_mut().zip(acc).zip(&bias[col0..col0 + cols]).zip(res) {
                *o = ops::gelu_scalar(a + b + r);
            }
        }
        Epilogue::BiasResidual { bias, residual, ldr } => {
            let res = &residual[i * ldr + col0..i * ldr + col0 + cols];
            for (((o, &a), &b), &r) in out.iter_mut().zip(acc).zip(&bias[col0..col0 + cols]).zip(res) {
                *o = a + b + r;
            }
        }
    }
}
