//! The converter's reader of ToP's zs.pt masks (schedule::from_zs_bytes).
//! The body and the input layout are in `tests/harness/torch.rs`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    toprt_tests::harness::zs_pt(data);
});
