//! AVX2 + FMA element-wise kernels: the generic bodies of [`super`] on 8-lane vectors.
//!
//! The entries are safe `fn`s because [`crate::Kernels`] slots are; they are
//! crate-private and only ever placed in a table built by `Kernels::for_isa` after it
//! checked that the CPU has AVX2 and FMA.

use crate::simd::avx2::Avx2;

tier_entries!(
    Avx2,
    "avx2,fma",
    "AVX2 + FMA",
    avx2_layernorm_f32,
    avx2_softmax_f32,
    avx2_gelu_f32,
    avx2_embed_add_layernorm_f32
);
