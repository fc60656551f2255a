/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_transport.c - server/transport.c on a loop of the test's own, behind an acceptor, with
 * clients in a thread: plain TCP and TLS carry the same bytes both ways, a client's end of
 * input (FIN, close_notify, a FIN without close_notify) is one event, the server flushes and
 * closes its side, a caller that reads a little at a time gets every byte, and the timeouts
 * (a TLS handshake that never comes, output a client never reads) fire.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <sys/socket.h>
#include <uv.h>

#include "acceptor.h"
#include "daemon_util.h"
#include "metrics.h"
#include "tls_util.h"
#include "transport.h"

static void suite_init(void)
{
    signal(SIGPIPE, SIG_IGN); /* the clients write to sockets the server may close */
    du_tmp_make();
    du_deadline(60);
}

static void suite_fini(void)
{
    du_cleanup();
    du_tmp_remove();
}

TestSuite(transport, .init = suite_init, .fini = suite_fini);

/* ---- the server: one connection, echoing or collecting ----------------------------------- */

typedef struct server {
    uv_loop_t loop;
    cvd_acceptor *acc;
    int port;
    cvd_transport_opts opts;
    cvd_transport *t;
    size_t chunk;    /* plaintext the caller takes per read (its buffer's room) */
    int echo;        /* write back what comes */
    int pause_every; /* stop reading after each read, start again on the next turn */
    char buf[65536];
    du_buf got;
    int eof, clean, error, closed, handshakes;
    char err[512];
    uv_timer_t resume;
} server;

static void s_alloc(void *ctx, char **buf, size_t *cap)
{
    server *s = ctx;
    *buf = s->buf;
    *cap = s->chunk;
}

static void on_resume(uv_timer_t *h)
{
    server *s = h->data;
    if (s->t && !s->eof && !s->error)
        cvd_transport_read_start(s->t);
}

static void s_read(void *ctx, size_t n)
{
    server *s = ctx;
    du_buf_add(&s->got, s->buf, n);
    if (s->echo)
        cvd_transport_write(s->t, s->buf, n);
    if (s->pause_every) {
        cvd_transport_read_stop(s->t);
        uv_timer_start(&s->resume, on_resume, 0, 0);
    }
}

static void s_eof(void *ctx, int clean)
{
    server *s = ctx;
    s->eof = 1;
    s->clean = clean;
    cvd_transport_write(s->t, "tail", 4); /* output after the client's end: still delivered */
    cvd_transport_finish(s->t);
}

static void s_error(void *ctx, int what, const char *msg)
{
    server *s = ctx;
    s->error = what;
    snprintf(s->err, sizeof s->err, "%s", msg);
    cvd_transport_close(s->t);
}

static void s_closed(void *ctx)
{
    server *s = ctx;
    s->closed = 1;
    s->t = NULL;
}

static void s_handshake(void *ctx)
{
    ((server *)ctx)->handshakes++;
}

static const cvd_transport_cbs cbs = {.alloc = s_alloc,
                                      .read = s_read,
                                      .eof = s_eof,
                                      .error = s_error,
                                      .written = NULL,
                                      .handshake = s_handshake,
                                      .closed = s_closed};

static void on_fd(void *ctx, int fd, const struct sockaddr *peer)
{
    server *s = ctx;
    cvd_err err = {0};
    (void)peer;
    cr_assert_null(s->t, "a second connection");
    cr_assert_eq(cvd_transport_open(&s->loop, fd, &s->opts, &cbs, s, &s->t, &err), 0, "%s",
                 err.msg);
    cvd_transport_read_start(s->t);
}

static void server_start(server *s, cvd_tls_ctx *tls)
{
    memset(s, 0, sizeof *s);
    cr_assert_eq(uv_loop_init(&s->loop), 0);
    uv_timer_init(&s->loop, &s->resume);
    s->resume.data = s;
    s->opts.tls = tls;
    s->opts.write_timeout = 0.3;
    s->opts.handshake_timeout = 0.3;
    s->chunk = sizeof s->buf;
    du_buf_reserve(&s->got, 0);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    socklen_t al = sizeof a;
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    cr_assert_eq(listen(fd, 16), 0);
    getsockname(fd, (struct sockaddr *)&a, &al);
    s->port = ntohs(a.sin_port);
    cvd_err err = {0};
    cr_assert_eq(cvd_acceptor_start(&s->loop, fd, "t", on_fd, s, &s->acc, &err), 0);
}

static void on_tick(uv_timer_t *h)
{
    (void)h;
}

/* Runs the loop until the connection closed (or timeout_s). */
static void server_run(server *s, double timeout_s)
{
    double end = du_now() + timeout_s;
    uv_timer_t tick; /* wakes the loop to look at the clock */
    uv_timer_init(&s->loop, &tick);
    uv_timer_start(&tick, on_tick, 50, 50);
    while (!s->closed && du_now() < end)
        uv_run(&s->loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&tick, NULL);
    uv_run(&s->loop, UV_RUN_NOWAIT);
    cr_assert(s->closed, "the connection did not close within %.1f s", timeout_s);
}

static void server_stop(server *s)
{
    cvd_acceptor_stop(s->acc);
    uv_close((uv_handle_t *)&s->resume, NULL);
    uv_run(&s->loop, UV_RUN_DEFAULT);
    cr_assert_eq(uv_loop_close(&s->loop), 0, "a handle was left open");
    du_buf_free(&s->got);
}

/* ---- clients in a thread ------------------------------------------------------------------ */

typedef struct client {
    int port;
    int tls;          /* 0: plain TCP */
    const char *ca;   /* TLS: trust this */
    int close_notify; /* TLS: end with close_notify (else only a FIN) */
    int no_read;      /* never read (and a small receive buffer) */
    int plain_to_tls; /* send plain bytes (to a TLS server) */
    int idle;         /* connect and do nothing for idle ms */
    const uint8_t *in;
    size_t in_len;
    du_buf out;
    int done;
    char err[256];
} client;

static int tcp_connect(int port, int rcvbuf)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (rcvbuf)
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* a reader beside the writer: the echo must be read while the input is sent */
typedef struct reader {
    int fd;
    SSL *ssl;
    du_buf *out;
} reader;

static void *plain_reader(void *arg)
{
    reader *r = arg;
    char b[65536];
    ssize_t n;
    while ((n = recv(r->fd, b, sizeof b, 0)) > 0)
        du_buf_add(r->out, b, (size_t)n);
    return NULL;
}

static void *client_main(void *arg)
{
    client *c = arg;
    int fd = tcp_connect(c->port, c->no_read ? 4096 : 0);
    if (fd < 0) {
        snprintf(c->err, sizeof c->err, "connect: %s", strerror(errno));
        c->done = 1;
        return NULL;
    }
    du_buf_reserve(&c->out, 0);
    if (c->idle) {
        du_sleep_ms(c->idle);
    } else if (!c->tls || c->plain_to_tls) {
        reader r = {fd, NULL, &c->out};
        pthread_t th;
        if (!c->no_read)
            pthread_create(&th, NULL, plain_reader, &r);
        du_send_all_t(fd, c->in, c->in_len, 10);
        if (c->no_read) {
            du_sleep_ms(1500); /* the server gives up on us meanwhile */
        } else {
            shutdown(fd, SHUT_WR);
            pthread_join(th, NULL);
        }
    } else {
        /* TLS: one SSL, writes and reads interleaved with non-blocking attempts */
        SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
        SSL_CTX_load_verify_locations(ctx, c->ca, NULL);
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
        SSL *ssl = SSL_new(ctx);
        SSL_set_fd(ssl, fd);
        SSL_set1_host(ssl, "localhost");
        if (SSL_connect(ssl) != 1) {
            snprintf(c->err, sizeof c->err, "SSL_connect failed");
        } else {
            du_nonblock(fd, 1);
            size_t off = 0;
            int sent_end = 0, notify_done = 0;
            double end = du_now() + 20;
            char b[65536];
            int last_e = 0;
            while (du_now() < end || (snprintf(c->err, sizeof c->err,
                                               "timed out: SSL error %d, shutdown state %d, "
                                               "notify %d, sent %zu",
                                               last_e, SSL_get_shutdown(ssl), notify_done, off),
                                      0)) {
                if (off < c->in_len) {
                    size_t w = 0;
                    size_t k = c->in_len - off < 16384 ? c->in_len - off : 16384;
                    if (SSL_write_ex(ssl, c->in + off, k, &w) == 1)
                        off += w;
                } else if (!sent_end) {
                    sent_end = 1;
                    if (!c->close_notify)
                        shutdown(fd, SHUT_WR); /* a FIN, no close_notify */
                }
                /* close_notify, our side only, written whole (a blocking call: the server
                 * reads) */
                if (sent_end && c->close_notify && !notify_done) {
                    du_nonblock(fd, 0);
                    notify_done = SSL_shutdown(ssl) >= 0;
                    du_nonblock(fd, 1);
                }
                size_t got = 0;
                int r = SSL_read_ex(ssl, b, sizeof b, &got);
                if (r == 1) {
                    du_buf_add(&c->out, b, got);
                    continue;
                }
                int e = SSL_get_error(ssl, r);
                last_e = e;
                if (e == SSL_ERROR_ZERO_RETURN)
                    break; /* the server's close_notify */
                if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
                    struct pollfd p = {fd, POLLIN | (off < c->in_len ? POLLOUT : 0), 0};
                    poll(&p, 1, 10);
                    continue;
                }
                snprintf(c->err, sizeof c->err, "SSL_read: error %d", e);
                break;
            }
        }
        SSL_free(ssl);
        SSL_CTX_free(ctx);
    }
    close(fd);
    c->done = 1;
    return NULL;
}

static du_buf pattern(size_t n)
{
    du_buf b = {0};
    for (size_t i = 0; i < n; i++)
        du_buf_add(&b, &(uint8_t){(uint8_t)(i * 7 + (i >> 9))}, 1);
    return b;
}

static uint64_t metric(const char *name)
{
    char *m = cvd_metrics_render();
    char key[128];
    snprintf(key, sizeof key, "\n%s ", name);
    const char *h = strstr(m, key);
    cr_assert_not_null(h, "no %s", name);
    uint64_t v = strtoull(h + strlen(key), NULL, 10);
    free(m);
    return v;
}

/* ---- the tests ---------------------------------------------------------------------------- */

static void echo_case(int tls, int close_notify, size_t chunk, int pause_every)
{
    server s;
    cvd_tls_ctx *ctx = NULL;
    if (tls)
        cr_assert_eq(cvd_tls_server_ctx_create(tls_file("server.pem"), tls_file("server.key"), NULL,
                                               &ctx, NULL),
                     0);
    server_start(&s, ctx);
    s.echo = 1;
    s.chunk = chunk;
    s.pause_every = pause_every;
    s.opts.write_timeout = 10;
    du_buf in = pattern(tls ? 300000 : 1000000);
    client c = {.port = s.port,
                .tls = tls,
                .ca = tls ? tls_file("ca.pem") : NULL,
                .close_notify = close_notify,
                .in = in.p,
                .in_len = in.len};
    uint64_t unclean0 = metric("convd_tls_unclean_closes_total");
    pthread_t th;
    pthread_create(&th, NULL, client_main, &c);
    server_run(&s, 30);
    pthread_join(th, NULL);
    const char *what = tls ? (close_notify ? "TLS, close_notify" : "TLS, FIN only") : "plain";
    cr_assert_eq(c.err[0], 0, "%s: client: %s (server read %zu, client %zu, eof %d, error %d %s)",
                 what, c.err, s.got.len, c.out.len, s.eof, s.error, s.err);
    cr_assert_eq(s.error, 0, "%s: server error %d: %s (server read %zu, client got %zu, eof %d)",
                 what, s.error, s.err, s.got.len, c.out.len, s.eof);
    cr_assert(s.eof, "%s: no end of input", what);
    cr_assert_eq(s.clean, !tls || close_notify, "%s: clean %d", what, s.clean);
    cr_assert_eq(metric("convd_tls_unclean_closes_total") - unclean0, tls && !close_notify);
    cr_assert_eq(s.got.len, in.len, "%s: the server read %zu of %zu bytes", what, s.got.len,
                 in.len);
    cr_assert_eq(memcmp(s.got.p, in.p, in.len), 0, "%s: altered", what);
    /* the echo and the tail written after the end of input, then the server's close */
    cr_assert_eq(c.out.len, in.len + 4, "%s: the client read %zu of %zu bytes", what, c.out.len,
                 in.len + 4);
    cr_assert_eq(memcmp(c.out.p, in.p, in.len), 0);
    cr_assert_eq(memcmp(c.out.p + in.len, "tail", 4), 0);
    cr_assert_eq(s.handshakes, tls);
    du_buf_free(&in);
    du_buf_free(&c.out);
    server_stop(&s);
    cvd_tls_ctx_unref(ctx);
}

Test(transport, plain_echo_then_fin_then_the_tail)
{
    echo_case(0, 0, 65536, 0);
}

Test(transport, tls_echo_close_notify_is_a_clean_end)
{
    echo_case(1, 1, 65536, 0);
}

Test(transport, tls_fin_without_close_notify_ends_input_unclean)
{
    echo_case(1, 0, 65536, 0);
}

Test(transport, a_reader_with_little_room_gets_every_byte_plain)
{
    echo_case(0, 0, 100, 1);
}

Test(transport, a_reader_with_little_room_gets_every_byte_tls)
{
    echo_case(1, 1, 100, 1);
}

Test(transport, a_reader_with_7_bytes_of_room_tls)
{
    echo_case(1, 1, 7, 0);
}

Test(transport, plain_bytes_to_tls_fail_the_handshake)
{
    server s;
    cvd_tls_ctx *ctx = NULL;
    cr_assert_eq(
        cvd_tls_server_ctx_create(tls_file("server.pem"), tls_file("server.key"), NULL, &ctx, NULL),
        0);
    server_start(&s, ctx);
    uint64_t f0 = metric("convd_tls_handshake_failures_total");
    const char req[] = "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n";
    client c = {.port = s.port,
                .tls = 1,
                .plain_to_tls = 1,
                .in = (const uint8_t *)req,
                .in_len = sizeof req - 1};
    pthread_t th;
    pthread_create(&th, NULL, client_main, &c);
    server_run(&s, 10);
    pthread_join(th, NULL);
    cr_assert_eq(s.error, CVD_TR_TLS, "error %d: %s", s.error, s.err);
    cr_assert(strstr(s.err, "TLS handshake"), "%s", s.err);
    cr_assert_eq(s.got.len, 0);
    cr_assert_eq(metric("convd_tls_handshake_failures_total") - f0, 1);
    du_buf_free(&c.out);
    server_stop(&s);
    cvd_tls_ctx_unref(ctx);
}

Test(transport, a_tls_handshake_that_never_comes_times_out)
{
    server s;
    cvd_tls_ctx *ctx = NULL;
    cr_assert_eq(
        cvd_tls_server_ctx_create(tls_file("server.pem"), tls_file("server.key"), NULL, &ctx, NULL),
        0);
    server_start(&s, ctx);
    client c = {.port = s.port, .tls = 1, .idle = 1500};
    pthread_t th;
    pthread_create(&th, NULL, client_main, &c);
    double t0 = du_now();
    server_run(&s, 5);
    double took = du_now() - t0;
    pthread_join(th, NULL);
    cr_assert_eq(s.error, CVD_TR_HANDSHAKE_TIMEOUT, "error %d: %s", s.error, s.err);
    cr_assert_geq(took, 0.25, "closed after %.2f s, before handshake_timeout", took);
    server_stop(&s);
    cvd_tls_ctx_unref(ctx);
}

Test(transport, output_a_client_never_reads_times_out)
{
    server s;
    server_start(&s, NULL);
    s.echo = 1;
    /* 8 MB in, never read: the echo fills the client's buffers and stalls */
    du_buf in = pattern(8000000);
    client c = {.port = s.port, .no_read = 1, .in = in.p, .in_len = in.len};
    pthread_t th;
    pthread_create(&th, NULL, client_main, &c);
    server_run(&s, 10);
    pthread_join(th, NULL);
    cr_assert_eq(s.error, CVD_TR_WRITE_TIMEOUT, "error %d: %s", s.error, s.err);
    cr_assert(strstr(s.err, "could not be written for 0.3 s"), "%s", s.err);
    du_buf_free(&in);
    du_buf_free(&c.out);
    server_stop(&s);
}
