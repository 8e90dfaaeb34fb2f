//! The bodies of the fuzz targets in `fuzz/`, one function per reader of untrusted
//! input, plus the tiny models and containers their seeds are made of.
//!
//! They live here, not in the fuzz crate, so that the normal test suite runs exactly the
//! same code: the property tests (`tests/tests/props.rs`) feed them random inputs, and
//! the regression tests (`tests/tests/fuzz_regressions.rs`) feed them every committed
//! seed and every input a fuzzer once crashed on.
//!
//! Each harness accepts any byte string. It panics only when the code under test
//! misbehaves: a panic inside a reader, an opened model that refuses valid ids, a parsed
//! value that does not round-trip, a C call that returns `TOPRT_ERR_INTERNAL` or writes
//! an output on error. An input the reader refuses with an error is a pass.
//!
//! Several targets take a leading flags byte that chooses how the rest is read: either
//! as the raw file, or as its parts (manifest, header JSON, pickle, ...) that the harness
//! assembles into a file with correct lengths and checksums. The second form lets a
//! fuzzer mutate the JSON or the pickle freely without every mutation being stopped by a
//! length field or a CRC.

use std::ffi::{c_char, CStr};
use std::sync::{Mutex, OnceLock};
use toprt::capi::*;
use toprt::cli_input::{parse_line, Line, LineReader};
use toprt::{Input, Isa, Model, OpenOptions, Outputs, PruneControl, Session, SessionOptions};
use toprt_convert::checkpoint::{Tensor, TensorData};
use toprt_convert::config::{HeadTensors, SentenceTransformer};
use toprt_format::{
    Arch, Classifier, HeadConfig, KeepRule, LayerKeepRule, Manifest, ModelConfig, Pooling, Task, TokenizerSpec,
    FORMAT_VERSION,
};

// ---- a byte cursor -----------------------------------------------------------------

/// Reads little-endian values from the front of a fuzz input; past the end every read
/// gives zeros, so every input decodes to something.
pub struct Bytes<'a> {
    data: &'a [u8],
}

impl<'a> Bytes<'a> {
    pub fn new(data: &'a [u8]) -> Bytes<'a> {
        Bytes { data }
    }

    /// Up to `n` bytes (fewer at the end of the input).
    pub fn take(&mut self, n: usize) -> &'a [u8] {
        let (head, tail) = self.data.split_at(n.min(self.data.len()));
        self.data = tail;
        head
    }

    pub fn u8(&mut self) -> u8 {
        self.take(1).first().copied().unwrap_or(0)
    }

    pub fn u16(&mut self) -> u16 {
        let mut b = [0; 2];
        let t = self.take(2);
        b[..t.len()].copy_from_slice(t);
        u16::from_le_bytes(b)
    }

    pub fn u32(&mut self) -> u32 {
        let mut b = [0; 4];
        let t = self.take(4);
        b[..t.len()].copy_from_slice(t);
        u32::from_le_bytes(b)
    }

    pub fn u64(&mut self) -> u64 {
        let mut b = [0; 8];
        let t = self.take(8);
        b[..t.len()].copy_from_slice(t);
        u64::from_le_bytes(b)
    }

    /// Everything not read yet.
    pub fn rest(&mut self) -> &'a [u8] {
        self.take(self.data.len())
    }
}

// ---- .toprt images -----------------------------------------------------------------

/// A `.toprt` image from a manifest and a data section: a correct header (lengths,
/// offsets, both CRCs) whatever the manifest says. With `fix_tensor_crcs`, every tensor
/// entry whose `offset`/`length` lie inside `data` gets the right `crc32` (the manifest
/// is then re-serialised, so it must parse as JSON; otherwise it is used as is).
pub fn assemble_toprt(manifest: &[u8], data: &[u8], fix_tensor_crcs: bool) -> Vec<u8> {
    let fixed;
    let manifest = match fix_tensor_crcs.then(|| serde_json::from_slice::<serde_json::Value>(manifest)) {
        Some(Ok(mut v)) => {
            if let Some(ts) = v.get_mut("tensors").and_then(|t| t.as_array_mut()) {
                for t in ts.iter_mut() {
                    let range = t.get("offset").and_then(|o| o.as_u64()).zip(t.get("length").and_then(|l| l.as_u64()));
                    let blob = range.and_then(|(o, l)| {
                        data.get(usize::try_from(o).ok()?..usize::try_from(o.checked_add(l)?).ok()?)
                    });
                    if let (Some(blob), Some(obj)) = (blob, t.as_object_mut()) {
                        obj.insert("crc32".into(), crc32fast::hash(blob).into());
                    }
                }
            }
            fixed = serde_json::to_vec(&v).unwrap_or_else(|_| manifest.to_vec());
            &fixed[..]
        }
        _ => manifest,
    };
    toprt_format::image::assemble(manifest, data)
}

/// Splits a valid image into `(manifest, data section)`, the inverse of
/// [`assemble_toprt`].
pub fn split_toprt(image: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let (m, d) = toprt_format::image::split(image).expect("split_toprt needs a valid image");
    (m.to_vec(), d.to_vec())
}

/// Rewrites the header of a raw image so that its checksums and `data_len` agree with
/// the bytes, whatever offsets and lengths it claims. Short images are left alone.
pub fn fix_toprt_header(image: &mut [u8]) {
    toprt_format::header::repair_header(image);
}

/// Fuzz target `toprt_file`: the engine's `.toprt` loader, then a session on what it
/// accepted.
///
/// `data[0]` bits 0–1: 0 = the rest is a raw image; 1 = a raw image whose header
/// checksums and `data_len` are fixed first; 2, 3 = `manifest JSON, 0x00, data section`,
/// assembled by [`assemble_toprt`]. Bit 2 set: open without verifying tensor CRCs (in
/// the assembled form they are then left as written, otherwise they are fixed). Bit 3:
/// run the scalar kernels instead of the best tier. Bits 4–7: sequence length − 1.
pub fn toprt_file(data: &[u8]) -> bool {
    let Some((&flags, rest)) = data.split_first() else { return false };
    let verify = flags & 4 == 0;
    let image = match flags & 3 {
        0 => rest.to_vec(),
        1 => {
            let mut v = rest.to_vec();
            fix_toprt_header(&mut v);
            v
        }
        _ => {
            let (m, d) = match rest.iter().position(|&b| b == 0) {
                Some(i) => (&rest[..i], &rest[i + 1..]),
                None => (rest, &[][..]),
            };
            assemble_toprt(m, d, verify)
        }
    };
    let Ok(model) = Model::from_bytes(&image, &OpenOptions { verify_checksums: verify }) else { return false };
    let isa = (flags & 8 != 0).then_some(Isa::Scalar);
    run_opened_model(&model, isa, 1 + (flags >> 4) as usize);
    true
}

/// Runs a model that opened: valid ids must run, with every output of the right size.
fn run_opened_model(model: &Model, isa: Option<Isa>, len: usize) {
    let m = model.manifest();
    let opts = SessionOptions { threads: 1, max_tokens: 32, isa, ..Default::default() };
    // A tokenizer may refuse a maximum length below its special tokens.
    let Ok(mut s) = Session::new(model, &opts) else { return };
    let (vocab, types, d) = (m.model.vocab_size, m.model.type_vocab_size, m.model.hidden_size);
    let len = len.min(s.max_length());
    if len == 0 {
        return;
    }
    let ids: Vec<u32> = (0..len).map(|i| ((i * 7 + 2) % vocab) as u32).collect();
    let type_ids: Vec<u32> = (0..len).map(|i| (i % types) as u32).collect();
    let short = &ids[..len.div_ceil(2)];
    let inputs = [
        Input::Ids { input_ids: &ids, token_type_ids: Some(&type_ids) },
        Input::Ids { input_ids: short, token_type_ids: None },
    ];
    let want = Outputs { logits: true, embedding: true, hidden_states: true };
    for ctl in [s.prune_control(), PruneControl::DENSE, PruneControl { enabled: true, keep_scale: 0.5 }] {
        let out = s.run_with(&inputs, want, ctl).unwrap_or_else(|e| panic!("an opened model refused valid ids: {e}"));
        assert_eq!(out.len(), 2);
        for (o, n) in out.iter().zip([len, short.len()]) {
            assert_eq!(o.input_ids.len(), n);
            let logits = o.logits.as_ref().map(Vec::len);
            let labels = (m.head.task == Task::Classification).then_some(m.head.num_labels);
            assert_eq!(logits, labels, "logits");
            let emb = o.embedding.as_ref().map(Vec::len);
            assert_eq!(emb, (m.head.pooling != Pooling::None).then_some(d), "embedding");
            assert_eq!(o.last_hidden_state.as_ref().map(Vec::len), Some(n * d), "hidden states");
            for (layer, kept) in &o.kept {
                assert!(*layer >= 1 && *layer < m.model.num_layers, "kept at layer {layer}");
                assert!(kept.first() == Some(&0), "[CLS] must be kept: {kept:?}");
                assert!(kept.windows(2).all(|w| w[0] < w[1]) && kept.iter().all(|&p| (p as usize) < n));
            }
        }
    }
    if model.has_tokenizer() {
        // Text may legitimately fail (e.g. a tokenizer id outside the model's vocabulary).
        let _ =
            s.run(&[Input::Text("hello world, a great movie!"), Input::Pair("is it good?", "it was not bad")], want);
    }
}

// ---- tiny models -------------------------------------------------------------------

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
    let baked = toprt_convert::bake::bake(&tensors, &cfg, &head).expect("tiny model bakes");
    let manifest = Manifest {
        format_version: FORMAT_VERSION,
        producer: "toprt-tests tiny model".into(),
        model: cfg,
        head,
        tokenizer: tokenizer.then(|| TokenizerSpec { json: tiny_tokenizer_json(), max_length: 16 }),
        keep_rules: rules,
        ignored_tensors: baked.ignored,
        source: serde_json::json!({"tiny": which.name()}),
        tensors: Vec::new(),
    };
    toprt_convert::writer::to_bytes(manifest, &baked.tensors).expect("tiny model serialises")
}

// ---- torch zip archives ------------------------------------------------------------

/// A stored (uncompressed) ZIP archive of `files`, as `torch.save` writes them.
pub fn stored_zip(files: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut cd = Vec::new();
    for (name, data) in files {
        let (name, off, crc) = (name.as_bytes(), out.len() as u32, crc32fast::hash(data));
        let fixed = |v: &mut Vec<u8>| {
            v.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0]); // flags, method, time, date
            v.extend_from_slice(&crc.to_le_bytes());
            v.extend_from_slice(&(data.len() as u32).to_le_bytes());
            v.extend_from_slice(&(data.len() as u32).to_le_bytes());
            v.extend_from_slice(&(name.len() as u16).to_le_bytes());
            v.extend_from_slice(&0u16.to_le_bytes()); // extra length
        };
        out.extend_from_slice(&0x0403_4b50u32.to_le_bytes());
        out.extend_from_slice(&20u16.to_le_bytes());
        fixed(&mut out);
        out.extend_from_slice(name);
        out.extend_from_slice(data);
        cd.extend_from_slice(&0x0201_4b50u32.to_le_bytes());
        cd.extend_from_slice(&[20, 0, 20, 0]);
        fixed(&mut cd);
        cd.extend_from_slice(&[0; 10]); // comment length, disk, internal and external attributes
        cd.extend_from_slice(&off.to_le_bytes());
        cd.extend_from_slice(name);
    }
    let cd_off = out.len() as u32;
    out.extend_from_slice(&cd);
    out.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&(files.len() as u16).to_le_bytes());
    out.extend_from_slice(&(files.len() as u16).to_le_bytes());
    out.extend_from_slice(&(cd.len() as u32).to_le_bytes());
    out.extend_from_slice(&cd_off.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out
}

/// The entries of a ZIP archive without a comment, by walking its central directory
/// (for making seeds out of real `torch.save` files; `None` if it is not one).
pub fn zip_entries(zip: &[u8]) -> Option<Vec<(String, Vec<u8>)>> {
    let u16_at = |o: usize| Some(u16::from_le_bytes(zip.get(o..o + 2)?.try_into().ok()?) as usize);
    let u32_at = |o: usize| Some(u32::from_le_bytes(zip.get(o..o + 4)?.try_into().ok()?) as usize);
    let eocd = zip.len().checked_sub(22)?;
    let (n, mut at) = (u16_at(eocd + 10)?, u32_at(eocd + 16)?);
    let mut files = Vec::new();
    for _ in 0..n {
        let (size, name_len) = (u32_at(at + 24)?, u16_at(at + 28)?);
        let (extra, comment, lho) = (u16_at(at + 30)?, u16_at(at + 32)?, u32_at(at + 42)?);
        let name = String::from_utf8(zip.get(at + 46..at + 46 + name_len)?.to_vec()).ok()?;
        let start = lho + 30 + u16_at(lho + 26)? + u16_at(lho + 28)?;
        files.push((name, zip.get(start..start + size)?.to_vec()));
        at += 46 + name_len + extra + comment;
    }
    Some(files)
}

/// The parts form of a torch checkpoint: `u16 pickle length, pickle, then entries
/// (u8 name length, name, u32 data length, data)` with names below `archive/`.
pub fn torch_parts(pickle: &[u8], entries: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut out = (pickle.len() as u16).to_le_bytes().to_vec();
    out.extend_from_slice(pickle);
    for (name, data) in entries {
        out.push(name.len() as u8);
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(&(data.len() as u32).to_le_bytes());
        out.extend_from_slice(data);
    }
    out
}

/// The parts form of a real `torch.save` archive (`None` if it is not one).
pub fn torch_parts_of(zip: &[u8]) -> Option<Vec<u8>> {
    let files = zip_entries(zip)?;
    let (pkl_name, pkl) = files.iter().find(|(n, _)| n.ends_with("/data.pkl"))?;
    let prefix = pkl_name.strip_suffix("data.pkl")?;
    let rest: Vec<(String, Vec<u8>)> = files
        .iter()
        .filter(|(n, _)| n != pkl_name)
        .filter_map(|(n, d)| Some((n.strip_prefix(prefix)?.to_string(), d.clone())))
        .collect();
    Some(torch_parts(pkl, &rest))
}

/// Assembles the parts form (see [`torch_parts`]) into an archive; lengths that run past
/// the input are cut short.
pub fn assemble_torch(parts: &[u8]) -> Vec<u8> {
    let mut b = Bytes::new(parts);
    let n = b.u16() as usize;
    let mut files = vec![("archive/data.pkl".to_string(), b.take(n).to_vec())];
    loop {
        let n = b.u8() as usize;
        let name = String::from_utf8_lossy(b.take(n)).into_owned();
        let len = b.u32() as usize;
        if n == 0 && len == 0 {
            break;
        }
        files.push((format!("archive/{name}"), b.take(len).to_vec()));
    }
    stored_zip(&files)
}

/// `data[0]` even: the rest is a raw archive; odd: the parts form.
fn torch_bytes(flags: u8, rest: &[u8]) -> Vec<u8> {
    if flags & 1 == 0 {
        rest.to_vec()
    } else {
        assemble_torch(rest)
    }
}

/// Fuzz target `torch_pickle`: the restricted unpickler and ZIP reader that read
/// `pytorch_model.bin`. `data[0]` chooses the raw or the parts form (see
/// [`assemble_torch`]).
pub fn torch_pickle(data: &[u8]) -> bool {
    let Some((&flags, rest)) = data.split_first() else { return false };
    let bytes = torch_bytes(flags, rest);
    let Ok(ckpt) = toprt_convert::checkpoint::torch::read_torch_checkpoint_from_bytes(&bytes) else { return false };
    let mut names = std::collections::HashSet::new();
    for t in &ckpt.tensors {
        assert!(names.insert(t.name.as_str()), "duplicate tensor name {}", t.name);
        let numel: usize = t.shape.iter().product();
        assert_eq!(t.data.len(), numel * t.dtype.size_in_bytes(), "tensor {} has the wrong byte count", t.name);
        assert_eq!(t.to_f32_vec().map(|v| v.len()).ok(), Some(numel), "tensor {}", t.name);
    }
    true
}

/// Fuzz target `zs_pt`: ToP's `zs.pt` reader. `data[0]` chooses the raw or parts form,
/// `data[1]` is the model's layer count.
pub fn zs_pt(data: &[u8]) -> bool {
    let mut b = Bytes::new(data);
    let (flags, layers) = (b.u8(), b.u8() as usize);
    let bytes = torch_bytes(flags, b.rest());
    let Ok(rules) = toprt_convert::schedule::from_zs_bytes(&bytes, layers) else { return false };
    // What the converter writes must be what the engine accepts.
    let mut last = 0;
    for r in &rules {
        assert!(r.layer > last && r.layer < layers, "rule at layer {} of {layers}", r.layer);
        last = r.layer;
        if let Err(e) = r.rule.validate() {
            panic!("zs.pt gave a keep-rule the engine refuses: {e}");
        }
    }
    true
}

// ---- safetensors -------------------------------------------------------------------

/// A safetensors file from a header and a data section.
pub fn assemble_safetensors(header: &[u8], data: &[u8]) -> Vec<u8> {
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(header);
    out.extend_from_slice(data);
    out
}

/// Fuzz target `safetensors`: the converter's safetensors reader. `data[0]` even: the
/// rest is a raw file; odd: `header JSON, 0x00, data` (the length prefix is computed).
pub fn safetensors(data: &[u8]) -> bool {
    let Some((&flags, rest)) = data.split_first() else { return false };
    let bytes = if flags & 1 == 0 {
        rest.to_vec()
    } else {
        match rest.iter().position(|&b| b == 0) {
            Some(i) => assemble_safetensors(&rest[..i], &rest[i + 1..]),
            None => assemble_safetensors(rest, &[]),
        }
    };
    let Ok(tensors) = toprt_convert::checkpoint::safetensors::parse(&bytes) else { return false };
    for t in &tensors {
        let numel: usize = t.shape.iter().product();
        if let TensorData::F32(v) = &t.data {
            assert_eq!(v.len(), numel, "tensor {} of shape {:?}", t.name, t.shape);
        }
    }
    true
}

// ---- config.json -------------------------------------------------------------------

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
            for (pooler, classifier) in [(false, false), (true, false), (false, true), (true, true)] {
                let found = HeadTensors { pooler, classifier };
                let h = toprt_convert::config::choose_head(&cfg, st.as_ref(), o, found);
                match h.task {
                    Task::Classification => {
                        let want = if cfg.model.arch == Arch::Roberta { Classifier::Roberta } else { Classifier::Bert };
                        assert_eq!(h.classifier, Some(want));
                        assert!(h.num_labels >= 1, "a classification head with {} labels", h.num_labels);
                        assert_eq!(h.num_labels, cfg.num_labels);
                    }
                    Task::Embedding => assert!(h.pooling != Pooling::None && h.classifier.is_none()),
                    Task::Encoder => assert!(h.classifier.is_none()),
                }
                assert!(!h.normalize || h.pooling != Pooling::None, "normalising nothing");
            }
        }
    }
    true
}

// ---- the shared tiny model with a tokenizer ----------------------------------------

/// One session on [`TinyModel::BertTopBins`], shared by the targets that need a model
/// with a tokenizer but do not test the model itself.
fn shared_session() -> &'static Mutex<Session> {
    static S: OnceLock<Mutex<Session>> = OnceLock::new();
    S.get_or_init(|| {
        let model =
            Model::from_bytes(&tiny_model(TinyModel::BertTopBins), &OpenOptions::default()).expect("tiny model opens");
        let opts = SessionOptions { threads: 1, max_tokens: 64, ..Default::default() };
        Mutex::new(Session::new(&model, &opts).expect("tiny session"))
    })
}

// ---- the CLI's JSONL reader --------------------------------------------------------

/// The JSON form of a parsed line (for round trips).
pub fn line_json(line: &Line) -> serde_json::Value {
    match line {
        Line::Text(t, p) => serde_json::json!({"text": t, "text_pair": p}),
        Line::Ids(i, t) => serde_json::json!({"input_ids": i, "token_type_ids": t}),
    }
}

/// Fuzz target `cli_jsonl`: the input reader of `toprt run`, then tokenizing and
/// checking each parsed line as the CLI does before running it.
pub fn cli_jsonl(data: &[u8]) -> bool {
    let lines = data.split(|&b| b == b'\n').count();
    let session = shared_session().lock().unwrap_or_else(|e| e.into_inner());
    let mut all_ok = true;
    for item in LineReader::new(data, "input.jsonl") {
        let (n, line) = match item {
            Ok(x) => x,
            Err(msg) => {
                assert!(msg.contains("line "), "error without a line number: {msg}");
                all_ok = false;
                continue;
            }
        };
        assert!(n >= 1 && n <= lines, "line number {n} of {lines}");
        let again = parse_line(&line_json(&line).to_string(), n).expect("a parsed line's JSON form parses");
        assert_eq!(again, line, "line {n} does not round-trip");
        if let Ok(enc) = session.prepare(0, &line.as_input()) {
            assert!(!enc.input_ids.is_empty() && enc.input_ids.len() <= session.max_length());
            assert_eq!(enc.input_ids.len(), enc.token_type_ids.len());
        }
    }
    all_ok
}

// ---- the C API ---------------------------------------------------------------------

/// The C handles of [`TinyModel::BertTopBins`], opened once through
/// `toprt_model_open_bytes`, and of a one-thread session on it. Each calling thread gets
/// its own session (a session serves one thread at a time; parallel tests would get
/// `TOPRT_ERR_BUSY`), kept for the life of the process.
pub fn capi_fixture() -> (usize, usize) {
    static MODEL: OnceLock<usize> = OnceLock::new();
    thread_local! {
        static SESSION: std::cell::OnceCell<usize> = const { std::cell::OnceCell::new() };
    }
    let model = *MODEL.get_or_init(|| {
        let bytes = tiny_model(TinyModel::BertTopBins);
        let mut model = std::ptr::null_mut();
        // SAFETY: a valid buffer and out-pointer.
        let st = unsafe { toprt_model_open_bytes(bytes.as_ptr().cast(), bytes.len(), &mut model) };
        assert_eq!(st, TOPRT_OK, "{}", last_error());
        model.addr()
    });
    let session = SESSION.with(|s| {
        *s.get_or_init(|| {
            let mut opts = std::mem::MaybeUninit::uninit();
            // SAFETY: a writable struct.
            assert_eq!(unsafe { toprt_session_options_init(opts.as_mut_ptr()) }, TOPRT_OK);
            // SAFETY: initialised by the call above.
            let mut opts = unsafe { opts.assume_init() };
            opts.threads = 1;
            let mut session = std::ptr::null_mut();
            let model: *const toprt_model = std::ptr::without_provenance(model);
            // SAFETY: live model handle, readable options, writable out-pointer.
            let st = unsafe { toprt_session_create(model, &opts, &mut session) };
            assert_eq!(st, TOPRT_OK, "{}", last_error());
            session.addr()
        })
    });
    (model, session)
}

pub fn last_error() -> String {
    // SAFETY: toprt_last_error never returns NULL and the string is NUL-terminated.
    unsafe { CStr::from_ptr(toprt_last_error()) }.to_string_lossy().into_owned()
}

/// A status any call may return, never `TOPRT_ERR_INTERNAL` (a caught panic); a failure
/// must leave a message.
fn check_status(what: &str, st: toprt_status) -> toprt_status {
    assert!((TOPRT_OK..TOPRT_ERR_INTERNAL).contains(&st), "{what} returned {st}: {}", last_error());
    if st != TOPRT_OK {
        assert!(!last_error().is_empty(), "{what} failed with {st} and no message");
    }
    st
}

/// Owned buffers of one fuzzed `toprt_input` (the struct points into them).
#[derive(Default)]
struct InputBuffers {
    text: Vec<u8>,
    pair: Vec<u8>,
    ids: Vec<u32>,
    types: Vec<u32>,
}

/// A text argument: `(pointer, length)` in one of the forms the header allows, or NULL.
fn text_arg(b: &mut Bytes, buf: &mut Vec<u8>) -> (*const c_char, usize) {
    let n = b.u8() as usize % 48;
    buf.extend_from_slice(b.take(n));
    match b.u8() % 4 {
        0 => (buf.as_ptr().cast(), buf.len()),
        1 => {
            buf.push(0);
            (buf.as_ptr().cast(), TOPRT_NUL_TERMINATED)
        }
        2 => (std::ptr::null(), buf.len()),
        _ => (buf.as_ptr().cast(), 0),
    }
}

/// Fuzz target `capi_run`: `toprt_session_run` and the result getters, called through
/// the C ABI with fuzzed sessions, options, inputs, id arrays, lengths, texts (including
/// invalid UTF-8) and NULL, misaligned or stale arguments. The pointers are always valid
/// for the lengths passed with them (the caller's side of the contract); everything
/// else may be wrong and must give an error code, never a crash.
pub fn capi_run(data: &[u8]) -> bool {
    let (model, shared) = capi_fixture();
    let model: *const toprt_model = std::ptr::without_provenance(model);
    let mut b = Bytes::new(data);
    let flags = b.u8();
    let mut owned: *mut toprt_session = std::ptr::null_mut();
    let mut max_length = 16;
    let session: *mut toprt_session = match flags & 3 {
        0 => std::ptr::without_provenance_mut(shared),
        1 => {
            let mut o = std::mem::MaybeUninit::uninit();
            // SAFETY: a writable struct.
            assert_eq!(unsafe { toprt_session_options_init(o.as_mut_ptr()) }, TOPRT_OK);
            // SAFETY: initialised by the call above.
            let mut o = unsafe { o.assume_init() };
            o.threads = [1, 1, 0, MAX_THREADS_PLUS_ONE][b.u8() as usize % 4];
            o.truncate = i32::from(b.u8() % 2);
            o.max_tokens = if b.u8().is_multiple_of(8) { b.u64() as usize } else { b.u8() as usize };
            o.max_length = b.u8() as usize % 24;
            o.prune_enabled = i32::from(b.u8() % 2);
            o.keep_scale =
                if b.u8().is_multiple_of(2) { 0.25 + f32::from(b.u8()) / 64.0 } else { f32::from_bits(b.u32()) };
            o.isa = [TOPRT_ISA_AUTO, 1, 2, 0, 1, 2, -1, TOPRT_ISA_AVX512][b.u8() as usize % 8];
            let opts: *const toprt_session_options = if b.u8() % 8 == 7 { std::ptr::null() } else { &o };
            // SAFETY: live model handle; options NULL or readable; out-pointer writable.
            let st = unsafe { toprt_session_create(model, opts, &mut owned) };
            if check_status("toprt_session_create", st) == TOPRT_OK {
                assert!(!owned.is_null());
                if !opts.is_null() && o.max_length != 0 {
                    max_length = o.max_length;
                }
            } else {
                assert!(owned.is_null(), "toprt_session_create wrote its output on error");
            }
            owned
        }
        2 => std::ptr::null_mut(),
        _ if flags & 4 != 0 => {
            // A freed session: its handle must be recognised as stale.
            let mut s = std::ptr::null_mut();
            // SAFETY: live model handle, default options, writable out-pointer.
            let st = unsafe { toprt_session_create(model, std::ptr::null(), &mut s) };
            assert_eq!(check_status("toprt_session_create", st), TOPRT_OK);
            // SAFETY: a live handle, freed once.
            assert_eq!(unsafe { toprt_session_free(s) }, TOPRT_OK);
            s
        }
        // A made-up handle value.
        _ => std::ptr::without_provenance_mut(b.u64() as usize),
    };

    let n = b.u8() as usize % 5;
    let mut bufs: Vec<InputBuffers> = (0..n).map(|_| InputBuffers::default()).collect();
    let mut inputs = Vec::with_capacity(n);
    for buf in &mut bufs {
        let kind = match b.u8() % 5 {
            0 => TOPRT_INPUT_TEXT,
            1 => TOPRT_INPUT_PAIR,
            2 | 3 => TOPRT_INPUT_IDS,
            _ => b.u32(),
        };
        let (text, text_len) = text_arg(&mut b, &mut buf.text);
        let (text_pair, text_pair_len) = text_arg(&mut b, &mut buf.pair);
        let num = b.u8() as usize % 40;
        let vocab = TINY_VOCAB.len() as u32;
        for _ in 0..num {
            let v = b.u8();
            buf.ids.push(if v == 255 { b.u32() } else { u32::from(v) % (vocab + 2) });
        }
        let types_mode = b.u8() % 4;
        buf.types = (0..num as u32).map(|i| if types_mode == 3 { i % 4 } else { i % 2 }).collect();
        // The id pointer: valid, NULL, or misaligned by one byte (the library must refuse
        // it without reading).
        let id_mode = b.u8() % 8;
        let input_ids = match id_mode {
            6 => std::ptr::null(),
            7 => buf.ids.as_ptr().cast::<u8>().wrapping_add(1).cast(),
            _ => buf.ids.as_ptr(),
        };
        let token_type_ids = if types_mode == 0 { std::ptr::null() } else { buf.types.as_ptr() };
        inputs.push(toprt_input {
            kind,
            text,
            text_len,
            text_pair,
            text_pair_len,
            input_ids,
            token_type_ids,
            num_ids: num,
        });
    }
    let mut run_opts = std::mem::MaybeUninit::uninit();
    // SAFETY: a writable struct.
    assert_eq!(unsafe { toprt_run_options_init(run_opts.as_mut_ptr()) }, TOPRT_OK);
    // SAFETY: initialised by the call above.
    let mut run_opts = unsafe { run_opts.assume_init() };
    let opt_mode = b.u8();
    run_opts.outputs = u32::from(b.u8() % 10);
    run_opts.prune = i32::from(b.u8() % 4);
    run_opts.keep_scale =
        if b.u8().is_multiple_of(2) { (1.0 + f32::from(b.u8())) / 32.0 } else { f32::from_bits(b.u32()) };
    let run_opts_ptr: *const toprt_run_options = if opt_mode.is_multiple_of(4) { std::ptr::null() } else { &run_opts };
    let (inputs_ptr, num_inputs) = match b.u8() % 8 {
        6 => (std::ptr::null(), n),
        7 => (std::ptr::null(), b.u64() as usize),
        _ => (inputs.as_ptr(), n),
    };
    let mut result: *mut toprt_result = std::ptr::null_mut();
    let out: *mut *mut toprt_result = if b.u8() % 16 == 15 { std::ptr::null_mut() } else { &mut result };
    // SAFETY: every non-NULL, aligned pointer is valid for the length passed with it;
    // misaligned id pointers are never read (the call refuses them first).
    let st = unsafe { toprt_session_run(session, inputs_ptr, num_inputs, run_opts_ptr, out) };
    check_status("toprt_session_run", st);
    if st != TOPRT_OK {
        assert!(result.is_null(), "toprt_session_run wrote a result on error {st}");
    } else {
        assert!(!result.is_null());
        check_result(result, &inputs, max_length);
        // SAFETY: a live result handle, freed once; the second call must see it is stale.
        unsafe {
            assert_eq!(toprt_result_free(result), TOPRT_OK);
            assert_eq!(toprt_result_free(result), TOPRT_ERR_BAD_HANDLE);
        }
    }
    if !owned.is_null() {
        // SAFETY: a live session handle created above.
        assert_eq!(unsafe { toprt_session_free(owned) }, TOPRT_OK, "{}", last_error());
    }
    st == TOPRT_OK
}

/// `TOPRT_ERR_INVALID_ARGUMENT` territory for `options->threads`.
const MAX_THREADS_PLUS_ONE: u32 = 1025;

/// Reads every output of a successful run with the size-query, exact and short buffers,
/// and checks them against the inputs.
fn check_result(r: *mut toprt_result, inputs: &[toprt_input], max_length: usize) {
    let mut count = 0;
    // SAFETY (this whole function): `r` is a live result handle; every buffer pointer is
    // NULL with cap 0 or valid for `cap` elements; every out-pointer is writable.
    unsafe {
        assert_eq!(toprt_result_count(r, &mut count), TOPRT_OK);
        assert_eq!(count, inputs.len());
        for (i, input) in inputs.iter().enumerate() {
            let mut len = usize::MAX;
            assert_eq!(toprt_result_input_ids(r, i, std::ptr::null_mut(), 0, &mut len), TOPRT_OK);
            assert!(len >= 1 && len <= max_length, "sequence {i}: {len} tokens, max {max_length}");
            let mut ids = vec![0u32; len];
            let mut got = 0;
            assert_eq!(toprt_result_input_ids(r, i, ids.as_mut_ptr(), len, &mut got), TOPRT_OK);
            assert_eq!(got, len);
            let mut truncated = -1;
            assert_eq!(toprt_result_truncated(r, i, &mut truncated), TOPRT_OK);
            if input.kind == TOPRT_INPUT_IDS {
                let given = std::slice::from_raw_parts(input.input_ids, input.num_ids);
                assert_eq!(ids[..], given[..len], "sequence {i}: ids changed");
                assert_eq!(truncated == 1, input.num_ids > len);
            }
            let mut short = 0;
            if len > 1 {
                let st = toprt_result_input_ids(r, i, ids.as_mut_ptr(), len - 1, &mut short);
                assert_eq!((st, short), (TOPRT_ERR_BUFFER_TOO_SMALL, len));
            }
            let mut types = vec![0u32; len];
            assert_eq!(toprt_result_token_type_ids(r, i, types.as_mut_ptr(), len, &mut got), TOPRT_OK);
            let getters: [(
                &str,
                unsafe extern "C" fn(*const toprt_result, usize, *mut f32, usize, *mut usize) -> toprt_status,
            ); 3] = [
                ("logits", toprt_result_logits),
                ("embedding", toprt_result_embedding),
                ("hidden states", toprt_result_hidden_states),
            ];
            for (what, get) in getters {
                let mut n = 0;
                let st = check_status(what, get(r, i, std::ptr::null_mut(), 0, &mut n));
                if st == TOPRT_OK {
                    let mut v = vec![0f32; n];
                    assert_eq!(get(r, i, v.as_mut_ptr(), n, &mut got), TOPRT_OK);
                } else {
                    assert_eq!(st, TOPRT_ERR_UNAVAILABLE, "{what}");
                }
            }
            let mut locations = 0;
            assert_eq!(toprt_result_kept_locations(r, i, &mut locations), TOPRT_OK);
            for loc in 0..=locations {
                let (mut layer, mut n) = (0u32, 0usize);
                let st = toprt_result_kept(r, i, loc, &mut layer, std::ptr::null_mut(), 0, &mut n);
                if loc == locations {
                    assert_eq!(st, TOPRT_ERR_OUT_OF_RANGE);
                    continue;
                }
                assert_eq!(st, TOPRT_OK, "{}", last_error());
                let mut kept = vec![0u32; n];
                assert_eq!(toprt_result_kept(r, i, loc, &mut layer, kept.as_mut_ptr(), n, &mut got), TOPRT_OK);
                assert!(kept.windows(2).all(|w| w[0] < w[1]) && kept.iter().all(|&p| (p as usize) < len));
            }
        }
        let mut n = 0;
        assert_eq!(toprt_result_input_ids(r, inputs.len(), std::ptr::null_mut(), 0, &mut n), TOPRT_ERR_OUT_OF_RANGE);
    }
}

// ---- seeds -------------------------------------------------------------------------

/// The committed seed corpus: `(target, file name, bytes)`. Names starting with
/// `valid-` are inputs the reader must accept. `tests/tests/fuzz_regressions.rs` checks
/// the files under `fuzz/corpus/` against this list; run it with
/// `TOPRT_WRITE_FUZZ_SEEDS=1` to rewrite them.
pub fn seeds() -> Vec<(&'static str, String, Vec<u8>)> {
    let mut s: Vec<(&'static str, String, Vec<u8>)> = Vec::new();
    let fixture = |p: &str| std::fs::read(crate::fixture(p)).unwrap_or_else(|e| panic!("fixture {p}: {e}"));

    // toprt_file: every tiny model raw and as parts; broken headers.
    for m in TinyModel::ALL {
        let image = tiny_model(m);
        let (manifest, data) = split_toprt(&image);
        s.push(("toprt_file", format!("valid-{}", m.name()), [&[0x30][..], &image].concat()));
        s.push(("toprt_file", format!("valid-{}-parts", m.name()), [&[0x32][..], &manifest, &[0], &data].concat()));
    }
    let pooler = tiny_model(TinyModel::BertPooler);
    let header = toprt_format::Header::parse(&pooler).expect("tiny model header");
    s.push(("toprt_file", "edge-header-only".into(), [&[0x01][..], &header.to_bytes()].concat()));
    let huge = toprt_format::Header { manifest_len: u64::MAX, data_offset: u64::MAX, data_len: u64::MAX, ..header };
    s.push(("toprt_file", "edge-huge-lengths".into(), [&[0x01][..], &huge.to_bytes()].concat()));
    s.push(("toprt_file", "edge-empty-manifest".into(), vec![0x02, b'{', b'}', 0]));

    // torch_pickle and zs_pt: small real torch.save files, raw and as parts.
    for f in ["dtypes.pt", "f32_views.pt", "nested.pt", "protocol4.pt", "zs_cuda.pt", "legacy.pt"] {
        let raw = fixture(&format!("torch/{f}"));
        let stem = f.trim_end_matches(".pt");
        let valid = if f == "legacy.pt" { "edge" } else { "valid" };
        s.push(("torch_pickle", format!("{valid}-{stem}"), [&[0][..], &raw].concat()));
        if let Some(parts) = torch_parts_of(&raw) {
            s.push(("torch_pickle", format!("{valid}-{stem}-parts"), [&[1][..], &parts].concat()));
        }
    }
    let evil = [&b"\x80\x02cos\nsystem\nX\x02\x00\x00\x00idq\x00\x85R."[..]].concat();
    s.push(("torch_pickle", "edge-os-system-parts".into(), [&[1][..], &torch_parts(&evil, &[])].concat()));
    for (f, layers) in [("top-best/zs.pt", 4u8), ("torch/zs_cuda.pt", 12)] {
        let raw = fixture(f);
        let stem = f.replace('/', "-").replace(".pt", "");
        s.push(("zs_pt", format!("valid-{stem}"), [&[0, layers][..], &raw].concat()));
        let parts = torch_parts_of(&raw).expect("zs.pt is a zip");
        s.push(("zs_pt", format!("valid-{stem}-parts"), [&[1, layers][..], &parts].concat()));
    }

    // safetensors: one tensor of every dtype, raw and as parts; lying headers.
    let mut header = serde_json::Map::new();
    let mut data = Vec::new();
    for (name, dtype, shape, bytes) in [
        ("a.f32", "F32", vec![2, 2], [1.0f32, -2.0, 0.5, 8.0].iter().flat_map(|x| x.to_le_bytes()).collect()),
        ("b.f16", "F16", vec![3], vec![0x00, 0x3c, 0x00, 0xc0, 0x00, 0x7c]),
        ("c.bf16", "BF16", vec![1, 2], vec![0x80, 0x3f, 0x00, 0x40]),
        ("d.f64", "F64", vec![1], 1.5f64.to_le_bytes().to_vec()),
        ("e.i64", "I64", vec![2], [7i64, -1].iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>()),
        ("f.bool", "BOOL", vec![2], vec![1, 0]),
        ("g.empty", "F32", vec![0, 4], vec![]),
    ] {
        let b = data.len();
        data.extend_from_slice(&bytes);
        header
            .insert(name.into(), serde_json::json!({"dtype": dtype, "shape": shape, "data_offsets": [b, data.len()]}));
    }
    header.insert("__metadata__".into(), serde_json::json!({"format": "pt"}));
    let header = serde_json::to_vec(&header).expect("json");
    s.push(("safetensors", "valid-dtypes".into(), [&[0][..], &assemble_safetensors(&header, &data)].concat()));
    s.push(("safetensors", "valid-dtypes-parts".into(), [&[1][..], &header, &[0], &data].concat()));
    let lies: [(&str, &[u8]); 3] = [
        ("edge-past-end", br#"{"x":{"dtype":"F32","shape":[4],"data_offsets":[0,4294967296]}}"#),
        ("edge-shape-overflow", br#"{"x":{"dtype":"F32","shape":[4294967296,4294967296,16],"data_offsets":[0,0]}}"#),
        ("edge-reversed-offsets", br#"{"x":{"dtype":"U8","shape":[1],"data_offsets":[1,0]}}"#),
    ];
    for (name, h) in lies {
        s.push(("safetensors", name.into(), [&[1][..], h, &[0], &[0u8; 8]].concat()));
    }
    let mut huge = vec![0u8];
    huge.extend_from_slice(&u64::MAX.to_le_bytes());
    s.push(("safetensors", "edge-huge-header-length".into(), huge));

    // config_json: the fixtures' configs and a few minimal ones.
    for d in ["tiny-bert-st", "tiny-roberta-st", "ltp-tiny", "top-best"] {
        s.push(("config_json", format!("valid-{d}"), fixture(&format!("{d}/config.json"))));
    }
    let minimal = [
        (
            "valid-minimal-bert",
            r#"{"model_type":"bert","vocab_size":8,"hidden_size":4,"num_hidden_layers":1,"num_attention_heads":2,"intermediate_size":8}"#,
        ),
        (
            "edge-labels",
            r#"{"model_type":"roberta","vocab_size":8,"hidden_size":4,"num_hidden_layers":1,"num_attention_heads":2,"intermediate_size":8,"num_labels":3,"id2label":{"0":"a","2":"c"},"architectures":["RobertaForSequenceClassification"]}"#,
        ),
        ("edge-gpt2", r#"{"model_type":"gpt2"}"#),
    ];
    for (name, j) in minimal {
        s.push(("config_json", name.into(), j.as_bytes().to_vec()));
    }

    // cli_jsonl: every line form, blank lines, bad lines, invalid UTF-8.
    let jsonl: [(&str, &[u8]); 4] = [
        (
            "valid-lines",
            b"{\"text\": \"a great movie\"}\n\n{\"text\": \"is it good?\", \"text_pair\": \"it was not bad\"}\n{\"input_ids\": [2, 7, 3], \"token_type_ids\": [0, 0, 0]}\n{\"input_ids\": [2, 3]}\n",
        ),
        ("valid-unicode", "{\"text\": \"h\u{e9}llo w\u{f6}rld \u{1F600} \\u0000 !\"}\r\n".as_bytes()),
        ("edge-bad-lines", b"[1, 2]\n{\"text\": 3}\n{\"input_ids\": [-1]}\n{\"input_ids\": [4294967296]}\n{\"text\": \"a\", \"input_ids\": [2]}\n{}\n"),
        ("edge-invalid-utf8", b"{\"text\": \"\xff\xfe\"}\n"),
    ];
    for (name, j) in jsonl {
        s.push(("cli_jsonl", name.into(), j.to_vec()));
    }

    // capi_run: the decoder reads zeros as "valid and default", so short inputs are
    // ordinary calls.
    let capi: [(&str, &[u8]); 6] = [
        ("valid-ids", &[0, 1, 2, 0, 0, 0, 0, 5, 2, 7, 8, 9, 3, 1, 2, 1, 3, 1, 0, 2, 2]),
        ("valid-text", &[0, 1, 0, 5, b'h', b'e', b'l', b'l', b'o', 0, 0, 0, 0, 0, 0, 1, 7, 1, 0, 8]),
        (
            "valid-pair-own-session",
            &[1, 0, 1, 1, 64, 0, 1, 0, 0, 0, 0, 1, 1, 2, b'i', b't', 0, 3, b'x', b'!', b'?', 1, 0, 0, 0, 0],
        ),
        ("edge-null-session", &[2, 1, 2]),
        ("edge-stale-session", &[7, 1, 2, 0, 0, 0, 0, 3, 2, 5, 3]),
        ("edge-misaligned-ids", &[0, 1, 2, 0, 0, 0, 0, 2, 2, 3, 1, 7]),
    ];
    for (name, c) in capi {
        s.push(("capi_run", name.into(), c.to_vec()));
    }
    s
}

/// Runs one fuzz target's harness by name; returns whether the reader accepted the
/// input.
///
/// # Panics
/// On an unknown name, and wherever the harness finds a bug.
pub fn run_target(target: &str, data: &[u8]) -> bool {
    match target {
        "toprt_file" => toprt_file(data),
        "torch_pickle" => torch_pickle(data),
        "zs_pt" => zs_pt(data),
        "safetensors" => safetensors(data),
        "config_json" => config_json(data),
        "cli_jsonl" => cli_jsonl(data),
        "capi_run" => capi_run(data),
        other => panic!("unknown fuzz target {other}"),
    }
}

/// Every fuzz target, in the order `scripts/fuzz.sh` runs them.
pub const TARGETS: [&str; 7] =
    ["toprt_file", "torch_pickle", "zs_pt", "safetensors", "config_json", "cli_jsonl", "capi_run"];
