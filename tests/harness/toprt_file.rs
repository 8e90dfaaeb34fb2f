//! `.toprt` images built through toprt-format, and the `toprt_file` target.

use toprt::{Input, Isa, Model, OpenOptions, Outputs, PruneControl, Session, SessionOptions};
use toprt_format::{Pooling, Task};

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
    let Ok(model) = Model::from_bytes(&image, &OpenOptions { verify_checksums: verify, ..OpenOptions::default() })
    else {
        return false;
    };
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
