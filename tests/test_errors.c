/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_errors.c - every refusal of ../shared/KERAS_SPEC.md ("Errors Keras raises"), and the
 * library's own (variable sizes, max_block, channels, block length, stream state, streaming
 * softmax over time).
 *
 * Each refusal checks the negative code, that nothing was created (*out set to NULL), and
 * that err.msg names the argument and its value ("dilation_rate=2", "strides=2").
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "convd_dsp.h"
#include "testutil.h"

static const cvd_layer_kind all_kinds[] = {CVD_CONV1D, CVD_CONV1D_TRANSPOSE, CVD_SEPARABLE_CONV1D,
                                           CVD_DEPTHWISE_CONV1D};
#define NKINDS ((int)(sizeof all_kinds / sizeof all_kinds[0]))

/* A valid configuration of `kind`: k=3, filters=4, the rest Keras's defaults. */
static cvd_conv_config base_config(cvd_layer_kind kind)
{
    cvd_conv_config c;
    cvd_conv_config_init(&c, kind);
    c.kernel_size = 3;
    c.filters = 4;
    return c;
}

/* A sentinel that create must overwrite with NULL when it fails. */
static int sentinel_obj;
#define SENTINEL ((cvd_layer *)(void *)&sentinel_obj)

/*
 * create(cfg, C, mb) must fail with `code`, leave *out NULL, set err, and err.msg must
 * contain every one of the (up to three) strings. cvd_conv_config_check() must agree when
 * the failure is the configuration's (check_cfg).
 */
static void expect_refused(const cvd_conv_config *cfg, int C, int mb, int code, int check_cfg,
                           const char *s1, const char *s2, const char *s3)
{
    const char *needles[3] = {s1, s2, s3};
    cvd_err err = {0};
    cvd_layer *L = NULL;
    int rc;

    /* out starts NULL and stays NULL */
    rc = cvd_layer_create(cfg, C, mb, &L, &err);
    cr_assert_eq(rc, code, "%s C=%d mb=%d: create returned %d (%s), want %d; msg: %s",
                 cvd_layer_kind_name(cfg->kind), C, mb, rc, cvd_err_name(rc), code, err.msg);
    cr_assert_null(L, "create failed but *out is not NULL");
    cr_assert_eq(err.code, code, "err.code %d, want %d", err.code, code);
    for (int i = 0; i < 3; i++)
        if (needles[i] != NULL)
            cr_assert_not_null(strstr(err.msg, needles[i]), "message \"%s\" lacks \"%s\"", err.msg,
                               needles[i]);

    /* out starts as garbage: create sets it to NULL */
    L = SENTINEL;
    rc = cvd_layer_create(cfg, C, mb, &L, NULL); /* err may be NULL */
    cr_assert_eq(rc, code);
    cr_assert_null(L, "create failed but left *out as it was");

    if (check_cfg) {
        cvd_err err2 = {0};
        rc = cvd_conv_config_check(cfg, C, &err2);
        cr_assert_eq(rc, code, "cvd_conv_config_check returned %d, want %d", rc, code);
        cr_assert_str_eq(err2.msg, err.msg);
        cr_assert_eq(cvd_conv_config_check(cfg, C, NULL), code);
    }
}

/* create must succeed (and the layer work offline on a short input). */
static void expect_accepted(const cvd_conv_config *cfg, int C)
{
    cvd_err err = {0};
    cvd_layer *L = NULL;
    int rc = cvd_layer_create(cfg, C, 8, &L, &err);
    cr_assert_eq(rc, CVD_OK, "%s k=%d s=%d d=%d: create refused: %s",
                 cvd_layer_kind_name(cfg->kind), cfg->kernel_size, cfg->strides, cfg->dilation_rate,
                 err.msg);
    cr_assert_not_null(L);
    cr_assert_eq(cvd_conv_config_check(cfg, C, NULL), CVD_OK);
    long n = 40, nl = cvd_layer_output_length(L, n, &err);
    cr_assert_geq(nl, 0, "%s", err.msg);
    float *x = calloc((size_t)n * C, sizeof(float));
    float *y = calloc((size_t)nl * cvd_layer_out_channels(L) + 1, sizeof(float));
    long got = -1;
    cr_assert_eq(cvd_layer_forward(L, x, n, y, &got, &err), CVD_OK, "%s", err.msg);
    cr_assert_eq(got, nl);
    free(x);
    free(y);
    cvd_layer_destroy(L);
}

/* ---- kernel_size, strides, dilation_rate <= 0 --------------------------------------------- */

Test(errors, kernel_size_not_positive)
{
    for (int i = 0; i < NKINDS; i++) {
        cvd_conv_config c = base_config(all_kinds[i]);
        c.kernel_size = 0;
        expect_refused(&c, 2, 8, CVD_EINVAL, 1, "kernel_size=0", cvd_layer_kind_name(c.kind), NULL);
        c.kernel_size = -3;
        expect_refused(&c, 2, 8, CVD_EINVAL, 1, "kernel_size=-3", NULL, NULL);
    }
}

Test(errors, strides_not_positive)
{
    for (int i = 0; i < NKINDS; i++) {
        cvd_conv_config c = base_config(all_kinds[i]);
        c.strides = 0;
        expect_refused(&c, 2, 8, CVD_EINVAL, 1, "strides=0", cvd_layer_kind_name(c.kind), NULL);
        c.strides = -2;
        expect_refused(&c, 2, 8, CVD_EINVAL, 1, "strides=-2", NULL, NULL);
    }
}

Test(errors, dilation_rate_not_positive)
{
    for (int i = 0; i < NKINDS; i++) {
        cvd_conv_config c = base_config(all_kinds[i]);
        c.dilation_rate = 0;
        expect_refused(&c, 2, 8, CVD_EINVAL, 1, "dilation_rate=0", cvd_layer_kind_name(c.kind),
                       NULL);
        c.dilation_rate = -1;
        expect_refused(&c, 2, 8, CVD_EINVAL, 1, "dilation_rate=-1", NULL, NULL);
    }
}

/* ---- padding ------------------------------------------------------------------------------ */

Test(errors, padding_unknown_name)
{
    static const char *const bad[] = {"full", "", "valid ", "causa", "SAMEE", "reflect"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cvd_err err = {0};
        cvd_padding p = (cvd_padding)99;
        char want[64];
        int rc = cvd_padding_parse(bad[i], &p, &err);
        cr_assert_eq(rc, CVD_EINVAL, "padding '%s' accepted", bad[i]);
        cr_assert_eq(err.code, CVD_EINVAL);
        cr_assert_eq((int)p, 99, "a refused padding changed *out");
        snprintf(want, sizeof want, "padding='%s'", bad[i]);
        cr_assert_not_null(strstr(err.msg, want), "message \"%s\" lacks \"%s\"", err.msg, want);
        cr_assert_eq(cvd_padding_parse(bad[i], &p, NULL), CVD_EINVAL);
    }
    cvd_err err = {0};
    cvd_padding p;
    cr_assert_eq(cvd_padding_parse(NULL, &p, &err), CVD_EINVAL);
    cr_assert_not_null(strstr(err.msg, "padding="), "%s", err.msg);
}

Test(errors, padding_names_case_insensitive)
{
    static const struct {
        const char *s;
        cvd_padding p;
    } ok[] = {{"valid", CVD_PAD_VALID},   {"VALID", CVD_PAD_VALID},   {"Valid", CVD_PAD_VALID},
              {"same", CVD_PAD_SAME},     {"SAME", CVD_PAD_SAME},     {"sAmE", CVD_PAD_SAME},
              {"causal", CVD_PAD_CAUSAL}, {"Causal", CVD_PAD_CAUSAL}, {"CAUSAL", CVD_PAD_CAUSAL}};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        cvd_err err = {0};
        cvd_padding p = (cvd_padding)99;
        cr_assert_eq(cvd_padding_parse(ok[i].s, &p, &err), CVD_OK, "'%s' refused: %s", ok[i].s,
                     err.msg);
        cr_assert_eq(p, ok[i].p, "'%s' parsed as %d", ok[i].s, (int)p);
        cr_assert_eq(err.code, 0, "success set err");
    }
    for (int p = CVD_PAD_VALID; p <= CVD_PAD_CAUSAL; p++) {
        cvd_padding q;
        cr_assert_eq(cvd_padding_parse(cvd_padding_name((cvd_padding)p), &q, NULL), CVD_OK);
        cr_assert_eq((int)q, p);
    }
}

Test(errors, padding_out_of_range_in_config)
{
    for (int i = 0; i < NKINDS; i++) {
        cvd_conv_config c = base_config(all_kinds[i]);
        c.padding = (cvd_padding)7;
        expect_refused(&c, 2, 8, CVD_EINVAL, 1, "padding=7", NULL, NULL);
    }
}

Test(errors, causal_only_on_conv1d)
{
    for (int i = 0; i < NKINDS; i++) {
        cvd_conv_config c = base_config(all_kinds[i]);
        c.padding = CVD_PAD_CAUSAL;
        if (c.kind == CVD_CONV1D)
            expect_accepted(&c, 2);
        else
            expect_refused(&c, 2, 8, CVD_EINVAL, 1, "padding='causal'", cvd_layer_kind_name(c.kind),
                           NULL);
    }
}

/* ---- data_format -------------------------------------------------------------------------- */

Test(errors, data_format_unknown)
{
    static const char *const bad[] = {"channels_middle", "", "NHWC", "NCHW", "channels",
                                      "channels_last_"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cvd_err err = {0};
        cvd_data_format f = (cvd_data_format)99;
        char want[64];
        cr_assert_eq(cvd_data_format_parse(bad[i], &f, &err), CVD_EINVAL, "'%s' accepted", bad[i]);
        cr_assert_eq(err.code, CVD_EINVAL);
        cr_assert_eq((int)f, 99, "a refused data_format changed *out");
        snprintf(want, sizeof want, "data_format='%s'", bad[i]);
        cr_assert_not_null(strstr(err.msg, want), "message \"%s\" lacks \"%s\"", err.msg, want);
    }
    cvd_data_format f;
    cr_assert_eq(cvd_data_format_parse("channels_last", &f, NULL), CVD_OK);
    cr_assert_eq(f, CVD_CHANNELS_LAST);
    cr_assert_eq(cvd_data_format_parse("channels_first", &f, NULL), CVD_OK);
    cr_assert_eq(f, CVD_CHANNELS_FIRST);
    /* Keras lower-cases the name; None means channels_last */
    cr_assert_eq(cvd_data_format_parse("Channels_First", &f, NULL), CVD_OK);
    cr_assert_eq(f, CVD_CHANNELS_FIRST);
    cr_assert_eq(cvd_data_format_parse(NULL, &f, NULL), CVD_OK);
    cr_assert_eq(f, CVD_CHANNELS_LAST);

    for (int i = 0; i < NKINDS; i++) {
        cvd_conv_config c = base_config(all_kinds[i]);
        c.data_format = (cvd_data_format)2;
        expect_refused(&c, 2, 8, CVD_EINVAL, 1, "data_format=2", NULL, NULL);
    }
}

/* ---- filters, depth_multiplier, groups ---------------------------------------------------- */

Test(errors, filters_not_positive)
{
    for (int i = 0; i < NKINDS; i++) {
        cvd_conv_config c = base_config(all_kinds[i]);
        c.filters = 0;
        if (c.kind == CVD_DEPTHWISE_CONV1D) {
            expect_accepted(&c, 3); /* DepthwiseConv1D has no filters argument */
            continue;
        }
        expect_refused(&c, 2, 8, CVD_EINVAL, 1, "filters=0", cvd_layer_kind_name(c.kind), NULL);
        c.filters = -5;
        expect_refused(&c, 2, 8, CVD_EINVAL, 1, "filters=-5", NULL, NULL);
    }
}

Test(errors, depth_multiplier_not_positive)
{
    for (int i = 0; i < NKINDS; i++) {
        cvd_conv_config c = base_config(all_kinds[i]);
        c.depth_multiplier = 0;
        if (c.kind == CVD_CONV1D || c.kind == CVD_CONV1D_TRANSPOSE) {
            expect_accepted(&c, 2); /* no depth_multiplier argument */
            continue;
        }
        expect_refused(&c, 2, 8, CVD_EINVAL, 1, "depth_multiplier=0", cvd_layer_kind_name(c.kind),
                       NULL);
        c.depth_multiplier = -2;
        expect_refused(&c, 2, 8, CVD_EINVAL, 1, "depth_multiplier=-2", NULL, NULL);
    }
}

Test(errors, groups_not_positive)
{
    cvd_conv_config c = base_config(CVD_CONV1D);
    c.groups = 0;
    expect_refused(&c, 2, 8, CVD_EINVAL, 1, "groups=0", "Conv1D", NULL);
    c.groups = -2;
    expect_refused(&c, 2, 8, CVD_EINVAL, 1, "groups=-2", NULL, NULL);
}

Test(errors, filters_not_divisible_by_groups)
{
    cvd_conv_config c = base_config(CVD_CONV1D);
    c.filters = 6;
    c.groups = 4;
    expect_refused(&c, 8, 8, CVD_EINVAL, 1, "filters=6", "groups=4", NULL);
    /* refused before the channels are known too */
    cvd_err err = {0};
    cr_assert_eq(cvd_conv_config_check(&c, 0, &err), CVD_EINVAL);
    cr_assert_not_null(strstr(err.msg, "filters=6"), "%s", err.msg);
    c.filters = 8;
    expect_accepted(&c, 8);
}

Test(errors, input_channels_not_divisible_by_groups)
{
    cvd_conv_config c = base_config(CVD_CONV1D);
    c.filters = 8;
    c.groups = 4;
    expect_refused(&c, 6, 8, CVD_EINVAL, 1, "channels=6", "groups=4", NULL);
    /* unknown channels (0) pass the check; the layer is refused when they are known */
    cr_assert_eq(cvd_conv_config_check(&c, 0, NULL), CVD_OK);
    expect_accepted(&c, 12);
}

/* ---- strides > 1 with dilation_rate > 1 --------------------------------------------------- */

Test(errors, strides_with_dilation)
{
    for (int i = 0; i < NKINDS; i++) {
        cvd_conv_config c = base_config(all_kinds[i]);
        c.strides = 2;
        c.dilation_rate = 2;
        c.padding = CVD_PAD_SAME;
        if (c.kind == CVD_CONV1D || c.kind == CVD_CONV1D_TRANSPOSE) {
            expect_refused(&c, 2, 8, CVD_EINVAL, 1, "strides=2", "dilation_rate=2",
                           cvd_layer_kind_name(c.kind));
            c.strides = 3;
            c.dilation_rate = 5;
            c.padding = CVD_PAD_VALID;
            expect_refused(&c, 2, 8, CVD_EINVAL, 1, "strides=3", "dilation_rate=5", NULL);
            /* either alone is fine */
            c.strides = 1;
            expect_accepted(&c, 2);
            c.strides = 3;
            c.dilation_rate = 1;
            expect_accepted(&c, 2);
        } else {
            /* Keras 3.15 allows it for DepthwiseConv1D and SeparableConv1D */
            expect_accepted(&c, 2);
            c.strides = 3;
            c.dilation_rate = 5;
            c.padding = CVD_PAD_VALID;
            expect_accepted(&c, 2);
        }
    }
}

/* ---- output_padding ----------------------------------------------------------------------- */

Test(errors, output_padding_not_less_than_strides)
{
    cvd_conv_config c = base_config(CVD_CONV1D_TRANSPOSE);
    c.strides = 2;
    c.output_padding = 2;
    expect_refused(&c, 2, 8, CVD_EINVAL, 1, "output_padding=2", "strides=2", NULL);
    c.output_padding = 5;
    c.padding = CVD_PAD_SAME;
    expect_refused(&c, 2, 8, CVD_EINVAL, 1, "output_padding=5", "strides=2", NULL);
    c.strides = 1;
    c.output_padding = 1;
    expect_refused(&c, 2, 8, CVD_EINVAL, 1, "output_padding=1", "strides=1", NULL);
    c.output_padding = -2; /* -1 is None; anything lower is refused */
    expect_refused(&c, 2, 8, CVD_EINVAL, 1, "output_padding=-2", NULL, NULL);
    c.output_padding = 0;
    expect_accepted(&c, 2);
    c.output_padding = -1;
    expect_accepted(&c, 2);
    c.strides = 3;
    c.output_padding = 2;
    expect_accepted(&c, 2);
}

/* ---- valid padding with an empty output --------------------------------------------------- */

Test(errors, valid_padding_empty_output)
{
    static const cvd_layer_kind kinds[] = {CVD_CONV1D, CVD_SEPARABLE_CONV1D, CVD_DEPTHWISE_CONV1D};
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        cvd_conv_config c = base_config(kinds[i]);
        cvd_layer *L = NULL;
        cvd_err err = {0};
        c.kernel_size = 4;
        c.dilation_rate = 3; /* ek = 10 */
        cr_assert_eq(cvd_layer_create(&c, 2, 8, &L, &err), CVD_OK, "%s", err.msg);
        for (long n = 0; n < 10; n++) {
            char want[64];
            memset(&err, 0, sizeof err);
            long nl = cvd_layer_output_length(L, n, &err);
            cr_assert_eq(nl, CVD_EINVAL, "%s n=%ld: length %ld", cvd_layer_kind_name(c.kind), n,
                         nl);
            cr_assert_eq(err.code, CVD_EINVAL);
            snprintf(want, sizeof want, "%ld frames", n);
            cr_assert_not_null(strstr(err.msg, want), "\"%s\" lacks \"%s\"", err.msg, want);
            cr_assert_not_null(strstr(err.msg, "padding='valid'"), "%s", err.msg);
            cr_assert_not_null(strstr(err.msg, "10"), "extent missing: %s", err.msg);

            float x[2 * 10] = {0}, y[4 * 4] = {0};
            long got = 12345;
            memset(&err, 0, sizeof err);
            cr_assert_eq(cvd_layer_forward(L, x, n, y, &got, &err), CVD_EINVAL);
            cr_assert_eq(got, 0, "forward refused but set n_out=%ld", got);
            cr_assert_not_null(strstr(err.msg, want), "\"%s\" lacks \"%s\"", err.msg, want);
        }
        cr_assert_eq(cvd_layer_output_length(L, 10, NULL), 1);
        cr_assert_eq(cvd_layer_output_length(L, 9, NULL), CVD_EINVAL); /* err may be NULL */
        /* a negative length is refused for every padding */
        memset(&err, 0, sizeof err);
        cr_assert_eq(cvd_layer_output_length(L, -1, &err), CVD_EINVAL);
        cr_assert_not_null(strstr(err.msg, "-1"), "%s", err.msg);
        cvd_layer_destroy(L);

        /* same padding: any length, 0 included, is fine */
        c.padding = CVD_PAD_SAME;
        cr_assert_eq(cvd_layer_create(&c, 2, 8, &L, &err), CVD_OK, "%s", err.msg);
        for (long n = 0; n < 12; n++)
            cr_assert_eq(cvd_layer_output_length(L, n, NULL), n);
        cvd_layer_destroy(L);
    }
}

/* ---- activations -------------------------------------------------------------------------- */

Test(errors, activation_unknown_name)
{
    static const char *const bad[] = {"ReLU", "RELU", "Relu", "Sigmoid",   "Softmax", "gelu_approx",
                                      "",     "none", "None", "leakyrelu", "relu ",   "hardtanh"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cvd_err err = {0};
        cvd_activation a = (cvd_activation)99;
        char want[96];
        int rc = cvd_activation_parse(bad[i], &a, &err);
        cr_assert_eq(rc, CVD_EINVAL, "activation '%s' accepted as %d", bad[i], (int)a);
        cr_assert_eq(err.code, CVD_EINVAL);
        cr_assert_eq((int)a, 99, "a refused activation changed *out");
        cr_assert_not_null(strstr(err.msg, "Could not interpret activation function identifier"),
                           "Keras's wording missing: %s", err.msg);
        snprintf(want, sizeof want, "activation='%s'", bad[i]);
        cr_assert_not_null(strstr(err.msg, want), "\"%s\" lacks \"%s\"", err.msg, want);
        cr_assert_eq(cvd_activation_parse(bad[i], &a, NULL), CVD_EINVAL);
    }
}

Test(errors, activation_names_case_sensitive_null_linear)
{
    cvd_activation a = CVD_ACT_RELU;
    cvd_err err = {0};
    cr_assert_eq(cvd_activation_parse(NULL, &a, &err), CVD_OK);
    cr_assert_eq(a, CVD_ACT_LINEAR, "NULL (Keras's None) must mean linear");
    cr_assert_eq(cvd_activation_parse("relu", &a, &err), CVD_OK);
    cr_assert_eq(a, CVD_ACT_RELU);
    cr_assert_eq(cvd_activation_parse("ReLU", &a, &err), CVD_EINVAL);
    /* every name round-trips */
    for (int i = 0; i < CVD_ACT_COUNT; i++) {
        const char *name = cvd_activation_name((cvd_activation)i);
        cr_assert_eq(cvd_activation_parse(name, &a, &err), CVD_OK, "'%s': %s", name, err.msg);
        cr_assert_eq((int)a, i, "'%s' parsed as %d", name, (int)a);
    }
    cr_assert_str_eq(cvd_activation_name(CVD_ACT_COUNT), "?");
}

Test(errors, activation_out_of_range_in_config)
{
    cvd_conv_config c = base_config(CVD_CONV1D);
    c.activation = CVD_ACT_COUNT;
    char want[32];
    snprintf(want, sizeof want, "activation=%d", (int)CVD_ACT_COUNT);
    expect_refused(&c, 2, 8, CVD_EINVAL, 1, want, NULL, NULL);
}

/* ---- the library's own refusals ----------------------------------------------------------- */

Test(errors, in_channels_not_positive)
{
    for (int i = 0; i < NKINDS; i++) {
        cvd_conv_config c = base_config(all_kinds[i]);
        expect_refused(&c, 0, 8, CVD_EINVAL, 0, "channels=0", cvd_layer_kind_name(c.kind), NULL);
        expect_refused(&c, -4, 8, CVD_EINVAL, 0, "channels=-4", NULL, NULL);
    }
}

Test(errors, max_block_out_of_range)
{
    for (int i = 0; i < NKINDS; i++) {
        cvd_conv_config c = base_config(all_kinds[i]);
        expect_refused(&c, 2, 0, CVD_EINVAL, 0, "max_block=0", NULL, NULL);
        expect_refused(&c, 2, -1, CVD_EINVAL, 0, "max_block=-1", NULL, NULL);
        char want[32];
        snprintf(want, sizeof want, "max_block=%d", (1 << 20) + 1);
        expect_refused(&c, 2, (1 << 20) + 1, CVD_EINVAL, 0, want, NULL, NULL);
        expect_refused(&c, 2, 0x7fffffff, CVD_EINVAL, 0, "max_block=2147483647", NULL, NULL);
    }
    /* the largest block is accepted and usable */
    cvd_conv_config c = base_config(CVD_CONV1D);
    cvd_layer *L = NULL;
    cvd_err err = {0};
    cr_assert_eq(cvd_layer_create(&c, 1, 1 << 20, &L, &err), CVD_OK, "%s", err.msg);
    cr_assert_eq(cvd_layer_max_block(L), 1 << 20);
    cvd_layer_destroy(L);
    cr_assert_eq(cvd_layer_create(&c, 1, 1, &L, &err), CVD_OK, "%s", err.msg);
    cvd_layer_destroy(L);
}

Test(errors, too_large_sizes)
{
    cvd_conv_config c = base_config(CVD_CONV1D);
    c.kernel_size = 1 << 20;
    c.dilation_rate = 1 << 10; /* extent ~2^30 */
    expect_refused(&c, 2, 8, CVD_EINVAL, 1, "kernel_size=1048576", "dilation_rate=1024", NULL);
    c = base_config(CVD_CONV1D);
    c.filters = (1 << 20) + 1;
    expect_refused(&c, 2, 8, CVD_EINVAL, 1, "filters=1048577", NULL, NULL);
}

Test(errors, set_var_wrong_size_or_index)
{
    for (int i = 0; i < NKINDS; i++) {
        cvd_conv_config c = base_config(all_kinds[i]);
        cvd_layer *L = NULL;
        cvd_err err = {0};
        cr_assert_eq(cvd_layer_create(&c, 3, 8, &L, &err), CVD_OK, "%s", err.msg);
        int nv = cvd_layer_var_count(L);
        cr_assert_eq(nv, c.kind == CVD_SEPARABLE_CONV1D ? 3 : 2);
        for (int v = 0; v < nv; v++) {
            size_t n = cvd_layer_var_size(L, v);
            float *buf = calloc(n + 2, sizeof(float));
            float *before = malloc(n * sizeof(float));
            memcpy(before, cvd_layer_var(L, v), n * sizeof(float));
            for (size_t j = 0; j < n + 2; j++)
                buf[j] = 7.0f;
            const size_t wrong[] = {n - 1, n + 1, 0};
            for (int w = 0; w < 3; w++) {
                char want[64];
                memset(&err, 0, sizeof err);
                cr_assert_eq(cvd_layer_set_var(L, v, buf, wrong[w], &err), CVD_EINVAL,
                             "%s var %d: %zu values accepted (needs %zu)",
                             cvd_layer_kind_name(c.kind), v, wrong[w], n);
                cr_assert_eq(err.code, CVD_EINVAL);
                snprintf(want, sizeof want, "variable %d: %zu values", v, wrong[w]);
                cr_assert_not_null(strstr(err.msg, want), "\"%s\" lacks \"%s\"", err.msg, want);
                snprintf(want, sizeof want, "needs %zu", n);
                cr_assert_not_null(strstr(err.msg, want), "\"%s\" lacks \"%s\"", err.msg, want);
                cr_assert_eq(memcmp(before, cvd_layer_var(L, v), n * sizeof(float)), 0,
                             "a refused set_var changed the weights");
            }
            cr_assert_eq(cvd_layer_set_var(L, v, buf, n, &err), CVD_OK, "%s", err.msg);
            cr_assert_eq(cvd_layer_var(L, v)[n - 1], 7.0f);
            free(buf);
            free(before);
        }
        float one = 1.0f;
        memset(&err, 0, sizeof err);
        cr_assert_eq(cvd_layer_set_var(L, nv, &one, 1, &err), CVD_EINVAL);
        char want[32];
        snprintf(want, sizeof want, "variable %d", nv);
        cr_assert_not_null(strstr(err.msg, want), "%s", err.msg);
        cr_assert_eq(cvd_layer_set_var(L, -1, &one, 1, &err), CVD_EINVAL);
        cr_assert_not_null(strstr(err.msg, "variable -1"), "%s", err.msg);
        cr_assert_eq(cvd_layer_var_size(L, nv), 0);
        cr_assert_null(cvd_layer_var(L, nv));
        int sh[3];
        cr_assert_eq(cvd_layer_var_shape(L, nv, sh), CVD_EINVAL);
        cvd_layer_destroy(L);
    }
    /* without a bias there is one variable less */
    cvd_conv_config c = base_config(CVD_CONV1D);
    c.use_bias = 0;
    cvd_layer *L = NULL;
    cr_assert_eq(cvd_layer_create(&c, 3, 8, &L, NULL), CVD_OK);
    cr_assert_eq(cvd_layer_var_count(L), 1);
    float b[4] = {0};
    cr_assert_eq(cvd_layer_set_var(L, 1, b, 4, NULL), CVD_EINVAL);
    cvd_layer_destroy(L);
}

/* ---- stream state ------------------------------------------------------------------------- */

/* Streams n random frames of C channels in blocks of `blk`, then flushes; returns frames. */
static long stream_frames(cvd_layer *L, const float *x, long n, int blk, float *y, long ycap)
{
    const int C = cvd_layer_in_channels(L), F = cvd_layer_out_channels(L);
    const int mo = cvd_layer_max_out(L);
    float *ob = malloc((size_t)mo * F * sizeof(float));
    long got = 0;
    int no, more;
    for (long p = 0; p < n; p += blk) {
        int nb = (int)(n - p < blk ? n - p : blk);
        cr_assert_eq(cvd_layer_process(L, x + (size_t)p * C, nb, ob, &no), CVD_OK);
        cr_assert_leq(got + no, ycap);
        memcpy(y + (size_t)got * F, ob, (size_t)no * F * sizeof(float));
        got += no;
    }
    do {
        more = cvd_layer_flush(L, ob, &no);
        cr_assert_geq(more, 0);
        cr_assert_leq(got + no, ycap);
        memcpy(y + (size_t)got * F, ob, (size_t)no * F * sizeof(float));
        got += no;
    } while (more);
    free(ob);
    return got;
}

Test(errors, process_block_too_large)
{
    cvd_rng r;
    cvd_rng_seed(&r, tu_seed());
    for (int i = 0; i < NKINDS; i++) {
        cvd_conv_config c = base_config(all_kinds[i]);
        c.padding = CVD_PAD_SAME;
        cvd_layer *L = NULL, *ref = NULL;
        const int C = 2, mb = 5;
        cr_assert_eq(cvd_layer_create(&c, C, mb, &L, NULL), CVD_OK);
        cr_assert_eq(cvd_layer_create(&c, C, mb, &ref, NULL), CVD_OK);
        const int F = cvd_layer_out_channels(L), mo = cvd_layer_max_out(L);
        float in[2 * 64], *ob = malloc((size_t)mo * F * sizeof(float) + 64 * F * sizeof(float));
        for (int j = 0; j < 2 * 64; j++)
            in[j] = (float)(2 * cvd_rng_uniform(&r) - 1);
        int no = 77;
        /* feed some, then ask too much: refused, nothing changes */
        cr_assert_eq(cvd_layer_process(L, in, 3, ob, &no), CVD_OK);
        no = 77;
        cr_assert_eq(cvd_layer_process(L, in + 3 * C, mb + 1, ob, &no), CVD_ERANGE,
                     "%s: a block of max_block+1 frames accepted", cvd_layer_kind_name(c.kind));
        cr_assert_eq(no, 0, "refused process() wrote n_out=%d", no);
        cr_assert_eq(cvd_layer_process(L, in + 3 * C, 64, ob, &no), CVD_ERANGE);
        cr_assert_eq(cvd_layer_process(L, in + 3 * C, -1, ob, &no), CVD_ERANGE);
        cr_assert_eq(no, 0);
        /* the refused calls left no trace: the rest of the stream equals a clean one */
        float y1[64 * 16], y2[64 * 16];
        int n0;
        cvd_layer_reset(L);
        cr_assert_eq(cvd_layer_process(L, in, 3, y1, &n0), CVD_OK);
        cr_assert_eq(cvd_layer_process(L, in, mb + 1, ob, &no), CVD_ERANGE);
        long rest = stream_frames(L, in + 3 * C, 40, mb, y1 + (size_t)n0 * F, 64 * 16 / F - n0);
        int r0; /* the same split, without the refused call */
        cr_assert_eq(cvd_layer_process(ref, in, 3, y2, &r0), CVD_OK);
        long want =
            r0 + stream_frames(ref, in + 3 * C, 40, mb, y2 + (size_t)r0 * F, 64 * 16 / F - r0);
        cr_assert_eq(n0 + rest, want);
        cr_assert_eq(memcmp(y1, y2, (size_t)want * F * sizeof(float)), 0,
                     "%s: output differs after a refused block", cvd_layer_kind_name(c.kind));
        free(ob);
        cvd_layer_destroy(L);
        cvd_layer_destroy(ref);
    }
}

Test(errors, process_after_final_flush)
{
    for (int i = 0; i < NKINDS; i++) {
        cvd_conv_config c = base_config(all_kinds[i]);
        c.padding = CVD_PAD_SAME;
        cvd_layer *L = NULL;
        const int C = 2, mb = 4;
        cr_assert_eq(cvd_layer_create(&c, C, mb, &L, NULL), CVD_OK);
        const int F = cvd_layer_out_channels(L), mo = cvd_layer_max_out(L);
        float in[2 * 4] = {1, 2, 3, 4, 5, 6, 7, 8};
        float *ob = malloc((size_t)mo * F * sizeof(float));
        int no, more;
        cr_assert_eq(cvd_layer_process(L, in, 4, ob, &no), CVD_OK);
        do
            more = cvd_layer_flush(L, ob, &no);
        while (more == 1);
        cr_assert_eq(more, 0);
        no = 77;
        cr_assert_eq(cvd_layer_process(L, in, 4, ob, &no), CVD_ESTATE,
                     "%s: process after the final flush accepted", cvd_layer_kind_name(c.kind));
        cr_assert_eq(no, 0);
        cr_assert_eq(cvd_layer_process(L, in, 0, ob, &no), CVD_ESTATE,
                     "an empty block after the final flush accepted");
        cr_assert_eq(cvd_layer_process(L, in, 1, ob, &no), CVD_ESTATE);
        /* flushing again is harmless: nothing more */
        cr_assert_eq(cvd_layer_flush(L, ob, &no), 0);
        cr_assert_eq(no, 0);
        cr_assert_eq(cvd_layer_process(L, in, 1, ob, &no), CVD_ESTATE);
        cvd_layer_reset(L);
        cr_assert_eq(cvd_layer_process(L, in, 4, ob, &no), CVD_OK);
        free(ob);
        cvd_layer_destroy(L);
    }
}

/* ---- softmax over time ------------------------------------------------------------------- */

Test(errors, softmax_channels_first_cannot_stream)
{
    static const cvd_activation acts[] = {CVD_ACT_SOFTMAX, CVD_ACT_LOG_SOFTMAX};
    for (int i = 0; i < NKINDS; i++) {
        for (int a = 0; a < 2; a++) {
            cvd_conv_config c = base_config(all_kinds[i]);
            c.activation = acts[a];
            c.padding = CVD_PAD_SAME;
            c.data_format = CVD_CHANNELS_FIRST;
            cvd_layer *L = NULL;
            cvd_err err = {0};
            const int C = 2;
            /* creating it is fine: it runs offline */
            cr_assert_eq(cvd_layer_create(&c, C, 8, &L, &err), CVD_OK, "%s", err.msg);
            cr_assert_eq(cvd_layer_can_stream(L, &err), CVD_EUNSUPPORTED,
                         "%s %s channels_first claims it can stream", cvd_layer_kind_name(c.kind),
                         cvd_activation_name(acts[a]));
            cr_assert_eq(err.code, CVD_EUNSUPPORTED);
            char want[48];
            snprintf(want, sizeof want, "activation='%s'", cvd_activation_name(acts[a]));
            cr_assert_not_null(strstr(err.msg, want), "\"%s\" lacks \"%s\"", err.msg, want);
            cr_assert_not_null(strstr(err.msg, "channels_first"), "%s", err.msg);
            cr_assert_eq(cvd_layer_can_stream(L, NULL), CVD_EUNSUPPORTED);

            const int F = cvd_layer_out_channels(L), mo = cvd_layer_max_out(L);
            float in[2 * 8] = {0};
            float *ob = malloc((size_t)mo * F * sizeof(float));
            int no = 77;
            cr_assert_eq(cvd_layer_process(L, in, 8, ob, &no), CVD_EUNSUPPORTED);
            cr_assert_eq(no, 0);
            cr_assert_eq(cvd_layer_process(L, in, 0, ob, &no), CVD_EUNSUPPORTED);
            no = 77;
            cr_assert_eq(cvd_layer_flush(L, ob, &no), CVD_EUNSUPPORTED);
            cr_assert_eq(no, 0);

            /* offline works: every channel's row sums to 1 (softmax) over time */
            long n = 8, nl = cvd_layer_output_length(L, n, NULL);
            float *y = malloc((size_t)nl * F * sizeof(float) + 4);
            long got;
            for (int j = 0; j < 2 * 8; j++)
                in[j] = (float)j / 7.0f - 1.0f;
            cr_assert_eq(cvd_layer_forward(L, in, n, y, &got, &err), CVD_OK, "%s", err.msg);
            for (int f = 0; f < F; f++) {
                double s = 0;
                for (long t = 0; t < got; t++)
                    s += acts[a] == CVD_ACT_SOFTMAX ? y[(size_t)f * got + t]
                                                    : exp(y[(size_t)f * got + t]);
                cr_assert_float_eq(s, 1.0, 1e-5, "row %d sums to %g", f, s);
            }
            free(y);
            free(ob);
            cvd_layer_destroy(L);
        }
    }
}

Test(errors, softmax_channels_last_streams)
{
    static const cvd_activation acts[] = {CVD_ACT_SOFTMAX, CVD_ACT_LOG_SOFTMAX};
    for (int i = 0; i < NKINDS; i++) {
        for (int a = 0; a < 2; a++) {
            cvd_conv_config c = base_config(all_kinds[i]);
            c.activation = acts[a];
            c.padding = CVD_PAD_SAME;
            cvd_layer *L = NULL;
            cvd_err err = {0};
            const int C = 2;
            cr_assert_eq(cvd_layer_create(&c, C, 8, &L, &err), CVD_OK, "%s", err.msg);
            memset(&err, 0, sizeof err);
            cr_assert_eq(cvd_layer_can_stream(L, &err), CVD_OK, "%s", err.msg);
            cr_assert_eq(err.code, 0);
            const int F = cvd_layer_out_channels(L);
            float in[2 * 30];
            for (int j = 0; j < 2 * 30; j++)
                in[j] = (float)((j * 7) % 11) / 5.0f - 1.0f;
            long nl = cvd_layer_output_length(L, 30, NULL);
            float *want = malloc((size_t)nl * F * sizeof(float));
            float *got = malloc((size_t)(nl + 64) * F * sizeof(float));
            long wn;
            cr_assert_eq(cvd_layer_forward(L, in, 30, want, &wn, NULL), CVD_OK);
            long gn = stream_frames(L, in, 30, 7, got, nl + 64);
            cr_assert_eq(gn, wn);
            for (long j = 0; j < wn * F; j++)
                cr_assert_float_eq(got[j], want[j], 1e-5, "%s %s: element %ld",
                                   cvd_layer_kind_name(c.kind), cvd_activation_name(acts[a]), j);
            free(want);
            free(got);
            cvd_layer_destroy(L);
        }
    }
}

/* ---- error codes -------------------------------------------------------------------------- */

Test(errors, codes_have_names_and_texts)
{
    static const int codes[] = {CVD_EINVAL,  CVD_ENOMEM, CVD_ERANGE, CVD_EUNSUPPORTED,
                                CVD_EFORMAT, CVD_EIO,    CVD_ESTATE};
    static const char *const names[] = {"CVD_EINVAL",       "CVD_ENOMEM",  "CVD_ERANGE",
                                        "CVD_EUNSUPPORTED", "CVD_EFORMAT", "CVD_EIO",
                                        "CVD_ESTATE"};
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
        cr_assert_lt(codes[i], 0);
        cr_assert_str_eq(cvd_err_name(codes[i]), names[i]);
        cr_assert_not_null(cvd_strerror(codes[i]));
        cr_assert_str_neq(cvd_strerror(codes[i]), "unknown error");
    }
    cr_assert_str_eq(cvd_err_name(0), "CVD_OK");
    cr_assert_not_null(cvd_strerror(-1000));
    cr_assert_not_null(cvd_err_name(-1000));
    /* a long message is cut, never overflows */
    cvd_err err;
    char big[2 * CVD_ERR_MSG_MAX];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    cr_assert_eq(cvd_err_set(&err, CVD_EINVAL, "%s", big), CVD_EINVAL);
    cr_assert_eq(strlen(err.msg), CVD_ERR_MSG_MAX - 1);
    cr_assert_eq(cvd_err_set(NULL, CVD_EIO, "ignored"), CVD_EIO);
}
