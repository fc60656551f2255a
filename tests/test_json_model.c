/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_json_model.c - convd's model JSON (model/json_model.c, docs/MODEL_FORMAT.md).
 *
 * The models in tests/data/json/ come from scripts/gen_json_cases.py with reference outputs
 * computed by an independent numpy/PyTorch implementation of each layer's Keras semantics,
 * of the graph and of the WaveNet. Each is loaded and checked three ways:
 *   offline   cvd_model_forward() equals the reference (1e-4 of the output's scale);
 *   streaming random block splits (0 and 1 included) over several max_block values,
 *             flushed, equal the offline output (1e-5); the seed is printed on failure
 *             (rerun with CVD_SEED=<seed>);
 *   latency   for stride-1 chains, cvd_model_latency() equals the lag a stream shows.
 * Seeded models (no weights) must load identically twice and match the builder API's
 * cvd_model_init_weights(). Every file in tests/data/json/bad/ and every inline text below
 * must be refused with a message naming the file, the JSON path and the offending value;
 * truncated and corrupted inputs must be refused (or loaded) without crashing.
 *
 * Long because: it checks every generated model three ways and every bad file and inline text
 * to the letter, one suite over one loader.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "convd_dsp.h"
#include "convd_model.h"
#include "json_mutate.h"
#include "testutil.h"

#define DATA "tests/data/json/"

/* ---- helpers ------------------------------------------------------------------------------ */

/* A float32 little-endian file as floats; *n values. */
static float *read_f32(const char *path, size_t *n)
{
    size_t len = 0;
    unsigned char *b = (unsigned char *)tu_read_file(path, &len);
    float *f;
    cr_assert_not_null(b, "cannot read %s", path);
    cr_assert_eq(len % 4, 0, "%s: %zu bytes, not whole floats", path, len);
    *n = len / 4;
    f = malloc(sizeof(float) * (*n + 1));
    for (size_t i = 0; i < *n; i++) {
        uint32_t u = (uint32_t)b[4 * i] | (uint32_t)b[4 * i + 1] << 8 |
                     (uint32_t)b[4 * i + 2] << 16 | (uint32_t)b[4 * i + 3] << 24;
        memcpy(&f[i], &u, 4);
    }
    free(b);
    return f;
}

static cvd_model *load_ok(const char *path)
{
    cvd_model *m = NULL;
    cvd_err err = {0};
    int rc = cvd_json_model_load(path, &m, &err);
    cr_assert_eq(rc, 0, "%s: %s", path, err.msg);
    cr_assert_not_null(m);
    return m;
}

static double scale_of(const float *y, size_t n)
{
    double s = 0.0;
    for (size_t i = 0; i < n; i++)
        if (fabs(y[i]) > s)
            s = fabs(y[i]);
    return s > 1e-3 ? s : 1e-3;
}

/* got vs want, |e| <= tol * scale(want) everywhere. */
static void assert_close(const char *what, const float *got, const float *want, size_t n,
                         double tol, const char *ctx)
{
    const double s = scale_of(want, n);
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)got[i] - (double)want[i]);
        if (!(e <= tol * s))
            cr_assert_fail("%s: %s: value %zu: got %.9g, want %.9g (error %.3g, scale %.3g)", ctx,
                           what, i, got[i], want[i], e, s);
    }
}

/* Streams x (n frames) through a fresh net in random blocks, then flushes. Returns the
 * frames written to y (capacity ycap frames); *before_flush gets the frames emitted before
 * the flush. */
static long stream(cvd_model *m, int max_block, cvd_rng *r, const float *x, long n, float *y,
                   long ycap, long *before_flush, const char *ctx)
{
    cvd_net *net = NULL;
    cvd_err err = {0};
    const int C = cvd_model_in_channels(m), F = cvd_model_out_channels(m);
    int rc = cvd_net_create(m, max_block, &net, &err);
    cr_assert_eq(rc, 0, "%s: net_create(max_block=%d): %s", ctx, max_block, err.msg);
    const int mo = cvd_net_max_out(net);
    float *ob = malloc(sizeof(float) * ((size_t)mo * F + 1));
    long got = 0, pos = 0;
    while (pos < n) {
        int nb = (int)tu_randint(r, (uint64_t)max_block + 1), no = -1;
        if (tu_randint(r, 4) == 0)
            nb = (int)tu_randint(r, 2); /* 0 and 1 often */
        if (nb > n - pos)
            nb = (int)(n - pos);
        rc = cvd_net_process(net, x + (size_t)pos * C, nb, ob, &no);
        cr_assert_eq(rc, 0, "%s: process(%d) returned %d", ctx, nb, rc);
        cr_assert(no >= 0 && no <= mo, "%s: process wrote %d frames (max_out %d)", ctx, no, mo);
        cr_assert_leq(got + no, ycap, "%s: the stream gave too many frames", ctx);
        memcpy(y + (size_t)got * F, ob, sizeof(float) * (size_t)no * F);
        got += no;
        pos += nb;
    }
    *before_flush = got;
    for (int calls = 0;; calls++) {
        int no = -1, more = cvd_net_flush(net, ob, &no);
        cr_assert_geq(more, 0, "%s: flush returned %d", ctx, more);
        cr_assert(no >= 0 && no <= mo, "%s: flush wrote %d frames (max_out %d)", ctx, no, mo);
        cr_assert_leq(got + no, ycap, "%s: the flush gave too many frames", ctx);
        memcpy(y + (size_t)got * F, ob, sizeof(float) * (size_t)no * F);
        got += no;
        if (!more)
            break;
        cr_assert_lt(calls, 1000000, "%s: flush never ends", ctx);
    }
    free(ob);
    cvd_net_destroy(net);
    return got;
}

/* The flags of a case in cases.txt: 1 = ref, 0 = seeded; *lag = -1 when not given. */
static int case_flags(const char *name, int *lag)
{
    char *text = tu_read_file(DATA "cases.txt", NULL), *line, *save = NULL;
    int found = -1;
    cr_assert_not_null(text, "cannot read " DATA "cases.txt (run scripts/gen_json_cases.py)");
    *lag = -1;
    for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char nm[128], f1[32], f2[32] = "";
        int k = sscanf(line, "%127s %31s %31s", nm, f1, f2);
        if (k < 2 || strcmp(nm, name) != 0)
            continue;
        found = strcmp(f1, "ref") == 0;
        if (k == 3)
            sscanf(f2, "lag=%d", lag);
    }
    free(text);
    cr_assert_neq(found, -1, "%s is not listed in " DATA "cases.txt", name);
    return found;
}

/* Offline vs stream for several max_block values and random splits; the lag check. */
static void check_stream(cvd_model *m, const float *x, long n, const float *off, long n_off,
                         int lag, const char *name)
{
    static const int blocks[] = {1, 2, 3, 7, 16, 64, 257, 1024};
    const int F = cvd_model_out_channels(m);
    const uint64_t seed = tu_seed();
    const long ycap = n_off + 16;
    float *y = malloc(sizeof(float) * ((size_t)ycap * F + 1));
    char ctx[256];

    for (size_t b = 0; b < sizeof blocks / sizeof blocks[0]; b++) {
        for (int split = 0; split < 2; split++) {
            cvd_rng r;
            long before;
            uint64_t s = seed + 1000 * b + (uint64_t)split;
            cvd_rng_seed(&r, s);
            snprintf(ctx, sizeof ctx, "%s: stream max_block=%d seed %llu", name, blocks[b],
                     (unsigned long long)s);
            long got = stream(m, blocks[b], &r, x, n, y, ycap, &before, ctx);
            cr_assert_eq(got, n_off, "%s: %ld frames streamed, %ld offline", ctx, got, n_off);
            assert_close("stream vs offline", y, off, (size_t)n_off * F, 1e-5, ctx);
            if (lag >= 0) {
                cr_assert_eq(before, n - lag,
                             "%s: %ld frames before the flush for %ld in: the lag is %ld, "
                             "cvd_model_latency says %d",
                             ctx, before, n, n - before, cvd_model_latency(m));
            }
        }
    }
    free(y);
}

/* ---- the reference cases -------------------------------------------------------------------- */

static void run_case(const char *name)
{
    char path[256];
    int lag;
    const int ref = case_flags(name, &lag);
    size_t nx, ny = 0;
    float *want = NULL, *off = NULL;
    long n_off;
    cvd_err err = {0};

    snprintf(path, sizeof path, DATA "%s.json", name);
    cvd_model *m = load_ok(path);
    const int C = cvd_model_in_channels(m), F = cvd_model_out_channels(m);
    snprintf(path, sizeof path, DATA "%s.in.f32", name);
    float *x = read_f32(path, &nx);
    cr_assert_eq(nx % (size_t)C, 0, "%s: input of %zu values for %d channels", name, nx, C);
    const long n = (long)(nx / (size_t)C);

    int rc = cvd_model_forward(m, x, n, &off, &n_off, &err);
    cr_assert_eq(rc, 0, "%s: forward: %s", name, err.msg);
    if (ref) {
        snprintf(path, sizeof path, DATA "%s.out.f32", name);
        want = read_f32(path, &ny);
        cr_assert_eq((size_t)n_off * F, ny,
                     "%s: %ld frames x %d channels offline, the "
                     "reference has %zu values",
                     name, n_off, F, ny);
        assert_close("offline vs reference", off, want, ny, 1e-4, name);
    }
    if (lag >= 0)
        cr_assert_eq(cvd_model_latency(m), lag,
                     "%s: cvd_model_latency() is %d, the chain's "
                     "latency is %d",
                     name, cvd_model_latency(m), lag);
    check_stream(m, x, n, off, n_off, lag, name);

    if (!ref) {
        /* seeded: a second load gives the very same weights */
        snprintf(path, sizeof path, DATA "%s.json", name);
        cvd_model *m2 = load_ok(path);
        float *off2 = NULL;
        long n2;
        cr_assert_eq(cvd_model_forward(m2, x, n, &off2, &n2, &err), 0, "%s", err.msg);
        cr_assert_eq(n2, n_off);
        cr_assert_eq(memcmp(off, off2, sizeof(float) * (size_t)n2 * F), 0,
                     "%s: two loads of a seeded model differ", name);
        free(off2);
        cvd_model_unref(m2);
    }
    free(x);
    free(want);
    free(off);
    cvd_model_unref(m);
}

static const char *const all_cases[] = {
    "seq_chain",        "seq_nested",       "keras_wavenet_gated", "branches",
    "strided",          "stride_roundtrip", "channels_first",      "safetensors_mixed",
    "wavenet_standard", "wavenet_arrays",   "wavenet_blended",     "wavenet_plain",
    "wavenet_in_graph", "wavenet_prewarm",  "seeded_layers",       "seeded_partial",
    "seeded_wavenet",
};

#define CASE(name)                                                                                 \
    Test(json_model, name)                                                                         \
    {                                                                                              \
        run_case(#name);                                                                           \
    }
CASE(seq_chain)
CASE(seq_nested)
CASE(keras_wavenet_gated)
CASE(branches)
CASE(strided)
CASE(stride_roundtrip)
CASE(channels_first)
CASE(safetensors_mixed)
CASE(wavenet_standard)
CASE(wavenet_arrays)
CASE(wavenet_blended)
CASE(wavenet_plain)
CASE(wavenet_in_graph)
CASE(wavenet_prewarm)
CASE(seeded_layers)
CASE(seeded_partial)
CASE(seeded_wavenet)

/* Every case the generator lists has a test above. */
Test(json_model, cases_txt_all_tested)
{
    tu_check_cases_listed(DATA "cases.txt", all_cases, sizeof all_cases / sizeof all_cases[0]);
}

/* ---- what the loader sets besides the weights ------------------------------------------------ */

Test(json_model, names_rate_description)
{
    cvd_model *m = load_ok(DATA "seq_chain.json");
    cr_assert_eq(cvd_model_sample_rate(m), 48000.0);
    cr_assert_str_eq(cvd_model_description(m), "a Sequential chain");
    cr_assert_eq(cvd_model_in_channels(m), 2); /* from the InputLayer's batch_shape */
    static const char *const names[] = {"input", "c1", "c2", "dw", "sep", "d1", "act"};
    cr_assert_eq(cvd_model_node_count(m), 7);
    for (int i = 0; i < 7; i++)
        cr_assert_str_eq(cvd_model_node_name(m, i), names[i]);
    cr_assert_eq(cvd_model_node_op(m, 5), CVD_NODE_DENSE);
    cr_assert_eq(cvd_model_node_conv(m, 2)->padding, CVD_PAD_SAME); /* "Same" */
    cr_assert_eq(cvd_model_node_conv(m, 1)->dilation_rate, 2);
    cvd_model_unref(m);

    /* unnamed layers take Keras's default names */
    m = load_ok(DATA "seq_nested.json");
    static const char *const keras[] = {"input", "conv1d", "conv1d_1", "dense", "dense_1"};
    cr_assert_eq(cvd_model_node_count(m), 5);
    for (int i = 0; i < 5; i++)
        cr_assert_str_eq(cvd_model_node_name(m, i), keras[i]);
    cr_assert_eq(cvd_model_node_conv(m, 1)->groups, 2);
    cr_assert_eq(cvd_model_sample_rate(m), 0.0);
    cvd_model_unref(m);

    /* the WaveNet shorthand: one node named "wavenet"; prewarm off unless asked */
    m = load_ok(DATA "wavenet_standard.json");
    cr_assert_eq(cvd_model_node_count(m), 2);
    cr_assert_str_eq(cvd_model_node_name(m, 1), "wavenet");
    const cvd_wn_config *wn = cvd_model_node_wavenet(m, 1);
    cr_assert_not_null(wn);
    cr_assert_eq(wn->prewarm, 0);
    cr_assert_eq(wn->n_arrays, 1);
    cr_assert_eq(wn->arrays[0].n_layers, 10);
    cr_assert_eq(wn->arrays[0].layers[9].dilation, 512);
    cr_assert_eq(cvd_model_param_count(m), 10754);
    cvd_model_unref(m);
    m = load_ok(DATA "wavenet_prewarm.json");
    cr_assert_eq(cvd_model_node_wavenet(m, 1)->prewarm, 1);
    cvd_model_unref(m);
}

/* Layers without weights are cvd_model_init_weights(seed) of the same graph. */
Test(json_model, seeded_equals_builder)
{
    cvd_model *a = load_ok(DATA "seeded_layers.json"), *b = NULL;
    cvd_conv_config c;
    int ins[2];
    float x[200], *ya, *yb;
    long na, nb;
    cvd_err err = {0};

    cr_assert_eq(cvd_model_create(1, &b, &err), 0);
    cvd_conv_config_init(&c, CVD_CONV1D);
    c.filters = 4;
    c.kernel_size = 3;
    c.padding = CVD_PAD_CAUSAL;
    c.activation = CVD_ACT_TANH;
    ins[0] = cvd_model_add_conv(b, "c1", &c, 0, &err);
    cvd_conv_config_init(&c, CVD_CONV1D);
    c.filters = 4;
    c.kernel_size = 5;
    c.padding = CVD_PAD_SAME;
    ins[1] = cvd_model_add_conv(b, "c2", &c, 0, &err);
    int s = cvd_model_add_merge(b, "s", CVD_NODE_ADD, ins, 2, &err);
    cr_assert_geq(cvd_model_add_dense(b, "d", 1, CVD_ACT_LINEAR, 1, s, &err), 0, "%s", err.msg);
    cvd_model_init_weights(b, 11);
    for (int i = 0; i < 200; i++)
        x[i] = (float)sin(i * 0.37) * 0.8f;
    cr_assert_eq(cvd_model_forward(a, x, 200, &ya, &na, &err), 0);
    cr_assert_eq(cvd_model_forward(b, x, 200, &yb, &nb, &err), 0);
    cr_assert_eq(na, nb);
    cr_assert_eq(memcmp(ya, yb, sizeof(float) * (size_t)na), 0,
                 "a seeded JSON model differs from the builder's init_weights(seed)");
    free(ya);
    free(yb);
    cvd_model_unref(a);
    cvd_model_unref(b);

    /* the WaveNet shorthand, seed 7 */
    a = load_ok(DATA "seeded_wavenet.json");
    cr_assert_eq(cvd_model_create(1, &b, &err), 0);
    cvd_wn_config *wn = calloc(1, sizeof *wn);
    *wn = *cvd_model_node_wavenet(a, 1);
    cr_assert_eq(cvd_model_add_wavenet(b, "wavenet", wn, 0, &err), 1, "%s", err.msg);
    free(wn);
    cvd_model_init_weights(b, 7);
    cr_assert_eq(cvd_model_forward(a, x, 200, &ya, &na, &err), 0);
    cr_assert_eq(cvd_model_forward(b, x, 200, &yb, &nb, &err), 0);
    cr_assert_eq(memcmp(ya, yb, sizeof(float) * (size_t)na), 0);
    free(ya);
    free(yb);
    cvd_model_unref(a);
    cvd_model_unref(b);
}

/* Text with `from` replaced by `to` (once); malloc'd. */
static char *replaced(const char *text, const char *from, const char *to)
{
    const char *p = strstr(text, from);
    cr_assert_not_null(p, "'%s' not found", from);
    size_t a = (size_t)(p - text), lf = strlen(from), lt = strlen(to), n = strlen(text);
    char *r = malloc(n - lf + lt + 1);
    memcpy(r, text, a);
    memcpy(r + a, to, lt);
    memcpy(r + a + lt, p + lf, n - a - lf + 1);
    return r;
}

/* Text with every `from` removed; malloc'd. */
static char *removed_all(const char *text, const char *from)
{
    char *r = malloc(strlen(text) + 1), *o = r;
    const size_t lf = strlen(from);
    while (*text) {
        if (strncmp(text, from, lf) == 0) {
            text += lf;
            continue;
        }
        *o++ = *text++;
    }
    *o = '\0';
    return r;
}

static float *forward_text(const char *text, const char *dir, long n, long *n_out)
{
    cvd_model *m = NULL;
    cvd_err err = {0};
    int rc = cvd_json_model_parse(text, strlen(text), "text.json", dir, &m, &err);
    cr_assert_eq(rc, 0, "%s", err.msg);
    const int C = cvd_model_in_channels(m);
    float *x = malloc(sizeof(float) * (size_t)n * C), *y = NULL;
    for (long i = 0; i < n * C; i++)
        x[i] = (float)sin(i * 0.21) * 0.7f;
    cr_assert_eq(cvd_model_forward(m, x, n, &y, n_out, &err), 0, "%s", err.msg);
    free(x);
    cvd_model_unref(m);
    return y;
}

/* The seed matters; weights given in the file do not depend on it. */
Test(json_model, seed_changes_only_seeded_layers)
{
    char *t = tu_read_file(DATA "seeded_partial.json", NULL);
    cr_assert_not_null(t);
    char *t2 = replaced(t, "\"seed\": 5", "\"seed\": 6");
    long n1, n2;
    float *y1 = forward_text(t, DATA, 100, &n1), *y2 = forward_text(t2, DATA, 100, &n2);
    cr_assert_eq(n1, n2);
    cr_assert_neq(memcmp(y1, y2, sizeof(float) * (size_t)n1), 0, "the seed changed nothing");
    free(y1);
    free(y2);
    free(t2);
    free(t);

    /* a fully weighted model ignores the seed */
    t = tu_read_file(DATA "wavenet_arrays.json", NULL);
    t2 = replaced(t, "\"version\": 1,", "\"version\": 1, \"seed\": 99,");
    y1 = forward_text(t, DATA, 100, &n1);
    y2 = forward_text(t2, DATA, 100, &n2);
    cr_assert_eq(memcmp(y1, y2, sizeof(float) * (size_t)n1), 0);
    free(y1);
    free(y2);
    free(t2);
    free(t);
}

/* Spellings that mean the same model: the shorthand and a WaveNet layer; an alias class
 * name; weights_file relative to the current directory when dir is NULL. */
Test(json_model, equivalent_spellings)
{
    long n1, n2;
    char *t = tu_read_file(DATA "wavenet_standard.json", NULL);
    float *y1 = forward_text(t, DATA, 300, &n1);
    const char *layer =
        "{\"format\": \"convd-model\", \"version\": 1, \"weights_file\": "
        "\"tests/data/json/wavenet_standard.safetensors\", \"layers\": [{\"class_name\": "
        "\"WaveNet\", \"name\": \"wavenet\", \"config\": {\"channels\": 16, \"kernel_size\": "
        "3, \"dilations\": [1, 2, 4, 8, 16, 32, 64, 128, 256, 512], \"activation\": \"Tanh\", "
        "\"head_size\": 1}}]}";
    float *y2 = forward_text(layer, NULL, 300, &n2);
    cr_assert_eq(n1, n2);
    cr_assert_eq(memcmp(y1, y2, sizeof(float) * (size_t)n1), 0);
    free(y1);
    free(y2);
    free(t);

    const char *a = "{\"format\": \"convd-model\", \"version\": 1, \"seed\": 3, \"layers\": "
                    "[{\"class_name\": \"Conv1D\", \"config\": {\"filters\": 2, "
                    "\"kernel_size\": 3, \"padding\": \"causal\"}}]}";
    char *b = replaced(a, "\"Conv1D\"", "\"Convolution1D\"");
    y1 = forward_text(a, NULL, 50, &n1);
    y2 = forward_text(b, NULL, 50, &n2);
    cr_assert_eq(memcmp(y1, y2, sizeof(float) * (size_t)n1 * 2), 0);
    free(y1);
    free(y2);
    free(b);

    /* layers that omit data_format take the top-level one (Keras's image_data_format) */
    t = tu_read_file(DATA "channels_first.json", NULL);
    char *t2 = removed_all(t, ", \"data_format\": \"channels_first\"");
    char *t3 =
        replaced(t2, "\"version\": 1,", "\"version\": 1, \"data_format\": \"channels_first\",");
    cr_assert_null(strstr(t2, "channels_first"));
    y1 = forward_text(t, NULL, 60, &n1);
    y2 = forward_text(t3, NULL, 60, &n2);
    cr_assert_eq(n1, n2);
    cr_assert_eq(memcmp(y1, y2, sizeof(float) * (size_t)n1 * 2), 0);
    free(y1);
    free(y2);
    free(t3);
    free(t2);
    free(t);
}

/* ---- refusals ----------------------------------------------------------------------------------
 */

/* Every file of bad/expect.txt is refused; the message names the file and every fragment. */
Test(json_model, bad_files)
{
    char *text = tu_read_file(DATA "bad/expect.txt", NULL), *line, *save = NULL;
    int count = 0;
    cr_assert_not_null(text, "cannot read " DATA "bad/expect.txt");
    for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char path[512], *tab = strchr(line, '\t');
        cvd_model *m = (cvd_model *)(void *)&count; /* must come back NULL */
        cvd_err err = {0};
        cr_assert_not_null(tab, "bad/expect.txt: no fragments on '%s'", line);
        *tab = '\0';
        snprintf(path, sizeof path, DATA "bad/%s", line);
        int rc = cvd_json_model_load(path, &m, &err);
        cr_assert_lt(rc, 0, "%s was accepted", path);
        cr_assert_null(m, "%s: refused but *out is not NULL", path);
        cr_assert_eq(err.code, rc, "%s: err.code %d, returned %d", path, err.code, rc);
        cr_assert_eq(strncmp(err.msg, path, strlen(path)), 0,
                     "%s: the message does not start with the file name: %s", path, err.msg);
        for (char *fr = tab + 1, *next; fr && *fr; fr = next) {
            next = strchr(fr, '\t');
            if (next)
                *next++ = '\0';
            cr_assert_not_null(strstr(err.msg, fr), "%s: the message lacks \"%s\": %s", path, fr,
                               err.msg);
        }
        count++;
    }
    cr_assert_geq(count, 80, "only %d refusal files", count);
    free(text);
}

typedef struct refusal {
    const char *text;
    const char *frag[3];
} refusal;

#define HEAD "{\"format\": \"convd-model\", \"version\": 1, "
#define CONV1(cfg)                                                                                 \
    HEAD "\"layers\": [{\"class_name\": \"Conv1D\", \"name\": \"c\", \"config\": " cfg "}]}"
#define WN(cfg)                                                                                    \
    HEAD "\"wavenet\": {\"channels\": 2, \"kernel_size\": 2, \"dilations\": [1, 2]" cfg "}}"

static const refusal refusals[] = {
    /* top level */
    {"", {"line 1", "invalid JSON"}},
    {"   \n\n  {\"format\"", {"line 3", "invalid JSON"}},
    {"null", {"line 1", "expected near 'null'"}},
    {"\"convd-model\"", {"line 1", "invalid JSON"}},
    {"{}", {"format: missing"}},
    {"{\"format\": 3}", {"format=3"}},
    {"{\"format\": \"convd-model\"}", {"version: missing"}},
    {"{\"format\": \"convd-model\", \"version\": \"1\"}", {"version='1'"}},
    {"{\"format\": \"convd-model\", \"version\": 1.0}", {"version=1"}},
    {HEAD "\"layers\": {}}", {"layers={}", "must be a list"}},
    {HEAD "\"layers\": [], \"extra\": 1}", {"extra", "unknown key"}},
    {HEAD "\"input_channels\": 1.5, \"layers\": []}", {"input_channels=1.5", "integer"}},
    {HEAD "\"input_channels\": 70000, \"layers\": []}", {"input_channels=70000", "<= 65536"}},
    {HEAD "\"input_channels\": true, \"layers\": []}", {"input_channels=true"}},
    {HEAD "\"seed\": \"x\", \"layers\": []}", {"seed='x'", "integer"}},
    {HEAD "\"name\": 5, \"layers\": []}", {"name=5", "string"}},
    {HEAD "\"description\": [], \"layers\": []}", {"description=[]", "string"}},
    {HEAD "\"sample_rate\": -48000, \"layers\": []}", {"sample_rate=-48000"}},
    {HEAD "\"weights_file\": 7, \"layers\": []}", {"weights_file=7"}},
    {HEAD "\"weights_file\": \"\", \"layers\": []}", {"weights_file=''", "must name a file"}},
    {HEAD "\"data_format\": \"NCW\", \"layers\": [{\"class_name\": \"Identity\"}]}",
     {"inline.json: data_format='NCW'"}},
    {HEAD "\"output\": 3, \"layers\": [{\"class_name\": \"Identity\"}]}", {"output=3"}},
    /* layers */
    {HEAD "\"layers\": [5]}", {"layers[0]=5", "must be an object"}},
    {HEAD "\"layers\": [{}]}", {"layers[0]: class_name: missing"}},
    {HEAD "\"layers\": [{\"class_name\": null}]}", {"layers[0]: class_name=null"}},
    {HEAD "\"layers\": [{\"class_name\": \"Conv2D\", \"name\": \"img\"}]}",
     {"layers[0] (img): class_name='Conv2D'", "2-D"}},
    {HEAD "\"layers\": [{\"class_name\": \"Dense\", \"name\": 3}]}", {"layers[0]: name=3"}},
    {HEAD "\"layers\": [{\"class_name\": \"Dense\", \"name\": \"\"}]}", {"name=''", "empty"}},
    {HEAD "\"layers\": [{\"class_name\": \"Dense\", \"name\": \"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
          "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
          "\"}]}",
     {"name='xxxx", "longer than 95 bytes"}},
    {HEAD "\"layers\": [{\"class_name\": \"Dense\", \"name\": \"d\", \"bogus\": 1}]}",
     {"layers[0] (d): bogus", "unknown key for a layer"}},
    {HEAD "\"layers\": [{\"class_name\": \"Dense\", \"name\": \"d\"}]}",
     {"layers[0] (d): config: missing", "units"}},
    {HEAD "\"layers\": [{\"class_name\": \"Dense\", \"name\": \"d\", \"config\": {\"units\": "
          "null}}]}",
     {"layers[0] (d): config.units=null", "integer"}},
    {HEAD "\"layers\": [{\"class_name\": \"Dense\", \"name\": \"d\", \"config\": {\"units\": 2, "
          "\"use_bias\": 1}}]}",
     {"layers[0] (d): config.use_bias=1", "true or false"}},
    {HEAD "\"layers\": [{\"class_name\": \"Dense\", \"name\": \"d\", \"config\": {\"units\": 2,"
          " \"activation\": 5}}]}",
     {"config.activation=5"}},
    {HEAD "\"layers\": [{\"class_name\": \"Dense\", \"name\": \"d\", \"config\": {\"units\": 2,"
          " \"activation\": \"Relu\"}}]}",
     {"activation='Relu'", "Could not interpret activation function identifier"}},
    {HEAD "\"layers\": [{\"class_name\": \"Dense\", \"name\": \"d\", \"config\": {\"units\": 2},"
          " \"inputs\": 5}]}",
     {"layers[0] (d): inputs=5", "layer name"}},
    {HEAD "\"layers\": [{\"class_name\": \"Dense\", \"name\": \"d\", \"config\": {\"units\": 2},"
          " \"inputs\": []}]}",
     {"layers[0] (d): inputs=[]", "at least one"}},
    {HEAD "\"layers\": [{\"class_name\": \"Dense\", \"name\": \"d\", \"config\": {\"units\": 2},"
          " \"inputs\": [\"input\", \"input\"]}]}",
     {"layers[0] (d): inputs=['input', 'input']", "Dense reads one input, 2 given"}},
    {HEAD "\"layers\": [{\"class_name\": \"Dense\", \"name\": \"d\", \"config\": {\"units\": 2},"
          " \"weights\": [[1, 2, 3], [1, 2]]}]}",
     {"layers[0] (d): weights[0]=[1, 2, 3]", "3 values", "(1, 2)"}},
    {HEAD "\"layers\": [{\"class_name\": \"Dense\", \"name\": \"d\", \"config\": {\"units\": 2},"
          " \"weights\": [[[1, 2]], [1, true]]}]}",
     {"layers[0] (d): weights[1][1]=true", "must be a number"}},
    {HEAD "\"layers\": [{\"class_name\": \"Dense\", \"name\": \"d\", \"config\": {\"units\": 2},"
          " \"weights\": [[[1, 2]], 7]}]}",
     {"layers[0] (d): weights[1]=7", "must be a list of numbers"}},
    {HEAD "\"layers\": [{\"class_name\": \"Add\", \"name\": \"a\", \"inputs\": [\"input\", "
          "\"input\"], \"weights\": [[1]]}]}",
     {"layers[0] (a): weights=[[1]]", "Add has no weights"}},
    {HEAD "\"layers\": [{\"class_name\": \"Add\", \"name\": \"a\", \"inputs\": [\"input\", "
          "\"input\"], \"config\": {\"axis\": -1}}]}",
     {"layers[0] (a): config.axis", "unknown key for Add"}},
    {HEAD "\"layers\": [{\"class_name\": \"Concatenate\", \"name\": \"k\", \"inputs\": "
          "[\"input\", \"input\"], \"config\": {\"axis\": \"channels\"}}]}",
     {"layers[0] (k): config.axis='channels'", "integer"}},
    {HEAD "\"layers\": [{\"class_name\": \"Concatenate\", \"name\": \"k\", \"inputs\": "
          "[\"input\", \"input\"], \"config\": {\"axis\": 0}}]}",
     {"layers[0] (k): config.axis=0", "channels only"}},
    {HEAD "\"layers\": [{\"class_name\": \"Activation\", \"name\": \"a\", \"config\": {}}]}",
     {"layers[0] (a): config.activation: missing"}},
    {HEAD "\"layers\": [{\"class_name\": \"InputLayer\", \"name\": \"x\", \"config\": "
          "{\"batch_shape\": [null, 3]}}, {\"class_name\": \"Identity\"}]}",
     {"layers[0] (x): config.batch_shape=[null, 3]", "list of 3"}},
    {HEAD "\"layers\": [{\"class_name\": \"InputLayer\", \"name\": \"x\", \"config\": "
          "{\"batch_shape\": [null, null, -2]}}, {\"class_name\": \"Identity\"}]}",
     {"batch_shape=[null, null, -2]", "positive"}},
    {HEAD "\"layers\": [{\"class_name\": \"InputLayer\", \"name\": \"x\", \"config\": "
          "{\"sparse\": true}}, {\"class_name\": \"Identity\"}]}",
     {"layers[0] (x): config.sparse=true", "not supported"}},
    {HEAD "\"layers\": [{\"class_name\": \"InputLayer\", \"name\": \"x\", \"inputs\": [\"x\"]}, "
          "{\"class_name\": \"Identity\"}]}",
     {"layers[0] (x): inputs=['x']", "reads nothing"}},
    {HEAD "\"layers\": [{\"class_name\": \"Identity\", \"name\": \"a\", \"inputs\": \"b\"}, "
          "{\"class_name\": \"Identity\", \"name\": \"b\"}], \"output\": \"b\"}",
     {"cycle", "a -> b -> a"}},
    /* Conv1D configs */
    {HEAD "\"layers\": [{\"class_name\": \"Conv1D\", \"name\": \"c\"}]}",
     {"layers[0] (c): config: missing", "kernel_size and filters"}},
    {CONV1("{\"filters\": 2}"), {"layers[0] (c): config.kernel_size: missing"}},
    {CONV1("{\"filters\": 2, \"kernel_size\": 0}"), {"config.kernel_size=0", ">= 1"}},
    {CONV1("{\"filters\": 2, \"kernel_size\": 3.5}"), {"config.kernel_size=3.5", "integer"}},
    {CONV1("{\"filters\": 2, \"kernel_size\": [\"3\"]}"), {"config.kernel_size=['3']"}},
    {CONV1("{\"filters\": 2, \"kernel_size\": []}"), {"config.kernel_size=[]"}},
    {CONV1("{\"filters\": 2, \"kernel_size\": 3, \"strides\": -1}"), {"config.strides=-1"}},
    {CONV1("{\"filters\": 2, \"kernel_size\": 3, \"dilation_rate\": [0]}"),
     {"config.dilation_rate=[0]"}},
    {CONV1("{\"filters\": 2, \"kernel_size\": 3, \"padding\": null}"),
     {"config.padding=null", "string"}},
    {CONV1("{\"filters\": 2, \"kernel_size\": 3, \"padding\": \"SAME \"}"), {"padding='SAME '"}},
    {CONV1("{\"filters\": 2, \"kernel_size\": 3, \"data_format\": \"channels_middle\"}"),
     {"data_format='channels_middle'"}},
    {CONV1("{\"filters\": 2, \"kernel_size\": 3, \"groups\": 0}"), {"config.groups=0"}},
    {CONV1("{\"filters\": 2, \"kernel_size\": 3, \"depth_multiplier\": 2}"),
     {"config.depth_multiplier", "unknown key for Conv1D"}},
    {CONV1("{\"filters\": 2, \"kernel_size\": 3, \"output_padding\": 1}"),
     {"config.output_padding", "unknown key for Conv1D"}},
    {CONV1("{\"filters\": 2, \"kernel_size\": 3, \"kernel_size \": 3}"),
     {"config.kernel_size ", "unknown key"}},
    {CONV1("{\"filters\": 65537, \"kernel_size\": 1}"), {"65537 output channels"}},
    {CONV1("{\"filters\": 1048576, \"kernel_size\": 16777216}"), {"layers[0] (c): config"}},
    /* WaveNet */
    {HEAD "\"wavenet\": 5}", {"wavenet=5", "must be an object"}},
    {HEAD "\"wavenet\": {}}", {"wavenet.channels: missing"}},
    {WN(", \"dilations\": [1, 2]"), {"duplicate object key"}},
    {HEAD "\"wavenet\": {\"channels\": 2, \"kernel_size\": 2, \"dilations\": \"1,2\"}}",
     {"wavenet.dilations='1,2'", "non-empty list"}},
    {HEAD "\"wavenet\": {\"channels\": 2, \"kernel_size\": 2, \"dilations\": []}}",
     {"wavenet.dilations=[]"}},
    {HEAD "\"wavenet\": {\"channels\": 2, \"dilations\": [1]}}", {"wavenet.kernel_size: missing"}},
    {HEAD "\"wavenet\": {\"channels\": 2, \"kernel_size\": 2000, \"dilations\": [1]}}",
     {"wavenet.kernel_size=2000", "1..1024"}},
    {HEAD "\"wavenet\": {\"channels\": 2, \"kernel_size\": [2, \"3\"], \"dilations\": [1, 2]}}",
     {"wavenet.kernel_size[1]='3'"}},
    {WN(", \"gated\": 1"), {"wavenet.gated=1", "true or false"}},
    {WN(", \"gated\": true, \"gating\": \"gated\""), {"gated or gating, not both"}},
    {WN(", \"gating\": [\"gated\", 3]"), {"wavenet.gating[1]=3"}},
    {WN(", \"head_bias\": \"yes\""), {"wavenet.head_bias='yes'"}},
    {WN(", \"residual\": null"), {"wavenet.residual=null"}},
    {WN(", \"skip\": 0"), {"wavenet.skip=0"}},
    {WN(", \"prewarm\": \"no\""), {"wavenet.prewarm='no'"}},
    {WN(", \"head_size\": 0"), {"wavenet.head_size=0", ">= 1"}},
    {WN(", \"condition_size\": 2"), {"wavenet.condition_size=2", "must be 1"}},
    {WN(", \"activation\": 5"), {"wavenet.activation=5"}},
    {WN(", \"activation\": [\"Tanh\"]"), {"wavenet.activation=['Tanh']", "one entry per"}},
    {WN(", \"activation\": [\"Tanh\", \"softmax\"]"), {"wavenet.activation[1]", "softmax"}},
    {WN(", \"activation\": {\"type\": 3}"), {"wavenet.activation.type=3"}},
    {WN(", \"activation\": {\"negative_slope\": 0.1}"), {"wavenet.activation.type: missing"}},
    {WN(", \"activation\": {\"type\": \"LeakyReLU\", \"negative_slope\": \"x\"}"),
     {"wavenet.activation.negative_slope='x'", "number"}},
    {WN(", \"activation\": {\"type\": \"LeakyReLU\", \"negative_slope\": 1e300}"),
     {"wavenet.activation.negative_slope=1e+300", "finite float32"}},
    {WN(", \"activation\": {\"type\": \"PReLU\", \"negative_slopes\": []}"),
     {"wavenet.activation.negative_slopes=[]"}},
    {WN(", \"activation\": {\"type\": \"Hardtanh\", \"max_val\": 2}"),
     {"wavenet.activation.max_val=2", "not a parameter of Hardtanh"}},
    {WN(", \"secondary_activation\": \"Nope\""), {"wavenet.secondary_activation", "Nope"}},
    {HEAD "\"wavenet\": {\"arrays\": {}}}", {"wavenet.arrays={}", "non-empty list"}},
    {HEAD "\"wavenet\": {\"arrays\": [5]}}", {"wavenet.arrays[0]=5", "must be an object"}},
    {HEAD "\"wavenet\": {\"arrays\": [{}, {}, {}, {}, {}, {}, {}, {}, {}]}}",
     {"wavenet.arrays=(an array of 9)", "at most 8"}},
    {HEAD "\"wavenet\": {\"channels\": 2, \"kernel_size\": 2, \"dilations\": [1]}, "
          "\"weights\": {\"a\": 1}}",
     {"weights={\"a\":1}", "must be a list"}},
    {HEAD "\"wavenet\": {\"channels\": 2, \"kernel_size\": 2, \"dilations\": [1]}, "
          "\"output\": \"wavenet\"}",
     {"output='wavenet'", "shorthand"}},
    {HEAD "\"layers\": [{\"class_name\": \"WaveNet\", \"name\": \"w\"}]}",
     {"layers[0] (w): config: missing"}},
    {HEAD "\"layers\": [{\"class_name\": \"WaveNet\", \"name\": \"w\", \"config\": {\"channels\":"
          " 2, \"kernel_size\": 2, \"dilations\": [1], \"input_size\": 2}}]}",
     {"layers[0] (w): config.input_size=2", "must be 1"}},
    /* the layers beyond convolutions */
    {HEAD "\"layers\": [{\"class_name\": \"Flatten\", \"name\": \"f\"}]}",
     {"layers[0] (f)", "whole window", "no fixed length"}},
    {HEAD "\"layers\": [{\"class_name\": \"GlobalMaxPooling1D\", \"name\": \"g\"}]}",
     {"layers[0] (g)", "whole window"}},
    {HEAD "\"layers\": [{\"class_name\": \"MaxPooling1D\", \"name\": \"p\", \"config\": "
          "{\"pool_size\": 0}}]}",
     {"layers[0] (p): config.pool_size=0", "must be >= 1"}},
    {HEAD "\"layers\": [{\"class_name\": \"AveragePooling1D\", \"name\": \"p\", \"config\": "
          "{\"padding\": \"causal\"}}]}",
     {"layers[0] (p)", "padding='causal'", "valid or same"}},
    {HEAD "\"layers\": [{\"class_name\": \"Dropout\", \"name\": \"d\", \"config\": "
          "{\"rate\": 1.5}}]}",
     {"layers[0] (d): config.rate=1.5", "[0, 1]"}},
    {HEAD "\"layers\": [{\"class_name\": \"BatchNormalization\", \"name\": \"b\", "
          "\"config\": {\"axis\": 0}}]}",
     {"layers[0] (b): config.axis=0", "batch"}},
    {HEAD "\"layers\": [{\"class_name\": \"LayerNormalization\", \"name\": \"l\", "
          "\"config\": {\"axis\": [1, 2]}}]}",
     {"layers[0] (l): config.axis=[1, 2]", "one axis"}},
    {HEAD "\"layers\": [{\"class_name\": \"Rescaling\", \"name\": \"r\", \"config\": "
          "{\"scale\": [1, 2]}}]}",
     {"layers[0] (r): config.scale=[1, 2]", "one number"}},
    {HEAD "\"layers\": [{\"class_name\": \"ZeroPadding1D\", \"name\": \"z\", \"config\": "
          "{\"padding\": [1, 2, 3]}}]}",
     {"layers[0] (z): config.padding=[1, 2, 3]", "pair"}},
    {HEAD "\"layers\": [{\"class_name\": \"Permute\", \"name\": \"p\", \"config\": "
          "{\"dims\": [2, 1]}}]}",
     {"layers[0] (p): config.dims=[2, 1]", "whole window"}},
    {HEAD "\"layers\": [{\"class_name\": \"Reshape\", \"name\": \"r\", \"config\": "
          "{\"target_shape\": [1, 2, 3]}}]}",
     {"layers[0] (r): config.target_shape=[1, 2, 3]", "1 or 2"}},
    {HEAD "\"input_shape\": [null, 4, 1], \"layers\": [{\"class_name\": \"Reshape\", "
          "\"name\": \"r\", \"config\": {\"target_shape\": [3, -1]}}]}",
     {"layers[0] (r)", "4 values do not divide"}},
    {HEAD "\"input_shape\": [null, 4, 1], \"layers\": [{\"class_name\": \"Cropping1D\", "
          "\"name\": \"c\", \"config\": {\"cropping\": [2, 2]}}]}",
     {"layers[0] (c)", "Cropping1D 'c'", "leaves nothing"}},
    {HEAD "\"layers\": [{\"class_name\": \"LSTM\", \"name\": \"l\"}]}",
     {"layers[0] (l): class_name='LSTM'", "recurrent"}},
};

Test(json_model, inline_refusals)
{
    int checked = 0;
    for (size_t i = 0; i < sizeof refusals / sizeof refusals[0]; i++) {
        const refusal *r = &refusals[i];
        cvd_model *m = (cvd_model *)(void *)&checked;
        cvd_err err = {0};
        int rc = cvd_json_model_parse(r->text, strlen(r->text), "inline.json", NULL, &m, &err);
        cr_assert_lt(rc, 0, "refusal %zu accepted: %s", i, r->text);
        cr_assert_null(m, "refusal %zu: *out is not NULL", i);
        cr_assert_eq(strncmp(err.msg, "inline.json: ", 13), 0, "refusal %zu: %s", i, err.msg);
        for (int k = 0; k < 3 && r->frag[k]; k++)
            cr_assert_not_null(strstr(err.msg, r->frag[k]),
                               "refusal %zu: the message lacks \"%s\": %s\n(text: %s)", i,
                               r->frag[k], err.msg, r->text);
        checked++;
    }
    cr_assert_geq(checked, 100);
}

/* convd's JSON takes the Keras layers too, and a fixed input length makes a windowed model. */
Test(json_model, windowed_classifier)
{
    const char *t =
        "{\"format\": \"convd-model\", \"version\": 1, \"seed\": 4, \"layers\": ["
        "{\"class_name\": \"InputLayer\", \"config\": {\"batch_shape\": [null, 12, 2]}},"
        "{\"class_name\": \"Conv1D\", \"config\": {\"filters\": 4, \"kernel_size\": 3}},"
        "{\"class_name\": \"BatchNormalization\"},"
        "{\"class_name\": \"MaxPool1D\", \"config\": {\"pool_size\": 2}},"
        "{\"class_name\": \"Flatten\"},"
        "{\"class_name\": \"Dropout\", \"config\": {\"rate\": 0.5}},"
        "{\"class_name\": \"Dense\", \"config\": {\"units\": 3, \"activation\": \"softmax\"}}]}";
    cvd_model *m;
    cvd_err err = {0};
    cr_assert_eq(cvd_json_model_parse(t, strlen(t), "cls.json", NULL, &m, &err), 0, "%s", err.msg);
    cr_assert_eq(cvd_model_mode(m), CVD_MODE_WINDOWED);
    cr_assert_eq(cvd_model_window(m), 12);
    cr_assert_eq(cvd_model_out_channels(m), 3);
    cr_assert_str_eq(cvd_model_node_name(m, 3), "max_pooling1d");
    cr_assert_str_eq(cvd_model_node_class(m, 5), "Dropout");
    cr_assert_str_eq(cvd_model_mode_reason(m), "Flatten 'flatten' flattens the whole window");
    float x[24 * 2] = {0}, *y = NULL;
    long n;
    for (int i = 0; i < 48; i++)
        x[i] = (float)sin(i * 0.3);
    cr_assert_eq(cvd_model_forward(m, x, 24, &y, &n, &err), 0, "%s", err.msg);
    cr_assert_eq(n, 2);
    for (int r = 0; r < 2; r++)
        cr_assert(fabs(y[3 * r] + y[3 * r + 1] + y[3 * r + 2] - 1.0) < 1e-5);
    free(y);
    cvd_model_unref(m);
}

/* Values a float32 holds only as zero or a denormal are accepted (they are finite). */
Test(json_model, tiny_weights)
{
    const char *t = CONV1("{\"filters\": 2, \"kernel_size\": 3, \"padding\": \"valid\"}, "
                          "\"weights\": [[0.1, 0.2, 0.3, 0.4, 0.5, 0.6], [0, 1e-46]]");
    cvd_model *m;
    cvd_err err = {0};
    cr_assert_eq(cvd_json_model_parse(t, strlen(t), "tiny.json", NULL, &m, &err), 0, "%s", err.msg);
    cvd_model_unref(m);
}

/* Calls without an err, without text, and with text that is not NUL-terminated. */
Test(json_model, api_edges)
{
    cvd_model *m = (cvd_model *)(void *)&m;
    const char *ok = CONV1("{\"filters\": 2, \"kernel_size\": 3}");
    cr_assert_lt(cvd_json_model_parse("{", 1, "x.json", NULL, &m, NULL), 0);
    cr_assert_null(m);
    cr_assert_lt(cvd_json_model_parse(NULL, 0, NULL, NULL, &m, NULL), 0);
    cr_assert_lt(cvd_json_model_load(DATA "no-such-file.json", &m, NULL), 0);
    cr_assert_null(m);
    cvd_err err = {0};
    cr_assert_eq(cvd_json_model_load(DATA, &m, &err), CVD_EIO); /* a directory */
    cr_assert_not_null(strstr(err.msg, DATA), "%s", err.msg);
    cr_assert_eq(cvd_json_model_load(DATA "nope.json", &m, &err), CVD_EIO);
    cr_assert_not_null(strstr(err.msg, "nope.json: cannot read"), "%s", err.msg);

    /* only `len` bytes are read */
    size_t n = strlen(ok);
    char *buf = malloc(n + 8);
    memcpy(buf, ok, n);
    memcpy(buf + n, "garbage", 8);
    cr_assert_eq(cvd_json_model_parse(buf, n, "x.json", NULL, &m, &err), 0, "%s", err.msg);
    cvd_model_unref(m);
    cr_assert_lt(cvd_json_model_parse(buf, n + 7, "x.json", NULL, &m, &err), 0);
    cr_assert_not_null(strstr(err.msg, "x.json: line 1"), "%s", err.msg);
    free(buf);
}

/* ---- robustness ---------------------------------------------------------------------------- */

/* A parse that must not crash; a refusal must name the file. A model that loads must run. */
static void parse_any(const char *text, size_t len, const char *dir, const char *ctx)
{
    cvd_model *m = NULL;
    cvd_err err = {0};
    int rc = cvd_json_model_parse(text, len, "fuzz.json", dir, &m, &err);
    if (rc < 0) {
        cr_assert_null(m, "%s", ctx);
        cr_assert_eq(strncmp(err.msg, "fuzz.json", 9), 0, "%s: %s", ctx, err.msg);
        cr_assert_gt(strlen(err.msg), 12, "%s: %s", ctx, err.msg);
        return;
    }
    cr_assert_not_null(m, "%s", ctx);
    if (cvd_model_param_count(m) < 200000 && cvd_model_receptive_field(m) < 100000) {
        float x[64 * 8] = {0}, *y = NULL;
        long ny;
        x[0] = 1.0f;
        if (cvd_model_in_channels(m) <= 8 && cvd_model_forward(m, x, 64, &y, &ny, &err) == 0)
            free(y);
    }
    cvd_model_unref(m);
}

static const char *const fuzz_sources[] = {"seq_chain",      "keras_wavenet_gated",
                                           "branches",       "wavenet_blended",
                                           "channels_first", "seeded_partial"};

Test(json_model, truncated_json)
{
    for (size_t f = 0; f < sizeof fuzz_sources / sizeof fuzz_sources[0]; f++) {
        char path[256], ctx[300];
        size_t len = 0;
        snprintf(path, sizeof path, DATA "%s.json", fuzz_sources[f]);
        char *t = tu_read_file(path, &len);
        cr_assert_not_null(t);
        /* every cut of the first 2000 bytes, then every 37th */
        for (size_t cut = 0; cut < len; cut += cut < 2000 ? 1 : 37) {
            snprintf(ctx, sizeof ctx, "%s cut at %zu", path, cut);
            char *p = malloc(cut + 1);
            memcpy(p, t, cut);
            parse_any(p, cut, DATA, ctx);
            free(p);
        }
        free(t);
    }
}

Test(json_model, mutated_json)
{
    const uint64_t seed = tu_seed();
    cvd_rng r;
    cvd_rng_seed(&r, seed);
    static const char junk[] = "{}[],:\"0123456789-.eE tnfaluNx\\/";
    for (size_t f = 0; f < sizeof fuzz_sources / sizeof fuzz_sources[0]; f++) {
        char path[256], ctx[300];
        size_t len = 0;
        snprintf(path, sizeof path, DATA "%s.json", fuzz_sources[f]);
        char *t = tu_read_file(path, &len);
        cr_assert_not_null(t);
        for (int trial = 0; trial < 400; trial++) {
            char *p = malloc(len + 1);
            memcpy(p, t, len + 1);
            int edits = 1 + (int)tu_randint(&r, 3);
            for (int e = 0; e < edits; e++) {
                size_t at = (size_t)tu_randint(&r, len);
                p[at] = tu_randint(&r, 4) ? junk[tu_randint(&r, sizeof junk - 1)]
                                          : (char)(1 + tu_randint(&r, 255));
            }
            snprintf(ctx, sizeof ctx, "%s mutation %d (CVD_SEED=%llu)", path, trial,
                     (unsigned long long)seed);
            parse_any(p, len, DATA, ctx);
            free(p);
        }
        free(t);
    }
}

/* Safetensors files cut at every length, and with random bytes changed. */
Test(json_model, corrupt_safetensors)
{
    char dir[] = "/tmp/convd-json-XXXXXX", path[300];
    size_t jlen = 0, slen = 0;
    char *json = tu_read_file(DATA "safetensors_mixed.json", &jlen);
    unsigned char *st = (unsigned char *)tu_read_file(DATA "safetensors_mixed.safetensors", &slen);
    cvd_rng r;
    const uint64_t seed = tu_seed();
    cr_assert_not_null(json);
    cr_assert_not_null(st);
    cr_assert_not_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/safetensors_mixed.safetensors", dir);
    cvd_rng_seed(&r, seed);

    for (size_t cut = 0; cut <= slen + 64; cut++) {
        FILE *f = fopen(path, "wb");
        size_t n = cut < slen ? cut : slen;
        cr_assert_not_null(f);
        fwrite(st, 1, n, f);
        for (size_t extra = slen; extra < cut; extra++) /* and longer: junk appended */
            fputc((int)tu_randint(&r, 256), f);
        fclose(f);
        cvd_model *m = NULL;
        cvd_err err = {0};
        int rc = cvd_json_model_parse(json, jlen, "st.json", dir, &m, &err);
        if (cut < slen) {
            cr_assert_lt(rc, 0, "a safetensors file cut at %zu of %zu bytes was accepted", cut,
                         slen);
            cr_assert_not_null(strstr(err.msg, "st.json: weights_file "
                                               "'safetensors_mixed.safetensors'"),
                               "%s", err.msg);
        } else {
            /* bytes past the last tensor are not read */
            cr_assert_eq(rc, 0, "cut %zu: %s", cut, err.msg);
            cvd_model_unref(m);
        }
    }
    for (int trial = 0; trial < 600; trial++) {
        unsigned char *p = malloc(slen);
        memcpy(p, st, slen);
        for (int e = 0, edits = 1 + (int)tu_randint(&r, 4); e < edits; e++)
            p[tu_randint(&r, slen)] = (unsigned char)tu_randint(&r, 256);
        FILE *f = fopen(path, "wb");
        fwrite(p, 1, slen, f);
        fclose(f);
        char ctx[100];
        snprintf(ctx, sizeof ctx, "safetensors mutation %d (CVD_SEED=%llu)", trial,
                 (unsigned long long)seed);
        parse_any(json, jlen, dir, ctx);
        free(p);
    }
    unlink(path);
    rmdir(dir);
    free(json);
    free(st);
}

static int json_loader(const char *text, size_t len, cvd_model **out, cvd_err *err)
{
    return cvd_json_model_parse(text, len, "t.json", "tests/data/json", out, err);
}

/* Every key of every case file (and the shipped models) removed in turn: it loads and
 * streams, or is refused with a message; never a crash (ASan/UBSan in CI). */
Test(json_model, every_key_removed_in_turn)
{
    DIR *d = opendir("tests/data/json");
    cr_assert_not_null(d);
    struct dirent *e;
    int files = 0;
    while ((e = readdir(d)) != NULL) {
        size_t l = strlen(e->d_name);
        if (l < 6 || strcmp(e->d_name + l - 5, ".json") != 0)
            continue;
        char path[512];
        snprintf(path, sizeof path, "tests/data/json/%s", e->d_name);
        jm_remove_each_key(path, json_loader, 0);
        files++;
    }
    closedir(d);
    jm_remove_each_key("config/models/drive.json", json_loader, 0);
    jm_remove_each_key("config/models/vibration-denoise.json", json_loader, 0);
    cr_assert_geq(files, 5, "only %d case files", files);
}

/* found by fuzzing: a few lines of JSON could ask for gigabytes of weights; a model has at
 * most CVD_MODEL_MAX_PARAMS parameters in all, one variable no more than that either */
Test(json_model, parameter_limits)
{
    static const struct {
        const char *text, *words;
    } cases[] = {
        {"{\"format\": \"convd-model\", \"version\": 1, \"input_channels\": 16384, \"layers\": "
         "[{\"class_name\": \"Dense\", \"name\": \"d\", \"config\": {\"units\": 16384}}]}",
         "a kernel of 16384 x 16384 values: at most 67108864"},
        {"{\"format\": \"convd-model\", \"version\": 1, \"wavenet\": {\"channels\": 530, "
         "\"kernel_size\": 49, \"dilations\": [1, 1, 1, 1, 1]}}",
         "70234012 weights: at most 67108864"},
        {"{\"format\": \"convd-model\", \"version\": 1, \"input_channels\": 4096, \"layers\": ["
         "{\"class_name\": \"Dense\", \"name\": \"d1\", \"config\": {\"units\": 4096}},"
         "{\"class_name\": \"Dense\", \"name\": \"d2\", \"config\": {\"units\": 4096}},"
         "{\"class_name\": \"Dense\", \"name\": \"d3\", \"config\": {\"units\": 4096}},"
         "{\"class_name\": \"Dense\", \"name\": \"d4\", \"config\": {\"units\": 4096}}]}",
         "'d4' (16781312 parameters) makes the model 67125248 parameters: at most 67108864"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cvd_model *m = NULL;
        cvd_err err = {0};
        int rc =
            cvd_json_model_parse(cases[i].text, strlen(cases[i].text), "big.json", NULL, &m, &err);
        cr_expect_lt(rc, 0, "case %zu loaded", i);
        cr_expect(strstr(err.msg, cases[i].words) != NULL, "case %zu: want \"%s\" in: %s", i,
                  cases[i].words, err.msg);
        if (rc == 0)
            cvd_model_unref(m);
    }
}
