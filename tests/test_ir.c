/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_ir.c - impulse responses from audio files (model/ir.c).
 *
 * WAV and FLAC files are written here with libsndfile; the loaded model's output for an
 * impulse is the response itself (as recorded, or normalised to unit energy), mono and
 * stereo, on one input channel or several; a response resampled at load keeps its frequency
 * response (magnitude at several frequencies, computed here by a DFT of both); the model
 * equals a direct convolution computed here in double; refusals name the file and say why.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <sndfile.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "convd_dsp.h"
#include "convd_model.h"
#include "testutil.h"

static char dir[] = "/tmp/convd-ir-XXXXXX";

static void setup(void)
{
    cr_assert_not_null(mkdtemp(dir));
}

static void teardown(void)
{
    tu_rm_tree(dir);
}

static const char *tmp(const char *name)
{
    static char buf[4][256];
    static int k;
    char *b = buf[k++ % 4];
    snprintf(b, 256, "%s/%s", dir, name);
    return b;
}

static void write_audio(const char *path, const float *x, long frames, int channels, int rate,
                        int format)
{
    SF_INFO si = {0};
    si.samplerate = rate;
    si.channels = channels;
    si.format = format;
    SNDFILE *s = sf_open(path, SFM_WRITE, &si);
    cr_assert_not_null(s, "%s: %s", path, sf_strerror(NULL));
    cr_assert_eq(sf_writef_float(s, x, frames), frames);
    cr_assert_eq(sf_close(s), 0);
}

/* A cabinet-like response: a decaying, ringing sum of sines, per channel. */
static float *cab_ir(long n, int channels, int rate)
{
    float *h = malloc(sizeof(float) * (size_t)n * channels);
    for (long i = 0; i < n; i++)
        for (int c = 0; c < channels; c++) {
            double t = (double)i / rate;
            h[i * channels + c] =
                (float)(0.3 * exp(-t / 0.004) * (1 - exp(-t / 0.0002)) *
                        (sin(2 * M_PI * (120 + 40 * c) * t) + 0.6 * sin(2 * M_PI * 2500 * t) +
                         0.3 * sin(2 * M_PI * (5200 - 300 * c) * t + 0.4)));
        }

    return h;
}

/* The model's streamed output for an impulse on input channel `in_ch` of `C`, n frames. */
static float *impulse_response(cvd_model *m, int C, int in_ch, long n)
{
    cvd_net *net = NULL;
    cvd_err err = {0};
    cr_assert_eq(cvd_net_create(m, 256, &net, &err), CVD_OK, "%s", err.msg);
    const int F = cvd_model_out_channels(m);
    float *x = calloc((size_t)n * C, sizeof(float)), *y = calloc((size_t)n * F + 1024, 4);
    x[in_ch] = 1.0f;
    long got = 0;
    int no;
    for (long i = 0; i < n; i += 256) {
        int b = n - i < 256 ? (int)(n - i) : 256;
        cr_assert_eq(cvd_net_process(net, x + i * C, b, y + got * F, &no), CVD_OK);
        got += no;
    }
    cr_assert_eq(got, n);
    free(x);
    cvd_net_destroy(net);
    return y;
}

static double energy(const float *h, long n, int stride, int c)
{
    double e = 0;
    for (long i = 0; i < n; i++)
        e += (double)h[i * stride + c] * h[i * stride + c];
    return e;
}

TestSuite(ir, .init = setup, .fini = teardown);

Test(ir, mono_as_recorded_and_normalised)
{
    const long n = 4800;
    float *h = cab_ir(n, 1, 48000);
    write_audio(tmp("cab.wav"), h, n, 1, 48000, SF_FORMAT_WAV | SF_FORMAT_FLOAT);
    cvd_ir_options o;
    cvd_ir_options_init(&o);
    cr_assert_eq(o.normalize, 1, "ir_normalize defaults to yes");
    o.normalize = 0;
    cvd_model *m = NULL;
    cvd_err err = {0};
    cr_assert_eq(cvd_ir_load(tmp("cab.wav"), &o, &m, &err), CVD_OK, "%s", err.msg);
    cr_assert_eq(cvd_model_in_channels(m), 1);
    cr_assert_eq(cvd_model_out_channels(m), 1);
    cr_assert_eq(cvd_model_sample_rate(m), 48000);
    cr_assert_eq(cvd_model_latency(m), 0, "a causal response adds no latency");
    cr_assert(strstr(cvd_model_description(m), "cab.wav") != NULL, "%s", cvd_model_description(m));
    float *y = impulse_response(m, 1, 0, n);
    for (long i = 0; i < n; i++)
        cr_assert_float_eq(y[i], h[i], 2e-6, "tap %ld: %g, the file has %g", i, (double)y[i],
                           (double)h[i]);
    free(y);
    cvd_model_unref(m);

    /* normalised: the same shape at unit energy (the default, and through cvd_model_load) */
    cr_assert_eq(cvd_model_load(tmp("cab.wav"), &m, &err), CVD_OK, "%s", err.msg);
    y = impulse_response(m, 1, 0, n);
    const double g = 1 / sqrt(energy(h, n, 1, 0));
    cr_assert_float_eq(energy(y, n, 1, 0), 1.0, 1e-4);
    for (long i = 0; i < n; i++)
        cr_assert_float_eq(y[i], h[i] * g, 2e-6, "tap %ld", i);
    cr_assert(strstr(cvd_model_description(m), "normalised") != NULL, "%s",
              cvd_model_description(m));
    free(y);
    cvd_model_unref(m);
    free(h);
}

Test(ir, stereo_and_multichannel)
{
    const long n = 2000;
    float *h = cab_ir(n, 2, 48000);
    write_audio(tmp("st.flac"), h, n, 2, 48000, SF_FORMAT_FLAC | SF_FORMAT_PCM_24);
    cvd_ir_options o;
    cvd_ir_options_init(&o);
    o.normalize = 0;
    cvd_model *m = NULL;
    cvd_err err = {0};
    /* a stereo IR on a mono input: stereo out, each side its response */
    cr_assert_eq(cvd_ir_load(tmp("st.flac"), &o, &m, &err), CVD_OK, "%s", err.msg);
    cr_assert_eq(cvd_model_in_channels(m), 1);
    cr_assert_eq(cvd_model_out_channels(m), 2);
    float *y = impulse_response(m, 1, 0, n);
    for (long i = 0; i < 2 * n; i++)
        cr_assert_float_eq(y[i], h[i], 1e-6, "value %ld (24-bit FLAC)", i);
    free(y);
    cvd_model_unref(m);
    /* two channels in: channel c through response c only */
    o.in_channels = 2;
    cr_assert_eq(cvd_ir_load(tmp("st.flac"), &o, &m, &err), CVD_OK, "%s", err.msg);
    cr_assert_eq(cvd_model_in_channels(m), 2);
    cr_assert_eq(cvd_model_out_channels(m), 2);
    for (int c = 0; c < 2; c++) {
        y = impulse_response(m, 2, c, n);
        for (long i = 0; i < n; i++) {
            cr_assert_float_eq(y[2 * i + c], h[2 * i + c], 1e-6);
            cr_assert_eq(y[2 * i + 1 - c], 0.0f, "channel %d leaked into %d", c, 1 - c);
        }
        free(y);
    }
    cvd_model_unref(m);
    /* a mono IR on two channels: the same response on both */
    write_audio(tmp("mono.wav"), h, n, 1, 48000, SF_FORMAT_WAV | SF_FORMAT_FLOAT);
    cr_assert_eq(cvd_ir_load(tmp("mono.wav"), &o, &m, &err), CVD_OK, "%s", err.msg);
    cr_assert_eq(cvd_model_out_channels(m), 2);
    y = impulse_response(m, 2, 1, n);
    for (long i = 0; i < n; i++) {
        cr_assert_float_eq(y[2 * i + 1], h[i], 1e-6);
        cr_assert_eq(y[2 * i], 0.0f);
    }
    free(y);
    cvd_model_unref(m);
    /* normalised stereo: the louder channel at unit energy, the balance kept */
    o.normalize = 1;
    o.in_channels = 0;
    cr_assert_eq(cvd_ir_load(tmp("st.flac"), &o, &m, &err), CVD_OK, "%s", err.msg);
    y = impulse_response(m, 1, 0, n);
    double e0 = energy(y, n, 2, 0), e1 = energy(y, n, 2, 1);
    cr_assert_float_eq(fmax(e0, e1), 1.0, 1e-4);
    cr_assert_float_eq(e0 / e1, energy(h, n, 2, 0) / energy(h, n, 2, 1), 1e-4);
    free(y);
    cvd_model_unref(m);
    free(h);
}

/* |sum h[i] e^{-j 2 pi f i / rate}| */
static double magnitude(const float *h, long n, double f, double rate)
{
    double re = 0, im = 0;
    for (long i = 0; i < n; i++) {
        re += h[i] * cos(2 * M_PI * f * i / rate);
        im -= h[i] * sin(2 * M_PI * f * i / rate);
    }
    return hypot(re, im);
}

Test(ir, resampled_at_load_keeps_the_frequency_response)
{
    const long n = 4410; /* 100 ms at 44.1 kHz */
    float *h = cab_ir(n, 1, 44100);
    write_audio(tmp("cab44.wav"), h, n, 1, 44100, SF_FORMAT_WAV | SF_FORMAT_FLOAT);
    cvd_ir_options o;
    cvd_ir_options_init(&o);
    o.normalize = 0;
    o.rate = 48000;
    cvd_model *m = NULL;
    cvd_err err = {0};
    cr_assert_eq(cvd_ir_load(tmp("cab44.wav"), &o, &m, &err), CVD_OK, "%s", err.msg);
    cr_assert_eq(cvd_model_sample_rate(m), 48000);
    cr_assert(strstr(cvd_model_description(m), "resampled from 4410 frames at 44100 Hz"), "%s",
              cvd_model_description(m));
    const long n2 = (n * 48000 + 44099) / 44100;
    float *y = impulse_response(m, 1, 0, n2);
    /* the magnitude response at 48 kHz is the file's at 44.1 kHz: within 0.02 dB where the
     * response is within 20 dB of its peak, and within 1e-4 of the peak everywhere up to
     * 18 kHz */
    static const double freqs[] = {50, 120, 160, 440, 1000, 2500, 4900, 5200, 9000, 15000, 18000};
    double a[sizeof freqs / sizeof freqs[0]], b[sizeof freqs / sizeof freqs[0]], peak = 0;
    for (size_t k = 0; k < sizeof freqs / sizeof freqs[0]; k++) {
        a[k] = magnitude(h, n, freqs[k], 44100);
        b[k] = magnitude(y, n2, freqs[k], 48000);
        peak = fmax(peak, a[k]);
    }
    for (size_t k = 0; k < sizeof freqs / sizeof freqs[0]; k++) {
        cr_assert_lt(fabs(b[k] - a[k]), 1e-4 * peak, "%g Hz: %g against %g (peak %g)", freqs[k],
                     b[k], a[k], peak);
        if (a[k] > 0.1 * peak)
            cr_assert_lt(fabs(20 * log10(b[k] / a[k])), 0.02, "%g Hz: %.4f dB off", freqs[k],
                         20 * log10(b[k] / a[k]));
    }
    free(y);
    cvd_model_unref(m);
    free(h);
}

Test(ir, equals_a_direct_convolution)
{
    const long n = 1500, len = 6000;
    float *h = cab_ir(n, 1, 48000);
    write_audio(tmp("cab.wav"), h, n, 1, 48000, SF_FORMAT_WAV | SF_FORMAT_FLOAT);
    cvd_ir_options o;
    cvd_ir_options_init(&o);
    o.normalize = 0;
    cvd_model *m = NULL;
    cr_assert_eq(cvd_ir_load(tmp("cab.wav"), &o, &m, NULL), CVD_OK);
    cvd_rng r;
    cvd_rng_seed(&r, tu_seed());
    float *x = malloc(sizeof(float) * len);
    for (long i = 0; i < len; i++)
        x[i] = (float)(cvd_rng_uniform(&r) - 0.5);
    float *y;
    long ny;
    cr_assert_eq(cvd_model_forward(m, x, len, &y, &ny, NULL), CVD_OK);
    cr_assert_eq(ny, len);
    double peak = 0, e = 0;
    for (long t = 0; t < len; t++) {
        double s = 0;
        for (long i = 0; i < n && i <= t; i++)
            s += (double)h[i] * x[t - i];
        peak = fmax(peak, fabs(s));
        e = fmax(e, fabs(s - y[t]));
    }
    cr_assert_lt(e / peak, 1e-5, "relative error %g", e / peak);
    free(x);
    free(y);
    cvd_model_unref(m);
    free(h);
}

Test(ir, refusals_name_the_file)
{
    cvd_model *m = NULL;
    cvd_err err = {0};
    cvd_ir_options o;
    cvd_ir_options_init(&o);
    float z[300] = {0}, h3[30], big[64];
    for (int i = 0; i < 30; i++)
        h3[i] = (float)(i % 7) * 0.1f;
    for (int i = 0; i < 64; i++)
        big[i] = 0.01f * (float)i;

    cr_assert_lt(cvd_ir_load(tmp("none.wav"), &o, &m, &err), 0);
    cr_assert(strstr(err.msg, "none.wav") && strstr(err.msg, "cannot read"), "%s", err.msg);
    cr_assert_null(m);

    FILE *f = fopen(tmp("text.wav"), "w");
    fputs("not audio at all\n", f);
    fclose(f);
    cr_assert_lt(cvd_ir_load(tmp("text.wav"), &o, &m, &err), 0);
    cr_assert(strstr(err.msg, "text.wav"), "%s", err.msg);

    write_audio(tmp("silent.wav"), z, 300, 1, 48000, SF_FORMAT_WAV | SF_FORMAT_FLOAT);
    cr_assert_lt(cvd_ir_load(tmp("silent.wav"), &o, &m, &err), 0);
    cr_assert(strstr(err.msg, "silent.wav: silent"), "%s", err.msg);
    o.normalize = 0; /* as recorded, a silent response is what it is */
    cr_assert_eq(cvd_ir_load(tmp("silent.wav"), &o, &m, &err), CVD_OK, "%s", err.msg);
    cvd_model_unref(m);
    m = NULL;

    write_audio(tmp("three.wav"), h3, 10, 3, 48000, SF_FORMAT_WAV | SF_FORMAT_FLOAT);
    o.in_channels = 2;
    cr_assert_lt(cvd_ir_load(tmp("three.wav"), &o, &m, &err), 0);
    cr_assert(strstr(err.msg, "three.wav: 3 channels") && strstr(err.msg, "each of the 2 channels"),
              "%s", err.msg);
    o.in_channels = 0;

    write_audio(tmp("long.wav"), big, 64, 1, 48000, SF_FORMAT_WAV | SF_FORMAT_FLOAT);
    o.max_frames = 32;
    cr_assert_lt(cvd_ir_load(tmp("long.wav"), &o, &m, &err), 0);
    cr_assert(strstr(err.msg, "long.wav: 64 frames") && strstr(err.msg, "32 frames"), "%s",
              err.msg);
    o.max_frames = 0;

    big[5] = NAN;
    write_audio(tmp("nan.wav"), big, 64, 1, 48000, SF_FORMAT_WAV | SF_FORMAT_FLOAT);
    cr_assert_lt(cvd_ir_load(tmp("nan.wav"), &o, &m, &err), 0);
    cr_assert(strstr(err.msg, "nan.wav: frame 5, channel 1: not a finite number"), "%s", err.msg);

    o.rate = 12;
    cr_assert_lt(cvd_ir_load(tmp("long.wav"), &o, &m, &err), 0);
    cr_assert(strstr(err.msg, "rate 12 Hz"), "%s", err.msg);
    cr_assert_null(m);
    /* the extension is the format's name to cvd_model_load */
    cr_assert(cvd_model_is_ir_path("a/b/Cab.WAV") && cvd_model_is_ir_path("x.flac"));
    cr_assert(!cvd_model_is_ir_path("amp.nam") && !cvd_model_is_ir_path("wav"));
}

Test(ir, long_response_takes_the_fft_path)
{
    /* 200 ms at 48 kHz: far past the switch point, on every instruction set */
    cr_assert_gt(cvd_conv_fft_partition_for(1, 1, 1, 9600, 1), 0);
    cr_assert_gt(cvd_conv_fft_partition_for(1, 2, 1, 9600, 1), 0);
    cr_assert_gt(cvd_conv_fft_partition_for(2, 2, 2, 9600, 1), 0);
}
