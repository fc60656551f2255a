/* SPDX-License-Identifier: Apache-2.0 */
/*
 * loadgen.h: the load generator of the daemon benchmarks (loadtest, bench_server): it starts
 * build/convd on a one-listener configuration and drives N raw-protocol clients over loopback,
 * each keeping at most `window` blocks in flight, and measures frames per second and per-block
 * latency (the send of a block's last byte -> the last byte of its output received), and the
 * daemon's CPU time during a case. The including program defines PROG (its name, for messages).
 */
#ifndef CONVD_BENCH_LOADGEN_H
#define CONVD_BENCH_LOADGEN_H

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
#include "daemon_proc.h"
#include <sys/resource.h>

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
    size_t sent;       /* input bytes */
    size_t received;   /* output bytes */
    size_t next_block; /* the next block whose output is awaited */
    double *t_sent;    /* per block: when its last byte was sent (ring of window + 1) */
    int err;
    int done;
} client;

__attribute__((unused)) static int file_exists(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0;
}

/* ---- the daemon ------------------------------------------------------------------------- */

/* CPU seconds the daemon has used (user + system), or -1 */
static double daemon_cpu(void)
{
    char p[64], buf[1024];
    if (daemon_pid <= 0)
        return -1;
    snprintf(p, sizeof p, "/proc/%d/stat", (int)daemon_pid);
    FILE *f = fopen(p, "r");
    if (f == NULL)
        return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *q = strrchr(buf, ')'); /* the name may hold spaces */
    unsigned long ut, st;
    if (q == NULL ||
        sscanf(q + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
        return -1;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static double self_cpu(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Starts convd on a one-listener configuration; returns the port, or 0 (said why). */
static int start_daemon(const options *o)
{
    const char *prog = daemon_path();
    char model_abs[4096], conf[600], logp[600];
    if (access(prog, X_OK) != 0) {
        printf(PROG ": %s not found (build it with make): skipped\n", prog);
        return 0;
    }
    if (realpath(o->model, model_abs) == NULL) {
        printf(PROG ": %s: %s: skipped\n", o->model, strerror(errno));
        return 0;
    }
    if (tmpdir[0] == '\0' && make_tmpdir() < 0) {
        printf(PROG ": mkdtemp: %s: skipped\n", strerror(errno));
        return 0;
    }
    snprintf(conf, sizeof conf, "%s/convd.conf", tmpdir);
    snprintf(logp, sizeof logp, "%s/convd.log", tmpdir);
    FILE *f = fopen(conf, "w");
    if (f == NULL) {
        printf(PROG ": %s: %s: skipped\n", conf, strerror(errno));
        return 0;
    }
    fprintf(f,
            "[server]\nworkers = %d\nlog_level = warning\nmax_clients = 4096\nidle_timeout = 0\n"
            /* every stream reserves its worst case (its queue_limit of output, 1 MiB, and its
             * buffers: 2.1 MiB for the sensor model), and the default 1 GiB refused all past
             * the 490th of 1,000 connections */
            "max_stream_memory = 68719476736\n"
            "[model m]\npath = %s\n[listen load]\naddress = 127.0.0.1:0\nprotocol = raw\n"
            "model = m\nblock = %d\n",
            o->workers, model_abs, o->block);
    fclose(f);
    remove(logp); /* an earlier daemon's log names its port */
    if (spawn_daemon(prog, conf, logp) < 0)
        return 0;
    for (int i = 0; i < 1000; i++) { /* up to 10 s */
        if (daemon_exited_at_start(logp))
            return 0;
        const int port = logged_port(logp, "load");
        if (port > 0)
            return port;
        sleep_ms(10);
    }
    printf(PROG ": the daemon did not log its port within 10 s: skipped\n");
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
    double elapsed;    /* seconds of the timed part */
    double daemon_cpu; /* CPU seconds the daemon used in it (-1: unknown) */
    double client_cpu; /* CPU seconds this program used in it */
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
        printf(PROG ": out of memory\n");
        exit(0);
    }
    for (int i = 0; i < n; i++) {
        cs[i].fd = connect_to(o->host, port);
        cs[i].t_sent = calloc(ring, sizeof(double));
        if (cs[i].fd < 0) {
            cs[i].err = errno ? errno : EIO;
            if (res.errors == 0)
                printf(PROG ": connect to %s:%d: %s\n", o->host, port, strerror(cs[i].err));
            res.errors++;
        }
    }
    const double t0 = now(), t_end = t0 + o->seconds, cpu0 = daemon_cpu(), self0 = self_cpu();
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
                /* the clock is read before the send that completes the block: read after it,
                 * a server on this CPU that the send woke and that preempted this client has
                 * already answered (on one CPU the bare echo server measured 3 us so) */
                const double ts = now();
                ssize_t k = send(c->fd, src, bin - off, MSG_NOSIGNAL | MSG_DONTWAIT);
                if (k > 0) {
                    c->sent += (size_t)k;
                    if (c->sent % bin == 0)
                        c->t_sent[(c->sent / bin - 1) % ring] = ts;
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
    double elapsed = now() - t0, cpu1 = daemon_cpu();
    res.elapsed = elapsed;
    res.daemon_cpu = cpu0 >= 0 && cpu1 >= 0 ? cpu1 - cpu0 : -1;
    res.client_cpu = self_cpu() - self0;
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

#endif