/* SPDX-License-Identifier: Apache-2.0 */
/*
 * .nam files: the generated cases and NAM's standard model against their reference outputs
 * (an independent numpy implementation, and NAM core itself), streamed at several block
 * sizes and offline; every malformed or unsupported file refused with a message naming the
 * problem; truncation at every length, and every key removed in turn, handled without a
 * crash.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc_count.h"
#include "convd_model.h"
#include "json_mutate.h"
#include "testutil.h"

static float *read_f32(const char *path, long *n)
{
    size_t len = 0;
    char *b = tu_read_file(path, &len);
    cr_assert_not_null(b, "cannot read %s", path);
    *n = (long)(len / 4);
    return (float *)b;
}

/* Streams x through m in blocks of `block`, flushes; returns the max |y - ref|. */
static double stream_error(cvd_model *m, const float *x, long n, const float *ref, int block)
{
    cvd_net *net;
    cvd_err err;
    cr_assert_eq(cvd_net_create(m, block, &net, &err), 0, "%s", err.msg);
    float *y = malloc(sizeof(float) * (size_t)(n + cvd_net_max_out(net) + 16));
    long got = 0;
    int no;
    for (long p = 0; p < n; p += block) {
        int b = n - p < block ? (int)(n - p) : block;
        cr_assert_eq(cvd_net_process(net, x + p, b, y + got, &no), 0);
        got += no;
    }
    while (cvd_net_flush(net, y + got, &no) == 1)
        got += no;
    got += no;
    cr_assert_eq(got, n, "block %d: %ld frames out for %ld in", block, got, n);
    double e = 0;
    for (long i = 0; i < n; i++)
        e = fmax(e, fabs((double)y[i] - ref[i]));
    free(y);
    cvd_net_destroy(net);
    return e;
}

/* Every generated case against its reference: streamed at `blocks`, and offline. */
static void check_generated_cases(const int *blocks, int nb, const char *isa)
{
    DIR *d = opendir("tests/data/nam");
    struct dirent *e;
    long n, nr;
    int count = 0;
    cr_assert_not_null(d);
    float *x = read_f32("tests/data/nam/input_4k.f32", &n);
    while ((e = readdir(d)) != NULL) {
        size_t l = strlen(e->d_name);
        if (l < 5 || strcmp(e->d_name + l - 4, ".nam") != 0)
            continue;
        char path[512], ref_path[512];
        snprintf(path, sizeof path, "tests/data/nam/%s", e->d_name);
        snprintf(ref_path, sizeof ref_path, "tests/data/nam/%.*s.out.f32", (int)(l - 4), e->d_name);
        cvd_model *m;
        cvd_err err;
        cr_assert_eq(cvd_nam_load(path, &m, &err), 0, "%s", err.msg);
        float *ref = read_f32(ref_path, &nr);
        cr_assert_eq(nr, n);
        for (int b = 0; b < nb; b++) {
            double err_max = stream_error(m, x, n, ref, blocks[b]);
            cr_expect_leq(err_max, 1e-4, "%s (%s) block %d: max error %g", path, isa, blocks[b],
                          err_max);
        }
        /* offline */
        float *y;
        long ny;
        cr_assert_eq(cvd_model_forward(m, x, n, &y, &ny, &err), 0, "%s", err.msg);
        cr_assert_eq(ny, n);
        double em = 0;
        for (long i = 0; i < n; i++)
            em = fmax(em, fabs((double)y[i] - ref[i]));
        cr_expect_leq(em, 1e-4, "%s (%s) offline: max error %g", path, isa, em);
        free(y);
        free(ref);
        cvd_model_unref(m);
        count++;
    }
    closedir(d);
    free(x);
    cr_assert_geq(count, 16, "only %d .nam cases found", count);
}

Test(nam, generated_cases_match_reference)
{
    static const int blocks[] = {1, 7, 64, 4096};
    check_generated_cases(blocks, 4, "best ISA");
}

/* the AVX2 kernels (the 8-channel fused layer among them) where the CPU has more */
Test(nam, generated_cases_match_reference_avx2)
{
    if (cvd_isa_detect() < CVD_ISA_AVX2)
        cr_skip_test("no AVX2 on this CPU: the AVX2 kernels cannot run here");
    cvd_isa_force("avx2");
    static const int blocks[] = {1, 13, 64};
    check_generated_cases(blocks, 3, "avx2");
}

Test(nam, standard_model_matches_nam_core)
{
    const char *path = "../shared/models/nam/wavenet_a1_standard.nam";
    cvd_model *m;
    cvd_err err;
    long n, nr;
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        cr_skip_test("%s is absent (../shared is not beside this checkout)", path);
    fclose(f);
    cr_assert_eq(cvd_nam_load(path, &m, &err), 0, "%s", err.msg);
    cr_assert_eq(cvd_model_param_count(m), 13802);
    cr_assert_eq(cvd_model_receptive_field(m), 4093);
    cr_assert_eq(cvd_model_latency(m), 0);
    cr_assert_float_eq(cvd_model_macs_per_frame(m), 13320.0, 0.5);
    float *x = read_f32("../shared/models/nam/signal_2s_48k.f32", &n);
    float *ref = read_f32("../shared/models/nam/wavenet_a1_standard.out.f32", &nr);
    cr_assert_eq(n, nr);
    static const int blocks[] = {1, 64, 512};
    for (int b = 0; b < 3; b++) {
        double e = stream_error(m, x, n, ref, blocks[b]);
        cr_log_info("standard model, block %d: max abs error %.3g", blocks[b], e);
        cr_expect_leq(e, 1e-4, "block %d: max error %g", blocks[b], e);
    }
    free(x);
    free(ref);
    cvd_model_unref(m);
}

Test(nam, portable_path_matches_reference)
{
    cvd_isa_force("portable");
    long n, nr;
    cvd_model *m;
    cvd_err err;
    float *x = read_f32("tests/data/nam/input_4k.f32", &n);
    const char *cases[] = {"wide16_tanh", "two_arrays_gated_silu", "new_blended", "nano_tanh"};
    for (int i = 0; i < 4; i++) {
        char path[256], rp[256];
        snprintf(path, sizeof path, "tests/data/nam/%s.nam", cases[i]);
        snprintf(rp, sizeof rp, "tests/data/nam/%s.out.f32", cases[i]);
        cr_assert_eq(cvd_nam_load(path, &m, &err), 0, "%s", err.msg);
        float *ref = read_f32(rp, &nr);
        double e = stream_error(m, x, n, ref, 33);
        cr_expect_leq(e, 1e-4, "%s portable: max error %g", path, e);
        free(ref);
        cvd_model_unref(m);
    }
    free(x);
}

Test(nam, reset_reproduces_prewarmed_start)
{
    long n, nr;
    cvd_model *m;
    cvd_net *net;
    cvd_err err;
    float *x = read_f32("tests/data/nam/input_4k.f32", &n);
    float *ref = read_f32("tests/data/nam/nano_tanh.out.f32", &nr);
    cr_assert_eq(cvd_nam_load("tests/data/nam/nano_tanh.nam", &m, &err), 0, "%s", err.msg);
    cr_assert_eq(cvd_net_create(m, 256, &net, &err), 0, "%s", err.msg);
    float *y = malloc(sizeof(float) * (size_t)n);
    int no;
    /* garbage through the net, then reset: the output must be as from a fresh load */
    for (int i = 0; i < 8; i++)
        cvd_net_process(net, x + 512 * i, 256, y, &no);
    cvd_net_reset(net);
    long before = alloc_count();
    for (long p = 0; p < n; p += 256) {
        cr_assert_eq(cvd_net_process(net, x + p, 256, y + p, &no), 0);
        cr_assert_eq(no, 256);
    }
    cvd_net_reset(net);
    cr_assert_eq(alloc_count(), before, "process/reset allocated");
    for (long i = 0; i < n; i++)
        cr_assert_leq(fabs((double)y[i] - ref[i]), 1e-4, "frame %ld", i);
    free(x);
    free(ref);
    free(y);
    cvd_net_destroy(net);
    cvd_model_unref(m);
}

/* each bad file: refused, with the file name and these words in the message */
Test(nam, bad_files_refused_by_name)
{
    static const struct {
        const char *file, *words[3];
    } bad[] = {
        {"truncated_json", {"JSON", "line", NULL}},
        {"weights_too_few", {"weights", "709", "712"}},
        {"weights_too_many", {"weights", "713", "712"}},
        {"unknown_architecture", {"architecture", "Transformer", NULL}},
        {"unsupported_version", {"version", "0.9.0", NULL}},
        {"version_not_semver", {"version", "\"0.5\"", NULL}},
        {"dilations_length_mismatch", {"kernel_sizes", "dilations", NULL}},
        {"activation_list_mismatch", {"activation", "dilations", NULL}},
        {"unknown_activation", {"Swish2", NULL, NULL}},
        {"negative_channels", {"channels", "-5", NULL}},
        {"zero_dilation", {"dilations[", "0", NULL}},
        {"weights_not_numbers", {"weights[10]", "number", NULL}},
        {"bad_gating_mode", {"gating_mode", "sometimes", NULL}},
        {"post_stack_head", {"config.head", "not supported", NULL}},
        {"bottleneck", {"bottleneck", "not supported", NULL}},
        {"head_kernel_size_2", {"head.kernel_size", "not supported", NULL}},
        {"film_active", {"conv_pre_film", "FiLM", NULL}},
        {"condition_dsp", {"condition_dsp", "not supported", NULL}},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char path[256];
        cvd_model *m = (cvd_model *)1;
        cvd_err err = {0};
        snprintf(path, sizeof path, "tests/data/nam/bad/%s.nam", bad[i].file);
        int rc = cvd_nam_load(path, &m, &err);
        cr_expect_lt(rc, 0, "%s was accepted", path);
        cr_expect_null(m, "%s: model pointer not cleared", path);
        cr_expect_not_null(strstr(err.msg, path), "%s: message does not name the file: %s", path,
                           err.msg);
        for (int w = 0; w < 3 && bad[i].words[w]; w++)
            cr_expect_not_null(strstr(err.msg, bad[i].words[w]), "%s: message lacks \"%s\": %s",
                               path, bad[i].words[w], err.msg);
    }
}

Test(nam, missing_file_and_every_truncation)
{
    cvd_model *m;
    cvd_err err;
    cr_assert_lt(cvd_nam_load("tests/data/nam/no_such_file.nam", &m, &err), 0);
    cr_assert_not_null(strstr(err.msg, "no_such_file.nam"), "%s", err.msg);

    size_t len;
    char *text = tu_read_file("tests/data/nam/k1_relu_1ch.nam", &len);
    cr_assert_not_null(text);
    for (size_t cut = 0; cut < len; cut++) {
        int rc = cvd_nam_parse(text, cut, "cut.nam", &m, &err);
        if (rc == 0) {
            /* a prefix can only be valid JSON if just trailing whitespace was cut */
            cr_assert_geq(cut, len - 2, "a prefix of %zu bytes loaded", cut);
            cvd_model_unref(m);
        } else {
            cr_assert_not_null(strstr(err.msg, "cut.nam"), "%s", err.msg);
        }
    }
    free(text);
}

Test(nam, type_confusion_is_refused)
{
    /* every field of a valid file replaced by values of the wrong type */
    static const char *const docs[] = {
        "[]",
        "{\"version\":5}",
        "{\"version\":\"0.5.4\",\"architecture\":\"WaveNet\",\"config\":[]}",
        "{\"version\":\"0.5.4\",\"architecture\":\"WaveNet\",\"config\":{\"layers\":{}}}",
        "{\"version\":\"0.5.4\",\"architecture\":\"WaveNet\",\"config\":{\"layers\":[7]}}",
        "{\"version\":\"0.5.4\",\"architecture\":\"WaveNet\",\"config\":{\"layers\":[{"
        "\"input_size\":1,\"condition_size\":1,\"channels\":2,\"kernel_size\":\"3\","
        "\"dilations\":[1],\"activation\":\"Tanh\",\"gated\":false,\"head_size\":1,"
        "\"head_bias\":false}]},\"weights\":[]}",
        "{\"version\":\"0.5.4\",\"architecture\":\"WaveNet\",\"config\":{\"layers\":[{"
        "\"input_size\":1,\"condition_size\":1,\"channels\":2000000000,\"kernel_size\":3,"
        "\"dilations\":[1],\"activation\":\"Tanh\",\"gated\":false,\"head_size\":1,"
        "\"head_bias\":false}]},\"weights\":[]}",
        "{\"version\":\"0.5.4\",\"architecture\":\"WaveNet\",\"config\":{\"layers\":[{"
        "\"input_size\":1,\"condition_size\":1,\"channels\":2,\"kernel_size\":3,"
        "\"dilations\":[1],\"activation\":{\"type\":7},\"gated\":false,\"head_size\":1,"
        "\"head_bias\":false}]},\"weights\":[]}",
        "{\"version\":\"0.5.4\",\"architecture\":\"WaveNet\",\"config\":{\"layers\":[{"
        "\"input_size\":1,\"condition_size\":1,\"channels\":2,\"kernel_size\":3,"
        "\"dilations\":[1],\"activation\":\"Tanh\",\"gated\":\"yes\",\"head_size\":1,"
        "\"head_bias\":false}]},\"weights\":[]}",
    };
    for (size_t i = 0; i < sizeof docs / sizeof docs[0]; i++) {
        cvd_model *m;
        cvd_err err;
        int rc = cvd_nam_parse(docs[i], strlen(docs[i]), "t.nam", &m, &err);
        cr_expect_lt(rc, 0, "document %zu accepted", i);
        cr_expect_not_null(strstr(err.msg, "t.nam"), "%zu: %s", i, err.msg);
    }
}

static int nam_loader(const char *text, size_t len, cvd_model **out, cvd_err *err)
{
    return cvd_nam_parse(text, len, "t.nam", out, err);
}

/* found by fuzzing: a layer array without head_bias crashed the loader */
Test(nam, every_key_removed_in_turn)
{
    jm_remove_each_key("tests/data/nam/k4_fasttanh_odd_dil.nam", nam_loader, 1);
    jm_remove_each_key("tests/data/nam/new_gating_mode_head_obj.nam", nam_loader, 1);
    jm_remove_each_key("tests/data/nam/new_per_layer_lists.nam", nam_loader, 1);
    jm_remove_each_key("tests/data/nam/prelu_objs.nam", nam_loader, 1);
}

/* The fused kernels of every ISA against the portable path at block 1 (the unfused frame
 * path, reference-checked above), on seeded WaveNets of every channel count the kernels treat
 * differently: below, at and above a vector (4, 8, 16 lanes), the group sizes of the kernels
 * on channel rows (1..8, 10, 12, 16, 20, 24) and counts they split (13, 32, 40); not gated,
 * gated and blended; tanh, sigmoid and activations applied outside the kernels; one and
 * three input channels. Streamed at blocks 1, 3, 4, 8 (the kernels on frames), 16, 64 and 96
 * (on channel rows, with tails), on every ISA this CPU has; process() never allocates. */
static float *seeded_wavenet_out(const char *json, const float *x, long n, int block)
{
    cvd_model *m;
    cvd_err err;
    cr_assert_eq(cvd_json_model_parse(json, strlen(json), "seeded.json", NULL, &m, &err), 0,
                 "%s\n%s", err.msg, json);
    const int ci = cvd_model_in_channels(m);
    cvd_net *net;
    cr_assert_eq(cvd_net_create(m, block, &net, &err), 0, "%s", err.msg);
    float *y = malloc(sizeof(float) * (size_t)(n + cvd_net_max_out(net) + 16));
    long got = 0, allocs = alloc_count();
    int no;
    for (long p = 0; p < n; p += block) {
        int b = n - p < block ? (int)(n - p) : block;
        cr_assert_eq(cvd_net_process(net, x + p * ci, b, y + got, &no), 0);
        got += no;
    }
    cr_assert_eq(alloc_count(), allocs, "process allocated (block %d)", block);
    cr_assert_eq(got, n);
    cvd_net_destroy(net);
    cvd_model_unref(m);
    return y;
}

static const char *const layer_kinds[] = {
    "\"activation\": \"Tanh\", \"gating\": \"none\"",
    "\"activation\": \"Tanh\", \"gating\": \"gated\"",
    "\"activation\": \"Softsign\", \"gating\": \"blended\", \"secondary_activation\": "
    "\"Sigmoid\"",
    "\"activation\": [\"ReLU\", \"Tanh\", \"SiLU\"], \"gating\": [\"none\", \"gated\", "
    "\"blended\"], \"secondary_activation\": \"Hardswish\""};

static void check_kernels(const int *channels, int nc, int inputs)
{
    if (cvd_isa_detect() < CVD_ISA_AVX2)
        cr_skip_test("no AVX2 on this CPU: only the portable path runs here, nothing to compare");
    static const int blocks[] = {1, 3, 4, 8, 16, 64, 96};
    const int nb = sizeof blocks / sizeof blocks[0];
    long n4;
    float *x4 = read_f32("tests/data/nam/input_4k.f32", &n4);
    const long n = 700;
    float *x = malloc(sizeof(float) * (size_t)n * inputs);
    cr_assert_not_null(x);
    for (long t = 0; t < n; t++) /* input i: the signal from sample 97 i on */
        for (int i = 0; i < inputs; i++)
            x[t * inputs + i] = x4[t + 97 * i];
    for (int ci = 0; ci < nc; ci++)
        for (size_t k = 0; k < sizeof layer_kinds / sizeof layer_kinds[0]; k++) {
            const int C = channels[ci], C2 = C > 1 ? C / 2 : 1;
            char json[1024];
            snprintf(json, sizeof json,
                     "{\"format\": \"convd-model\", \"version\": 1, \"seed\": %zu, "
                     "\"input_channels\": %d, \"wavenet\": {\"arrays\": [{\"channels\": %d, "
                     "\"kernel_size\": 3, \"dilations\": [1, 4, 16], %s, \"head_size\": %d}, "
                     "{\"channels\": %d, \"kernel_size\": 2, \"dilations\": [1, 2, 8], %s, "
                     "\"head_size\": 1}]}}",
                     (size_t)C * 10 + k + 1, inputs, C, layer_kinds[k], C2, C2, layer_kinds[k]);
            cvd_isa_force("portable");
            float *ref = seeded_wavenet_out(json, x, n, 1);
            double scale = 0;
            for (long i = 0; i < n; i++)
                scale = fmax(scale, fabs((double)ref[i]));
            for (int isa = CVD_ISA_PORTABLE; isa <= (int)cvd_isa_detect(); isa++) {
                cvd_isa_force(cvd_isa_name((cvd_isa)isa));
                for (int b = 0; b < nb; b++) {
                    if (isa == CVD_ISA_PORTABLE && blocks[b] == 1)
                        continue; /* the reference itself */
                    float *y = seeded_wavenet_out(json, x, n, blocks[b]);
                    double e = 0;
                    for (long i = 0; i < n; i++)
                        e = fmax(e, fabs((double)y[i] - ref[i]));
                    cr_expect_leq(e, 1e-5 * fmax(scale, 1.0),
                                  "C=%d/%d, %d inputs, %s, %s, block %d: max error %g (scale %g)",
                                  C, C2, inputs, layer_kinds[k], cvd_isa_name((cvd_isa)isa),
                                  blocks[b], e, scale);
                    free(y);
                }
            }
            free(ref);
        }
    cvd_isa_force("auto");
    free(x);
    free(x4);
}

Test(nam, fused_kernels_equal_the_portable_path_small)
{
    static const int channels[] = {1, 2, 3, 4, 5, 6, 7};
    check_kernels(channels, sizeof channels / sizeof channels[0], 1);
}

Test(nam, fused_kernels_equal_the_portable_path_medium)
{
    static const int channels[] = {8, 10, 12, 13};
    check_kernels(channels, sizeof channels / sizeof channels[0], 1);
}

Test(nam, fused_kernels_equal_the_portable_path_large)
{
    static const int channels[] = {16, 20, 24};
    check_kernels(channels, sizeof channels / sizeof channels[0], 1);
}

Test(nam, fused_kernels_equal_the_portable_path_split)
{
    static const int channels[] = {32, 40};
    check_kernels(channels, sizeof channels / sizeof channels[0], 1);
}

Test(nam, fused_kernels_equal_the_portable_path_three_inputs)
{
    static const int channels[] = {4, 16};
    check_kernels(channels, sizeof channels / sizeof channels[0], 3);
}

/* The AVX-512 frame kernel runs a 16-channel array's layers as a wavefront from blocks of 8
 * (groups of 4 frames, layer l + 1's first group beside layer l's second): two 16-channel
 * arrays, the second the last (its last layer's output feeds nothing), dilations below the
 * group and the block (1, 2, 3, 5) whose taps fall in frames the wavefront wrote earlier in the
 * same block, kernels of 3 and 2, blocks of 8 to 15 (the frames past the last whole tile one
 * by one) against the portable path at block 1, on every ISA this CPU has. */
Test(nam, frame_wavefront_equals_the_portable_path)
{
    if (cvd_isa_detect() < CVD_ISA_AVX2)
        cr_skip_test("no AVX2 on this CPU: only the portable path runs here, nothing to compare");
    static const int blocks[] = {8, 9, 11, 12, 15};
    long n4;
    float *x = read_f32("tests/data/nam/input_4k.f32", &n4);
    const long n = 700;
    const char *json =
        "{\"format\": \"convd-model\", \"version\": 1, \"seed\": 77, \"input_channels\": 1, "
        "\"wavenet\": {\"arrays\": [{\"channels\": 16, \"kernel_size\": 3, \"dilations\": [1, 2, "
        "3, 5, 8, 1, 32], \"activation\": \"Tanh\", \"gating\": \"none\", \"head_size\": 16}, "
        "{\"channels\": 16, \"kernel_size\": 2, \"dilations\": [2, 1, 4], \"activation\": "
        "\"Tanh\", \"gating\": \"none\", \"head_size\": 1}]}}";
    cvd_isa_force("portable");
    float *ref = seeded_wavenet_out(json, x, n, 1);
    double scale = 0;
    for (long i = 0; i < n; i++)
        scale = fmax(scale, fabs((double)ref[i]));
    cr_assert_gt(scale, 1e-3, "the reference is all but silent (%g): nothing to compare", scale);
    for (int isa = CVD_ISA_PORTABLE; isa <= (int)cvd_isa_detect(); isa++) {
        cvd_isa_force(cvd_isa_name((cvd_isa)isa));
        for (size_t b = 0; b < sizeof blocks / sizeof blocks[0]; b++) {
            float *y = seeded_wavenet_out(json, x, n, blocks[b]);
            double e = 0;
            for (long i = 0; i < n; i++)
                e = fmax(e, fabs((double)y[i] - ref[i]));
            cr_expect_leq(e, 1e-5 * fmax(scale, 1.0), "%s, block %d: max error %g (scale %g)",
                          cvd_isa_name((cvd_isa)isa), blocks[b], e, scale);
            free(y);
        }
    }
    cvd_isa_force("auto");
    free(ref);
    free(x);
}

/* One WaveNet parser (model/wavenet_json.c) reads .nam layer arrays and convd's shorthand:
 * the same fault in either spelling is refused with the same words after its path
 * ("config.layers[0].KEY" in a .nam, "wavenet.KEY" in convd's JSON), and what one accepts
 * the other accepts. GATING stands for the dialect's key (gating_mode, gating). */
static void both_spellings(const char *key, const char *value, char *nam_msg, char *convd_msg,
                           size_t n, int *nam_rc, int *convd_rc)
{
    json_error_t je;
    json_t *arr = json_loads("{\"input_size\": 1, \"condition_size\": 1, \"channels\": 4, "
                             "\"kernel_size\": 3, \"dilations\": [1, 2, 4], \"activation\": "
                             "\"Tanh\", \"head_size\": 1, \"head_bias\": false}",
                             0, &je);
    cr_assert_not_null(arr, "%s", je.text);
    json_t *v = json_loads(value, JSON_DECODE_ANY, &je);
    cr_assert_not_null(v, "%s: %s", value, je.text);
    json_t *conv_arr = json_deep_copy(arr);
    json_object_set(arr, strcmp(key, "GATING") == 0 ? "gating_mode" : key, v);
    json_object_set(conv_arr, strcmp(key, "GATING") == 0 ? "gating" : key, v);
    json_decref(v);

    char *a = json_dumps(arr, JSON_COMPACT), *b = json_dumps(conv_arr, JSON_COMPACT);
    char *nam_doc = malloc(strlen(a) + 200), *conv_doc = malloc(strlen(b) + 200);
    sprintf(nam_doc,
            "{\"version\": \"0.5.4\", \"architecture\": \"WaveNet\", \"config\": {\"layers\": "
            "[%s]}, \"weights\": []}",
            a);
    sprintf(conv_doc, "{\"format\": \"convd-model\", \"version\": 1, \"wavenet\": %s}", b);
    cvd_model *m = NULL;
    cvd_err err = {0};
    *nam_rc = cvd_nam_parse(nam_doc, strlen(nam_doc), "t.nam", &m, &err);
    snprintf(nam_msg, n, "%s", *nam_rc < 0 ? err.msg : "");
    cvd_model_unref(m);
    m = NULL;
    *convd_rc = cvd_json_model_parse(conv_doc, strlen(conv_doc), "t.json", NULL, &m, &err);
    snprintf(convd_msg, n, "%s", *convd_rc < 0 ? err.msg : "");
    cvd_model_unref(m);
    free(a);
    free(b);
    free(nam_doc);
    free(conv_doc);
    json_decref(arr);
    json_decref(conv_arr);
}

Test(nam, wavenet_dialects_share_one_parser)
{
    static const struct {
        const char *key, *value, *reason;
    } bad[] = {
        {"channels", "4.0", "must be an integer"},
        {"channels", "0", "must be >= 1"},
        {"kernel_size", "[3, 3]", "one entry per dilation (3)"},
        {"kernel_size", "[3, 3, \"3\"]", "must be an integer"},
        {"dilations", "[1, 0, 4]", "must be in 1..1048576"},
        {"dilations", "[]", "non-empty list"},
        {"activation", "\"Swish2\"", "unknown"},
        {"activation", "[\"Tanh\", \"Tanh\"]", "one entry per dilation (3)"},
        {"activation", "{\"type\": \"PReLU\", \"negative_slopes\": [0.1, 0.2, 0.3]}",
         "3 slopes for 4 channels"},
        {"activation", "{\"type\": \"Hardtanh\", \"max_val\": 2}", "always -1..1"},
        {"activation", "{\"type\": \"Tanh\", \"slope\": 1}", "not a parameter of Tanh"},
        {"activation", "{\"type\": \"LeakyReLU\", \"negative_slope\": \"x\"}", "must be a number"},
        {"activation", "{\"negative_slope\": 0.1}", "missing"},
        {"activation", "7", "must be an activation name or an object"},
        {"GATING", "\"sometimes\"", "must be \"none\", \"gated\" or \"blended\""},
        {"GATING", "[\"gated\", \"none\"]", "one entry per dilation (3)"},
        {"secondary_activation", "\"Nope\"", "unknown"},
        {"gated", "1", "must be true or false"},
        {"input_size", "2", "must be 1 (the channels of the WaveNet's input)"},
        {"condition_size", "3", "must be 1 (the condition is the WaveNet's input)"},
    };
    char a[CVD_ERR_MSG_MAX], b[CVD_ERR_MSG_MAX];
    int ra, rb;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        both_spellings(bad[i].key, bad[i].value, a, b, sizeof a, &ra, &rb);
        cr_expect_lt(ra, 0, "%s=%s: the .nam loaded", bad[i].key, bad[i].value);
        cr_expect_lt(rb, 0, "%s=%s: convd's JSON loaded", bad[i].key, bad[i].value);
        const char *pa = strstr(a, "config.layers[0]."), *pb = strstr(b, "wavenet.");
        cr_expect(pa && pb, "%s=%s: paths missing: %s | %s", bad[i].key, bad[i].value, a, b);
        if (pa && pb) {
            const int gating = strcmp(bad[i].key, "GATING") == 0; /* spelt differently */
            pa += strlen("config.layers[0].") + (gating ? strlen("gating_mode") : 0);
            pb += strlen("wavenet.") + (gating ? strlen("gating") : 0);
            cr_expect_str_eq(pa, pb, "%s=%s: the two spellings disagree", bad[i].key, bad[i].value);
            cr_expect_not_null(strstr(pa, bad[i].reason), "%s=%s: want \"%s\": %s", bad[i].key,
                               bad[i].value, bad[i].reason, a);
        }
    }
    /* accepted by both: the .nam then wants its weights, convd's JSON seeds them */
    static const struct {
        const char *key, *value;
    } good[] = {
        {"secondary_activation", "null"},
        {"secondary_activation", "[null, \"Sigmoid\", null]"},
        {"activation", "{\"type\": \"LeakyReLU\", \"negative_slopes\": [0.2]}"},
        {"activation", "{\"type\": \"PReLU\", \"negative_slopes\": [0.1, 0.2, 0.3, 0.4]}"},
        {"activation", "{\"type\": \"Hardtanh\", \"min_val\": -1, \"max_val\": 1}"},
        {"activation", "{\"type\": \"LeakyHardTanh\", \"min_slope\": 0.1}"},
        {"kernel_size", "[1, 2, 3]"},
        {"GATING", "[\"gated\", \"blended\", \"none\"]"},
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        both_spellings(good[i].key, good[i].value, a, b, sizeof a, &ra, &rb);
        cr_expect(ra < 0 && strstr(a, "weights: 0 values given, the configuration needs"),
                  "%s=%s: the .nam's config was refused: %s", good[i].key, good[i].value, a);
        cr_expect_eq(rb, 0, "%s=%s: convd's JSON refused: %s", good[i].key, good[i].value, b);
    }
}
