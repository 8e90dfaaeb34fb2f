//! Shared helpers of the end-to-end tests: locating fixtures and goldens, converting
//! checkpoints in memory, reading golden tensors, and named comparisons.

use std::collections::HashMap;
use std::path::PathBuf;
use toprt::{Model, OpenOptions};
use toprt_convert::checkpoint::TensorData;

/// Repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Folder of the real all-MiniLM-L6-v2 checkpoint, fetched by
/// `scripts/fetch-test-models.sh`. Panics with instructions when it is absent: the
/// golden tests must not pass silently without their model.
pub fn minilm_dir() -> PathBuf {
    let d = root().join("target/test-models/all-MiniLM-L6-v2");
    assert!(
        d.join("model.safetensors").is_file(),
        "all-MiniLM-L6-v2 is not at {}; run `bash scripts/fetch-test-models.sh` (or `bash scripts/test.sh`)",
        d.display()
    );
    d
}

/// all-mpnet-base-v2 as `scripts/fetch-test-models.sh` fetches it.
pub fn mpnet_dir() -> PathBuf {
    let d = root().join("target/test-models/all-mpnet-base-v2");
    assert!(
        d.join("model.safetensors").is_file(),
        "all-mpnet-base-v2 is not at {}; run `bash scripts/fetch-test-models.sh` (or `bash scripts/test.sh`)",
        d.display()
    );
    d
}

/// A binary of the workspace (`toprt`, `toprt-convert`, `engine-bench`) next to the
/// running test's own folder. Panics with instructions when it was not built.
pub fn workspace_bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let p = exe.parent().and_then(|d| d.parent()).unwrap().join(name);
    assert!(
        p.is_file(),
        "{} not built; run `cargo build --release --workspace --bins` (scripts/test.sh does)",
        p.display()
    );
    p
}

/// A safetensors file holding `ts` (all F32), in order.
///
/// # Panics
/// On a tensor that is not F32 (the fixtures are all F32).
pub fn safetensors_bytes(ts: &[toprt_convert::checkpoint::Tensor]) -> Vec<u8> {
    let mut header = serde_json::Map::new();
    let mut data = Vec::new();
    for t in ts {
        let TensorData::F32(v) = &t.data else { panic!("non-f32 tensor {}", t.name) };
        let b = data.len();
        data.extend(v.iter().flat_map(|x| x.to_le_bytes()));
        header.insert(
            t.name.clone(),
            serde_json::json!({"dtype": "F32", "shape": t.shape, "data_offsets": [b, data.len()]}),
        );
    }
    let h = serde_json::to_vec(&header).unwrap();
    [(h.len() as u64).to_le_bytes().to_vec(), h, data].concat()
}

/// Header and manifest of a file image, validated as the engine validates it.
pub fn header_and_manifest(
    image: &[u8],
    verify_checksums: bool,
) -> toprt_format::Result<(toprt_format::Header, toprt_format::Manifest)> {
    toprt_convert::writer::decode(image, verify_checksums).map(|i| (i.header, i.manifest))
}

/// A fixture checkpoint folder under `tests/fixtures/`.
pub fn fixture(name: &str) -> PathBuf {
    root().join("tests/fixtures").join(name)
}

/// Converts a checkpoint folder and opens the result from memory.
pub fn convert_and_open(dir: &std::path::Path) -> Model {
    let (bytes, _) = toprt_convert::convert_to_bytes(dir, &Default::default())
        .unwrap_or_else(|e| panic!("converting {}: {e}", dir.display()));
    Model::from_bytes(&bytes, &OpenOptions::default())
        .unwrap_or_else(|e| panic!("opening converted {}: {e}", dir.display()))
}

/// Converts once and returns the file image.
pub fn convert_bytes(dir: &std::path::Path) -> Vec<u8> {
    toprt_convert::convert_to_bytes(dir, &Default::default())
        .unwrap_or_else(|e| panic!("converting {}: {e}", dir.display()))
        .0
}

/// Tensors of a golden `outputs.safetensors`, by name.
pub fn golden_tensors(path: &std::path::Path) -> HashMap<String, Vec<f32>> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    toprt_convert::checkpoint::safetensors::parse(&bytes)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .into_iter()
        .filter_map(|t| match t.data {
            TensorData::F32(v) => Some((t.name, v)),
            TensorData::Other(_) => None,
        })
        .collect()
}

/// Largest absolute difference and where it is.
pub fn max_abs_diff(a: &[f32], b: &[f32]) -> (f32, usize) {
    assert_eq!(a.len(), b.len(), "length mismatch");
    a.iter().zip(b).enumerate().fold((0.0, 0), |(m, at), (i, (x, y))| {
        let d = (x - y).abs();
        if d > m || d.is_nan() {
            (d, i)
        } else {
            (m, at)
        }
    })
}

/// Cosine similarity in f64.
pub fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum();
    let na: f64 = a.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    dot / (na * nb)
}

pub mod harness;
pub mod masking;
