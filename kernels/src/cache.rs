//! Per-core cache sizes, read once from the CPU, for the GEMM blocking
//! ([`crate::gemm::Blocking`]).
//!
//! On x86-64 the sizes come from CPUID: the deterministic cache parameters (leaf 4 on
//! Intel, leaf `0x8000_001D` on AMD; both describe each cache as ways × partitions ×
//! line size × sets), or AMD's older leaf `0x8000_0006` when the first is missing. A
//! hypervisor passes these leaves through, so a VM sees its host core's caches. Where
//! nothing can be read (another architecture, a CPUID that reports nonsense), the
//! sizes of the smallest core toprt targets are used ([`CacheSizes::FALLBACK`]).

use std::sync::OnceLock;

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

    /// This machine's caches, read on first use and then kept.
    pub fn detected() -> CacheSizes {
        static DETECTED: OnceLock<CacheSizes> = OnceLock::new();
        *DETECTED.get_or_init(|| detect().unwrap_or(CacheSizes::FALLBACK))
    }
}

/// Whether a size read from the CPU is plausible for that level (rejects zeros and the
/// garbage some hypervisors return for unused leaves).
fn plausible(c: CacheSizes) -> bool {
    (4 << 10..=4 << 20).contains(&c.l1d) && (64 << 10..=64 << 20).contains(&c.l2)
}

#[cfg(target_arch = "x86_64")]
fn detect() -> Option<CacheSizes> {
    use std::arch::x86_64::{__cpuid, __cpuid_count};
    // CPUID exists on every x86-64 CPU; leaves above the reported maximum are never
    // queried.
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
    let c = CacheSizes { l1d, l2 };
    plausible(c).then_some(c)
}

#[cfg(not(target_arch = "x86_64"))]
fn detect() -> Option<CacheSizes> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detected_sizes_are_plausible_and_stable() {
        let c = CacheSizes::detected();
        assert!(plausible(c), "{c:?}");
        assert_eq!(c, CacheSizes::detected());
        // Every x86-64 CPU of the last decade reports these leaves.
        #[cfg(target_arch = "x86_64")]
        assert!(detect().is_some(), "CPUID reported no usable cache sizes");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn matches_the_kernel_view_of_cpu0() {
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
        assert_eq!(CacheSizes::detected(), sys);
    }
}
