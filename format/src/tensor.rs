//! The tensor directory: each blob's name, precision, shape, layout and place.

use crate::error::{format_err, Error, Result};
use serde::{Deserialize, Serialize};

/// Precision of a tensor's elements — and so of a model's linear weights: one name for
/// the file's `dtype`, the model's precision and the converter's `--dtype`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// The default: what checkpoints hold.
    #[default]
    F32,
    /// bfloat16 (the top 16 bits of an IEEE f32, rounded to nearest even), only in the
    /// `panel32x2` layout.
    Bf16,
    /// Signed 8-bit integers (-127..=127), only in the `panel32x4` layout, with `f32`
    /// scales and column sums beside them (`docs/FORMAT.md`, "int8 files").
    Int8,
}

impl Precision {
    /// Every precision, in the order `--dtype` lists them.
    pub const ALL: [Precision; 3] = [Precision::F32, Precision::Bf16, Precision::Int8];

    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            Precision::F32 => 4,
            Precision::Bf16 => 2,
            Precision::Int8 => 1,
        }
    }

    /// The name used in the manifest and on command lines.
    pub fn name(self) -> &'static str {
        match self {
            Precision::F32 => "f32",
            Precision::Bf16 => "bf16",
            Precision::Int8 => "int8",
        }
    }
}

impl std::fmt::Display for Precision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// An unknown precision name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown dtype '{0}' (expected f32, bf16 or int8)")]
pub struct UnknownPrecision(pub String);

impl std::str::FromStr for Precision {
    type Err = UnknownPrecision;
    fn from_str(s: &str) -> std::result::Result<Precision, UnknownPrecision> {
        Precision::ALL.into_iter().find(|p| p.name() == s).ok_or_else(|| UnknownPrecision(s.to_string()))
    }
}

/// How a tensor's elements are laid out. The packed layouts are defined by the kernels
/// that read them in place (`toprt_kernels::pack`); the file only names them, and asks
/// the caller of [`crate::image::decode`] for their sizes ([`PackedBytes`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Layout {
    /// Plain row-major.
    RowMajor,
    /// Logical `[k, n]` f32 weight packed in 32-column panels.
    Panel32,
    /// Logical `[k, n]` bf16 weight in 32-column panels of `k`-row pairs.
    #[serde(rename = "panel32x2")]
    Panel32x2,
    /// Logical `[k, n]` int8 weight in 32-column panels of `k`-row quads.
    #[serde(rename = "panel32x4")]
    Panel32x4,
}

impl Layout {
    /// The one precision a blob of this packed layout holds (`None` for row-major, which
    /// only `f32` uses).
    pub fn packed_precision(self) -> Option<Precision> {
        match self {
            Layout::RowMajor => None,
            Layout::Panel32 => Some(Precision::F32),
            Layout::Panel32x2 => Some(Precision::Bf16),
            Layout::Panel32x4 => Some(Precision::Int8),
        }
    }

    /// The name used in the manifest.
    pub fn name(self) -> &'static str {
        match self {
            Layout::RowMajor => "row_major",
            Layout::Panel32 => "panel32",
            Layout::Panel32x2 => "panel32x2",
            Layout::Panel32x4 => "panel32x4",
        }
    }
}

/// Bytes of a packed layout holding the logical `[k, n]` weight, `None` if the size
/// overflows. Supplied by the crate that defines the layouts (the engine and the
/// converter pass `toprt_kernels::pack`'s), so a layout's size is written down once.
pub type PackedBytes<'a> = &'a dyn Fn(Layout, usize, usize) -> Option<u64>;

/// One entry of the tensor directory.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TensorEntry {
    pub name: String,
    pub dtype: Precision,
    pub shape: Vec<usize>,
    pub layout: Layout,
    /// Byte offset from the start of the data section; a multiple of 64.
    pub offset: u64,
    /// Byte length of the blob.
    pub length: u64,
    /// CRC-32 (IEEE) of the blob.
    pub crc32: u32,
}

impl TensorEntry {
    /// Bytes the blob must have for its dtype, shape and layout.
    ///
    /// # Errors
    /// An overflowing shape, or a layout the dtype or shape cannot have.
    pub fn expected_len(&self, packed: PackedBytes) -> Result<u64> {
        let bad = |why: &str| -> Error { format_err(format!("tensor '{}': {why}", self.name)) };
        match (self.layout, self.layout.packed_precision()) {
            (Layout::RowMajor, _) if self.dtype == Precision::F32 => self
                .shape
                .iter()
                .try_fold(1usize, |a, &d| a.checked_mul(d))
                .and_then(|e| e.checked_mul(self.dtype.size()))
                .map(|b| b as u64)
                .ok_or_else(|| bad("shape overflows")),
            (layout, Some(p)) if p == self.dtype => match self.shape[..] {
                [k, n] => packed(layout, k, n).ok_or_else(|| bad("shape overflows")),
                _ => Err(bad(&format!("{} layout needs a 2-D [k, n] shape", layout.name()))),
            },
            (layout, _) => Err(bad(&format!("dtype {:?} cannot have the {layout:?} layout", self.dtype))),
        }
    }
}
