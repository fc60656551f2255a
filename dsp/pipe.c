/* SPDX-License-Identifier: Apache-2.0 */
/*
 * One WaveNet across two cores: a pipeline of two stages of balanced cost, one block apart.
 *
 * The split: the layers are cut where the two sides' costs are closest. A cut inside a layer
 * array turns that array into two arrays of the same channels: the first ends with an
 * identity head (its head output is its head accumulator), the second starts with an
 * identity rechannel (its h is the first's output) and continues that head. Neither is
 * multiplied (cvd_wavenet_mark_cut): stage A hands on its head accumulator and its last
 * layer's output, and stage B puts them straight into its head accumulator and its first
 * layer's history; the head is still added in layer order, so the split WaveNet computes the
 * same bits as the whole one. Each stage is a cvd_wavenet of the split configuration running
 * only its own arrays (cvd_wavenet_stage).
 *
 * The hand-off: call k of process() gives stage A block k (the caller's frames copied into
 * one of two input buffers) first, then waits for stage A's block k - 1 and runs stage B on
 * it, on the caller's thread, while the stage thread runs stage A on block k; it returns
 * block k - 1's output (one block of latency). Stage A writes one of two hand-off buffers
 * (streaming stores on x86: wavenet.c's put_rows), stage B reads the other. The two threads
 * meet through two counters (C11 atomics, release/acquire): `posted` (blocks given to stage
 * A) and `done` (blocks it finished). Nothing is allocated and no lock is taken per block; the
 * stage thread is created with the pipe and joined when it is destroyed.
 *
 * Waiting (wait_posted below; chosen by measurement, bench_pipe): the stage thread spins on
 * `posted` for up to spin_ns (100 us: blocks back to back post the next one within the
 * caller's stage B), so a stream that is behind, or a file, makes no system call at all. A
 * real-time stream posts a block every period; there the thread learns the period and sleeps
 * on its own timer (FUTEX_WAIT with a timeout) until margin_ns (150 us) before the next block
 * is due, then spins: process() finds it spinning and makes no system call. Only a block that
 * comes early, or a thread whose timer fired late, costs process() one non-blocking
 * FUTEX_WAKE (a flag says the thread sleeps). Measured paced at 64 frames (bench_pipe): woken
 * by process() for every block, a process() call took 29-33 us median against 20-26 us on one
 * thread (the FUTEX_WAKE costs 15-20 us on this machine's paravirtual kernel); on its own
 * timer 12-20 us, with 130-200 wakes of 750 blocks, and the thread busy 11-15% of a core;
 * spinning through the period, 12-18 us at 100% of a core. process() itself waits for stage
 * A's previous block only when it is not done yet: it spins for up to 20 us, then sleeps on
 * the futex of `done` (counted as a late block).
 *
 * What bounds two threads back to back: block k + 1 reaches stage A only when process() is
 * called again, after stage B ran block k - 1, which waited for stage A's block k - 1; so two
 * blocks take at least stage A + stage B + two hand-offs between the cores, however the
 * stages balance. Measured (bench_pipe, 2026-12-07 12:40-13:05 UTC, ten runs): a hand-off
 * 0.29-0.32 us, the stages together 1.14-1.27x one thread's time (stage A 51-54%), that bound
 * 1.51-1.81x one thread's throughput, 1.48-1.74x at the median block and 1.32-1.65x in all
 * (blocks where a core stalled took 8-13% of the two threads' time, 6-9% of one thread's: the
 * pipeline waits for both cores' stalls). docs/THREADS.md has what was tried.
 */
#include "graph_internal.h"

#include <errno.h>
#include <linux/futex.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* Fields by who writes them, a cache line each: what is set at create, what the caller writes
 * every block, what the stage thread writes every block, and each thread's own; so a thread
 * spinning on a counter shares its line with nothing the other thread writes for another
 * purpose (no false sharing). */
#define CACHE_LINE 64
struct cvd_wn_pipe {
    /* set at create */
    cvd_wavenet *st[2]; /* stage A (arrays [0, k)) and stage B ([k, n)) */
    int k;              /* the first array of stage B */
    int max_block, nin, nout;
    size_t hand_per_frame;  /* floats of a hand-off buffer a frame */
    float *in[2];           /* the blocks given to stage A, by block parity */
    float *hand[2];         /* hand-off buffers, by block parity */
    _Atomic long spin_ns;   /* the stage thread's spin for the next block (set any time) */
    long wait_ns;           /* the caller's spin for a late stage A */
    _Atomic long margin_ns; /* the stage thread wakes this long before the next block is due */
    pthread_t thread;
    int started;
    double cost[2]; /* cost per frame of each stage (multiply-adds and the per-layer term) */
    /* written by the caller, read by the stage thread */
    _Alignas(CACHE_LINE) _Atomic uint32_t posted;
    int nblk[2];         /* frames of the block in each hand-off buffer */
    _Atomic int waiting; /* the caller is (about to be) asleep on `done` */
    _Atomic int quit;
    /* written by the stage thread, read by the caller */
    _Alignas(CACHE_LINE) _Atomic uint32_t done;
    _Atomic int sleeping; /* the stage thread is (about to be) asleep on `posted` */
    /* the stage thread's own: when it saw the last block, and the blocks' spacing */
    _Alignas(CACHE_LINE) long seen_at, period;
    _Atomic long busy_a; /* ns stage A computed (read by cvd_wn_pipe_busy) */
    /* the caller's own */
    _Alignas(CACHE_LINE) long blocks; /* blocks given to stage A */
    long wakes, late;
    long busy_b; /* ns stage B computed */
};

static long futex(_Atomic uint32_t *addr, int op, uint32_t val)
{
    return syscall(SYS_futex, (uint32_t *)addr, op, val, NULL, NULL, 0);
}

/* FUTEX_WAIT for at most ns nanoseconds (the stage thread's timed sleep) */
static void futex_wait_for(_Atomic uint32_t *addr, uint32_t val, long ns)
{
    struct timespec ts = {.tv_sec = ns / 1000000000L, .tv_nsec = ns % 1000000000L};
    syscall(SYS_futex, (uint32_t *)addr, FUTEX_WAIT_PRIVATE, val, &ts, NULL, 0);
}

static long now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long)ts.tv_sec * 1000000000L + ts.tv_nsec;
}

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

/* Waits until *v != old: spins for spin_ns, then sleeps on the futex (*sleeping is set
 * meanwhile, so the other thread knows to wake it). */
static void wait_change(_Atomic uint32_t *v, uint32_t old, long spin_ns, _Atomic int *sleeping,
                        _Atomic int *quit)
{
    long t0 = now_ns();
    unsigned spins = 0;
    while (atomic_load_explicit(v, memory_order_acquire) == old) {
        if (quit && atomic_load_explicit(quit, memory_order_acquire))
            return;
        cpu_relax();
        if ((++spins & 63) == 0 && now_ns() - t0 > spin_ns) {
            if (sleeping)
                atomic_store_explicit(sleeping, 1, memory_order_seq_cst);
            /* FUTEX_WAIT returns at once if *v changed meanwhile */
            if (atomic_load_explicit(v, memory_order_seq_cst) == old &&
                !(quit && atomic_load_explicit(quit, memory_order_acquire)))
                futex(v, FUTEX_WAIT_PRIVATE, old);
            if (sleeping)
                atomic_store_explicit(sleeping, 0, memory_order_relaxed);
            t0 = now_ns();
        }
    }
}

/* The stage thread's wait for block `seen` + 1. Blocks back to back (a file, a stream that is
 * behind) come within spin_ns: it spins, no system call. A real-time stream's blocks come a
 * period apart (1,333 us at 64 frames and 48 kHz): waking the thread from the caller costs the
 * caller a FUTEX_WAKE per block, measured at 15-20 us on this machine's kernel (a paravirtual
 * one: a system call and an inter-processor interrupt), more than the split saves. So the
 * thread learns the period (the spacing of the last two blocks it saw) and sleeps on its own
 * timer (FUTEX_WAIT with a timeout, nobody needs to wake it) until margin_ns before the next
 * block is due, then spins for it: the caller makes no system call at all. Only a block that
 * comes earlier than due, or a thread that wakes late, finds `sleeping` set and costs the
 * caller one FUTEX_WAKE (bench_pipe counts them); a block that does not come by margin_ns
 * after it was due (the stream stopped) lets the thread sleep until woken. */
static void wait_posted(cvd_wn_pipe *p, uint32_t seen)
{
    if (atomic_load_explicit(&p->posted, memory_order_acquire) != seen)
        return; /* blocks back to back: the next one was posted while this thread worked */
    long t0 = now_ns();
    unsigned spins = 0;
    const long spin_ns = atomic_load_explicit(&p->spin_ns, memory_order_relaxed);
    const long margin_ns = atomic_load_explicit(&p->margin_ns, memory_order_relaxed);
    int timed = margin_ns >= 0 && p->period > 2 * margin_ns && p->period < 1000000000L;
    while (atomic_load_explicit(&p->posted, memory_order_acquire) == seen) {
        if (atomic_load_explicit(&p->quit, memory_order_acquire))
            return;
        cpu_relax();
        if ((++spins & 63) != 0)
            continue;
        const long t = now_ns();
        long sleep_ns = -1; /* -1: spin on; 0: until woken */
        if (timed) {
            const long due = p->seen_at + p->period;
            if (t < due - margin_ns)
                sleep_ns = due - margin_ns - t;
            else if (t > due + margin_ns)
                sleep_ns = 0;
        } else if (t - t0 > spin_ns) {
            sleep_ns = 0;
        }
        if (sleep_ns < 0)
            continue;
        atomic_store_explicit(&p->sleeping, 1, memory_order_seq_cst);
        /* FUTEX_WAIT returns at once if `posted` changed meanwhile */
        if (atomic_load_explicit(&p->posted, memory_order_seq_cst) == seen &&
            !atomic_load_explicit(&p->quit, memory_order_acquire)) {
            if (sleep_ns > 0)
                futex_wait_for(&p->posted, seen, sleep_ns);
            else
                futex(&p->posted, FUTEX_WAIT_PRIVATE, seen);
        }
        atomic_store_explicit(&p->sleeping, 0, memory_order_relaxed);
        if (sleep_ns == 0)
            timed = 0; /* woken: the stream resumed, its spacing is unknown */
        t0 = now_ns();
    }
}

static void *stage_thread(void *arg)
{
    cvd_wn_pipe *p = arg;
    uint32_t seen = 0;
    /* timers of this thread fire when asked, not up to 50 us later (the default slack) */
    prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
    for (;;) {
        wait_posted(p, seen);
        if (atomic_load_explicit(&p->quit, memory_order_acquire))
            break;
        const long t = now_ns();
        p->period = p->seen_at > 0 ? t - p->seen_at : 0;
        p->seen_at = t;
        seen++;
        const int b = (int)(seen & 1u);
#if !defined(__SSE2__)
        /* the hand-off buffer's lines were last read by the caller's core: ask for them for
         * writing now, so the transfer overlaps stage A's work (x86 writes the buffer with
         * streaming stores instead: wavenet.c's put_rows) */
        const size_t hb = (size_t)p->nblk[b] * p->hand_per_frame;
        for (size_t i = 0; i < hb; i += CACHE_LINE / sizeof(float))
            __builtin_prefetch(p->hand[b] + i, 1, 3);
#endif
        cvd_wavenet_stage(p->st[0], 0, p->k, p->in[b], p->nblk[b], p->hand[b]);
        atomic_store_explicit(&p->done, seen, memory_order_seq_cst);
        atomic_store_explicit(&p->busy_a,
                              atomic_load_explicit(&p->busy_a, memory_order_relaxed) + now_ns() - t,
                              memory_order_relaxed);
        if (atomic_load_explicit(&p->waiting, memory_order_seq_cst))
            futex(&p->done, FUTEX_WAKE_PRIVATE, 1);
    }
    return NULL;
}

/* ---- the split -------------------------------------------------------------------------- */

/* A layer's cost per frame: its multiply-adds and a term for what a layer costs whatever its
 * size (the activation, the history's writes, the kernels' loops over the block). Measured on
 * NAM's standard model at blocks of 64 (AVX-512, stage A and stage B timed on one thread,
 * 7 runs): cycles ~ 2.0 per multiply-add + 410 per layer and frame, so a layer weighs about
 * 200 multiply-adds more than its count. By multiply-adds alone the cut fell after 6 of the
 * first array's 10 layers and stage B took 57% of the time (15.6 / 20.5 kcycles a block);
 * with the term it falls after 7: 17.6 / 17.8. */
#define LAYER_TERM 200.0

static double layer_cost(const cvd_wn_array *a, int l)
{
    const double C = a->channels, Z = a->layers[l].gating ? 2 * C : C;
    return Z * C * a->layers[l].kernel_size + Z * a->condition_size + C * C + LAYER_TERM;
}

/* The cut: stage B starts at layer *cl of array *ca (*cl == 0: at an array boundary). */
static void best_cut(const cvd_wn_config *cfg, int *ca, int *cl, double cost[2])
{
    double total = 0.0;
    for (int i = 0; i < cfg->n_arrays; i++) {
        const cvd_wn_array *a = &cfg->arrays[i];
        total += (double)a->channels * a->input_size + (double)a->head_size * a->channels;
        for (int l = 0; l < a->n_layers; l++)
            total += layer_cost(a, l);
    }
    double before = 0.0, best = -1.0;
    *ca = cfg->n_arrays > 1 ? 1 : 0;
    *cl = cfg->n_arrays > 1 ? 0 : 1;
    for (int i = 0; i < cfg->n_arrays; i++) {
        const cvd_wn_array *a = &cfg->arrays[i];
        const double C = a->channels;
        before += C * a->input_size;
        for (int l = 0; l < a->n_layers; l++) {
            /* cut before layer l of array i */
            double A = before, B = total - before;
            int ok = 1;
            if (l == 0) {
                ok = i > 0;
                A -= C * a->input_size; /* the rechannel belongs to B */
                B += C * a->input_size;
            } else {
                ok = a->skip && cfg->n_arrays < CVD_WN_MAX_ARRAYS;
            }
            const double worst = A > B ? A : B;
            if (ok && (best < 0 || worst < best)) {
                best = worst;
                *ca = i;
                *cl = l;
                cost[0] = A;
                cost[1] = B;
            }
            before += layer_cost(a, l);
        }
        before += (double)a->head_size * C;
    }
}

/* The split configuration and weights (NAM's flat order): array ca cut before layer cl. */
static void split_config(const cvd_wn_config *cfg, const float *w, int ca, int cl,
                         cvd_wn_config *out, float *wo)
{
    size_t pi = 0, po = 0;
    *out = *cfg;
    out->n_arrays = 0;
    for (int i = 0; i < cfg->n_arrays; i++) {
        const cvd_wn_array *a = &cfg->arrays[i];
        const int C = a->channels, H = a->head_size;
        size_t lw[CVD_WN_MAX_LAYERS], first = 0;
        for (int l = 0; l < a->n_layers; l++) {
            const size_t Z = (size_t)(a->layers[l].gating ? 2 * C : C);
            lw[l] =
                Z * C * a->layers[l].kernel_size + Z + Z * a->condition_size + (size_t)C * C + C;
        }
        if (i != ca || cl == 0) {
            out->arrays[out->n_arrays++] = *a;
            size_t n = (size_t)C * a->input_size;
            for (int l = 0; l < a->n_layers; l++)
                n += lw[l];
            n += (size_t)H * C + (a->head_bias ? (size_t)H : 0);
            memcpy(wo + po, w + pi, sizeof(float) * n);
            pi += n;
            po += n;
            continue;
        }
        cvd_wn_array *p1 = &out->arrays[out->n_arrays++], *p2 = &out->arrays[out->n_arrays++];
        *p1 = *a;
        *p2 = *a;
        p1->n_layers = cl;
        p1->head_size = C;
        p1->head_bias = 0;
        p2->input_size = C;
        p2->n_layers = a->n_layers - cl;
        memmove(p2->layers, a->layers + cl, sizeof a->layers[0] * (size_t)p2->n_layers);
        /* part 1: its rechannel and layers, then an identity head */
        first = (size_t)C * a->input_size;
        for (int l = 0; l < cl; l++)
            first += lw[l];
        memcpy(wo + po, w + pi, sizeof(float) * first);
        pi += first;
        po += first;
        for (int o = 0; o < C; o++)
            for (int c = 0; c < C; c++)
                wo[po++] = o == c ? 1.0f : 0.0f;
        /* part 2: an identity rechannel, the other layers, the head */
        for (int o = 0; o < C; o++)
            for (int c = 0; c < C; c++)
                wo[po++] = o == c ? 1.0f : 0.0f;
        size_t rest = (size_t)H * C + (a->head_bias ? (size_t)H : 0);
        for (int l = cl; l < a->n_layers; l++)
            rest += lw[l];
        memcpy(wo + po, w + pi, sizeof(float) * rest);
        pi += rest;
        po += rest;
    }
    wo[po] = w[pi]; /* the head scale */
}

/* ---- the pipe --------------------------------------------------------------------------- */

/* n floats, zeroed, in whole cache lines of their own: the buffers one thread writes and the
 * other reads share no line with anything else */
static float *lines_alloc(size_t n)
{
    const size_t sz = ((n + 1) * sizeof(float) + CACHE_LINE - 1) / CACHE_LINE * CACHE_LINE;
    float *f = aligned_alloc(CACHE_LINE, sz);
    if (f)
        memset(f, 0, sz);
    return f;
}

void cvd_wn_pipe_destroy(cvd_wn_pipe *p)
{
    if (p == NULL)
        return;
    if (p->started) {
        atomic_store_explicit(&p->quit, 1, memory_order_release);
        atomic_fetch_add_explicit(&p->posted, 1, memory_order_release);
        futex(&p->posted, FUTEX_WAKE_PRIVATE, 1);
        pthread_join(p->thread, NULL);
    }
    cvd_wavenet_destroy(p->st[0]);
    cvd_wavenet_destroy(p->st[1]);
    free(p->in[0]);
    free(p->in[1]);
    free(p->hand[0]);
    free(p->hand[1]);
    free(p);
}

int cvd_wn_pipe_create(const cvd_wn_config *cfg, const float *weights, size_t nw, int max_block,
                       cvd_wn_pipe **out, cvd_err *err)
{
    int ca, cl, rc;
    *out = NULL;
    if (nw != cvd_wn_weight_count(cfg))
        return cvd_err_set(err, CVD_EINVAL, "weights: %zu values, the configuration needs %zu", nw,
                           cvd_wn_weight_count(cfg));
    const size_t psz = (sizeof(cvd_wn_pipe) + CACHE_LINE - 1) / CACHE_LINE * CACHE_LINE;
    cvd_wn_pipe *p = aligned_alloc(CACHE_LINE, psz);
    cvd_wn_config *sc = calloc(1, sizeof *sc);
    float *sw = NULL;
    if (p)
        memset(p, 0, psz);
    if (p == NULL || sc == NULL) {
        free(p);
        free(sc);
        return cvd_err_set(err, CVD_ENOMEM, "out of memory");
    }
    best_cut(cfg, &ca, &cl, p->cost);
    if (cfg->n_arrays == 1 && cfg->arrays[0].n_layers < 2) {
        free(p);
        free(sc);
        return cvd_err_set(err, CVD_EUNSUPPORTED, "a WaveNet of one layer does not split");
    }
    /* a cut inside an array adds an identity head and rechannel */
    const size_t C = cl > 0 ? (size_t)cfg->arrays[ca].channels : 0;
    sw = malloc(sizeof(float) * (nw + 2 * C * C + 1));
    if (sw == NULL) {
        rc = cvd_err_set(err, CVD_ENOMEM, "out of memory");
        goto fail;
    }
    split_config(cfg, weights, ca, cl, sc, sw);
    p->k = ca + (cl > 0);
    p->max_block = max_block;
    p->nin = cvd_wn_in_channels(cfg);
    p->nout = cvd_wn_out_channels(cfg);
    atomic_store_explicit(&p->spin_ns, 100000, memory_order_relaxed);
    p->wait_ns = 20000;
    atomic_store_explicit(&p->margin_ns, 150000, memory_order_relaxed);
    for (int s = 0; s < 2; s++) {
        rc = cvd_wavenet_create(sc, max_block, &p->st[s], err);
        if (rc == CVD_OK && cl > 0)
            cvd_wavenet_mark_cut(p->st[s], p->k);
        if (rc == CVD_OK)
            rc = cvd_wavenet_set_weights(p->st[s], sw, cvd_wn_weight_count(sc), err);
        if (rc < 0)
            goto fail;
    }
    const size_t hf = cvd_wavenet_handoff_floats(p->st[0], p->k);
    p->hand_per_frame = hf / (size_t)max_block;
    for (int b = 0; b < 2; b++) {
        p->in[b] = lines_alloc((size_t)max_block * p->nin);
        p->hand[b] = lines_alloc(hf);
    }
    if (!p->in[0] || !p->in[1] || !p->hand[0] || !p->hand[1]) {
        rc = cvd_err_set(err, CVD_ENOMEM, "out of memory");
        goto fail;
    }
    if (pthread_create(&p->thread, NULL, stage_thread, p) != 0) {
        rc = cvd_err_set(err, CVD_ENOMEM, "cannot start the pipeline's stage thread");
        goto fail;
    }
    p->started = 1;
    free(sc);
    free(sw);
    *out = p;
    return CVD_OK;
fail:
    free(sc);
    free(sw);
    cvd_wn_pipe_destroy(p);
    return rc;
}

/* Waits until stage A finished block `want` (blocks count from 1; 0: none). */
static void wait_done(cvd_wn_pipe *p, uint32_t want)
{
    if ((int32_t)(atomic_load_explicit(&p->done, memory_order_acquire) - want) >= 0)
        return;
    p->late++;
    for (;;) {
        uint32_t d = atomic_load_explicit(&p->done, memory_order_acquire);
        if ((int32_t)(d - want) >= 0)
            return;
        wait_change(&p->done, d, p->wait_ns, &p->waiting, NULL);
    }
}

/* Call k posts block k to stage A first, then waits for stage A's block k - 1 and runs stage
 * B on it: stage A finds its next block posted when it finishes one (it does not wait for the
 * caller to see `done`, copy and post: that round trip between the cores, 2-3 thousand cycles
 * a block measured back to back, is off its path). Block k's input and hand-off buffers are
 * free: stage A finished block k - 2 (the previous call waited for it) and stage B read its
 * hand-off in the previous call. */
void cvd_wn_pipe_process(cvd_wn_pipe *p, const float *in, int n, float *out, int *n_out)
{
    const uint32_t k = (uint32_t)p->blocks + 1;
    const int cur = (int)(k & 1u), prev = 1 - cur;
    const int have = p->blocks > 0 ? p->nblk[prev] : 0;
    /* stage A: block k, on the stage thread */
    memcpy(p->in[cur], in, sizeof(float) * (size_t)n * p->nin);
    p->nblk[cur] = n;
    p->blocks++;
    atomic_store_explicit(&p->posted, k, memory_order_seq_cst);
    if (atomic_load_explicit(&p->sleeping, memory_order_seq_cst)) {
        futex(&p->posted, FUTEX_WAKE_PRIVATE, 1);
        p->wakes++;
    }
    /* stage B: block k - 1, here, once its hand-off is complete */
    if (have > 0) {
        wait_done(p, k - 1);
        const long t = now_ns();
        cvd_wavenet_stage(p->st[1], p->k, cvd_wavenet_arrays(p->st[1]), p->hand[prev], have, out);
        p->busy_b += now_ns() - t;
    }
    *n_out = have;
}

int cvd_wn_pipe_flush(cvd_wn_pipe *p, float *out, int *n_out)
{
    wait_done(p, (uint32_t)p->blocks);
    const int prev = (int)(p->blocks & 1);
    const int have = p->blocks > 0 ? p->nblk[prev] : 0;
    if (have > 0)
        cvd_wavenet_stage(p->st[1], p->k, cvd_wavenet_arrays(p->st[1]), p->hand[prev], have, out);
    p->nblk[prev] = 0;
    *n_out = have;
    return 0;
}

void cvd_wn_pipe_reset(cvd_wn_pipe *p)
{
    wait_done(p, (uint32_t)p->blocks);
    cvd_wavenet_reset(p->st[0]);
    cvd_wavenet_reset(p->st[1]);
    p->nblk[0] = p->nblk[1] = 0;
}

size_t cvd_wn_pipe_state_bytes(const cvd_wn_pipe *p)
{
    return cvd_wavenet_state_bytes(p->st[0]) + cvd_wavenet_state_bytes(p->st[1]) +
           sizeof(float) *
               ((size_t)p->max_block * p->nin + 2 * cvd_wavenet_handoff_floats(p->st[0], p->k));
}

void cvd_wn_pipe_stats(const cvd_wn_pipe *p, long *wakes, long *late, double cost[2])
{
    if (wakes)
        *wakes = p->wakes;
    if (late)
        *late = p->late;
    if (cost) {
        cost[0] = p->cost[0];
        cost[1] = p->cost[1];
    }
}

void cvd_wn_pipe_set_spin(cvd_wn_pipe *p, long spin_ns, long margin_ns)
{
    atomic_store_explicit(&p->spin_ns, spin_ns, memory_order_relaxed);
    p->wait_ns = spin_ns < 20000 ? spin_ns : 20000; /* the caller's own */
    atomic_store_explicit(&p->margin_ns, margin_ns, memory_order_relaxed);
}

void cvd_wn_pipe_busy(const cvd_wn_pipe *p, double busy[2])
{
    busy[0] = 1e-9 * (double)atomic_load_explicit(&p->busy_a, memory_order_relaxed);
    busy[1] = 1e-9 * (double)p->busy_b;
}

double cvd_wn_pipe_stage_cpu(const cvd_wn_pipe *p)
{
    clockid_t id;
    struct timespec ts;
    if (!p->started || pthread_getcpuclockid(p->thread, &id) != 0 || clock_gettime(id, &ts) != 0)
        return -1.0;
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
