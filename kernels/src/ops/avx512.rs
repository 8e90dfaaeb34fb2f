//! AVX-512 element-wise kernels: the generic bodies of [`super`] on 16-lane vectors.
//!
//! The public functions are safe `fn`s because [`crate::Kernels`] slots are; they are
//! crate-private and only ever placed in a table built by `Kernels::for_isa` after it
//! checked that the CPU has the AVX-512 tier.

use crate::simd::avx512::Avx512;

/// # Safety
/// The CPU supports the AVX-512 tier.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx2,fma")]
unsafe fn layernorm(x: &mut [f32], w: &[f32], b: &[f32], eps: f32) {
    // SAFETY: features enabled on this function (caller's contract).
    unsafe { super::layernorm::<Avx512>(x, w, b, eps) }
}

/// # Safety
/// The CPU supports the AVX-512 tier.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx2,fma")]
unsafe fn softmax(x: &mut [f32]) {
    // SAFETY: features enabled on this function (caller's contract).
    unsafe { super::softmax::<Avx512>(x) }
}

/// # Safety
/// The CPU supports the AVX-512 tier.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx2,fma")]
unsafe fn gelu(x: &mut [f32]) {
    // SAFETY: features enabled on this function (caller's contract).
    unsafe { super::gelu::<Avx512>(x) }
}

/// # Safety
/// The CPU supports the AVX-512 tier.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx2,fma")]
unsafe fn embed_add_layernorm(o: &mut [f32], wd: &[f32], ps: &[f32], ty: &[f32], w: &[f32], b: &[f32], eps: f32) {
    // SAFETY: features enabled on this function (caller's contract).
    unsafe { super::embed_add_layernorm::<Avx512>(o, wd, ps, ty, w, b, eps) }
}

pub(crate) fn avx512_layernorm_f32(x: &mut [f32], w: &[f32], b: &[f32], eps: f32) {
    // SAFETY: only reachable through a Kernels table built for a CPU with the AVX-512 tier.
    unsafe { layernorm(x, w, b, eps) }
}

pub(crate) fn avx512_softmax_f32(x: &mut [f32]) {
    // SAFETY: only reachable through a Kernels table built for a CPU with the AVX-512 tier.
    unsafe { softmax(x) }
}

pub(crate) fn avx512_gelu_f32(x: &mut [f32]) {
    // SAFETY: only reachable through a Kernels table built for a CPU with the AVX-512 tier.
    unsafe { gelu(x) }
}

pub(crate) fn avx512_embed_add_layernorm_f32(
    out: &mut [f32],
    word: &[f32],
    pos: &[f32],
    typ: &[f32],
    w: &[f32],
    b: &[f32],
    eps: f32,
) {
    // SAFETY: only reachable through a Kernels table built for a CPU with the AVX-512 tier.
    unsafe { embed_add_layernorm(out, word, pos, typ, w, b, eps) }
}
