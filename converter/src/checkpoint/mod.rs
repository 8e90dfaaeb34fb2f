//! Loading a checkpoint's tensors: `model.safetensors`, sharded
//! `model.safetensors.index.json`, `pytorch_model.bin` (torch zip + pickle, read without
//! Python) or its sharded index. Floating-point tensors become `f32`.
//!
//! This file finds the weight files; [`safetensors`] and [`torch`] read them. Both name
//! element types with [`DType`] and decode them with [`decode::to_f32`], and both return
//! [`Tensor`]s, which live in a leaf module so that no reader imports this one back.

pub mod decode;
mod dtype;
pub mod safetensors;
mod tensor;
pub mod torch;

pub use dtype::DType;
pub use tensor::{Tensor, TensorData};

use crate::error::{io_err, ConvertError, Result};
use std::path::{Path, PathBuf};

/// Which file(s) the weights came from.
#[derive(Clone, Debug)]
pub struct Loaded {
    pub tensors: Vec<Tensor>,
    pub files: Vec<PathBuf>,
    pub format: &'static str,
}

/// Loads every tensor of the checkpoint in `dir`, preferring safetensors.
///
/// # Errors
/// [`ConvertError::NoWeights`] when no weight file exists; I/O and parse errors naming
/// the file.
pub fn load(dir: &Path) -> Result<Loaded> {
    let st = dir.join("model.safetensors");
    let st_index = dir.join("model.safetensors.index.json");
    let pt = dir.join("pytorch_model.bin");
    let pt_index = dir.join("pytorch_model.bin.index.json");
    if st.is_file() {
        Ok(Loaded { tensors: load_safetensors(&st)?, files: vec![st], format: "safetensors" })
    } else if st_index.is_file() {
        load_sharded(dir, &st_index, "safetensors", load_safetensors)
    } else if pt.is_file() {
        Ok(Loaded { tensors: load_torch(&pt)?, files: vec![pt], format: "pytorch" })
    } else if pt_index.is_file() {
        load_sharded(dir, &pt_index, "pytorch", load_torch)
    } else {
        Err(ConvertError::NoWeights(dir.to_path_buf()))
    }
}

/// Reads one safetensors file.
///
/// # Errors
/// I/O or format errors naming the file.
pub fn load_safetensors(path: &Path) -> Result<Vec<Tensor>> {
    let bytes = std::fs::read(path).map_err(io_err(path))?;
    safetensors::parse(&bytes).map_err(|msg| ConvertError::Parse { path: path.to_path_buf(), msg })
}

/// Reads one `torch.save` file (state dict).
///
/// # Errors
/// I/O or format errors naming the file.
pub fn load_torch(path: &Path) -> Result<Vec<Tensor>> {
    let err = |e: torch::TorchError| ConvertError::Torch { path: path.to_path_buf(), msg: e.to_string() };
    torch::read_torch_state_dict(path)
        .map_err(err)?
        .into_iter()
        .map(|t| {
            let data = if t.dtype.is_float() {
                TensorData::F32(t.to_f32_vec().map_err(err)?)
            } else {
                TensorData::Other(format!("{:?}", t.dtype))
            };
            Ok(Tensor { name: t.name, shape: t.shape, data })
        })
        .collect()
}

fn load_sharded(
    dir: &Path,
    index: &Path,
    format: &'static str,
    read: fn(&Path) -> Result<Vec<Tensor>>,
) -> Result<Loaded> {
    let text = std::fs::read_to_string(index).map_err(io_err(index))?;
    let v: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| ConvertError::Parse { path: index.to_path_buf(), msg: e.to_string() })?;
    let map = v
        .get("weight_map")
        .and_then(|m| m.as_object())
        .ok_or_else(|| ConvertError::Parse { path: index.to_path_buf(), msg: "no \"weight_map\" object".into() })?;
    let mut shards: Vec<&str> = map.values().filter_map(|f| f.as_str()).collect();
    shards.sort_unstable();
    shards.dedup();
    let mut tensors = Vec::new();
    let mut files = Vec::new();
    for shard in shards {
        if shard.contains('/') || shard.contains('\\') || shard.starts_with('.') {
            return Err(ConvertError::Parse {
                path: index.to_path_buf(),
                msg: format!("shard name '{shard}' is not a plain file name"),
            });
        }
        let p = dir.join(shard);
        tensors.extend(read(&p)?);
        files.push(p);
    }
    for (name, shard) in map {
        if !tensors.iter().any(|t| &t.name == name) {
            return Err(ConvertError::Parse {
                path: index.to_path_buf(),
                msg: format!("tensor '{name}' is listed in shard {shard} but not found there"),
            });
        }
    }
    Ok(Loaded { tensors, files, format })
}
