//! The C types of the header: the status code and constants, the opaque handle types
//! and the plain structs, with the tables the header test compares with `include/toprt.h`.

use crate::session::SessionOptions;
use std::ffi::c_char;

/// Status code returned by every fallible function.
pub type toprt_status = i32;

/// Declares integer constants and a table of their names and values. The table is what
/// the header test compares with `include/toprt.h`.
macro_rules! c_constants {
    ($table:ident: $ty:ty { $($name:ident = $value:expr),* $(,)? }) => {
        $(pub const $name: $ty = $value;)*
        pub(super) const $table: &[(&str, i64)] = &[$((stringify!($name), $value as i64)),*];
    };
}

/// `TOPRT_ABI_VERSION`: bumped on any incompatible change of the C interface.
pub const TOPRT_ABI_VERSION: u32 = 2;
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

c_constants!(ISA: i32 { TOPRT_ISA_AUTO = 0, TOPRT_ISA_SCALAR = 1, TOPRT_ISA_AVX2 = 2, TOPRT_ISA_AVX512 = 3, TOPRT_ISA_PORTABLE = 4 });

c_constants!(PRECISION: i32 { TOPRT_PRECISION_F32 = 1, TOPRT_PRECISION_BF16 = 2, TOPRT_PRECISION_INT8 = 3 });

c_constants!(OUTPUT: u32 { TOPRT_OUTPUT_LOGITS = 1, TOPRT_OUTPUT_EMBEDDING = 2, TOPRT_OUTPUT_HIDDEN_STATES = 4 });

c_constants!(PRUNE: i32 { TOPRT_PRUNE_SESSION = 0, TOPRT_PRUNE_ON = 1, TOPRT_PRUNE_OFF = 2 });

c_constants!(INPUT_KIND: u32 { TOPRT_INPUT_TEXT = 1, TOPRT_INPUT_PAIR = 2, TOPRT_INPUT_IDS = 3 });

/// Most worker threads a session may ask for.
pub(super) const MAX_THREADS: u32 = SessionOptions::MAX_THREADS as u32;
/// Largest token budget a session may ask for (see [`SessionOptions::MAX_TOKENS`]).
pub(super) const MAX_TOKENS: usize = SessionOptions::MAX_TOKENS;

/// Every constant of the header, by name (for the header test).
pub fn constants() -> Vec<(&'static str, i64)> {
    let mut all = vec![("TOPRT_ABI_VERSION", TOPRT_ABI_VERSION as i64), ("TOPRT_NUL_TERMINATED", -1)];
    for table in [STATUS, ISA, PRECISION, OUTPUT, PRUNE, INPUT_KIND] {
        all.extend_from_slice(table);
    }
    all
}

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
    pub precision: i32,
    pub num_f32_linears: usize,
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
    pub linear_precision: i32,
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
            precision,
            num_f32_linears,
        }),
        layout!(toprt_session_options { threads, truncate, max_tokens, max_length, prune_enabled, keep_scale, isa }),
        layout!(toprt_session_info {
            threads,
            max_length,
            max_tokens,
            isa,
            prune_enabled,
            keep_scale,
            linear_precision
        }),
        layout!(toprt_run_options { outputs, prune, keep_scale }),
        layout!(toprt_input { kind, text, text_len, text_pair, text_pair_len, input_ids, token_type_ids, num_ids }),
    ]
}
