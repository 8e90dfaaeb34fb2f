//! [`Session`]: a model plus everything needed to run it — the kernel table, a thread
//! pool and a workspace sized once from a token budget.

use crate::attention;
use crate::error::{Error, Result};
use crate::forward::{self, Plan};
use crate::head;
use crate::linear::LinearPath;
use crate::model::Model;
use crate::pool::Pool;
use crate::prune::PruneControl;
use crate::tokenize::{self, Encoded};
use crate::weights::LinearKind;
use crate::workspace::{LayerStats, LayerTiming, Workspace};
use toprt_format::{KeepRule, LayerKeepRule, Pooling, Precision, Task};
use toprt_kernels::{Isa, Kernels};

/// How a session is set up. [`Session::new`] checks every field and refuses a bad one
/// with [`Error::Options`]; nothing is started or allocated before the checks pass.
#[derive(Clone, Debug)]
pub struct SessionOptions {
    /// Worker threads including the caller; 0 = one per logical CPU (`num_cpus`); at most
    /// [`SessionOptions::MAX_THREADS`].
    pub threads: usize,
    /// Token budget of one forward pass: the workspace holds this many tokens (at most
    /// [`SessionOptions::MAX_TOKENS`]). It is raised to the maximum sequence length, so a
    /// single sequence always fits one pass. [`Session::run`] splits a larger batch into
    /// consecutive passes of whole sequences, in order; the results are bit-identical to
    /// running each sequence alone, since sequences never interact.
    /// [`Session::forward`] (one pass, no allocation) refuses it with [`Error::OverBudget`].
    pub max_tokens: usize,
    /// Longest sequence in tokens, special tokens included. Default and upper bound: the
    /// model's maximum. 0 is refused; for a model with a tokenizer, so is any value too
    /// short to hold the special tokens of a text pair (3 for BERT, 4 for RoBERTa), since
    /// truncation could not honour it.
    pub max_length: Option<usize>,
    /// What to do with an input longer than `max_length`: cut it (the default; the
    /// output's `truncated` flag is set) or refuse the batch with [`Error::TooLong`].
    /// Text is cut by the tokenizer, keeping its special tokens (longest-first for
    /// pairs); token-id input keeps its first `max_length` ids.
    pub truncate: bool,
    /// Force a kernel tier (default: `TOPRT_ISA`, else the best the CPU has).
    pub isa: Option<Isa>,
    /// Default pruning control for [`Session::run`] (the model's keep-rules, as trained).
    /// A `keep_scale` that is not a positive finite number (NaN, ±inf, 0, negative) is
    /// refused.
    pub prune: PruneControl,
}

impl SessionOptions {
    /// Most threads a session may ask for.
    pub const MAX_THREADS: usize = 1024;
    /// Largest token budget a session may ask for. The workspace grows linearly with it
    /// (about 40 KB per token for a BERT-base shape), and a failed allocation would abort
    /// the process instead of returning an error.
    pub const MAX_TOKENS: usize = 65536;
}

impl Default for SessionOptions {
    fn default() -> Self {
        SessionOptions {
            threads: 0,
            max_tokens: 2048,
            max_length: None,
            truncate: true,
            isa: None,
            prune: PruneControl::default(),
        }
    }
}

/// One input sequence.
#[derive(Clone, Copy, Debug)]
pub enum Input<'a> {
    Text(&'a str),
    Pair(&'a str, &'a str),
    /// Token ids as the model expects them (special tokens included). Type ids default
    /// to all zeros.
    Ids {
        input_ids: &'a [u32],
        token_type_ids: Option<&'a [u32]>,
    },
}

/// Which outputs to produce. Outputs the model's head cannot give are left `None`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outputs {
    pub logits: bool,
    pub embedding: bool,
    /// Final token states `[len, hidden]` per sequence.
    pub hidden_states: bool,
}

impl Default for Outputs {
    fn default() -> Self {
        Outputs { logits: true, embedding: true, hidden_states: false }
    }
}

impl Outputs {
    /// Whether these outputs of a model with manifest `m` read only the final state of
    /// each sequence's first token ([CLS], `<s>`): no token states, a sequence-level
    /// head that reads the first token (every classifier but ModernBERT's mean-pooling
    /// one), and an embedding, if asked, pooled from it. The last layer then runs its
    /// output projection and FFN on the first token alone (`docs/PRUNING.md`).
    pub fn first_token_only(self, m: &toprt_format::Manifest) -> bool {
        !self.hidden_states
            && m.head.task != Task::TokenClassification
            && m.head.classifier != Some(toprt_format::Classifier::ModernbertMean)
            && (!self.embedding || m.head.pooling != Pooling::Mean)
    }
}

/// The result for one input sequence.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SequenceOutput {
    pub input_ids: Vec<u32>,
    pub token_type_ids: Vec<u32>,
    /// Input was cut to the maximum length.
    pub truncated: bool,
    /// `[num_labels]` (classification models), or `[len, num_labels]` row-major for a
    /// token classifier (ELECTRA's discriminator: one logit per input token).
    pub logits: Option<Vec<f32>>,
    /// `[hidden]` pooled embedding (models with a pooling method).
    pub embedding: Option<Vec<f32>>,
    /// `[len, hidden]`, row-major. A pruned token's row is its state entering the layer
    /// where it was pruned.
    pub last_hidden_state: Option<Vec<f32>>,
    /// Per keep-rule location `layer` (the first layer whose attention sees only the kept
    /// tokens): the original positions of the kept tokens, ascending ([CLS] = 0). Empty
    /// when the model has no keep-rules or pruning is disabled.
    pub kept: Vec<(usize, Vec<u32>)>,
}

/// A model ready to run. Use one session per thread; share the [`Model`].
pub struct Session {
    model: Model,
    kernels: Kernels,
    pool: Pool,
    ws: Workspace,
    max_len: usize,
    truncate: bool,
    tokenizer: Option<tokenizers::Tokenizer>,
    timing: Vec<LayerTiming>,
    timing_on: bool,
    prune: PruneControl,
    /// `rule_after[l]`: the keep-rule at location `l + 1` (applied after layer `l`'s attention).
    rule_after: Vec<Option<KeepRule>>,
    /// Outputs the last forward pass was asked for.
    last_want: Outputs,
    /// How the encoder's linear layers run (the model's precision on this table).
    linear: LinearPath,
    /// Why ([`LinearPath::choose`]).
    linear_reason: String,
}

impl Session {
    /// Creates a session: checks the options, resolves the kernel tier, starts the pool,
    /// sizes the workspace.
    ///
    /// # Errors
    /// [`Error::Isa`] for an unavailable tier, [`Error::Options`] for an invalid option
    /// (see [`SessionOptions`]).
    pub fn new(model: &Model, opts: &SessionOptions) -> Result<Session> {
        opts.prune.validate().map_err(Error::Options)?;
        if opts.threads > SessionOptions::MAX_THREADS {
            return Err(Error::Options(format!(
                "threads is {}: at most {}",
                opts.threads,
                SessionOptions::MAX_THREADS
            )));
        }
        if opts.max_tokens > SessionOptions::MAX_TOKENS {
            return Err(Error::Options(format!(
                "max_tokens is {}: at most {}",
                opts.max_tokens,
                SessionOptions::MAX_TOKENS
            )));
        }
        let model_max = model.max_length();
        let max_len = match opts.max_length {
            Some(0) => return Err(Error::Options("max_length must be at least 1".into())),
            Some(m) if m > model_max => {
                return Err(Error::Options(format!(
                    "max_length {m} exceeds the model's maximum of {model_max} tokens"
                )));
            }
            Some(m) => m,
            None => model_max,
        };
        let tokenizer = match &model.inner.tokenizer {
            Some(t) => {
                let specials = t.pair_special_tokens();
                if max_len < specials {
                    return Err(Error::Options(format!(
                        "max_length {max_len} cannot hold the {specials} special tokens of a text pair"
                    )));
                }
                Some(t.for_session(max_len, opts.truncate)?)
            }
            None => None,
        };
        let kernels = match opts.isa {
            Some(isa) => Kernels::for_isa(isa)?,
            None => Kernels::from_env()?,
        };
        let threads = if opts.threads == 0 { num_cpus::get() } else { opts.threads };
        let pool = Pool::new(threads).map_err(|e| Error::Options(format!("cannot start {threads} threads: {e}")))?;
        let max_tokens = opts.max_tokens.max(max_len);
        let (linear, linear_reason) = LinearPath::choose(model.precision(), &kernels);
        if linear == LinearPath::Bf16Widened {
            // Once per model, before any pass (the forward pass allocates nothing).
            model.inner.widen();
        }
        let rel_rows = model.inner.weights.disentangled.as_ref().map_or(0, |r| r.rows());
        let scratch = attention::scratch_len(max_len, model.inner.manifest.model.head_dim(), rel_rows);
        let ws = Workspace::new(&model.inner, max_tokens, scratch, pool.threads(), linear);
        let layers = model.inner.manifest.model.num_layers;
        let mut rule_after = vec![None; layers];
        for (i, r) in model.inner.manifest.keep_rules.iter().enumerate() {
            // Validated at open: 1 <= r.layer < num_layers.
            rule_after[r.layer - 1] = Some(model.inner.manifest.keep_rules[i].rule.clone());
        }
        Ok(Session {
            model: model.clone(),
            kernels,
            pool,
            ws,
            max_len,
            truncate: opts.truncate,
            tokenizer,
            timing: vec![LayerTiming::default(); layers],
            timing_on: false,
            prune: opts.prune,
            rule_after,
            last_want: Outputs::default(),
            linear,
            linear_reason,
        })
    }

    /// The kernel tier in use.
    pub fn isa(&self) -> Isa {
        self.kernels.isa()
    }

    /// The GEMM kernel the encoder's linear layers run on, e.g. `avx512_sgemm_10x32`,
    /// `amx_bf16_gemm_32x32`, or for a bf16 model on a CPU without bf16 GEMMs the `f32`
    /// kernel with `(bf16 widened)` appended; for an int8 model the int8 kernel, and how
    /// many linears the file keeps in `f32`.
    pub fn linear_kernel(&self) -> String {
        match self.linear {
            LinearPath::F32 => self.kernels.sgemm_name().to_string(),
            LinearPath::Bf16 => self.kernels.gemm_bf16_name().unwrap_or("?").to_string(),
            LinearPath::Bf16Widened => format!("{} (bf16 widened)", self.kernels.sgemm_name()),
            LinearPath::Int8 => match self.model.f32_linears() {
                0 => self.kernels.gemm_i8_name().to_string(),
                n => {
                    format!("{} (+ {n} f32 linears on {})", self.kernels.gemm_i8_name(), self.kernels.sgemm_name())
                }
            },
        }
    }

    /// Which kernel the encoder's linear layers run on and why: e.g. "bf16 weights on
    /// avx512bf16_gemm_10x32: vdpbf16ps measured at 236 GFLOP/s > f32 FMA 118 GFLOP/s".
    pub fn linear_choice(&self) -> &str {
        &self.linear_reason
    }

    /// The precision the encoder's linear layers multiply in: the file's, except a bf16
    /// file on a CPU where bf16 GEMMs are absent or slower than `f32`, which runs as `f32`
    /// on its weights widened once ([`Session::linear_choice`] says which and why).
    pub fn linear_precision(&self) -> Precision {
        match self.linear {
            LinearPath::F32 | LinearPath::Bf16Widened => Precision::F32,
            LinearPath::Bf16 => Precision::Bf16,
            LinearPath::Int8 => Precision::Int8,
        }
    }

    /// Threads in use (including the caller).
    pub fn threads(&self) -> usize {
        self.pool.threads()
    }

    /// Maximum sequence length of this session.
    pub fn max_length(&self) -> usize {
        self.max_len
    }

    /// Token budget of one forward pass.
    pub fn max_tokens(&self) -> usize {
        self.ws.max_tokens
    }

    /// Workspace size in bytes.
    pub fn workspace_bytes(&self) -> usize {
        self.ws.bytes()
    }

    /// Turns per-layer timing on (it is reset by [`Session::take_layer_timing`]).
    pub fn set_layer_timing(&mut self, on: bool) {
        self.timing_on = on;
    }

    /// The pruning control used by [`Session::run`].
    pub fn prune_control(&self) -> PruneControl {
        self.prune
    }

    /// Changes the session's default pruning control.
    ///
    /// # Errors
    /// [`Error::Options`] for an invalid scale.
    pub fn set_prune_control(&mut self, ctl: PruneControl) -> Result<()> {
        ctl.validate().map_err(Error::Options)?;
        self.prune = ctl;
        Ok(())
    }

    /// Replaces the keep-rules this session applies (by default the model file's own):
    /// how calibration tries schedules on one model without writing files. An empty
    /// list runs dense. The pruning control still applies on top.
    ///
    /// # Errors
    /// [`Error::Options`]: a location outside `1..num_layers`, two rules at one
    /// location, or a rule whose parameters make no sense.
    pub fn set_keep_rules(&mut self, rules: &[LayerKeepRule]) -> Result<()> {
        let layers = self.model.inner.manifest.model.num_layers;
        let mut rule_after = vec![None; layers];
        for r in rules {
            if r.layer == 0 || r.layer >= layers {
                return Err(Error::Options(format!(
                    "keep-rule location {} is outside 1..{layers} (the layers after the first)",
                    r.layer
                )));
            }
            if rule_after[r.layer - 1].is_some() {
                return Err(Error::Options(format!("two keep-rules at location {}", r.layer)));
            }
            r.rule.validate().map_err(|e| Error::Options(format!("keep-rule at location {}: {e}", r.layer)))?;
            rule_after[r.layer - 1] = Some(r.rule.clone());
        }
        self.ws.ensure_rules(rules.len(), self.model.inner.manifest.model.num_heads);
        self.rule_after = rule_after;
        Ok(())
    }

    /// The keep-rules this session applies (the file's, or [`Session::set_keep_rules`]'s).
    pub fn keep_rules(&self) -> Vec<LayerKeepRule> {
        self.rule_after
            .iter()
            .enumerate()
            .filter_map(|(l, r)| r.as_ref().map(|rule| LayerKeepRule { layer: l + 1, rule: rule.clone() }))
            .collect()
    }

    /// Tokens alive per layer in the last forward pass (the last chunk of a batch).
    pub fn layer_stats(&self) -> &[LayerStats] {
        &self.ws.layer_stats
    }

    /// Accumulated per-layer `(attention, ffn)` times since the last call; resets them.
    pub fn take_layer_timing(&mut self) -> Vec<LayerTiming> {
        let out = self.timing.clone();
        self.timing.iter_mut().for_each(|t| *t = LayerTiming::default());
        out
    }

    /// Tokenizes and checks one input (input `index` of a batch) without running it.
    ///
    /// # Errors
    /// [`Error::NoTokenizer`] for text on a model without a tokenizer, [`Error::Input`]
    /// when the tokenizer fails, and the input errors listed at [`Session::run`].
    pub fn prepare(&self, index: usize, input: &Input) -> Result<Encoded> {
        let encode = |a: &str, b: Option<&str>| {
            let tok = self.tokenizer.as_ref().ok_or(Error::NoTokenizer)?;
            tokenize::encode(tok, a, b).map_err(|e| Error::Input { index, msg: e.to_string() })
        };
        let mut enc = match *input {
            Input::Text(t) => encode(t, None)?,
            Input::Pair(a, b) => encode(a, Some(b))?,
            Input::Ids { input_ids, token_type_ids } => {
                let types = match token_type_ids {
                    Some(t) if t.len() != input_ids.len() => {
                        return Err(Error::TypeIdsLength { index, type_ids: t.len(), input_ids: input_ids.len() });
                    }
                    Some(t) => t.to_vec(),
                    None => vec![0; input_ids.len()],
                };
                Encoded { input_ids: input_ids.to_vec(), token_type_ids: types, truncated: false }
            }
        };
        if enc.input_ids.len() > self.max_len && self.truncate {
            enc.input_ids.truncate(self.max_len);
            enc.token_type_ids.truncate(self.max_len);
            enc.truncated = true;
        }
        self.check_one(index, &enc)?;
        Ok(enc)
    }

    /// Runs a batch and returns one output per input, in order.
    ///
    /// A batch over the token budget is split into consecutive passes (see
    /// [`SessionOptions::max_tokens`]). Inputs that are valid but degenerate run as
    /// Hugging Face runs them: an empty or whitespace-only text encodes to its special
    /// tokens alone (`[CLS] [SEP]`), and so does an empty half of a text pair
    /// (`[CLS] a [SEP] [SEP]`); characters outside the vocabulary become `[UNK]`.
    ///
    /// # Errors
    /// Checked for every input before anything runs; the first bad input (by index)
    /// is reported and the batch is not run:
    /// * [`Error::EmptyBatch`]: no inputs;
    /// * [`Error::NoTokenizer`]: text for a model without a tokenizer;
    /// * [`Error::EmptySequence`]: token-id input with no ids;
    /// * [`Error::TooLong`]: longer than the maximum length with truncation off;
    /// * [`Error::TokenId`]: an id `>= vocab_size`;
    /// * [`Error::TokenTypeId`]: a token type id `>= type_vocab_size`;
    /// * [`Error::TypeIdsLength`]: `token_type_ids` and `input_ids` differ in length;
    /// * [`Error::Input`]: the tokenizer failed on a text.
    ///
    /// The session stays usable after any error.
    pub fn run(&mut self, inputs: &[Input], want: Outputs) -> Result<Vec<SequenceOutput>> {
        self.run_with(inputs, want, self.prune)
    }

    /// [`Session::run`] with a per-request pruning control (e.g. [`PruneControl::DENSE`]).
    ///
    /// # Errors
    /// See [`Session::run`]; [`Error::Options`] for an invalid control.
    pub fn run_with(&mut self, inputs: &[Input], want: Outputs, ctl: PruneControl) -> Result<Vec<SequenceOutput>> {
        if inputs.is_empty() {
            return Err(Error::EmptyBatch);
        }
        let encoded = inputs.iter().enumerate().map(|(i, inp)| self.prepare(i, inp)).collect::<Result<Vec<_>>>()?;
        self.run_encoded_with(encoded, want, ctl)
    }

    /// Runs already tokenized and checked sequences (from [`Session::prepare`]). They
    /// are checked again (they may have been built by hand); nothing is truncated here.
    ///
    /// # Errors
    /// The errors of [`Session::run`] for token-id input.
    pub fn run_encoded(&mut self, encoded: Vec<Encoded>, want: Outputs) -> Result<Vec<SequenceOutput>> {
        self.run_encoded_with(encoded, want, self.prune)
    }

    /// [`Session::run_encoded`] with a per-request pruning control.
    ///
    /// # Errors
    /// See [`Session::run_encoded`]; [`Error::Options`] for an invalid control.
    pub fn run_encoded_with(
        &mut self,
        encoded: Vec<Encoded>,
        want: Outputs,
        ctl: PruneControl,
    ) -> Result<Vec<SequenceOutput>> {
        ctl.validate().map_err(Error::Options)?;
        if encoded.is_empty() {
            return Err(Error::EmptyBatch);
        }
        self.check_encoded(&encoded)?;
        let mut outputs = Vec::with_capacity(encoded.len());
        let mut start = 0;
        while start < encoded.len() {
            let end = chunk_end(&encoded, start, self.ws.max_tokens);
            self.ws.load(&self.model.inner.manifest.model, &encoded[start..end]);
            self.forward_loaded(want, ctl);
            self.last_want = want;
            for (i, e) in encoded[start..end].iter().enumerate() {
                outputs.push(self.collect(i, e, want));
            }
            start = end;
        }
        Ok(outputs)
    }

    /// Checks tokenized sequences without allocating.
    fn check_encoded(&self, encoded: &[Encoded]) -> Result<()> {
        encoded.iter().enumerate().try_for_each(|(index, e)| self.check_one(index, e))
    }

    /// Checks one tokenized sequence (input `index` of a batch) without allocating.
    fn check_one(&self, index: usize, e: &Encoded) -> Result<()> {
        let cfg = &self.model.inner.manifest.model;
        if e.input_ids.is_empty() {
            return Err(Error::EmptySequence { index });
        }
        if e.input_ids.len() > self.max_len {
            return Err(Error::TooLong { index, len: e.input_ids.len(), max: self.max_len });
        }
        if e.token_type_ids.len() != e.input_ids.len() {
            return Err(Error::TypeIdsLength { index, type_ids: e.token_type_ids.len(), input_ids: e.input_ids.len() });
        }
        if let Some((position, &id)) = e.input_ids.iter().enumerate().find(|(_, &id)| id as usize >= cfg.vocab_size) {
            return Err(Error::TokenId { index, position, id, vocab_size: cfg.vocab_size });
        }
        if let Some((position, &type_id)) =
            e.token_type_ids.iter().enumerate().find(|(_, &t)| t as usize >= cfg.type_vocab_size)
        {
            return Err(Error::TokenTypeId { index, position, type_id, type_vocab_size: cfg.type_vocab_size });
        }
        Ok(())
    }

    /// Runs one batch that fits the token budget and keeps the results in the session
    /// (read them with [`Session::logits`], [`Session::hidden_states`],
    /// [`Session::kept`]). Allocates nothing: the zero-allocation path for servers and
    /// for the C API's caller-buffer calls.
    ///
    /// # Errors
    /// [`Error::OverBudget`] when the batch exceeds the token budget, [`Error::Options`]
    /// for an invalid control, and the errors of [`Session::run_encoded`].
    pub fn forward(&mut self, batch: &[Encoded], want: Outputs, ctl: PruneControl) -> Result<()> {
        ctl.validate().map_err(Error::Options)?;
        if batch.is_empty() {
            return Err(Error::EmptyBatch);
        }
        self.check_encoded(batch)?;
        let tokens: usize = batch.iter().map(|e| e.input_ids.len()).sum();
        if tokens > self.ws.max_tokens {
            return Err(Error::OverBudget { sequences: batch.len(), tokens, budget: self.ws.max_tokens });
        }
        self.ws.load(&self.model.inner.manifest.model, batch);
        self.forward_loaded(want, ctl);
        self.last_want = want;
        Ok(())
    }

    /// Logits of sequence `i` of the last [`Session::forward`]: `[num_labels]`, or for a
    /// token classifier `[len, num_labels]` (row-major, one row per input token).
    pub fn logits(&self, i: usize) -> Option<&[f32]> {
        let m = &self.model.inner.manifest;
        let l = m.head.num_labels;
        match m.head.task {
            Task::Classification if i < self.ws.segments.len() => Some(&self.ws.head_out[i * l..i * l + l]),
            Task::TokenClassification => {
                let seg = self.ws.orig_segments.get(i)?;
                Some(&self.ws.head_out[seg.offset * l..(seg.offset + seg.len) * l])
            }
            _ => None,
        }
    }

    /// Final token states `[len, hidden]` of sequence `i` of the last
    /// [`Session::forward`] (which must have asked for hidden states).
    pub fn hidden_states(&self, i: usize) -> Option<&[f32]> {
        let d = self.model.inner.manifest.model.hidden_size;
        let seg = self.ws.orig_segments.get(i)?;
        self.last_want.hidden_states.then(|| &self.ws.final_states[seg.offset * d..(seg.offset + seg.len) * d])
    }

    /// Kept sets `(location, original positions)` of sequence `i` of the last forward pass.
    pub fn kept(&self, i: usize) -> impl Iterator<Item = (usize, &[u32])> + '_ {
        self.ws.kept_of(i)
    }

    /// Final states of all tokens are needed for these outputs (a token classifier's
    /// head always reads them).
    fn token_outputs(&self, want: Outputs) -> bool {
        want.hidden_states || self.model.inner.manifest.head.task == Task::TokenClassification
    }

    fn forward_loaded(&mut self, want: Outputs, ctl: PruneControl) {
        let token_outputs = self.token_outputs(want);
        let timing = if self.timing_on { Some(self.timing.as_mut_slice()) } else { None };
        let first_token_only = want.first_token_only(&self.model.inner.manifest);
        let plan = Plan { rule_after: &self.rule_after, ctl, token_outputs, first_token_only, linear: self.linear };
        let _pass = self.pool.hold();
        forward::encode(&self.model.inner, &self.kernels, &self.pool, &mut self.ws, &plan, timing, None);
        head::dense_layers(&self.model.inner, &self.kernels, &self.pool, &mut self.ws);
    }

    /// Runs sequences (checked as [`Session::run_encoded`] checks them, in passes within
    /// the token budget, dense: no keep-rule applies) and hands `observe` the `f32`
    /// input rows `[tokens, k]` of every encoder linear, `(layer, linear, rows)`, as the
    /// pass computes them: how calibration reads the activations of real text. Nothing
    /// is returned; outputs stay in the session as after [`Session::forward`].
    ///
    /// # Errors
    /// As [`Session::run_encoded`].
    pub fn observe_linear_inputs(
        &mut self,
        encoded: &[Encoded],
        observe: &mut dyn FnMut(usize, LinearKind, &[f32]),
    ) -> Result<()> {
        if encoded.is_empty() {
            return Err(Error::EmptyBatch);
        }
        self.check_encoded(encoded)?;
        let mut start = 0;
        while start < encoded.len() {
            let end = chunk_end(encoded, start, self.ws.max_tokens);
            self.ws.load(&self.model.inner.manifest.model, &encoded[start..end]);
            let plan = Plan {
                rule_after: &self.rule_after,
                ctl: PruneControl::DENSE,
                token_outputs: false,
                first_token_only: false,
                linear: self.linear,
            };
            let _pass = self.pool.hold();
            forward::encode(&self.model.inner, &self.kernels, &self.pool, &mut self.ws, &plan, None, Some(observe));
            start = end;
        }
        Ok(())
    }

    /// Copies sequence `i` of the last forward pass into an owned output.
    fn collect(&self, i: usize, e: &Encoded, want: Outputs) -> SequenceOutput {
        let m = &self.model.inner.manifest;
        let d = m.model.hidden_size;
        let rows = if self.token_outputs(want) {
            let seg = self.ws.orig_segments[i];
            &self.ws.final_states[seg.offset * d..(seg.offset + seg.len) * d]
        } else {
            // Only the first row ([CLS], never pruned) of the alive rows is used.
            let seg = self.ws.segments[i];
            &self.ws.hidden[seg.offset * d..(seg.offset + seg.len) * d]
        };
        let logits = want.logits.then(|| self.logits(i).map(<[f32]>::to_vec)).flatten();
        // Pooled over the tokens that reach the last layer (all of them without pruning):
        // their final states, in the compacted rows.
        let alive = self.ws.segments[i];
        let survivors = &self.ws.hidden[alive.offset * d..(alive.offset + alive.len) * d];
        let embedding = (want.embedding && m.head.pooling != Pooling::None)
            .then(|| head::embedding(&self.model.inner, &self.ws, i, survivors, alive.len));
        SequenceOutput {
            input_ids: e.input_ids.clone(),
            token_type_ids: e.token_type_ids.clone(),
            truncated: e.truncated,
            logits,
            embedding,
            last_hidden_state: want.hidden_states.then(|| rows.to_vec()),
            kept: self.ws.kept_of(i).map(|(layer, positions)| (layer, positions.to_vec())).collect(),
        }
    }
}

/// The end of the pass that starts at `encoded[start]`: the longest run of sequences
/// within `budget` tokens (greedy; every checked sequence fits alone, since its length
/// is at most the session's maximum length, which the budget holds).
fn chunk_end(encoded: &[Encoded], start: usize, budget: usize) -> usize {
    let (mut end, mut tokens) = (start, 0);
    while end < encoded.len() && tokens + encoded[end].input_ids.len() <= budget {
        tokens += encoded[end].input_ids.len();
        end += 1;
    }
    end
}
