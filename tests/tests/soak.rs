//! Load and soak: threads sharing one `Model`, each with its own `Session`, get exactly
//! the outputs of a single-threaded run; memory does not grow over many requests; idle
//! sessions burn no CPU.
//!
//! * `soak_short` runs in the normal suite on a small synthetic BERT with a ToP-style
//!   schedule (a few seconds).
//! * `soak_full` is ignored; `scripts/soak.sh` runs it: 8 threads × 1000 requests and
//!   10 000 requests for the memory check, on all-MiniLM-L6-v2 when it is present
//!   (else a larger synthetic model). `TOPRT_SOAK_*` variables change the sizes.
//!
//! Phases, each on the same model:
//! 1. references: every distinct request run once on a 1-thread session;
//! 2. load: N threads, each with its own session (1 or 2 pool threads, different token
//!    budgets), run random requests and compare every output bit for bit with its
//!    reference;
//! 3. memory: one session runs every request once (warm-up), then M more; resident set
//!    size (`VmRSS`) before and after must differ by less than 1%, and (with glibc) the
//!    heap bytes in use by less than glibc's own cache can move them;
//! 4. idle: with every session of phases 2 and 3 still alive, the process may use at
//!    most a few CPU ticks in one second of sleep (pool workers are parked).

use std::time::{Duration, Instant};
use toprt::{Input, Model, Outputs, PruneControl, SequenceOutput, Session, SessionOptions};
use toprt_convert::synthetic::Rng;
use toprt_tests::*;

struct Config {
    /// Load phase: threads and requests per thread.
    threads: usize,
    requests: usize,
    /// Distinct requests the load and memory phases draw from.
    distinct: usize,
    /// Memory phase: requests after the warm-up.
    rss_requests: usize,
    /// Sequence lengths are drawn from `1..=max_len` tokens.
    max_len: usize,
}

fn env_usize(name: &str, default: usize) -> usize {
    match std::env::var(name) {
        Ok(v) => v.parse().unwrap_or_else(|_| panic!("{name}={v} is not a number")),
        Err(_) => default,
    }
}

/// One sequence of a request.
#[derive(Clone, Debug)]
enum Seq {
    Ids(Vec<u32>, Vec<u32>),
    Text(String),
}

/// One request: a batch of 1–3 sequences with its outputs and pruning control.
#[derive(Clone, Debug)]
struct Request {
    seqs: Vec<Seq>,
    want: Outputs,
    ctl: PruneControl,
}

impl Request {
    fn run(&self, s: &mut Session) -> Vec<SequenceOutput> {
        let inputs: Vec<Input> = self
            .seqs
            .iter()
            .map(|q| match q {
                Seq::Ids(ids, types) => Input::Ids { input_ids: ids, token_type_ids: Some(types) },
                Seq::Text(t) => Input::Text(t),
            })
            .collect();
        s.run_with(&inputs, self.want, self.ctl).unwrap_or_else(|e| panic!("{self:?}: {e}"))
    }
}

fn below(rng: &mut Rng, n: usize) -> usize {
    (rng.uniform() * n as f32) as usize % n
}

const WORDS: &[&str] = &[
    "the",
    "model",
    "prunes",
    "tokens",
    "after",
    "attention",
    "and",
    "a",
    "film",
    "with",
    "dull",
    "ending",
    "is",
    "still",
    "worth",
    "seeing",
    "quickly",
    "unbelievable",
    "café",
    "résumé",
    "42",
    "?",
    "!",
];

/// Random requests whose sequences have lengths in `1..=max_len` tokens (text: about
/// that many words, cut to `max_len` by the session).
fn make_requests(model: &Model, cfg: &Config, seed: u64) -> Vec<Request> {
    let m = &model.manifest().model;
    let (cls, sep) = if m.vocab_size > 102 { (101, 102) } else { (2, 3) };
    let mut rng = Rng::new(seed);
    let ctls = [
        PruneControl::default(),
        PruneControl::DENSE,
        PruneControl { enabled: true, keep_scale: 0.5 },
        PruneControl { enabled: true, keep_scale: 1.7 },
    ];
    (0..cfg.distinct)
        .map(|_| {
            let n = [1, 1, 1, 2, 3][below(&mut rng, 5)];
            let seqs = (0..n)
                .map(|_| {
                    let len = 1 + below(&mut rng, cfg.max_len);
                    if model.has_tokenizer() && below(&mut rng, 3) == 0 {
                        return Seq::Text(
                            (0..len).map(|_| WORDS[below(&mut rng, WORDS.len())]).collect::<Vec<_>>().join(" "),
                        );
                    }
                    let split = below(&mut rng, len + 1);
                    let ids = (0..len)
                        .map(|i| match i {
                            0 => cls,
                            _ if i + 1 == len => sep,
                            _ => 1000.min(m.vocab_size as u32 / 2) + below(&mut rng, m.vocab_size / 2) as u32,
                        })
                        .collect();
                    let types = (0..len).map(|i| u32::from(i >= split && m.type_vocab_size > 1)).collect();
                    Seq::Ids(ids, types)
                })
                .collect();
            let want = Outputs { logits: true, embedding: true, hidden_states: below(&mut rng, 4) == 0 };
            Request { seqs, want, ctl: ctls[below(&mut rng, ctls.len())] }
        })
        .collect()
}

/// Resident set size in KiB (`VmRSS` of `/proc/self/status`).
fn rss_kib() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/self/status")
}

/// Bytes of heap in use (glibc's `mallinfo2`: small chunks in use plus mmapped ones, over
/// all arenas), or `None` where that function does not exist. Unlike the RSS, this
/// moves with every leaked byte: a leak served from freed memory that is still resident
/// leaves the RSS flat.
fn heap_in_use() -> Option<usize> {
    use std::ffi::{c_char, c_void};
    #[repr(C)]
    struct Mallinfo2 {
        arena: usize,
        ordblks: usize,
        smblks: usize,
        hblks: usize,
        hblkhd: usize,
        usmblks: usize,
        fsmblks: usize,
        uordblks: usize,
        fordblks: usize,
        keepcost: usize,
    }
    extern "C" {
        fn dlsym(handle: *mut c_void, symbol: *const c_char) -> *mut c_void;
    }
    // SAFETY: dlsym with RTLD_DEFAULT (NULL) and a NUL-terminated name has no other
    // precondition; a NULL result means the C library has no such function.
    let f = unsafe { dlsym(std::ptr::null_mut(), c"mallinfo2".as_ptr()) };
    if f.is_null() {
        return None;
    }
    // SAFETY: glibc's `struct mallinfo2 mallinfo2(void)`, whose layout `Mallinfo2`
    // mirrors (ten size_t fields); it has no preconditions.
    let m = unsafe { std::mem::transmute::<*mut c_void, extern "C" fn() -> Mallinfo2>(f)() };
    Some(m.uordblks + m.hblkhd)
}

/// User + system CPU ticks of the whole process (fields 14 and 15 of `/proc/self/stat`).
fn cpu_ticks() -> u64 {
    let s = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat");
    // Fields after the ")" closing the command name start at field 3 (state).
    let f: Vec<&str> = s.rsplit_once(')').expect("stat format").1.split_whitespace().collect();
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

/// Threads of this process whose name starts with `toprt-p` (pool workers) and how
/// many of them are sleeping (state `S`).
fn pool_threads() -> (usize, usize) {
    let mut n = 0;
    let mut sleeping = 0;
    for e in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        let comm = std::fs::read_to_string(e.path().join("comm")).unwrap_or_default();
        if !comm.starts_with("toprt-p") {
            continue;
        }
        n += 1;
        let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
        if stat.rsplit_once(')').is_some_and(|(_, r)| r.trim_start().starts_with('S')) {
            sleeping += 1;
        }
    }
    (n, sleeping)
}

/// `/proc` reports CPU time in USER_HZ ticks, which Linux fixes at 100 per second.
const TICK_MS: u64 = 10;

/// The phases measure the whole process (RSS, CPU time, pool threads), so two soaks
/// (with `--include-ignored`) must not overlap; each test holds this throughout.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn soak(model: &Model, what: &str, cfg: &Config) {
    let t0 = Instant::now();
    let max_len = cfg.max_len.min(model.max_length());
    let cfg = Config { max_len, ..*cfg };
    let requests = make_requests(model, &cfg, 7);
    let opts = SessionOptions { threads: 1, max_length: Some(max_len), ..Default::default() };

    // Progress goes to stderr, so a long run shows where it is.
    let phase = |what: String| eprintln!("soak: {:>6.1} s: {what}", t0.elapsed().as_secs_f64());
    // 1. References, single-threaded.
    phase(format!("references for {} distinct requests", requests.len()));
    let mut reference_session = Session::new(model, &opts).unwrap();
    let reference: Vec<Vec<SequenceOutput>> = requests.iter().map(|r| r.run(&mut reference_session)).collect();
    drop(reference_session);
    let t_ref = t0.elapsed();

    // 2. Load: threads sharing the model, one session each.
    phase(format!("load: {} threads x {} requests", cfg.threads, cfg.requests));
    let t1 = Instant::now();
    let results: Vec<(Session, usize, Option<String>)> = std::thread::scope(|sc| {
        let handles: Vec<_> = (0..cfg.threads)
            .map(|t| {
                let (model, requests, reference) = (model.clone(), &requests, &reference);
                sc.spawn(move || {
                    // Half the sessions have a pool worker; a third split every batch.
                    let o = SessionOptions {
                        threads: 1 + t % 2,
                        max_length: Some(max_len),
                        max_tokens: if t % 3 == 2 { max_len } else { 2048 },
                        ..Default::default()
                    };
                    let mut s = Session::new(&model, &o).unwrap();
                    let mut rng = Rng::new(1000 + t as u64);
                    let mut mismatches = 0;
                    let mut first = None;
                    for k in 0..cfg.requests {
                        let i = below(&mut rng, requests.len());
                        let out = requests[i].run(&mut s);
                        if out != reference[i] {
                            mismatches += 1;
                            first.get_or_insert_with(|| format!("thread {t}, request {k} (distinct #{i})"));
                        }
                    }
                    (s, mismatches, first)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("a load thread panicked")).collect()
    });
    let t_load = t1.elapsed();
    let mismatches: usize = results.iter().map(|r| r.1).sum();
    let load_total = cfg.threads * cfg.requests;

    // 3. Memory: warm up on every distinct request, then measure over many more.
    phase(format!("memory: warm-up, then {} requests on one session", cfg.rss_requests));
    let mut s = Session::new(model, &SessionOptions { threads: 2, ..opts }).unwrap();
    for r in &requests {
        r.run(&mut s);
    }
    let rss_before = rss_kib();
    let heap_before = heap_in_use();
    let t2 = Instant::now();
    let mut rng = Rng::new(99);
    let mut rss_mismatches = 0;
    for _ in 0..cfg.rss_requests {
        let i = below(&mut rng, requests.len());
        rss_mismatches += usize::from(requests[i].run(&mut s) != reference[i]);
    }
    let t_rss = t2.elapsed();
    let rss_after = rss_kib();
    let heap_after = heap_in_use();
    let growth = (rss_after as f64 - rss_before as f64) / rss_before as f64 * 100.0;

    // 4. Idle: every session is alive; its workers must be parked.
    phase("idle: 1 s".into());
    std::thread::sleep(Duration::from_millis(100));
    let (workers, _) = pool_threads();
    let ticks_before = cpu_ticks();
    std::thread::sleep(Duration::from_secs(1));
    let ticks_after = cpu_ticks();
    let (_, sleeping) = pool_threads();
    let idle_ms = (ticks_after - ticks_before) * TICK_MS;

    let tokens: usize = reference.iter().flatten().map(|o| o.input_ids.len()).sum();
    let per_s = |n: usize, d: Duration| n as f64 / d.as_secs_f64();
    println!(
        "\nsoak on {what}\n\
         requests: {} distinct (1-3 sequences of 1..={max_len} tokens, {tokens} tokens in all), references in {:.1} s\n\
         load:     {} threads x {} requests = {load_total} requests, one session each, in {:.1} s ({:.0} req/s)\n\
         mismatches vs single-threaded reference: {mismatches} of {load_total}\n\
         memory:   {} requests on one session (after a warm-up of {}): RSS {rss_before} KiB before, \
         {rss_after} KiB after, growth {growth:+.3}% ({:.0} req/s, {rss_mismatches} mismatches)\n\
         heap:     {}\n\
         idle:     {} live sessions, {workers} pool workers ({sleeping} sleeping after 1 s): \
         process CPU in 1 s of idle = {idle_ms} ms\n\
         total:    {:.1} s",
        requests.len(),
        t_ref.as_secs_f64(),
        cfg.threads,
        cfg.requests,
        t_load.as_secs_f64(),
        per_s(load_total, t_load),
        cfg.rss_requests,
        requests.len(),
        per_s(cfg.rss_requests, t_rss),
        match (heap_before, heap_after) {
            (Some(b), Some(a)) => format!("{b} bytes in use before, {a} after ({:+} bytes)", a as i64 - b as i64),
            _ => "not measured (no mallinfo2 in this C library)".into(),
        },
        results.len() + 1,
        t0.elapsed().as_secs_f64(),
    );
    if let Some(first) = results.iter().find_map(|r| r.2.clone()) {
        panic!("{mismatches} outputs differ from the single-threaded reference; first: {first}");
    }
    assert_eq!(rss_mismatches, 0, "memory phase outputs differ from the reference");
    if let (Some(b), Some(a)) = (heap_before, heap_after) {
        // Requests allocate only their outputs and free them. glibc counts chunks parked
        // in its per-thread cache (7 per size class up to 1 KiB) as in use, so the
        // figure moves by up to ~230 KiB without any leak; beyond that margin a leak of
        // 27 bytes per request shows over 10 000 requests (270 over 1000).
        let margin = 256 * 1024;
        assert!(a <= b + margin, "heap in use grew by {} bytes over {} requests", a - b, cfg.rss_requests);
    }
    assert!(growth < 1.0, "RSS grew {growth:.3}% over {} requests ({rss_before} → {rss_after} KiB)", cfg.rss_requests);
    let expected_workers = (0..cfg.threads).filter(|t| t % 2 == 1).count() + 1;
    assert_eq!(workers, expected_workers, "pool worker threads alive");
    // Spinning would cost ~1000 ms per worker; parked workers cost ~0. A few ticks are
    // allowed for the kernel's accounting and the test harness.
    assert!(idle_ms <= 50, "idle sessions used {idle_ms} ms of CPU in 1 s");
    drop(results);
    drop(s);
}

/// A small BERT-shaped classifier with random weights and a ToP-style schedule at
/// every layer after the first (so pruning runs in every request that enables it).
fn synthetic(hidden: usize, layers: usize, max_pos: usize) -> Model {
    let cfg = toprt_format::ModelConfig {
        vocab_size: 4000,
        hidden_size: hidden,
        num_layers: layers,
        num_heads: hidden / 32,
        intermediate_size: 4 * hidden,
        max_position_embeddings: max_pos,
        ..toprt_convert::synthetic::bert_base_config()
    };
    let image = toprt_convert::synthetic::random_bert_file(&cfg, 2, 11).unwrap();
    let rules = toprt_convert::synthetic::top_schedule(layers, 1, 10, 0.6, 5);
    let image = toprt_convert::writer::with_keep_rules(&image, rules).unwrap();
    Model::from_bytes(&image, &Default::default()).unwrap()
}

#[test]
fn soak_short() {
    let _serial = serial();
    let model = synthetic(64, 4, 128);
    let cfg = Config { threads: 4, requests: 100, distinct: 48, rss_requests: 1000, max_len: 48 };
    soak(&model, "a synthetic BERT (hidden 64, 4 layers, ToP schedule)", &cfg);
}

#[test]
#[ignore = "minutes; run by scripts/soak.sh"]
fn soak_full() {
    let _serial = serial();
    let cfg = Config {
        threads: env_usize("TOPRT_SOAK_THREADS", 8),
        requests: env_usize("TOPRT_SOAK_REQUESTS", 1000),
        distinct: env_usize("TOPRT_SOAK_DISTINCT", 256),
        rss_requests: env_usize("TOPRT_SOAK_RSS_REQUESTS", 10_000),
        max_len: env_usize("TOPRT_SOAK_MAX_LEN", 128),
    };
    let minilm = root().join("target/test-models/all-MiniLM-L6-v2");
    if minilm.join("model.safetensors").is_file() {
        soak(&convert_and_open(&minilm), "all-MiniLM-L6-v2", &cfg);
    } else {
        println!("all-MiniLM-L6-v2 is absent (scripts/fetch-test-models.sh fetches it): using a synthetic model");
        soak(&synthetic(256, 6, 512), "a synthetic BERT (hidden 256, 6 layers, ToP schedule)", &cfg);
    }
}
