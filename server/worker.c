/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A worker: its thread, loop, listeners, commands, members and run queue (worker.h).
 */
#include "worker.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "acceptor.h"
#include "log.h"
#include "uv_check.h"

enum {
    CMD_SYNC = 1,     /* the listening sockets changed */
    CMD_SHUTDOWN = 2, /* stop accepting; members end gracefully */
    CMD_EXIT = 4,     /* close everything now */
    CMD_PING = 8,     /* watchdog: show the loop is alive */
    CMD_WAKE = 16     /* members may have something to do (subscriber rings have frames) */
};

typedef struct wlisten {
    cvd_worker *w;
    unsigned id;
    char name[CVD_CONF_NAME_MAX + 1];
    cvd_acceptor *acc;
} wlisten;

struct cvd_worker {
    cvd_worker_config cfg;
    uv_loop_t loop;
    uv_thread_t thread;
    int loop_open, started;
    uv_async_t async;
    uv_idle_t work; /* runs the run queue, one turn per member per loop turn */
    int work_active;
    atomic_int cmd;
    atomic_ullong heartbeat;
    atomic_int done; /* the loop has ended */

    /* the listening sockets the main thread gave last, not yet taken by the loop */
    pthread_mutex_t pending_lock;
    cvd_listen_fd *pending;
    int n_pending, has_pending;

    /* the worker's thread only, below */
    wlisten **listens; /* each allocated alone: the acceptors keep a pointer to it */
    int n_listens, cap_listens;
    cvd_worker_member *members;
    int n_members;
    cvd_worker_member *qhead, *qtail;
    int shutting_down, exiting;
};

/* ---- commands ------------------------------------------------------------------------- */

static void command(cvd_worker *w, int cmd)
{
    if (atomic_load(&w->done))
        return; /* the loop has ended: nobody to tell */
    atomic_fetch_or(&w->cmd, cmd);
    CVD_UV_CHECK(uv_async_send(&w->async));
}

void cvd_worker_wake(void *worker)
{
    command(worker, CMD_WAKE);
}

void cvd_worker_ping(cvd_worker *w)
{
    command(w, CMD_PING);
}

void cvd_worker_stop(cvd_worker *w, int now)
{
    command(w, now ? CMD_EXIT : CMD_SHUTDOWN);
}

unsigned long long cvd_worker_heartbeat(const cvd_worker *w)
{
    return atomic_load(&w->heartbeat);
}

int cvd_worker_done_flag(const cvd_worker *w)
{
    return atomic_load(&w->done);
}

/* ---- listeners ---------------------------------------------------------------------------- */

static void on_accept(void *ctx, int fd, const struct sockaddr *peer)
{
    wlisten *l = ctx;
    l->w->cfg.accept(l->w, fd, peer, l->name);
}

static void free_fds(cvd_listen_fd *fds, int n)
{
    for (int i = 0; i < n; i++)
        if (fds[i].fd >= 0)
            close(fds[i].fd);
    free(fds);
}

void cvd_worker_sync_listeners(cvd_worker *w, const cvd_listen_fd *fds, int n)
{
    cvd_listen_fd *copy = calloc((size_t)n + 1, sizeof *copy);
    if (copy == NULL) {
        cvd_log_error("worker %d: listeners: out of memory", w->cfg.id);
        return;
    }
    for (int i = 0; i < n; i++) {
        copy[i] = fds[i];
        if ((copy[i].fd = dup(fds[i].fd)) < 0)
            cvd_log_error("worker %d: listen %s: dup: %s", w->cfg.id, fds[i].name, strerror(errno));
    }
    pthread_mutex_lock(&w->pending_lock);
    if (w->has_pending)
        free_fds(w->pending, w->n_pending); /* never taken: replaced */
    w->pending = copy;
    w->n_pending = n;
    w->has_pending = 1;
    pthread_mutex_unlock(&w->pending_lock);
    command(w, CMD_SYNC);
}

/* Closes the listeners that are not in fds[0..n) (all of them with n < 0). */
static void close_listeners(cvd_worker *w, const cvd_listen_fd *fds, int n)
{
    int kept = 0;
    for (int i = 0; i < w->n_listens; i++) {
        wlisten *l = w->listens[i];
        int current = 0;
        for (int k = 0; k < n; k++)
            current |= fds[k].id == l->id;
        if (current) {
            w->listens[kept++] = l;
            continue;
        }
        cvd_acceptor_stop(l->acc); /* closes its descriptor when the loop has let go of it */
        free(l);
    }
    w->n_listens = kept;
}

static void sync_listeners(cvd_worker *w)
{
    cvd_listen_fd *fds;
    int n;
    pthread_mutex_lock(&w->pending_lock);
    fds = w->pending;
    n = w->n_pending;
    w->has_pending = 0;
    w->pending = NULL;
    w->n_pending = 0;
    pthread_mutex_unlock(&w->pending_lock);
    if (fds == NULL)
        return;
    if (w->shutting_down || w->exiting) {
        free_fds(fds, n);
        return;
    }
    close_listeners(w, fds, n);
    for (int k = 0; k < n; k++) {
        int have = 0;
        cvd_err err = {0};
        for (int i = 0; i < w->n_listens; i++)
            have |= w->listens[i]->id == fds[k].id;
        if (have || fds[k].fd < 0)
            continue; /* the copy given for a socket already open is closed below */
        if (w->n_listens == w->cap_listens) {
            int nc = w->cap_listens ? w->cap_listens * 2 : 8;
            wlisten **nl = realloc(w->listens, sizeof *nl * (size_t)nc);
            if (nl == NULL) {
                cvd_log_error("worker %d: listen %s: out of memory", w->cfg.id, fds[k].name);
                continue;
            }
            w->listens = nl;
            w->cap_listens = nc;
        }
        wlisten *l = calloc(1, sizeof *l);
        if (l == NULL) {
            cvd_log_error("worker %d: listen %s: out of memory", w->cfg.id, fds[k].name);
            continue;
        }
        l->w = w;
        l->id = fds[k].id;
        snprintf(l->name, sizeof l->name, "%s", fds[k].name);
        int fd = fds[k].fd;
        fds[k].fd = -1; /* the acceptor's now, whatever happens */
        if (cvd_acceptor_start(&w->loop, fd, l->name, on_accept, l, &l->acc, &err) < 0) {
            cvd_log_error("worker %d: %s", w->cfg.id, err.msg);
            free(l);
            continue;
        }
        w->listens[w->n_listens++] = l;
    }
    free_fds(fds, n);
}

/* ---- members and the run queue ------------------------------------------------------------ */

/* The loop ends once the worker was stopped and its last member has gone. */
static void maybe_finish(cvd_worker *w)
{
    if (!(w->shutting_down || w->exiting) || w->n_members > 0)
        return;
    if (!uv_is_closing((uv_handle_t *)&w->async)) {
        uv_close((uv_handle_t *)&w->async, NULL);
        uv_close((uv_handle_t *)&w->work, NULL);
    }
}

void cvd_worker_add(cvd_worker *w, cvd_worker_member *m)
{
    m->prev = NULL;
    m->next = w->members;
    m->qnext = NULL;
    m->queued = 0;
    if (w->members)
        w->members->prev = m;
    w->members = m;
    w->n_members++;
}

void cvd_worker_remove(cvd_worker *w, cvd_worker_member *m)
{
    if (m->queued) { /* out of the run queue first */
        cvd_worker_member **pp = &w->qhead, *last = NULL;
        while (*pp && *pp != m) {
            last = *pp;
            pp = &(*pp)->qnext;
        }
        if (*pp) {
            *pp = m->qnext;
            if (w->qtail == m)
                w->qtail = last;
        }
        m->queued = 0;
    }
    if (m->prev)
        m->prev->next = m->next;
    else
        w->members = m->next;
    if (m->next)
        m->next->prev = m->prev;
    m->prev = m->next = NULL;
    w->n_members--;
    maybe_finish(w);
}

int cvd_worker_members(const cvd_worker *w)
{
    return w->n_members;
}

static void on_work(uv_idle_t *h);

void cvd_worker_queue(cvd_worker *w, cvd_worker_member *m)
{
    if (m->queued)
        return;
    m->queued = 1;
    m->qnext = NULL;
    if (w->qtail)
        w->qtail->qnext = m;
    else
        w->qhead = m;
    w->qtail = m;
    if (!w->work_active && !uv_is_closing((uv_handle_t *)&w->work)) {
        CVD_UV_CHECK(uv_idle_start(&w->work, on_work));
        w->work_active = 1;
    }
}

static void on_work(uv_idle_t *h)
{
    cvd_worker *w = h->data;
    /* one pass over the members queued now: one turn each; who has more goes to the back */
    cvd_worker_member *m = w->qhead;
    w->qhead = w->qtail = NULL;
    while (m) {
        cvd_worker_member *next = m->qnext;
        m->queued = 0;
        m->qnext = NULL;
        if (m->ops->run(m))
            cvd_worker_queue(w, m);
        m = next;
    }
    if (w->qhead == NULL && w->work_active) {
        CVD_UV_CHECK(uv_idle_stop(&w->work));
        w->work_active = 0;
    }
}

static void on_async(uv_async_t *a)
{
    cvd_worker *w = a->data;
    int cmd = atomic_exchange(&w->cmd, 0);
    if (cmd & CMD_PING)
        atomic_fetch_add(&w->heartbeat, 1);
    if (cmd & CMD_SYNC)
        sync_listeners(w);
    if (cmd & CMD_WAKE)
        for (cvd_worker_member *m = w->members; m; m = m->next)
            m->ops->wake(m);
    if ((cmd & CMD_SHUTDOWN) && !w->shutting_down) {
        w->shutting_down = 1;
        close_listeners(w, NULL, 0);
        /* a member leaves the list only in a later close callback; next is taken first anyway */
        for (cvd_worker_member *m = w->members, *next; m; m = next) {
            next = m->next;
            m->ops->shutdown(m);
        }
    }
    if ((cmd & CMD_EXIT) && !w->exiting) {
        w->exiting = 1;
        close_listeners(w, NULL, 0);
        for (cvd_worker_member *m = w->members, *next; m; m = next) {
            next = m->next;
            m->ops->exit(m);
        }
    }
    maybe_finish(w);
}

/* ---- life ------------------------------------------------------------------------------- */

uv_loop_t *cvd_worker_loop(cvd_worker *w)
{
    return &w->loop;
}

int cvd_worker_id(const cvd_worker *w)
{
    return w->cfg.id;
}

int cvd_worker_stopping(const cvd_worker *w)
{
    return w->shutting_down || w->exiting;
}

cvd_runtime *cvd_worker_runtime(cvd_worker *w)
{
    return cvd_runtime_slot_get(w->cfg.runtime);
}

int cvd_worker_create(const cvd_worker_config *cfg, cvd_worker **out, cvd_err *err)
{
    cvd_worker *w = calloc(1, sizeof *w);
    int rc;
    *out = NULL;
    if (w == NULL)
        return cvd_err_set(err, CVD_ENOMEM, "worker %d: out of memory", cfg->id);
    w->cfg = *cfg;
    pthread_mutex_init(&w->pending_lock, NULL);
    if ((rc = uv_loop_init(&w->loop)) < 0) { /* expected: out of descriptors or memory */
        pthread_mutex_destroy(&w->pending_lock);
        free(w);
        return cvd_err_set(err, CVD_EIO, "worker %d: uv_loop_init: %s", cfg->id, uv_strerror(rc));
    }
    w->loop_open = 1;
    if ((rc = uv_async_init(&w->loop, &w->async, on_async)) < 0) { /* an eventfd: expected */
        cvd_worker_destroy(w);
        return cvd_err_set(err, CVD_EIO, "worker %d: uv_async_init: %s", cfg->id, uv_strerror(rc));
    }
    w->async.data = w;
    CVD_UV_CHECK(uv_idle_init(&w->loop, &w->work));
    w->work.data = w;
    *out = w;
    return CVD_OK;
}

static void worker_main(void *arg)
{
    cvd_worker *w = arg;
    int rc = uv_run(&w->loop, UV_RUN_DEFAULT);
    (void)rc; /* nonzero only with handles still active, which ended the loop on purpose */
    atomic_store(&w->done, 1);
    if (w->cfg.done)
        w->cfg.done(w->cfg.ctx);
}

int cvd_worker_start(cvd_worker *w, cvd_err *err)
{
    int rc = uv_thread_create(&w->thread, worker_main, w);
    if (rc < 0) /* expected: out of memory or threads */
        return cvd_err_set(err, CVD_EIO, "worker %d: uv_thread_create: %s", w->cfg.id,
                           uv_strerror(rc));
    w->started = 1;
    return CVD_OK;
}

static void close_any(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

void cvd_worker_destroy(cvd_worker *w)
{
    if (w == NULL)
        return;
    if (w->started)
        CVD_UV_CHECK(uv_thread_join(&w->thread));
    if (w->loop_open) {
        /* a worker never started (a failed start) still has its async and idle handles */
        close_listeners(w, NULL, 0);
        uv_walk(&w->loop, close_any, NULL);
        uv_run(&w->loop, UV_RUN_DEFAULT); /* the close callbacks left over */
        CVD_UV_CHECK(uv_loop_close(&w->loop));
    }
    free(w->listens);
    free_fds(w->pending, w->n_pending);
    pthread_mutex_destroy(&w->pending_lock);
    free(w);
}
