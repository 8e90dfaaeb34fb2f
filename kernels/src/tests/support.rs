//! What the tier tests share: the tier under test, deterministic data, and error
//! reports that say where and by how much.

use crate::gemm::driver::{TileFn, TileJob, TileSet};
use crate::gemm::{self, microkernel, Blocking, GemmParams};
use crate::simd::emu::Emu;
use crate::{ops, Isa, Kernels};
use std::ops::Range;

/// A tier under test: its dispatch table and GEMM geometry (for edge shapes).
pub struct Tier {
    pub name: String,
    pub kernels: Kernels,
    /// Full register tile rows.
    pub mr: usize,
    /// The blocking its GEMM runs with (`None`: the scalar twin, which has none, and the
    /// portable tier, whose `gemm` crate chooses its own).
    pub blocking: Option<Blocking>,
}

impl Tier {
    /// A real tier of this CPU. Panics with the skip message when the host lacks it
    /// (reached only with `--include-ignored`).
    pub fn native(isa: Isa) -> Tier {
        let kernels = Kernels::for_isa(isa).unwrap_or_else(|e| panic!("skipped: {isa} not supported ({e})"));
        let mr = match isa {
            Isa::Scalar => 4,
            Isa::Portable => gemm::portable::MR,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => gemm::avx2::MR,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => gemm::avx512::MR,
            #[cfg(not(target_arch = "x86_64"))]
            _ => unreachable!(),
        };
        // The scalar twin has no blocking, and the portable tier's crate blocks by itself.
        let blocking = (!matches!(isa, Isa::Scalar | Isa::Portable)).then(Blocking::detected);
        Tier { name: isa.to_string(), kernels, mr, blocking }
    }

    /// The generic SIMD bodies on the portable 16-lane vocabulary with the AVX-512
    /// tile (10 × 32) and tiny blocks (many row and `k` blocks even on small shapes).
    pub fn emulated_avx512() -> Tier {
        let mut kernels = Kernels::scalar();
        kernels.sgemm = emu_sgemm_10x32;
        kernels.sgemm_name = "emu16_sgemm_10x32";
        // SAFETY (the four closures): `Emu` is plain Rust, which every CPU runs.
        kernels.layernorm = |x, w, b, eps| unsafe { ops::layernorm::<Emu<16>>(x, w, b, eps) };
        kernels.softmax = |x| unsafe { ops::softmax::<Emu<16>>(x) };
        kernels.gelu = |x| unsafe { ops::gelu::<Emu<16>>(x) };
        kernels.embed_add_layernorm =
            |o, wd, ps, ty, w, b, eps| unsafe { ops::embed_add_layernorm::<Emu<16>>(o, wd, ps, ty, w, b, eps) };
        Tier { name: "emu16".into(), kernels, mr: EMU_SET.mr, blocking: Some(EMU_BLOCKING) }
    }

    /// Rows around the register tile: 1, MR−1, MR, MR+1, 2·MR+3.
    pub fn edge_ms(&self) -> Vec<usize> {
        let mr = self.mr;
        vec![1, mr - 1, mr, mr + 1, 2 * mr + 3]
    }

    /// `C = A·B (+ epilogue)` with this tier over all panels.
    pub fn gemm(&self, p: &mut GemmParams) {
        self.kernels.gemm(p);
    }

    /// `(rows per row block, k per k block)` of this tier's blocking for inner dimension
    /// `k`, or `None` for the scalar twin.
    pub fn blocks(&self, k: usize) -> Option<(usize, usize)> {
        self.blocking.map(|b| {
            let (kc, _) = b.k_blocks(k);
            (b.mc(kc, self.mr), kc)
        })
    }

    /// Same over a range of panels.
    pub fn gemm_panels(&self, p: &GemmParams, panels: Range<usize>) {
        // SAFETY: one call at a time.
        unsafe { self.kernels.gemm_panels(p, panels) };
    }
}

// SAFETY (all `unsafe` below): Emu is plain Rust; the driver's contract is forwarded.
unsafe fn emu_tile<const R: usize>(t: &TileJob) {
    unsafe { microkernel::tile::<Emu<16>, microkernel::Fma, R, 2>(t, Some(emu_steps::<R>)) }
}

unsafe fn emu_steps<const R: usize>(acc: &mut [[<Emu<16> as crate::simd::Simd>::V; 2]; R], s: &microkernel::Steps<R>) {
    unsafe { microkernel::steps::<Emu<16>, microkernel::Fma, R, 2>(acc, s) }
}

static EMU_TILES: [TileFn; 10] = [
    emu_tile::<1>,
    emu_tile::<2>,
    emu_tile::<3>,
    emu_tile::<4>,
    emu_tile::<5>,
    emu_tile::<6>,
    emu_tile::<7>,
    emu_tile::<8>,
    emu_tile::<9>,
    emu_tile::<10>,
];

static EMU_SET: TileSet =
    TileSet { operands: gemm::Operands::F32, mr: 10, cols: 32, tiles: &EMU_TILES, zero_point: false };

/// Tiny blocks on purpose: `KC` = 48, `MC` = 40 and two-panel groups give several row
/// and `k` blocks (and balanced splits of both) on the small shapes of the tests.
pub const EMU_BLOCKING: Blocking = Blocking {
    kc: 48,
    a_block_bytes: 40 * 48 * 4,
    c_group_bytes: 2 * 40 * gemm::NR_BYTES_PER_ROW,
    c_into_l1: false,
    b_into_l1: true,
};

unsafe fn emu_sgemm_10x32(p: &GemmParams, panels: Range<usize>) {
    let p = p.reblocked(EMU_BLOCKING);
    unsafe { gemm::driver::drive(&p, panels, &EMU_SET) }
}

/// xorshift64*: deterministic data, no dependency.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in `[lo, hi)`.
    pub fn uniform(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * ((self.next_u64() >> 40) as f32 / (1u64 << 24) as f32)
    }
    /// Uniform integer in `lo..=hi`.
    pub fn int(&mut self, lo: i64, hi: i64) -> i64 {
        lo + (self.next_u64() % (hi - lo + 1) as u64) as i64
    }
    pub fn usize(&mut self, r: Range<usize>) -> usize {
        r.start + (self.next_u64() % (r.end - r.start) as u64) as usize
    }
    pub fn floats(&mut self, n: usize, lo: f32, hi: f32) -> Vec<f32> {
        (0..n).map(|_| self.uniform(lo, hi)).collect()
    }
    /// Small integers as floats: products and sums of up to 2^24 / 9 terms are exact.
    pub fn ints(&mut self, n: usize, lo: i64, hi: i64) -> Vec<f32> {
        (0..n).map(|_| self.int(lo, hi) as f32).collect()
    }
}

/// The largest violation of `|got - want| <= bound(i)` over a slice, as a message
/// naming the index (through `at`), both values, the error and the bound.
pub fn check_close(
    what: &str,
    got: &[f32],
    want: &[f32],
    bound: impl Fn(usize) -> f32,
    at: impl Fn(usize) -> String,
) -> Result<(), String> {
    assert_eq!(got.len(), want.len());
    let mut worst: Option<(usize, f32)> = None;
    let mut bad = 0usize;
    for i in 0..got.len() {
        let (g, w, b) = (got[i], want[i], bound(i));
        let err = (g - w).abs();
        let ratio = if err.is_nan() { f32::INFINITY } else { err / b.max(f32::MIN_POSITIVE) };
        if err.is_nan() || err > b {
            bad += 1;
            if worst.is_none_or(|(_, r)| ratio > r) {
                worst = Some((i, ratio));
            }
        }
    }
    match worst {
        None => Ok(()),
        Some((i, r)) => Err(format!(
            "{what}: {bad} of {} values out of tolerance; worst at {}: got {:e}, want {:e}, error {:e} = {r:.2}× the bound {:e}",
            got.len(),
            at(i),
            got[i],
            want[i],
            (got[i] - want[i]).abs(),
            bound(i)
        )),
    }
}

/// Bit-for-bit equality with a message naming the first difference.
pub fn check_bits(what: &str, got: &[f32], want: &[f32], at: impl Fn(usize) -> String) -> Result<(), String> {
    assert_eq!(got.len(), want.len());
    match (0..got.len()).find(|&i| got[i].to_bits() != want[i].to_bits()) {
        None => Ok(()),
        Some(i) => Err(format!(
            "{what}: not bit-identical at {}: {:e} vs {:e} ({} differing values)",
            at(i),
            got[i],
            want[i],
            (0..got.len()).filter(|&j| got[j].to_bits() != want[j].to_bits()).count()
        )),
    }
}
