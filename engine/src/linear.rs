//! The encoder's linear layers: `out = epilogue(x · W + b)` for a named
//! [`LinearKind`] of a layer, on the path the session chose for the model's precision
//! ([`LinearPath`]), split across the pool.

use crate::model::ModelInner;
use crate::par::{self, SharedMut};
use crate::pool::Pool;
use crate::weights::{LinearKind, Norm};
use std::ops::Range;
use toprt_format::Precision;
use toprt_kernels::gemm::{Epilogue, GemmParams, Int8Outliers, Int8Scales};
use toprt_kernels::pack::{self, NR};
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

/// Scratch rows for [`Linears::run_qkv_first_queries`]: the gathered input rows
/// (`[s, k]`), their quantised copies on the int8 path, and the `Q` rows (`[s, d]`).
pub(crate) struct Gathered<'a> {
    pub x: &'a mut [f32],
    pub q: Option<GatheredQuantized<'a>>,
    pub out: &'a mut [f32],
}

/// The quantised side of [`Gathered`], laid out as [`Quantized`].
pub(crate) struct GatheredQuantized<'a> {
    pub words: &'a mut [u32],
    pub scales: &'a mut [f32],
    pub outliers: &'a mut [f32],
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
        let n = w.n;
        let bias = m.f32s(&w.bias);
        let epilogue = match then {
            Then::Bias => Epilogue::Bias(bias),
            Then::Gelu => Epilogue::BiasGelu(bias),
            Then::ResidualLayerNorm { residual, .. } | Then::ResidualNormInto { residual, .. } => {
                Epilogue::BiasResidual { bias, residual: &residual[..t * n], ldr: n }
            }
            Then::GeGlu { .. } => Epilogue::Bias(bias),
        };
        let out = &mut out[..t * n];
        let mut p = self.params(layer, kind, (x, xq), t, a16, out, n, 0..n, epilogue);
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

    /// The GEMM of linear `kind` of layer `layer` on its columns `cols` (whole panels of
    /// [`NR`], or all of them): `out[r · ldc + j - cols.start] = epilogue(x[r] · W[.., j] + ..)`
    /// for the `t` rows of `x` (or of `xq`, on the int8 path); on the bf16 path the rows
    /// are first rounded into `a16`, split across the pool.
    #[allow(clippy::too_many_arguments)]
    fn params<'p>(
        &'p self,
        layer: usize,
        kind: LinearKind,
        (x, xq): (&'p [f32], Option<Quantized<'p>>),
        t: usize,
        a16: &'p mut [u32],
        out: &'p mut [f32],
        ldc: usize,
        cols: Range<usize>,
        epilogue: Epilogue<'p>,
    ) -> GemmParams<'p> {
        let (m, k, pool) = (self.model, self.kernels, self.pool);
        let w = m.weights.layers[layer].linear(kind);
        let (kdim, n) = (w.k, w.n);
        assert!(cols.end <= n && cols.start.is_multiple_of(NR) && (cols.end.is_multiple_of(NR) || cols.end == n));
        let (p0, nc) = (cols.start / NR, cols.len());
        let shape = |e: toprt_kernels::Error| -> ! { panic!("internal shape error in forward pass: {e}") };
        let f32_cols = |b: &'p [f32]| &b[p0 * kdim * NR..][..pack::packed_len(kdim, nc)];
        match (self.path, &w.int8) {
            (LinearPath::Int8, Some(q8)) => {
                let q = xq.unwrap_or_else(|| panic!("int8 linear {kind:?} of layer {layer} given no quantised input"));
                let scales = Int8Scales {
                    row: &q.scales[..t],
                    col: &m.f32s(&q8.scale)[cols.clone()],
                    col_sum: &m.f32s(&q8.sum)[cols.clone()],
                };
                let b = &m.u32s(&w.weight)[p0 * kdim.div_ceil(4) * NR..][..pack::packed_len_i8(kdim, nc)];
                // Outlier channels: their f32 part runs inside the int8 GEMM's tiles,
                // after the dequantisation and before the epilogue.
                let p = GemmParams::new_int8(q.words, q.stride, t, kdim, b, nc, out, ldc, epilogue, scales);
                match &q8.outliers {
                    Some(o) => p.and_then(|p| {
                        let c = o.index.len();
                        let w = &m.f32s(&o.weight)[p0 * c * NR..][..pack::packed_len(c, nc)];
                        p.with_outliers(Int8Outliers { x: q.outliers, ld: q.x_stride, c, w })
                    }),
                    None => p,
                }
            }
            (LinearPath::F32 | LinearPath::Int8, _) => {
                GemmParams::new(&x[..t * kdim], kdim, t, kdim, f32_cols(m.f32s(&w.weight)), nc, out, ldc, epilogue)
            }
            (LinearPath::Bf16Widened, _) => {
                GemmParams::new(&x[..t * kdim], kdim, t, kdim, f32_cols(m.widened(layer, kind)), nc, out, ldc, epilogue)
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
                let b = &m.u32s(&w.weight)[p0 * kp * NR..][..pack::packed_len_bf16(kdim, nc)];
                GemmParams::new_bf16(&a16[..t * lda], lda, t, kdim, b, nc, out, ldc, epilogue)
            }
        }
        .unwrap_or_else(|e| shape(e))
    }

    /// The QKV projection of a layer of which only each sequence's first query is read
    /// (the last layer, when only the first token's state is): `K` and `V` for all `t`
    /// rows, `Q` for the rows `firsts` alone (gathered into `g`, one GEMM on those rows,
    /// scattered back). `out` is `[t, 3d]`; the other rows' `Q` columns are left as they
    /// were. Each row's values are bit for bit those of [`Linears::run`] (a GEMM computes
    /// a row the same whatever the other rows of the call).
    ///
    /// Returns false, having done nothing, when `d` is not a whole number of panels.
    #[allow(clippy::too_many_arguments)]
    pub fn run_qkv_first_queries(
        &self,
        layer: usize,
        (x, xq): (&[f32], Option<Quantized>),
        t: usize,
        firsts: &[u32],
        g: Gathered,
        a16: &mut [u32],
        out: &mut [f32],
    ) -> bool {
        let (m, pool) = (self.model, self.pool);
        let w = m.weights.layers[layer].linear(LinearKind::Qkv);
        let (kdim, n) = (w.k, w.n);
        let d = n / 3;
        if !d.is_multiple_of(NR) || 3 * d != n {
            return false;
        }
        let bias = m.f32s(&w.bias);
        let s = firsts.len();
        // K and V of every row.
        let mut p = self.params(
            layer,
            LinearKind::Qkv,
            (x, xq),
            t,
            a16,
            &mut out[d..t * n],
            n,
            d..n,
            Epilogue::Bias(&bias[d..]),
        );
        par::gemm(self.kernels, pool, &mut p);
        // Q of the first rows.
        let xg = &mut g.x[..s * kdim];
        for (i, &r) in firsts.iter().enumerate() {
            let r = r as usize;
            xg[i * kdim..(i + 1) * kdim].copy_from_slice(&x[r * kdim..(r + 1) * kdim]);
        }
        let gq = match (xq, g.q) {
            (Some(q), Some(gq)) if self.path == LinearPath::Int8 && w.int8.is_some() => {
                for (i, &r) in firsts.iter().enumerate() {
                    let r = r as usize;
                    gq.words[i * q.stride..(i + 1) * q.stride].copy_from_slice(&q.words[r * q.stride..][..q.stride]);
                    gq.scales[i] = q.scales[r];
                    if q.x_stride > 0 {
                        gq.outliers[i * q.x_stride..(i + 1) * q.x_stride]
                            .copy_from_slice(&q.outliers[r * q.x_stride..][..q.x_stride]);
                    }
                }
                Some(Quantized {
                    words: &gq.words[..],
                    scales: &gq.scales[..],
                    stride: q.stride,
                    outliers: &gq.outliers[..],
                    x_stride: q.x_stride,
                })
            }
            _ => None,
        };
        let qo = &mut g.out[..s * d];
        let mut p = self.params(layer, LinearKind::Qkv, (xg, gq), s, a16, qo, d, 0..d, Epilogue::Bias(&bias[..d]));
        par::gemm(self.kernels, pool, &mut p);
        for (i, &r) in firsts.iter().enumerate() {
            let r = r as usize;
            out[r * n..r * n + d].copy_from_slice(&qo[i * d..(i + 1) * d]);
        }
        true
    }
}
