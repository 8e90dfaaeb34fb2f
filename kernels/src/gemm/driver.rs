//! The shared SIMD driver: cuts a call into cache blocks and register tiles and hands
//! each tile to the tier's microkernel for its row count.
//!
//! The SIMD tiers share one driver (`drive`) and one generic microkernel body
//! (`microkernel::tile`), instantiated per tier for every row count `1..=MR`:
//!
//! | tier        | entry                     | tile (rows × cols)    | accumulators |
//! |-------------|---------------------------|-----------------------|--------------|
//! | avx2        | `avx2_sgemm_6x16`         | 6 × 16 (half a panel) | 12 ymm of 16 |
//! | avx512      | `avx512_sgemm_10x32`      | 10 × 32 (one panel)   | 20 zmm of 32 |
//! | avx512 int8 | `avx512vnni_gemm_i8_8x32` | 8 × 32 (one panel)    | 16 zmm of 32 |
//!
//! (The int8 tile is shorter: `vpdpbusd` cannot broadcast its activation operand from
//! memory, so each row's broadcast needs a register; see `avx512.rs`.)
//!
//! Per `k` step a tile loads its `cols/LANES` vectors of `B` once and broadcasts one `A`
//! element per row: 6 × 16 does 12 FMAs for 8 loads, 10 × 32 does 20 FMAs for 12. The 12
//! and 20 independent chains cover the FMA latency × throughput of Zen 3/4 and Intel
//! cores (4 cycles × 2 pipes = 8 in flight). Partial tiles never reach a branch in the
//! hot loop: the driver cuts a row block into *balanced* tiles (128 rows with MR = 6
//! become 18 tiles of 6 and 4 of 5, not 21 of 6 and one of 2) and calls the
//! instantiation for that row count; the last panel's partial columns only switch the
//! store to masked stores, outside the `k` loop.
//!
//! ## Loops, prefetch and parked sums
//! The loop nest and its block sizes are those of [`super::Blocking`] (`blocking.rs`).
//!
//! * Prefetch: while a panel computes, each tile call prefetches its share of the
//!   *next* `B` block (the first row tile of a micro-panel would otherwise wait on
//!   memory for every line) into L1 or L2 by the core's L1D size
//!   (`Blocking::b_into_l1`), and the `C` (and residual) lines of the *next* tile into
//!   L1 or L2 likewise (`Blocking::c_into_l1`; a store that misses holds up the store
//!   queue; measured ~15 % on 128×768×2304). The `B` lines go out from inside the
//!   microkernel's `k` loop, 1, 2, 4 or 8 per 4 `k` steps, as many as it takes to fit
//!   the tile's share into its steps. Issued as a burst before the tile, they queued up
//!   in front of the tile's own loads: with few rows (pruned layers) a job's share is
//!   50–130 lines, and 8–40-row GEMMs on weights streamed from memory ran 15–45 %
//!   slower that way (128 rows: no difference). Prefetch is a hint: it never faults and
//!   changes no result.
//! * `C` partial sums move once per `k` block (`MR × cols` loads and stores per
//!   `KC × MR × cols/LANES` FMAs: under 1 % of the instructions).

use super::{Epilogue, GemmParams, Operands};
use crate::pack::NR;
use crate::split;
use std::ops::Range;

/// What a tile does after its last `k` step.
#[derive(Clone, Copy)]
pub(crate) enum Finish {
    /// More `k` blocks follow: park the raw sums in `C`.
    Partial,
    /// Last `k` block, no epilogue.
    Store,
    /// `+ bias`; the pointer is `bias` at the tile's first column.
    Bias(*const f32),
    /// `gelu(· + bias)`.
    BiasGelu(*const f32),
    /// `+ bias + R`; `res` points at `R` for the tile's first row and column.
    BiasResidual { bias: *const f32, res: *const f32, ldr: usize },
    /// `gelu(· + bias + R)`.
    BiasResidualGelu { bias: *const f32, res: *const f32, ldr: usize },
}

impl Finish {
    /// The last `k` block's finish for the tile at (`row`, `col0`) of a call with this
    /// epilogue.
    pub(crate) fn at(epilogue: &Epilogue, row: usize, col0: usize) -> Finish {
        match *epilogue {
            Epilogue::None => Finish::Store,
            Epilogue::Bias(b) => Finish::Bias(b.as_ptr().wrapping_add(col0)),
            Epilogue::BiasGelu(b) => Finish::BiasGelu(b.as_ptr().wrapping_add(col0)),
            Epilogue::BiasResidual { bias, residual, ldr } => Finish::BiasResidual {
                bias: bias.as_ptr().wrapping_add(col0),
                res: residual.as_ptr().wrapping_add(row * ldr + col0),
                ldr,
            },
            Epilogue::BiasResidualGelu { bias, residual, ldr } => Finish::BiasResidualGelu {
                bias: bias.as_ptr().wrapping_add(col0),
                res: residual.as_ptr().wrapping_add(row * ldr + col0),
                ldr,
            },
        }
    }
}

/// One microkernel call: a register tile of `R` rows × up to `tile_cols` columns over
/// one `k` block.
pub(crate) struct TileJob {
    /// `A` at (first row, first `k` of the block); row stride `lda`.
    pub a: *const f32,
    pub lda: usize,
    /// Packed `B` at (first `k` of the block, first column of the tile); row stride `NR`.
    pub b: *const f32,
    /// `k` steps of this block.
    pub kc: usize,
    /// `C` at (first row, first column); row stride `ldc`.
    pub c: *mut f32,
    pub ldc: usize,
    /// Valid columns, `1..=tile_cols` (fewer only in the last panel).
    pub cols: usize,
    /// First `k` block: start from zero (never read `C`), else continue `C`'s sums.
    pub first: bool,
    pub finish: Finish,
    /// Lines of the next `B` block to prefetch into L2 while this tile computes: `pf_lines`
    /// lines of 64 bytes from `pf`, spread over the tile's `k` steps.
    pub pf: *const f32,
    pub pf_lines: usize,
    /// Prefetch those lines into L1 rather than L2 ([`super::Blocking::b_into_l1`]).
    pub pf_l1: bool,
    /// int8 calls, last `k` block: turn the tile's `i32` sums into `f32` before the
    /// finish.
    pub dequant: Option<Dequant>,
}

/// The dequantisation of an int8 tile ([`super::Int8Scales`]), at the tile's first row
/// and column: `C = f32(Σ) · (row · col)`, where `Σ` is the exact `Σ_k q_a · q_w` —
/// kernels that read activations as the unsigned bytes `q_a + 128` (`zero_point`) first
/// subtract `128 · col_sum` — then, with outlier channels ([`super::Int8Outliers`]),
/// `oc` fused multiply-adds of their `f32` activations (`ox`, rows `old` apart) and
/// weight rows (`ow`, the panel at the tile's first column, rows `NR` apart).
#[derive(Clone, Copy)]
pub(crate) struct Dequant {
    pub row: *const f32,
    pub col: *const f32,
    pub col_sum: *const f32,
    pub zero_point: bool,
    pub ox: *const f32,
    pub old: usize,
    pub oc: usize,
    pub ow: *const f32,
}

impl Dequant {
    /// The dequantisation of the tile at (`row`, `col0`) of `p` by kernels of `ts`, on
    /// the last `k` block of an int8 call.
    pub(crate) fn at(p: &GemmParams, ts_zero_point: bool, row: usize, col0: usize) -> Option<Dequant> {
        let (ox, old, oc, ow) = match p.outliers {
            Some(o) => (
                o.x.as_ptr().wrapping_add(row * o.ld),
                o.ld,
                o.c,
                o.w.as_ptr().wrapping_add(col0 / NR * o.c * NR + col0 % NR),
            ),
            None => (std::ptr::null(), 0, 0, std::ptr::null()),
        };
        p.int8.map(|s| Dequant {
            row: s.row.as_ptr().wrapping_add(row),
            col: s.col.as_ptr().wrapping_add(col0),
            col_sum: s.col_sum.as_ptr().wrapping_add(col0),
            zero_point: ts_zero_point,
            ox,
            old,
            oc,
            ow,
        })
    }
}

/// A microkernel instantiation for one row count.
///
/// # Safety
/// Every pointer of the job must cover the rows and columns it names, and the CPU must
/// support the tier.
pub(crate) type TileFn = unsafe fn(&TileJob);

/// One tier's microkernels.
pub(crate) struct TileSet {
    /// The operands the tiles multiply.
    pub operands: Operands,
    /// Rows of the full tile; `tiles[r - 1]` computes `r` rows, `r` in `1..=mr`.
    pub mr: usize,
    /// Columns per tile (divides [`NR`]).
    pub cols: usize,
    pub tiles: &'static [TileFn],
    /// int8 tiles that read activations as unsigned `q + 128` bytes (`vpdpbusd`), whose
    /// sums the finish corrects by `128 · Σ_k q_w` ([`Dequant`]).
    pub zero_point: bool,
}

/// The shared SIMD driver: blocks the call (see the module docs) and hands every
/// register tile to the tier's microkernel for its row count.
///
/// # Safety
/// As [`GemmFn`]; `ts` must belong to a tier the CPU supports.
pub(crate) unsafe fn drive(p: &GemmParams, panels: Range<usize>, ts: &TileSet) {
    let (m, k, n) = (p.m, p.steps, p.n);
    if m == 0 || panels.is_empty() {
        return;
    }
    debug_assert!(panels.end <= p.panels());
    debug_assert!(NR.is_multiple_of(ts.cols) && ts.tiles.len() == ts.mr);
    // Not a safety matter (both kinds walk validated words), but the numbers would be
    // meaningless: f32 kernels on bf16 words or the reverse.
    assert_eq!(p.operands, ts.operands, "a {:?} GEMM given to a {:?} kernel", p.operands, ts.operands);
    let bl = p.blocking;
    let (kc_max, kblocks) = bl.k_blocks(k);
    let mblocks = m.div_ceil(bl.mc(kc_max, ts.mr));
    // Pointers are formed with `wrapping_add`: with k = 0 the offsets may leave the
    // (empty) operands, and such pointers are never dereferenced.
    let (a0, b0) = (p.a.as_ptr(), p.b.as_ptr());
    for mbi in 0..mblocks {
        let block = split::balanced(m, mblocks, mbi);
        let (row0, rows) = (block.start, block.len());
        let ntiles = rows.div_ceil(ts.mr);
        // Balanced row tiles: `tile_extra` tiles of `tile_base + 1` rows, then the rest
        // of `tile_base` rows.
        let (tile_base, tile_extra) = (rows / ntiles, rows % ntiles);
        let group_len = bl.panels_per_group(rows);
        let mut g0 = panels.start;
        while g0 < panels.end {
            let group = g0..(g0 + group_len).min(panels.end);
            g0 = group.end;
            for kb in 0..kblocks {
                let k0 = kb * kc_max;
                let kc = kc_max.min(k - k0.min(k));
                let last = kb + 1 == kblocks;
                for panel in group.clone() {
                    // The B block computed after this one, prefetched into L2 while this
                    // panel computes: the next panel of the group, else the group's first
                    // panel in the next k block, else the next group's first block.
                    let next_b = if panel + 1 < group.end {
                        Some((b0.wrapping_add((panel + 1) * k * NR + k0 * NR), kc))
                    } else if !last {
                        Some((b0.wrapping_add(group.start * k * NR + (k0 + kc) * NR), kc_max.min(k - (k0 + kc))))
                    } else if group.end < panels.end {
                        Some((b0.wrapping_add(group.end * k * NR), kc_max.min(k)))
                    } else {
                        None
                    };
                    let subs = (NR / ts.cols).min((n - panel * NR).div_ceil(ts.cols));
                    let jobs = subs * ntiles;
                    // Lines of the next B block (2 per k row) each job prefetches.
                    let (next_lines, per_job) = match next_b {
                        Some((_, nk)) => (nk * NR * 4 / 64, (nk * NR * 4 / 64).div_ceil(jobs)),
                        None => (0, 0),
                    };
                    // No divisions per tile: row tiles are walked incrementally.
                    let mut i = 0;
                    for sub in 0..subs {
                        let col0 = panel * NR + sub * ts.cols;
                        let cols = ts.cols.min(n - col0);
                        let mut row = row0;
                        for t in 0..ntiles {
                            let r = tile_base + usize::from(t < tile_extra);
                            // This job's share of the next B block, prefetched by the
                            // microkernel inside its k loop.
                            let (pf, pf_lines) = match next_b {
                                Some((nb, _)) => {
                                    let first = (i * per_job).min(next_lines);
                                    (nb.wrapping_add(first * 16), ((i + 1) * per_job).min(next_lines) - first)
                                }
                                None => (std::ptr::null(), 0),
                            };
                            // The next tile's C rows (parked sums to load, or lines about to
                            // be written) and residual rows, into L1 or L2
                            // (`Blocking::c_into_l1`): a store that misses would hold up the
                            // store queue for a trip to L3.
                            let next = if t + 1 < ntiles {
                                Some((row + r, tile_base + usize::from(t + 1 < tile_extra), col0, cols))
                            } else if sub + 1 < subs {
                                let ncol0 = col0 + ts.cols;
                                Some((row0, tile_base + usize::from(0 < tile_extra), ncol0, ts.cols.min(n - ncol0)))
                            } else {
                                None
                            };
                            if let Some((nrow, nr, ncol0, ncols)) = next {
                                for j in nrow..nrow + nr {
                                    prefetch_span(p.c.wrapping_add(j * p.ldc + ncol0), ncols, bl.c_into_l1);
                                    if let (
                                        true,
                                        Epilogue::BiasResidual { residual, ldr, .. }
                                        | Epilogue::BiasResidualGelu { residual, ldr, .. },
                                    ) = (last, p.epilogue)
                                    {
                                        prefetch_span(
                                            residual.as_ptr().wrapping_add(j * ldr + ncol0),
                                            ncols,
                                            bl.c_into_l1,
                                        );
                                    }
                                }
                            }
                            let finish = if last { Finish::at(&p.epilogue, row, col0) } else { Finish::Partial };
                            let dequant = if last { Dequant::at(p, ts.zero_point, row, col0) } else { None };
                            let job = TileJob {
                                a: a0.wrapping_add(row * p.lda + k0),
                                lda: p.lda,
                                b: b0.wrapping_add(panel * k * NR + k0 * NR + (col0 - panel * NR)),
                                kc,
                                c: p.c.wrapping_add(row * p.ldc + col0),
                                ldc: p.ldc,
                                cols,
                                first: kb == 0,
                                finish,
                                pf,
                                pf_lines,
                                pf_l1: bl.b_into_l1,
                                dequant,
                            };
                            // SAFETY: GemmParams::new proved A covers rows < m and k < lda,
                            // B covers every panel × k, C and the epilogue operands cover
                            // [m, n]; the tile's rows (row..row + r <= m) and columns
                            // (col0..col0 + cols <= n) are inside, and this call owns these
                            // panels (caller's contract). The tier is supported (contract).
                            unsafe { (ts.tiles[r - 1])(&job) };
                            row += r;
                            i += 1;
                        }
                    }
                }
            }
        }
    }
}

/// A prefetch hint for the cache line holding `p`: into L1 (`T0`) or L2 (`T1`). Never
/// faults and has no architectural effect, whatever the address.
#[inline(always)]
pub(crate) fn prefetch<const L1: bool>(p: *const f32) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: prefetch instructions do not access memory architecturally and never
    // fault; SSE is part of the x86-64 baseline.
    unsafe {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0, _MM_HINT_T1};
        if L1 {
            _mm_prefetch::<_MM_HINT_T0>(p.cast());
        } else {
            _mm_prefetch::<_MM_HINT_T1>(p.cast());
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// Prefetches the lines of `len` floats from `p` into L1 (`l1`) or L2.
#[inline(always)]
fn prefetch_span(p: *const f32, len: usize, l1: bool) {
    let mut i = 0;
    while i < len {
        if l1 {
            prefetch::<true>(p.wrapping_add(i));
        } else {
            prefetch::<false>(p.wrapping_add(i));
        }
        i += 16;
    }
    if l1 {
        prefetch::<true>(p.wrapping_add(len - 1));
    } else {
        prefetch::<false>(p.wrapping_add(len - 1));
    }
}
