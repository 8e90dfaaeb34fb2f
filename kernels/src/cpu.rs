//! The one probe of the CPU: instruction-set features, the operating system's grant of
//! the AMX tile state, and the per-core cache sizes, read once ([`Cpu::detected`]) and
//! asked by everything else — the tier check ([`Isa`]), each tier file's plug into the
//! dispatch table, the GEMM blocking, the peak probes, and the build script, which
//! includes this very file (`#[path = "src/cpu.rs"] mod cpu;`) to tell the tests which
//! tiers the build host runs. So this file uses nothing but `std`.
//!
//! ## Features
//! Most flags come from `std::arch::is_x86_feature_detected!`, which also checks that
//! the OS saves the vector registers they need (XCR0). AVX-VNNI and the AMX flags have
//! no stable name there and are read from CPUID leaf 7 directly (AVX-VNNI: subleaf 1,
//! EAX bit 4, with the AVX state checked in XCR0 by hand; AMX-BF16, AMX-TILE,
//! AMX-INT8: subleaf 0, EDX bits 22, 24, 25). The AMX flags say what the *CPU* has;
//! whether this process may use the tiles is [`Cpu::amx_granted`].
//!
//! ## The AMX tile state
//! The OS must save the tile registers (XCR0 bits 17 and 18, XTILECFG and XTILEDATA),
//! and Linux hands the 8 KiB tile data state only to processes that ask for it
//! (`arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)`). The probe asks once, when
//! the CPU has AMX-TILE and the OS manages the state; elsewhere it never asks.
//!
//! ## Caches
//! On x86-64 the sizes come from CPUID: the deterministic cache parameters (leaf 4 on
//! Intel, leaf `0x8000_001D` on AMD; both describe each cache as ways × partitions ×
//! line size × sets), or AMD's older leaf `0x8000_0006` when the first is missing. A
//! hypervisor passes these leaves through, so a VM sees its host core's caches. Where
//! nothing can be read (another architecture, a CPUID that reports nonsense), the
//! sizes of the smallest core toprt targets are used ([`CacheSizes::FALLBACK`]).

use std::fmt;
use std::sync::OnceLock;

/// An instruction-set tier: a set of kernels and the CPU features they need.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Isa {
    /// The scalar twins only: the references every other tier is tested against.
    Scalar,
    /// Portable vector code on any CPU: the generic kernel bodies on plain `[f32; 4]`
    /// vectors, which the compiler maps to the baseline vector set (SSE2 on x86-64,
    /// NEON on AArch64); the tier non-x86 CPUs run.
    Portable,
    /// AVX2 and FMA.
    Avx2,
    /// AVX-512 F, BW, VL and DQ.
    Avx512,
}

impl Isa {
    /// Every tier, slowest first.
    pub const ALL: [Isa; 4] = [Isa::Scalar, Isa::Portable, Isa::Avx2, Isa::Avx512];
}

impl fmt::Display for Isa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Isa::Scalar => "scalar",
            Isa::Portable => "portable",
            Isa::Avx2 => "avx2",
            Isa::Avx512 => "avx512",
        })
    }
}

/// The instruction-set features toprt's kernels use or will use, as detected (all
/// `false` off x86-64). A copy of the probe's findings: changing one changes nothing
/// about what runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Features {
    pub avx2: bool,
    pub fma: bool,
    pub avx512f: bool,
    pub avx512bw: bool,
    pub avx512vl: bool,
    pub avx512dq: bool,
    /// `vdpbf16ps`, `vcvtne2ps2bf16`.
    pub avx512_bf16: bool,
    /// `vpdpbusd` on 512-bit vectors (int8 dot products).
    pub avx512_vnni: bool,
    /// `vpdpbusd` on 256-bit vectors, VEX-encoded.
    pub avx_vnni: bool,
    /// The AMX tile registers (`ldtilecfg`, `tileloadd`, …); see [`Cpu::amx_granted`].
    pub amx_tile: bool,
    /// `tdpbf16ps`.
    pub amx_bf16: bool,
    /// `tdpbssd` and its signed/unsigned variants.
    pub amx_int8: bool,
}

impl Features {
    /// `(name, present)` for every flag, in declaration order.
    pub fn list(&self) -> [(&'static str, bool); 12] {
        [
            ("avx2", self.avx2),
            ("fma", self.fma),
            ("avx512f", self.avx512f),
            ("avx512bw", self.avx512bw),
            ("avx512vl", self.avx512vl),
            ("avx512dq", self.avx512dq),
            ("avx512_bf16", self.avx512_bf16),
            ("avx512_vnni", self.avx512_vnni),
            ("avx_vnni", self.avx_vnni),
            ("amx_tile", self.amx_tile),
            ("amx_bf16", self.amx_bf16),
            ("amx_int8", self.amx_int8),
        ]
    }
}

/// Data cache sizes of one core, in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CacheSizes {
    /// Level-1 data cache.
    pub l1d: usize,
    /// Level-2 cache (unified, private to the core on every targeted CPU).
    pub l2: usize,
}

impl CacheSizes {
    /// Zen 2 / Zen 3: 32 KiB L1D, 512 KiB L2 per core, the smallest caches among the
    /// cores toprt is tuned for.
    pub const FALLBACK: CacheSizes = CacheSizes { l1d: 32 << 10, l2: 512 << 10 };

    /// Whether a size read from the CPU is plausible for that level (rejects zeros and
    /// the garbage some hypervisors return for unused leaves).
    fn plausible(self) -> bool {
        (4 << 10..=4 << 20).contains(&self.l1d) && (64 << 10..=64 << 20).contains(&self.l2)
    }
}

/// What this CPU offers, read once: see the module docs. Only [`Cpu::detected`] makes
/// one (and [`Cpu::without_amx`] narrows one), so a `Cpu` never claims more than the
/// machine has: a dispatch table built from it only holds kernels the machine runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cpu {
    features: Features,
    amx_granted: bool,
    caches: CacheSizes,
    /// Whether `caches` was read from the CPU (else it is [`CacheSizes::FALLBACK`]).
    caches_read: bool,
}

impl Cpu {
    /// This machine, probed on first use and then kept.
    pub fn detected() -> &'static Cpu {
        static DETECTED: OnceLock<Cpu> = OnceLock::new();
        DETECTED.get_or_init(|| {
            let (features, amx_granted) = detect_features();
            let read = detect_caches().filter(|c| c.plausible());
            Cpu { features, amx_granted, caches: read.unwrap_or(CacheSizes::FALLBACK), caches_read: read.is_some() }
        })
    }

    /// This CPU with AMX left out, as if it had none: a table built from it
    /// (`Kernels::for_cpu`) runs the bf16 GEMM on `vdpbf16ps`, so tests and benchmarks
    /// can run both bf16 kernels on a machine that has both.
    pub fn without_amx(&self) -> Cpu {
        let features = Features { amx_tile: false, amx_bf16: false, amx_int8: false, ..self.features };
        Cpu { features, amx_granted: false, ..self.clone() }
    }

    /// The feature flags.
    pub fn features(&self) -> Features {
        self.features
    }

    /// Whether this process may use the AMX tiles: the CPU has AMX-TILE, the OS saves
    /// the tile state, and (on Linux) granted it to this process.
    pub fn amx_granted(&self) -> bool {
        self.amx_granted
    }

    /// Per-core data cache sizes ([`CacheSizes::FALLBACK`] where the CPU reports none).
    pub fn caches(&self) -> CacheSizes {
        self.caches
    }

    /// Whether this CPU runs tier `isa`.
    pub fn supports(&self, isa: Isa) -> bool {
        let f = &self.features;
        match isa {
            Isa::Scalar | Isa::Portable => true,
            Isa::Avx2 => f.avx2 && f.fma,
            Isa::Avx512 => f.avx512f && f.avx512bw && f.avx512vl && f.avx512dq,
        }
    }

    /// The tiers this CPU runs, slowest first (always starting with [`Isa::Scalar`]).
    pub fn tiers(&self) -> impl Iterator<Item = Isa> + '_ {
        Isa::ALL.into_iter().filter(|&isa| self.supports(isa))
    }

    /// The fastest tier this CPU runs.
    pub fn best(&self) -> Isa {
        self.tiers().last().unwrap_or(Isa::Scalar)
    }

    /// The bf16 dot product (`vdpbf16ps`) on top of the AVX-512 tier.
    pub fn has_avx512_bf16(&self) -> bool {
        self.supports(Isa::Avx512) && self.features.avx512_bf16
    }

    /// The AMX bf16 tiles, granted to this process, on top of [`Cpu::has_avx512_bf16`]
    /// (which every AMX CPU has, and which the AMX GEMM leans on for its epilogue and
    /// its odd shapes).
    pub fn has_amx_bf16(&self) -> bool {
        self.has_avx512_bf16() && self.features.amx_tile && self.features.amx_bf16 && self.amx_granted
    }

    /// The AMX int8 tiles (`tdpbusd`), granted to this process, on the AVX-512 tier.
    pub fn has_amx_int8(&self) -> bool {
        self.supports(Isa::Avx512) && self.features.amx_tile && self.features.amx_int8 && self.amx_granted
    }
}

/// A summary for people and scripts: the features present and absent, the AMX grant,
/// the caches, and the supported tiers on a last line of the form
/// `tiers: scalar avx2 avx512`.
impl fmt::Display for Cpu {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names = |want: bool| -> String {
            let v: Vec<&str> = self.features.list().into_iter().filter(|&(_, on)| on == want).map(|(n, _)| n).collect();
            if v.is_empty() {
                "none".into()
            } else {
                v.join(" ")
            }
        };
        writeln!(f, "features: {}", names(true))?;
        writeln!(f, "absent: {}", names(false))?;
        let amx = match (self.features.amx_tile, self.amx_granted) {
            (false, _) => "none on this CPU",
            (true, true) => "tile state granted by the OS",
            (true, false) => "tile state refused by the OS",
        };
        writeln!(f, "amx: {amx}")?;
        let source = if self.caches_read { "from CPUID" } else { "fallback: the CPU reports none" };
        writeln!(f, "caches: L1d {} KiB, L2 {} KiB per core ({source})", self.caches.l1d >> 10, self.caches.l2 >> 10)?;
        let tiers: Vec<String> = self.tiers().map(|isa| isa.to_string()).collect();
        write!(f, "tiers: {}", tiers.join(" "))
    }
}

/// The feature flags, and whether the AMX tile state is granted (asked for here, once
/// per process, where the CPU and OS offer it).
#[cfg(target_arch = "x86_64")]
fn detect_features() -> (Features, bool) {
    use std::arch::is_x86_feature_detected as has;
    use std::arch::x86_64::{__cpuid_count, CpuidResult};
    // CPUID exists on every x86-64 CPU; leaves above the reported maximum are never read.
    let max_leaf = __cpuid_count(0, 0).eax;
    let none = CpuidResult { eax: 0, ebx: 0, ecx: 0, edx: 0 };
    let (l7, l7_1) = if max_leaf >= 7 { (__cpuid_count(7, 0), __cpuid_count(7, 1)) } else { (none, none) };
    let bit = |reg: u32, b: u32| (reg >> b) & 1 == 1;
    let xcr0 = xcr0();
    let avx_state = xcr0 & 0b110 == 0b110; // SSE and AVX registers saved by the OS
    let tile_state = xcr0 & (3 << 17) == 3 << 17; // XTILECFG and XTILEDATA
    let features = Features {
        avx2: has!("avx2"),
        fma: has!("fma"),
        avx512f: has!("avx512f"),
        avx512bw: has!("avx512bw"),
        avx512vl: has!("avx512vl"),
        avx512dq: has!("avx512dq"),
        avx512_bf16: has!("avx512bf16"),
        avx512_vnni: has!("avx512vnni"),
        avx_vnni: avx_state && bit(l7_1.eax, 4),
        amx_tile: bit(l7.edx, 24),
        amx_bf16: bit(l7.edx, 22),
        amx_int8: bit(l7.edx, 25),
    };
    let granted = features.amx_tile && max_leaf >= 0xd && tile_state && request_tile_data();
    (features, granted)
}

#[cfg(not(target_arch = "x86_64"))]
fn detect_features() -> (Features, bool) {
    (Features::default(), false)
}

/// The XCR0 register (which register states the OS saves), or 0 where the OS has not
/// enabled XGETBV (no OSXSAVE).
#[cfg(target_arch = "x86_64")]
fn xcr0() -> u64 {
    use std::arch::x86_64::__cpuid_count;
    if (__cpuid_count(1, 0).ecx >> 27) & 1 == 0 {
        return 0;
    }
    let (lo, hi): (u32, u32);
    // SAFETY: XGETBV with ECX = 0 is valid once OSXSAVE is set (checked above); it only
    // reads XCR0 into EAX:EDX.
    unsafe {
        std::arch::asm!("xgetbv", in("ecx") 0u32, out("eax") lo, out("edx") hi, options(nomem, nostack, preserves_flags));
    }
    u64::from(lo) | (u64::from(hi) << 32)
}

/// Asks Linux for the AMX tile data state for this process; true when granted.
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
fn request_tile_data() -> bool {
    const ARCH_REQ_XCOMP_PERM: i64 = 0x1023;
    const XFEATURE_XTILEDATA: i64 = 18;
    const SYS_ARCH_PRCTL: i64 = 158;
    let ret: i64;
    // SAFETY: the arch_prctl system call with these arguments only changes the
    // process's permission to use the tile state; it reads and writes no memory.
    unsafe {
        std::arch::asm!("syscall", inlateout("rax") SYS_ARCH_PRCTL => ret, in("rdi") ARCH_REQ_XCOMP_PERM,
             in("rsi") XFEATURE_XTILEDATA, lateout("rcx") _, lateout("r11") _, options(nostack));
    }
    ret == 0
}

#[cfg(all(target_arch = "x86_64", not(target_os = "linux")))]
fn request_tile_data() -> bool {
    false
}

/// The L1D and L2 sizes CPUID reports (unchecked; the caller checks plausibility).
#[cfg(target_arch = "x86_64")]
fn detect_caches() -> Option<CacheSizes> {
    use std::arch::x86_64::{__cpuid, __cpuid_count};
    let r = __cpuid(0);
    let (max_leaf, vendor) = (r.eax, [r.ebx.to_le_bytes(), r.edx.to_le_bytes(), r.ecx.to_le_bytes()].concat());
    let max_ext = __cpuid(0x8000_0000).eax;
    let amd = vendor == b"AuthenticAMD" || vendor == b"HygonGenuine";
    let leaf = if amd { 0x8000_001D } else { 4 };
    let available = if amd { max_ext >= 0x8000_001D } else { max_leaf >= 4 };
    let (mut l1d, mut l2) = (0, 0);
    if available {
        for sub in 0..16 {
            let r = __cpuid_count(leaf, sub);
            let kind = r.eax & 0x1f; // 0 = no more caches, 1 = data, 2 = instruction, 3 = unified
            if kind == 0 {
                break;
            }
            let level = (r.eax >> 5) & 0x7;
            let ways = ((r.ebx >> 22) & 0x3ff) as usize + 1;
            let partitions = ((r.ebx >> 12) & 0x3ff) as usize + 1;
            let line = (r.ebx & 0xfff) as usize + 1;
            let sets = r.ecx as usize + 1;
            let size = ways * partitions * line * sets;
            match (level, kind) {
                (1, 1) | (1, 3) => l1d = size,
                (2, 1) | (2, 3) => l2 = size,
                _ => {}
            }
        }
    }
    if amd && (l1d == 0 || l2 == 0) && max_ext >= 0x8000_0006 {
        let (l1, l2r) = (__cpuid(0x8000_0005), __cpuid(0x8000_0006));
        if l1d == 0 {
            l1d = ((l1.ecx >> 24) as usize) << 10;
        }
        if l2 == 0 {
            l2 = ((l2r.ecx >> 16) as usize) << 10;
        }
    }
    Some(CacheSizes { l1d, l2 })
}

#[cfg(not(target_arch = "x86_64"))]
fn detect_caches() -> Option<CacheSizes> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detected_once_and_plausible() {
        let cpu = Cpu::detected();
        assert!(std::ptr::eq(cpu, Cpu::detected()), "probed twice");
        assert!(cpu.caches().plausible(), "{cpu:?}");
        // Every x86-64 CPU of the last decade reports these leaves.
        #[cfg(target_arch = "x86_64")]
        assert!(cpu.caches_read, "CPUID reported no usable cache sizes: {:?}", detect_caches());
    }

    /// The probe agrees with std's detection wherever std has a stable name.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn features_agree_with_std() {
        use std::arch::is_x86_feature_detected as has;
        let f = Cpu::detected().features();
        assert_eq!(f.avx2, has!("avx2"));
        assert_eq!(f.fma, has!("fma"));
        assert_eq!(f.avx512f && f.avx512bw && f.avx512vl && f.avx512dq, Cpu::detected().supports(Isa::Avx512));
        assert_eq!(f.avx512_bf16, has!("avx512bf16"));
        assert_eq!(f.avx512_vnni, has!("avx512vnni"));
        assert!(!Cpu::detected().amx_granted() || f.amx_tile, "a grant without AMX-TILE");
    }

    #[test]
    fn tiers_are_ordered_and_scalar_always_runs() {
        let cpu = Cpu::detected();
        let tiers: Vec<Isa> = cpu.tiers().collect();
        assert_eq!(tiers.first(), Some(&Isa::Scalar));
        assert!(tiers.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(cpu.best(), *tiers.last().unwrap());
        assert!(!cpu.has_amx_bf16() || cpu.has_avx512_bf16());
        assert!(!cpu.has_avx512_bf16() || cpu.supports(Isa::Avx512));
    }

    #[test]
    fn without_amx_only_removes_amx() {
        let cpu = Cpu::detected();
        let narrowed = cpu.without_amx();
        assert!(!narrowed.has_amx_bf16() && !narrowed.amx_granted());
        let f = narrowed.features();
        assert!(!f.amx_tile && !f.amx_bf16 && !f.amx_int8);
        assert_eq!(Features { amx_tile: false, amx_bf16: false, amx_int8: false, ..cpu.features() }, f);
        assert_eq!(narrowed.has_avx512_bf16(), cpu.has_avx512_bf16());
        assert!(narrowed.tiers().eq(cpu.tiers()));
        assert_eq!(narrowed.caches(), cpu.caches());
    }

    /// The summary's last line is what `scripts/test.sh` reads: `tiers: ` and the tier
    /// names, space-separated.
    #[test]
    fn summary_ends_with_the_tiers_line() {
        let cpu = Cpu::detected();
        let text = cpu.to_string();
        println!("{text}");
        let last = text.lines().last().unwrap();
        let want: Vec<String> = cpu.tiers().map(|i| i.to_string()).collect();
        assert_eq!(last, format!("tiers: {}", want.join(" ")));
        assert!(text.lines().any(|l| l.starts_with("caches: L1d ")));
        assert!(text.lines().any(|l| l.starts_with("amx: ")));
        for (name, on) in cpu.features().list() {
            let line = if on { "features: " } else { "absent: " };
            let listed = text.lines().find(|l| l.starts_with(line)).unwrap();
            assert!(listed.split(' ').any(|w| w == name), "{name} not on the '{line}' line");
        }
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn caches_match_the_kernel_view_of_cpu0() {
        // The kernel reads the same CPUID leaves; a mismatch would mean a decoding bug.
        let Ok(dir) = std::fs::read_dir("/sys/devices/system/cpu/cpu0/cache") else {
            eprintln!("skipped: no /sys/devices/system/cpu/cpu0/cache");
            return;
        };
        let read = |p: &std::path::Path, f: &str| std::fs::read_to_string(p.join(f)).unwrap_or_default();
        let mut sys = CacheSizes { l1d: 0, l2: 0 };
        for e in dir.flatten() {
            let p = e.path();
            let (level, kind, size) = (read(&p, "level"), read(&p, "type"), read(&p, "size"));
            let Some(kib) = size.trim().strip_suffix('K').and_then(|s| s.parse::<usize>().ok()) else { continue };
            match (level.trim(), kind.trim()) {
                ("1", "Data") => sys.l1d = kib << 10,
                ("2", "Unified") | ("2", "Data") => sys.l2 = kib << 10,
                _ => {}
            }
        }
        if sys.l1d == 0 || sys.l2 == 0 {
            eprintln!("skipped: sysfs lists no L1D/L2 sizes ({sys:?})");
            return;
        }
        assert_eq!(Cpu::detected().caches(), sys);
    }
}
