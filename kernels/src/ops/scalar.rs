//! The scalar twins of the element-wise kernels: obviously correct, the reference the
//! SIMD tiers are tested against, and the portable fallback. See [`super`] for the
//! numerics they define.

/// LayerNorm of one row in place: `x = (x - mean)/sqrt(var + eps) * w + b`.
pub fn layernorm_scalar(x: &mut [f32], w: &[f32], b: &[f32], eps: f32) {
    let n = x.len();
    if n == 0 {
        return;
    }
    let mean = x.iter().sum::<f32>() / n as f32;
    let var = x.iter().map(|&v| (v - mean) * (v - mean)).sum::<f32>() / n as f32;
    let inv = 1.0 / (var + eps).sqrt();
    for ((v, &w), &b) in x.iter_mut().zip(w).zip(b) {
        *v = (*v - mean) * inv * w + b;
    }
}

/// Softmax of one row in place (max-subtracted; an all `-inf` row gives zeros).
pub fn softmax_scalar(x: &mut [f32]) {
    let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    if max == f32::NEG_INFINITY {
        x.fill(0.0);
        return;
    }
    let mut sum = 0.0f32;
    for v in x.iter_mut() {
        *v = (*v - max).exp();
        sum += *v;
    }
    let inv = 1.0 / sum;
    for v in x.iter_mut() {
        *v *= inv;
    }
}

/// `erf(x)` by Abramowitz & Stegun 7.1.26, in f64.
pub fn erf_scalar(x: f64) -> f64 {
    const P: f64 = 0.327_591_1;
    const A: [f64; 5] = [0.254_829_592, -0.284_496_736, 1.421_413_741, -1.453_152_027, 1.061_405_429];
    let s = x.signum();
    let x = x.abs();
    let t = 1.0 / (1.0 + P * x);
    let poly = t * (A[0] + t * (A[1] + t * (A[2] + t * (A[3] + t * A[4]))));
    s * (1.0 - poly * (-x * x).exp())
}

/// Exact (erf) GELU of one value.
#[inline]
pub fn gelu_scalar(x: f32) -> f32 {
    let xd = x as f64;
    (0.5 * xd * (1.0 + erf_scalar(xd * std::f64::consts::FRAC_1_SQRT_2))) as f32
}

/// GELU of a slice in place.
pub fn gelu_slice_scalar(x: &mut [f32]) {
    for v in x {
        *v = gelu_scalar(*v);
    }
}

/// `out = LayerNorm(word + pos + type)`: the embedding sum, then [`layernorm_scalar`].
///
/// # Panics
/// If an input row is shorter than `out`.
pub fn embed_add_layernorm_scalar(
    out: &mut [f32],
    word: &[f32],
    pos: &[f32],
    typ: &[f32],
    w: &[f32],
    b: &[f32],
    eps: f32,
) {
    let n = out.len();
    let (word, pos, typ) = (&word[..n], &pos[..n], &typ[..n]);
    for (i, o) in out.iter_mut().enumerate() {
        *o = word[i] + pos[i] + typ[i];
    }
    layernorm_scalar(out, w, b, eps);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erf_matches_known_values() {
        // erf values from tables (to 10 digits).
        for &(x, e) in &[
            (0.0, 0.0),
            (0.5, 0.520_499_877_8),
            (1.0, 0.842_700_792_9),
            (2.0, 0.995_322_265_0),
            (-1.5, -0.966_105_146_5),
        ] {
            assert!((erf_scalar(x) - e).abs() < 2e-7, "erf({x}) = {} want {e}", erf_scalar(x));
        }
    }

    #[test]
    fn softmax_invariants() {
        let mut x = vec![1.0, 2.0, 3.0, -1e30, 1e4];
        softmax_scalar(&mut x);
        assert!((x.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!(x.iter().all(|v| v.is_finite() && *v >= 0.0));
        let mut y = vec![f32::NEG_INFINITY; 4];
        softmax_scalar(&mut y);
        assert!(y.iter().all(|v| *v == 0.0));
    }

    #[test]
    fn gelu_sign_and_limits() {
        for i in -100..=100 {
            let x = i as f32 * 0.1;
            let g = gelu_scalar(x);
            assert!(g.is_finite());
            if x > 0.0 {
                assert!(g > 0.0 && g <= x);
            }
            if x < 0.0 {
                assert!((-0.2..=0.0).contains(&g));
            }
        }
        assert!((gelu_scalar(10.0) - 10.0).abs() < 1e-5);
    }

    #[test]
    fn layernorm_normalises() {
        let mut x: Vec<f32> = (0..64).map(|i| 1000.0 + i as f32).collect();
        let w = vec![1.0; 64];
        let b = vec![0.0; 64];
        layernorm_scalar(&mut x, &w, &b, 1e-12);
        let mean: f32 = x.iter().sum::<f32>() / 64.0;
        let var: f32 = x.iter().map(|v| v * v).sum::<f32>() / 64.0;
        assert!(mean.abs() < 1e-5 && (var - 1.0).abs() < 1e-4, "mean {mean} var {var}");
    }
}
