/* SPDX-License-Identifier: Apache-2.0 */
/*
 * bench_nats: frames per second through a NATS JetStream cluster and convd processes
 * ([nats NAME] sections, docs/SCALE.md), and the recovery after a kill.
 *
 *   bench_nats [--nodes N] [--replicas R] [--quick]
 *
 * Starts N nats-server processes (default 3, replicas 3) on 127.0.0.1 under a temporary
 * folder, then for each workload:
 *   - NAM's standard model (../shared/models/nam/wavenet_a1_standard.nam), 8 ids of 48 kHz
 *     audio in messages of 512 frames;
 *   - a small sensor model (config/models/vibration-denoise.json, 3 channels at 1 kHz),
 *     1,000 ids in messages of 100 frames;
 * measures:
 *   ingest    the producer alone into the input stream (no convd): the broker's rate for this
 *             message size, the ceiling of anything downstream;
 *   compute   the model alone on one core in this process (blocks of 64): convd's ceiling
 *             per worker thread;
 *   1 convd, 2 convd   end to end: convd processes (2 workers each) serving while the
 *             producer publishes as fast as it can; from the first publish to the last
 *             output stored;
 * with the CPU time nats-server and convd used during the end-to-end run, and says where
 * the limit lies. Then the recovery: 2 convd (lease_ttl 4 s and 15 s), the sensor fleet at a
 * steady rate, one convd killed (-9): time from the kill to the first output of an id it
 * held, frames the taker replayed, and the outputs checked against the model run in-process
 * (missing and duplicated frames; both must be 0).
 *
 * Everything runs on this machine's cores: the servers, the producer, convd; read the
 * figures as ratios within one run. Prints "skipped" when nats-server is not installed.
 */
#include <dirent.h>
#include <ftw.h>
#include <math.h>

#include "../nats_harness.h"
#include "convd_dsp.h"
#include "convd_model.h"

#define NAM_STD "../shared/models/nam/wavenet_a1_standard.nam"
#define SENSOR "config/models/vibration-denoise.json"

#define PARTITIONS 16

static char base[512];
static char convd_path[1024];
static int n_nodes = 3, replicas = 3, quick = 0;

/* ---- processes ------------------------------------------------------------------------- */

static double proc_cpu(pid_t pid)
{
    char path[64], buf[2048];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *p = strrchr(buf, ')');
    unsigned long long ut = 0, st = 0;
    if (p == NULL ||
        sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
        return 0;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static double servers_cpu(const nh_cluster *cl)
{
    double t = 0;
    for (int i = 0; i < cl->n; i++)
        if (cl->s[i].pid > 0)
            t += proc_cpu(cl->s[i].pid);
    return t;
}

typedef struct convd_proc {
    pid_t pid;
    char conf[600], log[600];
    int metrics;
} convd_proc;

static int wait_log(const char *log, const char *text, double timeout, char *out, size_t n)
{
    double end = nh_now() + timeout;
    while (nh_now() < end) {
        FILE *f = fopen(log, "r");
        char line[2048];
        while (f && fgets(line, sizeof line, f)) {
            char *hit = strstr(line, text);
            if (hit) {
                if (out)
                    snprintf(out, n, "%s", hit + strlen(text));
                fclose(f);
                return 0;
            }
        }
        if (f)
            fclose(f);
        nh_sleep(0.05);
    }
    return -1;
}

static int convd_start(convd_proc *c, int k, const nh_cluster *cl, const char *model,
                       int partitions, double ttl)
{
    char rest[256];
    char abs_model[4096];
    if (realpath(model, abs_model) == NULL)
        return -1;
    model = abs_model;
    snprintf(c->conf, sizeof c->conf, "%s/convd%d.conf", base, k);
    snprintf(c->log, sizeof c->log, "%s/convd%d.log", base, k);
    FILE *f = fopen(c->conf, "w");
    if (f == NULL)
        return -1;
    fprintf(f,
            "[server]\nmetrics = 127.0.0.1:0\nworkers = 2\nlog_level = warning\n"
            "[model m]\npath = %s\n"
            "[nats bench]\nservers = %s\nmodel = m\npartitions = %d\nreplicas = %d\n"
            "lease_ttl = %g\ncheckpoint_interval = 0.5\nmax_inflight = 1024\n",
            model, cl->urls, partitions, replicas, ttl);
    fclose(f);
    const char *argv[] = {convd_path, "-c", c->conf, "--log-level", "info", NULL};
    remove(c->log);
    c->pid = nh_spawn(argv, c->log);
    if (c->pid < 0 || wait_log(c->log, "metrics: http://127.0.0.1:", 20, rest, sizeof rest) < 0)
        return -1;
    c->metrics = atoi(rest);
    return wait_log(c->log, ") as ", 60, NULL, 0);
}

static void convd_stop(convd_proc *c, int sig)
{
    if (c->pid <= 0)
        return;
    kill(c->pid, sig);
    double end = nh_now() + 20;
    while (nh_now() < end && waitpid(c->pid, NULL, WNOHANG) != c->pid)
        nh_sleep(0.02);
    if (kill(c->pid, 0) == 0) {
        kill(c->pid, SIGKILL);
        waitpid(c->pid, NULL, 0);
    }
    c->pid = 0;
}

static double convd_metric(const convd_proc *c, const char *series)
{
    char req[128], buf[1 << 16];
    size_t len = 0;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)c->metrics);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
        if (fd >= 0)
            close(fd);
        return NAN;
    }
    snprintf(req, sizeof req, "GET /metrics HTTP/1.0\r\n\r\n");
    if (write(fd, req, strlen(req)) < 0) {
        close(fd);
        return NAN;
    }
    for (ssize_t r; (r = read(fd, buf + len, sizeof buf - 1 - len)) > 0;)
        len += (size_t)r;
    close(fd);
    buf[len] = '\0';
    const char *p = strstr(buf, series);
    return p ? strtod(p + strlen(series) + 1, NULL) : NAN;
}

/* ---- workloads ----------------------------------------------------------------------------- */

typedef struct workload {
    const char *name, *model;
    int ids, ch, per_msg, partitions;
    int64_t frames; /* per id */
    float **in;
} workload;

static void make_inputs(workload *w)
{
    w->in = calloc((size_t)w->ids, sizeof *w->in);
    for (int k = 0; k < w->ids; k++) {
        cvd_rng r;
        w->in[k] = malloc((size_t)w->frames * (size_t)w->ch * sizeof(float));
        cvd_rng_seed(&r, 100 + (uint64_t)k);
        for (int64_t i = 0; i < w->frames * w->ch; i++)
            w->in[k][i] = (float)(cvd_rng_uniform(&r) - 0.5);
    }
}

/* the producer: every message of every id, asynchronously (per-id order holds: one
 * connection, no failure expected; a failure aborts the run) */
static double publish_all(const nh_cluster *cl, const workload *w)
{
    natsConnection *nc = nh_connect(cl->urls);
    jsCtx *js = NULL;
    jsOptions jo;
    jsOptions_Init(&jo);
    jo.PublishAsync.MaxPending = 4096;
    jo.PublishAsync.StallWait = 60000; /* a full window waits, never fails */
    if (nc == NULL || natsConnection_JetStream(&js, nc, &jo) != NATS_OK)
        return -1;
    double t0 = nh_now();
    char subj[256], num[32], mid[96];
    for (int64_t t = 0; t < w->frames; t += w->per_msg)
        for (int k = 0; k < w->ids; k++) {
            int n = (int)(w->frames - t < w->per_msg ? w->frames - t : w->per_msg);
            natsMsg *m = NULL;
            snprintf(subj, sizeof subj, "convd.in.id%d", k);
            snprintf(num, sizeof num, "%lld", (long long)t);
            snprintf(mid, sizeof mid, "id%d:%lld", k, (long long)t);
            natsMsg_Create(&m, subj, NULL, (const char *)(w->in[k] + t * w->ch), n * w->ch * 4);
            natsMsgHeader_Set(m, "Convd-Frame", num);
            natsMsgHeader_Set(m, "Nats-Msg-Id", mid);
            natsStatus s = js_PublishMsgAsync(js, &m, NULL);
            if (s != NATS_OK) {
                natsMsg_Destroy(m);
                fprintf(stderr, "bench_nats: publish: %s\n", natsStatus_GetText(s));
                return -1;
            }
        }
    jsPubOptions po;
    jsPubOptions_Init(&po);
    po.MaxWait = 60000;
    natsStatus s = js_PublishAsyncComplete(js, &po);
    double dt = nh_now() - t0;
    natsMsgList pending = {0};
    if (js_PublishAsyncGetPendingList(&pending, js) == NATS_OK) {
        fprintf(stderr, "bench_nats: %d publishes not acknowledged\n", pending.Count);
        natsMsgList_Destroy(&pending);
        dt = -1;
    }
    if (s != NATS_OK)
        dt = -1;
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
    return dt;
}

static int create_stream(const nh_cluster *cl, const char *name, const char *subject)
{
    natsConnection *nc = nh_connect(cl->urls);
    jsCtx *js = NULL;
    jsStreamConfig sc;
    jsStreamInfo *si = NULL;
    const char *subs[1] = {subject};
    if (nc == NULL || natsConnection_JetStream(&js, nc, NULL) != NATS_OK)
        return -1;
    jsStreamConfig_Init(&sc);
    sc.Name = name;
    sc.Subjects = subs;
    sc.SubjectsLen = 1;
    sc.Replicas = replicas;
    sc.Duplicates = (int64_t)120e9;
    sc.AllowDirect = true;
    natsStatus s = NATS_ERR;
    for (int i = 0; i < 100 && s != NATS_OK; i++) {
        s = js_AddStream(&si, js, &sc, NULL, NULL);
        if (s != NATS_OK)
            nh_sleep(0.1);
    }
    jsStreamInfo_Destroy(si);
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
    return s == NATS_OK ? 0 : -1;
}

/* a fresh start for the next run: convd's streams and buckets gone */
static void delete_all(const nh_cluster *cl)
{
    natsConnection *nc = nh_connect(cl->urls);
    jsCtx *js = NULL;
    if (nc == NULL || natsConnection_JetStream(&js, nc, NULL) != NATS_OK)
        return;
    static const char *const names[] = {"CONVD_IN", "CONVD_OUT", "KV_CONVD_IN_leases",
                                        "KV_CONVD_IN_ckpt"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        js_DeleteStream(js, names[i], NULL, NULL);
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
}

static uint64_t stream_msgs(const nh_cluster *cl, const char *name)
{
    natsConnection *nc = nh_connect(cl->urls);
    uint64_t n = nc ? nh_stream_msgs(nc, name) : 0;
    natsConnection_Destroy(nc);
    return n;
}

/* the model alone, one core: frames per second at blocks of 64 */
static double compute_rate(const workload *w)
{
    cvd_model *m = NULL;
    cvd_net *net = NULL;
    cvd_err err = {0};
    if (cvd_model_load(w->model, &m, &err) < 0 || cvd_net_create(m, 64, &net, &err) < 0)
        return -1;
    float *out = malloc((size_t)cvd_net_max_out(net) * (size_t)cvd_model_out_channels(m) * 4);
    const int64_t frames = w->frames < 96000 ? w->frames : 96000;
    struct timespec a, b;
    int got;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &a);
    for (int64_t t = 0; t + 64 <= frames; t += 64)
        cvd_net_process(net, w->in[0] + t * w->ch, 64, out, &got);
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &b);
    double dt = (double)(b.tv_sec - a.tv_sec) + 1e-9 * (double)(b.tv_nsec - a.tv_nsec);
    free(out);
    cvd_net_destroy(net);
    cvd_model_unref(m);
    return (double)(frames / 64 * 64) / dt;
}

/* the group draining a published backlog with n convd: frames per second from the start of
 * the processes to the last output stored; CPU seconds of the servers and of convd in *srv,
 * *cvd. The input stream stays; convd's outputs, buckets and consumers go first. */
static double drain(const nh_cluster *cl, const workload *w, int n, double *srv, double *cvd,
                    double *first)
{
    convd_proc c[4];
    memset(c, 0, sizeof c);
    natsConnection *nc = nh_connect(cl->urls);
    jsCtx *js = NULL;
    if (nc == NULL || natsConnection_JetStream(&js, nc, NULL) != NATS_OK)
        return -1;
    js_DeleteStream(js, "CONVD_OUT", NULL, NULL);
    js_DeleteStream(js, "KV_CONVD_IN_leases", NULL, NULL);
    js_DeleteStream(js, "KV_CONVD_IN_ckpt", NULL, NULL);
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
    const uint64_t want = (uint64_t)w->ids * (uint64_t)((w->frames + w->per_msg - 1) / w->per_msg);
    double s0 = servers_cpu(cl), t0 = nh_now();
    for (int i = 0; i < n; i++)
        if (convd_start(&c[i], i, cl, w->model, w->partitions, 15) < 0) {
            fprintf(stderr, "bench_nats: convd did not start; see %s\n", c[i].log);
            for (int k = 0; k <= i; k++)
                convd_stop(&c[k], SIGKILL);
            return -1;
        }
    uint64_t have = 0;
    *first = 0;
    for (double end = nh_now() + 600; nh_now() < end;) {
        have = stream_msgs(cl, "CONVD_OUT");
        if (have > 0 && *first == 0)
            *first = nh_now() - t0;
        if (have >= want)
            break;
        if (getenv("BENCH_NATS_PROGRESS"))
            fprintf(
                stderr, "  %.2f s: %llu outputs, convd0 in %.0f out %.0f lag0 %.0f\n",
                nh_now() - t0, (unsigned long long)have,
                convd_metric(&c[0], "convd_nats_messages_in_total{group=\"bench\"}"),
                convd_metric(&c[0], "convd_nats_messages_out_total{group=\"bench\"}"),
                convd_metric(&c[0], "convd_nats_lag_messages{group=\"bench\",partition=\"0\"}"));
        nh_sleep(0.05);
    }
    double dt = nh_now() - t0;
    *srv = servers_cpu(cl) - s0;
    *cvd = 0;
    for (int i = 0; i < n; i++)
        *cvd += proc_cpu(c[i].pid);
    for (int i = 0; i < n; i++)
        convd_stop(&c[i], SIGTERM);
    if (have < want) {
        fprintf(stderr, "bench_nats: %llu outputs of %llu\n", (unsigned long long)have,
                (unsigned long long)want);
        return -1;
    }
    /* the rate from the first output on: the processes' start (connecting, taking the
     * partitions) is reported apart */
    return (double)w->ids * (double)w->frames / (dt - *first > 0.05 ? dt - *first : 0.05);
}

static void bench_workload(nh_cluster *cl, workload *w)
{
    make_inputs(w);
    double comp = compute_rate(w);
    /* ingest alone: the producer into the input stream, nobody reading */
    delete_all(cl);
    double ingest = -1, s0 = servers_cpu(cl);
    if (create_stream(cl, "CONVD_IN", "convd.part.>") == 0) {
        double dt = publish_all(cl, w);
        ingest = dt > 0 ? (double)w->ids * (double)w->frames / dt : -1;
    }
    double ingest_cpu = servers_cpu(cl) - s0;
    printf("\n== %s: %d ids x %lld frames, %d frames per message (%d bytes), %d partitions\n",
           w->name, w->ids, (long long)w->frames, w->per_msg, w->per_msg * w->ch * 4,
           w->partitions);
    printf("  ingest alone (the producer into the input stream, %d servers, %d replicas): %.0f "
           "frames/s "
           "(%.0f messages/s); servers' CPU %.1f s\n",
           cl->n, replicas, ingest, ingest / w->per_msg, ingest_cpu);
    printf("  model alone, one core, blocks of 64: %.0f frames/s\n", comp);
    double e2e[3] = {0};
    for (int n = 1; n <= 2; n++) {
        double srv = 0, cvd = 0, first = 0;
        e2e[n] = drain(cl, w, n, &srv, &cvd, &first);
        if (e2e[n] < 0) {
            printf("  %d convd: failed\n", n);
            continue;
        }
        double secs = (double)w->ids * (double)w->frames / e2e[n] + first;
        printf("  %d convd (2 workers each) draining it: %.0f frames/s (%.0f messages in and "
               "out/s) = %.2f x ingest alone, %.2f x the model on one core, from the first "
               "output (%.1f s after the processes' start) to the last (%.1f s); servers' CPU "
               "%.1f s (%.0f%% of a core), convd's %.1f s (%.0f%%)\n",
               n, e2e[n], e2e[n] / w->per_msg, e2e[n] / ingest, e2e[n] / comp, first, secs, srv,
               100 * srv / secs, cvd, 100 * cvd / secs);
    }
    const double best = e2e[2] > e2e[1] ? e2e[2] : e2e[1];
    const long cores = sysconf(_SC_NPROCESSORS_ONLN);
    if (best > 0.5 * ingest)
        printf("  limit: the broker (draining reaches %.0f%% of what the servers take in with "
               "nothing reading; each message is written twice, in and out)\n",
               100 * best / ingest);
    else if (best > 0.5 * comp * (double)cores)
        printf("  limit: convd's model compute (%.0f%% of the model's rate on all %ld cores)\n",
               100 * best / (comp * (double)cores), cores);
    else
        printf("  limit: neither alone: the %ld cores are shared by the %d servers and convd "
               "(draining is %.0f%% of ingest alone, %.0f%% of the model's rate on all cores); "
               "the servers' CPU share says which side waits\n",
               cores, cl->n, 100 * best / ingest, 100 * best / (comp * (double)cores));
    for (int k = 0; k < w->ids; k++)
        free(w->in[k]);
    free(w->in);
}

/* ---- recovery --------------------------------------------------------------------------- */

typedef struct rwatch {
    pthread_mutex_t mu;
    double kill_at, first_after;
    char victim_ids[1000];
} rwatch;

static void on_out(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
    rwatch *w = closure;
    (void)nc;
    (void)sub;
    const char *id = strrchr(natsMsg_GetSubject(msg), '.');
    double now = nh_now();
    pthread_mutex_lock(&w->mu);
    if (id && w->kill_at > 0 && w->first_after == 0 && now > w->kill_at + 0.05) {
        int k = atoi(id + 3); /* ".idK" */
        if (k >= 0 && k < 1000 && w->victim_ids[k])
            w->first_after = now;
    }
    pthread_mutex_unlock(&w->mu);
    natsMsg_Destroy(msg);
}

static uint32_t fnv(const char *s)
{
    uint32_t h = 2166136261u;
    for (; *s; s++) {
        h ^= (uint8_t)*s;
        h *= 16777619u;
    }
    return h;
}

static void recovery(nh_cluster *cl, double ttl)
{
    workload w = {"sensor", SENSOR, 200, 3, 50, PARTITIONS, quick ? 1000 : 2000, NULL};
    const char *out_name = "CONVD_OUT";
    convd_proc c[2];
    memset(c, 0, sizeof c);
    make_inputs(&w);
    delete_all(cl);
    for (int i = 0; i < 2; i++)
        if (convd_start(&c[i], 10 + i, cl, w.model, w.partitions, ttl) < 0) {
            printf("  recovery: convd did not start\n");
            return;
        }
    for (double end = nh_now() + 60; nh_now() < end;) {
        double a = convd_metric(&c[0], "convd_nats_partitions_owned{group=\"bench\"}");
        double b = convd_metric(&c[1], "convd_nats_partitions_owned{group=\"bench\"}");
        if (a + b == w.partitions && a > 0 && b > 0)
            break;
        nh_sleep(0.1);
    }
    /* which ids the victim (c[1]) holds: its partitions, from the lease bucket */
    rwatch rw;
    memset(&rw, 0, sizeof rw);
    pthread_mutex_init(&rw.mu, NULL);
    natsConnection *nc = nh_connect(cl->urls);
    jsCtx *js = NULL;
    kvStore *kv = NULL;
    char key[32], bucket[64], victim[128] = "";
    natsConnection_JetStream(&js, nc, NULL);
    snprintf(bucket, sizeof bucket, "CONVD_IN_leases");
    js_KeyValue(&kv, js, bucket);
    wait_log(c[1].log, ") as ", 1, victim, sizeof victim);
    victim[strcspn(victim, "\n")] = '\0';
    int held[64] = {0};
    for (int p = 0; p < w.partitions && kv; p++) {
        kvEntry *e = NULL;
        snprintf(key, sizeof key, "p%d", p);
        if (kvStore_Get(&e, kv, key) == NATS_OK) {
            held[p] = strncmp(kvEntry_ValueString(e), victim, strlen(victim)) == 0;
            kvEntry_Destroy(e);
        }
    }
    /* the servers' mapping: partition = FNV-1a(id) mod partitions */
    for (int k = 0; k < w.ids; k++) {
        char id[16];
        snprintf(id, sizeof id, "id%d", k);
        rw.victim_ids[k] = (char)held[fnv(id) % (uint32_t)w.partitions];
    }
    natsSubscription *sub = NULL;
    char outs[64];
    snprintf(outs, sizeof outs, "convd.out.>");
    natsConnection_Subscribe(&sub, nc, outs, on_out, &rw);
    /* a steady producer: 200 ids, one message each every 50 ms (4,000 messages/s) */
    nh_producer p = {.urls = cl->urls,
                     .prefix = "convd",
                     .name_prefix = "id",
                     .ids = w.ids,
                     .ch = 3,
                     .per_msg = w.per_msg,
                     .frames = w.frames,
                     .in = w.in,
                     .pause = 0.05};
    nh_producer_start(&p);
    const uint64_t total = (uint64_t)w.ids * (uint64_t)(w.frames / w.per_msg);
    while (atomic_load(&p.published) < total / 3 && !atomic_load(&p.done))
        nh_sleep(0.02);
    pthread_mutex_lock(&rw.mu);
    rw.kill_at = nh_now();
    pthread_mutex_unlock(&rw.mu);
    convd_stop(&c[1], SIGKILL);
    nh_producer_join(&p);
    for (double end = nh_now() + 120; nh_now() < end && stream_msgs(cl, out_name) < total;)
        nh_sleep(0.1);
    double replayed = convd_metric(&c[0], "convd_nats_replayed_frames_total{group=\"bench\"}");
    /* every id's output against the model in-process */
    nh_collection col;
    int64_t missing = 0, dups = 0, wrong = 0, frames = 0;
    cvd_model *m = NULL;
    cvd_err err = {0};
    if (nh_collect(nc, out_name, "convd", 3, &col) == 0 && cvd_model_load(w.model, &m, &err) == 0) {
        for (int k = 0; k < w.ids; k++) {
            char id[16];
            snprintf(id, sizeof id, "id%d", k);
            cvd_net *net = NULL;
            cvd_net_create(m, 64, &net, &err);
            float *ref = malloc((size_t)w.frames * 3 * 4);
            int got, n = 0;
            for (int64_t t = 0; t < w.frames; t += 50) {
                cvd_net_process(net, w.in[k] + t * 3, 50, ref + (size_t)n * 3, &got);
                n += got;
            }
            nh_verdict v = nh_check(nh_collection_id(&col, id), ref, n, 3);
            missing += v.missing;
            dups += v.duplicates;
            wrong += v.wrong;
            frames += v.frames;
            free(ref);
            cvd_net_destroy(net);
        }
        nh_collection_free(&col);
        cvd_model_unref(m);
    }
    pthread_mutex_lock(&rw.mu);
    double rec = rw.first_after > 0 ? rw.first_after - rw.kill_at : -1;
    pthread_mutex_unlock(&rw.mu);
    printf("  lease_ttl %g s: first output of a taken-over id %.2f s after the kill; %.0f "
           "frames replayed by the taker (%.0f per id it took over, about); outputs: %lld "
           "frames, %lld missing, %lld duplicated, %lld different from the model\n",
           ttl, rec, replayed, replayed / (w.ids / 2.0), (long long)frames, (long long)missing,
           (long long)dups, (long long)wrong);
    natsSubscription_Destroy(sub);
    kvStore_Destroy(kv);
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
    convd_stop(&c[0], SIGTERM);
    for (int k = 0; k < w.ids; k++)
        free(w.in[k]);
    free(w.in);
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--nodes") == 0 && i + 1 < argc)
            n_nodes = atoi(argv[++i]);
        else if (strcmp(argv[i], "--replicas") == 0 && i + 1 < argc)
            replicas = atoi(argv[++i]);
        else if (strcmp(argv[i], "--quick") == 0)
            quick = 1;
        else {
            fprintf(stderr, "usage: bench_nats [--nodes N] [--replicas R] [--quick]\n");
            return 2;
        }
    }
    if (n_nodes < 1 || n_nodes > NH_MAX_SERVERS || replicas < 1 || replicas > n_nodes) {
        fprintf(stderr, "bench_nats: 1 to %d nodes, 1 to nodes replicas\n", NH_MAX_SERVERS);
        return 2;
    }
    if (system("command -v nats-server >/dev/null 2>&1") != 0) {
        printf("bench_nats: skipped (nats-server is not installed)\n");
        return 0;
    }
    /* convd next to this program: BUILD/bench/bench_nats -> BUILD/convd */
    ssize_t n = readlink("/proc/self/exe", convd_path, sizeof convd_path - 16);
    if (n <= 0)
        return 1;
    convd_path[n] = '\0';
    char *slash = strrchr(convd_path, '/');
    *slash = '\0';
    slash = strrchr(convd_path, '/');
    strcpy(slash, "/convd");
    snprintf(base, sizeof base, "%s/convd-bench-nats-XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (mkdtemp(base) == NULL)
        return 1;
    signal(SIGPIPE, SIG_IGN);
    nh_cluster cl;
    char sbase[600];
    snprintf(sbase, sizeof sbase, "%s/servers", base);
    if (nh_cluster_start(&cl, n_nodes, sbase, "convd", PARTITIONS) < 0) {
        fprintf(stderr, "bench_nats: %s\n", nh_err);
        nh_cluster_stop(&cl);
        return 1;
    }
    printf("bench_nats: %d nats-server processes on 127.0.0.1, replicas %d, %d partitions; "
           "%ld cores for everything\n",
           n_nodes, replicas, PARTITIONS, sysconf(_SC_NPROCESSORS_ONLN));
    workload sensor = {"sensor model (vibration-denoise, 3 channels, 6,688 MACs/frame)",
                       SENSOR,
                       1000,
                       3,
                       100,
                       PARTITIONS,
                       quick ? 500 : 1000,
                       NULL};
    workload nam = {"NAM standard (wavenet_a1_standard.nam, 48 kHz)",
                    NAM_STD,
                    8,
                    1,
                    512,
                    PARTITIONS,
                    quick ? 24000 : 96000,
                    NULL};
    bench_workload(&cl, &sensor);
    if (access(NAM_STD, R_OK) == 0)
        bench_workload(&cl, &nam);
    else
        printf("\n== NAM standard: skipped (%s is absent)\n", NAM_STD);
    printf("\n== recovery: 2 convd, 200 sensor ids at 20 messages/s each, one convd killed "
           "(-9) a third of the way\n");
    recovery(&cl, 4);
    if (!quick)
        recovery(&cl, 15);
    nh_cluster_stop(&cl);
    nftw(base, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    return 0;
}
