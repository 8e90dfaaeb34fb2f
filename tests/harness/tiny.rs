//! The tiny models the seeds and several targets are made of.

use toprt_convert::checkpoint::{Tensor, TensorData};
use toprt_format::{
    Arch, Classifier, HeadConfig, KeepRule, LayerKeepRule, Manifest, ModelConfig, Pooling, Task, TokenizerSpec,
    FORMAT_VERSION,
};

/// The vocabulary of [`tiny_tokenizer_json`].
pub const TINY_VOCAB: &[&str] = &[
    "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "a", "movie", "great", "dull", "fine", "film", "is", "was",
    "not", "good", "bad", "and", "but", "it", "##s", "##ing", "##ed", "!", ",", ".", "?", "'", "hello", "world", "x",
    "y",
];

/// A BERT WordPiece `tokenizer.json` over a 32-token vocabulary (the form the
/// `tokenizers` crate writes).
pub fn tiny_tokenizer_json() -> String {
    let added: Vec<serde_json::Value> = TINY_VOCAB[..5]
        .iter()
        .enumerate()
        .map(|(id, t)| {
            serde_json::json!({"id": id, "content": t, "single_word": false, "lstrip": false, "rstrip": false,
                "normalized": false, "special": true})
        })
        .collect();
    let vocab: serde_json::Map<String, serde_json::Value> =
        TINY_VOCAB.iter().enumerate().map(|(i, t)| (t.to_string(), i.into())).collect();
    serde_json::json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": added,
        "normalizer": {"type": "BertNormalizer", "clean_text": true, "handle_chinese_chars": true,
            "strip_accents": null, "lowercase": true},
        "pre_tokenizer": {"type": "BertPreTokenizer"},
        "post_processor": {"type": "BertProcessing", "sep": ["[SEP]", 3], "cls": ["[CLS]", 2]},
        "decoder": {"type": "WordPiece", "prefix": "##", "cleanup": true},
        "model": {"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##",
            "max_input_chars_per_word": 100, "vocab": vocab}
    })
    .to_string()
}

/// The small models the seeds and the C API target use; every one has 4 hidden units,
/// 2 heads and an FFN of 8, so an image is a few KiB.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TinyModel {
    /// BERT classifier (3 labels), tokenizer, ToP rank-bin rules at layers 1 and 2.
    BertTopBins,
    /// RoBERTa classifier (2 labels), tokenizer, an LTP threshold and a top-k count.
    RobertaThreshold,
    /// Mean-pooled, normalised embedding, top-k ratio at layer 2; no tokenizer.
    BertMeanTopK,
    /// One-layer encoder with the pooler; no tokenizer, no rules.
    BertPooler,
}

impl TinyModel {
    pub const ALL: [TinyModel; 4] =
        [TinyModel::BertTopBins, TinyModel::RobertaThreshold, TinyModel::BertMeanTopK, TinyModel::BertPooler];

    pub fn name(self) -> &'static str {
        match self {
            TinyModel::BertTopBins => "bert-topbins",
            TinyModel::RobertaThreshold => "roberta-threshold",
            TinyModel::BertMeanTopK => "bert-mean-topk",
            TinyModel::BertPooler => "bert-pooler",
        }
    }
}

/// The `.toprt` image of a [`TinyModel`] (deterministic).
pub fn tiny_model(which: TinyModel) -> Vec<u8> {
    let roberta = which == TinyModel::RobertaThreshold;
    let cfg = ModelConfig {
        arch: if roberta { Arch::Roberta } else { Arch::Bert },
        vocab_size: TINY_VOCAB.len(),
        hidden_size: 4,
        num_layers: if which == TinyModel::BertPooler { 1 } else { 3 },
        num_heads: 2,
        intermediate_size: 8,
        max_position_embeddings: 18,
        type_vocab_size: 2,
        layer_norm_eps: 1e-12,
        hidden_act: "gelu".into(),
        pad_token_id: if roberta { 1 } else { 0 },
        position_offset: if roberta { 2 } else { 0 },
        ..toprt_convert::synthetic::bert_base_config()
    };
    let head = |task, pooling, normalize, classifier, num_labels: usize| HeadConfig {
        task,
        pooling,
        normalize,
        classifier,
        num_labels,
        id2label: (0..num_labels).map(|i| format!("LABEL_{i}")).collect(),
    };
    let rule = |layer, rule| LayerKeepRule { layer, rule };
    let (head, rules, tokenizer) = match which {
        TinyModel::BertTopBins => (
            head(Task::Classification, Pooling::None, false, Some(Classifier::Bert), 3),
            vec![
                rule(1, KeepRule::TopBins { token_z: vec![1.0, 0.0, 1.0, 1.0, 0.0], gate: true }),
                rule(2, KeepRule::TopBins { token_z: vec![1.0, 0.0], gate: false }),
            ],
            true,
        ),
        TinyModel::RobertaThreshold => (
            head(Task::Classification, Pooling::None, false, Some(Classifier::Roberta), 2),
            vec![
                rule(1, KeepRule::Threshold { theta: 0.01, l_ref: 16 }),
                rule(2, KeepRule::TopK { count: Some(3), ratio: None }),
            ],
            true,
        ),
        TinyModel::BertMeanTopK => (
            head(Task::Embedding, Pooling::Mean, true, None, 0),
            vec![rule(2, KeepRule::TopK { count: None, ratio: Some(0.5) })],
            false,
        ),
        TinyModel::BertPooler => (head(Task::Encoder, Pooling::Pooler, false, None, 0), Vec::new(), false),
    };
    let mut tensors = toprt_convert::synthetic::random_bert(&cfg, if roberta { 0 } else { head.num_labels }, 7);
    if roberta {
        let mut rng = toprt_convert::synthetic::Rng::new(11);
        let mut push = |name: &str, shape: Vec<usize>| {
            let data = (0..shape.iter().product()).map(|_| 0.1 * rng.normal()).collect();
            tensors.push(Tensor { name: name.into(), shape, data: TensorData::F32(data) });
        };
        push("classifier.dense.weight", vec![4, 4]);
        push("classifier.dense.bias", vec![4]);
        push("classifier.out_proj.weight", vec![2, 4]);
        push("classifier.out_proj.bias", vec![2]);
    }
    let baked = toprt_convert::bake::bake(&tensors, &cfg, &head, &serde_json::Value::Null).expect("tiny model bakes");
    let manifest = Manifest {
        format_version: FORMAT_VERSION,
        producer: "toprt-tests tiny model".into(),
        model: cfg,
        head,
        tokenizer: tokenizer.then(|| TokenizerSpec { json: tiny_tokenizer_json(), max_length: 16 }),
        keep_rules: rules,
        ignored_tensors: baked.ignored,
        source: serde_json::json!({"tiny": which.name()}),
        quantization: None,
        keep_rule_calibration: None,
        tensors: Vec::new(),
    };
    toprt_convert::writer::to_bytes(manifest, &baked.tensors).expect("tiny model serialises")
}
