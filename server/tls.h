/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tls.h - TLS as a byte-stream layer: OpenSSL over memory BIOs, with no socket and no event
 * loop. The caller moves bytes: ciphertext read from the network goes in with cvd_tls_feed(),
 * plaintext comes out of cvd_tls_read(); plaintext to send goes in with cvd_tls_write(), and
 * the ciphertext to write to the network comes out of cvd_tls_take(). So it sits under any
 * protocol (raw, line, framed) exactly where the TCP bytes were, on any loop or none.
 *
 *   contexts   cvd_tls_ctx: a certificate chain and key (a server), or the CAs to trust and
 *              perhaps a certificate (a client); TLS 1.2 at least, 1.3 preferred. A context
 *              is immutable once made and reference-counted: every session holds its own
 *              reference, so replacing a listener's context (a reload with new certificate
 *              files) changes new sessions only, and running ones keep theirs to the end.
 *   sessions   cvd_tls: one connection's state. Not thread-safe (one connection, one thread);
 *              contexts may be shared by sessions on any threads.
 *
 * Ending: a peer's close_notify ends its input (cvd_tls_read returns CVD_TLS_CLOSED); this
 * side may still write (TLS half-close) and then sends its own with cvd_tls_close(). A TCP
 * end without close_notify is the caller's to see; cvd_tls_peer_closed() tells whether it was
 * clean.
 *
 * Errors are negative CVD_E* codes with a message in the cvd_err (may be NULL) that names what
 * failed and OpenSSL's reason: "tls_key /etc/convd/tls/server.key: no such file",
 * "TLS handshake: certificate verify failed (the client's certificate: unable to get local
 * issuer certificate)". A session that failed stays failed.
 */
#ifndef CONVD_TLS_H
#define CONVD_TLS_H

#include <stddef.h>

#include "convd_dsp.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cvd_tls_ctx cvd_tls_ctx;
typedef struct cvd_tls cvd_tls;

/* cvd_tls_read(): the peer sent close_notify; its input is over. */
#define CVD_TLS_CLOSED 1

/* A server context: cert is a PEM file with the certificate first and its chain after it,
 * key its private key (PEM, unencrypted); client_ca (NULL or "": none) a PEM file of CA
 * certificates: clients must then present a certificate issued by one of them. The files
 * are read here, and only here. */
int cvd_tls_server_ctx_create(const char *cert, const char *key, const char *client_ca,
                              cvd_tls_ctx **out, cvd_err *err);

/* A client context: ca (NULL or "": the system's trusted CAs) to verify the server with,
 * verify 0 to skip the verification (tests, and `--insecure` tools only); cert and key
 * (both NULL or both set): a client certificate for servers that ask for one. */
int cvd_tls_client_ctx_create(const char *ca, int verify, const char *cert, const char *key,
                              cvd_tls_ctx **out, cvd_err *err);

cvd_tls_ctx *cvd_tls_ctx_ref(cvd_tls_ctx *ctx);
void cvd_tls_ctx_unref(cvd_tls_ctx *ctx); /* NULL is fine */
/* 1 if clients must present a certificate (a server context with client_ca). */
int cvd_tls_ctx_verifies_peer(const cvd_tls_ctx *ctx);

/* A session on ctx, as the server (accepting) or as a client (connecting; host, NULL for
 * none, is the name or address the server's certificate must match and, if a name, the SNI
 * sent). The session holds its own reference to ctx. */
int cvd_tls_create(cvd_tls_ctx *ctx, const char *host, cvd_tls **out, cvd_err *err);
void cvd_tls_destroy(cvd_tls *t); /* NULL is fine */

/* Ciphertext from the network. Everything is taken (the session buffers it until
 * cvd_tls_read() decrypts it). */
int cvd_tls_feed(cvd_tls *t, const void *data, size_t len, cvd_err *err);

/*
 * Runs the handshake as far as the fed bytes allow, then decrypts into buf (cap bytes).
 * Returns CVD_OK with *got plaintext bytes (0: nothing until more ciphertext comes),
 * CVD_TLS_CLOSED once the peer's close_notify has come and every byte before it was read,
 * or a negative code (handshake failure, a bad record). Each call may produce ciphertext to
 * send (the handshake's messages, alerts): check cvd_tls_pending() after it.
 */
int cvd_tls_read(cvd_tls *t, void *buf, size_t cap, size_t *got, cvd_err *err);

/* Plaintext to send: encrypted at once, or, before the handshake is complete, kept and
 * encrypted when it completes. Not after cvd_tls_close(). */
int cvd_tls_write(cvd_tls *t, const void *data, size_t len, cvd_err *err);

/* Sends close_notify after everything written so far (kept until the handshake completes if
 * it has not; a session whose handshake never completed sends nothing). */
int cvd_tls_close(cvd_tls *t);

/* Ciphertext waiting to go to the network, and taking it (up to cap bytes; returns how many). */
size_t cvd_tls_pending(const cvd_tls *t);
size_t cvd_tls_take(cvd_tls *t, void *buf, size_t cap);

/* 1 if fed ciphertext is not yet all decrypted and read (cvd_tls_read would have more to give,
 * or more work to do, without new bytes from the network). */
int cvd_tls_input_pending(const cvd_tls *t);

/* Plaintext bytes waiting for the handshake (written before it completed). */
size_t cvd_tls_backlog(const cvd_tls *t);
int cvd_tls_handshake_done(const cvd_tls *t);
/* 1 once the peer's close_notify was read. */
int cvd_tls_peer_closed(const cvd_tls *t);
/* 1 once the session has failed (every later call returns the same error). */
int cvd_tls_failed(const cvd_tls *t);
/* "TLSv1.3", "TLSv1.2"; "" before the handshake. */
const char *cvd_tls_version(const cvd_tls *t);
const char *cvd_tls_cipher(const cvd_tls *t);
/* The peer's verified certificate's subject, one line ("CN=studio-1,O=..."), into buf;
 * returns 1, or 0 (buf "") if the peer presented none. */
int cvd_tls_peer_subject(const cvd_tls *t, char *buf, size_t cap);

/* Memory a session holds at most besides what is fed and not yet read, for the per-stream
 * memory figure: OpenSSL's record buffers and state, measured once. */
size_t cvd_tls_session_bytes(void);

#ifdef __cplusplus
}
#endif

#endif
