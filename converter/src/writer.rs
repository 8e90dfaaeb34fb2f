//! Writing a `.toprt` file: header, manifest, 64-byte aligned blobs. The file is written
//! to a temporary name in the destination folder, synced, then renamed, so a reader
//! never sees a partial file and an interrupted conversion leaves no `.toprt` behind.

use crate::bake::OutTensor;
use crate::error::{io_err, ConvertError, Result};
use std::io::Write;
use std::path::Path;
use toprt::format::{self, DType, Header, Manifest, TensorEntry, ALIGN, FORMAT_VERSION, HEADER_LEN};

fn pad_to(n: u64) -> u64 {
    n.div_ceil(ALIGN as u64) * ALIGN as u64
}

/// Serialises `manifest` (its tensor directory is filled here) and `tensors` into a
/// complete file image.
///
/// # Errors
/// Never in practice (JSON serialisation of plain data).
pub fn to_bytes(mut manifest: Manifest, tensors: &[OutTensor]) -> Result<Vec<u8>> {
    let mut entries = Vec::with_capacity(tensors.len());
    let mut offset = 0u64;
    for t in tensors {
        let bytes: &[u8] = bytemuck::cast_slice(&t.data);
        entries.push(TensorEntry {
            name: t.name.clone(),
            dtype: DType::F32,
            shape: t.shape.clone(),
            layout: t.layout,
            offset,
            length: bytes.len() as u64,
            crc32: crc32fast::hash(bytes),
        });
        offset = pad_to(offset + bytes.len() as u64);
    }
    manifest.tensors = entries;
    manifest.format_version = FORMAT_VERSION;
    let json =
        serde_json::to_vec(&manifest).map_err(|e| ConvertError::Options(format!("manifest serialisation: {e}")))?;
    let manifest_offset = HEADER_LEN as u64;
    let data_offset = pad_to(manifest_offset + json.len() as u64);
    let header = Header {
        version: FORMAT_VERSION,
        flags: 0,
        manifest_offset,
        manifest_len: json.len() as u64,
        manifest_crc32: crc32fast::hash(&json),
        data_offset,
        data_len: offset,
    };
    let mut out = Vec::with_capacity((data_offset + offset) as usize);
    out.extend_from_slice(&header.to_bytes());
    out.extend_from_slice(&json);
    out.resize(data_offset as usize, 0);
    for (t, e) in tensors.iter().zip(&manifest.tensors) {
        out.resize((data_offset + e.offset) as usize, 0);
        out.extend_from_slice(bytemuck::cast_slice(&t.data));
    }
    out.resize((data_offset + offset) as usize, 0);
    debug_assert!(format::validate(&out, true).is_ok());
    Ok(out)
}

/// Writes `bytes` to `path` atomically; refuses to replace an existing file unless
/// `force`.
///
/// # Errors
/// [`ConvertError::OutputExists`], or I/O errors naming the path.
pub fn write_atomic(path: &Path, bytes: &[u8], force: bool) -> Result<()> {
    if path.exists() && !force {
        return Err(ConvertError::OutputExists(path.to_path_buf()));
    }
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    let fname =
        path.file_name().ok_or_else(|| ConvertError::Options(format!("output {} has no file name", path.display())))?;
    let tmp = dir.join(format!(".{}.tmp-{}", fname.to_string_lossy(), std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp).map_err(io_err(&tmp))?;
        f.write_all(bytes).map_err(io_err(&tmp))?;
        f.sync_all().map_err(io_err(&tmp))?;
        drop(f);
        std::fs::rename(&tmp, path).map_err(io_err(path))?;
        if let Ok(d) = std::fs::File::open(&dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Returns a copy of a validated file image with its keep-rules replaced (the tensor
/// blobs are copied unchanged). Used to try schedules on an existing model.
///
/// # Errors
/// An invalid image or invalid rules.
pub fn with_keep_rules(image: &[u8], rules: Vec<toprt::format::LayerKeepRule>) -> Result<Vec<u8>> {
    let (h, mut manifest) =
        format::validate(image, false).map_err(|e| ConvertError::Options(format!("input model: {e}")))?;
    manifest.keep_rules = rules;
    let json =
        serde_json::to_vec(&manifest).map_err(|e| ConvertError::Options(format!("manifest serialisation: {e}")))?;
    let data = &image[h.data_offset as usize..];
    let data_offset = pad_to(HEADER_LEN as u64 + json.len() as u64);
    let header = Header {
        version: FORMAT_VERSION,
        flags: 0,
        manifest_offset: HEADER_LEN as u64,
        manifest_len: json.len() as u64,
        manifest_crc32: crc32fast::hash(&json),
        data_offset,
        data_len: data.len() as u64,
    };
    let mut out = Vec::with_capacity(data_offset as usize + data.len());
    out.extend_from_slice(&header.to_bytes());
    out.extend_from_slice(&json);
    out.resize(data_offset as usize, 0);
    out.extend_from_slice(data);
    format::validate(&out, false).map_err(|e| ConvertError::Options(format!("keep-rules: {e}")))?;
    Ok(out)
}
