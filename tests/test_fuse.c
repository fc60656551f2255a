/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_fuse.c - WaveNets written in Keras's Functional vocabulary run on the fused WaveNet
 * kernels (dsp/fuse.c, docs/FUSION.md).
 *
 * Every generated Keras WaveNet case (tests/data/keras/, scripts/gen_keras_cases.py's
 * wavenet_cases) is loaded and streamed at several block sizes twice: fused (as loaded) and
 * with fusion off (every node on the general path). The fused output agrees with the unfused
 * one within 1e-5 of the output's scale (the tolerance the Keras tests hold a stream to
 * against the offline result: the fused kernels add in another order and use the vectorised
 * tanh/sigmoid on other lanes, so the last bit may differ) and with Keras's reference within
 * 1e-4. Graphs that almost match (a layer in between, another merge, same padding, a softmax,
 * a 1x1 on each skip) must not fuse, must say why, and then run exactly the general path.
 * NAM's standard model converted to Keras (scripts/gen_keras_nam.py) fuses whole and, once
 * its receptive field has passed (the .nam prewarms, Keras does not), gives the .nam's output
 * bit for bit. A fused net's process() allocates nothing.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "alloc_count.h"
#include "convd_dsp.h"
#include "convd_model.h"
#include "testutil.h"

#define DATA "tests/data/keras/"
#define NAM_STD "../shared/models/nam/wavenet_a1_standard.nam"

static float *read_f32(const char *path, size_t *n)
{
    size_t len = 0;
    unsigned char *b = (unsigned char *)tu_read_file(path, &len);
    cr_assert_not_null(b, "cannot read %s (run scripts/gen_keras_cases.py)", path);
    *n = len / 4;
    float *f = malloc(sizeof(float) * (*n + 1));
    for (size_t i = 0; i < *n; i++) {
        uint32_t u = (uint32_t)b[4 * i] | (uint32_t)b[4 * i + 1] << 8 |
                     (uint32_t)b[4 * i + 2] << 16 | (uint32_t)b[4 * i + 3] << 24;
        memcpy(&f[i], &u, 4);
    }
    free(b);
    return f;
}

static cvd_model *load(const char *path)
{
    cvd_model *m = NULL;
    cvd_err err = {0};
    int rc = cvd_model_load(path, &m, &err);
    cr_assert_eq(rc, 0, "%s: %s", path, err.msg);
    return m;
}

/* n frames through a new net in blocks of `block` (a streaming model: n frames out). */
static float *run(cvd_model *m, const float *x, long n, int block)
{
    cvd_net *net = NULL;
    cvd_err err = {0};
    const int C = cvd_model_in_channels(m), F = cvd_model_out_channels(m);
    cr_assert_eq(cvd_net_create(m, block, &net, &err), 0, "%s", err.msg);
    float *y = calloc((size_t)n * F + 1, sizeof(float));
    float *ob = malloc(sizeof(float) * ((size_t)cvd_net_max_out(net) * F + 1));
    long got = 0;
    for (long pos = 0; pos < n; pos += block) {
        int nb = n - pos < block ? (int)(n - pos) : block, no = 0;
        long a0 = alloc_count();
        cr_assert_eq(cvd_net_process(net, x + (size_t)pos * C, nb, ob, &no), 0);
        cr_assert_eq(alloc_count(), a0, "process() allocated");
        cr_assert_leq(got + no, n);
        memcpy(y + (size_t)got * F, ob, sizeof(float) * (size_t)no * F);
        got += no;
    }
    for (;;) {
        int no = 0, more = cvd_net_flush(net, ob, &no);
        cr_assert_geq(more, 0);
        cr_assert_leq(got + no, n);
        memcpy(y + (size_t)got * F, ob, sizeof(float) * (size_t)no * F);
        got += no;
        if (!more)
            break;
    }
    cr_assert_eq(got, n, "%ld frames out for %ld in", got, n);
    free(ob);
    cvd_net_destroy(net);
    return y;
}

static double scale_of(const float *y, size_t n)
{
    double s = 0.0;
    for (size_t i = 0; i < n; i++)
        if (fabs(y[i]) > s)
            s = fabs(y[i]);
    return s > 1.0 ? s : 1.0;
}

static double max_diff(const float *a, const float *b, size_t n)
{
    double d = 0.0;
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)a[i] - (double)b[i]);
        if (!(e <= d))
            d = e;
    }
    return d;
}

static const int blocks[] = {1, 3, 16, 64, 257};

/* A generated case: fused or not as expected, fused == unfused, both == the reference. */
static void check_case(const char *name, const char *ext, int want_fused, const char *why)
{
    char path[256], in[256], out[256];
    size_t nx, ny;
    snprintf(path, sizeof path, DATA "%s%s", name, ext);
    snprintf(in, sizeof in, DATA "%s.in.f32", name);
    snprintf(out, sizeof out, DATA "%s.out.f32", name);
    cvd_model *m = load(path);
    const char *rep = cvd_model_fusion_report(m);
    cr_assert_eq(cvd_model_fused_count(m), want_fused, "%s: %d groups fused, want %d; report:\n%s",
                 name, cvd_model_fused_count(m), want_fused, rep);
    if (want_fused) {
        int input, output, nodes;
        const cvd_wn_config *cfg;
        cr_assert_eq(cvd_model_fused_group(m, 0, &input, &output, &nodes, &cfg), 0);
        cr_assert_eq(output, cvd_model_output(m), "%s: the group ends before the output", name);
        cr_assert_eq(input, 0, "%s", name);
        cr_assert_eq(cvd_model_node_fused(m, output), 0);
        cr_assert_eq(cvd_model_node_fused(m, 0), -1);
        cr_assert(strstr(rep, "fused: ") == rep, "%s: report: %s", name, rep);
    } else {
        cr_assert(strstr(rep, "not fused: ") != NULL && strstr(rep, why) != NULL,
                  "%s: the report does not say '%s':\n%s", name, why, rep);
        for (int i = 0; i < cvd_model_node_count(m); i++)
            cr_assert_eq(cvd_model_node_fused(m, i), -1);
    }
    float *x = read_f32(in, &nx), *want = read_f32(out, &ny);
    const long n = (long)(nx / (size_t)cvd_model_in_channels(m));
    cr_assert_eq((size_t)n * cvd_model_out_channels(m), ny);
    const double sc = scale_of(want, ny);
    double worst = 0.0;
    for (size_t b = 0; b < sizeof blocks / sizeof blocks[0]; b++) {
        cvd_model_set_fusion(m, 1);
        float *yf = run(m, x, n, blocks[b]);
        cvd_model_set_fusion(m, 0);
        float *yu = run(m, x, n, blocks[b]);
        cvd_model_set_fusion(m, 1);
        double d = max_diff(yf, yu, ny);
        if (d > worst)
            worst = d;
        if (!want_fused)
            cr_assert(memcmp(yf, yu, sizeof(float) * ny) == 0,
                      "%s block %d: not fused, yet the output differs from the general path", name,
                      blocks[b]);
        cr_assert_leq(d, 1e-5 * sc, "%s block %d: fused vs unfused differ by %g (scale %g)", name,
                      blocks[b], d, sc);
        double dr = max_diff(yf, want, ny);
        cr_assert_leq(dr, 1e-4 * sc, "%s block %d: fused vs Keras's reference differ by %g", name,
                      blocks[b], dr);
        free(yf);
        free(yu);
    }
    cr_log_info("%s: fused vs unfused at most %.3g (output scale %.3g)", name, worst, sc);
    free(x);
    free(want);
    cvd_model_unref(m);
}

Test(fuse, plain_two_arrays_mixin_scale)
{
    check_case("k3_wn_plain", ".keras", 1, "");
}
Test(fuse, gated_two_inputs_no_mixin)
{
    check_case("k3_wn_gated", ".keras", 1, "");
}
Test(fuse, gated_mixin_16_8)
{
    check_case("k3_wn_gated_mixin", ".keras", 1, "");
}
Test(fuse, activation_layer_no_rechannel)
{
    check_case("k3_wn_act_layer", ".keras", 1, "");
}
Test(fuse, plain_16_8)
{
    check_case("k3_wn_plain16", ".keras", 1, "");
}
Test(fuse, keras2_h5)
{
    check_case("k2_wn_plain", ".h5", 1, "");
}
Test(fuse, not_a_layer_in_between)
{
    check_case("k3_wn_nofuse_between", ".keras", 0, "(BatchNormalization), not by an Activation");
}
Test(fuse, not_a_gate_added)
{
    check_case("k3_wn_nofuse_merge", ".keras", 0, "(Add): a gated");
}
Test(fuse, not_same_padding)
{
    check_case("k3_wn_nofuse_same", ".keras", 0, "padding 'same'");
}
Test(fuse, not_softmax)
{
    check_case("k3_wn_nofuse_softmax", ".keras", 0, "not element-wise");
}
Test(fuse, not_skip_convolutions)
{
    check_case("k3_wn_nofuse_skip_conv", ".keras", 0, "'a0_l0_skip' (Conv1D) reads");
}
Test(fuse, not_skip_dense)
{
    check_case("k3_func_wavenet", ".keras", 0, "'skip_0' (Dense) reads");
}

/* NAM's standard model written in Keras's vocabulary gives the .nam's output. */
Test(fuse, nam_standard_in_keras)
{
    struct stat st;
    if (stat(NAM_STD, &st) != 0) {
        cr_skip_test(NAM_STD " is absent (../shared/models holds NAM's standard model)");
        return;
    }
    cvd_model *k = load(DATA "nam/wavenet_a1_standard.keras"), *nam = load(NAM_STD);
    cr_assert_eq(cvd_model_fused_count(k), 1, "%s", cvd_model_fusion_report(k));
    const cvd_wn_config *cfg;
    int nodes;
    cr_assert_eq(cvd_model_fused_group(k, 0, NULL, NULL, &nodes, &cfg), 0);
    cr_assert_eq(nodes, cvd_model_node_count(k) - 1, "every node but the input fuses");
    cr_assert_eq(cfg->n_arrays, 2);
    cr_assert_eq(cfg->arrays[0].channels, 16);
    cr_assert_eq(cfg->arrays[1].channels, 8);
    const long n = 12000, rf = cvd_model_receptive_field(nam);
    float *x = malloc(sizeof(float) * (size_t)n);
    cvd_rng r;
    cvd_rng_seed(&r, 7);
    for (long t = 0; t < n; t++) /* a guitar-like level: sines and noise */
        x[t] = (float)(0.3 * sin(0.01 * (double)t) + 0.2 * sin(0.173 * (double)t) +
                       0.05 * (cvd_rng_uniform(&r) - 0.5));
    for (int bi = 0; bi < 3; bi++) {
        const int b = (int[]){1, 64, 200}[bi];
        float *yk = run(k, x, n, b), *yn = run(nam, x, n, b);
        for (long t = rf; t < n; t++)
            cr_assert_eq(yk[t], yn[t], "block %d frame %ld: keras %.9g, nam %.9g", b, t,
                         (double)yk[t], (double)yn[t]);
        free(yk);
        free(yn);
    }
    free(x);
    cvd_model_unref(k);
    cvd_model_unref(nam);
}

/* The switch and the queries on models with nothing to fuse. */
Test(fuse, queries)
{
    cvd_model *m = load(DATA "k3_seq_conv_family.keras");
    cr_assert_eq(cvd_model_fused_count(m), 0);
    cr_assert_str_eq(cvd_model_fusion_report(m), "");
    cr_assert_eq(cvd_model_node_fused(m, -1), -1);
    cr_assert_eq(cvd_model_node_fused(m, 100000), -1);
    cr_assert_eq(cvd_model_fused_group(m, 0, NULL, NULL, NULL, NULL), CVD_EINVAL);
    cr_assert_eq(cvd_model_fusion_enabled(m), 1);
    cvd_model_set_fusion(m, 0);
    cr_assert_eq(cvd_model_fusion_enabled(m), 0);
    cvd_model_unref(m);
}
