//! The packed weight layout shared by the converter (which writes it) and the GEMM
//! (which reads it in place from the opened model's bytes).
//!
//! A weight of logical shape `[k, n]` (input features × output features, i.e. the
//! transpose of a PyTorch `nn.Linear.weight`) is cut into column panels of [`NR`]
//! columns. Panel `p` holds columns `p*NR .. p*NR+NR` for every `k`, row after row, so a
//! microkernel streams one contiguous run of `k * NR` floats per panel:
//!
//! ```text
//!            n ──────────────────────────▶
//!          ┌────────────┬────────────┬──────────┐
//!   k      │  panel 0   │  panel 1   │ panel 2  │ (last panel zero-padded to NR)
//!   │      │ NR columns │ NR columns │ ░░░░░░░░ │
//!   ▼      └────────────┴────────────┴──────────┘
//!
//!   memory: [p0 k0 c0..c31][p0 k1 c0..c31] … [p0 k(k-1) …][p1 k0 c0..c31] …
//! ```
//!
//! Every panel is `k * NR * 4` bytes = a multiple of 128 bytes, so with a 64-byte aligned
//! blob every panel starts on a cache line. Zero padding of the last panel means a
//! kernel may always compute a full `NR`-wide tile and simply not store the padding
//! columns. The layout is plain `f32` little-endian and loads on any CPU.
//!
//! ## bf16 weights: `panel32x2`
//! A bf16 file keeps the same panels, but a panel row holds a *pair* of `k` rows,
//! interleaved per column, so one 32-bit word is the pair `(w[2p][c], w[2p+1][c])`
//! (low half = the even row) — the operand order of `vdpbf16ps`, which multiplies
//! pairs of bf16 values and adds both products into one f32 lane:
//!
//! ```text
//!   memory: [p0 pair0: (k0,k1)c0 (k0,k1)c1 … (k0,k1)c31][p0 pair1: (k2,k3)c0 …] …
//!           one pair row = 32 words = 128 bytes, like one f32 panel row
//! ```
//!
//! An odd `k` gets a zero row at the end. Viewed as `u32` words, a `panel32x2` weight
//! is a `panel32` matrix of `k/2` rows, so the GEMM driver walks both the same way.
//! Values are rounded to bf16 to nearest, ties to even ([`bf16_from_f32`]).

//!
//! ## int8 weights: `panel32x4`
//! An int8 file keeps the panels once more, with a *quad* of `k` rows per panel row:
//! the 32-bit word of quad `q` and column `c` holds the signed bytes
//! `w[4q][c], w[4q+1][c], w[4q+2][c], w[4q+3][c]` (lowest byte first) — the operand of
//! `vpdpbusd` and of AMX `tdpbusd`, which multiply four unsigned activation bytes by
//! four signed weight bytes and add all four products into one `i32` lane:
//!
//! ```text
//!   memory: [p0 quad0: (k0..k3)c0 (k0..k3)c1 … (k0..k3)c31][p0 quad1: (k4..k7)c0 …] …
//!           one quad row = 32 words = 128 bytes, like one f32 panel row
//! ```
//!
//! A `k` that is not a multiple of 4 gets zero rows at the end. Weights are quantised
//! symmetrically per output column ([`quantize_linear_weight_i8`]):
//! `w ≈ q · scale[c]` with `q` in **-127..=127** (never -128: the AVX2 kernel's
//! `vpsignb` trick and the saturation bound of `vpmaddubsw` rely on it), and the
//! column sums `Σ_k q` are kept beside the scales: kernels that take activations as
//! `q_a + 128` subtract `128 · Σ_k q` to get `Σ_k q_a · q` exactly.
//!
/// Columns per packed panel. 32 floats = two 512-bit or four 256-bit vectors.
pub const NR: usize = 32;

/// Name of this layout in the model file's tensor directory.
pub const LAYOUT_NAME: &str = "panel32";

/// Number of panels for `n` output columns.
pub const fn panels(n: usize) -> usize {
    n.div_ceil(NR)
}

/// Number of `f32` elements a packed `[k, n]` weight occupies.
pub const fn packed_len(k: usize, n: usize) -> usize {
    panels(n) * k * NR
}

/// Bytes a packed `[k, n]` weight occupies in the layout the model file names
/// `layout` ([`LAYOUT_NAME`], [`LAYOUT_NAME_BF16`] or [`LAYOUT_NAME_I8`]): the one definition of the packed
/// sizes, which the file's validation asks for. `None` for another name, or when the
/// size overflows.
pub fn packed_bytes(layout: &str, k: usize, n: usize) -> Option<u64> {
    let rows = match layout {
        LAYOUT_NAME => k,
        LAYOUT_NAME_BF16 => k.div_ceil(2),
        LAYOUT_NAME_I8 => k.div_ceil(4),
        _ => return None,
    };
    // Every layout stores 4-byte words: f32 values, pairs of bf16, quads of int8.
    panels(n).checked_mul(rows)?.checked_mul(NR)?.checked_mul(4).map(|b| b as u64)
}

/// Packs a PyTorch-style linear weight `w: [n, k]` (row `o` = output feature `o`) into
/// the panel layout of the logical `[k, n]` matrix `wᵀ`.
///
/// # Panics
/// If `w.len() != n * k` (a caller bug: the converter checks shapes first).
pub fn pack_linear_weight(w: &[f32], n: usize, k: usize) -> Vec<f32> {
    assert_eq!(w.len(), n * k, "weight has {} elements, expected {n}×{k}", w.len());
    let mut out = vec![0.0f32; packed_len(k, n)];
    pack_rows_panel32(w, k, n, k, &mut out);
    out
}

/// Packs `rows` rows of `k` values, row `j` at `src[j · ld ..]` (a strided `[rows, k]`
/// matrix, as a linear weight `[n, k]` or attention's keys), into the panel layout of
/// its transpose, the logical `[k, rows]` operand: value `(j, e)` lands at panel
/// `j / NR`, row `e`, column `j % NR`; the columns past `rows` up to a whole panel are
/// zero. `dst` holds [`packed_len`]`(k, rows)` values. The scalar twin of
/// [`crate::Kernels::pack_rows`].
///
/// # Panics
/// If `src` or `dst` is too short, or `ld < k` with more than one row.
pub fn pack_rows_panel32(src: &[f32], ld: usize, rows: usize, k: usize, dst: &mut [f32]) {
    check_pack_rows(src.len(), ld, rows, k, dst.len());
    for p in 0..panels(rows) {
        let panel = &mut dst[p * k * NR..(p + 1) * k * NR];
        for c in 0..NR {
            let j = p * NR + c;
            if j < rows {
                for (e, &v) in src[j * ld..j * ld + k].iter().enumerate() {
                    panel[e * NR + c] = v;
                }
            } else {
                for e in 0..k {
                    panel[e * NR + c] = 0.0;
                }
            }
        }
    }
}

/// The bounds every [`pack_rows_panel32`] kernel relies on.
pub(crate) fn check_pack_rows(src_len: usize, ld: usize, rows: usize, k: usize, dst_len: usize) {
    assert!(rows <= 1 || ld >= k, "row stride {ld} shorter than the {k} values of a row");
    let need = if rows == 0 { 0 } else { (rows - 1) * ld + k };
    assert!(src_len >= need, "{rows} rows of {k} values {ld} apart need {need} values, got {src_len}");
    assert!(dst_len >= packed_len(k, rows), "the packed operand needs {} values, got {dst_len}", packed_len(k, rows));
}

/// Name of the bf16 pair layout in the model file's tensor directory.
pub const LAYOUT_NAME_BF16: &str = "panel32x2";

/// `f32` to bf16, rounded to nearest with ties to even; NaN stays a (quiet) NaN.
pub fn bf16_from_f32(x: f32) -> u16 {
    let b = x.to_bits();
    if x.is_nan() {
        return ((b >> 16) | 0x40) as u16;
    }
    let round = 0x7fff + ((b >> 16) & 1);
    (b.wrapping_add(round) >> 16) as u16
}

/// bf16 to `f32` (exact).
pub fn f32_from_bf16(h: u16) -> f32 {
    f32::from_bits(u32::from(h) << 16)
}

/// Number of 32-bit pair words a `panel32x2` `[k, n]` weight occupies.
pub const fn packed_len_bf16(k: usize, n: usize) -> usize {
    panels(n) * k.div_ceil(2) * NR
}

/// Packs a PyTorch-style linear weight `w: [n, k]` into the `panel32x2` layout of the
/// logical `[k, n]` matrix `wᵀ`, rounding every value to bf16 (module docs).
///
/// # Panics
/// If `w.len() != n * k`.
pub fn pack_linear_weight_bf16(w: &[f32], n: usize, k: usize) -> Vec<u32> {
    assert_eq!(w.len(), n * k, "weight has {} elements, expected {n}×{k}", w.len());
    let pairs = k.div_ceil(2);
    let mut out = vec![0u32; packed_len_bf16(k, n)];
    for (o, row) in w.chunks_exact(k.max(1)).enumerate().take(n) {
        let (p, c) = (o / NR, o % NR);
        let panel = &mut out[p * pairs * NR..(p + 1) * pairs * NR];
        for (kk, &v) in row.iter().enumerate() {
            panel[(kk / 2) * NR + c] |= u32::from(bf16_from_f32(v)) << (16 * (kk % 2));
        }
    }
    out
}

/// Widens a `panel32x2` weight to the `f32` `panel32` layout (exact), for CPUs without
/// bf16 dot products.
///
/// # Panics
/// If `src` is not `packed_len_bf16(k, n)` words.
pub fn widen_bf16_panels(src: &[u32], k: usize, n: usize) -> Vec<f32> {
    assert_eq!(src.len(), packed_len_bf16(k, n), "panel32x2 weight of {k}×{n} has {} words", src.len());
    let pairs = k.div_ceil(2);
    let mut out = vec![0.0f32; packed_len(k, n)];
    for p in 0..panels(n) {
        let (s, d) = (&src[p * pairs * NR..(p + 1) * pairs * NR], &mut out[p * k * NR..(p + 1) * k * NR]);
        for kk in 0..k {
            for c in 0..NR {
                d[kk * NR + c] = f32_from_bf16((s[(kk / 2) * NR + c] >> (16 * (kk % 2))) as u16);
            }
        }
    }
    out
}

/// Rounds one row of activations to bf16 pairs (`(x[2i], x[2i+1])`, low half first),
/// the `A` operand of the bf16 GEMM; an odd length gets a zero in the last high half.
///
/// # Panics
/// If `out` has fewer than `x.len().div_ceil(2)` words.
pub fn bf16_pairs_from_f32(x: &[f32], out: &mut [u32]) {
    assert!(out.len() >= x.len().div_ceil(2), "{} words for {} values", out.len(), x.len());
    for (o, pair) in out.iter_mut().zip(x.chunks(2)) {
        let lo = u32::from(bf16_from_f32(pair[0]));
        let hi = pair.get(1).map_or(0, |&v| u32::from(bf16_from_f32(v)));
        *o = lo | (hi << 16);
    }
}

/// Name of the int8 quad layout in the model file's tensor directory.
pub const LAYOUT_NAME_I8: &str = "panel32x4";

/// Number of 32-bit quad words a `panel32x4` `[k, n]` weight occupies.
pub const fn packed_len_i8(k: usize, n: usize) -> usize {
    panels(n) * k.div_ceil(4) * NR
}

/// A linear weight quantised to int8 per output column (module docs, `panel32x4`).
#[derive(Clone, Debug, PartialEq)]
pub struct QuantizedWeight {
    /// The `panel32x4` quad words of the logical `[k, n]` matrix.
    pub packed: Vec<u32>,
    /// `[n]`: the weight of column `c` is `q · scale[c]`; positive and finite.
    pub scale: Vec<f32>,
    /// `[n]`: `Σ_k q` of column `c` (an integer, exact in `f32` for `k < 132 104`).
    pub sum: Vec<f32>,
}

/// Quantises a PyTorch-style linear weight `w: [n, k]` symmetrically per output
/// feature: `scale = clip / 127` with the clip of [`best_clip`] (1 for an all-zero
/// row, so every scale is positive), `q = round_ties_even(w · 127 / clip)` clamped to
/// `-127..=127`; then packs `q` in `panel32x4`.
///
/// # Panics
/// If `w.len() != n * k`, or a weight is not finite.
pub fn quantize_linear_weight_i8(w: &[f32], n: usize, k: usize) -> QuantizedWeight {
    assert_eq!(w.len(), n * k, "weight has {} elements, expected {n}×{k}", w.len());
    let quads = k.div_ceil(4);
    let mut out = QuantizedWeight { packed: vec![0u32; packed_len_i8(k, n)], scale: vec![1.0; n], sum: vec![0.0; n] };
    for (o, row) in w.chunks_exact(k.max(1)).enumerate().take(n) {
        assert!(row.iter().all(|v| v.is_finite()), "weight row {o} has a non-finite value");
        let amax = row.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let clip = best_clip(row, amax);
        let inv = if clip > 0.0 { 127.0 / clip } else { 0.0 };
        if clip > 0.0 {
            out.scale[o] = clip / 127.0;
        }
        let (p, c) = (o / NR, o % NR);
        let panel = &mut out.packed[p * quads * NR..(p + 1) * quads * NR];
        let mut sum = 0i64;
        for (kk, &v) in row.iter().enumerate() {
            let q = round_clamped_127(v * inv) as i8;
            sum += i64::from(q);
            panel[(kk / 4) * NR + c] |= u32::from(q as u8) << (8 * (kk % 4));
        }
        out.sum[o] = sum as f32;
    }
    out
}

/// The clipping range of one weight row: of `amax · (1 - i/100)`, `i` in `0..=30`, the one
/// whose quantisation (`clamp(round(w · 127 / clip), ±127)`) has the smallest squared
/// error over the row (the first on a tie). Clipping a few outliers buys every other
/// weight a finer step: on all-MiniLM-L6-v2 the best clip is below `amax` in most rows.
fn best_clip(row: &[f32], amax: f32) -> f32 {
    if amax == 0.0 {
        return 0.0;
    }
    let err = |clip: f32| -> f64 {
        let (inv, step) = (127.0 / clip, clip / 127.0);
        row.iter()
            .map(|&v| {
                let q = round_clamped_127(v * inv);
                let d = f64::from(q * step - v);
                d * d
            })
            .sum()
    };
    let mut best = (err(amax), amax);
    for i in 1..=30 {
        let clip = amax * (1.0 - i as f32 / 100.0);
        let e = err(clip);
        if e < best.0 {
            best = (e, clip);
        }
    }
    best.1
}

/// `x` clamped to ±127 and rounded to the nearest integer, ties to even: the rounding
/// of every int8 quantiser. `round_ties_even` would do, but without SSE4.1 in the
/// baseline target it is a libm call per value (80 % of a BERT-base quantisation); adding
/// and subtracting 1.5 · 2^23 rounds the same way in the default rounding mode for any
/// `|x| < 2^22`. NaN stays NaN.
#[inline(always)]
fn round_clamped_127(x: f32) -> f32 {
    const MAGIC: f32 = 12_582_912.0;
    let y = x.clamp(-127.0, 127.0);
    (y + MAGIC) - MAGIC
}

/// Element `(kk, o)` of a `panel32x4` weight, as the signed byte `q`.
#[inline]
pub fn packed_at_i8(packed: &[u32], k: usize, kk: usize, o: usize) -> i8 {
    (packed[(o / NR) * k.div_ceil(4) * NR + (kk / 4) * NR + o % NR] >> (8 * (kk % 4))) as u8 as i8
}

/// Widens a `panel32x4` weight with its column scales to the `f32` `panel32` layout
/// (`q · scale`, the values an int8 GEMM multiplies by), for tests and references.
///
/// # Panics
/// If `src` is not `packed_len_i8(k, n)` words or `scale` has fewer than `n` values.
pub fn widen_i8_panels(src: &[u32], scale: &[f32], k: usize, n: usize) -> Vec<f32> {
    assert_eq!(src.len(), packed_len_i8(k, n), "panel32x4 weight of {k}×{n} has {} words", src.len());
    let mut out = vec![0.0f32; packed_len(k, n)];
    for o in 0..n {
        for kk in 0..k {
            out[(o / NR) * k * NR + kk * NR + o % NR] = f32::from(packed_at_i8(src, k, kk, o)) * scale[o];
        }
    }
    out
}

/// Quantises one row of activations for the int8 GEMM, the scalar reference of
/// `Kernels::quantize_row`: `scale = max|x| / 127`, `q = round_ties_even(x · (127 / max|x|))`
/// in -127..=127, stored as the bytes `q + 128` (1..=255) in `k` order, four to a word;
/// the bytes after `x.len()` up to the end of `out` are 128 (`q = 0`). Returns the scale
/// (0 for a row of zeros, whose bytes are all 128). Non-finite inputs give an
/// unspecified row, never undefined behaviour.
///
/// # Panics
/// If `out` has fewer than `x.len().div_ceil(4)` words.
pub fn quantize_row_i8(x: &[f32], out: &mut [u32]) -> f32 {
    assert!(out.len() >= x.len().div_ceil(4), "{} words for {} values", out.len(), x.len());
    let amax = x.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let (scale, inv) = row_scale_i8(amax);
    out.fill(0x8080_8080);
    for (i, &v) in x.iter().enumerate() {
        let b = quantize_value_i8(v, inv);
        let w = &mut out[i / 4];
        *w = (*w & !(0xff << (8 * (i % 4)))) | (u32::from(b) << (8 * (i % 4)));
    }
    scale
}

/// `(scale, 1 / scale)` of a row whose largest magnitude is `amax`, as every tier
/// computes them: `amax / 127` and `127 / amax` (0 and 0 for a row of zeros).
#[inline]
pub fn row_scale_i8(amax: f32) -> (f32, f32) {
    if amax > 0.0 {
        (amax / 127.0, 127.0 / amax)
    } else {
        (0.0, 0.0)
    }
}

/// The stored byte `q + 128` of one activation: `q = round_ties_even(x · inv)` clamped
/// to -127..=127 (NaN gives 0).
#[inline]
pub fn quantize_value_i8(x: f32, inv: f32) -> u8 {
    let q = round_clamped_127(x * inv);
    (if q.is_nan() { 0 } else { q as i32 } + 128) as u8
}

/// Inverse of [`pack_linear_weight`]: element `(kk, o)` of the logical `[k, n]` matrix.
#[inline]
pub fn packed_at(packed: &[f32], k: usize, kk: usize, o: usize) -> f32 {
    packed[(o / NR) * k * NR + kk * NR + o % NR]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bf16_rounding_is_nearest_even() {
        // Exactly representable values round-trip.
        for x in [0.0f32, -0.0, 1.0, -2.5, 0.15625, f32::INFINITY, f32::NEG_INFINITY, f32::from_bits(0x7f7f_0000)] {
            let h = bf16_from_f32(x);
            assert_eq!(f32_from_bf16(h).to_bits(), (x.to_bits() >> 16) << 16, "{x}");
        }
        // 1 + 2^-8 is halfway between 1 and 1 + 2^-7: ties go to the even mantissa (1).
        assert_eq!(f32_from_bf16(bf16_from_f32(1.0 + 1.0 / 256.0)), 1.0);
        // 1 + 3·2^-8 is halfway between 1 + 2^-7 and 1 + 2^-6: ties to even (1 + 2^-6).
        assert_eq!(f32_from_bf16(bf16_from_f32(1.0 + 3.0 / 256.0)), 1.0 + 1.0 / 64.0);
        // Just above the halfway point rounds up.
        assert_eq!(f32_from_bf16(bf16_from_f32(f32::from_bits(0x3f80_8001))), 1.0 + 1.0 / 128.0);
        // Against an f64 nearest-even reference on a sweep of bit patterns.
        for i in 0..200_000u32 {
            let x = f32::from_bits(i.wrapping_mul(0x9E37_79B9) & 0x7eff_ffff); // finite, below the overflow edge
            let got = f64::from(f32_from_bf16(bf16_from_f32(x)));
            let trunc = x.to_bits() & 0xffff_0000;
            let (lo, hi) = (f64::from(f32::from_bits(trunc)), f64::from(f32::from_bits(trunc + 0x1_0000)));
            let lo_even = (trunc >> 16) & 1 == 0;
            let x = f64::from(x);
            let want = if x - lo < hi - x || (x - lo == hi - x && lo_even) { lo } else { hi };
            assert_eq!(got, want, "{x:e}");
        }
        assert!(f32_from_bf16(bf16_from_f32(f32::NAN)).is_nan());
        // Past the largest bf16 (by half an ulp or more) rounds to infinity, as in IEEE.
        assert_eq!(f32_from_bf16(bf16_from_f32(f32::MAX)), f32::INFINITY);
    }

    #[test]
    fn bf16_pack_widen_roundtrip() {
        for &(n, k) in &[(1, 1), (31, 3), (32, 4), (33, 5), (70, 8)] {
            let w: Vec<f32> = (0..n * k).map(|i| (i as f32 - 7.0) * 0.37).collect();
            let p = pack_linear_weight_bf16(&w, n, k);
            assert_eq!(p.len(), packed_len_bf16(k, n));
            let f = widen_bf16_panels(&p, k, n);
            for o in 0..n {
                for kk in 0..k {
                    assert_eq!(packed_at(&f, k, kk, o), f32_from_bf16(bf16_from_f32(w[o * k + kk])));
                }
            }
            // Padding columns, and the padding row of an odd k, are zero.
            let pairs = k.div_ceil(2);
            let last = panels(n) - 1;
            for pr in 0..pairs {
                for c in 0..NR {
                    let word = p[last * pairs * NR + pr * NR + c];
                    if last * NR + c >= n {
                        assert_eq!(word, 0);
                    } else if k % 2 == 1 && pr == pairs - 1 {
                        assert_eq!(word >> 16, 0);
                    }
                }
            }
            let mut a = vec![u32::MAX; k.div_ceil(2)];
            bf16_pairs_from_f32(&w[..k], &mut a);
            for kk in 0..k {
                assert_eq!((a[kk / 2] >> (16 * (kk % 2))) as u16, bf16_from_f32(w[kk]));
            }
            if k % 2 == 1 {
                assert_eq!(a[k / 2] >> 16, 0);
            }
        }
    }

    #[test]
    fn pack_roundtrip_and_padding() {
        for &(n, k) in &[(1, 1), (31, 3), (32, 5), (33, 2), (70, 7)] {
            let w: Vec<f32> = (0..n * k).map(|i| i as f32 + 0.5).collect();
            let p = pack_linear_weight(&w, n, k);
            assert_eq!(p.len(), packed_len(k, n));
            for o in 0..n {
                for kk in 0..k {
                    assert_eq!(packed_at(&p, k, kk, o), w[o * k + kk]);
                }
            }
            // Padding columns of the last panel are zero.
            let last = panels(n) - 1;
            for kk in 0..k {
                for c in (n - last * NR)..NR {
                    assert_eq!(p[last * k * NR + kk * NR + c], 0.0);
                }
            }
        }
    }
}
