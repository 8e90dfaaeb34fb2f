//! AVX2 + FMA GEMM: `avx2_sgemm_6x16`, 6 rows × 16 columns (half a packed panel) per
//! register tile: 12 ymm accumulators + 2 ymm of `B` + 1 broadcast of `A` = 15 of the
//! 16 registers. Per `k`: 2 loads of `B`, 6 broadcasts, 12 FMAs (6 cycles at 2 FMA/cycle).
//!
//! A 3 × 32 tile (also 12 accumulators) would need 4 registers of `B` plus one for `A`,
//! 17 in all, or re-load `B` from L1 for every row (15 loads per 12 FMAs, load-bound);
//! 6 × 16 keeps the loads at 8 per 12 FMAs.

use super::driver::{drive, TileFn, TileJob, TileSet};
use super::{microkernel, GemmParams, Operands};
use crate::cpu::{Cpu, Isa};
use crate::simd::avx2::Avx2;
use crate::Kernels;
use std::ops::Range;

/// Rows of the full register tile.
pub(crate) const MR: usize = 6;
/// Vectors (of 8 lanes) per tile row.
const NV: usize = 2;
const COLS: usize = NV * 8;

/// The microkernel for `R` rows (`R` in `1..=MR`).
///
/// # Safety
/// As [`super::TileFn`]; the CPU supports AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
unsafe fn avx2_sgemm_6x16_tile<const R: usize>(t: &TileJob) {
    // SAFETY: forwarded contract; the features are enabled on this function.
    unsafe { microkernel::tile::<Avx2, microkernel::Fma, R, NV>(t) }
}

static TILES: [TileFn; MR] = [
    avx2_sgemm_6x16_tile::<1>,
    avx2_sgemm_6x16_tile::<2>,
    avx2_sgemm_6x16_tile::<3>,
    avx2_sgemm_6x16_tile::<4>,
    avx2_sgemm_6x16_tile::<5>,
    avx2_sgemm_6x16_tile::<6>,
];

pub(crate) static SET: TileSet = TileSet { operands: Operands::F32, mr: MR, cols: COLS, tiles: &TILES };

/// The AVX2 [`super::GemmFn`].
///
/// # Safety
/// As [`super::GemmFn`]; the CPU supports AVX2 and FMA.
pub(crate) unsafe fn avx2_sgemm_6x16(p: &GemmParams, panels: Range<usize>) {
    // SAFETY: forwarded contract.
    unsafe { drive(p, panels, &SET) }
}

/// Installs this file's GEMM in `k` where `cpu` has the AVX2 tier.
pub(crate) fn plug(k: &mut Kernels, cpu: &Cpu) {
    if cpu.supports(Isa::Avx2) {
        k.sgemm = avx2_sgemm_6x16;
        k.sgemm_name = "avx2_sgemm_6x16";
    }
}
