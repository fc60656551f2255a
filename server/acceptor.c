/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Bounded accepting (acceptor.h).
 */
#include "acceptor.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "metrics.h"
#include "uv_check.h"

struct cvd_acceptor {
    uv_poll_t poll;
    uv_timer_t pause;
    int fd;
    int spare;   /* a descriptor held for the day there is none left; -1 if it could not be had */
    int handles; /* open libuv handles, for the last close callback */
    int polling;
    unsigned long exhausted;
    cvd_accept_cb cb;
    void *ctx;
    char name[80];
};

/* process-wide: when the last "out of descriptors" line was logged, and what came since */
static atomic_llong last_log_ms = -1;
static atomic_ulong refused_since_log;

static int open_spare(void)
{
    return open("/dev/null", O_RDONLY | O_CLOEXEC);
}

static void log_exhausted(const cvd_acceptor *a, int err)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    long long now_ms = (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000,
              last = atomic_load(&last_log_ms);
    if (last >= 0 && now_ms - last < 1000)
        return;
    if (!atomic_compare_exchange_strong(&last_log_ms, &last, now_ms))
        return; /* another thread logs this second */
    struct rlimit rl;
    char lim[48] = "?";
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
        snprintf(lim, sizeof lim, "%llu", (unsigned long long)rl.rlim_cur);
    cvd_log_warning("listen %s: out of file descriptors (%s; the limit is %s, LimitNOFILE= or "
                    "ulimit -n): %lu connections closed at accept since the last such line; "
                    "accepting pauses %d ms at a time until descriptors are free",
                    a->name, strerror(err), lim, atomic_exchange(&refused_since_log, 0),
                    CVD_ACCEPT_PAUSE_MS);
}

static void on_poll(uv_poll_t *h, int status, int events);

static void on_resume(uv_timer_t *t)
{
    cvd_acceptor *a = t->data;
    if (!a->polling && uv_poll_start(&a->poll, UV_READABLE, on_poll) == 0)
        a->polling = 1;
}

/* No descriptor left: take the waiting connections with the spare's and close them. */
static void shed(cvd_acceptor *a, int err)
{
    unsigned long n = 0;
    if (a->spare >= 0) {
        close(a->spare);
        a->spare = -1;
        for (int i = 0; i < CVD_ACCEPT_PER_TURN; i++) {
            int fd = accept4(a->fd, NULL, NULL, SOCK_CLOEXEC);
            if (fd < 0)
                break;
            close(fd);
            n++;
        }
        a->spare = open_spare();
    }
    a->exhausted += n;
    atomic_fetch_add(&refused_since_log, n);
    cvd_metrics_event(CVD_EV_FD_EXHAUSTED, n);
    log_exhausted(a, err);
    /* pause: what closes meanwhile gives descriptors back */
    if (a->polling) {
        CVD_UV_CHECK(uv_poll_stop(&a->poll));
        a->polling = 0;
    }
    CVD_UV_CHECK(uv_timer_start(&a->pause, on_resume, CVD_ACCEPT_PAUSE_MS, 0));
}

static void on_poll(uv_poll_t *h, int status, int events)
{
    cvd_acceptor *a = h->data;
    (void)events;
    if (status < 0) {
        cvd_log_warning("listen %s: poll: %s", a->name, uv_strerror(status));
        return;
    }
    for (int i = 0; i < CVD_ACCEPT_PER_TURN; i++) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        int fd = accept4(a->fd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            int e = errno;
            if (e == EAGAIN || e == EWOULDBLOCK)
                return;
            if (e == EINTR || e == ECONNABORTED || e == EPROTO || e == EPERM)
                continue; /* that client is gone, or refused by a firewall: the next one */
            if (e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM) {
                shed(a, e);
                return;
            }
            cvd_log_warning("listen %s: accept: %s", a->name, strerror(e));
            return;
        }
        if (a->spare < 0) /* got one back: keep it as the spare first */
            a->spare = open_spare();
        a->cb(a->ctx, fd, (struct sockaddr *)&ss);
    }
    /* more may wait: the socket stays readable and the next loop turn takes them */
}

int cvd_acceptor_start(uv_loop_t *loop, int listen_fd, const char *name, cvd_accept_cb cb,
                       void *ctx, cvd_acceptor **out, cvd_err *err)
{
    cvd_acceptor *a = calloc(1, sizeof *a);
    int rc;
    *out = NULL;
    if (a == NULL) {
        close(listen_fd);
        return cvd_err_set(err, CVD_ENOMEM, "out of memory");
    }
    a->fd = listen_fd;
    a->cb = cb;
    a->ctx = ctx;
    snprintf(a->name, sizeof a->name, "%s", name ? name : "?");
    int fl = fcntl(listen_fd, F_GETFL);
    if (fl < 0 || fcntl(listen_fd, F_SETFL, fl | O_NONBLOCK) < 0) {
        rc = cvd_err_set(err, CVD_EIO, "listen %s: fcntl: %s", a->name, strerror(errno));
        close(listen_fd);
        free(a);
        return rc;
    }
    a->spare = open_spare();
    if ((rc = uv_poll_init(loop, &a->poll, listen_fd)) < 0) {
        if (a->spare >= 0)
            close(a->spare);
        close(listen_fd);
        free(a);
        return cvd_err_set(err, CVD_EIO, "listen %s: uv_poll_init: %s", name ? name : "?",
                           uv_strerror(rc));
    }
    a->poll.data = a;
    a->handles = 1;
    rc = uv_timer_init(loop, &a->pause);
    if (rc < 0) {
        cvd_log_error("uv_timer_init: %s", uv_strerror(rc));
        abort(); /* cannot fail on a live loop */
    }
    a->pause.data = a;
    a->handles = 2;
    if ((rc = uv_poll_start(&a->poll, UV_READABLE, on_poll)) < 0) {
        cvd_acceptor_stop(a);
        return cvd_err_set(err, CVD_EIO, "listen %s: uv_poll_start: %s", name, uv_strerror(rc));
    }
    a->polling = 1;
    *out = a;
    return CVD_OK;
}

static void on_closed(uv_handle_t *h)
{
    cvd_acceptor *a = h->data;
    if (--a->handles > 0)
        return;
    close(a->fd);
    if (a->spare >= 0)
        close(a->spare);
    free(a);
}

void cvd_acceptor_stop(cvd_acceptor *a)
{
    if (a == NULL)
        return;
    uv_close((uv_handle_t *)&a->poll, on_closed);
    uv_close((uv_handle_t *)&a->pause, on_closed);
}

unsigned long cvd_acceptor_exhausted(const cvd_acceptor *a)
{
    return a->exhausted;
}
