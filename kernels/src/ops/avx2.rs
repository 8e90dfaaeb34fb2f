//! AVX2 + FMA element-wise kernels: the generic bodies of [`super`] on 8-lane vectors,
//! plugged into a [`Kernels`] table where the CPU has AVX2 and FMA.

use crate::cpu::{Cpu, Isa};
use crate::simd::avx2::Avx2;
use crate::Kernels;

tier_entries!(
    Avx2,
    "avx2,fma",
    "AVX2 + FMA",
    avx2_layernorm_f32,
    avx2_softmax_f32,
    avx2_gelu_f32,
    avx2_embed_add_layernorm_f32
);

/// Quantises a row for the int8 GEMM ([`crate::pack::quantize_row_i8`], bit for bit),
/// 8 values per step, the low bytes gathered with `vpshufb` + `vpermd`.
///
/// # Safety
/// The CPU supports AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn avx2_quantize_row_i8(x: &[f32], out: &mut [u32]) -> f32 {
    use std::arch::x86_64::*;
    // SAFETY: the features are enabled on this function (caller's contract); the store
    // writes the n bytes the body hands it.
    unsafe {
        let low_bytes = _mm256_setr_epi8(
            0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, 0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1,
            -1, -1, -1, -1,
        );
        let gather = _mm256_setr_epi32(0, 4, 0, 0, 0, 0, 0, 0);
        super::quantize_row::<Avx2>(x, out, |p, v, n| {
            let b = _mm256_permutevar8x32_epi32(_mm256_shuffle_epi8(_mm256_castps_si256(v), low_bytes), gather);
            let eight = _mm_cvtsi128_si64(_mm256_castsi256_si128(b)).to_le_bytes();
            std::ptr::copy_nonoverlapping(eight.as_ptr(), p, n);
        })
    }
}

/// Installs this file's kernels in `k` where `cpu` has the AVX2 tier.
pub(crate) fn plug(k: &mut Kernels, cpu: &Cpu) {
    if !cpu.supports(Isa::Avx2) {
        return;
    }
    k.layernorm = avx2_layernorm_f32;
    k.softmax = avx2_softmax_f32;
    k.gelu = avx2_gelu_f32;
    k.embed_add_layernorm = avx2_embed_add_layernorm_f32;
    k.quantize_row = avx2_quantize_row_i8;
}
