/*
 * Live audio through PortAudio: see audio.h and docs/AUDIO.md.
 *
 * Threads: the PortAudio callback runs cvd_audio_engine_process() and nothing else; every
 * other function here runs on the daemon's main loop (or, cvd_audio_prepare, on libuv's
 * thread pool), and only there are PortAudio, the log, the metrics registry and the
 * publish/subscribe registry called.
 */
#include "audio.h"

#include <errno.h>
#include <math.h>
#include <pa_linux_alsa.h>
#include <portaudio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>

#include "log.h"
#include "pubsub.h"

_Static_assert(CVD_AUDIO_INPUT_UNDERFLOW == paInputUnderflow, "PortAudio flag values");
_Static_assert(CVD_AUDIO_INPUT_OVERFLOW == paInputOverflow, "PortAudio flag values");
_Static_assert(CVD_AUDIO_OUTPUT_UNDERFLOW == paOutputUnderflow, "PortAudio flag values");
_Static_assert(CVD_AUDIO_OUTPUT_OVERFLOW == paOutputOverflow, "PortAudio flag values");
_Static_assert(CVD_AUDIO_PRIMING_OUTPUT == paPrimingOutput, "PortAudio flag values");

/* ---- the SPSC ring ------------------------------------------------------------------------ */

int cvd_spsc_init(cvd_spsc *r, size_t min_floats)
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

void cvd_spsc_free(cvd_spsc *r)
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

/* ---- the engine --------------------------------------------------------------------------- */

/* A published chunk in the ring: this header (as HDR floats), then frames * channels floats. */
typedef struct chunk_hdr {
    uint32_t frames;
    uint32_t pad;
    uint64_t dropped; /* frames lost just before these */
} chunk_hdr;
#define HDR ((size_t)(sizeof(chunk_hdr) / sizeof(float)))

struct cvd_audio_engine {
    cvd_audio_engine_config cfg;
    int chunk;     /* most frames the net writes per block: the size of y, and of a chunk */
    int latency;   /* of the callback's net */
    cvd_net *net;  /* the callback's */
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
    float *gather;              /* callback only: a block of mapped input frames */
    int fifo_head, fifo_count;
    float *zeros;    /* a block of silence for a missing input buffer */
    cvd_spsc pub;    /* callback -> loop: published chunks */
    uint64_t gap;    /* callback only: frames dropped since the last chunk that fitted */
    cvd_spsc jit;    /* loop -> callback: an output-only stream's frames */
    int jit_frames;  /* the most frames the loop keeps in jit */
    int playing;     /* callback only: the jitter buffer has filled */
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

int cvd_audio_engine_create(const cvd_audio_engine_config *cfg, cvd_model *model,
                            cvd_stream_stats *stats, cvd_audio_engine **out, cvd_err *err)
{
    cvd_audio_engine *e;
    int rc;

    *out = NULL;
    if (cfg->block < 1 || cfg->out_channels < 1 || cfg->in_channels < 0 ||
        cfg->play_channels < 0 || (cfg->in_channels == 0 && cfg->play_channels == 0))
        return cvd_err_set(err, CVD_EINVAL, "audio engine: bad configuration");
    if (model != NULL && cfg->in_channels != cvd_model_in_channels(model))
        return cvd_err_set(err, CVD_EINVAL, "audio engine: %d channels in, the model takes %d",
                           cfg->in_channels, cvd_model_in_channels(model));
    e = calloc(1, sizeof *e);
    if (e == NULL)
        return cvd_err_set(err, CVD_ENOMEM, "out of memory");
    e->cfg = *cfg;
    e->stats = stats;
    e->chunk = cfg->block;
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
        rc = cvd_spsc_init(&e->pub, frames * och + (frames / (size_t)cfg->block + 2) * HDR);
    }
    if (rc == CVD_OK && cfg->in_channels == 0) {
        int j = cfg->jitter > 0 ? cfg->jitter : 4 * cfg->block;
        e->cfg.jitter = j;
        /* the loop keeps at most this many queued: a source that runs faster than the device
         * loses frames at its subscription (counted there), so the delay stays bounded */
        e->jit_frames = 2 * j + cfg->block;
        rc = cvd_spsc_init(&e->jit, (size_t)e->jit_frames * och);
    }
    if (rc < 0) {
        cvd_audio_engine_destroy(e);
        return cvd_err_set(err, rc, rc == CVD_EINVAL ? "audio engine: a mapped channel is not "
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
    cvd_net_destroy(atomic_load(&e->pending));
    cvd_net_destroy(atomic_load(&e->retired));
    free(e->y);
    free(e->fifo);
    free(e->zeros);
    free(e->in_map);
    free(e->out_map);
    free(e->gather);
    cvd_spsc_free(&e->pub);
    cvd_spsc_free(&e->jit);
    free(e);
}

int cvd_audio_engine_chunk(const cvd_audio_engine *e)
{
    return e->chunk;
}

int cvd_audio_engine_latency(const cvd_audio_engine *e)
{
    return e->latency;
}

/* frame f of src (och channels) into frame f of dst (pch channels) */
static void map_frames(float *dst, int pch, const float *src, int och, int n,
                       const short *out_map, int n_map)
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
        map_frames(out + (size_t)done * (size_t)pch, pch, e->fifo + (size_t)e->fifo_head * (size_t)och,
                   och, run, e->out_map, e->n_out_map);
        e->fifo_head = (e->fifo_head + run) % e->fifo_cap;
        e->fifo_count -= run;
        done += run;
    }
    if (done < n) {
        memset(out + (size_t)done * (size_t)pch, 0, sizeof(float) * (size_t)(n - done) * (size_t)pch);
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
        memset(out + (size_t)done * (size_t)pch, 0, sizeof(float) * (size_t)(n - done) * (size_t)pch);
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
                        e->gather[f * ich + k] = src[(size_t)f * (size_t)cch + (size_t)e->in_map[k]];
                x = e->gather;
            } else if (in != NULL) {
                x = (const float *)in + off * (unsigned long)ich;
            }
            const float *y = x;
            int ny = n;
            if (e->net != NULL && cvd_net_process(e->net, x, n, e->y, &ny) == 0)
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
    while (ns > mx && !atomic_compare_exchange_weak_explicit(&e->ns_max, &mx, ns,
                                                             memory_order_relaxed,
                                                             memory_order_relaxed))
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

int cvd_audio_engine_swap(cvd_audio_engine *e, cvd_net *net)
{
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
        return 0; /* not taken yet */
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
    c->swaps = atomic_load(&m->swaps);
    c->block_ns_last = atomic_load(&m->ns_last);
    c->block_ns_max = atomic_load(&m->ns_max);
    c->block_ns_sum = atomic_load(&m->ns_sum);
}

/* ---- devices ------------------------------------------------------------------------------ */

static int pa_users; /* PortAudio is initialised while this is > 0 (main loop only) */

static int pa_up(cvd_err *err)
{
    if (pa_users++ > 0)
        return CVD_OK;
    PaError pe = Pa_Initialize();
    if (pe != paNoError) {
        pa_users = 0;
        return cvd_err_set(err, CVD_EIO, "PortAudio: %s", Pa_GetErrorText(pe));
    }
    return CVD_OK;
}

static void pa_down(void)
{
    if (pa_users > 0 && --pa_users == 0)
        Pa_Terminate();
}

static const char *host_name(const PaDeviceInfo *d)
{
    const PaHostApiInfo *h = Pa_GetHostApiInfo(d->hostApi);
    return h && h->name ? h->name : "?";
}

static void describe_device(int i, char *buf, size_t n)
{
    const PaDeviceInfo *d = Pa_GetDeviceInfo(i);
    if (d == NULL) {
        snprintf(buf, n, "%3d  ?", i);
        return;
    }
    snprintf(buf, n, "%3d  %s  [%s]  %d in, %d out, %.0f Hz%s%s", i, d->name, host_name(d),
             d->maxInputChannels, d->maxOutputChannels, d->defaultSampleRate,
             i == Pa_GetDefaultInputDevice() ? "  (default input)" : "",
             i == Pa_GetDefaultOutputDevice() ? "  (default output)" : "");
}

static void log_devices(void)
{
    char line[512];
    int n = Pa_GetDeviceCount();
    if (n <= 0) {
        cvd_log_error("  (PortAudio finds no device at all)");
        return;
    }
    for (int i = 0; i < n; i++) {
        describe_device(i, line, sizeof line);
        cvd_log_error("  %s", line);
    }
}

int cvd_audio_list_devices(FILE *f)
{
    cvd_err err = {0};
    char line[512];
    if (pa_up(&err) < 0) {
        fprintf(stderr, "convd: %s\n", err.msg);
        return 1;
    }
    int n = Pa_GetDeviceCount();
    fprintf(f, "PortAudio %s: %d devices (index, name, [host API], channels, default rate)\n",
            Pa_GetVersionText(), n < 0 ? 0 : n);
    for (int i = 0; i < n; i++) {
        describe_device(i, line, sizeof line);
        fprintf(f, "%s\n", line);
    }
    pa_down();
    return 0;
}

static int dev_channels(const PaDeviceInfo *d, int input)
{
    return input ? d->maxInputChannels : d->maxOutputChannels;
}

/* A device as a [stream] names it: "default", an index, an exact name, or a substring of
 * one name (case-insensitive). Returns the index, or < 0 with err set. */
static int find_device(const cvd_conf *c, const cvd_conf_stream *st, int input, int *missing,
                       cvd_err *err)
{
    const char *spec = input ? st->input : st->output;
    const char *key = input ? "input" : "output";
    const char *kind = input ? "capture" : "playback";
    int line = input ? st->input_line : st->output_line;
    int n = Pa_GetDeviceCount(), found = -1, matches = 0;
    char names[200] = "";

    if (line == 0)
        line = st->line;
    if (n < 0)
        n = 0;
    if (strcasecmp(spec, "default") == 0) {
        found = input ? Pa_GetDefaultInputDevice() : Pa_GetDefaultOutputDevice();
        if (found == paNoDevice)
            return cvd_err_set(err, CVD_EINVAL, "%s:%d: %s: there is no default %s device",
                               c->file, line, key, kind);
        return found;
    }
    if (spec[strspn(spec, "0123456789")] == '\0' && strlen(spec) < 6) {
        found = atoi(spec);
        if (found >= n)
            return cvd_err_set(err, CVD_EINVAL, "%s:%d: %s: there is no device %d (%d devices)",
                               c->file, line, key, found, n);
        if (dev_channels(Pa_GetDeviceInfo(found), input) < 1)
            return cvd_err_set(err, CVD_EINVAL, "%s:%d: %s: device %d '%s' has no %s channels",
                               c->file, line, key, found, Pa_GetDeviceInfo(found)->name, kind);
        return found;
    }
    for (int i = 0; i < n; i++) {
        const PaDeviceInfo *d = Pa_GetDeviceInfo(i);
        if (d && dev_channels(d, input) > 0 && strcmp(d->name, spec) == 0)
            return i;
    }
    for (int i = 0; i < n; i++) {
        const PaDeviceInfo *d = Pa_GetDeviceInfo(i);
        if (d == NULL || dev_channels(d, input) < 1 || strcasestr(d->name, spec) == NULL)
            continue;
        if (matches++ == 0)
            found = i;
        size_t l = strlen(names);
        if (l < sizeof names - 1)
            snprintf(names + l, sizeof names - l, "%s%d '%s'", l ? ", " : "", i, d->name);
    }
    if (matches == 1)
        return found;
    if (matches > 1)
        return cvd_err_set(err, CVD_EINVAL,
                           "%s:%d: %s: '%s' matches %d %s devices (%s): write more of the name, "
                           "or its index",
                           c->file, line, key, spec, matches, kind, names);
    *missing = 1;
    return cvd_err_set(err, CVD_EINVAL, "%s:%d: %s: no %s device matches '%s'; the devices "
                       "are (convd --list-devices):",
                       c->file, line, key, kind, spec);
}

/* ---- the manager (main loop) -------------------------------------------------------------- */

typedef struct astream {
    cvd_audio *a;
    cvd_runtime *rt; /* referenced: holds conf and model */
    const cvd_conf_stream *conf;
    cvd_model *model; /* NULL: none */
    struct stat model_st;
    int model_st_ok;
    int in_ch, out_ch, play_ch;
    int cap_ch; /* channels opened on the capture device: in_ch, or the highest mapped one */
    cvd_audio_engine *eng;
    PaStream *pa;
    int running;
    int realtime; /* real-time scheduling was asked for and the stream started with it */
    int jack;     /* the stream runs on PortAudio's JACK host API */
    int no_retry; /* its JACK server went away: PortAudio cannot reconnect in this process */
    double lat_in, lat_out;
    cvd_pub *pub;
    int pub_warned;
    cvd_sub *sub;
    double sub_retry;
    int sub_warned;
    float *buf; /* a chunk of frames (out_ch), for publishing and the source */
    int buf_frames;
    cvd_stream_stats *stats;
    cvd_audio_counters seen;   /* counters already added to the metrics */
    cvd_audio_counters logged; /* at the last log line */
    double last_log;
    uint64_t progress_callbacks;
    double progress_at;
    double retry_at;
    int backoff; /* seconds before the next retry: 1, 2, 4, ... 30 */
    int failures;
} astream;

struct cvd_audio {
    uv_loop_t *loop;
    uv_timer_t timer;
    int timer_init, timer_period;
    int pa; /* holds PortAudio up */
    int abandoned; /* PortAudio streams left open (see stream_failed): no Pa_Terminate */
    astream **s;
    int n, cap;
    double last_health, last_second;
    int stopped;
};

struct cvd_audio_prepared {
    int n;
    cvd_net **nets; /* per stream of the runtime; NULL without a model */
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int pa_callback(const void *in, void *out, unsigned long frames,
                       const PaStreamCallbackTimeInfo *ti, PaStreamCallbackFlags flags, void *user)
{
    (void)ti;
    cvd_audio_engine_process(user, in, out, frames, flags);
#ifdef CVD_TEST_HOOKS
    cvd_audio_engine *e = user;
    if (e->fail_at > 0 && atomic_load_explicit(&e->callbacks, memory_order_relaxed) == e->fail_at)
        return paAbort; /* test builds only: the device "fails" */
#endif
    return paContinue;
}

static cvd_model *stream_model(const cvd_runtime *rt, const cvd_conf_stream *st)
{
    return st->model_index >= 0 ? rt->models[st->model_index] : NULL;
}

/* input channels (0: none), and the channels of a processed frame */
static void stream_channels(const cvd_runtime *rt, const cvd_conf_stream *st, int *in, int *out)
{
    const cvd_model *m = stream_model(rt, st);
    int ch = st->channels ? st->channels : m ? cvd_model_in_channels(m) : 1;
    *in = st->input[0] ? ch : 0;
    *out = m ? cvd_model_out_channels(m) : ch;
}

/* " (capture channels 1,2 of 4)" for the log */
static void describe_map(char *buf, size_t cap, const char *what, const short *map, int n,
                         int of)
{
    int o = snprintf(buf, cap, " (%s channel%s ", what, n > 1 ? "s" : "");
    for (int k = 0; k < n && o < (int)cap - 8; k++)
        o += snprintf(buf + o, cap - (size_t)o, "%s%d", k ? "," : "", map[k] + 1);
    snprintf(buf + o, cap - (size_t)o, " of %d)", of);
}

/* channels to open on the capture device: the input's, or up to the highest mapped one */
static int capture_channels(const cvd_conf_stream *st, int in)
{
    int n = st->n_in_map ? 0 : in;
    for (int k = 0; k < st->n_in_map; k++)
        if (st->in_map[k] + 1 > n)
            n = st->in_map[k] + 1;
    return n;
}

static const char *model_path(const astream *s)
{
    return s->model ? s->rt->conf->models[s->conf->model_index].path : "";
}

static astream *astream_new(cvd_audio *a, cvd_runtime *rt, int idx, cvd_err *err)
{
    astream *s = calloc(1, sizeof *s);
    if (s == NULL) {
        cvd_err_set(err, CVD_ENOMEM, "out of memory");
        return NULL;
    }
    s->a = a;
    s->rt = cvd_runtime_ref(rt);
    s->conf = &rt->conf->streams[idx];
    s->model = stream_model(rt, s->conf);
    if (s->model && strncmp(model_path(s), "builtin:", 8) != 0)
        s->model_st_ok = stat(model_path(s), &s->model_st) == 0;
    stream_channels(rt, s->conf, &s->in_ch, &s->out_ch);
    s->cap_ch = capture_channels(s->conf, s->in_ch);
    s->backoff = 1;
    s->stats = cvd_metrics_stream(s->conf->name);
    if (s->stats)
        atomic_store(&s->stats->audio, 1);
    return s;
}

static int open_pub(astream *s, cvd_err *err)
{
    cvd_pub_info info = {.channels = s->out_ch,
                         .rate = s->conf->rate,
                         .latency = s->eng ? cvd_audio_engine_latency(s->eng)
                                           : (s->model ? cvd_model_latency(s->model) : 0)};
    snprintf(info.model, sizeof info.model, "%s", s->conf->model);
    return cvd_pub_create(s->conf->name, &info, &s->pub, err);
}

static void astream_close(astream *s, int graceful)
{
    if (s->pa != NULL) {
        if (graceful)
            Pa_StopStream(s->pa);
        else
            Pa_AbortStream(s->pa);
        Pa_CloseStream(s->pa);
        s->pa = NULL;
    }
    s->running = 0;
    if (s->stats)
        atomic_store(&s->stats->audio_running, 0);
    if (s->eng)
        cvd_audio_engine_collect(s->eng, 1);
}

static void astream_free(astream *s)
{
    if (s == NULL)
        return;
    astream_close(s, 0);
    cvd_pub_destroy(s->pub);
    cvd_sub_destroy(s->sub);
    if (!s->no_retry) /* else a stream left open may still point at the engine: kept */
        cvd_audio_engine_destroy(s->eng);
    cvd_runtime_unref(s->rt);
    free(s->buf);
    free(s);
}

static const char *pa_err(PaError pe)
{
    if (pe == paUnanticipatedHostError) {
        const PaHostErrorInfo *h = Pa_GetLastHostErrorInfo();
        if (h && h->errorText && h->errorText[0])
            return h->errorText;
    }
    return Pa_GetErrorText(pe);
}

/* Finds the devices, builds the engine if needed, opens and starts the PortAudio stream. */
static int astream_open(astream *s, int *missing, cvd_err *err)
{
    const cvd_conf *c = s->rt->conf;
    const cvd_conf_stream *st = s->conf;
    PaStreamParameters ip, op;
    int in_dev = -1, out_dev = -1, play_ch = 0, rc;
    PaError pe;

    *missing = 0;
    if (st->input[0] && (in_dev = find_device(c, st, 1, missing, err)) < 0)
        return CVD_EINVAL;
    if (st->output[0] && (out_dev = find_device(c, st, 0, missing, err)) < 0)
        return CVD_EINVAL;
    memset(&ip, 0, sizeof ip);
    memset(&op, 0, sizeof op);
    if (in_dev >= 0) {
        const PaDeviceInfo *d = Pa_GetDeviceInfo(in_dev);
        if (d->maxInputChannels < s->cap_ch)
            return cvd_err_set(err, CVD_EINVAL, "%s:%d: %s: device '%s' has %d capture "
                               "channels; the stream needs %d",
                               c->file,
                               st->n_in_map ? st->in_map_line
                               : st->input_line ? st->input_line
                                                : st->line,
                               st->n_in_map ? "input_channels" : "input", d->name,
                               d->maxInputChannels, s->cap_ch);
        ip.device = in_dev;
        ip.channelCount = s->cap_ch;
        ip.sampleFormat = paFloat32;
        ip.suggestedLatency = d->defaultLowInputLatency;
    }
    if (out_dev >= 0) {
        const PaDeviceInfo *d = Pa_GetDeviceInfo(out_dev);
        play_ch = st->n_out_map ? 0 : s->out_ch;
        for (int k = 0; k < st->n_out_map; k++) /* up to the highest mapped channel */
            if (st->out_map[k] + 1 > play_ch)
                play_ch = st->out_map[k] + 1;
        op.device = out_dev;
        op.sampleFormat = paFloat32;
        op.suggestedLatency = d->defaultLowOutputLatency;
        op.channelCount = play_ch;
        /* a mono stream on a device that only plays in stereo (or more): every channel */
        if (!st->n_out_map && s->out_ch == 1 && d->maxOutputChannels >= 2 &&
            Pa_IsFormatSupported(in_dev >= 0 ? &ip : NULL, &op, st->rate) != paFormatIsSupported)
            op.channelCount = play_ch = 2;
        if (d->maxOutputChannels < play_ch)
            return cvd_err_set(err, CVD_EINVAL, "%s:%d: %s: device '%s' has %d playback "
                               "channels; the stream needs %d",
                               c->file,
                               st->n_out_map ? st->out_map_line
                               : st->output_line ? st->output_line
                                                 : st->line,
                               st->n_out_map ? "output_channels" : "output", d->name,
                               d->maxOutputChannels, play_ch);
    }
    pe = Pa_IsFormatSupported(in_dev >= 0 ? &ip : NULL, out_dev >= 0 ? &op : NULL, st->rate);
    if (pe != paFormatIsSupported)
        return cvd_err_set(err, CVD_EINVAL, "%s:%d: [stream %s]: the devices refuse %d Hz, %d in "
                           "and %d out channels of float32: %s",
                           c->file, st->line, st->name, st->rate, s->in_ch, play_ch, pa_err(pe));

    /* the engine: kept across device restarts unless the device's channels changed */
    if (s->eng == NULL || play_ch != s->play_ch) {
        cvd_audio_engine_config ec = {.in_channels = s->in_ch,
                                      .capture_channels = s->cap_ch,
                                      .in_map = st->n_in_map ? st->in_map : NULL,
                                      .out_map = st->n_out_map ? st->out_map : NULL,
                                      .n_out_map = st->n_out_map,
                                      .out_channels = s->out_ch,
                                      .play_channels = play_ch,
                                      .block = st->block,
                                      .rate = st->rate,
                                      .publish = st->publish,
                                      .jitter = st->jitter,
                                      .hop = cvd_runtime_model_hop(s->rt, s->model)};
        cvd_audio_engine *ne = NULL;
        if ((rc = cvd_audio_engine_create(&ec, s->model, s->stats, &ne, err)) < 0)
            return rc;
        cvd_audio_engine_destroy(s->eng);
        s->eng = ne;
        s->play_ch = play_ch;
        memset(&s->seen, 0, sizeof s->seen);
        memset(&s->logged, 0, sizeof s->logged);
        free(s->buf);
        s->buf_frames = cvd_audio_engine_chunk(ne) > 1024 ? cvd_audio_engine_chunk(ne) : 1024;
        s->buf = malloc(sizeof(float) * (size_t)s->buf_frames * (size_t)s->out_ch);
        if (s->buf == NULL)
            return cvd_err_set(err, CVD_ENOMEM, "out of memory");
    }

    pe = Pa_OpenStream(&s->pa, in_dev >= 0 ? &ip : NULL, out_dev >= 0 ? &op : NULL, st->rate,
                       (unsigned long)st->block, paNoFlag, pa_callback, s->eng);
    if (pe != paNoError) {
        s->pa = NULL;
        return cvd_err_set(err, CVD_EIO, "[stream %s]: cannot open the device: %s", st->name,
                           pa_err(pe));
    }
    const PaDeviceInfo *any = Pa_GetDeviceInfo(in_dev >= 0 ? in_dev : out_dev);
    const PaHostApiInfo *host = Pa_GetHostApiInfo(any->hostApi);
    s->realtime = st->realtime && host && host->type == paALSA;
    s->jack = host && host->type == paJACK;
    if (s->realtime)
        PaAlsa_EnableRealtimeScheduling(s->pa, 1);
    pe = Pa_StartStream(s->pa);
    if (pe != paNoError && s->realtime) {
        /* not permitted here (no CAP_SYS_NICE, no RLIMIT_RTPRIO): run without */
        cvd_log_warning("stream %s: real-time scheduling refused (%s); running at normal "
                        "priority",
                        st->name, pa_err(pe));
        Pa_CloseStream(s->pa);
        s->realtime = 0;
        pe = Pa_OpenStream(&s->pa, in_dev >= 0 ? &ip : NULL, out_dev >= 0 ? &op : NULL,
                           st->rate, (unsigned long)st->block, paNoFlag, pa_callback, s->eng);
        if (pe == paNoError)
            pe = Pa_StartStream(s->pa);
    }
    if (pe != paNoError) {
        if (s->pa)
            Pa_CloseStream(s->pa);
        s->pa = NULL;
        return cvd_err_set(err, CVD_EIO, "[stream %s]: cannot start the device: %s", st->name,
                           pa_err(pe));
    }
    const PaStreamInfo *si = Pa_GetStreamInfo(s->pa);
    s->lat_in = si && in_dev >= 0 ? si->inputLatency : 0;
    s->lat_out = si && out_dev >= 0 ? si->outputLatency : 0;
    s->running = 1;
    s->progress_callbacks = 0;
    s->progress_at = now_s();
    const int mlat = cvd_audio_engine_latency(s->eng);
    const double total = s->lat_in + s->lat_out + (double)mlat / st->rate;
    if (s->stats) {
        atomic_store(&s->stats->audio_running, 1);
        atomic_store(&s->stats->audio_latency_us, (unsigned long long)llround(total * 1e6));
    }
    char what[600];
    snprintf(what, sizeof what, "%s%s%s%s%s -> %s%s%s -> %s%s%s%s%s",
             in_dev >= 0 ? "capture '" : "", in_dev >= 0 ? Pa_GetDeviceInfo(in_dev)->name : "",
             in_dev >= 0 ? "'" : "source '", in_dev >= 0 ? "" : st->source,
             in_dev >= 0 ? "" : "' (jitter buffer)", s->model ? "model '" : "",
             s->model ? st->model : "unchanged", s->model ? "'" : "",
             out_dev >= 0 ? "playback '" : "", out_dev >= 0 ? Pa_GetDeviceInfo(out_dev)->name : "",
             out_dev >= 0 ? "'" : "", st->publish ? (out_dev >= 0 ? " and " : "") : "",
             st->publish ? "subscribers" : "");
    char imap[CVD_CONF_MAP_MAX * 6 + 40] = "", omap[CVD_CONF_MAP_MAX * 6 + 40] = "";
    if (st->n_in_map && in_dev >= 0)
        describe_map(imap, sizeof imap, "capture", st->in_map, st->n_in_map, s->cap_ch);
    if (st->n_out_map && out_dev >= 0)
        describe_map(omap, sizeof omap, "playback", st->out_map, st->n_out_map, play_ch);
    else if (play_ch > s->out_ch)
        snprintf(omap, sizeof omap, " (mono on every channel)");
    cvd_log_info("stream %s: %s [%s]; %d Hz, %d%s -> %d channels%s, block %d (%.2f ms)",
                 st->name, what, host && host->name ? host->name : "?", st->rate,
                 s->in_ch ? s->in_ch : s->out_ch, imap, play_ch ? play_ch : s->out_ch, omap,
                 st->block, 1000.0 * st->block / st->rate);
    cvd_log_info("stream %s: latency %.2f ms: device input %.2f ms + output %.2f ms + model %d "
                 "frames (%.2f ms)%s",
                 st->name, total * 1000, s->lat_in * 1000, s->lat_out * 1000, mlat,
                 1000.0 * mlat / st->rate,
                 s->realtime ? "; real-time scheduling (SCHED_FIFO) requested" : "");
    return CVD_OK;
}

/* published frames to the subscribers */
static void drain(astream *s)
{
    if (!s->conf->publish || s->eng == NULL)
        return;
    /* at most what is there now: an unpaced device must not keep the loop here */
    size_t budget = cvd_spsc_readable(&s->eng->pub);
    while (budget > HDR) {
        uint64_t dropped = 0;
        int n = cvd_audio_engine_read(s->eng, s->buf, &dropped);
        if (n == 0 && dropped == 0)
            break;
        size_t used = HDR + (size_t)n * (size_t)s->out_ch;
        budget = budget > used ? budget - used : 0;
        if (s->pub == NULL)
            continue;
        if (dropped)
            cvd_pub_gap(s->pub, dropped);
        if (n > 0)
            cvd_pub_write(s->pub, s->buf, n);
    }
}

static void no_wake(void *ctx)
{
    (void)ctx;
}

/* an output-only stream: its source's frames into the jitter buffer */
static void feed_source(astream *s, double now)
{
    cvd_err err = {0};
    if (s->conf->input[0] || s->eng == NULL)
        return;
    if (s->sub == NULL) {
        cvd_pub_info info;
        if (now < s->sub_retry)
            return;
        s->sub_retry = now + 0.5;
        int ring = 2 * s->eng->cfg.jitter + 2 * s->conf->block;
        if (cvd_sub_create(s->conf->source, ring, 0, no_wake, NULL, &s->sub, &info, &err) < 0) {
            if (!s->sub_warned)
                cvd_log_info("stream %s: waiting for stream '%s' to be published", s->conf->name,
                             s->conf->source);
            s->sub_warned = 1;
            return;
        }
        if (info.channels != s->out_ch || (info.rate && info.rate != s->conf->rate)) {
            if (s->sub_warned != 2)
                cvd_log_warning("stream %s: source '%s' has %d channels at %d Hz; this stream "
                                "plays %d at %d Hz: not playing it",
                                s->conf->name, s->conf->source, info.channels, info.rate,
                                s->out_ch, s->conf->rate);
            s->sub_warned = 2;
            cvd_sub_destroy(s->sub);
            s->sub = NULL;
            return;
        }
        s->sub_warned = 0;
        cvd_log_info("stream %s: playing stream '%s' (model %s, latency %d frames), jitter "
                     "buffer %d frames",
                     s->conf->name, s->conf->source, info.model[0] ? info.model : "none",
                     info.latency, s->eng->cfg.jitter);
    }
    for (;;) {
        int room = cvd_audio_engine_feed_room(s->eng);
        if (room <= 0)
            return;
        uint64_t dropped = 0;
        int state = 0;
        int n = cvd_sub_read(s->sub, s->buf, room < s->buf_frames ? room : s->buf_frames,
                             &dropped, &state);
        if (n > 0)
            cvd_audio_engine_feed(s->eng, s->buf, n);
        if (state != 0) {
            cvd_audio_engine_source_ended(s->eng);
            cvd_log_info("stream %s: source '%s' ended; waiting for it again", s->conf->name,
                         s->conf->source);
            cvd_sub_destroy(s->sub);
            s->sub = NULL;
            s->sub_retry = now + 0.5;
            return;
        }
        if (n == 0)
            return;
    }
}

static void stream_failed(astream *s, double now, const char *why)
{
    s->failures++;
    if (s->stats)
        atomic_fetch_add(&s->stats->audio_failures, 1);
    if (s->jack) {
        /* PortAudio 19.6's JACK host asserts (aborts the process) when it closes a stream
         * whose server has gone, and cannot connect to a new server without Pa_Terminate,
         * which would close it: the stream is left open and not retried */
        cvd_log_error("stream %s: %s: stopped; its JACK server is gone, and PortAudio cannot "
                      "reconnect to one in a running process: restart convd once the JACK "
                      "server runs again (the rest of the daemon goes on serving)",
                      s->conf->name, why);
        s->pa = NULL;
        s->a->abandoned++;
        s->no_retry = 1;
        astream_close(s, 0);
        return;
    }
    cvd_log_error("stream %s: %s: stopped; retrying in %d s", s->conf->name, why, s->backoff);
    astream_close(s, 0);
    s->retry_at = now + s->backoff;
    s->backoff = s->backoff * 2 > 30 ? 30 : s->backoff * 2;
}

static int count_running(const cvd_audio *a)
{
    int n = 0;
    for (int i = 0; i < a->n; i++)
        n += a->s[i]->running;
    return n;
}

static void try_restart(cvd_audio *a, astream *s, double now)
{
    cvd_err err = {0};
    int missing = 0;
    if (count_running(a) == 0 && a->pa && !a->abandoned) {
        /* nothing is running: PortAudio again, so that a device plugged back in is seen */
        Pa_Terminate();
        PaError pe = Pa_Initialize();
        if (pe != paNoError) {
            cvd_log_error("PortAudio: %s", Pa_GetErrorText(pe));
            s->retry_at = now + s->backoff;
            return;
        }
    }
    if (astream_open(s, &missing, &err) == 0) {
        cvd_log_info("stream %s: running again (after %d failure%s)", s->conf->name, s->failures,
                     s->failures == 1 ? "" : "s");
        s->backoff = 1;
        return;
    }
    s->retry_at = now + s->backoff;
    cvd_log_warning("stream %s: %s; retrying in %d s", s->conf->name, err.msg, s->backoff);
    s->backoff = s->backoff * 2 > 30 ? 30 : s->backoff * 2;
}

/* once a second: counters to the metrics, and at most one warning line per stream per 10 s */
static void account(astream *s, double now)
{
    cvd_audio_counters c;
    if (s->eng == NULL)
        return;
    cvd_audio_engine_counters(s->eng, &c);
    if (s->stats) {
        cvd_stream_stats *m = s->stats;
        for (int k = 0; k < 4; k++)
            atomic_fetch_add(&m->audio_xruns[k], c.flags[k] - s->seen.flags[k]);
        atomic_fetch_add(&m->audio_underruns, c.underruns - s->seen.underruns);
        atomic_fetch_add(&m->frames_in, c.frames_in - s->seen.frames_in);
        atomic_fetch_add(&m->frames_out, c.frames_out - s->seen.frames_out);
        if (c.block_ns_max > atomic_load(&m->audio_block_ns_max))
            atomic_store(&m->audio_block_ns_max, c.block_ns_max);
        if (s->running && s->pa)
            atomic_store(&m->audio_cpu_permille,
                         (unsigned long long)llround(Pa_GetStreamCpuLoad(s->pa) * 1000));
    }
    cvd_metrics_dropped(CVD_DROP_AUDIO_RING, c.ring_dropped - s->seen.ring_dropped);
    s->seen = c;

    const cvd_audio_counters *l = &s->logged;
    uint64_t d[6] = {c.flags[0] - l->flags[0], c.flags[1] - l->flags[1], c.flags[2] - l->flags[2],
                     c.flags[3] - l->flags[3], c.underruns - l->underruns,
                     c.ring_dropped - l->ring_dropped};
    int any = 0;
    for (int k = 0; k < 6; k++)
        any |= d[k] != 0;
    if (!any || (s->last_log > 0 && now - s->last_log < 10))
        return;
    const double budget_ms = 1000.0 * s->conf->block / s->conf->rate;
    cvd_log_warning("stream %s: since %s: input underflow %llu, input overflow %llu, output "
                    "underflow %llu, output overflow %llu, underruns %llu, ring drops %llu "
                    "frames; cpu load %.2f, longest block %.3f ms of %.3f",
                    s->conf->name, s->last_log > 0 ? "the last report" : "the start",
                    (unsigned long long)d[0], (unsigned long long)d[1], (unsigned long long)d[2],
                    (unsigned long long)d[3], (unsigned long long)d[4], (unsigned long long)d[5],
                    s->running && s->pa ? Pa_GetStreamCpuLoad(s->pa) : 0.0,
                    (double)c.block_ns_max * 1e-6, budget_ms);
    s->logged = c;
    s->last_log = now;
}

static void on_tick(uv_timer_t *t)
{
    cvd_audio *a = t->data;
    double now = now_s();
    int health = now - a->last_health >= 0.1, second = now - a->last_second >= 1.0;
    if (a->stopped)
        return;
    if (health)
        a->last_health = now;
    if (second)
        a->last_second = now;
    for (int i = 0; i < a->n; i++) {
        astream *s = a->s[i];
        if (s->conf->publish && s->pub == NULL && now >= s->sub_retry) {
            cvd_err err = {0};
            if (open_pub(s, &err) < 0) {
                if (!s->pub_warned)
                    cvd_log_warning("stream %s: cannot publish: %s (trying again)",
                                    s->conf->name, err.msg);
                s->pub_warned = 1;
                s->sub_retry = now + 1;
            } else if (s->pub_warned) {
                cvd_log_info("stream %s: published", s->conf->name);
                s->pub_warned = 0;
            }
        }
        if (s->running) {
            drain(s);
            feed_source(s, now);
            cvd_audio_engine_collect(s->eng, 0);
            if (health) {
                PaError act = Pa_IsStreamActive(s->pa);
                uint64_t cb = atomic_load(&s->eng->callbacks);
                double stall = 2.0 + 20.0 * s->conf->block / s->conf->rate;
                if (cb != s->progress_callbacks) {
                    s->progress_callbacks = cb;
                    s->progress_at = now;
                }
                if (act != 1) {
                    char why[160];
                    snprintf(why, sizeof why, "the device stopped (%s)",
                             act < 0 ? pa_err(act) : "its stream finished");
                    stream_failed(s, now, why);
                } else if (now - s->progress_at > stall) {
                    char why[160];
                    snprintf(why, sizeof why, "no callback from the device for %.1f s",
                             now - s->progress_at);
                    stream_failed(s, now, why);
                }
            }
        } else if (now >= s->retry_at && !s->no_retry) {
            try_restart(a, s, now);
        }
        if (second)
            account(s, now);
    }
}

static void set_timer(cvd_audio *a)
{
    /* the loop turn that drains and feeds the rings: every block, 1 to 5 ms */
    int period = 5;
    for (int i = 0; i < a->n; i++) {
        int ms = (int)(1000.0 * a->s[i]->conf->block / a->s[i]->conf->rate);
        if (ms < period)
            period = ms;
    }
    if (period < 1)
        period = 1;
    if (a->timer_period != period) {
        a->timer_period = period;
        uv_timer_start(&a->timer, on_tick, (uint64_t)period, (uint64_t)period);
    }
}

static cvd_audio *manager_new(uv_loop_t *loop, cvd_err *err)
{
    cvd_audio *a = calloc(1, sizeof *a);
    if (a == NULL) {
        cvd_err_set(err, CVD_ENOMEM, "out of memory");
        return NULL;
    }
    if (pa_up(err) < 0) {
        free(a);
        return NULL;
    }
    a->pa = 1;
    a->loop = loop;
    uv_timer_init(loop, &a->timer);
    a->timer.data = a;
    a->timer_init = 1;
    return a;
}

static int add_stream(cvd_audio *a, astream *s)
{
    if (a->n == a->cap) {
        int nc = a->cap ? 2 * a->cap : 4;
        astream **ns = realloc(a->s, sizeof *ns * (size_t)nc);
        if (ns == NULL)
            return CVD_ENOMEM;
        a->s = ns;
        a->cap = nc;
    }
    a->s[a->n++] = s;
    return CVD_OK;
}

int cvd_audio_start(uv_loop_t *loop, cvd_runtime *rt, cvd_audio **out, cvd_err *err)
{
    const cvd_conf *c = rt->conf;
    *out = NULL;
    if (c->n_streams == 0)
        return CVD_OK;
    cvd_audio *a = manager_new(loop, err);
    if (a == NULL) {
        cvd_log_error("%s", err->msg);
        return CVD_EIO;
    }
    for (int i = 0; i < c->n_streams; i++) {
        int missing = 0, rc;
        astream *s = astream_new(a, rt, i, err);
        rc = s ? add_stream(a, s) : CVD_ENOMEM;
        if (rc < 0) {
            astream_free(s);
        } else {
            if (s->conf->publish)
                rc = open_pub(s, err);
            if (rc == 0)
                rc = astream_open(s, &missing, err);
            if (rc < 0 && strncmp(err->msg, c->file, strlen(c->file)) != 0)
                cvd_err_prefix(err, "%s:%d", c->file, s->conf->line);
        }
        if (rc < 0) {
            cvd_log_error("%s", err->msg);
            if (missing)
                log_devices();
            cvd_audio_stop(a);
            *out = a; /* the caller runs the loop for the timer's close, then frees */
            return rc;
        }
    }
    set_timer(a);
    *out = a;
    return CVD_OK;
}

int cvd_audio_running(const cvd_audio *a)
{
    return a ? count_running(a) : 0;
}

void cvd_audio_stop(cvd_audio *a)
{
    if (a == NULL || a->stopped)
        return;
    a->stopped = 1;
    for (int i = 0; i < a->n; i++) {
        astream *s = a->s[i];
        astream_close(s, 1);
        drain(s); /* what the callback published last */
        cvd_pub_destroy(s->pub);
        s->pub = NULL;
        cvd_sub_destroy(s->sub);
        s->sub = NULL;
    }
    if (a->timer_init && !uv_is_closing((uv_handle_t *)&a->timer))
        uv_close((uv_handle_t *)&a->timer, NULL);
}

void cvd_audio_free(cvd_audio *a)
{
    if (a == NULL)
        return;
    for (int i = 0; i < a->n; i++)
        astream_free(a->s[i]);
    free(a->s);
    if (a->pa && !a->abandoned)
        pa_down();
    free(a);
}

/* ---- reload ------------------------------------------------------------------------------- */

cvd_audio_prepared *cvd_audio_prepare(cvd_runtime *rt, cvd_err *err)
{
    const cvd_conf *c = rt->conf;
    cvd_audio_prepared *p = calloc(1, sizeof *p);
    if (p == NULL || (p->nets = calloc((size_t)c->n_streams + 1, sizeof *p->nets)) == NULL) {
        free(p);
        cvd_err_set(err, CVD_ENOMEM, "out of memory");
        return NULL;
    }
    p->n = c->n_streams;
    for (int i = 0; i < c->n_streams; i++) {
        cvd_model *m = stream_model(rt, &c->streams[i]);
        if (m && cvd_net_create_hop(m, c->streams[i].block, cvd_runtime_model_hop(rt, m),
                                    &p->nets[i], err) < 0) {
            cvd_err_prefix(err, "%s:%d: [stream %s]", c->file, c->streams[i].line,
                           c->streams[i].name);
            cvd_audio_prepared_free(p);
            return NULL;
        }
    }
    return p;
}

void cvd_audio_prepared_free(cvd_audio_prepared *p)
{
    if (p == NULL)
        return;
    for (int i = 0; i < p->n; i++)
        cvd_net_destroy(p->nets[i]);
    free(p->nets);
    free(p);
}

static int same_device_setup(const cvd_conf_stream *x, const cvd_conf_stream *y)
{
    return strcmp(x->input, y->input) == 0 && strcmp(x->output, y->output) == 0 &&
           x->rate == y->rate && x->channels == y->channels && x->block == y->block &&
           x->publish == y->publish && strcmp(x->source, y->source) == 0 &&
           x->jitter == y->jitter && x->realtime == y->realtime && x->n_in_map == y->n_in_map &&
           memcmp(x->in_map, y->in_map, sizeof(short) * (size_t)x->n_in_map) == 0 &&
           x->n_out_map == y->n_out_map &&
           memcmp(x->out_map, y->out_map, sizeof(short) * (size_t)x->n_out_map) == 0;
}

/* the new runtime's model for a running stream is another one (by name, path or file) */
static int model_changed(const astream *s, const cvd_runtime *rt, const cvd_conf_stream *ns)
{
    if (strcmp(s->conf->model, ns->model) != 0)
        return 1;
    if (ns->model_index < 0)
        return 0;
    const char *np = rt->conf->models[ns->model_index].path;
    if (strcmp(model_path(s), np) != 0 ||
        rt->conf->models[ns->model_index].hop != s->rt->conf->models[s->conf->model_index].hop)
        return 1;
    if (strncmp(np, "builtin:", 8) == 0)
        return 0;
    struct stat st;
    if (stat(np, &st) != 0 || !s->model_st_ok)
        return 1;
    return st.st_mtim.tv_sec != s->model_st.st_mtim.tv_sec ||
           st.st_mtim.tv_nsec != s->model_st.st_mtim.tv_nsec || st.st_size != s->model_st.st_size ||
           st.st_ino != s->model_st.st_ino;
}

static void start_new(cvd_audio *a, cvd_runtime *rt, int j, double now)
{
    cvd_err err = {0};
    int missing = 0;
    astream *s = astream_new(a, rt, j, &err);
    if (s == NULL || add_stream(a, s) < 0) {
        astream_free(s);
        cvd_log_error("stream %s: out of memory", rt->conf->streams[j].name);
        return;
    }
    if (s->conf->publish && open_pub(s, &err) < 0) {
        cvd_log_warning("stream %s: cannot publish: %s (trying again)", s->conf->name, err.msg);
        s->pub_warned = 1;
    }
    if (astream_open(s, &missing, &err) < 0) {
        s->retry_at = now + s->backoff;
        cvd_log_error("stream %s: %s; retrying in %d s", s->conf->name, err.msg, s->backoff);
        s->backoff *= 2;
    }
}

void cvd_audio_reload(cvd_audio **ap, uv_loop_t *loop, cvd_runtime *rt, cvd_audio_prepared *p)
{
    cvd_err err = {0};
    cvd_audio *a = *ap;
    const cvd_conf *c = rt->conf;
    double now = now_s();
    int *kept;

    if (a == NULL) {
        if (c->n_streams == 0) {
            cvd_audio_prepared_free(p);
            return;
        }
        if ((a = manager_new(loop, &err)) == NULL) {
            cvd_log_error("reload: audio: %s", err.msg);
            cvd_audio_prepared_free(p);
            return;
        }
        *ap = a;
    }
    if (a->stopped) {
        cvd_audio_prepared_free(p);
        return;
    }
    kept = calloc((size_t)c->n_streams + 1, sizeof *kept);
    if (kept == NULL) {
        cvd_log_error("reload: audio: out of memory");
        cvd_audio_prepared_free(p);
        return;
    }
    for (int i = 0; i < a->n;) {
        astream *s = a->s[i];
        int j = cvd_conf_find_stream(c, s->conf->name);
        if (j < 0) {
            cvd_log_info("stream %s: removed from the configuration: stopped", s->conf->name);
            astream_free(s);
            a->s[i] = a->s[--a->n];
            continue;
        }
        const cvd_conf_stream *ns = &c->streams[j];
        int in_ch, out_ch;
        stream_channels(rt, ns, &in_ch, &out_ch);
        cvd_model *nm = stream_model(rt, ns);
        int restart = !same_device_setup(s->conf, ns) || in_ch != s->in_ch ||
                      out_ch != s->out_ch || (nm == NULL) != (s->model == NULL);
        int swap = !restart && model_changed(s, rt, ns);
        if (swap && s->eng != NULL) {
            cvd_net *net = p && j < p->n ? p->nets[j] : NULL;
            int old_lat = cvd_audio_engine_latency(s->eng);
            int rc = net ? cvd_audio_engine_swap(s->eng, net) : CVD_ERANGE;
            if (rc == 0) {
                p->nets[j] = NULL;
                if (!s->running)
                    cvd_audio_engine_collect(s->eng, 1);
                cvd_log_info("stream %s: model '%s' swapped in without stopping the device "
                             "(latency %d frames)",
                             ns->name, ns->model, cvd_model_latency(nm));
                if (s->pub && cvd_model_latency(nm) != old_lat) {
                    /* subscribers were told the old latency: they see the end, and may
                     * subscribe again */
                    cvd_pub_destroy(s->pub);
                    s->pub = NULL;
                }
            } else {
                restart = 1;
            }
        }
        if (restart) {
            cvd_log_info("stream %s: its device settings changed: restarting it", ns->name);
            astream_free(s);
            a->s[i] = a->s[--a->n];
            continue; /* started below as a new stream */
        }
        /* the stream now belongs to the new runtime */
        cvd_runtime *old = s->rt;
        s->rt = cvd_runtime_ref(rt);
        s->conf = ns;
        s->model = nm;
        if (swap && nm && strncmp(model_path(s), "builtin:", 8) != 0)
            s->model_st_ok = stat(model_path(s), &s->model_st) == 0;
        cvd_runtime_unref(old);
        kept[j] = 1;
        i++;
    }
    for (int j = 0; j < c->n_streams; j++)
        if (!kept[j])
            start_new(a, rt, j, now);
    free(kept);
    cvd_audio_prepared_free(p);
    set_timer(a);
}

/* ---- --check ------------------------------------------------------------------------------ */

int cvd_audio_check(cvd_runtime *rt, FILE *out)
{
    const cvd_conf *c = rt->conf;
    cvd_err err = {0};
    int bad = 0;
    if (c->n_streams == 0)
        return 0;
    if (pa_up(&err) < 0) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    for (int i = 0; i < c->n_streams && !bad; i++) {
        const cvd_conf_stream *st = &c->streams[i];
        int in = -1, outd = -1, missing = 0;
        if ((st->input[0] && (in = find_device(c, st, 1, &missing, &err)) < 0) ||
            (st->output[0] && (outd = find_device(c, st, 0, &missing, &err)) < 0)) {
            fprintf(stderr, "%s\n", err.msg);
            if (missing) {
                char line[512];
                for (int k = 0; k < Pa_GetDeviceCount(); k++) {
                    describe_device(k, line, sizeof line);
                    fprintf(stderr, "  %s\n", line);
                }
            }
            bad = 1;
            break;
        }
        fprintf(out, "  stream %s: input %s%s%s, output %s%s%s, model %s, %d Hz, block %d%s\n",
                st->name, in >= 0 ? "'" : "", in >= 0 ? Pa_GetDeviceInfo(in)->name : "none",
                in >= 0 ? "'" : "", outd >= 0 ? "'" : "",
                outd >= 0 ? Pa_GetDeviceInfo(outd)->name : "none", outd >= 0 ? "'" : "",
                st->model[0] ? st->model : "none", st->rate, st->block,
                st->publish ? ", published" : "");
    }
    pa_down();
    return bad;
}
