//! Cache blocking of the GEMM driver, derived from the cache sizes of the core.
//!
//! Loops, outermost first: row blocks of up to `MC` rows → groups of panels → `k`
//! blocks of up to `KC` → panels of the group → column tiles of a panel → row tiles.
//! The sizes come from the L2 size of the core the process runs on
//! ([`crate::Cpu::caches`], read from CPUID once), through
//! [`Blocking::for_caches`]:
//!
//! ```text
//!   KC  = min(L2 / 8 / (NR · 4 B), 1024)   B micro-panel (KC × 32 floats) takes 1/8 of L2
//!   MC  = L2 / 2  / (KC · 4 B)             A block (MC × KC floats) takes half of L2
//!   grp = L2 / 8  / (rows · NR · 4 B)      panels whose parked C tiles take 1/8 of L2
//!
//!   L2 per core               KC     MC at a full KC block
//!   2 MiB (Sapphire Rapids)   1024   256   (k = 768: one block of 768, MC 341)
//!   1 MiB (Zen 4, Zen 5)      1024   128   (k = 768: one block of 768, MC 170)
//!   512 KiB (Zen 2/3)          512   128
//! ```
//!
//! * `KC`: a tile streams its `KC × 32` micro-panel of `B` from L2 for every row tile
//!   of the block; L2 delivers it many times faster than the FMAs consume it (128
//!   bytes per `k` step of 20 FMAs), so `KC` does not have to fit L1. What a long `KC`
//!   buys is fewer `k` blocks: each one costs every tile a round trip of its sums
//!   through `C` and a fresh pipeline start. Measured on a Sapphire Rapids core (2 MiB
//!   L2), 128 × 768 × 2304 went from 85 % of the FMA peak at `KC` = 128 (a micro-panel
//!   in half of a 32 KiB L1D, the previous rule) to 93–95 % at 768–1024. On a Zen 5
//!   core (1 MiB L2), `KC` = 512 (a sixteenth of L2, the previous rule) split every
//!   768-wide input in two and cost most where rows are few: with the weights streamed
//!   from memory (`gemm_table --cold`), 24 × 768 × 3072 ran at 66 % of the peak at 512
//!   and 81 % at 1024, the 128-row shapes 86–90 % and 90–92 %; engine-bench's pruned
//!   29-row layer went from 59 % to 84 %. Past 1024 nothing more was measured, so `KC`
//!   stops there. `k` is split into *balanced* blocks (`k` = 3072 with `KC` = 1024
//!   gives three of 1024).
//! * `MC`: the `A` block is re-read from L2, not L3, for every panel. BERT's 128-token
//!   batches are one row block, so every weight panel is read from memory once per
//!   call; rows are split into balanced blocks too.
//! * Panel groups: between `k` blocks the running sums are parked in `C`; a group is
//!   as many panels as keep those `C` tiles within an eighth of L2, so they come back
//!   from L2, not L3. The price: `A` is read once per group (from L3 at worst) instead
//!   of once per call. With `k <= KC` (every 768-wide BERT-base input) there is one
//!   `k` block and groups do not matter.
//! * The blocking never changes a result: a `k` block parks full-precision sums, and
//!   row blocks and groups only reorder independent tiles (tested with tiny blocks
//!   against the detected ones, bit for bit).

use crate::cpu::{CacheSizes, Cpu};
use crate::pack::NR;

/// Cache blocking of the GEMM driver (see the module docs): the largest `k` block and
/// the byte budgets of the `A` block and of the parked `C` tiles of a panel group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Blocking {
    /// Largest `k` block (`KC`); `k` is split into balanced blocks of at most this.
    pub kc: usize,
    /// Bytes of `A` one row block may hold (`MC × KC × 4`).
    pub a_block_bytes: usize,
    /// Bytes of `C` tiles one panel group may park between `k` blocks.
    pub c_group_bytes: usize,
    /// Where the driver prefetches the next tile's `C` (and residual) lines: into L1
    /// (`true`) or L2. Measured per core: on Sapphire Rapids (48 KiB L1D) L1 won, on
    /// Zen 4 (32 KiB L1D) L1 lost 15–20 % against L2 on every shape whose `C` outgrows
    /// L2 (128 × 768 × 3072: 68 % → 86 % of the int8 peak, 73 % → 86 % of the f32 one),
    /// its prefetches missing to memory while the tile streams `B` through the smaller
    /// L1. So: L1 from 48 KiB of L1D up.
    pub c_into_l1: bool,
    /// Where each tile prefetches its share of the next `B` block: into L1 (`true`) or
    /// L2. Measured on a Zen 5 core (48 KiB L1D), with the weights streamed from memory
    /// (`gemm_table --cold`): L1 took 24 × 768 × 3072 from 71 % of the FMA peak to
    /// 86–89 % and 8 rows from 46 % to 50–52 %, the 128-row shapes unchanged or 1–2
    /// points up; engine-bench's pruned pass ran 7 % faster, the dense one 2.5 %. Not
    /// measured on a 32 KiB L1D, which keeps L2 (the earlier rule): from 48 KiB up.
    pub b_into_l1: bool,
}

impl Blocking {
    /// The blocking for a core with these caches (the rules of the module docs).
    pub const fn for_caches(c: CacheSizes) -> Blocking {
        let kc = c.l2 / 8 / (NR * 4);
        Blocking {
            kc: if kc < 16 {
                16
            } else if kc > 1024 {
                1024
            } else {
                kc / 8 * 8
            },
            a_block_bytes: c.l2 / 2,
            c_group_bytes: c.l2 / 8,
            c_into_l1: c.l1d >= 48 << 10,
            b_into_l1: c.l1d >= 48 << 10,
        }
    }

    /// The blocking for this machine's caches, computed once.
    pub fn detected() -> Blocking {
        static DETECTED: std::sync::OnceLock<Blocking> = std::sync::OnceLock::new();
        *DETECTED.get_or_init(|| Blocking::for_caches(Cpu::detected().caches()))
    }

    /// `(k block, number of k blocks)` for inner dimension `k`: balanced blocks of at
    /// most `kc`, a multiple of 4 steps (the unroll of the microkernel) except the last.
    pub(crate) fn k_blocks(&self, k: usize) -> (usize, usize) {
        let blocks = k.div_ceil(self.kc.max(4)).max(1);
        let kc = k.div_ceil(blocks).next_multiple_of(4).max(4);
        (kc, k.div_ceil(kc).max(1))
    }

    /// Rows per row block at `k` block `kc` (at least `mr`).
    pub(crate) fn mc(&self, kc: usize, mr: usize) -> usize {
        (self.a_block_bytes / (kc.max(1) * 4)).max(mr)
    }

    /// Panels per group for `rows` rows: the group's parked `C` tiles
    /// (`rows × group × NR` floats) fit the budget.
    pub(crate) fn panels_per_group(&self, rows: usize) -> usize {
        (self.c_group_bytes / (rows.max(1) * NR * 4)).max(1)
    }
}

/// Bytes of one row of a packed panel (`NR` floats), for budgets in test blockings.
#[cfg(test)]
pub(crate) const NR_BYTES_PER_ROW: usize = NR * 4;

#[cfg(test)]
mod tests {
    use super::*;

    /// The sizes the docs quote (the table above, and `LN_BLOCK_ROWS`'s reasoning).
    #[test]
    fn documented_sizes() {
        let l1 = |l1d: usize| Blocking::for_caches(CacheSizes { l1d, l2: 1 << 20 }).c_into_l1;
        assert!(l1(48 << 10) && !l1(32 << 10), "C prefetched into L1 from 48 KiB of L1D up");
        let l1 = |l1d: usize| Blocking::for_caches(CacheSizes { l1d, l2: 1 << 20 }).b_into_l1;
        assert!(l1(48 << 10) && !l1(32 << 10), "the next B block prefetched into L1 from 48 KiB of L1D up");
        for (l2, kc, mc, mc_768) in [(2 << 20, 1024, 256, 341), (1 << 20, 1024, 128, 170), (512 << 10, 512, 128, 170)] {
            let b = Blocking::for_caches(CacheSizes { l1d: 32 << 10, l2 });
            assert_eq!(b.kc, kc, "KC for L2 {l2}");
            assert_eq!(b.mc(b.kc, 10), mc, "MC at a full KC block for L2 {l2}");
            let (kc768, _) = b.k_blocks(768);
            assert_eq!(b.mc(kc768, 10), mc_768, "MC at k = 768 for L2 {l2}");
        }
    }
}
