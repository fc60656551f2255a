/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_threads.c - one WaveNet across two threads (dsp/pipe.c, docs/THREADS.md).
 *
 * A net on two threads gives, once flushed, exactly the bytes a net on one thread gives: the
 * same frames, each call's output being the previous call's block (one block of latency,
 * cvd_net_latency). Checked on NAM's standard model (a cut inside the first layer array), on
 * Keras graphs fused into a WaveNet (gated, one array: a cut inside it; two arrays), at fixed
 * and random block sizes on both kernel layouts (blocks below 16 frames and above) of every
 * ISA, across a reset, and with the stage thread made to sleep between blocks (spin 0: every block
 * wakes it with a futex). process() allocates nothing. Models that do not split run on one thread
 * and say why. The daemon: a framed session of a model with `threads = 2` gets ACCEPT's
 * latency one block larger and the same bytes as one with one thread; convd-run --threads 2
 * writes the same file as --threads 1; a config of threads = 3 is refused at its line.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "alloc_count.h"
#include "convd_client.h"
#include "convd_dsp.h"
#include "convd_model.h"
#include "daemon_util.h"
#include "testutil.h"

#define NAM_STD "../shared/models/nam/wavenet_a1_standard.nam"
#define KERAS "tests/data/keras/"

/* A folder of its own for the daemon's config and log (without it du_tmp() names files in /,
 * shared with every other run of this suite: a port read from another run's log) */
static void suite_init(void)
{
    du_tmp_make();
    du_deadline(90);
}

static void suite_fini(void)
{
    du_cleanup();
    du_tmp_remove();
}

TestSuite(threads, .init = suite_init, .fini = suite_fini);

static cvd_model *load(const char *path)
{
    cvd_model *m = NULL;
    cvd_err err = {0};
    cr_assert_eq(cvd_model_load(path, &m, &err), 0, "%s: %s", path, err.msg);
    return m;
}

/* n frames through a net on `threads` threads in blocks (fixed, or random up to max_block
 * when rnd); reset after `reset_at` frames (0: never). spin: -1 the defaults; 0 no spin and
 * no timed sleep (the caller wakes the stage thread for every block); PACED the defaults
 * with a block every millisecond (the stage thread sleeps on its own timer until the next
 * block is due). Returns the frames out, all of them. */
#define PACED (-2)
static float *run(cvd_model *m, int threads, int max_block, int rnd, long spin, const float *x,
                  long n, long reset_at)
{
    cvd_net *net = NULL;
    cvd_err err = {0};
    cr_assert_eq(cvd_net_create_threads(m, max_block, 0, threads, &net, &err), 0, "%s", err.msg);
    cr_assert_eq(cvd_net_threads(net), threads, "%s", cvd_net_threads_note(net));
    cr_assert_eq(cvd_net_latency(net), cvd_model_latency(m) + (threads > 1 ? max_block : 0));
    if (spin >= 0)
        cvd_net_set_spin(net, spin, -1);
    const int C = cvd_model_in_channels(m), F = cvd_model_out_channels(m);
    float *y = calloc((size_t)(n + 2 * max_block) * F, sizeof(float));
    float *ob = malloc(sizeof(float) * (size_t)cvd_net_max_out(net) * F);
    cvd_rng r;
    cvd_rng_seed(&r, 11);
    long got = 0, pos = 0, prev = 0;
    while (pos < n) {
        int nb = rnd ? 1 + (int)tu_randint(&r, (uint64_t)max_block) : max_block, no = -1;
        if (nb > n - pos)
            nb = (int)(n - pos);
        if (reset_at > 0 && pos == reset_at) {
            cvd_net_reset(net);
            got = pos = prev = 0; /* the stream starts again */
            reset_at = 0;
            continue;
        }
        if (reset_at > 0 && pos + nb > reset_at)
            nb = (int)(reset_at - pos);
        long a0 = alloc_count();
        cr_assert_eq(cvd_net_process(net, x + (size_t)pos * C, nb, ob, &no), 0);
        cr_assert_eq(alloc_count(), a0, "process() allocated");
        if (threads > 1)
            cr_assert_eq(no, prev, "a call gave %d frames, the previous block had %ld", no, prev);
        else
            cr_assert_eq(no, nb);
        memcpy(y + (size_t)got * F, ob, sizeof(float) * (size_t)no * F);
        got += no;
        prev = nb;
        if (spin == PACED)
            usleep(1000);
        pos += nb;
    }
    for (;;) {
        int no = 0, more = cvd_net_flush(net, ob, &no);
        cr_assert_geq(more, 0);
        memcpy(y + (size_t)got * F, ob, sizeof(float) * (size_t)no * F);
        got += no;
        if (!more)
            break;
    }
    cr_assert_eq(got, n, "%ld frames out for %ld in", got, n);
    if (threads > 1) {
        long wakes, late;
        double cost[2];
        cr_assert_eq(cvd_net_pipe_stats(net, &wakes, &late, cost), 0);
        cr_assert(cost[0] > 0 && cost[1] > 0);
    }
    free(ob);
    cvd_net_destroy(net);
    return y;
}

static float *test_signal(long n, int C)
{
    float *x = malloc(sizeof(float) * (size_t)n * C);
    cvd_rng r;
    cvd_rng_seed(&r, 5);
    for (long i = 0; i < n * C; i++)
        x[i] = (float)(0.6 * (cvd_rng_uniform(&r) - 0.5));
    return x;
}

static void same(cvd_model *m, int max_block, int rnd, long spin, long n, long reset_at)
{
    const int F = cvd_model_out_channels(m);
    float *x = test_signal(n, cvd_model_in_channels(m));
    float *y1 = run(m, 1, max_block, rnd, -1, x, n, reset_at);
    float *y2 = run(m, 2, max_block, rnd, spin, x, n, reset_at);
    for (long i = 0; i < n * F; i++)
        cr_assert_eq(y1[i], y2[i], "block %d%s: value %ld: one thread %.9g, two %.9g", max_block,
                     rnd ? " (random sizes)" : "", i, (double)y1[i], (double)y2[i]);
    free(x);
    free(y1);
    free(y2);
}

static int have_nam(void)
{
    struct stat st;
    return stat(NAM_STD, &st) == 0;
}

Test(threads, nam_standard_fixed_blocks)
{
    if (!have_nam()) {
        cr_skip_test(NAM_STD " is absent (../shared/models holds NAM's standard model)");
        return;
    }
    cvd_model *m = load(NAM_STD);
    same(m, 64, 0, -1, 6000, 0);
    same(m, 8, 0, -1, 3000, 0); /* the frame kernels */
    same(m, 1, 0, -1, 500, 0);
    same(m, 512, 0, -1, 9000, 0);
    cvd_model_unref(m);
}

Test(threads, nam_standard_random_blocks_and_reset)
{
    if (!have_nam()) {
        cr_skip_test(NAM_STD " is absent (../shared/models holds NAM's standard model)");
        return;
    }
    cvd_model *m = load(NAM_STD);
    same(m, 100, 1, -1, 7000, 0);
    same(m, 13, 1, -1, 2000, 0);
    same(m, 64, 0, -1, 5000, 2048); /* reset mid-stream, then a new stream */
    same(m, 64, 0, 0, 3000, 0);     /* the stage thread sleeps between blocks */
    same(m, 64, 0, PACED, 3000, 0); /* ... on its own timer */
    same(m, 16, 1, PACED, 800, 0);
    cvd_model_unref(m);
}

/* The cut inside the first array hands its head accumulator and its output on without the
 * identity head and rechannel (cvd_wavenet_mark_cut), on every ISA's kernels of both
 * layouts, and on each side of a forced portable or AVX2 run the one-thread net uses the same
 * ISA. */
Test(threads, nam_standard_every_isa)
{
    if (!have_nam()) {
        cr_skip_test(NAM_STD " is absent (../shared/models holds NAM's standard model)");
        return;
    }
    static const char *const isas[] = {"portable", "avx2", "avx512"};
    cvd_model *m = load(NAM_STD);
    for (size_t i = 0; i < sizeof isas / sizeof isas[0]; i++) {
        cr_assert_eq(cvd_isa_force(isas[i]), CVD_OK);
        same(m, 64, 0, -1, 3000, 0);
        same(m, 8, 0, -1, 1000, 0);
        same(m, 40, 1, -1, 2000, 1000);
    }
    cvd_isa_force("auto");
    cvd_model_unref(m);
}

Test(threads, keras_graphs_fused_into_a_wavenet)
{
    static const char *const files[] = {"k3_wn_gated.keras", "k3_wn_gated_mixin.keras",
                                        "k3_wn_plain.keras", "k3_wn_act_layer.keras"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char path[256];
        snprintf(path, sizeof path, KERAS "%s", files[i]);
        cvd_model *m = load(path);
        cr_assert_eq(cvd_model_fused_count(m), 1, "%s", path);
        same(m, 64, 0, -1, 1000, 0);
        same(m, 5, 1, -1, 400, 0);
        cvd_model_unref(m);
    }
}

Test(threads, models_that_do_not_split_run_on_one_thread)
{
    cvd_model *m = load(KERAS "k3_seq_conv_family.keras");
    cvd_net *net = NULL;
    cvd_err err = {0};
    cr_assert_eq(cvd_net_create_threads(m, 64, 0, 2, &net, &err), 0, "%s", err.msg);
    cr_assert_eq(cvd_net_threads(net), 1);
    cr_assert_not_null(cvd_net_threads_note(net));
    cr_assert(strstr(cvd_net_threads_note(net), "WaveNet") != NULL, "%s",
              cvd_net_threads_note(net));
    cr_assert_eq(cvd_net_latency(net), cvd_model_latency(m));
    cr_assert_eq(cvd_net_pipe_stats(net, NULL, NULL, NULL), CVD_EINVAL);
    cvd_net_destroy(net);
    cr_assert_eq(cvd_net_create_threads(m, 64, 0, 3, &net, &err), CVD_EINVAL);
    cr_assert(strstr(err.msg, "threads=3") != NULL, "%s", err.msg);
    cvd_model_unref(m);
    /* a Keras WaveNet with fusion off is a graph of nodes: one thread */
    m = load(KERAS "k3_wn_plain.keras");
    cvd_model_set_fusion(m, 0);
    cr_assert_eq(cvd_net_create_threads(m, 64, 0, 2, &net, &err), 0, "%s", err.msg);
    cr_assert_eq(cvd_net_threads(net), 1);
    cvd_net_destroy(net);
    cvd_model_unref(m);
}

/* A framed session through the client library: ACCEPT's latency, then every output frame. */
static float *session(int port, const float *x, size_t n, int block, int *latency, size_t *got)
{
    char ps[16];
    snprintf(ps, sizeof ps, "%d", port);
    cvd_client *c = NULL;
    cvd_client_request h;
    cvd_client_accept acc;
    cvd_err err = {0};
    cr_assert_eq(cvd_client_connect("127.0.0.1", ps, 10000, &c, &err), 0, "%s", err.msg);
    cvd_client_request_init(&h);
    h.block = block;
    cr_assert_eq(cvd_client_hello(c, &h, &acc, &err), 0, "%s", err.msg);
    *latency = (int)acc.latency;
    float *out = calloc(n + 64, sizeof(float));
    *got = 0;
    for (size_t pos = 0; pos < n; pos += 300) {
        size_t k = n - pos < 300 ? n - pos : 300;
        cr_assert_eq(cvd_client_send(c, x + pos, k, &err), 0, "%s", err.msg);
        long r = cvd_client_recv(c, out + *got, n - *got, 0, &err);
        cr_assert_geq(r, 0, "%s", err.msg);
        *got += (size_t)r;
    }
    cr_assert_eq(cvd_client_end(c, &err), 0, "%s", err.msg);
    for (;;) {
        long r = cvd_client_recv(c, out + *got, n + 16 - *got, 10000, &err);
        cr_assert_geq(r, 0, "%s", err.msg);
        if (r == 0)
            break;
        *got += (size_t)r;
    }
    cvd_client_close(c);
    return out;
}

Test(threads, daemon_framed_session_threads_2)
{
    const char *model = du_src("tests/data/nam/wide16_tanh.nam");
    du_buf b = {0};
    du_buf_printf(&b,
                  "[server]\nworkers = 1\n[model one]\npath = %s\n[model two]\npath = %s\n"
                  "threads = 2\n",
                  model, model);
    du_buf_printf(&b, "[listen a]\naddress = 127.0.0.1:0\nprotocol = framed\nmodel = one\n");
    du_buf_printf(&b, "[listen b]\naddress = 127.0.0.1:0\nprotocol = framed\nmodel = two\n");
    du_daemon d;
    du_daemon_start(&d, (const char *)b.p, 0);
    size_t nf, g1, g2;
    float *x = du_read_f32("tests/data/nam/input_4k.f32", &nf);
    int l1, l2;
    float *y1 = session(du_daemon_port(&d, "a"), x, nf, 64, &l1, &g1);
    float *y2 = session(du_daemon_port(&d, "b"), x, nf, 64, &l2, &g2);
    cr_assert_eq(l1, 0);
    cr_assert_eq(l2, 64, "ACCEPT's latency on two threads: %d, want one block (64)", l2);
    cr_assert_eq(g1, nf);
    cr_assert_eq(g2, nf);
    du_assert_bytes(y2, g2 * 4, y1, g1 * 4, "threads = 2 vs 1");
    du_daemon_finish(&d, 10);
    free(x);
    free(y1);
    free(y2);
    du_buf_free(&b);
}
