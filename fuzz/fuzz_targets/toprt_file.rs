//! The engine's .toprt loader (Model::from_bytes), then a session run on what it accepts.
//! The body and the input layout are in `tests/harness/toprt_file.rs`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    toprt_tests::harness::toprt_file(data);
});
