/* SPDX-License-Identifier: Apache-2.0 */
/* The daemon's [nats NAME] groups: see nats_set.h. */
#include "nats_set.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "nats.h"
#include "uv_check.h"

/* a worker's member: runs the groups' jobs queued for this worker */
typedef struct exec_member {
    cvd_worker_member m; /* first: the worker gives this pointer back */
    cvd_worker *w;
    cvd_nats_exec *x;
    int gone;
} exec_member;

static int member_run(cvd_worker_member *m)
{
    exec_member *em = (exec_member *)m;
    return em->gone ? 0 : cvd_nats_exec_run(em->x, 8);
}

static void member_wake(cvd_worker_member *m)
{
    exec_member *em = (exec_member *)m;
    if (!em->gone && cvd_nats_exec_pending(em->x) > 0)
        cvd_worker_queue(em->w, m);
}

/* the worker stops after the groups have handed over (cvd_nats_set_stop): nothing is left
 * that a group waits for, so the member leaves at once */
static void member_leave(cvd_worker_member *m)
{
    exec_member *em = (exec_member *)m;
    if (em->gone)
        return;
    em->gone = 1;
    cvd_worker_remove(em->w, m);
}

static const cvd_worker_member_ops member_ops = {member_run, member_wake, member_leave,
                                                 member_leave};

typedef struct group_slot {
    cvd_nats_group *g;
    char name[72];
} group_slot;

struct cvd_nats_set {
    uv_loop_t *loop;
    uv_async_t stopped; /* a group finished handing over */
    int handle_open;
    exec_member **members;
    int n_members;
    group_slot *groups; /* the running configuration's */
    int n_groups;
    cvd_nats_group **old; /* handing over after a reload */
    int n_old;
    int stopping;
    void (*done)(void *);
    void *done_ctx;
};

static void on_stopped_thread(void *ctx)
{
    cvd_nats_set *s = ctx;
    CVD_UV_CHECK(uv_async_send(&s->stopped));
}

static void on_stopped(uv_async_t *a)
{
    cvd_nats_set *s = a->data;
    for (int i = 0; i < s->n_old;) {
        if (cvd_nats_group_finished(s->old[i])) {
            cvd_nats_group_destroy(s->old[i]);
            s->old[i] = s->old[--s->n_old];
        } else {
            i++;
        }
    }
    if (!s->stopping)
        return;
    for (int i = 0; i < s->n_groups; i++)
        if (!cvd_nats_group_finished(s->groups[i].g))
            return;
    for (int i = 0; i < s->n_groups; i++)
        cvd_nats_group_destroy(s->groups[i].g);
    s->n_groups = 0;
    if (s->n_old > 0)
        return; /* the next finished one comes back here */
    s->stopping = 0;
    if (s->done) {
        void (*done)(void *) = s->done;
        s->done = NULL;
        done(s->done_ctx);
    }
}

int cvd_nats_set_add_worker(cvd_nats_set *s, cvd_worker *w, cvd_err *err)
{
    exec_member *em = calloc(1, sizeof *em);
    exec_member **nm = realloc(s->members, sizeof *nm * (size_t)(s->n_members + 1));
    if (em == NULL || nm == NULL) {
        free(em);
        if (nm)
            s->members = nm;
        return cvd_err_set(err, CVD_ENOMEM, "out of memory");
    }
    s->members = nm;
    em->w = w;
    em->m.ops = &member_ops;
    em->x = cvd_nats_exec_create(cvd_worker_wake, w);
    if (em->x == NULL) {
        free(em);
        return cvd_err_set(err, CVD_ENOMEM, "out of memory");
    }
    cvd_worker_add(w, &em->m);
    s->members[s->n_members++] = em;
    return CVD_OK;
}

int cvd_nats_set_create(uv_loop_t *loop, cvd_worker **workers, int n_workers, cvd_nats_set **out,
                        cvd_err *err)
{
    int rc;
    cvd_nats_set *s = calloc(1, sizeof *s);
    *out = NULL;
    if (s == NULL)
        return cvd_err_set(err, CVD_ENOMEM, "out of memory");
    s->loop = loop;
    if ((rc = uv_async_init(loop, &s->stopped, on_stopped)) < 0) {
        free(s);
        return cvd_err_set(err, CVD_EIO, "uv_async_init: %s", uv_strerror(rc));
    }
    s->stopped.data = s;
    s->handle_open = 1;
    for (int i = 0; i < n_workers; i++)
        if ((rc = cvd_nats_set_add_worker(s, workers[i], err)) < 0) {
            cvd_nats_set_close(s);
            *out = s; /* the caller frees it after its loop ran the close callback */
            return rc;
        }
    *out = s;
    return CVD_OK;
}

static cvd_nats_group *start_one(cvd_nats_set *s, const cvd_runtime *rt, int i, cvd_err *err)
{
    const cvd_conf *c = rt->conf;
    const cvd_nats_conf *n = &c->nats[i];
    cvd_nats_exec **execs = calloc((size_t)s->n_members + 1, sizeof *execs);
    cvd_nats_group *g = NULL;
    if (execs == NULL) {
        cvd_err_set(err, CVD_ENOMEM, "out of memory");
        return NULL;
    }
    for (int k = 0; k < s->n_members; k++)
        execs[k] = s->members[k]->x;
    if (cvd_nats_group_create(n, rt->models[n->model_index], c->models[n->model_index].hop,
                              c->nonfinite_pass, execs, s->n_members, &g, err) < 0 ||
        cvd_nats_group_start(g, err) < 0) {
        cvd_nats_group_destroy(g);
        g = NULL;
    }
    free(execs);
    return g;
}

int cvd_nats_set_start(cvd_nats_set *s, const cvd_runtime *rt, cvd_err *err)
{
    const cvd_conf *c = rt->conf;
    if (c->n_nats == 0)
        return CVD_OK;
    s->groups = calloc((size_t)c->n_nats, sizeof *s->groups);
    if (s->groups == NULL)
        return cvd_err_set(err, CVD_ENOMEM, "out of memory");
    for (int i = 0; i < c->n_nats; i++) {
        cvd_nats_group *g = start_one(s, rt, i, err);
        if (g == NULL)
            return CVD_EIO;
        s->groups[s->n_groups].g = g;
        snprintf(s->groups[s->n_groups].name, sizeof s->groups[0].name, "%s", c->nats[i].name);
        s->n_groups++;
    }
    return CVD_OK;
}

static void retire(cvd_nats_set *s, cvd_nats_group *g)
{
    cvd_nats_group **o = realloc(s->old, sizeof *o * (size_t)(s->n_old + 1));
    if (o == NULL) {
        cvd_nats_group_destroy(g); /* its leases expire instead */
        return;
    }
    s->old = o;
    s->old[s->n_old++] = g;
    cvd_nats_group_stop(g, on_stopped_thread, s);
}

void cvd_nats_set_reload(cvd_nats_set *s, const cvd_runtime *old, const cvd_runtime *nrt)
{
    const cvd_conf *c = nrt->conf;
    group_slot *groups = calloc((size_t)c->n_nats + 1, sizeof *groups);
    cvd_err err = {0};
    if (groups == NULL) {
        cvd_log_error("reload: out of memory; the [nats] groups keep running as they were");
        return;
    }
    for (int i = 0; i < s->n_groups; i++) {
        cvd_nats_group *g = s->groups[i].g;
        const cvd_nats_conf *oc = cvd_nats_group_conf(g);
        int k = -1;
        for (int j = 0; j < c->n_nats; j++)
            if (strcmp(c->nats[j].name, s->groups[i].name) == 0)
                k = j;
        int keep = k >= 0 && !cvd_nats_conf_needs_restart(oc, &c->nats[k]);
        if (keep) {
            const int om = cvd_conf_find_model(old->conf, oc->model), nm = c->nats[k].model_index;
            keep = om >= 0 && strcmp(old->conf->models[om].path, c->models[nm].path) == 0 &&
                   old->conf->models[om].hop == c->models[nm].hop;
        }
        if (keep) {
            cvd_nats_group_update(g, &c->nats[k]);
            groups[k].g = g;
        } else {
            cvd_log_info("reload: [nats %s] %s: handing its partitions over", s->groups[i].name,
                         k >= 0 ? "changed" : "removed");
            retire(s, g);
        }
    }
    for (int j = 0; j < c->n_nats; j++) {
        snprintf(groups[j].name, sizeof groups[j].name, "%s", c->nats[j].name);
        if (groups[j].g == NULL && (groups[j].g = start_one(s, nrt, j, &err)) == NULL)
            cvd_log_error("reload: [nats %s]: %s", c->nats[j].name, err.msg);
    }
    free(s->groups);
    s->groups = groups;
    s->n_groups = 0;
    for (int j = 0; j < c->n_nats; j++)
        if (groups[j].g)
            groups[s->n_groups++] = groups[j];
}

int cvd_nats_set_stop(cvd_nats_set *s, void (*done)(void *), void *ctx)
{
    if (s == NULL || s->n_groups + s->n_old == 0)
        return 0;
    s->stopping = 1;
    s->done = done;
    s->done_ctx = ctx;
    for (int i = 0; i < s->n_groups; i++)
        cvd_nats_group_stop(s->groups[i].g, on_stopped_thread, s);
    return 1;
}

void cvd_nats_set_abort(cvd_nats_set *s)
{
    if (s == NULL)
        return;
    for (int i = 0; i < s->n_groups; i++)
        cvd_nats_group_destroy(s->groups[i].g);
    for (int i = 0; i < s->n_old; i++)
        cvd_nats_group_destroy(s->old[i]);
    s->n_groups = s->n_old = 0;
    s->stopping = 0;
    s->done = NULL;
}

void cvd_nats_set_close(cvd_nats_set *s)
{
    if (s == NULL)
        return;
    cvd_nats_set_abort(s);
    if (s->handle_open) {
        uv_close((uv_handle_t *)&s->stopped, NULL);
        s->handle_open = 0;
    }
}

void cvd_nats_set_free(cvd_nats_set *s)
{
    if (s == NULL)
        return;
    for (int i = 0; i < s->n_members; i++) {
        cvd_nats_exec_destroy(s->members[i]->x);
        free(s->members[i]);
    }
    free(s->members);
    free(s->groups);
    free(s->old);
    free(s);
    cvd_nats_shutdown();
}

int cvd_nats_set_count(const cvd_nats_set *s)
{
    return s ? s->n_groups : 0;
}
