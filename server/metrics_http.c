/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The metrics endpoint (metrics_http.h).
 */
#include "metrics_http.h"

#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "acl.h"
#include "log.h"
#include "uv_check.h"
#include "metrics.h"

struct cvd_metrics_http {
    uv_tcp_t server;
    int port;
    cvd_acl allow; /* metrics_allow; n 0: every address */
};

typedef struct http_client {
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_write_t wr;
    char req[8192];
    size_t len;
    char *resp;
    int closing;
} http_client;

static void http_freed(uv_handle_t *h)
{
    http_client *c = h->data;
    if (--c->closing == 0) {
        free(c->resp);
        free(c);
    }
}

static void http_close(http_client *c)
{
    if (c->closing)
        return;
    c->closing = 2;
    uv_close((uv_handle_t *)&c->tcp, http_freed);
    uv_close((uv_handle_t *)&c->timer, http_freed);
}

static void http_written(uv_write_t *wr, int status)
{
    (void)status; /* written or not, the connection ends */
    http_close(wr->data);
}

static void http_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    http_client *c = h->data;
    (void)hint;
    *buf = uv_buf_init(c->req + c->len, (unsigned)(sizeof c->req - 1 - c->len));
}

static void http_respond(http_client *c, const char *status, const char *type, const char *body)
{
    size_t bl = strlen(body);
    c->resp = malloc(bl + 256);
    if (c->resp == NULL) {
        http_close(c);
        return;
    }
    int n = snprintf(c->resp, 256,
                     "HTTP/1.1 %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                     "Connection: close\r\n\r\n",
                     status, type, bl);
    memcpy(c->resp + n, body, bl);
    uv_buf_t b = uv_buf_init(c->resp, (unsigned)(n + (int)bl));
    c->wr.data = c;
    (void)uv_read_stop((uv_stream_t *)&c->tcp); /* always succeeds (libuv's documentation) */
    if (uv_write(&c->wr, (uv_stream_t *)&c->tcp, &b, 1, http_written) < 0)
        http_close(c);
}

static void http_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    http_client *c = s->data;
    (void)buf;
    if (n < 0) {
        http_close(c);
        return;
    }
    c->len += (size_t)n;
    c->req[c->len] = '\0';
    if (strstr(c->req, "\r\n\r\n") == NULL && strstr(c->req, "\n\n") == NULL) {
        if (c->len >= sizeof c->req - 1)
            http_respond(c, "431 Request Header Fields Too Large", "text/plain", "too large\n");
        return;
    }
    if (strncmp(c->req, "GET ", 4) != 0) {
        http_respond(c, "405 Method Not Allowed", "text/plain", "only GET\n");
        return;
    }
    if (strncmp(c->req + 4, "/metrics ", 9) != 0 && strncmp(c->req + 4, "/metrics?", 9) != 0) {
        http_respond(c, "404 Not Found", "text/plain", "see /metrics\n");
        return;
    }
    char *text = cvd_metrics_render();
    if (text == NULL) {
        http_respond(c, "500 Internal Server Error", "text/plain", "out of memory\n");
        return;
    }
    http_respond(c, "200 OK", "text/plain; version=0.0.4; charset=utf-8", text);
    free(text);
}

static void http_timeout(uv_timer_t *t)
{
    http_close(t->data);
}

static void on_connection(uv_stream_t *server, int status)
{
    if (status < 0) {
        cvd_log_debug("metrics: accept: %s", uv_strerror(status));
        return;
    }
    http_client *c = calloc(1, sizeof *c);
    if (c == NULL)
        return; /* the connection waits in the backlog for the next try */
    CVD_UV_CHECK(uv_tcp_init(server->loop, &c->tcp));
    CVD_UV_CHECK(uv_timer_init(server->loop, &c->timer));
    c->tcp.data = c->timer.data = c;
    if (uv_accept(server, (uv_stream_t *)&c->tcp) < 0) {
        http_close(c);
        return;
    }
    /* metrics_allow: others are closed before a byte of theirs is read */
    const cvd_metrics_http *m = server->data;
    struct sockaddr_storage peer;
    int pl = sizeof peer;
    if (m->allow.n > 0 && (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&peer, &pl) < 0 ||
                           !cvd_acl_allows(&m->allow, (struct sockaddr *)&peer))) {
        cvd_metrics_event(CVD_EV_METRICS_REFUSED, 1);
        http_close(c);
        return;
    }
    /* the loop's cached time may be a long callback old (a loaded or sanitized daemon): the
     * client's 5 s count from now */
    uv_update_time(server->loop);
    CVD_UV_CHECK(uv_timer_start(&c->timer, http_timeout, 5000, 0));
    if (uv_read_start((uv_stream_t *)&c->tcp, http_alloc, http_read) < 0)
        http_close(c); /* the client is already gone */
}

static void on_server_closed(uv_handle_t *h)
{
    free(h->data);
}

void cvd_metrics_http_stop(cvd_metrics_http *m)
{
    if (m != NULL)
        uv_close((uv_handle_t *)&m->server, on_server_closed);
}

int cvd_metrics_http_port(const cvd_metrics_http *m)
{
    return m->port;
}

void cvd_metrics_http_set_allow(cvd_metrics_http *m, const cvd_acl *allow)
{
    if (m != NULL)
        m->allow = *allow;
}

int cvd_metrics_http_start(uv_loop_t *loop, const cvd_conf *c, cvd_metrics_http **out, cvd_err *err)
{
    struct sockaddr_storage ss;
    cvd_metrics_http *m;
    int rc;
    *out = NULL;
    if (!c->metrics_enabled)
        return CVD_OK;
    if ((m = calloc(1, sizeof *m)) == NULL)
        return cvd_err_set(err, CVD_ENOMEM, "metrics: out of memory");
    if (c->metrics_family == AF_INET6)
        rc = uv_ip6_addr(c->metrics_host, c->metrics_port, (struct sockaddr_in6 *)&ss);
    else
        rc = uv_ip4_addr(c->metrics_host, c->metrics_port, (struct sockaddr_in *)&ss);
    CVD_UV_CHECK(uv_tcp_init(loop, &m->server));
    m->server.data = m;
    m->allow = c->metrics_allow;
    if (rc == 0)
        rc = uv_tcp_bind(&m->server, (struct sockaddr *)&ss, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&m->server, 64, on_connection);
    if (rc < 0) {
        cvd_metrics_http_stop(m);
        return cvd_err_set(err, CVD_EIO, "metrics %s:%d: %s", c->metrics_host, c->metrics_port,
                           uv_strerror(rc));
    }
    struct sockaddr_storage b;
    int bl = sizeof b;
    CVD_UV_CHECK(uv_tcp_getsockname(&m->server, (struct sockaddr *)&b, &bl));
    m->port = ntohs(b.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&b)->sin6_port
                                            : ((struct sockaddr_in *)&b)->sin_port);
    cvd_log_info("metrics: http://%s%s%s:%d/metrics", c->metrics_family == AF_INET6 ? "[" : "",
                 c->metrics_host, c->metrics_family == AF_INET6 ? "]" : "", m->port);
    *out = m;
    return CVD_OK;
}
