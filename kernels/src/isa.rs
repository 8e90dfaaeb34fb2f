//! Instruction-set tiers and the dispatch table, resolved once.
//!
//! [`Kernels`] starts all-scalar; the AVX2 and AVX-512 tiers overwrite only the slots
//! they implement better. `TOPRT_ISA=scalar|avx2|avx512` forces a tier so every tier can
//! be tested on one machine; asking for a tier the CPU lacks is an error, not a silent
//! fallback.

use crate::cpu::Cpu;
pub use crate::cpu::Isa;
use crate::error::Error;
use crate::gemm::{self, GemmFn, GemmParams, Operands};
use crate::ops;
use std::fmt;
use std::ops::Range;

impl std::str::FromStr for Isa {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        match s.trim().to_ascii_lowercase().as_str() {
            "scalar" => Ok(Isa::Scalar),
            "avx2" => Ok(Isa::Avx2),
            "avx512" | "avx-512" => Ok(Isa::Avx512),
            other => Err(Error::UnknownIsa(other.to_string())),
        }
    }
}

impl Isa {
    /// Whether this CPU can run the tier ([`Cpu::supports`]).
    pub fn supported(self) -> bool {
        Cpu::detected().supports(self)
    }

    /// The best tier this CPU supports.
    pub fn best() -> Isa {
        Cpu::detected().best()
    }

    /// `TOPRT_ISA` if set (and supported), else the best tier.
    ///
    /// # Errors
    /// An unknown name, or a tier this CPU lacks.
    pub fn from_env() -> Result<Isa, Error> {
        match std::env::var("TOPRT_ISA") {
            Ok(v) if !v.trim().is_empty() => {
                let isa: Isa = v.parse()?;
                if isa.supported() {
                    Ok(isa)
                } else {
                    Err(Error::Unsupported(isa))
                }
            }
            _ => Ok(Isa::best()),
        }
    }
}

/// Row LayerNorm in place: `(x, weight, bias, eps)`.
pub type LayerNormFn = crate::gemm::LayerNormFn;
/// `(out, word_row, pos_row, type_row, ln_weight, ln_bias, eps)`: `out = LN(word + pos + type)`.
pub type EmbedAddLayerNormFn = fn(&mut [f32], &[f32], &[f32], &[f32], &[f32], &[f32], f32);

/// The dispatch table: one function pointer per kernel family.
#[derive(Clone, Copy)]
pub struct Kernels {
    pub isa: Isa,
    /// Packed-weight GEMM over a range of column panels.
    pub sgemm: GemmFn,
    /// Name of the GEMM microkernel, e.g. `avx2_sgemm_6x16` (for reports).
    pub sgemm_name: &'static str,
    /// GEMM on bf16 operands ([`gemm::Operands::Bf16`]), where the CPU multiplies bf16
    /// natively on the AVX-512 tier: AMX tiles where the CPU and OS offer them
    /// (`amx_bf16_gemm_32x32`), else AVX512_BF16 (`avx512bf16_gemm_10x32`). `None`
    /// elsewhere: callers then widen bf16 weights to `f32`
    /// ([`crate::pack::widen_bf16_panels`]) and use `sgemm`.
    pub gemm_bf16: Option<GemmFn>,
    /// Name of the bf16 microkernel, e.g. `avx512bf16_gemm_10x32`.
    pub gemm_bf16_name: Option<&'static str>,
    /// Rounds a row of activations to bf16 pairs, the `A` operand of `gemm_bf16`
    /// ([`crate::pack::bf16_pairs_from_f32`]; AVX512_BF16: `vcvtne2ps2bf16`).
    pub to_bf16_pairs: fn(&[f32], &mut [u32]),
    /// LayerNorm of one row in place.
    pub layernorm: LayerNormFn,
    /// Softmax of one row in place.
    pub softmax: fn(&mut [f32]),
    /// Exact-erf GELU of a slice in place.
    pub gelu: fn(&mut [f32]),
    /// `out = LayerNorm(word + pos + type)` for one token.
    pub embed_add_layernorm: EmbedAddLayerNormFn,
}

impl fmt::Debug for Kernels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Kernels").field("isa", &self.isa).field("sgemm", &self.sgemm_name).finish_non_exhaustive()
    }
}

impl Kernels {
    /// The portable table.
    pub fn scalar() -> Kernels {
        Kernels {
            isa: Isa::Scalar,
            sgemm: gemm::scalar_sgemm_packed,
            sgemm_name: "scalar_sgemm_packed",
            gemm_bf16: None,
            gemm_bf16_name: None,
            to_bf16_pairs: crate::pack::bf16_pairs_from_f32,
            layernorm: ops::layernorm_scalar,
            softmax: ops::softmax_scalar,
            gelu: ops::gelu_slice_scalar,
            embed_add_layernorm: ops::embed_add_layernorm_scalar,
        }
    }

    /// The table for `isa`: scalar slots, overwritten by the AVX2 slots from the AVX2
    /// tier up, then by the AVX-512 slots for the AVX-512 tier.
    ///
    /// # Errors
    /// When the CPU lacks the tier.
    pub fn for_isa(isa: Isa) -> Result<Kernels, Error> {
        if !isa.supported() {
            return Err(Error::Unsupported(isa));
        }
        let mut k = Kernels::scalar();
        k.isa = isa;
        #[cfg(target_arch = "x86_64")]
        {
            if isa >= Isa::Avx2 {
                k.sgemm = gemm::avx2::avx2_sgemm_6x16;
                k.sgemm_name = "avx2_sgemm_6x16";
                k.layernorm = ops::avx2::avx2_layernorm_f32;
                k.softmax = ops::avx2::avx2_softmax_f32;
                k.gelu = ops::avx2::avx2_gelu_f32;
                k.embed_add_layernorm = ops::avx2::avx2_embed_add_layernorm_f32;
            }
            if isa >= Isa::Avx512 {
                k.sgemm = gemm::avx512::avx512_sgemm_10x32;
                k.sgemm_name = "avx512_sgemm_10x32";
                k.layernorm = ops::avx512::avx512_layernorm_f32;
                k.softmax = ops::avx512::avx512_softmax_f32;
                k.gelu = ops::avx512::avx512_gelu_f32;
                k.embed_add_layernorm = ops::avx512::avx512_embed_add_layernorm_f32;
                let cpu = Cpu::detected();
                if cpu.has_avx512_bf16() {
                    k.to_bf16_pairs = ops::avx512::avx512bf16_to_bf16_pairs;
                }
                if cpu.has_amx_bf16() {
                    k.gemm_bf16 = Some(gemm::amx::amx_bf16_gemm_32x32);
                    k.gemm_bf16_name = Some("amx_bf16_gemm_32x32");
                } else if cpu.has_avx512_bf16() {
                    k.gemm_bf16 = Some(gemm::avx512::avx512bf16_gemm_10x32);
                    k.gemm_bf16_name = Some("avx512bf16_gemm_10x32");
                }
            }
        }
        Ok(k)
    }

    /// The GEMM kernel for the operands of `p`.
    ///
    /// # Panics
    /// For bf16 operands on a table without [`Kernels::gemm_bf16`] (a caller bug: such
    /// callers widen the weights instead).
    pub fn gemm_for(&self, p: &GemmParams) -> GemmFn {
        match p.operands() {
            Operands::F32 => self.sgemm,
            Operands::Bf16 => self.gemm_bf16.unwrap_or_else(|| panic!("no bf16 GEMM on the {} tier", self.isa)),
        }
    }

    /// The table for [`Isa::from_env`].
    ///
    /// # Errors
    /// See [`Isa::from_env`].
    pub fn from_env() -> Result<Kernels, Error> {
        Kernels::for_isa(Isa::from_env()?)
    }

    /// `C[rows] = LayerNorm(A·W ⊕ epilogue)[rows]` over **all** column panels: the
    /// GEMM with `p`'s epilogue (for BERT's `LN(x + A·W + b)`, [`crate::gemm::Epilogue::BiasResidual`]),
    /// then [`Kernels::layernorm`] of each row, block by block of
    /// [`gemm::LN_BLOCK_ROWS`] rows while the block is still in cache. The
    /// result is bit-identical to [`Kernels::sgemm`] followed by [`Kernels::layernorm`]
    /// of each row; it saves the second pass over `C` from memory.
    ///
    /// A pool splits the call by row blocks (each task owns whole rows); with one
    /// thread, pass `0..p.m()`.
    ///
    /// # Safety
    /// `rows` within `0..p.m()`, and no other thread writes those rows of `C`
    /// concurrently.
    ///
    /// # Panics
    /// If `ln_w` or `ln_b` is shorter than `n`, or `rows` is outside `0..m`.
    pub unsafe fn sgemm_bias_residual_layernorm(
        &self,
        p: &GemmParams,
        ln_w: &[f32],
        ln_b: &[f32],
        eps: f32,
        rows: Range<usize>,
    ) {
        // SAFETY: forwarded contract; the slots of `self` belong to this CPU's tier.
        unsafe { gemm::sgemm_layernorm_rows(self.gemm_for(p), self.layernorm, p, (ln_w, ln_b, eps), rows) }
    }
}
