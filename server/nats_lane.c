/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A lane: one partition of the input stream, held by this process under one lease epoch
 * (docs/SCALE.md has the design; nats_internal.h the threads).
 *
 * The intake (libnats's delivery thread of the lane's push consumer) checks every message,
 * decides what it is for its id, and hands a job to the lane's worker:
 *   - frames already taken (Convd-Frame below what the id reached): a duplicate, skipped;
 *   - frames past what the id reached: a gap; the id's stream restarts there (counted);
 *   - frames answered before this epoch (a takeover's replay, or an idle id's history
 *     rebuilt from the log): fed to refill the model's history, no output;
 *   - the rest: fed, and the output published (the publisher, with Msg-Id <id>:<frame>).
 * Every message taken from the consumer has a slot in the lane's ring, in stream order; a
 * slot is confirmed when its output is stored (or it had none to store), and the frontier
 * (every message up to it answered) advances over confirmed slots and is acknowledged to
 * the consumer (AckAll) and written in checkpoints.
 *
 * Deliveries are checked for holes (the consumer sequence must grow by one): a message lost
 * on its way (a server died while pushing it) would otherwise look like a gap in its id's
 * frames. On a hole the lane replaces its consumer by one starting right after the last
 * message it took; nothing is lost or taken twice.
 *
 * Long because: the intake, the ring and its frontier, the consumers and the takeover all work
 * on the one lane under the ordering rules above, which read best together.
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "nats_internal.h"

#define SLEEP_MS(ms) usleep((useconds_t)(ms)*1000u)

const cvd_nats_model *cvd_nats_lane_model(const cvd_nats_lane *l)
{
    return &l->g->model;
}

cvd_nats_lane *cvd_nats_lane_ref(cvd_nats_lane *l)
{
    atomic_fetch_add(&l->refs, 1);
    return l;
}

static void rec_free(cvd_nats_rec *r)
{
    free(r->hist);
    free(r);
}

void cvd_nats_lane_unref(cvd_nats_lane *l)
{
    if (l == NULL || atomic_fetch_sub(&l->refs, 1) != 1)
        return;
    /* the last reference: no job, subscription or op uses it any more */
    for (uint64_t s = l->ring_head; s < l->ring_tail; s++)
        natsMsg_Destroy(l->ring[s % l->ring_cap].msg);
    natsMsg_Destroy(l->to_ack);
    for (cvd_nats_rec *r = l->recs, *n; r; r = n) {
        n = r->lnext;
        if (r->st) { /* never handed to a worker (the lane died before its first job) */
            cvd_net_destroy(r->st->net);
            free(r->st);
        }
        rec_free(r);
    }
    free(l->buckets);
    free(l->ring);
    pthread_mutex_destroy(&l->mu);
    free(l);
}

cvd_nats_lane *cvd_nats_lane_create(cvd_nats_group *g, int part, uint64_t epoch)
{
    cvd_nats_lane *l = calloc(1, sizeof *l);
    if (l == NULL)
        return NULL;
    atomic_init(&l->refs, 1);
    l->g = g;
    l->part = part;
    l->epoch = epoch;
    l->exec = g->execs[part % g->n_execs];
    pthread_mutex_init(&l->mu, NULL);
    l->n_buckets = 64;
    l->buckets = calloc(l->n_buckets, sizeof *l->buckets);
    l->ring_cap = (uint64_t)g->conf.max_inflight * 2 + 16;
    l->ring = calloc(l->ring_cap, sizeof *l->ring);
    l->ring_head = l->ring_tail = 1;
    if (l->buckets == NULL || l->ring == NULL) {
        cvd_nats_lane_unref(l);
        return NULL;
    }
    return l;
}

/* ---- ids ------------------------------------------------------------------------------------ */

static size_t hash_id(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (uint8_t)s[i]) * 1099511628211ull;
    return (size_t)h;
}

static cvd_nats_rec *rec_find(cvd_nats_lane *l, const char *id, size_t n)
{
    for (cvd_nats_rec *r = l->buckets[hash_id(id, n) % l->n_buckets]; r; r = r->hnext)
        if (r->idlen == n && memcmp(r->id, id, n) == 0)
            return r;
    return NULL;
}

static cvd_nats_rec *rec_add(cvd_nats_lane *l, const char *id, size_t n)
{
    if (l->n_recs >= l->n_buckets * 2) {
        size_t nb = l->n_buckets * 4;
        cvd_nats_rec **b = calloc(nb, sizeof *b);
        if (b) {
            for (cvd_nats_rec *r = l->recs; r; r = r->lnext) {
                size_t k = hash_id(r->id, r->idlen) % nb;
                r->hnext = b[k];
                b[k] = r;
            }
            free(l->buckets);
            l->buckets = b;
            l->n_buckets = nb;
        }
    }
    cvd_nats_rec *r = calloc(1, sizeof *r);
    if (r == NULL)
        return NULL;
    memcpy(r->id, id, n);
    r->id[n] = '\0';
    r->idlen = n;
    size_t k = hash_id(id, n) % l->n_buckets;
    r->hnext = l->buckets[k];
    l->buckets[k] = r;
    r->lnext = l->recs;
    if (l->recs)
        l->recs->lprev = r;
    l->recs = r;
    l->n_recs++;
    return r;
}

static void rec_remove(cvd_nats_lane *l, cvd_nats_rec *r)
{
    cvd_nats_rec **pp = &l->buckets[hash_id(r->id, r->idlen) % l->n_buckets];
    while (*pp && *pp != r)
        pp = &(*pp)->hnext;
    if (*pp)
        *pp = r->hnext;
    if (r->lprev)
        r->lprev->lnext = r->lnext;
    else
        l->recs = r->lnext;
    if (r->lnext)
        r->lnext->lprev = r->lprev;
    l->n_recs--;
    rec_free(r);
}

static cvd_nats_hist *hist_at(cvd_nats_rec *r, size_t i)
{
    return &r->hist[(r->h_head + i) % r->h_cap];
}

static void hist_push(cvd_nats_rec *r, int64_t first, int64_t end, uint64_t seq)
{
    if (r->h_len == r->h_cap) {
        size_t nc = r->h_cap ? r->h_cap * 2 : 8;
        cvd_nats_hist *h = malloc(nc * sizeof *h);
        if (h == NULL)
            return; /* a replay of this id would then start at the partition's frontier */
        for (size_t i = 0; i < r->h_len; i++)
            h[i] = *hist_at(r, i);
        free(r->hist);
        r->hist = h;
        r->h_cap = nc;
        r->h_head = 0;
    }
    cvd_nats_hist *e = &r->hist[(r->h_head + r->h_len) % r->h_cap];
    e->first = first;
    e->end = end;
    e->seq = seq;
    r->h_len++;
}

/* the messages no replay of the next output needs any more */
static void hist_trim(const cvd_nats_model *m, cvd_nats_rec *r)
{
    int64_t keep = cvd_nats_replay_start(m, r->base, r->done);
    while (r->h_len > 0 && hist_at(r, 0)->end <= keep) {
        r->h_head = (r->h_head + 1) % r->h_cap;
        r->h_len--;
    }
}

/* where a replay of r must start, and the sequence of the message holding that frame (0:
 * not in its history: it comes after the frontier) */
static void replay_point(const cvd_nats_model *m, cvd_nats_rec *r, int64_t *frame, uint64_t *seq)
{
    if (r->st == NULL) {
        *frame = r->replay;
        *seq = r->replay_seq;
        return;
    }
    *frame = cvd_nats_replay_start(m, r->base, r->done);
    *seq = 0;
    for (size_t i = 0; i < r->h_len; i++) {
        cvd_nats_hist *e = hist_at(r, i);
        if (e->end > *frame) {
            *seq = e->seq;
            break;
        }
    }
}

/* ---- the ring and the frontier ---------------------------------------------------------- */

static int ring_grow(cvd_nats_lane *l)
{
    uint64_t nc = l->ring_cap * 2;
    cvd_nats_slot *n = calloc(nc, sizeof *n);
    if (n == NULL)
        return -1;
    for (uint64_t s = l->ring_head; s < l->ring_tail; s++)
        n[s % nc] = l->ring[s % l->ring_cap];
    free(l->ring);
    l->ring = n;
    l->ring_cap = nc;
    return 0;
}

static void ack_now(cvd_nats_lane *l)
{
    if (l->to_ack == NULL)
        return;
    const char *reply = natsMsg_GetReply(l->to_ack);
    /* AckAll: everything of this consumer up to that message; straight to its reply subject
     * (the message may outlive the subscription that delivered it) */
    if (reply && l->g->nc)
        natsConnection_PublishString(l->g->nc, reply, "+ACK");
    natsMsg_Destroy(l->to_ack);
    l->to_ack = NULL;
    l->unacked = 0;
}

static void advance(cvd_nats_lane *l)
{
    const cvd_nats_model *m = &l->g->model;
    while (l->ring_head < l->ring_tail) {
        cvd_nats_slot *s = &l->ring[l->ring_head % l->ring_cap];
        if (!s->confirmed)
            break;
        if (s->rec) {
            if (s->end > s->rec->done)
                s->rec->done = s->end;
            s->rec->inflight--;
            if (s->rec->st)
                hist_trim(m, s->rec);
        }
        l->frontier = s->seq;
        if (s->msg) {
            natsMsg_Destroy(l->to_ack);
            l->to_ack = s->msg;
            l->unacked++;
        }
        memset(s, 0, sizeof *s);
        l->ring_head++;
    }
    int every = l->g->conf.max_inflight / 8;
    if (l->unacked >= (every > 0 ? every : 1))
        ack_now(l);
}

static void confirm_locked(cvd_nats_lane *l, uint64_t slot)
{
    if (slot < l->ring_head || slot >= l->ring_tail)
        return;
    l->ring[slot % l->ring_cap].confirmed = 1;
    advance(l);
}

void cvd_nats_lane_confirm(cvd_nats_lane *l, uint64_t slot)
{
    if (slot == 0)
        return;
    pthread_mutex_lock(&l->mu);
    confirm_locked(l, slot);
    pthread_mutex_unlock(&l->mu);
}

/* ---- jobs ----------------------------------------------------------------------------------- */

void cvd_nats_job_free(cvd_nats_job *j)
{
    if (j == NULL)
        return;
    if (j->slot == 0)
        natsMsg_Destroy(j->msg);
    natsMsg_Destroy(j->omsg);
    if (j->st && j->kind == CVD_NJ_DROP) {
        cvd_net_destroy(j->st->net);
        free(j->st);
    }
    cvd_nats_lane_unref(j->lane);
    free(j);
}

static void push_drop(cvd_nats_lane *l, cvd_nats_rec *r)
{
    cvd_nats_job *j = calloc(1, sizeof *j);
    if (j == NULL) {
        /* the state leaks rather than being freed under a job that may still use it */
        cvd_log_error("nats: out of memory dropping id %s", r->id);
        r->st = NULL;
        return;
    }
    j->kind = CVD_NJ_DROP;
    j->st = r->st;
    j->lane = cvd_nats_lane_ref(l);
    snprintf(j->id, sizeof j->id, "%s", r->id);
    r->st = NULL;
    l->n_states--;
    cvd_nats_exec_push(l->exec, j);
}

/* forget r's model state; it is rebuilt from the log if r comes back */
static void drop_state(cvd_nats_lane *l, cvd_nats_rec *r)
{
    int64_t frame;
    uint64_t seq;
    replay_point(&l->g->model, r, &frame, &seq);
    r->replay = frame;
    r->replay_seq = seq;
    r->h_len = r->h_head = 0;
    r->next = frame;
    r->dormant = 1;
    push_drop(l, r);
}

/* ---- taking a message ------------------------------------------------------------------------ */

static void finish_untaken(cvd_nats_lane *l, natsMsg *msg, uint64_t slot)
{
    if (slot)
        confirm_locked(l, slot);
    else
        natsMsg_Destroy(msg);
}

static void dispatch(cvd_nats_lane *l, cvd_nats_rec *r, natsMsg *msg, int64_t f, int n,
                     uint64_t seq, uint64_t slot, int replay, const void *data)
{
    cvd_nats_group *g = l->g;
    const cvd_nats_model *m = &g->model;
    const int64_t end = f + n;
    int reset = 0;
    int64_t reset_at = 0, from;

    /* with a model state, a message starting below the frame the id has reached is a
     * duplicate, whatever it holds past that frame; without one (its history being rebuilt)
     * only what lies wholly before it is not needed */
    if (r->st != NULL ? f < r->next : end <= r->next) {
        if (!replay) {
            atomic_fetch_add(&g->st.duplicate_messages, 1);
            atomic_fetch_add(&g->st.duplicate_frames, (unsigned long long)n);
            cvd_nats_warn(g, CVD_NW_DUP,
                          "nats %s: id %s: frames %" PRId64 "..%" PRId64
                          " (stream sequence %" PRIu64
                          ") were taken already (the id is at frame %" PRId64 "): a duplicate, "
                          "skipped",
                          g->conf.name, r->id, f, end - 1, seq, r->next);
        }
        finish_untaken(l, msg, slot);
        return;
    }
    if (f > r->next) {
        int64_t s = cvd_nats_restart_frame(m, f);
        if (!replay) {
            atomic_fetch_add(&g->st.gaps, 1);
            atomic_fetch_add(&g->st.gap_frames, (unsigned long long)(f - r->next));
            cvd_nats_warn(g, CVD_NW_GAP,
                          "nats %s: id %s: frames %" PRId64 "..%" PRId64 " never came (the next "
                          "message, stream sequence %" PRIu64 ", starts at frame %" PRId64
                          "); its stream restarts at frame %" PRId64 " with an empty history",
                          g->conf.name, r->id, r->next, f - 1, seq, f, s);
        }
        r->base = s;
        r->h_len = r->h_head = 0;
        reset = 1;
        reset_at = s;
        from = s < end ? s : end;
    } else {
        from = r->next;
    }
    if (r->st == NULL) {
        r->st = calloc(1, sizeof *r->st);
        if (r->st == NULL) {
            cvd_log_error("nats %s: out of memory for id %s", g->conf.name, r->id);
            finish_untaken(l, msg, slot);
            return;
        }
        l->n_states++;
        r->dormant = 0;
        if (!reset) {
            reset = 1;
            reset_at = r->next > r->base ? r->next : r->base;
        }
    }
    const int publish = !replay && slot != 0 && end > r->done;
    size_t out_cap = 0;
    if (publish) {
        long calls = ((long)(end - from) + m->block - 1) / m->block + 1;
        out_cap = (size_t)calls * (size_t)m->max_out;
    }
    cvd_nats_job *j = calloc(1, sizeof *j + out_cap * (size_t)m->out_ch * sizeof(float));
    if (j == NULL) {
        cvd_log_error("nats %s: out of memory for a message of id %s", g->conf.name, r->id);
        finish_untaken(l, msg, slot);
        return;
    }
    j->kind = CVD_NJ_FEED;
    j->lane = cvd_nats_lane_ref(l);
    j->st = r->st;
    j->flags = (reset ? CVD_NJF_RESET : 0) | (publish ? CVD_NJF_PUBLISH : 0) |
               (replay ? CVD_NJF_REPLAY : 0);
    j->reset_at = reset_at;
    j->first = f;
    j->from = from;
    j->n = n;
    j->data = data;
    j->msg = msg;
    j->seq = seq;
    j->slot = slot;
    memcpy(j->id, r->id, r->idlen + 1);
    j->out = (float *)(void *)(j + 1);
    j->out_cap = (int)out_cap;
    if (from < end)
        hist_push(r, f, end, seq);
    r->next = end;
    r->last_seen = cvd_nats_now();
    if (slot) {
        cvd_nats_slot *s = &l->ring[slot % l->ring_cap];
        s->rec = r;
        s->end = end;
        r->inflight++;
    }
    if (!publish && from < end) {
        atomic_fetch_add(&g->st.replayed_frames, (unsigned long long)(end - from));
        l->replayed_frames += (uint64_t)(end - from);
    }
    cvd_nats_exec_push(l->exec, j);
}

static void take(cvd_nats_lane *l, natsMsg *msg, uint64_t seq, uint64_t slot, int replay);

/* r has no model state and its message starts past where its history begins: the messages
 * between are in the log (before `seq`); feed them first (l->mu is released meanwhile) */
static void fetch_history(cvd_nats_lane *l, cvd_nats_rec *r, uint64_t seq)
{
    cvd_nats_group *g = l->g;
    char subject[512], idbuf[CVD_NATS_ID_MAX + 1], num[32], ebuf[256];
    uint64_t cursor = r->replay_seq;
    natsMsg *got[256];
    uint64_t seqs[256];
    int n_got = 0, total = 0;

    memcpy(idbuf, r->id, r->idlen + 1);
    snprintf(num, sizeof num, "%d", l->part);
    snprintf(subject, sizeof subject, "%s.part.%s.%s", g->conf.prefix, num, idbuf);
    atomic_fetch_add(&g->st.history_fetches, 1);
    r->last_seen = cvd_nats_now(); /* not swept meanwhile */
    for (;;) {
        pthread_mutex_unlock(&l->mu);
        n_got = 0;
        while (n_got < (int)(sizeof got / sizeof got[0])) {
            natsMsg *hm = NULL;
            natsStatus s = NATS_TIMEOUT;
            uint64_t hseq = 0;
            for (int attempt = 0; attempt < 5 && s != NATS_OK && s != NATS_NOT_FOUND; attempt++)
                s = cvd_nats_msg_next(g->nc, g->conf.input_stream, cursor, subject, g->timeout, &hm,
                                      &hseq);
            if (s == NATS_NOT_FOUND)
                break;
            if (s != NATS_OK) {
                cvd_nats_warn(g, CVD_NW_HISTORY,
                              "nats %s: id %s: its history cannot be read from the log (%s); it "
                              "restarts without it",
                              g->conf.name, idbuf, cvd_nats_status_text(s, ebuf, sizeof ebuf));
                break;
            }
            if (hseq >= seq) {
                natsMsg_Destroy(hm);
                break;
            }
            seqs[n_got] = hseq;
            got[n_got++] = hm;
            cursor = hseq + 1;
        }
        pthread_mutex_lock(&l->mu);
        for (int i = 0; i < n_got; i++) {
            if (l->stopping || atomic_load(&l->dead))
                natsMsg_Destroy(got[i]);
            else
                take(l, got[i], seqs[i], 0, 1);
        }
        total += n_got;
        if (n_got < (int)(sizeof got / sizeof got[0]) || l->stopping || atomic_load(&l->dead) ||
            total > 1000000)
            break;
    }
    cvd_log_debug("nats %s: id %s: %d messages of history read back from the log", g->conf.name,
                  idbuf, total);
}

/* the frames of a message, checked; -1 and the reason counted when it is not usable */
static int check_message(cvd_nats_lane *l, natsMsg *msg, uint64_t seq, int replay, const char **id,
                         size_t *idlen, int64_t *f, int *n, const void **data)
{
    cvd_nats_group *g = l->g;
    const char *subject = natsMsg_GetSubject(msg), *v = NULL;
    int part = -1, len = natsMsg_GetDataLength(msg);
    int reason = -1;
    char why[160] = "";
    const size_t frame_bytes = (size_t)g->model.in_ch * 4;

    *data = natsMsg_GetData(msg);
    if (subject == NULL ||
        cvd_nats_parse_part_subject(subject, g->conf.prefix, &part, id, idlen) < 0 ||
        part != l->part) {
        reason = CVD_NBAD_SUBJECT;
        snprintf(why, sizeof why, "not a subject of partition %d", l->part);
    } else if (!cvd_nats_id_valid(*id, *idlen)) {
        reason = CVD_NBAD_ID;
        snprintf(why, sizeof why, "the id is not 1 to %d of A-Z a-z 0-9 _ -", CVD_NATS_ID_MAX);
    } else if (natsMsgHeader_Get(msg, "Convd-Frame", &v) != NATS_OK || v == NULL) {
        reason = CVD_NBAD_FRAME_MISSING;
        snprintf(why, sizeof why, "no Convd-Frame header");
    } else if (cvd_nats_parse_frame(v, f) < 0) {
        reason = CVD_NBAD_FRAME_INVALID;
        snprintf(why, sizeof why, "Convd-Frame '%.40s' is not a frame index (decimal digits)", v);
    } else if (len <= 0 || (size_t)len % frame_bytes != 0) {
        reason = CVD_NBAD_PAYLOAD;
        snprintf(why, sizeof why,
                 "a payload of %d bytes is not a whole number of frames (%zu bytes: %d channels "
                 "of float32)",
                 len, frame_bytes, g->model.in_ch);
    } else if (*f + (int64_t)((size_t)len / frame_bytes) > CVD_NATS_FRAME_MAX) {
        reason = CVD_NBAD_FRAME_INVALID;
        snprintf(why, sizeof why, "frames past 2^53");
    } else {
        *n = (int)((size_t)len / frame_bytes);
        if (!g->nonfinite_pass) {
            const unsigned char *p = *data;
            for (size_t i = 0; i < (size_t)*n * (size_t)g->model.in_ch; i++) {
                float x;
                memcpy(&x, p + i * 4, 4);
                if (!isfinite(x)) {
                    reason = CVD_NBAD_NONFINITE;
                    snprintf(why, sizeof why,
                             "a NaN or infinite sample at frame %" PRId64 " (nonfinite = reject)",
                             *f + (int64_t)(i / (size_t)g->model.in_ch));
                    break;
                }
            }
        }
    }
    if (reason < 0) {
        /* a message on this partition of an id the servers' mapping should have put
         * elsewhere: the servers' partition count differs from ours */
        if (cvd_nats_partition(*id, *idlen, g->conf.partitions) != l->part) {
            atomic_fetch_add(&g->st.mapping_mismatches, 1);
            cvd_nats_warn(g, CVD_NW_MAPPING,
                          "nats %s: id %.*s arrived on partition %d but partition(%d) puts it "
                          "on %d: the servers' mapping does not use partitions = %d (fix one "
                          "or the other; docs/SCALE.md)",
                          g->conf.name, (int)*idlen, *id, l->part, g->conf.partitions,
                          cvd_nats_partition(*id, *idlen, g->conf.partitions), g->conf.partitions);
        }
        return 0;
    }
    if (!replay) {
        atomic_fetch_add(&g->st.bad[reason], 1);
        cvd_nats_warn(g, CVD_NW_BAD + reason,
                      "nats %s: message %" PRIu64 " on %s: %s; skipped (other ids are not "
                      "affected)",
                      g->conf.name, seq, subject ? subject : "?", why);
    }
    return -1;
}

static void take(cvd_nats_lane *l, natsMsg *msg, uint64_t seq, uint64_t slot, int replay)
{
    const char *id;
    size_t idlen;
    int64_t f = 0;
    int n = 0;
    const void *data;

    if (check_message(l, msg, seq, replay, &id, &idlen, &f, &n, &data) < 0) {
        finish_untaken(l, msg, slot);
        return;
    }
    cvd_nats_rec *r = rec_find(l, id, idlen);
    if (r == NULL) {
        r = rec_add(l, id, idlen);
        if (r == NULL) {
            cvd_log_error("nats %s: out of memory for a new id", l->g->conf.name);
            finish_untaken(l, msg, slot);
            return;
        }
        /* a new id starts where its first message starts (a windowed model: at the first
         * window boundary from there) */
        r->base = r->replay = cvd_nats_restart_frame(&l->g->model, f);
        r->next = r->done = f;
        if (f > 0 && !replay) {
            atomic_fetch_add(&l->g->st.gaps, 1);
            atomic_fetch_add(&l->g->st.gap_frames, (unsigned long long)f);
            cvd_nats_warn(l->g, CVD_NW_GAP,
                          "nats %s: id %s: its first message starts at frame %" PRId64
                          " (frames 0..%" PRId64 " never came, or left the log); it starts "
                          "there with an empty history",
                          l->g->conf.name, r->id, f, f - 1);
        }
    }
    /* no model state, and its history begins at an earlier message than this one: read the
     * history back from the log first (an idle id that returns; an id of a partition taken
     * over whose first message here is not where its history starts) */
    if (r->st == NULL && r->replay_seq != 0 && r->replay_seq < seq && slot != 0) {
        fetch_history(l, r, seq);
        if (l->stopping || atomic_load(&l->dead)) {
            finish_untaken(l, msg, slot);
            return;
        }
    }
    dispatch(l, r, msg, f, n, seq, slot, replay, data);
}

/* the intake: libnats's delivery thread of the lane's subscription */
static void on_msg(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
    cvd_nats_lane *l = closure;
    jsMsgMetaData *meta = NULL;
    (void)nc;

    if (natsMsg_GetMetaData(&meta, msg) != NATS_OK) {
        natsMsg_Destroy(msg);
        return;
    }
    uint64_t sseq = meta->Sequence.Stream, cseq = meta->Sequence.Consumer;
    uint64_t pending = meta->NumPending;
    jsMsgMetaData_Destroy(meta);

    pthread_mutex_lock(&l->mu);
    if (l->stopping || l->resetting || sub != l->sub || atomic_load(&l->dead)) {
        pthread_mutex_unlock(&l->mu);
        natsMsg_Destroy(msg);
        return;
    }
    if (cseq != l->last_cseq + 1) {
        if (cseq > l->last_cseq + 1) {
            /* a delivery was lost on its way: take nothing more from this consumer */
            l->resetting = 1;
            cvd_nats_warn(l->g, CVD_NW_CONSUMER,
                          "nats %s: partition %d: delivery %" PRIu64 " came after %" PRIu64
                          " (a message was lost on its way); replacing the consumer from "
                          "stream sequence %" PRIu64,
                          l->g->conf.name, l->part, cseq, l->last_cseq, l->last_sseq + 1);
            pthread_mutex_unlock(&l->mu);
            natsMsg_Destroy(msg);
            cvd_nats_group_request_reset(l->g, l);
            return;
        }
        pthread_mutex_unlock(&l->mu);
        natsMsg_Destroy(msg);
        return;
    }
    l->last_cseq = cseq;
    atomic_store(&l->pending, pending);
    if (sseq <= l->last_sseq) { /* delivered again: taken already */
        pthread_mutex_unlock(&l->mu);
        natsMsg_Destroy(msg);
        return;
    }
    l->last_sseq = sseq;
    if (l->ring_tail - l->ring_head >= l->ring_cap && ring_grow(l) < 0) {
        pthread_mutex_unlock(&l->mu);
        natsMsg_Destroy(msg);
        cvd_log_error("nats %s: out of memory", l->g->conf.name);
        return;
    }
    uint64_t slot = l->ring_tail++;
    cvd_nats_slot *s = &l->ring[slot % l->ring_cap];
    memset(s, 0, sizeof *s);
    s->seq = sseq;
    s->msg = msg;
    atomic_fetch_add(&l->g->st.messages_in, 1);
    take(l, msg, sseq, slot, sseq <= l->replay_bound);
    pthread_mutex_unlock(&l->mu);
}

static void on_sub_complete(void *closure)
{
    cvd_nats_lane *l = closure;
    atomic_fetch_sub(&l->g->subs_live, 1);
    cvd_nats_lane_unref(l);
}

/* ---- consumers ---------------------------------------------------------------------------- */

static void lanes_register(cvd_nats_group *g, cvd_nats_lane *l, int add)
{
    pthread_mutex_lock(&g->lanes_mu);
    for (int i = 0; i < g->n_lanes; i++)
        if (g->lanes[i] == l) {
            if (!add)
                g->lanes[i] = g->lanes[--g->n_lanes];
            pthread_mutex_unlock(&g->lanes_mu);
            return;
        }
    if (add) {
        if (g->n_lanes == g->cap_lanes) {
            int nc = g->cap_lanes ? g->cap_lanes * 2 : 16;
            cvd_nats_lane **n = realloc(g->lanes, (size_t)nc * sizeof *n);
            if (n) {
                g->lanes = n;
                g->cap_lanes = nc;
            }
        }
        if (g->n_lanes < g->cap_lanes)
            g->lanes[g->n_lanes++] = l;
    }
    pthread_mutex_unlock(&g->lanes_mu);
}

static int retryable(natsStatus s)
{
    return s == NATS_TIMEOUT || s == NATS_NO_RESPONDERS || s == NATS_CONNECTION_DISCONNECTED ||
           s == NATS_NOT_YET_CONNECTED || s == NATS_CONNECTION_CLOSED || s == NATS_ERR ||
           s == NATS_IO_ERROR;
}

static void delete_consumer(cvd_nats_lane *l, const char *name, int attempts)
{
    cvd_nats_group *g = l->g;
    for (int a = 0; a < attempts; a++) {
        jsErrCode jerr = 0;
        natsStatus s = js_DeleteConsumer(g->js, g->conf.input_stream, name, NULL, &jerr);
        if (s == NATS_OK || s == NATS_NOT_FOUND || jerr == JSConsumerNotFoundErr)
            return;
        if (atomic_load(&g->quit))
            return;
        SLEEP_MS(100 * (a + 1));
    }
}

static int create_consumer(cvd_nats_lane *l, uint64_t start)
{
    cvd_nats_group *g = l->g;
    const cvd_nats_conf *c = &g->conf;
    char filter[512], name[128], ebuf[256];
    natsInbox *inbox = NULL;
    jsErrCode jerr = 0;
    natsStatus s = NATS_ERR;
    double ttl = c->lease_ttl;

    snprintf(filter, sizeof filter, "%s.part.%d.*", c->prefix, l->part);
    snprintf(name, sizeof name, "%s_p%d_%" PRIu64 "_%d", c->input_stream, l->part, l->epoch,
             l->consumer_k + 1);
    for (int attempt = 0; !atomic_load(&l->dead) && !atomic_load(&g->quit); attempt++) {
        jsConsumerConfig cc;
        jsConsumerInfo *ci = NULL;
        if (natsInbox_Create(&inbox) != NATS_OK)
            return -1;
        jsConsumerConfig_Init(&cc);
        cc.Durable = name;
        cc.Description = "convd partition consumer";
        cc.DeliverSubject = inbox;
        cc.DeliverPolicy = start > 1 ? js_DeliverByStartSequence : js_DeliverAll;
        cc.OptStartSeq = start > 1 ? start : 0;
        cc.AckPolicy = js_AckAll;
        cc.AckWait = (int64_t)((ttl * 4 > 30 ? ttl * 4 : 30) * 1e9);
        cc.MaxDeliver = -1;
        cc.FilterSubject = filter;
        cc.MaxAckPending = c->max_inflight;
        cc.FlowControl = true;
        double hb = ttl / 4 < 0.5 ? 0.5 : ttl / 4 > 5 ? 5 : ttl / 4;
        cc.Heartbeat = (int64_t)(hb * 1e9);
        cc.InactiveThreshold = (int64_t)((ttl * 4 > 60 ? ttl * 4 : 60) * 1e9);
        if (c->consumer_replicas > 0)
            cc.Replicas = c->consumer_replicas;
        cc.MemoryStorage = c->consumer_replicas == 1;
        s = js_AddConsumer(&ci, g->js, c->input_stream, &cc, NULL, &jerr);
        jsConsumerInfo_Destroy(ci);
        if (s == NATS_OK || jerr == JSConsumerNameExistErr || jerr == 10148 /* exists */) {
            jsSubOptions so;
            natsSubscription *sub = NULL;
            jsSubOptions_Init(&so);
            so.Stream = c->input_stream;
            so.Consumer = name;
            so.ManualAck = true;
            so.Config.MemoryStorage = cc.MemoryStorage; /* libnats compares it when binding */
            /* held across the subscribe, so the first deliveries wait for l->sub */
            pthread_mutex_lock(&l->mu);
            s = js_Subscribe(&sub, g->js, filter, on_msg, l, NULL, &so, &jerr);
            if (s == NATS_OK) {
                cvd_nats_lane_ref(l);
                atomic_fetch_add(&g->subs_live, 1);
                natsSubscription_SetPendingLimits(sub, -1, -1);
                natsSubscription_SetOnCompleteCB(sub, on_sub_complete, l);
                l->sub = sub;
                l->last_cseq = 0;
                l->last_sseq = start > 0 ? start - 1 : 0;
                l->start_seq = start;
                l->resetting = 0;
                l->consumer_k++;
                snprintf(l->consumer, sizeof l->consumer, "%s", name);
            }
            pthread_mutex_unlock(&l->mu);
            if (s == NATS_OK) {
                natsInbox_Destroy(inbox);
                lanes_register(g, l, 1);
                return 0;
            }
            delete_consumer(l, name, 1);
        }
        natsInbox_Destroy(inbox);
        inbox = NULL;
        cvd_nats_warn(g, CVD_NW_CONSUMER,
                      "nats %s: partition %d: consumer %s from sequence %" PRIu64
                      ": %s (JetStream error %d); retrying",
                      c->name, l->part, name, start, cvd_nats_status_text(s, ebuf, sizeof ebuf),
                      (int)jerr);
        if (!retryable(s) && jerr == 0 && attempt > 20)
            return -1;
        SLEEP_MS(attempt < 5 ? 100 * (attempt + 1) : 1000);
    }
    return -1;
}

static void end_subscription(cvd_nats_lane *l)
{
    natsSubscription *sub;
    pthread_mutex_lock(&l->mu);
    sub = l->sub;
    l->sub = NULL;
    pthread_mutex_unlock(&l->mu);
    if (sub) {
        lanes_register(l->g, l, 0);
        natsSubscription_Unsubscribe(sub);
        natsSubscription_Destroy(sub); /* the lane's reference goes with on_complete */
    }
}

int cvd_nats_lane_reset_consumer(cvd_nats_lane *l)
{
    cvd_nats_group *g = l->g;
    char old[128];
    uint64_t start;

    pthread_mutex_lock(&l->mu);
    l->resetting = 1;
    start = l->last_sseq + 1;
    snprintf(old, sizeof old, "%s", l->consumer);
    pthread_mutex_unlock(&l->mu);
    end_subscription(l);
    delete_consumer(l, old, 2);
    atomic_fetch_add(&g->st.consumer_resets, 1);
    if (create_consumer(l, start) < 0)
        return -1;
    cvd_log_info("nats %s: partition %d: consumer %s replaces %s from stream sequence %" PRIu64,
                 g->conf.name, l->part, l->consumer, old, start);
    return 0;
}

/* ---- taking over, handing over ------------------------------------------------------------ */

static int write_checkpoint_sync(cvd_nats_lane *l)
{
    cvd_nats_group *g = l->g;
    char key[32], ebuf[256];
    size_t len;
    snprintf(key, sizeof key, "p%d", l->part);
    for (int attempt = 0; attempt < 20 && !atomic_load(&l->dead); attempt++) {
        char *text = cvd_nats_lane_checkpoint(l, &len);
        uint64_t rev = 0;
        natsStatus s;
        if (text == NULL)
            return -1;
        if (l->ckpt_rev == 0)
            s = kvStore_Create(&rev, g->kv_ckpt, key, text, (int)len);
        else
            s = kvStore_Update(&rev, g->kv_ckpt, key, text, (int)len, l->ckpt_rev);
        free(text);
        if (s == NATS_OK) {
            l->ckpt_rev = rev;
            return 0;
        }
        /* someone wrote since we read it (the old owner, still running): we hold the lease,
         * so ours goes over it */
        kvEntry *e = NULL;
        if (kvStore_Get(&e, g->kv_ckpt, key) == NATS_OK) {
            l->ckpt_rev = kvEntry_Revision(e);
            kvEntry_Destroy(e);
        }
        cvd_nats_warn(g, CVD_NW_MISC, "nats %s: partition %d: checkpoint: %s; retrying",
                      g->conf.name, l->part, cvd_nats_status_text(s, ebuf, sizeof ebuf));
        SLEEP_MS(100 * (attempt + 1));
    }
    return -1;
}

int cvd_nats_lane_take(cvd_nats_lane *l, const cvd_nats_lease *prev)
{
    cvd_nats_group *g = l->g;
    const cvd_nats_conf *c = &g->conf;
    char key[32], prefix[160], ebuf[256];
    cvd_nats_ckpt ck;
    cvd_err err = {0};
    int have_ckpt = 0;
    uint64_t ack_floor = 0;
    natsStatus s = NATS_ERR;

    memset(&ck, 0, sizeof ck);
    snprintf(key, sizeof key, "p%d", l->part);
    /* 1. the checkpoint */
    for (int attempt = 0; !atomic_load(&l->dead); attempt++) {
        kvEntry *e = NULL;
        s = kvStore_Get(&e, g->kv_ckpt, key);
        if (s == NATS_OK) {
            l->ckpt_rev = kvEntry_Revision(e);
            if (cvd_nats_ckpt_parse(kvEntry_ValueString(e), (size_t)kvEntry_ValueLen(e), &ck,
                                    &err) == 0)
                have_ckpt = 1;
            else
                cvd_log_error("nats %s: partition %d: %s; replaying the whole log instead", c->name,
                              l->part, err.msg);
            kvEntry_Destroy(e);
            break;
        }
        if (s == NATS_NOT_FOUND) {
            /* no checkpoint: never written, or deleted with its tombstone */
            kvEntry *h = NULL;
            if (kvStore_GetRevision(&h, g->kv_ckpt, key, 0) == NATS_OK) {
                l->ckpt_rev = kvEntry_Revision(h);
                kvEntry_Destroy(h);
            }
            break;
        }
        cvd_nats_warn(g, CVD_NW_MISC, "nats %s: partition %d: reading its checkpoint: %s", c->name,
                      l->part, cvd_nats_status_text(s, ebuf, sizeof ebuf));
        SLEEP_MS(attempt < 5 ? 200 : 1000);
    }
    if (atomic_load(&l->dead)) {
        cvd_nats_ckpt_free(&ck);
        return -1;
    }
    /* 2. the old epochs' consumers: their acknowledged floor, then gone (fencing: a paused
     * old owner takes nothing more) */
    snprintf(prefix, sizeof prefix, "%s_p%d_", c->input_stream, l->part);
    for (int attempt = 0; attempt < 10 && !atomic_load(&l->dead); attempt++) {
        jsConsumerNamesList *names = NULL;
        jsErrCode jerr = 0;
        s = js_ConsumerNames(&names, g->js, c->input_stream, NULL, &jerr);
        if (s == NATS_NOT_FOUND)
            break;
        if (s != NATS_OK) {
            cvd_nats_warn(g, CVD_NW_MISC, "nats %s: partition %d: listing consumers: %s", c->name,
                          l->part, cvd_nats_status_text(s, ebuf, sizeof ebuf));
            SLEEP_MS(300 * (attempt + 1));
            continue;
        }
        for (int i = 0; i < names->Count; i++) {
            const char *nm = names->List[i];
            if (strncmp(nm, prefix, strlen(prefix)) != 0)
                continue;
            jsConsumerInfo *ci = NULL;
            if (js_GetConsumerInfo(&ci, g->js, c->input_stream, nm, NULL, &jerr) == NATS_OK) {
                if (ci->AckFloor.Stream > ack_floor)
                    ack_floor = ci->AckFloor.Stream;
                jsConsumerInfo_Destroy(ci);
            }
            delete_consumer(l, nm, 5);
        }
        jsConsumerNamesList_Destroy(names);
        break;
    }
    /* 3. the ids and where the replay starts */
    pthread_mutex_lock(&l->mu);
    uint64_t start = 1, frontier = 0;
    size_t n_active = 0;
    if (have_ckpt) {
        frontier = ck.frontier;
        start = ck.frontier + 1;
        for (size_t i = 0; i < ck.n_ids; i++) {
            const cvd_nats_ckpt_id *e = &ck.ids[i];
            cvd_nats_rec *r = rec_add(l, e->id, strlen(e->id));
            if (r == NULL)
                continue;
            r->base = e->base;
            r->done = e->done;
            r->replay = e->replay;
            r->replay_seq = e->replay_seq;
            r->next = e->replay;
            r->dormant = !e->active;
            r->last_seen = cvd_nats_now();
            n_active += e->active != 0;
            if (e->active && e->replay_seq > 0 && e->replay_seq < start)
                start = e->replay_seq;
        }
    }
    l->replay_bound = frontier > ack_floor ? frontier : ack_floor;
    l->frontier = start - 1;
    size_t n_ids = l->n_recs;
    pthread_mutex_unlock(&l->mu);
    cvd_nats_ckpt_free(&ck);
    /* 4. this epoch's consumer, from there */
    if (create_consumer(l, start) < 0)
        return -1;
    /* 5. our checkpoint over the old one: the old owner can write no more */
    if (write_checkpoint_sync(l) < 0)
        cvd_log_warning("nats %s: partition %d: the first checkpoint of epoch %" PRIu64
                        " could not be written yet",
                        c->name, l->part, l->epoch);
    cvd_log_info("nats %s: partition %d: taken over (epoch %" PRIu64 ") from %s; %zu ids "
                 "checkpointed (%zu with a model state); replaying from stream sequence %" PRIu64
                 " (answered up to %" PRIu64 "), %.3f s after winning the lease",
                 c->name, l->part, l->epoch, prev->owner[0] ? prev->owner : "nobody", n_ids,
                 n_active, start, l->replay_bound, cvd_nats_now() - l->taken_at);
    return 0;
}

static void drop_all_states(cvd_nats_lane *l)
{
    for (cvd_nats_rec *r = l->recs; r; r = r->lnext)
        if (r->st)
            push_drop(l, r);
}

void cvd_nats_lane_kill(cvd_nats_lane *l)
{
    atomic_store(&l->dead, 1);
    pthread_mutex_lock(&l->mu);
    l->stopping = 1;
    pthread_mutex_unlock(&l->mu);
    end_subscription(l);
    pthread_mutex_lock(&l->mu);
    drop_all_states(l);
    pthread_mutex_unlock(&l->mu);
}

int cvd_nats_lane_release(cvd_nats_lane *l)
{
    cvd_nats_group *g = l->g;
    double end = cvd_nats_now() + (g->conf.lease_ttl / 2 < 5 ? g->conf.lease_ttl / 2 : 5);
    int drained = 0;

    pthread_mutex_lock(&l->mu);
    l->stopping = 1;
    pthread_mutex_unlock(&l->mu);
    end_subscription(l);
    /* what was taken is answered first (bounded: a handover must not outlast the lease) */
    while (!atomic_load(&l->dead) && cvd_nats_now() < end) {
        pthread_mutex_lock(&l->mu);
        drained = l->ring_head == l->ring_tail;
        pthread_mutex_unlock(&l->mu);
        if (drained)
            break;
        SLEEP_MS(10);
    }
    int ok = !atomic_load(&l->dead) && write_checkpoint_sync(l) == 0;
    atomic_store(&l->dead, 1);
    pthread_mutex_lock(&l->mu);
    ack_now(l);
    drop_all_states(l);
    pthread_mutex_unlock(&l->mu);
    delete_consumer(l, l->consumer, 3);
    cvd_log_info("nats %s: partition %d: handed over (epoch %" PRIu64 ")%s", g->conf.name, l->part,
                 l->epoch,
                 ok ? (drained ? "" : "; what was in flight is left to the next owner")
                    : "; its last checkpoint could not be written");
    return ok ? 0 : -1;
}

/* ---- the control thread's periodic work ----------------------------------------------------- */

char *cvd_nats_lane_checkpoint(cvd_nats_lane *l, size_t *len)
{
    cvd_nats_ckpt ck;
    char *text;
    memset(&ck, 0, sizeof ck);
    pthread_mutex_lock(&l->mu);
    ck.epoch = l->epoch;
    ck.frontier = l->frontier;
    for (cvd_nats_rec *r = l->recs; r; r = r->lnext) {
        cvd_nats_ckpt_id e;
        memset(&e, 0, sizeof e);
        memcpy(e.id, r->id, r->idlen + 1);
        e.base = r->base;
        e.done = r->done;
        replay_point(&l->g->model, r, &e.replay, &e.replay_seq);
        e.active = !r->dormant;
        if (cvd_nats_ckpt_add(&ck, &e) < 0) {
            pthread_mutex_unlock(&l->mu);
            cvd_nats_ckpt_free(&ck);
            return NULL;
        }
    }
    pthread_mutex_unlock(&l->mu);
    text = cvd_nats_ckpt_format(&ck, len);
    cvd_nats_ckpt_free(&ck);
    return text;
}

void cvd_nats_lane_sweep(cvd_nats_lane *l, double now)
{
    const cvd_nats_conf *c = &l->g->conf;
    const double idle = (double)atomic_load(&l->g->idle_timeout_us) * 1e-6;
    pthread_mutex_lock(&l->mu);
    if (!l->stopping && !atomic_load(&l->dead)) {
        for (cvd_nats_rec *r = l->recs, *n; r; r = n) {
            n = r->lnext;
            if (r->st && r->inflight == 0 && now - r->last_seen > idle)
                drop_state(l, r);
            else if (!r->st && r->inflight == 0 && c->input_max_age > 0 &&
                     now - r->last_seen > c->input_max_age)
                rec_remove(l, r); /* its frames have left the log */
        }
    }
    if (l->unacked > 0)
        ack_now(l);
    pthread_mutex_unlock(&l->mu);
}
