//! Engine results as numpy arrays.

use numpy::ndarray::Array2;
use numpy::{IntoPyArray, PyArray1};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

/// The result of `Session.run`: one entry per input, in input order.
#[pyclass(module = "toprt", name = "Result", frozen)]
pub struct RunResult {
    /// `float32 [n, num_labels]` for classifiers; for a token classifier a list of
    /// `float32 [len, num_labels]`, one per input; else None.
    #[pyo3(get)]
    logits: Py<PyAny>,
    /// `float32 [n, dim]` for models with a pooling, else None.
    #[pyo3(get)]
    embeddings: Py<PyAny>,
    /// Per input, the token ids that ran (`int32`, special tokens included).
    #[pyo3(get)]
    input_ids: Py<PyList>,
    /// Per input, the token type ids (`int32`).
    #[pyo3(get)]
    token_type_ids: Py<PyList>,
    /// Per input, whether it was cut to the maximum length.
    #[pyo3(get)]
    truncated: Py<PyList>,
    /// Per input, the final token states `float32 [len, hidden]` (when asked).
    #[pyo3(get)]
    hidden_states: Py<PyAny>,
    /// Per input, `{location: int32 array of the kept original positions}` (when asked).
    #[pyo3(get)]
    kept: Py<PyAny>,
    n: usize,
}

#[pymethods]
impl RunResult {
    fn __len__(&self) -> usize {
        self.n
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        let shape = |o: &Py<PyAny>| -> String {
            if o.is_none(py) {
                "None".into()
            } else {
                o.bind(py).getattr("shape").map(|s| s.to_string()).unwrap_or_default()
            }
        };
        format!(
            "toprt.Result(n={}, logits={}, embeddings={}, hidden_states={}, kept={})",
            self.n,
            shape(&self.logits),
            shape(&self.embeddings),
            if self.hidden_states.is_none(py) { "None" } else { "[...]" },
            if self.kept.is_none(py) { "None" } else { "[...]" },
        )
    }
}

/// Rows of equal length as a 2-D array, or None if any row is missing.
fn matrix<'py>(py: Python<'py>, rows: impl Iterator<Item = Option<Vec<f32>>>, n: usize) -> PyResult<Py<PyAny>> {
    let mut flat = Vec::new();
    let mut width = None;
    for r in rows {
        let Some(r) = r else { return Ok(py.None()) };
        if *width.get_or_insert(r.len()) != r.len() {
            return Ok(py.None());
        }
        flat.extend_from_slice(&r);
    }
    let w = width.unwrap_or(0);
    let a =
        Array2::from_shape_vec((n, w), flat).map_err(|e| pyo3::exceptions::PyRuntimeError::new_err(e.to_string()))?;
    Ok(a.into_pyarray(py).into_any().unbind())
}

/// Per sequence, its `[len, width]` rows as a 2-D array, in a list.
fn per_token(py: Python<'_>, seqs: impl Iterator<Item = Vec<f32>>, width: usize) -> PyResult<Py<PyAny>> {
    let mut list = Vec::new();
    for v in seqs {
        let rows = v.len() / width.max(1);
        let a = Array2::from_shape_vec((rows, width), v)
            .map_err(|e| pyo3::exceptions::PyRuntimeError::new_err(e.to_string()))?;
        list.push(a.into_pyarray(py));
    }
    Ok(PyList::new(py, list)?.into_any().unbind())
}

fn ints<'py>(py: Python<'py>, v: &[u32]) -> Bound<'py, PyArray1<i32>> {
    PyArray1::from_iter(py, v.iter().map(|&x| x as i32))
}

/// Builds the Python result of a run. `hidden` and `kept` say whether they were asked.
pub fn result(
    py: Python<'_>,
    outs: Vec<toprt::SequenceOutput>,
    hidden_size: usize,
    token_labels: Option<usize>,
    hidden: bool,
    kept: bool,
) -> PyResult<RunResult> {
    let n = outs.len();
    let logits = match token_labels {
        Some(l) => per_token(py, outs.iter().map(|o| o.logits.clone().unwrap_or_default()), l)?,
        None => matrix(py, outs.iter().map(|o| o.logits.clone()), n)?,
    };
    let embeddings = matrix(py, outs.iter().map(|o| o.embedding.clone()), n)?;
    let input_ids = PyList::new(py, outs.iter().map(|o| ints(py, &o.input_ids)))?;
    let token_type_ids = PyList::new(py, outs.iter().map(|o| ints(py, &o.token_type_ids)))?;
    let truncated = PyList::new(py, outs.iter().map(|o| o.truncated))?;
    let hidden_states = if hidden {
        per_token(py, outs.iter().map(|o| o.last_hidden_state.clone().unwrap_or_default()), hidden_size)?
    } else {
        py.None()
    };
    let kept = if kept {
        let list = PyList::empty(py);
        for o in &outs {
            let d = PyDict::new(py);
            for (layer, pos) in &o.kept {
                d.set_item(layer, ints(py, pos))?;
            }
            list.append(d)?;
        }
        list.into_any().unbind()
    } else {
        py.None()
    };
    Ok(RunResult {
        logits,
        embeddings,
        input_ids: input_ids.unbind(),
        token_type_ids: token_type_ids.unbind(),
        truncated: truncated.unbind(),
        hidden_states,
        kept,
        n,
    })
}

/// A JSON value as Python objects (through the `json` module: one obvious mapping).
pub fn json_to_py<'py>(py: Python<'py>, v: &serde_json::Value) -> PyResult<Bound<'py, PyAny>> {
    py.import("json")?.call_method1("loads", (v.to_string(),))
}
