//! Attention for one (sequence, head): `softmax(q kᵀ) v` over the packed QKV rows, with
//! the column sums of the probabilities (the pruning importance) accumulated in the same
//! pass when asked.
//!
//! Both products run on the session's weight-GEMM microkernels, so attention gets the
//! same register tiling as the projections instead of a row-at-a-time loop that is bound
//! by loads and stores:
//!
//! 1. `K` of the head is packed into the GEMM's panel layout as the `[dh, n]` operand
//!    `kᵀ`, and `V` as the `[n, dh]` operand (padding columns zeroed).
//! 2. Query rows go in blocks of [`QUERY_BLOCK`]: `S = Q·kᵀ` (`[rows, n]`, the scale is
//!    already folded into `Wq`), a softmax per row, the row added into the column sums,
//!    then `O = P·V` written straight into this head's columns of the context rows.
//!
//! Per worker that is `kᵀ` + `V` + one score block: for n = 512 and dh = 64, 128 KiB
//! each, so the working set of a head stays in L2. Every element is one accumulation
//! chain in a fixed order (`e` ascending for a score, `j` ascending for an output, the
//! GEMM's contract), and a query row's results depend on nothing but that row and the
//! sequence's keys and values: outputs do not depend on the batch, the block a row falls
//! in, or the thread.

use toprt_kernels::gemm::{Epilogue, GemmFn, GemmParams};
use toprt_kernels::pack::{self, NR};

/// Query rows per score block.
pub(crate) const QUERY_BLOCK: usize = 64;

/// One head of one sequence.
pub(crate) struct HeadTask<'a> {
    /// Packed `[rows, 3d]` QKV of the whole batch.
    pub qkv: &'a [f32],
    pub d: usize,
    pub dh: usize,
    pub head: usize,
    /// First row and length of the sequence.
    pub offset: usize,
    pub len: usize,
    pub softmax: fn(&mut [f32]),
    pub sgemm: GemmFn,
}

/// Scratch floats one worker needs for sequences up to `max_len`: packed `kᵀ`, packed
/// `V` and one score block.
pub(crate) fn scratch_len(max_len: usize, dh: usize) -> usize {
    pack::packed_len(dh, max_len) + pack::packed_len(max_len, dh) + QUERY_BLOCK.min(max_len) * max_len
}

/// Computes one head of one sequence.
///
/// # Safety
/// `out` must point to a `[rows, d]` buffer in which rows `offset..offset+len`, columns
/// `head*dh..(head+1)*dh` belong to this call alone; `colsum`, when non-null, to `len`
/// floats owned by this call. `scratch` holds at least `scratch_len(len, dh)` floats,
/// `qkv` covers the sequence's rows, and `t.sgemm` comes from a kernel table of this CPU.
pub(crate) unsafe fn head(t: &HeadTask, out: *mut f32, colsum: *mut f32, scratch: &mut [f32]) {
    let (n, dh, d) = (t.len, t.dh, t.d);
    if n == 0 {
        return;
    }
    let ld = 3 * d;
    let (kt, rest) = scratch.split_at_mut(pack::packed_len(dh, n));
    let (vp, rest) = rest.split_at_mut(pack::packed_len(n, dh));
    let qc = t.head * dh;
    let kc = d + t.head * dh;
    let vc = 2 * d + t.head * dh;
    let rows = &t.qkv[t.offset * ld..(t.offset + n) * ld];

    // kᵀ: element (e, j) = K[j, e]; panel j / NR, column j % NR.
    for (j, row) in rows.chunks_exact(ld).enumerate() {
        let panel = &mut kt[(j / NR) * dh * NR..(j / NR + 1) * dh * NR];
        for (e, &x) in row[kc..kc + dh].iter().enumerate() {
            panel[e * NR + j % NR] = x;
        }
    }
    for j in n..pack::panels(n) * NR {
        let panel = &mut kt[(j / NR) * dh * NR..(j / NR + 1) * dh * NR];
        for e in 0..dh {
            panel[e * NR + j % NR] = 0.0;
        }
    }
    // V: element (j, e) = V[j, e]; panel e / NR.
    for p in 0..pack::panels(dh) {
        let (e0, w) = (p * NR, NR.min(dh - p * NR));
        let panel = &mut vp[p * n * NR..(p + 1) * n * NR];
        for (j, row) in rows.chunks_exact(ld).enumerate() {
            panel[j * NR..j * NR + w].copy_from_slice(&row[vc + e0..vc + e0 + w]);
            panel[j * NR + w..(j + 1) * NR].fill(0.0);
        }
    }
    let (kt, vp) = (&*kt, &*vp);

    let mut cs = if colsum.is_null() {
        None
    } else {
        // SAFETY: `colsum` has `len` floats owned by this call (contract).
        let c = unsafe { std::slice::from_raw_parts_mut(colsum, n) };
        c.fill(0.0);
        Some(c)
    };
    let mut q0 = 0;
    while q0 < n {
        let m = QUERY_BLOCK.min(n - q0);
        let s = &mut rest[..m * n];
        let q = &rows[q0 * ld + qc..];
        let p = GemmParams::new(q, ld, m, dh, kt, n, s, n, Epilogue::None).expect("attention score shapes");
        // SAFETY: validated params; this call owns all panels of its scratch; the kernel
        // is this CPU's (contract).
        unsafe { (t.sgemm)(&p, 0..p.panels()) };
        for row in s.chunks_exact_mut(n) {
            (t.softmax)(row);
            if let Some(c) = cs.as_deref_mut() {
                for (c, &p) in c.iter_mut().zip(row.iter()) {
                    *c += p;
                }
            }
        }
        // SAFETY: rows offset+q0.., columns head*dh..+dh of `out` belong to this call
        // (contract); `(m-1)*d + dh` floats from there lie inside the `[rows, d]` buffer.
        let p =
            unsafe { GemmParams::with_raw_c(s, n, m, n, vp, dh, out.add((t.offset + q0) * d + qc), d, Epilogue::None) }
                .expect("attention output shapes");
        // SAFETY: as above.
        unsafe { (t.sgemm)(&p, 0..p.panels()) };
        q0 += m;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use toprt_kernels::{Isa, Kernels};

    /// softmax(q kᵀ) v and the probability column sums in f64, straight from the
    /// definition.
    fn reference(qkv: &[f32], d: usize, dh: usize, h: usize, off: usize, n: usize) -> (Vec<f64>, Vec<f64>) {
        let at = |r: usize, c: usize| f64::from(qkv[(off + r) * 3 * d + c]);
        let (mut out, mut cs) = (vec![0.0; n * dh], vec![0.0; n]);
        for i in 0..n {
            let s: Vec<f64> =
                (0..n).map(|j| (0..dh).map(|e| at(i, h * dh + e) * at(j, d + h * dh + e)).sum()).collect();
            let mx = s.iter().cloned().fold(f64::MIN, f64::max);
            let z: f64 = s.iter().map(|x| (x - mx).exp()).sum();
            for j in 0..n {
                let p = (s[j] - mx).exp() / z;
                cs[j] += p;
                for e in 0..dh {
                    out[i * dh + e] += p * at(j, 2 * d + h * dh + e);
                }
            }
        }
        (out, cs)
    }

    #[test]
    fn every_tier_matches_the_f64_definition() {
        let mut seed = 0x1234_5678_u64;
        let mut rnd = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
        };
        for isa in [Isa::Scalar, Isa::Avx2, Isa::Avx512] {
            let Ok(k) = Kernels::for_isa(isa) else { continue };
            for &(nh, dh) in &[(2usize, 8usize), (2, 64), (1, 40)] {
                let d = nh * dh;
                for &n in &[1usize, 2, 31, 32, 33, 63, 64, 65, 130] {
                    let off = 3; // the sequence sits after another one in the batch
                    let rows = off + n + 2;
                    let qkv: Vec<f32> = (0..rows * 3 * d).map(|_| rnd()).collect();
                    let mut out = vec![f32::NAN; rows * d];
                    let mut cs = vec![f32::NAN; n];
                    let mut scratch = vec![f32::NAN; scratch_len(n, dh)];
                    for h in 0..nh {
                        let t = HeadTask {
                            qkv: &qkv,
                            d,
                            dh,
                            head: h,
                            offset: off,
                            len: n,
                            softmax: k.softmax,
                            sgemm: k.sgemm,
                        };
                        // SAFETY: out is [rows, d]; cs has n floats; scratch is sized.
                        unsafe { head(&t, out.as_mut_ptr(), cs.as_mut_ptr(), &mut scratch) };
                        let (want, want_cs) = reference(&qkv, d, dh, h, off, n);
                        for i in 0..n {
                            for e in 0..dh {
                                let got = f64::from(out[(off + i) * d + h * dh + e]);
                                let w = want[i * dh + e];
                                assert!((got - w).abs() <= 1e-5, "{isa} n {n} dh {dh} h {h} ({i},{e}): {got} vs {w}");
                            }
                        }
                        for j in 0..n {
                            assert!((f64::from(cs[j]) - want_cs[j]).abs() <= 1e-4, "{isa} n {n} colsum {j}");
                        }
                    }
                    // Rows of the other sequences are never written.
                    assert!(out[..off * d].iter().chain(&out[(off + n) * d..]).all(|x| x.is_nan()));
                }
            }
        }
    }
}
