//! AVX-512 GEMM: `avx512_sgemm_10x32`, 10 rows × 32 columns (one packed panel) per
//! register tile: 20 zmm accumulators + 2 zmm of `B` + 1 broadcast of `A` (23 of the 32
//! registers). Per `k`: 2 loads of `B`, 10 broadcasts, 20 FMAs — on Zen 4 (512-bit FMA
//! double-pumped, one per cycle) 20 cycles, on cores with two 512-bit FMA units 10
//! cycles; either way fewer loads than the load ports take and 20 independent chains
//! (8 cover latency × throughput).
//!
//! `avx512bf16_gemm_10x32` is the same tile on bf16 operands (where the CPU has
//! AVX512_BF16): a step is a pair of `k` rows, and its 20 `vdpbf16ps` each multiply a
//! broadcast pair of activations by 16 pairs of weights, adding both products into the
//! f32 lane — twice the MACs of an FMA step for the same loads, and half the weight
//! bytes from memory.
//!
//! Why not 12–14 rows (24–28 accumulators): `A` is read in place, one stream per row,
//! and each row's address lives in a general-purpose register. Past 11 rows the 15
//! usable GPRs run out and LLVM spills row pointers inside the hot loop (checked in
//! the generated assembly); 10 rows leave it spill-free. Packing `A` would lift the
//! limit at the cost of a packing pass and a scratch buffer per call.

use super::driver::{drive, TileFn, TileJob, TileSet};
use super::{microkernel, GemmParams, Operands};
use crate::cpu::{Cpu, Isa};
use crate::simd::avx512::Avx512;
use crate::Kernels;
use std::arch::x86_64::{__m512, __m512bh, _mm512_dpbf16_ps};
use std::ops::Range;

/// Rows of the full register tile (both operand kinds).
pub(crate) const MR: usize = 10;
/// Vectors (of 16 lanes) per tile row.
const NV: usize = 2;
const COLS: usize = NV * 16;

microkernel::steps_fn!(
    avx512_sgemm_10x32_steps,
    Avx512,
    microkernel::Fma,
    NV,
    "avx512f,avx512bw,avx512vl,avx512dq,avx2,fma"
);

/// The microkernel for `R` rows (`R` in `1..=MR`).
///
/// # Safety
/// As [`super::TileFn`]; the CPU supports the AVX-512 tier.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx2,fma")]
unsafe fn avx512_sgemm_10x32_tile<const R: usize>(t: &TileJob) {
    // SAFETY: forwarded contract; the features are enabled on this function.
    unsafe { microkernel::tile::<Avx512, microkernel::Fma, R, NV>(t, Some(avx512_sgemm_10x32_steps::<R>)) }
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

pub(crate) static SET: TileSet =
    TileSet { operands: Operands::F32, mr: MR, cols: COLS, tiles: &TILES, zero_point: false };

/// `vdpbf16ps`: one step multiplies a broadcast pair of bf16 activations by a vector
/// of 16 weight pairs and adds both products into each f32 lane (see `gemm::scalar`).
struct Dpbf16;

impl microkernel::Mac<Avx512> for Dpbf16 {
    #[inline(always)]
    unsafe fn mac(a: __m512, b: __m512, acc: __m512) -> __m512 {
        // SAFETY: the entry functions that inline this enable avx512bf16 (contract of
        // `Mac::mac`); the casts only reinterpret 512 bits.
        unsafe {
            _mm512_dpbf16_ps(
                acc,
                std::mem::transmute::<__m512, __m512bh>(a),
                std::mem::transmute::<__m512, __m512bh>(b),
            )
        }
    }
}

microkernel::steps_fn!(
    avx512bf16_gemm_10x32_steps,
    Avx512,
    Dpbf16,
    NV,
    "avx512f,avx512bw,avx512vl,avx512dq,avx512bf16,avx2,fma"
);

/// The bf16 microkernel for `R` rows (`R` in `1..=MR`): the same 10 × 32 tile, one pair
/// of `k` rows per step.
///
/// # Safety
/// As [`super::TileFn`]; the CPU supports the AVX-512 tier and AVX512_BF16.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx512bf16,avx2,fma")]
unsafe fn avx512bf16_gemm_10x32_tile<const R: usize>(t: &TileJob) {
    // SAFETY: forwarded contract; the features are enabled on this function.
    unsafe { microkernel::tile::<Avx512, Dpbf16, R, NV>(t, Some(avx512bf16_gemm_10x32_steps::<R>)) }
}

static TILES_BF16: [TileFn; MR] = [
    avx512bf16_gemm_10x32_tile::<1>,
    avx512bf16_gemm_10x32_tile::<2>,
    avx512bf16_gemm_10x32_tile::<3>,
    avx512bf16_gemm_10x32_tile::<4>,
    avx512bf16_gemm_10x32_tile::<5>,
    avx512bf16_gemm_10x32_tile::<6>,
    avx512bf16_gemm_10x32_tile::<7>,
    avx512bf16_gemm_10x32_tile::<8>,
    avx512bf16_gemm_10x32_tile::<9>,
    avx512bf16_gemm_10x32_tile::<10>,
];

pub(crate) static SET_BF16: TileSet =
    TileSet { operands: Operands::Bf16, mr: MR, cols: COLS, tiles: &TILES_BF16, zero_point: false };

/// The AVX-512 BF16 [`super::GemmFn`] (bf16 operands, [`super::Operands::Bf16`]).
///
/// # Safety
/// As [`super::GemmFn`]; the CPU supports the AVX-512 tier and AVX512_BF16
/// ([`Cpu::has_avx512_bf16`]).
pub(crate) unsafe fn avx512bf16_gemm_10x32(p: &GemmParams, panels: Range<usize>) {
    // SAFETY: forwarded contract.
    unsafe { drive(p, panels, &SET_BF16) }
}

/// The AVX-512 [`super::GemmFn`].
///
/// # Safety
/// As [`super::GemmFn`]; the CPU supports the AVX-512 tier.
pub(crate) unsafe fn avx512_sgemm_10x32(p: &GemmParams, panels: Range<usize>) {
    // SAFETY: forwarded contract.
    unsafe { drive(p, panels, &SET) }
}

/// `vpdpbusd`: one step multiplies a broadcast quad of unsigned activation bytes
/// (`q + 128`) by 16 quads of signed weight bytes and adds the four products into each
/// `i32` lane (the zero point is taken out in the finish, `Dequant`).
struct Dpbusd;

impl microkernel::Mac<Avx512> for Dpbusd {
    #[inline(always)]
    unsafe fn mac(a: __m512, b: __m512, acc: __m512) -> __m512 {
        use std::arch::x86_64::{_mm512_castps_si512, _mm512_castsi512_ps, _mm512_dpbusd_epi32};
        // SAFETY: the entry functions that inline this enable avx512vnni (contract of
        // `Mac::mac`); the casts only reinterpret 512 bits.
        unsafe {
            _mm512_castsi512_ps(_mm512_dpbusd_epi32(
                _mm512_castps_si512(acc),
                _mm512_castps_si512(a),
                _mm512_castps_si512(b),
            ))
        }
    }
}

/// The int8 microkernel for `R` rows (`R` in `1..=MR_I8`): an 8 × 32 tile of `i32`
/// sums, one quad of `k` rows per step.
///
/// # Safety
/// As [`super::TileFn`]; the CPU supports the AVX-512 tier and AVX512-VNNI.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,avx2,fma")]
unsafe fn avx512vnni_gemm_i8_8x32_tile<const R: usize>(t: &TileJob) {
    // SAFETY: forwarded contract; the features are enabled on this function.
    unsafe { microkernel::tile::<Avx512, Dpbusd, R, NV>(t, None) }
}

/// Rows of the int8 tile: the broadcast activation quads must sit in registers (the
/// unsigned operand of `vpdpbusd` cannot be an embedded broadcast, unlike an FMA's), so
/// 10 rows would need all 32 registers (20 sums, 2 `B`, 10 `A`) and LLVM spilled the
/// broadcasts inside the `k` loop; 8 rows leave 6 free.
const MR_I8: usize = 8;

static TILES_I8: [TileFn; MR_I8] = [
    avx512vnni_gemm_i8_8x32_tile::<1>,
    avx512vnni_gemm_i8_8x32_tile::<2>,
    avx512vnni_gemm_i8_8x32_tile::<3>,
    avx512vnni_gemm_i8_8x32_tile::<4>,
    avx512vnni_gemm_i8_8x32_tile::<5>,
    avx512vnni_gemm_i8_8x32_tile::<6>,
    avx512vnni_gemm_i8_8x32_tile::<7>,
    avx512vnni_gemm_i8_8x32_tile::<8>,
];

pub(crate) static SET_I8: TileSet =
    TileSet { operands: Operands::Int8, mr: MR_I8, cols: COLS, tiles: &TILES_I8, zero_point: true };

/// The AVX-512 VNNI [`super::GemmFn`] (int8 operands, [`super::Operands::Int8`]).
///
/// # Safety
/// As [`super::GemmFn`]; the CPU supports the AVX-512 tier and AVX512-VNNI.
pub(crate) unsafe fn avx512vnni_gemm_i8_8x32(p: &GemmParams, panels: Range<usize>) {
    // SAFETY: forwarded contract.
    unsafe { drive(p, panels, &SET_I8) }
}

/// Installs this file's GEMMs in `k` where `cpu` has the AVX-512 tier (the bf16 GEMM
/// where it also has AVX512_BF16, the int8 GEMM where it has AVX512-VNNI).
pub(crate) fn plug(k: &mut Kernels, cpu: &Cpu) {
    if !cpu.supports(Isa::Avx512) {
        return;
    }
    k.sgemm = avx512_sgemm_10x32;
    k.sgemm_name = "avx512_sgemm_10x32";
    if cpu.has_avx512_bf16() {
        k.gemm_bf16 = Some(avx512bf16_gemm_10x32);
        k.gemm_bf16_name = Some("avx512bf16_gemm_10x32");
    }
    if cpu.features().avx512_vnni {
        k.gemm_i8 = avx512vnni_gemm_i8_8x32;
        k.gemm_i8_name = "avx512vnni_gemm_i8_8x32";
    }
}
