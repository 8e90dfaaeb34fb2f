//! toprt-kernels: the compute kernels of toprt, with nothing model-specific in them.
//!
//! * [`pack`] defines the packed weight layout (written by the converter, read in place
//!   from the memory-mapped model file by the GEMM).
//! * [`aligned`] holds [`aligned::AVec`], the 64-byte aligned buffer of activations.
//! * [`cpu`] is the one probe of the CPU: features, the AMX grant, cache sizes.
//! * [`gemm`] multiplies activations by packed weights, with fused epilogues.
//! * [`ops`] holds the element-wise kernels: LayerNorm, softmax, GELU, embedding sum +
//!   LayerNorm.
//! * [`Kernels`] is the dispatch table of one instruction-set tier, built once per
//!   session; `TOPRT_ISA=scalar|avx2|avx512` forces a tier.
//! * [`peak_probe`], [`peak_probe_bf16`] and [`peak_probe_amx`] measure a core's peak
//!   for "% of peak" reports.
//! * `simd` (private) is the small vector vocabulary the SIMD kernels are written in,
//!   once, generic over the instruction set.
//! * [`split`] is the one way work is split into balanced pieces (GEMM row blocks, the
//!   engine's threads).
//! * [`Error`] is the crate's one error type: an unusable tier, or GEMM operands that
//!   do not fit their shape.
//! * [`tol`] names how far each SIMD kernel may be from its scalar twin.
//!
//! Every kernel has a portable scalar twin; faster tiers only overwrite the table slots
//! they improve.

pub mod aligned;
pub mod cpu;
mod error;
pub mod gemm;
mod isa;
pub mod ops;
pub mod pack;
mod probe;
pub(crate) mod simd;
pub mod split;
mod table;
pub mod tol;

#[cfg(test)]
mod tests;

pub use cpu::{CacheSizes, Cpu, Features, Isa};
pub use error::{Error, Operand};
pub use probe::{peak_probe, peak_probe_amx, peak_probe_bf16};
pub use table::Kernels;
