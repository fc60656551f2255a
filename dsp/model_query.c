/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Questions about a built model (its nodes, variables, run mode, latency, cost), its weights
 * (set, initialise) and the output's dependency set shared with the offline plan.
 */
#include "graph_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const cvd_node *node_at(const cvd_model *m, int i)
{
    return i >= 0 && i < m->n_nodes ? &m->nodes[i] : NULL;
}

int cvd_model_node_count(const cvd_model *m)
{
    return m->n_nodes;
}
cvd_node_op cvd_model_node_op(const cvd_model *m, int i)
{
    const cvd_node *nd = node_at(m, i);
    return nd ? nd->op : CVD_NODE_OP_COUNT;
}
const char *cvd_model_node_name(const cvd_model *m, int i)
{
    const cvd_node *nd = node_at(m, i);
    return nd ? nd->name : NULL;
}
int cvd_model_node_channels(const cvd_model *m, int i)
{
    const cvd_node *nd = node_at(m, i);
    return nd ? nd->channels : CVD_EINVAL;
}
int cvd_model_node_inputs(const cvd_model *m, int i, const int **inputs)
{
    const cvd_node *nd = node_at(m, i);
    if (nd == NULL)
        return CVD_EINVAL;
    *inputs = nd->inputs;
    return nd->n_inputs;
}
const cvd_conv_config *cvd_model_node_conv(const cvd_model *m, int i)
{
    const cvd_node *nd = node_at(m, i);
    return nd && nd->proto ? cvd_layer_config(nd->proto) : NULL;
}
const cvd_wn_config *cvd_model_node_wavenet(const cvd_model *m, int i)
{
    const cvd_node *nd = node_at(m, i);
    return nd ? nd->wn : NULL;
}
cvd_activation cvd_model_node_activation(const cvd_model *m, int i)
{
    const cvd_node *nd = node_at(m, i);
    return nd && nd->op == CVD_NODE_ACTIVATION ? nd->act : CVD_ACT_LINEAR;
}

int cvd_model_node_latency(const cvd_model *m, int i)
{
    const cvd_node *nd = node_at(m, i);
    return nd ? nd->latency : CVD_EINVAL;
}

const char *cvd_model_node_class(const cvd_model *m, int i)
{
    const cvd_node *nd = node_at(m, i);
    return nd ? cvd_node_class(nd) : "?";
}

int cvd_model_node_rank(const cvd_model *m, int i)
{
    const cvd_node *nd = node_at(m, i);
    return nd ? nd->rank : CVD_EINVAL;
}

long cvd_model_node_frames(const cvd_model *m, int i)
{
    const cvd_node *nd = node_at(m, i);
    return nd ? nd->frames : -1;
}

int cvd_model_node_windowed(const cvd_model *m, int i)
{
    const cvd_node *nd = node_at(m, i);
    return nd ? nd->window : 0;
}

void cvd_model_node_describe(const cvd_model *m, int i, char *buf, size_t n)
{
    const cvd_node *nd = node_at(m, i);
    if (n == 0)
        return;
    buf[0] = '\0';
    if (nd == NULL)
        return;
    switch (nd->op) {
    case CVD_NODE_ACTIVATION:
        snprintf(buf, n, "%s%s",
                 nd->nam_act ? cvd_wn_activation_name(nd->nam_act) : cvd_activation_name(nd->act),
                 nd->axis == CVD_AXIS_TIME ? " over time" : "");
        break;
    case CVD_NODE_BATCH_NORM:
    case CVD_NODE_LAYER_NORM:
        snprintf(buf, n, "over %s, epsilon %g%s%s%s",
                 nd->axis == CVD_AXIS_TIME ? "time" : "channels", (double)nd->eps,
                 nd->rms ? ", rms scaling" : "", !nd->center && !nd->rms ? ", no center" : "",
                 !nd->scale && !nd->rms ? ", no scale" : "");
        break;
    case CVD_NODE_RESCALING:
        snprintf(buf, n, "scale %g, offset %g", (double)nd->mul, (double)nd->add);
        break;
    case CVD_NODE_ZERO_PADDING:
    case CVD_NODE_CROPPING:
        snprintf(buf, n, "(%d, %d)", nd->left, nd->right);
        break;
    case CVD_NODE_UPSAMPLING:
        snprintf(buf, n, "size %d", nd->size);
        break;
    case CVD_NODE_MAX_POOL:
    case CVD_NODE_AVG_POOL:
        snprintf(buf, n, "pool %d, strides %d, %s", nd->k, nd->s, cvd_padding_name(nd->padding));
        break;
    case CVD_NODE_GLOBAL_MAX_POOL:
    case CVD_NODE_GLOBAL_AVG_POOL:
        snprintf(buf, n, "over time%s", nd->keepdims ? ", keepdims" : "");
        break;
    case CVD_NODE_FLATTEN:
        snprintf(buf, n, "%d values%s", nd->channels, nd->in_chmajor ? ", channel-major" : "");
        break;
    case CVD_NODE_RESHAPE:
        if (nd->rank == 1)
            snprintf(buf, n, "to (%d,)", nd->channels);
        else if (nd->out_chmajor)
            snprintf(buf, n, "to (%d, %ld)", nd->channels, nd->frames);
        else
            snprintf(buf, n, "to (%ld, %d)", nd->frames, nd->channels);
        break;
    case CVD_NODE_PERMUTE:
        snprintf(buf, n, "%s", nd->size ? "(2, 1): time and channels swapped" : "(1, 2)");
        break;
    default:
        break;
    }
}

int cvd_model_var_count(const cvd_model *m, int i)
{
    const cvd_node *nd = node_at(m, i);
    if (nd == NULL)
        return 0;
    if (nd->proto)
        return cvd_layer_var_count(nd->proto);
    if (nd->nv)
        return nd->nv;
    return nd->wn ? 1 : 0;
}

int cvd_model_var_shape(const cvd_model *m, int i, int index, int shape[3])
{
    const cvd_node *nd = node_at(m, i);
    if (nd == NULL || index < 0 || index >= cvd_model_var_count(m, i))
        return CVD_EINVAL;
    if (nd->wn || nd->nv) {
        shape[0] = nd->wn ? (int)nd->wn_nweights : nd->vlen;
        shape[1] = shape[2] = 0;
        return 1;
    }
    int r = cvd_layer_var_shape(nd->proto, index, shape);
    if (nd->op == CVD_NODE_DENSE && r == 3) { /* Dense kernel (in, units) */
        shape[0] = shape[1];
        shape[1] = shape[2];
        shape[2] = 0;
        r = 2;
    }
    return r;
}

size_t cvd_model_var_size(const cvd_model *m, int i, int index)
{
    const cvd_node *nd = node_at(m, i);
    if (nd == NULL || index < 0 || index >= cvd_model_var_count(m, i))
        return 0;
    if (nd->wn)
        return nd->wn_nweights;
    if (nd->nv)
        return (size_t)nd->vlen;
    return nd->proto ? cvd_layer_var_size(nd->proto, index) : 0;
}

int cvd_model_set_var(cvd_model *m, int i, int index, const float *data, size_t n, cvd_err *err)
{
    cvd_node *nd = i >= 0 && i < m->n_nodes ? &m->nodes[i] : NULL;
    int rc;
    if (nd == NULL || cvd_model_var_count(m, i) == 0)
        return cvd_err_set(err, CVD_EINVAL, "node %d has no weights", i);
    if (nd->wn) {
        if (index != 0 || n != nd->wn_nweights)
            return cvd_err_set(err, CVD_EINVAL,
                               "WaveNet '%s': %zu weights given, the configuration needs %zu",
                               nd->name, n, nd->wn_nweights);
        memcpy(nd->wn_weights, data, n * sizeof(float));
        return CVD_OK;
    }
    if (nd->nv) {
        static const char *const roles[] = {"gamma", "beta", "moving_mean", "moving_variance"};
        if (index < 0 || index >= nd->nv)
            return cvd_err_set(err, CVD_EINVAL, "%s '%s': variable %d: it has %d variables",
                               cvd_node_op_name(nd->op), nd->name, index, nd->nv);
        if (n != (size_t)nd->vlen)
            return cvd_err_set(err, CVD_EINVAL,
                               "%s '%s': variable %d (%s): %zu values given, the shape (%d,) "
                               "needs %d",
                               cvd_node_op_name(nd->op), nd->name, index, roles[nd->vrole[index]],
                               n, nd->vlen, nd->vlen);
        if (nd->vrole[index] == CVD_VAR_VAR)
            for (size_t c = 0; c < n; c++)
                if (!(data[c] + nd->eps > 0.0f))
                    return cvd_err_set(err, CVD_EINVAL,
                                       "%s '%s': moving_variance[%zu]=%g: variance plus "
                                       "epsilon must be > 0",
                                       cvd_node_op_name(nd->op), nd->name, c, (double)data[c]);
        memcpy(nd->v[index], data, n * sizeof(float));
        if (nd->op == CVD_NODE_BATCH_NORM)
            cvd_batch_norm_fold(nd);
        return CVD_OK;
    }
    rc = cvd_layer_set_var(nd->proto, index, data, n, err);
    if (rc < 0)
        cvd_err_prefix(err, "%s '%s'", cvd_node_op_name(nd->op), nd->name);
    return rc;
}

void cvd_model_init_weights(cvd_model *m, uint64_t seed)
{
    for (int i = 1; i < m->n_nodes; i++) {
        cvd_node *nd = &m->nodes[i];
        uint64_t s = seed * 1000003u + (uint64_t)i;
        if (nd->proto)
            cvd_layer_init_weights(nd->proto, s);
        if (nd->wn)
            cvd_wn_init_weights(nd->wn, nd->wn_weights, s);
        /* the norms start as Keras's initialisers leave them: ones and zeros */
        for (int k = 0; k < nd->nv; k++)
            for (int c = 0; c < nd->vlen; c++)
                nd->v[k][c] =
                    nd->vrole[k] == CVD_VAR_GAMMA || nd->vrole[k] == CVD_VAR_VAR ? 1.0f : 0.0f;
        if (nd->op == CVD_NODE_BATCH_NORM)
            cvd_batch_norm_fold(nd);
    }
}

size_t cvd_model_node_params(const cvd_model *m, int i)
{
    const cvd_node *nd = node_at(m, i);
    if (nd == NULL)
        return 0;
    if (nd->proto)
        return cvd_layer_param_count(nd->proto);
    if (nd->nv)
        return (size_t)nd->nv * (size_t)nd->vlen;
    return nd->wn ? nd->wn_nweights : 0;
}

void cvd_model_used_nodes(const cvd_model *m, unsigned char *used)
{
    memset(used, 0, (size_t)m->n_nodes);
    used[m->output] = 1;
    used[0] = 1;
    for (int i = m->n_nodes - 1; i > 0; i--)
        if (used[i])
            for (int k = 0; k < m->nodes[i].n_inputs; k++)
                used[m->nodes[i].inputs[k]] = 1;
}

int cvd_model_window_node(const cvd_model *m)
{
    unsigned char *used = malloc((size_t)m->n_nodes);
    int w = 0;
    if (used == NULL) { /* without memory, every node counts */
        for (int i = 1; i < m->n_nodes && !w; i++)
            if (m->nodes[i].window)
                w = i;
        return w;
    }
    cvd_model_used_nodes(m, used);
    for (int i = 1; i < m->n_nodes && !w; i++)
        if (used[i] && m->nodes[i].window)
            w = i;
    free(used);
    return w;
}

cvd_run_mode cvd_model_mode(const cvd_model *m)
{
    return cvd_model_window_node(m) > 0 ? CVD_MODE_WINDOWED : CVD_MODE_STREAMING;
}

long cvd_model_window(const cvd_model *m)
{
    return cvd_model_mode(m) == CVD_MODE_WINDOWED ? m->in_length : 0;
}

const char *cvd_run_mode_name(cvd_run_mode mode)
{
    return mode == CVD_MODE_WINDOWED ? "windowed" : "streaming";
}

const char *cvd_model_mode_reason(const cvd_model *m)
{
    cvd_model *mm = (cvd_model *)m; /* the reason is a cache of the structure */
    const int w = cvd_model_window_node(m);
    if (w == 0) {
        snprintf(mm->reason, sizeof mm->reason, "every layer streams");
        return m->reason;
    }
    const cvd_node *nd = &m->nodes[w];
    const char *what;
    switch (nd->op) {
    case CVD_NODE_FLATTEN:
        what = "flattens the whole window";
        break;
    case CVD_NODE_RESHAPE:
        what = "reshapes the whole window";
        break;
    case CVD_NODE_GLOBAL_MAX_POOL:
    case CVD_NODE_GLOBAL_AVG_POOL:
        what = "pools over the whole window";
        break;
    case CVD_NODE_PERMUTE:
        what = "swaps time and channels";
        break;
    case CVD_NODE_ACTIVATION:
        what = cvd_activation_is_axis(nd->act) ? "acts over time, the whole window at once"
                                               : "acts over time";
        break;
    default:
        what = "normalises along time, the whole window at once";
        break;
    }
    snprintf(mm->reason, sizeof mm->reason, "%s '%s' %s", cvd_model_node_class(m, w), nd->name,
             what);
    return m->reason;
}

int cvd_model_in_channels(const cvd_model *m)
{
    return m->in_channels;
}
int cvd_model_output(const cvd_model *m)
{
    return m->output;
}

int cvd_model_out_channels(const cvd_model *m)
{
    const cvd_node *o = &m->nodes[m->output];
    if (cvd_model_mode(m) == CVD_MODE_WINDOWED)
        return (int)(o->frames * o->channels);
    return o->channels;
}
int cvd_model_latency(const cvd_model *m)
{
    if (cvd_model_mode(m) == CVD_MODE_WINDOWED)
        return (int)(m->in_length - 1);
    return m->nodes[m->output].latency > 0 ? m->nodes[m->output].latency : 0;
}
long cvd_model_receptive_field(const cvd_model *m)
{
    if (cvd_model_mode(m) == CVD_MODE_WINDOWED)
        return m->in_length;
    return m->nodes[m->output].receptive;
}

size_t cvd_model_param_count(const cvd_model *m)
{
    size_t n = 0;
    for (int i = 1; i < m->n_nodes; i++)
        n += cvd_model_node_params(m, i);
    return n;
}

/* The frame rate of every node relative to the input (strided layers slow it down,
 * transposed ones speed it up); rate[] has n_nodes entries. */
static void node_rates(const cvd_model *m, double *rate)
{
    rate[0] = 1.0;
    for (int i = 1; i < m->n_nodes; i++) {
        const cvd_node *nd = &m->nodes[i];
        double r = rate[nd->inputs[0]];
        if (nd->proto) {
            const cvd_conv_config *c = cvd_layer_config(nd->proto);
            r = c->kind == CVD_CONV1D_TRANSPOSE ? r * c->strides : r / c->strides;
        } else if (nd->op == CVD_NODE_MAX_POOL || nd->op == CVD_NODE_AVG_POOL) {
            r /= nd->s;
        } else if (nd->op == CVD_NODE_UPSAMPLING) {
            r *= nd->size;
        }
        rate[i] = r;
    }
}

/* Multiply-adds of node i per frame of its (first) input. */
static double node_macs(const cvd_node *nd, const cvd_model *m)
{
    const double C = m->nodes[nd->inputs[0]].channels;
    switch (nd->op) {
    case CVD_NODE_CONV:
    case CVD_NODE_DENSE:
        return cvd_layer_macs_per_frame(nd->proto);
    case CVD_NODE_WAVENET:
        return cvd_wn_macs_per_frame(nd->wn);
    case CVD_NODE_MAX_POOL:
    case CVD_NODE_AVG_POOL:
        return (double)nd->k * C / nd->s;
    case CVD_NODE_BATCH_NORM:
    case CVD_NODE_RESCALING:
    case CVD_NODE_GLOBAL_AVG_POOL:
        return C;
    case CVD_NODE_LAYER_NORM:
        return 3.0 * C;
    default:
        return 0.0;
    }
}

double cvd_model_macs_per_frame(const cvd_model *m)
{
    /* per model-input frame; strided layers run at their own rate */
    double total = 0.0;
    double *rate = calloc((size_t)m->n_nodes, sizeof *rate);
    if (rate == NULL)
        return 0.0;
    if (cvd_model_mode(m) == CVD_MODE_WINDOWED) {
        /* one window's work, per frame of the window (the default hop) */
        for (int i = 1; i < m->n_nodes; i++) {
            const cvd_node *nd = &m->nodes[i];
            total += node_macs(nd, m) * (double)m->nodes[nd->inputs[0]].frames;
        }
        free(rate);
        return total / (double)m->in_length;
    }
    node_rates(m, rate);
    for (int i = 1; i < m->n_nodes; i++) {
        const cvd_node *nd = &m->nodes[i];
        total += rate[nd->inputs[0]] * node_macs(nd, m);
    }
    free(rate);
    return total;
}

double cvd_model_rate_ratio(const cvd_model *m)
{
    double *rate, r = 1.0;
    if (cvd_model_mode(m) == CVD_MODE_WINDOWED)
        return 1.0 / (double)m->in_length;
    rate = calloc((size_t)m->n_nodes, sizeof *rate);
    if (rate == NULL)
        return 1.0;
    node_rates(m, rate);
    r = rate[m->output];
    free(rate);
    return r;
}

int cvd_model_can_stream(const cvd_model *m, cvd_err *err)
{
    (void)m;
    (void)err;
    return CVD_OK; /* both modes run as nets; refusals happen at add */
}
