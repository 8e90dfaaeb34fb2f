//! The one decoder from checkpoint bytes to `f32`, shared by the safetensors and torch
//! readers (and so by ToP's `zs.pt`). Elements are little-endian; f16 and bf16 go through
//! the `half` crate, whose conversions to `f32` are exact (a signalling NaN comes back
//! quiet, as the hardware's conversion does).

use super::dtype::DType;
use half::{bf16, f16};

/// Decodes `bytes`, a run of little-endian `dtype` elements, to `f32`.
///
/// f16, bf16 and f32 are exact; f64 rounds to nearest; integers convert with `as` (large
/// 64/32-bit values lose precision); bools become 0.0 / 1.0.
///
/// # Errors
/// A message when `bytes` is not a whole number of elements (the caller names the tensor).
#[allow(clippy::cast_possible_truncation, clippy::cast_precision_loss)]
pub fn to_f32(dtype: DType, bytes: &[u8]) -> Result<Vec<f32>, String> {
    let size = dtype.size_in_bytes();
    if !bytes.len().is_multiple_of(size) {
        return Err(format!("{} bytes are not a whole number of {size}-byte {dtype:?} elements", bytes.len()));
    }
    let d = bytes;
    Ok(match dtype {
        DType::F32 => d.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect(),
        DType::F64 => d
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) as f32)
            .collect(),
        DType::F16 => d.chunks_exact(2).map(|c| f16::from_le_bytes([c[0], c[1]]).to_f32()).collect(),
        DType::BF16 => d.chunks_exact(2).map(|c| bf16::from_le_bytes([c[0], c[1]]).to_f32()).collect(),
        DType::I64 => d
            .chunks_exact(8)
            .map(|c| i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) as f32)
            .collect(),
        DType::I32 => d.chunks_exact(4).map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f32).collect(),
        DType::I16 => d.chunks_exact(2).map(|c| f32::from(i16::from_le_bytes([c[0], c[1]]))).collect(),
        DType::I8 => d.iter().map(|&b| f32::from(i8::from_le_bytes([b]))).collect(),
        DType::U8 => d.iter().map(|&b| f32::from(b)).collect(),
        DType::Bool => d.iter().map(|&b| if b != 0 { 1.0 } else { 0.0 }).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn every_u16() -> Vec<u8> {
        (0..=u16::MAX).flat_map(u16::to_le_bytes).collect()
    }

    #[test]
    fn f16_is_exact() {
        let got = to_f32(DType::F16, &every_u16()).unwrap();
        for (h, got) in (0..=u16::MAX).zip(got) {
            let sign = if h >> 15 == 1 { -1.0f64 } else { 1.0 };
            let e = i32::from((h >> 10) & 0x1f);
            let m = f64::from(h & 0x3ff);
            let want = match e {
                0 => sign * m * 2f64.powi(-24),
                31 if m == 0.0 => sign * f64::INFINITY,
                31 => f64::NAN,
                _ => sign * (1.0 + m / 1024.0) * 2f64.powi(e - 15),
            };
            if want.is_nan() {
                assert!(got.is_nan(), "{h:#06x}");
                assert_eq!(got.is_sign_negative(), sign < 0.0, "{h:#06x}");
            } else {
                assert_eq!(f64::from(got), want, "{h:#06x}");
                assert_eq!(got.is_sign_negative(), sign < 0.0, "{h:#06x}");
            }
        }
    }

    #[test]
    fn bf16_is_the_top_half_of_f32() {
        let got = to_f32(DType::BF16, &every_u16()).unwrap();
        for (h, got) in (0..=u16::MAX).zip(got) {
            let want = f32::from_bits(u32::from(h) << 16);
            if want.is_nan() {
                // Quietened, sign and payload kept.
                assert_eq!(got.to_bits(), want.to_bits() | 0x0040_0000, "{h:#06x}");
            } else {
                assert_eq!(got.to_bits(), want.to_bits(), "{h:#06x}");
            }
        }
    }

    #[test]
    fn every_dtype() {
        use DType::*;
        let t = |dtype, data: Vec<u8>| to_f32(dtype, &data).unwrap();
        assert_eq!(t(F64, (-1.5f64).to_le_bytes().to_vec()), [-1.5]);
        assert_eq!(t(F64, 0.1f64.to_le_bytes().to_vec()), [0.1f32]);
        assert_eq!(t(BF16, vec![0x80, 0x3f]), [1.0]);
        assert_eq!(t(F16, vec![0x00, 0x3c]), [1.0]);
        assert_eq!(t(I64, (-7i64).to_le_bytes().to_vec()), [-7.0]);
        assert_eq!(t(I32, 9i32.to_le_bytes().to_vec()), [9.0]);
        assert_eq!(t(I16, (-2i16).to_le_bytes().to_vec()), [-2.0]);
        assert_eq!(t(I8, vec![0xff]), [-1.0]);
        assert_eq!(t(U8, vec![0xff]), [255.0]);
        assert_eq!(t(Bool, vec![0, 1, 2]), [0.0, 1.0, 1.0]);
        assert_eq!(t(F32, 0.25f32.to_le_bytes().to_vec()), [0.25]);
        assert_eq!(t(F32, Vec::new()), [0.0f32; 0]);
    }

    #[test]
    fn partial_elements_are_refused() {
        for dtype in [DType::F32, DType::F64, DType::F16, DType::BF16, DType::I64, DType::I32, DType::I16] {
            let e = to_f32(dtype, &[0; 9]).unwrap_err();
            assert!(e.contains("9 bytes are not a whole number"), "{e}");
        }
        assert_eq!(to_f32(DType::U8, &[0; 9]).unwrap().len(), 9);
    }
}
