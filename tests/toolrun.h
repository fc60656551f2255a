/* SPDX-License-Identifier: Apache-2.0 */
/*
 * toolrun.h - running the built programs from a test, for the suites that do (tools,
 * datafiles): a temporary folder per test, the programs beside the test binary (or in
 * CVD_BUILD_DIR) run through posix_spawn with their standard streams in files, float32 files.
 * Include it in one test file per suite, which declares
 *     TestSuite(NAME, .init = make_tmpdir, .fini = remove_tmpdir);
 */
#ifndef CONVD_TOOLRUN_H
#define CONVD_TOOLRUN_H

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <math.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"

extern char **environ;

#ifndef PATH_CAP
#define PATH_CAP 1024
#endif

/* printf into a path buffer; a path that does not fit fails the test. */
static inline void fmt_path(char *buf, size_t cap, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

static inline void fmt_path(char *buf, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, cap, fmt, ap);
    va_end(ap);
    cr_assert(n >= 0 && (size_t)n < cap, "path too long: %s", buf);
}

/* ---- a temporary folder per test ------------------------------------------------------- */

static char tmpdir[PATH_CAP];

static inline void make_tmpdir(void)
{
    const char *base = getenv("TMPDIR");
    fmt_path(tmpdir, sizeof tmpdir, "%s/convd-tools-XXXXXX", base && *base ? base : "/tmp");
    cr_assert_not_null(mkdtemp(tmpdir), "mkdtemp(%s): %s", tmpdir, strerror(errno));
}

static inline int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

static inline void remove_tmpdir(void)
{
    if (tmpdir[0] != '\0')
        nftw(tmpdir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    tmpdir[0] = '\0';
}

/* A path in the test's folder; each call returns another of 32 buffers. */
static inline const char *tmp(const char *name)
{
    static char bufs[32][PATH_CAP];
    static int next;
    char *b = bufs[next++ % 32];
    fmt_path(b, PATH_CAP, "%s/%s", tmpdir, name);
    return b;
}

static inline int file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* ---- running the programs --------------------------------------------------------------- */

/* The folder the programs are in: CVD_BUILD_DIR, else this binary's own folder. */
static inline const char *build_dir(void)
{
    static char dir[PATH_CAP];
    const char *env = getenv("CVD_BUILD_DIR");
    ssize_t n;
    if (env && *env)
        return env;
    if (dir[0])
        return dir;
    n = readlink("/proc/self/exe", dir, sizeof dir - 1);
    if (n > 0) {
        char *slash;
        dir[n] = '\0';
        slash = strrchr(dir, '/');
        if (slash) {
            *slash = '\0';
            return dir;
        }
    }
    snprintf(dir, sizeof dir, "./build");
    return dir;
}

typedef struct proc {
    int status; /* exit status; 128 + signal if killed */
    char *out;  /* standard output, NUL-terminated */
    size_t out_len;
    char *err; /* standard error */
} proc;

static inline void proc_free(proc *p)
{
    free(p->out);
    free(p->err);
    memset(p, 0, sizeof *p);
}

/* Runs build_dir()/tool with args (NULL-terminated), standard input from in_path (NULL:
 * /dev/null); captures its output and error streams. */
static inline proc run_argv(const char *tool, const char *in_path, const char *const *args)
{
    char prog[PATH_CAP];
    const char *argv[64];
    int n = 0, wst = 0;
    pid_t pid;
    posix_spawn_file_actions_t fa;
    proc p = {0};
    const char *out_path = tmp("stdout.txt"), *err_path = tmp("stderr.txt");

    fmt_path(prog, sizeof prog, "%s/%s", build_dir(), tool);
    cr_assert(access(prog, X_OK) == 0,
              "%s: not found or not executable (build the tools with make; CVD_BUILD_DIR "
              "chooses another folder)",
              prog);
    argv[n++] = prog;
    for (int i = 0; args[i] != NULL; i++) {
        cr_assert_lt(n, 63);
        argv[n++] = args[i];
    }
    argv[n] = NULL;
    cr_assert_eq(posix_spawn_file_actions_init(&fa), 0);
    posix_spawn_file_actions_addopen(&fa, 0, in_path ? in_path : "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, out_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_addopen(&fa, 2, err_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int rc = posix_spawn(&pid, prog, &fa, NULL, (char *const *)argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    cr_assert_eq(rc, 0, "posix_spawn(%s): %s", prog, strerror(rc));
    while (waitpid(pid, &wst, 0) < 0)
        cr_assert_eq(errno, EINTR, "waitpid: %s", strerror(errno));
    p.status = WIFEXITED(wst) ? WEXITSTATUS(wst) : 128 + (WIFSIGNALED(wst) ? WTERMSIG(wst) : 0);
    p.out = tu_read_file(out_path, &p.out_len);
    p.err = tu_read_file(err_path, NULL);
    cr_assert(p.out && p.err, "cannot read the captured output of %s", tool);
    return p;
}

#define RUN(tool, ...) run_argv(tool, NULL, (const char *const[]){__VA_ARGS__, NULL})
#define RUN_IN(tool, in, ...) run_argv(tool, in, (const char *const[]){__VA_ARGS__, NULL})

/* Asserts the exit status, showing what the program said when it differs. */
static inline void expect_status(const proc *p, int want, const char *what)
{
    cr_assert_eq(p->status, want, "%s: exit status %d, want %d; stderr:\n%s", what, p->status, want,
                 p->err);
}

/* ---- float files ------------------------------------------------------------------------ */

/* A little-endian float32 file; returns malloc'd floats, *n of them, or NULL. */
static inline float *read_f32(const char *path, long *n)
{
    size_t len;
    char *b = tu_read_file(path, &len);
    float *x;
    if (b == NULL)
        return NULL;
    *n = (long)(len / 4);
    x = malloc(sizeof(float) * ((size_t)*n + 1));
    for (long i = 0; i < *n; i++) {
        unsigned char *q = (unsigned char *)b + 4 * i;
        uint32_t u =
            (uint32_t)q[0] | (uint32_t)q[1] << 8 | (uint32_t)q[2] << 16 | (uint32_t)q[3] << 24;
        memcpy(&x[i], &u, 4);
    }
    free(b);
    return x;
}

static inline void write_f32(const char *path, const float *x, long n)
{
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f, "%s: %s", path, strerror(errno));
    for (long i = 0; i < n; i++) {
        uint32_t u;
        unsigned char q[4];
        memcpy(&u, &x[i], 4);
        q[0] = (unsigned char)u, q[1] = (unsigned char)(u >> 8);
        q[2] = (unsigned char)(u >> 16), q[3] = (unsigned char)(u >> 24);
        cr_assert_eq(fwrite(q, 1, 4, f), 4u);
    }
    cr_assert_eq(fclose(f), 0);
}

static inline double max_abs_diff(const float *a, const float *b, long n)
{
    double m = 0;
    for (long i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (!(d <= m)) /* NaN counts as infinitely wrong */
            m = isnan(d) ? INFINITY : d;
    }
    return m;
}

#endif
