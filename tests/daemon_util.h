/* SPDX-License-Identifier: Apache-2.0 */
/*
 * daemon_util.h - helpers for tests/test_daemon.c: run the convd daemon as a program, talk to
 * it over loopback TCP, and compute what it should answer.
 *
 *   du_buf       a growable byte buffer
 *   du_tmp_*     a temporary folder per test (configs, reference files, logs)
 *   du_deadline  a time limit for the test process (alarm), in place of Criterion's .timeout
 *   du_spawn     fork + execve with redirected output, extra environment, variables holding the
 *                child's own pid (WATCHDOG_PID, LISTEN_PID) and a descriptor passed as fd 3
 *   du_daemon_*  start convd on a config text, find its ports in its log, stop it with SIGTERM
 *                and check it exited 0 without a sanitizer report
 *   du_*connect, du_send_all, du_recv_*     blocking socket helpers with deadlines
 *   du_http_get, du_metric                 the Prometheus endpoint
 *   du_ref_*     the expected output: convd-run, or the same streaming loop in-process
 *   du_fr_*      framed messages to send, and a parser of what the server sent
 *   du_drive     many clients at once from one thread (poll): random write and read sizes
 *
 * Every helper is static (one includer); failures are Criterion assertions. Children are
 * killed when the test process dies (PR_SET_PDEATHSIG) and by du_cleanup() in the suite's fini.
 *
 * Long because: it is the one toolbox every daemon-driving test includes, and the helpers
 * listed above build on one another.
 */
#ifndef CONVD_DAEMON_UTIL_H
#define CONVD_DAEMON_UTIL_H

#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
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
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "convd_dsp.h"
#include "convd_model.h"
#include "convd_proto.h"

extern char **environ;

#if defined(__GNUC__)
#define DU_FN static __attribute__((unused))
#define DU_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define DU_FN static
#define DU_PRINTF(a, b)
#endif

#define DU_PATH 1024

/* ---- time ------------------------------------------------------------------------------- */

DU_FN double du_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

DU_FN void du_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

/* ---- a growable byte buffer ------------------------------------------------------------- */

typedef struct du_buf {
    uint8_t *p;
    size_t len, cap;
} du_buf;

DU_FN void du_buf_reserve(du_buf *b, size_t extra)
{
    if (b->cap - b->len >= extra + 1)
        return;
    size_t nc = b->cap ? b->cap : 4096;
    while (nc - b->len < extra + 1)
        nc *= 2;
    uint8_t *np = realloc(b->p, nc);
    cr_assert_not_null(np, "out of memory (%zu bytes)", nc);
    b->p = np;
    b->cap = nc;
    b->p[b->len] = 0;
}

DU_FN void du_buf_add(du_buf *b, const void *p, size_t n)
{
    du_buf_reserve(b, n);
    if (n)
        memcpy(b->p + b->len, p, n);
    b->len += n;
    b->p[b->len] = 0; /* always NUL-terminated, for text */
}

DU_FN void du_buf_printf(du_buf *b, const char *fmt, ...) DU_PRINTF(2, 3);
DU_FN void du_buf_printf(du_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    cr_assert_geq(n, 0);
    du_buf_reserve(b, (size_t)n);
    va_start(ap, fmt);
    vsnprintf((char *)b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

DU_FN void du_buf_free(du_buf *b)
{
    free(b->p);
    memset(b, 0, sizeof *b);
}

/* A cvd_bytes view of the free room of b with at least n bytes (for the encoders). */
DU_FN cvd_bytes du_buf_room(du_buf *b, size_t n)
{
    du_buf_reserve(b, n);
    cvd_bytes cb = {b->p + b->len, 0, b->cap - b->len - 1};
    return cb;
}

/* ---- files ------------------------------------------------------------------------------ */

DU_FN char *du_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    du_buf b = {0};
    char chunk[65536];
    size_t n;
    if (f == NULL)
        return NULL;
    du_buf_reserve(&b, 0);
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        du_buf_add(&b, chunk, n);
    fclose(f);
    if (len)
        *len = b.len;
    return (char *)b.p;
}

DU_FN void du_write_file(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f, "%s: %s", path, strerror(errno));
    cr_assert_eq(fwrite(p, 1, n, f), n, "%s: short write", path);
    cr_assert_eq(fclose(f), 0, "%s: %s", path, strerror(errno));
}

/* float32 LE file -> floats (this machine is little-endian, as the project assumes) */
DU_FN float *du_read_f32(const char *path, size_t *n_floats)
{
    size_t len = 0;
    char *p = du_read_file(path, &len);
    cr_assert_not_null(p, "%s: %s", path, strerror(errno));
    cr_assert_eq(len % 4, 0, "%s: %zu bytes is not whole floats", path, len);
    *n_floats = len / 4;
    return (float *)(void *)p;
}

DU_FN int du_count(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)) != NULL; p += strlen(needle))
        n++;
    return n;
}

/* ---- a temporary folder per test -------------------------------------------------------- */

static char du_tmpdir[DU_PATH];

DU_FN void du_tmp_make(void)
{
    const char *base = getenv("TMPDIR");
    snprintf(du_tmpdir, sizeof du_tmpdir, "%s/convd-daemon-XXXXXX", base && *base ? base : "/tmp");
    cr_assert_not_null(mkdtemp(du_tmpdir), "mkdtemp(%s): %s", du_tmpdir, strerror(errno));
}

static int du_rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

DU_FN void du_tmp_remove(void)
{
    if (du_tmpdir[0] && getenv("CVD_KEEP_TMP") == NULL)
        nftw(du_tmpdir, du_rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    du_tmpdir[0] = '\0';
}

/* A path in the test's folder; each call returns another of 64 buffers. */
DU_FN const char *du_tmp(const char *name)
{
    static char bufs[64][DU_PATH];
    static int next;
    char *b = bufs[next++ % 64];
    int n = snprintf(b, DU_PATH, "%s/%s", du_tmpdir, name);
    cr_assert(n > 0 && n < DU_PATH, "path too long");
    return b;
}

/* An absolute path to a file of the source tree (tests run from the top of the tree). */
DU_FN const char *du_src(const char *rel)
{
    static char bufs[32][DU_PATH];
    static int next;
    char *b = bufs[next++ % 32];
    cr_assert_not_null(realpath(rel, b), "%s: %s (run the tests from the top of the tree)", rel,
                       strerror(errno));
    return b;
}

/* The folder of the programs: CVD_BUILD_DIR, else this test binary's own folder. */
DU_FN const char *du_build_dir(void)
{
    static char dir[DU_PATH];
    const char *env = getenv("CVD_BUILD_DIR");
    if (env && *env)
        return env;
    if (dir[0] == '\0') {
        ssize_t n = readlink("/proc/self/exe", dir, sizeof dir - 1);
        char *slash;
        if (n > 0 && (dir[n] = '\0', slash = strrchr(dir, '/')) != NULL)
            *slash = '\0';
        else
            snprintf(dir, sizeof dir, "./build");
    }
    return dir;
}

DU_FN const char *du_prog(const char *name)
{
    static char bufs[8][DU_PATH];
    static int next;
    char *b = bufs[next++ % 8];
    int n = snprintf(b, DU_PATH, "%s/%s", du_build_dir(), name);
    cr_assert(n > 0 && n < DU_PATH, "path too long");
    cr_assert(access(b, X_OK) == 0,
              "%s: not found or not executable (build with make; CVD_BUILD_DIR chooses the "
              "folder)",
              b);
    return b;
}

/* ---- running programs ------------------------------------------------------------------- */

#define DU_MAX_CHILDREN 32
static pid_t du_children[DU_MAX_CHILDREN];

DU_FN void du_forget_child(pid_t pid)
{
    for (int i = 0; i < DU_MAX_CHILDREN; i++)
        if (du_children[i] == pid)
            du_children[i] = 0;
}

/* Kills whatever a failed test left running (the suite's fini). */
DU_FN void du_cleanup(void)
{
    for (int i = 0; i < DU_MAX_CHILDREN; i++)
        if (du_children[i] > 0) {
            kill(du_children[i], SIGKILL);
            waitpid(du_children[i], NULL, 0);
            du_children[i] = 0;
        }
}

/*
 * A deadline for the whole test process: on expiry it names the test's limit on standard error
 * and dies of SIGALRM, which Criterion reports as a crash; the daemons it started die with it
 * (PR_SET_PDEATHSIG). This replaces Criterion's own .timeout, whose watchdog thread in the
 * runner (BoxFort 0.1) can lose a 48-byte request to a race at exit, which LeakSanitizer then
 * reports against the whole run.
 */
static void du_on_deadline(int sig)
{
    static const char msg[] = "test: deadline passed (alarm); killing the test process\n";
    if (write(STDERR_FILENO, msg, sizeof msg - 1) < 0) { /* nothing else to do */
    }
    signal(sig, SIG_DFL);
    raise(sig);
}

DU_FN int du_daemon_sanitized(void);

/* A sanitized build (ASan/UBSan or TSan) runs several times slower: its deadlines are 3x. */
DU_FN void du_deadline(unsigned seconds)
{
    signal(SIGALRM, du_on_deadline);
    alarm(du_daemon_sanitized() ? 3 * seconds : seconds);
}

typedef struct du_spawn_opts {
    const char *const *argv;    /* argv[0]: the program's path */
    const char *const *env_add; /* "NAME=value", replacing NAME if set; NULL-terminated */
    const char *const *env_pid; /* NAMEs set to the child's own pid; NULL-terminated */
    const char *out_path;       /* standard output to this file (NULL: /dev/null) */
    const char *err_path;       /* standard error */
    int fd3;                    /* a descriptor to pass as fd 3, or -1 */
} du_spawn_opts;

static int du_env_overridden(const char *entry, const char *const *list, int names_only)
{
    size_t el = strcspn(entry, "=");
    for (int i = 0; list && list[i]; i++) {
        size_t nl = names_only ? strlen(list[i]) : strcspn(list[i], "=");
        if (nl == el && strncmp(entry, list[i], el) == 0)
            return 1;
    }
    return 0;
}

/* Starts a program; returns its pid. Everything the child needs is prepared before fork: the
 * child only writes its pid into buffers, moves descriptors and execs. */
DU_FN pid_t du_spawn(const du_spawn_opts *o)
{
    size_t n_env = 0, k = 0;
    while (environ[n_env])
        n_env++;
    size_t n_add = 0, n_pid = 0;
    while (o->env_add && o->env_add[n_add])
        n_add++;
    while (o->env_pid && o->env_pid[n_pid])
        n_pid++;
    char **envp = calloc(n_env + n_add + n_pid + 1, sizeof *envp);
    char(*pidbuf)[96] = calloc(n_pid + 1, sizeof *pidbuf);
    size_t pidpre[8] = {0};
    cr_assert(envp && pidbuf && n_pid <= 8);
    for (size_t i = 0; i < n_env; i++)
        if (!du_env_overridden(environ[i], o->env_add, 0) &&
            !du_env_overridden(environ[i], o->env_pid, 1))
            envp[k++] = environ[i];
    for (size_t i = 0; i < n_add; i++)
        envp[k++] = (char *)o->env_add[i];
    for (size_t i = 0; i < n_pid; i++) {
        pidpre[i] = (size_t)snprintf(pidbuf[i], 64, "%s=", o->env_pid[i]);
        envp[k++] = pidbuf[i];
    }
    envp[k] = NULL;
    const char *outp = o->out_path ? o->out_path : "/dev/null";
    const char *errp = o->err_path ? o->err_path : "/dev/null";
    pid_t parent = getpid();

    fflush(NULL);
    pid_t pid = fork();
    cr_assert_geq(pid, 0, "fork: %s", strerror(errno));
    if (pid == 0) {
        /* the child: async-signal-safe calls only */
        char digits[24];
        int nd = 0;
        long v = (long)getpid();
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
        do {
            digits[nd++] = (char)('0' + v % 10);
            v /= 10;
        } while (v > 0);
        for (size_t i = 0; i < n_pid; i++) {
            size_t p = pidpre[i];
            for (int d = nd - 1; d >= 0; d--)
                pidbuf[i][p++] = digits[d];
            pidbuf[i][p] = '\0';
        }
        int in = open("/dev/null", O_RDONLY);
        int out = open(outp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int err = open(errp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (in < 0 || out < 0 || err < 0)
            _exit(126);
        /* out of the way of 0..3 first */
        in = fcntl(in, F_DUPFD, 10);
        out = fcntl(out, F_DUPFD, 10);
        err = fcntl(err, F_DUPFD, 10);
        int f3 = o->fd3 >= 0 ? fcntl(o->fd3, F_DUPFD, 10) : -1;
        dup2(in, 0);
        dup2(out, 1);
        dup2(err, 2);
        if (f3 >= 0)
            dup2(f3, 3);
        close_range(f3 >= 0 ? 4 : 3, ~0U, 0);
        execve(o->argv[0], (char *const *)o->argv, envp);
        _exit(127);
    }
    free(envp);
    free(pidbuf);
    for (int i = 0; i < DU_MAX_CHILDREN; i++)
        if (du_children[i] == 0) {
            du_children[i] = pid;
            break;
        }
    return pid;
}

/* Waits for pid up to timeout_s; 1 and *status if it exited, 0 if still running. */
DU_FN int du_wait_pid(pid_t pid, double timeout_s, int *status)
{
    double end = du_now() + timeout_s;
    for (;;) {
        int st = 0;
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid) {
            du_forget_child(pid);
            *status = st;
            return 1;
        }
        cr_assert(r == 0 || errno == EINTR, "waitpid(%d): %s", (int)pid, strerror(errno));
        if (du_now() >= end)
            return 0;
        du_sleep_ms(5);
    }
}

typedef struct du_proc {
    int status; /* exit status; 128 + signal if killed */
    char *out;
    char *err;
} du_proc;

DU_FN void du_proc_free(du_proc *p)
{
    free(p->out);
    free(p->err);
    memset(p, 0, sizeof *p);
}

/* Runs a program to its end (at most timeout_s), capturing its output streams. */
DU_FN du_proc du_run(const char *const *argv, double timeout_s)
{
    du_proc p = {0};
    const char *outp = du_tmp("run.out"), *errp = du_tmp("run.err");
    du_spawn_opts o = {.argv = argv, .out_path = outp, .err_path = errp, .fd3 = -1};
    pid_t pid = du_spawn(&o);
    int st = 0;
    if (!du_wait_pid(pid, timeout_s, &st)) {
        kill(pid, SIGKILL);
        du_wait_pid(pid, 5, &st);
        cr_assert_fail("%s: still running after %.0f s", argv[0], timeout_s);
    }
    p.status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
    p.out = du_read_file(outp, NULL);
    p.err = du_read_file(errp, NULL);
    cr_assert(p.out && p.err);
    return p;
}

/* ---- the daemon ------------------------------------------------------------------------- */

typedef struct du_daemon {
    pid_t pid;
    char conf[DU_PATH]; /* the config file */
    char log[DU_PATH];  /* its standard error */
    int status;         /* after du_daemon_stop */
    int running;
} du_daemon;

typedef struct du_daemon_opts {
    int workers;                /* --workers; 0: the config's */
    const char *const *env_add; /* as du_spawn_opts */
    const char *const *env_pid;
    int fd3;
    const char *log_level; /* NULL: the config's */
} du_daemon_opts;

/* The daemon this test file started last: what a failed request to it reports (du_http_get) */
static pid_t du_last_pid __attribute__((unused));
static char du_last_log[DU_PATH] __attribute__((unused));

/* The daemon's log so far (malloc'd). */
DU_FN char *du_daemon_log(const du_daemon *d)
{
    char *t = du_read_file(d->log, NULL);
    return t ? t : strdup("");
}

/* Which sanitizer the daemon under test (du_prog("convd")) was built with: 't' TSan, 'a' ASan,
 * 0 none (`make test SAN=thread` runs a plain test binary against TSan programs). */
DU_FN int du_daemon_sanitizer(void)
{
    static int known = -1;
    if (known < 0) {
        size_t n = 0;
        char *bin = du_read_file(du_prog("convd"), &n);
        cr_assert_not_null(bin);
        known = memmem(bin, n, "__tsan_init", 11)   ? 't'
                : memmem(bin, n, "__asan_init", 11) ? 'a'
                                                    : 0;
        free(bin);
    }
    return known;
}

/* 1 if it has a sanitizer (ASan or TSan), whose allocator and shadow memory make its resident
 * size grow by megabytes whatever it does. */
DU_FN int du_daemon_sanitized(void)
{
    return du_daemon_sanitizer() != 0;
}

/* The environment for sanitized daemons: a small quarantine, so freed memory is reused and
 * the resident size means what the daemon holds. Appended to the caller's ASAN_OPTIONS. */
DU_FN const char *du_asan_env(void)
{
    static char buf[2048];
    const char *old = getenv("ASAN_OPTIONS");
    snprintf(buf, sizeof buf, "ASAN_OPTIONS=%s%squarantine_size_mb=1:detect_leaks=1",
             old && *old ? old : "", old && *old ? ":" : "");
    return buf;
}

/* Writes conf_text to FILE (a name in the temp folder) and starts `convd -c FILE`. */
DU_FN void du_daemon_start_opts(du_daemon *d, const char *file, const char *conf_text,
                                const du_daemon_opts *o)
{
    char wbuf[16];
    const char *argv[12];
    const char *env[16];
    int n = 0, ne = 0;
    memset(d, 0, sizeof *d);
    snprintf(d->conf, sizeof d->conf, "%s", du_tmp(file));
    int pl = snprintf(d->log, sizeof d->log, "%s.log", d->conf);
    cr_assert(pl > 0 && (size_t)pl < sizeof d->log, "path too long");
    du_write_file(d->conf, conf_text, strlen(conf_text));
    argv[n++] = du_prog("convd");
    argv[n++] = "-c";
    argv[n++] = d->conf;
    if (o && o->workers > 0) {
        snprintf(wbuf, sizeof wbuf, "%d", o->workers);
        argv[n++] = "--workers";
        argv[n++] = wbuf;
    }
    /* CVD_TEST_LOG_LEVEL=debug shows every connection in the logs (CVD_KEEP_TMP=1 keeps them) */
    const char *level = o && o->log_level ? o->log_level : getenv("CVD_TEST_LOG_LEVEL");
    if (level && *level) {
        argv[n++] = "--log-level";
        argv[n++] = level;
    }
    argv[n] = NULL;
    env[ne++] = du_asan_env();
    env[ne++] = "NOTIFY_SOCKET="; /* not ours to talk to unless a test says so */
    for (int i = 0; o && o->env_add && o->env_add[i] && ne < 15; i++)
        env[ne++] = o->env_add[i];
    env[ne] = NULL;
    /* later entries win: drop the default NOTIFY_SOCKET if the caller gave one */
    for (int i = 2; i < ne; i++)
        if (strncmp(env[i], "NOTIFY_SOCKET=", 14) == 0)
            env[1] = "CVD_TEST_NOTIFY=none";
    du_spawn_opts so = {.argv = argv,
                        .env_add = env,
                        .env_pid = o ? o->env_pid : NULL,
                        .err_path = d->log,
                        .fd3 = o ? o->fd3 : -1};
    if (o == NULL || o->fd3 == 0)
        so.fd3 = -1;
    d->pid = du_spawn(&so);
    d->running = 1;
    du_last_pid = d->pid;
    snprintf(du_last_log, sizeof du_last_log, "%s", d->log);
}

DU_FN void du_daemon_start(du_daemon *d, const char *conf_text, int workers)
{
    du_daemon_opts o = {.workers = workers, .fd3 = -1};
    du_daemon_start_opts(d, "convd.conf", conf_text, &o);
}

/* Waits until the log contains `text` (after `from` bytes); returns a pointer into a malloc'd
 * copy of the log (*logp, to free) at the match. Fails if the daemon exits first. */
DU_FN const char *du_daemon_wait_log(du_daemon *d, const char *text, size_t from, double timeout_s,
                                     char **logp)
{
    if (du_daemon_sanitized())
        timeout_s *= 3; /* ASan's or TSan's daemon opens its devices several times slower */
    double end = du_now() + timeout_s;
    for (int polls = 0;; polls++) {
        if (polls > 0)
            du_sleep_ms(5); /* beside a daemon starting on 2 cores, a spinning reader slows it */
        size_t len = 0;
        char *log = du_read_file(d->log, &len);
        const char *hit = log && len >= from ? strstr(log + from, text) : NULL;
        if (hit) {
            *logp = log;
            return hit;
        }
        int st;
        if (d->running && du_wait_pid(d->pid, 0, &st)) {
            d->running = 0;
            d->status = st;
            cr_assert_fail("convd exited (status 0x%x) before logging \"%s\"; its log:\n%s", st,
                           text, log ? log : "");
        }
        if (du_now() > end)
            cr_assert_fail("convd did not log \"%s\" within %.1f s; its log:\n%s", text, timeout_s,
                           log ? log : "");
        free(log);
        du_sleep_ms(10);
    }
}

/* The port of listener NAME, from the log's "listen NAME: HOST:PORT, ..." (the newest such
 * line after `from`). */
DU_FN int du_daemon_port_from(du_daemon *d, const char *name, size_t from)
{
    char key[160], *log;
    snprintf(key, sizeof key, "listen %s: ", name);
    const char *hit = du_daemon_wait_log(d, key, from, 15, &log);
    const char *next;
    while ((next = strstr(hit + 1, key)) != NULL)
        hit = next;
    const char *colon = strchr(hit + strlen(key), ',');
    cr_assert_not_null(colon);
    const char *p = colon;
    while (p > hit && p[-1] >= '0' && p[-1] <= '9')
        p--;
    int port = atoi(p);
    free(log);
    cr_assert(port > 0 && port < 65536, "no port in the log line for listener %s", name);
    return port;
}

DU_FN int du_daemon_port(du_daemon *d, const char *name)
{
    return du_daemon_port_from(d, name, 0);
}

DU_FN int du_daemon_metrics_port(du_daemon *d)
{
    char *log;
    const char *hit = du_daemon_wait_log(d, "metrics: http://127.0.0.1:", 0, 15, &log);
    int port = atoi(hit + strlen("metrics: http://127.0.0.1:"));
    free(log);
    cr_assert(port > 0 && port < 65536);
    return port;
}

DU_FN int du_daemon_alive(du_daemon *d)
{
    int st;
    if (d->running && du_wait_pid(d->pid, 0, &st)) {
        d->running = 0;
        d->status = st;
    }
    return d->running;
}

/* What each thread of a process is doing, for a daemon that did not stop: its name, state,
 * the signals pending for it and for the process, blocked and caught (hex masks), and the
 * system call it is in (/proc/PID/task/TID/syscall: number and arguments, "running" when in
 * none), wchan. Returns malloc'd text ("" when /proc cannot be read). */
DU_FN char *du_proc_threads(pid_t pid)
{
    char path[320]; /* a task's name is at most NAME_MAX */
    du_buf out = {0};
    du_buf_reserve(&out, 0); /* "" at least */
    snprintf(path, sizeof path, "/proc/%d/task", (int)pid);
    DIR *dir = opendir(path);
    if (!dir)
        return (char *)out.p;
    struct dirent *e;
    while ((e = readdir(dir)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        static const char *const keys[] = {
            "Name:", "State:", "SigPnd:", "ShdPnd:", "SigBlk:", "SigCgt:"};
        snprintf(path, sizeof path, "/proc/%d/task/%s/status", (int)pid, e->d_name);
        char *st = du_read_file(path, NULL);
        du_buf_printf(&out, "  thread %s:", e->d_name);
        for (size_t k = 0; st && k < sizeof keys / sizeof keys[0]; k++) {
            const char *h = strstr(st, keys[k]);
            if (!h)
                continue;
            int n = (int)strcspn(h, "\n");
            du_buf_printf(&out, " %.*s;", n, h);
        }
        free(st);
        static const char *const files[] = {"syscall", "wchan"};
        for (size_t k = 0; k < 2; k++) {
            snprintf(path, sizeof path, "/proc/%d/task/%s/%s", (int)pid, e->d_name, files[k]);
            char *t = du_read_file(path, NULL);
            if (t)
                du_buf_printf(&out, " %s: %.*s;", files[k], (int)strcspn(t, "\n"), t);
            free(t);
        }
        du_buf_printf(&out, "\n");
    }
    closedir(dir);
    return (char *)out.p;
}

/* Sends sig and waits up to timeout_s for the exit; returns the seconds it took (the test
 * fails if it does not exit: then it is killed, after its threads' state is read). */
DU_FN double du_daemon_stop_sig(du_daemon *d, int sig, double timeout_s)
{
    double t0 = du_now();
    int st = 0;
    if (!d->running)
        return 0;
    kill(d->pid, sig);
    if (!du_wait_pid(d->pid, timeout_s, &st)) {
        char *threads = du_proc_threads(d->pid);
        kill(d->pid, SIGKILL);
        du_wait_pid(d->pid, 5, &st);
        d->running = 0;
        char *log = du_daemon_log(d);
        cr_assert_fail("convd still running %.1f s after signal %d; its threads then:\n%sits "
                       "log:\n%s",
                       timeout_s, sig, threads, log);
    }
    d->running = 0;
    d->status = st;
    return du_now() - t0;
}

/* Whether the log holds a sanitizer report. */
DU_FN const char *du_sanitizer_report(const char *log)
{
    static const char *const marks[] = {"ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                                        "runtime error:", "WARNING: ThreadSanitizer",
                                        "ERROR: ThreadSanitizer"};
    for (size_t i = 0; i < sizeof marks / sizeof marks[0]; i++) {
        const char *h = strstr(log, marks[i]);
        if (h)
            return h;
    }
    return NULL;
}

/* Asserts the log holds no sanitizer report so far (the daemon may be running). */
DU_FN void du_daemon_check_log(du_daemon *d)
{
    char *log = du_daemon_log(d);
    const char *rep = du_sanitizer_report(log);
    cr_assert_null(rep, "convd's log has a sanitizer report:\n%s", rep);
    free(log);
}

/* SIGTERM, exit status 0 within timeout_s, no sanitizer report. */
DU_FN void du_daemon_finish(du_daemon *d, double timeout_s)
{
    du_daemon_stop_sig(d, SIGTERM, timeout_s);
    char *log = du_daemon_log(d);
    const char *rep = du_sanitizer_report(log);
    cr_assert_null(rep, "convd's log has a sanitizer report:\n%s", rep);
    cr_assert(WIFEXITED(d->status) && WEXITSTATUS(d->status) == 0,
              "convd: exit status 0x%x after SIGTERM (want exit 0); its log:\n%s", d->status, log);
    free(log);
}

/* Resident memory of a process, in KiB. */
DU_FN long du_vmrss_kb(pid_t pid)
{
    char path[64], *t;
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    t = du_read_file(path, NULL);
    cr_assert_not_null(t, "%s: %s", path, strerror(errno));
    const char *p = strstr(t, "VmRSS:");
    cr_assert_not_null(p);
    long kb = strtol(p + 6, NULL, 10);
    free(t);
    return kb;
}

/* ---- sockets ---------------------------------------------------------------------------- */

/* Connects to 127.0.0.1:port (blocking); buffer sizes set before connecting when > 0.
 * Returns the descriptor, or -errno. */
DU_FN int du_try_connect(int port, int rcvbuf, int sndbuf)
{
    struct sockaddr_in a;
    int one = 1;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert_geq(fd, 0, "socket: %s", strerror(errno));
    if (rcvbuf > 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    if (sndbuf > 0)
        setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

DU_FN int du_connect_buf(int port, int rcvbuf, int sndbuf)
{
    int fd = du_try_connect(port, rcvbuf, sndbuf);
    cr_assert_geq(fd, 0, "connect 127.0.0.1:%d: %s", port, strerror(-fd));
    return fd;
}

DU_FN int du_connect(int port)
{
    return du_connect_buf(port, 0, 0);
}

DU_FN void du_nonblock(int fd, int on)
{
    int fl = fcntl(fd, F_GETFL);
    fcntl(fd, F_SETFL, on ? fl | O_NONBLOCK : fl & ~O_NONBLOCK);
}

/* Close with a reset instead of a FIN. */
DU_FN void du_close_rst(int fd)
{
    struct linger lg = {1, 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    close(fd);
}

/* Sends all n bytes within timeout_s; 0, or -errno (EPIPE, ECONNRESET, ETIMEDOUT). */
DU_FN int du_send_all_t(int fd, const void *p, size_t n, double timeout_s)
{
    const uint8_t *b = p;
    double end = du_now() + timeout_s;
    while (n > 0) {
        ssize_t w = send(fd, b, n, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w > 0) {
            b += w;
            n -= (size_t)w;
            continue;
        }
        if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            return -errno;
        double left = end - du_now();
        if (left <= 0)
            return -ETIMEDOUT;
        struct pollfd pf = {fd, POLLOUT, 0};
        poll(&pf, 1, (int)(left * 1000) + 1);
    }
    return 0;
}

DU_FN void du_send_all(int fd, const void *p, size_t n)
{
    int rc = du_send_all_t(fd, p, n, 20);
    cr_assert_eq(rc, 0, "send of %zu bytes: %s", n, strerror(-rc));
}

/* Reads what arrives within timeout_s (waiting for the first bytes; then whatever follows
 * at once). Returns bytes read (> 0), 0 at EOF, -ETIMEDOUT, or -errno. */
DU_FN long du_recv_some(int fd, du_buf *out, size_t max, double timeout_s)
{
    struct pollfd pf = {fd, POLLIN, 0};
    int r;
    do
        r = poll(&pf, 1, (int)(timeout_s * 1000));
    while (r < 0 && errno == EINTR);
    if (r == 0)
        return -ETIMEDOUT;
    du_buf_reserve(out, max);
    ssize_t n = recv(fd, out->p + out->len, max, MSG_DONTWAIT);
    if (n < 0)
        return errno == EAGAIN ? -ETIMEDOUT : -errno;
    out->len += (size_t)n;
    out->p[out->len] = 0;
    return (long)n;
}

/* Reads until EOF; 1 at EOF, -ETIMEDOUT if timeout_s passes first, -errno on an error. */
DU_FN int du_recv_eof(int fd, du_buf *out, double timeout_s)
{
    double end = du_now() + timeout_s;
    for (;;) {
        double left = end - du_now();
        if (left <= 0)
            return -ETIMEDOUT;
        long n = du_recv_some(fd, out, 65536, left);
        if (n == 0)
            return 1;
        if (n < 0 && n != -ETIMEDOUT)
            return (int)n;
    }
}

/* Reads until out holds at least `want` bytes; 1, 0 at EOF, or -errno / -ETIMEDOUT. */
DU_FN int du_recv_atleast(int fd, du_buf *out, size_t want, double timeout_s)
{
    double end = du_now() + timeout_s;
    while (out->len < want) {
        double left = end - du_now();
        if (left <= 0)
            return -ETIMEDOUT;
        long n = du_recv_some(fd, out, 65536, left);
        if (n == 0)
            return 0;
        if (n < 0 && n != -ETIMEDOUT)
            return (int)n;
    }
    return 1;
}

/* ---- the metrics endpoint --------------------------------------------------------------- */

/* Whether the daemon pid is alive, and its sanitizer report or the end of its log (malloc'd):
 * what a failed request says, so that a daemon that died is not taken for a slow one. */
DU_FN char *du_daemon_state(pid_t pid, const char *log_path)
{
    const char *state = "no daemon started";
    if (pid > 0) {
        char proc[64];
        snprintf(proc, sizeof proc, "/proc/%d/stat", (int)pid);
        char *stat = du_read_file(proc, NULL);
        const char *rp = stat ? strrchr(stat, ')') : NULL; /* "pid (comm) S ..." */
        state = rp && rp[1] == ' ' && rp[2] != 'Z' ? "convd is running" : "convd has exited";
        free(stat);
    }
    char *log = log_path && *log_path ? du_read_file(log_path, NULL) : NULL;
    const char *rep = log ? du_sanitizer_report(log) : NULL;
    const char *tail = log ? log : "";
    if (rep == NULL && strlen(tail) > 2000)
        tail += strlen(tail) - 2000;
    const size_t n = strlen(state) + strlen(rep ? rep : tail) + 64;
    char *out = malloc(n);
    cr_assert_not_null(out);
    snprintf(out, n, "%s; its log%s:\n%s", state, rep ? "'s sanitizer report" : " (the end)",
             rep ? rep : tail);
    free(log);
    return out;
}

/* GET path; returns the HTTP status and the body in *body (malloc'd). */
DU_FN int du_http_get(int port, const char *path, char **body)
{
    char req[256];
    du_buf resp = {0};
    int fd = du_connect(port);
    snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", path);
    du_send_all(fd, req, strlen(req));
    int rc = du_recv_eof(fd, &resp, 10);
    close(fd);
    if (rc != 1 || resp.len <= 12 || strncmp((char *)resp.p, "HTTP/1.", 7) != 0) {
        char *why = du_daemon_state(du_last_pid, du_last_log);
        cr_assert_fail("GET %s: %s (%s); %s", path, rc != 1 ? "no complete answer" : "answered",
                       rc != 1  ? strerror(-rc)
                       : resp.p ? (char *)resp.p
                                : "",
                       why);
    }
    int status = atoi((char *)resp.p + 9);
    const char *b = strstr((char *)resp.p, "\r\n\r\n");
    *body = strdup(b ? b + 4 : "");
    du_buf_free(&resp);
    return status;
}

DU_FN char *du_metrics(int port)
{
    char *body;
    int st = du_http_get(port, "/metrics", &body);
    cr_assert_eq(st, 200, "GET /metrics: status %d", st);
    return body;
}

/* The value of a sample line "NAME{LABELS} VALUE" (series = NAME{LABELS}); NAN if absent. */
DU_FN double du_metric(const char *text, const char *series)
{
    size_t sl = strlen(series);
    for (const char *p = text; p && *p;) {
        if (strncmp(p, series, sl) == 0 && p[sl] == ' ')
            return strtod(p + sl + 1, NULL);
        p = strchr(p, '\n');
        if (p)
            p++;
    }
    return NAN;
}

DU_FN double du_metric_now(int port, const char *series)
{
    char *t = du_metrics(port);
    double v = du_metric(t, series);
    free(t);
    return v;
}

/* Waits until series >= want (metrics are updated by other threads a moment later). */
DU_FN double du_metric_wait(int port, const char *series, double want, double timeout_s)
{
    double end = du_now() + timeout_s, v;
    for (;;) {
        v = du_metric_now(port, series);
        if (v >= want || du_now() > end)
            return v;
        du_sleep_ms(20);
    }
}

/* ---- expected output -------------------------------------------------------------------- */

/* convd-run MODEL IN OUT --block N --quiet */
DU_FN void du_convd_run(const char *model, const char *in, const char *out, int block)
{
    char b[32];
    snprintf(b, sizeof b, "%d", block);
    const char *argv[] = {du_prog("convd-run"), model, in, out, "--block", b, "--quiet", NULL};
    du_proc p = du_run(argv, 60);
    cr_assert_eq(p.status, 0, "convd-run %s %s: exit %d: %s", model, in, p.status, p.err);
    du_proc_free(&p);
}

/* The stream convd-run computes (blocks of `block` frames, then the flush), in-process: for
 * many inputs at once. Returns malloc'd floats, *n_out frames. */
DU_FN float *du_ref_stream(cvd_model *m, int block, const float *in, size_t n_frames, size_t *n_out)
{
    cvd_net *net = NULL;
    cvd_err err = {0};
    const int ci = cvd_model_in_channels(m), co = cvd_model_out_channels(m);
    cr_assert_eq(cvd_net_create(m, block, &net, &err), 0, "%s", err.msg);
    const int mo = cvd_net_max_out(net);
    du_buf out = {0};
    float *tmp = malloc(sizeof(float) * (size_t)mo * (size_t)co);
    cr_assert_not_null(tmp);
    for (size_t pos = 0; pos < n_frames;) {
        int n = n_frames - pos < (size_t)block ? (int)(n_frames - pos) : block, no = 0;
        cr_assert_eq(cvd_net_process(net, in + pos * (size_t)ci, n, tmp, &no), 0);
        du_buf_add(&out, tmp, sizeof(float) * (size_t)no * (size_t)co);
        pos += (size_t)n;
    }
    for (;;) {
        int no = 0, more = cvd_net_flush(net, tmp, &no);
        cr_assert_geq(more, 0);
        du_buf_add(&out, tmp, sizeof(float) * (size_t)no * (size_t)co);
        if (more != 1)
            break;
    }
    free(tmp);
    cvd_net_destroy(net);
    *n_out = out.len / (sizeof(float) * (size_t)co);
    if (out.p == NULL)
        du_buf_reserve(&out, 0);
    return (float *)(void *)out.p;
}

DU_FN cvd_model *du_load_model(const char *path)
{
    cvd_model *m = NULL;
    cvd_err err = {0};
    cr_assert_eq(cvd_model_load(path, &m, &err), 0, "%s", err.msg);
    return m;
}

/* The s16 rule written out independently of proto/samples.c: round(clamp(y, -1, 32767/32768) *
 * 32768), halves away from zero; NaN 0. */
DU_FN int16_t du_s16(float y)
{
    if (isnan(y))
        return 0;
    double v = y;
    if (v < -1.0)
        v = -1.0;
    if (v > 32767.0 / 32768.0)
        v = 32767.0 / 32768.0;
    return (int16_t)lround(v * 32768.0);
}

/* floats -> "%.9g" lines of ch values joined by ',' */
DU_FN void du_lines(du_buf *b, const float *x, size_t n_frames, int ch)
{
    for (size_t f = 0; f < n_frames; f++)
        for (int c = 0; c < ch; c++)
            du_buf_printf(b, "%.9g%c", (double)x[f * (size_t)ch + (size_t)c],
                          c + 1 < ch ? ',' : '\n');
}

/* Index of the first differing byte, or n when equal (both n long). */
DU_FN size_t du_first_diff(const void *a, const void *b, size_t n)
{
    const uint8_t *x = a, *y = b;
    for (size_t i = 0; i < n; i++)
        if (x[i] != y[i])
            return i;
    return n;
}

/* Asserts got == want byte for byte, naming the first difference. */
#define du_assert_bytes(got, got_len, want, want_len, ...)                                         \
    do {                                                                                           \
        size_t du_gl_ = (got_len), du_wl_ = (want_len);                                            \
        size_t du_d_ = du_first_diff((got), (want), du_gl_ < du_wl_ ? du_gl_ : du_wl_);            \
        cr_assert(du_gl_ == du_wl_ && du_d_ == du_gl_,                                             \
                  "%s: %zu bytes received, %zu expected; first difference at byte %zu",            \
                  __VA_ARGS__, du_gl_, du_wl_, du_d_);                                             \
    } while (0)

/* ---- framed messages -------------------------------------------------------------------- */

DU_FN void du_fr_hello_v(du_buf *b, unsigned version, int role, int fmt, uint32_t rate,
                         int channels, uint32_t block, const char *model, const char *stream)
{
    cvd_fr_hello h = {.version = (uint16_t)version,
                      .role = (uint8_t)role,
                      .format = (uint8_t)fmt,
                      .rate = rate,
                      .channels = (uint16_t)channels,
                      .block = block,
                      .model = model,
                      .stream = stream};
    cvd_err err = {0};
    cvd_bytes cb = du_buf_room(b, 2 * CVD_FR_MAX_STRING + 64);
    cr_assert_eq(cvd_fr_put_hello(&cb, &h, &err), 0, "%s", err.msg);
    b->len += cb.len;
}

DU_FN void du_fr_hello(du_buf *b, int fmt, int channels, uint32_t block, const char *model,
                       const char *stream)
{
    du_fr_hello_v(b, CVD_FR_VERSION, CVD_ROLE_PROCESS, fmt, 0, channels, block, model, stream);
}

DU_FN void du_fr_subscribe(du_buf *b, int fmt, const char *stream)
{
    du_fr_hello_v(b, CVD_FR_VERSION, CVD_ROLE_SUBSCRIBE, fmt, 0, 0, 0, "", stream);
}

/* DATA of n frames (floats) converted to fmt. */
DU_FN void du_fr_data(du_buf *b, uint32_t seq, uint64_t first, int fmt, const float *x, size_t n,
                      int ch)
{
    cvd_err err = {0};
    cvd_bytes cb = du_buf_room(b, cvd_fr_data_size(n, cvd_sample_bytes(fmt) * (size_t)ch));
    cr_assert_eq(cvd_fr_put_data(&cb, seq, first, 0, fmt, x, n, ch, &err), 0, "%s", err.msg);
    b->len += cb.len;
}

DU_FN void du_fr_end(du_buf *b)
{
    cvd_bytes cb = du_buf_room(b, 16);
    cr_assert_eq(cvd_fr_put_end(&cb, NULL), 0);
    b->len += cb.len;
}

DU_FN void du_fr_ping(du_buf *b, uint64_t token)
{
    cvd_bytes cb = du_buf_room(b, 16);
    cr_assert_eq(cvd_fr_put_ping(&cb, token, NULL), 0);
    b->len += cb.len;
}

DU_FN void du_fr_bye(du_buf *b)
{
    cvd_bytes cb = du_buf_room(b, 16);
    cr_assert_eq(cvd_fr_put_bye(&cb, NULL), 0);
    b->len += cb.len;
}

/* A whole framed client stream: HELLO (hello_ch: the channels it names, 0 = the model's), the
 * frames (ch channels) in DATA messages of random sizes (1..max_frames), END. */
DU_FN void du_fr_stream(du_buf *b, cvd_rng *rng, int fmt, int hello_ch, int ch, uint32_t block,
                        const char *model, const float *x, size_t n_frames, size_t max_frames)
{
    uint32_t seq = 0;
    du_fr_hello(b, fmt, hello_ch, block, model, "");
    for (size_t pos = 0; pos < n_frames;) {
        size_t n = 1 + (size_t)(cvd_rng_next(rng) % max_frames);
        if (n > n_frames - pos)
            n = n_frames - pos;
        du_fr_data(b, seq++, pos, fmt, x + pos * (size_t)ch, n, ch);
        pos += n;
    }
    du_fr_end(b);
}

typedef struct du_fr_seg {
    uint64_t first_frame;
    uint32_t dropped;
    size_t n_frames;
    size_t offset; /* in data */
} du_fr_seg;

/* What a server sent, parsed. */
typedef struct du_fr_result {
    int accepted; /* ACCEPT first */
    cvd_fr_accept acc;
    char acc_model[CVD_FR_MAX_STRING + 1];
    du_buf data; /* DATA samples, concatenated */
    du_fr_seg *segs;
    size_t n_segs, cap_segs;
    size_t max_data_frames;
    uint64_t dropped_total;
    int ended;      /* END came */
    int after_end;  /* messages after END */
    int error_code; /* an ERROR's code (the first), 0 if none */
    char error_text[CVD_FR_MAX_STRING + 1];
    int n_errors;
    int byes;
    int pongs;
    uint64_t pong_token;
    int bad; /* the bytes are not a valid server stream */
    char bad_msg[CVD_ERR_MSG_MAX];
    size_t pending; /* bytes of an incomplete last message */
} du_fr_result;

DU_FN void du_fr_result_free(du_fr_result *r)
{
    du_buf_free(&r->data);
    free(r->segs);
    memset(r, 0, sizeof *r);
}

DU_FN void du_fr_parse(const uint8_t *p, size_t n, du_fr_result *r)
{
    cvd_fr_decoder *dec = NULL;
    cvd_err err = {0};
    memset(r, 0, sizeof *r);
    cr_assert_eq(cvd_fr_decoder_create(CVD_FR_CLIENT, 4u << 20, &dec, &err), 0, "%s", err.msg);
    size_t pos = 0;
    while (pos < n) {
        cvd_fr_msg m;
        size_t used = 0;
        int rc = cvd_fr_decode(dec, p + pos, n - pos, &used, &m, &err);
        pos += used;
        if (rc < 0) {
            r->bad = 1;
            int bl = snprintf(r->bad_msg, sizeof r->bad_msg, "%.400s (at byte %zu)", err.msg, pos);
            (void)bl;
            break;
        }
        if (rc == 0)
            break;
        if (r->ended)
            r->after_end++;
        switch (m.type) {
        case CVD_FR_ACCEPT:
            r->accepted = 1;
            r->acc = m.accept;
            snprintf(r->acc_model, sizeof r->acc_model, "%s", m.accept.model);
            r->acc.model = r->acc_model;
            break;
        case CVD_FR_DATA:
            if (r->n_segs == r->cap_segs) {
                r->cap_segs = r->cap_segs ? 2 * r->cap_segs : 256;
                r->segs = realloc(r->segs, r->cap_segs * sizeof *r->segs);
                cr_assert_not_null(r->segs);
            }
            r->segs[r->n_segs++] =
                (du_fr_seg){m.data.first_frame, m.data.dropped, m.data.n_frames, r->data.len};
            du_buf_add(&r->data, m.data.samples, m.data.bytes);
            if (m.data.n_frames > r->max_data_frames)
                r->max_data_frames = m.data.n_frames;
            r->dropped_total += m.data.dropped;
            break;
        case CVD_FR_END:
            r->ended = 1;
            break;
        case CVD_FR_ERROR:
            if (r->n_errors++ == 0) {
                r->error_code = m.error.code;
                snprintf(r->error_text, sizeof r->error_text, "%s", m.error.text);
            }
            break;
        case CVD_FR_BYE:
            r->byes++;
            break;
        case CVD_FR_PONG:
            r->pongs++;
            r->pong_token = m.token;
            break;
        default:
            break;
        }
    }
    /* (cvd_fr_decoder_finish, not _pending: the latter is not 0 after a whole message) */
    r->pending = cvd_fr_decoder_finish(dec, NULL) < 0 ? cvd_fr_decoder_pending(dec) : 0;
    cvd_fr_decoder_destroy(dec);
    if (r->data.p == NULL)
        du_buf_reserve(&r->data, 0);
}

/* ---- many clients at once --------------------------------------------------------------- */

typedef struct du_peer {
    int fd;
    const uint8_t *in; /* bytes to send */
    size_t in_len, sent;
    int shut_wr;         /* shutdown(SHUT_WR) once everything is sent (raw, line) */
    size_t max_write;    /* random write sizes 1..max_write (log-uniform) */
    int max_write_fixed; /* always max_write (as much as the socket takes) */
    size_t max_read;
    int no_read;       /* never read */
    size_t window;     /* > 0: at most this many input bytes beyond the output received */
    double out_per_in; /* output bytes per input byte, for the window */
    cvd_rng rng;
    du_buf out;
    int eof;
    int err; /* errno of a failed send or receive */
    double t_done;
} du_peer;

DU_FN size_t du_rand_size(cvd_rng *r, size_t max)
{
    if (max <= 1)
        return 1;
    int bits = 0;
    while (((size_t)1 << bits) < max)
        bits++;
    size_t lim = (size_t)1 << (cvd_rng_next(r) % (uint64_t)(bits + 1));
    size_t n = 1 + (size_t)(cvd_rng_next(r) % lim);
    return n > max ? max : n;
}

DU_FN void du_peer_init(du_peer *p, int fd, const void *in, size_t in_len, int shut_wr,
                        uint64_t seed)
{
    memset(p, 0, sizeof *p);
    p->fd = fd;
    p->in = in;
    p->in_len = in_len;
    p->shut_wr = shut_wr;
    p->max_write = 8192;
    p->max_read = 8192;
    cvd_rng_seed(&p->rng, seed);
    du_nonblock(fd, 1);
}

/* Runs the peers until each has seen EOF or an error, or timeout_s passes; returns the number
 * still unfinished. */
DU_FN int du_drive(du_peer *ps, int n, double timeout_s)
{
    struct pollfd *pf = calloc((size_t)n, sizeof *pf);
    double end = du_now() + timeout_s;
    cr_assert_not_null(pf);
    for (;;) {
        int open = 0;
        for (int i = 0; i < n; i++) {
            du_peer *p = &ps[i];
            pf[i].fd = -1;
            pf[i].events = 0;
            pf[i].revents = 0;
            if (p->eof || p->err)
                continue;
            open++;
            pf[i].fd = p->fd;
            int can_send = p->sent < p->in_len;
            if (can_send && p->window > 0) {
                double done_in = (double)p->out.len / (p->out_per_in > 0 ? p->out_per_in : 1);
                can_send = (double)p->sent - done_in < (double)p->window;
            }
            if (can_send)
                pf[i].events |= POLLOUT;
            if (!p->no_read)
                pf[i].events |= POLLIN;
        }
        if (open == 0)
            break;
        double left = end - du_now();
        if (left <= 0) {
            free(pf);
            return open;
        }
        int r = poll(pf, (nfds_t)n, left > 0.05 ? 50 : (int)(left * 1000) + 1);
        if (r < 0 && errno != EINTR)
            cr_assert_fail("poll: %s", strerror(errno));
        for (int i = 0; i < n; i++) {
            du_peer *p = &ps[i];
            if (pf[i].fd < 0)
                continue;
            if (pf[i].revents & POLLOUT) {
                size_t w = p->max_write_fixed ? p->max_write : du_rand_size(&p->rng, p->max_write);
                if (w > p->in_len - p->sent)
                    w = p->in_len - p->sent;
                ssize_t k = send(p->fd, p->in + p->sent, w, MSG_NOSIGNAL | MSG_DONTWAIT);
                if (k > 0) {
                    p->sent += (size_t)k;
                    if (p->sent == p->in_len && p->shut_wr)
                        shutdown(p->fd, SHUT_WR);
                } else if (k < 0 && errno != EAGAIN && errno != EINTR) {
                    p->err = errno;
                    p->t_done = du_now();
                    continue;
                }
            }
            if (pf[i].revents & (POLLIN | POLLHUP | POLLERR)) {
                if (p->no_read && !(pf[i].revents & POLLERR))
                    continue;
                size_t m = du_rand_size(&p->rng, p->max_read);
                du_buf_reserve(&p->out, m);
                ssize_t k = recv(p->fd, p->out.p + p->out.len, m, MSG_DONTWAIT);
                if (k > 0) {
                    p->out.len += (size_t)k;
                    p->out.p[p->out.len] = 0;
                } else if (k == 0) {
                    p->eof = 1;
                    p->t_done = du_now();
                } else if (errno != EAGAIN && errno != EINTR) {
                    p->err = errno;
                    p->t_done = du_now();
                }
            }
        }
    }
    free(pf);
    return 0;
}

#endif
