/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_run_chain.c - convd-run with chains of models and sample rates.
 *
 * MODEL as a comma-separated list runs the models in order (an amp, then a cabinet IR):
 * convd-run's output equals the library's chain (cvd_chain) bit for bit; a file at another
 * rate than the model's is resampled there and back (the same frames out as in, at the
 * file's rate); --rate gives the rate of raw input, --model-rate the rate of a model that
 * declares none (said once on standard error), --ir-normalize chooses the IR's scaling;
 * conflicts and bad values are refused with the file named.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <sndfile.h>
#include <stdlib.h>
#include <string.h>

#include "convd_dsp.h"
#include "convd_model.h"
#include "daemon_util.h"

#define AMP "tests/data/nam/nano_tanh.nam" /* 48 kHz, 1 -> 1 */
#define INPUT "tests/data/nam/input_4k.f32"

static void setup(void)
{
    du_tmp_make();
}

static void teardown(void)
{
    du_tmp_remove();
}

TestSuite(run_chain, .init = setup, .fini = teardown);

static void write_audio(const char *path, const float *x, long frames, int channels, int rate)
{
    SF_INFO si = {0};
    si.samplerate = rate;
    si.channels = channels;
    si.format = SF_FORMAT_WAV | SF_FORMAT_FLOAT;
    SNDFILE *s = sf_open(path, SFM_WRITE, &si);
    cr_assert_not_null(s, "%s: %s", path, sf_strerror(NULL));
    cr_assert_eq(sf_writef_float(s, x, frames), frames);
    cr_assert_eq(sf_close(s), 0);
}

static float *read_audio(const char *path, long *frames, int *rate)
{
    SF_INFO si = {0};
    SNDFILE *s = sf_open(path, SFM_READ, &si);
    cr_assert_not_null(s, "%s: %s", path, sf_strerror(NULL));
    float *y = malloc(sizeof(float) * (size_t)(si.frames * si.channels + 1));
    cr_assert_eq(sf_readf_float(s, y, si.frames), si.frames);
    sf_close(s);
    *frames = (long)si.frames;
    *rate = si.samplerate;
    return y;
}

/* A 30 ms cabinet-like response at `rate`. */
static void write_cab(const char *path, int rate, int channels)
{
    const long n = rate * 3 / 100;
    float *h = malloc(sizeof(float) * (size_t)n * channels);
    for (long i = 0; i < n; i++)
        for (int c = 0; c < channels; c++) {
            double t = (double)i / rate;
            h[i * channels + c] = (float)(0.4 * exp(-t / 0.005) * (1 - exp(-t / 0.0003)) *
                                          sin(2 * M_PI * (180 + 50 * c) * t));
        }
    write_audio(path, h, n, channels, rate);
    free(h);
}

static float *input_4k(long *n)
{
    size_t len = 0;
    char *b = du_read_file(INPUT, &len);
    cr_assert_not_null(b);
    *n = (long)(len / sizeof(float));
    return (float *)b;
}

/* The library's chain of `models` at `rate`, streamed in blocks of 64 and flushed, cut to n
 * frames when resampled (as convd-run writes it). */
static float *library_chain(cvd_model **models, int count, double rate, const float *x, long n,
                            long *n_out)
{
    cvd_chain *c = NULL;
    cvd_err err = {0};
    cvd_chain_config cfg = {.rate = rate, .max_block = 64};
    cr_assert_eq(cvd_chain_create(models, NULL, count, &cfg, &c, &err), CVD_OK, "%s", err.msg);
    const int F = cvd_chain_out_channels(c);
    float *y = malloc(sizeof(float) * (size_t)(n + 4 * cvd_chain_max_out(c)) * F);
    long got = 0;
    int no;
    for (long i = 0; i < n; i += 64) {
        int b = n - i < 64 ? (int)(n - i) : 64;
        cr_assert_eq(cvd_chain_process(c, x + i, b, y + got * F, &no), CVD_OK);
        got += no;
    }
    int more;
    do {
        more = cvd_chain_flush(c, y + got * F, &no);
        got += no;
    } while (more == 1);
    if (cvd_chain_resamples(c) && got > n)
        got = n;
    *n_out = got;
    cvd_chain_destroy(c);
    return y;
}

static cvd_model *load(const char *path)
{
    cvd_model *m = NULL;
    cvd_err err = {0};
    cr_assert_eq(cvd_model_load(path, &m, &err), CVD_OK, "%s", err.msg);
    return m;
}

static cvd_model *load_ir(const char *path, double rate, int normalize)
{
    cvd_model *m = NULL;
    cvd_err err = {0};
    cvd_ir_options o;
    cvd_ir_options_init(&o);
    o.rate = rate;
    o.normalize = normalize;
    cr_assert_eq(cvd_ir_load(path, &o, &m, &err), CVD_OK, "%s", err.msg);
    return m;
}

Test(run_chain, amp_then_cab_equals_the_library_chain)
{
    long n, ny, nr;
    int rate;
    float *x = input_4k(&n);
    const char *cab = du_tmp("cab44.wav"), *in = du_tmp("in.wav"), *out = du_tmp("out.wav");
    write_cab(cab, 44100, 1); /* resampled to the amp's 48 kHz at load */
    write_audio(in, x, n, 1, 48000);
    char list[2 * DU_PATH];
    snprintf(list, sizeof list, "%s,%s", du_src(AMP), cab);
    const char *argv[] = {du_prog("convd-run"), list, in, out, NULL};
    du_proc p = du_run(argv, 60);
    cr_assert_eq(p.status, 0, "%s", p.err);
    cr_assert(strstr(p.err, "4096 frames in, 4096 out"), "%s", p.err);
    float *y = read_audio(out, &ny, &rate);
    cr_assert_eq(rate, 48000);
    cvd_model *ms[2] = {load(AMP), load_ir(cab, 48000, 1)};
    float *ref = library_chain(ms, 2, 48000, x, n, &nr);
    cr_assert_eq(ny, nr);
    cr_assert(memcmp(y, ref, sizeof(float) * (size_t)n) == 0,
              "convd-run's chain differs from cvd_chain's");
    /* and as recorded */
    const char *argv2[] = {du_prog("convd-run"), list, in, out, "--ir-normalize", "no", "-q", NULL};
    du_proc_free(&p);
    p = du_run(argv2, 60);
    cr_assert_eq(p.status, 0, "%s", p.err);
    free(y);
    y = read_audio(out, &ny, &rate);
    cvd_model_unref(ms[1]);
    ms[1] = load_ir(cab, 48000, 0);
    free(ref);
    ref = library_chain(ms, 2, 48000, x, n, &nr);
    cr_assert(memcmp(y, ref, sizeof(float) * (size_t)n) == 0, "--ir-normalize no");
    free(x), free(y), free(ref);
    cvd_model_unref(ms[0]);
    cvd_model_unref(ms[1]);
    du_proc_free(&p);
}

Test(run_chain, another_rate_is_resampled_there_and_back)
{
    long n, ny, nr;
    int rate;
    float *x = input_4k(&n);
    const char *in = du_tmp("in44.wav"), *out = du_tmp("out44.wav");
    write_audio(in, x, n, 1, 44100);
    const char *argv[] = {du_prog("convd-run"), du_src(AMP), in, out, NULL};
    du_proc p = du_run(argv, 60);
    cr_assert_eq(p.status, 0, "%s", p.err);
    cr_assert(strstr(p.err, "resample 44100 -> 48000 Hz"), "%s", p.err);
    cr_assert(strstr(p.err, "resample 48000 -> 44100 Hz"), "%s", p.err);
    cr_assert(strstr(p.err, "4096 frames in, 4096 out"), "%s", p.err);
    float *y = read_audio(out, &ny, &rate);
    cr_assert_eq(rate, 44100, "the output is at the input's rate");
    cr_assert_eq(ny, n);
    cvd_model *m = load(AMP);
    float *ref = library_chain(&m, 1, 44100, x, n, &nr);
    cr_assert_eq(nr, n);
    cr_assert(memcmp(y, ref, sizeof(float) * (size_t)n) == 0, "differs from cvd_chain's");
    free(x), free(y), free(ref);
    cvd_model_unref(m);
    du_proc_free(&p);
}

Test(run_chain, undeclared_rate_said_and_given)
{
    /* the amp without its sample_rate: run at the input's rate, and said */
    size_t len;
    char *text = du_read_file(AMP, &len);
    cr_assert_not_null(text);
    char *k = strstr(text, "\"sample_rate\"");
    cr_assert_not_null(k);
    memcpy(k, "\"sample_ratX\"", 13); /* an unknown key NAM ignores: no rate declared */
    const char *amp = du_tmp("norate.nam");
    FILE *f = fopen(amp, "w");
    fwrite(text, 1, len, f);
    fclose(f);
    free(text);
    const char *out = du_tmp("o.f32");
    const char *argv[] = {du_prog("convd-run"), amp, du_src(INPUT), out, "--rate", "44100", NULL};
    du_proc p = du_run(argv, 60);
    cr_assert_eq(p.status, 0, "%s", p.err);
    cr_assert(strstr(p.err, "norate.nam declares no sample rate: it runs at 44100 Hz, the rate "
                            "of the input"),
              "%s", p.err);
    cr_assert_null(strstr(p.err, "resample"), "%s", p.err);
    cr_assert(strstr(p.err, "at 44100 Hz"), "%s", p.err);
    du_proc_free(&p);
    /* --model-rate: resampled to it, and nothing assumed */
    const char *argv2[] = {du_prog("convd-run"), amp,     du_src(INPUT), out, "--rate", "44100",
                           "--model-rate",       "48000", NULL};
    p = du_run(argv2, 60);
    cr_assert_eq(p.status, 0, "%s", p.err);
    cr_assert_null(strstr(p.err, "declares no sample rate"), "%s", p.err);
    cr_assert(strstr(p.err, "resample 44100 -> 48000 Hz"), "%s", p.err);
    du_proc_free(&p);
}

Test(run_chain, refusals)
{
    const char *in = du_tmp("in44.wav"), *out = du_tmp("o.wav");
    float x[64] = {0};
    write_audio(in, x, 64, 1, 44100);
    /* the header's rate against --rate */
    const char *a1[] = {du_prog("convd-run"), du_src(AMP), in, out, "--rate", "48000", NULL};
    du_proc p = du_run(a1, 60);
    cr_assert_eq(p.status, 1, "%s", p.err);
    cr_assert(strstr(p.err, "in44.wav: 44100 Hz in its header, --rate says 48000 Hz"), "%s", p.err);
    du_proc_free(&p);
    /* bad values: usage errors */
    const char *a2[] = {du_prog("convd-run"), du_src(AMP), in, out, "--rate", "fast", NULL};
    p = du_run(a2, 60);
    cr_assert_eq(p.status, 2);
    cr_assert(strstr(p.err, "--rate fast: must be a sample rate"), "%s", p.err);
    du_proc_free(&p);
    const char *a3[] = {du_prog("convd-run"), du_src(AMP), in,  out,
                        "--ir-normalize",     "maybe",     NULL};
    p = du_run(a3, 60);
    cr_assert_eq(p.status, 2);
    cr_assert(strstr(p.err, "--ir-normalize maybe: must be yes or no"), "%s", p.err);
    du_proc_free(&p);
    /* a stereo IR first makes two channels; the amp takes one */
    const char *cab = du_tmp("st.wav");
    write_cab(cab, 48000, 2);
    char list[2 * DU_PATH];
    snprintf(list, sizeof list, "%s,%s", cab, du_src(AMP));
    const char *a4[] = {du_prog("convd-run"), list, in, out, NULL};
    p = du_run(a4, 60);
    cr_assert_eq(p.status, 1, "%s", p.err);
    cr_assert(strstr(p.err, "takes 1 channels, but") && strstr(p.err, "st.wav' gives 2"), "%s",
              p.err);
    du_proc_free(&p);
    /* a missing model of the list is named */
    snprintf(list, sizeof list, "%s,%s", du_src(AMP), du_tmp("none.wav"));
    const char *a5[] = {du_prog("convd-run"), list, in, out, NULL};
    p = du_run(a5, 60);
    cr_assert_eq(p.status, 1);
    cr_assert(strstr(p.err, "none.wav"), "%s", p.err);
    du_proc_free(&p);
}

Test(run_chain, offline_equals_streamed)
{
    long n, n1, n2;
    int rate;
    float *x = input_4k(&n);
    const char *in = du_tmp("in.wav"), *cab = du_tmp("cab.wav");
    const char *o1 = du_tmp("s.wav"), *o2 = du_tmp("o.wav");
    write_audio(in, x, n, 1, 44100);
    write_cab(cab, 48000, 1);
    char list[2 * DU_PATH];
    snprintf(list, sizeof list, "%s,%s", du_src(AMP), cab);
    const char *a1[] = {du_prog("convd-run"), list, in, o1, "-q", "--block", "17", NULL};
    const char *a2[] = {du_prog("convd-run"), list, in, o2, "-q", "--offline", NULL};
    du_proc p = du_run(a1, 60), q = du_run(a2, 60);
    cr_assert_eq(p.status, 0, "%s", p.err);
    cr_assert_eq(q.status, 0, "%s", q.err);
    float *y1 = read_audio(o1, &n1, &rate), *y2 = read_audio(o2, &n2, &rate);
    cr_assert_eq(n1, n);
    cr_assert_eq(n2, n);
    double e = 0;
    for (long i = 0; i < n; i++)
        e = fmax(e, fabs((double)y1[i] - y2[i]));
    cr_assert_lt(e, 1e-5, "offline vs streamed: %g", e);
    free(x), free(y1), free(y2);
    du_proc_free(&p);
    du_proc_free(&q);
}

static float *read_f32(const char *path, long *n)
{
    size_t len = 0;
    char *b = du_read_file(path, &len);
    cr_assert_not_null(b, "%s", path);
    *n = (long)(len / sizeof(float));
    return (float *)b;
}

/* The level options, named as the daemon's config names them (input_gain_db, output_gain_db,
 * normalize, input_level_dbu, limit): convd-run's output equals the library's chain with
 * NAM's gains (dsp/levels.c) and the limiter applied around it. */
Test(run_chain, levels_as_the_daemon_names_them)
{
    long n, ny, nr;
    float *x = input_4k(&n);
    const char *out = du_tmp("lv.f32");
    /* +6 dB in; -3 dB out plus normalize: nano_tanh's loudness is -20 dB, so +2 dB */
    const char *a1[] = {
        du_prog("convd-run"),  du_src(AMP),   du_src(INPUT), out, "--input-gain-db", "6",
        "--output-gain-db=-3", "--normalize", NULL};
    du_proc p = du_run(a1, 60);
    cr_assert_eq(p.status, 0, "%s", p.err);
    cr_assert(strstr(p.err, "levels: input +6.00 dB, output -1.00 dB (+2.00 dB: loudness -20 dB "
                            "to -18 dB)"),
              "%s", p.err);
    float *y = read_f32(out, &ny);
    cvd_model *m = load(AMP);
    float *xs = malloc(sizeof(float) * (size_t)n);
    memcpy(xs, x, sizeof(float) * (size_t)n);
    cvd_gain_apply(xs, (size_t)n, cvd_db_to_gain(6.0));
    float *ref = library_chain(&m, 1, 48000, xs, n, &nr);
    cvd_gain_apply(ref, (size_t)nr, cvd_db_to_gain(-1.0));
    cr_assert_eq(ny, nr);
    cr_assert(memcmp(y, ref, sizeof(float) * (size_t)nr) == 0, "gains differ from the library's");
    free(y), free(ref);
    du_proc_free(&p);

    /* the limiter: 30 dB too loud, held under -1 dBFS, as cvd_limiter does it */
    const char *a2[] = {du_prog("convd-run"),
                        du_src(AMP),
                        du_src(INPUT),
                        out,
                        "--output-gain-db",
                        "30",
                        "--limit",
                        "yes",
                        NULL};
    p = du_run(a2, 60);
    cr_assert_eq(p.status, 0, "%s", p.err);
    cr_assert(strstr(p.err, "limiter at -1 dBFS"), "%s", p.err);
    y = read_f32(out, &ny);
    ref = library_chain(&m, 1, 48000, x, n, &nr);
    cvd_gain_apply(ref, (size_t)nr, cvd_db_to_gain(30.0));
    double peak_in = 0, peak = 0;
    for (long i = 0; i < nr; i++)
        peak_in = fmax(peak_in, fabs(ref[i]));
    cvd_limiter lim;
    cvd_limiter_init(&lim, 48000, CVD_LIMITER_CEILING_DB, CVD_LIMITER_RELEASE_MS);
    cvd_limiter_process(&lim, ref, (int)nr, 1);
    cr_assert_eq(ny, nr);
    for (long i = 0; i < nr; i++) {
        peak = fmax(peak, fabs(y[i]));
        cr_assert_float_eq(y[i], ref[i], 1e-6, "frame %ld: %g, the limiter gives %g", i, y[i],
                           ref[i]);
    }
    cr_assert_gt(peak_in, 1.0, "the test needs an output over full scale (%g)", peak_in);
    /* under the ceiling, to float rounding */
    cr_assert_leq(peak, pow(10, -1 / 20.0) * (1 + 1e-6), "limited output peaks at %.9g", peak);
    free(y), free(ref);
    du_proc_free(&p);

    /* the input level: the capture's 6 dBu against an interface's 12 dBu is +6 dB in */
    size_t len;
    char *text = du_read_file(AMP, &len);
    char *k = strstr(text, "\"input_level_dbu\": null");
    cr_assert_not_null(k);
    memcpy(k, "\"input_level_dbu\": 6.00", 23);
    const char *amp = du_tmp("lvl.nam");
    FILE *f = fopen(amp, "w");
    fwrite(text, 1, len, f);
    fclose(f);
    free(text);
    const char *a3[] = {du_prog("convd-run"), amp,  du_src(INPUT), out,
                        "--input-level-dbu",  "12", NULL};
    p = du_run(a3, 60);
    cr_assert_eq(p.status, 0, "%s", p.err);
    cr_assert(strstr(p.err, "input +6.00 dB (+6.00 dB to the model's 6 dBu from 12 dBu)"), "%s",
              p.err);
    y = read_f32(out, &ny);
    ref = library_chain(&m, 1, 48000, xs, n, &nr);
    cr_assert(memcmp(y, ref, sizeof(float) * (size_t)nr) == 0, "calibrated input differs");
    free(y), free(ref);
    du_proc_free(&p);
    /* a model that declares none: said */
    const char *a4[] = {du_prog("convd-run"), du_src(AMP), du_src(INPUT), out,
                        "--input-level-dbu",  "12",        NULL};
    p = du_run(a4, 60);
    cr_assert_eq(p.status, 0, "%s", p.err);
    cr_assert(strstr(p.err, "nano_tanh.nam declares no input level"), "%s", p.err);
    du_proc_free(&p);

    /* bad values */
    const char *a5[] = {du_prog("convd-run"), du_src(AMP), du_src(INPUT), out,
                        "--input-gain-db",    "loud",      NULL};
    p = du_run(a5, 60);
    cr_assert_eq(p.status, 2);
    cr_assert(strstr(p.err, "--input-gain-db loud: must be a number"), "%s", p.err);
    du_proc_free(&p);
    const char *a6[] = {du_prog("convd-run"), du_src(AMP), du_src(INPUT), out,
                        "--limit=maybe",      NULL};
    p = du_run(a6, 60);
    cr_assert_eq(p.status, 2);
    cr_assert(strstr(p.err, "--limit=maybe: must be yes or no"), "%s", p.err);
    du_proc_free(&p);
    free(x), free(xs);
    cvd_model_unref(m);
}

/* The chain's latency is reported: the models' and the resamplers', added. */
Test(run_chain, latency_reported)
{
    const char *in = du_tmp("in44.wav"), *cab = du_tmp("cab.wav"), *out = du_tmp("o.wav");
    float x[256] = {0};
    write_audio(in, x, 256, 1, 44100);
    write_cab(cab, 48000, 1);
    char list[2 * DU_PATH];
    snprintf(list, sizeof list, "%s,%s", du_src(AMP), cab);
    const char *a[] = {du_prog("convd-run"), list, in, out, NULL};
    du_proc p = du_run(a, 60);
    cr_assert_eq(p.status, 0, "%s", p.err);
    cvd_model *ms[2] = {load(AMP), load_ir(cab, 48000, 1)};
    cvd_chain *c = NULL;
    cvd_err err = {0};
    cvd_chain_config cfg = {.rate = 44100, .max_block = 64};
    cr_assert_eq(cvd_chain_create(ms, NULL, 2, &cfg, &c, &err), CVD_OK, "%s", err.msg);
    char want[160];
    snprintf(want, sizeof want, "; latency %.0f frames (%.2f ms)", cvd_chain_latency(c),
             1e3 * cvd_chain_latency(c) / 44100);
    cr_assert_gt(cvd_chain_latency(c), 0);
    cr_assert(strstr(p.err, want), "no '%s' in:\n%s", want, p.err);
    cr_assert(strstr(p.err, "nano_tanh.nam at 48000 Hz -> ") &&
                  strstr(p.err, "cab.wav at 48000 Hz"),
              "%s", p.err);
    cvd_chain_destroy(c);
    cvd_model_unref(ms[0]);
    cvd_model_unref(ms[1]);
    du_proc_free(&p);
}
