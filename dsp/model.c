/*
 * Models: a network's nodes and weights, built once by a loader and shared read-only by the
 * nets (streams) instantiated from it. Nodes are added in topological order, so every model
 * is a DAG; the offline forward() runs the nodes in that order over whole sequences.
 */
#include "graph_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const op_names[CVD_NODE_OP_COUNT] = {
    "InputLayer", "Conv", "Dense", "Activation", "Add", "Subtract", "Multiply",
    "Average", "Maximum", "Minimum", "Concatenate", "Identity", "WaveNet",
};

const char *cvd_node_op_name(cvd_node_op op)
{
    return (unsigned)op < CVD_NODE_OP_COUNT ? op_names[op] : "?";
}

int cvd_model_create(int in_channels, cvd_model **out, cvd_err *err)
{
    cvd_model *m;
    *out = NULL;
    if (in_channels <= 0 || in_channels > (1 << 16))
        return cvd_err_set(err, CVD_EINVAL, "input channels=%d: must be in 1..65536",
                           in_channels);
    m = calloc(1, sizeof *m);
    if (m == NULL)
        return cvd_err_set(err, CVD_ENOMEM, "out of memory");
    atomic_init(&m->refs, 1);
    m->in_channels = in_channels;
    m->cap = 16;
    m->nodes = calloc((size_t)m->cap, sizeof *m->nodes);
    if (m->nodes == NULL) {
        free(m);
        return cvd_err_set(err, CVD_ENOMEM, "out of memory");
    }
    m->n_nodes = 1;
    m->nodes[0].op = CVD_NODE_INPUT;
    snprintf(m->nodes[0].name, sizeof m->nodes[0].name, "input");
    m->nodes[0].channels = in_channels;
    m->nodes[0].receptive = 1;
    *out = m;
    return CVD_OK;
}

cvd_model *cvd_model_ref(cvd_model *m)
{
    atomic_fetch_add(&m->refs, 1);
    return m;
}

void cvd_model_unref(cvd_model *m)
{
    if (m == NULL || atomic_fetch_sub(&m->refs, 1) != 1)
        return;
    for (int i = 0; i < m->n_nodes; i++) {
        free(m->nodes[i].inputs);
        cvd_layer_destroy(m->nodes[i].proto);
        free(m->nodes[i].wn);
        free(m->nodes[i].wn_weights);
    }
    free(m->nodes);
    free(m->description);
    free(m);
}

void cvd_model_set_sample_rate(cvd_model *m, double rate)
{
    m->sample_rate = rate > 0 ? rate : 0;
}

double cvd_model_sample_rate(const cvd_model *m)
{
    return m->sample_rate;
}

int cvd_model_set_description(cvd_model *m, const char *text)
{
    char *d = strdup(text ? text : "");
    if (d == NULL)
        return CVD_ENOMEM;
    free(m->description);
    m->description = d;
    return CVD_OK;
}

const char *cvd_model_description(const cvd_model *m)
{
    return m->description ? m->description : "";
}

/* A new node reading `inputs`; returns its index or an error. */
static int new_node(cvd_model *m, cvd_node_op op, const char *name, const int *inputs,
                    int n_inputs, cvd_err *err)
{
    cvd_node *nd;
    if (n_inputs < 1)
        return cvd_err_set(err, CVD_EINVAL, "%s '%s': needs at least one input",
                           cvd_node_op_name(op), name ? name : "");
    for (int i = 0; i < n_inputs; i++)
        if (inputs[i] < 0 || inputs[i] >= m->n_nodes)
            return cvd_err_set(err, CVD_EINVAL,
                               "%s '%s': input %d refers to node %d, which does not exist "
                               "(yet)",
                               cvd_node_op_name(op), name ? name : "", i, inputs[i]);
    if (m->n_nodes == m->cap) {
        cvd_node *nn = realloc(m->nodes, sizeof *nn * (size_t)m->cap * 2);
        if (nn == NULL)
            return cvd_err_set(err, CVD_ENOMEM, "out of memory");
        memset(nn + m->cap, 0, sizeof *nn * (size_t)m->cap);
        m->nodes = nn;
        m->cap *= 2;
    }
    nd = &m->nodes[m->n_nodes];
    memset(nd, 0, sizeof *nd);
    nd->inputs = malloc(sizeof(int) * (size_t)n_inputs);
    if (nd->inputs == NULL)
        return cvd_err_set(err, CVD_ENOMEM, "out of memory");
    memcpy(nd->inputs, inputs, sizeof(int) * (size_t)n_inputs);
    nd->n_inputs = n_inputs;
    nd->op = op;
    if (name && *name)
        snprintf(nd->name, sizeof nd->name, "%s", name);
    else
        snprintf(nd->name, sizeof nd->name, "%s_%d", cvd_node_op_name(op), m->n_nodes);
    /* latency and receptive field: the worst over the inputs, plus the node's own */
    for (int i = 0; i < n_inputs; i++) {
        const cvd_node *in = &m->nodes[inputs[i]];
        if (in->latency > nd->latency)
            nd->latency = in->latency;
        if (in->receptive > nd->receptive)
            nd->receptive = in->receptive;
    }
    m->output = m->n_nodes;
    return m->n_nodes++;
}

/* Removes the node just added (when setting it up failed). */
static void drop_last(cvd_model *m)
{
    cvd_node *nd = &m->nodes[--m->n_nodes];
    free(nd->inputs);
    cvd_layer_destroy(nd->proto);
    free(nd->wn);
    free(nd->wn_weights);
    memset(nd, 0, sizeof *nd);
    m->output = m->n_nodes - 1;
}

static int add_layer(cvd_model *m, cvd_node_op op, const char *name, const cvd_conv_config *cfg,
                     int input, cvd_err *err)
{
    int id = new_node(m, op, name, &input, 1, err), rc;
    if (id < 0)
        return id;
    cvd_node *nd = &m->nodes[id];
    nd->conv = *cfg;
    /* between nodes, tensors are frames: run the layer channels_last. softmax over time
     * (channels_first) cannot run that way. */
    if (cfg->data_format == CVD_CHANNELS_FIRST && cvd_activation_is_axis(cfg->activation)) {
        drop_last(m);
        return cvd_err_set(err, CVD_EUNSUPPORTED,
                           "%s '%s': activation='%s' with data_format='channels_first' acts "
                           "over time, which a stream cannot do",
                           cvd_layer_kind_name(cfg->kind), name ? name : "",
                           cvd_activation_name(cfg->activation));
    }
    nd->conv.data_format = CVD_CHANNELS_LAST;
    rc = cvd_layer_create(&nd->conv, m->nodes[input].channels, 1, &nd->proto, err);
    if (rc < 0) {
        cvd_err_prefix(err, "%s '%s'", op == CVD_NODE_DENSE ? "Dense" : "layer", nd->name);
        drop_last(m);
        return rc;
    }
    nd->channels = cvd_layer_out_channels(nd->proto);
    /* a strided layer's latency and receptive field in its own (slower) frame rate */
    const cvd_layer *L = nd->proto;
    const int s = cfg->strides, ek = cfg->dilation_rate * (cfg->kernel_size - 1) + 1;
    long long lat;
    if (cfg->kind == CVD_CONV1D_TRANSPOSE) {
        lat = ((long long)nd->latency + cvd_layer_latency(L)) * s;
        nd->receptive = (nd->receptive + s - 1) / s + (ek - 1) / s;
    } else {
        lat = ((long long)nd->latency + cvd_layer_latency(L) + s - 1) / s;
        nd->receptive = nd->receptive + ek - 1;
    }
    if (lat > (1 << 30)) {
        cvd_err_set(err, CVD_EINVAL, "%s '%s': the model's latency would pass %d frames",
                    cvd_layer_kind_name(cfg->kind), nd->name, 1 << 30);
        drop_last(m);
        return CVD_EINVAL;
    }
    nd->latency = (int)lat;
    return id;
}

int cvd_model_add_conv(cvd_model *m, const char *name, const cvd_conv_config *cfg, int input,
                       cvd_err *err)
{
    return add_layer(m, CVD_NODE_CONV, name, cfg, input, err);
}

int cvd_model_add_dense(cvd_model *m, const char *name, int units, cvd_activation act,
                        int use_bias, int input, cvd_err *err)
{
    cvd_conv_config c;
    if (units <= 0)
        return cvd_err_set(err, CVD_EINVAL, "Dense '%s': units=%d: must be > 0",
                           name ? name : "", units);
    cvd_conv_config_init(&c, CVD_CONV1D);
    c.filters = units;
    c.kernel_size = 1;
    c.activation = act;
    c.use_bias = use_bias;
    return add_layer(m, CVD_NODE_DENSE, name, &c, input, err);
}

int cvd_model_add_activation(cvd_model *m, const char *name, cvd_activation act, int input,
                             cvd_err *err)
{
    if ((unsigned)act >= CVD_ACT_COUNT)
        return cvd_err_set(err, CVD_EINVAL, "Activation '%s': unknown activation %d",
                           name ? name : "", (int)act);
    int id = new_node(m, CVD_NODE_ACTIVATION, name, &input, 1, err);
    if (id < 0)
        return id;
    m->nodes[id].act = act;
    m->nodes[id].channels = m->nodes[input].channels;
    return id;
}

int cvd_model_add_merge(cvd_model *m, const char *name, cvd_node_op op, const int *inputs,
                        int n_inputs, cvd_err *err)
{
    int ch = 0;
    if (op < CVD_NODE_ADD || op > CVD_NODE_IDENTITY)
        return cvd_err_set(err, CVD_EINVAL, "'%s': %s is not a merge", name ? name : "",
                           cvd_node_op_name(op));
    if (op == CVD_NODE_IDENTITY && n_inputs != 1)
        return cvd_err_set(err, CVD_EINVAL, "Identity '%s': takes one input, %d given",
                           name ? name : "", n_inputs);
    if (op == CVD_NODE_SUBTRACT && n_inputs != 2)
        return cvd_err_set(err, CVD_EINVAL, "Subtract '%s': takes exactly 2 inputs, %d given",
                           name ? name : "", n_inputs);
    if (op != CVD_NODE_IDENTITY && (n_inputs < 2 || n_inputs > CVD_MERGE_MAX_INPUTS))
        return cvd_err_set(err, CVD_EINVAL, "%s '%s': takes 2 to %d inputs, %d given",
                           cvd_node_op_name(op), name ? name : "", CVD_MERGE_MAX_INPUTS,
                           n_inputs);
    int id = new_node(m, op, name, inputs, n_inputs, err);
    if (id < 0)
        return id;
    for (int i = 0; i < n_inputs; i++) {
        int c = m->nodes[inputs[i]].channels;
        if (op == CVD_NODE_CONCATENATE) {
            ch += c;
        } else if (i > 0 && c != ch) {
            cvd_err_set(err, CVD_EINVAL,
                        "%s '%s': input %d ('%s') has %d channels, input 0 ('%s') has %d",
                        cvd_node_op_name(op), m->nodes[id].name, i, m->nodes[inputs[i]].name,
                        c, m->nodes[inputs[0]].name, ch);
            drop_last(m);
            return CVD_EINVAL;
        } else {
            ch = c;
        }
    }
    m->nodes[id].channels = ch;
    return id;
}

int cvd_model_add_wavenet(cvd_model *m, const char *name, const cvd_wn_config *cfg, int input,
                          cvd_err *err)
{
    int rc = cvd_wn_config_check(cfg, err);
    if (rc < 0)
        return rc;
    if (cvd_wn_in_channels(cfg) != m->nodes[input].channels)
        return cvd_err_set(err, CVD_EINVAL,
                           "WaveNet '%s': input_size %d, but its input has %d channels",
                           name ? name : "", cvd_wn_in_channels(cfg),
                           m->nodes[input].channels);
    int id = new_node(m, CVD_NODE_WAVENET, name, &input, 1, err);
    if (id < 0)
        return id;
    cvd_node *nd = &m->nodes[id];
    nd->wn = malloc(sizeof *cfg);
    nd->wn_nweights = cvd_wn_weight_count(cfg);
    nd->wn_weights = calloc(nd->wn_nweights, sizeof(float));
    if (nd->wn == NULL || nd->wn_weights == NULL) {
        drop_last(m);
        return cvd_err_set(err, CVD_ENOMEM, "out of memory");
    }
    *nd->wn = *cfg;
    nd->channels = cvd_wn_out_channels(cfg);
    nd->receptive += cvd_wn_receptive_field(cfg) - 1;
    cvd_wn_init_weights(cfg, nd->wn_weights, 0);
    return id;
}

int cvd_model_set_output(cvd_model *m, int node, cvd_err *err)
{
    if (node <= 0 || node >= m->n_nodes)
        return cvd_err_set(err, CVD_EINVAL, "output node %d: the model has nodes 1..%d", node,
                           m->n_nodes - 1);
    m->output = node;
    return CVD_OK;
}

/* ---- queries ---------------------------------------------------------------------------- */

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

int cvd_model_var_count(const cvd_model *m, int i)
{
    const cvd_node *nd = node_at(m, i);
    if (nd == NULL)
        return 0;
    if (nd->proto)
        return cvd_layer_var_count(nd->proto);
    return nd->wn ? 1 : 0;
}

int cvd_model_var_shape(const cvd_model *m, int i, int index, int shape[3])
{
    const cvd_node *nd = node_at(m, i);
    if (nd == NULL || index < 0 || index >= cvd_model_var_count(m, i))
        return CVD_EINVAL;
    if (nd->wn) {
        shape[0] = (int)nd->wn_nweights;
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
    if (nd == NULL)
        return 0;
    if (nd->wn)
        return index == 0 ? nd->wn_nweights : 0;
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
    }
}

size_t cvd_model_node_params(const cvd_model *m, int i)
{
    const cvd_node *nd = node_at(m, i);
    if (nd == NULL)
        return 0;
    if (nd->proto)
        return cvd_layer_param_count(nd->proto);
    return nd->wn ? nd->wn_nweights : 0;
}

int cvd_model_in_channels(const cvd_model *m)
{
    return m->in_channels;
}
int cvd_model_out_channels(const cvd_model *m)
{
    return m->nodes[m->output].channels;
}
int cvd_model_latency(const cvd_model *m)
{
    return m->nodes[m->output].latency;
}
long cvd_model_receptive_field(const cvd_model *m)
{
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
        }
        rate[i] = r;
    }
}

double cvd_model_macs_per_frame(const cvd_model *m)
{
    /* per model-input frame; strided layers run at their own rate */
    double total = 0.0;
    double *rate = calloc((size_t)m->n_nodes, sizeof *rate);
    if (rate == NULL)
        return 0.0;
    node_rates(m, rate);
    for (int i = 1; i < m->n_nodes; i++) {
        const cvd_node *nd = &m->nodes[i];
        double r = rate[nd->inputs[0]];
        if (nd->proto)
            total += r * cvd_layer_macs_per_frame(nd->proto);
        else if (nd->wn)
            total += r * cvd_wn_macs_per_frame(nd->wn);
    }
    free(rate);
    return total;
}

double cvd_model_rate_ratio(const cvd_model *m)
{
    double *rate = calloc((size_t)m->n_nodes, sizeof *rate), r = 1.0;
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
    return CVD_OK; /* everything a model accepts streams; refusals happen at add */
}

/* ---- offline ---------------------------------------------------------------------------- */

static void merge_frames(cvd_node_op op, float *y, const float *x, size_t n, int first)
{
    for (size_t i = 0; i < n; i++) {
        if (first) {
            y[i] = x[i];
            continue;
        }
        switch (op) {
        case CVD_NODE_ADD:
        case CVD_NODE_AVERAGE:
            y[i] += x[i];
            break;
        case CVD_NODE_SUBTRACT:
            y[i] -= x[i];
            break;
        case CVD_NODE_MULTIPLY:
            y[i] *= x[i];
            break;
        case CVD_NODE_MAXIMUM:
            y[i] = x[i] > y[i] ? x[i] : y[i];
            break;
        case CVD_NODE_MINIMUM:
            y[i] = x[i] < y[i] ? x[i] : y[i];
            break;
        default:
            break;
        }
    }
}

/* y = op(x[0], x[1], ...) over n_values floats (not CONCATENATE). */
void cvd_merge_frames(cvd_node_op op, int n_inputs, const float *const *x, size_t n_values,
                      float *y)
{
    for (int i = 0; i < n_inputs; i++)
        merge_frames(op, y, x[i], n_values, i == 0);
    if (op == CVD_NODE_AVERAGE)
        for (size_t i = 0; i < n_values; i++)
            y[i] /= (float)n_inputs;
}

int cvd_model_forward(const cvd_model *m, const float *in, long n, float **out, long *n_out,
                      cvd_err *err)
{
    float **val = calloc((size_t)m->n_nodes, sizeof *val);
    long *len = calloc((size_t)m->n_nodes, sizeof *len);
    int rc = CVD_OK;

    *out = NULL;
    *n_out = 0;
    if (n == 0) { /* an empty input gives an empty output, whatever the layers */
        free(val);
        free(len);
        *out = malloc(sizeof(float));
        return *out ? CVD_OK : cvd_err_set(err, CVD_ENOMEM, "out of memory");
    }
    if (val == NULL || len == NULL) {
        free(val);
        free(len);
        return cvd_err_set(err, CVD_ENOMEM, "out of memory");
    }
    val[0] = malloc(sizeof(float) * ((size_t)n * m->in_channels + 1));
    if (val[0] == NULL) {
        rc = cvd_err_set(err, CVD_ENOMEM, "out of memory");
        goto done;
    }
    memcpy(val[0], in, sizeof(float) * (size_t)n * m->in_channels);
    len[0] = n;

    for (int i = 1; i < m->n_nodes && rc == CVD_OK; i++) {
        const cvd_node *nd = &m->nodes[i];
        const int a = nd->inputs[0];
        const long la = len[a];
        switch (nd->op) {
        case CVD_NODE_CONV:
        case CVD_NODE_DENSE: {
            long nl = cvd_layer_output_length(nd->proto, la, err);
            if (nl < 0) {
                rc = (int)nl;
                cvd_err_prefix(err, "%s '%s'", cvd_node_op_name(nd->op), nd->name);
                break;
            }
            val[i] = malloc(sizeof(float) * ((size_t)nl * nd->channels + 1));
            if (val[i] == NULL) {
                rc = cvd_err_set(err, CVD_ENOMEM, "out of memory");
                break;
            }
            rc = cvd_layer_forward(nd->proto, val[a], la, val[i], &len[i], err);
            break;
        }
        case CVD_NODE_ACTIVATION:
        case CVD_NODE_IDENTITY:
            val[i] = malloc(sizeof(float) * ((size_t)la * nd->channels + 1));
            if (val[i] == NULL) {
                rc = cvd_err_set(err, CVD_ENOMEM, "out of memory");
                break;
            }
            memcpy(val[i], val[a], sizeof(float) * (size_t)la * nd->channels);
            len[i] = la;
            if (nd->op == CVD_NODE_ACTIVATION)
                cvd_activation_apply_axis(nd->act, val[i], (size_t)la, (size_t)nd->channels,
                                          (size_t)nd->channels, 1);
            break;
        case CVD_NODE_WAVENET: {
            cvd_wavenet *w;
            const int chunk = 4096;
            rc = cvd_wavenet_create(nd->wn, chunk, &w, err);
            if (rc < 0)
                break;
            rc = cvd_wavenet_set_weights(w, nd->wn_weights, nd->wn_nweights, err);
            val[i] = malloc(sizeof(float) * ((size_t)la * nd->channels + 1));
            if (rc == CVD_OK && val[i] == NULL)
                rc = cvd_err_set(err, CVD_ENOMEM, "out of memory");
            for (long t = 0; rc == CVD_OK && t < la; t += chunk) {
                int mm = la - t < chunk ? (int)(la - t) : chunk;
                cvd_wavenet_process(w, val[a] + (size_t)t * m->nodes[a].channels, mm,
                                    val[i] + (size_t)t * nd->channels);
            }
            len[i] = la;
            cvd_wavenet_destroy(w);
            break;
        }
        default: { /* merges: all inputs the same length, as Keras requires */
            for (int k = 0; k < nd->n_inputs; k++) {
                if (len[nd->inputs[k]] != la) {
                    rc = cvd_err_set(err, CVD_EINVAL,
                                     "%s '%s': input '%s' has %ld frames, input '%s' has %ld",
                                     cvd_node_op_name(nd->op), nd->name,
                                     m->nodes[nd->inputs[k]].name, len[nd->inputs[k]],
                                     m->nodes[a].name, la);
                    break;
                }
            }
            if (rc < 0)
                break;
            val[i] = malloc(sizeof(float) * ((size_t)la * nd->channels + 1));
            if (val[i] == NULL) {
                rc = cvd_err_set(err, CVD_ENOMEM, "out of memory");
                break;
            }
            len[i] = la;
            if (nd->op == CVD_NODE_CONCATENATE) {
                for (long t = 0; t < la; t++) {
                    float *y = val[i] + (size_t)t * nd->channels;
                    for (int k = 0; k < nd->n_inputs; k++) {
                        int c = m->nodes[nd->inputs[k]].channels;
                        memcpy(y, val[nd->inputs[k]] + (size_t)t * c, sizeof(float) * (size_t)c);
                        y += c;
                    }
                }
            } else {
                const float *xs[CVD_MERGE_MAX_INPUTS];
                for (int k = 0; k < nd->n_inputs; k++)
                    xs[k] = val[nd->inputs[k]];
                cvd_merge_frames(nd->op, nd->n_inputs, xs, (size_t)la * nd->channels, val[i]);
            }
            break;
        }
        }
    }
    if (rc == CVD_OK) {
        *out = val[m->output];
        *n_out = len[m->output];
        val[m->output] = NULL;
    }
done:
    for (int i = 0; i < m->n_nodes; i++)
        free(val[i]);
    free(val);
    free(len);
    return rc;
}
