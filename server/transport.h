/* SPDX-License-Identifier: Apache-2.0 */
/*
 * transport.h - one client connection's byte stream on a worker loop: plain TCP, or TLS over
 * it (tls.h), the same to the protocol above. The connection code reads plaintext, writes
 * plaintext, ends its output, and never sees which it is.
 *
 *   reading   the caller lends a buffer (alloc callback) and is told how much plaintext came
 *             (read callback); it stops reading while it has no room, and with it the TCP
 *             reads (back-pressure to the client), and starts again when it has.
 *   the end   the client's end of input is one event (eof callback): a TCP FIN on plain TCP;
 *             on TLS the client's close_notify (clean), or a FIN without it (unclean, counted
 *             in convd_tls_unclean_closes_total) - in both cases after every byte before it.
 *   writing   cvd_transport_buf() gives a buffer to fill, cvd_transport_send() sends it
 *             (encrypted first on TLS); cvd_transport_queued() is what the kernel has not
 *             taken yet, the written callback says when it shrank.
 *   finishing cvd_transport_finish(): after everything queued, TLS sends close_notify, then
 *             the write side is shut (FIN), then the connection closes.
 *   timeouts  output that cannot be written for write_timeout seconds (no progress at all:
 *             a client that does not read) is an error; so is a TLS handshake not done
 *             within handshake_timeout seconds. Output the kernel holds counts as not
 *             written until the client acknowledges it (SIOCOUTQ, looked at every quarter
 *             of write_timeout), also after the end (the FIN waits behind it); a client that
 *             takes none for write_timeout is reset, so the kernel drops that output at once.
 *
 * Memory: nothing but the struct and its handles (and on TLS, the session) until the client
 * sends; ciphertext is read into a buffer of the thread's and fed to the session at once.
 *
 * All calls on the loop's thread. The callbacks may call any transport function; after the
 * closed callback the transport is gone.
 */
#ifndef CONVD_TRANSPORT_H
#define CONVD_TRANSPORT_H

#include <stddef.h>
#include <uv.h>

#include "convd_dsp.h"
#include "tls.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cvd_transport cvd_transport;

/* Why the error callback was called. */
enum {
    CVD_TR_READ = 1,          /* reading the socket failed (a reset) */
    CVD_TR_WRITE,             /* writing failed */
    CVD_TR_TLS,               /* the TLS handshake or a record failed */
    CVD_TR_WRITE_TIMEOUT,     /* output could not be written for write_timeout */
    CVD_TR_HANDSHAKE_TIMEOUT, /* the TLS handshake did not complete in time */
    CVD_TR_NOMEM
};

typedef struct cvd_transport_cbs {
    /* room for plaintext: *buf, *cap bytes (cap 0: none now; the transport stops reading) */
    void (*alloc)(void *ctx, char **buf, size_t *cap);
    /* n bytes of plaintext were written where alloc said */
    void (*read)(void *ctx, size_t n);
    /* the client's input is over; clean: a FIN on plain TCP, a close_notify on TLS */
    void (*eof)(void *ctx, int clean);
    /* a failure (CVD_TR_*) with a message; the caller closes the transport */
    void (*error)(void *ctx, int what, const char *msg);
    /* queued output went to the kernel (cvd_transport_queued shrank) */
    void (*written)(void *ctx);
    /* the TLS handshake completed (not called for plain TCP); may be NULL */
    void (*handshake)(void *ctx);
    /* every handle is closed: the transport is freed right after this returns */
    void (*closed)(void *ctx);
} cvd_transport_cbs;

typedef struct cvd_transport_opts {
    cvd_tls_ctx *tls;         /* NULL: plain TCP */
    double write_timeout;     /* seconds; 0: none */
    double handshake_timeout; /* seconds, TLS only; 0: none */
} cvd_transport_opts;

/* Takes over fd (a connected TCP socket; closed with the transport, also on failure). */
int cvd_transport_open(uv_loop_t *loop, int fd, const cvd_transport_opts *o,
                       const cvd_transport_cbs *cb, void *ctx, cvd_transport **out, cvd_err *err);

void cvd_transport_read_start(cvd_transport *t);
void cvd_transport_read_stop(cvd_transport *t);

/* A buffer for n bytes of output (NULL if out of memory); fill it, then send len <= n of
 * them with cvd_transport_send, which takes it back (also on failure, and len 0). */
void *cvd_transport_buf(cvd_transport *t, size_t n);
/* 0, or a negative code (the connection failed; the caller closes it). */
int cvd_transport_send(cvd_transport *t, void *buf, size_t len);
/* The same, copying bytes. */
int cvd_transport_write(cvd_transport *t, const void *p, size_t len);
/* Output bytes handed to the kernel but not yet taken by it (ciphertext on TLS). */
size_t cvd_transport_queued(const cvd_transport *t);

/* No more output: after the queue drains, close_notify (TLS), FIN, close. Reading stops. */
void cvd_transport_finish(cvd_transport *t);
/* Close now, dropping what is queued. Idempotent. */
void cvd_transport_close(cvd_transport *t);
int cvd_transport_closing(const cvd_transport *t);

/* The TLS session (NULL on plain TCP), for its version and the client's certificate. */
const cvd_tls *cvd_transport_tls(const cvd_transport *t);
/* 1 once the TLS handshake is done, or always on plain TCP. */
int cvd_transport_ready(const cvd_transport *t);

#ifdef __cplusplus
}
#endif

#endif
