//! From the Rust error types to the `toprt.Error` classes (defined in Python, in
//! `toprt/_errors.py`, so that `InputError` can also be a `ValueError`).

use pyo3::prelude::*;
use pyo3::types::PyType;

/// The `toprt._errors` class named `name`, or `RuntimeError` if the module cannot be
/// imported (only when `_toprt` is loaded outside its package).
fn class<'py>(py: Python<'py>, name: &str) -> Bound<'py, PyType> {
    py.import("toprt._errors")
        .and_then(|m| m.getattr(name))
        .and_then(|c| c.cast_into::<PyType>().map_err(PyErr::from))
        .unwrap_or_else(|_| py.get_type::<pyo3::exceptions::PyRuntimeError>())
}

/// A `toprt.<name>` error with `msg`.
pub fn raise(name: &'static str, msg: String) -> PyErr {
    Python::attach(|py| PyErr::from_type(class(py, name), msg))
}

/// An engine error: bad input is `InputError`, a bad file `ModelError`, the rest `Error`.
pub fn engine(e: toprt::Error) -> PyErr {
    use toprt::Error as E;
    let name = match &e {
        E::Io { .. } | E::Format(_) | E::Version { .. } | E::Checksum(_) | E::Tensor { .. } | E::Tokenizer(_) => {
            "ModelError"
        }
        E::NoTokenizer
        | E::Input { .. }
        | E::EmptyBatch
        | E::EmptySequence { .. }
        | E::TooLong { .. }
        | E::TokenId { .. }
        | E::TokenTypeId { .. }
        | E::TypeIdsLength { .. }
        | E::OverBudget { .. }
        | E::Options(_) => "InputError",
        _ => "Error",
    };
    raise(name, e.to_string())
}

/// A converter error.
pub fn convert(e: toprt_convert::ConvertError) -> PyErr {
    raise("ConvertError", e.to_string())
}

/// Bad input found while reading the Python arguments.
pub fn input(msg: impl Into<String>) -> PyErr {
    raise("InputError", msg.into())
}
