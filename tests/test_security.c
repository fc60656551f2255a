/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_security.c - the daemon on a network (docs/SECURITY.md): TLS on each protocol (good
 * certificates, a wrong CA, plain TCP to a TLS port), client certificates, allow lists by IPv4
 * and IPv6 source (clients bound to 127.0.0.2), tokens and their scopes, certificates and
 * tokens reloaded while sessions run, and each limit: per-address connections, metrics_allow,
 * write_timeout, progress-based idle_timeout, max_block, max_stream_memory, streams built only
 * once a client sends, file descriptors running out, the truth about SIGTERM (ERROR
 * shutting_down, convd-cat keeping what came), the documented socat and openssl commands.
 *
 * Certificates are made at run time (tests/tls_util.h); daemons as in tests/test_daemon.c.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include "convd_client.h"
#include "daemon_util.h"
#include "net_util.h"
#include "testutil.h"
#include "tls_util.h"

TestSuite(security, .init = nu_suite_init, .fini = nu_suite_fini);

/* ---- configurations ------------------------------------------------------------------------ */

/* tls_cert and tls_key lines for the test's server certificate */
static const char *tls_lines(void)
{
    static char buf[3 * DU_PATH];
    snprintf(buf, sizeof buf, "tls_cert = %s\ntls_key = %s\n", tls_file("server.pem"),
             tls_file("server.key"));
    return buf;
}

static float *input_floats(size_t *n)
{
    return du_read_f32(INPUT, n);
}

/* The output convd-run gives for x through model path at block. */
static float *reference(const char *path, const float *x, size_t n, int block, size_t *n_out)
{
    cvd_model *m = du_load_model(path);
    float *r = du_ref_stream(m, block, x, n, n_out);
    cvd_model_unref(m);
    return r;
}

static void write_secret(const char *path, const char *text)
{
    du_write_file(path, text, strlen(text));
    cr_assert_eq(chmod(path, 0600), 0);
}

/* ---- a TLS client of the test's own (blocking OpenSSL on a socket) ------------------------- */

typedef struct tls_client {
    int fd;
    SSL_CTX *ctx;
    SSL *ssl;
    char err[512];
} tls_client;

/* Connects and handshakes; 0, or -1 with the reason in t->err. */
static int tls_connect(tls_client *t, int port, const char *ca, const char *cert, const char *key)
{
    memset(t, 0, sizeof *t);
    t->fd = du_connect(port);
    t->ctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_load_verify_locations(t->ctx, ca, NULL);
    SSL_CTX_set_verify(t->ctx, SSL_VERIFY_PEER, NULL);
    if (cert) {
        cr_assert_eq(SSL_CTX_use_certificate_chain_file(t->ctx, cert), 1);
        cr_assert_eq(SSL_CTX_use_PrivateKey_file(t->ctx, key, SSL_FILETYPE_PEM), 1);
    }
    t->ssl = SSL_new(t->ctx);
    SSL_set_fd(t->ssl, t->fd);
    X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(t->ssl), "127.0.0.1");
    struct timeval tv = {10, 0};
    setsockopt(t->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ERR_clear_error();
    if (SSL_connect(t->ssl) != 1) {
        unsigned long e = ERR_peek_last_error();
        snprintf(t->err, sizeof t->err, "%s (verify: %s)",
                 e ? ERR_reason_error_string(e) : "no error string",
                 X509_verify_cert_error_string(SSL_get_verify_result(t->ssl)));
        return -1;
    }
    return 0;
}

static void tls_close(tls_client *t)
{
    if (t->ssl)
        SSL_free(t->ssl);
    if (t->ctx)
        SSL_CTX_free(t->ctx);
    if (t->fd >= 0)
        close(t->fd);
    memset(t, 0, sizeof *t);
    t->fd = -1;
}

/* After the handshake: a TLS 1.3 server's refusal of our certificate comes as an alert on the
 * first read. 1 if the server ended the session (alert, EOF) within timeout. */
static int tls_refused(tls_client *t)
{
    char b[256];
    size_t got;
    int r = SSL_write(t->ssl, "x", 1);
    (void)r;
    ERR_clear_error();
    int rr = SSL_read_ex(t->ssl, b, sizeof b, &got);
    return rr != 1;
}

/* Sends `in`, then close_notify (or a bare FIN), and reads everything until the server closes.
 * Returns 1 if the server sent close_notify, 0 if it just closed. */
static int tls_stream(tls_client *t, const void *in, size_t len, du_buf *out, int close_notify)
{
    char b[65536];
    size_t off = 0, got;
    int sent_end = 0, clean = 0;
    double end = du_now() + 30;
    du_nonblock(t->fd, 1);
    du_buf_reserve(out, 0);
    while (du_now() < end) {
        if (off < len) {
            size_t w = 0, k = len - off < 16384 ? len - off : 16384;
            if (SSL_write_ex(t->ssl, (const char *)in + off, k, &w) == 1)
                off += w;
        } else if (!sent_end) {
            sent_end = 1;
            du_nonblock(t->fd, 0);
            if (close_notify)
                SSL_shutdown(t->ssl);
            else
                shutdown(t->fd, SHUT_WR);
            du_nonblock(t->fd, 1);
        }
        ERR_clear_error();
        int r = SSL_read_ex(t->ssl, b, sizeof b, &got);
        if (r == 1) {
            du_buf_add(out, b, got);
            continue;
        }
        int e = SSL_get_error(t->ssl, r);
        if (e == SSL_ERROR_ZERO_RETURN) {
            clean = 1;
            break;
        }
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
            struct pollfd p = {t->fd, POLLIN | (off < len ? POLLOUT : 0), 0};
            poll(&p, 1, 20);
            continue;
        }
        break; /* EOF without close_notify, or an error */
    }
    cr_assert_lt(du_now(), end, "the TLS stream did not end within 30 s");
    du_nonblock(t->fd, 0);
    return clean;
}

/* The peer certificate's CN. */
static void tls_peer_cn(tls_client *t, char *buf, size_t cap)
{
    X509 *x = SSL_get0_peer_certificate(t->ssl);
    buf[0] = '\0';
    if (x)
        X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, buf, (int)cap);
}

/* Sends n bytes then shuts the write side; reads to the end. Returns the output. */
static du_buf plain_stream(int fd, const void *p, size_t n)
{
    du_buf out = {0};
    du_buf_reserve(&out, 0);
    if (n)
        du_send_all_t(fd, p, n, 10);
    shutdown(fd, SHUT_WR);
    int rc = du_recv_eof(fd, &out, 15);
    cr_assert(rc == 1 || rc == -ECONNRESET, "no end of stream (%s)", strerror(-rc));
    close(fd);
    return out;
}

/* A framed session through the client library: x (n frames, 1 channel) through the listener's
 * model at block 64; 0, or the error (err) of the step that failed. */
static int framed_run(int port, const cvd_client_tls *tls, const char *token, const char *model,
                      const char *stream, const float *x, size_t n, du_buf *out, cvd_err *err)
{
    cvd_client *c = NULL;
    cvd_client_request h;
    int rc;
    du_buf_reserve(out, 0);
    out->len = 0;
    char ps[16];
    snprintf(ps, sizeof ps, "%d", port);
    if ((rc = cvd_client_connect_tls("127.0.0.1", ps, 10000, tls, &c, err)) < 0)
        return rc;
    cvd_client_request_init(&h);
    h.block = 64;
    h.model = model;
    h.stream = stream;
    h.token = token;
    if ((rc = cvd_client_hello(c, &h, NULL, err)) < 0)
        goto done;
    if ((rc = cvd_client_send(c, x, n, err)) < 0 || (rc = cvd_client_end(c, err)) < 0)
        goto done;
    float buf[4096];
    long got;
    while ((got = cvd_client_recv(c, buf, 4096, -1, err)) > 0)
        du_buf_add(out, buf, (size_t)got * sizeof(float));
    rc = got < 0 ? (int)got : 0;
done:
    cvd_client_close(c);
    return rc;
}

/* ---- TLS on each protocol ------------------------------------------------------------------ */

Test(security, tls_on_raw_line_and_framed_with_a_good_certificate)
{
    size_t nf;
    float *x = input_floats(&nf);
    du_buf l = {0};
    nu_listener(&l, "raw", "raw", tls_lines());
    nu_listener(&l, "line", "line", tls_lines());
    nu_listener(&l, "fr", "framed", tls_lines());
    char *conf = nu_conf_text(NULL, (char *)l.p);
    du_daemon d;
    du_daemon_start(&d, conf, 2);
    size_t nr;
    float *ref = reference(NAM_K, x, nf, 64, &nr);

    /* raw: the client's close_notify ends its input; the tail, then the server's */
    tls_client t;
    cr_assert_eq(tls_connect(&t, du_daemon_port(&d, "raw"), tls_file("ca.pem"), NULL, NULL), 0,
                 "%s", t.err);
    cr_assert_str_eq(SSL_get_version(t.ssl), "TLSv1.3");
    du_buf out = {0};
    cr_assert_eq(tls_stream(&t, x, nf * 4, &out, 1), 1, "raw: no close_notify from the server");
    du_assert_bytes(out.p, out.len, ref, nr * 4, "raw over TLS");
    tls_close(&t);
    du_buf_free(&out);

    /* line */
    du_buf in = {0}, want = {0};
    du_lines(&in, x, 1000, 1);
    size_t n1;
    float *r1 = reference(NAM_K, x, 1000, 64, &n1);
    du_lines(&want, r1, n1, 1);
    cr_assert_eq(tls_connect(&t, du_daemon_port(&d, "line"), tls_file("ca.pem"), NULL, NULL), 0,
                 "%s", t.err);
    cr_assert_eq(tls_stream(&t, in.p, in.len, &out, 1), 1);
    du_assert_bytes(out.p, out.len, want.p, want.len, "line over TLS");
    tls_close(&t);
    du_buf_free(&out);

    /* framed, through the client library */
    cvd_client_tls ct = {.ca = tls_file("ca.pem")};
    cvd_err err = {0};
    cr_assert_eq(framed_run(du_daemon_port(&d, "fr"), &ct, NULL, NULL, NULL, x, nf, &out, &err), 0,
                 "%s", err.msg);
    du_assert_bytes(out.p, out.len, ref, nr * 4, "framed over TLS");
    du_buf_free(&out);

    /* a FIN without close_notify ends the input too, and is counted as unclean */
    cr_assert_eq(tls_connect(&t, du_daemon_port(&d, "raw"), tls_file("ca.pem"), NULL, NULL), 0);
    tls_stream(&t, x, nf * 4, &out, 0);
    du_assert_bytes(out.p, out.len, ref, nr * 4, "raw over TLS ended by a FIN");
    tls_close(&t);
    du_buf_free(&out);
    int mp = du_daemon_metrics_port(&d);
    cr_assert_geq(du_metric_wait(mp, "convd_tls_unclean_closes_total", 1, 5), 1);
    cr_assert_geq(du_metric_now(mp, "convd_tls_handshakes_total"), 4);

    du_daemon_finish(&d, 10);
    free(x);
    free(ref);
    free(r1);
    du_buf_free(&in);
    du_buf_free(&want);
    du_buf_free(&l);
    free(conf);
}

Test(security, tls_refuses_a_wrong_ca_and_plain_tcp_on_each_protocol)
{
    size_t nf;
    float *x = input_floats(&nf);
    du_buf l = {0};
    nu_listener(&l, "raw", "raw", tls_lines());
    nu_listener(&l, "line", "line", tls_lines());
    nu_listener(&l, "fr", "framed", tls_lines());
    char *conf = nu_conf_text(NULL, (char *)l.p);
    du_daemon d;
    du_daemon_start(&d, conf, 1);
    const int pf = du_daemon_port(&d, "fr");
    const int mp = du_daemon_metrics_port(&d);

    /* raw and line: each protocol's bytes, and what a good client gets for them */
    size_t nr, n1;
    float *ref = reference(NAM_K, x, nf, 64, &nr);
    float *r1 = reference(NAM_K, x, 1000, 64, &n1);
    du_buf line_in = {0}, line_want = {0};
    du_lines(&line_in, x, 1000, 1);
    du_lines(&line_want, r1, n1, 1);
    const struct {
        const char *name;
        const void *in, *want;
        size_t in_len, want_len;
    } P[] = {
        {"raw", x, ref, nf * 4, nr * 4},
        {"line", line_in.p, line_want.p, line_in.len, line_want.len},
    };
    for (size_t i = 0; i < sizeof P / sizeof P[0]; i++) {
        const int port = du_daemon_port(&d, P[i].name);
        /* a client that trusts another CA: the handshake fails, on both sides */
        tls_client t;
        cr_assert_eq(tls_connect(&t, port, tls_file("other-ca.pem"), NULL, NULL), -1,
                     "%s: a server certificate from an unknown CA was accepted", P[i].name);
        cr_assert(strstr(t.err, "certificate verify failed"), "%s: %s", P[i].name, t.err);
        tls_close(&t);
        /* plain TCP: the protocol's bytes in clear get no output (a TLS alert at most), and
         * the connection is closed */
        du_buf got = plain_stream(du_connect(port), P[i].in, P[i].in_len);
        cr_assert(got.len < 64, "%s: %zu bytes came back to plain TCP on a TLS port", P[i].name,
                  got.len);
        cr_assert(got.len == 0 || got.p[0] == 0x15,
                  "%s: plain TCP got bytes other than a TLS "
                  "alert (first 0x%02x)",
                  P[i].name, got.p[0]);
        du_buf_free(&got);
        /* and a good client right after is served */
        du_buf out = {0};
        cr_assert_eq(tls_connect(&t, port, tls_file("ca.pem"), NULL, NULL), 0, "%s: %s", P[i].name,
                     t.err);
        cr_assert_eq(tls_stream(&t, P[i].in, P[i].in_len, &out, 1), 1,
                     "%s: no close_notify from the server", P[i].name);
        du_assert_bytes(out.p, out.len, P[i].want, P[i].want_len, P[i].name);
        tls_close(&t);
        du_buf_free(&out);
    }

    /* framed, through the client library: the error says what went wrong */
    cvd_client_tls ct = {.ca = tls_file("other-ca.pem")};
    du_buf out = {0};
    cvd_err err = {0};
    cr_assert_lt(framed_run(pf, &ct, NULL, NULL, NULL, x, 64, &out, &err), 0);
    cr_assert(strstr(err.msg, "TLS handshake") && strstr(err.msg, "certificate verify failed"),
              "%s", err.msg);
    cr_assert_lt(framed_run(pf, NULL, NULL, NULL, NULL, x, 64, &out, &err), 0);
    cr_assert(strstr(err.msg, "TLS listener?"), "%s", err.msg);
    /* two refusals on each protocol, each counted */
    cr_assert_geq(du_metric_wait(mp, "convd_tls_handshake_failures_total", 6, 5), 6);
    cr_assert_geq(du_metric_now(mp, "convd_disconnects_total{reason=\"tls\"}"), 6);

    /* and the daemon still serves a good client */
    ct.ca = tls_file("ca.pem");
    cr_assert_eq(framed_run(pf, &ct, NULL, NULL, NULL, x, nf, &out, &err), 0, "%s", err.msg);
    du_assert_bytes(out.p, out.len, ref, nr * 4, "framed over TLS");
    du_buf_free(&out);
    du_daemon_finish(&d, 10);
    free(x);
    free(ref);
    free(r1);
    du_buf_free(&line_in);
    du_buf_free(&line_want);
    du_buf_free(&l);
    free(conf);
}

Test(security, mutual_tls_needs_a_certificate_from_the_client_ca)
{
    size_t nf;
    float *x = input_floats(&nf);
    char extra[4 * DU_PATH];
    snprintf(extra, sizeof extra, "%stls_client_ca = %s\n", tls_lines(),
             tls_file("clients-ca.pem"));
    du_buf l = {0};
    nu_listener(&l, "raw", "raw", extra);
    du_buf_printf(&l, "[listen fr]\naddress = 127.0.0.1:0\nprotocol = framed\n%s\n", extra);
    char *conf = nu_conf_text(NULL, (char *)l.p);
    du_daemon d;
    du_daemon_start(&d, conf, 1);
    const int pr = du_daemon_port(&d, "raw"), pf = du_daemon_port(&d, "fr");
    size_t nr;
    float *ref = reference(NAM_K, x, nf, 64, &nr);

    /* no certificate, one from another CA: refused before a byte is read */
    const char *certs[][2] = {{NULL, NULL}, {"rogue-client.pem", "rogue-client.key"}};
    for (int i = 0; i < 2; i++) {
        tls_client t;
        int rc = tls_connect(&t, pr, tls_file("ca.pem"), certs[i][0] ? tls_file(certs[i][0]) : NULL,
                             certs[i][1] ? tls_file(certs[i][1]) : NULL);
        /* TLS 1.3: the client's handshake ends before the server checks its certificate; the
         * refusal is the alert that comes next */
        cr_assert(rc < 0 || tls_refused(&t), "client %d was served", i);
        tls_close(&t);
    }
    /* the client certificate: served */
    tls_client t;
    cr_assert_eq(
        tls_connect(&t, pr, tls_file("ca.pem"), tls_file("client.pem"), tls_file("client.key")), 0,
        "%s", t.err);
    du_buf out = {0};
    cr_assert_eq(tls_stream(&t, x, nf * 4, &out, 1), 1);
    du_assert_bytes(out.p, out.len, ref, nr * 4, "raw with a client certificate");
    tls_close(&t);
    du_buf_free(&out);

    /* framed: a verified client is authenticated: it may see the list of models */
    cvd_client_tls ct = {
        .ca = tls_file("ca.pem"), .cert = tls_file("client.pem"), .key = tls_file("client.key")};
    cvd_err err = {0};
    cr_assert_lt(framed_run(pf, &ct, NULL, "nope", NULL, x, 64, &out, &err), 0);
    cr_assert(strstr(err.msg, "unknown model 'nope' (models: k, w, g)"), "%s", err.msg);
    cr_assert_eq(framed_run(pf, &ct, NULL, "w", NULL, x, nf, &out, &err), 0, "%s", err.msg);
    cr_assert_eq(out.len, nf * 4);
    cr_assert_geq(
        du_metric_wait(du_daemon_metrics_port(&d), "convd_tls_handshake_failures_total", 2, 5), 2);
    du_buf_free(&out);
    du_daemon_finish(&d, 10);
    free(x);
    free(ref);
    du_buf_free(&l);
    free(conf);
}

/* The commands docs/PROTOCOL.md gives: socat for a raw file through TLS, openssl s_client for
 * a line listener, line by line. */
Test(security, socat_and_openssl_s_client_as_documented)
{
    if (system("socat -V >/dev/null 2>&1") != 0)
        cr_skip_test("no socat here (apt-get install socat)");
    size_t nf;
    float *x = input_floats(&nf);
    du_buf l = {0};
    nu_listener(&l, "raw", "raw", tls_lines());
    du_buf_printf(&l,
                  "[listen line]\naddress = 127.0.0.1:0\nprotocol = line\nmodel = g\n"
                  "block = 1\n%s\n",
                  tls_lines());
    char *conf = nu_conf_text(NULL, (char *)l.p);
    du_daemon d;
    du_daemon_start(&d, conf, 1);
    size_t nr;
    float *ref = reference(NAM_K, x, nf, 64, &nr);
    const char *in = du_tmp("in.f32"), *outp = du_tmp("out.f32");
    du_write_file(in, x, nf * 4);
    char cmd[4 * DU_PATH];
    snprintf(cmd, sizeof cmd, "socat -t 30 - OPENSSL:127.0.0.1:%d,cafile=%s < %s > %s",
             du_daemon_port(&d, "raw"), tls_file("ca.pem"), in, outp);
    cr_assert_eq(system(cmd), 0, "%s", cmd);
    size_t n_out;
    float *got = du_read_f32(outp, &n_out);
    du_assert_bytes(got, n_out * 4, ref, nr * 4, "socat through the raw TLS listener");
    free(got);

    /* s_client: three lines in, three answers out, while it keeps the session open */
    size_t ng;
    float *rg = reference(JSON_G, x, 6, 1, &ng);
    du_buf want = {0}, lines = {0};
    du_lines(&lines, x, 3, 2);
    du_lines(&want, rg, ng, 3);
    const char *lin = du_tmp("lines.txt"), *lout = du_tmp("lines.out");
    du_write_file(lin, lines.p, lines.len);
    snprintf(
        cmd, sizeof cmd,
        "(cat %s; sleep 2) | openssl s_client -connect 127.0.0.1:%d -CAfile %s -quiet -no_ign_eof "
        "> %s 2>/dev/null",
        lin, du_daemon_port(&d, "line"), tls_file("ca.pem"), lout);
    cr_assert_eq(system(cmd), 0, "%s", cmd);
    char *text = du_read_file(lout, NULL);
    cr_assert_not_null(text);
    /* the model's latency of 2 frames: the first answer comes with the third line */
    du_buf want1 = {0};
    du_lines(&want1, rg, 1, 3);
    cr_assert(strncmp(text, (char *)want1.p, want1.len) == 0,
              "s_client got \"%s\", want it to start with \"%s\"", text, (char *)want1.p);
    free(text);
    du_daemon_finish(&d, 10);
    free(x);
    free(ref);
    free(rg);
    du_buf_free(&want);
    du_buf_free(&want1);
    du_buf_free(&lines);
    du_buf_free(&l);
    free(conf);
}

/* ---- allow lists ---------------------------------------------------------------------------- */

static int served_from(const char *from, const char *host, int port, const float *x)
{
    int fd = nu_connect_from(from, host, port);
    cr_assert_geq(fd, 0, "connect from %s: %s", from, strerror(-fd));
    du_buf out = plain_stream(fd, x, 64 * 4);
    int ok = out.len == 64 * 4;
    du_buf_free(&out);
    return ok;
}

Test(security, allow_lists_by_ipv4_and_ipv6_source)
{
    size_t nf;
    float *x = input_floats(&nf);
    du_buf l = {0};
    nu_listener(&l, "only1", "raw", "allow = 127.0.0.1/32, [::1]/128");
    nu_listener(&l, "net", "raw", "allow = 127.0.0.0/30");
    nu_listener(&l, "v6only", "raw", "allow = [::1]/128");
    du_buf_printf(&l, "[listen six]\naddress = [::1]:0\nprotocol = raw\nmodel = k\n"
                      "allow = [::1]/128\n");
    du_buf_printf(&l, "[listen sixno]\naddress = [::1]:0\nprotocol = raw\nmodel = k\n"
                      "allow = [::2]/128, 127.0.0.1/32\n");
    char *conf = nu_conf_text("metrics_allow = 127.0.0.1/32", (char *)l.p);
    du_daemon d;
    du_daemon_start(&d, conf, 1);
    int p1 = du_daemon_port(&d, "only1"), pn = du_daemon_port(&d, "net"),
        p4 = du_daemon_port(&d, "v6only"), p6 = du_daemon_port(&d, "six"),
        p6n = du_daemon_port(&d, "sixno");
    const int mp = du_daemon_metrics_port(&d);

    cr_assert(served_from("127.0.0.1", "127.0.0.1", p1, x), "127.0.0.1 refused");
    cr_assert(!served_from("127.0.0.2", "127.0.0.1", p1, x), "127.0.0.2 served by a /32");
    cr_assert(served_from("127.0.0.2", "127.0.0.1", pn, x), "127.0.0.2 refused by a /30");
    cr_assert(served_from("127.0.0.3", "127.0.0.1", pn, x), "127.0.0.3 refused by a /30");
    cr_assert(!served_from("127.0.0.4", "127.0.0.1", pn, x), "127.0.0.4 served by 127.0.0.0/30");
    cr_assert(!served_from("127.0.0.1", "127.0.0.1", p4, x), "IPv4 served by an IPv6-only list");
    cr_assert(served_from("::1", "::1", p6, x), "::1 refused by [::1]/128");
    cr_assert(!served_from("::1", "::1", p6n, x), "::1 served by a list without it");
    cr_assert_geq(du_metric_wait(mp, "convd_disconnects_total{reason=\"not_allowed\"}", 4, 5), 4);

    /* metrics_allow: another source is closed without an answer, and counted */
    int fd = nu_connect_from("127.0.0.2", "127.0.0.1", mp);
    cr_assert_geq(fd, 0);
    const char req[] = "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n";
    du_send_all(fd, req, sizeof req - 1);
    du_buf resp = {0};
    du_recv_eof(fd, &resp, 5);
    cr_assert_eq(resp.len, 0, "/metrics answered 127.0.0.2: %s", resp.p);
    close(fd);
    du_buf_free(&resp);
    cr_assert_geq(du_metric_wait(mp, "convd_metrics_refused_total", 1, 5), 1);
    du_daemon_finish(&d, 10);
    free(x);
    du_buf_free(&l);
    free(conf);
}

/* ---- tokens --------------------------------------------------------------------------------- */

Test(security, tokens_and_their_scopes)
{
    size_t nf;
    float *x = input_floats(&nf);
    const char *tok = du_tmp("tokens");
    write_secret(tok, "proc-token process\n"
                      "studio-token process,publish=studio-*,subscribe=studio-*\n"
                      "pub-only publish=live-?\n"
                      "listen-token subscribe=studio-mix\n");
    du_buf l = {0};
    char extra[DU_PATH + 16];
    snprintf(extra, sizeof extra, "tokens = %s", tok);
    du_buf_printf(&l, "[listen fr]\naddress = 127.0.0.1:0\nprotocol = framed\nmodel = k\n%s\n",
                  extra);
    du_buf_printf(&l, "[listen open]\naddress = 127.0.0.1:0\nprotocol = framed\nmodel = k\n");
    char *conf = nu_conf_text(NULL, (char *)l.p);
    du_daemon d;
    du_daemon_start(&d, conf, 2);
    const int pf = du_daemon_port(&d, "fr"), po = du_daemon_port(&d, "open");
    const int mp = du_daemon_metrics_port(&d);
    size_t nr;
    float *ref = reference(NAM_K, x, nf, 64, &nr);
    du_buf out = {0};
    cvd_err err = {0};

    struct {
        const char *token, *stream;
        int port, want; /* 0 served, else the ERROR code */
    } cases[] = {
        {NULL, NULL, pf, CVD_FR_E_UNAUTHORIZED},            /* version 1: no token */
        {"wrong", NULL, pf, CVD_FR_E_UNAUTHORIZED},         /* unknown */
        {"proc-token", NULL, pf, 0},                        /* process */
        {"proc-token", "studio-a", pf, CVD_FR_E_FORBIDDEN}, /* no publish scope */
        {"studio-token", "studio-a", pf, 0},
        {"studio-token", "other", pf, CVD_FR_E_FORBIDDEN},
        {"pub-only", "live-1", pf, 0},              /* publish alone: that stream */
        {"pub-only", NULL, pf, CVD_FR_E_FORBIDDEN}, /* ...and nothing else */
        {"pub-only", "live-12", pf, CVD_FR_E_FORBIDDEN},
        {"listen-token", NULL, pf, CVD_FR_E_FORBIDDEN}, /* subscribe only */
        {NULL, NULL, po, 0},                            /* a listener without tokens */
        {NULL, "free-name", po, 0},
        {NULL, "studio-x", po, CVD_FR_E_FORBIDDEN}, /* a name tokens reserve */
        {NULL, "live-9", po, CVD_FR_E_FORBIDDEN},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cvd_client *c = NULL;
        char ps[16];
        snprintf(ps, sizeof ps, "%d", cases[i].port);
        cr_assert_eq(cvd_client_connect("127.0.0.1", ps, 10000, &c, &err), 0, "%s", err.msg);
        cvd_client_request h;
        cvd_client_request_init(&h);
        h.token = cases[i].token;
        h.stream = cases[i].stream;
        h.block = 64;
        int rc = cvd_client_hello(c, &h, NULL, &err);
        if (cases[i].want == 0) {
            cr_assert_eq(rc, 0, "case %zu: %s", i, err.msg);
            cr_assert_eq(cvd_client_send(c, x, nf, &err), 0, "%s", err.msg);
            cr_assert_eq(cvd_client_end(c, &err), 0, "%s", err.msg);
            du_buf_free(&out);
            du_buf_reserve(&out, 0);
            float buf[4096];
            long got;
            while ((got = cvd_client_recv(c, buf, 4096, -1, &err)) > 0)
                du_buf_add(&out, buf, (size_t)got * 4);
            cr_assert_eq(got, 0, "case %zu: %s", i, err.msg);
            du_assert_bytes(out.p, out.len, ref, nr * 4, "token case");
        } else {
            cr_assert_lt(rc, 0, "case %zu (token %s, stream %s) was served", i,
                         cases[i].token ? cases[i].token : "none",
                         cases[i].stream ? cases[i].stream : "none");
            cr_assert_eq(cvd_client_server_error(c), cases[i].want, "case %zu: %s", i, err.msg);
        }
        cvd_client_close(c);
    }

    /* subscriptions by scope: a publisher with its token, a subscriber allowed and one not */
    cvd_client *pub = NULL, *sub = NULL;
    char ps[16];
    snprintf(ps, sizeof ps, "%d", pf);
    cvd_client_request h;
    cvd_client_request_init(&h);
    h.token = "studio-token";
    h.stream = "studio-mix";
    cr_assert_eq(cvd_client_connect("127.0.0.1", ps, 10000, &pub, &err), 0);
    cr_assert_eq(cvd_client_hello(pub, &h, NULL, &err), 0, "%s", err.msg);
    const char *subs[] = {"listen-token", "studio-token", "proc-token", NULL};
    const int sub_want[] = {0, 0, CVD_FR_E_FORBIDDEN, CVD_FR_E_UNAUTHORIZED};
    for (int i = 0; i < 4; i++) {
        cvd_client_request s;
        cvd_client_request_init(&s);
        s.role = CVD_CLIENT_SUBSCRIBE;
        s.stream = "studio-mix";
        s.token = subs[i];
        cr_assert_eq(cvd_client_connect("127.0.0.1", ps, 10000, &sub, &err), 0);
        int rc = cvd_client_hello(sub, &s, NULL, &err);
        if (sub_want[i] == 0)
            cr_assert_eq(rc, 0, "subscriber %d: %s", i, err.msg);
        else
            cr_assert_eq(cvd_client_server_error(sub), sub_want[i], "subscriber %d: %s", i,
                         err.msg);
        cvd_client_close(sub);
    }
    cvd_client_close(pub);

    /* unknown models: no list for a client nobody knows */
    cvd_client *c = NULL;
    snprintf(ps, sizeof ps, "%d", po);
    cr_assert_eq(cvd_client_connect("127.0.0.1", ps, 10000, &c, &err), 0);
    cvd_client_request_init(&h);
    h.model = "nope";
    cr_assert_lt(cvd_client_hello(c, &h, NULL, &err), 0);
    cr_assert(strstr(err.msg, "unknown model 'nope'") && !strstr(err.msg, "models:"),
              "the model list went to an unauthenticated client: %s", err.msg);
    cvd_client_close(c);
    snprintf(ps, sizeof ps, "%d", pf);
    cr_assert_eq(cvd_client_connect("127.0.0.1", ps, 10000, &c, &err), 0);
    h.token = "proc-token";
    cr_assert_lt(cvd_client_hello(c, &h, NULL, &err), 0);
    cr_assert(strstr(err.msg, "(models: k, w, g)"), "a token holder gets the list: %s", err.msg);
    cvd_client_close(c);

    cr_assert_geq(du_metric_wait(mp, "convd_disconnects_total{reason=\"unauthorized\"}", 2, 5), 2);
    cr_assert_geq(du_metric_now(mp, "convd_disconnects_total{reason=\"forbidden\"}"), 6);
    du_buf_free(&out);
    du_daemon_finish(&d, 10);
    free(x);
    free(ref);
    du_buf_free(&l);
    free(conf);
}

Test(security, a_world_readable_tokens_file_is_refused)
{
    const char *tok = du_tmp("tokens");
    du_write_file(tok, "t process\n", 10);
    cr_assert_eq(chmod(tok, 0644), 0);
    du_buf l = {0};
    du_buf_printf(&l, "[listen fr]\naddress = 127.0.0.1:0\nprotocol = framed\ntokens = %s\n", tok);
    char *conf = nu_conf_text(NULL, (char *)l.p);
    const char *cp = du_tmp("check.conf");
    du_write_file(cp, conf, strlen(conf));
    const char *argv[] = {du_prog("convd"), "--check", "-c", cp, NULL};
    du_proc p = du_run(argv, 60);
    cr_assert_neq(p.status, 0);
    cr_assert(strstr(p.err, "tokens") && strstr(p.err, "readable by every user") &&
                  strstr(p.err, "chmod o-rwx"),
              "%s", p.err);
    du_proc_free(&p);
    /* and on raw: no handshake to carry a token */
    du_buf_free(&l);
    nu_listener(&l, "r", "raw", "tokens = /x");
    free(conf);
    conf = nu_conf_text(NULL, (char *)l.p);
    du_write_file(cp, conf, strlen(conf));
    p = du_run(argv, 60);
    cr_assert(strstr(p.err, "tokens: only framed listeners"), "%s", p.err);
    du_proc_free(&p);
    du_buf_free(&l);
    free(conf);
}

/* ---- reloads --------------------------------------------------------------------------------- */

static void copy_file(const char *from, const char *to)
{
    size_t n;
    char *p = du_read_file(from, &n);
    cr_assert_not_null(p, "%s", from);
    du_write_file(to, p, n);
    free(p);
}

Test(security, certificates_and_tokens_reload_while_sessions_run)
{
    size_t nf;
    float *x = input_floats(&nf);
    const char *cert = du_tmp("server.pem"), *key = du_tmp("server.key");
    const char *tok = du_tmp("tokens");
    copy_file(tls_file("server.pem"), cert);
    copy_file(tls_file("server.key"), key);
    write_secret(tok, "old-token process\n");
    du_buf l = {0};
    du_buf_printf(&l,
                  "[listen fr]\naddress = 127.0.0.1:0\nprotocol = framed\nmodel = k\n"
                  "tls_cert = %s\ntls_key = %s\ntokens = %s\n",
                  cert, key, tok);
    char *conf = nu_conf_text(NULL, (char *)l.p);
    du_daemon d;
    du_daemon_start(&d, conf, 1);
    const int pf = du_daemon_port(&d, "fr");
    char ps[16];
    snprintf(ps, sizeof ps, "%d", pf);
    size_t nr;
    float *ref = reference(NAM_K, x, nf, 64, &nr);

    /* a session starts with the old certificate and token */
    cvd_client_tls ct = {.ca = tls_file("ca.pem")};
    cvd_client *c = NULL;
    cvd_err err = {0};
    cr_assert_eq(cvd_client_connect_tls("127.0.0.1", ps, 10000, &ct, &c, &err), 0, "%s", err.msg);
    cvd_client_request h;
    cvd_client_request_init(&h);
    h.token = "old-token";
    h.block = 64;
    cr_assert_eq(cvd_client_hello(c, &h, NULL, &err), 0, "%s", err.msg);
    cr_assert_eq(cvd_client_send(c, x, nf / 2, &err), 0, "%s", err.msg);

    /* new files, SIGHUP */
    copy_file(tls_file("server2.pem"), cert);
    copy_file(tls_file("server2.key"), key);
    write_secret(tok, "new-token process\n");
    size_t from = 0;
    char *log = du_daemon_log(&d);
    from = strlen(log);
    free(log);
    kill(d.pid, SIGHUP);
    du_daemon_wait_log(&d, "reload:", from, 30, &log);
    cr_assert(strstr(log + from, "applied"), "the reload failed:\n%s", log + from);
    free(log);

    /* the running session carries on to its end */
    cr_assert_eq(cvd_client_send(c, x + nf / 2, nf - nf / 2, &err), 0, "%s", err.msg);
    cr_assert_eq(cvd_client_end(c, &err), 0, "%s", err.msg);
    du_buf out = {0};
    du_buf_reserve(&out, 0);
    float buf[4096];
    long got;
    while ((got = cvd_client_recv(c, buf, 4096, -1, &err)) > 0)
        du_buf_add(&out, buf, (size_t)got * 4);
    cr_assert_eq(got, 0, "the running session: %s", err.msg);
    du_assert_bytes(out.p, out.len, ref, nr * 4, "the session that spanned the reload");
    cvd_client_close(c);

    /* new sessions: the new certificate, the new token only */
    tls_client t;
    cr_assert_eq(tls_connect(&t, pf, tls_file("ca.pem"), NULL, NULL), 0, "%s", t.err);
    char cn[128];
    tls_peer_cn(&t, cn, sizeof cn);
    cr_assert_str_eq(cn, "convd-test-server-2");
    tls_close(&t);
    cr_assert_lt(framed_run(pf, &ct, "old-token", NULL, NULL, x, 64, &out, &err), 0);
    cr_assert(strstr(err.msg, "unauthorized"), "%s", err.msg);
    cr_assert_eq(framed_run(pf, &ct, "new-token", NULL, NULL, x, nf, &out, &err), 0, "%s", err.msg);
    du_assert_bytes(out.p, out.len, ref, nr * 4, "a session after the reload");

    /* a reload with a broken key keeps what runs */
    du_write_file(key, "garbage\n", 8);
    log = du_daemon_log(&d);
    from = strlen(log);
    free(log);
    kill(d.pid, SIGHUP);
    du_daemon_wait_log(&d, "reload failed", from, 30, &log);
    cr_assert(strstr(log + from, "tls_key"), "%s", log + from);
    free(log);
    cr_assert_eq(framed_run(pf, &ct, "new-token", NULL, NULL, x, nf, &out, &err), 0, "%s", err.msg);
    du_buf_free(&out);
    du_daemon_finish(&d, 10);
    free(x);
    free(ref);
    du_buf_free(&l);
    free(conf);
}
