//! The portable tier's element-wise kernels: the generic bodies of [`super`] on 4-lane
//! [`Emu`] vectors (plain `[f32; 4]`, SSE2 or NEON registers), plugged into the
//! portable table on every CPU.

use crate::cpu::{Cpu, Isa};
use crate::simd::emu::Emu;
use crate::Kernels;

type V = Emu<4>;

/// LayerNorm of one row, portable.
///
/// # Safety
/// None beyond the slot's contract: plain Rust.
unsafe fn portable_layernorm_f32(x: &mut [f32], w: &[f32], b: &[f32], eps: f32) {
    // SAFETY: the portable vectors run on every CPU.
    unsafe { super::layernorm::<V>(x, w, b, eps) }
}

/// Softmax of one row, portable.
///
/// # Safety
/// As [`portable_layernorm_f32`].
unsafe fn portable_softmax_f32(x: &mut [f32]) {
    // SAFETY: the portable vectors run on every CPU.
    unsafe { super::softmax::<V>(x) }
}

/// Exact GELU of a slice, portable.
///
/// # Safety
/// As [`portable_layernorm_f32`].
unsafe fn portable_gelu_f32(x: &mut [f32]) {
    // SAFETY: the portable vectors run on every CPU.
    unsafe { super::gelu::<V>(x) }
}

/// Embedding sum + LayerNorm of one row, portable.
///
/// # Safety
/// As [`portable_layernorm_f32`].
unsafe fn portable_embed_add_layernorm_f32(
    out: &mut [f32],
    word: &[f32],
    pos: &[f32],
    typ: &[f32],
    w: &[f32],
    b: &[f32],
    eps: f32,
) {
    // SAFETY: the portable vectors run on every CPU.
    unsafe { super::embed_add_layernorm::<V>(out, word, pos, typ, w, b, eps) }
}

/// Installs this file's kernels in `k` (every CPU runs the portable tier).
pub(crate) fn plug(k: &mut Kernels, cpu: &Cpu) {
    if !cpu.supports(Isa::Portable) {
        return;
    }
    k.layernorm = portable_layernorm_f32;
    k.softmax = portable_softmax_f32;
    k.gelu = portable_gelu_f32;
    k.embed_add_layernorm = portable_embed_add_layernorm_f32;
}
