//! Checks of the pointers and texts a caller passes, and the `(buf, cap, len)` output
//! protocol of the header.

use super::errors::*;
use super::types::*;
use std::ffi::{c_char, CStr};

/// Checks that a pointer the library will read or write is non-NULL and aligned.
pub(super) fn check_ptr<T>(p: *const T, name: &str) -> CResult<()> {
    if p.is_null() {
        Err(null(name))
    } else if !p.is_aligned() {
        Err(invalid(format!("{name} ({p:p}) is not aligned to {} bytes", std::mem::align_of::<T>())))
    } else {
        Ok(())
    }
}

/// A caller array as a slice, after checking the pointer and the byte size.
///
/// # Safety
/// When `p` is non-NULL and aligned, it must point to `len` initialised `T`s that stay
/// valid and unmodified for `'a`.
pub(super) unsafe fn slice_in<'a, T>(p: *const T, len: usize, name: &str) -> CResult<&'a [T]> {
    check_ptr(p, name)?;
    if len.checked_mul(std::mem::size_of::<T>()).is_none_or(|bytes| bytes > isize::MAX as usize) {
        return Err(invalid(format!("{name}: a length of {len} elements is larger than any array")));
    }
    // SAFETY: non-NULL, aligned, byte size within isize::MAX (checked above); the caller
    // guarantees `len` readable elements.
    Ok(unsafe { std::slice::from_raw_parts(p, len) })
}

/// A text argument: `len` bytes, or up to the NUL when `len == TOPRT_NUL_TERMINATED`.
///
/// # Safety
/// As [`slice_in`], or a NUL-terminated string when `len == TOPRT_NUL_TERMINATED`.
pub(super) unsafe fn text_in<'a>(p: *const c_char, len: usize, name: &str) -> CResult<&'a str> {
    let bytes = if len == TOPRT_NUL_TERMINATED {
        check_ptr(p, name)?;
        // SAFETY: non-NULL; the caller guarantees a NUL-terminated string.
        unsafe { CStr::from_ptr(p) }.to_bytes()
    } else {
        // SAFETY: forwarded to the caller.
        unsafe { slice_in(p.cast::<u8>(), len, name)? }
    };
    std::str::from_utf8(bytes).map_err(|e| {
        CError::new(
            TOPRT_ERR_INVALID_UTF8,
            format!(
                "{name} is not valid UTF-8: invalid byte 0x{:02x} at offset {}",
                bytes[e.valid_up_to()],
                e.valid_up_to()
            ),
        )
    })
}

/// Writes one value through a checked out-pointer.
///
/// # Safety
/// `p` was checked with [`check_ptr`] and points to writable memory for a `T`.
pub(super) unsafe fn put<T>(p: *mut T, v: T) {
    // SAFETY: see the function contract.
    unsafe { p.write(v) }
}

/// The `(buf, cap, len)` protocol of the header: copies `src` into `buf` if it fits;
/// `buf == NULL && cap == 0` is a size query; on a short buffer only `*len` is written.
///
/// # Safety
/// `len` is NULL or writable; `buf` is NULL or points to `cap` writable `T`s.
pub(super) unsafe fn copy_out<T: Copy>(src: &[T], buf: *mut T, cap: usize, len: *mut usize, what: &str) -> CResult<()> {
    check_ptr(len, "len")?;
    if buf.is_null() {
        if cap != 0 {
            return Err(null(&format!("buf (with cap {cap})")));
        }
        // SAFETY: checked above.
        unsafe { put(len, src.len()) };
        return Ok(());
    }
    check_ptr(buf, "buf")?;
    if cap < src.len() {
        // SAFETY: checked above.
        unsafe { put(len, src.len()) };
        return Err(CError::new(
            TOPRT_ERR_BUFFER_TOO_SMALL,
            format!("{what} needs {} elements but cap is {cap}", src.len()),
        ));
    }
    // SAFETY: `buf` holds at least `cap >= src.len()` elements (caller contract) and
    // cannot overlap `src`, which is library-owned.
    unsafe {
        std::ptr::copy_nonoverlapping(src.as_ptr(), buf, src.len());
        put(len, src.len());
    }
    Ok(())
}
