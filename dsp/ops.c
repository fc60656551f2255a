/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The arithmetic of the graph's nodes that have no layer object of their own: merges,
 * activations, normalisations, padding and cropping, resampling, pooling, and the windowed
 * reshapes (Flatten, Reshape, Permute, global pooling); the op names and the merge arithmetic
 * (Add, Multiply, ...) shared by the offline plan and the stream. Each node's offline result
 * follows Keras 3 exactly; the per-frame nodes also serve the stream (net.c). Nothing here
 * calls into the model files (model.c, model_query.c, plan.c): they call this.
 *
 * Tensors are frames (channels contiguous): node i's output is frames x channels floats,
 * whatever Keras's layout; a rank-1 tensor is one frame of all its values.
 */
#include "graph_internal.h"

#include <math.h>
#include <string.h>

static const char *const op_names[CVD_NODE_OP_COUNT] = {
    "InputLayer",
    "Conv",
    "Dense",
    "Activation",
    "Add",
    "Subtract",
    "Multiply",
    "Average",
    "Maximum",
    "Minimum",
    "Concatenate",
    "Identity",
    "WaveNet",
    "BatchNormalization",
    "LayerNormalization",
    "Rescaling",
    "ZeroPadding1D",
    "Cropping1D",
    "UpSampling1D",
    "MaxPooling1D",
    "AveragePooling1D",
    "GlobalMaxPooling1D",
    "GlobalAveragePooling1D",
    "Flatten",
    "Reshape",
    "Permute",
};

const char *cvd_node_op_name(cvd_node_op op)
{
    return (unsigned)op < CVD_NODE_OP_COUNT ? op_names[op] : "?";
}

/* The class a node shows in messages: the Keras class it was loaded from, the layer kind of a
 * convolution, or the op's name. */
const char *cvd_node_class(const cvd_node *nd)
{
    if (nd->cls[0])
        return nd->cls;
    if (nd->op == CVD_NODE_CONV && nd->proto)
        return cvd_layer_kind_name(cvd_layer_config(nd->proto)->kind);
    return cvd_node_op_name(nd->op);
}

int cvd_node_chmajor(const cvd_model *m, int i)
{
    return m->nodes[i].rank == 2 && m->df == CVD_CHANNELS_FIRST;
}

void cvd_batch_norm_fold(cvd_node *nd)
{
    const float *g = NULL, *b = NULL, *mu = NULL, *var = NULL;
    for (int k = 0; k < nd->nv; k++) {
        switch (nd->vrole[k]) {
        case CVD_VAR_GAMMA:
            g = nd->v[k];
            break;
        case CVD_VAR_BETA:
            b = nd->v[k];
            break;
        case CVD_VAR_MEAN:
            mu = nd->v[k];
            break;
        default:
            var = nd->v[k];
            break;
        }
    }
    for (int c = 0; c < nd->vlen; c++) {
        /* Keras: inv = rsqrt(variance + epsilon) * gamma; y = x * inv + (beta - mean * inv) */
        double inv = 1.0 / sqrt((double)var[c] + (double)nd->eps);
        if (g)
            inv *= g[c];
        nd->fa[c] = (float)inv;
        nd->fb[c] = (float)((b ? (double)b[c] : 0.0) - (double)mu[c] * inv);
    }
}

static const float *role_var(const cvd_node *nd, int role)
{
    for (int k = 0; k < nd->nv; k++)
        if (nd->vrole[k] == role)
            return nd->v[k];
    return NULL;
}

/* Layer normalisation of `len` values spaced by `stride`; gamma/beta indexed the same way
 * (index i), as Keras's formula computes it (in double). */
static void layer_norm_vec(const cvd_node *nd, const float *x, float *y, size_t len, size_t stride)
{
    const float *g = role_var(nd, CVD_VAR_GAMMA), *b = role_var(nd, CVD_VAR_BETA);
    double mean = 0.0, var = 0.0;
    if (len == 0)
        return;
    for (size_t i = 0; i < len; i++)
        mean += x[i * stride];
    mean /= (double)len;
    for (size_t i = 0; i < len; i++) {
        double d = x[i * stride] - mean;
        var += d * d;
    }
    var /= (double)len;
    const double inv = 1.0 / sqrt(var + (double)nd->eps);
    for (size_t i = 0; i < len; i++) {
        double v = x[i * stride];
        if (nd->rms) {
            /* Keras: x * rsqrt(var(x) + epsilon) * gamma (the variance about the mean) */
            v = v * inv * (g ? (double)g[i] : 1.0);
        } else {
            double a = inv * (g ? (double)g[i] : 1.0);
            v = v * a + (-mean * a + (b ? (double)b[i] : 0.0));
        }
        y[i * stride] = (float)v;
    }
}

void cvd_node_frames(const cvd_node *nd, const float *x, int n, float *y)
{
    const size_t C = (size_t)nd->channels, total = (size_t)n * C;
    switch (nd->op) {
    case CVD_NODE_ACTIVATION:
        if (!nd->nam_act && nd->act == CVD_ACT_RELU) {
            /* the copy and relu in one pass */
            for (size_t i = 0; i < total; i++)
                y[i] = x[i] > 0.0f ? x[i] : 0.0f;
            break;
        }
        if (x != y)
            memcpy(y, x, sizeof(float) * total);
        if (nd->nam_act)
            cvd_wn_activation_apply(nd->nam_act, y, n, (int)C);
        else
            cvd_activation_apply_axis(nd->act, y, (size_t)n, C, C, 1);
        break;
    case CVD_NODE_BATCH_NORM:
        for (int t = 0; t < n; t++)
            for (size_t c = 0; c < C; c++)
                y[t * C + c] = x[t * C + c] * nd->fa[c] + nd->fb[c];
        break;
    case CVD_NODE_LAYER_NORM:
        for (int t = 0; t < n; t++)
            layer_norm_vec(nd, x + t * C, y + t * C, C, 1);
        break;
    case CVD_NODE_RESCALING:
        for (size_t i = 0; i < total; i++)
            y[i] = x[i] * nd->mul + nd->add;
        break;
    default: /* IDENTITY, PERMUTE (1, 2) */
        if (x != y)
            memmove(y, x, sizeof(float) * total);
        break;
    }
}

long cvd_node_out_frames(const cvd_model *m, int i, const long *in_len, cvd_err *err)
{
    const cvd_node *nd = &m->nodes[i];
    const long n = in_len[0];
    switch (nd->op) {
    case CVD_NODE_CONV:
    case CVD_NODE_DENSE: {
        long nl = cvd_layer_output_length(nd->proto, n, err);
        if (nl < 0)
            cvd_err_prefix(err, "%s '%s'", cvd_node_class(nd), nd->name);
        return nl;
    }
    case CVD_NODE_ZERO_PADDING:
        return n + nd->left + nd->right;
    case CVD_NODE_CROPPING:
        if (n - nd->left - nd->right <= 0)
            return cvd_err_set(err, CVD_EINVAL,
                               "Cropping1D '%s': cropping (%d, %d) of %ld frames leaves "
                               "nothing",
                               nd->name, nd->left, nd->right, n);
        return n - nd->left - nd->right;
    case CVD_NODE_UPSAMPLING:
        return n * nd->size;
    case CVD_NODE_MAX_POOL:
    case CVD_NODE_AVG_POOL: {
        long nl = cvd_pool_out_len(nd->k, nd->s, nd->padding, n);
        if (nl <= 0)
            return cvd_err_set(err, CVD_EINVAL,
                               "%s '%s': input of %ld frames is shorter than pool_size=%d "
                               "with padding='valid': the output would be empty",
                               cvd_node_op_name(nd->op), nd->name, n, nd->k);
        return nl;
    }
    case CVD_NODE_GLOBAL_MAX_POOL:
    case CVD_NODE_GLOBAL_AVG_POOL:
    case CVD_NODE_FLATTEN:
    case CVD_NODE_RESHAPE:
        if (m->nodes[nd->inputs[0]].frames >= 0 && n != m->nodes[nd->inputs[0]].frames)
            return cvd_err_set(
                err, CVD_EINVAL, "%s '%s': its input has %ld frames, the model was built for %ld",
                cvd_node_op_name(nd->op), nd->name, n, m->nodes[nd->inputs[0]].frames);
        if (n <= 0)
            return cvd_err_set(err, CVD_EINVAL, "%s '%s': an empty input", cvd_node_op_name(nd->op),
                               nd->name);
        return nd->op == CVD_NODE_RESHAPE ? nd->frames : 1;
    case CVD_NODE_PERMUTE:
        if (!nd->size)
            return n;
        if (n != m->nodes[nd->inputs[0]].frames)
            return cvd_err_set(err, CVD_EINVAL,
                               "Permute '%s': its input has %ld frames, the model was built "
                               "for %ld",
                               nd->name, n, m->nodes[nd->inputs[0]].frames);
        return m->nodes[nd->inputs[0]].channels;
    case CVD_NODE_ADD:
    case CVD_NODE_SUBTRACT:
    case CVD_NODE_MULTIPLY:
    case CVD_NODE_AVERAGE:
    case CVD_NODE_MAXIMUM:
    case CVD_NODE_MINIMUM:
    case CVD_NODE_CONCATENATE:
        for (int k = 1; k < nd->n_inputs; k++)
            if (in_len[k] != n)
                return cvd_err_set(err, CVD_EINVAL,
                                   "%s '%s': input '%s' has %ld frames, input '%s' has %ld",
                                   cvd_node_op_name(nd->op), nd->name, m->nodes[nd->inputs[k]].name,
                                   in_len[k], m->nodes[nd->inputs[0]].name, n);
        return n;
    default: /* per-frame nodes, WAVENET */
        return n;
    }
}

void cvd_node_compute(const cvd_model *m, int i, const float *const *x, const long *in_len,
                      float *y, long len)
{
    const cvd_node *nd = &m->nodes[i];
    const int C = nd->channels;
    const cvd_node *src = &m->nodes[nd->inputs[0]];
    const int Cin = src->channels;
    const long n = in_len[0];
    const float *a = x[0];

    switch (nd->op) {
    case CVD_NODE_ACTIVATION:
        memcpy(y, a, sizeof(float) * (size_t)len * C);
        if (nd->nam_act)
            cvd_wn_activation_apply(nd->nam_act, y, (int)len, C);
        else if (nd->axis == CVD_AXIS_TIME)
            cvd_activation_apply_axis(nd->act, y, (size_t)C, 1, (size_t)len, (size_t)C);
        else
            cvd_activation_apply_axis(nd->act, y, (size_t)len, (size_t)C, (size_t)C, 1);
        break;
    case CVD_NODE_BATCH_NORM:
        if (nd->axis == CVD_AXIS_TIME) {
            for (long t = 0; t < len; t++)
                for (int c = 0; c < C; c++)
                    y[t * C + c] = a[t * C + c] * nd->fa[t] + nd->fb[t];
        } else {
            cvd_node_frames(nd, a, (int)len, y);
        }
        break;
    case CVD_NODE_LAYER_NORM:
        if (nd->axis == CVD_AXIS_TIME) {
            for (int c = 0; c < C; c++)
                layer_norm_vec(nd, a + c, y + c, (size_t)len, (size_t)C);
        } else {
            for (long t = 0; t < len; t++)
                layer_norm_vec(nd, a + t * C, y + t * C, (size_t)C, 1);
        }
        break;
    case CVD_NODE_IDENTITY:
    case CVD_NODE_RESCALING:
        cvd_node_frames(nd, a, (int)len, y);
        break;
    case CVD_NODE_PERMUTE:
        if (!nd->size) {
            memcpy(y, a, sizeof(float) * (size_t)len * C);
            break;
        }
        /* (T, Cin) -> (Cin, T): output frame c holds channel c of every input frame */
        for (long t = 0; t < n; t++)
            for (int c = 0; c < Cin; c++)
                y[(size_t)c * n + t] = a[(size_t)t * Cin + c];
        break;
    case CVD_NODE_ZERO_PADDING:
        memset(y, 0, sizeof(float) * (size_t)nd->left * C);
        memcpy(y + (size_t)nd->left * C, a, sizeof(float) * (size_t)n * C);
        memset(y + (size_t)(nd->left + n) * C, 0, sizeof(float) * (size_t)nd->right * C);
        break;
    case CVD_NODE_CROPPING:
        memcpy(y, a + (size_t)nd->left * C, sizeof(float) * (size_t)len * C);
        break;
    case CVD_NODE_UPSAMPLING:
        for (long t = 0; t < n; t++)
            for (int r = 0; r < nd->size; r++)
                memcpy(y + ((size_t)t * nd->size + r) * C, a + (size_t)t * C,
                       sizeof(float) * (size_t)C);
        break;
    case CVD_NODE_MAX_POOL:
    case CVD_NODE_AVG_POOL:
        cvd_pool_forward(nd->op == CVD_NODE_MAX_POOL, nd->k, nd->s, nd->padding, C, a, n, y);
        break;
    case CVD_NODE_GLOBAL_MAX_POOL:
        for (int c = 0; c < C; c++) {
            float v = a[c];
            for (long t = 1; t < n; t++)
                if (a[(size_t)t * C + c] > v)
                    v = a[(size_t)t * C + c];
            y[c] = v;
        }
        break;
    case CVD_NODE_GLOBAL_AVG_POOL:
        for (int c = 0; c < C; c++) {
            double s = 0.0;
            for (long t = 0; t < n; t++)
                s += a[(size_t)t * C + c];
            y[c] = (float)(s / (double)n);
        }
        break;
    case CVD_NODE_FLATTEN:
    case CVD_NODE_RESHAPE: {
        /* through Keras's flat order: element j of the input's C order goes to element j of
         * the output's */
        const size_t N = (size_t)n * Cin;
        const long To = len, Co = C;
        for (size_t j = 0; j < N; j++) {
            size_t from = j, to = j;
            if (nd->in_chmajor) /* Keras (Cin, n): j = c * n + t */
                from = (j % (size_t)n) * Cin + j / (size_t)n;
            if (nd->out_chmajor) /* Keras (Co, To) */
                to = (j % (size_t)To) * Co + j / (size_t)To;
            y[to] = a[from];
        }
        break;
    }
    case CVD_NODE_CONCATENATE:
        for (long t = 0; t < len; t++) {
            float *yt = y + (size_t)t * C;
            for (int k = 0; k < nd->n_inputs; k++) {
                int c = m->nodes[nd->inputs[k]].channels;
                memcpy(yt, x[k] + (size_t)t * c, sizeof(float) * (size_t)c);
                yt += c;
            }
        }
        break;
    case CVD_NODE_ADD:
    case CVD_NODE_SUBTRACT:
    case CVD_NODE_MULTIPLY:
    case CVD_NODE_AVERAGE:
    case CVD_NODE_MAXIMUM:
    case CVD_NODE_MINIMUM:
        cvd_merge_frames(nd->op, nd->n_inputs, x, (size_t)len * C, y);
        break;
    default:
        break;
    }
}

/* ---- merges ------------------------------------------------------------------------------ */

/* One loop per operation, so the compiler vectorises each (an operation chosen per value kept
 * them scalar: 41% of an unfused Keras WaveNet's time); the same operation on each value. */
static inline __attribute__((always_inline)) void
merge_frames_body(cvd_node_op op, float *y, const float *x, size_t n, int first)
{
    if (first) {
        if (y != x)
            memmove(y, x, n * sizeof(float));
        return;
    }
    switch (op) {
    case CVD_NODE_ADD:
    case CVD_NODE_AVERAGE:
        for (size_t i = 0; i < n; i++)
            y[i] += x[i];
        break;
    case CVD_NODE_SUBTRACT:
        for (size_t i = 0; i < n; i++)
            y[i] -= x[i];
        break;
    case CVD_NODE_MULTIPLY:
        for (size_t i = 0; i < n; i++)
            y[i] *= x[i];
        break;
    case CVD_NODE_MAXIMUM:
        for (size_t i = 0; i < n; i++)
            y[i] = x[i] > y[i] ? x[i] : y[i];
        break;
    case CVD_NODE_MINIMUM:
        for (size_t i = 0; i < n; i++)
            y[i] = x[i] < y[i] ? x[i] : y[i];
        break;
    default:
        break;
    }
}

/* y = op(a, b): the first two inputs in one pass instead of a copy then a pass (the same
 * operation on the same values) */
static inline __attribute__((always_inline)) void
merge_two_body(cvd_node_op op, float *y, const float *a, const float *b, size_t n)
{
    switch (op) {
    case CVD_NODE_ADD:
    case CVD_NODE_AVERAGE:
        for (size_t i = 0; i < n; i++)
            y[i] = a[i] + b[i];
        break;
    case CVD_NODE_SUBTRACT:
        for (size_t i = 0; i < n; i++)
            y[i] = a[i] - b[i];
        break;
    case CVD_NODE_MULTIPLY:
        for (size_t i = 0; i < n; i++)
            y[i] = a[i] * b[i];
        break;
    case CVD_NODE_MAXIMUM:
        for (size_t i = 0; i < n; i++)
            y[i] = b[i] > a[i] ? b[i] : a[i];
        break;
    case CVD_NODE_MINIMUM:
        for (size_t i = 0; i < n; i++)
            y[i] = b[i] < a[i] ? b[i] : a[i];
        break;
    default:
        merge_frames_body(op, y, a, n, 1);
        merge_frames_body(op, y, b, n, 0);
        break;
    }
}

/* The loops above compiled for each ISA (the baseline's are SSE2's 4 lanes); one operation a
 * value, so the same bits on each */
static void merge_frames_portable(cvd_node_op op, float *y, const float *x, size_t n, int first)
{
    merge_frames_body(op, y, x, n, first);
}

static void merge_two_portable(cvd_node_op op, float *y, const float *a, const float *b, size_t n)
{
    merge_two_body(op, y, a, b, n);
}

#if defined(__x86_64__) || defined(__i386__)
__attribute__((target("avx512f"))) static void
merge_frames_avx512(cvd_node_op op, float *y, const float *x, size_t n, int first)
{
    merge_frames_body(op, y, x, n, first);
}

__attribute__((target("avx512f"))) static void
merge_two_avx512(cvd_node_op op, float *y, const float *a, const float *b, size_t n)
{
    merge_two_body(op, y, a, b, n);
}

__attribute__((target("avx2"))) static void merge_frames_avx2(cvd_node_op op, float *y,
                                                              const float *x, size_t n, int first)
{
    merge_frames_body(op, y, x, n, first);
}

__attribute__((target("avx2"))) static void merge_two_avx2(cvd_node_op op, float *y, const float *a,
                                                           const float *b, size_t n)
{
    merge_two_body(op, y, a, b, n);
}
#endif

static void merge_frames(cvd_isa isa, cvd_node_op op, float *y, const float *x, size_t n, int first)
{
#if defined(__x86_64__) || defined(__i386__)
    if (isa == CVD_ISA_AVX512) {
        merge_frames_avx512(op, y, x, n, first);
        return;
    }
    if (isa == CVD_ISA_AVX2) {
        merge_frames_avx2(op, y, x, n, first);
        return;
    }
#endif
    (void)isa;
    merge_frames_portable(op, y, x, n, first);
}

static void merge_two(cvd_isa isa, cvd_node_op op, float *y, const float *a, const float *b,
                      size_t n)
{
#if defined(__x86_64__) || defined(__i386__)
    if (isa == CVD_ISA_AVX512) {
        merge_two_avx512(op, y, a, b, n);
        return;
    }
    if (isa == CVD_ISA_AVX2) {
        merge_two_avx2(op, y, a, b, n);
        return;
    }
#endif
    (void)isa;
    merge_two_portable(op, y, a, b, n);
}

/* y = op(x[0], x[1], ...) over n_values floats (not CONCATENATE). */
void cvd_merge_frames(cvd_node_op op, int n_inputs, const float *const *x, size_t n_values,
                      float *y)
{
    const cvd_isa isa = cvd_isa_active();
    int k = 0;
    if (n_inputs >= 2) {
        merge_two(isa, op, y, x[0], x[1], n_values);
        k = 2;
    }
    for (; k < n_inputs; k++)
        merge_frames(isa, op, y, x[k], n_values, k == 0);
    if (op == CVD_NODE_AVERAGE)
        for (size_t i = 0; i < n_values; i++)
            y[i] /= (float)n_inputs;
}
