/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The raw protocol: bare interleaved samples; the decoder keeps an incomplete frame across
 * reads (see convd_proto.h and docs/PROTOCOL.md, "Raw").
 */
#include <stdlib.h>
#include <string.h>

#include "convd_proto.h"

struct cvd_raw_decoder {
    int format;
    int channels;
    size_t frame_bytes;
    size_t have;       /* bytes of an incomplete frame in partial */
    uint8_t partial[]; /* frame_bytes */
};

int cvd_raw_decoder_create(cvd_sample_format format, int channels, cvd_raw_decoder **out,
                           cvd_err *err)
{
    cvd_raw_decoder *d;
    size_t sb = cvd_sample_bytes((int)format);
    *out = NULL;
    if (sb == 0)
        return cvd_err_set(err, CVD_EINVAL,
                           "raw sample format %d: must be 1 (f32le) or 2 "
                           "(s16le)",
                           (int)format);
    if (channels < 1 || channels > CVD_FR_MAX_CHANNELS)
        return cvd_err_set(err, CVD_EINVAL, "raw channels %d: must be from 1 to %d", channels,
                           CVD_FR_MAX_CHANNELS);
    d = malloc(sizeof *d + sb * (size_t)channels);
    if (d == NULL)
        return cvd_err_set(err, CVD_ENOMEM, "raw decoder: out of memory");
    d->format = (int)format;
    d->channels = channels;
    d->frame_bytes = sb * (size_t)channels;
    d->have = 0;
    *out = d;
    return 0;
}

void cvd_raw_decoder_destroy(cvd_raw_decoder *d)
{
    free(d);
}

void cvd_raw_decoder_reset(cvd_raw_decoder *d)
{
    d->have = 0;
}

size_t cvd_raw_decoder_pending(const cvd_raw_decoder *d)
{
    return d->have;
}

size_t cvd_raw_frame_bytes(const cvd_raw_decoder *d)
{
    return d->frame_bytes;
}

size_t cvd_raw_decode(cvd_raw_decoder *d, const void *data, size_t len, size_t *used, float *out,
                      size_t max_frames)
{
    const uint8_t *in = data;
    const size_t fb = d->frame_bytes, C = (size_t)d->channels;
    size_t pos = 0, nf = 0, whole;

    *used = 0;
    if (max_frames == 0)
        return 0;
    if (d->have > 0) {
        size_t take = fb - d->have;
        if (take > len)
            take = len;
        memcpy(d->partial + d->have, in, take);
        d->have += take;
        pos = take;
        if (d->have < fb) {
            *used = pos;
            return 0;
        }
        cvd_samples_decode(d->format, d->partial, C, out);
        d->have = 0;
        nf = 1;
    }
    whole = (len - pos) / fb;
    if (whole > max_frames - nf)
        whole = max_frames - nf;
    cvd_samples_decode(d->format, in + pos, whole * C, out + nf * C);
    pos += whole * fb;
    nf += whole;
    if (nf < max_frames && pos < len) { /* less than a frame left: keep it */
        memcpy(d->partial, in + pos, len - pos);
        d->have = len - pos;
        pos = len;
    }
    *used = pos;
    return nf;
}

size_t cvd_raw_encode(cvd_sample_format format, const float *frames, size_t n_frames, int channels,
                      void *out)
{
    size_t n = n_frames * (size_t)(channels > 0 ? channels : 0);
    cvd_samples_encode((int)format, frames, n, out);
    return n * cvd_sample_bytes((int)format);
}
