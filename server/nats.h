/* SPDX-License-Identifier: Apache-2.0 */
/*
 * nats.h - convd workers on a NATS JetStream cluster (docs/SCALE.md).
 *
 * A [nats NAME] section makes this process one member of a group: the processes sharing the
 * section share the partitions of its input stream, each id's frames run through the
 * section's model on the daemon's workers, and the outputs go to the output stream, each
 * exactly once whatever process or single server dies. A group runs on threads of its own
 * (nats_internal.h lists them); the workers only do the model math, handed to them through
 * a cvd_nats_exec each.
 */
#ifndef CONVD_NATS_H
#define CONVD_NATS_H

#include "convd_dsp.h"
#include "nats_conf.h"

typedef struct cvd_nats_group cvd_nats_group;
typedef struct cvd_nats_exec cvd_nats_exec;

/* The workers' side: one exec per worker; wake(ctx) asks the worker (from any thread) to
 * call cvd_nats_exec_run on its own thread, which returns 1 while jobs remain. */
cvd_nats_exec *cvd_nats_exec_create(void (*wake)(void *), void *ctx);
void cvd_nats_exec_destroy(cvd_nats_exec *x);
int cvd_nats_exec_run(cvd_nats_exec *x, int max);
int cvd_nats_exec_pending(cvd_nats_exec *x);

/* CVD_EUNSUPPORTED (err says why) unless the model's outputs follow a rule a replay can
 * reproduce: one output frame per input frame after a fixed latency, or one record per
 * window at a hop. */
int cvd_nats_check_model(cvd_model *m, long hop, int block, cvd_err *err);

/* A group for one section: checks that the model can run this way (one output frame per
 * input frame after a fixed latency, or windows at a hop). hop: the [model]'s hop for a
 * windowed model. nonfinite_pass: [server] nonfinite = pass. */
int cvd_nats_group_create(const cvd_nats_conf *conf, cvd_model *model, long hop, int nonfinite_pass,
                          cvd_nats_exec **execs, int n_execs, cvd_nats_group **out, cvd_err *err);
/* Starts its threads; it connects, creates what is missing and takes its share. */
int cvd_nats_group_start(cvd_nats_group *g, cvd_err *err);
/* SIGTERM: hands every partition over (answers what it took, checkpoints, releases the
 * leases so peers take them at once); done(ctx) is called from the group's thread when it
 * is finished. */
void cvd_nats_group_stop(cvd_nats_group *g, void (*done)(void *), void *ctx);
/* Timings a reload may change without restarting the group (idle_timeout, ...). */
void cvd_nats_group_update(cvd_nats_group *g, const cvd_nats_conf *c);
/* The section it runs, and 1 once it has stopped (after cvd_nats_group_stop's done). */
const cvd_nats_conf *cvd_nats_group_conf(const cvd_nats_group *g);
int cvd_nats_group_finished(cvd_nats_group *g);
/* Ends it now (what it holds is left to expire) and frees it. */
void cvd_nats_group_destroy(cvd_nats_group *g);

/* Every group's metrics in Prometheus's text format (malloc'd), or NULL if there is none. */
char *cvd_nats_metrics_render(void);

/* At the process's end, after every group is destroyed: waits (at most 10 s) until libnats's
 * own threads have ended, so none of them still frees TLS state while the process exits and
 * OpenSSL's exit handlers free its locks. A no-op if no group ever connected. */
void cvd_nats_shutdown(void);

#endif
