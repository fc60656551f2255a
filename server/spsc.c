/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The SPSC ring of floats: see spsc.h. The producer advances head, the consumer tail; each
 * reads the other's index with acquire and publishes its own with release.
 */
#include "spsc.h"

#include <stdlib.h>
#include <string.h>

#include "convd_dsp.h" /* CVD_OK, CVD_ENOMEM */

int cvd_spsc_create(cvd_spsc *r, size_t min_floats)
{
    size_t cap = 64;
    while (cap < min_floats)
        cap *= 2;
    r->buf = calloc(cap, sizeof(float));
    if (r->buf == NULL)
        return CVD_ENOMEM;
    r->cap = cap;
    atomic_init(&r->head, 0);
    atomic_init(&r->tail, 0);
    return CVD_OK;
}

void cvd_spsc_destroy(cvd_spsc *r)
{
    free(r->buf);
    r->buf = NULL;
    r->cap = 0;
}

size_t cvd_spsc_readable(cvd_spsc *r)
{
    size_t h = atomic_load_explicit(&r->head, memory_order_acquire);
    size_t t = atomic_load_explicit(&r->tail, memory_order_relaxed);
    return h - t;
}

size_t cvd_spsc_writable(cvd_spsc *r)
{
    size_t h = atomic_load_explicit(&r->head, memory_order_relaxed);
    size_t t = atomic_load_explicit(&r->tail, memory_order_acquire);
    return r->cap - (h - t);
}

/* copies n floats in at position pos (modulo the capacity) */
static void ring_put(cvd_spsc *r, size_t pos, const float *p, size_t n)
{
    size_t at = pos & (r->cap - 1), first = r->cap - at;
    if (first > n)
        first = n;
    memcpy(r->buf + at, p, first * sizeof(float));
    if (n > first)
        memcpy(r->buf, p + first, (n - first) * sizeof(float));
}

int cvd_spsc_write2(cvd_spsc *r, const float *a, size_t na, const float *b, size_t nb)
{
    size_t h = atomic_load_explicit(&r->head, memory_order_relaxed);
    size_t t = atomic_load_explicit(&r->tail, memory_order_acquire);
    if (r->cap - (h - t) < na + nb)
        return 0;
    if (na)
        ring_put(r, h, a, na);
    if (nb)
        ring_put(r, h + na, b, nb);
    /* the floats are in place before the consumer can see the new head */
    atomic_store_explicit(&r->head, h + na + nb, memory_order_release);
    return 1;
}

size_t cvd_spsc_read(cvd_spsc *r, float *out, size_t n)
{
    size_t t = atomic_load_explicit(&r->tail, memory_order_relaxed);
    size_t h = atomic_load_explicit(&r->head, memory_order_acquire);
    if (n > h - t)
        n = h - t;
    size_t at = t & (r->cap - 1), first = r->cap - at;
    if (first > n)
        first = n;
    memcpy(out, r->buf + at, first * sizeof(float));
    if (n > first)
        memcpy(out + first, r->buf, (n - first) * sizeof(float));
    /* the floats are copied out before the producer may overwrite them */
    atomic_store_explicit(&r->tail, t + n, memory_order_release);
    return n;
}

size_t cvd_spsc_skip(cvd_spsc *r, size_t n)
{
    size_t t = atomic_load_explicit(&r->tail, memory_order_relaxed);
    size_t h = atomic_load_explicit(&r->head, memory_order_acquire);
    if (n > h - t)
        n = h - t;
    atomic_store_explicit(&r->tail, t + n, memory_order_release);
    return n;
}
