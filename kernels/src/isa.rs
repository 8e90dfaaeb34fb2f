//! Instruction-set tiers and the dispatch table, resolved once.
//!
//! [`Kernels`] starts all-scalar; the AVX2 and AVX-512 tiers overwrite only the slots
//! they implement better. `TOPRT_ISA=scalar|avx2|avx512` forces a tier so every tier can
//! be tested on one machine; asking for a tier the CPU lacks is an error, not a silent
//! fallback.

use crate::gemm::{self, GemmFn};
use crate::ops;
use std::fmt;

/// An instruction-set tier.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Isa {
    Scalar,
    Avx2,
    Avx512,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IsaError {
    #[error("unknown instruction set '{0}' (expected scalar, avx2 or avx512)")]
    Unknown(String),
    #[error("instruction set {0} was requested but this CPU does not support it")]
    Unsupported(Isa),
}

impl fmt::Display for Isa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Isa::Scalar => "scalar",
            Isa::Avx2 => "avx2",
            Isa::Avx512 => "avx512",
        })
    }
}

impl std::str::FromStr for Isa {
    type Err = IsaError;
    fn from_str(s: &str) -> Result<Self, IsaError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "scalar" => Ok(Isa::Scalar),
            "avx2" => Ok(Isa::Avx2),
            "avx512" | "avx-512" => Ok(Isa::Avx512),
            other => Err(IsaError::Unknown(other.to_string())),
        }
    }
}

impl Isa {
    /// Whether this CPU can run the tier.
    pub fn supported(self) -> bool {
        match self {
            Isa::Scalar => true,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma"),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => {
                std::arch::is_x86_feature_detected!("avx512f")
                    && std::arch::is_x86_feature_detected!("avx512bw")
                    && std::arch::is_x86_feature_detected!("avx512vl")
                    && std::arch::is_x86_feature_detected!("avx512dq")
            }
            #[cfg(not(target_arch = "x86_64"))]
            _ => false,
        }
    }

    /// The best tier this CPU supports.
    pub fn best() -> Isa {
        [Isa::Avx512, Isa::Avx2].into_iter().find(|i| i.supported()).unwrap_or(Isa::Scalar)
    }

    /// `TOPRT_ISA` if set (and supported), else the best tier.
    ///
    /// # Errors
    /// An unknown name, or a tier this CPU lacks.
    pub fn from_env() -> Result<Isa, IsaError> {
        match std::env::var("TOPRT_ISA") {
            Ok(v) if !v.trim().is_empty() => {
                let isa: Isa = v.parse()?;
                if isa.supported() {
                    Ok(isa)
                } else {
                    Err(IsaError::Unsupported(isa))
                }
            }
            _ => Ok(Isa::best()),
        }
    }
}

/// The dispatch table: one function pointer per kernel family.
#[derive(Clone, Copy)]
pub struct Kernels {
    pub isa: Isa,
    /// Packed-weight GEMM over a range of column panels.
    pub sgemm: GemmFn,
    pub layernorm: fn(&mut [f32], &[f32], &[f32], f32),
    pub softmax: fn(&mut [f32]),
    pub gelu: fn(&mut [f32]),
}

impl fmt::Debug for Kernels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Kernels").field("isa", &self.isa).finish_non_exhaustive()
    }
}

impl Kernels {
    /// The portable table.
    pub fn scalar() -> Kernels {
        Kernels {
            isa: Isa::Scalar,
            sgemm: gemm::scalar_sgemm_packed,
            layernorm: ops::layernorm_scalar,
            softmax: ops::softmax_scalar,
            gelu: ops::gelu_slice_scalar,
        }
    }

    /// The table for `isa`: scalar slots, overwritten by the slots the tier improves.
    ///
    /// # Errors
    /// When the CPU lacks the tier.
    pub fn for_isa(isa: Isa) -> Result<Kernels, IsaError> {
        if !isa.supported() {
            return Err(IsaError::Unsupported(isa));
        }
        let mut k = Kernels::scalar();
        k.isa = isa;
        Ok(k)
    }

    /// The table for [`Isa::from_env`].
    ///
    /// # Errors
    /// See [`Isa::from_env`].
    pub fn from_env() -> Result<Kernels, IsaError> {
        Kernels::for_isa(Isa::from_env()?)
    }
}
