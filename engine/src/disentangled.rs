//! DeBERTa's disentangled attention terms (`toprt_format::Disentangled`): for query `i`
//! and key `j` of a head, with `r = idx(pos_i - pos_j)` the position-table row of their
//! distance (original positions, so it holds after pruning and packing),
//!
//! `score(i, j) += q_i · pos_key[r] + k_j · pos_query[r]`.
//!
//! Per (sequence, head) both are two GEMMs on the session's microkernels over only the
//! table rows the sequence's distances reach: `C2P = Q · pos_keyᵀ` (`[n, rows]`) and
//! `P2C = K · pos_queryᵀ` (`[n, rows]`), then every score gathers its two terms. The
//! tables are packed per head at open as the `[dh, 2·span]` operand. For n = 128 and
//! a span of 256 that is 255 rows: the two products cost about twice `Q·kᵀ`, a few
//! percent of a BERT-base-sized layer.

use crate::error::{Error, Result};
use toprt_format::Disentangled;
use toprt_kernels::gemm::{Epilogue, GemmParams};
use toprt_kernels::pack::{self, NR};
use toprt_kernels::Kernels;

/// The position tables of every layer, packed per head, and the table row of every
/// distance a sequence can have.
pub(crate) struct RelTables {
    cfg: Disentangled,
    dh: usize,
    /// `index[delta + max_len - 1] = cfg.index(delta)` for `|delta| < max_len`.
    index: Vec<u32>,
    max_len: usize,
    /// Per layer: per head, `pos_key` packed as the `[dh, 2·span]` operand (c2p).
    keys: Vec<Vec<f32>>,
    /// Per layer: the same of `pos_query` (p2c).
    queries: Vec<Vec<f32>>,
}

impl RelTables {
    /// Packs each layer's row-major `[2·span, d]` tables (`keys[l]`, `queries[l]`, each
    /// present iff its term is on).
    ///
    /// # Errors
    /// A table holding a non-finite value.
    pub fn new(
        cfg: Disentangled,
        nh: usize,
        dh: usize,
        max_len: usize,
        keys: &[Option<&[f32]>],
        queries: &[Option<&[f32]>],
    ) -> Result<RelTables> {
        let rows = 2 * cfg.span;
        let d = nh * dh;
        let per_head = pack::packed_len(dh, rows);
        let pack_layer = |t: &Option<&[f32]>, what: &str, l: usize| -> Result<Vec<f32>> {
            let Some(t) = t else { return Ok(Vec::new()) };
            debug_assert_eq!(t.len(), rows * d);
            if t.iter().any(|x| !x.is_finite()) {
                return Err(Error::Format(format!(
                    "tensor 'encoder.layer.{l}.attention.self.{what}' holds a non-finite value"
                )));
            }
            let mut out = vec![0.0f32; nh * per_head];
            for (h, head) in out.chunks_exact_mut(per_head).enumerate() {
                for (r, row) in t.chunks_exact(d).enumerate() {
                    let panel = &mut head[(r / NR) * dh * NR..(r / NR + 1) * dh * NR];
                    for (e, &x) in row[h * dh..(h + 1) * dh].iter().enumerate() {
                        panel[e * NR + r % NR] = x;
                    }
                }
            }
            Ok(out)
        };
        let keys = keys.iter().enumerate().map(|(l, t)| pack_layer(t, "pos_key", l)).collect::<Result<_>>()?;
        let queries = queries.iter().enumerate().map(|(l, t)| pack_layer(t, "pos_query", l)).collect::<Result<_>>()?;
        let max_len = max_len.max(1);
        let index = (-(max_len as i64 - 1)..max_len as i64).map(|delta| cfg.index(delta) as u32).collect();
        Ok(RelTables { cfg, dh, index, max_len, keys, queries })
    }

    /// Table rows a sequence may need: the width of the `C2P` and `P2C` blocks.
    pub fn rows(&self) -> usize {
        2 * self.cfg.span
    }

    /// Scratch floats for a sequence of up to `max_len` tokens with `rows` table rows.
    pub fn scratch_len(max_len: usize, rows: usize) -> usize {
        2 * (max_len * rows).next_multiple_of(16)
    }

    /// The table row of distance `delta`.
    fn index(&self, delta: i64) -> usize {
        match usize::try_from(delta + self.max_len as i64 - 1) {
            Ok(i) if i < self.index.len() => self.index[i] as usize,
            _ => self.cfg.index(delta),
        }
    }

    /// Head `h` of layer `layer`, over a segment's original `positions`.
    pub fn head<'a>(&'a self, layer: usize, h: usize, positions: &'a [u32]) -> HeadRel<'a> {
        let per_head = pack::packed_len(self.dh, self.rows());
        let slice = |v: &'a Vec<Vec<f32>>| {
            let t = &v[layer];
            (!t.is_empty()).then(|| &t[h * per_head..(h + 1) * per_head])
        };
        HeadRel { tables: self, keys: slice(&self.keys), queries: slice(&self.queries), positions }
    }
}

/// The position tables of one (layer, head) and a segment's positions.
#[derive(Clone, Copy)]
pub(crate) struct HeadRel<'a> {
    tables: &'a RelTables,
    keys: Option<&'a [f32]>,
    queries: Option<&'a [f32]>,
    positions: &'a [u32],
}

/// The two terms of one (sequence, head), computed.
pub(crate) struct Terms<'a> {
    rel: HeadRel<'a>,
    c2p: Option<&'a [f32]>,
    p2c: Option<&'a [f32]>,
    /// First table row computed, and the row count.
    lo: usize,
    cols: usize,
}

impl<'a> HeadRel<'a> {
    /// Rows of the tables (see [`RelTables::rows`]).
    pub fn rows(&self) -> usize {
        self.tables.rows()
    }

    /// Computes `C2P = Q · pos_keyᵀ` and `P2C = K · pos_queryᵀ` over the table rows the
    /// segment reaches, into `buf` (at least `RelTables::scratch_len(n, rows)`). `q`
    /// and `k` are the segment's first query and key values, rows `ld` apart.
    pub fn terms<'b>(&self, k: &Kernels, q: &[f32], kx: &[f32], ld: usize, buf: &'b mut [f32]) -> Terms<'b>
    where
        'a: 'b,
    {
        let (n, dh) = (self.positions.len(), self.tables.dh);
        let reach = i64::from(self.positions[n - 1] - self.positions[0]);
        let lo = self.tables.index(-reach) / NR * NR;
        let cols = self.tables.index(reach) + 1 - lo;
        let (c2p, rest) = buf.split_at_mut((n * cols).next_multiple_of(16));
        let p2c = &mut rest[..n * cols];
        let c2p = &mut c2p[..n * cols];
        let product = |a: &[f32], table: &[f32], c: &mut [f32]| {
            let b = &table[lo * dh..lo * dh + pack::packed_len(dh, cols)];
            let mut p = GemmParams::new(a, ld, n, dh, b, cols, c, cols, Epilogue::None).expect("position term shapes");
            k.gemm(&mut p);
        };
        let c2p = self.keys.map(|t| {
            product(q, t, c2p);
            &*c2p
        });
        let p2c = self.queries.map(|t| {
            product(kx, t, p2c);
            &*p2c
        });
        Terms { rel: *self, c2p, p2c, lo, cols }
    }
}

impl Terms<'_> {
    /// Adds both terms to query row `i`'s scores, those of keys `from..`.
    pub fn add(&self, i: usize, scores: &mut [f32], from: usize) {
        let pos = self.rel.positions;
        let pi = i64::from(pos[i]);
        let c2p = self.c2p.map(|c| &c[i * self.cols..(i + 1) * self.cols]);
        for (j, s) in (from..).zip(scores.iter_mut()) {
            let r = self.rel.tables.index(pi - i64::from(pos[j])) - self.lo;
            let a = c2p.map_or(0.0, |c| c[r]);
            let b = self.p2c.map_or(0.0, |p| p[j * self.cols + r]);
            *s += a + b;
        }
    }
}
