/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A group: the processes sharing one [nats NAME] section share its partitions (see
 * docs/SCALE.md for the design, nats_internal.h for the threads). This file is the group's
 * life and its control thread: the connection, the streams and buckets, the membership key,
 * the leases (taken by compare-and-swap, refreshed, presumed dead when a key stays unchanged
 * for lease_ttl, released by a compare-and-swap delete), the balance of shares, the
 * checkpoints and the sweeps, and the metrics.
 *
 * Ownership is fenced three ways: a lease write only succeeds over the revision its writer
 * last saw (two processes can never both think they took it); a new owner deletes the old
 * epoch's consumers before it starts, so a paused old owner receives nothing more; and it
 * writes its checkpoint over the old one, so the old owner's next checkpoint or refresh
 * fails and it stops. What a paused owner still had in hand is held by its publisher once
 * its lease is past its time (it cannot know whether it was taken), and dropped when the
 * refresh fails; what it published before is identical to what the new owner computes
 * (deterministic outputs, the same Msg-Ids), so the stream stores it once.
 *
 * Long because: the group's life, leases, balance and checkpoints are the one protocol its
 * control thread runs, and the fencing above is easier to check read together.
 */
#include "nats.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "metrics.h"
#include "nats_internal.h"

#define SLEEP_MS(ms) usleep((useconds_t)(ms)*1000u)

/* ---- warnings ------------------------------------------------------------------------------- */

void cvd_nats_warn(cvd_nats_group *g, int kind, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    double now = cvd_nats_now();
    unsigned long skipped;

    pthread_mutex_lock(&g->warn_mu);
    if (g->warn_at[kind] != 0 && now - g->warn_at[kind] < 1.0) {
        g->warn_skipped[kind]++;
        pthread_mutex_unlock(&g->warn_mu);
        return;
    }
    g->warn_at[kind] = now;
    skipped = g->warn_skipped[kind];
    g->warn_skipped[kind] = 0;
    pthread_mutex_unlock(&g->warn_mu);
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (skipped)
        cvd_log_warning("%s (and %lu more like it in the last second)", msg, skipped);
    else
        cvd_log_warning("%s", msg);
}

/* ---- the registry of groups (metrics) ------------------------------------------------------ */

static pthread_mutex_t registry_mu = PTHREAD_MUTEX_INITIALIZER;
static cvd_nats_group *registry[64];

static void registry_set(cvd_nats_group *g, int add)
{
    pthread_mutex_lock(&registry_mu);
    for (int i = 0; i < 64; i++) {
        if (add && registry[i] == NULL) {
            registry[i] = g;
            break;
        }
        if (!add && registry[i] == g) {
            registry[i] = NULL;
            break;
        }
    }
    pthread_mutex_unlock(&registry_mu);
}

/* ---- ops threads ---------------------------------------------------------------------------- */

static void op_push(cvd_nats_group *g, int kind, cvd_nats_lane *l, const cvd_nats_lease *prev)
{
    cvd_nats_op *op = calloc(1, sizeof *op);
    if (op == NULL) {
        cvd_log_error("nats %s: out of memory", g->conf.name);
        return;
    }
    op->kind = kind;
    op->lane = cvd_nats_lane_ref(l);
    if (prev)
        op->prev = *prev;
    pthread_mutex_lock(&g->ops_mu);
    if (g->ops_tail)
        g->ops_tail->next = op;
    else
        g->ops_head = op;
    g->ops_tail = op;
    pthread_cond_broadcast(&g->ops_cond);
    pthread_mutex_unlock(&g->ops_mu);
}

void cvd_nats_group_request_reset(cvd_nats_group *g, cvd_nats_lane *l)
{
    op_push(g, CVD_NOP_RESET, l, NULL);
}

static void *op_main(void *arg)
{
    cvd_nats_group *g = arg;
    pthread_mutex_lock(&g->ops_mu);
    for (;;) {
        while (g->ops_head == NULL && !atomic_load(&g->quit))
            pthread_cond_wait(&g->ops_cond, &g->ops_mu);
        if (atomic_load(&g->quit))
            break;
        cvd_nats_op *op = g->ops_head;
        g->ops_head = op->next;
        if (g->ops_head == NULL)
            g->ops_tail = NULL;
        pthread_mutex_unlock(&g->ops_mu);
        switch (op->kind) {
        case CVD_NOP_TAKE:
            op->ok = cvd_nats_lane_take(op->lane, &op->prev) == 0;
            break;
        case CVD_NOP_RELEASE:
            op->ok = cvd_nats_lane_release(op->lane) == 0;
            break;
        case CVD_NOP_RESET:
            op->ok = atomic_load(&op->lane->dead) ? 1 : cvd_nats_lane_reset_consumer(op->lane) == 0;
            break;
        case CVD_NOP_KILL:
            cvd_nats_lane_kill(op->lane);
            op->ok = 1;
            break;
        }
        pthread_mutex_lock(&g->ops_mu);
        op->next = g->done_head;
        g->done_head = op;
    }
    pthread_mutex_unlock(&g->ops_mu);
    return NULL;
}

/* ---- the connection, streams and buckets --------------------------------------------------- */

static void on_error_in(cvd_nats_group *g, natsSubscription *sub, natsStatus err)
{
    if (sub == NULL) {
        cvd_nats_warn(g, CVD_NW_MISC, "nats %s: %s", g->conf.name, natsStatus_GetText(err));
        return;
    }
    /* a lane's consumer went silent (its server died, or it was deleted) or fell behind:
     * replace it from the last message taken */
    pthread_mutex_lock(&g->lanes_mu);
    cvd_nats_lane *hit = NULL;
    for (int i = 0; i < g->n_lanes && hit == NULL; i++) {
        pthread_mutex_lock(&g->lanes[i]->mu);
        if (g->lanes[i]->sub == sub)
            hit = cvd_nats_lane_ref(g->lanes[i]);
        pthread_mutex_unlock(&g->lanes[i]->mu);
    }
    pthread_mutex_unlock(&g->lanes_mu);
    if (hit == NULL)
        return;
    if (err == NATS_MISSED_HEARTBEAT || err == NATS_SLOW_CONSUMER) {
        pthread_mutex_lock(&hit->mu);
        int already = hit->resetting || hit->stopping || hit->sub != sub;
        hit->resetting = 1;
        pthread_mutex_unlock(&hit->mu);
        if (!already) {
            cvd_nats_warn(g, CVD_NW_CONSUMER,
                          "nats %s: partition %d: consumer %s: %s; replacing it", g->conf.name,
                          hit->part, hit->consumer, natsStatus_GetText(err));
            cvd_nats_group_request_reset(g, hit);
        }
    }
    cvd_nats_lane_unref(hit);
}

static void on_error(natsConnection *nc, natsSubscription *sub, natsStatus err, void *closure)
{
    cvd_nats_group *g = cvd_nats_guard_enter(closure);
    (void)nc;
    if (g)
        on_error_in(g, sub, err);
    cvd_nats_guard_leave(closure);
}

static void on_disconnect(natsConnection *nc, void *closure)
{
    cvd_nats_group *g = cvd_nats_guard_enter(closure);
    (void)nc;
    if (g) {
        atomic_store(&g->st.connected, 0);
        if (!atomic_load(&g->quit))
            cvd_log_warning("nats %s: disconnected; reconnecting", g->conf.name);
    }
    cvd_nats_guard_leave(closure);
}

static void on_closed(natsConnection *nc, void *closure)
{
    cvd_nats_group *g = cvd_nats_guard_enter(closure);
    (void)nc;
    if (g)
        atomic_store(&g->closed, 1);
    cvd_nats_guard_leave(closure);
}

static void on_reconnect(natsConnection *nc, void *closure)
{
    cvd_nats_group *g = cvd_nats_guard_enter(closure);
    if (g) {
        char url[256] = "";
        natsConnection_GetConnectedUrl(nc, url, sizeof url);
        atomic_store(&g->st.connected, 1);
        cvd_log_info("nats %s: reconnected to %s", g->conf.name, url);
    }
    cvd_nats_guard_leave(closure);
}

/* interruptible sleep: 1 if the group is to stop meanwhile */
static int nap(cvd_nats_group *g, double seconds, int also_stopping)
{
    double end = cvd_nats_now() + seconds;
    while (cvd_nats_now() < end) {
        if (atomic_load(&g->quit) || (also_stopping && atomic_load(&g->stopping)))
            return 1;
        SLEEP_MS(20);
    }
    return atomic_load(&g->quit) || (also_stopping && atomic_load(&g->stopping));
}

static int check_stream(cvd_nats_group *g, jsStreamInfo *si, const char *subject, int input)
{
    const jsStreamConfig *sc = si->Config;
    int covers = 0;
    for (int i = 0; i < sc->SubjectsLen; i++)
        if (strcmp(sc->Subjects[i], subject) == 0 || strcmp(sc->Subjects[i], ">") == 0)
            covers = 1;
    if (!covers) {
        cvd_log_error("nats %s: stream %s exists but does not take %s (its subjects differ); fix "
                      "the stream or choose another name",
                      g->conf.name, sc->Name, subject);
        return -1;
    }
    if (sc->Retention != js_LimitsPolicy) {
        cvd_log_error("nats %s: stream %s exists with %s retention; convd needs limits retention "
                      "(a takeover replays the history, which a work queue deletes)",
                      g->conf.name, sc->Name,
                      sc->Retention == js_WorkQueuePolicy ? "work queue" : "interest");
        return -1;
    }
    if ((double)sc->Duplicates < 119.5e9) {
        cvd_log_error("nats %s: stream %s exists with a duplicates window of %.0f s; convd needs "
                      "at least 2 minutes (retried outputs and producers' retries are stored "
                      "once only inside it)",
                      g->conf.name, sc->Name, (double)sc->Duplicates * 1e-9);
        return -1;
    }
    if (input && !sc->AllowDirect)
        cvd_log_warning("nats %s: stream %s has no allow_direct: an idle id's history cannot be "
                        "read back, so an id that comes back after idle_timeout restarts with "
                        "an empty history",
                        g->conf.name, sc->Name);
    return 0;
}

/* creates the stream if absent (retrying "no responders" while the cluster forms); 0, or -1
 * when it exists with settings convd cannot work with (logged) */
static int ensure_stream(cvd_nats_group *g, const char *name, const char *subject, int input)
{
    const cvd_nats_conf *c = &g->conf;
    char ebuf[256];
    for (int attempt = 0;; attempt++) {
        jsStreamInfo *si = NULL;
        jsErrCode jerr = 0;
        natsStatus s = js_GetStreamInfo(&si, g->js, name, NULL, &jerr);
        if (s == NATS_OK) {
            int rc = check_stream(g, si, subject, input);
            jsStreamInfo_Destroy(si);
            return rc;
        }
        if (s == NATS_NOT_FOUND || jerr == JSStreamNotFoundErr) {
            jsStreamConfig sc;
            const char *subjects[1] = {subject};
            char desc[160];
            snprintf(desc, sizeof desc, "convd [nats %s] %s", c->name, input ? "input" : "output");
            jsStreamConfig_Init(&sc);
            sc.Name = name;
            sc.Description = desc;
            sc.Subjects = subjects;
            sc.SubjectsLen = 1;
            sc.Retention = js_LimitsPolicy;
            sc.Storage = js_FileStorage;
            sc.Replicas = c->replicas;
            sc.Duplicates = (int64_t)(c->duplicate_window * 1e9);
            sc.MaxAge = (int64_t)((input ? c->input_max_age : c->output_max_age) * 1e9);
            sc.MaxBytes = input ? c->input_max_bytes : c->output_max_bytes;
            sc.Discard = js_DiscardOld;
            sc.AllowDirect = true;
            s = js_AddStream(&si, g->js, &sc, NULL, &jerr);
            jsStreamInfo_Destroy(si);
            if (s == NATS_OK) {
                cvd_log_info("nats %s: created stream %s over %s (%d replicas, duplicates "
                             "window %.0f s)",
                             c->name, name, subject, c->replicas, c->duplicate_window);
                return 0;
            }
            if (jerr == JSStreamNameExistErr)
                continue; /* a peer created it meanwhile */
        }
        if (attempt == 0 || attempt % 20 == 0)
            cvd_log_warning("nats %s: stream %s: %s (JetStream error %d); retrying", c->name, name,
                            cvd_nats_status_text(s, ebuf, sizeof ebuf), (int)jerr);
        if (nap(g, attempt < 10 ? 0.25 : 1.0, 1))
            return -1;
    }
}

static int ensure_bucket(cvd_nats_group *g, const char *name, kvStore **out)
{
    char ebuf[256];
    for (int attempt = 0;; attempt++) {
        natsStatus s = js_KeyValue(out, g->js, name);
        if (s == NATS_OK)
            return 0;
        kvConfig kc;
        kvConfig_Init(&kc);
        kc.Bucket = name;
        kc.History = 1;
        kc.Replicas = g->conf.replicas;
        kc.StorageType = js_FileStorage;
        s = js_CreateKeyValue(out, g->js, &kc);
        if (s == NATS_OK)
            return 0;
        if (attempt == 0 || attempt % 20 == 0)
            cvd_log_warning("nats %s: bucket %s: %s; retrying", g->conf.name, name,
                            cvd_nats_status_text(s, ebuf, sizeof ebuf));
        if (nap(g, attempt < 10 ? 0.25 : 1.0, 1))
            return -1;
    }
}

static int setup(cvd_nats_group *g)
{
    const cvd_nats_conf *c = &g->conf;
    cvd_err err = {0};
    jsOptions jo;
    char in_subj[256], out_subj[256], cname[256];

    snprintf(cname, sizeof cname, "convd %s %s", c->name, g->instance);
    for (int attempt = 0; !atomic_load(&g->quit) && !atomic_load(&g->stopping); attempt++) {
        if (cvd_nats_connect(c, cname, on_error, on_disconnect, on_reconnect, on_closed, g->guard,
                             &g->nc, &err) == 0)
            break;
        if (attempt == 0 || attempt % 30 == 0)
            cvd_log_warning("nats %s: %s; retrying", c->name, err.msg);
        if (nap(g, 1.0, 1))
            return -1;
    }
    if (g->nc == NULL)
        return -1;
    atomic_store(&g->st.connected, 1);
    jsOptions_Init(&jo);
    jo.Wait = (int64_t)(g->timeout * 1000);
    if (natsConnection_JetStream(&g->js, g->nc, &jo) != NATS_OK)
        return -1;
    jsOptions_Init(&jo);
    jo.Wait = (int64_t)(g->timeout * 1000);
    jo.PublishAsync.AckHandler = cvd_nats_pub_ack;
    jo.PublishAsync.AckHandlerClosure = g->guard;
    jo.PublishAsync.MaxPending = 65536;
    jo.PublishAsync.StallWait = 500;
    if (natsConnection_JetStream(&g->js_out, g->nc, &jo) != NATS_OK)
        return -1;
    if (cvd_nats_batch_create(g->nc, g->timeout, &g->batch) < 0)
        return -1;
    snprintf(in_subj, sizeof in_subj, "%s.part.>", c->prefix);
    snprintf(out_subj, sizeof out_subj, "%s.out.>", c->prefix);
    if (ensure_stream(g, c->input_stream, in_subj, 1) < 0 ||
        ensure_stream(g, c->output_stream, out_subj, 0) < 0 ||
        ensure_bucket(g, c->lease_bucket, &g->kv_leases) < 0 ||
        ensure_bucket(g, c->checkpoint_bucket, &g->kv_ckpt) < 0)
        return -1;
    for (int attempt = 0; !atomic_load(&g->quit) && !atomic_load(&g->stopping); attempt++) {
        natsStatus s = kvStore_WatchAll(&g->watcher, g->kv_leases, NULL);
        if (s == NATS_OK)
            break;
        if (nap(g, 0.5, 1))
            return -1;
    }
    if (g->watcher == NULL)
        return -1;
    atomic_store(&g->st.ready, 1);
    cvd_log_info("nats %s: serving %s (partitions %d of %s.part.<n>.<id>, outputs to %s) as %s",
                 c->name, c->input_stream, c->partitions, c->prefix, c->output_stream, g->instance);
    return 0;
}

/* ---- leases --------------------------------------------------------------------------------- */

static int is_mine(const cvd_nats_part *p)
{
    return p->state != CVD_NP_FREE;
}

static void set_valid(cvd_nats_part *p, double until)
{
    p->valid_until = until;
    if (p->lane)
        atomic_store(&p->lane->valid_until, (long long)(until * 1e9));
}

static void lose(cvd_nats_group *g, int n, const char *why)
{
    cvd_nats_part *p = &g->parts[n];
    if (!is_mine(p))
        return;
    atomic_fetch_add(&g->st.lease_losses, 1);
    cvd_log_warning("nats %s: partition %d: lease lost (epoch %" PRIu64 "): %s", g->conf.name, n,
                    p->epoch, why);
    if (p->lane) {
        atomic_store(&p->lane->dead, 1);
        op_push(g, CVD_NOP_KILL, p->lane, NULL);
        cvd_nats_lane_unref(p->lane);
        p->lane = NULL;
    }
    p->state = CVD_NP_FREE;
    p->free_since = cvd_nats_now();
}

static void member_seen(cvd_nats_group *g, const char *name, uint64_t rev, int deleted)
{
    double now = cvd_nats_now();
    for (int i = 0; i < g->n_members; i++)
        if (strcmp(g->members[i].name, name) == 0) {
            if (g->members[i].rev != rev)
                g->members[i].seen_at = now;
            g->members[i].rev = rev;
            g->members[i].deleted = deleted;
            return;
        }
    if (g->n_members == g->cap_members) {
        int nc = g->cap_members ? g->cap_members * 2 : 16;
        cvd_nats_member *m = realloc(g->members, (size_t)nc * sizeof *m);
        if (m == NULL)
            return;
        g->members = m;
        g->cap_members = nc;
    }
    cvd_nats_member *m = &g->members[g->n_members++];
    memset(m, 0, sizeof *m);
    snprintf(m->name, sizeof m->name, "%s", name);
    m->rev = rev;
    m->seen_at = now;
    m->deleted = deleted;
}

static void watch_entry(cvd_nats_group *g, kvEntry *e)
{
    const char *key = kvEntry_Key(e);
    uint64_t rev = kvEntry_Revision(e);
    int deleted = kvEntry_Operation(e) != kvOp_Put;
    if (strncmp(key, "m.", 2) == 0) {
        member_seen(g, key + 2, rev, deleted);
        return;
    }
    int n;
    char extra;
    if (sscanf(key, "p%d%c", &n, &extra) != 1 || n < 0 || n >= g->conf.partitions)
        return;
    cvd_nats_part *p = &g->parts[n];
    if (p->known && p->rev == rev)
        return;
    if (rev < p->rev)
        return; /* older than what we know */
    p->known = 1;
    p->rev = rev;
    p->deleted = deleted;
    p->seen_at = cvd_nats_now();
    memset(&p->val, 0, sizeof p->val);
    if (!deleted &&
        cvd_nats_lease_parse(kvEntry_ValueString(e), (size_t)kvEntry_ValueLen(e), &p->val) == 0 &&
        p->val.epoch == 0)
        p->val.epoch = rev;
    if (!deleted && is_mine(p) && rev > p->my_rev &&
        (strcmp(p->val.owner, g->instance) != 0 || p->val.epoch != p->epoch)) {
        char why[192];
        snprintf(why, sizeof why, "%s took it (epoch %" PRIu64 ")", p->val.owner, p->val.epoch);
        lose(g, n, why);
    }
}

static void drain_watcher(cvd_nats_group *g, int wait_ms)
{
    kvEntry *e = NULL;
    int first = 1;
    while (kvWatcher_Next(&e, g->watcher, first ? wait_ms : 1) == NATS_OK) {
        first = 0;
        if (e != NULL) {
            watch_entry(g, e);
            kvEntry_Destroy(e);
            e = NULL;
        }
    }
}

/* the last revision of a key, read directly (after an ambiguous write) */
static int read_lease(cvd_nats_group *g, int n, uint64_t *rev, cvd_nats_lease *val)
{
    char key[32];
    kvEntry *e = NULL;
    snprintf(key, sizeof key, "p%d", n);
    memset(val, 0, sizeof *val);
    if (kvStore_Get(&e, g->kv_leases, key) != NATS_OK)
        return -1;
    *rev = kvEntry_Revision(e);
    if (cvd_nats_lease_parse(kvEntry_ValueString(e), (size_t)kvEntry_ValueLen(e), val) == 0 &&
        val->epoch == 0)
        val->epoch = *rev;
    kvEntry_Destroy(e);
    return 0;
}

enum { W_MEMBER, W_REFRESH, W_ACQUIRE, W_DELETE };

typedef struct wmeta {
    int kind, part;
    char subject[256];
    char value[256];
    cvd_nats_lease prev;
} wmeta;

static int owned_count(const cvd_nats_group *g)
{
    int n = 0;
    for (int i = 0; i < g->conf.partitions; i++)
        n += g->parts[i].state == CVD_NP_TAKING || g->parts[i].state == CVD_NP_RUNNING;
    return n;
}

/* one round of lease writes: the membership key, every lease held, the handovers finished,
 * and the partitions to take (acquire: their numbers) */
static void lease_round(cvd_nats_group *g, const int *acquire, int n_acquire)
{
    const int N = g->conf.partitions;
    const cvd_nats_conf *c = &g->conf;
    int cap = N + 2, n = 0;
    cvd_nats_write *w = calloc((size_t)cap, sizeof *w);
    wmeta *m = calloc((size_t)cap, sizeof *m);
    double sent = cvd_nats_now();

    if (w == NULL || m == NULL) {
        free(w);
        free(m);
        return;
    }
    /* membership, and the leases held, when due (a round may come sooner for acquisitions) */
    const double due = c->lease_ttl / 4 * 0.9;
    if (sent - g->member_sent_at >= due) {
        m[n].kind = W_MEMBER;
        snprintf(m[n].subject, sizeof m[n].subject, "$KV.%s.m.%s", c->lease_bucket, g->instance);
        snprintf(m[n].value, sizeof m[n].value, "%s %d", g->instance, owned_count(g));
        w[n].expect_last = (uint64_t)-1;
        g->member_sent_at = sent;
        n++;
    }
    for (int i = 0; i < N; i++) {
        cvd_nats_part *p = &g->parts[i];
        if (!is_mine(p))
            continue;
        if (!(p->state == CVD_NP_RELEASING && p->release_done) && sent - p->refreshed_at < due)
            continue;
        m[n].part = i;
        snprintf(m[n].subject, sizeof m[n].subject, "$KV.%s.p%d", c->lease_bucket, i);
        if (p->state == CVD_NP_RELEASING && p->release_done) {
            m[n].kind = W_DELETE;
            w[n].kv_delete = 1;
        } else {
            cvd_nats_lease v;
            m[n].kind = W_REFRESH;
            snprintf(v.owner, sizeof v.owner, "%s", g->instance);
            v.epoch = p->epoch;
            cvd_nats_lease_format(m[n].value, sizeof m[n].value, &v);
        }
        w[n].expect_last = p->my_rev;
        n++;
    }
    for (int k = 0; k < n_acquire && n < cap; k++) {
        int i = acquire[k];
        cvd_nats_part *p = &g->parts[i];
        cvd_nats_lease v;
        m[n].kind = W_ACQUIRE;
        m[n].part = i;
        m[n].prev = p->deleted ? (cvd_nats_lease){"", 0} : p->val;
        snprintf(m[n].subject, sizeof m[n].subject, "$KV.%s.p%d", c->lease_bucket, i);
        snprintf(v.owner, sizeof v.owner, "%s", g->instance);
        v.epoch = 0;
        cvd_nats_lease_format(m[n].value, sizeof m[n].value, &v);
        w[n].expect_last = p->known ? p->rev : 0;
        n++;
    }
    for (int k = 0; k < n; k++) {
        w[k].subject = m[k].subject;
        w[k].data = m[k].value;
        w[k].len = w[k].kv_delete ? 0 : (int)strlen(m[k].value);
    }
    if (n == 0) {
        free(w);
        free(m);
        return;
    }
    cvd_nats_batch_run(g->batch, w, n);
    for (int k = 0; k < n; k++) {
        cvd_nats_part *p = m[k].kind == W_MEMBER ? NULL : &g->parts[m[k].part];
        const int ok = w[k].status == NATS_OK;
        const int conflict = w[k].jerr == JSStreamWrongLastSequenceErr;
        switch (m[k].kind) {
        case W_MEMBER:
            if (ok)
                g->member_ok_at = sent;
            break;
        case W_REFRESH:
            if (ok) {
                p->my_rev = w[k].seq;
                p->refreshed_at = sent;
                set_valid(p, sent + c->lease_ttl);
            } else if (conflict) {
                /* ours, if an earlier write of ours timed out but was stored */
                uint64_t rev = 0;
                cvd_nats_lease v;
                if (read_lease(g, m[k].part, &rev, &v) == 0 && strcmp(v.owner, g->instance) == 0 &&
                    v.epoch == p->epoch) {
                    p->my_rev = rev;
                } else {
                    char why[192];
                    snprintf(why, sizeof why, "%s holds it now (epoch %" PRIu64 ")",
                             v.owner[0] ? v.owner : "nobody", v.epoch);
                    lose(g, m[k].part, why);
                }
            } else if (sent > p->valid_until) {
                lose(g, m[k].part, "no refresh got through within lease_ttl");
            }
            break;
        case W_DELETE:
            if (ok || conflict) {
                cvd_nats_lane_unref(p->lane);
                p->lane = NULL;
                p->state = CVD_NP_FREE;
                p->free_since = cvd_nats_now();
                p->release_done = 0;
                atomic_fetch_add(&g->st.handovers, 1);
            }
            break;
        case W_ACQUIRE:
            if (ok && !is_mine(p)) {
                p->epoch = w[k].seq;
                p->my_rev = w[k].seq;
                p->state = CVD_NP_TAKING;
                p->lane = cvd_nats_lane_create(g, m[k].part, p->epoch);
                if (p->lane == NULL) {
                    lose(g, m[k].part, "out of memory");
                    break;
                }
                p->lane->taken_at = sent;
                p->refreshed_at = sent;
                set_valid(p, sent + c->lease_ttl);
                atomic_fetch_add(&g->st.takeovers, 1);
                cvd_log_info("nats %s: partition %d: lease won (epoch %" PRIu64 ")%s%s", c->name,
                             m[k].part, p->epoch, m[k].prev.owner[0] ? " from " : "",
                             m[k].prev.owner);
                op_push(g, CVD_NOP_TAKE, p->lane, &m[k].prev);
            }
            break;
        }
    }
    free(w);
    free(m);
}

/* ---- balance -----------------------------------------------------------------------------------
 */

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int part_free(const cvd_nats_group *g, const cvd_nats_part *p, double now)
{
    if (is_mine(p))
        return 0;
    return !p->known || p->deleted || now - p->seen_at > g->conf.lease_ttl;
}

/* decides what to take (into acquire) and starts handovers of what to give up; *settling
 * is set while the shares are not settled yet (the next round should come soon) */
static int balance(cvd_nats_group *g, int *acquire, int *settling)
{
    const int N = g->conf.partitions;
    const double now = cvd_nats_now(), ttl = g->conf.lease_ttl;
    const char *alive[1024];
    int M = 0, me = -1, n_acq = 0;

    *settling = 1;
    /* a moment for the members' keys to arrive, so a newcomer does not take everything */
    if (atomic_load(&g->stopping) || now - g->started_at < (ttl / 8 < 0.5 ? ttl / 8 : 0.5) ||
        now - g->member_ok_at > ttl)
        return 0;
    for (int i = 0; i < g->n_members && M < 1024; i++)
        if (!g->members[i].deleted && now - g->members[i].seen_at < ttl)
            alive[M++] = g->members[i].name;
    qsort(alive, (size_t)M, sizeof alive[0], cmp_str);
    for (int i = 0; i < M; i++)
        if (strcmp(alive[i], g->instance) == 0)
            me = i;
    if (me < 0)
        return 0; /* our membership key is not seen yet */
    const int quota = N / M + (me < N % M);
    int mine = owned_count(g);
    *settling = mine != quota;
    /* my partitions in a rotated order, so peers pick different free ones first */
    const int offset = (int)((long)me * N / M);
    if (mine < quota) {
        for (int k = 0; k < N && mine + n_acq < quota; k++) {
            int i = (offset + k) % N;
            if (part_free(g, &g->parts[i], now) && now - g->parts[i].free_since > 0.5)
                acquire[n_acq++] = i;
        }
    } else if (mine > quota) {
        /* give up the extra only when a live peer is short of its share */
        int short_peer = 0;
        for (int a = 0; a < M && !short_peer; a++) {
            if (a == me)
                continue;
            int has = 0, q = N / M + (a < N % M);
            for (int i = 0; i < N; i++) {
                const cvd_nats_part *p = &g->parts[i];
                if (!p->deleted && now - p->seen_at <= ttl && strcmp(p->val.owner, alive[a]) == 0)
                    has++;
            }
            short_peer = has < q;
        }
        for (int k = N - 1; k >= 0 && short_peer && mine > quota; k--) {
            int i = (offset + k) % N;
            cvd_nats_part *p = &g->parts[i];
            if (p->state != CVD_NP_RUNNING)
                continue;
            p->state = CVD_NP_RELEASING;
            p->release_done = 0;
            mine--;
            cvd_log_info("nats %s: partition %d: handing it over (%d processes; a share is %d)",
                         g->conf.name, i, M, quota);
            op_push(g, CVD_NOP_RELEASE, p->lane, NULL);
        }
    }
    /* a partition nobody has taken for a whole lease_ttl is taken whatever the shares */
    for (int i = 0; i < N; i++) {
        cvd_nats_part *p = &g->parts[i];
        int listed = 0;
        for (int k = 0; k < n_acq; k++)
            listed |= acquire[k] == i;
        if (!listed && part_free(g, p, now) && now - p->seen_at > 2 * ttl &&
            now - p->free_since > 2 * ttl)
            acquire[n_acq++] = i;
    }
    return n_acq;
}

/* ---- checkpoints ------------------------------------------------------------------------------
 */

static void checkpoint_round(cvd_nats_group *g)
{
    const int N = g->conf.partitions;
    cvd_nats_write *w = calloc((size_t)N, sizeof *w);
    char **texts = calloc((size_t)N, sizeof *texts);
    char(*subj)[256] = calloc((size_t)N, sizeof *subj);
    int *part = calloc((size_t)N, sizeof *part);
    int n = 0;

    if (w && texts && subj && part) {
        for (int i = 0; i < N; i++) {
            cvd_nats_part *p = &g->parts[i];
            size_t len = 0;
            if (p->state != CVD_NP_RUNNING || p->lane == NULL)
                continue;
            texts[n] = cvd_nats_lane_checkpoint(p->lane, &len);
            if (texts[n] == NULL)
                continue;
            snprintf(subj[n], sizeof subj[n], "$KV.%s.p%d", g->conf.checkpoint_bucket, i);
            w[n].subject = subj[n];
            w[n].data = texts[n];
            w[n].len = (int)len;
            w[n].expect_last = p->lane->ckpt_rev ? p->lane->ckpt_rev : 0;
            part[n] = i;
            n++;
        }
        cvd_nats_batch_run(g->batch, w, n);
        for (int k = 0; k < n; k++) {
            cvd_nats_part *p = &g->parts[part[k]];
            if (p->state != CVD_NP_RUNNING || p->lane == NULL)
                continue;
            if (w[k].status == NATS_OK) {
                p->lane->ckpt_rev = w[k].seq;
                atomic_fetch_add(&g->st.checkpoints, 1);
            } else if (w[k].jerr == JSStreamWrongLastSequenceErr)
                lose(g, part[k], "another process wrote its checkpoint");
            else
                cvd_nats_warn(g, CVD_NW_MISC, "nats %s: partition %d: checkpoint: %s", g->conf.name,
                              part[k], natsStatus_GetText(w[k].status));
        }
    }
    for (int k = 0; k < n; k++)
        free(texts[k]);
    free(w);
    free(texts);
    free(subj);
    free(part);
}

/* ---- the control thread ---------------------------------------------------------------------- */

static void ops_finished(cvd_nats_group *g)
{
    pthread_mutex_lock(&g->ops_mu);
    cvd_nats_op *done = g->done_head;
    g->done_head = NULL;
    pthread_mutex_unlock(&g->ops_mu);
    while (done) {
        cvd_nats_op *op = done;
        done = op->next;
        cvd_nats_part *p = &g->parts[op->lane->part];
        if (p->lane == op->lane) {
            if (op->kind == CVD_NOP_TAKE) {
                if (op->ok && p->state == CVD_NP_TAKING) {
                    p->state = CVD_NP_RUNNING;
                } else if (p->state == CVD_NP_TAKING) {
                    cvd_log_warning("nats %s: partition %d: the takeover failed; giving the lease "
                                    "back",
                                    g->conf.name, op->lane->part);
                    atomic_store(&op->lane->dead, 1);
                    op_push(g, CVD_NOP_KILL, op->lane, NULL);
                    p->state = CVD_NP_RELEASING;
                    p->release_done = 1;
                }
            } else if (op->kind == CVD_NOP_RELEASE && p->state == CVD_NP_RELEASING) {
                p->release_done = 1;
            } else if (op->kind == CVD_NOP_RESET && !op->ok && !atomic_load(&op->lane->dead)) {
                op_push(g, CVD_NOP_RESET, op->lane, NULL);
            }
        }
        cvd_nats_lane_unref(op->lane);
        free(op);
    }
}

static void gauges(cvd_nats_group *g)
{
    int owned = 0, ids = 0;
    for (int i = 0; i < g->conf.partitions; i++) {
        cvd_nats_part *p = &g->parts[i];
        if (p->state == CVD_NP_RUNNING || p->state == CVD_NP_TAKING)
            owned++;
        if (p->lane) {
            pthread_mutex_lock(&p->lane->mu);
            ids += p->lane->n_states;
            pthread_mutex_unlock(&p->lane->mu);
        }
    }
    atomic_store(&g->st.partitions_owned, owned);
    atomic_store(&g->st.ids_active, ids);
}

static int anything_mine(const cvd_nats_group *g)
{
    for (int i = 0; i < g->conf.partitions; i++)
        if (is_mine(&g->parts[i]))
            return 1;
    return 0;
}

static void *control_main(void *arg)
{
    cvd_nats_group *g = arg;
    const int N = g->conf.partitions;
    int *acquire = calloc((size_t)N * 2 + 1, sizeof *acquire);
    double next_lease = 0, next_ckpt = 0, next_sweep = 0;
    int released_all = 0;

    if (acquire == NULL || setup(g) < 0)
        goto out;
    g->started_at = cvd_nats_now();
    while (!atomic_load(&g->quit)) {
        drain_watcher(g, 20);
        ops_finished(g);
        double now = cvd_nats_now();
        const double ttl = g->conf.lease_ttl;
        if (atomic_load(&g->stopping) && !released_all) {
            /* hand everything over: a peer takes each at once (no expiry to wait for) */
            for (int i = 0; i < N; i++) {
                cvd_nats_part *p = &g->parts[i];
                if (p->state == CVD_NP_RUNNING) {
                    p->state = CVD_NP_RELEASING;
                    p->release_done = 0;
                    op_push(g, CVD_NOP_RELEASE, p->lane, NULL);
                }
            }
            released_all = 1;
            next_lease = 0;
        }
        if (atomic_load(&g->stopping) && !anything_mine(g))
            break;
        if (now >= next_lease) {
            int settling = 0;
            int n_acq = balance(g, acquire, &settling);
            lease_round(g, acquire, n_acq);
            /* refreshes every lease_ttl/4; sooner while the shares settle */
            next_lease = cvd_nats_now() + (settling ? (ttl / 4 < 0.2 ? ttl / 4 : 0.2) : ttl / 4);
            /* handovers finish between rounds: delete their keys soon */
            for (int i = 0; i < N; i++)
                if (g->parts[i].state == CVD_NP_RELEASING)
                    next_lease = cvd_nats_now() + 0.1;
        } else {
            for (int i = 0; i < N; i++)
                if (g->parts[i].state == CVD_NP_RELEASING && g->parts[i].release_done) {
                    lease_round(g, NULL, 0);
                    break;
                }
        }
        if (now >= next_ckpt) {
            checkpoint_round(g);
            next_ckpt = cvd_nats_now() + (double)atomic_load(&g->checkpoint_interval_us) * 1e-6;
        }
        if (now >= next_sweep) {
            for (int i = 0; i < N; i++)
                if (g->parts[i].lane && g->parts[i].state == CVD_NP_RUNNING)
                    cvd_nats_lane_sweep(g->parts[i].lane, now);
            gauges(g);
            next_sweep = now + 0.1;
        }
    }
out:
    /* what is still held (a quit, not a handover) is left to expire */
    for (int i = 0; i < N && g->parts; i++) {
        cvd_nats_part *p = &g->parts[i];
        if (p->lane) {
            cvd_nats_lane_kill(p->lane);
            cvd_nats_lane_unref(p->lane);
            p->lane = NULL;
        }
        p->state = CVD_NP_FREE;
    }
    if (g->kv_leases && atomic_load(&g->stopping) && !atomic_load(&g->quit)) {
        char key[160];
        snprintf(key, sizeof key, "m.%s", g->instance);
        kvStore_Delete(g->kv_leases, key);
    }
    gauges(g);
    free(acquire);
    if (atomic_load(&g->stopping))
        cvd_log_info("nats %s: stopped; every partition handed over", g->conf.name);
    atomic_store(&g->finished, 1);
    if (g->on_stopped)
        g->on_stopped(g->on_stopped_ctx);
    return NULL;
}

/* ---- life
 * ---------------------------------------------------------------------------------------- */

int cvd_nats_group_create(const cvd_nats_conf *conf, cvd_model *model, long hop, int nonfinite_pass,
                          cvd_nats_exec **execs, int n_execs, cvd_nats_group **out, cvd_err *err)
{
    cvd_nats_group *g;
    char host[64] = "host";
    int rc;

    *out = NULL;
    if (n_execs < 1)
        return cvd_err_set(err, CVD_EINVAL, "[nats %s]: no worker to run on", conf->name);
    g = calloc(1, sizeof *g);
    if (g == NULL)
        return cvd_err_set(err, CVD_ENOMEM, "out of memory");
    g->conf = *conf;
    if ((rc = cvd_nats_model_prepare(model, hop, conf->block, &g->model, err)) < 0) {
        cvd_err_prefix(err, "[nats %s]: model %s", conf->name, conf->model);
        free(g);
        return rc;
    }
    g->model.model = cvd_model_ref(model);
    g->guard = cvd_nats_guard_create(g);
    if (g->guard == NULL) {
        cvd_model_unref(model);
        free(g);
        return cvd_err_set(err, CVD_ENOMEM, "out of memory");
    }
    atomic_init(&g->idle_timeout_us, (long long)(conf->idle_timeout * 1e6));
    atomic_init(&g->checkpoint_interval_us, (long long)(conf->checkpoint_interval * 1e6));
    g->nonfinite_pass = nonfinite_pass;
    g->timeout =
        conf->request_timeout < conf->lease_ttl / 3 ? conf->request_timeout : conf->lease_ttl / 3;
    g->execs = calloc((size_t)n_execs, sizeof *g->execs);
    g->parts = calloc((size_t)conf->partitions, sizeof *g->parts);
    if (g->execs == NULL || g->parts == NULL) {
        cvd_nats_group_destroy(g);
        return cvd_err_set(err, CVD_ENOMEM, "out of memory");
    }
    memcpy(g->execs, execs, (size_t)n_execs * sizeof *execs);
    g->n_execs = n_execs;
    gethostname(host, sizeof host - 1);
    for (char *p = host; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9')))
            *p = '_';
    unsigned rnd = (unsigned)(cvd_nats_now() * 1e9) ^ ((unsigned)getpid() << 16);
    snprintf(g->instance, sizeof g->instance, "%.40s-%d-%08x", host, (int)getpid(), rnd);
    pthread_mutex_init(&g->lanes_mu, NULL);
    pthread_mutex_init(&g->ops_mu, NULL);
    pthread_cond_init(&g->ops_cond, NULL);
    pthread_mutex_init(&g->pub_mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&g->pub_cond, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&g->warn_mu, NULL);
    char sname[96];
    snprintf(sname, sizeof sname, "nats.%s", conf->name);
    g->metrics_stream = cvd_metrics_stream(sname);
    *out = g;
    return CVD_OK;
}

int cvd_nats_group_start(cvd_nats_group *g, cvd_err *err)
{
    g->n_op_threads = 4;
    g->op_threads = calloc((size_t)g->n_op_threads, sizeof *g->op_threads);
    if (g->op_threads == NULL)
        return cvd_err_set(err, CVD_ENOMEM, "out of memory");
    if (pthread_create(&g->pub_thread, NULL, cvd_nats_publisher_main, g) != 0)
        return cvd_err_set(err, CVD_EIO, "[nats %s]: cannot start a thread", g->conf.name);
    for (int i = 0; i < g->n_op_threads; i++)
        if (pthread_create(&g->op_threads[i], NULL, op_main, g) != 0) {
            g->n_op_threads = i;
            atomic_store(&g->quit, 1);
            return cvd_err_set(err, CVD_EIO, "[nats %s]: cannot start a thread", g->conf.name);
        }
    if (pthread_create(&g->control_thread, NULL, control_main, g) != 0) {
        atomic_store(&g->quit, 1);
        return cvd_err_set(err, CVD_EIO, "[nats %s]: cannot start a thread", g->conf.name);
    }
    g->started = 1;
    registry_set(g, 1);
    return CVD_OK;
}

void cvd_nats_group_stop(cvd_nats_group *g, void (*done)(void *), void *ctx)
{
    g->on_stopped = done;
    g->on_stopped_ctx = ctx;
    atomic_store(&g->stopping, 1);
}

const cvd_nats_conf *cvd_nats_group_conf(const cvd_nats_group *g)
{
    return &g->conf;
}

int cvd_nats_group_finished(cvd_nats_group *g)
{
    return atomic_load(&g->finished);
}

void cvd_nats_group_update(cvd_nats_group *g, const cvd_nats_conf *c)
{
    atomic_store(&g->idle_timeout_us, (long long)(c->idle_timeout * 1e6));
    atomic_store(&g->checkpoint_interval_us, (long long)(c->checkpoint_interval * 1e6));
    cvd_log_info("nats %s: reloaded: idle_timeout %g s, checkpoint_interval %g s", c->name,
                 c->idle_timeout, c->checkpoint_interval);
}

void cvd_nats_group_destroy(cvd_nats_group *g)
{
    if (g == NULL)
        return;
    registry_set(g, 0);
    atomic_store(&g->quit, 1);
    if (g->started)
        pthread_join(g->control_thread, NULL);
    pthread_mutex_lock(&g->ops_mu);
    pthread_cond_broadcast(&g->ops_cond);
    pthread_mutex_unlock(&g->ops_mu);
    for (int i = 0; i < g->n_op_threads; i++)
        pthread_join(g->op_threads[i], NULL);
    pthread_mutex_lock(&g->pub_mu);
    pthread_cond_broadcast(&g->pub_cond);
    pthread_mutex_unlock(&g->pub_mu);
    if (g->started)
        pthread_join(g->pub_thread, NULL);
    /* the connection goes first: no callback runs after this */
    if (g->watcher) {
        kvWatcher_Stop(g->watcher);
        kvWatcher_Destroy(g->watcher);
    }
    if (g->nc) {
        natsConnection_Close(g->nc);
        for (int i = 0; i < 500 && !atomic_load(&g->closed); i++)
            SLEEP_MS(10);
    }
    /* the lanes' subscriptions end (their callbacks use g) */
    for (int i = 0; i < 500 && atomic_load(&g->subs_live) > 0; i++)
        SLEEP_MS(10);
    /* no callback of the connection's is inside g after this */
    cvd_nats_guard_close(g->guard);
    kvStore_Destroy(g->kv_leases);
    kvStore_Destroy(g->kv_ckpt);
    cvd_nats_batch_destroy(g->batch);
    /* jobs whose output libnats still holds: libnats frees those messages */
    for (size_t i = 0; i < g->inflight_cap; i++)
        if (g->inflight[i]) {
            g->inflight[i]->omsg = NULL;
            cvd_nats_job_free(g->inflight[i]);
        }
    free(g->inflight);
    jsCtx_Destroy(g->js_out);
    jsCtx_Destroy(g->js);
    natsConnection_Destroy(g->nc);
    while (g->pub_head) {
        cvd_nats_job *j = g->pub_head;
        g->pub_head = j->next;
        cvd_nats_job_free(j);
    }
    while (g->retry_head) {
        cvd_nats_job *j = g->retry_head;
        g->retry_head = j->next;
        cvd_nats_job_free(j);
    }
    for (cvd_nats_op *op = g->ops_head, *n; op; op = n) {
        n = op->next;
        cvd_nats_lane_unref(op->lane);
        free(op);
    }
    for (cvd_nats_op *op = g->done_head, *n; op; op = n) {
        n = op->next;
        cvd_nats_lane_unref(op->lane);
        free(op);
    }
    for (int i = 0; g->parts && i < g->conf.partitions; i++)
        cvd_nats_lane_unref(g->parts[i].lane);
    free(g->parts);
    free(g->members);
    free(g->lanes);
    free(g->op_threads);
    free(g->execs);
    if (g->model.model)
        cvd_model_unref(g->model.model);
    pthread_mutex_destroy(&g->lanes_mu);
    pthread_mutex_destroy(&g->ops_mu);
    pthread_cond_destroy(&g->ops_cond);
    pthread_mutex_destroy(&g->pub_mu);
    pthread_cond_destroy(&g->pub_cond);
    pthread_mutex_destroy(&g->warn_mu);
    free(g);
}

/* ---- metrics ----------------------------------------------------------------------------------
 */

typedef struct tbuf {
    char *p;
    size_t len, cap;
} tbuf;

static void tb_printf(tbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void tb_printf(tbuf *b, const char *fmt, ...)
{
    va_list ap;
    for (;;) {
        va_start(ap, fmt);
        int n = vsnprintf(b->p ? b->p + b->len : NULL, b->p ? b->cap - b->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0)
            return;
        if (b->p && (size_t)n < b->cap - b->len) {
            b->len += (size_t)n;
            return;
        }
        size_t nc = (b->cap + (size_t)n + 1) * 2;
        char *np = realloc(b->p, nc);
        if (np == NULL)
            return;
        b->p = np;
        b->cap = nc;
    }
}

char *cvd_nats_metrics_render(void)
{
    static const char *const bad_names[CVD_NBAD_COUNT] = {
        "payload", "frame_missing", "frame_invalid", "id", "nonfinite", "subject"};
    tbuf b = {0};
    pthread_mutex_lock(&registry_mu);
    int any = 0;
    for (int i = 0; i < 64; i++)
        any |= registry[i] != NULL;
    if (!any) {
        pthread_mutex_unlock(&registry_mu);
        return NULL;
    }
#define GAUGE(nm, help, field)                                                                     \
    tb_printf(&b, "# HELP convd_nats_" nm " " help "\n# TYPE convd_nats_" nm " gauge\n");          \
    for (int i = 0; i < 64; i++)                                                                   \
        if (registry[i])                                                                           \
            tb_printf(&b, "convd_nats_" nm "{group=\"%s\"} %d\n", registry[i]->conf.name,          \
                      atomic_load(&registry[i]->st.field));
#define COUNTER(nm, help, field)                                                                   \
    tb_printf(&b, "# HELP convd_nats_" nm " " help "\n# TYPE convd_nats_" nm " counter\n");        \
    for (int i = 0; i < 64; i++)                                                                   \
        if (registry[i])                                                                           \
            tb_printf(&b, "convd_nats_" nm "{group=\"%s\"} %llu\n", registry[i]->conf.name,        \
                      (unsigned long long)atomic_load(&registry[i]->st.field));
    GAUGE("connected", "1 while connected to a NATS server.", connected)
    GAUGE("ready", "1 once the streams and buckets are in place.", ready)
    GAUGE("partitions_owned", "Partitions this process holds.", partitions_owned)
    GAUGE("ids_active", "Ids with a model state in memory.", ids_active)
    COUNTER("messages_in_total", "Input messages taken from the consumers.", messages_in)
    COUNTER("frames_in_total", "Input frames run through the model for output.", frames_in)
    COUNTER("messages_out_total", "Output messages stored.", messages_out)
    COUNTER("frames_out_total", "Output frames stored.", frames_out)
    COUNTER("replayed_frames_total",
            "Frames run again only to rebuild model history "
            "(takeovers, idle ids).",
            replayed_frames)
    COUNTER("duplicate_messages_total", "Input messages whose frames were taken already.",
            duplicate_messages)
    COUNTER("duplicate_frames_total", "Frames of those.", duplicate_frames)
    COUNTER("gaps_total", "Times an id's frames jumped ahead (its stream restarted).", gaps)
    COUNTER("gap_frames_total", "Frames missing at those jumps.", gap_frames)
    COUNTER("publish_retries_total", "Output publishes tried again (timeouts, no responders).",
            publish_retries)
    COUNTER("output_duplicates_total",
            "Outputs the output stream had stored already "
            "(recomputed after a takeover).",
            output_duplicates)
    COUNTER("lease_losses_total", "Partitions lost to another process or to a lease expiry.",
            lease_losses)
    COUNTER("takeovers_total", "Partition leases won.", takeovers)
    COUNTER("handovers_total", "Partitions handed over cleanly.", handovers)
    COUNTER("consumer_resets_total",
            "Consumers replaced after a lost delivery or a silent "
            "server.",
            consumer_resets)
    COUNTER("mapping_mismatches_total",
            "Messages on a partition the configured partitions "
            "count would not give their id (the servers' mapping differs).",
            mapping_mismatches)
    COUNTER("history_fetches_total", "Idle ids whose history was read back from the log.",
            history_fetches)
    COUNTER("checkpoints_total", "Partition checkpoints written.", checkpoints)
    tb_printf(&b, "# HELP convd_nats_bad_messages_total Input messages skipped, by reason.\n"
                  "# TYPE convd_nats_bad_messages_total counter\n");
    for (int i = 0; i < 64; i++)
        for (int k = 0; registry[i] && k < CVD_NBAD_COUNT; k++)
            tb_printf(&b, "convd_nats_bad_messages_total{group=\"%s\",reason=\"%s\"} %llu\n",
                      registry[i]->conf.name, bad_names[k],
                      (unsigned long long)atomic_load(&registry[i]->st.bad[k]));
    tb_printf(&b, "# HELP convd_nats_lag_messages Messages of a held partition not delivered "
                  "yet.\n# TYPE convd_nats_lag_messages gauge\n");
    for (int i = 0; i < 64; i++) {
        cvd_nats_group *g = registry[i];
        if (g == NULL)
            continue;
        pthread_mutex_lock(&g->lanes_mu);
        for (int k = 0; k < g->n_lanes; k++) {
            cvd_nats_lane *l = g->lanes[k];
            tb_printf(&b, "convd_nats_lag_messages{group=\"%s\",partition=\"%d\"} %llu\n",
                      g->conf.name, l->part, (unsigned long long)atomic_load(&l->pending));
        }
        pthread_mutex_unlock(&g->lanes_mu);
    }
#undef GAUGE
#undef COUNTER
    pthread_mutex_unlock(&registry_mu);
    return b.p;
}
