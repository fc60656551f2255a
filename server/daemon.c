/*
 * The daemon's life: start, listening sockets, worker threads, reload, shutdown, systemd,
 * metrics endpoint. Connections themselves are conn.c's.
 */
#include "daemon.h"

#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <arpa/inet.h>
#include <systemd/sd-daemon.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "metrics.h"

/* libuv calls that cannot fail in a correct program: abort with the call's name */
#define UV_CHECK(call)                                                                       \
    do {                                                                                     \
        int uv__rc = (call);                                                                 \
        if (uv__rc < 0) {                                                                    \
            cvd_log_error("%s: %s", #call, uv_strerror(uv__rc));                             \
            abort();                                                                         \
        }                                                                                    \
    } while (0)

/* ---- socket activation ------------------------------------------------------------------ */

typedef struct activated_fd {
    int fd;
    char name[CVD_CONF_NAME_MAX + 1];
    int used;
} activated_fd;

static activated_fd *activated;
static int n_activated;

static void take_activated_fds(void)
{
    char **names = NULL;
    int n = sd_listen_fds_with_names(1, &names);
    if (n <= 0)
        return;
    activated = calloc((size_t)n, sizeof *activated);
    for (int i = 0; i < n && activated; i++) {
        activated[i].fd = SD_LISTEN_FDS_START + i;
        snprintf(activated[i].name, sizeof activated[i].name, "%s",
                 names && names[i] ? names[i] : "");
        n_activated++;
        cvd_log_info("socket activation: fd %d named '%s'", activated[i].fd, activated[i].name);
    }
    for (int i = 0; names && i < n; i++)
        free(names[i]);
    free(names);
}

/* ---- listening sockets ------------------------------------------------------------------ */

static int bound_port(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
        return -1;
    if (ss.ss_family == AF_INET)
        return ntohs(((struct sockaddr_in *)&ss)->sin_port);
    return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
}

static int open_lsock(cvd_lsock *s, cvd_err *err)
{
    struct sockaddr_storage ss;
    socklen_t len;
    int one = 1, fd;

    memset(&ss, 0, sizeof ss);
    if (s->family == AF_INET6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        a->sin6_family = AF_INET6;
        a->sin6_port = htons((uint16_t)s->port);
        inet_pton(AF_INET6, s->host, &a->sin6_addr);
        len = sizeof *a;
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        a->sin_family = AF_INET;
        a->sin_port = htons((uint16_t)s->port);
        inet_pton(AF_INET, s->host, &a->sin_addr);
        len = sizeof *a;
    }
    fd = socket(s->family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return cvd_err_set(err, CVD_EIO, "listen %s: socket: %s", s->name, strerror(errno));
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (s->family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&ss, len) < 0 || listen(fd, 511) < 0) {
        int e = errno;
        close(fd);
        return cvd_err_set(err, CVD_EIO, "listen %s: %s%s%s:%d: %s", s->name,
                           s->family == AF_INET6 ? "[" : "", s->host,
                           s->family == AF_INET6 ? "]" : "", s->port, strerror(e));
    }
    s->fd = fd;
    s->bound_port = bound_port(fd);
    return CVD_OK;
}

/* The sockets the runtime's listeners need: those already open with the same name and
 * address are kept, systemd's are used by name, the rest are opened. On failure nothing
 * changes. The caller holds d->lock. */
static int sync_lsocks(cvd_daemon *d, const cvd_runtime *rt, cvd_err *err)
{
    const cvd_conf *c = rt->conf;
    cvd_lsock *ns = calloc((size_t)c->n_listens + 1, sizeof *ns);
    int *kept = calloc((size_t)d->n_lsocks + 1, sizeof *kept);
    int rc = CVD_OK, i;

    if (ns == NULL || kept == NULL) {
        free(ns);
        free(kept);
        return cvd_err_set(err, CVD_ENOMEM, "out of memory");
    }
    for (i = 0; i < c->n_listens; i++) {
        const cvd_conf_listen *l = &c->listens[i];
        cvd_lsock *s = &ns[i];
        int found = 0;
        for (int k = 0; k < d->n_lsocks; k++) {
            const cvd_lsock *o = &d->lsocks[k];
            if (!kept[k] && strcmp(o->name, l->name) == 0 && strcmp(o->host, l->host) == 0 &&
                o->port == l->port && o->family == l->family) {
                *s = *o;
                kept[k] = 1;
                found = 1;
                break;
            }
        }
        if (found)
            continue;
        snprintf(s->name, sizeof s->name, "%s", l->name);
        snprintf(s->host, sizeof s->host, "%s", l->host);
        s->port = l->port;
        s->family = l->family;
        s->id = ++d->next_lsock_id;
        for (int k = 0; k < n_activated; k++) {
            if (!activated[k].used && strcmp(activated[k].name, l->name) == 0) {
                activated[k].used = 1;
                s->fd = activated[k].fd;
                s->activated = 1;
                s->bound_port = bound_port(s->fd);
                found = 1;
                break;
            }
        }
        if (!found && (rc = open_lsock(s, err)) < 0) {
            cvd_err_prefix(err, "%s:%d", c->file, l->line);
            break;
        }
    }
    if (rc < 0) {
        /* undo: close what was opened here */
        for (int k = 0; k < i; k++) {
            int reused = 0;
            for (int o = 0; o < d->n_lsocks; o++)
                reused |= d->lsocks[o].id == ns[k].id;
            if (!reused && !ns[k].activated)
                close(ns[k].fd);
        }
        free(ns);
        free(kept);
        return rc;
    }
    /* the old sockets not kept: our fd closes now, the workers close their copies */
    for (int k = 0; k < d->n_lsocks; k++)
        if (!kept[k] && !d->lsocks[k].activated)
            close(d->lsocks[k].fd);
    free(d->lsocks);
    free(kept);
    d->lsocks = ns;
    d->n_lsocks = c->n_listens;
    return CVD_OK;
}

/* ---- workers ---------------------------------------------------------------------------- */

void cvd_worker_command(cvd_worker *w, int cmd)
{
    atomic_fetch_or(&w->cmd, cmd);
    uv_async_send(&w->async);
}

void cvd_worker_wake(void *worker)
{
    cvd_worker_command((cvd_worker *)worker, CVD_CMD_WAKE);
}

static void on_wlisten_closed(uv_handle_t *h)
{
    free(h->data);
}

static void on_connection(uv_stream_t *server, int status)
{
    cvd_wlisten *l = server->data;
    if (status < 0) {
        cvd_log_warning("listen %s: accept: %s", l->name, uv_strerror(status));
        return;
    }
    cvd_conn_accept(l->w, l);
}

static void close_listeners(cvd_worker *w, int keep_current)
{
    cvd_daemon *d = w->d;
    int n = 0;
    if (keep_current)
        pthread_mutex_lock(&d->lock);
    for (int i = 0; i < w->n_listens; i++) {
        cvd_wlisten *l = w->listens[i];
        int current = 0;
        for (int k = 0; keep_current && k < d->n_lsocks; k++)
            current |= d->lsocks[k].id == l->id;
        if (current) {
            w->listens[n++] = l;
            continue;
        }
        uv_close((uv_handle_t *)&l->tcp, on_wlisten_closed);
    }
    if (keep_current)
        pthread_mutex_unlock(&d->lock);
    w->n_listens = n;
}

static void sync_listeners(cvd_worker *w)
{
    cvd_daemon *d = w->d;
    if (w->shutting_down || w->exiting)
        return;
    close_listeners(w, 1);
    pthread_mutex_lock(&d->lock);
    for (int k = 0; k < d->n_lsocks; k++) {
        const cvd_lsock *s = &d->lsocks[k];
        int have = 0;
        for (int i = 0; i < w->n_listens; i++)
            have |= w->listens[i]->id == s->id;
        if (have)
            continue;
        if (w->n_listens == w->cap_listens) {
            int nc = w->cap_listens ? w->cap_listens * 2 : 8;
            cvd_wlisten **nl = realloc(w->listens, sizeof *nl * (size_t)nc);
            if (nl == NULL)
                break;
            w->listens = nl;
            w->cap_listens = nc;
        }
        cvd_wlisten *l = calloc(1, sizeof *l);
        int fd = dup(s->fd);
        if (l == NULL || fd < 0) {
            cvd_log_error("worker %d: listen %s: %s", w->id, s->name, strerror(errno));
            free(l);
            if (fd >= 0)
                close(fd);
            continue;
        }
        l->w = w;
        l->id = s->id;
        snprintf(l->name, sizeof l->name, "%s", s->name);
        UV_CHECK(uv_tcp_init(&w->loop, &l->tcp));
        l->tcp.data = l;
        int rc = uv_tcp_open(&l->tcp, fd);
        if (rc == 0)
            rc = uv_listen((uv_stream_t *)&l->tcp, 511, on_connection);
        if (rc < 0) {
            cvd_log_error("worker %d: listen %s: %s", w->id, s->name, uv_strerror(rc));
            uv_close((uv_handle_t *)&l->tcp, on_wlisten_closed);
            continue;
        }
        w->listens[w->n_listens++] = l;
    }
    pthread_mutex_unlock(&d->lock);
}

void cvd_worker_maybe_finish(cvd_worker *w)
{
    if (!(w->shutting_down || w->exiting) || w->n_conns > 0)
        return;
    if (!uv_is_closing((uv_handle_t *)&w->async)) {
        uv_close((uv_handle_t *)&w->async, NULL);
        uv_close((uv_handle_t *)&w->work, NULL);
    }
}

static void on_worker_async(uv_async_t *a)
{
    cvd_worker *w = a->data;
    int cmd = atomic_exchange(&w->cmd, 0);
    if (cmd & CVD_CMD_PING)
        atomic_fetch_add(&w->heartbeat, 1);
    if (cmd & CVD_CMD_SYNC)
        sync_listeners(w);
    if (cmd & CVD_CMD_WAKE)
        cvd_conn_wake_all(w);
    if ((cmd & CVD_CMD_SHUTDOWN) && !w->shutting_down) {
        w->shutting_down = 1;
        close_listeners(w, 0);
        cvd_conn_shutdown_all(w);
    }
    if ((cmd & CVD_CMD_EXIT) && !w->exiting) {
        w->exiting = 1;
        close_listeners(w, 0);
        cvd_conn_close_all(w);
    }
    cvd_worker_maybe_finish(w);
}

static void on_worker_idle(uv_idle_t *h)
{
    cvd_worker *w = h->data;
    cvd_conn_run_work(w);
    if (w->work_head == NULL) {
        uv_idle_stop(&w->work);
        w->work_active = 0;
    }
}

void cvd_worker_schedule(cvd_worker *w)
{
    if (!w->work_active && !uv_is_closing((uv_handle_t *)&w->work)) {
        uv_idle_start(&w->work, on_worker_idle);
        w->work_active = 1;
    }
}

static void worker_main(void *arg)
{
    cvd_worker *w = arg;
    uv_run(&w->loop, UV_RUN_DEFAULT);
    atomic_store(&w->done, 1);
    uv_async_send(&w->d->worker_done);
}

static int start_workers(cvd_daemon *d, int n)
{
    d->workers = calloc((size_t)n, sizeof *d->workers);
    if (d->workers == NULL)
        return CVD_ENOMEM;
    for (int i = 0; i < n; i++) {
        cvd_worker *w = &d->workers[i];
        w->d = d;
        w->id = i;
        UV_CHECK(uv_loop_init(&w->loop));
        UV_CHECK(uv_async_init(&w->loop, &w->async, on_worker_async));
        w->async.data = w;
        UV_CHECK(uv_idle_init(&w->loop, &w->work));
        w->work.data = w;
        atomic_store(&w->cmd, CVD_CMD_SYNC);
        UV_CHECK(uv_thread_create(&w->thread, worker_main, w));
        d->n_workers++;
        uv_async_send(&w->async);
    }
    return CVD_OK;
}

/* ---- runtime and reload ----------------------------------------------------------------- */

cvd_runtime *cvd_daemon_runtime(cvd_daemon *d)
{
    pthread_mutex_lock(&d->lock);
    cvd_runtime *rt = cvd_runtime_ref(d->runtime);
    pthread_mutex_unlock(&d->lock);
    return rt;
}

static void notify_status(cvd_daemon *d, const char *what)
{
    cvd_runtime *rt = cvd_daemon_runtime(d);
    sd_notifyf(0, "STATUS=%s: %d listeners, %d models, %d of %d audio streams running, %lld "
               "clients",
               what, rt->conf->n_listens, rt->conf->n_models, cvd_audio_running(d->audio),
               rt->conf->n_streams, (long long)cvd_metrics_clients_now());
    cvd_runtime_unref(rt);
}

static void log_listeners(cvd_daemon *d)
{
    cvd_runtime *rt = cvd_daemon_runtime(d);
    pthread_mutex_lock(&d->lock);
    for (int i = 0; i < rt->conf->n_listens; i++) {
        const cvd_conf_listen *l = &rt->conf->listens[i];
        const cvd_lsock *s = &d->lsocks[i];
        cvd_model *m = cvd_runtime_listener_model(rt, i);
        cvd_log_info("listen %s: %s%s%s:%d, %s%s%s, model %s (%d -> %d channels, latency %d "
                     "frames), block %d",
                     l->name, l->family == AF_INET6 ? "[" : "", l->host,
                     l->family == AF_INET6 ? "]" : "", s->bound_port,
                     cvd_proto_name(l->protocol), l->protocol == CVD_PROTO_RAW ? " " : "",
                     l->protocol == CVD_PROTO_RAW ? cvd_sample_fmt_name(l->format) : "",
                     l->model[0] ? l->model : "(named by each client)",
                     m ? cvd_model_in_channels(m) : 0, m ? cvd_model_out_channels(m) : 0,
                     m ? cvd_model_latency(m) : 0, l->block);
    }
    pthread_mutex_unlock(&d->lock);
    cvd_runtime_unref(rt);
}

static void reload_work(uv_work_t *req)
{
    cvd_daemon *d = req->data;
    d->reload_result = NULL;
    memset(&d->reload_err, 0, sizeof d->reload_err);
    d->reload_audio = NULL;
    if (cvd_runtime_load(d->config_path, &d->reload_result, &d->reload_err) < 0)
        return;
    /* the audio streams' new nets are built here, off the loop and off the audio threads */
    d->reload_audio = cvd_audio_prepare(d->reload_result, &d->reload_err);
    if (d->reload_audio == NULL) {
        cvd_runtime_unref(d->reload_result);
        d->reload_result = NULL;
    }
}

static void start_reload(cvd_daemon *d);

static void reload_done(uv_work_t *req, int status)
{
    cvd_daemon *d = req->data;
    cvd_runtime *nrt = d->reload_result, *old = NULL;
    int ok = 0;

    d->reloading = 0;
    if (status == 0 && nrt != NULL && !d->stopping) {
        pthread_mutex_lock(&d->lock);
        if (sync_lsocks(d, nrt, &d->reload_err) == 0) {
            old = d->runtime;
            d->runtime = nrt;
            ok = 1;
        }
        pthread_mutex_unlock(&d->lock);
    }
    if (ok) {
        cvd_runtime_unref(old);
        cvd_log_set_level(nrt->conf->log_level);
        if (nrt->conf->workers && nrt->conf->workers != d->n_workers)
            cvd_log_warning("reload: workers = %d takes effect at the next start (running %d)",
                            nrt->conf->workers, d->n_workers);
        for (int i = 0; i < d->n_workers; i++)
            cvd_worker_command(&d->workers[i], CVD_CMD_SYNC);
        cvd_log_info("reload: %s applied to new connections; running streams keep theirs",
                     nrt->conf->file);
        log_listeners(d);
        cvd_audio_reload(&d->audio, d->loop, nrt, d->reload_audio);
        d->reload_audio = NULL;
        cvd_metrics_reload(1);
        sd_notify(0, "READY=1");
        notify_status(d, "reloaded");
    } else {
        cvd_runtime_unref(nrt);
        cvd_audio_prepared_free(d->reload_audio);
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
    if (uv_queue_work(d->loop, &d->reload_req, reload_work, reload_done) < 0) {
        d->reloading = 0;
        cvd_log_error("reload: cannot queue the work");
    }
}

/* ---- shutdown --------------------------------------------------------------------------- */

static void close_main_handles(cvd_daemon *d)
{
    uv_handle_t *hs[] = {(uv_handle_t *)&d->sigterm, (uv_handle_t *)&d->sigint,
                         (uv_handle_t *)&d->sighup, (uv_handle_t *)&d->watchdog,
                         (uv_handle_t *)&d->deadline, (uv_handle_t *)&d->worker_done};
    cvd_audio_stop(d->audio);
    for (size_t i = 0; i < sizeof hs / sizeof hs[0]; i++)
        if (!uv_is_closing(hs[i]))
            uv_close(hs[i], NULL);
    if (d->metrics_open) {
        uv_close((uv_handle_t *)&d->metrics, NULL);
        d->metrics_open = 0;
    }
}

static void on_worker_done(uv_async_t *a)
{
    cvd_daemon *d = a->data;
    for (int i = 0; i < d->n_workers; i++)
        if (!atomic_load(&d->workers[i].done))
            return;
    close_main_handles(d);
}

static void on_deadline(uv_timer_t *t)
{
    cvd_daemon *d = t->data;
    cvd_log_warning("shutdown: streams still open after %.1f s; closing them",
                    d->runtime->conf->shutdown_timeout);
    for (int i = 0; i < d->n_workers; i++)
        cvd_worker_command(&d->workers[i], CVD_CMD_EXIT);
}

static void begin_shutdown(cvd_daemon *d, const char *why)
{
    if (d->stopping) {
        cvd_log_warning("%s again: closing every stream now", why);
        for (int i = 0; i < d->n_workers; i++)
            cvd_worker_command(&d->workers[i], CVD_CMD_EXIT);
        return;
    }
    d->stopping = 1;
    cvd_log_info("%s: no new connections; flushing open streams (up to %.1f s)", why,
                 d->runtime->conf->shutdown_timeout);
    sd_notify(0, "STOPPING=1\nSTATUS=stopping");
    /* live audio first: its published streams end, so their subscribers can finish */
    cvd_audio_stop(d->audio);
    if (d->metrics_open) {
        uv_close((uv_handle_t *)&d->metrics, NULL);
        d->metrics_open = 0;
    }
    uv_timer_start(&d->deadline, on_deadline, (uint64_t)(d->runtime->conf->shutdown_timeout * 1000),
                   0);
    for (int i = 0; i < d->n_workers; i++)
        cvd_worker_command(&d->workers[i], CVD_CMD_SHUTDOWN);
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
        unsigned long long b = atomic_load(&d->workers[i].heartbeat);
        sum += b;
        if (b == 0 && d->last_beats_sum != 0)
            alive = 0;
    }
    if (alive && (sum >= d->last_beats_sum + (unsigned long long)d->n_workers ||
                  d->last_beats_sum == 0))
        sd_notify(0, "WATCHDOG=1");
    else
        cvd_log_warning("watchdog: a worker loop did not answer; not petting the watchdog");
    d->last_beats_sum = sum ? sum : 1;
    for (int i = 0; i < d->n_workers; i++)
        cvd_worker_command(&d->workers[i], CVD_CMD_PING);
}

/* ---- metrics endpoint ------------------------------------------------------------------- */

typedef struct http_client {
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_write_t wr;
    char req[8192];
    size_t len;
    char *resp;
    int closing;
} http_client;

static void http_freed(uv_handle_t *h)
{
    http_client *c = h->data;
    if (--c->closing == 0) {
        free(c->resp);
        free(c);
    }
}

static void http_close(http_client *c)
{
    if (c->closing)
        return;
    c->closing = 2;
    uv_close((uv_handle_t *)&c->tcp, http_freed);
    uv_close((uv_handle_t *)&c->timer, http_freed);
}

static void http_written(uv_write_t *wr, int status)
{
    (void)status;
    http_close(wr->data);
}

static void http_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    http_client *c = h->data;
    (void)hint;
    *buf = uv_buf_init(c->req + c->len, (unsigned)(sizeof c->req - 1 - c->len));
}

static void http_respond(http_client *c, const char *status, const char *type, const char *body)
{
    size_t bl = strlen(body);
    c->resp = malloc(bl + 256);
    if (c->resp == NULL) {
        http_close(c);
        return;
    }
    int n = snprintf(c->resp, 256,
                     "HTTP/1.1 %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                     "Connection: close\r\n\r\n",
                     status, type, bl);
    memcpy(c->resp + n, body, bl);
    uv_buf_t b = uv_buf_init(c->resp, (unsigned)(n + (int)bl));
    c->wr.data = c;
    uv_read_stop((uv_stream_t *)&c->tcp);
    if (uv_write(&c->wr, (uv_stream_t *)&c->tcp, &b, 1, http_written) < 0)
        http_close(c);
}

static void http_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    http_client *c = s->data;
    (void)buf;
    if (n < 0) {
        http_close(c);
        return;
    }
    c->len += (size_t)n;
    c->req[c->len] = '\0';
    if (strstr(c->req, "\r\n\r\n") == NULL && strstr(c->req, "\n\n") == NULL) {
        if (c->len >= sizeof c->req - 1)
            http_respond(c, "431 Request Header Fields Too Large", "text/plain", "too large\n");
        return;
    }
    if (strncmp(c->req, "GET ", 4) != 0) {
        http_respond(c, "405 Method Not Allowed", "text/plain", "only GET\n");
        return;
    }
    if (strncmp(c->req + 4, "/metrics ", 9) != 0 && strncmp(c->req + 4, "/metrics?", 9) != 0) {
        http_respond(c, "404 Not Found", "text/plain", "see /metrics\n");
        return;
    }
    char *text = cvd_metrics_render();
    if (text == NULL) {
        http_respond(c, "500 Internal Server Error", "text/plain", "out of memory\n");
        return;
    }
    http_respond(c, "200 OK", "text/plain; version=0.0.4; charset=utf-8", text);
    free(text);
}

static void http_timeout(uv_timer_t *t)
{
    http_close(t->data);
}

static void on_metrics_conn(uv_stream_t *server, int status)
{
    cvd_daemon *d = server->data;
    if (status < 0)
        return;
    http_client *c = calloc(1, sizeof *c);
    if (c == NULL)
        return;
    UV_CHECK(uv_tcp_init(d->loop, &c->tcp));
    UV_CHECK(uv_timer_init(d->loop, &c->timer));
    c->tcp.data = c->timer.data = c;
    if (uv_accept(server, (uv_stream_t *)&c->tcp) < 0) {
        http_close(c);
        return;
    }
    uv_timer_start(&c->timer, http_timeout, 5000, 0);
    uv_read_start((uv_stream_t *)&c->tcp, http_alloc, http_read);
}

static int start_metrics(cvd_daemon *d, const cvd_conf *c)
{
    struct sockaddr_storage ss;
    int rc;
    if (!c->metrics_enabled)
        return CVD_OK;
    if (c->metrics_family == AF_INET6)
        rc = uv_ip6_addr(c->metrics_host, c->metrics_port, (struct sockaddr_in6 *)&ss);
    else
        rc = uv_ip4_addr(c->metrics_host, c->metrics_port, (struct sockaddr_in *)&ss);
    UV_CHECK(uv_tcp_init(d->loop, &d->metrics));
    d->metrics.data = d;
    d->metrics_open = 1;
    if (rc == 0)
        rc = uv_tcp_bind(&d->metrics, (struct sockaddr *)&ss, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&d->metrics, 64, on_metrics_conn);
    if (rc < 0) {
        cvd_log_error("metrics %s:%d: %s", c->metrics_host, c->metrics_port, uv_strerror(rc));
        return CVD_EIO;
    }
    struct sockaddr_storage b;
    int bl = sizeof b;
    uv_tcp_getsockname(&d->metrics, (struct sockaddr *)&b, &bl);
    d->metrics_port = ntohs(b.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&b)->sin6_port
                                                    : ((struct sockaddr_in *)&b)->sin_port);
    cvd_log_info("metrics: http://%s%s%s:%d/metrics", c->metrics_family == AF_INET6 ? "[" : "",
                 c->metrics_host, c->metrics_family == AF_INET6 ? "]" : "", d->metrics_port);
    return CVD_OK;
}

/* ---- run -------------------------------------------------------------------------------- */

int cvd_daemon_check(const char *config_path)
{
    cvd_runtime *rt;
    cvd_err err = {0};
    if (cvd_runtime_load(config_path, &rt, &err) < 0) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    if (cvd_audio_check(rt, stdout) != 0) {
        cvd_runtime_unref(rt);
        return 1;
    }
    printf("%s: OK: %d models, %d listeners, %d streams\n", rt->conf->file, rt->conf->n_models,
           rt->conf->n_listens, rt->conf->n_streams);
    for (int i = 0; i < rt->conf->n_models; i++)
        printf("  model %s: %s (%d -> %d channels, latency %d frames)\n",
               rt->conf->models[i].name, rt->conf->models[i].path,
               cvd_model_in_channels(rt->models[i]), cvd_model_out_channels(rt->models[i]),
               cvd_model_latency(rt->models[i]));
    cvd_runtime_unref(rt);
    return 0;
}

int cvd_daemon_run(const char *config_path, int workers_override, int log_level_override)
{
    cvd_daemon d;
    cvd_err err = {0};
    int rc;

    memset(&d, 0, sizeof d);
    signal(SIGPIPE, SIG_IGN);
    /* a SIGHUP (systemctl reload) that comes while the daemon starts waits for the handler,
     * instead of killing the daemon by its default action; the threads started meanwhile
     * keep it blocked, so the loop's thread is the one that takes it */
    sigset_t hup;
    sigemptyset(&hup);
    sigaddset(&hup, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &hup, NULL);
    d.loop = uv_default_loop();
    d.config_path = config_path;
    pthread_mutex_init(&d.lock, NULL);
    if (cvd_runtime_load(config_path, &d.runtime, &err) < 0) {
        cvd_log_error("%s", err.msg);
        return 1;
    }
    const cvd_conf *c = d.runtime->conf;
    cvd_log_set_level(log_level_override >= 0 ? log_level_override : c->log_level);
    cvd_log_info("configuration %s: %d models, %d listeners, %d audio streams", c->file,
                 c->n_models, c->n_listens, c->n_streams);
    take_activated_fds();
    pthread_mutex_lock(&d.lock);
    rc = sync_lsocks(&d, d.runtime, &err);
    pthread_mutex_unlock(&d.lock);
    if (rc < 0) {
        cvd_log_error("%s", err.msg);
        cvd_runtime_unref(d.runtime);
        return 1;
    }
    if (start_metrics(&d, c) < 0) {
        uv_close((uv_handle_t *)&d.metrics, NULL);
        uv_run(d.loop, UV_RUN_DEFAULT);
        cvd_runtime_unref(d.runtime);
        return 1;
    }
    if (cvd_audio_start(d.loop, d.runtime, &d.audio, &err) < 0) {
        /* logged, with the list of devices when one is missing */
        if (d.metrics_open)
            uv_close((uv_handle_t *)&d.metrics, NULL);
        uv_run(d.loop, UV_RUN_DEFAULT);
        cvd_audio_free(d.audio);
        for (int k = 0; k < d.n_lsocks; k++)
            if (!d.lsocks[k].activated)
                close(d.lsocks[k].fd);
        free(d.lsocks);
        cvd_runtime_unref(d.runtime);
        free(activated);
        return 1;
    }
    UV_CHECK(uv_async_init(d.loop, &d.worker_done, on_worker_done));
    d.worker_done.data = &d;
    int nw = workers_override > 0 ? workers_override : c->workers;
    if (nw <= 0)
        nw = (int)uv_available_parallelism();
    if (nw <= 0)
        nw = 1;
    if (start_workers(&d, nw) < 0) {
        cvd_log_error("out of memory starting %d workers", nw);
        return 1;
    }
    uv_signal_init(d.loop, &d.sigterm);
    uv_signal_init(d.loop, &d.sigint);
    uv_signal_init(d.loop, &d.sighup);
    d.sigterm.data = d.sigint.data = d.sighup.data = &d;
    uv_signal_start(&d.sigterm, on_signal, SIGTERM);
    uv_signal_start(&d.sigint, on_signal, SIGINT);
    uv_signal_start(&d.sighup, on_signal, SIGHUP);
    pthread_sigmask(SIG_UNBLOCK, &hup, NULL);
    uv_timer_init(d.loop, &d.deadline);
    d.deadline.data = &d;
    uv_timer_init(d.loop, &d.watchdog);
    d.watchdog.data = &d;
    if (sd_watchdog_enabled(0, &d.watchdog_usec) > 0 && d.watchdog_usec > 0) {
        uint64_t ms = d.watchdog_usec / 2000;
        uv_timer_start(&d.watchdog, on_watchdog, ms ? ms : 1, ms ? ms : 1);
        cvd_log_info("systemd watchdog: every %llu ms", (unsigned long long)(ms ? ms : 1));
    }
    cvd_log_info("%d worker threads", nw);
    log_listeners(&d);
    sd_notify(0, "READY=1");
    notify_status(&d, "serving");

    uv_run(d.loop, UV_RUN_DEFAULT);

    for (int i = 0; i < d.n_workers; i++) {
        uv_thread_join(&d.workers[i].thread);
        cvd_worker *w = &d.workers[i];
        uv_run(&w->loop, UV_RUN_DEFAULT); /* close callbacks left over */
        uv_loop_close(&w->loop);
        free(w->listens);
    }
    free(d.workers);
    cvd_audio_free(d.audio);
    for (int k = 0; k < d.n_lsocks; k++)
        if (!d.lsocks[k].activated)
            close(d.lsocks[k].fd);
    free(d.lsocks);
    cvd_runtime_unref(d.runtime);
    uv_loop_close(d.loop);
    pthread_mutex_destroy(&d.lock);
    free(activated);
    cvd_log_info("stopped");
    return d.exit_code;
}
