//! Pruning in the packed buffer: score the alive rows, decide every sequence's kept set
//! with its keep-rule (`prune::decide`), then remove the dropped rows in place, in
//! order, updating the segment table and the original positions. Every later GEMM and
//! attention then runs on fewer rows; no padding or mask is ever made.
//!
//! When token outputs are needed, a dropped token's output is its state entering the
//! prune location: [`scatter_final`] writes those rows at their original positions.

use crate::prune::{self, PruneControl};
use crate::workspace::{KeptEntry, Segment, Workspace};
use toprt_format::KeepRule;

/// Whether a rule's decision reads the importance scores.
pub(crate) fn needs_scores(rule: &KeepRule, ctl: PruneControl) -> bool {
    match rule {
        KeepRule::None | KeepRule::TopBins { gate: false, .. } => false,
        KeepRule::TopBins { .. } => rule.is_active() || ctl.keep_scale != 1.0,
        KeepRule::Threshold { .. } | KeepRule::TopK { .. } => true,
    }
}

/// Scores the alive rows, decides every sequence's keep set for `location`, records the
/// kept original positions; returns whether any row is dropped.
pub(crate) fn decide(
    ws: &mut Workspace,
    rule: &KeepRule,
    ctl: PruneControl,
    nh: usize,
    t: usize,
    location: usize,
    scored: bool,
) -> bool {
    if scored {
        // importance[r] = Σ_h colsum[h, r]   (heads in a fixed order)
        let mt = ws.max_tokens;
        for r in 0..t {
            let mut s = 0.0f32;
            for h in 0..nh {
                s += ws.colsum[h * mt + r];
            }
            ws.importance[r] = s;
        }
    } else {
        ws.importance[..t].fill(0.0);
    }
    let mut kept_total = 0;
    for (si, seg) in ws.segments.iter().enumerate() {
        let rows = seg.offset..seg.offset + seg.len;
        kept_total += prune::decide(
            rule,
            ctl,
            &ws.importance[rows.clone()],
            &ws.positions[rows.clone()],
            nh,
            &mut ws.order[rows.clone()],
            &mut ws.keep[rows.clone()],
        );
        let start = ws.kept.len();
        for r in rows {
            if ws.keep[r] {
                ws.kept.push(ws.positions[r]);
            }
        }
        ws.kept_index.push(KeptEntry {
            seq: si as u32,
            layer: location as u32,
            start: start as u32,
            len: (ws.kept.len() - start) as u32,
        });
    }
    kept_total < t
}

/// Marks the first row of every sequence kept and the others dropped (no kept set is
/// recorded: this is not a prune location); returns whether any row is dropped.
pub(crate) fn keep_first_only(ws: &mut Workspace, t: usize) -> bool {
    ws.keep[..t].fill(false);
    for seg in &ws.segments {
        if seg.len > 0 {
            ws.keep[seg.offset] = true;
        }
    }
    ws.segments.iter().any(|s| s.len > 1)
}

#[derive(Clone, Copy)]
pub(crate) enum Buf {
    Ctx,
    Hidden,
    /// int8 sessions: the quantised copy of `hidden` (`qa`), when it feeds the next
    /// layer's int8 QKV.
    HiddenQuantized,
    /// Pre-norm models: the next linear's normalised input rows.
    Normed,
}

/// Removes the rows with `keep == false` from the named buffers, from `positions`, and
/// from the segment table, in place and in order. Returns the new row count.
pub(crate) fn compact_rows(ws: &mut Workspace, t: usize, bufs: &mut [Buf], d: usize) -> usize {
    let mut w = 0;
    for r in 0..t {
        if !ws.keep[r] {
            continue;
        }
        if w != r {
            for b in bufs.iter() {
                match b {
                    Buf::Ctx => ws.ctx.copy_within(r * d..r * d + d, w * d),
                    Buf::Hidden => ws.hidden.copy_within(r * d..r * d + d, w * d),
                    Buf::Normed => ws.normed.copy_within(r * d..r * d + d, w * d),
                    Buf::HiddenQuantized => {
                        let s = ws.q_stride;
                        ws.qa.copy_within(r * s..(r + 1) * s, w * s);
                        ws.qa_scale[w] = ws.qa_scale[r];
                        let x = ws.x_stride;
                        ws.xa.copy_within(r * x..(r + 1) * x, w * x);
                    }
                }
            }
            ws.positions[w] = ws.positions[r];
        }
        w += 1;
    }
    let mut offset = 0;
    for seg in ws.segments.iter_mut() {
        let kept = ws.keep[seg.offset..seg.offset + seg.len].iter().filter(|&&k| k).count();
        *seg = Segment { offset, len: kept };
        offset += kept;
    }
    ws.keep[..t].fill(true);
    w
}

/// Work done on one row in place.
pub(crate) type RowOp<'a> = dyn Fn(&mut [f32]) + 'a;

/// Copies rows of `hidden` to their original rows of `final_states`: only the rows being
/// dropped (`dropped_only`), or every alive row (end of the pass); `finish` then runs
/// on each copied row (pre-norm models: the final norm).
pub(crate) fn scatter_final(ws: &mut Workspace, t: usize, d: usize, dropped_only: bool, finish: Option<&RowOp>) {
    for (seg, orig) in ws.segments.iter().zip(&ws.orig_segments) {
        for r in seg.offset..seg.offset + seg.len {
            if dropped_only && ws.keep[r] {
                continue;
            }
            let dst = (orig.offset + ws.positions[r] as usize) * d;
            ws.final_states[dst..dst + d].copy_from_slice(&ws.hidden[r * d..r * d + d]);
            if let Some(f) = finish {
                f(&mut ws.final_states[dst..dst + d]);
            }
        }
    }
    debug_assert!(t <= ws.max_tokens);
}
