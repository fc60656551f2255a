/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_nam_arch.c - NAM's "Linear" and "ConvNet" architectures in .nam files.
 *
 * Golden outputs from scripts/nam_arch_reference.py (numpy, float64, written from how NAM core
 * computes these models and how NAM's trainer exports them) on the files
 * scripts/gen_nam_arch_cases.py writes into tests/data/nam: streamed at several block sizes,
 * after a reset, and offline. NAM core's own Linear example pins the weight order; the long
 * Linear runs on the FFT path; refusals (LSTM among them) name the file and the key.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "convd_dsp.h"
#include "convd_model.h"
#include "testutil.h"

static const char *const cases[] = {
    "linear_short_bias",   "linear_long_ir",        "convnet_tanh",  "convnet_bn_relu",
    "convnet_bn_fasttanh", "convnet_leakyrelu_obj", "convnet_prelu",
};

static float *read_f32(const char *path, long *n)
{
    size_t len = 0;
    char *b = tu_read_file(path, &len);
    cr_assert_not_null(b, "cannot read %s", path);
    *n = (long)(len / sizeof(float));
    float *x = malloc(len + sizeof(float));
    memcpy(x, b, len);
    free(b);
    return x;
}

static double max_diff(const float *a, const float *b, long n)
{
    double e = 0;
    for (long i = 0; i < n; i++)
        e = fmax(e, fabs((double)a[i] - b[i]));
    return e;
}

static float *stream(cvd_net *net, const float *x, long n, int block)
{
    float *y = malloc(sizeof(float) * (size_t)(n + cvd_net_max_out(net)));
    long got = 0;
    int no;
    for (long i = 0; i < n; i += block) {
        int b = n - i < block ? (int)(n - i) : block;
        cr_assert_eq(cvd_net_process(net, x + i, b, y + got, &no), CVD_OK);
        got += no;
    }
    while (cvd_net_flush(net, y + got, &no) == 1)
        got += no;
    got += no;
    cr_assert_eq(got, n);
    return y;
}

Test(nam_arch, golden_outputs_streamed_reset_and_offline)
{
    long n, nr;
    float *x = read_f32("tests/data/nam/input_4k.f32", &n);
    static const int blocks[] = {1, 7, 64, 4096};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        char path[256], refp[256];
        snprintf(path, sizeof path, "tests/data/nam/%s.nam", cases[c]);
        snprintf(refp, sizeof refp, "tests/data/nam/%s.out.f32", cases[c]);
        cvd_model *m = NULL;
        cvd_err err = {0};
        cr_assert_eq(cvd_nam_load(path, &m, &err), CVD_OK, "%s", err.msg);
        cr_assert_eq(cvd_model_sample_rate(m), 48000);
        cr_assert_eq(cvd_model_latency(m), 0);
        float *ref = read_f32(refp, &nr);
        cr_assert_eq(nr, n);
        for (size_t b = 0; b < sizeof blocks / sizeof blocks[0]; b++) {
            cvd_net *net = NULL;
            cr_assert_eq(cvd_net_create(m, blocks[b], &net, &err), CVD_OK, "%s", err.msg);
            float *y = stream(net, x, n, blocks[b]);
            double e = max_diff(y, ref, n);
            cr_assert_lt(e, 2e-6, "%s, blocks of %d: max error %g against the reference", cases[c],
                         blocks[b], e);
            /* after a reset (and its prewarm) the same again, bit for bit */
            cvd_net_reset(net);
            float *y2 = stream(net, x, n, blocks[b]);
            cr_assert(memcmp(y, y2, sizeof(float) * (size_t)n) == 0,
                      "%s: the stream after reset differs", cases[c]);
            free(y);
            free(y2);
            cvd_net_destroy(net);
        }
        float *yo;
        long no;
        cr_assert_eq(cvd_model_forward(m, x, n, &yo, &no, &err), CVD_OK, "%s", err.msg);
        cr_assert_eq(no, n);
        cr_assert_lt(max_diff(yo, ref, n), 2e-6, "%s offline", cases[c]);
        /* ConvNets are prewarmed with 1 + sum(dilations) frames, as NAM core does */
        if (strncmp(cases[c], "convnet", 7) == 0)
            cr_assert_gt(cvd_model_prewarm(m), 1, "%s is not prewarmed", cases[c]);
        else
            cr_assert_eq(cvd_model_prewarm(m), 0);
        free(yo);
        free(ref);
        cvd_model_unref(m);
    }
    free(x);
}

Test(nam_arch, linear_weight_order_is_nam_cores)
{
    /* NAM core's own example (tools/test/test_linear.cpp): weights [0.5, -0.25, 0.125] on
     * [1, 2, 3, 4] give [0.5, 0.75, 1.125, 1.5]: the weights are the impulse response,
     * weights[0] on the newest sample */
    const char *text = "{\"version\": \"0.5.4\", \"architecture\": \"Linear\", \"config\": "
                       "{\"receptive_field\": 3, \"bias\": false}, \"weights\": [0.5, -0.25, "
                       "0.125], \"sample_rate\": 48000}";
    cvd_model *m = NULL;
    cvd_err err = {0};
    cr_assert_eq(cvd_nam_parse(text, strlen(text), "three.nam", &m, &err), CVD_OK, "%s", err.msg);
    float x[4] = {1, 2, 3, 4}, *y;
    long n;
    cr_assert_eq(cvd_model_forward(m, x, 4, &y, &n, &err), CVD_OK);
    cr_assert_eq(n, 4);
    const float want[4] = {0.5f, 0.75f, 1.125f, 1.5f};
    for (int i = 0; i < 4; i++)
        cr_assert_float_eq(y[i], want[i], 1e-7, "y[%d] = %g, NAM core gives %g", i, (double)y[i],
                           (double)want[i]);
    free(y);
    cvd_model_unref(m);
}

Test(nam_arch, long_linear_takes_the_fft_path)
{
    cvd_model *m = NULL;
    cvd_err err = {0};
    cr_assert_eq(cvd_nam_load("tests/data/nam/linear_long_ir.nam", &m, &err), CVD_OK, "%s",
                 err.msg);
    const cvd_conv_config *c = cvd_model_node_conv(m, 1);
    cr_assert_not_null(c);
    cr_assert_eq(c->kernel_size, 6000);
    cr_assert_eq(c->padding, CVD_PAD_CAUSAL);
    cr_assert_gt(cvd_conv_fft_partition_for(1, 1, 1, c->kernel_size, 1), 0);
    cvd_model_unref(m);
}

Test(nam_arch, refusals)
{
    static const struct {
        const char *file, *want;
    } bad[] = {
        {"lstm", "architecture: \"LSTM\" is not supported: a recurrent network"},
        {"linear_weights_short", "weights: 47 values given, the configuration needs 49"},
        {"linear_in2_out1", "config.out_channels"},
        {"convnet_dilation_0", "config.dilations[1]=0: must be an integer in 1.."},
        {"convnet_groups_3", "config.groups=3: must divide the channels (8)"},
        {"convnet_activation", "config.activation"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char path[256];
        snprintf(path, sizeof path, "tests/data/nam/bad/%s.nam", bad[i].file);
        cvd_model *m = NULL;
        cvd_err err = {0};
        cr_assert_lt(cvd_nam_load(path, &m, &err), 0, "%s loaded", path);
        cr_assert_null(m);
        cr_assert(strstr(err.msg, path) != NULL, "the message does not name the file: %s", err.msg);
        cr_assert(strstr(err.msg, bad[i].want) != NULL, "%s: want \"%s\" in: %s", path, bad[i].want,
                  err.msg);
    }
}

Test(nam_arch, prewarm_and_nam_activations_are_checked)
{
    cvd_model *m = NULL;
    cvd_err err = {0};
    cvd_conv_config c;
    cr_assert_eq(cvd_model_create(2, &m, NULL), CVD_OK);
    cvd_conv_config_init(&c, CVD_CONV1D);
    c.filters = 3;
    c.kernel_size = 3;
    c.padding = CVD_PAD_SAME; /* looks ahead: latency 1 */
    int conv = cvd_model_add_conv(m, "c", &c, 0, &err);
    cr_assert_gt(conv, 0);
    cr_assert_lt(cvd_model_set_prewarm(m, 10, &err), 0);
    cr_assert(strstr(err.msg, "causal"), "%s", err.msg);
    cvd_wn_activation a;
    cr_assert_eq(cvd_wn_activation_parse("PReLU", &a, NULL), CVD_OK);
    a.kind = CVD_WN_PRELU; /* per-channel slopes (the object form) */
    a.n_slopes = 2;
    a.slopes[0] = 0.1f;
    a.slopes[1] = 0.2f;
    cr_assert_lt(cvd_model_add_nam_activation(m, "p", &a, conv, &err), 0);
    cr_assert(strstr(err.msg, "PReLU with 2 slopes on 3 channels"), "%s", err.msg);
    a.n_slopes = 1;
    int act = cvd_model_add_nam_activation(m, "p", &a, conv, &err);
    cr_assert_gt(act, 0, "%s", err.msg);
    char d[64];
    cvd_model_node_describe(m, act, d, sizeof d);
    cr_assert_str_eq(d, "PReLU");
    cvd_model_unref(m);
}
