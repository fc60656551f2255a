/* SPDX-License-Identifier: Apache-2.0 */
/*
 * MaxPooling1D and AveragePooling1D, offline and streaming.
 *
 * Keras's geometry is a convolution's: the output o covers the padded positions
 * o*s .. o*s + k - 1; valid gives floor((n-k)/s) + 1 frames, same gives ceil(n/s) with the
 * left pad floor(total/2), total = max(0, (ceil(n/s)-1)*s + k - n). Padded positions hold no
 * value: the maximum ignores them and the average divides by the real frames only (what
 * TensorFlow's SAME pooling and Keras's other backends compute).
 *
 * The stream keeps the real frames the next output still needs. Like a convolution, it uses
 * the steady-state left pad max(0, floor((k-s)/2)), which is Keras's left pad whenever n is
 * a multiple of s (always, with strides 1). Output o is emitted once the last real frame of
 * its window has arrived; the flush emits the rest, up to the offline count.
 */
#include "graph_internal.h"

#include <float.h>
#include <stdlib.h>
#include <string.h>

struct cvd_pool {
    int is_max, k, s, P, C;
    cvd_padding pad;
    int max_block, max_out, cap;
    long nin;  /* real frames received */
    long nout; /* outputs emitted */
    long pos0; /* real index of hist[0] */
    int len;   /* frames in hist */
    int finished;
    float *hist;
};

static long steady_left(int k, int s, cvd_padding pad)
{
    return pad == CVD_PAD_SAME && k > s ? (k - s) / 2 : 0;
}

int cvd_pool_latency(int k, int s, cvd_padding pad)
{
    return (int)(k - 1 - steady_left(k, s, pad));
}

long cvd_pool_out_len(int k, int s, cvd_padding pad, long n)
{
    if (pad == CVD_PAD_SAME)
        return (n + s - 1) / s;
    if (n < k)
        return -1;
    return (n - k) / s + 1;
}

/* One output over the real frames [a, b) of x (frame-major, C channels) into y. */
static void reduce(int is_max, const float *x, int C, long a, long b, float *y)
{
    if (is_max) {
        for (int c = 0; c < C; c++)
            y[c] = -FLT_MAX;
        for (long t = a; t < b; t++)
            for (int c = 0; c < C; c++)
                if (x[(size_t)t * C + c] > y[c] || t == a)
                    y[c] = x[(size_t)t * C + c];
    } else {
        const double inv = 1.0 / (double)(b - a);
        for (int c = 0; c < C; c++) {
            double acc = 0.0;
            for (long t = a; t < b; t++)
                acc += x[(size_t)t * C + c];
            y[c] = (float)(acc * inv);
        }
    }
}

void cvd_pool_forward(int is_max, int k, int s, cvd_padding pad, int C, const float *in, long n,
                      float *out)
{
    long nl = cvd_pool_out_len(k, s, pad, n), left = 0;
    if (pad == CVD_PAD_SAME) {
        long total = (nl - 1) * s + k - n;
        left = total > 0 ? total / 2 : 0;
    }
    for (long o = 0; o < nl; o++) {
        long a = o * s - left, b = a + k;
        if (a < 0)
            a = 0;
        if (b > n)
            b = n;
        reduce(is_max, in, C, a, b, out + (size_t)o * C);
    }
}

int cvd_pool_create(int is_max, int k, int s, cvd_padding pad, int channels, int max_block,
                    cvd_pool **out, cvd_err *err)
{
    cvd_pool *p;
    *out = NULL;
    if (k < 1 || s < 1 || channels < 1 || max_block < 1)
        return cvd_err_set(err, CVD_EINVAL,
                           "pooling: pool_size=%d, strides=%d, channels=%d, max_block=%d: "
                           "must all be >= 1",
                           k, s, channels, max_block);
    if (pad != CVD_PAD_VALID && pad != CVD_PAD_SAME)
        return cvd_err_set(err, CVD_EINVAL, "pooling: padding='%s': must be valid or same",
                           cvd_padding_name(pad));
    p = calloc(1, sizeof *p);
    if (p == NULL)
        return cvd_err_set(err, CVD_ENOMEM, "out of memory");
    p->is_max = is_max;
    p->k = k;
    p->s = s;
    p->pad = pad;
    p->C = channels;
    p->P = (int)steady_left(k, s, pad);
    p->max_block = max_block;
    /* n new frames complete at most (n + k - 1) / s + 1 outputs */
    p->max_out = (int)(((long)max_block + k - 1) / s + 1);
    p->cap = k + max_block;
    p->hist = malloc(sizeof(float) * (size_t)p->cap * (size_t)channels);
    if (p->hist == NULL) {
        free(p);
        return cvd_err_set(err, CVD_ENOMEM, "out of memory");
    }
    cvd_pool_reset(p);
    *out = p;
    return CVD_OK;
}

void cvd_pool_destroy(cvd_pool *p)
{
    if (p == NULL)
        return;
    free(p->hist);
    free(p);
}

int cvd_pool_max_out(const cvd_pool *p)
{
    return p->max_out;
}

size_t cvd_pool_state_bytes(const cvd_pool *p)
{
    return sizeof(float) * (size_t)p->cap * (size_t)p->C;
}

void cvd_pool_reset(cvd_pool *p)
{
    p->nin = p->nout = p->pos0 = 0;
    p->len = 0;
    p->finished = 0;
}

/* Drops history before the first real frame the next output needs. */
static void compact(cvd_pool *p)
{
    long first = p->nout * p->s - p->P, end = p->pos0 + p->len;
    if (first <= p->pos0)
        return;
    if (first >= end) {
        p->len = 0;
        p->pos0 = first; /* frames before it, when they come, are skipped */
        return;
    }
    long drop = first - p->pos0;
    p->len -= (int)drop;
    memmove(p->hist, p->hist + (size_t)drop * p->C, sizeof(float) * (size_t)p->len * p->C);
    p->pos0 = first;
}

int cvd_pool_process(cvd_pool *p, const float *in, int n, float *out, int *n_out)
{
    *n_out = 0;
    if (n < 0 || n > p->max_block)
        return CVD_ERANGE;
    if (p->finished)
        return CVD_ESTATE;
    compact(p);
    /* frames before pos0 are needed by no output (strides longer than the pool) */
    long skip = p->len == 0 ? p->pos0 - p->nin : 0;
    if (skip < 0)
        skip = 0;
    if (skip > n)
        skip = n;
    memcpy(p->hist + (size_t)p->len * p->C, in + (size_t)skip * p->C,
           sizeof(float) * (size_t)(n - skip) * p->C);
    p->len += (int)(n - skip);
    p->nin += n;
    /* every output whose window lies within the frames so far */
    int m = 0;
    while (m < p->max_out) {
        long a = p->nout * p->s - p->P, b = a + p->k;
        if (b > p->nin)
            break;
        if (a < 0)
            a = 0;
        reduce(p->is_max, p->hist + (size_t)(a - p->pos0) * p->C, p->C, 0, b - a,
               out + (size_t)m * p->C);
        p->nout++;
        m++;
    }
    *n_out = m;
    return CVD_OK;
}

int cvd_pool_flush(cvd_pool *p, float *out, int *n_out)
{
    long target = p->nin > 0 ? cvd_pool_out_len(p->k, p->s, p->pad, p->nin) : 0;
    int m = 0;
    *n_out = 0;
    if (target < 0)
        target = 0;
    while (m < p->max_out && p->nout < target) {
        long a = p->nout * p->s - p->P, b = a + p->k;
        if (a < 0)
            a = 0;
        if (b > p->nin)
            b = p->nin;
        reduce(p->is_max, p->hist + (size_t)(a - p->pos0) * p->C, p->C, 0, b - a,
               out + (size_t)m * p->C);
        p->nout++;
        m++;
    }
    *n_out = m;
    if (p->nout < target)
        return 1;
    p->finished = 1;
    return 0;
}
