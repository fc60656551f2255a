/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_levels.c - NAM's level rules and the soft limiter.
 *
 * The gains follow NeuralAmpModelerPlugin's _SetInputGain/_SetOutputGain: input calibration
 * adds (interface dBu - the model's input_level_dbu), "normalized" output adds
 * (-18 - loudness), "calibrated" output adds (output_level_dbu - interface dBu), each only when
 * the model declares the level. The limiter never lets a frame past its ceiling, leaves
 * frames under its knee alone once recovered, turns non-finite samples into silence and
 * allocates nothing.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>

#include "alloc_count.h"
#include "convd_dsp.h"
#include "testutil.h"

Test(levels, nam_input_calibration)
{
    cvd_levels lv = {0};
    /* no input level: only the user's gain */
    cr_assert_float_eq(cvd_input_gain_db(&lv, 3.0, 1, 12.0), 3.0, 1e-12);
    lv.has_input_level = 1;
    lv.input_level_dbu = 10.5;
    /* an interface at +12 dBu full scale, a capture made at +10.5: 1.5 dB more */
    cr_assert_float_eq(cvd_input_gain_db(&lv, 0.0, 1, 12.0), 1.5, 1e-12);
    cr_assert_float_eq(cvd_input_gain_db(&lv, -2.0, 1, 4.0), -8.5, 1e-12);
    /* calibration off */
    cr_assert_float_eq(cvd_input_gain_db(&lv, -2.0, 0, 4.0), -2.0, 1e-12);
    cr_assert_float_eq(cvd_input_gain_db(NULL, 1.0, 1, 4.0), 1.0, 1e-12);
}

Test(levels, nam_output_modes)
{
    cvd_levels lv = {0};
    cr_assert_float_eq(cvd_output_gain_db(&lv, 2.0, CVD_OUTPUT_NORMALIZED, 12), 2.0, 1e-12);
    lv.has_loudness = 1;
    lv.loudness = -31.25;
    /* normalised to -18 dB: +13.25 */
    cr_assert_float_eq(cvd_output_gain_db(&lv, 0.0, CVD_OUTPUT_NORMALIZED, 12), 13.25, 1e-12);
    cr_assert_float_eq(cvd_output_gain_db(&lv, -1.0, CVD_OUTPUT_NORMALIZED, 12), 12.25, 1e-12);
    cr_assert_float_eq(cvd_output_gain_db(&lv, -1.0, CVD_OUTPUT_RAW, 12), -1.0, 1e-12);
    /* calibrated without an output level: nothing added */
    cr_assert_float_eq(cvd_output_gain_db(&lv, 0.0, CVD_OUTPUT_CALIBRATED, 12), 0.0, 1e-12);
    lv.has_output_level = 1;
    lv.output_level_dbu = 5.0;
    cr_assert_float_eq(cvd_output_gain_db(&lv, 0.0, CVD_OUTPUT_CALIBRATED, 12), -7.0, 1e-12);
    cr_assert_float_eq(cvd_db_to_gain(-6.0), 0.501187f, 1e-6);
    cr_assert_float_eq(cvd_db_to_gain(0.0), 1.0f, 0);
    float x[3] = {1, -2, 0.5f};
    cvd_gain_apply(x, 3, 0.5f);
    cr_assert(x[0] == 0.5f && x[1] == -1.0f && x[2] == 0.25f);
}

Test(levels, chain_levels_and_model_metadata)
{
    cvd_model *a = NULL, *b = NULL, *c = NULL;
    cr_assert_eq(cvd_model_create(1, &a, NULL), CVD_OK);
    cr_assert_eq(cvd_model_create(1, &b, NULL), CVD_OK);
    cr_assert_eq(cvd_model_create(1, &c, NULL), CVD_OK);
    cvd_levels la = {.has_input_level = 1,
                     .input_level_dbu = 9,
                     .has_loudness = 1,
                     .loudness = -20},
               lb = {.has_input_level = 1,
                     .input_level_dbu = 3,
                     .has_loudness = 1,
                     .loudness = -25,
                     .has_output_level = 1,
                     .output_level_dbu = 7},
               got;
    cvd_model_get_levels(a, &got);
    cr_assert(!got.has_loudness && !got.has_input_level && !got.has_output_level);
    cvd_model_set_levels(a, &la);
    cvd_model_set_levels(b, &lb);
    cvd_model_get_levels(a, &got);
    cr_assert(got.has_loudness && got.loudness == -20 && got.input_level_dbu == 9);
    /* pedal a, amp b, cabinet c: a's input level, b's loudness and output level */
    cvd_model *chain[3] = {a, b, c};
    cvd_levels_of_chain(chain, 3, &got);
    cr_assert(got.has_input_level && got.input_level_dbu == 9);
    cr_assert(got.has_loudness && got.loudness == -25);
    cr_assert(got.has_output_level && got.output_level_dbu == 7);
    /* the cabinet first: the interface feeds it, and it declares no input level */
    cvd_model *rev[3] = {c, a, b};
    cvd_levels_of_chain(rev, 3, &got);
    cr_assert(!got.has_input_level);
    cvd_model_set_levels(a, NULL);
    cvd_model_get_levels(a, &got);
    cr_assert(!got.has_loudness);
    cvd_model_unref(a);
    cvd_model_unref(b);
    cvd_model_unref(c);
}

Test(limiter, never_past_the_ceiling_and_recovers)
{
    const double rate = 48000;
    cvd_limiter l;
    cvd_limiter_init(&l, rate, -1.0, 50.0);
    const float ceiling = cvd_db_to_gain(-1.0), knee = cvd_db_to_gain(-7.0);
    const int n = 48000;
    float *x = malloc(sizeof(float) * 2 * n);
    /* 0.25 s quiet, 0.25 s a wrong gain (+26 dB), then quiet again: stereo */
    for (int t = 0; t < n; t++) {
        double s = sin(2 * M_PI * 440 * t / rate);
        double a = t >= n / 4 && t < n / 2 ? 10.0 : 0.3;
        x[2 * t] = (float)(a * s);
        x[2 * t + 1] = (float)(-0.5 * a * s);
    }
    float *y = malloc(sizeof(float) * 2 * n);
    for (int i = 0; i < 2 * n; i++)
        y[i] = x[i];
    const long a0 = alloc_count(), t0 = alloc_count_thread();
    for (int t = 0; t < n; t += 64)
        cvd_limiter_process(&l, y + 2 * t, n - t < 64 ? n - t : 64, 2);
    cr_assert_eq(alloc_count(), a0);
    if (t0 >= 0)
        cr_assert_eq(alloc_count_thread(), t0);
    float peak = 0;
    for (int i = 0; i < 2 * n; i++)
        peak = fmaxf(peak, fabsf(y[i]));
    cr_assert_leq(peak, ceiling * (1 + 1e-6f), "a frame reached %g, the ceiling is %g", peak,
                  ceiling);
    /* the quiet start (under the knee) passes untouched */
    for (int i = 0; i < n / 2; i++)
        cr_assert_eq(y[i], x[i], "sample %d changed under the knee", i);
    /* the loud part is loud: the limiter does not just mute it */
    float loud = 0;
    for (int i = n / 2 + 2000; i < n; i++)
        loud = fmaxf(loud, fabsf(y[i]));
    cr_assert_gt(loud, knee, "the loud part came out at %g", loud);
    /* after the burst the gain comes back: within 10 release times the quiet signal passes
     * within 0.1% */
    for (int t = n / 2 + 24000; t < n; t++)
        cr_assert_float_eq(y[2 * t], x[2 * t], 1e-3 * 0.3 + 1e-7, "frame %d", t);
    cr_assert_float_eq(cvd_limiter_gain(&l), 1.0f, 1e-3);
    /* the gain changes smoothly: no step between frames larger than the signal's own */
    double worst = 0;
    for (int t = 1; t < n; t++) {
        double dy = fabs((double)y[2 * t] - y[2 * t - 2]);
        double dx = fabs((double)x[2 * t] - x[2 * t - 2]);
        if (dy > dx + 1e-6)
            worst = fmax(worst, dy - dx);
    }
    cr_assert_lt(worst, 0.5, "a step of %g between frames", worst);
    free(x);
    free(y);
}

Test(limiter, non_finite_samples_become_silence)
{
    cvd_limiter l;
    cvd_limiter_init(&l, 48000, 0.0, 0); /* defaults where 0 is not a release */
    float x[6] = {NAN, 0.1f, INFINITY, -INFINITY, 0.2f, 0.05f};
    cvd_limiter_process(&l, x, 3, 2);
    cr_assert_eq(x[0], 0.0f);
    cr_assert_eq(x[2], 0.0f);
    cr_assert_eq(x[3], 0.0f);
    cr_assert(isfinite(x[1]) && isfinite(x[4]) && isfinite(x[5]));
    cvd_limiter_reset(&l);
    cr_assert_eq(cvd_limiter_gain(&l), 1.0f);
    /* a ceiling out of range falls back to the default */
    cvd_limiter_init(&l, 48000, 6.0, 10);
    cr_assert_float_eq(l.ceiling, cvd_db_to_gain(CVD_LIMITER_CEILING_DB), 1e-7);
}

/* The .nam loader keeps NAM's calibration metadata: a file here with loudness, a copy given
 * input and output levels, nulls (none, as NAM core reads them) and a bad value. */
#include <jansson.h>

#include "convd_model.h"

static int parse_with_meta(json_t *root, const char *key, json_t *value, cvd_model **m,
                           cvd_err *err)
{
    json_t *meta = json_object_get(root, "metadata");
    cr_assert(json_is_object(meta));
    json_object_set(meta, key, value);
    char *text = json_dumps(root, 0);
    int rc = cvd_nam_parse(text, strlen(text), "meta.nam", m, err);
    free(text);
    return rc;
}

Test(levels, nam_metadata_levels)
{
    const char *path = "tests/data/nam/nano_tanh.nam";
    cvd_model *m = NULL;
    cvd_err err = {0};
    cvd_levels lv;
    cr_assert_eq(cvd_nam_load(path, &m, &err), CVD_OK, "%s", err.msg);
    cvd_model_get_levels(m, &lv);
    cr_assert(lv.has_loudness && lv.loudness == -20.0, "loudness %d %g", lv.has_loudness,
              lv.loudness);
    cr_assert(!lv.has_input_level && !lv.has_output_level);
    cvd_model_unref(m);

    json_error_t je;
    json_t *root = json_load_file(path, 0, &je);
    cr_assert_not_null(root);
    json_t *meta = json_object_get(root, "metadata");
    json_object_set_new(meta, "output_level_dbu", json_real(6.5));
    cr_assert_eq(parse_with_meta(root, "input_level_dbu", json_real(10.25), &m, &err), CVD_OK, "%s",
                 err.msg);
    cvd_model_get_levels(m, &lv);
    cr_assert(lv.has_input_level && lv.input_level_dbu == 10.25);
    cr_assert(lv.has_output_level && lv.output_level_dbu == 6.5);
    cr_assert_float_eq(cvd_input_gain_db(&lv, 0, 1, CVD_NAM_INTERFACE_DBU), 1.75, 1e-12);
    cvd_model_unref(m);
    /* null: none */
    cr_assert_eq(parse_with_meta(root, "loudness", json_null(), &m, &err), CVD_OK, "%s", err.msg);
    cvd_model_get_levels(m, &lv);
    cr_assert(!lv.has_loudness && lv.has_input_level);
    cvd_model_unref(m);
    /* not a number: refused by name */
    cr_assert_lt(parse_with_meta(root, "loudness", json_string("loud"), &m, &err), 0);
    cr_assert_null(m);
    cr_assert(strstr(err.msg, "meta.nam: metadata.loudness='loud': must be a number"), "%s",
              err.msg);
    json_decref(root);
}
