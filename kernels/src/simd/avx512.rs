//! [`Simd`] for AVX-512 (F + BW + VL + DQ, the [`crate::Isa::Avx512`] tier): 16 lanes of
//! `__m512`; partial vectors use native `k` masks (masked-off lanes are neither read nor
//! written, so a tail never faults).
//!
//! This file is deliberately nothing but a one-line mapping per operation: the kernel
//! bodies it runs are the generic ones that the AVX2 tier and the 16-lane portable
//! emulation exercise in tests on any host.

use super::Simd;
use std::arch::x86_64::*;

/// The AVX-512 token. Only used inside entry functions with
/// `#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx2,fma")]`, the
/// features of [`crate::Isa::Avx512`] (AVX-512F implies AVX2 and FMA; they are named
/// so the scalar tail code may use them too).
#[derive(Clone, Copy)]
pub(crate) struct Avx512;

// SAFETY: every method only calls AVX-512F intrinsics (callers guarantee the CPU has
// them, see the trait docs) and touches exactly the floats the trait contract names.
unsafe impl Simd for Avx512 {
    const LANES: usize = 16;
    type V = __m512;
    type M = __mmask16;

    #[inline(always)]
    unsafe fn zero() -> __m512 {
        _mm512_setzero_ps()
    }
    #[inline(always)]
    unsafe fn splat(x: f32) -> __m512 {
        _mm512_set1_ps(x)
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> __m512 {
        _mm512_loadu_ps(p)
    }
    #[inline(always)]
    unsafe fn store(p: *mut f32, v: __m512) {
        _mm512_storeu_ps(p, v)
    }
    #[inline(always)]
    unsafe fn mask(n: usize) -> __mmask16 {
        ((1u32 << n) - 1) as __mmask16
    }
    #[inline(always)]
    unsafe fn load_masked(p: *const f32, m: __mmask16) -> __m512 {
        _mm512_maskz_loadu_ps(m, p)
    }
    #[inline(always)]
    unsafe fn store_masked(p: *mut f32, m: __mmask16, v: __m512) {
        _mm512_mask_storeu_ps(p, m, v)
    }
    #[inline(always)]
    unsafe fn fma(a: __m512, b: __m512, c: __m512) -> __m512 {
        _mm512_fmadd_ps(a, b, c)
    }
    #[inline(always)]
    unsafe fn add(a: __m512, b: __m512) -> __m512 {
        _mm512_add_ps(a, b)
    }
    #[inline(always)]
    unsafe fn sub(a: __m512, b: __m512) -> __m512 {
        _mm512_sub_ps(a, b)
    }
    #[inline(always)]
    unsafe fn mul(a: __m512, b: __m512) -> __m512 {
        _mm512_mul_ps(a, b)
    }
    #[inline(always)]
    unsafe fn div(a: __m512, b: __m512) -> __m512 {
        _mm512_div_ps(a, b)
    }
    #[inline(always)]
    unsafe fn max(a: __m512, b: __m512) -> __m512 {
        _mm512_max_ps(a, b)
    }
    #[inline(always)]
    unsafe fn min(a: __m512, b: __m512) -> __m512 {
        _mm512_min_ps(a, b)
    }
    #[inline(always)]
    unsafe fn abs(a: __m512) -> __m512 {
        _mm512_abs_ps(a)
    }
    #[inline(always)]
    unsafe fn round(a: __m512) -> __m512 {
        _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(a)
    }
    #[inline(always)]
    unsafe fn pow2i(n: __m512) -> __m512 {
        let e = _mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127));
        _mm512_castsi512_ps(_mm512_slli_epi32::<23>(e))
    }
    #[inline(always)]
    unsafe fn select_lt(a: __m512, b: __m512, x: __m512, y: __m512) -> __m512 {
        // mask_blend takes its second vector operand where the mask bit is set.
        _mm512_mask_blend_ps(_mm512_cmp_ps_mask::<_CMP_LT_OQ>(a, b), y, x)
    }
    #[inline(always)]
    unsafe fn reduce_add(a: __m512) -> f32 {
        _mm512_reduce_add_ps(a)
    }
    #[inline(always)]
    unsafe fn reduce_max(a: __m512) -> f32 {
        _mm512_reduce_max_ps(a)
    }
    #[inline(always)]
    unsafe fn i32_to_f32(a: __m512) -> __m512 {
        _mm512_cvtepi32_ps(_mm512_castps_si512(a))
    }
    #[inline(always)]
    unsafe fn f32_to_i32(a: __m512) -> __m512 {
        _mm512_castsi512_ps(_mm512_cvtps_epi32(a))
    }
    #[inline(always)]
    unsafe fn sub_i32(a: __m512, b: __m512) -> __m512 {
        _mm512_castsi512_ps(_mm512_sub_epi32(_mm512_castps_si512(a), _mm512_castps_si512(b)))
    }
}

/// The peak probe: [`super::fma_chains`] on 16-lane vectors.
///
/// # Safety
/// The CPU must support the [`crate::Isa::Avx512`] tier.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx2,fma")]
pub(crate) unsafe fn avx512_fma_probe(iters: usize, x: f32, y: f32) -> f32 {
    // SAFETY: the features are enabled on this function (caller's contract).
    unsafe { super::fma_chains::<Avx512>(iters, x, y) }
}

/// The bf16 peak probe: [`super::PROBE_CHAINS`] independent chains of `vdpbf16ps` on
/// registers (`x`, `y` as bf16 pairs).
///
/// # Safety
/// The CPU must support the [`crate::Isa::Avx512`] tier and AVX512_BF16.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx512bf16,avx2,fma")]
pub(crate) unsafe fn avx512bf16_dot_probe(iters: usize, x: f32, y: f32) -> f32 {
    let (xv, yv) = (
        _mm512_cvtne2ps_pbh(_mm512_set1_ps(x), _mm512_set1_ps(x)),
        _mm512_cvtne2ps_pbh(_mm512_set1_ps(y), _mm512_set1_ps(y)),
    );
    let mut acc = [_mm512_setzero_ps(); super::PROBE_CHAINS];
    for (i, a) in acc.iter_mut().enumerate() {
        *a = _mm512_set1_ps(i as f32);
    }
    for _ in 0..iters {
        for a in acc.iter_mut() {
            *a = _mm512_dpbf16_ps(*a, xv, yv);
        }
    }
    let mut s = _mm512_setzero_ps();
    for a in acc {
        s = _mm512_add_ps(s, a);
    }
    _mm512_reduce_add_ps(s)
}

/// The int8 peak probe: [`super::PROBE_CHAINS`] independent chains of `vpdpbusd` on
/// registers.
///
/// # Safety
/// The CPU must support the instruction's features (avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,avx2,fma).
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,avx2,fma")]
pub(crate) unsafe fn avx512vnni_dot_probe(iters: usize) -> i32 {
    let (x, y) =
        (_mm512_set1_epi32(std::hint::black_box(0x0101_0101)), _mm512_set1_epi32(std::hint::black_box(0x0101_0101)));
    let mut acc = [_mm512_set1_epi32(0); super::PROBE_CHAINS];
    for (i, a) in acc.iter_mut().enumerate() {
        *a = _mm512_set1_epi32(i as i32);
    }
    for _ in 0..iters {
        for a in acc.iter_mut() {
            *a = _mm512_dpbusd_epi32(*a, x, y);
        }
    }
    let mut s = [0i32; 16];
    for a in acc {
        // SAFETY: the array has the vector's size.
        let v: [i32; 16] = unsafe { std::mem::transmute(a) };
        s.iter_mut().zip(v).for_each(|(s, v)| *s = s.wrapping_add(v));
    }
    s.iter().fold(0, |a, &b| a.wrapping_add(b))
}
