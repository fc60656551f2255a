/* SPDX-License-Identifier: Apache-2.0 */
/*
 * acceptor.h - accepting TCP connections on a worker's loop, with bounds.
 *
 * libuv's uv_listen accepts every pending connection in one go and, when the process is out
 * of file descriptors, closes them without a word. An acceptor instead polls the listening
 * socket itself and:
 *
 *   - accepts at most CVD_ACCEPT_PER_TURN connections per loop turn, so a connect flood
 *     shares the loop with the streams already running (the socket stays readable: the next
 *     turn takes the next ones);
 *   - keeps a spare descriptor: out of descriptors (EMFILE, ENFILE), it closes the spare,
 *     accepts and closes the waiting connections at once (the clients see the connection end
 *     instead of hanging in the backlog), opens the spare again, and pauses accepting for
 *     CVD_ACCEPT_PAUSE_MS; the event is counted (convd_accept_fd_exhausted_total) and logged
 *     at most once a second, process-wide.
 *
 * The callback receives each accepted descriptor (non-blocking, close-on-exec) with the
 * peer's address; it owns the descriptor from then on. One acceptor per listening socket per
 * loop; all calls on the loop's thread.
 */
#ifndef CONVD_ACCEPTOR_H
#define CONVD_ACCEPTOR_H

#include <sys/socket.h>
#include <uv.h>

#include "convd_dsp.h"

#ifdef __cplusplus
extern "C" {
#endif

#define CVD_ACCEPT_PER_TURN 32
#define CVD_ACCEPT_PAUSE_MS 100

typedef struct cvd_acceptor cvd_acceptor;

typedef void (*cvd_accept_cb)(void *ctx, int fd, const struct sockaddr *peer);

/* Starts accepting on listen_fd (a listening socket; the acceptor owns it and closes it, on
 * failure too) on loop. name names the listener in log lines. */
int cvd_acceptor_start(uv_loop_t *loop, int listen_fd, const char *name, cvd_accept_cb cb,
                       void *ctx, cvd_acceptor **out, cvd_err *err);
/* Stops accepting, closes the socket; the memory goes in a close callback of the loop. */
void cvd_acceptor_stop(cvd_acceptor *a);

/* Connections refused for want of descriptors by this acceptor (tests). */
unsigned long cvd_acceptor_exhausted(const cvd_acceptor *a);

#ifdef __cplusplus
}
#endif

#endif
