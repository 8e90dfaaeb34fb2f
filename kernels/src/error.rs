//! The crate's one error type: a tier that cannot be used, or a GEMM whose operands do
//! not fit its shape.

use crate::cpu::Isa;
use std::fmt;

/// Everything the kernels refuse.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// A tier name that is none of `scalar`, `portable`, `avx2`, `avx512` (e.g. in `TOPRT_ISA`).
    #[error("unknown instruction set '{0}' (expected scalar, portable, avx2 or avx512)")]
    UnknownIsa(String),
    /// A tier this CPU cannot run.
    #[error("instruction set {0} was requested but this CPU does not support it")]
    Unsupported(Isa),
    /// A GEMM operand with fewer elements than its shape needs (for packed `B`: not
    /// exactly the packed length). Elements are `f32` values, or 32-bit pair words for
    /// bf16 `A` and `B`.
    #[error("{operand} has {have} elements, the GEMM's shape needs {need}")]
    Shape { operand: Operand, have: usize, need: usize },
    /// A GEMM operand whose row stride is shorter than its rows.
    #[error("{operand} has a row stride of {stride}, shorter than its rows of {row}")]
    Stride { operand: Operand, stride: usize, row: usize },
}

/// An operand of a GEMM (`C = A·B + epilogue`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operand {
    /// The activations, `[m, k]`.
    A,
    /// The packed weight, `[k, n]`.
    B,
    /// The output, `[m, n]`.
    C,
    /// The epilogue's bias, `[n]`.
    Bias,
    /// The epilogue's residual, `[m, n]`.
    Residual,
    /// The row or column scales or sums of an int8 call.
    Scales,
    /// The `f32` outlier channels of an int8 call (activations or weight rows).
    Outliers,
}

impl fmt::Display for Operand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Operand::A => "A",
            Operand::B => "packed B",
            Operand::C => "C",
            Operand::Bias => "the bias",
            Operand::Residual => "the residual",
            Operand::Scales => "an int8 scale table",
            Operand::Outliers => "the f32 outlier channels",
        })
    }
}
