/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_daemon.c - the convd daemon as a program: every protocol over loopback TCP against
 * convd-run's output, many clients at once, back-pressure and slow subscribers, malformed
 * input, SIGHUP reloads, SIGTERM flushes, systemd notifications, --check, socket activation.
 *
 * Each test writes its configuration into a temporary folder and starts build/convd (or the
 * CVD_BUILD_DIR one) with every port 0, reading the real ports from its log ("listen NAME:
 * 127.0.0.1:PORT, ..."), so tests run in parallel. Each ends with SIGTERM: the daemon must exit
 * 0 and its log must hold no sanitizer report (under make SAN=..., the daemon is sanitized).
 *
 * Randomised write and read sizes come from CVD_SEED (printed in failures). Helpers are in
 * tests/daemon_util.h; extra data in tests/data/daemon/.
 *
 * Long because: it is the daemon's end-to-end suite, one test per behaviour over every protocol
 * and signal; its helpers are already in daemon_util.h.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <sys/ioctl.h>
#include <sys/un.h>
#include <linux/sockios.h>

#include "convd_client.h"
#include "daemon_util.h"
#include "testutil.h"

#define NAM_W "tests/data/nam/wide16_tanh.nam" /* 1 -> 1 channel, latency 0 */
#define NAM_K "tests/data/nam/k1_relu_1ch.nam" /* 1 -> 1, latency 0, cheap */
#define NAM_N "tests/data/nam/nano_tanh.nam"   /* 1 -> 1, latency 0 */
#define JSON_G "tests/data/tools/graph.json"   /* 2 -> 3 channels, latency 2 */
#define INPUT "tests/data/nam/input_4k.f32"    /* 4096 floats in [-1, 1] */
#define BAD_NAM "tests/data/nam/bad/truncated_json.nam"

static void suite_init(void)
{
    du_tmp_make();
    du_deadline(90);
}

static void suite_fini(void)
{
    du_cleanup();
    du_tmp_remove();
}

TestSuite(daemon, .init = suite_init, .fini = suite_fini);

/* ---- shared pieces ---------------------------------------------------------------------- */

static uint64_t seed_for(int k)
{
    return tu_seed() * 1000003u + (uint64_t)k;
}

/* The test input: INPUT as floats (n_floats of them). */
static float *input_floats(size_t *n_floats)
{
    return du_read_f32(INPUT, n_floats);
}

/* A configuration: [server] with `server` lines, models w, g, k, n, then `listeners`. */
static char *conf_text(const char *server, const char *listeners)
{
    du_buf b = {0};
    du_buf_printf(&b, "[server]\n%s\n", server ? server : "");
    du_buf_printf(&b, "[model w]\npath = %s\n", du_src(NAM_W));
    du_buf_printf(&b, "[model g]\npath = %s\n", du_src(JSON_G));
    du_buf_printf(&b, "[model k]\npath = %s\n", du_src(NAM_K));
    du_buf_printf(&b, "[model n]\npath = %s\n", du_src(NAM_N));
    du_buf_printf(&b, "%s", listeners);
    return (char *)b.p;
}

/* "[listen NAME]" with address 127.0.0.1:0 and extra lines */
static void listener(du_buf *b, const char *name, const char *protocol, const char *model,
                     const char *extra)
{
    du_buf_printf(b, "[listen %s]\naddress = 127.0.0.1:0\nprotocol = %s\n", name, protocol);
    if (model)
        du_buf_printf(b, "model = %s\n", model);
    if (extra)
        du_buf_printf(b, "%s\n", extra);
}

/* convd-run's output for `in` (floats of the model's input channels) at `block`, as bytes. */
static float *ref_convd_run(const char *model, const float *in, size_t n_floats, int block,
                            size_t *n_out_floats, const char *tag)
{
    char inname[64], outname[64];
    snprintf(inname, sizeof inname, "%s.in.f32", tag);
    snprintf(outname, sizeof outname, "%s.out.f32", tag);
    const char *ip = du_tmp(inname), *op = du_tmp(outname);
    du_write_file(ip, in, n_floats * sizeof(float));
    du_convd_run(du_src(model), ip, op, block);
    return du_read_f32(op, n_out_floats);
}

/* floats -> s16le bytes by the documented rule */
static uint8_t *to_s16(const float *x, size_t n)
{
    uint8_t *b = malloc(2 * n + 1);
    cr_assert_not_null(b);
    for (size_t i = 0; i < n; i++) {
        uint16_t v = (uint16_t)du_s16(x[i]);
        b[2 * i] = (uint8_t)v;
        b[2 * i + 1] = (uint8_t)(v >> 8);
    }
    return b;
}

/* x quantised through s16 and back (what a raw s16le listener hands the model) */
static float *through_s16(const float *x, size_t n)
{
    float *y = malloc(sizeof(float) * n + 1);
    cr_assert_not_null(y);
    for (size_t i = 0; i < n; i++)
        y[i] = (float)du_s16(x[i]) / 32768.0f;
    return y;
}

/* Input frames as line-protocol text; style 1 adds comments, blank lines, blanks around the
 * values and CRLF ends; no_last_newline leaves the last line open. */
static void line_input(du_buf *b, const float *x, size_t n_frames, int ch, int style,
                       int no_last_newline)
{
    for (size_t f = 0; f < n_frames; f++) {
        if (style == 1 && f % 97 == 3)
            du_buf_printf(b, "# frame %zu\n\n", f);
        for (int c = 0; c < ch; c++) {
            double v = x[f * (size_t)ch + (size_t)c];
            if (style == 1 && (f + (size_t)c) % 5 == 0)
                du_buf_printf(b, " \t%.9g ", v);
            else
                du_buf_printf(b, "%.9g", v);
            if (c + 1 < ch)
                du_buf_printf(b, ",");
        }
        if (f + 1 == n_frames && no_last_newline)
            break;
        du_buf_printf(b, style == 1 && f % 3 == 0 ? "\r\n" : "\n");
    }
}

/* One raw or line peer on its own connection. */
static void peer_open(du_peer *p, int port, const void *in, size_t len, uint64_t seed,
                      size_t max_write, size_t max_read)
{
    du_peer_init(p, du_connect(port), in, len, 1, seed);
    p->max_write = max_write;
    p->max_read = max_read;
}

static void peer_check_done(const du_peer *p, const char *what)
{
    cr_assert(p->eof && p->err == 0,
              "%s: the stream did not end with EOF (%s; %zu of %zu bytes sent, %zu received)", what,
              p->err ? strerror(p->err) : "timed out", p->sent, p->in_len, p->out.len);
}

/* ---- each protocol, byte for byte --------------------------------------------------------- */

Test(daemon, raw_f32_matches_convd_run)
{
    size_t nf, nw, ng;
    float *x = input_floats(&nf);
    float *rw = ref_convd_run(NAM_W, x, nf, 64, &nw, "w64");
    float *rg = ref_convd_run(JSON_G, x, nf, 5, &ng, "g5");
    du_buf l = {0};
    listener(&l, "rw", "raw", "w", "format = f32le\nblock = 64");
    listener(&l, "rg", "raw", "g", "block = 5");
    char *conf = conf_text("workers = 2", (char *)l.p);
    du_daemon d;
    du_daemon_start(&d, conf, 0);
    int pw = du_daemon_port(&d, "rw"), pg = du_daemon_port(&d, "rg");
    cr_assert_eq(ng, nf / 2 * 3, "graph.json: %zu output floats for %zu input", ng, nf);

    /* tiny writes, tiny reads, random sizes up to a few KiB, one big write */
    const size_t wmax[] = {1, 3, 8192, 1 << 20}, rmax[] = {1, 7, 65536, 4096};
    for (int k = 0; k < 4; k++) {
        du_peer ps[2];
        peer_open(&ps[0], pw, x, nf * 4, seed_for(k), wmax[k], rmax[k]);
        peer_open(&ps[1], pg, x, nf * 4, seed_for(k + 100), wmax[k], rmax[k]);
        cr_assert_eq(du_drive(ps, 2, 30), 0, "seed %llu: streams still open after 30 s",
                     (unsigned long long)seed_for(k));
        for (int i = 0; i < 2; i++) {
            char what[96];
            snprintf(what, sizeof what, "raw %s, writes <= %zu, reads <= %zu, seed %llu",
                     i ? "graph.json block 5" : "wide16 block 64", wmax[k], rmax[k],
                     (unsigned long long)seed_for(k));
            peer_check_done(&ps[i], what);
            du_assert_bytes(ps[i].out.p, ps[i].out.len, i ? (void *)rg : (void *)rw,
                            (i ? ng : nw) * 4, what);
            du_buf_free(&ps[i].out);
            close(ps[i].fd);
        }
    }
    du_daemon_finish(&d, 10);
    free(x);
    free(rw);
    free(rg);
    free(conf);
    du_buf_free(&l);
}

Test(daemon, raw_s16_matches_convd_run)
{
    size_t nf, nw, ng;
    float *x = input_floats(&nf);
    float *xq = through_s16(x, nf);
    uint8_t *in16 = to_s16(x, nf);
    float *rw = ref_convd_run(NAM_W, xq, nf, 32, &nw, "w32");
    float *rg = ref_convd_run(JSON_G, xq, nf, 3, &ng, "g3");
    uint8_t *ew = to_s16(rw, nw), *eg = to_s16(rg, ng);
    du_buf l = {0};
    listener(&l, "sw", "raw", "w", "format = s16le\nblock = 32\nchannels = 1");
    listener(&l, "sg", "raw", "g", "format = S16LE\nblock = 3");
    char *conf = conf_text("workers = 2", (char *)l.p);
    du_daemon d;
    du_daemon_start(&d, conf, 0);
    int pw = du_daemon_port(&d, "sw"), pg = du_daemon_port(&d, "sg");
    const size_t wmax[] = {1, 4096, 1 << 20};
    for (int k = 0; k < 3; k++) {
        du_peer ps[2];
        peer_open(&ps[0], pw, in16, nf * 2, seed_for(k), wmax[k], 1 + 5000 * (size_t)k);
        peer_open(&ps[1], pg, in16, nf * 2, seed_for(k + 7), wmax[k], 3);
        cr_assert_eq(du_drive(ps, 2, 30), 0, "seed %llu: streams still open after 30 s",
                     (unsigned long long)seed_for(k));
        for (int i = 0; i < 2; i++) {
            char what[96];
            snprintf(what, sizeof what, "raw s16le %s, writes <= %zu, seed %llu",
                     i ? "graph.json block 3" : "wide16 block 32", wmax[k],
                     (unsigned long long)seed_for(k));
            peer_check_done(&ps[i], what);
            du_assert_bytes(ps[i].out.p, ps[i].out.len, i ? eg : ew, (i ? ng : nw) * 2, what);
            du_buf_free(&ps[i].out);
            close(ps[i].fd);
        }
    }
    du_daemon_finish(&d, 10);
    free(x);
    free(xq);
    free(in16);
    free(rw);
    free(rg);
    free(ew);
    free(eg);
    free(conf);
    du_buf_free(&l);
}

Test(daemon, line_matches_convd_run)
{
    size_t nf, ng;
    float *x = input_floats(&nf);
    const size_t frames = nf / 2;
    float *rg = ref_convd_run(JSON_G, x, nf, 7, &ng, "g7");
    du_buf want = {0};
    du_lines(&want, rg, ng / 3, 3);
    du_buf l = {0};
    listener(&l, "lg", "line", "g", "block = 7");
    char *conf = conf_text("workers = 2", (char *)l.p);
    du_daemon d;
    du_daemon_start(&d, conf, 0);
    int port = du_daemon_port(&d, "lg");
    for (int k = 0; k < 4; k++) {
        du_buf in = {0};
        line_input(&in, x, frames, 2, k & 1, k >= 2);
        du_peer p;
        peer_open(&p, port, in.p, in.len, seed_for(k), k == 0 ? 1 : 4096, k == 1 ? 1 : 8192);
        cr_assert_eq(du_drive(&p, 1, 30), 0);
        char what[96];
        snprintf(what, sizeof what, "line, style %d%s, seed %llu", k & 1,
                 k >= 2 ? ", no final newline" : "", (unsigned long long)seed_for(k));
        peer_check_done(&p, what);
        cr_assert_null(strstr((char *)p.out.p, "!ERR"), "%s: %s", what,
                       strstr((char *)p.out.p, "!ERR"));
        du_assert_bytes(p.out.p, p.out.len, want.p, want.len, what);
        close(p.fd);
        du_buf_free(&p.out);
        du_buf_free(&in);
    }
    du_daemon_finish(&d, 10);
    free(x);
    free(rg);
    free(conf);
    du_buf_free(&want);
    du_buf_free(&l);
}

/* A framed client stream written with random write sizes; the server's answer parsed. */
static void framed_roundtrip(int port, const du_buf *stream, uint64_t seed, size_t max_write,
                             size_t max_read, du_fr_result *r, const char *what)
{
    du_peer p;
    du_peer_init(&p, du_connect(port), stream->p, stream->len, 0, seed);
    p.max_write = max_write;
    p.max_read = max_read;
    cr_assert_eq(du_drive(&p, 1, 30), 0, "%s: no EOF after 30 s (%zu bytes received)", what,
                 p.out.len);
    peer_check_done(&p, what);
    du_fr_parse(p.out.p, p.out.len, r);
    cr_assert(!r->bad, "%s: the server's bytes are not a valid stream: %s", what, r->bad_msg);
    close(p.fd);
    du_buf_free(&p.out);
}

Test(daemon, framed_matches_convd_run)
{
    size_t nf, ng, nw, nw64;
    float *x = input_floats(&nf);
    float *rg = ref_convd_run(JSON_G, x, nf, 16, &ng, "g16");
    float *xq = through_s16(x, nf);
    float *rw = ref_convd_run(NAM_W, xq, nf, 32, &nw, "w32");
    float *rw64 = ref_convd_run(NAM_W, x, nf, 64, &nw64, "w64");
    uint8_t *ew = to_s16(rw, nw), *in16 = to_s16(x, nf);
    du_buf l = {0};
    listener(&l, "fr", "framed", "w", NULL);
    char *conf = conf_text("workers = 2", (char *)l.p);
    du_daemon d;
    du_daemon_start(&d, conf, 0);
    int port = du_daemon_port(&d, "fr");

    for (int k = 0; k < 6; k++) {
        cvd_rng rng;
        du_buf s = {0};
        du_fr_result r;
        char what[128];
        cvd_rng_seed(&rng, seed_for(k));
        int kind = k % 3;
        if (kind == 0) /* graph.json, f32, block 16: 2 -> 3 channels, latency 2 */
            du_fr_stream(&s, &rng, CVD_FMT_F32LE, 2, 2, 16, "g", x, nf / 2, k < 3 ? 300 : 1);
        else if (kind == 1) /* wide16 in s16le, block 32, channels named */
            du_fr_stream(&s, &rng, CVD_FMT_S16LE, 1, 1, 32, "w", x, nf, k < 3 ? 1000 : 3);
        else /* the listener's model and block */
            du_fr_stream(&s, &rng, CVD_FMT_F32LE, 0, 1, 0, "", x, nf, 4096);
        snprintf(what, sizeof what, "framed case %d (%s), seed %llu", k,
                 kind == 0   ? "graph f32 block 16"
                 : kind == 1 ? "wide16 s16le block 32"
                             : "default model and block",
                 (unsigned long long)seed_for(k));
        framed_roundtrip(port, &s, seed_for(k), k < 3 ? 8192 : 1, k < 3 ? 5 : 65536, &r, what);
        cr_assert(r.accepted, "%s: no ACCEPT", what);
        cr_assert_eq(r.error_code, 0, "%s: ERROR %d: %s", what, r.error_code, r.error_text);
        cr_assert(r.ended, "%s: no END before EOF", what);
        cr_assert_eq(r.after_end, 0, "%s: messages after END", what);
        cr_assert_eq(r.pending, 0, "%s: a partial message before EOF", what);
        const cvd_fr_accept *a = &r.acc;
        if (kind == 0) {
            cr_assert(a->in_channels == 2 && a->out_channels == 3 && a->latency == 2 &&
                          a->block == 16 && strcmp(a->model, "g") == 0 &&
                          a->format == CVD_FMT_F32LE,
                      "%s: ACCEPT %u -> %u channels, latency %u, block %u, model %s", what,
                      a->in_channels, a->out_channels, a->latency, a->block, a->model);
            du_assert_bytes(r.data.p, r.data.len, rg, ng * 4, what);
        } else if (kind == 1) {
            cr_assert(a->in_channels == 1 && a->out_channels == 1 && a->latency == 0 &&
                          a->block == 32 && a->format == CVD_FMT_S16LE,
                      "%s: ACCEPT", what);
            du_assert_bytes(r.data.p, r.data.len, ew, nw * 2, what);
        } else {
            cr_assert(a->block == 64 && strcmp(a->model, "w") == 0, "%s: ACCEPT block %u, %s", what,
                      a->block, a->model);
            du_assert_bytes(r.data.p, r.data.len, rw64, nw64 * 4, what);
        }
        cr_assert(a->max_message >= CVD_FR_MIN_MESSAGE);
        cr_assert(a->block == 0 || r.max_data_frames <= a->block,
                  "%s: a DATA of %zu frames, ACCEPT said at most %u", what, r.max_data_frames,
                  a->block);
        du_fr_result_free(&r);
        du_buf_free(&s);
    }
    du_daemon_finish(&d, 10);
    free(x);
    free(xq);
    free(rg);
    free(rw);
    free(rw64);
    free(ew);
    free(in16);
    free(conf);
    du_buf_free(&l);
}

/* The in-process reference used for many streams at once is convd-run's stream. */
Test(daemon, reference_in_process_equals_convd_run)
{
    size_t nf, ng, n2;
    float *x = input_floats(&nf);
    float *rg = ref_convd_run(JSON_G, x, nf, 7, &ng, "g7");
    cvd_model *m = du_load_model(JSON_G);
    float *r2 = du_ref_stream(m, 7, x, nf / 2, &n2);
    du_assert_bytes(r2, n2 * 12, rg, ng * 4, "in-process graph.json block 7");
    cvd_model_unref(m);
    free(x);
    free(rg);
    free(r2);
}

/* PING, PONG and BYE on a framed session, and the client library end to end. */
Test(daemon, framed_ping_bye_and_client_library)
{
    size_t nf, ng;
    float *x = input_floats(&nf);
    float *rg = ref_convd_run(JSON_G, x, nf, 64, &ng, "g64");
    du_buf l = {0};
    listener(&l, "fr", "framed", "g", NULL);
    char *conf = conf_text("workers = 1", (char *)l.p);
    du_daemon d;
    du_daemon_start(&d, conf, 0);
    int port = du_daemon_port(&d, "fr");

    /* PING before and between DATA; BYE after END */
    du_buf s = {0};
    du_fr_hello(&s, CVD_FMT_F32LE, 2, 0, "", "");
    du_fr_ping(&s, 0x0123456789abcdefull);
    du_fr_data(&s, 0, 0, CVD_FMT_F32LE, x, 100, 2);
    du_fr_ping(&s, 42);
    du_fr_data(&s, 1, 100, CVD_FMT_F32LE, x + 200, nf / 2 - 100, 2);
    du_fr_end(&s);
    du_fr_result r;
    framed_roundtrip(port, &s, seed_for(1), 100, 100, &r, "framed with PINGs");
    cr_assert_eq(r.pongs, 2, "%d PONGs for 2 PINGs", r.pongs);
    cr_assert_eq(r.pong_token, 42);
    cr_assert(r.ended && r.error_code == 0);
    du_assert_bytes(r.data.p, r.data.len, rg, ng * 4, "framed with PINGs");
    du_fr_result_free(&r);

    /* BYE right after HELLO: the server closes, no END */
    s.len = 0;
    du_fr_hello(&s, CVD_FMT_F32LE, 2, 0, "", "");
    du_fr_bye(&s);
    framed_roundtrip(port, &s, seed_for(2), 8192, 8192, &r, "HELLO then BYE");
    cr_assert(r.accepted && r.error_code == 0 && !r.bad);
    du_fr_result_free(&r);

    /* the client library */
    char ps[16];
    snprintf(ps, sizeof ps, "%d", port);
    cvd_client *c = NULL;
    cvd_client_request h;
    cvd_client_accept acc;
    cvd_err err = {0};
    cr_assert_eq(cvd_client_connect("127.0.0.1", ps, 10000, &c, &err), 0, "%s", err.msg);
    cvd_client_request_init(&h);
    h.block = 64;
    cr_assert_eq(cvd_client_hello(c, &h, &acc, &err), 0, "%s", err.msg);
    cr_assert(acc.in_channels == 2 && acc.out_channels == 3 && acc.latency == 2);
    float *out = calloc(ng + 64, sizeof(float));
    size_t got = 0;
    for (size_t pos = 0; pos < nf / 2; pos += 300) {
        size_t n = nf / 2 - pos < 300 ? nf / 2 - pos : 300;
        cr_assert_eq(cvd_client_send(c, x + pos * 2, n, &err), 0, "%s", err.msg);
        long k = cvd_client_recv(c, out + got * 3, ng / 3 - got, 0, &err);
        cr_assert_geq(k, 0, "%s", err.msg);
        got += (size_t)k;
    }
    cr_assert_eq(cvd_client_end(c, &err), 0, "%s", err.msg);
    for (;;) {
        long k = cvd_client_recv(c, out + got * 3, ng / 3 + 16 - got, 10000, &err);
        cr_assert_geq(k, 0, "%s", err.msg);
        if (k == 0)
            break;
        got += (size_t)k;
    }
    cr_assert(cvd_client_done(c));
    cvd_client_close(c);
    du_assert_bytes(out, got * 12, rg, ng * 4, "the client library");
    free(out);

    du_daemon_finish(&d, 10);
    du_buf_free(&s);
    free(x);
    free(rg);
    free(conf);
    du_buf_free(&l);
}

/* ---- many clients at once ------------------------------------------------------------------ */

/* x (n_frames of ch channels) rotated left by k frames */
static float *rotated(const float *x, size_t n_frames, int ch, size_t k)
{
    float *y = malloc(sizeof(float) * n_frames * (size_t)ch + 1);
    cr_assert_not_null(y);
    for (size_t f = 0; f < n_frames; f++)
        memcpy(y + f * (size_t)ch, x + ((f + k) % n_frames) * (size_t)ch,
               sizeof(float) * (size_t)ch);
    return y;
}

Test(daemon, many_concurrent_clients_each_get_their_own_stream)
{
    enum { N = 64 };
    size_t nf;
    float *x = input_floats(&nf);
    du_buf l = {0};
    listener(&l, "rw", "raw", "w", "block = 64");
    listener(&l, "rs", "raw", "w", "format = s16le\nblock = 32");
    listener(&l, "lg", "line", "g", "block = 7");
    listener(&l, "fr", "framed", "w", NULL);
    char *conf = conf_text("workers = 8", (char *)l.p);
    du_daemon d;
    du_daemon_start(&d, conf, 2); /* --workers 2 overrides the file */
    int ports[4] = {du_daemon_port(&d, "rw"), du_daemon_port(&d, "rs"), du_daemon_port(&d, "lg"),
                    du_daemon_port(&d, "fr")};
    cvd_model *mw = du_load_model(NAM_W), *mg = du_load_model(JSON_G);
    char *log = du_daemon_log(&d);
    cr_assert(strstr(log, "2 worker threads"), "--workers 2 not applied:\n%s", log);
    free(log);

    du_peer *ps = calloc(N, sizeof *ps);
    uint8_t **ins = calloc(N, sizeof *ins), **wants = calloc(N, sizeof *wants);
    size_t *want_len = calloc(N, sizeof *want_len);
    int *kinds = calloc(N, sizeof *kinds);
    for (int i = 0; i < N; i++) {
        int kind = i % 4;
        size_t rot = (size_t)i * 61 + 1, no = 0;
        kinds[i] = kind;
        if (kind == 0 || kind == 1) { /* raw f32 / s16, wide16 */
            float *xi = rotated(x, nf, 1, rot);
            if (kind == 0) {
                float *r = du_ref_stream(mw, 64, xi, nf, &no);
                ins[i] = (uint8_t *)xi;
                wants[i] = (uint8_t *)r;
                want_len[i] = no * 4;
                du_peer_init(&ps[i], du_connect(ports[0]), ins[i], nf * 4, 1, seed_for(i));
            } else {
                float *xq = through_s16(xi, nf);
                float *r = du_ref_stream(mw, 32, xq, nf, &no);
                ins[i] = to_s16(xi, nf);
                wants[i] = to_s16(r, no);
                want_len[i] = no * 2;
                free(xi);
                free(xq);
                free(r);
                du_peer_init(&ps[i], du_connect(ports[1]), ins[i], nf * 2, 1, seed_for(i));
            }
        } else if (kind == 2) { /* line, graph.json block 7 */
            float *xi = rotated(x, nf / 2, 2, rot);
            float *r = du_ref_stream(mg, 7, xi, nf / 2, &no);
            du_buf in = {0}, want = {0};
            line_input(&in, xi, nf / 2, 2, i & 4 ? 1 : 0, 0);
            du_lines(&want, r, no, 3);
            ins[i] = in.p;
            wants[i] = want.p;
            want_len[i] = want.len;
            du_peer_init(&ps[i], du_connect(ports[2]), in.p, in.len, 1, seed_for(i));
            free(xi);
            free(r);
        } else { /* framed: graph.json block 16, or the default model */
            cvd_rng rng;
            du_buf s = {0};
            cvd_rng_seed(&rng, seed_for(i + 1000));
            if (i & 4) {
                float *xi = rotated(x, nf / 2, 2, rot);
                float *r = du_ref_stream(mg, 16, xi, nf / 2, &no);
                du_fr_stream(&s, &rng, CVD_FMT_F32LE, 2, 2, 16, "g", xi, nf / 2, 200);
                wants[i] = (uint8_t *)r;
                want_len[i] = no * 12;
                free(xi);
            } else {
                float *xi = rotated(x, nf, 1, rot);
                float *r = du_ref_stream(mw, 64, xi, nf, &no);
                du_fr_stream(&s, &rng, CVD_FMT_F32LE, 0, 1, 0, "", xi, nf, 500);
                wants[i] = (uint8_t *)r;
                want_len[i] = no * 4;
                free(xi);
            }
            ins[i] = s.p;
            du_peer_init(&ps[i], du_connect(ports[3]), s.p, s.len, 0, seed_for(i));
        }
        ps[i].max_write = 4096;
        ps[i].max_read = 4096;
    }
    int open = du_drive(ps, N, 60);
    cr_assert_eq(open, 0, "%d of %d streams still open after 60 s", open, N);
    for (int i = 0; i < N; i++) {
        char what[96];
        snprintf(what, sizeof what, "client %d of %d (%s), seed %llu", i, N,
                 (const char *[]){"raw f32", "raw s16le", "line", "framed"}[kinds[i]],
                 (unsigned long long)seed_for(i));
        peer_check_done(&ps[i], what);
        if (kinds[i] == 3) {
            du_fr_result r;
            du_fr_parse(ps[i].out.p, ps[i].out.len, &r);
            cr_assert(!r.bad && r.accepted && r.ended && r.error_code == 0,
                      "%s: bad %d (%s), accepted %d, ended %d, error %d %s", what, r.bad, r.bad_msg,
                      r.accepted, r.ended, r.error_code, r.error_text);
            du_assert_bytes(r.data.p, r.data.len, wants[i], want_len[i], what);
            du_fr_result_free(&r);
        } else {
            du_assert_bytes(ps[i].out.p, ps[i].out.len, wants[i], want_len[i], what);
        }
        close(ps[i].fd);
        du_buf_free(&ps[i].out);
        free(ins[i]);
        free(wants[i]);
    }
    du_daemon_finish(&d, 10);
    cvd_model_unref(mw);
    cvd_model_unref(mg);
    free(ps);
    free(ins);
    free(wants);
    free(want_len);
    free(kinds);
    free(x);
    free(conf);
    du_buf_free(&l);
}

/* ---- publish / subscribe: slow subscribers ------------------------------------------------- */

/* Reads until `out` holds at least one whole framed message (ACCEPT or ERROR first). */
static void fr_read_first(int fd, du_buf *out, const char *what)
{
    double end = du_now() + 10;
    for (;;) {
        if (out->len >= 4) {
            uint32_t len = (uint32_t)out->p[0] | (uint32_t)out->p[1] << 8 |
                           (uint32_t)out->p[2] << 16 | (uint32_t)out->p[3] << 24;
            if (out->len >= 4 + (size_t)len)
                return;
        }
        long n = du_recv_some(fd, out, 4096, end - du_now());
        cr_assert_gt(n, 0, "%s: no answer to HELLO (%s)", what, n == 0 ? "EOF" : strerror((int)-n));
    }
}

/* A framed session: connect, HELLO, its answer in *first (ACCEPT expected). */
static int fr_session(int port, int rcvbuf, const du_buf *hello, du_buf *first, const char *what)
{
    int fd = du_connect_buf(port, rcvbuf, 0);
    du_send_all(fd, hello->p, hello->len);
    fr_read_first(fd, first, what);
    du_fr_result r;
    du_fr_parse(first->p, first->len, &r);
    cr_assert(r.accepted, "%s: no ACCEPT (ERROR %d: %s)", what, r.error_code, r.error_text);
    du_fr_result_free(&r);
    return fd;
}

/* The published stream of these tests: graph.json? no: model k (1 -> 1, cheap), block 64, the
 * input repeated `reps` times, sent as DATA of 1024 frames after a separate HELLO. */
typedef struct producer {
    float *x;
    size_t frames;
    float *want; /* the model's output for x */
    size_t want_frames;
    du_buf hello, rest;
} producer;

static void producer_make(producer *p, int reps, const char *stream)
{
    size_t nf;
    float *x = input_floats(&nf);
    memset(p, 0, sizeof *p);
    p->frames = nf * (size_t)reps;
    p->x = malloc(sizeof(float) * p->frames);
    cr_assert_not_null(p->x);
    for (int r = 0; r < reps; r++)
        for (size_t i = 0; i < nf; i++) /* each repetition a little different */
            p->x[(size_t)r * nf + i] = x[(i + (size_t)r * 7) % nf] * (0.5f + 0.5f * (float)(r % 3));
    cvd_model *m = du_load_model(NAM_K);
    p->want = du_ref_stream(m, 64, p->x, p->frames, &p->want_frames);
    cvd_model_unref(m);
    du_fr_hello(&p->hello, CVD_FMT_F32LE, 1, 64, "k", stream);
    uint32_t seq = 0;
    for (size_t pos = 0; pos < p->frames; pos += 1024, seq++)
        du_fr_data(&p->rest, seq, pos, CVD_FMT_F32LE, p->x + pos,
                   p->frames - pos < 1024 ? p->frames - pos : 1024, 1);
    du_fr_end(&p->rest);
    free(x);
}

static void producer_free(producer *p)
{
    free(p->x);
    free(p->want);
    du_buf_free(&p->hello);
    du_buf_free(&p->rest);
}

/* Counts the frames of the whole DATA messages in out[*scan..) (frame_bytes each). */
static void fr_scan(const du_buf *out, size_t *scan, uint64_t *frames, size_t frame_bytes)
{
    while (out->len - *scan >= 4) {
        const uint8_t *m = out->p + *scan;
        size_t len = (size_t)m[0] | (size_t)m[1] << 8 | (size_t)m[2] << 16 | (size_t)m[3] << 24;
        if (out->len - *scan < 4 + len)
            break;
        if (len > 17 && m[4] == CVD_FR_DATA)
            *frames += (len - 1 - 16) / frame_bytes;
        *scan += 4 + len;
    }
}

/* Streams the producer's DATA and END at full speed but with at most 4096 frames (16 KiB)
 * beyond its output in flight, and checks its own output is exact. (The window keeps the
 * daemon's unread input under 32 KiB: see the report on its input buffer.)
 *
 * With mport > 0 it first goes one DATA at a time until the daemon's convd_queue_bytes
 * reaches queue_target (the subscribers' queues are full: they stopped reading and their
 * kernel buffers are full too), waits a moment, then runs at full speed: the subscribers'
 * rings then overflow while their queues are full. */
static void producer_run(producer *p, int fd, du_buf *first, int mport, double queue_target)
{
    const size_t msg = cvd_fr_data_size(1024, 4);
    du_buf out = {0};
    size_t sent = 0, scan = 0;
    uint64_t out_frames = 0;
    double end = du_now() + 120;
    int slow = mport > 0;
    du_buf_add(&out, first->p, first->len);
    scan = out.len;
    du_nonblock(fd, 1);
    for (;;) {
        fr_scan(&out, &scan, &out_frames, 4);
        uint64_t in_frames = (uint64_t)(sent / msg) * 1024;
        struct pollfd pf = {fd, POLLIN, 0};
        if (slow && sent % msg == 0 && in_frames <= out_frames) {
            char *t = du_metrics(mport);
            double q = du_metric(t, "convd_queue_bytes");
            double gone = du_metric(t, "convd_disconnects_total{reason=\"slow_subscriber\"}");
            free(t);
            if (q >= queue_target || gone > 0 || sent > p->rest.len / 4 * 3) {
                cr_log_info("producer: full speed after %zu bytes (convd_queue_bytes %g, %g slow "
                            "subscribers closed)",
                            sent, q, gone);
                slow = 0;
                du_sleep_ms(200);
            }
        }
        if (sent < p->rest.len && in_frames < out_frames + (slow ? 1 : 4096))
            pf.events |= POLLOUT;
        cr_assert_lt(du_now(), end, "the producer: not done after 120 s (%zu of %zu bytes sent)",
                     sent, p->rest.len);
        poll(&pf, 1, 100);
        if (pf.revents & POLLOUT) {
            size_t n = msg - sent % msg; /* up to the end of the current message */
            if (n > p->rest.len - sent)
                n = p->rest.len - sent;
            ssize_t k = send(fd, p->rest.p + sent, n, MSG_NOSIGNAL | MSG_DONTWAIT);
            cr_assert(k > 0 || errno == EAGAIN, "the producer: send: %s", strerror(errno));
            if (k > 0)
                sent += (size_t)k;
        }
        if (pf.revents & (POLLIN | POLLHUP | POLLERR)) {
            long k = du_recv_some(fd, &out, 65536, 0);
            if (k == 0)
                break;
            cr_assert(k > 0 || k == -ETIMEDOUT,
                      "the producer: receive: %s (%zu of %zu bytes "
                      "sent)",
                      strerror((int)-k), sent, p->rest.len);
        }
    }
    cr_assert_eq(sent, p->rest.len, "the producer: EOF before all was sent");
    du_fr_result r;
    du_fr_parse(out.p, out.len, &r);
    cr_assert(!r.bad && r.ended && r.error_code == 0, "the producer: %s, ERROR %d %s", r.bad_msg,
              r.error_code, r.error_text);
    du_assert_bytes(r.data.p, r.data.len, p->want, p->want_frames * 4, "the producer's output");
    du_fr_result_free(&r);
    du_buf_free(&out);
}

/* Resident growth allowed while clients do not read: what a bounded daemon needs plus slack.
 * Under a sanitizer (ASan or TSan) the allocator and the shadow memory add several MB whatever
 * the daemon does, so the bound only means something in the normal build there. */
#define RSS_SLACK_KB (du_daemon_sanitized() ? 24 * 1024 : 2560)

/* Repetitions of the input for a stream whose output fills a subscriber's kernel buffers
 * (on loopback the daemon's send buffer starts at about 2.6 MB: the interface's 64 KiB MSS)
 * and then 50 x queue_limit more (4-byte frames, 4096 per repetition). */
static int published_reps(size_t qlimit)
{
    return (int)(((size_t)3 << 20) / 4 / 4096 + 50 * qlimit / 4 / 4096 + 1);
}

Test(daemon, slow_subscriber_drop_bounded_and_counted)
{
    const size_t qlimit = 65536;
    du_buf l = {0};
    listener(&l, "fr", "framed", "k", NULL);
    char srv[256];
    snprintf(srv, sizeof srv,
             "workers = 2\nmetrics = 127.0.0.1:0\nqueue_limit = %zu\nslow_subscriber = drop\n",
             qlimit);
    char *conf = conf_text(srv, (char *)l.p);
    du_daemon d;
    du_daemon_start(&d, conf, 0);
    int port = du_daemon_port(&d, "fr"), mport = du_daemon_metrics_port(&d);

    producer pr;
    producer_make(&pr, published_reps(qlimit), "s1");
    du_buf pfirst = {0}, afirst = {0}, bfirst = {0}, sub = {0};
    int pfd = fr_session(port, 0, &pr.hello, &pfirst, "the producer");
    du_fr_subscribe(&sub, CVD_FMT_F32LE, "s1");
    int afd = fr_session(port, 4096, &sub, &afirst, "subscriber A");
    int bfd = fr_session(port, 4096, &sub, &bfirst, "subscriber B");
    du_sleep_ms(100);
    long rss0 = du_vmrss_kb(d.pid);

    producer_run(&pr, pfd, &pfirst, mport, 2.0 * (double)qlimit);
    close(pfd);
    long rss1 = du_vmrss_kb(d.pid);
    cr_log_info("slow subscriber: VmRSS %ld -> %ld KiB after %zu frames published", rss0, rss1,
                pr.want_frames);
    cr_assert_lt(rss1 - rss0, RSS_SLACK_KB,
                 "the daemon grew by %ld KiB while two subscribers did not read %zu KiB of "
                 "output each (queue_limit %zu KiB): their queues are not bounded",
                 rss1 - rss0, pr.want_frames * 4 / 1024, qlimit / 1024);
    /* the frames the rings could not take are lost already: counted now, not when (if ever)
     * the subscribers read again */
    const char *series = "convd_dropped_frames_total{reason=\"slow_subscriber\"}";
    double dropped_before = du_metric_wait(mport, series, 1, 3);

    /* B reads now: DATA with dropped counts, each DATA's frames the stream's frames at its
     * first_frame, then END */
    du_buf bout = {0};
    du_buf_add(&bout, bfirst.p, bfirst.len);
    int rc = du_recv_eof(bfd, &bout, 30);
    cr_assert_eq(rc, 1, "subscriber B: no EOF after the producer ended (%s)", strerror(-rc));
    du_fr_result r;
    du_fr_parse(bout.p, bout.len, &r);
    cr_assert(!r.bad, "subscriber B: %s", r.bad_msg);
    cr_assert(r.accepted && r.ended && r.error_code == 0, "subscriber B: ended %d, ERROR %d %s",
              r.ended, r.error_code, r.error_text);
    /* each DATA holds the stream's frames at its first_frame */
    uint64_t frames = 0;
    for (size_t i = 0; i < r.n_segs; i++) {
        const du_fr_seg *s = &r.segs[i];
        frames += s->n_frames;
        cr_assert_leq(s->first_frame + s->n_frames, pr.want_frames);
        size_t diff =
            du_first_diff(r.data.p + s->offset, pr.want + s->first_frame, s->n_frames * 4);
        cr_assert_eq(diff, s->n_frames * 4,
                     "subscriber B: DATA %zu (first_frame %llu, %zu frames, dropped %u) does not "
                     "hold the stream's frames %llu.. (first difference at its frame %zu): the "
                     "frame indices after a drop are wrong",
                     i, (unsigned long long)s->first_frame, s->n_frames, s->dropped,
                     (unsigned long long)s->first_frame, diff / 4);
    }
    /* and every frame lost is accounted for before END (a DATA of 0 frames may carry it) */
    uint64_t dropped_total = r.dropped_total;
    cr_assert_eq(frames + dropped_total, pr.want_frames,
                 "subscriber B: %llu frames received + %llu reported dropped != %zu published "
                 "(%zu DATA, END %d): frames lost were not reported to the subscriber",
                 (unsigned long long)frames, (unsigned long long)dropped_total, pr.want_frames,
                 r.n_segs, r.ended);
    cr_assert_gt(dropped_total, 0, "subscriber B lagged, but no DATA says frames were dropped");
    du_fr_result_free(&r);
    double dropped_after = du_metric_now(mport, series);
    cr_assert_geq(dropped_after, (double)dropped_total, "%s is %g after B read", series,
                  dropped_after);
    cr_assert_gt(dropped_before, 0,
                 "%s stayed %g while the subscribers' rings overflowed (it became %g only once "
                 "subscriber B read again): drops are counted late, and never for a subscriber "
                 "that does not read",
                 series, dropped_before, dropped_after);
    close(afd);
    close(bfd);
    du_daemon_finish(&d, 10);
    producer_free(&pr);
    du_buf_free(&pfirst);
    du_buf_free(&afirst);
    du_buf_free(&bfirst);
    du_buf_free(&bout);
    du_buf_free(&sub);
    free(conf);
    du_buf_free(&l);
}

Test(daemon, slow_subscriber_disconnect)
{
    const size_t qlimit = 65536;
    du_buf l = {0};
    listener(&l, "fr", "framed", "k", NULL);
    char srv[256];
    snprintf(srv, sizeof srv,
             "workers = 2\nmetrics = 127.0.0.1:0\nqueue_limit = %zu\nslow_subscriber = "
             "disconnect\n",
             qlimit);
    char *conf = conf_text(srv, (char *)l.p);
    du_daemon d;
    du_daemon_start(&d, conf, 0);
    int port = du_daemon_port(&d, "fr"), mport = du_daemon_metrics_port(&d);

    producer pr;
    producer_make(&pr, published_reps(qlimit), "s2");
    du_buf pfirst = {0}, afirst = {0}, sub = {0}, aout = {0};
    int pfd = fr_session(port, 0, &pr.hello, &pfirst, "the producer");
    du_fr_subscribe(&sub, CVD_FMT_F32LE, "s2");
    int afd = fr_session(port, 4096, &sub, &afirst, "subscriber A");
    long rss0 = du_vmrss_kb(d.pid);
    producer_run(&pr, pfd, &pfirst, mport, (double)qlimit); /* not disturbed */
    close(pfd);
    long rss1 = du_vmrss_kb(d.pid);
    cr_assert_lt(rss1 - rss0, RSS_SLACK_KB,
                 "the daemon grew by %ld KiB while a subscriber did not read %zu KiB of output",
                 rss1 - rss0, pr.want_frames * 4 / 1024);

    /* A never read: its queue filled, so it must be closed (without it reading first) */
    double disc =
        du_metric_wait(mport, "convd_disconnects_total{reason=\"slow_subscriber\"}", 1, 3);
    cr_assert_geq(disc, 1,
                  "a subscriber whose queue is full was not closed under slow_subscriber = "
                  "disconnect (convd_disconnects_total{reason=\"slow_subscriber\"} = %g while it "
                  "does not read)",
                  disc);
    du_buf_add(&aout, afirst.p, afirst.len);
    int rc = du_recv_eof(afd, &aout, 10);
    cr_assert(rc == 1 || rc == -ECONNRESET, "subscriber A: not closed (%s)", strerror(-rc));
    du_fr_result r;
    du_fr_parse(aout.p, aout.len, &r);
    /* what it is sent before the close is up to the daemon; an ERROR would be 8 (busy) */
    cr_assert(r.error_code == 0 || r.error_code == CVD_FR_E_BUSY,
              "subscriber A: ERROR %d (%s), want 8 (busy)", r.error_code, r.error_text);
    cr_assert(!r.ended, "subscriber A: an END, but it was too slow to get the whole stream");
    du_fr_result_free(&r);
    close(afd);
    du_daemon_finish(&d, 10);
    producer_free(&pr);
    du_buf_free(&pfirst);
    du_buf_free(&afirst);
    du_buf_free(&aout);
    du_buf_free(&sub);
    free(conf);
    du_buf_free(&l);
}

/* ---- back-pressure: a client that does not read -------------------------------------------- */

/* frame i of a long deterministic signal built from INPUT */
static void long_signal(float *out, size_t n, const float *x, size_t nx)
{
    for (size_t i = 0; i < n; i++)
        out[i] = x[(i * 7 + i / nx) % nx] * (0.25f + 0.25f * (float)((i / nx) % 4));
}

Test(daemon, raw_client_not_reading_is_paused_while_others_stream)
{
    size_t nf, nw;
    float *x = input_floats(&nf);
    du_buf l = {0};
    listener(&l, "rk", "raw", "k", "block = 64");
    listener(&l, "rw", "raw", "w", "block = 64");
    char *conf = conf_text("workers = 2\nqueue_limit = 65536\nidle_timeout = 0", (char *)l.p);
    du_daemon d;
    du_daemon_start(&d, conf, 0);
    int pk = du_daemon_port(&d, "rk"), pw = du_daemon_port(&d, "rw");
    const size_t cap = (size_t)48 << 20; /* bytes X may send before the test gives up */
    float *sig = malloc(cap);
    cr_assert_not_null(sig);
    long_signal(sig, cap / 4, x, nf);

    /* X sends and never reads: the daemon must stop reading it, not close it */
    int xfd = du_connect_buf(pk, 16384, 16384);
    du_nonblock(xfd, 1);
    long rss0 = du_vmrss_kb(d.pid);
    size_t sent = 0;
    double last = du_now();
    while (du_now() - last < 1.0) {
        cr_assert_lt(sent, cap,
                     "the daemon read %zu MB from a client that reads none of its output "
                     "(queue_limit 64 KiB): no back-pressure",
                     sent >> 20);
        size_t n = cap - sent < 65536 ? cap - sent : 65536;
        ssize_t k = send(xfd, (uint8_t *)sig + sent, n, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (k > 0) {
            sent += (size_t)k;
            last = du_now();
            continue;
        }
        cr_assert(k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK),
                  "the daemon closed a client that only did not read its output, after %zu "
                  "bytes of input (send: %s); it should stop reading it instead",
                  sent, strerror(errno));
        struct pollfd pf = {xfd, POLLOUT, 0};
        poll(&pf, 1, 50);
    }
    long rss1 = du_vmrss_kb(d.pid);
    cr_log_info("a client that does not read: %zu KiB sent before the daemon stopped reading; "
                "VmRSS %ld -> %ld KiB",
                sent / 1024, rss0, rss1);
    cr_assert_lt(rss1 - rss0, RSS_SLACK_KB + 1536,
                 "the daemon grew by %ld KiB holding the output of a client that does not read "
                 "(queue_limit 64 KiB)",
                 rss1 - rss0);
    char xb;
    cr_assert(recv(xfd, &xb, 1, MSG_PEEK | MSG_DONTWAIT) == 1,
              "the blocked client has no output waiting at all");

    /* meanwhile another client streams normally */
    float *rw = ref_convd_run(NAM_W, x, nf, 64, &nw, "w64");
    du_peer g;
    peer_open(&g, pw, x, nf * 4, seed_for(5), 4096, 4096);
    cr_assert_eq(du_drive(&g, 1, 30), 0, "the other client: not done in 30 s");
    peer_check_done(&g, "the other client");
    du_assert_bytes(g.out.p, g.out.len, rw, nw * 4, "the other client while one is blocked");
    close(g.fd);
    du_buf_free(&g.out);

    /* X reads at last: everything it sent comes back, exactly */
    size_t whole = sent / 4 * 4;
    du_peer xp;
    memset(&xp, 0, sizeof xp);
    xp.fd = xfd;
    xp.in = (uint8_t *)sig;
    xp.in_len = whole + (sent % 4 ? 4 : 0);
    xp.sent = sent;
    xp.shut_wr = 1;
    xp.max_write = 65536;
    xp.max_read = 65536;
    cvd_rng_seed(&xp.rng, 1);
    if (xp.sent == xp.in_len)
        shutdown(xfd, SHUT_WR);
    cr_assert_eq(du_drive(&xp, 1, 60), 0, "the blocked client: not done 60 s after it read");
    peer_check_done(&xp, "the blocked client, reading at last");
    cvd_model *mk = du_load_model(NAM_K);
    size_t nk;
    float *rk = du_ref_stream(mk, 64, sig, xp.in_len / 4, &nk);
    du_assert_bytes(xp.out.p, xp.out.len, rk, nk * 4, "the blocked client's output");
    close(xfd);
    du_buf_free(&xp.out);
    du_daemon_finish(&d, 10);
    cvd_model_unref(mk);
    free(rk);
    free(rw);
    free(sig);
    free(x);
    free(conf);
    du_buf_free(&l);
}

/* Streams much larger than the daemon's input buffer, at full speed (no pacing). */
Test(daemon, large_streams_at_full_speed)
{
    size_t nf;
    float *x = input_floats(&nf);
    du_buf l = {0};
    listener(&l, "rk", "raw", "k", "block = 64");
    listener(&l, "fr", "framed", "k", NULL);
    char *conf = conf_text("workers = 2", (char *)l.p);
    du_daemon d;
    du_daemon_start(&d, conf, 0);
    const size_t frames = 1 << 20; /* 4 MiB each way */
    float *sig = malloc(frames * 4);
    cr_assert_not_null(sig);
    long_signal(sig, frames, x, nf);
    cvd_model *mk = du_load_model(NAM_K);
    size_t nk;
    float *rk = du_ref_stream(mk, 64, sig, frames, &nk);
    du_buf s = {0};
    cvd_rng rng;
    cvd_rng_seed(&rng, seed_for(9));
    du_fr_stream(&s, &rng, CVD_FMT_F32LE, 1, 1, 64, "", sig, frames, 8192);
    du_peer ps[2];
    /* each write as much as the kernel takes: the daemon sees full 64 KiB reads */
    peer_open(&ps[0], du_daemon_port(&d, "rk"), sig, frames * 4, seed_for(1), 1 << 22, 1 << 18);
    ps[0].max_write_fixed = 1;
    du_peer_init(&ps[1], du_connect(du_daemon_port(&d, "fr")), s.p, s.len, 0, seed_for(2));
    ps[1].max_write = 1 << 22;
    ps[1].max_write_fixed = 1;
    ps[1].max_read = 1 << 18;
    cr_assert_eq(du_drive(ps, 2, 60), 0, "not done after 60 s");
    peer_check_done(&ps[0], "raw, 4 MiB at full speed");
    du_assert_bytes(ps[0].out.p, ps[0].out.len, rk, nk * 4, "raw, 4 MiB at full speed");
    peer_check_done(&ps[1], "framed, 4 MiB at full speed");
    du_fr_result r;
    du_fr_parse(ps[1].out.p, ps[1].out.len, &r);
    cr_assert(!r.bad && r.ended && r.error_code == 0, "framed: %s, ERROR %d %s", r.bad_msg,
              r.error_code, r.error_text);
    du_assert_bytes(r.data.p, r.data.len, rk, nk * 4, "framed, 4 MiB at full speed");
    du_fr_result_free(&r);
    for (int i = 0; i < 2; i++) {
        close(ps[i].fd);
        du_buf_free(&ps[i].out);
    }
    du_daemon_finish(&d, 10);
    cvd_model_unref(mk);
    free(rk);
    free(sig);
    free(x);
    du_buf_free(&s);
    free(conf);
    du_buf_free(&l);
}

/* ---- malformed input of every kind, while a good client streams ---------------------------- */

/* A well-behaved raw client in a thread: INPUT twice, 256 bytes every 25 ms (so it spans the
 * other cases and never idles out), reading as it goes; plain system calls only. */
typedef struct good_client {
    int port;
    const uint8_t *in;
    size_t len;
    du_buf out;
    int ok;
    char why[160];
} good_client;

static void *good_client_main(void *arg)
{
    good_client *g = arg;
    struct sockaddr_in a;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)g->port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
        snprintf(g->why, sizeof g->why, "connect: %s", strerror(errno));
        return NULL;
    }
    size_t sent = 0;
    double end = du_now() + 30;
    g->out.cap = g->len * 2 + 65536;
    g->out.p = malloc(g->out.cap);
    for (;;) {
        if (du_now() > end) {
            snprintf(g->why, sizeof g->why, "not done in 30 s (%zu sent, %zu received)", sent,
                     g->out.len);
            break;
        }
        if (sent < g->len) {
            size_t n = g->len - sent < 256 ? g->len - sent : 256;
            ssize_t k = send(fd, g->in + sent, n, MSG_NOSIGNAL);
            if (k <= 0) {
                snprintf(g->why, sizeof g->why, "send: %s", strerror(errno));
                break;
            }
            sent += (size_t)k;
            if (sent == g->len)
                shutdown(fd, SHUT_WR);
        }
        struct pollfd pf = {fd, POLLIN, 0};
        poll(&pf, 1, sent < g->len ? 25 : 1000);
        if (pf.revents) {
            ssize_t k = recv(fd, g->out.p + g->out.len, g->out.cap - g->out.len, MSG_DONTWAIT);
            if (k == 0) {
                g->ok = 1;
                break;
            }
            if (k < 0 && errno != EAGAIN) {
                snprintf(g->why, sizeof g->why, "recv: %s", strerror(errno));
                break;
            }
            if (k > 0)
                g->out.len += (size_t)k;
        }
    }
    close(fd);
    return NULL;
}

/* Sends `bytes`, keeps the connection open, and reads until the server closes it (at most
 * timeout_s); returns what came. half_close: shut down our write side after sending. */
static du_buf exchange(int port, const void *bytes, size_t n, int half_close, double timeout_s,
                       const char *what)
{
    du_buf out = {0};
    int fd = du_connect(port);
    if (n)
        du_send_all(fd, bytes, n);
    if (half_close)
        shutdown(fd, SHUT_WR);
    int rc = du_recv_eof(fd, &out, timeout_s);
    cr_assert(rc == 1 || rc == -ECONNRESET,
              "%s: the server did not close the connection within "
              "%.1f s (%s; %zu bytes received)",
              what, timeout_s, strerror(-rc), out.len);
    close(fd);
    du_buf_reserve(&out, 0);
    return out;
}

/* A framed exchange that must end with ERROR `code` (and no END). */
static void expect_fr_error(int port, const du_buf *msg, int code, const char *text_has,
                            const char *what)
{
    du_buf out = exchange(port, msg->p, msg->len, 0, 5, what);
    du_fr_result r;
    du_fr_parse(out.p, out.len, &r);
    cr_assert(!r.bad, "%s: the server's answer is malformed: %s", what, r.bad_msg);
    cr_assert_eq(r.error_code, code, "%s: ERROR %d (%s), want %d", what, r.error_code, r.error_text,
                 code);
    cr_assert(text_has == NULL || strstr(r.error_text, text_has), "%s: ERROR text \"%s\"", what,
              r.error_text);
    cr_assert(!r.ended, "%s: an END after the error", what);
    du_fr_result_free(&r);
    du_buf_free(&out);
}

/* One of the connections watched over time (timeouts); watch(ws, n, 0) between the other
 * cases notes when each closes. */
typedef struct watched {
    const char *what;
    int fd;
    double t0, t_eof;
    du_buf out;
    int trickle; /* send one more byte of `tr` every 150 ms */
    const uint8_t *tr;
    size_t tr_len, tr_sent;
    double t_next;
} watched;

static void watch(watched *ws, int n, double timeout_s)
{
    double end = du_now() + timeout_s;
    for (;;) {
        int open = 0;
        for (int i = 0; i < n; i++) {
            watched *w = &ws[i];
            if (w->t_eof > 0)
                continue;
            open++;
            if (w->trickle && w->tr_sent < w->tr_len && du_now() >= w->t_next) {
                if (send(w->fd, w->tr + w->tr_sent, 1, MSG_NOSIGNAL | MSG_DONTWAIT) == 1)
                    w->tr_sent++;
                w->t_next = du_now() + 0.15;
            }
            long k = du_recv_some(w->fd, &w->out, 65536, 0);
            if (k == 0 || (k < 0 && k != -ETIMEDOUT))
                w->t_eof = du_now();
        }
        if (open == 0 || du_now() > end)
            return;
        du_sleep_ms(10);
    }
}

Test(daemon, malformed_input_never_disturbs_a_good_client)
{
    size_t nf, ng;
    float *x = input_floats(&nf);
    du_buf l = {0};
    listener(&l, "fr", "framed", "w", NULL);
    listener(&l, "rw", "raw", "w", "block = 64");
    listener(&l, "rk", "raw", "k", "block = 64");
    listener(&l, "lg", "line", "g", "block = 1");
    char *conf = conf_text("workers = 2\nmetrics = 127.0.0.1:0\nmax_message = 4096\n"
                           "handshake_timeout = 0.5\nidle_timeout = 1.5\nnonfinite = reject",
                           (char *)l.p);
    du_daemon d;
    du_daemon_start(&d, conf, 0);
    int pf = du_daemon_port(&d, "fr"), pr = du_daemon_port(&d, "rw"), pk = du_daemon_port(&d, "rk"),
        pl = du_daemon_port(&d, "lg"), mport = du_daemon_metrics_port(&d);

    /* the good client: INPUT twice through wide16 */
    float *x2 = malloc(nf * 8);
    memcpy(x2, x, nf * 4);
    memcpy(x2 + nf, x, nf * 4);
    cvd_model *mw = du_load_model(NAM_W);
    size_t nw2;
    float *rw2 = du_ref_stream(mw, 64, x2, 2 * nf, &nw2);
    good_client g = {.port = pr, .in = (uint8_t *)x2, .len = nf * 8};
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, good_client_main, &g), 0);

    /* the slow cases start now and are collected at the end */
    du_buf hello_big = {0}, hello_ok = {0};
    du_fr_hello(&hello_ok, CVD_FMT_F32LE, 0, 0, "", "");
    const uint8_t big_len[] = {0xe8, 0x03, 0x00, 0x00, CVD_FR_HELLO, 1, 0}; /* a 1000-byte HELLO */
    du_buf_add(&hello_big, big_len, sizeof big_len);
    watched ws[5] = {{.what = "framed, silent"},
                     {.what = "framed, HELLO one byte every 150 ms", .trickle = 1},
                     {.what = "raw, silent"},
                     {.what = "line, silent"},
                     {.what = "framed, silent after HELLO"}};
    int wports[5] = {pf, pf, pr, pl, pf};
    for (int i = 0; i < 5; i++) {
        ws[i].fd = du_connect(wports[i]);
        ws[i].t0 = du_now();
        du_nonblock(ws[i].fd, 1);
    }
    ws[1].tr = hello_big.p;
    ws[1].tr_len = hello_big.len;
    du_send_all(ws[4].fd, hello_ok.p, hello_ok.len);

    /* framed: each kind of bad message */
    du_buf m = {0};
    const uint8_t garbage[] = {5, 0, 0, 0, 99, 1, 2, 3, 4};
    du_buf_add(&m, garbage, sizeof garbage);
    expect_fr_error(pf, &m, CVD_FR_E_BAD_MESSAGE, NULL, "framed: unknown type 99");
    watch(ws, 5, 0);
    m.len = 0;
    const uint8_t zero_len[] = {0, 0, 0, 0, 1};
    du_buf_add(&m, zero_len, sizeof zero_len);
    expect_fr_error(pf, &m, CVD_FR_E_BAD_MESSAGE, NULL, "framed: length 0");
    watch(ws, 5, 0);
    m.len = 0;
    const uint8_t huge[] = {0, 0, 16, 0}; /* 1 MiB > max_message 4096; nothing follows */
    du_buf_add(&m, huge, sizeof huge);
    expect_fr_error(pf, &m, CVD_FR_E_TOO_LARGE, NULL, "framed: length over max_message");
    watch(ws, 5, 0);
    m.len = 0;
    du_fr_data(&m, 0, 0, CVD_FMT_F32LE, x, 4, 1);
    expect_fr_error(pf, &m, CVD_FR_E_BAD_MESSAGE, NULL, "framed: DATA before HELLO");
    watch(ws, 5, 0);
    m.len = 0;
    du_fr_hello(&m, CVD_FMT_F32LE, 0, 0, "nope", "");
    expect_fr_error(pf, &m, CVD_FR_E_UNKNOWN_MODEL, "nope", "framed: HELLO, unknown model");
    watch(ws, 5, 0);
    m.len = 0;
    du_fr_hello_v(&m, 2, CVD_ROLE_PROCESS, CVD_FMT_F32LE, 0, 0, 0, "", "");
    m.p[5] = 3; /* a version nobody speaks yet (the encoder refuses to write it) */
    expect_fr_error(pf, &m, CVD_FR_E_UNSUPPORTED_VERSION, "1, 2", "framed: HELLO version 3");
    watch(ws, 5, 0);
    m.len = 0;
    du_fr_hello(&m, CVD_FMT_F32LE, 5, 0, "w", "");
    expect_fr_error(pf, &m, CVD_FR_E_BAD_FORMAT, NULL, "framed: HELLO, 5 channels for 1");
    watch(ws, 5, 0);
    m.len = 0;
    /* 44100 for a 48000 model is resampled; 500 Hz is below the resampler's range */
    du_fr_hello_v(&m, 1, CVD_ROLE_PROCESS, CVD_FMT_F32LE, 500, 0, 0, "w", "");
    expect_fr_error(pf, &m, CVD_FR_E_BAD_FORMAT, NULL, "framed: HELLO, rate 500 for 48000");
    watch(ws, 5, 0);
    m.len = 0;
    du_fr_subscribe(&m, CVD_FMT_F32LE, "no-such-stream");
    expect_fr_error(pf, &m, CVD_FR_E_UNKNOWN_STREAM, NULL, "framed: subscribe, no such stream");
    watch(ws, 5, 0);
    m.len = 0;
    du_fr_hello(&m, CVD_FMT_F32LE, 0, 0, "", "");
    du_fr_hello(&m, CVD_FMT_F32LE, 0, 0, "", "");
    expect_fr_error(pf, &m, CVD_FR_E_BAD_MESSAGE, NULL, "framed: HELLO twice");
    watch(ws, 5, 0);
    m.len = 0;
    {
        float nanx[40];
        memcpy(nanx, x, sizeof nanx);
        nanx[30] = NAN;
        du_fr_hello(&m, CVD_FMT_F32LE, 0, 16, "", "");
        du_fr_data(&m, 0, 0, CVD_FMT_F32LE, nanx, 40, 1);
        du_fr_end(&m);
        expect_fr_error(pf, &m, CVD_FR_E_NONFINITE, NULL, "framed: a NaN sample");
        watch(ws, 5, 0);
        /* raw: the connection is closed (without our half-close) */
        du_buf o = exchange(pk, nanx, sizeof nanx, 0, 5, "raw: a NaN sample");
        cr_assert_leq(o.len, 30 * 4, "raw: output for frames after the NaN");
        du_buf_free(&o);
    }
    watch(ws, 5, 0);
    /* line: bad lines are answered and skipped, the stream goes on */
    {
        const char *in = "0.5,nan\n0.25,0.5\nabc,1\n1\n0.125,-0.5\n1,2,3\n1e39,0\n-0.5,0.75";
        du_buf o = exchange(pl, in, strlen(in), 1, 5, "line: bad lines");
        const char *t = (const char *)o.p;
        cr_assert(strstr(t, "!ERR nonfinite line 1 field 2"), "line: got\n%s", t);
        cr_assert(strstr(t, "!ERR bad_number line 3 field 1"), "line: got\n%s", t);
        cr_assert(strstr(t, "!ERR wrong_count line 4"), "line: got\n%s", t);
        cr_assert(strstr(t, "!ERR wrong_count line 6"), "line: got\n%s", t);
        cr_assert(strstr(t, "!ERR out_of_range line 7"), "line: got\n%s", t);
        cr_assert_eq(du_count(t, "!ERR"), 5, "line: got\n%s", t);
        /* the 3 good lines give 3 output frames, as convd-run computes them */
        const float good[] = {0.25f, 0.5f, 0.125f, -0.5f, -0.5f, 0.75f};
        cvd_model *mg = du_load_model(JSON_G);
        float *rg = du_ref_stream(mg, 1, good, 3, &ng);
        du_buf want = {0}, got = {0};
        du_lines(&want, rg, ng, 3);
        for (const char *p = t; *p;) {
            const char *e = strchr(p, '\n');
            size_t len = e ? (size_t)(e - p + 1) : strlen(p);
            if (strncmp(p, "!ERR", 4) != 0)
                du_buf_add(&got, p, len);
            p += len;
        }
        du_assert_bytes(got.p, got.len, want.p, want.len, "line: the good lines' output");
        du_buf_free(&want);
        du_buf_free(&got);
        free(rg);
        cvd_model_unref(mg);
        du_buf_free(&o);
    }
    watch(ws, 5, 0);
    /* connections that end in the middle of something: no answer needed, no crash */
    {
        du_buf s = {0};
        du_fr_hello(&s, CVD_FMT_F32LE, 0, 0, "", "");
        du_fr_data(&s, 0, 0, CVD_FMT_F32LE, x, 200, 1);
        for (int k = 0; k < 4; k++) {
            int fd = du_connect(k < 2 ? pf : pr);
            if (k < 2)
                du_send_all(fd, s.p, s.len - 300); /* cut inside the DATA */
            else
                du_send_all(fd, x, k == 2 ? 6 : 4096 + 2); /* cut inside a frame */
            du_sleep_ms(20);
            if (k % 2)
                du_close_rst(fd);
            else
                close(fd);
        }
        /* a reset right behind data the daemon has not processed yet */
        for (int k = 0; k < 8; k++) {
            int fd = du_connect(k % 2 ? pf : pr);
            if (k % 2)
                du_send_all(fd, s.p, s.len);
            else
                du_send_all(fd, x, nf * 4);
            du_close_rst(fd);
        }
        du_buf_free(&s);
    }

    /* the slow cases */
    watch(ws, 5, 5);
    for (int i = 0; i < 5; i++) {
        watched *w = &ws[i];
        double t = w->t_eof - w->t0;
        cr_assert_gt(w->t_eof, 0, "%s: still open after 5 s", w->what);
        if (i == 0 || i == 1) {
            du_fr_result r;
            du_fr_parse(w->out.p, w->out.len, &r);
            cr_assert_eq(r.error_code, CVD_FR_E_TIMEOUT, "%s: ERROR %d (%s), want 7 (timeout)",
                         w->what, r.error_code, r.error_text);
            du_fr_result_free(&r);
            cr_assert(t > 0.4 && t < 1.5,
                      "%s: closed after %.2f s; handshake_timeout is 0.5 s from the connection%s",
                      w->what, t,
                      i == 1 ? " (bytes trickling in must not restart it: a client that never "
                               "completes its HELLO would hold the connection forever)"
                             : "");
        } else {
            cr_assert(t > 1.3 && t < 3.0, "%s: closed after %.2f s; idle_timeout is 1.5 s", w->what,
                      t);
            if (i == 3)
                cr_assert(strstr((char *)w->out.p, "!ERR timeout"), "%s: got \"%s\"", w->what,
                          (char *)w->out.p);
            if (i == 4) {
                du_fr_result r;
                du_fr_parse(w->out.p, w->out.len, &r);
                cr_assert(r.accepted && r.error_code == CVD_FR_E_TIMEOUT,
                          "%s: ERROR %d (%s), want 7", w->what, r.error_code, r.error_text);
                du_fr_result_free(&r);
            }
        }
        close(w->fd);
        du_buf_free(&w->out);
    }

    pthread_join(th, NULL);
    cr_assert(g.ok, "the good client: %s", g.why);
    du_assert_bytes(g.out.p, g.out.len, rw2, nw2 * 4, "the good client, beside the bad ones");
    cr_assert(du_daemon_alive(&d), "the daemon died");
    /* a finished connection is counted when its transport closes, after the client's own
     * close just above: the worker may not have seen those yet when /metrics answers */
    du_metric_wait(mport, "convd_disconnects_total{reason=\"handshake_timeout\"}", 2, 10);
    du_metric_wait(mport, "convd_disconnects_total{reason=\"idle_timeout\"}", 3, 10);
    du_metric_wait(mport, "convd_disconnects_total{reason=\"malformed\"}", 10, 10);
    char *t = du_metrics(mport);
    cr_assert_gt(du_metric(t, "convd_dropped_frames_total{reason=\"malformed\"}"), 0, "%s", t);
    cr_assert_geq(du_metric(t, "convd_dropped_frames_total{reason=\"nonfinite\"}"), 2, "%s", t);
    cr_assert_geq(du_metric(t, "convd_disconnects_total{reason=\"handshake_timeout\"}"), 2, "%s",
                  t);
    cr_assert_geq(du_metric(t, "convd_disconnects_total{reason=\"idle_timeout\"}"), 3, "%s", t);
    cr_assert_geq(du_metric(t, "convd_disconnects_total{reason=\"malformed\"}"), 10, "%s", t);
    free(t);
    du_daemon_finish(&d, 10);
    cvd_model_unref(mw);
    free(rw2);
    free(x2);
    free(x);
    du_buf_free(&g.out);
    du_buf_free(&m);
    du_buf_free(&hello_big);
    du_buf_free(&hello_ok);
    free(conf);
    du_buf_free(&l);
}

Test(daemon, max_clients_refuses_extra_clients)
{
    size_t nf, nw;
    float *x = input_floats(&nf);
    float *rw = ref_convd_run(NAM_W, x, nf, 64, &nw, "w64");
    du_buf l = {0};
    listener(&l, "rw", "raw", "w", "block = 64");
    listener(&l, "fr", "framed", "w", NULL);
    listener(&l, "lg", "line", "g", "block = 1");
    char *conf = conf_text("workers = 2\nmetrics = 127.0.0.1:0\nmax_clients = 3", (char *)l.p);
    du_daemon d;
    du_daemon_start(&d, conf, 0);
    int pr = du_daemon_port(&d, "rw"), pf = du_daemon_port(&d, "fr"), pl = du_daemon_port(&d, "lg"),
        mport = du_daemon_metrics_port(&d);

    /* three clients, each past its first block */
    int fds[3];
    du_buf outs[3] = {{0}};
    for (int i = 0; i < 3; i++) {
        fds[i] = du_connect(pr);
        du_send_all(fds[i], x, 1024);
        cr_assert_eq(du_recv_atleast(fds[i], &outs[i], 1024, 10), 1, "client %d: no output", i);
    }
    /* the fourth, fifth and sixth are refused */
    du_buf hello = {0};
    du_fr_hello(&hello, CVD_FMT_F32LE, 0, 0, "", "");
    expect_fr_error(pf, &hello, CVD_FR_E_BUSY, NULL, "framed, over max_clients");
    du_buf o = exchange(pr, NULL, 0, 0, 5, "raw, over max_clients");
    cr_assert_eq(o.len, 0, "raw, over max_clients: %zu bytes", o.len);
    du_buf_free(&o);
    o = exchange(pl, "0.5,0.5\n", 8, 0, 5, "line, over max_clients");
    cr_assert(strncmp((char *)o.p, "!ERR busy", 9) == 0, "line, over max_clients: \"%s\"",
              (char *)o.p);
    du_buf_free(&o);
    cr_assert_geq(du_metric_wait(mport, "convd_disconnects_total{reason=\"max_clients\"}", 3, 3),
                  3);

    /* the first three finish exactly; then there is room again */
    for (int i = 0; i < 3; i++) {
        du_peer p;
        memset(&p, 0, sizeof p);
        p.fd = fds[i];
        p.in = (uint8_t *)x;
        p.in_len = nf * 4;
        p.sent = 1024;
        p.shut_wr = 1;
        p.max_write = p.max_read = 4096;
        p.out = outs[i];
        cvd_rng_seed(&p.rng, seed_for(i));
        cr_assert_eq(du_drive(&p, 1, 20), 0);
        peer_check_done(&p, "a client within max_clients");
        du_assert_bytes(p.out.p, p.out.len, rw, nw * 4, "a client within max_clients");
        du_buf_free(&p.out);
        close(fds[i]);
    }
    du_sleep_ms(100);
    du_buf s = {0};
    cvd_rng rng;
    cvd_rng_seed(&rng, 3);
    du_fr_stream(&s, &rng, CVD_FMT_F32LE, 0, 1, 64, "", x, nf, 777);
    du_fr_result r;
    framed_roundtrip(pf, &s, seed_for(3), 4096, 4096, &r, "framed, once there is room");
    cr_assert(r.accepted && r.ended && r.error_code == 0, "ERROR %d %s", r.error_code,
              r.error_text);
    du_assert_bytes(r.data.p, r.data.len, rw, nw * 4, "framed, once there is room");
    du_fr_result_free(&r);
    du_daemon_finish(&d, 10);
    du_buf_free(&s);
    du_buf_free(&hello);
    free(rw);
    free(x);
    free(conf);
    du_buf_free(&l);
}

/* ---- SIGHUP: reload ------------------------------------------------------------------------- */

/* Rewrites the daemon's config file (the daemon re-reads the same path). */
static void rewrite_conf(du_daemon *d, const char *text)
{
    char tmp[DU_PATH + 8];
    snprintf(tmp, sizeof tmp, "%s.new", d->conf);
    du_write_file(tmp, text, strlen(text));
    cr_assert_eq(rename(tmp, d->conf), 0, "rename: %s", strerror(errno));
}

/* SIGHUP, then wait for convd_reloads_total{result} to reach want. */
static void reload(du_daemon *d, int mport, const char *result, double want)
{
    char series[96];
    snprintf(series, sizeof series, "convd_reloads_total{result=\"%s\"}", result);
    kill(d->pid, SIGHUP);
    double v = du_metric_wait(mport, series, want, 15);
    char *log = du_daemon_log(d);
    cr_assert_geq(v, want, "after SIGHUP, %s is %g (want %g); the log:\n%s", series, v, want, log);
    free(log);
}

/* A raw stream of INPUT, whole: the output. */
static du_buf raw_stream(int port, const float *x, size_t bytes, uint64_t seed, const char *what)
{
    du_peer p;
    peer_open(&p, port, x, bytes, seed, 4096, 4096);
    cr_assert_eq(du_drive(&p, 1, 30), 0, "%s: not done in 30 s", what);
    peer_check_done(&p, what);
    close(p.fd);
    return p.out;
}

Test(daemon, sighup_reload_good_and_bad_configs)
{
    size_t nf, nw, nn, nk;
    float *x = input_floats(&nf);
    float *rw = ref_convd_run(NAM_W, x, nf, 64, &nw, "w64");
    float *rn = ref_convd_run(NAM_N, x, nf, 32, &nn, "n32");
    float *rk = ref_convd_run(NAM_K, x, nf, 64, &nk, "k64");
    du_buf l1 = {0}, l2 = {0};
    listener(&l1, "r", "raw", "w", "block = 64");
    listener(&l1, "f", "framed", "w", NULL);
    listener(&l2, "r", "raw", "n", "block = 32");
    listener(&l2, "f", "framed", "n", NULL);
    listener(&l2, "r2", "raw", "k", NULL);
    const char *srv = "workers = 2\nmetrics = 127.0.0.1:0";
    char *c1 = conf_text(srv, (char *)l1.p), *c2 = conf_text(srv, (char *)l2.p);
    du_daemon d;
    du_daemon_start(&d, c1, 0);
    int pr = du_daemon_port(&d, "r"), pf = du_daemon_port(&d, "f"),
        mport = du_daemon_metrics_port(&d);

    /* a stream started before the reload: half its input now */
    int c1fd = du_connect(pr);
    du_buf c1out = {0};
    du_send_all(c1fd, x, nf * 2);
    cr_assert_eq(du_recv_atleast(c1fd, &c1out, nf * 2, 10), 1);

    /* a good new config: another model and block for r, a new listener r2 */
    size_t log_before = 0;
    free(du_read_file(d.log, &log_before));
    rewrite_conf(&d, c2);
    reload(&d, mport, "ok", 1);
    int pr_after = du_daemon_port_from(&d, "r", log_before);
    cr_assert_eq(pr_after, pr, "listener r moved from port %d to %d on reload", pr, pr_after);
    int pr2 = du_daemon_port_from(&d, "r2", log_before);

    /* the old stream keeps its model to its end */
    du_peer p;
    memset(&p, 0, sizeof p);
    p.fd = c1fd;
    p.in = (uint8_t *)x;
    p.in_len = nf * 4;
    p.sent = nf * 2;
    p.shut_wr = 1;
    p.max_write = p.max_read = 4096;
    p.out = c1out;
    cvd_rng_seed(&p.rng, 1);
    cr_assert_eq(du_drive(&p, 1, 30), 0);
    peer_check_done(&p, "the stream begun before the reload");
    du_assert_bytes(p.out.p, p.out.len, rw, nw * 4,
                    "the stream begun before the reload (must keep wide16, block 64)");
    du_buf_free(&p.out);
    close(c1fd);
    /* new connections get the new configuration */
    du_buf o = raw_stream(pr, x, nf * 4, seed_for(2), "r after the reload");
    du_assert_bytes(o.p, o.len, rn, nn * 4, "r after the reload (nano_tanh, block 32)");
    du_buf_free(&o);
    o = raw_stream(pr2, x, nf * 4, seed_for(3), "r2, added by the reload");
    du_assert_bytes(o.p, o.len, rk, nk * 4, "r2, added by the reload");
    du_buf_free(&o);
    du_buf s = {0};
    du_fr_hello(&s, CVD_FMT_F32LE, 0, 0, "", "");
    du_fr_end(&s);
    du_fr_result r;
    framed_roundtrip(pf, &s, 1, 8192, 8192, &r, "framed after the reload");
    cr_assert(r.accepted && strcmp(r.acc_model, "n") == 0, "framed after the reload: model %s",
              r.acc_model);
    du_fr_result_free(&r);

    /* bad configs: a syntax error, then a model that does not load; the running one stays */
    char *bad1 = conf_text("workers = 2\nmetrics = 127.0.0.1:0\nqueue_limit = lots", (char *)l2.p);
    rewrite_conf(&d, bad1);
    free(du_read_file(d.log, &log_before));
    reload(&d, mport, "failed", 1);
    char *log;
    du_daemon_wait_log(&d, "queue_limit", log_before, 5, &log);
    cr_assert(strstr(log + log_before, "reload failed"), "the log after a bad reload:\n%s",
              log + log_before);
    free(log);
    du_buf bad2 = {0};
    du_buf_printf(&bad2,
                  "[server]\nworkers = 2\nmetrics = 127.0.0.1:0\n[model n]\npath = %s\n"
                  "[listen r]\naddress = 127.0.0.1:0\nprotocol = raw\nmodel = n\n",
                  du_src(BAD_NAM));
    rewrite_conf(&d, (char *)bad2.p);
    reload(&d, mport, "failed", 2);
    cr_assert_eq(du_metric_now(mport, "convd_reloads_total{result=\"ok\"}"), 1);
    o = raw_stream(pr, x, nf * 4, seed_for(4), "r after two failed reloads");
    du_assert_bytes(o.p, o.len, rn, nn * 4, "r after two failed reloads (still nano_tanh)");
    du_buf_free(&o);
    o = raw_stream(pr2, x, nf * 4, seed_for(5), "r2 after two failed reloads");
    du_assert_bytes(o.p, o.len, rk, nk * 4, "r2 after two failed reloads");
    du_buf_free(&o);
    /* and back to the first: r2 goes away */
    rewrite_conf(&d, c1);
    reload(&d, mport, "ok", 2);
    o = raw_stream(pr, x, nf * 4, seed_for(6), "r after reloading the first config");
    du_assert_bytes(o.p, o.len, rw, nw * 4, "r after reloading the first config");
    du_buf_free(&o);
    du_sleep_ms(100);
    int fd = du_try_connect(pr2, 0, 0);
    if (fd >= 0) { /* a worker may still close its copy of the socket: no stream either way */
        du_buf dead = {0};
        shutdown(fd, SHUT_WR);
        int rc = du_recv_eof(fd, &dead, 5);
        cr_assert(rc == 1 || rc == -ECONNRESET);
        cr_assert_eq(dead.len, 0, "r2 still serves after the reload removed it");
        close(fd);
    }
    du_daemon_finish(&d, 10);
    du_buf_free(&s);
    du_buf_free(&bad2);
    free(bad1);
    free(c1);
    free(c2);
    free(rw);
    free(rn);
    free(rk);
    free(x);
    du_buf_free(&l1);
    du_buf_free(&l2);
}

/* ---- SIGTERM: flush and exit -------------------------------------------------------------- */

Test(daemon, sigterm_flushes_streams_in_flight)
{
    size_t nf;
    float *x = input_floats(&nf);
    const size_t K = 1000; /* frames sent before SIGTERM: not a multiple of the blocks */
    cvd_model *mg = du_load_model(JSON_G);
    size_t n16, n7;
    float *r16 = du_ref_stream(mg, 16, x, K, &n16), *r7 = du_ref_stream(mg, 7, x, K, &n7);
    du_buf l = {0};
    listener(&l, "rg", "raw", "g", "block = 16");
    listener(&l, "fr", "framed", "g", NULL);
    listener(&l, "lg", "line", "g", "block = 7");
    char *conf = conf_text("workers = 2\nshutdown_timeout = 4", (char *)l.p);
    du_daemon d;
    du_daemon_start(&d, conf, 0);
    int pr = du_daemon_port(&d, "rg"), pf = du_daemon_port(&d, "fr"), pl = du_daemon_port(&d, "lg");

    /* raw, framed, line: K frames each, no end; wait for the output of the whole blocks */
    int rfd = du_connect(pr), ffd = du_connect(pf), lfd = du_connect(pl), hfd = du_connect(pf);
    du_buf rout = {0}, fout = {0}, lout = {0}, hout = {0}, fin = {0}, lin = {0};
    du_send_all(rfd, x, K * 8);
    du_fr_hello(&fin, CVD_FMT_F32LE, 2, 16, "", "");
    du_fr_data(&fin, 0, 0, CVD_FMT_F32LE, x, K, 2);
    du_send_all(ffd, fin.p, fin.len);
    line_input(&lin, x, K, 2, 0, 0);
    du_send_all(lfd, lin.p, lin.len);
    cr_assert_eq(du_recv_atleast(rfd, &rout, (K / 16 * 16 - 2) * 12, 10), 1, "raw: no output");
    cr_assert_eq(du_recv_atleast(lfd, &lout, 1, 10), 1, "line: no output");
    cr_assert_eq(du_recv_atleast(ffd, &fout, 1, 10), 1, "framed: no output");
    du_sleep_ms(300); /* everything sent has been read by the daemon */

    double t0 = du_now();
    kill(d.pid, SIGTERM);
    int rc = du_recv_eof(rfd, &rout, 6);
    cr_assert_eq(rc, 1, "raw: no EOF after SIGTERM (%s)", strerror(-rc));
    du_assert_bytes(rout.p, rout.len, r16, n16 * 12, "raw after SIGTERM: the flushed stream");
    rc = du_recv_eof(ffd, &fout, 6);
    cr_assert_eq(rc, 1, "framed: no EOF after SIGTERM (%s)", strerror(-rc));
    du_fr_result r;
    du_fr_parse(fout.p, fout.len, &r);
    /* the client sent no END: its stream was cut, and the server says so (ERROR 11, not END)
     * after the output of everything it had received */
    cr_assert(!r.bad && r.accepted && !r.ended && r.error_code == CVD_FR_E_SHUTTING_DOWN,
              "framed after SIGTERM: %s, END %d, ERROR %d %s", r.bad_msg, r.ended, r.error_code,
              r.error_text);
    du_assert_bytes(r.data.p, r.data.len, r16, n16 * 12, "framed after SIGTERM");
    du_fr_result_free(&r);
    rc = du_recv_eof(lfd, &lout, 6);
    cr_assert_eq(rc, 1, "line: no EOF after SIGTERM (%s)", strerror(-rc));
    du_buf want = {0};
    du_lines(&want, r7, n7, 3);
    /* line: the output, then one line that says the stream was cut */
    const char *cutline = "!ERR shutting_down the server stopped: the stream was cut before "
                          "line 1001\n";
    du_buf_add(&want, cutline, strlen(cutline));
    du_assert_bytes(lout.p, lout.len, want.p, want.len, "line after SIGTERM");
    rc = du_recv_eof(hfd, &hout, 6);
    cr_assert_eq(rc, 1, "framed before HELLO: no EOF after SIGTERM (%s)", strerror(-rc));
    du_fr_parse(hout.p, hout.len, &r);
    cr_assert_eq(r.error_code, CVD_FR_E_SHUTTING_DOWN, "framed before HELLO: ERROR %d (%s)",
                 r.error_code, r.error_text);
    du_fr_result_free(&r);
    int st;
    cr_assert(du_wait_pid(d.pid, 6, &st), "convd still running 6 s after SIGTERM");
    d.running = 0;
    d.status = st;
    double took = du_now() - t0;
    char *log = du_daemon_log(&d);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "exit status 0x%x; the log:\n%s", st, log);
    cr_assert_lt(took, 4.0, "took %.2f s, beyond shutdown_timeout = 4", took);
    cr_assert_null(du_sanitizer_report(log), "%s", log);
    free(log);
    close(rfd);
    close(ffd);
    close(lfd);
    close(hfd);
    cvd_model_unref(mg);
    free(r16);
    free(r7);
    du_buf_free(&want);
    du_buf_free(&rout);
    du_buf_free(&fout);
    du_buf_free(&lout);
    du_buf_free(&hout);
    du_buf_free(&fin);
    du_buf_free(&lin);
    free(x);
    free(conf);
    du_buf_free(&l);
}

/* Input the daemon has read but not yet processed when SIGTERM comes is part of the stream:
 * one DATA of many frames, processed a block at a time and held up by a client that is slow
 * to read its output. */
Test(daemon, sigterm_processes_input_already_received)
{
    size_t nf;
    float *x = input_floats(&nf);
    du_buf l = {0};
    listener(&l, "fr", "framed", "k", NULL);
    char *conf = conf_text("workers = 1\nqueue_limit = 4096\nshutdown_timeout = 20", (char *)l.p);
    du_daemon d;
    du_daemon_start(&d, conf, 0);
    const size_t frames = 200000; /* one DATA of 800 KB; output 25 bytes a frame (blocks of 1) */
    float *sig = malloc(frames * 4);
    long_signal(sig, frames, x, nf);
    cvd_model *mk = du_load_model(NAM_K);
    size_t nk;
    float *rk = du_ref_stream(mk, 1, sig, frames, &nk);
    du_buf s = {0}, out = {0};
    du_fr_hello(&s, CVD_FMT_F32LE, 1, 1, "", "");
    du_fr_data(&s, 0, 0, CVD_FMT_F32LE, sig, frames, 1);
    int fd = du_connect_buf(du_daemon_port(&d, "fr"), 4096, 0);
    du_send_all(fd, s.p, s.len);
    int unacked = 1;
    for (int i = 0; i < 100 && unacked > 0; i++) { /* the daemon's kernel has all of it */
        ioctl(fd, SIOCOUTQ, &unacked);
        du_sleep_ms(10);
    }
    du_sleep_ms(300); /* and the daemon has the whole DATA: it is processing it */
    kill(d.pid, SIGTERM);
    du_sleep_ms(100);
    int rc = du_recv_eof(fd, &out, 20);
    cr_assert_eq(rc, 1, "no EOF within shutdown_timeout (%s)", strerror(-rc));
    du_fr_result r;
    du_fr_parse(out.p, out.len, &r);
    /* no END came from the client: the output of everything received, then ERROR 11 */
    cr_assert(!r.bad && !r.ended && r.error_code == CVD_FR_E_SHUTTING_DOWN, "%s, END %d, ERROR %d",
              r.bad_msg, r.ended, r.error_code);
    cr_assert_eq(r.data.len, nk * 4,
                 "after SIGTERM the daemon sent the output of %zu frames, but it had "
                 "received all %zu (one DATA message): input already received was dropped",
                 r.data.len / 4, frames);
    du_assert_bytes(r.data.p, r.data.len, rk, nk * 4, "the output after SIGTERM");
    du_fr_result_free(&r);
    close(fd);
    int st;
    cr_assert(du_wait_pid(d.pid, 10, &st), "convd still running");
    d.running = 0;
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "exit status 0x%x", st);
    du_daemon_check_log(&d);
    cvd_model_unref(mk);
    free(rk);
    free(sig);
    du_buf_free(&s);
    du_buf_free(&out);
    free(x);
    free(conf);
    du_buf_free(&l);
}

/* ---- systemd: sd_notify and the watchdog ---------------------------------------------------- */

typedef struct notes {
    int fd;
    char path[DU_PATH];
    du_buf all; /* every datagram, each followed by "\n--\n" */
} notes;

static void notes_open(notes *n)
{
    struct sockaddr_un a;
    memset(n, 0, sizeof *n);
    snprintf(n->path, sizeof n->path, "%s", du_tmp("notify.sock"));
    n->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    cr_assert_geq(n->fd, 0);
    memset(&a, 0, sizeof a);
    a.sun_family = AF_UNIX;
    cr_assert_lt(strlen(n->path), sizeof a.sun_path, "temp path too long for a socket");
    memcpy(a.sun_path, n->path, strlen(n->path) + 1);
    cr_assert_eq(bind(n->fd, (struct sockaddr *)&a, sizeof a), 0, "bind %s: %s", n->path,
                 strerror(errno));
    du_buf_reserve(&n->all, 0);
}

/* Collects datagrams until one contains `what` (after offset *from); returns its offset. */
static size_t notes_wait(notes *n, const char *what, size_t from, double timeout_s)
{
    double end = du_now() + timeout_s;
    for (;;) {
        const char *hit = strstr((char *)n->all.p + from, what);
        if (hit)
            return (size_t)(hit - (char *)n->all.p);
        double left = end - du_now();
        cr_assert_gt(left, 0, "no \"%s\" from sd_notify within %.1f s; received:\n%s", what,
                     timeout_s, (char *)n->all.p);
        struct pollfd pf = {n->fd, POLLIN, 0};
        if (poll(&pf, 1, (int)(left * 1000) + 1) > 0) {
            char buf[4096];
            ssize_t k = recv(n->fd, buf, sizeof buf, 0);
            if (k > 0) {
                du_buf_add(&n->all, buf, (size_t)k);
                du_buf_add(&n->all, "\n--\n", 4);
            }
        }
    }
}

Test(daemon, sd_notify_ready_reloading_stopping_watchdog)
{
    notes n;
    notes_open(&n);
    char env_sock[DU_PATH + 32];
    snprintf(env_sock, sizeof env_sock, "NOTIFY_SOCKET=%s", n.path);
    const char *env[] = {env_sock, "WATCHDOG_USEC=200000", NULL};
    const char *env_pid[] = {"WATCHDOG_PID", NULL};
    du_buf l = {0};
    listener(&l, "rw", "raw", "w", NULL);
    char *conf = conf_text("workers = 2", (char *)l.p);
    du_daemon_opts o = {.env_add = env, .env_pid = env_pid, .fd3 = -1};
    du_daemon d;
    du_daemon_start_opts(&d, "convd.conf", conf, &o);

    size_t at = notes_wait(&n, "READY=1", 0, 15);
    /* ready means listening: a connection works right away */
    int port = du_daemon_port(&d, "rw");
    int fd = du_connect(port);
    du_buf out = {0};
    size_t nf;
    float *x = input_floats(&nf);
    du_send_all(fd, x, 256);
    cr_assert_eq(du_recv_atleast(fd, &out, 256, 10), 1);
    close(fd);
    notes_wait(&n, "STATUS=", 0, 5);
    /* the watchdog: every WATCHDOG_USEC / 2 */
    double t0 = du_now();
    size_t w = at;
    for (int i = 0; i < 4; i++)
        w = notes_wait(&n, "WATCHDOG=1", w + 1, 2);
    cr_assert_lt(du_now() - t0, 1.5, "4 WATCHDOG=1 took %.2f s (WATCHDOG_USEC=200000)",
                 du_now() - t0);

    /* SIGHUP: RELOADING=1 with MONOTONIC_USEC, then READY=1 again */
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    unsigned long long before =
        (unsigned long long)ts.tv_sec * 1000000ull + (unsigned long long)ts.tv_nsec / 1000;
    size_t mark = n.all.len;
    kill(d.pid, SIGHUP);
    size_t rl = notes_wait(&n, "RELOADING=1", mark, 10);
    const char *mono = strstr((char *)n.all.p + rl, "MONOTONIC_USEC=");
    const char *sep = strstr((char *)n.all.p + rl, "\n--\n");
    cr_assert(mono && (sep == NULL || mono < sep),
              "RELOADING=1 without MONOTONIC_USEC in the same "
              "message:\n%s",
              (char *)n.all.p + rl);
    unsigned long long usec = strtoull(mono + 15, NULL, 10);
    cr_assert(usec >= before && usec < before + 5000000ull,
              "MONOTONIC_USEC=%llu, CLOCK_MONOTONIC was %llu us before SIGHUP", usec, before);
    notes_wait(&n, "READY=1", rl, 10);

    /* SIGTERM: STOPPING=1 */
    mark = n.all.len;
    kill(d.pid, SIGTERM);
    notes_wait(&n, "STOPPING=1", mark, 10);
    int st;
    cr_assert(du_wait_pid(d.pid, 10, &st));
    d.running = 0;
    d.status = st;
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "exit status 0x%x", st);
    du_daemon_check_log(&d);
    close(n.fd);
    du_buf_free(&n.all);
    du_buf_free(&out);
    free(x);
    free(conf);
    du_buf_free(&l);
}

/* A windowed model (a Keras classifier: windows of 24 frames, 3 values each) with `hop = 5`
 * in its [model] section: the raw listener sends what convd-run --hop 5 writes. */
Test(daemon, windowed_model_hop_from_its_model_section)
{
    const char *model = "tests/data/keras/k2_seq_classifier.h5";
    const size_t nf = 1000;
    float *x = malloc(sizeof(float) * nf);
    cr_assert_not_null(x);
    cvd_rng rng;
    cvd_rng_seed(&rng, seed_for(7));
    for (size_t i = 0; i < nf; i++)
        x[i] = (float)tu_randint(&rng, 2001) / 1000.0f - 1.0f;
    const char *ip = du_tmp("cls.in.f32"), *op = du_tmp("cls.out.f32");
    du_write_file(ip, x, nf * sizeof(float));
    const char *argv[] = {du_prog("convd-run"),
                          du_src(model),
                          ip,
                          op,
                          "--block",
                          "16",
                          "--hop",
                          "5",
                          "--quiet",
                          NULL};
    du_proc r = du_run(argv, 60);
    cr_assert_eq(r.status, 0, "convd-run --hop 5: exit %d: %s", r.status, r.err);
    du_proc_free(&r);
    size_t nref;
    float *ref = du_read_f32(op, &nref);
    cr_assert_eq(nref, ((nf - 24) / 5 + 1) * 3, "convd-run --hop 5 gave %zu values", nref);

    du_buf c = {0};
    du_buf_printf(&c, "[server]\nworkers = 1\n[model cls]\npath = %s\nhop = 5\n", du_src(model));
    listener(&c, "r", "raw", "cls", "block = 16");
    du_daemon d;
    du_daemon_start(&d, (char *)c.p, 0);
    du_peer p;
    peer_open(&p, du_daemon_port(&d, "r"), x, nf * 4, seed_for(8), 100, 1000);
    cr_assert_eq(du_drive(&p, 1, 30), 0, "the stream is still open after 30 s");
    peer_check_done(&p, "windowed, hop 5");
    du_assert_bytes(p.out.p, p.out.len, ref, nref * 4, "windowed model, hop = 5");
    du_buf_free(&p.out);
    close(p.fd);
    du_daemon_finish(&d, 10);
    free(ref);
    free(x);
    du_buf_free(&c);
}

/* ---- convd --check -------------------------------------------------------------------------- */

static du_proc run_check(const char *file, const char *text)
{
    const char *path = du_tmp(file);
    if (text)
        du_write_file(path, text, strlen(text));
    const char *argv[] = {du_prog("convd"), "--check", "-c", path, NULL};
    return du_run(argv, 60);
}

Test(daemon, check_reports_good_and_bad_files)
{
    /* a good file, with an address in use (nothing is bound by --check) */
    int ls = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a;
    socklen_t al = sizeof a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(bind(ls, (struct sockaddr *)&a, sizeof a), 0);
    cr_assert_eq(listen(ls, 1), 0);
    getsockname(ls, (struct sockaddr *)&a, &al);
    du_buf l = {0};
    du_buf_printf(&l, "[listen busy]\naddress = 127.0.0.1:%d\nprotocol = raw\nmodel = w\n",
                  ntohs(a.sin_port));
    listener(&l, "fr", "framed", NULL, NULL);
    char *good = conf_text("workers = 2", (char *)l.p);
    du_proc p = run_check("good.conf", good);
    cr_assert_eq(p.status, 0, "--check of a good file: exit %d\n%s%s", p.status, p.out, p.err);
    cr_assert(strstr(p.out, "OK") && strstr(p.out, "4 models") && strstr(p.out, "2 listeners"),
              "--check summary:\n%s", p.out);
    cr_assert(strstr(p.out, "model g") && strstr(p.out, "latency 2"), "--check summary:\n%s",
              p.out);
    du_proc_free(&p);
    close(ls);

    /* a directive out of range: FILE:LINE: directive: reason */
    const char *bad = "[server]\nworkers = 2\nqueue_limit = 12\n[model w]\npath = x.nam\n"
                      "[listen a]\naddress = 127.0.0.1:0\nprotocol = raw\nmodel = w\n";
    p = run_check("bad.conf", bad);
    cr_assert_eq(p.status, 1, "--check of a bad file: exit %d (want 1)\n%s", p.status, p.err);
    char want[DU_PATH + 64];
    snprintf(want, sizeof want, "%s:3: queue_limit: ", du_tmp("bad.conf"));
    cr_assert(strstr(p.err, want), "--check of a bad file: want \"%s...\", got:\n%s", want, p.err);
    du_proc_free(&p);

    /* a model that does not load, and one that is not there */
    const char *models[] = {du_src(BAD_NAM), "/nonexistent/convd/missing.nam"};
    for (int i = 0; i < 2; i++) {
        du_buf t = {0};
        du_buf_printf(&t,
                      "[server]\nworkers = 1\n\n[model m]\npath = %s\n[listen a]\n"
                      "address = 127.0.0.1:0\nprotocol = raw\nmodel = m\n",
                      models[i]);
        p = run_check("badmodel.conf", (char *)t.p);
        cr_assert_eq(p.status, 1, "--check, model %s: exit %d (want 1)\n%s", models[i], p.status,
                     p.err);
        /* the line of `path =` (5) */
        snprintf(want, sizeof want, "%s:5: path: ", du_tmp("badmodel.conf"));
        cr_assert(strstr(p.err, want), "--check, model %s: want \"%s...\", got:\n%s", models[i],
                  want, p.err);
        cr_assert(strstr(p.err, models[i]), "--check: the message does not name the model file");
        du_proc_free(&p);
        du_buf_free(&t);
    }
    /* a hop for a model that streams frame by frame: the hop line (6) */
    {
        du_buf t = {0};
        du_buf_printf(&t,
                      "[server]\nworkers = 1\n\n[model m]\npath = %s\nhop = 4\n[listen a]\n"
                      "address = 127.0.0.1:0\nprotocol = raw\nmodel = m\n",
                      du_src(NAM_K));
        p = run_check("hop.conf", (char *)t.p);
        snprintf(want, sizeof want, "%s:6: hop: model 'm' streams frame by frame",
                 du_tmp("hop.conf"));
        cr_assert(p.status == 1 && strstr(p.err, want),
                  "--check: exit %d, want \"%s...\", got:\n%s", p.status, want, p.err);
        du_proc_free(&p);
        du_buf_free(&t);
    }
    /* no such file */
    p = run_check("absent.conf", NULL);
    cr_assert_neq(p.status, 0);
    cr_assert(strstr(p.err, "absent.conf"), "%s", p.err);
    du_proc_free(&p);
    free(good);
    du_buf_free(&l);
}

/* Without -c and without /etc/convd/convd.conf, convd says so as a warning, naming the file it
 * looked for, and that it serves the built-in demo configuration; --builtin-config asked for
 * it and gets no warning. (--check: the same start, and nothing is bound.) */
Test(daemon, no_config_file_warns_about_the_demo_configuration)
{
    if (access("/etc/convd/convd.conf", F_OK) == 0)
        cr_skip_test("/etc/convd/convd.conf exists on this machine: convd would read it");
    const char *argv[] = {du_prog("convd"), "--check", NULL};
    du_proc p = du_run(argv, 60);
    cr_assert_eq(p.status, 0, "convd --check without a file: exit %d\n%s", p.status, p.err);
    cr_assert(strstr(p.err, "convd: warning: "), "no warning:\n%s", p.err);
    cr_assert(strstr(p.err, "/etc/convd/convd.conf"), "the file looked for is not named:\n%s",
              p.err);
    cr_assert(strstr(p.err, "No such file or directory"), "why it was not read:\n%s", p.err);
    cr_assert(strstr(p.err, "built-in demo configuration"), "what it serves instead:\n%s", p.err);
    du_proc_free(&p);

    const char *argv2[] = {du_prog("convd"), "--check", "--builtin-config", NULL};
    p = du_run(argv2, 60);
    cr_assert_eq(p.status, 0, "convd --check --builtin-config: exit %d\n%s", p.status, p.err);
    cr_assert(!strstr(p.err, "warning"), "a warning though the demo was asked for:\n%s", p.err);
    du_proc_free(&p);
}

/* ---- socket activation ---------------------------------------------------------------------- */

Test(daemon, socket_activation_uses_the_passed_socket)
{
    size_t nf, nw;
    float *x = input_floats(&nf);
    float *rw = ref_convd_run(NAM_W, x, nf, 64, &nw, "w64");
    int ls = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a;
    socklen_t al = sizeof a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(bind(ls, (struct sockaddr *)&a, sizeof a), 0);
    cr_assert_eq(listen(ls, 16), 0);
    getsockname(ls, (struct sockaddr *)&a, &al);
    int port = ntohs(a.sin_port);
    du_buf l = {0};
    listener(&l, "act", "raw", "w", "block = 64"); /* its address (port 0) is not used */
    listener(&l, "other", "raw", "w", NULL);
    char *conf = conf_text("workers = 2", (char *)l.p);
    const char *env[] = {"LISTEN_FDS=1", "LISTEN_FDNAMES=act", NULL};
    const char *env_pid[] = {"LISTEN_PID", NULL};
    du_daemon_opts o = {.env_add = env, .env_pid = env_pid, .fd3 = ls};
    du_daemon d;
    du_daemon_start_opts(&d, "convd.conf", conf, &o);
    close(ls);
    cr_assert_eq(du_daemon_port(&d, "act"), port, "listener act is not on the passed socket");
    char *log;
    du_daemon_wait_log(&d, "socket activation: fd 3 named 'act'", 0, 5, &log);
    free(log);
    du_buf out = raw_stream(port, x, nf * 4, seed_for(1), "the activated socket");
    du_assert_bytes(out.p, out.len, rw, nw * 4, "the activated socket");
    du_buf_free(&out);
    out = raw_stream(du_daemon_port(&d, "other"), x, nf * 4, seed_for(2), "another listener");
    du_assert_bytes(out.p, out.len, rw, nw * 4, "another listener");
    du_buf_free(&out);
    du_daemon_finish(&d, 10);
    free(rw);
    free(x);
    free(conf);
    du_buf_free(&l);
}

/* ---- clients that reset their connection with data still unprocessed ------------------------- */

Test(daemon, clients_resetting_mid_stream_do_not_crash_the_daemon)
{
    size_t nf, nw;
    float *x = input_floats(&nf);
    float *rw = ref_convd_run(NAM_W, x, nf, 64, &nw, "w64");
    du_buf l = {0};
    listener(&l, "rw", "raw", "w", "block = 64");
    listener(&l, "lg", "line", "g", "block = 1");
    char *conf = conf_text("workers = 2", (char *)l.p);
    du_daemon d;
    du_daemon_start(&d, conf, 0);
    int pr = du_daemon_port(&d, "rw"), pl = du_daemon_port(&d, "lg");
    du_buf lines = {0};
    line_input(&lines, x, nf / 2, 2, 0, 0);
    for (int i = 0; i < 60; i++) {
        int fd = du_connect(i % 3 == 2 ? pl : pr);
        if (i % 3 == 2)
            du_send_all(fd, lines.p, lines.len);
        else
            du_send_all(fd, x, i % 3 ? nf * 4 : 1000 + (size_t)i);
        du_close_rst(fd);
        if (i % 10 == 9) { /* a good stream now and then */
            du_buf o = raw_stream(pr, x, nf * 4, seed_for(i), "a good client among resets");
            du_assert_bytes(o.p, o.len, rw, nw * 4, "a good client among resets");
            du_buf_free(&o);
        }
    }
    cr_assert(du_daemon_alive(&d), "the daemon died");
    du_daemon_finish(&d, 10);
    du_buf_free(&lines);
    free(rw);
    free(x);
    free(conf);
    du_buf_free(&l);
}
