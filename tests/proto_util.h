/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What the protocol test files share: a growable byte vector, float bits, and the chunking
 * of a byte stream into reads (fixed or random sizes).
 */
#ifndef CONVD_TEST_PROTO_UTIL_H
#define CONVD_TEST_PROTO_UTIL_H

#include <criterion/criterion.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "convd_proto.h"
#include "testutil.h"

/* ---- a growable byte vector --------------------------------------------------------------- */

typedef struct vbuf {
    uint8_t *p;
    size_t n, cap;
} vbuf;

static inline void vb_add(vbuf *v, const void *data, size_t n)
{
    if (v->n + n > v->cap) {
        size_t c = v->cap ? v->cap : 256;
        while (c < v->n + n)
            c *= 2;
        v->p = realloc(v->p, c);
        cr_assert_not_null(v->p);
        v->cap = c;
    }
    if (data != NULL && n > 0)
        memcpy(v->p + v->n, data, n);
    v->n += n;
}

static inline void vb_printf(vbuf *v, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static inline void vb_printf(vbuf *v, const char *fmt, ...)
{
    char tmp[2048];
    va_list ap;
    int n;
    va_start(ap, fmt);
    n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    vb_add(v, tmp, (size_t)(n < (int)sizeof tmp ? n : (int)sizeof tmp - 1));
}

static inline void vb_free(vbuf *v)
{
    free(v->p);
    memset(v, 0, sizeof *v);
}

/* A cvd_bytes over a vbuf's spare room (at least `room` bytes). */
static inline cvd_bytes vb_bytes(vbuf *v, size_t room)
{
    cvd_bytes b;
    if (v->cap - v->n < room) {
        size_t keep = v->n;
        vb_add(v, NULL, room);
        v->n = keep;
    }
    b.data = v->p;
    b.len = v->n;
    b.cap = v->cap;
    return b;
}

static inline uint32_t f2u(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static inline float u2f(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* ---- reads of a byte stream ---------------------------------------------------------------- */

typedef struct split {
    cvd_rng *rng;  /* random chunk sizes (0 included) if not NULL */
    size_t chunk;  /* else this fixed size */
    size_t maxrnd; /* largest random chunk */
} split;

static inline size_t next_chunk(split *s)
{
    if (s->rng == NULL)
        return s->chunk;
    return (size_t)tu_randint(s->rng, s->maxrnd + 1);
}

#endif
