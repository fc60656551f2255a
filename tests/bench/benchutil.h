/* SPDX-License-Identifier: Apache-2.0 */
/* Timing helpers for the benchmark programs: thread CPU time, medians; the JSON record each
 * run writes beside its table. */
#ifndef CONVD_BENCHUTIL_H
#define CONVD_BENCHUTIL_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static inline double bench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static inline int bench_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static inline double bench_median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, bench_cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* the JSON record of a run: BUILD/bench/PROGRAM.json beside the program (argv[0]'s folder),
 * or the path given with --json */
static inline void bench_json_path(char *buf, size_t len, const char *argv0, const char *program)
{
    const char *slash = strrchr(argv0, '/');
    if (slash == NULL)
        snprintf(buf, len, "%s.json", program);
    else
        snprintf(buf, len, "%.*s/%s.json", (int)(slash - argv0), argv0, program);
}

/* a JSON string: quotes and backslashes escaped, control characters dropped */
static inline void bench_json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            fputc('\\', f);
        if ((unsigned char)*s >= 0x20)
            fputc(*s, f);
    }
    fputc('"', f);
}

/* the current UTC time, ISO 8601 */
static inline void bench_utc(char *buf, size_t len)
{
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* "1,8,64" into blocks[] (at most max, each 1..65536): how many, or -1 if malformed */
static inline int bench_parse_blocks(const char *s, int *blocks, int max)
{
    int n = 0;
    while (*s && n < max) {
        char *end;
        long v = strtol(s, &end, 10);
        if (end == s || v < 1 || v > 65536)
            return -1;
        blocks[n++] = (int)v;
        s = *end == ',' ? end + 1 : end;
        if (*end && *end != ',')
            return -1;
    }
    return n;
}

#endif
