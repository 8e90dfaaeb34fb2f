//! The converter's config.json mapping and head choice.
//! The body and the input layout are in `tests/harness/config.rs`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    toprt_tests::harness::config_json(data);
});
