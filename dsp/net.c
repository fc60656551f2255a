/*
 * Nets: one stream's instance of a model.
 *
 * A call runs one "round": every node, in topological order, consumes the frames its inputs
 * produced in this round and produces its own. Nodes emit different counts (a same-padded
 * layer lags by its latency), so a node with several inputs keeps a queue per input and emits
 * as many frames as all its queues hold: branches of different latency line up exactly as
 * offline, since every node's output is a prefix of its offline output.
 *
 * Flushing is rounds with no new input: a node whose inputs are all finished (and whose last
 * frames it has consumed) flushes its own tail, in chunks, and is finished when that is done.
 */
#include "graph_internal.h"

#include <stdlib.h>
#include <string.h>

typedef struct net_node {
    cvd_layer *layer;   /* CONV, DENSE */
    cvd_wavenet *wn;    /* WAVENET */
    float *buf;         /* output frames of this round (max_out * channels) */
    const float *out;   /* what consumers read: buf, or the net's input for node 0 */
    int n_out;
    int max_out;
    int finished;
    float **q;          /* merges: a queue of frames per input */
    int *qlen;
    int qcap;
} net_node;

struct cvd_net {
    cvd_model *m;
    int max_block;
    int flushing;
    int failed;
    net_node *nodes;
};

void cvd_net_destroy(cvd_net *net)
{
    if (net == NULL)
        return;
    for (int i = 0; net->nodes && i < net->m->n_nodes; i++) {
        net_node *st = &net->nodes[i];
        cvd_layer_destroy(st->layer);
        cvd_wavenet_destroy(st->wn);
        free(st->buf);
        if (st->q)
            for (int k = 0; k < net->m->nodes[i].n_inputs; k++)
                free(st->q[k]);
        free(st->q);
        free(st->qlen);
    }
    free(net->nodes);
    cvd_model_unref(net->m);
    free(net);
}

static int create_node(cvd_net *net, int i, cvd_err *err)
{
    const cvd_model *m = net->m;
    const cvd_node *nd = &m->nodes[i];
    net_node *st = &net->nodes[i];
    const net_node *src = &net->nodes[nd->inputs[0]];
    int rc;

    switch (nd->op) {
    case CVD_NODE_CONV:
    case CVD_NODE_DENSE:
        rc = cvd_layer_create(cvd_layer_config(nd->proto), m->nodes[nd->inputs[0]].channels,
                              src->max_out, &st->layer, err);
        if (rc < 0)
            return rc;
        for (int v = 0; v < cvd_layer_var_count(nd->proto); v++) {
            rc = cvd_layer_set_var(st->layer, v, cvd_layer_var(nd->proto, v),
                                   cvd_layer_var_size(nd->proto, v), err);
            if (rc < 0)
                return rc;
        }
        st->max_out = cvd_layer_max_out(st->layer);
        break;
    case CVD_NODE_WAVENET:
        rc = cvd_wavenet_create(nd->wn, src->max_out, &st->wn, err);
        if (rc < 0)
            return rc;
        rc = cvd_wavenet_set_weights(st->wn, nd->wn_weights, nd->wn_nweights, err);
        if (rc < 0)
            return rc;
        st->max_out = src->max_out;
        break;
    case CVD_NODE_ACTIVATION:
    case CVD_NODE_IDENTITY:
        st->max_out = src->max_out;
        break;
    default: { /* merges */
        int most = 0, lat_lo = nd->latency, lat_hi = 0;
        for (int k = 0; k < nd->n_inputs; k++) {
            const cvd_node *in = &m->nodes[nd->inputs[k]];
            if (net->nodes[nd->inputs[k]].max_out > most)
                most = net->nodes[nd->inputs[k]].max_out;
            if (in->latency < lat_lo)
                lat_lo = in->latency;
            if (in->latency > lat_hi)
                lat_hi = in->latency;
        }
        /* a queue holds at most the latency gap plus one round of its producer */
        st->qcap = 2 * most + 2 * (lat_hi - lat_lo) + 64;
        st->max_out = st->qcap;
        st->q = calloc((size_t)nd->n_inputs, sizeof *st->q);
        st->qlen = calloc((size_t)nd->n_inputs, sizeof *st->qlen);
        if (st->q == NULL || st->qlen == NULL)
            return cvd_err_set(err, CVD_ENOMEM, "out of memory");
        for (int k = 0; k < nd->n_inputs; k++) {
            st->q[k] = malloc(sizeof(float) * (size_t)st->qcap *
                              (size_t)m->nodes[nd->inputs[k]].channels);
            if (st->q[k] == NULL)
                return cvd_err_set(err, CVD_ENOMEM, "out of memory");
        }
        break;
    }
    }
    st->buf = malloc(sizeof(float) * ((size_t)st->max_out * nd->channels + 1));
    if (st->buf == NULL)
        return cvd_err_set(err, CVD_ENOMEM, "out of memory");
    st->out = st->buf;
    return CVD_OK;
}

int cvd_net_create(cvd_model *m, int max_block, cvd_net **out, cvd_err *err)
{
    cvd_net *net;
    *out = NULL;
    if (max_block <= 0 || max_block > (1 << 20))
        return cvd_err_set(err, CVD_EINVAL, "max_block=%d: must be in 1..%d", max_block,
                           1 << 20);
    if (m->n_nodes < 2)
        return cvd_err_set(err, CVD_EINVAL, "the model has no layers");
    net = calloc(1, sizeof *net);
    if (net == NULL)
        return cvd_err_set(err, CVD_ENOMEM, "out of memory");
    net->m = cvd_model_ref(m);
    net->max_block = max_block;
    net->nodes = calloc((size_t)m->n_nodes, sizeof *net->nodes);
    if (net->nodes == NULL) {
        cvd_net_destroy(net);
        return cvd_err_set(err, CVD_ENOMEM, "out of memory");
    }
    net->nodes[0].max_out = max_block;
    for (int i = 1; i < m->n_nodes; i++) {
        int rc = create_node(net, i, err);
        if (rc < 0) {
            cvd_err_prefix(err, "%s '%s'", cvd_node_op_name(m->nodes[i].op), m->nodes[i].name);
            cvd_net_destroy(net);
            return rc;
        }
    }
    cvd_net_reset(net);
    *out = net;
    return CVD_OK;
}

const cvd_model *cvd_net_model(const cvd_net *net)
{
    return net->m;
}

int cvd_net_max_out(const cvd_net *net)
{
    return net->nodes[net->m->output].max_out;
}

size_t cvd_net_state_bytes(const cvd_net *net)
{
    size_t b = 0;
    for (int i = 1; i < net->m->n_nodes; i++) {
        const net_node *st = &net->nodes[i];
        const cvd_node *nd = &net->m->nodes[i];
        if (st->layer)
            b += cvd_layer_state_bytes(st->layer);
        if (st->wn)
            b += cvd_wavenet_state_bytes(st->wn);
        b += sizeof(float) * (size_t)st->max_out * nd->channels;
        for (int k = 0; st->q && k < nd->n_inputs; k++)
            b += sizeof(float) * (size_t)st->qcap * net->m->nodes[nd->inputs[k]].channels;
    }
    return b;
}

void cvd_net_reset(cvd_net *net)
{
    for (int i = 0; i < net->m->n_nodes; i++) {
        net_node *st = &net->nodes[i];
        if (st->layer)
            cvd_layer_reset(st->layer);
        if (st->wn)
            cvd_wavenet_reset(st->wn);
        for (int k = 0; st->qlen && k < net->m->nodes[i].n_inputs; k++)
            st->qlen[k] = 0;
        st->n_out = 0;
        st->finished = 0;
    }
    net->flushing = 0;
    net->failed = 0;
}

/* One merge node: queue this round's input frames, emit what every queue holds. */
static int run_merge(cvd_net *net, const cvd_node *nd, net_node *st)
{
    const cvd_model *m = net->m;
    int emit = st->qcap, all_finished = 1;

    for (int k = 0; k < nd->n_inputs; k++) {
        const net_node *src = &net->nodes[nd->inputs[k]];
        const int c = m->nodes[nd->inputs[k]].channels;
        if (st->qlen[k] + src->n_out > st->qcap)
            return CVD_ESTATE; /* cannot happen with the bound set at create */
        memcpy(st->q[k] + (size_t)st->qlen[k] * c, src->out,
               sizeof(float) * (size_t)src->n_out * c);
        st->qlen[k] += src->n_out;
        if (st->qlen[k] < emit)
            emit = st->qlen[k];
        all_finished &= src->finished;
    }
    if (nd->op == CVD_NODE_CONCATENATE) {
        for (int t = 0; t < emit; t++) {
            float *y = st->buf + (size_t)t * nd->channels;
            for (int k = 0; k < nd->n_inputs; k++) {
                const int c = m->nodes[nd->inputs[k]].channels;
                memcpy(y, st->q[k] + (size_t)t * c, sizeof(float) * (size_t)c);
                y += c;
            }
        }
    } else {
        const float *xs[CVD_MERGE_MAX_INPUTS];
        for (int k = 0; k < nd->n_inputs; k++)
            xs[k] = st->q[k];
        cvd_merge_frames(nd->op, nd->n_inputs, xs, (size_t)emit * nd->channels, st->buf);
    }
    for (int k = 0; k < nd->n_inputs; k++) {
        const int c = m->nodes[nd->inputs[k]].channels;
        st->qlen[k] -= emit;
        memmove(st->q[k], st->q[k] + (size_t)emit * c, sizeof(float) * (size_t)st->qlen[k] * c);
    }
    st->n_out = emit;
    st->finished = all_finished;
    return CVD_OK;
}

static int run_round(cvd_net *net, const float *in, int n)
{
    const cvd_model *m = net->m;
    int rc = CVD_OK;

    net->nodes[0].out = in;
    net->nodes[0].n_out = n;
    net->nodes[0].finished = net->flushing;
    for (int i = 1; i < m->n_nodes && rc == CVD_OK; i++) {
        const cvd_node *nd = &m->nodes[i];
        net_node *st = &net->nodes[i];
        const net_node *src = &net->nodes[nd->inputs[0]];

        st->n_out = 0;
        if (st->finished)
            continue;
        switch (nd->op) {
        case CVD_NODE_CONV:
        case CVD_NODE_DENSE:
            if (src->n_out > 0)
                rc = cvd_layer_process(st->layer, src->out, src->n_out, st->buf, &st->n_out);
            else if (src->finished)
                st->finished = cvd_layer_flush(st->layer, st->buf, &st->n_out) == 0;
            break;
        case CVD_NODE_WAVENET:
            if (src->n_out > 0)
                cvd_wavenet_process(st->wn, src->out, src->n_out, st->buf);
            st->n_out = src->n_out;
            st->finished = src->finished;
            break;
        case CVD_NODE_ACTIVATION:
        case CVD_NODE_IDENTITY:
            memcpy(st->buf, src->out, sizeof(float) * (size_t)src->n_out * nd->channels);
            if (nd->op == CVD_NODE_ACTIVATION)
                cvd_activation_apply_axis(nd->act, st->buf, (size_t)src->n_out,
                                          (size_t)nd->channels, (size_t)nd->channels, 1);
            st->n_out = src->n_out;
            st->finished = src->finished;
            break;
        default:
            rc = run_merge(net, nd, st);
            break;
        }
    }
    return rc;
}

static int emit_output(cvd_net *net, float *out, int *n_out)
{
    const net_node *o = &net->nodes[net->m->output];
    memcpy(out, o->out, sizeof(float) * (size_t)o->n_out * net->m->nodes[net->m->output].channels);
    *n_out = o->n_out;
    return CVD_OK;
}

int cvd_net_process(cvd_net *net, const float *in, int n, float *out, int *n_out)
{
    int rc;
    *n_out = 0;
    if (n < 0 || n > net->max_block)
        return CVD_ERANGE;
    if (net->flushing || net->failed)
        return CVD_ESTATE;
    if (n == 0)
        return CVD_OK;
    rc = run_round(net, in, n);
    if (rc < 0) {
        net->failed = 1;
        return rc;
    }
    return emit_output(net, out, n_out);
}

int cvd_net_flush(cvd_net *net, float *out, int *n_out)
{
    int rc;
    *n_out = 0;
    if (net->failed)
        return CVD_ESTATE;
    if (net->nodes[net->m->output].finished)
        return 0;
    net->flushing = 1;
    rc = run_round(net, NULL, 0);
    if (rc < 0) {
        net->failed = 1;
        return rc;
    }
    emit_output(net, out, n_out);
    return net->nodes[net->m->output].finished ? 0 : 1;
}
