/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A stream's WaveNet is a clone of its model's template, prewarmed once per (configuration,
 * block size, ISA), whose state it copies on reset (cvd_wavenet_create_shared): its output
 * must be bit for bit what a WaveNet that ran NAM's prewarm itself gives, at every block size
 * (the kernels on frames and on rows), after a reset mid-stream, past the templates a model
 * keeps, and with streams built on several threads at once.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "convd_model.h"
#include "graph_internal.h"
#include "testutil.h"

static float *read_f32(const char *path, long *n)
{
    size_t len = 0;
    char *b = tu_read_file(path, &len);
    cr_assert_not_null(b, "cannot read %s", path);
    *n = (long)(len / 4);
    return (float *)b;
}

static int wavenet_node(const cvd_model *m)
{
    for (int i = 0; i < cvd_model_node_count(m); i++)
        if (cvd_model_node_wavenet(m, i))
            return i;
    cr_assert_fail("no WaveNet node");
    return -1;
}

/* n frames of x through a WaveNet that prewarms itself, in blocks of `block` */
static float *self_prewarmed(const cvd_model *m, const float *x, long n, int block)
{
    const cvd_node *nd = &m->nodes[wavenet_node(m)];
    cvd_wavenet *w;
    cvd_err err;
    cr_assert_eq(cvd_wavenet_create(nd->wn, block, &w, &err), 0, "%s", err.msg);
    cr_assert_eq(cvd_wavenet_set_weights(w, nd->wn_weights, nd->wn_nweights, &err), 0, "%s",
                 err.msg);
    float *y = malloc(sizeof(float) * (size_t)n);
    for (long p = 0; p < n; p += block)
        cvd_wavenet_process(w, x + p, n - p < block ? (int)(n - p) : block, y + p);
    cvd_wavenet_destroy(w);
    return y;
}

/* n frames of x through a net (the stream's WaveNet a clone), in blocks of `block` */
static void through_net(cvd_net *net, const float *x, long n, int block, float *y)
{
    int no;
    for (long p = 0; p < n; p += block) {
        const int b = n - p < block ? (int)(n - p) : block;
        cr_assert_eq(cvd_net_process(net, x + p, b, y + p, &no), 0);
        cr_assert_eq(no, b);
    }
}

static void check_model(const char *path, const float *x, long n)
{
    static const int blocks[] = {1, 7, 64, 512};
    cvd_model *m;
    cvd_err err;
    cr_assert_eq(cvd_nam_load(path, &m, &err), 0, "%s", err.msg);
    float *y = malloc(sizeof(float) * (size_t)n);
    for (int b = 0; b < 4; b++) {
        const int block = blocks[b];
        float *ref = self_prewarmed(m, x, n, block);
        cvd_net *net, *net2;
        cr_assert_eq(cvd_net_create(m, block, &net, &err), 0, "%s", err.msg);
        through_net(net, x, n, block, y);
        cr_expect_eq(memcmp(y, ref, sizeof(float) * (size_t)n), 0,
                     "%s block %d: the clone's output differs from a self-prewarmed WaveNet's",
                     path, block);
        /* reset mid-stream (in the middle of a block's worth of history), then again */
        through_net(net, x + 1000, n / 3 + 5, block, y);
        cvd_net_reset(net);
        through_net(net, x, n, block, y);
        cr_expect_eq(memcmp(y, ref, sizeof(float) * (size_t)n), 0,
                     "%s block %d: after a reset mid-stream, the output differs", path, block);
        /* a second stream of the same template while the first one runs on */
        cr_assert_eq(cvd_net_create(m, block, &net2, &err), 0, "%s", err.msg);
        through_net(net, x, 3 * block + 1 < n ? 3 * block + 1 : n, block, y);
        through_net(net2, x, n, block, y);
        cr_expect_eq(memcmp(y, ref, sizeof(float) * (size_t)n), 0,
                     "%s block %d: a second stream differs", path, block);
        cvd_net_destroy(net);
        cvd_net_destroy(net2);
        free(ref);
    }
    free(y);
    cvd_model_unref(m);
}

Test(prewarm, clone_equals_self_prewarmed_generated)
{
    long n;
    float *x = read_f32("tests/data/nam/input_4k.f32", &n);
    const char *cases[] = {"wide16_tanh", "two_arrays_gated_silu", "new_blended", "nano_tanh"};
    for (int i = 0; i < 4; i++) {
        char path[256];
        snprintf(path, sizeof path, "tests/data/nam/%s.nam", cases[i]);
        check_model(path, x, n);
    }
    free(x);
}

Test(prewarm, clone_equals_self_prewarmed_standard)
{
    const char *path = "../shared/models/nam/wavenet_a1_standard.nam";
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        cr_skip_test("%s is absent (../shared is not beside this checkout)", path);
    fclose(f);
    long n;
    float *x = read_f32("../shared/models/nam/signal_2s_48k.f32", &n);
    check_model(path, x, n < 20000 ? n : 20000);
    free(x);
}

/* more block sizes than a model keeps templates for: the least recently used template makes
 * room for the new one, every stream is a clone, and all give the same output; a clone costs
 * less than a WaveNet of its own */
Test(prewarm, past_the_kept_templates)
{
    long n;
    cvd_model *m;
    cvd_err err;
    float *x = read_f32("tests/data/nam/input_4k.f32", &n);
    cr_assert_eq(cvd_nam_load("tests/data/nam/wide16_tanh.nam", &m, &err), 0, "%s", err.msg);
    float *y = malloc(sizeof(float) * (size_t)n);
    cvd_net *nets[CVD_WN_SHARED_MAX + 3];
    size_t first = 0, second = 0;
    for (int k = 0; k < CVD_WN_SHARED_MAX + 3; k++) {
        const int block = 16 + k;
        cr_assert_eq(cvd_net_create(m, block, &nets[k], &err), 0, "%s", err.msg);
        float *ref = self_prewarmed(m, x, n, block);
        through_net(nets[k], x, n, block, y);
        cr_expect_eq(memcmp(y, ref, sizeof(float) * (size_t)n), 0, "block %d differs", block);
        free(ref);
        if (k == CVD_WN_SHARED_MAX - 1) { /* full: block 16 used again, 17 is the oldest */
            cvd_net *b16;
            cr_assert_eq(cvd_net_create(m, 16, &b16, &err), 0, "%s", err.msg);
            cvd_net_destroy(b16);
        }
    }
    cr_expect_eq(m->n_wn_shared, CVD_WN_SHARED_MAX);
    /* kept: the 8 used last (16, and 20..26); 17, 18 and 19 made room */
    const int kept16 = cvd_wavenet_shared_kept(m, 16), kept17 = cvd_wavenet_shared_kept(m, 17),
              kept25 = cvd_wavenet_shared_kept(m, 25);
    cr_expect(kept16 == 1 && kept17 == 0 && kept25 == 1,
              "templates kept: block 16 %d, 17 %d, 25 %d (expected 1, 0, 1)", kept16, kept17,
              kept25);
    /* a block made room for others: its streams still run (they hold their template) */
    through_net(nets[1], x, n, 17, y);
    cvd_net *again;
    cr_assert_eq(cvd_net_create(m, 17, &again, &err), 0, "%s", err.msg);
    first = cvd_net_state_bytes(again);
    const cvd_node *nd = &m->nodes[wavenet_node(m)];
    cvd_wavenet *own;
    cr_assert_eq(cvd_wavenet_create(nd->wn, 17, &own, &err), 0, "%s", err.msg);
    second = cvd_wavenet_state_bytes(own);
    cvd_wavenet_destroy(own);
    cr_expect_lt(first, second,
                 "a clone (%zu bytes) should cost less than a WaveNet of its own (%zu bytes)",
                 first, second);
    cvd_net_destroy(again);
    for (int k = 0; k < CVD_WN_SHARED_MAX + 3; k++)
        cvd_net_destroy(nets[k]);
    /* the templates outlive nothing: a net made after the model's last reference is gone
     * keeps its own template alive (the model itself is referenced by the net) */
    cr_assert_eq(cvd_net_create(m, 64, &again, &err), 0, "%s", err.msg);
    cvd_model_unref(m);
    through_net(again, x, n, 64, y);
    cvd_net_destroy(again);
    free(y);
    free(x);
}

typedef struct builder {
    cvd_model *m;
    const float *x;
    long n;
    const float *ref;
    int block, bad;
} builder;

static void *build_and_run(void *arg)
{
    builder *b = arg;
    float *y = malloc(sizeof(float) * (size_t)b->n);
    for (int r = 0; r < 6; r++) {
        cvd_net *net;
        cvd_err err;
        if (cvd_net_create(b->m, b->block, &net, &err) < 0) {
            b->bad++;
            continue;
        }
        int no;
        for (long p = 0; p < b->n; p += b->block)
            cvd_net_process(net, b->x + p, b->block, y + p, &no);
        if (memcmp(y, b->ref, sizeof(float) * (size_t)b->n) != 0)
            b->bad++;
        cvd_net_destroy(net);
        if (r == 2) /* the templates dropped while others build and run */
            cvd_wavenet_shared_flush(b->m);
    }
    free(y);
    return NULL;
}

/* streams built on four threads at once, the first ones racing to build the template */
Test(prewarm, streams_built_on_several_threads)
{
    long n;
    cvd_model *m;
    cvd_err err;
    float *x = read_f32("tests/data/nam/input_4k.f32", &n);
    n = 2048;
    cr_assert_eq(cvd_nam_load("tests/data/nam/two_arrays_gated_silu.nam", &m, &err), 0, "%s",
                 err.msg);
    float *ref = self_prewarmed(m, x, n, 64);
    builder b[4];
    pthread_t t[4];
    for (int i = 0; i < 4; i++) {
        b[i] = (builder){.m = m, .x = x, .n = n, .ref = ref, .block = 64};
        cr_assert_eq(pthread_create(&t[i], NULL, build_and_run, &b[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        cr_expect_eq(b[i].bad, 0, "thread %d: %d streams failed or differed", i, b[i].bad);
    }
    free(ref);
    free(x);
    cvd_model_unref(m);
}
