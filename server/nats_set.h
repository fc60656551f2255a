/* SPDX-License-Identifier: Apache-2.0 */
/*
 * nats_set.h - the daemon's [nats NAME] groups (nats.h): one per section of the running
 * configuration, their model work on the daemon's workers, reloads, and the handover at
 * shutdown. The main thread's, except where said.
 *
 * Each worker gets a member (worker.h) whose turns run the groups' jobs; it is added before
 * the worker starts, and leaves when the worker stops (the groups have handed over by then).
 */
#ifndef CONVD_NATS_SET_H
#define CONVD_NATS_SET_H

#include <uv.h>

#include "runtime.h"
#include "worker.h"

typedef struct cvd_nats_set cvd_nats_set;

/* The set, with a member for each worker (not started yet: call before cvd_worker_start). */
int cvd_nats_set_create(uv_loop_t *loop, cvd_worker **workers, int n_workers, cvd_nats_set **out,
                        cvd_err *err);
/* Adds worker w's member (before the worker starts); the set may already be in use. */
int cvd_nats_set_add_worker(cvd_nats_set *s, cvd_worker *w, cvd_err *err);
/* Starts a group per [nats] section of rt (none: nothing). */
int cvd_nats_set_start(cvd_nats_set *s, const cvd_runtime *rt, cvd_err *err);
/* SIGHUP: sections whose connection, streams or model are unchanged keep their group (new
 * timings applied); the others hand over and start again; removed ones hand over. */
void cvd_nats_set_reload(cvd_nats_set *s, const cvd_runtime *old, const cvd_runtime *nrt);
/* SIGTERM: every group hands its partitions over; done(ctx) runs on the main loop once all
 * have (at once if there is none). 1 if there was something to hand over. */
int cvd_nats_set_stop(cvd_nats_set *s, void (*done)(void *), void *ctx);
/* Ends every group now (what they hold is left to expire). */
void cvd_nats_set_abort(cvd_nats_set *s);
/* Ends the groups now and closes the main-loop handle (run the loop afterwards for its close
 * callback); the members are freed by cvd_nats_set_free, after the workers are destroyed. */
void cvd_nats_set_close(cvd_nats_set *s);
void cvd_nats_set_free(cvd_nats_set *s);
/* Groups running. */
int cvd_nats_set_count(const cvd_nats_set *s);

#endif
