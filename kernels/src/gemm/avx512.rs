//! AVX-512 GEMM: `avx512_sgemm_10x32`, 10 rows × 32 columns (one packed panel) per
//! register tile: 20 zmm accumulators + 2 zmm of `B` + 1 broadcast of `A` (23 of the 32
//! registers). Per `k`: 2 loads of `B`, 10 broadcasts, 20 FMAs — on Zen 4 (512-bit FMA
//! double-pumped, one per cycle) 20 cycles, on cores with two 512-bit FMA units 10
//! cycles; either way fewer loads than the load ports take and 20 independent chains
//! (8 cover latency × throughput).
//!
//! Why not 12–14 rows (24–28 accumulators): `A` is read in place, one stream per row,
//! and each row's address lives in a general-purpose register. Past 11 rows the 15
//! usable GPRs run out and LLVM spills row pointers inside the hot loop (checked in
//! the generated assembly); 10 rows leave it spill-free. Packing `A` would lift the
//! limit at the cost of a packing pass and a scratch buffer per call.

use super::{drive, microkernel, GemmParams, TileFn, TileJob, TileSet};
use crate::simd::avx512::Avx512;
use std::ops::Range;

/// Rows of the full register tile.
pub const MR: usize = 10;
/// Vectors (of 16 lanes) per tile row.
const NV: usize = 2;
const COLS: usize = NV * 16;

/// The microkernel for `R` rows (`R` in `1..=MR`).
///
/// # Safety
/// As [`super::TileFn`]; the CPU supports the AVX-512 tier.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx2,fma")]
unsafe fn avx512_sgemm_10x32_tile<const R: usize>(t: &TileJob) {
    // SAFETY: forwarded contract; the features are enabled on this function.
    unsafe { microkernel::tile::<Avx512, R, NV>(t) }
}

static TILES: [TileFn; MR] = [
    avx512_sgemm_10x32_tile::<1>,
    avx512_sgemm_10x32_tile::<2>,
    avx512_sgemm_10x32_tile::<3>,
    avx512_sgemm_10x32_tile::<4>,
    avx512_sgemm_10x32_tile::<5>,
    avx512_sgemm_10x32_tile::<6>,
    avx512_sgemm_10x32_tile::<7>,
    avx512_sgemm_10x32_tile::<8>,
    avx512_sgemm_10x32_tile::<9>,
    avx512_sgemm_10x32_tile::<10>,
];

pub(crate) static SET: TileSet = TileSet { mr: MR, cols: COLS, tiles: &TILES };

/// The AVX-512 [`super::GemmFn`].
///
/// # Safety
/// As [`super::GemmFn`]; the CPU supports the AVX-512 tier.
pub unsafe fn avx512_sgemm_10x32(p: &GemmParams, panels: Range<usize>) {
    // SAFETY: forwarded contract.
    unsafe { drive(p, panels, &SET) }
}
