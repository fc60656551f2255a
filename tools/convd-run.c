/*
 * convd-run: runs an audio file through a model.
 *
 *   convd-run MODEL INPUT OUTPUT [--block N] [--offline] [--hop N] [--weights FILE]
 *             [--format f32|csv|npy] [--csv-header|--no-csv-header] [--columns LIST]
 *             [--time-column COL] [--quiet]
 *
 * Streams INPUT through the model in blocks of N frames (cvd_net_process), then flushes the
 * tail (cvd_net_flush until it reports the end), writing every output frame as it comes: the
 * output equals the offline result on the whole input, which --offline computes directly
 * (cvd_model_forward, the whole input in memory). A windowed model (docs/KERAS.md) writes one
 * record per window of its input length, the windows --hop frames apart. csv and npy input
 * can have columns chosen and a time column passed through to a csv output, which starts
 * with a header naming its columns. See docs/TOOLS.md.
 *
 * Exit status: 0 success, 1 a runtime or input error, 2 a usage error.
 */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "audiofile.h"
#include "convd_version.h"
#include "convd_dsp.h"
#include "convd_model.h"

#define PROG "convd-run"
#define DEFAULT_BLOCK 64
#define MAX_BLOCK (1 << 20)
#define DEFAULT_RATE 48000.0
#define PROGRESS_MIN_SECONDS 10.0

typedef struct options {
    const char *model, *input, *output;
    const char *weights; /* --weights: MODEL is a Keras config JSON */
    long hop;            /* --hop: windowed models; 0 the window length */
    int block;
    int offline;
    int quiet;
    cvd_af_format format; /* of "-" (and of files with other extensions) */
    cvd_af_header header; /* csv input: a header row? (none: no header on csv output) */
    const char *columns;  /* --columns */
    const char *time_column; /* --time-column */
} options;

static void usage(FILE *f)
{
    fprintf(f,
            "usage: " PROG " MODEL INPUT OUTPUT [--block N] [--offline] [--hop N] "
            "[--weights FILE]\n"
            "                 [--format f32|csv|npy] [--csv-header|--no-csv-header]\n"
            "                 [--columns LIST] [--time-column COL] [--quiet]\n"
            "\n"
            "Runs INPUT through MODEL (.nam, .json, .keras, .h5, or CONFIG.json+WEIGHTS.h5) and\n"
            "writes the output frames to OUTPUT. The input is streamed in blocks of N frames,\n"
            "then the model's tail is flushed; the result equals the offline computation on the\n"
            "whole input. A windowed model (Flatten, global pooling, ...) writes one record per\n"
            "window of its input length.\n"
            "\n"
            "  --block N        frames per block, 1 to %d (default %d)\n"
            "  --offline        compute the whole input at once instead of streaming\n"
            "  --hop N          windowed models: windows N frames apart (default: the window\n"
            "                   length, so windows do not overlap)\n"
            "  --weights FILE   MODEL is a Keras model config (model.to_json()) and FILE its\n"
            "                   weights (.h5 or .weights.h5)\n"
            "  --format FMT     f32, csv or npy: the format of '-' (standard input or output),\n"
            "                   and of files whose extension says nothing\n"
            "  --csv-header     csv input: the first line is a header row (by default it is when\n"
            "                   none of its fields is a number)\n"
            "  --no-csv-header  csv input: no header row; csv output: no header line\n"
            "  --columns LIST   csv and npy input: the columns that are the model's channels,\n"
            "                   by index from 1 or by header name: 2,3 or 2-4 or x,y,z\n"
            "                   (default: every column but the time column)\n"
            "  --time-column COL  csv and npy input: a column (index or name) that is not a\n"
            "                   channel; its text is written first on each line of a csv\n"
            "                   output (a window's record: its last frame's)\n"
            "  -q, --quiet      no progress bar and no summary on standard error\n"
            "  -h, --help       this text\n"
            "  --version        the version\n"
            "\n"
            "Formats, by extension: .wav, .flac, .aiff, .ogg and whatever else libsndfile\n"
            "handles (written as 32-bit float where the container allows it); .f32 raw\n"
            "little-endian float32; .csv one frame per line, values separated by commas\n"
            "(written after a header line naming the columns); .npy NumPy arrays (frames,\n"
            "channels), float32 or float64 in, float32 out. The output has the model's output\n"
            "channels and the input's sample rate (raw, csv and npy input: the model's, if it\n"
            "declares one). An input shorter than one window (or than the model needs for one\n"
            "output frame) gives a warning and exit status 1.\n"
            "\n"
            "Exit status: 0 success, 1 runtime or input error, 2 usage error.\n"
            "Documentation: " PROG "(1); " CVD_DOCDIR "/TOOLS.md\n",
            MAX_BLOCK, DEFAULT_BLOCK);
}

static int usage_error(const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;

static int usage_error(const char *fmt, ...)
{
    va_list ap;
    fputs(PROG ": ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs("\n(" PROG " --help shows the usage)\n", stderr);
    return 2;
}

static int parse_block(const char *s, int *out)
{
    char *end;
    long v;
    errno = 0;
    v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < 1 || v > MAX_BLOCK)
        return usage_error("--block %s: must be an integer from 1 to %d", s, MAX_BLOCK);
    *out = (int)v;
    return 0;
}

/* Returns 0, 2 (usage error) or -1 (help printed: exit 0). */
static int parse_args(int argc, char **argv, options *o)
{
    const char *pos[3];
    int npos = 0, only_positionals = 0;

    memset(o, 0, sizeof *o);
    o->block = DEFAULT_BLOCK;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *val = NULL;
        if (only_positionals || a[0] != '-' || strcmp(a, "-") == 0) {
            if (npos == 3)
                return usage_error("too many arguments: '%s' (MODEL INPUT OUTPUT expected)", a);
            pos[npos++] = a;
            continue;
        }
        if (strcmp(a, "--") == 0) {
            only_positionals = 1;
        } else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            return -1;
        } else if (strcmp(a, "--version") == 0) {
            printf(PROG " " CVD_VERSION "\n");
            return -1;
        } else if (strcmp(a, "--offline") == 0) {
            o->offline = 1;
        } else if (strcmp(a, "--csv-header") == 0 || strcmp(a, "--no-csv-header") == 0) {
            cvd_af_header h = a[2] == 'n' ? CVD_AF_HEADER_NO : CVD_AF_HEADER_YES;
            if (o->header != CVD_AF_HEADER_DETECT && o->header != h)
                return usage_error("--csv-header and --no-csv-header: give one of them");
            o->header = h;
        } else if (strcmp(a, "--columns") == 0 || strncmp(a, "--columns=", 10) == 0 ||
                   strcmp(a, "--time-column") == 0 || strncmp(a, "--time-column=", 14) == 0) {
            const int tc = a[2] == 't';
            const size_t kl = tc ? 13 : 9;
            if (a[kl] == '=')
                val = a + kl + 1;
            else if (i + 1 < argc)
                val = argv[++i];
            else
                return usage_error("%s needs a value (%s)", a,
                                   tc ? "a column's index from 1, or its name"
                                      : "columns by index from 1 or name: 2,3 or 2-4 or x,y");
            if (val[0] == '\0')
                return usage_error("%.*s: an empty value", (int)kl, a);
            if (tc)
                o->time_column = val;
            else
                o->columns = val;
        } else if (strcmp(a, "-q") == 0 || strcmp(a, "--quiet") == 0) {
            o->quiet = 1;
        } else if (strcmp(a, "--block") == 0 || strcmp(a, "-b") == 0 ||
                   strncmp(a, "--block=", 8) == 0) {
            if (a[1] == '-' && a[7] == '=')
                val = a + 8;
            else if (i + 1 < argc)
                val = argv[++i];
            else
                return usage_error("%s needs a value (frames per block)", a);
            if (parse_block(val, &o->block) != 0)
                return 2;
        } else if (strcmp(a, "--hop") == 0 || strncmp(a, "--hop=", 6) == 0) {
            char *end;
            if (a[5] == '=')
                val = a + 6;
            else if (i + 1 < argc)
                val = argv[++i];
            else
                return usage_error("--hop needs a value (frames between windows)");
            errno = 0;
            o->hop = strtol(val, &end, 10);
            if (errno != 0 || end == val || *end != '\0' || o->hop < 1 || o->hop > (1L << 30))
                return usage_error("--hop %s: must be an integer from 1 to %ld", val, 1L << 30);
        } else if (strcmp(a, "--weights") == 0 || strncmp(a, "--weights=", 10) == 0) {
            if (a[9] == '=')
                o->weights = a + 10;
            else if (i + 1 < argc)
                o->weights = argv[++i];
            else
                return usage_error("--weights needs a file (the Keras model's weights)");
        } else if (strcmp(a, "--format") == 0 || strncmp(a, "--format=", 9) == 0) {
            if (a[8] == '=')
                val = a + 9;
            else if (i + 1 < argc)
                val = argv[++i];
            else
                return usage_error("--format needs a value: f32, csv or npy");
            if (cvd_af_format_parse(val, &o->format) < 0)
                return usage_error("--format %s: unknown (f32, csv or npy)", val);
        } else {
            return usage_error("unknown option '%s'", a);
        }
    }
    if (npos < 3)
        return usage_error(npos == 0   ? "MODEL, INPUT and OUTPUT are missing"
                           : npos == 1 ? "INPUT and OUTPUT are missing"
                                       : "OUTPUT is missing");
    o->model = pos[0];
    o->input = pos[1];
    o->output = pos[2];
    if (strcmp(o->model, "-") == 0)
        return usage_error("MODEL: '-' is not supported (give the model file's path)");
    if (strcmp(o->input, "-") == 0 && o->format == CVD_AF_UNKNOWN)
        return usage_error("INPUT '-' (standard input) needs --format f32, csv or npy");
    if (strcmp(o->output, "-") == 0 && o->format == CVD_AF_UNKNOWN)
        return usage_error("OUTPUT '-' (standard output) needs --format f32, csv or npy");
    {
        const cvd_af_format fi = cvd_af_format_of(o->input, o->format);
        const cvd_af_format fo = cvd_af_format_of(o->output, o->format);
        if ((o->columns || o->time_column) && fi != CVD_AF_CSV && fi != CVD_AF_NPY)
            return usage_error("%s: columns are chosen in csv and npy input; INPUT %s is %s",
                               o->columns ? "--columns" : "--time-column", o->input,
                               cvd_af_format_name(fi));
        if (o->header == CVD_AF_HEADER_YES && fi != CVD_AF_CSV)
            return usage_error("--csv-header: INPUT %s is not csv", o->input);
        if (o->time_column && fo != CVD_AF_CSV)
            return usage_error("--time-column: the time column goes to a csv output; OUTPUT %s "
                               "is %s", o->output, cvd_af_format_name(fo));
    }
    return 0;
}

static int fail(const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;

static int fail(const char *fmt, ...)
{
    va_list ap;
    fputs(PROG ": ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return 1;
}

/* A message from a library: prefixed with the file's name unless it names it already ("-"
 * is named "standard input" or "standard output" by tools/lib). */
static int fail_err(const char *file, const cvd_err *err)
{
    if (strstr(err->msg, file) != NULL || strcmp(file, "-") == 0)
        return fail("%s", err->msg);
    return fail("%s: %s", file, err->msg[0] ? err->msg : cvd_strerror(err->code));
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---- progress ------------------------------------------------------------------------------ */

typedef struct progress {
    int enabled;
    int shown;
    double rate;     /* 0: unknown (progress in frames) */
    long long total; /* frames; -1 unknown */
    double t0, last;
} progress;

#define PROGRESS_MIN_FRAMES (PROGRESS_MIN_SECONDS * DEFAULT_RATE)

static void progress_init(progress *p, const options *o, const cvd_af_info *in, double rate)
{
    const double min = rate > 0 ? PROGRESS_MIN_SECONDS * rate : PROGRESS_MIN_FRAMES;
    memset(p, 0, sizeof *p);
    p->rate = rate;
    p->total = in->frames;
    p->t0 = p->last = now();
    /* only for a person watching, and only when there is something to wait for */
    p->enabled = !o->quiet && isatty(STDERR_FILENO) && (in->frames < 0 || (double)in->frames > min);
}

static void progress_update(progress *p, long long done)
{
    const double t = now(), el = t - p->t0 > 1e-9 ? t - p->t0 : 1e-9;
    const double min = p->rate > 0 ? PROGRESS_MIN_SECONDS * p->rate : PROGRESS_MIN_FRAMES;
    if (!p->enabled || t - p->last < 0.1)
        return;
    if (p->total < 0 && (double)done < min)
        return;
    p->last = t;
    fputs("\r\033[K" PROG ": ", stderr);
    if (p->total > 0) {
        const int width = 30;
        double f = (double)done / (double)p->total;
        int fill = (int)(f * width + 0.5);
        if (fill > width)
            fill = width;
        fprintf(stderr, "[%.*s%*s] %3.0f%%  ", fill, "##############################",
                width - fill, "", 100.0 * f);
    }
    if (p->rate > 0)
        fprintf(stderr, "%.1f s  %.1fx real time", (double)done / p->rate,
                (double)done / p->rate / el);
    else
        fprintf(stderr, "%lld frames  %.0f frames/s", done, (double)done / el);
    fflush(stderr);
    p->shown = 1;
}

static void progress_end(progress *p)
{
    if (p->shown) {
        fputs("\r\033[K", stderr);
        fflush(stderr);
    }
}

/* ---- the time column: input frames' texts until the outputs that take them are written ---- */

typedef struct timeq {
    char **s;
    long long base; /* the input frame of s[head] */
    long head, len, cap;
} timeq;

static int tq_push(timeq *q, const char *text)
{
    if (q->len == q->cap) {
        long nc = q->cap ? q->cap * 2 : 256;
        char **ns = malloc(sizeof *ns * (size_t)nc);
        if (ns == NULL)
            return -1;
        for (long i = 0; i < q->len; i++)
            ns[i] = q->s[(q->head + i) % q->cap];
        free(q->s);
        q->s = ns;
        q->cap = nc;
        q->head = 0;
    }
    if ((q->s[(q->head + q->len) % q->cap] = strdup(text ? text : "")) == NULL)
        return -1;
    q->len++;
    return 0;
}

/* The text of input frame i ("" when it is not held). */
static const char *tq_get(const timeq *q, long long i)
{
    if (i < q->base || i >= q->base + q->len)
        return "";
    return q->s[(q->head + (i - q->base)) % q->cap];
}

/* Forgets the frames before i. */
static void tq_drop(timeq *q, long long i)
{
    while (q->len > 0 && q->base < i) {
        free(q->s[q->head]);
        q->head = (q->head + 1) % q->cap;
        q->base++;
        q->len--;
    }
}

static void tq_free(timeq *q)
{
    tq_drop(q, q->base + q->len);
    free(q->s);
}

/* ---- the run ------------------------------------------------------------------------------- */

typedef struct run {
    const options *o;
    cvd_model *model;
    cvd_af *in, *out;
    double rate;   /* frames per second: the input file's, else the model's; 0 unknown */
    int rate_from; /* RATE_FILE, RATE_MODEL, RATE_NONE */
    long long frames_in, frames_out;
    timeq times;   /* with --time-column */
    const char **tptr; /* the texts of one write */
} run;

enum { RATE_NONE, RATE_FILE, RATE_MODEL };

/* The input frame whose time output frame j carries: the last frame of its window (windowed);
 * the frame it lines up with (streaming: the same frame, or scaled by the model's rate). */
static long long time_index(const run *r, long long j)
{
    if (cvd_model_mode(r->model) == CVD_MODE_WINDOWED) {
        const long w = cvd_model_window(r->model), hop = r->o->hop ? r->o->hop : w;
        return j * hop + w - 1;
    }
    const double ratio = cvd_model_rate_ratio(r->model);
    if (ratio == 1.0 || !(ratio > 0))
        return j;
    return (long long)floor((double)j / ratio + 1e-9);
}

static int open_output(run *r)
{
    cvd_err err = {0};
    const int cout = cvd_model_out_channels(r->model);
    const cvd_af_format f = cvd_af_format_of(r->o->output, r->o->format);
    if (cvd_af_open_write(r->o->output, f, cout, r->rate, &r->out, &err) < 0)
        return fail_err(r->o->output, &err);
    if (f == CVD_AF_CSV && r->o->header != CVD_AF_HEADER_NO) {
        /* the columns: the output node's channels, <node> or <node>_<i> */
        const char *node = cvd_model_node_name(r->model, cvd_model_output(r->model));
        char **names = calloc((size_t)cout, sizeof *names);
        int rc = names == NULL ? CVD_ENOMEM : CVD_OK;
        for (int c = 0; c < cout && rc == CVD_OK; c++) {
            size_t n = strlen(node) + 16;
            if ((names[c] = malloc(n)) == NULL)
                rc = CVD_ENOMEM;
            else if (cout == 1)
                snprintf(names[c], n, "%s", node);
            else
                snprintf(names[c], n, "%s_%d", node, c);
        }
        if (rc == CVD_OK)
            rc = cvd_af_set_columns(r->out, r->o->time_column ? cvd_af_time_name(r->in) : NULL,
                                    (const char *const *)names, &err);
        for (int c = 0; names && c < cout; c++)
            free(names[c]);
        free(names);
        if (rc == CVD_ENOMEM)
            return fail("out of memory");
        if (rc < 0)
            return fail_err(r->o->output, &err);
    }
    return 0;
}

/* Keeps the time texts of the frames just read. */
static int keep_times(run *r, long got)
{
    if (!r->o->time_column)
        return 0;
    for (long i = 0; i < got; i++)
        if (tq_push(&r->times, cvd_af_time(r->in, i)) < 0)
            return fail("out of memory");
    return 0;
}

static int write_frames(run *r, const float *y, long n)
{
    cvd_err err = {0};
    int rc = CVD_OK;
    if (n <= 0)
        return 0;
    if (r->o->time_column) {
        for (long k = 0; k < n; k++)
            r->tptr[k] = tq_get(&r->times, time_index(r, r->frames_out + k));
        rc = cvd_af_write_times(r->out, y, r->tptr, n, &err);
        tq_drop(&r->times, time_index(r, r->frames_out + n));
    } else {
        rc = cvd_af_write(r->out, y, n, &err);
    }
    if (rc < 0)
        return fail_err(r->o->output, &err);
    r->frames_out += n;
    return 0;
}

static int run_stream(run *r)
{
    const int block = r->o->block;
    const int cin = cvd_model_in_channels(r->model), cout = cvd_model_out_channels(r->model);
    cvd_net *net = NULL;
    cvd_err err = {0};
    float *x = NULL, *y = NULL;
    progress pr;
    int rc = 0, more;

    if (cvd_net_create_hop(r->model, block, r->o->hop, &net, &err) < 0)
        return fail("%s: %s", r->o->model, err.msg);
    x = malloc(sizeof(float) * (size_t)block * (size_t)cin);
    y = malloc(sizeof(float) * ((size_t)cvd_net_max_out(net) * (size_t)cout + 1));
    r->tptr = malloc(sizeof *r->tptr * ((size_t)cvd_net_max_out(net) + 1));
    if (x == NULL || y == NULL || r->tptr == NULL) {
        rc = fail("out of memory");
        goto done;
    }
    if ((rc = open_output(r)) != 0)
        goto done;
    progress_init(&pr, r->o, cvd_af_get_info(r->in), r->rate);
    for (;;) {
        int n_out;
        long got = cvd_af_read(r->in, x, block, &err);
        if (got < 0) {
            rc = fail_err(r->o->input, &err);
            break;
        }
        if (got == 0)
            break;
        if ((rc = keep_times(r, got)) != 0)
            break;
        int prc = cvd_net_process(net, x, (int)got, y, &n_out);
        if (prc < 0) {
            rc = fail("%s: processing failed after %lld frames: %s", r->o->model, r->frames_in,
                      cvd_strerror(prc));
            break;
        }
        r->frames_in += got;
        if ((rc = write_frames(r, y, n_out)) != 0)
            break;
        progress_update(&pr, r->frames_in);
    }
    progress_end(&pr);
    while (rc == 0) {
        int n_out;
        more = cvd_net_flush(net, y, &n_out);
        if (more < 0) {
            rc = fail("%s: flushing failed: %s", r->o->model, cvd_strerror(more));
            break;
        }
        if ((rc = write_frames(r, y, n_out)) != 0 || more == 0)
            break;
    }
done:
    free(x);
    free(y);
    free(r->tptr);
    r->tptr = NULL;
    cvd_net_destroy(net);
    return rc;
}

static int run_offline(run *r)
{
    cvd_err err = {0};
    const int cin = cvd_model_in_channels(r->model);
    float *x = NULL, *y = NULL;
    long n = 0, cap = 0, n_out = 0;
    int rc = 0;

    for (;;) { /* the whole input, and its times */
        if (n == cap) {
            long nc = cap ? cap * 2 : 4096;
            float *nx = realloc(x, sizeof(float) * (size_t)nc * (size_t)cin);
            if (nx == NULL) {
                free(x);
                return fail("out of memory");
            }
            x = nx;
            cap = nc;
        }
        long got = cvd_af_read(r->in, x + (size_t)n * cin, cap - n, &err);
        if (got < 0) {
            free(x);
            return fail_err(r->o->input, &err);
        }
        if (got == 0)
            break;
        if ((rc = keep_times(r, got)) != 0) {
            free(x);
            return rc;
        }
        n += got;
    }
    r->frames_in = n;
    if (cvd_model_forward_hop(r->model, x, n, r->o->hop, &y, &n_out, &err) < 0) {
        free(x);
        return fail("%s: %s", r->o->model, err.msg);
    }
    free(x);
    r->tptr = malloc(sizeof *r->tptr * ((size_t)n_out + 1));
    rc = r->tptr == NULL ? fail("out of memory") : open_output(r);
    if (rc == 0)
        rc = write_frames(r, y, n_out);
    free(r->tptr);
    r->tptr = NULL;
    free(y);
    return rc;
}

/* 1 if path is a regular file itself (not "-", a device, a pipe or a symbolic link). */
static int is_regular_file(const char *path)
{
    struct stat st;
    return strcmp(path, "-") != 0 && lstat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* 1 if a and b name the same existing file. */
static int same_file(const char *a, const char *b)
{
    struct stat sa, sb;
    if (strcmp(a, "-") == 0 || strcmp(b, "-") == 0)
        return 0;
    return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev &&
           sa.st_ino == sb.st_ino;
}

/* "1,234,567" */
static const char *grouped(double v, char *buf, size_t cap)
{
    char raw[64];
    size_t n, o = 0;
    snprintf(raw, sizeof raw, "%.0f", v < 0 ? 0 : v);
    n = strlen(raw);
    for (size_t i = 0; i < n && o + 2 < cap; i++) {
        if (i > 0 && (n - i) % 3 == 0)
            buf[o++] = ',';
        buf[o++] = raw[i];
    }
    buf[o] = '\0';
    return buf;
}

/* The last line: frames, records, and the speed, for audio or for sensors. */
static void summary(const run *r, int windowed, double elapsed)
{
    const options *o = r->o;
    char how[64], recs[96] = "", speed[160];
    if (o->offline)
        snprintf(how, sizeof how, "offline");
    else
        snprintf(how, sizeof how, "streamed in blocks of %d", o->block);
    if (windowed)
        snprintf(recs, sizeof recs, " record%s (windows of %ld frames, hop %ld)",
                 r->frames_out == 1 ? "" : "s", cvd_model_window(r->model),
                 o->hop ? o->hop : cvd_model_window(r->model));
    if (r->rate_from != RATE_NONE) {
        const double sec = (double)r->frames_in / r->rate;
        snprintf(speed, sizeof speed, "%.3f s %sat %g Hz%s in %.3f s: %.1fx real time", sec,
                 r->rate_from == RATE_FILE ? "of audio " : "", r->rate,
                 r->rate_from == RATE_MODEL ? " (the model's rate)" : "", elapsed,
                 elapsed > 0 ? sec / elapsed : 0.0);
    } else {
        char fps[40];
        grouped(elapsed > 0 ? (double)r->frames_in / elapsed : 0.0, fps, sizeof fps);
        snprintf(speed, sizeof speed, "rate unknown; %.3f s: %s frames/s", elapsed, fps);
    }
    fprintf(stderr, PROG ": %lld frames in, %lld%s out; %s (%s)\n", r->frames_in, r->frames_out,
            recs, speed, how);
}

int main(int argc, char **argv)
{
    options o;
    run r;
    cvd_err err = {0};
    const cvd_af_info *ii;
    double t0, elapsed, model_rate;
    int rc = parse_args(argc, argv, &o);

    if (rc != 0)
        return rc < 0 ? 0 : rc;
    memset(&r, 0, sizeof r);
    r.o = &o;
    if (same_file(o.input, o.output))
        return fail("%s: the output is the input file: give another OUTPUT", o.output);
    if (same_file(o.model, o.output) || (o.weights && same_file(o.weights, o.output)))
        return fail("%s: the output is the model file: give another OUTPUT", o.output);

    if (o.weights ? cvd_keras_load_weights(o.model, o.weights, &r.model, &err) < 0
                  : cvd_model_load(o.model, &r.model, &err) < 0)
        return fail_err(o.model, &err);
    const int windowed = cvd_model_mode(r.model) == CVD_MODE_WINDOWED;
    if (o.hop && !windowed) {
        rc = fail("%s: --hop %ld: the model streams (every layer runs frame by frame); --hop "
                  "applies to windowed models",
                  o.model, o.hop);
        cvd_model_unref(r.model);
        return rc;
    }
    const int cin = cvd_model_in_channels(r.model);
    const cvd_af_read_opts ro = {o.header, o.columns, o.time_column};
    if (cvd_af_open_read_opts(o.input, cvd_af_format_of(o.input, o.format), cin, &ro, &r.in,
                              &err) < 0) {
        cvd_model_unref(r.model);
        return fail_err(o.input, &err);
    }
    ii = cvd_af_get_info(r.in);
    if (ii->channels != cin) {
        rc = fail("%s: %d channel%s%s, the model takes %d", cvd_af_name(r.in), ii->channels,
                  ii->channels == 1 ? "" : "s",
                  o.columns ? " chosen (--columns)" : o.time_column ? " besides the time column"
                                                                    : "",
                  cin);
        goto done;
    }
    model_rate = cvd_model_sample_rate(r.model);
    if (ii->rate > 0)
        r.rate = ii->rate, r.rate_from = RATE_FILE;
    else if (model_rate > 0)
        r.rate = model_rate, r.rate_from = RATE_MODEL;
    if (!o.quiet && ii->rate > 0 && model_rate > 0 && ii->rate != model_rate)
        fprintf(stderr, PROG ": warning: %s is at %g Hz, the model was trained at %g Hz\n",
                cvd_af_name(r.in), ii->rate, model_rate);
    if (!o.quiet && r.rate_from == RATE_NONE &&
        cvd_af_format_of(o.output, o.format) == CVD_AF_SNDFILE)
        fprintf(stderr, PROG ": warning: %s: no sample rate is known (the input and the model "
                "give none): the file says %g Hz\n", o.output, DEFAULT_RATE);

    t0 = now();
    rc = o.offline ? run_offline(&r) : run_stream(&r);
    elapsed = now() - t0;
    if (rc == 0 && r.frames_out == 0 && (windowed || r.frames_in > 0)) {
        /* nothing came out: the input is too short for the model */
        if (windowed)
            fprintf(stderr, PROG ": warning: %s: %lld frame%s, shorter than the model's window "
                    "of %ld frames: no record\n", cvd_af_name(r.in), r.frames_in,
                    r.frames_in == 1 ? "" : "s", cvd_model_window(r.model));
        else
            fprintf(stderr, PROG ": warning: %s: %lld frame%s, fewer than the model needs for "
                    "one output frame (its receptive field is %ld frames): no output\n",
                    cvd_af_name(r.in), r.frames_in, r.frames_in == 1 ? "" : "s",
                    cvd_model_receptive_field(r.model));
        rc = 1;
    }
    if (r.out) {
        int crc = cvd_af_close(r.out, &err);
        r.out = NULL;
        if (rc == 0 && crc < 0)
            rc = fail_err(o.output, &err);
        if (rc != 0 && is_regular_file(o.output))
            remove(o.output); /* no half-written output left behind (never a device) */
    }
    if (rc == 0 && !o.quiet)
        summary(&r, windowed, elapsed);
done:
    tq_free(&r.times);
    cvd_af_close(r.in, NULL);
    cvd_model_unref(r.model);
    return rc;
}
