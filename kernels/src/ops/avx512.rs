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
