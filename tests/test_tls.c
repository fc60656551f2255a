/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_tls.c - server/tls.c, the TLS byte-stream layer, without sockets: a server session and
 * a client session (or a plain OpenSSL client) pass bytes to each other in memory, in pieces
 * of random sizes. Handshakes, versions, certificates (wrong CA, mutual TLS), half-close
 * with close_notify, writes before the handshake, contexts replaced while sessions run, load
 * errors, and the memory a session holds.
 */
#include <criterion/criterion.h>
#include <malloc.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "daemon_util.h"
#include "testutil.h"
#include "tls.h"
#include "tls_util.h"

static void suite_init(void)
{
    du_tmp_make();
    du_deadline(60);
}

static void suite_fini(void)
{
    du_cleanup();
    du_tmp_remove();
}

TestSuite(tls, .init = suite_init, .fini = suite_fini);

/* ---- a pair of sessions in memory --------------------------------------------------------- */

typedef struct side {
    cvd_tls *t;
    du_buf got; /* plaintext read */
    int closed; /* CVD_TLS_CLOSED seen */
    int rc;     /* the first error, 0 if none */
    cvd_err err;
} side;

/* Moves ciphertext from a to b in pieces of at most `piece` bytes; returns bytes moved. */
static size_t move(side *a, side *b, cvd_rng *rng, size_t piece)
{
    uint8_t buf[70000];
    size_t moved = 0;
    while (cvd_tls_pending(a->t) > 0) {
        size_t want = piece ? 1 + (size_t)tu_randint(rng, piece) : sizeof buf;
        if (want > sizeof buf)
            want = sizeof buf;
        size_t n = cvd_tls_take(a->t, buf, want);
        cr_assert_gt(n, 0);
        cr_assert_eq(cvd_tls_feed(b->t, buf, n, NULL), 0);
        moved += n;
    }
    return moved;
}

static void pull(side *s)
{
    uint8_t buf[8192];
    if (s->rc < 0 || s->closed)
        return;
    for (;;) {
        size_t got = 0;
        int rc = cvd_tls_read(s->t, buf, sizeof buf, &got, &s->err);
        du_buf_add(&s->got, buf, got);
        if (rc == CVD_TLS_CLOSED) {
            s->closed = 1;
            return;
        }
        if (rc < 0) {
            s->rc = rc;
            return;
        }
        if (got == 0)
            return;
    }
}

/* Runs both sides until nothing moves. */
static void pump(side *s, side *c, cvd_rng *rng, size_t piece)
{
    for (int i = 0; i < 10000; i++) {
        pull(s);
        pull(c);
        size_t m = move(c, s, rng, piece) + move(s, c, rng, piece);
        if (m == 0) {
            pull(s);
            pull(c);
            if (cvd_tls_pending(s->t) == 0 && cvd_tls_pending(c->t) == 0)
                return;
        }
    }
    cr_assert_fail("the sessions never settled");
}

static void side_free(side *s)
{
    cvd_tls_destroy(s->t);
    du_buf_free(&s->got);
}

static cvd_tls_ctx *server_ctx(const char *cert, const char *key, const char *client_ca)
{
    cvd_tls_ctx *c = NULL;
    cvd_err err = {0};
    int rc = cvd_tls_server_ctx_create(tls_file(cert), tls_file(key),
                                       client_ca ? tls_file(client_ca) : NULL, &c, &err);
    cr_assert_eq(rc, 0, "server context: %s", err.msg);
    return c;
}

static cvd_tls_ctx *client_ctx(const char *ca, const char *cert, const char *key)
{
    cvd_tls_ctx *c = NULL;
    cvd_err err = {0};
    int rc = cvd_tls_client_ctx_create(ca ? tls_file(ca) : NULL, ca != NULL,
                                       cert ? tls_file(cert) : NULL, key ? tls_file(key) : NULL, &c,
                                       &err);
    cr_assert_eq(rc, 0, "client context: %s", err.msg);
    return c;
}

static void open_pair(side *s, side *c, cvd_tls_ctx *sctx, cvd_tls_ctx *cctx, const char *host)
{
    cvd_err err = {0};
    memset(s, 0, sizeof *s);
    memset(c, 0, sizeof *c);
    cr_assert_eq(cvd_tls_create(sctx, NULL, &s->t, &err), 0, "%s", err.msg);
    cr_assert_eq(cvd_tls_create(cctx, host, &c->t, &err), 0, "%s", err.msg);
    du_buf_reserve(&s->got, 0);
    du_buf_reserve(&c->got, 0);
}

/* ---- handshakes and data ------------------------------------------------------------------ */

Test(tls, handshake_and_data_both_ways_in_pieces_of_any_size)
{
    cvd_tls_ctx *sctx = server_ctx("server.pem", "server.key", NULL);
    cvd_tls_ctx *cctx = client_ctx("ca.pem", NULL, NULL);
    const size_t pieces[] = {0, 1, 7, 1500};
    for (size_t k = 0; k < sizeof pieces / sizeof pieces[0]; k++) {
        cvd_rng rng;
        cvd_rng_seed(&rng, tu_seed() + k);
        side s, c;
        open_pair(&s, &c, sctx, cctx, "127.0.0.1");
        /* 300 KB client -> server, 200 KB back, written in random chunks */
        du_buf a = {0}, b = {0};
        for (size_t i = 0; i < 300000; i++)
            du_buf_add(&a, &(uint8_t){(uint8_t)(cvd_rng_next(&rng) >> 7)}, 1);
        for (size_t i = 0; i < 200000; i++)
            du_buf_add(&b, &(uint8_t){(uint8_t)(i * 31 + 7)}, 1);
        size_t off = 0;
        while (off < a.len) {
            size_t n = 1 + (size_t)tu_randint(&rng, 40000);
            if (n > a.len - off)
                n = a.len - off;
            cr_assert_eq(cvd_tls_write(c.t, a.p + off, n, NULL), 0);
            off += n;
            pump(&s, &c, &rng, pieces[k]);
        }
        cr_assert_eq(cvd_tls_write(s.t, b.p, b.len, NULL), 0);
        pump(&s, &c, &rng, pieces[k]);
        cr_assert_eq(s.rc, 0, "server: %s", s.err.msg);
        cr_assert_eq(c.rc, 0, "client: %s", c.err.msg);
        cr_assert(cvd_tls_handshake_done(s.t) && cvd_tls_handshake_done(c.t));
        cr_assert_str_eq(cvd_tls_version(s.t), "TLSv1.3", "1.3 is preferred");
        cr_assert_eq(s.got.len, a.len, "pieces of %zu: server read %zu of %zu bytes", pieces[k],
                     s.got.len, a.len);
        cr_assert_eq(memcmp(s.got.p, a.p, a.len), 0, "pieces of %zu: altered", pieces[k]);
        cr_assert_eq(c.got.len, b.len);
        cr_assert_eq(memcmp(c.got.p, b.p, b.len), 0);
        du_buf_free(&a);
        du_buf_free(&b);
        side_free(&s);
        side_free(&c);
    }
    cvd_tls_ctx_unref(sctx);
    cvd_tls_ctx_unref(cctx);
}

/* A plain OpenSSL client limited to one protocol version, over memory BIOs. */
typedef struct raw_client {
    SSL_CTX *ctx;
    SSL *ssl;
    BIO *rb, *wb;
} raw_client;

static void raw_open(raw_client *r, int version)
{
    r->ctx = SSL_CTX_new(TLS_client_method());
    cr_assert_not_null(r->ctx);
    SSL_CTX_set_min_proto_version(r->ctx, version);
    SSL_CTX_set_max_proto_version(r->ctx, version);
    SSL_CTX_set_security_level(r->ctx, 0); /* let it offer old versions */
    SSL_CTX_set_verify(r->ctx, SSL_VERIFY_NONE, NULL);
    r->ssl = SSL_new(r->ctx);
    r->rb = BIO_new(BIO_s_mem());
    r->wb = BIO_new(BIO_s_mem());
    BIO_set_mem_eof_return(r->rb, -1);
    SSL_set_bio(r->ssl, r->rb, r->wb);
    SSL_set_connect_state(r->ssl);
}

/* Handshakes a raw client with a server session; returns 1 if both sides completed. */
static int raw_handshake(raw_client *r, side *s)
{
    uint8_t buf[65536];
    for (int i = 0; i < 50; i++) {
        int hr = SSL_do_handshake(r->ssl);
        int n;
        while ((n = BIO_read(r->wb, buf, sizeof buf)) > 0)
            cvd_tls_feed(s->t, buf, (size_t)n, NULL);
        pull(s);
        size_t k;
        while ((k = cvd_tls_take(s->t, buf, sizeof buf)) > 0)
            BIO_write(r->rb, buf, (int)k);
        if (hr == 1 && cvd_tls_handshake_done(s->t))
            return 1;
        if (s->rc < 0)
            return 0;
        if (hr != 1 && SSL_get_error(r->ssl, hr) == SSL_ERROR_SSL)
            return 0;
    }
    return 0;
}

static void raw_close(raw_client *r)
{
    SSL_free(r->ssl);
    SSL_CTX_free(r->ctx);
}

Test(tls, tls12_is_served_and_older_versions_are_refused)
{
    cvd_tls_ctx *sctx = server_ctx("server.pem", "server.key", NULL);
    struct {
        int version;
        int ok;
        const char *name;
    } cases[] = {{TLS1_3_VERSION, 1, "TLSv1.3"},
                 {TLS1_2_VERSION, 1, "TLSv1.2"},
                 {TLS1_1_VERSION, 0, "TLSv1.1"},
                 {TLS1_VERSION, 0, "TLSv1"}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        side s = {0};
        raw_client r;
        cr_assert_eq(cvd_tls_create(sctx, NULL, &s.t, NULL), 0);
        raw_open(&r, cases[i].version);
        int ok = raw_handshake(&r, &s);
        cr_assert_eq(ok, cases[i].ok, "%s: handshake %s (server: %s)", cases[i].name,
                     ok ? "completed" : "failed", s.err.msg);
        if (ok)
            cr_assert_str_eq(cvd_tls_version(s.t), cases[i].name);
        else
            cr_assert(s.rc < 0 && strstr(s.err.msg, "TLS handshake"), "%s: %s", cases[i].name,
                      s.err.msg);
        raw_close(&r);
        side_free(&s);
    }
    cvd_tls_ctx_unref(sctx);
}

Test(tls, a_client_refuses_a_server_from_another_ca_or_with_another_name)
{
    cvd_tls_ctx *good = server_ctx("server.pem", "server.key", NULL);
    cvd_tls_ctx *other = server_ctx("other-server.pem", "other-server.key", NULL);
    cvd_tls_ctx *cctx = client_ctx("ca.pem", NULL, NULL);
    cvd_rng rng;
    cvd_rng_seed(&rng, tu_seed());
    side s, c;

    /* signed by a CA the client does not trust */
    open_pair(&s, &c, other, cctx, "127.0.0.1");
    cr_assert_eq(cvd_tls_write(c.t, "x", 1, NULL), 0);
    pump(&s, &c, &rng, 0);
    cr_assert_lt(c.rc, 0, "the client accepted a server from another CA");
    cr_assert(strstr(c.err.msg, "certificate verify failed"), "%s", c.err.msg);
    cr_assert_lt(s.rc, 0, "the server did not see the client's alert");
    cr_assert_eq(s.got.len, 0);
    side_free(&s);
    side_free(&c);

    /* the right CA, a name the certificate does not have */
    open_pair(&s, &c, good, cctx, "127.0.0.9");
    pump(&s, &c, &rng, 0);
    cr_assert_lt(c.rc, 0, "the client accepted a certificate for other names");
    cr_assert(strstr(c.err.msg, "IP address mismatch"), "%s", c.err.msg);
    side_free(&s);
    side_free(&c);

    /* and the names it has */
    const char *names[] = {"127.0.0.1", "::1", "localhost"};
    for (int i = 0; i < 3; i++) {
        open_pair(&s, &c, good, cctx, names[i]);
        pump(&s, &c, &rng, 0);
        cr_assert_eq(c.rc, 0, "%s: %s", names[i], c.err.msg);
        cr_assert(cvd_tls_handshake_done(c.t));
        side_free(&s);
        side_free(&c);
    }
    cvd_tls_ctx_unref(good);
    cvd_tls_ctx_unref(other);
    cvd_tls_ctx_unref(cctx);
}

Test(tls, mutual_tls_needs_a_client_certificate_from_the_client_ca)
{
    cvd_tls_ctx *sctx = server_ctx("server.pem", "server.key", "clients-ca.pem");
    cvd_tls_ctx *none = client_ctx("ca.pem", NULL, NULL);
    cvd_tls_ctx *rogue = client_ctx("ca.pem", "rogue-client.pem", "rogue-client.key");
    cvd_tls_ctx *good = client_ctx("ca.pem", "client.pem", "client.key");
    cvd_rng rng;
    cvd_rng_seed(&rng, tu_seed());
    side s, c;
    char subj[256];
    cr_assert(cvd_tls_ctx_verifies_peer(sctx));

    open_pair(&s, &c, sctx, none, "localhost");
    cr_assert_eq(cvd_tls_write(c.t, "hello", 5, NULL), 0);
    pump(&s, &c, &rng, 0);
    cr_assert_lt(s.rc, 0, "a client without a certificate was accepted");
    cr_assert(strstr(s.err.msg, "certificate"), "%s", s.err.msg);
    cr_assert_eq(s.got.len, 0, "bytes from an unverified client were read");
    side_free(&s);
    side_free(&c);

    open_pair(&s, &c, sctx, rogue, "localhost");
    cr_assert_eq(cvd_tls_write(c.t, "hello", 5, NULL), 0);
    pump(&s, &c, &rng, 0);
    cr_assert_lt(s.rc, 0, "a client certificate from another CA was accepted");
    cr_assert(strstr(s.err.msg, "certificate verify failed"), "%s", s.err.msg);
    cr_assert_eq(s.got.len, 0);
    side_free(&s);
    side_free(&c);

    open_pair(&s, &c, sctx, good, "localhost");
    cr_assert_eq(cvd_tls_write(c.t, "hello", 5, NULL), 0);
    pump(&s, &c, &rng, 0);
    cr_assert_eq(s.rc, 0, "%s", s.err.msg);
    cr_assert_eq(s.got.len, 5);
    cr_assert_eq(cvd_tls_peer_subject(s.t, subj, sizeof subj), 1);
    cr_assert(strstr(subj, "CN=studio-1"), "subject '%s'", subj);
    side_free(&s);
    side_free(&c);

    /* without client_ca, no certificate is asked for */
    cvd_tls_ctx *plain = server_ctx("server.pem", "server.key", NULL);
    cr_assert(!cvd_tls_ctx_verifies_peer(plain));
    open_pair(&s, &c, plain, none, "localhost");
    pump(&s, &c, &rng, 0);
    cr_assert_eq(s.rc, 0, "%s", s.err.msg);
    cr_assert_eq(cvd_tls_peer_subject(s.t, subj, sizeof subj), 0);
    side_free(&s);
    side_free(&c);
    cvd_tls_ctx_unref(plain);
    cvd_tls_ctx_unref(sctx);
    cvd_tls_ctx_unref(none);
    cvd_tls_ctx_unref(rogue);
    cvd_tls_ctx_unref(good);
}

/* ---- ending ------------------------------------------------------------------------------- */

Test(tls, close_notify_ends_the_input_and_the_other_side_still_writes)
{
    cvd_tls_ctx *sctx = server_ctx("server.pem", "server.key", NULL);
    cvd_tls_ctx *cctx = client_ctx("ca.pem", NULL, NULL);
    cvd_rng rng;
    cvd_rng_seed(&rng, tu_seed());
    side s, c;
    open_pair(&s, &c, sctx, cctx, "localhost");
    /* the client sends its input and closes its side at once */
    cr_assert_eq(cvd_tls_write(c.t, "input", 5, NULL), 0);
    cr_assert_eq(cvd_tls_close(c.t), 0);
    pump(&s, &c, &rng, 3);
    cr_assert_eq(s.rc, 0, "%s", s.err.msg);
    cr_assert_eq(s.got.len, 5, "the bytes before close_notify were all read");
    cr_assert(s.closed && cvd_tls_peer_closed(s.t), "the server saw no close_notify");
    cr_assert(!c.closed, "the client's input is still open");
    /* the server keeps sending (the tail), then closes */
    cr_assert_eq(cvd_tls_write(s.t, "output tail", 11, NULL), 0);
    cr_assert_eq(cvd_tls_close(s.t), 0);
    cr_assert_lt(cvd_tls_write(s.t, "more", 4, NULL), 0, "a write after close");
    pump(&s, &c, &rng, 3);
    cr_assert_eq(c.rc, 0, "%s", c.err.msg);
    cr_assert_eq(c.got.len, 11, "the client read %zu bytes", c.got.len);
    cr_assert_eq(memcmp(c.got.p, "output tail", 11), 0);
    cr_assert(c.closed, "the client saw no close_notify");
    side_free(&s);
    side_free(&c);

    /* a session whose peer just stops has not seen close_notify: the caller counts it */
    open_pair(&s, &c, sctx, cctx, "localhost");
    cr_assert_eq(cvd_tls_write(c.t, "abc", 3, NULL), 0);
    pump(&s, &c, &rng, 0);
    cr_assert_eq(s.got.len, 3);
    cr_assert(!cvd_tls_peer_closed(s.t));
    side_free(&s);
    side_free(&c);
    cvd_tls_ctx_unref(sctx);
    cvd_tls_ctx_unref(cctx);
}

Test(tls, writes_before_the_handshake_wait_for_it)
{
    cvd_tls_ctx *sctx = server_ctx("server.pem", "server.key", NULL);
    cvd_tls_ctx *cctx = client_ctx("ca.pem", NULL, NULL);
    cvd_rng rng;
    cvd_rng_seed(&rng, tu_seed());
    side s, c;
    open_pair(&s, &c, sctx, cctx, "localhost");
    /* the server refuses the client before a byte came (max_clients, say): written at once,
     * sent once the handshake is done, then close_notify */
    cr_assert_eq(cvd_tls_write(s.t, "busy\n", 5, NULL), 0);
    cr_assert_eq(cvd_tls_close(s.t), 0);
    cr_assert_eq(cvd_tls_backlog(s.t), 5);
    cr_assert_eq(cvd_tls_pending(s.t), 0, "ciphertext before any client hello");
    pump(&s, &c, &rng, 0);
    cr_assert_eq(c.rc, 0, "%s", c.err.msg);
    cr_assert_eq(c.got.len, 5);
    cr_assert_eq(memcmp(c.got.p, "busy\n", 5), 0);
    cr_assert(c.closed);
    cr_assert_eq(cvd_tls_backlog(s.t), 0);
    side_free(&s);
    side_free(&c);
    cvd_tls_ctx_unref(sctx);
    cvd_tls_ctx_unref(cctx);
}

Test(tls, plain_bytes_to_a_tls_session_are_an_error_not_a_hang)
{
    cvd_tls_ctx *sctx = server_ctx("server.pem", "server.key", NULL);
    const char *inputs[] = {"GET / HTTP/1.1\r\nHost: x\r\n\r\n", "0.5,0.25\n",
                            "\x16\x03\x01\x00\x05hello", "\x00\x00\x00\x01\x04"};
    const size_t lens[] = {27, 9, 10, 5};
    for (size_t i = 0; i < 4; i++) {
        side s = {0};
        cr_assert_eq(cvd_tls_create(sctx, NULL, &s.t, NULL), 0);
        cr_assert_eq(cvd_tls_feed(s.t, inputs[i], lens[i], NULL), 0);
        pull(&s);
        cr_assert_lt(s.rc, 0, "input %zu was taken as TLS", i);
        cr_assert(strncmp(s.err.msg, "TLS handshake: ", 15) == 0, "%s", s.err.msg);
        cr_assert(cvd_tls_failed(s.t));
        /* and it stays failed */
        size_t got;
        cr_assert_lt(cvd_tls_read(s.t, (char[8]){0}, 8, &got, NULL), 0);
        side_free(&s);
    }
    cvd_tls_ctx_unref(sctx);
}

/* ---- contexts ----------------------------------------------------------------------------- */

Test(tls, a_replaced_context_keeps_running_sessions_and_new_ones_use_the_new)
{
    cvd_tls_ctx *old = server_ctx("server.pem", "server.key", NULL);
    cvd_tls_ctx *cctx = client_ctx("ca.pem", NULL, NULL);
    cvd_rng rng;
    cvd_rng_seed(&rng, tu_seed());
    side s1, c1, s2, c2;
    open_pair(&s1, &c1, old, cctx, "localhost");
    pump(&s1, &c1, &rng, 0);
    cr_assert(cvd_tls_handshake_done(c1.t));
    /* the reload: a new context from other files; the listener drops the old one */
    cvd_tls_ctx *neu = server_ctx("server2.pem", "server2.key", NULL);
    cvd_tls_ctx_unref(old);
    open_pair(&s2, &c2, neu, cctx, "localhost");
    pump(&s2, &c2, &rng, 0);
    cr_assert_eq(c2.rc, 0, "%s", c2.err.msg);
    /* which certificate each client got: the running session the old, the new the new */
    char a[256], b[256];
    /* the running session still carries data both ways */
    cr_assert_eq(cvd_tls_write(c1.t, "still here", 10, NULL), 0);
    cr_assert_eq(cvd_tls_write(s1.t, "and here", 8, NULL), 0);
    pump(&s1, &c1, &rng, 0);
    cr_assert_eq(s1.got.len, 10);
    cr_assert_eq(c1.got.len, 8);
    cr_assert_eq(cvd_tls_peer_subject(c1.t, a, sizeof a), 1);
    cr_assert_eq(cvd_tls_peer_subject(c2.t, b, sizeof b), 1);
    cr_assert(strstr(a, "CN=localhost"), "%s", a);
    cr_assert(strstr(b, "CN=convd-test-server-2"), "%s", b);
    side_free(&s1);
    side_free(&c1);
    side_free(&s2);
    side_free(&c2);
    cvd_tls_ctx_unref(neu);
    cvd_tls_ctx_unref(cctx);
}

Test(tls, load_errors_name_the_directive_and_the_file)
{
    cvd_tls_ctx *c = NULL;
    cvd_err err = {0};
    int rc = cvd_tls_server_ctx_create(du_tmp("nope.pem"), tls_file("server.key"), NULL, &c, &err);
    cr_assert_lt(rc, 0);
    cr_assert_null(c);
    cr_assert(strstr(err.msg, "tls_cert") && strstr(err.msg, "nope.pem"), "%s", err.msg);

    rc = cvd_tls_server_ctx_create(tls_file("server.pem"), du_tmp("nokey.key"), NULL, &c, &err);
    cr_assert_lt(rc, 0);
    cr_assert(strstr(err.msg, "tls_key") && strstr(err.msg, "nokey.key"), "%s", err.msg);

    rc = cvd_tls_server_ctx_create(tls_file("server.pem"), tls_file("server2.key"), NULL, &c, &err);
    cr_assert_lt(rc, 0);
    cr_assert(strstr(err.msg, "not the key of tls_cert"), "%s", err.msg);

    /* a key where the certificate should be, and garbage as a CA file */
    rc = cvd_tls_server_ctx_create(tls_file("server.key"), tls_file("server.key"), NULL, &c, &err);
    cr_assert_lt(rc, 0);
    cr_assert(strstr(err.msg, "tls_cert"), "%s", err.msg);
    du_write_file(du_tmp("junk.pem"), "not a certificate\n", 18);
    rc = cvd_tls_server_ctx_create(tls_file("server.pem"), tls_file("server.key"),
                                   du_tmp("junk.pem"), &c, &err);
    cr_assert_lt(rc, 0);
    cr_assert(strstr(err.msg, "tls_client_ca") && strstr(err.msg, "junk.pem"), "%s", err.msg);

    rc = cvd_tls_client_ctx_create(NULL, 1, tls_file("client.pem"), NULL, &c, &err);
    cr_assert_lt(rc, 0);
    cr_assert(strstr(err.msg, "key"), "%s", err.msg);
}

/* ---- memory ------------------------------------------------------------------------------- */

/* The heap in use (glibc's count: small blocks and mmap'ed ones). The test is one thread in
 * its own process, so what changes between two calls is what the code in between holds. */
static size_t heap_used(void)
{
    struct mallinfo2 mi = mallinfo2();
    return mi.uordblks + mi.hblkhd;
}

Test(tls, a_session_holds_at_most_its_memory_figure)
{
#ifdef __SANITIZE_ADDRESS__
    cr_skip_test("under AddressSanitizer the heap is its own: mallinfo2 does not count it");
#endif
    cvd_tls_ctx *sctx = server_ctx("server.pem", "server.key", "clients-ca.pem");
    cvd_tls_ctx *cctx = client_ctx("ca.pem", "client.pem", "client.key");
    cvd_rng rng;
    cvd_rng_seed(&rng, tu_seed());
    side s, c;
    du_buf big = {0};
    for (int i = 0; i < 100000; i++)
        du_buf_add(&big, "0123456789", 10);
    /* the buffers the test reads into, at their final size before counting */
    du_buf sgot = {0}, cgot = {0};
    du_buf_reserve(&sgot, big.len + 65536);
    du_buf_reserve(&cgot, 4 * 65536 + 65536);
    const size_t base = heap_used();
    open_pair(&s, &c, sctx, cctx, "localhost");
    du_buf_free(&s.got);
    du_buf_free(&c.got);
    s.got = sgot;
    c.got = cgot;
    size_t peak = 0;
    cr_assert_eq(cvd_tls_write(c.t, big.p, big.len, NULL), 0);
    pump(&s, &c, &rng, 0);
    for (int i = 0; i < 4; i++) {
        cr_assert_eq(cvd_tls_write(s.t, big.p, 65536, NULL), 0);
        pump(&s, &c, &rng, 0);
        size_t h = heap_used() - base;
        if (h > peak)
            peak = h;
    }
    cr_assert_eq(s.rc, 0, "%s", s.err.msg);
    cr_assert_eq(s.got.len, big.len);
    cr_assert_eq(c.got.len, 4 * 65536);
    /* two sessions (a server and a client of about the same size) after a handshake with
     * certificates both ways and transfers both ways, everything read */
    const size_t settled = heap_used() - base;
    cr_assert_leq(settled, 2 * cvd_tls_session_bytes(),
                  "two settled sessions hold %zu bytes, over twice the figure of %zu", settled,
                  cvd_tls_session_bytes());
    cr_assert_gt(settled, cvd_tls_session_bytes() / 64, "implausibly little: %zu", settled);
    cr_log_info("two TLS sessions: %zu bytes settled, %zu at most between transfers", settled,
                peak);
    side_free(&s);
    side_free(&c);
    du_buf_free(&big);
    cvd_tls_ctx_unref(sctx);
    cvd_tls_ctx_unref(cctx);
}
