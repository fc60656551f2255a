/* SPDX-License-Identifier: Apache-2.0 */
/*
 * convd_client.h - a small blocking client for convd's framed protocol (docs/PROTOCOL.md).
 *
 *   cvd_client *c;
 *   cvd_client_request h;
 *   cvd_client_accept acc;
 *   cvd_client_connect("127.0.0.1", "7401", 10000, &c, &err);
 *   cvd_client_request_init(&h);                // process, f32le, the default model
 *   cvd_client_hello(c, &h, &acc, &err);        // acc: channels, latency, ...
 *   cvd_client_send(c, frames, n, &err);        // any number of times
 *   cvd_client_recv(c, out, cap, 0, &err);      // what is ready so far (optional)
 *   cvd_client_end(c, &err);                    // no more input: the server flushes
 *   while ((got = cvd_client_recv(c, out, cap, -1, &err)) > 0) ...   // 0: all output came
 *   cvd_client_close(c);
 *
 * Frames are floats, channels interleaved; the library converts them to and from the
 * session's sample format (f32le or s16le), or passes wire-format bytes with the *_bytes calls.
 *
 * Sending never deadlocks against a server that applies back-pressure: while a send waits for
 * the socket, whatever the server sends is read and queued for cvd_client_recv(). PINGs from
 * the server are answered inside every call.
 *
 * Errors: negative CVD_E* codes (convd_dsp.h) and a cvd_err (may be NULL) whose message names
 * what failed: "connect 127.0.0.1:7401: Connection refused", "127.0.0.1:7401: the server
 * refused: unknown_model (3): no model named 'x'". An ERROR from the server gives CVD_EIO
 * (CVD_EUNSUPPORTED for an unsupported version) and its code is kept (cvd_client_server_error).
 * A signal interrupting a wait returns CVD_EIO with "interrupted"; nothing is lost, and the
 * call may be repeated. After any other error the connection is unusable: close it; the frames
 * that arrived before the error are still delivered by cvd_client_recv*() first (a server
 * that stops sends ERROR shutting_down after the output it had: cvd_client_server_error()
 * then gives CVD_FR_E_SHUTTING_DOWN, and the stream was cut there).
 *
 * Not thread-safe per client. Allocates (the client, its buffers, a queue of received
 * frames); not for real-time threads. SIGPIPE is never raised (MSG_NOSIGNAL).
 *
 * Link: libconvd_client.a, then libconvd_proto.a (the codec, proto/convd_proto.h) and
 * libconvd_dsp.a (cvd_err).
 */
#ifndef CONVD_CLIENT_H
#define CONVD_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "convd_dsp.h"
#include "convd_proto.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Sample formats and roles: other names for the wire values of convd_proto.h. */
#define CVD_CLIENT_F32LE CVD_FMT_F32LE
#define CVD_CLIENT_S16LE CVD_FMT_S16LE
#define CVD_CLIENT_PROCESS CVD_ROLE_PROCESS
#define CVD_CLIENT_SUBSCRIBE CVD_ROLE_SUBSCRIBE

#define CVD_CLIENT_DEFAULT_PORT "7401"

typedef struct cvd_client cvd_client;

/* What the client asks for (the HELLO). */
typedef struct cvd_client_request {
    int role;           /* CVD_CLIENT_PROCESS (default) or CVD_CLIENT_SUBSCRIBE */
    int format;         /* CVD_CLIENT_F32LE (default) or CVD_CLIENT_S16LE */
    uint32_t rate;      /* Hz of the client's frames; 0 (default): unspecified */
    int channels;       /* process: channels of the frames sent, 0 (default) = the model's;
                           subscribe: channels expected, 0 = any */
    uint32_t block;     /* frames per DATA this client sends at most; 0 (default) = as many as
                           the server's max_message allows */
    const char *model;  /* NULL or "" (default): the listener's default model */
    const char *stream; /* process: publish the output under this name (NULL/"": no);
                           subscribe: the stream to follow (required) */
    const char *token;  /* NULL or "" (default): none, and HELLO is version 1; else HELLO is
                           version 2 and carries it (listeners with `tokens` need one) */
} cvd_client_request;

/* TLS for cvd_client_connect_tls. The server's certificate is verified against ca (or the
 * system's CAs) and the name or address connected to (or server_name). */
typedef struct cvd_client_tls {
    const char *ca;          /* PEM file of the CAs to trust; NULL: the system's */
    const char *cert;        /* PEM client certificate (and chain) for listeners with
                                tls_client_ca; NULL: none */
    const char *key;         /* its private key (PEM) */
    const char *server_name; /* the name the certificate must have; NULL: the host given */
    int insecure;            /* 1: do not verify the server (tests; never in production) */
} cvd_client_tls;

/* What the server granted (its ACCEPT). */
typedef struct cvd_client_accept {
    int version;
    int format;           /* CVD_CLIENT_F32LE / CVD_CLIENT_S16LE */
    uint32_t rate;        /* the model's rate; 0: unknown */
    int in_channels;      /* channels of the frames to send */
    int out_channels;     /* channels of the frames received */
    uint32_t block;       /* the server's DATA carry at most this many frames; 0: no bound */
    uint32_t latency;     /* frames */
    uint32_t max_message; /* bytes */
    const char *model;    /* the model's name; owned by the client, valid until close */
} cvd_client_accept;

typedef struct cvd_client_stats {
    uint64_t frames_sent;
    uint64_t frames_received; /* delivered by cvd_client_recv*() */
    uint64_t frames_dropped;  /* subscriber: frames the server skipped (slow reader) */
    uint64_t next_frame;      /* stream index of the next frame cvd_client_recv*() returns
                                 (exact unless frames were dropped while others were queued) */
    uint64_t messages_sent;
    uint64_t messages_received;
} cvd_client_stats;

/* Defaults: process, f32le, everything else 0/NULL. */
void cvd_client_request_init(cvd_client_request *h);

/* Connects to host:port (getaddrinfo: names, IPv4, IPv6; every address in turn). timeout_ms
 * bounds the connection and, afterwards, every wait for the server (<= 0: no timeout; change
 * it with cvd_client_set_timeout). */
int cvd_client_connect(const char *host, const char *port, int timeout_ms, cvd_client **out,
                       cvd_err *err);
/* The same over TLS (tls NULL: plain TCP, as cvd_client_connect): TLS 1.2 or 1.3, the
 * handshake done within timeout_ms. Errors name what failed: "TLS handshake with
 * 127.0.0.1:7401: certificate verify failed (the server's certificate: unable to get local
 * issuer certificate)". */
int cvd_client_connect_tls(const char *host, const char *port, int timeout_ms,
                           const cvd_client_tls *tls, cvd_client **out, cvd_err *err);
/* "TLSv1.3", "TLSv1.2"; NULL on plain TCP. */
const char *cvd_client_tls_version(const cvd_client *c);
/* Takes over a connected stream socket (TCP, Unix, socketpair); `name` names the peer in
 * messages (NULL: "server"). The descriptor is closed by cvd_client_close(), also on error. */
int cvd_client_from_fd(int fd, const char *name, cvd_client **out, cvd_err *err);
/* Sends BYE (if the session is still open and the socket takes it at once), closes the
 * socket, frees everything. NULL is fine. */
void cvd_client_close(cvd_client *c);

void cvd_client_set_timeout(cvd_client *c, int timeout_ms);
int cvd_client_fd(const cvd_client *c);
const char *cvd_client_peer(const cvd_client *c); /* "127.0.0.1:7401" */

/* Sends HELLO and waits for ACCEPT (into *acc, may be NULL). An ERROR from the server
 * (unknown model, version, format, busy...) becomes the error's message. */
int cvd_client_hello(cvd_client *c, const cvd_client_request *h, cvd_client_accept *acc,
                     cvd_err *err);
/* Shorthand: a subscribe HELLO for `stream` in `format`, any channel count. */
int cvd_client_subscribe(cvd_client *c, const char *stream, int format, cvd_client_accept *acc,
                         cvd_err *err);
/* The ACCEPT of this session (NULL before it). */
const cvd_client_accept *cvd_client_accepted(const cvd_client *c);

/* Sends n frames of in_channels floats (in DATA messages of at most `block` frames and
 * max_message bytes); returns when all are handed to the kernel. */
int cvd_client_send(cvd_client *c, const float *frames, size_t n, cvd_err *err);
/* The same with frames already in the session's sample format (n frames' bytes). */
int cvd_client_send_bytes(cvd_client *c, const void *samples, size_t n, cvd_err *err);
/* No more input: sends END. The server then sends the rest of the output and its END. */
int cvd_client_end(cvd_client *c, cvd_err *err);

/* Receives up to max_frames frames of out_channels floats into frames. Waits up to
 * timeout_ms for at least one (0: only what has arrived; < 0: until frames come or the stream
 * ends). Returns the frames delivered; 0 means the stream is over (cvd_client_done() is 1) or
 * the wait ended without frames. */
long cvd_client_recv(cvd_client *c, float *frames, size_t max_frames, int timeout_ms, cvd_err *err);
/* The same in the session's sample format (max_frames frames' bytes of room). */
long cvd_client_recv_bytes(cvd_client *c, void *samples, size_t max_frames, int timeout_ms,
                           cvd_err *err);
/* 1 once the server's END has come and every frame before it was delivered. */
int cvd_client_done(const cvd_client *c);

/* Sends PING and waits for its PONG (frames arriving meanwhile are kept); *rtt_seconds (may
 * be NULL) receives the round trip. */
int cvd_client_ping(cvd_client *c, double *rtt_seconds, cvd_err *err);

/* The code of the last ERROR the server sent (CVD_FR_E_* in convd_proto.h), 0 if none. */
int cvd_client_server_error(const cvd_client *c);
void cvd_client_get_stats(const cvd_client *c, cvd_client_stats *s);

#ifdef __cplusplus
}
#endif

#endif /* CONVD_CLIENT_H */
