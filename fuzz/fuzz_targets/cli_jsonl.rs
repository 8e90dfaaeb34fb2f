//! The JSONL input reader of `toprt run` (toprt::cli_input).
//! The body and the input layout are in `tests/harness/cli_jsonl.rs`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    toprt_tests::harness::cli_jsonl(data);
});
