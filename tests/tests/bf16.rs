//! bf16 models (`toprt-convert --dtype bf16`): the encoder's linear weights are rounded
//! to bf16 and, where the CPU multiplies bf16 (AMX, AVX512_BF16), every GEMM input too;
//! elsewhere the weights are widened to f32 once per model. Checked against the Hugging
//! Face fp32 goldens with bf16 tolerances, against the f32 model, and for the same
//! invariants as f32 models (batch invariance bit for bit, pruning).

use serde_json::Value;
use toprt::{Input, Isa, Model, OpenOptions, Outputs, PruneControl, Session, SessionOptions};
use toprt_format::{Layout, Precision};
use toprt_tests::*;

/// Embedding cosine to the fp32 reference. bf16 keeps 8 significant bits: each weight
/// and each GEMM input is off by up to 2^-9 relative, which over 6 layers moves a
/// sentence embedding by ~1e-5 in cosine (measured ≤ 3e-5 on MiniLM); 5e-4 leaves room
/// for other texts and CPUs while still failing on any real bug (a wrong row, a lost
/// bias or a swapped pair moves it by 1e-2 or more).
const EMBED_COS_BF16: f64 = 0.9995;
/// Cosine of each token's final hidden state to the fp32 reference (the same reasoning
/// per row; rows are not normalised, so this is the scale-free check).
const ROW_COS_BF16: f64 = 0.999;

fn convert_bf16(dir: &std::path::Path) -> Vec<u8> {
    let opts = toprt_convert::ConvertOptions { dtype: toprt_format::Precision::Bf16, ..Default::default() };
    toprt_convert::convert_to_bytes(dir, &opts).unwrap_or_else(|e| panic!("converting {}: {e}", dir.display())).0
}

fn open(bytes: &[u8]) -> Model {
    Model::from_bytes(bytes, &OpenOptions::default()).unwrap()
}

const ALL: Outputs = Outputs { logits: true, embedding: true, hidden_states: true };

fn cases(name: &str) -> Vec<(Vec<u32>, Vec<u32>)> {
    let path = root().join("tests/golden").join(name).join("cases.json");
    let v: Vec<Value> = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let ids = |x: &Value| x.as_array().unwrap().iter().map(|i| i.as_u64().unwrap() as u32).collect::<Vec<u32>>();
    v.iter().map(|c| (ids(&c["input_ids"]), ids(&c["token_type_ids"]))).collect()
}

/// Every golden case, alone: the embedding (or each hidden row) against HF fp32 within
/// the bf16 tolerances; then all of them in one batch, bit-identical to alone.
fn check_against_hf(model: &Model, name: &str, isa: Option<Isa>) {
    let gold = golden_tensors(&root().join("tests/golden").join(name).join("outputs.safetensors"));
    let cs = cases(name);
    let opts = SessionOptions { isa, threads: 2, max_tokens: 8192, ..Default::default() };
    let mut s = Session::new(model, &opts).unwrap();
    let (mut worst_emb, mut worst_row) = (None::<f64>, 1.0f64);
    let mut alone = Vec::new();
    for (i, (ids, types)) in cs.iter().enumerate() {
        let out = s.run(&[Input::Ids { input_ids: ids, token_type_ids: Some(types) }], ALL).unwrap().remove(0);
        let d = model.hidden_size();
        let (got, want) = (out.last_hidden_state.as_ref().unwrap(), &gold[&format!("case{i}.last_hidden_state")]);
        for (r, (g, w)) in got.chunks(d).zip(want.chunks(d)).enumerate() {
            let c = cosine(g, w);
            assert!(c >= ROW_COS_BF16, "{name} ({}) case {i} token {r}: hidden-state cosine {c}", s.linear_kernel());
            worst_row = worst_row.min(c);
        }
        if let Some(e) = gold.get(&format!("case{i}.embedding")) {
            let c = cosine(out.embedding.as_ref().unwrap(), e);
            assert!(c >= EMBED_COS_BF16, "{name} ({}) case {i}: embedding cosine {c}", s.linear_kernel());
            worst_emb = Some(worst_emb.map_or(c, |w| w.min(c)));
        }
        alone.push(out);
    }
    let emb = worst_emb.map_or("no embedding head".into(), |w| format!("worst embedding cosine {w:.7}"));
    eprintln!("{name} on {}: {emb}, worst hidden-row cosine {worst_row:.7}", s.linear_kernel());
    let inputs: Vec<Input> =
        cs.iter().map(|(ids, types)| Input::Ids { input_ids: ids, token_type_ids: Some(types) }).collect();
    for (i, o) in s.run(&inputs, ALL).unwrap().iter().enumerate() {
        assert_eq!(o, &alone[i], "{name} ({}): case {i} batched differs from alone", s.linear_kernel());
    }
}

/// The tier TOPRT_ISA picks (CI runs every tier): AMX or AVX512_BF16 where the CPU has
/// them, the widened f32 weights elsewhere.
#[test]
fn minilm_bf16_matches_hf_within_bf16_tolerance() {
    let model = open(&convert_bf16(&minilm_dir()));
    assert_eq!(model.precision(), Precision::Bf16);
    check_against_hf(&model, "minilm", None);
}

#[test]
fn tiny_bert_and_roberta_bf16_match_hf() {
    check_against_hf(&open(&convert_bf16(&fixture("tiny-bert-st"))), "tiny-bert", None);
    check_against_hf(&open(&convert_bf16(&fixture("tiny-roberta-st"))), "tiny-roberta", None);
    check_against_hf(&open(&convert_bf16(&fixture("tiny-distilbert-st"))), "tiny-distilbert", None);
    check_against_hf(&open(&convert_bf16(&fixture("tiny-xlmr-st"))), "tiny-xlmr", None);
    check_against_hf(&open(&convert_bf16(&fixture("tiny-electra-st"))), "tiny-electra", None);
    check_against_hf(&open(&convert_bf16(&fixture("tiny-mpnet-st"))), "tiny-mpnet", None);
    check_against_hf(&open(&convert_bf16(&fixture("tiny-modernbert-st"))), "tiny-modernbert", None);
    check_against_hf(&open(&convert_bf16(&fixture("tiny-modernbert-bias-st"))), "tiny-modernbert-bias", None);
    check_against_hf(&open(&convert_bf16(&fixture("tiny-deberta-st"))), "tiny-deberta", None);
    check_against_hf(&open(&convert_bf16(&fixture("tiny-deberta-v2-st"))), "tiny-deberta-v2", None);
    check_against_hf(&open(&convert_bf16(&fixture("tiny-electra-disc-st"))), "tiny-electra-disc", None);
}

/// On a CPU with bf16 GEMMs, the native path (inputs rounded too) and the widened path
/// (forced by the AVX2 tier) agree within the bf16 tolerance, and both with HF.
#[test]
fn native_and_widened_bf16_agree() {
    let model = open(&convert_bf16(&minilm_dir()));
    let native = Session::new(&model, &SessionOptions { isa: Some(Isa::best()), ..Default::default() }).unwrap();
    if !native.linear_kernel().contains("bf16_gemm") {
        println!("skipped: this CPU has no bf16 GEMM ({}); the widened path is the only one", native.linear_kernel());
        return;
    }
    let Ok(mut widened) = Session::new(&model, &SessionOptions { isa: Some(Isa::Avx2), ..Default::default() }) else {
        println!("skipped: no AVX2 tier to force the widened path");
        return;
    };
    assert!(widened.linear_kernel().ends_with("(bf16 widened)"), "{}", widened.linear_kernel());
    let mut native = native;
    for (ids, types) in cases("minilm") {
        let input = [Input::Ids { input_ids: &ids, token_type_ids: Some(&types) }];
        let (a, b) = (native.run(&input, ALL).unwrap().remove(0), widened.run(&input, ALL).unwrap().remove(0));
        let c = cosine(a.embedding.as_ref().unwrap(), b.embedding.as_ref().unwrap());
        assert!(c >= EMBED_COS_BF16, "native vs widened embedding cosine {c} ({} tokens)", ids.len());
        assert_ne!(a.embedding, b.embedding, "the native path rounds the GEMM inputs, so the bits differ");
    }
    check_against_hf(&model, "minilm", Some(Isa::Avx2));
}

/// The file: only the encoder's linear weights are bf16 panel32x2; the rest is f32;
/// the file is about 3/4 of the f32 one (the embeddings stay f32).
#[test]
fn bf16_file_layout() {
    let (f32_bytes, bf16_bytes) = (convert_bytes(&minilm_dir()), convert_bf16(&minilm_dir()));
    let m = open(&bf16_bytes);
    let mut bf16 = 0;
    for t in &m.manifest().tensors {
        let linear = t.name.starts_with("encoder.layer.")
            && ["qkv.weight", "attention.output.dense.weight", "intermediate.dense.weight", ".output.dense.weight"]
                .iter()
                .any(|s| t.name.ends_with(s))
            && !t.name.ends_with("LayerNorm.weight");
        if linear {
            assert_eq!((t.dtype, t.layout), (Precision::Bf16, Layout::Panel32x2), "{}", t.name);
            bf16 += 1;
        } else {
            assert_eq!(t.dtype, Precision::F32, "{}", t.name);
        }
    }
    assert_eq!(bf16, 4 * m.manifest().model.num_layers);
    let ratio = bf16_bytes.len() as f64 / f32_bytes.len() as f64;
    assert!((0.6..0.85).contains(&ratio), "bf16 file is {ratio:.2} of the f32 file");
    // Converting an existing f32 image gives the same file as converting with --dtype bf16.
    assert_eq!(toprt_convert::writer::with_bf16_weights(&f32_bytes).unwrap(), bf16_bytes);
}

/// A file whose encoder mixes precisions, or with a bf16 tensor in another layout, is
/// refused with a message naming the tensor.
#[test]
fn mixed_precision_and_bad_layouts_are_refused() {
    let f32_bytes = convert_bytes(&fixture("tiny-bert-st"));
    let bf16_bytes = toprt_convert::writer::with_bf16_weights(&f32_bytes).unwrap();
    // Swap one layer's FFN weight back to f32: rebuild from the tensors of both files.
    let (hf, mf) = header_and_manifest(&f32_bytes, true).unwrap();
    let (hb, mut mb) = header_and_manifest(&bf16_bytes, true).unwrap();
    let name = "encoder.layer.1.intermediate.dense.weight";
    let tensors: Vec<toprt_convert::bake::OutTensor> = mb
        .tensors
        .iter()
        .map(|e| {
            let (bytes, e) = if e.name == name {
                let e = mf.tensors.iter().find(|t| t.name == name).unwrap();
                (&f32_bytes[hf.data_offset as usize + e.offset as usize..][..e.length as usize], e)
            } else {
                (&bf16_bytes[hb.data_offset as usize + e.offset as usize..][..e.length as usize], e)
            };
            let words: Vec<u32> = bytes.chunks_exact(4).map(|c| u32::from_le_bytes(c.try_into().unwrap())).collect();
            let data = match e.dtype {
                Precision::F32 => toprt_convert::bake::Blob::F32(words.iter().map(|&w| f32::from_bits(w)).collect()),
                Precision::Bf16 => toprt_convert::bake::Blob::Bf16Pairs(words),
                Precision::Int8 => toprt_convert::bake::Blob::Int8Quads(words),
            };
            toprt_convert::bake::OutTensor { name: e.name.clone(), layout: e.layout, shape: e.shape.clone(), data }
        })
        .collect();
    mb.tensors.clear();
    let mixed = toprt_convert::writer::to_bytes(mb, &tensors).unwrap();
    let err = Model::from_bytes(&mixed, &OpenOptions::default()).unwrap_err().to_string();
    assert!(err.contains(name) && err.contains("one precision"), "{err}");

    // bf16 in the row-major layout: refused at validation, naming the tensor.
    let (_, mut m) = header_and_manifest(&f32_bytes, false).unwrap();
    m.tensors[0].dtype = Precision::Bf16;
    let json = serde_json::to_string(&m).unwrap();
    let e = m.tensors[0].expected_len(&toprt_convert::writer::packed_bytes).unwrap_err().to_string();
    assert!(
        e.contains(&m.tensors[0].name) && e.contains("Bf16") && e.contains("RowMajor"),
        "{e} ({} bytes)",
        json.len()
    );
}

/// Pruning on a bf16 ToP model: the rank bins keep the same number of tokens as the f32
/// model at every location (the count depends on ranks only), and mostly the same ones.
/// The tiny random model has near-ties among its scores, so bf16 rounding swaps a few
/// (61 of 68 agree); unrelated scores would agree on about half.
#[test]
fn bf16_top_model_prunes_like_f32() {
    let dir = fixture("top-best");
    let f32_model = {
        let opts = toprt_convert::ConvertOptions { tokenizer_dir: Some(fixture("tiny-bert-st")), ..Default::default() };
        open(&toprt_convert::convert_to_bytes(&dir, &opts).unwrap().0)
    };
    let bf16_model = {
        let opts = toprt_convert::ConvertOptions {
            tokenizer_dir: Some(fixture("tiny-bert-st")),
            dtype: toprt_format::Precision::Bf16,
            ..Default::default()
        };
        open(&toprt_convert::convert_to_bytes(&dir, &opts).unwrap().0)
    };
    let texts =
        ["a great movie with a dull ending", "the plot is thin, but the actors make it work and the ending lands"];
    let want = Outputs { logits: true, ..Default::default() };
    let (mut same, mut total) = (0usize, 0usize);
    for t in texts {
        let mut a = Session::new(&f32_model, &SessionOptions::default()).unwrap();
        let mut b = Session::new(&bf16_model, &SessionOptions::default()).unwrap();
        let ra = a.run_with(&[Input::Text(t)], want, PruneControl::default()).unwrap().remove(0);
        let rb = b.run_with(&[Input::Text(t)], want, PruneControl::default()).unwrap().remove(0);
        assert!(!ra.kept.is_empty() && ra.kept.len() == rb.kept.len());
        for ((la, ka), (lb, kb)) in ra.kept.iter().zip(&rb.kept) {
            assert_eq!((la, ka.len()), (lb, kb.len()), "'{t}': kept counts differ at layer {la}");
            same += ka.iter().filter(|x| kb.contains(x)).count();
            total += ka.len();
        }
    }
    eprintln!("bf16 vs f32 ToP kept sets: {same} of {total} kept tokens the same");
    assert!(same as f64 >= 0.8 * total as f64, "only {same} of {total} kept tokens agree");
}
