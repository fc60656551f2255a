/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_eager.c - replies as soon as they exist (a listener's `blocking`, docs/PROTOCOL.md,
 * "Blocks and replies"): on line and framed listeners (eager by default) the input that has
 * arrived runs at once, so a window's record or a frame's output comes back without more input
 * on a listener of `block = 64`; `blocking = fixed` (raw's default) runs whole blocks only; and
 * both give the same numbers, equal to the model's offline stream.
 *
 * Against the real daemon over loopback, as tests/test_daemon.c (helpers: daemon_util.h).
 */
#include <criterion/criterion.h>

#include "daemon_util.h"
#include "testutil.h"
#include "window7_model.h"

#define NAM_W "tests/data/nam/wide16_tanh.nam" /* 1 -> 1 channel, latency 0 */
#define INPUT "tests/data/nam/input_4k.f32"    /* 4096 floats in [-1, 1] */

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

TestSuite(eager, .init = suite_init, .fini = suite_fini);

static uint64_t seed_for(int k)
{
    return tu_seed() * 1000003u + (uint64_t)k;
}

/* Reads until `want` complete lines ("\n"-ended) are in out, or timeout_s passes: 1 or 0. */
static int recv_lines(int fd, du_buf *out, int want, double timeout_s)
{
    double end = du_now() + timeout_s;
    while (out->len == 0 || du_count((const char *)out->p, "\n") < want) {
        double left = end - du_now();
        if (left <= 0)
            return 0;
        long n = du_recv_some(fd, out, 65536, left);
        if (n == 0 || (n < 0 && n != -ETIMEDOUT))
            return 0;
    }
    return 1;
}

/* Reads the framed messages that arrive until `frames` output frames (ch channels) came or
 * timeout_s passed; returns the result parsed. */
static void recv_frames(int fd, du_buf *raw, size_t frames, int ch, double timeout_s,
                        du_fr_result *r)
{
    double end = du_now() + timeout_s;
    for (;;) {
        du_fr_parse(raw->p, raw->len, r);
        if (r->bad || r->data.len >= frames * (size_t)ch * sizeof(float))
            return;
        double left = end - du_now();
        if (left <= 0)
            return;
        du_fr_result_free(r);
        long n = du_recv_some(fd, raw, 65536, left);
        if (n == 0 || (n < 0 && n != -ETIMEDOUT)) {
            du_fr_parse(raw->p, raw->len, r);
            return;
        }
    }
}

/* A line listener of block 64 (eager by default) on the 7-frame windowed model: each window's
 * record comes back as soon as its 7th line is in, the connection still open and no more input
 * sent, equal to the record of the model's offline stream. */
Test(eager, window_record_arrives_without_more_input)
{
    const char *mp = du_tmp("window7.json");
    du_write_file(mp, cvd_test_window7_json, strlen(cvd_test_window7_json));
    cvd_model *m = du_load_model(mp);
    cr_assert_eq(cvd_model_latency(m), 6, "the model's window is not 7 frames");
    const int co = cvd_model_out_channels(m);
    cr_assert_eq(co, 3);
    float x[21];
    cvd_rng rng;
    cvd_rng_seed(&rng, seed_for(1));
    for (int i = 0; i < 21; i++)
        x[i] = (float)tu_randint(&rng, 2001) / 1000.0f - 1.0f;
    size_t nref = 0;
    float *ref = du_ref_stream(m, 64, x, 21, &nref);
    cr_assert_eq(nref, 3, "the offline stream gave %zu records", nref);

    du_buf c = {0};
    du_buf_printf(&c,
                  "[server]\nworkers = 1\n[model win]\npath = %s\n"
                  "[listen s]\naddress = 127.0.0.1:0\nprotocol = line\nmodel = win\nblock = 64\n",
                  mp);
    du_daemon d;
    du_daemon_start(&d, (char *)c.p, 0);
    int fd = du_connect(du_daemon_port(&d, "s"));
    du_buf got = {0};
    for (int w = 0; w < 3; w++) {
        du_buf in = {0}, want = {0};
        du_lines(&in, x + 7 * w, 7, 1);
        du_send_all(fd, in.p, in.len);
        cr_assert(recv_lines(fd, &got, w + 1, 10),
                  "window %d: no record 10 s after its 7th line (got \"%s\")", w,
                  got.p ? (char *)got.p : "");
        du_lines(&want, ref, (size_t)w + 1, co);
        cr_assert_eq(got.len, want.len, "after window %d: got \"%s\", want \"%s\"", w,
                     (char *)got.p, (char *)want.p);
        cr_assert(memcmp(got.p, want.p, want.len) == 0, "after window %d: got \"%s\", want \"%s\"",
                  w, (char *)got.p, (char *)want.p);
        du_buf_free(&in);
        du_buf_free(&want);
    }
    /* and 6 lines more make no record (nothing invented before the window is whole) */
    du_buf six = {0};
    du_lines(&six, x, 6, 1);
    du_send_all(fd, six.p, six.len);
    long n = du_recv_some(fd, &got, 65536, 0.3);
    cr_assert_eq(n, -ETIMEDOUT, "a record from 6 frames of a 7-frame window");
    close(fd);
    du_daemon_finish(&d, 10);
    du_buf_free(&six);
    du_buf_free(&got);
    du_buf_free(&c);
    free(ref);
    cvd_model_unref(m);
}

/* A framed session on a listener of block 64 (its default, eager): one frame in, its output
 * frame back, without END and without 63 more frames, frame after frame; the same over the line
 * protocol. */
Test(eager, single_frame_output_arrives_without_waiting)
{
    cvd_model *m = du_load_model(du_src(NAM_W));
    float x[8];
    cvd_rng rng;
    cvd_rng_seed(&rng, seed_for(2));
    for (int i = 0; i < 8; i++)
        x[i] = (float)tu_randint(&rng, 2001) / 1000.0f - 1.0f;
    size_t nref = 0;
    float *ref = du_ref_stream(m, 64, x, 8, &nref);
    cr_assert_eq(nref, 8);

    du_buf c = {0};
    du_buf_printf(&c,
                  "[server]\nworkers = 1\n[model w]\npath = %s\n"
                  "[listen fr]\naddress = 127.0.0.1:0\nprotocol = framed\nmodel = w\nblock = 64\n"
                  "[listen ln]\naddress = 127.0.0.1:0\nprotocol = line\nmodel = w\nblock = 64\n",
                  du_src(NAM_W));
    du_daemon d;
    du_daemon_start(&d, (char *)c.p, 0);

    int fd = du_connect(du_daemon_port(&d, "fr"));
    du_buf out = {0}, raw = {0};
    du_fr_hello(&out, CVD_FMT_F32LE, 0, 0, "", "");
    du_send_all(fd, out.p, out.len);
    for (int i = 0; i < 8; i++) {
        out.len = 0;
        du_fr_data(&out, (uint32_t)i, (uint64_t)i, CVD_FMT_F32LE, x + i, 1, 1);
        du_send_all(fd, out.p, out.len);
        du_fr_result r;
        recv_frames(fd, &raw, (size_t)i + 1, 1, 10, &r);
        cr_assert(!r.bad, "framed: %s", r.bad_msg);
        cr_assert(r.accepted, "framed: no ACCEPT");
        cr_assert_eq(r.acc.block, 64, "the listener's block is %u", r.acc.block);
        cr_assert_eq(r.data.len, (size_t)(i + 1) * sizeof(float),
                     "framed: frame %d sent, %zu output frames back within 10 s", i,
                     r.data.len / sizeof(float));
        cr_assert(memcmp(r.data.p, ref, r.data.len) == 0, "framed: frame %d differs", i);
        cr_assert(!r.ended);
        du_fr_result_free(&r);
    }
    close(fd);

    fd = du_connect(du_daemon_port(&d, "ln"));
    du_buf got = {0};
    for (int i = 0; i < 8; i++) {
        du_buf in = {0}, want = {0};
        du_lines(&in, x + i, 1, 1);
        du_send_all(fd, in.p, in.len);
        cr_assert(recv_lines(fd, &got, i + 1, 10), "line: frame %d: no output within 10 s", i);
        du_lines(&want, ref, (size_t)i + 1, 1);
        cr_assert(got.len == want.len && memcmp(got.p, want.p, want.len) == 0,
                  "line: got \"%s\", want \"%s\"", (char *)got.p, (char *)want.p);
        du_buf_free(&in);
        du_buf_free(&want);
    }
    close(fd);
    du_daemon_finish(&d, 10);
    du_buf_free(&got);
    du_buf_free(&out);
    du_buf_free(&raw);
    du_buf_free(&c);
    free(ref);
    cvd_model_unref(m);
}

/* Sends p in random pieces (1..max bytes) with pauses of 0-1 ms, so that the daemon sees the
 * input arrive in many reads and (eager) runs many partial blocks. */
static void send_trickle(int fd, const uint8_t *p, size_t n, size_t max, cvd_rng *rng)
{
    for (size_t pos = 0; pos < n;) {
        size_t k = 1 + (size_t)tu_randint(rng, (int)max);
        if (k > n - pos)
            k = n - pos;
        du_send_all(fd, p + pos, k);
        pos += k;
        if (tu_randint(rng, 2))
            du_sleep_ms(1);
    }
}

/* The length of the first n lines of text (all of it if it has fewer). */
static size_t prefix_lines(const uint8_t *p, size_t len, int n)
{
    size_t i = 0;
    for (int k = 0; k < n && i < len; k++) {
        const uint8_t *nl = memchr(p + i, '\n', len - i);
        i = nl ? (size_t)(nl - p) + 1 : len;
    }
    return i;
}

/* frames an eager line or raw listener is given first, alone, and whose output the client
 * waits for: a partial block however a loaded machine joins the trickle's pieces */
#define PRIME 5

/* blocking = eager and blocking = fixed give the same bytes on every protocol, equal to the
 * offline stream in blocks of 64; the metrics show the eager listeners really ran partial
 * blocks (more blocks than 4096 / 64) and the fixed ones whole blocks only (64). raw without
 * `blocking` is fixed, line and framed without it eager. */
Test(eager, eager_and_fixed_give_identical_numbers)
{
    size_t nf;
    float *x = du_read_f32(du_src(INPUT), &nf);
    cr_assert_eq(nf, 4096);
    cvd_model *m = du_load_model(du_src(NAM_W));
    size_t nref = 0;
    float *ref = du_ref_stream(m, 64, x, nf, &nref);
    cr_assert_eq(nref, nf);
    du_buf lines_in = {0}, lines_ref = {0};
    du_lines(&lines_in, x, nf, 1);
    du_lines(&lines_ref, ref, nref, 1);

    du_buf c = {0};
    du_buf_printf(&c, "[server]\nworkers = 1\nmetrics = 127.0.0.1:0\n[model w]\npath = %s\n",
                  du_src(NAM_W));
    static const struct {
        const char *name, *protocol, *blocking;
        int eager;
    } ls[] = {
        {"line_default", "line", NULL, 1},     {"line_fixed", "line", "fixed", 0},
        {"framed_default", "framed", NULL, 1}, {"framed_fixed", "framed", "fixed", 0},
        {"raw_default", "raw", NULL, 0},       {"raw_eager", "raw", "eager", 1},
    };
    const int nl = (int)(sizeof ls / sizeof ls[0]);
    for (int i = 0; i < nl; i++) {
        du_buf_printf(&c, "[listen %s]\naddress = 127.0.0.1:0\nprotocol = %s\nmodel = w\n",
                      ls[i].name, ls[i].protocol);
        if (ls[i].blocking)
            du_buf_printf(&c, "blocking = %s\n", ls[i].blocking);
    }
    du_daemon d;
    du_daemon_start(&d, (char *)c.p, 0);
    const int mport = du_daemon_metrics_port(&d);
    cvd_rng rng;
    cvd_rng_seed(&rng, seed_for(3));

    for (int i = 0; i < nl; i++) {
        int fd = du_connect(du_daemon_port(&d, ls[i].name));
        du_buf got = {0}, msg = {0};
        if (strcmp(ls[i].protocol, "line") == 0) {
            size_t sent = 0;
            if (ls[i].eager) { /* a partial block for sure, however the reads fall */
                sent = prefix_lines(lines_in.p, lines_in.len, PRIME);
                du_send_all(fd, lines_in.p, sent);
                cr_assert_eq(
                    du_recv_atleast(fd, &got, prefix_lines(lines_ref.p, lines_ref.len, PRIME), 30),
                    1, "%s: the first %d frames' output did not come alone", ls[i].name, PRIME);
            }
            send_trickle(fd, lines_in.p + sent, lines_in.len - sent, 600, &rng);
            shutdown(fd, SHUT_WR);
            cr_assert_eq(du_recv_eof(fd, &got, 30), 1, "%s: no end", ls[i].name);
            cr_assert(got.len == lines_ref.len && memcmp(got.p, lines_ref.p, got.len) == 0,
                      "%s: the output differs from the offline stream (%zu bytes, want %zu)",
                      ls[i].name, got.len, lines_ref.len);
        } else if (strcmp(ls[i].protocol, "raw") == 0) {
            size_t sent = 0;
            if (ls[i].eager) {
                sent = PRIME * sizeof(float);
                du_send_all(fd, x, sent);
                cr_assert_eq(du_recv_atleast(fd, &got, sent, 30), 1,
                             "%s: the first %d frames' output did not come alone", ls[i].name,
                             PRIME);
            }
            send_trickle(fd, (const uint8_t *)x + sent, nf * sizeof(float) - sent, 150, &rng);
            shutdown(fd, SHUT_WR);
            cr_assert_eq(du_recv_eof(fd, &got, 30), 1, "%s: no end", ls[i].name);
            du_assert_bytes(got.p, got.len, ref, nref * sizeof(float), "%s", ls[i].name);
        } else {
            du_fr_hello(&msg, CVD_FMT_F32LE, 0, 0, "", "");
            du_send_all(fd, msg.p, msg.len);
            uint32_t seq = 0;
            for (size_t pos = 0; pos < nf; seq++) {
                size_t k = 1 + (size_t)tu_randint(&rng, 40);
                if (k > nf - pos)
                    k = nf - pos;
                msg.len = 0;
                du_fr_data(&msg, seq, pos, CVD_FMT_F32LE, x + pos, k, 1);
                du_send_all(fd, msg.p, msg.len);
                pos += k;
                if (tu_randint(&rng, 2))
                    du_sleep_ms(1);
            }
            msg.len = 0;
            du_fr_end(&msg);
            du_send_all(fd, msg.p, msg.len);
            cr_assert_eq(du_recv_eof(fd, &got, 30), 1, "%s: no end", ls[i].name);
            du_fr_result r;
            du_fr_parse(got.p, got.len, &r);
            cr_assert(!r.bad && r.accepted && r.ended, "%s: %s", ls[i].name, r.bad_msg);
            du_assert_bytes(r.data.p, r.data.len, ref, nref * sizeof(float), "%s", ls[i].name);
            du_fr_result_free(&r);
        }
        close(fd);
        du_buf_free(&got);
        du_buf_free(&msg);

        char series[160];
        snprintf(series, sizeof series,
                 "convd_block_seconds_count{stream=\"%s\",kind=\"listener\"}", ls[i].name);
        double blocks = du_metric_now(mport, series);
        if (ls[i].eager)
            cr_assert_gt(blocks, 64, "%s: %g blocks: the input never ran in partial blocks",
                         ls[i].name, blocks);
        else
            cr_assert_eq(blocks, 64, "%s: %g blocks, not 4096 / 64", ls[i].name, blocks);
    }
    du_daemon_finish(&d, 10);
    du_buf_free(&c);
    du_buf_free(&lines_in);
    du_buf_free(&lines_ref);
    free(ref);
    free(x);
    cvd_model_unref(m);
}
