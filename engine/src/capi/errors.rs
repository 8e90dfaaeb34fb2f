//! Errors on their way to a C caller: status codes, the thread-local message of
//! `toprt_last_error`, and [`entry`], which every entry point runs its body in.

use super::types::*;
use crate::error::Error;
use std::cell::RefCell;
use std::ffi::CString;
use std::panic::{catch_unwind, AssertUnwindSafe};

/// An error on its way to the caller: a status code and the message for
/// `toprt_last_error`.
#[derive(Debug)]
pub(super) struct CError {
    pub(super) code: toprt_status,
    pub(super) msg: String,
}

impl CError {
    pub(super) fn new(code: toprt_status, msg: impl Into<String>) -> CError {
        CError { code, msg: msg.into() }
    }
}

pub(super) type CResult<T> = Result<T, CError>;

pub(super) fn null(name: &str) -> CError {
    CError::new(TOPRT_ERR_NULL_POINTER, format!("{name} is NULL"))
}

pub(super) fn invalid(msg: impl Into<String>) -> CError {
    CError::new(TOPRT_ERR_INVALID_ARGUMENT, msg)
}

/// Maps an engine error to its status code; the message is the error's own.
pub(super) fn engine_error(e: Error) -> CError {
    let code = match &e {
        Error::Io { .. } => TOPRT_ERR_IO,
        Error::Format(_) | Error::Version { .. } | Error::Checksum(_) | Error::Tensor { .. } => TOPRT_ERR_MODEL,
        Error::Isa(_) => TOPRT_ERR_UNSUPPORTED,
        Error::Tokenizer(_)
        | Error::NoTokenizer
        | Error::Input { .. }
        | Error::EmptyBatch
        | Error::EmptySequence { .. }
        | Error::TooLong { .. }
        | Error::TokenId { .. }
        | Error::TokenTypeId { .. }
        | Error::TypeIdsLength { .. } => TOPRT_ERR_INPUT,
        Error::Options(_) | Error::OverBudget { .. } => TOPRT_ERR_INVALID_ARGUMENT,
    };
    CError::new(code, e.to_string())
}

thread_local! {
    pub(super) static LAST_ERROR: RefCell<Option<CString>> = const { RefCell::new(None) };
}

pub(super) fn set_last_error(msg: &str) {
    // After the replacement there is no NUL byte left, so `CString::new` cannot fail.
    let c = CString::new(msg.replace('\0', "\\0")).unwrap_or_default();
    // `try_with` fails only while this thread's locals are being destroyed.
    let _ = LAST_ERROR.try_with(|e| {
        if let Ok(mut slot) = e.try_borrow_mut() {
            *slot = Some(c);
        }
    });
}

/// Runs the body of an entry point: `Ok` → `TOPRT_OK`; `Err` → its code, with the
/// message stored for `toprt_last_error`; a panic → `TOPRT_ERR_INTERNAL`.
pub(super) fn entry(body: impl FnOnce() -> CResult<()>) -> toprt_status {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => TOPRT_OK,
        Ok(Err(e)) => {
            set_last_error(&e.msg);
            e.code
        }
        Err(payload) => {
            let what = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic without a message".into());
            set_last_error(&format!("internal error in toprt (a bug; please report it): {what}"));
            TOPRT_ERR_INTERNAL
        }
    }
}
