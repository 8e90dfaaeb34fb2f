//! The converter's safetensors reader.
//! The body and the input layout are in `tests/harness/safetensors.rs`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    toprt_tests::harness::safetensors(data);
});
