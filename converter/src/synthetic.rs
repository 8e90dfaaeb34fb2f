//! Deterministic random checkpoints in Hugging Face naming, for benchmarks and tests
//! (a BERT-base-shaped model without downloading one). Weights are normal(0, 0.02) as in
//! BERT's initialiser; LayerNorm weights 1 ± noise; biases small.

use crate::checkpoint::{Tensor, TensorData};
use toprt_format::{Arch, ModelConfig};

/// A small deterministic generator (xorshift64* + Box–Muller).
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f32 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        ((self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 40) as f32) / (1u64 << 24) as f32
    }

    /// Standard normal.
    pub fn normal(&mut self) -> f32 {
        let u1 = self.uniform().max(1e-7);
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
    }
}

/// BERT-base hyper-parameters (12 layers, 768 hidden, 12 heads, 3072 FFN).
pub fn bert_base_config() -> ModelConfig {
    ModelConfig {
        arch: Arch::Bert,
        vocab_size: 30522,
        hidden_size: 768,
        num_layers: 12,
        num_heads: 12,
        intermediate_size: 3072,
        max_position_embeddings: 512,
        type_vocab_size: 2,
        layer_norm_eps: 1e-12,
        hidden_act: "gelu".into(),
        pad_token_id: 0,
        position_offset: 0,
        embedding_size: None,
        relative_attention_buckets: None,
        norm_first: false,
        gated_ffn: false,
        rotary: None,
        local_attention: None,
        disentangled: None,
    }
}

struct Builder {
    rng: Rng,
    out: Vec<Tensor>,
}

impl Builder {
    fn push(&mut self, name: String, shape: Vec<usize>, mean: f32, std: f32) {
        let n = shape.iter().product();
        let data = (0..n).map(|_| mean + std * self.rng.normal()).collect();
        self.out.push(Tensor { name, shape, data: TensorData::F32(data) });
    }

    fn layernorm(&mut self, base: &str, d: usize) {
        self.push(format!("{base}.weight"), vec![d], 1.0, 0.1);
        self.push(format!("{base}.bias"), vec![d], 0.0, 0.1);
    }

    fn linear(&mut self, base: &str, n: usize, k: usize) {
        self.push(format!("{base}.weight"), vec![n, k], 0.0, 0.02);
        self.push(format!("{base}.bias"), vec![n], 0.0, 0.01);
    }
}

/// Random tensors for `cfg` with HF BERT names (no prefix), plus a pooler and, when
/// `num_labels > 0`, a BERT classifier.
pub fn random_bert(cfg: &ModelConfig, num_labels: usize, seed: u64) -> Vec<Tensor> {
    let mut b = Builder { rng: Rng::new(seed), out: Vec::new() };
    let (d, ff) = (cfg.hidden_size, cfg.intermediate_size);
    b.push("embeddings.word_embeddings.weight".into(), vec![cfg.vocab_size, d], 0.0, 0.02);
    b.push("embeddings.position_embeddings.weight".into(), vec![cfg.max_position_embeddings, d], 0.0, 0.02);
    b.push("embeddings.token_type_embeddings.weight".into(), vec![cfg.type_vocab_size, d], 0.0, 0.02);
    b.layernorm("embeddings.LayerNorm", d);
    for l in 0..cfg.num_layers {
        let p = format!("encoder.layer.{l}");
        for part in ["query", "key", "value"] {
            b.linear(&format!("{p}.attention.self.{part}"), d, d);
        }
        b.linear(&format!("{p}.attention.output.dense"), d, d);
        b.layernorm(&format!("{p}.attention.output.LayerNorm"), d);
        b.linear(&format!("{p}.intermediate.dense"), ff, d);
        b.linear(&format!("{p}.output.dense"), d, ff);
        b.layernorm(&format!("{p}.output.LayerNorm"), d);
    }
    b.linear("pooler.dense", d, d);
    if num_labels > 0 {
        b.linear("classifier", num_labels, d);
    }
    b.out
}

/// A ToP-style schedule for benchmarks: rank-bin masks with `bin_num` bins at the
/// locations `first..num_layers`, each keeping about `keep` of the bins in a
/// deterministic, non-monotone pattern (the lowest-ranked bins are dropped first, with a
/// few holes higher up, as trained masks look).
pub fn top_schedule(
    num_layers: usize,
    first: usize,
    bin_num: usize,
    keep: f32,
    seed: u64,
) -> Vec<toprt_format::LayerKeepRule> {
    let mut rng = Rng::new(seed);
    (first.max(1)..num_layers)
        .map(|layer| {
            let kept_bins = ((bin_num as f32 * keep).round() as usize).clamp(1, bin_num);
            let mut z: Vec<f32> = (0..bin_num).map(|b| if b < kept_bins { 1.0 } else { 0.0 }).collect();
            // Swap a couple of kept bins with dropped ones to make the mask non-monotone.
            for _ in 0..2 {
                let a = (rng.uniform() * kept_bins as f32) as usize % kept_bins;
                let b = kept_bins
                    + (rng.uniform() * (bin_num - kept_bins).max(1) as f32) as usize % (bin_num - kept_bins).max(1);
                if a > 0 && b < bin_num {
                    z.swap(a, b);
                }
            }
            toprt_format::LayerKeepRule { layer, rule: toprt_format::KeepRule::TopBins { token_z: z, gate: true } }
        })
        .collect()
}

/// A complete `.toprt` image of a random BERT classifier (no tokenizer: ids only).
///
/// # Errors
/// Only on internal inconsistencies.
pub fn random_bert_file(cfg: &ModelConfig, num_labels: usize, seed: u64) -> crate::Result<Vec<u8>> {
    file_from_tensors(cfg, num_labels, &random_bert(cfg, num_labels, seed), &format!("synthetic, seed {seed}"))
}

/// A `.toprt` image from HF-named BERT tensors (BERT classifier head when
/// `num_labels > 0`, else an encoder with the pooler); no tokenizer.
///
/// # Errors
/// Missing or misshapen tensors.
pub fn file_from_tensors(
    cfg: &ModelConfig,
    num_labels: usize,
    tensors: &[Tensor],
    what: &str,
) -> crate::Result<Vec<u8>> {
    use toprt_format::{Classifier, HeadConfig, Manifest, Pooling, Task, FORMAT_VERSION};
    let head = if num_labels > 0 {
        HeadConfig {
            task: Task::Classification,
            pooling: Pooling::None,
            normalize: false,
            classifier: Some(Classifier::Bert),
            num_labels,
            id2label: Vec::new(),
        }
    } else {
        HeadConfig {
            task: Task::Encoder,
            pooling: Pooling::Pooler,
            normalize: false,
            classifier: None,
            num_labels: 0,
            id2label: Vec::new(),
        }
    };
    let baked = crate::bake::bake(tensors, cfg, &head, &serde_json::Value::Null)?;
    let manifest = Manifest {
        format_version: FORMAT_VERSION,
        producer: format!("toprt-convert {} ({what})", env!("CARGO_PKG_VERSION")),
        model: cfg.clone(),
        head,
        tokenizer: None,
        keep_rules: Vec::new(),
        ignored_tensors: baked.ignored,
        source: serde_json::json!({"synthetic": what}),
        quantization: None,
        keep_rule_calibration: None,
        tensors: Vec::new(),
    };
    crate::writer::to_bytes(manifest, &baked.tensors)
}
