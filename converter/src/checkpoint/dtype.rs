//! The element types a checkpoint may hold, their sizes, and their names in each format:
//! safetensors header names (`"BF16"`), torch dtype objects (`torch.bfloat16`) and torch's
//! legacy typed storage classes (`torch.BFloat16Storage`). Both readers accept exactly
//! this set; [`super::decode::to_f32`] turns any of them into `f32`.

/// Element type of a checkpoint tensor (stored little-endian).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DType {
    /// `F32`, `torch.float32`
    F32,
    /// `F64`, `torch.float64`
    F64,
    /// `F16`, `torch.float16`
    F16,
    /// `BF16`, `torch.bfloat16`
    BF16,
    /// `I64`, `torch.int64`
    I64,
    /// `I32`, `torch.int32`
    I32,
    /// `I16`, `torch.int16`
    I16,
    /// `I8`, `torch.int8`
    I8,
    /// `U8`, `torch.uint8`
    U8,
    /// `BOOL`, `torch.bool` (one byte per element, 0 or 1)
    Bool,
}

impl DType {
    /// Size of one element in bytes.
    #[must_use]
    pub fn size_in_bytes(self) -> usize {
        match self {
            DType::F64 | DType::I64 => 8,
            DType::F32 | DType::I32 => 4,
            DType::F16 | DType::BF16 | DType::I16 => 2,
            DType::I8 | DType::U8 | DType::Bool => 1,
        }
    }

    /// Whether the elements are floating-point (the only tensors that can be weights).
    #[must_use]
    pub fn is_float(self) -> bool {
        matches!(self, DType::F32 | DType::F64 | DType::F16 | DType::BF16)
    }

    /// Maps a safetensors header dtype (`"F32"`, `"BOOL"`, ...).
    #[must_use]
    pub fn from_safetensors(name: &str) -> Option<Self> {
        Some(match name {
            "F32" => DType::F32,
            "F64" => DType::F64,
            "F16" => DType::F16,
            "BF16" => DType::BF16,
            "I64" => DType::I64,
            "I32" => DType::I32,
            "I16" => DType::I16,
            "I8" => DType::I8,
            "U8" => DType::U8,
            "BOOL" => DType::Bool,
            _ => return None,
        })
    }

    /// The torch name of the dtype, e.g. `"float32"`.
    #[must_use]
    pub fn torch_name(self) -> &'static str {
        match self {
            DType::F32 => "float32",
            DType::F64 => "float64",
            DType::F16 => "float16",
            DType::BF16 => "bfloat16",
            DType::I64 => "int64",
            DType::I32 => "int32",
            DType::I16 => "int16",
            DType::I8 => "int8",
            DType::U8 => "uint8",
            DType::Bool => "bool",
        }
    }

    /// Maps a legacy typed storage class name (`"FloatStorage"`, ...).
    pub(crate) fn from_torch_storage_class(name: &str) -> Option<Self> {
        Some(match name {
            "FloatStorage" => DType::F32,
            "DoubleStorage" => DType::F64,
            "HalfStorage" => DType::F16,
            "BFloat16Storage" => DType::BF16,
            "LongStorage" => DType::I64,
            "IntStorage" => DType::I32,
            "ShortStorage" => DType::I16,
            "CharStorage" => DType::I8,
            "ByteStorage" => DType::U8,
            "BoolStorage" => DType::Bool,
            _ => return None,
        })
    }

    /// Maps a `torch.<dtype>` attribute name (`"float32"`, `"half"`, ...).
    pub(crate) fn from_torch_name(name: &str) -> Option<Self> {
        Some(match name {
            "float32" | "float" => DType::F32,
            "float64" | "double" => DType::F64,
            "float16" | "half" => DType::F16,
            "bfloat16" => DType::BF16,
            "int64" | "long" => DType::I64,
            "int32" | "int" => DType::I32,
            "int16" | "short" => DType::I16,
            "int8" => DType::I8,
            "uint8" => DType::U8,
            "bool" => DType::Bool,
            _ => return None,
        })
    }
}
