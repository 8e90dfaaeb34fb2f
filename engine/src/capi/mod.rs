//! The C interface of `libtoprt.a` / `libtoprt.so`, declared in `include/toprt.h`.
//! The rules (errors, buffers, handles, threads) are written out at the top of the header;
//! this module is their implementation.
//!
//! Design choices:
//!
//! * **Handles are table indices, not addresses.** A `toprt_model *` holds
//!   `(slot + 1) << (usize::BITS / 2) | generation`. The slot lives in one global table
//!   guarded by a mutex. Freeing a handle bumps its slot's generation, so a freed handle,
//!   a made-up value, or a handle of another kind is recognised, and no memory is ever
//!   read through it. A `Box` address with a magic field could not give that guarantee:
//!   reading the magic of a freed object is itself undefined behaviour.
//! * **Sessions sit behind a `Mutex`, locked with `try_lock`.** "One thread at a time"
//!   is therefore checked: a second concurrent call gets `TOPRT_ERR_BUSY`. The lock is
//!   taken while the table lock is held, so no `toprt_session_free` can get in between.
//!   A panic during a run poisons the mutex, and that session then reports
//!   `TOPRT_ERR_INTERNAL`.
//! * **Every entry point runs its body inside [`entry`]**, which turns `Err` into a status
//!   code plus a thread-local message, and a panic into `TOPRT_ERR_INTERNAL`. Each body
//!   checks all of its arguments before it writes anything. Outputs are written last,
//!   once nothing else can fail.
//!
//! `tests/tests/capi.rs` checks the header against these files: function names and
//! argument counts, constants (via [`constants`]) and struct layouts (via
//! [`struct_layouts`]).
//!
//! One file per section of the header:
//!
//! | file | what |
//! |---|---|
//! | `types.rs` | status codes, constants, handle types, plain structs |
//! | `errors.rs` | `CError`, the thread-local last error, [`entry`](errors) |
//! | `args.rs` | pointer, text and output-buffer checks |
//! | `handles.rs` | the generation-checked handle table |
//! | `library.rs`, `model.rs`, `session.rs`, `result.rs` | the `extern "C"` functions |

#![allow(non_camel_case_types)]

mod args;
mod errors;
mod handles;
mod library;
mod model;
mod result;
mod session;
mod types;

#[cfg(test)]
mod tests;

pub use library::*;
pub use model::*;
pub use result::*;
pub use session::*;
pub use types::*;
