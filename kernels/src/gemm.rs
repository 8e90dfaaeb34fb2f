//! Weight GEMM: `C[m, n] = A[m, k] · B[k, n] (+ epilogue)`, with `B` pre-packed in the
//! panel layout of [`crate::pack`].
//!
//! ## Contract
//! * `A` is row-major with leading dimension `lda >= k` (activations, read in place).
//! * `B` is packed (`pack::packed_len(k, n)` floats), usually straight from the mmap.
//! * `C` is row-major with leading dimension `ldc >= n`; it is only written, never read,
//!   except as the residual when the epilogue says so (so NaN garbage in `C` is fine).
//! * A call covers a range of column panels, so a thread pool can split one GEMM by
//!   panels without any synchronisation: different panel ranges write disjoint columns.
//! * Every output element is accumulated in the same order (`k` ascending) whatever
//!   the row blocking or panel split, so a row's result does not depend on which other
//!   rows share the call: a sequence is bit-identical alone and inside any batch.

use crate::ops;
use crate::pack::NR;
use std::ops::Range;

/// What happens to an accumulated tile before it is stored.
#[derive(Clone, Copy, Debug)]
pub enum Epilogue<'a> {
    /// `C = A·B`
    None,
    /// `C = A·B + bias` (bias: `[n]`)
    Bias(&'a [f32]),
    /// `C = gelu(A·B + bias)` with the exact erf GELU BERT uses.
    BiasGelu(&'a [f32]),
    /// `C = A·B + bias + R` with `R` row-major `[m, n]`, leading dimension `ldr`.
    /// (The LayerNorm that follows needs whole rows; the caller runs it after.)
    BiasResidual { bias: &'a [f32], residual: &'a [f32], ldr: usize },
}

/// One GEMM call, validated once, then shared read-only by every thread that computes
/// a range of its column panels.
pub struct GemmParams<'a> {
    a: &'a [f32],
    lda: usize,
    m: usize,
    k: usize,
    /// Packed `[k, n]` weight.
    b: &'a [f32],
    n: usize,
    c: *mut f32,
    ldc: usize,
    epilogue: Epilogue<'a>,
    _c: std::marker::PhantomData<&'a mut [f32]>,
}

// SAFETY: `c` comes from a `&mut [f32]` borrowed for `'a`; kernels write it only through
// disjoint column panels (callers of `GemmFn` guarantee disjointness), everything else
// is shared read-only.
unsafe impl Sync for GemmParams<'_> {}
unsafe impl Send for GemmParams<'_> {}

impl<'a> GemmParams<'a> {
    /// Checks every length the kernels rely on, once per GEMM, before any thread
    /// touches memory.
    ///
    /// # Errors
    /// A message naming the operand whose length is inconsistent with the shape.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        a: &'a [f32],
        lda: usize,
        m: usize,
        k: usize,
        b: &'a [f32],
        n: usize,
        c: &'a mut [f32],
        ldc: usize,
        epilogue: Epilogue<'a>,
    ) -> Result<Self, String> {
        if m > 0 && n > 0 {
            if lda < k || a.len() < (m - 1) * lda + k {
                return Err(format!("A has {} floats, need {m}×{k} with lda {lda}", a.len()));
            }
            if b.len() != crate::pack::packed_len(k, n) {
                return Err(format!(
                    "packed B has {} floats, need {} for {k}×{n}",
                    b.len(),
                    crate::pack::packed_len(k, n)
                ));
            }
            if ldc < n || c.len() < (m - 1) * ldc + n {
                return Err(format!("C has {} floats, need {m}×{n} with ldc {ldc}", c.len()));
            }
            match epilogue {
                Epilogue::None => {}
                Epilogue::Bias(bb) | Epilogue::BiasGelu(bb) if bb.len() >= n => {}
                Epilogue::BiasResidual { bias, residual, ldr }
                    if bias.len() >= n && ldr >= n && residual.len() >= (m - 1) * ldr + n => {}
                _ => return Err("epilogue operand shorter than n".into()),
            }
        }
        Ok(Self { a, lda, m, k, b, n, c: c.as_mut_ptr(), ldc, epilogue, _c: std::marker::PhantomData })
    }

    /// Number of column panels of this call.
    pub fn panels(&self) -> usize {
        crate::pack::panels(self.n)
    }

    /// Rows of this call.
    pub fn m(&self) -> usize {
        self.m
    }
}

/// A GEMM kernel entry: computes the columns of `panels` for all rows.
///
/// # Safety
/// `panels` must lie within `0..p.panels()`, and no other thread may write the same
/// panels of `C` concurrently.
pub type GemmFn = unsafe fn(p: &GemmParams, panels: Range<usize>);

/// Rows per register tile of the scalar twin.
const MR: usize = 4;

/// The scalar twin: obviously correct, and auto-vectorisable (the inner loop runs over
/// the 32 contiguous columns of a panel row).
///
/// # Safety
/// See [`GemmFn`].
pub unsafe fn scalar_sgemm_packed(p: &GemmParams, panels: Range<usize>) {
    let full = p.m / MR * MR;
    for panel in panels {
        let mut row = 0;
        while row < full {
            // SAFETY: forwarded contract of this function.
            unsafe { tile::<MR>(p, panel, row) };
            row += MR;
        }
        while row < p.m {
            // SAFETY: forwarded contract of this function.
            unsafe { tile::<1>(p, panel, row) };
            row += 1;
        }
    }
}

/// # Safety
/// See [`GemmFn`]; additionally `row + R <= p.m`.
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

/// Single-threaded entry: runs `kernel` over all panels of a validated call.
pub fn sgemm_packed(kernel: GemmFn, p: &GemmParams) {
    // SAFETY: `p` was validated by its constructor; this caller owns all panels.
    unsafe { kernel(p, 0..p.panels()) };
}
