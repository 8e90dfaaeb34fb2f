//! Unit tests of the boundary: panics, per-thread errors, the handle table.

use super::errors::*;
use super::handles::*;
use super::library::*;
use super::model::*;
use super::result::*;
use super::session::*;
use super::types::*;
use crate::session::{Outputs, SequenceOutput};
use std::ffi::CStr;
use std::sync::Arc;

fn last_error() -> String {
    // SAFETY: toprt_last_error never returns NULL and the string is NUL-terminated.
    unsafe { CStr::from_ptr(toprt_last_error()) }.to_string_lossy().into_owned()
}

fn empty_result() -> *mut toprt_result {
    let set = ResultSet { seqs: vec![SequenceOutput::default()], want: Outputs::default() };
    new_handle(Object::Result(Arc::new(set))).unwrap()
}

#[test]
fn a_panic_becomes_an_internal_error() {
    let code = entry(|| panic!("boom at the boundary"));
    assert_eq!(code, TOPRT_ERR_INTERNAL);
    let msg = last_error();
    assert!(msg.contains("internal error") && msg.contains("boom at the boundary"), "{msg}");
}

#[test]
fn errors_are_per_thread_and_kept_by_successful_calls() {
    std::thread::spawn(|| {
        assert_eq!(last_error(), "");
        // SAFETY: NULL is a valid argument to check.
        assert_eq!(unsafe { toprt_result_count(std::ptr::null(), std::ptr::null_mut()) }, TOPRT_ERR_NULL_POINTER);
        assert_eq!(last_error(), "result is NULL");
        assert_eq!(toprt_abi_version(), TOPRT_ABI_VERSION);
        // SAFETY: a fresh result handle and a writable count.
        let mut n = 0;
        let r = empty_result();
        assert_eq!(unsafe { toprt_result_count(r, &mut n) }, TOPRT_OK);
        assert_eq!(n, 1);
        assert_eq!(last_error(), "result is NULL");
        // SAFETY: as above.
        assert_eq!(unsafe { toprt_result_free(r) }, TOPRT_OK);
    })
    .join()
    .unwrap();
}

#[test]
fn freed_handles_are_detected_even_after_slot_reuse() {
    let a = empty_result();
    // SAFETY: handles are never dereferenced; every value is a valid argument.
    unsafe {
        assert_eq!(toprt_result_free(a), TOPRT_OK);
        assert_eq!(toprt_result_free(a), TOPRT_ERR_BAD_HANDLE);
        assert!(last_error().contains("already freed"), "{}", last_error());
        // Other tests run in parallel, so the slot may or may not be reused; either
        // way the old handle stays dead and the new one works.
        let b = empty_result();
        let mut n = 0;
        assert_eq!(toprt_result_count(a, &mut n), TOPRT_ERR_BAD_HANDLE);
        assert_eq!(toprt_result_count(b, &mut n), TOPRT_OK);
        // A result handle is not a model or a session.
        assert_eq!(toprt_model_free(b.cast()), TOPRT_ERR_BAD_HANDLE);
        assert!(last_error().contains("is a toprt_result handle, not a toprt_model"), "{}", last_error());
        assert_eq!(toprt_session_free(b.cast()), TOPRT_ERR_BAD_HANDLE);
        // Made-up values.
        for bogus in [1usize, 0x1000, usize::MAX, (7 << HALF) | 3] {
            assert_eq!(toprt_result_count(std::ptr::without_provenance(bogus), &mut n), TOPRT_ERR_BAD_HANDLE);
        }
        assert_eq!(toprt_result_free(b), TOPRT_OK);
        assert_eq!(toprt_result_free(std::ptr::null_mut()), TOPRT_OK);
    }
}

#[test]
fn an_empty_table_releases_its_memory_and_old_handles_stay_dead() {
    let object = || Object::Result(Arc::new(ResultSet { seqs: Vec::new(), want: Outputs::default() }));
    let mut t = Table::new();
    let a = t.insert(object()).unwrap();
    let b = t.insert(object()).unwrap();
    assert!(t.remove(a, "a", "toprt_result").is_ok());
    assert!(t.find(a, "a", "toprt_result").is_err());
    assert!(t.remove(b, "b", "toprt_result").is_ok());
    assert_eq!((t.slots.capacity(), t.free.capacity(), t.live), (0, 0, 0));
    // New objects land in the same slots with newer generations.
    let c = t.insert(object()).unwrap();
    let d = t.insert(object()).unwrap();
    assert_eq!((a >> HALF, b >> HALF), (c >> HALF, d >> HALF));
    for old in [a, b] {
        let e = t.find(old, "old", "toprt_result").map(|_| ()).unwrap_err();
        assert_eq!(e.code, TOPRT_ERR_BAD_HANDLE);
    }
    assert!(t.find(c, "c", "toprt_result").is_ok() && t.find(d, "d", "toprt_result").is_ok());
}

#[test]
fn status_names_cover_every_code() {
    for &(name, value) in STATUS {
        // SAFETY: static NUL-terminated strings.
        let got = unsafe { CStr::from_ptr(toprt_status_name(value as i32)) };
        assert_eq!(got.to_str().unwrap(), name);
    }
    // SAFETY: as above.
    let unknown = unsafe { CStr::from_ptr(toprt_status_name(-5)) };
    assert_eq!(unknown.to_str().unwrap(), "TOPRT_UNKNOWN_STATUS");
}
