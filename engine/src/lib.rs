//! toprt: a CPU inference runtime for BERT-family encoders (BERT, RoBERTa, MiniLM) built
//! so that token pruning saves real time.
//!
//! ```no_run
//! use toprt::{Input, Model, Outputs, Session, SessionOptions};
//! let model = Model::open("model.toprt")?;
//! let mut session = Session::new(&model, &SessionOptions::default())?;
//! let out = session.run(&[Input::Text("a sentence")], Outputs::default())?;
//! println!("{:?}", out[0].logits);
//! # Ok::<(), toprt::Error>(())
//! ```
//!
//! All sequences of a batch are packed back to back in one `[tokens, hidden]` buffer
//! with a segment table; there is no padding anywhere. See `docs/ARCHITECTURE.md`.

//! The pass, file by file: [`Session`] (`session.rs`) packs a batch into the
//! `Workspace` (`workspace.rs`) and runs `forward.rs`: the embedding, then per layer the
//! linear layers (`linear.rs`, on the weights bound by name in `weights.rs`), attention
//! (`attention.rs`), and pruning (`prune.rs` decides, `compact.rs` removes rows); then
//! `head.rs`. Every split across threads goes through `par.rs`; the threads are the
//! session's `pool.rs`. The C interface is `capi/`.

mod attention;
pub mod capi;
pub mod cli_input;
mod compact;
mod disentangled;
pub mod error;
mod forward;
mod head;
mod linear;
pub mod model;
mod par;
pub mod pool;
pub mod prune;
pub mod session;
pub mod tokenize;
mod weights;
mod workspace;

pub use error::{Error, Result};
pub use model::{Model, OpenOptions};
pub use prune::PruneControl;
pub use session::{Input, Outputs, SequenceOutput, Session, SessionOptions};
/// The `.toprt` file (`toprt-format`), re-exported for the manifest types of the API.
pub use toprt_format as format;
pub use toprt_format::Precision;
pub use toprt_kernels::{Isa, Kernels};
pub use weights::{relative_position_bucket, LinearKind};
pub use workspace::{LayerStats, LayerTiming};
