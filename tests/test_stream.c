/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Property tests of the streaming engine: random layers and inputs, split into random block
 * sizes (0 and 1 included), streamed and flushed, equal the offline result.
 * A mismatch prints the seed; rerun one case with CVD_SEED=<seed>.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "convd_dsp.h"
#include "convd_model.h"
#include "testutil.h"

/* A random valid configuration for `kind`. */
static void random_config(cvd_rng *r, cvd_layer_kind kind, cvd_conv_config *c, int *C)
{
    cvd_conv_config_init(c, kind);
    c->kernel_size = 1 + (int)tu_randint(r, 5);
    c->strides = 1 + (int)tu_randint(r, 3);
    c->dilation_rate = 1 + (int)tu_randint(r, 4);
    if ((kind == CVD_CONV1D || kind == CVD_CONV1D_TRANSPOSE) && c->strides > 1 &&
        c->dilation_rate > 1) {
        if (tu_randint(r, 2))
            c->strides = 1;
        else
            c->dilation_rate = 1;
    }
    c->padding = kind == CVD_CONV1D ? (cvd_padding)tu_randint(r, 3) : (cvd_padding)tu_randint(r, 2);
    c->data_format = (cvd_data_format)tu_randint(r, 2);
    c->use_bias = (int)tu_randint(r, 2);
    c->depth_multiplier = 1 + (int)tu_randint(r, 3);
    *C = 1 + (int)tu_randint(r, 6);
    if (kind == CVD_CONV1D && tu_randint(r, 3) == 0) {
        c->groups = 1 + (int)tu_randint(r, 3);
        *C = c->groups * (1 + (int)tu_randint(r, 3));
        c->filters = c->groups * (1 + (int)tu_randint(r, 3));
    } else {
        c->filters = 1 + (int)tu_randint(r, 8);
    }
    if (kind == CVD_CONV1D_TRANSPOSE && tu_randint(r, 2))
        c->output_padding = (int)tu_randint(r, (uint64_t)c->strides);
    do {
        c->activation = (cvd_activation)tu_randint(r, CVD_ACT_COUNT);
    } while (c->data_format == CVD_CHANNELS_FIRST && cvd_activation_is_axis(c->activation));
}

/* Streams x (n frames, in the layer's layout) in random blocks; returns frames written to y
 * (in the layer's layout for the whole sequence). */
static long stream_all(cvd_layer *L, cvd_rng *r, const float *x, long n, float *y, long ycap)
{
    const int cf = cvd_layer_config(L)->data_format == CVD_CHANNELS_FIRST;
    const int C = cvd_layer_in_channels(L), F = cvd_layer_out_channels(L);
    const int mb = cvd_layer_max_block(L), mo = cvd_layer_max_out(L);
    float *blk = malloc(sizeof(float) * (size_t)mb * C + 4);
    float *ob = malloc(sizeof(float) * (size_t)mo * F + 4);
    long got = 0, pos = 0;

    /* frames are gathered frame-major here, converted at the end for channels_first */
    float *fm = malloc(sizeof(float) * ((size_t)ycap * F + 4));
    while (pos < n || 1) {
        int nb, no;
        if (pos >= n)
            break;
        nb = (int)tu_randint(r, (uint64_t)mb + 1);
        if (tu_randint(r, 4) == 0)
            nb = (int)tu_randint(r, 2); /* 0 and 1 often */
        if (nb > n - pos)
            nb = (int)(n - pos);
        for (int t = 0; t < nb; t++)
            for (int c = 0; c < C; c++)
                blk[cf ? (size_t)c * nb + t : (size_t)t * C + c] =
                    cf ? x[(size_t)c * n + pos + t] : x[(size_t)(pos + t) * C + c];
        cr_assert_eq(cvd_layer_process(L, blk, nb, ob, &no), 0);
        cr_assert_leq(no, mo);
        cr_assert_leq(got + no, ycap, "stream produced too many frames");
        for (int t = 0; t < no; t++)
            for (int f = 0; f < F; f++)
                fm[(size_t)(got + t) * F + f] = cf ? ob[(size_t)f * no + t] : ob[(size_t)t * F + f];
        got += no;
        pos += nb;
    }
    for (;;) {
        int no, more = cvd_layer_flush(L, ob, &no);
        cr_assert_geq(more, 0);
        cr_assert_leq(no, mo);
        cr_assert_leq(got + no, ycap, "flush produced too many frames");
        for (int t = 0; t < no; t++)
            for (int f = 0; f < F; f++)
                fm[(size_t)(got + t) * F + f] = cf ? ob[(size_t)f * no + t] : ob[(size_t)t * F + f];
        got += no;
        if (!more)
            break;
    }
    for (long t = 0; t < got; t++)
        for (int f = 0; f < F; f++)
            y[cf ? (size_t)f * got + t : (size_t)t * F + f] = fm[(size_t)t * F + f];
    free(fm);
    free(blk);
    free(ob);
    return got;
}

/* One random case; returns 0 when it matched. */
static void check_case(uint64_t seed)
{
    cvd_rng r;
    cvd_conv_config cfg;
    cvd_layer *L;
    cvd_err err = {0};
    int C;

    cvd_rng_seed(&r, seed);
    cvd_layer_kind kind = (cvd_layer_kind)tu_randint(&r, 4);
    random_config(&r, kind, &cfg, &C);
    int max_block = 1 + (int)tu_randint(&r, 24);
    int rc = cvd_layer_create(&cfg, C, max_block, &L, &err);
    cr_assert_eq(rc, 0, "seed %llu: create: %s", (unsigned long long)seed, err.msg);
    cvd_layer_init_weights(L, seed);
    if (cfg.use_bias) {
        int bi = cvd_layer_var_count(L) - 1;
        size_t nb = cvd_layer_var_size(L, bi);
        float *b = malloc(nb * sizeof(float));
        for (size_t i = 0; i < nb; i++)
            b[i] = (float)(cvd_rng_uniform(&r) - 0.5);
        cvd_layer_set_var(L, bi, b, nb, NULL);
        free(b);
    }

    long n = (long)tu_randint(&r, 70);
    const int cf = cfg.data_format == CVD_CHANNELS_FIRST;
    const int F = cvd_layer_out_channels(L), s = cfg.strides;
    /* same padding with strides > 1 streams the input zero-extended to a multiple of s */
    long nref = n;
    if (kind != CVD_CONV1D_TRANSPOSE && cfg.padding == CVD_PAD_SAME && s > 1 && n % s)
        nref = n + (s - n % s);
    float *x = calloc((size_t)nref * C + 1, sizeof(float));
    for (long t = 0; t < n; t++)
        for (int c = 0; c < C; c++)
            x[cf ? (size_t)c * nref + t : (size_t)t * C + c] = (float)(2 * cvd_rng_uniform(&r) - 1);
    /* channels_first streaming input must be [C][n] of the real n */
    float *xs = calloc((size_t)n * C + 1, sizeof(float));
    for (long t = 0; t < n; t++)
        for (int c = 0; c < C; c++)
            xs[cf ? (size_t)c * n + t : (size_t)t * C + c] =
                x[cf ? (size_t)c * nref + t : (size_t)t * C + c];

    long want_n = cvd_layer_output_length(L, nref, NULL);
    float *want = NULL;
    if (want_n < 0) {
        want_n = 0; /* valid padding, too short: the stream emits nothing */
    } else {
        want = calloc((size_t)want_n * F + 1, sizeof(float));
        long got_n;
        cr_assert_eq(cvd_layer_forward(L, x, nref, want, &got_n, &err), 0, "seed %llu: %s",
                     (unsigned long long)seed, err.msg);
        cr_assert_eq(got_n, want_n);
    }
    long ycap = want_n + 4 * (long)cvd_layer_max_out(L) + 8;
    float *got = calloc((size_t)ycap * F + 1, sizeof(float));
    for (int split = 0; split < 3; split++) {
        cvd_layer_reset(L);
        long got_n = stream_all(L, &r, xs, n, got, ycap);
        cr_assert_eq(got_n, want_n,
                     "seed %llu: %s k=%d s=%d d=%d pad=%s %s C=%d F=%d n=%ld mb=%d: "
                     "stream gave %ld frames, offline %ld",
                     (unsigned long long)seed, cvd_layer_kind_name(kind), cfg.kernel_size, s,
                     cfg.dilation_rate, cvd_padding_name(cfg.padding),
                     cvd_data_format_name(cfg.data_format), C, F, n, max_block, got_n, want_n);
        double scale = 1.0;
        for (long i = 0; i < want_n * F; i++)
            if (fabs(want[i]) > scale)
                scale = fabs(want[i]);
        for (long i = 0; i < want_n * F; i++) {
            double e = fabs((double)got[i] - want[i]);
            if (!(e <= 1e-5 * scale) && !(isnan(got[i]) && isnan(want[i])) &&
                !(isinf(got[i]) && got[i] == want[i]))
                cr_assert_fail("seed %llu: %s k=%d s=%d d=%d pad=%s %s act=%s C=%d F=%d n=%ld "
                               "mb=%d: element %ld: stream %.9g offline %.9g",
                               (unsigned long long)seed, cvd_layer_kind_name(kind), cfg.kernel_size,
                               s, cfg.dilation_rate, cvd_padding_name(cfg.padding),
                               cvd_data_format_name(cfg.data_format),
                               cvd_activation_name(cfg.activation), C, F, n, max_block, i, got[i],
                               want[i]);
        }
    }
    free(x);
    free(xs);
    free(want);
    free(got);
    cvd_layer_destroy(L);
}

Test(stream, random_layers_equal_offline)
{
    uint64_t base = tu_seed();
    for (uint64_t i = 0; i < 3000; i++)
        check_case(base + i);
}

Test(stream, random_layers_equal_offline_portable)
{
    cvd_isa_force("portable");
    uint64_t base = tu_seed() + 1000000;
    for (uint64_t i = 0; i < 1000; i++)
        check_case(base + i);
}

/* A merge that takes the net's input directly (the vibration model's final Add of the input
 * and a conv): flushing it, and flushing a net that never had a frame, pass nothing through
 * (found by fuzzing: a zero-length copy from the input's absent buffer). */
Test(stream, flush_through_a_merge_of_the_input)
{
    cvd_model *m = NULL;
    cvd_err err;
    size_t len;
    char *text = tu_read_file("config/models/vibration-denoise.json", &len);
    cr_assert_not_null(text);
    cr_assert_eq(cvd_json_model_parse(text, len, "vibration-denoise", NULL, &m, &err), 0, "%s",
                 err.msg);
    free(text);
    cvd_net *net;
    cr_assert_eq(cvd_net_create(m, 16, &net, &err), 0, "%s", err.msg);
    float in[16 * 3], out[64 * 3];
    for (int i = 0; i < 16 * 3; i++)
        in[i] = (float)(i % 7) * 0.1f;
    for (int round = 0; round < 2; round++) {
        int no = -1, more;
        if (round == 0) /* frames, then the flush */
            cr_assert_eq(cvd_net_process(net, in, 5, out, &no), 0);
        long total = no > 0 ? no : 0;
        do {
            more = cvd_net_flush(net, out, &no);
            cr_assert_geq(more, 0);
            total += no;
        } while (more == 1);
        cr_assert_eq(total, round == 0 ? 5 : 0, "round %d: %ld frames out", round, total);
        cvd_net_reset(net);
    }
    cvd_net_destroy(net);
    cvd_model_unref(m);
}
