/*
 * classify: runs a toprt model on texts given on the command line.
 *
 *   classify [--pairs] [--threads N] [--no-prune] [--keep-scale X] MODEL TEXT...
 *
 *   --pairs         take the texts two at a time, as (text, text_pair)
 *   --threads N     worker threads (default 0: one per logical CPU)
 *   --no-prune      run dense, without the model's keep-rules
 *   --keep-scale X  pruning dial: > 1 keeps more tokens, < 1 fewer (default 1)
 *
 * All texts run as one batch. For each input it prints lines like these:
 *
 *   input 0: tokens 9 truncated 0 ids 101 7592 ... 102
 *   input 0: logits -0.0123 0.0456 bits 0xbc4985f0 0x3d3ac711
 *   input 0: argmax 1 LABEL_1
 *   input 0: layer 2 kept 5 of 9: 0 1 3 4 8
 *
 * The "bits" are the raw IEEE-754 bits of the floats, so the output can be compared
 * exactly. A model without a classification head prints its embedding instead of the
 * logits and the argmax.
 *
 * Build (from the repository root, after `cargo build --release -p toprt`):
 *   cc -std=c11 -O2 -Iinclude examples/c/classify.c target/release/libtoprt.a -lm -lpthread -ldl -o classify
 * or `make -C examples/c`.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "toprt.h"

/* Prints why a call failed; returns 1 for `rc`. */
static int report(toprt_status status, const char *what) {
    fprintf(stderr, "classify: %s: %s: %s\n", what, toprt_status_name(status), toprt_last_error());
    return 1;
}

static void print_floats(size_t input, const char *name, const float *v, size_t n) {
    printf("input %zu: %s", input, name);
    for (size_t k = 0; k < n; k++) {
        printf(" %.9g", v[k]);
    }
    printf(" bits");
    for (size_t k = 0; k < n; k++) {
        uint32_t bits;
        memcpy(&bits, &v[k], sizeof bits);
        printf(" 0x%08" PRIx32, bits);
    }
    printf("\n");
}

/* Prints the label name of class `k`, or "class_k" when the file names no labels. */
static void print_label(const toprt_model *model, size_t input, size_t k) {
    size_t need = 0;
    char *name = NULL;
    if (toprt_model_label(model, k, NULL, 0, &need) == TOPRT_OK && (name = malloc(need)) != NULL &&
        toprt_model_label(model, k, name, need, &need) == TOPRT_OK) {
        printf("input %zu: argmax %zu %s\n", input, k, name);
    } else {
        printf("input %zu: argmax %zu class_%zu\n", input, k, k);
    }
    free(name);
}

/* Prints every output of sequence `i`. Returns 0, or 1 after reporting an error. */
static int print_sequence(const toprt_model *model, const toprt_model_info *info, const toprt_result *result,
                          size_t i) {
    int rc = 1;
    toprt_status s;
    uint32_t *ids = NULL, *kept = NULL;
    float *values = NULL;
    size_t n_ids = 0, n = 0, locations = 0;
    int32_t truncated = 0;

    /* A size query first (buf NULL, cap 0), then the copy. */
    if ((s = toprt_result_input_ids(result, i, NULL, 0, &n_ids)) != TOPRT_OK) {
        report(s, "toprt_result_input_ids");
        goto done;
    }
    ids = malloc(n_ids * sizeof *ids);
    kept = malloc(n_ids * sizeof *kept);
    if (ids == NULL || kept == NULL) {
        fprintf(stderr, "classify: out of memory\n");
        goto done;
    }
    if ((s = toprt_result_input_ids(result, i, ids, n_ids, &n_ids)) != TOPRT_OK ||
        (s = toprt_result_truncated(result, i, &truncated)) != TOPRT_OK) {
        report(s, "reading input ids");
        goto done;
    }
    printf("input %zu: tokens %zu truncated %d ids", i, n_ids, (int)truncated);
    for (size_t k = 0; k < n_ids; k++) {
        printf(" %" PRIu32, ids[k]);
    }
    printf("\n");

    if (info->has_logits) {
        values = malloc(info->num_labels * sizeof *values);
        if (values == NULL) {
            fprintf(stderr, "classify: out of memory\n");
            goto done;
        }
        if ((s = toprt_result_logits(result, i, values, info->num_labels, &n)) != TOPRT_OK) {
            report(s, "toprt_result_logits");
            goto done;
        }
        print_floats(i, "logits", values, n);
        size_t best = 0;
        for (size_t k = 1; k < n; k++) {
            if (values[k] > values[best]) {
                best = k;
            }
        }
        print_label(model, i, best);
    } else if (info->has_embedding) {
        values = malloc(info->hidden_size * sizeof *values);
        if (values == NULL) {
            fprintf(stderr, "classify: out of memory\n");
            goto done;
        }
        if ((s = toprt_result_embedding(result, i, values, info->hidden_size, &n)) != TOPRT_OK) {
            report(s, "toprt_result_embedding");
            goto done;
        }
        print_floats(i, "embedding", values, n);
    }

    if ((s = toprt_result_kept_locations(result, i, &locations)) != TOPRT_OK) {
        report(s, "toprt_result_kept_locations");
        goto done;
    }
    for (size_t loc = 0; loc < locations; loc++) {
        uint32_t layer = 0;
        size_t n_kept = 0;
        if ((s = toprt_result_kept(result, i, loc, &layer, kept, n_ids, &n_kept)) != TOPRT_OK) {
            report(s, "toprt_result_kept");
            goto done;
        }
        printf("input %zu: layer %" PRIu32 " kept %zu of %zu:", i, layer, n_kept, n_ids);
        for (size_t k = 0; k < n_kept; k++) {
            printf(" %" PRIu32, kept[k]);
        }
        printf("\n");
    }
    rc = 0;
done:
    free(ids);
    free(kept);
    free(values);
    return rc;
}

static int usage(void) {
    fprintf(stderr, "usage: classify [--pairs] [--threads N] [--no-prune] [--keep-scale X] MODEL TEXT...\n");
    return 2;
}

int main(int argc, char **argv) {
    int pairs = 0, prune = 1;
    unsigned long threads = 0;
    double keep_scale = 1.0;
    int a = 1;
    for (; a < argc && strncmp(argv[a], "--", 2) == 0; a++) {
        if (strcmp(argv[a], "--pairs") == 0) {
            pairs = 1;
        } else if (strcmp(argv[a], "--no-prune") == 0) {
            prune = 0;
        } else if (strcmp(argv[a], "--threads") == 0 && a + 1 < argc) {
            threads = strtoul(argv[++a], NULL, 10);
        } else if (strcmp(argv[a], "--keep-scale") == 0 && a + 1 < argc) {
            keep_scale = strtod(argv[++a], NULL);
        } else {
            return usage();
        }
    }
    if (argc - a < 2 || (pairs && (argc - a - 1) % 2 != 0)) {
        return usage();
    }
    const char *model_path = argv[a++];
    size_t num_inputs = pairs ? (size_t)(argc - a) / 2 : (size_t)(argc - a);

    if (toprt_abi_version() != TOPRT_ABI_VERSION) {
        fprintf(stderr, "classify: libtoprt ABI %u, toprt.h ABI %d\n", (unsigned)toprt_abi_version(), TOPRT_ABI_VERSION);
        return 1;
    }

    int rc = 1;
    toprt_status s;
    toprt_model *model = NULL;
    toprt_session *session = NULL;
    toprt_result *result = NULL;
    toprt_input *inputs = NULL;
    toprt_model_info info;
    toprt_session_options options;
    toprt_run_options run;

    if ((s = toprt_model_open(model_path, &model)) != TOPRT_OK) {
        report(s, "toprt_model_open");
        goto done;
    }
    if ((s = toprt_model_get_info(model, &info)) != TOPRT_OK) {
        report(s, "toprt_model_get_info");
        goto done;
    }
    toprt_session_options_init(&options);
    options.threads = (uint32_t)threads;
    options.prune_enabled = prune;
    options.keep_scale = (float)keep_scale;
    if ((s = toprt_session_create(model, &options, &session)) != TOPRT_OK) {
        report(s, "toprt_session_create");
        goto done;
    }

    inputs = calloc(num_inputs, sizeof *inputs);
    if (inputs == NULL) {
        fprintf(stderr, "classify: out of memory\n");
        goto done;
    }
    for (size_t i = 0; i < num_inputs; i++) {
        if (pairs) {
            inputs[i].kind = TOPRT_INPUT_PAIR;
            inputs[i].text = argv[a + 2 * i];
            inputs[i].text_len = TOPRT_NUL_TERMINATED;
            inputs[i].text_pair = argv[a + 2 * i + 1];
            inputs[i].text_pair_len = TOPRT_NUL_TERMINATED;
        } else {
            inputs[i].kind = TOPRT_INPUT_TEXT;
            inputs[i].text = argv[a + i];
            inputs[i].text_len = TOPRT_NUL_TERMINATED;
        }
    }
    toprt_run_options_init(&run); /* logits and embedding; the session's pruning */
    if ((s = toprt_session_run(session, inputs, num_inputs, &run, &result)) != TOPRT_OK) {
        report(s, "toprt_session_run");
        goto done;
    }
    for (size_t i = 0; i < num_inputs; i++) {
        if (print_sequence(model, &info, result, i) != 0) {
            goto done;
        }
    }
    rc = 0;
done:
    /* Each free accepts NULL. */
    toprt_result_free(result);
    toprt_session_free(session);
    toprt_model_free(model);
    free(inputs);
    return rc;
}
