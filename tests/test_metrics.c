/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_metrics.c - server/metrics.h called directly (each test is its own process, so the
 * registry starts empty): the exposition is Prometheus's text format with every family
 * declared before its samples, counters and gauges read back exactly, the histogram's
 * buckets are cumulative with each bound inclusive, stream counters are found again by name,
 * and counting from several threads at once loses nothing.
 */
#include <criterion/criterion.h>
#include <ctype.h>
#include <fcntl.h>
#include <math.h>
#include <stdint.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "convd_dsp.h"
#include "metrics.h"
#include "testutil.h"

/* The value of the sample written exactly as `sample` ("name" or "name{labels}"); fails the
 * test when there is no such line. */
static double value_of(const char *text, const char *sample)
{
    size_t n = strlen(sample);
    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
        if (strncmp(p, sample, n) == 0 && p[n] == ' ')
            return strtod(p + n + 1, NULL);
    cr_assert_fail("no sample %s in:\n%s", sample, text);
    return 0;
}

static int has_line_prefix(const char *text, const char *prefix)
{
    size_t n = strlen(prefix);
    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
        if (strncmp(p, prefix, n) == 0)
            return 1;
    return 0;
}

static int name_char(int c, int first)
{
    return isalpha(c) || c == '_' || c == ':' || (!first && isdigit(c));
}

/* Every line is "# HELP name text", "# TYPE name counter|gauge|histogram" or a sample
 * "name{label="value",...} number" whose family (name without _bucket, _sum, _count for a
 * histogram) was declared by HELP and TYPE before it; no sample appears twice. */
static void check_exposition(const char *text)
{
    char declared[256][96];
    int help[256] = {0}, type_hist[256] = {0}, nd = 0;
    char *copy = strdup(text), *save = NULL, *samples[4096];
    int ns = 0;
    cr_assert(strlen(text) > 0 && text[strlen(text) - 1] == '\n', "the text ends a line");
    for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (strncmp(line, "# HELP ", 7) == 0 || strncmp(line, "# TYPE ", 7) == 0) {
            char name[96];
            const char *s = line + 7;
            size_t k = 0;
            while (name_char((unsigned char)s[k], k == 0) && k < sizeof name - 1)
                k++;
            cr_assert(k > 0 && s[k] == ' ', "bad declaration: %s", line);
            memcpy(name, s, k);
            name[k] = '\0';
            int i = 0;
            while (i < nd && strcmp(declared[i], name) != 0)
                i++;
            if (i == nd) {
                cr_assert_lt(nd, 256);
                strcpy(declared[nd++], name);
            }
            if (line[2] == 'H') {
                cr_assert_eq(help[i], 0, "HELP twice for %s", name);
                help[i] = 1;
                cr_assert(strlen(s + k + 1) > 0, "empty help for %s", name);
            } else {
                const char *t = s + k + 1;
                cr_assert(strcmp(t, "counter") == 0 || strcmp(t, "gauge") == 0 ||
                              strcmp(t, "histogram") == 0,
                          "type %s of %s", t, name);
                type_hist[i] = strcmp(t, "histogram") == 0 ? 2 : 1;
            }
            continue;
        }
        cr_assert_neq(line[0], '#', "an unknown comment: %s", line);
        /* a sample */
        size_t k = 0;
        while (name_char((unsigned char)line[k], k == 0))
            k++;
        cr_assert_gt(k, 0, "not a sample: %s", line);
        char fam[96];
        snprintf(fam, sizeof fam, "%.*s", (int)k, line);
        const char *p = line + k;
        if (*p == '{') {
            p++;
            for (;;) {
                size_t l = 0;
                while (name_char((unsigned char)p[l], l == 0))
                    l++;
                cr_assert(l > 0 && p[l] == '=' && p[l + 1] == '"', "bad label in %s", line);
                p += l + 2;
                while (*p && *p != '"') {
                    if (*p == '\\') { /* \\, \" and \n only */
                        cr_assert(p[1] == '\\' || p[1] == '"' || p[1] == 'n',
                                  "bad escape in a label: %s", line);
                        p++;
                    }
                    p++;
                }
                cr_assert_eq(*p, '"', "unterminated label value: %s", line);
                p++;
                if (*p == ',') {
                    p++;
                    continue;
                }
                cr_assert_eq(*p, '}', "bad labels: %s", line);
                p++;
                break;
            }
        }
        cr_assert_eq(*p, ' ', "no value: %s", line);
        char *end;
        strtod(p + 1, &end);
        cr_assert(end != p + 1 && *end == '\0', "bad value: %s", line);
        /* the family was declared before */
        int i = 0;
        while (i < nd && strcmp(declared[i], fam) != 0)
            i++;
        if (i == nd) {
            static const char *const suffixes[] = {"_bucket", "_sum", "_count"};
            for (int s = 0; s < 3 && i == nd; s++) {
                size_t fl = strlen(fam), sl = strlen(suffixes[s]);
                if (fl > sl && strcmp(fam + fl - sl, suffixes[s]) == 0) {
                    fam[fl - sl] = '\0';
                    i = 0;
                    while (i < nd && strcmp(declared[i], fam) != 0)
                        i++;
                    if (i < nd && type_hist[i] != 2)
                        i = nd;
                }
            }
        }
        cr_assert(i < nd && help[i] && type_hist[i], "sample before its HELP and TYPE: %s", line);
        /* unique */
        size_t key = (size_t)(p - line);
        for (int j = 0; j < ns; j++)
            cr_assert(!(strlen(samples[j]) >= key && strncmp(samples[j], line, key) == 0 &&
                        samples[j][key] == ' '),
                      "sample twice: %.*s", (int)key, line);
        cr_assert_lt(ns, 4096);
        samples[ns++] = line;
    }
    free(copy);
}

Test(metrics, exposition_is_prometheus_text_with_every_family_declared)
{
    cvd_stream_stats *a = cvd_metrics_stream("tcp-stream");
    cvd_stream_stats *b = cvd_metrics_stream("guitar");
    cr_assert(a && b);
    atomic_store(&b->audio, 1);
    cvd_metrics_block_time(a, 1234);
    cvd_metrics_dropped(CVD_DROP_NONFINITE, 3);
    cvd_metrics_event(CVD_EV_TLS_FAILED, 2);
    char *t = cvd_metrics_render();
    cr_assert_not_null(t);
    check_exposition(t);
    /* every reason of each labelled counter is there, zero or not */
    static const char *const drops[] = {"slow_subscriber", "nonfinite", "malformed", "shutdown",
                                        "audio_ring"};
    for (size_t i = 0; i < sizeof drops / sizeof drops[0]; i++) {
        char s[128];
        snprintf(s, sizeof s, "convd_dropped_frames_total{reason=\"%s\"}", drops[i]);
        cr_expect_eq(value_of(t, s), strcmp(drops[i], "nonfinite") == 0 ? 3.0 : 0.0, "%s", s);
    }
    cr_expect_eq(value_of(t, "convd_tls_handshake_failures_total"), 2.0);
    /* audio families only for audio streams */
    cr_expect(has_line_prefix(t, "convd_audio_running{stream=\"guitar\"} "));
    cr_expect(!has_line_prefix(t, "convd_audio_running{stream=\"tcp-stream\"}"), "%s", t);
    free(t);
}

Test(metrics, counters_and_gauges_read_back_exactly)
{
    cvd_metrics_dropped(CVD_DROP_SLOW_SUBSCRIBER, 5);
    cvd_metrics_dropped(CVD_DROP_SLOW_SUBSCRIBER, 7);
    cvd_metrics_dropped(CVD_DROP_AUDIO_RING, 1);
    cvd_metrics_dropped(-1, 100);             /* not a reason: ignored */
    cvd_metrics_dropped(CVD_DROP_COUNT, 100); /* nor this */
    cvd_metrics_disconnect(CVD_DISC_IDLE_TIMEOUT);
    cvd_metrics_disconnect(CVD_DISC_IDLE_TIMEOUT);
    cvd_metrics_disconnect(CVD_DISC_TLS);
    cvd_metrics_disconnect(CVD_DISC_COUNT);
    cvd_metrics_reload(1);
    cvd_metrics_reload(0);
    cvd_metrics_reload(0);
    cvd_metrics_clients(3);
    cvd_metrics_clients(-1);
    cvd_metrics_queue_bytes(4096);
    cvd_metrics_queue_bytes(-1000);
    cvd_metrics_stream_memory(1 << 20);
    cvd_metrics_stream_memory(-(1 << 18));
    cvd_metrics_stream_memory_limit(64u << 20);
    cvd_metrics_event(CVD_EV_FD_EXHAUSTED, 4);
    cvd_metrics_event(CVD_EV_COUNT, 9); /* not an event: ignored */
    cr_assert_eq(cvd_metrics_clients_now(), 2);
    cr_assert_eq(cvd_metrics_stream_memory_now(), (1 << 20) - (1 << 18));

    char *t = cvd_metrics_render();
    cr_assert_not_null(t);
    check_exposition(t);
    cr_expect_eq(value_of(t, "convd_dropped_frames_total{reason=\"slow_subscriber\"}"), 12.0);
    cr_expect_eq(value_of(t, "convd_dropped_frames_total{reason=\"audio_ring\"}"), 1.0);
    cr_expect_eq(value_of(t, "convd_dropped_frames_total{reason=\"malformed\"}"), 0.0);
    cr_expect_eq(value_of(t, "convd_disconnects_total{reason=\"idle_timeout\"}"), 2.0);
    cr_expect_eq(value_of(t, "convd_disconnects_total{reason=\"tls\"}"), 1.0);
    cr_expect_eq(value_of(t, "convd_disconnects_total{reason=\"closed\"}"), 0.0);
    cr_expect_eq(value_of(t, "convd_reloads_total{result=\"ok\"}"), 1.0);
    cr_expect_eq(value_of(t, "convd_reloads_total{result=\"failed\"}"), 2.0);
    cr_expect_eq(value_of(t, "convd_clients"), 2.0);
    cr_expect_eq(value_of(t, "convd_queue_bytes"), 3096.0);
    cr_expect_eq(value_of(t, "convd_stream_memory_bytes"), (double)((1 << 20) - (1 << 18)));
    cr_expect_eq(value_of(t, "convd_stream_memory_limit_bytes"), (double)(64u << 20));
    cr_expect_eq(value_of(t, "convd_accept_fd_exhausted_total"), 4.0);
    free(t);
}

/* Each bound is inclusive (a block of exactly 5 us counts under le="5e-06"), the buckets
 * are cumulative, +Inf is the count, and the sum is the total time. */
Test(metrics, histogram_bounds_are_inclusive_and_cumulative)
{
    static const double le[CVD_METRICS_BUCKETS] = {
        5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 5e-2, 1e-1};
    cvd_stream_stats *s = cvd_metrics_stream("h");
    cr_assert_not_null(s);
    uint64_t total_ns = 0, count = 0;
    unsigned long long want[CVD_METRICS_BUCKETS + 1] = {0};
    for (int k = 0; k < CVD_METRICS_BUCKETS; k++) {
        uint64_t at = (uint64_t)(le[k] * 1e9 + 0.5);
        cvd_metrics_block_time(s, at);     /* on the bound: this bucket */
        cvd_metrics_block_time(s, at + 1); /* just past it: the next */
        want[k]++;
        want[k + 1]++;
        total_ns += 2 * at + 1;
        count += 2;
    }
    cvd_metrics_block_time(s, 0);
    want[0]++;
    cvd_metrics_block_time(s, 3000000000ull); /* 3 s: only +Inf */
    want[CVD_METRICS_BUCKETS]++;
    total_ns += 3000000000ull;
    count += 2;
    cvd_metrics_block_time(NULL, 5); /* no stream: ignored */

    char *t = cvd_metrics_render();
    cr_assert_not_null(t);
    check_exposition(t);
    unsigned long long cum = 0;
    for (int k = 0; k <= CVD_METRICS_BUCKETS; k++) {
        char sample[128];
        cum += want[k];
        if (k < CVD_METRICS_BUCKETS)
            snprintf(sample, sizeof sample,
                     "convd_block_seconds_bucket{stream=\"h\",kind=\"stream\",le=\"%g\"}", le[k]);
        else
            snprintf(sample, sizeof sample,
                     "convd_block_seconds_bucket{stream=\"h\",kind=\"stream\",le=\"+Inf\"}");
        cr_expect_eq(value_of(t, sample), (double)cum, "%s", sample);
    }
    cr_expect_eq(value_of(t, "convd_block_seconds_count{stream=\"h\",kind=\"stream\"}"),
                 (double)count);
    double sum = value_of(t, "convd_block_seconds_sum{stream=\"h\",kind=\"stream\"}");
    cr_expect(fabs(sum - (double)total_ns * 1e-9) < 1e-9, "sum %.9f, want %.9f", sum,
              (double)total_ns * 1e-9);
    free(t);
}

/* A stream's counters are found again by name (also a name as long as the field holds), and
 * the all-streams totals are their sums. */
Test(metrics, streams_are_found_by_name_and_summed)
{
    char longname[80];
    memset(longname, 'n', 71);
    longname[71] = '\0';
    cvd_stream_stats *a = cvd_metrics_stream("a"), *b = cvd_metrics_stream("b");
    cvd_stream_stats *l = cvd_metrics_stream(longname);
    cr_assert(a && b && l && a != b);
    cr_assert_eq(cvd_metrics_stream("a"), a);
    cr_assert_eq(cvd_metrics_stream(longname), l);
    atomic_fetch_add(&a->frames_in, 10);
    atomic_fetch_add(&b->frames_in, 32);
    atomic_fetch_add(&a->frames_out, 7);
    atomic_fetch_add(&b->clients, 2);
    char *t = cvd_metrics_render();
    cr_assert_not_null(t);
    check_exposition(t);
    cr_expect_eq(value_of(t, "convd_stream_frames_in_total{stream=\"a\",kind=\"stream\"}"), 10.0);
    cr_expect_eq(value_of(t, "convd_stream_frames_in_total{stream=\"b\",kind=\"stream\"}"), 32.0);
    cr_expect_eq(value_of(t, "convd_frames_in_total"), 42.0);
    cr_expect_eq(value_of(t, "convd_frames_out_total"), 7.0);
    cr_expect_eq(value_of(t, "convd_stream_clients{stream=\"b\",kind=\"stream\"}"), 2.0);
    free(t);
}

/* ---- from several threads ------------------------------------------------------------------ */

#define THREADS 4
#define ROUNDS 20000

static void *hammer(void *arg)
{
    char name[16];
    snprintf(name, sizeof name, "s%d", (int)(intptr_t)arg % 2);
    for (int i = 0; i < ROUNDS; i++) {
        cvd_stream_stats *s = cvd_metrics_stream(name);
        cvd_metrics_block_time(s, (uint64_t)(i % 200) * 1000);
        cvd_metrics_dropped(CVD_DROP_MALFORMED, 1);
        cvd_metrics_clients(1);
        cvd_metrics_clients(-1);
        if (i % 1000 == 0)
            free(cvd_metrics_render()); /* a scrape in the middle */
    }
    return NULL;
}

Test(metrics, counting_from_several_threads_loses_nothing)
{
    pthread_t th[THREADS];
    for (int i = 0; i < THREADS; i++)
        cr_assert_eq(pthread_create(&th[i], NULL, hammer, (void *)(intptr_t)i), 0);
    for (int i = 0; i < THREADS; i++)
        pthread_join(th[i], NULL);
    char *t = cvd_metrics_render();
    cr_assert_not_null(t);
    check_exposition(t);
    cr_expect_eq(value_of(t, "convd_dropped_frames_total{reason=\"malformed\"}"),
                 (double)THREADS * ROUNDS);
    cr_expect_eq(value_of(t, "convd_block_seconds_count{stream=\"s0\",kind=\"stream\"}"),
                 (double)THREADS / 2 * ROUNDS);
    cr_expect_eq(value_of(t, "convd_block_seconds_count{stream=\"s1\",kind=\"stream\"}"),
                 (double)THREADS / 2 * ROUNDS);
    cr_expect_eq(value_of(t, "convd_clients"), 0.0);
    free(t);
}

/* Stream names come from clients too (a framed producer's HELLO names the stream it
 * publishes, up to 1024 bytes of UTF-8): a name longer than the field is still one stream,
 * found again, and quotes, backslashes and line ends in a name are escaped as Prometheus's
 * format says, so that no name can break the page for everyone. */
Test(metrics, names_from_clients_cannot_break_the_page)
{
    char longname[1025];
    memset(longname, 'x', 1024);
    longname[1024] = '\0';
    cvd_stream_stats *l = cvd_metrics_stream(longname);
    cr_assert_not_null(l);
    cr_assert_eq(cvd_metrics_stream(longname), l, "a long name made a second entry");
    cvd_stream_stats *q = cvd_metrics_stream("a\"b\\c\nd");
    cr_assert_not_null(q);
    atomic_fetch_add(&q->frames_in, 5);
    char *t = cvd_metrics_render();
    cr_assert_not_null(t);
    check_exposition(t);
    cr_expect_eq(
        value_of(t, "convd_stream_frames_in_total{stream=\"a\\\"b\\\\c\\nd\",kind=\"stream\"}"),
        5.0);
    free(t);
}

/* A listener and a stream of the same name are two series, told apart by `kind`; the
 * all-streams totals count both. */
Test(metrics, listener_and_stream_of_one_name_are_two_series)
{
    cvd_stream_stats *l = cvd_metrics_series(CVD_SERIES_LISTENER, "same");
    cvd_stream_stats *s = cvd_metrics_series(CVD_SERIES_STREAM, "same");
    cr_assert(l && s);
    cr_assert_neq(l, s, "one entry for a listener and a stream named alike");
    cr_assert_eq(cvd_metrics_stream("same"), s);
    cr_assert_eq(cvd_metrics_series(CVD_SERIES_LISTENER, "same"), l);
    atomic_fetch_add(&l->frames_in, 3);
    atomic_fetch_add(&s->frames_in, 4);
    cvd_metrics_block_time(l, 1000);
    char *t = cvd_metrics_render();
    cr_assert_not_null(t);
    check_exposition(t);
    cr_expect_eq(value_of(t, "convd_stream_frames_in_total{stream=\"same\",kind=\"listener\"}"),
                 3.0);
    cr_expect_eq(value_of(t, "convd_stream_frames_in_total{stream=\"same\",kind=\"stream\"}"), 4.0);
    cr_expect_eq(value_of(t, "convd_block_seconds_count{stream=\"same\",kind=\"listener\"}"), 1.0);
    cr_expect_eq(value_of(t, "convd_block_seconds_count{stream=\"same\",kind=\"stream\"}"), 0.0);
    cr_expect_eq(value_of(t, "convd_frames_in_total"), 7.0);
    free(t);
}

/* convd_build_info and the process_* families Prometheus's client libraries export, with
 * their HELP and TYPE lines and values that describe this process. */
Test(metrics, build_info_and_process_metrics)
{
    cvd_metrics_set_version("1.2.3-test");
    char *t = cvd_metrics_render();
    cr_assert_not_null(t);
    check_exposition(t);
    char want[160];
    snprintf(want, sizeof want, "convd_build_info{version=\"1.2.3-test\",isa=\"%s\"}",
             cvd_isa_name(cvd_isa_active()));
    cr_expect_eq(value_of(t, want), 1.0, "%s in:\n%s", want, t);
    cr_expect(strstr(t, "# TYPE convd_build_info gauge\n"));
    static const char *const fams[][2] = {{"process_cpu_seconds_total", "counter"},
                                          {"process_resident_memory_bytes", "gauge"},
                                          {"process_open_fds", "gauge"},
                                          {"process_start_time_seconds", "gauge"}};
    for (int i = 0; i < 4; i++) {
        char type[128], help[128];
        snprintf(type, sizeof type, "# TYPE %s %s\n", fams[i][0], fams[i][1]);
        snprintf(help, sizeof help, "# HELP %s ", fams[i][0]);
        cr_expect(strstr(t, type), "no \"%s\"", type);
        cr_expect(strstr(t, help), "no \"%s\"", help);
    }
    double cpu = value_of(t, "process_cpu_seconds_total");
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double cpu_now = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec * 1e-6 +
                     (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec * 1e-6;
    cr_expect(cpu >= 0 && cpu <= cpu_now + 1e-6, "cpu %g s, getrusage says %g s", cpu, cpu_now);
    double rss = value_of(t, "process_resident_memory_bytes");
    cr_expect(rss > 1e5 && rss < 1e11, "resident memory %g bytes", rss);
    /* descriptors: at least the three standard ones; one more opened here shows */
    double fds = value_of(t, "process_open_fds");
    cr_expect(fds >= 3 && fds < 100000, "open fds %g", fds);
    int extra = open("/dev/null", O_RDONLY);
    cr_assert_geq(extra, 0);
    char *t2 = cvd_metrics_render();
    cr_assert_not_null(t2);
    cr_expect_eq(value_of(t2, "process_open_fds"), fds + 1, "an open descriptor more is not seen");
    close(extra);
    double start = value_of(t, "process_start_time_seconds"), now = (double)time(NULL);
    cr_expect(start > now - 86400.0 && start <= now + 1.0, "start %.0f, now %.0f", start, now);
    free(t2);
    free(t);
}
