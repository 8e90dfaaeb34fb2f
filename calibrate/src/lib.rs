//! toprt-calibrate: fits a converted model to the data it will see, without training.
//!
//! * [`data`]: calibration text (JSONL or TSV) and its fingerprint.
//! * [`int8`]: the int8 precision guard: outlier channels and the linears kept in `f32`,
//!   chosen by each linear's output error on real text.
//! * [`prune`]: keep-rule search: per-location top-k ratios that stay closest to the
//!   dense model on real text within a MAC budget (no training); [`chart`] draws its
//!   report.
//!
//! It uses the engine to run the model (the converter never does), and writes through
//! the converter's writer, so a calibrated file is an ordinary `.toprt` file.
//!
//! [`cli::main`] is the `toprt-calibrate` command itself, taking its arguments.

pub mod chart;
pub mod cli;
pub mod data;
pub mod error;
pub mod int8;
pub mod prune;

pub use error::{Error, Result};
