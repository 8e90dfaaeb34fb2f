//! Peak probes: how many GFLOP/s one core's FMA (or bf16 dot-product, or AMX tile)
//! units deliver on register-only work, the denominator of the "% of peak" reports of
//! the benchmarks. Each tier file owns its instruction loop (`simd::*_probe`,
//! `gemm::amx`); this file times them.

use crate::cpu::{Cpu, Isa};

/// The FMA peak of a tier in GFLOP/s on the calling thread: 12
/// independent register-only FMA chains for about 50 ms (best of ten 5 ms runs, so an
/// interrupt or a busy sibling core does not drag it down). Each FMA lane counts 2
/// FLOPs. The scalar tier runs the same chains as plain `a*x + y` (no FMA, so 2 FLOPs
/// per multiply-add pair; the compiler may vectorise it with the baseline SSE2); the
/// portable tier's GEMM is the `gemm` crate's, which on an x86-64 CPU with AVX2 and FMA
/// runs 8-lane FMAs, so there its probe is the AVX2 one; elsewhere it runs the chains on
/// its 4-lane vectors, unfused (a floor: see `portable_probe`).
/// Returns 0 for a tier this CPU lacks.
pub fn peak_probe(isa: Isa) -> f64 {
    let cpu = Cpu::detected();
    if !cpu.supports(isa) {
        return 0.0;
    }
    let isa = if isa == Isa::Portable && cpu.supports(Isa::Avx2) { Isa::Avx2 } else { isa };
    let lanes = match isa {
        Isa::Scalar => 1,
        Isa::Portable => 4,
        Isa::Avx2 => 8,
        Isa::Avx512 => 16,
    };
    let run = |iters: usize| -> f64 {
        let (x, y) = (std::hint::black_box(0.999_999_9f32), std::hint::black_box(1e-7f32));
        let t0 = std::time::Instant::now();
        let r = match isa {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: support checked above.
            Isa::Avx2 => unsafe { crate::simd::avx2::avx2_fma_probe(iters, x, y) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: support checked above.
            Isa::Avx512 => unsafe { crate::simd::avx512::avx512_fma_probe(iters, x, y) },
            Isa::Portable => portable_probe(iters, x, y),
            _ => scalar_probe(iters, x, y),
        };
        std::hint::black_box(r);
        let flops = (iters * crate::simd::PROBE_CHAINS * lanes * 2) as f64;
        flops / t0.elapsed().as_secs_f64().max(1e-9) / 1e9
    };
    best_of_runs(run)
}

/// The bf16 dot-product peak (`vdpbf16ps`, each lane 2 multiply-adds = 4 FLOPs) in
/// GFLOP/s on the calling thread, measured like [`peak_probe`]; `None` where the CPU
/// has no AVX512_BF16 ([`Cpu::has_avx512_bf16`]).
pub fn peak_probe_bf16() -> Option<f64> {
    #[cfg(target_arch = "x86_64")]
    if Cpu::detected().has_avx512_bf16() {
        let run = |iters: usize| -> f64 {
            let (x, y) = (std::hint::black_box(1e-6f32), std::hint::black_box(1e-6f32));
            let t0 = std::time::Instant::now();
            // SAFETY: support checked above.
            std::hint::black_box(unsafe { crate::simd::avx512::avx512bf16_dot_probe(iters, x, y) });
            let flops = (iters * crate::simd::PROBE_CHAINS * 16 * 4) as f64;
            flops / t0.elapsed().as_secs_f64().max(1e-9) / 1e9
        };
        return Some(best_of_runs(run));
    }
    None
}

/// The int8 dot-product peak of this CPU's best `vpdpbusd` (AVX512-VNNI: 16 lanes × 4
/// multiply-adds = 128 operations per instruction; AVX-VNNI: 64) in GOP/s on the
/// calling thread, measured like [`peak_probe`]; `None` without VNNI (the AVX2 int8
/// kernel then takes four instructions per step).
pub fn peak_probe_int8() -> Option<f64> {
    #[cfg(target_arch = "x86_64")]
    {
        let cpu = Cpu::detected();
        let f = cpu.features();
        let wide = cpu.supports(crate::Isa::Avx512) && f.avx512_vnni;
        if wide || (cpu.supports(crate::Isa::Avx2) && f.avx_vnni) {
            let run = |iters: usize| -> f64 {
                let t0 = std::time::Instant::now();
                // SAFETY: support checked above.
                let lanes = unsafe {
                    if wide {
                        std::hint::black_box(crate::simd::avx512::avx512vnni_dot_probe(iters));
                        16
                    } else {
                        std::hint::black_box(crate::simd::avx2::avxvnni_dot_probe(iters));
                        8
                    }
                };
                let ops = (iters * crate::simd::PROBE_CHAINS * lanes * 8) as f64;
                ops / t0.elapsed().as_secs_f64().max(1e-9) / 1e9
            };
            return Some(best_of_runs(run));
        }
    }
    None
}

/// Calibrates `run(iters)` (GFLOP/s of `iters` rounds) to ~5 ms and returns the best
/// of ten runs.
/// Memory read bandwidth of the calling thread in GB/s: the best of 5 passes summing a
/// 256 MiB buffer (larger than any last-level cache this runs on), written once first so
/// every page is mapped. The denominator of "GB/s streamed" reports, for GEMMs with few
/// rows, which are bound by reading their weights rather than by arithmetic. About 0.3 s.
pub fn bandwidth_probe() -> f64 {
    const BYTES: usize = 256 << 20;
    let buf: Vec<u64> = (0..BYTES / 8).map(|i| i as u64).collect();
    let mut best = 0.0f64;
    for _ in 0..5 {
        let t0 = std::time::Instant::now();
        // Eight independent sums, so the loads, not an add chain, set the pace.
        let mut acc = [0u64; 8];
        for c in std::hint::black_box(&buf).chunks_exact(8) {
            for (a, &x) in acc.iter_mut().zip(c) {
                *a = a.wrapping_add(x);
            }
        }
        std::hint::black_box(acc);
        best = best.max(BYTES as f64 / t0.elapsed().as_secs_f64().max(1e-9) / 1e9);
    }
    best
}

pub(crate) fn best_of_runs(run: impl Fn(usize) -> f64) -> f64 {
    let mut iters = 1 << 14;
    loop {
        let t0 = std::time::Instant::now();
        run(iters);
        if t0.elapsed().as_secs_f64() > 2e-3 || iters > 1 << 30 {
            break;
        }
        iters *= 2;
    }
    iters *= 2;
    (0..10).map(|_| run(iters)).fold(0.0, f64::max)
}

fn scalar_probe(iters: usize, x: f32, y: f32) -> f32 {
    let mut acc = [0.0f32; crate::simd::PROBE_CHAINS];
    for (i, a) in acc.iter_mut().enumerate() {
        *a = i as f32;
    }
    for _ in 0..iters {
        for a in acc.iter_mut() {
            *a = *a * x + y;
        }
    }
    acc.iter().sum()
}

/// The portable tier's probe off x86-64 AVX2: [`crate::simd::fma_chains`] on its 4-lane
/// vectors. Their multiply-add is unfused (a multiply, then an add: twice an FMA's
/// latency), so the chains are latency-bound and the number is a floor: the tier's GEMM
/// (the `gemm` crate's fused NEON kernels) runs above it.
fn portable_probe(iters: usize, x: f32, y: f32) -> f32 {
    // SAFETY: the portable vectors run on every CPU.
    unsafe { crate::simd::fma_chains::<crate::simd::emu::Emu<4>>(iters, x, y) }
}

/// The AMX tile peak (`tdpbf16ps`, each instruction 16 × 16 × 32 multiply-adds = 16384
/// FLOPs) in GFLOP/s on the calling thread, measured like [`peak_probe`] on four
/// independent accumulators; `None` where this process cannot use the AMX bf16 tiles
/// ([`Cpu::has_amx_bf16`]).
pub fn peak_probe_amx() -> Option<f64> {
    #[cfg(target_arch = "x86_64")]
    if Cpu::detected().has_amx_bf16() {
        let run = |iters: usize| -> f64 {
            let t0 = std::time::Instant::now();
            // SAFETY: the tiles are granted (checked above).
            unsafe { crate::gemm::amx::amx_bf16_tile_probe(iters) };
            (iters * 4 * 16 * 16 * 32 * 2) as f64 / t0.elapsed().as_secs_f64().max(1e-9) / 1e9
        };
        return Some(best_of_runs(run));
    }
    None
}
