/* SPDX-License-Identifier: Apache-2.0 */
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
    int fused_skip;    /* inside a fused group (not its output): never runs */
    int fused;         /* a fused group's output: runs the group as one WaveNet */
    int fused_src;     /* ... reading this node */
    cvd_layer *layer;  /* CONV, DENSE */
    cvd_wavenet *wn;   /* WAVENET */
    cvd_wn_pipe *pipe; /* WAVENET (or a fused group) on two threads: the output node */
    cvd_pool *pool;    /* MAX_POOL, AVG_POOL */
    float *hold;       /* CROPPING: the last `right` frames, not yet known to be kept */
    int nhold;
    long seen;         /* ZERO_PADDING, CROPPING: input frames so far */
    int pad_left_done; /* ZERO_PADDING: the left zeros were sent */
    long tail;         /* ZERO_PADDING: right zeros sent */
    float *buf;        /* output frames of this round (max_out * channels) */
    const float *out;  /* what consumers read: buf, or the net's input for node 0 */
    int n_out;
    int max_out;
    int finished;
    float **q; /* merges: a queue of frames per input */
    int *qlen;
    int qcap;
} net_node;

struct cvd_net {
    cvd_model *m;
    int max_block;
    int flushing;
    int failed;
    net_node *nodes;
    int *order; /* the nodes a round runs, in order (a fused group's inner ones left out) */
    int n_order;
    int threads;              /* asked for */
    const char *threads_note; /* why one thread when two were asked, or NULL */
    /* windowed: the frames of the current window, and one plan computing a window */
    int windowed;
    long window, hop;
    int rsize;    /* values of one record */
    float *win;   /* window * in_channels */
    float *zeros; /* max_block * in_channels of silence: the prewarm's input */
    long wlen;    /* frames in win */
    long skip;    /* frames to drop before the next window starts (hop > window) */
    cvd_plan *plan;
};

void cvd_net_destroy(cvd_net *net)
{
    if (net == NULL)
        return;
    for (int i = 0; net->nodes && i < net->m->n_nodes; i++) {
        net_node *st = &net->nodes[i];
        cvd_layer_destroy(st->layer);
        cvd_wavenet_destroy(st->wn);
        cvd_wn_pipe_destroy(st->pipe);
        cvd_pool_destroy(st->pool);
        free(st->hold);
        free(st->buf);
        if (st->q)
            for (int k = 0; k < net->m->nodes[i].n_inputs; k++)
                free(st->q[k]);
        free(st->q);
        free(st->qlen);
    }
    free(net->nodes);
    free(net->order);
    free(net->win);
    free(net->zeros);
    cvd_plan_destroy(net->plan);
    cvd_model_unref(net->m);
    free(net);
}

/* A node of a fused group (fuse.c): its output node runs the group as one WaveNet. */
static int create_fused(cvd_net *net, int i, int g, cvd_err *err)
{
    const cvd_model *m = net->m;
    const cvd_fusion *f = &m->fusions[g];
    net_node *st = &net->nodes[i];
    int rc;
    if (i != f->output) {
        st->fused_skip = 1;
        return CVD_OK;
    }
    const net_node *src = &net->nodes[f->input];
    if (net->threads > 1 && i == m->output) {
        size_t nw = cvd_wn_weight_count(f->cfg);
        float *w = malloc(sizeof(float) * nw);
        if (w == NULL)
            return cvd_err_set(err, CVD_ENOMEM, "out of memory");
        cvd_fusion_weights(m, f, w);
        rc = cvd_wn_pipe_create(f->cfg, w, nw, src->max_out, &st->pipe, err);
        free(w);
    } else {
        rc = cvd_wavenet_create_shared(net->m, f->cfg, g, src->max_out, &st->wn, err);
    }
    if (rc < 0)
        return rc;
    st->fused = 1;
    st->fused_src = f->input;
    st->max_out = src->max_out;
    st->buf = malloc(sizeof(float) * ((size_t)st->max_out * m->nodes[i].channels + 1));
    if (st->buf == NULL)
        return cvd_err_set(err, CVD_ENOMEM, "out of memory");
    st->out = st->buf;
    return CVD_OK;
}

static int create_node(cvd_net *net, int i, cvd_err *err)
{
    const cvd_model *m = net->m;
    const cvd_node *nd = &m->nodes[i];
    net_node *st = &net->nodes[i];
    const net_node *src = &net->nodes[nd->inputs[0]];
    int rc;

    if (!m->fuse_off && i < m->fuse_nodes && m->fused_in[i] >= 0)
        return create_fused(net, i, m->fused_in[i], err);

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
        if (net->threads > 1 && i == m->output) {
            rc = cvd_wn_pipe_create(nd->wn, nd->wn_weights, nd->wn_nweights, src->max_out,
                                    &st->pipe, err);
            if (rc < 0)
                return rc;
            st->max_out = src->max_out;
            break;
        }
        rc = cvd_wavenet_create_shared(net->m, nd->wn, -1, src->max_out, &st->wn, err);
        if (rc < 0)
            return rc;
        st->max_out = src->max_out;
        break;
    case CVD_NODE_ACTIVATION:
    case CVD_NODE_IDENTITY:
    case CVD_NODE_BATCH_NORM:
    case CVD_NODE_LAYER_NORM:
    case CVD_NODE_RESCALING:
    case CVD_NODE_PERMUTE:
        st->max_out = src->max_out;
        break;
    case CVD_NODE_ZERO_PADDING:
        st->max_out = src->max_out + nd->left;
        break;
    case CVD_NODE_CROPPING:
        st->max_out = src->max_out;
        st->hold = malloc(sizeof(float) * ((size_t)(nd->right + src->max_out) * nd->channels + 1));
        if (st->hold == NULL)
            return cvd_err_set(err, CVD_ENOMEM, "out of memory");
        break;
    case CVD_NODE_UPSAMPLING:
        if ((long long)src->max_out * nd->size > (1 << 26))
            return cvd_err_set(err, CVD_EINVAL, "%d frames upsampled by %d: too many per call",
                               src->max_out, nd->size);
        st->max_out = src->max_out * nd->size;
        break;
    case CVD_NODE_MAX_POOL:
    case CVD_NODE_AVG_POOL:
        rc = cvd_pool_create(nd->op == CVD_NODE_MAX_POOL, nd->k, nd->s, nd->padding, nd->channels,
                             src->max_out, &st->pool, err);
        if (rc < 0)
            return rc;
        st->max_out = cvd_pool_max_out(st->pool);
        break;
    case CVD_NODE_GLOBAL_MAX_POOL:
    case CVD_NODE_GLOBAL_AVG_POOL:
    case CVD_NODE_FLATTEN:
    case CVD_NODE_RESHAPE:
        return cvd_err_set(err, CVD_EUNSUPPORTED, "needs the whole window: a windowed net runs it");
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
        /* every emit empties some queue, which then gets at most one round of its producer
         * before the next emit: a merge emits at most `most` frames a round (sizing its
         * output by the queues instead made chains of residual Adds grow geometrically) */
        st->max_out = most;
        st->q = calloc((size_t)nd->n_inputs, sizeof *st->q);
        st->qlen = calloc((size_t)nd->n_inputs, sizeof *st->qlen);
        if (st->q == NULL || st->qlen == NULL)
            return cvd_err_set(err, CVD_ENOMEM, "out of memory");
        for (int k = 0; k < nd->n_inputs; k++) {
            st->q[k] =
                malloc(sizeof(float) * (size_t)st->qcap * (size_t)m->nodes[nd->inputs[k]].channels);
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

/* A windowed net: a window of frames and a plan that computes it. */
static int create_windowed(cvd_net *net, long hop, cvd_err *err)
{
    const cvd_model *m = net->m;
    int rc;
    net->windowed = 1;
    net->window = m->in_length;
    net->hop = hop ? hop : net->window;
    net->rsize = cvd_model_out_channels(m);
    net->win = malloc(sizeof(float) * ((size_t)net->window * m->in_channels + 1));
    if (net->win == NULL)
        return cvd_err_set(err, CVD_ENOMEM, "out of memory");
    if ((rc = cvd_plan_create(m, net->window, &net->plan, err)) < 0)
        return rc;
    /* every window needs hop new frames, the first all of them: a block of n frames
     * completes at most (n - 1) / hop + 1 */
    net->nodes[m->output].max_out = (int)((net->max_block - 1) / net->hop + 1);
    return CVD_OK;
}

int cvd_net_create(cvd_model *m, int max_block, cvd_net **out, cvd_err *err)
{
    return cvd_net_create_hop(m, max_block, 0, out, err);
}

int cvd_model_can_split(const cvd_model *m, const char **why)
{
    const char *note = NULL;
    const int o = m->output;
    /* the output node must be one WaveNet (a .nam's, or fused) */
    const int fused = !m->fuse_off && o < m->fuse_nodes && m->fused_in[o] >= 0 &&
                      m->fusions[m->fused_in[o]].output == o;
    const cvd_wn_config *wc = m->nodes[o].op == CVD_NODE_WAVENET ? m->nodes[o].wn
                              : fused                            ? m->fusions[m->fused_in[o]].cfg
                                                                 : NULL;
    if (cvd_model_mode(m) == CVD_MODE_WINDOWED)
        note = "a windowed model runs on one thread";
    else if (wc == NULL)
        note = "only a WaveNet (a .nam's, or a Keras graph fused into one) at the model's "
               "output splits into stages";
    else if (wc->n_arrays == 1 && wc->arrays[0].n_layers < 2)
        note = "a WaveNet of one layer does not split";
    if (why)
        *why = note;
    return note == NULL;
}

int cvd_net_create_hop(cvd_model *m, int max_block, long hop, cvd_net **out, cvd_err *err)
{
    return cvd_net_create_threads(m, max_block, hop, 1, out, err);
}

int cvd_net_create_threads(cvd_model *m, int max_block, long hop, int threads, cvd_net **out,
                           cvd_err *err)
{
    cvd_net *net;
    *out = NULL;
    if (max_block <= 0 || max_block > (1 << 20))
        return cvd_err_set(err, CVD_EINVAL, "max_block=%d: must be in 1..%d", max_block, 1 << 20);
    if (m->n_nodes < 2)
        return cvd_err_set(err, CVD_EINVAL, "the model has no layers");
    const int windowed = cvd_model_mode(m) == CVD_MODE_WINDOWED;
    if (hop < 0 || hop > (1L << 30))
        return cvd_err_set(err, CVD_EINVAL, "hop=%ld: must be in 1..%ld (0: the window length)",
                           hop, 1L << 30);
    if (hop != 0 && !windowed)
        return cvd_err_set(err, CVD_EINVAL,
                           "hop=%ld: the model streams (every layer runs frame by frame); a "
                           "hop applies to windowed models only",
                           hop);
    net = calloc(1, sizeof *net);
    if (net == NULL)
        return cvd_err_set(err, CVD_ENOMEM, "out of memory");
    net->m = cvd_model_ref(m);
    net->max_block = max_block;
    if (threads < 1 || threads > 2) {
        cvd_net_destroy(net);
        return cvd_err_set(err, CVD_EINVAL, "threads=%d: must be 1 or 2", threads);
    }
    net->threads = threads;
    if (threads > 1 && !cvd_model_can_split(m, &net->threads_note))
        net->threads = 1;
    net->nodes = calloc((size_t)m->n_nodes, sizeof *net->nodes);
    if (net->nodes != NULL && windowed) {
        int rc = create_windowed(net, hop, err);
        if (rc < 0) {
            cvd_net_destroy(net);
            return rc;
        }
        cvd_net_reset(net);
        *out = net;
        return CVD_OK;
    }
    if (net->nodes == NULL) {
        cvd_net_destroy(net);
        return cvd_err_set(err, CVD_ENOMEM, "out of memory");
    }
    net->nodes[0].max_out = max_block;
    if (m->prewarm > 0) {
        net->zeros = calloc((size_t)max_block * m->in_channels, sizeof(float));
        if (net->zeros == NULL) {
            cvd_net_destroy(net);
            return cvd_err_set(err, CVD_ENOMEM, "out of memory");
        }
    }
    for (int i = 1; i < m->n_nodes; i++) {
        int rc = create_node(net, i, err);
        if (rc < 0) {
            cvd_err_prefix(err, "%s '%s'", cvd_node_op_name(m->nodes[i].op), m->nodes[i].name);
            cvd_net_destroy(net);
            return rc;
        }
    }
    net->order = malloc(sizeof *net->order * (size_t)m->n_nodes);
    if (net->order == NULL) {
        cvd_net_destroy(net);
        return cvd_err_set(err, CVD_ENOMEM, "out of memory");
    }
    for (int i = 1; i < m->n_nodes; i++)
        if (!net->nodes[i].fused_skip)
            net->order[net->n_order++] = i;
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

long cvd_net_hop(const cvd_net *net)
{
    return net->windowed ? net->hop : 0;
}

size_t cvd_net_state_bytes(const cvd_net *net)
{
    size_t b = 0;
    if (net->windowed)
        return cvd_plan_bytes(net->plan) +
               sizeof(float) * (size_t)net->window * net->m->in_channels;
    for (int i = 1; i < net->m->n_nodes; i++) {
        const net_node *st = &net->nodes[i];
        const cvd_node *nd = &net->m->nodes[i];
        if (st->layer)
            b += cvd_layer_state_bytes(st->layer);
        if (st->wn)
            b += cvd_wavenet_state_bytes(st->wn);
        if (st->pipe)
            b += cvd_wn_pipe_state_bytes(st->pipe);
        if (st->pool)
            b += cvd_pool_state_bytes(st->pool);
        if (st->hold)
            b += sizeof(float) * (size_t)(nd->right + net->nodes[nd->inputs[0]].max_out) *
                 nd->channels;
        b += sizeof(float) * (size_t)st->max_out * nd->channels;
        if (i == 1 && net->zeros)
            b += sizeof(float) * (size_t)net->max_block * net->m->in_channels;
        for (int k = 0; st->q && k < nd->n_inputs; k++)
            b += sizeof(float) * (size_t)st->qcap * net->m->nodes[nd->inputs[k]].channels;
    }
    return b;
}

static int run_round(cvd_net *net, const float *in, int n);

void cvd_net_reset(cvd_net *net)
{
    for (int i = 0; i < net->m->n_nodes; i++) {
        net_node *st = &net->nodes[i];
        if (st->layer)
            cvd_layer_reset(st->layer);
        if (st->wn)
            cvd_wavenet_reset(st->wn);
        if (st->pipe)
            cvd_wn_pipe_reset(st->pipe);
        if (st->pool)
            cvd_pool_reset(st->pool);
        for (int k = 0; st->qlen && k < net->m->nodes[i].n_inputs; k++)
            st->qlen[k] = 0;
        st->n_out = 0;
        st->finished = 0;
        st->nhold = 0;
        st->seen = 0;
        st->pad_left_done = 0;
        st->tail = 0;
    }
    net->flushing = 0;
    net->failed = 0;
    net->wlen = 0;
    net->skip = 0;
    /* NAM's prewarm: silence through every layer, the output dropped */
    for (long done = 0; net->zeros && done < net->m->prewarm; done += net->max_block) {
        long b = net->m->prewarm - done < net->max_block ? net->m->prewarm - done : net->max_block;
        if (run_round(net, net->zeros, (int)b) < 0) {
            net->failed = 1;
            break;
        }
    }
}

/* The first `emit` frames of a merge's inputs merged into its buffer: the inputs' outputs of
 * this round (direct) or its queues. */
static void merge_emit(const cvd_net *net, const cvd_node *nd, net_node *st, int emit, int direct)
{
    const cvd_model *m = net->m;
    const float *xs[CVD_MERGE_MAX_INPUTS];
    for (int k = 0; k < nd->n_inputs; k++)
        xs[k] = direct ? net->nodes[nd->inputs[k]].out : st->q[k];
    if (nd->op == CVD_NODE_CONCATENATE) {
        for (int t = 0; t < emit; t++) {
            float *y = st->buf + (size_t)t * nd->channels;
            for (int k = 0; k < nd->n_inputs; k++) {
                const int c = m->nodes[nd->inputs[k]].channels;
                memcpy(y, xs[k] + (size_t)t * c, sizeof(float) * (size_t)c);
                y += c;
            }
        }
    } else {
        cvd_merge_frames(nd->op, nd->n_inputs, xs, (size_t)emit * nd->channels, st->buf);
    }
}

/* One merge node: queue this round's input frames, emit what every queue holds. */
static int run_merge(cvd_net *net, const cvd_node *nd, net_node *st)
{
    const cvd_model *m = net->m;
    int emit = st->qcap, all_finished = 1;

    /* the usual case: nothing queued and every input gave the same frames this round: merge
     * them where they are (the same values in the same order as through the queues) */
    int direct = 1;
    const int n0 = net->nodes[nd->inputs[0]].n_out;
    for (int k = 0; k < nd->n_inputs; k++) {
        const net_node *src = &net->nodes[nd->inputs[k]];
        direct &= st->qlen[k] == 0 && src->n_out == n0;
        all_finished &= src->finished;
    }
    if (direct) {
        if (n0 > 0)
            merge_emit(net, nd, st, n0, 1);
        st->n_out = n0;
        st->finished = all_finished;
        return CVD_OK;
    }
    all_finished = 1;
    for (int k = 0; k < nd->n_inputs; k++) {
        const net_node *src = &net->nodes[nd->inputs[k]];
        const int c = m->nodes[nd->inputs[k]].channels;
        if (st->qlen[k] + src->n_out > st->qcap)
            return CVD_ESTATE; /* cannot happen with the bound set at create */
        if (src->n_out > 0)    /* (a node that has emitted nothing may have no buffer yet) */
            memcpy(st->q[k] + (size_t)st->qlen[k] * c, src->out,
                   sizeof(float) * (size_t)src->n_out * c);
        st->qlen[k] += src->n_out;
        if (st->qlen[k] < emit)
            emit = st->qlen[k];
        all_finished &= src->finished;
    }
    if (emit > 0)
        merge_emit(net, nd, st, emit, 0);
    for (int k = 0; k < nd->n_inputs; k++) {
        const int c = m->nodes[nd->inputs[k]].channels;
        st->qlen[k] -= emit;
        memmove(st->q[k], st->q[k] + (size_t)emit * c, sizeof(float) * (size_t)st->qlen[k] * c);
    }
    st->n_out = emit;
    st->finished = all_finished;
    return CVD_OK;
}

/* ZeroPadding1D: the left zeros before the first frame, the right ones at the end (a
 * stream that never had a frame stays empty, as the offline result does). */
static void run_zero_padding(const cvd_net *net, const cvd_node *nd, net_node *st,
                             const net_node *src)
{
    const size_t C = (size_t)nd->channels;
    (void)net;
    if (src->n_out > 0) {
        int o = 0;
        if (!st->pad_left_done) {
            memset(st->buf, 0, sizeof(float) * (size_t)nd->left * C);
            o = nd->left;
            st->pad_left_done = 1;
        }
        memcpy(st->buf + (size_t)o * C, src->out, sizeof(float) * (size_t)src->n_out * C);
        st->n_out = o + src->n_out;
        st->seen += src->n_out;
    } else if (src->finished) {
        long left = st->seen > 0 ? nd->right - st->tail : 0;
        int m = left < st->max_out ? (int)left : st->max_out;
        memset(st->buf, 0, sizeof(float) * (size_t)m * C);
        st->n_out = m;
        st->tail += m;
        st->finished = st->tail >= (st->seen > 0 ? nd->right : 0);
    }
}

/* Cropping1D: the first `left` frames dropped; a frame is sent once `right` frames follow
 * it (the last `right` are never sent). */
static void run_cropping(const cvd_node *nd, net_node *st, const net_node *src)
{
    const size_t C = (size_t)nd->channels;
    if (src->n_out > 0) {
        int skip = 0;
        if (st->seen < nd->left)
            skip = nd->left - st->seen < src->n_out ? (int)(nd->left - st->seen) : src->n_out;
        st->seen += src->n_out;
        memcpy(st->hold + (size_t)st->nhold * C, src->out + (size_t)skip * C,
               sizeof(float) * (size_t)(src->n_out - skip) * C);
        st->nhold += src->n_out - skip;
        int send = st->nhold > nd->right ? st->nhold - nd->right : 0;
        memcpy(st->buf, st->hold, sizeof(float) * (size_t)send * C);
        st->nhold -= send;
        memmove(st->hold, st->hold + (size_t)send * C, sizeof(float) * (size_t)st->nhold * C);
        st->n_out = send;
    } else if (src->finished) {
        st->finished = 1;
    }
}

static int run_round(cvd_net *net, const float *in, int n)
{
    const cvd_model *m = net->m;
    int rc = CVD_OK;

    net->nodes[0].out = in;
    net->nodes[0].n_out = n;
    net->nodes[0].finished = net->flushing;
    for (int j = 0; j < net->n_order && rc == CVD_OK; j++) {
        const int i = net->order[j];
        const cvd_node *nd = &m->nodes[i];
        net_node *st = &net->nodes[i];
        const net_node *src = &net->nodes[nd->inputs[0]];

        st->n_out = 0;
        if (st->finished)
            continue;
        if (st->pipe) { /* a WaveNet on two threads: the previous block comes out */
            const net_node *fin = &net->nodes[st->fused ? st->fused_src : nd->inputs[0]];
            if (fin->n_out > 0)
                cvd_wn_pipe_process(st->pipe, fin->out, fin->n_out, st->buf, &st->n_out);
            else if (fin->finished)
                st->finished = cvd_wn_pipe_flush(st->pipe, st->buf, &st->n_out) == 0;
            continue;
        }
        if (st->fused) { /* a fused group, as one WaveNet */
            const net_node *fin = &net->nodes[st->fused_src];
            if (fin->n_out > 0)
                cvd_wavenet_process(st->wn, fin->out, fin->n_out, st->buf);
            st->n_out = fin->n_out;
            st->finished = fin->finished;
            continue;
        }
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
        case CVD_NODE_BATCH_NORM:
        case CVD_NODE_LAYER_NORM:
        case CVD_NODE_RESCALING:
        case CVD_NODE_PERMUTE:
            cvd_node_frames(nd, src->out, src->n_out, st->buf);
            st->n_out = src->n_out;
            st->finished = src->finished;
            break;
        case CVD_NODE_MAX_POOL:
        case CVD_NODE_AVG_POOL:
            if (src->n_out > 0)
                rc = cvd_pool_process(st->pool, src->out, src->n_out, st->buf, &st->n_out);
            else if (src->finished)
                st->finished = cvd_pool_flush(st->pool, st->buf, &st->n_out) == 0;
            break;
        case CVD_NODE_ZERO_PADDING:
            run_zero_padding(net, nd, st, src);
            break;
        case CVD_NODE_CROPPING:
            run_cropping(nd, st, src);
            break;
        case CVD_NODE_UPSAMPLING: {
            const size_t C = (size_t)nd->channels;
            for (int t = 0; t < src->n_out; t++)
                for (int r = 0; r < nd->size; r++)
                    memcpy(st->buf + ((size_t)t * nd->size + r) * C, src->out + (size_t)t * C,
                           sizeof(float) * C);
            st->n_out = src->n_out * nd->size;
            st->finished = src->finished;
            break;
        }
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
    if (o->n_out > 0)
        memcpy(out, o->out,
               sizeof(float) * (size_t)o->n_out * net->m->nodes[net->m->output].channels);
    *n_out = o->n_out;
    return CVD_OK;
}

/* Windowed: frames into the window; every full window gives a record. */
static int process_windowed(cvd_net *net, const float *in, int n, float *out, int *n_out)
{
    const int C = net->m->in_channels;
    int records = 0;
    while (n > 0) {
        if (net->skip > 0) { /* frames between windows (hop > window) */
            int m = net->skip < n ? (int)net->skip : n;
            net->skip -= m;
            in += (size_t)m * C;
            n -= m;
            continue;
        }
        long room = net->window - net->wlen;
        int m = room < n ? (int)room : n;
        memcpy(net->win + (size_t)net->wlen * C, in, sizeof(float) * (size_t)m * C);
        net->wlen += m;
        in += (size_t)m * C;
        n -= m;
        if (net->wlen < net->window)
            break;
        cvd_plan_run(net->plan, net->win);
        cvd_plan_record(net->plan, out + (size_t)records * net->rsize);
        records++;
        if (net->hop >= net->window) {
            net->wlen = 0;
            net->skip = net->hop - net->window;
        } else {
            net->wlen -= net->hop;
            memmove(net->win, net->win + (size_t)net->hop * C,
                    sizeof(float) * (size_t)net->wlen * C);
        }
    }
    *n_out = records;
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
    if (net->windowed)
        return process_windowed(net, in, n, out, n_out);
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
    if (net->windowed) { /* a window not complete gives no record */
        net->flushing = 1;
        return 0;
    }
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

int cvd_net_threads(const cvd_net *net)
{
    return net->threads;
}

const char *cvd_net_threads_note(const cvd_net *net)
{
    return net->threads_note;
}

int cvd_net_latency(const cvd_net *net)
{
    return cvd_model_latency(net->m) + (net->threads > 1 ? net->max_block : 0);
}

int cvd_net_pipe_stats(const cvd_net *net, long *wakes, long *late, double cost[2])
{
    const net_node *st = &net->nodes[net->m->output];
    if (net->windowed || st->pipe == NULL)
        return CVD_EINVAL;
    cvd_wn_pipe_stats(st->pipe, wakes, late, cost);
    return CVD_OK;
}

double cvd_net_pipe_stage_cpu(const cvd_net *net)
{
    const net_node *st = &net->nodes[net->m->output];
    if (net->windowed || st->pipe == NULL)
        return -1.0;
    return cvd_wn_pipe_stage_cpu(st->pipe);
}

int cvd_net_pipe_busy(const cvd_net *net, double busy[2])
{
    const net_node *st = &net->nodes[net->m->output];
    if (net->windowed || st->pipe == NULL)
        return CVD_EINVAL;
    cvd_wn_pipe_busy(st->pipe, busy);
    return CVD_OK;
}

void cvd_net_set_spin(cvd_net *net, long spin_ns, long margin_ns)
{
    const net_node *st = &net->nodes[net->m->output];
    if (!net->windowed && st->pipe)
        cvd_wn_pipe_set_spin(st->pipe, spin_ns, margin_ns);
}
