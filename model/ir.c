/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Impulse responses (cabinet IRs and the like) from audio files into models: one causal
 * Conv1D whose kernel is the response, so a long IR runs on the FFT path (docs/LAYERS.md).
 *
 * The file is read with libsndfile (WAV, FLAC, AIFF, Ogg: whatever it reads), as floats.
 * Mono or one channel per input channel. Resampled once here, when the file's rate is not the
 * rate asked for (libsamplerate's best sinc, through dsp/'s resampler), with the gain that
 * keeps the response's frequency response (a response sampled at r1 played at r2 sums r2/r1
 * as many samples). Normalised to unit energy when asked (the default): a response of any
 * recorded level then passes white noise at the same power.
 */
#include <math.h>
#include <sndfile.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "convd_model.h"

void cvd_ir_options_init(cvd_ir_options *o)
{
    memset(o, 0, sizeof *o);
    o->normalize = 1;
}

static const char *base_name(const char *path)
{
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

/* The whole file as interleaved floats; *frames, *channels, *rate. */
static int read_audio(const char *path, float **out, long *frames, int *channels, int *rate,
                      long max_frames, cvd_err *err)
{
    SF_INFO info;
    SNDFILE *sf;
    memset(&info, 0, sizeof info);
    *out = NULL;
    sf = sf_open(path, SFM_READ, &info);
    if (sf == NULL)
        return cvd_err_set(err, CVD_EIO, "%s: cannot read as audio: %s", path, sf_strerror(NULL));
    if (info.frames <= 0) {
        sf_close(sf);
        return cvd_err_set(err, CVD_EFORMAT, "%s: no frames: an impulse response needs some", path);
    }
    if (info.channels < 1 || info.channels > CVD_IR_MAX_CHANNELS) {
        sf_close(sf);
        return cvd_err_set(err, CVD_EFORMAT, "%s: %d channels: at most %d", path, info.channels,
                           CVD_IR_MAX_CHANNELS);
    }
    if (info.frames > max_frames) {
        sf_close(sf);
        return cvd_err_set(err, CVD_EFORMAT,
                           "%s: %lld frames (%.2f s at %d Hz): longer than the %ld frames an "
                           "impulse response may have",
                           path, (long long)info.frames, (double)info.frames / info.samplerate,
                           info.samplerate, max_frames);
    }
    if (info.samplerate < 1000 || info.samplerate > 768000) {
        sf_close(sf);
        return cvd_err_set(err, CVD_EFORMAT, "%s: sample rate %d Hz: must be in 1000..768000", path,
                           info.samplerate);
    }
    float *x = malloc(sizeof(float) * (size_t)info.frames * info.channels);
    if (x == NULL) {
        sf_close(sf);
        return cvd_err_set(err, CVD_ENOMEM, "%s: out of memory", path);
    }
    sf_count_t got = sf_readf_float(sf, x, info.frames);
    sf_close(sf);
    if (got != info.frames) {
        free(x);
        return cvd_err_set(err, CVD_EIO, "%s: read %lld of %lld frames", path, (long long)got,
                           (long long)info.frames);
    }
    for (long i = 0; i < (long)info.frames * info.channels; i++)
        if (!isfinite(x[i])) {
            free(x);
            return cvd_err_set(err, CVD_EFORMAT, "%s: frame %ld, channel %ld: not a finite number",
                               path, i / info.channels, i % info.channels + 1);
        }
    *out = x;
    *frames = (long)info.frames;
    *channels = info.channels;
    *rate = info.samplerate;
    return CVD_OK;
}

/* x (n frames of ch) from rate r1 to r2: ceil(n r2 / r1) frames, scaled by r1 / r2. */
static int resample(const char *path, float **x, long *n, int ch, double r1, double r2,
                    cvd_err *err)
{
    cvd_resampler *rs = NULL;
    const int block = 4096;
    int rc = cvd_resampler_create(r1, r2, ch, block, &rs, err);
    if (rc < 0) {
        cvd_err_prefix(err, "%s", path);
        return rc;
    }
    const int mo = cvd_resampler_max_out(rs);
    const long cap = (long)ceil(*n * (r2 / r1)) + 2L * mo + 16;
    float *y = malloc(sizeof(float) * (size_t)cap * ch);
    long got = 0;
    int no;
    if (y == NULL) {
        cvd_resampler_destroy(rs);
        return cvd_err_set(err, CVD_ENOMEM, "%s: out of memory", path);
    }
    for (long i = 0; i < *n; i += block) {
        int b = *n - i < block ? (int)(*n - i) : block;
        cvd_resampler_process(rs, *x + i * ch, b, y + got * ch, &no);
        got += no;
    }
    while (cvd_resampler_flush(rs, y + got * ch, &no) == 1)
        got += no;
    got += no;
    cvd_resampler_destroy(rs);
    const float g = (float)(r1 / r2);
    for (long i = 0; i < got * ch; i++)
        y[i] *= g;
    free(*x);
    *x = y;
    *n = got;
    return CVD_OK;
}

int cvd_ir_load(const char *path, const cvd_ir_options *opt, cvd_model **out, cvd_err *err)
{
    cvd_ir_options defaults;
    float *x = NULL, *K = NULL;
    long n = 0;
    int ch = 0, rate = 0, rc, in_ch;
    cvd_model *m = NULL;
    double gain = 1, run_rate;
    char desc[512];

    *out = NULL;
    if (path == NULL)
        return cvd_err_set(err, CVD_EINVAL, "impulse response path is NULL");
    if (opt == NULL) {
        cvd_ir_options_init(&defaults);
        opt = &defaults;
    }
    in_ch = opt->in_channels > 0 ? opt->in_channels : 1;
    if (in_ch > CVD_IR_MAX_CHANNELS)
        return cvd_err_set(err, CVD_EINVAL, "%s: %d input channels: at most %d", path, in_ch,
                           CVD_IR_MAX_CHANNELS);
    if (opt->rate != 0 && !(opt->rate >= 1000 && opt->rate <= 768000))
        return cvd_err_set(err, CVD_EINVAL, "%s: rate %g Hz: must be in 1000..768000", path,
                           opt->rate);
    rc = read_audio(path, &x, &n, &ch, &rate,
                    opt->max_frames > 0 ? opt->max_frames : CVD_IR_MAX_FRAMES, err);
    if (rc < 0)
        return rc;
    if (in_ch > 1 && !(ch == 1 || ch == in_ch)) {
        free(x);
        return cvd_err_set(err, CVD_EUNSUPPORTED,
                           "%s: %d channels: an impulse response is mono, or has one channel "
                           "for each of the %d channel%s it is given",
                           path, ch, in_ch, in_ch == 1 ? "" : "s");
    }
    run_rate = opt->rate > 0 ? opt->rate : rate;
    const long file_frames = n;
    if (run_rate != rate && (rc = resample(path, &x, &n, ch, rate, run_rate, err)) < 0) {
        free(x);
        return rc;
    }
    if (opt->normalize) {
        double most = 0;
        for (int c = 0; c < ch; c++) {
            double e = 0;
            for (long i = 0; i < n; i++)
                e += (double)x[i * ch + c] * x[i * ch + c];
            most = fmax(most, e);
        }
        if (!(most > 0)) {
            free(x);
            return cvd_err_set(err, CVD_EFORMAT,
                               "%s: silent (every sample is zero): nothing to normalise", path);
        }
        gain = 1 / sqrt(most);
        for (long i = 0; i < n * ch; i++)
            x[i] = (float)(x[i] * gain);
    }

    /* a causal Conv1D without bias: mono in -> one output per IR channel; N channels in ->
     * N groups, each its channel of the IR (or the mono IR) */
    cvd_conv_config c;
    cvd_conv_config_init(&c, CVD_CONV1D);
    c.filters = in_ch == 1 ? ch : in_ch;
    c.groups = in_ch;
    c.kernel_size = (int)n;
    c.padding = CVD_PAD_CAUSAL;
    c.use_bias = 0;
    K = malloc(sizeof(float) * (size_t)n * c.filters);
    if (K == NULL) {
        free(x);
        return cvd_err_set(err, CVD_ENOMEM, "%s: out of memory", path);
    }
    /* Keras's (k, C/G = 1, F); tap j (oldest first) is sample n-1-j of the response */
    for (long j = 0; j < n; j++)
        for (int f = 0; f < c.filters; f++)
            K[j * c.filters + f] = x[(n - 1 - j) * ch + (ch == 1 ? 0 : f)];
    free(x);
    if ((rc = cvd_model_create(in_ch, &m, err)) < 0)
        goto done;
    int node = cvd_model_add_conv(m, "ir", &c, 0, err);
    if (node < 0) {
        rc = node;
        cvd_err_prefix(err, "%s", path);
        goto done;
    }
    if ((rc = cvd_model_set_var(m, node, 0, K, (size_t)n * c.filters, err)) < 0)
        goto done;
    cvd_model_set_sample_rate(m, run_rate);
    {
        char from[96] = "";
        if (run_rate != rate)
            snprintf(from, sizeof from, " (resampled from %ld frames at %d Hz)", file_frames, rate);
        snprintf(desc, sizeof desc,
                 "impulse response %s: %s, %ld frames (%.1f ms) at %g Hz%s; %s (gain %.4g, "
                 "%+.1f dB)",
                 base_name(path), ch == 1 ? "mono" : "one response per channel", n,
                 1000.0 * n / run_rate, run_rate, from,
                 opt->normalize ? "normalised to unit energy" : "as recorded",
                 gain * (run_rate != rate ? rate / run_rate : 1.0),
                 20 * log10(gain * (run_rate != rate ? rate / run_rate : 1.0)));
        cvd_model_set_description(m, desc);
    }
    *out = m;
    m = NULL;
    rc = CVD_OK;
done:
    free(K);
    cvd_model_unref(m);
    return rc;
}
