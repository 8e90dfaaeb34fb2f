//! The `safetensors` target.

use toprt_convert::checkpoint::TensorData;

/// A safetensors file from a header and a data section.
pub fn assemble_safetensors(header: &[u8], data: &[u8]) -> Vec<u8> {
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(header);
    out.extend_from_slice(data);
    out
}

/// Fuzz target `safetensors`: the converter's safetensors reader. `data[0]` even: the
/// rest is a raw file; odd: `header JSON, 0x00, data` (the length prefix is computed).
pub fn safetensors(data: &[u8]) -> bool {
    let Some((&flags, rest)) = data.split_first() else { return false };
    let bytes = if flags & 1 == 0 {
        rest.to_vec()
    } else {
        match rest.iter().position(|&b| b == 0) {
            Some(i) => assemble_safetensors(&rest[..i], &rest[i + 1..]),
            None => assemble_safetensors(rest, &[]),
        }
    };
    let Ok(tensors) = toprt_convert::checkpoint::safetensors::parse(&bytes) else { return false };
    for t in &tensors {
        let numel: usize = t.shape.iter().product();
        if let TensorData::F32(v) = &t.data {
            assert_eq!(v.len(), numel, "tensor {} of shape {:?}", t.name, t.shape);
        }
    }
    true
}
