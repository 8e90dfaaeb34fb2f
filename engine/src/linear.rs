//! The encoder's linear layers: `out = epilogue(x · W + b)` for a named
//! [`LinearKind`] of a layer, on the path the session chose for the model's precision
//! ([`LinearPath`]), split across the pool.

use crate::model::ModelInner;
use crate::par::{self, SharedMut};
use crate::pool::Pool;
use crate::weights::{LinearKind, Norm};
use toprt_format::Precision;
use toprt_kernels::gemm::{Epilogue, GemmParams};
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
}

impl LinearPath {
    pub fn new(precision: Precision, k: &Kernels) -> LinearPath {
        match (precision, k.has_gemm_bf16()) {
            (Precision::F32, _) => LinearPath::F32,
            (Precision::Bf16, true) => LinearPath::Bf16,
            (Precision::Bf16, false) => LinearPath::Bf16Widened,
        }
    }
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
}

/// The encoder's linear layers of one model on one kernel table and pool.
pub(crate) struct Linears<'a> {
    pub model: &'a ModelInner,
    pub kernels: &'a Kernels,
    pub pool: &'a Pool,
    pub path: LinearPath,
}

impl Linears<'_> {
    /// `out[..t, n] = then(x[..t, k] · W + b)` for linear `kind` of layer `layer`. On the
    /// bf16 path the input rows are first rounded into `a16`, split across the pool.
    #[allow(clippy::too_many_arguments)]
    pub fn run(
        &self,
        layer: usize,
        kind: LinearKind,
        x: &[f32],
        t: usize,
        a16: &mut [u32],
        out: &mut [f32],
        then: Then,
    ) {
        let (m, k, pool) = (self.model, self.kernels, self.pool);
        let w = m.weights.layers[layer].linear(kind);
        let (kdim, n) = (w.k, w.n);
        let bias = m.f32s(&w.bias);
        let epilogue = match then {
            Then::Bias => Epilogue::Bias(bias),
            Then::Gelu => Epilogue::BiasGelu(bias),
            Then::ResidualLayerNorm { residual, .. } => {
                Epilogue::BiasResidual { bias, residual: &residual[..t * n], ldr: n }
            }
        };
        let shape = |e: toprt_kernels::Error| -> ! { panic!("internal shape error in forward pass: {e}") };
        let out = &mut out[..t * n];
        let mut p = match self.path {
            LinearPath::F32 => GemmParams::new(&x[..t * kdim], kdim, t, kdim, m.f32s(&w.weight), n, out, n, epilogue),
            LinearPath::Bf16Widened => {
                GemmParams::new(&x[..t * kdim], kdim, t, kdim, m.widened(layer, kind), n, out, n, epilogue)
            }
            LinearPath::Bf16 => {
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
        match then {
            Then::Bias | Then::Gelu => par::gemm(k, pool, &mut p),
            Then::ResidualLayerNorm { norm, eps, .. } => {
                let (lnw, lnb) = (m.f32s(&norm.weight), m.f32s(&norm.bias));
                if par::fuse_layernorm(t, pool.threads()) {
                    par::gemm_layernorm_rows(k, pool, &mut p, lnw, lnb, eps);
                } else {
                    par::gemm(k, pool, &mut p);
                    par::rows(pool, out, t, n, &|_, row| k.layernorm(row, lnw, lnb, eps));
                }
            }
        }
    }
}
