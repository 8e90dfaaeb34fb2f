//! The scalar twin of the GEMM: obviously correct, the reference every SIMD tier is
//! tested against, and the portable fallback. Each output is one chain of
//! multiply-then-add over `k` ascending (two roundings per step, no FMA contraction).
//! The inner loop runs over the 32 contiguous columns of a panel row, so the compiler
//! can vectorise it with the baseline instruction set.

use super::{Epilogue, GemmParams};
use crate::ops;
use crate::pack::NR;
use std::ops::Range;

/// Rows per register tile of the scalar twin.
const MR: usize = 4;

/// The scalar [`super::GemmFn`].
///
/// # Safety
/// See [`super::GemmFn`].
pub unsafe fn scalar_sgemm_packed(p: &GemmParams, panels: Range<usize>) {
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
    let k = p.k;
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
        Epilogue::BiasResidual { bias, residual, ldr } => {
            let res = &residual[i * ldr + col0..i * ldr + col0 + cols];
            for (((o, &a), &b), &r) in out.iter_mut().zip(acc).zip(&bias[col0..col0 + cols]).zip(res) {
                *o = a + b + r;
            }
        }
    }
}
