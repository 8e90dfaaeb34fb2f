//! `toprt.Model` and `toprt.Session`.

use crate::errors;
use crate::inputs;
use crate::outputs::{self, RunResult};
use numpy::ndarray::Array2;
use numpy::IntoPyArray;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList};
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};
use toprt::format::{Pooling, Task};

/// Locks a mutex; a panic in an earlier holder does not poison the session for good
/// (every run reloads the workspace from its inputs).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A non-negative count option (`threads`, `max_length`, ...) as `usize`.
fn count(name: &str, v: i64) -> PyResult<usize> {
    usize::try_from(v).map_err(|_| errors::input(format!("invalid option: {name} must be non-negative, got {v}")))
}

fn control(prune: bool, keep_scale: f32) -> PyResult<toprt::PruneControl> {
    let ctl = toprt::PruneControl { enabled: prune, keep_scale };
    ctl.validate().map_err(|m| errors::input(format!("invalid option: {m}")))?;
    Ok(ctl)
}

/// An opened, validated `.toprt` file (copied into memory). Share one across threads; give
/// each thread its own `Session` (or use `encode` / `predict`, which keep a pool of
/// sessions).
#[pyclass(module = "toprt", frozen)]
pub struct Model {
    inner: toprt::Model,
    /// Threads of the sessions `encode` and `predict` use (0 = one per CPU).
    threads: usize,
    /// Idle sessions for `encode` / `predict`: a call takes one (or makes one) and puts
    /// it back, so calls from several threads never share a session.
    idle: Mutex<Vec<toprt::Session>>,
}

impl Model {
    fn wrap(inner: toprt::Model, threads: usize) -> Model {
        Model { inner, threads, idle: Mutex::new(Vec::new()) }
    }

    /// Runs `texts` in batches of `batch_size` on a pooled session (the Python arguments
    /// `batch_size`, `prune` and `keep_scale` of `encode` and `predict`, checked here) and
    /// stacks `pick`'s vector of each input into `[n, width]`, or with
    /// [`Shape::PerToken`] gives one `[len, width]` array per input.
    fn batched<'py>(
        &self,
        py: Python<'py>,
        texts: &Bound<'py, PyAny>,
        (batch_size, prune, keep_scale): (i64, bool, f32),
        shape: Shape,
        pick: fn(&toprt::SequenceOutput) -> Option<&Vec<f32>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let (width, per_token) = match shape {
            Shape::Rows(w) => (w, false),
            Shape::PerToken(w) => (w, true),
        };
        let (batch_size, ctl) = (count("batch_size", batch_size)?, control(prune, keep_scale)?);
        if batch_size == 0 {
            return Err(errors::input("batch_size must be at least 1"));
        }
        let batch = inputs::batch(texts)?;
        let inputs = batch.inputs();
        let mut flat = Vec::with_capacity(inputs.len() * width);
        // Per-token outputs: one `[len, width]` array per input.
        let mut ragged = Vec::new();
        // Not inside the `match`: the guard would live through it, and `detach` would
        // wait for the GIL while holding the lock another thread waits for with the GIL.
        let pooled = lock(&self.idle).pop();
        let mut session = match pooled {
            Some(s) => s,
            None => {
                let opts = toprt::SessionOptions { threads: self.threads, ..Default::default() };
                py.detach(|| toprt::Session::new(&self.inner, &opts)).map_err(errors::engine)?
            }
        };
        let want = toprt::Outputs { logits: true, embedding: true, hidden_states: false };
        let mut failure = None;
        for (b, chunk) in inputs.chunks(batch_size).enumerate() {
            match py.detach(|| session.run_with(chunk, want, ctl)) {
                Ok(outs) => {
                    for o in &outs {
                        let v = pick(o).map_or(&[][..], |v| v);
                        if per_token {
                            let a = Array2::from_shape_vec((v.len() / width.max(1), width), v.to_vec())
                                .map_err(|e| pyo3::exceptions::PyRuntimeError::new_err(e.to_string()))?;
                            ragged.push(a.into_pyarray(py));
                        } else {
                            flat.extend_from_slice(v);
                        }
                    }
                }
                Err(e) => {
                    failure = Some(e.offset_input(b * batch_size));
                    break;
                }
            }
        }
        lock(&self.idle).push(session);
        if let Some(e) = failure {
            return Err(errors::engine(e));
        }
        if per_token {
            return Ok(PyList::new(py, ragged)?.into_any());
        }
        let a = Array2::from_shape_vec((inputs.len(), width), flat)
            .map_err(|e| pyo3::exceptions::PyRuntimeError::new_err(e.to_string()))?;
        Ok(a.into_pyarray(py).into_any())
    }
}

#[pymethods]
impl Model {
    /// Opens `path` (checksums verified unless `verify_checksums=False`). The weights are
    /// copied into memory (huge pages where Linux grants them), which runs faster;
    /// `copy_to_memory=False` runs from the file's memory mapping instead, whose pages
    /// processes opening the same file share.
    /// `threads`: threads of the sessions `encode` and `predict` use (0 = one per CPU).
    #[new]
    #[pyo3(signature = (path, *, threads=0, verify_checksums=true, copy_to_memory=true))]
    fn new(
        py: Python<'_>,
        path: PathBuf,
        threads: i64,
        verify_checksums: bool,
        copy_to_memory: bool,
    ) -> PyResult<Model> {
        let threads = count("threads", threads)?;
        let opts = toprt::OpenOptions { verify_checksums, copy_to_memory };
        let inner = py.detach(|| toprt::Model::open_with(&path, &opts)).map_err(errors::engine)?;
        Ok(Model::wrap(inner, threads))
    }

    /// Opens a model from the bytes of a `.toprt` file (copied into aligned memory):
    /// how a model reaches Ray workers through the object store.
    #[staticmethod]
    #[pyo3(signature = (data, *, threads=0, verify_checksums=true))]
    fn from_bytes(py: Python<'_>, data: &Bound<'_, PyAny>, threads: i64, verify_checksums: bool) -> PyResult<Model> {
        let threads = count("threads", threads)?;
        let opts = toprt::OpenOptions { verify_checksums, ..toprt::OpenOptions::default() };
        let inner = if let Ok(b) = data.cast::<PyBytes>() {
            let bytes = b.as_bytes();
            py.detach(|| toprt::Model::from_bytes(bytes, &opts))
        } else {
            let v: Vec<u8> = data.extract().map_err(|_| errors::input("from_bytes expects bytes or bytearray"))?;
            py.detach(|| toprt::Model::from_bytes(&v, &opts))
        }
        .map_err(errors::engine)?;
        Ok(Model::wrap(inner, threads))
    }

    /// A new session: `threads` workers (0 = one per CPU), pruning on or off, the
    /// keep-scale dial (>1 keeps more tokens, <1 fewer), the longest sequence (default:
    /// the model's), truncation of longer inputs (else they are refused), the token
    /// budget of one pass, and a forced kernel tier (`"scalar"`, `"avx2"`, ...).
    #[pyo3(signature = (threads=1, prune=true, keep_scale=1.0, max_length=None, *, truncate=true, max_tokens=2048, isa=None))]
    #[allow(clippy::too_many_arguments)]
    fn session(
        &self,
        py: Python<'_>,
        threads: i64,
        prune: bool,
        keep_scale: f32,
        max_length: Option<i64>,
        truncate: bool,
        max_tokens: i64,
        isa: Option<&str>,
    ) -> PyResult<Session> {
        let threads = count("threads", threads)?;
        let max_tokens = count("max_tokens", max_tokens)?;
        let max_length = max_length.map(|v| count("max_length", v)).transpose()?;
        let isa = isa
            .map(|s| s.parse::<toprt::Isa>().map_err(|e| errors::input(format!("invalid option: isa: {e}"))))
            .transpose()?;
        let opts = toprt::SessionOptions {
            threads,
            max_tokens,
            max_length,
            truncate,
            isa,
            prune: control(prune, keep_scale)?,
        };
        let s = py.detach(|| toprt::Session::new(&self.inner, &opts)).map_err(errors::engine)?;
        let facts = Facts {
            threads: s.threads(),
            isa: s.isa().to_string(),
            linear_kernel: s.linear_kernel(),
            max_length: s.max_length(),
            prune: s.prune_control(),
        };
        let head = &self.inner.manifest().head;
        let token_labels = (head.task == Task::TokenClassification).then_some(head.num_labels);
        Ok(Session { inner: Mutex::new(s), hidden_size: self.inner.hidden_size(), token_labels, facts })
    }

    /// Sentence embeddings `float32 [n, dim]` of `texts` (str, (str, str) or token ids),
    /// run `batch_size` at a time; an empty list gives `[0, dim]`.
    #[pyo3(signature = (texts, batch_size=32, *, prune=true, keep_scale=1.0))]
    fn encode<'py>(
        &self,
        py: Python<'py>,
        texts: &Bound<'py, PyAny>,
        batch_size: i64,
        prune: bool,
        keep_scale: f32,
    ) -> PyResult<Bound<'py, PyAny>> {
        let head = &self.inner.manifest().head;
        if head.pooling == Pooling::None {
            return Err(errors::input(format!(
                "this model gives no embedding (task {:?}, no pooling): use predict() or a session with hidden_states=True",
                head.task
            )));
        }
        let shape = Shape::Rows(self.inner.hidden_size());
        self.batched(py, texts, (batch_size, prune, keep_scale), shape, |o| o.embedding.as_ref())
    }

    /// Logits `float32 [n, num_labels]` of a classifier, `batch_size` inputs at a time;
    /// an empty list gives `[0, num_labels]`. A token classifier (ELECTRA's
    /// discriminator) gives a list of `float32 [len, num_labels]`, one per input.
    #[pyo3(signature = (texts, batch_size=32, *, prune=true, keep_scale=1.0))]
    fn predict<'py>(
        &self,
        py: Python<'py>,
        texts: &Bound<'py, PyAny>,
        batch_size: i64,
        prune: bool,
        keep_scale: f32,
    ) -> PyResult<Bound<'py, PyAny>> {
        let head = &self.inner.manifest().head;
        let shape = match head.task {
            Task::Classification => Shape::Rows(head.num_labels),
            Task::TokenClassification => Shape::PerToken(head.num_labels),
            _ => {
                return Err(errors::input(format!(
                    "this model is not a classifier (task {}): use encode()",
                    task_name(head.task)
                )))
            }
        };
        self.batched(py, texts, (batch_size, prune, keep_scale), shape, |o| o.logits.as_ref())
    }

    /// The file's path (None for a model opened from bytes).
    #[getter]
    fn path(&self) -> Option<String> {
        self.inner.path().map(|p| p.to_string_lossy().into_owned())
    }

    /// `"classification"`, `"token_classification"`, `"embedding"` or `"encoder"`.
    #[getter]
    fn task(&self) -> String {
        task_name(self.inner.manifest().head.task).into()
    }

    /// `"mean"`, `"cls"`, `"pooler"` or `"none"`.
    #[getter]
    fn pooling(&self) -> String {
        format!("{:?}", self.inner.manifest().head.pooling).to_lowercase()
    }

    #[getter]
    fn hidden_size(&self) -> usize {
        self.inner.hidden_size()
    }

    #[getter]
    fn num_layers(&self) -> usize {
        self.inner.manifest().model.num_layers
    }

    #[getter]
    fn vocab_size(&self) -> usize {
        self.inner.manifest().model.vocab_size
    }

    /// Classes of a classifier (0 otherwise).
    #[getter]
    fn num_labels(&self) -> usize {
        let h = &self.inner.manifest().head;
        if matches!(h.task, Task::Classification | Task::TokenClassification) {
            h.num_labels
        } else {
            0
        }
    }

    /// Label names by class index (may be empty).
    #[getter]
    fn labels(&self) -> Vec<String> {
        self.inner.manifest().head.id2label.clone()
    }

    /// Precision of the encoder's linear weights: `"f32"`, `"bf16"` or `"int8"`.
    #[getter]
    fn precision(&self) -> String {
        self.inner.precision().to_string()
    }

    /// Longest sequence in tokens, special tokens included.
    #[getter]
    fn max_length(&self) -> usize {
        self.inner.max_length()
    }

    /// Whether text input is accepted (the file embeds a tokenizer).
    #[getter]
    fn has_tokenizer(&self) -> bool {
        self.inner.has_tokenizer()
    }

    /// The keep-rules baked into the file, one dict per prune location.
    #[getter]
    fn keep_rules<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let v = serde_json::to_value(&self.inner.manifest().keep_rules)
            .map_err(|e| pyo3::exceptions::PyRuntimeError::new_err(e.to_string()))?;
        outputs::json_to_py(py, &v)
    }

    /// The whole manifest (config, head, keep-rules, calibration, tensor directory).
    #[getter]
    fn manifest<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let v = serde_json::to_value(self.inner.manifest())
            .map_err(|e| pyo3::exceptions::PyRuntimeError::new_err(e.to_string()))?;
        outputs::json_to_py(py, &v)
    }

    fn __repr__(&self) -> String {
        let m = self.inner.manifest();
        format!(
            "toprt.Model({}, {:?}, {} layers, hidden {}, {}, task {}, {} keep-rules)",
            self.inner.path().map_or("<bytes>".into(), |p| format!("'{}'", p.display())),
            m.model.arch,
            m.model.num_layers,
            m.model.hidden_size,
            self.inner.precision(),
            self.task(),
            m.keep_rules.len()
        )
    }
}

/// A model ready to run, with its own threads and workspace. One thread at a time uses
/// a session (calls from several threads queue); give each thread its own.
#[pyclass(module = "toprt", frozen)]
pub struct Session {
    inner: Mutex<toprt::Session>,
    hidden_size: usize,
    /// A token classifier's label count: its logits are per token.
    token_labels: Option<usize>,
    /// Read without the lock, so a getter never waits for a run in another thread.
    facts: Facts,
}

/// What a session was set up with (fixed for its life).
struct Facts {
    threads: usize,
    isa: String,
    linear_kernel: String,
    max_length: usize,
    prune: toprt::PruneControl,
}

#[pymethods]
impl Session {
    /// Runs a batch: each input a str, a `(text, text_pair)` tuple, token ids (list or
    /// 1-D integer array) or `{"input_ids": ..., "token_type_ids": ...}`; or one 2-D
    /// integer array of token ids. `prune` / `keep_scale` override the session's for
    /// this call. The GIL is released while the engine runs.
    #[pyo3(signature = (inputs, hidden_states=false, kept=false, *, prune=None, keep_scale=None))]
    fn run(
        &self,
        py: Python<'_>,
        inputs: &Bound<'_, PyAny>,
        hidden_states: bool,
        kept: bool,
        prune: Option<bool>,
        keep_scale: Option<f32>,
    ) -> PyResult<RunResult> {
        let batch = inputs::batch(inputs)?;
        let inputs = batch.inputs();
        let want = toprt::Outputs { logits: true, embedding: true, hidden_states };
        let outs = py
            .detach(|| {
                let mut s = lock(&self.inner);
                let base = self.facts.prune;
                let ctl = toprt::PruneControl {
                    enabled: prune.unwrap_or(base.enabled),
                    keep_scale: keep_scale.unwrap_or(base.keep_scale),
                };
                s.run_with(&inputs, want, ctl)
            })
            .map_err(errors::engine)?;
        outputs::result(py, outs, self.hidden_size, self.token_labels, hidden_states, kept)
    }

    /// Worker threads, the caller included.
    #[getter]
    fn threads(&self) -> usize {
        self.facts.threads
    }

    /// The kernel tier in use (`"avx512"`, `"avx2"`, `"scalar"`, ...).
    #[getter]
    fn isa(&self) -> String {
        self.facts.isa.clone()
    }

    /// How the encoder's linears run here, and why.
    #[getter]
    fn linear_kernel(&self) -> String {
        self.facts.linear_kernel.clone()
    }

    /// Longest sequence this session accepts.
    #[getter]
    fn max_length(&self) -> usize {
        self.facts.max_length
    }

    /// Whether keep-rules apply by default.
    #[getter]
    fn prune(&self) -> bool {
        self.facts.prune.enabled
    }

    #[getter]
    fn keep_scale(&self) -> f32 {
        self.facts.prune.keep_scale
    }

    fn __repr__(&self) -> String {
        let f = &self.facts;
        format!(
            "toprt.Session(threads={}, isa={}, prune={}, keep_scale={}, max_length={})",
            f.threads,
            f.isa,
            if f.prune.enabled { "True" } else { "False" },
            f.prune.keep_scale,
            f.max_length
        )
    }
}

/// A task as Python names it.
fn task_name(task: Task) -> &'static str {
    match task {
        Task::Encoder => "encoder",
        Task::Classification => "classification",
        Task::Embedding => "embedding",
        Task::TokenClassification => "token_classification",
    }
}

/// What `Model::batched` returns: one row of `width` per input (`[n, width]`), or a
/// `[len, width]` array per input (token outputs).
#[derive(Clone, Copy)]
enum Shape {
    Rows(usize),
    PerToken(usize),
}
