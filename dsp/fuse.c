/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fusion: a WaveNet written in Keras's Functional vocabulary, recognised when the model is
 * built, runs on the fused WaveNet kernels (wavenet.c) instead of node by node.
 *
 * The vocabulary (NAM's layer arrays, docs/FUSION.md), for each array of layers:
 *
 *   h0  = Conv1D(C, 1, use_bias=False)(x)            the rechannel (absent: h0 = x)
 *   per layer, plain:  a = Conv1D(C, K, causal, dilation d, activation=act)(h)
 *                      (or the conv without activation, then Activation(act), or then
 *                      Add(conv, Conv1D(C, 1, use_bias=False)(x)) and Activation: the mixin)
 *   per layer, gated:  a = Multiply(f, g), f and g two such convolutions of h
 *   r   = Conv1D(C, 1)(a);  h' = Add(h, r)            the residual (the last layer of the
 *                                                     last array may leave it out)
 *   s   = Add(a_0, a_1, ...)                          (the next array: Add(head, a_0, ...))
 *   head = Conv1D(H, 1)(s)                            the next array starts from h' and head
 *   out  = head, or Rescaling(scale)(head)            NAM's head scale
 *
 * Dense layers count as the 1x1 convolutions. A group is fused whole or not at all; a node
 * of it read from outside, a layer in between, another merge or padding leaves the graph on
 * the general path, and the report says where the match stopped and why.
 */
#include "graph_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct fz_ctx {
    const cvd_model *m;
    int *ncons, **cons; /* consumers of each node */
    int *storage;
    unsigned char *member, *touched;
    char why[320];
} fz_ctx;

static int fz_fail(fz_ctx *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->why, sizeof c->why, fmt, ap);
    va_end(ap);
    return -1;
}

static const char *nm(const fz_ctx *c, int i)
{
    return c->m->nodes[i].name;
}

static const cvd_conv_config *conv_cfg(const cvd_model *m, int i)
{
    const cvd_node *nd = &m->nodes[i];
    if ((nd->op != CVD_NODE_CONV && nd->op != CVD_NODE_DENSE) || nd->proto == NULL)
        return NULL;
    return cvd_layer_config(nd->proto);
}

static int in_ch(const cvd_model *m, int i)
{
    return m->nodes[m->nodes[i].inputs[0]].channels;
}

/* A 1x1 convolution (Conv1D of kernel 1, or Dense) from `src` of cin to cout channels,
 * without activation; bias: 0 must have none, 1 may have one. Returns 1 if so. */
static int is_pointwise(const cvd_model *m, int i, int src, int cout, int bias)
{
    const cvd_conv_config *k = conv_cfg(m, i);
    if (k == NULL || m->nodes[i].inputs[0] != src || m->nodes[i].rank != 2)
        return 0;
    return k->kind == CVD_CONV1D && k->kernel_size == 1 && k->strides == 1 && k->groups == 1 &&
           k->activation == CVD_ACT_LINEAR && k->filters == cout && (bias || !k->use_bias);
}

static void mark(fz_ctx *c, int i)
{
    c->member[i] = 1;
    c->touched[i] = 1;
}

/* The layer's dilated causal convolution `p` of C filters, through to its activation:
 * *end is the node giving act(z), *act its activation, *mix the mixin 1x1 or -1. */
static int zpath(fz_ctx *c, int p, int x, int C, int *end, cvd_activation *act, int *mix)
{
    const cvd_model *m = c->m;
    const cvd_conv_config *k = conv_cfg(m, p);
    *mix = -1;
    if (k->kind != CVD_CONV1D || k->groups != 1 || k->strides != 1)
        return fz_fail(c,
                       "'%s' is a %s with strides %d and groups %d: the fused layer is a "
                       "Conv1D with strides 1 and groups 1",
                       nm(c, p), cvd_layer_kind_name(k->kind), k->strides, k->groups);
    if (k->padding != CVD_PAD_CAUSAL)
        return fz_fail(c, "'%s' has padding '%s': the fused layer's convolution is causal",
                       nm(c, p), cvd_padding_name(k->padding));
    if (k->filters != C)
        return fz_fail(c,
                       "'%s' has %d filters, its input %d channels: a fused layer keeps "
                       "the channels",
                       nm(c, p), k->filters, C);
    mark(c, p);
    if (k->activation != CVD_ACT_LINEAR) {
        if (cvd_activation_is_axis(k->activation))
            return fz_fail(c, "'%s' has activation %s, which is not element-wise", nm(c, p),
                           cvd_activation_name(k->activation));
        *end = p;
        *act = k->activation;
        return 0;
    }
    *end = p;
    *act = CVD_ACT_LINEAR;
    if (c->ncons[p] != 1)
        return 0;
    int n1 = c->cons[p][0];
    const cvd_node *c1 = &m->nodes[n1];
    if (c1->op == CVD_NODE_ADD && c1->n_inputs == 2) {
        int q = c1->inputs[0] == p ? c1->inputs[1] : c1->inputs[0];
        if (!is_pointwise(m, q, x, C, 0) || c->ncons[q] != 1)
            return 0; /* not a mixin: the caller sees an Add where it expects the layer's
                       * activation, and says so */
        if (c->ncons[n1] != 1)
            return fz_fail(c,
                           "the mixin Add '%s' feeds %d nodes: a fused layer's "
                           "activation alone reads it",
                           nm(c, n1), c->ncons[n1]);
        if (m->nodes[c->cons[n1][0]].op != CVD_NODE_ACTIVATION)
            return fz_fail(c,
                           "the mixin Add '%s' is followed by '%s' (%s), not by an "
                           "Activation: a layer in between",
                           nm(c, n1), nm(c, c->cons[n1][0]),
                           cvd_node_class(&m->nodes[c->cons[n1][0]]));
        *mix = q;
        mark(c, q);
        mark(c, n1);
        n1 = c->cons[n1][0];
        c1 = &m->nodes[n1];
    } else if (c1->op != CVD_NODE_ACTIVATION) {
        return 0;
    }
    if (c1->axis != CVD_AXIS_CHANNELS || cvd_activation_is_axis(c1->act))
        return fz_fail(c, "'%s' is a %s, which is not element-wise", nm(c, n1),
                       cvd_activation_name(c1->act));
    mark(c, n1);
    *end = n1;
    *act = c1->act;
    return 0;
}

static int is_layer_conv(const cvd_model *m, int i, int h)
{
    const cvd_conv_config *k = conv_cfg(m, i);
    return k != NULL && m->nodes[i].op == CVD_NODE_CONV && k->kernel_size >= 2 &&
           m->nodes[i].inputs[0] == h;
}

/* One layer array from h0 (of C channels); prev_head is the previous array's head 1x1 (or
 * -1). On success *next_h is the array's output h (or -1) and the array is filled in. */
static int match_array(fz_ctx *c, cvd_fusion *f, int ai, int h, int x, int prev_head, int *next_h)
{
    const cvd_model *m = c->m;
    cvd_wn_array *wa = &f->cfg->arrays[ai];
    cvd_fuse_array *fa = &f->arrays[ai];
    const int C = m->nodes[h].channels;
    int skips = -1, L = 0;
    int acts[CVD_WN_MAX_LAYERS];

    wa->channels = C;
    wa->condition_size = m->nodes[x].channels;
    wa->residual = 1;
    wa->skip = 1;
    for (;;) {
        int convs[2], nconv = 0, other = -1, resadd = -1;
        for (int k = 0; k < c->ncons[h]; k++) {
            int q = c->cons[h][k];
            if (is_layer_conv(m, q, h)) {
                if (nconv == 2)
                    return fz_fail(c, "'%s' feeds three or more convolutions", nm(c, h));
                convs[nconv++] = q;
            } else if (m->nodes[q].op == CVD_NODE_ADD && m->nodes[q].n_inputs == 2) {
                resadd = q;
            } else {
                other = q;
            }
        }
        if (nconv == 0) {
            if (L == 0)
                return fz_fail(c, "no dilated causal Conv1D (kernel >= 2) reads '%s'", nm(c, h));
            break; /* the array ends: h is its output */
        }
        if (L == CVD_WN_MAX_LAYERS)
            return fz_fail(c, "more than %d layers in an array", CVD_WN_MAX_LAYERS);
        if (other >= 0 && h != x) /* (the input may have readers of its own) */
            return fz_fail(c,
                           "'%s' (%s) reads '%s', the input of a WaveNet layer: a layer "
                           "in between",
                           nm(c, other), cvd_node_class(&m->nodes[other]), nm(c, h));
        cvd_wn_layer *wl = &wa->layers[L];
        cvd_fuse_layer *fl = &fa->layers[L];
        const cvd_conv_config *k0 = conv_cfg(m, convs[0]);
        int ends[2], a;
        cvd_activation act[2] = {CVD_ACT_LINEAR, CVD_ACT_LINEAR};
        memset(fl, 0, sizeof *fl);
        fl->conv[1] = fl->mix[1] = -1;
        for (int k = 0; k < nconv; k++)
            if (zpath(c, convs[k], x, C, &ends[k], &act[k], &fl->mix[k]) < 0)
                return -1;
        wl->kernel_size = k0->kernel_size;
        wl->dilation = k0->dilation_rate;
        if (nconv == 1) {
            fl->conv[0] = convs[0];
            a = ends[0];
            wl->gating = CVD_WN_GATING_NONE;
        } else {
            const cvd_conv_config *k1 = conv_cfg(m, convs[1]);
            if (k1->kernel_size != k0->kernel_size || k1->dilation_rate != k0->dilation_rate)
                return fz_fail(c, "'%s' and '%s' read '%s' with different kernels or dilations",
                               nm(c, convs[0]), nm(c, convs[1]), nm(c, h));
            if (c->ncons[ends[0]] != 1 || c->ncons[ends[1]] != 1 ||
                c->cons[ends[0]][0] != c->cons[ends[1]][0])
                return fz_fail(c,
                               "'%s' and '%s' are not multiplied together alone (a gated "
                               "layer is Multiply(filter, gate))",
                               nm(c, ends[0]), nm(c, ends[1]));
            a = c->cons[ends[0]][0];
            const cvd_node *mu = &m->nodes[a];
            if (mu->op != CVD_NODE_MULTIPLY || mu->n_inputs != 2)
                return fz_fail(c,
                               "'%s' and '%s' meet in '%s' (%s): a gated layer multiplies "
                               "them",
                               nm(c, ends[0]), nm(c, ends[1]), nm(c, a), cvd_node_class(mu));
            /* z[:C] is the Multiply's first input */
            int first = mu->inputs[0] == ends[0] ? 0 : 1;
            fl->conv[0] = convs[first];
            fl->conv[1] = convs[1 - first];
            int mx0 = fl->mix[first], mx1 = fl->mix[1 - first];
            fl->mix[0] = mx0;
            fl->mix[1] = mx1;
            cvd_activation a0 = act[first], a1 = act[1 - first];
            act[0] = a0;
            act[1] = a1;
            wl->gating = CVD_WN_GATING_GATED;
            mark(c, a);
        }
        wl->activation.kind = CVD_WN_KERAS;
        wl->activation.keras = act[0];
        wl->secondary.kind = CVD_WN_KERAS;
        wl->secondary.keras = act[1];
        if (nconv == 1 && c->ncons[ends[0]] >= 1 && ends[0] == convs[0] &&
            act[0] == CVD_ACT_LINEAR && c->ncons[convs[0]] == 1 &&
            m->nodes[c->cons[convs[0]][0]].op != CVD_NODE_ADD)
            return fz_fail(c, "'%s' is followed by '%s' (%s): a layer in between", nm(c, convs[0]),
                           nm(c, c->cons[convs[0]][0]),
                           cvd_node_class(&m->nodes[c->cons[convs[0]][0]]));
        /* what reads a: the residual 1x1 and the Add of the skips */
        int res = -1;
        for (int k = 0; k < c->ncons[a]; k++) {
            int q = c->cons[a][k];
            const cvd_node *qn = &m->nodes[q];
            if (res < 0 && is_pointwise(m, q, a, C, 1) && c->ncons[q] == 1 &&
                c->cons[q][0] == resadd) {
                res = q;
            } else if (qn->op == CVD_NODE_ADD && q != resadd && (skips < 0 || q == skips)) {
                skips = q;
            } else {
                return fz_fail(c,
                               "'%s' (%s) reads '%s', the activation of a layer: the "
                               "fused layer feeds only its residual 1x1 and the Add of the "
                               "skips",
                               nm(c, q), cvd_node_class(qn), nm(c, a));
            }
        }
        if (skips < 0)
            return fz_fail(c, "'%s', the activation of a layer, is not added to the skips",
                           nm(c, a));
        acts[L] = a;
        fl->res = res;
        L++;
        if (res < 0) {
            if (resadd >= 0)
                return fz_fail(c,
                               "'%s' adds '%s' to something other than a 1x1 of the "
                               "layer's activation",
                               nm(c, resadd), nm(c, h));
            h = -1;
            break;
        }
        if (resadd < 0 || c->ncons[res] != 1)
            return fz_fail(c, "the residual '%s' is not added to '%s' alone", nm(c, res), nm(c, h));
        mark(c, res);
        mark(c, resadd);
        h = resadd;
    }
    wa->n_layers = L;
    /* the Add of the skips: [previous head,] a_0 .. a_{L-1}, in this order */
    const cvd_node *sn = &m->nodes[skips];
    int off = prev_head >= 0;
    if (sn->n_inputs != L + off || (off && sn->inputs[0] != prev_head))
        return fz_fail(c,
                       "the skips' Add '%s' has %d inputs: the fused head adds %s%d layers' "
                       "activations",
                       nm(c, skips), sn->n_inputs, off ? "the previous head and " : "", L);
    for (int l = 0; l < L; l++)
        if (sn->inputs[off + l] != acts[l])
            return fz_fail(c,
                           "the skips' Add '%s' takes the layers' activations in another "
                           "order than the layers (the fused head adds them in order)",
                           nm(c, skips));
    mark(c, skips);
    if (c->ncons[skips] != 1)
        return fz_fail(c, "the skips' Add '%s' feeds %d nodes: the fused head is one 1x1",
                       nm(c, skips), c->ncons[skips]);
    int hd = c->cons[skips][0];
    const cvd_conv_config *hk = conv_cfg(m, hd);
    if (hk == NULL || !is_pointwise(m, hd, skips, hk->filters, 1))
        return fz_fail(c,
                       "the skips' Add '%s' feeds '%s' (%s): the fused head is a 1x1 "
                       "Conv1D (or Dense) without activation",
                       nm(c, skips), nm(c, hd), cvd_node_class(&m->nodes[hd]));
    mark(c, hd);
    fa->head = hd;
    wa->head_size = hk->filters;
    wa->head_bias = hk->use_bias;
    *next_h = h;
    return 0;
}

static int match(fz_ctx *c, cvd_fusion *f, int start)
{
    const cvd_model *m = c->m;
    int x, h = start, prev_head = -1;
    memset(c->member, 0, (size_t)m->n_nodes);
    memset(f, 0, sizeof *f);
    f->cfg = calloc(1, sizeof *f->cfg);
    if (f->cfg == NULL)
        return fz_fail(c, "out of memory");
    f->scale = -1;
    /* start: a rechannel 1x1 without bias, or the input itself */
    const cvd_conv_config *k = conv_cfg(m, start);
    if (k != NULL && is_pointwise(m, start, m->nodes[start].inputs[0], k->filters, 0)) {
        x = m->nodes[start].inputs[0];
        f->arrays[0].rechannel = start;
        mark(c, start);
    } else {
        x = start;
        f->arrays[0].rechannel = -1;
    }
    f->input = x;
    if (m->nodes[x].rank != 2)
        return fz_fail(c, "'%s' is a vector", nm(c, x));
    for (int ai = 0;; ai++) {
        int next = -1;
        f->cfg->arrays[ai].input_size =
            f->arrays[ai].rechannel >= 0 ? in_ch(m, f->arrays[ai].rechannel) : m->nodes[h].channels;
        if (match_array(c, f, ai, h, x, prev_head, &next) < 0)
            return -1;
        f->cfg->n_arrays = ai + 1;
        prev_head = f->arrays[ai].head;
        /* another array: the output h feeds its rechannel, the head its skips */
        if (next < 0 || c->ncons[next] == 0) {
            if (next >= 0)
                mark(c, next); /* a residual nothing reads */
            break;
        }
        if (ai + 1 == CVD_WN_MAX_ARRAYS)
            return fz_fail(c, "more than %d layer arrays", CVD_WN_MAX_ARRAYS);
        int r = c->cons[next][0];
        const cvd_conv_config *rk = conv_cfg(m, r);
        if (c->ncons[next] != 1 || rk == NULL || !is_pointwise(m, r, next, rk->filters, 0))
            return fz_fail(c,
                           "'%s', the output of layer array %d, feeds '%s' (%s): the next "
                           "array starts with a 1x1 Conv1D without bias",
                           nm(c, next), ai, nm(c, r), cvd_node_class(&m->nodes[r]));
        if (rk->filters != f->cfg->arrays[ai].head_size)
            return fz_fail(c,
                           "'%s' makes %d channels, the head before it %d: the fused array "
                           "continues the head with its own channels",
                           nm(c, r), rk->filters, f->cfg->arrays[ai].head_size);
        mark(c, r);
        f->arrays[ai + 1].rechannel = r;
        h = r;
    }
    /* the output: the last head, or a Rescaling of it (NAM's head scale) */
    int out = prev_head;
    if (c->ncons[out] == 1 && m->nodes[c->cons[out][0]].op == CVD_NODE_RESCALING &&
        m->nodes[c->cons[out][0]].add == 0.0f) {
        f->scale = c->cons[out][0];
        out = f->scale;
        mark(c, out);
    }
    f->output = out;
    /* nothing outside may read a node inside but the output */
    for (int i = 0; i < m->n_nodes; i++) {
        if (!c->member[i] || i == out)
            continue;
        if (m->output == i)
            return fz_fail(c, "'%s', inside the WaveNet, is the model's output", nm(c, i));
        for (int q = 0; q < c->ncons[i]; q++)
            if (!c->member[c->cons[i][q]])
                return fz_fail(c, "'%s' (%s) reads '%s', inside the WaveNet", nm(c, c->cons[i][q]),
                               cvd_node_class(&m->nodes[c->cons[i][q]]), nm(c, i));
    }
    for (int i = 0; i < m->n_nodes; i++)
        f->n_members += c->member[i];
    cvd_err e;
    if (cvd_wn_config_check(f->cfg, &e) < 0)
        return fz_fail(c, "%s", e.msg);
    return 0;
}

void cvd_fusion_free(cvd_model *m)
{
    cvd_wavenet_shared_flush(m); /* templates keyed by the configurations freed here */
    for (int g = 0; g < m->n_fusions; g++)
        free(m->fusions[g].cfg);
    free(m->fusions);
    free(m->fused_in);
    free(m->fuse_report);
    m->fusions = NULL;
    m->fused_in = NULL;
    m->fuse_report = NULL;
    m->n_fusions = 0;
    m->fuse_nodes = 0;
}

static int report_add(char **rep, size_t *len, const char *fmt, ...)
{
    char line[600];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (n < 0)
        return 0;
    if ((size_t)n >= sizeof line)
        n = sizeof line - 1;
    char *r = realloc(*rep, *len + (size_t)n + 1);
    if (r == NULL)
        return -1;
    memcpy(r + *len, line, (size_t)n + 1);
    *rep = r;
    *len += (size_t)n;
    return 0;
}

int cvd_model_fuse(cvd_model *m, cvd_err *err)
{
    fz_ctx c;
    size_t total = 0, rlen = 0;
    char *rep = NULL;
    int rc = CVD_OK;
    const int N = m->n_nodes;

    cvd_fusion_free(m);
    memset(&c, 0, sizeof c);
    c.m = m;
    for (int i = 1; i < N; i++)
        total += (size_t)m->nodes[i].n_inputs;
    c.ncons = calloc((size_t)N, sizeof *c.ncons);
    c.cons = calloc((size_t)N, sizeof *c.cons);
    c.storage = calloc(total + 1, sizeof *c.storage);
    c.member = calloc((size_t)N, 1);
    c.touched = calloc((size_t)N, 1);
    m->fused_in = malloc(sizeof *m->fused_in * (size_t)N);
    if (!c.ncons || !c.cons || !c.storage || !c.member || !c.touched || !m->fused_in) {
        rc = cvd_err_set(err, CVD_ENOMEM, "out of memory");
        goto done;
    }
    m->fuse_nodes = N;
    for (int i = 0; i < N; i++)
        m->fused_in[i] = -1;
    for (int i = 1; i < N; i++)
        for (int k = 0; k < m->nodes[i].n_inputs; k++)
            c.ncons[m->nodes[i].inputs[k]]++;
    {
        size_t pos = 0;
        for (int i = 0; i < N; i++) {
            c.cons[i] = c.storage + pos;
            pos += (size_t)c.ncons[i];
            c.ncons[i] = 0;
        }
        for (int i = 1; i < N; i++)
            for (int k = 0; k < m->nodes[i].n_inputs; k++) {
                int s = m->nodes[i].inputs[k];
                int dup = 0;
                for (int q = 0; q < c.ncons[s]; q++)
                    dup |= c.cons[s][q] == i;
                if (!dup)
                    c.cons[s][c.ncons[s]++] = i;
            }
    }
    /* candidates, in order: a node read by a dilated causal convolution (or the 1x1 before
     * it); a failed attempt's nodes are not tried again */
    for (int i = 0; i < N; i++) {
        int start = -1;
        if (c.touched[i] || m->fused_in[i] >= 0)
            continue;
        /* after a match failed, what follows its nodes is not tried on its own (the rest of
         * the graph it was stopped in) */
        int after = 0;
        for (int k = 0; k < m->nodes[i].n_inputs; k++)
            after |= c.touched[m->nodes[i].inputs[k]] == 2;
        if (after) {
            c.touched[i] = 2;
            continue;
        }
        for (int q = 0; q < c.ncons[i] && start < 0; q++)
            if (is_layer_conv(m, c.cons[i][q], i))
                start = i;
        if (start < 0)
            continue;
        cvd_fusion f;
        int ok = match(&c, &f, start) == 0;
        for (int k = 0; ok && k < N; k++)
            if (c.member[k] && m->fused_in[k] >= 0)
                ok = 0;
        int marked = 0;
        for (int k = 0; k < N; k++)
            marked += c.member[k];
        if (!ok && marked == 0) { /* not even one layer's convolution: not a WaveNet */
            free(f.cfg);
            c.touched[i] = 1;
            continue;
        }
        if (!ok) {
            for (int k = 0; k < N; k++)
                if (c.member[k])
                    c.touched[k] = 2;
            if (report_add(&rep, &rlen, "not fused: from '%s': %s\n", m->nodes[start].name, c.why) <
                0)
                rc = CVD_ENOMEM;
            free(f.cfg);
            c.touched[i] = 2;
            if (rc < 0)
                break;
            continue;
        }
        cvd_fusion *nf = realloc(m->fusions, sizeof *nf * (size_t)(m->n_fusions + 1));
        if (nf == NULL) {
            free(f.cfg);
            rc = CVD_ENOMEM;
            break;
        }
        m->fusions = nf;
        for (int k = 0; k < N; k++)
            if (c.member[k])
                m->fused_in[k] = m->n_fusions;
        int layers = 0;
        char chans[64] = "";
        for (int a = 0; a < f.cfg->n_arrays; a++) {
            layers += f.cfg->arrays[a].n_layers;
            size_t cl = strlen(chans);
            snprintf(chans + cl, sizeof chans - cl, "%s%d", a ? "/" : "",
                     f.cfg->arrays[a].channels);
        }
        if (report_add(&rep, &rlen,
                       "fused: %d nodes from '%s' to '%s' run as one WaveNet (%d array%s, %d "
                       "layers, channels %s, %s)\n",
                       f.n_members, m->nodes[f.input].name, m->nodes[f.output].name,
                       f.cfg->n_arrays, f.cfg->n_arrays == 1 ? "" : "s", layers, chans,
                       f.cfg->arrays[0].layers[0].gating ? "gated" : "plain") < 0) {
            free(f.cfg);
            rc = CVD_ENOMEM;
            break;
        }
        m->fusions[m->n_fusions++] = f;
    }
done:
    if (rc < 0) {
        cvd_fusion_free(m);
        free(rep);
        rep = NULL;
        if (err)
            cvd_err_set(err, CVD_ENOMEM, "out of memory");
    } else {
        m->fuse_report = rep;
    }
    free(c.ncons);
    free(c.cons);
    free(c.storage);
    free(c.member);
    free(c.touched);
    return rc;
}

void cvd_model_set_fusion(cvd_model *m, int on)
{
    m->fuse_off = !on;
}

int cvd_model_fusion_enabled(const cvd_model *m)
{
    return !m->fuse_off;
}

int cvd_model_fused_count(const cvd_model *m)
{
    return m->n_fusions;
}

int cvd_model_node_fused(const cvd_model *m, int node)
{
    if (node < 0 || node >= m->fuse_nodes || m->fused_in == NULL)
        return -1;
    return m->fused_in[node];
}

int cvd_model_fused_group(const cvd_model *m, int g, int *input, int *output, int *n_nodes,
                          const cvd_wn_config **cfg)
{
    if (g < 0 || g >= m->n_fusions)
        return CVD_EINVAL;
    const cvd_fusion *f = &m->fusions[g];
    if (input)
        *input = f->input;
    if (output)
        *output = f->output;
    if (n_nodes)
        *n_nodes = f->n_members;
    if (cfg)
        *cfg = f->cfg;
    return CVD_OK;
}

const char *cvd_model_fusion_report(const cvd_model *m)
{
    return m->fuse_report ? m->fuse_report : "";
}

/* ---- weights --------------------------------------------------------------------------- */

static const float *kern(const cvd_model *m, int i)
{
    return cvd_layer_var(m->nodes[i].proto, 0);
}

static const float *bias(const cvd_model *m, int i)
{
    return cvd_layer_config(m->nodes[i].proto)->use_bias ? cvd_layer_var(m->nodes[i].proto, 1)
                                                         : NULL;
}

void cvd_fusion_weights(const cvd_model *m, const cvd_fusion *f, float *w)
{
    size_t pos = 0;
    for (int ai = 0; ai < f->cfg->n_arrays; ai++) {
        const cvd_wn_array *wa = &f->cfg->arrays[ai];
        const cvd_fuse_array *fa = &f->arrays[ai];
        const int C = wa->channels, in = wa->input_size, cond = wa->condition_size;
        const int H = wa->head_size;
        /* rechannel [C][in]; Keras's kernel (1, in, C) */
        const float *r = fa->rechannel >= 0 ? kern(m, fa->rechannel) : NULL;
        for (int o = 0; o < C; o++)
            for (int ch = 0; ch < in; ch++)
                w[pos++] = r ? r[(size_t)ch * C + o] : (o == ch ? 1.0f : 0.0f);
        for (int l = 0; l < wa->n_layers; l++) {
            const cvd_wn_layer *wl = &wa->layers[l];
            const cvd_fuse_layer *fl = &fa->layers[l];
            const int K = wl->kernel_size, Z = wl->gating ? 2 * C : C;
            /* conv [Z][C][K]; Keras's kernel (K, C, C) for each half */
            for (int o = 0; o < Z; o++) {
                const float *kk = kern(m, fl->conv[o / C]);
                for (int ch = 0; ch < C; ch++)
                    for (int t = 0; t < K; t++)
                        w[pos++] = kk[((size_t)t * C + ch) * C + o % C];
            }
            for (int o = 0; o < Z; o++) {
                const float *b = bias(m, fl->conv[o / C]);
                w[pos++] = b ? b[o % C] : 0.0f;
            }
            /* mixin [Z][cond]; Keras's kernel (1, cond, C) */
            for (int o = 0; o < Z; o++) {
                const int mx = fl->mix[o / C];
                const float *mk = mx >= 0 ? kern(m, mx) : NULL;
                for (int ch = 0; ch < cond; ch++)
                    w[pos++] = mk ? mk[(size_t)ch * C + o % C] : 0.0f;
            }
            /* residual 1x1 [C][C] and its bias */
            const float *rk = fl->res >= 0 ? kern(m, fl->res) : NULL;
            const float *rb = fl->res >= 0 ? bias(m, fl->res) : NULL;
            for (int o = 0; o < C; o++)
                for (int ch = 0; ch < C; ch++)
                    w[pos++] = rk ? rk[(size_t)ch * C + o] : 0.0f;
            for (int o = 0; o < C; o++)
                w[pos++] = rb ? rb[o] : 0.0f;
        }
        const float *hk = kern(m, fa->head), *hb = bias(m, fa->head);
        for (int o = 0; o < H; o++)
            for (int ch = 0; ch < C; ch++)
                w[pos++] = hk[(size_t)ch * H + o];
        if (wa->head_bias)
            for (int o = 0; o < H; o++)
                w[pos++] = hb[o];
    }
    w[pos++] = f->scale >= 0 ? m->nodes[f->scale].mul : 1.0f;
}
