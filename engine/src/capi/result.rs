//! `toprt_result_*`: reading the outputs of a run through the `(buf, cap, len)` protocol.

use super::args::*;
use super::errors::*;
use super::handles::*;
use super::types::*;
use crate::session::SequenceOutput;

/// Sequence `index` of a result.
fn sequence(r: &ResultSet, index: usize) -> CResult<&SequenceOutput> {
    r.seqs.get(index).ok_or_else(|| {
        CError::new(
            TOPRT_ERR_OUT_OF_RANGE,
            format!("sequence index {index} is out of range: the result holds {} sequences", r.seqs.len()),
        )
    })
}

/// An optional float output of sequence `index`, or why it is missing.
fn float_output<'a>(
    r: &'a ResultSet,
    index: usize,
    requested: bool,
    flag: &str,
    value: impl FnOnce(&'a SequenceOutput) -> Option<&'a Vec<f32>>,
    missing: &str,
) -> CResult<&'a [f32]> {
    let seq = sequence(r, index)?;
    if !requested {
        return Err(CError::new(
            TOPRT_ERR_UNAVAILABLE,
            format!("{flag} was not requested in toprt_run_options.outputs"),
        ));
    }
    value(seq).map(Vec::as_slice).ok_or_else(|| CError::new(TOPRT_ERR_UNAVAILABLE, missing.to_string()))
}

/// # Safety
/// `count` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn toprt_result_count(result: *const toprt_result, count: *mut usize) -> toprt_status {
    entry(|| {
        let r = result_of(result)?;
        check_ptr(count, "count")?;
        // SAFETY: checked above.
        unsafe { put(count, r.seqs.len()) };
        Ok(())
    })
}

/// # Safety
/// `buf` is NULL or holds `cap` writable elements; `len` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn toprt_result_input_ids(
    result: *const toprt_result,
    index: usize,
    buf: *mut u32,
    cap: usize,
    len: *mut usize,
) -> toprt_status {
    entry(|| {
        let r = result_of(result)?;
        let seq = sequence(&r, index)?;
        // SAFETY: forwarded to the caller.
        unsafe { copy_out(&seq.input_ids, buf, cap, len, "input_ids") }
    })
}

/// # Safety
/// `buf` is NULL or holds `cap` writable elements; `len` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn toprt_result_token_type_ids(
    result: *const toprt_result,
    index: usize,
    buf: *mut u32,
    cap: usize,
    len: *mut usize,
) -> toprt_status {
    entry(|| {
        let r = result_of(result)?;
        let seq = sequence(&r, index)?;
        // SAFETY: forwarded to the caller.
        unsafe { copy_out(&seq.token_type_ids, buf, cap, len, "token_type_ids") }
    })
}

/// # Safety
/// `truncated` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn toprt_result_truncated(
    result: *const toprt_result,
    index: usize,
    truncated: *mut i32,
) -> toprt_status {
    entry(|| {
        let r = result_of(result)?;
        let seq = sequence(&r, index)?;
        check_ptr(truncated, "truncated")?;
        // SAFETY: checked above.
        unsafe { put(truncated, seq.truncated as i32) };
        Ok(())
    })
}

/// # Safety
/// `buf` is NULL or holds `cap` writable elements; `len` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn toprt_result_logits(
    result: *const toprt_result,
    index: usize,
    buf: *mut f32,
    cap: usize,
    len: *mut usize,
) -> toprt_status {
    entry(|| {
        let r = result_of(result)?;
        let logits = float_output(
            &r,
            index,
            r.want.logits,
            "TOPRT_OUTPUT_LOGITS",
            |s| s.logits.as_ref(),
            "no logits: the model has no classification head",
        )?;
        // SAFETY: forwarded to the caller.
        unsafe { copy_out(logits, buf, cap, len, "logits") }
    })
}

/// # Safety
/// `buf` is NULL or holds `cap` writable elements; `len` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn toprt_result_embedding(
    result: *const toprt_result,
    index: usize,
    buf: *mut f32,
    cap: usize,
    len: *mut usize,
) -> toprt_status {
    entry(|| {
        let r = result_of(result)?;
        let embedding = float_output(
            &r,
            index,
            r.want.embedding,
            "TOPRT_OUTPUT_EMBEDDING",
            |s| s.embedding.as_ref(),
            "no embedding: the model has no pooling method",
        )?;
        // SAFETY: forwarded to the caller.
        unsafe { copy_out(embedding, buf, cap, len, "embedding") }
    })
}

/// # Safety
/// `buf` is NULL or holds `cap` writable elements; `len` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn toprt_result_hidden_states(
    result: *const toprt_result,
    index: usize,
    buf: *mut f32,
    cap: usize,
    len: *mut usize,
) -> toprt_status {
    entry(|| {
        let r = result_of(result)?;
        let states = float_output(
            &r,
            index,
            r.want.hidden_states,
            "TOPRT_OUTPUT_HIDDEN_STATES",
            |s| s.last_hidden_state.as_ref(),
            "no hidden states",
        )?;
        // SAFETY: forwarded to the caller.
        unsafe { copy_out(states, buf, cap, len, "hidden states") }
    })
}

/// # Safety
/// `count` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn toprt_result_kept_locations(
    result: *const toprt_result,
    index: usize,
    count: *mut usize,
) -> toprt_status {
    entry(|| {
        let r = result_of(result)?;
        let seq = sequence(&r, index)?;
        check_ptr(count, "count")?;
        // SAFETY: checked above.
        unsafe { put(count, seq.kept.len()) };
        Ok(())
    })
}

/// # Safety
/// `layer` is NULL or writable; `buf` is NULL or holds `cap` writable elements; `len` is
/// NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn toprt_result_kept(
    result: *const toprt_result,
    index: usize,
    location: usize,
    layer: *mut u32,
    buf: *mut u32,
    cap: usize,
    len: *mut usize,
) -> toprt_status {
    entry(|| {
        let r = result_of(result)?;
        let seq = sequence(&r, index)?;
        let (at, kept) = seq.kept.get(location).ok_or_else(|| {
            CError::new(
                TOPRT_ERR_OUT_OF_RANGE,
                format!(
                    "location {location} is out of range: sequence {index} has {} pruning locations",
                    seq.kept.len()
                ),
            )
        })?;
        check_ptr(layer, "layer")?;
        // SAFETY: forwarded to the caller.
        unsafe { copy_out(kept, buf, cap, len, "the kept positions")? };
        // SAFETY: checked above. Layers are < num_layers, far below u32::MAX.
        unsafe { put(layer, *at as u32) };
        Ok(())
    })
}

/// # Safety
/// `result` is NULL or a value returned by toprt (anything else is detected).
#[no_mangle]
pub unsafe extern "C" fn toprt_result_free(result: *mut toprt_result) -> toprt_status {
    entry(|| free_handle(result.addr(), "result", "toprt_result"))
}
