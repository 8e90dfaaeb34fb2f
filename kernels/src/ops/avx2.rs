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

/// [`crate::pack::pack_rows_panel32`] (the same values): 8 × 8 blocks loaded as 8 rows,
/// transposed in registers (unpack, shuffle, lane permute) and stored as 8 rows of a
/// quarter panel; masked loads past `k`, zero rows past `rows`.
///
/// # Safety
/// The CPU supports AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn avx2_pack_rows_panel32(src: &[f32], ld: usize, rows: usize, k: usize, dst: &mut [f32]) {
    use crate::pack::{check_pack_rows, panels, NR};
    use std::arch::x86_64::*;
    check_pack_rows(src.len(), ld, rows, k, dst.len());
    let (sp, dp) = (src.as_ptr(), dst.as_mut_ptr());
    let lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    for p in 0..panels(rows) {
        for quarter in 0..NR / 8 {
            let j0 = p * NR + quarter * 8;
            let mut e0 = 0;
            while e0 < k {
                let w = 8.min(k - e0);
                let mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(w as i32), lanes);
                let mut r = [_mm256_setzero_ps(); 8];
                for (i, v) in r.iter_mut().enumerate() {
                    if j0 + i < rows {
                        // SAFETY: row j0 + i < rows has k values from (j0 + i) · ld, and
                        // the mask keeps the load within e0 + w <= k (checked bounds).
                        *v = unsafe { _mm256_maskload_ps(sp.add((j0 + i) * ld + e0), mask) };
                    }
                }
                // t[2i], t[2i + 1]: rows 2i and 2i + 1 interleaved (low, high pairs).
                let mut t = [_mm256_setzero_ps(); 8];
                for i in 0..4 {
                    t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
                    t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
                }
                // s[4h + c]: column c (and c + 4 in the high lane) of rows 4h..4h+4.
                let mut s = [_mm256_setzero_ps(); 8];
                for h in 0..2 {
                    let (a, b, c, d) = (t[4 * h], t[4 * h + 1], t[4 * h + 2], t[4 * h + 3]);
                    s[4 * h] = _mm256_shuffle_ps::<0x44>(a, c);
                    s[4 * h + 1] = _mm256_shuffle_ps::<0xee>(a, c);
                    s[4 * h + 2] = _mm256_shuffle_ps::<0x44>(b, d);
                    s[4 * h + 3] = _mm256_shuffle_ps::<0xee>(b, d);
                }
                let mut col = [_mm256_setzero_ps(); 8];
                for c in 0..4 {
                    col[c] = _mm256_permute2f128_ps::<0x20>(s[c], s[4 + c]);
                    col[4 + c] = _mm256_permute2f128_ps::<0x31>(s[c], s[4 + c]);
                }
                for (e, v) in col.iter().enumerate().take(w) {
                    // SAFETY: panel p, row e0 + e < k, columns quarter·8.. of 32: inside
                    // the packed_len(k, rows) values of dst (checked).
                    unsafe { _mm256_storeu_ps(dp.add(p * k * NR + (e0 + e) * NR + quarter * 8), *v) };
                }
                e0 += 8;
            }
        }
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
    k.pack_rows = avx2_pack_rows_panel32;
}
