//! AVX-512 element-wise kernels: the generic bodies of [`super`] on 16-lane vectors.
//!
//! The entries are safe `fn`s because [`crate::Kernels`] slots are; they are
//! crate-private and only ever placed in a table built by `Kernels::for_isa` after it
//! checked that the CPU has the AVX-512 tier.

use crate::simd::avx512::Avx512;

tier_entries!(
    Avx512,
    "avx512f,avx512bw,avx512vl,avx512dq,avx2,fma",
    "AVX-512",
    avx512_layernorm_f32,
    avx512_softmax_f32,
    avx512_gelu_f32,
    avx512_embed_add_layernorm_f32
);

/// Rounds `x` to bf16 pairs with `vcvtne2ps2bf16` (nearest even, 32 values per
/// instruction); the tail goes through the scalar twin. Bit-identical to
/// [`crate::pack::bf16_pairs_from_f32`] except that f32 denormals become zero, which
/// every bf16 product reads as zero anyway.
///
/// # Safety
/// The CPU supports AVX512_BF16.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx512bf16,avx2,fma")]
unsafe fn to_bf16_pairs(x: &[f32], out: &mut [u32]) {
    use std::arch::x86_64::*;
    assert!(out.len() >= x.len().div_ceil(2), "{} words for {} values", out.len(), x.len());
    let mut i = 0;
    while i + 32 <= x.len() {
        // SAFETY: 32 floats at i and 16 words at i / 2 are in bounds (loop condition,
        // assert above).
        unsafe {
            let lo = _mm512_loadu_ps(x.as_ptr().add(i));
            let hi = _mm512_loadu_ps(x.as_ptr().add(i + 16));
            let v: __m512i = std::mem::transmute(_mm512_cvtne2ps_pbh(hi, lo));
            _mm512_storeu_si512(out.as_mut_ptr().add(i / 2).cast(), v);
        }
        i += 32;
    }
    crate::pack::bf16_pairs_from_f32(&x[i..], &mut out[i / 2..]);
}

/// Row of activations to bf16 pairs, AVX512_BF16 (see `to_bf16_pairs`).
pub(crate) fn avx512bf16_to_bf16_pairs(x: &[f32], out: &mut [u32]) {
    // SAFETY: only placed in a Kernels table when the CPU has AVX512_BF16.
    unsafe { to_bf16_pairs(x, out) }
}
