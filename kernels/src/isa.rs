//! Choosing a tier and building its dispatch table, once per session.
//!
//! A table starts as [`Kernels::scalar`]; then the plugs of every tier up to the
//! requested one run in order ([`PLUGS`]), and each overwrites only the slots its
//! tier implements better, after checking the CPU itself (tract's `plug_fma`,
//! `plug_avx512f`). This file names no kernel: the tier files do.
//! `TOPRT_ISA=scalar|portable|avx2|avx512` forces a tier so every tier can be tested on one
//! machine; asking for a tier the CPU lacks is an error, not a silent fallback.

use crate::cpu::{Cpu, Isa};
use crate::error::Error;
use crate::Kernels;
use crate::{gemm, ops};

impl std::str::FromStr for Isa {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        match s.trim().to_ascii_lowercase().as_str() {
            "scalar" => Ok(Isa::Scalar),
            "portable" => Ok(Isa::Portable),
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

/// A tier file's plug: installs the kernels of its tier that `cpu` runs into a table.
type Plug = fn(&mut Kernels, &Cpu);

/// Every plug with the tier it belongs to, in the order they run: a table for tier `t`
/// is the scalar table with every plug of a tier `<= t` applied in turn, so a later
/// plug overwrites what an earlier one installed (the AMX bf16 GEMM replaces the
/// AVX512_BF16 one).
#[cfg(target_arch = "x86_64")]
const PLUGS: [(Isa, Plug); 7] = [
    (Isa::Portable, gemm::portable::plug),
    (Isa::Portable, ops::portable::plug),
    (Isa::Avx2, gemm::avx2::plug),
    (Isa::Avx2, ops::avx2::plug),
    (Isa::Avx512, gemm::avx512::plug),
    (Isa::Avx512, ops::avx512::plug),
    (Isa::Avx512, gemm::amx::plug),
];
#[cfg(not(target_arch = "x86_64"))]
const PLUGS: [(Isa, Plug); 2] = [(Isa::Portable, gemm::portable::plug), (Isa::Portable, ops::portable::plug)];

impl Kernels {
    /// The table for tier `isa` on this CPU ([`Kernels::for_cpu`] of [`Cpu::detected`]).
    ///
    /// # Errors
    /// [`Error::Unsupported`] when the CPU lacks the tier.
    pub fn for_isa(isa: Isa) -> Result<Kernels, Error> {
        Kernels::for_cpu(isa, Cpu::detected())
    }

    /// The table for tier `isa` on `cpu`: the scalar table, then the plugs of every
    /// tier up to `isa`, in order. With [`Cpu::detected`] that is the best this machine
    /// runs of the tier; with a narrowed CPU ([`Cpu::without_amx`]) the kernels it
    /// leaves.
    ///
    /// # Errors
    /// [`Error::Unsupported`] when `cpu` lacks the tier.
    pub fn for_cpu(isa: Isa, cpu: &Cpu) -> Result<Kernels, Error> {
        if !cpu.supports(isa) {
            return Err(Error::Unsupported(isa));
        }
        let mut k = Kernels::scalar();
        k.isa = isa;
        for (tier, plug) in PLUGS {
            // The portable kernels make the portable table only: the x86 tiers start
            // from the scalar twins, as they always have.
            if tier <= isa && (tier != Isa::Portable || isa == Isa::Portable) {
                plug(&mut k, cpu);
            }
        }
        Ok(k)
    }

    /// The table for [`Isa::from_env`].
    ///
    /// # Errors
    /// See [`Isa::from_env`].
    pub fn from_env() -> Result<Kernels, Error> {
        Kernels::for_isa(Isa::from_env()?)
    }
}
