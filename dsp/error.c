/* SPDX-License-Identifier: Apache-2.0 */
/* Error codes, messages and the deterministic random number generator. */
#include "convd_dsp.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

const char *cvd_strerror(int code)
{
    switch (code) {
    case CVD_OK:
        return "success";
#define CVD__ERR_TEXT(name, val, text)                                                             \
    case CVD_##name:                                                                               \
        return text;
        CVD_ERRNO_MAP(CVD__ERR_TEXT)
#undef CVD__ERR_TEXT
    default:
        return "unknown error";
    }
}

const char *cvd_err_name(int code)
{
    switch (code) {
    case CVD_OK:
        return "CVD_OK";
#define CVD__ERR_NAME(name, val, text)                                                             \
    case CVD_##name:                                                                               \
        return "CVD_" #name;
        CVD_ERRNO_MAP(CVD__ERR_NAME)
#undef CVD__ERR_NAME
    default:
        return "CVD_UNKNOWN";
    }
}

int cvd_err_set(cvd_err *err, int code, const char *fmt, ...)
{
    if (err != NULL) {
        va_list ap;
        err->code = code;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
    }
    return code;
}

void cvd_err_prefix(cvd_err *err, const char *fmt, ...)
{
    char buf[CVD_ERR_MSG_MAX];
    size_t len, old;
    va_list ap;

    if (err == NULL)
        return;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    len = strlen(buf);
    /* buf + ": " + the old message, cut to fit */
    for (const char *sep = ": "; *sep && len + 1 < sizeof buf; sep++)
        buf[len++] = *sep;
    old = strnlen(err->msg, sizeof err->msg);
    if (old > sizeof buf - 1 - len)
        old = sizeof buf - 1 - len;
    memcpy(buf + len, err->msg, old);
    buf[len + old] = '\0';
    memcpy(err->msg, buf, sizeof buf);
}

/* xoshiro256** seeded through splitmix64: fast, and the same numbers everywhere. */
static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void cvd_rng_seed(cvd_rng *rng, uint64_t seed)
{
    for (int i = 0; i < 4; i++)
        rng->s[i] = splitmix64(&seed);
}

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

uint64_t cvd_rng_next(cvd_rng *rng)
{
    uint64_t *s = rng->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double cvd_rng_uniform(cvd_rng *rng)
{
    return (double)(cvd_rng_next(rng) >> 11) * 0x1.0p-53;
}
