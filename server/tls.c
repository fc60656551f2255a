/* SPDX-License-Identifier: Apache-2.0 */
/*
 * TLS over memory BIOs (tls.h). One SSL per session with two memory BIOs: `rbio` holds the
 * ciphertext fed from the network, `wbio` collects what OpenSSL writes for the network. Every
 * OpenSSL call is preceded by ERR_clear_error(), since OpenSSL's error queue is per thread and
 * a stale entry would be reported as this session's error.
 */
#include "tls.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <arpa/inet.h>

struct cvd_tls_ctx {
    atomic_int refs;
    SSL_CTX *ssl;
    int server;
    int verify_peer;
};

struct cvd_tls {
    cvd_tls_ctx *ctx;
    SSL *ssl;
    BIO *rbio, *wbio;
    int server;
    int handshake_done;
    int peer_closed;
    int closed_told;  /* cvd_tls_read returned CVD_TLS_CLOSED */
    int close_wanted; /* cvd_tls_close() called: close_notify after the backlog */
    int close_sent;
    int failed;
    cvd_err fail;
    /* the most ciphertext each memory BIO held since it was made: a BIO keeps the capacity
     * of its largest burst, so a drained one that grew large is replaced (fresh_bio) */
    size_t rbio_high, wbio_high;
    /* plaintext written before the handshake completed */
    unsigned char *backlog;
    size_t backlog_len, backlog_cap;
};

/* OpenSSL's reason for the last failure on this thread, one line. */
static void ssl_reason(char *buf, size_t cap)
{
    unsigned long e, last = 0;
    while ((e = ERR_get_error()) != 0)
        last = e;
    if (last == 0) {
        snprintf(buf, cap, "unknown OpenSSL error");
        return;
    }
    const char *r = ERR_reason_error_string(last);
    if (r)
        snprintf(buf, cap, "%s", r);
    else
        ERR_error_string_n(last, buf, cap);
}

/* ---- contexts --------------------------------------------------------------------------- */

static int ctx_new(int server, cvd_tls_ctx **out, cvd_err *err)
{
    cvd_tls_ctx *c = calloc(1, sizeof *c);
    char why[256];
    *out = NULL;
    if (c == NULL)
        return cvd_err_set(err, CVD_ENOMEM, "out of memory");
    ERR_clear_error();
    c->ssl = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
    if (c->ssl == NULL) {
        ssl_reason(why, sizeof why);
        free(c);
        return cvd_err_set(err, CVD_ENOMEM, "TLS: cannot make a context: %s", why);
    }
    atomic_init(&c->refs, 1);
    c->server = server;
    /* TLS 1.2 at least; OpenSSL negotiates 1.3 first when both sides have it */
    SSL_CTX_set_min_proto_version(c->ssl, TLS1_2_VERSION);
    SSL_CTX_set_options(c->ssl, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
                                    SSL_OP_CIPHER_SERVER_PREFERENCE);
    /* record buffers are freed while a session is idle: thousands of quiet connections */
    SSL_CTX_set_mode(c->ssl, SSL_MODE_RELEASE_BUFFERS);
    if (server) {
        /* no resumption: nothing to keep per client, and a reload changes keys cleanly */
        SSL_CTX_set_session_cache_mode(c->ssl, SSL_SESS_CACHE_OFF);
        SSL_CTX_set_num_tickets(c->ssl, 0);
        SSL_CTX_set_options(c->ssl, SSL_OP_NO_TICKET);
    }
    *out = c;
    return CVD_OK;
}

static int load_error(cvd_tls_ctx *c, cvd_err *err, const char *what, const char *path)
{
    char why[256];
    ssl_reason(why, sizeof why);
    SSL_CTX_free(c->ssl);
    free(c);
    return cvd_err_set(err, CVD_EIO, "%s %s: %s", what, path, why);
}

int cvd_tls_server_ctx_create(const char *cert, const char *key, const char *client_ca,
                              cvd_tls_ctx **out, cvd_err *err)
{
    cvd_tls_ctx *c;
    int rc;
    *out = NULL;
    if (cert == NULL || *cert == '\0' || key == NULL || *key == '\0')
        return cvd_err_set(err, CVD_EINVAL, "TLS: a server needs tls_cert and tls_key");
    if ((rc = ctx_new(1, &c, err)) < 0)
        return rc;
    ERR_clear_error();
    if (SSL_CTX_use_certificate_chain_file(c->ssl, cert) != 1)
        return load_error(c, err, "tls_cert", cert);
    if (SSL_CTX_use_PrivateKey_file(c->ssl, key, SSL_FILETYPE_PEM) != 1) {
        if (ERR_GET_REASON(ERR_peek_last_error()) == X509_R_KEY_VALUES_MISMATCH) {
            ERR_clear_error();
            SSL_CTX_free(c->ssl);
            free(c);
            return cvd_err_set(err, CVD_EINVAL, "tls_key %s: not the key of tls_cert %s", key,
                               cert);
        }
        return load_error(c, err, "tls_key", key);
    }
    if (SSL_CTX_check_private_key(c->ssl) != 1) {
        char why[256];
        ssl_reason(why, sizeof why);
        SSL_CTX_free(c->ssl);
        free(c);
        return cvd_err_set(err, CVD_EINVAL, "tls_key %s: not the key of tls_cert %s (%s)", key,
                           cert, why);
    }
    if (client_ca && *client_ca) {
        STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(client_ca);
        if (names == NULL)
            return load_error(c, err, "tls_client_ca", client_ca);
        if (SSL_CTX_load_verify_locations(c->ssl, client_ca, NULL) != 1) {
            sk_X509_NAME_pop_free(names, X509_NAME_free);
            return load_error(c, err, "tls_client_ca", client_ca);
        }
        SSL_CTX_set_client_CA_list(c->ssl, names); /* owned by the context now */
        SSL_CTX_set_verify(c->ssl, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
        SSL_CTX_set_verify_depth(c->ssl, 8);
        c->verify_peer = 1;
    }
    *out = c;
    return CVD_OK;
}

int cvd_tls_client_ctx_create(const char *ca, int verify, const char *cert, const char *key,
                              cvd_tls_ctx **out, cvd_err *err)
{
    cvd_tls_ctx *c;
    int rc;
    *out = NULL;
    if ((cert && *cert) != (key && *key))
        return cvd_err_set(err, CVD_EINVAL,
                           "TLS: a client certificate needs its key, and a key "
                           "its certificate");
    if ((rc = ctx_new(0, &c, err)) < 0)
        return rc;
    ERR_clear_error();
    if (verify) {
        if (ca && *ca) {
            if (SSL_CTX_load_verify_locations(c->ssl, ca, NULL) != 1)
                return load_error(c, err, "CA file", ca);
        } else if (SSL_CTX_set_default_verify_paths(c->ssl) != 1) {
            return load_error(c, err, "CA", "(the system's)");
        }
        SSL_CTX_set_verify(c->ssl, SSL_VERIFY_PEER, NULL);
        c->verify_peer = 1;
    } else {
        SSL_CTX_set_verify(c->ssl, SSL_VERIFY_NONE, NULL);
    }
    if (cert && *cert) {
        if (SSL_CTX_use_certificate_chain_file(c->ssl, cert) != 1)
            return load_error(c, err, "certificate", cert);
        if (SSL_CTX_use_PrivateKey_file(c->ssl, key, SSL_FILETYPE_PEM) != 1)
            return load_error(c, err, "key", key);
        if (SSL_CTX_check_private_key(c->ssl) != 1)
            return load_error(c, err, "key", key);
    }
    *out = c;
    return CVD_OK;
}

cvd_tls_ctx *cvd_tls_ctx_ref(cvd_tls_ctx *c)
{
    if (c)
        atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed);
    return c;
}

void cvd_tls_ctx_unref(cvd_tls_ctx *c)
{
    if (c == NULL || atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) != 1)
        return;
    SSL_CTX_free(c->ssl);
    free(c);
}

int cvd_tls_ctx_verifies_peer(const cvd_tls_ctx *c)
{
    return c && c->server && c->verify_peer;
}

/* ---- sessions --------------------------------------------------------------------------- */

static int tls_fail(cvd_tls *t, cvd_err *err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int tls_fail(cvd_tls *t, cvd_err *err, const char *fmt, ...)
{
    if (!t->failed) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(t->fail.msg, sizeof t->fail.msg, fmt, ap);
        va_end(ap);
        t->fail.code = CVD_EIO;
        t->failed = 1;
    }
    if (err)
        *err = t->fail;
    return t->fail.code;
}

/* A memory BIO keeps the buffer of its largest burst; past this, a drained one is replaced. */
#define BIO_KEEP (16u * 1024)

static BIO *mem_bio(void)
{
    BIO *b = BIO_new(BIO_s_mem());
    if (b)
        BIO_set_mem_eof_return(b, -1); /* empty means "wait for more", not end of file */
    return b;
}

/* Gives back the memory of a drained BIO that grew past BIO_KEEP (a burst of output, a big
 * read): idle sessions hold little, whatever they once carried. */
static void trim_bios(cvd_tls *t)
{
    if (t->rbio_high > BIO_KEEP && BIO_ctrl_pending(t->rbio) == 0) {
        BIO *b = mem_bio();
        if (b) {
            SSL_set0_rbio(t->ssl, b); /* frees the old one */
            t->rbio = b;
            t->rbio_high = 0;
        }
    }
    if (t->wbio_high > BIO_KEEP && BIO_ctrl_pending(t->wbio) == 0) {
        BIO *b = mem_bio();
        if (b) {
            SSL_set0_wbio(t->ssl, b);
            t->wbio = b;
            t->wbio_high = 0;
        }
    }
}

int cvd_tls_create(cvd_tls_ctx *ctx, const char *host, cvd_tls **out, cvd_err *err)
{
    cvd_tls *t;
    char why[256];
    *out = NULL;
    if (ctx == NULL)
        return cvd_err_set(err, CVD_EINVAL, "TLS: no context");
    t = calloc(1, sizeof *t);
    if (t == NULL)
        return cvd_err_set(err, CVD_ENOMEM, "out of memory");
    ERR_clear_error();
    t->ssl = SSL_new(ctx->ssl);
    t->rbio = mem_bio();
    t->wbio = mem_bio();
    if (t->ssl == NULL || t->rbio == NULL || t->wbio == NULL) {
        ssl_reason(why, sizeof why);
        SSL_free(t->ssl);
        BIO_free(t->rbio);
        BIO_free(t->wbio);
        free(t);
        return cvd_err_set(err, CVD_ENOMEM, "TLS: %s", why);
    }
    SSL_set_bio(t->ssl, t->rbio, t->wbio); /* the SSL owns them now */
    t->ctx = cvd_tls_ctx_ref(ctx);
    t->server = ctx->server;
    if (ctx->server) {
        SSL_set_accept_state(t->ssl);
    } else {
        SSL_set_connect_state(t->ssl);
        if (host && *host) {
            unsigned char ip[16];
            int is_ip = inet_pton(AF_INET, host, ip) == 1 || inet_pton(AF_INET6, host, ip) == 1;
            int ok = 1;
            if (is_ip) {
                if (ctx->verify_peer)
                    ok = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(t->ssl), host) == 1;
            } else {
                ok = SSL_set_tlsext_host_name(t->ssl, host) == 1 &&
                     (!ctx->verify_peer || SSL_set1_host(t->ssl, host) == 1);
            }
            if (!ok) {
                ssl_reason(why, sizeof why);
                cvd_tls_destroy(t);
                return cvd_err_set(err, CVD_EINVAL, "TLS: host '%s': %s", host, why);
            }
        }
    }
    *out = t;
    return CVD_OK;
}

void cvd_tls_destroy(cvd_tls *t)
{
    if (t == NULL)
        return;
    SSL_free(t->ssl);
    cvd_tls_ctx_unref(t->ctx);
    free(t->backlog);
    free(t);
}

int cvd_tls_feed(cvd_tls *t, const void *data, size_t len, cvd_err *err)
{
    const unsigned char *p = data;
    if (t->failed)
        return tls_fail(t, err, "%s", t->fail.msg);
    while (len > 0) {
        int n = len > (1u << 30) ? 1 << 30 : (int)len;
        int w = BIO_write(t->rbio, p, n);
        if (w <= 0)
            return cvd_err_set(err, CVD_ENOMEM, "TLS: out of memory buffering %zu bytes", len);
        p += w;
        len -= (size_t)w;
    }
    size_t held = BIO_ctrl_pending(t->rbio);
    if (held > t->rbio_high)
        t->rbio_high = held;
    return CVD_OK;
}

/* The handshake failed or a record was bad: a message naming why. */
static int ssl_error(cvd_tls *t, int ret, cvd_err *err)
{
    char why[256];
    int e = SSL_get_error(t->ssl, ret);
    const char *stage = t->handshake_done ? "TLS" : "TLS handshake";
    if (e == SSL_ERROR_SSL) {
        long v = SSL_get_verify_result(t->ssl);
        ssl_reason(why, sizeof why);
        if (v != X509_V_OK)
            return tls_fail(t, err, "%s: %s (the %s's certificate: %s)", stage, why,
                            t->server ? "client" : "server", X509_verify_cert_error_string(v));
        return tls_fail(t, err, "%s: %s", stage, why);
    }
    if (e == SSL_ERROR_SYSCALL)
        return tls_fail(t, err, "%s: the transport failed", stage);
    return tls_fail(t, err, "%s: OpenSSL error %d", stage, e);
}

static int encrypt(cvd_tls *t, const void *data, size_t len, cvd_err *err)
{
    size_t done = 0;
    while (done < len) {
        size_t n = 0;
        ERR_clear_error();
        int r = SSL_write_ex(t->ssl, (const unsigned char *)data + done, len - done, &n);
        if (r != 1)
            return ssl_error(t, r, err); /* a memory BIO takes everything: never "want" */
        done += n;
    }
    return CVD_OK;
}

/* Encrypts what was written before the handshake, then a wanted close_notify. */
static int flush_backlog(cvd_tls *t, cvd_err *err)
{
    if (!t->handshake_done)
        return CVD_OK;
    if (t->backlog_len > 0) {
        size_t len = t->backlog_len;
        t->backlog_len = 0;
        int rc = encrypt(t, t->backlog, len, err);
        free(t->backlog);
        t->backlog = NULL;
        t->backlog_cap = 0;
        if (rc < 0)
            return rc;
    }
    if (t->close_wanted && !t->close_sent) {
        ERR_clear_error();
        SSL_shutdown(t->ssl); /* writes close_notify into wbio; its answer is not awaited */
        t->close_sent = 1;
    }
    return CVD_OK;
}

static int do_handshake(cvd_tls *t, cvd_err *err)
{
    int r;
    if (t->handshake_done)
        return CVD_OK;
    ERR_clear_error();
    r = SSL_do_handshake(t->ssl);
    if (r == 1) {
        t->handshake_done = 1;
        return flush_backlog(t, err);
    }
    int e = SSL_get_error(t->ssl, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
        return CVD_OK;
    return ssl_error(t, r, err);
}

int cvd_tls_read(cvd_tls *t, void *buf, size_t cap, size_t *got, cvd_err *err)
{
    int rc;
    *got = 0;
    if (t->failed)
        return tls_fail(t, err, "%s", t->fail.msg);
    if ((rc = do_handshake(t, err)) < 0)
        return rc;
    if (!t->handshake_done)
        return CVD_OK;
    if (t->peer_closed) {
        t->closed_told = 1;
        return CVD_TLS_CLOSED;
    }
    while (*got < cap) {
        size_t n = 0;
        ERR_clear_error();
        int r = SSL_read_ex(t->ssl, (unsigned char *)buf + *got, cap - *got, &n);
        if (r == 1) {
            *got += n;
            continue;
        }
        int e = SSL_get_error(t->ssl, r);
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
            break;
        if (e == SSL_ERROR_ZERO_RETURN) {
            t->peer_closed = 1;
            t->closed_told = *got == 0;
            return *got > 0 ? CVD_OK : CVD_TLS_CLOSED;
        }
        if (*got > 0) /* the bytes before the error first; it comes again next call */
            break;
        return ssl_error(t, r, err);
    }
    trim_bios(t);
    return CVD_OK;
}

int cvd_tls_write(cvd_tls *t, const void *data, size_t len, cvd_err *err)
{
    if (t->failed)
        return tls_fail(t, err, "%s", t->fail.msg);
    if (t->close_wanted)
        return cvd_err_set(err, CVD_ESTATE, "TLS: write after close");
    if (len == 0)
        return CVD_OK;
    if (!t->handshake_done || t->backlog_len > 0) {
        if (t->backlog_cap - t->backlog_len < len) {
            size_t nc = t->backlog_cap ? t->backlog_cap : 1024;
            while (nc - t->backlog_len < len)
                nc *= 2;
            unsigned char *nb = realloc(t->backlog, nc);
            if (nb == NULL)
                return cvd_err_set(err, CVD_ENOMEM, "out of memory");
            t->backlog = nb;
            t->backlog_cap = nc;
        }
        memcpy(t->backlog + t->backlog_len, data, len);
        t->backlog_len += len;
        return CVD_OK;
    }
    return encrypt(t, data, len, err);
}

int cvd_tls_close(cvd_tls *t)
{
    if (t->close_wanted || t->failed)
        return CVD_OK;
    t->close_wanted = 1;
    return flush_backlog(t, NULL);
}

size_t cvd_tls_pending(const cvd_tls *t)
{
    return BIO_ctrl_pending(t->wbio);
}

size_t cvd_tls_take(cvd_tls *t, void *buf, size_t cap)
{
    size_t got = 0, held = BIO_ctrl_pending(t->wbio);
    if (held > t->wbio_high)
        t->wbio_high = held;
    if (cap == 0 || held == 0)
        return 0;
    if (BIO_read_ex(t->wbio, buf, cap, &got) != 1)
        return 0;
    if (got == held)
        trim_bios(t);
    return got;
}

int cvd_tls_input_pending(const cvd_tls *t)
{
    if (t->failed)
        return 0;
    if (t->peer_closed) /* the end is there to be read */
        return !t->closed_told;
    return BIO_ctrl_pending(t->rbio) > 0 || SSL_has_pending(t->ssl);
}

size_t cvd_tls_backlog(const cvd_tls *t)
{
    return t->backlog_len;
}

int cvd_tls_handshake_done(const cvd_tls *t)
{
    return t->handshake_done;
}

int cvd_tls_peer_closed(const cvd_tls *t)
{
    return t->peer_closed;
}

int cvd_tls_failed(const cvd_tls *t)
{
    return t->failed;
}

const char *cvd_tls_version(const cvd_tls *t)
{
    return t->handshake_done ? SSL_get_version(t->ssl) : "";
}

const char *cvd_tls_cipher(const cvd_tls *t)
{
    const char *c = t->handshake_done ? SSL_get_cipher_name(t->ssl) : NULL;
    return c ? c : "";
}

int cvd_tls_peer_subject(const cvd_tls *t, char *buf, size_t cap)
{
    if (cap)
        buf[0] = '\0';
    X509 *x = SSL_get0_peer_certificate(t->ssl);
    if (x == NULL || cap == 0)
        return 0;
    BIO *b = BIO_new(BIO_s_mem());
    if (b == NULL)
        return 0;
    X509_NAME_print_ex(b, X509_get_subject_name(x), 0, XN_FLAG_RFC2253);
    int n = BIO_read(b, buf, (int)(cap - 1 < 4096 ? cap - 1 : 4096));
    buf[n > 0 ? n : 0] = '\0';
    BIO_free(b);
    return 1;
}

size_t cvd_tls_session_bytes(void)
{
    /* OpenSSL 3's SSL object and handshake state (about 10 KiB), a read buffer (16 KiB of
     * record plus overhead) and a write buffer (the same), rounded up; the test in
     * tests/test_tls.c measures a session after a handshake and a transfer against it */
    return 96u * 1024;
}
