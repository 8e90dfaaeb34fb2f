//! Bad input at run time, through the Rust API, the C interface (its `extern "C"`
//! functions, called from Rust; `tests/c/bad_args.c` calls them from C) and `toprt run`:
//! each one gives its named error or its documented behaviour (see `Session::run` and
//! `SessionOptions`), never a panic, and the session stays usable afterwards.
//!
//! Each test prints its table (input → result):
//! `cargo test --release -p toprt-tests --test bad_input -- --nocapture --test-threads 1`.

use std::ffi::c_char;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use toprt::capi::*;
use toprt::{Error, Input, Model, OpenOptions, Outputs, PruneControl, SequenceOutput, Session, SessionOptions};
use toprt_tests::*;

/// `[CLS]` and `[SEP]` of the tiny BERT fixture's vocabulary.
const CLS: u32 = 2;
const SEP: u32 = 3;
/// Its vocabulary and type vocabulary sizes (`tests/fixtures/tiny-bert-st/config.json`).
const VOCAB: u32 = 2999;
const TYPE_VOCAB: u32 = 2;

/// Rows of "input → result", printed as one block.
struct Table {
    title: &'static str,
    rows: Vec<(String, String)>,
}

impl Table {
    fn new(title: &'static str) -> Table {
        Table { title, rows: Vec::new() }
    }

    fn row(&mut self, input: impl Into<String>, outcome: impl Into<String>) {
        self.rows.push((input.into(), outcome.into()));
    }

    /// Prints the table in one write, so parallel tests do not interleave lines.
    fn print(&self) {
        let mut s = format!("\n{}\n\n| input | result |\n|---|---|\n", self.title);
        for (i, o) in &self.rows {
            s += &format!("| {} | {} |\n", i.replace('|', "\\|"), o.replace('|', "\\|"));
        }
        println!("{s}");
    }
}

/// The variant name of an engine error (`TokenId { .. }` → `TokenId`).
fn variant(e: &Error) -> String {
    format!("{e:?}").split(|c: char| !c.is_alphanumeric()).next().unwrap_or("").to_string()
}

/// Asserts that `$result` is an `Err` matching `$pat` and records the row.
macro_rules! expect_err {
    ($table:expr, $input:expr, $result:expr, $pat:pat) => {{
        let input: String = $input.into();
        match $result {
            Err(e @ $pat) => $table.row(input, format!("`Error::{}`: {e}", variant(&e))),
            Err(e) => panic!("{input}: expected {}, got {e:?}", stringify!($pat)),
            Ok(_) => panic!("{input}: expected {}, got Ok", stringify!($pat)),
        }
    }};
}

fn tok_model() -> Model {
    convert_and_open(&fixture("tiny-bert-st"))
}

fn ids_model() -> Model {
    let opts = toprt_convert::ConvertOptions { no_tokenizer: true, ..Default::default() };
    let (bytes, _) = toprt_convert::convert_to_bytes(&fixture("tiny-bert-st"), &opts).unwrap();
    Model::from_bytes(&bytes, &OpenOptions::default()).unwrap()
}

fn session(m: &Model, opts: SessionOptions) -> Session {
    Session::new(m, &SessionOptions { threads: 1, ..opts }).unwrap()
}

fn one(s: &mut Session, input: Input) -> SequenceOutput {
    let mut out = s.run(&[input], Outputs::default()).unwrap_or_else(|e| panic!("{input:?}: {e}"));
    assert_eq!(out.len(), 1);
    out.remove(0)
}

fn ids(n: usize) -> Vec<u32> {
    (0..n).map(|i| if i == 0 { CLS } else { 100 + i as u32 }).collect()
}

fn logits_ok(o: &SequenceOutput) -> bool {
    o.logits.as_ref().is_some_and(|l| l.len() == 3 && l.iter().all(|x| x.is_finite()))
}

#[test]
fn rust_api_bad_inputs() {
    let m = tok_model();
    let mut t = Table::new("Rust API (tiny BERT classifier with tokenizer; ids-only copy where noted)");
    let mut s = session(&m, SessionOptions::default());
    let hello = one(&mut s, Input::Text("hello"));
    assert_eq!((hello.input_ids[0], *hello.input_ids.last().unwrap()), (CLS, SEP));

    expect_err!(t, "empty batch `run(&[])`", s.run(&[], Outputs::default()), Error::EmptyBatch);

    // Empty and whitespace-only texts encode to their special tokens, as in Hugging Face.
    let empty = one(&mut s, Input::Text(""));
    assert_eq!(empty.input_ids, [CLS, SEP]);
    assert!(logits_ok(&empty) && !empty.truncated);
    t.row("empty text `\"\"`", "runs as `[CLS] [SEP]` (ids [2, 3]), finite logits");
    let ws = one(&mut s, Input::Text(" \t\n  \r\n"));
    assert_eq!(ws, empty, "whitespace-only text must equal the empty text");
    t.row("whitespace-only text", "runs as `[CLS] [SEP]`; output bit-identical to the empty text");
    let ctl = one(&mut s, Input::Text("\u{0}\u{7}\u{1b}"));
    assert_eq!(ctl, empty, "control characters are removed by the BERT normaliser");
    t.row("control characters only (NUL, BEL, ESC)", "removed by the normaliser: runs as `[CLS] [SEP]`");
    let unk = one(&mut s, Input::Text("\u{1F600}"));
    assert_eq!(unk.input_ids, [CLS, 1, SEP]);
    t.row("a character outside the vocabulary (emoji)", "runs as `[CLS] [UNK] [SEP]`");

    // Pairs with empty halves.
    let p = one(&mut s, Input::Pair("", ""));
    assert_eq!((p.input_ids.as_slice(), p.token_type_ids.as_slice()), (&[CLS, SEP, SEP][..], &[0, 0, 1][..]));
    t.row("pair `(\"\", \"\")`", "runs as `[CLS] [SEP] [SEP]`, type ids [0, 0, 1]");
    let p = one(&mut s, Input::Pair("hello", ""));
    assert_eq!(p.input_ids[..p.input_ids.len() - 1], hello.input_ids[..]);
    assert_eq!(*p.token_type_ids.last().unwrap(), 1);
    assert!(logits_ok(&p));
    t.row("pair `(\"hello\", \"\")`", "runs as `[CLS] hello [SEP] [SEP]`");
    let p = one(&mut s, Input::Pair("", "hello"));
    assert_eq!(p.input_ids[..2], [CLS, SEP]);
    assert!(p.token_type_ids[2..].iter().all(|&t| t == 1) && logits_ok(&p));
    t.row("pair `(\"\", \"hello\")`", "runs as `[CLS] [SEP] hello [SEP]`, second segment type 1");

    // Ids out of range: the error names the input, the position and the id.
    let bad_id = [CLS, 5, VOCAB, SEP];
    let good = Input::Ids { input_ids: &[CLS, SEP], token_type_ids: None };
    expect_err!(
        t,
        format!("id {VOCAB} (= vocab size) at position 2 of input 1"),
        s.run(&[good, Input::Ids { input_ids: &bad_id, token_type_ids: None }], Outputs::default()),
        Error::TokenId { index: 1, position: 2, id: VOCAB, vocab_size: 2999 }
    );
    expect_err!(
        t,
        "id u32::MAX",
        s.run(&[Input::Ids { input_ids: &[CLS, u32::MAX], token_type_ids: None }], Outputs::default()),
        Error::TokenId { index: 0, position: 1, id: u32::MAX, .. }
    );
    expect_err!(
        t,
        format!("token type id {TYPE_VOCAB} (= type vocab size)"),
        s.run(
            &[Input::Ids { input_ids: &[CLS, 7, SEP], token_type_ids: Some(&[0, 0, TYPE_VOCAB]) }],
            Outputs::default()
        ),
        Error::TokenTypeId { index: 0, position: 2, type_id: TYPE_VOCAB, type_vocab_size: 2 }
    );
    expect_err!(
        t,
        "2 token type ids for 3 ids",
        s.run(&[Input::Ids { input_ids: &[CLS, 7, SEP], token_type_ids: Some(&[0, 0]) }], Outputs::default()),
        Error::TypeIdsLength { index: 0, type_ids: 2, input_ids: 3 }
    );
    expect_err!(
        t,
        "empty token-id sequence",
        s.run(&[good, good, Input::Ids { input_ids: &[], token_type_ids: None }], Outputs::default()),
        Error::EmptySequence { index: 2 }
    );
    expect_err!(
        t,
        "hand-built `Encoded` with no ids to `run_encoded`",
        s.run_encoded(vec![Default::default()], Outputs::default()),
        Error::EmptySequence { index: 0 }
    );
    expect_err!(t, "empty batch to `run_encoded`", s.run_encoded(vec![], Outputs::default()), Error::EmptyBatch);

    // Longer than max_length: cut (flagged) by default, or refused.
    let long = "word ".repeat(200);
    let mut s16 = session(&m, SessionOptions { max_length: Some(16), ..Default::default() });
    let o = one(&mut s16, Input::Text(&long));
    assert!(o.truncated && o.input_ids.len() == 16 && o.input_ids[15] == SEP && logits_ok(&o));
    t.row("text of 200 words, max_length 16, truncate on", "cut to 16 tokens ending in `[SEP]`, `truncated: true`");
    let o = one(&mut s16, Input::Pair(&long, &long));
    assert!(o.truncated && o.input_ids.len() == 16);
    assert_eq!(o.input_ids.iter().filter(|&&i| i == SEP).count(), 2, "both [SEP]s kept");
    t.row(
        "pair of 2 × 200 words, max_length 16",
        "cut longest-first to 16 tokens, both `[SEP]` kept, `truncated: true`",
    );
    let long_ids = ids(40);
    let o = one(&mut s16, Input::Ids { input_ids: &long_ids, token_type_ids: None });
    assert!(o.truncated && o.input_ids == long_ids[..16]);
    t.row("40 token ids, max_length 16, truncate on", "first 16 ids kept, `truncated: true`");
    let huge = "token ".repeat(200_000);
    let o = one(&mut s16, Input::Text(&huge));
    assert!(o.truncated && o.input_ids.len() == 16);
    t.row("text of 1.2 MB (200 000 words), max_length 16", "cut to 16 tokens, `truncated: true`");
    let mut strict = session(&m, SessionOptions { max_length: Some(16), truncate: false, ..Default::default() });
    expect_err!(
        t,
        "text of 200 words (202 tokens), max_length 16, truncate off",
        strict.run(&[Input::Text(&long)], Outputs::default()),
        Error::TooLong { index: 0, len: 202, max: 16 }
    );
    expect_err!(
        t,
        "40 token ids, max_length 16, truncate off",
        strict.run(&[Input::Ids { input_ids: &long_ids, token_type_ids: None }], Outputs::default()),
        Error::TooLong { index: 0, len: 40, max: 16 }
    );
    let enc = toprt::tokenize::Encoded { input_ids: long_ids.clone(), token_type_ids: vec![0; 40], truncated: false };
    expect_err!(
        t,
        "hand-built 40-token `Encoded` to `run_encoded` (truncate on)",
        s16.run_encoded(vec![enc], Outputs::default()),
        Error::TooLong { index: 0, len: 40, max: 16 }
    );

    // Over the token budget: run() splits into passes, with bit-identical results.
    let mut small = session(&m, SessionOptions { max_length: Some(16), max_tokens: 24, ..Default::default() });
    assert_eq!(small.max_tokens(), 24);
    let texts: Vec<String> = (0..12).map(|i| "some words here ".repeat(1 + i % 4)).collect();
    let batch: Vec<Input> = texts.iter().map(|x| Input::Text(x)).collect();
    let together = small.run(&batch, Outputs::default()).unwrap();
    let tokens: usize = together.iter().map(|o| o.input_ids.len()).sum();
    assert!(tokens > 3 * 24, "the batch must span several passes ({tokens} tokens)");
    for (inp, o) in batch.iter().zip(&together) {
        assert_eq!(&one(&mut s16, *inp), o, "split batch differs from the sequence alone");
    }
    t.row(
        format!("batch of 12 texts, {tokens} tokens, budget 24"),
        "split into passes of whole sequences; outputs bit-identical to each text alone",
    );
    let encoded: Vec<_> = batch.iter().enumerate().map(|(i, x)| small.prepare(i, x).unwrap()).collect();
    expect_err!(
        t,
        "the same batch to `forward` (one pass, no allocation)",
        small.forward(&encoded, Outputs::default(), PruneControl::default()),
        Error::OverBudget { sequences: 12, budget: 24, .. }
    );
    // A single sequence longer than the requested budget: the budget is raised to it.
    let mut tight = session(&m, SessionOptions { max_length: Some(16), max_tokens: 4, ..Default::default() });
    assert_eq!(tight.max_tokens(), 16);
    assert_eq!(one(&mut tight, Input::Text(&long)), one(&mut s16, Input::Text(&long)));
    t.row("16-token text, max_tokens 4", "budget raised to max_length (16); runs, same output as budget 2048");
    let mut zero = session(&m, SessionOptions { max_length: Some(16), max_tokens: 0, ..Default::default() });
    assert_eq!(zero.max_tokens(), 16);
    assert_eq!(one(&mut zero, Input::Text("hello")), hello);
    t.row("max_tokens 0", "raised to max_length; runs");

    // Session options.
    let opts = |o: SessionOptions| Session::new(&m, &o);
    expect_err!(
        t,
        "max_length 0",
        opts(SessionOptions { max_length: Some(0), ..Default::default() }),
        Error::Options(_)
    );
    for n in [1, 2] {
        expect_err!(
            t,
            format!("max_length {n} (model with tokenizer)"),
            opts(SessionOptions { max_length: Some(n), ..Default::default() }),
            Error::Options(_)
        );
    }
    let mut s3 = session(&m, SessionOptions { max_length: Some(3), ..Default::default() });
    let o = one(&mut s3, Input::Pair("one two", "three four"));
    assert_eq!(o.input_ids, [CLS, SEP, SEP]);
    assert!(o.truncated);
    t.row("max_length 3, a text pair", "runs as `[CLS] [SEP] [SEP]`, `truncated: true`");
    let roberta = convert_and_open(&fixture("tiny-roberta-st"));
    expect_err!(
        t,
        "max_length 3 (RoBERTa: a pair has 4 special tokens)",
        Session::new(&roberta, &SessionOptions { max_length: Some(3), ..Default::default() }),
        Error::Options(_)
    );
    let mut r4 = session(&roberta, SessionOptions { max_length: Some(4), ..Default::default() });
    let o = one(&mut r4, Input::Pair("one two", "three four"));
    let (bos, eos) = match one(&mut r4, Input::Text("")).input_ids[..] {
        [b, e] => (b, e),
        ref other => panic!("empty RoBERTa text gave {other:?}"),
    };
    assert!(o.input_ids == [bos, eos, eos, eos] && o.truncated, "{:?}", o.input_ids);
    t.row("max_length 4 (RoBERTa), a text pair", "runs as `<s> </s> </s> </s>`, `truncated: true`");
    expect_err!(
        t,
        "max_length 513 (model maximum 512)",
        opts(SessionOptions { max_length: Some(513), ..Default::default() }),
        Error::Options(_)
    );
    let all = Session::new(&m, &SessionOptions { threads: 0, ..Default::default() }).unwrap();
    assert!(all.threads() >= 1);
    t.row("threads 0", format!("one thread per logical CPU ({} here)", all.threads()));
    drop(all);
    expect_err!(t, "threads 1025", opts(SessionOptions { threads: 1025, ..Default::default() }), Error::Options(_));
    expect_err!(
        t,
        "max_tokens 65537",
        opts(SessionOptions { max_tokens: 65537, ..Default::default() }),
        Error::Options(_)
    );
    expect_err!(
        t,
        "max_tokens usize::MAX",
        opts(SessionOptions { max_tokens: usize::MAX, ..Default::default() }),
        Error::Options(_)
    );
    for k in [f32::NAN, f32::INFINITY, 0.0, -1.0] {
        let prune = PruneControl { enabled: true, keep_scale: k };
        expect_err!(
            t,
            format!("session keep_scale {k}"),
            opts(SessionOptions { prune, ..Default::default() }),
            Error::Options(_)
        );
    }
    let nan = PruneControl { enabled: true, keep_scale: f32::NAN };
    expect_err!(
        t,
        "per-request keep_scale NaN (`run_with`)",
        s.run_with(&[good], Outputs::default(), nan),
        Error::Options(_)
    );
    expect_err!(t, "`set_prune_control` with keep_scale NaN", s.set_prune_control(nan), Error::Options(_));

    // A model without a tokenizer.
    let im = ids_model();
    let mut si = session(&im, SessionOptions::default());
    expect_err!(
        t,
        "text to a model without a tokenizer",
        si.run(&[Input::Text("hi")], Outputs::default()),
        Error::NoTokenizer
    );
    expect_err!(
        t,
        "pair to a model without a tokenizer",
        si.run(&[Input::Pair("a", "b")], Outputs::default()),
        Error::NoTokenizer
    );
    let mut s1 = session(&im, SessionOptions { max_length: Some(1), ..Default::default() });
    let o = one(&mut s1, Input::Ids { input_ids: &[CLS, 7, SEP], token_type_ids: None });
    assert!(o.input_ids == [CLS] && o.truncated && logits_ok(&o));
    t.row("max_length 1 (ids-only model), 3 ids", "runs on `[CLS]` alone, `truncated: true`");

    // The sessions still work after all of the above, with unchanged results.
    assert_eq!(one(&mut s, Input::Text("hello")), hello);
    assert_eq!(s.prune_control(), PruneControl::default());
    t.print();
}

// ---- the C interface ---------------------------------------------------------------

fn last_error() -> String {
    // SAFETY: toprt_last_error returns a valid NUL-terminated string owned by the library.
    unsafe { std::ffi::CStr::from_ptr(toprt_last_error()) }.to_string_lossy().into_owned()
}

fn status_name(s: toprt_status) -> String {
    // SAFETY: as above.
    unsafe { std::ffi::CStr::from_ptr(toprt_status_name(s)) }.to_string_lossy().into_owned()
}

fn text_input(text: &[u8]) -> toprt_input {
    toprt_input {
        kind: TOPRT_INPUT_TEXT,
        text: text.as_ptr().cast::<c_char>(),
        text_len: text.len(),
        text_pair: std::ptr::null(),
        text_pair_len: 0,
        input_ids: std::ptr::null(),
        token_type_ids: std::ptr::null(),
        num_ids: 0,
    }
}

fn pair_input(a: &[u8], b: &[u8]) -> toprt_input {
    toprt_input { kind: TOPRT_INPUT_PAIR, text_pair: b.as_ptr().cast(), text_pair_len: b.len(), ..text_input(a) }
}

fn ids_input(ids: &[u32], types: Option<&[u32]>) -> toprt_input {
    toprt_input {
        kind: TOPRT_INPUT_IDS,
        input_ids: ids.as_ptr(),
        token_type_ids: types.map_or(std::ptr::null(), |t| t.as_ptr()),
        num_ids: ids.len(),
        ..text_input(b"")
    }
}

/// A C session over `model` with `edit` applied to the default options.
fn c_session(
    model: *mut toprt_model,
    edit: impl FnOnce(&mut toprt_session_options),
) -> (toprt_status, *mut toprt_session) {
    let mut o = std::mem::MaybeUninit::<toprt_session_options>::uninit();
    // SAFETY: `o` is writable; the init call fills it.
    let mut o = unsafe {
        assert_eq!(toprt_session_options_init(o.as_mut_ptr()), TOPRT_OK);
        o.assume_init()
    };
    o.threads = 1;
    edit(&mut o);
    let mut s = std::ptr::null_mut();
    // SAFETY: valid pointers to live values.
    let st = unsafe { toprt_session_create(model, &o, &mut s) };
    (st, s)
}

/// Runs `inputs` and returns the status and, on success, the input ids of each result.
fn c_run(s: *mut toprt_session, inputs: &[toprt_input]) -> (toprt_status, Vec<Vec<u32>>) {
    let mut r = std::ptr::null_mut();
    // SAFETY: the inputs point into live buffers of the stated lengths.
    let st = unsafe { toprt_session_run(s, inputs.as_ptr(), inputs.len(), std::ptr::null(), &mut r) };
    if st != TOPRT_OK {
        return (st, Vec::new());
    }
    let mut n = 0;
    let mut out = Vec::new();
    // SAFETY: `r` is a live result handle; buffers are sized from the returned lengths.
    unsafe {
        assert_eq!(toprt_result_count(r, &mut n), TOPRT_OK);
        for i in 0..n {
            let mut len = 0;
            assert_eq!(toprt_result_input_ids(r, i, std::ptr::null_mut(), 0, &mut len), TOPRT_OK);
            let mut v = vec![0u32; len];
            assert_eq!(toprt_result_input_ids(r, i, v.as_mut_ptr(), len, &mut len), TOPRT_OK);
            out.push(v);
        }
        assert_eq!(toprt_result_free(r), TOPRT_OK);
    }
    (st, out)
}

#[test]
fn c_api_bad_inputs() {
    let bytes = convert_bytes(&fixture("tiny-bert-st"));
    let mut t = Table::new("C interface (`toprt_session_create`, `toprt_session_run`; tiny BERT classifier)");
    let mut model = std::ptr::null_mut();
    // SAFETY: `bytes` outlives the call (the library copies it).
    assert_eq!(unsafe { toprt_model_open_bytes(bytes.as_ptr().cast(), bytes.len(), &mut model) }, TOPRT_OK);
    let (st, s) = c_session(model, |_| {});
    assert_eq!(st, TOPRT_OK, "{}", last_error());

    let expect = |t: &mut Table, input: &str, got: toprt_status, want: toprt_status| {
        assert_eq!(got, want, "{input}: got {} ({})", status_name(got), last_error());
        let outcome =
            if got == TOPRT_OK { "TOPRT_OK".to_string() } else { format!("`{}`: {}", status_name(got), last_error()) };
        t.row(input, outcome);
    };

    let (st, _) = c_run(s, &[]);
    expect(&mut t, "num_inputs 0", st, TOPRT_ERR_INVALID_ARGUMENT);
    let (st, ids) = c_run(s, &[text_input(b"")]);
    assert_eq!(ids, [vec![CLS, SEP]]);
    t.row("empty text (len 0)", format!("{} — ids [2, 3]", status_name(st)));
    let (st, ids) = c_run(s, &[text_input(b"  \t\n ")]);
    assert_eq!((st, ids), (TOPRT_OK, vec![vec![CLS, SEP]]));
    t.row("whitespace-only text", "TOPRT_OK — ids [2, 3]");
    let (st, ids) = c_run(s, &[pair_input(b"", b"")]);
    assert_eq!((st, ids), (TOPRT_OK, vec![vec![CLS, SEP, SEP]]));
    t.row("pair with two empty halves", "TOPRT_OK — ids [2, 3, 3]");
    let (st, _) = c_run(s, &[text_input(b"caf\xc3")]);
    expect(&mut t, "text with invalid UTF-8", st, TOPRT_ERR_INVALID_UTF8);
    let (st, _) = c_run(s, &[ids_input(&[CLS, VOCAB], None)]);
    expect(&mut t, "id = vocab size", st, TOPRT_ERR_INPUT);
    assert!(last_error().contains("token id 2999 at position 1"));
    let (st, _) = c_run(s, &[ids_input(&[CLS, 7], Some(&[0, 2]))]);
    expect(&mut t, "token type id 2", st, TOPRT_ERR_INPUT);
    let (st, _) = c_run(s, &[ids_input(&[CLS, 7], None), ids_input(&[], None)]);
    expect(&mut t, "empty token-id sequence (non-NULL pointer, num_ids 0)", st, TOPRT_ERR_INPUT);
    assert!(last_error().starts_with("input 1: empty sequence"));
    let (st, _) = c_run(s, &[toprt_input { input_ids: std::ptr::null(), ..ids_input(&[], None) }]);
    expect(&mut t, "input_ids NULL with num_ids 0", st, TOPRT_ERR_NULL_POINTER);
    let long = "word ".repeat(600);
    let (st, ids) = c_run(s, &[text_input(long.as_bytes())]);
    assert_eq!((st, ids[0].len()), (TOPRT_OK, 512));
    t.row("text of 600 words, default options", "TOPRT_OK — cut to 512 tokens");
    let many: Vec<Vec<u8>> = (0..100).map(|i| "several words ".repeat(1 + i % 40).into_bytes()).collect();
    let inputs: Vec<toprt_input> = many.iter().map(|x| text_input(x)).collect();
    let (st, ids) = c_run(s, &inputs);
    let tokens: usize = ids.iter().map(Vec::len).sum();
    assert!(st == TOPRT_OK && ids.len() == 100 && tokens > 2048, "{tokens} tokens");
    t.row(format!("batch of 100 texts, {tokens} tokens (budget 2048)"), "TOPRT_OK — split into passes");

    let (st, strict) = c_session(model, |o| {
        o.max_length = 16;
        o.truncate = 0;
    });
    assert_eq!(st, TOPRT_OK);
    let (st, _) = c_run(strict, &[text_input(long.as_bytes())]);
    expect(&mut t, "text of 600 words (602 tokens), max_length 16, truncate 0", st, TOPRT_ERR_INPUT);
    // SAFETY: a live session handle.
    assert_eq!(unsafe { toprt_session_free(strict) }, TOPRT_OK);

    type Edit = fn(&mut toprt_session_options);
    let bad_options: [(&str, Edit); 5] = [
        ("session max_length 1", |o| o.max_length = 1),
        ("session max_length 513", |o| o.max_length = 513),
        ("session threads 1025", |o| o.threads = 1025),
        ("session max_tokens 65537", |o| o.max_tokens = 65537),
        ("session keep_scale NaN", |o| o.keep_scale = f32::NAN),
    ];
    for (what, edit) in bad_options {
        let (st, s) = c_session(model, edit);
        assert!(s.is_null(), "{what}: a session was returned despite the error");
        expect(&mut t, what, st, TOPRT_ERR_INVALID_ARGUMENT);
    }
    let (st, s0) = c_session(model, |o| o.threads = 0);
    expect(&mut t, "session threads 0 (one per logical CPU)", st, TOPRT_OK);
    // SAFETY: a live session handle.
    assert_eq!(unsafe { toprt_session_free(s0) }, TOPRT_OK);
    // SAFETY: a live session handle.
    let st = unsafe { toprt_session_set_prune(s, 1, f32::NAN) };
    expect(&mut t, "`toprt_session_set_prune` keep_scale NaN", st, TOPRT_ERR_INVALID_ARGUMENT);
    let run_opts = toprt_run_options { outputs: TOPRT_OUTPUT_LOGITS, prune: TOPRT_PRUNE_ON, keep_scale: f32::NAN };
    let mut r = std::ptr::null_mut();
    let inp = [text_input(b"hi")];
    // SAFETY: valid pointers to live values.
    let st = unsafe { toprt_session_run(s, inp.as_ptr(), 1, &run_opts, &mut r) };
    assert!(r.is_null());
    expect(&mut t, "per-request keep_scale NaN", st, TOPRT_ERR_INVALID_ARGUMENT);

    // Still usable.
    let (st, ids) = c_run(s, &[text_input(b"")]);
    assert_eq!((st, ids), (TOPRT_OK, vec![vec![CLS, SEP]]));
    // SAFETY: live handles.
    unsafe {
        assert_eq!(toprt_session_free(s), TOPRT_OK);
        assert_eq!(toprt_model_free(model), TOPRT_OK);
    }
    t.print();
}

// ---- the `toprt run` command -------------------------------------------------------

fn bin(name: &str) -> PathBuf {
    toprt_tests::workspace_bin(name)
}

fn tmp(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name)
}

/// Runs `toprt run` on `input` (raw bytes) and returns (success, stderr, output lines).
fn toprt_run(
    model: &std::path::Path,
    tag: &str,
    input: &[u8],
    extra: &[&str],
) -> (bool, String, Vec<serde_json::Value>) {
    let inp = tmp(&format!("bad-input-{tag}.jsonl"));
    let out = tmp(&format!("bad-input-{tag}.out.jsonl"));
    std::fs::write(&inp, input).unwrap();
    let _ = std::fs::remove_file(&out);
    let o = Command::new(bin("toprt"))
        .args(["run", "--threads", "1", "--model"])
        .arg(model)
        .arg("--input")
        .arg(&inp)
        .arg("--output")
        .arg(&out)
        .args(extra)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    // The input's folder is this machine's; the table shows it as `<tmp>`.
    let err = String::from_utf8_lossy(&o.stderr).trim_end().replace(env!("CARGO_TARGET_TMPDIR"), "<tmp>");
    let lines = std::fs::read_to_string(&out)
        .map(|t| t.lines().map(|l| serde_json::from_str(l).unwrap()).collect())
        .unwrap_or_default();
    if !o.status.success() {
        assert!(!out.exists(), "{tag}: output left behind after an error");
        assert_eq!(err.lines().count(), 1, "{tag}: error is not one line: {err}");
    }
    (o.status.success(), err, lines)
}

#[test]
fn cli_bad_inputs() {
    let model = tmp("bad-input-cli.toprt");
    let opts = toprt_convert::ConvertOptions { force: true, ..Default::default() };
    toprt_convert::convert(&fixture("tiny-bert-st"), &model, &opts).unwrap();
    let mut t = Table::new("`toprt run` (tiny BERT classifier)");
    let ok = br#"{"text": "ok"}"#;
    let line = |s: &[u8]| [&ok[..], b"\n", s, b"\n"].concat();
    let mut fails = |tag: &str, what: &str, input: &[u8], extra: &[&str], want: &str| {
        let (success, err, _) = toprt_run(&model, tag, input, extra);
        assert!(!success, "{what}: accepted");
        assert!(err.contains(want), "{what}: stderr {err:?} lacks {want:?}");
        t.row(what, format!("exit 1, no output file: `{err}`"));
    };
    fails(
        "oov",
        "`input_ids` with id 2999 (line 2)",
        &line(br#"{"input_ids": [2, 2999, 3]}"#),
        &[],
        "line 2: token id 2999",
    );
    fails(
        "type",
        "`token_type_ids` with 2",
        &line(br#"{"input_ids": [2, 7, 3], "token_type_ids": [0, 0, 2]}"#),
        &[],
        "line 2: token type id 2",
    );
    fails(
        "typelen",
        "2 type ids for 3 ids",
        &line(br#"{"input_ids": [2, 7, 3], "token_type_ids": [0, 0]}"#),
        &[],
        "line 2: 2 token_type_ids for 3 input_ids",
    );
    fails("emptyids", "`input_ids: []`", &line(br#"{"input_ids": []}"#), &[], "line 2: empty sequence");
    fails("utf8", "a line that is not UTF-8", &line(b"{\"text\": \"caf\xc3\"}"), &[], "line 2");
    let long = format!(r#"{{"text": "{}"}}"#, "word ".repeat(100));
    fails(
        "strict",
        "text of 100 words (102 tokens), `--max-length 16 --no-truncate`",
        long.as_bytes(),
        &["--max-length", "16", "--no-truncate"],
        "exceeds the maximum length 16",
    );
    fails("ml0", "`--max-length 0`", ok, &["--max-length", "0"], "max_length must be at least 1");
    fails("ml1", "`--max-length 1`", ok, &["--max-length", "1"], "special tokens");
    fails("threads", "`--threads 5000`", ok, &["--threads", "5000"], "at most 1024");
    fails("nan", "`--keep-scale NaN`", ok, &["--keep-scale", "NaN"], "keep_scale must be a positive finite number");
    fails("batch0", "`--batch-size 0`", ok, &["--batch-size", "0"], "at least 1");

    let (success, _, out) = toprt_run(&model, "empty", b"", &[]);
    assert!(success && out.is_empty());
    t.row("an empty input file", "exit 0, empty output");
    let (success, _, out) = toprt_run(&model, "blank", b"\n  \n\n", &[]);
    assert!(success && out.is_empty());
    t.row("only blank lines", "exit 0, empty output (blank lines are skipped)");
    let input = br#"{"text": ""}
{"text": "   "}
{"text": "", "text_pair": ""}
"#;
    let (success, err, out) = toprt_run(&model, "emptytext", input, &[]);
    assert!(success, "{err}");
    let got: Vec<&serde_json::Value> = out.iter().map(|o| &o["input_ids"]).collect();
    assert_eq!(got, [&serde_json::json!([2, 3]), &serde_json::json!([2, 3]), &serde_json::json!([2, 3, 3])]);
    t.row("`text: \"\"`, whitespace-only text, pair of empty texts", "exit 0: ids [2, 3], [2, 3], [2, 3, 3]");
    let (success, err, out) = toprt_run(&model, "trunc", long.as_bytes(), &["--max-length", "16"]);
    assert!(success && out[0]["input_ids"].as_array().unwrap().len() == 16);
    assert!(err.contains("warning: line 1: input truncated to 16 tokens"), "{err}");
    t.row("text of 100 words, `--max-length 16`", format!("exit 0, cut to 16 tokens; stderr `{err}`"));
    let (success, err, out) = toprt_run(&model, "threads0", ok, &["--threads", "0"]);
    assert!(success && out.len() == 1, "{err}");
    t.row("`--threads 0`", "exit 0: one thread per logical CPU");
    let many: String = (0..300).map(|i| format!("{{\"text\": \"{}\"}}\n", "more words ".repeat(1 + i % 20))).collect();
    let (success, err, out) = toprt_run(&model, "big", many.as_bytes(), &["--batch-size", "300"]);
    assert!(success && out.len() == 300, "{err}");
    let tokens: usize = out.iter().map(|o| o["input_ids"].as_array().unwrap().len()).sum();
    assert!(tokens > 2048);
    t.row(format!("one batch of 300 lines, {tokens} tokens (budget 2048)"), "exit 0: split into passes");
    t.print();
}
