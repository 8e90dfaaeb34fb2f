//! toprt_session_run and the result getters through the C ABI.
//! The body and the input layout are in `tests/harness/capi.rs`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    toprt_tests::harness::capi_run(data);
});
