/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Numbers as text in the C locale: the one codec for float samples written as text, used by
 * the line protocol (line.c) and the tools' csv files (tools/lib/audiofile.c).
 *
 * A program may call setlocale(LC_ALL, "") under a locale whose decimal point is a comma; the
 * text here always reads and writes "0.5". Parsing uses strtof_l with a C locale object of
 * our own; printing switches the calling thread to that locale (uselocale) around snprintf,
 * which changes nothing for the process's other threads.
 */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "convd_proto.h"
#include "proto_internal.h"

static pthread_once_t c_locale_once = PTHREAD_ONCE_INIT;
static locale_t c_locale_obj;

static void c_locale_init(void)
{
    c_locale_obj = newlocale(LC_ALL_MASK, "C", (locale_t)0);
}

locale_t cvd__c_locale(void)
{
    pthread_once(&c_locale_once, c_locale_init);
    return c_locale_obj;
}

int cvd_text_parse_float(const char *s, char **end, float *out)
{
    locale_t loc = cvd__c_locale();
    char *e;
    float v;
    if (end)
        *end = (char *)s;
    if (loc == (locale_t)0)
        return CVD_ENOMEM;
    errno = 0;
    v = strtof_l(s, &e, loc);
    if (e == s)
        return CVD_EFORMAT;
    if (end)
        *end = e;
    *out = v;
    if (errno == ERANGE && isinf(v))
        return CVD_ERANGE; /* finite text, too large for a float */
    return 0;              /* underflow: the nearest float (0 or a subnormal) */
}

long cvd_text_format_frames(const float *frames, size_t n_frames, int channels, char *out,
                            size_t cap, size_t *frames_done)
{
    locale_t loc = cvd__c_locale(), old;
    size_t pos = 0, f;
    *frames_done = 0;
    if (loc == (locale_t)0)
        return CVD_ENOMEM;
    if (channels < 1)
        return CVD_EINVAL;
    old = uselocale(loc);
    for (f = 0; f < n_frames; f++) {
        size_t p = pos;
        int c;
        for (c = 0; c < channels; c++) {
            char tmp[32];
            int k =
                snprintf(tmp, sizeof tmp, "%.9g", (double)frames[f * (size_t)channels + (size_t)c]);
            if (k < 0 || (size_t)k + 1 > cap - p)
                break;
            memcpy(out + p, tmp, (size_t)k);
            p += (size_t)k;
            out[p++] = c + 1 < channels ? ',' : '\n';
        }
        if (c < channels)
            break;
        pos = p;
    }
    uselocale(old);
    *frames_done = f;
    return (long)pos;
}
