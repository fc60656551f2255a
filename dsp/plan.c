/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The offline forward: a plan holds every node's output for one input length, allocated once;
 * running it evaluates the nodes in topological order (ops.c for the nodes without weights,
 * the layers' own forward for Conv and Dense, a WaveNet instance in blocks). A windowed net
 * runs one plan per window; cvd_model_forward runs one over the whole input.
 */
#include "graph_internal.h"

#include <stdlib.h>
#include <string.h>

struct cvd_plan {
    const cvd_model *m;
    long n;
    unsigned char *used;
    long *len;
    float **buf;       /* node outputs (node 0: NULL, the caller's input is read) */
    const float **val; /* what each node's readers read */
    cvd_wavenet **wn;
    int wn_block;
    double *acc;
    size_t bytes;
};

void cvd_plan_destroy(cvd_plan *p)
{
    if (p == NULL)
        return;
    for (int i = 0; i < p->m->n_nodes; i++) {
        if (p->buf)
            free(p->buf[i]);
        if (p->wn)
            cvd_wavenet_destroy(p->wn[i]);
    }
    free(p->used);
    free(p->len);
    free(p->buf);
    free(p->val);
    free(p->wn);
    free(p->acc);
    free(p);
}

int cvd_plan_create(const cvd_model *m, long n, cvd_plan **out, cvd_err *err)
{
    const int N = m->n_nodes;
    size_t nacc = 1;
    int rc = CVD_OK;
    cvd_plan *p = calloc(1, sizeof *p);
    *out = NULL;
    if (p == NULL)
        return cvd_err_set(err, CVD_ENOMEM, "out of memory");
    p->m = m;
    p->n = n;
    p->used = malloc((size_t)N);
    p->len = calloc((size_t)N, sizeof *p->len);
    p->buf = calloc((size_t)N, sizeof *p->buf);
    p->val = calloc((size_t)N, sizeof *p->val);
    p->wn = calloc((size_t)N, sizeof *p->wn);
    if (!p->used || !p->len || !p->buf || !p->val || !p->wn) {
        cvd_plan_destroy(p);
        return cvd_err_set(err, CVD_ENOMEM, "out of memory");
    }
    cvd_model_used_nodes(m, p->used);
    p->len[0] = n;
    p->wn_block = n < 4096 ? (int)(n > 0 ? n : 1) : 4096;
    for (int i = 1; i < N && rc == CVD_OK; i++) {
        const cvd_node *nd = &m->nodes[i];
        long lens[CVD_MERGE_MAX_INPUTS];
        if (!p->used[i])
            continue;
        for (int k = 0; k < nd->n_inputs; k++)
            lens[k] = p->len[nd->inputs[k]];
        long nl = cvd_node_out_frames(m, i, lens, err);
        if (nl < 0) {
            rc = (int)nl;
            break;
        }
        p->len[i] = nl;
        if ((double)nl * nd->channels > (double)((size_t)1 << 40)) {
            rc = cvd_err_set(err, CVD_ENOMEM, "%s '%s': %ld frames of %d channels: too large",
                             cvd_node_class(nd), nd->name, nl, nd->channels);
            break;
        }
        size_t bytes = sizeof(float) * ((size_t)nl * (size_t)nd->channels + 1);
        p->buf[i] = malloc(bytes);
        p->bytes += bytes;
        if (p->buf[i] == NULL) {
            rc = cvd_err_set(err, CVD_ENOMEM, "out of memory for %ld frames of '%s'", nl, nd->name);
            break;
        }
        if (nd->proto && cvd_layer_forward_scratch(nd->proto) > nacc)
            nacc = cvd_layer_forward_scratch(nd->proto);
        if (nd->wn) {
            rc = cvd_wavenet_create(nd->wn, p->wn_block, &p->wn[i], err);
            if (rc == CVD_OK)
                rc = cvd_wavenet_set_weights(p->wn[i], nd->wn_weights, nd->wn_nweights, err);
            if (rc == CVD_OK)
                p->bytes += cvd_wavenet_state_bytes(p->wn[i]);
        }
    }
    if (rc == CVD_OK) {
        p->acc = malloc(sizeof(double) * nacc);
        p->bytes += sizeof(double) * nacc;
        if (p->acc == NULL)
            rc = cvd_err_set(err, CVD_ENOMEM, "out of memory");
    }
    if (rc < 0) {
        cvd_plan_destroy(p);
        return rc;
    }
    *out = p;
    return CVD_OK;
}

size_t cvd_plan_bytes(const cvd_plan *p)
{
    return p->bytes;
}

void cvd_plan_run(cvd_plan *p, const float *in)
{
    const cvd_model *m = p->m;
    p->val[0] = in;
    for (int i = 1; i < m->n_nodes; i++) {
        const cvd_node *nd = &m->nodes[i];
        const float *xs[CVD_MERGE_MAX_INPUTS];
        long lens[CVD_MERGE_MAX_INPUTS];
        if (!p->used[i])
            continue;
        const int a = nd->inputs[0];
        switch (nd->op) {
        case CVD_NODE_CONV:
        case CVD_NODE_DENSE:
            cvd_layer_forward_cl(nd->proto, p->val[a], p->len[a], p->buf[i], p->len[i], p->acc);
            break;
        case CVD_NODE_WAVENET: {
            const int ci = m->nodes[a].channels;
            cvd_wavenet_reset(p->wn[i]);
            for (long t = 0; t < p->len[a]; t += p->wn_block) {
                int mm = p->len[a] - t < p->wn_block ? (int)(p->len[a] - t) : p->wn_block;
                cvd_wavenet_process(p->wn[i], p->val[a] + (size_t)t * ci, mm,
                                    p->buf[i] + (size_t)t * nd->channels);
            }
            break;
        }
        default:
            for (int k = 0; k < nd->n_inputs; k++) {
                xs[k] = p->val[nd->inputs[k]];
                lens[k] = p->len[nd->inputs[k]];
            }
            cvd_node_compute(m, i, xs, lens, p->buf[i], p->len[i]);
            break;
        }
        p->val[i] = p->buf[i];
    }
}

long cvd_plan_out_frames(const cvd_plan *p)
{
    return p->len[p->m->output];
}

const float *cvd_plan_out(const cvd_plan *p)
{
    return p->val[p->m->output];
}

void cvd_plan_record(const cvd_plan *p, float *dst)
{
    const int o = p->m->output;
    const long T = p->len[o];
    const int C = p->m->nodes[o].channels;
    const float *y = p->val[o];
    if (cvd_node_chmajor(p->m, o)) {
        for (long t = 0; t < T; t++)
            for (int c = 0; c < C; c++)
                dst[(size_t)c * T + t] = y[(size_t)t * C + c];
    } else {
        memcpy(dst, y, sizeof(float) * (size_t)T * C);
    }
}

int cvd_model_forward_hop(const cvd_model *m, const float *in, long n, long hop, float **out,
                          long *n_out, cvd_err *err)
{
    cvd_plan *p = NULL;
    int rc;

    *out = NULL;
    *n_out = 0;
    if (n < 0)
        return cvd_err_set(err, CVD_EINVAL, "input length %ld: must be >= 0", n);
    if (hop < 0)
        return cvd_err_set(err, CVD_EINVAL, "hop=%ld: must be >= 1 (0: the window length)", hop);
    if (cvd_model_mode(m) == CVD_MODE_WINDOWED) {
        const long W = m->in_length, H = hop ? hop : W;
        const size_t R = (size_t)cvd_model_out_channels(m);
        const long records = n >= W ? (n - W) / H + 1 : 0;
        float *y = malloc(sizeof(float) * ((size_t)records * R + 1));
        if (y == NULL)
            return cvd_err_set(err, CVD_ENOMEM, "out of memory for %ld records", records);
        if (records > 0 && (rc = cvd_plan_create(m, W, &p, err)) < 0) {
            free(y);
            return rc;
        }
        for (long r = 0; r < records; r++) {
            cvd_plan_run(p, in + (size_t)r * H * m->in_channels);
            cvd_plan_record(p, y + (size_t)r * R);
        }
        cvd_plan_destroy(p);
        *out = y;
        *n_out = records;
        return CVD_OK;
    }
    if (hop != 0)
        return cvd_err_set(err, CVD_EINVAL,
                           "hop=%ld: the model streams (every layer runs frame by frame); a "
                           "hop applies to windowed models only",
                           hop);
    if (n == 0) { /* an empty input gives an empty output, whatever the layers */
        *out = malloc(sizeof(float));
        return *out ? CVD_OK : cvd_err_set(err, CVD_ENOMEM, "out of memory");
    }
    if (m->prewarm > 0) {
        /* a prewarmed model: the input after that much silence, the silence's output
         * dropped (the model is causal and gives a frame per frame: cvd_model_set_prewarm) */
        const size_t C = (size_t)m->in_channels, P = (size_t)m->prewarm;
        float *x = calloc((P + (size_t)n) * C, sizeof(float));
        if (x == NULL)
            return cvd_err_set(err, CVD_ENOMEM, "out of memory for %ld frames", n);
        memcpy(x + P * C, in, sizeof(float) * (size_t)n * C);
        if ((rc = cvd_plan_create(m, n + m->prewarm, &p, err)) < 0) {
            free(x);
            return rc;
        }
        cvd_plan_run(p, x);
        free(x);
        const size_t F = (size_t)cvd_model_out_channels(m);
        float *y = malloc(sizeof(float) * (size_t)n * F);
        if (y == NULL) {
            cvd_plan_destroy(p);
            return cvd_err_set(err, CVD_ENOMEM, "out of memory for %ld frames", n);
        }
        memcpy(y, p->buf[m->output] + P * F, sizeof(float) * (size_t)n * F);
        cvd_plan_destroy(p);
        *out = y;
        *n_out = n;
        return CVD_OK;
    }
    if ((rc = cvd_plan_create(m, n, &p, err)) < 0)
        return rc;
    cvd_plan_run(p, in);
    /* the output node's buffer is the result */
    *out = p->buf[m->output];
    *n_out = p->len[m->output];
    p->buf[m->output] = NULL;
    cvd_plan_destroy(p);
    return CVD_OK;
}

int cvd_model_forward(const cvd_model *m, const float *in, long n, float **out, long *n_out,
                      cvd_err *err)
{
    return cvd_model_forward_hop(m, in, n, 0, out, n_out, err);
}
