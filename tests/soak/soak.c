/* SPDX-License-Identifier: Apache-2.0 */
/*
 * convd-soak - the daemon on loopback with healthy clients beside hostile traffic, for a set
 * time; prints whether every healthy client was served with bit-identical output, how long
 * their streams took against the same run without hostile traffic, the daemon's peak memory,
 * and its counters. `make soak` runs it (SOAK_SECONDS, default 600); the tests run it for
 * 60 s (tests/test_security.c).
 *
 *   convd-soak [--seconds S] [--baseline S] [--clients N] [--frames N] [--model FILE]
 *              [--workers N] [--max-clients N] [--pause-ms MS] [--no-hostile] [--keep]
 *
 * Two runs of a fresh daemon (build/convd, or CVD_BUILD_DIR's) on one configuration: seven
 * listeners (raw, line and framed; plain and TLS; one with client certificates), all with
 * `allow = 127.0.0.1/32, [::1]/128`, framed ones with tokens, metrics on 127.0.0.1:
 *
 *   baseline   N healthy clients for --baseline seconds (default half of --seconds)
 *   hostile    the same clients for --seconds, beside: a connect-close flood (300/s),
 *              slowloris connections (32 dribbling a byte a second), framed lengths of 4 GB,
 *              garbage, subscribers and producers that never read, half-closed sockets that
 *              never read, clients from 127.0.0.2 (outside allow), plain bytes and wrong
 *              certificates to TLS ports, wrong and missing tokens, blocks past max_block,
 *              /metrics from 127.0.0.2.
 *
 * A healthy client connects, streams --frames frames (one of 8 signals, so streams mixed up
 * between clients would show) in its listener's protocol, ends its input (shutdown, TLS
 * close_notify, framed END), reads the whole output, compares it byte for byte with the model's
 * output computed here, closes, pauses up to --pause-ms, and starts again. Every client runs
 * in one poll() loop: no threads.
 *
 * For each run it also prints where the CPU went (the daemon's and its own CPU time, the time
 * their threads were ready to run but waited for a CPU, from /proc/PID/task/TID/schedstat,
 * and the machine's load average), the daemon's resident memory and open descriptors sampled
 * each second, and for healthy streams that failed, their listener and how far they got.
 *
 * Exit status: 0 when every healthy stream was served bit-identical and the daemon exited 0
 * after SIGTERM; 1 otherwise; 2 for a usage error. It needs the daemon, the model, and the
 * openssl command (for throwaway certificates, scripts/make-test-certs.sh).
 *
 * Long because: it is one self-contained program, and every healthy and hostile client kind
 * listed above runs in its one poll() loop.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "convd_dsp.h"
#include "convd_model.h"
#include "tls.h"

#define PROG "convd-soak"
#define N_SIGNALS 8
#define BLOCK 64
#define TOKEN "soak-healthy-token-2b7e151628aed2a6abf71588"
#define SUB_ONLY_TOKEN "soak-subscribe-only-3243f6a8885a308d"
#define MAX_SESS 4096

/* ---- small things ------------------------------------------------------------------------- */

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

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static pid_t daemon_pid;

static void die(const char *fmt, ...)
{
    va_list ap;
    fputs(PROG ": ", stdout);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    fputc('\n', stdout);
    if (daemon_pid > 0)
        kill(daemon_pid, SIGKILL);
    exit(1);
}

typedef struct buf {
    uint8_t *p;
    size_t len, cap;
} buf;

static void buf_add(buf *b, const void *p, size_t n)
{
    if (b->cap - b->len < n + 1) {
        size_t nc = b->cap ? b->cap : 4096;
        while (nc - b->len < n + 1)
            nc *= 2;
        uint8_t *np = realloc(b->p, nc);
        if (np == NULL)
            die("out of memory");
        b->p = np;
        b->cap = nc;
    }
    if (n)
        memcpy(b->p + b->len, p, n);
    b->len += n;
    b->p[b->len] = 0;
}

static void buf_printf(buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void buf_printf(buf *b, const char *fmt, ...)
{
    char tmp[4096];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof tmp)
        die("buf_printf: too long");
    buf_add(b, tmp, (size_t)n);
}

static void buf_free(buf *b)
{
    free(b->p);
    memset(b, 0, sizeof *b);
}

static void put_u16(buf *b, unsigned v)
{
    uint8_t x[2] = {(uint8_t)v, (uint8_t)(v >> 8)};
    buf_add(b, x, 2);
}

static void put_u32(buf *b, uint32_t v)
{
    uint8_t x[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    buf_add(b, x, 4);
}

static void put_u64(buf *b, uint64_t v)
{
    put_u32(b, (uint32_t)v);
    put_u32(b, (uint32_t)(v >> 32));
}

static uint32_t get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static double rnd01(void)
{
    return (double)(rnd() >> 11) * (1.0 / 9007199254740992.0);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* ---- options ------------------------------------------------------------------------------ */

typedef struct options {
    double seconds, baseline;
    int clients;
    int frames;
    const char *model;
    int workers;
    int max_clients;
    int pause_ms;
    int hostile;
    int keep;
    double timeout; /* the daemon's handshake, idle and write timeouts */
} options;

static void usage(FILE *f)
{
    fprintf(f, "usage: " PROG " [--seconds S] [--baseline S] [--clients N] [--frames N] "
               "[--model FILE]\n"
               "                  [--workers N] [--max-clients N] [--pause-ms MS] "
               "[--timeout S] [--no-hostile] [--keep]\n");
}

/* ---- the protocols' expected bytes --------------------------------------------------------- */

enum { P_RAW, P_LINE, P_FRAMED };

typedef struct signal_set {
    float *in[N_SIGNALS];    /* frames (mono) */
    buf raw_in[N_SIGNALS];   /* f32le bytes */
    buf line_in[N_SIGNALS];  /* text */
    buf fr_data[N_SIGNALS];  /* DATA messages and END (after a HELLO) */
    buf raw_out[N_SIGNALS];  /* expected f32le output (raw and framed DATA payloads) */
    buf line_out[N_SIGNALS]; /* expected text */
    size_t out_frames[N_SIGNALS];
} signal_set;

static void lines_of(buf *b, const float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        buf_printf(b, "%.9g\n", (double)x[i]);
}

static void make_signals(signal_set *s, cvd_model *m, int frames)
{
    const int mo_ch = cvd_model_out_channels(m);
    if (cvd_model_in_channels(m) != 1)
        die("the model must take one channel (this one takes %d)", cvd_model_in_channels(m));
    for (int k = 0; k < N_SIGNALS; k++) {
        float *x = malloc(sizeof(float) * (size_t)frames);
        if (x == NULL)
            die("out of memory");
        double f0 = 110.0 * (k + 1), ph = 0;
        for (int i = 0; i < frames; i++) {
            ph += 2 * M_PI * f0 / 48000.0;
            x[i] = (float)(0.6 * sin(ph) + 0.2 * sin(3.1 * ph + k) + 0.05 * (rnd01() - 0.5));
        }
        s->in[k] = x;
        buf_add(&s->raw_in[k], x, sizeof(float) * (size_t)frames);
        lines_of(&s->line_in[k], x, (size_t)frames);
        /* framed: DATA of 480 frames (and a last shorter one), then END */
        uint32_t seq = 0;
        for (int pos = 0; pos < frames; pos += 480) {
            int n = frames - pos < 480 ? frames - pos : 480;
            put_u32(&s->fr_data[k], (uint32_t)(17 + 4 * n));
            buf_add(&s->fr_data[k], &(uint8_t){3}, 1);
            put_u32(&s->fr_data[k], seq++);
            put_u64(&s->fr_data[k], (uint64_t)pos);
            put_u32(&s->fr_data[k], 0);
            buf_add(&s->fr_data[k], x + pos, sizeof(float) * (size_t)n);
        }
        put_u32(&s->fr_data[k], 1);
        buf_add(&s->fr_data[k], &(uint8_t){4}, 1);
        /* the model's output: blocks of BLOCK, then the flush (what the daemon computes) */
        cvd_net *net = NULL;
        cvd_err err = {0};
        if (cvd_net_create(m, BLOCK, &net, &err) < 0)
            die("%s", err.msg);
        float *tmp = malloc(sizeof(float) * (size_t)cvd_net_max_out(net) * (size_t)mo_ch);
        buf out = {0};
        for (int pos = 0; pos < frames; pos += BLOCK) {
            int n = frames - pos < BLOCK ? frames - pos : BLOCK, no = 0;
            if (cvd_net_process(net, x + pos, n, tmp, &no) < 0)
                die("the model failed");
            buf_add(&out, tmp, sizeof(float) * (size_t)no * (size_t)mo_ch);
        }
        for (;;) {
            int no = 0, more = cvd_net_flush(net, tmp, &no);
            if (more < 0)
                die("the model's flush failed");
            buf_add(&out, tmp, sizeof(float) * (size_t)no * (size_t)mo_ch);
            if (more != 1)
                break;
        }
        free(tmp);
        cvd_net_destroy(net);
        if (mo_ch != 1)
            die("the model must give one channel (this one gives %d)", mo_ch);
        s->out_frames[k] = out.len / 4;
        s->raw_out[k] = out;
        lines_of(&s->line_out[k], (const float *)(const void *)out.p, out.len / 4);
    }
}

/* ---- the daemon ---------------------------------------------------------------------------- */

typedef struct listener {
    const char *name;
    int proto;
    int tls;
    int mtls; /* clients need a certificate */
    int tokens;
    int port;
} listener;

static listener L[] = {
    {"raw", P_RAW, 0, 0, 0, 0},       {"line", P_LINE, 0, 0, 0, 0},
    {"framed", P_FRAMED, 0, 0, 1, 0}, {"raw-tls", P_RAW, 1, 0, 0, 0},
    {"line-tls", P_LINE, 1, 0, 0, 0}, {"framed-tls", P_FRAMED, 1, 0, 1, 0},
    {"raw-mtls", P_RAW, 1, 1, 0, 0},
};
#define N_L ((int)(sizeof L / sizeof L[0]))
static int metrics_port;
static char tmpdir[512], certdir[600], logpath[600];

static const char *build_dir(void)
{
    static char dir[1024];
    const char *env = getenv("CVD_BUILD_DIR");
    if (env && *env)
        return env;
    ssize_t n = readlink("/proc/self/exe", dir, sizeof dir - 1);
    if (n <= 0)
        return "build";
    dir[n] = '\0';
    char *slash = strrchr(dir, '/');
    if (slash)
        *slash = '\0';
    return dir;
}

static void run_cmd(const char *const *argv)
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        die("fork: %s", strerror(errno));
    if (pid == 0) {
        int nul = open("/dev/null", O_RDWR);
        dup2(nul, 0);
        dup2(nul, 1);
        execvp(argv[0], (char *const *)argv);
        _exit(127);
    }
    int st;
    waitpid(pid, &st, 0);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        die("%s failed (status 0x%x)", argv[0], st);
}

static void write_file(const char *path, const char *text, mode_t mode)
{
    FILE *f = fopen(path, "w");
    if (f == NULL)
        die("%s: %s", path, strerror(errno));
    fputs(text, f);
    fclose(f);
    chmod(path, mode);
}

static void write_config(const options *o, const char *model_abs)
{
    char p[700];
    buf c = {0};
    buf_printf(&c,
               "[server]\nworkers = %d\nlog_level = info\nmax_clients = %d\n"
               "handshake_timeout = %g\nidle_timeout = %g\nwrite_timeout = %g\n"
               "metrics = 127.0.0.1:0\nmetrics_allow = 127.0.0.1/32\n"
               "[model m]\npath = %s\n",
               o->workers, o->max_clients, o->timeout, o->timeout, o->timeout, model_abs);
    for (int i = 0; i < N_L; i++) {
        const listener *l = &L[i];
        buf_printf(&c, "[listen %s]\naddress = 127.0.0.1:0\nprotocol = %s\nmodel = m\n", l->name,
                   l->proto == P_RAW    ? "raw"
                   : l->proto == P_LINE ? "line"
                                        : "framed");
        if (l->proto != P_FRAMED)
            buf_printf(&c, "block = %d\n", BLOCK);
        buf_printf(&c, "allow = 127.0.0.1/32, [::1]/128\n");
        if (l->tls)
            buf_printf(&c, "tls_cert = %s/server.pem\ntls_key = %s/server.key\n", certdir, certdir);
        if (l->mtls)
            buf_printf(&c, "tls_client_ca = %s/clients-ca.pem\n", certdir);
        if (l->tokens)
            buf_printf(&c, "tokens = %s/tokens\n", tmpdir);
    }
    snprintf(p, sizeof p, "%s/convd.conf", tmpdir);
    write_file(p, (char *)c.p, 0644);
    buf_free(&c);
    snprintf(p, sizeof p, "%s/tokens", tmpdir);
    write_file(p,
               "# the soak's clients\n" TOKEN
               " process,publish=soak-*,subscribe=soak-*\n" SUB_ONLY_TOKEN " subscribe=nothing-*\n",
               0600);
}

/* The port of "listen NAME: 127.0.0.1:PORT" (or "metrics: http://127.0.0.1:PORT") in the log. */
static int port_in_log(const char *log, const char *prefix)
{
    const char *h = strstr(log, prefix);
    return h ? atoi(h + strlen(prefix)) : 0;
}

static char *read_text(const char *path)
{
    FILE *f = fopen(path, "r");
    buf b = {0};
    char chunk[65536];
    size_t n;
    if (f == NULL)
        return NULL;
    buf_add(&b, "", 0);
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        buf_add(&b, chunk, n);
    fclose(f);
    return (char *)b.p;
}

static void start_daemon(const options *o)
{
    char prog[1200], conf[700];
    snprintf(prog, sizeof prog, "%s/convd", build_dir());
    snprintf(conf, sizeof conf, "%s/convd.conf", tmpdir);
    snprintf(logpath, sizeof logpath, "%s/convd.log", tmpdir);
    if (access(prog, X_OK) != 0)
        die("%s: not found (build with make)", prog);
    (void)o;
    /* the last daemon's log goes first: read before the child truncates it, its ports
     * would be taken for the new daemon's */
    if (unlink(logpath) < 0 && errno != ENOENT)
        die("%s: %s", logpath, strerror(errno));
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        die("fork: %s", strerror(errno));
    if (pid == 0) {
        int fd = open(logpath, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int nul = open("/dev/null", O_RDWR);
        if (fd < 0 || nul < 0)
            _exit(127);
        dup2(nul, 0);
        dup2(nul, 1);
        dup2(fd, 2);
        execl(prog, prog, "-c", conf, (char *)NULL);
        _exit(127);
    }
    daemon_pid = pid;
    for (int tries = 0; tries < 3000; tries++) { /* 30 s: the model's figures are measured */
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid) {
            daemon_pid = 0;
            char *log = read_text(logpath);
            die("the daemon exited at start (status 0x%x):\n%s", st, log ? log : "");
        }
        char *log = read_text(logpath);
        int all = log != NULL;
        for (int i = 0; log && i < N_L; i++) {
            char pre[128];
            snprintf(pre, sizeof pre, "listen %s: 127.0.0.1:", L[i].name);
            L[i].port = port_in_log(log, pre);
            all &= L[i].port > 0;
        }
        if (log)
            metrics_port = port_in_log(log, "metrics: http://127.0.0.1:");
        free(log);
        if (all && metrics_port > 0)
            return;
        sleep_ms(10);
    }
    die("the daemon did not log its ports within 30 s (%s)", logpath);
}

/* SIGTERM; returns the exit status (-1: killed after 20 s). */
static int stop_daemon(void)
{
    int st = 0;
    if (daemon_pid <= 0)
        return -1;
    kill(daemon_pid, SIGTERM);
    for (int i = 0; i < 2000; i++) {
        if (waitpid(daemon_pid, &st, WNOHANG) == daemon_pid) {
            daemon_pid = 0;
            return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        }
        sleep_ms(10);
    }
    kill(daemon_pid, SIGKILL);
    waitpid(daemon_pid, &st, 0);
    daemon_pid = 0;
    return -1;
}

/* Peak resident memory of the daemon so far (VmHWM), in KiB. */
static long peak_rss_kb(void)
{
    char p[64], line[256];
    long v = -1;
    snprintf(p, sizeof p, "/proc/%d/status", (int)daemon_pid);
    FILE *f = fopen(p, "r");
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, "VmHWM:", 6) == 0)
            v = atol(line + 6);
    if (f)
        fclose(f);
    return v;
}

/* CPU time (user + system) of the daemon so far, in seconds; of this process, likewise. */
static double daemon_cpu_s(void)
{
    char p[64], line[1024];
    snprintf(p, sizeof p, "/proc/%d/stat", (int)daemon_pid);
    FILE *f = fopen(p, "r");
    double v = -1;
    if (f && fgets(line, sizeof line, f)) {
        const char *c = strrchr(line, ')'); /* fields after the command: state is field 3 */
        unsigned long ut = 0, stt = 0;
        if (c &&
            sscanf(c + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &stt) == 2)
            v = (double)(ut + stt) / (double)sysconf(_SC_CLK_TCK);
    }
    if (f)
        fclose(f);
    return v;
}

/* The daemon's open descriptors (its connections, and a few more) and resident memory now. */
static long daemon_fds(void)
{
    char p[64];
    snprintf(p, sizeof p, "/proc/%d/fd", (int)daemon_pid);
    DIR *d = opendir(p);
    long n = 0;
    while (d && readdir(d))
        n++;
    if (d)
        closedir(d);
    return n - 2;
}

static long daemon_rss_kb(void)
{
    char p[64], line[256];
    long v = -1;
    snprintf(p, sizeof p, "/proc/%d/status", (int)daemon_pid);
    FILE *f = fopen(p, "r");
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, "VmRSS:", 6) == 0)
            v = atol(line + 6);
    if (f)
        fclose(f);
    return v;
}

/* Of a process's threads, summed (/proc/PID/task/TID/schedstat, in seconds): the time they ran
 * on a CPU and the time they were ready to run but waited for one (a machine with fewer cores
 * than runnable threads shows it here). */
static void sched_times(pid_t pid, double *run, double *wait)
{
    char p[96], line[256];
    *run = *wait = 0;
    snprintf(p, sizeof p, "/proc/%d/task", (int)pid);
    DIR *d = opendir(p);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        snprintf(p, sizeof p, "/proc/%d/task/%.20s/schedstat", (int)pid, e->d_name);
        FILE *f = fopen(p, "r");
        unsigned long long r = 0, w = 0;
        if (f && fgets(line, sizeof line, f) && sscanf(line, "%llu %llu", &r, &w) == 2) {
            *run += 1e-9 * (double)r;
            *wait += 1e-9 * (double)w;
        }
        if (f)
            fclose(f);
    }
    if (d)
        closedir(d);
}

static double self_cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + 1e-6 * (double)ru.ru_utime.tv_usec +
           (double)ru.ru_stime.tv_sec + 1e-6 * (double)ru.ru_stime.tv_usec;
}

static double loadavg1(void)
{
    double l[1] = {-1};
    getloadavg(l, 1);
    return l[0];
}

/* GET /metrics from `from` (a local address); the body, or NULL if refused. */
static char *get_metrics(const char *from)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    if (fd < 0)
        return NULL;
    inet_pton(AF_INET, from, &a.sin_addr);
    if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0) {
        close(fd);
        return NULL;
    }
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    a.sin_port = htons((uint16_t)metrics_port);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
        close(fd);
        return NULL;
    }
    const char req[] = "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n";
    if (send(fd, req, sizeof req - 1, MSG_NOSIGNAL) < 0) {
        close(fd);
        return NULL;
    }
    struct timeval tv = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    buf b = {0};
    char chunk[65536];
    ssize_t n;
    buf_add(&b, "", 0);
    while ((n = recv(fd, chunk, sizeof chunk, 0)) > 0)
        buf_add(&b, chunk, (size_t)n);
    close(fd);
    char *body = strstr((char *)b.p, "\r\n\r\n");
    if (strncmp((char *)b.p, "HTTP/1.1 200", 12) != 0 || body == NULL) {
        buf_free(&b);
        return NULL;
    }
    char *r = strdup(body + 4);
    buf_free(&b);
    return r;
}

/* ---- sessions ------------------------------------------------------------------------------- */

enum kind {
    K_HEALTHY,
    K_FLOOD,       /* connect, close (RST half the time) */
    K_SLOWLORIS,   /* a byte a second, never a whole frame or message */
    K_HUGE,        /* a framed length of almost 4 GB */
    K_GARBAGE,     /* random bytes */
    K_NOREAD_SUB,  /* subscribes, never reads */
    K_NOREAD_PROC, /* streams a lot, never reads */
    K_HALFOPEN,    /* some input, its write side shut, never reads */
    K_OUTSIDE,     /* from 127.0.0.2: not in allow */
    K_BADTLS,      /* plain bytes to a TLS port, or a certificate from another CA */
    K_BADTOKEN,    /* a wrong token, none (version 1), or a token without the role */
    K_BIGBLOCK,    /* HELLO block 65536 > max_block */
    K_METRICS_OUT, /* /metrics from 127.0.0.2 */
    K_COUNT
};

static const char *const kind_names[K_COUNT] = {"healthy",
                                                "connect-close flood",
                                                "slowloris",
                                                "huge framed length",
                                                "garbage",
                                                "never-reading subscriber",
                                                "never-reading producer",
                                                "half-closed, never reading",
                                                "outside allow",
                                                "wrong TLS",
                                                "wrong token",
                                                "block past max_block",
                                                "/metrics from outside"};

/* new hostile sessions per second, and how many at most at once */
static const double kind_rate[K_COUNT] = {0, 300, 0, 10, 20, 0, 0, 0, 20, 20, 20, 5, 2};
static const int kind_keep[K_COUNT] = {0, 0, 32, 0, 0, 8, 8, 8, 0, 0, 0, 0, 0};

enum { S_CONNECTING, S_RUN, S_DONE };

typedef struct sess {
    int used;
    int kind;
    int li; /* listener */
    int fd;
    int state;
    cvd_tls *tls;
    /* plaintext to send: shared[0..shared_len) after own */
    buf own;
    const uint8_t *shared;
    size_t shared_len;
    size_t off; /* of own + shared */
    int shut_when_sent;
    int shut_done;
    buf net_out; /* ciphertext not yet sent */
    size_t net_off;
    buf rx;
    int eof;
    int sig;
    char stream[32];
    double t0, deadline, next_drip;
    int drip_left;
    int failed_reason; /* healthy: why it failed */
} sess;

static sess S[MAX_SESS];
static cvd_tls_ctx *tls_good, *tls_client_cert, *tls_rogue, *tls_nocert;
static signal_set sig;
static int n_publishing;
static char publishing[256][32];

typedef struct stats {
    long healthy_done, healthy_failed;
    long frames_lost, frames_altered;
    double *times;
    size_t n_times, cap_times;
    long per_listener_done[8];
    long per_listener_failed[8];
    long failures_by[8];
    int n_timeout_notes;
    char timeout_notes[4][200];
    long spawned[K_COUNT], ended_by_server[K_COUNT], ended_by_us[K_COUNT];
    char first_failure[512];
} stats;

static const char *const failure_names[8] = {
    "", "connect", "reset or error", "timed out", "altered", "cut short", "TLS", "refused"};
enum { F_NONE, F_CONNECT, F_RESET, F_TIMEOUT, F_ALTERED, F_SHORT, F_TLS, F_REFUSED };

static void record_time(stats *st, double t)
{
    if (st->n_times == st->cap_times) {
        st->cap_times = st->cap_times ? 2 * st->cap_times : 4096;
        st->times = realloc(st->times, sizeof(double) * st->cap_times);
        if (st->times == NULL)
            die("out of memory");
    }
    st->times[st->n_times++] = t;
}

static sess *sess_new(void)
{
    for (int i = 0; i < MAX_SESS; i++)
        if (!S[i].used) {
            memset(&S[i], 0, sizeof S[i]);
            S[i].used = 1;
            S[i].fd = -1;
            return &S[i];
        }
    return NULL;
}

static void sess_free(sess *s)
{
    if (s->fd >= 0)
        close(s->fd);
    cvd_tls_destroy(s->tls);
    buf_free(&s->own);
    buf_free(&s->net_out);
    buf_free(&s->rx);
    if (s->stream[0]) {
        for (int i = 0; i < n_publishing; i++)
            if (strcmp(publishing[i], s->stream) == 0) {
                memmove(publishing[i], publishing[n_publishing - 1], sizeof publishing[i]);
                n_publishing--;
                break;
            }
    }
    s->used = 0;
}

/* Connects (non-blocking) to listener li, from `from` (NULL: the default source). */
static int open_conn(sess *s, int li, const char *from, int rcvbuf)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    if (fd < 0)
        return -1;
    if (rcvbuf > 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    if (from) {
        inet_pton(AF_INET, from, &a.sin_addr);
        if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0) {
            close(fd);
            return -1;
        }
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    a.sin_port = htons((uint16_t)L[li].port);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0 && errno != EINPROGRESS) {
        close(fd);
        return -1;
    }
    s->fd = fd;
    s->li = li;
    s->state = S_CONNECTING;
    s->t0 = now();
    return 0;
}

static void hello(buf *b, int version, int role, uint32_t block, const char *stream,
                  const char *token)
{
    size_t sl = stream ? strlen(stream) : 0, tl = token ? strlen(token) : 0;
    put_u32(b, (uint32_t)(19 + sl + (version >= 2 ? 2 + tl : 0)));
    buf_add(b, &(uint8_t){1}, 1);
    put_u16(b, (unsigned)version);
    buf_add(b, &(uint8_t){(uint8_t)role}, 1);
    buf_add(b, &(uint8_t){1}, 1); /* f32le */
    put_u32(b, 0);                /* rate */
    put_u16(b, 0);                /* channels */
    put_u32(b, block);
    put_u16(b, 0); /* model: the listener's */
    put_u16(b, (unsigned)sl);
    buf_add(b, stream, sl);
    if (version >= 2) {
        put_u16(b, (unsigned)tl);
        buf_add(b, token, tl);
    }
}

static int pick_listener(int proto, int tls)
{
    int c[N_L], n = 0;
    for (int i = 0; i < N_L; i++)
        if ((proto < 0 || L[i].proto == proto) && (tls < 0 || L[i].tls == tls))
            c[n++] = i;
    return n ? c[rnd() % (uint64_t)n] : 0;
}

static void start_healthy(sess *s, int li, int publish)
{
    const listener *l = &L[li];
    s->kind = K_HEALTHY;
    s->sig = (int)(rnd() % N_SIGNALS);
    if (open_conn(s, li, NULL, 0) < 0) {
        s->state = S_DONE;
        s->failed_reason = F_CONNECT;
        return;
    }
    if (l->tls &&
        cvd_tls_create(l->mtls ? tls_client_cert : tls_good, "127.0.0.1", &s->tls, NULL) < 0)
        die("TLS session");
    s->deadline = s->t0 + 60;
    s->shut_when_sent = l->proto != P_FRAMED;
    if (l->proto == P_RAW) {
        s->shared = sig.raw_in[s->sig].p;
        s->shared_len = sig.raw_in[s->sig].len;
    } else if (l->proto == P_LINE) {
        s->shared = sig.line_in[s->sig].p;
        s->shared_len = sig.line_in[s->sig].len;
    } else {
        if (publish && n_publishing < 256) {
            /* a new name each time: the server may still hold a closed publisher's name
             * for a moment after we close, and a second publisher of it is refused */
            static unsigned long next_name;
            snprintf(s->stream, sizeof s->stream, "soak-%lu", next_name++);
            memcpy(publishing[n_publishing++], s->stream, sizeof s->stream);
        }
        hello(&s->own, 2, 0, BLOCK, s->stream, TOKEN);
        s->shared = sig.fr_data[s->sig].p;
        s->shared_len = sig.fr_data[s->sig].len;
    }
}

static size_t tx_len(const sess *s);

/* Checks a finished healthy stream against the model's output. */
static void check_healthy(sess *s, stats *st)
{
    const listener *l = &L[s->li];
    const buf *want = l->proto == P_LINE ? &sig.line_out[s->sig] : &sig.raw_out[s->sig];
    const uint8_t *got = s->rx.p;
    size_t got_len = s->rx.len;
    buf payload = {0};
    int ended = 1;
    if (l->proto == P_FRAMED) {
        /* ACCEPT, DATA..., END */
        size_t pos = 0;
        int accepted = 0;
        ended = 0;
        while (pos + 5 <= s->rx.len) {
            uint32_t len = get_u32(s->rx.p + pos);
            if (len < 1 || pos + 4 + len > s->rx.len)
                break;
            uint8_t type = s->rx.p[pos + 4];
            if (type == 2)
                accepted = 1;
            else if (type == 3 && len >= 17)
                buf_add(&payload, s->rx.p + pos + 21, len - 17);
            else if (type == 4)
                ended = 1;
            else if (type == 7) {
                s->failed_reason = F_REFUSED;
                if (st->first_failure[0] == '\0' && len >= 5)
                    snprintf(st->first_failure, sizeof st->first_failure, "%s: ERROR %u: %.*s",
                             l->name, (unsigned)(s->rx.p[pos + 5] | s->rx.p[pos + 6] << 8),
                             (int)(len > 5 ? len - 5 : 0), (const char *)s->rx.p + pos + 9);
            }
            pos += 4 + len;
        }
        if (!accepted && !s->failed_reason)
            s->failed_reason = F_REFUSED;
        got = payload.p;
        got_len = payload.len;
    }
    if (s->failed_reason == F_NONE) {
        if (got_len != want->len || (got_len && memcmp(got, want->p, got_len) != 0) || !ended) {
            /* frames lost or altered, counted in frames of the expected output */
            size_t fl = l->proto == P_LINE ? 0 : 4;
            if (fl) {
                size_t n_want = want->len / 4, n_got = got_len / 4;
                size_t common = n_got < n_want ? n_got : n_want;
                for (size_t i = 0; i < common; i++)
                    if (memcmp(got + 4 * i, want->p + 4 * i, 4) != 0)
                        st->frames_altered++;
                if (n_got < n_want)
                    st->frames_lost += (long)(n_want - n_got);
            } else {
                /* line: compare line by line */
                size_t a = 0, b = 0, lost = 0, altered = 0;
                while (b < want->len) {
                    const uint8_t *we = memchr(want->p + b, '\n', want->len - b);
                    size_t wl = (size_t)(we - (want->p + b)) + 1;
                    if (a >= got_len) {
                        lost++;
                    } else {
                        const uint8_t *ge = memchr(got + a, '\n', got_len - a);
                        size_t gl = ge ? (size_t)(ge - (got + a)) + 1 : got_len - a;
                        if (gl != wl || memcmp(got + a, want->p + b, wl) != 0)
                            altered++;
                        a += gl;
                    }
                    b += wl;
                }
                st->frames_lost += (long)lost;
                st->frames_altered += (long)altered;
            }
            s->failed_reason = got_len < want->len || !ended ? F_SHORT : F_ALTERED;
            if (st->first_failure[0] == '\0')
                snprintf(st->first_failure, sizeof st->first_failure,
                         "%s: %zu bytes of output, %zu expected%s", l->name, got_len, want->len,
                         ended ? "" : ", no END");
        }
    }
    buf_free(&payload);
    if (s->failed_reason == F_NONE) {
        st->healthy_done++;
        st->per_listener_done[s->li]++;
        record_time(st, now() - s->t0);
    } else {
        st->healthy_failed++;
        st->per_listener_failed[s->li]++;
        st->failures_by[s->failed_reason]++;
        if (s->failed_reason == F_TIMEOUT && st->n_timeout_notes < 4)
            snprintf(st->timeout_notes[st->n_timeout_notes++], sizeof st->timeout_notes[0],
                     "%s: %zu of %zu bytes sent%s, %zu bytes received, %s", l->name, s->off,
                     tx_len(s), s->shut_done ? " and input ended" : "", s->rx.len,
                     s->tls ? (cvd_tls_handshake_done(s->tls) ? "TLS up" : "TLS handshake not done")
                            : "plain");
        if (st->first_failure[0] == '\0')
            snprintf(st->first_failure, sizeof st->first_failure, "%s: %s", l->name,
                     failure_names[s->failed_reason]);
    }
}

/* ---- hostile sessions ------------------------------------------------------------------------ */

static void random_bytes(buf *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        buf_add(b, &(uint8_t){(uint8_t)rnd()}, 1);
}

static void start_hostile(sess *s, int kind)
{
    int li = 0, rcvbuf = 0;
    const char *from = NULL;
    s->kind = kind;
    switch (kind) {
    case K_FLOOD:
        li = (int)(rnd() % N_L);
        break;
    case K_SLOWLORIS:
        li = pick_listener(rnd() % 2 ? P_LINE : P_FRAMED, (int)(rnd() % 2));
        break;
    case K_HUGE:
        li = pick_listener(P_FRAMED, (int)(rnd() % 2));
        put_u32(&s->own, 0xfffffff0u);
        buf_add(&s->own, &(uint8_t){3}, 1);
        break;
    case K_GARBAGE:
        li = (int)(rnd() % N_L);
        random_bytes(&s->own, 256 + rnd() % 4096);
        s->shut_when_sent = 1;
        break;
    case K_NOREAD_SUB:
        li = pick_listener(P_FRAMED, (int)(rnd() % 2));
        rcvbuf = 4096;
        if (n_publishing > 0)
            hello(&s->own, 2, 1, 0, publishing[rnd() % (uint64_t)n_publishing], TOKEN);
        else
            hello(&s->own, 2, 1, 0, "soak-none", TOKEN);
        break;
    case K_NOREAD_PROC:
    case K_HALFOPEN:
        li = pick_listener(kind == K_HALFOPEN ? P_RAW : -1, 0);
        rcvbuf = 4096;
        if (L[li].proto == P_FRAMED)
            hello(&s->own, 2, 0, BLOCK, NULL, TOKEN);
        for (int r = 0; r < (kind == K_HALFOPEN ? 4 : 40); r++) {
            if (L[li].proto == P_RAW)
                buf_add(&s->own, sig.raw_in[r % N_SIGNALS].p, sig.raw_in[r % N_SIGNALS].len);
            else if (L[li].proto == P_LINE)
                buf_add(&s->own, sig.line_in[r % N_SIGNALS].p, sig.line_in[r % N_SIGNALS].len);
            else if (r == 0) /* one stream's DATA, without END: never ends */
                buf_add(&s->own, sig.fr_data[0].p, sig.fr_data[0].len - 5);
        }
        s->shut_when_sent = kind == K_HALFOPEN;
        break;
    case K_OUTSIDE:
        li = (int)(rnd() % N_L);
        from = "127.0.0.2";
        buf_add(&s->own, sig.raw_in[0].p, 256);
        break;
    case K_BADTLS:
        li = pick_listener(-1, 1);
        if (rnd() % 2 || !L[li].mtls)
            buf_printf(&s->own, "GET / HTTP/1.1\r\nHost: convd\r\n\r\n");
        else
            s->tls = (cvd_tls *)1; /* a TLS client with a wrong or no certificate: below */
        break;
    case K_BADTOKEN:
        li = pick_listener(P_FRAMED, (int)(rnd() % 2));
        switch (rnd() % 3) {
        case 0:
            hello(&s->own, 2, 0, BLOCK, NULL, "not-a-token");
            break;
        case 1:
            hello(&s->own, 1, 0, BLOCK, NULL, NULL);
            break;
        default:
            hello(&s->own, 2, 0, BLOCK, NULL, SUB_ONLY_TOKEN);
            break;
        }
        break;
    case K_BIGBLOCK:
        li = pick_listener(P_FRAMED, (int)(rnd() % 2));
        hello(&s->own, 2, 0, 65536, NULL, TOKEN);
        break;
    default:
        break;
    }
    int want_tls = L[li].tls && kind != K_BADTLS && kind != K_FLOOD && kind != K_OUTSIDE;
    int bad_client = kind == K_BADTLS && s->tls == (cvd_tls *)1;
    s->tls = NULL;
    if (open_conn(s, li, from, rcvbuf) < 0) {
        s->state = S_DONE;
        return;
    }
    if (want_tls || bad_client) {
        cvd_tls_ctx *ctx = bad_client   ? (rnd() % 2 ? tls_rogue : tls_nocert)
                           : L[li].mtls ? tls_client_cert
                                        : tls_good;
        if (cvd_tls_create(ctx, "127.0.0.1", &s->tls, NULL) < 0)
            die("TLS session");
        if (bad_client)
            buf_add(&s->own, sig.raw_in[0].p, 256);
    }
    s->deadline = s->t0 + (kind == K_SLOWLORIS || kind == K_NOREAD_SUB || kind == K_NOREAD_PROC ||
                                   kind == K_HALFOPEN
                               ? 60
                               : 10);
    if (kind == K_SLOWLORIS) {
        if (L[li].proto == P_LINE)
            buf_printf(&s->own, "0.1234567890123456789012345678901234567890123456789");
        else
            hello(&s->own, 2, 0, BLOCK, NULL, TOKEN);
        s->drip_left = (int)s->own.len;
        s->next_drip = s->t0;
    }
}

/* ---- the loop ---------------------------------------------------------------------------- */

/* Ciphertext waiting in the TLS session, into net_out. */
static void tls_collect(sess *s)
{
    uint8_t tmp[16384];
    size_t n;
    while ((n = cvd_tls_take(s->tls, tmp, sizeof tmp)) > 0)
        buf_add(&s->net_out, tmp, n);
}

static size_t tx_len(const sess *s)
{
    return s->own.len + s->shared_len;
}

static const uint8_t *tx_at(const sess *s, size_t off, size_t *avail)
{
    if (off < s->own.len) {
        *avail = s->own.len - off;
        return s->own.p + off;
    }
    *avail = s->shared_len - (off - s->own.len);
    return s->shared + (off - s->own.len);
}

/* The session ended: by the server (1) or by us. */
static void end(sess *s, stats *st, int by_server)
{
    if (s->kind == K_HEALTHY) {
        check_healthy(s, st);
    } else if (by_server) {
        st->ended_by_server[s->kind]++;
    } else {
        st->ended_by_us[s->kind]++;
    }
    sess_free(s);
}

static void fail_healthy(sess *s, stats *st, int reason)
{
    if (s->failed_reason == F_NONE)
        s->failed_reason = reason;
    end(s, st, 1);
}

/* Sends what can be sent now. Returns -1 if the connection failed. */
static int pump_out(sess *s)
{
    for (;;) {
        /* ciphertext first */
        if (s->net_off < s->net_out.len) {
            ssize_t n = send(s->fd, s->net_out.p + s->net_off, s->net_out.len - s->net_off,
                             MSG_NOSIGNAL | MSG_DONTWAIT);
            if (n < 0)
                return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -1;
            s->net_off += (size_t)n;
            if (s->net_off < s->net_out.len)
                return 0;
            s->net_off = s->net_out.len = 0;
        }
        /* TLS: plaintext (and the close_notify after it) once the handshake is done; a
         * session closed before then would send no close_notify */
        if (s->tls && !cvd_tls_handshake_done(s->tls))
            return 0;
        size_t limit = tx_len(s);
        if (s->kind == K_SLOWLORIS)
            limit = s->own.len - (size_t)s->drip_left;
        if (s->off < limit) {
            size_t avail;
            const uint8_t *p = tx_at(s, s->off, &avail);
            if (avail > limit - s->off)
                avail = limit - s->off;
            if (s->tls) {
                if (avail > 16384)
                    avail = 16384;
                if (cvd_tls_write(s->tls, p, avail, NULL) < 0)
                    return -1;
                s->off += avail;
                tls_collect(s);
                continue;
            }
            ssize_t n = send(s->fd, p, avail, MSG_NOSIGNAL | MSG_DONTWAIT);
            if (n < 0)
                return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -1;
            s->off += (size_t)n;
            continue;
        }
        if (s->off == tx_len(s) && s->shut_when_sent && !s->shut_done) {
            s->shut_done = 1;
            if (s->tls) {
                cvd_tls_close(s->tls);
                tls_collect(s);
                continue; /* close_notify out, then the FIN */
            }
            shutdown(s->fd, SHUT_WR);
        }
        if (s->shut_done && s->tls && s->net_out.len == 0 && s->shut_done == 1) {
            s->shut_done = 2;
            shutdown(s->fd, SHUT_WR);
        }
        return 0;
    }
}

/* Reads what has come. Returns 1 at the end of the stream, -1 on error, 0 otherwise. */
static int pump_in(sess *s)
{
    uint8_t tmp[65536];
    for (;;) {
        ssize_t n = recv(s->fd, tmp, sizeof tmp, MSG_DONTWAIT);
        if (n < 0)
            return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -1;
        if (n == 0)
            return 1;
        if (s->kind == K_NOREAD_SUB || s->kind == K_NOREAD_PROC || s->kind == K_HALFOPEN)
            return 0; /* (not reached: they do not poll for input) */
        if (s->tls) {
            if (cvd_tls_feed(s->tls, tmp, (size_t)n, NULL) < 0)
                return -1;
            for (;;) {
                size_t got = 0;
                int rc = cvd_tls_read(s->tls, tmp, sizeof tmp, &got, NULL);
                if (got && s->kind == K_HEALTHY)
                    buf_add(&s->rx, tmp, got);
                if (rc == CVD_TLS_CLOSED)
                    break;
                if (rc < 0)
                    return -2;
                if (got == 0)
                    break;
            }
            tls_collect(s);
        } else if (s->kind == K_HEALTHY) {
            buf_add(&s->rx, tmp, (size_t)n);
        }
        if (s->kind == K_HEALTHY && L[s->li].proto == P_FRAMED) {
            /* the END (or an ERROR) ends a framed stream; the server closes after it */
            size_t pos = 0;
            while (pos + 5 <= s->rx.len) {
                uint32_t len = get_u32(s->rx.p + pos);
                if (len < 1 || pos + 4 + len > s->rx.len)
                    break;
                uint8_t type = s->rx.p[pos + 4];
                if (type == 4 || type == 7)
                    return 1;
                pos += 4 + len;
            }
        }
    }
}

static int reads(const sess *s)
{
    return !(s->kind == K_NOREAD_SUB || s->kind == K_NOREAD_PROC || s->kind == K_HALFOPEN);
}

typedef struct phase {
    double seconds;
    int hostile;
    int clients;
    int pause_ms;
    stats st;
    /* measured over the phase: CPU seconds of the daemon and of this program, load average
     * (1 min) at start and end, and the highest seen */
    double cpu_daemon, cpu_soak, load_start, load_end, load_max, wall;
    /* sampled every second: the daemon's open descriptors and resident memory at most */
    long fds_max, rss_max_kb, rss_at_fds_max_kb;
    double d_run, d_wait, s_run, s_wait; /* sched_times over the phase: daemon, soak */
} phase;

static void run_phase(phase *ph)
{
    double t_start = now(), t_end = t_start + ph->seconds, next_load = t_start + 5;
    double next_spawn[K_COUNT];
    double cpu_d0 = daemon_cpu_s(), cpu_s0 = self_cpu_s(), dr0, dw0, sr0, sw0;
    sched_times(daemon_pid, &dr0, &dw0);
    sched_times(getpid(), &sr0, &sw0);
    ph->load_start = ph->load_max = loadavg1();
    double restart_at[MAX_SESS];
    int healthy_slot_li[1024];
    int n_healthy = ph->clients;
    struct pollfd *pfd = calloc(MAX_SESS, sizeof *pfd);
    int *idx = calloc(MAX_SESS, sizeof *idx);
    sess *hs[1024] = {0};
    if (pfd == NULL || idx == NULL)
        die("out of memory");
    for (int k = 0; k < K_COUNT; k++)
        next_spawn[k] = t_start;
    for (int i = 0; i < n_healthy; i++) {
        healthy_slot_li[i] = i % N_L;
        restart_at[i] = t_start + 0.002 * i;
    }
    for (;;) {
        double t = now();
        int running = t < t_end;
        if (t >= next_load) {
            double l = loadavg1();
            if (l > ph->load_max)
                ph->load_max = l;
            long nfd = daemon_fds(), rss = daemon_rss_kb();
            if (nfd > ph->fds_max) {
                ph->fds_max = nfd;
                ph->rss_at_fds_max_kb = rss;
            }
            if (rss > ph->rss_max_kb)
                ph->rss_max_kb = rss;
            next_load = t + 1;
        }
        /* healthy clients: restart each slot after its pause */
        int active = 0;
        for (int i = 0; i < n_healthy; i++) {
            if (hs[i] && (!hs[i]->used || hs[i]->kind != K_HEALTHY)) {
                hs[i] = NULL;
                restart_at[i] = t + 1e-3 * (double)(rnd() % (uint64_t)(ph->pause_ms + 1));
            }
            if (hs[i] == NULL && running && t >= restart_at[i]) {
                sess *s = sess_new();
                if (s == NULL)
                    die("too many sessions");
                start_healthy(s, healthy_slot_li[i],
                              L[healthy_slot_li[i]].proto == P_FRAMED && i % 3 == 0);
                hs[i] = s;
                if (s->state == S_DONE)
                    fail_healthy(s, &ph->st, s->failed_reason);
            }
            active += hs[i] != NULL;
        }
        if (!running && active == 0)
            break;
        /* hostile ones */
        if (ph->hostile && running) {
            int counts[K_COUNT] = {0};
            for (int i = 0; i < MAX_SESS; i++)
                if (S[i].used)
                    counts[S[i].kind]++;
            for (int k = 1; k < K_COUNT; k++) {
                if (k == K_METRICS_OUT) {
                    while (next_spawn[k] <= t) {
                        char *m = get_metrics("127.0.0.2");
                        ph->st.spawned[k]++;
                        if (m == NULL)
                            ph->st.ended_by_server[k]++;
                        else
                            ph->st.ended_by_us[k]++;
                        free(m);
                        next_spawn[k] += 1.0 / kind_rate[k];
                    }
                    continue;
                }
                /* kept at a count: replaced as they end, at most 20 a second */
                if (kind_keep[k] > 0) {
                    if (next_spawn[k] < t - 1)
                        next_spawn[k] = t - 1;
                    while (counts[k] < kind_keep[k] && next_spawn[k] <= t) {
                        next_spawn[k] += 0.05;
                        sess *s = sess_new();
                        if (s == NULL)
                            break;
                        start_hostile(s, k);
                        ph->st.spawned[k]++;
                        counts[k]++;
                        if (s->state == S_DONE)
                            end(s, &ph->st, 1);
                    }
                    continue;
                }
                /* at a rate: a loop turn that came late does not make up more than 0.2 s */
                if (next_spawn[k] < t - 0.2)
                    next_spawn[k] = t - 0.2;
                while (next_spawn[k] <= t) {
                    next_spawn[k] += 1.0 / kind_rate[k];
                    sess *s = sess_new();
                    if (s == NULL)
                        break;
                    start_hostile(s, k);
                    ph->st.spawned[k]++;
                    if (s->state == S_DONE)
                        end(s, &ph->st, 1);
                }
            }
        }
        /* poll */
        int n = 0;
        double next_timer = t + 0.01;
        for (int i = 0; i < MAX_SESS; i++) {
            sess *s = &S[i];
            if (!s->used)
                continue;
            if (t > s->deadline) {
                if (s->kind == K_HEALTHY)
                    fail_healthy(s, &ph->st, F_TIMEOUT);
                else
                    end(s, &ph->st, 0);
                continue;
            }
            if (s->kind == K_FLOOD && s->state == S_RUN) {
                if (rnd() % 2) {
                    struct linger lg = {1, 0};
                    setsockopt(s->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
                }
                end(s, &ph->st, 0);
                continue;
            }
            if (s->kind == K_SLOWLORIS && s->state == S_RUN && s->drip_left > 0 &&
                t >= s->next_drip) {
                s->drip_left--;
                s->next_drip = t + 1.0;
            }
            short ev = 0;
            if (s->state == S_CONNECTING)
                ev = POLLOUT;
            else {
                size_t limit =
                    s->kind == K_SLOWLORIS ? s->own.len - (size_t)s->drip_left : tx_len(s);
                if ((s->off < limit && (!s->tls || cvd_tls_handshake_done(s->tls))) ||
                    s->net_off < s->net_out.len)
                    ev |= POLLOUT;
                if (reads(s))
                    ev |= POLLIN;
            }
            if (s->kind == K_SLOWLORIS && s->next_drip < next_timer)
                next_timer = s->next_drip;
            pfd[n].fd = s->fd;
            pfd[n].events = ev;
            pfd[n].revents = 0;
            idx[n++] = i;
        }
        int wait = (int)((next_timer - now()) * 1000);
        if (wait < 0)
            wait = 0;
        if (wait > 10)
            wait = 10;
        if (poll(pfd, (nfds_t)n, wait) < 0 && errno != EINTR)
            die("poll: %s", strerror(errno));
        for (int j = 0; j < n; j++) {
            sess *s = &S[idx[j]];
            if (!s->used || pfd[j].revents == 0)
                continue;
            if (s->state == S_CONNECTING) {
                int err = 0;
                socklen_t el = sizeof err;
                getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &el);
                if (err != 0) {
                    if (s->kind == K_HEALTHY)
                        fail_healthy(s, &ph->st, F_CONNECT);
                    else
                        end(s, &ph->st, 1);
                    continue;
                }
                s->state = S_RUN;
                if (s->tls) {
                    size_t got;
                    uint8_t tmp[256];
                    cvd_tls_read(s->tls, tmp, sizeof tmp, &got, NULL); /* the ClientHello */
                    tls_collect(s);
                }
            }
            if (s->state != S_RUN)
                continue;
            if (pump_out(s) < 0) {
                if (s->kind == K_HEALTHY)
                    fail_healthy(s, &ph->st, F_RESET);
                else
                    end(s, &ph->st, 1);
                continue;
            }
            if ((pfd[j].revents & (POLLIN | POLLHUP | POLLERR)) && reads(s)) {
                int r = pump_in(s);
                if (r == 0) {
                    if (s->tls && pump_out(s) < 0 && s->kind == K_HEALTHY) {
                        fail_healthy(s, &ph->st, F_RESET);
                        continue;
                    }
                    continue;
                }
                if (s->kind == K_HEALTHY) {
                    if (r == 1)
                        end(s, &ph->st, 1);
                    else
                        fail_healthy(s, &ph->st, r == -2 ? F_TLS : F_RESET);
                } else {
                    end(s, &ph->st, 1);
                }
            } else if ((pfd[j].revents & (POLLHUP | POLLERR)) && !reads(s)) {
                end(s, &ph->st, 1);
            }
        }
    }
    /* hostile leftovers */
    for (int i = 0; i < MAX_SESS; i++)
        if (S[i].used)
            end(&S[i], &ph->st, 0);
    ph->wall = now() - t_start;
    ph->cpu_daemon = daemon_cpu_s() - cpu_d0;
    ph->cpu_soak = self_cpu_s() - cpu_s0;
    sched_times(daemon_pid, &ph->d_run, &ph->d_wait);
    sched_times(getpid(), &ph->s_run, &ph->s_wait);
    ph->d_run -= dr0;
    ph->d_wait -= dw0;
    ph->s_run -= sr0;
    ph->s_wait -= sw0;
    ph->load_end = loadavg1();
    if (ph->load_end > ph->load_max)
        ph->load_max = ph->load_end;
    free(pfd);
    free(idx);
}

/* Where the CPU went in a phase: the daemon's and this program's share of the wall time,
 * beside the machine's load. */
static void print_cpu(const phase *ph)
{
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    printf("  CPU over %.0f s: daemon %.1f s (%.2f cores), soak %.1f s (%.2f cores), of %ld "
           "cores; load average %.2f at start, %.2f at end, %.2f at most\n",
           ph->wall, ph->cpu_daemon, ph->cpu_daemon / ph->wall, ph->cpu_soak,
           ph->cpu_soak / ph->wall, ncpu, ph->load_start, ph->load_end, ph->load_max);
    printf("  waiting for a CPU while ready to run: daemon's threads %.1f s (beside %.1f s "
           "running), soak %.1f s (beside %.1f s)\n",
           ph->d_wait, ph->d_run, ph->s_wait, ph->s_run);
    printf("  daemon, sampled each second: RSS at most %.1f MB; open descriptors at most %ld "
           "(RSS then %.1f MB)\n",
           (double)ph->rss_max_kb / 1024.0, ph->fds_max, (double)ph->rss_at_fds_max_kb / 1024.0);
}

static double pct(const stats *st, double p)
{
    if (st->n_times == 0)
        return 0;
    size_t i = (size_t)(p * (double)(st->n_times - 1) + 0.5);
    return st->times[i];
}

/* The counters of the daemon worth printing. */
static void print_counters(const char *m)
{
    const char *prefixes[] = {
        "convd_disconnects_total", "convd_refused_total",         "convd_tls_",    "convd_accept_",
        "convd_stream_memory",     "convd_metrics_refused_total", "convd_clients "};
    for (const char *line = m; line && *line;) {
        const char *eol = strchr(line, '\n');
        size_t len = eol ? (size_t)(eol - line) : strlen(line);
        if (line[0] != '#')
            for (size_t k = 0; k < sizeof prefixes / sizeof prefixes[0]; k++)
                if (strncmp(line, prefixes[k], strlen(prefixes[k])) == 0) {
                    /* leave out counters at 0 */
                    const char *sp = memrchr(line, ' ', len);
                    if (sp && !(sp[1] == '0' && (size_t)(sp + 2 - line) == len))
                        printf("  %.*s\n", (int)len, line);
                    break;
                }
        line = eol ? eol + 1 : NULL;
    }
}

static void cleanup_tmp(const options *o)
{
    if (o->keep || tmpdir[0] == '\0')
        return;
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) { /* nothing else to do */
    }
}

int main(int argc, char **argv)
{
    options o = {.seconds = 60,
                 .baseline = -1,
                 .clients = 200,
                 .frames = 4800,
                 .model = NULL,
                 .workers = 2,
                 .max_clients = 1024,
                 .pause_ms = 50,
                 .hostile = 1,
                 .timeout = 10};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--help") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(a, "--no-hostile") == 0) {
            o.hostile = 0;
        } else if (strcmp(a, "--keep") == 0) {
            o.keep = 1;
        } else if (v == NULL) {
            usage(stderr);
            return 2;
        } else if (strcmp(a, "--seconds") == 0) {
            o.seconds = atof(v), i++;
        } else if (strcmp(a, "--baseline") == 0) {
            o.baseline = atof(v), i++;
        } else if (strcmp(a, "--clients") == 0) {
            o.clients = atoi(v), i++;
        } else if (strcmp(a, "--frames") == 0) {
            o.frames = atoi(v), i++;
        } else if (strcmp(a, "--model") == 0) {
            o.model = v, i++;
        } else if (strcmp(a, "--workers") == 0) {
            o.workers = atoi(v), i++;
        } else if (strcmp(a, "--max-clients") == 0) {
            o.max_clients = atoi(v), i++;
        } else if (strcmp(a, "--pause-ms") == 0) {
            o.pause_ms = atoi(v), i++;
        } else if (strcmp(a, "--timeout") == 0) {
            o.timeout = atof(v), i++;
        } else {
            usage(stderr);
            return 2;
        }
    }
    if (o.seconds <= 0 || o.clients < 1 || o.clients > 1000 || o.frames < 1 || o.workers < 1 ||
        o.pause_ms < 0 || !(o.timeout >= 0.1 && o.timeout <= 3600)) {
        usage(stderr);
        return 2;
    }
    if (o.baseline < 0)
        o.baseline = o.seconds / 2;
    if (o.model == NULL)
        o.model = access("../shared/models/nam/wavenet_a1_standard.nam", R_OK) == 0
                      ? "../shared/models/nam/wavenet_a1_standard.nam"
                      : "tests/data/nam/wide16_tanh.nam";
    signal(SIGPIPE, SIG_IGN);
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }

    /* the model and what it computes */
    char model_abs[4096];
    if (realpath(o.model, model_abs) == NULL)
        die("%s: %s", o.model, strerror(errno));
    cvd_model *m = NULL;
    cvd_err err = {0};
    if (cvd_model_load(model_abs, &m, &err) < 0)
        die("%s", err.msg);
    make_signals(&sig, m, o.frames);

    /* a folder, certificates, the configuration */
    const char *base = getenv("TMPDIR");
    snprintf(tmpdir, sizeof tmpdir, "%s/convd-soak-XXXXXX", base && *base ? base : "/tmp");
    if (mkdtemp(tmpdir) == NULL)
        die("mkdtemp: %s", strerror(errno));
    snprintf(certdir, sizeof certdir, "%s/certs", tmpdir);
    char script[1200];
    snprintf(script, sizeof script, "%s/../scripts/make-test-certs.sh", build_dir());
    if (access(script, X_OK) != 0)
        snprintf(script, sizeof script, "scripts/make-test-certs.sh");
    const char *cargv[] = {script, certdir, NULL};
    run_cmd(cargv);
    char p1[700], p2[700], p3[700];
    snprintf(p1, sizeof p1, "%s/ca.pem", certdir);
    if (cvd_tls_client_ctx_create(p1, 1, NULL, NULL, &tls_good, &err) < 0)
        die("%s", err.msg);
    snprintf(p2, sizeof p2, "%s/client.pem", certdir);
    snprintf(p3, sizeof p3, "%s/client.key", certdir);
    if (cvd_tls_client_ctx_create(p1, 1, p2, p3, &tls_client_cert, &err) < 0)
        die("%s", err.msg);
    snprintf(p2, sizeof p2, "%s/rogue-client.pem", certdir);
    snprintf(p3, sizeof p3, "%s/rogue-client.key", certdir);
    if (cvd_tls_client_ctx_create(p1, 1, p2, p3, &tls_rogue, &err) < 0)
        die("%s", err.msg);
    tls_nocert = cvd_tls_ctx_ref(tls_good);
    write_config(&o, model_abs);

    printf(PROG ": model %s, %d healthy clients over %d listeners (raw, line, framed; plain, "
                "TLS, client certificates), %d frames a stream, %d workers, max_clients %d\n",
           o.model, o.clients, N_L, o.frames, o.workers, o.max_clients);
    fflush(stdout);

    int ok = 1;
    phase base_ph = {
        .seconds = o.baseline, .hostile = 0, .clients = o.clients, .pause_ms = o.pause_ms};
    if (o.baseline > 0) {
        start_daemon(&o);
        run_phase(&base_ph);
        int st = stop_daemon();
        qsort(base_ph.st.times, base_ph.st.n_times, sizeof(double), cmp_double);
        printf("baseline (no hostile traffic, %.0f s): %ld streams served, %ld failed; "
               "completion p50 %.1f ms, p99 %.1f ms; daemon exit %d\n",
               o.baseline, base_ph.st.healthy_done, base_ph.st.healthy_failed,
               1e3 * pct(&base_ph.st, 0.5), 1e3 * pct(&base_ph.st, 0.99), st);
        print_cpu(&base_ph);
        if (base_ph.st.healthy_failed > 0 || st != 0)
            ok = 0;
    }

    phase ph = {
        .seconds = o.seconds, .hostile = o.hostile, .clients = o.clients, .pause_ms = o.pause_ms};
    start_daemon(&o);
    run_phase(&ph);
    long rss = peak_rss_kb();
    char *metrics = get_metrics("127.0.0.1");
    int st = stop_daemon();
    qsort(ph.st.times, ph.st.n_times, sizeof(double), cmp_double);
    printf("%s (%.0f s): %ld streams served, %ld failed", o.hostile ? "hostile" : "run", o.seconds,
           ph.st.healthy_done, ph.st.healthy_failed);
    for (int f = 1; f < 8; f++)
        if (ph.st.failures_by[f])
            printf(" (%s %ld)", failure_names[f], ph.st.failures_by[f]);
    printf("; completion p50 %.1f ms, p99 %.1f ms", 1e3 * pct(&ph.st, 0.5),
           1e3 * pct(&ph.st, 0.99));
    if (base_ph.st.n_times > 0 && pct(&base_ph.st, 0.99) > 0)
        printf(" (p99 %.2fx the baseline's)", pct(&ph.st, 0.99) / pct(&base_ph.st, 0.99));
    printf("\n");
    print_cpu(&ph);
    printf("served per listener:");
    for (int i = 0; i < N_L; i++)
        printf(" %s %ld", L[i].name, ph.st.per_listener_done[i]);
    printf("\n");
    if (ph.st.healthy_failed) {
        printf("failed per listener:");
        for (int i = 0; i < N_L; i++)
            printf(" %s %ld", L[i].name, ph.st.per_listener_failed[i]);
        printf("\n");
    }
    for (int i = 0; i < ph.st.n_timeout_notes; i++)
        printf("timed out: %s\n", ph.st.timeout_notes[i]);
    printf("frames lost or altered: %ld lost, %ld altered\n",
           ph.st.frames_lost + base_ph.st.frames_lost,
           ph.st.frames_altered + base_ph.st.frames_altered);
    if (ph.st.first_failure[0] || base_ph.st.first_failure[0])
        printf("first failure: %s\n",
               ph.st.first_failure[0] ? ph.st.first_failure : base_ph.st.first_failure);
    printf("daemon peak RSS: %.1f MB\n", rss > 0 ? (double)rss / 1024.0 : -1.0);
    if (o.hostile) {
        printf("hostile traffic (started, ended by the server, still open when we gave up):\n");
        for (int k = 1; k < K_COUNT; k++)
            printf("  %-28s %8ld %8ld %8ld\n", kind_names[k], ph.st.spawned[k],
                   ph.st.ended_by_server[k], ph.st.ended_by_us[k]);
    }
    if (metrics) {
        printf("daemon counters:\n");
        print_counters(metrics);
    } else {
        printf("daemon counters: /metrics did not answer\n");
        ok = 0;
    }
    free(metrics);
    printf("daemon exit status after SIGTERM: %d\n", st);
    if (ph.st.healthy_failed > 0 || ph.st.frames_lost || ph.st.frames_altered || st != 0 ||
        ph.st.healthy_done == 0)
        ok = 0;
    printf("result: %s\n", ok ? "PASS (every healthy stream served, bit-identical)" : "FAIL");
    if (!ok)
        printf("daemon log: %s\n", logpath);
    if (ok)
        cleanup_tmp(&o);
    cvd_tls_ctx_unref(tls_good);
    cvd_tls_ctx_unref(tls_client_cert);
    cvd_tls_ctx_unref(tls_rogue);
    cvd_tls_ctx_unref(tls_nocert);
    cvd_model_unref(m);
    free(base_ph.st.times);
    free(ph.st.times);
    return ok ? 0 : 1;
}
