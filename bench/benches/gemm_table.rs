//! One table of single-thread GEMM throughput: per shape and tier, GFLOP/s, % of the
//! measured FMA peak of that tier, and the ratio to the `gemm` crate.
//!
//! Timing on a shared machine is noisy (a busy sibling core takes L3, memory bandwidth
//! and turbo headroom), so every round times the peak probe and every kernel back to
//! back, and the table keeps the best round of each: ratios come from the same run.
//!
//! Where the CPU multiplies bf16 natively, each bf16 GEMM (AVX512_BF16 `vdpbf16ps`, AMX
//! tiles) gets a row too, as % of a register-only probe of its own instruction.
//!
//! The int8 GEMM of the best tier gets a row per shape too (GOP/s: one multiply-add
//! counts 2), as % of a register-only probe of `vpdpbusd` where the CPU has VNNI.
//!
//! `--cold`: every call reads a different copy of the weight, the copies together
//! 256 MiB ([`common::ColdCopies`]), so the weight streams from memory on every call as
//! in a model's forward pass (340 MB of BERT-base weights in f32, 85 MB in int8, each
//! linear's read once per pass). The `gemm` crate columns are left out there.
//!
//! `--epilogues`: the best tier's f32 GEMM on BERT-base's four linears at 128 rows, cold,
//! each alone and with the epilogue it runs with in the model (bias; bias and GELU;
//! bias, residual and LayerNorm), side by side: what each epilogue costs its linear.
//!
//! `cargo bench -p toprt-bench --bench gemm_table [-- ROUNDS] [--cold | --epilogues]`
//! (default 15 rounds).

mod common;

use common::{data, tiers, ColdCopies, ModelEpilogue, Problem, SHAPES};
use std::time::Instant;
use toprt_kernels::{peak_probe, peak_probe_amx, peak_probe_bf16, peak_probe_int8, Cpu, Isa, Kernels};

/// Seconds per call of `f`, timed over enough calls to last ~20 ms.
fn time(flops: u64, mut f: impl FnMut()) -> f64 {
    let calls = ((2e-2 * 1e11 / flops as f64).ceil() as usize).max(1);
    let t = Instant::now();
    for _ in 0..calls {
        f();
    }
    t.elapsed().as_secs_f64() / calls as f64
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rounds: usize = args.iter().find_map(|a| a.parse().ok()).unwrap_or(15);
    let cold = args.iter().any(|a| a == "--cold");
    if args.iter().any(|a| a == "--epilogues") {
        epilogues(rounds);
        return;
    }
    // Cold mode: the weight copies each call reads in turn (refilled per shape and kind).
    let (mut cold_f32, mut cold_u32) = (ColdCopies::<f32>::new(), ColdCopies::<u32>::new());
    let simd: Vec<_> = tiers().into_iter().filter(|k| k.isa() != Isa::Scalar).collect();
    let mut peak = vec![0.0f64; simd.len()];
    // The bf16 kernels this CPU runs, each with its own peak probe.
    type Probe = fn() -> Option<f64>;
    let mut bf16: Vec<(Kernels, &str, Probe, f64)> = Vec::new();
    let cpu = Cpu::detected();
    if let Ok(k) = Kernels::for_cpu(Isa::Avx512, &cpu.without_amx()) {
        if let Some(name) = k.gemm_bf16_name() {
            bf16.push((k, name, peak_probe_bf16, 0.0));
        }
    }
    if cpu.has_amx_bf16() {
        let k = Kernels::for_isa(Isa::Avx512).expect("AMX implies the AVX-512 tier");
        bf16.push((k, k.gemm_bf16_name().unwrap_or("?"), peak_probe_amx, 0.0));
    }
    // The int8 GEMM of the best tier, against the probe of its instruction (VNNI).
    let int8 = Kernels::for_isa(Isa::best()).expect("the best tier");
    let mut peak_i8 = 0.0f64;
    println!("single thread, best of {rounds} interleaved rounds; % of the tier's FMA peak probe");
    if cold {
        println!(
            "cold weights: each call reads the next of {} MiB of copies of B (no gemm crate columns)",
            ColdCopies::<f32>::BYTES >> 20
        );
    }
    println!("{:>16} {:>22} {:>9} {:>7} {:>9} {:>8}", "M×K×N", "kernel", "GFLOP/s", "% peak", "gemm GF/s", "vs gemm");
    // Every round visits every shape, so a slow spell of the machine (seconds long here)
    // costs each shape a round or two instead of all of one shape's rounds.
    let mut problems: Vec<Problem> = SHAPES.iter().map(|&(m, k, n)| Problem::new(m, k, n)).collect();
    let mut best = vec![vec![f64::MAX; simd.len()]; SHAPES.len()];
    let mut best_gemm = vec![f64::MAX; SHAPES.len()];
    let mut best_bf16 = vec![vec![f64::MAX; bf16.len()]; SHAPES.len()];
    let mut best_i8 = vec![f64::MAX; SHAPES.len()];
    for _ in 0..rounds {
        for (si, p) in problems.iter_mut().enumerate() {
            let flops = p.flops();
            if cold {
                cold_f32.fill(&p.packed);
            }
            for (i, kern) in simd.iter().enumerate() {
                peak[i] = peak[i].max(peak_probe(kern.isa()));
                let t = if cold {
                    time(flops, || p.toprt_on(kern, cold_f32.next()))
                } else {
                    time(flops, || p.toprt(kern))
                };
                best[si][i] = best[si][i].min(t);
            }
            if !cold {
                best_gemm[si] = best_gemm[si].min(time(flops, || p.gemm_crate()));
            }
            if cold && !bf16.is_empty() {
                cold_u32.fill(&p.packed_bf16);
            }
            for (i, (kern, _, probe, peak)) in bf16.iter_mut().enumerate() {
                *peak = peak.max(probe().unwrap_or(0.0));
                let t = if cold {
                    time(flops, || p.toprt_bf16_on(kern, cold_u32.next()))
                } else {
                    time(flops, || p.toprt_bf16(kern))
                };
                best_bf16[si][i] = best_bf16[si][i].min(t);
            }
            peak_i8 = peak_i8.max(peak_probe_int8().unwrap_or(0.0));
            if cold {
                cold_u32.fill(&p.packed_i8);
            }
            let t = if cold {
                time(flops, || p.toprt_int8_on(&int8, cold_u32.next()))
            } else {
                time(flops, || p.toprt_int8(&int8))
            };
            best_i8[si] = best_i8[si].min(t);
        }
    }
    // The gemm crate's GFLOP/s and its time over the kernel's, or dashes (cold mode).
    let vs_gemm = |best_gemm: f64, best: f64, flops: u64| -> String {
        if best_gemm == f64::MAX {
            format!("{:>9} {:>8}", "-", "-")
        } else {
            format!("{:>9.1} {:>7.2}×", flops as f64 / best_gemm / 1e9, best_gemm / best)
        }
    };
    for (si, p) in problems.iter().enumerate() {
        let (m, k, n, flops) = (p.m, p.k, p.n, p.flops());
        for (i, kern) in simd.iter().enumerate() {
            let gf = flops as f64 / best[si][i] / 1e9;
            println!(
                "{:>16} {:>22} {gf:>9.1} {:>6.1}% {}",
                format!("{m}×{k}×{n}"),
                kern.sgemm_name(),
                100.0 * gf / peak[i],
                vs_gemm(best_gemm[si], best[si][i], flops)
            );
        }
        for (i, (_, name, _, peak)) in bf16.iter().enumerate() {
            let gf = flops as f64 / best_bf16[si][i] / 1e9;
            println!(
                "{:>16} {:>22} {gf:>9.1} {:>6.1}% {}",
                format!("{m}×{k}×{n}"),
                name,
                100.0 * gf / peak,
                vs_gemm(best_gemm[si], best_bf16[si][i], flops)
            );
        }
    }
    for (si, p) in problems.iter().enumerate() {
        let (m, k, n, flops) = (p.m, p.k, p.n, p.flops());
        let gf = flops as f64 / best_i8[si] / 1e9;
        let pct = if peak_i8 > 0.0 { format!("{:>6.1}%", 100.0 * gf / peak_i8) } else { "      -".into() };
        println!(
            "{:>16} {:>22} {gf:>9.1} {pct} {}",
            format!("{m}×{k}×{n}"),
            int8.gemm_i8_name(),
            vs_gemm(best_gemm[si], best_i8[si], flops)
        );
    }
    for (i, kern) in simd.iter().enumerate() {
        println!("FMA peak probe {}: {:.1} GFLOP/s", kern.isa(), peak[i]);
    }
    if peak_i8 > 0.0 {
        println!("int8 peak probe of {}'s instruction: {peak_i8:.1} GOP/s", int8.gemm_i8_name());
    }
    for (_, name, _, peak) in &bf16 {
        println!("bf16 peak probe of {name}'s instruction: {peak:.1} GFLOP/s");
    }
}

/// `--epilogues`: each BERT-base linear at 128 rows with cold weights, plain and with its
/// model epilogue, timed back to back in every round; the best round of each.
fn epilogues(rounds: usize) {
    use ModelEpilogue::*;
    let kern = Kernels::for_isa(Isa::best()).expect("the best tier");
    let cases = [
        ((128, 768, 2304), Bias, "QKV: + bias"),
        ((128, 768, 768), ResidualLayerNorm, "attention out: LN(+ bias + residual)"),
        ((128, 768, 3072), BiasGelu, "FFN in: gelu(+ bias)"),
        ((128, 3072, 768), ResidualLayerNorm, "FFN out: LN(+ bias + residual)"),
        ((512, 768, 3072), BiasGelu, "FFN in, 512 rows: gelu(+ bias)"),
    ];
    let (ln_w, ln_b) = (data(3072, 5), data(3072, 6));
    let mut problems: Vec<Problem> = cases.iter().map(|&((m, k, n), _, _)| Problem::new(m, k, n)).collect();
    let mut cold = ColdCopies::<f32>::new();
    let (mut plain, mut with) = (vec![f64::MAX; cases.len()], vec![f64::MAX; cases.len()]);
    let mut peak = 0.0f64;
    println!("{}, cold weights, best of {rounds} interleaved rounds; % of its FMA peak probe", kern.sgemm_name());
    for _ in 0..rounds {
        for (i, p) in problems.iter_mut().enumerate() {
            let (flops, epi) = (p.flops(), cases[i].1);
            cold.fill(&p.packed);
            peak = peak.max(peak_probe(kern.isa()));
            plain[i] = plain[i].min(time(flops, || {
                let w = cold.next();
                p.toprt_epilogue_on(&kern, w, None, (&ln_w, &ln_b))
            }));
            with[i] = with[i].min(time(flops, || {
                let w = cold.next();
                p.toprt_epilogue_on(&kern, w, epi, (&ln_w, &ln_b))
            }));
        }
    }
    println!("{:>16} {:>38} {:>8} {:>8} {:>8} {:>8}", "M×K×N", "epilogue", "plain %", "with %", "points", "µs");
    for (i, p) in problems.iter().enumerate() {
        let flops = p.flops() as f64;
        let pct = |t: f64| 100.0 * flops / t / 1e9 / peak;
        println!(
            "{:>16} {:>38} {:>7.1}% {:>7.1}% {:>8.1} {:>8.1}",
            format!("{}×{}×{}", p.m, p.k, p.n),
            cases[i].2,
            pct(plain[i]),
            pct(with[i]),
            pct(plain[i]) - pct(with[i]),
            (with[i] - plain[i]) * 1e6
        );
    }
    println!("FMA peak probe {}: {peak:.1} GFLOP/s", kern.isa());
}
