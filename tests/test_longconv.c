/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_longconv.c - long kernels on the partitioned FFT path.
 *
 * The FFT path (forced with cvd_conv_fft_force, over partitions 16..1024) against the direct
 * form: Keras's offline formula (double accumulation, conv.c's forward) and the direct
 * streaming kernels, on random kernels of 64..20,000 taps, random blocks of 1..4096 frames,
 * every padding, groups, depthwise and separable layers, dilation. Equal within 1e-5 of the
 * output's peak; the FFT path's own output is bit-identical whatever the block sizes; no
 * allocation in process, flush or reset (the shared libraries' too, where counted).
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "alloc_count.h"
#include "convd_dsp.h"
#include "testutil.h"

#define TOL 1e-5

typedef struct lc_case {
    cvd_layer_kind kind;
    int C, F, G, dm;
    int k, d;
    cvd_padding pad;
    int B; /* forced partition; 0: automatic */
} lc_case;

static cvd_layer *make(const lc_case *t, int max_block, int force, uint64_t seed)
{
    cvd_conv_config c;
    cvd_layer *L = NULL;
    cvd_err err = {0};
    cvd_conv_config_init(&c, t->kind);
    c.filters = t->F;
    c.groups = t->kind == CVD_CONV1D ? t->G : 1;
    c.depth_multiplier = t->dm;
    c.kernel_size = t->k;
    c.dilation_rate = t->d;
    c.padding = t->pad;
    c.activation = CVD_ACT_LINEAR;
    cr_assert_eq(cvd_conv_fft_force(force), CVD_OK);
    int rc = cvd_layer_create(&c, t->C, max_block, &L, &err);
    cvd_conv_fft_force(-1);
    cr_assert_eq(rc, CVD_OK, "create: %s", err.msg);
    cvd_layer_init_weights(L, seed);
    /* a non-zero bias, so the finishing stage is on the path too */
    if (c.use_bias) {
        int bi = cvd_layer_var_count(L) - 1;
        size_t nb = cvd_layer_var_size(L, bi);
        float *b = malloc(nb * sizeof(float));
        for (size_t i = 0; i < nb; i++)
            b[i] = 0.01f * (float)i - 0.02f;
        cr_assert_eq(cvd_layer_set_var(L, bi, b, nb, NULL), CVD_OK);
        free(b);
    }
    return L;
}

/* The whole input through the stream in random blocks of 1..max_block (or a fixed size),
 * then the flush; returns the frames (malloc'd), *n their count. */
static float *stream(cvd_layer *L, const float *x, long n, cvd_rng *r, int fixed, long *nout)
{
    const int C = cvd_layer_in_channels(L), F = cvd_layer_out_channels(L);
    const int mb = cvd_layer_max_block(L), mo = cvd_layer_max_out(L);
    float *y = malloc(sizeof(float) * ((size_t)(n + 2 * mo + 64) * F));
    long got = 0;
    int no;
    for (long i = 0; i < n;) {
        long b = fixed ? fixed : 1 + (long)tu_randint(r, (uint64_t)mb);
        if (b > n - i)
            b = n - i;
        cr_assert_eq(cvd_layer_process(L, x + i * C, (int)b, y + got * F, &no), CVD_OK);
        cr_assert_leq(no, mo);
        got += no;
        i += b;
    }
    int more;
    do {
        more = cvd_layer_flush(L, y + got * F, &no);
        cr_assert_geq(more, 0);
        got += no;
    } while (more);
    *nout = got;
    return y;
}

static float *noise(long n, uint64_t seed)
{
    cvd_rng r;
    cvd_rng_seed(&r, seed);
    float *x = malloc(sizeof(float) * (size_t)(n > 0 ? n : 1));
    for (long i = 0; i < n; i++)
        x[i] = (float)(2 * cvd_rng_uniform(&r) - 1);
    return x;
}

static double peak(const float *y, long n)
{
    double p = 0;
    for (long i = 0; i < n; i++)
        p = fmax(p, fabs(y[i]));
    return p;
}

/* max |a - b| over n values, relative to b's peak */
static double rel_err(const float *a, const float *b, long n, long *where)
{
    double e = 0, p = peak(b, n);
    *where = -1;
    for (long i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (d > e) {
            e = d;
            *where = i;
        }
    }
    return p > 0 ? e / p : e;
}

static const char *pad_name(cvd_padding p)
{
    return cvd_padding_name(p);
}

/* FFT stream == offline (Keras's formula, double accumulation) within TOL; FFT streams with
 * different block sizes bit-identical; when small enough, == the direct stream within TOL. */
static void check_case(const lc_case *t, long n, uint64_t seed)
{
    cvd_rng r;
    cvd_err err = {0};
    cvd_rng_seed(&r, seed);
    cvd_layer *L = make(t, 4096, t->B, seed);
    cr_assert_gt(cvd_layer_fft_partition(L), 0, "the FFT path was not taken");
    const int C = cvd_layer_in_channels(L), F = cvd_layer_out_channels(L);
    float *x = noise(n * C, seed + 1);

    long nref = cvd_layer_output_length(L, n, &err), no;
    cr_assert_geq(nref, 0, "%s", err.msg);
    float *ref = malloc(sizeof(float) * ((size_t)nref * F + 1));
    cr_assert_eq(cvd_layer_forward(L, x, n, ref, &no, &err), CVD_OK, "%s", err.msg);

    long n1, n2, at;
    float *y1 = stream(L, x, n, &r, 0, &n1);
    cr_assert_eq(n1, nref, "%s k=%d B=%d: %ld frames streamed, %ld offline",
                 cvd_layer_kind_name(t->kind), t->k, t->B, n1, nref);
    double e = rel_err(y1, ref, nref * F, &at);
    cr_assert_leq(e, TOL,
                  "%s %d->%d groups %d k=%d d=%d %s, partition %d: FFT stream vs offline: "
                  "%.3g of the peak at value %ld (%g vs %g), seed %llu",
                  cvd_layer_kind_name(t->kind), t->C, F, t->G, t->k, t->d, pad_name(t->pad),
                  cvd_layer_fft_partition(L), e, at, (double)y1[at], (double)ref[at],
                  (unsigned long long)seed);

    /* another split: 1-frame blocks for a while, then 4096 */
    cvd_layer_reset(L);
    float *y2 = stream(L, x, n, &r, n > 5000 ? 4096 : 1, &n2);
    cr_assert_eq(n2, n1);
    cr_assert(memcmp(y1, y2, sizeof(float) * (size_t)n1 * F) == 0,
              "k=%d: the FFT path's output depends on the block sizes", t->k);
    free(y2);

    /* the direct stream, when its cost is small */
    if ((double)t->k * n * C * F < 4e8) {
        cvd_layer *D = make(t, 4096, 0, seed);
        cr_assert_eq(cvd_layer_fft_partition(D), 0);
        long nd;
        float *yd = stream(D, x, n, &r, 0, &nd);
        cr_assert_eq(nd, n1);
        e = rel_err(y1, yd, nd * F, &at);
        cr_assert_leq(e, TOL, "k=%d: FFT vs direct stream: %.3g of the peak at %ld", t->k, e, at);
        free(yd);
        cvd_layer_destroy(D);
    }
    free(y1);
    free(ref);
    free(x);
    cvd_layer_destroy(L);
}

Test(longconv, mono_kernels_64_to_20000_taps)
{
    static const int taps[] = {64, 100, 257, 1000, 4097, 9600, 20000};
    static const int parts[] = {16, 64, 128, 256, 512, 1024, 0};
    uint64_t seed = tu_seed();
    for (size_t i = 0; i < sizeof taps / sizeof taps[0]; i++) {
        lc_case t = {CVD_CONV1D, 1, 1, 1, 1, taps[i], 1, CVD_PAD_CAUSAL, parts[i]};
        if (t.B == 0) /* the automatic choice must take the FFT path here */
            t.B = -1;
        check_case(&t, taps[i] + 3000 + (long)((seed + i) % 999), seed + i);
    }
}

Test(longconv, paddings_channels_groups_dilation)
{
    static const lc_case cases[] = {
        {CVD_CONV1D, 1, 1, 1, 1, 300, 1, CVD_PAD_VALID, 64},
        {CVD_CONV1D, 1, 1, 1, 1, 301, 1, CVD_PAD_SAME, 32},
        {CVD_CONV1D, 1, 2, 1, 1, 700, 1, CVD_PAD_CAUSAL, 128}, /* a stereo IR on mono */
        {CVD_CONV1D, 2, 2, 2, 1, 700, 1, CVD_PAD_CAUSAL, 64},  /* stereo: one IR a side */
        {CVD_CONV1D, 3, 4, 1, 1, 200, 1, CVD_PAD_SAME, 32},
        {CVD_CONV1D, 4, 6, 2, 1, 150, 1, CVD_PAD_VALID, 16},
        {CVD_CONV1D, 2, 3, 1, 1, 90, 3, CVD_PAD_CAUSAL, 64}, /* dilated: 268 taps */
        {CVD_DEPTHWISE_CONV1D, 3, 0, 1, 2, 250, 1, CVD_PAD_SAME, 64},
        {CVD_SEPARABLE_CONV1D, 2, 5, 1, 2, 180, 2, CVD_PAD_VALID, 32},
        {CVD_CONV1D, 1, 1, 1, 1, 64, 1, CVD_PAD_CAUSAL, 1024}, /* one partition: head only */
        {CVD_CONV1D, 1, 1, 1, 1, 65, 1, CVD_PAD_CAUSAL, 64},   /* a 1-tap second partition */
    };
    uint64_t seed = tu_seed();
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        check_case(&cases[i], 3 * cases[i].k * cases[i].d + 777, seed + 100 + i);
}

Test(longconv, zero_latency_impulse)
{
    /* causal: the impulse's response starts in the same call, at frame 0 */
    lc_case t = {CVD_CONV1D, 1, 1, 1, 1, 2000, 1, CVD_PAD_CAUSAL, 64};
    cvd_layer *L = make(&t, 1, t.B, 5);
    cr_assert_eq(cvd_layer_latency(L), 0);
    const float *K = cvd_layer_var(L, 0), *b = cvd_layer_var(L, 1);
    float one = 1, zero = 0, y;
    int no;
    cr_assert_eq(cvd_layer_process(L, &one, 1, &y, &no), CVD_OK);
    cr_assert_eq(no, 1, "no output for the first frame: latency added");
    cr_assert_float_eq(y, K[1999] + b[0], 1e-6);
    for (int i = 1; i < 2000; i++) {
        cr_assert_eq(cvd_layer_process(L, &zero, 1, &y, &no), CVD_OK);
        cr_assert_eq(no, 1);
        cr_assert_float_eq(y, K[1999 - i] + b[0], 1e-6, "frame %d", i);
    }
    cvd_layer_destroy(L);
}

Test(longconv, automatic_switch_point)
{
    const int T = cvd_conv_fft_threshold(1, 1, 1, 1);
    cr_assert_gt(T, 0, "a mono kernel never takes the FFT path");
    cr_assert_leq(T, 1024);
    lc_case t = {CVD_CONV1D, 1, 1, 1, 1, T, 1, CVD_PAD_CAUSAL, -1};
    cvd_layer *L = make(&t, 64, -1, 1);
    cr_assert_gt(cvd_layer_fft_partition(L), 0, "%d taps: direct, below the table's switch", T);
    cvd_layer_destroy(L);
    if (T > 16) {
        t.k = T - 1;
        L = make(&t, 64, -1, 1);
        cr_assert_eq(cvd_layer_fft_partition(L), 0, "%d taps: FFT, below the switch %d", T - 1, T);
        cvd_layer_destroy(L);
    }
    /* a short multichannel kernel stays direct; the 9,600-tap cabinet IR goes FFT */
    cr_assert_eq(cvd_conv_fft_partition_for(16, 16, 1, 3, 1), 0);
    cr_assert_gt(cvd_conv_fft_partition_for(1, 1, 1, 9600, 1), 0);
    /* a short kernel stays direct however far it is dilated: the direct form multiplies its
     * k taps, not the extent (a TCN's 16 -> 16, k = 3 at d = 256 and 512 took the FFT path
     * over 513 and 1,025 taps and ran 60-100x slower than at d = 128); a long dense one of
     * the same extent goes FFT */
    for (int d = 128; d <= 4096; d *= 2) {
        lc_case tcn = {CVD_CONV1D, 16, 16, 1, 1, 3, d, CVD_PAD_CAUSAL, -1};
        L = make(&tcn, 64, -1, 1);
        cr_assert_eq(cvd_layer_fft_partition(L), 0, "16 -> 16, k = 3, d = %d: FFT", d);
        cvd_layer_destroy(L);
    }
    lc_case mono = {CVD_CONV1D, 1, 1, 1, 1, 15, 64, CVD_PAD_CAUSAL, -1}; /* extent 897 */
    L = make(&mono, 64, -1, 1);
    cr_assert_eq(cvd_layer_fft_partition(L), 0, "1 -> 1, k = 15, d = 64: FFT");
    cvd_layer_destroy(L);
    const int T16 = cvd_conv_fft_threshold(16, 16, 1, 1);
    if (T16 > 0) {
        lc_case dense = {CVD_CONV1D, 16, 16, 1, 1, 2 * T16 + 1, 1, CVD_PAD_CAUSAL, -1};
        L = make(&dense, 64, -1, 1);
        cr_assert_gt(cvd_layer_fft_partition(L), 0, "16 -> 16, k = %d: direct", 2 * T16 + 1);
        cvd_layer_destroy(L);
    }
    /* strides > 1 never */
    cr_assert_eq(cvd_conv_fft_partition_for(1, 1, 1, 9600, 2), 0);
    cr_assert_eq(cvd_conv_fft_threshold(1, 1, 1, 2), 0);
    /* the forcing switch is checked */
    cr_assert_eq(cvd_conv_fft_force(48), CVD_EINVAL);
    cr_assert_eq(cvd_conv_fft_force(8192), CVD_EINVAL);
    cr_assert_eq(cvd_conv_fft_force(-1), CVD_OK);
}

Test(longconv, no_allocation_while_streaming)
{
    static const lc_case cases[] = {
        {CVD_CONV1D, 1, 1, 1, 1, 9600, 1, CVD_PAD_CAUSAL, -1},
        {CVD_CONV1D, 2, 2, 2, 1, 3000, 1, CVD_PAD_SAME, 128},
        {CVD_SEPARABLE_CONV1D, 2, 3, 1, 1, 500, 1, CVD_PAD_VALID, 32},
    };
    cvd_rng r;
    cvd_rng_seed(&r, tu_seed());
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        cvd_layer *L = make(&cases[c], 4096, cases[c].B, 9);
        cr_assert_gt(cvd_layer_fft_partition(L), 0);
        const int C = cvd_layer_in_channels(L), F = cvd_layer_out_channels(L);
        const long n = 20000;
        float *x = noise(n * C, 3);
        float *y = malloc(sizeof(float) * (size_t)cvd_layer_max_out(L) * F);
        int no;
        const long a0 = alloc_count(), t0 = alloc_count_thread();
        for (int pass = 0; pass < 2; pass++) {
            for (long i = 0; i < n;) {
                int b = 1 + (int)tu_randint(&r, 4096);
                if (b > n - i)
                    b = (int)(n - i);
                cvd_layer_process(L, x + i * C, b, y, &no);
                i += b;
            }
            while (cvd_layer_flush(L, y, &no) == 1)
                ;
            cvd_layer_reset(L);
        }
        cr_assert_eq(alloc_count(), a0, "case %zu: %ld allocations while streaming", c,
                     alloc_count() - a0);
        if (t0 >= 0)
            cr_assert_eq(alloc_count_thread(), t0,
                         "case %zu: %ld allocations (shared libraries included) while "
                         "streaming",
                         c, alloc_count_thread() - t0);
        free(x);
        free(y);
        cvd_layer_destroy(L);
    }
}

Test(longconv, thread_counter_sees_shared_libraries)
{
    if (alloc_count_thread() < 0)
        cr_skip_test("malloc belongs to the sanitizer in this build");
    long t0 = alloc_count_thread();
    lc_case t = {CVD_CONV1D, 1, 1, 1, 1, 1000, 1, CVD_PAD_CAUSAL, 64};
    cvd_layer *L = make(&t, 64, t.B, 1);
    cr_assert_gt(alloc_count_thread(), t0, "create allocates, yet the counter did not move");
    cvd_layer_destroy(L);
    /* libc's own allocation, made inside the shared library */
    t0 = alloc_count_thread();
    char *volatile s = strdup("x");
    cr_assert_gt(alloc_count_thread(), t0, "strdup's malloc (inside libc) was not counted");
    free(s);
}

Test(longconv, reset_and_weights_after_create)
{
    /* new weights after streaming recompute the spectra: the stream after reset equals a
     * fresh layer's with those weights */
    lc_case t = {CVD_CONV1D, 1, 1, 1, 1, 1500, 1, CVD_PAD_CAUSAL, 128};
    cvd_layer *L = make(&t, 256, t.B, 1), *M = make(&t, 256, t.B, 2);
    cvd_rng r;
    cvd_rng_seed(&r, 4);
    const long n = 5000;
    float *x = noise(n, 8);
    long n1, n2;
    float *y0 = stream(L, x, n, &r, 0, &n1);
    free(y0);
    cr_assert_eq(cvd_layer_set_var(L, 0, cvd_layer_var(M, 0), cvd_layer_var_size(M, 0), NULL),
                 CVD_OK);
    cvd_layer_reset(L);
    float *y1 = stream(L, x, n, &r, 0, &n1);
    float *y2 = stream(M, x, n, &r, 0, &n2);
    cr_assert_eq(n1, n2);
    cr_assert(memcmp(y1, y2, sizeof(float) * (size_t)n1) == 0);
    free(y1);
    free(y2);
    free(x);
    cvd_layer_destroy(L);
    cvd_layer_destroy(M);
}
