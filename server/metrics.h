/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Metrics: counters updated from any thread with atomics, rendered in Prometheus's text
 * format (version 0.0.4) for GET /metrics (docs/METRICS.md). Series are keyed by kind and
 * name (a listener, or a published stream: the `kind` label), so a listener and a stream of
 * the same name stay apart; a series' counters live as long as the process, and at most 1024
 * names have their own (published names are the clients' choice).
 */
#ifndef CONVD_METRICS_H
#define CONVD_METRICS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define CVD_METRICS_BUCKETS 14

#define CVD_DROP_REASONS(X)                                                                        \
    X(SLOW_SUBSCRIBER, "slow_subscriber")                                                          \
    X(NONFINITE, "nonfinite")                                                                      \
    X(MALFORMED, "malformed")                                                                      \
    X(SHUTDOWN, "shutdown")                                                                        \
    X(AUDIO_RING, "audio_ring")

#define CVD_DISCONNECT_REASONS(X)                                                                  \
    X(CLOSED, "closed")                                                                            \
    X(ERROR, "error")                                                                              \
    X(MALFORMED, "malformed")                                                                      \
    X(HANDSHAKE_TIMEOUT, "handshake_timeout")                                                      \
    X(IDLE_TIMEOUT, "idle_timeout")                                                                \
    X(SLOW_SUBSCRIBER, "slow_subscriber")                                                          \
    X(MAX_CLIENTS, "max_clients")                                                                  \
    X(SHUTDOWN, "shutdown")                                                                        \
    X(WRITE_TIMEOUT, "write_timeout")                                                              \
    X(NOT_ALLOWED, "not_allowed")                                                                  \
    X(PER_ADDRESS, "max_clients_per_address")                                                      \
    X(UNAUTHORIZED, "unauthorized")                                                                \
    X(FORBIDDEN, "forbidden")                                                                      \
    X(MEMORY, "max_stream_memory")                                                                 \
    X(MAX_BLOCK, "max_block")                                                                      \
    X(TLS, "tls")

/* Events counted for security: name, help. */
#define CVD_EVENTS(X)                                                                              \
    X(FD_EXHAUSTED, "convd_accept_fd_exhausted_total",                                             \
      "Connections closed at accept because the daemon had no file descriptor left.")              \
    X(TLS_HANDSHAKES, "convd_tls_handshakes_total", "TLS handshakes completed.")                   \
    X(TLS_FAILED, "convd_tls_handshake_failures_total",                                            \
      "TLS handshakes that failed (plain bytes, wrong certificates, old versions).")               \
    X(TLS_UNCLEAN, "convd_tls_unclean_closes_total",                                               \
      "TLS clients whose input ended with a TCP close and no close_notify.")                       \
    X(METRICS_REFUSED, "convd_metrics_refused_total",                                              \
      "Connections to the metrics endpoint from addresses outside metrics_allow.")

enum {
#define X(id, name, help) CVD_EV_##id,
    CVD_EVENTS(X)
#undef X
        CVD_EV_COUNT
};

enum {
#define X(id, s) CVD_DROP_##id,
    CVD_DROP_REASONS(X)
#undef X
        CVD_DROP_COUNT
};
enum {
#define X(id, s) CVD_DISC_##id,
    CVD_DISCONNECT_REASONS(X)
#undef X
        CVD_DISC_COUNT
};

/* What a series is named after (its `kind` label): a [listen NAME] section's connections, or
 * a stream (a [stream NAME] section, or a stream a framed client publishes, with its
 * subscribers). The same name in both kinds is two series. */
enum { CVD_SERIES_LISTENER = 0, CVD_SERIES_STREAM = 1 };

typedef struct cvd_stream_stats {
    int kind;         /* CVD_SERIES_* */
    char name[72];    /* the name, cut to 71 bytes at a UTF-8 character boundary */
    char label[144];  /* name as a label value: \ " and line ends escaped */
    char labels[176]; /* stream="LABEL",kind="listener|stream" */
    atomic_ullong frames_in, frames_out;
    atomic_llong clients;
    atomic_ullong blocks;
    atomic_ullong block_ns_sum;
    atomic_ullong buckets[CVD_METRICS_BUCKETS + 1]; /* the last is +Inf */
    /* live audio streams ([stream NAME]) only; rendered when audio is set */
    atomic_int audio;
    atomic_int audio_running;         /* the device runs */
    atomic_ullong audio_xruns[4];     /* input underflow, input overflow, output underflow,
                                       * output overflow (PortAudio's callback flags) */
    atomic_ullong audio_underruns;    /* jitter buffer or model output ran dry */
    atomic_ullong audio_failures;     /* the device stopped or stalled while running */
    atomic_ullong audio_cpu_permille; /* Pa_GetStreamCpuLoad x 1000 */
    atomic_ullong audio_block_ns_max; /* longest callback since the start */
    atomic_ullong audio_latency_us;   /* input + output device latency + model latency */
} cvd_stream_stats;

/* The stream's counters, created on first use; never freed. NULL only if out of memory.
 * Names longer than the field count as their first 71 bytes (a whole UTF-8 character); past
 * 1024 names, new ones share the counters of "_other" (clients choose published names). */
cvd_stream_stats *cvd_metrics_stream(const char *name);
/* The same for a series of either kind (CVD_SERIES_*): cvd_metrics_stream is kind STREAM. */
cvd_stream_stats *cvd_metrics_series(int kind, const char *name);
/* convd_build_info's version label (the daemon's CVD_VERSION; "unknown" until set). Call once
 * at start, before the metrics endpoint runs. */
void cvd_metrics_set_version(const char *version);
void cvd_metrics_block_time(cvd_stream_stats *s, uint64_t ns);
void cvd_metrics_dropped(int reason, uint64_t frames);
void cvd_metrics_disconnect(int reason);
void cvd_metrics_reload(int ok);
void cvd_metrics_queue_bytes(int64_t delta);
void cvd_metrics_clients(int64_t delta);
int64_t cvd_metrics_clients_now(void);
/* One of CVD_EVENTS happened n times. */
void cvd_metrics_event(int event, uint64_t n);
/* The memory the open streams' figures add up to (max_stream_memory's measure), and the
 * limit, for the gauges. */
void cvd_metrics_stream_memory(int64_t delta);
int64_t cvd_metrics_stream_memory_now(void);
void cvd_metrics_stream_memory_limit(uint64_t limit);

/* Renders every metric; returns a malloc'd NUL-terminated text (NULL if out of memory). */
char *cvd_metrics_render(void);

#endif
