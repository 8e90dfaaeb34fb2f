//! The `capi_run` target: the C interface with NULL, misaligned and stale arguments.

use std::ffi::{c_char, CStr};
use std::sync::OnceLock;
use toprt::capi::*;

use super::bytes::*;
use super::tiny::*;

/// The C handles of [`TinyModel::BertTopBins`], opened once through
/// `toprt_model_open_bytes`, and of a one-thread session on it. Each calling thread gets
/// its own session (a session serves one thread at a time; parallel tests would get
/// `TOPRT_ERR_BUSY`), kept for the life of the process.
pub fn capi_fixture() -> (usize, usize) {
    static MODEL: OnceLock<usize> = OnceLock::new();
    thread_local! {
        static SESSION: std::cell::OnceCell<usize> = const { std::cell::OnceCell::new() };
    }
    let model = *MODEL.get_or_init(|| {
        let bytes = tiny_model(TinyModel::BertTopBins);
        let mut model = std::ptr::null_mut();
        // SAFETY: a valid buffer and out-pointer.
        let st = unsafe { toprt_model_open_bytes(bytes.as_ptr().cast(), bytes.len(), &mut model) };
        assert_eq!(st, TOPRT_OK, "{}", last_error());
        model.addr()
    });
    let session = SESSION.with(|s| {
        *s.get_or_init(|| {
            let mut opts = std::mem::MaybeUninit::uninit();
            // SAFETY: a writable struct.
            assert_eq!(unsafe { toprt_session_options_init(opts.as_mut_ptr()) }, TOPRT_OK);
            // SAFETY: initialised by the call above.
            let mut opts = unsafe { opts.assume_init() };
            opts.threads = 1;
            let mut session = std::ptr::null_mut();
            let model: *const toprt_model = std::ptr::without_provenance(model);
            // SAFETY: live model handle, readable options, writable out-pointer.
            let st = unsafe { toprt_session_create(model, &opts, &mut session) };
            assert_eq!(st, TOPRT_OK, "{}", last_error());
            session.addr()
        })
    });
    (model, session)
}

pub fn last_error() -> String {
    // SAFETY: toprt_last_error never returns NULL and the string is NUL-terminated.
    unsafe { CStr::from_ptr(toprt_last_error()) }.to_string_lossy().into_owned()
}

/// A status any call may return, never `TOPRT_ERR_INTERNAL` (a caught panic); a failure
/// must leave a message.
fn check_status(what: &str, st: toprt_status) -> toprt_status {
    assert!((TOPRT_OK..TOPRT_ERR_INTERNAL).contains(&st), "{what} returned {st}: {}", last_error());
    if st != TOPRT_OK {
        assert!(!last_error().is_empty(), "{what} failed with {st} and no message");
    }
    st
}

/// Owned buffers of one fuzzed `toprt_input` (the struct points into them).
#[derive(Default)]
struct InputBuffers {
    text: Vec<u8>,
    pair: Vec<u8>,
    ids: Vec<u32>,
    types: Vec<u32>,
}

/// A text argument: `(pointer, length)` in one of the forms the header allows, or NULL.
fn text_arg(b: &mut Bytes, buf: &mut Vec<u8>) -> (*const c_char, usize) {
    let n = b.u8() as usize % 48;
    buf.extend_from_slice(b.take(n));
    match b.u8() % 4 {
        0 => (buf.as_ptr().cast(), buf.len()),
        1 => {
            buf.push(0);
            (buf.as_ptr().cast(), TOPRT_NUL_TERMINATED)
        }
        2 => (std::ptr::null(), buf.len()),
        _ => (buf.as_ptr().cast(), 0),
    }
}

/// Fuzz target `capi_run`: `toprt_session_run` and the result getters, called through
/// the C ABI with fuzzed sessions, options, inputs, id arrays, lengths, texts (including
/// invalid UTF-8) and NULL, misaligned or stale arguments. The pointers are always valid
/// for the lengths passed with them (the caller's side of the contract); everything
/// else may be wrong and must give an error code, never a crash.
pub fn capi_run(data: &[u8]) -> bool {
    let (model, shared) = capi_fixture();
    let model: *const toprt_model = std::ptr::without_provenance(model);
    let mut b = Bytes::new(data);
    let flags = b.u8();
    let mut owned: *mut toprt_session = std::ptr::null_mut();
    let mut max_length = 16;
    let session: *mut toprt_session = match flags & 3 {
        0 => std::ptr::without_provenance_mut(shared),
        1 => {
            let mut o = std::mem::MaybeUninit::uninit();
            // SAFETY: a writable struct.
            assert_eq!(unsafe { toprt_session_options_init(o.as_mut_ptr()) }, TOPRT_OK);
            // SAFETY: initialised by the call above.
            let mut o = unsafe { o.assume_init() };
            o.threads = [1, 1, 0, MAX_THREADS_PLUS_ONE][b.u8() as usize % 4];
            o.truncate = i32::from(b.u8() % 2);
            o.max_tokens = if b.u8().is_multiple_of(8) { b.u64() as usize } else { b.u8() as usize };
            o.max_length = b.u8() as usize % 24;
            o.prune_enabled = i32::from(b.u8() % 2);
            o.keep_scale =
                if b.u8().is_multiple_of(2) { 0.25 + f32::from(b.u8()) / 64.0 } else { f32::from_bits(b.u32()) };
            o.isa = [TOPRT_ISA_AUTO, 1, 2, 0, 1, 2, -1, TOPRT_ISA_AVX512][b.u8() as usize % 8];
            let opts: *const toprt_session_options = if b.u8() % 8 == 7 { std::ptr::null() } else { &o };
            // SAFETY: live model handle; options NULL or readable; out-pointer writable.
            let st = unsafe { toprt_session_create(model, opts, &mut owned) };
            if check_status("toprt_session_create", st) == TOPRT_OK {
                assert!(!owned.is_null());
                if !opts.is_null() && o.max_length != 0 {
                    max_length = o.max_length;
                }
            } else {
                assert!(owned.is_null(), "toprt_session_create wrote its output on error");
            }
            owned
        }
        2 => std::ptr::null_mut(),
        _ if flags & 4 != 0 => {
            // A freed session: its handle must be recognised as stale.
            let mut s = std::ptr::null_mut();
            // SAFETY: live model handle, default options, writable out-pointer.
            let st = unsafe { toprt_session_create(model, std::ptr::null(), &mut s) };
            assert_eq!(check_status("toprt_session_create", st), TOPRT_OK);
            // SAFETY: a live handle, freed once.
            assert_eq!(unsafe { toprt_session_free(s) }, TOPRT_OK);
            s
        }
        // A made-up handle value.
        _ => std::ptr::without_provenance_mut(b.u64() as usize),
    };

    let n = b.u8() as usize % 5;
    let mut bufs: Vec<InputBuffers> = (0..n).map(|_| InputBuffers::default()).collect();
    let mut inputs = Vec::with_capacity(n);
    for buf in &mut bufs {
        let kind = match b.u8() % 5 {
            0 => TOPRT_INPUT_TEXT,
            1 => TOPRT_INPUT_PAIR,
            2 | 3 => TOPRT_INPUT_IDS,
            _ => b.u32(),
        };
        let (text, text_len) = text_arg(&mut b, &mut buf.text);
        let (text_pair, text_pair_len) = text_arg(&mut b, &mut buf.pair);
        let num = b.u8() as usize % 40;
        let vocab = TINY_VOCAB.len() as u32;
        for _ in 0..num {
            let v = b.u8();
            buf.ids.push(if v == 255 { b.u32() } else { u32::from(v) % (vocab + 2) });
        }
        let types_mode = b.u8() % 4;
        buf.types = (0..num as u32).map(|i| if types_mode == 3 { i % 4 } else { i % 2 }).collect();
        // The id pointer: valid, NULL, or misaligned by one byte (the library must refuse
        // it without reading).
        let id_mode = b.u8() % 8;
        let input_ids = match id_mode {
            6 => std::ptr::null(),
            7 => buf.ids.as_ptr().cast::<u8>().wrapping_add(1).cast(),
            _ => buf.ids.as_ptr(),
        };
        let token_type_ids = if types_mode == 0 { std::ptr::null() } else { buf.types.as_ptr() };
        inputs.push(toprt_input {
            kind,
            text,
            text_len,
            text_pair,
            text_pair_len,
            input_ids,
            token_type_ids,
            num_ids: num,
        });
    }
    let mut run_opts = std::mem::MaybeUninit::uninit();
    // SAFETY: a writable struct.
    assert_eq!(unsafe { toprt_run_options_init(run_opts.as_mut_ptr()) }, TOPRT_OK);
    // SAFETY: initialised by the call above.
    let mut run_opts = unsafe { run_opts.assume_init() };
    let opt_mode = b.u8();
    run_opts.outputs = u32::from(b.u8() % 10);
    run_opts.prune = i32::from(b.u8() % 4);
    run_opts.keep_scale =
        if b.u8().is_multiple_of(2) { (1.0 + f32::from(b.u8())) / 32.0 } else { f32::from_bits(b.u32()) };
    let run_opts_ptr: *const toprt_run_options = if opt_mode.is_multiple_of(4) { std::ptr::null() } else { &run_opts };
    let (inputs_ptr, num_inputs) = match b.u8() % 8 {
        6 => (std::ptr::null(), n),
        7 => (std::ptr::null(), b.u64() as usize),
        _ => (inputs.as_ptr(), n),
    };
    let mut result: *mut toprt_result = std::ptr::null_mut();
    let out: *mut *mut toprt_result = if b.u8() % 16 == 15 { std::ptr::null_mut() } else { &mut result };
    // SAFETY: every non-NULL, aligned pointer is valid for the length passed with it;
    // misaligned id pointers are never read (the call refuses them first).
    let st = unsafe { toprt_session_run(session, inputs_ptr, num_inputs, run_opts_ptr, out) };
    check_status("toprt_session_run", st);
    if st != TOPRT_OK {
        assert!(result.is_null(), "toprt_session_run wrote a result on error {st}");
    } else {
        assert!(!result.is_null());
        check_result(result, &inputs, max_length);
        // SAFETY: a live result handle, freed once; the second call must see it is stale.
        unsafe {
            assert_eq!(toprt_result_free(result), TOPRT_OK);
            assert_eq!(toprt_result_free(result), TOPRT_ERR_BAD_HANDLE);
        }
    }
    if !owned.is_null() {
        // SAFETY: a live session handle created above.
        assert_eq!(unsafe { toprt_session_free(owned) }, TOPRT_OK, "{}", last_error());
    }
    st == TOPRT_OK
}

/// `TOPRT_ERR_INVALID_ARGUMENT` territory for `options->threads`.
const MAX_THREADS_PLUS_ONE: u32 = 1025;

/// Reads every output of a successful run with the size-query, exact and short buffers,
/// and checks them against the inputs.
fn check_result(r: *mut toprt_result, inputs: &[toprt_input], max_length: usize) {
    let mut count = 0;
    // SAFETY (this whole function): `r` is a live result handle; every buffer pointer is
    // NULL with cap 0 or valid for `cap` elements; every out-pointer is writable.
    unsafe {
        assert_eq!(toprt_result_count(r, &mut count), TOPRT_OK);
        assert_eq!(count, inputs.len());
        for (i, input) in inputs.iter().enumerate() {
            let mut len = usize::MAX;
            assert_eq!(toprt_result_input_ids(r, i, std::ptr::null_mut(), 0, &mut len), TOPRT_OK);
            assert!(len >= 1 && len <= max_length, "sequence {i}: {len} tokens, max {max_length}");
            let mut ids = vec![0u32; len];
            let mut got = 0;
            assert_eq!(toprt_result_input_ids(r, i, ids.as_mut_ptr(), len, &mut got), TOPRT_OK);
            assert_eq!(got, len);
            let mut truncated = -1;
            assert_eq!(toprt_result_truncated(r, i, &mut truncated), TOPRT_OK);
            if input.kind == TOPRT_INPUT_IDS {
                let given = std::slice::from_raw_parts(input.input_ids, input.num_ids);
                assert_eq!(ids[..], given[..len], "sequence {i}: ids changed");
                assert_eq!(truncated == 1, input.num_ids > len);
            }
            let mut short = 0;
            if len > 1 {
                let st = toprt_result_input_ids(r, i, ids.as_mut_ptr(), len - 1, &mut short);
                assert_eq!((st, short), (TOPRT_ERR_BUFFER_TOO_SMALL, len));
            }
            let mut types = vec![0u32; len];
            assert_eq!(toprt_result_token_type_ids(r, i, types.as_mut_ptr(), len, &mut got), TOPRT_OK);
            let getters: [(
                &str,
                unsafe extern "C" fn(*const toprt_result, usize, *mut f32, usize, *mut usize) -> toprt_status,
            ); 3] = [
                ("logits", toprt_result_logits),
                ("embedding", toprt_result_embedding),
                ("hidden states", toprt_result_hidden_states),
            ];
            for (what, get) in getters {
                let mut n = 0;
                let st = check_status(what, get(r, i, std::ptr::null_mut(), 0, &mut n));
                if st == TOPRT_OK {
                    let mut v = vec![0f32; n];
                    assert_eq!(get(r, i, v.as_mut_ptr(), n, &mut got), TOPRT_OK);
                } else {
                    assert_eq!(st, TOPRT_ERR_UNAVAILABLE, "{what}");
                }
            }
            let mut locations = 0;
            assert_eq!(toprt_result_kept_locations(r, i, &mut locations), TOPRT_OK);
            for loc in 0..=locations {
                let (mut layer, mut n) = (0u32, 0usize);
                let st = toprt_result_kept(r, i, loc, &mut layer, std::ptr::null_mut(), 0, &mut n);
                if loc == locations {
                    assert_eq!(st, TOPRT_ERR_OUT_OF_RANGE);
                    continue;
                }
                assert_eq!(st, TOPRT_OK, "{}", last_error());
                let mut kept = vec![0u32; n];
                assert_eq!(toprt_result_kept(r, i, loc, &mut layer, kept.as_mut_ptr(), n, &mut got), TOPRT_OK);
                assert!(kept.windows(2).all(|w| w[0] < w[1]) && kept.iter().all(|&p| (p as usize) < len));
            }
        }
        let mut n = 0;
        assert_eq!(toprt_result_input_ids(r, inputs.len(), std::ptr::null_mut(), 0, &mut n), TOPRT_ERR_OUT_OF_RANGE);
    }
}
