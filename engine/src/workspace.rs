//! [`Workspace`]: every buffer the forward pass touches, planned once from the session's
//! token budget (nothing allocates during a pass), and the packed batch it holds.
//!
//! The sequences of a batch sit back to back, one row per alive token: a [`Segment`]
//! says which rows belong to which sequence, and `positions` remembers each row's
//! original place, so pruning can compact the rows in place.

use crate::linear::{bf16_row_words, LinearPath};
use crate::model::ModelInner;
use crate::tokenize::Encoded;
use crate::weights::LinearKind;
use std::time::Duration;
use toprt_format::{Arch, ModelConfig};
use toprt_kernels::aligned::AVec;

/// Rows `offset .. offset + len` of the packed buffers hold one sequence.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Segment {
    pub offset: usize,
    pub len: usize,
}

/// Tokens alive in one layer of the last forward pass.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct LayerStats {
    /// Rows the attention ran on (all sequences): its keys and values.
    pub attention_tokens: usize,
    /// Of those, the rows whose query was computed: all of them, or one per sequence in
    /// the last layer when only the first token's state is read.
    pub query_tokens: usize,
    /// Rows the FFN ran on.
    pub ffn_tokens: usize,
    /// Shortest and longest sequence at the attention.
    pub min_len: usize,
    pub max_len: usize,
    /// Multiply-accumulates this layer executed (FLOPs model of docs/PRUNING.md, with the
    /// real per-sequence attention and FFN lengths).
    pub macs: f64,
}

/// Per-layer wall time, filled when timing is requested.
#[derive(Clone, Copy, Debug, Default)]
pub struct LayerTiming {
    /// QKV projection + attention (+ importance scores where needed).
    pub attention: Duration,
    /// Keep decisions + compaction (+ recording pruned tokens' outputs).
    pub prune: Duration,
    /// Output projection, LayerNorms, FFN.
    pub ffn: Duration,
    /// Of the above: the four linear layers (QKV, output projection, FFN in and out),
    /// with what their GEMMs fuse (bias, GELU, residual + LayerNorm, int8 quantisation of
    /// the rows for the next linear).
    pub linears: Duration,
    /// Of `attention`: the attention core (`q·kᵀ`, softmax and importance scores, `·v`).
    pub attention_core: Duration,
}

/// One kept set: the original positions (ascending, CLS = 0) of the tokens of sequence
/// `seq` that enter layer `layer`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct KeptEntry {
    pub seq: u32,
    pub layer: u32,
    pub start: u32,
    pub len: u32,
}

/// Every buffer the forward pass touches, sized from the session's token budget.
pub(crate) struct Workspace {
    pub max_tokens: usize,
    /// Per token: `[tokens]`.
    pub ids: Vec<u32>,
    pub type_ids: Vec<u32>,
    /// Original position of each alive row in its sequence (0 = first token).
    pub positions: Vec<u32>,
    /// Row of the position-embedding table for each token (BERT: the position;
    /// RoBERTa: `pad + 1 + position`, or `pad` for pad tokens, as Hugging Face does).
    pub pos_ids: Vec<u32>,
    /// Current (compacted) segments.
    pub segments: Vec<Segment>,
    /// Segments as loaded, before any pruning (index into `final_states`).
    pub orig_segments: Vec<Segment>,
    // hidden: [tokens, d]
    pub hidden: AVec<f32>,
    /// The embeddings at their own width before `embeddings_project` (ELECTRA):
    /// `[tokens, e]`; empty for models that embed at `d`.
    pub embed: AVec<f32>,
    // qkv: [tokens, 3d]
    pub qkv: AVec<f32>,
    // ctx: [tokens, d]
    pub ctx: AVec<f32>,
    // h1: [tokens, d]
    pub h1: AVec<f32>,
    /// Pre-norm models: the normalised input rows of the next linear, `[tokens, d]`.
    pub normed: AVec<f32>,
    /// Gated FFN: the `[a, g]` rows of the intermediate linear, `[tokens, 2 · d_ff]`.
    pub glu: AVec<f32>,
    // inter: [tokens, d_ff]
    pub inter: AVec<f32>,
    /// The input of a bf16 GEMM rounded to bf16 pairs: `[tokens, max(d, d_ff) / 2]`
    /// words (empty unless the session runs bf16 GEMMs).
    pub a16: AVec<u32>,
    /// int8 sessions: the inputs of the int8 linears quantised by the ops that produce
    /// them (`linear::QuantizeTo`), `[tokens, q_stride]` words and a scale per row. Two
    /// buffers, so a linear reads one while it quantises its output into the other:
    /// `qa` holds `hidden` (for QKV) and `h1` (for Intermediate), `qb` holds `ctx` (for
    /// AttentionOut) and `inter` (for Output). Empty in other sessions.
    pub qa: AVec<u32>,
    pub qa_scale: Vec<f32>,
    pub qb: AVec<u32>,
    pub qb_scale: Vec<f32>,
    /// Words per quantised row: `max(d, d_ff) / 4`, padded to whole 64-byte lines.
    pub q_stride: usize,
    /// The outlier channels of the rows in `qa` / `qb`, gathered in `f32` for linears
    /// that keep some input channels apart: `[tokens, x_stride]` each.
    pub xa: AVec<f32>,
    pub xb: AVec<f32>,
    /// Most outlier channels of any linear of the model.
    pub x_stride: usize,
    /// Final token states at original rows (token outputs only): `[tokens, d]`.
    pub final_states: AVec<f32>,
    /// Attention scratch per worker (`kᵀ` tile + one score row): `[threads, max_len·(dh+1)]`.
    pub scores: AVec<f32>,
    pub score_stride: usize,
    /// Column sums of the attention probabilities per head: `[heads, max_tokens]`.
    pub colsum: Vec<f32>,
    /// Importance score per alive row: `[tokens]`.
    pub importance: Vec<f32>,
    /// Keep flag per alive row and ranking scratch: `[tokens]`.
    pub keep: Vec<bool>,
    pub order: Vec<u32>,
    /// Kept sets of the last pass (original positions), indexed by `kept_index`.
    pub kept: Vec<u32>,
    pub kept_index: Vec<KeptEntry>,
    pub layer_stats: Vec<LayerStats>,
    // head_in / head_mid: [sequences, d]; head_out: [sequences, labels]
    pub head_in: AVec<f32>,
    pub head_mid: AVec<f32>,
    pub head_out: AVec<f32>,
}

impl Workspace {
    /// Buffers for `max_tokens` tokens of `model`, with `attention_scratch` floats of
    /// attention scratch per thread (`attention::scratch_len` of the longest sequence).
    pub fn new(
        model: &ModelInner,
        max_tokens: usize,
        attention_scratch: usize,
        threads: usize,
        path: LinearPath,
    ) -> Workspace {
        let c = &model.manifest.model;
        let (d, ff) = (c.hidden_size, c.intermediate_size);
        let labels = model.manifest.head.num_labels.max(1);
        let rules = model.manifest.keep_rules.len();
        let int8 = path == LinearPath::Int8;
        let q_stride = d.max(ff).div_ceil(4).next_multiple_of(16);
        let x_stride = if int8 {
            let outliers = |l: &crate::weights::Linear| {
                l.int8.as_ref().and_then(|c| c.outliers.as_ref()).map_or(0, |o| o.index.len())
            };
            let w = &model.weights;
            w.layers.iter().flat_map(|l| LinearKind::ALL.map(|kind| outliers(l.linear(kind)))).max().unwrap_or(0)
        } else {
            0
        };
        Workspace {
            max_tokens,
            ids: Vec::with_capacity(max_tokens),
            type_ids: Vec::with_capacity(max_tokens),
            positions: Vec::with_capacity(max_tokens),
            pos_ids: Vec::with_capacity(max_tokens),
            segments: Vec::with_capacity(max_tokens),
            orig_segments: Vec::with_capacity(max_tokens),
            hidden: AVec::zeroed(max_tokens * d),
            embed: AVec::zeroed(if c.embedding_size.is_some() { max_tokens * c.embedding_width() } else { 0 }),
            qkv: AVec::zeroed(max_tokens * 3 * d),
            ctx: AVec::zeroed(max_tokens * d),
            h1: AVec::zeroed(max_tokens * d),
            normed: AVec::zeroed(if c.norm_first { max_tokens * d } else { 0 }),
            glu: AVec::zeroed(if c.gated_ffn { max_tokens * 2 * ff } else { 0 }),
            inter: AVec::zeroed(max_tokens * ff),
            a16: match path {
                LinearPath::Bf16 => AVec::zeroed(max_tokens * bf16_row_words(d.max(ff))),
                LinearPath::F32 | LinearPath::Bf16Widened | LinearPath::Int8 => AVec::zeroed(0),
            },
            qa: AVec::zeroed(if int8 { max_tokens * q_stride } else { 0 }),
            qa_scale: vec![0.0; if int8 { max_tokens } else { 0 }],
            qb: AVec::zeroed(if int8 { max_tokens * q_stride } else { 0 }),
            qb_scale: vec![0.0; if int8 { max_tokens } else { 0 }],
            q_stride,
            xa: AVec::zeroed(max_tokens * x_stride),
            xb: AVec::zeroed(max_tokens * x_stride),
            x_stride,
            final_states: AVec::zeroed(max_tokens * d),
            scores: AVec::zeroed(threads * attention_scratch),
            score_stride: attention_scratch,
            colsum: if rules > 0 { vec![0.0; c.num_heads * max_tokens] } else { Vec::new() },
            importance: vec![0.0; max_tokens],
            keep: vec![true; max_tokens],
            order: vec![0; max_tokens],
            kept: Vec::with_capacity(rules * max_tokens),
            kept_index: Vec::with_capacity(rules * max_tokens),
            layer_stats: vec![LayerStats::default(); c.num_layers],
            head_in: AVec::zeroed(max_tokens * d),
            head_mid: AVec::zeroed(max_tokens * d),
            head_out: AVec::zeroed(max_tokens * labels),
        }
    }

    /// Makes room for `rules` keep-rules (the column sums and kept sets), for a session
    /// whose rules were replaced after it was sized: allocates here, never in a pass.
    pub fn ensure_rules(&mut self, rules: usize, num_heads: usize) {
        if rules > 0 && self.colsum.len() < num_heads * self.max_tokens {
            self.colsum = vec![0.0; num_heads * self.max_tokens];
        }
        let want = rules * self.max_tokens;
        self.kept.reserve(want.saturating_sub(self.kept.len()));
        self.kept_index.reserve(want.saturating_sub(self.kept_index.len()));
    }

    /// Bytes held by the workspace.
    pub fn bytes(&self) -> usize {
        let f = self.hidden.len() + self.qkv.len() + self.ctx.len() + self.h1.len() + self.inter.len() + self.a16.len();
        let f = f + self.normed.len() + self.glu.len() + self.embed.len();
        let q = self.qa.len() + self.qb.len() + self.qa_scale.len() + self.qb_scale.len();
        let q = q + self.xa.len() + self.xb.len();
        let g = self.final_states.len() + self.scores.len() + self.colsum.len() + self.importance.len();
        let h = self.head_in.len() + self.head_mid.len() + self.head_out.len();
        4 * (f + g + h + q) + 16 * self.ids.capacity() + 4 * self.kept.capacity() + 16 * self.kept_index.capacity()
    }

    /// Packs a batch (that fits the budget) into the token buffers and the segment table.
    pub fn load(&mut self, cfg: &ModelConfig, batch: &[Encoded]) {
        self.ids.clear();
        self.type_ids.clear();
        self.positions.clear();
        self.pos_ids.clear();
        self.segments.clear();
        self.orig_segments.clear();
        for e in batch {
            self.segments.push(Segment { offset: self.ids.len(), len: e.input_ids.len() });
            self.orig_segments.push(Segment { offset: self.ids.len(), len: e.input_ids.len() });
            let mut non_pad = 0u32;
            for (p, (&id, &ty)) in e.input_ids.iter().zip(&e.token_type_ids).enumerate() {
                self.ids.push(id);
                self.type_ids.push(ty);
                self.positions.push(p as u32);
                let pos_id = match cfg.arch {
                    Arch::Bert | Arch::Distilbert | Arch::Electra | Arch::Modernbert | Arch::DebertaV2 => p as u32,
                    // Hugging Face RoBERTa: cumulative count of non-pad tokens + pad id.
                    // (MPNet numbers its positions the same way.)
                    Arch::Roberta | Arch::Mpnet if id == cfg.pad_token_id => cfg.pad_token_id,
                    Arch::Roberta | Arch::Mpnet => {
                        non_pad += 1;
                        cfg.pad_token_id + non_pad
                    }
                };
                self.pos_ids.push(pos_id);
            }
        }
    }

    /// The kept sets `(location, original positions)` of sequence `i` of the last pass.
    pub fn kept_of(&self, i: usize) -> impl Iterator<Item = (usize, &[u32])> + '_ {
        self.kept_index
            .iter()
            .filter(move |k| k.seq as usize == i)
            .map(|k| (k.layer as usize, &self.kept[k.start as usize..(k.start + k.len) as usize]))
    }
}
