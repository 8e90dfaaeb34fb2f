//! Pieces of the slow masking references of the pruning tests (`tests/tests/pruning*.rs`),
//! written from the spec (docs/PRUNING.md) in f64: the keep decision of each rule, and
//! erf for the exact GELU.

use toprt_format::{KeepRule, LayerKeepRule};

/// erf by its Maclaurin series (|x| < 5; beyond, ±1 to 1e-12).
pub fn erf(x: f64) -> f64 {
    if x.is_nan() {
        return x;
    }
    if x.abs() >= 5.0 {
        return x.signum();
    }
    let (mut term, mut sum, mut n) = (x, x, 0.0);
    loop {
        n += 1.0;
        term *= -x * x / n;
        let add = term / (2.0 * n + 1.0);
        sum += add;
        if add.abs() < 1e-17 {
            break;
        }
    }
    sum * 2.0 / std::f64::consts::PI.sqrt()
}

/// The ToP bin of rank `r` among `eff`, float32 arithmetic emulated exactly in f64
/// (division and product of f32 values, each rounded once to f32).
pub fn ref_bin(r: usize, eff: usize, bins: usize) -> usize {
    let denom = (eff as f32 + 1e-6f32) as f64;
    let t = ((r as f64) / denom) as f32;
    let t = t.clamp(0.0, 1.0);
    ((t as f64 * bins as f64) as f32) as usize
}

/// Keep decision of the reference: `cand` = (position, score) of the alive non-CLS tokens.
pub fn ref_decide(rule: &KeepRule, cand: &[(usize, f64)], heads: usize) -> Vec<usize> {
    let mut ranked = cand.to_vec();
    ranked.sort_by(|a, b| b.1.partial_cmp(&a.1).unwrap().then(a.0.cmp(&b.0)));
    let eff = ranked.len();
    let mut keep: Vec<usize> = match rule {
        KeepRule::None | KeepRule::TopBins { gate: false, .. } => ranked.iter().map(|c| c.0).collect(),
        KeepRule::TopBins { token_z, .. } => ranked
            .iter()
            .enumerate()
            .filter(|(r, _)| {
                let b = ref_bin(*r, eff, token_z.len());
                b < token_z.len() && token_z[b] != 0.0
            })
            .map(|(_, c)| c.0)
            .collect(),
        KeepRule::Threshold { theta, l_ref } => {
            let cut = (*theta as f64).max(1e-5);
            ranked.iter().filter(|c| c.1 / (heads * l_ref) as f64 >= cut).map(|c| c.0).collect()
        }
        KeepRule::TopK { count, ratio } => {
            let k = count.unwrap_or_else(|| (ratio.unwrap() as f64 * (eff + 1) as f64).ceil() as usize);
            ranked.iter().take(k.saturating_sub(1)).map(|c| c.0).collect()
        }
    };
    keep.push(0);
    keep.sort_unstable();
    keep
}

/// Largest absolute difference relative to the largest reference magnitude.
pub fn rel_err(a: &[f32], b: &[f64]) -> f64 {
    let scale = b.iter().map(|x| x.abs()).fold(0.0, f64::max).max(1e-6);
    a.iter().zip(b).map(|(x, y)| (*x as f64 - y).abs()).fold(0.0, f64::max) / scale
}

/// The keep decision at `location`, if a rule is there: the alive non-CLS tokens scored by
/// `colsum`, the kept set recorded in `kept`; returns the tokens it drops.
pub fn ref_prune(
    rules: &[LayerKeepRule],
    location: usize,
    colsum: &[f64],
    alive: &[bool],
    heads: usize,
    kept: &mut Vec<(usize, Vec<u32>)>,
) -> Vec<usize> {
    let Some(r) = rules.iter().find(|r| r.layer == location) else { return Vec::new() };
    let n = alive.len();
    let cand: Vec<(usize, f64)> = (1..n).filter(|&j| alive[j]).map(|j| (j, colsum[j])).collect();
    let keep = ref_decide(&r.rule, &cand, heads);
    kept.push((location, keep.iter().map(|&x| x as u32).collect()));
    (0..n).filter(|j| alive[*j] && !keep.contains(j)).collect()
}
