//! A portable [`Simd`] over `[f32; L]`: the portable tier's vectors (`L = 4`, which the
//! compiler maps to SSE2 or NEON registers), and in the tests the 16-lane AVX-512
//! geometry (tile shape, masks, tails) on hosts without AVX-512. `fma` is an unfused
//! `a*b + c` so it stays fast without hardware FMA (the scalar twin's rounding); tests
//! compare it with the scalar twin under the same tolerances as the real tiers.

use super::Simd;

#[derive(Clone, Copy)]
pub(crate) struct Emu<const L: usize>;

#[inline(always)]
fn map<const L: usize>(a: [f32; L], f: impl Fn(f32) -> f32) -> [f32; L] {
    a.map(f)
}

#[inline(always)]
fn zip<const L: usize>(a: [f32; L], b: [f32; L], f: impl Fn(f32, f32) -> f32) -> [f32; L] {
    std::array::from_fn(|i| f(a[i], b[i]))
}

// SAFETY: plain Rust; the pointer methods touch exactly the floats the contract names.
unsafe impl<const L: usize> Simd for Emu<L> {
    const LANES: usize = L;
    type V = [f32; L];
    type M = usize;

    unsafe fn zero() -> [f32; L] {
        [0.0; L]
    }
    unsafe fn splat(x: f32) -> [f32; L] {
        [x; L]
    }
    unsafe fn load(p: *const f32) -> [f32; L] {
        std::array::from_fn(|i| unsafe { *p.add(i) })
    }
    unsafe fn store(p: *mut f32, v: [f32; L]) {
        for (i, x) in v.into_iter().enumerate() {
            unsafe { *p.add(i) = x };
        }
    }
    unsafe fn mask(n: usize) -> usize {
        assert!(n < L, "mask of {n} lanes on a {L}-lane vector");
        n
    }
    unsafe fn load_masked(p: *const f32, m: usize) -> [f32; L] {
        std::array::from_fn(|i| if i < m { unsafe { *p.add(i) } } else { 0.0 })
    }
    unsafe fn store_masked(p: *mut f32, m: usize, v: [f32; L]) {
        for (i, x) in v.into_iter().enumerate().take(m) {
            unsafe { *p.add(i) = x };
        }
    }
    unsafe fn fma(a: [f32; L], b: [f32; L], c: [f32; L]) -> [f32; L] {
        std::array::from_fn(|i| a[i] * b[i] + c[i])
    }
    unsafe fn add(a: [f32; L], b: [f32; L]) -> [f32; L] {
        zip(a, b, |x, y| x + y)
    }
    unsafe fn sub(a: [f32; L], b: [f32; L]) -> [f32; L] {
        zip(a, b, |x, y| x - y)
    }
    unsafe fn mul(a: [f32; L], b: [f32; L]) -> [f32; L] {
        zip(a, b, |x, y| x * y)
    }
    unsafe fn div(a: [f32; L], b: [f32; L]) -> [f32; L] {
        zip(a, b, |x, y| x / y)
    }
    unsafe fn max(a: [f32; L], b: [f32; L]) -> [f32; L] {
        zip(a, b, f32::max)
    }
    unsafe fn min(a: [f32; L], b: [f32; L]) -> [f32; L] {
        zip(a, b, f32::min)
    }
    unsafe fn abs(a: [f32; L]) -> [f32; L] {
        map(a, f32::abs)
    }
    unsafe fn round(a: [f32; L]) -> [f32; L] {
        map(a, f32::round_ties_even)
    }
    unsafe fn pow2i(n: [f32; L]) -> [f32; L] {
        map(n, |n| f32::from_bits(((n as i32 + 127) as u32) << 23))
    }
    unsafe fn select_lt(a: [f32; L], b: [f32; L], x: [f32; L], y: [f32; L]) -> [f32; L] {
        std::array::from_fn(|i| if a[i] < b[i] { x[i] } else { y[i] })
    }
    unsafe fn reduce_add(a: [f32; L]) -> f32 {
        a.into_iter().sum()
    }
    unsafe fn reduce_max(a: [f32; L]) -> f32 {
        a.into_iter().fold(f32::NEG_INFINITY, f32::max)
    }
    unsafe fn i32_to_f32(a: [f32; L]) -> [f32; L] {
        a.map(|x| x.to_bits() as i32 as f32)
    }
    unsafe fn f32_to_i32(a: [f32; L]) -> [f32; L] {
        a.map(|x| f32::from_bits(x.round_ties_even() as i32 as u32))
    }
    unsafe fn sub_i32(a: [f32; L], b: [f32; L]) -> [f32; L] {
        std::array::from_fn(|i| f32::from_bits((a[i].to_bits() as i32).wrapping_sub(b[i].to_bits() as i32) as u32))
    }
}
