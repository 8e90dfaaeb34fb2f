//! `engine-bench`: per-layer latency of a toprt model, dense and pruned.
//!
//! With no arguments it builds (once, deterministically, cached under `target/`) a
//! BERT-base-shaped model with random weights and a ToP-style keep-rule schedule, and
//! times batch 1 × 128 tokens dense and pruned (alternating run by run), layer by layer.
//! `--input FILE` times real texts instead and reports how much pruning changes the
//! answers.
//!
//! [`cli::main`] is the command itself, taking its arguments: the `engine-bench` binary
//! (`src/main.rs`) and the Python package (`python -m toprt bench`) both call it.

pub mod cli;
mod report;
mod texts;
