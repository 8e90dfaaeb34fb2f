//! AVX-512 element-wise kernels: the generic bodies of [`super`] on 16-lane vectors,
//! plugged into a [`Kernels`] table where the CPU has the AVX-512 tier, and the bf16
//! rounding of activations where it also has AVX512_BF16.

use crate::cpu::{Cpu, Isa};
use crate::simd::avx512::Avx512;
use crate::Kernels;

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
/// The CPU supports the AVX-512 tier and AVX512_BF16.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx512bf16,avx2,fma")]
pub(crate) unsafe fn avx512bf16_to_bf16_pairs(x: &[f32], out: &mut [u32]) {
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

/// Quantises a row for the int8 GEMM ([`crate::pack::quantize_row_i8`], bit for bit),
/// 16 values per step, the bytes stored with `vpmovdb`.
///
/// # Safety
/// The CPU supports the AVX-512 tier.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx2,fma")]
pub(crate) unsafe fn avx512_quantize_row_i8(x: &[f32], out: &mut [u32]) -> f32 {
    use std::arch::x86_64::*;
    // SAFETY: the features are enabled on this function (caller's contract); the store
    // writes the n bytes the body hands it.
    unsafe {
        super::quantize_row::<Avx512>(x, out, |p, v, n| {
            _mm512_mask_cvtepi32_storeu_epi8(p.cast(), ((1u32 << n) - 1) as __mmask16, _mm512_castps_si512(v))
        })
    }
}

/// Installs this file's kernels in `k` where `cpu` has the AVX-512 tier (and the bf16
/// rounding where it also has AVX512_BF16).
pub(crate) fn plug(k: &mut Kernels, cpu: &Cpu) {
    if !cpu.supports(Isa::Avx512) {
        return;
    }
    k.layernorm = avx512_layernorm_f32;
    k.softmax = avx512_softmax_f32;
    k.gelu = avx512_gelu_f32;
    k.embed_add_layernorm = avx512_embed_add_layernorm_f32;
    k.quantize_row = avx512_quantize_row_i8;
    if cpu.has_avx512_bf16() {
        k.to_bf16_pairs = avx512bf16_to_bf16_pairs;
    }
}
