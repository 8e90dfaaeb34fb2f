//! Torch zip archives (`pytorch_model.bin`, `zs.pt`) and the `torch_pickle` / `zs_pt` targets.

use super::bytes::*;

/// A stored (uncompressed) ZIP archive of `files`, as `torch.save` writes them.
pub fn stored_zip(files: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut cd = Vec::new();
    for (name, data) in files {
        let (name, off, crc) = (name.as_bytes(), out.len() as u32, crc32fast::hash(data));
        let fixed = |v: &mut Vec<u8>| {
            v.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0]); // flags, method, time, date
            v.extend_from_slice(&crc.to_le_bytes());
            v.extend_from_slice(&(data.len() as u32).to_le_bytes());
            v.extend_from_slice(&(data.len() as u32).to_le_bytes());
            v.extend_from_slice(&(name.len() as u16).to_le_bytes());
            v.extend_from_slice(&0u16.to_le_bytes()); // extra length
        };
        out.extend_from_slice(&0x0403_4b50u32.to_le_bytes());
        out.extend_from_slice(&20u16.to_le_bytes());
        fixed(&mut out);
        out.extend_from_slice(name);
        out.extend_from_slice(data);
        cd.extend_from_slice(&0x0201_4b50u32.to_le_bytes());
        cd.extend_from_slice(&[20, 0, 20, 0]);
        fixed(&mut cd);
        cd.extend_from_slice(&[0; 10]); // comment length, disk, internal and external attributes
        cd.extend_from_slice(&off.to_le_bytes());
        cd.extend_from_slice(name);
    }
    let cd_off = out.len() as u32;
    out.extend_from_slice(&cd);
    out.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&(files.len() as u16).to_le_bytes());
    out.extend_from_slice(&(files.len() as u16).to_le_bytes());
    out.extend_from_slice(&(cd.len() as u32).to_le_bytes());
    out.extend_from_slice(&cd_off.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out
}

/// The entries of a ZIP archive without a comment, by walking its central directory
/// (for making seeds out of real `torch.save` files; `None` if it is not one).
pub fn zip_entries(zip: &[u8]) -> Option<Vec<(String, Vec<u8>)>> {
    let u16_at = |o: usize| Some(u16::from_le_bytes(zip.get(o..o + 2)?.try_into().ok()?) as usize);
    let u32_at = |o: usize| Some(u32::from_le_bytes(zip.get(o..o + 4)?.try_into().ok()?) as usize);
    let eocd = zip.len().checked_sub(22)?;
    let (n, mut at) = (u16_at(eocd + 10)?, u32_at(eocd + 16)?);
    let mut files = Vec::new();
    for _ in 0..n {
        let (size, name_len) = (u32_at(at + 24)?, u16_at(at + 28)?);
        let (extra, comment, lho) = (u16_at(at + 30)?, u16_at(at + 32)?, u32_at(at + 42)?);
        let name = String::from_utf8(zip.get(at + 46..at + 46 + name_len)?.to_vec()).ok()?;
        let start = lho + 30 + u16_at(lho + 26)? + u16_at(lho + 28)?;
        files.push((name, zip.get(start..start + size)?.to_vec()));
        at += 46 + name_len + extra + comment;
    }
    Some(files)
}

/// The parts form of a torch checkpoint: `u16 pickle length, pickle, then entries
/// (u8 name length, name, u32 data length, data)` with names below `archive/`.
pub fn torch_parts(pickle: &[u8], entries: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut out = (pickle.len() as u16).to_le_bytes().to_vec();
    out.extend_from_slice(pickle);
    for (name, data) in entries {
        out.push(name.len() as u8);
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(&(data.len() as u32).to_le_bytes());
        out.extend_from_slice(data);
    }
    out
}

/// The parts form of a real `torch.save` archive (`None` if it is not one).
pub fn torch_parts_of(zip: &[u8]) -> Option<Vec<u8>> {
    let files = zip_entries(zip)?;
    let (pkl_name, pkl) = files.iter().find(|(n, _)| n.ends_with("/data.pkl"))?;
    let prefix = pkl_name.strip_suffix("data.pkl")?;
    let rest: Vec<(String, Vec<u8>)> = files
        .iter()
        .filter(|(n, _)| n != pkl_name)
        .filter_map(|(n, d)| Some((n.strip_prefix(prefix)?.to_string(), d.clone())))
        .collect();
    Some(torch_parts(pkl, &rest))
}

/// Assembles the parts form (see [`torch_parts`]) into an archive; lengths that run past
/// the input are cut short.
pub fn assemble_torch(parts: &[u8]) -> Vec<u8> {
    let mut b = Bytes::new(parts);
    let n = b.u16() as usize;
    let mut files = vec![("archive/data.pkl".to_string(), b.take(n).to_vec())];
    loop {
        let n = b.u8() as usize;
        let name = String::from_utf8_lossy(b.take(n)).into_owned();
        let len = b.u32() as usize;
        if n == 0 && len == 0 {
            break;
        }
        files.push((format!("archive/{name}"), b.take(len).to_vec()));
    }
    stored_zip(&files)
}

/// `data[0]` even: the rest is a raw archive; odd: the parts form.
fn torch_bytes(flags: u8, rest: &[u8]) -> Vec<u8> {
    if flags & 1 == 0 {
        rest.to_vec()
    } else {
        assemble_torch(rest)
    }
}

/// Fuzz target `torch_pickle`: the restricted unpickler and ZIP reader that read
/// `pytorch_model.bin`. `data[0]` chooses the raw or the parts form (see
/// [`assemble_torch`]).
pub fn torch_pickle(data: &[u8]) -> bool {
    let Some((&flags, rest)) = data.split_first() else { return false };
    let bytes = torch_bytes(flags, rest);
    let Ok(ckpt) = toprt_convert::checkpoint::torch::read_torch_checkpoint_from_bytes(&bytes) else { return false };
    let mut names = std::collections::HashSet::new();
    for t in &ckpt.tensors {
        assert!(names.insert(t.name.as_str()), "duplicate tensor name {}", t.name);
        let numel: usize = t.shape.iter().product();
        assert_eq!(t.data.len(), numel * t.dtype.size_in_bytes(), "tensor {} has the wrong byte count", t.name);
        assert_eq!(t.to_f32_vec().map(|v| v.len()).ok(), Some(numel), "tensor {}", t.name);
    }
    true
}

/// Fuzz target `zs_pt`: ToP's `zs.pt` reader. `data[0]` chooses the raw or parts form,
/// `data[1]` is the model's layer count.
pub fn zs_pt(data: &[u8]) -> bool {
    let mut b = Bytes::new(data);
    let (flags, layers) = (b.u8(), b.u8() as usize);
    let bytes = torch_bytes(flags, b.rest());
    let Ok(rules) = toprt_convert::schedule::from_zs_bytes(&bytes, layers) else { return false };
    // What the converter writes must be what the engine accepts.
    let mut last = 0;
    for r in &rules {
        assert!(r.layer > last && r.layer < layers, "rule at layer {} of {layers}", r.layer);
        last = r.layer;
        if let Err(e) = r.rule.validate() {
            panic!("zs.pt gave a keep-rule the engine refuses: {e}");
        }
    }
    true
}
