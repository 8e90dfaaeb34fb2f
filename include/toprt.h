/*
 * toprt.h: the C interface of toprt, a CPU inference runtime for BERT-family encoders
 * (BERT, RoBERTa, MiniLM) with token pruning.
 *
 * Link:   cc ... -I include  your.c  target/release/libtoprt.a  -lm -lpthread -ldl
 * or the shared library target/release/libtoprt.so. No BLAS, OpenMP or protobuf.
 * See docs/C_API.md.
 *
 * The Rust side is engine/src/capi/; tests/tests/capi.rs keeps the two in sync
 * (names, argument counts, constants and struct layouts).
 *
 * ---------------------------------------------------------------------------------
 * Rules
 *
 * Status and errors. Every function that can fail returns a toprt_status: TOPRT_OK (0)
 * or an error code. On error, toprt_last_error() returns a message for this thread that
 * names the argument, input or file at fault. The message stays valid until the next
 * failing toprt call on the same thread; successful calls leave it as it was.
 *
 * Outputs. Results go through out-parameters. On error, no out-parameter is written,
 * with one exception: on TOPRT_ERR_BUFFER_TOO_SMALL, *len receives the required size.
 * A function never writes part of an output.
 *
 * Caller buffers. The copy functions take (buf, cap, len), with cap counted in
 * elements. They write at most cap elements to buf and set *len to the element count.
 * If cap is too small they write nothing to buf, set *len to the required count and
 * return TOPRT_ERR_BUFFER_TOO_SMALL. buf == NULL with cap == 0 is a size query: it sets
 * *len and returns TOPRT_OK.
 *
 * Pointer checks. Every pointer argument is checked. A NULL where a pointer is required
 * gives TOPRT_ERR_NULL_POINTER. A misaligned buffer, or a length whose byte size would
 * exceed PTRDIFF_MAX, gives TOPRT_ERR_INVALID_ARGUMENT. toprt cannot check that a
 * non-NULL pointer really points to as many elements as the caller says.
 *
 * Handles. toprt_model, toprt_session and toprt_result are opaque handles. They are
 * generation-checked indices into a table inside the library, not addresses, so never
 * dereference them. A handle that is freed, never created, or of another kind gives
 * TOPRT_ERR_BAD_HANDLE, and the library never touches memory through it. Detection
 * fails in one case only: the same table slot has been reused 2^32 times (2^16 on
 * 32-bit targets) since the handle was freed. Passing NULL to a *_free function does
 * nothing and returns TOPRT_OK.
 *
 * Threads. A toprt_model can be shared: any thread may use it at any time, concurrently.
 * A toprt_result is read-only and can be read from any thread. A toprt_session must be
 * used by one thread at a time; it may move between threads. A concurrent call on a
 * session that is running returns TOPRT_ERR_BUSY and does nothing. That includes
 * toprt_session_free, so a running session cannot be freed.
 *
 * Lifetimes. A session keeps its model's data alive, and a result owns its data. Models,
 * sessions and results can therefore be freed in any order. Each must be freed once.
 *
 * Panics. No Rust panic crosses this interface. An internal error (a bug) returns
 * TOPRT_ERR_INTERNAL with a message. A session that was running at the time is then
 * unusable: further calls on it return TOPRT_ERR_INTERNAL, and it can still be freed.
 * Out of memory aborts the process, as in Rust.
 *
 * Text. Text is UTF-8, given as a pointer plus a byte length, or with
 * TOPRT_NUL_TERMINATED as the length for a NUL-terminated string. Invalid UTF-8 gives
 * TOPRT_ERR_INVALID_UTF8 and names the byte offset.
 */
#ifndef TOPRT_H
#define TOPRT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Bumped on any incompatible change of a function, struct or constant below. Check it
 * against toprt_abi_version() at start-up. */
#define TOPRT_ABI_VERSION 2

/* Text length meaning "NUL-terminated". */
#define TOPRT_NUL_TERMINATED ((size_t)-1)

/* ---- status codes -------------------------------------------------------------- */

typedef int32_t toprt_status;

enum {
    TOPRT_OK = 0,
    TOPRT_ERR_NULL_POINTER = 1,     /* a required pointer argument is NULL */
    TOPRT_ERR_INVALID_ARGUMENT = 2, /* a value out of range: option, flag, kind, count, alignment */
    TOPRT_ERR_INVALID_UTF8 = 3,     /* a text is not valid UTF-8 */
    TOPRT_ERR_BUFFER_TOO_SMALL = 4, /* *len holds the required element count */
    TOPRT_ERR_BAD_HANDLE = 5,       /* handle freed, never created, or of another kind */
    TOPRT_ERR_BUSY = 6,             /* the session is in use by another thread */
    TOPRT_ERR_IO = 7,               /* the model file cannot be read */
    TOPRT_ERR_MODEL = 8,            /* not a valid .toprt file: format, version, checksum, tensor */
    TOPRT_ERR_INPUT = 9,            /* input refused: id out of range, empty, too long, no tokenizer */
    TOPRT_ERR_UNAVAILABLE = 10,     /* output not produced: not requested, or the model lacks that head */
    TOPRT_ERR_OUT_OF_RANGE = 11,    /* sequence, location or label index past the end */
    TOPRT_ERR_UNSUPPORTED = 12,     /* the requested kernel tier is not supported by this CPU */
    TOPRT_ERR_INTERNAL = 13         /* a bug in toprt (a caught panic); see toprt_last_error() */
};

/* ---- handles and plain structs ------------------------------------------------- */

typedef struct toprt_model toprt_model;     /* an opened model file; shareable across threads */
typedef struct toprt_session toprt_session; /* a model ready to run; one thread at a time */
typedef struct toprt_result toprt_result;   /* the outputs of one toprt_session_run call */

/* Kernel tiers (toprt_session_options.isa, toprt_session_info.isa). */
enum {
    TOPRT_ISA_AUTO = 0, /* TOPRT_ISA in the environment, else the best tier of this CPU */
    TOPRT_ISA_SCALAR = 1,
    TOPRT_ISA_AVX2 = 2,
    TOPRT_ISA_AVX512 = 3,
    TOPRT_ISA_PORTABLE = 4 /* portable vector code (any CPU; the tier non-x86 CPUs run) */
};

/* Precision of a model's encoder weights (toprt_model_info.precision), and of the
 * products its linear layers run on in a session (toprt_session_info.linear_precision). */
enum {
    TOPRT_PRECISION_F32 = 1,
    TOPRT_PRECISION_BF16 = 2,
    TOPRT_PRECISION_INT8 = 3
};

typedef struct toprt_model_info {
    size_t hidden_size;
    size_t num_layers;
    size_t num_heads;
    size_t vocab_size;
    size_t max_length;     /* longest accepted sequence in tokens, special tokens included */
    size_t num_labels;     /* classes of the (sequence or token) classification head; 0 when none */
    size_t num_keep_rules; /* pruning locations in the file; 0 for a dense model */
    int32_t has_tokenizer; /* 1: text input accepted; 0: token ids only */
    int32_t has_logits;    /* 1: TOPRT_OUTPUT_LOGITS gives logits */
    int32_t has_embedding; /* 1: TOPRT_OUTPUT_EMBEDDING gives a pooled embedding */
    int32_t precision;     /* TOPRT_PRECISION_*: the encoder's linear weights as stored */
    size_t num_f32_linears; /* linears a lower-precision file keeps in f32 (int8 calibration) */
} toprt_model_info;

/* Fill with toprt_session_options_init() and then change fields. Fields equal to 0
 * below mean "default". */
typedef struct toprt_session_options {
    uint32_t threads;      /* worker threads including the caller; 0 = one per logical CPU; at most 1024 */
    int32_t truncate;      /* nonzero (default): cut longer inputs; 0: fail with TOPRT_ERR_INPUT */
    size_t max_tokens;     /* token budget of one forward pass; 0 = 2048; at most 65536; raised to max_length */
    size_t max_length;     /* longest sequence in tokens; 0 = the model's maximum */
    int32_t prune_enabled; /* nonzero (default): apply the model's keep-rules; 0: dense */
    float keep_scale;      /* pruning dial (default 1.0): > 1 keeps more tokens, < 1 fewer; > 0 */
    int32_t isa;           /* TOPRT_ISA_* (default TOPRT_ISA_AUTO) */
} toprt_session_options;

typedef struct toprt_session_info {
    size_t threads;
    size_t max_length;
    size_t max_tokens;
    int32_t isa; /* TOPRT_ISA_SCALAR, _PORTABLE, _AVX2 or _AVX512: the tier in use */
    int32_t prune_enabled;
    float keep_scale;
    int32_t linear_precision; /* TOPRT_PRECISION_*: what the linears multiply in on this CPU
                               * (a bf16 file runs as F32 where bf16 GEMMs are slower) */
} toprt_session_info;

/* Outputs to compute (toprt_run_options.outputs), OR-ed together. */
enum {
    TOPRT_OUTPUT_LOGITS = 1,       /* [num_labels] per sequence (classification models) */
    TOPRT_OUTPUT_EMBEDDING = 2,    /* [hidden_size] pooled embedding (models with pooling) */
    TOPRT_OUTPUT_HIDDEN_STATES = 4 /* [tokens * hidden_size] final token states, row-major */
};

/* Pruning of one run (toprt_run_options.prune). */
enum {
    TOPRT_PRUNE_SESSION = 0, /* the session's setting (default) */
    TOPRT_PRUNE_ON = 1,      /* the keep-rules, scaled by toprt_run_options.keep_scale */
    TOPRT_PRUNE_OFF = 2      /* dense: bit-identical to a model without keep-rules */
};

/* Fill with toprt_run_options_init(), or pass NULL for the defaults. */
typedef struct toprt_run_options {
    uint32_t outputs; /* TOPRT_OUTPUT_* flags; default LOGITS | EMBEDDING */
    int32_t prune;    /* TOPRT_PRUNE_*; default TOPRT_PRUNE_SESSION */
    float keep_scale; /* used with TOPRT_PRUNE_ON; > 0; default 1.0 */
} toprt_run_options;

/* Kinds of input (toprt_input.kind). 0 is invalid on purpose, so a zeroed struct is refused. */
enum {
    TOPRT_INPUT_TEXT = 1, /* text, text_len */
    TOPRT_INPUT_PAIR = 2, /* text, text_len, text_pair, text_pair_len (e.g. question, passage) */
    TOPRT_INPUT_IDS = 3   /* input_ids, token_type_ids (NULL: all 0), num_ids; special tokens included */
};

/* One sequence of a batch. The fields not used by `kind` are ignored. */
typedef struct toprt_input {
    uint32_t kind;
    const char *text; /* UTF-8; not NULL, even when text_len is 0 */
    size_t text_len;  /* bytes, or TOPRT_NUL_TERMINATED */
    const char *text_pair;
    size_t text_pair_len;
    const uint32_t *input_ids;      /* each < vocab_size */
    const uint32_t *token_type_ids; /* NULL, or num_ids entries each < the type vocabulary size */
    size_t num_ids;                 /* at least 1 */
} toprt_input;

/* ---- library ------------------------------------------------------------------- */

/* The library version, e.g. "0.1.0" (static string). */
const char *toprt_version(void);

/* TOPRT_ABI_VERSION of the library as built. */
uint32_t toprt_abi_version(void);

/* The name of a status code, e.g. "TOPRT_ERR_NULL_POINTER" (static string;
 * "TOPRT_UNKNOWN_STATUS" for a value that is not a status). */
const char *toprt_status_name(toprt_status status);

/* The message of the last failing call on this thread, or "" if none has failed. Valid
 * until the next failing toprt call on this thread. Never NULL. */
const char *toprt_last_error(void);

/* ---- models -------------------------------------------------------------------- */

/* Opens and validates a .toprt file (copied into memory, huge pages where Linux grants
 * them; checksums verified). `path` is
 * NUL-terminated and goes to the OS unchanged (on Unix any bytes, on Windows UTF-8).
 * Errors: NULL_POINTER, INVALID_UTF8 (Windows), IO, MODEL. */
toprt_status toprt_model_open(const char *path, toprt_model **out);

/* Opens a model from a buffer holding a whole .toprt file. The buffer is copied, so it
 * can be freed when the call returns. Errors: NULL_POINTER, MODEL. */
toprt_status toprt_model_open_bytes(const void *data, size_t len, toprt_model **out);

toprt_status toprt_model_get_info(const toprt_model *model, toprt_model_info *out);

/* The name of class `index` (e.g. "positive") as a NUL-terminated string. cap and *len
 * are in bytes and include the NUL. Errors: OUT_OF_RANGE when index >= num_labels, or
 * when the file carries no label names. */
toprt_status toprt_model_label(const toprt_model *model, size_t index, char *buf, size_t cap, size_t *len);

/* Frees a model. Sessions created from it stay usable. NULL: no-op. */
toprt_status toprt_model_free(toprt_model *model);

/* ---- sessions ------------------------------------------------------------------ */

/* Sets every field to its default. */
toprt_status toprt_session_options_init(toprt_session_options *options);

/* Creates a session: resolves the kernel tier, starts `threads - 1` worker threads and
 * sizes the workspace once. `options` may be NULL (defaults). Errors: NULL_POINTER,
 * BAD_HANDLE, INVALID_ARGUMENT, UNSUPPORTED. */
toprt_status toprt_session_create(const toprt_model *model, const toprt_session_options *options,
                                  toprt_session **out);

toprt_status toprt_session_get_info(const toprt_session *session, toprt_session_info *out);

/* Which GEMM kernel the session's linear layers run on and why, as a NUL-terminated
 * string, e.g. "avx512vnni_gemm_i8_8x32; int8 weights on avx512vnni_gemm_i8_8x32".
 * cap and *len are in bytes and include the NUL. */
toprt_status toprt_session_kernel(const toprt_session *session, char *buf, size_t cap, size_t *len);

/* Changes the session's default pruning (toprt_session_options.prune_enabled and
 * keep_scale). Errors: INVALID_ARGUMENT for a keep_scale that is not finite and > 0. */
toprt_status toprt_session_set_prune(toprt_session *session, int32_t enabled, float keep_scale);

/* Sets every field to its default. */
toprt_status toprt_run_options_init(toprt_run_options *options);

/* Runs a batch of `num_inputs` sequences and returns their outputs as a new result,
 * which must be freed with toprt_result_free. A sequence's outputs do not depend on
 * the rest of the batch, bit for bit. `options` may be NULL (defaults). Nothing runs
 * unless every input is valid. Errors: NULL_POINTER, INVALID_ARGUMENT (num_inputs 0, bad
 * kind or options), INVALID_UTF8, INPUT, BAD_HANDLE, BUSY, INTERNAL. */
toprt_status toprt_session_run(toprt_session *session, const toprt_input *inputs, size_t num_inputs,
                               const toprt_run_options *options, toprt_result **out);

/* Frees a session and joins its threads. NULL: no-op. BUSY while it is running. */
toprt_status toprt_session_free(toprt_session *session);

/* ---- results ------------------------------------------------------------------- */
/* `index` is the sequence's position in the batch; OUT_OF_RANGE past the end. */

toprt_status toprt_result_count(const toprt_result *result, size_t *count);

/* The token ids that ran (after tokenization and truncation). */
toprt_status toprt_result_input_ids(const toprt_result *result, size_t index, uint32_t *buf, size_t cap,
                                    size_t *len);

toprt_status toprt_result_token_type_ids(const toprt_result *result, size_t index, uint32_t *buf, size_t cap,
                                         size_t *len);

/* *truncated = 1 if the input was cut to max_length, else 0. */
toprt_status toprt_result_truncated(const toprt_result *result, size_t index, int32_t *truncated);

/* [num_labels]; for a token classifier (ELECTRA's discriminator) [len, num_labels], one row per input
   token. UNAVAILABLE if not requested or the model has no classification head. */
toprt_status toprt_result_logits(const toprt_result *result, size_t index, float *buf, size_t cap, size_t *len);

/* [hidden_size]. UNAVAILABLE if not requested or the model has no pooling. */
toprt_status toprt_result_embedding(const toprt_result *result, size_t index, float *buf, size_t cap,
                                    size_t *len);

/* [tokens * hidden_size], row-major by original position. A pruned token's row is its
 * state entering the layer where it was pruned. UNAVAILABLE if not requested. */
toprt_status toprt_result_hidden_states(const toprt_result *result, size_t index, float *buf, size_t cap,
                                        size_t *len);

/* The number of pruning locations reported for this sequence: the model's keep-rules
 * when pruning ran, 0 when it was off or the model is dense. */
toprt_status toprt_result_kept_locations(const toprt_result *result, size_t index, size_t *count);

/* Location `location` (0 <= location < count, in increasing layer order): *layer is
 * the first layer whose attention sees only the kept tokens, and buf gets their
 * original positions, ascending ([CLS] = 0). *len is the kept count. *layer is written
 * on success, including a size query. */
toprt_status toprt_result_kept(const toprt_result *result, size_t index, size_t location, uint32_t *layer,
                               uint32_t *buf, size_t cap, size_t *len);

/* Frees a result. NULL: no-op. */
toprt_status toprt_result_free(toprt_result *result);

#ifdef __cplusplus
}
#endif

#endif /* TOPRT_H */
