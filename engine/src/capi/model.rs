//! `toprt_model_*`: opening a model from a path or a buffer, its facts and labels.

use super::args::*;
use super::errors::*;
use super::handles::*;
use super::types::*;
use crate::error::Error;
use crate::model::Model;
use std::ffi::{c_char, c_void, CStr, CString};
use toprt_format::{Pooling, Precision, Task};

#[cfg(unix)]
fn path_of(bytes: &[u8]) -> CResult<std::path::PathBuf> {
    use std::os::unix::ffi::OsStrExt;
    Ok(std::ffi::OsStr::from_bytes(bytes).into())
}

#[cfg(not(unix))]
fn path_of(bytes: &[u8]) -> CResult<std::path::PathBuf> {
    std::str::from_utf8(bytes).map(Into::into).map_err(|e| {
        CError::new(TOPRT_ERR_INVALID_UTF8, format!("path is not valid UTF-8 at offset {}", e.valid_up_to()))
    })
}

/// Errors of opening a model: anything but I/O means the file is bad.
fn open_error(e: Error) -> CError {
    match e {
        Error::Io { .. } => engine_error(e),
        _ => CError::new(TOPRT_ERR_MODEL, e.to_string()),
    }
}

/// # Safety
/// `path` is NULL or a NUL-terminated string; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn toprt_model_open(path: *const c_char, out: *mut *mut toprt_model) -> toprt_status {
    entry(|| {
        check_ptr(path, "path")?;
        check_ptr(out, "out")?;
        // SAFETY: non-NULL; the caller guarantees a NUL-terminated string.
        let path = path_of(unsafe { CStr::from_ptr(path) }.to_bytes())?;
        let model = Model::open(&path).map_err(open_error)?;
        let h = new_handle(Object::Model(model))?;
        // SAFETY: checked above.
        unsafe { put(out, h) };
        Ok(())
    })
}

/// # Safety
/// `data` is NULL or points to `len` readable bytes; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn toprt_model_open_bytes(
    data: *const c_void,
    len: usize,
    out: *mut *mut toprt_model,
) -> toprt_status {
    entry(|| {
        // SAFETY: forwarded to the caller.
        let bytes = unsafe { slice_in(data.cast::<u8>(), len, "data")? };
        check_ptr(out, "out")?;
        let model = Model::from_bytes(bytes, &Default::default()).map_err(open_error)?;
        let h = new_handle(Object::Model(model))?;
        // SAFETY: checked above.
        unsafe { put(out, h) };
        Ok(())
    })
}

/// # Safety
/// `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn toprt_model_get_info(model: *const toprt_model, out: *mut toprt_model_info) -> toprt_status {
    entry(|| {
        let model = model_of(model, "model")?;
        check_ptr(out, "out")?;
        let m = model.manifest();
        let (c, h) = (&m.model, &m.head);
        let logits = matches!(h.task, Task::Classification | Task::TokenClassification);
        let info = toprt_model_info {
            hidden_size: c.hidden_size,
            num_layers: c.num_layers,
            num_heads: c.num_heads,
            vocab_size: c.vocab_size,
            max_length: model.max_length(),
            num_labels: if logits { h.num_labels } else { 0 },
            num_keep_rules: m.keep_rules.len(),
            has_tokenizer: model.has_tokenizer() as i32,
            has_logits: logits as i32,
            has_embedding: (h.pooling != Pooling::None) as i32,
            precision: precision_code(model.precision()),
            num_f32_linears: model.f32_linears(),
        };
        // SAFETY: checked above.
        unsafe { put(out, info) };
        Ok(())
    })
}

/// # Safety
/// `buf` is NULL or holds `cap` writable bytes; `len` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn toprt_model_label(
    model: *const toprt_model,
    index: usize,
    buf: *mut c_char,
    cap: usize,
    len: *mut usize,
) -> toprt_status {
    entry(|| {
        let model = model_of(model, "model")?;
        let labels = &model.manifest().head.id2label;
        let label = labels.get(index).ok_or_else(|| {
            CError::new(
                TOPRT_ERR_OUT_OF_RANGE,
                format!("label index {index} is out of range: the model file names {} labels", labels.len()),
            )
        })?;
        let text = CString::new(label.replace('\0', "")).unwrap_or_default();
        // SAFETY: forwarded to the caller.
        unsafe { copy_out(text.as_bytes_with_nul(), buf.cast::<u8>(), cap, len, "the label") }
    })
}

/// # Safety
/// `model` is NULL or a value returned by toprt (anything else is detected).
#[no_mangle]
pub unsafe extern "C" fn toprt_model_free(model: *mut toprt_model) -> toprt_status {
    entry(|| free_handle(model.addr(), "model", "toprt_model"))
}

/// The `TOPRT_PRECISION_*` code of a precision.
pub(super) fn precision_code(p: Precision) -> i32 {
    match p {
        Precision::F32 => TOPRT_PRECISION_F32,
        Precision::Bf16 => TOPRT_PRECISION_BF16,
        Precision::Int8 => TOPRT_PRECISION_INT8,
    }
}
