/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Samples: the two wire formats (f32le, s16le), their one parser, and the NaN/Inf checks
 * (see convd_proto.h and docs/PROTOCOL.md, "Samples").
 */
#include <math.h>
#include <string.h>
#include <strings.h>

#include "convd_proto.h"
#include "proto_internal.h"

int cvd_sample_format_parse(const char *name, cvd_sample_format *out)
{
    if (name == NULL)
        return CVD_EINVAL;
    if (strcasecmp(name, "f32") == 0 || strcasecmp(name, "f32le") == 0 ||
        strcasecmp(name, "float") == 0)
        *out = CVD_FMT_F32LE;
    else if (strcasecmp(name, "s16") == 0 || strcasecmp(name, "s16le") == 0 ||
             strcasecmp(name, "int16") == 0)
        *out = CVD_FMT_S16LE;
    else
        return CVD_EINVAL;
    return CVD_OK;
}

const char *cvd_sample_format_name(int format)
{
    return format == CVD_FMT_F32LE ? "f32le" : format == CVD_FMT_S16LE ? "s16le" : "invalid";
}

size_t cvd_sample_bytes(int format)
{
    return format == CVD_FMT_F32LE ? 4 : format == CVD_FMT_S16LE ? 2 : 0;
}

float cvd_s16_to_float(int16_t x)
{
    return (float)x * (1.0f / 32768.0f);
}

int16_t cvd_s16_from_float(float y)
{
    double v;
    long r;
    if (y != y)
        return 0;
    if (y <= -1.0f)
        return -32768;
    if (y >= 32767.0f / 32768.0f)
        return 32767;
    /* exact: y has 24 significant bits, |v| < 32768, and v + 0.5 needs at most 40 */
    v = (double)y * 32768.0;
    r = v >= 0 ? (long)(v + 0.5) : -(long)(-v + 0.5);
    return (int16_t)r;
}

void cvd_samples_decode(int format, const void *in, size_t n, float *out)
{
    const uint8_t *p = in;
    if (format == CVD_FMT_F32LE) {
        for (size_t i = 0; i < n; i++) {
            uint32_t u = cvd__rd32(p + 4 * i);
            memcpy(&out[i], &u, sizeof u);
        }
    } else if (format == CVD_FMT_S16LE) {
        for (size_t i = 0; i < n; i++) {
            int v = cvd__rd16(p + 2 * i);
            out[i] = (float)(v >= 32768 ? v - 65536 : v) * (1.0f / 32768.0f);
        }
    }
}

void cvd_samples_encode(int format, const float *in, size_t n, void *out)
{
    uint8_t *p = out;
    if (format == CVD_FMT_F32LE) {
        for (size_t i = 0; i < n; i++) {
            uint32_t u;
            memcpy(&u, &in[i], sizeof u);
            cvd__wr32(p + 4 * i, u);
        }
    } else if (format == CVD_FMT_S16LE) {
        for (size_t i = 0; i < n; i++)
            cvd__wr16(p + 2 * i, (uint16_t)cvd_s16_from_float(in[i]));
    }
}

size_t cvd_find_nonfinite(const float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i]))
            return i;
    return n;
}

size_t cvd_f32le_find_nonfinite(const void *samples, size_t n)
{
    const uint8_t *p = samples;
    for (size_t i = 0; i < n; i++)
        if ((cvd__rd32(p + 4 * i) & 0x7f800000u) == 0x7f800000u)
            return i;
    return n;
}
