//! toprt-kernels: the compute kernels of toprt, with nothing model-specific in them.
//!
//! * [`cpu`] is the one probe of the CPU: instruction-set features, the AMX tile-state
//!   grant, cache sizes, and the tiers ([`Isa`]) they allow. Everything else asks it;
//!   `build.rs` includes the same file.
//! * [`Kernels`] is the dispatch table of one tier, built once per session from the
//!   scalar table by the plugs of each tier file (`isa.rs`); `TOPRT_ISA=scalar|portable|avx2|avx512`
//!   forces a tier. A table is a capability: it only holds kernels this CPU runs, its
//!   methods are the only way to reach a SIMD kernel, and they are safe.
//! * [`gemm`] multiplies activations by packed weights, with fused epilogues: the call
//!   and its checks ([`gemm::GemmParams`]), the cache blocking, the driver, the generic
//!   microkernel and one file per instruction set.
//! * [`ops`] holds the element-wise kernels: LayerNorm, softmax, GELU, embedding sum +
//!   LayerNorm.
//! * [`pack`] defines the packed weight layout (written by the converter, read in place
//!   from the opened model's bytes by the GEMM).
//! * [`split`] is the one way work is split into balanced pieces (the GEMM's row
//!   blocks, the engine's threads).
//! * [`aligned`] holds [`aligned::AVec`], the 64-byte aligned buffer for activations
//!   and in-memory models.
//! * [`peak_probe`], [`peak_probe_bf16`], [`peak_probe_int8`] and [`peak_probe_amx`] measure a core's peak
//!   for "% of peak" reports, [`bandwidth_probe`] its memory read bandwidth.
//! * [`Error`] is the crate's one error type: an unusable tier, or GEMM operands that
//!   do not fit their shape.
//! * [`tol`] names how far each SIMD kernel may be from its scalar twin.
//! * `simd` (private) is the small vector vocabulary the SIMD kernels are written in,
//!   once, generic over the instruction set.
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
pub use probe::{bandwidth_probe, peak_probe, peak_probe_amx, peak_probe_bf16, peak_probe_int8};
pub use table::Kernels;
