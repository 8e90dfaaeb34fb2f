//! Minimal, read-only ZIP reader for `torch.save` archives.
//!
//! torch (>= 1.6) writes its checkpoints as ZIP archives whose entries are
//! all *stored* (compression method 0), so this reader only supports stored
//! entries and refuses anything else with [`TorchError::CompressedEntry`].
//!
//! What is supported:
//! * the End Of Central Directory record (searched backwards over the last
//!   64 KiB + 22 bytes, so archive comments are tolerated),
//! * ZIP64 (EOCD locator, ZIP64 EOCD record and the ZIP64 extended
//!   information extra field in central directory headers), which torch uses
//!   for archives larger than 4 GiB,
//! * optional CRC-32 verification of an entry when it is read.
//!
//! Every offset and length read from the file is validated against the file
//! size with checked arithmetic; malformed input yields an error, never a
//! panic, and no allocation is sized from an untrusted field without first
//! being bounded by the input length.

use std::collections::HashMap;

use super::error::TorchError;

const EOCD_SIG: u32 = 0x0605_4b50;
const EOCD_LEN: usize = 22;
const ZIP64_LOCATOR_SIG: u32 = 0x0706_4b50;
const ZIP64_LOCATOR_LEN: usize = 20;
const ZIP64_EOCD_SIG: u32 = 0x0606_4b50;
const ZIP64_EOCD_MIN_LEN: usize = 56;
const CDH_SIG: u32 = 0x0201_4b50;
const CDH_LEN: usize = 46;
const LFH_SIG: u32 = 0x0403_4b50;
const LFH_LEN: usize = 30;
const ZIP64_EXTRA_ID: u16 = 0x0001;
/// Longest possible archive comment, hence the EOCD search window.
const MAX_COMMENT: usize = 0xFFFF;

/// One stored entry: its name and where its bytes lie in the archive.
#[derive(Debug, Clone)]
pub(crate) struct ZipEntry {
    pub(crate) name: String,
    /// Absolute offset of the first data byte.
    pub(crate) data_offset: usize,
    /// Length of the data in bytes.
    pub(crate) size: usize,
    /// CRC-32 recorded in the central directory.
    pub(crate) crc32: u32,
}

/// A parsed archive borrowing the whole file's bytes.
#[derive(Debug)]
pub(crate) struct ZipArchive<'a> {
    bytes: &'a [u8],
    entries: Vec<ZipEntry>,
    by_name: HashMap<String, usize>,
}

fn zerr(offset: usize, msg: impl Into<String>) -> TorchError {
    TorchError::Zip { offset: offset as u64, msg: msg.into() }
}

/// Bounds-checked little-endian reader over a byte slice.
struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn at(bytes: &'a [u8], pos: usize) -> Self {
        Cursor { bytes, pos }
    }

    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], TorchError> {
        let end = self.pos.checked_add(n).ok_or_else(|| zerr(self.pos, format!("{what}: length overflow")))?;
        let s = self.bytes.get(self.pos..end).ok_or_else(|| {
            zerr(self.pos, format!("{what}: needs {n} bytes but the file ends at byte {}", self.bytes.len()))
        })?;
        self.pos = end;
        Ok(s)
    }

    fn u16(&mut self, what: &str) -> Result<u16, TorchError> {
        let s = self.take(2, what)?;
        let mut a = [0u8; 2];
        a.copy_from_slice(s);
        Ok(u16::from_le_bytes(a))
    }

    fn u32(&mut self, what: &str) -> Result<u32, TorchError> {
        let s = self.take(4, what)?;
        let mut a = [0u8; 4];
        a.copy_from_slice(s);
        Ok(u32::from_le_bytes(a))
    }

    fn u64(&mut self, what: &str) -> Result<u64, TorchError> {
        let s = self.take(8, what)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(s);
        Ok(u64::from_le_bytes(a))
    }
}

/// Converts an untrusted 64-bit offset/length into `usize`, requiring that it
/// does not exceed `limit` (normally the file length).
fn bounded(v: u64, limit: usize, at: usize, what: &str) -> Result<usize, TorchError> {
    match usize::try_from(v) {
        Ok(x) if x <= limit => Ok(x),
        _ => Err(zerr(at, format!("{what} {v} exceeds the file size {limit}"))),
    }
}

fn read_u32_at(bytes: &[u8], pos: usize) -> Option<u32> {
    let s = bytes.get(pos..pos.checked_add(4)?)?;
    let mut a = [0u8; 4];
    a.copy_from_slice(s);
    Some(u32::from_le_bytes(a))
}

/// Locates the EOCD record, preferring one whose comment length reaches the
/// end of the file exactly.
fn find_eocd(bytes: &[u8]) -> Result<usize, TorchError> {
    if bytes.len() < EOCD_LEN {
        return Err(zerr(
            0,
            format!("file is {} bytes, too short for a ZIP end-of-central-directory record", bytes.len()),
        ));
    }
    let last = bytes.len() - EOCD_LEN;
    let first = last.saturating_sub(MAX_COMMENT);
    let mut fallback = None;
    for pos in (first..=last).rev() {
        if read_u32_at(bytes, pos) != Some(EOCD_SIG) {
            continue;
        }
        let comment_len =
            bytes.get(pos + 20..pos + 22).map_or(usize::MAX, |s| usize::from(u16::from_le_bytes([s[0], s[1]])));
        if pos + EOCD_LEN + comment_len == bytes.len() {
            return Ok(pos);
        }
        if fallback.is_none() && pos + EOCD_LEN + comment_len <= bytes.len() {
            fallback = Some(pos);
        }
    }
    fallback.ok_or_else(|| {
        zerr(bytes.len(), "no ZIP end-of-central-directory record found (not a zip archive or truncated)")
    })
}

/// Central directory location and entry count.
struct Directory {
    offset: usize,
    size: usize,
    entries: u64,
}

fn read_directory(bytes: &[u8], eocd: usize) -> Result<Directory, TorchError> {
    let len = bytes.len();
    let mut c = Cursor::at(bytes, eocd + 4);
    let disk = c.u16("EOCD disk number")?;
    let cd_disk = c.u16("EOCD central directory disk")?;
    let n_this = c.u16("EOCD entry count")?;
    let n_total = c.u16("EOCD entry count")?;
    let cd_size = c.u32("EOCD central directory size")?;
    let cd_off = c.u32("EOCD central directory offset")?;

    let needs_zip64 = n_this == 0xFFFF || n_total == 0xFFFF || cd_size == 0xFFFF_FFFF || cd_off == 0xFFFF_FFFF;
    let has_locator =
        eocd >= ZIP64_LOCATOR_LEN && read_u32_at(bytes, eocd - ZIP64_LOCATOR_LEN) == Some(ZIP64_LOCATOR_SIG);

    if has_locator {
        let loc = eocd - ZIP64_LOCATOR_LEN;
        let mut c = Cursor::at(bytes, loc + 4);
        let _disk_with_eocd64 = c.u32("ZIP64 locator disk")?;
        let eocd64 = c.u64("ZIP64 locator offset")?;
        let total_disks = c.u32("ZIP64 locator disk count")?;
        if total_disks > 1 {
            return Err(zerr(loc, "multi-disk ZIP64 archives are not supported"));
        }
        let eocd64 = bounded(eocd64, loc, loc + 8, "ZIP64 EOCD offset")?;
        if loc - eocd64 < ZIP64_EOCD_MIN_LEN {
            return Err(zerr(eocd64, "ZIP64 EOCD record overlaps its locator"));
        }
        let mut c = Cursor::at(bytes, eocd64);
        if c.u32("ZIP64 EOCD signature")? != ZIP64_EOCD_SIG {
            return Err(zerr(eocd64, "bad ZIP64 end-of-central-directory signature"));
        }
        let _record_size = c.u64("ZIP64 EOCD size")?;
        let _made_by = c.u16("ZIP64 EOCD version")?;
        let _needed = c.u16("ZIP64 EOCD version")?;
        let disk = c.u32("ZIP64 EOCD disk")?;
        let cd_disk = c.u32("ZIP64 EOCD central directory disk")?;
        let n_this = c.u64("ZIP64 EOCD entry count")?;
        let n_total = c.u64("ZIP64 EOCD entry count")?;
        let cd_size = c.u64("ZIP64 EOCD central directory size")?;
        let cd_off = c.u64("ZIP64 EOCD central directory offset")?;
        if disk != 0 || cd_disk != 0 || n_this != n_total {
            return Err(zerr(eocd64, "multi-disk ZIP archives are not supported"));
        }
        let offset = bounded(cd_off, eocd64, eocd64, "central directory offset")?;
        let size = bounded(cd_size, eocd64 - offset, eocd64, "central directory size")?;
        return Ok(Directory { offset, size, entries: n_total });
    }
    if needs_zip64 {
        return Err(zerr(eocd, "EOCD record requires ZIP64 but no ZIP64 locator precedes it"));
    }
    if disk != 0 || cd_disk != 0 || n_this != n_total {
        return Err(zerr(eocd, "multi-disk ZIP archives are not supported"));
    }
    let offset = bounded(u64::from(cd_off), eocd, eocd + 16, "central directory offset")?;
    let size = bounded(u64::from(cd_size), eocd - offset, eocd + 12, "central directory size")?;
    debug_assert!(offset + size <= len);
    Ok(Directory { offset, size, entries: u64::from(n_total) })
}

/// Values from a ZIP64 extended-information extra field.
fn apply_zip64_extra(
    extra: &[u8],
    extra_at: usize,
    usize_: &mut u64,
    csize: &mut u64,
    lho: &mut u64,
) -> Result<(), TorchError> {
    let mut c = Cursor::at(extra, 0);
    while c.pos + 4 <= extra.len() {
        let id = c.u16("extra field id")?;
        let n = usize::from(c.u16("extra field size")?);
        let body_at = c.pos;
        let body =
            c.take(n, "extra field body").map_err(|_| zerr(extra_at + body_at, "extra field runs past its header"))?;
        if id != ZIP64_EXTRA_ID {
            continue;
        }
        let mut b = Cursor::at(body, 0);
        let what = "ZIP64 extra field";
        if *usize_ == 0xFFFF_FFFF {
            *usize_ = b.u64(what).map_err(|_| zerr(extra_at + body_at, "short ZIP64 extra field"))?;
        }
        if *csize == 0xFFFF_FFFF {
            *csize = b.u64(what).map_err(|_| zerr(extra_at + body_at, "short ZIP64 extra field"))?;
        }
        if *lho == 0xFFFF_FFFF {
            *lho = b.u64(what).map_err(|_| zerr(extra_at + body_at, "short ZIP64 extra field"))?;
        }
        return Ok(());
    }
    Ok(())
}

impl<'a> ZipArchive<'a> {
    /// Parses the central directory and every local header of `bytes`.
    ///
    /// # Errors
    /// [`TorchError::Zip`] for any structural problem (with the byte offset),
    /// [`TorchError::CompressedEntry`] for entries that are not stored, and
    /// duplicate entry names are refused as well.
    pub(crate) fn parse(bytes: &'a [u8]) -> Result<Self, TorchError> {
        let eocd = find_eocd(bytes)?;
        let dir = read_directory(bytes, eocd)?;
        // Each central directory header is at least CDH_LEN bytes, which bounds
        // the entry count (and our allocation) by the directory size.
        let max_entries = dir.size / CDH_LEN;
        if dir.entries > max_entries as u64 {
            return Err(zerr(
                dir.offset,
                format!("central directory claims {} entries but only has room for {max_entries}", dir.entries),
            ));
        }
        let n = usize::try_from(dir.entries).unwrap_or(max_entries);
        let cd_end = dir.offset + dir.size;
        let cd = bytes.get(..cd_end).ok_or_else(|| zerr(dir.offset, "central directory out of range"))?;
        let mut entries = Vec::with_capacity(n);
        let mut by_name = HashMap::with_capacity(n);
        let mut c = Cursor::at(cd, dir.offset);
        for _ in 0..n {
            let hdr = c.pos;
            if c.u32("central directory header")? != CDH_SIG {
                return Err(zerr(hdr, "bad central directory header signature"));
            }
            let _made_by = c.u16("central directory header")?;
            let _needed = c.u16("central directory header")?;
            let flags = c.u16("central directory header")?;
            let method = c.u16("central directory header")?;
            let _time = c.u16("central directory header")?;
            let _date = c.u16("central directory header")?;
            let crc32 = c.u32("central directory header")?;
            let mut csize = u64::from(c.u32("central directory header")?);
            let mut usize_ = u64::from(c.u32("central directory header")?);
            let name_len = usize::from(c.u16("central directory header")?);
            let extra_len = usize::from(c.u16("central directory header")?);
            let comment_len = usize::from(c.u16("central directory header")?);
            let _disk = c.u16("central directory header")?;
            let _iattr = c.u16("central directory header")?;
            let _eattr = c.u32("central directory header")?;
            let mut lho = u64::from(c.u32("central directory header")?);
            let name_at = c.pos;
            let name_raw = c.take(name_len, "entry name")?;
            let extra_at = c.pos;
            let extra = c.take(extra_len, "entry extra field")?;
            c.take(comment_len, "entry comment")?;

            let name =
                std::str::from_utf8(name_raw).map_err(|_| zerr(name_at, "entry name is not valid UTF-8"))?.to_owned();
            apply_zip64_extra(extra, extra_at, &mut usize_, &mut csize, &mut lho)?;

            if flags & 0x1 != 0 {
                return Err(zerr(hdr, format!("entry '{name}' is encrypted")));
            }
            if method != 0 {
                return Err(TorchError::CompressedEntry { name, method });
            }
            if csize != usize_ {
                return Err(zerr(hdr, format!("stored entry '{name}' has compressed size {csize} != size {usize_}")));
            }

            // Local file header: its name and extra lengths may differ from the
            // central directory's, so the data offset is derived from it.
            let lho = bounded(lho, bytes.len(), hdr + 42, "local header offset")?;
            let mut l = Cursor::at(bytes, lho);
            if l.u32("local file header")? != LFH_SIG {
                return Err(zerr(lho, format!("bad local file header signature for '{name}'")));
            }
            l.take(LFH_LEN - 8, "local file header")?;
            let lname_len = usize::from(l.u16("local file header")?);
            let lextra_len = usize::from(l.u16("local file header")?);
            let lname = l.take(lname_len, "local entry name")?;
            if lname != name_raw {
                return Err(zerr(lho, format!("local header name does not match central directory name '{name}'")));
            }
            l.take(lextra_len, "local extra field")?;
            let data_offset = l.pos;
            let size = bounded(usize_, bytes.len() - data_offset, hdr + 24, &format!("size of entry '{name}'"))?;
            if by_name.insert(name.clone(), entries.len()).is_some() {
                return Err(zerr(hdr, format!("duplicate entry name '{name}'")));
            }
            entries.push(ZipEntry { name, data_offset, size, crc32 });
        }
        Ok(ZipArchive { bytes, entries, by_name })
    }

    /// All entries in central-directory order.
    pub(crate) fn entries(&self) -> &[ZipEntry] {
        &self.entries
    }

    /// Looks up an entry by exact name.
    pub(crate) fn entry(&self, name: &str) -> Option<&ZipEntry> {
        self.by_name.get(name).and_then(|&i| self.entries.get(i))
    }

    /// Returns the bytes of entry `name` after verifying its CRC-32, or `None`
    /// if there is no such entry.
    ///
    /// # Errors
    /// [`TorchError::CrcMismatch`] if the data does not match its checksum.
    pub(crate) fn read(&self, name: &str) -> Result<Option<&'a [u8]>, TorchError> {
        let Some(e) = self.entry(name) else {
            return Ok(None);
        };
        let data = self
            .bytes
            .get(e.data_offset..e.data_offset.saturating_add(e.size))
            .ok_or_else(|| zerr(e.data_offset, format!("entry '{name}' out of range")))?;
        let actual = crc32fast::hash(data);
        if actual != e.crc32 {
            return Err(TorchError::CrcMismatch { name: name.to_owned(), expected: e.crc32, actual });
        }
        Ok(Some(data))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Builds a stored zip archive; `zip64` forces ZIP64 records everywhere.
    pub(crate) fn build_zip(files: &[(&str, &[u8])], zip64: bool) -> Vec<u8> {
        let mut out = Vec::new();
        let mut cd = Vec::new();
        for (name, data) in files {
            let off = out.len() as u64;
            let crc = crc32fast::hash(data);
            out.extend_from_slice(&LFH_SIG.to_le_bytes());
            out.extend_from_slice(&[45, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
            out.extend_from_slice(&crc.to_le_bytes());
            let sz = if zip64 { 0xFFFF_FFFF } else { data.len() as u32 };
            out.extend_from_slice(&sz.to_le_bytes());
            out.extend_from_slice(&sz.to_le_bytes());
            out.extend_from_slice(&(name.len() as u16).to_le_bytes());
            let lextra: Vec<u8> = if zip64 {
                let mut e = vec![1, 0, 16, 0];
                e.extend_from_slice(&(data.len() as u64).to_le_bytes());
                e.extend_from_slice(&(data.len() as u64).to_le_bytes());
                e
            } else {
                Vec::new()
            };
            out.extend_from_slice(&(lextra.len() as u16).to_le_bytes());
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(&lextra);
            out.extend_from_slice(data);

            cd.extend_from_slice(&CDH_SIG.to_le_bytes());
            cd.extend_from_slice(&[45, 0, 45, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
            cd.extend_from_slice(&crc.to_le_bytes());
            cd.extend_from_slice(&sz.to_le_bytes());
            cd.extend_from_slice(&sz.to_le_bytes());
            cd.extend_from_slice(&(name.len() as u16).to_le_bytes());
            let cextra: Vec<u8> = if zip64 {
                let mut e = vec![1, 0, 24, 0];
                e.extend_from_slice(&(data.len() as u64).to_le_bytes());
                e.extend_from_slice(&(data.len() as u64).to_le_bytes());
                e.extend_from_slice(&off.to_le_bytes());
                e
            } else {
                Vec::new()
            };
            cd.extend_from_slice(&(cextra.len() as u16).to_le_bytes());
            cd.extend_from_slice(&[0; 6]);
            cd.extend_from_slice(&[0; 4]);
            let lho = if zip64 { 0xFFFF_FFFF } else { off as u32 };
            cd.extend_from_slice(&lho.to_le_bytes());
            cd.extend_from_slice(name.as_bytes());
            cd.extend_from_slice(&cextra);
        }
        let cd_off = out.len() as u64;
        out.extend_from_slice(&cd);
        let n = files.len() as u64;
        if zip64 {
            let eocd64 = out.len() as u64;
            out.extend_from_slice(&ZIP64_EOCD_SIG.to_le_bytes());
            out.extend_from_slice(&44u64.to_le_bytes());
            out.extend_from_slice(&[45, 0, 45, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
            out.extend_from_slice(&n.to_le_bytes());
            out.extend_from_slice(&n.to_le_bytes());
            out.extend_from_slice(&(cd.len() as u64).to_le_bytes());
            out.extend_from_slice(&cd_off.to_le_bytes());
            out.extend_from_slice(&ZIP64_LOCATOR_SIG.to_le_bytes());
            out.extend_from_slice(&0u32.to_le_bytes());
            out.extend_from_slice(&eocd64.to_le_bytes());
            out.extend_from_slice(&1u32.to_le_bytes());
        }
        out.extend_from_slice(&EOCD_SIG.to_le_bytes());
        out.extend_from_slice(&[0; 4]);
        let (n16, cds, cdo) =
            if zip64 { (0xFFFF, 0xFFFF_FFFF, 0xFFFF_FFFF) } else { (n as u16, cd.len() as u32, cd_off as u32) };
        out.extend_from_slice(&n16.to_le_bytes());
        out.extend_from_slice(&n16.to_le_bytes());
        out.extend_from_slice(&cds.to_le_bytes());
        out.extend_from_slice(&cdo.to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out
    }

    #[test]
    fn reads_plain_and_zip64_archives() {
        let files: &[(&str, &[u8])] = &[("a/data.pkl", b"hello"), ("a/data/0", b""), ("a/x", b"xyz")];
        for zip64 in [false, true] {
            let z = build_zip(files, zip64);
            let a = ZipArchive::parse(&z).unwrap();
            assert_eq!(a.entries().len(), 3);
            assert_eq!(a.read("a/data.pkl").unwrap(), Some(&b"hello"[..]));
            assert_eq!(a.read("a/data/0").unwrap(), Some(&b""[..]));
            assert_eq!(a.read("a/x").unwrap(), Some(&b"xyz"[..]));
            assert_eq!(a.read("nope").unwrap(), None);
        }
    }

    #[test]
    fn archive_comment_is_tolerated() {
        let mut z = build_zip(&[("p/version", b"3\n")], false);
        let n = z.len();
        z[n - 2..].copy_from_slice(&5u16.to_le_bytes());
        z.extend_from_slice(b"PK\x05\x06x");
        let a = ZipArchive::parse(&z).unwrap();
        assert_eq!(a.read("p/version").unwrap(), Some(&b"3\n"[..]));
    }

    #[test]
    fn compressed_entry_is_refused() {
        let mut z = build_zip(&[("p/data.pkl", b"abc")], false);
        // method field of the central directory header (offset 10 inside it)
        let cd = z.len() - EOCD_LEN - (CDH_LEN + "p/data.pkl".len());
        z[cd + 10] = 8;
        match ZipArchive::parse(&z) {
            Err(TorchError::CompressedEntry { name, method }) => {
                assert_eq!(name, "p/data.pkl");
                assert_eq!(method, 8);
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn crc_mismatch_is_detected() {
        let mut z = build_zip(&[("p/data.pkl", b"abc")], false);
        z[30 + "p/data.pkl".len()] = b'X';
        let a = ZipArchive::parse(&z).unwrap();
        assert!(matches!(a.read("p/data.pkl"), Err(TorchError::CrcMismatch { .. })));
    }

    #[test]
    fn duplicate_names_are_refused() {
        let z = build_zip(&[("p/a", b"1"), ("p/a", b"2")], false);
        assert!(ZipArchive::parse(&z).is_err());
    }

    #[test]
    fn truncations_and_flips_never_panic() {
        for zip64 in [false, true] {
            let z = build_zip(&[("p/data.pkl", b"abcdef"), ("p/data/0", &[1, 2, 3, 4])], zip64);
            for cut in 0..z.len() {
                let _ = ZipArchive::parse(&z[..cut]);
            }
            for i in 0..z.len() {
                for bit in 0..8 {
                    let mut m = z.clone();
                    m[i] ^= 1 << bit;
                    if let Ok(a) = ZipArchive::parse(&m) {
                        for e in a.entries().to_vec() {
                            let _ = a.read(&e.name);
                        }
                    }
                }
            }
        }
    }
}
