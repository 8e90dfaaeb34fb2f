//! Tells the test suite which SIMD tiers the build host can run, so the tests of a tier
//! the host lacks are reported as *ignored* ("skipped: avx512 not supported") instead of
//! passing without having run. The answers come from the crate's own CPU probe
//! (`src/cpu.rs`, compiled into this script as it is), so the build and the kernels
//! cannot disagree about a CPU. The kernels themselves never use these flags: they
//! detect the CPU at run time.

#[allow(dead_code)]
#[path = "src/cpu.rs"]
mod cpu;

fn main() {
    println!("cargo::rustc-check-cfg=cfg(toprt_host_avx2)");
    println!("cargo::rustc-check-cfg=cfg(toprt_host_avx512)");
    println!("cargo::rustc-check-cfg=cfg(toprt_host_avx512bf16)");
    println!("cargo::rustc-check-cfg=cfg(toprt_host_amx)");
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-changed=src/cpu.rs");
    // Only a native build runs on the machine this script runs on.
    if std::env::var("HOST").ok() != std::env::var("TARGET").ok() {
        return;
    }
    let cpu = cpu::Cpu::detected();
    if cpu.supports(cpu::Isa::Avx2) {
        println!("cargo::rustc-cfg=toprt_host_avx2");
    }
    if cpu.supports(cpu::Isa::Avx512) {
        println!("cargo::rustc-cfg=toprt_host_avx512");
    }
    if cpu.has_avx512_bf16() {
        println!("cargo::rustc-cfg=toprt_host_avx512bf16");
        // The CPU has AMX-BF16 and AMX-TILE; whether the OS grants the tile state is
        // what the AMX test checks at run time.
        let f = cpu.features();
        if f.amx_tile && f.amx_bf16 {
            println!("cargo::rustc-cfg=toprt_host_amx");
        }
    }
}
