/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Models: a network's nodes and weights, built once by a loader and shared read-only by the
 * nets (streams) instantiated from it. Nodes are added in topological order, so every model
 * is a DAG. This file builds models (create, the cvd_model_add_* of every node kind, the
 * shape and latency bookkeeping); model_query.c answers questions about a built model and
 * sets its weights, plan.c runs it offline, ops.c holds the per-node arithmetic.
 */
#include "graph_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cvd_model_create(int in_channels, cvd_model **out, cvd_err *err)
{
    cvd_model *m;
    *out = NULL;
    if (in_channels <= 0 || in_channels > (1 << 16))
        return cvd_err_set(err, CVD_EINVAL, "input channels=%d: must be in 1..65536", in_channels);
    m = calloc(1, sizeof *m);
    if (m == NULL)
        return cvd_err_set(err, CVD_ENOMEM, "out of memory");
    atomic_init(&m->refs, 1);
    if (pthread_mutex_init(&m->wn_lock, NULL) != 0) {
        free(m);
        return cvd_err_set(err, CVD_ENOMEM, "out of memory (a mutex)");
    }
    m->in_channels = in_channels;
    m->cap = 16;
    m->nodes = calloc((size_t)m->cap, sizeof *m->nodes);
    if (m->nodes == NULL) {
        pthread_mutex_destroy(&m->wn_lock);
        free(m);
        return cvd_err_set(err, CVD_ENOMEM, "out of memory");
    }
    m->n_nodes = 1;
    m->nodes[0].op = CVD_NODE_INPUT;
    snprintf(m->nodes[0].name, sizeof m->nodes[0].name, "input");
    m->nodes[0].channels = in_channels;
    m->nodes[0].receptive = 1;
    m->nodes[0].rank = 2;
    m->nodes[0].frames = -1;
    m->df = CVD_CHANNELS_LAST;
    *out = m;
    return CVD_OK;
}

static void free_node(cvd_node *nd)
{
    free(nd->inputs);
    cvd_layer_destroy(nd->proto);
    free(nd->wn);
    free(nd->wn_weights);
    for (int k = 0; k < 4; k++)
        free(nd->v[k]);
    free(nd->fa);
    free(nd->fb);
    free(nd->nam_act);
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
    cvd_fusion_free(m); /* and the stream templates, which lock wn_lock */
    pthread_mutex_destroy(&m->wn_lock);
    for (int i = 0; i < m->n_nodes; i++)
        free_node(&m->nodes[i]);
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
static int new_node(cvd_model *m, cvd_node_op op, const char *name, const int *inputs, int n_inputs,
                    cvd_err *err)
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
    nd->rank = m->nodes[inputs[0]].rank;
    nd->frames = -1;
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

/* A node reading one input, whose output has the input's channels. */
static int new_unary_node(cvd_model *m, cvd_node_op op, const char *name, int input, cvd_err *err)
{
    int id = new_node(m, op, name, &input, 1, err);
    if (id >= 0)
        m->nodes[id].channels = m->nodes[input].channels;
    return id;
}

/* Removes the node just added (when setting it up failed). */
static void drop_last(cvd_model *m)
{
    cvd_node *nd = &m->nodes[--m->n_nodes];
    free_node(nd);
    memset(nd, 0, sizeof *nd);
    m->output = m->n_nodes - 1;
}

/* The node's frames for the model's fixed input length (Keras's shape inference): a length
 * Keras would refuse is refused here, and the node dropped. Returns id or an error. */
static int finish_node(cvd_model *m, int id, cvd_err *err)
{
    cvd_node *nd = &m->nodes[id];
    long lens[CVD_MERGE_MAX_INPUTS];
    const size_t params = cvd_model_param_count(m);
    if (params > CVD_MODEL_MAX_PARAMS) {
        size_t own = cvd_model_node_params(m, id);
        cvd_err_set(err, CVD_EINVAL,
                    "'%s' (%zu parameters) makes the model %zu parameters: at most %u (%u MiB "
                    "of weights)",
                    nd->name, own, params, CVD_MODEL_MAX_PARAMS,
                    (unsigned)(CVD_MODEL_MAX_PARAMS * sizeof(float) >> 20));
        drop_last(m);
        return CVD_EINVAL;
    }
    int known = m->in_length > 0;
    for (int k = 0; k < nd->n_inputs && k < CVD_MERGE_MAX_INPUTS; k++) {
        lens[k] = m->nodes[nd->inputs[k]].frames;
        known &= lens[k] >= 0;
    }
    if (!known || nd->op == CVD_NODE_RESHAPE)
        return id; /* Reshape sets its frames itself */
    long f = cvd_node_out_frames(m, id, lens, err);
    if (f < 0) {
        cvd_err_prefix(err, "with the model's input of %ld frames", m->in_length);
        drop_last(m);
        return (int)f;
    }
    nd->frames = f;
    return id;
}

static int need_rank2(cvd_model *m, const char *cls, const char *name, int input, cvd_err *err)
{
    if (m->nodes[input].rank != 2)
        return cvd_err_set(err, CVD_EINVAL,
                           "%s '%s': its input '%s' is a vector (rank 1, after Flatten or "
                           "global pooling); the layer needs (steps, channels)",
                           cls, name ? name : "", m->nodes[input].name);
    return CVD_OK;
}

/* A node that needs the whole window needs the model's input length. */
static int need_window(cvd_model *m, const char *cls, const char *name, int input, cvd_err *err)
{
    if (m->in_length <= 0)
        return cvd_err_set(err, CVD_EUNSUPPORTED,
                           "%s '%s' needs the whole window, but the model's input has no "
                           "fixed length (give the input layer its number of steps)",
                           cls, name ? name : "");
    if (m->nodes[input].frames < 0)
        return cvd_err_set(err, CVD_EINVAL, "%s '%s': the length of its input '%s' is not known",
                           cls, name ? name : "", m->nodes[input].name);
    return CVD_OK;
}

static int add_layer(cvd_model *m, cvd_node_op op, const char *name, const cvd_conv_config *cfg,
                     int input, cvd_err *err)
{
    int rc;
    if (input >= 0 && input < m->n_nodes && op == CVD_NODE_CONV &&
        (rc = need_rank2(m, cvd_layer_kind_name(cfg->kind), name, input, err)) < 0)
        return rc;
    int id = new_node(m, op, name, &input, 1, err);
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
    return finish_node(m, id, err);
}

int cvd_model_add_conv(cvd_model *m, const char *name, const cvd_conv_config *cfg, int input,
                       cvd_err *err)
{
    return add_layer(m, CVD_NODE_CONV, name, cfg, input, err);
}

int cvd_model_add_dense(cvd_model *m, const char *name, int units, cvd_activation act, int use_bias,
                        int input, cvd_err *err)
{
    cvd_conv_config c;
    if (units <= 0)
        return cvd_err_set(err, CVD_EINVAL, "Dense '%s': units=%d: must be > 0", name ? name : "",
                           units);
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
    int id = new_unary_node(m, CVD_NODE_ACTIVATION, name, input, err);
    if (id < 0)
        return id;
    m->nodes[id].act = act;
    return finish_node(m, id, err);
}

int cvd_model_add_nam_activation(cvd_model *m, const char *name, const cvd_wn_activation *a,
                                 int input, cvd_err *err)
{
    if (a->kind == CVD_WN_KERAS) /* a Keras activation: the plain node */
        return cvd_model_add_activation(m, name, a->keras, input, err);
    if (input >= 0 && input < m->n_nodes && a->kind == CVD_WN_PRELU &&
        !(a->n_slopes == 1 || a->n_slopes == m->nodes[input].channels))
        return cvd_err_set(err, CVD_EINVAL,
                           "Activation '%s': PReLU with %d slopes on %d channels (one, or one "
                           "per channel)",
                           name ? name : "", a->n_slopes, m->nodes[input].channels);
    cvd_wn_activation *copy = malloc(sizeof *copy);
    if (copy == NULL)
        return cvd_err_set(err, CVD_ENOMEM, "out of memory");
    *copy = *a;
    int id = new_unary_node(m, CVD_NODE_ACTIVATION, name, input, err);
    if (id < 0) {
        free(copy);
        return id;
    }
    m->nodes[id].act = CVD_ACT_LINEAR;
    m->nodes[id].nam_act = copy;
    return finish_node(m, id, err);
}

int cvd_model_set_prewarm(cvd_model *m, long frames, cvd_err *err)
{
    if (frames < 0 || frames > (1L << 24))
        return cvd_err_set(err, CVD_EINVAL, "prewarm of %ld frames: must be in 0..%ld", frames,
                           1L << 24);
    if (frames > 0 && (cvd_model_mode(m) != CVD_MODE_STREAMING || cvd_model_rate_ratio(m) != 1.0 ||
                       cvd_model_latency(m) != 0))
        return cvd_err_set(err, CVD_EINVAL,
                           "prewarm: only a causal streaming model that gives a frame for "
                           "every frame can be prewarmed");
    m->prewarm = frames;
    return CVD_OK;
}

long cvd_model_prewarm(const cvd_model *m)
{
    return m->prewarm;
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
                           cvd_node_op_name(op), name ? name : "", CVD_MERGE_MAX_INPUTS, n_inputs);
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
                        cvd_node_op_name(op), m->nodes[id].name, i, m->nodes[inputs[i]].name, c,
                        m->nodes[inputs[0]].name, ch);
            drop_last(m);
            return CVD_EINVAL;
        } else {
            ch = c;
        }
    }
    for (int i = 1; i < n_inputs; i++)
        if (m->nodes[inputs[i]].rank != m->nodes[inputs[0]].rank) {
            cvd_err_set(err, CVD_EINVAL, "%s '%s': input %d ('%s') has rank %d, input 0 ('%s') %d",
                        cvd_node_op_name(op), m->nodes[id].name, i, m->nodes[inputs[i]].name,
                        m->nodes[inputs[i]].rank, m->nodes[inputs[0]].name,
                        m->nodes[inputs[0]].rank);
            drop_last(m);
            return CVD_EINVAL;
        }
    m->nodes[id].channels = ch;
    return finish_node(m, id, err);
}

int cvd_model_add_wavenet(cvd_model *m, const char *name, const cvd_wn_config *cfg, int input,
                          cvd_err *err)
{
    int rc = cvd_wn_config_check(cfg, err);
    if (rc < 0)
        return rc;
    if (input < 0 || input >= m->n_nodes)
        return cvd_err_set(err, CVD_EINVAL, "WaveNet '%s': input %d does not exist",
                           name ? name : "", input);
    if ((rc = need_rank2(m, "WaveNet", name, input, err)) < 0)
        return rc;
    if (cvd_wn_in_channels(cfg) != m->nodes[input].channels)
        return cvd_err_set(err, CVD_EINVAL,
                           "WaveNet '%s': input_size %d, but its input has %d channels",
                           name ? name : "", cvd_wn_in_channels(cfg), m->nodes[input].channels);
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
    return finish_node(m, id, err);
}

/* ---- more Keras layers ------------------------------------------------------------------ */

int cvd_model_set_input_length(cvd_model *m, long frames, cvd_err *err)
{
    if (m->n_nodes > 1)
        return cvd_err_set(err, CVD_ESTATE,
                           "the input length is set before the first node is added");
    if (frames < 0 || frames > (1L << 24))
        return cvd_err_set(err, CVD_EINVAL, "input length %ld: must be in 0..%ld (0: any)", frames,
                           1L << 24);
    m->in_length = frames;
    m->nodes[0].frames = frames > 0 ? frames : -1;
    return CVD_OK;
}

long cvd_model_input_length(const cvd_model *m)
{
    return m->in_length;
}

int cvd_model_set_data_format(cvd_model *m, cvd_data_format df, cvd_err *err)
{
    if (m->n_nodes > 1)
        return cvd_err_set(err, CVD_ESTATE,
                           "the data format is set before the first node is added");
    if ((unsigned)df > CVD_CHANNELS_FIRST)
        return cvd_err_set(err, CVD_EINVAL, "data_format=%d: unknown", (int)df);
    m->df = df;
    return CVD_OK;
}

cvd_data_format cvd_model_data_format(const cvd_model *m)
{
    return m->df;
}

static int check_input(cvd_model *m, const char *cls, const char *name, int input, cvd_err *err)
{
    if (input < 0 || input >= m->n_nodes)
        return cvd_err_set(err, CVD_EINVAL,
                           "%s '%s': input %d refers to node %d, which does "
                           "not exist (yet)",
                           cls, name ? name : "", 0, input);
    return CVD_OK;
}

int cvd_model_add_identity(cvd_model *m, const char *name, const char *keras_class, int input,
                           cvd_err *err)
{
    int id = new_unary_node(m, CVD_NODE_IDENTITY, name, input, err);
    if (id < 0)
        return id;
    if (keras_class)
        snprintf(m->nodes[id].cls, sizeof m->nodes[id].cls, "%s", keras_class);
    return finish_node(m, id, err);
}

int cvd_model_add_activation_axis(cvd_model *m, const char *name, cvd_activation act, cvd_axis axis,
                                  int input, cvd_err *err)
{
    int rc;
    if (axis == CVD_AXIS_CHANNELS)
        return cvd_model_add_activation(m, name, act, input, err);
    if ((rc = check_input(m, "Activation", name, input, err)) < 0 ||
        (rc = need_rank2(m, "Activation", name, input, err)) < 0 ||
        (rc = need_window(m, "Activation", name, input, err)) < 0)
        return rc;
    rc = cvd_model_add_activation(m, name, act, input, err);
    if (rc < 0)
        return rc;
    m->nodes[rc].axis = CVD_AXIS_TIME;
    m->nodes[rc].window = 1;
    return rc;
}

/* The norms' variables: vlen values each, in Keras's order. */
static int norm_vars(cvd_model *m, int id, const int *roles, int nv, cvd_err *err)
{
    cvd_node *nd = &m->nodes[id];
    nd->nv = nv;
    for (int k = 0; k < nv; k++) {
        nd->vrole[k] = roles[k];
        nd->v[k] = malloc(sizeof(float) * (size_t)nd->vlen);
        if (nd->v[k] == NULL) {
            drop_last(m);
            return cvd_err_set(err, CVD_ENOMEM, "out of memory");
        }
        for (int c = 0; c < nd->vlen; c++)
            nd->v[k][c] = roles[k] == CVD_VAR_GAMMA || roles[k] == CVD_VAR_VAR ? 1.0f : 0.0f;
    }
    return CVD_OK;
}

static int add_norm(cvd_model *m, cvd_node_op op, const char *name, cvd_axis axis, float epsilon,
                    int center, int scale, int rms, int input, cvd_err *err)
{
    const char *cls = cvd_node_op_name(op);
    int rc, roles[4], nv = 0;
    if ((rc = check_input(m, cls, name, input, err)) < 0)
        return rc;
    if (!(epsilon >= 0.0f) || !isfinite(epsilon))
        return cvd_err_set(err, CVD_EINVAL, "%s '%s': epsilon=%g: must be >= 0", cls,
                           name ? name : "", (double)epsilon);
    if ((unsigned)axis > CVD_AXIS_TIME)
        return cvd_err_set(err, CVD_EINVAL, "%s '%s': axis %d: unknown", cls, name ? name : "",
                           (int)axis);
    if (axis == CVD_AXIS_TIME && ((rc = need_rank2(m, cls, name, input, err)) < 0 ||
                                  (rc = need_window(m, cls, name, input, err)) < 0))
        return rc;
    int id = new_unary_node(m, op, name, input, err);
    if (id < 0)
        return id;
    cvd_node *nd = &m->nodes[id];
    nd->axis = axis;
    nd->eps = epsilon;
    nd->center = center;
    nd->scale = scale;
    nd->rms = rms;
    nd->window = axis == CVD_AXIS_TIME;
    nd->vlen = axis == CVD_AXIS_TIME ? (int)m->nodes[input].frames : nd->channels;
    if (op == CVD_NODE_BATCH_NORM) {
        if (scale)
            roles[nv++] = CVD_VAR_GAMMA;
        if (center)
            roles[nv++] = CVD_VAR_BETA;
        roles[nv++] = CVD_VAR_MEAN;
        roles[nv++] = CVD_VAR_VAR;
    } else {
        if (scale || rms)
            roles[nv++] = CVD_VAR_GAMMA;
        if (center && !rms)
            roles[nv++] = CVD_VAR_BETA;
    }
    if ((rc = norm_vars(m, id, roles, nv, err)) < 0)
        return rc;
    nd = &m->nodes[id];
    if (op == CVD_NODE_BATCH_NORM) {
        nd->fa = malloc(sizeof(float) * (size_t)nd->vlen);
        nd->fb = malloc(sizeof(float) * (size_t)nd->vlen);
        if (nd->fa == NULL || nd->fb == NULL) {
            drop_last(m);
            return cvd_err_set(err, CVD_ENOMEM, "out of memory");
        }
        cvd_batch_norm_fold(nd);
    }
    return finish_node(m, id, err);
}

int cvd_model_add_batch_norm(cvd_model *m, const char *name, cvd_axis axis, float epsilon,
                             int center, int scale, int input, cvd_err *err)
{
    return add_norm(m, CVD_NODE_BATCH_NORM, name, axis, epsilon, center, scale, 0, input, err);
}

int cvd_model_add_layer_norm(cvd_model *m, const char *name, cvd_axis axis, float epsilon,
                             int center, int scale, int rms_scaling, int input, cvd_err *err)
{
    return add_norm(m, CVD_NODE_LAYER_NORM, name, axis, epsilon, center, scale, rms_scaling, input,
                    err);
}

int cvd_model_add_rescaling(cvd_model *m, const char *name, float scale, float offset, int input,
                            cvd_err *err)
{
    if (!isfinite(scale) || !isfinite(offset))
        return cvd_err_set(err, CVD_EINVAL, "Rescaling '%s': scale=%g, offset=%g: must be finite",
                           name ? name : "", (double)scale, (double)offset);
    int id = new_unary_node(m, CVD_NODE_RESCALING, name, input, err);
    if (id < 0)
        return id;
    m->nodes[id].mul = scale;
    m->nodes[id].add = offset;
    return finish_node(m, id, err);
}

int cvd_model_add_pad_crop(cvd_model *m, const char *name, cvd_node_op op, int left, int right,
                           int input, cvd_err *err)
{
    int rc;
    const char *cls = op == CVD_NODE_CROPPING ? "Cropping1D" : "ZeroPadding1D";
    if (op != CVD_NODE_CROPPING && op != CVD_NODE_ZERO_PADDING)
        return cvd_err_set(err, CVD_EINVAL, "'%s': %s is not ZeroPadding1D or Cropping1D",
                           name ? name : "", cvd_node_op_name(op));
    if (left < 0 || right < 0 || left > (1 << 24) || right > (1 << 24))
        return cvd_err_set(err, CVD_EINVAL, "%s '%s': (%d, %d): must be in 0..%d", cls,
                           name ? name : "", left, right, 1 << 24);
    if ((rc = check_input(m, cls, name, input, err)) < 0 ||
        (rc = need_rank2(m, cls, name, input, err)) < 0)
        return rc;
    int id = new_unary_node(m, op, name, input, err);
    if (id < 0)
        return id;
    cvd_node *nd = &m->nodes[id];
    nd->left = left;
    nd->right = right;
    /* a stream of n frames has given n + left zero-padded frames, or n - left - right
     * cropped ones */
    nd->latency += op == CVD_NODE_CROPPING ? left + right : -left;
    return finish_node(m, id, err);
}

int cvd_model_add_upsampling(cvd_model *m, const char *name, int size, int input, cvd_err *err)
{
    int rc;
    if (size < 1 || size > (1 << 16))
        return cvd_err_set(err, CVD_EINVAL, "UpSampling1D '%s': size=%d: must be in 1..%d",
                           name ? name : "", size, 1 << 16);
    if ((rc = check_input(m, "UpSampling1D", name, input, err)) < 0 ||
        (rc = need_rank2(m, "UpSampling1D", name, input, err)) < 0)
        return rc;
    if ((long long)m->nodes[input].latency * size > (1 << 28))
        return cvd_err_set(err, CVD_EINVAL,
                           "UpSampling1D '%s': size=%d after %d frames of latency: too long",
                           name ? name : "", size, m->nodes[input].latency);
    int id = new_unary_node(m, CVD_NODE_UPSAMPLING, name, input, err);
    if (id < 0)
        return id;
    cvd_node *nd = &m->nodes[id];
    nd->size = size;
    nd->latency = m->nodes[input].latency * size;
    return finish_node(m, id, err);
}

static long floor_div(long a, long b)
{
    return a >= 0 ? a / b : -((-a + b - 1) / b);
}

int cvd_model_add_pooling(cvd_model *m, const char *name, cvd_node_op op, int pool_size,
                          int strides, cvd_padding padding, int input, cvd_err *err)
{
    int rc;
    const char *cls = cvd_node_op_name(op);
    if (op != CVD_NODE_MAX_POOL && op != CVD_NODE_AVG_POOL)
        return cvd_err_set(err, CVD_EINVAL, "'%s': %s is not a pooling layer", name ? name : "",
                           cls);
    if (pool_size < 1 || pool_size > (1 << 20))
        return cvd_err_set(err, CVD_EINVAL, "%s '%s': pool_size=%d: must be in 1..%d", cls,
                           name ? name : "", pool_size, 1 << 20);
    if (strides < 1 || strides > (1 << 20))
        return cvd_err_set(err, CVD_EINVAL, "%s '%s': strides=%d: must be in 1..%d", cls,
                           name ? name : "", strides, 1 << 20);
    if (padding != CVD_PAD_VALID && padding != CVD_PAD_SAME)
        return cvd_err_set(err, CVD_EINVAL, "%s '%s': padding='%s': must be valid or same", cls,
                           name ? name : "", cvd_padding_name(padding));
    if ((rc = check_input(m, cls, name, input, err)) < 0 ||
        (rc = need_rank2(m, cls, name, input, err)) < 0)
        return rc;
    int id = new_unary_node(m, op, name, input, err);
    if (id < 0)
        return id;
    cvd_node *nd = &m->nodes[id];
    nd->k = pool_size;
    nd->s = strides;
    nd->padding = padding;
    nd->own_lat = cvd_pool_latency(pool_size, strides, padding);
    nd->latency = (int)floor_div((long)nd->latency + nd->own_lat + strides - 1, strides);
    nd->receptive += pool_size - 1;
    return finish_node(m, id, err);
}

int cvd_model_add_global_pooling(cvd_model *m, const char *name, cvd_node_op op, int keepdims,
                                 int input, cvd_err *err)
{
    int rc;
    const char *cls = cvd_node_op_name(op);
    if (op != CVD_NODE_GLOBAL_MAX_POOL && op != CVD_NODE_GLOBAL_AVG_POOL)
        return cvd_err_set(err, CVD_EINVAL, "'%s': %s is not a global pooling layer",
                           name ? name : "", cls);
    if ((rc = check_input(m, cls, name, input, err)) < 0 ||
        (rc = need_rank2(m, cls, name, input, err)) < 0 ||
        (rc = need_window(m, cls, name, input, err)) < 0)
        return rc;
    int id = new_unary_node(m, op, name, input, err);
    if (id < 0)
        return id;
    cvd_node *nd = &m->nodes[id];
    nd->keepdims = keepdims != 0;
    nd->rank = keepdims ? 2 : 1;
    nd->window = 1;
    return finish_node(m, id, err);
}

int cvd_model_add_flatten(cvd_model *m, const char *name, cvd_data_format layout, int input,
                          cvd_err *err)
{
    int rc;
    if ((rc = check_input(m, "Flatten", name, input, err)) < 0)
        return rc;
    const cvd_node *in = &m->nodes[input];
    if (in->rank == 2 && (rc = need_window(m, "Flatten", name, input, err)) < 0)
        return rc;
    if (in->rank == 2 && (double)in->frames * in->channels > (double)(1 << 26))
        return cvd_err_set(err, CVD_EINVAL, "Flatten '%s': %ld x %d values: at most %d",
                           name ? name : "", in->frames, in->channels, 1 << 26);
    int id = new_node(m, CVD_NODE_FLATTEN, name, &input, 1, err);
    if (id < 0)
        return id;
    cvd_node *nd = &m->nodes[id];
    in = &m->nodes[input];
    nd->window = 1;
    nd->rank = 1;
    nd->channels = in->rank == 2 ? (int)(in->frames * in->channels) : in->channels;
    /* Keras's Flatten with data_format channels_first first makes the tensor channels_last */
    nd->in_chmajor = in->rank == 2 && layout != m->df;
    return finish_node(m, id, err);
}

int cvd_model_add_reshape(cvd_model *m, const char *name, int rank, const long *dims, int input,
                          cvd_err *err)
{
    int rc, infer = -1;
    long d[2], total, known = 1;
    if ((rc = check_input(m, "Reshape", name, input, err)) < 0)
        return rc;
    if (rank < 1 || rank > 2)
        return cvd_err_set(err, CVD_EUNSUPPORTED,
                           "Reshape '%s': target_shape of rank %d: convd's tensors have rank 1 "
                           "(a vector) or 2 (steps, channels)",
                           name ? name : "", rank);
    const cvd_node *in = &m->nodes[input];
    if ((rc = need_window(m, "Reshape", name, input, err)) < 0)
        return rc;
    total = (long)in->frames * in->channels;
    for (int k = 0; k < rank; k++) {
        d[k] = dims[k];
        if (d[k] == -1 && infer < 0) {
            infer = k;
            continue;
        }
        if (d[k] < 1 || d[k] > (1L << 26))
            return cvd_err_set(err, CVD_EINVAL,
                               "Reshape '%s': target_shape[%d]=%ld: must be "
                               "positive (or one -1)",
                               name ? name : "", k, d[k]);
        known *= d[k];
    }
    if (infer >= 0) {
        if (total % known != 0)
            return cvd_err_set(err, CVD_EINVAL,
                               "Reshape '%s': %ld values do not divide into a dimension of %ld",
                               name ? name : "", total, known);
        d[infer] = total / known;
        known = total;
    }
    if (known != total)
        return cvd_err_set(err, CVD_EINVAL,
                           "Reshape '%s': target_shape has %ld values, its input has %ld",
                           name ? name : "", known, total);
    int id = new_node(m, CVD_NODE_RESHAPE, name, &input, 1, err);
    if (id < 0)
        return id;
    cvd_node *nd = &m->nodes[id];
    nd->window = 1;
    nd->rank = rank;
    nd->in_chmajor = cvd_node_chmajor(m, input);
    if (rank == 1) {
        nd->frames = 1;
        nd->channels = (int)total;
    } else if (m->df == CVD_CHANNELS_FIRST) { /* Keras (channels, steps) */
        nd->channels = (int)d[0];
        nd->frames = d[1];
        nd->out_chmajor = 1;
    } else {
        nd->frames = d[0];
        nd->channels = (int)d[1];
    }
    return finish_node(m, id, err);
}

int cvd_model_add_permute(cvd_model *m, const char *name, int swap, int input, cvd_err *err)
{
    int rc;
    if ((rc = check_input(m, "Permute", name, input, err)) < 0 ||
        (rc = need_rank2(m, "Permute", name, input, err)) < 0)
        return rc;
    if (swap && (rc = need_window(m, "Permute", name, input, err)) < 0)
        return rc;
    int id = new_node(m, CVD_NODE_PERMUTE, name, &input, 1, err);
    if (id < 0)
        return id;
    cvd_node *nd = &m->nodes[id];
    const cvd_node *in = &m->nodes[input];
    nd->size = swap != 0;
    nd->window = swap != 0;
    nd->channels = swap ? (int)in->frames : in->channels;
    return finish_node(m, id, err);
}

int cvd_model_set_output(cvd_model *m, int node, cvd_err *err)
{
    if (node <= 0 || node >= m->n_nodes)
        return cvd_err_set(err, CVD_EINVAL, "output node %d: the model has nodes 1..%d", node,
                           m->n_nodes - 1);
    m->output = node;
    return CVD_OK;
}
