/* SPDX-License-Identifier: Apache-2.0 */
/* Metrics: see metrics.h. */
#include "metrics.h"

#include <dirent.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "convd_dsp.h" /* cvd_isa_active, for convd_build_info */

#include "nats.h"

/* upper bounds of the block-time histogram, in seconds */
static const double bucket_le[CVD_METRICS_BUCKETS] = {
    5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 5e-2, 1e-1};

static const char *const drop_names[] = {
#define X(id, s) s,
    CVD_DROP_REASONS(X)
#undef X
};
static const char *const disc_names[] = {
#define X(id, s) s,
    CVD_DISCONNECT_REASONS(X)
#undef X
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static cvd_stream_stats **streams;
static size_t n_streams, cap_streams;
static atomic_ullong dropped[CVD_DROP_COUNT];
static atomic_ullong disconnects[CVD_DISC_COUNT];
static atomic_ullong reloads_ok, reloads_failed;
static atomic_llong queue_bytes, clients;
static atomic_ullong events[CVD_EV_COUNT];
static atomic_llong stream_memory;
static atomic_ullong stream_memory_limit;

static const char *const event_names[] = {
#define X(id, name, help) name,
    CVD_EVENTS(X)
#undef X
};
static const char *const event_help[] = {
#define X(id, name, help) help,
    CVD_EVENTS(X)
#undef X
};

void cvd_metrics_event(int event, uint64_t n)
{
    if (event >= 0 && event < CVD_EV_COUNT)
        atomic_fetch_add_explicit(&events[event], n, memory_order_relaxed);
}

void cvd_metrics_stream_memory(int64_t delta)
{
    atomic_fetch_add(&stream_memory, delta);
}

int64_t cvd_metrics_stream_memory_now(void)
{
    return atomic_load(&stream_memory);
}

void cvd_metrics_stream_memory_limit(uint64_t limit)
{
    atomic_store(&stream_memory_limit, limit);
}

/* name cut to fit key (cap bytes with its NUL), not inside a UTF-8 character */
static void cut_name(char *key, size_t cap, const char *name)
{
    size_t n = strlen(name);
    if (n >= cap) {
        n = cap - 1;
        while (n > 0 && ((unsigned char)name[n] & 0xC0) == 0x80)
            n--; /* name[n] continues a character: cut before that character */
    }
    memcpy(key, name, n);
    key[n] = '\0';
}

/* Prometheus's label value escapes: backslash, double quote, line feed */
static void escape_label(char *out, size_t cap, const char *s)
{
    size_t o = 0;
    for (; *s && o + 3 < cap; s++) {
        if (*s == '\\' || *s == '"') {
            out[o++] = '\\';
            out[o++] = *s;
        } else if (*s == '\n') {
            out[o++] = '\\';
            out[o++] = 'n';
        } else {
            out[o++] = *s;
        }
    }
    out[o] = '\0';
}

/* Streams' names come from clients too (a published name): at most this many get counters of
 * their own, the rest share "_other", so a client cannot make the process grow without end. */
#define MAX_STREAM_STATS 1024

cvd_stream_stats *cvd_metrics_stream(const char *name)
{
    return cvd_metrics_series(CVD_SERIES_STREAM, name);
}

cvd_stream_stats *cvd_metrics_series(int kind, const char *name)
{
    cvd_stream_stats *s = NULL;
    char key[sizeof s->name];
    cut_name(key, sizeof key, name ? name : "");
    kind = kind == CVD_SERIES_LISTENER ? CVD_SERIES_LISTENER : CVD_SERIES_STREAM;
    pthread_mutex_lock(&lock);
    for (size_t i = 0; i < n_streams; i++)
        if (streams[i]->kind == kind && strcmp(streams[i]->name, key) == 0) {
            s = streams[i];
            goto out;
        }
    if (n_streams >= MAX_STREAM_STATS && strcmp(key, "_other") != 0) {
        pthread_mutex_unlock(&lock);
        return cvd_metrics_stream("_other");
    }
    if (n_streams == cap_streams) {
        size_t nc = cap_streams ? cap_streams * 2 : 16;
        cvd_stream_stats **ns = realloc(streams, nc * sizeof *ns);
        if (ns == NULL)
            goto out;
        streams = ns;
        cap_streams = nc;
    }
    s = calloc(1, sizeof *s);
    if (s == NULL)
        goto out;
    s->kind = kind;
    memcpy(s->name, key, sizeof key);
    escape_label(s->label, sizeof s->label, key);
    snprintf(s->labels, sizeof s->labels, "stream=\"%s\",kind=\"%s\"", s->label,
             kind == CVD_SERIES_LISTENER ? "listener" : "stream");
    streams[n_streams++] = s;
out:
    pthread_mutex_unlock(&lock);
    return s;
}

void cvd_metrics_block_time(cvd_stream_stats *s, uint64_t ns)
{
    int b = 0;
    double sec = (double)ns * 1e-9;
    if (s == NULL)
        return;
    while (b < CVD_METRICS_BUCKETS && sec > bucket_le[b])
        b++;
    atomic_fetch_add_explicit(&s->buckets[b], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&s->blocks, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&s->block_ns_sum, ns, memory_order_relaxed);
}

void cvd_metrics_dropped(int reason, uint64_t frames)
{
    if (reason >= 0 && reason < CVD_DROP_COUNT)
        atomic_fetch_add_explicit(&dropped[reason], frames, memory_order_relaxed);
}

void cvd_metrics_disconnect(int reason)
{
    if (reason >= 0 && reason < CVD_DISC_COUNT)
        atomic_fetch_add_explicit(&disconnects[reason], 1, memory_order_relaxed);
}

void cvd_metrics_reload(int ok)
{
    atomic_fetch_add(ok ? &reloads_ok : &reloads_failed, 1);
}

void cvd_metrics_queue_bytes(int64_t delta)
{
    atomic_fetch_add_explicit(&queue_bytes, delta, memory_order_relaxed);
}

void cvd_metrics_clients(int64_t delta)
{
    atomic_fetch_add(&clients, delta);
}

int64_t cvd_metrics_clients_now(void)
{
    return atomic_load(&clients);
}

static char build_version[64] = "unknown";

void cvd_metrics_set_version(const char *version)
{
    escape_label(build_version, sizeof build_version, version ? version : "unknown");
}

/* ---- the process, as Prometheus's client libraries name it (Linux's /proc) ------------------ */

/* The process's start, in seconds since the epoch: its start time in clock ticks after boot
 * (/proc/self/stat, field 22) plus the boot time (/proc/stat btime); -1 if unknown. */
static double process_start_time(void)
{
    char buf[1024];
    double btime = -1, start = -1;
    FILE *f = fopen("/proc/stat", "r");
    if (f) {
        while (fgets(buf, sizeof buf, f))
            if (strncmp(buf, "btime ", 6) == 0)
                btime = strtod(buf + 6, NULL);
        fclose(f);
    }
    f = fopen("/proc/self/stat", "r");
    if (f) {
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        buf[n] = '\0';
        fclose(f);
        /* after the command's closing parenthesis: field 3 (state) onwards */
        char *p = strrchr(buf, ')');
        long ticks = sysconf(_SC_CLK_TCK);
        if (p && ticks > 0) {
            p++;
            for (int field = 3; field < 22 && p; field++) {
                p = strchr(p + 1, ' ');
            }
            if (p)
                start = strtod(p + 1, NULL) / (double)ticks;
        }
    }
    return btime >= 0 && start >= 0 ? btime + start : -1;
}

static long count_open_fds(void)
{
    long n = 0;
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    if (d == NULL)
        return -1;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n - 1; /* the directory's own descriptor */
}

/* resident and virtual memory in bytes (/proc/self/statm: pages); 0 if unknown */
static void process_memory(double *rss, double *vsize)
{
    unsigned long size = 0, resident = 0;
    long page = sysconf(_SC_PAGESIZE);
    FILE *f = fopen("/proc/self/statm", "r");
    *rss = *vsize = 0;
    if (f == NULL)
        return;
    if (fscanf(f, "%lu %lu", &size, &resident) == 2 && page > 0) {
        *vsize = (double)size * (double)page;
        *rss = (double)resident * (double)page;
    }
    fclose(f);
}

/* a growing text buffer */
typedef struct sbuf {
    char *p;
    size_t len, cap;
    int failed;
} sbuf;

static void sb_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void sb_printf(sbuf *b, const char *fmt, ...)
{
    va_list ap;
    for (;;) {
        if (b->failed)
            return;
        va_start(ap, fmt);
        int n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->failed = 1;
            return;
        }
        if ((size_t)n < b->cap - b->len) {
            b->len += (size_t)n;
            return;
        }
        size_t nc = (b->cap + (size_t)n) * 2;
        char *np = realloc(b->p, nc);
        if (np == NULL) {
            b->failed = 1;
            return;
        }
        b->p = np;
        b->cap = nc;
    }
}

/* label values are names from the config: [A-Za-z0-9_.-], nothing to escape */
char *cvd_metrics_render(void)
{
    sbuf b = {malloc(4096), 0, 4096, 0};
    if (b.p == NULL)
        return NULL;
    b.p[0] = '\0';

    sb_printf(&b,
              "# HELP convd_build_info The daemon's version and the instruction set its kernels "
              "use; always 1.\n# TYPE convd_build_info gauge\n"
              "convd_build_info{version=\"%s\",isa=\"%s\"} 1\n",
              build_version, cvd_isa_name(cvd_isa_active()));
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) == 0)
        sb_printf(&b,
                  "# HELP process_cpu_seconds_total Total user and system CPU time spent in "
                  "seconds.\n# TYPE process_cpu_seconds_total counter\n"
                  "process_cpu_seconds_total %.6f\n",
                  (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec * 1e-6 +
                      (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec * 1e-6);
    double rss, vsize;
    process_memory(&rss, &vsize);
    if (rss > 0)
        sb_printf(&b,
                  "# HELP process_resident_memory_bytes Resident memory size in bytes.\n"
                  "# TYPE process_resident_memory_bytes gauge\n"
                  "process_resident_memory_bytes %.0f\n"
                  "# HELP process_virtual_memory_bytes Virtual memory size in bytes.\n"
                  "# TYPE process_virtual_memory_bytes gauge\n"
                  "process_virtual_memory_bytes %.0f\n",
                  rss, vsize);
    long fds = count_open_fds();
    if (fds >= 0)
        sb_printf(&b,
                  "# HELP process_open_fds Number of open file descriptors.\n"
                  "# TYPE process_open_fds gauge\nprocess_open_fds %ld\n",
                  fds);
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
        sb_printf(&b,
                  "# HELP process_max_fds Maximum number of open file descriptors.\n"
                  "# TYPE process_max_fds gauge\nprocess_max_fds %llu\n",
                  (unsigned long long)rl.rlim_cur);
    double start = process_start_time();
    if (start >= 0)
        sb_printf(&b,
                  "# HELP process_start_time_seconds Start time of the process since unix "
                  "epoch in seconds.\n# TYPE process_start_time_seconds gauge\n"
                  "process_start_time_seconds %.2f\n",
                  start);
    sb_printf(&b, "# HELP convd_clients Connected clients.\n# TYPE convd_clients gauge\n");
    sb_printf(&b, "convd_clients %lld\n", (long long)atomic_load(&clients));
    sb_printf(&b,
              "# HELP convd_queue_bytes Bytes queued for clients.\n"
              "# TYPE convd_queue_bytes gauge\nconvd_queue_bytes %lld\n",
              (long long)atomic_load(&queue_bytes));
    sb_printf(&b, "# HELP convd_dropped_frames_total Frames dropped, by reason.\n"
                  "# TYPE convd_dropped_frames_total counter\n");
    for (int i = 0; i < CVD_DROP_COUNT; i++)
        sb_printf(&b, "convd_dropped_frames_total{reason=\"%s\"} %llu\n", drop_names[i],
                  (unsigned long long)atomic_load(&dropped[i]));
    sb_printf(&b, "# HELP convd_disconnects_total Connections closed, by reason.\n"
                  "# TYPE convd_disconnects_total counter\n");
    for (int i = 0; i < CVD_DISC_COUNT; i++)
        sb_printf(&b, "convd_disconnects_total{reason=\"%s\"} %llu\n", disc_names[i],
                  (unsigned long long)atomic_load(&disconnects[i]));
    for (int i = 0; i < CVD_EV_COUNT; i++)
        sb_printf(&b, "# HELP %s %s\n# TYPE %s counter\n%s %llu\n", event_names[i], event_help[i],
                  event_names[i], event_names[i], (unsigned long long)atomic_load(&events[i]));
    sb_printf(
        &b,
        "# HELP convd_stream_memory_bytes Memory the open streams may take (their figures: "
        "model state, buffers, output queue).\n# TYPE convd_stream_memory_bytes gauge\n"
        "convd_stream_memory_bytes %lld\n"
        "# HELP convd_stream_memory_limit_bytes max_stream_memory.\n"
        "# TYPE convd_stream_memory_limit_bytes gauge\nconvd_stream_memory_limit_bytes %llu\n",
        (long long)atomic_load(&stream_memory),
        (unsigned long long)atomic_load(&stream_memory_limit));
    sb_printf(&b,
              "# HELP convd_reloads_total Configuration reloads, by result.\n"
              "# TYPE convd_reloads_total counter\n"
              "convd_reloads_total{result=\"ok\"} %llu\n"
              "convd_reloads_total{result=\"failed\"} %llu\n",
              (unsigned long long)atomic_load(&reloads_ok),
              (unsigned long long)atomic_load(&reloads_failed));

    pthread_mutex_lock(&lock);
    unsigned long long tin = 0, tout = 0;
    sb_printf(&b, "# HELP convd_stream_frames_in_total Frames received, per stream.\n"
                  "# TYPE convd_stream_frames_in_total counter\n");
    for (size_t i = 0; i < n_streams; i++) {
        unsigned long long v = atomic_load(&streams[i]->frames_in);
        tin += v;
        sb_printf(&b, "convd_stream_frames_in_total{%s} %llu\n", streams[i]->labels, v);
    }
    sb_printf(&b, "# HELP convd_stream_frames_out_total Frames sent, per stream.\n"
                  "# TYPE convd_stream_frames_out_total counter\n");
    for (size_t i = 0; i < n_streams; i++) {
        unsigned long long v = atomic_load(&streams[i]->frames_out);
        tout += v;
        sb_printf(&b, "convd_stream_frames_out_total{%s} %llu\n", streams[i]->labels, v);
    }
    sb_printf(&b, "# HELP convd_stream_clients Clients per stream.\n"
                  "# TYPE convd_stream_clients gauge\n");
    for (size_t i = 0; i < n_streams; i++)
        sb_printf(&b, "convd_stream_clients{%s} %lld\n", streams[i]->labels,
                  (long long)atomic_load(&streams[i]->clients));
    sb_printf(&b,
              "# HELP convd_frames_in_total Frames received, all streams.\n"
              "# TYPE convd_frames_in_total counter\nconvd_frames_in_total %llu\n"
              "# HELP convd_frames_out_total Frames sent, all streams.\n"
              "# TYPE convd_frames_out_total counter\nconvd_frames_out_total %llu\n",
              tin, tout);
    sb_printf(&b, "# HELP convd_block_seconds Model processing time per block.\n"
                  "# TYPE convd_block_seconds histogram\n");
    for (size_t i = 0; i < n_streams; i++) {
        cvd_stream_stats *s = streams[i];
        unsigned long long cum = 0;
        for (int k = 0; k <= CVD_METRICS_BUCKETS; k++) {
            cum += atomic_load(&s->buckets[k]);
            if (k < CVD_METRICS_BUCKETS)
                sb_printf(&b, "convd_block_seconds_bucket{%s,le=\"%g\"} %llu\n", s->labels,
                          bucket_le[k], cum);
            else
                sb_printf(&b, "convd_block_seconds_bucket{%s,le=\"+Inf\"} %llu\n", s->labels, cum);
        }
        sb_printf(&b, "convd_block_seconds_sum{%s} %.9f\n", s->labels,
                  (double)atomic_load(&s->block_ns_sum) * 1e-9);
        sb_printf(&b, "convd_block_seconds_count{%s} %llu\n", s->labels,
                  (unsigned long long)atomic_load(&s->blocks));
    }
    static const char *const xrun_kinds[4] = {"input_underflow", "input_overflow",
                                              "output_underflow", "output_overflow"};
    sb_printf(&b, "# HELP convd_audio_running 1 while a live audio stream's device runs.\n"
                  "# TYPE convd_audio_running gauge\n");
    for (size_t i = 0; i < n_streams; i++)
        if (atomic_load(&streams[i]->audio))
            sb_printf(&b, "convd_audio_running{stream=\"%s\"} %d\n", streams[i]->label,
                      atomic_load(&streams[i]->audio_running));
    sb_printf(&b, "# HELP convd_audio_xruns_total PortAudio callback status flags, by kind.\n"
                  "# TYPE convd_audio_xruns_total counter\n");
    for (size_t i = 0; i < n_streams; i++)
        for (int k = 0; k < 4 && atomic_load(&streams[i]->audio); k++)
            sb_printf(&b, "convd_audio_xruns_total{stream=\"%s\",kind=\"%s\"} %llu\n",
                      streams[i]->label, xrun_kinds[k],
                      (unsigned long long)atomic_load(&streams[i]->audio_xruns[k]));
    sb_printf(&b, "# HELP convd_audio_underruns_total Blocks played short (jitter buffer or "
                  "model output empty).\n# TYPE convd_audio_underruns_total counter\n");
    for (size_t i = 0; i < n_streams; i++)
        if (atomic_load(&streams[i]->audio))
            sb_printf(&b, "convd_audio_underruns_total{stream=\"%s\"} %llu\n", streams[i]->label,
                      (unsigned long long)atomic_load(&streams[i]->audio_underruns));
    sb_printf(&b, "# HELP convd_audio_device_failures_total Devices that stopped or stalled "
                  "while running.\n# TYPE convd_audio_device_failures_total counter\n");
    for (size_t i = 0; i < n_streams; i++)
        if (atomic_load(&streams[i]->audio))
            sb_printf(&b, "convd_audio_device_failures_total{stream=\"%s\"} %llu\n",
                      streams[i]->label,
                      (unsigned long long)atomic_load(&streams[i]->audio_failures));
    sb_printf(&b, "# HELP convd_audio_cpu_load PortAudio's estimate of the callback's share of "
                  "its time (0..1).\n# TYPE convd_audio_cpu_load gauge\n");
    for (size_t i = 0; i < n_streams; i++)
        if (atomic_load(&streams[i]->audio))
            sb_printf(&b, "convd_audio_cpu_load{stream=\"%s\"} %.3f\n", streams[i]->label,
                      (double)atomic_load(&streams[i]->audio_cpu_permille) * 1e-3);
    sb_printf(&b, "# HELP convd_audio_block_seconds_max Longest callback.\n"
                  "# TYPE convd_audio_block_seconds_max gauge\n");
    for (size_t i = 0; i < n_streams; i++)
        if (atomic_load(&streams[i]->audio))
            sb_printf(&b, "convd_audio_block_seconds_max{stream=\"%s\"} %.9f\n", streams[i]->label,
                      (double)atomic_load(&streams[i]->audio_block_ns_max) * 1e-9);
    sb_printf(&b, "# HELP convd_audio_latency_seconds Device input and output latency plus "
                  "the model's.\n# TYPE convd_audio_latency_seconds gauge\n");
    for (size_t i = 0; i < n_streams; i++)
        if (atomic_load(&streams[i]->audio))
            sb_printf(&b, "convd_audio_latency_seconds{stream=\"%s\"} %.6f\n", streams[i]->label,
                      (double)atomic_load(&streams[i]->audio_latency_us) * 1e-6);
    pthread_mutex_unlock(&lock);
    /* the [nats] groups' own (nats.h) */
    char *nats = cvd_nats_metrics_render();
    if (nats) {
        sb_printf(&b, "%s", nats);
        free(nats);
    }
    if (b.failed) {
        free(b.p);
        return NULL;
    }
    return b.p;
}
