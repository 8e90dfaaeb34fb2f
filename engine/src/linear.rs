//! The encoder's linear layers: `out = epilogue(x · W + b)` for a named
//! [`LinearKind`] of a layer, on the path the session chose for the model's precision
//! ([`LinearPath`]), split across the pool.

use crate::model::ModelInner;
use crate::par::{self, SharedMut};
use crate::pool::Pool;
use crate::weights::{LinearKind, Norm};
use toprt_format::Precision;
use toprt_kernels::gemm::{Epilogue, GemmParams, Int8Outliers, Int8Scales};
use toprt_kernels::Kernels;

/// How a session runs the encoder's linear layers, fixed at session creation from the
/// model's precision and the kernel table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LinearPath {
    /// `f32` weights, `f32` GEMM.
    F32,
    /// bf16 weights on a bf16 GEMM ([`Kernels::has_gemm_bf16`]): each input is rounded to
    /// bf16 pairs first, the sums and everything else stay `f32`.
    Bf16,
    /// bf16 weights on a CPU without bf16 GEMMs: the `f32` GEMM on the weights widened
    /// once per model (exactly the file's values; the inputs are not rounded).
    Bf16Widened,
    /// An int8 file: each int8 linear on the int8 GEMM (every table has one), fed the
    /// rows its producer quantised; linears the file keeps in `f32` on the `f32` GEMM.
    Int8,
}

impl LinearPath {
    /// The fastest path this CPU really has for weights of `precision`, and why: bf16
    /// weights run on AMX tiles where the process has them; on `vdpbf16ps` only where
    /// this CPU runs it faster than f32 FMAs (both measured once per process by the peak
    /// probes: on Zen 4 `vdpbf16ps` does twice the FMA's work per second, on Sapphire
    /// Rapids half); otherwise they are widened to `f32` once. int8 weights run on the
    /// table's int8 GEMM, which every tier has.
    pub fn choose(precision: Precision, k: &Kernels) -> (LinearPath, String) {
        match precision {
            Precision::F32 => (LinearPath::F32, format!("f32 weights on {}", k.sgemm_name())),
            Precision::Int8 => (LinearPath::Int8, format!("int8 weights on {}", k.gemm_i8_name())),
            Precision::Bf16 => match k.gemm_bf16_name() {
                None => (
                    LinearPath::Bf16Widened,
                    format!("bf16 weights widened to f32 once: the {} tier has no bf16 GEMM", k.isa()),
                ),
                Some(name) if name.starts_with("amx") => {
                    (LinearPath::Bf16, format!("bf16 weights on AMX tiles ({name})"))
                }
                Some(name) => {
                    let (bf16, f32) = measured_rates(k);
                    if bf16 > f32 {
                        let why = format!("vdpbf16ps measured at {bf16:.0} GFLOP/s > f32 FMA {f32:.0} GFLOP/s");
                        (LinearPath::Bf16, format!("bf16 weights on {name}: {why}"))
                    } else {
                        let why = format!("vdpbf16ps measured at {bf16:.0} GFLOP/s <= f32 FMA {f32:.0} GFLOP/s");
                        (
                            LinearPath::Bf16Widened,
                            format!("bf16 weights widened to f32 once ({}): {why}", k.sgemm_name()),
                        )
                    }
                }
            },
        }
    }
}

/// `(vdpbf16ps, f32 FMA)` peak rates of this CPU in GFLOP/s, measured on the first call
/// (about 0.1 s) and then kept.
fn measured_rates(k: &Kernels) -> (f64, f64) {
    static RATES: std::sync::OnceLock<(f64, f64)> = std::sync::OnceLock::new();
    *RATES.get_or_init(|| (toprt_kernels::peak_probe_bf16().unwrap_or(0.0), toprt_kernels::peak_probe(k.isa())))
}

/// Words per row of the bf16 GEMM input for `k` values: the pairs, padded to a multiple
/// of 16 words so every row starts on a 64-byte line (AMX tile rows, vector loads).
pub(crate) fn bf16_row_words(k: usize) -> usize {
    k.div_ceil(2).next_multiple_of(16)
}

/// What follows the product `x · W + b`.
#[derive(Clone, Copy)]
pub(crate) enum Then<'a> {
    /// Nothing: `out = x · W + b`.
    Bias,
    /// `out = gelu(x · W + b)`, the exact erf GELU.
    Gelu,
    /// `out = LayerNorm(x · W + b + residual)`, `residual: [t, n]`.
    ResidualLayerNorm { residual: &'a [f32], norm: &'a Norm, eps: f32 },
    /// Pre-norm: `out = x · W + b + residual` (the residual stream), and each row's
    /// LayerNorm into `into` (`[t, n]`, the next linear's input).
    ResidualNormInto { residual: &'a [f32], norm: &'a Norm, eps: f32, into: RowsMut<'a> },
    /// Gated FFN: `out = x · W + b` (`[t, 2f]`, halves `[a, g]`), and
    /// `into[.., f] = gelu(a) · g`.
    GeGlu { into: RowsMut<'a> },
}

/// A `[rows, width]` buffer that the rows' post-processing writes, one row per task.
#[derive(Clone, Copy)]
pub(crate) struct RowsMut<'a> {
    ptr: SharedMut<f32>,
    len: usize,
    width: usize,
    _borrow: std::marker::PhantomData<&'a mut [f32]>,
}

impl<'a> RowsMut<'a> {
    pub fn new(buf: &'a mut [f32], width: usize) -> RowsMut<'a> {
        RowsMut { ptr: SharedMut::new(buf.as_mut_ptr()), len: buf.len(), width, _borrow: std::marker::PhantomData }
    }

    /// Row `i`.
    ///
    /// # Safety
    /// No one else reads or writes row `i` meanwhile.
    #[allow(clippy::mut_from_ref)]
    unsafe fn row(&self, i: usize) -> &mut [f32] {
        assert!((i + 1) * self.width <= self.len, "row {i} outside the buffer");
        // SAFETY: in bounds (asserted); the row is the caller's alone (contract).
        unsafe { std::slice::from_raw_parts_mut(self.ptr.get().add(i * self.width), self.width) }
    }
}

/// Rows quantised for an int8 linear (`Kernels::quantize_row`): row `i` is
/// `words[i · stride ..]`, its scale `scales[i]`; with outlier channels, their `f32`
/// values are `outliers[i · x_stride ..]`.
#[derive(Clone, Copy)]
pub(crate) struct Quantized<'a> {
    pub words: &'a [u32],
    pub scales: &'a [f32],
    pub stride: usize,
    pub outliers: &'a [f32],
    pub x_stride: usize,
}

/// Where a linear quantises its finished output rows for the next, int8, linear: the
/// quantisation is part of the producing op (after its LayerNorm or GELU, while the
/// row is in cache).
pub(crate) struct QuantizeTo<'a> {
    words: SharedMut<u32>,
    scales: SharedMut<f32>,
    stride: usize,
    rows: usize,
    /// The consumer's outlier channels, gathered into `gathered` (`x_stride` per row)
    /// and left out of the quantised row.
    outliers: &'a [u32],
    gathered: SharedMut<f32>,
    x_stride: usize,
    _borrow: std::marker::PhantomData<&'a mut [u32]>,
}

impl<'a> QuantizeTo<'a> {
    pub fn new(words: &'a mut [u32], scales: &'a mut [f32], stride: usize) -> QuantizeTo<'a> {
        let rows = scales.len().min(words.len() / stride.max(1));
        QuantizeTo {
            words: SharedMut::new(words.as_mut_ptr()),
            scales: SharedMut::new(scales.as_mut_ptr()),
            stride,
            rows,
            outliers: &[],
            gathered: SharedMut::new(std::ptr::null_mut()),
            x_stride: 0,
            _borrow: std::marker::PhantomData,
        }
    }

    /// Also gathers the `outliers` channels of each row (`f32`) into `gathered`
    /// (`x_stride` per row) and quantises the row without them.
    ///
    /// # Panics
    /// If `gathered` cannot hold the rows or `x_stride` the channels.
    pub fn with_outliers(mut self, outliers: &'a [u32], gathered: &'a mut [f32], x_stride: usize) -> QuantizeTo<'a> {
        assert!(outliers.len() <= x_stride && gathered.len() >= self.rows * x_stride);
        self.outliers = outliers;
        self.gathered = SharedMut::new(gathered.as_mut_ptr());
        self.x_stride = x_stride;
        self
    }

    /// [`QuantizeTo::new`] if `yes`.
    pub fn when(words: &'a mut [u32], scales: &'a mut [f32], stride: usize, yes: bool) -> Option<QuantizeTo<'a>> {
        yes.then(|| QuantizeTo::new(words, scales, stride))
    }

    /// Quantises `row` as row `i`.
    ///
    /// # Safety
    /// No other thread writes row `i` meanwhile.
    pub unsafe fn put(&self, k: &Kernels, i: usize, row: &mut [f32]) {
        assert!(i < self.rows && row.len().div_ceil(4) <= self.stride, "row {i} outside the quantised buffer");
        // SAFETY: row i lies inside the buffers (asserted, and in `with_outliers`) and is
        // this caller's alone.
        unsafe {
            let gathered = if self.outliers.is_empty() {
                &mut [][..]
            } else {
                std::slice::from_raw_parts_mut(self.gathered.get().add(i * self.x_stride), self.outliers.len())
            };
            // The outlier channels leave the row while it is quantised (their int8
            // weight rows are zero), and come back after.
            for (g, &j) in gathered.iter_mut().zip(self.outliers) {
                *g = std::mem::take(&mut row[j as usize]);
            }
            let words = std::slice::from_raw_parts_mut(self.words.get().add(i * self.stride), self.stride);
            *self.scales.get().add(i) = k.quantize_row(row, words);
            for (g, &j) in gathered.iter().zip(self.outliers) {
                row[j as usize] = *g;
            }
        }
    }
}

/// The encoder's linear layers of one model on one kernel table and pool.
pub(crate) struct Linears<'a> {
    pub model: &'a ModelInner,
    pub kernels: &'a Kernels,
    pub pool: &'a Pool,
    pub path: LinearPath,
}

impl Linears<'_> {
    /// `out[..t, n] = then(x[..t, k] · W + b)` for linear `kind` of layer `layer`, and,
    /// with `quantize_to`, each finished output row quantised there for the next linear.
    /// An int8 linear reads `xq`, the rows of `x` its producer quantised; on the bf16
    /// path the input rows are first rounded into `a16`, split across the pool.
    ///
    /// # Panics
    /// An int8 linear without `xq` (a bug of the forward pass).
    #[allow(clippy::too_many_arguments)]
    pub fn run(
        &self,
        layer: usize,
        kind: LinearKind,
        (x, xq): (&[f32], Option<Quantized>),
        t: usize,
        a16: &mut [u32],
        out: &mut [f32],
        then: Then,
        quantize_to: Option<QuantizeTo>,
    ) {
        let (m, k, pool) = (self.model, self.kernels, self.pool);
        let w = m.weights.layers[layer].linear(kind);
        let (kdim, n) = (w.k, w.n);
        let bias = m.f32s(&w.bias);
        let epilogue = match then {
            Then::Bias => Epilogue::Bias(bias),
            Then::Gelu => Epilogue::BiasGelu(bias),
            Then::ResidualLayerNorm { residual, .. } | Then::ResidualNormInto { residual, .. } => {
                Epilogue::BiasResidual { bias, residual: &residual[..t * n], ldr: n }
            }
            Then::GeGlu { .. } => Epilogue::Bias(bias),
        };
        let shape = |e: toprt_kernels::Error| -> ! { panic!("internal shape error in forward pass: {e}") };
        let out = &mut out[..t * n];
        let mut p = match (self.path, &w.int8) {
            (LinearPath::Int8, Some(cols)) => {
                let q = xq.unwrap_or_else(|| panic!("int8 linear {kind:?} of layer {layer} given no quantised input"));
                let scales = Int8Scales { row: &q.scales[..t], col: m.f32s(&cols.scale), col_sum: m.f32s(&cols.sum) };
                // Outlier channels: their f32 part runs inside the int8 GEMM's tiles,
                // after the dequantisation and before the epilogue.
                let p =
                    GemmParams::new_int8(q.words, q.stride, t, kdim, m.u32s(&w.weight), n, out, n, epilogue, scales);
                match &cols.outliers {
                    Some(o) => p.and_then(|p| {
                        p.with_outliers(Int8Outliers {
                            x: q.outliers,
                            ld: q.x_stride,
                            c: o.index.len(),
                            w: m.f32s(&o.weight),
                        })
                    }),
                    None => p,
                }
            }
            (LinearPath::F32 | LinearPath::Int8, _) => {
                GemmParams::new(&x[..t * kdim], kdim, t, kdim, m.f32s(&w.weight), n, out, n, epilogue)
            }
            (LinearPath::Bf16Widened, _) => {
                GemmParams::new(&x[..t * kdim], kdim, t, kdim, m.widened(layer, kind), n, out, n, epilogue)
            }
            (LinearPath::Bf16, _) => {
                let (kp, lda) = (kdim.div_ceil(2), bf16_row_words(kdim));
                assert!(a16.len() >= t * lda && x.len() >= t * kdim);
                let ptr = SharedMut::new(a16.as_mut_ptr());
                par::chunks(pool, t, pool.threads(), &|rows| {
                    for r in rows {
                        // SAFETY: row r of `a16` lies inside it (asserted) and belongs to
                        // this piece alone.
                        let dst = unsafe { std::slice::from_raw_parts_mut(ptr.get().add(r * lda), kp) };
                        k.to_bf16_pairs(&x[r * kdim..(r + 1) * kdim], dst);
                    }
                });
                GemmParams::new_bf16(&a16[..t * lda], lda, t, kdim, m.u32s(&w.weight), n, out, n, epilogue)
            }
        }
        .unwrap_or_else(|e| shape(e));
        // What each finished row needs: its LayerNorm or gating (in place, or into the
        // next linear's input rows), then the quantisation of the next linear's input.
        let ln = |norm: &Norm, eps: f32| (m.f32s(&norm.weight), m.f32s(&norm.bias), eps);
        let (norm, into) = match then {
            Then::ResidualLayerNorm { norm, eps, .. } => (Some(ln(norm, eps)), None),
            Then::ResidualNormInto { norm, eps, into, .. } => (Some(ln(norm, eps)), Some(into)),
            Then::GeGlu { into } => (None, Some(into)),
            Then::Bias | Then::Gelu => (None, None),
        };
        let gated = matches!(then, Then::GeGlu { .. });
        if norm.is_none() && into.is_none() && quantize_to.is_none() {
            par::gemm(k, pool, &mut p);
            return;
        }
        let post = |i: usize, row: &mut [f32]| {
            // SAFETY: every split hands each row to one task.
            let row = match &into {
                None => row,
                Some(into) if gated => {
                    let dst = unsafe { into.row(i) };
                    let (a, g) = row.split_at(dst.len());
                    dst.copy_from_slice(a);
                    k.gelu(dst);
                    dst.iter_mut().zip(g).for_each(|(x, &g)| *x *= g);
                    dst
                }
                Some(into) => {
                    let dst = unsafe { into.row(i) };
                    dst.copy_from_slice(row);
                    dst
                }
            };
            if let Some((lnw, lnb, eps)) = norm {
                k.layernorm(row, lnw, lnb, eps);
            }
            if let Some(q) = &quantize_to {
                // SAFETY: every split hands each row to one task.
                unsafe { q.put(k, i, row) };
            }
        };
        if par::fuse_rows(t, pool.threads()) {
            par::gemm_rows_then(k, pool, &mut p, &post);
        } else {
            par::gemm(k, pool, &mut p);
            par::rows(pool, out, t, n, &post);
        }
    }
}
