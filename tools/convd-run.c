/* SPDX-License-Identifier: Apache-2.0 */
/*
 * convd-run: runs an audio file through a model.
 *
 *   convd-run MODEL[,MODEL...] INPUT OUTPUT [--block N] [--offline] [--hop N]
 *             [--threads N] [--weights FILE] [--rate R] [--model-rate R]
 *             [--ir-normalize yes|no]
 *             [--format f32|csv|npy] [--csv-header|--no-csv-header] [--columns LIST]
 *             [--time-column COL] [--quiet]
 *
 * MODEL may be a comma-separated list (amp.nam,cab.wav): the models run in order as one
 * chain (cvd_chain), an impulse response (.wav, .flac, ...) resampled at load to the rate of
 * what comes before it. Where the input's rate differs from a model's, the chain resamples
 * (there and back); a model that declares no rate runs at the rate before it, and that is
 * said once.
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
 *
 * Long because: it is one program with several ways to run a file (streamed, chained,
 * resampled, windowed, offline) over the same options and files.
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
#include "cli.h"
#include "convd_version.h"
#include "convd_dsp.h"
#include "convd_model.h"

#define PROG "convd-run"
#define DEFAULT_BLOCK 64
#define MAX_BLOCK (1 << 20)
#define DEFAULT_RATE 48000.0
#define PROGRESS_MIN_SECONDS 10.0

#define MAX_MODELS CVD_CHAIN_MAX_MODELS

typedef struct options {
    const char *model, *input, *output;
    double rate;       /* --rate: the input's rate when it carries none (0: not given) */
    double model_rate; /* --model-rate: for models that declare none (0: not given) */
    int ir_normalize;  /* --ir-normalize (default yes) */
    double in_gain_db, out_gain_db; /* --input-gain-db, --output-gain-db */
    int normalize;                  /* --normalize: NAM's loudness brought to -18 dB */
    int limit;                      /* --limit: the soft limiter on the output */
    int has_level_dbu;              /* --input-level-dbu given */
    double level_dbu;               /* the interface's dBu for a full-scale sample */
    const char *weights;            /* --weights: MODEL is a Keras config JSON */
    long hop;                       /* --hop: windowed models; 0 the window length */
    int threads;                    /* --threads: 1 or 2 (a WaveNet as two pipeline stages) */
    int block;
    int offline;
    int quiet;
    cvd_af_format format;    /* of "-" (and of files with other extensions) */
    cvd_af_header header;    /* csv input: a header row? (none: no header on csv output) */
    const char *columns;     /* --columns */
    const char *time_column; /* --time-column */
} options;

static void usage(FILE *f)
{
    fprintf(
        f,
        "usage: " PROG " MODEL INPUT OUTPUT [--block N] [--offline] [--hop N] [--threads N]\n"
        "                 [--weights FILE] [--rate R] [--model-rate R] [--ir-normalize yes|no]\n"
        "                 [--input-gain-db DB] [--output-gain-db DB] [--normalize [yes|no]]\n"
        "                 [--input-level-dbu DBU] [--limit [yes|no]]\n"
        "                 [--format f32|csv|npy] [--csv-header|--no-csv-header]\n"
        "                 [--columns LIST] [--time-column COL] [--quiet]\n"
        "\n"
        "Runs INPUT through MODEL (.nam, .json, .keras, .h5, or CONFIG.json+WEIGHTS.h5, or an\n"
        "impulse response: .wav, .flac, .aiff, .ogg) and writes the output frames to OUTPUT.\n"
        "MODEL may be a comma-separated list (amp.nam,cab.wav): the models run in order as\n"
        "one chain, and the chain's latency (the models' and the resamplers') is reported.\n"
        "The input is streamed in blocks of N frames, then the models' tails are flushed; the\n"
        "result equals the offline computation on the whole input. Where the input's sample\n"
        "rate differs from a model's, the input is resampled to it and the output back. A\n"
        "windowed model (Flatten, global pooling, ...) writes one record per window of its\n"
        "input length.\n"
        "\n"
        "  --block N        frames per block, 1 to %d (default %d)\n"
        "  --offline        compute the whole input at once instead of streaming\n"
        "  --hop N          windowed models: windows N frames apart (default: the window\n"
        "                   length, so windows do not overlap)\n"
        "  --threads N      1 (default) or 2: a WaveNet (.nam, or a Keras WaveNet that\n"
        "                   fuses) runs as two pipeline stages on two threads, one block\n"
        "                   later; the output is the same\n"
        "  --weights FILE   MODEL is a Keras model config (model.to_json()) and FILE its\n"
        "                   weights (.h5 or .weights.h5)\n"
        "  --rate R         the input's sample rate in Hz, for input that carries none\n"
        "                   (f32, csv, npy; a sound file's header must agree)\n"
        "  --model-rate R   the rate the models that declare none were trained at (the\n"
        "                   shared standard .nam declares none): they are resampled to it\n"
        "  --ir-normalize yes|no  impulse responses scaled to unit energy (default yes)\n"
        "                   or used as recorded\n"
        "  --input-gain-db DB   gain before the first model (the daemon's input_gain_db)\n"
        "  --output-gain-db DB  gain after the last model (output_gain_db)\n"
        "  --normalize [yes|no] bring the model's declared loudness (.nam metadata) to\n"
        "                   NAM's -18 dB, as NAM's plugin does (normalize; default no)\n"
        "  --input-level-dbu DBU  the dBu of a full-scale sample at the input: the input is\n"
        "                   turned to the level the first model was captured at, when it\n"
        "                   declares one (input_level_dbu)\n"
        "  --limit [yes|no] a soft limiter on the output, ceiling -1 dBFS (limit; default no)\n"
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
        "\n",
        MAX_BLOCK, DEFAULT_BLOCK);
    fputs("Formats, by extension: .wav, .flac, .aiff, .ogg and whatever else libsndfile\n"
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
          f);
}

/* Returns 0, 2 (usage error) or -1 (help printed: exit 0). */
static int parse_args(int argc, char **argv, options *o)
{
    const char *pos[3];
    int npos = 0, only_positionals = 0;

    memset(o, 0, sizeof *o);
    o->block = DEFAULT_BLOCK;
    o->ir_normalize = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *val = NULL;
        if (only_positionals || a[0] != '-' || strcmp(a, "-") == 0) {
            if (npos == 3)
                return cli_usage_error("too many arguments: '%s' (MODEL INPUT OUTPUT expected)", a);
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
                return cli_usage_error("--csv-header and --no-csv-header: give one of them");
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
                return cli_usage_error("%s needs a value (%s)", a,
                                       tc ? "a column's index from 1, or its name"
                                          : "columns by index from 1 or name: 2,3 or 2-4 or x,y");
            if (val[0] == '\0')
                return cli_usage_error("%.*s: an empty value", (int)kl, a);
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
                return cli_usage_error("%s needs a value (frames per block)", a);
            long long v;
            if (cli_parse_int("--block", val, 1, MAX_BLOCK, &v) != 0)
                return 2;
            o->block = (int)v;
        } else if (strcmp(a, "--threads") == 0 || strncmp(a, "--threads=", 10) == 0) {
            if (a[9] == '=')
                val = a + 10;
            else if (i + 1 < argc)
                val = argv[++i];
            else
                return cli_usage_error("--threads needs a value (1 or 2)");
            if (strcmp(val, "1") != 0 && strcmp(val, "2") != 0)
                return cli_usage_error("--threads %s: must be 1 or 2", val);
            o->threads = val[0] - '0';
        } else if (strcmp(a, "--hop") == 0 || strncmp(a, "--hop=", 6) == 0) {
            long long v;
            if (a[5] == '=')
                val = a + 6;
            else if (i + 1 < argc)
                val = argv[++i];
            else
                return cli_usage_error("--hop needs a value (frames between windows)");
            if (cli_parse_int("--hop", val, 1, 1L << 30, &v) != 0)
                return 2;
            o->hop = (long)v;
        } else if (strcmp(a, "--rate") == 0 || strncmp(a, "--rate=", 7) == 0 ||
                   strcmp(a, "--model-rate") == 0 || strncmp(a, "--model-rate=", 13) == 0) {
            const int mr = a[2] == 'm';
            const size_t kl = mr ? 12 : 6;
            char *end;
            if (a[kl] == '=')
                val = a + kl + 1;
            else if (i + 1 < argc)
                val = argv[++i];
            else
                return cli_usage_error("%.*s needs a value (Hz)", (int)kl, a);
            errno = 0;
            double v = strtod(val, &end);
            if (errno != 0 || end == val || *end != '\0' || !(v >= 1000 && v <= 768000))
                return cli_usage_error("%.*s %s: must be a sample rate from 1000 to 768000 Hz",
                                       (int)kl, a, val);
            if (mr)
                o->model_rate = v;
            else
                o->rate = v;
        } else if (strcmp(a, "--input-gain-db") == 0 || strncmp(a, "--input-gain-db=", 16) == 0 ||
                   strcmp(a, "--output-gain-db") == 0 || strncmp(a, "--output-gain-db=", 17) == 0 ||
                   strcmp(a, "--input-level-dbu") == 0 ||
                   strncmp(a, "--input-level-dbu=", 18) == 0) {
            const size_t kl = strcspn(a, "=");
            const int lvl = a[8] == 'l'; /* --input-level-dbu */
            char *end;
            if (a[kl] == '=')
                val = a + kl + 1;
            else if (i + 1 < argc)
                val = argv[++i];
            else
                return cli_usage_error("%.*s needs a value (%s)", (int)kl, a, lvl ? "dBu" : "dB");
            errno = 0;
            double v = strtod(val, &end);
            const double lo = lvl ? -40 : -120, hi = lvl ? 40 : 60;
            if (errno != 0 || end == val || *end != '\0' || !(v >= lo && v <= hi))
                return cli_usage_error("%.*s %s: must be a number from %g to %g (%s)", (int)kl, a,
                                       val, lo, hi, lvl ? "dBu" : "dB");
            if (lvl)
                o->level_dbu = v, o->has_level_dbu = 1;
            else if (a[2] == 'i')
                o->in_gain_db = v;
            else
                o->out_gain_db = v;
        } else if (strcmp(a, "--normalize") == 0 || strncmp(a, "--normalize=", 12) == 0 ||
                   strcmp(a, "--limit") == 0 || strncmp(a, "--limit=", 8) == 0) {
            /* a flag, or with yes|no (after '=' or as the next argument) */
            const size_t kl = strcspn(a, "=");
            int *flag = a[2] == 'n' ? &o->normalize : &o->limit;
            if (a[kl] == '=')
                val = a + kl + 1;
            else if (i + 1 < argc &&
                     (strcmp(argv[i + 1], "yes") == 0 || strcmp(argv[i + 1], "no") == 0))
                val = argv[++i];
            else
                val = "yes";
            if (strcmp(val, "yes") == 0)
                *flag = 1;
            else if (strcmp(val, "no") == 0)
                *flag = 0;
            else
                return cli_usage_error("%.*s=%s: must be yes or no", (int)kl, a, val);
        } else if (strcmp(a, "--ir-normalize") == 0 || strncmp(a, "--ir-normalize=", 15) == 0) {
            if (a[14] == '=')
                val = a + 15;
            else if (i + 1 < argc)
                val = argv[++i];
            else
                return cli_usage_error("--ir-normalize needs a value: yes or no");
            if (strcmp(val, "yes") == 0)
                o->ir_normalize = 1;
            else if (strcmp(val, "no") == 0)
                o->ir_normalize = 0;
            else
                return cli_usage_error("--ir-normalize %s: must be yes or no", val);
        } else if (strcmp(a, "--weights") == 0 || strncmp(a, "--weights=", 10) == 0) {
            if (a[9] == '=')
                o->weights = a + 10;
            else if (i + 1 < argc)
                o->weights = argv[++i];
            else
                return cli_usage_error("--weights needs a file (the Keras model's weights)");
        } else if (strcmp(a, "--format") == 0 || strncmp(a, "--format=", 9) == 0) {
            if (a[8] == '=')
                val = a + 9;
            else if (i + 1 < argc)
                val = argv[++i];
            else
                return cli_usage_error("--format needs a value: f32, csv or npy");
            if (cvd_af_format_parse(val, &o->format) < 0)
                return cli_usage_error("--format %s: unknown (f32, csv or npy)", val);
        } else {
            return cli_usage_error("unknown option '%s'", a);
        }
    }
    if (npos < 3)
        return cli_usage_error(npos == 0   ? "MODEL, INPUT and OUTPUT are missing"
                               : npos == 1 ? "INPUT and OUTPUT are missing"
                                           : "OUTPUT is missing");
    o->model = pos[0];
    o->input = pos[1];
    o->output = pos[2];
    if (strcmp(o->model, "-") == 0)
        return cli_usage_error("MODEL: '-' is not supported (give the model file's path)");
    if (strcmp(o->input, "-") == 0 && o->format == CVD_AF_UNKNOWN)
        return cli_usage_error("INPUT '-' (standard input) needs --format f32, csv or npy");
    if (strcmp(o->output, "-") == 0 && o->format == CVD_AF_UNKNOWN)
        return cli_usage_error("OUTPUT '-' (standard output) needs --format f32, csv or npy");
    {
        const cvd_af_format fi = cvd_af_format_of(o->input, o->format);
        const cvd_af_format fo = cvd_af_format_of(o->output, o->format);
        if ((o->columns || o->time_column) && fi != CVD_AF_CSV && fi != CVD_AF_NPY)
            return cli_usage_error("%s: columns are chosen in csv and npy input; INPUT %s is %s",
                                   o->columns ? "--columns" : "--time-column", o->input,
                                   cvd_af_format_name(fi));
        if (o->header == CVD_AF_HEADER_YES && fi != CVD_AF_CSV)
            return cli_usage_error("--csv-header: INPUT %s is not csv", o->input);
        if (o->time_column && fo != CVD_AF_CSV)
            return cli_usage_error("--time-column: the time column goes to a csv output; OUTPUT %s "
                                   "is %s",
                                   o->output, cvd_af_format_name(fo));
    }
    return 0;
}

/* A message from a library: prefixed with the file's name unless it names it already ("-"
 * is named "standard input" or "standard output" by tools/lib). */
static int fail_err(const char *file, const cvd_err *err)
{
    if (strstr(err->msg, file) != NULL || strcmp(file, "-") == 0)
        return cli_fail("%s", err->msg);
    return cli_fail("%s: %s", file, err->msg[0] ? err->msg : cvd_strerror(err->code));
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
        fprintf(stderr, "[%.*s%*s] %3.0f%%  ", fill, "##############################", width - fill,
                "", 100.0 * f);
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
    cvd_model *model; /* the last of the models (the output's channels and names) */
    cvd_model *models[MAX_MODELS];
    const char *names[MAX_MODELS];
    int n_models;
    int resampled; /* the chain resamples: the output is cut to the input's length */
    cvd_af *in, *out;
    double rate;             /* frames per second: the input file's, else the model's; 0 unknown */
    int rate_from;           /* RATE_FILE, RATE_MODEL, RATE_NONE */
    char *list;              /* MODEL split at its commas */
    float in_gain, out_gain; /* the level options, as factors */
    int out_ch;              /* the output's channels (the limiter's) */
    cvd_limiter lim;         /* with --limit */
    long long frames_in, frames_out;
    timeq times;       /* with --time-column */
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
            return cli_fail("out of memory");
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
            return cli_fail("out of memory");
    return 0;
}

/* The output gain and the limiter, on n frames about to be written. */
static void output_levels(run *r, float *y, long n)
{
    if (r->out_gain != 1.0f)
        cvd_gain_apply(y, (size_t)n * (size_t)r->out_ch, r->out_gain);
    if (r->o->limit)
        cvd_limiter_process(&r->lim, y, (int)n, r->out_ch);
}

static int write_frames(run *r, float *y, long n)
{
    cvd_err err = {0};
    int rc = CVD_OK;
    if (n <= 0)
        return 0;
    output_levels(r, y, n);
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

/* The chain of the models at the input's rate, for blocks of up to `block` frames. */
static int make_chain(run *r, int block, cvd_chain **out)
{
    cvd_err err = {0};
    cvd_chain_config cfg = {
        .rate = r->rate, .max_block = block, .hop = r->o->hop, .threads = r->o->threads};
    if (cvd_chain_create(r->models, r->names, r->n_models, &cfg, out, &err) < 0)
        return cli_fail("%s: %s", r->o->model, err.msg);
    return 0;
}

/* Resampled: the output has the input's frames, no more (the resamplers round up). */
static long cut(const run *r, long n)
{
    if (r->resampled && r->frames_out + n > r->frames_in)
        n = r->frames_in - r->frames_out > 0 ? (long)(r->frames_in - r->frames_out) : 0;
    return n;
}

static int run_stream(run *r)
{
    const int block = r->o->block;
    cvd_chain *chain = NULL;
    float *x = NULL, *y = NULL;
    progress pr;
    int rc = 0, more;

    if ((rc = make_chain(r, block, &chain)) != 0)
        return rc;
    const int cin = cvd_chain_in_channels(chain), cout = cvd_chain_out_channels(chain);
    cvd_err err = {0};
    x = malloc(sizeof(float) * (size_t)block * (size_t)cin);
    y = malloc(sizeof(float) * ((size_t)cvd_chain_max_out(chain) * (size_t)cout + 1));
    r->tptr = malloc(sizeof *r->tptr * ((size_t)cvd_chain_max_out(chain) + 1));
    if (x == NULL || y == NULL || r->tptr == NULL) {
        rc = cli_fail("out of memory");
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
        if (r->in_gain != 1.0f)
            cvd_gain_apply(x, (size_t)got * (size_t)cin, r->in_gain);
        int prc = cvd_chain_process(chain, x, (int)got, y, &n_out);
        if (prc < 0) {
            rc = cli_fail("%s: processing failed after %lld frames: %s", r->o->model, r->frames_in,
                          cvd_strerror(prc));
            break;
        }
        r->frames_in += got;
        if ((rc = write_frames(r, y, cut(r, n_out))) != 0)
            break;
        progress_update(&pr, r->frames_in);
    }
    progress_end(&pr);
    while (rc == 0) {
        int n_out;
        more = cvd_chain_flush(chain, y, &n_out);
        if (more < 0) {
            rc = cli_fail("%s: flushing failed: %s", r->o->model, cvd_strerror(more));
            break;
        }
        if ((rc = write_frames(r, y, cut(r, n_out))) != 0 || more == 0)
            break;
    }
done:
    free(x);
    free(y);
    free(r->tptr);
    r->tptr = NULL;
    cvd_chain_destroy(chain);
    return rc;
}

static int run_offline(run *r)
{
    cvd_err err = {0};
    const int cin = cvd_model_in_channels(r->models[0]);
    float *x = NULL, *y = NULL;
    long n = 0, cap = 0, n_out = 0;
    int rc = 0;

    for (;;) { /* the whole input, and its times */
        if (n == cap) {
            long nc = cap ? cap * 2 : 4096;
            float *nx = realloc(x, sizeof(float) * (size_t)nc * (size_t)cin);
            if (nx == NULL) {
                free(x);
                return cli_fail("out of memory");
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
    if (r->in_gain != 1.0f)
        cvd_gain_apply(x, (size_t)n * (size_t)cin, r->in_gain);
    if (r->n_models == 1 && !r->resampled) {
        if (cvd_model_forward_hop(r->model, x, n, r->o->hop, &y, &n_out, &err) < 0) {
            free(x);
            return cli_fail("%s: %s", r->o->model, err.msg);
        }
    } else { /* a chain: the whole input in one call (or as few as the limit allows) */
        cvd_chain *chain = NULL;
        const int block = n < MAX_BLOCK ? (n > 0 ? (int)n : 1) : MAX_BLOCK;
        if ((rc = make_chain(r, block, &chain)) != 0) {
            free(x);
            return rc;
        }
        const int cout = cvd_chain_out_channels(chain);
        const size_t room = (size_t)n + 2 * (size_t)cvd_chain_max_out(chain) + 16;
        y = malloc(sizeof(float) * room * (size_t)cout);
        if (y == NULL) {
            free(x);
            cvd_chain_destroy(chain);
            return cli_fail("out of memory");
        }
        for (long i = 0; i < n; i += block) {
            int got, b = n - i < block ? (int)(n - i) : block;
            cvd_chain_process(chain, x + (size_t)i * cin, b, y + (size_t)n_out * cout, &got);
            n_out += got;
        }
        for (int more = 1, got; more == 1; n_out += got)
            more = cvd_chain_flush(chain, y + (size_t)n_out * cout, &got);
        if (r->resampled && n_out > n)
            n_out = n;
        cvd_chain_destroy(chain);
    }
    free(x);
    r->tptr = malloc(sizeof *r->tptr * ((size_t)n_out + 1));
    rc = r->tptr == NULL ? cli_fail("out of memory") : open_output(r);
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

/* MODEL: one path (an existing file, commas and all), or paths separated by commas. Loads
 * every model but the impulse responses, which need the rate and channels before them. */
static int load_models(run *r)
{
    const options *o = r->o;
    cvd_err err = {0};
    struct stat st;
    char *save = NULL;

    r->list = strdup(o->model);
    if (r->list == NULL)
        return cli_fail("out of memory");
    if (o->weights || strchr(o->model, ',') == NULL || stat(o->model, &st) == 0) {
        r->names[0] = r->list;
        r->n_models = 1;
    } else {
        for (char *t = strtok_r(r->list, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
            if (r->n_models == MAX_MODELS)
                return cli_fail("%s: more than %d models in the chain", o->model, MAX_MODELS);
            r->names[r->n_models++] = t;
        }
        if (r->n_models == 0)
            return cli_fail("%s: no model in the list", o->model);
    }
    for (int i = 0; i < r->n_models; i++) {
        if (o->weights) {
            if (cvd_keras_load_weights(r->names[0], o->weights, &r->models[0], &err) < 0)
                return fail_err(r->names[0], &err);
            continue;
        }
        if (cvd_model_is_ir_path(r->names[i]))
            continue; /* load_irs */
        if (cvd_model_load(r->names[i], &r->models[i], &err) < 0)
            return fail_err(r->names[i], &err);
        if (o->model_rate > 0 && cvd_model_sample_rate(r->models[i]) == 0)
            cvd_model_set_sample_rate(r->models[i], o->model_rate);
    }
    return 0;
}

/* The impulse responses, in order: each at the rate of what comes before it (the stream's
 * for the first) and given its channels; ch is the input's channels. */
static int load_irs(run *r, int ch)
{
    cvd_err err = {0};
    double rate = r->rate;
    for (int i = 0; i < r->n_models; i++) {
        if (r->models[i] == NULL) {
            cvd_ir_options opt;
            cvd_ir_options_init(&opt);
            opt.rate = rate;
            opt.normalize = r->o->ir_normalize;
            opt.in_channels = ch;
            if (cvd_ir_load(r->names[i], &opt, &r->models[i], &err) < 0)
                return fail_err(r->names[i], &err);
        }
        if (cvd_model_sample_rate(r->models[i]) > 0)
            rate = cvd_model_sample_rate(r->models[i]);
        ch = cvd_model_out_channels(r->models[i]);
    }
    r->model = r->models[r->n_models - 1];
    if (r->rate_from == RATE_NONE && cvd_model_sample_rate(r->models[0]) > 0)
        r->rate = cvd_model_sample_rate(r->models[0]), r->rate_from = RATE_MODEL;
    return 0;
}

/* Says once which models declare no rate and what they run at, and what is resampled. */
static int say_rates(run *r)
{
    cvd_chain *c = NULL;
    int rc = make_chain(r, 1, &c);
    if (rc != 0)
        return rc;
    r->resampled = cvd_chain_resamples(c) > 0;
    for (int i = 0; !r->o->quiet && i < r->n_models; i++) {
        int assumed = 0;
        double mr = cvd_chain_model_rate(c, i, &assumed);
        if (!assumed)
            continue;
        if (mr > 0)
            fprintf(stderr,
                    PROG ": %s declares no sample rate: it runs at %g Hz, the rate %s (give "
                         "the rate it was trained at with --model-rate R)\n",
                    r->names[i], mr, i == 0 ? "of the input" : "of the model before it");
        else
            fprintf(stderr,
                    PROG ": %s declares no sample rate, and neither does the input: nothing "
                         "is resampled (--rate R, --model-rate R)\n",
                    r->names[i]);
    }
    if (!r->o->quiet && (r->resampled || r->n_models > 1)) {
        char d[1024];
        const double lat = cvd_chain_latency(c);
        cvd_chain_describe(c, d, sizeof d);
        fprintf(stderr, PROG ": %s at %g Hz: %s; latency %.0f frames", cvd_af_name(r->in), r->rate,
                d, lat);
        if (r->rate > 0)
            fprintf(stderr, " (%.2f ms)", 1e3 * lat / r->rate);
        fputc('\n', stderr);
    }
    cvd_chain_destroy(c);
    return 0;
}

/* The level options as gains (NAM's rules: dsp/levels.c), said once when one is given. */
static void setup_levels(run *r)
{
    const options *o = r->o;
    cvd_levels lv;
    cvd_levels_of_chain(r->models, r->n_models, &lv);
    const double in_db = cvd_input_gain_db(&lv, o->in_gain_db, o->has_level_dbu, o->level_dbu);
    const double out_db = cvd_output_gain_db(
        &lv, o->out_gain_db, o->normalize ? CVD_OUTPUT_NORMALIZED : CVD_OUTPUT_RAW, 0);
    r->in_gain = in_db == 0 ? 1.0f : cvd_db_to_gain(in_db);
    r->out_gain = out_db == 0 ? 1.0f : cvd_db_to_gain(out_db);
    r->out_ch = cvd_model_out_channels(r->model);
    cvd_limiter_init(&r->lim, r->rate > 0 ? r->rate : DEFAULT_RATE, CVD_LIMITER_CEILING_DB,
                     CVD_LIMITER_RELEASE_MS);
    if (o->quiet)
        return;
    if (o->normalize && !lv.has_loudness)
        fprintf(stderr, PROG ": %s declares no loudness: --normalize changes nothing\n",
                r->names[r->n_models - 1]);
    if (o->has_level_dbu && !lv.has_input_level)
        fprintf(stderr, PROG ": %s declares no input level: --input-level-dbu changes nothing\n",
                r->names[0]);
    if (o->in_gain_db != 0 || o->out_gain_db != 0 || o->normalize || o->has_level_dbu || o->limit) {
        fprintf(stderr, PROG ": levels: input %+.2f dB", in_db);
        if (o->has_level_dbu && lv.has_input_level)
            fprintf(stderr, " (%+.2f dB to the model's %g dBu from %g dBu)",
                    o->level_dbu - lv.input_level_dbu, lv.input_level_dbu, o->level_dbu);
        fprintf(stderr, ", output %+.2f dB", out_db);
        if (o->normalize && lv.has_loudness)
            fprintf(stderr, " (%+.2f dB: loudness %g dB to %g dB)",
                    CVD_NAM_TARGET_LOUDNESS_DB - lv.loudness, lv.loudness,
                    CVD_NAM_TARGET_LOUDNESS_DB);
        if (o->limit)
            fprintf(stderr, ", limiter at %g dBFS", CVD_LIMITER_CEILING_DB);
        fputc('\n', stderr);
    }
}

int main(int argc, char **argv)
{
    cli_set_prog(PROG);
    options o;
    run r;
    cvd_err err = {0};
    const cvd_af_info *ii;
    double t0, elapsed;
    int rc = parse_args(argc, argv, &o);

    if (rc != 0)
        return rc < 0 ? 0 : rc;
    memset(&r, 0, sizeof r);
    r.o = &o;
    if (same_file(o.input, o.output))
        return cli_fail("%s: the output is the input file: give another OUTPUT", o.output);
    if (same_file(o.model, o.output) || (o.weights && same_file(o.weights, o.output)))
        return cli_fail("%s: the output is the model file: give another OUTPUT", o.output);

    if ((rc = load_models(&r)) != 0)
        return rc;
    const int windowed =
        r.n_models == 1 && r.models[0] != NULL && cvd_model_mode(r.models[0]) == CVD_MODE_WINDOWED;
    if (o.hop && !windowed) {
        rc = cli_fail("%s: --hop %ld: the model streams (every layer runs frame by frame); --hop "
                      "applies to windowed models",
                      o.model, o.hop);
        goto done;
    }
    /* the input's channels: the first model's (an impulse response first: a sound file's
     * own, else one) */
    const int first_ir = cvd_model_is_ir_path(r.names[0]) && !o.weights;
    const int cin = first_ir ? 1 : cvd_model_in_channels(r.models[0]);
    const cvd_af_read_opts ro = {o.header, o.columns, o.time_column};
    if (cvd_af_open_read_opts(o.input, cvd_af_format_of(o.input, o.format), cin, &ro, &r.in, &err) <
        0) {
        rc = fail_err(o.input, &err);
        goto done;
    }
    ii = cvd_af_get_info(r.in);
    /* the stream's rate: the file's, --rate, or the first model's that declares one */
    if (ii->rate > 0 && o.rate > 0 && ii->rate != o.rate) {
        rc = cli_fail("%s: %g Hz in its header, --rate says %g Hz", cvd_af_name(r.in), ii->rate,
                      o.rate);
        goto done;
    }
    if (ii->rate > 0)
        r.rate = ii->rate, r.rate_from = RATE_FILE;
    else if (o.rate > 0)
        r.rate = o.rate, r.rate_from = RATE_FILE;
    for (int i = 0; i < r.n_models && r.rate_from == RATE_NONE; i++)
        if (r.models[i] && cvd_model_sample_rate(r.models[i]) > 0)
            r.rate = cvd_model_sample_rate(r.models[i]), r.rate_from = RATE_MODEL;
    if ((rc = load_irs(&r, first_ir ? ii->channels : cin)) != 0)
        goto done;
    const int cin_chain = cvd_model_in_channels(r.models[0]);
    if (ii->channels != cin_chain) {
        rc = cli_fail("%s: %d channel%s%s, the model takes %d", cvd_af_name(r.in), ii->channels,
                      ii->channels == 1 ? "" : "s",
                      o.columns       ? " chosen (--columns)"
                      : o.time_column ? " besides the time column"
                                      : "",
                      cin_chain);
        goto done;
    }
    if ((rc = say_rates(&r)) != 0)
        goto done;
    setup_levels(&r);
    if (!o.quiet && r.rate_from == RATE_NONE &&
        cvd_af_format_of(o.output, o.format) == CVD_AF_SNDFILE)
        fprintf(stderr,
                PROG ": warning: %s: no sample rate is known (the input and the model "
                     "give none): the file says %g Hz\n",
                o.output, DEFAULT_RATE);

    t0 = now();
    rc = o.offline ? run_offline(&r) : run_stream(&r);
    elapsed = now() - t0;
    if (rc == 0 && r.frames_out == 0 && (windowed || r.frames_in > 0)) {
        /* nothing came out: the input is too short for the model */
        if (windowed)
            fprintf(stderr,
                    PROG ": warning: %s: %lld frame%s, shorter than the model's window "
                         "of %ld frames: no record\n",
                    cvd_af_name(r.in), r.frames_in, r.frames_in == 1 ? "" : "s",
                    cvd_model_window(r.model));
        else
            fprintf(stderr,
                    PROG ": warning: %s: %lld frame%s, fewer than the model needs for "
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
    for (int i = 0; i < r.n_models; i++)
        cvd_model_unref(r.models[i]);
    free(r.list);
    return rc;
}
