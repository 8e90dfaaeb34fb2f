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

mod attention;
pub mod capi;
pub mod cli_input;
pub mod error;
pub mod forward;
pub mod model;
pub mod pool;
pub mod prune;
pub mod session;
pub mod tokenize;

pub use error::{Error, Result};
pub use forward::{LayerStats, LayerTiming};
pub use model::{Model, OpenOptions};
pub use prune::PruneControl;
pub use session::{Input, Outputs, SequenceOutput, Session, SessionOptions};
/// The `.toprt` file (`toprt-format`), re-exported for the manifest types of the API.
pub use toprt_format as format;
pub use toprt_format::Precision;
pub use toprt_kernels::{Isa, Kernels};
