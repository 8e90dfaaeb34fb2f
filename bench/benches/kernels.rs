//! Criterion suite for toprt-kernels: every GEMM tier this CPU has vs the scalar twin
//! vs the `gemm` crate, on the BERT shapes and small M; fused epilogues; element-wise
//! kernels per tier. GEMM throughput is in FLOPs (criterion prints them as
//! "elem/s": read Gelem/s as GFLOP/s). The FMA peak per tier is printed first, so a
//! rate can be read as % of peak. For one compact table with ratios, run the
//! `gemm_table` bench instead.
//!
//! `cargo bench -p toprt-bench --bench kernels [-- <filter>]`

mod common;

use common::{data, tiers, Problem, SHAPES};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, SamplingMode, Throughput};
use std::hint::black_box;
use std::time::Duration;
use toprt_kernels::{peak_probe, Isa};

fn peaks() {
    for isa in Isa::ALL {
        if isa.supported() {
            println!("FMA peak probe {isa:>6}: {:6.1} GFLOP/s (single thread)", peak_probe(isa));
        } else {
            println!("FMA peak probe {isa:>6}: not supported on this CPU");
        }
    }
}

fn sgemm(c: &mut Criterion) {
    peaks();
    for &(m, k, n) in &SHAPES {
        let mut g = c.benchmark_group(format!("sgemm/{m}x{k}x{n}"));
        let mut p = Problem::new(m, k, n);
        g.throughput(Throughput::Elements(p.flops()));
        // The scalar twin takes up to a second per call on the big shapes.
        g.sampling_mode(SamplingMode::Flat);
        for kern in tiers() {
            g.bench_function(BenchmarkId::new(kern.sgemm_name(), "flops"), |b| b.iter(|| p.toprt(&kern)));
        }
        g.bench_function(BenchmarkId::new("gemm_crate", "flops"), |b| b.iter(|| p.gemm_crate()));
        g.finish();
    }
}

fn epilogues(c: &mut Criterion) {
    let (ln_w, ln_b) = (data(768, 5), data(768, 6));
    let mut g = c.benchmark_group("sgemm_epilogue");
    g.sampling_mode(SamplingMode::Flat);
    for kern in tiers().into_iter().filter(|k| k.isa() != Isa::Scalar) {
        let mut p = Problem::new(128, 768, 3072);
        g.throughput(Throughput::Elements(p.flops()));
        g.bench_function(BenchmarkId::new(format!("{}+bias_gelu", kern.sgemm_name()), "128x768x3072"), |b| {
            b.iter(|| p.toprt_bias_gelu(&kern))
        });
        let mut p = Problem::new(128, 3072, 768);
        g.throughput(Throughput::Elements(p.flops()));
        g.bench_function(
            BenchmarkId::new(format!("{}+bias_residual_layernorm", kern.sgemm_name()), "128x3072x768"),
            |b| b.iter(|| p.toprt_residual_layernorm(&kern, &ln_w, &ln_b)),
        );
    }
    g.finish();
}

fn elementwise(c: &mut Criterion) {
    let (w, bias) = (data(3072, 7), data(3072, 8));
    for (name, len) in
        [("softmax", 128), ("softmax", 512), ("layernorm", 768), ("gelu", 3072), ("embed_add_layernorm", 768)]
    {
        let mut g = c.benchmark_group(format!("{name}/{len}"));
        g.throughput(Throughput::Elements(len as u64));
        let x0 = data(len, 9);
        let (pos, typ) = (data(len, 10), data(len, 11));
        for kern in tiers() {
            let mut x = x0.clone();
            g.bench_function(BenchmarkId::from_parameter(format!("{}_{name}_f32", kern.isa())), |b| match name {
                "softmax" => b.iter(|| kern.softmax(black_box(&mut x))),
                "layernorm" => b.iter(|| kern.layernorm(black_box(&mut x), &w, &bias, 1e-12)),
                "gelu" => b.iter(|| {
                    x.copy_from_slice(&x0);
                    kern.gelu(black_box(&mut x))
                }),
                _ => b.iter(|| kern.embed_add_layernorm(black_box(&mut x), &x0, &pos, &typ, &w, &bias, 1e-12)),
            });
        }
        g.finish();
    }
}

fn config() -> Criterion {
    Criterion::default()
        .measurement_time(Duration::from_secs(2))
        .warm_up_time(Duration::from_millis(500))
        .sample_size(20)
}

criterion_group! {
    name = benches;
    config = config();
    targets = sgemm, epilogues, elementwise
}
criterion_main!(benches);
