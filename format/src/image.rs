//! The one encoder and decoder of a whole file image:
//!
//! ```text
//! offset 0     ┌──────────────────────────────┐
//!              │ header (64 bytes)            │
//! 64           ├──────────────────────────────┤
//!              │ manifest (UTF-8 JSON)        │
//!              ├ zero padding to 64 ──────────┤
//! data_offset  ├──────────────────────────────┤  (multiple of 64)
//!              │ blob 0  (64-byte aligned)    │
//!              │ blob 1  (64-byte aligned)    │
//!              │ …                            │
//! file end     └──────────────────────────────┘  = data_offset + data_len
//! ```
//!
//! [`encode`] lays blobs out and fills the tensor directory; [`assemble`] puts raw
//! manifest bytes and a data section behind a correct header; [`decode`] validates an
//! image completely before anything reads a tensor; [`split`] takes one apart again.

use crate::error::{format_err, Error, Result};
pub use crate::header::repair_header;
use crate::header::{pad_to_align, Header, ALIGN, FORMAT_VERSION};
use crate::manifest::Manifest;
use crate::tensor::{Layout, PackedBytes, Precision, TensorEntry};

/// A tensor to write: what its directory entry says, and its bytes.
#[derive(Clone, Copy, Debug)]
pub struct Blob<'a> {
    pub name: &'a str,
    pub dtype: Precision,
    pub shape: &'a [usize],
    pub layout: Layout,
    pub bytes: &'a [u8],
}

/// A validated image: its header, its manifest, and its data section.
#[derive(Debug)]
pub struct Image<'a> {
    pub header: Header,
    pub manifest: Manifest,
    /// The data section (`data_len` bytes from `data_offset`).
    pub data: &'a [u8],
}

impl Image<'_> {
    /// The bytes of a tensor of the directory (in bounds: checked by [`decode`]).
    pub fn blob(&self, t: &TensorEntry) -> &[u8] {
        &self.data[t.offset as usize..(t.offset + t.length) as usize]
    }
}

fn manifest_json(manifest: &Manifest) -> Result<Vec<u8>> {
    serde_json::to_vec(manifest).map_err(|e| format_err(format!("manifest serialisation: {e}")))
}

/// Serialises `manifest` and `blobs` into a complete image. The tensor directory and the
/// format version of `manifest` are filled here: blobs follow one another in order,
/// each at the next multiple of [`ALIGN`] of the data section, with its length and
/// CRC-32.
///
/// # Errors
/// Never in practice (JSON serialisation of plain data).
pub fn encode(mut manifest: Manifest, blobs: &[Blob]) -> Result<Vec<u8>> {
    let mut offset = 0u64;
    manifest.tensors = blobs
        .iter()
        .map(|b| {
            let e = TensorEntry {
                name: b.name.to_string(),
                dtype: b.dtype,
                shape: b.shape.to_vec(),
                layout: b.layout,
                offset,
                length: b.bytes.len() as u64,
                crc32: crc32fast::hash(b.bytes),
            };
            offset = pad_to_align(offset + b.bytes.len() as u64);
            e
        })
        .collect();
    manifest.format_version = FORMAT_VERSION;
    let json = manifest_json(&manifest)?;
    let mut data = vec![0u8; offset as usize];
    for (b, e) in blobs.iter().zip(&manifest.tensors) {
        data[e.offset as usize..(e.offset + e.length) as usize].copy_from_slice(b.bytes);
    }
    Ok(assemble(&json, &data))
}

/// An image of raw manifest bytes and a raw data section behind a correct header
/// ([`Header::for_parts`]), whatever the manifest says. [`encode`] builds on it; tests and
/// fuzzers use it to put any manifest in front of any data.
pub fn assemble(manifest: &[u8], data: &[u8]) -> Vec<u8> {
    let h = Header::for_parts(manifest, data.len() as u64);
    let mut out = Vec::with_capacity(h.data_offset as usize + data.len());
    out.extend_from_slice(&h.to_bytes());
    out.extend_from_slice(manifest);
    out.resize(h.data_offset as usize, 0);
    out.extend_from_slice(data);
    out
}

/// Raw `(manifest bytes, data section)` of an image whose header parses: the inverse of
/// [`assemble`].
///
/// # Errors
/// A header that does not parse ([`Header::parse`]).
pub fn split(image: &[u8]) -> Result<(&[u8], &[u8])> {
    let h = Header::parse(image)?;
    Ok((
        &image[h.manifest_offset as usize..(h.manifest_offset + h.manifest_len) as usize],
        &image[h.data_offset as usize..],
    ))
}

/// Checks a whole file image and returns its header, manifest and data section:
///
/// 1. the header ([`Header::parse`]);
/// 2. the manifest's CRC, its JSON against the schema, its version, the model sizes,
///    and the keep-rules (increasing locations within `1..num_layers`, sane
///    parameters);
/// 3. per tensor: a unique name, a dtype and layout that go together, a length equal to
///    what the dtype, shape and layout need (packed layouts sized by `packed`), a
///    64-aligned offset, the blob inside the data section, and (with
///    `verify_checksums`) its CRC.
///
/// # Errors
/// [`Error::Format`] / [`Error::Version`] / [`Error::Checksum`] naming what is wrong.
pub fn decode<'a>(bytes: &'a [u8], verify_checksums: bool, packed: PackedBytes) -> Result<Image<'a>> {
    let h = Header::parse(bytes)?;
    // Header::parse proved manifest_offset + manifest_len <= data_offset <= file length.
    let m_bytes = &bytes[h.manifest_offset as usize..(h.manifest_offset + h.manifest_len) as usize];
    if crc32fast::hash(m_bytes) != h.manifest_crc32 {
        return Err(Error::Checksum("manifest".into()));
    }
    let manifest: Manifest =
        serde_json::from_slice(m_bytes).map_err(|e| format_err(format!("manifest is not valid: {e}")))?;
    if manifest.format_version != FORMAT_VERSION {
        return Err(Error::Version { found: manifest.format_version, supported: FORMAT_VERSION });
    }
    manifest.model.validate()?;
    let mut last = 0;
    for r in &manifest.keep_rules {
        if r.layer == 0 || r.layer >= manifest.model.num_layers || r.layer <= last {
            return Err(format_err(format!(
                "keep-rule at layer {}: locations must be increasing and within 1..{}",
                r.layer, manifest.model.num_layers
            )));
        }
        last = r.layer;
        r.rule.validate().map_err(|e| format_err(format!("keep-rule at layer {}: {e}", r.layer)))?;
    }
    let data = &bytes[h.data_offset as usize..];
    let mut seen = std::collections::HashSet::new();
    for t in &manifest.tensors {
        if !seen.insert(t.name.as_str()) {
            return Err(format_err(format!("tensor '{}' appears twice in the directory", t.name)));
        }
        let want = t.expected_len(packed)?;
        if t.length != want {
            return Err(format_err(format!(
                "tensor '{}': length {} bytes, but dtype/shape/layout need {want}",
                t.name, t.length
            )));
        }
        if t.offset % ALIGN as u64 != 0 {
            return Err(format_err(format!("tensor '{}': offset {} is not {ALIGN}-byte aligned", t.name, t.offset)));
        }
        if t.offset.checked_add(t.length).is_none_or(|end| end > h.data_len) {
            return Err(format_err(format!(
                "tensor '{}': bytes {}..+{} run past the data section ({} bytes; truncated file?)",
                t.name, t.offset, t.length, h.data_len
            )));
        }
        if verify_checksums {
            let blob = &data[t.offset as usize..(t.offset + t.length) as usize];
            if crc32fast::hash(blob) != t.crc32 {
                return Err(Error::Checksum(format!("tensor '{}'", t.name)));
            }
        }
    }
    Ok(Image { header: h, manifest, data })
}
