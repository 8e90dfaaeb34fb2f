//! Bad files, bad checkpoints and bad inputs: each gives its own clear error, none panics.

use serde_json::json;
use toprt::{Error, Input, Model, OpenOptions, Outputs, Session, SessionOptions};
use toprt_convert::ConvertError;
use toprt_format::HEADER_LEN;
use toprt_tests::*;

fn tiny_bytes() -> Vec<u8> {
    convert_bytes(&fixture("tiny-bert-st"))
}

fn open(bytes: &[u8]) -> Result<Model, Error> {
    Model::from_bytes(bytes, &OpenOptions::default())
}

fn err_text(bytes: &[u8]) -> String {
    match open(bytes) {
        Ok(_) => panic!("corrupt file was accepted"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn valid_file_opens() {
    let m = open(&tiny_bytes()).unwrap();
    assert_eq!(m.manifest().model.num_layers, 2);
}

#[test]
fn truncated_file_is_refused_at_every_length() {
    let b = tiny_bytes();
    assert!(err_text(&b[..10]).contains("shorter than the 64-byte header"));
    assert!(err_text(&b[..b.len() - 1]).contains("truncated"));
    // Every cut point (strided to keep the test fast) gives an error, never a panic.
    for cut in (0..b.len()).step_by(613).chain([HEADER_LEN, HEADER_LEN + 1, b.len() - 64]) {
        assert!(open(&b[..cut]).is_err(), "file cut at {cut} bytes was accepted");
    }
}

#[test]
fn flipped_bytes_are_caught_by_checksums() {
    let b = tiny_bytes();
    let (h, manifest) = header_and_manifest(&b, true).unwrap();
    // A byte inside a tensor blob: the error names that tensor.
    let t = &manifest.tensors[3];
    let mut c = b.clone();
    c[(h.data_offset + t.offset + t.length / 2) as usize] ^= 0x10;
    let e = err_text(&c);
    assert!(e.contains("checksum mismatch") && e.contains(&t.name), "{e}");
    // A byte of the manifest.
    let mut c = b.clone();
    c[h.manifest_offset as usize + 5] ^= 0x01;
    assert!(err_text(&c).contains("checksum mismatch in manifest"));
    // A byte of the header.
    let mut c = b.clone();
    c[20] ^= 0x01;
    assert!(err_text(&c).contains("header checksum"));
    // Without verification the data flip goes unnoticed (documented trade-off) but the
    // structure is still validated.
    let mut c = b.clone();
    c[(h.data_offset + t.offset) as usize] ^= 0x10;
    assert!(Model::from_bytes(&c, &OpenOptions { verify_checksums: false, ..OpenOptions::default() }).is_ok());
}

#[test]
fn random_corruption_never_panics() {
    let b = tiny_bytes();
    let mut rng = toprt_convert::synthetic::Rng::new(3);
    for _ in 0..300 {
        let mut c = b.clone();
        for _ in 0..4 {
            let i = (rng.uniform() * c.len() as f32) as usize % c.len();
            c[i] = (rng.uniform() * 256.0) as u8;
        }
        let _ = open(&c);
        let _ = Model::from_bytes(&c, &OpenOptions { verify_checksums: false, ..OpenOptions::default() });
    }
}

#[test]
fn wrong_magic_and_version() {
    let b = tiny_bytes();
    let mut c = b.clone();
    c[0] = b'X';
    assert!(err_text(&c).contains("bad magic"));
    let mut c = b.clone();
    c[8..12].copy_from_slice(&7u32.to_le_bytes());
    let e = err_text(&c);
    assert!(e.contains("unsupported model file version 7"), "{e}");
    assert!(matches!(open(&c), Err(Error::Version { found: 7, .. })));
}

#[test]
fn missing_file_names_the_path() {
    let e = Model::open("/nonexistent/dir/model.toprt").unwrap_err().to_string();
    assert!(e.contains("/nonexistent/dir/model.toprt"), "{e}");
}

#[test]
fn out_of_range_ids_and_type_ids() {
    let m = open(&tiny_bytes()).unwrap();
    let vocab = m.manifest().model.vocab_size as u32;
    let mut s = Session::new(&m, &SessionOptions { threads: 1, ..Default::default() }).unwrap();
    let ids = [2, vocab, 3];
    let e = s.run(&[Input::Ids { input_ids: &ids, token_type_ids: None }], Outputs::default()).unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains(&format!("token id {vocab} at position 1")) && msg.contains("input 0"), "{msg}");
    let e = s
        .run(
            &[
                Input::Ids { input_ids: &[2, 3], token_type_ids: None },
                Input::Ids { input_ids: &[2, 3], token_type_ids: Some(&[0, 2]) },
            ],
            Outputs::default(),
        )
        .unwrap_err()
        .to_string();
    assert!(e.contains("input 1") && e.contains("token type id 2"), "{e}");
    let e = s.run(&[Input::Ids { input_ids: &[2, 3], token_type_ids: Some(&[0]) }], Outputs::default()).unwrap_err();
    assert!(e.to_string().contains("1 token_type_ids for 2 input_ids"));
    assert!(matches!(s.run(&[], Outputs::default()), Err(Error::EmptyBatch)));
    let e = s.run(&[Input::Ids { input_ids: &[], token_type_ids: None }], Outputs::default()).unwrap_err();
    assert!(e.to_string().contains("empty sequence"));
    // The session still works after errors.
    assert!(s.run(&[Input::Text("still fine")], Outputs::default()).is_ok());
}

#[test]
fn too_long_input_truncates_or_errors() {
    let m = open(&tiny_bytes()).unwrap();
    let long = "word ".repeat(2000);
    let mut s = Session::new(&m, &SessionOptions { threads: 1, max_length: Some(16), ..Default::default() }).unwrap();
    let out = s.run(&[Input::Text(&long)], Outputs::default()).unwrap();
    assert_eq!(out[0].input_ids.len(), 16);
    assert!(out[0].truncated);
    assert_eq!(*out[0].input_ids.last().unwrap(), 3, "truncated text keeps its [SEP]");
    let mut s =
        Session::new(&m, &SessionOptions { threads: 1, max_length: Some(16), truncate: false, ..Default::default() })
            .unwrap();
    let e = s.run(&[Input::Text(&long)], Outputs::default()).unwrap_err();
    assert!(matches!(e, Error::TooLong { index: 0, max: 16, .. }), "{e}");
    assert!(Session::new(&m, &SessionOptions { max_length: Some(100_000), ..Default::default() }).is_err());
}

/// Copies a fixture checkpoint folder to a fresh temp folder.
fn copy_fixture(name: &str, tag: &str) -> std::path::PathBuf {
    let dst = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}-{tag}"));
    let _ = std::fs::remove_dir_all(&dst);
    std::fs::create_dir_all(&dst).unwrap();
    for e in std::fs::read_dir(fixture(name)).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), dst.join(e.file_name())).unwrap();
    }
    dst
}

/// Rewrites `model.safetensors` in `dir` through `edit` (on the tensor list).
fn edit_safetensors(dir: &std::path::Path, edit: impl FnOnce(&mut Vec<(String, Vec<usize>, Vec<f32>)>)) {
    use toprt_convert::checkpoint::TensorData;
    let p = dir.join("model.safetensors");
    let ts = toprt_convert::checkpoint::safetensors::parse(&std::fs::read(&p).unwrap()).unwrap();
    let mut list: Vec<(String, Vec<usize>, Vec<f32>)> = ts
        .into_iter()
        .map(|t| match t.data {
            TensorData::F32(v) => (t.name, t.shape, v),
            TensorData::Other(_) => panic!("fixture has non-f32 tensors"),
        })
        .collect();
    edit(&mut list);
    let mut header = serde_json::Map::new();
    let mut data = Vec::new();
    for (name, shape, v) in &list {
        let b = data.len();
        data.extend(v.iter().flat_map(|x| x.to_le_bytes()));
        header
            .insert(name.clone(), serde_json::json!({"dtype": "F32", "shape": shape, "data_offsets": [b, data.len()]}));
    }
    let h = serde_json::to_vec(&header).unwrap();
    let mut out = (h.len() as u64).to_le_bytes().to_vec();
    out.extend(h);
    out.extend(data);
    std::fs::write(p, out).unwrap();
}

#[test]
fn checkpoint_with_missing_tensor() {
    let dir = copy_fixture("tiny-bert-st", "missing");
    edit_safetensors(&dir, |l| l.retain(|(n, _, _)| n != "bert.encoder.layer.1.attention.self.key.weight"));
    let e = toprt_convert::convert_to_bytes(&dir, &Default::default()).unwrap_err();
    assert!(matches!(e, ConvertError::MissingTensor { .. }));
    let msg = e.to_string();
    assert!(msg.contains("encoder.layer.1.attention.self.key.weight") && msg.contains("[32, 32]"), "{msg}");
}

/// DistilBERT's tensors are named in its own terms, missing or misshapen.
#[test]
fn distilbert_missing_and_misshapen_tensors_use_its_names() {
    let dir = copy_fixture("tiny-distilbert-st", "distil-missing");
    edit_safetensors(&dir, |l| l.retain(|(n, _, _)| n != "distilbert.transformer.layer.1.ffn.lin2.bias"));
    let msg = toprt_convert::convert_to_bytes(&dir, &Default::default()).unwrap_err().to_string();
    assert!(msg.contains("distilbert.transformer.layer.1.ffn.lin2.bias") && msg.contains("[32]"), "{msg}");
    let dir = copy_fixture("tiny-distilbert-st", "distil-missing-head");
    edit_safetensors(&dir, |l| l.retain(|(n, _, _)| n != "pre_classifier.weight"));
    let msg = toprt_convert::convert_to_bytes(&dir, &Default::default()).unwrap_err().to_string();
    assert!(msg.contains("'pre_classifier.weight'"), "{msg}");
    let dir = copy_fixture("tiny-distilbert-st", "distil-shape");
    edit_safetensors(&dir, |l| {
        let t = l.iter_mut().find(|(n, _, _)| n == "distilbert.transformer.layer.0.attention.k_lin.weight").unwrap();
        t.1 = vec![16, 64];
    });
    let msg = toprt_convert::convert_to_bytes(&dir, &Default::default()).unwrap_err().to_string();
    assert!(msg.contains("distilbert.transformer.layer.0.attention.k_lin.weight") && msg.contains("[32, 32]"), "{msg}");
}

/// ELECTRA: a missing projection is named with its shape; a config whose
/// embedding_size does not match the tables is refused naming the first table.
#[test]
fn electra_missing_projection_and_lying_embedding_size() {
    let dir = copy_fixture("tiny-electra-st", "electra-missing");
    edit_safetensors(&dir, |l| l.retain(|(n, _, _)| n != "electra.embeddings_project.weight"));
    let msg = toprt_convert::convert_to_bytes(&dir, &Default::default()).unwrap_err().to_string();
    assert!(msg.contains("embeddings_project.weight") && msg.contains("[32, 16]"), "{msg}");
    let dir = copy_fixture("tiny-electra-st", "electra-lying");
    let cfg = std::fs::read_to_string(dir.join("config.json")).unwrap();
    assert!(cfg.contains("\"embedding_size\": 16"), "{cfg}");
    std::fs::write(dir.join("config.json"), cfg.replace("\"embedding_size\": 16", "\"embedding_size\": 24")).unwrap();
    let msg = toprt_convert::convert_to_bytes(&dir, &Default::default()).unwrap_err().to_string();
    assert!(msg.contains("electra.embeddings.word_embeddings.weight") && msg.contains("[2999, 24]"), "{msg}");
}

/// MPNet's tensors are named in its own terms; a bias table of the wrong width is
/// refused naming it.
#[test]
fn mpnet_missing_and_misshapen_tensors_use_its_names() {
    let dir = copy_fixture("tiny-mpnet-st", "mpnet-missing");
    edit_safetensors(&dir, |l| l.retain(|(n, _, _)| n != "mpnet.encoder.layer.1.attention.attn.o.bias"));
    let msg = toprt_convert::convert_to_bytes(&dir, &Default::default()).unwrap_err().to_string();
    assert!(msg.contains("encoder.layer.1.attention.attn.o.bias") && msg.contains("[32]"), "{msg}");
    let dir = copy_fixture("tiny-mpnet-st", "mpnet-bias");
    edit_safetensors(&dir, |l| {
        let t = l.iter_mut().find(|(n, _, _)| n == "mpnet.encoder.relative_attention_bias.weight").unwrap();
        t.1 = vec![64, 2];
    });
    let msg = toprt_convert::convert_to_bytes(&dir, &Default::default()).unwrap_err().to_string();
    assert!(msg.contains("relative_attention_bias.weight") && msg.contains("[32, 4]"), "{msg}");
    // A vocab.txt alone would give BERT's pair template, not MPNet's: refused.
    let dir = copy_fixture("tiny-mpnet-st", "mpnet-vocab");
    std::fs::remove_file(dir.join("tokenizer.json")).unwrap();
    std::fs::copy(fixture("tiny-bert-st").join("vocab.txt"), dir.join("vocab.txt")).unwrap();
    let msg = toprt_convert::convert_to_bytes(&dir, &Default::default()).unwrap_err().to_string();
    assert!(msg.contains("tokenizer.json"), "{msg}");
}

/// ModernBERT's tensors are named in its own terms, including the norms the converter
/// stores under post-norm names; a config that lies about a size or asks for a bias the
/// checkpoint lacks is refused naming the tensor; settings toprt does not implement are
/// refused before any tensor is read.
#[test]
fn modernbert_missing_misshapen_and_unsupported() {
    let dir = copy_fixture("tiny-modernbert-st", "modernbert-missing");
    edit_safetensors(&dir, |l| l.retain(|(n, _, _)| n != "model.layers.2.attn_norm.weight"));
    let msg = toprt_convert::convert_to_bytes(&dir, &Default::default()).unwrap_err().to_string();
    assert!(msg.contains("model.layers.2.attn_norm.weight") && msg.contains("[32]"), "{msg}");
    let dir = copy_fixture("tiny-modernbert-st", "modernbert-wi");
    edit_safetensors(&dir, |l| {
        let t = l.iter_mut().find(|(n, _, _)| n == "model.layers.0.mlp.Wi.weight").unwrap();
        t.1 = vec![64, 64];
    });
    let msg = toprt_convert::convert_to_bytes(&dir, &Default::default()).unwrap_err().to_string();
    assert!(msg.contains("mlp.Wi.weight") && msg.contains("[128, 32]"), "{msg}");
    let edit = |name: &str, from: &str, to: &str| {
        let dir = copy_fixture("tiny-modernbert-st", name);
        let cfg = std::fs::read_to_string(dir.join("config.json")).unwrap();
        assert!(cfg.contains(from), "{cfg}");
        std::fs::write(dir.join("config.json"), cfg.replace(from, to)).unwrap();
        toprt_convert::convert_to_bytes(&dir, &Default::default()).unwrap_err().to_string()
    };
    let msg = edit("modernbert-ff", "\"intermediate_size\": 64", "\"intermediate_size\": 48");
    assert!(msg.contains("mlp.Wi.weight") && msg.contains("[96, 32]"), "{msg}");
    let msg = edit("modernbert-bias", "\"mlp_bias\": false", "\"mlp_bias\": true");
    assert!(msg.contains("model.layers.0.mlp.Wi.bias"), "{msg}");
    let msg = edit("modernbert-rope", "\"rope_type\": \"default\"", "\"rope_type\": \"yarn\"");
    assert!(msg.contains("rope_type") && msg.contains("yarn"), "{msg}");
    let msg = edit("modernbert-act", "\"hidden_activation\": \"gelu\"", "\"hidden_activation\": \"gelu_new\"");
    assert!(msg.contains("hidden_activation") && msg.contains("gelu_new"), "{msg}");
    let msg = edit("modernbert-heads", "\"num_attention_heads\": 4", "\"num_attention_heads\": 5");
    assert!(msg.contains("num_heads 5"), "{msg}");
    let msg = edit("modernbert-pool", "\"classifier_pooling\": \"mean\"", "\"classifier_pooling\": \"max\"");
    assert!(msg.contains("classifier_pooling"), "{msg}");
    // Its tokenizer comes from tokenizer.json only.
    let dir = copy_fixture("tiny-modernbert-st", "modernbert-notok");
    std::fs::remove_file(dir.join("tokenizer.json")).unwrap();
    let msg = toprt_convert::convert_to_bytes(&dir, &Default::default()).unwrap_err().to_string();
    assert!(msg.contains("tokenizer.json"), "{msg}");
}

/// DeBERTa's tensors are named as its checkpoint names them, including the position
/// projections only DeBERTa-v2 has; a config that lies about a size is refused naming
/// the tensor; settings toprt does not implement are refused before any tensor is read.
#[test]
fn deberta_missing_misshapen_and_unsupported() {
    let dir = copy_fixture("tiny-deberta-v2-st", "deberta-missing");
    edit_safetensors(&dir, |l| l.retain(|(n, _, _)| n != "deberta.encoder.layer.1.attention.self.pos_query_proj.bias"));
    let msg = toprt_convert::convert_to_bytes(&dir, &Default::default()).unwrap_err().to_string();
    assert!(
        msg.contains("deberta.encoder.layer.1.attention.self.pos_query_proj.bias") && msg.contains("[32]"),
        "{msg}"
    );
    let dir = copy_fixture("tiny-deberta-st", "deberta-rel");
    edit_safetensors(&dir, |l| {
        let t = l.iter_mut().find(|(n, _, _)| n == "deberta.encoder.rel_embeddings.weight").unwrap();
        t.1 = vec![16, 32];
        t.2.truncate(16 * 32);
    });
    let msg = toprt_convert::convert_to_bytes(&dir, &Default::default()).unwrap_err().to_string();
    assert!(msg.contains("rel_embeddings.weight") && msg.contains("[32, 32]"), "{msg}");
    let dir = copy_fixture("tiny-deberta-st", "deberta-pooler");
    edit_safetensors(&dir, |l| l.retain(|(n, _, _)| n != "pooler.dense.weight"));
    let msg = toprt_convert::convert_to_bytes(&dir, &Default::default()).unwrap_err().to_string();
    assert!(msg.contains("'pooler.dense.weight'") || msg.contains(" pooler.dense.weight"), "{msg}");
    let edit = |name: &str, from: &str, to: &str| {
        let dir = copy_fixture("tiny-deberta-st", name);
        let cfg = std::fs::read_to_string(dir.join("config.json")).unwrap();
        assert!(cfg.contains(from), "{cfg}");
        std::fs::write(dir.join("config.json"), cfg.replace(from, to)).unwrap();
        toprt_convert::convert_to_bytes(&dir, &Default::default()).unwrap_err().to_string()
    };
    let msg = edit("deberta-buckets", "\"position_buckets\": 16", "\"position_buckets\": 8");
    assert!(msg.contains("rel_embeddings.weight") && msg.contains("[16, 32]"), "{msg}");
    let msg = edit("deberta-ff", "\"intermediate_size\": 64", "\"intermediate_size\": 48");
    assert!(msg.contains("intermediate.dense.weight") && msg.contains("[48, 32]"), "{msg}");
    let msg = edit("deberta-act", "\"hidden_act\": \"gelu\"", "\"hidden_act\": \"gelu_new\"");
    assert!(msg.contains("hidden_act") && msg.contains("gelu_new"), "{msg}");
    let msg = edit("deberta-conv", "\"hidden_act\"", "\"conv_kernel_size\": 3, \"hidden_act\"");
    assert!(msg.contains("conv_kernel_size"), "{msg}");
    let msg = edit("deberta-emb", "\"hidden_act\"", "\"embedding_size\": 16, \"hidden_act\"");
    assert!(msg.contains("embedding_size"), "{msg}");
    let msg = edit("deberta-p2p", "\"c2p\"", "\"p2p\"");
    assert!(msg.contains("pos_att_type") && msg.contains("p2p"), "{msg}");
    // Its tokenizer comes from tokenizer.json only.
    let dir = copy_fixture("tiny-deberta-st", "deberta-notok");
    std::fs::remove_file(dir.join("tokenizer.json")).unwrap();
    let msg = toprt_convert::convert_to_bytes(&dir, &Default::default()).unwrap_err().to_string();
    assert!(msg.contains("tokenizer.json"), "{msg}");
}

/// The config keys of ModernBERT's own releases (before transformers 5 wrote
/// `layer_types` and `rope_parameters`) give the same model.
#[test]
fn modernbert_older_config_keys() {
    let dir = copy_fixture("tiny-modernbert-st", "modernbert-old-keys");
    let mut cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
    let o = cfg.as_object_mut().unwrap();
    o.remove("layer_types");
    o.remove("rope_parameters");
    o.insert("global_rope_theta".into(), 160000.0.into());
    o.insert("local_rope_theta".into(), 10000.0.into());
    std::fs::write(dir.join("config.json"), serde_json::to_string_pretty(&cfg).unwrap()).unwrap();
    let old = toprt_convert::convert_to_bytes(&dir, &Default::default()).unwrap().1.manifest.model;
    let new = toprt_convert::convert_to_bytes(&fixture("tiny-modernbert-st"), &Default::default()).unwrap().1.manifest;
    assert_eq!(old, new.model);
}

#[test]
fn checkpoint_with_misshapen_tensor() {
    let dir = copy_fixture("tiny-bert-st", "shape");
    edit_safetensors(&dir, |l| {
        let t = l.iter_mut().find(|(n, _, _)| n == "bert.encoder.layer.0.intermediate.dense.weight").unwrap();
        t.1 = vec![32, 64];
    });
    let msg = toprt_convert::convert_to_bytes(&dir, &Default::default()).unwrap_err().to_string();
    assert!(msg.contains("intermediate.dense.weight") && msg.contains("[32, 64]") && msg.contains("[64, 32]"), "{msg}");
}

#[test]
fn checkpoint_extra_tensors_are_listed() {
    let dir = copy_fixture("tiny-bert-st", "extra");
    edit_safetensors(&dir, |l| l.push(("cls.predictions.bias".into(), vec![4], vec![0.0; 4])));
    let (_, report) = toprt_convert::convert_to_bytes(&dir, &Default::default()).unwrap();
    assert_eq!(report.ignored, vec!["cls.predictions.bias".to_string()]);
    assert_eq!(report.manifest.ignored_tensors, report.ignored);
}

#[test]
fn unsupported_model_type_is_named() {
    let dir = copy_fixture("tiny-bert-st", "gpt2");
    let cfg = std::fs::read_to_string(dir.join("config.json")).unwrap().replace("\"bert\"", "\"gpt2\"");
    std::fs::write(dir.join("config.json"), cfg).unwrap();
    let e = toprt_convert::convert_to_bytes(&dir, &Default::default()).unwrap_err();
    assert!(e.to_string().contains("unsupported model_type 'gpt2'"), "{e}");
    assert!(e.to_string().contains("'distilbert'"), "the message lists what is supported: {e}");
    assert!(e.to_string().contains("'electra'"), "the message lists what is supported: {e}");
    assert!(e.to_string().contains("'mpnet'"), "the message lists what is supported: {e}");
    assert!(e.to_string().contains("'modernbert'"), "the message lists what is supported: {e}");
    assert!(e.to_string().contains("'deberta-v2'"), "the message lists what is supported: {e}");
}

#[test]
fn no_weights_and_no_tokenizer() {
    let dir = copy_fixture("tiny-bert-st", "noweights");
    std::fs::remove_file(dir.join("model.safetensors")).unwrap();
    assert!(matches!(toprt_convert::convert_to_bytes(&dir, &Default::default()), Err(ConvertError::NoWeights(_))));
    let dir = copy_fixture("tiny-bert-st", "notok");
    std::fs::remove_file(dir.join("vocab.txt")).unwrap();
    let e = toprt_convert::convert_to_bytes(&dir, &Default::default()).unwrap_err().to_string();
    assert!(e.contains("no tokenizer") && e.contains("--tokenizer"), "{e}");
    // --tokenizer DIR takes it from elsewhere.
    let opts = toprt_convert::ConvertOptions { tokenizer_dir: Some(fixture("tiny-bert-st")), ..Default::default() };
    assert!(toprt_convert::convert_to_bytes(&dir, &opts).is_ok());
}

#[test]
fn converter_refuses_to_overwrite_and_writes_atomically() {
    let out = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("overwrite.toprt");
    std::fs::write(&out, b"precious").unwrap();
    let e = toprt_convert::convert(&fixture("tiny-bert-st"), &out, &Default::default()).unwrap_err();
    assert!(matches!(e, ConvertError::OutputExists(_)));
    assert_eq!(std::fs::read(&out).unwrap(), b"precious");
    let opts = toprt_convert::ConvertOptions { force: true, ..Default::default() };
    toprt_convert::convert(&fixture("tiny-bert-st"), &out, &opts).unwrap();
    assert!(Model::open(&out).is_ok());
    // Conversion is deterministic: the same input gives the same bytes.
    assert_eq!(std::fs::read(&out).unwrap(), tiny_bytes());
    let leftovers: Vec<_> = std::fs::read_dir(out.parent().unwrap())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains(".tmp-"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left behind");
}

#[test]
fn model_is_shareable_across_threads() {
    fn assert_send_sync<T: Send + Sync + Clone>() {}
    assert_send_sync::<Model>();
    let m = open(&tiny_bytes()).unwrap();
    let outs: Vec<Vec<f32>> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..3)
            .map(|_| {
                let m = m.clone();
                s.spawn(move || {
                    let mut sess = Session::new(&m, &SessionOptions { threads: 1, ..Default::default() }).unwrap();
                    sess.run(&[Input::Text("shared model")], Outputs::default()).unwrap().remove(0).logits.unwrap()
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(outs.windows(2).all(|w| w[0] == w[1]), "threads disagree");
}

#[test]
fn sharded_safetensors_checkpoint() {
    // Split the fixture's tensors over two shards with an index, as large HF checkpoints are.
    let dir = copy_fixture("tiny-bert-st", "sharded");
    let p = dir.join("model.safetensors");
    let ts = toprt_convert::checkpoint::safetensors::parse(&std::fs::read(&p).unwrap()).unwrap();
    std::fs::remove_file(&p).unwrap();
    let mut weight_map = serde_json::Map::new();
    for (k, chunk) in ts.chunks(ts.len().div_ceil(2)).enumerate() {
        let file = format!("model-0000{}-of-00002.safetensors", k + 1);
        for t in chunk {
            weight_map.insert(t.name.clone(), serde_json::json!(file));
        }
        std::fs::write(dir.join(&file), safetensors_bytes(chunk)).unwrap();
    }
    let index = serde_json::json!({"metadata": {}, "weight_map": weight_map});
    std::fs::write(dir.join("model.safetensors.index.json"), index.to_string()).unwrap();
    let (bytes, report) = toprt_convert::convert_to_bytes(&dir, &Default::default()).unwrap();
    assert_eq!(report.weight_files.len(), 2);
    assert_eq!(bytes, tiny_bytes(), "sharded and single-file checkpoints must convert identically");
    // An index naming a shard that lacks the tensor is an error naming it.
    let bad = serde_json::json!({"weight_map": {"bert.not.in.any.shard": "model-00001-of-00002.safetensors"}});
    std::fs::write(dir.join("model.safetensors.index.json"), bad.to_string()).unwrap();
    let e = toprt_convert::convert_to_bytes(&dir, &Default::default()).unwrap_err().to_string();
    assert!(e.contains("bert.not.in.any.shard"), "{e}");
}

/// A tiny model's image with the manifest field at `pointer` replaced; every checksum
/// is right, so only the loader's consistency checks stand between the lie and the
/// engine.
fn tiny_with(model: harness::TinyModel, pointer: &str, v: serde_json::Value) -> Vec<u8> {
    let (manifest, data) = harness::split_toprt(&harness::tiny_model(model));
    let mut m: serde_json::Value = serde_json::from_slice(&manifest).unwrap();
    *m.pointer_mut(pointer).unwrap_or_else(|| panic!("no {pointer}")) = v;
    harness::assemble_toprt(&serde_json::to_vec(&m).unwrap(), &data, false)
}

#[test]
fn lying_layer_count_is_refused_before_anything_is_reserved() {
    // u64::MAX layers once reserved a Vec of that many layers: a capacity-overflow panic.
    for n in [u64::MAX, 1 << 40] {
        let e = err_text(&tiny_with(harness::TinyModel::BertPooler, "/model/num_layers", json!(n)));
        assert!(e.contains(&format!("num_layers {n}")) && e.contains("tensors of the directory"), "{e}");
    }
    // A small lie is caught by the missing tensors, as before.
    let e = err_text(&tiny_with(harness::TinyModel::BertPooler, "/model/num_layers", json!(4)));
    assert!(e.contains("encoder.layer.1."), "{e}");
}

#[test]
fn hidden_size_whose_qkv_width_overflows_is_refused() {
    // 3 · hidden_size overflowed (a panic with overflow checks, a wrapped shape without).
    let d = 1u64 << 63;
    let e = err_text(&tiny_with(harness::TinyModel::BertPooler, "/model/hidden_size", json!(d)));
    assert!(e.contains(&format!("hidden_size {d} is too large")), "{e}");
}

#[test]
fn roberta_position_offset_must_follow_its_pad_token() {
    // pad 7 with position offset 2 once opened, then indexed past the position table.
    let image = tiny_with(harness::TinyModel::RobertaThreshold, "/model/pad_token_id", json!(7));
    let e = err_text(&image);
    assert!(e.contains("position_offset 2") && e.contains("expected 8"), "{e}");
    let e = err_text(&tiny_with(harness::TinyModel::BertPooler, "/model/position_offset", json!(3)));
    assert!(e.contains("position_offset 3") && e.contains("expected 0"), "{e}");
    // The true values open.
    assert!(open(&tiny_with(harness::TinyModel::RobertaThreshold, "/model/pad_token_id", json!(1))).is_ok());
}

#[test]
fn label_count_without_a_classifier_is_refused() {
    // An embedding model claiming 2^48 labels once sized its logits buffer from them
    // (an allocation of 2^55 bytes at session start).
    let n = (1u64 << 48) - 1;
    let e = err_text(&tiny_with(harness::TinyModel::BertMeanTopK, "/head/num_labels", json!(n)));
    assert!(e.contains(&format!("num_labels {n} (expected 0)")), "{e}");
    let e = err_text(&tiny_with(harness::TinyModel::BertPooler, "/head/num_labels", json!(2)));
    assert!(e.contains("Encoder head with num_labels 2"), "{e}");
}

#[test]
fn pad_token_id_beyond_32_bits_is_refused() {
    // 2^32 was silently cut to 0.
    let v = json!({"model_type": "bert", "vocab_size": 8, "hidden_size": 4, "num_hidden_layers": 1,
        "num_attention_heads": 2, "intermediate_size": 8, "pad_token_id": 4294967296u64});
    let e = toprt_convert::config::parse_config(v).unwrap_err().to_string();
    assert!(e.contains("pad_token_id") && e.contains("4294967296"), "{e}");
}

#[test]
fn max_length_below_the_tokenizers_special_tokens_is_refused() {
    // A session of max_length 1 (or 2, with 3 specials around a pair) made `tokenizers`
    // subtract past zero: a panic with overflow checks, no truncation without them.
    let m = open(&harness::tiny_model(harness::TinyModel::BertTopBins)).unwrap();
    for max in [1, 2] {
        let opts = SessionOptions { threads: 1, max_length: Some(max), ..Default::default() };
        let e = Session::new(&m, &opts).err().unwrap_or_else(|| panic!("max_length {max} was accepted"));
        let msg = e.to_string();
        assert!(matches!(e, Error::Options(_)) && msg.contains("3 special tokens"), "{msg}");
        // With or without truncation: no text could ever fit such a session.
        let opts = SessionOptions { truncate: false, ..opts };
        assert!(matches!(Session::new(&m, &opts), Err(Error::Options(_))), "max_length {max}, no truncation");
    }
    let mut s = Session::new(&m, &SessionOptions { threads: 1, max_length: Some(3), ..Default::default() }).unwrap();
    let out = s.run(&[Input::Pair("a great movie", "a dull film")], Outputs::default()).unwrap();
    assert_eq!(out[0].input_ids, [2, 3, 3], "only [CLS] [SEP] [SEP] fit");
    assert!(out[0].truncated);
}

/// A `zs.pt` whose `token_z` is one row of `bins` bins, all 1 (a stride-0 view of a
/// single stored float, so the file stays tiny), and `pruner_z = [1]`.
fn zs_with_bins(bins: i32) -> Vec<u8> {
    let s = |x: &str| [&[0x8c, x.len() as u8][..], x.as_bytes()].concat();
    let int = |i: i32| [&[b'J'][..], &i.to_le_bytes()].concat();
    let ints = |xs: &[i32]| [&b"("[..], &xs.iter().flat_map(|&x| int(x)).collect::<Vec<u8>>(), b"t"].concat();
    let tensor = |key: &str, size: &[i32], stride: &[i32]| {
        [
            &b"ctorch._utils\n_rebuild_tensor_v2\n(("[..],
            &s("storage"),
            b"ctorch\nFloatStorage\n",
            &s(key),
            &s("cpu"),
            &int(1),
            b"tQ",
            &int(0),
            &ints(size),
            &ints(stride),
            b"\x89ccollections\nOrderedDict\n)RtR",
        ]
        .concat()
    };
    let pkl = [
        &b"\x80\x02}("[..],
        &s("token_z"),
        &tensor("0", &[1, bins], &[0, 0]),
        &s("pruner_z"),
        &tensor("1", &[1], &[1]),
        b"u.",
    ]
    .concat();
    let one = 1.0f32.to_le_bytes().to_vec();
    let files = [
        ("archive/data.pkl".to_string(), pkl),
        ("archive/data/0".to_string(), one.clone()),
        ("archive/data/1".to_string(), one),
        ("archive/version".to_string(), b"3\n".to_vec()),
    ];
    harness::stored_zip(&files)
}

#[test]
fn zs_pt_with_more_bins_than_the_engine_reads_is_refused() {
    // 100001 bins were converted into a keep-rule the engine refuses at open, so the
    // converter failed late with "written file does not validate".
    let e = toprt_convert::schedule::from_zs_bytes(&zs_with_bins(100_001), 4).unwrap_err();
    assert!(e.contains("layer 3") && e.contains("bin_num must be in 1..=100000, got 100001"), "{e}");
    let rules = toprt_convert::schedule::from_zs_bytes(&zs_with_bins(100_000), 4).unwrap();
    assert_eq!(rules.len(), 1);
    assert!(
        matches!(&rules[0].rule, toprt_format::KeepRule::TopBins { token_z, gate: true } if token_z.len() == 100_000)
    );
}

#[test]
fn malformed_embedded_tokenizer_is_an_error_not_a_panic() {
    // A syntax error inside "decoder" of the embedded tokenizer.json hit an `expect` in
    // the tokenizers crate: Model::from_bytes panicked.
    let (manifest, data) = harness::split_toprt(&harness::tiny_model(harness::TinyModel::BertTopBins));
    let mut m: serde_json::Value = serde_json::from_slice(&manifest).unwrap();
    let json = m["tokenizer"]["json"].as_str().unwrap().to_string();
    let broken = json.replace(r#""cleanup":true"#, r#""cleanup":tintermediate_sirue"#);
    assert_ne!(broken, json, "the tiny tokenizer has a WordPiece decoder");
    m["tokenizer"]["json"] = json!(broken);
    let image = harness::assemble_toprt(&serde_json::to_vec(&m).unwrap(), &data, false);
    let e = open(&image).unwrap_err();
    assert!(matches!(e, Error::Tokenizer(_)) && e.to_string().contains("embedded tokenizer.json"), "{e}");
    // Valid JSON of the wrong shape is refused by tokenizers itself.
    m["tokenizer"]["json"] = json!(r#"{"decoder": [1, 2, 3]}"#);
    let image = harness::assemble_toprt(&serde_json::to_vec(&m).unwrap(), &data, false);
    assert!(matches!(open(&image), Err(Error::Tokenizer(_))));
}
