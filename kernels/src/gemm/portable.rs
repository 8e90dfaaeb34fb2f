//! The portable tier's `f32` GEMM, `portable_sgemm_5x8`: the generic microkernel on
//! 4-lane [`Emu`] vectors (plain `[f32; 4]`, which the compiler keeps in SSE2 or NEON
//! registers), 4 rows × 8 columns (a quarter of a packed panel) per register tile: 8
//! accumulators + 2 of `B` + the broadcast `A` and a product, within SSE2's 16
//! registers. Each output is the scalar twin's chain: an unfused multiply, then an add,
//! over `k` ascending, so the tier's outputs do not depend on a fused multiply-add the
//! CPU may lack, and, as every tier's, not on the batch.
//!
//! bf16 weights are widened to `f32` (there is no bf16 GEMM here) and int8 runs on the
//! scalar twin.

use super::driver::{drive, TileFn, TileJob, TileSet};
use super::{microkernel, GemmParams, Operands};
use crate::cpu::{Cpu, Isa};
use crate::simd::emu::Emu;
use crate::Kernels;
use std::ops::Range;

/// Lanes per vector.
const LANES: usize = 4;
/// Rows of the full register tile.
pub(crate) const MR: usize = 5;
/// Vectors per tile row.
const NV: usize = 2;
const COLS: usize = NV * LANES;

/// The microkernel for `R` rows (`R` in `1..=MR`).
///
/// # Safety
/// As [`super::TileFn`] (plain Rust: any CPU).
unsafe fn portable_sgemm_tile<const R: usize>(t: &TileJob) {
    // SAFETY: forwarded contract.
    unsafe { microkernel::tile::<Emu<LANES>, microkernel::Fma, R, NV>(t) }
}

static TILES: [TileFn; MR] = [
    portable_sgemm_tile::<1>,
    portable_sgemm_tile::<2>,
    portable_sgemm_tile::<3>,
    portable_sgemm_tile::<4>,
    portable_sgemm_tile::<5>,
];

pub(crate) static SET: TileSet =
    TileSet { operands: Operands::F32, mr: MR, cols: COLS, tiles: &TILES, zero_point: false };

/// The portable [`super::GemmFn`].
///
/// # Safety
/// See [`super::GemmFn`].
pub(crate) unsafe fn portable_sgemm_5x8(p: &GemmParams, panels: Range<usize>) {
    // SAFETY: forwarded contract.
    unsafe { drive(p, panels, &SET) }
}

/// Installs this file's GEMM in `k` (every CPU runs the portable tier).
pub(crate) fn plug(k: &mut Kernels, cpu: &Cpu) {
    if cpu.supports(Isa::Portable) {
        k.sgemm = portable_sgemm_5x8;
        k.sgemm_name = "portable_sgemm_5x8";
    }
}
