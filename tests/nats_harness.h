/* SPDX-License-Identifier: Apache-2.0 */
/*
 * nats_harness.h - real NATS servers for the NATS transport's tests and benchmark
 * (tests/test_nats.c, tests/bench/bench_nats.c): no Criterion here, every helper returns 0
 * or -1 with a message in nh_err.
 *
 *   nh_cluster_*   N nats-server processes on 127.0.0.1 (free ports, JetStream, their own
 *                  store folders under a given folder, the partition mapping), killed,
 *                  restarted, stopped; children die with the test process (PDEATHSIG)
 *   nh_publish     an id's frames into P.in.<id>, Convd-Frame and Nats-Msg-Id set, each
 *                  message retried with its Msg-Id until stored
 *   nh_collect     every output message of the output stream, grouped by id
 *   nh_check       one id's outputs against the expected frames: complete, each frame once
 *
 * Static functions, one includer per program.
 */
#ifndef CONVD_NATS_HARNESS_H
#define CONVD_NATS_HARNESS_H

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <nats/nats.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#if defined(__GNUC__)
#define NH_FN static __attribute__((unused))
#else
#define NH_FN static
#endif

static char nh_err[1024];

static void nh_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void nh_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(nh_err, sizeof nh_err, fmt, ap);
    va_end(ap);
}

NH_FN double nh_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

NH_FN void nh_sleep(double s)
{
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

/* A port nothing listens on now (bound then closed: good enough on a test machine). */
NH_FN int nh_free_port(void)
{
    struct sockaddr_in a;
    socklen_t len = sizeof a;
    int fd = socket(AF_INET, SOCK_STREAM, 0), port = -1;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    if (fd >= 0)
        close(fd);
    return port;
}

/* fork + exec with output to a file; the child dies with us */
NH_FN pid_t nh_spawn(const char *const *argv, const char *log_path)
{
    pid_t parent = getpid();
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
        int in = open("/dev/null", O_RDONLY);
        int out = open(log_path ? log_path : "/dev/null", O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (in < 0 || out < 0)
            _exit(126);
        dup2(in, 0);
        dup2(out, 1);
        dup2(out, 2);
        close_range(3, ~0U, 0);
        execvp(argv[0], (char *const *)argv);
        _exit(127);
    }
    return pid;
}

/* ---- servers --------------------------------------------------------------------------- */

#define NH_MAX_SERVERS 5

typedef struct nh_server {
    pid_t pid;
    int port, cport;
    char dir[512], conf[600], log[600];
} nh_server;

typedef struct nh_cluster {
    int n;
    nh_server s[NH_MAX_SERVERS];
    char urls[1024]; /* every client URL, comma-separated */
    char base[512];
} nh_cluster;

/* TLS and a token toward the servers, for a test that turns them on: written into every
 * server's configuration (nh_server_extra) and used by every connection the harness makes */
static char nh_server_extra[4096];
static const char *nh_tls_ca, *nh_tls_cert, *nh_tls_key, *nh_token;

NH_FN natsStatus nh_secure(natsOptions *o)
{
    natsStatus s = NATS_OK;
    if (nh_tls_ca) {
        s = natsOptions_SetSecure(o, true);
        if (s == NATS_OK)
            s = natsOptions_LoadCATrustedCertificates(o, nh_tls_ca);
    }
    if (s == NATS_OK && nh_tls_cert)
        s = natsOptions_LoadCertificatesChain(o, nh_tls_cert, nh_tls_key);
    if (s == NATS_OK && nh_token)
        s = natsOptions_SetToken(o, nh_token);
    return s;
}

NH_FN int nh_write_server_conf(nh_cluster *c, int i, const char *prefix, int partitions)
{
    nh_server *s = &c->s[i];
    FILE *f = fopen(s->conf, "w");
    if (f == NULL) {
        nh_fail("%s: %s", s->conf, strerror(errno));
        return -1;
    }
    fprintf(f, "server_name: n%d\nlisten: 127.0.0.1:%d\nmax_payload: 8MB\n", i + 1, s->port);
    fprintf(f, "jetstream { store_dir: \"%s\" }\n", s->dir);
    if (c->n > 1) {
        fprintf(f, "cluster {\n  name: convd-test\n  listen: 127.0.0.1:%d\n  routes: [", s->cport);
        for (int k = 0, first = 1; k < c->n; k++)
            if (k != i) {
                fprintf(f, "%snats-route://127.0.0.1:%d", first ? "" : ", ", c->s[k].cport);
                first = 0;
            }
        fprintf(f, "]\n}\n");
    }
    fprintf(f, "mappings = {\n  \"%s.in.*\": \"%s.part.{{partition(%d,1)}}.{{wildcard(1)}}\"\n}\n",
            prefix, prefix, partitions);
    fputs(nh_server_extra, f);
    fclose(f);
    return 0;
}

NH_FN int nh_server_start(nh_cluster *c, int i)
{
    nh_server *s = &c->s[i];
    const char *argv[] = {"nats-server", "-c", s->conf, NULL};
    s->pid = nh_spawn(argv, s->log);
    if (s->pid < 0) {
        nh_fail("fork: %s", strerror(errno));
        return -1;
    }
    return 0;
}

/* JetStream answers through server i (in a cluster: a meta leader is elected) */
NH_FN int nh_server_wait_ready(nh_cluster *c, int i, double timeout)
{
    char url[64];
    double end = nh_now() + timeout;
    snprintf(url, sizeof url, "nats://127.0.0.1:%d", c->s[i].port);
    while (nh_now() < end) {
        natsConnection *nc = NULL;
        natsOptions *o = NULL;
        natsStatus cs = natsOptions_Create(&o);
        if (cs == NATS_OK)
            cs = natsOptions_SetURL(o, url);
        if (cs == NATS_OK)
            cs = nh_secure(o);
        if (cs == NATS_OK)
            cs = natsConnection_Connect(&nc, o);
        natsOptions_Destroy(o);
        if (cs == NATS_OK) {
            jsCtx *js = NULL;
            jsAccountInfo *ai = NULL;
            jsOptions jo;
            jsOptions_Init(&jo);
            jo.Wait = 1000;
            natsStatus s = natsConnection_JetStream(&js, nc, &jo);
            if (s == NATS_OK)
                s = js_GetAccountInfo(&ai, js, NULL, NULL);
            jsAccountInfo_Destroy(ai);
            jsCtx_Destroy(js);
            natsConnection_Destroy(nc);
            if (s == NATS_OK)
                return 0;
        }
        int st;
        if (waitpid(c->s[i].pid, &st, WNOHANG) == c->s[i].pid) {
            nh_fail("nats-server %d exited (status 0x%x); see %s", i + 1, st, c->s[i].log);
            c->s[i].pid = 0;
            return -1;
        }
        nh_sleep(0.05);
    }
    nh_fail("nats-server %d: JetStream not ready after %.0f s; see %s", i + 1, timeout,
            c->s[i].log);
    return -1;
}

/* n servers (1: no cluster) under base/ (created), the mapping of prefix over partitions */
NH_FN int nh_cluster_start(nh_cluster *c, int n, const char *base, const char *prefix,
                           int partitions)
{
    memset(c, 0, sizeof *c);
    c->n = n;
    if (strlen(base) > 400) {
        nh_fail("%s: too long a folder", base);
        return -1;
    }
    snprintf(c->base, sizeof c->base, "%s", base);
    mkdir(base, 0755);
    for (int i = 0; i < n; i++) {
        nh_server *s = &c->s[i];
        s->port = nh_free_port();
        s->cport = nh_free_port();
        snprintf(s->dir, sizeof s->dir, "%.400s/n%d", base, i + 1);
        snprintf(s->conf, sizeof s->conf, "%.400s/n%d.conf", base, i + 1);
        snprintf(s->log, sizeof s->log, "%.400s/n%d.log", base, i + 1);
        mkdir(s->dir, 0755);
        size_t ul = strlen(c->urls);
        snprintf(c->urls + ul, sizeof c->urls - ul, "%snats://127.0.0.1:%d", i ? "," : "", s->port);
    }
    for (int i = 0; i < n; i++)
        if (nh_write_server_conf(c, i, prefix, partitions) < 0 || nh_server_start(c, i) < 0)
            return -1;
    for (int i = 0; i < n; i++)
        if (nh_server_wait_ready(c, i, 30) < 0)
            return -1;
    return 0;
}

NH_FN void nh_server_kill(nh_cluster *c, int i, int sig)
{
    if (c->s[i].pid > 0) {
        kill(c->s[i].pid, sig);
        if (sig == SIGKILL || sig == SIGTERM || sig == SIGINT) {
            waitpid(c->s[i].pid, NULL, 0);
            c->s[i].pid = 0;
        }
    }
}

NH_FN int nh_server_restart(nh_cluster *c, int i)
{
    if (nh_server_start(c, i) < 0)
        return -1;
    return nh_server_wait_ready(c, i, 30);
}

NH_FN void nh_cluster_stop(nh_cluster *c)
{
    for (int i = 0; i < c->n; i++)
        if (c->s[i].pid > 0)
            kill(c->s[i].pid, SIGTERM);
    for (int i = 0; i < c->n; i++)
        if (c->s[i].pid > 0) {
            double end = nh_now() + 10;
            int done = 0;
            while (!done && nh_now() < end) {
                done = waitpid(c->s[i].pid, NULL, WNOHANG) == c->s[i].pid;
                if (!done)
                    nh_sleep(0.02);
            }
            if (!done) {
                kill(c->s[i].pid, SIGKILL);
                waitpid(c->s[i].pid, NULL, 0);
            }
            c->s[i].pid = 0;
        }
}

NH_FN natsConnection *nh_connect(const char *urls)
{
    natsOptions *o = NULL;
    natsConnection *nc = NULL;
    char copy[1024];
    const char *list[NH_MAX_SERVERS + 1];
    int n = 0;
    snprintf(copy, sizeof copy, "%s", urls);
    for (char *save = NULL, *t = strtok_r(copy, ",", &save); t && n < NH_MAX_SERVERS;
         t = strtok_r(NULL, ",", &save))
        list[n++] = t;
    if (natsOptions_Create(&o) != NATS_OK)
        return NULL;
    natsOptions_SetServers(o, list, n);
    natsOptions_SetMaxReconnect(o, -1);
    natsOptions_SetReconnectWait(o, 100);
    natsOptions_SetTimeout(o, 2000);
    natsStatus s = nh_secure(o);
    if (s == NATS_OK)
        s = natsConnection_Connect(&nc, o);
    natsOptions_Destroy(o);
    if (s != NATS_OK) {
        nh_fail("connect %s: %s", urls, natsStatus_GetText(s));
        return NULL;
    }
    return nc;
}

/* ---- producing --------------------------------------------------------------------------- */

/* One message of an id: frames [first, first + n) of `frames` (channels interleaved),
 * published on P.in.<id> until stored (the same Msg-Id every time); retries counted. */
NH_FN int nh_publish_msg(jsCtx *js, const char *prefix, const char *id, const float *data, int n,
                         int ch, int64_t first, double timeout, unsigned long *retries)
{
    char subj[256], num[32], mid[200];
    double end = nh_now() + timeout;
    snprintf(subj, sizeof subj, "%s.in.%s", prefix, id);
    snprintf(num, sizeof num, "%" PRId64, first);
    snprintf(mid, sizeof mid, "%s:%" PRId64, id, first);
    for (;;) {
        natsMsg *m = NULL;
        jsPubAck *pa = NULL;
        jsErrCode jerr = 0;
        natsStatus s = natsMsg_Create(&m, subj, NULL, (const char *)data, n * ch * 4);
        if (s == NATS_OK)
            s = natsMsgHeader_Set(m, "Convd-Frame", num);
        if (s == NATS_OK)
            s = natsMsgHeader_Set(m, "Nats-Msg-Id", mid);
        if (s == NATS_OK)
            s = js_PublishMsg(&pa, js, m, NULL, &jerr);
        natsMsg_Destroy(m);
        jsPubAck_Destroy(pa);
        if (s == NATS_OK)
            return 0;
        if (retries)
            (*retries)++;
        if (nh_now() > end) {
            nh_fail("publish %s frame %" PRId64 ": %s (JetStream error %d)", subj, first,
                    natsStatus_GetText(s), (int)jerr);
            return -1;
        }
        nh_sleep(0.05);
    }
}

/* An id's frames [from, to) in messages of per_msg frames. */
NH_FN int nh_publish(jsCtx *js, const char *prefix, const char *id, const float *frames, int ch,
                     int64_t from, int64_t to, int per_msg, double timeout, unsigned long *retries)
{
    for (int64_t t = from; t < to; t += per_msg) {
        int n = (int)(to - t < per_msg ? to - t : per_msg);
        if (nh_publish_msg(js, prefix, id, frames + t * ch, n, ch, t, timeout, retries) < 0)
            return -1;
    }
    return 0;
}

/* ---- collecting ------------------------------------------------------------------------ */

typedef struct nh_out {
    int64_t frame; /* Convd-Frame */
    int n;         /* frames */
    float *data;
    char msg_id[200];
} nh_out;

typedef struct nh_outs {
    char id[160];
    nh_out *m;
    int n, cap;
} nh_outs;

typedef struct nh_collection {
    nh_outs *ids;
    int n, cap;
    uint64_t messages;
} nh_collection;

NH_FN void nh_collection_free(nh_collection *c)
{
    for (int i = 0; i < c->n; i++) {
        for (int k = 0; k < c->ids[i].n; k++)
            free(c->ids[i].m[k].data);
        free(c->ids[i].m);
    }
    free(c->ids);
    memset(c, 0, sizeof *c);
}

NH_FN nh_outs *nh_collection_id(nh_collection *c, const char *id)
{
    for (int i = 0; i < c->n; i++)
        if (strcmp(c->ids[i].id, id) == 0)
            return &c->ids[i];
    return NULL;
}

/* Every message in the output stream over P.out.> (read with an ordered consumer up to the
 * stream's last sequence at the time of the call). */
NH_FN int nh_collect(natsConnection *nc, const char *stream, const char *prefix, int ch,
                     nh_collection *out)
{
    jsCtx *js = NULL;
    jsStreamInfo *si = NULL;
    jsErrCode jerr = 0;
    natsSubscription *sub = NULL;
    jsSubOptions so;
    char filter[256];
    int rc = -1;

    memset(out, 0, sizeof *out);
    if (natsConnection_JetStream(&js, nc, NULL) != NATS_OK) {
        nh_fail("jetstream context");
        return -1;
    }
    natsStatus s = NATS_ERR;
    for (int attempt = 0; attempt < 50; attempt++) {
        s = js_GetStreamInfo(&si, js, stream, NULL, &jerr);
        if (s == NATS_OK)
            break;
        nh_sleep(0.2);
    }
    if (s != NATS_OK) {
        nh_fail("stream %s: %s", stream, natsStatus_GetText(s));
        goto done;
    }
    uint64_t last = si->State.LastSeq, count = si->State.Msgs;
    jsStreamInfo_Destroy(si);
    if (count == 0) {
        rc = 0;
        goto done;
    }
    snprintf(filter, sizeof filter, "%s.out.>", prefix);
    jsSubOptions_Init(&so);
    so.Stream = stream;
    so.Ordered = true;
    if ((s = js_SubscribeSync(&sub, js, filter, NULL, &so, &jerr)) != NATS_OK) {
        nh_fail("subscribe %s: %s (%d)", filter, natsStatus_GetText(s), (int)jerr);
        goto done;
    }
    natsSubscription_SetPendingLimits(sub, -1, -1);
    const size_t pl = strlen(prefix) + 5;
    for (;;) {
        natsMsg *m = NULL;
        jsMsgMetaData *meta = NULL;
        s = natsSubscription_NextMsg(&m, sub, 10000);
        if (s != NATS_OK) {
            nh_fail("reading %s: %s after %" PRIu64 " messages", stream, natsStatus_GetText(s),
                    out->messages);
            goto done;
        }
        uint64_t seq = 0;
        if (natsMsg_GetMetaData(&meta, m) == NATS_OK) {
            seq = meta->Sequence.Stream;
            jsMsgMetaData_Destroy(meta);
        }
        const char *subj = natsMsg_GetSubject(m), *fv = NULL, *idv = NULL;
        const char *id = strlen(subj) > pl ? subj + pl : "";
        nh_outs *o = nh_collection_id(out, id);
        if (o == NULL) {
            if (out->n == out->cap) {
                out->cap = out->cap ? out->cap * 2 : 64;
                out->ids = realloc(out->ids, (size_t)out->cap * sizeof *out->ids);
            }
            o = &out->ids[out->n++];
            memset(o, 0, sizeof *o);
            snprintf(o->id, sizeof o->id, "%s", id);
        }
        if (o->n == o->cap) {
            o->cap = o->cap ? o->cap * 2 : 64;
            o->m = realloc(o->m, (size_t)o->cap * sizeof *o->m);
        }
        nh_out *e = &o->m[o->n++];
        memset(e, 0, sizeof *e);
        natsMsgHeader_Get(m, "Convd-Frame", &fv);
        natsMsgHeader_Get(m, "Nats-Msg-Id", &idv);
        e->frame = fv ? strtoll(fv, NULL, 10) : -1;
        snprintf(e->msg_id, sizeof e->msg_id, "%s", idv ? idv : "");
        e->n = natsMsg_GetDataLength(m) / (4 * ch);
        e->data = malloc((size_t)natsMsg_GetDataLength(m) + 1);
        memcpy(e->data, natsMsg_GetData(m), (size_t)natsMsg_GetDataLength(m));
        out->messages++;
        natsMsg_Destroy(m);
        if (seq >= last)
            break;
    }
    rc = 0;
done:
    natsSubscription_Destroy(sub);
    jsCtx_Destroy(js);
    return rc;
}

static int nh_cmp_out(const void *a, const void *b)
{
    const nh_out *x = a, *y = b;
    return x->frame < y->frame ? -1 : x->frame > y->frame;
}

/* The result of checking one id's outputs against what it should be. */
typedef struct nh_verdict {
    int64_t frames;      /* output frames found (each counted once) */
    int64_t duplicates;  /* frames found more than once */
    int64_t missing;     /* expected frames not found */
    int64_t wrong;       /* frames found with other values than expected */
    int64_t first_wrong; /* index of the first wrong frame, -1 */
    int bad_headers;     /* messages whose Nats-Msg-Id is not <id>:<Convd-Frame> */
} nh_verdict;

/* o (sorted in place) against expect[0..n_expect) of ch channels, bit for bit */
NH_FN nh_verdict nh_check(nh_outs *o, const float *expect, int64_t n_expect, int ch)
{
    nh_verdict v = {0, 0, 0, 0, -1, 0};
    int64_t next = 0;
    char want[220];
    if (o)
        qsort(o->m, (size_t)o->n, sizeof *o->m, nh_cmp_out);
    for (int i = 0; o && i < o->n; i++) {
        nh_out *e = &o->m[i];
        snprintf(want, sizeof want, "%s:%" PRId64, o->id, e->frame);
        if (strcmp(want, e->msg_id) != 0)
            v.bad_headers++;
        for (int k = 0; k < e->n; k++) {
            int64_t t = e->frame + k;
            if (t < next) {
                v.duplicates++;
                continue;
            }
            if (t > next)
                v.missing += t - next;
            next = t + 1;
            v.frames++;
            if (t >= n_expect ||
                memcmp(e->data + (size_t)k * (size_t)ch, expect + t * ch, (size_t)ch * 4) != 0) {
                if (v.first_wrong < 0)
                    v.first_wrong = t;
                v.wrong++;
            }
        }
    }
    if (next < n_expect)
        v.missing += n_expect - next;
    return v;
}

/* ---- a producer thread ------------------------------------------------------------------ */

#include <pthread.h>
#include <stdatomic.h>

/* ids "<name_prefix><k>", k < ids, each frames[k] (frames x ch), published round-robin in
 * messages of per_msg frames (with jitter when vary: message sizes from 1 to per_msg), a
 * pause between rounds; every message retried with its Msg-Id until stored. */
typedef struct nh_producer {
    pthread_t th;
    const char *urls, *prefix, *name_prefix;
    int ids, ch, per_msg, vary;
    int64_t frames;
    float **in;
    double pause;
    atomic_int done, failed;
    atomic_ullong published; /* messages stored */
    unsigned long retries;
    char err[sizeof nh_err];
} nh_producer;

static void *nh_producer_main(void *arg)
{
    nh_producer *p = arg;
    natsConnection *nc = nh_connect(p->urls);
    jsCtx *js = NULL;
    jsOptions jo;
    int64_t *at = calloc((size_t)p->ids, sizeof *at);
    uint64_t rnd = 88172645463325252ull;
    jsOptions_Init(&jo);
    jo.Wait = 2000;
    if (nc == NULL || at == NULL || natsConnection_JetStream(&js, nc, &jo) != NATS_OK) {
        snprintf(p->err, sizeof p->err, "%s", nh_err);
        atomic_store(&p->failed, 1);
        atomic_store(&p->done, 1);
        free(at);
        return NULL;
    }
    for (int left = p->ids; left > 0 && !atomic_load(&p->failed);) {
        left = 0;
        for (int k = 0; k < p->ids; k++) {
            char id[64];
            if (at[k] >= p->frames)
                continue;
            int n = p->per_msg;
            if (p->vary) {
                rnd ^= rnd << 13;
                rnd ^= rnd >> 7;
                rnd ^= rnd << 17;
                n = 1 + (int)(rnd % (uint64_t)p->per_msg);
            }
            if (p->frames - at[k] < n)
                n = (int)(p->frames - at[k]);
            snprintf(id, sizeof id, "%s%d", p->name_prefix, k);
            if (nh_publish_msg(js, p->prefix, id, p->in[k] + at[k] * p->ch, n, p->ch, at[k], 60,
                               &p->retries) < 0) {
                snprintf(p->err, sizeof p->err, "%s", nh_err);
                atomic_store(&p->failed, 1);
                break;
            }
            atomic_fetch_add(&p->published, 1);
            at[k] += n;
            left += at[k] < p->frames;
        }
        if (p->pause > 0)
            nh_sleep(p->pause);
    }
    free(at);
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
    atomic_store(&p->done, 1);
    return NULL;
}

NH_FN int nh_producer_start(nh_producer *p)
{
    atomic_init(&p->done, 0);
    atomic_init(&p->failed, 0);
    atomic_init(&p->published, 0);
    return pthread_create(&p->th, NULL, nh_producer_main, p) == 0 ? 0 : -1;
}

NH_FN void nh_producer_join(nh_producer *p)
{
    pthread_join(p->th, NULL);
}

/* messages in a stream now */
NH_FN uint64_t nh_stream_msgs(natsConnection *nc, const char *stream)
{
    jsCtx *js = NULL;
    jsStreamInfo *si = NULL;
    jsOptions jo;
    uint64_t n = 0;
    jsOptions_Init(&jo);
    jo.Wait = 2000;
    if (natsConnection_JetStream(&js, nc, &jo) != NATS_OK)
        return 0;
    if (js_GetStreamInfo(&si, js, stream, NULL, NULL) == NATS_OK) {
        n = si->State.Msgs;
        jsStreamInfo_Destroy(si);
    }
    jsCtx_Destroy(js);
    return n;
}

#endif
