/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_resample.c - sample-rate conversion and chains.
 *
 * A log sweep (20 Hz..20 kHz, faded in and out) through a model at 48 kHz from a stream at
 * 44.1, 88.2 and 96 kHz (and a 44.1 kHz model from a 48 kHz stream) and back comes out
 * within -90 dB of the input; 48 kHz against 48 kHz is exact (no resampler). The fixed mode
 * for audio callbacks gives exactly n frames for n, and the delay measured on its output (the
 * sweep's cross-correlation peak) is the latency it reports. Streams equal whatever the
 * block sizes; nothing allocates after create. Chains of models equal the models run one
 * after another.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "alloc_count.h"
#include "convd_dsp.h"
#include "testutil.h"

/* A model whose output is its input (a 1x1 Conv1D of weight 1), declaring `rate`. */
static cvd_model *identity_model(double rate, int channels)
{
    cvd_model *m = NULL;
    cvd_err err = {0};
    cvd_conv_config c;
    cr_assert_eq(cvd_model_create(channels, &m, &err), CVD_OK);
    cvd_conv_config_init(&c, CVD_CONV1D);
    c.filters = channels;
    c.kernel_size = 1;
    c.use_bias = 0;
    int node = cvd_model_add_conv(m, "id", &c, 0, &err);
    cr_assert_gt(node, 0, "%s", err.msg);
    float *w = calloc((size_t)channels * channels, sizeof(float));
    for (int i = 0; i < channels; i++)
        w[i * channels + i] = 1.0f;
    cr_assert_eq(cvd_model_set_var(m, node, 0, w, (size_t)channels * channels, &err), CVD_OK);
    free(w);
    cvd_model_set_sample_rate(m, rate);
    return m;
}

/* A causal Conv1D 1 -> 1 of k random taps (with bias), declaring `rate`. */
static cvd_model *fir_model(double rate, int k, uint64_t seed)
{
    cvd_model *m = NULL;
    cvd_err err = {0};
    cvd_conv_config c;
    cr_assert_eq(cvd_model_create(1, &m, &err), CVD_OK);
    cvd_conv_config_init(&c, CVD_CONV1D);
    c.filters = 1;
    c.kernel_size = k;
    c.padding = CVD_PAD_CAUSAL;
    c.activation = CVD_ACT_TANH;
    int node = cvd_model_add_conv(m, "fir", &c, 0, &err);
    cr_assert_gt(node, 0, "%s", err.msg);
    cvd_model_init_weights(m, seed);
    cvd_model_set_sample_rate(m, rate);
    return m;
}

/* A log sweep from 20 Hz to 20 kHz of `secs` at `rate`, amplitude 0.5, with 50 ms raised
 * cosine fades, after `pre` frames of silence and before `post`. */
static float *sweep(double rate, double secs, long pre, long post, long *n)
{
    const long len = (long)(secs * rate);
    const double f0 = 20, f1 = 20000, K = secs / log(f1 / f0), fade = 0.05 * rate;
    *n = pre + len + post;
    float *x = calloc((size_t)*n, sizeof(float));
    for (long i = 0; i < len; i++) {
        double t = i / rate, w = 1;
        if (i < fade)
            w = 0.5 - 0.5 * cos(M_PI * i / fade);
        if (i > len - fade)
            w = 0.5 - 0.5 * cos(M_PI * (len - i) / fade);
        x[pre + i] = (float)(0.5 * w * sin(2 * M_PI * f0 * K * (exp(t / K) - 1)));
    }
    return x;
}

static cvd_chain *chain_of(cvd_model **models, int n, double rate, int max_block, int fixed)
{
    cvd_chain *c = NULL;
    cvd_err err = {0};
    cvd_chain_config cfg = {.rate = rate, .max_block = max_block, .fixed = fixed};
    cr_assert_eq(cvd_chain_create(models, NULL, n, &cfg, &c, &err), CVD_OK, "%s", err.msg);
    return c;
}

/* Variable mode: x through the chain in random blocks, then the flush. */
static float *run_chain(cvd_chain *c, const float *x, long n, cvd_rng *r, int block, long *nout)
{
    const int ci = cvd_chain_in_channels(c), co = cvd_chain_out_channels(c);
    const int mb = cvd_chain_max_block(c), mo = cvd_chain_max_out(c);
    float *y = malloc(sizeof(float) * (size_t)(3 * n + 4 * mo + 64) * co);
    long got = 0;
    int no;
    for (long i = 0; i < n;) {
        int b = block ? block : 1 + (int)tu_randint(r, (uint64_t)mb);
        if (b > n - i)
            b = (int)(n - i);
        cr_assert_eq(cvd_chain_process(c, x + i * ci, b, y + got * co, &no), CVD_OK);
        cr_assert_leq(no, mo);
        got += no;
        i += b;
    }
    int more;
    do {
        more = cvd_chain_flush(c, y + got * co, &no);
        cr_assert_leq(no, mo);
        got += no;
    } while (more == 1);
    *nout = got;
    return y;
}

/* max |y[i + delay] - x[i]| over the frames of x, in dB of the sweep's amplitude (0.5) */
static double error_db(const float *x, long n, const float *y, long ny, long delay)
{
    double e = 0;
    for (long i = 0; i < n; i++) {
        double v = i + delay < ny ? y[i + delay] : 0;
        e = fmax(e, fabs(v - x[i]));
    }
    return 20 * log10(e / 0.5 + 1e-30);
}

static void round_trip(double stream_rate, double model_rate)
{
    long n, ny;
    cvd_rng r;
    cvd_rng_seed(&r, tu_seed());
    float *x = sweep(stream_rate, 1.5, 2000, 2000, &n);
    cvd_model *m = identity_model(model_rate, 1);
    cvd_chain *c = chain_of(&m, 1, stream_rate, 512, 0);
    cr_assert_eq(cvd_chain_resamples(c), stream_rate == model_rate ? 0 : 2);
    float *y = run_chain(c, x, n, &r, 0, &ny);
    cr_assert_geq(ny, n, "%g Hz: %ld frames out for %ld in", stream_rate, ny, n);
    cr_assert_leq(ny, n + 2);
    double db = error_db(x, n, y, ny, 0);
    cr_log_info("sweep %g -> %g -> %g Hz: max error %.1f dB", stream_rate, model_rate, stream_rate,
                db);
    if (stream_rate == model_rate)
        cr_assert(memcmp(x, y, sizeof(float) * (size_t)n) == 0, "not resampled, yet changed");
    else
        cr_assert_lt(db, -90.0, "%g -> %g -> %g Hz: the sweep is off by %.1f dB", stream_rate,
                     model_rate, stream_rate, db);
    free(x);
    free(y);
    cvd_chain_destroy(c);
    cvd_model_unref(m);
}

Test(resample, sweep_round_trip_44k1)
{
    round_trip(44100, 48000);
}
Test(resample, sweep_round_trip_48k_through_44k1)
{
    round_trip(48000, 44100);
}
Test(resample, sweep_round_trip_88k2)
{
    round_trip(88200, 48000);
}
Test(resample, sweep_round_trip_96k)
{
    round_trip(96000, 48000);
}
Test(resample, same_rate_is_untouched)
{
    round_trip(48000, 48000);
}

/* The fixed mode: n frames out for n in, the input delayed by the reported latency. */
static void fixed_delay(double stream_rate, int block)
{
    long n;
    float *x = sweep(stream_rate, 1.0, 1000, 3000, &n);
    cvd_model *m = identity_model(48000, 1);
    cvd_chain *c = chain_of(&m, 1, stream_rate, block, 1);
    const int L = cvd_chain_fixed_latency(c);
    float *y = calloc((size_t)n, sizeof(float));
    for (long i = 0; i + block <= n; i += block)
        cvd_chain_process_fixed(c, x + i, block, y + i);
    const long used = n / block * block;
    cr_assert_eq(cvd_chain_underruns(c), 0);
    /* the delay, measured: the cross-correlation peak over 0..4L */
    long best = -1;
    double bc = -1;
    for (long d = 0; d <= 4 * L + 8; d++) {
        double s = 0;
        for (long i = 0; i + d < used; i += 3)
            s += (double)x[i] * y[i + d];
        if (s > bc) {
            bc = s;
            best = d;
        }
    }
    double db = error_db(x, used - L, y, used, L);
    cr_log_info("fixed %g Hz, blocks of %d: latency %d frames reported, %ld measured; "
                "error %.1f dB",
                stream_rate, block, L, best, db);
    cr_assert_eq(best, L, "%g Hz, blocks of %d: reported latency %d, measured delay %ld",
                 stream_rate, block, L, best);
    if (stream_rate != 48000) {
        cr_assert_gt(L, 0);
        cr_assert_lt(db, -90.0, "%g Hz: %.1f dB", stream_rate, db);
    } else {
        cr_assert_eq(L, 0);
    }
    /* the frames before the latency are silence */
    for (int i = 0; i < L && i < used; i++)
        cr_assert_eq(y[i], 0.0f);
    free(x);
    free(y);
    cvd_chain_destroy(c);
    cvd_model_unref(m);
}

Test(resample, fixed_latency_is_the_measured_delay)
{
    static const double rates[] = {44100, 48000, 88200, 96000};
    static const int blocks[] = {64, 1, 256};
    for (size_t i = 0; i < sizeof rates / sizeof rates[0]; i++)
        for (size_t b = 0; b < sizeof blocks / sizeof blocks[0]; b++)
            if (blocks[b] != 1 || rates[i] == 44100) /* block 1: one rate, it is slow */
                fixed_delay(rates[i], blocks[b]);
}

Test(resample, stream_equals_offline)
{
    /* one call with the whole input against random blocks, and the frame count */
    static const double ratios[][2] = {
        {44100, 48000}, {48000, 44100}, {96000, 48000}, {22050, 48000}};
    cvd_rng r;
    cvd_rng_seed(&r, tu_seed());
    for (size_t k = 0; k < sizeof ratios / sizeof ratios[0]; k++) {
        const int ch = 1 + (int)k % 2;
        const long n = 20011;
        float *x = malloc(sizeof(float) * (size_t)n * ch);
        for (long i = 0; i < n * ch; i++)
            x[i] = (float)(cvd_rng_uniform(&r) - 0.5);
        float *y[2];
        long ny[2];
        for (int pass = 0; pass < 2; pass++) {
            cvd_resampler *rs = NULL;
            cvd_err err = {0};
            const int mb = pass ? 700 : (int)n;
            cr_assert_eq(cvd_resampler_create(ratios[k][0], ratios[k][1], ch, mb, &rs, &err),
                         CVD_OK, "%s", err.msg);
            const int mo = cvd_resampler_max_out(rs);
            y[pass] = malloc(sizeof(float) * (size_t)(3 * n + mo) * ch);
            long got = 0;
            int no;
            for (long i = 0; i < n;) {
                int b = pass ? 1 + (int)tu_randint(&r, 700) : (int)n;
                if (b > n - i)
                    b = (int)(n - i);
                cr_assert_eq(cvd_resampler_process(rs, x + i * ch, b, y[pass] + got * ch, &no),
                             CVD_OK);
                cr_assert_leq(no, mo);
                got += no;
                i += b;
            }
            while (cvd_resampler_flush(rs, y[pass] + got * ch, &no) == 1) {
                cr_assert_leq(no, mo);
                got += no;
            }
            got += no;
            ny[pass] = got;
            long want = (n * (long)ratios[k][1] + (long)ratios[k][0] - 1) / (long)ratios[k][0];
            cr_assert_eq(got, want, "%g -> %g: %ld frames for %ld, want ceil(n ratio) = %ld",
                         ratios[k][0], ratios[k][1], got, n, want);
            cr_assert_eq(cvd_resampler_process(rs, x, 1, y[pass], &no), CVD_ESTATE);
            cvd_resampler_destroy(rs);
        }
        cr_assert_eq(ny[0], ny[1]);
        cr_assert(memcmp(y[0], y[1], sizeof(float) * (size_t)ny[0] * ch) == 0,
                  "%g -> %g Hz: blocks change the output", ratios[k][0], ratios[k][1]);
        free(y[0]);
        free(y[1]);
        free(x);
    }
}

Test(resample, latency_bounds_what_is_held_back)
{
    cvd_resampler *rs = NULL;
    cr_assert_eq(cvd_resampler_create(44100, 48000, 1, 64, &rs, NULL), CVD_OK);
    const int L = cvd_resampler_latency(rs);
    cr_assert(L > 50 && L < 400, "latency %d", L);
    float x[64] = {0}, y[256];
    long n = 0, got = 0, worst = 0;
    cvd_rng r;
    cvd_rng_seed(&r, 2);
    for (int i = 0; i < 2000; i++) {
        int b = 1 + (int)tu_randint(&r, 64), no;
        cvd_resampler_process(rs, x, b, y, &no);
        n += b;
        got += no;
        long owed = (n * 48000 + 44099) / 44100 - got;
        worst = owed > worst ? owed : worst;
    }
    cr_assert_leq(worst, L, "held back %ld frames, reported %d", worst, L);
    cr_assert_geq(worst, L - 2);
    cvd_resampler_destroy(rs);
}

Test(resample, no_allocation_while_streaming)
{
    cvd_model *m = fir_model(48000, 300, 4);
    cvd_chain *cv = chain_of(&m, 1, 44100, 256, 0), *cf = chain_of(&m, 1, 96000, 256, 1);
    float *x = calloc(256, sizeof(float)), *y = malloc(sizeof(float) * 4096);
    cvd_rng r;
    cvd_rng_seed(&r, 1);
    for (int i = 0; i < 256; i++)
        x[i] = (float)(cvd_rng_uniform(&r) - 0.5);
    int no;
    const long a0 = alloc_count(), t0 = alloc_count_thread();
    for (int pass = 0; pass < 2; pass++) {
        for (int i = 0; i < 400; i++) {
            int b = 1 + (int)tu_randint(&r, 256);
            cvd_chain_process(cv, x, b, y, &no);
            cvd_chain_process_fixed(cf, x, b, y);
        }
        while (cvd_chain_flush(cv, y, &no) == 1)
            ;
        cvd_chain_reset(cv);
        cvd_chain_reset(cf);
    }
    cr_assert_eq(alloc_count(), a0, "%ld allocations", alloc_count() - a0);
    if (t0 >= 0)
        cr_assert_eq(alloc_count_thread(), t0, "%ld allocations (libsamplerate included)",
                     alloc_count_thread() - t0);
    free(x);
    free(y);
    cvd_chain_destroy(cv);
    cvd_chain_destroy(cf);
    cvd_model_unref(m);
}

Test(chain, models_in_order_equal_one_after_another)
{
    cvd_model *a = fir_model(48000, 40, 1), *b = fir_model(48000, 700, 2);
    cvd_model *ms[2] = {a, b};
    cvd_rng r;
    cvd_rng_seed(&r, tu_seed());
    const long n = 9000;
    float *x = malloc(sizeof(float) * n);
    for (long i = 0; i < n; i++)
        x[i] = (float)(cvd_rng_uniform(&r) - 0.5);
    cvd_chain *c = chain_of(ms, 2, 48000, 128, 0);
    cr_assert_eq(cvd_chain_resamples(c), 0);
    long ny;
    float *y = run_chain(c, x, n, &r, 0, &ny);
    /* the same through the two models' offline forwards */
    float *h, *z;
    long nh, nz;
    cr_assert_eq(cvd_model_forward(a, x, n, &h, &nh, NULL), CVD_OK);
    cr_assert_eq(cvd_model_forward(b, h, nh, &z, &nz, NULL), CVD_OK);
    cr_assert_eq(ny, nz);
    double e = 0;
    for (long i = 0; i < nz; i++)
        e = fmax(e, fabs((double)y[i] - z[i]));
    cr_assert_lt(e, 1e-5, "chain vs the models one after another: %g", e);
    /* the latencies add: both causal, 0 */
    cr_assert_eq(cvd_chain_latency(c), 0.0);
    free(x);
    free(y);
    free(h);
    free(z);
    cvd_chain_destroy(c);
    cvd_model_unref(a);
    cvd_model_unref(b);
}

Test(chain, rates_assumed_and_errors)
{
    cvd_err err = {0};
    cvd_chain *c = NULL;
    cvd_model *none = identity_model(0, 1), *m48 = identity_model(48000, 1);
    cvd_model *two = identity_model(48000, 2);
    /* no declared rate: the stream's is assumed, and said */
    cvd_chain_config cfg = {.rate = 44100, .max_block = 64};
    cr_assert_eq(cvd_chain_create(&none, NULL, 1, &cfg, &c, &err), CVD_OK);
    int assumed = 0;
    cr_assert_eq(cvd_chain_model_rate(c, 0, &assumed), 44100);
    cr_assert_eq(assumed, 1);
    cr_assert_eq(cvd_chain_resamples(c), 0);
    cvd_chain_destroy(c);
    /* after a declared one: that rate */
    cvd_model *ms[2] = {m48, none};
    cr_assert_eq(cvd_chain_create(ms, NULL, 2, &cfg, &c, &err), CVD_OK);
    cr_assert_eq(cvd_chain_model_rate(c, 1, &assumed), 48000);
    cr_assert_eq(assumed, 1);
    cr_assert_eq(cvd_chain_resamples(c), 2);
    char d[256];
    cvd_chain_describe(c, d, sizeof d);
    cr_assert(strstr(d, "resample 44100 -> 48000 Hz") != NULL, "%s", d);
    cvd_chain_destroy(c);
    /* channels that do not meet */
    const char *names[] = {"amp", "cab"};
    cvd_model *bad[2] = {m48, two};
    cr_assert_lt(cvd_chain_create(bad, names, 2, &cfg, &c, &err), 0);
    cr_assert_null(c);
    cr_assert(strstr(err.msg, "'cab' takes 2 channels, but 'amp' gives 1") != NULL, "%s", err.msg);
    cfg.rate = 5;
    cr_assert_lt(cvd_chain_create(&m48, NULL, 1, &cfg, &c, &err), 0);
    cr_assert(strstr(err.msg, "rate 5 Hz") != NULL, "%s", err.msg);
    cr_assert_lt(cvd_resampler_create(48000, 0, 1, 64, &(cvd_resampler *){NULL}, &err), 0);
    cvd_model_unref(none);
    cvd_model_unref(m48);
    cvd_model_unref(two);
}
