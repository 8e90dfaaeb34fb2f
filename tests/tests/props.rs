//! Property tests of every reader of untrusted input: the `.toprt` loader, the
//! safetensors, torch and zs.pt readers, the `config.json` mapping, the CLI's JSONL
//! reader and the C API's run call. Each property either checks an exact outcome (a
//! changed byte is caught, a valid record round-trips, a bad id gives
//! `TOPRT_ERR_INPUT`) or runs the fuzz harness of `tests/harness.rs`, which panics on
//! misbehaviour. Case counts are kept small so the whole file runs in seconds; the fuzz
//! targets in `fuzz/` search the same spaces for much longer.

use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;
use serde_json::{json, Value};
use toprt::capi::*;
use toprt::cli_input::{parse_line, Line, LineReader};
use toprt::{Error, Model, OpenOptions};
use toprt_convert::checkpoint::TensorData;
use toprt_tests::harness::{self, TinyModel};
use toprt_tests::header_and_manifest;

/// `cases` per property unless `PROPTEST_CASES` asks for more (for long local runs);
/// failures are kept in `tests/proptest-regressions/props.txt` and replayed first.
fn config(cases: u32) -> ProptestConfig {
    let env = std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok());
    ProptestConfig {
        cases: env.unwrap_or(cases),
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/proptest-regressions/props.txt"
        )))),
        ..ProptestConfig::default()
    }
}

fn tiny(i: usize) -> (TinyModel, Vec<u8>) {
    let m = TinyModel::ALL[i % TinyModel::ALL.len()];
    (m, harness::tiny_model(m))
}

/// Integers a lying file would use: around zero, around powers of two, near the type's
/// maximum, and anything.
fn edgy_u64() -> impl Strategy<Value = u64> {
    prop_oneof![
        0u64..70,
        (0u32..64).prop_map(|s| 1u64 << s),
        (0u32..64, -2i64..=2).prop_map(|(s, d)| (1u64 << s).wrapping_add(d as u64)),
        (0u64..3).prop_map(|d| u64::MAX - d),
        any::<u64>(),
    ]
}

/// Byte ranges of a valid image that no check covers: the padding after the manifest
/// and between tensor blobs.
fn padding(image: &[u8]) -> Vec<std::ops::Range<usize>> {
    let (h, m) = header_and_manifest(image, true).unwrap();
    let mut used: Vec<(usize, usize)> = m
        .tensors
        .iter()
        .map(|t| ((h.data_offset + t.offset) as usize, (h.data_offset + t.offset + t.length) as usize))
        .collect();
    used.push((0, (h.manifest_offset + h.manifest_len) as usize));
    used.sort();
    let mut gaps = Vec::new();
    let mut at = 0;
    for (a, b) in used {
        if a > at {
            gaps.push(at..a);
        }
        at = at.max(b);
    }
    if at < image.len() {
        gaps.push(at..image.len());
    }
    gaps
}

// ---- .toprt loader -----------------------------------------------------------------

proptest! {
    #![proptest_config(config(96))]

    /// One changed byte is refused when it lies in the header, the manifest or a tensor
    /// blob (checksums on), and accepted in padding; nothing panics either way.
    #[test]
    fn toprt_changed_byte_is_caught_unless_padding(which in 0usize..4, pos in any::<prop::sample::Index>(), x in 1u8..=255) {
        let (_, image) = tiny(which);
        let gaps = padding(&image);
        let p = pos.index(image.len());
        let mut c = image.clone();
        c[p] ^= x;
        let opened = Model::from_bytes(&c, &OpenOptions::default());
        let in_padding = gaps.iter().any(|g| g.contains(&p));
        prop_assert_eq!(opened.is_ok(), in_padding, "byte {} changed; padding {:?}", p, gaps);
        harness::toprt_file(&[&[0x70][..], &c].concat());
    }

    /// Random flips and a cut never panic, with or without checksum verification; a cut
    /// file is always refused.
    #[test]
    fn toprt_flips_and_truncations_never_panic(
        which in 0usize..4,
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..8),
        cut in prop::option::of(any::<prop::sample::Index>()),
        flags in any::<u8>(),
    ) {
        let (_, mut image) = tiny(which);
        for (i, v) in &flips {
            let p = i.index(image.len());
            image[p] = *v;
        }
        if let Some(c) = cut {
            image.truncate(c.index(image.len()));
            let opened = Model::from_bytes(&image, &OpenOptions { verify_checksums: false, ..OpenOptions::default() });
            prop_assert!(opened.is_err(), "a file cut to {} bytes opened", image.len());
        }
        // Modes 0 and 1 (raw, raw with the header fixed), checksums on or off.
        harness::toprt_file(&[&[flags & !2][..], &image].concat());
    }

    /// Header fields overwritten with lies (checksums made consistent) are refused
    /// unless the value is the true one.
    #[test]
    fn toprt_header_lies_are_refused(which in 0usize..4, field in 0usize..4, v in edgy_u64()) {
        let (_, image) = tiny(which);
        let at = [16, 24, 40, 48][field];
        let mut c = image.clone();
        let old = u64::from_le_bytes(c[at..at + 8].try_into().unwrap());
        c[at..at + 8].copy_from_slice(&v.to_le_bytes());
        let crc = crc32fast::hash(&c[..60]);
        c[60..64].copy_from_slice(&crc.to_le_bytes());
        let r = Model::from_bytes(&c, &OpenOptions::default());
        prop_assert_eq!(r.is_ok(), v == old, "header field at {} = {} (was {})", at, v, old);
        if let Err(e) = r {
            prop_assert!(matches!(e, Error::Format(_) | Error::Checksum(_)), "{e}");
        }
    }

    /// Manifest fields overwritten with lies (the file reassembled with every checksum
    /// right): the loader refuses or the model runs valid ids, never a panic.
    #[test]
    fn toprt_manifest_lies_never_panic(which in 0usize..4, field in 0usize..16, k in 0usize..64, v in edgy_u64()) {
        let (_, image) = tiny(which);
        let (manifest, data) = harness::split_toprt(&image);
        let mut m: Value = serde_json::from_slice(&manifest).unwrap();
        let t = k % m["tensors"].as_array().unwrap().len();
        let path = match field {
            0 => "/model/vocab_size".to_string(),
            1 => "/model/hidden_size".into(),
            2 => "/model/num_layers".into(),
            3 => "/model/num_heads".into(),
            4 => "/model/intermediate_size".into(),
            5 => "/model/max_position_embeddings".into(),
            6 => "/model/type_vocab_size".into(),
            7 => "/model/pad_token_id".into(),
            8 => "/model/position_offset".into(),
            9 => "/head/num_labels".into(),
            10 => format!("/tensors/{t}/offset"),
            11 => format!("/tensors/{t}/length"),
            12 => format!("/tensors/{t}/shape/{}", k % 2),
            13 => "/tokenizer/max_length".into(),
            14 => format!("/keep_rules/{}/layer", k % 2),
            _ => format!("/keep_rules/{}/rule/token_z", k % 2),
        };
        // Fields this model does not have (no tokenizer, fewer rules) are skipped.
        if let Some(target) = m.pointer_mut(&path) {
            *target = if field == 15 { json!([v as f32, 0.0]) } else { json!(v) };
            let parts = [&[0x72][..], &serde_json::to_vec(&m).unwrap(), &[0], &data].concat();
            harness::toprt_file(&parts);
        }
    }
}

// ---- safetensors -------------------------------------------------------------------

fn dtype_name() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec!["F32", "F16", "BF16", "F64", "I64", "I32", "I16", "I8", "U8", "BOOL"])
            .prop_map(String::from),
        "[A-Z0-9]{0,5}",
    ]
}

proptest! {
    #![proptest_config(config(256))]

    /// Random headers with random dtypes, shapes and offsets never panic, and what is
    /// accepted has the byte count its shape says (the harness checks).
    #[test]
    fn safetensors_random_headers_never_panic(
        entries in prop::collection::vec(
            ("[a-z.]{0,6}", dtype_name(), prop::collection::vec(edgy_u64(), 0..4), edgy_u64(), edgy_u64()),
            0..4,
        ),
        data_len in 0usize..80,
    ) {
        let mut h = serde_json::Map::new();
        for (name, dtype, shape, b, e) in &entries {
            h.insert(name.clone(), json!({"dtype": dtype, "shape": shape, "data_offsets": [b, e]}));
        }
        let header = serde_json::to_vec(&h).unwrap();
        let data: Vec<u8> = (0..data_len).map(|i| i as u8).collect();
        let file = harness::assemble_safetensors(&header, &data);
        let r = toprt_convert::checkpoint::safetensors::parse(&file);
        for (name, v) in &h {
            let (b, e) = (v["data_offsets"][0].as_u64().unwrap(), v["data_offsets"][1].as_u64().unwrap());
            if b > e || e > data_len as u64 {
                prop_assert!(r.is_err(), "tensor '{}' with offsets {}..{} was accepted", name, b, e);
            }
        }
        harness::safetensors(&[&[0][..], &file].concat());
    }

    /// Valid files round-trip: names, shapes and values (f16/bf16 exactly, f64 rounded).
    #[test]
    fn safetensors_valid_files_round_trip(
        tensors in prop::collection::btree_map(
            "[a-z]{1,4}(\\.[a-z0-9]{1,3}){0,2}",
            (0usize..4, prop::collection::vec(1usize..4, 0..3), any::<u64>()),
            0..5,
        ),
    ) {
        let mut h = serde_json::Map::new();
        let mut data = Vec::new();
        let mut expect = Vec::new();
        for (name, (kind, shape, seed)) in &tensors {
            let n: usize = shape.iter().product();
            let mut rng = toprt_convert::synthetic::Rng::new(*seed);
            let vals: Vec<f32> = (0..n).map(|_| rng.normal()).collect();
            let b = data.len();
            let (dtype, want): (&str, Option<Vec<f32>>) = match kind {
                0 => {
                    data.extend(vals.iter().flat_map(|x| x.to_le_bytes()));
                    ("F32", Some(vals.clone()))
                }
                1 => {
                    let hs: Vec<half::f16> = vals.iter().map(|&x| half::f16::from_f32(x)).collect();
                    data.extend(hs.iter().flat_map(|x| x.to_le_bytes()));
                    ("F16", Some(hs.iter().map(|x| x.to_f32()).collect()))
                }
                2 => {
                    data.extend(vals.iter().flat_map(|&x| (x as f64).to_le_bytes()));
                    ("F64", Some(vals.clone()))
                }
                _ => {
                    data.extend(vals.iter().flat_map(|&x| (x as i64).to_le_bytes()));
                    ("I64", None)
                }
            };
            h.insert(name.clone(), json!({"dtype": dtype, "shape": shape, "data_offsets": [b, data.len()]}));
            expect.push((name.clone(), shape.clone(), want));
        }
        let file = harness::assemble_safetensors(&serde_json::to_vec(&h).unwrap(), &data);
        let got = toprt_convert::checkpoint::safetensors::parse(&file).unwrap();
        prop_assert_eq!(got.len(), expect.len());
        for (name, shape, want) in expect {
            let t = got.iter().find(|t| t.name == name).unwrap();
            prop_assert_eq!(&t.shape, &shape);
            match (&t.data, want) {
                (TensorData::F32(v), Some(w)) => prop_assert_eq!(v, &w),
                (TensorData::Other(d), None) => prop_assert_eq!(d.as_str(), "I64"),
                (d, w) => prop_assert!(false, "tensor {}: {:?} vs {:?}", name, d, w),
            }
        }
    }
}

// ---- torch pickle / zip and zs.pt --------------------------------------------------

fn torch_fixture(i: usize) -> Vec<u8> {
    let f = ["torch/dtypes.pt", "torch/f32_views.pt", "torch/nested.pt", "torch/protocol4.pt", "top-best/zs.pt"];
    std::fs::read(toprt_tests::fixture(f[i % f.len()])).unwrap()
}

proptest! {
    #![proptest_config(config(128))]

    /// Flips, cuts and inserted bytes in a real archive never panic.
    #[test]
    fn torch_archive_mutations_never_panic(
        which in 0usize..5,
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..6),
        insert in prop::option::of((any::<prop::sample::Index>(), prop::collection::vec(any::<u8>(), 1..8))),
        cut in prop::option::of(any::<prop::sample::Index>()),
    ) {
        let mut b = torch_fixture(which);
        for (i, v) in &flips {
            let p = i.index(b.len());
            b[p] = *v;
        }
        if let Some((at, bytes)) = insert {
            let p = at.index(b.len());
            b.splice(p..p, bytes);
        }
        if let Some(c) = cut {
            b.truncate(c.index(b.len()));
        }
        harness::torch_pickle(&[&[0][..], &b].concat());
    }

    /// Changed pickle opcodes and storage bytes inside a well-formed archive (so the
    /// ZIP CRCs are right and the unpickler sees every mutation) never panic; what is
    /// read has consistent sizes; with `num_layers` random, zs.pt gives rules the engine
    /// accepts or an error.
    #[test]
    fn torch_pickle_mutations_never_panic(
        which in 0usize..5,
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        layers in 0u8..16,
    ) {
        let raw = torch_fixture(which);
        let mut parts = harness::torch_parts_of(&raw).unwrap();
        for (i, v) in &flips {
            // Keep the 2-byte pickle length; mutate the pickle and the entries.
            let p = 2 + i.index(parts.len() - 2);
            parts[p] = *v;
        }
        harness::torch_pickle(&[&[1][..], &parts].concat());
        harness::zs_pt(&[&[1, layers][..], &parts].concat());
    }
}

/// The unmodified zs.pt gives one rule per ToP location, at the last layers.
#[test]
fn zs_pt_reads_the_top_fixture() {
    let raw = std::fs::read(toprt_tests::fixture("top-best/zs.pt")).unwrap();
    let rules = toprt_convert::schedule::from_zs_bytes(&raw, 4).unwrap();
    assert!(!rules.is_empty());
    assert_eq!(rules.last().unwrap().layer, 3);
    assert!(rules.windows(2).all(|w| w[0].layer + 1 == w[1].layer));
    let e = toprt_convert::schedule::from_zs_bytes(&raw, rules.len()).unwrap_err();
    assert!(e.contains("layer 0 can never prune"), "{e}");
}

// ---- config.json -------------------------------------------------------------------

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        edgy_u64().prop_map(|v| json!(v)),
        any::<i64>().prop_map(|v| json!(v)),
        any::<f64>().prop_map(|v| json!(v)),
        prop::sample::select(vec!["bert", "roberta", "ibert", "ltp", "gelu", "absolute", "relu", "x"])
            .prop_map(|s| json!(s)),
        ".{0,8}".prop_map(Value::String),
    ];
    leaf.prop_recursive(2, 8, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[0-9a-z_]{1,6}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

const CONFIG_KEYS: &[&str] = &[
    "model_type",
    "vocab_size",
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "intermediate_size",
    "max_position_embeddings",
    "type_vocab_size",
    "layer_norm_eps",
    "hidden_act",
    "pad_token_id",
    "position_embedding_type",
    "architectures",
    "id2label",
    "num_labels",
];

proptest! {
    #![proptest_config(config(256))]

    /// Random objects over the keys the mapping reads (and others) never panic; what is
    /// accepted is a config the engine accepts, with heads that fit it (the harness
    /// checks).
    #[test]
    fn config_random_objects_never_panic(
        base in 0usize..3,
        fields in prop::collection::vec((prop::sample::select(CONFIG_KEYS.to_vec()), json_value()), 0..8),
    ) {
        let mut v = match base {
            0 => json!({}),
            1 => json!({"model_type": "bert", "vocab_size": 8, "hidden_size": 4, "num_hidden_layers": 1,
                        "num_attention_heads": 2, "intermediate_size": 8}),
            _ => json!({"model_type": "roberta", "vocab_size": 8, "hidden_size": 4, "num_hidden_layers": 1,
                        "num_attention_heads": 2, "intermediate_size": 8, "architectures": ["RobertaForSequenceClassification"]}),
        };
        for (k, x) in fields {
            v[k] = x;
        }
        harness::config_json(&serde_json::to_vec(&v).unwrap());
    }

    /// Valid configs map field for field.
    #[test]
    fn config_valid_fields_map_exactly(
        roberta in any::<bool>(),
        heads in 1usize..8, head_dim in 1usize..8, layers in 1usize..24, vocab in 1usize..100_000,
        ff in 1usize..4096, pos in 20usize..1024, types in 1usize..4, pad in 0u32..8,
    ) {
        let v = json!({"model_type": if roberta { "roberta" } else { "bert" }, "vocab_size": vocab,
            "hidden_size": heads * head_dim, "num_hidden_layers": layers, "num_attention_heads": heads,
            "intermediate_size": ff, "max_position_embeddings": pos, "type_vocab_size": types, "pad_token_id": pad});
        let c = toprt_convert::config::parse_config(v).unwrap().model;
        prop_assert_eq!(
            (c.vocab_size, c.hidden_size, c.num_layers, c.num_heads, c.intermediate_size),
            (vocab, heads * head_dim, layers, heads, ff)
        );
        prop_assert_eq!((c.max_position_embeddings, c.type_vocab_size, c.pad_token_id), (pos, types, pad));
        prop_assert_eq!(c.position_offset, if roberta { pad as usize + 1 } else { 0 });
    }
}

// ---- the CLI's JSONL reader --------------------------------------------------------

fn line_strategy() -> impl Strategy<Value = Line> {
    prop_oneof![
        (".{0,24}", prop::option::of(".{0,24}")).prop_map(|(t, p)| Line::Text(t, p)),
        prop::collection::vec(any::<u32>(), 0..12).prop_flat_map(|ids| {
            let n = ids.len();
            (Just(ids), prop::option::of(prop::collection::vec(any::<u32>(), n..=n))).prop_map(|(i, t)| Line::Ids(i, t))
        }),
    ]
}

proptest! {
    #![proptest_config(config(256))]

    /// Random lines and random bytes never panic; every error names its line.
    #[test]
    fn jsonl_random_lines_never_panic(
        lines in prop::collection::vec(
            prop_oneof![
                ".{0,40}".prop_map(String::into_bytes),
                prop::collection::vec(any::<u8>(), 0..40),
                "\\{\"(text|input_ids|token_type_ids|text_pair)\": ?(\\[[0-9, -]{0,12}\\]|\"[a-z]{0,5}\"|null|[0-9e.-]{1,6})\\}"
                    .prop_map(String::into_bytes),
            ],
            0..6,
        ),
    ) {
        harness::cli_jsonl(&lines.join(&b'\n'));
    }

    /// Valid records round-trip, in order, with their line numbers, blank lines skipped.
    #[test]
    fn jsonl_valid_records_round_trip(records in prop::collection::vec((line_strategy(), 0usize..3), 0..8)) {
        let mut text = String::new();
        let mut want = Vec::new();
        let mut n = 0;
        for (line, blanks) in &records {
            for _ in 0..*blanks {
                text.push_str("  \n");
                n += 1;
            }
            text.push_str(&harness::line_json(line).to_string());
            text.push('\n');
            n += 1;
            want.push((n, line.clone()));
        }
        let got: Vec<(usize, Line)> =
            LineReader::new(text.as_bytes(), "in.jsonl").collect::<Result<_, _>>().unwrap();
        prop_assert_eq!(got, want);
        for (line, _) in &records {
            let s = harness::line_json(line).to_string();
            prop_assert_eq!(&parse_line(&s, 1).unwrap(), line);
        }
    }
}

// ---- the C API's run call ----------------------------------------------------------

proptest! {
    #![proptest_config(config(256))]

    /// Random ids (in and out of the vocabulary), lengths and type ids through
    /// `toprt_session_run`: OK exactly when the input is valid, otherwise
    /// `TOPRT_ERR_INPUT` with a message; never a crash.
    #[test]
    fn capi_random_ids_give_status_codes(
        seqs in prop::collection::vec(
            prop::collection::vec((prop_oneof![4 => 0u32..32, 1 => 32u32..40, 1 => any::<u32>()], 0u32..3), 0..24),
            1..4,
        ),
        with_types in any::<bool>(),
    ) {
        let (_, session) = harness::capi_fixture();
        let session: *mut toprt_session = std::ptr::without_provenance_mut(session);
        let ids: Vec<Vec<u32>> = seqs.iter().map(|s| s.iter().map(|p| p.0).collect()).collect();
        let types: Vec<Vec<u32>> = seqs.iter().map(|s| s.iter().map(|p| p.1).collect()).collect();
        let inputs: Vec<toprt_input> = ids
            .iter()
            .zip(&types)
            .map(|(i, t)| toprt_input {
                kind: TOPRT_INPUT_IDS,
                text: std::ptr::null(),
                text_len: 0,
                text_pair: std::ptr::null(),
                text_pair_len: 0,
                input_ids: i.as_ptr(),
                token_type_ids: if with_types { t.as_ptr() } else { std::ptr::null() },
                num_ids: i.len(),
            })
            .collect();
        let vocab = harness::TINY_VOCAB.len() as u32;
        // The session truncates to 16 tokens before it checks ids.
        let valid = seqs.iter().all(|s| {
            !s.is_empty() && s.iter().take(16).all(|&(id, ty)| id < vocab && (!with_types || ty < 2))
        });
        let mut result = std::ptr::null_mut();
        // SAFETY: every pointer is valid for the length passed with it.
        let st = unsafe { toprt_session_run(session, inputs.as_ptr(), inputs.len(), std::ptr::null(), &mut result) };
        if valid {
            prop_assert_eq!(st, TOPRT_OK, "{}", harness::last_error());
            let mut n = 0;
            // SAFETY: a live result handle and a writable count; freed once.
            unsafe {
                prop_assert_eq!(toprt_result_count(result, &mut n), TOPRT_OK);
                prop_assert_eq!(toprt_result_free(result), TOPRT_OK);
            }
            prop_assert_eq!(n, seqs.len());
        } else {
            prop_assert_eq!(st, TOPRT_ERR_INPUT, "{}", harness::last_error());
            prop_assert!(result.is_null());
            prop_assert!(!harness::last_error().is_empty());
        }
    }

    /// Random bytes through the C API harness: fuzzed options, texts, NULL, misaligned
    /// and stale arguments; the harness checks status codes and outputs.
    #[test]
    fn capi_random_calls_never_crash(data in prop::collection::vec(any::<u8>(), 0..160)) {
        harness::capi_run(&data);
    }
}

/// The C API harness tells a refused call from an accepted one: a made-up session
/// handle is refused, a plain id input runs.
#[test]
fn capi_harness_reports_bad_handles_as_refusals() {
    assert!(!harness::capi_run(&[3, 0x11, 0x22, 0x33, 0x44, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 2, 3]));
    assert!(harness::capi_run(&[0, 1, 2, 0, 0, 0, 0, 2, 2, 3]));
}
