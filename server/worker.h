/* SPDX-License-Identifier: Apache-2.0 */
/*
 * worker.h - a worker: one thread running its own libuv loop, with
 *
 *   listeners   an acceptor (acceptor.h) per listening socket of the daemon, each on a dup of
 *               the socket, so the kernel hands every new connection to one worker;
 *   commands    bits the main thread sets (cvd_worker_sync_listeners, cvd_worker_stop,
 *               cvd_worker_ping) and any thread's wake-up (cvd_worker_wake), carried by one
 *               uv_async_t;
 *   members     the connections it owns for their whole life, each a cvd_worker_member it
 *               embeds, with callbacks the worker calls (wake, shutdown, exit);
 *   run queue   members with work: each runs one turn (one block) per loop turn, in order, so
 *               no client delays the others by more than a block (an idle handle runs it).
 *
 * The worker knows nothing of connections: the daemon gives it an accept callback (conn.c's
 * cvd_conn_accept) and the members register themselves. Its loop ends once it was stopped and
 * its last member has gone; then `done` is called, on the worker's thread.
 *
 * Threads: create, start, sync_listeners, stop, ping, heartbeat, done_flag and destroy are the
 * main thread's; wake is any thread's; everything else runs on the worker's own thread.
 */
#ifndef CONVD_WORKER_H
#define CONVD_WORKER_H

#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

#include "config.h"
#include "convd_dsp.h"
#include "runtime.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cvd_worker cvd_worker;
typedef struct cvd_worker_member cvd_worker_member;

/* What the worker calls on a member, on its thread. */
typedef struct cvd_worker_member_ops {
    /* One turn of work; 1 if it has more right away (it is queued again, behind the others). */
    int (*run)(cvd_worker_member *m);
    /* Something this member may wait for happened (subscriber rings have frames). */
    void (*wake)(cvd_worker_member *m);
    /* The daemon stops: end gracefully (finish the stream, then leave). */
    void (*shutdown)(cvd_worker_member *m);
    /* Close now. */
    void (*exit)(cvd_worker_member *m);
} cvd_worker_member_ops;

/* Embedded in a member; the worker's fields (the member does not touch them). */
struct cvd_worker_member {
    const cvd_worker_member_ops *ops;
    cvd_worker_member *prev, *next; /* the worker's list */
    cvd_worker_member *qnext;       /* the run queue */
    int queued;
};

/* A listening socket as the daemon has it; the worker uses a dup of fd. */
typedef struct cvd_listen_fd {
    unsigned id; /* unique for the daemon's life: the same id is the same socket */
    char name[CVD_CONF_NAME_MAX + 1];
    int fd;
} cvd_listen_fd;

typedef struct cvd_worker_config {
    int id;
    /* the daemon's current runtime (cvd_worker_runtime) */
    cvd_runtime_slot *runtime;
    /* a connection on listener `listener`: fd (non-blocking) is the callback's */
    void (*accept)(cvd_worker *w, int fd, const struct sockaddr *peer, const char *listener);
    /* the loop ended (stopped, and no member left); on the worker's thread */
    void (*done)(void *ctx);
    void *ctx;
} cvd_worker_config;

/* The loop and its handles; no thread yet. */
int cvd_worker_create(const cvd_worker_config *cfg, cvd_worker **out, cvd_err *err);
/* Starts the thread. */
int cvd_worker_start(cvd_worker *w, cvd_err *err);
/* The daemon's listening sockets now (n of them; each fd is dup'ed here, the caller keeps
 * its own): the worker opens those it lacks and closes those that are gone. */
void cvd_worker_sync_listeners(cvd_worker *w, const cvd_listen_fd *fds, int n);
/* Stops accepting and ends the loop: now = 0 lets every member finish (shutdown), 1 closes
 * them (exit). May be called twice (graceful, then now). */
void cvd_worker_stop(cvd_worker *w, int now);
/* Watchdog: asks the loop to show it is alive; heartbeat counts the answers. */
void cvd_worker_ping(cvd_worker *w);
unsigned long long cvd_worker_heartbeat(const cvd_worker *w);
/* 1 once the loop has ended. */
int cvd_worker_done_flag(const cvd_worker *w);
/* Joins the thread (if started), runs the last close callbacks, closes the loop, frees. NULL
 * is fine. The worker must have been stopped (or never started). */
void cvd_worker_destroy(cvd_worker *w);

/* Any thread: wakes the worker's members (frames for subscribers). ctx is the worker. */
void cvd_worker_wake(void *worker);

/* ---- on the worker's thread ---- */

uv_loop_t *cvd_worker_loop(cvd_worker *w);
int cvd_worker_id(const cvd_worker *w);
/* 1 once stop was asked: members accepted now should leave at once. */
int cvd_worker_stopping(const cvd_worker *w);
/* The current runtime, referenced (cvd_runtime_unref it). */
cvd_runtime *cvd_worker_runtime(cvd_worker *w);
/* A new member (its ops set); remove it when it has gone (after its last close callback):
 * the loop may then end. */
void cvd_worker_add(cvd_worker *w, cvd_worker_member *m);
void cvd_worker_remove(cvd_worker *w, cvd_worker_member *m);
/* Queues a member's next turn of work (no-op if queued). */
void cvd_worker_queue(cvd_worker *w, cvd_worker_member *m);
int cvd_worker_members(const cvd_worker *w);

#ifdef __cplusplus
}
#endif

#endif
