/* Helpers shared by the tests: seeds, random integers, files. */
#ifndef CONVD_TESTUTIL_H
#define CONVD_TESTUTIL_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "convd_dsp.h"

/* Uniform integer in [0, n). */
static inline uint64_t tu_randint(cvd_rng *r, uint64_t n)
{
    return n ? cvd_rng_next(r) % n : 0;
}

/* The base seed of a randomised test: CVD_SEED from the environment, or a fixed default so
 * that runs repeat. Printed in every failure message. */
static inline uint64_t tu_seed(void)
{
    const char *s = getenv("CVD_SEED");
    return s ? strtoull(s, NULL, 0) : 20261121u;
}

/* Reads a whole file; returns malloc'd bytes (NUL-terminated) or NULL. */
static inline char *tu_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    long n;
    if (f == NULL)
        return NULL;
    if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0) {
        buf = malloc((size_t)n + 1);
        if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
            free(buf);
            buf = NULL;
        }
        if (buf) {
            buf[n] = '\0';
            if (len)
                *len = (size_t)n;
        }
    }
    fclose(f);
    return buf;
}

#endif
