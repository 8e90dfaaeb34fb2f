//! Library-wide calls: versions, status names, the last error message.

use super::errors::*;
use super::types::*;
use std::ffi::c_char;

#[no_mangle]
pub extern "C" fn toprt_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}

#[no_mangle]
pub extern "C" fn toprt_abi_version() -> u32 {
    TOPRT_ABI_VERSION
}

#[no_mangle]
pub extern "C" fn toprt_status_name(status: toprt_status) -> *const c_char {
    macro_rules! names {
        ($($name:ident),*) => {
            match status {
                $($name => concat!(stringify!($name), "\0"),)*
                _ => "TOPRT_UNKNOWN_STATUS\0",
            }
        };
    }
    let name: &'static str = names!(
        TOPRT_OK,
        TOPRT_ERR_NULL_POINTER,
        TOPRT_ERR_INVALID_ARGUMENT,
        TOPRT_ERR_INVALID_UTF8,
        TOPRT_ERR_BUFFER_TOO_SMALL,
        TOPRT_ERR_BAD_HANDLE,
        TOPRT_ERR_BUSY,
        TOPRT_ERR_IO,
        TOPRT_ERR_MODEL,
        TOPRT_ERR_INPUT,
        TOPRT_ERR_UNAVAILABLE,
        TOPRT_ERR_OUT_OF_RANGE,
        TOPRT_ERR_UNSUPPORTED,
        TOPRT_ERR_INTERNAL
    );
    name.as_ptr().cast()
}

#[no_mangle]
pub extern "C" fn toprt_last_error() -> *const c_char {
    let stored =
        LAST_ERROR.try_with(|e| e.try_borrow().ok().and_then(|slot| slot.as_ref().map(|c| c.as_ptr()))).ok().flatten();
    // The CString lives in this thread's slot until the next failing call replaces it.
    stored.unwrap_or(c"".as_ptr())
}
