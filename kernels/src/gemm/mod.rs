//! Weight GEMM: `C[m, n] = A[m, k] · B[k, n] (+ epilogue)`, with `B` pre-packed in the
//! panel layout of [`crate::pack`].
//!
//! ## Contract
//! * `A` is row-major with leading dimension `lda >= k` (activations, read in place, any
//!   alignment).
//! * `B` is packed (`pack::packed_len(k, n)` floats), usually straight from the opened model's bytes:
//!
//! ```text
//!            n ──────────────────────────▶
//!          ┌────────────┬────────────┬──────────┐
//!   k      │  panel 0   │  panel 1   │ panel 2  │  panel = NR = 32 columns,
//!   │      │ k × 32     │ k × 32     │ ░░░░ pad │  last one zero-padded
//!   ▼      └────────────┴────────────┴──────────┘
//!   memory: [p0 k0 c0..c31][p0 k1 c0..c31] … [p0 k(k-1) …][p1 k0 c0..c31] …
//! ```
//! * `C` is row-major with leading dimension `ldc >= n`; only `[m, n]` is written (never
//!   the padding columns of the last panel, never the gap between rows), and it is never
//!   read before it has been written by the same call, so NaN garbage in `C` is fine.
//! * A call covers a range of column panels ([`crate::Kernels::gemm_panels`]), so a
//!   thread pool can split one GEMM by panels without synchronisation, or by rows
//!   ([`crate::Kernels::sgemm_bias_residual_layernorm`], [`GemmParams::rows`]).
//! * **Accumulation order.** Every output element is one chain of fused multiply-adds
//!   over `k` ascending, starting from 0, in every SIMD tier (the scalar twin: one chain
//!   of multiply-then-add). K-blocking only parks the running sum in `C` at full f32
//!   precision and picks it up again, so it does not change a single bit. The portable
//!   tier (the `gemm` crate's kernels, `portable.rs`) is the exception to the single
//!   chain: it sums fixed chunks of 512 `k` and adds each chunk's sum to `C`. Nothing in
//!   the order depends on `m`, on a row's place in its register tile, or on the panel
//!   split: a sequence gives bit-identical outputs alone and inside any batch, on any
//!   number of threads (tested).
//!
//! ## Files
//! The frame is four subjects, four files: [`GemmParams`] and its checks
//! (`params.rs`), the cache blocking ([`Blocking`], `blocking.rs`), the driver that
//! walks the blocks and hands register tiles to a microkernel (`driver.rs`), and the
//! GEMM over whole rows then a per-row op such as LayerNorm (`rows.rs`). Beneath it the generic tile body
//! (`microkernel.rs`), the scalar twin (`scalar.rs`), one file per instruction set
//! (`avx2.rs`, `avx512.rs`, `amx.rs`) and the portable tier on the `gemm` crate
//! (`portable.rs`).

#[cfg(target_arch = "x86_64")]
pub(crate) mod amx;
#[cfg(target_arch = "x86_64")]
pub(crate) mod avx2;
#[cfg(target_arch = "x86_64")]
pub(crate) mod avx512;
mod blocking;
pub(crate) mod driver;
pub(crate) mod microkernel;
mod operands;
mod params;
pub(crate) mod portable;
mod rows;
pub(crate) mod scalar;

pub use blocking::Blocking;
#[cfg(test)]
pub(crate) use blocking::NR_BYTES_PER_ROW;
pub use operands::{Epilogue, Operands};
pub(crate) use params::GemmFn;
pub use params::{GemmParams, Int8Outliers, Int8Scales, MAX_K_INT8};
pub(crate) use rows::gemm_rows_then;
pub use rows::LN_BLOCK_ROWS;
#[cfg(test)]
pub(crate) use scalar::scalar_gemm_bf16;
pub(crate) use scalar::{scalar_gemm_i8, scalar_sgemm_packed};
