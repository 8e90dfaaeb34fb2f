/*
 * Calls every function of toprt.h with bad arguments and checks that each call returns
 * the documented error code with a message, and writes none of its outputs. It never
 * crashes. It also checks the rules the header promises: handle checks, the buffer
 * protocol, lifetimes, sharing a model between threads, and BUSY on concurrent use of
 * a session.
 *
 *   bad_args DENSE_MODEL PRUNED_MODEL
 *
 * DENSE_MODEL is a classifier with a tokenizer (tests/fixtures/tiny-bert-st converted).
 * PRUNED_MODEL has keep-rules (tests/fixtures/top-best converted). Run by
 * tests/tests/capi.rs, also under valgrind. Prints one line per check and exits with
 * status 0 only if every check passed.
 *
 * What "freed handle" means here: handles are generation-checked table indices (see
 * toprt.h), so a freed handle is always recognised. The calls below do pass freed,
 * made-up and wrong-kind handles.
 */
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "toprt.h"

static int checks = 0, failures = 0;

static void fail_at(int line, const char *what, const char *why) {
    failures++;
    printf("FAIL line %d: %s: %s\n", line, what, why);
}

/* Checks a status; for an error also checks that toprt_last_error() says something
 * (containing `needle` when given). */
static void expect(toprt_status got, toprt_status want, const char *needle, const char *what, int line) {
    checks++;
    const char *msg = toprt_last_error();
    if (got != want) {
        char why[512];
        snprintf(why, sizeof why, "got %s, want %s (last error: %s)", toprt_status_name(got), toprt_status_name(want),
                 msg);
        fail_at(line, what, why);
        return;
    }
    if (want != TOPRT_OK) {
        if (msg == NULL || msg[0] == '\0') {
            fail_at(line, what, "no error message");
            return;
        }
        if (needle != NULL && strstr(msg, needle) == NULL) {
            char why[512];
            snprintf(why, sizeof why, "message lacks \"%s\": %s", needle, msg);
            fail_at(line, what, why);
            return;
        }
        printf("ok %d: %s -> %s: %s\n", line, what, toprt_status_name(got), msg);
    } else {
        printf("ok %d: %s -> TOPRT_OK\n", line, what);
    }
}

#define EXPECT(call, want) expect((call), (want), NULL, #call, __LINE__)
#define EXPECT_MSG(call, want, needle) expect((call), (want), (needle), #call, __LINE__)
#define CHECK(cond)                                                                                                    \
    do {                                                                                                               \
        checks++;                                                                                                      \
        if (!(cond)) {                                                                                                 \
            fail_at(__LINE__, #cond, "is false");                                                                      \
        }                                                                                                              \
    } while (0)

/* Values that no call may write over on error. */
#define SENTINEL_HANDLE ((void *)(uintptr_t)0x5e5e5e50u)
#define SENTINEL_SIZE ((size_t)0x5e5e5e5eu)
#define SENTINEL_U32 0x5e5e5e5eu

static unsigned char *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        return NULL;
    }
    unsigned char *buf = NULL;
    if (fseek(f, 0, SEEK_END) == 0) {
        long n = ftell(f);
        if (n > 0 && fseek(f, 0, SEEK_SET) == 0 && (buf = malloc((size_t)n)) != NULL) {
            if (fread(buf, 1, (size_t)n, f) != (size_t)n) {
                free(buf);
                buf = NULL;
            } else {
                *len = (size_t)n;
            }
        }
    }
    fclose(f);
    return buf;
}

static toprt_input text_input(const char *text) {
    toprt_input in;
    memset(&in, 0, sizeof in);
    in.kind = TOPRT_INPUT_TEXT;
    in.text = text;
    in.text_len = TOPRT_NUL_TERMINATED;
    return in;
}

/* ---- threads ------------------------------------------------------------------- */

/* Runs one text with its own session on a shared model; records the logits bits. */
struct shared_run {
    const toprt_model *model;
    uint32_t bits[16];
    size_t n;
    toprt_status status;
};

static void *run_on_shared_model(void *arg) {
    struct shared_run *job = arg;
    toprt_session *session = NULL;
    toprt_result *result = NULL;
    toprt_input in = text_input("a model is shared by every thread");
    float logits[16];
    job->status = toprt_session_create(job->model, NULL, &session);
    if (job->status == TOPRT_OK) {
        job->status = toprt_session_run(session, &in, 1, NULL, &result);
    }
    if (job->status == TOPRT_OK) {
        job->status = toprt_result_logits(result, 0, logits, 16, &job->n);
    }
    if (job->status == TOPRT_OK) {
        memcpy(job->bits, logits, job->n * sizeof(float));
    }
    toprt_result_free(result);
    toprt_session_free(session);
    return NULL;
}

/* Runs a long batch on a session, to be interrupted by BUSY checks from another thread. */
struct long_run {
    toprt_session *session;
    const toprt_input *inputs;
    size_t n;
    volatile int started, finished;
    pthread_mutex_t lock;
    toprt_status status;
};

static void *run_long(void *arg) {
    struct long_run *job = arg;
    toprt_result *result = NULL;
    pthread_mutex_lock(&job->lock);
    job->started = 1;
    pthread_mutex_unlock(&job->lock);
    job->status = toprt_session_run(job->session, job->inputs, job->n, NULL, &result);
    toprt_result_free(result);
    pthread_mutex_lock(&job->lock);
    job->finished = 1;
    pthread_mutex_unlock(&job->lock);
    return NULL;
}

static int read_flag(struct long_run *job, volatile int *flag) {
    pthread_mutex_lock(&job->lock);
    int v = *flag;
    pthread_mutex_unlock(&job->lock);
    return v;
}

/* Returns 1 once a concurrent call saw TOPRT_ERR_BUSY (and a concurrent free was
 * refused), 0 if the long run always ended first. */
static int observe_busy(toprt_session *session, const toprt_input *inputs, size_t n) {
    struct long_run job;
    memset(&job, 0, sizeof job);
    job.session = session;
    job.inputs = inputs;
    job.n = n;
    pthread_mutex_init(&job.lock, NULL);
    pthread_t t;
    if (pthread_create(&t, NULL, run_long, &job) != 0) {
        pthread_mutex_destroy(&job.lock);
        return 0;
    }
    while (!read_flag(&job, &job.started)) {
    }
    int seen = 0;
    toprt_session_info info;
    while (!seen && !read_flag(&job, &job.finished)) {
        if (toprt_session_get_info(session, &info) == TOPRT_ERR_BUSY) {
            seen = 1;
            EXPECT_MSG(toprt_session_get_info(session, &info), TOPRT_ERR_BUSY, "one thread at a time");
            EXPECT_MSG(toprt_session_set_prune(session, 1, 1.0f), TOPRT_ERR_BUSY, "in use");
            EXPECT_MSG(toprt_session_free(session), TOPRT_ERR_BUSY, "in use");
        }
    }
    pthread_join(t, NULL);
    pthread_mutex_destroy(&job.lock);
    EXPECT(job.status, TOPRT_OK);
    return seen;
}

/* ---- the checks ---------------------------------------------------------------- */

static void library_checks(void) {
    CHECK(toprt_version() != NULL && toprt_version()[0] != '\0');
    CHECK(toprt_abi_version() == TOPRT_ABI_VERSION);
    CHECK(strcmp(toprt_last_error(), "") == 0);
    for (toprt_status s = TOPRT_OK; s <= TOPRT_ERR_INTERNAL; s++) {
        CHECK(strncmp(toprt_status_name(s), "TOPRT_", 6) == 0);
    }
    CHECK(strcmp(toprt_status_name(TOPRT_ERR_BUFFER_TOO_SMALL), "TOPRT_ERR_BUFFER_TOO_SMALL") == 0);
    CHECK(strcmp(toprt_status_name(999), "TOPRT_UNKNOWN_STATUS") == 0);
    CHECK(strcmp(toprt_status_name(-1), "TOPRT_UNKNOWN_STATUS") == 0);
}

static void model_checks(const char *path, const char *not_a_model) {
    toprt_model *m = SENTINEL_HANDLE;
    EXPECT_MSG(toprt_model_open(NULL, &m), TOPRT_ERR_NULL_POINTER, "path");
    EXPECT_MSG(toprt_model_open(path, NULL), TOPRT_ERR_NULL_POINTER, "out");
    EXPECT_MSG(toprt_model_open("/nonexistent/dir/model.toprt", &m), TOPRT_ERR_IO, "/nonexistent/dir/model.toprt");
    EXPECT(toprt_model_open("", &m), TOPRT_ERR_IO);
    EXPECT(toprt_model_open(not_a_model, &m), TOPRT_ERR_MODEL);
    CHECK(m == SENTINEL_HANDLE);

    size_t len = 0;
    unsigned char *bytes = read_file(path, &len);
    CHECK(bytes != NULL && len > 1024);
    if (bytes == NULL) {
        return;
    }
    unsigned char garbage[256];
    memset(garbage, 0xab, sizeof garbage);
    EXPECT_MSG(toprt_model_open_bytes(NULL, len, &m), TOPRT_ERR_NULL_POINTER, "data");
    EXPECT_MSG(toprt_model_open_bytes(bytes, len, NULL), TOPRT_ERR_NULL_POINTER, "out");
    EXPECT(toprt_model_open_bytes(bytes, 0, &m), TOPRT_ERR_MODEL);
    EXPECT(toprt_model_open_bytes(garbage, sizeof garbage, &m), TOPRT_ERR_MODEL);
    EXPECT(toprt_model_open_bytes(bytes, len / 2, &m), TOPRT_ERR_MODEL);
    EXPECT_MSG(toprt_model_open_bytes(bytes, SIZE_MAX, &m), TOPRT_ERR_INVALID_ARGUMENT, "larger than any array");
    /* A flipped byte in the data section (the middle of the file is inside the word
     * embeddings): the checksum catches it. */
    bytes[len / 2] ^= 0x40;
    EXPECT_MSG(toprt_model_open_bytes(bytes, len, &m), TOPRT_ERR_MODEL, "checksum");
    bytes[len / 2] ^= 0x40;
    CHECK(m == SENTINEL_HANDLE);
    EXPECT(toprt_model_open_bytes(bytes, len, &m), TOPRT_OK);
    free(bytes); /* the library copied it */

    toprt_model_info info;
    memset(&info, 0x5e, sizeof info);
    toprt_model_info untouched = info;
    EXPECT_MSG(toprt_model_get_info(NULL, &info), TOPRT_ERR_NULL_POINTER, "model");
    EXPECT_MSG(toprt_model_get_info(m, NULL), TOPRT_ERR_NULL_POINTER, "out");
    EXPECT_MSG(toprt_model_get_info((toprt_model *)(uintptr_t)0x1234, &info), TOPRT_ERR_BAD_HANDLE, "never returned");
    CHECK(memcmp(&info, &untouched, sizeof info) == 0);
    EXPECT(toprt_model_get_info(m, &info), TOPRT_OK);
    CHECK(info.hidden_size == 32 && info.num_labels == 3 && info.has_logits == 1 && info.has_tokenizer == 1);
    CHECK(info.precision == TOPRT_PRECISION_F32 && info.num_f32_linears == 0);

    /* Labels: the (buf, cap, len) protocol on bytes. */
    char label[64];
    memset(label, 'x', sizeof label);
    len = SENTINEL_SIZE;
    EXPECT(toprt_model_label(m, 0, NULL, 0, &len), TOPRT_OK); /* size query */
    CHECK(len == 4);                                             /* "neg" + NUL */
    len = SENTINEL_SIZE;
    EXPECT_MSG(toprt_model_label(m, 0, label, 2, &len), TOPRT_ERR_BUFFER_TOO_SMALL, "needs 4");
    CHECK(len == 4 && label[0] == 'x' && label[1] == 'x');
    EXPECT_MSG(toprt_model_label(m, 0, label, 0, &len), TOPRT_ERR_BUFFER_TOO_SMALL, "cap is 0");
    EXPECT_MSG(toprt_model_label(m, 0, NULL, 8, &len), TOPRT_ERR_NULL_POINTER, "buf");
    EXPECT_MSG(toprt_model_label(m, 0, label, sizeof label, NULL), TOPRT_ERR_NULL_POINTER, "len");
    len = SENTINEL_SIZE;
    EXPECT_MSG(toprt_model_label(m, 3, label, sizeof label, &len), TOPRT_ERR_OUT_OF_RANGE, "label index 3");
    EXPECT(toprt_model_label(m, SIZE_MAX, label, sizeof label, &len), TOPRT_ERR_OUT_OF_RANGE);
    CHECK(len == SENTINEL_SIZE && label[0] == 'x');
    EXPECT(toprt_model_label(NULL, 0, label, sizeof label, &len), TOPRT_ERR_NULL_POINTER);
    EXPECT(toprt_model_label(m, 2, label, 4, &len), TOPRT_OK);
    CHECK(len == 4 && strcmp(label, "pos") == 0);

    EXPECT(toprt_model_free(m), TOPRT_OK);
    EXPECT_MSG(toprt_model_free(m), TOPRT_ERR_BAD_HANDLE, "already freed");
    EXPECT_MSG(toprt_model_get_info(m, &info), TOPRT_ERR_BAD_HANDLE, "already freed");
    EXPECT(toprt_model_free(NULL), TOPRT_OK);
    EXPECT(toprt_model_free((toprt_model *)(uintptr_t)0xdeadbeef), TOPRT_ERR_BAD_HANDLE);
}

static void session_option_checks(toprt_model *m) {
    toprt_session *s = SENTINEL_HANDLE;
    toprt_session_options o;
    EXPECT_MSG(toprt_session_options_init(NULL), TOPRT_ERR_NULL_POINTER, "options");
    EXPECT(toprt_session_options_init(&o), TOPRT_OK);
    CHECK(o.threads == 0 && o.truncate == 1 && o.prune_enabled == 1 && o.keep_scale == 1.0f && o.max_length == 0);

    EXPECT_MSG(toprt_session_create(NULL, &o, &s), TOPRT_ERR_NULL_POINTER, "model");
    EXPECT_MSG(toprt_session_create(m, &o, NULL), TOPRT_ERR_NULL_POINTER, "out");
    EXPECT(toprt_session_create((toprt_model *)(uintptr_t)0x77, &o, &s), TOPRT_ERR_BAD_HANDLE);

#define BAD_OPTION(field, value, needle)                                                                               \
    do {                                                                                                               \
        toprt_session_options bad = o;                                                                                 \
        bad.field = value;                                                                                             \
        EXPECT_MSG(toprt_session_create(m, &bad, &s), TOPRT_ERR_INVALID_ARGUMENT, needle);                             \
    } while (0)
    BAD_OPTION(threads, 5000, "threads");
    BAD_OPTION(max_tokens, (size_t)1 << 30, "max_tokens");
    BAD_OPTION(max_length, 100000, "max_length");
    BAD_OPTION(keep_scale, 0.0f, "keep_scale");
    BAD_OPTION(keep_scale, -1.0f, "keep_scale");
    BAD_OPTION(keep_scale, NAN, "keep_scale");
    BAD_OPTION(keep_scale, INFINITY, "keep_scale");
    BAD_OPTION(isa, 7, "isa");
    BAD_OPTION(isa, -1, "isa");
    CHECK(s == SENTINEL_HANDLE);

    /* AVX-512 may or may not exist here: either a session or UNSUPPORTED, never a crash. */
    toprt_session_options avx512 = o;
    avx512.isa = TOPRT_ISA_AVX512;
    toprt_status st = toprt_session_create(m, &avx512, &s);
    CHECK(st == TOPRT_OK || st == TOPRT_ERR_UNSUPPORTED);
    if (st == TOPRT_OK) {
        EXPECT(toprt_session_free(s), TOPRT_OK);
    } else {
        EXPECT_MSG(st, TOPRT_ERR_UNSUPPORTED, "avx512");
    }
    /* The portable tier runs on every CPU. */
    toprt_session_options portable = o;
    portable.isa = TOPRT_ISA_PORTABLE;
    EXPECT(toprt_session_create(m, &portable, &s), TOPRT_OK);
    EXPECT(toprt_session_free(s), TOPRT_OK);
}

static void session_checks(toprt_model *m, toprt_session *s) {
    toprt_session_info si;
    EXPECT(toprt_session_get_info(NULL, &si), TOPRT_ERR_NULL_POINTER);
    EXPECT_MSG(toprt_session_get_info(s, NULL), TOPRT_ERR_NULL_POINTER, "out");
    EXPECT_MSG(toprt_session_get_info((const toprt_session *)m, &si), TOPRT_ERR_BAD_HANDLE,
               "is a toprt_model handle, not a toprt_session");
    EXPECT(toprt_session_get_info(s, &si), TOPRT_OK);
    CHECK(si.threads == 2 && si.max_length == 512 && si.prune_enabled == 1 && si.keep_scale == 1.0f);
    CHECK(si.isa >= TOPRT_ISA_SCALAR && si.isa <= TOPRT_ISA_PORTABLE);
    CHECK(si.linear_precision == TOPRT_PRECISION_F32);

    /* The kernel description: the (buf, cap, len) protocol. */
    char kernel[256];
    size_t klen = SENTINEL_SIZE;
    EXPECT(toprt_session_kernel(s, NULL, 0, &klen), TOPRT_OK); /* size query */
    CHECK(klen > 1 && klen <= sizeof kernel);
    EXPECT_MSG(toprt_session_kernel(s, kernel, 1, &klen), TOPRT_ERR_BUFFER_TOO_SMALL, "cap is 1");
    EXPECT_MSG(toprt_session_kernel(s, NULL, 8, &klen), TOPRT_ERR_NULL_POINTER, "buf");
    EXPECT_MSG(toprt_session_kernel(s, kernel, sizeof kernel, NULL), TOPRT_ERR_NULL_POINTER, "len");
    EXPECT(toprt_session_kernel(NULL, kernel, sizeof kernel, &klen), TOPRT_ERR_NULL_POINTER);
    EXPECT(toprt_session_kernel((const toprt_session *)m, kernel, sizeof kernel, &klen), TOPRT_ERR_BAD_HANDLE);
    EXPECT(toprt_session_kernel(s, kernel, sizeof kernel, &klen), TOPRT_OK);
    CHECK(strlen(kernel) + 1 == klen && strstr(kernel, "sgemm") != NULL);

    EXPECT(toprt_session_set_prune(NULL, 1, 1.0f), TOPRT_ERR_NULL_POINTER);
    EXPECT_MSG(toprt_session_set_prune(s, 1, 0.0f), TOPRT_ERR_INVALID_ARGUMENT, "keep_scale");
    EXPECT(toprt_session_set_prune(s, 1, -2.0f), TOPRT_ERR_INVALID_ARGUMENT);
    EXPECT(toprt_session_set_prune(s, 1, NAN), TOPRT_ERR_INVALID_ARGUMENT);
    EXPECT(toprt_session_set_prune(s, 0, INFINITY), TOPRT_ERR_INVALID_ARGUMENT);
    EXPECT(toprt_session_set_prune((toprt_session *)m, 1, 1.0f), TOPRT_ERR_BAD_HANDLE);
    EXPECT(toprt_session_set_prune(s, 0, 2.0f), TOPRT_OK);
    EXPECT(toprt_session_get_info(s, &si), TOPRT_OK);
    CHECK(si.prune_enabled == 0 && si.keep_scale == 2.0f);
    EXPECT(toprt_session_set_prune(s, 1, 1.0f), TOPRT_OK);
    EXPECT(toprt_run_options_init(NULL), TOPRT_ERR_NULL_POINTER);
}

static void run_checks(toprt_model *m, toprt_session *s) {
    toprt_result *r = SENTINEL_HANDLE;
    toprt_input good = text_input("hello world");
    toprt_input in[2];
    toprt_run_options ro;
    EXPECT(toprt_run_options_init(&ro), TOPRT_OK);
    CHECK(ro.outputs == (TOPRT_OUTPUT_LOGITS | TOPRT_OUTPUT_EMBEDDING) && ro.prune == TOPRT_PRUNE_SESSION);

    EXPECT_MSG(toprt_session_run(NULL, &good, 1, &ro, &r), TOPRT_ERR_NULL_POINTER, "session");
    EXPECT_MSG(toprt_session_run(s, NULL, 1, &ro, &r), TOPRT_ERR_NULL_POINTER, "inputs");
    EXPECT_MSG(toprt_session_run(s, &good, 0, &ro, &r), TOPRT_ERR_INVALID_ARGUMENT, "num_inputs is 0");
    EXPECT_MSG(toprt_session_run(s, &good, 1, &ro, NULL), TOPRT_ERR_NULL_POINTER, "out");
    EXPECT_MSG(toprt_session_run(s, &good, SIZE_MAX, &ro, &r), TOPRT_ERR_INVALID_ARGUMENT, "larger than any array");
    EXPECT(toprt_session_run((toprt_session *)m, &good, 1, &ro, &r), TOPRT_ERR_BAD_HANDLE);
    EXPECT(toprt_session_run((toprt_session *)(uintptr_t)0x4242, &good, 1, &ro, &r), TOPRT_ERR_BAD_HANDLE);

    /* Bad run options. */
    toprt_run_options bad = ro;
    bad.outputs = 0x100;
    EXPECT_MSG(toprt_session_run(s, &good, 1, &bad, &r), TOPRT_ERR_INVALID_ARGUMENT, "outputs");
    bad = ro;
    bad.prune = 5;
    EXPECT_MSG(toprt_session_run(s, &good, 1, &bad, &r), TOPRT_ERR_INVALID_ARGUMENT, "prune");
    bad = ro;
    bad.prune = TOPRT_PRUNE_ON;
    bad.keep_scale = 0.0f;
    EXPECT_MSG(toprt_session_run(s, &good, 1, &bad, &r), TOPRT_ERR_INVALID_ARGUMENT, "keep_scale");

    /* Bad inputs; in[0] is always good, so "nothing runs unless every input is valid". */
    const uint32_t ids[4] = {2, 100, 200, 3}; /* [CLS] = 2, [SEP] = 3 */
    const uint32_t bad_ids[4] = {2, 2999, 200, 3}; /* vocab_size is 2999 */
    const uint32_t bad_types[4] = {0, 0, 5, 0};
    uint32_t aligned_ids[5] = {2, 100, 200, 3, 0};
#define BAD_INPUT(setup, code, needle)                                                                                 \
    do {                                                                                                               \
        in[0] = good;                                                                                                  \
        memset(&in[1], 0, sizeof in[1]);                                                                               \
        setup;                                                                                                         \
        EXPECT_MSG(toprt_session_run(s, in, 2, NULL, &r), code, needle);                                               \
    } while (0)
    BAD_INPUT((void)0, TOPRT_ERR_INVALID_ARGUMENT, "inputs[1].kind is 0");
    BAD_INPUT(in[1].kind = 42, TOPRT_ERR_INVALID_ARGUMENT, "inputs[1].kind is 42");
    BAD_INPUT(in[1].kind = TOPRT_INPUT_TEXT, TOPRT_ERR_NULL_POINTER, "inputs[1].text is NULL");
    BAD_INPUT((in[1] = text_input("ok"), in[1].text = NULL, in[1].text_len = 0), TOPRT_ERR_NULL_POINTER,
              "inputs[1].text");
    BAD_INPUT(in[1] = text_input("caf\xc3\xa9 \xff\xfe"), TOPRT_ERR_INVALID_UTF8, "offset 6");
    BAD_INPUT((in[1] = text_input("abc\xc3"), in[1].text_len = 4), TOPRT_ERR_INVALID_UTF8, "offset 3");
    BAD_INPUT((in[1] = text_input("ab\xed\xa0\x80"), in[1].text_len = 5), TOPRT_ERR_INVALID_UTF8, "offset 2");
    BAD_INPUT((in[1] = text_input("q"), in[1].kind = TOPRT_INPUT_PAIR), TOPRT_ERR_NULL_POINTER, "text_pair");
    BAD_INPUT((in[1] = text_input("q"), in[1].kind = TOPRT_INPUT_PAIR, in[1].text_pair = "p\x80",
               in[1].text_pair_len = TOPRT_NUL_TERMINATED),
              TOPRT_ERR_INVALID_UTF8, "inputs[1].text_pair");
    BAD_INPUT(in[1].kind = TOPRT_INPUT_IDS, TOPRT_ERR_NULL_POINTER, "inputs[1].input_ids");
    BAD_INPUT((in[1].kind = TOPRT_INPUT_IDS, in[1].input_ids = ids, in[1].num_ids = 0), TOPRT_ERR_INPUT,
              "empty sequence");
    BAD_INPUT((in[1].kind = TOPRT_INPUT_IDS, in[1].input_ids = bad_ids, in[1].num_ids = 4), TOPRT_ERR_INPUT,
              "token id 2999 at position 1 is outside the vocabulary");
    BAD_INPUT((in[1].kind = TOPRT_INPUT_IDS, in[1].input_ids = ids, in[1].token_type_ids = bad_types,
               in[1].num_ids = 4),
              TOPRT_ERR_INPUT, "token type id 5");
    BAD_INPUT((in[1].kind = TOPRT_INPUT_IDS, in[1].input_ids = ids, in[1].num_ids = SIZE_MAX / 2),
              TOPRT_ERR_INVALID_ARGUMENT, "larger than any array");
    /* A misaligned id array (made through uintptr_t; toprt checks before any read). */
    BAD_INPUT((in[1].kind = TOPRT_INPUT_IDS,
               in[1].input_ids = (const uint32_t *)((uintptr_t)aligned_ids + 1), in[1].num_ids = 3),
              TOPRT_ERR_INVALID_ARGUMENT, "not aligned");
    CHECK(r == SENTINEL_HANDLE);

    /* An empty text is valid (it is [CLS] [SEP]); so is a NUL-terminated one. */
    in[0] = good;
    in[1] = text_input("");
    EXPECT(toprt_session_run(s, in, 2, NULL, &r), TOPRT_OK);
    size_t n = 0;
    EXPECT(toprt_result_input_ids(r, 1, NULL, 0, &n), TOPRT_OK);
    CHECK(n == 2);
    EXPECT(toprt_result_free(r), TOPRT_OK);
}

static void result_checks(toprt_session *s, toprt_model_info *info) {
    toprt_result *r = NULL;
    toprt_input in[2] = {text_input("the quick brown fox"), text_input("jumps over the lazy dog")};
    toprt_run_options ro;
    toprt_run_options_init(&ro);
    ro.outputs = TOPRT_OUTPUT_LOGITS | TOPRT_OUTPUT_HIDDEN_STATES;
    EXPECT(toprt_session_run(s, in, 2, &ro, &r), TOPRT_OK);

    size_t count = SENTINEL_SIZE, len = SENTINEL_SIZE;
    EXPECT_MSG(toprt_result_count(NULL, &count), TOPRT_ERR_NULL_POINTER, "result");
    EXPECT_MSG(toprt_result_count(r, NULL), TOPRT_ERR_NULL_POINTER, "count");
    EXPECT_MSG(toprt_result_count((toprt_result *)s, &count), TOPRT_ERR_BAD_HANDLE, "is a toprt_session handle");
    CHECK(count == SENTINEL_SIZE);
    EXPECT(toprt_result_count(r, &count), TOPRT_OK);
    CHECK(count == 2);

    uint32_t ids[64];
    for (size_t k = 0; k < 64; k++) {
        ids[k] = SENTINEL_U32;
    }
    EXPECT_MSG(toprt_result_input_ids(r, 2, ids, 64, &len), TOPRT_ERR_OUT_OF_RANGE, "holds 2 sequences");
    EXPECT_MSG(toprt_result_input_ids(r, 0, ids, 64, NULL), TOPRT_ERR_NULL_POINTER, "len");
    EXPECT_MSG(toprt_result_input_ids(r, 0, NULL, 64, &len), TOPRT_ERR_NULL_POINTER, "buf");
    CHECK(len == SENTINEL_SIZE);
    EXPECT(toprt_result_input_ids(r, 0, NULL, 0, &len), TOPRT_OK);
    size_t tokens = len;
    CHECK(tokens >= 3);
    len = SENTINEL_SIZE;
    EXPECT_MSG(toprt_result_input_ids(r, 0, ids, tokens - 1, &len), TOPRT_ERR_BUFFER_TOO_SMALL, "needs");
    CHECK(len == tokens && ids[0] == SENTINEL_U32);
    EXPECT(toprt_result_input_ids(r, 0, ids, 1, &len), TOPRT_ERR_BUFFER_TOO_SMALL);
    CHECK(ids[0] == SENTINEL_U32);
    EXPECT(toprt_result_input_ids(r, 0, ids, tokens, &len), TOPRT_OK);
    CHECK(len == tokens && ids[0] == 2 && ids[tokens] == SENTINEL_U32);
    EXPECT(toprt_result_token_type_ids(r, 0, ids, 1, &len), TOPRT_ERR_BUFFER_TOO_SMALL);
    EXPECT(toprt_result_token_type_ids(NULL, 0, ids, 64, &len), TOPRT_ERR_NULL_POINTER);
    EXPECT(toprt_result_token_type_ids(r, 9, ids, 64, &len), TOPRT_ERR_OUT_OF_RANGE);
    EXPECT(toprt_result_token_type_ids(r, 1, ids, 64, &len), TOPRT_OK);

    int32_t truncated = 7;
    EXPECT_MSG(toprt_result_truncated(r, 0, NULL), TOPRT_ERR_NULL_POINTER, "truncated");
    EXPECT(toprt_result_truncated(r, 5, &truncated), TOPRT_ERR_OUT_OF_RANGE);
    EXPECT(toprt_result_truncated((toprt_result *)(uintptr_t)0x99, 0, &truncated), TOPRT_ERR_BAD_HANDLE);
    CHECK(truncated == 7);
    EXPECT(toprt_result_truncated(r, 0, &truncated), TOPRT_OK);
    CHECK(truncated == 0);

    float values[4096];
    values[0] = -42.0f;
    EXPECT(toprt_result_logits(r, 0, values, 2, &len), TOPRT_ERR_BUFFER_TOO_SMALL);
    CHECK(len == 3 && values[0] == -42.0f);
    EXPECT(toprt_result_logits(r, 0, values, 3, &len), TOPRT_OK);
    EXPECT(toprt_result_logits(r, 2, values, 3, &len), TOPRT_ERR_OUT_OF_RANGE);
    EXPECT(toprt_result_logits(r, 0, values, 3, NULL), TOPRT_ERR_NULL_POINTER);
    /* Misaligned float buffer. */
    EXPECT_MSG(toprt_result_logits(r, 0, (float *)((uintptr_t)values + 2), 3, &len), TOPRT_ERR_INVALID_ARGUMENT,
               "not aligned");
    /* Not requested / not in this model. */
    EXPECT_MSG(toprt_result_embedding(r, 0, values, 4096, &len), TOPRT_ERR_UNAVAILABLE, "not requested");
    size_t hidden_len = 0;
    EXPECT(toprt_result_hidden_states(r, 1, NULL, 0, &hidden_len), TOPRT_OK);
    EXPECT(toprt_result_input_ids(r, 1, NULL, 0, &len), TOPRT_OK);
    CHECK(hidden_len == len * info->hidden_size);
    EXPECT(toprt_result_hidden_states(r, 1, values, hidden_len - 1, &len), TOPRT_ERR_BUFFER_TOO_SMALL);
    CHECK(len == hidden_len);
    EXPECT(toprt_result_hidden_states(r, 1, values, 4096, &len), TOPRT_OK);
    EXPECT(toprt_result_hidden_states(NULL, 1, values, 4096, &len), TOPRT_ERR_NULL_POINTER);

    /* A dense model reports no pruning locations. */
    size_t locations = SENTINEL_SIZE;
    uint32_t layer = SENTINEL_U32;
    EXPECT(toprt_result_kept_locations(r, 0, NULL), TOPRT_ERR_NULL_POINTER);
    EXPECT(toprt_result_kept_locations(r, 3, &locations), TOPRT_ERR_OUT_OF_RANGE);
    CHECK(locations == SENTINEL_SIZE);
    EXPECT(toprt_result_kept_locations(r, 0, &locations), TOPRT_OK);
    CHECK(locations == 0);
    EXPECT_MSG(toprt_result_kept(r, 0, 0, &layer, ids, 64, &len), TOPRT_ERR_OUT_OF_RANGE, "0 pruning locations");
    CHECK(layer == SENTINEL_U32);

    /* A result outlives nothing else: free it once; a second free is detected. */
    EXPECT(toprt_result_free(r), TOPRT_OK);
    EXPECT_MSG(toprt_result_free(r), TOPRT_ERR_BAD_HANDLE, "already freed");
    EXPECT_MSG(toprt_result_count(r, &count), TOPRT_ERR_BAD_HANDLE, "already freed");
    EXPECT(toprt_result_logits(r, 0, values, 3, &len), TOPRT_ERR_BAD_HANDLE);
    EXPECT(toprt_result_free((toprt_result *)s), TOPRT_ERR_BAD_HANDLE);
    EXPECT(toprt_result_free(NULL), TOPRT_OK);

    /* An embedding requested from a model without pooling is unavailable, not garbage. */
    if (!info->has_embedding) {
        ro.outputs = TOPRT_OUTPUT_EMBEDDING;
        EXPECT(toprt_session_run(s, in, 1, &ro, &r), TOPRT_OK);
        EXPECT_MSG(toprt_result_embedding(r, 0, values, 4096, &len), TOPRT_ERR_UNAVAILABLE, "no pooling");
        EXPECT_MSG(toprt_result_logits(r, 0, values, 4096, &len), TOPRT_ERR_UNAVAILABLE, "not requested");
        EXPECT(toprt_result_free(r), TOPRT_OK);
    }
}

/* Ids and text routes give the same bits; truncation and its refusal. */
static void consistency_checks(toprt_model *m, toprt_session *s) {
    toprt_result *r1 = NULL, *r2 = NULL;
    toprt_input text = text_input("token ids and text agree bit for bit");
    uint32_t ids[64], types[64];
    float a[8], b[8];
    size_t n_ids = 0, n = 0, na = 0, nb = 0;
    EXPECT(toprt_session_run(s, &text, 1, NULL, &r1), TOPRT_OK);
    EXPECT(toprt_result_input_ids(r1, 0, ids, 64, &n_ids), TOPRT_OK);
    EXPECT(toprt_result_token_type_ids(r1, 0, types, 64, &n), TOPRT_OK);
    toprt_input as_ids;
    memset(&as_ids, 0, sizeof as_ids);
    as_ids.kind = TOPRT_INPUT_IDS;
    as_ids.input_ids = ids;
    as_ids.token_type_ids = types;
    as_ids.num_ids = n_ids;
    EXPECT(toprt_session_run(s, &as_ids, 1, NULL, &r2), TOPRT_OK);
    EXPECT(toprt_result_logits(r1, 0, a, 8, &na), TOPRT_OK);
    EXPECT(toprt_result_logits(r2, 0, b, 8, &nb), TOPRT_OK);
    CHECK(na == 3 && nb == 3 && memcmp(a, b, 3 * sizeof(float)) == 0);
    toprt_result_free(r1);
    toprt_result_free(r2);
    r1 = r2 = NULL;

    /* max_length 4: truncation on, then off. */
    toprt_session *short_s = NULL, *strict_s = NULL;
    toprt_session_options o;
    toprt_session_options_init(&o);
    o.threads = 1;
    o.max_length = 4;
    EXPECT(toprt_session_create(m, &o, &short_s), TOPRT_OK);
    o.truncate = 0;
    EXPECT(toprt_session_create(m, &o, &strict_s), TOPRT_OK);
    int32_t truncated = 0;
    EXPECT(toprt_session_run(short_s, &text, 1, NULL, &r1), TOPRT_OK);
    EXPECT(toprt_result_truncated(r1, 0, &truncated), TOPRT_OK);
    EXPECT(toprt_result_input_ids(r1, 0, ids, 64, &n_ids), TOPRT_OK);
    CHECK(truncated == 1 && n_ids == 4 && ids[3] == 3);
    EXPECT_MSG(toprt_session_run(strict_s, &text, 1, NULL, &r2), TOPRT_ERR_INPUT, "exceeds the maximum length 4");
    CHECK(r2 == NULL);
    toprt_result_free(r1);
    EXPECT(toprt_session_free(short_s), TOPRT_OK);
    EXPECT(toprt_session_free(strict_s), TOPRT_OK);
    EXPECT_MSG(toprt_session_free(strict_s), TOPRT_ERR_BAD_HANDLE, "already freed");
    EXPECT_MSG(toprt_session_run(strict_s, &text, 1, NULL, &r2), TOPRT_ERR_BAD_HANDLE, "already freed");
}

static void pruned_checks(const char *path) {
    toprt_model *m = NULL;
    toprt_session *s = NULL;
    toprt_result *r = NULL;
    toprt_model_info info;
    EXPECT(toprt_model_open(path, &m), TOPRT_OK);
    EXPECT(toprt_model_get_info(m, &info), TOPRT_OK);
    CHECK(info.num_keep_rules > 0);
    EXPECT(toprt_session_create(m, NULL, &s), TOPRT_OK);
    /* The model can go first: the session keeps its data. */
    EXPECT(toprt_model_free(m), TOPRT_OK);
    toprt_input in = text_input("a rather long sentence so that the keep rules have tokens to drop here");
    EXPECT(toprt_session_run(s, &in, 1, NULL, &r), TOPRT_OK);
    size_t locations = 0, len = SENTINEL_SIZE, tokens = 0;
    uint32_t layer = SENTINEL_U32, kept[128];
    EXPECT(toprt_result_input_ids(r, 0, NULL, 0, &tokens), TOPRT_OK);
    EXPECT(toprt_result_kept_locations(r, 0, &locations), TOPRT_OK);
    CHECK(locations == info.num_keep_rules);
    EXPECT_MSG(toprt_result_kept(r, 0, 0, NULL, kept, 128, &len), TOPRT_ERR_NULL_POINTER, "layer");
    EXPECT_MSG(toprt_result_kept(r, 0, locations, &layer, kept, 128, &len), TOPRT_ERR_OUT_OF_RANGE, "location");
    EXPECT(toprt_result_kept(r, 0, 0, &layer, kept, 1, &len), TOPRT_ERR_BUFFER_TOO_SMALL);
    CHECK(layer == SENTINEL_U32 && len > 1 && len <= tokens);
    len = SENTINEL_SIZE;
    EXPECT(toprt_result_kept(r, 0, 0, &layer, NULL, 0, &len), TOPRT_OK);
    CHECK(layer >= 1 && layer < info.num_layers && len <= tokens);
    EXPECT(toprt_result_kept(r, 0, 0, &layer, kept, 128, &len), TOPRT_OK);
    CHECK(kept[0] == 0);
    toprt_result_free(r);
    r = NULL;

    /* Pruning off for one request: no locations. */
    toprt_run_options ro;
    toprt_run_options_init(&ro);
    ro.prune = TOPRT_PRUNE_OFF;
    EXPECT(toprt_session_run(s, &in, 1, &ro, &r), TOPRT_OK);
    EXPECT(toprt_result_kept_locations(r, 0, &locations), TOPRT_OK);
    CHECK(locations == 0);
    toprt_result_free(r);
    EXPECT(toprt_session_free(s), TOPRT_OK);
}

static void thread_checks(toprt_model *m, toprt_session *s) {
    /* One model, three threads, three sessions: identical bits. */
    struct shared_run jobs[3];
    pthread_t threads[3];
    memset(jobs, 0, sizeof jobs);
    for (int i = 0; i < 3; i++) {
        jobs[i].model = m;
        CHECK(pthread_create(&threads[i], NULL, run_on_shared_model, &jobs[i]) == 0);
    }
    for (int i = 0; i < 3; i++) {
        pthread_join(threads[i], NULL);
        EXPECT(jobs[i].status, TOPRT_OK);
        CHECK(jobs[i].n == 3 && memcmp(jobs[i].bits, jobs[0].bits, sizeof jobs[0].bits) == 0);
    }

    /* One session, two threads: the second gets BUSY, never a data race. The long batch
     * may still end before the main thread looks (on a loaded machine the main thread
     * can sleep through a whole run), so try again until it is seen, for up to 60 s. */
    enum { N = 64 };
    toprt_input *inputs = malloc(N * sizeof *inputs);
    CHECK(inputs != NULL);
    if (inputs == NULL) {
        return;
    }
    static const char sentence[] = "the quick brown fox jumps over the lazy dog ";
    static char text[200]; /* about 90 tokens */
    for (size_t k = 0; k + 1 < sizeof text; k++) {
        text[k] = sentence[k % (sizeof sentence - 1)];
    }
    for (int i = 0; i < N; i++) {
        inputs[i] = text_input(text);
    }
    int seen = 0, attempts = 0;
    struct timespec start, now;
    CHECK(timespec_get(&start, TIME_UTC) == TIME_UTC);
    do {
        seen = observe_busy(s, inputs, N);
        attempts++;
        now = start;
        timespec_get(&now, TIME_UTC);
    } while (!seen && now.tv_sec - start.tv_sec < 60);
    CHECK(seen);
    printf("BUSY seen after %d attempt(s)\n", attempts);
    free(inputs);
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: bad_args DENSE_MODEL PRUNED_MODEL\n");
        return 2;
    }
    library_checks();
    model_checks(argv[1], argv[0]);

    toprt_model *m = NULL;
    toprt_session *s = NULL;
    toprt_model_info info;
    memset(&info, 0, sizeof info);
    EXPECT(toprt_model_open(argv[1], &m), TOPRT_OK);
    EXPECT(toprt_model_get_info(m, &info), TOPRT_OK);
    session_option_checks(m);
    toprt_session_options o;
    toprt_session_options_init(&o);
    o.threads = 2;
    EXPECT(toprt_session_create(m, &o, &s), TOPRT_OK);
    session_checks(m, s);
    run_checks(m, s);
    result_checks(s, &info);
    consistency_checks(m, s);
    thread_checks(m, s);
    pruned_checks(argv[2]);

    /* The last error survives successful calls. */
    EXPECT(toprt_model_free((toprt_model *)(uintptr_t)0x31337), TOPRT_ERR_BAD_HANDLE);
    const char *before = toprt_last_error();
    toprt_model_info again;
    EXPECT(toprt_model_get_info(m, &again), TOPRT_OK);
    CHECK(toprt_last_error() == before && strstr(before, "never returned") != NULL);

    EXPECT(toprt_session_free(s), TOPRT_OK);
    EXPECT(toprt_model_free(m), TOPRT_OK);
    printf("%d checks, %d failed\n", checks, failures);
    return failures == 0 ? 0 : 1;
}
