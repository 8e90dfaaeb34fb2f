//! toprt-format: the `.toprt` model file — a fixed 64-byte header, a JSON manifest, then
//! 64-byte aligned tensor blobs (`docs/FORMAT.md` describes every byte).
//!
//! * [`header`]: the header's fields and their byte offsets, written down once.
//! * [`manifest`]: the encoder's configuration, the head, the tokenizer, the keep-rules.
//! * [`tensor`]: the tensor directory, [`Precision`] and [`Layout`].
//! * [`image`]: the one encoder ([`image::encode`], [`image::assemble`]) and decoder
//!   ([`image::decode`]) of a whole file image. The engine reads through it, the
//!   converter writes through it, and the tests and fuzz harness build files through
//!   it.
//!
//! This crate depends on no other crate of toprt. The packed weight layouts are
//! defined by the kernels that read them (`toprt_kernels::pack`); the file names them,
//! and [`image::decode`] asks its caller for their byte sizes.

pub mod error;
pub mod header;
pub mod image;
pub mod manifest;
pub mod tensor;

#[cfg(test)]
mod tests;

pub use error::{Error, Result};
pub use header::{Header, ALIGN, FORMAT_VERSION, HEADER_LEN, MAGIC};
pub use manifest::{
    Arch, Classifier, Disentangled, HeadConfig, KeepRule, LayerKeepRule, LocalAttention, Manifest, ModelConfig,
    Pooling, Quantization, Rotary, Task, TokenizerSpec, MPNET_BUCKETS, MPNET_MAX_DISTANCE,
};
pub use tensor::{Layout, PackedBytes, Precision, TensorEntry, UnknownPrecision};
