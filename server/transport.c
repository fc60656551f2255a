/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A connection's byte stream, plain or TLS (transport.h).
 */
#include "transport.h"

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"
#include "metrics.h"
#include "uv_check.h"

#define CBUF_BYTES (16 * 1024 + 512) /* a TLS record and its header: one read at a time */
/* After our FIN, how long the client's unread bytes are read and dropped before the close: a
 * close with bytes unread sends a reset, and a reset can make the client's kernel drop what
 * we sent last (the output's tail, an ERROR) before the client reads it. */
#define LINGER_MS 2000

static _Thread_local char discard[16384];
/* TLS: the ciphertext of one read, which on_read feeds to the session before anything else
 * reads on this thread: no session holds a buffer of its own for it */
static _Thread_local char cipher_in[CBUF_BYTES];

struct cvd_transport {
    uv_tcp_t tcp;
    uv_timer_t timer;   /* the handshake's, then the writes' */
    uv_timer_t deliver; /* TLS: plaintext already decrypted, delivered on the next turn */
    uv_shutdown_t shut;
    int handles;
    cvd_tls *tls;
    cvd_transport_cbs cb;
    void *ctx;
    double write_timeout, handshake_timeout;
    int want_read;   /* the caller reads */
    int tcp_reading; /* uv_read_start is on */
    int fin;         /* the TCP stream ended */
    int eof_sent;    /* the eof callback was called */
    int hs_done;
    int fed; /* TLS: ciphertext came */
    int finishing, notify_sent, shut_started, closing, failed;
    int lingering; /* our side is shut: the client's last bytes are read and dropped */
    size_t queued;
    /* write progress, counting what the kernel holds: bytes handed to libuv in all, the
     * client's acknowledgements at the last check, and when they last grew (loop ms) */
    uint64_t submitted, acked_seen, progress_ms;
    /* an output buffer between blocks: the kernel usually takes a block's output at once
     * (uv_try_write), and its buffer comes back here for the next one, so a stream that
     * keeps up allocates nothing per block (it was a malloc and a free each) */
    struct twreq *spare;
};

typedef struct twreq {
    uv_write_t req;
    cvd_transport *t;
    size_t len, cap;
    char data[];
} twreq;

/* The largest output buffer a transport keeps for its next block. */
#define SPARE_MAX (256 * 1024)

static void continue_finish(cvd_transport *t);

/* A buffer the transport is done with: kept as the spare (the bigger one), else freed. */
static void give_back(cvd_transport *t, twreq *r)
{
    if (!t->closing && r->cap <= SPARE_MAX && (t->spare == NULL || t->spare->cap < r->cap)) {
        free(t->spare);
        t->spare = r;
    } else {
        free(r);
    }
}
static void update_timer(cvd_transport *t);

static void fail(cvd_transport *t, int what, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void fail(cvd_transport *t, int what, const char *fmt, ...)
{
    char msg[CVD_ERR_MSG_MAX];
    va_list ap;
    if (t->failed || t->closing)
        return;
    t->failed = 1;
    cvd_transport_read_stop(t);
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    t->cb.error(t->ctx, what, msg);
}

/* ---- writing ---------------------------------------------------------------------------- */

static void on_written(uv_write_t *req, int status)
{
    twreq *r = (twreq *)req;
    cvd_transport *t = r->t;
    t->queued -= r->len;
    cvd_metrics_queue_bytes(-(int64_t)r->len);
    give_back(t, r);
    if (t->closing)
        return;
    if (status < 0) {
        fail(t, CVD_TR_WRITE, "write: %s", uv_strerror(status));
        return;
    }
    t->progress_ms = uv_now(t->tcp.loop); /* the kernel took more: progress */
    update_timer(t);
    if (t->cb.written)
        t->cb.written(t->ctx);
    if (t->finishing && !t->closing)
        continue_finish(t);
}

static int write_req(cvd_transport *t, twreq *r)
{
    t->submitted += r->len;
    if (t->queued == 0) {
        /* nothing queued: write now; the socket usually takes it all, and then no request,
         * callback or poll change (an epoll_ctl a block) follows */
        uv_buf_t now = uv_buf_init(r->data, (unsigned)r->len);
        int n = uv_try_write((uv_stream_t *)&t->tcp, &now, 1);
        if (n == (int)r->len) {
            give_back(t, r);
            /* in the kernel, not yet with the client: the timer watches it get there */
            if (t->write_timeout > 0 && !uv_is_active((uv_handle_t *)&t->timer))
                update_timer(t);
            return CVD_OK;
        }
        if (n > 0) {
            memmove(r->data, r->data + n, r->len - (size_t)n);
            r->len -= (size_t)n;
        } else if (n != UV_EAGAIN && n != UV_ENOSYS) {
            free(r);
            fail(t, CVD_TR_WRITE, "write: %s", uv_strerror(n));
            return CVD_EIO;
        }
    }
    uv_buf_t b = uv_buf_init(r->data, (unsigned)r->len);
    int was_idle = t->queued == 0;
    t->queued += r->len;
    cvd_metrics_queue_bytes((int64_t)r->len);
    int rc = uv_write(&r->req, (uv_stream_t *)&t->tcp, &b, 1, on_written);
    if (rc < 0) {
        t->queued -= r->len;
        cvd_metrics_queue_bytes(-(int64_t)r->len);
        free(r);
        fail(t, CVD_TR_WRITE, "write: %s", uv_strerror(rc));
        return CVD_EIO;
    }
    if (was_idle)
        update_timer(t);
    return CVD_OK;
}

/* TLS: what the session has for the network, out. */
static int flush_cipher(cvd_transport *t)
{
    size_t n;
    while (t->tls && (n = cvd_tls_pending(t->tls)) > 0) {
        twreq *r = malloc(sizeof *r + n);
        if (r == NULL) {
            fail(t, CVD_TR_NOMEM, "out of memory");
            return CVD_ENOMEM;
        }
        r->t = t;
        r->cap = n;
        r->len = cvd_tls_take(t->tls, r->data, n);
        if (r->len == 0) {
            free(r);
            break;
        }
        int rc = write_req(t, r);
        if (rc < 0)
            return rc;
    }
    return CVD_OK;
}

void *cvd_transport_buf(cvd_transport *t, size_t n)
{
    twreq *r = t->spare;
    if (r != NULL && r->cap >= n) {
        t->spare = NULL; /* the caller's until it sends it */
    } else {
        r = malloc(sizeof *r + n + 1);
        if (r == NULL)
            return NULL;
        r->cap = n;
    }
    r->t = t;
    r->len = 0;
    return r->data;
}

int cvd_transport_send(cvd_transport *t, void *buf, size_t len)
{
    twreq *r = (twreq *)(void *)((char *)buf - offsetof(twreq, data));
    cvd_err err = {0};
    if (t->closing || t->failed || len == 0) {
        give_back(t, r);
        return t->closing || t->failed ? CVD_EIO : CVD_OK;
    }
    if (t->tls == NULL) {
        r->len = len;
        return write_req(t, r);
    }
    int rc = cvd_tls_write(t->tls, r->data, len, &err);
    give_back(t, r);
    if (rc < 0) {
        fail(t, CVD_TR_TLS, "%s", err.msg);
        return rc;
    }
    return flush_cipher(t);
}

int cvd_transport_write(cvd_transport *t, const void *p, size_t len)
{
    void *b = cvd_transport_buf(t, len);
    if (b == NULL) {
        fail(t, CVD_TR_NOMEM, "out of memory");
        return CVD_ENOMEM;
    }
    memcpy(b, p, len);
    return cvd_transport_send(t, b, len);
}

size_t cvd_transport_queued(const cvd_transport *t)
{
    return t->queued;
}

/* ---- timeouts --------------------------------------------------------------------------- */

/* Output the kernel holds that the client has not acknowledged (SIOCOUTQ); 0 if unknown. */
static size_t kernel_unacked(const cvd_transport *t)
{
    uv_os_fd_t fd;
    int n = 0;
    if (uv_fileno((const uv_handle_t *)&t->tcp, &fd) < 0 || ioctl(fd, SIOCOUTQ, &n) < 0 || n < 0)
        return 0;
    return (size_t)n;
}

/* Output not yet with the client: in libuv's queue, or in the kernel. Notes progress (the
 * client acknowledged bytes since the last look) in progress_ms. */
static size_t pending_out(cvd_transport *t)
{
    const size_t unacked = kernel_unacked(t);
    const uint64_t in_kernel = t->submitted - t->queued;
    const uint64_t acked = in_kernel > unacked ? in_kernel - unacked : 0;
    if (acked > t->acked_seen) {
        t->acked_seen = acked;
        t->progress_ms = uv_now(t->tcp.loop);
    }
    return t->queued + unacked;
}

/* How often the write timer looks at the kernel's queue: a quarter of write_timeout. */
static uint64_t write_check_ms(const cvd_transport *t)
{
    const uint64_t ms = (uint64_t)(t->write_timeout * 1000 / 4 + 0.5);
    return ms > 0 ? ms : 1;
}

/* The client does not read: the close resets the connection, so the kernel drops the output
 * it holds for the client at once. A FIN would wait behind that output for a window that
 * never opens; the client would not see the close, and the kernel would keep the orphaned
 * socket and its send buffer (up to tcp_wmem's maximum) for minutes. */
static void reset_on_close(cvd_transport *t)
{
    uv_os_fd_t fd;
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    if (uv_fileno((const uv_handle_t *)&t->tcp, &fd) == 0 &&
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg) < 0)
        cvd_log_debug("transport: SO_LINGER: %s", strerror(errno));
}

static void on_timer(uv_timer_t *h)
{
    cvd_transport *t = h->data;
    if (t->tls && !t->hs_done) {
        cvd_metrics_event(CVD_EV_TLS_FAILED, 1);
        fail(t, CVD_TR_HANDSHAKE_TIMEOUT, "no TLS handshake within %.1f s", t->handshake_timeout);
        return;
    }
    const size_t pending = pending_out(t);
    if (pending == 0) /* all with the client */
        return;
    const uint64_t idle_ms = uv_now(t->tcp.loop) - t->progress_ms;
    if ((double)idle_ms < t->write_timeout * 1000) {
        CVD_UV_CHECK(uv_timer_start(&t->timer, on_timer, write_check_ms(t), 0));
        return;
    }
    reset_on_close(t);
    fail(t, CVD_TR_WRITE_TIMEOUT,
         "%zu bytes of output could not be written for %.1f s (the client does not read)", pending,
         t->write_timeout);
}

/* The handshake's deadline until it is done; then, while output is on its way (queued here
 * or held by the kernel), a look every quarter of write_timeout: no progress for
 * write_timeout is an error. */
static void update_timer(cvd_transport *t)
{
    if (t->closing || t->lingering)
        return;
    if (t->tls && !t->hs_done) {
        if (t->handshake_timeout > 0 && !uv_is_active((uv_handle_t *)&t->timer))
            CVD_UV_CHECK(uv_timer_start(&t->timer, on_timer,
                                        (uint64_t)(t->handshake_timeout * 1000 + 0.5), 0));
        return;
    }
    if (t->write_timeout <= 0)
        return;
    if (t->queued > 0 || t->submitted > t->acked_seen) {
        if (!uv_is_active((uv_handle_t *)&t->timer)) {
            t->progress_ms = uv_now(t->tcp.loop); /* the clock starts with the first output */
            CVD_UV_CHECK(uv_timer_start(&t->timer, on_timer, write_check_ms(t), 0));
        }
    }
}

/* ---- reading ---------------------------------------------------------------------------- */

static void tcp_stop(cvd_transport *t)
{
    if (t->tcp_reading) {
        CVD_UV_CHECK(uv_read_stop((uv_stream_t *)&t->tcp));
        t->tcp_reading = 0;
    }
}

static void deliver_eof(cvd_transport *t, int clean)
{
    t->eof_sent = 1;
    tcp_stop(t);
    if (!clean)
        cvd_metrics_event(CVD_EV_TLS_UNCLEAN, 1);
    t->cb.eof(t->ctx, clean);
}

static void tcp_start(cvd_transport *t);

/* TLS: decrypts into the caller's buffers while it reads and there is something. */
static void pull(cvd_transport *t)
{
    while (t->want_read && !t->failed && !t->closing && !t->eof_sent) {
        char *buf = NULL;
        size_t cap = 0, got = 0;
        cvd_err err = {0};
        t->cb.alloc(t->ctx, &buf, &cap);
        if (cap == 0) { /* no room: as if the caller stopped reading */
            cvd_transport_read_stop(t);
            break;
        }
        int rc = cvd_tls_read(t->tls, buf, cap, &got, &err);
        if (!t->hs_done && cvd_tls_handshake_done(t->tls)) {
            t->hs_done = 1;
            cvd_metrics_event(CVD_EV_TLS_HANDSHAKES, 1);
            CVD_UV_CHECK(uv_timer_stop(&t->timer));
            update_timer(t);
            if (t->cb.handshake)
                t->cb.handshake(t->ctx);
            if (t->closing || t->failed)
                return;
        }
        if (rc < 0) {
            if (!t->hs_done)
                cvd_metrics_event(CVD_EV_TLS_FAILED, 1);
            flush_cipher(t); /* the alert that says why */
            fail(t, CVD_TR_TLS, "%s", err.msg);
            return;
        }
        if (got > 0) {
            t->cb.read(t->ctx, got);
            continue;
        }
        if (rc == CVD_TLS_CLOSED) {
            flush_cipher(t);
            deliver_eof(t, 1);
            return;
        }
        /* nothing until more ciphertext comes */
        if (!t->fin) {
            tcp_start(t);
            break;
        }
        flush_cipher(t);
        /* a connection that never finished its handshake just went away: not an unclean TLS
         * close, there was no TLS session */
        deliver_eof(t, !t->hs_done);
        return;
    }
    flush_cipher(t);
}

static void on_deliver(uv_timer_t *h)
{
    pull(h->data);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
    cvd_transport *t = h->data;
    (void)hint;
    if (t->lingering) {
        *b = uv_buf_init(discard, sizeof discard);
        return;
    }
    if (t->tls) { /* fed to the session at once (copied into its memory BIO) */
        *b = uv_buf_init(cipher_in, sizeof cipher_in);
        return;
    }
    char *buf = NULL;
    size_t cap = 0;
    t->cb.alloc(t->ctx, &buf, &cap);
    *b = uv_buf_init(buf, (unsigned)(cap > 0x40000000u ? 0x40000000u : cap));
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    cvd_transport *t = s->data;
    if (t->lingering && !t->closing) {
        if (n < 0) /* the client's end, or an error: done */
            cvd_transport_close(t);
        return; /* bytes dropped */
    }
    if (t->closing || t->failed || n == 0)
        return;
    if (n == UV_ENOBUFS) { /* the caller has no room (or TLS, no memory) */
        if (t->tls) {
            fail(t, CVD_TR_NOMEM, "out of memory");
            return;
        }
        cvd_transport_read_stop(t);
        return;
    }
    if (n == UV_EOF) {
        t->fin = 1;
        tcp_stop(t);
        if (t->tls && t->fed)
            pull(t);
        else /* plain, or TLS that never sent a byte: no session work (a connect-close
              * flood would have OpenSSL set up its handshake buffers for each) */
            deliver_eof(t, 1);
        return;
    }
    if (n < 0) {
        fail(t, CVD_TR_READ, "read: %s", uv_strerror((int)n));
        return;
    }
    if (t->tls == NULL) {
        t->cb.read(t->ctx, (size_t)n);
        return;
    }
    cvd_err err = {0};
    t->fed = 1;
    if (cvd_tls_feed(t->tls, b->base, (size_t)n, &err) < 0) {
        fail(t, CVD_TR_NOMEM, "%s", err.msg);
        return;
    }
    pull(t);
}

static void tcp_start(cvd_transport *t)
{
    if (t->tcp_reading || t->fin || t->closing || t->failed)
        return;
    int rc = uv_read_start((uv_stream_t *)&t->tcp, on_alloc, on_read);
    if (rc < 0) {
        fail(t, CVD_TR_READ, "uv_read_start: %s", uv_strerror(rc));
        return;
    }
    t->tcp_reading = 1;
}

void cvd_transport_read_start(cvd_transport *t)
{
    if (t->closing || t->failed || t->finishing || t->eof_sent)
        return;
    t->want_read = 1;
    /* TLS: what was fed already is decrypted first, on the next loop turn, and the socket
     * is read again once it is all taken (so a session holds one read of ciphertext at
     * most) */
    if (t->tls && (cvd_tls_input_pending(t->tls) || t->fin)) {
        CVD_UV_CHECK(uv_timer_start(&t->deliver, on_deliver, 0, 0));
        return;
    }
    tcp_start(t);
}

void cvd_transport_read_stop(cvd_transport *t)
{
    t->want_read = 0;
    tcp_stop(t);
    if (!t->closing)
        CVD_UV_CHECK(uv_timer_stop(&t->deliver));
}

/* ---- the end ---------------------------------------------------------------------------- */

static void on_closed(uv_handle_t *h)
{
    cvd_transport *t = h->data;
    if (--t->handles > 0)
        return;
    if (t->cb.closed)
        t->cb.closed(t->ctx);
    cvd_tls_destroy(t->tls);
    free(t->spare);
    free(t);
}

void cvd_transport_close(cvd_transport *t)
{
    if (t->closing)
        return;
    t->closing = 1;
    t->want_read = 0;
    uv_close((uv_handle_t *)&t->tcp, on_closed);
    uv_close((uv_handle_t *)&t->timer, on_closed);
    uv_close((uv_handle_t *)&t->deliver, on_closed);
}

int cvd_transport_closing(const cvd_transport *t)
{
    return t->closing;
}

static void on_linger_end(uv_timer_t *h)
{
    cvd_transport *t = h->data;
    /* output the client has not taken yet (the kernel holds it, the FIN behind it): wait
     * while the client makes progress; without progress for write_timeout, reset */
    if (t->write_timeout > 0 && pending_out(t) > 0) {
        if ((double)(uv_now(t->tcp.loop) - t->progress_ms) < t->write_timeout * 1000) {
            CVD_UV_CHECK(uv_timer_start(&t->timer, on_linger_end, write_check_ms(t), 0));
            return;
        }
        cvd_log_debug("transport: the client took no output for %.1f s after the end: reset",
                      t->write_timeout);
        reset_on_close(t);
    }
    cvd_transport_close(t);
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    cvd_transport *t = req->data;
    if (t->closing)
        return;
    if (status < 0 || t->fin) {
        cvd_transport_close(t);
        return;
    }
    /* the client has not ended its side: read and drop what it still sends, until it does or
     * for LINGER_MS, so that the close does not reset what we sent */
    t->lingering = 1;
    t->want_read = 0;
    CVD_UV_CHECK(uv_timer_stop(&t->deliver));
    CVD_UV_CHECK(uv_timer_start(&t->timer, on_linger_end, LINGER_MS, 0));
    if (!t->tcp_reading) {
        if (uv_read_start((uv_stream_t *)&t->tcp, on_alloc, on_read) < 0) {
            cvd_transport_close(t);
            return;
        }
        t->tcp_reading = 1;
    }
}

static void continue_finish(cvd_transport *t)
{
    if (t->closing || t->queued > 0)
        return; /* on_written comes back here */
    if (t->tls && !t->notify_sent) {
        t->notify_sent = 1;
        cvd_tls_close(t->tls);
        if (flush_cipher(t) < 0 || t->queued > 0)
            return;
    }
    if (t->shut_started)
        return;
    t->shut_started = 1;
    t->shut.data = t;
    if (uv_shutdown(&t->shut, (uv_stream_t *)&t->tcp, on_shutdown) < 0)
        cvd_transport_close(t);
}

void cvd_transport_finish(cvd_transport *t)
{
    if (t->finishing || t->closing)
        return;
    t->finishing = 1;
    cvd_transport_read_stop(t);
    continue_finish(t);
}

/* ---- opening ---------------------------------------------------------------------------- */

int cvd_transport_open(uv_loop_t *loop, int fd, const cvd_transport_opts *o,
                       const cvd_transport_cbs *cb, void *ctx, cvd_transport **out, cvd_err *err)
{
    cvd_transport *t = calloc(1, sizeof *t);
    int rc;
    *out = NULL;
    if (t == NULL) {
        close(fd);
        return cvd_err_set(err, CVD_ENOMEM, "out of memory");
    }
    t->cb = *cb;
    t->ctx = ctx;
    t->write_timeout = o ? o->write_timeout : 0;
    t->handshake_timeout = o ? o->handshake_timeout : 0;
    if (o && o->tls && (rc = cvd_tls_create(o->tls, NULL, &t->tls, err)) < 0) {
        close(fd);
        free(t);
        return rc;
    }
    /* on a live loop these cannot fail */
    if ((rc = uv_tcp_init(loop, &t->tcp)) < 0 || (rc = uv_timer_init(loop, &t->timer)) < 0 ||
        (rc = uv_timer_init(loop, &t->deliver)) < 0) {
        cvd_log_error("transport: uv init: %s", uv_strerror(rc));
        abort();
    }
    t->tcp.data = t->timer.data = t->deliver.data = t;
    t->handles = 3;
    if ((rc = uv_tcp_open(&t->tcp, fd)) < 0) {
        close(fd);
        t->closing = 1;
        uv_close((uv_handle_t *)&t->tcp, on_closed);
        uv_close((uv_handle_t *)&t->timer, on_closed);
        uv_close((uv_handle_t *)&t->deliver, on_closed);
        t->cb.closed = NULL;
        return cvd_err_set(err, CVD_EIO, "uv_tcp_open: %s", uv_strerror(rc));
    }
    if ((rc = uv_tcp_nodelay(&t->tcp, 1)) < 0) /* a latency hint: the stream works without */
        cvd_log_debug("transport: uv_tcp_nodelay: %s", uv_strerror(rc));
    update_timer(t); /* the handshake's deadline */
    *out = t;
    return CVD_OK;
}

const cvd_tls *cvd_transport_tls(const cvd_transport *t)
{
    return t->tls;
}

int cvd_transport_ready(const cvd_transport *t)
{
    return t->tls == NULL || t->hs_done;
}
