/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The NATS transport's publisher: the workers' outputs into the output stream (see
 * nats_internal.h).
 *
 * One thread per group takes finished jobs in order. A job with nothing to publish (history,
 * or no output frame) is confirmed at once; one with output becomes a message on P.out.<id>
 * with Convd-Frame and Nats-Msg-Id <id>:<first output frame>, published asynchronously. Its
 * acknowledgement (libnats's thread) confirms the job's slot in its lane; a failure (a
 * timeout, or "no responders" while a stream leader is elected, about 5 s) sends the same
 * message again later, so a retry is stored once. Outputs are held while the lane's lease
 * is in doubt (its last refresh older than the lease's time to live) and dropped once the
 * lane is dead (the lease lost or handed over): the next owner recomputes them.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "metrics.h"
#include "nats_internal.h"

/* ---- output messages in flight, by address ---------------------------------------------- */

static size_t ptr_hash(const void *p, size_t cap)
{
    uint64_t x = (uint64_t)(uintptr_t)p;
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    return (size_t)x & (cap - 1);
}

/* under pub_mu */
static int inflight_put(cvd_nats_group *g, cvd_nats_job *j)
{
    if ((g->inflight_n + 1) * 2 > g->inflight_cap) {
        size_t nc = g->inflight_cap ? g->inflight_cap * 2 : 1024;
        cvd_nats_job **n = calloc(nc, sizeof *n);
        if (n == NULL)
            return -1;
        for (size_t i = 0; i < g->inflight_cap; i++)
            if (g->inflight[i]) {
                size_t k = ptr_hash(g->inflight[i]->omsg, nc);
                while (n[k])
                    k = (k + 1) & (nc - 1);
                n[k] = g->inflight[i];
            }
        free(g->inflight);
        g->inflight = n;
        g->inflight_cap = nc;
    }
    size_t k = ptr_hash(j->omsg, g->inflight_cap);
    while (g->inflight[k])
        k = (k + 1) & (g->inflight_cap - 1);
    g->inflight[k] = j;
    g->inflight_n++;
    return 0;
}

/* under pub_mu; backward-shift deletion keeps the probe chains whole */
static cvd_nats_job *inflight_take(cvd_nats_group *g, const natsMsg *m)
{
    if (g->inflight_cap == 0)
        return NULL;
    size_t mask = g->inflight_cap - 1, k = ptr_hash(m, g->inflight_cap);
    while (g->inflight[k] && g->inflight[k]->omsg != m)
        k = (k + 1) & mask;
    cvd_nats_job *j = g->inflight[k];
    if (j == NULL)
        return NULL;
    g->inflight[k] = NULL;
    g->inflight_n--;
    for (size_t i = (k + 1) & mask; g->inflight[i]; i = (i + 1) & mask) {
        size_t home = ptr_hash(g->inflight[i]->omsg, g->inflight_cap);
        /* move it back if its home is not in (k, i] */
        if ((i > k && (home <= k || home > i)) || (i < k && home <= k && home > i)) {
            g->inflight[k] = g->inflight[i];
            g->inflight[i] = NULL;
            k = i;
        }
    }
    return j;
}

/* ---- jobs in ------------------------------------------------------------------------------- */

void cvd_nats_job_done(cvd_nats_job *j)
{
    cvd_nats_group *g = j->lane->g;
    j->next = NULL;
    pthread_mutex_lock(&g->pub_mu);
    if (g->pub_tail)
        g->pub_tail->next = j;
    else
        g->pub_head = j;
    g->pub_tail = j;
    pthread_cond_signal(&g->pub_cond);
    pthread_mutex_unlock(&g->pub_mu);
}

static void retry_later(cvd_nats_group *g, cvd_nats_job *j)
{
    double backoff = 0.05;
    for (int i = 0; i < j->attempts && backoff < 1.0; i++)
        backoff *= 2;
    j->retry_at = cvd_nats_now() + (backoff < 1.0 ? backoff : 1.0);
    pthread_mutex_lock(&g->pub_mu);
    j->next = g->retry_head;
    g->retry_head = j;
    pthread_cond_signal(&g->pub_cond);
    pthread_mutex_unlock(&g->pub_mu);
}

static int lane_gone(const cvd_nats_lane *l)
{
    return atomic_load(&l->dead);
}

static void first_output(cvd_nats_lane *l)
{
    if (l->first_output_logged)
        return;
    l->first_output_logged = 1;
    cvd_log_info("nats %s: partition %d: first output of epoch %" PRIu64 " %.3f s after taking "
                 "it over (%" PRIu64 " frames replayed so far)",
                 l->g->conf.name, l->part, l->epoch, cvd_nats_now() - l->taken_at,
                 l->replayed_frames);
}

static void pub_ack(cvd_nats_group *g, natsMsg *msg, jsPubAck *pa, jsPubAckErr *pae);

void cvd_nats_pub_ack(jsCtx *js, natsMsg *msg, jsPubAck *pa, jsPubAckErr *pae, void *closure)
{
    cvd_nats_group *g = cvd_nats_guard_enter(closure);
    (void)js;
    if (g)
        pub_ack(g, msg, pa, pae);
    else
        natsMsg_Destroy(msg);
    cvd_nats_guard_leave(closure);
}

static void pub_ack(cvd_nats_group *g, natsMsg *msg, jsPubAck *pa, jsPubAckErr *pae)
{
    pthread_mutex_lock(&g->pub_mu);
    cvd_nats_job *j = inflight_take(g, msg);
    pthread_mutex_unlock(&g->pub_mu);
    if (j == NULL) {
        natsMsg_Destroy(msg);
        return;
    }
    if (pa != NULL) {
        if (pa->Duplicate)
            atomic_fetch_add(&g->st.output_duplicates, 1);
        atomic_fetch_add(&g->st.messages_out, 1);
        atomic_fetch_add(&g->st.frames_out, (unsigned long long)j->out_n);
        if (g->metrics_stream)
            atomic_fetch_add(&((cvd_stream_stats *)g->metrics_stream)->frames_out,
                             (unsigned long long)j->out_n);
        if (!lane_gone(j->lane)) {
            pthread_mutex_lock(&j->lane->mu);
            first_output(j->lane);
            pthread_mutex_unlock(&j->lane->mu);
        }
        cvd_nats_lane_confirm(j->lane, j->slot);
        cvd_nats_job_free(j); /* destroys msg (j->omsg) */
        return;
    }
    atomic_fetch_add(&g->st.publish_retries, 1);
    cvd_nats_warn(g, CVD_NW_PUBLISH, "nats %s: output %s:%" PRId64 ": %s (%s); publishing it again",
                  g->conf.name, j->id, j->out_first, natsStatus_GetText(pae ? pae->Err : NATS_ERR),
                  pae && pae->ErrText ? pae->ErrText : "no detail");
    j->attempts++;
    retry_later(g, j);
}

/* ---- the thread ------------------------------------------------------------------------------ */

static int build(cvd_nats_group *g, cvd_nats_job *j)
{
    char subject[512], num[32], mid[CVD_NATS_ID_MAX + 32];
    const int bytes = j->out_n * g->model.out_ch * 4;
    natsMsg *m = NULL;
    snprintf(subject, sizeof subject, "%s.out.%s", g->conf.prefix, j->id);
    snprintf(num, sizeof num, "%" PRId64, j->out_first);
    snprintf(mid, sizeof mid, "%s:%" PRId64, j->id, j->out_first);
    if (natsMsg_Create(&m, subject, NULL, (const char *)j->out, bytes) != NATS_OK ||
        natsMsgHeader_Set(m, "Convd-Frame", num) != NATS_OK ||
        natsMsgHeader_Set(m, "Nats-Msg-Id", mid) != NATS_OK) {
        natsMsg_Destroy(m);
        return -1;
    }
    j->omsg = m;
    return 0;
}

static void publish(cvd_nats_group *g, cvd_nats_job *j)
{
    cvd_nats_lane *l = j->lane;
    jsPubOptions po;
    natsStatus s;

    if (j->omsg == NULL && build(g, j) < 0) {
        cvd_log_error("nats %s: out of memory for an output of id %s", g->conf.name, j->id);
        j->attempts++;
        retry_later(g, j);
        return;
    }
    /* the lease in doubt: hold (the refresh may come back) until it is lost or renewed */
    while (!lane_gone(l) && !atomic_load(&g->quit)) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        long long now = (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
        if (now < atomic_load(&l->valid_until))
            break;
        struct timespec d = {0, 5000000};
        nanosleep(&d, NULL);
    }
    if (lane_gone(l) || atomic_load(&g->quit)) {
        cvd_nats_job_free(j);
        return;
    }
    jsPubOptions_Init(&po);
    po.MaxWait = (int64_t)(g->timeout * 1000);
    natsMsg *m = j->omsg;
    pthread_mutex_lock(&g->pub_mu);
    int rc = inflight_put(g, j);
    pthread_mutex_unlock(&g->pub_mu);
    if (rc < 0) {
        j->attempts++;
        retry_later(g, j);
        return;
    }
    s = js_PublishMsgAsync(g->js_out, &m, &po);
    if (s != NATS_OK) {
        pthread_mutex_lock(&g->pub_mu);
        cvd_nats_job *back = inflight_take(g, j->omsg);
        pthread_mutex_unlock(&g->pub_mu);
        if (back == NULL)
            return; /* already answered: the handler has it */
        if (m == NULL)
            j->omsg = NULL; /* libnats kept it (and will answer for it) */
        atomic_fetch_add(&g->st.publish_retries, 1);
        cvd_nats_warn(g, CVD_NW_PUBLISH, "nats %s: output %s:%" PRId64 ": %s; publishing it again",
                      g->conf.name, j->id, j->out_first, natsStatus_GetText(s));
        j->attempts++;
        if (j->omsg == NULL && build(g, j) < 0) {
            cvd_nats_job_free(j);
            return;
        }
        retry_later(g, j);
    }
}

static void handle(cvd_nats_group *g, cvd_nats_job *j)
{
    cvd_nats_lane *l = j->lane;
    if (lane_gone(l)) {
        cvd_nats_job_free(j);
        return;
    }
    if (!(j->flags & CVD_NJF_REPLAY)) {
        int64_t fed = j->first + j->n - j->from;
        if (fed > 0) {
            atomic_fetch_add(&g->st.frames_in, (unsigned long long)fed);
            if (g->metrics_stream)
                atomic_fetch_add(&((cvd_stream_stats *)g->metrics_stream)->frames_in,
                                 (unsigned long long)fed);
        }
    }
    if (!(j->flags & CVD_NJF_PUBLISH) || j->out_n == 0) {
        cvd_nats_lane_confirm(l, j->slot);
        cvd_nats_job_free(j);
        return;
    }
    publish(g, j);
}

void *cvd_nats_publisher_main(void *arg)
{
    cvd_nats_group *g = arg;
    pthread_mutex_lock(&g->pub_mu);
    while (!atomic_load(&g->quit)) {
        double now = cvd_nats_now(), next = now + 0.1;
        cvd_nats_job *due = NULL, **pp = &g->retry_head;
        while (*pp) {
            cvd_nats_job *j = *pp;
            if (j->retry_at <= now) {
                *pp = j->next;
                j->next = due;
                due = j;
            } else {
                if (j->retry_at < next)
                    next = j->retry_at;
                pp = &j->next;
            }
        }
        cvd_nats_job *j = g->pub_head;
        if (j) {
            g->pub_head = j->next;
            if (g->pub_head == NULL)
                g->pub_tail = NULL;
        }
        if (j == NULL && due == NULL) {
            struct timespec ts;
            clock_gettime(CLOCK_MONOTONIC, &ts);
            double wait = next - now;
            ts.tv_sec += (time_t)wait;
            ts.tv_nsec += (long)((wait - (double)(time_t)wait) * 1e9);
            if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
            }
            pthread_cond_timedwait(&g->pub_cond, &g->pub_mu, &ts);
            continue;
        }
        pthread_mutex_unlock(&g->pub_mu);
        while (due) {
            cvd_nats_job *d = due;
            due = d->next;
            if (lane_gone(d->lane))
                cvd_nats_job_free(d);
            else
                publish(g, d);
        }
        if (j)
            handle(g, j);
        pthread_mutex_lock(&g->pub_mu);
    }
    pthread_mutex_unlock(&g->pub_mu);
    return NULL;
}
