//! The bodies of the fuzz targets in `fuzz/`, one function per reader of untrusted
//! input, plus the tiny models and containers their seeds are made of.
//!
//! They live here, not in the fuzz crate, so that the normal test suite runs exactly the
//! same code: the property tests (`tests/tests/props.rs`) feed them random inputs, and
//! the regression tests (`tests/tests/fuzz_regressions.rs`) feed them every committed
//! seed and every input a fuzzer once crashed on.
//!
//! Each harness accepts any byte string. It panics only when the code under test
//! misbehaves: a panic inside a reader, an opened model that refuses valid ids, a parsed
//! value that does not round-trip, a C call that returns `TOPRT_ERR_INTERNAL` or writes
//! an output on error. An input the reader refuses with an error is a pass.
//!
//! Several targets take a leading flags byte that chooses how the rest is read: either
//! as the raw file, or as its parts (manifest, header JSON, pickle, ...) that the harness
//! assembles into a file with correct lengths and checksums. The second form lets a
//! fuzzer mutate the JSON or the pickle freely without every mutation being stopped by a
//! length field or a CRC.

//!
//! One file per target (and the shared pieces: `bytes.rs`, `tiny.rs`, `seeds.rs`).

mod bytes;
mod capi;
mod cli_jsonl;
mod config;
mod safetensors;
mod seeds;
mod tiny;
mod toprt_file;
mod torch;

pub use bytes::*;
pub use capi::*;
pub use cli_jsonl::*;
pub use config::*;
pub use safetensors::*;
pub use seeds::*;
pub use tiny::*;
pub use toprt_file::*;
pub use torch::*;
