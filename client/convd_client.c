/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A blocking client for the framed protocol over a non-blocking socket: every wait is a poll()
 * that also reads what the server sends (queued for cvd_client_recv) and writes what is queued
 * for it, so a client that sends a long stream before reading never deadlocks against a
 * server that stops reading until its output drains.
 *
 * Long because: it is the whole C client behind one header: I/O, the connection, TLS and the
 * framed session.
 */
#include "convd_client.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <arpa/inet.h>
#include <time.h>
#include <unistd.h>

#define READ_CHUNK 65536
#define RECV_MIN_MESSAGE 8192 /* the decoder's limit: at least this (any ERROR fits) */
#define OUT_RESERVE 256       /* room kept in the output buffer for control messages (PONG, BYE) */

struct cvd_client {
    int fd;
    char peer[300];
    int timeout_ms; /* <= 0: none */
    cvd_fr_decoder *dec;
    /* bytes to send: out[out_off..out_len) */
    uint8_t *out;
    size_t out_off, out_len, out_cap;
    /* bytes read, not yet decoded */
    uint8_t *in;
    size_t in_len;
    /* frames received, not yet delivered, in wire form: q[q_off..q_len) */
    uint8_t *q;
    size_t q_off, q_len, q_cap;
    int hello_sent, accepted, end_sent, end_received, bye_received, eof;
    int failed; /* sticky: `fail` is returned by every call */
    cvd_err fail;
    int fail_code;
    int role;
    cvd_client_accept acc;
    char model[CVD_FR_MAX_STRING + 1];
    size_t in_fb, out_fb;   /* bytes of a frame sent / received */
    size_t send_max_frames; /* frames per DATA we send */
    uint32_t seq;
    uint64_t ping_token;
    int pong_pending;
    int server_error;
    uint64_t end_frame; /* stream index just past the last frame received */
    cvd_client_stats st;
    /* TLS (cvd_client_connect_tls): OpenSSL on the socket itself */
    SSL_CTX *ssl_ctx;
    SSL *ssl;
    short tls_wants;   /* poll events the TLS layer waits for besides ours */
    char tls_err[256]; /* OpenSSL's reason for the last TLS failure */
};

/* ---- helpers ------------------------------------------------------------------------------ */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static const char *errtext(int e, char *buf, size_t n)
{
    /* GNU strerror_r (with _GNU_SOURCE): returns the text, perhaps not in buf */
    return strerror_r(e, buf, n);
}

static int cl_fail(cvd_client *c, int code, cvd_err *err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* A fatal error: the client is unusable afterwards. */
static int cl_fail(cvd_client *c, int code, cvd_err *err, const char *fmt, ...)
{
    va_list ap;
    if (!c->failed) {
        va_start(ap, fmt);
        vsnprintf(c->fail.msg, sizeof c->fail.msg, fmt, ap);
        va_end(ap);
        c->fail.code = code;
        c->fail_code = code;
        c->failed = 1;
    }
    if (err)
        *err = c->fail;
    return c->fail_code;
}

static int sticky(cvd_client *c, cvd_err *err)
{
    if (err)
        *err = c->fail;
    return c->fail_code;
}

static int interrupted(cvd_client *c, cvd_err *err)
{
    return cvd_err_set(err, CVD_EIO, "%s: interrupted", c->peer);
}

static int set_nonblocking(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    return fl < 0 ? -1 : fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

static int grow(uint8_t **buf, size_t *cap, size_t need)
{
    size_t n = *cap ? *cap : 4096;
    uint8_t *p;
    if (need <= *cap)
        return 0;
    while (n < need)
        n *= 2;
    p = realloc(*buf, n);
    if (p == NULL)
        return -1;
    *buf = p;
    *cap = n;
    return 0;
}

/* Room for `need` more bytes at the end of out (moving unsent bytes to the front). */
static int out_room(cvd_client *c, size_t need)
{
    if (c->out_off > 0) {
        memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
        c->out_len -= c->out_off;
        c->out_off = 0;
    }
    return c->out_cap - c->out_len >= need;
}

static cvd_bytes out_bytes(cvd_client *c)
{
    cvd_bytes b = {c->out, c->out_len, c->out_cap};
    return b;
}

/* ---- I/O ---------------------------------------------------------------------------------- */

static void tls_reason(cvd_client *c)
{
    unsigned long e, last = 0;
    while ((e = ERR_get_error()) != 0)
        last = e;
    const char *r = last ? ERR_reason_error_string(last) : NULL;
    snprintf(c->tls_err, sizeof c->tls_err, "%s", r ? r : "the connection failed");
}

/* Sends from p: the bytes taken (0: none now), or -1 with errno (EPROTO: TLS, tls_err). */
static ssize_t io_send(cvd_client *c, const void *p, size_t n)
{
    if (c->ssl == NULL)
        return send(c->fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
    size_t w = 0;
    ERR_clear_error();
    if (SSL_write_ex(c->ssl, p, n, &w) == 1)
        return (ssize_t)w;
    int e = SSL_get_error(c->ssl, 0);
    if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ) {
        c->tls_wants |= e == SSL_ERROR_WANT_WRITE ? POLLOUT : POLLIN;
        errno = EAGAIN;
        return -1;
    }
    if (e == SSL_ERROR_SYSCALL && errno != 0)
        return -1;
    tls_reason(c);
    errno = EPROTO;
    return -1;
}

/* Receives into p: bytes, 0 at the end (a FIN; on TLS the server's close_notify, or a FIN
 * without it: the framed protocol's END says whether the stream was complete), or -1 with
 * errno (EAGAIN: nothing now; EPROTO: TLS, tls_err). */
static ssize_t io_recv(cvd_client *c, void *p, size_t n)
{
    if (c->ssl == NULL)
        return recv(c->fd, p, n, MSG_DONTWAIT);
    size_t got = 0;
    ERR_clear_error();
    if (SSL_read_ex(c->ssl, p, n, &got) == 1)
        return (ssize_t)got;
    int e = SSL_get_error(c->ssl, 0);
    if (e == SSL_ERROR_ZERO_RETURN)
        return 0;
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        if (e == SSL_ERROR_WANT_WRITE)
            c->tls_wants |= POLLOUT;
        errno = EAGAIN;
        return -1;
    }
    if (e == SSL_ERROR_SYSCALL && errno != 0)
        return -1;
    tls_reason(c);
    errno = EPROTO;
    return -1;
}

static const char *io_errtext(cvd_client *c, int e, char *buf, size_t n)
{
    if (e == EPROTO && c->ssl) {
        snprintf(buf, n, "TLS: %s", c->tls_err);
        return buf;
    }
    return errtext(e, buf, n);
}

static int read_some(cvd_client *c, cvd_err *err);

/* Writes what the socket takes now. */
static int flush_some(cvd_client *c, cvd_err *err)
{
    char eb[300];
    while (c->out_off < c->out_len) {
        ssize_t n = io_send(c, c->out + c->out_off, c->out_len - c->out_off);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return 0;
            int e = errno;
            /* the server may have said why before it closed (an ERROR: shutting down, a
             * refusal): that is the error to report, with the frames that came before it */
            if ((e == EPIPE || e == ECONNRESET) && !c->failed && !c->eof) {
                read_some(c, NULL);
                if (c->failed)
                    return sticky(c, err);
            }
            return cl_fail(c, CVD_EIO, err, "send to %s: %s", c->peer,
                           io_errtext(c, e, eb, sizeof eb));
        }
        c->out_off += (size_t)n;
    }
    c->out_off = c->out_len = 0;
    return 0;
}

static int handle(cvd_client *c, const cvd_fr_msg *m, cvd_err *err);

/* Decodes everything in c->in. */
static int process_input(cvd_client *c, cvd_err *err)
{
    size_t off = 0;
    while (off < c->in_len && !c->failed) {
        cvd_fr_msg m;
        cvd_err e = {0};
        size_t used;
        int rc = cvd_fr_decode(c->dec, c->in + off, c->in_len - off, &used, &m, &e);
        off += used;
        if (rc < 0) {
            /* tell the server why we hang up, if the socket takes it */
            cvd_bytes b = out_bytes(c);
            if (out_room(c, 0) &&
                cvd_fr_put_error(&b, cvd_fr_decoder_error(c->dec), e.msg, NULL) == 0) {
                c->out_len = b.len;
                if (cvd_fr_put_bye(&b, NULL) == 0)
                    c->out_len = b.len;
                flush_some(c, NULL);
            }
            c->in_len = 0;
            return cl_fail(c, CVD_EFORMAT, err, "%s: protocol error in what the server sent: %s",
                           c->peer, e.msg);
        }
        if (rc == 0)
            break;
        c->st.messages_received++;
        if ((rc = handle(c, &m, err)) < 0) {
            c->in_len = 0;
            return rc;
        }
    }
    c->in_len = 0; /* the decoder keeps any incomplete message itself */
    return c->failed ? sticky(c, err) : 0;
}

/* Reads what the socket has now. */
static int read_some(cvd_client *c, cvd_err *err)
{
    char eb[300];
    for (;;) {
        ssize_t n = io_recv(c, c->in, READ_CHUNK);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return 0;
            return cl_fail(c, CVD_EIO, err, "receive from %s: %s", c->peer,
                           io_errtext(c, errno, eb, sizeof eb));
        }
        if (n == 0) {
            cvd_err e = {0};
            c->eof = 1;
            if (cvd_fr_decoder_finish(c->dec, &e) < 0)
                return cl_fail(c, CVD_EFORMAT, err, "%s: %s", c->peer, e.msg);
            if (!c->end_received && !c->bye_received)
                return cl_fail(
                    c, CVD_EIO, err, "%s: the server closed the connection %s%s", c->peer,
                    c->accepted ? "before the end of the stream" : "without answering HELLO",
                    c->accepted || c->ssl ? ""
                                          : " (a TLS listener? then connect with TLS: "
                                            "convd-cat --tls)");
            return 0;
        }
        c->in_len = (size_t)n;
        int rc = process_input(c, err);
        if (rc < 0)
            return rc;
        if ((size_t)n < READ_CHUNK && c->ssl == NULL)
            return 0; /* (TLS reads a record at a time: on until it has nothing) */
    }
}

/*
 * Waits up to timeout_ms (< 0: forever) for the socket, then writes and reads what it can.
 * 1: something happened, 0: the time ran out, < 0: an error (interrupted: not sticky).
 */
static int pump(cvd_client *c, int timeout_ms, cvd_err *err)
{
    struct pollfd p;
    char eb[128];
    int r;
    if (c->failed)
        return sticky(c, err);
    /* TLS: a record already read holds more */
    if (c->ssl && !c->eof && SSL_pending(c->ssl) > 0)
        return (r = read_some(c, err)) < 0 ? r : 1;
    p.fd = c->fd;
    p.events =
        (short)((c->eof ? 0 : POLLIN) | (c->out_off < c->out_len ? POLLOUT : 0) | c->tls_wants);
    c->tls_wants = 0;
    p.revents = 0;
    if (p.events == 0)
        return cl_fail(c, CVD_EIO, err, "%s: the connection is closed", c->peer);
    r = poll(&p, 1, timeout_ms);
    if (r < 0) {
        if (errno == EINTR)
            return interrupted(c, err);
        return cl_fail(c, CVD_EIO, err, "poll %s: %s", c->peer, errtext(errno, eb, sizeof eb));
    }
    if (r == 0)
        return 0;
    if ((p.revents & (POLLOUT | POLLERR | POLLHUP) || (c->ssl && p.revents)) &&
        c->out_off < c->out_len && (r = flush_some(c, err)) < 0)
        return r;
    if ((p.revents & (POLLIN | POLLERR | POLLHUP)) && !c->eof && (r = read_some(c, err)) < 0)
        return r;
    return 1;
}

/* pump() with the client's timeout; `what` names the wait in the timeout message. */
static int pump_wait(cvd_client *c, const char *what, cvd_err *err)
{
    int r = pump(c, c->timeout_ms > 0 ? c->timeout_ms : -1, err);
    if (r == 0)
        return cl_fail(c, CVD_EIO, err, "%s: timed out after %d ms %s", c->peer, c->timeout_ms,
                       what);
    return r < 0 ? r : 0;
}

static int flush_all(cvd_client *c, cvd_err *err)
{
    int rc;
    if ((rc = flush_some(c, err)) < 0)
        return rc;
    while (c->out_off < c->out_len)
        if ((rc = pump_wait(c, "sending to the server", err)) < 0)
            return rc;
    return 0;
}

/* Appends a control message (PONG, END, PING, BYE) built by put(). */
static int queue_control(cvd_client *c, int type, uint64_t token, cvd_err *err)
{
    cvd_bytes b;
    int rc;
    out_room(c, 0);
    b = out_bytes(c);
    switch (type) {
    case CVD_FR_PONG:
        rc = cvd_fr_put_pong(&b, token, NULL);
        break;
    case CVD_FR_PING:
        rc = cvd_fr_put_ping(&b, token, NULL);
        break;
    case CVD_FR_END:
        rc = cvd_fr_put_end(&b, NULL);
        break;
    default:
        rc = cvd_fr_put_bye(&b, NULL);
        break;
    }
    if (rc < 0) /* cannot happen: OUT_RESERVE is kept free for these */
        return cl_fail(c, CVD_ERANGE, err, "%s: no room to queue %s", c->peer,
                       cvd_fr_type_name(type));
    c->out_len = b.len;
    c->st.messages_sent++;
    return 0;
}

static int handle(cvd_client *c, const cvd_fr_msg *m, cvd_err *err)
{
    switch (m->type) {
    case CVD_FR_ACCEPT: {
        const cvd_fr_accept *a = &m->accept;
        cvd_err e = {0};
        size_t mm = a->max_message;
        snprintf(c->model, sizeof c->model, "%s", a->model);
        c->acc.version = a->version;
        c->acc.format = a->format;
        c->acc.rate = a->rate;
        c->acc.in_channels = a->in_channels;
        c->acc.out_channels = a->out_channels;
        c->acc.block = a->block;
        c->acc.latency = a->latency;
        c->acc.max_message = a->max_message;
        c->acc.model = c->model;
        c->accepted = 1;
        if (mm < RECV_MIN_MESSAGE)
            mm = RECV_MIN_MESSAGE;
        if (mm > CVD_FR_MAX_MESSAGE_LIMIT)
            mm = CVD_FR_MAX_MESSAGE_LIMIT;
        if (cvd_fr_decoder_set_max_message(c->dec, mm, &e) < 0)
            return cl_fail(c, e.code, err, "%s: %s", c->peer, e.msg);
        return 0;
    }
    case CVD_FR_DATA: {
        const cvd_fr_data *d = &m->data;
        if (c->q_off == c->q_len)
            c->q_off = c->q_len = 0;
        if (grow(&c->q, &c->q_cap, c->q_len + d->bytes) < 0)
            return cl_fail(c, CVD_ENOMEM, err, "%s: out of memory queueing %zu frames", c->peer,
                           d->n_frames);
        memcpy(c->q + c->q_len, d->samples, d->bytes);
        c->q_len += d->bytes;
        c->st.frames_dropped += d->dropped;
        c->end_frame = d->first_frame + d->n_frames;
        return 0;
    }
    case CVD_FR_END:
        c->end_received = 1;
        return 0;
    case CVD_FR_PING:
        return queue_control(c, CVD_FR_PONG, m->token, err);
    case CVD_FR_PONG:
        if (c->pong_pending && m->token == c->ping_token)
            c->pong_pending = 0;
        return 0;
    case CVD_FR_ERROR:
        c->server_error = m->error.code;
        return cl_fail(
            c, m->error.code == CVD_FR_E_UNSUPPORTED_VERSION ? CVD_EUNSUPPORTED : CVD_EIO, err,
            "%s: %s: %s (%u): %s", c->peer, c->accepted ? "server error" : "the server refused",
            cvd_fr_error_name(m->error.code), (unsigned)m->error.code,
            m->error.text[0] ? m->error.text : "(no text)");
    case CVD_FR_BYE:
        c->bye_received = 1;
        if (!c->end_received)
            return cl_fail(c, CVD_EIO, err, "%s: the server said BYE %s", c->peer,
                           c->accepted ? "before the end of the stream"
                                       : "without answering HELLO");
        return 0;
    default:
        return 0;
    }
}

/* ---- connection --------------------------------------------------------------------------- */

void cvd_client_request_init(cvd_client_request *h)
{
    memset(h, 0, sizeof *h);
    h->role = CVD_CLIENT_PROCESS;
    h->format = CVD_CLIENT_F32LE;
}

static int client_new(int fd, const char *name, cvd_client **out, cvd_err *err)
{
    cvd_client *c = calloc(1, sizeof *c);
    int rc;
    *out = NULL;
    if (c == NULL) {
        close(fd);
        return cvd_err_set(err, CVD_ENOMEM, "out of memory");
    }
    c->fd = fd;
    snprintf(c->peer, sizeof c->peer, "%s", name ? name : "server");
    c->out_cap = RECV_MIN_MESSAGE;
    c->out = malloc(c->out_cap);
    c->in = malloc(READ_CHUNK);
    if (c->out == NULL || c->in == NULL) {
        cvd_client_close(c);
        return cvd_err_set(err, CVD_ENOMEM, "out of memory");
    }
    if ((rc = cvd_fr_decoder_create(CVD_FR_CLIENT, RECV_MIN_MESSAGE, &c->dec, err)) < 0) {
        cvd_client_close(c);
        return rc;
    }
    *out = c;
    return 0;
}

int cvd_client_from_fd(int fd, const char *name, cvd_client **out, cvd_err *err)
{
    char eb[128];
    *out = NULL;
    if (fd < 0)
        return cvd_err_set(err, CVD_EINVAL, "descriptor %d: not valid", fd);
    if (set_nonblocking(fd) < 0) {
        int e = errno;
        close(fd);
        return cvd_err_set(err, CVD_EIO, "%s: %s", name ? name : "server",
                           errtext(e, eb, sizeof eb));
    }
    return client_new(fd, name, out, err);
}

/* Connects one address, waiting up to timeout_ms; returns the descriptor or -1 (errno). */
static int connect_one(const struct addrinfo *ai, int timeout_ms)
{
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol);
    if (fd < 0)
        return -1;
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
        struct pollfd p = {fd, POLLOUT, 0};
        int r, soerr = 0;
        socklen_t sl = sizeof soerr;
        if (errno != EINPROGRESS) {
            int e = errno;
            close(fd);
            errno = e;
            return -1;
        }
        r = poll(&p, 1, timeout_ms > 0 ? timeout_ms : -1);
        if (r <= 0) {
            int e = r == 0 ? ETIMEDOUT : errno;
            close(fd);
            errno = e;
            return -1;
        }
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0 || soerr != 0) {
            close(fd);
            errno = soerr ? soerr : EIO;
            return -1;
        }
    }
    return fd;
}

static int tls_start(cvd_client *c, const char *host, const cvd_client_tls *tls, int timeout_ms,
                     cvd_err *err);

int cvd_client_connect(const char *host, const char *port, int timeout_ms, cvd_client **out,
                       cvd_err *err)
{
    return cvd_client_connect_tls(host, port, timeout_ms, NULL, out, err);
}

int cvd_client_connect_tls(const char *host, const char *port, int timeout_ms,
                           const cvd_client_tls *tls, cvd_client **out, cvd_err *err)
{
    struct addrinfo hints, *res = NULL;
    char name[300], eb[128];
    int rc, fd = -1, e = 0, one = 1, tried = 0;

    *out = NULL;
    if (host == NULL || *host == '\0')
        host = "127.0.0.1";
    if (port == NULL || *port == '\0')
        port = CVD_CLIENT_DEFAULT_PORT;
    snprintf(name, sizeof name, strchr(host, ':') ? "[%s]:%s" : "%s:%s", host, port);
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    rc = getaddrinfo(host, port, &hints, &res);
    if (rc != 0)
        return cvd_err_set(err, CVD_EIO, "connect %s: %s", name,
                           rc == EAI_SYSTEM ? errtext(errno, eb, sizeof eb) : gai_strerror(rc));
    for (const struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
        tried++;
        if ((fd = connect_one(ai, timeout_ms)) >= 0)
            break;
        e = errno;
        if (e == EINTR)
            break;
    }
    freeaddrinfo(res);
    if (fd < 0) {
        if (e == ETIMEDOUT && timeout_ms > 0)
            return cvd_err_set(err, CVD_EIO, "connect %s: timed out after %d ms", name, timeout_ms);
        return cvd_err_set(err, CVD_EIO, "connect %s: %s%s", name, errtext(e, eb, sizeof eb),
                           tried > 1 ? " (every address tried)" : "");
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if ((rc = client_new(fd, name, out, err)) < 0)
        return rc;
    (*out)->timeout_ms = timeout_ms;
    if (tls && (rc = tls_start(*out, host, tls, timeout_ms, err)) < 0) {
        cvd_client_close(*out);
        *out = NULL;
        return rc;
    }
    return 0;
}

/* ---- TLS ---------------------------------------------------------------------------------- */

static int tls_setup_fail(cvd_client *c, cvd_err *err, const char *what, const char *path)
{
    tls_reason(c);
    return cvd_err_set(err, CVD_EIO, "%s %s: %s", what, path, c->tls_err);
}

/* The TLS handshake on the connected socket, within timeout_ms. */
static int tls_start(cvd_client *c, const char *host, const cvd_client_tls *tls, int timeout_ms,
                     cvd_err *err)
{
    const char *name = tls->server_name && *tls->server_name ? tls->server_name : host;
    unsigned char ip[16];
    const double deadline = timeout_ms > 0 ? now_s() + 1e-3 * timeout_ms : 0;
    ERR_clear_error();
    if ((tls->cert && *tls->cert) != (tls->key && *tls->key))
        return cvd_err_set(err, CVD_EINVAL,
                           "TLS: a client certificate needs its key, and a key "
                           "its certificate");
    c->ssl_ctx = SSL_CTX_new(TLS_client_method());
    if (c->ssl_ctx == NULL)
        return cvd_err_set(err, CVD_ENOMEM, "TLS: out of memory");
    SSL_CTX_set_min_proto_version(c->ssl_ctx, TLS1_2_VERSION);
    /* a TCP end without close_notify ends the input like one: the framed protocol's END and
     * ERROR say whether the stream is complete */
    SSL_CTX_set_options(c->ssl_ctx, SSL_OP_IGNORE_UNEXPECTED_EOF | SSL_OP_NO_RENEGOTIATION);
    if (!tls->insecure) {
        if (tls->ca && *tls->ca) {
            if (SSL_CTX_load_verify_locations(c->ssl_ctx, tls->ca, NULL) != 1)
                return tls_setup_fail(c, err, "CA file", tls->ca);
        } else if (SSL_CTX_set_default_verify_paths(c->ssl_ctx) != 1) {
            return tls_setup_fail(c, err, "CA", "(the system's)");
        }
        SSL_CTX_set_verify(c->ssl_ctx, SSL_VERIFY_PEER, NULL);
    }
    if (tls->cert && *tls->cert) {
        if (SSL_CTX_use_certificate_chain_file(c->ssl_ctx, tls->cert) != 1)
            return tls_setup_fail(c, err, "certificate", tls->cert);
        if (SSL_CTX_use_PrivateKey_file(c->ssl_ctx, tls->key, SSL_FILETYPE_PEM) != 1 ||
            SSL_CTX_check_private_key(c->ssl_ctx) != 1)
            return tls_setup_fail(c, err, "key", tls->key);
    }
    c->ssl = SSL_new(c->ssl_ctx);
    if (c->ssl == NULL || SSL_set_fd(c->ssl, c->fd) != 1)
        return cvd_err_set(err, CVD_ENOMEM, "TLS: out of memory");
    /* the output buffer moves (out_room) and may be sent in parts */
    SSL_set_mode(c->ssl, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    int is_ip = inet_pton(AF_INET, name, ip) == 1 || inet_pton(AF_INET6, name, ip) == 1;
    if (!is_ip)
        SSL_set_tlsext_host_name(c->ssl, name);
    if (!tls->insecure && (is_ip ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(c->ssl), name)
                                 : SSL_set1_host(c->ssl, name)) != 1)
        return cvd_err_set(err, CVD_EINVAL,
                           "TLS: '%s' is not a name or address to check the "
                           "server's certificate against",
                           name);
    for (;;) {
        ERR_clear_error();
        int r = SSL_connect(c->ssl);
        if (r == 1)
            return 0;
        int e = SSL_get_error(c->ssl, r);
        if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
            long v = SSL_get_verify_result(c->ssl);
            int sys = errno;
            tls_reason(c);
            if (v != X509_V_OK)
                return cvd_err_set(err, CVD_EIO,
                                   "TLS handshake with %s: %s (the server's certificate: %s)",
                                   c->peer, c->tls_err, X509_verify_cert_error_string(v));
            if (e == SSL_ERROR_SYSCALL && ERR_peek_error() == 0)
                return cvd_err_set(err, CVD_EIO,
                                   "TLS handshake with %s: the server closed the connection "
                                   "(%s; not a TLS listener, or our certificate was refused)",
                                   c->peer, sys ? strerror(sys) : "no answer");
            return cvd_err_set(err, CVD_EIO, "TLS handshake with %s: %s", c->peer, c->tls_err);
        }
        struct pollfd p = {c->fd, e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, 0};
        int wait = -1;
        if (deadline > 0) {
            double left = deadline - now_s();
            if (left <= 0)
                return cvd_err_set(err, CVD_EIO, "TLS handshake with %s: timed out after %d ms",
                                   c->peer, timeout_ms);
            wait = (int)(left * 1e3) + 1;
        }
        if (poll(&p, 1, wait) < 0 && errno != EINTR)
            return cvd_err_set(err, CVD_EIO, "poll %s: %s", c->peer, strerror(errno));
    }
}

const char *cvd_client_tls_version(const cvd_client *c)
{
    return c->ssl ? SSL_get_version(c->ssl) : NULL;
}

void cvd_client_close(cvd_client *c)
{
    if (c == NULL)
        return;
    if (c->fd >= 0) {
        if (c->hello_sent && !c->failed && !c->bye_received && !c->eof &&
            queue_control(c, CVD_FR_BYE, 0, NULL) == 0)
            flush_some(c, NULL);
        if (c->ssl && !c->failed) {
            ERR_clear_error();
            SSL_shutdown(c->ssl); /* close_notify, if the socket takes it now */
        }
        close(c->fd);
    }
    SSL_free(c->ssl);
    SSL_CTX_free(c->ssl_ctx);
    cvd_fr_decoder_destroy(c->dec);
    free(c->out);
    free(c->in);
    free(c->q);
    free(c);
}

void cvd_client_set_timeout(cvd_client *c, int timeout_ms)
{
    c->timeout_ms = timeout_ms;
}

int cvd_client_fd(const cvd_client *c)
{
    return c->fd;
}

const char *cvd_client_peer(const cvd_client *c)
{
    return c->peer;
}

int cvd_client_server_error(const cvd_client *c)
{
    return c->server_error;
}

void cvd_client_get_stats(const cvd_client *c, cvd_client_stats *s)
{
    *s = c->st;
    s->next_frame = c->end_frame - (c->q_len - c->q_off) / (c->out_fb ? c->out_fb : 1);
}

const cvd_client_accept *cvd_client_accepted(const cvd_client *c)
{
    return c->accepted ? &c->acc : NULL;
}

/* ---- the session -------------------------------------------------------------------------- */

int cvd_client_hello(cvd_client *c, const cvd_client_request *h, cvd_client_accept *acc,
                     cvd_err *err)
{
    cvd_fr_hello fh;
    cvd_bytes b;
    cvd_err e = {0};
    size_t sb, out_need;
    int rc;

    if (c->failed)
        return sticky(c, err);
    if (c->hello_sent)
        return cvd_err_set(err, CVD_ESTATE, "%s: HELLO was sent already (one per connection)",
                           c->peer);
    if (h->role != CVD_CLIENT_PROCESS && h->role != CVD_CLIENT_SUBSCRIBE)
        return cvd_err_set(err, CVD_EINVAL, "role %d: must be process (0) or subscribe (1)",
                           h->role);
    if ((sb = cvd_sample_bytes(h->format)) == 0)
        return cvd_err_set(err, CVD_EINVAL, "sample format %d: must be f32le (1) or s16le (2)",
                           h->format);
    if (h->channels < 0 || h->channels > CVD_FR_MAX_CHANNELS)
        return cvd_err_set(err, CVD_EINVAL, "channels %d: must be from 0 to %d", h->channels,
                           CVD_FR_MAX_CHANNELS);
    if (h->role == CVD_CLIENT_SUBSCRIBE && (h->stream == NULL || h->stream[0] == '\0'))
        return cvd_err_set(err, CVD_EINVAL, "subscribe: the stream name is missing");
    /* version 2 carries a token; without one, version 1, which every server speaks */
    fh.version = h->token && *h->token ? 2 : 1;
    fh.token = h->token;
    fh.role = (uint8_t)h->role;
    fh.format = (uint8_t)h->format;
    fh.rate = h->rate;
    fh.channels = (uint16_t)h->channels;
    fh.block = h->block;
    fh.model = h->model;
    fh.stream = h->stream;
    out_room(c, 0);
    b = out_bytes(c);
    if ((rc = cvd_fr_put_hello(&b, &fh, &e)) < 0)
        return cvd_err_set(err, rc, "%s", e.msg);
    c->out_len = b.len;
    c->hello_sent = 1;
    c->role = h->role;
    c->st.messages_sent++;
    if ((rc = flush_all(c, err)) < 0)
        return rc;
    while (!c->accepted)
        if ((rc = pump_wait(c, "waiting for ACCEPT", err)) < 0)
            return rc;

    if (c->acc.format != h->format)
        return cl_fail(c, CVD_EFORMAT, err, "%s: ACCEPT has sample format %s, HELLO asked %s",
                       c->peer, cvd_sample_format_name(c->acc.format),
                       cvd_sample_format_name(h->format));
    if (h->role == CVD_CLIENT_PROCESS && h->channels != 0 && c->acc.in_channels != h->channels)
        return cl_fail(c, CVD_EFORMAT, err, "%s: ACCEPT takes %d input channels, HELLO offered %d",
                       c->peer, c->acc.in_channels, h->channels);
    c->in_fb = sb * (size_t)c->acc.in_channels;
    c->out_fb = sb * (size_t)c->acc.out_channels;
    c->send_max_frames = cvd_fr_max_frames(c->acc.max_message, c->in_fb);
    if (h->block > 0 && h->block < c->send_max_frames)
        c->send_max_frames = h->block;
    if (h->role == CVD_CLIENT_PROCESS && c->send_max_frames == 0)
        return cl_fail(c, CVD_ERANGE, err,
                       "%s: a frame of %zu bytes does not fit the server's messages of %lu "
                       "bytes",
                       c->peer, c->in_fb, (unsigned long)c->acc.max_message);
    out_need = (size_t)c->acc.max_message + 4 + OUT_RESERVE;
    if (out_need > c->out_cap && grow(&c->out, &c->out_cap, out_need) < 0)
        return cl_fail(c, CVD_ENOMEM, err, "out of memory (%zu bytes)", out_need);
    if (acc)
        *acc = c->acc;
    return 0;
}

int cvd_client_subscribe(cvd_client *c, const char *stream, int format, cvd_client_accept *acc,
                         cvd_err *err)
{
    cvd_client_request h;
    cvd_client_request_init(&h);
    h.role = CVD_CLIENT_SUBSCRIBE;
    h.format = format;
    h.stream = stream;
    return cvd_client_hello(c, &h, acc, err);
}

static int can_send(cvd_client *c, cvd_err *err)
{
    if (c->failed)
        return sticky(c, err);
    if (!c->accepted)
        return cvd_err_set(err, CVD_ESTATE,
                           "%s: send before the session was accepted (call "
                           "cvd_client_hello first)",
                           c->peer);
    if (c->role != CVD_CLIENT_PROCESS)
        return cvd_err_set(err, CVD_ESTATE, "%s: a subscriber cannot send frames", c->peer);
    if (c->end_sent)
        return cvd_err_set(err, CVD_ESTATE, "%s: send after END", c->peer);
    return 0;
}

static int send_frames(cvd_client *c, const void *src, size_t n, int raw, cvd_err *err)
{
    const uint8_t *bytes = src;
    const float *frames = src;
    int rc;
    if ((rc = can_send(c, err)) < 0)
        return rc;
    while (n > 0) {
        size_t k = n < c->send_max_frames ? n : c->send_max_frames;
        size_t size = cvd_fr_data_size(k, c->in_fb);
        cvd_bytes b;
        cvd_err e = {0};
        while (!out_room(c, size + OUT_RESERVE))
            if ((rc = pump_wait(c, "sending to the server", err)) < 0)
                return rc;
        b = out_bytes(c);
        if (raw)
            rc = cvd_fr_put_data_bytes(&b, c->seq, c->st.frames_sent, 0, bytes, k * c->in_fb, &e);
        else
            rc = cvd_fr_put_data(&b, c->seq, c->st.frames_sent, 0, c->acc.format, frames, k,
                                 c->acc.in_channels, &e);
        if (rc < 0)
            return cl_fail(c, rc, err, "%s: %s", c->peer, e.msg);
        c->out_len = b.len;
        c->seq++;
        c->st.frames_sent += k;
        c->st.messages_sent++;
        if (raw)
            bytes += k * c->in_fb;
        else
            frames += k * (size_t)c->acc.in_channels;
        n -= k;
        if ((rc = flush_some(c, err)) < 0)
            return rc;
    }
    return flush_all(c, err);
}

int cvd_client_send(cvd_client *c, const float *frames, size_t n, cvd_err *err)
{
    return send_frames(c, frames, n, 0, err);
}

int cvd_client_send_bytes(cvd_client *c, const void *samples, size_t n, cvd_err *err)
{
    return send_frames(c, samples, n, 1, err);
}

int cvd_client_end(cvd_client *c, cvd_err *err)
{
    int rc;
    if (c->failed)
        return sticky(c, err);
    if (!c->accepted)
        return cvd_err_set(err, CVD_ESTATE, "%s: END before the session was accepted", c->peer);
    if (c->end_sent)
        return flush_all(c, err);
    if ((rc = queue_control(c, CVD_FR_END, 0, err)) < 0)
        return rc;
    c->end_sent = 1;
    return flush_all(c, err);
}

static long recv_frames(cvd_client *c, void *dst, size_t max_frames, int timeout_ms, int raw,
                        cvd_err *err)
{
    const double deadline = timeout_ms > 0 ? now_s() + 1e-3 * timeout_ms : 0;
    int rc;
    /* after a failure (an ERROR from the server, say), the frames that came before it are
     * still delivered; then the error */
    if (c->failed && (!c->accepted || c->q_off == c->q_len || max_frames == 0))
        return sticky(c, err);
    if (!c->accepted)
        return cvd_err_set(err, CVD_ESTATE, "%s: receive before the session was accepted", c->peer);
    for (;;) {
        size_t avail = (c->q_len - c->q_off) / c->out_fb;
        int wait;
        if (avail > 0 && max_frames > 0) {
            size_t n = avail < max_frames ? avail : max_frames;
            if (raw)
                memcpy(dst, c->q + c->q_off, n * c->out_fb);
            else
                cvd_samples_decode(c->acc.format, c->q + c->q_off, n * (size_t)c->acc.out_channels,
                                   dst);
            c->q_off += n * c->out_fb;
            if (c->q_off == c->q_len)
                c->q_off = c->q_len = 0;
            c->st.frames_received += n;
            return (long)n;
        }
        if (c->end_received || max_frames == 0)
            return 0;
        if (timeout_ms < 0) {
            wait = c->timeout_ms > 0 ? c->timeout_ms : -1;
        } else if (timeout_ms == 0) {
            wait = 0;
        } else {
            double left = deadline - now_s();
            if (left <= 0)
                return 0;
            wait = (int)(left * 1e3) + 1;
        }
        rc = pump(c, wait, err);
        if (rc < 0)
            return rc;
        if (rc == 0) {
            if (timeout_ms >= 0)
                return 0;
            return cl_fail(c, CVD_EIO, err, "%s: timed out after %d ms waiting for output", c->peer,
                           c->timeout_ms);
        }
    }
}

long cvd_client_recv(cvd_client *c, float *frames, size_t max_frames, int timeout_ms, cvd_err *err)
{
    return recv_frames(c, frames, max_frames, timeout_ms, 0, err);
}

long cvd_client_recv_bytes(cvd_client *c, void *samples, size_t max_frames, int timeout_ms,
                           cvd_err *err)
{
    return recv_frames(c, samples, max_frames, timeout_ms, 1, err);
}

int cvd_client_done(const cvd_client *c)
{
    return c->end_received && c->q_off == c->q_len;
}

int cvd_client_ping(cvd_client *c, double *rtt_seconds, cvd_err *err)
{
    double t0;
    int rc;
    if (c->failed)
        return sticky(c, err);
    if (!c->accepted)
        return cvd_err_set(err, CVD_ESTATE, "%s: PING before the session was accepted", c->peer);
    if (c->end_received)
        return cvd_err_set(err, CVD_ESTATE, "%s: PING after the stream ended", c->peer);
    c->ping_token = c->ping_token * 6364136223846793005u + 1442695040888963407u;
    t0 = now_s();
    if ((rc = queue_control(c, CVD_FR_PING, c->ping_token, err)) < 0)
        return rc;
    c->pong_pending = 1;
    if ((rc = flush_all(c, err)) < 0)
        return rc;
    while (c->pong_pending) {
        if (c->end_received)
            return cvd_err_set(err, CVD_EIO, "%s: the stream ended before PONG", c->peer);
        if ((rc = pump_wait(c, "waiting for PONG", err)) < 0)
            return rc;
    }
    if (rtt_seconds)
        *rtt_seconds = now_s() - t0;
    return 0;
}
