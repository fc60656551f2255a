/* SPDX-License-Identifier: Apache-2.0 */
/*
 * conn.h - a connection and its protocol adapter.
 *
 * A connection (conn.c) is one client on one worker: a transport (transport.h) under it, an
 * input buffer, a stream (a net of the model, fed block by block) or a subscription, an output
 * queue, timers, and its life from accept to close. What the bytes mean is its adapter's: one
 * per protocol (adapter_raw.c, adapter_line.c, adapter_framed.c), found in the table of
 * adapters.c by the listener's protocol. conn.c has no branch on the protocol: adding one is
 * a new adapter file and a row in that table.
 *
 * The work step (conn.c) calls the adapter's decode to fill a block from the input bytes, runs
 * the model on every full block, and hands the output frames to the adapter's encode; at the
 * end of the input it calls input_end, flushes the model, then stream_end. The adapter calls
 * back the cvd_conn_* functions below (all on the worker's thread, none blocking).
 *
 * Errors the server reports to a client are named by the framed protocol's codes
 * (CVD_FR_E_*, docs/PROTOCOL.md): each adapter says them in its protocol's words, or not at all
 * (raw has no words: the close says it).
 */
#ifndef CONVD_CONN_H
#define CONVD_CONN_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "config.h"
#include "convd_dsp.h"
#include "pubsub.h"
#include "runtime.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cvd_conn cvd_conn;

typedef struct cvd_adapter {
    const char *name;      /* the config's protocol name: "raw", "framed", "line" */
    const char *handshake; /* what the client sends first, when the protocol has a handshake
                              ("HELLO"), for "no HELLO in time"; NULL: none */
    /* At accept: the adapter's state (cvd_conn_set_state). A protocol without a handshake
     * starts the listener's stream here (cvd_conn_start_chain, cvd_conn_running); one with a
     * handshake leaves the connection in it (the handshake timeout runs). <0 with err: the
     * connection closes. */
    int (*open)(cvd_conn *c, cvd_err *err);
    /* The stream cvd_conn_start_chain began is built (off the loop): its latency and
     * rate are known (cvd_conn_latency, cvd_conn_rate). It may refuse the client
     * (cvd_conn_refuse). NULL: nothing to do then. */
    void (*started)(cvd_conn *c);
    /* From the close path: frees the adapter's state (NULL if open did not make it). */
    void (*close)(cvd_conn *c);
    /* Takes input bytes (cvd_conn_input, cvd_conn_consume) into the block
     * (cvd_conn_block_space, cvd_conn_block_add) while the connection takes input
     * (cvd_conn_taking), answering protocol messages on the way. Returns 1 when the block is
     * full (cvd_conn_block_full); else 0, and then every input byte was taken, or the
     * connection stopped taking input. */
    int (*decode)(cvd_conn *c);
    /* n output frames (out channels each) to the client, in the protocol's encoding
     * (cvd_conn_out_begin/commit or cvd_conn_send); `dropped` frames were lost just before
     * them (a subscriber's ring overflowed), n may then be 0. */
    void (*encode)(cvd_conn *c, const float *frames, size_t n, uint64_t dropped);
    /* The peer ended its bytes (cvd_conn_eof), the stream runs: frames the decoder still holds
     * go into the block (line: a last line without its newline). NULL: none held. */
    void (*input_end)(cvd_conn *c);
    /* The stream's output is all encoded (or a subscription ended): the protocol's end marker
     * (framed: END), and anything to say about the input's end. NULL: nothing. */
    void (*stream_end)(cvd_conn *c);
    /* The peer ended its bytes: 1 the input is over and the stream ends normally (flushed);
     * 0 the stream is cut (the protocol has its own end, which never came): no flush. */
    int (*peer_eof)(cvd_conn *c);
    /* An error of the server's own (code CVD_FR_E_*, text for a human) in the protocol's
     * words; may be called before open (a refusal at accept). NULL: the protocol has none. */
    void (*send_error)(cvd_conn *c, int code, const char *text);
} cvd_adapter;

/* The adapter for a listener's protocol (adapters.c); NULL for an unknown one. */
const cvd_adapter *cvd_adapter_find(cvd_proto protocol);

extern const cvd_adapter cvd_adapter_raw, cvd_adapter_line, cvd_adapter_framed;

/* Makes an adapter's decoder into its state, once the stream runs (cvd_conn_in_channels). */
typedef int (*cvd_adapter_decoder_fn)(cvd_conn *c, void *state, cvd_err *err);
/* The first step of decode for the protocols whose stream starts with the first bytes (raw,
 * line; adapters.c): 1 when the stream has started (`started`: the adapter has its decoder).
 * Else 0, and when bytes have come the listener's stream starts, then `make` makes the
 * decoder; a client refused (no memory for its stream: CVD_FR_E_BUSY) or a stream that could
 * not be made is closed. */
int cvd_adapter_first_bytes(cvd_conn *c, int started, cvd_adapter_decoder_fn make, void *state);

/* ---- for adapters: the connection ------------------------------------------------------- */

/* The adapter's own state, set by its open. */
void cvd_conn_set_state(cvd_conn *c, void *state);
void *cvd_conn_state(const cvd_conn *c);

const char *cvd_conn_peer(const cvd_conn *c); /* "LISTENER HOST:PORT", for log lines */
/* Appends to the peer's name in later log lines (" (subscriber)"). */
void cvd_conn_peer_note(cvd_conn *c, const char *note);
const cvd_conf *cvd_conn_conf(const cvd_conn *c);
const cvd_conf_listen *cvd_conn_listener(const cvd_conn *c);
cvd_runtime *cvd_conn_runtime(const cvd_conn *c); /* not referenced: the connection's own */
/* The listener's model (NULL if it names none). */
cvd_model *cvd_conn_listener_model(const cvd_conn *c);

/* 1 while the protocol's handshake runs (from accept until cvd_conn_running). */
int cvd_conn_in_handshake(const cvd_conn *c);
/* 1 while the connection takes input (not finishing or closing, the input not over, no
 * stream being built). */
int cvd_conn_taking(const cvd_conn *c);
/* The client completed something (a message; frames count by themselves): the idle timeout
 * starts again. Bytes are not progress: a client that dribbles them times out. */
void cvd_conn_progress(cvd_conn *c);
/* 1 if the server stops before the client's end of input: the stream is cut (framed: ERROR
 * shutting_down instead of END). */
int cvd_conn_cut(const cvd_conn *c);
/* 1 if the client presented a certificate its listener's tls_client_ca verified. */
int cvd_conn_tls_verified(const cvd_conn *c);
/* The listener's index in the runtime's config (its tls and tokens). */
int cvd_conn_listener_index(const cvd_conn *c);
/* A warning about kind (CVD_DISC_*) at most once a second process-wide, with the count of the
 * ones left out (floods of refusals must not flood the log; the metrics count them all). */
void cvd_conn_log_limited(int kind, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Refuses the client: logged, told in the protocol's words (send_error: code, msg), the input
 * over, the connection finishes; counted as reason (CVD_DISC_*). */
void cvd_conn_refuse(cvd_conn *c, int code, int reason, const char *msg);
/* 1 once the connection is closing: whatever is sent now is dropped. */
int cvd_conn_closing(const cvd_conn *c);

/* ---- the stream ---- */

/* Starts the stream: the models conf->models[idx[0..n)] run in order for blocks of `block`
 * frames, the stream at `rate` Hz (0: the first declared model rate), each model at its own
 * rate between resamplers. Its memory figure is reserved first, under max_stream_memory:
 * CVD_ERANGE (and the reason in err) if it does not fit; the adapter refuses the client
 * (CVD_FR_E_BUSY, CVD_DISC_MEMORY). The chain is built on libuv's thread pool, off the loop;
 * meanwhile the connection takes no input (the channel counts and the block are known at
 * once). */
int cvd_conn_start_chain(cvd_conn *c, const int *idx, int n, double rate, int block, cvd_err *err);
int cvd_conn_latency(const cvd_conn *c); /* frames the stream's models hold back */
double cvd_conn_rate(const cvd_conn *c); /* the stream's rate (0: unknown) */
/* Publishes the stream's output under `name` (docs/PROTOCOL.md, fan-out). */
int cvd_conn_publish(cvd_conn *c, const char *name, const cvd_pub_info *info, cvd_err *err);
/* Subscribes to the published stream `name` with a ring of ring_frames frames; *info is the
 * stream's. Its memory is reserved as a stream's (CVD_ERANGE: no room). The connection then sends
 * what the stream publishes (encode with dropped counts) instead of running a model; its input is
 * only the protocol's messages. */
int cvd_conn_subscribe(cvd_conn *c, const char *name, int ring_frames, cvd_pub_info *info,
                       cvd_err *err);
/* The handshake is over: the stream (or subscription) runs. Its counters are the series
 * (kind, stats_name)'s (convd_stream_*; kind CVD_SERIES_LISTENER or CVD_SERIES_STREAM). */
void cvd_conn_running(cvd_conn *c, int kind, const char *stats_name);

int cvd_conn_block(const cvd_conn *c); /* frames per block (the stream's; a subscription: the
                                          listener's) */
int cvd_conn_in_channels(const cvd_conn *c);
int cvd_conn_out_channels(const cvd_conn *c);

/* ---- input ---- */

/* The input bytes not taken yet: *p, and their count. */
size_t cvd_conn_input(const cvd_conn *c, const uint8_t **p);
void cvd_conn_consume(cvd_conn *c, size_t n);
/* Where the block's next frames go, with room for *frames frames (0: the block is full);
 * NULL (and 0) when there is no stream (a handshake, a subscription). */
float *cvd_conn_block_space(cvd_conn *c, size_t *frames);
/* n frames were written there. Checks them for NaN and infinity (config `nonfinite`): 1 if
 * taken; 0 if refused, and then the client was told (send_error: CVD_FR_E_NONFINITE), the
 * input is over and the connection finishes. */
int cvd_conn_block_add(cvd_conn *c, size_t n);
int cvd_conn_block_full(const cvd_conn *c);
/* Runs the partial block now, so that its output goes before what the adapter sends next. */
void cvd_conn_block_flush(cvd_conn *c);
/* The protocol's end of input (framed END): the stream ends normally, flushed. */
void cvd_conn_input_over(cvd_conn *c);

/* ---- output ---- */

/* A chunk of at most cap bytes to fill at *data, then commit (len bytes) or drop (len 0).
 * NULL when out of memory (the connection is then closing). */
void *cvd_conn_out_begin(cvd_conn *c, size_t cap);
void cvd_conn_out_commit(cvd_conn *c, void *data, size_t len);
/* Copies n bytes out (a short message). */
void cvd_conn_send(cvd_conn *c, const void *p, size_t n);

/* ---- the end ---- */

/* Takes no more input, closes once the queued output is sent (with a FIN first). reason:
 * CVD_DISC_* (metrics.h). */
void cvd_conn_finish(cvd_conn *c, int reason);
/* Closes now; queued output is dropped. */
void cvd_conn_close(cvd_conn *c, int reason);

/* ---- for the worker ------------------------------------------------------------------------ */

typedef struct cvd_worker cvd_worker;

/* A connection accepted on worker w's listener `listener` (the worker config's accept
 * callback): fd is a connected, non-blocking socket, taken over. */
void cvd_conn_accept(cvd_worker *w, int fd, const struct sockaddr *peer, const char *listener);

#ifdef __cplusplus
}
#endif

#endif
