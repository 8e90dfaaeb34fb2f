//! The vocabulary of a GEMM call: what its operands hold ([`Operands`]) and what happens
//! to a finished tile ([`Epilogue`]).

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
    /// (For the LayerNorm that follows, see [`crate::Kernels::sgemm_bias_residual_layernorm`].)
    BiasResidual { bias: &'a [f32], residual: &'a [f32], ldr: usize },
    /// `C = gelu(A·B + bias + R)`: the GELU of [`Epilogue::BiasGelu`] on a sum with a
    /// second term (the `f32` part of an int8 linear with outlier channels).
    BiasResidualGelu { bias: &'a [f32], residual: &'a [f32], ldr: usize },
}

/// What the operands of a GEMM hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operands {
    /// `f32` activations, `f32` `panel32` weight ([`GemmParams::new`](super::GemmParams::new)).
    F32,
    /// bf16 pairs: activations rounded to bf16 and a `panel32x2` weight
    /// ([`GemmParams::new_bf16`](super::GemmParams::new_bf16)); only a table with a bf16 GEMM runs it
    /// ([`crate::Kernels::has_gemm_bf16`]).
    Bf16,
    /// int8 quads: activations quantised per row to `q + 128` bytes with a row scale,
    /// and a `panel32x4` weight with column scales and sums
    /// ([`GemmParams::new_int8`](super::GemmParams::new_int8)); every table runs it
    /// ([`crate::Kernels::gemm_i8_name`]).
    Int8,
}
