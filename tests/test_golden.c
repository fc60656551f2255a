/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_golden.c - the Conv1D family against golden vectors from an independent
 * implementation (PyTorch in float64, scripts/gen_golden.py; format described there and in
 * tests/data/golden/README.md).
 *
 * For every case: build the layer from the Keras arguments of the header, load its weights,
 * check the offline output (length and values) of cvd_layer_forward(), then stream the input
 * through cvd_layer_process() in several block splits (all at once; blocks of 1; random
 * block sizes in [0, max_block], twice, with a reset between) followed by cvd_layer_flush()
 * until it returns 0, and compare the concatenation with the stream reference. Cases that
 * cannot stream (softmax/log_softmax over time) must be refused by cvd_layer_can_stream().
 *
 * The random splits come from a seed printed on every mismatch; set CVD_GOLDEN_SEED to
 * replay or vary it.
 */
#include <criterion/criterion.h>
#include <criterion/logging.h>

#include <inttypes.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "convd_dsp.h"

#define GOLDEN_DIR "tests/data/golden/"
#define GOLDEN_DEFAULT_SEED UINT64_C(0x636f6e7664676f6c)

/*
 * Tolerance: |got - want| <= GOLDEN_RTOL * max(1, max |want| of the case).
 * The library computes in float32 and the reference in float64. gen_golden.py runs every
 * case through the same PyTorch mapping in float32 too and reports the worst error on this
 * scale: 4.9e-7 over all 428 cases, exponential/softmax included (weights are scaled so
 * that exponential's argument stays small). 1e-5 leaves a 20x margin for a different
 * summation order, and is tight enough that any wrong tap, pad or activation fails (convd
 * itself stayed within 5e-7 when this was written; build with -DGOLDEN_RTOL=... to probe).
 * No looser bound is needed for the exponential-type activations.
 */
#ifndef GOLDEN_RTOL
#define GOLDEN_RTOL 1e-5
#endif

/* Print at most this many mismatching values per comparison. */
#define GOLDEN_MAX_REPORT 3

/* The spec's activation table; every name must appear in the data. */
static const char *const spec_activations[] = {
    "linear",     "relu",        "relu6",       "leaky_relu",   "elu",         "selu",
    "celu",       "gelu",        "sigmoid",     "hard_sigmoid", "tanh",        "hard_tanh",
    "softplus",   "softsign",    "silu",        "swish",        "hard_silu",   "hard_swish",
    "mish",       "exponential", "log_sigmoid", "tanh_shrink",  "hard_shrink", "soft_shrink",
    "squareplus", "softmax",     "log_softmax",
};
#define N_SPEC_ACTIVATIONS (sizeof spec_activations / sizeof spec_activations[0])

/* ---- the file format ---------------------------------------------------------------------- */

typedef struct gtensor {
    long frames;
    int chans;
    double *v; /* in the case's data_format layout */
} gtensor;

typedef struct gvar {
    int rank;
    int shape[3];
    size_t size;
    float *v;
} gvar;

typedef struct gcase {
    int index;
    char header[1100]; /* the whole header line, for messages */
    char class_name[64], padding[64], data_format[64], activation[64];
    int filters, kernel_size, strides, dilation_rate, groups, depth_multiplier;
    int output_padding; /* -1 = null (None) */
    int use_bias;
    int in_channels;
    long n;
    int offline_only;
    unsigned seen; /* bit mask of header keys present */
    int n_vars;
    gvar vars[3];
    gtensor input, offline, stream;
    int has_stream;
} gcase;

typedef struct greader {
    const char *path;
    FILE *f;
    int total; /* from the trailer, -1 until read */
    int count;
    char err[512];
} greader;

enum {
    K_CLASS = 1u << 0,
    K_FILTERS = 1u << 1,
    K_KERNEL = 1u << 2,
    K_STRIDES = 1u << 3,
    K_PADDING = 1u << 4,
    K_OUTPAD = 1u << 5,
    K_FORMAT = 1u << 6,
    K_DILATION = 1u << 7,
    K_GROUPS = 1u << 8,
    K_DM = 1u << 9,
    K_ACT = 1u << 10,
    K_BIAS = 1u << 11,
    K_INCH = 1u << 12,
    K_N = 1u << 13,
    K_OFFONLY = 1u << 14,
};

static void gcase_free(gcase *c)
{
    for (int i = 0; i < 3; i++)
        free(c->vars[i].v);
    free(c->input.v);
    free(c->offline.v);
    free(c->stream.v);
    memset(c, 0, sizeof *c);
}

static int greader_open(greader *r, const char *path)
{
    memset(r, 0, sizeof *r);
    r->path = path;
    r->total = -1;
    r->f = fopen(path, "r");
    if (!r->f) {
        snprintf(r->err, sizeof r->err, "%s: cannot open (run from the top of the tree)", path);
        return -1;
    }
    return 0;
}

static void greader_close(greader *r)
{
    if (r->f)
        fclose(r->f);
    r->f = NULL;
}

static int fail(greader *r, const char *what)
{
    snprintf(r->err, sizeof r->err, "%s: after case %d: %s", r->path, r->count - 1, what);
    return -1;
}

static int parse_int(const char *s, int *out)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (*s == '\0' || *end != '\0' || v < -1000000 || v > 1000000)
        return -1;
    *out = (int)v;
    return 0;
}

static int parse_header(greader *r, gcase *c, char *line)
{
    const char *p = line;
    char key[64], val[64];
    int used;
    while (sscanf(p, " %63[^= \n]=%63s%n", key, val, &used) == 2) {
        p += used;
        int iv = 0;
        int is_int = parse_int(val, &iv) == 0;
#define STR_KEY(name, field, bit)                                                                  \
    if (strcmp(key, name) == 0) {                                                                  \
        snprintf(c->field, sizeof c->field, "%s", val);                                            \
        c->seen |= (bit);                                                                          \
        continue;                                                                                  \
    }
#define INT_KEY(name, field, bit)                                                                  \
    if (strcmp(key, name) == 0) {                                                                  \
        if (!is_int)                                                                               \
            return fail(r, "header: non-integer value for " name);                                 \
        c->field = iv;                                                                             \
        c->seen |= (bit);                                                                          \
        continue;                                                                                  \
    }
        STR_KEY("class_name", class_name, K_CLASS)
        STR_KEY("padding", padding, K_PADDING)
        STR_KEY("data_format", data_format, K_FORMAT)
        STR_KEY("activation", activation, K_ACT)
        INT_KEY("filters", filters, K_FILTERS)
        INT_KEY("kernel_size", kernel_size, K_KERNEL)
        INT_KEY("strides", strides, K_STRIDES)
        INT_KEY("dilation_rate", dilation_rate, K_DILATION)
        INT_KEY("groups", groups, K_GROUPS)
        INT_KEY("depth_multiplier", depth_multiplier, K_DM)
        INT_KEY("in_channels", in_channels, K_INCH)
        INT_KEY("offline_only", offline_only, K_OFFONLY)
#undef STR_KEY
#undef INT_KEY
        if (strcmp(key, "n") == 0 && is_int) {
            c->n = iv;
            c->seen |= K_N;
            continue;
        }
        if (strcmp(key, "output_padding") == 0) {
            if (strcmp(val, "null") == 0)
                c->output_padding = -1;
            else if (!is_int)
                return fail(r, "header: bad output_padding");
            else
                c->output_padding = iv;
            c->seen |= K_OUTPAD;
            continue;
        }
        if (strcmp(key, "use_bias") == 0) {
            if (strcmp(val, "true") == 0)
                c->use_bias = 1;
            else if (strcmp(val, "false") == 0)
                c->use_bias = 0;
            else
                return fail(r, "header: bad use_bias");
            c->seen |= K_BIAS;
            continue;
        }
        snprintf(r->err, sizeof r->err, "%s: case %d: unknown header key '%s'", r->path, c->index,
                 key);
        return -1;
    }
    while (*p == ' ' || *p == '\n' || *p == '\r')
        p++;
    if (*p != '\0')
        return fail(r, "header: trailing garbage");

    unsigned need = K_CLASS | K_KERNEL | K_STRIDES | K_PADDING | K_FORMAT | K_DILATION | K_ACT |
                    K_BIAS | K_INCH | K_N | K_OFFONLY;
    if (strcmp(c->class_name, "DepthwiseConv1D") != 0)
        need |= K_FILTERS;
    if (strcmp(c->class_name, "Conv1D") == 0)
        need |= K_GROUPS;
    if (strcmp(c->class_name, "Conv1DTranspose") == 0)
        need |= K_OUTPAD;
    if (strcmp(c->class_name, "SeparableConv1D") == 0 ||
        strcmp(c->class_name, "DepthwiseConv1D") == 0)
        need |= K_DM;
    if ((c->seen & need) != need) {
        snprintf(r->err, sizeof r->err, "%s: case %d: header lacks keys (mask %#x of %#x)", r->path,
                 c->index, c->seen & need, need);
        return -1;
    }
    if (c->in_channels < 1 || c->n < 0)
        return fail(r, "header: bad in_channels or n");
    return 0;
}

static int read_tensor(greader *r, gtensor *t)
{
    if (fscanf(r->f, "%ld %d", &t->frames, &t->chans) != 2 || t->frames < 0 || t->chans < 1 ||
        t->frames > 100000 || t->chans > 1000)
        return fail(r, "bad tensor shape");
    size_t size = (size_t)t->frames * (size_t)t->chans;
    t->v = malloc((size ? size : 1) * sizeof *t->v);
    if (!t->v)
        return fail(r, "out of memory");
    for (size_t i = 0; i < size; i++)
        if (fscanf(r->f, "%lf", &t->v[i]) != 1)
            return fail(r, "short tensor");
    return 0;
}

/* Reads the next case: 1 = got one, 0 = end of file (trailer read), -1 = error (r->err). */
static int greader_next(greader *r, gcase *c)
{
    char tok[64];
    memset(c, 0, sizeof *c);
    for (;;) {
        if (fscanf(r->f, " %63s", tok) != 1)
            return fail(r, "unexpected end of file (no 'total' trailer)");
        if (tok[0] != '#')
            break;
        int ch;
        while ((ch = fgetc(r->f)) != EOF && ch != '\n') {
        }
    }
    if (strcmp(tok, "total") == 0) {
        if (fscanf(r->f, "%d", &r->total) != 1)
            return fail(r, "bad trailer");
        if (fscanf(r->f, " %63s", tok) == 1)
            return fail(r, "data after the trailer");
        return 0;
    }
    if (strcmp(tok, "case") != 0)
        return fail(r, "expected 'case'");
    char rest[1024];
    if (fscanf(r->f, "%d", &c->index) != 1 || !fgets(rest, sizeof rest, r->f))
        return fail(r, "bad case line");
    if (!strchr(rest, '\n'))
        return fail(r, "case line too long");
    snprintf(c->header, sizeof c->header, "case %d%s", c->index, rest);
    c->header[strcspn(c->header, "\n")] = '\0';
    if (c->index != r->count)
        return fail(r, "case indices out of order");
    r->count++;
    if (parse_header(r, c, rest) < 0)
        return -1;

    for (;;) {
        if (fscanf(r->f, " %63s", tok) != 1)
            return fail(r, "unexpected end of case");
        if (strcmp(tok, "end") == 0)
            break;
        if (strcmp(tok, "var") == 0) {
            int idx;
            if (fscanf(r->f, "%d", &idx) != 1 || idx != c->n_vars || idx >= 3)
                return fail(r, "bad var index");
            gvar *v = &c->vars[idx];
            if (fscanf(r->f, "%d", &v->rank) != 1 || v->rank < 1 || v->rank > 3)
                return fail(r, "bad var rank");
            v->size = 1;
            for (int i = 0; i < v->rank; i++) {
                if (fscanf(r->f, "%d", &v->shape[i]) != 1 || v->shape[i] < 1 || v->shape[i] > 4096)
                    return fail(r, "bad var shape");
                v->size *= (size_t)v->shape[i];
            }
            v->v = malloc(v->size * sizeof *v->v);
            if (!v->v)
                return fail(r, "out of memory");
            for (size_t i = 0; i < v->size; i++)
                if (fscanf(r->f, "%f", &v->v[i]) != 1)
                    return fail(r, "short var");
            c->n_vars++;
        } else if (strcmp(tok, "input") == 0) {
            if (read_tensor(r, &c->input) < 0)
                return -1;
        } else if (strcmp(tok, "offline") == 0) {
            if (read_tensor(r, &c->offline) < 0)
                return -1;
        } else if (strcmp(tok, "stream") == 0) {
            if (read_tensor(r, &c->stream) < 0)
                return -1;
            c->has_stream = 1;
        } else {
            return fail(r, "unknown line tag");
        }
    }
    if (!c->input.v || !c->offline.v || c->n_vars == 0)
        return fail(r, "case lacks input, offline or var lines");
    if (c->input.frames != c->n || c->input.chans != c->in_channels)
        return fail(r, "input shape differs from the header");
    if (c->has_stream == c->offline_only)
        return fail(r, "stream line present iff offline_only=0 violated");
    if (c->has_stream &&
        (c->stream.frames != c->offline.frames || c->stream.chans != c->offline.chans))
        return fail(r, "stream and offline shapes differ");
    return 1;
}

/* ---- checking one case -------------------------------------------------------------------- */

typedef struct gctx {
    const char *file;
    const gcase *c;
    uint64_t seed;
    int cf; /* channels_first */
} gctx;

static uint64_t splitmix64(uint64_t *s)
{
    uint64_t z = (*s += UINT64_C(0x9e3779b97f4a7c15));
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

static int rand_below(uint64_t *s, int n)
{
    return (int)(splitmix64(s) % (uint64_t)n);
}

static uint64_t golden_seed(void)
{
    const char *e = getenv("CVD_GOLDEN_SEED");
    if (e && *e)
        return strtoull(e, NULL, 0);
    return GOLDEN_DEFAULT_SEED;
}

/* Index of frame t, channel ch of a frames x chans tensor in the case's layout. */
static size_t at(int cf, long frames, int chans, long t, int ch)
{
    return cf ? (size_t)ch * (size_t)frames + (size_t)t : (size_t)t * (size_t)chans + (size_t)ch;
}

static double max_abs(const gtensor *t)
{
    double m = 0.0;
    size_t size = (size_t)t->frames * (size_t)t->chans;
    for (size_t i = 0; i < size; i++)
        if (fabs(t->v[i]) > m)
            m = fabs(t->v[i]);
    return m;
}

/*
 * Compares `got` (frames x chans in layout `got_cf`) with `want` (in the case's layout).
 * Reports the first mismatches and a summary through cr_expect; returns the mismatch count.
 */
static long compare(const gctx *g, const char *what, const float *got, int got_cf,
                    const gtensor *want)
{
    double tol = GOLDEN_RTOL * fmax(1.0, max_abs(want));
    long bad = 0, total = want->frames * want->chans;
    for (long t = 0; t < want->frames; t++) {
        for (int ch = 0; ch < want->chans; ch++) {
            double w = want->v[at(g->cf, want->frames, want->chans, t, ch)];
            double x = got[at(got_cf, want->frames, want->chans, t, ch)];
            if (fabs(x - w) <= tol)
                continue;
            if (bad < GOLDEN_MAX_REPORT)
                cr_expect(fabs(x - w) <= tol,
                          "%s case %d (%s) %s: frame %ld channel %d: got %.9g, want %.9g "
                          "(tol %.3g, seed %#" PRIx64 ")",
                          g->file, g->c->index, g->c->header, what, t, ch, x, w, tol, g->seed);
            bad++;
        }
    }
    cr_expect(bad == 0, "%s case %d (%s) %s: %ld of %ld values differ", g->file, g->c->index,
              g->c->header, what, bad, total);
    return bad;
}

static int build_config(const gctx *g, cvd_conv_config *cfg)
{
    const gcase *c = g->c;
    cvd_layer_kind kind;
    cvd_err err = {0};
    int rc = cvd_layer_kind_parse(c->class_name, &kind);
    cr_expect(rc == CVD_OK, "%s case %d: cvd_layer_kind_parse(\"%s\") = %d", g->file, c->index,
              c->class_name, rc);
    if (rc != CVD_OK)
        return -1;
    cvd_conv_config_init(cfg, kind);
    if (c->seen & K_FILTERS)
        cfg->filters = c->filters;
    cfg->kernel_size = c->kernel_size;
    cfg->strides = c->strides;
    cfg->dilation_rate = c->dilation_rate;
    if (c->seen & K_GROUPS)
        cfg->groups = c->groups;
    if (c->seen & K_DM)
        cfg->depth_multiplier = c->depth_multiplier;
    if (c->seen & K_OUTPAD)
        cfg->output_padding = c->output_padding;
    cfg->use_bias = c->use_bias;
    rc = cvd_padding_parse(c->padding, &cfg->padding, &err);
    cr_expect(rc == CVD_OK, "%s case %d: padding %s: %s", g->file, c->index, c->padding, err.msg);
    if (rc != CVD_OK)
        return -1;
    rc = cvd_data_format_parse(c->data_format, &cfg->data_format, &err);
    cr_expect(rc == CVD_OK, "%s case %d: data_format %s: %s", g->file, c->index, c->data_format,
              err.msg);
    if (rc != CVD_OK)
        return -1;
    rc = cvd_activation_parse(c->activation, &cfg->activation, &err);
    cr_expect(rc == CVD_OK, "%s case %d: activation %s: %s", g->file, c->index, c->activation,
              err.msg);
    if (rc != CVD_OK)
        return -1;
    rc = cvd_conv_config_check(cfg, c->in_channels, &err);
    cr_expect(rc == CVD_OK, "%s case %d (%s): cvd_conv_config_check: %s", g->file, c->index,
              c->header, err.msg);
    return rc == CVD_OK ? 0 : -1;
}

/* Creates the layer and loads the case's weights; NULL (after reporting) on failure. */
static cvd_layer *make_layer(const gctx *g, const cvd_conv_config *cfg, int max_block)
{
    const gcase *c = g->c;
    cvd_layer *layer = NULL;
    cvd_err err = {0};
    int rc = cvd_layer_create(cfg, c->in_channels, max_block, &layer, &err);
    cr_expect(rc == CVD_OK && layer, "%s case %d (%s): cvd_layer_create(max_block %d): %d %s",
              g->file, c->index, c->header, max_block, rc, err.msg);
    if (rc != CVD_OK || !layer)
        return NULL;
    int ok = 1;
    int nv = cvd_layer_var_count(layer);
    cr_expect(nv == c->n_vars, "%s case %d (%s): %d variables, the file has %d", g->file, c->index,
              c->header, nv, c->n_vars);
    ok &= nv == c->n_vars;
    for (int i = 0; ok && i < nv; i++) {
        int shape[3] = {0, 0, 0};
        int rank = cvd_layer_var_shape(layer, i, shape);
        int same = rank == c->vars[i].rank;
        for (int d = 0; same && d < rank; d++)
            same = shape[d] == c->vars[i].shape[d];
        cr_expect(same,
                  "%s case %d (%s): vars/%d has rank %d shape (%d,%d,%d), want rank %d "
                  "shape (%d,%d,%d)",
                  g->file, c->index, c->header, i, rank, shape[0], shape[1], shape[2],
                  c->vars[i].rank, c->vars[i].shape[0], c->vars[i].shape[1], c->vars[i].shape[2]);
        ok &= same;
        if (!same)
            break;
        rc = cvd_layer_set_var(layer, i, c->vars[i].v, c->vars[i].size, &err);
        cr_expect(rc == CVD_OK, "%s case %d (%s): cvd_layer_set_var(%d): %s", g->file, c->index,
                  c->header, i, err.msg);
        ok &= rc == CVD_OK;
    }
    int oc = cvd_layer_out_channels(layer);
    cr_expect(oc == c->offline.chans, "%s case %d (%s): %d output channels, want %d", g->file,
              c->index, c->header, oc, c->offline.chans);
    ok &= oc == c->offline.chans;
    if (!ok) {
        cvd_layer_destroy(layer);
        return NULL;
    }
    return layer;
}

static void check_offline(const gctx *g, cvd_layer *layer)
{
    const gcase *c = g->c;
    cvd_err err = {0};
    long want_n = c->offline.frames;
    long len = cvd_layer_output_length(layer, c->n, &err);
    cr_expect(len == want_n, "%s case %d (%s): cvd_layer_output_length(%ld) = %ld, want %ld %s",
              g->file, c->index, c->header, c->n, len, want_n, err.msg);
    if (len != want_n)
        return;

    size_t in_size = (size_t)c->n * (size_t)c->in_channels;
    size_t out_size = (size_t)want_n * (size_t)c->offline.chans;
    float *in = malloc((in_size ? in_size : 1) * sizeof *in);
    float *out = malloc((out_size ? out_size : 1) * sizeof *out);
    cr_assert(in && out, "out of memory");
    for (size_t i = 0; i < in_size; i++)
        in[i] = (float)c->input.v[i];
    for (size_t i = 0; i < out_size; i++)
        out[i] = NAN;
    long n_out = -1;
    int rc = cvd_layer_forward(layer, in, c->n, out, &n_out, &err);
    cr_expect(rc == CVD_OK, "%s case %d (%s): cvd_layer_forward: %d %s", g->file, c->index,
              c->header, rc, err.msg);
    if (rc == CVD_OK) {
        cr_expect(n_out == want_n, "%s case %d (%s): forward wrote %ld frames, want %ld", g->file,
                  c->index, c->header, n_out, want_n);
        if (n_out == want_n)
            compare(g, "offline", out, g->cf, &c->offline);
    }
    free(in);
    free(out);
}

enum split_mode { SPLIT_ALL, SPLIT_ONES, SPLIT_RANDOM };

struct gather_state {
    const gctx *g;
    const char *label;
    int max_out, chans;
    long want_n;
    float *got; /* channels-last, want_n x chans */
    long got_n;
};

/* Appends one process/flush call's output (n_out frames in the data_format layout of that
 * call: [C][n_out] for channels_first) to the channels-last concatenation. */
static int gather(struct gather_state *st, const float *obuf, int n_out, int call)
{
    const gctx *g = st->g;
    if (n_out < 0 || n_out > st->max_out || st->got_n + n_out > st->want_n) {
        cr_expect(0,
                  "%s case %d (%s) %s: call %d wrote %d frames (max_out %d, %ld so far, want "
                  "%ld in all; seed %#" PRIx64 ")",
                  g->file, g->c->index, g->c->header, st->label, call, n_out, st->max_out,
                  st->got_n, st->want_n, g->seed);
        return -1;
    }
    for (int t = 0; t < n_out; t++)
        for (int ch = 0; ch < st->chans; ch++)
            st->got[(size_t)(st->got_n + t) * (size_t)st->chans + (size_t)ch] =
                obuf[at(g->cf, n_out, st->chans, t, ch)];
    st->got_n += n_out;
    return 0;
}

/*
 * Streams the whole input through `layer` (fresh or reset) and compares with the stream
 * reference. Output frames are gathered channels-last whatever the data_format.
 */
static void check_stream(const gctx *g, cvd_layer *layer, enum split_mode mode, uint64_t *rng,
                         const char *what)
{
    const gcase *c = g->c;
    const int C = c->in_channels, Fo = c->stream.chans;
    const long want_n = c->stream.frames;
    const int max_block = cvd_layer_max_block(layer);
    const int max_out = cvd_layer_max_out(layer);
    char label[160];
    snprintf(label, sizeof label, "stream (%s, max_block %d)", what, max_block);

    cr_expect(max_out >= 0, "%s case %d: cvd_layer_max_out = %d", g->file, c->index, max_out);
    if (max_out < 0)
        return;
    float *blk = malloc((size_t)max_block * (size_t)C * sizeof *blk);
    float *obuf = malloc(((size_t)max_out * (size_t)Fo + 1) * sizeof *obuf);
    float *got = malloc(((size_t)want_n * (size_t)Fo + 1) * sizeof *got);
    cr_assert(blk && obuf && got, "out of memory");

    long pos = 0;
    struct gather_state sc = {g, label, max_out, Fo, want_n, got, 0};
    int ok = 1;
    int calls = 0;

    while (ok && pos < c->n) {
        int nb;
        if (mode == SPLIT_ALL)
            nb = (int)c->n;
        else if (mode == SPLIT_ONES)
            nb = 1;
        else
            nb = rand_below(rng, max_block + 1);
        if (nb > c->n - pos)
            nb = (int)(c->n - pos);
        for (int t = 0; t < nb; t++)
            for (int ch = 0; ch < C; ch++)
                blk[at(g->cf, nb, C, t, ch)] = (float)c->input.v[at(g->cf, c->n, C, pos + t, ch)];
        int n_out = -1;
        calls++;
        int rc = cvd_layer_process(layer, blk, nb, obuf, &n_out);
        if (rc != CVD_OK) {
            cr_expect(rc == CVD_OK,
                      "%s case %d (%s) %s: cvd_layer_process(%d frames at %ld) = "
                      "%d (seed %#" PRIx64 ")",
                      g->file, c->index, c->header, label, nb, pos, rc, g->seed);
            ok = 0;
            break;
        }
        if (gather(&sc, obuf, n_out, calls) < 0) {
            ok = 0;
            break;
        }
        pos += nb;
    }
    /* A stream must end: allow far more flush calls than frames could need. */
    for (int i = 0; ok; i++) {
        if (i > want_n + 64) {
            cr_expect(0, "%s case %d (%s) %s: flush still returns 1 after %d calls", g->file,
                      c->index, c->header, label, i);
            ok = 0;
            break;
        }
        int n_out = -1;
        calls++;
        int rc = cvd_layer_flush(layer, obuf, &n_out);
        if (rc < 0 || rc > 1) {
            cr_expect(0, "%s case %d (%s) %s: cvd_layer_flush = %d", g->file, c->index, c->header,
                      label, rc);
            ok = 0;
            break;
        }
        if (gather(&sc, obuf, n_out, calls) < 0) {
            ok = 0;
            break;
        }
        if (rc == 0)
            break;
    }
    if (ok) {
        cr_expect(sc.got_n == want_n,
                  "%s case %d (%s) %s: %ld frames streamed, want %ld (seed %#" PRIx64 ")", g->file,
                  c->index, c->header, label, sc.got_n, want_n, g->seed);
        if (sc.got_n == want_n)
            compare(g, label, got, 0, &c->stream);
    }
    free(blk);
    free(obuf);
    free(got);
}

static void check_case(const char *file, const gcase *c, uint64_t seed)
{
    gctx g = {file, c, seed, 0};
    cvd_conv_config cfg;
    cr_expect(strcmp(c->data_format, "channels_first") == 0 ||
                  strcmp(c->data_format, "channels_last") == 0,
              "%s case %d: data_format %s", file, c->index, c->data_format);
    g.cf = strcmp(c->data_format, "channels_first") == 0;
    if (build_config(&g, &cfg) < 0)
        return;

    /* Offline, and the whole input as one block. */
    int mb_all = c->n > 0 ? (int)c->n : 1;
    cvd_layer *layer = make_layer(&g, &cfg, mb_all);
    if (!layer)
        return;
    check_offline(&g, layer);

    cvd_err err = {0};
    int can = cvd_layer_can_stream(layer, &err);
    if (c->offline_only) {
        cr_expect(can == CVD_EUNSUPPORTED,
                  "%s case %d (%s): cvd_layer_can_stream = %d, want CVD_EUNSUPPORTED", file,
                  c->index, c->header, can);
        cvd_layer_destroy(layer);
        return;
    }
    cr_expect(can == CVD_OK, "%s case %d (%s): cvd_layer_can_stream = %d: %s", file, c->index,
              c->header, can, err.msg);
    if (can != CVD_OK) {
        cvd_layer_destroy(layer);
        return;
    }
    uint64_t rng = seed ^ ((uint64_t)c->index * UINT64_C(0x2545f4914f6cdd1d));
    for (const char *p = file; *p; p++)
        rng = rng * 31u + (unsigned char)*p;
    check_stream(&g, layer, SPLIT_ALL, &rng, "one block");
    cvd_layer_destroy(layer);

    layer = make_layer(&g, &cfg, 1);
    if (layer) {
        check_stream(&g, layer, SPLIT_ONES, &rng, "blocks of 1");
        cvd_layer_destroy(layer);
    }

    int mb = 1 + rand_below(&rng, 9);
    layer = make_layer(&g, &cfg, mb);
    if (layer) {
        check_stream(&g, layer, SPLIT_RANDOM, &rng, "random blocks");
        cvd_layer_reset(layer);
        check_stream(&g, layer, SPLIT_RANDOM, &rng, "random blocks after reset");
        cvd_layer_destroy(layer);
    }
}

/* Runs every case of one file; returns the number of cases. */
static int run_file(const char *stem, const char *class_name, int min_cases)
{
    char path[256];
    snprintf(path, sizeof path, GOLDEN_DIR "%s.txt", stem);
    uint64_t seed = golden_seed();
    cr_log_info("%s: random block splits from seed %#" PRIx64 " (CVD_GOLDEN_SEED)", path, seed);
    greader r;
    cr_assert(greader_open(&r, path) == 0, "%s", r.err);
    gcase c;
    int rc;
    while ((rc = greader_next(&r, &c)) == 1) {
        cr_expect(strcmp(c.class_name, class_name) == 0, "%s case %d: class_name %s, want %s", path,
                  c.index, c.class_name, class_name);
        check_case(path, &c, seed);
        gcase_free(&c);
    }
    gcase_free(&c);
    greader_close(&r);
    cr_assert(rc == 0, "%s", r.err);
    cr_assert(r.count == r.total, "%s: %d cases read, the trailer says %d", path, r.count, r.total);
    cr_assert(r.count >= min_cases, "%s: only %d cases, want at least %d", path, r.count,
              min_cases);
    return r.count;
}

/* Each file holds 81 random cases and 22 to 30 hand-picked ones. */
Test(golden, conv1d)
{
    run_file("conv1d", "Conv1D", 100);
}

Test(golden, conv1d_transpose)
{
    run_file("conv1d_transpose", "Conv1DTranspose", 100);
}

Test(golden, separable_conv1d)
{
    run_file("separable_conv1d", "SeparableConv1D", 100);
}

Test(golden, depthwise_conv1d)
{
    run_file("depthwise_conv1d", "DepthwiseConv1D", 100);
}

/* The data itself: enough cases, every activation of the spec in both data formats, the
 * offline-only flag exactly on softmax/log_softmax over time. Fails if data goes missing. */
Test(golden, coverage)
{
    static const char *const stems[] = {"conv1d", "conv1d_transpose", "separable_conv1d",
                                        "depthwise_conv1d"};
    int act_count[N_SPEC_ACTIVATIONS][2];
    memset(act_count, 0, sizeof act_count);
    int total = 0, offline_only = 0, empty_output = 0;
    for (size_t s = 0; s < sizeof stems / sizeof stems[0]; s++) {
        char path[256];
        snprintf(path, sizeof path, GOLDEN_DIR "%s.txt", stems[s]);
        greader r;
        cr_assert(greader_open(&r, path) == 0, "%s", r.err);
        gcase c;
        int rc;
        while ((rc = greader_next(&r, &c)) == 1) {
            int cf = strcmp(c.data_format, "channels_first") == 0;
            size_t a = 0;
            while (a < N_SPEC_ACTIVATIONS && strcmp(spec_activations[a], c.activation) != 0)
                a++;
            cr_expect(a < N_SPEC_ACTIVATIONS, "%s case %d: activation %s is not in the spec", path,
                      c.index, c.activation);
            if (a < N_SPEC_ACTIVATIONS)
                act_count[a][cf]++;
            int axis =
                strcmp(c.activation, "softmax") == 0 || strcmp(c.activation, "log_softmax") == 0;
            cr_expect(c.offline_only == (axis && cf), "%s case %d (%s): offline_only=%d", path,
                      c.index, c.header, c.offline_only);
            offline_only += c.offline_only;
            empty_output += c.offline.frames == 0;
            gcase_free(&c);
        }
        gcase_free(&c);
        greader_close(&r);
        cr_assert(rc == 0, "%s", r.err);
        cr_expect(r.count >= 100, "%s: only %d cases", path, r.count);
        total += r.count;
    }
    cr_expect(total >= 400, "only %d golden cases in all, want at least 400", total);
    for (size_t a = 0; a < N_SPEC_ACTIVATIONS; a++) {
        cr_expect(act_count[a][0] + act_count[a][1] >= 8, "activation %s: only %d cases",
                  spec_activations[a], act_count[a][0] + act_count[a][1]);
        cr_expect(act_count[a][0] > 0 && act_count[a][1] > 0,
                  "activation %s: %d channels_last and %d channels_first cases, want both",
                  spec_activations[a], act_count[a][0], act_count[a][1]);
    }
    cr_expect(offline_only >= 4, "only %d offline-only cases", offline_only);
    cr_expect(empty_output >= 1, "no case with an empty output (Conv1DTranspose same, n=1)");
}
