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

/// [`crate::pack::pack_rows_panel32`] (the same values): 16 × 16 blocks loaded as 16
/// rows, transposed in registers (four rounds of shuffles) and stored as 16 rows of
/// half a panel; masked loads past `k`, zero rows past `rows`.
///
/// # Safety
/// The CPU supports the AVX-512 tier.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx2,fma")]
pub(crate) unsafe fn avx512_pack_rows_panel32(src: &[f32], ld: usize, rows: usize, k: usize, dst: &mut [f32]) {
    use crate::pack::{check_pack_rows, panels, NR};
    use std::arch::x86_64::*;
    check_pack_rows(src.len(), ld, rows, k, dst.len());
    let (sp, dp) = (src.as_ptr(), dst.as_mut_ptr());
    for p in 0..panels(rows) {
        for half in 0..NR / 16 {
            let j0 = p * NR + half * 16;
            let mut e0 = 0;
            while e0 < k {
                let w = 16.min(k - e0);
                let mask: __mmask16 = if w == 16 { !0 } else { (1u16 << w) - 1 };
                let mut r = [_mm512_setzero_ps(); 16];
                for (i, v) in r.iter_mut().enumerate() {
                    if j0 + i < rows {
                        // SAFETY: row j0 + i < rows has k values from (j0 + i) · ld, and
                        // the mask keeps the load within e0 + w <= k (checked bounds).
                        *v = unsafe { _mm512_maskz_loadu_ps(mask, sp.add((j0 + i) * ld + e0)) };
                    }
                }
                // Round 1: pairs of rows interleaved per 128-bit lane.
                let mut a = [_mm512_setzero_ps(); 16];
                for i in 0..8 {
                    a[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
                    a[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
                }
                // Round 2: b[4i + c] holds, in lane L, column 4L + c of rows 4i..4i+4.
                let mut b = [_mm512_setzero_ps(); 16];
                for i in 0..4 {
                    let pd = |x: __m512| _mm512_castps_pd(x);
                    let (x0, x1, x2, x3) = (pd(a[4 * i]), pd(a[4 * i + 1]), pd(a[4 * i + 2]), pd(a[4 * i + 3]));
                    b[4 * i] = _mm512_castpd_ps(_mm512_unpacklo_pd(x0, x2));
                    b[4 * i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(x0, x2));
                    b[4 * i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(x1, x3));
                    b[4 * i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(x1, x3));
                }
                // Rounds 3 and 4: gather lane L of b[c], b[4 + c], b[8 + c], b[12 + c]
                // into column 4L + c.
                let mut col = [_mm512_setzero_ps(); 16];
                for c in 0..4 {
                    let c0 = _mm512_shuffle_f32x4::<0x88>(b[c], b[4 + c]);
                    let c1 = _mm512_shuffle_f32x4::<0xdd>(b[c], b[4 + c]);
                    let d0 = _mm512_shuffle_f32x4::<0x88>(b[8 + c], b[12 + c]);
                    let d1 = _mm512_shuffle_f32x4::<0xdd>(b[8 + c], b[12 + c]);
                    col[c] = _mm512_shuffle_f32x4::<0x88>(c0, d0);
                    col[8 + c] = _mm512_shuffle_f32x4::<0xdd>(c0, d0);
                    col[4 + c] = _mm512_shuffle_f32x4::<0x88>(c1, d1);
                    col[12 + c] = _mm512_shuffle_f32x4::<0xdd>(c1, d1);
                }
                for (e, v) in col.iter().enumerate().take(w) {
                    // SAFETY: panel p, row e0 + e < k, columns half·16.. of 32: inside
                    // the packed_len(k, rows) values of dst (checked).
                    unsafe { _mm512_storeu_ps(dp.add(p * k * NR + (e0 + e) * NR + half * 16), *v) };
                }
                e0 += 16;
            }
        }
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
    k.pack_rows = avx512_pack_rows_panel32;
    if cpu.has_avx512_bf16() {
        k.to_bf16_pairs = avx512bf16_to_bf16_pairs;
    }
}
