/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_keras_tcn.c - keras-tcn's TCN layer read from Keras files (model/keras.c, docs/KERAS.md).
 *
 * The files in tests/data/keras/tcn/ come from scripts/gen_tcn_cases.py: TCN models in the
 * layouts Keras 3 and Keras 2 save keras-tcn's layer in (Sequential and Functional, causal
 * and same padding, batch, layer and weight normalization, filters per dilation, several
 * stacks, one block, two TCNs in a row, sequences and single frames out), with the outputs
 * scripts/tcn_reference.py (numpy float64, written from keras-tcn's documented behaviour)
 * computes for them. For every case:
 *   mode      streaming or windowed, as cases.txt says;
 *   offline   cvd_model_forward_hop() equals the reference (1e-4 of the output's scale);
 *   stream    random block splits at max_block 1, 2, 3, 7, 16, 64 and 257, flushed, equal the
 *             offline output (1e-5); the seed is printed (rerun with CVD_SEED).
 * The real ../shared/models/keras/IrtantiCarona_tcn_model.keras against the reference's
 * output for it (tests/data/keras/tcn/real/, skipped with a note when the file is absent);
 * every file in bad/ refused with a message naming the file and what is wrong; truncated and
 * corrupted copies never crash; a streaming TCN net allocates nothing while processing.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "alloc_count.h"
#include "convd_dsp.h"
#include "convd_model.h"
#include "testutil.h"

#define DATA "tests/data/keras/tcn/"
#define REAL "../shared/models/keras/"

static float *read_f32(const char *path, size_t *n)
{
    size_t len = 0;
    unsigned char *b = (unsigned char *)tu_read_file(path, &len);
    float *f;
    cr_assert_not_null(b, "cannot read %s (run scripts/gen_tcn_cases.py)", path);
    cr_assert_eq(len % 4, 0, "%s: not whole floats", path);
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

static void assert_close(const char *what, const float *got, const float *want, size_t n,
                         double tol, const char *ctx)
{
    double s = 1e-3;
    for (size_t i = 0; i < n; i++)
        if (fabs(want[i]) > s)
            s = fabs(want[i]);
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)got[i] - (double)want[i]);
        if (!(e <= tol * s))
            cr_assert_fail("%s: %s: value %zu: got %.9g, want %.9g (error %.3g, scale %.3g)", ctx,
                           what, i, got[i], want[i], e, s);
    }
}

static cvd_model *load_ok(const char *path)
{
    cvd_model *m = NULL;
    cvd_err err = {0};
    int rc = cvd_model_load(path, &m, &err);
    cr_assert_eq(rc, 0, "%s: %s", path, err.msg);
    return m;
}

/* Streams x through a fresh net in random splits of at most mb frames, flushed. */
static long stream(cvd_model *m, int mb, long hop, cvd_rng *r, const float *x, long n, float *y,
                   long ycap, const char *ctx)
{
    cvd_net *net = NULL;
    cvd_err err = {0};
    const int C = cvd_model_in_channels(m), F = cvd_model_out_channels(m);
    cr_assert_eq(cvd_net_create_hop(m, mb, hop, &net, &err), 0, "%s: net_create: %s", ctx, err.msg);
    const int mo = cvd_net_max_out(net);
    float *ob = malloc(sizeof(float) * ((size_t)mo * F + 1));
    long got = 0, pos = 0;
    while (pos < n) {
        int nb = (int)tu_randint(r, (uint64_t)mb + 1), no = -1;
        if (nb > n - pos)
            nb = (int)(n - pos);
        cr_assert_eq(cvd_net_process(net, x + (size_t)pos * C, nb, ob, &no), 0, "%s", ctx);
        cr_assert(no >= 0 && no <= mo && got + no <= ycap, "%s: %d frames out", ctx, no);
        memcpy(y + (size_t)got * F, ob, sizeof(float) * (size_t)no * F);
        got += no;
        pos += nb;
    }
    for (int calls = 0;; calls++) {
        int no = -1, more = cvd_net_flush(net, ob, &no);
        cr_assert_geq(more, 0, "%s: flush returned %d", ctx, more);
        cr_assert(no >= 0 && no <= mo && got + no <= ycap, "%s: flush: %d frames", ctx, no);
        memcpy(y + (size_t)got * F, ob, sizeof(float) * (size_t)no * F);
        got += no;
        if (!more)
            break;
        cr_assert_lt(calls, 1000000);
    }
    free(ob);
    cvd_net_destroy(net);
    return got;
}

static void check_model(cvd_model *m, const char *name, const char *in_path, const char *ref_path,
                        long hop)
{
    static const int blocks[] = {1, 2, 3, 7, 16, 64, 257};
    cvd_err err = {0};
    size_t nx, ny;
    float *x = read_f32(in_path, &nx), *want = read_f32(ref_path, &ny), *off = NULL;
    const int C = cvd_model_in_channels(m), F = cvd_model_out_channels(m);
    long n_off;
    char ctx[512];
    cr_assert_eq(nx % (size_t)C, 0, "%s: input of %zu values for %d channels", name, nx, C);
    const long n = (long)(nx / (size_t)C);
    cr_assert_eq(cvd_model_forward_hop(m, x, n, hop, &off, &n_off, &err), 0, "%s: forward: %s",
                 name, err.msg);
    cr_assert_eq((size_t)n_off * F, ny, "%s: %ld frames x %d offline, the reference has %zu", name,
                 n_off, F, ny);
    assert_close("offline vs reference", off, want, ny, 1e-4, name);
    float *y = malloc(sizeof(float) * ((size_t)(n_off + 16) * F + 1));
    for (size_t b = 0; b < sizeof blocks / sizeof blocks[0]; b++) {
        cvd_rng r;
        uint64_t s = tu_seed() + 100 * b;
        cvd_rng_seed(&r, s);
        snprintf(ctx, sizeof ctx, "%s: stream max_block=%d seed %llu", name, blocks[b],
                 (unsigned long long)s);
        long got = stream(m, blocks[b], hop, &r, x, n, y, n_off + 16, ctx);
        cr_assert_eq(got, n_off, "%s: %ld frames streamed, %ld offline", ctx, got, n_off);
        assert_close("stream vs offline", y, off, (size_t)n_off * F, 1e-5, ctx);
    }
    free(y);
    free(x);
    free(want);
    free(off);
}

/* ---- the generated cases -------------------------------------------------------------------- */

static void run_case(const char *want_name)
{
    char *text = tu_read_file(DATA "cases.txt", NULL), *line, *save = NULL;
    int found = 0;
    cr_assert_not_null(text, "cannot read " DATA "cases.txt (run scripts/gen_tcn_cases.py)");
    for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char name[128], file[256], mode[16], out[256], path[700], in[700], ref[700];
        long hop;
        if (sscanf(line, "%127s %255s %15s %ld %255s", name, file, mode, &hop, out) != 5 ||
            strcmp(name, want_name) != 0)
            continue;
        found = 1;
        snprintf(path, sizeof path, DATA "%s", file);
        cvd_model *m = load_ok(path);
        const int windowed = strcmp(mode, "window") == 0;
        cr_assert_eq(cvd_model_mode(m), windowed ? CVD_MODE_WINDOWED : CVD_MODE_STREAMING,
                     "%s: runs %s (%s); cases.txt says %s", name,
                     cvd_run_mode_name(cvd_model_mode(m)), cvd_model_mode_reason(m), mode);
        /* the input is the model file's stem + .in.f32 */
        snprintf(in, sizeof in, DATA "%s", file);
        *strrchr(in, '.') = '\0';
        strcat(in, ".in.f32");
        snprintf(ref, sizeof ref, DATA "%s", out);
        check_model(m, name, in, ref, hop);
        cvd_model_unref(m);
    }
    free(text);
    cr_assert(found, "%s is not in " DATA "cases.txt", want_name);
}

static const char *const all_cases[] = {
    "tcn_k3_seq_causal",          "tcn_k3_func_same_bn_ln", "tcn_k3_window_last",
    "tcn_k3_window_last_hop5",    "tcn_k3_window_same",     "tcn_k3_old_bn_layout",
    "tcn_k3_one_block_prefix",    "tcn_k2_weight_norm",     "tcn_k2_func_window_bn",
    "tcn_k2_func_window_bn_hop1",
};

#define CASE(name)                                                                                 \
    Test(keras_tcn, name)                                                                          \
    {                                                                                              \
        run_case(#name);                                                                           \
    }
CASE(tcn_k3_seq_causal)
CASE(tcn_k3_func_same_bn_ln)
CASE(tcn_k3_window_last)
CASE(tcn_k3_window_last_hop5)
CASE(tcn_k3_window_same)
CASE(tcn_k3_old_bn_layout)
CASE(tcn_k3_one_block_prefix)
CASE(tcn_k2_weight_norm)
CASE(tcn_k2_func_window_bn)
CASE(tcn_k2_func_window_bn_hop1)

Test(keras_tcn, cases_txt_all_tested)
{
    tu_check_cases_listed(DATA "cases.txt", all_cases, sizeof all_cases / sizeof all_cases[0]);
}

static int node_named(const cvd_model *m, const char *name)
{
    for (int i = 1; i < cvd_model_node_count(m); i++)
        if (strcmp(cvd_model_node_name(m, i), name) == 0)
            return i;
    return -1;
}

/* The expansion: keras-tcn's parts by name, the TCN's own name on its output, padding and
 * dilation as configured, the latency of same padding, the matching conv only where the
 * channels change. */
Test(keras_tcn, expansion_names_and_structure)
{
    cvd_model *m = load_ok(DATA "tcn_k3_seq_causal.keras");
    int c0 = node_named(m, "tcn/residual_block_2/conv1D_0");
    cr_assert_gt(c0, 0);
    cr_assert_str_eq(cvd_model_node_class(m, c0), "Conv1D");
    cr_assert_eq(cvd_model_node_conv(m, c0)->dilation_rate, 4);
    cr_assert_gt(node_named(m, "tcn/residual_block_0/matching_conv1D"), 0, "2 channels -> 8");
    cr_assert_lt(node_named(m, "tcn/residual_block_1/matching_conv1D"), 0, "8 -> 8: none");
    int t = node_named(m, "tcn");
    cr_assert_gt(t, 0);
    cr_assert_str_eq(cvd_model_node_class(m, t), "Add", "the skip connections' sum");
    cr_assert_eq(cvd_model_latency(m), 0, "causal");
    cr_assert_eq(cvd_model_receptive_field(m), 1 + 2 * 2 * (1 + 2 + 4));
    cvd_model_unref(m);

    m = load_ok(DATA "tcn_k3_func_same_bn_ln.keras");
    /* same padding, k 2: each conv looks ahead ceil(d/2); 2 stacks of dilations 1, 3 */
    cr_assert_eq(cvd_model_latency(m), 2 * 2 * (1 + 2), "latency %d", cvd_model_latency(m));
    cr_assert_str_eq(cvd_model_node_class(m, node_named(m, "tcn/residual_block_3/norm_1")),
                     "BatchNormalization");
    cr_assert_str_eq(cvd_model_node_class(m, node_named(m, "tcn_1/residual_block_1/norm_0")),
                     "LayerNormalization");
    cvd_model_unref(m);

    m = load_ok(DATA "tcn_k3_window_last.keras");
    cr_assert_eq(cvd_model_mode(m), CVD_MODE_WINDOWED);
    cr_assert_eq(cvd_model_window(m), 32);
    cr_assert_eq(cvd_model_out_channels(m), 3);
    cr_assert_str_eq(cvd_model_node_class(m, node_named(m, "tcn/Slice_Output")), "Cropping1D");
    cvd_model_unref(m);
}

/* ---- the real model ---------------------------------------------------------------------- */

Test(keras_tcn, real_irtanticarona_tcn)
{
    struct stat st;
    if (stat(REAL "IrtantiCarona_tcn_model.keras", &st) != 0) {
        cr_log_info(REAL "IrtantiCarona_tcn_model.keras is absent: skipped");
        fprintf(stderr, "note: " REAL "IrtantiCarona_tcn_model.keras is absent: skipped\n");
        cr_skip_test("../shared/models/keras/IrtantiCarona_tcn_model.keras is absent");
    }
    cvd_model *m = load_ok(REAL "IrtantiCarona_tcn_model.keras");
    cr_assert_eq(cvd_model_mode(m), CVD_MODE_WINDOWED, "%s", cvd_model_mode_reason(m));
    cr_assert_eq(cvd_model_window(m), 60);
    cr_assert_eq(cvd_model_in_channels(m), 1);
    cr_assert_eq(cvd_model_out_channels(m), 1);
    cr_assert_eq(cvd_model_param_count(m), 136321, "Keras counts 136,321 parameters");
    check_model(m, "IrtantiCarona_tcn_model", DATA "real/IrtantiCarona_tcn_model.in.f32",
                DATA "real/IrtantiCarona_tcn_model.hop0.out.f32", 0);
    check_model(m, "IrtantiCarona_tcn_model hop 1", DATA "real/IrtantiCarona_tcn_model.in.f32",
                DATA "real/IrtantiCarona_tcn_model.hop1.out.f32", 1);
    cvd_model_unref(m);
}

/* ---- refused files -----------------------------------------------------------------------------
 */

static void refused(const char *path, const char *const *frags)
{
    cvd_model *m = NULL;
    cvd_err err = {0};
    int rc = cvd_model_load(path, &m, &err);
    cr_assert_lt(rc, 0, "%s: loaded, but must be refused", path);
    cr_assert_null(m);
    cr_assert(strstr(err.msg, path) != NULL, "%s: the message does not name the file: %s", path,
              err.msg);
    for (; *frags; frags++)
        cr_assert(strstr(err.msg, *frags) != NULL, "%s: the message lacks \"%s\": %s", path, *frags,
                  err.msg);
}

Test(keras_tcn, bad_files_are_refused_clearly)
{
    char *text = tu_read_file(DATA "bad/expect.txt", NULL), *line, *save = NULL;
    int count = 0;
    cr_assert_not_null(text, "cannot read " DATA "bad/expect.txt");
    for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        const char *frags[16];
        int nf = 0;
        char path[512], *tab, *rest = line;
        tab = strchr(rest, '\t');
        if (tab)
            *tab = '\0';
        snprintf(path, sizeof path, DATA "bad/%s", rest);
        while (tab && nf < 15) {
            rest = tab + 1;
            tab = strchr(rest, '\t');
            if (tab)
                *tab = '\0';
            frags[nf++] = rest;
        }
        frags[nf] = NULL;
        refused(path, frags);
        count++;
    }
    cr_assert_geq(count, 18);
    free(text);
}

/* Truncated copies of both layouts, and changed bytes in the archive (its checksums catch
 * them): loaded or refused with a message naming the file, never a crash. */
Test(keras_tcn, truncated_and_corrupt_files_never_crash)
{
    static const char *const srcs[] = {DATA "tcn_k3_func_same_bn_ln.keras",
                                       DATA "tcn_k2_weight_norm.h5"};
    for (size_t s = 0; s < 2; s++) {
        size_t len = 0;
        char *data = tu_read_file(srcs[s], &len), path[64];
        const int h5 = strstr(srcs[s], ".h5") != NULL;
        cvd_rng r;
        cr_assert_not_null(data);
        cvd_rng_seed(&r, tu_seed() + s);
        snprintf(path, sizeof path, "/tmp/convd-tcn-%d%s", (int)getpid(), h5 ? ".h5" : ".keras");
        for (int t = 0; t < 40; t++) {
            size_t n = len;
            char *copy = malloc(len);
            memcpy(copy, data, len);
            if (h5 || t < 20)
                n = (size_t)tu_randint(&r, len);
            else
                copy[tu_randint(&r, len)] ^= (char)(1 + tu_randint(&r, 255));
            FILE *fp = fopen(path, "wb");
            cr_assert_not_null(fp);
            cr_assert_eq(fwrite(copy, 1, n, fp), n);
            fclose(fp);
            cvd_model *m = NULL;
            cvd_err err = {0};
            if (cvd_model_load(path, &m, &err) < 0)
                cr_assert(m == NULL && strstr(err.msg, path) != NULL, "%s", err.msg);
            else
                cvd_model_unref(m);
            free(copy);
        }
        remove(path);
        free(data);
    }
}

/* A streaming TCN net processes without allocating. */
Test(keras_tcn, streaming_net_allocates_nothing)
{
    cvd_model *m = load_ok(DATA "tcn_k3_func_same_bn_ln.keras");
    cvd_net *net = NULL;
    cvd_err err = {0};
    cvd_rng r;
    const int C = cvd_model_in_channels(m), F = cvd_model_out_channels(m);
    cr_assert_eq(cvd_net_create(m, 64, &net, &err), 0, "%s", err.msg);
    float *x = malloc(sizeof(float) * 64 * (size_t)C);
    float *y = malloc(sizeof(float) * (size_t)cvd_net_max_out(net) * F);
    cvd_rng_seed(&r, tu_seed());
    for (int i = 0; i < 64 * C; i++)
        x[i] = (float)(cvd_rng_uniform(&r) - 0.5);
    const long a0 = alloc_count();
    for (int i = 0; i < 50; i++) {
        int no;
        cr_assert_eq(cvd_net_process(net, x, 1 + (int)tu_randint(&r, 64), y, &no), 0);
    }
    cvd_net_reset(net);
    cr_assert_eq(alloc_count(), a0, "%ld allocations while processing", alloc_count() - a0);
    free(x);
    free(y);
    cvd_net_destroy(net);
    cvd_model_unref(m);
}
