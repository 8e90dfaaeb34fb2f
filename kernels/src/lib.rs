//! toprt-kernels: the compute kernels of toprt, with nothing model-specific in them.
//!
//! * [`pack`] defines the packed weight layout (written by the converter, read in place
//!   from the memory-mapped model file by the GEMM).
//! * [`gemm`] multiplies activations by packed weights, with fused epilogues.
//! * [`ops`] holds the element-wise kernels: LayerNorm, softmax, GELU.
//! * [`isa`] resolves the instruction-set tier once into a [`isa::Kernels`] table of
//!   function pointers; `TOPRT_ISA=scalar|avx2|avx512` forces a tier.
//!
//! Every kernel has a portable scalar twin; faster tiers only overwrite the table slots
//! they improve.

pub mod gemm;
pub mod isa;
pub mod ops;
pub mod pack;

pub use isa::{Isa, IsaError, Kernels};
