/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_nats_cluster.c - convd daemons ([nats NAME] sections) on real NATS servers started
 * here on 127.0.0.1 (free ports, their own store folders, killed at the end even when a test
 * fails), with every kind of failure the scale-out guarantee covers: a convd process killed
 * (-9) mid-run and restarted, a NATS server killed and restarted, a convd paused past its
 * lease and resumed (the zombie), producers retrying with the same Msg-Id, bad input. After
 * each, every id's output in the output stream is complete, each frame exactly once, equal
 * bit for bit to convd-run of the id's concatenated input.
 *
 * Lease timings are the tests' own (by configuration): lease_ttl 4 s, checkpoints every
 * 0.25 s. The recovery figures (time from a kill to the first output of a taken-over id,
 * frames replayed) are printed with cr_log_info.
 */
#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <pthread.h>

#include "convd_model.h"
#include "daemon_util.h"
#include "nats_harness.h"
#include "nats_wire.h"
#include "testutil.h"
#include "tls_util.h"

#define SENSOR "config/models/vibration-denoise.json" /* 3 -> 3 channels, rf 253, latency 0 */
#define NAM_STD "../shared/models/nam/wavenet_a1_standard.nam"
#define GROUP "g"

static void suite_init(void)
{
    du_tmp_make();
    du_deadline(240);
}

static void suite_fini(void)
{
    du_cleanup();
    du_tmp_remove();
}

TestSuite(nats_cluster, .init = suite_init, .fini = suite_fini);

static void need_nats_server(void)
{
    if (system("command -v nats-server >/dev/null 2>&1") != 0)
        cr_skip_test("nats-server is not installed (scripts/install-deps.sh installs it)");
}

/* ---- convd processes ------------------------------------------------------------------- */

typedef struct cnode {
    du_daemon d;
    char instance[96];
    int metrics;
    int alive;
} cnode;

static char *group_conf(const nh_cluster *cl, const char *model, int partitions, int replicas,
                        const char *extra)
{
    du_buf b = {0};
    du_buf_printf(&b,
                  "[server]\nmetrics = 127.0.0.1:0\nworkers = 2\n"
                  "[model m]\npath = %s\n"
                  "[nats " GROUP "]\nservers = %s\nmodel = m\npartitions = %d\nreplicas = %d\n"
                  "%scheckpoint_interval = 0.25\nrequest_timeout = 1\n%s",
                  du_src(model), cl->urls, partitions, replicas,
                  extra && strstr(extra, "lease_ttl") ? "" : "lease_ttl = 4\n", extra ? extra : "");
    return (char *)b.p;
}

/* starts convd on conf (file: a name of its own) and waits until its group serves */
static void cnode_start(cnode *n, const char *file, const char *conf)
{
    du_daemon_opts o = {.workers = 2, .fd3 = -1};
    char *log;
    memset(n, 0, sizeof *n);
    du_daemon_start_opts(&n->d, file, conf, &o);
    const char *hit = du_daemon_wait_log(&n->d, "outputs to CONVD_OUT) as ", 0, 60, &log);
    sscanf(hit + strlen("outputs to CONVD_OUT) as "), "%95s", n->instance);
    free(log);
    n->metrics = du_daemon_metrics_port(&n->d);
    n->alive = 1;
}

static void cnode_kill(cnode *n)
{
    int st;
    kill(n->d.pid, SIGKILL);
    du_wait_pid(n->d.pid, 10, &st);
    n->d.running = 0;
    n->alive = 0;
}

static double cmetric(cnode *n, const char *name)
{
    char series[160];
    snprintf(series, sizeof series, "convd_nats_%s{group=\"" GROUP "\"}", name);
    return du_metric_now(n->metrics, series);
}

/* ---- inputs and what they should give ----------------------------------------------------- */

typedef struct fleet {
    int ids, ch;
    char prefix[16]; /* of the ids' names */
    int64_t frames;
    float **in;
    char names[64][32];
} fleet;

static float *random_frames(uint64_t seed, int64_t n, int ch, double amp)
{
    cvd_rng r;
    float *x = malloc((size_t)n * (size_t)ch * sizeof *x);
    cr_assert_not_null(x);
    cvd_rng_seed(&r, seed);
    for (int64_t i = 0; i < n * ch; i++)
        x[i] = (float)((cvd_rng_uniform(&r) * 2 - 1) * amp);
    return x;
}

static void fleet_make(fleet *f, const char *name_prefix, int ids, int64_t frames, int ch)
{
    memset(f, 0, sizeof *f);
    cr_assert_leq(ids, 64);
    f->ids = ids;
    f->ch = ch;
    f->frames = frames;
    snprintf(f->prefix, sizeof f->prefix, "%s", name_prefix);
    f->in = calloc((size_t)ids, sizeof *f->in);
    for (int k = 0; k < ids; k++) {
        snprintf(f->names[k], sizeof f->names[k], "%s%d", name_prefix, k);
        f->in[k] = random_frames(7000 + (uint64_t)k, frames, ch, ch == 1 ? 0.5 : 1.0);
    }
}

static void fleet_free(fleet *f)
{
    for (int k = 0; k < f->ids; k++)
        free(f->in[k]);
    free(f->in);
}

/* A producer of the fleet's ids into cl: the first `frames` frames of each, `per_msg` frames a
 * message (its other fields zero: set them after). */
static void fleet_producer(nh_producer *p, const nh_cluster *cl, const fleet *f, int per_msg,
                           int64_t frames)
{
    memset(p, 0, sizeof *p);
    p->urls = cl->urls;
    p->prefix = "convd";
    p->name_prefix = f->prefix;
    p->ids = f->ids;
    p->ch = f->ch;
    p->per_msg = per_msg;
    p->frames = frames;
    p->in = f->in;
}

/* Waits for a started producer to end; it must not have failed. */
static void producer_finish(nh_producer *p)
{
    nh_producer_join(p);
    cr_assert_not(atomic_load(&p->failed), "producer: %s", p->err);
}

/* Runs a producer from start to end. */
static void produce(nh_producer *p)
{
    cr_assert_eq(nh_producer_start(p), 0);
    producer_finish(p);
}

/* Waits until a started producer has published `want` messages (or ended). */
static void wait_published(nh_producer *p, uint64_t want)
{
    while (atomic_load(&p->published) < want && !atomic_load(&p->done))
        du_sleep_ms(20);
}

/* convd-run MODEL on each id's concatenated input vs the output stream: every frame once */
static void check_outputs(const nh_cluster *cl, const char *model, const fleet *f,
                          int64_t expect_frames)
{
    natsConnection *nc = nh_connect(cl->urls);
    cr_assert_not_null(nc, "%s", nh_err);
    cvd_model *m = NULL;
    cvd_err err = {0};
    cr_assert_eq(cvd_model_load(du_src(model), &m, &err), 0, "%s", err.msg);
    const int out_ch = cvd_model_out_channels(m);
    cvd_model_unref(m);
    nh_collection col;
    cr_assert_eq(nh_collect(nc, "CONVD_OUT", "convd", out_ch, &col), 0, "%s", nh_err);
    for (int k = 0; k < f->ids; k++) {
        char in_path[64], out_path[64];
        size_t n_ref = 0;
        snprintf(in_path, sizeof in_path, "%s.in.f32", f->names[k]);
        snprintf(out_path, sizeof out_path, "%s.ref.f32", f->names[k]);
        du_write_file(du_tmp(in_path), f->in[k], (size_t)f->frames * (size_t)f->ch * 4);
        du_convd_run(du_src(model), du_tmp(in_path), du_tmp(out_path), 64);
        float *ref = du_read_f32(du_tmp(out_path), &n_ref);
        n_ref /= (size_t)out_ch;
        nh_verdict v = nh_check(nh_collection_id(&col, f->names[k]), ref, (int64_t)n_ref, out_ch);
        cr_assert(v.frames == expect_frames && v.duplicates == 0 && v.missing == 0 &&
                      v.wrong == 0 && v.bad_headers == 0,
                  "%s: %lld output frames (want %lld), %lld duplicated, %lld missing, %lld "
                  "different from convd-run (first at %lld), %d bad Msg-Ids",
                  f->names[k], (long long)v.frames, (long long)expect_frames,
                  (long long)v.duplicates, (long long)v.missing, (long long)v.wrong,
                  (long long)v.first_wrong, v.bad_headers);
        free(ref);
    }
    nh_collection_free(&col);
    natsConnection_Destroy(nc);
}

/* waits until the output stream holds `want` messages */
static void wait_output_messages(const nh_cluster *cl, uint64_t want, double timeout)
{
    natsConnection *nc = nh_connect(cl->urls);
    cr_assert_not_null(nc, "%s", nh_err);
    double end = du_now() + timeout;
    uint64_t have = 0;
    while (du_now() < end && (have = nh_stream_msgs(nc, "CONVD_OUT")) < want)
        du_sleep_ms(100);
    natsConnection_Destroy(nc);
    cr_assert_geq(have, want, "the output stream holds %llu messages after %.0f s, want %llu",
                  (unsigned long long)have, timeout, (unsigned long long)want);
}

/* waits until `want` convd processes hold every partition between them */
static void wait_balanced(cnode *nodes, int n, int partitions, double timeout)
{
    double end = du_now() + timeout;
    for (;;) {
        int total = 0, every = 1;
        for (int i = 0; i < n; i++) {
            if (!nodes[i].alive)
                continue;
            double owned = cmetric(&nodes[i], "partitions_owned");
            total += (int)owned;
            every &= owned > 0;
        }
        if (total == partitions && every)
            return;
        cr_assert(du_now() < end, "the partitions are not shared after %.0f s (%d of %d held)",
                  timeout, total, partitions);
        du_sleep_ms(100);
    }
}

/* ---- watching outputs: the first output of a taken-over id after a kill ------------------- */

typedef struct watch {
    natsConnection *nc;
    natsSubscription *sub;
    pthread_mutex_t mu;
    double kill_at;
    int victim_part[4096];
    int partitions;
    double first_after; /* time of the first output of a victim's id after kill_at */
} watch;

static void on_output(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
    watch *w = closure;
    const char *subj = natsMsg_GetSubject(msg), *id = strrchr(subj, '.');
    double now = du_now();
    (void)nc;
    (void)sub;
    pthread_mutex_lock(&w->mu);
    if (id && w->kill_at > 0 && now > w->kill_at + 0.05 && w->first_after == 0) {
        int part = cvd_nats_partition(id + 1, strlen(id + 1), w->partitions);
        if (w->victim_part[part])
            w->first_after = now;
    }
    pthread_mutex_unlock(&w->mu);
    natsMsg_Destroy(msg);
}

static void watch_start(watch *w, const nh_cluster *cl, int partitions)
{
    memset(w, 0, sizeof *w);
    pthread_mutex_init(&w->mu, NULL);
    w->partitions = partitions;
    w->nc = nh_connect(cl->urls);
    cr_assert_not_null(w->nc, "%s", nh_err);
    cr_assert_eq(natsConnection_Subscribe(&w->sub, w->nc, "convd.out.>", on_output, w), NATS_OK);
    natsSubscription_SetPendingLimits(w->sub, -1, -1);
}

/* marks the partitions `instance` holds now, and the kill's time */
static void watch_victim(watch *w, const char *instance)
{
    jsCtx *js = NULL;
    kvStore *kv = NULL;
    int held = 0;
    cr_assert_eq(natsConnection_JetStream(&js, w->nc, NULL), NATS_OK);
    cr_assert_eq(js_KeyValue(&kv, js, "CONVD_IN_leases"), NATS_OK);
    for (int p = 0; p < w->partitions; p++) {
        char key[16];
        kvEntry *e = NULL;
        snprintf(key, sizeof key, "p%d", p);
        if (kvStore_Get(&e, kv, key) == NATS_OK) {
            const char *v = kvEntry_ValueString(e);
            if (strncmp(v, instance, strlen(instance)) == 0 && v[strlen(instance)] == ' ') {
                w->victim_part[p] = 1;
                held++;
            }
            kvEntry_Destroy(e);
        }
    }
    kvStore_Destroy(kv);
    jsCtx_Destroy(js);
    cr_assert_gt(held, 0, "%s holds no partition", instance);
}

static void watch_stop(watch *w)
{
    natsSubscription_Unsubscribe(w->sub);
    natsSubscription_Destroy(w->sub);
    natsConnection_Destroy(w->nc);
    pthread_mutex_destroy(&w->mu);
}

/* ---- tests --------------------------------------------------------------------------------- */

/* `servers` NATS servers holding `partitions` partitions, and `nodes` convd processes (c1.conf,
 * c2.conf, ...) in one group on them, replicas = servers (balanced when more than one).
 * Returns the group's configuration (group_down frees it). */
static char *group_up(nh_cluster *cl, int servers, int partitions, const char *model,
                      const char *extra, cnode *n, int nodes)
{
    cr_assert_eq(nh_cluster_start(cl, servers, du_tmp("ns"), "convd", partitions), 0, "%s", nh_err);
    char *conf = group_conf(cl, model, partitions, servers, extra);
    for (int i = 0; i < nodes; i++) {
        char file[32];
        snprintf(file, sizeof file, "c%d.conf", i + 1);
        cnode_start(&n[i], file, conf);
    }
    if (nodes > 1)
        wait_balanced(n, nodes, partitions, 30);
    return conf;
}

/* Stops the convd processes of n[0..count) still alive (SIGTERM: each must exit 0), then the
 * servers; frees conf and the fleet. */
static void group_down(nh_cluster *cl, cnode *n, int count, char *conf, fleet *f)
{
    for (int i = 0; i < count; i++)
        if (n[i].alive)
            du_daemon_finish(&n[i].d, 30);
    free(conf);
    fleet_free(f);
    nh_cluster_stop(cl);
}

/* One NATS server, one convd: ids through (one message per frame for some, uneven sizes for
 * others), outputs equal convd-run's. */
Test(nats_cluster, one_server_one_process)
{
    need_nats_server();
    nh_cluster cl;
    cnode n;
    char *conf = group_up(&cl, 1, 8, SENSOR, NULL, &n, 1);
    fleet f;
    fleet_make(&f, "dev-", 8, 2000, 3);
    nh_producer p;
    fleet_producer(&p, &cl, &f, 120, f.frames);
    p.vary = 1;
    produce(&p);
    wait_output_messages(&cl, atomic_load(&p.published), 60);
    check_outputs(&cl, SENSOR, &f, f.frames);
    cr_assert_eq(cmetric(&n, "frames_in_total"), (double)(f.ids * f.frames));
    cr_assert_eq(cmetric(&n, "frames_out_total"), (double)(f.ids * f.frames));
    cr_assert_eq(cmetric(&n, "gaps_total"), 0);
    cr_assert_eq(cmetric(&n, "ids_active"), 8);
    group_down(&cl, &n, 1, conf, &f);
}

/* 3 servers, replicas 3, 3 convd: one is killed (-9) mid-run and started again. */
Test(nats_cluster, convd_killed_and_restarted)
{
    need_nats_server();
    enum { PARTS = 12 };
    nh_cluster cl;
    cnode n[4];
    char *conf = group_up(&cl, 3, PARTS, SENSOR, NULL, n, 3);
    fleet f;
    fleet_make(&f, "dev-", 24, 3000, 3);
    nh_producer p;
    fleet_producer(&p, &cl, &f, 60, f.frames);
    p.pause = 0.05;
    watch w;
    watch_start(&w, &cl, PARTS);
    cr_assert_eq(nh_producer_start(&p), 0);
    const uint64_t total = (uint64_t)f.ids * (uint64_t)((f.frames + 59) / 60);
    wait_published(&p, total / 3);
    watch_victim(&w, n[1].instance);
    pthread_mutex_lock(&w.mu);
    w.kill_at = du_now();
    pthread_mutex_unlock(&w.mu);
    cnode_kill(&n[1]);
    /* a replacement process joins a few seconds later */
    du_sleep_ms(2000);
    cnode_start(&n[3], "c4.conf", conf);
    producer_finish(&p);
    wait_output_messages(&cl, total, 90);
    check_outputs(&cl, SENSOR, &f, f.frames);
    double replayed = cmetric(&n[0], "replayed_frames_total") +
                      cmetric(&n[2], "replayed_frames_total") +
                      cmetric(&n[3], "replayed_frames_total");
    double takeovers = cmetric(&n[0], "takeovers_total") + cmetric(&n[2], "takeovers_total") +
                       cmetric(&n[3], "takeovers_total");
    pthread_mutex_lock(&w.mu);
    double recovery = w.first_after > 0 ? w.first_after - w.kill_at : -1;
    pthread_mutex_unlock(&w.mu);
    cr_assert_gt(recovery, 0, "no output of the killed process's ids after the kill");
    cr_assert_gt(replayed, 0);
    cr_log_info("convd SIGKILL: first output of a taken-over id %.2f s after the kill "
                "(lease_ttl 4 s); %.0f frames replayed; %.0f leases won; 0 outputs missing or "
                "duplicated",
                recovery, replayed, takeovers);
    watch_stop(&w);
    group_down(&cl, n, 4, conf, &f);
}

/* 3 servers, replicas 3, 2 convd: a NATS server is killed (-9) mid-run, then restarted. */
Test(nats_cluster, server_killed_and_restarted)
{
    need_nats_server();
    enum { PARTS = 8 };
    nh_cluster cl;
    cnode n[2];
    char *conf = group_up(&cl, 3, PARTS, SENSOR, NULL, n, 2);
    fleet f;
    fleet_make(&f, "dev-", 16, 3000, 3);
    nh_producer p;
    fleet_producer(&p, &cl, &f, 60, f.frames);
    p.pause = 0.05;
    cr_assert_eq(nh_producer_start(&p), 0);
    const uint64_t total = (uint64_t)f.ids * (uint64_t)((f.frames + 59) / 60);
    wait_published(&p, total / 3);
    /* the first server: every client's first URL, so all of them reconnect elsewhere */
    double t0 = du_now();
    nh_server_kill(&cl, 0, SIGKILL);
    du_sleep_ms(2000);
    cr_assert_eq(nh_server_restart(&cl, 0), 0, "%s", nh_err);
    producer_finish(&p);
    wait_output_messages(&cl, total, 120);
    double t1 = du_now();
    check_outputs(&cl, SENSOR, &f, f.frames);
    cr_log_info("NATS server SIGKILL (restarted 2 s later): all outputs %.1f s after the kill; "
                "publish retries %.0f + %.0f, consumer replacements %.0f + %.0f, lease losses "
                "%.0f + %.0f; producer retries %lu",
                t1 - t0, cmetric(&n[0], "publish_retries_total"),
                cmetric(&n[1], "publish_retries_total"), cmetric(&n[0], "consumer_resets_total"),
                cmetric(&n[1], "consumer_resets_total"), cmetric(&n[0], "lease_losses_total"),
                cmetric(&n[1], "lease_losses_total"), p.retries);
    group_down(&cl, n, 2, conf, &f);
}

/* 3 servers, 2 convd: one is paused (SIGSTOP) past its lease while frames keep coming, then
 * resumed: the other took its partitions over, and what the resumed one still had in hand
 * must not reach the output stream as anything but the same outputs. */
Test(nats_cluster, paused_past_its_lease)
{
    need_nats_server();
    enum { PARTS = 8 };
    nh_cluster cl;
    cnode n[2];
    char *conf = group_up(&cl, 3, PARTS, SENSOR, NULL, n, 2);
    fleet f;
    fleet_make(&f, "dev-", 16, 4000, 3);
    nh_producer p;
    fleet_producer(&p, &cl, &f, 50, f.frames);
    p.pause = 0.03;
    cr_assert_eq(nh_producer_start(&p), 0);
    const uint64_t total = (uint64_t)f.ids * (uint64_t)((f.frames + 49) / 50);
    wait_published(&p, total / 4);
    kill(n[1].d.pid, SIGSTOP);
    du_sleep_ms(7000); /* lease_ttl 4 s: the other process takes over meanwhile */
    cr_assert_eq(cmetric(&n[0], "partitions_owned"), PARTS,
                 "the paused one's partitions were "
                 "not taken over");
    kill(n[1].d.pid, SIGCONT);
    producer_finish(&p);
    wait_output_messages(&cl, total, 90);
    /* the zombie noticed, and it gets its share back */
    char *log;
    du_daemon_wait_log(&n[1].d, "lease lost", 0, 20, &log);
    free(log);
    wait_balanced(n, 2, PARTS, 40);
    du_sleep_ms(500);
    check_outputs(&cl, SENSOR, &f, f.frames);
    cr_assert_geq(cmetric(&n[1], "lease_losses_total"), 1);
    group_down(&cl, n, 2, conf, &f);
}

/* a producer's retries: the same message again with its Msg-Id (the stream keeps one), and
 * the same frames under another Msg-Id, whole or overlapping (convd skips what it has) */
Test(nats_cluster, producer_retries)
{
    need_nats_server();
    nh_cluster cl;
    cnode n;
    char *conf = group_up(&cl, 1, 4, SENSOR, NULL, &n, 1);
    fleet f;
    fleet_make(&f, "dev-", 4, 1200, 3);
    natsConnection *nc = nh_connect(cl.urls);
    cr_assert_not_null(nc, "%s", nh_err);
    jsCtx *js = NULL;
    cr_assert_eq(natsConnection_JetStream(&js, nc, NULL), NATS_OK);
    int dups = 0, dup_frames = 0;
    for (int k = 0; k < f.ids; k++)
        for (int64_t t = 0; t < f.frames; t += 100) {
            const float *x = f.in[k] + t * 3;
            cr_assert_eq(nh_publish_msg(js, "convd", f.names[k], x, 100, 3, t, 10, NULL), 0);
            if (t % 300 == 0) /* a retry with the same Msg-Id: stored once */
                cr_assert_eq(nh_publish_msg(js, "convd", f.names[k], x, 100, 3, t, 10, NULL), 0);
            if (t % 500 == 0 && t > 0) {
                /* the same frames under another Msg-Id (a producer that lost its ack and
                 * re-chunked): stored, and skipped by convd as a duplicate */
                char subj[64], num[32];
                natsMsg *m = NULL;
                jsPubAck *pa = NULL;
                snprintf(subj, sizeof subj, "convd.in.%s", f.names[k]);
                snprintf(num, sizeof num, "%lld", (long long)(t + 20));
                natsMsg_Create(&m, subj, NULL, (const char *)(x + 20 * 3), 60 * 3 * 4);
                natsMsgHeader_Set(m, "Convd-Frame", num);
                cr_assert_eq(js_PublishMsg(&pa, js, m, NULL, NULL), NATS_OK);
                jsPubAck_Destroy(pa);
                natsMsg_Destroy(m);
                dups++;
                dup_frames += 60;
            }
        }
    /* starting below what dev-0 reached (frames 1150..1249 after 0..1199): a duplicate,
     * skipped whole, new frames and all */
    float *more = random_frames(1, 100, 3, 1.0);
    cr_assert_eq(nh_publish_msg(js, "convd", "dev-0", more, 100, 3, 1150, 10, NULL), 0);
    const uint64_t want_msgs = (uint64_t)f.ids * (uint64_t)(f.frames / 100);
    wait_output_messages(&cl, want_msgs, 60);
    du_metric_wait(n.metrics, "convd_nats_duplicate_messages_total{group=\"" GROUP "\"}", dups + 1,
                   10);
    cr_assert_eq(cmetric(&n, "duplicate_messages_total"), dups + 1);
    cr_assert_eq(cmetric(&n, "duplicate_frames_total"), dup_frames + 100);
    cr_assert_eq(cmetric(&n, "gaps_total"), 0);
    check_outputs(&cl, SENSOR, &f, f.frames);
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
    free(more);
    group_down(&cl, &n, 1, conf, &f);
}

static void publish_raw(jsCtx *js, const char *subject, const void *data, int len,
                        const char *frame)
{
    natsMsg *m = NULL;
    jsPubAck *pa = NULL;
    jsErrCode jerr = 0;
    cr_assert_eq(natsMsg_Create(&m, subject, NULL, data, len), NATS_OK);
    if (frame)
        natsMsgHeader_Set(m, "Convd-Frame", frame);
    natsStatus s = js_PublishMsg(&pa, js, m, NULL, &jerr);
    cr_assert_eq(s, NATS_OK, "%s: %s (%d)", subject, natsStatus_GetText(s), (int)jerr);
    jsPubAck_Destroy(pa);
    natsMsg_Destroy(m);
}

/* bad input of every kind beside good ids: counted, logged, never a crash, the good ids
 * undisturbed; a gap restarts its id with an empty history */
Test(nats_cluster, bad_input)
{
    need_nats_server();
    nh_cluster cl;
    cnode n;
    char *conf = group_up(&cl, 1, 4, SENSOR, NULL, &n, 1);
    natsConnection *nc = nh_connect(cl.urls);
    cr_assert_not_null(nc, "%s", nh_err);
    jsCtx *js = NULL;
    cr_assert_eq(natsConnection_JetStream(&js, nc, NULL), NATS_OK);
    fleet f;
    fleet_make(&f, "good-", 4, 600, 3);
    float *x = random_frames(5, 400, 3, 1.0);
    char long_id[200];
    memset(long_id, 'a', 129);
    long_id[129] = '\0';
    char long_subj[240];
    snprintf(long_subj, sizeof long_subj, "convd.in.%s", long_id);
    for (int64_t t = 0; t < 600; t += 100) {
        for (int k = 0; k < f.ids; k++)
            cr_assert_eq(
                nh_publish_msg(js, "convd", f.names[k], f.in[k] + t * 3, 100, 3, t, 10, NULL), 0);
        if (t == 200) {
            publish_raw(js, "convd.in.bad-payload", x, 10, "0");    /* not whole frames */
            publish_raw(js, "convd.in.bad-payload", x, 0, "0");     /* empty */
            publish_raw(js, "convd.in.no-frame", x, 12 * 10, NULL); /* no Convd-Frame */
            publish_raw(js, "convd.in.nan-frame", x, 12 * 10, "12a");
            publish_raw(js, "convd.in.nan-frame", x, 12 * 10, "-1");
            publish_raw(js, "convd.in.a:b", x, 12 * 10, "0"); /* not an id */
            publish_raw(js, long_subj, x, 12 * 10, "0");      /* 129 bytes */
            float nanx[30];
            memcpy(nanx, x, sizeof nanx);
            nanx[17] = NAN;
            publish_raw(js, "convd.in.nan-sample", x, 12 * 10, "0");
            publish_raw(js, "convd.in.nan-sample", nanx, 12 * 10, "10");       /* refused */
            publish_raw(js, "convd.in.nan-sample", x + 20 * 3, 12 * 10, "20"); /* a gap */
            /* a gap: frames 100..199 never come */
            publish_raw(js, "convd.in.gappy", x, 12 * 100, "0");
            publish_raw(js, "convd.in.gappy", x + 200 * 3, 12 * 100, "200");
        }
    }
    /* 24 good outputs + nan-sample 2 + gappy 2 */
    wait_output_messages(&cl, 24 + 4, 60);
    du_metric_wait(n.metrics, "convd_nats_bad_messages_total{group=\"" GROUP "\",reason=\"id\"}", 2,
                   10);
    char *t = du_metrics(n.metrics);
    static const struct {
        const char *reason;
        double want;
    } bad[] = {{"payload", 2}, {"frame_missing", 1}, {"frame_invalid", 2},
               {"id", 2},      {"nonfinite", 1},     {"subject", 0}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char series[160];
        snprintf(series, sizeof series,
                 "convd_nats_bad_messages_total{group=\"" GROUP "\",reason=\"%s\"}", bad[i].reason);
        cr_assert_eq(du_metric(t, series), bad[i].want, "%s: %g, want %g", bad[i].reason,
                     du_metric(t, series), bad[i].want);
    }
    cr_assert_eq(du_metric(t, "convd_nats_gaps_total{group=\"" GROUP "\"}"), 2);
    cr_assert_eq(du_metric(t, "convd_nats_gap_frames_total{group=\"" GROUP "\"}"), 110);
    free(t);
    char *log = du_daemon_log(&n.d);
    cr_assert_not_null(strstr(log, "is not a whole number of frames"), "%s", log);
    cr_assert_not_null(strstr(log, "no Convd-Frame header"));
    cr_assert_not_null(strstr(log, "NaN or infinite sample"));
    cr_assert_not_null(strstr(log, "never came"));
    free(log);
    check_outputs(&cl, SENSOR, &f, 600);
    /* gappy: frames 0..99 as convd-run gives them, then 200..299 as a new stream */
    nh_collection col;
    cr_assert_eq(nh_collect(nc, "CONVD_OUT", "convd", 3, &col), 0, "%s", nh_err);
    cvd_model *m = NULL;
    cvd_err err = {0};
    cr_assert_eq(cvd_model_load(SENSOR, &m, &err), 0, "%s", err.msg);
    size_t n1 = 0, n2 = 0;
    float *r1 = du_ref_stream(m, 64, x, 100, &n1);
    float *r2 = du_ref_stream(m, 64, x + 200 * 3, 100, &n2);
    nh_outs *g = nh_collection_id(&col, "gappy");
    cr_assert_not_null(g);
    cr_assert_eq(g->n, 2);
    nh_check(g, r1, 100, 3); /* sorts */
    cr_assert_eq(g->m[0].frame, 0);
    cr_assert_eq(g->m[1].frame, 200);
    cr_assert_eq(memcmp(g->m[0].data, r1, 100 * 12), 0);
    cr_assert_eq(memcmp(g->m[1].data, r2, 100 * 12), 0);
    cvd_model_unref(m);
    free(r1);
    free(r2);
    nh_collection_free(&col);
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
    free(x);
    group_down(&cl, &n, 1, conf, &f);
}

/* NAM's standard model (receptive field 4,093 frames): two convd, one killed mid-run; the
 * taker rebuilds each id's history from the log and continues bit for bit. */
Test(nats_cluster, nam_standard_takeover)
{
    need_nats_server();
    if (access(NAM_STD, R_OK) != 0)
        cr_skip_test("%s is absent (../shared)", NAM_STD);
    enum { PARTS = 4 };
    nh_cluster cl;
    cnode n[2];
    char *conf = group_up(&cl, 3, PARTS, NAM_STD, "block = 256\n", n, 2);
    fleet f;
    fleet_make(&f, "amp-", 4, 48000, 1);
    nh_producer p;
    fleet_producer(&p, &cl, &f, 512, f.frames);
    p.pause = 0.03;
    cr_assert_eq(nh_producer_start(&p), 0);
    const uint64_t total = (uint64_t)f.ids * (uint64_t)((f.frames + 511) / 512);
    wait_published(&p, total / 2);
    cnode_kill(&n[1]);
    producer_finish(&p);
    wait_output_messages(&cl, total, 120);
    check_outputs(&cl, NAM_STD, &f, f.frames);
    cr_log_info("NAM standard, convd SIGKILL: %.0f frames replayed by the taker",
                cmetric(&n[0], "replayed_frames_total"));
    group_down(&cl, n, 2, conf, &f);
}

/* ids idle past idle_timeout lose their model state; one process dies meanwhile; when the
 * ids come back their history is read back from the log (by subject), and the output
 * continues exactly */
Test(nats_cluster, idle_ids_come_back_after_a_takeover)
{
    need_nats_server();
    enum { PARTS = 4 };
    nh_cluster cl;
    cnode n[2];
    char *conf = group_up(&cl, 1, PARTS, SENSOR, "idle_timeout = 1\n", n, 2);
    fleet f;
    fleet_make(&f, "dev-", 8, 1600, 3);
    nh_producer p;
    fleet_producer(&p, &cl, &f, 100, 800);
    produce(&p);
    wait_output_messages(&cl, 8 * 8, 60);
    /* idle: every state dropped. The gauge is refreshed every 0.1 s and may not have counted
     * the states yet (the producer is quick): first let the idle time pass */
    du_sleep_ms(1500);
    double end = du_now() + 10;
    while (du_now() < end && cmetric(&n[0], "ids_active") + cmetric(&n[1], "ids_active") > 0)
        du_sleep_ms(100);
    cr_assert_eq(cmetric(&n[0], "ids_active") + cmetric(&n[1], "ids_active"), 0);
    /* two checkpoints of n[1]'s partitions with the ids dormant (not a fixed sleep: a loaded
     * machine can hold the control thread back) */
    const double ck0 = cmetric(&n[1], "checkpoints_total");
    end = du_now() + 20;
    while (du_now() < end && cmetric(&n[1], "checkpoints_total") < ck0 + 2 * PARTS / 2)
        du_sleep_ms(50);
    cr_assert_geq(cmetric(&n[1], "checkpoints_total"), ck0 + 2 * PARTS / 2);
    cnode_kill(&n[1]);
    end = du_now() + 20;
    while (du_now() < end && cmetric(&n[0], "partitions_owned") < PARTS)
        du_sleep_ms(100);
    cr_assert_eq(cmetric(&n[0], "partitions_owned"), PARTS);
    /* the rest of every id: frames 800..1599 */
    natsConnection *nc = nh_connect(cl.urls);
    jsCtx *js = NULL;
    cr_assert_eq(natsConnection_JetStream(&js, nc, NULL), NATS_OK);
    for (int k = 0; k < f.ids; k++)
        cr_assert_eq(nh_publish(js, "convd", f.names[k], f.in[k], 3, 800, 1600, 100, 10, NULL), 0,
                     "%s", nh_err);
    wait_output_messages(&cl, 8 * 16, 60);
    check_outputs(&cl, SENSOR, &f, f.frames);
    cr_assert_geq(cmetric(&n[0], "history_fetches_total"), 8);
    cr_assert_eq(cmetric(&n[0], "gaps_total"), 0);
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
    group_down(&cl, n, 2, conf, &f);
}

/* SIGTERM hands the partitions over: the process finishes what it took, writes a last
 * checkpoint and deletes its leases, so the peer holds everything long before the leases
 * (30 s) could expire; the outputs stay exact across the handover */
Test(nats_cluster, sigterm_hands_partitions_over)
{
    need_nats_server();
    enum { PARTS = 4 };
    nh_cluster cl;
    cnode n[2];
    char *conf = group_up(&cl, 1, PARTS, SENSOR, "lease_ttl = 30\n", n, 2);
    fleet f;
    fleet_make(&f, "dev-", 8, 1200, 3);
    nh_producer p;
    fleet_producer(&p, &cl, &f, 100, 600);
    produce(&p);
    wait_output_messages(&cl, 8 * 6, 60);
    const double t0 = du_now();
    du_daemon_finish(&n[1].d, 30); /* SIGTERM; exit status 0 */
    n[1].alive = 0;
    char *log = du_daemon_log(&n[1].d);
    cr_assert(strstr(log, "handed over"), "no handover in the log of the process stopped:\n%s",
              log);
    free(log);
    double end = t0 + 20;
    while (du_now() < end && cmetric(&n[0], "partitions_owned") < PARTS)
        du_sleep_ms(50);
    const double took = du_now() - t0;
    cr_assert_eq(cmetric(&n[0], "partitions_owned"), PARTS,
                 "the peer holds %g of %d partitions %.1f s after the SIGTERM",
                 cmetric(&n[0], "partitions_owned"), PARTS, took);
    cr_assert_lt(took, 20, "the partitions waited for their leases to expire");
    cr_log_info("SIGTERM: the peer held every partition %.2f s after the signal (lease_ttl 30 s)",
                took);
    /* the rest of every id, served by the peer alone, exact */
    natsConnection *nc = nh_connect(cl.urls);
    jsCtx *js = NULL;
    cr_assert_eq(natsConnection_JetStream(&js, nc, NULL), NATS_OK);
    for (int k = 0; k < f.ids; k++)
        cr_assert_eq(nh_publish(js, "convd", f.names[k], f.in[k], 3, 600, 1200, 100, 10, NULL), 0,
                     "%s", nh_err);
    wait_output_messages(&cl, 8 * 12, 60);
    check_outputs(&cl, SENSOR, &f, f.frames);
    cr_assert_eq(cmetric(&n[0], "gaps_total"), 0);
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
    group_down(&cl, n, 2, conf, &f);
}

/* the servers' mapping with 6 partitions, convd configured with 4: ids arriving on a
 * partition their hash mod 4 does not give are logged and counted, never served silently */
Test(nats_cluster, partitions_mismatch_is_counted)
{
    need_nats_server();
    nh_cluster cl;
    cr_assert_eq(nh_cluster_start(&cl, 1, du_tmp("ns"), "convd", 6), 0, "%s", nh_err);
    char *conf = group_conf(&cl, SENSOR, 4, 1, NULL);
    cnode n;
    cnode_start(&n, "c1.conf", conf);
    fleet f;
    fleet_make(&f, "dev-", 16, 200, 3);
    int on_read = 0, misplaced = 0; /* ids the servers put on partitions 0..3, and of those
                                     * the ones their hash mod 4 puts elsewhere */
    for (int k = 0; k < f.ids; k++) {
        int p6 = cvd_nats_partition(f.names[k], strlen(f.names[k]), 6);
        if (p6 < 4) {
            on_read++;
            misplaced += cvd_nats_partition(f.names[k], strlen(f.names[k]), 4) != p6;
        }
    }
    cr_assert_gt(misplaced, 0, "the fleet's names should show the mismatch");
    nh_producer p;
    fleet_producer(&p, &cl, &f, 100, f.frames);
    produce(&p);
    /* every message on partitions 0..3 is taken (2 each); those of misplaced ids counted */
    double got = du_metric_wait(
        n.metrics, "convd_nats_mapping_mismatches_total{group=\"" GROUP "\"}", 2.0 * misplaced, 30);
    cr_assert_eq(got, 2.0 * misplaced, "%g mismatches counted, %d expected", got, 2 * misplaced);
    du_metric_wait(n.metrics, "convd_nats_messages_in_total{group=\"" GROUP "\"}", 2.0 * on_read,
                   30);
    cr_assert_eq(cmetric(&n, "messages_in_total"), 2.0 * on_read);
    cr_assert_eq(cmetric(&n, "mapping_mismatches_total"), 2.0 * misplaced);
    char *log = du_daemon_log(&n.d);
    cr_assert(strstr(log, "the servers' mapping does not use partitions = 4"), "%s", log);
    free(log);
    du_daemon_finish(&n.d, 30);
    free(conf);
    fleet_free(&f);
    nh_cluster_stop(&cl);
}

/* TLS toward the servers with client certificates (the server verifies them against
 * clients-ca.pem), plus an authorization token: the section's tls_ca, tls_cert, tls_key and
 * token_file; outputs exact. A process without the client certificate is refused. */
Test(nats_cluster, tls_and_token)
{
    need_nats_server();
    static char extra[4096], conf_extra[4096];
    const char *token_path = du_tmp("token");
    FILE *tf = fopen(token_path, "w");
    cr_assert_not_null(tf);
    fputs("s3cr3t-nats\n", tf);
    fclose(tf);
    snprintf(
        extra, sizeof extra,
        "tls {\n  cert_file: \"%s\"\n  key_file: \"%s\"\n  ca_file: \"%s\"\n  verify: true\n}\n"
        "authorization { token: \"s3cr3t-nats\" }\n",
        tls_file("server.pem"), tls_file("server.key"), tls_file("clients-ca.pem"));
    snprintf(nh_server_extra, sizeof nh_server_extra, "%s", extra);
    static char ca[DU_PATH], cert[DU_PATH], key[DU_PATH];
    snprintf(ca, sizeof ca, "%s", tls_file("ca.pem"));
    snprintf(cert, sizeof cert, "%s", tls_file("client.pem"));
    snprintf(key, sizeof key, "%s", tls_file("client.key"));
    nh_tls_ca = ca;
    nh_tls_cert = cert;
    nh_tls_key = key;
    nh_token = "s3cr3t-nats";
    enum { PARTS = 4 };
    nh_cluster cl;
    cr_assert_eq(nh_cluster_start(&cl, 1, du_tmp("ns"), "convd", PARTS), 0, "%s", nh_err);
    snprintf(conf_extra, sizeof conf_extra,
             "tls_ca = %s\ntls_cert = %s\ntls_key = %s\n"
             "token_file = %s\n",
             ca, cert, key, token_path);
    char *conf = group_conf(&cl, SENSOR, PARTS, 1, conf_extra);
    cnode n;
    cnode_start(&n, "c1.conf", conf);
    fleet f;
    fleet_make(&f, "dev-", 6, 600, 3);
    nh_producer p;
    fleet_producer(&p, &cl, &f, 100, f.frames);
    produce(&p);
    wait_output_messages(&cl, 6 * 6, 60);
    check_outputs(&cl, SENSOR, &f, f.frames);
    cr_assert_eq(cmetric(&n, "connected"), 1);
    du_daemon_finish(&n.d, 30);

    /* no client certificate: the servers refuse the connection, convd says so */
    snprintf(conf_extra, sizeof conf_extra, "tls_ca = %s\ntoken_file = %s\n", ca, token_path);
    char *conf2 = group_conf(&cl, SENSOR, PARTS, 1, conf_extra);
    du_daemon bad;
    du_daemon_opts o = {.workers = 2, .fd3 = -1};
    du_daemon_start_opts(&bad, "c2.conf", conf2, &o);
    du_sleep_ms(3000);
    char *log = du_daemon_log(&bad);
    cr_assert(strstr(log, "cannot connect to"), "no connection error in the log:\n%s", log);
    cr_assert_null(strstr(log, "outputs to CONVD_OUT) as"),
                   "convd served without its client certificate:\n%s", log);
    free(log);
    du_daemon_stop_sig(&bad, SIGKILL, 10);
    free(conf);
    free(conf2);
    fleet_free(&f);
    nh_cluster_stop(&cl);
}
