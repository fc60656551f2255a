/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_keras.c - Keras files read directly (model/keras.c, docs/KERAS.md).
 *
 * The files in tests/data/keras/ come from scripts/gen_keras_cases.py, written in the exact
 * layouts Keras 3 (.keras) and Keras 2 (.h5, weights-only .h5 with a config JSON) write, with
 * the outputs scripts/keras_reference.py computes for them (numpy/PyTorch float64, from
 * Keras's definitions, reading the same files). For every case:
 *   mode      streaming or windowed, as cases.txt says;
 *   offline   cvd_model_forward_hop() equals the reference (1e-4 of the output's scale);
 *   stream    random block splits (0 and 1 included) at several max_block values, flushed,
 *             equal the offline output (1e-5); the seed is printed (rerun with CVD_SEED).
 * The real models in ../shared/models/keras/ (skipped, cr_skip_test, when absent): the two
 * sensor classifiers, windowed, at the default hop and hop 1; the WaveNet weights-only .h5
 * with the config written for it; the LSTM file refused by name (keras-tcn's archive loads:
 * test_keras_tcn.c).
 * Every file in bad/ is refused with a message naming the file and what is wrong; truncated
 * and corrupted copies of good files load or are refused, never crash (also under the
 * sanitizers); windowed nets allocate nothing while processing; convd-run's --hop and
 * --weights.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "alloc_count.h"
#include "convd_dsp.h"
#include "convd_model.h"
#include "json_mutate.h"
#include "testutil.h"

extern char **environ;

#define DATA "tests/data/keras/"
#define REAL "../shared/models/keras/"

/* ---- helpers ------------------------------------------------------------------------------ */

static float *read_f32(const char *path, size_t *n)
{
    size_t len = 0;
    unsigned char *b = (unsigned char *)tu_read_file(path, &len);
    float *f;
    cr_assert_not_null(b, "cannot read %s", path);
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

static double scale_of(const float *y, size_t n)
{
    double s = 0.0;
    for (size_t i = 0; i < n; i++)
        if (fabs(y[i]) > s)
            s = fabs(y[i]);
    return s > 1e-3 ? s : 1e-3;
}

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

static cvd_model *load_ok(const char *path)
{
    cvd_model *m = NULL;
    cvd_err err = {0};
    int rc = cvd_model_load(path, &m, &err);
    cr_assert_eq(rc, 0, "%s: %s", path, err.msg);
    return m;
}

/* Streams x through a fresh net (random splits), flushed; returns the frames written. */
static long stream(cvd_model *m, int mb, long hop, cvd_rng *r, const float *x, long n, float *y,
                   long ycap, const char *ctx)
{
    cvd_net *net = NULL;
    cvd_err err = {0};
    const int C = cvd_model_in_channels(m), F = cvd_model_out_channels(m);
    int rc = cvd_net_create_hop(m, mb, hop, &net, &err);
    cr_assert_eq(rc, 0, "%s: net_create: %s", ctx, err.msg);
    const int mo = cvd_net_max_out(net);
    float *ob = malloc(sizeof(float) * ((size_t)mo * F + 1));
    long got = 0, pos = 0;
    while (pos < n) {
        int nb = (int)tu_randint(r, (uint64_t)mb + 1), no = -1;
        if (tu_randint(r, 4) == 0)
            nb = (int)tu_randint(r, 2);
        if (nb > n - pos)
            nb = (int)(n - pos);
        cr_assert_eq(cvd_net_process(net, x + (size_t)pos * C, nb, ob, &no), 0, "%s", ctx);
        cr_assert(no >= 0 && no <= mo, "%s: process wrote %d frames (max_out %d)", ctx, no, mo);
        cr_assert_leq(got + no, ycap, "%s: too many frames", ctx);
        memcpy(y + (size_t)got * F, ob, sizeof(float) * (size_t)no * F);
        got += no;
        pos += nb;
    }
    for (int calls = 0;; calls++) {
        int no = -1, more = cvd_net_flush(net, ob, &no);
        cr_assert_geq(more, 0, "%s: flush returned %d", ctx, more);
        cr_assert(no >= 0 && no <= mo);
        cr_assert_leq(got + no, ycap, "%s: the flush gave too many frames", ctx);
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

/* Offline vs reference, then streamed vs offline at several block sizes. */
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
    int rc = cvd_model_forward_hop(m, x, n, hop, &off, &n_off, &err);
    cr_assert_eq(rc, 0, "%s: forward: %s", name, err.msg);
    cr_assert_eq((size_t)n_off * F, ny,
                 "%s: %ld frames (records) x %d offline, the reference has %zu values", name, n_off,
                 F, ny);
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
    cr_assert_not_null(text, "cannot read " DATA "cases.txt (run scripts/gen_keras_cases.py)");
    for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char name[128], file[256], mode[16], path[700], in[256], out[256];
        long hop;
        if (sscanf(line, "%127s %255s %15s %ld", name, file, mode, &hop) != 4 ||
            strcmp(name, want_name) != 0)
            continue;
        found = 1;
        char *plus = strchr(file, '+');
        if (plus) { /* CONFIG+WEIGHTS, both in DATA */
            *plus = '\0';
            snprintf(path, sizeof path, DATA "%s+" DATA "%s", file, plus + 1);
        } else {
            snprintf(path, sizeof path, DATA "%s", file);
        }
        cvd_model *m = load_ok(path);
        const int windowed = strcmp(mode, "window") == 0;
        cr_assert_eq(cvd_model_mode(m), windowed ? CVD_MODE_WINDOWED : CVD_MODE_STREAMING,
                     "%s: runs %s (%s); cases.txt says %s", name,
                     cvd_run_mode_name(cvd_model_mode(m)), cvd_model_mode_reason(m), mode);
        snprintf(in, sizeof in, DATA "%s.in.f32", name);
        snprintf(out, sizeof out, DATA "%s.out.f32", name);
        check_model(m, name, in, out, hop);
        cvd_model_unref(m);
    }
    free(text);
    cr_assert(found, "%s is not in " DATA "cases.txt", want_name);
}

static const char *const all_cases[] = {
    "k3_seq_conv_family",
    "k3_seq_pool_pad",
    "k3_func_wavenet",
    "k3_func_merges",
    "k3_seq_channels_first",
    "k3_seq_classifier",
    "k3_seq_classifier_hop3",
    "k3_cf_flatten_first",
    "k3_cf_flatten_last",
    "k3_func_global",
    "k3_seq_permute_reshape",
    "k3_cf_softmax_time",
    "k3_same_strided_window",
    "k2_seq_classifier",
    "k2_func_resnet",
    "k2_weights_only",
    "k3_weights_only",
    "k3_old_layout",
    "k2_model_transpose",
    "k3_bn_renorm",
    /* WaveNets in Keras's vocabulary (fused, or almost matching: test_fuse.c too) */
    "k3_wn_plain",
    "k3_wn_gated",
    "k3_wn_gated_mixin",
    "k3_wn_act_layer",
    "k3_wn_plain16",
    "k2_wn_plain",
    "k3_wn_nofuse_between",
    "k3_wn_nofuse_merge",
    "k3_wn_nofuse_same",
    "k3_wn_nofuse_softmax",
    "k3_wn_nofuse_skip_conv",
};

#define CASE(name)                                                                                 \
    Test(keras, name)                                                                              \
    {                                                                                              \
        run_case(#name);                                                                           \
    }
CASE(k3_seq_conv_family)
CASE(k3_seq_pool_pad)
CASE(k3_func_wavenet)
CASE(k3_func_merges)
CASE(k3_seq_channels_first)
CASE(k3_seq_classifier)
CASE(k3_seq_classifier_hop3)
CASE(k3_cf_flatten_first)
CASE(k3_cf_flatten_last)
CASE(k3_func_global)
CASE(k3_seq_permute_reshape)
CASE(k3_cf_softmax_time)
CASE(k3_same_strided_window)
CASE(k2_seq_classifier)
CASE(k2_func_resnet)
CASE(k2_weights_only)
CASE(k3_weights_only)
CASE(k3_old_layout)
CASE(k2_model_transpose)
CASE(k3_bn_renorm)
CASE(k3_wn_plain)
CASE(k3_wn_gated)
CASE(k3_wn_gated_mixin)
CASE(k3_wn_act_layer)
CASE(k3_wn_plain16)
CASE(k2_wn_plain)
CASE(k3_wn_nofuse_between)
CASE(k3_wn_nofuse_merge)
CASE(k3_wn_nofuse_same)
CASE(k3_wn_nofuse_softmax)
CASE(k3_wn_nofuse_skip_conv)

Test(keras, cases_txt_all_tested)
{
    tu_check_cases_listed(DATA "cases.txt", all_cases, sizeof all_cases / sizeof all_cases[0]);
}

/* Weights are found by class, whatever the layers are named; the names are kept. */
Test(keras, names_and_classes)
{
    cvd_model *m = load_ok(DATA "k3_func_wavenet.keras");
    int found = 0;
    for (int i = 1; i < cvd_model_node_count(m); i++)
        if (strcmp(cvd_model_node_name(m, i), "gate_3") == 0) {
            cr_assert_str_eq(cvd_model_node_class(m, i), "Conv1D");
            found = 1;
        }
    cr_assert(found, "no node named gate_3");
    cr_assert(strstr(cvd_model_description(m), "Keras Functional") != NULL, "%s",
              cvd_model_description(m));
    cvd_model_unref(m);
    m = load_ok(DATA "k3_seq_pool_pad.keras");
    cr_assert_str_eq(cvd_model_node_class(m, 4), "GaussianNoise");
    cr_assert_eq(cvd_model_node_op(m, 4), CVD_NODE_IDENTITY);
    cvd_model_unref(m);
}

/* ---- the real models ------------------------------------------------------------------------- */

/* Skips the test (cr_skip_test: it shows as skipped, not passed) when the real Keras file is
 * not there: ../shared/models/keras/ is beside a full checkout only. */
static void need_real(const char *file)
{
    char path[600];
    struct stat st;
    snprintf(path, sizeof path, REAL "%s", file);
    if (stat(path, &st) != 0)
        cr_skip_test("%s is absent (../shared/models/keras/ holds the real Keras files; "
                     "../shared is not beside this checkout)",
                     path);
}

static void real_classifier(const char *stem, long window, int out_values)
{
    char path[512], in[512], out[512];
    snprintf(path, sizeof path, "%s.keras", stem);
    need_real(path);
    snprintf(path, sizeof path, REAL "%s.keras", stem);
    cvd_model *m = load_ok(path);
    cr_assert_eq(cvd_model_mode(m), CVD_MODE_WINDOWED, "%s: %s", stem, cvd_model_mode_reason(m));
    cr_assert_eq(cvd_model_window(m), window);
    cr_assert_eq(cvd_model_out_channels(m), out_values);
    snprintf(in, sizeof in, DATA "real/%s.in.f32", stem);
    for (int hop = 0; hop <= 1; hop++) {
        snprintf(out, sizeof out, DATA "real/%s.hop%d.out.f32", stem, hop);
        check_model(m, stem, in, out, hop);
    }
    cvd_model_unref(m);
}

Test(keras, real_gloryjaw_ecg_classifier)
{
    real_classifier("Gloryjaw_ecg_model", 7, 4);
}

Test(keras, real_oshinrastogi_classifier)
{
    real_classifier("oshinrastogi_cnn1d_model", 12, 2);
}

Test(keras, real_helberhlf_wavenet_weights_only)
{
    need_real("helberhlf_wavenet.h5");
    cvd_model *m = load_ok(DATA "real/helberhlf_wavenet.json+" REAL "helberhlf_wavenet.h5");
    cr_assert_eq(cvd_model_mode(m), CVD_MODE_STREAMING);
    cr_assert_eq(cvd_model_in_channels(m), 5);
    cr_assert_eq(cvd_model_out_channels(m), 14);
    cr_assert_eq(cvd_model_latency(m), 0, "causal: no latency");
    check_model(m, "helberhlf_wavenet", DATA "real/helberhlf_wavenet.in.f32",
                DATA "real/helberhlf_wavenet.out.f32", 0);
    cvd_model_unref(m);
    /* the same through the API, and the file alone is refused with the way out */
    cvd_err err = {0};
    cr_assert_eq(cvd_keras_load_weights(DATA "real/helberhlf_wavenet.json",
                                        REAL "helberhlf_wavenet.h5", &m, &err),
                 0, "%s", err.msg);
    cvd_model_unref(m);
    cr_assert_lt(cvd_model_load(REAL "helberhlf_wavenet.h5", &m, &err), 0);
    cr_assert(strstr(err.msg, "helberhlf_wavenet.h5") && strstr(err.msg, "weights only") &&
                  strstr(err.msg, "CONFIG.json+"),
              "%s", err.msg);
}

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

Test(keras, real_refusals_name_what_they_refuse)
{
    need_real("GuitarLSTM_ts9.h5");
    refused(REAL "GuitarLSTM_ts9.h5",
            (const char *const[]){"model_config", "layers[2] (lstm)", "class_name='LSTM'",
                                  "recurrent layer", NULL});
}

/* ---- refused files -----------------------------------------------------------------------------
 */

Test(keras, bad_files_are_refused_clearly)
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
    cr_assert_geq(count, 30);
    free(text);
}

Test(keras, config_and_weights_mismatch)
{
    cvd_model *m = NULL;
    cvd_err err = {0};
    /* the weights of another model */
    int rc = cvd_keras_load_weights(DATA "k2_weights_only.json", DATA "k3_weights_only.weights.h5",
                                    &m, &err);
    cr_assert_lt(rc, 0);
    cr_assert(strstr(err.msg, "k3_weights_only.weights.h5") != NULL, "%s", err.msg);
    cr_assert(strstr(err.msg, "layers/conv1d/vars/0: shape (3, 1, 3)") != NULL, "%s", err.msg);
    /* a missing weights file, and the '+' form */
    rc = cvd_model_load(DATA "k2_weights_only.json+" DATA "nowhere.h5", &m, &err);
    cr_assert_lt(rc, 0);
    cr_assert(strstr(err.msg, "nowhere.h5") && strstr(err.msg, "cannot read"), "%s", err.msg);
    /* a Keras config alone */
    rc = cvd_model_load(DATA "k2_weights_only.json", &m, &err);
    cr_assert_lt(rc, 0);
    cr_assert(strstr(err.msg, "Keras model config") && strstr(err.msg, "CONFIG.json+WEIGHTS.h5"),
              "%s", err.msg);
}

/* ---- truncated and corrupted copies --------------------------------------------------------- */

static void mangle_and_load(const char *src, const char *ext, int flips)
{
    size_t len = 0;
    char *data = tu_read_file(src, &len), tmpl[64], path[80];
    cvd_rng r;
    cr_assert_not_null(data, "%s", src);
    cvd_rng_seed(&r, tu_seed() + len);
    snprintf(tmpl, sizeof tmpl, "/tmp/convd-keras-XXXXXX");
    cr_assert_not_null(mkdtemp(tmpl));
    snprintf(path, sizeof path, "%s/m%s", tmpl, ext);
    for (int t = 0; t < 60; t++) {
        size_t n = len;
        char *copy = malloc(len + 1);
        memcpy(copy, data, len);
        if (t < 30 || flips == 0) {
            n = t == 0 ? 0 : (size_t)tu_randint(&r, len); /* truncated */
        } else {
            for (int f = 0; f < flips; f++) /* corrupted bytes */
                copy[tu_randint(&r, len)] ^= (char)(1 + tu_randint(&r, 255));
        }
        FILE *fp = fopen(path, "wb");
        cr_assert_not_null(fp);
        cr_assert_eq(fwrite(copy, 1, n, fp), n);
        fclose(fp);
        cvd_model *m = NULL;
        cvd_err err = {0};
        int rc = cvd_model_load(path, &m, &err);
        if (rc < 0) {
            cr_assert_null(m);
            cr_assert(strlen(err.msg) > 0 && strstr(err.msg, path) != NULL,
                      "%s (%zu bytes, try %d): an error without a message naming the file: %s", src,
                      n, t, err.msg);
        } else {
            cr_assert_not_null(m); /* a flip in bytes nothing reads */
            cvd_model_unref(m);
        }
        free(copy);
    }
    remove(path);
    rmdir(tmpl);
    free(data);
}

/* .keras archives: truncated, and bytes changed anywhere (the zip's checksums catch changes
 * in the HDF5 file it holds). .h5 files: truncated only. Bytes changed inside an HDF5 file's
 * own structures (its heaps and trees) reach the HDF5 library's parser, which Debian's HDF5
 * 1.10 does not harden: such a file can crash it (docs/KERAS.md). */
Test(keras, truncated_and_corrupt_files_never_crash)
{
    mangle_and_load(DATA "k3_seq_classifier.keras", ".keras", 3);
    mangle_and_load(DATA "k3_func_wavenet.keras", ".keras", 1);
    mangle_and_load(DATA "k2_func_resnet.h5", ".h5", 0);
    mangle_and_load(DATA "k2_seq_classifier.h5", ".h5", 0);
}

/* ---- no allocation in a windowed net, from a real file or a generated one ------------------- */

Test(keras, windowed_nets_allocate_nothing)
{
    cvd_model *m = load_ok(DATA "k3_func_global.keras");
    cvd_net *net = NULL;
    cvd_err err = {0};
    cvd_rng r;
    const int C = cvd_model_in_channels(m), F = cvd_model_out_channels(m);
    cr_assert_eq(cvd_net_create_hop(m, 33, 4, &net, &err), 0, "%s", err.msg);
    float *x = malloc(sizeof(float) * 33 * (size_t)C);
    float *y = malloc(sizeof(float) * (size_t)cvd_net_max_out(net) * F);
    cvd_rng_seed(&r, tu_seed());
    for (int i = 0; i < 33 * C; i++)
        x[i] = (float)(cvd_rng_uniform(&r) - 0.5);
    const long a0 = alloc_count();
    for (int i = 0; i < 50; i++) {
        int no;
        cr_assert_eq(cvd_net_process(net, x, 1 + (int)tu_randint(&r, 33), y, &no), 0);
    }
    cvd_net_reset(net);
    cr_assert_eq(alloc_count(), a0, "%ld allocations while processing", alloc_count() - a0);
    free(x);
    free(y);
    cvd_net_destroy(net);
    cvd_model_unref(m);
}

/* ---- convd-run: --hop and --weights ------------------------------------------------------------
 */

static const char *build_dir(void)
{
    static char dir[1024];
    const char *env = getenv("CVD_BUILD_DIR");
    if (env && *env)
        return env;
    ssize_t n = readlink("/proc/self/exe", dir, sizeof dir - 1);
    if (n > 0) {
        dir[n] = '\0';
        char *slash = strrchr(dir, '/');
        if (slash) {
            *slash = '\0';
            return dir;
        }
    }
    return "./build";
}

/* Runs convd-run with args; returns its exit status, its standard error in err_out. */
static int convd_run(const char *const *args, char *err_out, size_t cap)
{
    char prog[1100], errf[64];
    const char *argv[32];
    int n = 0, st = 0;
    pid_t pid;
    posix_spawn_file_actions_t fa;
    snprintf(prog, sizeof prog, "%s/convd-run", build_dir());
    snprintf(errf, sizeof errf, "/tmp/convd-keras-err-%d", (int)getpid());
    argv[n++] = prog;
    for (; *args && n < 31; args++)
        argv[n++] = *args;
    argv[n] = NULL;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 2, errf, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    cr_assert_eq(posix_spawn(&pid, prog, &fa, NULL, (char *const *)argv, environ), 0, "%s", prog);
    posix_spawn_file_actions_destroy(&fa);
    while (waitpid(pid, &st, 0) < 0)
        cr_assert_eq(errno, EINTR);
    char *e = tu_read_file(errf, NULL);
    snprintf(err_out, cap, "%s", e ? e : "");
    free(e);
    remove(errf);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

Test(keras, convd_run_hop_and_weights)
{
    char err[4096], out[64];
    snprintf(out, sizeof out, "/tmp/convd-keras-out-%d.f32", (int)getpid());
    /* windowed, hop 3, streamed and offline: the reference */
    for (int offline = 0; offline < 2; offline++) {
        int st =
            convd_run((const char *const[]){DATA "k3_seq_classifier_hop3.keras",
                                            DATA "k3_seq_classifier_hop3.in.f32", out, "--hop", "3",
                                            "--block", "5", offline ? "--offline" : "-q", NULL},
                      err, sizeof err);
        cr_assert_eq(st, 0, "%s", err);
        size_t ny, ng;
        float *want = read_f32(DATA "k3_seq_classifier_hop3.out.f32", &ny);
        float *got = read_f32(out, &ng);
        cr_assert_eq(ng, ny);
        assert_close("convd-run --hop 3", got, want, ny, 1e-4, "convd-run");
        if (offline)
            cr_assert(strstr(err, "records (windows of 16 frames, hop 3)") != NULL, "%s", err);
        free(want);
        free(got);
    }
    /* --weights */
    int st = convd_run((const char *const[]){DATA "k2_weights_only.json",
                                             DATA "k2_weights_only.in.f32", out, "--weights",
                                             DATA "k2_weights_only.weights.h5", "-q", NULL},
                       err, sizeof err);
    cr_assert_eq(st, 0, "%s", err);
    size_t ny, ng;
    float *want = read_f32(DATA "k2_weights_only.out.f32", &ny), *got = read_f32(out, &ng);
    cr_assert_eq(ng, ny);
    assert_close("convd-run --weights", got, want, ny, 1e-4, "convd-run");
    free(want);
    free(got);
    /* --hop on a streaming model, and a bad --hop */
    st = convd_run((const char *const[]){DATA "k2_func_resnet.h5", DATA "k2_func_resnet.in.f32",
                                         out, "--hop", "4", NULL},
                   err, sizeof err);
    cr_assert_eq(st, 1, "%s", err);
    cr_assert(strstr(err, "--hop 4") && strstr(err, "streams"), "%s", err);
    st = convd_run((const char *const[]){DATA "k3_seq_classifier.keras",
                                         DATA "k3_seq_classifier.in.f32", out, "--hop", "0", NULL},
                   err, sizeof err);
    cr_assert_eq(st, 2, "%s", err);
    remove(out);
}

/* A Keras config (model.to_json()) with each key removed in turn, loaded with its weights
 * file: it loads and streams, or is refused with a message; never a crash. */
static char keras_cfg_path[80];
static const char *keras_weights;

static int keras_cfg_loader(const char *text, size_t len, cvd_model **out, cvd_err *err)
{
    FILE *f = fopen(keras_cfg_path, "wb");
    cr_assert_not_null(f);
    cr_assert_eq(fwrite(text, 1, len, f), len);
    fclose(f);
    return cvd_keras_load_weights(keras_cfg_path, keras_weights, out, err);
}

Test(keras, config_keys_removed_in_turn)
{
    char dir[64] = "/tmp/convd-keras-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    snprintf(keras_cfg_path, sizeof keras_cfg_path, "%s/config.json", dir);
    keras_weights = "tests/data/keras/k2_weights_only.weights.h5";
    jm_remove_each_key("tests/data/keras/k2_weights_only.json", keras_cfg_loader, 0);
    keras_weights = "tests/data/keras/k3_weights_only.weights.h5";
    jm_remove_each_key("tests/data/keras/k3_weights_only.json", keras_cfg_loader, 0);
    unlink(keras_cfg_path);
    rmdir(dir);
}
