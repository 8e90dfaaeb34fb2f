//! The C interface of `libtoprt.a` / `libtoprt.so`, declared in `include/toprt.h`.
//! The rules (errors, buffers, handles, threads) are written out at the top of the header;
//! this module is their implementation.
//!
//! Design choices:
//!
//! * **Handles are table indices, not addresses.** A `toprt_model *` holds
//!   `(slot + 1) << (usize::BITS / 2) | generation`. The slot lives in one global table
//!   guarded by a mutex. Freeing a handle bumps its slot's generation, so a freed handle,
//!   a made-up value, or a handle of another kind is recognised, and no memory is ever
//!   read through it. A `Box` address with a magic field could not give that guarantee:
//!   reading the magic of a freed object is itself undefined behaviour.
//! * **Sessions sit behind a `Mutex`, locked with `try_lock`.** "One thread at a time"
//!   is therefore checked: a second concurrent call gets `TOPRT_ERR_BUSY`. The lock is
//!   taken while the table lock is held, so no `toprt_session_free` can get in between.
//!   A panic during a run poisons the mutex, and that session then reports
//!   `TOPRT_ERR_INTERNAL`.
//! * **Every entry point runs its body inside [`entry`]**, which turns `Err` into a status
//!   code plus a thread-local message, and a panic into `TOPRT_ERR_INTERNAL`. Each body
//!   checks all of its arguments before it writes anything. Outputs are written last,
//!   once nothing else can fail.
//!
//! `tests/tests/capi.rs` checks the header against this file: function names and argument
//! counts, constants (via [`constants`]) and struct layouts (via [`struct_layouts`]).

#![allow(non_camel_case_types)]

use crate::error::Error;
use crate::model::Model;
use crate::prune::PruneControl;
use crate::session::{Input, Outputs, SequenceOutput, Session, SessionOptions};
use std::cell::RefCell;
use std::ffi::{c_char, c_void, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, TryLockError};
use toprt_format::{Pooling, Task};
use toprt_kernels::Isa;

/// Status code returned by every fallible function.
pub type toprt_status = i32;

/// Declares integer constants and a table of their names and values. The table is what
/// the header test compares with `include/toprt.h`.
macro_rules! c_constants {
    ($table:ident: $ty:ty { $($name:ident = $value:expr),* $(,)? }) => {
        $(pub const $name: $ty = $value;)*
        const $table: &[(&str, i64)] = &[$((stringify!($name), $value as i64)),*];
    };
}

/// `TOPRT_ABI_VERSION`: bumped on any incompatible change of the C interface.
pub const TOPRT_ABI_VERSION: u32 = 1;
/// `TOPRT_NUL_TERMINATED`: a text length meaning "up to the NUL byte".
pub const TOPRT_NUL_TERMINATED: usize = usize::MAX;

c_constants!(STATUS: toprt_status {
    TOPRT_OK = 0,
    TOPRT_ERR_NULL_POINTER = 1,
    TOPRT_ERR_INVALID_ARGUMENT = 2,
    TOPRT_ERR_INVALID_UTF8 = 3,
    TOPRT_ERR_BUFFER_TOO_SMALL = 4,
    TOPRT_ERR_BAD_HANDLE = 5,
    TOPRT_ERR_BUSY = 6,
    TOPRT_ERR_IO = 7,
    TOPRT_ERR_MODEL = 8,
    TOPRT_ERR_INPUT = 9,
    TOPRT_ERR_UNAVAILABLE = 10,
    TOPRT_ERR_OUT_OF_RANGE = 11,
    TOPRT_ERR_UNSUPPORTED = 12,
    TOPRT_ERR_INTERNAL = 13,
});

c_constants!(ISA: i32 { TOPRT_ISA_AUTO = 0, TOPRT_ISA_SCALAR = 1, TOPRT_ISA_AVX2 = 2, TOPRT_ISA_AVX512 = 3 });

c_constants!(OUTPUT: u32 { TOPRT_OUTPUT_LOGITS = 1, TOPRT_OUTPUT_EMBEDDING = 2, TOPRT_OUTPUT_HIDDEN_STATES = 4 });

c_constants!(PRUNE: i32 { TOPRT_PRUNE_SESSION = 0, TOPRT_PRUNE_ON = 1, TOPRT_PRUNE_OFF = 2 });

c_constants!(INPUT_KIND: u32 { TOPRT_INPUT_TEXT = 1, TOPRT_INPUT_PAIR = 2, TOPRT_INPUT_IDS = 3 });

/// Most worker threads a session may ask for.
const MAX_THREADS: u32 = SessionOptions::MAX_THREADS as u32;
/// Largest token budget a session may ask for (see [`SessionOptions::MAX_TOKENS`]).
const MAX_TOKENS: usize = SessionOptions::MAX_TOKENS;

/// Every constant of the header, by name (for the header test).
pub fn constants() -> Vec<(&'static str, i64)> {
    let mut all = vec![("TOPRT_ABI_VERSION", TOPRT_ABI_VERSION as i64), ("TOPRT_NUL_TERMINATED", -1)];
    for table in [STATUS, ISA, OUTPUT, PRUNE, INPUT_KIND] {
        all.extend_from_slice(table);
    }
    all
}

// ---- handle and plain types --------------------------------------------------------

/// Opaque handle type; its value is a table index plus a generation, never an address.
#[repr(C)]
pub struct toprt_model {
    _opaque: [u8; 0],
}

/// Opaque handle type; see [`toprt_model`].
#[repr(C)]
pub struct toprt_session {
    _opaque: [u8; 0],
}

/// Opaque handle type; see [`toprt_model`].
#[repr(C)]
pub struct toprt_result {
    _opaque: [u8; 0],
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct toprt_model_info {
    pub hidden_size: usize,
    pub num_layers: usize,
    pub num_heads: usize,
    pub vocab_size: usize,
    pub max_length: usize,
    pub num_labels: usize,
    pub num_keep_rules: usize,
    pub has_tokenizer: i32,
    pub has_logits: i32,
    pub has_embedding: i32,
}

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct toprt_session_options {
    pub threads: u32,
    pub truncate: i32,
    pub max_tokens: usize,
    pub max_length: usize,
    pub prune_enabled: i32,
    pub keep_scale: f32,
    pub isa: i32,
}

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct toprt_session_info {
    pub threads: usize,
    pub max_length: usize,
    pub max_tokens: usize,
    pub isa: i32,
    pub prune_enabled: i32,
    pub keep_scale: f32,
}

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct toprt_run_options {
    pub outputs: u32,
    pub prune: i32,
    pub keep_scale: f32,
}

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct toprt_input {
    pub kind: u32,
    pub text: *const c_char,
    pub text_len: usize,
    pub text_pair: *const c_char,
    pub text_pair_len: usize,
    pub input_ids: *const u32,
    pub token_type_ids: *const u32,
    pub num_ids: usize,
}

/// Size and field offsets of one `#[repr(C)]` struct, as Rust lays it out.
#[derive(Clone, Debug)]
pub struct StructLayout {
    pub name: &'static str,
    pub size: usize,
    /// `(field, offset)` in declaration order.
    pub fields: Vec<(&'static str, usize)>,
}

/// The [`StructLayout`] of a `#[repr(C)]` struct. The destructuring pattern fails to
/// compile when a field is missing from the list.
macro_rules! layout {
    ($t:ident { $($f:ident),* $(,)? }) => {{
        #[allow(dead_code)]
        fn all_fields_listed(x: $t) {
            let $t { $($f: _),* } = x;
        }
        StructLayout {
            name: stringify!($t),
            size: std::mem::size_of::<$t>(),
            fields: vec![$((stringify!($f), std::mem::offset_of!($t, $f))),*],
        }
    }};
}

/// Size and field offsets of every struct of the header (for the header test).
pub fn struct_layouts() -> Vec<StructLayout> {
    vec![
        layout!(toprt_model_info {
            hidden_size,
            num_layers,
            num_heads,
            vocab_size,
            max_length,
            num_labels,
            num_keep_rules,
            has_tokenizer,
            has_logits,
            has_embedding,
        }),
        layout!(toprt_session_options { threads, truncate, max_tokens, max_length, prune_enabled, keep_scale, isa }),
        layout!(toprt_session_info { threads, max_length, max_tokens, isa, prune_enabled, keep_scale }),
        layout!(toprt_run_options { outputs, prune, keep_scale }),
        layout!(toprt_input { kind, text, text_len, text_pair, text_pair_len, input_ids, token_type_ids, num_ids }),
    ]
}

// ---- errors ------------------------------------------------------------------------

/// An error on its way to the caller: a status code and the message for
/// `toprt_last_error`.
#[derive(Debug)]
struct CError {
    code: toprt_status,
    msg: String,
}

impl CError {
    fn new(code: toprt_status, msg: impl Into<String>) -> CError {
        CError { code, msg: msg.into() }
    }
}

type CResult<T> = Result<T, CError>;

fn null(name: &str) -> CError {
    CError::new(TOPRT_ERR_NULL_POINTER, format!("{name} is NULL"))
}

fn invalid(msg: impl Into<String>) -> CError {
    CError::new(TOPRT_ERR_INVALID_ARGUMENT, msg)
}

/// Maps an engine error to its status code; the message is the error's own.
fn engine_error(e: Error) -> CError {
    let code = match &e {
        Error::Io { .. } => TOPRT_ERR_IO,
        Error::Format(_) | Error::Version { .. } | Error::Checksum(_) | Error::Tensor { .. } => TOPRT_ERR_MODEL,
        Error::Isa(_) => TOPRT_ERR_UNSUPPORTED,
        Error::Tokenizer(_)
        | Error::NoTokenizer
        | Error::Input { .. }
        | Error::EmptyBatch
        | Error::EmptySequence { .. }
        | Error::TooLong { .. }
        | Error::TokenId { .. }
        | Error::TokenTypeId { .. }
        | Error::TypeIdsLength { .. } => TOPRT_ERR_INPUT,
        Error::Options(_) | Error::OverBudget { .. } => TOPRT_ERR_INVALID_ARGUMENT,
    };
    CError::new(code, e.to_string())
}

thread_local! {
    static LAST_ERROR: RefCell<Option<CString>> = const { RefCell::new(None) };
}

fn set_last_error(msg: &str) {
    // After the replacement there is no NUL byte left, so `CString::new` cannot fail.
    let c = CString::new(msg.replace('\0', "\\0")).unwrap_or_default();
    // `try_with` fails only while this thread's locals are being destroyed.
    let _ = LAST_ERROR.try_with(|e| {
        if let Ok(mut slot) = e.try_borrow_mut() {
            *slot = Some(c);
        }
    });
}

/// Runs the body of an entry point: `Ok` → `TOPRT_OK`; `Err` → its code, with the
/// message stored for `toprt_last_error`; a panic → `TOPRT_ERR_INTERNAL`.
fn entry(body: impl FnOnce() -> CResult<()>) -> toprt_status {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => TOPRT_OK,
        Ok(Err(e)) => {
            set_last_error(&e.msg);
            e.code
        }
        Err(payload) => {
            let what = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic without a message".into());
            set_last_error(&format!("internal error in toprt (a bug; please report it): {what}"));
            TOPRT_ERR_INTERNAL
        }
    }
}

// ---- pointer checks ----------------------------------------------------------------

/// Checks that a pointer the library will read or write is non-NULL and aligned.
fn check_ptr<T>(p: *const T, name: &str) -> CResult<()> {
    if p.is_null() {
        Err(null(name))
    } else if !p.is_aligned() {
        Err(invalid(format!("{name} ({p:p}) is not aligned to {} bytes", std::mem::align_of::<T>())))
    } else {
        Ok(())
    }
}

/// A caller array as a slice, after checking the pointer and the byte size.
///
/// # Safety
/// When `p` is non-NULL and aligned, it must point to `len` initialised `T`s that stay
/// valid and unmodified for `'a`.
unsafe fn slice_in<'a, T>(p: *const T, len: usize, name: &str) -> CResult<&'a [T]> {
    check_ptr(p, name)?;
    if len.checked_mul(std::mem::size_of::<T>()).is_none_or(|bytes| bytes > isize::MAX as usize) {
        return Err(invalid(format!("{name}: a length of {len} elements is larger than any array")));
    }
    // SAFETY: non-NULL, aligned, byte size within isize::MAX (checked above); the caller
    // guarantees `len` readable elements.
    Ok(unsafe { std::slice::from_raw_parts(p, len) })
}

/// A text argument: `len` bytes, or up to the NUL when `len == TOPRT_NUL_TERMINATED`.
///
/// # Safety
/// As [`slice_in`], or a NUL-terminated string when `len == TOPRT_NUL_TERMINATED`.
unsafe fn text_in<'a>(p: *const c_char, len: usize, name: &str) -> CResult<&'a str> {
    let bytes = if len == TOPRT_NUL_TERMINATED {
        check_ptr(p, name)?;
        // SAFETY: non-NULL; the caller guarantees a NUL-terminated string.
        unsafe { CStr::from_ptr(p) }.to_bytes()
    } else {
        // SAFETY: forwarded to the caller.
        unsafe { slice_in(p.cast::<u8>(), len, name)? }
    };
    std::str::from_utf8(bytes).map_err(|e| {
        CError::new(
            TOPRT_ERR_INVALID_UTF8,
            format!(
                "{name} is not valid UTF-8: invalid byte 0x{:02x} at offset {}",
                bytes[e.valid_up_to()],
                e.valid_up_to()
            ),
        )
    })
}

/// Writes one value through a checked out-pointer.
///
/// # Safety
/// `p` was checked with [`check_ptr`] and points to writable memory for a `T`.
unsafe fn put<T>(p: *mut T, v: T) {
    // SAFETY: see the function contract.
    unsafe { p.write(v) }
}

/// The `(buf, cap, len)` protocol of the header: copies `src` into `buf` if it fits;
/// `buf == NULL && cap == 0` is a size query; on a short buffer only `*len` is written.
///
/// # Safety
/// `len` is NULL or writable; `buf` is NULL or points to `cap` writable `T`s.
unsafe fn copy_out<T: Copy>(src: &[T], buf: *mut T, cap: usize, len: *mut usize, what: &str) -> CResult<()> {
    check_ptr(len, "len")?;
    if buf.is_null() {
        if cap != 0 {
            return Err(null(&format!("buf (with cap {cap})")));
        }
        // SAFETY: checked above.
        unsafe { put(len, src.len()) };
        return Ok(());
    }
    check_ptr(buf, "buf")?;
    if cap < src.len() {
        // SAFETY: checked above.
        unsafe { put(len, src.len()) };
        return Err(CError::new(
            TOPRT_ERR_BUFFER_TOO_SMALL,
            format!("{what} needs {} elements but cap is {cap}", src.len()),
        ));
    }
    // SAFETY: `buf` holds at least `cap >= src.len()` elements (caller contract) and
    // cannot overlap `src`, which is library-owned.
    unsafe {
        std::ptr::copy_nonoverlapping(src.as_ptr(), buf, src.len());
        put(len, src.len());
    }
    Ok(())
}

// ---- the handle table --------------------------------------------------------------

/// What a handle refers to.
enum Object {
    Model(Model),
    Session(Arc<Mutex<Session>>),
    Result(Arc<ResultSet>),
}

/// The outputs of one run, and what was asked for (to explain a missing output).
struct ResultSet {
    seqs: Vec<SequenceOutput>,
    want: Outputs,
}

impl Object {
    fn kind(&self) -> &'static str {
        match self {
            Object::Model(_) => "toprt_model",
            Object::Session(_) => "toprt_session",
            Object::Result(_) => "toprt_result",
        }
    }
}

struct Slot {
    generation: usize,
    object: Option<Object>,
}

struct Table {
    slots: Vec<Slot>,
    free: Vec<usize>,
    /// Objects in the table. When the last one goes, both arrays are released, so a
    /// program that frees every handle leaves no toprt memory behind (valgrind shows
    /// any forgotten handle).
    live: usize,
    /// Generation of the next new slot. It stays above every generation issued before
    /// the arrays were last released, so older handles stay dead.
    fresh_generation: usize,
}

static TABLE: Mutex<Table> = Mutex::new(Table::new());

/// The low half of a handle is the generation, the high half the slot index plus one.
const HALF: u32 = usize::BITS / 2;
const GENERATION_MASK: usize = (1 << HALF) - 1;

fn table() -> MutexGuard<'static, Table> {
    // Every table method leaves the table consistent before it can panic, so a
    // poisoned lock holds a usable table.
    TABLE.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The generation after `g`, skipping 0 (so no handle is ever 0 = NULL).
fn next_generation(g: usize) -> usize {
    if g >= GENERATION_MASK {
        1
    } else {
        g + 1
    }
}

impl Table {
    const fn new() -> Table {
        Table { slots: Vec::new(), free: Vec::new(), live: 0, fresh_generation: 1 }
    }

    fn insert(&mut self, object: Object) -> CResult<usize> {
        let index = match self.free.pop() {
            Some(i) => i,
            None if self.slots.len() < GENERATION_MASK - 1 => {
                self.slots.push(Slot { generation: self.fresh_generation, object: None });
                self.slots.len() - 1
            }
            None => return Err(invalid(format!("too many live toprt handles ({}); free some", self.slots.len()))),
        };
        let slot = &mut self.slots[index];
        slot.object = Some(object);
        self.live += 1;
        Ok(((index + 1) << HALF) | slot.generation)
    }

    fn slot_of(&self, handle: usize) -> Option<usize> {
        let index = (handle >> HALF).checked_sub(1)?;
        let slot = self.slots.get(index)?;
        (slot.generation == handle & GENERATION_MASK && slot.object.is_some()).then_some(index)
    }

    /// The live object of `handle`.
    fn find(&self, handle: usize, name: &str, kind: &str) -> CResult<&Object> {
        match self.slot_of(handle) {
            Some(i) => Ok(self.slots[i].object.as_ref().expect("slot_of checks the object is live")),
            None => Err(stale(handle, name, kind)),
        }
    }

    /// Takes the object out of its slot; the slot's generation moves on, so `handle` is
    /// dead from now on.
    fn remove(&mut self, handle: usize, name: &str, kind: &str) -> CResult<Object> {
        let i = self.slot_of(handle).ok_or_else(|| stale(handle, name, kind))?;
        let slot = &mut self.slots[i];
        slot.generation = next_generation(slot.generation);
        let object = slot.object.take().expect("slot_of checks the object is live");
        self.free.push(i);
        self.live -= 1;
        if self.live == 0 {
            // Every slot's generation has moved past the ones it issued.
            let top = self.slots.iter().map(|s| s.generation).max().unwrap_or(self.fresh_generation);
            self.fresh_generation = top.max(self.fresh_generation);
            self.slots = Vec::new();
            self.free = Vec::new();
        }
        Ok(object)
    }
}

fn stale(handle: usize, name: &str, kind: &str) -> CError {
    CError::new(
        TOPRT_ERR_BAD_HANDLE,
        format!("{name} ({handle:#x}) is not a live {kind}: it was already freed, or it was never returned by toprt"),
    )
}

fn wrong_kind(name: &str, found: &Object, kind: &str) -> CError {
    CError::new(TOPRT_ERR_BAD_HANDLE, format!("{name} is a {} handle, not a {kind}", found.kind()))
}

/// The model behind a handle (a cheap clone: it is an `Arc`).
fn model_of(h: *const toprt_model, name: &str) -> CResult<Model> {
    if h.is_null() {
        return Err(null(name));
    }
    match table().find(h.addr(), name, "toprt_model")? {
        Object::Model(m) => Ok(m.clone()),
        other => Err(wrong_kind(name, other, "toprt_model")),
    }
}

/// The result set behind a handle.
fn result_of(h: *const toprt_result) -> CResult<Arc<ResultSet>> {
    if h.is_null() {
        return Err(null("result"));
    }
    match table().find(h.addr(), "result", "toprt_result")? {
        Object::Result(r) => Ok(Arc::clone(r)),
        other => Err(wrong_kind("result", other, "toprt_result")),
    }
}

/// Runs `f` on the session behind a handle, holding the session's lock. The lock is
/// taken while the table is locked, so the session cannot be freed in between.
fn with_session<R>(h: *const toprt_session, f: impl FnOnce(&mut Session) -> CResult<R>) -> CResult<R> {
    if h.is_null() {
        return Err(null("session"));
    }
    let t = table();
    let arc = match t.find(h.addr(), "session", "toprt_session")? {
        Object::Session(s) => Arc::clone(s),
        other => return Err(wrong_kind("session", other, "toprt_session")),
    };
    let mut guard = match arc.try_lock() {
        Ok(g) => g,
        Err(TryLockError::WouldBlock) => return Err(busy()),
        Err(TryLockError::Poisoned(_)) => {
            return Err(CError::new(
                TOPRT_ERR_INTERNAL,
                "session is unusable after an internal error in an earlier call; free it and create a new one",
            ));
        }
    };
    drop(t);
    f(&mut guard)
}

fn busy() -> CError {
    CError::new(TOPRT_ERR_BUSY, "session is in use by another thread (a session must be used by one thread at a time)")
}

/// Frees one handle of the expected kind; NULL is a no-op.
fn free_handle(h: usize, name: &str, kind: &str) -> CResult<()> {
    if h == 0 {
        return Ok(());
    }
    let mut t = table();
    let found = t.find(h, name, kind)?;
    if found.kind() != kind {
        return Err(wrong_kind(name, found, kind));
    }
    if let Object::Session(s) = found {
        if matches!(s.try_lock(), Err(TryLockError::WouldBlock)) {
            return Err(busy());
        }
    }
    let object = t.remove(h, name, kind)?;
    drop(t);
    // Dropped outside the table lock: a session joins its worker threads here.
    drop(object);
    Ok(())
}

fn new_handle<T>(object: Object) -> CResult<*mut T> {
    table().insert(object).map(std::ptr::without_provenance_mut)
}

// ---- library -----------------------------------------------------------------------

#[no_mangle]
pub extern "C" fn toprt_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}

#[no_mangle]
pub extern "C" fn toprt_abi_version() -> u32 {
    TOPRT_ABI_VERSION
}

#[no_mangle]
pub extern "C" fn toprt_status_name(status: toprt_status) -> *const c_char {
    macro_rules! names {
        ($($name:ident),*) => {
            match status {
                $($name => concat!(stringify!($name), "\0"),)*
                _ => "TOPRT_UNKNOWN_STATUS\0",
            }
        };
    }
    let name: &'static str = names!(
        TOPRT_OK,
        TOPRT_ERR_NULL_POINTER,
        TOPRT_ERR_INVALID_ARGUMENT,
        TOPRT_ERR_INVALID_UTF8,
        TOPRT_ERR_BUFFER_TOO_SMALL,
        TOPRT_ERR_BAD_HANDLE,
        TOPRT_ERR_BUSY,
        TOPRT_ERR_IO,
        TOPRT_ERR_MODEL,
        TOPRT_ERR_INPUT,
        TOPRT_ERR_UNAVAILABLE,
        TOPRT_ERR_OUT_OF_RANGE,
        TOPRT_ERR_UNSUPPORTED,
        TOPRT_ERR_INTERNAL
    );
    name.as_ptr().cast()
}

#[no_mangle]
pub extern "C" fn toprt_last_error() -> *const c_char {
    let stored =
        LAST_ERROR.try_with(|e| e.try_borrow().ok().and_then(|slot| slot.as_ref().map(|c| c.as_ptr()))).ok().flatten();
    // The CString lives in this thread's slot until the next failing call replaces it.
    stored.unwrap_or(c"".as_ptr())
}

// ---- models ------------------------------------------------------------------------

#[cfg(unix)]
fn path_of(bytes: &[u8]) -> CResult<std::path::PathBuf> {
    use std::os::unix::ffi::OsStrExt;
    Ok(std::ffi::OsStr::from_bytes(bytes).into())
}

#[cfg(not(unix))]
fn path_of(bytes: &[u8]) -> CResult<std::path::PathBuf> {
    std::str::from_utf8(bytes).map(Into::into).map_err(|e| {
        CError::new(TOPRT_ERR_INVALID_UTF8, format!("path is not valid UTF-8 at offset {}", e.valid_up_to()))
    })
}

/// Errors of opening a model: anything but I/O means the file is bad.
fn open_error(e: Error) -> CError {
    match e {
        Error::Io { .. } => engine_error(e),
        _ => CError::new(TOPRT_ERR_MODEL, e.to_string()),
    }
}

/// # Safety
/// `path` is NULL or a NUL-terminated string; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn toprt_model_open(path: *const c_char, out: *mut *mut toprt_model) -> toprt_status {
    entry(|| {
        check_ptr(path, "path")?;
        check_ptr(out, "out")?;
        // SAFETY: non-NULL; the caller guarantees a NUL-terminated string.
        let path = path_of(unsafe { CStr::from_ptr(path) }.to_bytes())?;
        let model = Model::open(&path).map_err(open_error)?;
        let h = new_handle(Object::Model(model))?;
        // SAFETY: checked above.
        unsafe { put(out, h) };
        Ok(())
    })
}

/// # Safety
/// `data` is NULL or points to `len` readable bytes; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn toprt_model_open_bytes(
    data: *const c_void,
    len: usize,
    out: *mut *mut toprt_model,
) -> toprt_status {
    entry(|| {
        // SAFETY: forwarded to the caller.
        let bytes = unsafe { slice_in(data.cast::<u8>(), len, "data")? };
        check_ptr(out, "out")?;
        let model = Model::from_bytes(bytes, &Default::default()).map_err(open_error)?;
        let h = new_handle(Object::Model(model))?;
        // SAFETY: checked above.
        unsafe { put(out, h) };
        Ok(())
    })
}

/// # Safety
/// `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn toprt_model_get_info(model: *const toprt_model, out: *mut toprt_model_info) -> toprt_status {
    entry(|| {
        let model = model_of(model, "model")?;
        check_ptr(out, "out")?;
        let m = model.manifest();
        let (c, h) = (&m.model, &m.head);
        let logits = h.task == Task::Classification;
        let info = toprt_model_info {
            hidden_size: c.hidden_size,
            num_layers: c.num_layers,
            num_heads: c.num_heads,
            vocab_size: c.vocab_size,
            max_length: model.max_length(),
            num_labels: if logits { h.num_labels } else { 0 },
            num_keep_rules: m.keep_rules.len(),
            has_tokenizer: model.has_tokenizer() as i32,
            has_logits: logits as i32,
            has_embedding: (h.pooling != Pooling::None) as i32,
        };
        // SAFETY: checked above.
        unsafe { put(out, info) };
        Ok(())
    })
}

/// # Safety
/// `buf` is NULL or holds `cap` writable bytes; `len` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn toprt_model_label(
    model: *const toprt_model,
    index: usize,
    buf: *mut c_char,
    cap: usize,
    len: *mut usize,
) -> toprt_status {
    entry(|| {
        let model = model_of(model, "model")?;
        let labels = &model.manifest().head.id2label;
        let label = labels.get(index).ok_or_else(|| {
            CError::new(
                TOPRT_ERR_OUT_OF_RANGE,
                format!("label index {index} is out of range: the model file names {} labels", labels.len()),
            )
        })?;
        let text = CString::new(label.replace('\0', "")).unwrap_or_default();
        // SAFETY: forwarded to the caller.
        unsafe { copy_out(text.as_bytes_with_nul(), buf.cast::<u8>(), cap, len, "the label") }
    })
}

/// # Safety
/// `model` is NULL or a value returned by toprt (anything else is detected).
#[no_mangle]
pub unsafe extern "C" fn toprt_model_free(model: *mut toprt_model) -> toprt_status {
    entry(|| free_handle(model.addr(), "model", "toprt_model"))
}

// ---- sessions ----------------------------------------------------------------------

fn default_session_options() -> toprt_session_options {
    let d = SessionOptions::default();
    toprt_session_options {
        threads: 0,
        truncate: d.truncate as i32,
        max_tokens: d.max_tokens,
        max_length: 0,
        prune_enabled: d.prune.enabled as i32,
        keep_scale: d.prune.keep_scale,
        isa: TOPRT_ISA_AUTO,
    }
}

fn isa_of(code: i32) -> CResult<Option<Isa>> {
    match code {
        TOPRT_ISA_AUTO => Ok(None),
        TOPRT_ISA_SCALAR => Ok(Some(Isa::Scalar)),
        TOPRT_ISA_AVX2 => Ok(Some(Isa::Avx2)),
        TOPRT_ISA_AVX512 => Ok(Some(Isa::Avx512)),
        other => Err(invalid(format!("options->isa is {other}: expected a TOPRT_ISA_* value (0 to 3)"))),
    }
}

fn code_of(isa: Isa) -> i32 {
    match isa {
        Isa::Scalar => TOPRT_ISA_SCALAR,
        Isa::Avx2 => TOPRT_ISA_AVX2,
        Isa::Avx512 => TOPRT_ISA_AVX512,
    }
}

fn session_options(o: &toprt_session_options) -> CResult<SessionOptions> {
    if o.threads > MAX_THREADS {
        return Err(invalid(format!("options->threads is {}: at most {MAX_THREADS}", o.threads)));
    }
    if o.max_tokens > MAX_TOKENS {
        return Err(invalid(format!("options->max_tokens is {}: at most {MAX_TOKENS}", o.max_tokens)));
    }
    let prune = PruneControl { enabled: o.prune_enabled != 0, keep_scale: o.keep_scale };
    prune.validate().map_err(|e| invalid(format!("options->keep_scale: {e}")))?;
    Ok(SessionOptions {
        threads: o.threads as usize,
        max_tokens: if o.max_tokens == 0 { SessionOptions::default().max_tokens } else { o.max_tokens },
        max_length: (o.max_length != 0).then_some(o.max_length),
        truncate: o.truncate != 0,
        isa: isa_of(o.isa)?,
        prune,
    })
}

/// # Safety
/// `options` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn toprt_session_options_init(options: *mut toprt_session_options) -> toprt_status {
    entry(|| {
        check_ptr(options, "options")?;
        // SAFETY: checked above.
        unsafe { put(options, default_session_options()) };
        Ok(())
    })
}

/// # Safety
/// `options` is NULL or readable; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn toprt_session_create(
    model: *const toprt_model,
    options: *const toprt_session_options,
    out: *mut *mut toprt_session,
) -> toprt_status {
    entry(|| {
        let model = model_of(model, "model")?;
        let opts = if options.is_null() {
            SessionOptions::default()
        } else {
            check_ptr(options, "options")?;
            // SAFETY: non-NULL and aligned; the caller guarantees a readable struct.
            session_options(unsafe { &*options })?
        };
        check_ptr(out, "out")?;
        let session = Session::new(&model, &opts).map_err(|e| match e {
            // The tokenizer refuses a max_length shorter than its special tokens.
            Error::Tokenizer(msg) => invalid(format!("options->max_length: {msg}")),
            e => engine_error(e),
        })?;
        let h = new_handle(Object::Session(Arc::new(Mutex::new(session))))?;
        // SAFETY: checked above.
        unsafe { put(out, h) };
        Ok(())
    })
}

/// # Safety
/// `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn toprt_session_get_info(
    session: *const toprt_session,
    out: *mut toprt_session_info,
) -> toprt_status {
    entry(|| {
        check_ptr(out, "out")?;
        let info = with_session(session, |s| {
            let p = s.prune_control();
            Ok(toprt_session_info {
                threads: s.threads(),
                max_length: s.max_length(),
                max_tokens: s.max_tokens(),
                isa: code_of(s.isa()),
                prune_enabled: p.enabled as i32,
                keep_scale: p.keep_scale,
            })
        })?;
        // SAFETY: checked above.
        unsafe { put(out, info) };
        Ok(())
    })
}

/// # Safety
/// `session` is NULL or a value returned by toprt (anything else is detected).
#[no_mangle]
pub unsafe extern "C" fn toprt_session_set_prune(
    session: *mut toprt_session,
    enabled: i32,
    keep_scale: f32,
) -> toprt_status {
    entry(|| {
        let ctl = PruneControl { enabled: enabled != 0, keep_scale };
        ctl.validate().map_err(|e| invalid(format!("keep_scale: {e}")))?;
        with_session(session, |s| s.set_prune_control(ctl).map_err(engine_error))
    })
}

/// # Safety
/// `options` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn toprt_run_options_init(options: *mut toprt_run_options) -> toprt_status {
    entry(|| {
        check_ptr(options, "options")?;
        let o = toprt_run_options {
            outputs: TOPRT_OUTPUT_LOGITS | TOPRT_OUTPUT_EMBEDDING,
            prune: TOPRT_PRUNE_SESSION,
            keep_scale: 1.0,
        };
        // SAFETY: checked above.
        unsafe { put(options, o) };
        Ok(())
    })
}

/// A checked run request: the outputs and the pruning override (`None`: the session's).
fn run_request(o: &toprt_run_options) -> CResult<(Outputs, Option<PruneControl>)> {
    let known = TOPRT_OUTPUT_LOGITS | TOPRT_OUTPUT_EMBEDDING | TOPRT_OUTPUT_HIDDEN_STATES;
    if o.outputs & !known != 0 {
        return Err(invalid(format!("options->outputs has unknown bits {:#x}", o.outputs & !known)));
    }
    let want = Outputs {
        logits: o.outputs & TOPRT_OUTPUT_LOGITS != 0,
        embedding: o.outputs & TOPRT_OUTPUT_EMBEDDING != 0,
        hidden_states: o.outputs & TOPRT_OUTPUT_HIDDEN_STATES != 0,
    };
    let ctl = match o.prune {
        TOPRT_PRUNE_SESSION => None,
        TOPRT_PRUNE_OFF => Some(PruneControl::DENSE),
        TOPRT_PRUNE_ON => {
            let ctl = PruneControl { enabled: true, keep_scale: o.keep_scale };
            ctl.validate().map_err(|e| invalid(format!("options->keep_scale: {e}")))?;
            Some(ctl)
        }
        other => return Err(invalid(format!("options->prune is {other}: expected a TOPRT_PRUNE_* value (0 to 2)"))),
    };
    Ok((want, ctl))
}

/// One C input as an engine input, with every pointer and text checked.
///
/// # Safety
/// The pointers of `r` that its kind uses are NULL or valid for their lengths.
unsafe fn input_of<'a>(i: usize, r: &'a toprt_input) -> CResult<Input<'a>> {
    let field = |f: &str| format!("inputs[{i}].{f}");
    match r.kind {
        // SAFETY: forwarded to the caller.
        TOPRT_INPUT_TEXT => Ok(Input::Text(unsafe { text_in(r.text, r.text_len, &field("text"))? })),
        TOPRT_INPUT_PAIR => {
            // SAFETY: forwarded to the caller.
            let text = unsafe { text_in(r.text, r.text_len, &field("text"))? };
            // SAFETY: forwarded to the caller.
            let pair = unsafe { text_in(r.text_pair, r.text_pair_len, &field("text_pair"))? };
            Ok(Input::Pair(text, pair))
        }
        TOPRT_INPUT_IDS => {
            // SAFETY: forwarded to the caller.
            let input_ids = unsafe { slice_in(r.input_ids, r.num_ids, &field("input_ids"))? };
            let token_type_ids = if r.token_type_ids.is_null() {
                None
            } else {
                // SAFETY: forwarded to the caller.
                Some(unsafe { slice_in(r.token_type_ids, r.num_ids, &field("token_type_ids"))? })
            };
            Ok(Input::Ids { input_ids, token_type_ids })
        }
        other => Err(invalid(format!(
            "{} is {other}: expected TOPRT_INPUT_TEXT (1), TOPRT_INPUT_PAIR (2) or TOPRT_INPUT_IDS (3)",
            field("kind")
        ))),
    }
}

/// # Safety
/// `inputs` is NULL or points to `num_inputs` readable structs whose pointers are valid
/// for their lengths; `options` is NULL or readable; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn toprt_session_run(
    session: *mut toprt_session,
    inputs: *const toprt_input,
    num_inputs: usize,
    options: *const toprt_run_options,
    out: *mut *mut toprt_result,
) -> toprt_status {
    entry(|| {
        let (want, ctl) = if options.is_null() {
            (Outputs::default(), None)
        } else {
            check_ptr(options, "options")?;
            // SAFETY: non-NULL and aligned; the caller guarantees a readable struct.
            run_request(unsafe { &*options })?
        };
        check_ptr(out, "out")?;
        // SAFETY: forwarded to the caller.
        let raw = unsafe { slice_in(inputs, num_inputs, "inputs")? };
        if raw.is_empty() {
            return Err(invalid("num_inputs is 0: nothing to run"));
        }
        // SAFETY: forwarded to the caller.
        let batch = raw.iter().enumerate().map(|(i, r)| unsafe { input_of(i, r) }).collect::<CResult<Vec<_>>>()?;
        let seqs = with_session(session, |s| {
            let ctl = ctl.unwrap_or(s.prune_control());
            s.run_with(&batch, want, ctl).map_err(engine_error)
        })?;
        let h = new_handle(Object::Result(Arc::new(ResultSet { seqs, want })))?;
        // SAFETY: checked above.
        unsafe { put(out, h) };
        Ok(())
    })
}

/// # Safety
/// `session` is NULL or a value returned by toprt (anything else is detected).
#[no_mangle]
pub unsafe extern "C" fn toprt_session_free(session: *mut toprt_session) -> toprt_status {
    entry(|| free_handle(session.addr(), "session", "toprt_session"))
}

// ---- results -----------------------------------------------------------------------

/// Sequence `index` of a result.
fn sequence(r: &ResultSet, index: usize) -> CResult<&SequenceOutput> {
    r.seqs.get(index).ok_or_else(|| {
        CError::new(
            TOPRT_ERR_OUT_OF_RANGE,
            format!("sequence index {index} is out of range: the result holds {} sequences", r.seqs.len()),
        )
    })
}

/// An optional float output of sequence `index`, or why it is missing.
fn float_output<'a>(
    r: &'a ResultSet,
    index: usize,
    requested: bool,
    flag: &str,
    value: impl FnOnce(&'a SequenceOutput) -> Option<&'a Vec<f32>>,
    missing: &str,
) -> CResult<&'a [f32]> {
    let seq = sequence(r, index)?;
    if !requested {
        return Err(CError::new(
            TOPRT_ERR_UNAVAILABLE,
            format!("{flag} was not requested in toprt_run_options.outputs"),
        ));
    }
    value(seq).map(Vec::as_slice).ok_or_else(|| CError::new(TOPRT_ERR_UNAVAILABLE, missing.to_string()))
}

/// # Safety
/// `count` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn toprt_result_count(result: *const toprt_result, count: *mut usize) -> toprt_status {
    entry(|| {
        let r = result_of(result)?;
        check_ptr(count, "count")?;
        // SAFETY: checked above.
        unsafe { put(count, r.seqs.len()) };
        Ok(())
    })
}

/// # Safety
/// `buf` is NULL or holds `cap` writable elements; `len` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn toprt_result_input_ids(
    result: *const toprt_result,
    index: usize,
    buf: *mut u32,
    cap: usize,
    len: *mut usize,
) -> toprt_status {
    entry(|| {
        let r = result_of(result)?;
        let seq = sequence(&r, index)?;
        // SAFETY: forwarded to the caller.
        unsafe { copy_out(&seq.input_ids, buf, cap, len, "input_ids") }
    })
}

/// # Safety
/// `buf` is NULL or holds `cap` writable elements; `len` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn toprt_result_token_type_ids(
    result: *const toprt_result,
    index: usize,
    buf: *mut u32,
    cap: usize,
    len: *mut usize,
) -> toprt_status {
    entry(|| {
        let r = result_of(result)?;
        let seq = sequence(&r, index)?;
        // SAFETY: forwarded to the caller.
        unsafe { copy_out(&seq.token_type_ids, buf, cap, len, "token_type_ids") }
    })
}

/// # Safety
/// `truncated` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn toprt_result_truncated(
    result: *const toprt_result,
    index: usize,
    truncated: *mut i32,
) -> toprt_status {
    entry(|| {
        let r = result_of(result)?;
        let seq = sequence(&r, index)?;
        check_ptr(truncated, "truncated")?;
        // SAFETY: checked above.
        unsafe { put(truncated, seq.truncated as i32) };
        Ok(())
    })
}

/// # Safety
/// `buf` is NULL or holds `cap` writable elements; `len` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn toprt_result_logits(
    result: *const toprt_result,
    index: usize,
    buf: *mut f32,
    cap: usize,
    len: *mut usize,
) -> toprt_status {
    entry(|| {
        let r = result_of(result)?;
        let logits = float_output(
            &r,
            index,
            r.want.logits,
            "TOPRT_OUTPUT_LOGITS",
            |s| s.logits.as_ref(),
            "no logits: the model has no classification head",
        )?;
        // SAFETY: forwarded to the caller.
        unsafe { copy_out(logits, buf, cap, len, "logits") }
    })
}

/// # Safety
/// `buf` is NULL or holds `cap` writable elements; `len` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn toprt_result_embedding(
    result: *const toprt_result,
    index: usize,
    buf: *mut f32,
    cap: usize,
    len: *mut usize,
) -> toprt_status {
    entry(|| {
        let r = result_of(result)?;
        let embedding = float_output(
            &r,
            index,
            r.want.embedding,
            "TOPRT_OUTPUT_EMBEDDING",
            |s| s.embedding.as_ref(),
            "no embedding: the model has no pooling method",
        )?;
        // SAFETY: forwarded to the caller.
        unsafe { copy_out(embedding, buf, cap, len, "embedding") }
    })
}

/// # Safety
/// `buf` is NULL or holds `cap` writable elements; `len` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn toprt_result_hidden_states(
    result: *const toprt_result,
    index: usize,
    buf: *mut f32,
    cap: usize,
    len: *mut usize,
) -> toprt_status {
    entry(|| {
        let r = result_of(result)?;
        let states = float_output(
            &r,
            index,
            r.want.hidden_states,
            "TOPRT_OUTPUT_HIDDEN_STATES",
            |s| s.last_hidden_state.as_ref(),
            "no hidden states",
        )?;
        // SAFETY: forwarded to the caller.
        unsafe { copy_out(states, buf, cap, len, "hidden states") }
    })
}

/// # Safety
/// `count` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn toprt_result_kept_locations(
    result: *const toprt_result,
    index: usize,
    count: *mut usize,
) -> toprt_status {
    entry(|| {
        let r = result_of(result)?;
        let seq = sequence(&r, index)?;
        check_ptr(count, "count")?;
        // SAFETY: checked above.
        unsafe { put(count, seq.kept.len()) };
        Ok(())
    })
}

/// # Safety
/// `layer` is NULL or writable; `buf` is NULL or holds `cap` writable elements; `len` is
/// NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn toprt_result_kept(
    result: *const toprt_result,
    index: usize,
    location: usize,
    layer: *mut u32,
    buf: *mut u32,
    cap: usize,
    len: *mut usize,
) -> toprt_status {
    entry(|| {
        let r = result_of(result)?;
        let seq = sequence(&r, index)?;
        let (at, kept) = seq.kept.get(location).ok_or_else(|| {
            CError::new(
                TOPRT_ERR_OUT_OF_RANGE,
                format!(
                    "location {location} is out of range: sequence {index} has {} pruning locations",
                    seq.kept.len()
                ),
            )
        })?;
        check_ptr(layer, "layer")?;
        // SAFETY: forwarded to the caller.
        unsafe { copy_out(kept, buf, cap, len, "the kept positions")? };
        // SAFETY: checked above. Layers are < num_layers, far below u32::MAX.
        unsafe { put(layer, *at as u32) };
        Ok(())
    })
}

/// # Safety
/// `result` is NULL or a value returned by toprt (anything else is detected).
#[no_mangle]
pub unsafe extern "C" fn toprt_result_free(result: *mut toprt_result) -> toprt_status {
    entry(|| free_handle(result.addr(), "result", "toprt_result"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn last_error() -> String {
        // SAFETY: toprt_last_error never returns NULL and the string is NUL-terminated.
        unsafe { CStr::from_ptr(toprt_last_error()) }.to_string_lossy().into_owned()
    }

    fn empty_result() -> *mut toprt_result {
        let set = ResultSet { seqs: vec![SequenceOutput::default()], want: Outputs::default() };
        new_handle(Object::Result(Arc::new(set))).unwrap()
    }

    #[test]
    fn a_panic_becomes_an_internal_error() {
        let code = entry(|| panic!("boom at the boundary"));
        assert_eq!(code, TOPRT_ERR_INTERNAL);
        let msg = last_error();
        assert!(msg.contains("internal error") && msg.contains("boom at the boundary"), "{msg}");
    }

    #[test]
    fn errors_are_per_thread_and_kept_by_successful_calls() {
        std::thread::spawn(|| {
            assert_eq!(last_error(), "");
            // SAFETY: NULL is a valid argument to check.
            assert_eq!(unsafe { toprt_result_count(std::ptr::null(), std::ptr::null_mut()) }, TOPRT_ERR_NULL_POINTER);
            assert_eq!(last_error(), "result is NULL");
            assert_eq!(toprt_abi_version(), TOPRT_ABI_VERSION);
            // SAFETY: a fresh result handle and a writable count.
            let mut n = 0;
            let r = empty_result();
            assert_eq!(unsafe { toprt_result_count(r, &mut n) }, TOPRT_OK);
            assert_eq!(n, 1);
            assert_eq!(last_error(), "result is NULL");
            // SAFETY: as above.
            assert_eq!(unsafe { toprt_result_free(r) }, TOPRT_OK);
        })
        .join()
        .unwrap();
    }

    #[test]
    fn freed_handles_are_detected_even_after_slot_reuse() {
        let a = empty_result();
        // SAFETY: handles are never dereferenced; every value is a valid argument.
        unsafe {
            assert_eq!(toprt_result_free(a), TOPRT_OK);
            assert_eq!(toprt_result_free(a), TOPRT_ERR_BAD_HANDLE);
            assert!(last_error().contains("already freed"), "{}", last_error());
            // Other tests run in parallel, so the slot may or may not be reused; either
            // way the old handle stays dead and the new one works.
            let b = empty_result();
            let mut n = 0;
            assert_eq!(toprt_result_count(a, &mut n), TOPRT_ERR_BAD_HANDLE);
            assert_eq!(toprt_result_count(b, &mut n), TOPRT_OK);
            // A result handle is not a model or a session.
            assert_eq!(toprt_model_free(b.cast()), TOPRT_ERR_BAD_HANDLE);
            assert!(last_error().contains("is a toprt_result handle, not a toprt_model"), "{}", last_error());
            assert_eq!(toprt_session_free(b.cast()), TOPRT_ERR_BAD_HANDLE);
            // Made-up values.
            for bogus in [1usize, 0x1000, usize::MAX, (7 << HALF) | 3] {
                assert_eq!(toprt_result_count(std::ptr::without_provenance(bogus), &mut n), TOPRT_ERR_BAD_HANDLE);
            }
            assert_eq!(toprt_result_free(b), TOPRT_OK);
            assert_eq!(toprt_result_free(std::ptr::null_mut()), TOPRT_OK);
        }
    }

    #[test]
    fn an_empty_table_releases_its_memory_and_old_handles_stay_dead() {
        let object = || Object::Result(Arc::new(ResultSet { seqs: Vec::new(), want: Outputs::default() }));
        let mut t = Table::new();
        let a = t.insert(object()).unwrap();
        let b = t.insert(object()).unwrap();
        assert!(t.remove(a, "a", "toprt_result").is_ok());
        assert!(t.find(a, "a", "toprt_result").is_err());
        assert!(t.remove(b, "b", "toprt_result").is_ok());
        assert_eq!((t.slots.capacity(), t.free.capacity(), t.live), (0, 0, 0));
        // New objects land in the same slots with newer generations.
        let c = t.insert(object()).unwrap();
        let d = t.insert(object()).unwrap();
        assert_eq!((a >> HALF, b >> HALF), (c >> HALF, d >> HALF));
        for old in [a, b] {
            let e = t.find(old, "old", "toprt_result").map(|_| ()).unwrap_err();
            assert_eq!(e.code, TOPRT_ERR_BAD_HANDLE);
        }
        assert!(t.find(c, "c", "toprt_result").is_ok() && t.find(d, "d", "toprt_result").is_ok());
    }

    #[test]
    fn status_names_cover_every_code() {
        for &(name, value) in STATUS {
            // SAFETY: static NUL-terminated strings.
            let got = unsafe { CStr::from_ptr(toprt_status_name(value as i32)) };
            assert_eq!(got.to_str().unwrap(), name);
        }
        // SAFETY: as above.
        let unknown = unsafe { CStr::from_ptr(toprt_status_name(-5)) };
        assert_eq!(unknown.to_str().unwrap(), "TOPRT_UNKNOWN_STATUS");
    }
}
