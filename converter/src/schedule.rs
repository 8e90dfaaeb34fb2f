//! Keep-rule schedules from the sources a user has: a ToP `zs.pt`, LTP thresholds inside
//! the state dict, or a manual `--keep-ratio` / `--keep-count` list.

use crate::checkpoint::{Tensor, TensorData};
use crate::error::{ConvertError, Result};
use std::path::Path;
use toprt_format::{KeepRule, LayerKeepRule};

/// ToP: `zs.pt` = `{token_z: [n_prune, bin_num], pruner_z: [n_prune]}` (any numeric
/// dtype; saved from CUDA tensors, the location is ignored). Prune locations are the last
/// `n_prune` layers, as ToP's evaluation derives them.
///
/// # Errors
/// Unreadable file, missing keys, bad shapes, or a schedule that would prune at layer 0.
pub fn from_zs(path: &Path, num_layers: usize) -> Result<Vec<LayerKeepRule>> {
    let err = |msg: String| ConvertError::Torch { path: path.to_path_buf(), msg };
    let bytes = std::fs::read(path).map_err(|source| {
        err(crate::checkpoint::torch::TorchError::Io { path: path.to_path_buf(), source }.to_string())
    })?;
    from_zs_bytes(&bytes, num_layers).map_err(err)
}

/// [`from_zs`] on the bytes of a `zs.pt` held in memory.
///
/// # Errors
/// A message saying what is wrong (the caller adds the file name).
///
/// The same two entries are also accepted as JSON, for schedules made without torch:
/// `{"token_z": [[f32; bin_num]; n_prune], "pruner_z": [f32; n_prune]}` (told apart by
/// the first non-blank byte: `{`; a torch file starts with a zip or pickle header).
pub fn from_zs_bytes(bytes: &[u8], num_layers: usize) -> Result<Vec<LayerKeepRule>, String> {
    let (z, gates, n, bins) = if bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{') {
        zs_json(bytes)?
    } else {
        let tensors = crate::checkpoint::torch::read_torch_state_dict_from_bytes(bytes).map_err(|e| e.to_string())?;
        let get = |name: &str| tensors.iter().find(|t| t.name == name).ok_or_else(|| format!("no '{name}' entry"));
        let tz = get("token_z")?;
        let pz = get("pruner_z")?;
        let [n, bins] = tz.shape[..] else {
            return Err(format!("token_z has shape {:?}, expected [n_prune, bin_num]", tz.shape));
        };
        if pz.shape != [n] {
            return Err(format!("pruner_z has shape {:?}, expected [{n}] to match token_z", pz.shape));
        }
        (tz.to_f32_vec().map_err(|e| e.to_string())?, pz.to_f32_vec().map_err(|e| e.to_string())?, n, bins)
    };
    if n == 0 || bins == 0 {
        return Err("empty token_z".into());
    }
    if n >= num_layers {
        return Err(format!(
            "{n} prune locations for a {num_layers}-layer model: ToP prunes the last n layers and layer 0 can never prune"
        ));
    }
    if z.iter().chain(&gates).any(|v| !v.is_finite()) {
        return Err("non-finite values in token_z or pruner_z".into());
    }
    let rules: Vec<LayerKeepRule> = (0..n)
        .map(|p| LayerKeepRule {
            layer: num_layers - n + p,
            rule: KeepRule::TopBins { token_z: z[p * bins..(p + 1) * bins].to_vec(), gate: gates[p] > 0.0 },
        })
        .collect();
    // Refuse here what the engine would refuse at open (e.g. too many bins), rather than
    // write a file that does not load.
    for r in &rules {
        r.rule.validate().map_err(|e| format!("token_z row for layer {}: {e}", r.layer))?;
    }
    Ok(rules)
}

/// The JSON form of a zs file: `(token_z flattened, pruner_z, n_prune, bin_num)`.
fn zs_json(bytes: &[u8]) -> Result<(Vec<f32>, Vec<f32>, usize, usize), String> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Zs {
        token_z: Vec<Vec<f32>>,
        pruner_z: Vec<f32>,
    }
    let zs: Zs = serde_json::from_slice(bytes).map_err(|e| format!("zs JSON: {e}"))?;
    let (n, bins) = (zs.token_z.len(), zs.token_z.first().map_or(0, Vec::len));
    if let Some((i, row)) = zs.token_z.iter().enumerate().find(|(_, r)| r.len() != bins) {
        return Err(format!("token_z row {i} has {} bins, row 0 has {bins}", row.len()));
    }
    if zs.pruner_z.len() != n {
        return Err(format!("pruner_z has {} entries, expected {n} to match token_z", zs.pruner_z.len()));
    }
    Ok((zs.token_z.concat(), zs.pruner_z, n, bins))
}

/// LTP: `θ_l = final_token_threshold · l / N + δ_l` with `δ_l` stored as
/// `encoder.layer.{l}.attention.self.pruner.keep_threshold`; the rule of layer `l` acts
/// from layer `l + 1` on. Returns the rules and the names of the tensors it consumed;
/// `None` when the checkpoint has no thresholds.
///
/// # Errors
/// Thresholds without `final_token_threshold` in config.json, or malformed tensors.
pub fn from_ltp(
    tensors: &[Tensor],
    config: &serde_json::Value,
    num_layers: usize,
    l_ref: usize,
) -> Result<Option<(Vec<LayerKeepRule>, Vec<String>)>> {
    let mut deltas = vec![None; num_layers];
    let mut used = Vec::new();
    for t in tensors {
        let Some(rest) = t.name.split("encoder.layer.").nth(1) else { continue };
        let Some((l, tail)) = rest.split_once('.') else { continue };
        if tail != "attention.self.pruner.keep_threshold" {
            continue;
        }
        let l: usize =
            l.parse().map_err(|_| ConvertError::BadTensor { name: t.name.clone(), msg: "bad layer index".into() })?;
        let v = match &t.data {
            TensorData::F32(v) if v.len() == 1 && v[0].is_finite() => v[0],
            _ => return Err(ConvertError::BadTensor { name: t.name.clone(), msg: "expected one finite float".into() }),
        };
        if l >= num_layers {
            return Err(ConvertError::BadTensor { name: t.name.clone(), msg: format!("layer {l} >= {num_layers}") });
        }
        deltas[l] = Some(v);
        used.push(t.name.clone());
    }
    if used.is_empty() {
        return Ok(None);
    }
    let fin = config.get("final_token_threshold").and_then(|v| v.as_f64()).ok_or_else(|| {
        ConvertError::Config("LTP keep_threshold tensors found but no \"final_token_threshold\"".into())
    })? as f32;
    if l_ref == 0 {
        return Err(ConvertError::Options("--ltp-ref-len must be at least 1".into()));
    }
    let mut rules = Vec::new();
    for (l, delta) in deltas.iter().enumerate().take(num_layers - 1) {
        let theta = fin * l as f32 / num_layers as f32 + delta.unwrap_or(0.0);
        // LTP leaves the mask untouched when the threshold is exactly 0.
        if theta != 0.0 {
            rules.push(LayerKeepRule { layer: l + 1, rule: KeepRule::Threshold { theta, l_ref } });
        }
    }
    Ok(Some((rules, used)))
}

/// A manual schedule: `values` has one entry per layer (entry `i` = the rule at location
/// `i`), or a single entry applied at `layers` (default: every layer from 1 on).
/// Ratios of 1 and counts of 0 mean "no rule here".
///
/// # Errors
/// Wrong list lengths, a rule at layer 0, out-of-range values.
pub fn manual(
    ratios: Option<&[f32]>,
    counts: Option<&[usize]>,
    layers: Option<&[usize]>,
    num_layers: usize,
) -> Result<Vec<LayerKeepRule>> {
    let bad = |m: String| ConvertError::Options(m);
    let n_vals = ratios.map(<[f32]>::len).or(counts.map(<[usize]>::len)).unwrap_or(0);
    let locations: Vec<usize> = match (n_vals, layers) {
        (0, _) => return Err(bad("--prune-layers needs --keep-ratio or --keep-count".into())),
        (1, Some(ls)) => ls.to_vec(),
        (1, None) => (1..num_layers).collect(),
        (n, None) if n == num_layers => (0..num_layers).collect(),
        (n, Some(ls)) if n == ls.len() => ls.to_vec(),
        (n, _) => {
            return Err(bad(format!(
                "{n} keep values: give one value, one per layer ({num_layers}), or one per --prune-layers entry"
            )))
        }
    };
    let mut rules = Vec::new();
    for (k, &loc) in locations.iter().enumerate() {
        let idx = if n_vals == 1 { 0 } else { k };
        let rule = match (ratios, counts) {
            (Some(r), _) => {
                let v = r[idx];
                if !(v > 0.0 && v <= 1.0) {
                    return Err(bad(format!("keep ratio {v} at layer {loc} is not in (0, 1]")));
                }
                (v < 1.0).then_some(KeepRule::TopK { count: None, ratio: Some(v) })
            }
            (None, Some(c)) => (c[idx] > 0).then_some(KeepRule::TopK { count: Some(c[idx]), ratio: None }),
            (None, None) => None,
        };
        let Some(rule) = rule else { continue };
        if loc == 0 || loc >= num_layers {
            return Err(bad(format!(
                "cannot prune at layer {loc}: locations are 1..{} (layer 0 has no scores yet)",
                num_layers - 1
            )));
        }
        if rules.iter().any(|r: &LayerKeepRule| r.layer == loc) {
            return Err(bad(format!("layer {loc} given twice")));
        }
        rules.push(LayerKeepRule { layer: loc, rule });
    }
    rules.sort_by_key(|r| r.layer);
    Ok(rules)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn top_best_zs() -> Vec<u8> {
        std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/top-best/zs.pt")).unwrap()
    }

    #[test]
    fn json_zs_gives_the_rules_of_the_torch_file() {
        let from_torch = from_zs_bytes(&top_best_zs(), 12).unwrap();
        let (rows, gates): (Vec<Vec<f32>>, Vec<f32>) = from_torch
            .iter()
            .map(|r| match &r.rule {
                KeepRule::TopBins { token_z, gate } => (token_z.clone(), if *gate { 1.0 } else { 0.0 }),
                other => panic!("unexpected rule {other:?}"),
            })
            .unzip();
        let json = serde_json::json!({ "token_z": rows, "pruner_z": gates }).to_string();
        let from_json = from_zs_bytes(format!("\n  {json}").as_bytes(), 12).unwrap();
        assert_eq!(from_json, from_torch);
    }

    #[test]
    fn json_zs_errors_name_the_problem() {
        for (json, want) in [
            (r#"{"token_z": [[1, 0], [1]], "pruner_z": [1, 1]}"#, "row 1 has 1 bins"),
            (r#"{"token_z": [[1, 0]], "pruner_z": [1, 1]}"#, "pruner_z has 2 entries"),
            (r#"{"token_z": [], "pruner_z": []}"#, "empty token_z"),
            (r#"{"token_z": [[1, 0]], "pruner_z": [1], "extra": 1}"#, "unknown field"),
            (r#"{"token_z": [[1, 0]]"#, "zs JSON"),
            (r#"{"token_z": [[1, 0]], "pruner_z": [1]}"#, ""),
        ] {
            match from_zs_bytes(json.as_bytes(), 4) {
                Ok(rules) => {
                    assert!(want.is_empty(), "{json}: accepted");
                    assert_eq!(rules.len(), 1);
                    assert_eq!(rules[0].layer, 3);
                }
                Err(e) => assert!(!want.is_empty() && e.contains(want), "{json}: {e}"),
            }
        }
    }
}
