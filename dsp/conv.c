/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The Conv1D family: Conv1D, Conv1DTranspose, SeparableConv1D, DepthwiseConv1D.
 *
 * Every layer but Conv1DTranspose is a "core" grouped convolution over a zero-padded input
 * stream (Depthwise is the grouped conv with groups = C; Separable is Depthwise followed by a
 * pointwise matrix), so one streaming engine serves them:
 *
 *   The padded stream has P zeros (the left pad) before the first input frame. Output o reads
 *   padded positions o*s .. o*s + ek - 1 and is emitted as soon as the last of them exists.
 *   Valid: P = 0. Causal: P = ek - 1. Same: P = Keras's steady-state left pad; the flush
 *   appends zeros (the right pad) until the offline output count is reached.
 *
 * The history is a linear buffer of frames (channels contiguous) with room for a chunk of new
 * frames after the frames still needed; when it is full the needed tail moves to the front
 * (one memmove every chunk, no modulo anywhere), so every dilated tap reads a contiguous span.
 *
 * Conv1DTranspose streams by gathering: full[p] = sum over (i, j) with i*s + j*d = p of
 * x[i] K[j]; full[p] is final once input floor(p/s) has arrived.
 *
 * Offline forward() is written separately and directly from Keras's formulas (padding by the
 * actual length n), so that tests comparing it with the stream check two implementations.
 *
 * Why one file of about 1,050 lines: the four layers' configuration, geometry, variables,
 * streaming engine and offline path share their static helpers (names, padding geometry,
 * weight layout), and the offline path is kept beside the stream it checks.
 *
 * Long because: configuration, geometry, variables, streaming and offline are one layer, and
 * its streaming and offline paths must agree frame for frame.
 */
#include "conv_internal.h"
#include "fftconv.h"
#include "graph_internal.h"

#include <math.h>
#include <stdlib.h>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif
#include <string.h>
#include <strings.h>

/* ---- names ------------------------------------------------------------------------------ */

static const struct {
    const char *name;
    cvd_layer_kind kind;
} kind_names[] = {
    {"Conv1D", CVD_CONV1D},
    {"Conv1DTranspose", CVD_CONV1D_TRANSPOSE},
    {"SeparableConv1D", CVD_SEPARABLE_CONV1D},
    {"DepthwiseConv1D", CVD_DEPTHWISE_CONV1D},
    {"Convolution1D", CVD_CONV1D},
    {"Convolution1DTranspose", CVD_CONV1D_TRANSPOSE},
    {"SeparableConvolution1D", CVD_SEPARABLE_CONV1D},
};

int cvd_layer_kind_parse(const char *class_name, cvd_layer_kind *out)
{
    for (size_t i = 0; class_name && i < sizeof kind_names / sizeof kind_names[0]; i++) {
        if (strcmp(class_name, kind_names[i].name) == 0) {
            *out = kind_names[i].kind;
            return CVD_OK;
        }
    }
    return CVD_EINVAL;
}

const char *cvd_layer_kind_name(cvd_layer_kind kind)
{
    return (unsigned)kind <= CVD_DEPTHWISE_CONV1D ? kind_names[kind].name : "?";
}

int cvd_padding_parse(const char *s, cvd_padding *out, cvd_err *err)
{
    static const char *const names[] = {"valid", "same", "causal"};
    for (int i = 0; s && i < 3; i++) {
        if (strcasecmp(s, names[i]) == 0) {
            *out = (cvd_padding)i;
            return CVD_OK;
        }
    }
    return cvd_err_set(err, CVD_EINVAL, "padding='%s': must be one of valid, same, causal",
                       s ? s : "(null)");
}

const char *cvd_padding_name(cvd_padding p)
{
    switch (p) {
    case CVD_PAD_VALID:
        return "valid";
    case CVD_PAD_SAME:
        return "same";
    case CVD_PAD_CAUSAL:
        return "causal";
    }
    return "?";
}

int cvd_data_format_parse(const char *s, cvd_data_format *out, cvd_err *err)
{
    /* Keras lower-cases the name, and None means the default, channels_last */
    if (s == NULL || strcasecmp(s, "channels_last") == 0) {
        *out = CVD_CHANNELS_LAST;
        return CVD_OK;
    }
    if (strcasecmp(s, "channels_first") == 0) {
        *out = CVD_CHANNELS_FIRST;
        return CVD_OK;
    }
    return cvd_err_set(err, CVD_EINVAL, "data_format='%s': must be channels_last or channels_first",
                       s ? s : "(null)");
}

const char *cvd_data_format_name(cvd_data_format f)
{
    return f == CVD_CHANNELS_FIRST ? "channels_first" : "channels_last";
}

/* ---- configuration ---------------------------------------------------------------------- */

void cvd_conv_config_init(cvd_conv_config *cfg, cvd_layer_kind kind)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->kind = kind;
    cfg->strides = 1;
    cfg->padding = CVD_PAD_VALID;
    cfg->data_format = CVD_CHANNELS_LAST;
    cfg->dilation_rate = 1;
    cfg->groups = 1;
    cfg->depth_multiplier = 1;
    cfg->output_padding = -1;
    cfg->activation = CVD_ACT_LINEAR;
    cfg->use_bias = 1;
}

static int uses_filters(cvd_layer_kind k)
{
    return k != CVD_DEPTHWISE_CONV1D;
}

int cvd_conv_config_check(const cvd_conv_config *cfg, int in_channels, cvd_err *err)
{
    const char *cls = cvd_layer_kind_name(cfg->kind);

    if ((unsigned)cfg->kind > CVD_DEPTHWISE_CONV1D)
        return cvd_err_set(err, CVD_EINVAL, "unknown layer kind %d", (int)cfg->kind);
    if (cfg->kernel_size <= 0)
        return cvd_err_set(err, CVD_EINVAL, "%s: kernel_size=%d: must be > 0", cls,
                           cfg->kernel_size);
    if (cfg->strides <= 0)
        return cvd_err_set(err, CVD_EINVAL, "%s: strides=%d: must be > 0", cls, cfg->strides);
    if (cfg->dilation_rate <= 0)
        return cvd_err_set(err, CVD_EINVAL, "%s: dilation_rate=%d: must be > 0", cls,
                           cfg->dilation_rate);
    if ((unsigned)cfg->padding > CVD_PAD_CAUSAL)
        return cvd_err_set(err, CVD_EINVAL, "%s: padding=%d: must be valid, same or causal", cls,
                           (int)cfg->padding);
    if (cfg->padding == CVD_PAD_CAUSAL && cfg->kind != CVD_CONV1D)
        return cvd_err_set(err, CVD_EINVAL,
                           "%s: padding='causal': only Conv1D supports causal padding", cls);
    if ((unsigned)cfg->data_format > CVD_CHANNELS_FIRST)
        return cvd_err_set(err, CVD_EINVAL,
                           "%s: data_format=%d: must be channels_last or channels_first", cls,
                           (int)cfg->data_format);
    if ((unsigned)cfg->activation >= CVD_ACT_COUNT)
        return cvd_err_set(err, CVD_EINVAL, "%s: activation=%d: unknown activation", cls,
                           (int)cfg->activation);
    if (uses_filters(cfg->kind) && cfg->filters <= 0)
        return cvd_err_set(err, CVD_EINVAL, "%s: filters=%d: must be > 0", cls, cfg->filters);
    if ((cfg->kind == CVD_DEPTHWISE_CONV1D || cfg->kind == CVD_SEPARABLE_CONV1D) &&
        cfg->depth_multiplier <= 0)
        return cvd_err_set(err, CVD_EINVAL, "%s: depth_multiplier=%d: must be > 0", cls,
                           cfg->depth_multiplier);
    if (cfg->kind == CVD_CONV1D) {
        if (cfg->groups <= 0)
            return cvd_err_set(err, CVD_EINVAL, "%s: groups=%d: must be > 0", cls, cfg->groups);
        if (cfg->filters % cfg->groups != 0)
            return cvd_err_set(err, CVD_EINVAL, "%s: filters=%d: must be divisible by groups=%d",
                               cls, cfg->filters, cfg->groups);
        if (in_channels > 0 && in_channels % cfg->groups != 0)
            return cvd_err_set(err, CVD_EINVAL,
                               "%s: input channels=%d: must be divisible by groups=%d", cls,
                               in_channels, cfg->groups);
    }
    if ((cfg->kind == CVD_CONV1D || cfg->kind == CVD_CONV1D_TRANSPOSE) && cfg->strides > 1 &&
        cfg->dilation_rate > 1)
        return cvd_err_set(err, CVD_EINVAL,
                           "%s: strides=%d with dilation_rate=%d: strides > 1 is not "
                           "supported together with dilation_rate > 1",
                           cls, cfg->strides, cfg->dilation_rate);
    if (cfg->kind == CVD_CONV1D_TRANSPOSE) {
        if (cfg->output_padding < -1)
            return cvd_err_set(err, CVD_EINVAL, "%s: output_padding=%d: must be >= 0", cls,
                               cfg->output_padding);
        if (cfg->output_padding >= cfg->strides)
            return cvd_err_set(err, CVD_EINVAL,
                               "%s: output_padding=%d: must be less than strides=%d", cls,
                               cfg->output_padding, cfg->strides);
    }
    if (in_channels < 0)
        return cvd_err_set(err, CVD_EINVAL, "%s: input channels=%d: must be > 0", cls, in_channels);
    if ((long long)(cfg->kernel_size - 1) * cfg->dilation_rate > (1 << 24) ||
        cfg->strides > (1 << 20) || cfg->filters > (1 << 20) || cfg->depth_multiplier > (1 << 16) ||
        in_channels > (1 << 20))
        return cvd_err_set(err, CVD_EINVAL,
                           "%s: kernel_size=%d, dilation_rate=%d, strides=%d, filters=%d: "
                           "too large",
                           cls, cfg->kernel_size, cfg->dilation_rate, cfg->strides, cfg->filters);
    /* sizes that would overflow the arithmetic below are refused rather than wrapped: each
     * factor, then the products (channels of the depthwise stage, values of a kernel) */
    if (in_channels > 0 && (long long)in_channels * cfg->depth_multiplier > (1 << 20) &&
        (cfg->kind == CVD_DEPTHWISE_CONV1D || cfg->kind == CVD_SEPARABLE_CONV1D))
        return cvd_err_set(err, CVD_EINVAL,
                           "%s: input channels=%d with depth_multiplier=%d: more than %d "
                           "channels",
                           cls, in_channels, cfg->depth_multiplier, 1 << 20);
    if (in_channels > 0 && cfg->kernel_size > 0 && cfg->groups > 0 &&
        (long double)cfg->kernel_size * in_channels * (uses_filters(cfg->kind) ? cfg->filters : 1) *
                (cfg->kind == CVD_DEPTHWISE_CONV1D || cfg->kind == CVD_SEPARABLE_CONV1D
                     ? cfg->depth_multiplier
                     : 1) /
                (cfg->kind == CVD_CONV1D ? cfg->groups : 1) >
            (long double)(1 << 28))
        return cvd_err_set(err, CVD_EINVAL,
                           "%s: kernel_size=%d, input channels=%d, filters=%d: the kernel "
                           "would have more than %d values",
                           cls, cfg->kernel_size, in_channels, cfg->filters, 1 << 28);
    return CVD_OK;
}

/* ---- geometry --------------------------------------------------------------------------- */

/* Keras's left pad for same padding with n input frames (n < 0: the steady state). */
static long same_left_pad(long n, long ek, long s)
{
    long total;
    if (n < 0) {
        total = ek - s;
    } else {
        long out = (n + s - 1) / s;
        total = (out - 1) * s + ek - n;
    }
    return total > 0 ? total / 2 : 0;
}

static long transpose_length(const cvd_layer *L, long n)
{
    long s = L->s, ek = L->ek, op = L->cfg.output_padding;
    if (n <= 0)
        return 0;
    if (L->cfg.padding == CVD_PAD_VALID)
        return (n - 1) * s + ek + (op >= 0 ? op : (ek > s ? ek : s) - ek);
    if (op < 0)
        return n * s;
    return (n - 1) * s + ek % 2 + op;
}

static long transpose_cleft(const cvd_layer *L)
{
    long s = L->s, ek = L->ek, op = L->cfg.output_padding, c;
    if (L->cfg.padding == CVD_PAD_VALID)
        return 0;
    /* max(floor(v / 2), 0): negative v gives 0 either way */
    c = op < 0 ? ek - s : ek - ek % 2 - op;
    return c > 0 ? c / 2 : 0;
}

long cvd_layer_output_length(const cvd_layer *L, long n, cvd_err *err)
{
    if (n < 0)
        return cvd_err_set(err, CVD_EINVAL, "input length %ld: must be >= 0", n);
    if (L->kind == CVD_CONV1D_TRANSPOSE)
        return transpose_length(L, n);
    if (L->cfg.padding == CVD_PAD_VALID) {
        if (n - L->ek < 0)
            return cvd_err_set(err, CVD_EINVAL,
                               "%s: input of %ld frames is shorter than the dilated kernel "
                               "extent %d with padding='valid': the output would be empty",
                               cvd_layer_kind_name(L->kind), n, L->ek);
        return (n - L->ek) / L->s + 1;
    }
    return (n + L->s - 1) / L->s;
}

/* ---- variables -------------------------------------------------------------------------- */

static void set_shape(cvd_layer *L, int i, int rank, int a, int b, int c)
{
    L->var_rank[i] = rank;
    L->var_shape[i][0] = a;
    L->var_shape[i][1] = b;
    L->var_shape[i][2] = c;
    L->var_size[i] = (size_t)a * (rank > 1 ? (size_t)b : 1) * (rank > 2 ? (size_t)c : 1);
}

static void describe_vars(cvd_layer *L)
{
    const cvd_conv_config *c = &L->cfg;
    int k = c->kernel_size;
    int i = 0;
    switch (c->kind) {
    case CVD_CONV1D:
        set_shape(L, i++, 3, k, L->C / c->groups, c->filters);
        break;
    case CVD_CONV1D_TRANSPOSE:
        set_shape(L, i++, 3, k, c->filters, L->C);
        break;
    case CVD_DEPTHWISE_CONV1D:
        set_shape(L, i++, 3, k, L->C, c->depth_multiplier);
        break;
    case CVD_SEPARABLE_CONV1D:
        set_shape(L, i++, 3, k, L->C, c->depth_multiplier);
        set_shape(L, i++, 3, 1, L->C * c->depth_multiplier, c->filters);
        break;
    }
    if (c->use_bias)
        set_shape(L, i++, 1, L->F, 0, 0);
    L->nvars = i;
    L->bias_var = c->use_bias ? i - 1 : -1;
}

int cvd_layer_var_count(const cvd_layer *L)
{
    return L->nvars;
}

int cvd_layer_var_shape(const cvd_layer *L, int index, int shape[3])
{
    if (index < 0 || index >= L->nvars)
        return CVD_EINVAL;
    memcpy(shape, L->var_shape[index], sizeof L->var_shape[index]);
    return L->var_rank[index];
}

size_t cvd_layer_var_size(const cvd_layer *L, int index)
{
    return index >= 0 && index < L->nvars ? L->var_size[index] : 0;
}

const float *cvd_layer_var(const cvd_layer *L, int index)
{
    return index >= 0 && index < L->nvars ? L->var[index] : NULL;
}

size_t cvd_layer_param_count(const cvd_layer *L)
{
    size_t n = 0;
    for (int i = 0; i < L->nvars; i++)
        n += L->var_size[i];
    return n;
}

/* Rebuild the packed forms the streaming kernels read from the Keras variables. */
static void pack_weights(cvd_layer *L)
{
    if (L->kind == CVD_CONV1D_TRANSPOSE) {
        /* Keras (k, F, C) -> [j][c][f], so the gather broadcasts inputs against rows */
        int k = L->k, F = L->F, C = L->C;
        const float *K = L->var[0];
        for (int j = 0; j < k; j++)
            for (int f = 0; f < F; f++)
                for (int c = 0; c < C; c++)
                    L->wpack[((size_t)j * C + c) * F + f] = K[((size_t)j * F + f) * C + c];
    } else {
        /* Conv1D (k, C/G, F) and Depthwise (k, C, dm) == (k, 1, C*dm) are used as they are */
        memcpy(L->wpack, L->var[0], L->var_size[0] * sizeof(float));
        if (L->fft)
            cvd_fftconv_set_kernel(L->fft, L->var[0], L->k, L->d);
    }
}

int cvd_layer_set_var(cvd_layer *L, int index, const float *data, size_t n, cvd_err *err)
{
    if (index < 0 || index >= L->nvars)
        return cvd_err_set(err, CVD_EINVAL, "%s: variable %d: the layer has %d variables",
                           cvd_layer_kind_name(L->kind), index, L->nvars);
    if (n != L->var_size[index]) {
        const int *sh = L->var_shape[index];
        if (L->var_rank[index] == 3)
            return cvd_err_set(err, CVD_EINVAL,
                               "%s: variable %d: %zu values given, the shape (%d, %d, %d) "
                               "needs %zu",
                               cvd_layer_kind_name(L->kind), index, n, sh[0], sh[1], sh[2],
                               L->var_size[index]);
        return cvd_err_set(err, CVD_EINVAL,
                           "%s: variable %d: %zu values given, the shape (%d,) needs %zu",
                           cvd_layer_kind_name(L->kind), index, n, sh[0], L->var_size[index]);
    }
    memcpy(L->var[index], data, n * sizeof(float));
    if (index == 0) /* the kernel: the packed forms (and spectra) derive from it */
        pack_weights(L);
    return CVD_OK;
}

void cvd_layer_init_weights(cvd_layer *L, uint64_t seed)
{
    cvd_rng rng;
    cvd_rng_seed(&rng, seed);
    for (int i = 0; i < L->nvars; i++) {
        if (i == L->bias_var) {
            memset(L->var[i], 0, L->var_size[i] * sizeof(float));
            continue;
        }
        /* Keras's fans: receptive field = product of all but the last two dims */
        const int *sh = L->var_shape[i];
        double rf = sh[0];
        double fan_in = sh[1] * rf, fan_out = sh[2] * rf;
        double limit = sqrt(6.0 / (fan_in + fan_out));
        for (size_t j = 0; j < L->var_size[i]; j++)
            L->var[i][j] = (float)((2.0 * cvd_rng_uniform(&rng) - 1.0) * limit);
    }
    pack_weights(L);
}

/* ---- create / destroy ------------------------------------------------------------------- */

void cvd_layer_destroy(cvd_layer *L)
{
    if (L == NULL)
        return;
    for (int i = 0; i < 3; i++)
        free(L->var[i]);
    free(L->wpack);
    free(L->hist);
    free(L->tmp_in);
    free(L->tmp_core);
    free(L->tmp_out);
    cvd_fftconv_destroy(L->fft);
    free(L);
}

int cvd_layer_create(const cvd_conv_config *cfg, int in_channels, int max_block, cvd_layer **out,
                     cvd_err *err)
{
    cvd_layer *L;
    int rc;

    *out = NULL;
    if (in_channels <= 0)
        return cvd_err_set(err, CVD_EINVAL, "%s: input channels=%d: must be > 0",
                           cvd_layer_kind_name(cfg->kind), in_channels);
    if (max_block <= 0 || max_block > (1 << 20))
        return cvd_err_set(err, CVD_EINVAL, "max_block=%d: must be in 1..%d", max_block, 1 << 20);
    rc = cvd_conv_config_check(cfg, in_channels, err);
    if (rc < 0)
        return rc;

    L = calloc(1, sizeof *L);
    if (L == NULL)
        return cvd_err_set(err, CVD_ENOMEM, "out of memory");
    L->cfg = *cfg;
    L->kind = cfg->kind;
    L->C = in_channels;
    L->k = cfg->kernel_size;
    L->d = cfg->dilation_rate;
    L->s = cfg->strides;
    L->ek = L->d * (L->k - 1) + 1;
    L->max_block = max_block;
    switch (cfg->kind) {
    case CVD_CONV1D:
        L->G = cfg->groups;
        L->Fc = L->F = cfg->filters;
        break;
    case CVD_DEPTHWISE_CONV1D:
        L->G = L->C;
        L->Fc = L->F = L->C * cfg->depth_multiplier;
        break;
    case CVD_SEPARABLE_CONV1D:
        L->G = L->C;
        L->Fc = L->C * cfg->depth_multiplier;
        L->F = cfg->filters;
        break;
    case CVD_CONV1D_TRANSPOSE:
        L->G = 1;
        L->Fc = L->F = cfg->filters;
        break;
    }
    describe_vars(L);
    for (int i = 0; i < L->nvars; i++) {
        L->var[i] = calloc(L->var_size[i], sizeof(float));
        if (L->var[i] == NULL)
            goto nomem;
    }
    L->wpack = calloc(L->var_size[0], sizeof(float));
    if (L->wpack == NULL)
        goto nomem;

    /* streaming geometry */
    if (L->kind == CVD_CONV1D_TRANSPOSE) {
        L->c_left = transpose_cleft(L);
        /* inputs read for one output span floor((k-1)d/s)+1 frames */
        L->keep = (L->ek - 1) / L->s + 2;
        L->chunk = max_block > L->keep ? max_block : L->keep;
        /* n inputs finalise n*s frames, plus up to s held back by L(n) (same, op given) */
        L->max_out = (max_block + 1) * L->s;
        /* frames lag by the crop, or by one input frame when the offline length L(n) holds
         * back frames that the inputs so far already determine */
        L->latency = (int)((L->c_left + L->s - 1) / L->s);
        if (L->latency == 0 && transpose_length(L, 2) < 2L * L->s - L->c_left)
            L->latency = 1;
    } else {
        switch (cfg->padding) {
        case CVD_PAD_VALID:
            L->P = 0;
            break;
        case CVD_PAD_CAUSAL:
            L->P = L->ek - 1;
            break;
        case CVD_PAD_SAME:
            L->P = (int)same_left_pad(-1, L->ek, L->s);
            break;
        }
        L->keep = L->ek - 1 + L->s - 1;
        L->chunk = max_block;
        if (L->chunk < L->keep)
            L->chunk = L->keep;
        if (L->chunk < 64)
            L->chunk = 64;
        /* new positions n add at most ceil(n/s) + 1 available outputs (exactly n when s = 1) */
        L->max_out = L->s == 1 ? max_block : (max_block + L->s - 1) / L->s + 1;
        L->latency = L->ek - 1 - L->P;
    }
    L->cap = L->keep + L->chunk;
    if (L->kind != CVD_CONV1D_TRANSPOSE) {
        int B = cvd_conv_fft_choose(L->kind, L->C, L->Fc, L->G, L->k, L->d, L->s);
        if (B > 0) {
            rc = cvd_fftconv_create(L->C, L->Fc, L->G, L->ek, B, cvd_isa_active(), &L->fft, err);
            if (rc < 0) {
                cvd_layer_destroy(L);
                return rc;
            }
            /* the engine keeps its own history: one frame here for the code that resets */
            L->cap = 1;
        }
    }
    L->hist = calloc((size_t)L->cap * L->C, sizeof(float));
    L->tmp_in = calloc((size_t)max_block * L->C, sizeof(float));
    /* core output of one compute step, and the whole call's output for channels_first */
    L->core_max = L->kind == CVD_CONV1D_TRANSPOSE ? L->max_out : L->cap / L->s + 2;
    if (L->fft)
        L->core_max = max_block;
    L->tmp_core = calloc((size_t)L->core_max * L->Fc, sizeof(float));
    L->tmp_out = calloc((size_t)L->max_out * L->F, sizeof(float));
    if (!L->hist || !L->tmp_in || !L->tmp_core || !L->tmp_out)
        goto nomem;
    L->isa = cvd_isa_active();
    rc = cvd_kernels_init(L);
    if (rc < 0)
        goto nomem;

    cvd_layer_init_weights(L, 0);
    cvd_layer_reset(L);
    *out = L;
    return CVD_OK;

nomem:
    cvd_layer_destroy(L);
    return cvd_err_set(err, CVD_ENOMEM, "%s: out of memory", cvd_layer_kind_name(cfg->kind));
}

const cvd_conv_config *cvd_layer_config(const cvd_layer *L)
{
    return &L->cfg;
}
int cvd_layer_in_channels(const cvd_layer *L)
{
    return L->C;
}
int cvd_layer_out_channels(const cvd_layer *L)
{
    return L->F;
}
int cvd_layer_max_block(const cvd_layer *L)
{
    return L->max_block;
}
int cvd_layer_max_out(const cvd_layer *L)
{
    return L->max_out;
}
int cvd_layer_latency(const cvd_layer *L)
{
    return L->latency;
}

size_t cvd_layer_state_bytes(const cvd_layer *L)
{
    return ((size_t)L->cap * L->C + (size_t)L->max_block * L->C + (size_t)L->core_max * L->Fc +
            (size_t)L->max_out * L->F) *
               sizeof(float) +
           (L->fft ? cvd_fftconv_state_bytes(L->fft) : 0);
}

int cvd_layer_fft_partition(const cvd_layer *L)
{
    return L->fft ? cvd_fftconv_partition(L->fft) : 0;
}

double cvd_layer_macs_per_frame(const cvd_layer *L)
{
    double core = (double)L->k * (L->C / L->G) * L->Fc; /* per output frame */
    switch (L->kind) {
    case CVD_CONV1D_TRANSPOSE:
        return (double)L->k * L->C * L->F; /* per input frame */
    case CVD_SEPARABLE_CONV1D:
        return (core + (double)L->Fc * L->F) / L->s;
    default:
        return core / L->s;
    }
}

int cvd_layer_can_stream(const cvd_layer *L, cvd_err *err)
{
    if (cvd_activation_is_axis(L->cfg.activation) && L->cfg.data_format == CVD_CHANNELS_FIRST)
        return cvd_err_set(err, CVD_EUNSUPPORTED,
                           "%s: activation='%s' with data_format='channels_first' acts over "
                           "the time axis, which a stream does not have whole; it runs "
                           "offline only",
                           cvd_layer_kind_name(L->kind), cvd_activation_name(L->cfg.activation));
    return CVD_OK;
}

void cvd_layer_reset(cvd_layer *L)
{
    L->nin = 0;
    L->nout = 0;
    L->finished = 0;
    if (L->kind == CVD_CONV1D_TRANSPOSE) {
        L->pos0 = 0;
        L->len = 0;
    } else if (L->fft) {
        /* the left pad: P zero frames already through the engine */
        cvd_fftconv_reset(L->fft, L->P);
        L->fed = L->P;
    } else {
        /* the left pad: P zero frames already in the stream */
        memset(L->hist, 0, (size_t)L->P * L->C * sizeof(float));
        L->pos0 = 0;
        L->len = L->P;
    }
}

/* ---- streaming -------------------------------------------------------------------------- */

/* dst[t][f] += b[f] over m frames of F, then relu where asked (keras-tcn's every conv: bias
 * and relu in one pass), compiled for each ISA (the baseline's loops are SSE2's 4 lanes); the
 * same operations a value, so the same bits on each */
static inline __attribute__((always_inline)) void add_bias_body(float *dst, const float *b, int m,
                                                                int F, int relu)
{
    for (int t = 0; t < m; t++) {
        float *y = dst + (size_t)t * F;
        if (relu) {
            for (int f = 0; f < F; f++) {
                const float v = y[f] + b[f];
                y[f] = v > 0.0f ? v : 0.0f;
            }
        } else {
            for (int f = 0; f < F; f++)
                y[f] += b[f];
        }
    }
}

static void add_bias_portable(float *dst, const float *b, int m, int F, int relu)
{
    add_bias_body(dst, b, m, F, relu);
}

#if defined(__x86_64__) || defined(__i386__)
__attribute__((target("avx512f"))) static void add_bias_avx512(float *dst, const float *b, int m,
                                                               int F, int relu)
{
    add_bias_body(dst, b, m, F, relu);
}

__attribute__((target("avx2"))) static void add_bias_avx2(float *dst, const float *b, int m, int F,
                                                          int relu)
{
    add_bias_body(dst, b, m, F, relu);
}
#endif

static void add_bias(cvd_isa isa, float *dst, const float *b, int m, int F, int relu)
{
#if defined(__x86_64__) || defined(__i386__)
    if (isa == CVD_ISA_AVX512) {
        add_bias_avx512(dst, b, m, F, relu);
        return;
    }
    if (isa == CVD_ISA_AVX2) {
        add_bias_avx2(dst, b, m, F, relu);
        return;
    }
#endif
    (void)isa;
    add_bias_portable(dst, b, m, F, relu);
}

/* Bias, activation, and the separable pointwise stage, on m frames of core output `core`
 * (Fc wide) into `dst` (F wide, frame-major). */
static void finish_frames(const cvd_layer *L, const float *core, int m, float *dst)
{
    const int F = L->F;
    if (L->kind == CVD_SEPARABLE_CONV1D) {
        cvd_kernel_pointwise(L, core, m, dst);
    } else if (core != dst) {
        memcpy(dst, core, (size_t)m * F * sizeof(float));
    }
    if (L->kernel_bias && core == dst) {
        if (L->cfg.activation == CVD_ACT_RELU)
            return; /* the kernel did both */
    } else if (L->bias_var >= 0) {
        const int relu = L->cfg.activation == CVD_ACT_RELU;
        add_bias(L->isa, dst, L->var[L->bias_var], m, F, relu);
        if (relu)
            return;
    }
    if (cvd_activation_is_axis(L->cfg.activation))
        cvd_activation_apply_axis(L->cfg.activation, dst, (size_t)m, (size_t)F, (size_t)F, 1);
    else
        cvd_activation_apply(L->cfg.activation, dst, (size_t)m * F);
}

/* Emit outputs [nout, limit) of a core conv whose padded inputs are all in the history. */
static void core_emit(cvd_layer *L, long limit, float *obuf, int *n_emitted)
{
    while (L->nout < limit) {
        long m = limit - L->nout;
        if (m > L->core_max)
            m = L->core_max;
        float *dst = obuf + (size_t)*n_emitted * L->F;
        /* write the core output straight into dst when no pointwise stage follows */
        float *core = L->kind == CVD_SEPARABLE_CONV1D ? L->tmp_core : dst;
        const float *x = L->hist + (size_t)(L->nout * L->s - L->pos0) * L->C;
        cvd_kernel_conv(L, x, (int)m, core);
        finish_frames(L, core, (int)m, dst);
        L->nout += m;
        *n_emitted += (int)m;
    }
}

/* Outputs of a core conv that the history holds all inputs of. */
static long core_available(const cvd_layer *L)
{
    long npos = L->pos0 + L->len;
    if (npos < L->ek)
        return 0;
    return (npos - L->ek) / L->s + 1;
}

/* Drops the history before stream position `first` (at most up to its end), moving the
 * rest to the front of the buffer. */
static void hist_keep_from(cvd_layer *L, long first)
{
    long end = L->pos0 + L->len;
    if (first > end)
        first = end;
    long drop = first - L->pos0;
    if (drop <= 0)
        return;
    L->len -= (int)drop;
    memmove(L->hist, L->hist + (size_t)drop * L->C, (size_t)L->len * L->C * sizeof(float));
    L->pos0 = first;
}

/* Make room for at least one frame: keep what the next output still needs. */
static void core_rewind(cvd_layer *L)
{
    hist_keep_from(L, L->nout * L->s);
}

/* Appends n frames (from `in`, frame-major, or NULL for zeros) and emits up to `limit`
 * outputs (-1: all that are available). */
static void core_feed(cvd_layer *L, const float *in, long n, long limit, float *obuf,
                      int *n_emitted)
{
    const int C = L->C;
    while (n > 0) {
        if (L->len == L->cap)
            core_rewind(L);
        long m = L->cap - L->len;
        if (m > n)
            m = n;
        float *dst = L->hist + (size_t)L->len * C;
        if (in != NULL) {
            memcpy(dst, in, (size_t)m * C * sizeof(float));
            in += (size_t)m * C;
        } else {
            memset(dst, 0, (size_t)m * C * sizeof(float));
        }
        L->len += (int)m;
        n -= m;
        long avail = core_available(L);
        if (limit >= 0 && avail > limit)
            avail = limit;
        core_emit(L, avail, obuf, n_emitted);
    }
}

/* FFT path: n padded positions (from `in`, frame-major, or NULL for zeros) through the
 * engine, one core output each; those before output 0 (the lag of valid and same padding)
 * are dropped, the rest finished into obuf. */
static void fft_feed(cvd_layer *L, const float *in, long n, float *obuf, int *n_emitted)
{
    while (n > 0) {
        const int m = n > L->max_block ? L->max_block : (int)n;
        const long first = L->fed - (L->ek - 1); /* output index of this call's first frame */
        const int skip = first >= 0 ? 0 : -first >= m ? m : (int)-first;
        cvd_fftconv_process(L->fft, in, m, L->tmp_core);
        L->fed += m;
        if (m > skip) {
            finish_frames(L, L->tmp_core + (size_t)skip * L->Fc, m - skip,
                          obuf + (size_t)*n_emitted * L->F);
            L->nout += m - skip;
            *n_emitted += m - skip;
        }
        if (in != NULL)
            in += (size_t)m * L->C;
        n -= m;
    }
}

static long core_target(const cvd_layer *L)
{
    long n = L->nin;
    if (L->cfg.padding == CVD_PAD_VALID)
        return n >= L->ek ? (n - L->ek) / L->s + 1 : 0;
    return (n + L->s - 1) / L->s;
}

/* Transposed conv: compute full-output frames [p0, p0+m) by gathering from the history. */
static void transpose_emit(cvd_layer *L, long limit, float *obuf, int *n_emitted)
{
    while (L->nout < limit) {
        long m = limit - L->nout;
        if (m > L->core_max)
            m = L->core_max;
        float *dst = obuf + (size_t)*n_emitted * L->F;
        cvd_kernel_transpose(L, L->nout + L->c_left, (int)m, dst);
        finish_frames(L, dst, (int)m, dst);
        L->nout += m;
        *n_emitted += (int)m;
    }
}

static void transpose_rewind(cvd_layer *L)
{
    /* the next output reads inputs from ceil((p - (ek-1)) / s) on */
    long p = L->nout + L->c_left - (L->ek - 1);
    hist_keep_from(L, p <= 0 ? 0 : (p + L->s - 1) / L->s);
}

static void transpose_feed(cvd_layer *L, const float *in, long n, float *obuf, int *n_emitted)
{
    const int C = L->C;
    while (n > 0) {
        if (L->len == L->cap)
            transpose_rewind(L);
        long m = L->cap - L->len;
        if (m > n)
            m = n;
        memcpy(L->hist + (size_t)L->len * C, in, (size_t)m * C * sizeof(float));
        in += (size_t)m * C;
        L->len += (int)m;
        L->nin += m;
        n -= m;
        long limit = L->nin * L->s - L->c_left;
        long lmax = transpose_length(L, L->nin);
        if (limit > lmax)
            limit = lmax;
        transpose_emit(L, limit, obuf, n_emitted);
    }
}

/* channels_first blocks: [C][n] <-> frame-major */
static void planar_to_frames(const float *src, int C, int n, float *dst)
{
    for (int c = 0; c < C; c++)
        for (int t = 0; t < n; t++)
            dst[(size_t)t * C + c] = src[(size_t)c * n + t];
}

static void frames_to_planar(const float *src, int F, int n, float *dst)
{
    for (int t = 0; t < n; t++)
        for (int f = 0; f < F; f++)
            dst[(size_t)f * n + t] = src[(size_t)t * F + f];
}

int cvd_layer_process(cvd_layer *L, const float *in, int n, float *out, int *n_out)
{
    const int cf = L->cfg.data_format == CVD_CHANNELS_FIRST;
    float *obuf = cf ? L->tmp_out : out;
    const float *frames = in;
    int emitted = 0;

    *n_out = 0;
    if (n < 0 || n > L->max_block)
        return CVD_ERANGE;
    if (L->finished)
        return CVD_ESTATE;
    if (cf && cvd_activation_is_axis(L->cfg.activation))
        return CVD_EUNSUPPORTED;
    if (n == 0)
        return CVD_OK;
    if (cf) {
        planar_to_frames(in, L->C, n, L->tmp_in);
        frames = L->tmp_in;
    }
    if (L->kind == CVD_CONV1D_TRANSPOSE) {
        transpose_feed(L, frames, n, obuf, &emitted);
    } else if (L->fft) {
        L->nin += n;
        fft_feed(L, frames, n, obuf, &emitted);
    } else {
        L->nin += n;
        core_feed(L, frames, n, -1, obuf, &emitted);
    }
    if (cf)
        frames_to_planar(L->tmp_out, L->F, emitted, out);
    *n_out = emitted;
    return CVD_OK;
}

int cvd_layer_flush(cvd_layer *L, float *out, int *n_out)
{
    const int cf = L->cfg.data_format == CVD_CHANNELS_FIRST;
    float *obuf = cf ? L->tmp_out : out;
    int emitted = 0;
    long target;

    *n_out = 0;
    if (cf && cvd_activation_is_axis(L->cfg.activation))
        return CVD_EUNSUPPORTED;
    if (L->kind == CVD_CONV1D_TRANSPOSE) {
        target = transpose_length(L, L->nin);
        long limit = L->nout + L->max_out;
        if (limit > target)
            limit = target;
        /* frames past the input are zeros: the gather skips them */
        while (L->nout < limit) {
            if (L->len == L->cap)
                transpose_rewind(L);
            transpose_emit(L, limit, obuf, &emitted);
        }
    } else if (L->fft) {
        target = core_target(L);
        long limit = L->nout + L->max_out;
        if (limit > target)
            limit = target;
        /* every output the input allows is out: feed the right pad's zeros up to limit */
        if (L->nout < limit)
            fft_feed(L, NULL, limit + L->ek - 1 - L->fed, obuf, &emitted);
    } else {
        target = core_target(L);
        long limit = L->nout + L->max_out;
        if (limit > target)
            limit = target;
        /* emit what the history already allows, then feed zeros (the right pad) */
        long avail = core_available(L);
        core_emit(L, avail < limit ? avail : limit, obuf, &emitted);
        if (L->nout < limit) {
            long need = (limit - 1) * L->s + L->ek - (L->pos0 + L->len);
            core_feed(L, NULL, need, limit, obuf, &emitted);
        }
    }
    if (cf)
        frames_to_planar(L->tmp_out, L->F, emitted, out);
    *n_out = emitted;
    if (L->nout < target)
        return 1;
    L->finished = 1;
    return 0;
}

/* ---- offline ---------------------------------------------------------------------------- */

/* x[t][c] of a frame-major input, zero outside [0, n) */
static inline float xat(const float *x, long n, int C, long t, int c)
{
    if (t < 0 || t >= n)
        return 0.0f;
    return x[(size_t)t * C + c];
}

size_t cvd_layer_forward_scratch(const cvd_layer *L)
{
    return (size_t)(L->Fc > L->F ? L->Fc : L->F) + 1;
}

/* One output frame's Fc sums before the bias, in double: acc[f] = sum over taps j, then input
 * channels ch of its group, of x[t0 + j d][g Cg + ch] K[j][ch][f], x zero outside [0, n).
 * Each f's terms are added in that order whatever the vector width (a float times a float is
 * exact in double, so a fused multiply-add gives the same sum): every ISA gives the same bits,
 * the same as one f at a time. */
static void forward_frame_portable(const cvd_layer *L, const float *in, long n, long t0,
                                   double *acc)
{
    const int C = L->C, k = L->k, d = L->d, G = L->G, Cg = C / G, Fc = L->Fc, Fg = Fc / G;
    const float *K = L->var[0]; /* (k, Cg, Fc) */
    for (int f = 0; f < Fc; f++)
        acc[f] = 0.0;
    for (int j = 0; j < k; j++) {
        const long t = t0 + (long)j * d;
        const float *xr = t >= 0 && t < n ? in + (size_t)t * C : NULL;
        for (int g = 0; g < G; g++) {
            double *ag = acc + (size_t)g * Fg;
            for (int ch = 0; ch < Cg; ch++) {
                const double xv = xr ? (double)xr[g * Cg + ch] : 0.0;
                const float *kr = K + ((size_t)j * Cg + ch) * Fc + (size_t)g * Fg;
                for (int f = 0; f < Fg; f++)
                    ag[f] += xv * (double)kr[f];
            }
        }
    }
}

#if defined(__x86_64__) || defined(__i386__)
/* 32 output channels at a time in four zmm of doubles, the taps and channels in the same order
 * (a fused multiply-add of an exact product rounds as the add does); the rest as above */
__attribute__((target("avx512f"))) static void
forward_frame_avx512(const cvd_layer *L, const float *in, long n, long t0, double *acc)
{
    const int C = L->C, k = L->k, d = L->d, G = L->G, Cg = C / G, Fc = L->Fc, Fg = Fc / G;
    const float *K = L->var[0];
    if (Fg % 8 != 0) {
        forward_frame_portable(L, in, n, t0, acc);
        return;
    }
    for (int g = 0; g < G; g++) {
        int f0 = 0;
        for (; f0 + 32 <= Fg; f0 += 32) {
            __m512d a0 = _mm512_setzero_pd(), a1 = a0, a2 = a0, a3 = a0;
            for (int j = 0; j < k; j++) {
                const long t = t0 + (long)j * d;
                const float *xr = t >= 0 && t < n ? in + (size_t)t * C + (size_t)g * Cg : NULL;
                const float *kr = K + (size_t)j * Cg * Fc + (size_t)g * Fg + f0;
                for (int ch = 0; ch < Cg; ch++, kr += Fc) {
                    const __m512d x = _mm512_set1_pd(xr ? (double)xr[ch] : 0.0);
                    a0 = _mm512_fmadd_pd(x, _mm512_cvtps_pd(_mm256_loadu_ps(kr)), a0);
                    a1 = _mm512_fmadd_pd(x, _mm512_cvtps_pd(_mm256_loadu_ps(kr + 8)), a1);
                    a2 = _mm512_fmadd_pd(x, _mm512_cvtps_pd(_mm256_loadu_ps(kr + 16)), a2);
                    a3 = _mm512_fmadd_pd(x, _mm512_cvtps_pd(_mm256_loadu_ps(kr + 24)), a3);
                }
            }
            double *o = acc + (size_t)g * Fg + f0;
            _mm512_storeu_pd(o, a0);
            _mm512_storeu_pd(o + 8, a1);
            _mm512_storeu_pd(o + 16, a2);
            _mm512_storeu_pd(o + 24, a3);
        }
        for (; f0 < Fg; f0 += 8) {
            __m512d a0 = _mm512_setzero_pd();
            for (int j = 0; j < k; j++) {
                const long t = t0 + (long)j * d;
                const float *xr = t >= 0 && t < n ? in + (size_t)t * C + (size_t)g * Cg : NULL;
                const float *kr = K + (size_t)j * Cg * Fc + (size_t)g * Fg + f0;
                for (int ch = 0; ch < Cg; ch++, kr += Fc)
                    a0 = _mm512_fmadd_pd(_mm512_set1_pd(xr ? (double)xr[ch] : 0.0),
                                         _mm512_cvtps_pd(_mm256_loadu_ps(kr)), a0);
            }
            _mm512_storeu_pd(acc + (size_t)g * Fg + f0, a0);
        }
    }
}

/* the same with 16 channels in four ymm */
__attribute__((target("avx2,fma"))) static void
forward_frame_avx2(const cvd_layer *L, const float *in, long n, long t0, double *acc)
{
    const int C = L->C, k = L->k, d = L->d, G = L->G, Cg = C / G, Fc = L->Fc, Fg = Fc / G;
    const float *K = L->var[0];
    if (Fg % 4 != 0) {
        forward_frame_portable(L, in, n, t0, acc);
        return;
    }
    for (int g = 0; g < G; g++) {
        int f0 = 0;
        for (; f0 + 16 <= Fg; f0 += 16) {
            __m256d a0 = _mm256_setzero_pd(), a1 = a0, a2 = a0, a3 = a0;
            for (int j = 0; j < k; j++) {
                const long t = t0 + (long)j * d;
                const float *xr = t >= 0 && t < n ? in + (size_t)t * C + (size_t)g * Cg : NULL;
                const float *kr = K + (size_t)j * Cg * Fc + (size_t)g * Fg + f0;
                for (int ch = 0; ch < Cg; ch++, kr += Fc) {
                    const __m256d x = _mm256_set1_pd(xr ? (double)xr[ch] : 0.0);
                    a0 = _mm256_fmadd_pd(x, _mm256_cvtps_pd(_mm_loadu_ps(kr)), a0);
                    a1 = _mm256_fmadd_pd(x, _mm256_cvtps_pd(_mm_loadu_ps(kr + 4)), a1);
                    a2 = _mm256_fmadd_pd(x, _mm256_cvtps_pd(_mm_loadu_ps(kr + 8)), a2);
                    a3 = _mm256_fmadd_pd(x, _mm256_cvtps_pd(_mm_loadu_ps(kr + 12)), a3);
                }
            }
            double *o = acc + (size_t)g * Fg + f0;
            _mm256_storeu_pd(o, a0);
            _mm256_storeu_pd(o + 4, a1);
            _mm256_storeu_pd(o + 8, a2);
            _mm256_storeu_pd(o + 12, a3);
        }
        for (; f0 < Fg; f0 += 4) {
            __m256d a0 = _mm256_setzero_pd();
            for (int j = 0; j < k; j++) {
                const long t = t0 + (long)j * d;
                const float *xr = t >= 0 && t < n ? in + (size_t)t * C + (size_t)g * Cg : NULL;
                const float *kr = K + (size_t)j * Cg * Fc + (size_t)g * Fg + f0;
                for (int ch = 0; ch < Cg; ch++, kr += Fc)
                    a0 = _mm256_fmadd_pd(_mm256_set1_pd(xr ? (double)xr[ch] : 0.0),
                                         _mm256_cvtps_pd(_mm_loadu_ps(kr)), a0);
            }
            _mm256_storeu_pd(acc + (size_t)g * Fg + f0, a0);
        }
    }
}
#endif

static inline void forward_frame(cvd_isa isa, const cvd_layer *L, const float *in, long n, long t0,
                                 double *acc)
{
#if defined(__x86_64__) || defined(__i386__)
    if (isa == CVD_ISA_AVX512) {
        forward_frame_avx512(L, in, n, t0, acc);
        return;
    }
    if (isa == CVD_ISA_AVX2) {
        forward_frame_avx2(L, in, n, t0, acc);
        return;
    }
#endif
    (void)isa;
    forward_frame_portable(L, in, n, t0, acc);
}

/* Keras's output before the activation: n frames (frame-major) in, nl frames out. */
static void forward_core(const cvd_layer *L, const float *in, long n, float *y, long nl,
                         double *acc)
{
    const cvd_conv_config *c = &L->cfg;
    const int C = L->C, F = L->F, k = L->k, d = L->d, s = L->s;

    if (L->kind == CVD_CONV1D_TRANSPOSE) {
        /* full[i*s + j*d] += x[i] K[j][f][:], cropped by c_left */
        const float *K = L->var[0];
        long cl = transpose_cleft(L);
        for (long o = 0; o < nl; o++) {
            long p = o + cl;
            for (int f = 0; f < F; f++)
                acc[f] = 0.0;
            for (int j = 0; j < k; j++) {
                long q = p - (long)j * d;
                if (q < 0 || q % s != 0)
                    continue;
                long i = q / s;
                if (i >= n)
                    continue;
                for (int f = 0; f < F; f++)
                    for (int ch = 0; ch < C; ch++)
                        acc[f] += (double)xat(in, n, C, i, ch) * K[((size_t)j * F + f) * C + ch];
            }
            for (int f = 0; f < F; f++)
                y[(size_t)o * F + f] = (float)acc[f];
        }
    } else {
        long left = c->padding == CVD_PAD_VALID    ? 0
                    : c->padding == CVD_PAD_CAUSAL ? L->ek - 1
                                                   : same_left_pad(n, L->ek, s);
        const int Fc = L->Fc;
        for (long o = 0; o < nl; o++) {
            forward_frame(L->isa, L, in, n, o * s - left, acc);
            if (L->kind == CVD_SEPARABLE_CONV1D) {
                const float *Pw = L->var[1]; /* (1, Fc, F) */
                for (int f = 0; f < F; f++) {
                    double a = 0.0;
                    for (int m = 0; m < Fc; m++)
                        a += (float)acc[m] * (double)Pw[(size_t)m * F + f];
                    y[(size_t)o * F + f] = (float)a;
                }
            } else {
                for (int f = 0; f < F; f++)
                    y[(size_t)o * F + f] = (float)acc[f];
            }
        }
    }
    if (L->bias_var >= 0) {
        const float *b = L->var[L->bias_var];
        for (long o = 0; o < nl; o++)
            for (int f = 0; f < F; f++)
                y[(size_t)o * F + f] += b[f];
    }
}

void cvd_layer_forward_cl(const cvd_layer *L, const float *in, long n, float *out, long nl,
                          double *acc)
{
    const int F = L->F;
    forward_core(L, in, n, out, nl, acc);
    if (nl <= 0)
        return;
    if (cvd_activation_is_axis(L->cfg.activation))
        cvd_activation_apply_axis(L->cfg.activation, out, (size_t)nl, (size_t)F, (size_t)F, 1);
    else
        cvd_activation_apply(L->cfg.activation, out, (size_t)nl * F);
}

int cvd_layer_forward(const cvd_layer *L, const float *in, long n, float *out, long *n_out,
                      cvd_err *err)
{
    const cvd_conv_config *c = &L->cfg;
    const int cf = c->data_format == CVD_CHANNELS_FIRST;
    const int C = L->C, F = L->F;
    long nl = cvd_layer_output_length(L, n, err);
    double *acc;
    float *y = NULL, *x = NULL;

    *n_out = 0;
    if (nl < 0)
        return (int)nl;
    acc = malloc(cvd_layer_forward_scratch(L) * sizeof(double));
    if (cf) {
        y = malloc(((size_t)nl * F + 1) * sizeof(float));
        x = malloc(((size_t)n * C + 1) * sizeof(float));
    }
    if (acc == NULL || (cf && (y == NULL || x == NULL))) {
        free(y);
        free(x);
        free(acc);
        return cvd_err_set(err, CVD_ENOMEM, "out of memory for %ld output frames", nl);
    }
    if (!cf) {
        cvd_layer_forward_cl(L, in, n, out, nl, acc);
    } else {
        /* the input as frames; the output back in channels_first, where the activation
         * acts (softmax over the last axis: time) */
        planar_to_frames(in, C, (int)n, x);
        forward_core(L, x, n, y, nl, acc);
        for (long o = 0; o < nl; o++)
            for (int f = 0; f < F; f++)
                out[(size_t)f * nl + o] = y[(size_t)o * F + f];
        if (cvd_activation_is_axis(c->activation)) /* last axis: time */
            cvd_activation_apply_axis(c->activation, out, (size_t)F, (size_t)nl, (size_t)nl, 1);
        else
            cvd_activation_apply(c->activation, out, (size_t)nl * F);
    }
    free(y);
    free(x);
    free(acc);
    *n_out = nl;
    return CVD_OK;
}
