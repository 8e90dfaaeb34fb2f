//! AMX GEMM on bf16 operands: `amx_bf16_gemm_32x32`, a 32 × 32 block of `C` (one
//! packed panel wide) in four 16 × 16 f32 tile registers.
//!
//! Intel AMX (Sapphire Rapids and later) adds eight 1 KiB tile registers and
//! `tdpbf16ps`, which multiplies a 16 × 32 bf16 tile by a 32 × 16 bf16 tile into a
//! 16 × 16 f32 tile: 8192 multiply-adds per instruction. Measured on a Sapphire Rapids
//! core: ~900 GFLOP/s from four independent accumulators, five times the AVX-512 FMA
//! peak and ten times `vdpbf16ps` there.
//!
//! ```text
//!   tmm0 C00  tmm1 C01      rows 0..16  × cols 0..16 / 16..32
//!   tmm2 C10  tmm3 C11      rows 16..32 × cols 0..16 / 16..32
//!   tmm4 A0   tmm5 A1       rows 0..16 / 16..32 of A, 16 pair words (32 k) per row
//!   tmm6 B0   tmm7 B1       16 pair rows of the panel, columns 0..16 / 16..32
//!
//!   per 32 k:  load A0 A1 B0 B1, then C00 += A0·B0, C01 += A0·B1, C10 += A1·B0, C11 += A1·B1
//! ```
//!
//! The operands are exactly those of the other bf16 kernels: `A` rows of bf16 pairs
//! (a tile load reads 16 rows of 64 bytes at the row stride) and the `panel32x2`
//! weight, whose 128-byte pair rows hold columns 0..16 in their first 64 bytes and
//! 16..32 in the second (a tile load at stride 128 bytes). Nothing is repacked.
//!
//! * **Loops.** Row blocks of up to `MC` rows (the `A` block stays in L2, as in the
//!   vector driver) → panels → 32-row sub-blocks → `k` in steps of 32, all of `k` in
//!   the tile registers (no parking in `C`). The panel's `B` (48 KiB at `k` = 768) is
//!   re-read from L1/L2 by each sub-block; the next panel's `B` is prefetched into L2,
//!   a share per sub-block and `k` step.
//! * **Edges.** A last sub-block of fewer rows reconfigures the tiles to that many
//!   rows (`ldtilecfg`, once per call), so no tile load reads past `A` and no store
//!   writes past `C`. A last panel narrower than 32 columns is stored to a scratch
//!   block and copied. `k` must be a multiple of 32 (every BERT width is); other
//!   shapes run on `vdpbf16ps` (`avx512bf16_gemm_10x32`), present on every AMX CPU.
//! * **Epilogue.** After the tiles are stored, bias / GELU / residual run over the
//!   block in `C` with the AVX-512 epilogue of the vector kernels.
//! * **Order.** Every output element accumulates its row's `k` pairs in the same fixed
//!   order, whatever the block or sub-block it falls in: a sequence's outputs are the
//!   same alone and in any batch, bit for bit (tested). Within a tile instruction the
//!   hardware's rounding order is its own; the results are compared with the scalar
//!   twin within a tolerance.
//! * **OS support.** Linux hands out the tile state only to processes that ask
//!   (`arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)`); the CPU probe asks once
//!   ([`crate::Cpu::amx_granted`]).
//!   Every call loads its tile configuration and releases the tiles on return, so no
//!   thread keeps AMX state between calls.

use super::driver::{self, Dequant, Finish};
use super::microkernel::{dequant_rows, finish_rows};
use super::{GemmParams, Operands};
use crate::cpu::Cpu;
use crate::pack::NR;
use crate::simd::avx512::Avx512;
use crate::Kernels;
use std::arch::asm;
use std::ops::Range;

/// Pair words per tile row (64 bytes): 32 values of `k`.
const KT: usize = 16;

/// The `ldtilecfg` operand (palette 1).
#[repr(C, align(64))]
struct TileConfig {
    palette: u8,
    start_row: u8,
    reserved: [u8; 14],
    colsb: [u16; 16],
    rows: [u8; 16],
}

impl TileConfig {
    /// C00/C01/A0 with `lo` rows, C10/C11/A1 with `hi` rows (0: unused), B0/B1 16 pair rows.
    fn new(lo: usize, hi: usize) -> TileConfig {
        let mut t = TileConfig { palette: 1, start_row: 0, reserved: [0; 14], colsb: [0; 16], rows: [0; 16] };
        for (i, r) in [(0, lo), (1, lo), (2, hi), (3, hi), (4, lo), (5, hi), (6, KT), (7, KT)] {
            if r > 0 {
                t.colsb[i] = 64;
                t.rows[i] = r as u8;
            }
        }
        t
    }
}

/// Installs the AMX bf16 GEMM in `k` where `cpu` offers the tiles to this process (it
/// replaces `avx512bf16_gemm_10x32`, which it falls back on for odd shapes).
pub(crate) fn plug(k: &mut Kernels, cpu: &Cpu) {
    if cpu.has_amx_bf16() {
        k.gemm_bf16 = Some(amx_bf16_gemm_32x32);
        k.gemm_bf16_name = Some("amx_bf16_gemm_32x32");
    }
    if cpu.has_amx_int8() && cpu.features().avx512_vnni {
        k.gemm_i8 = amx_int8_gemm_32x32;
        k.gemm_i8_name = "amx_int8_gemm_32x32";
    }
}

/// The AMX [`super::GemmFn`] (bf16 operands).
///
/// # Safety
/// As [`super::GemmFn`]; the process may use the AMX bf16 tiles
/// ([`Cpu::has_amx_bf16`]).
pub(crate) unsafe fn amx_bf16_gemm_32x32(p: &GemmParams, panels: Range<usize>) {
    assert_eq!(p.operands, Operands::Bf16, "a {:?} GEMM given to the AMX bf16 kernel", p.operands);
    if !p.steps.is_multiple_of(KT) {
        // SAFETY: forwarded contract; `Cpu::has_amx_bf16` includes AVX512_BF16.
        unsafe { super::avx512::avx512bf16_gemm_10x32(p, panels) };
        return;
    }
    if p.m == 0 || panels.is_empty() {
        return;
    }
    // SAFETY: forwarded contract.
    unsafe { drive::<false>(p, panels) }
}

/// The AMX [`super::GemmFn`] on int8 operands: the same 32 × 32 blocks with `tdpbusd`
/// (unsigned `q + 128` activation bytes × signed weight bytes into `i32`), a tile row
/// of 64 bytes holding 16 quads (64 values of `k`); the zero point and the scales are
/// taken out after the tiles are stored (`Dequant`, as the vector kernels do), then the
/// epilogue. `k` must be a multiple of 64; other shapes run on
/// `avx512vnni_gemm_i8_8x32`, present on every CPU with AMX-INT8.
///
/// # Safety
/// As [`super::GemmFn`]; the process may use the AMX int8 tiles
/// ([`Cpu::has_amx_int8`]) and the CPU has AVX512-VNNI.
pub(crate) unsafe fn amx_int8_gemm_32x32(p: &GemmParams, panels: Range<usize>) {
    assert_eq!(p.operands, Operands::Int8, "a {:?} GEMM given to the AMX int8 kernel", p.operands);
    if !p.steps.is_multiple_of(KT) {
        // SAFETY: forwarded contract; AVX512-VNNI is part of this kernel's contract.
        unsafe { super::avx512::avx512vnni_gemm_i8_8x32(p, panels) };
        return;
    }
    if p.m == 0 || panels.is_empty() {
        return;
    }
    // SAFETY: forwarded contract.
    unsafe { drive::<true>(p, panels) }
}

/// The blocked loops of both AMX kernels (`INT8`: `tdpbusd` and the dequantisation,
/// else `tdpbf16ps`).
///
/// # Safety
/// As the kernels above.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx2,fma")]
unsafe fn drive<const INT8: bool>(p: &GemmParams, panels: Range<usize>) {
    let (m, steps, n) = (p.m, p.steps, p.n);
    let mc = p.blocking.mc(steps, 32).next_multiple_of(32);
    let lda4 = p.lda * 4;
    let (a0, b0) = (p.a.as_ptr().cast::<u8>(), p.b.as_ptr().cast::<u8>());
    let panel_bytes = steps * NR * 4;
    let mut loaded = (0, 0);
    let mut scratch = Scratch([0.0; 32 * NR]);
    let mut mb0 = 0;
    while mb0 < m {
        let mb1 = (mb0 + mc).min(m);
        for panel in panels.clone() {
            let col0 = panel * NR;
            let cols = NR.min(n - col0);
            let b = b0.wrapping_add(panel * panel_bytes);
            let next = (panel + 1 < panels.end).then(|| b.wrapping_add(panel_bytes));
            let subs = (mb1 - mb0).div_ceil(32);
            let mut row = mb0;
            for sb in 0..subs {
                let rows = 32.min(mb1 - row);
                let (lo, hi) = (rows.min(16), rows.saturating_sub(16));
                if loaded != (lo, hi) {
                    let cfg = TileConfig::new(lo, hi);
                    // SAFETY: a valid palette-1 configuration (rows ≤ 16, 64-byte rows).
                    unsafe { asm!("ldtilecfg [{}]", in(reg) &cfg, options(nostack, readonly)) };
                    loaded = (lo, hi);
                }
                let a = a0.wrapping_add(row * lda4);
                // SAFETY: tiles are configured for `lo`/`hi` rows of `A` from row `row`
                // (< m, validated lengths), 64-byte rows inside each row's `steps` words
                // (k tile kt < steps / 16), and 16 pair rows of this panel's `B`.
                unsafe { block::<INT8>(a, lda4, b, steps / KT, hi > 0, next.map(|nb| (nb, sb, subs))) };
                let (dst, ldc) = if cols == NR {
                    (p.c.wrapping_add(row * p.ldc + col0), p.ldc)
                } else {
                    (scratch.0.as_mut_ptr(), NR)
                };
                // SAFETY: `dst` covers `rows` × 32 floats at stride `ldc`: C rows
                // row..row + rows (< m) and a full panel of columns (< n), or the
                // scratch block.
                unsafe {
                    let s = ldc * 4;
                    asm!("tilestored [{c} + {s}*1], tmm0", "tilestored [{c1} + {s}*1], tmm1",
                         c = in(reg) dst, c1 = in(reg) dst.add(16), s = in(reg) s, options(nostack));
                    if hi > 0 {
                        let d = dst.add(16 * ldc);
                        asm!("tilestored [{c} + {s}*1], tmm2", "tilestored [{c1} + {s}*1], tmm3",
                             c = in(reg) d, c1 = in(reg) d.add(16), s = in(reg) s, options(nostack));
                    }
                }
                let out = p.c.wrapping_add(row * p.ldc + col0);
                if cols < NR {
                    for r in 0..rows {
                        // SAFETY: scratch row r, and C row row + r, columns col0..col0 + cols
                        // (< n): inside both.
                        unsafe {
                            std::ptr::copy_nonoverlapping(scratch.0.as_ptr().add(r * NR), out.add(r * p.ldc), cols)
                        };
                    }
                }
                if INT8 {
                    let dq = Dequant::at(p, true, row, col0).expect("int8 params carry their scales");
                    // SAFETY: the block `rows × cols` of C at `out` holds its i32 sums;
                    // the scales cover its rows and columns (validated lengths).
                    unsafe { dequant_rows::<Avx512, 2>(out, p.ldc, rows, cols, &dq) };
                }
                // SAFETY: the block `rows × cols` of C at `out` and its epilogue operands
                // lie inside the validated shapes.
                unsafe { finish_rows::<Avx512, 2>(out, p.ldc, rows, cols, Finish::at(&p.epilogue, row, col0)) };
                row += rows;
            }
        }
        mb0 = mb1;
    }
    // SAFETY: releases this thread's tile state; no tile is used after this.
    unsafe { asm!("tilerelease", options(nostack, nomem)) };
}

/// A 32 × 32 f32 block for a narrow last panel.
#[repr(C, align(64))]
struct Scratch([f32; 32 * NR]);

/// The `k` loop of one sub-block: zero the accumulators, then per 32 `k` load the `A`
/// tiles (`A1` only with `hi`) and the two `B` tiles and issue the 2 or 4 tile
/// products. With `next = (B of the next panel, sub-block, sub-blocks)`, prefetches
/// this sub-block's share of the next panel's `B` lines into L2, one share per step.
///
/// # Safety
/// Tiles configured (`ldtilecfg`) for the rows read; `a` valid for `A` rows at stride
/// `lda4` bytes over `ktiles · 64` bytes each, `b` for `ktiles · 16` pair rows of 128 bytes.
#[inline(always)]
unsafe fn block<const INT8: bool>(
    a: *const u8,
    lda4: usize,
    b: *const u8,
    ktiles: usize,
    hi: bool,
    next: Option<(*const u8, usize, usize)>,
) {
    // SAFETY: zeroing configured accumulators touches no memory.
    unsafe {
        asm!("tilezero tmm0", "tilezero tmm1", options(nostack, nomem));
        if hi {
            asm!("tilezero tmm2", "tilezero tmm3", options(nostack, nomem));
        }
    }
    let a1 = a.wrapping_add(16 * lda4);
    // 32 lines per k tile of the next panel; this sub-block prefetches its share (the
    // bounds computed once: two divisions per step cost as much as a tile product).
    let (nb, l0, l1) = match next {
        Some((nb, sb, subs)) => (nb, 32 * sb / subs, 32 * (sb + 1) / subs),
        None => (std::ptr::null(), 0, 0),
    };
    for kt in 0..ktiles {
        let (ak, bk) = (a.wrapping_add(kt * 64), b.wrapping_add(kt * KT * NR * 4));
        let nk = nb.wrapping_add(kt * KT * NR * 4);
        for l in l0..l1 {
            driver::prefetch::<false>(nk.wrapping_add(l * 64).cast());
        }
        // SAFETY: the tile loads read configured rows inside the operands (contract).
        unsafe {
            match (INT8, hi) {
                (false, true) => asm!(
                    "tileloadd tmm4, [{a} + {sa}*1]",
                    "tileloadd tmm6, [{b} + {sb}*1]",
                    "tdpbf16ps tmm0, tmm4, tmm6",
                    "tileloadd tmm7, [{b1} + {sb}*1]",
                    "tdpbf16ps tmm1, tmm4, tmm7",
                    "tileloadd tmm5, [{a1} + {sa}*1]",
                    "tdpbf16ps tmm2, tmm5, tmm6",
                    "tdpbf16ps tmm3, tmm5, tmm7",
                    a = in(reg) ak, a1 = in(reg) a1.wrapping_add(kt * 64), sa = in(reg) lda4,
                    b = in(reg) bk, b1 = in(reg) bk.wrapping_add(64), sb = in(reg) NR * 4,
                    options(nostack, readonly)
                ),
                (false, false) => asm!(
                    "tileloadd tmm4, [{a} + {sa}*1]",
                    "tileloadd tmm6, [{b} + {sb}*1]",
                    "tdpbf16ps tmm0, tmm4, tmm6",
                    "tileloadd tmm7, [{b1} + {sb}*1]",
                    "tdpbf16ps tmm1, tmm4, tmm7",
                    a = in(reg) ak, sa = in(reg) lda4,
                    b = in(reg) bk, b1 = in(reg) bk.wrapping_add(64), sb = in(reg) NR * 4,
                    options(nostack, readonly)
                ),
                (true, true) => asm!(
                    "tileloadd tmm4, [{a} + {sa}*1]",
                    "tileloadd tmm6, [{b} + {sb}*1]",
                    "tdpbusd tmm0, tmm4, tmm6",
                    "tileloadd tmm7, [{b1} + {sb}*1]",
                    "tdpbusd tmm1, tmm4, tmm7",
                    "tileloadd tmm5, [{a1} + {sa}*1]",
                    "tdpbusd tmm2, tmm5, tmm6",
                    "tdpbusd tmm3, tmm5, tmm7",
                    a = in(reg) ak, a1 = in(reg) a1.wrapping_add(kt * 64), sa = in(reg) lda4,
                    b = in(reg) bk, b1 = in(reg) bk.wrapping_add(64), sb = in(reg) NR * 4,
                    options(nostack, readonly)
                ),
                (true, false) => asm!(
                    "tileloadd tmm4, [{a} + {sa}*1]",
                    "tileloadd tmm6, [{b} + {sb}*1]",
                    "tdpbusd tmm0, tmm4, tmm6",
                    "tileloadd tmm7, [{b1} + {sb}*1]",
                    "tdpbusd tmm1, tmm4, tmm7",
                    a = in(reg) ak, sa = in(reg) lda4,
                    b = in(reg) bk, b1 = in(reg) bk.wrapping_add(64), sb = in(reg) NR * 4,
                    options(nostack, readonly)
                ),
            }
        }
    }
}

/// The register-only loop of the tile peak probe (`crate::peak_probe_amx`): four
/// independent `tdpbf16ps` accumulators (each 16 × 16 × 32 multiply-adds), `iters`
/// rounds, tiles configured and released inside.
///
/// # Safety
/// The process may use the AMX bf16 tiles ([`crate::Cpu::has_amx_bf16`]).
pub(crate) unsafe fn amx_bf16_tile_probe(iters: usize) {
    let cfg = TileConfig::new(16, 16);
    let src = Scratch([1e-3; 32 * NR]);
    // SAFETY: the tiles are granted (contract); a valid configuration; the loads read
    // 16 rows of 64 bytes of the 4 KiB `src` (stride 64).
    unsafe {
        asm!("ldtilecfg [{}]", in(reg) &cfg, options(nostack, readonly));
        asm!("tilezero tmm0", "tilezero tmm1", "tilezero tmm2", "tilezero tmm3",
             "tileloadd tmm4, [{s} + {st}*1]", "tileloadd tmm5, [{s} + {st}*1]",
             "tileloadd tmm6, [{s} + {st}*1]", "tileloadd tmm7, [{s} + {st}*1]",
             s = in(reg) src.0.as_ptr(), st = in(reg) 64usize, options(nostack, readonly));
        for _ in 0..iters {
            asm!(
                "tdpbf16ps tmm0, tmm4, tmm6",
                "tdpbf16ps tmm1, tmm4, tmm7",
                "tdpbf16ps tmm2, tmm5, tmm6",
                "tdpbf16ps tmm3, tmm5, tmm7",
                options(nostack, nomem)
            );
        }
        asm!("tilerelease", options(nostack, nomem));
    }
}
