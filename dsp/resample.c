/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Streaming sample-rate conversion: libsamplerate's best sinc converter.
 *
 * Why libsamplerate and not libsoxr (measured on this machine, 48 kHz <-> 44.1 kHz, blocks of
 * 64, a log sweep 20 Hz..20 kHz there and back): libsoxr's converters filter in blocks of its
 * FFT size, so in a stream its output comes in bursts; a fixed-latency stream needs 19 ms
 * (HQ) to 40 ms (VHQ) of buffering per direction, and soxr_process allocated in steady state.
 * libsamplerate's sinc filter is a time-domain polyphase filter: 145 frames (3 ms) per
 * direction, outputs the same whatever the block sizes, no allocation in src_process or
 * src_reset, and the round trip within -111 dB of the input (soxr: -70 dB HQ, -77 dB VHQ at
 * its default bandwidth). It costs more CPU (about 1.5 us a frame both ways, against 0.1 for
 * soxr), which a live chain can afford; latency it could not.
 *
 * Output frame j is the band-limited input at time j / out_rate: the signal is not delayed,
 * only held back until the filter has the input it needs (the latency, measured at create
 * with a dry run, since it depends on the ratio and how the filter's phase falls).
 */
#include "convd_dsp.h"

#include <math.h>
#include <samplerate.h>
#include <stdlib.h>
#include <string.h>

struct cvd_resampler {
    SRC_STATE *src;
    double in_rate, out_rate, ratio;
    int channels, max_block, max_out, latency;
    long long total_in, total_out;
    int finished;
    float *zeros; /* ZCHUNK frames of silence for the flush */
};

#define ZCHUNK 64

/* Output frames of a whole input of n frames: the times j / out_rate before n / in_rate. */
static long long target_out(const cvd_resampler *r, long long n)
{
    if (r->in_rate == floor(r->in_rate) && r->out_rate == floor(r->out_rate)) {
        long long a = (long long)r->in_rate, b = (long long)r->out_rate;
        return (n * b + a - 1) / a;
    }
    return (long long)ceil((double)n * r->ratio - 1e-9);
}

void cvd_resampler_destroy(cvd_resampler *r)
{
    if (r == NULL)
        return;
    if (r->src)
        src_delete(r->src);
    free(r->zeros);
    free(r);
}

/* n frames of `in` (NULL: zeros) into out (room for `room` frames); returns the frames
 * written, *used the frames consumed. */
static int convert(cvd_resampler *r, const float *in, int n, float *out, int room, int *used)
{
    SRC_DATA d;
    memset(&d, 0, sizeof d);
    d.data_in = in ? in : r->zeros;
    d.input_frames = n;
    d.data_out = out;
    d.output_frames = room;
    d.end_of_input = 0;
    d.src_ratio = r->ratio;
    if (src_process(r->src, &d) != 0) {
        *used = n; /* cannot happen with the ratio checked at create; never loop on it */
        return 0;
    }
    *used = (int)d.input_frames_used;
    return (int)d.output_frames_gen;
}

void cvd_resampler_reset(cvd_resampler *r)
{
    src_reset(r->src);
    r->total_in = 0;
    r->total_out = 0;
    r->finished = 0;
}

int cvd_resampler_create(double in_rate, double out_rate, int channels, int max_block,
                         cvd_resampler **out, cvd_err *err)
{
    cvd_resampler *r;
    int e = 0;

    *out = NULL;
    if (!(in_rate >= 1000 && in_rate <= 768000) || !(out_rate >= 1000 && out_rate <= 768000))
        return cvd_err_set(err, CVD_EINVAL,
                           "resampling %g Hz -> %g Hz: rates must be in 1000..768000 Hz", in_rate,
                           out_rate);
    if (channels <= 0 || channels > 256)
        return cvd_err_set(err, CVD_EINVAL, "resampling: %d channels: must be in 1..256", channels);
    if (max_block <= 0 || max_block > (1 << 20))
        return cvd_err_set(err, CVD_EINVAL, "resampling: max_block=%d: must be in 1..%d", max_block,
                           1 << 20);
    r = calloc(1, sizeof *r);
    if (r == NULL)
        return cvd_err_set(err, CVD_ENOMEM, "out of memory");
    r->in_rate = in_rate;
    r->out_rate = out_rate;
    r->ratio = out_rate / in_rate;
    r->channels = channels;
    r->max_block = max_block;
    r->zeros = calloc((size_t)ZCHUNK * channels, sizeof(float));
    r->src = src_new(SRC_SINC_BEST_QUALITY, channels, &e);
    if (r->src == NULL || r->zeros == NULL) {
        const char *why = r->src == NULL ? src_strerror(e) : "out of memory";
        cvd_resampler_destroy(r);
        return cvd_err_set(err, CVD_ENOMEM, "resampling %g Hz -> %g Hz: %s", in_rate, out_rate,
                           why);
    }
    /* what n input frames can produce beyond ceil(n * ratio): the filter releases at most
     * the frames it held back, in any split of the input */
    r->max_out = (int)ceil((max_block + 2) * r->ratio) + 2;

    /* the latency: the most output frames the filter holds back, over a dry run of zeros a
     * frame at a time (it settles within a few hundred frames, then repeats with the
     * ratio's period) */
    {
        float tmp[4 * 256 * 8];
        long long n = 0, got = 0, worst = 0;
        const int room = (int)(sizeof tmp / sizeof tmp[0]) / channels;
        for (int i = 0; i < 4096; i++) {
            int used;
            got += convert(r, NULL, 1, tmp, room, &used);
            n += used;
            long long d = target_out(r, n) - got;
            if (d > worst)
                worst = d;
        }
        r->latency = (int)worst;
    }
    cvd_resampler_reset(r);
    *out = r;
    return CVD_OK;
}

int cvd_resampler_max_out(const cvd_resampler *r)
{
    return r->max_out;
}

int cvd_resampler_latency(const cvd_resampler *r)
{
    return r->latency;
}

double cvd_resampler_ratio(const cvd_resampler *r)
{
    return r->ratio;
}

int cvd_resampler_channels(const cvd_resampler *r)
{
    return r->channels;
}

int cvd_resampler_process(cvd_resampler *r, const float *in, int n, float *out, int *n_out)
{
    int done = 0, emitted = 0;
    *n_out = 0;
    if (n < 0 || n > r->max_block)
        return CVD_ERANGE;
    if (r->finished)
        return CVD_ESTATE;
    /* one call takes the whole block; the loop is for a converter that stops early */
    for (int tries = 0; done < n && tries < 8; tries++) {
        int used;
        emitted += convert(r, in + (size_t)done * r->channels, n - done,
                           out + (size_t)emitted * r->channels, r->max_out - emitted, &used);
        done += used;
    }
    r->total_in += n;
    r->total_out += emitted;
    *n_out = emitted;
    return CVD_OK;
}

int cvd_resampler_flush(cvd_resampler *r, float *out, int *n_out)
{
    const long long target = target_out(r, r->total_in);
    int emitted = 0;
    *n_out = 0;
    /* zeros after the input (as the offline definition has them) until every output frame
     * before the input's end is out; at most max_out a call */
    for (int idle = 0; r->total_out < target && emitted < r->max_out && idle < 1 << 16;) {
        long long want = target - r->total_out;
        int room = r->max_out - emitted, used;
        if (want < room)
            room = (int)want;
        int got = convert(r, NULL, ZCHUNK, out + (size_t)emitted * r->channels, room, &used);
        emitted += got;
        r->total_out += got;
        idle = got ? 0 : idle + 1;
    }
    *n_out = emitted;
    if (r->total_out < target)
        return 1;
    r->finished = 1;
    return 0;
}
