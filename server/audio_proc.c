/* SPDX-License-Identifier: Apache-2.0 */
/* A live stream's processing: see audio_proc.h. */
#include "audio_proc.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* a chain with the gains its models' levels ask for */
typedef struct slot {
    cvd_chain *chain; /* NULL: pass-through */
    float gin, gout;
} slot;

struct cvd_audio_proc {
    cvd_audio_proc_config cfg;
    /* callback side */
    slot *cur;         /* the chain playing (fading in while old != NULL) */
    slot *old;         /* fading out */
    int fade_pos;      /* frames of the fade done */
    float g_in, g_out; /* the user's gains as last applied (linear) */
    float wet;         /* 1: processed, 0: bypassed (fades between) */
    cvd_limiter lim;
    float *xin;           /* block * in_ch: the input with a slot's gain */
    float *yo, *yn, *dry; /* block * out_ch */
    /* shared */
    _Atomic(slot *) pending;       /* controlling thread -> callback */
    _Atomic(slot *) retired;       /* callback -> controlling thread */
    atomic_uint in_bits, out_bits; /* the user's gains, linear, as float bits */
    atomic_int bypass;
    atomic_ullong swaps, fades;
    atomic_uint limiter_bits;
    /* controlling thread */
    int swap_open;
    int latency;
    double in_db, out_db;
};

static unsigned fbits(float f)
{
    unsigned u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static float bitsf(unsigned u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static void slot_free(slot *s)
{
    if (s == NULL)
        return;
    cvd_chain_destroy(s->chain);
    free(s);
}

static int chain_fits(const cvd_audio_proc_config *cfg, const cvd_chain *c)
{
    if (c == NULL)
        return cfg->in_channels == cfg->out_channels || cfg->in_channels == 1;
    return cvd_chain_in_channels(c) == cfg->in_channels &&
           cvd_chain_out_channels(c) == cfg->out_channels && cvd_chain_max_block(c) >= cfg->block;
}

static int chain_latency(const cvd_chain *c)
{
    return c ? cvd_chain_fixed_latency(c) : 0;
}

int cvd_audio_proc_create(const cvd_audio_proc_config *cfg, cvd_chain *chain, float in_gain,
                          float out_gain, cvd_audio_proc **out, cvd_err *err)
{
    *out = NULL;
    if (cfg->in_channels < 1 || cfg->out_channels < 1 || cfg->block < 1 || cfg->crossfade < 0 ||
        cfg->rate <= 0)
        return cvd_err_set(err, CVD_EINVAL, "audio processing: bad configuration");
    if (!chain_fits(cfg, chain))
        return cvd_err_set(err, CVD_EINVAL,
                           "audio processing: the chain takes %d channels and gives %d (the "
                           "stream: %d and %d), blocks of %d (the stream's: %d)",
                           chain ? cvd_chain_in_channels(chain) : cfg->in_channels,
                           chain ? cvd_chain_out_channels(chain) : cfg->in_channels,
                           cfg->in_channels, cfg->out_channels,
                           chain ? cvd_chain_max_block(chain) : cfg->block, cfg->block);
    cvd_audio_proc *p = calloc(1, sizeof *p);
    slot *s = calloc(1, sizeof *s);
    const size_t b = (size_t)cfg->block;
    if (p != NULL) {
        p->xin = malloc(sizeof(float) * b * (size_t)cfg->in_channels);
        p->yo = malloc(sizeof(float) * b * (size_t)cfg->out_channels);
        p->yn = malloc(sizeof(float) * b * (size_t)cfg->out_channels);
        p->dry = malloc(sizeof(float) * b * (size_t)cfg->out_channels);
    }
    if (p == NULL || s == NULL || !p->xin || !p->yo || !p->yn || !p->dry) {
        if (p) {
            free(p->xin);
            free(p->yo);
            free(p->yn);
            free(p->dry);
        }
        free(p);
        free(s);
        return cvd_err_set(err, CVD_ENOMEM, "out of memory");
    }
    p->cfg = *cfg;
    s->chain = chain;
    s->gin = in_gain;
    s->gout = out_gain;
    p->cur = s;
    p->g_in = p->g_out = 1.0f;
    p->wet = 1.0f;
    cvd_limiter_init(&p->lim, cfg->rate, CVD_LIMITER_CEILING_DB, CVD_LIMITER_RELEASE_MS);
    atomic_init(&p->pending, NULL);
    atomic_init(&p->retired, NULL);
    atomic_init(&p->in_bits, fbits(1.0f));
    atomic_init(&p->out_bits, fbits(1.0f));
    atomic_init(&p->bypass, 0);
    atomic_init(&p->limiter_bits, fbits(1.0f));
    p->latency = chain_latency(chain);
    *out = p;
    return CVD_OK;
}

void cvd_audio_proc_destroy(cvd_audio_proc *p)
{
    if (p == NULL)
        return;
    slot_free(p->cur);
    slot_free(p->old);
    slot_free(atomic_load(&p->pending));
    slot_free(atomic_load(&p->retired));
    free(p->xin);
    free(p->yo);
    free(p->yn);
    free(p->dry);
    free(p);
}

/* the input as out_channels frames: the same channels, or a mono input on every one */
static void dry_frames(const cvd_audio_proc *p, const float *x, int n, float *d)
{
    const int ic = p->cfg.in_channels, oc = p->cfg.out_channels;
    if (ic == oc) {
        memcpy(d, x, sizeof(float) * (size_t)n * (size_t)oc);
        return;
    }
    for (int f = 0; f < n; f++)
        for (int c = 0; c < oc; c++)
            d[f * oc + c] = ic == 1 ? x[f] : (c < ic ? x[f * ic + c] : 0.0f);
}

/* a slot's output for x: gains ramping from g0 to g1 (the user's input gain) over the block */
static void run_slot(cvd_audio_proc *p, const slot *s, const float *x, int n, float g0, float g1,
                     float *y)
{
    const int ic = p->cfg.in_channels, oc = p->cfg.out_channels;
    const float step = (g1 - g0) / (float)n;
    for (int f = 0; f < n; f++) {
        const float g = (g0 + step * (float)(f + 1)) * s->gin;
        for (int c = 0; c < ic; c++)
            p->xin[f * ic + c] = x[f * ic + c] * g;
    }
    if (s->chain != NULL)
        cvd_chain_process_fixed(s->chain, p->xin, n, y);
    else
        dry_frames(p, p->xin, n, y);
    if (s->gout != 1.0f)
        cvd_gain_apply(y, (size_t)n * (size_t)oc, s->gout);
}

void cvd_audio_proc_process(cvd_audio_proc *p, const float *x, int n, float *y)
{
    const int oc = p->cfg.out_channels;
    if (n <= 0)
        return;
    if (p->old == NULL) {
        slot *ns = atomic_exchange_explicit(&p->pending, NULL, memory_order_acq_rel);
        if (ns != NULL) {
            atomic_fetch_add_explicit(&p->swaps, 1, memory_order_relaxed);
            if (p->cfg.crossfade > 0) {
                p->old = p->cur;
                p->fade_pos = 0;
            } else {
                atomic_store_explicit(&p->retired, p->cur, memory_order_release);
                atomic_fetch_add_explicit(&p->fades, 1, memory_order_relaxed);
            }
            p->cur = ns;
        }
    }
    const float gi = bitsf(atomic_load_explicit(&p->in_bits, memory_order_relaxed));
    const float go = bitsf(atomic_load_explicit(&p->out_bits, memory_order_relaxed));

    run_slot(p, p->cur, x, n, p->g_in, gi, y);
    if (p->old != NULL) {
        /* both chains on the same input: old * cos^2 + new * sin^2 */
        run_slot(p, p->old, x, n, p->g_in, gi, p->yo);
        const int len = p->cfg.crossfade;
        for (int f = 0; f < n; f++) {
            float w = 1.0f;
            if (p->fade_pos < len) {
                const float s = sinf((float)(M_PI / 2) * (float)(p->fade_pos + 1) / (float)len);
                w = s * s;
                p->fade_pos++;
            }
            for (int c = 0; c < oc; c++)
                y[f * oc + c] = w * y[f * oc + c] + (1.0f - w) * p->yo[f * oc + c];
        }
        if (p->fade_pos >= len) {
            atomic_store_explicit(&p->retired, p->old, memory_order_release);
            atomic_fetch_add_explicit(&p->fades, 1, memory_order_relaxed);
            p->old = NULL;
        }
    }
    p->g_in = gi;

    /* the user's output gain, ramped over the block */
    const float step = (go - p->g_out) / (float)n;
    if (go != p->g_out || go != 1.0f)
        for (int f = 0; f < n; f++) {
            const float g = p->g_out + step * (float)(f + 1);
            for (int c = 0; c < oc; c++)
                y[f * oc + c] *= g;
        }
    p->g_out = go;

    /* bypass: towards the dry input along the fade's slope */
    const float target = atomic_load_explicit(&p->bypass, memory_order_relaxed) ? 0.0f : 1.0f;
    if (p->wet != target || target == 0.0f) {
        const float d = p->cfg.crossfade > 0 ? 1.0f / (float)p->cfg.crossfade : 1.0f;
        dry_frames(p, x, n, p->dry);
        for (int f = 0; f < n; f++) {
            if (p->wet < target)
                p->wet = p->wet + d < target ? p->wet + d : target;
            else if (p->wet > target)
                p->wet = p->wet - d > target ? p->wet - d : target;
            for (int c = 0; c < oc; c++)
                y[f * oc + c] = p->wet * y[f * oc + c] + (1.0f - p->wet) * p->dry[f * oc + c];
        }
    }
    if (p->cfg.limit) {
        cvd_limiter_process(&p->lim, y, n, oc);
        atomic_store_explicit(&p->limiter_bits, fbits(cvd_limiter_gain(&p->lim)),
                              memory_order_relaxed);
    }
}

int cvd_audio_proc_swap(cvd_audio_proc *p, cvd_chain *chain, float in_gain, float out_gain)
{
    if (p->swap_open)
        return CVD_ESTATE;
    if (!chain_fits(&p->cfg, chain))
        return CVD_EINVAL;
    slot *s = calloc(1, sizeof *s);
    if (s == NULL)
        return CVD_ENOMEM;
    s->chain = chain;
    s->gin = in_gain;
    s->gout = out_gain;
    p->swap_open = 1;
    p->latency = chain_latency(chain);
    atomic_store_explicit(&p->pending, s, memory_order_release);
    return CVD_OK;
}

int cvd_audio_proc_collect(cvd_audio_proc *p, int idle)
{
    if (!p->swap_open)
        return 1;
    if (idle) {
        /* no callback runs: finish here */
        slot *ns = atomic_exchange(&p->pending, NULL);
        if (ns != NULL) {
            slot_free(p->cur);
            p->cur = ns;
            atomic_fetch_add(&p->swaps, 1);
            atomic_fetch_add(&p->fades, 1);
        }
        if (p->old != NULL) {
            slot_free(p->old);
            p->old = NULL;
            atomic_fetch_add(&p->fades, 1);
        }
    }
    slot *old = atomic_exchange_explicit(&p->retired, NULL, memory_order_acq_rel);
    if (old == NULL && !idle)
        return 0; /* not taken yet, or still fading */
    slot_free(old);
    p->swap_open = 0;
    return 1;
}

int cvd_audio_proc_swapping(const cvd_audio_proc *p)
{
    return p->swap_open;
}

static float db_gain(double db)
{
    return (float)pow(10.0, db / 20.0);
}

void cvd_audio_proc_set_gains(cvd_audio_proc *p, double in_db, double out_db)
{
    p->in_db = in_db;
    p->out_db = out_db;
    atomic_store_explicit(&p->in_bits, fbits(db_gain(in_db)), memory_order_relaxed);
    atomic_store_explicit(&p->out_bits, fbits(db_gain(out_db)), memory_order_relaxed);
}

void cvd_audio_proc_get_gains(const cvd_audio_proc *p, double *in_db, double *out_db)
{
    *in_db = p->in_db;
    *out_db = p->out_db;
}

void cvd_audio_proc_set_bypass(cvd_audio_proc *p, int on)
{
    atomic_store_explicit(&p->bypass, on ? 1 : 0, memory_order_relaxed);
}

int cvd_audio_proc_bypass(const cvd_audio_proc *p)
{
    return atomic_load_explicit(&((cvd_audio_proc *)p)->bypass, memory_order_relaxed);
}

int cvd_audio_proc_latency(const cvd_audio_proc *p)
{
    return p->latency;
}

int cvd_audio_proc_crossfade(const cvd_audio_proc *p)
{
    return p->cfg.crossfade;
}

uint64_t cvd_audio_proc_swaps(const cvd_audio_proc *p)
{
    return atomic_load(&((cvd_audio_proc *)p)->swaps);
}

uint64_t cvd_audio_proc_fades(const cvd_audio_proc *p)
{
    return atomic_load(&((cvd_audio_proc *)p)->fades);
}

float cvd_audio_proc_limiter_gain(const cvd_audio_proc *p)
{
    return bitsf(atomic_load_explicit(&((cvd_audio_proc *)p)->limiter_bits, memory_order_relaxed));
}
