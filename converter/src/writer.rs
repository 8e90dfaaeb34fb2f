//! Writing a `.toprt` file: header, manifest, 64-byte aligned blobs. The file is written
//! to a temporary name in the destination folder, synced, then moved into place (see
//! [`write_atomic`]), so a reader never sees a partial file and an interrupted
//! conversion leaves no `.toprt` behind.

use crate::bake::{Blob, OutTensor};
use crate::error::{ConvertError, Result};
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use toprt_format::{image, Layout, Manifest, Precision};

/// Sizes of the packed layouts for the file's validation: the kernels define them.
pub fn packed_bytes(layout: Layout, k: usize, n: usize) -> Option<u64> {
    toprt_kernels::pack::packed_bytes(layout.name(), k, n)
}

/// Validates a file image ([`image::decode`]) with the kernels' layout sizes.
///
/// # Errors
/// See [`image::decode`].
pub fn decode(bytes: &[u8], verify_checksums: bool) -> toprt_format::Result<image::Image<'_>> {
    image::decode(bytes, verify_checksums, &packed_bytes)
}

/// Serialises `manifest` (its tensor directory is filled here) and `tensors` into a
/// complete file image.
///
/// # Errors
/// Never in practice (JSON serialisation of plain data).
pub fn to_bytes(manifest: Manifest, tensors: &[OutTensor]) -> Result<Vec<u8>> {
    let blobs: Vec<image::Blob> = tensors
        .iter()
        .map(|t| image::Blob {
            name: &t.name,
            dtype: t.data.dtype(),
            shape: &t.shape,
            layout: t.layout,
            bytes: t.data.bytes(),
        })
        .collect();
    let out = image::encode(manifest, &blobs).map_err(|e| ConvertError::Options(e.to_string()))?;
    debug_assert!(decode(&out, true).is_ok());
    Ok(out)
}

/// Writes `bytes` to `path` atomically; refuses to replace an existing file unless
/// `force`.
///
/// The bytes go to a new temporary file in the destination folder (so the rename below
/// never crosses file systems), named `.<name>.tmp-<pid>-<n>` and created exclusively,
/// so two writers never share one. The file is synced, then moved into place:
/// without `force` by a hard link, which fails if `path` appeared in the meantime, with
/// `force` by a rename, which replaces it. Either way a reader sees the old file or the
/// complete new one, never a partial one. Finally the folder is synced so the new
/// name is durable too (best effort: some file systems cannot sync a folder).
///
/// On any error the temporary file is removed and `path` is left as it was. A process
/// killed mid-write leaves only its temporary file; the next write to the same `path`
/// removes such files when the process that made them is gone (on Linux, where that
/// can be checked through `/proc`).
///
/// # Errors
/// [`ConvertError::OutputExists`], or I/O errors naming `path`.
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
    let prefix = format!(".{}.tmp-", fname.to_string_lossy());
    remove_stale_temps(&dir, &prefix);
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let tmp = dir.join(format!("{prefix}{}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed)));
    let fail = |what: &str, e: std::io::Error| ConvertError::Io {
        path: path.to_path_buf(),
        source: std::io::Error::new(e.kind(), format!("{what}: {e}")),
    };
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp)
        .map_err(|e| fail(&format!("creating the temporary file {}", tmp.display()), e))?;
    let result = (|| {
        f.write_all(bytes).map_err(|e| fail(&format!("writing {}", tmp.display()), e))?;
        f.sync_all().map_err(|e| fail(&format!("syncing {}", tmp.display()), e))?;
        if force {
            std::fs::rename(&tmp, path).map_err(|e| fail("moving the new file into place", e))
        } else {
            match std::fs::hard_link(&tmp, path) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    Err(ConvertError::OutputExists(path.to_path_buf()))
                }
                // No hard links on this file system: check and rename instead.
                Err(_) if !path.exists() => {
                    std::fs::rename(&tmp, path).map_err(|e| fail("moving the new file into place", e))
                }
                Err(_) => Err(ConvertError::OutputExists(path.to_path_buf())),
            }
        }
    })();
    drop(f);
    // After a hard link the temporary name is still there; after a rename it is gone.
    let _ = std::fs::remove_file(&tmp);
    result?;
    if let Ok(d) = std::fs::File::open(&dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Removes temporary files `<prefix><pid>[-<n>]` in `dir` whose process no longer runs
/// (left by a writer that was killed). Only on Linux; elsewhere nothing is removed.
fn remove_stale_temps(dir: &Path, prefix: &str) {
    if !cfg!(target_os = "linux") || !Path::new("/proc/self").exists() {
        return;
    }
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(prefix)) else { continue };
        let pid = rest.split('-').next().unwrap_or("");
        if pid.is_empty() || !pid.bytes().all(|b| b.is_ascii_digit()) || rest.len() > 40 {
            continue;
        }
        if !Path::new("/proc").join(pid).exists() {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// Returns a copy of a validated file image with its keep-rules replaced (the tensor
/// blobs are copied unchanged). Used to try schedules on an existing model.
///
/// # Errors
/// An invalid image or invalid rules.
pub fn with_keep_rules(image: &[u8], rules: Vec<toprt_format::LayerKeepRule>) -> Result<Vec<u8>> {
    with_calibrated_keep_rules(image, rules, None)
}

/// [`with_keep_rules`], recording how the rules were found (`toprt-calibrate`'s search)
/// in the manifest's `keep_rule_calibration`; `None` drops any earlier record.
///
/// # Errors
/// An invalid image or invalid rules.
pub fn with_calibrated_keep_rules(
    image: &[u8],
    rules: Vec<toprt_format::LayerKeepRule>,
    record: Option<serde_json::Value>,
) -> Result<Vec<u8>> {
    let input = decode(image, false).map_err(|e| ConvertError::Options(format!("input model: {e}")))?;
    let mut manifest = input.manifest;
    manifest.keep_rules = rules;
    manifest.keep_rule_calibration = record;
    let json =
        serde_json::to_vec(&manifest).map_err(|e| ConvertError::Options(format!("manifest serialisation: {e}")))?;
    let out = image::assemble(&json, input.data);
    decode(&out, false).map_err(|e| ConvertError::Options(format!("keep-rules: {e}")))?;
    Ok(out)
}

/// The tensors of a validated image, as the converter holds them before writing.
fn tensors_of(input: &image::Image) -> Vec<OutTensor> {
    input
        .manifest
        .tensors
        .iter()
        .map(|e| {
            let bytes = input.blob(e);
            let words = || bytes.chunks_exact(4).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
            let blob = match e.dtype {
                Precision::F32 => {
                    Blob::F32(bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
                }
                Precision::Bf16 => Blob::Bf16Pairs(words()),
                Precision::Int8 => Blob::Int8Quads(words()),
            };
            OutTensor { name: e.name.clone(), layout: e.layout, shape: e.shape.clone(), data: blob }
        })
        .collect()
}

/// Returns a copy of a validated file image whose encoder linear weights are rounded to
/// bf16 ([`crate::bake::to_bf16`]); an image that already is bf16 comes back unchanged
/// in content. Used to make bf16 versions of existing models (tests, engine-bench).
///
/// # Errors
/// An invalid image.
pub fn with_bf16_weights(image: &[u8]) -> Result<Vec<u8>> {
    let input = decode(image, false).map_err(|e| ConvertError::Options(format!("input model: {e}")))?;
    let mut tensors = tensors_of(&input);
    crate::bake::to_bf16(&mut tensors);
    to_bytes(input.manifest, &tensors)
}

/// Returns a copy of a validated `f32` file image whose encoder linear weights are
/// quantised to int8 as `plan` says per linear ([`crate::bake::to_int8`]); the manifest
/// records the scheme, the `f32` linears and `calibration` (`null` for a plain
/// conversion). Used by `toprt-calibrate`, engine-bench `--dtype int8` and the tests.
///
/// # Errors
/// An invalid image, one whose linears are not `f32`, or a bad plan.
pub fn with_int8_weights(
    image: &[u8],
    plan: &dyn Fn(&str) -> crate::bake::LinearPlan,
    calibration: serde_json::Value,
) -> Result<Vec<u8>> {
    let input = decode(image, false).map_err(|e| ConvertError::Options(format!("input model: {e}")))?;
    let mut tensors = tensors_of(&input);
    let f32_linears = crate::bake::to_int8(&mut tensors, plan)?;
    let mut manifest = input.manifest;
    manifest.quantization =
        Some(toprt_format::Quantization { scheme: crate::bake::INT8_SCHEME.into(), f32_linears, calibration });
    to_bytes(manifest, &tensors)
}
