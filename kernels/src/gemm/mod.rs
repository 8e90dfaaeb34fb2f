//! Weight GEMM: `C[m, n] = A[m, k] · B[k, n] (+ epilogue)`, with `B` pre-packed in the
//! panel layout of [`crate::pack`].
//!
//! ## Contract
//! * `A` is row-major with leading dimension `lda >= k` (activations, read in place, any
//!   alignment).
//! * `B` is packed (`pack::packed_len(k, n)` floats), usually straight from the mmap:
//!
//! ```text
//!            n ──────────────────────────▶
//!          ┌────────────┬────────────┬──────────┐
//!   k      │  panel 0   │  panel 1   │ panel 2  │  panel = NR = 32 columns,
//!   │      │ k × 32     │ k × 32     │ ░░░░ pad │  last one zero-padded
//!   ▼      └────────────┴────────────┴──────────┘
//!   memory: [p0 k0 c0..c31][p0 k1 c0..c31] … [p0 k(k-1) …][p1 k0 c0..c31] …
//! ```
//! * `C` is row-major with leading dimension `ldc >= n`; only `[m, n]` is written (never
//!   the padding columns of the last panel, never the gap between rows), and it is never
//!   read before it has been written by the same call, so NaN garbage in `C` is fine.
//! * A call covers a range of column panels ([`GemmFn`]), so a thread pool can split one
//!   GEMM by panels without synchronisation; [`GemmParams::rows`] gives a row-block view
//!   for splitting by rows as well.
//! * **Accumulation order.** Every output element is one chain of fused multiply-adds
//!   over `k` ascending, starting from 0, in every SIMD tier (the scalar twin: one chain
//!   of multiply-then-add). K-blocking only parks the running sum in `C` at full f32
//!   precision and picks it up again, so it does not change a single bit. Nothing in the
//!   order depends on `m`, on a row's place in its register tile, or on the panel split:
//!   a sequence gives bit-identical outputs alone and inside any batch, on any number of
//!   threads (tested).
//!
//! ## Driver and microkernels
//! The SIMD tiers share one driver (`drive`) and one generic microkernel body
//! (`microkernel::tile`), instantiated per tier for every row count `1..=MR`:
//!
//! | tier    | entry                 | tile (rows × cols)        | accumulators   |
//! |---------|-----------------------|---------------------------|----------------|
//! | avx2    | `avx2_sgemm_6x16`     | 6 × 16 (half a panel)     | 12 ymm of 16   |
//! | avx512  | `avx512_sgemm_10x32`  | 10 × 32 (one panel)       | 20 zmm of 32   |
//!
//! Per `k` step a tile loads its `cols/LANES` vectors of `B` once and broadcasts one `A`
//! element per row: 6 × 16 does 12 FMAs for 8 loads, 10 × 32 does 20 FMAs for 12. The 12
//! and 20 independent chains cover the FMA latency × throughput of Zen 3/4 and Intel
//! cores (4 cycles × 2 pipes = 8 in flight). Partial tiles never reach a branch in the hot loop: the driver
//! cuts a row block into *balanced* tiles (128 rows with MR = 6 become 18 tiles of 6
//! and 4 of 5, not 21 of 6 and one of 2) and calls the instantiation for that row count;
//! the last panel's partial columns only switch the store to masked stores, outside
//! the `k` loop.
//!
//! ## Cache blocking
//! Loops, outermost first: row blocks of up to `MC` rows → groups of panels → `k`
//! blocks of up to `KC` → panels of the group → column tiles of a panel → row tiles.
//! The sizes come from the L2 size of the core the process runs on
//! ([`crate::cache::CacheSizes::detected`], read from CPUID once), through
//! [`Blocking::for_caches`]:
//!
//! ```text
//!   KC  = L2 / 16 / (NR · 4 B)   B micro-panel (KC × 32 floats) takes 1/16 of L2
//!   MC  = L2 / 2  / (KC · 4 B)   A block (MC × KC floats) takes half of L2
//!   grp = L2 / 8  / (rows · NR · 4 B) panels whose parked C tiles take 1/8 of L2
//!
//!   L2 per core               KC     MC at a full KC block
//!   2 MiB (Sapphire Rapids)   1024   256   (k = 768: one block of 768, MC 341)
//!   1 MiB (Zen 4)              512   256
//!   512 KiB (Zen 2/3)          256   256
//! ```
//!
//! * `KC`: a tile streams its `KC × 32` micro-panel of `B` from L2 for every row tile
//!   of the block; L2 delivers it many times faster than the FMAs consume it (128
//!   bytes per `k` step of 20 FMAs), so `KC` does not have to fit L1. What a long `KC`
//!   buys is fewer `k` blocks: each one costs every tile a round trip of its sums
//!   through `C` and a fresh pipeline start. Measured on a Sapphire Rapids core (2 MiB
//!   L2), 128 × 768 × 2304 went from 85 % of the FMA peak at `KC` = 128 (a micro-panel
//!   in half of a 32 KiB L1D, the previous rule) to 93–95 % at 768–1024. `k` is split
//!   into *balanced* blocks (`k` = 1536 with `KC` = 1024 gives two of 768).
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
//! * Prefetch: while a panel computes, each tile call prefetches its share of the
//!   *next* `B` block into L2 (the first row tile of a micro-panel would otherwise wait
//!   on memory for every line), and the `C` (and residual) lines of the *next* tile
//!   into L1 (a store that misses holds up the store queue; measured ~15 % on
//!   128×768×2304). The `B` lines go out from inside the microkernel's `k` loop, one
//!   per 4 `k` steps, or as many per step as it takes to fit the tile's share into its
//!   steps. Issued as a burst before the tile, they queued up in front of the tile's
//!   own loads: with few rows (pruned layers) a job's share is 50–130 lines, and 8–40-row
//!   GEMMs on weights streamed from memory ran 15–45 % slower that way (128 rows: no
//!   difference). Prefetch is a hint: it never faults and changes no result.
//! * `C` partial sums move once per `k` block (`MR × cols` loads and stores per
//!   `KC × MR × cols/LANES` FMAs: under 1 % of the instructions).

use crate::cache::CacheSizes;
use crate::pack::NR;
use std::ops::Range;

#[cfg(target_arch = "x86_64")]
pub mod amx;
#[cfg(target_arch = "x86_64")]
pub mod avx2;
#[cfg(target_arch = "x86_64")]
pub mod avx512;
pub(crate) mod microkernel;
pub mod scalar;

pub use scalar::{scalar_gemm_bf16, scalar_sgemm_packed};

/// What happens to an accumulated tile before it is stored.
#[derive(Clone, Copy, Debug)]
pub enum Epilogue<'a> {
    /// `C = A·B`
    None,
    /// `C = A·B + bias` (bias: `[n]`)
    Bias(&'a [f32]),
    /// `C = gelu(A·B + bias)` with the exact erf GELU BERT uses.
    BiasGelu(&'a [f32]),
    /// `C = A·B + bias + R` with `R` row-major `[m, n]`, leading dimension `ldr`.
    /// (For the LayerNorm that follows, see [`crate::Kernels::sgemm_bias_residual_layernorm`].)
    BiasResidual { bias: &'a [f32], residual: &'a [f32], ldr: usize },
}

/// What the operands of a GEMM hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operands {
    /// `f32` activations, `f32` `panel32` weight ([`GemmParams::new`]).
    F32,
    /// bf16 pairs: activations rounded to bf16 and a `panel32x2` weight
    /// ([`GemmParams::new_bf16`]); only a kernel from [`crate::Kernels::gemm_bf16`] runs it.
    Bf16,
}

/// One GEMM call, validated once, then shared read-only by every thread that computes
/// a range of its column panels (or a block of its rows).
///
/// The driver counts *steps* of the microkernel: `k` for `f32` operands, the
/// `ceil(k/2)` pairs for bf16, whose 32-bit pair words `a` and `b` hold (so it walks
/// both kinds alike).
pub struct GemmParams<'a> {
    a: &'a [f32],
    lda: usize,
    m: usize,
    /// Microkernel steps: `k` for `f32`, `ceil(k/2)` pairs for bf16.
    steps: usize,
    /// The logical inner dimension.
    k: usize,
    operands: Operands,
    /// Packed `[k, n]` weight.
    b: &'a [f32],
    n: usize,
    c: *mut f32,
    ldc: usize,
    epilogue: Epilogue<'a>,
    blocking: Blocking,
    _c: std::marker::PhantomData<&'a mut [f32]>,
}

// SAFETY: `c` comes from a `&mut [f32]` borrowed for `'a`; kernels write it only through
// disjoint panels or rows (callers of `GemmFn` guarantee disjointness), everything else
// is shared read-only.
unsafe impl Sync for GemmParams<'_> {}
// SAFETY: as above; the exclusive borrow of `C` travels with the params.
unsafe impl Send for GemmParams<'_> {}

impl<'a> GemmParams<'a> {
    /// Checks every length the kernels rely on, once per GEMM, before any thread
    /// touches memory.
    ///
    /// # Errors
    /// A message naming the operand whose length is inconsistent with the shape.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        a: &'a [f32],
        lda: usize,
        m: usize,
        k: usize,
        b: &'a [f32],
        n: usize,
        c: &'a mut [f32],
        ldc: usize,
        epilogue: Epilogue<'a>,
    ) -> Result<Self, String> {
        let c_len = c.len();
        Self::build(a, lda, m, k, b, n, c.as_mut_ptr(), c_len, ldc, epilogue)
    }

    /// The checks of [`GemmParams::new`] on a `C` of `c_len` floats behind `c`.
    #[allow(clippy::too_many_arguments)]
    fn build(
        a: &'a [f32],
        lda: usize,
        m: usize,
        k: usize,
        b: &'a [f32],
        n: usize,
        c: *mut f32,
        c_len: usize,
        ldc: usize,
        epilogue: Epilogue<'a>,
    ) -> Result<Self, String> {
        if m > 0 && n > 0 {
            if lda < k || a.len() < (m - 1) * lda + k {
                return Err(format!("A has {} floats, need {m}×{k} with lda {lda}", a.len()));
            }
            if b.len() != crate::pack::packed_len(k, n) {
                return Err(format!(
                    "packed B has {} floats, need {} for {k}×{n}",
                    b.len(),
                    crate::pack::packed_len(k, n)
                ));
            }
            if ldc < n || c_len < (m - 1) * ldc + n {
                return Err(format!("C has {c_len} floats, need {m}×{n} with ldc {ldc}"));
            }
            match epilogue {
                Epilogue::None => {}
                Epilogue::Bias(bb) | Epilogue::BiasGelu(bb) if bb.len() >= n => {}
                Epilogue::BiasResidual { bias, residual, ldr }
                    if bias.len() >= n && ldr >= n && residual.len() >= (m - 1) * ldr + n => {}
                _ => return Err("epilogue operand shorter than n".into()),
            }
        }
        Ok(Self {
            a,
            lda,
            m,
            steps: k,
            k,
            operands: Operands::F32,
            b,
            n,
            c,
            ldc,
            epilogue,
            blocking: Blocking::detected(),
            _c: std::marker::PhantomData,
        })
    }

    /// A GEMM on bf16 operands: `a` holds `m` rows of activations rounded to bf16 pairs
    /// ([`crate::pack::bf16_pairs_from_f32`]), `lda` words apart; `b` a `panel32x2`
    /// weight of the logical `[k, n]` matrix ([`crate::pack::pack_linear_weight_bf16`]).
    /// `C` and the epilogue are `f32`, as for [`GemmParams::new`]. An odd `k` needs a
    /// zero in the high half of each row's last pair (what the conversion writes).
    ///
    /// # Errors
    /// As [`GemmParams::new`], in pair words.
    #[allow(clippy::too_many_arguments)]
    pub fn new_bf16(
        a: &'a [u32],
        lda: usize,
        m: usize,
        k: usize,
        b: &'a [u32],
        n: usize,
        c: &'a mut [f32],
        ldc: usize,
        epilogue: Epilogue<'a>,
    ) -> Result<Self, String> {
        let c_len = c.len();
        Self::build_bf16(a, lda, m, k, b, n, c.as_mut_ptr(), c_len, ldc, epilogue)
    }

    /// The checks of [`GemmParams::new_bf16`] on a `C` of `c_len` floats behind `c`.
    #[allow(clippy::too_many_arguments)]
    fn build_bf16(
        a: &'a [u32],
        lda: usize,
        m: usize,
        k: usize,
        b: &'a [u32],
        n: usize,
        c: *mut f32,
        c_len: usize,
        ldc: usize,
        epilogue: Epilogue<'a>,
    ) -> Result<Self, String> {
        let pairs = k.div_ceil(2);
        if m > 0 && n > 0 && b.len() != crate::pack::packed_len_bf16(k, n) {
            return Err(format!(
                "packed bf16 B has {} words, need {} for {k}×{n}",
                b.len(),
                crate::pack::packed_len_bf16(k, n)
            ));
        }
        // SAFETY: u32 and f32 have the same size and alignment; the words are only ever
        // moved (broadcast, loaded) bitwise by the bf16 kernels, never read as floats.
        let (a32, b32) = unsafe {
            (
                std::slice::from_raw_parts(a.as_ptr().cast::<f32>(), a.len()),
                std::slice::from_raw_parts(b.as_ptr().cast::<f32>(), b.len()),
            )
        };
        let mut p = Self::build(a32, lda, m, pairs, b32, n, c, c_len, ldc, epilogue)?;
        p.k = k;
        p.operands = Operands::Bf16;
        Ok(p)
    }

    /// As [`GemmParams::new`], with `C` given as a raw pointer, for callers whose output
    /// is a strided window of a buffer that other threads write around concurrently
    /// (e.g. one attention head's columns of the context rows): a `&mut` slice over the
    /// whole window would alias those writers.
    ///
    /// # Safety
    /// `c` must be valid for writes of `(m - 1) * ldc + n` floats (when `m, n > 0`) for
    /// `'a`, and no one else may read or write the `[m, n]` elements (row stride `ldc`)
    /// of the window while the returned params are in use; the gaps between them are
    /// never touched.
    ///
    /// # Errors
    /// As [`GemmParams::new`] for `A`, `B` and the epilogue.
    #[allow(clippy::too_many_arguments)]
    pub unsafe fn with_raw_c(
        a: &'a [f32],
        lda: usize,
        m: usize,
        k: usize,
        b: &'a [f32],
        n: usize,
        c: *mut f32,
        ldc: usize,
        epilogue: Epilogue<'a>,
    ) -> Result<Self, String> {
        let c_len = if m > 0 && n > 0 { (m - 1) * ldc + n } else { 0 };
        Self::build(a, lda, m, k, b, n, c, c_len, ldc, epilogue)
    }

    /// [`GemmParams::new_bf16`] with `C` as a raw pointer; see [`GemmParams::with_raw_c`].
    ///
    /// # Safety
    /// As [`GemmParams::with_raw_c`].
    ///
    /// # Errors
    /// As [`GemmParams::new_bf16`].
    #[allow(clippy::too_many_arguments)]
    pub unsafe fn with_raw_c_bf16(
        a: &'a [u32],
        lda: usize,
        m: usize,
        k: usize,
        b: &'a [u32],
        n: usize,
        c: *mut f32,
        ldc: usize,
        epilogue: Epilogue<'a>,
    ) -> Result<Self, String> {
        let c_len = if m > 0 && n > 0 { (m - 1) * ldc + n } else { 0 };
        Self::build_bf16(a, lda, m, k, b, n, c, c_len, ldc, epilogue)
    }

    /// The same call with another cache blocking (the default is
    /// [`Blocking::detected`]). The result is bit-identical whatever the blocking; tests
    /// use tiny blocks to reach every edge of the driver on small shapes.
    pub fn with_blocking(mut self, blocking: Blocking) -> Self {
        self.blocking = blocking;
        self
    }

    /// A view of the same call (same operands) with another blocking.
    #[cfg(test)]
    pub(crate) fn reblocked(&self, blocking: Blocking) -> GemmParams<'_> {
        let mut v = self.rows(0..self.m);
        v.blocking = blocking;
        v
    }

    /// Number of column panels of this call.
    pub fn panels(&self) -> usize {
        crate::pack::panels(self.n)
    }

    /// Rows of this call.
    pub fn m(&self) -> usize {
        self.m
    }

    /// Output columns of this call.
    pub fn n(&self) -> usize {
        self.n
    }

    /// Inner dimension of this call.
    pub fn k(&self) -> usize {
        self.k
    }

    /// What the operands hold.
    pub fn operands(&self) -> Operands {
        self.operands
    }

    /// Floating-point operations of the whole call (`2·m·k·n`), for GFLOP/s reports.
    pub fn flops(&self) -> f64 {
        2.0 * self.m as f64 * self.k as f64 * self.n as f64
    }

    /// The same GEMM restricted to the rows `rows` (a view: same `B`, same `C`
    /// storage). Lets a pool split a GEMM by row blocks, e.g. for
    /// [`crate::Kernels::sgemm_bias_residual_layernorm`], which needs whole rows.
    ///
    /// # Panics
    /// If `rows` is not inside `0..m`.
    pub fn rows(&self, rows: Range<usize>) -> GemmParams<'_> {
        assert!(rows.start <= rows.end && rows.end <= self.m, "rows {rows:?} outside 0..{}", self.m);
        let (r0, m) = (rows.start, rows.len());
        let epilogue = match self.epilogue {
            Epilogue::BiasResidual { bias, residual, ldr } => {
                Epilogue::BiasResidual { bias, residual: residual.get(r0 * ldr..).unwrap_or(&[]), ldr }
            }
            e => e,
        };
        GemmParams {
            a: self.a.get(r0 * self.lda..).unwrap_or(&[]),
            lda: self.lda,
            m,
            steps: self.steps,
            k: self.k,
            operands: self.operands,
            b: self.b,
            n: self.n,
            // `wrapping_add`: for an empty view the offset may point one row past C.
            c: self.c.wrapping_add(r0 * self.ldc),
            ldc: self.ldc,
            epilogue,
            blocking: self.blocking,
            _c: std::marker::PhantomData,
        }
    }
}

/// A GEMM kernel entry: computes the columns of `panels` for all rows of `p`.
///
/// # Safety
/// `panels` must lie within `0..p.panels()`, the CPU must support the tier the kernel
/// belongs to (true for every kernel taken from a [`crate::Kernels`] table), and no
/// other thread may write the same rows × panels of `C` concurrently.
pub type GemmFn = unsafe fn(p: &GemmParams, panels: Range<usize>);

/// Single-threaded entry: runs `kernel` over all panels of a validated call.
///
/// `kernel` must come from a [`crate::Kernels`] table (which only holds kernels the CPU
/// supports).
pub fn sgemm_packed(kernel: GemmFn, p: &GemmParams) {
    // SAFETY: `p` was validated by its constructor; this caller owns all panels; the
    // kernel comes from a table built for this CPU (documented precondition).
    unsafe { kernel(p, 0..p.panels()) };
}

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
}

/// Bytes of one row of a packed panel (`NR` floats), for budgets in test blockings.
#[cfg(test)]
pub(crate) const NR_BYTES_PER_ROW: usize = NR * 4;

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
}

impl Blocking {
    /// The blocking for a core with these caches (the rules of the module docs).
    pub const fn for_caches(c: CacheSizes) -> Blocking {
        let kc = c.l2 / 16 / (NR * 4);
        Blocking { kc: if kc < 16 { 16 } else { kc / 8 * 8 }, a_block_bytes: c.l2 / 2, c_group_bytes: c.l2 / 8 }
    }

    /// The blocking for this machine's caches, computed once.
    pub fn detected() -> Blocking {
        static DETECTED: std::sync::OnceLock<Blocking> = std::sync::OnceLock::new();
        *DETECTED.get_or_init(|| Blocking::for_caches(CacheSizes::detected()))
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
    fn panels_per_group(&self, rows: usize) -> usize {
        (self.c_group_bytes / (rows.max(1) * NR * 4)).max(1)
    }
}

/// Splits `len` into `parts` contiguous pieces whose sizes differ by at most one, the
/// larger first; returns piece `i` as (offset, size).
#[inline]
fn balanced(len: usize, parts: usize, i: usize) -> (usize, usize) {
    let (base, extra) = (len / parts, len % parts);
    (i * base + i.min(extra), base + usize::from(i < extra))
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
        let (row0, rows) = balanced(m, mblocks, mbi);
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
                            // be written) and residual rows, into L1: a store that misses
                            // would hold up the store queue for a trip to L3.
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
                                    prefetch_span(p.c.wrapping_add(j * p.ldc + ncol0), ncols);
                                    if let (true, Epilogue::BiasResidual { residual, ldr, .. }) = (last, p.epilogue) {
                                        prefetch_span(residual.as_ptr().wrapping_add(j * ldr + ncol0), ncols);
                                    }
                                }
                            }
                            let finish = if last { Finish::at(&p.epilogue, row, col0) } else { Finish::Partial };
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

/// Prefetches the lines of `len` floats from `p` into L1.
#[inline(always)]
fn prefetch_span(p: *const f32, len: usize) {
    let mut i = 0;
    while i < len {
        prefetch::<true>(p.wrapping_add(i));
        i += 16;
    }
    prefetch::<true>(p.wrapping_add(len - 1));
}

/// A row LayerNorm kernel (`Kernels::layernorm`).
pub type LayerNormFn = fn(&mut [f32], &[f32], &[f32], f32);

/// Rows per GEMM + LayerNorm block in [`sgemm_layernorm_rows`].
pub const LN_BLOCK_ROWS: usize = 512;

/// GEMM (with `p`'s epilogue) over all panels of the rows `rows`, then LayerNorm of
/// each of those rows, block by block while the block is still in cache.
///
/// # Safety
/// As [`GemmFn`] for `sgemm`, with `rows` inside `0..p.m()` and no other thread writing
/// those rows of `C` concurrently.
pub(crate) unsafe fn sgemm_layernorm_rows(
    sgemm: GemmFn,
    layernorm: LayerNormFn,
    p: &GemmParams,
    ln: (&[f32], &[f32], f32),
    rows: Range<usize>,
) {
    assert!(rows.end <= p.m, "rows {rows:?} outside 0..{}", p.m);
    let (w, b, eps) = ln;
    assert!(w.len() >= p.n && b.len() >= p.n, "LayerNorm weight / bias shorter than n = {}", p.n);
    if p.n == 0 {
        return;
    }
    // Rows per block: the GEMM streams every weight panel once per block, so the block
    // is as tall as the GEMM's own row block (`MC`: 256 rows for avx2, 512 for avx512);
    // a shorter one (it used to be half of L2, 85 rows at n = 768) streamed BERT's
    // weights twice for 128 tokens, the second time for a 43-row remainder. LayerNorm
    // then re-reads the block's `C` rows from L2 or L3: one pass over `rows × n` floats,
    // under 1 % of the GEMM's time.
    let block = LN_BLOCK_ROWS;
    let mut r0 = rows.start;
    while r0 < rows.end {
        let r1 = (r0 + block).min(rows.end);
        let view = p.rows(r0..r1);
        // SAFETY: forwarded contract; the view covers rows r0..r1 of this call only.
        unsafe { sgemm(&view, 0..view.panels()) };
        for i in r0..r1 {
            // SAFETY: GemmParams::new proved `(m-1)*ldc + n` floats behind `c` and
            // i < m; this call owns row i (contract) and the GEMM above has finished.
            let row = unsafe { std::slice::from_raw_parts_mut(p.c.add(i * p.ldc), p.n) };
            layernorm(row, w, b, eps);
        }
        r0 = r1;
    }
}
