//! Bit-identity guard: hashes every output bit of the golden cases and of the pruning
//! fixtures, per kernel tier, and compares them with the hashes committed in
//! `tests/golden/output-hashes.json`.
//!
//! The golden tests allow 1e-4; this test allows nothing. It exists so that changes that
//! must not change a result (restructuring, a new dispatch table, a faster driver that
//! keeps each element's accumulation order) are proven not to, on every tier
//! (`scripts/test.sh` runs it once per `TOPRT_ISA`).
//!
//! A change that is *meant* to change results (a new kernel with another summation
//! order) re-records the hashes with `TOPRT_WRITE_HASHES=1` on each tier, and says why
//! in its commit. The f32 hashes of every tier are required; native bf16 hashes are
//! recorded per kernel (`amx_bf16_gemm_32x32` can only be recorded on a CPU with AMX),
//! and a kernel without a recorded hash is reported as skipped, not passed; so is the
//! portable tier's GEMM on a CPU where the `gemm` crate takes another path than the
//! FMA one recorded here.

use serde_json::{Map, Value};
use toprt::{Input, Model, OpenOptions, Outputs, PruneControl, SequenceOutput, Session, SessionOptions};
use toprt_tests::*;

const ALL: Outputs = Outputs { logits: true, embedding: true, hidden_states: true };
const CLS_ONLY: Outputs = Outputs { logits: true, embedding: false, hidden_states: false };

/// FNV-1a, 64 bits: stable across platforms and Rust versions (unlike `DefaultHasher`).
struct Fnv(u64);

impl Fnv {
    fn new() -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
    fn bytes(&mut self, b: &[u8]) {
        for &x in b {
            self.0 = (self.0 ^ u64::from(x)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    fn u32s(&mut self, v: &[u32]) {
        self.bytes(&(v.len() as u64).to_le_bytes());
        v.iter().for_each(|x| self.bytes(&x.to_le_bytes()));
    }
    fn f32s(&mut self, v: Option<&Vec<f32>>) {
        match v {
            None => self.bytes(&[0]),
            Some(v) => {
                self.bytes(&[1]);
                self.u32s(&v.iter().map(|x| x.to_bits()).collect::<Vec<_>>());
            }
        }
    }
    fn output(&mut self, o: &SequenceOutput) {
        self.u32s(&o.input_ids);
        self.u32s(&o.token_type_ids);
        self.bytes(&[u8::from(o.truncated)]);
        self.f32s(o.logits.as_ref());
        self.f32s(o.embedding.as_ref());
        self.f32s(o.last_hidden_state.as_ref());
        self.bytes(&(o.kept.len() as u64).to_le_bytes());
        for (layer, pos) in &o.kept {
            self.bytes(&(*layer as u64).to_le_bytes());
            self.u32s(pos);
        }
    }
}

fn golden_inputs(name: &str) -> Vec<(Vec<u32>, Vec<u32>)> {
    let path = root().join("tests/golden").join(name).join("cases.json");
    let v: Vec<Value> = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let ids = |x: &Value| x.as_array().unwrap().iter().map(|i| i.as_u64().unwrap() as u32).collect::<Vec<u32>>();
    v.iter().map(|c| (ids(&c["input_ids"]), ids(&c["token_type_ids"]))).collect()
}

/// Hash of every golden case of `golden` run alone through `model`, all outputs.
fn hash_golden(model: &Model, golden: &str) -> (String, u64) {
    let mut s = Session::new(model, &SessionOptions { threads: 2, ..Default::default() }).unwrap();
    let mut h = Fnv::new();
    for (ids, types) in golden_inputs(golden) {
        let out = s.run(&[Input::Ids { input_ids: &ids, token_type_ids: Some(&types) }], ALL).unwrap();
        h.output(&out[0]);
    }
    (s.linear_kernel(), h.0)
}

const TEXTS: [&str; 5] = [
    "a gripping, beautifully shot film that never finds its heart .",
    "the cat sat on the mat",
    "ok",
    "Why few targets are better than many: the economic targets set out at the Lisbon summit were meant to help Europe leapfrog the United States.",
    "the movie was good, and then it went on and on about nothing much at all for another hour",
];

/// Hash of the texts through a pruned model: all outputs and CLS only, at keep scales
/// 1, 0.5 and 1.3, and with pruning off.
fn hash_pruned(model: &Model) -> (String, u64) {
    let mut s = Session::new(model, &SessionOptions { threads: 2, ..Default::default() }).unwrap();
    let mut h = Fnv::new();
    let ctls = [
        PruneControl::default(),
        PruneControl { enabled: true, keep_scale: 0.5 },
        PruneControl { enabled: true, keep_scale: 1.3 },
        PruneControl { enabled: false, keep_scale: 1.0 },
    ];
    for ctl in ctls {
        for want in [ALL, CLS_ONLY] {
            for t in TEXTS {
                h.output(&s.run_with(&[Input::Text(t)], want, ctl).unwrap()[0]);
            }
        }
    }
    (s.linear_kernel(), h.0)
}

fn open(bytes: &[u8]) -> Model {
    Model::from_bytes(bytes, &OpenOptions::default()).unwrap()
}

/// Every hashed set: (set name, kernel that ran its linears, hash).
fn compute() -> Vec<(String, String, u64)> {
    let mut out = Vec::new();
    let mut push = |set: &str, (kernel, h): (String, u64)| out.push((set.to_string(), kernel, h));
    for (fx, golden) in [
        ("tiny-bert-st", "tiny-bert"),
        ("tiny-bert-pt", "tiny-bert"),
        ("tiny-roberta-st", "tiny-roberta"),
        ("tiny-roberta-pt", "tiny-roberta"),
        ("tiny-distilbert-st", "tiny-distilbert"),
        ("tiny-xlmr-st", "tiny-xlmr"),
        ("tiny-electra-st", "tiny-electra"),
        ("tiny-electra-disc-st", "tiny-electra-disc"),
        ("tiny-mpnet-st", "tiny-mpnet"),
        ("tiny-modernbert-st", "tiny-modernbert"),
        ("tiny-modernbert-bias-st", "tiny-modernbert-bias"),
        ("tiny-deberta-st", "tiny-deberta"),
        ("tiny-deberta-v2-st", "tiny-deberta-v2"),
    ] {
        push(&format!("golden/{fx}"), hash_golden(&convert_and_open(&fixture(fx)), golden));
    }
    let minilm = convert_bytes(&minilm_dir());
    push("golden/minilm", hash_golden(&open(&minilm), "minilm"));

    // Pruning fixtures: the ToP best/ folder, the LTP checkpoint, MiniLM with a ToP schedule.
    let opts = toprt_convert::ConvertOptions { tokenizer_dir: Some(fixture("tiny-bert-st")), ..Default::default() };
    let top = toprt_convert::convert_to_bytes(&fixture("top-best"), &opts).unwrap().0;
    push("prune/top-best", hash_pruned(&open(&top)));
    let ltp = toprt_convert::convert_to_bytes(&fixture("ltp-tiny"), &Default::default()).unwrap().0;
    push("prune/ltp-tiny", hash_pruned(&open(&ltp)));
    let rules = toprt_convert::synthetic::top_schedule(6, 2, 25, 0.7, 3);
    let minilm_top = toprt_convert::writer::with_keep_rules(&minilm, rules).unwrap();
    push("prune/minilm-top", hash_pruned(&open(&minilm_top)));

    // bf16 weights: native bf16 GEMMs where the tier has them, else widened to f32.
    let minilm16 = toprt_convert::writer::with_bf16_weights(&minilm).unwrap();
    push("golden/minilm-bf16", hash_golden(&open(&minilm16), "minilm"));
    let minilm16_top = toprt_convert::writer::with_bf16_weights(&minilm_top).unwrap();
    push("prune/minilm-top-bf16", hash_pruned(&open(&minilm16_top)));
    // The converted files themselves (f32, bf16, ToP, LTP), byte for byte: the same on
    // every tier, so recorded under "file".
    let h = |bytes: &[u8]| {
        let mut f = Fnv::new();
        f.bytes(bytes);
        ("file".to_string(), f.0)
    };
    push("file/minilm", h(&minilm));
    push("file/minilm-bf16", h(&minilm16));
    push("file/minilm-top", h(&minilm_top));
    push("file/top-best", h(&top));
    push("file/ltp-tiny", h(&ltp));
    for fx in
        ["tiny-bert-st", "tiny-bert-pt", "tiny-roberta-st", "tiny-roberta-pt", "tiny-distilbert-st", "tiny-xlmr-st"]
            .into_iter()
            .chain([
                "tiny-electra-st",
                "tiny-electra-disc-st",
                "tiny-mpnet-st",
                "tiny-modernbert-st",
                "tiny-deberta-st",
            ])
    {
        push(&format!("file/{fx}"), h(&convert_bytes(&fixture(fx))));
    }
    out
}

/// The key of a hashed set: files are the same on every tier.
fn key(isa: toprt::Isa, kernel: &str, set: &str) -> String {
    if kernel == "file" {
        format!("file {set}")
    } else {
        format!("{isa} {kernel} {set}")
    }
}

#[test]
fn outputs_are_bit_identical_to_the_recorded_hashes() {
    let isa = toprt::Isa::from_env().unwrap();
    let path = root().join("tests/golden/output-hashes.json");
    let mut recorded: Map<String, Value> = match std::fs::read_to_string(&path) {
        Ok(s) => serde_json::from_str(&s).unwrap(),
        Err(_) => Map::new(),
    };
    let computed = compute();
    if std::env::var("TOPRT_WRITE_HASHES").is_ok_and(|v| v == "1") {
        for (set, kernel, h) in &computed {
            recorded.insert(key(isa, kernel, set), Value::String(format!("{h:016x}")));
        }
        let text = serde_json::to_string_pretty(&recorded).unwrap() + "\n";
        std::fs::write(&path, text).unwrap();
        eprintln!("recorded {} hashes for tier {isa} in {}", computed.len(), path.display());
        return;
    }
    let mut checked = 0;
    let mut failures = Vec::new();
    for (set, kernel, h) in &computed {
        let key = key(isa, kernel, set);
        match recorded.get(&key).and_then(Value::as_str) {
            Some(want) if want == format!("{h:016x}") => checked += 1,
            Some(want) => failures.push(format!("{key}: got {h:016x}, recorded {want}")),
            // A native bf16 kernel this repository has no hash for (e.g. AMX, recorded
            // only on a CPU that has it): skipped, and said so.
            None if kernel.contains("bf16_gemm") => {
                println!("skipped: no recorded hash for '{key}' (record it on a CPU with {kernel})")
            }
            // The portable tier's GEMM takes the gemm crate's path for this CPU (FMA on
            // x86-64, NEON on AArch64, or plain arithmetic), each with its own bits; the
            // repository records the paths of the CPUs it is tested on.
            None if kernel.starts_with("portable_sgemm_gemm_") && !kernel.contains("_fma") => {
                println!(
                    "skipped: no recorded hash for '{key}' (record it on a CPU where the gemm crate takes that path)"
                )
            }
            None => failures.push(format!("{key}: no recorded hash (every f32 tier must have one)")),
        }
    }
    assert!(failures.is_empty(), "outputs changed bits:\n{}", failures.join("\n"));
    eprintln!("tier {isa}: {checked} output sets bit-identical to the recorded hashes");
}
