//! Keep decisions: from the importance scores of one sequence's alive tokens to the set
//! of tokens that survive a keep-rule. Pure functions over small slices, so the
//! semantics can be tested exhaustively (see `docs/PRUNING.md`).
//!
//! Conventions shared by every rule:
//! * row 0 of a sequence is [CLS] (or `<s>`); it is always kept and never ranked;
//! * the kept tokens keep their original relative order;
//! * ranking is by descending score, ties broken by ascending original position, so
//!   decisions are deterministic.

use toprt_format::KeepRule;

/// The ToP rank→bin map, in float32 exactly as the reference computes it:
/// `t = f32(r) / (f32(eff) + 1e-6f32)`, clamped to [0, 1], `bin = trunc(t · f32(bin_num))`.
///
/// For `eff <= 31`, `f32(eff) + 1e-6 != f32(eff)`, so ranks exactly on a bin boundary land
/// one bin lower than integer arithmetic would put them; this function keeps that.
#[inline]
pub fn top_bin(rank: usize, eff: usize, bin_num: usize) -> usize {
    let denom = eff as f32 + 1e-6f32;
    let t = (rank as f32 / denom).clamp(0.0, 1.0);
    (t * bin_num as f32) as usize
}

/// How a rule's decision is scaled at run time: `keep_scale` > 1 keeps more tokens,
/// < 1 fewer, 1 = as trained. See [`decide`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PruneControl {
    /// Apply keep-rules at all (false = dense).
    pub enabled: bool,
    /// The accuracy/latency dial. ToP bins: the kept count is scaled and filled up (or
    /// trimmed) in rank order; threshold: `theta / keep_scale`; top-k: `k · keep_scale`.
    pub keep_scale: f32,
}

impl Default for PruneControl {
    fn default() -> Self {
        PruneControl { enabled: true, keep_scale: 1.0 }
    }
}

impl PruneControl {
    /// Pruning disabled.
    pub const DENSE: PruneControl = PruneControl { enabled: false, keep_scale: 1.0 };

    /// # Errors
    /// A non-finite or non-positive scale.
    pub fn validate(&self) -> Result<(), String> {
        if self.keep_scale.is_finite() && self.keep_scale > 0.0 {
            Ok(())
        } else {
            Err(format!("keep_scale must be a positive finite number, got {}", self.keep_scale))
        }
    }
}

/// Decides which tokens of one sequence survive `rule`.
///
/// * `scores[j]`: importance of alive token `j` (row `j` of the sequence, row 0 = CLS);
/// * `positions[j]`: its original position (ties are broken by it);
/// * `num_heads`: for the threshold rule's normaliser;
/// * `order`: scratch of at least `scores.len()` entries;
/// * `keep[j]` is written for every row (row 0 always `true`).
///
/// Returns the number of kept rows. Allocation-free.
pub fn decide(
    rule: &KeepRule,
    ctl: PruneControl,
    scores: &[f32],
    positions: &[u32],
    num_heads: usize,
    order: &mut [u32],
    keep: &mut [bool],
) -> usize {
    let n = scores.len();
    debug_assert!(positions.len() == n && keep.len() >= n && order.len() >= n);
    if n == 0 {
        return 0;
    }
    keep[..n].fill(true);
    if !ctl.enabled || n == 1 {
        return n;
    }
    let eff = n - 1;
    // Rank the non-CLS rows: descending score, then ascending original position.
    let ranked = &mut order[..eff];
    for (i, o) in ranked.iter_mut().enumerate() {
        *o = (i + 1) as u32;
    }
    let by_rank = |a: &u32, b: &u32| {
        let (a, b) = (*a as usize, *b as usize);
        scores[b].total_cmp(&scores[a]).then(positions[a].cmp(&positions[b]))
    };
    let kept = match rule {
        KeepRule::None => return n,
        KeepRule::TopBins { gate: false, .. } => return n,
        KeepRule::TopBins { token_z, gate: true } => {
            ranked.sort_unstable_by(by_rank);
            let bins = token_z.len();
            let mut kept = 0;
            for (r, &row) in ranked.iter().enumerate() {
                let b = top_bin(r, eff, bins);
                let k = b < bins && token_z[b] != 0.0;
                keep[row as usize] = k;
                kept += k as usize;
            }
            if ctl.keep_scale != 1.0 {
                // The dial: scale the trained count, then fill up / trim in rank order.
                let target = ((kept as f32 * ctl.keep_scale).round() as usize).min(eff);
                adjust_in_rank_order(ranked, keep, kept, target);
                target
            } else {
                kept
            }
        }
        KeepRule::Threshold { theta, l_ref } => {
            let norm = (num_heads * l_ref) as f32;
            let cut = (theta / ctl.keep_scale).max(1e-5);
            let mut kept = 0;
            for j in 1..n {
                let k = scores[j] / norm >= cut;
                keep[j] = k;
                kept += k as usize;
            }
            kept
        }
        KeepRule::TopK { count, ratio } => {
            let k_total = match (count, ratio) {
                (Some(c), _) => *c as f32,
                (None, Some(r)) => (r * n as f32).ceil(),
                (None, None) => n as f32,
            };
            let k_total = (k_total * ctl.keep_scale).round().max(1.0) as usize;
            let others = k_total.saturating_sub(1).min(eff);
            ranked.sort_unstable_by(by_rank);
            for (r, &row) in ranked.iter().enumerate() {
                keep[row as usize] = r < others;
            }
            others
        }
    };
    kept + 1
}

/// Keeps exactly `target` of the ranked rows: adds the best-ranked dropped rows, or drops
/// the worst-ranked kept rows.
fn adjust_in_rank_order(ranked: &[u32], keep: &mut [bool], mut kept: usize, target: usize) {
    if target > kept {
        for &row in ranked {
            if kept == target {
                break;
            }
            if !keep[row as usize] {
                keep[row as usize] = true;
                kept += 1;
            }
        }
    } else {
        for &row in ranked.iter().rev() {
            if kept == target {
                break;
            }
            if keep[row as usize] {
                keep[row as usize] = false;
                kept -= 1;
            }
        }
    }
}

/// How many tokens a ToP rank-bin rule keeps (CLS included) for `n` alive tokens; it
/// depends only on `n`, so schedules can be costed without data.
pub fn top_bins_kept(token_z: &[f32], n: usize) -> usize {
    if n <= 1 {
        return n;
    }
    let eff = n - 1;
    1 + (0..eff)
        .filter(|&r| {
            let b = top_bin(r, eff, token_z.len());
            b < token_z.len() && token_z[b] != 0.0
        })
        .count()
}

/// Tokens kept (CLS included) for `n` alive tokens when the rule's count does not depend
/// on the data; `None` for data-dependent rules (thresholds).
pub fn kept_count(rule: &KeepRule, n: usize) -> Option<usize> {
    match rule {
        KeepRule::None | KeepRule::TopBins { gate: false, .. } => Some(n),
        KeepRule::TopBins { token_z, gate: true } => Some(top_bins_kept(token_z, n)),
        KeepRule::Threshold { .. } => None,
        KeepRule::TopK { count, ratio } => {
            if n <= 1 {
                return Some(n);
            }
            let k = match (count, ratio) {
                (Some(c), _) => *c,
                (None, Some(r)) => (r * n as f32).ceil() as usize,
                (None, None) => n,
            };
            Some(1 + k.saturating_sub(1).min(n - 1))
        }
    }
}

/// Multiply-accumulates of one encoder layer (PRUNING.md FLOPs model): attention over
/// `n` tokens, FFN over `m` tokens.
pub fn layer_macs(n: f64, m: f64, d: f64, d_ff: f64, heads: f64) -> f64 {
    4.0 * n * d * d + 2.0 * n * n * d + heads * n * n + 2.0 * m * d * d_ff
}

/// Per-layer `(attention length, FFN length)` of one sequence of `n` tokens under the
/// model's keep-rules, when they do not depend on the data; `None` otherwise. With
/// `first_token_only` (outputs that read only the first token's state,
/// [`crate::Outputs::first_token_only`]) the last layer's FFN runs on that token alone.
pub fn schedule_lengths(m: &toprt_format::Manifest, n: usize, first_token_only: bool) -> Option<Vec<(usize, usize)>> {
    let layers = m.model.num_layers;
    let mut out = Vec::with_capacity(layers);
    let mut alive = n;
    for l in 0..layers {
        let attn = alive;
        if let Some(r) = m.keep_rules.iter().find(|r| r.layer == l + 1) {
            alive = kept_count(&r.rule, alive)?;
        }
        out.push((attn, alive));
    }
    if let (true, Some(last)) = (first_token_only, out.last_mut()) {
        last.1 = last.1.min(1);
    }
    Some(out)
}

/// MACs of a whole encoder pass over per-layer `(attention, FFN)` lengths.
pub fn encoder_macs(m: &toprt_format::Manifest, lengths: &[(usize, usize)]) -> f64 {
    let c = &m.model;
    lengths
        .iter()
        .map(|&(n, f)| layer_macs(n as f64, f as f64, c.hidden_size as f64, c.ffn_mac_width(), c.num_heads as f64))
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(rule: &KeepRule, scores: &[f32]) -> Vec<bool> {
        let n = scores.len();
        let pos: Vec<u32> = (0..n as u32).collect();
        let mut order = vec![0; n];
        let mut keep = vec![false; n];
        let k = decide(rule, PruneControl::default(), scores, &pos, 12, &mut order, &mut keep);
        assert_eq!(k, keep.iter().filter(|&&b| b).count());
        keep
    }

    /// The bin map against an independent float32 computation (each f32 operation
    /// emulated in f64 and rounded once, which is exact for division and product of f32
    /// values), for every `eff` in 1..=512 and rank `r < eff`; and the number of pairs
    /// where integer arithmetic would be wrong equals the counts in the ToP specification.
    #[test]
    fn bin_map_exhaustive_against_float32() {
        let spec_integer_mismatches =
            [(20, Some(73)), (25, Some(41)), (30, None), (50, Some(68)), (100, Some(100)), (150, Some(174))];
        for (bins, want_mismatch) in spec_integer_mismatches {
            let mut mismatches = 0;
            for eff in 1..=512usize {
                let denom = (eff as f32 + 1e-6f32) as f64;
                for r in 0..eff {
                    let t = (((r as f64) / denom) as f32).clamp(0.0, 1.0);
                    let want = ((t as f64 * bins as f64) as f32) as usize;
                    let got = top_bin(r, eff, bins);
                    assert_eq!(got, want, "bin(r={r}, eff={eff}, bin_num={bins})");
                    mismatches += (got != r * bins / eff) as usize;
                }
            }
            if let Some(w) = want_mismatch {
                assert_eq!(mismatches, w, "bin_num {bins}: float32 vs integer disagreements");
            }
        }
    }

    #[test]
    fn bin_boundary_follows_float32() {
        // eff = 5, r = 1, bin_num = 50: exact arithmetic gives 10, float32 gives 9.
        assert_eq!(top_bin(1, 5, 50), 9);
        assert_eq!(top_bin(0, 5, 50), 0);
        // eff >= 32: eff + 1e-6 == eff, boundaries are exact.
        assert_eq!(top_bin(16, 32, 50), 25);
    }

    #[test]
    fn top_bins_non_monotone_mask_and_cls() {
        // eff = 4, bin_num = 4: rank r -> bin r (r/4 * 4 in f32 with +1e-6: 0, 0.999.., ...).
        let z = vec![1.0, 0.0, 1.0, 0.0];
        let rule = KeepRule::TopBins { token_z: z.clone(), gate: true };
        // Scores: CLS huge (ignored), rows 1..4 ranked 4 > 3 > 2 > 1 -> rows 4,3,2,1.
        let keep = run(&rule, &[100.0, 1.0, 2.0, 3.0, 4.0]);
        let bins: Vec<usize> = (0..4).map(|r| top_bin(r, 4, 4)).collect();
        let want: Vec<bool> = std::iter::once(true).chain((1..5).map(|row| z[bins[4 - row]] != 0.0)).collect();
        assert_eq!(keep, want);
        assert!(keep[0]);
        // Gate off: nothing pruned.
        assert!(run(&KeepRule::TopBins { token_z: z, gate: false }, &[1.0, 2.0, 3.0]).iter().all(|&k| k));
    }

    #[test]
    fn ties_break_by_position() {
        let rule = KeepRule::TopK { count: Some(3), ratio: None };
        let keep = run(&rule, &[0.0, 1.0, 1.0, 1.0, 1.0]);
        assert_eq!(keep, vec![true, true, true, false, false]);
    }

    #[test]
    fn everything_but_cls() {
        let rule = KeepRule::TopBins { token_z: vec![0.0; 25], gate: true };
        assert_eq!(run(&rule, &[1.0, 5.0, 4.0]), vec![true, false, false]);
        assert_eq!(run(&rule, &[1.0]), vec![true]);
        let rule = KeepRule::Threshold { theta: 1e9, l_ref: 128 };
        assert_eq!(run(&rule, &[0.0, 5.0, 4.0]), vec![true, false, false]);
    }

    #[test]
    fn threshold_normaliser() {
        // s / (12 * 128) >= 0.01  <=>  s >= 15.36
        let rule = KeepRule::Threshold { theta: 0.01, l_ref: 128 };
        assert_eq!(run(&rule, &[0.0, 15.0, 15.5, 20.0]), vec![true, false, true, true]);
    }

    #[test]
    fn keep_scale_dial() {
        let n = 11;
        let scores: Vec<f32> = (0..n).map(|i| i as f32).collect();
        let pos: Vec<u32> = (0..n as u32).collect();
        let mut order = vec![0; n];
        let mut keep = vec![false; n];
        let rule = KeepRule::TopBins { token_z: vec![1.0, 0.0, 1.0, 0.0, 1.0], gate: true };
        let base = decide(&rule, PruneControl::default(), &scores, &pos, 12, &mut order, &mut keep);
        let more =
            decide(&rule, PruneControl { enabled: true, keep_scale: 1.5 }, &scores, &pos, 12, &mut order, &mut keep);
        let less =
            decide(&rule, PruneControl { enabled: true, keep_scale: 0.5 }, &scores, &pos, 12, &mut order, &mut keep);
        assert!(less < base && base < more, "{less} {base} {more}");
        let dense = decide(&rule, PruneControl::DENSE, &scores, &pos, 12, &mut order, &mut keep);
        assert_eq!(dense, n);
    }
}
