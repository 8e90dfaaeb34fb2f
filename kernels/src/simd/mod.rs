//! The vector vocabulary the SIMD kernels are written in, and the vector math built on it.
//!
//! Each kernel body (GEMM microkernel, softmax, LayerNorm, GELU …) is written *once*,
//! generic over [`Simd`]: a zero-sized token type per instruction set that maps a dozen
//! operations (load, splat, fma, masked store, …) to that set's intrinsics. The tier files
//! (`gemm/avx2.rs`, `ops/avx512.rs`, …) only instantiate the bodies inside their
//! `#[target_feature]` entry functions; every method here is `#[inline(always)]`, so the
//! intrinsics are inlined into an entry function that has the features enabled (the
//! pattern of memchr's `arch/generic` and pulp).
//!
//! A portable implementation (`emu::Emu`) runs the same bodies with any lane count on
//! any host: the portable tier's 4-lane vectors, and in the tests the 16-lane AVX-512
//! geometry even where the CPU has no AVX-512.
//!
//! ## Vector math
//!
//! * [`exp`]: Cody–Waite range reduction `x = n·ln2 + r`, `|r| <= ln2/2`, then the
//!   degree-6 Cephes `expf` polynomial; max relative error about 2 ulp (measured
//!   `< 3e-7`) on `[-87.3, 88]`. Below `-87.33` the result is exactly 0 (so a
//!   softmax over `-inf` gives 0, not NaN or a denormal); above 88 it saturates at
//!   `e^88`. Callers in this crate only pass `x <= 0`.
//! * [`gelu`]: exact-erf GELU with `erf` from Abramowitz & Stegun 7.1.26, the same
//!   formula as the scalar twin (`ops::erf_scalar`, approximation error 1.5e-7). It is
//!   evaluated as `g = x/2 · (x >= 0 ? 2 - q : q)` with `q = poly(t)·e^{-z²}`
//!   (`= erfc(|x|/√2)`), which avoids the cancellation of `1 + erf` for negative `x`.
//!   Evaluated in f32 it stays within `ops::GELU_TOL` of the f64 scalar twin.

#[cfg(target_arch = "x86_64")]
pub(crate) mod avx2;
#[cfg(target_arch = "x86_64")]
pub(crate) mod avx512;
pub(crate) mod emu;

/// A SIMD instruction set seen through a small vocabulary of `f32` vector operations.
///
/// # Safety
/// Implementations call intrinsics of their instruction set. Every method is `unsafe`:
/// the caller must run on a CPU with that set (guaranteed by only reaching these bodies
/// through a [`crate::Kernels`] table, into which a tier's plug puts its kernels only
/// after checking the CPU),
/// and the pointer methods additionally require the stated number of floats to be
/// readable (loads) or writable (stores); no alignment is required.
pub(crate) unsafe trait Simd: Copy {
    /// `f32` lanes per vector.
    const LANES: usize;
    /// A vector of `LANES` floats.
    type V: Copy;
    /// Selects the first `n < LANES` lanes, for partial loads and stores.
    type M: Copy;

    /// All lanes zero.
    unsafe fn zero() -> Self::V;
    /// All lanes `x`.
    unsafe fn splat(x: f32) -> Self::V;
    /// `LANES` floats from `p` (unaligned).
    unsafe fn load(p: *const f32) -> Self::V;
    /// `LANES` floats to `p` (unaligned).
    unsafe fn store(p: *mut f32, v: Self::V);
    /// The mask of the first `n` lanes; `n < LANES`.
    unsafe fn mask(n: usize) -> Self::M;
    /// The first lanes selected by `m` from `p`, zero elsewhere; unselected lanes are
    /// never read (no fault past the end of a buffer).
    unsafe fn load_masked(p: *const f32, m: Self::M) -> Self::V;
    /// Stores the lanes selected by `m`; the others are never written.
    unsafe fn store_masked(p: *mut f32, m: Self::M, v: Self::V);
    /// `a·b + c`, fused (one rounding).
    unsafe fn fma(a: Self::V, b: Self::V, c: Self::V) -> Self::V;
    unsafe fn add(a: Self::V, b: Self::V) -> Self::V;
    unsafe fn sub(a: Self::V, b: Self::V) -> Self::V;
    unsafe fn mul(a: Self::V, b: Self::V) -> Self::V;
    unsafe fn div(a: Self::V, b: Self::V) -> Self::V;
    unsafe fn max(a: Self::V, b: Self::V) -> Self::V;
    unsafe fn min(a: Self::V, b: Self::V) -> Self::V;
    unsafe fn abs(a: Self::V) -> Self::V;
    /// Round to nearest, ties to even.
    unsafe fn round(a: Self::V) -> Self::V;
    /// `2^n` for lanes holding integral `n` in `-126..=127`, built in the exponent bits.
    unsafe fn pow2i(n: Self::V) -> Self::V;
    /// Per lane `a < b ? x : y` (false for NaN).
    unsafe fn select_lt(a: Self::V, b: Self::V, x: Self::V, y: Self::V) -> Self::V;
    /// Sum of the lanes (a fixed tree order per instruction set).
    unsafe fn reduce_add(a: Self::V) -> f32;
    /// Maximum of the lanes.
    unsafe fn reduce_max(a: Self::V) -> f32;
    /// The lanes read as `i32` bits, converted to `f32` (rounded to nearest even).
    unsafe fn i32_to_f32(a: Self::V) -> Self::V;
    /// The lanes rounded to the nearest `i32` (ties to even), as `i32` bits; only called
    /// on integral values inside the `i32` range.
    unsafe fn f32_to_i32(a: Self::V) -> Self::V;
    /// `a - b` on lanes read as `i32` bits (wrapping).
    unsafe fn sub_i32(a: Self::V, b: Self::V) -> Self::V;
}

/// Loads `n <= LANES` floats (`n == LANES` is a plain load), zero in the other lanes.
///
/// # Safety
/// `n` floats readable at `p`; see [`Simd`].
#[inline(always)]
pub(crate) unsafe fn load_n<S: Simd>(p: *const f32, n: usize) -> S::V {
    if n >= S::LANES {
        S::load(p)
    } else {
        S::load_masked(p, S::mask(n))
    }
}

/// Stores the first `n <= LANES` lanes (`n == LANES` is a plain store).
///
/// # Safety
/// `n` floats writable at `p`; see [`Simd`].
#[inline(always)]
pub(crate) unsafe fn store_n<S: Simd>(p: *mut f32, n: usize, v: S::V) {
    if n >= S::LANES {
        S::store(p, v)
    } else {
        S::store_masked(p, S::mask(n), v)
    }
}

const LOG2E: f32 = std::f32::consts::LOG2_E;
/// ln 2 split so that `n·LN2_HI` is exact for `|n| < 2^9` (Cody–Waite).
const LN2_HI: f32 = 355.0 / 512.0;
const LN2_LO: f32 = -2.121_944_4e-4;
/// Below this `e^x` is under the smallest normal float: the result is 0.
const EXP_MIN: f32 = -87.336_55;
const EXP_MAX: f32 = 88.0;
/// Cephes `expf` polynomial: `e^r ≈ 1 + r + r²·P(r)` on `|r| <= ln2/2`.
const EXP_P: [f32; 6] = [1.987_569_1e-4, 1.398_199_9e-3, 8.333_452e-3, 4.166_579_6e-2, 1.666_666_5e-1, 0.5];

/// `e^x` per lane; see the module docs for range and error.
///
/// # Safety
/// See [`Simd`].
#[inline(always)]
pub(crate) unsafe fn exp<S: Simd>(x: S::V) -> S::V {
    let xc = S::min(S::max(x, S::splat(EXP_MIN)), S::splat(EXP_MAX));
    let n = S::round(S::mul(xc, S::splat(LOG2E)));
    let r = S::fma(n, S::splat(-LN2_HI), xc);
    let r = S::fma(n, S::splat(-LN2_LO), r);
    let mut p = S::splat(EXP_P[0]);
    for &c in &EXP_P[1..] {
        p = S::fma(p, r, S::splat(c));
    }
    let r2 = S::mul(r, r);
    let y = S::add(S::fma(p, r2, r), S::splat(1.0));
    let y = S::mul(y, S::pow2i(n));
    S::select_lt(x, S::splat(EXP_MIN), S::zero(), y)
}

/// Abramowitz & Stegun 7.1.26 constants (as in `ops::erf_scalar`).
const ERF_P: f32 = 0.327_591_1;
const ERF_A: [f32; 5] = [0.254_829_6, -0.284_496_74, 1.421_413_7, -1.453_152, 1.061_405_4];

/// Exact-erf GELU per lane; see the module docs.
///
/// # Safety
/// See [`Simd`].
#[inline(always)]
pub(crate) unsafe fn gelu<S: Simd>(x: S::V) -> S::V {
    let z = S::mul(S::abs(x), S::splat(std::f32::consts::FRAC_1_SQRT_2));
    let t = S::div(S::splat(1.0), S::fma(z, S::splat(ERF_P), S::splat(1.0)));
    let mut poly = S::splat(ERF_A[4]);
    for &c in ERF_A[..4].iter().rev() {
        poly = S::fma(poly, t, S::splat(c));
    }
    poly = S::mul(poly, t);
    // q = erfc(|x|/√2) = poly · e^{-z²}
    let q = S::mul(poly, exp::<S>(S::mul(S::sub(S::zero(), z), z)));
    // 1 + erf(x/√2) = 2 - q for x >= 0, q for x < 0
    let one_plus_erf = S::select_lt(x, S::zero(), q, S::sub(S::splat(2.0), q));
    S::mul(S::mul(S::splat(0.5), x), one_plus_erf)
}

/// Independent FMA chains of the peak probe: enough to cover latency × throughput of
/// every target (4 cycles × 2 pipes = 8 on Zen and Intel cores) with margin.
pub(crate) const PROBE_CHAINS: usize = 12;

/// Runs `iters` rounds of [`PROBE_CHAINS`] independent register-only FMAs and returns a
/// value that depends on all of them (so nothing is optimised away).
///
/// # Safety
/// See [`Simd`].
#[inline(always)]
pub(crate) unsafe fn fma_chains<S: Simd>(iters: usize, x: f32, y: f32) -> f32 {
    let (xv, yv) = (S::splat(x), S::splat(y));
    let mut acc = [S::zero(); PROBE_CHAINS];
    for (i, a) in acc.iter_mut().enumerate() {
        *a = S::splat(i as f32);
    }
    for _ in 0..iters {
        for a in acc.iter_mut() {
            *a = S::fma(*a, xv, yv);
        }
    }
    let mut s = S::zero();
    for a in acc {
        s = S::add(s, a);
    }
    S::reduce_add(s)
}
