//! Element-wise tier tests (instantiated per tier by `tier_tests!`).

use super::support::{check_close, Rng, Tier};
use crate::ops::{self, GELU_TOL, LAYERNORM_TOL, SOFTMAX_TOL};

/// Row lengths: every tail length around 1–4 vectors of 16, then real widths.
fn lengths() -> Vec<usize> {
    (0..=70).chain([127, 128, 129, 384, 512, 768, 1024, 3072]).collect()
}

pub fn softmax_matches_scalar(t: &Tier) {
    let mut rng = Rng::new(20);
    for n in lengths() {
        for off in [0, 1, 7, 15] {
            let mut buf = rng.floats(n + off, -20.0, 20.0);
            let mut want = buf[off..].to_vec();
            ops::softmax_scalar(&mut want);
            t.kernels.softmax(&mut buf[off..]);
            let at = |i: usize| format!("len {n} offset {off} [{i}]");
            check_close(&format!("{} softmax", t.name), &buf[off..], &want, |i| SOFTMAX_TOL.bound(want[i]), at)
                .unwrap();
        }
    }
}

pub fn softmax_invariants(t: &Tier) {
    let mut rng = Rng::new(21);
    let sm = |x: &mut [f32]| t.kernels.softmax(x);
    for n in [1, 5, 16, 17, 33, 128, 511] {
        // Rows sum to 1, all values in [0, 1].
        let mut x = rng.floats(n, -30.0, 30.0);
        sm(&mut x);
        let sum: f64 = x.iter().map(|&v| f64::from(v)).sum();
        assert!((sum - 1.0).abs() < 1e-5, "{}: len {n}: softmax sums to {sum}", t.name);
        assert!(x.iter().all(|v| (0.0..=1.0).contains(v)), "{}: len {n}: value outside [0, 1]", t.name);
        // A row of -inf gives zeros, not NaN.
        let mut x = vec![f32::NEG_INFINITY; n];
        sm(&mut x);
        assert!(x.iter().all(|&v| v == 0.0), "{}: len {n}: all -inf row gave {x:?}", t.name);
        // Very negative rows and -inf mixed in: no NaN, -inf entries exactly 0, sum 1.
        let mut x: Vec<f32> = (0..n).map(|i| if i % 3 == 1 { f32::NEG_INFINITY } else { -1e30 + i as f32 }).collect();
        sm(&mut x);
        assert!(x.iter().all(|v| v.is_finite()), "{}: len {n}: NaN/inf from a very negative row", t.name);
        assert!((0..n).filter(|i| i % 3 == 1).all(|i| x[i] == 0.0), "{}: len {n}: exp(-inf) != 0", t.name);
        let sum: f32 = x.iter().sum();
        assert!((sum - 1.0).abs() < 1e-5, "{}: len {n}: very negative row sums to {sum}", t.name);
        // Huge positive values do not overflow.
        let mut x: Vec<f32> = (0..n).map(|i| 1e30 - (i % 7) as f32 * 1e24).collect();
        sm(&mut x);
        assert!(x.iter().all(|v| v.is_finite()), "{}: len {n}: overflow on large inputs", t.name);
    }
}

pub fn layernorm_matches_scalar(t: &Tier) {
    let mut rng = Rng::new(22);
    for n in lengths() {
        for (off, shift) in [(0, 0.0), (3, 100.0), (9, -3.0)] {
            let w = rng.floats(n, 0.5, 1.5);
            let b = rng.floats(n, -0.5, 0.5);
            let mut buf: Vec<f32> = rng.floats(n + off, -2.0, 2.0).into_iter().map(|v| v + shift).collect();
            let mut want = buf[off..].to_vec();
            let scale = offset_factor(&want);
            ops::layernorm_scalar(&mut want, &w, &b, 1e-12);
            t.kernels.layernorm(&mut buf[off..], &w, &b, 1e-12);
            let at = |i: usize| format!("len {n} offset {off} shift {shift} [{i}]");
            let bound = |i: usize| scale * LAYERNORM_TOL.bound(want[i]);
            check_close(&format!("{} layernorm", t.name), &buf[off..], &want, bound, at).unwrap();
        }
    }
}

/// LayerNorm's rounding error relative to its output grows with `|mean| / std` of the
/// input (the mean is a sum of large terms, the output depends on small differences
/// from it): [`LAYERNORM_TOL`] holds for centred rows and is scaled by `1 + |mean|/std`.
fn offset_factor(x: &[f32]) -> f32 {
    if x.is_empty() {
        return 1.0;
    }
    let n = x.len() as f64;
    let mean = x.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
    let var = x.iter().map(|&v| (f64::from(v) - mean).powi(2)).sum::<f64>() / n;
    (1.0 + mean.abs() / var.sqrt().max(1e-30)) as f32
}

pub fn gelu_matches_scalar(t: &Tier) {
    let mut rng = Rng::new(23);
    // A dense grid over [-12, 12] (every regime of erf and exp), specials, random.
    let mut x: Vec<f32> = (-12_000..=12_000).map(|i| i as f32 * 1e-3).collect();
    x.extend([0.0, -0.0, 1e-30, -1e-30, 1e-8, -1e-8, 30.0, -30.0, 1e4, -1e4, f32::MIN_POSITIVE]);
    x.extend(rng.floats(1000, -6.0, 6.0));
    for off in [0, 5] {
        let mut got = x[off..].to_vec();
        t.kernels.gelu(&mut got);
        let want: Vec<f32> = x[off..].iter().map(|&v| ops::gelu_scalar(v)).collect();
        let at = |i: usize| format!("x = {:e} (offset {off}, [{i}])", x[off + i]);
        check_close(&format!("{} gelu", t.name), &got, &want, |i| GELU_TOL.bound(want[i]), at).unwrap();
    }
    // Every tail length.
    for n in 0..40 {
        let mut got = x[100..100 + n].to_vec();
        t.kernels.gelu(&mut got);
        let want: Vec<f32> = x[100..100 + n].iter().map(|&v| ops::gelu_scalar(v)).collect();
        check_close(&format!("{} gelu len {n}", t.name), &got, &want, |i| GELU_TOL.bound(want[i]), |i| i.to_string())
            .unwrap();
    }
}

pub fn gelu_invariants(t: &Tier) {
    let mut x: Vec<f32> = (-20_000..=20_000).map(|i| i as f32 * 1e-3).collect();
    x.extend([1e-30, -1e-30, 80.0, -80.0, 1e20, -1e20]);
    let mut g = x.clone();
    t.kernels.gelu(&mut g);
    for (&x, &g) in x.iter().zip(&g) {
        assert!(g.is_finite(), "{}: gelu({x}) = {g}", t.name);
        // GELU keeps the sign: positive stays positive (and <= x), negative stays in
        // [-0.17, 0] (it may underflow to zero far out).
        if x > 0.0 {
            assert!(g > 0.0 && g <= x, "{}: gelu({x}) = {g}", t.name);
        } else if x < 0.0 {
            assert!((-0.17..=0.0).contains(&g), "{}: gelu({x}) = {g}", t.name);
        } else {
            assert_eq!(g, 0.0, "{}: gelu(0) = {g}", t.name);
        }
    }
}

pub fn embed_add_layernorm_matches_scalar(t: &Tier) {
    let mut rng = Rng::new(24);
    for n in lengths() {
        let (word, pos, typ) = (rng.floats(n, -1.0, 1.0), rng.floats(n, -0.2, 0.2), rng.floats(n, -0.1, 0.1));
        let (w, b) = (rng.floats(n, 0.5, 1.5), rng.floats(n, -0.5, 0.5));
        let mut want = vec![f32::NAN; n];
        ops::embed_add_layernorm_scalar(&mut want, &word, &pos, &typ, &w, &b, 1e-12);
        let mut got = vec![f32::NAN; n];
        t.kernels.embed_add_layernorm(&mut got, &word, &pos, &typ, &w, &b, 1e-12);
        let at = |i: usize| format!("len {n} [{i}]");
        check_close(&format!("{} embed_add_layernorm", t.name), &got, &want, |i| LAYERNORM_TOL.bound(want[i]), at)
            .unwrap();
    }
}

pub fn peak_probe_runs(t: &Tier) {
    let gf = crate::peak_probe(t.kernels.isa());
    assert!(gf.is_finite() && gf > 0.0, "{}: peak probe gave {gf}", t.name);
    println!("{}: FMA peak {gf:.1} GFLOP/s", t.kernels.isa());
}

/// `pack_rows` against the definition, value for value: every row count around the
/// 16-row halves and 32-column panels, `k` around the 16-value blocks, strides with
/// room between rows; the padding columns zero, nothing written past the operand.
pub fn pack_rows_matches_definition(t: &Tier) {
    use crate::pack::{packed_len, NR};
    let mut rng = Rng::new(26);
    for rows in [0, 1, 2, 15, 16, 17, 31, 32, 33, 63, 64, 65, 130] {
        for k in [1, 3, 8, 15, 16, 17, 40, 64, 100] {
            for ld in [k, k + 5, 3 * k + 16] {
                let src = rng.floats(rows.max(1) * ld, -4.0, 4.0);
                let len = packed_len(k, rows);
                let mut dst = vec![f32::NAN; len + 7];
                t.kernels.pack_rows(&src, ld, rows, k, &mut dst);
                for (i, &got) in dst[..len].iter().enumerate() {
                    let (p, e, c) = (i / (k * NR), i / NR % k, i % NR);
                    let j = p * NR + c;
                    let want = if j < rows { src[j * ld + e] } else { 0.0 };
                    assert_eq!(got.to_bits(), want.to_bits(), "{}: rows {rows} k {k} ld {ld}: ({j}, {e})", t.name);
                }
                assert!(dst[len..].iter().all(|x| x.is_nan()), "{}: rows {rows} k {k}: wrote past the operand", t.name);
            }
        }
    }
}
