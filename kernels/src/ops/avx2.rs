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

/// Installs this file's kernels in `k` where `cpu` has the AVX2 tier.
pub(crate) fn plug(k: &mut Kernels, cpu: &Cpu) {
    if !cpu.supports(Isa::Avx2) {
        return;
    }
    k.layernorm = avx2_layernorm_f32;
    k.softmax = avx2_softmax_f32;
    k.gelu = avx2_gelu_f32;
    k.embed_add_layernorm = avx2_embed_add_layernorm_f32;
}
