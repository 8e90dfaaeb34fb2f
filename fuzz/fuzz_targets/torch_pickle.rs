//! The converter's torch zip + restricted unpickler (pytorch_model.bin).
//! The body and the input layout are in `tests/harness/torch.rs`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    toprt_tests::harness::torch_pickle(data);
});
