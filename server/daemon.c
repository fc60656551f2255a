/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The daemon's main thread (daemon.h): startup in a fixed order, the main loop (signals,
 * reload, watchdog, shutdown), and one cleanup path that undoes the startup in reverse, for
 * whatever of it was done.
 *
 *   startup: runtime -> listening sockets -> metrics endpoint -> live audio -> main handles
 *            (signals, timers, the workers' done async) -> workers
 *   cleanup: workers -> main handles -> live audio -> metrics endpoint -> the loop's close
 *            callbacks -> listening sockets -> runtime -> the loop
 */
#include "daemon.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <systemd/sd-daemon.h>
#include <time.h>

#include "audio.h"
#include "control.h"
#include "conn.h"
#include "listen.h"
#include "log.h"
#include "uv_check.h"
#include "metrics.h"
#include "metrics_http.h"
#include "nats.h"
#include "nats_set.h"
#include "runtime.h"
#include "worker.h"

typedef struct cvd_daemon {
    uv_loop_t *loop;
    const char *config_path; /* NULL: the embedded default */
    cvd_runtime_slot *runtime;
    cvd_listen_set *listens;
    cvd_metrics_http *metrics;
    cvd_audio *audio;     /* live audio streams ([stream NAME]); NULL if none */
    cvd_control *control; /* convd-ctl's socket; NULL if none */
    cvd_worker **workers;
    int n_workers;
    cvd_nats_set *nats; /* the [nats NAME] groups (nats_set.h) */
    int nats_stopping;  /* SIGTERM: waiting for them to hand their partitions over */
    const char *shutdown_why;

    int handles; /* the main handles below are initialised (and not yet closed) */
    uv_signal_t sigterm, sigint, sighup;
    uv_timer_t watchdog, deadline;
    uv_async_t worker_done;

    uv_work_t reload_req;
    cvd_runtime *reload_result;
    cvd_audio_prepared *reload_audio; /* the reload's nets for the audio streams */
    cvd_err reload_err;
    int reloading, reload_again, stopping;
    uint64_t watchdog_usec;
    unsigned long long last_beats_sum;
    int exit_code;
} cvd_daemon;

static const cvd_conf *conf_of(const cvd_daemon *d)
{
    return cvd_runtime_slot_peek(d->runtime)->conf;
}

/* ---- status ------------------------------------------------------------------------------- */

static void notify_status(cvd_daemon *d, const char *what)
{
    const cvd_conf *c = conf_of(d);
    sd_notifyf(0,
               "STATUS=%s: %d listeners, %d models, %d of %d audio streams running, %lld "
               "clients",
               what, c->n_listens, c->n_models, cvd_audio_running(d->audio), c->n_streams,
               (long long)cvd_metrics_clients_now());
}

static void log_listeners(cvd_daemon *d)
{
    const cvd_runtime *rt = cvd_runtime_slot_peek(d->runtime);
    for (int i = 0; i < rt->conf->n_listens; i++) {
        const cvd_conf_listen *l = &rt->conf->listens[i];
        cvd_model *m = cvd_runtime_listener_model(rt, i);
        char sec[320] = "", allow[200];
        /* what guards it: TLS, client certificates, tokens, the allow list */
        if (rt->tls[i])
            snprintf(sec + strlen(sec), sizeof sec - strlen(sec), ", TLS%s",
                     cvd_tls_ctx_verifies_peer(rt->tls[i]) ? " with client certificates" : "");
        if (rt->tokens[i])
            snprintf(sec + strlen(sec), sizeof sec - strlen(sec), ", %d tokens",
                     cvd_tokens_count(rt->tokens[i]));
        if (l->allow.n > 0) {
            cvd_acl_format(&l->allow, allow, sizeof allow);
            snprintf(sec + strlen(sec), sizeof sec - strlen(sec), ", allow %s", allow);
        }
        /* the chain (model = amp, cab), its channels through, its models' latencies added */
        char names[CVD_CONF_CHAIN_MAX * (CVD_CONF_NAME_MAX + 2) + 1] = "";
        const cvd_model *last = m;
        int lat = 0;
        for (int k = 0; k < l->n_chain; k++) {
            snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s", k ? ", " : "",
                     l->chain[k]);
            last = rt->models[l->chain_index[k]];
            lat += cvd_model_latency(last);
        }
        if (l->rate_line)
            snprintf(sec + strlen(sec), sizeof sec - strlen(sec), ", rate %d Hz", l->rate);
        cvd_log_info("listen %s: %s%s%s:%d, %s%s%s, model %s (%d -> %d channels, latency %d "
                     "frames), block %d%s",
                     l->name, l->family == AF_INET6 ? "[" : "", l->host,
                     l->family == AF_INET6 ? "]" : "", cvd_listen_set_port(d->listens, i),
                     cvd_proto_name(l->protocol), l->protocol == CVD_PROTO_RAW ? " " : "",
                     l->protocol == CVD_PROTO_RAW ? cvd_sample_fmt_name(l->format) : "",
                     names[0] ? names : "(named by each client)", m ? cvd_model_in_channels(m) : 0,
                     last ? cvd_model_out_channels(last) : 0, lat, l->block, sec);
    }
    /* a model whose file declares no rate runs at the rate of what it is given: said once a
     * load, plainly ([model] rate says it for a file that does not) */
    for (int i = 0; i < rt->conf->n_models; i++)
        if (cvd_model_sample_rate(rt->models[i]) == 0)
            cvd_log_info("model %s: %s declares no sample rate: it runs at the rate of each "
                         "stream or session it is given, unresampled (set [model %s] rate = "
                         "the rate it was trained at, e.g. 48000, to have it resampled)",
                         rt->conf->models[i].name, rt->conf->models[i].path,
                         rt->conf->models[i].name);
}

/* ---- workers ------------------------------------------------------------------------------- */

static void sync_workers(cvd_daemon *d)
{
    const cvd_listen_fd *fds;
    int n = cvd_listen_set_fds(d->listens, &fds);
    for (int i = 0; i < d->n_workers; i++)
        cvd_worker_sync_listeners(d->workers[i], fds, n);
}

static void stop_workers(cvd_daemon *d, int now)
{
    for (int i = 0; i < d->n_workers; i++)
        cvd_worker_stop(d->workers[i], now);
}

/* a worker's thread: its loop has ended */
static void worker_done(void *ctx)
{
    cvd_daemon *d = ctx;
    CVD_UV_CHECK(uv_async_send(&d->worker_done));
}

/* Creates and starts n workers; on failure those made are stopped and destroyed. */
static int start_workers(cvd_daemon *d, int n, cvd_err *err)
{
    int rc = CVD_OK;
    d->workers = calloc((size_t)n, sizeof *d->workers);
    if (d->workers == NULL)
        return cvd_err_set(err, CVD_ENOMEM, "out of memory starting %d workers", n);
    for (int i = 0; i < n && rc == CVD_OK; i++) {
        cvd_worker_config cfg = {.id = i,
                                 .runtime = d->runtime,
                                 .accept = cvd_conn_accept,
                                 .done = worker_done,
                                 .ctx = d};
        cvd_worker *w = NULL;
        if ((rc = cvd_worker_create(&cfg, &w, err)) < 0)
            break;
        d->workers[d->n_workers++] = w;
        /* the NATS groups' model work runs on this worker: a member, added before it runs */
        if ((rc = cvd_nats_set_add_worker(d->nats, w, err)) < 0)
            break;
        const cvd_listen_fd *fds;
        int nf = cvd_listen_set_fds(d->listens, &fds);
        cvd_worker_sync_listeners(w, fds, nf);
        rc = cvd_worker_start(w, err);
    }
    if (rc < 0) {
        stop_workers(d, 1);
        for (int i = 0; i < d->n_workers; i++)
            cvd_worker_destroy(d->workers[i]);
        free(d->workers);
        d->workers = NULL;
        d->n_workers = 0;
    }
    return rc;
}

/* ---- reload ----------------------------------------------------------------------------- */

static void reload_work(uv_work_t *req)
{
    cvd_daemon *d = req->data;
    d->reload_result = NULL;
    memset(&d->reload_err, 0, sizeof d->reload_err);
    d->reload_audio = NULL;
    if (cvd_runtime_create(d->config_path, &d->reload_result, &d->reload_err) < 0)
        return;
    /* the audio streams' new nets are built here, off the loop and off the audio threads */
    d->reload_audio = cvd_audio_prepared_create(d->reload_result, &d->reload_err);
    if (d->reload_audio == NULL) {
        cvd_runtime_unref(d->reload_result);
        d->reload_result = NULL;
    }
}

static void start_reload(cvd_daemon *d);

static void reload_done(uv_work_t *req, int status)
{
    cvd_daemon *d = req->data;
    cvd_runtime *nrt = d->reload_result;
    int ok = 0;

    d->reloading = 0;
    if (status == 0 && nrt != NULL && !d->stopping && !d->nats_stopping &&
        cvd_listen_set_sync(d->listens, nrt->conf, &d->reload_err) == 0) {
        cvd_runtime *old = cvd_runtime_slot_swap(d->runtime, nrt);
        cvd_nats_set_reload(d->nats, old, nrt);
        cvd_runtime_unref(old);
        ok = 1;
    }
    if (ok) {
        cvd_log_set_level(nrt->conf->log_level);
        if (nrt->conf->workers && nrt->conf->workers != d->n_workers)
            cvd_log_warning("reload: workers = %d takes effect at the next start (running %d)",
                            nrt->conf->workers, d->n_workers);
        sync_workers(d);
        cvd_log_info("reload: %s applied: new connections use it, TCP sessions already "
                     "running keep their models%s",
                     nrt->conf->file, nrt->conf->n_streams ? "; audio streams, one by one:" : "");
        log_listeners(d);
        cvd_metrics_http_set_allow(d->metrics, &nrt->conf->metrics_allow);
        cvd_audio_reload(&d->audio, d->loop, nrt, d->reload_audio);
        d->reload_audio = NULL;
        cvd_metrics_reload(1);
        sd_notify(0, "READY=1");
        notify_status(d, "reloaded");
    } else {
        cvd_runtime_unref(nrt);
        cvd_audio_prepared_destroy(d->reload_audio);
        d->reload_audio = NULL;
        if (!d->stopping) {
            cvd_log_error("reload failed, keeping the running configuration: %s",
                          d->reload_err.msg);
            cvd_metrics_reload(0);
            sd_notify(0, "READY=1");
            sd_notifyf(0, "STATUS=reload failed: %s", d->reload_err.msg);
        }
    }
    if (d->reload_again && !d->stopping) {
        d->reload_again = 0;
        start_reload(d);
    }
}

static void start_reload(cvd_daemon *d)
{
    struct timespec ts;
    int rc;
    if (d->reloading) {
        d->reload_again = 1;
        return;
    }
    d->reloading = 1;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    sd_notifyf(0, "RELOADING=1\nMONOTONIC_USEC=%llu\nSTATUS=reloading",
               (unsigned long long)ts.tv_sec * 1000000ull + (unsigned long long)ts.tv_nsec / 1000);
    cvd_log_info("SIGHUP: reloading %s", d->config_path ? d->config_path : "(built-in default)");
    d->reload_req.data = d;
    if ((rc = uv_queue_work(d->loop, &d->reload_req, reload_work, reload_done)) < 0) {
        d->reloading = 0;
        cvd_log_error("reload: uv_queue_work: %s", uv_strerror(rc));
    }
}

/* ---- shutdown --------------------------------------------------------------------------- */

/* The main loop ends once these are closed (and the metrics endpoint and audio stopped). */
static void close_main_handles(cvd_daemon *d)
{
    uv_handle_t *hs[] = {(uv_handle_t *)&d->sigterm,  (uv_handle_t *)&d->sigint,
                         (uv_handle_t *)&d->sighup,   (uv_handle_t *)&d->watchdog,
                         (uv_handle_t *)&d->deadline, (uv_handle_t *)&d->worker_done};
    cvd_control_stop(d->control);
    d->control = NULL;
    cvd_audio_stop(d->audio);
    cvd_metrics_http_stop(d->metrics);
    d->metrics = NULL;
    cvd_nats_set_close(d->nats); /* its main-loop handle too */
    if (!d->handles)
        return;
    d->handles = 0;
    for (size_t i = 0; i < sizeof hs / sizeof hs[0]; i++)
        if (!uv_is_closing(hs[i]))
            uv_close(hs[i], NULL);
}

static void on_worker_done(uv_async_t *a)
{
    cvd_daemon *d = a->data;
    for (int i = 0; i < d->n_workers; i++)
        if (!cvd_worker_done_flag(d->workers[i]))
            return;
    close_main_handles(d);
}

static void on_deadline(uv_timer_t *t)
{
    cvd_daemon *d = t->data;
    cvd_log_warning("shutdown: streams still open after %.1f s; closing them",
                    conf_of(d)->shutdown_timeout);
    stop_workers(d, 1);
}

static void begin_shutdown(cvd_daemon *d, const char *why);

/* the NATS groups handed everything over (or ran out of time): the rest of the shutdown */
static void on_nats_stopped(void *ctx)
{
    cvd_daemon *d = ctx;
    if (!d->nats_stopping)
        return;
    d->nats_stopping = 0;
    begin_shutdown(d, d->shutdown_why);
}

static void on_nats_deadline(uv_timer_t *t)
{
    cvd_daemon *d = t->data;
    cvd_log_warning("shutdown: the NATS handovers did not finish within %.1f s; their leases "
                    "expire instead",
                    conf_of(d)->shutdown_timeout + 10);
    cvd_nats_set_abort(d->nats);
    on_nats_stopped(d);
}

static void begin_shutdown(cvd_daemon *d, const char *why)
{
    if (d->nats_stopping) {
        cvd_log_warning("%s again: not waiting for the NATS handovers (their leases expire)", why);
        cvd_nats_set_abort(d->nats);
        d->nats_stopping = 0;
    } else if (!d->stopping && cvd_nats_set_stop(d->nats, on_nats_stopped, d)) {
        /* the groups hand their partitions over first, while the workers still run */
        d->nats_stopping = 1;
        d->shutdown_why = why;
        cvd_log_info("%s: handing the NATS partitions over first", why);
        sd_notify(0, "STOPPING=1\nSTATUS=handing NATS partitions over");
        CVD_UV_CHECK(uv_timer_start(&d->deadline, on_nats_deadline,
                                    (uint64_t)((conf_of(d)->shutdown_timeout + 10) * 1000), 0));
        return;
    }
    if (d->stopping) {
        cvd_log_warning("%s again: closing every stream now", why);
        stop_workers(d, 1);
        return;
    }
    d->stopping = 1;
    cvd_log_info("%s: no new connections; flushing open streams (up to %.1f s)", why,
                 conf_of(d)->shutdown_timeout);
    sd_notify(0, "STOPPING=1\nSTATUS=stopping");
    /* live audio first: its published streams end, so their subscribers can finish */
    cvd_control_stop(d->control);
    d->control = NULL;
    cvd_audio_stop(d->audio);
    cvd_metrics_http_stop(d->metrics);
    d->metrics = NULL;
    CVD_UV_CHECK(uv_timer_start(&d->deadline, on_deadline,
                                (uint64_t)(conf_of(d)->shutdown_timeout * 1000), 0));
    stop_workers(d, 0);
    on_worker_done(&d->worker_done); /* no workers: done already */
}

static void on_signal(uv_signal_t *h, int sig)
{
    cvd_daemon *d = h->data;
    if (sig == SIGHUP) {
        if (!d->stopping)
            start_reload(d);
        return;
    }
    begin_shutdown(d, sig == SIGTERM ? "SIGTERM" : "SIGINT");
}

/* ---- watchdog --------------------------------------------------------------------------- */

static void on_watchdog(uv_timer_t *t)
{
    cvd_daemon *d = t->data;
    unsigned long long sum = 0;
    int alive = 1;
    /* every worker must have answered the last ping */
    for (int i = 0; i < d->n_workers; i++) {
        unsigned long long b = cvd_worker_heartbeat(d->workers[i]);
        sum += b;
        if (b == 0 && d->last_beats_sum != 0)
            alive = 0;
    }
    if (alive &&
        (sum >= d->last_beats_sum + (unsigned long long)d->n_workers || d->last_beats_sum == 0))
        sd_notify(0, "WATCHDOG=1");
    else
        cvd_log_warning("watchdog: a worker loop did not answer; not petting the watchdog");
    d->last_beats_sum = sum ? sum : 1;
    for (int i = 0; i < d->n_workers; i++)
        cvd_worker_ping(d->workers[i]);
}

/* ---- startup and cleanup ------------------------------------------------------------------ */

/* The main handles. uv_async_init opens an eventfd (an expected failure); the rest cannot
 * fail on a live loop. */
static int init_main_handles(cvd_daemon *d, cvd_err *err)
{
    int rc = uv_async_init(d->loop, &d->worker_done, on_worker_done);
    if (rc < 0)
        return cvd_err_set(err, CVD_EIO, "uv_async_init: %s", uv_strerror(rc));
    d->worker_done.data = d;
    CVD_UV_CHECK(uv_signal_init(d->loop, &d->sigterm));
    CVD_UV_CHECK(uv_signal_init(d->loop, &d->sigint));
    CVD_UV_CHECK(uv_signal_init(d->loop, &d->sighup));
    d->sigterm.data = d->sigint.data = d->sighup.data = d;
    CVD_UV_CHECK(uv_timer_init(d->loop, &d->deadline));
    CVD_UV_CHECK(uv_timer_init(d->loop, &d->watchdog));
    d->deadline.data = d->watchdog.data = d;
    d->handles = 1;
    return CVD_OK;
}

/* Undoes the startup in reverse, for whatever of it was done; after a normal run the workers
 * have ended and the main handles are closed already. */
static void cleanup(cvd_daemon *d)
{
    cvd_nats_set_close(d->nats); /* the groups end before the workers they feed */
    stop_workers(d, 1);          /* no-op for workers that have ended */
    for (int i = 0; i < d->n_workers; i++)
        cvd_worker_destroy(d->workers[i]); /* joins */
    free(d->workers);
    d->workers = NULL;
    d->n_workers = 0;
    close_main_handles(d);           /* with audio and metrics */
    uv_run(d->loop, UV_RUN_DEFAULT); /* their close callbacks */
    cvd_nats_set_free(d->nats);
    cvd_audio_destroy(d->audio);
    cvd_listen_set_destroy(d->listens);
    cvd_runtime_slot_destroy(d->runtime);
    int rc = uv_loop_close(d->loop);
    if (rc < 0) /* a handle left open: a bug, but the process ends anyway */
        cvd_log_error("uv_loop_close: %s", uv_strerror(rc));
}

int cvd_daemon_check(const char *config_path)
{
    cvd_runtime *rt;
    cvd_err err = {0};
    if (cvd_runtime_create(config_path, &rt, &err) < 0) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    if (cvd_audio_check(rt, stdout) != 0) {
        cvd_runtime_unref(rt);
        return 1;
    }
    printf("%s: OK: %d models, %d listeners, %d streams, %d nats groups\n", rt->conf->file,
           rt->conf->n_models, rt->conf->n_listens, rt->conf->n_streams, rt->conf->n_nats);
    for (int i = 0; i < rt->conf->n_models; i++)
        printf("  model %s: %s (%d -> %d channels, latency %d frames)\n", rt->conf->models[i].name,
               rt->conf->models[i].path, cvd_model_in_channels(rt->models[i]),
               cvd_model_out_channels(rt->models[i]), cvd_model_latency(rt->models[i]));
    for (int i = 0; i < rt->conf->n_nats; i++) {
        const cvd_nats_conf *n = &rt->conf->nats[i];
        printf("  nats %s: model %s, %s.in.<id> over %d partitions of %s, outputs to %s, %d "
               "replicas; servers %s\n",
               n->name, n->model, n->prefix, n->partitions, n->input_stream, n->output_stream,
               n->replicas, n->servers);
    }
    cvd_runtime_unref(rt);
    return 0;
}

int cvd_daemon_run(const char *config_path, int workers_override, int log_level_override)
{
    cvd_daemon d;
    cvd_err err = {0};
    cvd_runtime *rt = NULL;
    int status = 1, ran = 0;

    memset(&d, 0, sizeof d);
    signal(SIGPIPE, SIG_IGN);
    /* a SIGHUP (systemctl reload), SIGTERM or SIGINT that comes while the daemon starts
     * (its audio streams already log their latency) waits for the handler, instead of
     * killing the daemon by its default action; the threads started meanwhile keep them
     * blocked, so the loop's thread is the one that takes them */
    sigset_t held;
    sigemptyset(&held);
    sigaddset(&held, SIGHUP);
    sigaddset(&held, SIGTERM);
    sigaddset(&held, SIGINT);
    pthread_sigmask(SIG_BLOCK, &held, NULL);
    d.loop = uv_default_loop();
    d.config_path = config_path;

    if (cvd_runtime_create(config_path, &rt, &err) < 0 ||
        cvd_runtime_slot_create(rt, &d.runtime, &err) < 0) {
        cvd_runtime_unref(rt);
        cvd_log_error("%s", err.msg);
        goto out;
    }
    const cvd_conf *c = rt->conf;
    cvd_log_set_level(log_level_override >= 0 ? log_level_override : c->log_level);
    cvd_log_info("configuration %s: %d models, %d listeners, %d audio streams, %d nats groups",
                 c->file, c->n_models, c->n_listens, c->n_streams, c->n_nats);
    if (cvd_listen_set_create(&d.listens, &err) < 0 ||
        cvd_listen_set_sync(d.listens, c, &err) < 0 ||
        cvd_metrics_http_start(d.loop, c, &d.metrics, &err) < 0) {
        cvd_log_error("%s", err.msg);
        goto out;
    }
    if (cvd_audio_start(d.loop, rt, &d.audio, &err) < 0)
        goto out; /* logged, with the list of devices when one is missing */
    if (cvd_control_start(d.loop, c, &d.audio, &d.control, &err) < 0) {
        if (c->control_socket[0]) { /* a path of the configuration's own: it must work */
            cvd_log_error("%s", err.msg);
            goto out;
        }
        cvd_log_warning("%s; convd-ctl is off", err.msg);
    }
    if (init_main_handles(&d, &err) < 0) {
        cvd_log_error("%s", err.msg);
        goto out;
    }
    int nw = workers_override > 0 ? workers_override : c->workers;
    if (nw <= 0)
        nw = (int)uv_available_parallelism();
    if (nw <= 0)
        nw = 1;
    if (cvd_nats_set_create(d.loop, NULL, 0, &d.nats, &err) < 0 ||
        start_workers(&d, nw, &err) < 0 ||
        cvd_nats_set_start(d.nats, cvd_runtime_slot_peek(d.runtime), &err) < 0) {
        cvd_log_error("%s", err.msg);
        goto out;
    }
    CVD_UV_CHECK(uv_signal_start(&d.sigterm, on_signal, SIGTERM));
    CVD_UV_CHECK(uv_signal_start(&d.sigint, on_signal, SIGINT));
    CVD_UV_CHECK(uv_signal_start(&d.sighup, on_signal, SIGHUP));
    pthread_sigmask(SIG_UNBLOCK, &held, NULL);
    if (sd_watchdog_enabled(0, &d.watchdog_usec) > 0 && d.watchdog_usec > 0) {
        uint64_t ms = d.watchdog_usec / 2000;
        CVD_UV_CHECK(uv_timer_start(&d.watchdog, on_watchdog, ms ? ms : 1, ms ? ms : 1));
        cvd_log_info("systemd watchdog: every %llu ms", (unsigned long long)(ms ? ms : 1));
    }
    cvd_log_info("%d worker threads", nw);
    log_listeners(&d);
    sd_notify(0, "READY=1");
    notify_status(&d, "serving");

    uv_run(d.loop, UV_RUN_DEFAULT);
    status = d.exit_code;
    ran = 1;
out:
    cleanup(&d);
    if (ran)
        cvd_log_info("stopped");
    return status;
}
