/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The live-audio engine: see audio_engine.h. cvd_audio_engine_process runs on the PortAudio
 * callback's thread: it allocates nothing, takes no lock, makes no system call and never logs;
 * everything else here runs on the daemon's main loop (create and destroy, read, feed, swap,
 * collect, counters). Between the two: SPSC rings (spsc.h) and atomics only.
 */
#include "audio_engine.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "spsc.h"

/* A published chunk in the ring: this header (as HDR floats), then frames * channels floats. */
typedef struct chunk_hdr {
    uint32_t frames;
    uint32_t pad;
    uint64_t dropped; /* frames lost just before these */
} chunk_hdr;
#define HDR ((size_t)(sizeof(chunk_hdr) / sizeof(float)))

struct cvd_audio_engine {
    cvd_audio_engine_config cfg;
    int chunk;            /* most frames the net writes per block: the size of y, and of a chunk */
    int latency;          /* of the callback's net */
    cvd_net *net;         /* the callback's: a windowed model, which cannot run in a chain */
    cvd_audio_proc *proc; /* else: gains, the chain of models, crossfades (audio_proc.h) */
    _Atomic(cvd_net *) pending; /* loop -> callback: the next net */
    _Atomic(cvd_net *) retired; /* callback -> loop: the net it replaced */
    int pending_latency;        /* written before pending (release), read after (acquire) */
    int swap_open;              /* loop only: a swap not yet collected */
    int fifo_cap;               /* frames */
    float *y;                   /* net output: chunk frames of out_channels */
    float *fifo;                /* callback only: processed frames waiting to be played */
    short *in_map;              /* cfg.in_map, copied; NULL: the capture is the input */
    short *out_map;             /* cfg.out_map, copied; NULL: see map_frames */
    int n_out_map;
    float *gather; /* callback only: a block of mapped input frames */
    int fifo_head, fifo_count;
    float *zeros;        /* a block of silence for a missing input buffer */
    cvd_spsc pub;        /* callback -> loop: published chunks */
    uint64_t gap;        /* callback only: frames dropped since the last chunk that fitted */
    cvd_spsc jit;        /* loop -> callback: an output-only stream's frames */
    int jit_frames;      /* the most frames the loop keeps in jit */
    int playing;         /* callback only: the jitter buffer has filled */
    atomic_int draining; /* loop -> callback: the source ended; play what is left */
    cvd_stream_stats *stats;

    /* counters: written by the callback (relaxed atomics), read by anyone */
    atomic_ullong callbacks, frames_in, frames_out, flags[4], underruns, ring_dropped, swaps,
        ns_last, ns_max, ns_sum;
#ifdef CVD_TEST_HOOKS
    /* CONVD_TEST_SLOW_CALLBACK=N:MS: every Nth callback sleeps MS ms (xruns on demand) */
    unsigned long slow_every, slow_count;
    long slow_ns;
    /* CONVD_TEST_FAIL_CALLBACK=N: the Nth callback stops the stream (a device failure) */
    unsigned long fail_at;
#endif
};

static void add(atomic_ullong *c, uint64_t v)
{
    atomic_fetch_add_explicit(c, v, memory_order_relaxed);
}

static int engine_create(const cvd_audio_engine_config *cfg, cvd_model *model, cvd_audio_proc *proc,
                         cvd_stream_stats *stats, cvd_audio_engine **out, cvd_err *err);

int cvd_audio_engine_create(const cvd_audio_engine_config *cfg, cvd_model *model,
                            cvd_stream_stats *stats, cvd_audio_engine **out, cvd_err *err)
{
    *out = NULL;
    if (cfg->block < 1 || cfg->out_channels < 1 || cfg->in_channels < 0 || cfg->play_channels < 0 ||
        (cfg->in_channels == 0 && cfg->play_channels == 0))
        return cvd_err_set(err, CVD_EINVAL, "audio engine: bad configuration");
    if (model != NULL && cfg->in_channels != cvd_model_in_channels(model))
        return cvd_err_set(err, CVD_EINVAL, "audio engine: %d channels in, the model takes %d",
                           cfg->in_channels, cvd_model_in_channels(model));
    if (cfg->in_channels > 0 && (model == NULL || (cvd_model_mode(model) == CVD_MODE_STREAMING &&
                                                   cvd_model_rate_ratio(model) == 1.0))) {
        /* a model that streams frame by frame runs as a chain of one, resampled to its rate */
        cvd_chain *chain = NULL;
        cvd_audio_proc *proc = NULL;
        int rc;
        if (model != NULL) {
            cvd_chain_config cc = {.rate = cfg->rate,
                                   .max_block = cfg->block,
                                   .fixed = 1,
                                   .in_channels = cfg->in_channels};
            if ((rc = cvd_chain_create(&model, NULL, 1, &cc, &chain, err)) < 0)
                return rc;
        }
        cvd_audio_proc_config pc = {.in_channels = cfg->in_channels,
                                    .out_channels = cfg->out_channels,
                                    .block = cfg->block,
                                    .rate = cfg->rate,
                                    .crossfade = cfg->crossfade};
        if ((rc = cvd_audio_proc_create(&pc, chain, 1.0f, 1.0f, &proc, err)) < 0) {
            cvd_chain_destroy(chain);
            return rc;
        }
        return cvd_audio_engine_create_proc(cfg, proc, stats, out, err);
    }
    return engine_create(cfg, model, NULL, stats, out, err);
}

int cvd_audio_engine_create_proc(const cvd_audio_engine_config *cfg, cvd_audio_proc *proc,
                                 cvd_stream_stats *stats, cvd_audio_engine **out, cvd_err *err)
{
    *out = NULL;
    if (cfg->block < 1 || cfg->out_channels < 1 || cfg->in_channels < 1 || cfg->play_channels < 0) {
        cvd_audio_proc_destroy(proc);
        return cvd_err_set(err, CVD_EINVAL, "audio engine: bad configuration");
    }
    return engine_create(cfg, NULL, proc, stats, out, err);
}

static int engine_create(const cvd_audio_engine_config *cfg, cvd_model *model, cvd_audio_proc *proc,
                         cvd_stream_stats *stats, cvd_audio_engine **out, cvd_err *err)
{
    cvd_audio_engine *e;
    int rc;

    *out = NULL;
    e = calloc(1, sizeof *e);
    if (e == NULL) {
        cvd_audio_proc_destroy(proc);
        return cvd_err_set(err, CVD_ENOMEM, "out of memory");
    }
    e->cfg = *cfg;
    e->stats = stats;
    e->chunk = cfg->block;
    e->proc = proc; /* exactly n frames out for n in: latency inside, no FIFO priming */
    if (model != NULL) {
        rc = cvd_net_create_hop(model, cfg->block, cfg->hop, &e->net, err);
        if (rc < 0) {
            free(e);
            return rc;
        }
        if (cvd_net_max_out(e->net) > e->chunk)
            e->chunk = cvd_net_max_out(e->net);
        e->latency = cvd_model_latency(model);
    }
    const size_t och = (size_t)cfg->out_channels;
    /* room for a model swapped in later with up to 4 blocks of latency */
    e->fifo_cap = 4 * cfg->block + 2 * e->chunk + e->latency;
    e->y = calloc((size_t)e->chunk * och, sizeof(float));
    e->fifo = calloc((size_t)e->fifo_cap * och, sizeof(float));
    e->zeros = calloc((size_t)cfg->block * (size_t)(cfg->in_channels ? cfg->in_channels : 1),
                      sizeof(float));
    rc = (e->y && e->fifo && e->zeros) ? CVD_OK : CVD_ENOMEM;
    if (e->cfg.capture_channels < cfg->in_channels)
        e->cfg.capture_channels = cfg->in_channels;
    if (rc == CVD_OK && cfg->in_map != NULL && cfg->in_channels > 0) {
        e->in_map = malloc(sizeof(short) * (size_t)cfg->in_channels);
        e->gather = malloc(sizeof(float) * (size_t)cfg->block * (size_t)cfg->in_channels);
        if (e->in_map == NULL || e->gather == NULL)
            rc = CVD_ENOMEM;
        else
            memcpy(e->in_map, cfg->in_map, sizeof(short) * (size_t)cfg->in_channels);
        e->cfg.in_map = NULL; /* the caller's; e->in_map is ours */
        for (int k = 0; rc == CVD_OK && k < cfg->in_channels; k++)
            if (e->in_map[k] < 0 || e->in_map[k] >= e->cfg.capture_channels)
                rc = CVD_EINVAL;
    }
    if (rc == CVD_OK && cfg->out_map != NULL && cfg->play_channels > 0) {
        e->n_out_map = cfg->n_out_map;
        e->out_map = malloc(sizeof(short) * (size_t)(e->n_out_map > 0 ? e->n_out_map : 1));
        if (e->out_map == NULL)
            rc = CVD_ENOMEM;
        else
            memcpy(e->out_map, cfg->out_map, sizeof(short) * (size_t)e->n_out_map);
        e->cfg.out_map = NULL;
        if (e->n_out_map < 1 || (cfg->out_channels != 1 && e->n_out_map != cfg->out_channels))
            rc = CVD_EINVAL;
        for (int k = 0; rc == CVD_OK && k < e->n_out_map; k++)
            if (e->out_map[k] < 0 || e->out_map[k] >= cfg->play_channels)
                rc = CVD_EINVAL;
    }
    if (rc == CVD_OK && cfg->publish) {
        /* half a second, and at least 16 blocks, of chunks */
        size_t frames = (size_t)cfg->rate / 2;
        if (frames < 16 * (size_t)e->chunk)
            frames = 16 * (size_t)e->chunk;
        rc = cvd_spsc_create(&e->pub, frames * och + (frames / (size_t)cfg->block + 2) * HDR);
    }
    if (rc == CVD_OK && cfg->in_channels == 0) {
        int j = cfg->jitter > 0 ? cfg->jitter : 4 * cfg->block;
        e->cfg.jitter = j;
        /* the loop keeps at most this many queued: a source that runs faster than the device
         * loses frames at its subscription (counted there), so the delay stays bounded */
        e->jit_frames = 2 * j + cfg->block;
        rc = cvd_spsc_create(&e->jit, (size_t)e->jit_frames * och);
    }
    if (rc < 0) {
        cvd_audio_engine_destroy(e);
        return cvd_err_set(err, rc,
                           rc == CVD_EINVAL ? "audio engine: a mapped channel is not "
                                              "one the device has"
                                            : "out of memory");
    }
    /* the model's latency, as silence before its first output */
    e->fifo_count = e->latency;
    atomic_init(&e->pending, NULL);
    atomic_init(&e->retired, NULL);
#ifdef CVD_TEST_HOOKS
    const char *slow = getenv("CONVD_TEST_SLOW_CALLBACK");
    if (slow != NULL) {
        unsigned long every = 0;
        double ms = 0;
        if (sscanf(slow, "%lu:%lf", &every, &ms) == 2 && every > 0 && ms >= 0) {
            e->slow_every = every;
            e->slow_ns = (long)(ms * 1e6);
        }
    }
    const char *fail = getenv("CONVD_TEST_FAIL_CALLBACK");
    if (fail != NULL)
        e->fail_at = strtoul(fail, NULL, 10);
#endif
    *out = e;
    return CVD_OK;
}

void cvd_audio_engine_destroy(cvd_audio_engine *e)
{
    if (e == NULL)
        return;
    cvd_net_destroy(e->net);
    cvd_audio_proc_destroy(e->proc);
    cvd_net_destroy(atomic_load(&e->pending));
    cvd_net_destroy(atomic_load(&e->retired));
    free(e->y);
    free(e->fifo);
    free(e->zeros);
    free(e->in_map);
    free(e->out_map);
    free(e->gather);
    cvd_spsc_destroy(&e->pub);
    cvd_spsc_destroy(&e->jit);
    free(e);
}

int cvd_audio_engine_chunk(const cvd_audio_engine *e)
{
    return e->chunk;
}

int cvd_audio_engine_latency(const cvd_audio_engine *e)
{
    return e->proc ? cvd_audio_proc_latency(e->proc) : e->latency;
}

cvd_audio_proc *cvd_audio_engine_proc(cvd_audio_engine *e)
{
    return e->proc;
}

/* frame f of src (och channels) into frame f of dst (pch channels) */
static void map_frames(float *dst, int pch, const float *src, int och, int n, const short *out_map,
                       int n_map)
{
    if (out_map != NULL) {
        /* channel k on out_map[k]; a mono frame on every listed channel */
        memset(dst, 0, sizeof(float) * (size_t)n * (size_t)pch);
        for (int f = 0; f < n; f++)
            for (int k = 0; k < n_map; k++)
                dst[(size_t)f * (size_t)pch + (size_t)out_map[k]] =
                    src[(size_t)f * (size_t)och + (size_t)(och == 1 ? 0 : k)];
        return;
    }
    if (pch == och) {
        memcpy(dst, src, sizeof(float) * (size_t)n * (size_t)och);
        return;
    }
    for (int f = 0; f < n; f++)
        for (int c = 0; c < pch; c++)
            dst[(size_t)f * (size_t)pch + (size_t)c] =
                c < och ? src[(size_t)f * (size_t)och + (size_t)c]
                        : (och == 1 ? src[(size_t)f] : 0.0f);
}

static void publish_chunk(cvd_audio_engine *e, const float *y, int n)
{
    chunk_hdr h = {(uint32_t)n, 0, e->gap};
    float hf[HDR];
    memcpy(hf, &h, sizeof h);
    if (cvd_spsc_write2(&e->pub, hf, HDR, y, (size_t)n * (size_t)e->cfg.out_channels)) {
        e->gap = 0;
    } else {
        /* full: the loop is behind; drop and count, never wait */
        e->gap += (uint64_t)n;
        add(&e->ring_dropped, (uint64_t)n);
    }
}

static void fifo_push(cvd_audio_engine *e, const float *y, int n)
{
    const size_t och = (size_t)e->cfg.out_channels;
    if (e->fifo_count + n > e->fifo_cap) {
        int lost = e->fifo_count + n - e->fifo_cap;
        add(&e->ring_dropped, (uint64_t)lost);
        n -= lost;
    }
    for (int i = 0; i < n;) {
        int at = (e->fifo_head + e->fifo_count) % e->fifo_cap;
        int run = e->fifo_cap - at;
        if (run > n - i)
            run = n - i;
        memcpy(e->fifo + (size_t)at * och, y + (size_t)i * och, sizeof(float) * (size_t)run * och);
        e->fifo_count += run;
        i += run;
    }
}

static void fifo_pop(cvd_audio_engine *e, float *out, int n)
{
    const int och = e->cfg.out_channels, pch = e->cfg.play_channels;
    int done = 0;
    while (done < n && e->fifo_count > 0) {
        int run = e->fifo_cap - e->fifo_head;
        if (run > e->fifo_count)
            run = e->fifo_count;
        if (run > n - done)
            run = n - done;
        map_frames(out + (size_t)done * (size_t)pch, pch,
                   e->fifo + (size_t)e->fifo_head * (size_t)och, och, run, e->out_map,
                   e->n_out_map);
        e->fifo_head = (e->fifo_head + run) % e->fifo_cap;
        e->fifo_count -= run;
        done += run;
    }
    if (done < n) {
        memset(out + (size_t)done * (size_t)pch, 0,
               sizeof(float) * (size_t)(n - done) * (size_t)pch);
        add(&e->underruns, 1);
    }
}

/* an output-only stream: the jitter buffer to the device */
static void play_jitter(cvd_audio_engine *e, float *out, int n)
{
    const int och = e->cfg.out_channels, pch = e->cfg.play_channels;
    size_t avail = cvd_spsc_readable(&e->jit) / (size_t)och;
    int done = 0;

    int draining = atomic_load_explicit(&e->draining, memory_order_acquire);
    if (!e->playing && (avail >= (size_t)e->cfg.jitter || (draining && avail > 0)))
        e->playing = 1;
    if (e->playing) {
        while (done < n) {
            int want = n - done < e->chunk ? n - done : e->chunk;
            int got = (int)(cvd_spsc_read(&e->jit, e->y, (size_t)want * (size_t)och) / (size_t)och);
            if (got == 0)
                break;
            map_frames(out + (size_t)done * (size_t)pch, pch, e->y, och, got, e->out_map,
                       e->n_out_map);
            done += got;
        }
        if (done < n) {
            if (draining) /* the end of the source, not an underrun */
                atomic_store_explicit(&e->draining, 0, memory_order_relaxed);
            else
                add(&e->underruns, 1);
            e->playing = 0; /* fill up again before playing on */
        }
    }
    if (done < n)
        memset(out + (size_t)done * (size_t)pch, 0,
               sizeof(float) * (size_t)(n - done) * (size_t)pch);
}

void cvd_audio_engine_process(cvd_audio_engine *e, const float *in, float *out,
                              unsigned long frames, unsigned long status)
{
    struct timespec t0, t1;
    /* CLOCK_MONOTONIC is read by the vDSO, in user space: no system call */
    clock_gettime(CLOCK_MONOTONIC, &t0);
#ifdef CVD_TEST_HOOKS
    if (e->slow_every > 0 && ++e->slow_count % e->slow_every == 0) {
        struct timespec d = {e->slow_ns / 1000000000L, e->slow_ns % 1000000000L};
        nanosleep(&d, NULL); /* test builds only: the fault being injected */
    }
#endif
    /* a new net, between two blocks: the old one goes back to the loop to be freed */
    cvd_net *nn = atomic_exchange_explicit(&e->pending, NULL, memory_order_acq_rel);
    if (nn != NULL) {
        cvd_net *old = e->net;
        e->net = nn;
        e->latency = e->pending_latency;
        e->fifo_head = 0;
        e->fifo_count = e->latency; /* the new model's latency, as silence */
        memset(e->fifo, 0, sizeof(float) * (size_t)e->latency * (size_t)e->cfg.out_channels);
        atomic_store_explicit(&e->retired, old, memory_order_release);
        add(&e->swaps, 1);
    }
    for (int k = 0; k < 4; k++)
        if (status & (1ul << k))
            add(&e->flags[k], 1);

    const int ich = e->cfg.in_channels, pch = e->cfg.play_channels;
    if (ich == 0) {
        if (out != NULL && pch > 0)
            play_jitter(e, out, (int)frames);
    } else {
        for (unsigned long off = 0; off < frames;) {
            int n = frames - off < (unsigned long)e->cfg.block ? (int)(frames - off) : e->cfg.block;
            const float *x = e->zeros;
            if (in != NULL && e->in_map != NULL) {
                /* the mapped capture channels, gathered into the model's frames */
                const int cch = e->cfg.capture_channels;
                const float *src = (const float *)in + off * (unsigned long)cch;
                for (int f = 0; f < n; f++)
                    for (int k = 0; k < ich; k++)
                        e->gather[f * ich + k] =
                            src[(size_t)f * (size_t)cch + (size_t)e->in_map[k]];
                x = e->gather;
            } else if (in != NULL) {
                x = (const float *)in + off * (unsigned long)ich;
            }
            const float *y = x;
            int ny = n;
            if (e->proc != NULL) {
                cvd_audio_proc_process(e->proc, x, n, e->y);
                y = e->y;
            } else if (e->net != NULL && cvd_net_process(e->net, x, n, e->y, &ny) == 0)
                y = e->y;
            else if (e->net != NULL)
                ny = 0;
            if (e->cfg.publish && ny > 0)
                publish_chunk(e, y, ny);
            if (pch > 0)
                fifo_push(e, y, ny);
            off += (unsigned long)n;
        }
        if (out != NULL && pch > 0)
            fifo_pop(e, out, (int)frames);
        add(&e->frames_in, frames);
    }
    if (pch > 0)
        add(&e->frames_out, frames);
    add(&e->callbacks, 1);

    clock_gettime(CLOCK_MONOTONIC, &t1);
    uint64_t ns = (uint64_t)((t1.tv_sec - t0.tv_sec) * 1000000000LL + (t1.tv_nsec - t0.tv_nsec));
    atomic_store_explicit(&e->ns_last, ns, memory_order_relaxed);
    add(&e->ns_sum, ns);
    unsigned long long mx = atomic_load_explicit(&e->ns_max, memory_order_relaxed);
    while (ns > mx && !atomic_compare_exchange_weak_explicit(
                          &e->ns_max, &mx, ns, memory_order_relaxed, memory_order_relaxed))
        ;
    /* the histogram: relaxed atomic adds, nothing else */
    if (e->stats != NULL)
        cvd_metrics_block_time(e->stats, ns);
}

int cvd_audio_engine_read(cvd_audio_engine *e, float *buf, uint64_t *dropped)
{
    float hf[HDR];
    chunk_hdr h;
    *dropped = 0;
    if (!e->cfg.publish || cvd_spsc_readable(&e->pub) < HDR)
        return 0;
    cvd_spsc_read(&e->pub, hf, HDR);
    memcpy(&h, hf, sizeof h);
    /* a chunk is written whole (one release of the head), so its frames are all there */
    cvd_spsc_read(&e->pub, buf, (size_t)h.frames * (size_t)e->cfg.out_channels);
    *dropped = h.dropped;
    return (int)h.frames;
}

size_t cvd_audio_engine_backlog(const cvd_audio_engine *e)
{
    if (!e->cfg.publish)
        return 0;
    /* the ring's floats hold chunk headers too: an upper bound of the frames */
    return cvd_spsc_readable((cvd_spsc *)&e->pub) / (size_t)e->cfg.out_channels;
}

int cvd_audio_engine_feed_room(cvd_audio_engine *e)
{
    if (e->cfg.in_channels != 0)
        return 0;
    size_t och = (size_t)e->cfg.out_channels;
    size_t have = cvd_spsc_readable(&e->jit) / och;
    return have >= (size_t)e->jit_frames ? 0 : e->jit_frames - (int)have;
}

int cvd_audio_engine_feed(cvd_audio_engine *e, const float *frames, int n)
{
    int room = cvd_audio_engine_feed_room(e);
    if (n > room)
        n = room;
    if (n <= 0)
        return 0;
    cvd_spsc_write2(&e->jit, frames, (size_t)n * (size_t)e->cfg.out_channels, NULL, 0);
    return n;
}

void cvd_audio_engine_source_ended(cvd_audio_engine *e)
{
    atomic_store_explicit(&e->draining, 1, memory_order_release);
}

int cvd_audio_engine_swap_chain(cvd_audio_engine *e, cvd_chain *chain, float in_gain,
                                float out_gain)
{
    if (e->proc == NULL)
        return CVD_ERANGE;
    int rc = cvd_audio_proc_swap(e->proc, chain, in_gain, out_gain);
    return rc == CVD_EINVAL ? CVD_ERANGE : rc;
}

int cvd_audio_engine_swap(cvd_audio_engine *e, cvd_net *net)
{
    if (e->proc != NULL)
        return CVD_ERANGE; /* a chain engine takes chains (cvd_audio_engine_swap_chain) */
    if (e->swap_open)
        return CVD_ESTATE;
    const cvd_model *m = cvd_net_model(net);
    int lat = cvd_model_latency(m);
    if (e->cfg.in_channels != cvd_model_in_channels(m) ||
        e->cfg.out_channels != cvd_model_out_channels(m) || cvd_net_max_out(net) > e->chunk ||
        lat + 2 * e->chunk + e->cfg.block > e->fifo_cap)
        return CVD_ERANGE;
    e->pending_latency = lat;
    e->swap_open = 1;
    atomic_store_explicit(&e->pending, net, memory_order_release);
    return CVD_OK;
}

int cvd_audio_engine_collect(cvd_audio_engine *e, int idle)
{
    if (e->proc != NULL)
        return cvd_audio_proc_swapping(e->proc) ? cvd_audio_proc_collect(e->proc, idle) : 0;
    if (!e->swap_open)
        return 0;
    if (idle) {
        /* no callback runs: finish the swap here */
        cvd_net *nn = atomic_exchange(&e->pending, NULL);
        if (nn != NULL) {
            cvd_net_destroy(e->net);
            e->net = nn;
            e->latency = e->pending_latency;
            e->fifo_head = 0;
            e->fifo_count = e->latency;
            memset(e->fifo, 0, sizeof(float) * (size_t)e->latency * (size_t)e->cfg.out_channels);
            add(&e->swaps, 1);
            e->swap_open = 0;
            return 1;
        }
    }
    cvd_net *old = atomic_exchange_explicit(&e->retired, NULL, memory_order_acq_rel);
    if (old == NULL && atomic_load(&e->pending) != NULL)
        return 0;         /* not taken yet */
    cvd_net_destroy(old); /* NULL when the stream had no model: fine */
    e->swap_open = 0;
    return 1;
}

void cvd_audio_engine_counters(const cvd_audio_engine *e, cvd_audio_counters *c)
{
    cvd_audio_engine *m = (cvd_audio_engine *)e;
    c->callbacks = atomic_load(&m->callbacks);
    c->frames_in = atomic_load(&m->frames_in);
    c->frames_out = atomic_load(&m->frames_out);
    for (int k = 0; k < 4; k++)
        c->flags[k] = atomic_load(&m->flags[k]);
    c->underruns = atomic_load(&m->underruns);
    c->ring_dropped = atomic_load(&m->ring_dropped);
    c->swaps = m->proc ? cvd_audio_proc_swaps(m->proc) : atomic_load(&m->swaps);
    c->block_ns_last = atomic_load(&m->ns_last);
    c->block_ns_max = atomic_load(&m->ns_max);
    c->block_ns_sum = atomic_load(&m->ns_sum);
}

uint64_t cvd_audio_engine_callbacks(const cvd_audio_engine *e)
{
    return atomic_load(&((cvd_audio_engine *)e)->callbacks);
}

#ifdef CVD_TEST_HOOKS
int cvd_audio_engine_test_failed(const cvd_audio_engine *e)
{
    cvd_audio_engine *m = (cvd_audio_engine *)e;
    return m->fail_at > 0 &&
           atomic_load_explicit(&m->callbacks, memory_order_relaxed) == m->fail_at;
}
#endif
