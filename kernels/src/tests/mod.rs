//! The tier test suite: one macro, instantiated for every tier, compares each tier with
//! the scalar twin (and the scalar twin with an f64 reference) on edge shapes, random
//! shapes, every alignment offset and the BERT shapes, and checks the invariants the
//! engine relies on (row invariance, NaN in `C` overwritten, softmax sums to 1, …).
//!
//! A tier the host cannot run is compiled but its tests are *ignored* with the reason
//! "skipped: <tier> not supported" (the build script detects the host), so they never
//! count as passing; forced with `--include-ignored`, they fail with that message.
//! `emu_avx512_geometry` runs the generic SIMD bodies with the AVX-512 geometry
//! (16 lanes, 10 × 32 tiles) and deliberately tiny cache blocks on any host.

mod bf16;
mod gemm;
mod int8;
mod ops;
mod support;

/// Instantiates every tier test for one tier. `$cfg` is the build-script cfg that says
/// the host can run it (`all()` for always).
macro_rules! tier_tests {
    ($name:ident, $tier:expr, $cfg:meta, $skip:literal) => {
        mod $name {
            use super::support::Tier;
            fn tier() -> Tier {
                $tier
            }
            tier_tests!(@tests $cfg, $skip,
                gemm::m0_is_a_noop,
                gemm::edge_shapes_exact,
                gemm::large_edge_shapes_exact,
                gemm::epilogues_exact,
                gemm::bias_gelu_within_tolerance,
                gemm::alignment_offsets,
                gemm::random_shapes_within_tolerance,
                gemm::bert_shapes_within_tolerance,
                gemm::many_row_and_k_blocks,
                gemm::blocking_never_changes_bits,
                gemm::nan_in_c_is_overwritten,
                gemm::row_invariance_bit_exact,
                gemm::panel_and_row_split_bit_exact,
                gemm::fused_layernorm_matches_unfused,
                ops::softmax_matches_scalar,
                ops::softmax_invariants,
                ops::layernorm_matches_scalar,
                ops::gelu_matches_scalar,
                ops::gelu_invariants,
                ops::embed_add_layernorm_matches_scalar,
                ops::pack_rows_matches_definition,
                ops::peak_probe_runs,
            );
        }
    };
    (@tests $cfg:meta, $skip:literal, $($module:ident :: $test:ident),* $(,)?) => {
        $(
            #[test]
            #[cfg_attr(not($cfg), ignore = $skip)]
            fn $test() {
                super::$module::$test(&tier());
            }
        )*
    };
}

tier_tests!(scalar, Tier::native(crate::Isa::Scalar), all(), "never skipped");
tier_tests!(portable, Tier::native(crate::Isa::Portable), all(), "never skipped");
tier_tests!(avx2, Tier::native(crate::Isa::Avx2), toprt_host_avx2, "skipped: avx2 not supported");
tier_tests!(avx512, Tier::native(crate::Isa::Avx512), toprt_host_avx512, "skipped: avx512 not supported");
tier_tests!(emu_avx512_geometry, Tier::emulated_avx512(), all(), "never skipped");

/// `TOPRT_ISA` (as CI sets it) picks exactly that tier, or is refused when the CPU
/// lacks it; never a silent fallback.
#[test]
fn from_env_honours_toprt_isa() {
    use crate::{Error, Isa, Kernels};
    match std::env::var("TOPRT_ISA").ok().filter(|v| !v.trim().is_empty()) {
        None => assert_eq!(Kernels::from_env().unwrap().isa(), Isa::best()),
        Some(v) => {
            let want: Isa = v.parse().expect("TOPRT_ISA names a tier");
            match Kernels::from_env() {
                Ok(k) => assert_eq!(k.isa(), want),
                Err(e) => {
                    assert_eq!(e, Error::Unsupported(want));
                    assert!(!want.supported());
                    println!("TOPRT_ISA={want}: refused as expected on this CPU ({e})");
                }
            }
        }
    }
}

/// Each tier's table holds its own kernels, the bf16 GEMM only where the CPU (as
/// given: the detected one, or the one without AMX) has it, and the best int8 GEMM the
/// CPU runs on that tier.
#[test]
fn dispatch_tables() {
    use crate::{Cpu, Error, Isa, Kernels};
    let s = Kernels::scalar();
    assert_eq!(s.sgemm_name(), "scalar_sgemm_packed");
    assert!(!s.has_gemm_bf16() && s.gemm_bf16_name().is_none());
    let detected = Cpu::detected();
    for cpu in [detected.clone(), detected.without_amx()] {
        for isa in Isa::ALL {
            match Kernels::for_cpu(isa, &cpu) {
                Ok(k) => {
                    assert_eq!(k.isa(), isa);
                    assert!(k.sgemm_name().starts_with(&isa.to_string()), "{} in the {isa} table", k.sgemm_name());
                    let bf16 = match isa {
                        Isa::Avx512 if cpu.has_amx_bf16() => Some("amx_bf16_gemm_32x32"),
                        Isa::Avx512 if cpu.has_avx512_bf16() => Some("avx512bf16_gemm_10x32"),
                        _ => None,
                    };
                    assert_eq!(k.gemm_bf16_name(), bf16, "bf16 GEMM of the {isa} table");
                    assert_eq!(k.has_gemm_bf16(), bf16.is_some());
                    let f = cpu.features();
                    let avx2_i8 = if f.avx_vnni { "avxvnni_gemm_i8_6x16" } else { "avx2_gemm_i8_6x16" };
                    let int8 = match isa {
                        Isa::Scalar | Isa::Portable => "scalar_gemm_i8",
                        Isa::Avx2 => avx2_i8,
                        Isa::Avx512 if cpu.has_amx_int8() && f.avx512_vnni => "amx_int8_gemm_32x32",
                        Isa::Avx512 if f.avx512_vnni => "avx512vnni_gemm_i8_8x32",
                        Isa::Avx512 => avx2_i8,
                    };
                    assert_eq!(k.gemm_i8_name(), int8, "int8 GEMM of the {isa} table");
                }
                Err(e) => {
                    assert_eq!(e, Error::Unsupported(isa));
                    assert!(!cpu.supports(isa));
                    println!("skipped: {isa} not supported ({e})");
                }
            }
        }
    }
}
