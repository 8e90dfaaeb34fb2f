//! Element-wise kernels: LayerNorm, softmax, GELU, embedding sum + LayerNorm.
//!
//! [`scalar`] holds the twins; `avx2` and `avx512` instantiate the generic bodies below
//! with their `Simd` vocabulary and plug them into a [`crate::Kernels`] table where the
//! CPU has the tier; they are only reachable through such a table.
//!
//! Numerics follow the PyTorch/Hugging Face fp32 definitions:
//! * LayerNorm uses the biased variance and `1/sqrt(var + eps)`, computed in two
//!   passes (mean first) so large offsets do not cancel. The SIMD tiers sum with four
//!   vector accumulators (a fixed order per tier), so they differ from the sequential
//!   scalar sum by rounding only ([`LAYERNORM_TOL`]).
//! * GELU is the exact `x/2 · (1 + erf(x/√2))` BERT uses (not the tanh approximation).
//!   `erf` follows Abramowitz & Stegun 7.1.26 (max abs error 1.5e-7), evaluated in f64
//!   by the scalar twin and in f32 by the SIMD tiers ([`GELU_TOL`], see
//!   `simd`).
//! * softmax subtracts the row maximum first, so very negative or large inputs never
//!   overflow; an all `-inf` row gives zeros, not NaN. The SIMD `exp` is a polynomial
//!   within 2 ulp of `f32::exp` ([`SOFTMAX_TOL`]).
//!
//! Reductions of the SIMD tiers handle the last `len % LANES` elements with scalar
//! code; element-wise passes use masked loads and stores, never touching memory past
//! the row.

use crate::simd::{self, load_n, store_n, Simd};
use crate::tol::Tol;

/// Generates a tier's entry points: one `#[target_feature]` function per kernel that
/// instantiates the generic body with the tier's vector type. They are `unsafe` (the
/// CPU must have the tier) and crate-private; the tier file's `plug` puts them in a
/// [`crate::Kernels`] table after checking the CPU, and the table's methods run them.
#[cfg(target_arch = "x86_64")]
macro_rules! tier_entries {
    ($simd:ty, $features:literal, $tier:literal,
     $layernorm:ident, $softmax:ident, $gelu:ident, $embed:ident) => {
        #[doc = concat!("LayerNorm of one row, ", $tier, ".")]
        ///
        /// # Safety
        /// The CPU supports the tier.
        #[target_feature(enable = $features)]
        pub(crate) unsafe fn $layernorm(x: &mut [f32], w: &[f32], b: &[f32], eps: f32) {
            // SAFETY: the features are enabled on this function (caller's contract).
            unsafe { super::layernorm::<$simd>(x, w, b, eps) }
        }

        #[doc = concat!("Softmax of one row, ", $tier, ".")]
        ///
        /// # Safety
        /// The CPU supports the tier.
        #[target_feature(enable = $features)]
        pub(crate) unsafe fn $softmax(x: &mut [f32]) {
            // SAFETY: the features are enabled on this function (caller's contract).
            unsafe { super::softmax::<$simd>(x) }
        }

        #[doc = concat!("Exact GELU of a slice, ", $tier, ".")]
        ///
        /// # Safety
        /// The CPU supports the tier.
        #[target_feature(enable = $features)]
        pub(crate) unsafe fn $gelu(x: &mut [f32]) {
            // SAFETY: the features are enabled on this function (caller's contract).
            unsafe { super::gelu::<$simd>(x) }
        }

        #[doc = concat!("Embedding sum + LayerNorm of one row, ", $tier, ".")]
        ///
        /// # Safety
        /// The CPU supports the tier.
        #[target_feature(enable = $features)]
        pub(crate) unsafe fn $embed(
            out: &mut [f32],
            word: &[f32],
            pos: &[f32],
            typ: &[f32],
            w: &[f32],
            b: &[f32],
            eps: f32,
        ) {
            // SAFETY: the features are enabled on this function (caller's contract).
            unsafe { super::embed_add_layernorm::<$simd>(out, word, pos, typ, w, b, eps) }
        }
    };
}

#[cfg(target_arch = "x86_64")]
pub(crate) mod avx2;
#[cfg(target_arch = "x86_64")]
pub(crate) mod avx512;
pub(crate) mod portable;
pub mod scalar;

pub use scalar::{
    embed_add_layernorm_scalar, erf_scalar, gelu_scalar, gelu_slice_scalar, layernorm_scalar, softmax_scalar,
};

// The table slots of the element-wise kernels. Each is an `unsafe fn` because a tier's
// kernel may only run on a CPU with that tier: true for every kernel in a `Kernels`
// table, whose methods call them.

/// LayerNorm of one row in place: `(x, weight, bias, eps)`.
///
/// # Safety
/// The CPU supports the kernel's tier.
pub(crate) type LayerNormFn = unsafe fn(&mut [f32], &[f32], &[f32], f32);
/// Softmax or GELU of a slice in place.
///
/// # Safety
/// The CPU supports the kernel's tier.
pub(crate) type UnaryFn = unsafe fn(&mut [f32]);
/// `(out, word_row, pos_row, type_row, ln_weight, ln_bias, eps)`: `out = LN(word + pos + type)`.
///
/// # Safety
/// The CPU supports the kernel's tier.
pub(crate) type EmbedAddLayerNormFn = unsafe fn(&mut [f32], &[f32], &[f32], &[f32], &[f32], &[f32], f32);
/// A row of activations to bf16 pairs ([`crate::pack::bf16_pairs_from_f32`]).
///
/// # Safety
/// The CPU supports the kernel's tier.
pub(crate) type ToBf16PairsFn = unsafe fn(&[f32], &mut [u32]);
/// `(src, ld, rows, k, dst)`: strided rows packed as the panel operand of their
/// transpose ([`crate::pack::pack_rows_panel32`]).
///
/// # Safety
/// The CPU supports the kernel's tier.
pub(crate) type PackRowsFn = unsafe fn(&[f32], usize, usize, usize, &mut [f32]);

/// The slot type of a row quantiser for int8 GEMMs: `(x, out) -> scale`
/// ([`crate::pack::quantize_row_i8`]).
///
/// # Safety
/// The CPU must support the tier the kernel belongs to.
pub(crate) type QuantizeRowFn = unsafe fn(&[f32], &mut [u32]) -> f32;

/// SIMD GELU vs the scalar twin: the twin evaluates the same A&S formula in f64, the
/// SIMD tiers in f32 with a polynomial `exp`; the difference is f32 evaluation error
/// (a few ulp of the result, more in `e^{-z²}` as `z²` grows), far below the 1.5e-7 of
/// the approximation itself.
pub const GELU_TOL: Tol = Tol { abs: 1e-7, rel: 2e-6 };

/// SIMD softmax vs the scalar twin: `exp` within 2 ulp, then one division; the row sum
/// is accumulated in a different order (4 vector accumulators).
pub const SOFTMAX_TOL: Tol = Tol { abs: 1e-8, rel: 1e-5 };

/// SIMD LayerNorm vs the scalar twin, on outputs of unit scale: the mean and variance
/// are sums of `d` terms in a different order; the sequential f32 sum of the twin
/// carries up to `d·ε` relative error, which for `d` = 3072 and inputs with a large
/// common offset reaches ~1e-5 of the spread.
pub const LAYERNORM_TOL: Tol = Tol { abs: 2e-5, rel: 2e-5 };

/// Σ `f(x[i])` over a row: four vector accumulators, then the tail in scalar code.
///
/// # Safety
/// The CPU supports `S`.
#[inline(always)]
unsafe fn sum_map<S: Simd>(x: &[f32], fv: impl Fn(S::V) -> S::V, fs: impl Fn(f32) -> f32) -> f32 {
    let (n, l, p) = (x.len(), S::LANES, x.as_ptr());
    let mut acc = [S::zero(); 4];
    let mut i = 0;
    while i + 4 * l <= n {
        for (u, a) in acc.iter_mut().enumerate() {
            *a = S::add(*a, fv(S::load(p.add(i + u * l))));
        }
        i += 4 * l;
    }
    while i + l <= n {
        acc[0] = S::add(acc[0], fv(S::load(p.add(i))));
        i += l;
    }
    let v = S::add(S::add(acc[0], acc[1]), S::add(acc[2], acc[3]));
    let mut s = S::reduce_add(v);
    for &t in &x[i..] {
        s += fs(t);
    }
    s
}

/// Applies `f` to every vector of `x` in place (masked tail).
///
/// # Safety
/// The CPU supports `S`; `f` reads only memory valid for the lanes it is given.
#[inline(always)]
unsafe fn map_in_place<S: Simd>(x: &mut [f32], f: impl Fn(S::V, usize) -> S::V) {
    let (n, l, p) = (x.len(), S::LANES, x.as_mut_ptr());
    let mut i = 0;
    while i < n {
        let cnt = l.min(n - i);
        store_n::<S>(p.add(i), cnt, f(load_n::<S>(p.add(i), cnt), i));
        i += l;
    }
}

/// LayerNorm of one row in place.
///
/// # Safety
/// The CPU supports `S`.
///
/// # Panics
/// If `w` or `b` is shorter than `x`.
#[inline(always)]
pub(crate) unsafe fn layernorm<S: Simd>(x: &mut [f32], w: &[f32], b: &[f32], eps: f32) {
    let n = x.len();
    assert!(w.len() >= n && b.len() >= n, "LayerNorm weight {} / bias {} shorter than the row {n}", w.len(), b.len());
    if n == 0 {
        return;
    }
    let sum = sum_map::<S>(
        x,
        #[inline(always)]
        |v| v,
        #[inline(always)]
        |v| v,
    );
    normalize::<S>(x, w, b, eps, sum);
}

/// The variance and scaling passes of LayerNorm, given `Σ x`.
///
/// # Safety
/// The CPU supports `S`; `w` and `b` hold at least `x.len()` values.
#[inline(always)]
unsafe fn normalize<S: Simd>(x: &mut [f32], w: &[f32], b: &[f32], eps: f32, sum: f32) {
    let n = x.len();
    let mean = sum / n as f32;
    let mv = S::splat(mean);
    let var = sum_map::<S>(
        x,
        #[inline(always)]
        |v| {
            let d = S::sub(v, mv);
            S::mul(d, d)
        },
        #[inline(always)]
        |v| (v - mean) * (v - mean),
    ) / n as f32;
    let inv = S::splat(1.0 / (var + eps).sqrt());
    let (wp, bp) = (w.as_ptr(), b.as_ptr());
    map_in_place::<S>(
        x,
        #[inline(always)]
        |v, i| {
            let cnt = S::LANES.min(n - i);
            S::fma(S::mul(S::sub(v, mv), inv), load_n::<S>(wp.add(i), cnt), load_n::<S>(bp.add(i), cnt))
        },
    );
}

/// `out = LayerNorm(word + pos + typ)` in one pass for the sum, then the LayerNorm
/// passes over `out` (in L1).
///
/// # Safety
/// The CPU supports `S`.
///
/// # Panics
/// If an input row, `w` or `b` is shorter than `out`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn embed_add_layernorm<S: Simd>(
    out: &mut [f32],
    word: &[f32],
    pos: &[f32],
    typ: &[f32],
    w: &[f32],
    b: &[f32],
    eps: f32,
) {
    let n = out.len();
    assert!(
        word.len() >= n && pos.len() >= n && typ.len() >= n && w.len() >= n && b.len() >= n,
        "embedding rows / LayerNorm parameters shorter than the output row {n}"
    );
    if n == 0 {
        return;
    }
    let (wp, pp, tp, o) = (word.as_ptr(), pos.as_ptr(), typ.as_ptr(), out.as_mut_ptr());
    let mut acc = S::zero();
    let mut i = 0;
    while i + S::LANES <= n {
        let v = S::add(S::add(S::load(wp.add(i)), S::load(pp.add(i))), S::load(tp.add(i)));
        S::store(o.add(i), v);
        acc = S::add(acc, v);
        i += S::LANES;
    }
    let mut sum = S::reduce_add(acc);
    for j in i..n {
        let v = word[j] + pos[j] + typ[j];
        out[j] = v;
        sum += v;
    }
    normalize::<S>(out, w, b, eps, sum);
}

/// Softmax of one row in place.
///
/// # Safety
/// The CPU supports `S`.
#[inline(always)]
pub(crate) unsafe fn softmax<S: Simd>(x: &mut [f32]) {
    let (n, l) = (x.len(), S::LANES);
    let p = x.as_mut_ptr();
    let mut mv = [S::splat(f32::NEG_INFINITY); 4];
    let mut i = 0;
    while i + 4 * l <= n {
        for (u, m) in mv.iter_mut().enumerate() {
            *m = S::max(*m, S::load(p.add(i + u * l)));
        }
        i += 4 * l;
    }
    while i + l <= n {
        mv[0] = S::max(mv[0], S::load(p.add(i)));
        i += l;
    }
    let mut max = S::reduce_max(S::max(S::max(mv[0], mv[1]), S::max(mv[2], mv[3])));
    for &v in &x[i..] {
        max = max.max(v);
    }
    if max == f32::NEG_INFINITY {
        x.fill(0.0);
        return;
    }
    let maxv = S::splat(max);
    let mut acc = [S::zero(); 2];
    let mut i = 0;
    while i + 2 * l <= n {
        for (u, a) in acc.iter_mut().enumerate() {
            let e = simd::exp::<S>(S::sub(S::load(p.add(i + u * l)), maxv));
            S::store(p.add(i + u * l), e);
            *a = S::add(*a, e);
        }
        i += 2 * l;
    }
    let tail = i;
    map_in_place::<S>(
        &mut x[tail..],
        #[inline(always)]
        |v, _| simd::exp::<S>(S::sub(v, maxv)),
    );
    let mut sum = S::reduce_add(S::add(acc[0], acc[1]));
    for &v in &x[tail..] {
        sum += v;
    }
    let inv = S::splat(1.0 / sum);
    map_in_place::<S>(
        x,
        #[inline(always)]
        |v, _| S::mul(v, inv),
    );
}

/// GELU of a slice in place.
///
/// # Safety
/// The CPU supports `S`.
#[inline(always)]
pub(crate) unsafe fn gelu<S: Simd>(x: &mut [f32]) {
    map_in_place::<S>(
        x,
        #[inline(always)]
        |v, _| simd::gelu::<S>(v),
    );
}

/// The row quantiser of the SIMD tiers: the arithmetic of
/// [`crate::pack::quantize_row_i8`] (the largest magnitude, `round_ties_even(x · inv)`
/// clamped to -127..=127, plus 128), so every tier writes the same bytes and scale;
/// `store_bytes(p, v, n)` writes the low byte of the first `n` `i32` lanes of `v` to `p`.
///
/// # Safety
/// The CPU supports `S`; `store_bytes` writes exactly `n` bytes.
#[inline(always)]
pub(crate) unsafe fn quantize_row<S: Simd>(
    x: &[f32],
    out: &mut [u32],
    store_bytes: impl Fn(*mut u8, S::V, usize),
) -> f32 {
    assert!(out.len() >= x.len().div_ceil(4), "{} words for {} values", out.len(), x.len());
    let l = S::LANES;
    let mut m = S::zero();
    let mut i = 0;
    while i < x.len() {
        let n = (x.len() - i).min(l);
        // SAFETY: n floats at i are in bounds.
        m = S::max(m, S::abs(unsafe { load_n::<S>(x.as_ptr().add(i), n) }));
        i += l;
    }
    let (scale, inv) = crate::pack::row_scale_i8(S::reduce_max(m));
    // Bytes past the row read as q = 0; the row's own bytes overwrite the first ones.
    out[x.len() / 4..].fill(0x8080_8080);
    let (lo, hi, inv) = (S::splat(-127.0), S::splat(127.0), S::splat(inv));
    let minus_128 = S::splat(f32::from_bits((-128i32) as u32));
    let dst = out.as_mut_ptr().cast::<u8>();
    let mut i = 0;
    while i < x.len() {
        let n = (x.len() - i).min(l);
        // SAFETY: n floats at i are in bounds, and so are n bytes at i of `out` (which
        // holds at least x.len() bytes, asserted above).
        unsafe {
            let q = S::f32_to_i32(S::min(S::max(S::mul(load_n::<S>(x.as_ptr().add(i), n), inv), lo), hi));
            store_bytes(dst.add(i), S::sub_i32(q, minus_128), n);
        }
        i += l;
    }
    scale
}
