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
use std::arch::x86_64::__m256;
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
    unsafe { microkernel::tile::<Avx2, microkernel::Fma, R, NV>(t, None) }
}

static TILES: [TileFn; MR] = [
    avx2_sgemm_6x16_tile::<1>,
    avx2_sgemm_6x16_tile::<2>,
    avx2_sgemm_6x16_tile::<3>,
    avx2_sgemm_6x16_tile::<4>,
    avx2_sgemm_6x16_tile::<5>,
    avx2_sgemm_6x16_tile::<6>,
];

pub(crate) static SET: TileSet =
    TileSet { operands: Operands::F32, mr: MR, cols: COLS, tiles: &TILES, zero_point: false };

/// int8 without VNNI: `vpmaddubsw` multiplies unsigned by signed bytes into *saturating*
/// 16-bit pair sums, so it is fed `|w|` (0..=127) and the activation with `w`'s sign
/// (`vpsignb`, -127..=127): every pair sum is at most `2 · 127 · 127 = 32 258`, inside
/// `i16`, and never saturates. `vpmaddwd` by ones then adds the two pairs of each quad
/// into the `i32` lane. The activation bytes arrive as `q + 128`; `xor 0x80` gives `q`
/// back, so this kernel sums `Σ q_a · q_w` directly (no zero point). It relies on both
/// operands staying inside -127..=127: the quantisers never write -128 (the activation
/// byte 0, or the weight byte 0x80).
struct MaddubsSign;

impl microkernel::Mac<Avx2> for MaddubsSign {
    #[inline(always)]
    unsafe fn mac(a: __m256, b: __m256, acc: __m256) -> __m256 {
        use std::arch::x86_64::*;
        // SAFETY: the entry functions that inline this enable avx2 (contract of
        // `Mac::mac`); the casts only reinterpret 256 bits.
        unsafe {
            let q = _mm256_xor_si256(_mm256_castps_si256(a), _mm256_set1_epi8(0x80u8 as i8));
            let w = _mm256_castps_si256(b);
            let pairs = _mm256_maddubs_epi16(_mm256_abs_epi8(w), _mm256_sign_epi8(q, w));
            let quads = _mm256_madd_epi16(pairs, _mm256_set1_epi16(1));
            _mm256_castsi256_ps(_mm256_add_epi32(_mm256_castps_si256(acc), quads))
        }
    }
}

/// The int8 AVX2 microkernel for `R` rows: the 6 × 16 tile of `i32` sums, one quad of
/// `k` rows per step.
///
/// # Safety
/// As [`super::TileFn`]; the CPU supports AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
unsafe fn avx2_gemm_i8_6x16_tile<const R: usize>(t: &TileJob) {
    // SAFETY: forwarded contract; the features are enabled on this function.
    unsafe { microkernel::tile::<Avx2, MaddubsSign, R, NV>(t, None) }
}

static TILES_I8: [TileFn; MR] = [
    avx2_gemm_i8_6x16_tile::<1>,
    avx2_gemm_i8_6x16_tile::<2>,
    avx2_gemm_i8_6x16_tile::<3>,
    avx2_gemm_i8_6x16_tile::<4>,
    avx2_gemm_i8_6x16_tile::<5>,
    avx2_gemm_i8_6x16_tile::<6>,
];

pub(crate) static SET_I8: TileSet =
    TileSet { operands: Operands::Int8, mr: MR, cols: COLS, tiles: &TILES_I8, zero_point: false };

/// The AVX2 int8 [`super::GemmFn`].
///
/// # Safety
/// As [`super::GemmFn`]; the CPU supports AVX2 and FMA.
unsafe fn avx2_gemm_i8_6x16(p: &GemmParams, panels: Range<usize>) {
    // SAFETY: forwarded contract.
    unsafe { drive(p, panels, &SET_I8) }
}

/// AVX-VNNI (the 256-bit `vpdpbusd` of Alder Lake, Sapphire Rapids and Zen 5): one
/// instruction per step instead of four, on unsigned `q + 128` activation bytes (the
/// zero point comes out in the finish).
struct DpbusdVex;

impl microkernel::Mac<Avx2> for DpbusdVex {
    #[inline(always)]
    unsafe fn mac(a: __m256, b: __m256, acc: __m256) -> __m256 {
        use std::arch::x86_64::*;
        // SAFETY: the entry functions that inline this enable avxvnni; the casts only
        // reinterpret 256 bits.
        unsafe {
            _mm256_castsi256_ps(_mm256_dpbusd_avx_epi32(
                _mm256_castps_si256(acc),
                _mm256_castps_si256(a),
                _mm256_castps_si256(b),
            ))
        }
    }
}

/// The AVX-VNNI int8 microkernel for `R` rows (6 × 16).
///
/// # Safety
/// As [`super::TileFn`]; the CPU supports AVX2, FMA and AVX-VNNI.
#[target_feature(enable = "avx2,fma,avxvnni")]
unsafe fn avxvnni_gemm_i8_6x16_tile<const R: usize>(t: &TileJob) {
    // SAFETY: forwarded contract; the features are enabled on this function.
    unsafe { microkernel::tile::<Avx2, DpbusdVex, R, NV>(t, None) }
}

static TILES_VNNI: [TileFn; MR] = [
    avxvnni_gemm_i8_6x16_tile::<1>,
    avxvnni_gemm_i8_6x16_tile::<2>,
    avxvnni_gemm_i8_6x16_tile::<3>,
    avxvnni_gemm_i8_6x16_tile::<4>,
    avxvnni_gemm_i8_6x16_tile::<5>,
    avxvnni_gemm_i8_6x16_tile::<6>,
];

pub(crate) static SET_VNNI: TileSet =
    TileSet { operands: Operands::Int8, mr: MR, cols: COLS, tiles: &TILES_VNNI, zero_point: true };

/// The AVX-VNNI int8 [`super::GemmFn`].
///
/// # Safety
/// As [`super::GemmFn`]; the CPU supports AVX2, FMA and AVX-VNNI.
unsafe fn avxvnni_gemm_i8_6x16(p: &GemmParams, panels: Range<usize>) {
    // SAFETY: forwarded contract.
    unsafe { drive(p, panels, &SET_VNNI) }
}

/// The 6 × 16 VNNI tile again, on the EVEX (AVX512-VNNI + VL) encoding of the same
/// 256-bit `vpdpbusd`: the tests run it on CPUs that have AVX512-VNNI but not AVX-VNNI
/// (Zen 4, Ice Lake), so the zero-point path of the 6 × 16 geometry is checked there
/// too. Never in a table.
#[cfg(test)]
struct DpbusdEvex256;

#[cfg(test)]
impl microkernel::Mac<Avx2> for DpbusdEvex256 {
    #[inline(always)]
    unsafe fn mac(a: __m256, b: __m256, acc: __m256) -> __m256 {
        use std::arch::x86_64::*;
        // SAFETY: the entry function enables avx512vnni and avx512vl; the casts only
        // reinterpret 256 bits.
        unsafe {
            _mm256_castsi256_ps(_mm256_dpbusd_epi32(
                _mm256_castps_si256(acc),
                _mm256_castps_si256(a),
                _mm256_castps_si256(b),
            ))
        }
    }
}

/// # Safety
/// As [`super::TileFn`]; the CPU supports AVX2, FMA, AVX512-VNNI and AVX512-VL.
#[cfg(test)]
#[target_feature(enable = "avx2,fma,avx512f,avx512vl,avx512vnni")]
unsafe fn evex256vnni_gemm_i8_6x16_tile<const R: usize>(t: &TileJob) {
    // SAFETY: forwarded contract; the features are enabled on this function.
    unsafe { microkernel::tile::<Avx2, DpbusdEvex256, R, NV>(t, None) }
}

#[cfg(test)]
static TILES_EVEX256: [TileFn; MR] = [
    evex256vnni_gemm_i8_6x16_tile::<1>,
    evex256vnni_gemm_i8_6x16_tile::<2>,
    evex256vnni_gemm_i8_6x16_tile::<3>,
    evex256vnni_gemm_i8_6x16_tile::<4>,
    evex256vnni_gemm_i8_6x16_tile::<5>,
    evex256vnni_gemm_i8_6x16_tile::<6>,
];

#[cfg(test)]
static SET_EVEX256: TileSet =
    TileSet { operands: Operands::Int8, mr: MR, cols: COLS, tiles: &TILES_EVEX256, zero_point: true };

/// The test-only [`super::GemmFn`] of [`DpbusdEvex256`].
///
/// # Safety
/// As [`super::GemmFn`]; the CPU supports AVX2, FMA, AVX512-VNNI and AVX512-VL.
#[cfg(test)]
pub(crate) unsafe fn evex256vnni_gemm_i8_6x16(p: &GemmParams, panels: Range<usize>) {
    // SAFETY: forwarded contract.
    unsafe { drive(p, panels, &SET_EVEX256) }
}

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
        if cpu.features().avx_vnni {
            k.gemm_i8 = avxvnni_gemm_i8_6x16;
            k.gemm_i8_name = "avxvnni_gemm_i8_6x16";
        } else {
            k.gemm_i8 = avx2_gemm_i8_6x16;
            k.gemm_i8_name = "avx2_gemm_i8_6x16";
        }
    }
}
