/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_limits.c - the daemon's bounds against clients that take too much (docs/SECURITY.md,
 * "Limits"): connections per source address, output a client never reads (write_timeout),
 * clients that dribble bytes without completing a frame or a message (idle_timeout counts
 * progress), blocks past max_block, streams past max_stream_memory, connections that cost
 * nothing until they send, a process out of file descriptors, and the truth about SIGTERM
 * (framed: ERROR shutting_down after the output; convd-cat keeps it and says it was cut).
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <dirent.h>
#include <poll.h>
#include <sys/resource.h>

#include "convd_client.h"
#include "daemon_util.h"
#include "net_util.h"
#include "testutil.h"

TestSuite(limits, .init = nu_suite_init, .fini = nu_suite_fini);

/* A framed HELLO (version 1, no token) on fd and the server's first answer: 0 ACCEPT, else
 * the ERROR code (text in *text). */
static int hello_on(int fd, uint32_t block, char *text, size_t cap)
{
    du_buf m = {0}, out = {0};
    du_fr_hello_v(&m, 1, CVD_ROLE_PROCESS, CVD_FMT_F32LE, 0, 0, block, "", "");
    du_send_all(fd, m.p, m.len);
    double end = du_now() + 10;
    du_fr_result r;
    memset(&r, 0, sizeof r);
    for (;;) {
        du_recv_some(fd, &out, 65536, 0.2);
        du_fr_parse(out.p, out.len, &r);
        if (r.accepted || r.error_code || du_now() > end)
            break;
        du_fr_result_free(&r);
    }
    int rc = r.accepted ? 0 : r.error_code ? r.error_code : -1;
    if (text)
        snprintf(text, cap, "%s", r.error_text);
    du_fr_result_free(&r);
    du_buf_free(&m);
    du_buf_free(&out);
    return rc;
}

/* ---- per address ------------------------------------------------------------------------- */

Test(limits, max_clients_per_address)
{
    du_buf l = {0};
    nu_listener(&l, "fr", "framed", NULL);
    char *conf = nu_conf_text("max_clients_per_address = 2", (char *)l.p);
    du_daemon d;
    du_daemon_start(&d, conf, 2);
    const int pf = du_daemon_port(&d, "fr"), mp = du_daemon_metrics_port(&d);
    char text[1100];
    int a = nu_connect_ok("127.0.0.1", pf), b = nu_connect_ok("127.0.0.1", pf);
    cr_assert_eq(hello_on(a, 64, text, sizeof text), 0, "%s", text);
    cr_assert_eq(hello_on(b, 64, text, sizeof text), 0, "%s", text);
    int c = nu_connect_ok("127.0.0.1", pf);
    cr_assert_eq(hello_on(c, 64, text, sizeof text), CVD_FR_E_BUSY, "a third from 127.0.0.1");
    cr_assert(strstr(text, "max_clients_per_address"), "%s", text);
    close(c);
    /* another address has its own count */
    int e = nu_connect_ok("127.0.0.2", pf);
    cr_assert_eq(hello_on(e, 64, text, sizeof text), 0, "127.0.0.2: %s", text);
    close(e);
    cr_assert_geq(
        du_metric_wait(mp, "convd_disconnects_total{reason=\"max_clients_per_address\"}", 1, 5), 1);
    /* closing gives the slot back */
    close(a);
    double end = du_now() + 5;
    int ok = 0;
    while (!ok && du_now() < end) {
        du_sleep_ms(50);
        c = nu_connect_ok("127.0.0.1", pf);
        ok = hello_on(c, 64, text, sizeof text) == 0;
        close(c);
    }
    cr_assert(ok, "the slot of a closed connection was not given back");
    close(b);
    du_daemon_finish(&d, 10);
    du_buf_free(&l);
    free(conf);
}

/* ---- timeouts ------------------------------------------------------------------------------ */

/* A raw client on port with a tiny receive buffer that sends n floats and never reads. */
static int never_reader(int port, size_t n, double limit)
{
    float *x = calloc(n, sizeof(float));
    cr_assert_not_null(x);
    int fd = du_connect_buf(port, 4096, 0);
    du_nonblock(fd, 1);
    double t0 = du_now();
    size_t off = 0;
    while (du_now() - t0 < limit && off < n * 4) {
        ssize_t k = send(fd, (char *)x + off, n * 4 - off, MSG_NOSIGNAL);
        if (k > 0)
            off += (size_t)k;
        else if (k < 0 && errno != EAGAIN)
            break; /* the server closed */
        else
            du_sleep_ms(20);
    }
    free(x);
    return fd;
}

/* 1 if the client sees its connection reset within `limit` s, without reading. */
static int sees_reset(int fd, double limit)
{
    struct pollfd pf = {.fd = fd, .events = 0};
    double t0 = du_now();
    while (du_now() - t0 < limit && !(pf.revents & (POLLHUP | POLLERR)))
        poll(&pf, 1, 100);
    int soerr = 0;
    socklen_t sl = sizeof soerr;
    getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl);
    return (pf.revents & (POLLHUP | POLLERR)) && soerr == ECONNRESET;
}

Test(limits, write_timeout_closes_a_client_that_never_reads)
{
    du_buf l = {0};
    nu_listener(&l, "raw", "raw", NULL);
    char *conf = nu_conf_text("write_timeout = 1\nqueue_limit = 1048576", (char *)l.p);
    du_daemon d;
    du_daemon_start(&d, conf, 1);
    const int pr = du_daemon_port(&d, "raw"), mp = du_daemon_metrics_port(&d);
    const char *metric = "convd_disconnects_total{reason=\"write_timeout\"}";

    /* 4 MB in, never read: the output passes queue_limit, the input stops being read */
    double t0 = du_now();
    int fd = never_reader(pr, 1 << 20, 3);
    double v = du_metric_wait(mp, metric, 1, 8);
    cr_assert_geq(v, 1, "the client that never reads was not closed by write_timeout");
    cr_assert_geq(du_now() - t0, 0.9, "closed before write_timeout");
    cr_assert(sees_reset(fd, 5), "the client did not see the close after write_timeout");
    close(fd);

    /* 2 MB in, which the server reads to the end (the output stays under queue_limit), then
     * neither sending nor reading: the close must reach the client as a reset. A FIN would
     * wait behind output the client never takes: it would not see the close, and the
     * server's kernel would hold the orphaned socket and that output for minutes */
    fd = never_reader(pr, 512 * 1024, 5);
    cr_assert_geq(du_metric_wait(mp, metric, 2, 10), 2,
                  "the client that never reads was not closed by write_timeout");
    cr_assert(sees_reset(fd, 5), "a client that never reads did not see the close after "
                                 "write_timeout (no reset)");
    close(fd);
    du_daemon_finish(&d, 10);
    du_buf_free(&l);
    free(conf);
}

/* One byte every `gap` seconds; 1 if the server closed the connection within `limit` s. */
static int dribble_closed(int fd, const char *bytes, size_t n, double gap, double limit)
{
    double t0 = du_now();
    size_t i = 0;
    du_nonblock(fd, 1);
    while (du_now() - t0 < limit) {
        if (send(fd, bytes + (i % n), 1, MSG_NOSIGNAL) < 0 && errno != EAGAIN)
            return 1;
        i++;
        double until = du_now() + gap;
        while (du_now() < until) {
            char b[4096];
            ssize_t k = recv(fd, b, sizeof b, 0);
            if (k == 0 || (k < 0 && errno != EAGAIN))
                return 1;
            du_sleep_ms(10);
        }
    }
    return 0;
}

Test(limits, idle_timeout_counts_progress_not_bytes)
{
    du_buf l = {0};
    nu_listener(&l, "raw", "raw", NULL);
    nu_listener(&l, "line", "line", NULL);
    nu_listener(&l, "fr", "framed", NULL);
    char *conf = nu_conf_text("idle_timeout = 1", (char *)l.p);
    du_daemon d;
    du_daemon_start(&d, conf, 2);
    const int mp = du_daemon_metrics_port(&d);
    /* raw: a byte every 0.3 s, a frame every 1.2 s: no frame within idle_timeout */
    int fd = du_connect(du_daemon_port(&d, "raw"));
    const float half = 0.5f;
    cr_assert(dribble_closed(fd, (const char *)&half, 4, 0.3, 6), "raw dribbler kept for 6 s");
    close(fd);
    /* line: digits without a newline */
    fd = du_connect(du_daemon_port(&d, "line"));
    cr_assert(dribble_closed(fd, "123456789", 9, 0.2, 6), "line dribbler kept for 6 s");
    close(fd);
    /* framed: a HELLO, then a DATA message a byte at a time */
    fd = du_connect(du_daemon_port(&d, "fr"));
    char text[1100];
    cr_assert_eq(hello_on(fd, 64, text, sizeof text), 0, "%s", text);
    du_buf m = {0};
    float x[64] = {0};
    du_fr_data(&m, 0, 0, CVD_FMT_F32LE, x, 64, 1);
    cr_assert(dribble_closed(fd, (const char *)m.p, m.len, 0.2, 6), "framed dribbler kept");
    close(fd);
    cr_assert_geq(du_metric_wait(mp, "convd_disconnects_total{reason=\"idle_timeout\"}", 3, 5), 3);

    /* a slow client that completes a frame every 0.4 s stays, and gets its output */
    fd = du_connect(du_daemon_port(&d, "raw"));
    float y[8];
    for (int i = 0; i < 8; i++) {
        y[i] = 0.1f * (float)i;
        du_send_all(fd, &y[i], 4);
        du_sleep_ms(400);
    }
    shutdown(fd, SHUT_WR);
    du_buf out = {0};
    cr_assert_eq(du_recv_eof(fd, &out, 10), 1);
    cr_assert_eq(out.len, 8 * 4, "the slow client's stream was cut (%zu bytes)", out.len);
    close(fd);
    du_buf_free(&out);
    du_buf_free(&m);
    du_daemon_finish(&d, 10);
    du_buf_free(&l);
    free(conf);
}

/* ---- blocks and memory ---------------------------------------------------------------------- */

Test(limits, max_block_bounds_what_hello_may_ask)
{
    du_buf l = {0};
    nu_listener(&l, "dflt", "framed", NULL);
    nu_listener(&l, "small", "framed", "max_block = 100");
    char *conf = nu_conf_text(NULL, (char *)l.p);
    du_daemon d;
    du_daemon_start(&d, conf, 1);
    char text[1100];
    struct {
        const char *lst;
        uint32_t block;
        int want;
    } cases[] = {{"dflt", 4096, 0},
                 {"dflt", 4097, CVD_FR_E_BAD_FORMAT},
                 {"dflt", 65536, CVD_FR_E_BAD_FORMAT},
                 {"small", 100, 0},
                 {"small", 101, CVD_FR_E_BAD_FORMAT},
                 {"small", 0, 0}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int fd = du_connect(du_daemon_port(&d, cases[i].lst));
        int rc = hello_on(fd, cases[i].block, text, sizeof text);
        cr_assert_eq(rc, cases[i].want, "%s, block %u: %d (%s)", cases[i].lst, cases[i].block, rc,
                     text);
        if (rc)
            cr_assert(strstr(text, "max_block"), "%s", text);
        close(fd);
    }
    cr_assert_geq(du_metric_wait(du_daemon_metrics_port(&d),
                                 "convd_disconnects_total{reason=\"max_block\"}", 3, 5),
                  3);
    du_daemon_finish(&d, 10);
    du_buf_free(&l);
    free(conf);
}

Test(limits, max_stream_memory_refuses_streams_past_it)
{
    du_buf l = {0};
    nu_listener(&l, "fr", "framed", NULL);
    nu_listener(&l, "raw", "raw", NULL);
    nu_listener(&l, "line", "line", NULL);
    /* each stream's figure is about 2.1 MiB here (queue_limit and max_message 1 MiB each) */
    char *conf = nu_conf_text("max_stream_memory = 5242880", (char *)l.p);
    du_daemon d;
    du_daemon_start(&d, conf, 1);
    const int pf = du_daemon_port(&d, "fr"), mp = du_daemon_metrics_port(&d);
    char text[1100];
    int fds[8], n = 0, refused = 0;
    for (; n < 8 && !refused; n++) {
        fds[n] = du_connect(pf);
        int rc = hello_on(fds[n], 64, text, sizeof text);
        if (rc != 0) {
            cr_assert_eq(rc, CVD_FR_E_BUSY, "%s", text);
            cr_assert(strstr(text, "max_stream_memory"), "%s", text);
            refused = 1;
        }
    }
    cr_assert(refused, "8 streams fit in 5 MiB");
    cr_assert_geq(n, 2, "not even one stream fit");
    double used = du_metric_now(mp, "convd_stream_memory_bytes");
    cr_assert(used > 0 && used <= 5242880, "convd_stream_memory_bytes = %g", used);
    /* raw is closed without output, line says it */
    int fd = du_connect(du_daemon_port(&d, "raw"));
    float x[64] = {0};
    du_send_all(fd, x, sizeof x);
    shutdown(fd, SHUT_WR);
    du_buf out = {0};
    du_recv_eof(fd, &out, 10);
    cr_assert_eq(out.len, 0, "raw past max_stream_memory got %zu bytes", out.len);
    close(fd);
    fd = du_connect(du_daemon_port(&d, "line"));
    du_send_all(fd, "0.5\n", 4);
    shutdown(fd, SHUT_WR);
    du_recv_eof(fd, &out, 10);
    cr_assert(strstr((char *)out.p, "!ERR busy") && strstr((char *)out.p, "max_stream_memory"),
              "line: %s", (char *)out.p);
    close(fd);
    du_buf_free(&out);
    cr_assert_geq(du_metric_wait(mp, "convd_disconnects_total{reason=\"max_stream_memory\"}", 3, 5),
                  3);
    /* the streams close: their memory is given back, and a new stream fits */
    for (int i = 0; i < n; i++)
        close(fds[i]);
    double end = du_now() + 5;
    while (du_metric_now(mp, "convd_stream_memory_bytes") > 0 && du_now() < end)
        du_sleep_ms(20);
    cr_assert_eq(du_metric_now(mp, "convd_stream_memory_bytes"), 0);
    fd = du_connect(pf);
    cr_assert_eq(hello_on(fd, 64, text, sizeof text), 0, "%s", text);
    close(fd);
    du_daemon_finish(&d, 10);
    du_buf_free(&l);
    free(conf);
}

/* Connections that send nothing cost no stream; a connect-close flood leaves a running stream
 * alone. */
Test(limits, accepting_costs_nothing_until_a_client_sends)
{
    du_buf l = {0};
    nu_listener(&l, "raw", "raw", "block = 4096");
    du_buf_printf(&l, "[listen big]\naddress = 127.0.0.1:0\nprotocol = raw\nmodel = w\n"
                      "block = 65536\n");
    char *conf = nu_conf_text("max_clients = 2000", (char *)l.p);
    du_daemon d;
    du_daemon_start(&d, conf, 2);
    const int pr = du_daemon_port(&d, "raw"), pb = du_daemon_port(&d, "big");
    const int mp = du_daemon_metrics_port(&d);
    /* settle, then 300 silent connections to a listener whose streams are big */
    du_sleep_ms(300);
    long rss0 = du_vmrss_kb(d.pid);
    int fds[300];
    for (int i = 0; i < 300; i++)
        fds[i] = du_connect(pb);
    cr_assert_geq(du_metric_wait(mp, "convd_clients", 300, 10), 300);
    long rss1 = du_vmrss_kb(d.pid);
    cr_assert_eq(du_metric_now(mp, "convd_stream_memory_bytes"), 0,
                 "silent connections hold stream memory");
    /* a stream at block 65536 of this model takes tens of MB: 300 of them would be GB */
    cr_assert_lt(rss1 - rss0, 64 * 1024, "300 silent connections took %ld KB", rss1 - rss0);
    for (int i = 0; i < 300; i++)
        close(fds[i]);

    /* a running stream beside a connect-close flood: its output is exact */
    size_t nf;
    float *x = du_read_f32(INPUT, &nf);
    cvd_model *m = du_load_model(NAM_K);
    size_t nr;
    float *ref = du_ref_stream(m, 4096, x, nf, &nr);
    int s = du_connect(pr);
    du_send_all(s, x, nf * 2); /* half now */
    for (int i = 0; i < 2000; i++) {
        int fd = du_try_connect(pb, 0, 0);
        if (fd >= 0)
            du_close_rst(fd);
    }
    du_send_all(s, (char *)x + nf * 2, nf * 2);
    shutdown(s, SHUT_WR);
    du_buf out = {0};
    cr_assert_eq(du_recv_eof(s, &out, 20), 1);
    du_assert_bytes(out.p, out.len, ref, nr * 4, "the stream beside the flood");
    close(s);
    double end = du_now() + 10;
    while (du_metric_now(mp, "convd_clients") > 0 && du_now() < end)
        du_sleep_ms(20);
    cr_assert_eq(du_metric_now(mp, "convd_clients"), 0, "connections of the flood are left");
    cr_assert_eq(du_metric_now(mp, "convd_stream_memory_bytes"), 0);
    du_buf_free(&out);
    cvd_model_unref(m);
    free(ref);
    free(x);
    du_daemon_finish(&d, 10);
    du_buf_free(&l);
    free(conf);
}

/* ---- file descriptors ------------------------------------------------------------------------ */

Test(limits, out_of_file_descriptors_is_logged_counted_and_survived)
{
    du_buf l = {0};
    nu_listener(&l, "raw", "raw", NULL);
    char *conf = nu_conf_text("max_clients = 1000", (char *)l.p);
    /* the daemon inherits a low limit */
    struct rlimit rl, old;
    cr_assert_eq(getrlimit(RLIMIT_NOFILE, &old), 0);
    rl = old;
    rl.rlim_cur = 64;
    cr_assert_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
    du_daemon d;
    du_daemon_start(&d, conf, 1);
    cr_assert_eq(setrlimit(RLIMIT_NOFILE, &old), 0);
    const int pr = du_daemon_port(&d, "raw"), mp = du_daemon_metrics_port(&d);
    /* more connections than it has descriptors for */
    int fds[120], n = 0;
    for (; n < 120; n++)
        fds[n] = du_connect(pr);
    char *log;
    du_daemon_wait_log(&d, "out of file descriptors", 0, 10, &log);
    cr_assert(strstr(log, "the limit is 64"), "%s", log);
    free(log);
    /* those it could not take were closed, not left hanging */
    int closed = 0;
    du_sleep_ms(300);
    for (int i = 0; i < n; i++) {
        struct pollfd p = {fds[i], POLLIN, 0};
        if (poll(&p, 1, 0) > 0) {
            char c;
            if (recv(fds[i], &c, 1, MSG_DONTWAIT) <= 0)
                closed++;
        }
    }
    cr_assert_gt(closed, 0, "no waiting client was closed: they hang in the backlog");
    for (int i = 0; i < n; i++)
        close(fds[i]);
    /* the metrics endpoint needs a descriptor too: wait until the daemon has closed its ends
     * of those connections (libuv resets a connection it accepts while out of them; slow
     * under the sanitizers) */
    for (int tries = 0; tries < 200; tries++) {
        char fdpath[64];
        int open_fds = 0;
        snprintf(fdpath, sizeof fdpath, "/proc/%d/fd", (int)d.pid);
        DIR *dir = opendir(fdpath);
        for (struct dirent *e; dir && (e = readdir(dir)) != NULL;)
            open_fds += e->d_name[0] != '.';
        if (dir)
            closedir(dir);
        if (open_fds < 48)
            break;
        du_sleep_ms(50);
    }
    double ex = du_metric_wait(mp, "convd_accept_fd_exhausted_total", 1, 10);
    cr_assert_geq(ex, 1, "convd_accept_fd_exhausted_total = %g", ex);
    /* one line a second at most, however many were closed */
    log = du_daemon_log(&d);
    cr_assert_leq(du_count(log, "out of file descriptors"), 3, "%s", log);
    free(log);
    /* descriptors free again: served */
    size_t nf;
    float *x = du_read_f32(INPUT, &nf);
    double end = du_now() + 5;
    du_buf out = {0};
    int ok = 0;
    while (!ok && du_now() < end) {
        int fd = du_connect(pr);
        du_send_all(fd, x, nf * 4);
        shutdown(fd, SHUT_WR);
        out.len = 0;
        ok = du_recv_eof(fd, &out, 10) == 1 && out.len == nf * 4;
        close(fd);
        if (!ok)
            du_sleep_ms(150);
    }
    cr_assert(ok, "not served once descriptors were free again");
    du_buf_free(&out);
    free(x);
    du_daemon_finish(&d, 10);
    du_buf_free(&l);
    free(conf);
}

/* ---- SIGTERM --------------------------------------------------------------------------------- */

Test(limits, sigterm_cuts_a_framed_stream_and_convd_cat_keeps_what_came)
{
    du_buf l = {0};
    du_buf_printf(&l, "[listen fr]\naddress = 127.0.0.1:0\nprotocol = framed\nmodel = w\n");
    char *conf = nu_conf_text("shutdown_timeout = 20\nqueue_limit = 65536", (char *)l.p);
    du_daemon d;
    du_daemon_start(&d, conf, 1);
    /* a long input: 4M frames, several seconds through this model on this machine */
    size_t nf;
    float *x4 = du_read_f32(INPUT, &nf);
    const size_t frames = 4u << 20;
    float *x = malloc(frames * 4);
    cr_assert_not_null(x);
    for (size_t i = 0; i < frames; i++)
        x[i] = x4[i % nf] * (float)(1.0 - (double)i / (double)frames);
    const char *in = du_tmp("long.f32"), *outp = du_tmp("cut.f32");
    du_write_file(in, x, frames * 4);
    char port[16];
    snprintf(port, sizeof port, "%d", du_daemon_port(&d, "fr"));
    const char *argv[] = {du_prog("convd-cat"), "-p", port, "-b", "64", in, outp, NULL};
    const char *errp = du_tmp("cat.err");
    du_spawn_opts so = {.argv = argv, .err_path = errp, .fd3 = -1};
    pid_t cat = du_spawn(&so);
    /* once output flows, stop the daemon */
    double end = du_now() + 20;
    struct stat st;
    while ((stat(outp, &st) != 0 || st.st_size < 4096) && du_now() < end)
        du_sleep_ms(10);
    kill(d.pid, SIGTERM);
    int status;
    cr_assert(du_wait_pid(cat, 30, &status), "convd-cat still running");
    char *err = du_read_file(errp, NULL);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 3,
              "convd-cat exit status 0x%x, want 3 (cut); it said:\n%s", status, err);
    cr_assert(strstr(err, "the stream was cut") && strstr(err, "shutting_down"), "%s", err);
    /* what it kept is exactly the start of the whole output */
    size_t n_out;
    float *got = du_read_f32(outp, &n_out);
    cr_assert_gt(n_out, 0);
    cr_assert_lt(n_out, frames, "the whole stream came: nothing was cut");
    cvd_model *m = du_load_model(NAM_W);
    size_t nr;
    float *ref = du_ref_stream(m, 64, x, frames, &nr);
    du_assert_bytes(got, n_out * 4, ref, n_out * 4, "the kept output");
    int ds;
    cr_assert(du_wait_pid(d.pid, 30, &ds), "convd still running");
    d.running = 0;
    cr_assert(WIFEXITED(ds) && WEXITSTATUS(ds) == 0, "convd exit 0x%x", ds);
    free(err);
    free(got);
    free(ref);
    cvd_model_unref(m);
    free(x);
    free(x4);
    du_buf_free(&l);
    free(conf);
}
