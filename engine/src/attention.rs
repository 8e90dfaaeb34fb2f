//! Attention for one (sequence, head): `softmax(q kᵀ) v` over the packed QKV rows, with
//! the column sums of the probabilities (the pruning importance) accumulated in the same
//! pass when asked.
//!
//! Layout trick: K of the head is first transposed into a per-worker scratch tile
//! `kᵀ: [dh, n]` (for n ≤ 512 and dh = 64 that is 128 KiB, resident in L2), so the
//! scores of one query row are `s[0..n] += q[e] · kᵀ[e, 0..n]` for e ascending — a
//! contiguous, vectorisable update with no horizontal reduction. `p·v` accumulates
//! `out[0..dh] += p[j] · v[j, 0..dh]` for j ascending, also contiguous. Every element is
//! accumulated in a fixed order, so all tiers give the same scores and the result does
//! not depend on the batch.
//!
//! The body is one generic function compiled three times: baseline, AVX2+FMA and
//! AVX-512F (`#[target_feature]` on the entry points only), chosen once per session.

use toprt_kernels::Isa;

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
}

/// Signature of an attention entry point.
///
/// # Safety
/// `out` must point to a `[rows, d]` buffer in which rows `offset..offset+len`, columns
/// `head*dh..(head+1)*dh` belong to this call alone; `colsum`, when non-null, to `len`
/// floats owned by this call. `scratch` holds at least `len * (dh + 1)` floats.
pub(crate) type HeadFn = unsafe fn(t: &HeadTask, out: *mut f32, colsum: *mut f32, scratch: &mut [f32]);

/// Scratch floats one worker needs for sequences up to `max_len`.
pub(crate) fn scratch_len(max_len: usize, dh: usize) -> usize {
    max_len * (dh + 1)
}

/// The entry point for a tier.
pub(crate) fn for_isa(isa: Isa) -> HeadFn {
    match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => head_avx512,
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => head_avx2,
        _ => head_portable,
    }
}

/// # Safety
/// See [`HeadFn`].
unsafe fn head_portable(t: &HeadTask, out: *mut f32, colsum: *mut f32, scratch: &mut [f32]) {
    // SAFETY: forwarded contract.
    unsafe { body(t, out, colsum, scratch) }
}

/// # Safety
/// See [`HeadFn`]; the CPU must support AVX2 and FMA (the session checked the tier).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn head_avx2(t: &HeadTask, out: *mut f32, colsum: *mut f32, scratch: &mut [f32]) {
    // SAFETY: forwarded contract.
    unsafe { body(t, out, colsum, scratch) }
}

/// # Safety
/// See [`HeadFn`]; the CPU must support AVX-512F (the session checked the tier).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn head_avx512(t: &HeadTask, out: *mut f32, colsum: *mut f32, scratch: &mut [f32]) {
    // SAFETY: forwarded contract.
    unsafe { body(t, out, colsum, scratch) }
}

/// # Safety
/// See [`HeadFn`].
#[inline(always)]
unsafe fn body(t: &HeadTask, out: *mut f32, colsum: *mut f32, scratch: &mut [f32]) {
    let (n, dh, d) = (t.len, t.dh, t.d);
    let ld = 3 * d;
    let (kt, rest) = scratch.split_at_mut(n * dh);
    let s = &mut rest[..n];
    let qc = t.head * dh;
    let kc = d + t.head * dh;
    let vc = 2 * d + t.head * dh;
    // kᵀ: [dh, n]
    for j in 0..n {
        let kr = &t.qkv[(t.offset + j) * ld + kc..(t.offset + j) * ld + kc + dh];
        for (e, &x) in kr.iter().enumerate() {
            kt[e * n + j] = x;
        }
    }
    let mut cs = if colsum.is_null() {
        None
    } else {
        // SAFETY: `colsum` has `len` floats owned by this call (contract).
        let c = unsafe { std::slice::from_raw_parts_mut(colsum, n) };
        c.fill(0.0);
        Some(c)
    };
    for i in 0..n {
        let q = &t.qkv[(t.offset + i) * ld + qc..(t.offset + i) * ld + qc + dh];
        s.fill(0.0);
        for (e, &qe) in q.iter().enumerate() {
            let row = &kt[e * n..e * n + n];
            for (sj, &k) in s.iter_mut().zip(row) {
                *sj += qe * k;
            }
        }
        (t.softmax)(s);
        if let Some(c) = cs.as_deref_mut() {
            for (c, &p) in c.iter_mut().zip(s.iter()) {
                *c += p;
            }
        }
        // SAFETY: row offset+i, columns head*dh..+dh belong to this call (contract).
        let o = unsafe { std::slice::from_raw_parts_mut(out.add((t.offset + i) * d + qc), dh) };
        o.fill(0.0);
        for (j, &p) in s.iter().enumerate() {
            let v = &t.qkv[(t.offset + j) * ld + vc..(t.offset + j) * ld + vc + dh];
            for (oe, &ve) in o.iter_mut().zip(v) {
                *oe += p * ve;
            }
        }
    }
}
