/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_alloc.c - after create, streaming allocates nothing.
 *
 * Every malloc-family call of the test binary goes through tests/alloc_count.c (linker
 * wraps, see the Makefile). For every layer kind, both data formats and every streaming
 * geometry (valid, same, causal; strided, dilated; transposed with output_padding), the count
 * is taken after create and must not move across process() (blocks of 0, 1, max_block and
 * random sizes), flush() to the end, reset(), a second stream, a refused call, a partial
 * flush and a reset in the middle of a stream.
 *
 * The first tests show that the counter sees the allocations of this file and of the dsp
 * library (create and forward allocate), so a process() that allocated would fail here.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "alloc_count.h"
#include "convd_dsp.h"
#include "testutil.h"

Test(alloc, counter_sees_malloc_here)
{
    long a0 = alloc_count();
    void *volatile p = malloc(32); /* volatile: the call cannot be optimised away */
    cr_assert_eq(alloc_count(), a0 + 1, "malloc was not counted");
    void *volatile q = calloc(4, 8);
    cr_assert_eq(alloc_count(), a0 + 2, "calloc was not counted");
    void *volatile p2 = realloc(p, 64);
    cr_assert_eq(alloc_count(), a0 + 3, "realloc was not counted");
    void *m = NULL;
    cr_assert_eq(posix_memalign(&m, 64, 128), 0);
    cr_assert_eq(alloc_count(), a0 + 4, "posix_memalign was not counted");
    free(p2);
    free(q);
    free(m);
    cr_assert_eq(alloc_count(), a0 + 4, "free is not an allocation");
}

Test(alloc, counter_sees_the_library)
{
    cvd_conv_config c;
    cvd_layer *L = NULL;
    cvd_conv_config_init(&c, CVD_CONV1D);
    c.kernel_size = 3;
    c.filters = 4;
    long a0 = alloc_count();
    cr_assert_eq(cvd_layer_create(&c, 2, 16, &L, NULL), CVD_OK);
    long a1 = alloc_count();
    cr_assert_gt(a1, a0, "create allocates, yet the counter did not move");
    float x[2 * 16] = {0}, y[4 * 16];
    long n;
    cr_assert_eq(cvd_layer_forward(L, x, 16, y, &n, NULL), CVD_OK);
    cr_assert_gt(alloc_count(), a1, "forward allocates, yet the counter did not move");
    cvd_layer_destroy(L);
}

/* One geometry of the matrix below. */
typedef struct {
    cvd_layer_kind kind;
    int k, s, d;
    cvd_padding pad;
    int op; /* output_padding, -1 None */
    int groups, dm;
    cvd_activation act;
} geometry;

static const geometry geometries[] = {
    /* Conv1D: valid, same, causal; strided, dilated, grouped; softmax over channels */
    {CVD_CONV1D, 3, 1, 1, CVD_PAD_VALID, -1, 1, 1, CVD_ACT_LINEAR},
    {CVD_CONV1D, 4, 3, 1, CVD_PAD_VALID, -1, 1, 1, CVD_ACT_RELU},
    {CVD_CONV1D, 3, 1, 4, CVD_PAD_VALID, -1, 1, 1, CVD_ACT_TANH},
    {CVD_CONV1D, 5, 1, 2, CVD_PAD_SAME, -1, 1, 1, CVD_ACT_GELU},
    {CVD_CONV1D, 5, 3, 1, CVD_PAD_SAME, -1, 1, 1, CVD_ACT_SIGMOID},
    {CVD_CONV1D, 2, 2, 1, CVD_PAD_SAME, -1, 1, 1, CVD_ACT_LINEAR},
    {CVD_CONV1D, 3, 1, 3, CVD_PAD_CAUSAL, -1, 1, 1, CVD_ACT_ELU},
    {CVD_CONV1D, 4, 2, 1, CVD_PAD_CAUSAL, -1, 1, 1, CVD_ACT_LINEAR},
    {CVD_CONV1D, 3, 1, 2, CVD_PAD_CAUSAL, -1, 2, 1, CVD_ACT_SILU},
    {CVD_CONV1D, 1, 1, 1, CVD_PAD_VALID, -1, 1, 1, CVD_ACT_SOFTMAX},
    {CVD_CONV1D, 3, 2, 1, CVD_PAD_SAME, -1, 2, 1, CVD_ACT_LOG_SOFTMAX},
    /* DepthwiseConv1D and SeparableConv1D: strides with dilation allowed */
    {CVD_DEPTHWISE_CONV1D, 3, 1, 1, CVD_PAD_VALID, -1, 1, 2, CVD_ACT_LINEAR},
    {CVD_DEPTHWISE_CONV1D, 4, 2, 3, CVD_PAD_SAME, -1, 1, 1, CVD_ACT_RELU6},
    {CVD_DEPTHWISE_CONV1D, 5, 1, 2, CVD_PAD_SAME, -1, 1, 3, CVD_ACT_MISH},
    {CVD_DEPTHWISE_CONV1D, 2, 3, 2, CVD_PAD_VALID, -1, 1, 1, CVD_ACT_LINEAR},
    {CVD_SEPARABLE_CONV1D, 3, 1, 1, CVD_PAD_VALID, -1, 1, 2, CVD_ACT_LINEAR},
    {CVD_SEPARABLE_CONV1D, 4, 2, 3, CVD_PAD_SAME, -1, 1, 1, CVD_ACT_SOFTPLUS},
    {CVD_SEPARABLE_CONV1D, 5, 1, 2, CVD_PAD_SAME, -1, 1, 2, CVD_ACT_SOFTMAX},
    {CVD_SEPARABLE_CONV1D, 3, 3, 1, CVD_PAD_VALID, -1, 1, 1, CVD_ACT_SWISH},
    /* Conv1DTranspose: valid and same, with and without output_padding, dilated */
    {CVD_CONV1D_TRANSPOSE, 3, 1, 1, CVD_PAD_VALID, -1, 1, 1, CVD_ACT_LINEAR},
    {CVD_CONV1D_TRANSPOSE, 4, 3, 1, CVD_PAD_VALID, 2, 1, 1, CVD_ACT_RELU},
    {CVD_CONV1D_TRANSPOSE, 1, 3, 1, CVD_PAD_VALID, 0, 1, 1, CVD_ACT_LINEAR},
    {CVD_CONV1D_TRANSPOSE, 5, 2, 1, CVD_PAD_SAME, -1, 1, 1, CVD_ACT_TANH},
    {CVD_CONV1D_TRANSPOSE, 3, 3, 1, CVD_PAD_SAME, 1, 1, 1, CVD_ACT_LINEAR},
    {CVD_CONV1D_TRANSPOSE, 3, 1, 4, CVD_PAD_SAME, 0, 1, 1, CVD_ACT_ELU},
    {CVD_CONV1D_TRANSPOSE, 2, 4, 1, CVD_PAD_SAME, 3, 1, 1, CVD_ACT_SOFTMAX},
};

/* Streams `n` frames from x in blocks (0, 1, max_block, random), counting frames. */
static long feed(cvd_layer *L, cvd_rng *r, const float *x, int n, float *out)
{
    const int mb = cvd_layer_max_block(L), C = cvd_layer_in_channels(L);
    long frames = 0;
    int pos = 0, step = 0, no;
    while (pos < n) {
        int nb;
        switch (step++ % 5) {
        case 0:
            nb = 0;
            break;
        case 1:
            nb = 1;
            break;
        case 2:
            nb = mb;
            break;
        default:
            nb = (int)tu_randint(r, (uint64_t)mb + 1);
        }
        if (nb > n - pos)
            nb = n - pos;
        cr_assert_eq(cvd_layer_process(L, x + (size_t)pos * C, nb, out, &no), CVD_OK);
        cr_assert_leq(no, cvd_layer_max_out(L));
        frames += no;
        pos += nb;
    }
    return frames;
}

static long flush_all(cvd_layer *L, float *out)
{
    long frames = 0;
    int no, more;
    do {
        more = cvd_layer_flush(L, out, &no);
        cr_assert_geq(more, 0);
        frames += no;
    } while (more);
    return frames;
}

static void no_alloc_case(const geometry *g, cvd_data_format fmt, int mb, uint64_t seed)
{
    cvd_conv_config c;
    cvd_layer *L = NULL;
    cvd_err err = {0};
    cvd_rng r;
    const int C = 4; /* divisible by the groups used above */

    cvd_rng_seed(&r, seed);
    cvd_conv_config_init(&c, g->kind);
    c.kernel_size = g->k;
    c.strides = g->s;
    c.dilation_rate = g->d;
    c.padding = g->pad;
    c.output_padding = g->op;
    c.groups = g->groups;
    c.depth_multiplier = g->dm;
    c.filters = 6;
    c.data_format = fmt;
    c.activation = g->act;
    if (fmt == CVD_CHANNELS_FIRST && cvd_activation_is_axis(c.activation))
        c.activation = CVD_ACT_SIGMOID; /* softmax over time cannot stream */
    cr_assert_eq(cvd_layer_create(&c, C, mb, &L, &err), CVD_OK, "%s: %s",
                 cvd_layer_kind_name(g->kind), err.msg);
    cvd_layer_init_weights(L, seed);
    cr_assert_eq(cvd_layer_can_stream(L, NULL), CVD_OK);

    const int F = cvd_layer_out_channels(L), mo = cvd_layer_max_out(L);
    const int n = 3 * mb + 17;
    float *x = malloc((size_t)n * C * sizeof(float));
    float *out = malloc((size_t)mo * F * sizeof(float)); /* exactly max_out frames */
    for (int i = 0; i < n * C; i++)
        x[i] = (float)(2 * cvd_rng_uniform(&r) - 1);

    const long a0 = alloc_count();
    long first = feed(L, &r, x, n, out);
    first += flush_all(L, out);
    int no;
    /* refused calls allocate nothing either */
    cr_assert_eq(cvd_layer_process(L, x, 1, out, &no), CVD_ESTATE);
    cr_assert_eq(cvd_layer_process(L, x, mb + 1, out, &no), CVD_ERANGE);
    cvd_layer_reset(L);
    long second = feed(L, &r, x, n, out);
    second += flush_all(L, out);
    cr_assert_eq(second, first, "%s: %ld frames after reset, %ld before",
                 cvd_layer_kind_name(g->kind), second, first);
    /* reset in the middle of a stream, and after a partial flush */
    cvd_layer_reset(L);
    feed(L, &r, x, n / 2, out);
    cvd_layer_reset(L);
    feed(L, &r, x, n, out);
    cvd_layer_flush(L, out, &no);
    cvd_layer_reset(L);
    feed(L, &r, x, 1, out);
    flush_all(L, out);
    /* the queries a real-time caller might make */
    (void)cvd_layer_latency(L);
    (void)cvd_layer_max_out(L);
    (void)cvd_layer_can_stream(L, NULL);
    cvd_layer_reset(L);
    const long a1 = alloc_count();

    cr_assert_eq(a1, a0, "%s k=%d s=%d d=%d pad=%s op=%d %s mb=%d: %ld allocations while streaming",
                 cvd_layer_kind_name(g->kind), g->k, g->s, g->d, cvd_padding_name(g->pad), g->op,
                 cvd_data_format_name(fmt), mb, a1 - a0);
    free(x);
    free(out);
    cvd_layer_destroy(L);
}

Test(alloc, streaming_allocates_nothing)
{
    static const int max_blocks[] = {1, 2, 7, 64, 300};
    uint64_t seed = tu_seed();
    for (size_t gi = 0; gi < sizeof geometries / sizeof geometries[0]; gi++)
        for (int f = 0; f < 2; f++)
            for (size_t b = 0; b < sizeof max_blocks / sizeof max_blocks[0]; b++)
                no_alloc_case(&geometries[gi], (cvd_data_format)f, max_blocks[b], seed++);
}

/* The same under the portable kernels (a different code path for the dense convolutions). */
Test(alloc, streaming_allocates_nothing_portable)
{
    cvd_isa_force("portable");
    uint64_t seed = tu_seed() + 5000;
    for (size_t gi = 0; gi < sizeof geometries / sizeof geometries[0]; gi++)
        for (int f = 0; f < 2; f++)
            no_alloc_case(&geometries[gi], (cvd_data_format)f, 1 + (int)(gi % 9) * 5, seed++);
}

/* The element-wise and axis activations, applied alone, allocate nothing. */
Test(alloc, activations_allocate_nothing)
{
    float v[64];
    for (int i = 0; i < 64; i++)
        v[i] = (float)(i - 32) / 8.0f;
    long a0 = alloc_count();
    for (int a = 0; a < CVD_ACT_COUNT; a++) {
        float w[64];
        memcpy(w, v, sizeof w);
        if (cvd_activation_is_axis((cvd_activation)a))
            cvd_activation_apply_axis((cvd_activation)a, w, 8, 8, 8, 1);
        else
            cvd_activation_apply((cvd_activation)a, w, 64);
    }
    cr_assert_eq(alloc_count(), a0);
}
