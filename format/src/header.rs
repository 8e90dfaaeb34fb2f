//! The fixed 64-byte header (little-endian):
//!
//! | offset | type | field |
//! |---|---|---|
//! | 0 | `[u8; 8]` | magic `TOPRTMDL` |
//! | 8 | `u32` | format version |
//! | 12 | `u32` | flags (must be 0) |
//! | 16 | `u64` | manifest offset (64) |
//! | 24 | `u64` | manifest length |
//! | 32 | `u32` | CRC-32 of the manifest bytes |
//! | 36 | `u32` | reserved (0) |
//! | 40 | `u64` | data section offset (a multiple of 64) |
//! | 48 | `u64` | data section length |
//! | 56 | `u32` | reserved (0) |
//! | 60 | `u32` | CRC-32 of bytes 0..60 |
//!
//! These offsets are written down here and nowhere else: every reader and writer of a
//! header (the engine, the converter, the tests and the fuzz harness) goes through
//! [`Header`].

use crate::error::{format_err, Error, Result};

/// First 8 bytes of every `.toprt` file.
pub const MAGIC: [u8; 8] = *b"TOPRTMDL";
/// The format version this build reads and writes.
pub const FORMAT_VERSION: u32 = 1;
/// Size of the fixed header.
pub const HEADER_LEN: usize = 64;
/// Alignment of the data section and of every tensor blob.
pub const ALIGN: usize = 64;

const VERSION_AT: usize = 8;
const FLAGS_AT: usize = 12;
const MANIFEST_OFFSET_AT: usize = 16;
const MANIFEST_LEN_AT: usize = 24;
const MANIFEST_CRC_AT: usize = 32;
const DATA_OFFSET_AT: usize = 40;
const DATA_LEN_AT: usize = 48;
const HEADER_CRC_AT: usize = 60;

/// The header's fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub version: u32,
    pub flags: u32,
    pub manifest_offset: u64,
    pub manifest_len: u64,
    pub manifest_crc32: u32,
    pub data_offset: u64,
    pub data_len: u64,
}

fn u32_at(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]])
}

fn u64_at(b: &[u8], o: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[o..o + 8]);
    u64::from_le_bytes(a)
}

/// Rounds `n` up to a multiple of [`ALIGN`].
pub fn pad_to_align(n: u64) -> u64 {
    n.div_ceil(ALIGN as u64) * ALIGN as u64
}

impl Header {
    /// The header of an image whose manifest is `manifest` (placed right after the
    /// header) and whose data section of `data_len` bytes starts at the next multiple
    /// of [`ALIGN`].
    pub fn for_parts(manifest: &[u8], data_len: u64) -> Header {
        let manifest_offset = HEADER_LEN as u64;
        Header {
            version: FORMAT_VERSION,
            flags: 0,
            manifest_offset,
            manifest_len: manifest.len() as u64,
            manifest_crc32: crc32fast::hash(manifest),
            data_offset: pad_to_align(manifest_offset + manifest.len() as u64),
            data_len,
        }
    }

    /// Serialises the header into its 64 bytes (magic and header CRC included).
    pub fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[0..8].copy_from_slice(&MAGIC);
        b[VERSION_AT..VERSION_AT + 4].copy_from_slice(&self.version.to_le_bytes());
        b[FLAGS_AT..FLAGS_AT + 4].copy_from_slice(&self.flags.to_le_bytes());
        b[MANIFEST_OFFSET_AT..MANIFEST_OFFSET_AT + 8].copy_from_slice(&self.manifest_offset.to_le_bytes());
        b[MANIFEST_LEN_AT..MANIFEST_LEN_AT + 8].copy_from_slice(&self.manifest_len.to_le_bytes());
        b[MANIFEST_CRC_AT..MANIFEST_CRC_AT + 4].copy_from_slice(&self.manifest_crc32.to_le_bytes());
        b[DATA_OFFSET_AT..DATA_OFFSET_AT + 8].copy_from_slice(&self.data_offset.to_le_bytes());
        b[DATA_LEN_AT..DATA_LEN_AT + 8].copy_from_slice(&self.data_len.to_le_bytes());
        let crc = crc32fast::hash(&b[0..HEADER_CRC_AT]);
        b[HEADER_CRC_AT..HEADER_LEN].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// Parses and checks the header at the start of the whole file image `bytes`: magic,
    /// version, header CRC, flags, the manifest range, the data section's alignment, and
    /// that the data section ends exactly at the end of the file.
    ///
    /// # Errors
    /// [`Error::Format`] naming the field that is wrong, or [`Error::Version`].
    pub fn parse(bytes: &[u8]) -> Result<Header> {
        let file_len = bytes.len() as u64;
        if bytes.len() < HEADER_LEN {
            return Err(format_err(format!(
                "file is {} bytes, shorter than the {HEADER_LEN}-byte header (truncated?)",
                bytes.len()
            )));
        }
        if bytes[0..8] != MAGIC {
            return Err(format_err("bad magic: not a .toprt model file"));
        }
        let version = u32_at(bytes, VERSION_AT);
        if version != FORMAT_VERSION {
            return Err(Error::Version { found: version, supported: FORMAT_VERSION });
        }
        if crc32fast::hash(&bytes[0..HEADER_CRC_AT]) != u32_at(bytes, HEADER_CRC_AT) {
            return Err(format_err("header checksum mismatch (corrupt file)"));
        }
        let h = Header {
            version,
            flags: u32_at(bytes, FLAGS_AT),
            manifest_offset: u64_at(bytes, MANIFEST_OFFSET_AT),
            manifest_len: u64_at(bytes, MANIFEST_LEN_AT),
            manifest_crc32: u32_at(bytes, MANIFEST_CRC_AT),
            data_offset: u64_at(bytes, DATA_OFFSET_AT),
            data_len: u64_at(bytes, DATA_LEN_AT),
        };
        if h.flags != 0 {
            return Err(format_err(format!("unknown header flags {:#x}", h.flags)));
        }
        let manifest_end = h.manifest_offset.checked_add(h.manifest_len);
        if h.manifest_offset < HEADER_LEN as u64 || manifest_end.is_none_or(|e| e > h.data_offset) {
            return Err(format_err(format!(
                "manifest range {}+{} does not lie between the header and the data section at {}",
                h.manifest_offset, h.manifest_len, h.data_offset
            )));
        }
        if !h.data_offset.is_multiple_of(ALIGN as u64) {
            return Err(format_err(format!("data section offset {} is not {ALIGN}-byte aligned", h.data_offset)));
        }
        if h.data_offset.checked_add(h.data_len) != Some(file_len) {
            return Err(format_err(format!(
                "file is {file_len} bytes but the header says {} + {} (truncated or padded file)",
                h.data_offset, h.data_len
            )));
        }
        Ok(h)
    }
}

/// Rewrites the checksums and the data length in the header of a raw image so that they
/// agree with its bytes, whatever offsets and lengths it claims; every other header
/// byte is kept. Images shorter than the header are left alone. For tests and fuzzing,
/// which mutate images and want the reader to look past the checksums.
pub fn repair_header(image: &mut [u8]) {
    if image.len() < HEADER_LEN {
        return;
    }
    let len = image.len() as u64;
    let (m_off, m_len, d_off) =
        (u64_at(image, MANIFEST_OFFSET_AT), u64_at(image, MANIFEST_LEN_AT), u64_at(image, DATA_OFFSET_AT));
    if let Some(end) = m_off.checked_add(m_len).filter(|&e| e <= len) {
        let crc = crc32fast::hash(&image[m_off as usize..end as usize]);
        image[MANIFEST_CRC_AT..MANIFEST_CRC_AT + 4].copy_from_slice(&crc.to_le_bytes());
    }
    if d_off <= len {
        image[DATA_LEN_AT..DATA_LEN_AT + 8].copy_from_slice(&(len - d_off).to_le_bytes());
    }
    let crc = crc32fast::hash(&image[0..HEADER_CRC_AT]);
    image[HEADER_CRC_AT..HEADER_LEN].copy_from_slice(&crc.to_le_bytes());
}
