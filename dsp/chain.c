/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Chains: models run one after another as one stream (an amp capture, then a cabinet IR),
 * each at its own sample rate, with resamplers where the rate changes.
 *
 * The stages are nets and resamplers. A call passes the block through every stage in turn,
 * each consuming what the one before produced (stage k+1's max_block is stage k's max_out).
 * Every stage's output is aligned with its input (a net's frames are its offline output, a
 * resampler's frame j is the input at time j / rate), so the chain's output is aligned with
 * its input too, only held back: the latency.
 *
 * The fixed mode, for audio callbacks, turns that into exactly n frames out for n in: the
 * output goes through a FIFO primed with L frames of silence, L being the most the chain ever
 * holds back, found at create by a dry run of zeros a frame at a time (what a stage holds
 * back depends only on how many frames it has had, never on their values or the block
 * sizes). The output is then the chain's output delayed by exactly L frames.
 */
#include "convd_dsp.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct chain_stage {
    cvd_net *net;      /* a model, or */
    cvd_resampler *rs; /* a rate change */
    int in_ch, out_ch;
    int max_block, max_out;
    double in_rate, out_rate; /* rate of the frames in and out (0: unknown, no resampling) */
    int model;                /* index of the model (nets) */
    float *buf;               /* max_out * out_ch: this stage's output */
} chain_stage;

struct cvd_chain {
    int n_stages;
    chain_stage *st;
    int n_models;
    double *model_rate; /* the rate each model runs at */
    int *rate_assumed;  /* 1 if the model declares none */
    char **names;       /* the models' names for messages (copies; NULL: "model N") */
    double rate;        /* the stream's rate (0: unknown) */
    int in_ch, out_ch, max_block, max_out;
    int flush_stage; /* the stage being flushed */
    int finished;
    /* fixed mode */
    int fixed;
    int L;
    float *fifo; /* cap frames * out_ch */
    int level, cap;
    long underruns;
    float *tmp; /* max_out * out_ch */
};

void cvd_chain_destroy(cvd_chain *c)
{
    if (c == NULL)
        return;
    for (int i = 0; c->st && i < c->n_stages; i++) {
        cvd_net_destroy(c->st[i].net);
        cvd_resampler_destroy(c->st[i].rs);
        free(c->st[i].buf);
    }
    free(c->st);
    free(c->model_rate);
    free(c->rate_assumed);
    for (int i = 0; c->names && i < c->n_models; i++)
        free(c->names[i]);
    free(c->names);
    free(c->fifo);
    free(c->tmp);
    free(c);
}

static const char *model_name(const char *const *names, int i, char *buf, size_t n)
{
    if (names && names[i] && names[i][0]) {
        snprintf(buf, n, "'%s'", names[i]);
    } else {
        snprintf(buf, n, "model %d", i + 1);
    }
    return buf;
}

static int add_resampler(cvd_chain *c, double from, double to, int ch, int max_block, cvd_err *err)
{
    chain_stage *s = &c->st[c->n_stages];
    int rc = cvd_resampler_create(from, to, ch, max_block, &s->rs, err);
    if (rc < 0)
        return rc;
    c->n_stages++;
    s->in_ch = s->out_ch = ch;
    s->max_block = max_block;
    s->max_out = cvd_resampler_max_out(s->rs);
    s->in_rate = from;
    s->out_rate = to;
    s->model = -1;
    return CVD_OK;
}

/* Stage k's output for its input x (m frames) and every stage after it; the last stage's
 * frames land in out. */
static void run_from(cvd_chain *c, int k, const float *x, int m, float *out, int *n_out)
{
    for (; k < c->n_stages; k++) {
        chain_stage *s = &c->st[k];
        float *dst = k == c->n_stages - 1 ? out : s->buf;
        int got = 0;
        if (m > 0) {
            if (s->net)
                cvd_net_process(s->net, x, m, dst, &got);
            else
                cvd_resampler_process(s->rs, x, m, dst, &got);
        }
        x = dst;
        m = got;
    }
    *n_out = m;
}

int cvd_chain_process(cvd_chain *c, const float *in, int n, float *out, int *n_out)
{
    *n_out = 0;
    if (n < 0 || n > c->max_block)
        return CVD_ERANGE;
    if (c->finished || c->flush_stage > 0)
        return CVD_ESTATE;
    if (c->n_stages == 0) { /* no model: the stream passes through */
        memcpy(out, in, (size_t)n * c->in_ch * sizeof(float));
        *n_out = n;
        return CVD_OK;
    }
    run_from(c, 0, in, n, out, n_out);
    return CVD_OK;
}

int cvd_chain_flush(cvd_chain *c, float *out, int *n_out)
{
    *n_out = 0;
    while (c->flush_stage < c->n_stages) {
        const int k = c->flush_stage;
        chain_stage *s = &c->st[k];
        float *dst = k == c->n_stages - 1 ? out : s->buf;
        int got = 0, more;
        more = s->net ? cvd_net_flush(s->net, dst, &got) : cvd_resampler_flush(s->rs, dst, &got);
        if (more <= 0)
            c->flush_stage++; /* done (or failed: end the stream rather than loop) */
        if (k == c->n_stages - 1)
            *n_out = got;
        else
            run_from(c, k + 1, dst, got, out, n_out);
        if (*n_out > 0 || more > 0)
            break;
    }
    if (c->flush_stage < c->n_stages)
        return 1;
    c->finished = 1;
    return 0;
}

void cvd_chain_reset(cvd_chain *c)
{
    for (int i = 0; i < c->n_stages; i++) {
        if (c->st[i].net)
            cvd_net_reset(c->st[i].net);
        else
            cvd_resampler_reset(c->st[i].rs);
    }
    c->flush_stage = 0;
    c->finished = 0;
    if (c->fixed) {
        memset(c->fifo, 0, (size_t)c->L * c->out_ch * sizeof(float));
        c->level = c->L;
        c->underruns = 0;
    }
}

/* The most frames the chain holds back over a dry run of zeros a frame at a time. */
static int measure_holdback(cvd_chain *c)
{
    const float zero[256] = {0};
    long n = 0, got = 0, worst = 0;
    /* long enough for every stage to settle (the latencies) and for the resamplers' phase
     * pattern to repeat (a few hundred frames at common rates) */
    long frames = 8192 + 4 * (long)ceil(cvd_chain_latency(c));
    for (long i = 0; i < frames; i++) {
        int m;
        run_from(c, 0, zero, 1, c->tmp, &m);
        n++;
        got += m;
        if (n - got > worst)
            worst = n - got;
    }
    return (int)worst;
}

int cvd_chain_create(cvd_model *const *models, const char *const *names, int n_models,
                     const cvd_chain_config *cfg, cvd_chain **out, cvd_err *err)
{
    cvd_chain *c;
    char nm[160], nm2[160];
    int rc;
    double cur;

    *out = NULL;
    if (n_models < 0 || n_models > CVD_CHAIN_MAX_MODELS)
        return cvd_err_set(err, CVD_EINVAL, "a chain of %d models: at most %d", n_models,
                           CVD_CHAIN_MAX_MODELS);
    if (cfg->max_block <= 0 || cfg->max_block > (1 << 20))
        return cvd_err_set(err, CVD_EINVAL, "chain: max_block=%d: must be in 1..%d", cfg->max_block,
                           1 << 20);
    if (cfg->rate != 0 && !(cfg->rate >= 1000 && cfg->rate <= 768000))
        return cvd_err_set(err, CVD_EINVAL, "chain: rate %g Hz: must be in 1000..768000",
                           cfg->rate);
    if (n_models == 0 && cfg->fixed == 0 && cfg->in_channels <= 0)
        return cvd_err_set(err, CVD_EINVAL, "an empty chain needs its channel count");
    c = calloc(1, sizeof *c);
    if (c == NULL)
        return cvd_err_set(err, CVD_ENOMEM, "out of memory");
    c->n_models = n_models;
    c->st = calloc((size_t)(2 * n_models + 2), sizeof *c->st);
    c->model_rate = calloc((size_t)n_models + 1, sizeof *c->model_rate);
    c->rate_assumed = calloc((size_t)n_models + 1, sizeof *c->rate_assumed);
    c->names = calloc((size_t)n_models + 1, sizeof *c->names);
    if (!c->st || !c->model_rate || !c->rate_assumed || !c->names) {
        cvd_chain_destroy(c);
        return cvd_err_set(err, CVD_ENOMEM, "out of memory");
    }
    for (int i = 0; names && i < n_models; i++)
        if (names[i] && (c->names[i] = strdup(names[i])) == NULL) {
            cvd_chain_destroy(c);
            return cvd_err_set(err, CVD_ENOMEM, "out of memory");
        }
    c->max_block = cfg->max_block;
    c->in_ch = n_models ? cvd_model_in_channels(models[0]) : cfg->in_channels;
    /* the stream's rate: given, or the first declared one */
    c->rate = cfg->rate;
    for (int i = 0; c->rate == 0 && i < n_models; i++)
        c->rate = cvd_model_sample_rate(models[i]);

    cur = c->rate;
    int ch = c->in_ch, mb = cfg->max_block;
    for (int i = 0; i < n_models; i++) {
        cvd_model *m = models[i];
        double mr = cvd_model_sample_rate(m);
        const int windowed = cvd_model_mode(m) == CVD_MODE_WINDOWED;
        const int alone = n_models == 1 && (mr == 0 || mr == cur) && !cfg->fixed;
        c->rate_assumed[i] = mr == 0;
        if (mr == 0)
            mr = cur; /* no declared rate: it runs at the rate it is given */
        c->model_rate[i] = mr;
        if (cvd_model_in_channels(m) != ch) {
            rc = cvd_err_set(err, CVD_EINVAL, "%s takes %d channels, but %s gives %d",
                             model_name(names, i, nm, sizeof nm), cvd_model_in_channels(m),
                             i ? model_name(names, i - 1, nm2, sizeof nm2) : "the stream", ch);
            goto fail;
        }
        if (!alone && (windowed || cvd_model_rate_ratio(m) != 1.0)) {
            rc = cvd_err_set(err, CVD_EUNSUPPORTED,
                             "%s: %s; only a model that gives a frame for every frame runs "
                             "in a chain, resampled or with a fixed latency",
                             model_name(names, i, nm, sizeof nm),
                             windowed ? "runs on whole windows" : "changes the frame rate");
            goto fail;
        }
        if (mr != cur && cur != 0) {
            if ((rc = add_resampler(c, cur, mr, ch, mb, err)) < 0)
                goto fail;
            mb = c->st[c->n_stages - 1].max_out;
        }
        chain_stage *s = &c->st[c->n_stages];
        rc = cvd_net_create_threads(m, mb, alone ? cfg->hop : 0,
                                    cfg->threads > 1 && !cfg->fixed ? cfg->threads : 1, &s->net,
                                    err);
        if (rc < 0) {
            cvd_err_prefix(err, "%s", model_name(names, i, nm, sizeof nm));
            goto fail;
        }
        c->n_stages++;
        s->in_ch = ch;
        s->out_ch = cvd_model_out_channels(m);
        s->max_block = mb;
        s->max_out = cvd_net_max_out(s->net);
        s->in_rate = s->out_rate = mr;
        s->model = i;
        ch = s->out_ch;
        mb = s->max_out;
        cur = mr;
    }
    if (cur != c->rate && cur != 0 && c->rate != 0) {
        if ((rc = add_resampler(c, cur, c->rate, ch, mb, err)) < 0)
            goto fail;
        mb = c->st[c->n_stages - 1].max_out;
    }
    c->out_ch = ch;
    c->max_out = c->n_stages ? mb : cfg->max_block;
    for (int i = 0; i < c->n_stages; i++) {
        chain_stage *s = &c->st[i];
        s->buf = malloc(sizeof(float) * ((size_t)s->max_out * s->out_ch + 1));
        if (s->buf == NULL) {
            rc = cvd_err_set(err, CVD_ENOMEM, "out of memory");
            goto fail;
        }
    }
    if (cfg->fixed) {
        c->fixed = 1;
        c->tmp = malloc(sizeof(float) * ((size_t)c->max_out * c->out_ch + 1));
        if (c->tmp == NULL) {
            rc = cvd_err_set(err, CVD_ENOMEM, "out of memory");
            goto fail;
        }
        c->L = c->n_stages ? measure_holdback(c) : 0;
        c->cap = c->L + c->max_block + c->max_out + 2;
        c->fifo = calloc((size_t)c->cap * c->out_ch, sizeof(float));
        if (c->fifo == NULL) {
            rc = cvd_err_set(err, CVD_ENOMEM, "out of memory");
            goto fail;
        }
    }
    cvd_chain_reset(c);
    *out = c;
    return CVD_OK;

fail:
    cvd_chain_destroy(c);
    return rc;
}

void cvd_chain_process_fixed(cvd_chain *c, const float *in, int n, float *out)
{
    const int ch = c->out_ch;
    int got = 0, take;
    if (n <= 0)
        return;
    if (n > c->max_block || !c->fixed) { /* a caller's error: silence, never a crash */
        memset(out, 0, (size_t)(n > 0 ? n : 0) * ch * sizeof(float));
        c->underruns++;
        return;
    }
    if (c->n_stages)
        run_from(c, 0, in, n, c->tmp, &got);
    else
        memcpy(c->tmp, in, (size_t)n * ch * sizeof(float)), got = n;
    if (got > c->cap - c->level) /* cannot happen: the chain never runs ahead of its input */
        got = c->cap - c->level;
    memcpy(c->fifo + (size_t)c->level * ch, c->tmp, (size_t)got * ch * sizeof(float));
    c->level += got;
    take = n < c->level ? n : c->level;
    memcpy(out, c->fifo, (size_t)take * ch * sizeof(float));
    if (take < n) {
        memset(out + (size_t)take * ch, 0, (size_t)(n - take) * ch * sizeof(float));
        c->underruns++;
    }
    c->level -= take;
    memmove(c->fifo, c->fifo + (size_t)take * ch, (size_t)c->level * ch * sizeof(float));
}

int cvd_chain_fixed_latency(const cvd_chain *c)
{
    return c->L;
}

long cvd_chain_underruns(const cvd_chain *c)
{
    return c->underruns;
}

double cvd_chain_latency(const cvd_chain *c)
{
    double sec = 0, frames = 0;
    for (int i = 0; i < c->n_stages; i++) {
        const chain_stage *s = &c->st[i];
        double lat = s->net ? cvd_net_latency(s->net) : cvd_resampler_latency(s->rs);
        if (s->out_rate > 0)
            sec += lat / s->out_rate;
        else
            frames += lat;
    }
    return frames + sec * c->rate;
}

int cvd_chain_in_channels(const cvd_chain *c)
{
    return c->in_ch;
}
int cvd_chain_out_channels(const cvd_chain *c)
{
    return c->out_ch;
}
int cvd_chain_max_out(const cvd_chain *c)
{
    return c->max_out;
}
int cvd_chain_max_block(const cvd_chain *c)
{
    return c->max_block;
}
double cvd_chain_rate(const cvd_chain *c)
{
    return c->rate;
}
int cvd_chain_model_count(const cvd_chain *c)
{
    return c->n_models;
}
double cvd_chain_model_rate(const cvd_chain *c, int i, int *assumed)
{
    if (i < 0 || i >= c->n_models)
        return 0;
    if (assumed)
        *assumed = c->rate_assumed[i];
    return c->model_rate[i];
}
int cvd_chain_resamples(const cvd_chain *c)
{
    int n = 0;
    for (int i = 0; i < c->n_stages; i++)
        n += c->st[i].rs != NULL;
    return n;
}

size_t cvd_chain_state_bytes(const cvd_chain *c)
{
    size_t b = 0;
    for (int i = 0; i < c->n_stages; i++)
        b += (size_t)c->st[i].max_out * c->st[i].out_ch * sizeof(float) +
             (c->st[i].net ? cvd_net_state_bytes(c->st[i].net) : 0);
    return b + (size_t)c->cap * c->out_ch * sizeof(float);
}

void cvd_chain_describe(const cvd_chain *c, char *buf, size_t n)
{
    size_t used = 0;
    if (n == 0)
        return;
    buf[0] = '\0';
    for (int i = 0; i < c->n_stages && used < n; i++) {
        const chain_stage *s = &c->st[i];
        int w;
        if (s->net && c->names[s->model])
            w = snprintf(buf + used, n - used, "%s%s at %g Hz%s", i ? " -> " : "",
                         c->names[s->model], s->in_rate,
                         c->rate_assumed[s->model] ? " (assumed)" : "");
        else if (s->net)
            w = snprintf(buf + used, n - used, "%smodel %d at %g Hz%s", i ? " -> " : "",
                         s->model + 1, s->in_rate, c->rate_assumed[s->model] ? " (assumed)" : "");
        else
            w = snprintf(buf + used, n - used, "%sresample %g -> %g Hz (holds %d frames)",
                         i ? " -> " : "", s->in_rate, s->out_rate, cvd_resampler_latency(s->rs));
        if (w < 0)
            break;
        used += (size_t)w;
    }
}
