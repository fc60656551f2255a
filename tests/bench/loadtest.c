/*
 * loadtest - the convd daemon under load on loopback: N clients at once streaming a model over
 * the raw protocol in blocks of 64 frames, as fast as the daemon answers.
 *
 *   loadtest [--host H --port P] [--model FILE] [--clients 1,16,256] [--seconds S]
 *            [--block N] [--window W] [--workers N]
 *
 * Without --port it starts build/convd itself (found beside this program's folder, or in
 * CVD_BUILD_DIR) on a temporary configuration: one raw listener on 127.0.0.1, port 0, serving
 * MODEL (default config/models/drive.json if present, else tests/data/nam/wide16_tanh.nam,
 * relative to the working directory: make bench runs from the top of the tree). With --port it
 * connects to a daemon already running (its raw listener must serve MODEL, which is loaded here
 * only for its channel counts and latency).
 *
 * Each client keeps at most W blocks (default 16) beyond the output it has received in flight:
 * full speed, but the latency is the daemon's, not that of a queue the client built. Per block,
 * latency = the time its output block's last byte arrived - the time its last byte was sent.
 * One line per case: frames per second (all clients together, and per client as a multiple of
 * real time at the model's rate), latency p50/p99/max, and errors.
 *
 * Never fails the build: if the daemon or the model cannot be found, it says so and exits 0.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "convd_dsp.h"
#include "convd_model.h"

#define PROG "loadtest"
#define MAX_CASES 16

typedef struct options {
    const char *host;
    int port; /* 0: start the daemon */
    const char *model;
    int clients[MAX_CASES];
    int n_cases;
    double seconds;
    int block;
    int window;
    int workers;
} options;

typedef struct client {
    int fd;
    size_t sent;     /* input bytes */
    size_t received; /* output bytes */
    size_t next_block; /* the next block whose output is awaited */
    double *t_sent;  /* per block: when its last byte was sent (ring of window + 1) */
    int err;
    int done;
} client;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static int file_exists(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0;
}

/* ---- the daemon ------------------------------------------------------------------------- */

static pid_t daemon_pid;
static char tmpdir[512];

static void stop_daemon(void)
{
    int st;
    if (daemon_pid <= 0)
        return;
    kill(daemon_pid, SIGTERM);
    for (int i = 0; i < 500; i++) {
        if (waitpid(daemon_pid, &st, WNOHANG) == daemon_pid) {
            daemon_pid = 0;
            break;
        }
        sleep_ms(10);
    }
    if (daemon_pid > 0) {
        kill(daemon_pid, SIGKILL);
        waitpid(daemon_pid, &st, 0);
        daemon_pid = 0;
        printf("loadtest: the daemon did not stop within 5 s of SIGTERM (killed)\n");
    } else if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        printf("loadtest: the daemon exited with status 0x%x after SIGTERM\n", st);
    }
}

static void remove_tmpdir(void)
{
    char p[600];
    if (tmpdir[0] == '\0')
        return;
    snprintf(p, sizeof p, "%s/convd.conf", tmpdir);
    remove(p);
    snprintf(p, sizeof p, "%s/convd.log", tmpdir);
    remove(p);
    rmdir(tmpdir);
}

static const char *daemon_path(void)
{
    static char path[1024];
    const char *env = getenv("CVD_BUILD_DIR");
    if (env && *env) {
        snprintf(path, sizeof path, "%s/convd", env);
        return path;
    }
    char self[900];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n > 0) {
        self[n] = '\0';
        char *slash = strrchr(self, '/');
        if (slash) {
            *slash = '\0'; /* .../build/bench */
            slash = strrchr(self, '/');
            if (slash) {
                *slash = '\0';
                snprintf(path, sizeof path, "%s/convd", self);
                return path;
            }
        }
    }
    return "build/convd";
}

/* Starts convd on a one-listener configuration; returns the port, or 0 (said why). */
static int start_daemon(const options *o)
{
    const char *prog = daemon_path();
    char model_abs[4096], conf[600], logp[600];
    if (access(prog, X_OK) != 0) {
        printf("loadtest: %s not found (build it with make): skipped\n", prog);
        return 0;
    }
    if (realpath(o->model, model_abs) == NULL) {
        printf("loadtest: %s: %s: skipped\n", o->model, strerror(errno));
        return 0;
    }
    const char *base = getenv("TMPDIR");
    snprintf(tmpdir, sizeof tmpdir, "%s/convd-loadtest-XXXXXX", base && *base ? base : "/tmp");
    if (mkdtemp(tmpdir) == NULL) {
        printf("loadtest: mkdtemp: %s: skipped\n", strerror(errno));
        tmpdir[0] = '\0';
        return 0;
    }
    snprintf(conf, sizeof conf, "%s/convd.conf", tmpdir);
    snprintf(logp, sizeof logp, "%s/convd.log", tmpdir);
    FILE *f = fopen(conf, "w");
    if (f == NULL) {
        printf("loadtest: %s: %s: skipped\n", conf, strerror(errno));
        return 0;
    }
    fprintf(f,
            "[server]\nworkers = %d\nlog_level = warning\nmax_clients = 4096\nidle_timeout = 0\n"
            "[model m]\npath = %s\n[listen load]\naddress = 127.0.0.1:0\nprotocol = raw\n"
            "model = m\nblock = %d\n",
            o->workers, model_abs, o->block);
    fclose(f);
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        printf("loadtest: fork: %s: skipped\n", strerror(errno));
        return 0;
    }
    if (pid == 0) {
        int fd = open(logp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int nul = open("/dev/null", O_RDWR);
        if (fd < 0 || nul < 0)
            _exit(127);
        dup2(nul, 0);
        dup2(nul, 1);
        dup2(fd, 2);
        /* info level, so the listener's port is logged */
        execl(prog, prog, "-c", conf, "--log-level", "info", (char *)NULL);
        _exit(127);
    }
    daemon_pid = pid;
    for (int i = 0; i < 1000; i++) { /* up to 10 s */
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid) {
            daemon_pid = 0;
            printf("loadtest: the daemon exited at start (status 0x%x; see %s)\n", st, logp);
            return 0;
        }
        FILE *lf = fopen(logp, "r");
        char line[1024];
        while (lf && fgets(line, sizeof line, lf)) {
            const char *h = strstr(line, "listen load: 127.0.0.1:");
            if (h) {
                fclose(lf);
                return atoi(h + strlen("listen load: 127.0.0.1:"));
            }
        }
        if (lf)
            fclose(lf);
        sleep_ms(10);
    }
    printf("loadtest: the daemon did not log its port within 10 s: skipped\n");
    return 0;
}

/* ---- clients ---------------------------------------------------------------------------- */

static int connect_to(const char *host, int port)
{
    struct sockaddr_in a;
    int one = 1;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    if (strcmp(host, "localhost") == 0)
        host = "127.0.0.1";
    if (inet_pton(AF_INET, host, &a.sin_addr) != 1 ||
        connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
        close(fd);
        return -1;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    return fd;
}

typedef struct result {
    double frames_per_s;
    double p50, p99, pmax; /* seconds */
    size_t blocks;
    int errors;
    int clients;
} result;

/* One case: n clients for `seconds`. */
static result run_case(const options *o, int port, int n, const float *signal, size_t sig_frames,
                       int in_ch, int out_ch, int latency)
{
    result res;
    memset(&res, 0, sizeof res);
    res.clients = n;
    const size_t in_fb = sizeof(float) * (size_t)in_ch, out_fb = sizeof(float) * (size_t)out_ch;
    const size_t bin = (size_t)o->block * in_fb;
    const size_t ring = (size_t)o->window + 2;
    client *cs = calloc((size_t)n, sizeof *cs);
    struct pollfd *pf = calloc((size_t)n, sizeof *pf);
    size_t lat_cap = 1 << 20, n_lat = 0;
    double *lat = malloc(lat_cap * sizeof *lat);
    char *sink = malloc(1 << 16);
    if (cs == NULL || pf == NULL || lat == NULL || sink == NULL) {
        printf("loadtest: out of memory\n");
        exit(0);
    }
    for (int i = 0; i < n; i++) {
        cs[i].fd = connect_to(o->host, port);
        cs[i].t_sent = calloc(ring, sizeof(double));
        if (cs[i].fd < 0) {
            cs[i].err = errno ? errno : EIO;
            res.errors++;
        }
    }
    const double t0 = now(), t_end = t0 + o->seconds;
    size_t frames_out = 0;
    for (;;) {
        double t = now();
        int stop = t >= t_end;
        for (int i = 0; i < n; i++) {
            client *c = &cs[i];
            pf[i].fd = c->err || c->done ? -1 : c->fd;
            pf[i].events = POLLIN;
            pf[i].revents = 0;
            size_t blocks_sent = c->sent / bin;
            if (!stop && blocks_sent < c->next_block + (size_t)o->window)
                pf[i].events |= POLLOUT;
        }
        if (stop)
            break;
        int r = poll(pf, (nfds_t)n, 50);
        if (r < 0 && errno != EINTR)
            break;
        for (int i = 0; i < n; i++) {
            client *c = &cs[i];
            if (pf[i].fd < 0)
                continue;
            if (pf[i].revents & POLLOUT) {
                /* the rest of the current block */
                size_t off = c->sent % bin, pos = (c->sent / bin * (size_t)o->block) % sig_frames;
                const uint8_t *src = (const uint8_t *)(signal + pos * (size_t)in_ch) + off;
                ssize_t k = send(c->fd, src, bin - off, MSG_NOSIGNAL | MSG_DONTWAIT);
                if (k > 0) {
                    c->sent += (size_t)k;
                    if (c->sent % bin == 0)
                        c->t_sent[(c->sent / bin - 1) % ring] = now();
                } else if (k < 0 && errno != EAGAIN && errno != EINTR) {
                    c->err = errno;
                    res.errors++;
                    continue;
                }
            }
            if (pf[i].revents & (POLLIN | POLLHUP | POLLERR)) {
                ssize_t k = recv(c->fd, sink, 1 << 16, MSG_DONTWAIT);
                if (k == 0 || (k < 0 && errno != EAGAIN && errno != EINTR)) {
                    c->err = k == 0 ? ECONNRESET : errno;
                    res.errors++;
                    continue;
                }
                if (k > 0) {
                    double tr = now();
                    c->received += (size_t)k;
                    /* blocks whose output is complete: input frames up to the block's end,
                     * minus the model's latency */
                    for (;;) {
                        long long need = ((long long)(c->next_block + 1) * o->block - latency);
                        if (need > 0 && (size_t)need * out_fb > c->received)
                            break;
                        if (c->next_block >= c->sent / bin)
                            break;
                        if (need > 0 && n_lat < lat_cap)
                            lat[n_lat++] = tr - c->t_sent[c->next_block % ring];
                        c->next_block++;
                    }
                }
            }
        }
    }
    double elapsed = now() - t0;
    for (int i = 0; i < n; i++)
        frames_out += cs[i].received / out_fb;
    /* end each stream properly: no more input, take the rest, close */
    for (int i = 0; i < n; i++)
        if (cs[i].fd >= 0 && !cs[i].err) {
            /* a partial block: complete it first so the stream stays whole frames */
            size_t off = cs[i].sent % in_fb;
            if (off) {
                char zero[16] = {0};
                send(cs[i].fd, zero, in_fb - off, MSG_NOSIGNAL);
            }
            shutdown(cs[i].fd, SHUT_WR);
        }
    double drain_end = now() + 5;
    for (;;) {
        int open = 0;
        for (int i = 0; i < n; i++) {
            pf[i].fd = cs[i].fd >= 0 && !cs[i].err && !cs[i].done ? cs[i].fd : -1;
            pf[i].events = POLLIN;
            open += pf[i].fd >= 0;
        }
        if (open == 0 || now() > drain_end)
            break;
        poll(pf, (nfds_t)n, 50);
        for (int i = 0; i < n; i++)
            if (pf[i].fd >= 0 && (pf[i].revents & (POLLIN | POLLHUP | POLLERR))) {
                ssize_t k = recv(cs[i].fd, sink, 1 << 16, MSG_DONTWAIT);
                if (k == 0)
                    cs[i].done = 1;
                else if (k < 0 && errno != EAGAIN && errno != EINTR) {
                    cs[i].err = errno;
                    res.errors++;
                }
            }
    }
    for (int i = 0; i < n; i++) {
        if (cs[i].fd >= 0 && !cs[i].done && !cs[i].err)
            res.errors++; /* no EOF within 5 s of the end of its input */
        if (cs[i].fd >= 0)
            close(cs[i].fd);
        free(cs[i].t_sent);
    }
    res.frames_per_s = elapsed > 0 ? (double)frames_out / elapsed : 0;
    res.blocks = n_lat;
    if (n_lat > 0) {
        qsort(lat, n_lat, sizeof *lat, cmp_double);
        res.p50 = lat[n_lat / 2];
        res.p99 = lat[(size_t)((double)(n_lat - 1) * 0.99)];
        res.pmax = lat[n_lat - 1];
    }
    free(cs);
    free(pf);
    free(lat);
    free(sink);
    return res;
}

/* ---- main ------------------------------------------------------------------------------- */

static void usage(void)
{
    fprintf(stderr, "usage: " PROG " [--host H --port P] [--model FILE] [--clients 1,16,256]\n"
                    "                [--seconds S] [--block N] [--window W] [--workers N]\n");
}

int main(int argc, char **argv)
{
    options o = {.host = "127.0.0.1",
                 .clients = {1, 16, 256},
                 .n_cases = 3,
                 .seconds = 3,
                 .block = 64,
                 .window = 16,
                 .workers = 0};
    o.model = file_exists("config/models/drive.json") ? "config/models/drive.json"
                                                      : "tests/data/nam/wide16_tanh.nam";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--host") == 0 && v) {
            o.host = v;
            i++;
        } else if (strcmp(a, "--port") == 0 && v) {
            o.port = atoi(v);
            i++;
        } else if (strcmp(a, "--model") == 0 && v) {
            o.model = v;
            i++;
        } else if (strcmp(a, "--seconds") == 0 && v) {
            o.seconds = atof(v);
            i++;
        } else if (strcmp(a, "--block") == 0 && v) {
            o.block = atoi(v);
            i++;
        } else if (strcmp(a, "--window") == 0 && v) {
            o.window = atoi(v);
            i++;
        } else if (strcmp(a, "--workers") == 0 && v) {
            o.workers = atoi(v);
            i++;
        } else if (strcmp(a, "--clients") == 0 && v) {
            o.n_cases = 0;
            for (const char *p = v; *p && o.n_cases < MAX_CASES;) {
                o.clients[o.n_cases++] = atoi(p);
                p = strchr(p, ',');
                if (p == NULL)
                    break;
                p++;
            }
            i++;
        } else {
            usage();
            return 2;
        }
    }
    if (o.block < 1 || o.block > 65536 || o.window < 1 || o.seconds <= 0 || o.n_cases == 0) {
        usage();
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);

    /* the model, for its channels and latency */
    int in_ch = 1, out_ch = 1, latency = 0;
    double rate = 48000;
    cvd_model *m = NULL;
    cvd_err err = {0};
    if (cvd_model_load(o.model, &m, &err) == 0) {
        in_ch = cvd_model_in_channels(m);
        out_ch = cvd_model_out_channels(m);
        latency = cvd_model_latency(m);
        if (cvd_model_sample_rate(m) > 0)
            rate = cvd_model_sample_rate(m);
        cvd_model_unref(m);
    } else if (o.port == 0) {
        printf("loadtest: %s (skipped)\n", err.msg);
        return 0;
    }

    int port = o.port;
    if (port == 0) {
        port = start_daemon(&o);
        if (port == 0) {
            stop_daemon();
            remove_tmpdir();
            return 0;
        }
    }
    /* a signal: 4096 frames of a sine sweep */
    const size_t sig_frames = 4096;
    float *sig = malloc(sizeof(float) * sig_frames * (size_t)in_ch);
    if (sig == NULL)
        return 0;
    for (size_t f = 0; f < sig_frames; f++)
        for (int c = 0; c < in_ch; c++)
            sig[f * (size_t)in_ch + (size_t)c] =
                0.5f * (float)sin(0.001 * (double)f * (double)f / 64.0 + (double)c);

    printf("loadtest: %s (%d -> %d channels, latency %d, %.0f Hz), raw f32le, blocks of %d, "
           "window %d blocks, %s:%d%s\n",
           o.model, in_ch, out_ch, latency, rate, o.block, o.window, o.host, port,
           o.port ? "" : " (started here)");
    for (int k = 0; k < o.n_cases; k++) {
        result r = run_case(&o, port, o.clients[k], sig, sig_frames, in_ch, out_ch, latency);
        printf("clients %4d: %11.0f frames/s (%7.1fx real time per client), latency p50 %7.3f "
               "ms, p99 %7.3f ms, max %7.3f ms (%zu blocks), errors %d\n",
               r.clients, r.frames_per_s, r.frames_per_s / r.clients / rate, r.p50 * 1e3,
               r.p99 * 1e3, r.pmax * 1e3, r.blocks, r.errors);
        fflush(stdout);
    }
    free(sig);
    stop_daemon();
    remove_tmpdir();
    return 0;
}
