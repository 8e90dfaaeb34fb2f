//! [`GemmParams`]: one GEMM call, its shape checked once before any thread touches
//! memory.

use super::{Blocking, Epilogue, Operands};
use crate::error::{Error, Operand};
use std::ops::Range;

/// One GEMM call, validated once, then shared read-only by every thread that computes
/// a range of its column panels (or a block of its rows).
///
/// The driver counts *steps* of the microkernel: `k` for `f32` operands, the
/// `ceil(k/2)` pairs for bf16 and the `ceil(k/4)` quads for int8, whose 32-bit words `a`
/// and `b` hold (so it walks every kind alike).
pub struct GemmParams<'a> {
    pub(super) a: &'a [f32],
    pub(super) lda: usize,
    pub(super) m: usize,
    /// Microkernel steps: `k` for `f32`, `ceil(k/2)` pairs for bf16, `ceil(k/4)` quads for int8.
    pub(super) steps: usize,
    /// The logical inner dimension.
    pub(super) k: usize,
    pub(super) operands: Operands,
    /// Packed `[k, n]` weight.
    pub(super) b: &'a [f32],
    pub(super) n: usize,
    pub(super) c: *mut f32,
    pub(super) ldc: usize,
    pub(super) epilogue: Epilogue<'a>,
    /// The scales of an int8 call ([`Operands::Int8`]).
    pub(super) int8: Option<Int8Scales<'a>>,
    /// The `f32` outlier channels of an int8 call ([`GemmParams::with_outliers`]).
    pub(super) outliers: Option<Int8Outliers<'a>>,
    pub(super) blocking: Blocking,
    pub(super) _c: std::marker::PhantomData<&'a mut [f32]>,
}

/// The scales of an int8 GEMM ([`GemmParams::new_int8`]). Row `i` of `A` holds
/// `x ≈ q_a · row[i]`, column `j` of the weight `w ≈ q_w · col[j]`, and
/// `col_sum[j] = Σ_k q_w`. The GEMM computes `Σ_k q_a · q_w` exactly in `i32`, then
/// `C[i, j] = f32(Σ) · (row[i] · col[j])` (two roundings, in this order) before the
/// epilogue, on every tier.
#[derive(Clone, Copy, Debug)]
pub struct Int8Scales<'a> {
    /// `[m]`, one per row of `A`.
    pub row: &'a [f32],
    /// `[n]`, one per output column.
    pub col: &'a [f32],
    /// `[n]`: `Σ_k q_w` per column (integers).
    pub col_sum: &'a [f32],
}

/// The `f32` part of an int8 GEMM whose weight keeps a few input channels out of the
/// int8 matrix (outlier channels: their int8 weight rows are zero and their activations
/// are left out of the quantised rows). `x` holds those channels' activations, `m` rows
/// of `c` values `ld` apart; `w` their weight rows, a `panel32` `[c, n]`
/// ([`crate::pack::pack_linear_weight`]). The GEMM adds `Σ_{i<c} x[r, i] · w[i, j]`
/// to the dequantised sum as `c` fused multiply-adds, `i` ascending, before the
/// epilogue, on every tier ([`GemmParams::with_outliers`]).
#[derive(Clone, Copy, Debug)]
pub struct Int8Outliers<'a> {
    pub x: &'a [f32],
    pub ld: usize,
    pub c: usize,
    pub w: &'a [f32],
}

/// Largest `k` of an int8 call: `Σ_k 255 · 127` must fit an `i32`.
pub const MAX_K_INT8: usize = (i32::MAX as usize) / (255 * 127);

// SAFETY: `c` comes from a `&mut [f32]` borrowed for `'a`; kernels write it only through
// disjoint panels or rows (callers of `GemmFn` guarantee disjointness), everything else
// is shared read-only.
unsafe impl Sync for GemmParams<'_> {}
// SAFETY: as above; the exclusive borrow of `C` travels with the params.
unsafe impl Send for GemmParams<'_> {}

impl<'a> GemmParams<'a> {
    /// Checks every length the kernels rely on, once per GEMM, before any thread
    /// touches memory.
    ///
    /// # Errors
    /// [`Error::Shape`] or [`Error::Stride`], naming the operand whose length or row
    /// stride does not fit the shape.
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
    ) -> Result<Self, Error> {
        let c_len = c.len();
        Self::build(a, lda, m, k, b, n, c.as_mut_ptr(), c_len, ldc, epilogue)
    }

    /// The checks of [`GemmParams::new`] on a `C` of `c_len` floats behind `c`.
    #[allow(clippy::too_many_arguments)]
    fn build(
        a: &'a [f32],
        lda: usize,
        m: usize,
        k: usize,
        b: &'a [f32],
        n: usize,
        c: *mut f32,
        c_len: usize,
        ldc: usize,
        epilogue: Epilogue<'a>,
    ) -> Result<Self, Error> {
        if m > 0 && n > 0 {
            check_rows(Operand::A, a.len(), m, k, lda)?;
            check_len(Operand::B, b.len(), crate::pack::packed_len(k, n), true)?;
            check_rows(Operand::C, c_len, m, n, ldc)?;
            match epilogue {
                Epilogue::None => {}
                Epilogue::Bias(bias) | Epilogue::BiasGelu(bias) => check_len(Operand::Bias, bias.len(), n, false)?,
                Epilogue::BiasResidual { bias, residual, ldr } | Epilogue::BiasResidualGelu { bias, residual, ldr } => {
                    check_len(Operand::Bias, bias.len(), n, false)?;
                    check_rows(Operand::Residual, residual.len(), m, n, ldr)?;
                }
            }
        }
        Ok(Self {
            a,
            lda,
            m,
            steps: k,
            k,
            operands: Operands::F32,
            b,
            n,
            c,
            ldc,
            epilogue,
            int8: None,
            outliers: None,
            blocking: Blocking::detected(),
            _c: std::marker::PhantomData,
        })
    }

    /// A GEMM on bf16 operands: `a` holds `m` rows of activations rounded to bf16 pairs
    /// ([`crate::pack::bf16_pairs_from_f32`]), `lda` words apart; `b` a `panel32x2`
    /// weight of the logical `[k, n]` matrix ([`crate::pack::pack_linear_weight_bf16`]).
    /// `C` and the epilogue are `f32`, as for [`GemmParams::new`]. An odd `k` needs a
    /// zero in the high half of each row's last pair (what the conversion writes).
    ///
    /// # Errors
    /// As [`GemmParams::new`], in pair words.
    #[allow(clippy::too_many_arguments)]
    pub fn new_bf16(
        a: &'a [u32],
        lda: usize,
        m: usize,
        k: usize,
        b: &'a [u32],
        n: usize,
        c: &'a mut [f32],
        ldc: usize,
        epilogue: Epilogue<'a>,
    ) -> Result<Self, Error> {
        let c_len = c.len();
        Self::build_bf16(a, lda, m, k, b, n, c.as_mut_ptr(), c_len, ldc, epilogue)
    }

    /// The checks of [`GemmParams::new_bf16`] on a `C` of `c_len` floats behind `c`.
    #[allow(clippy::too_many_arguments)]
    fn build_bf16(
        a: &'a [u32],
        lda: usize,
        m: usize,
        k: usize,
        b: &'a [u32],
        n: usize,
        c: *mut f32,
        c_len: usize,
        ldc: usize,
        epilogue: Epilogue<'a>,
    ) -> Result<Self, Error> {
        let pairs = k.div_ceil(2);
        if m > 0 && n > 0 {
            check_len(Operand::B, b.len(), crate::pack::packed_len_bf16(k, n), true)?;
        }
        // SAFETY: u32 and f32 have the same size and alignment; the words are only ever
        // moved (broadcast, loaded) bitwise by the bf16 kernels, never read as floats.
        let (a32, b32) = unsafe {
            (
                std::slice::from_raw_parts(a.as_ptr().cast::<f32>(), a.len()),
                std::slice::from_raw_parts(b.as_ptr().cast::<f32>(), b.len()),
            )
        };
        let mut p = Self::build(a32, lda, m, pairs, b32, n, c, c_len, ldc, epilogue)?;
        p.k = k;
        p.operands = Operands::Bf16;
        Ok(p)
    }

    /// A GEMM on int8 operands: `a` holds `m` rows of activations quantised by
    /// `Kernels::quantize_row` (bytes `q + 128`, four per word, `k` of them used), `lda`
    /// words apart; `b` a `panel32x4` weight of the logical `[k, n]` matrix
    /// ([`crate::pack::quantize_linear_weight_i8`]); `scales` as [`Int8Scales`]. `C` and
    /// the epilogue are `f32`, as for [`GemmParams::new`].
    ///
    /// # Errors
    /// As [`GemmParams::new`], in quad words; a scale table shorter than its rows or
    /// columns ([`Operand::Scales`]); `k` above [`MAX_K_INT8`] ([`Error::Shape`] on `A`).
    #[allow(clippy::too_many_arguments)]
    pub fn new_int8(
        a: &'a [u32],
        lda: usize,
        m: usize,
        k: usize,
        b: &'a [u32],
        n: usize,
        c: &'a mut [f32],
        ldc: usize,
        epilogue: Epilogue<'a>,
        scales: Int8Scales<'a>,
    ) -> Result<Self, Error> {
        let c_len = c.len();
        Self::build_int8(a, lda, m, k, b, n, c.as_mut_ptr(), c_len, ldc, epilogue, scales)
    }

    /// The checks of [`GemmParams::new_int8`] on a `C` of `c_len` floats behind `c`.
    #[allow(clippy::too_many_arguments)]
    fn build_int8(
        a: &'a [u32],
        lda: usize,
        m: usize,
        k: usize,
        b: &'a [u32],
        n: usize,
        c: *mut f32,
        c_len: usize,
        ldc: usize,
        epilogue: Epilogue<'a>,
        scales: Int8Scales<'a>,
    ) -> Result<Self, Error> {
        if k > MAX_K_INT8 {
            return Err(Error::Shape { operand: Operand::A, have: k, need: MAX_K_INT8 });
        }
        if m > 0 && n > 0 {
            check_len(Operand::B, b.len(), crate::pack::packed_len_i8(k, n), true)?;
            check_len(Operand::Scales, scales.row.len(), m, false)?;
            check_len(Operand::Scales, scales.col.len(), n, false)?;
            check_len(Operand::Scales, scales.col_sum.len(), n, false)?;
        }
        // SAFETY: u32 and f32 have the same size and alignment; the words are only ever
        // moved (broadcast, loaded) bitwise by the int8 kernels, never read as floats.
        let (a32, b32) = unsafe {
            (
                std::slice::from_raw_parts(a.as_ptr().cast::<f32>(), a.len()),
                std::slice::from_raw_parts(b.as_ptr().cast::<f32>(), b.len()),
            )
        };
        let mut p = Self::build(a32, lda, m, k.div_ceil(4), b32, n, c, c_len, ldc, epilogue)?;
        p.k = k;
        p.operands = Operands::Int8;
        p.int8 = Some(scales);
        Ok(p)
    }

    /// The same int8 call with outlier channels ([`Int8Outliers`]): each output becomes
    /// `fma(x[r, c-1], w[c-1, j], … fma(x[r, 0], w[0, j], dequantised) …)`, then the
    /// epilogue. An empty set (`c = 0`) changes nothing.
    ///
    /// # Errors
    /// [`Operand::Outliers`]: `x` shorter than `m` rows of `c` values `ld` apart, or `w`
    /// not exactly a packed `[c, n]`.
    ///
    /// # Panics
    /// If the call is not an int8 call (a bug of the caller, not of its data).
    pub fn with_outliers(mut self, o: Int8Outliers<'a>) -> Result<Self, Error> {
        assert_eq!(self.operands, Operands::Int8, "outlier channels belong to int8 GEMMs");
        if o.c == 0 {
            self.outliers = None;
            return Ok(self);
        }
        if self.m > 0 && self.n > 0 {
            check_rows(Operand::Outliers, o.x.len(), self.m, o.c, o.ld)?;
            check_len(Operand::Outliers, o.w.len(), crate::pack::packed_len(o.c, self.n), true)?;
        }
        self.outliers = Some(o);
        Ok(self)
    }

    /// [`GemmParams::new_int8`] with `C` as a raw pointer; see [`GemmParams::with_raw_c`].
    ///
    /// # Safety
    /// As [`GemmParams::with_raw_c`].
    ///
    /// # Errors
    /// As [`GemmParams::new_int8`].
    #[allow(clippy::too_many_arguments)]
    pub unsafe fn with_raw_c_int8(
        a: &'a [u32],
        lda: usize,
        m: usize,
        k: usize,
        b: &'a [u32],
        n: usize,
        c: *mut f32,
        ldc: usize,
        epilogue: Epilogue<'a>,
        scales: Int8Scales<'a>,
    ) -> Result<Self, Error> {
        let c_len = if m > 0 && n > 0 { (m - 1) * ldc + n } else { 0 };
        Self::build_int8(a, lda, m, k, b, n, c, c_len, ldc, epilogue, scales)
    }

    /// As [`GemmParams::new`], with `C` given as a raw pointer, for callers whose output
    /// is a strided window of a buffer that other threads write around concurrently
    /// (e.g. one attention head's columns of the context rows): a `&mut` slice over the
    /// whole window would alias those writers.
    ///
    /// # Safety
    /// `c` must be valid for writes of `(m - 1) * ldc + n` floats (when `m, n > 0`) for
    /// `'a`, and no one else may read or write the `[m, n]` elements (row stride `ldc`)
    /// of the window while the returned params are in use; the gaps between them are
    /// never touched.
    ///
    /// # Errors
    /// As [`GemmParams::new`] for `A`, `B` and the epilogue.
    #[allow(clippy::too_many_arguments)]
    pub unsafe fn with_raw_c(
        a: &'a [f32],
        lda: usize,
        m: usize,
        k: usize,
        b: &'a [f32],
        n: usize,
        c: *mut f32,
        ldc: usize,
        epilogue: Epilogue<'a>,
    ) -> Result<Self, Error> {
        let c_len = if m > 0 && n > 0 { (m - 1) * ldc + n } else { 0 };
        Self::build(a, lda, m, k, b, n, c, c_len, ldc, epilogue)
    }

    /// [`GemmParams::new_bf16`] with `C` as a raw pointer; see [`GemmParams::with_raw_c`].
    ///
    /// # Safety
    /// As [`GemmParams::with_raw_c`].
    ///
    /// # Errors
    /// As [`GemmParams::new_bf16`].
    #[allow(clippy::too_many_arguments)]
    pub unsafe fn with_raw_c_bf16(
        a: &'a [u32],
        lda: usize,
        m: usize,
        k: usize,
        b: &'a [u32],
        n: usize,
        c: *mut f32,
        ldc: usize,
        epilogue: Epilogue<'a>,
    ) -> Result<Self, Error> {
        let c_len = if m > 0 && n > 0 { (m - 1) * ldc + n } else { 0 };
        Self::build_bf16(a, lda, m, k, b, n, c, c_len, ldc, epilogue)
    }

    /// The same call with another cache blocking (the default is
    /// [`Blocking::detected`]). The result is bit-identical whatever the blocking; tests
    /// use tiny blocks to reach every edge of the driver on small shapes.
    pub fn with_blocking(mut self, blocking: Blocking) -> Self {
        self.blocking = blocking;
        self
    }

    /// A view of the same call (same operands) with another blocking.
    #[cfg(test)]
    pub(crate) fn reblocked(&self, blocking: Blocking) -> GemmParams<'_> {
        let mut v = self.view_rows(0..self.m);
        v.blocking = blocking;
        v
    }

    /// Number of column panels of this call.
    pub fn panels(&self) -> usize {
        crate::pack::panels(self.n)
    }

    /// Rows of this call.
    pub fn m(&self) -> usize {
        self.m
    }

    /// Output columns of this call.
    pub fn n(&self) -> usize {
        self.n
    }

    /// Inner dimension of this call.
    pub fn k(&self) -> usize {
        self.k
    }

    /// What the operands hold.
    pub fn operands(&self) -> Operands {
        self.operands
    }

    /// Floating-point operations of the whole call (`2·m·k·n`), for GFLOP/s reports.
    pub fn flops(&self) -> f64 {
        2.0 * self.m as f64 * self.k as f64 * self.n as f64
    }

    /// The same GEMM restricted to the rows `rows` (a view: same `B`, same `C`
    /// storage), for running part of a call. The view borrows the call exclusively,
    /// since both write the same `C`; a pool that splits one call by rows across
    /// threads passes row ranges to [`crate::Kernels::sgemm_bias_residual_layernorm`]
    /// instead.
    ///
    /// # Panics
    /// If `rows` is not inside `0..m`.
    pub fn rows(&mut self, rows: Range<usize>) -> GemmParams<'_> {
        self.view_rows(rows)
    }

    /// [`GemmParams::rows`] without the exclusive borrow, for the crate's own row
    /// splits: whoever runs a kernel on the view must make sure no other call writes
    /// the same part of `C` meanwhile (the contract of the unsafe entry points).
    ///
    /// # Panics
    /// If `rows` is not inside `0..m`.
    pub(crate) fn view_rows(&self, rows: Range<usize>) -> GemmParams<'_> {
        assert!(rows.start <= rows.end && rows.end <= self.m, "rows {rows:?} outside 0..{}", self.m);
        let (r0, m) = (rows.start, rows.len());
        let epilogue = match self.epilogue {
            Epilogue::BiasResidual { bias, residual, ldr } => {
                Epilogue::BiasResidual { bias, residual: residual.get(r0 * ldr..).unwrap_or(&[]), ldr }
            }
            Epilogue::BiasResidualGelu { bias, residual, ldr } => {
                Epilogue::BiasResidualGelu { bias, residual: residual.get(r0 * ldr..).unwrap_or(&[]), ldr }
            }
            e => e,
        };
        GemmParams {
            a: self.a.get(r0 * self.lda..).unwrap_or(&[]),
            lda: self.lda,
            m,
            steps: self.steps,
            k: self.k,
            operands: self.operands,
            b: self.b,
            n: self.n,
            // `wrapping_add`: for an empty view the offset may point one row past C.
            c: self.c.wrapping_add(r0 * self.ldc),
            ldc: self.ldc,
            epilogue,
            int8: self.int8.map(|s| Int8Scales { row: s.row.get(r0..).unwrap_or(&[]), ..s }),
            outliers: self.outliers.map(|o| Int8Outliers { x: o.x.get(r0 * o.ld..).unwrap_or(&[]), ..o }),
            blocking: self.blocking,
            _c: std::marker::PhantomData,
        }
    }
}

/// `rows` rows of `row` elements, `stride` apart, in `len` elements (`rows` > 0).
fn check_rows(operand: Operand, len: usize, rows: usize, row: usize, stride: usize) -> Result<(), Error> {
    if stride < row {
        return Err(Error::Stride { operand, stride, row });
    }
    check_len(operand, len, (rows - 1) * stride + row, false)
}

/// `have` elements where `need` are needed: at least, or `exactly`.
fn check_len(operand: Operand, have: usize, need: usize, exactly: bool) -> Result<(), Error> {
    if have < need || (exactly && have != need) {
        return Err(Error::Shape { operand, have, need });
    }
    Ok(())
}

/// A GEMM kernel entry, the slot type of the dispatch table: computes the columns of
/// `panels` for all rows of `p`. Callers outside the crate reach one only through
/// [`crate::Kernels::gemm`] and [`crate::Kernels::gemm_panels`].
///
/// # Safety
/// `panels` must lie within `0..p.panels()`, the CPU must support the tier the kernel
/// belongs to (true for every kernel in a [`crate::Kernels`] table), and no other thread
/// may write the same rows × panels of `C` concurrently.
pub(crate) type GemmFn = unsafe fn(p: &GemmParams, panels: Range<usize>);
