/*
 * convd-run: runs an audio file through a model.
 *
 *   convd-run MODEL INPUT OUTPUT [--block N] [--offline] [--hop N] [--weights FILE]
 *             [--format f32|csv] [--quiet]
 *
 * Streams INPUT through the model in blocks of N frames (cvd_net_process), then flushes the
 * tail (cvd_net_flush until it reports the end), writing every output frame as it comes: the
 * output equals the offline result on the whole input, which --offline computes directly
 * (cvd_model_forward, the whole input in memory). A windowed model (docs/KERAS.md) writes one
 * record per window of its input length, the windows --hop frames apart. See docs/TOOLS.md.
 *
 * Exit status: 0 success, 1 a runtime or input error, 2 a usage error.
 */
#include <errno.h>
#include <limits.h>
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
} options;

static void usage(FILE *f)
{
    fprintf(f,
            "usage: " PROG " MODEL INPUT OUTPUT [--block N] [--offline] [--hop N] "
            "[--weights FILE]\n"
            "                 [--format f32|csv] [--quiet]\n"
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
            "  --format FMT     f32 or csv: the format of '-' (standard input or output), and\n"
            "                   of files whose extension says nothing\n"
            "  -q, --quiet      no progress bar and no summary on standard error\n"
            "  -h, --help       this text\n"
            "  --version        the version\n"
            "\n"
            "Formats, by extension: .wav, .flac, .aiff, .ogg and whatever else libsndfile\n"
            "handles (written as 32-bit float where the container allows it); .f32 raw\n"
            "little-endian float32; .csv one frame per line, values separated by commas.\n"
            "Frames are always channels interleaved. The output has the model's output\n"
            "channels and the input's sample rate (raw and csv input: the model's, or 48000).\n"
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
                return usage_error("--format needs a value: f32 or csv");
            if (cvd_af_format_parse(val, &o->format) < 0)
                return usage_error("--format %s: unknown (f32 or csv)", val);
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
        return usage_error("INPUT '-' (standard input) needs --format f32 or csv");
    if (strcmp(o->output, "-") == 0 && o->format == CVD_AF_UNKNOWN)
        return usage_error("OUTPUT '-' (standard output) needs --format f32 or csv");
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
    double rate;
    long long total; /* frames; -1 unknown */
    double t0, last;
} progress;

static void progress_init(progress *p, const options *o, const cvd_af_info *in, double rate)
{
    memset(p, 0, sizeof *p);
    p->rate = rate;
    p->total = in->frames;
    p->t0 = p->last = now();
    /* only for a person watching, and only when there is something to wait for */
    p->enabled = !o->quiet && isatty(STDERR_FILENO) &&
                 (in->frames < 0 || (double)in->frames / rate > PROGRESS_MIN_SECONDS);
}

static void progress_update(progress *p, long long done)
{
    double t = now(), sec = (double)done / p->rate, speed;
    if (!p->enabled || t - p->last < 0.1)
        return;
    if (p->total < 0 && sec < PROGRESS_MIN_SECONDS)
        return;
    p->last = t;
    speed = sec / (t - p->t0 > 1e-9 ? t - p->t0 : 1e-9);
    if (p->total > 0) {
        const int width = 30;
        double f = (double)done / (double)p->total;
        int fill = (int)(f * width + 0.5);
        if (fill > width)
            fill = width;
        fprintf(stderr, "\r\033[K" PROG ": [%.*s%*s] %3.0f%%  %.1f / %.1f s  %.1fx real time", fill,
                "##############################", width - fill, "", 100.0 * f, sec,
                (double)p->total / p->rate, speed);
    } else {
        fprintf(stderr, "\r\033[K" PROG ": %.1f s of audio  %.1fx real time", sec, speed);
    }
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

/* ---- the run ------------------------------------------------------------------------------- */

typedef struct run {
    const options *o;
    cvd_model *model;
    cvd_af *in, *out;
    double rate;      /* of the input, for the output header and the figures */
    int rate_assumed; /* no file or model said */
    long long frames_in, frames_out;
} run;

static int open_output(run *r)
{
    cvd_err err = {0};
    if (cvd_af_open_write(r->o->output, cvd_af_format_of(r->o->output, r->o->format),
                          cvd_model_out_channels(r->model), r->rate, &r->out, &err) < 0)
        return fail_err(r->o->output, &err);
    return 0;
}

static int write_frames(run *r, const float *y, long n)
{
    cvd_err err = {0};
    if (n > 0 && cvd_af_write(r->out, y, n, &err) < 0)
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
    if (x == NULL || y == NULL) {
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
    cvd_net_destroy(net);
    return rc;
}

static int run_offline(run *r)
{
    cvd_err err = {0};
    float *x = NULL, *y = NULL;
    long n = 0, n_out = 0;
    int rc;

    if (cvd_af_read_all(r->in, &x, &n, &err) < 0)
        return fail_err(r->o->input, &err);
    r->frames_in = n;
    if (cvd_model_forward_hop(r->model, x, n, r->o->hop, &y, &n_out, &err) < 0) {
        free(x);
        return fail("%s: %s", r->o->model, err.msg);
    }
    free(x);
    rc = open_output(r);
    if (rc == 0)
        rc = write_frames(r, y, n_out);
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
    if (cvd_af_open_read(o.input, cvd_af_format_of(o.input, o.format), cin, &r.in, &err) < 0) {
        cvd_model_unref(r.model);
        return fail_err(o.input, &err);
    }
    ii = cvd_af_get_info(r.in);
    if (ii->channels != cin) {
        rc = fail("%s: %d channel%s, the model takes %d", cvd_af_name(r.in), ii->channels,
                  ii->channels == 1 ? "" : "s", cin);
        goto done;
    }
    model_rate = cvd_model_sample_rate(r.model);
    r.rate = ii->rate > 0 ? ii->rate : model_rate > 0 ? model_rate : DEFAULT_RATE;
    r.rate_assumed = !(ii->rate > 0) && !(model_rate > 0);
    if (!o.quiet && ii->rate > 0 && model_rate > 0 && ii->rate != model_rate)
        fprintf(stderr, PROG ": warning: %s is at %g Hz, the model was trained at %g Hz\n",
                cvd_af_name(r.in), ii->rate, model_rate);

    t0 = now();
    rc = o.offline ? run_offline(&r) : run_stream(&r);
    if (r.out) {
        int crc = cvd_af_close(r.out, &err);
        r.out = NULL;
        if (rc == 0 && crc < 0)
            rc = fail_err(o.output, &err);
        if (rc != 0 && is_regular_file(o.output))
            remove(o.output); /* no half-written output left behind (never a device) */
    }
    elapsed = now() - t0;
    if (rc == 0 && !o.quiet) {
        double sec = (double)r.frames_in / r.rate;
        char how[64];
        char recs[96] = "";
        if (o.offline)
            snprintf(how, sizeof how, "offline");
        else
            snprintf(how, sizeof how, "streamed in blocks of %d", o.block);
        if (windowed)
            snprintf(recs, sizeof recs, " records (windows of %ld frames, hop %ld)",
                     cvd_model_window(r.model), o.hop ? o.hop : cvd_model_window(r.model));
        fprintf(stderr,
                PROG ": %lld frames in, %lld%s out; %.3f s of audio at %g Hz%s in %.3f s: "
                     "%.1fx real time (%s)\n",
                r.frames_in, r.frames_out, recs, sec, r.rate, r.rate_assumed ? " (assumed)" : "",
                elapsed, elapsed > 0 ? sec / elapsed : 0.0, how);
    }
done:
    cvd_af_close(r.in, NULL);
    cvd_model_unref(r.model);
    return rc;
}
