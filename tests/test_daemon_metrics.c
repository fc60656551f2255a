/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_daemon_metrics.c - the daemon's GET /metrics parsed: convd_build_info, the process_*
 * families, and listener and stream series kept apart by `kind` (a [listen x] and a stream
 * published as "x" are two series).
 */
#include <criterion/criterion.h>

#include "daemon_util.h"
#include "testutil.h"

#define NAM_W "tests/data/nam/wide16_tanh.nam" /* 1 -> 1 channel, latency 0 */

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

TestSuite(daemon_metrics, .init = suite_init, .fini = suite_fini);

/* Every sample line of the page: "name{labels} value" or "name value", each family declared by
 * HELP and TYPE before its samples; returns the number of samples. */
static int check_page(const char *t)
{
    char fam[128] = "";
    int samples = 0;
    for (const char *p = t; *p;) {
        const char *e = strchr(p, '\n');
        cr_assert_not_null(e, "the page does not end with a line end");
        size_t n = (size_t)(e - p);
        if (n > 7 && strncmp(p, "# HELP ", 7) == 0) {
            const char *sp = memchr(p + 7, ' ', n - 7);
            cr_assert_not_null(sp, "%.*s", (int)n, p);
            snprintf(fam, sizeof fam, "%.*s", (int)(sp - p - 7), p + 7);
        } else if (n > 7 && strncmp(p, "# TYPE ", 7) == 0) {
            cr_assert(strncmp(p + 7, fam, strlen(fam)) == 0, "TYPE without its HELP: %.*s", (int)n,
                      p);
        } else {
            size_t k = strlen(fam);
            cr_assert(k > 0 && strncmp(p, fam, k) == 0, "a sample outside its family (%s): %.*s",
                      fam, (int)n, p);
            const char *sp = p + n;
            while (sp > p && sp[-1] != ' ')
                sp--;
            char *end;
            strtod(sp, &end);
            cr_assert(end == e && sp > p, "not a value: %.*s", (int)n, p);
            samples++;
        }
        p = e + 1;
    }
    return samples;
}

Test(daemon_metrics, build_info_process_and_kinds)
{
    du_buf c = {0};
    du_buf_printf(&c,
                  "[server]\nworkers = 1\nmetrics = 127.0.0.1:0\n[model w]\npath = %s\n"
                  "[listen x]\naddress = 127.0.0.1:0\nprotocol = line\nmodel = w\n"
                  "[listen fr]\naddress = 127.0.0.1:0\nprotocol = framed\nmodel = w\n",
                  du_src(NAM_W));
    du_daemon d;
    du_daemon_start(&d, (char *)c.p, 0);
    const int mport = du_daemon_metrics_port(&d);

    /* 5 frames through listener x; 3 through a framed client publishing stream "x" */
    int fd = du_connect(du_daemon_port(&d, "x"));
    du_send_all(fd, "0.1\n0.2\n0.3\n0.4\n0.5\n", 20);
    shutdown(fd, SHUT_WR);
    du_buf got = {0};
    cr_assert_eq(du_recv_eof(fd, &got, 10), 1);
    close(fd);
    int fd2 = du_connect(du_daemon_port(&d, "fr"));
    du_buf msg = {0};
    const float x[3] = {0.1f, -0.2f, 0.3f};
    du_fr_hello(&msg, CVD_FMT_F32LE, 0, 0, "", "x");
    du_fr_data(&msg, 0, 0, CVD_FMT_F32LE, x, 3, 1);
    du_fr_end(&msg);
    du_send_all(fd2, msg.p, msg.len);
    du_buf got2 = {0};
    cr_assert_eq(du_recv_eof(fd2, &got2, 10), 1);
    close(fd2);

    cr_assert_eq(du_metric_wait(
                     mport, "convd_stream_frames_in_total{stream=\"x\",kind=\"listener\"}", 5, 10),
                 5);
    cr_assert_eq(
        du_metric_wait(mport, "convd_stream_frames_in_total{stream=\"x\",kind=\"stream\"}", 3, 10),
        3);
    char *t = du_metrics(mport);
    check_page(t);
    cr_expect_eq(du_metric(t, "convd_stream_frames_out_total{stream=\"x\",kind=\"listener\"}"), 5);
    cr_expect_eq(du_metric(t, "convd_stream_frames_out_total{stream=\"x\",kind=\"stream\"}"), 3);
    cr_expect_eq(du_metric(t, "convd_frames_in_total"), 8);

    /* the version is convd --version's */
    const char *argv[] = {du_prog("convd"), "--version", NULL};
    du_proc p = du_run(argv, 30);
    cr_assert_eq(p.status, 0);
    char version[64] = "";
    cr_assert_eq(sscanf(p.out, "convd %63s", version), 1, "convd --version: %s", p.out);
    du_proc_free(&p);
    char series[160];
    int found = 0;
    static const char *const isas[] = {"portable", "avx2", "avx512"};
    for (int i = 0; i < 3; i++) {
        snprintf(series, sizeof series, "convd_build_info{version=\"%s\",isa=\"%s\"}", version,
                 isas[i]);
        if (du_metric(t, series) == 1)
            found++;
    }
    cr_expect_eq(found, 1, "no convd_build_info{version=\"%s\",isa=...} 1 in:\n%s", version, t);

    /* the process_* families describe the daemon */
    cr_expect(strstr(t, "# TYPE process_cpu_seconds_total counter\n"));
    cr_expect(strstr(t, "# TYPE process_resident_memory_bytes gauge\n"));
    cr_expect(strstr(t, "# TYPE process_open_fds gauge\n"));
    cr_expect(strstr(t, "# TYPE process_start_time_seconds gauge\n"));
    double cpu = du_metric(t, "process_cpu_seconds_total");
    cr_expect(cpu >= 0 && cpu < 3600, "cpu %g s", cpu);
    double rss = du_metric(t, "process_resident_memory_bytes");
    long kb = du_vmrss_kb(d.pid);
    cr_expect(rss > 1e6 && kb > 0 && fabs(rss / 1024.0 - (double)kb) < 0.5 * (double)kb,
              "resident %g bytes, /proc says %ld kB", rss, kb);
    /* stdin/out/err, the log, the loop, 4 listening sockets at least */
    double fds = du_metric(t, "process_open_fds");
    cr_expect(fds >= 6 && fds < 10000, "open fds %g", fds);
    double start = du_metric(t, "process_start_time_seconds"), now = (double)time(NULL);
    cr_expect(start > now - 120 && start <= now + 1, "started at %.2f, now %.0f", start, now);
    free(t);
    du_daemon_finish(&d, 10);
    du_buf_free(&got);
    du_buf_free(&got2);
    du_buf_free(&msg);
    du_buf_free(&c);
}
