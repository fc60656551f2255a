/* SPDX-License-Identifier: Apache-2.0 */
/*
 * reply_latency - how soon a reply leaves the daemon after the input that completes it
 * (docs/PROTOCOL.md, "Blocks and replies"): line and framed listeners of block = 64, under
 * blocking = eager and blocking = fixed.
 *
 *   reply_latency [--count N] [--model FILE]
 *
 * It starts build/convd (beside this program's folder, or in CVD_BUILD_DIR) on a temporary
 * configuration on 127.0.0.1: MODEL (default config/models/drive.json, else
 * tests/data/nam/wide16_tanh.nam, relative to the working directory: make bench runs from the
 * top of the tree; a model of one channel in and out, latency 0) and a 7-frame windowed
 * classifier written here, each behind a line and a framed listener per `blocking`. The cases,
 * one client at a time, TCP_NODELAY:
 *
 *   request/response   one frame sent, its output awaited, then the next (N rounds)
 *   window             7 lines sent at once, the record awaited (N / 4 rounds)
 *   paced stream       a frame every millisecond (N frames): each output frame's arrival minus
 *                      the send time of its input frame
 *
 * Per case: p50, p99 and max of the latency in microseconds, from the write of the completing
 * input to the arrival of the reply's last byte. Under `fixed` a request/response client would
 * wait forever (63 more frames), so only the paced stream is measured there.
 *
 * Never fails the build: if the daemon or the model cannot be found, it says so and exits 0.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PROG "reply_latency"

#include "../window7_model.h"
#include "daemon_proc.h"

/* ---- the daemon ------------------------------------------------------------------------- */

/* The folder, with the model written into it. */
static void remove_files(void)
{
    char p[700];
    if (tmpdir[0] == '\0')
        return;
    snprintf(p, sizeof p, "%s/window7.json", tmpdir);
    remove(p);
    remove_tmpdir();
}

#define N_LISTENERS 6
static const char *const listener_names[N_LISTENERS] = {
    "line_eager", "line_fixed", "framed_eager", "framed_fixed", "win_eager", "win_fixed"};
static int ports[N_LISTENERS];

/* Starts convd; fills ports[]; 0, or -1 (said why). */
static int start_daemon(const char *model)
{
    const char *prog = daemon_path();
    char model_abs[4096], conf[700], logp[700], winp[700];
    if (access(prog, X_OK) != 0) {
        printf(PROG ": %s not found (build it with make): skipped\n", prog);
        return -1;
    }
    if (realpath(model, model_abs) == NULL) {
        printf(PROG ": %s: %s: skipped\n", model, strerror(errno));
        return -1;
    }
    if (make_tmpdir() < 0) {
        printf(PROG ": mkdtemp: %s: skipped\n", strerror(errno));
        return -1;
    }
    snprintf(conf, sizeof conf, "%s/convd.conf", tmpdir);
    snprintf(logp, sizeof logp, "%s/convd.log", tmpdir);
    snprintf(winp, sizeof winp, "%s/window7.json", tmpdir);
    FILE *w = fopen(winp, "w"), *f = fopen(conf, "w");
    if (w == NULL || f == NULL) {
        printf(PROG ": cannot write in %s: skipped\n", tmpdir);
        if (w)
            fclose(w);
        if (f)
            fclose(f);
        return -1;
    }
    fputs(cvd_test_window7_json, w);
    fclose(w);
    fprintf(f,
            "[server]\nworkers = 1\nlog_level = warning\nidle_timeout = 0\n"
            "[model m]\npath = %s\n[model win]\npath = %s\n",
            model_abs, winp);
    for (int i = 0; i < N_LISTENERS; i++)
        fprintf(f,
                "[listen %s]\naddress = 127.0.0.1:0\nprotocol = %s\nmodel = %s\nblock = 64\n"
                "blocking = %s\n",
                listener_names[i], strncmp(listener_names[i], "framed", 6) == 0 ? "framed" : "line",
                strncmp(listener_names[i], "win", 3) == 0 ? "win" : "m",
                strstr(listener_names[i], "eager") ? "eager" : "fixed");
    fclose(f);
    if (spawn_daemon(prog, conf, logp) < 0)
        return -1;
    for (int tries = 0; tries < 1000; tries++) { /* up to 10 s */
        int found = 0;
        if (daemon_exited_at_start(logp))
            return -1;
        for (int i = 0; i < N_LISTENERS; i++) {
            if (!ports[i])
                ports[i] = logged_port(logp, listener_names[i]);
            found += ports[i] > 0;
        }
        if (found == N_LISTENERS)
            return 0;
        sleep_ms(10);
    }
    printf(PROG ": the daemon did not log its ports within 10 s: skipped\n");
    return -1;
}

/* ---- clients ---------------------------------------------------------------------------- */

static int connect_to(int port)
{
    struct sockaddr_in a;
    int one = 1;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
        close(fd);
        return -1;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

static int send_all(int fd, const void *p, size_t n)
{
    const char *c = p;
    while (n > 0) {
        ssize_t k = send(fd, c, n, MSG_NOSIGNAL);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return -1;
        c += k;
        n -= (size_t)k;
    }
    return 0;
}

/* The reply reader: bytes in, output frames counted (line: LF-ended lines; framed: the frames
 * of DATA messages, after ACCEPT), with the time each frame count was reached. */
typedef struct reader {
    int framed;
    unsigned char buf[1 << 16];
    size_t len;
    long frames; /* output frames (line: lines) received so far */
} reader;

/* Takes what is readable within timeout_s; -1 on EOF/error, 0 otherwise. */
static int reader_poll(int fd, reader *r, double timeout_s)
{
    struct pollfd pf = {fd, POLLIN, 0};
    int k = poll(&pf, 1, timeout_s > 0 ? (int)(timeout_s * 1000) : 0); /* never -1: forever */
    if (k <= 0)
        return 0;
    ssize_t n = recv(fd, r->buf + r->len, sizeof r->buf - r->len, MSG_DONTWAIT);
    if (n <= 0)
        return n == 0 || (errno != EAGAIN && errno != EINTR) ? -1 : 0;
    r->len += (size_t)n;
    size_t pos = 0;
    if (!r->framed) {
        for (size_t i = 0; i < r->len; i++)
            if (r->buf[i] == '\n') {
                r->frames++;
                pos = i + 1;
            }
    } else {
        while (r->len - pos >= 5) {
            uint32_t l = (uint32_t)r->buf[pos] | (uint32_t)r->buf[pos + 1] << 8 |
                         (uint32_t)r->buf[pos + 2] << 16 | (uint32_t)r->buf[pos + 3] << 24;
            if (r->len - pos < 4 + (size_t)l)
                break;
            if (r->buf[pos + 4] == 3 && l >= 17)
                r->frames += (long)((l - 17) / 4); /* one f32 channel out */
            if (r->buf[pos + 4] == 7)
                return -1; /* ERROR */
            pos += 4 + l;
        }
    }
    memmove(r->buf, r->buf + pos, r->len - pos);
    r->len -= pos;
    return 0;
}

/* Waits until r->frames >= want; the arrival time, or -1 after timeout_s. */
static double wait_frames(int fd, reader *r, long want, double timeout_s)
{
    double end = now() + timeout_s;
    while (r->frames < want) {
        double left = end - now();
        if (left <= 0 || reader_poll(fd, r, left) < 0)
            return -1;
    }
    return now();
}

static void put_u16(unsigned char *p, unsigned v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
}

static void put_u32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static void put_u64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

/* one input frame, x, in the listener's protocol (framed: DATA number seq) */
static size_t encode_frame(int framed, float x, uint32_t seq, unsigned char *out)
{
    if (!framed)
        return (size_t)snprintf((char *)out, 64, "%.9g\n", (double)x);
    put_u32(out, 17 + 4);
    out[4] = 3;
    put_u32(out + 5, seq);
    put_u64(out + 9, seq);
    put_u32(out + 17, 0);
    memcpy(out + 21, &x, 4); /* little-endian machines: the wire's f32le */
    return 25;
}

static int hello(int fd)
{
    unsigned char h[23];
    put_u32(h, 19);
    h[4] = 1;
    put_u16(h + 5, 1); /* version */
    h[7] = 0;          /* process */
    h[8] = 1;          /* f32le */
    put_u32(h + 9, 0); /* rate: the model's */
    put_u16(h + 13, 0);
    put_u32(h + 15, 0); /* block: the listener's (64) */
    put_u16(h + 19, 0);
    put_u16(h + 21, 0);
    return send_all(fd, h, sizeof h);
}

typedef struct stats {
    double *v;
    int n;
} stats;

static void report(const char *what, const char *listener, stats *s)
{
    if (s->n == 0) {
        printf("%-20s %-13s no reply\n", what, listener);
        return;
    }
    qsort(s->v, (size_t)s->n, sizeof *s->v, cmp_double);
    double p50 = s->v[s->n / 2], p99 = s->v[(int)((double)(s->n - 1) * 0.99)], mx = s->v[s->n - 1];
    printf("%-20s %-13s %6d replies  p50 %9.1f us  p99 %9.1f us  max %9.1f us\n", what, listener,
           s->n, p50 * 1e6, p99 * 1e6, mx * 1e6);
}

/* request/response: one frame, its output, the next frame */
static void case_request(int li, int rounds, stats *s)
{
    const int framed = strncmp(listener_names[li], "framed", 6) == 0;
    int fd = connect_to(ports[li]);
    reader r = {.framed = framed};
    unsigned char msg[64];
    s->n = 0;
    if (fd < 0 || (framed && hello(fd) < 0))
        goto out;
    for (int i = 0; i < rounds; i++) {
        size_t n = encode_frame(framed, (float)((i % 200) - 100) / 128.0f, (uint32_t)i, msg);
        double t0 = now();
        if (send_all(fd, msg, n) < 0)
            break;
        double t1 = wait_frames(fd, &r, i + 1, 2.0);
        if (t1 < 0)
            break;
        s->v[s->n++] = t1 - t0;
    }
out:
    if (fd >= 0)
        close(fd);
}

/* a 7-frame window sent at once; its record awaited */
static void case_window(int li, int rounds, stats *s)
{
    int fd = connect_to(ports[li]);
    reader r = {.framed = 0};
    char text[512];
    s->n = 0;
    if (fd < 0)
        return;
    for (int i = 0; i < rounds; i++) {
        size_t n = 0;
        for (int k = 0; k < 7; k++)
            n += (size_t)snprintf(text + n, sizeof text - n, "%.9g\n",
                                  (double)((float)(k * 13 + i) / 64.0f - 0.5f));
        double t0 = now();
        if (send_all(fd, text, n) < 0)
            break;
        double t1 = wait_frames(fd, &r, i + 1, 2.0);
        if (t1 < 0)
            break;
        s->v[s->n++] = t1 - t0;
    }
    close(fd);
}

/* a frame every millisecond; each output frame's latency from its input frame's send */
static void case_paced(int li, int frames, stats *s)
{
    const int framed = strncmp(listener_names[li], "framed", 6) == 0;
    int fd = connect_to(ports[li]);
    reader r = {.framed = framed};
    unsigned char msg[64];
    double *sent = calloc((size_t)frames, sizeof *sent);
    s->n = 0;
    if (fd < 0 || sent == NULL || (framed && hello(fd) < 0))
        goto out;
    double t_next = now();
    long seen = 0;
    for (int i = 0; i < frames; i++) {
        /* read what came while waiting for the next send time */
        while (now() < t_next) {
            double left = t_next - now();
            if (reader_poll(fd, &r, left > 0.0005 ? 0.0005 : left) < 0)
                goto out;
            double t = now();
            while (seen < r.frames && seen < i)
                s->v[s->n++] = t - sent[seen++];
        }
        size_t n = encode_frame(framed, (float)((i % 200) - 100) / 128.0f, (uint32_t)i, msg);
        sent[i] = now();
        if (send_all(fd, msg, n) < 0)
            goto out;
        t_next += 0.001;
    }
    /* the tail: a fixed listener holds a partial block until the stream ends */
    if (!framed)
        shutdown(fd, SHUT_WR);
    else {
        unsigned char end[5];
        put_u32(end, 1);
        end[4] = 4;
        send_all(fd, end, sizeof end);
    }
    while (seen < frames) {
        if (wait_frames(fd, &r, seen + 1, 5.0) < 0)
            break;
        double t = now();
        while (seen < r.frames && seen < frames)
            s->v[s->n++] = t - sent[seen++];
    }
out:
    free(sent);
    if (fd >= 0)
        close(fd);
}

int main(int argc, char **argv)
{
    int count = 2000;
    const char *model = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--count") == 0 && i + 1 < argc)
            count = atoi(argv[++i]);
        else if (strcmp(argv[i], "--model") == 0 && i + 1 < argc)
            model = argv[++i];
        else {
            fprintf(stderr, "usage: " PROG " [--count N] [--model FILE]\n");
            return 2;
        }
    }
    if (count < 10)
        count = 10;
    if (model == NULL) {
        struct stat st;
        model = stat("config/models/drive.json", &st) == 0 ? "config/models/drive.json"
                                                           : "tests/data/nam/wide16_tanh.nam";
    }
    signal(SIGPIPE, SIG_IGN);
    if (start_daemon(model) < 0) {
        stop_daemon();
        remove_files();
        return 0;
    }
    stats s = {calloc((size_t)count, sizeof(double)), 0};
    if (s.v == NULL)
        return 1;
    printf(PROG ": model %s, block 64, %d rounds; latency from the write of the input that "
                "completes a reply to the reply's arrival\n",
           model, count);
    for (int li = 0; li < 4; li += 2) { /* eager only: fixed would wait for 63 more frames */
        case_request(li, count, &s);
        report("request/response", listener_names[li], &s);
    }
    case_window(4, count / 4, &s);
    report("7-frame window", listener_names[4], &s);
    for (int li = 0; li < 4; li++) {
        case_paced(li, count, &s);
        report("paced 1 frame/ms", listener_names[li], &s);
    }
    free(s.v);
    stop_daemon();
    remove_files();
    return 0;
}
