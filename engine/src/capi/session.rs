//! `toprt_session_*` and `toprt_run_options_init`: creating a session from C options,
//! and running a batch of C inputs into a result handle.

use super::args::*;
use super::errors::*;
use super::handles::*;
use super::types::*;
use crate::error::Error;
use crate::prune::PruneControl;
use crate::session::{Input, Outputs, Session, SessionOptions};
use std::ffi::{c_char, CString};
use std::sync::{Arc, Mutex};
use toprt_kernels::Isa;

fn default_session_options() -> toprt_session_options {
    let d = SessionOptions::default();
    toprt_session_options {
        threads: 0,
        truncate: d.truncate as i32,
        max_tokens: d.max_tokens,
        max_length: 0,
        prune_enabled: d.prune.enabled as i32,
        keep_scale: d.prune.keep_scale,
        isa: TOPRT_ISA_AUTO,
    }
}

fn isa_of(code: i32) -> CResult<Option<Isa>> {
    match code {
        TOPRT_ISA_AUTO => Ok(None),
        TOPRT_ISA_SCALAR => Ok(Some(Isa::Scalar)),
        TOPRT_ISA_AVX2 => Ok(Some(Isa::Avx2)),
        TOPRT_ISA_AVX512 => Ok(Some(Isa::Avx512)),
        TOPRT_ISA_PORTABLE => Ok(Some(Isa::Portable)),
        other => Err(invalid(format!("options->isa is {other}: expected a TOPRT_ISA_* value (0 to 4)"))),
    }
}

fn code_of(isa: Isa) -> i32 {
    match isa {
        Isa::Scalar => TOPRT_ISA_SCALAR,
        Isa::Avx2 => TOPRT_ISA_AVX2,
        Isa::Avx512 => TOPRT_ISA_AVX512,
        Isa::Portable => TOPRT_ISA_PORTABLE,
    }
}

fn session_options(o: &toprt_session_options) -> CResult<SessionOptions> {
    if o.threads > MAX_THREADS {
        return Err(invalid(format!("options->threads is {}: at most {MAX_THREADS}", o.threads)));
    }
    if o.max_tokens > MAX_TOKENS {
        return Err(invalid(format!("options->max_tokens is {}: at most {MAX_TOKENS}", o.max_tokens)));
    }
    let prune = PruneControl { enabled: o.prune_enabled != 0, keep_scale: o.keep_scale };
    prune.validate().map_err(|e| invalid(format!("options->keep_scale: {e}")))?;
    Ok(SessionOptions {
        threads: o.threads as usize,
        max_tokens: if o.max_tokens == 0 { SessionOptions::default().max_tokens } else { o.max_tokens },
        max_length: (o.max_length != 0).then_some(o.max_length),
        truncate: o.truncate != 0,
        isa: isa_of(o.isa)?,
        prune,
    })
}

/// # Safety
/// `options` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn toprt_session_options_init(options: *mut toprt_session_options) -> toprt_status {
    entry(|| {
        check_ptr(options, "options")?;
        // SAFETY: checked above.
        unsafe { put(options, default_session_options()) };
        Ok(())
    })
}

/// # Safety
/// `options` is NULL or readable; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn toprt_session_create(
    model: *const toprt_model,
    options: *const toprt_session_options,
    out: *mut *mut toprt_session,
) -> toprt_status {
    entry(|| {
        let model = model_of(model, "model")?;
        let opts = if options.is_null() {
            SessionOptions::default()
        } else {
            check_ptr(options, "options")?;
            // SAFETY: non-NULL and aligned; the caller guarantees a readable struct.
            session_options(unsafe { &*options })?
        };
        check_ptr(out, "out")?;
        let session = Session::new(&model, &opts).map_err(|e| match e {
            // The tokenizer refuses a max_length shorter than its special tokens.
            Error::Tokenizer(msg) => invalid(format!("options->max_length: {msg}")),
            e => engine_error(e),
        })?;
        let h = new_handle(Object::Session(Arc::new(Mutex::new(session))))?;
        // SAFETY: checked above.
        unsafe { put(out, h) };
        Ok(())
    })
}

/// # Safety
/// `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn toprt_session_get_info(
    session: *const toprt_session,
    out: *mut toprt_session_info,
) -> toprt_status {
    entry(|| {
        check_ptr(out, "out")?;
        let info = with_session(session, |s| {
            let p = s.prune_control();
            Ok(toprt_session_info {
                threads: s.threads(),
                max_length: s.max_length(),
                max_tokens: s.max_tokens(),
                isa: code_of(s.isa()),
                prune_enabled: p.enabled as i32,
                keep_scale: p.keep_scale,
                linear_precision: super::model::precision_code(s.linear_precision()),
            })
        })?;
        // SAFETY: checked above.
        unsafe { put(out, info) };
        Ok(())
    })
}

/// # Safety
/// `buf` is NULL or holds `cap` writable bytes; `len` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn toprt_session_kernel(
    session: *const toprt_session,
    buf: *mut c_char,
    cap: usize,
    len: *mut usize,
) -> toprt_status {
    entry(|| {
        let text = with_session(session, |s| {
            Ok(CString::new(format!("{}; {}", s.linear_kernel(), s.linear_choice()).replace('\0', ""))
                .unwrap_or_default())
        })?;
        // SAFETY: forwarded to the caller.
        unsafe { copy_out(text.as_bytes_with_nul(), buf.cast::<u8>(), cap, len, "the kernel description") }
    })
}

/// # Safety
/// `session` is NULL or a value returned by toprt (anything else is detected).
#[no_mangle]
pub unsafe extern "C" fn toprt_session_set_prune(
    session: *mut toprt_session,
    enabled: i32,
    keep_scale: f32,
) -> toprt_status {
    entry(|| {
        let ctl = PruneControl { enabled: enabled != 0, keep_scale };
        ctl.validate().map_err(|e| invalid(format!("keep_scale: {e}")))?;
        with_session(session, |s| s.set_prune_control(ctl).map_err(engine_error))
    })
}

/// # Safety
/// `options` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn toprt_run_options_init(options: *mut toprt_run_options) -> toprt_status {
    entry(|| {
        check_ptr(options, "options")?;
        let o = toprt_run_options {
            outputs: TOPRT_OUTPUT_LOGITS | TOPRT_OUTPUT_EMBEDDING,
            prune: TOPRT_PRUNE_SESSION,
            keep_scale: 1.0,
        };
        // SAFETY: checked above.
        unsafe { put(options, o) };
        Ok(())
    })
}

/// A checked run request: the outputs and the pruning override (`None`: the session's).
fn run_request(o: &toprt_run_options) -> CResult<(Outputs, Option<PruneControl>)> {
    let known = TOPRT_OUTPUT_LOGITS | TOPRT_OUTPUT_EMBEDDING | TOPRT_OUTPUT_HIDDEN_STATES;
    if o.outputs & !known != 0 {
        return Err(invalid(format!("options->outputs has unknown bits {:#x}", o.outputs & !known)));
    }
    let want = Outputs {
        logits: o.outputs & TOPRT_OUTPUT_LOGITS != 0,
        embedding: o.outputs & TOPRT_OUTPUT_EMBEDDING != 0,
        hidden_states: o.outputs & TOPRT_OUTPUT_HIDDEN_STATES != 0,
    };
    let ctl = match o.prune {
        TOPRT_PRUNE_SESSION => None,
        TOPRT_PRUNE_OFF => Some(PruneControl::DENSE),
        TOPRT_PRUNE_ON => {
            let ctl = PruneControl { enabled: true, keep_scale: o.keep_scale };
            ctl.validate().map_err(|e| invalid(format!("options->keep_scale: {e}")))?;
            Some(ctl)
        }
        other => return Err(invalid(format!("options->prune is {other}: expected a TOPRT_PRUNE_* value (0 to 2)"))),
    };
    Ok((want, ctl))
}

/// One C input as an engine input, with every pointer and text checked.
///
/// # Safety
/// The pointers of `r` that its kind uses are NULL or valid for their lengths.
unsafe fn input_of<'a>(i: usize, r: &'a toprt_input) -> CResult<Input<'a>> {
    let field = |f: &str| format!("inputs[{i}].{f}");
    match r.kind {
        // SAFETY: forwarded to the caller.
        TOPRT_INPUT_TEXT => Ok(Input::Text(unsafe { text_in(r.text, r.text_len, &field("text"))? })),
        TOPRT_INPUT_PAIR => {
            // SAFETY: forwarded to the caller.
            let text = unsafe { text_in(r.text, r.text_len, &field("text"))? };
            // SAFETY: forwarded to the caller.
            let pair = unsafe { text_in(r.text_pair, r.text_pair_len, &field("text_pair"))? };
            Ok(Input::Pair(text, pair))
        }
        TOPRT_INPUT_IDS => {
            // SAFETY: forwarded to the caller.
            let input_ids = unsafe { slice_in(r.input_ids, r.num_ids, &field("input_ids"))? };
            let token_type_ids = if r.token_type_ids.is_null() {
                None
            } else {
                // SAFETY: forwarded to the caller.
                Some(unsafe { slice_in(r.token_type_ids, r.num_ids, &field("token_type_ids"))? })
            };
            Ok(Input::Ids { input_ids, token_type_ids })
        }
        other => Err(invalid(format!(
            "{} is {other}: expected TOPRT_INPUT_TEXT (1), TOPRT_INPUT_PAIR (2) or TOPRT_INPUT_IDS (3)",
            field("kind")
        ))),
    }
}

/// # Safety
/// `inputs` is NULL or points to `num_inputs` readable structs whose pointers are valid
/// for their lengths; `options` is NULL or readable; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn toprt_session_run(
    session: *mut toprt_session,
    inputs: *const toprt_input,
    num_inputs: usize,
    options: *const toprt_run_options,
    out: *mut *mut toprt_result,
) -> toprt_status {
    entry(|| {
        let (want, ctl) = if options.is_null() {
            (Outputs::default(), None)
        } else {
            check_ptr(options, "options")?;
            // SAFETY: non-NULL and aligned; the caller guarantees a readable struct.
            run_request(unsafe { &*options })?
        };
        check_ptr(out, "out")?;
        // SAFETY: forwarded to the caller.
        let raw = unsafe { slice_in(inputs, num_inputs, "inputs")? };
        if raw.is_empty() {
            return Err(invalid("num_inputs is 0: nothing to run"));
        }
        // SAFETY: forwarded to the caller.
        let batch = raw.iter().enumerate().map(|(i, r)| unsafe { input_of(i, r) }).collect::<CResult<Vec<_>>>()?;
        let seqs = with_session(session, |s| {
            let ctl = ctl.unwrap_or(s.prune_control());
            s.run_with(&batch, want, ctl).map_err(engine_error)
        })?;
        let h = new_handle(Object::Result(Arc::new(ResultSet { seqs, want })))?;
        // SAFETY: checked above.
        unsafe { put(out, h) };
        Ok(())
    })
}

/// # Safety
/// `session` is NULL or a value returned by toprt (anything else is detected).
#[no_mangle]
pub unsafe extern "C" fn toprt_session_free(session: *mut toprt_session) -> toprt_status {
    entry(|| free_handle(session.addr(), "session", "toprt_session"))
}
