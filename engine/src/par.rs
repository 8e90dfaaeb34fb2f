//! Work splitting on the session's pool: every split of the forward pass goes through
//! [`toprt_kernels::split::chunks`] (balanced contiguous pieces, the larger first), so
//! no two splits drift apart. Each split is exact: a GEMM output element is one
//! accumulation chain whatever panels or rows a thread gets, and the row operations
//! (LayerNorm, GELU, conversions) are per row, so the thread count never changes a bit.

use crate::pool::Pool;
use std::ops::Range;
use toprt_kernels::gemm::GemmParams;
use toprt_kernels::split;
use toprt_kernels::Kernels;

/// A raw pointer that may be shared by tasks that write disjoint parts of one buffer.
pub(crate) struct SharedMut<T>(*mut T);

impl<T> SharedMut<T> {
    pub fn new(p: *mut T) -> SharedMut<T> {
        SharedMut(p)
    }

    /// The pointer (a method, so closures capture the `Sync` wrapper, not the field).
    pub fn get(&self) -> *mut T {
        self.0
    }
}

impl<T> Clone for SharedMut<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for SharedMut<T> {}
// SAFETY: every user writes a region no other task of the same `Pool::run` touches.
unsafe impl<T> Send for SharedMut<T> {}
// SAFETY: as above.
unsafe impl<T> Sync for SharedMut<T> {}

/// Runs `f` on `parts` balanced pieces of `0..len` (fewer if `len` is smaller), one pool
/// task each.
pub(crate) fn chunks(pool: &Pool, len: usize, parts: usize, f: &(dyn Fn(Range<usize>) + Sync)) {
    let n = split::chunks(len, parts.max(1)).len();
    pool.run(n, &|t, _| f(split::balanced(len, n, t)));
}

/// Applies `f(row index, row)` to each of the first `rows` rows (width `w`) of `buf`,
/// one piece of rows per thread.
pub(crate) fn rows(pool: &Pool, buf: &mut [f32], rows: usize, w: usize, f: &(dyn Fn(usize, &mut [f32]) + Sync)) {
    assert!(buf.len() >= rows * w);
    let ptr = SharedMut::new(buf.as_mut_ptr());
    chunks(pool, rows, pool.threads(), &|piece| {
        for r in piece {
            // SAFETY: row r lies inside buf (asserted above) and belongs to this piece only.
            let row = unsafe { std::slice::from_raw_parts_mut(ptr.get().add(r * w), w) };
            f(r, row);
        }
    });
}

/// Panel pieces per thread of a split GEMM. The caller starts its first piece before a
/// worker has seen the job, so with two pieces per thread the worker's last one ends
/// late and the caller waits (4% of a 2-thread pass spent in `Pool::run`, perf);
/// smaller last pieces even it out. 4 per thread ran BERT-base 1 × 128 on 2 threads
/// 3–4% faster than 2, interleaved in one process; 6 was no better than 4.
const PANEL_PIECES_PER_THREAD: usize = 4;

/// Runs a validated GEMM, split by column panels across the pool.
pub(crate) fn gemm(k: &Kernels, pool: &Pool, p: &mut GemmParams) {
    let panels = p.panels();
    let threads = pool.threads();
    // Fork only when each thread gets real work.
    if threads == 1 || panels < 2 || p.m() * panels < 16 {
        k.gemm(p);
        return;
    }
    let p: &GemmParams = p;
    chunks(pool, panels, threads * PANEL_PIECES_PER_THREAD, &|piece| {
        // SAFETY: the pieces are disjoint panel ranges inside 0..panels, and `p` is
        // borrowed exclusively by this split.
        unsafe { k.gemm_panels(p, piece) };
    });
}

/// Rows per task below which splitting a GEMM by rows costs more than it saves: every
/// row task streams all the weights from memory once, where a split by panels streams
/// them once in all.
const MIN_ROWS_PER_TASK: usize = 256;

/// Whether a GEMM followed by a per-row operation over `m` rows (BERT's
/// `LN(A·W + b + residual)`, the int8 quantisation of a row) runs fused, split by rows,
/// each row block's operation right after its GEMM while it is in cache. Below
/// `threads × MIN_ROWS_PER_TASK` rows (BERT's 1 × 128 on 2 threads, every pruned layer)
/// splitting by panels reads each weight once, so the GEMM is split by panels and the
/// row operation runs after, split by rows. Both give bit-identical results.
pub(crate) fn fuse_rows(m: usize, threads: usize) -> bool {
    threads == 1 || m >= threads * MIN_ROWS_PER_TASK
}

/// The fused path: `C = A·W ⊕ epilogue`, then `post(i, row i)`, in row pieces across the
/// pool, each over all panels.
pub(crate) fn gemm_rows_then(k: &Kernels, pool: &Pool, p: &mut GemmParams, post: &(dyn Fn(usize, &mut [f32]) + Sync)) {
    let m = p.m();
    let tasks = pool.threads().min(m.div_ceil(MIN_ROWS_PER_TASK)).max(1);
    let p: &GemmParams = p;
    chunks(pool, m, tasks, &|piece| {
        // SAFETY: the pieces own disjoint row blocks of C, and `p` is borrowed exclusively
        // by this split.
        unsafe { k.gemm_rows_then(p, piece, &mut |i, row| post(i, row)) };
    });
}
