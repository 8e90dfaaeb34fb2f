//! GEMM over whole rows, then a per-row operation on each finished row while its block
//! is still in cache: the fused `LN(x + A·W + b)` of BERT's attention output and FFN
//! output, and, in int8 sessions, the quantisation of a row for the next linear.

use super::{GemmFn, GemmParams};
use std::ops::Range;

/// Rows per GEMM + LayerNorm block of
/// [`crate::Kernels::sgemm_bias_residual_layernorm`]: one or two of the GEMM's own row
/// blocks (`MC`, derived from L2 by [`super::Blocking`]).
pub const LN_BLOCK_ROWS: usize = 512;

/// GEMM (with `p`'s epilogue) over all panels of the rows `rows`, then `post(i, row)`
/// for each of those rows, block by block while the block is still in cache.
///
/// # Safety
/// As [`GemmFn`] for `gemm`, with no other thread writing rows `rows` of `C`
/// concurrently.
pub(crate) unsafe fn gemm_rows_then(
    gemm: GemmFn,
    p: &GemmParams,
    rows: Range<usize>,
    post: &mut dyn FnMut(usize, &mut [f32]),
) {
    assert!(rows.end <= p.m, "rows {rows:?} outside 0..{}", p.m);
    if p.n == 0 {
        return;
    }
    // Rows per block: the GEMM streams every weight panel once per row block, so a block
    // is no shorter than the GEMM's own row block `MC`, which `Blocking` derives from L2:
    // 256 rows at a full `KC` block on every L2 size, 341 for BERT's k = 768 on a 1 or
    // 2 MiB L2 (`blocking.rs`). 512 rows is one or two of those. A shorter block (it
    // used to be half of L2, 85 rows at n = 768) streamed BERT's weights twice for 128
    // tokens, the second time for a 43-row remainder. LayerNorm then re-reads the
    // block's `C` rows from L2 or L3: one pass over `rows × n` floats, under 1 % of the
    // GEMM's time.
    let block = LN_BLOCK_ROWS;
    let mut r0 = rows.start;
    while r0 < rows.end {
        let r1 = (r0 + block).min(rows.end);
        let view = p.view_rows(r0..r1);
        // SAFETY: forwarded contract; the view covers rows r0..r1 of this call only.
        unsafe { gemm(&view, 0..view.panels()) };
        for i in r0..r1 {
            // SAFETY: GemmParams::new proved `(m-1)*ldc + n` floats behind `c` and
            // i < m; this call owns row i (contract) and the GEMM above has finished.
            let row = unsafe { std::slice::from_raw_parts_mut(p.c.add(i * p.ldc), p.n) };
            post(i, row);
        }
        r0 = r1;
    }
}
