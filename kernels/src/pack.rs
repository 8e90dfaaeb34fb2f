//! The packed weight layout shared by the converter (which writes it) and the GEMM
//! (which reads it straight from the memory-mapped file).
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
/// `layout` ([`LAYOUT_NAME`] or [`LAYOUT_NAME_BF16`]): the one definition of the packed
/// sizes, which the file's validation asks for. `None` for another name, or when the
/// size overflows.
pub fn packed_bytes(layout: &str, k: usize, n: usize) -> Option<u64> {
    let rows = match layout {
        LAYOUT_NAME => k,
        LAYOUT_NAME_BF16 => k.div_ceil(2),
        _ => return None,
    };
    // Both layouts store 4-byte words: f32 values, or pairs of bf16 values.
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
    for (o, row) in w.chunks_exact(k.max(1)).enumerate().take(n) {
        let (p, c) = (o / NR, o % NR);
        let panel = &mut out[p * k * NR..(p + 1) * k * NR];
        for (kk, &v) in row.iter().enumerate() {
            panel[kk * NR + c] = v;
        }
    }
    out
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
