//! The `config_json` target.

use toprt_convert::config::{HeadTensors, SentenceTransformer};
use toprt_format::{Arch, Classifier, Pooling, Task};

/// Fuzz target `config_json`: the mapping of `config.json`, then the head choice for
/// every folder kind, override and set of head tensors.
pub fn config_json(data: &[u8]) -> bool {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(data) else { return false };
    let pad = v.get("pad_token_id").and_then(|p| p.as_u64());
    let Ok(cfg) = toprt_convert::config::parse_config(v) else { return false };
    cfg.model.validate().expect("parse_config returned a config the engine refuses");
    if let Some(p) = pad {
        assert_eq!(u64::from(cfg.model.pad_token_id), p, "pad_token_id changed on the way");
    }
    assert!(cfg.id2label.is_empty() || cfg.id2label.len() == cfg.num_labels);
    let sts = [
        None,
        Some(SentenceTransformer { pooling: Pooling::Cls, normalize: false }),
        Some(SentenceTransformer { pooling: Pooling::Mean, normalize: true }),
    ];
    let overrides = [None, Some(Pooling::None), Some(Pooling::Cls), Some(Pooling::Pooler), Some(Pooling::Mean)];
    for st in &sts {
        for &o in &overrides {
            let found_sets = [(false, false, false), (true, false, false), (false, true, false), (true, true, false)];
            for (pooler, classifier, discriminator) in found_sets.into_iter().chain([(false, false, true)]) {
                let found = HeadTensors { pooler, classifier, discriminator };
                let h = toprt_convert::config::choose_head(&cfg, st.as_ref(), o, found);
                match h.task {
                    Task::Classification => {
                        let want = match cfg.model.arch {
                            Arch::Bert => Classifier::Bert,
                            Arch::Roberta | Arch::Mpnet => Classifier::Roberta,
                            Arch::Distilbert => Classifier::Distilbert,
                            Arch::Electra => Classifier::Electra,
                            Arch::Modernbert => Classifier::Modernbert,
                            Arch::DebertaV2 => Classifier::Deberta,
                        };
                        assert_eq!(h.classifier, Some(want));
                        assert!(h.num_labels >= 1, "a classification head with {} labels", h.num_labels);
                        assert_eq!(h.num_labels, cfg.num_labels);
                    }
                    Task::Embedding => assert!(h.pooling != Pooling::None && h.classifier.is_none()),
                    Task::Encoder => assert!(h.classifier.is_none()),
                    Task::TokenClassification => {
                        assert_eq!(cfg.model.arch, Arch::Electra, "only ELECTRA has a token head");
                        assert_eq!((h.classifier, h.num_labels), (Some(Classifier::ElectraDiscriminator), 1));
                    }
                }
                assert!(!h.normalize || h.pooling != Pooling::None, "normalising nothing");
            }
        }
    }
    true
}
