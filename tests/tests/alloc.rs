//! The forward pass performs no heap allocation once the session exists: a counting
//! global allocator sees zero allocations across `Session::forward` calls, dense and
//! pruned, with and without token outputs, on the pooled threads too.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use toprt::tokenize::Encoded;
use toprt::{Model, OpenOptions, Outputs, PruneControl, Session, SessionOptions};
use toprt_convert::synthetic;
use toprt_format::Precision;

struct Counting;

static ALLOCS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::SeqCst);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::SeqCst);
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// f32, bf16 (on whichever path this CPU takes: bf16 GEMMs with the workspace's bf16
/// buffer, or weights widened at session creation) and int8 with outlier channels
/// (quantised rows and gathered outliers live in the workspace). One test: the counter
/// is process-wide, and the test harness allocates when it starts a test's thread, so a
/// second test in this binary could be counted in this one's window.
#[test]
fn forward_pass_allocates_nothing() {
    for precision in [Precision::F32, Precision::Bf16, Precision::Int8] {
        check_no_alloc(precision);
    }
}

fn check_no_alloc(precision: Precision) {
    let cfg = toprt_format::ModelConfig {
        vocab_size: 300,
        hidden_size: 64,
        num_layers: 4,
        num_heads: 4,
        intermediate_size: 128,
        max_position_embeddings: 128,
        ..synthetic::bert_base_config()
    };
    let bytes = synthetic::random_bert_file(&cfg, 2, 9).unwrap();
    let bytes = toprt_convert::writer::with_keep_rules(&bytes, synthetic::top_schedule(4, 1, 20, 0.6, 2)).unwrap();
    let bytes = match precision {
        Precision::F32 => bytes,
        Precision::Bf16 => toprt_convert::writer::with_bf16_weights(&bytes).unwrap(),
        Precision::Int8 => {
            let plan = |_: &str| toprt_convert::bake::LinearPlan::Int8 { outliers: vec![1, 9] };
            toprt_convert::writer::with_int8_weights(&bytes, &plan, serde_json::Value::Null).unwrap()
        }
    };
    let model = Model::from_bytes(&bytes, &OpenOptions::default()).unwrap();
    let mut s = Session::new(&model, &SessionOptions { threads: 2, max_tokens: 512, ..Default::default() }).unwrap();
    if s.isa() == toprt_kernels::Isa::Portable {
        println!(
            "{precision}: skipped on the portable tier: its f32 GEMM, the gemm crate's, allocates scratch per call"
        );
        return;
    }
    let batch: Vec<Encoded> = [3usize, 40, 100, 1, 77]
        .iter()
        .map(|&n| Encoded {
            input_ids: (0..n as u32).map(|i| 1 + i % 250).collect(),
            token_type_ids: vec![0; n],
            truncated: false,
        })
        .collect();
    let all = Outputs { logits: true, embedding: true, hidden_states: true };
    let cls = Outputs { logits: true, embedding: false, hidden_states: false };
    // Warm up once (thread start-up, lazy statics).
    s.forward(&batch, all, PruneControl::default()).unwrap();
    for (want, ctl) in [
        (all, PruneControl::default()),
        (cls, PruneControl::default()),
        (all, PruneControl::DENSE),
        (cls, PruneControl { enabled: true, keep_scale: 0.5 }),
    ] {
        let before = ALLOCS.load(Ordering::SeqCst);
        for _ in 0..3 {
            s.forward(&batch, want, ctl).unwrap();
        }
        let n = ALLOCS.load(Ordering::SeqCst) - before;
        assert_eq!(n, 0, "{precision}: {n} heap allocations in 3 forward passes ({want:?}, {ctl:?})");
    }
    // The results are there and pruning happened.
    assert_eq!(s.logits(2).unwrap().len(), 2);
    assert!(s.kept(2).any(|(_, k)| k.len() < 100));
}
