/* SPDX-License-Identifier: Apache-2.0 */
/*
 * keras-tcn's weights, into the layers keras_tcn.c expanded its TCN into: Keras 3 files keep
 * them under the paths keras-tcn sets on its sublayers (layers/tcn[_N]/residual_block_<b>/
 * <part>/vars/<i>), Keras 2 files under the name scopes it opens (tcn/residual_block_<b>/
 * conv1D_<k>/kernel:0, ...). Weight normalization (tensorflow-addons) is folded into the
 * kernels here: kernel = g * v / |v| per filter.
 */
#include "convd_model.h"
#include "keras_internal.h"
#include "model_internal.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include <hdf5.h>
#include <hdf5_hl.h>
#include <jansson.h>
#include <zip.h>

/* A part of a TCN as a layer, for messages: "layers[1] (tcn): residual_block_0/conv1D_0". */
static void kx_tcn_sub(const kx_layer *L, int block, const char *part, const char *cls,
                       kx_layer *sub)
{
    memset(sub, 0, sizeof *sub);
    sub->name = L->name;
    sub->cls = cls;
    snprintf(sub->where, sizeof sub->where, "%.100s: residual_block_%d/%s", L->where, block, part);
}

static int kx_tcn_node(kx_ctx *c, const kx_layer *L, int block, const char *part)
{
    char nm[128];
    if (kx_tcn_name(c, L, block, part, nm, sizeof nm) < 0)
        return -1;
    int node = kx_node(c, nm);
    if (node < 0)
        kx_bad(c, CVD_EINVAL, "%s: no node '%s' (internal)", L->where, nm);
    return node;
}

/* Keras 3: the variables of one part, gpath/<i> for i < the node's count, into `node`. */
static int kx_tcn_group3(kx_ctx *c, hid_t fid, const char *where, const char *gpath,
                         const kx_layer *sub, int node)
{
    char shown[KX_MAX_PATH + 200], vpath[KX_MAX_PATH + 16];
    const int nv = cvd_model_var_count(c->m, node);
    int rc = CVD_OK;
    snprintf(shown, sizeof shown, "%s%s", where, gpath);
    long held = kx_h5_count(c, fid, gpath, shown);
    if (held < -1)
        return c->e.code;
    if (held < 0)
        return kx_bad(c, CVD_EFORMAT, "%s: missing: the weights of %s (%s), %d variables", shown,
                      sub->where, sub->cls, nv);
    if (held != nv)
        return kx_bad(c, CVD_EINVAL, "%s: %ld variables, but %s (%s) has %d", shown, held,
                      sub->where, sub->cls, nv);
    for (int v = 0; v < nv && rc == CVD_OK; v++) {
        snprintf(vpath, sizeof vpath, "%s/%d", gpath, v);
        snprintf(shown, sizeof shown, "%s%s", where, vpath);
        rc = kx_h5_var(c, fid, vpath, shown, sub, node, v);
    }
    return rc;
}

static int kx_suffix_cmp(const void *a, const void *b)
{
    const long x = *(const long *)a, y = *(const long *)b;
    return (x > y) - (x < y);
}

/* Keras 3: where norm layer k of a block is. keras-tcn >= 3.5.5 keeps its norm layers in a
 * list (batch_norm_layers, layer_norm_layers), which Keras saves first: <list>/<class>[_1];
 * older versions only as attributes named after the layer (batch_normalization_7): those,
 * in the order of their numbers. */
static int kx_tcn_norm_path3(kx_ctx *c, hid_t fid, const char *where, const char *block_path,
                             const kx_tcn *t, int k, char *out, size_t n)
{
    const char *list = t->norm == KX_NORM_BATCH ? "batch_norm_layers" : "layer_norm_layers";
    const char *stem = t->norm == KX_NORM_BATCH ? "batch_normalization" : "layer_normalization";
    char shown[KX_MAX_PATH + 200];
    long found[2] = {0, 0}, count;
    int nf = 0;
    if ((size_t)snprintf(out, n, "%s/%s/%s%s/vars", block_path, list, stem, k ? "_1" : "") >= n)
        return kx_bad(c, CVD_EINVAL, "%s%s: path too long", where, block_path);
    out[strlen(out) - 5] = '\0';
    snprintf(shown, sizeof shown, "%s%s", where, out);
    if ((count = kx_h5_count(c, fid, out, shown)) < -1)
        return c->e.code;
    if (count >= 0) {
        out[strlen(out)] = '/'; /* the "/vars" written above */
        return CVD_OK;
    }
    snprintf(shown, sizeof shown, "%s%s", where, block_path);
    if ((count = kx_h5_count(c, fid, block_path, shown)) < 0)
        return count < -1 ? c->e.code : kx_bad(c, CVD_EFORMAT, "%s: missing", shown);
    for (long i = 0; i < count; i++) {
        char name[256];
        ssize_t len = H5Lget_name_by_idx(fid, block_path, H5_INDEX_NAME, H5_ITER_INC, (hsize_t)i,
                                         name, sizeof name, H5P_DEFAULT);
        size_t sl = strlen(stem);
        if (len <= 0 || (size_t)len >= sizeof name || strncmp(name, stem, sl) != 0)
            continue;
        long num = 0;
        if (name[sl] == '_') {
            char *end;
            num = strtol(name + sl + 1, &end, 10);
            if (*end != '\0' || name[sl + 1] == '\0')
                continue;
        } else if (name[sl] != '\0') {
            continue;
        }
        if (nf == 2)
            return kx_bad(c, CVD_EINVAL, "%s: more than two %s groups", shown, stem);
        found[nf++] = num;
    }
    H5Eclear2(H5E_DEFAULT);
    if (nf != 2)
        return kx_bad(c, CVD_EFORMAT,
                      "%s: missing: the weights of the block's two %s layers (%s/%s, or "
                      "%s_N groups)",
                      shown, stem, list, stem, stem);
    qsort(found, 2, sizeof found[0], kx_suffix_cmp);
    int w = found[k] == 0 ? snprintf(out, n, "%s/%s/vars", block_path, stem)
                          : snprintf(out, n, "%s/%s_%ld/vars", block_path, stem, found[k]);
    if (w < 0 || (size_t)w >= n)
        return kx_bad(c, CVD_EINVAL, "%s%s: path too long", where, block_path);
    return CVD_OK;
}

/* Keras 3 (.keras, .weights.h5): layers/tcn[_N]/residual_block_<b>/<part>/vars/<i>, the
 * paths being the attributes keras-tcn sets on its layers. */
int kx_tcn_weights3(kx_ctx *c, hid_t fid, const char *where, const char *base, const kx_layer *L)
{
    const kx_tcn *t = L->tcn;
    char path[KX_MAX_PATH], bpath[KX_MAX_PATH], shown[KX_MAX_PATH + 200];
    int rc = CVD_OK;
    long count;
    snprintf(shown, sizeof shown, "%s%s", where, base);
    if ((count = kx_h5_count(c, fid, base, shown)) < -1)
        return c->e.code;
    if (count < 0)
        return kx_bad(c, CVD_EFORMAT,
                      "%s: missing: the weights of %s (TCN) (Keras writes them by class name: "
                      "is this the model's own weights file?)",
                      shown, L->where);
    if (t->wnorm)
        return kx_bad(c, CVD_EUNSUPPORTED,
                      "%s%s (TCN): use_weight_norm=true in a Keras 3 file: keras-tcn's weight "
                      "normalization comes from tensorflow-addons, which runs with Keras 2 only; "
                      "convd reads such a model from its Keras 2 .h5 file",
                      c->lp, L->where);
    for (int b = 0; b < t->blocks && rc == CVD_OK; b++) {
        static const char *const convs[] = {"conv1D_0", "conv1D_1", "matching_conv1D"};
        snprintf(bpath, sizeof bpath, "%s/residual_block_%d", base, b);
        for (int q = 0; q < 3 && rc == CVD_OK; q++) {
            kx_layer sub;
            if ((size_t)snprintf(path, sizeof path, "%s/%s/vars", bpath, convs[q]) >= sizeof path)
                return kx_bad(c, CVD_EINVAL, "%s%s: path too long", where, bpath);
            if (q == 2 && !t->match[b]) {
                snprintf(shown, sizeof shown, "%s%s", where, path);
                if ((count = kx_h5_count(c, fid, path, shown)) < -1)
                    return c->e.code;
                if (count > 0)
                    return kx_bad(c, CVD_EINVAL,
                                  "%s: a matching 1x1 convolution, but the block's input has "
                                  "%d channels already (nb_filters): not this model's weights",
                                  shown, t->filters[b]);
                continue;
            }
            kx_tcn_sub(L, b, convs[q], "Conv1D", &sub);
            if (q == 2 && t->skip && b == t->blocks - 1) {
                /* the last block's residual output is not used (only its skip output): its
                 * matching convolution is in the file but not in the model */
                snprintf(shown, sizeof shown, "%s%s", where, path);
                if ((count = kx_h5_count(c, fid, path, shown)) < -1)
                    return c->e.code;
                if (count != 2)
                    return kx_bad(c, CVD_EFORMAT, "%s: %s, but %s (Conv1D) has 2 variables", shown,
                                  count < 0 ? "missing" : "not 2 variables", sub.where);
                continue;
            }
            int node = kx_tcn_node(c, L, b, convs[q]);
            rc = node < 0 ? c->e.code : kx_tcn_group3(c, fid, where, path, &sub, node);
        }
        for (int k = 0; k < 2 && t->norm && rc == CVD_OK; k++) {
            kx_layer sub;
            char part[16];
            snprintf(part, sizeof part, "norm_%d", k);
            kx_tcn_sub(L, b, part,
                       t->norm == KX_NORM_BATCH ? "BatchNormalization" : "LayerNormalization",
                       &sub);
            int node = kx_tcn_node(c, L, b, part);
            if (node < 0)
                return c->e.code;
            rc = kx_tcn_norm_path3(c, fid, where, bpath, t, k, path, sizeof path);
            if (rc == CVD_OK)
                rc = kx_tcn_group3(c, fid, where, path, &sub, node);
        }
    }
    if (rc == CVD_OK) {
        snprintf(bpath, sizeof bpath, "%s/residual_block_%d", base, t->blocks);
        snprintf(shown, sizeof shown, "%s%s", where, bpath);
        if ((count = kx_h5_count(c, fid, bpath, shown)) < -1)
            return c->e.code;
        if (count >= 0)
            return kx_bad(c, CVD_EINVAL,
                          "%s: more residual blocks in the file than %s (TCN) has (%d: nb_stacks "
                          "x dilations): not this model's weights",
                          shown, L->where, t->blocks);
    }
    return rc;
}

/* Keras 2 names a TCN's variables by the name scopes keras-tcn opens:
 * [model/]tcn/residual_block_<b>/{conv1D_<k>,matching_conv1D,norm_<k>}/<variable>:0. */
enum { KX_TS_CONV0, KX_TS_CONV1, KX_TS_MATCH, KX_TS_NORM0, KX_TS_NORM1, KX_TS_PARTS };

typedef struct kx_tcn_slots {
    int var[KX_TS_PARTS][4]; /* index into the weight names, -1 absent */
    int g[2], init[2];       /* weight normalization of conv1D_0, conv1D_1 */
} kx_tcn_slots;

static int kx_tcn_var_index(int part, const char *var, int norm)
{
    static const char *const conv[] = {"kernel", "bias"};
    static const char *const bn[] = {"gamma", "beta", "moving_mean", "moving_variance"};
    if (part <= KX_TS_MATCH) {
        for (int i = 0; i < 2; i++)
            if (strcmp(var, conv[i]) == 0)
                return i;
        return -1;
    }
    for (int i = 0; i < (norm == KX_NORM_BATCH ? 4 : 2); i++)
        if (strcmp(var, bn[i]) == 0)
            return i;
    return -1;
}

int kx_tcn_weights2(kx_ctx *c, hid_t lg, const char *prefix, char **wn, int n_wn, const kx_layer *L)
{
    const kx_tcn *t = L->tcn;
    kx_tcn_slots *sl = calloc((size_t)t->blocks, sizeof *sl);
    char shown[KX_MAX_PATH + 300];
    float *v = NULL, *g = NULL;
    int rc = CVD_OK;
    if (sl == NULL)
        return kx_bad(c, CVD_ENOMEM, "out of memory");
    memset(sl, 0xff, sizeof *sl * (size_t)t->blocks); /* every index -1 */
    for (int i = 0; i < n_wn && rc == CVD_OK; i++) {
        char buf[KX_MAX_PATH], *save = NULL, *seg, *var = NULL;
        int block = -1, part = -1, clone = 0, normseg = -1;
        snprintf(shown, sizeof shown, "%s%s", prefix, wn[i]);
        snprintf(buf, sizeof buf, "%s", wn[i]);
        for (seg = strtok_r(buf, "/", &save); seg; seg = strtok_r(NULL, "/", &save)) {
            char *end;
            if (strncmp(seg, "residual_block_", 15) == 0 && isdigit((unsigned char)seg[15])) {
                long b = strtol(seg + 15, &end, 10);
                if (*end == '\0')
                    block = b < t->blocks ? (int)b : t->blocks;
            } else if (strcmp(seg, "conv1D_0") == 0 || strcmp(seg, "conv1D_1") == 0) {
                part = seg[7] == '0' ? KX_TS_CONV0 : KX_TS_CONV1;
            } else if (strcmp(seg, "matching_conv1D") == 0) {
                part = KX_TS_MATCH;
            } else if (strcmp(seg, "norm_0") == 0 || strcmp(seg, "norm_1") == 0) {
                normseg = seg[5] - '0';
            } else if (strcmp(seg, "data_dep_init") == 0) {
                clone = 1; /* tensorflow-addons' copy of the layer for its data init */
            }
            var = seg;
        }
        if (clone)
            continue;
        if (var != NULL) {
            char *colon = strrchr(var, ':');
            if (colon)
                *colon = '\0';
        }
        if (block < 0 || var == NULL)
            rc = kx_bad(c, CVD_EFORMAT, "%s: not a variable of a residual block of %s (TCN)", shown,
                        L->where);
        else if (block >= t->blocks)
            rc = kx_bad(c, CVD_EINVAL,
                        "%s: more residual blocks in the file than %s (TCN) has (%d: nb_stacks x "
                        "dilations): not this model's weights",
                        shown, L->where, t->blocks);
        if (rc < 0)
            break;
        kx_tcn_slots *s = &sl[block];
        int *slot = NULL;
        if (strcmp(var, "g") == 0 && (part == KX_TS_CONV0 || part == KX_TS_CONV1 || normseg >= 0))
            slot = &s->g[part == KX_TS_CONV0 || part == KX_TS_CONV1 ? part : normseg];
        else if (strcmp(var, "initialized") == 0 &&
                 (part == KX_TS_CONV0 || part == KX_TS_CONV1 || normseg >= 0))
            slot = &s->init[part == KX_TS_CONV0 || part == KX_TS_CONV1 ? part : normseg];
        else if (normseg >= 0 && part < 0 && t->norm &&
                 kx_tcn_var_index(KX_TS_NORM0, var, t->norm) >= 0)
            slot = &s->var[KX_TS_NORM0 + normseg][kx_tcn_var_index(KX_TS_NORM0, var, t->norm)];
        else if (part >= 0 && kx_tcn_var_index(part, var, t->norm) >= 0)
            slot = &s->var[part][kx_tcn_var_index(part, var, t->norm)];
        if (slot == NULL) {
            rc = kx_bad(c, CVD_EINVAL,
                        "%s: not a variable of %s (TCN) as configured (%s%s%s): not this "
                        "model's weights",
                        shown, L->where,
                        t->norm == KX_NORM_BATCH   ? "batch norm"
                        : t->norm == KX_NORM_LAYER ? "layer norm"
                                                   : "no norm",
                        t->wnorm ? ", weight norm" : "", t->match[block] ? ", matching conv" : "");
            break;
        }
        if (*slot >= 0) {
            rc = kx_bad(c, CVD_EINVAL, "%s: %s holds this variable twice", shown, prefix);
            break;
        }
        *slot = i;
    }
    /* every variable the configuration has, and none it does not */
    for (int b = 0; b < t->blocks && rc == CVD_OK; b++) {
        static const char *const parts[] = {"conv1D_0", "conv1D_1", "matching_conv1D", "norm_0",
                                            "norm_1"};
        kx_tcn_slots *s = &sl[b];
        for (int q = 0; q < KX_TS_PARTS && rc == CVD_OK; q++) {
            const int want = q <= KX_TS_CONV1 || (q == KX_TS_MATCH && t->match[b]) ||
                             (q >= KX_TS_NORM0 && t->norm);
            const int nv = q <= KX_TS_MATCH ? 2 : t->norm == KX_NORM_BATCH ? 4 : 2;
            kx_layer sub;
            kx_tcn_sub(L, b, parts[q],
                       q <= KX_TS_MATCH           ? "Conv1D"
                       : t->norm == KX_NORM_BATCH ? "BatchNormalization"
                                                  : "LayerNormalization",
                       &sub);
            for (int k = 0; k < 4; k++) {
                if (!want && s->var[q][k] >= 0) {
                    snprintf(shown, sizeof shown, "%s%s", prefix, wn[s->var[q][k]]);
                    rc = kx_bad(c, CVD_EINVAL,
                                "%s: %s is not part of the model as configured: not this "
                                "model's weights",
                                shown, sub.where);
                    break;
                }
                if (want && k < nv && s->var[q][k] < 0) {
                    rc = kx_bad(c, CVD_EFORMAT,
                                "%s: no weight named %s/%s in weight_names (%s "
                                "(%s) variable %d)",
                                prefix, parts[q],
                                q <= KX_TS_MATCH
                                    ? (k ? "bias" : "kernel")
                                    : (const char *const[]){"gamma", "beta", "moving_mean",
                                                            "moving_variance"}[k],
                                sub.where, sub.cls, k);
                    break;
                }
            }
            if (rc < 0 || !want)
                continue;
            if (q == KX_TS_MATCH && t->skip && b == t->blocks - 1)
                continue; /* not used (the last block's residual output) */
            int node = kx_tcn_node(c, L, b, parts[q]);
            if (node < 0)
                return free(sl), c->e.code;
            for (int k = 0; k < nv && rc == CVD_OK; k++) {
                if (k == 0 && q <= KX_TS_CONV1 && t->wnorm)
                    continue; /* below */
                snprintf(shown, sizeof shown, "%s%s", prefix, wn[s->var[q][k]]);
                rc = kx_h5_var(c, lg, wn[s->var[q][k]], shown, &sub, node, k);
            }
        }
        for (int k = 0; k < 2 && rc == CVD_OK; k++) {
            char part[16];
            snprintf(part, sizeof part, "conv1D_%d", k);
            if (!t->wnorm) {
                if (s->g[k] >= 0 || s->init[k] >= 0) {
                    snprintf(shown, sizeof shown, "%s%s", prefix,
                             wn[s->g[k] >= 0 ? s->g[k] : s->init[k]]);
                    rc = kx_bad(c, CVD_EINVAL,
                                "%s: weight normalization, but %s (TCN) has "
                                "use_weight_norm=false: not this model's weights",
                                shown, L->where);
                }
                continue;
            }
            /* tensorflow-addons' WeightNormalization: kernel = g * v / |v| (l2 over the taps
             * and input channels, tf.nn.l2_normalize's epsilon 1e-12), g per filter */
            kx_layer sub;
            kx_tcn_sub(L, b, part, "Conv1D", &sub);
            const int node = kx_tcn_node(c, L, b, part);
            if (node < 0)
                return free(sl), c->e.code;
            if (s->g[k] < 0) {
                rc = kx_bad(c, CVD_EFORMAT,
                            "%s: no weight named %s/g in weight_names (the "
                            "weight normalization of %s)",
                            prefix, part, sub.where);
                break;
            }
            if (s->init[k] >= 0) {
                int ok = 0;
                snprintf(shown, sizeof shown, "%s%s", prefix, wn[s->init[k]]);
                rc = kx_h5_flag(c, lg, wn[s->init[k]], shown, &ok);
                if (rc == CVD_OK && !ok)
                    rc = kx_bad(c, CVD_EUNSUPPORTED,
                                "%s: false: the weight normalization was never initialised, "
                                "so Keras would set g and the bias from the first batch it "
                                "sees: convd needs a trained model",
                                shown);
                if (rc < 0)
                    break;
            }
            int shape[3];
            cvd_model_var_shape(c->m, node, 0, shape);
            const size_t nk = cvd_model_var_size(c->m, node, 0);
            const int F = shape[2];
            free(v);
            free(g);
            v = malloc(sizeof(float) * nk);
            g = malloc(sizeof(float) * (size_t)F);
            if (v == NULL || g == NULL) {
                rc = kx_bad(c, CVD_ENOMEM, "out of memory");
                break;
            }
            snprintf(shown, sizeof shown, "%s%s", prefix, wn[s->var[k][0]]);
            rc = kx_h5_var_to(c, lg, wn[s->var[k][0]], shown, &sub, node, 0, v);
            snprintf(shown, sizeof shown, "%s%s", prefix, wn[s->g[k]]);
            if (rc == CVD_OK) /* g has the bias's shape (filters,) */
                rc = kx_h5_var_to(c, lg, wn[s->g[k]], shown, &sub, node, 1, g);
            if (rc < 0)
                break;
            for (int f = 0; f < F; f++) {
                double ss = 0.0;
                for (size_t j = (size_t)f; j < nk; j += (size_t)F)
                    ss += (double)v[j] * v[j];
                const double scale = (double)g[f] / sqrt(ss > 1e-12 ? ss : 1e-12);
                for (size_t j = (size_t)f; j < nk; j += (size_t)F)
                    v[j] = (float)(v[j] * scale);
            }
            if (cvd_model_set_var(c->m, node, 0, v, nk, &c->e) < 0) {
                cvd_err_prefix(&c->e, "%s: %s", c->file, shown);
                rc = c->e.code;
            }
        }
    }
    free(v);
    free(g);
    free(sl);
    return rc;
}
