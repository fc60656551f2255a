/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The NATS transport's model math, on the daemon's workers (see nats_internal.h).
 *
 * Each worker has a queue of jobs; every job of a partition goes to the same worker, in
 * the partition's order, so an id's frames run in order. A job feeds one input message's
 * frames to its id's net (created on the id's first job, reset where the intake says the
 * stream restarts) and keeps the outputs; the publisher takes it from there. No NATS call,
 * no lock but the queue's, no allocation but a new id's net.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "metrics.h"
#include "nats.h"
#include "nats_internal.h"

struct cvd_nats_exec {
    pthread_mutex_t mu;
    cvd_nats_job *head, *tail;
    int n;
    void (*wake)(void *);
    void *ctx;
    float *in;   /* one block of input frames, aligned */
    float *junk; /* outputs nobody publishes (history) */
    size_t in_cap, junk_cap;
};

double cvd_nats_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

cvd_nats_exec *cvd_nats_exec_create(void (*wake)(void *), void *ctx)
{
    cvd_nats_exec *x = calloc(1, sizeof *x);
    if (x == NULL)
        return NULL;
    pthread_mutex_init(&x->mu, NULL);
    x->wake = wake;
    x->ctx = ctx;
    return x;
}

void cvd_nats_exec_destroy(cvd_nats_exec *x)
{
    if (x == NULL)
        return;
    while (x->head) {
        cvd_nats_job *j = x->head;
        x->head = j->next;
        cvd_nats_job_free(j);
    }
    pthread_mutex_destroy(&x->mu);
    free(x->in);
    free(x->junk);
    free(x);
}

void cvd_nats_exec_push(cvd_nats_exec *x, cvd_nats_job *j)
{
    int was_empty;
    j->next = NULL;
    pthread_mutex_lock(&x->mu);
    was_empty = x->head == NULL;
    if (x->tail)
        x->tail->next = j;
    else
        x->head = j;
    x->tail = j;
    x->n++;
    pthread_mutex_unlock(&x->mu);
    if (was_empty && x->wake)
        x->wake(x->ctx);
}

int cvd_nats_exec_pending(cvd_nats_exec *x)
{
    pthread_mutex_lock(&x->mu);
    int n = x->n;
    pthread_mutex_unlock(&x->mu);
    return n;
}

static int grow(float **p, size_t *cap, size_t need)
{
    if (*cap >= need)
        return 0;
    float *np = realloc(*p, need * sizeof **p);
    if (np == NULL)
        return -1;
    *p = np;
    *cap = need;
    return 0;
}

static void restart(cvd_nats_idstate *st, const cvd_nats_model *m, int64_t at)
{
    cvd_net_reset(st->net);
    st->fed = at;
    st->out_next = cvd_nats_out_index(m, at);
}

static void feed(cvd_nats_exec *x, cvd_nats_job *j)
{
    const cvd_nats_model *m = cvd_nats_lane_model(j->lane);
    cvd_nats_idstate *st = j->st;
    cvd_err err = {0};
    const int publish = (j->flags & CVD_NJF_PUBLISH) != 0;

    j->out_n = 0;
    if (st->net == NULL) {
        if (cvd_net_create_hop(m->model, m->block, m->windowed ? m->hop : 0, &st->net, &err) < 0) {
            cvd_log_error("nats: id %s: cannot create its model state: %s", j->id, err.msg);
            j->flags &= ~CVD_NJF_PUBLISH;
            return;
        }
        restart(st, m, j->reset_at);
    } else if (j->flags & CVD_NJF_RESET) {
        restart(st, m, j->reset_at);
    }
    const int64_t end = j->first + j->n;
    int64_t from = j->from > st->fed ? j->from : st->fed;
    if (j->from > st->fed) {
        /* the intake never leaves a hole; if it did, the state would be wrong: restart */
        cvd_log_error("nats: id %s: frames %lld..%lld missing before frame %lld; restarting "
                      "its state",
                      j->id, (long long)st->fed, (long long)j->from - 1, (long long)j->from);
        restart(st, m, j->from);
    }
    if (from >= end) {
        j->out_first = st->out_next;
        return;
    }
    if (grow(&x->in, &x->in_cap, (size_t)m->block * (size_t)m->in_ch) < 0 ||
        (!publish && grow(&x->junk, &x->junk_cap, (size_t)m->max_out * (size_t)m->out_ch) < 0)) {
        cvd_log_error("nats: out of memory");
        j->flags &= ~CVD_NJF_PUBLISH;
        return;
    }
    j->out_first = st->out_next;
    const unsigned char *src = j->data;
    for (int64_t t = from; t < end;) {
        int chunk = (int)(end - t < m->block ? end - t : m->block), got = 0;
        memcpy(x->in, src + (size_t)(t - j->first) * (size_t)m->in_ch * 4,
               (size_t)chunk * (size_t)m->in_ch * 4);
        float *dst = publish ? j->out + (size_t)j->out_n * (size_t)m->out_ch : x->junk;
        if (publish && j->out_n + m->max_out > j->out_cap) {
            cvd_log_error("nats: id %s: output larger than its buffer (internal error)", j->id);
            j->flags &= ~CVD_NJF_PUBLISH;
            return;
        }
        if (cvd_net_process(st->net, x->in, chunk, dst, &got) < 0) {
            cvd_log_error("nats: id %s: the model refused a block (internal error)", j->id);
            j->flags &= ~CVD_NJF_PUBLISH;
            return;
        }
        if (publish)
            j->out_n += got;
        st->out_next += got;
        t += chunk;
    }
    st->fed = end;
}

int cvd_nats_exec_run(cvd_nats_exec *x, int max)
{
    int more;
    for (int i = 0; i < max; i++) {
        pthread_mutex_lock(&x->mu);
        cvd_nats_job *j = x->head;
        if (j) {
            x->head = j->next;
            if (x->head == NULL)
                x->tail = NULL;
            x->n--;
        }
        pthread_mutex_unlock(&x->mu);
        if (j == NULL)
            return 0;
        if (j->kind == CVD_NJ_DROP) {
            if (j->st) {
                cvd_net_destroy(j->st->net);
                free(j->st);
                j->st = NULL;
            }
            cvd_nats_job_free(j);
            continue;
        }
        feed(x, j);
        cvd_nats_job_done(j);
    }
    pthread_mutex_lock(&x->mu);
    more = x->head != NULL;
    pthread_mutex_unlock(&x->mu);
    return more;
}

/* ---- the model as the transport runs it ---------------------------------------------------- */

int64_t cvd_nats_replay_start(const cvd_nats_model *m, int64_t base, int64_t done)
{
    if (m->windowed) {
        int64_t k = done - base >= m->window ? (done - base - m->window) / m->hop + 1 : 0;
        return base + k * m->hop;
    }
    int64_t r = done - (m->rf - 1);
    return r > base ? r : base;
}

int64_t cvd_nats_restart_frame(const cvd_nats_model *m, int64_t f)
{
    if (m->windowed)
        return (f + m->hop - 1) / m->hop * m->hop;
    return f;
}

int64_t cvd_nats_out_index(const cvd_nats_model *m, int64_t s)
{
    return m->windowed ? s / m->hop : s;
}

/* outputs a fresh net has emitted after n input frames, by the rule replay relies on */
static long expected_outputs(const cvd_nats_model *m, long n)
{
    if (m->windowed)
        return n >= m->window ? (n - m->window) / m->hop + 1 : 0;
    return n > m->latency ? n - m->latency : 0;
}

int cvd_nats_model_prepare(cvd_model *model, long hop, int block, cvd_nats_model *m, cvd_err *err)
{
    cvd_net *net = NULL;
    float *in = NULL, *out = NULL;
    int rc;

    memset(m, 0, sizeof *m);
    m->model = model;
    m->in_ch = cvd_model_in_channels(model);
    m->out_ch = cvd_model_out_channels(model);
    m->latency = cvd_model_latency(model);
    m->rf = cvd_model_receptive_field(model);
    m->windowed = cvd_model_mode(model) == CVD_MODE_WINDOWED;
    m->window = m->windowed ? cvd_model_window(model) : 0;
    m->hop = m->windowed ? (hop > 0 ? hop : m->window) : 0;
    m->block = block;
    if (m->rf < 1)
        m->rf = 1;
    if (!m->windowed && cvd_model_rate_ratio(model) != 1.0)
        return cvd_err_set(err, CVD_EUNSUPPORTED,
                           "the model gives %g output frames per input frame (strides or "
                           "upsampling); the NATS transport runs models with one output frame "
                           "per input frame, or windowed models",
                           cvd_model_rate_ratio(model));
    if ((rc = cvd_net_create_hop(model, block, m->windowed ? m->hop : 0, &net, err)) < 0)
        return rc;
    m->max_out = cvd_net_max_out(net);
    /* the rule, checked: a fresh net fed zeros in uneven blocks up to past its latency,
     * window or receptive field */
    long limit = (m->windowed ? m->window + 3 * m->hop : m->latency + m->rf) + 3L * block + 7;
    if (limit > 200000)
        limit = 200000;
    in = calloc((size_t)block * (size_t)m->in_ch, sizeof *in);
    out = calloc((size_t)m->max_out * (size_t)m->out_ch + 1, sizeof *out);
    if (in == NULL || out == NULL) {
        rc = cvd_err_set(err, CVD_ENOMEM, "out of memory");
        goto done;
    }
    long fed = 0, emitted = 0;
    int step = 1;
    while (fed < limit) {
        int chunk = step < block ? step : block, got = 0;
        if (step < block)
            step = step * 3 + 1;
        if ((rc = cvd_net_process(net, in, chunk, out, &got)) < 0) {
            cvd_err_set(err, rc, "the model refused a block of %d frames", chunk);
            goto done;
        }
        fed += chunk;
        emitted += got;
        if (emitted != expected_outputs(m, fed)) {
            rc = cvd_err_set(err, CVD_EUNSUPPORTED,
                             "after %ld input frames the model has given %ld outputs, not the %ld "
                             "a replay could reproduce (%s); the NATS transport cannot run it",
                             fed, emitted, expected_outputs(m, fed),
                             m->windowed ? "one record per window"
                                         : "one per frame after its "
                                           "latency");
            goto done;
        }
    }
    rc = CVD_OK;
done:
    free(in);
    free(out);
    cvd_net_destroy(net);
    return rc;
}

int cvd_nats_check_model(cvd_model *m, long hop, int block, cvd_err *err)
{
    cvd_nats_model nm;
    return cvd_nats_model_prepare(m, hop, block, &nm, err);
}
