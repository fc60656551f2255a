/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_nats.c - the NATS JetStream transport (docs/SCALE.md): its pure parts (ids, subjects,
 * headers, the partition function, leases and checkpoints as text, the [nats] directives,
 * which models it can replay), and the transport against real nats-server processes on
 * 127.0.0.1 started here (free ports, their own store folders, killed at the end even when a
 * test fails): every id's output complete, each frame exactly once, equal to the model run on
 * the id's concatenated input.
 *
 * Tests that need nats-server skip (cr_skip_test) when it is not installed.
 */
#include <criterion/criterion.h>
#include <pthread.h>

#include "config.h"
#include "convd_model.h"
#include "daemon_util.h"
#include "nats.h"
#include "nats_harness.h"
#include "nats_internal.h"
#include "nats_wire.h"
#include "testutil.h"

#define SENSOR "config/models/vibration-denoise.json"    /* 3 -> 3 channels, rf 253, latency 0 */
#define GRAPH "tests/data/tools/graph.json"              /* 2 -> 3 channels, latency 2 */
#define WINDOWED "tests/data/keras/k3_func_global.keras" /* windows of 20 frames, 3 -> 5 */
#define STRIDED "tests/data/json/strided.json"           /* one output per 2 inputs or so */

static void suite_init(void)
{
    du_tmp_make();
    du_deadline(120);
}

static void suite_fini(void)
{
    du_cleanup();
    du_tmp_remove();
}

TestSuite(nats, .init = suite_init, .fini = suite_fini);

/* ---- pure parts -------------------------------------------------------------------------- */

Test(nats, ids_and_prefixes)
{
    char id129[130];
    memset(id129, 'a', 129);
    id129[129] = '\0';
    cr_assert(cvd_nats_id_valid("dev-42_A", 8));
    cr_assert(cvd_nats_id_valid(id129, 128));
    cr_assert_not(cvd_nats_id_valid(id129, 129));
    cr_assert_not(cvd_nats_id_valid("", 0));
    cr_assert_not(cvd_nats_id_valid("a.b", 3));
    cr_assert_not(cvd_nats_id_valid("a*", 2));
    cr_assert_not(cvd_nats_id_valid("a>", 2));
    cr_assert_not(cvd_nats_id_valid("a b", 3));
    cr_assert_not(cvd_nats_id_valid("a:b", 3));
    cr_assert_not(cvd_nats_id_valid("\xc3\xa9", 2));
    cr_assert(cvd_nats_prefix_valid("convd"));
    cr_assert(cvd_nats_prefix_valid("acme.site-1.convd"));
    cr_assert_not(cvd_nats_prefix_valid(""));
    cr_assert_not(cvd_nats_prefix_valid("a..b"));
    cr_assert_not(cvd_nats_prefix_valid(".a"));
    cr_assert_not(cvd_nats_prefix_valid("a."));
    cr_assert_not(cvd_nats_prefix_valid("a.*"));
    cr_assert_not(cvd_nats_prefix_valid("a.>"));
}

/* NATS's partition(8,1) of these ids, as nats-server 2.9.10 mapped them */
Test(nats, partition_function)
{
    static const struct {
        const char *id;
        int part;
    } known[] = {{"a", 4}, {"dev-42", 5}, {"x_y", 3}, {"m042", 2}, {"sensor0001", 0}};
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        cr_assert_eq(cvd_nats_partition(known[i].id, strlen(known[i].id), 8), known[i].part, "%s",
                     known[i].id);
}

Test(nats, frames_and_subjects)
{
    int64_t f;
    int part;
    const char *id;
    size_t n;
    cr_assert_eq(cvd_nats_parse_frame("0", &f), 0);
    cr_assert_eq(f, 0);
    cr_assert_eq(cvd_nats_parse_frame("9007199254740992", &f), 0);
    cr_assert_eq(f, CVD_NATS_FRAME_MAX);
    cr_assert_eq(cvd_nats_parse_frame("9007199254740993", &f), -1);
    cr_assert_eq(cvd_nats_parse_frame("", &f), -1);
    cr_assert_eq(cvd_nats_parse_frame("-1", &f), -1);
    cr_assert_eq(cvd_nats_parse_frame("+1", &f), -1);
    cr_assert_eq(cvd_nats_parse_frame(" 1", &f), -1);
    cr_assert_eq(cvd_nats_parse_frame("1x", &f), -1);
    cr_assert_eq(cvd_nats_parse_frame("0x10", &f), -1);
    cr_assert_eq(cvd_nats_parse_part_subject("convd.part.12.dev-1", "convd", &part, &id, &n), 0);
    cr_assert_eq(part, 12);
    cr_assert_eq(n, 5);
    cr_assert_eq(strncmp(id, "dev-1", 5), 0);
    cr_assert_eq(cvd_nats_parse_part_subject("a.b.part.0.x", "a.b", &part, &id, &n), 0);
    cr_assert_eq(part, 0);
    cr_assert_eq(cvd_nats_parse_part_subject("convd.in.x", "convd", &part, &id, &n), -1);
    cr_assert_eq(cvd_nats_parse_part_subject("convd.part.x.y", "convd", &part, &id, &n), -1);
    cr_assert_eq(cvd_nats_parse_part_subject("convd.part.1", "convd", &part, &id, &n), -1);
    cr_assert_eq(cvd_nats_parse_part_subject("other.part.1.x", "convd", &part, &id, &n), -1);
    /* a subject with more tokens gives an id that is not one: the caller refuses it */
    cr_assert_eq(cvd_nats_parse_part_subject("convd.part.1.a.b", "convd", &part, &id, &n), 0);
    cr_assert_not(cvd_nats_id_valid(id, n));
}

Test(nats, durations_and_sizes)
{
    double s;
    int64_t b;
    cr_assert_eq(cvd_nats_parse_seconds("15", &s), 0);
    cr_assert_float_eq(s, 15, 1e-12);
    cr_assert_eq(cvd_nats_parse_seconds("0.5", &s), 0);
    cr_assert_float_eq(s, 0.5, 1e-12);
    cr_assert_eq(cvd_nats_parse_seconds("2m", &s), 0);
    cr_assert_float_eq(s, 120, 1e-12);
    cr_assert_eq(cvd_nats_parse_seconds("24h", &s), 0);
    cr_assert_float_eq(s, 86400, 1e-12);
    cr_assert_eq(cvd_nats_parse_seconds("7d", &s), 0);
    cr_assert_eq(cvd_nats_parse_seconds("90s", &s), 0);
    cr_assert_float_eq(s, 90, 1e-12);
    cr_assert_eq(cvd_nats_parse_seconds("-1", &s), -1);
    cr_assert_eq(cvd_nats_parse_seconds("2 m", &s), -1);
    cr_assert_eq(cvd_nats_parse_seconds("2mm", &s), -1);
    cr_assert_eq(cvd_nats_parse_seconds("nan", &s), -1);
    cr_assert_eq(cvd_nats_parse_seconds("", &s), -1);
    cr_assert_eq(cvd_nats_parse_bytes("1G", &b), 0);
    cr_assert_eq(b, 1073741824LL);
    cr_assert_eq(cvd_nats_parse_bytes("512K", &b), 0);
    cr_assert_eq(b, 524288);
    cr_assert_eq(cvd_nats_parse_bytes("-1", &b), 0);
    cr_assert_eq(b, -1);
    cr_assert_eq(cvd_nats_parse_bytes("1.5", &b), -1);
    cr_assert_eq(cvd_nats_parse_bytes("-2", &b), -1);
    cr_assert_eq(cvd_nats_parse_bytes("1X", &b), -1);
}

Test(nats, lease_values)
{
    cvd_nats_lease l = {"host-12-abc", 0}, p;
    char buf[128];
    cr_assert_gt(cvd_nats_lease_format(buf, sizeof buf, &l), 0);
    cr_assert_str_eq(buf, "host-12-abc 0");
    l.epoch = 18446744073709551615ull;
    cvd_nats_lease_format(buf, sizeof buf, &l);
    cr_assert_eq(cvd_nats_lease_parse(buf, strlen(buf), &p), 0);
    cr_assert_str_eq(p.owner, "host-12-abc");
    cr_assert_eq(p.epoch, 18446744073709551615ull);
    cr_assert_eq(cvd_nats_lease_parse("x", 1, &p), -1);
    cr_assert_eq(cvd_nats_lease_parse("x ", 2, &p), -1);
    cr_assert_eq(cvd_nats_lease_parse(" 5", 2, &p), -1);
    cr_assert_eq(cvd_nats_lease_parse("x 5a", 4, &p), -1);
    cr_assert_eq(cvd_nats_lease_parse("x 99999999999999999999", 22, &p), -1);
}

Test(nats, checkpoints_round_trip)
{
    cvd_nats_ckpt c, d;
    cvd_err err = {0};
    size_t len;
    memset(&c, 0, sizeof c);
    c.epoch = 77;
    c.frontier = 123456;
    for (int i = 0; i < 300; i++) {
        cvd_nats_ckpt_id e = {"", i, 1000 + i, 900 + i, (uint64_t)i * 3, i & 1};
        snprintf(e.id, sizeof e.id, "dev-%04d", i);
        cr_assert_eq(cvd_nats_ckpt_add(&c, &e), 0);
    }
    char *t = cvd_nats_ckpt_format(&c, &len);
    cr_assert_not_null(t);
    cr_assert_eq(cvd_nats_ckpt_parse(t, len, &d, &err), 0, "%s", err.msg);
    cr_assert_eq(d.epoch, 77);
    cr_assert_eq(d.frontier, 123456);
    cr_assert_eq(d.n_ids, 300);
    for (int i = 0; i < 300; i++) {
        cr_assert_str_eq(d.ids[i].id, c.ids[i].id);
        cr_assert_eq(d.ids[i].base, c.ids[i].base);
        cr_assert_eq(d.ids[i].done, c.ids[i].done);
        cr_assert_eq(d.ids[i].replay, c.ids[i].replay);
        cr_assert_eq(d.ids[i].replay_seq, c.ids[i].replay_seq);
        cr_assert_eq(d.ids[i].active, c.ids[i].active);
    }
    cvd_nats_ckpt_free(&d);
    /* every damage is refused by line, never a crash */
    static const char *const bad[] = {
        "",
        "convd-ckpt 2 1 1 0\n",
        "convd-ckpt 1 1 1 1\n",
        "convd-ckpt 1 1 1 1\nbad.id 0 0 0 0 0\n",
        "convd-ckpt 1 1 1 1\nx 0 0 0 0 2\n",
        "convd-ckpt 1 1 1 1\nx 0 0 0 0\n",
        "convd-ckpt 1 1 1 1\nx -1 0 0 0 0\n",
        "convd-ckpt 1 1 1 1\nx 0 0 0 0 0 9\n",
        "convd-ckpt 1 1 1 1\nx 0 99999999999999999999 0 0 0\n",
        "convd-ckpt 1 1 1 0\nx 0 0 0 0 0\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        memset(&err, 0, sizeof err);
        cr_assert_lt(cvd_nats_ckpt_parse(bad[i], strlen(bad[i]), &d, &err), 0, "%s", bad[i]);
        cr_assert_neq(err.msg[0], '\0');
    }
    /* truncated anywhere */
    for (size_t cut = 0; cut < len; cut += 97) {
        int rc = cvd_nats_ckpt_parse(t, cut, &d, &err);
        if (rc == 0)
            cvd_nats_ckpt_free(&d);
    }
    free(t);
    cvd_nats_ckpt_free(&c);
}

/* a [nats] section read from text; its defaults are the table's */
static cvd_nats_conf section_of(const char *body)
{
    char text[1024];
    cvd_conf *c = NULL;
    cvd_err err = {0};
    snprintf(text, sizeof text,
             "[model m]\npath = builtin:m\n[nats sensors]\nservers = nats://127.0.0.1:4222\n"
             "model = m\n%s",
             body);
    cr_assert_eq(cvd_conf_parse(text, "t.conf", "/etc/convd", &c, &err), 0, "%s", err.msg);
    cvd_nats_conf n = c->nats[0];
    cvd_conf_destroy(c);
    return n;
}

Test(nats, section_directives)
{
    cvd_nats_conf c;
    char why[256];
    int line = 0;
    cvd_conf_nats_defaults(&c, "sensors", 7);
    cr_assert_str_eq(c.prefix, "convd");
    cr_assert_eq(c.partitions, 64);
    cr_assert_str_eq(c.input_stream, "CONVD_IN");
    cr_assert_str_eq(c.output_stream, "CONVD_OUT");
    cr_assert_eq(c.replicas, 1);
    cr_assert_float_eq(c.input_max_age, 86400, 1e-9);
    cr_assert_eq(c.input_max_bytes, -1);
    cr_assert_float_eq(c.duplicate_window, 120, 1e-9);
    cr_assert_float_eq(c.idle_timeout, 600, 1e-9);
    cr_assert_eq(c.at.prefix, 0, "defaults record no line");
    /* servers and model are required */
    cr_assert_eq(cvd_nats_conf_finish(&c, &line, why, sizeof why), -1);
    cr_assert(strstr(why, "servers"), "%s", why);
    cr_assert_eq(line, 7);
    strcpy(c.servers, "nats://127.0.0.1:4222");
    strcpy(c.model, "m");
    cr_assert_eq(cvd_nats_conf_finish(&c, &line, why, sizeof why), 0, "%s", why);
    cr_assert_str_eq(c.lease_bucket, "CONVD_IN_leases");
    cr_assert_str_eq(c.checkpoint_bucket, "CONVD_IN_ckpt");

    /* suffixed durations and sizes, paths joined to the file's folder */
    cvd_nats_conf d = section_of("input_max_age = 2d\ninput_max_bytes = 10G\ntls_ca = ca.pem\n"
                                 "lease_ttl = 20s\n");
    cr_assert_float_eq(d.input_max_age, 172800, 1e-9);
    cr_assert_eq(d.input_max_bytes, 10LL << 30);
    cr_assert_str_eq(d.tls_ca, "/etc/convd/ca.pem");
    cr_assert_float_eq(d.lease_ttl, 20, 1e-9);
    cr_assert_eq(d.at.tls_ca, 8);
    cr_assert_eq(d.at.servers, 4);

    /* cross checks name a line */
    d = c;
    d.at.output_stream = 21;
    strcpy(d.output_stream, "CONVD_IN");
    cr_assert_eq(cvd_nats_conf_finish(&d, &line, why, sizeof why), -1);
    cr_assert_eq(line, 21);
    d = c;
    strcpy(d.tls_cert, "/c.pem");
    d.at.tls_cert = 22;
    cr_assert_eq(cvd_nats_conf_finish(&d, &line, why, sizeof why), -1);
    cr_assert(strstr(why, "tls_key"), "%s", why);
    cr_assert_eq(line, 22);
    d = c;
    d.lease_ttl = 100;
    d.at.lease_ttl = 23;
    cr_assert_eq(cvd_nats_conf_finish(&d, &line, why, sizeof why), -1);
    cr_assert(strstr(why, "duplicate_window"), "%s", why);
    cr_assert_eq(line, 23);
    d = c;
    strcpy(d.creds, "/a.creds");
    strcpy(d.token_file, "/t");
    cr_assert_eq(cvd_nats_conf_finish(&d, &line, why, sizeof why), -1);
}

static cvd_model *load(const char *path)
{
    cvd_model *m = NULL;
    cvd_err err = {0};
    cr_assert_eq(cvd_model_load(path, &m, &err), 0, "%s: %s", path, err.msg);
    return m;
}

Test(nats, models_it_can_replay)
{
    cvd_nats_model nm;
    cvd_err err = {0};
    cvd_model *m = load(SENSOR);
    cr_assert_eq(cvd_nats_model_prepare(m, 0, 64, &nm, &err), 0, "%s", err.msg);
    cr_assert_eq(nm.rf, 253);
    cr_assert_eq(nm.latency, 0);
    /* the next output after 1000 answered frames needs frames from 748 on */
    cr_assert_eq(cvd_nats_replay_start(&nm, 0, 1000), 748);
    cr_assert_eq(cvd_nats_replay_start(&nm, 900, 1000), 900);
    cr_assert_eq(cvd_nats_out_index(&nm, 748), 748);
    cvd_model_unref(m);

    m = load(GRAPH);
    cr_assert_eq(cvd_nats_model_prepare(m, 0, 7, &nm, &err), 0, "%s", err.msg);
    cr_assert_eq(nm.latency, 2);
    cvd_model_unref(m);

    m = load(WINDOWED);
    cr_assert_eq(cvd_nats_model_prepare(m, 5, 16, &nm, &err), 0, "%s", err.msg);
    cr_assert(nm.windowed);
    cr_assert_eq(nm.window, 20);
    cr_assert_eq(nm.hop, 5);
    /* 47 frames answered: windows 0..5 done (the 6th ends at frame 44), the next starts at 30 */
    cr_assert_eq(cvd_nats_replay_start(&nm, 0, 47), 30);
    cr_assert_eq(cvd_nats_restart_frame(&nm, 31), 35);
    cr_assert_eq(cvd_nats_out_index(&nm, 35), 7);
    cvd_model_unref(m);

    m = load(STRIDED);
    cr_assert_lt(cvd_nats_model_prepare(m, 0, 64, &nm, &err), 0);
    cr_assert(strstr(err.msg, "output frames per input frame") != NULL, "%s", err.msg);
    cvd_model_unref(m);
}

/* ---- a group in this process, on one server --------------------------------------------- */

static int have_nats_server(void)
{
    return system("command -v nats-server >/dev/null 2>&1") == 0;
}

/* a worker: runs the exec's jobs when woken */
typedef struct tworker {
    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t cond;
    int woken, quit;
    cvd_nats_exec *x;
} tworker;

static void tw_wake(void *ctx)
{
    tworker *w = ctx;
    pthread_mutex_lock(&w->mu);
    w->woken = 1;
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->mu);
}

static void *tw_main(void *arg)
{
    tworker *w = arg;
    pthread_mutex_lock(&w->mu);
    while (!w->quit) {
        while (!w->woken && !w->quit)
            pthread_cond_wait(&w->cond, &w->mu);
        w->woken = 0;
        pthread_mutex_unlock(&w->mu);
        while (cvd_nats_exec_run(w->x, 16))
            ;
        pthread_mutex_lock(&w->mu);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

static void tw_start(tworker *w)
{
    memset(w, 0, sizeof *w);
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cond, NULL);
    w->x = cvd_nats_exec_create(tw_wake, w);
    cr_assert_not_null(w->x);
    cr_assert_eq(pthread_create(&w->th, NULL, tw_main, w), 0);
}

static void tw_stop(tworker *w)
{
    pthread_mutex_lock(&w->mu);
    w->quit = 1;
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->th, NULL);
    cvd_nats_exec_destroy(w->x);
}

/* deterministic test frames for id k */
static float *frames_for(int k, int64_t n, int ch)
{
    cvd_rng r;
    float *x = malloc((size_t)n * (size_t)ch * sizeof *x);
    cr_assert_not_null(x);
    cvd_rng_seed(&r, 1000 + (uint64_t)k);
    for (int64_t i = 0; i < n * ch; i++)
        x[i] = (float)(cvd_rng_uniform(&r) * 2 - 1);
    return x;
}

/* waits until the output stream holds `want` messages, or fails */
static void wait_outputs(natsConnection *nc, const char *stream, uint64_t want, double timeout)
{
    jsCtx *js = NULL;
    cr_assert_eq(natsConnection_JetStream(&js, nc, NULL), NATS_OK);
    double end = nh_now() + timeout;
    uint64_t have = 0;
    while (nh_now() < end) {
        jsStreamInfo *si = NULL;
        if (js_GetStreamInfo(&si, js, stream, NULL, NULL) == NATS_OK) {
            have = si->State.Msgs;
            jsStreamInfo_Destroy(si);
            if (have >= want)
                break;
        }
        nh_sleep(0.05);
    }
    jsCtx_Destroy(js);
    cr_assert_geq(have, want, "the output stream holds %llu messages, want %llu",
                  (unsigned long long)have, (unsigned long long)want);
}

Test(nats, in_process_group_one_server)
{
    if (!have_nats_server())
        cr_skip_test("nats-server is not installed (scripts/install-deps.sh installs it)");
    nh_cluster cl;
    cr_assert_eq(nh_cluster_start(&cl, 1, du_tmp("nats1"), "convd", 8), 0, "%s", nh_err);
    cvd_model *m = load(SENSOR);
    tworker w[2];
    cvd_nats_exec *x[2];
    for (int i = 0; i < 2; i++) {
        tw_start(&w[i]);
        x[i] = w[i].x;
    }
    cvd_nats_conf c;
    char why[256];
    int line;
    cvd_conf_nats_defaults(&c, "t", 1);
    snprintf(c.servers, sizeof c.servers, "%s", cl.urls);
    snprintf(c.model, sizeof c.model, "sensor");
    c.partitions = 8;
    c.lease_ttl = 3;
    c.checkpoint_interval = 0.2;
    cr_assert_eq(cvd_nats_conf_finish(&c, &line, why, sizeof why), 0, "%s", why);
    cvd_nats_group *g = NULL;
    cvd_err err = {0};
    cr_assert_eq(cvd_nats_group_create(&c, m, 0, 0, x, 2, &g, &err), 0, "%s", err.msg);
    cr_assert_eq(cvd_nats_group_start(g, &err), 0, "%s", err.msg);

    natsConnection *nc = nh_connect(cl.urls);
    cr_assert_not_null(nc, "%s", nh_err);
    jsCtx *js = NULL;
    cr_assert_eq(natsConnection_JetStream(&js, nc, NULL), NATS_OK);
    /* the group creates the input stream: wait for it before publishing */
    for (int i = 0; i < 200; i++) {
        jsStreamInfo *si = NULL;
        if (js_GetStreamInfo(&si, js, "CONVD_IN", NULL, NULL) == NATS_OK) {
            jsStreamInfo_Destroy(si);
            break;
        }
        nh_sleep(0.05);
    }
    enum { IDS = 6, FRAMES = 3000 };
    float *in[IDS];
    uint64_t msgs = 0;
    static const int sizes[IDS] = {1, 7, 64, 100, 333, 3000};
    for (int k = 0; k < IDS; k++) {
        char id[32];
        snprintf(id, sizeof id, "dev-%d", k);
        in[k] = frames_for(k, FRAMES, 3);
        int per = sizes[k] > 30 ? sizes[k] : 30; /* keep the test quick */
        cr_assert_eq(nh_publish(js, "convd", id, in[k], 3, 0, FRAMES, per, 10, NULL), 0, "%s",
                     nh_err);
        msgs += (FRAMES + per - 1) / per;
    }
    wait_outputs(nc, "CONVD_OUT", msgs, 30);
    nh_collection col;
    cr_assert_eq(nh_collect(nc, "CONVD_OUT", "convd", 3, &col), 0, "%s", nh_err);
    cr_assert_eq(col.messages, msgs);
    for (int k = 0; k < IDS; k++) {
        char id[32];
        size_t n_ref = 0;
        snprintf(id, sizeof id, "dev-%d", k);
        float *ref = du_ref_stream(m, 64, in[k], FRAMES, &n_ref);
        nh_verdict v = nh_check(nh_collection_id(&col, id), ref, (int64_t)n_ref, 3);
        cr_assert(v.frames == FRAMES && v.duplicates == 0 && v.missing == 0 && v.wrong == 0 &&
                      v.bad_headers == 0,
                  "%s: %lld frames, %lld duplicated, %lld missing, %lld wrong (first %lld), %d "
                  "bad headers",
                  id, (long long)v.frames, (long long)v.duplicates, (long long)v.missing,
                  (long long)v.wrong, (long long)v.first_wrong, v.bad_headers);
        free(ref);
        free(in[k]);
    }
    nh_collection_free(&col);
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
    cvd_nats_group_destroy(g);
    for (int i = 0; i < 2; i++)
        tw_stop(&w[i]);
    cvd_model_unref(m);
    nh_cluster_stop(&cl);
}

/* ---- two groups in this process: a takeover and a handover ------------------------------ */

static cvd_nats_group *group_for(const nh_cluster *cl, cvd_model *m, tworker *w, int partitions)
{
    cvd_nats_conf c;
    char why[256];
    int line;
    cvd_conf_nats_defaults(&c, "t", 1);
    snprintf(c.servers, sizeof c.servers, "%s", cl->urls);
    snprintf(c.model, sizeof c.model, "sensor");
    c.partitions = partitions;
    c.lease_ttl = 2;
    c.checkpoint_interval = 0.2;
    c.request_timeout = 0.6;
    cr_assert_eq(cvd_nats_conf_finish(&c, &line, why, sizeof why), 0, "%s", why);
    cvd_nats_group *g = NULL;
    cvd_err err = {0};
    tw_start(w);
    cr_assert_eq(cvd_nats_group_create(&c, m, 0, 0, &w->x, 1, &g, &err), 0, "%s", err.msg);
    cr_assert_eq(cvd_nats_group_start(g, &err), 0, "%s", err.msg);
    return g;
}

static void check_all(natsConnection *nc, cvd_model *m, float **in, int ids, int64_t frames, int ch)
{
    nh_collection col;
    cr_assert_eq(nh_collect(nc, "CONVD_OUT", "convd", ch, &col), 0, "%s", nh_err);
    for (int k = 0; k < ids; k++) {
        char id[32];
        size_t n_ref = 0;
        snprintf(id, sizeof id, "dev-%d", k);
        float *ref = du_ref_stream(m, 64, in[k], (size_t)frames, &n_ref);
        nh_verdict v = nh_check(nh_collection_id(&col, id), ref, (int64_t)n_ref, ch);
        cr_assert(v.frames == frames && v.duplicates == 0 && v.missing == 0 && v.wrong == 0 &&
                      v.bad_headers == 0,
                  "%s: %lld frames of %lld, %lld duplicated, %lld missing, %lld wrong (first "
                  "%lld), %d bad headers",
                  id, (long long)v.frames, (long long)frames, (long long)v.duplicates,
                  (long long)v.missing, (long long)v.wrong, (long long)v.first_wrong,
                  v.bad_headers);
        free(ref);
    }
    nh_collection_free(&col);
}

/* the total output frames stored so far */
static uint64_t output_messages(natsConnection *nc)
{
    jsCtx *js = NULL;
    jsStreamInfo *si = NULL;
    uint64_t n = 0;
    natsConnection_JetStream(&js, nc, NULL);
    if (js_GetStreamInfo(&si, js, "CONVD_OUT", NULL, NULL) == NATS_OK) {
        n = si->State.Msgs;
        jsStreamInfo_Destroy(si);
    }
    jsCtx_Destroy(js);
    return n;
}

Test(nats, in_process_takeover_and_handover)
{
    if (!have_nats_server())
        cr_skip_test("nats-server is not installed (scripts/install-deps.sh installs it)");
    nh_cluster cl;
    cr_assert_eq(nh_cluster_start(&cl, 1, du_tmp("nats2"), "convd", 8), 0, "%s", nh_err);
    cvd_model *m = load(SENSOR);
    tworker wa, wb, wc;
    cvd_nats_group *a = group_for(&cl, m, &wa, 8);
    cvd_nats_group *b = group_for(&cl, m, &wb, 8);
    natsConnection *nc = nh_connect(cl.urls);
    cr_assert_not_null(nc, "%s", nh_err);
    enum { IDS = 8, FRAMES = 6000, PER = 50 };
    float *in[IDS];
    for (int k = 0; k < IDS; k++)
        in[k] = frames_for(k, FRAMES, 3);
    nh_producer p = {.urls = cl.urls,
                     .prefix = "convd",
                     .name_prefix = "dev-",
                     .ids = IDS,
                     .ch = 3,
                     .per_msg = PER,
                     .frames = FRAMES,
                     .in = in,
                     .pause = 0.02};
    /* the two share the partitions (one may take all first, then hand half over) */
    for (int i = 0; i < 200 && (atomic_load(&a->st.partitions_owned) != 4 ||
                                atomic_load(&b->st.partitions_owned) != 4);
         i++)
        nh_sleep(0.05);
    cr_assert_eq(atomic_load(&a->st.partitions_owned), 4);
    cr_assert_eq(atomic_load(&b->st.partitions_owned), 4);
    cr_assert_eq(nh_producer_start(&p), 0);
    /* both serve; then a dies abruptly (its leases expire) */
    const uint64_t total = (uint64_t)IDS * (FRAMES / PER);
    while (output_messages(nc) < total / 4 && !atomic_load(&p.done))
        nh_sleep(0.05);
    cr_assert_gt(atomic_load(&a->st.partitions_owned), 0,
                 "a holds nothing before it dies (b holds %d)",
                 atomic_load(&b->st.partitions_owned));
    cvd_nats_group_destroy(a);
    tw_stop(&wa);
    /* c joins: b hands half over to it */
    while (output_messages(nc) < total / 2 && !atomic_load(&p.done))
        nh_sleep(0.05);
    cvd_nats_group *c = group_for(&cl, m, &wc, 8);
    nh_producer_join(&p);
    cr_assert_not(atomic_load(&p.failed), "producer: %s", p.err);
    wait_outputs(nc, "CONVD_OUT", total, 40);
    check_all(nc, m, in, IDS, FRAMES, 3);
    for (int i = 0; i < 100 && atomic_load(&c->st.partitions_owned) < 4; i++)
        nh_sleep(0.1);
    cr_assert_eq(atomic_load(&c->st.partitions_owned), 4, "the newcomer has its share");
    cr_assert_eq(atomic_load(&b->st.partitions_owned), 4);
    /* b began with 4 (or more); a's 4 were taken by b or c */
    unsigned long long taken = atomic_load(&b->st.takeovers) + atomic_load(&c->st.takeovers);
    unsigned long long replayed =
        atomic_load(&b->st.replayed_frames) + atomic_load(&c->st.replayed_frames);
    cr_assert_geq(taken, 8, "%llu takeovers", taken);
    cr_assert_gt(replayed, 0, "nothing replayed");
    cr_assert_eq(atomic_load(&b->st.gaps) + atomic_load(&c->st.gaps), 0);
    cr_assert_eq(atomic_load(&b->st.duplicate_messages) + atomic_load(&c->st.duplicate_messages),
                 0);
    cr_log_info("takeovers %llu, replayed frames %llu, outputs the stream had already %llu", taken,
                replayed,
                (unsigned long long)(atomic_load(&b->st.output_duplicates) +
                                     atomic_load(&c->st.output_duplicates)));
    natsConnection_Destroy(nc);
    cvd_nats_group_destroy(b);
    cvd_nats_group_destroy(c);
    tw_stop(&wb);
    tw_stop(&wc);
    for (int k = 0; k < IDS; k++)
        free(in[k]);
    cvd_model_unref(m);
    nh_cluster_stop(&cl);
}

/* ---- the section in a configuration file ----------------------------------------------- */

static void conf_error(const char *text, const char *want)
{
    cvd_conf *c = NULL;
    cvd_err err = {0};
    cr_assert_lt(cvd_conf_parse(text, "t.conf", "/etc/convd", &c, &err), 0, "parsed:\n%s", text);
    cr_assert_str_eq(err.msg, want, "for:\n%s", text);
}

Test(nats, config_sections)
{
    static const char ok[] = "[model m]\npath = builtin:vibration-denoise\n"
                             "[nats sensors]\n"
                             "servers = nats://10.0.0.1:4222,nats://10.0.0.2:4222\n"
                             "model = m\nprefix = acme.convd\npartitions = 16\nreplicas = 3\n"
                             "input_max_age = 2h\ntls_ca = tls/ca.pem\ncreds = /etc/c.creds\n";
    cvd_conf *c = NULL;
    cvd_err err = {0};
    cr_assert_eq(cvd_conf_parse(ok, "t.conf", "/etc/convd", &c, &err), 0, "%s", err.msg);
    cr_assert_eq(c->n_nats, 1);
    cr_assert_eq(c->n_listens, 0);
    cr_assert_str_eq(c->nats[0].name, "sensors");
    cr_assert_eq(c->nats[0].model_index, 0);
    cr_assert_eq(c->nats[0].partitions, 16);
    cr_assert_eq(c->nats[0].replicas, 3);
    cr_assert_float_eq(c->nats[0].input_max_age, 7200, 1e-9);
    cr_assert_str_eq(c->nats[0].tls_ca, "/etc/convd/tls/ca.pem");
    cr_assert_str_eq(c->nats[0].creds, "/etc/c.creds");
    cr_assert_str_eq(c->nats[0].prefix, "acme.convd");
    cvd_conf_destroy(c);
    conf_error("[model m]\npath = builtin:x\n[nats a]\nmodel = m\n",
               "t.conf:3: [nats a]: missing 'servers' (comma-separated nats:// or tls:// URLs)");
    conf_error("[nats a]\nservers = nats://h:1\nmodel = nope\n",
               "t.conf:3: model: no [model nope] section");
    conf_error("[model m]\npath = builtin:x\n[nats a]\nservers = nats://h:1\nmodel = m\n"
               "partitons = 3\n",
               "t.conf:6: partitons: unknown directive in [nats a] (did you mean 'partitions'?)");
    conf_error("[model m]\npath = builtin:x\n[nats a]\nservers = nats://h:1\nmodel = m\n"
               "address = 1.2.3.4:5\n",
               "t.conf:6: address: unknown directive in [nats a] (it belongs in [listen NAME])");
    conf_error("[model m]\npath = builtin:x\n[nats a]\nservers = nats://h:1\nmodel = m\n"
               "partitions = 0\n",
               "t.conf:6: partitions: 0 is out of range 1..4096");
    conf_error("[model m]\npath = builtin:x\n[nats a]\nservers = nats://h:1\nmodel = m\n"
               "lease_ttl = soon\n",
               "t.conf:6: lease_ttl: 'soon' is not a duration (seconds, or a number with s, m, "
               "h or d)");
    conf_error("[model m]\npath = builtin:x\n[nats a]\nservers = nats://h:1\nmodel = m\n"
               "[nats a]\n",
               "t.conf:6: [nats a]: duplicate section (first at line 3)");
    conf_error("[model m]\npath = builtin:x\n[nats a]\nservers = nats://h:1\nmodel = m\n"
               "[nats b]\nservers = nats://h:1\nmodel = m\n",
               "t.conf:6: [nats b]: input_stream CONVD_IN is [nats a]'s too (line 3); one "
               "process is one member of a group");
    conf_error("[model m]\npath = builtin:x\n[nats a]\nservers = nats://h:1\nmodel = m\n"
               "prefix = a..b\n",
               "t.conf:6: prefix: 'a..b' is not a subject prefix (tokens of A-Z a-z 0-9 _ - "
               "separated by dots, no wildcards, at most 128 bytes)");
    conf_error("[model m]\npath = builtin:x\n[nats a]\nservers = nats://h:1\nmodel = m\n"
               "servers = nats://h:2\n",
               "t.conf:6: servers: duplicate directive (first at line 4)");
}
