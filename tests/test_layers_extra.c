/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_layers_extra.c - the graph's Keras layers beyond convolutions (dsp/ops.c, pool.c) and
 * the two ways a model runs (streaming, windowed), through the builder API.
 *
 *   values     each layer on small inputs against results worked out by hand from Keras's
 *              definitions (pooling with both paddings, average over the real frames, the
 *              norms, Flatten/Reshape/Permute orders in both data formats);
 *   streaming  random block splits (0 and 1 included), flushed, equal the offline output,
 *              for chains and branches of the streaming layers;
 *   windowed   a windowed net's records equal the offline windows for several hops, any
 *              block size; each record equals the offline result on that window alone;
 *   no alloc   after create, neither kind of net allocates;
 *   errors     what cannot be built is refused with a message naming the layer.
 * The Keras-file tests (test_keras.c) compare the same layers with an independent reference.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "alloc_count.h"
#include "convd_dsp.h"
#include "testutil.h"

/* ---- helpers ------------------------------------------------------------------------------ */

static cvd_model *new_model(int ch, long len, cvd_data_format df)
{
    cvd_model *m = NULL;
    cvd_err err = {0};
    cr_assert_eq(cvd_model_create(ch, &m, &err), 0, "%s", err.msg);
    cr_assert_eq(cvd_model_set_input_length(m, len, &err), 0, "%s", err.msg);
    cr_assert_eq(cvd_model_set_data_format(m, df, &err), 0, "%s", err.msg);
    return m;
}

static int ok(int id, const cvd_err *err)
{
    cr_assert_gt(id, 0, "add failed: %s", err->msg);
    return id;
}

static float *forward(const cvd_model *m, const float *x, long n, long hop, long *n_out)
{
    float *y = NULL;
    cvd_err err = {0};
    int rc = cvd_model_forward_hop(m, x, n, hop, &y, n_out, &err);
    cr_assert_eq(rc, 0, "forward: %s", err.msg);
    return y;
}

static void expect_values(const float *got, const float *want, size_t n, const char *what)
{
    for (size_t i = 0; i < n; i++)
        cr_assert(fabsf(got[i] - want[i]) <= 1e-5f * (1.0f + fabsf(want[i])),
                  "%s: value %zu: got %.9g, want %.9g", what, i, got[i], want[i]);
}

static void random_input(cvd_rng *r, float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        x[i] = (float)(2.0 * cvd_rng_uniform(r) - 1.0);
}

/* Streams x through a fresh net (max_block mb, random splits), flushed; returns frames. */
static long stream_all(cvd_model *m, int mb, long hop, cvd_rng *r, const float *x, long n, float *y,
                       long ycap)
{
    cvd_net *net = NULL;
    cvd_err err = {0};
    const int C = cvd_model_in_channels(m), F = cvd_model_out_channels(m);
    cr_assert_eq(cvd_net_create_hop(m, mb, hop, &net, &err), 0, "%s", err.msg);
    const int mo = cvd_net_max_out(net);
    float *ob = malloc(sizeof(float) * ((size_t)mo * F + 1));
    long got = 0, pos = 0;
    while (pos < n) {
        int nb = (int)tu_randint(r, (uint64_t)mb + 1), no = -1;
        if (tu_randint(r, 4) == 0)
            nb = (int)tu_randint(r, 2);
        if (nb > n - pos)
            nb = (int)(n - pos);
        cr_assert_eq(cvd_net_process(net, x + (size_t)pos * C, nb, ob, &no), 0);
        cr_assert(no >= 0 && no <= mo, "process wrote %d frames, max_out %d", no, mo);
        cr_assert_leq(got + no, ycap);
        memcpy(y + (size_t)got * F, ob, sizeof(float) * (size_t)no * F);
        got += no;
        pos += nb;
    }
    for (;;) {
        int no = -1, more = cvd_net_flush(net, ob, &no);
        cr_assert_geq(more, 0);
        cr_assert(no >= 0 && no <= mo);
        cr_assert_leq(got + no, ycap);
        memcpy(y + (size_t)got * F, ob, sizeof(float) * (size_t)no * F);
        got += no;
        if (!more)
            break;
    }
    free(ob);
    cvd_net_destroy(net);
    return got;
}

/* Offline vs streamed at several block sizes; n input frames of random data. */
static void check_stream_equals_offline(cvd_model *m, long n, long hop, const char *what)
{
    static const int blocks[] = {1, 2, 3, 5, 16, 64, 200};
    const int C = cvd_model_in_channels(m), F = cvd_model_out_channels(m);
    cvd_rng r;
    uint64_t seed = tu_seed();
    cvd_rng_seed(&r, seed);
    float *x = malloc(sizeof(float) * (size_t)n * C);
    random_input(&r, x, (size_t)n * C);
    long n_off;
    float *off = forward(m, x, n, hop, &n_off);
    float *y = malloc(sizeof(float) * ((size_t)(n_off + 8) * F + 1));
    for (size_t b = 0; b < sizeof blocks / sizeof blocks[0]; b++) {
        cvd_rng_seed(&r, seed + b);
        long got = stream_all(m, blocks[b], hop, &r, x, n, y, n_off + 8);
        cr_assert_eq(got, n_off, "%s: block %d: %ld frames streamed, %ld offline (seed %llu)", what,
                     blocks[b], got, n_off, (unsigned long long)(seed + b));
        for (size_t i = 0; i < (size_t)n_off * F; i++)
            cr_assert(fabsf(y[i] - off[i]) <= 1e-5f * (1.0f + fabsf(off[i])),
                      "%s: block %d: value %zu: stream %.9g, offline %.9g (seed %llu)", what,
                      blocks[b], i, y[i], off[i], (unsigned long long)(seed + b));
    }
    free(x);
    free(off);
    free(y);
}

/* ---- values --------------------------------------------------------------------------------- */

Test(layers_extra, max_pooling_valid_and_same)
{
    cvd_err err = {0};
    const float x[] = {1, -1, 5, 2, 3, 7, -4, 0, 9}; /* 9 frames, 1 channel */
    long n;
    cvd_model *m = new_model(1, 0, CVD_CHANNELS_LAST);
    ok(cvd_model_add_pooling(m, "p", CVD_NODE_MAX_POOL, 3, 2, CVD_PAD_VALID, 0, &err), &err);
    float *y = forward(m, x, 9, 0, &n);
    const float want_valid[] = {5, 5, 7, 9}; /* windows 0-2, 2-4, 4-6, 6-8 */
    cr_assert_eq(n, 4);
    expect_values(y, want_valid, 4, "max valid");
    free(y);
    cvd_model_unref(m);

    /* same, k=4, s=2, n=9: out 5, total (5-1)*2+4-9 = 3, left 1 */
    m = new_model(1, 0, CVD_CHANNELS_LAST);
    ok(cvd_model_add_pooling(m, "p", CVD_NODE_MAX_POOL, 4, 2, CVD_PAD_SAME, 0, &err), &err);
    y = forward(m, x, 9, 0, &n);
    const float want_same[] = {5, 5, 7, 9, 9}; /* [-1,3) [1,5) [3,7) [5,9) [7,11) */
    cr_assert_eq(n, 5);
    expect_values(y, want_same, 5, "max same");
    free(y);
    cvd_model_unref(m);
}

Test(layers_extra, average_pooling_same_divides_by_real_frames)
{
    cvd_err err = {0};
    const float x[] = {1, 2, 3, 4, 5, 6, 7}; /* 7 frames */
    long n;
    /* k=3, s=1, same: left 1, right 1; the edges average 2 frames */
    cvd_model *m = new_model(1, 0, CVD_CHANNELS_LAST);
    ok(cvd_model_add_pooling(m, "a", CVD_NODE_AVG_POOL, 3, 1, CVD_PAD_SAME, 0, &err), &err);
    float *y = forward(m, x, 7, 0, &n);
    const float want[] = {1.5f, 2, 3, 4, 5, 6, 6.5f};
    cr_assert_eq(n, 7);
    expect_values(y, want, 7, "avg same");
    free(y);
    cvd_model_unref(m);
    /* k=2, s=3, valid: windows [0,2) [3,5) */
    m = new_model(1, 0, CVD_CHANNELS_LAST);
    ok(cvd_model_add_pooling(m, "a", CVD_NODE_AVG_POOL, 2, 3, CVD_PAD_VALID, 0, &err), &err);
    y = forward(m, x, 7, 0, &n);
    const float want2[] = {1.5f, 4.5f};
    cr_assert_eq(n, 2);
    expect_values(y, want2, 2, "avg valid strided");
    free(y);
    cvd_model_unref(m);
}

Test(layers_extra, pad_crop_upsample)
{
    cvd_err err = {0};
    const float x[] = {1, 10, 2, 20, 3, 30}; /* 3 frames, 2 channels */
    long n;
    cvd_model *m = new_model(2, 0, CVD_CHANNELS_LAST);
    int a = ok(cvd_model_add_pad_crop(m, "zp", CVD_NODE_ZERO_PADDING, 2, 1, 0, &err), &err);
    int b = ok(cvd_model_add_upsampling(m, "up", 2, a, &err), &err);
    ok(cvd_model_add_pad_crop(m, "cr", CVD_NODE_CROPPING, 3, 2, b, &err), &err);
    /* zp: 0 0 1 2 3 0 (6); up: 0 0 0 0 1 1 2 2 3 3 0 0 (12); crop 3..9: 0 1 1 2 2 3 3 */
    float *y = forward(m, x, 3, 0, &n);
    const float want[] = {0, 0, 1, 10, 1, 10, 2, 20, 2, 20, 3, 30, 3, 30};
    cr_assert_eq(n, 7);
    expect_values(y, want, 14, "pad, upsample, crop");
    free(y);
    check_stream_equals_offline(m, 50, 0, "pad, upsample, crop");
    cvd_model_unref(m);
}

Test(layers_extra, norms_and_rescaling)
{
    cvd_err err = {0};
    const float x[] = {1, 2, 3, 4, -1, 0, 2, 7}; /* 2 frames, 4 channels */
    long n;
    cvd_model *m = new_model(4, 0, CVD_CHANNELS_LAST);
    int bn = ok(cvd_model_add_batch_norm(m, "bn", CVD_AXIS_CHANNELS, 0.5f, 1, 1, 0, &err), &err);
    const float g[] = {1, 2, 3, 4}, be[] = {0, 1, 0, -1}, mu[] = {1, 1, 1, 1},
                var[] = {0.5f, 1.5f, 3.5f, 7.5f};
    cr_assert_eq(cvd_model_var_count(m, bn), 4);
    cr_assert_eq(cvd_model_set_var(m, bn, 0, g, 4, &err), 0, "%s", err.msg);
    cr_assert_eq(cvd_model_set_var(m, bn, 1, be, 4, &err), 0);
    cr_assert_eq(cvd_model_set_var(m, bn, 2, mu, 4, &err), 0);
    cr_assert_eq(cvd_model_set_var(m, bn, 3, var, 4, &err), 0);
    /* (x - 1) / sqrt(var + 0.5) * g + b: divisors 1, sqrt 2, 2, sqrt 8 */
    float *y = forward(m, x, 2, 0, &n);
    const float want[] = {
        0,  (float)(1.0 / sqrt(2.0) * 2 + 1),  3,    (float)(3.0 / sqrt(8.0) * 4 - 1),
        -2, (float)(-1.0 / sqrt(2.0) * 2 + 1), 1.5f, (float)(6.0 / sqrt(8.0) * 4 - 1)};
    expect_values(y, want, 8, "batch norm");
    free(y);
    cvd_model_unref(m);

    /* layer norm over channels: frame 0 is 1 2 3 4, mean 2.5, var 1.25 */
    m = new_model(4, 0, CVD_CHANNELS_LAST);
    int ln = ok(cvd_model_add_layer_norm(m, "ln", CVD_AXIS_CHANNELS, 0.0f, 1, 1, 0, 0, &err), &err);
    ok(cvd_model_add_rescaling(m, "rs", 2.0f, -1.0f, ln, &err), &err);
    y = forward(m, x, 1, 0, &n);
    for (int c = 0; c < 4; c++) {
        float z = (float)(((c + 1) - 2.5) / sqrt(1.25));
        cr_assert(fabsf(y[c] - (2 * z - 1)) < 1e-5f, "layer norm %d: %g vs %g", c, y[c], 2 * z - 1);
    }
    free(y);
    cvd_model_unref(m);

    /* rms_scaling: x * rsqrt(var(x) + eps) * gamma, no centring */
    m = new_model(4, 0, CVD_CHANNELS_LAST);
    ln = ok(cvd_model_add_layer_norm(m, "rms", CVD_AXIS_CHANNELS, 0.0f, 1, 1, 1, 0, &err), &err);
    cr_assert_eq(cvd_model_var_count(m, ln), 1, "rms_scaling has gamma only");
    y = forward(m, x, 1, 0, &n);
    for (int c = 0; c < 4; c++)
        cr_assert(fabsf(y[c] - (float)((c + 1) / sqrt(1.25))) < 1e-5f);
    free(y);
    cvd_model_unref(m);
}

Test(layers_extra, flatten_reshape_permute_orders)
{
    cvd_err err = {0};
    /* 3 frames x 2 channels; channels_last Keras tensor (3, 2) */
    const float x[] = {1, 2, 3, 4, 5, 6};
    long n;
    cvd_model *m = new_model(2, 3, CVD_CHANNELS_LAST);
    ok(cvd_model_add_flatten(m, "f", CVD_CHANNELS_LAST, 0, &err), &err);
    cr_assert_eq(cvd_model_mode(m), CVD_MODE_WINDOWED);
    cr_assert_eq(cvd_model_window(m), 3);
    cr_assert_eq(cvd_model_out_channels(m), 6);
    float *y = forward(m, x, 3, 0, &n);
    cr_assert_eq(n, 1);
    expect_values(y, x, 6, "flatten channels_last");
    free(y);
    cvd_model_unref(m);

    /* Flatten(data_format=channels_first) on a channels_last tensor: channel-major */
    m = new_model(2, 3, CVD_CHANNELS_LAST);
    ok(cvd_model_add_flatten(m, "f", CVD_CHANNELS_FIRST, 0, &err), &err);
    y = forward(m, x, 3, 0, &n);
    const float cm[] = {1, 3, 5, 2, 4, 6};
    expect_values(y, cm, 6, "flatten channels_first layer");
    free(y);
    cvd_model_unref(m);

    /* a channels_first model: Keras's tensor is (2, 3); the record is in that order */
    m = new_model(2, 3, CVD_CHANNELS_FIRST);
    ok(cvd_model_add_permute(m, "p", 1, 0, &err), &err); /* Keras (3, 2): frames 2, ch 3 */
    y = forward(m, x, 3, 0, &n);
    /* internal (2 frames, 3 channels) = Keras (channels 3, steps 2) in C order: the
     * record is channel-major: (3, 2) -> 1 2 | 3 4 | 5 6 read as [c][t] */
    const float perm[] = {1, 2, 3, 4, 5, 6};
    expect_values(y, perm, 6, "permute channels_first");
    free(y);
    cvd_model_unref(m);

    /* Reshape (3, 2) -> (2, 3) channels_last: C order kept */
    m = new_model(2, 3, CVD_CHANNELS_LAST);
    const long dims[2] = {2, -1};
    int r = ok(cvd_model_add_reshape(m, "r", 2, dims, 0, &err), &err);
    cr_assert_eq(cvd_model_node_frames(m, r), 2);
    cr_assert_eq(cvd_model_node_channels(m, r), 3);
    y = forward(m, x, 3, 0, &n);
    expect_values(y, x, 6, "reshape channels_last");
    free(y);
    cvd_model_unref(m);

    /* global pooling, keepdims, then softmax over channels */
    m = new_model(2, 3, CVD_CHANNELS_LAST);
    int g = ok(cvd_model_add_global_pooling(m, "g", CVD_NODE_GLOBAL_AVG_POOL, 1, 0, &err), &err);
    cr_assert_eq(cvd_model_node_rank(m, g), 2);
    y = forward(m, x, 3, 0, &n);
    const float avg[] = {3, 4};
    expect_values(y, avg, 2, "global average");
    free(y);
    cvd_model_unref(m);

    /* softmax over time (windowed) */
    m = new_model(1, 3, CVD_CHANNELS_FIRST);
    ok(cvd_model_add_activation_axis(m, "sm", CVD_ACT_SOFTMAX, CVD_AXIS_TIME, 0, &err), &err);
    cr_assert_eq(cvd_model_mode(m), CVD_MODE_WINDOWED);
    const float t3[] = {0, 1, 2};
    y = forward(m, t3, 3, 0, &n);
    double s = 1 + exp(1) + exp(2);
    const float sm[] = {(float)(1 / s), (float)(exp(1) / s), (float)(exp(2) / s)};
    expect_values(y, sm, 3, "softmax over time");
    free(y);
    cvd_model_unref(m);
}

/* ---- streaming equals offline ------------------------------------------------------------------
 */

Test(layers_extra, streaming_layers_stream_like_offline)
{
    cvd_err err = {0};
    static const struct {
        cvd_node_op op;
        int k, s;
        cvd_padding pad;
    } pools[] = {
        {CVD_NODE_MAX_POOL, 2, 2, CVD_PAD_VALID}, {CVD_NODE_MAX_POOL, 3, 1, CVD_PAD_SAME},
        {CVD_NODE_AVG_POOL, 4, 1, CVD_PAD_SAME},  {CVD_NODE_AVG_POOL, 2, 5, CVD_PAD_VALID},
        {CVD_NODE_AVG_POOL, 5, 2, CVD_PAD_SAME},  {CVD_NODE_MAX_POOL, 1, 1, CVD_PAD_VALID},
    };
    for (size_t i = 0; i < sizeof pools / sizeof pools[0]; i++) {
        cvd_model *m = new_model(3, 0, CVD_CHANNELS_LAST);
        cvd_conv_config c;
        cvd_conv_config_init(&c, CVD_CONV1D);
        c.filters = 4;
        c.kernel_size = 3;
        c.padding = CVD_PAD_SAME;
        int a = ok(cvd_model_add_conv(m, "c", &c, 0, &err), &err);
        int b =
            ok(cvd_model_add_batch_norm(m, "bn", CVD_AXIS_CHANNELS, 1e-3f, 1, 1, a, &err), &err);
        int p = ok(cvd_model_add_pooling(m, "p", pools[i].op, pools[i].k, pools[i].s, pools[i].pad,
                                         b, &err),
                   &err);
        int ln =
            ok(cvd_model_add_layer_norm(m, "ln", CVD_AXIS_CHANNELS, 1e-3f, 1, 1, 0, p, &err), &err);
        ok(cvd_model_add_identity(m, "drop", "Dropout", ln, &err), &err);
        cvd_model_init_weights(m, 7 + i);
        char what[64];
        snprintf(what, sizeof what, "pool case %zu", i);
        /* a multiple of every stride: same padding's stream equals offline exactly */
        check_stream_equals_offline(m, 60, 0, what);
        cr_assert_eq(cvd_model_mode(m), CVD_MODE_STREAMING);
        cvd_model_unref(m);
    }
}

/* Branches of different lags (padding, cropping, pooling) meet in merges, as offline. */
Test(layers_extra, branches_line_up)
{
    cvd_err err = {0};
    cvd_model *m = new_model(2, 0, CVD_CHANNELS_LAST);
    cvd_conv_config c;
    cvd_conv_config_init(&c, CVD_CONV1D);
    c.filters = 2;
    c.kernel_size = 5;
    c.padding = CVD_PAD_VALID;
    int zp = ok(cvd_model_add_pad_crop(m, "zp", CVD_NODE_ZERO_PADDING, 3, 1, 0, &err), &err);
    int cv = ok(cvd_model_add_conv(m, "cv", &c, zp, &err), &err); /* n + 4 - 4 = n */
    int cr = ok(cvd_model_add_pad_crop(m, "cr", CVD_NODE_CROPPING, 1, 2, 0, &err), &err);
    int zp2 = ok(cvd_model_add_pad_crop(m, "zp2", CVD_NODE_ZERO_PADDING, 2, 1, cr, &err), &err);
    int mp =
        ok(cvd_model_add_pooling(m, "mp", CVD_NODE_MAX_POOL, 3, 1, CVD_PAD_SAME, 0, &err), &err);
    const int ins[3] = {cv, zp2, mp};
    int add = ok(cvd_model_add_merge(m, "add", CVD_NODE_ADD, ins, 3, &err), &err);
    int up = ok(cvd_model_add_upsampling(m, "up", 3, add, &err), &err);
    ok(cvd_model_add_pooling(m, "down", CVD_NODE_AVG_POOL, 3, 3, CVD_PAD_VALID, up, &err), &err);
    cvd_model_init_weights(m, 3);
    check_stream_equals_offline(m, 97, 0, "branches");
    cvd_model_unref(m);
}

/* ---- windowed
 * ------------------------------------------------------------------------------------ */

/* conv valid, pool, flatten, dense, softmax: a sensor classifier */
static cvd_model *classifier_with(long W, cvd_data_format df, cvd_data_format flatten_df);

static cvd_model *classifier(long W, cvd_data_format df)
{
    return classifier_with(W, df, df);
}

/* ... with Flatten's own data_format */
static cvd_model *classifier_with(long W, cvd_data_format df, cvd_data_format flatten_df)
{
    cvd_err err = {0};
    cvd_model *m = new_model(3, W, df);
    cvd_conv_config c;
    cvd_conv_config_init(&c, CVD_CONV1D);
    c.filters = 5;
    c.kernel_size = 3;
    c.activation = CVD_ACT_RELU;
    int a = ok(cvd_model_add_conv(m, "conv", &c, 0, &err), &err);
    int p =
        ok(cvd_model_add_pooling(m, "pool", CVD_NODE_MAX_POOL, 2, 2, CVD_PAD_VALID, a, &err), &err);
    int f = ok(cvd_model_add_flatten(m, "flat", flatten_df, p, &err), &err);
    int d = ok(cvd_model_add_dense(m, "dense", 4, CVD_ACT_SOFTMAX, 1, f, &err), &err);
    (void)d;
    cvd_model_init_weights(m, 11);
    return m;
}

/* The classifier's weights, drawn here and set through the API, so that the test can compute
 * the model itself: Keras's shapes, conv kernel (3, 3, 5) and bias (5), dense kernel (15, 4)
 * and bias (4). */
typedef struct classifier_w {
    float ck[3][3][5], cb[5], dk[15][4], db[4];
} classifier_w;

static void classifier_set(cvd_model *m, classifier_w *w, uint64_t seed)
{
    cvd_rng r;
    cvd_err err = {0};
    cvd_rng_seed(&r, seed);
    random_input(&r, &w->ck[0][0][0], 45);
    random_input(&r, w->cb, 5);
    random_input(&r, &w->dk[0][0], 60);
    random_input(&r, w->db, 4);
    cr_assert_eq(cvd_model_set_var(m, 1, 0, &w->ck[0][0][0], 45, &err), 0, "%s", err.msg);
    cr_assert_eq(cvd_model_set_var(m, 1, 1, w->cb, 5, &err), 0, "%s", err.msg);
    cr_assert_eq(cvd_model_set_var(m, 4, 0, &w->dk[0][0], 60, &err), 0, "%s", err.msg);
    cr_assert_eq(cvd_model_set_var(m, 4, 1, w->db, 4, &err), 0, "%s", err.msg);
}

/* The classifier on one window of 9 frames of 3 channels, in double, written out from Keras's
 * definitions (independent of the library): Conv1D valid k=3 relu -> 7 x 5, MaxPooling1D
 * 2/2 valid -> 3 x 5, Flatten, Dense 4 softmax. Keras's Flatten flattens the tensor as its
 * layer sees it: a channels_first Flatten first transposes to channels_last, so the order is
 * t*5 + c unless the Flatten's data_format differs from the model's tensors' (chmajor: a
 * channels_last Flatten of a channels_first tensor (5, 3) gives c*3 + t). */
static void classifier_expect(const classifier_w *w, const float *x, int chmajor, double *out)
{
    double conv[7][5], pool[3][5], flat[15], z[4], mx = -1e300, sum = 0;
    for (int t = 0; t < 7; t++)
        for (int f = 0; f < 5; f++) {
            double a = w->cb[f];
            for (int k = 0; k < 3; k++)
                for (int c = 0; c < 3; c++)
                    a += (double)x[(t + k) * 3 + c] * w->ck[k][c][f];
            conv[t][f] = a > 0 ? a : 0;
        }
    for (int t = 0; t < 3; t++)
        for (int f = 0; f < 5; f++)
            pool[t][f] = fmax(conv[2 * t][f], conv[2 * t + 1][f]);
    for (int t = 0; t < 3; t++)
        for (int f = 0; f < 5; f++)
            flat[chmajor ? f * 3 + t : t * 5 + f] = pool[t][f];
    for (int u = 0; u < 4; u++) {
        z[u] = w->db[u];
        for (int i = 0; i < 15; i++)
            z[u] += flat[i] * w->dk[i][u];
        mx = fmax(mx, z[u]);
    }
    for (int u = 0; u < 4; u++)
        sum += exp(z[u] - mx);
    for (int u = 0; u < 4; u++)
        out[u] = exp(z[u] - mx) / sum;
}

/* Every record of the offline forward (each hop) and of the stream is the classifier computed
 * here on its window. */
static void windowed_records_check(cvd_data_format df, cvd_data_format flatten_df)
{
    cvd_model *m = classifier_with(9, df, flatten_df);
    classifier_w w;
    classifier_set(m, &w, tu_seed() + 5);
    const long n = 100;
    cvd_rng r;
    cvd_rng_seed(&r, tu_seed());
    float *x = malloc(sizeof(float) * n * 3);
    random_input(&r, x, n * 3);
    static const long hops[] = {0, 1, 2, 4, 9, 13};
    for (size_t h = 0; h < sizeof hops / sizeof hops[0]; h++) {
        long nr, H = hops[h] ? hops[h] : 9;
        float *rec = forward(m, x, n, hops[h], &nr);
        cr_assert_eq(nr, (n - 9) / H + 1, "hop %ld: %ld records", H, nr);
        for (long k = 0; k < nr; k++) {
            double want[4];
            classifier_expect(&w, x + k * H * 3, flatten_df != df, want);
            for (int u = 0; u < 4; u++)
                cr_assert(fabs(rec[k * 4 + u] - want[u]) <= 1e-5 * (1 + fabs(want[u])),
                          "%s model, %s Flatten, hop %ld record %ld value %d: %.9g, computed "
                          "here %.9g",
                          cvd_data_format_name(df), cvd_data_format_name(flatten_df), H, k, u,
                          (double)rec[k * 4 + u], want[u]);
        }
        free(rec);
        check_stream_equals_offline(m, n, hops[h], "classifier");
    }
    free(x);
    cvd_model_unref(m);
}

Test(layers_extra, windowed_records_are_the_classifier_on_each_window)
{
    windowed_records_check(CVD_CHANNELS_LAST, CVD_CHANNELS_LAST);
    windowed_records_check(CVD_CHANNELS_FIRST, CVD_CHANNELS_FIRST);
    windowed_records_check(CVD_CHANNELS_FIRST, CVD_CHANNELS_LAST);
    windowed_records_check(CVD_CHANNELS_LAST, CVD_CHANNELS_FIRST);
}

Test(layers_extra, windowed_mode_window_and_record_count)
{
    cvd_model *m = classifier(9, CVD_CHANNELS_LAST);
    cr_assert_eq(cvd_model_mode(m), CVD_MODE_WINDOWED);
    cr_assert_eq(cvd_model_window(m), 9);
    cr_assert_eq(cvd_model_out_channels(m), 4);
    cr_assert_str_eq(cvd_model_mode_reason(m), "Flatten 'flat' flattens the whole window");
    cr_assert_eq(cvd_model_window_node(m), 3);
    cr_assert_eq(cvd_model_latency(m), 8);
    const long n = 100;
    cvd_rng r;
    cvd_rng_seed(&r, tu_seed());
    float *x = malloc(sizeof(float) * n * 3);
    random_input(&r, x, n * 3);
    static const long hops[] = {0, 1, 2, 4, 9, 13};
    for (size_t h = 0; h < sizeof hops / sizeof hops[0]; h++) {
        long nr, H = hops[h] ? hops[h] : 9;
        float *rec = forward(m, x, n, hops[h], &nr);
        cr_assert_eq(nr, (n - 9) / H + 1, "hop %ld: %ld records", H, nr);
        for (long k = 0; k < nr; k++) { /* the values: windowed_records_are_the_classifier.. */
            double sum = 0;
            for (int i = 0; i < 4; i++)
                sum += rec[k * 4 + i];
            cr_assert(fabs(sum - 1.0) < 1e-5, "softmax record sums to %g", sum);
        }
        free(rec);
    }
    /* shorter than a window: no record */
    long nr;
    float *none = forward(m, x, 8, 0, &nr);
    cr_assert_eq(nr, 0);
    free(none);
    free(x);
    cvd_model_unref(m);
}

Test(layers_extra, windowed_channels_first_record_order)
{
    cvd_err err = {0};
    /* a channels_first model whose output is a (channels, steps) tensor: the record is
     * channel-major, as Keras's C order */
    cvd_model *m = new_model(2, 4, CVD_CHANNELS_FIRST);
    int sm =
        ok(cvd_model_add_activation_axis(m, "sm", CVD_ACT_SOFTMAX, CVD_AXIS_TIME, 0, &err), &err);
    (void)sm;
    const float x[] = {0, 5, 1, 5, 2, 5, 3, 5}; /* channel 0: 0 1 2 3; channel 1: 5 5 5 5 */
    long n;
    float *y = forward(m, x, 4, 0, &n);
    cr_assert_eq(n, 1);
    double s = 1 + exp(1) + exp(2) + exp(3);
    const float want[] = {(float)(1 / s),
                          (float)(exp(1) / s),
                          (float)(exp(2) / s),
                          (float)(exp(3) / s),
                          0.25f,
                          0.25f,
                          0.25f,
                          0.25f};
    expect_values(y, want, 8, "channel-major record");
    free(y);
    check_stream_equals_offline(m, 30, 3, "softmax over time");
    cvd_model_unref(m);
}

/* ---- no allocation
 * -------------------------------------------------------------------------------- */

static void no_alloc(cvd_model *m, int mb, long hop, long n)
{
    cvd_net *net = NULL;
    cvd_err err = {0};
    cvd_rng r;
    const int C = cvd_model_in_channels(m), F = cvd_model_out_channels(m);
    cvd_rng_seed(&r, tu_seed());
    cr_assert_eq(cvd_net_create_hop(m, mb, hop, &net, &err), 0, "%s", err.msg);
    float *x = malloc(sizeof(float) * (size_t)n * C);
    float *out = malloc(sizeof(float) * (size_t)cvd_net_max_out(net) * F);
    random_input(&r, x, (size_t)n * C);
    const long a0 = alloc_count();
    for (int pass = 0; pass < 2; pass++) {
        long pos = 0;
        int no, more;
        while (pos < n) {
            int nb = (int)tu_randint(&r, (uint64_t)mb + 1);
            if (nb > n - pos)
                nb = (int)(n - pos);
            cr_assert_eq(cvd_net_process(net, x + pos * C, nb, out, &no), 0);
            pos += nb;
        }
        do
            more = cvd_net_flush(net, out, &no);
        while (more == 1);
        cvd_net_reset(net);
    }
    cr_assert_eq(alloc_count(), a0, "%ld allocations while processing", alloc_count() - a0);
    free(x);
    free(out);
    cvd_net_destroy(net);
}

Test(layers_extra, nets_allocate_nothing)
{
    cvd_err err = {0};
    cvd_model *m = new_model(2, 0, CVD_CHANNELS_LAST);
    int zp = ok(cvd_model_add_pad_crop(m, "zp", CVD_NODE_ZERO_PADDING, 2, 3, 0, &err), &err);
    int cr = ok(cvd_model_add_pad_crop(m, "cr", CVD_NODE_CROPPING, 1, 4, zp, &err), &err);
    int up = ok(cvd_model_add_upsampling(m, "up", 2, cr, &err), &err);
    int mp =
        ok(cvd_model_add_pooling(m, "mp", CVD_NODE_MAX_POOL, 3, 2, CVD_PAD_SAME, up, &err), &err);
    int ap =
        ok(cvd_model_add_pooling(m, "ap", CVD_NODE_AVG_POOL, 2, 1, CVD_PAD_VALID, mp, &err), &err);
    int bn = ok(cvd_model_add_batch_norm(m, "bn", CVD_AXIS_CHANNELS, 1e-3f, 1, 0, ap, &err), &err);
    int ln =
        ok(cvd_model_add_layer_norm(m, "ln", CVD_AXIS_CHANNELS, 1e-3f, 0, 1, 0, bn, &err), &err);
    ok(cvd_model_add_rescaling(m, "rs", 0.5f, 1.0f, ln, &err), &err);
    for (int mb = 1; mb <= 64; mb *= 4)
        no_alloc(m, mb, 0, 300);
    cvd_model_unref(m);

    m = classifier(12, CVD_CHANNELS_LAST);
    for (int mb = 1; mb <= 64; mb *= 4) {
        no_alloc(m, mb, 0, 300);
        no_alloc(m, mb, 5, 300);
        no_alloc(m, mb, 20, 300);
    }
    cvd_model_unref(m);
}

/* ---- errors
 * ------------------------------------------------------------------------------------------ */

Test(layers_extra, refusals_name_the_layer)
{
    cvd_err err = {0};
    cvd_model *m = new_model(2, 0, CVD_CHANNELS_LAST);
    cr_assert_eq(cvd_model_add_flatten(m, "flat", CVD_CHANNELS_LAST, 0, &err), CVD_EUNSUPPORTED);
    cr_assert(strstr(err.msg, "Flatten 'flat' needs the whole window") != NULL, "%s", err.msg);
    cr_assert_eq(cvd_model_add_global_pooling(m, "g", CVD_NODE_GLOBAL_MAX_POOL, 0, 0, &err),
                 CVD_EUNSUPPORTED);
    cr_assert(strstr(err.msg, "GlobalMaxPooling1D 'g'") != NULL, "%s", err.msg);
    cr_assert_lt(cvd_model_add_pooling(m, "p", CVD_NODE_MAX_POOL, 2, 0, CVD_PAD_VALID, 0, &err), 0);
    cr_assert(strstr(err.msg, "strides=0") != NULL, "%s", err.msg);
    cr_assert_lt(cvd_model_add_pooling(m, "p", CVD_NODE_MAX_POOL, 2, 1, CVD_PAD_CAUSAL, 0, &err),
                 0);
    cr_assert(strstr(err.msg, "padding='causal'") != NULL, "%s", err.msg);
    cr_assert_eq(cvd_model_node_count(m), 1, "refused nodes are not added");
    /* a streaming model takes no hop */
    int id = ok(cvd_model_add_identity(m, "d", "Dropout", 0, &err), &err);
    cr_assert_str_eq(cvd_model_node_class(m, id), "Dropout");
    cvd_net *net = NULL;
    cr_assert_eq(cvd_net_create_hop(m, 16, 4, &net, &err), CVD_EINVAL);
    cr_assert(strstr(err.msg, "hop=4") != NULL, "%s", err.msg);
    cvd_model_unref(m);

    /* a fixed length that a layer cannot take */
    m = new_model(1, 5, CVD_CHANNELS_LAST);
    cr_assert_lt(cvd_model_add_pad_crop(m, "cr", CVD_NODE_CROPPING, 3, 2, 0, &err), 0);
    cr_assert(strstr(err.msg, "Cropping1D 'cr'") != NULL && strstr(err.msg, "5 frames") != NULL,
              "%s", err.msg);
    cr_assert_lt(cvd_model_add_pooling(m, "p", CVD_NODE_MAX_POOL, 6, 1, CVD_PAD_VALID, 0, &err), 0);
    cr_assert(strstr(err.msg, "MaxPooling1D 'p'") != NULL, "%s", err.msg);
    /* rank 1 into a layer that needs steps */
    int f = ok(cvd_model_add_flatten(m, "f", CVD_CHANNELS_LAST, 0, &err), &err);
    cr_assert_lt(cvd_model_add_pooling(m, "p2", CVD_NODE_MAX_POOL, 1, 1, CVD_PAD_VALID, f, &err),
                 0);
    cr_assert(strstr(err.msg, "vector") != NULL, "%s", err.msg);
    const long bad[2] = {4, -1};
    cr_assert_lt(cvd_model_add_reshape(m, "r", 2, bad, f, &err), 0);
    cr_assert(strstr(err.msg, "Reshape 'r'") != NULL, "%s", err.msg);
    cr_assert_eq(cvd_model_set_input_length(m, 9, &err), CVD_ESTATE);
    cvd_model_unref(m);
}
