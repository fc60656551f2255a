/* SPDX-License-Identifier: Apache-2.0 */
/*
 * listen.h - the daemon's listening sockets, one per [listen NAME] of the runtime in force.
 *
 * Opened by the main thread (or handed over by systemd: socket activation, matched by name);
 * each worker accepts on its own dup of every socket (worker.h). On reload the set is synced
 * to the new config: a socket whose listener keeps its name and address stays open (with its
 * id, so the workers keep theirs), new ones are opened, the rest closed.
 */
#ifndef CONVD_LISTEN_H
#define CONVD_LISTEN_H

#include "config.h"
#include "convd_dsp.h"
#include "worker.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cvd_listen_set cvd_listen_set;

/* An empty set; takes the sockets systemd passed (LISTEN_FDS), logging each. */
int cvd_listen_set_create(cvd_listen_set **out, cvd_err *err);
/* Closes what it opened (never systemd's), frees. NULL is fine. */
void cvd_listen_set_destroy(cvd_listen_set *s);
/* The sockets conf's listeners need. On failure ("FILE:LINE: listen NAME: HOST:PORT: reason")
 * nothing changes. */
int cvd_listen_set_sync(cvd_listen_set *s, const cvd_conf *conf, cvd_err *err);
/* The sockets for the workers, in the config's listener order. */
int cvd_listen_set_fds(const cvd_listen_set *s, const cvd_listen_fd **fds);
/* The port listener i (config order) is bound to (its own when configured as 0). */
int cvd_listen_set_port(const cvd_listen_set *s, int i);

#ifdef __cplusplus
}
#endif

#endif
