//! Reader of the safetensors format: an 8-byte little-endian header size, a JSON header
//! `{name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {...}}`, then
//! the raw little-endian data. Every offset is checked against the file before use.

use super::decode;
use super::dtype::DType;
use super::tensor::{Tensor, TensorData};
use std::collections::BTreeMap;

/// Parses a whole safetensors file image into named tensors (in header order).
///
/// # Errors
/// A message naming the tensor or header field that is invalid.
pub fn parse(bytes: &[u8]) -> Result<Vec<Tensor>, String> {
    if bytes.len() < 8 {
        return Err("file shorter than the 8-byte header size".into());
    }
    let mut n = [0u8; 8];
    n.copy_from_slice(&bytes[..8]);
    let hlen = u64::from_le_bytes(n);
    let data_start = 8u64
        .checked_add(hlen)
        .filter(|&e| e <= bytes.len() as u64)
        .ok_or_else(|| format!("header size {hlen} runs past the end of the file ({} bytes)", bytes.len()))?
        as usize;
    let header: BTreeMap<String, serde_json::Value> =
        serde_json::from_slice(&bytes[8..data_start]).map_err(|e| format!("header is not valid JSON: {e}"))?;
    let data = &bytes[data_start..];
    let mut entries = Vec::new();
    for (name, v) in header {
        if name == "__metadata__" {
            continue;
        }
        let dtype = v.get("dtype").and_then(|d| d.as_str()).ok_or_else(|| format!("tensor '{name}': no dtype"))?;
        let shape: Vec<usize> = v
            .get("shape")
            .and_then(|s| s.as_array())
            .ok_or_else(|| format!("tensor '{name}': no shape"))?
            .iter()
            .map(|d| d.as_u64().map(|d| d as usize))
            .collect::<Option<_>>()
            .ok_or_else(|| format!("tensor '{name}': shape is not a list of integers"))?;
        let offs = v
            .get("data_offsets")
            .and_then(|s| s.as_array())
            .filter(|a| a.len() == 2)
            .and_then(|a| Some((a[0].as_u64()?, a[1].as_u64()?)))
            .ok_or_else(|| format!("tensor '{name}': bad data_offsets"))?;
        let (b, e) = offs;
        if b > e || e > data.len() as u64 {
            return Err(format!(
                "tensor '{name}': data_offsets {b}..{e} outside the data section ({} bytes)",
                data.len()
            ));
        }
        let raw = &data[b as usize..e as usize];
        let elems = shape
            .iter()
            .try_fold(1usize, |a, &d| a.checked_mul(d))
            .ok_or_else(|| format!("tensor '{name}': shape overflows"))?;
        let dt = DType::from_safetensors(dtype).ok_or_else(|| format!("tensor '{name}': unsupported dtype {dtype}"))?;
        if elems.checked_mul(dt.size_in_bytes()) != Some(raw.len()) {
            return Err(format!("tensor '{name}': {} bytes for shape {shape:?} of {dtype}", raw.len()));
        }
        let data = if dt.is_float() {
            TensorData::F32(decode::to_f32(dt, raw).map_err(|e| format!("tensor '{name}': {e}"))?)
        } else {
            TensorData::Other(dtype.to_string())
        };
        entries.push((b, Tensor { name, shape, data }));
    }
    entries.sort_by_key(|(b, _)| *b);
    Ok(entries.into_iter().map(|(_, t)| t).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(header: &str, data: &[u8]) -> Vec<u8> {
        let mut v = (header.len() as u64).to_le_bytes().to_vec();
        v.extend_from_slice(header.as_bytes());
        v.extend_from_slice(data);
        v
    }

    #[test]
    fn reads_f32_and_rejects_lies() {
        let data: Vec<u8> = [1.0f32, 2.0, 3.0, 4.0].iter().flat_map(|f| f.to_le_bytes()).collect();
        let ok =
            file(r#"{"a":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]},"__metadata__":{"format":"pt"}}"#, &data);
        let t = parse(&ok).unwrap();
        assert_eq!(t.len(), 1);
        assert_eq!(t[0].shape, vec![2, 2]);
        match &t[0].data {
            TensorData::F32(v) => assert_eq!(v, &[1.0, 2.0, 3.0, 4.0]),
            _ => panic!("not f32"),
        }
        let past = file(r#"{"a":{"dtype":"F32","shape":[2,2],"data_offsets":[0,32]}}"#, &data);
        assert!(parse(&past).unwrap_err().contains("outside"));
        let shape = file(r#"{"a":{"dtype":"F32","shape":[3,2],"data_offsets":[0,16]}}"#, &data);
        assert!(parse(&shape).is_err());
        for cut in 0..ok.len() {
            let _ = parse(&ok[..cut]); // never panics
        }
        let mut huge = ok.clone();
        huge[..8].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(parse(&huge).is_err());
    }
}
