//! [`Simd`] for AVX2 + FMA: 8 lanes of `__m256`; partial vectors use `vmaskmovps`
//! (masked-off lanes are neither read nor written, so a tail never faults).

use super::Simd;
use std::arch::x86_64::*;

/// The AVX2 + FMA token. Only used inside `#[target_feature(enable = "avx2,fma")]`
/// entry functions.
#[derive(Clone, Copy)]
pub(crate) struct Avx2;

// SAFETY: every method only calls AVX/AVX2/FMA intrinsics (callers guarantee the CPU has
// them, see the trait docs) and touches exactly the floats the trait contract names.
unsafe impl Simd for Avx2 {
    const LANES: usize = 8;
    type V = __m256;
    type M = __m256i;

    #[inline(always)]
    unsafe fn zero() -> __m256 {
        _mm256_setzero_ps()
    }
    #[inline(always)]
    unsafe fn splat(x: f32) -> __m256 {
        _mm256_set1_ps(x)
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> __m256 {
        _mm256_loadu_ps(p)
    }
    #[inline(always)]
    unsafe fn store(p: *mut f32, v: __m256) {
        _mm256_storeu_ps(p, v)
    }
    #[inline(always)]
    unsafe fn mask(n: usize) -> __m256i {
        // lane i is selected when i < n (all bits set).
        _mm256_cmpgt_epi32(_mm256_set1_epi32(n as i32), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7))
    }
    #[inline(always)]
    unsafe fn load_masked(p: *const f32, m: __m256i) -> __m256 {
        _mm256_maskload_ps(p, m)
    }
    #[inline(always)]
    unsafe fn store_masked(p: *mut f32, m: __m256i, v: __m256) {
        _mm256_maskstore_ps(p, m, v)
    }
    #[inline(always)]
    unsafe fn fma(a: __m256, b: __m256, c: __m256) -> __m256 {
        _mm256_fmadd_ps(a, b, c)
    }
    #[inline(always)]
    unsafe fn add(a: __m256, b: __m256) -> __m256 {
        _mm256_add_ps(a, b)
    }
    #[inline(always)]
    unsafe fn sub(a: __m256, b: __m256) -> __m256 {
        _mm256_sub_ps(a, b)
    }
    #[inline(always)]
    unsafe fn mul(a: __m256, b: __m256) -> __m256 {
        _mm256_mul_ps(a, b)
    }
    #[inline(always)]
    unsafe fn div(a: __m256, b: __m256) -> __m256 {
        _mm256_div_ps(a, b)
    }
    #[inline(always)]
    unsafe fn max(a: __m256, b: __m256) -> __m256 {
        _mm256_max_ps(a, b)
    }
    #[inline(always)]
    unsafe fn min(a: __m256, b: __m256) -> __m256 {
        _mm256_min_ps(a, b)
    }
    #[inline(always)]
    unsafe fn abs(a: __m256) -> __m256 {
        _mm256_and_ps(a, _mm256_castsi256_ps(_mm256_set1_epi32(i32::MAX)))
    }
    #[inline(always)]
    unsafe fn round(a: __m256) -> __m256 {
        _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(a)
    }
    #[inline(always)]
    unsafe fn pow2i(n: __m256) -> __m256 {
        let e = _mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127));
        _mm256_castsi256_ps(_mm256_slli_epi32::<23>(e))
    }
    #[inline(always)]
    unsafe fn select_lt(a: __m256, b: __m256, x: __m256, y: __m256) -> __m256 {
        // blendv takes its second operand where the mask lane is set.
        _mm256_blendv_ps(y, x, _mm256_cmp_ps::<_CMP_LT_OQ>(a, b))
    }
    #[inline(always)]
    unsafe fn reduce_add(a: __m256) -> f32 {
        let s = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps::<1>(a));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_movehdup_ps(s));
        _mm_cvtss_f32(s)
    }
    #[inline(always)]
    unsafe fn reduce_max(a: __m256) -> f32 {
        let s = _mm_max_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps::<1>(a));
        let s = _mm_max_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_max_ss(s, _mm_movehdup_ps(s));
        _mm_cvtss_f32(s)
    }
    #[inline(always)]
    unsafe fn i32_to_f32(a: __m256) -> __m256 {
        _mm256_cvtepi32_ps(_mm256_castps_si256(a))
    }
    #[inline(always)]
    unsafe fn f32_to_i32(a: __m256) -> __m256 {
        _mm256_castsi256_ps(_mm256_cvtps_epi32(a))
    }
    #[inline(always)]
    unsafe fn sub_i32(a: __m256, b: __m256) -> __m256 {
        _mm256_castsi256_ps(_mm256_sub_epi32(_mm256_castps_si256(a), _mm256_castps_si256(b)))
    }
}

/// The peak probe: [`super::fma_chains`] on 8-lane vectors.
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn avx2_fma_probe(iters: usize, x: f32, y: f32) -> f32 {
    // SAFETY: the features are enabled on this function (caller's contract).
    unsafe { super::fma_chains::<Avx2>(iters, x, y) }
}

/// The int8 peak probe: [`super::PROBE_CHAINS`] independent chains of `vpdpbusd` on
/// registers.
///
/// # Safety
/// The CPU must support the instruction's features (avx2,fma,avxvnni).
#[target_feature(enable = "avx2,fma,avxvnni")]
pub(crate) unsafe fn avxvnni_dot_probe(iters: usize) -> i32 {
    let (x, y) =
        (_mm256_set1_epi32(std::hint::black_box(0x0101_0101)), _mm256_set1_epi32(std::hint::black_box(0x0101_0101)));
    let mut acc = [_mm256_set1_epi32(0); super::PROBE_CHAINS];
    for (i, a) in acc.iter_mut().enumerate() {
        *a = _mm256_set1_epi32(i as i32);
    }
    for _ in 0..iters {
        for a in acc.iter_mut() {
            *a = _mm256_dpbusd_avx_epi32(*a, x, y);
        }
    }
    let mut s = [0i32; 8];
    for a in acc {
        // SAFETY: the array has the vector's size.
        let v: [i32; 8] = unsafe { std::mem::transmute(a) };
        s.iter_mut().zip(v).for_each(|(s, v)| *s = s.wrapping_add(v));
    }
    s.iter().fold(0, |a, &b| a.wrapping_add(b))
}
