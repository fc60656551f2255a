/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_acceptor.c - server/acceptor.c on a loop of the test's own: a bounded number of accepts
 * per loop turn, and a process out of file descriptors (a lowered RLIMIT_NOFILE, every
 * descriptor taken): waiting clients are closed at once instead of hanging, counted, logged
 * once a second, and accepting resumes when descriptors are free again.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include "acceptor.h"
#include "daemon_util.h"
#include "log.h"
#include "metrics.h"

#define FD_METRIC "\nconvd_accept_fd_exhausted_total "

static uint64_t fd_metric(void)
{
    char *m = cvd_metrics_render();
    cr_assert_not_null(m);
    const char *h = strstr(m, FD_METRIC);
    cr_assert_not_null(h, "no convd_accept_fd_exhausted_total in:\n%s", m);
    uint64_t v = strtoull(h + strlen(FD_METRIC), NULL, 10);
    free(m);
    return v;
}

static void suite_init(void)
{
    du_tmp_make();
    du_deadline(60);
}

static void suite_fini(void)
{
    du_tmp_remove();
}

TestSuite(acceptor, .init = suite_init, .fini = suite_fini);

static int listen_socket(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    socklen_t al = sizeof a;
    cr_assert_geq(fd, 0);
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    cr_assert_eq(listen(fd, 1024), 0);
    getsockname(fd, (struct sockaddr *)&a, &al);
    *port = ntohs(a.sin_port);
    return fd;
}

static int client(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    cr_assert_geq(fd, 0, "socket: %s", strerror(errno));
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof a), 0, "connect: %s", strerror(errno));
    return fd;
}

typedef struct got {
    int n;
    int fds[512];
    char peer[64];
} got;

static void on_fd(void *ctx, int fd, const struct sockaddr *peer)
{
    got *g = ctx;
    cr_assert_lt(g->n, 512);
    cr_assert(fcntl(fd, F_GETFL) & O_NONBLOCK, "an accepted descriptor is not non-blocking");
    cr_assert(fcntl(fd, F_GETFD) & FD_CLOEXEC, "an accepted descriptor is not close-on-exec");
    inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)peer)->sin_addr, g->peer,
              sizeof g->peer);
    g->fds[g->n++] = fd;
}

Test(acceptor, a_connect_flood_is_taken_a_bounded_number_per_loop_turn)
{
    uv_loop_t loop;
    cr_assert_eq(uv_loop_init(&loop), 0);
    int port, lfd = listen_socket(&port);
    got g = {0};
    cvd_acceptor *a = NULL;
    cvd_err err = {0};
    cr_assert_eq(cvd_acceptor_start(&loop, lfd, "flood", on_fd, &g, &a, &err), 0, "%s", err.msg);
    enum { N = 200 };
    int cl[N];
    for (int i = 0; i < N; i++)
        cl[i] = client(port); /* in the backlog: the kernel completes the handshake */
    int turns = 0, before = 0;
    while (g.n < N && turns < 100) {
        uv_run(&loop, UV_RUN_ONCE);
        turns++;
        cr_assert_leq(g.n - before, CVD_ACCEPT_PER_TURN, "turn %d accepted %d", turns,
                      g.n - before);
        before = g.n;
    }
    cr_assert_eq(g.n, N, "accepted %d of %d in %d turns", g.n, N, turns);
    cr_assert_geq(turns, N / CVD_ACCEPT_PER_TURN);
    cr_assert_str_eq(g.peer, "127.0.0.1");
    for (int i = 0; i < N; i++) {
        close(cl[i]);
        close(g.fds[i]);
    }
    cvd_acceptor_stop(a);
    uv_run(&loop, UV_RUN_DEFAULT);
    cr_assert_eq(uv_loop_close(&loop), 0, "a handle was left open");
}

/* 1 if the peer of fd closed (EOF or reset) within timeout_ms. */
static int closed_soon(int fd, int timeout_ms)
{
    struct pollfd p = {fd, POLLIN, 0};
    if (poll(&p, 1, timeout_ms) <= 0)
        return 0;
    char c;
    ssize_t n = recv(fd, &c, 1, MSG_DONTWAIT);
    return n == 0 || (n < 0 && errno == ECONNRESET);
}

Test(acceptor, out_of_descriptors_closes_waiting_clients_logs_and_resumes)
{
    /* the log into a file of the test's */
    const char *logp = du_tmp("log");
    int logfd = open(logp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    cr_assert_geq(logfd, 0);
    dup2(logfd, 2);
    cvd_log_init(CVD_LOG_INFO);

    uv_loop_t loop;
    cr_assert_eq(uv_loop_init(&loop), 0);
    int port, lfd = listen_socket(&port);
    got g = {0};
    cvd_acceptor *a = NULL;
    cvd_err err = {0};
    cr_assert_eq(cvd_acceptor_start(&loop, lfd, "fd-test", on_fd, &g, &a, &err), 0, "%s", err.msg);
    /* clients first (they need descriptors too), then a low limit, filled up */
    enum { N = 20 };
    int cl[N];
    for (int i = 0; i < N; i++)
        cl[i] = client(port);
    struct rlimit rl;
    cr_assert_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
    rl.rlim_cur = 256;
    cr_assert_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
    int fill[300], n_fill = 0;
    for (;;) {
        int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            cr_assert_eq(errno, EMFILE);
            break;
        }
        cr_assert_lt(n_fill, 300);
        fill[n_fill++] = fd;
    }
    const uint64_t before_metric = fd_metric();
    /* the loop: no descriptor for any of them */
    const double t_first = du_now();
    for (int i = 0; i < 5; i++)
        uv_run(&loop, UV_RUN_NOWAIT);
    cr_assert_eq(g.n, 0, "accepted %d without a descriptor", g.n);
    int closed = 0;
    for (int i = 0; i < N; i++)
        closed += closed_soon(cl[i], 1000);
    cr_assert_eq(closed, N, "%d of %d waiting clients were closed; the rest hang", closed, N);
    cr_assert_eq(cvd_acceptor_exhausted(a), N);
    cr_assert_eq(fd_metric() - before_metric, N);

    /* more clients right after: closed too, and no more log lines within the second */
    for (int k = 0; k < 3; k++) {
        close(fill[--n_fill]); /* a descriptor for the client... */
        int c = client(port);
        int f = open("/dev/null", O_RDONLY | O_CLOEXEC); /* ...and none left again */
        cr_assert_lt(f, 0);
        double end = du_now() + 1.0;
        int done = 0;
        while (!done && du_now() < end) {
            uv_run(&loop, UV_RUN_NOWAIT);
            done = closed_soon(c, 20);
        }
        cr_assert(done, "client %d was not closed", k);
        close(c);
        /* its descriptor is free again: take it */
        fill[n_fill++] = open("/dev/null", O_RDONLY | O_CLOEXEC);
        cr_assert_geq(fill[n_fill - 1], 0);
    }
    const double t_last = du_now();
    /* descriptors free again (to read the log, too) */
    while (n_fill > 200)
        close(fill[--n_fill]);
    char *log = du_read_file(logp, NULL);
    cr_assert_not_null(log);
    /* one line a second at most: one, unless this machine took a second over it */
    const int lines = du_count(log, "out of file descriptors");
    cr_assert(lines >= 1 && lines <= 1 + (int)(t_last - t_first), "%d lines in %.2f s:\n%s", lines,
              t_last - t_first, log);
    cr_assert(strstr(log, "listen fd-test: out of file descriptors") &&
                  strstr(log, "the limit is 256"),
              "%s", log);
    free(log);

    /* accepting resumes after the pause */
    int c = client(port);
    double end = du_now() + 2.0;
    while (g.n == 0 && du_now() < end)
        uv_run(&loop, UV_RUN_ONCE);
    cr_assert_eq(g.n, 1, "accepting did not resume");
    close(g.fds[0]);
    close(c);
    for (int i = 0; i < N; i++)
        close(cl[i]);
    while (n_fill > 0)
        close(fill[--n_fill]);
    cvd_acceptor_stop(a);
    uv_run(&loop, UV_RUN_DEFAULT);
    cr_assert_eq(uv_loop_close(&loop), 0);
}
