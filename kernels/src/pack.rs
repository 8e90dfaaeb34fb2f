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

/// Inverse of [`pack_linear_weight`]: element `(kk, o)` of the logical `[k, n]` matrix.
#[inline]
pub fn packed_at(packed: &[f32], k: usize, kk: usize, o: usize) -> f32 {
    packed[(o / NR) * k * NR + kk * NR + o % NR]
}

#[cfg(test)]
mod tests {
    use super::*;

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
