//! Tells the test suite which SIMD tiers the build host can run, so the tests of a tier
//! the host lacks are reported as *ignored* ("skipped: avx512 not supported") instead of
//! passing without having run. The kernels themselves never use these flags: they
//! detect the CPU at run time.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(toprt_host_avx2)");
    println!("cargo::rustc-check-cfg=cfg(toprt_host_avx512)");
    println!("cargo::rustc-check-cfg=cfg(toprt_host_avx512bf16)");
    println!("cargo::rustc-check-cfg=cfg(toprt_host_amx)");
    println!("cargo::rerun-if-changed=build.rs");
    let native = std::env::var("HOST").ok() == std::env::var("TARGET").ok();
    #[cfg(target_arch = "x86_64")]
    if native {
        use std::arch::is_x86_feature_detected as has;
        if has!("avx2") && has!("fma") {
            println!("cargo::rustc-cfg=toprt_host_avx2");
        }
        if has!("avx512f") && has!("avx512bw") && has!("avx512vl") && has!("avx512dq") {
            println!("cargo::rustc-cfg=toprt_host_avx512");
            if has!("avx512bf16") {
                println!("cargo::rustc-cfg=toprt_host_avx512bf16");
                // AMX-BF16 and AMX-TILE (CPUID leaf 7, EDX bits 22 and 24); whether the
                // OS grants the tile state is only known at run time.
                let l7 = std::arch::x86_64::__cpuid_count(7, 0);
                if (l7.edx >> 22) & 1 == 1 && (l7.edx >> 24) & 1 == 1 {
                    println!("cargo::rustc-cfg=toprt_host_amx");
                }
            }
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = native;
}
