//! The committed seed corpora, and the dispatch by target name.

use super::capi::*;
use super::cli_jsonl::*;
use super::config::*;
use super::safetensors::*;
use super::tiny::*;
use super::toprt_file::*;
use super::torch::*;

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
