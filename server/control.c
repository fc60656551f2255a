/* SPDX-License-Identifier: Apache-2.0 */
/* The control socket: see control.h. */
#include "control.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "log.h"

/* libuv calls that cannot fail in a correct program: abort naming the call */
#define CTL_UV_CHECK(call)                                                                         \
    do {                                                                                           \
        int uv__rc = (call);                                                                       \
        if (uv__rc < 0) {                                                                          \
            cvd_log_error("%s: %s", #call, uv_strerror(uv__rc));                                   \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#define LINE_MAX_BYTES 4096 /* a command line */
#define REPLY_MAX 65536     /* an answer */
#define MAX_CONNS 16
#define CONN_TIMEOUT_MS 10000

typedef struct ctl_conn {
    uv_pipe_t pipe;
    uv_timer_t timer;
    uv_write_t wr;
    cvd_control *ctl;
    struct ctl_conn *next;
    char line[LINE_MAX_BYTES + 1];
    size_t len;
    char *reply;
    int answered, closing, handles;
} ctl_conn;

struct cvd_control {
    uv_loop_t *loop;
    uv_pipe_t server;
    cvd_audio **audio;
    char path[108];
    ctl_conn *conns;
    int n_conns;
    int stopped;
};

int cvd_control_default_path(char *buf, size_t n, int make_dir)
{
    const char *rd = getenv("RUNTIME_DIRECTORY"); /* systemd's RuntimeDirectory= */
    const char *xdg = getenv("XDG_RUNTIME_DIR");
    char dir[256];
    int r;
    if (rd && rd[0] == '/') {
        /* several are separated by ':': the first */
        size_t k = strcspn(rd, ":");
        r = snprintf(dir, sizeof dir, "%.*s", (int)k, rd);
    } else if (geteuid() == 0) {
        r = snprintf(dir, sizeof dir, "/run/convd");
    } else if (xdg && xdg[0] == '/') {
        r = snprintf(dir, sizeof dir, "%s/convd", xdg);
    } else {
        r = snprintf(dir, sizeof dir, "/tmp/convd-%u", (unsigned)geteuid());
    }
    if (r < 0 || (size_t)r >= sizeof dir)
        return -1;
    if (make_dir && !(rd && rd[0] == '/'))
        mkdir(dir, geteuid() == 0 ? 0755 : 0700); /* EEXIST is fine; bind says the rest */
    r = snprintf(buf, n, "%s/control.sock", dir);
    return r < 0 || (size_t)r >= n ? -1 : 0;
}

/* ---- commands ------------------------------------------------------------------------------ */

typedef struct out {
    char *p;
    size_t n, len;
} outbuf;

static void put(outbuf *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(outbuf *o, const char *fmt, ...)
{
    va_list ap;
    if (o->len >= o->n)
        return;
    va_start(ap, fmt);
    int r = vsnprintf(o->p + o->len, o->n - o->len, fmt, ap);
    va_end(ap);
    if (r > 0)
        o->len = o->len + (size_t)r < o->n ? o->len + (size_t)r : o->n - 1;
}

static int parse_db(const char *v, double *x)
{
    char *end;
    if (v == NULL || *v == '\0')
        return -1;
    *x = strtod(v, &end);
    return *end == '\0' ? 0 : -1;
}

static int parse_onoff(const char *v, int *on)
{
    if (v && (strcasecmp(v, "on") == 0 || strcasecmp(v, "yes") == 0 || strcmp(v, "1") == 0))
        *on = 1;
    else if (v && (strcasecmp(v, "off") == 0 || strcasecmp(v, "no") == 0 || strcmp(v, "0") == 0))
        *on = 0;
    else
        return -1;
    return 0;
}

static void status_lines(outbuf *o, cvd_audio *a, int i)
{
    cvd_audio_status st;
    cvd_audio_status_of(a, i, &st);
    put(o,
        "stream: %s\nstate: %s\nmodel: %s\nrate: %d\nblock: %d\nchannels: %d -> %d\n"
        "latency: %d frames\nlatency_ms: %.2f\ninput_gain_db: %+.1f\noutput_gain_db: %+.1f\n"
        "bypass: %s\nlimit: %s\ncrossfade_ms: %d\nswitching: %s\ncallbacks: %llu\n"
        "xruns: %llu\nunderruns: %llu\nswitches: %llu\n",
        st.name, st.running ? "running" : "stopped", st.model, st.rate, st.block, st.in_ch,
        st.out_ch, st.latency, st.latency_ms, st.input_gain_db, st.output_gain_db,
        st.bypass ? "on" : "off", st.limit ? "yes" : "no", st.crossfade_ms,
        st.switching ? "yes" : "no", (unsigned long long)st.callbacks, (unsigned long long)st.xruns,
        (unsigned long long)st.underruns, (unsigned long long)st.swaps);
    if (st.limit)
        put(o, "limiter_gain_db: %.1f\n",
            20 * log10f(st.limiter_gain > 0 ? st.limiter_gain : 1e-9f));
}

/* splits line into words (at most 32), in place */
static int words(char *line, char **w)
{
    int n = 0;
    for (char *p = strtok(line, " \t\r\n"); p && n < 32; p = strtok(NULL, " \t\r\n"))
        w[n++] = p;
    return n;
}

void cvd_control_exec(cvd_audio *a, const char *text, char *buf, size_t bn)
{
    outbuf o = {buf, bn, 0};
    char line[LINE_MAX_BYTES + 1], msg[2048];
    char *w[32];
    buf[0] = '\0';
    snprintf(line, sizeof line, "%s", text);
    int n = words(line, w);
    if (n == 0) {
        put(&o, "error: an empty command (list, status, set, gain, bypass)\n");
        return;
    }
    const char *cmd = w[0];
    if (strcmp(cmd, "list") == 0) {
        for (int i = 0; i < cvd_audio_count(a); i++) {
            cvd_audio_status st;
            cvd_audio_status_of(a, i, &st);
            put(&o,
                "%s\t%s\tmodel=%s\tinput_gain_db=%+.1f\toutput_gain_db=%+.1f\tbypass=%s\t"
                "latency=%d\n",
                st.name, st.running ? "running" : "stopped", st.model, st.input_gain_db,
                st.output_gain_db, st.bypass ? "on" : "off", st.latency);
        }
        put(&o, "ok\n");
        return;
    }
    if (strcmp(cmd, "list") != 0 && strcmp(cmd, "status") != 0 && strcmp(cmd, "set") != 0 &&
        strcmp(cmd, "gain") != 0 && strcmp(cmd, "bypass") != 0) {
        put(&o, "error: unknown command '%.64s' (list, status, set, gain, bypass)\n", cmd);
        return;
    }
    if (strcmp(cmd, "status") == 0 && n == 1) {
        for (int i = 0; i < cvd_audio_count(a); i++) {
            if (i)
                put(&o, "\n");
            status_lines(&o, a, i);
        }
        put(&o, "ok\n");
        return;
    }
    if (n < 2) {
        put(&o, "error: %s needs a stream name\n", cmd);
        return;
    }
    int i = cvd_audio_find(a, w[1]);
    if (i < 0) {
        put(&o, "error: no stream '%.64s' (", w[1]);
        for (int k = 0; k < cvd_audio_count(a); k++) {
            cvd_audio_status st;
            cvd_audio_status_of(a, k, &st);
            put(&o, "%s%s", k ? ", " : "streams: ", st.name);
        }
        put(&o, "%s)\n", cvd_audio_count(a) ? "" : "no audio streams");
        return;
    }
    if (strcmp(cmd, "status") == 0) {
        if (n > 2) {
            put(&o, "error: status takes one stream name\n");
            return;
        }
        status_lines(&o, a, i);
        put(&o, "ok\n");
        return;
    }
    /* set/gain/bypass: every argument checked before anything changes */
    const char *model = NULL;
    double in_db = 0, out_db = 0;
    int set_in = 0, set_out = 0, bypass = -1;
    if (strcmp(cmd, "bypass") == 0) {
        if (n != 3 || parse_onoff(w[2], &bypass) < 0) {
            put(&o, "error: bypass STREAM on|off\n");
            return;
        }
    } else if (n < 3) {
        put(&o, "error: %s STREAM %s\n", cmd,
            cmd[0] == 'g' ? "input=DB output=DB"
                          : "model=NAME[,NAME...] (or input_gain_db=, "
                            "output_gain_db=, bypass=)");
        return;
    }
    for (int k = 2; k < n && bypass < 0; k++) {
        char *eq = strchr(w[k], '=');
        if (eq == NULL) {
            put(&o, "error: '%.64s': KEY=VALUE expected\n", w[k]);
            return;
        }
        *eq = '\0';
        const char *key = w[k], *val = eq + 1;
        if (strcmp(cmd, "set") == 0 && strcmp(key, "model") == 0) {
            /* the rest of the line: "model=amp, cab" comes as several words */
            static char list[LINE_MAX_BYTES];
            size_t l = 0;
            l += (size_t)snprintf(list + l, sizeof list - l, "%s", val);
            while (k + 1 < n && strchr(w[k + 1], '=') == NULL && l < sizeof list)
                l += (size_t)snprintf(list + l, sizeof list - l, " %s", w[++k]);
            model = list;
        } else if ((cmd[0] == 's' && strcmp(key, "input_gain_db") == 0) ||
                   (cmd[0] == 'g' && strcmp(key, "input") == 0)) {
            if (parse_db(val, &in_db) < 0) {
                put(&o, "error: %s=%.64s: not a number of dB\n", key, val);
                return;
            }
            set_in = 1;
        } else if ((cmd[0] == 's' && strcmp(key, "output_gain_db") == 0) ||
                   (cmd[0] == 'g' && strcmp(key, "output") == 0)) {
            if (parse_db(val, &out_db) < 0) {
                put(&o, "error: %s=%.64s: not a number of dB\n", key, val);
                return;
            }
            set_out = 1;
        } else if (cmd[0] == 's' && strcmp(key, "bypass") == 0) {
            int on;
            if (parse_onoff(val, &on) < 0) {
                put(&o, "error: bypass=%.64s: on or off\n", val);
                return;
            }
            bypass = on;
            if (k + 1 < n) { /* more after it: handled below the loop */
                for (int j = k + 1; j < n; j++) {
                    char *e2 = strchr(w[j], '=');
                    if (e2 == NULL) {
                        put(&o, "error: '%.64s': KEY=VALUE expected\n", w[j]);
                        return;
                    }
                    *e2 = '\0';
                    if (strcmp(w[j], "input_gain_db") == 0 && parse_db(e2 + 1, &in_db) == 0)
                        set_in = 1;
                    else if (strcmp(w[j], "output_gain_db") == 0 && parse_db(e2 + 1, &out_db) == 0)
                        set_out = 1;
                    else {
                        put(&o, "error: '%.64s': put model= first, or a bad value\n", w[j]);
                        return;
                    }
                }
            }
        } else {
            put(&o, "error: %s: unknown setting '%.64s' (%s)\n", cmd, key,
                cmd[0] == 'g' ? "input, output" : "model, input_gain_db, output_gain_db, bypass");
            return;
        }
    }
    if ((set_in && (in_db < -60 || in_db > 60)) || (set_out && (out_db < -60 || out_db > 60))) {
        put(&o, "error: gains are -60..60 dB\n");
        return;
    }
    if (model != NULL) {
        if (cvd_audio_set_chain(a, i, model, msg, sizeof msg) < 0) {
            put(&o, "error: %s\n", msg);
            return;
        }
        put(&o, "%s\n", msg);
    }
    if (set_in || set_out) {
        if (cvd_audio_set_gains(a, i, set_in, in_db, set_out, out_db, msg, sizeof msg) < 0) {
            put(&o, "error: %s\n", msg);
            return;
        }
        put(&o, "%s\n", msg);
    }
    if (bypass >= 0) {
        if (cvd_audio_set_bypass(a, i, bypass, msg, sizeof msg) < 0) {
            put(&o, "error: %s\n", msg);
            return;
        }
        put(&o, "%s\n", msg);
    }
    put(&o, "ok\n");
}

/* ---- the socket --------------------------------------------------------------------------- */

static void conn_closed(uv_handle_t *h)
{
    ctl_conn *c = h->data;
    if (--c->handles > 0)
        return;
    cvd_control *ctl = c->ctl;
    for (ctl_conn **pp = &ctl->conns; *pp; pp = &(*pp)->next)
        if (*pp == c) {
            *pp = c->next;
            break;
        }
    ctl->n_conns--;
    free(c->reply);
    free(c);
}

static void conn_close(ctl_conn *c)
{
    if (c->closing)
        return;
    c->closing = 1;
    uv_close((uv_handle_t *)&c->pipe, conn_closed);
    uv_close((uv_handle_t *)&c->timer, conn_closed);
}

static void on_written(uv_write_t *w, int status)
{
    (void)status; /* the client went away: nothing more to do either way */
    conn_close(w->data);
}

static void answer(ctl_conn *c, const char *text)
{
    if (c->answered || c->closing)
        return;
    c->answered = 1;
    uv_read_stop((uv_stream_t *)&c->pipe);
    size_t len = strlen(text);
    c->reply = malloc(len + 1);
    if (c->reply == NULL) {
        conn_close(c);
        return;
    }
    memcpy(c->reply, text, len + 1);
    uv_buf_t b = uv_buf_init(c->reply, (unsigned)len);
    c->wr.data = c;
    if (uv_write(&c->wr, (uv_stream_t *)&c->pipe, &b, 1, on_written) < 0)
        conn_close(c);
}

static void on_alloc(uv_handle_t *h, size_t want, uv_buf_t *b)
{
    ctl_conn *c = h->data;
    (void)want;
    *b = uv_buf_init(c->line + c->len, (unsigned)(LINE_MAX_BYTES - c->len));
}

static void run_line(ctl_conn *c)
{
    char *reply = malloc(REPLY_MAX);
    if (reply == NULL) {
        conn_close(c);
        return;
    }
    c->line[c->len] = '\0';
    char *nl = strchr(c->line, '\n');
    if (nl)
        *nl = '\0';
    cvd_control_exec(*c->ctl->audio, c->line, reply, REPLY_MAX);
    answer(c, reply);
    free(reply);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b)
{
    ctl_conn *c = s->data;
    (void)b;
    if (nread < 0) {
        if (nread == UV_EOF && c->len > 0 && !c->answered)
            run_line(c); /* a last line without its newline */
        else if (!c->answered)
            conn_close(c);
        return;
    }
    c->len += (size_t)nread;
    if (memchr(c->line, '\n', c->len) != NULL) {
        run_line(c);
    } else if (c->len >= LINE_MAX_BYTES) {
        answer(c, "error: a command line is at most 4096 bytes\n");
    }
}

static void on_timeout(uv_timer_t *t)
{
    ctl_conn *c = t->data;
    if (!c->answered)
        answer(c, "error: no command line within 10 s\n");
}

static void on_connection(uv_stream_t *server, int status)
{
    cvd_control *ctl = server->data;
    if (status < 0) {
        cvd_log_warning("control socket %s: %s", ctl->path, uv_strerror(status));
        return;
    }
    ctl_conn *c = calloc(1, sizeof *c);
    if (c == NULL) {
        cvd_log_error("control socket: out of memory");
        return;
    }
    c->ctl = ctl;
    CTL_UV_CHECK(uv_pipe_init(ctl->loop, &c->pipe, 0));
    CTL_UV_CHECK(uv_timer_init(ctl->loop, &c->timer));
    c->pipe.data = c->timer.data = c;
    c->handles = 2;
    c->next = ctl->conns;
    ctl->conns = c;
    ctl->n_conns++;
    if (uv_accept(server, (uv_stream_t *)&c->pipe) < 0) {
        conn_close(c);
        return;
    }
    if (ctl->n_conns > MAX_CONNS) {
        answer(c, "error: too many control connections at once\n");
        return;
    }
    CTL_UV_CHECK(uv_timer_start(&c->timer, on_timeout, CONN_TIMEOUT_MS, 0));
    if (uv_read_start((uv_stream_t *)&c->pipe, on_alloc, on_read) < 0)
        conn_close(c);
}

/* 1 if a daemon answers on path */
static int in_use(const char *path)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0), live = 0;
    if (fd < 0)
        return 0;
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
    live = connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
    close(fd);
    return live;
}

static void server_closed(uv_handle_t *h)
{
    free(h->data);
}

int cvd_control_start(uv_loop_t *loop, const cvd_conf *c, cvd_audio **audio, cvd_control **out,
                      cvd_err *err)
{
    char path[108];
    *out = NULL;
    if (strcmp(c->control_socket, "none") == 0 ||
        (c->control_socket[0] == '\0' && c->n_streams == 0))
        return CVD_OK;
    if (c->control_socket[0]) {
        snprintf(path, sizeof path, "%s", c->control_socket);
    } else if (cvd_control_default_path(path, sizeof path, 1) < 0) {
        cvd_log_warning("control socket: the default path is too long; convd-ctl is off (set "
                        "[server] control_socket)");
        return CVD_OK;
    }
    struct stat st;
    if (lstat(path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode))
            return cvd_err_set(err, CVD_EINVAL,
                               "control socket %s: the file exists and is not "
                               "a socket",
                               path);
        if (in_use(path)) {
            cvd_log_warning("control socket %s: another convd answers there; convd-ctl reaches "
                            "that one, not this (set [server] control_socket)",
                            path);
            return CVD_OK;
        }
        unlink(path); /* left by a daemon that died */
    }
    cvd_control *ctl = calloc(1, sizeof *ctl);
    if (ctl == NULL)
        return cvd_err_set(err, CVD_ENOMEM, "out of memory");
    ctl->loop = loop;
    ctl->audio = audio;
    snprintf(ctl->path, sizeof ctl->path, "%s", path);
    CTL_UV_CHECK(uv_pipe_init(loop, &ctl->server, 0));
    ctl->server.data = ctl;
    mode_t old = umask(0117); /* the socket is born 0660 */
    int rc = uv_pipe_bind(&ctl->server, path);
    umask(old);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&ctl->server, 8, on_connection);
    if (rc < 0) {
        uv_close((uv_handle_t *)&ctl->server, server_closed);
        return cvd_err_set(err, CVD_EIO, "control socket %s: %s", path, uv_strerror(rc));
    }
    chmod(path, 0660);
    struct group *g = getgrnam("convd");
    if (g != NULL && chown(path, (uid_t)-1, g->gr_gid) < 0)
        cvd_log_warning("control socket %s: cannot give it to group convd: %s", path,
                        strerror(errno));
    cvd_log_info("control socket %s (convd-ctl; mode 0660%s)", path, g ? ", group convd" : "");
    *out = ctl;
    return CVD_OK;
}

void cvd_control_stop(cvd_control *ctl)
{
    if (ctl == NULL || ctl->stopped)
        return;
    ctl->stopped = 1;
    for (ctl_conn *c = ctl->conns; c; c = c->next)
        conn_close(c);
    unlink(ctl->path);
    uv_close((uv_handle_t *)&ctl->server, server_closed);
}

const char *cvd_control_path(const cvd_control *ctl)
{
    return ctl ? ctl->path : "";
}
