/* SPDX-License-Identifier: Apache-2.0 */
/*
 * keras-tcn's TCN layer into convd's layers. keras-tcn (github.com/philipperemy/keras-tcn,
 * tcn/tcn.py) is a custom layer, but what it computes is fixed by its config, so convd expands it
 * into its own layers. Per residual block b (nb_stacks x len(dilations) of them, dilation d, F
 * filters):
 *
 *   x1 = in -> Conv1D(F, k, d, padding) [-> norm] -> act [-> SpatialDropout]   (twice)
 *   x1 = act(x1)                                    (Act_Conv_Blocks: the activation again)
 *   x2 = in, or a 1x1 Conv1D(F) when F differs from the block's input channels
 *   out = act(x2 + x1)                              (the next block's input); x1 is the skip
 *
 * then the sum of every block's x1 (use_skip_connections) or the last block's out, and with
 * return_sequences=False the frame at index -1 (causal) or steps // 2 (same). Weight
 * normalization (tensorflow-addons, Keras 2 only) is folded into the kernels at load:
 * kernel = g * v / |v| per filter. Nodes are named <tcn>/residual_block_<b>/<part> after the
 * layers keras-tcn creates; the last one carries the TCN's own name. Its weights are read by
 * keras_tcn_weights.c.
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

#define KX_TCN_MAX_BLOCKS 4096

void kx_tcn_free(kx_tcn *t)
{
    if (t == NULL)
        return;
    free(t->filters);
    free(t->dil);
    free(t->match);
    free(t);
}

/* keras-tcn's class: class_name TCN from module tcn.tcn (or no module: Keras 2). */
int kx_is_tcn(json_t *layer)
{
    const char *cls = json_string_value(json_object_get(layer, "class_name"));
    const char *module = json_string_value(json_object_get(layer, "module"));
    const char *reg = json_string_value(json_object_get(layer, "registered_name"));
    size_t rl = reg ? strlen(reg) : 0;
    if (cls == NULL || strcmp(cls, "TCN") != 0)
        return 0;
    if (module != NULL && strncmp(module, "tcn", 3) != 0)
        return 0;
    return reg == NULL || strcmp(reg, "TCN") == 0 || (rl > 4 && strcmp(reg + rl - 4, ">TCN") == 0);
}

/* The TCN's node names. part NULL: the TCN's own name. */
int kx_tcn_name(kx_ctx *c, const kx_layer *L, int block, const char *part, char *buf, size_t n)
{
    int w;
    if (part == NULL)
        w = snprintf(buf, n, "%s", L->name);
    else if (block < 0)
        w = snprintf(buf, n, "%s/%s", L->name, part);
    else
        w = snprintf(buf, n, "%s/residual_block_%d/%s", L->name, block, part);
    if (w < 0 || (size_t)w >= n || w > 95)
        return kx_bad(c, CVD_EINVAL,
                      "%s%s (TCN): the name '%s' is too long for the names of its parts (convd "
                      "names them <name>/residual_block_<i>/<part>, at most 95 bytes)",
                      c->lp, L->where, L->name);
    return CVD_OK;
}

/* A bounded copy of a name (every name here fits: kx_tcn_name checks them). */
static void kx_cpy(char *d, size_t n, const char *src)
{
    size_t l = strnlen(src, n - 1);
    memcpy(d, src, l);
    d[l] = '\0';
}

static int kx_tcn_int(kx_ctx *c, const kx_layer *L, json_t *v, const char *key, long long lo,
                      long long hi, int *out)
{
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi)
        return kx_bad(c, CVD_EINVAL, "%s%s (TCN): config.%s: must be an integer from %lld to %lld",
                      c->lp, L->where, key, lo, hi);
    *out = (int)json_integer_value(v);
    return CVD_OK;
}

static int kx_tcn_bool(kx_ctx *c, const kx_layer *L, json_t *cfg, const char *key, int def,
                       int *out)
{
    json_t *v = json_object_get(cfg, key);
    if (v == NULL || json_is_null(v)) {
        *out = def;
        return CVD_OK;
    }
    if (json_is_boolean(v)) {
        *out = json_is_true(v);
        return CVD_OK;
    }
    if (json_is_integer(v) && (json_integer_value(v) == 0 || json_integer_value(v) == 1)) {
        *out = (int)json_integer_value(v);
        return CVD_OK;
    }
    return kx_bad(c, CVD_EINVAL, "%s%s (TCN): config.%s: must be true or false", c->lp, L->where,
                  key);
}

/* The TCN's config, checked as keras-tcn checks it, with keras-tcn's defaults. */
static int kx_tcn_parse(kx_ctx *c, kx_layer *L, json_t *cfg, kx_tcn **out)
{
    static const char *const keys[] = {"name",
                                       "trainable",
                                       "dtype",
                                       "batch_input_shape",
                                       "batch_shape",
                                       "batch_size",
                                       "nb_filters",
                                       "kernel_size",
                                       "nb_stacks",
                                       "dilations",
                                       "padding",
                                       "use_skip_connections",
                                       "dropout_rate",
                                       "return_sequences",
                                       "activation",
                                       "kernel_initializer",
                                       "use_batch_norm",
                                       "use_layer_norm",
                                       "use_weight_norm",
                                       "go_backwards",
                                       "return_state",
                                       NULL};
    static const int def_dil[] = {1, 2, 4, 8, 16, 32};
    kx_tcn *t = calloc(1, sizeof *t);
    json_t *v, *nf, *dl;
    const char *key;
    int rc, stacks = 1, n_dil, bn, ln, back, dummy;

    *out = NULL;
    if (t == NULL)
        return kx_bad(c, CVD_ENOMEM, "out of memory");
    *out = t;
    if (cfg == NULL || !json_is_object(cfg))
        return kx_bad(c, CVD_EFORMAT, "%s%s (TCN): no config object", c->lp, L->where);
    json_object_foreach(cfg, key, v)
    {
        int known = 0;
        for (int i = 0; keys[i] && !known; i++)
            known = strcmp(key, keys[i]) == 0;
        if (!known)
            return kx_bad(c, CVD_EUNSUPPORTED,
                          "%s%s (TCN): config.%s: not an argument of keras-tcn's TCN that convd "
                          "knows (docs/KERAS.md lists them)",
                          c->lp, L->where, key);
    }
    t->k = 3;
    if ((v = json_object_get(cfg, "kernel_size")) != NULL &&
        (rc = kx_tcn_int(c, L, v, "kernel_size", 1, 65536, &t->k)) < 0)
        return rc;
    if ((v = json_object_get(cfg, "nb_stacks")) != NULL &&
        (rc = kx_tcn_int(c, L, v, "nb_stacks", 1, KX_TCN_MAX_BLOCKS, &stacks)) < 0)
        return rc;
    dl = json_object_get(cfg, "dilations");
    if (dl != NULL && json_is_integer(dl)) /* keras-tcn: dilations=[1] written as 1 */
        n_dil = 1;
    else if (dl == NULL || json_is_null(dl))
        n_dil = 6;
    else if (json_is_array(dl) && json_array_size(dl) > 0 &&
             json_array_size(dl) <= KX_TCN_MAX_BLOCKS)
        n_dil = (int)json_array_size(dl);
    else
        return kx_bad(c, CVD_EINVAL,
                      "%s%s (TCN): config.dilations: must be a list of 1 to %d "
                      "integers",
                      c->lp, L->where, KX_TCN_MAX_BLOCKS);
    if ((long long)stacks * n_dil > KX_TCN_MAX_BLOCKS)
        return kx_bad(c, CVD_EINVAL,
                      "%s%s (TCN): nb_stacks %d x %d dilations: more than %d "
                      "residual blocks",
                      c->lp, L->where, stacks, n_dil, KX_TCN_MAX_BLOCKS);
    t->blocks = stacks * n_dil;
    t->filters = calloc((size_t)t->blocks, sizeof *t->filters);
    t->dil = calloc((size_t)t->blocks, sizeof *t->dil);
    t->match = calloc((size_t)t->blocks, sizeof *t->match);
    if (!t->filters || !t->dil || !t->match)
        return kx_bad(c, CVD_ENOMEM, "out of memory");
    for (int i = 0; i < n_dil; i++) {
        int d = def_dil[i % 6];
        if (dl != NULL && json_is_integer(dl))
            rc = kx_tcn_int(c, L, dl, "dilations", 1, 1 << 24, &d);
        else if (dl != NULL && !json_is_null(dl))
            rc = kx_tcn_int(c, L, json_array_get(dl, (size_t)i), "dilations", 1, 1 << 24, &d);
        else
            rc = CVD_OK;
        if (rc < 0)
            return rc;
        for (int s = 0; s < stacks; s++)
            t->dil[s * n_dil + i] = d;
    }
    nf = json_object_get(cfg, "nb_filters");
    for (int i = 0; i < n_dil; i++) {
        int f = 64;
        if (nf != NULL && json_is_array(nf)) {
            if (json_array_size(nf) != (size_t)n_dil)
                return kx_bad(c, CVD_EINVAL,
                              "%s%s (TCN): config.nb_filters: a list of %zu, but there are %d "
                              "dilations (keras-tcn wants one per dilation)",
                              c->lp, L->where, json_array_size(nf), n_dil);
            rc = kx_tcn_int(c, L, json_array_get(nf, (size_t)i), "nb_filters", 1, 65536, &f);
        } else if (nf != NULL) {
            rc = kx_tcn_int(c, L, nf, "nb_filters", 1, 65536, &f);
        } else {
            rc = CVD_OK;
        }
        if (rc < 0)
            return rc;
        for (int s = 0; s < stacks; s++)
            t->filters[s * n_dil + i] = f;
    }
    v = json_object_get(cfg, "padding");
    if (v == NULL || json_is_null(v))
        t->same = 0;
    else if (json_is_string(v) && strcmp(json_string_value(v), "causal") == 0)
        t->same = 0;
    else if (json_is_string(v) && strcmp(json_string_value(v), "same") == 0)
        t->same = 1;
    else
        return kx_bad(c, CVD_EINVAL,
                      "%s%s (TCN): config.padding: must be 'causal' or 'same' (keras-tcn accepts "
                      "only these)",
                      c->lp, L->where);
    if ((rc = kx_tcn_bool(c, L, cfg, "use_skip_connections", 1, &t->skip)) < 0 ||
        (rc = kx_tcn_bool(c, L, cfg, "return_sequences", 0, &t->ret_seq)) < 0 ||
        (rc = kx_tcn_bool(c, L, cfg, "use_batch_norm", 0, &bn)) < 0 ||
        (rc = kx_tcn_bool(c, L, cfg, "use_layer_norm", 0, &ln)) < 0 ||
        (rc = kx_tcn_bool(c, L, cfg, "use_weight_norm", 0, &t->wnorm)) < 0 ||
        (rc = kx_tcn_bool(c, L, cfg, "go_backwards", 0, &back)) < 0 ||
        (rc = kx_tcn_bool(c, L, cfg, "return_state", 0, &dummy)) < 0 ||
        (rc = kx_tcn_bool(c, L, cfg, "trainable", 1, &dummy)) < 0)
        return rc;
    if (bn + ln + t->wnorm > 1)
        return kx_bad(c, CVD_EINVAL,
                      "%s%s (TCN): use_batch_norm, use_layer_norm and use_weight_norm: only one "
                      "normalization can be specified at once (keras-tcn refuses this too)",
                      c->lp, L->where);
    t->norm = bn ? KX_NORM_BATCH : ln ? KX_NORM_LAYER : KX_NORM_NONE;
    if (back)
        return kx_bad(c, CVD_EUNSUPPORTED,
                      "%s%s (TCN): go_backwards=true: the TCN reads its input reversed in time, "
                      "so every output depends on the input's last frames, which a stream "
                      "does not have yet: convd does not run it",
                      c->lp, L->where);
    if (t->skip) {
        for (int i = 1; i < t->blocks; i++)
            if (t->filters[i] != t->filters[0])
                return kx_bad(c, CVD_EINVAL,
                              "%s%s (TCN): use_skip_connections with nb_filters that are not "
                              "all equal (keras-tcn refuses this too: the skip outputs are "
                              "summed)",
                              c->lp, L->where);
    }
    v = json_object_get(cfg, "dropout_rate");
    if (v != NULL && !json_is_null(v) &&
        (!json_is_number(v) || json_number_value(v) < 0 || json_number_value(v) >= 1))
        return kx_bad(c, CVD_EINVAL,
                      "%s%s (TCN): config.dropout_rate: must be a number from 0 "
                      "to below 1",
                      c->lp, L->where);
    v = json_object_get(cfg, "activation");
    if (v == NULL || json_is_null(v))
        snprintf(t->act, sizeof t->act, "%s", v == NULL ? "relu" : "linear");
    else if (json_is_string(v) && strlen(json_string_value(v)) < sizeof t->act) {
        cvd_activation a;
        cvd_err e2 = {0};
        snprintf(t->act, sizeof t->act, "%s", json_string_value(v));
        if (cvd_activation_parse(t->act, &a, &e2) < 0)
            return kx_bad(c, CVD_EINVAL, "%s%s (TCN): config.activation: %s", c->lp, L->where,
                          e2.msg);
    } else
        return kx_bad(c, CVD_EUNSUPPORTED,
                      "%s%s (TCN): config.activation: must be the name of a Keras activation",
                      c->lp, L->where);
    return CVD_OK;
}

/* Appends {"class_name", "name", "config", "inputs"} to list (config and inputs stolen). */
static int kx_tcn_push(kx_ctx *c, json_t *list, const char *cls, const char *name, json_t *cfg,
                       json_t *inputs)
{
    json_t *o = json_object();
    if (o == NULL || cfg == NULL || inputs == NULL ||
        json_object_set_new(o, "class_name", json_string(cls)) != 0 ||
        json_object_set_new(o, "name", json_string(name)) != 0 ||
        json_object_set_new(o, "config", cfg) != 0 ||
        json_object_set_new(o, "inputs", inputs) != 0 || json_array_append_new(list, o) != 0) {
        json_decref(o);
        return kx_bad(c, CVD_ENOMEM, "out of memory");
    }
    return CVD_OK;
}

static json_t *kx_tcn_conv_cfg(int filters, int k, int d, const char *padding, const char *act)
{
    return json_pack("{s:i, s:i, s:i, s:s, s:s, s:b, s:s}", "filters", filters, "kernel_size", k,
                     "dilation_rate", d, "padding", padding, "activation", act, "use_bias", 1,
                     "data_format", "channels_last");
}

/* relu and linear give the same values applied twice: the second is left out. */
static int kx_tcn_idempotent(const char *act)
{
    return strcmp(act, "relu") == 0 || strcmp(act, "linear") == 0;
}

/* The shape of the model input as translated so far: the InputLayer's or input_shape. */
static int kx_tcn_model_input(json_t *root, json_t *list, int *ch, long *steps)
{
    json_t *shape = NULL;
    for (size_t i = 0; i < json_array_size(list) && shape == NULL; i++) {
        json_t *e = json_array_get(list, i), *cc = json_object_get(e, "config");
        const char *cls = json_string_value(json_object_get(e, "class_name"));
        if (cls == NULL || strcmp(cls, "InputLayer") != 0)
            continue;
        if ((shape = json_object_get(cc, "batch_shape")) == NULL || json_is_null(shape))
            shape = json_object_get(cc, "batch_input_shape");
        if ((shape == NULL || json_is_null(shape)) && json_is_array(json_object_get(cc, "shape"))) {
            json_t *s = json_object_get(cc, "shape");
            if (json_array_size(s) != 2)
                return -1;
            *steps = json_is_integer(json_array_get(s, 0))
                         ? (long)json_integer_value(json_array_get(s, 0))
                         : -1;
            *ch = (int)json_integer_value(json_array_get(s, 1));
            return 0;
        }
    }
    if (shape == NULL || json_is_null(shape))
        shape = json_object_get(root, "input_shape");
    if (!json_is_array(shape) || json_array_size(shape) != 3 ||
        !json_is_integer(json_array_get(shape, 2)))
        return -1;
    *steps = json_is_integer(json_array_get(shape, 1))
                 ? (long)json_integer_value(json_array_get(shape, 1))
                 : -1;
    *ch = (int)json_integer_value(json_array_get(shape, 2));
    return 0;
}

/* The channels and frames of the node `in` that the TCN reads: from the model input's shape,
 * or by building the part of the model it depends on (a probe, discarded). */
static int kx_tcn_input_shape(kx_ctx *c, const kx_layer *L, json_t *root, json_t *list,
                              const char *in, kx_tcn *t)
{
    size_t n = json_array_size(list);
    int is_input = strcmp(in, "input") == 0 || n == 0, rc = CVD_OK, idx = -1;
    for (size_t i = 0; i < n && !is_input; i++) {
        json_t *e = json_array_get(list, i);
        const char *nm = json_string_value(json_object_get(e, "name"));
        const char *cls = json_string_value(json_object_get(e, "class_name"));
        if (nm != NULL && strcmp(nm, in) == 0) {
            is_input = cls != NULL && strcmp(cls, "InputLayer") == 0;
            idx = (int)i;
        }
    }
    if (is_input) {
        if (kx_tcn_model_input(root, list, &t->in_ch, &t->steps) < 0 || t->in_ch < 1)
            return kx_bad(c, CVD_EFORMAT,
                          "%s%s (TCN): the model does not say its input's shape [null, steps, "
                          "channels]: convd needs the channels",
                          c->lp, L->where);
        return CVD_OK;
    }
    if (idx < 0)
        return kx_bad(c, CVD_EINVAL, "%s%s (TCN): its input '%s' is not a layer listed before it",
                      c->lp, L->where, in);
    /* the layers `in` depends on, in the listed order */
    char *need = calloc(n, 1);
    json_t *probe = NULL, *pl = json_array();
    cvd_model *pm = NULL;
    if (need == NULL || pl == NULL) {
        free(need);
        json_decref(pl);
        return kx_bad(c, CVD_ENOMEM, "out of memory");
    }
    need[idx] = 1;
    for (int i = idx; i >= 0; i--) {
        if (!need[i])
            continue;
        json_t *e = json_array_get(list, (size_t)i), *ins = json_object_get(e, "inputs");
        const char *cls = json_string_value(json_object_get(e, "class_name"));
        if (cls != NULL && strcmp(cls, "InputLayer") == 0)
            continue;
        if (ins == NULL) { /* Sequential: the layer listed before */
            if (i > 0)
                need[i - 1] = 1;
            continue;
        }
        for (size_t k = 0; k < json_array_size(ins); k++) {
            const char *nm = json_string_value(json_array_get(ins, k));
            for (int j = 0; nm && j < i; j++) {
                const char *o =
                    json_string_value(json_object_get(json_array_get(list, (size_t)j), "name"));
                if (o != NULL && strcmp(o, nm) == 0)
                    need[j] = 1;
            }
        }
    }
    for (size_t i = 0; i < n; i++)
        if (need[i])
            json_array_append(pl, json_array_get(list, i));
    free(need);
    probe = json_pack("{s:s, s:i, s:o, s:s}", "format", "convd-model", "version", 1, "layers", pl,
                      "output", in);
    if (probe == NULL)
        return kx_bad(c, CVD_ENOMEM, "out of memory");
    if (json_object_get(root, "input_shape") != NULL)
        json_object_set(probe, "input_shape", json_object_get(root, "input_shape"));
    {
        char full[1200];
        snprintf(full, sizeof full, "%s%s%s", c->file, c->label[0] ? ": " : "", c->label);
        rc = cvd_json_model_build(probe, full, NULL, &pm, &c->e);
    }
    json_decref(probe);
    if (rc < 0)
        return rc;
    for (int i = 1; i < cvd_model_node_count(pm); i++)
        if (strcmp(cvd_model_node_name(pm, i), in) == 0) {
            t->in_ch = cvd_model_node_channels(pm, i);
            t->steps = cvd_model_node_frames(pm, i);
            if (cvd_model_node_rank(pm, i) != 2)
                rc = kx_bad(c, CVD_EINVAL,
                            "%s%s (TCN): its input '%s' is not a sequence (steps, channels)", c->lp,
                            L->where, in);
        }
    cvd_model_unref(pm);
    return rc;
}

/* The TCN `layer` (at L) into convd's layers, appended to list. */
int kx_tcn_translate(kx_ctx *c, kx_layer *L, json_t *layer, json_t *root, json_t *list,
                     int functional)
{
    json_t *cfg = json_object_get(layer, "config");
    kx_tcn *t = NULL;
    char in[128], p[8][128], cur[128], x1[128];
    char(*skips)[128] = NULL;
    int rc = kx_tcn_parse(c, L, cfg, &t);
    L->tcn = t;
    if (rc < 0)
        return rc;
    /* what it reads */
    if (functional) {
        json_t *tmp = json_object();
        if (tmp == NULL)
            return kx_bad(c, CVD_ENOMEM, "out of memory");
        rc = kx_inbound(c, L, layer, tmp);
        json_t *ins = json_object_get(tmp, "inputs");
        if (rc == CVD_OK && json_array_size(ins) != 1)
            rc = kx_bad(c, CVD_EINVAL, "%s%s (TCN) is called on %zu tensors: it takes one", c->lp,
                        L->where, json_array_size(ins));
        if (rc == CVD_OK)
            kx_cpy(in, sizeof in, json_string_value(json_array_get(ins, 0)));
        json_decref(tmp);
        if (rc < 0)
            return rc;
    } else {
        size_t n = json_array_size(list);
        const char *prev =
            n ? json_string_value(json_object_get(json_array_get(list, n - 1), "name")) : NULL;
        kx_cpy(in, sizeof in, prev ? prev : "input");
        if (n == 0 && json_object_get(root, "input_shape") == NULL) {
            /* Keras 2's Sequential: the first layer carries the input's shape */
            json_t *bs = json_object_get(cfg, "batch_input_shape");
            if (bs == NULL)
                bs = json_object_get(cfg, "batch_shape");
            if (bs != NULL)
                json_object_set(root, "input_shape", bs);
        }
    }
    if ((rc = kx_tcn_input_shape(c, L, root, list, in, t)) < 0)
        return rc;
    if (!t->ret_seq && t->steps <= 0 && t->same)
        return kx_bad(c, CVD_EUNSUPPORTED,
                      "%s%s (TCN): return_sequences=false with padding 'same' gives the frame in "
                      "the middle of the input, which needs the input's length: give the "
                      "InputLayer its steps (the model then runs on windows of that length)",
                      c->lp, L->where);
    t->slice = !t->ret_seq && t->steps > 0;
    skips = calloc((size_t)t->blocks, sizeof *skips);
    if (skips == NULL)
        return kx_bad(c, CVD_ENOMEM, "out of memory");
    {
        int ci = t->in_ch;
        const char *pad = t->same ? "same" : "causal";
        const int idem = kx_tcn_idempotent(t->act);
        for (int b = 0; b < t->blocks && rc == CVD_OK; b++) {
            const int F = t->filters[b], last = b == t->blocks - 1;
            static const char *const parts[] = {"conv1D_0",        "norm_0",         "Act_Conv1D_0",
                                                "conv1D_1",        "norm_1",         "Act_Conv1D_1",
                                                "Act_Conv_Blocks", "matching_conv1D"};
            for (int q = 0; q < 8 && rc == CVD_OK; q++)
                rc = kx_tcn_name(c, L, b, parts[q], p[q], sizeof p[q]);
            kx_cpy(cur, sizeof cur, in);
            for (int k = 0; k < 2 && rc == CVD_OK; k++) {
                const char *cn = p[3 * k], *nn = p[3 * k + 1], *an = p[3 * k + 2];
                rc = kx_tcn_push(
                    c, list, "Conv1D", cn,
                    kx_tcn_conv_cfg(F, t->k, t->dil[b], pad, t->norm ? "linear" : t->act),
                    json_pack("[s]", cur));
                kx_cpy(cur, sizeof cur, cn);
                if (rc == CVD_OK && t->norm) {
                    rc = kx_tcn_push(c, list,
                                     t->norm == KX_NORM_BATCH ? "BatchNormalization"
                                                              : "LayerNormalization",
                                     nn, json_pack("{s:i, s:f}", "axis", -1, "epsilon", 1e-3),
                                     json_pack("[s]", cur));
                    if (rc == CVD_OK)
                        rc = kx_tcn_push(c, list, "Activation", an,
                                         json_pack("{s:s}", "activation", t->act),
                                         json_pack("[s]", nn));
                    kx_cpy(cur, sizeof cur, an);
                }
            }
            if (rc == CVD_OK && !idem) {
                rc = kx_tcn_push(c, list, "Activation", p[6],
                                 json_pack("{s:s}", "activation", t->act), json_pack("[s]", cur));
                kx_cpy(cur, sizeof cur, p[6]);
            }
            kx_cpy(x1, sizeof x1, cur);
            snprintf(skips[b], sizeof skips[b], "%s", x1);
            const char *x2 = in;
            t->match[b] = F != ci;
            if (last && t->skip) /* its residual output is not used: only the skip */
                break;
            if (rc == CVD_OK && t->match[b]) {
                rc = kx_tcn_push(c, list, "Conv1D", p[7],
                                 kx_tcn_conv_cfg(F, 1, 1, "same", "linear"), json_pack("[s]", in));
                x2 = p[7];
            }
            char addn[128], outn[128];
            if (rc == CVD_OK)
                rc = kx_tcn_name(c, L, b, "Add_Res", addn, sizeof addn);
            if (rc == CVD_OK)
                rc = last && !t->skip && !t->slice
                         ? kx_tcn_name(c, L, -1, NULL, outn, sizeof outn)
                         : kx_tcn_name(c, L, b, "Act_Res_Block", outn, sizeof outn);
            if (rc == CVD_OK)
                rc = kx_tcn_push(c, list, "Add", addn, json_object(), json_pack("[s, s]", x2, x1));
            if (rc == CVD_OK)
                rc = kx_tcn_push(c, list, "Activation", outn,
                                 json_pack("{s:s}", "activation", t->act), json_pack("[s]", addn));
            kx_cpy(in, sizeof in, outn);
            ci = F;
        }
    }
    /* the skip connections summed (at most 64 inputs per Add) */
    if (rc == CVD_OK && t->skip) {
        char sum[128];
        if (t->blocks == 1) {
            kx_cpy(in, sizeof in, skips[0]);
            if (!t->slice) {
                rc = kx_tcn_name(c, L, -1, NULL, sum, sizeof sum);
                if (rc == CVD_OK)
                    rc = kx_tcn_push(c, list, "Identity", sum, json_object(), json_pack("[s]", in));
                kx_cpy(in, sizeof in, sum);
            }
        } else {
            int done = 0, part = 0;
            char prev[128] = "";
            while (rc == CVD_OK && done < t->blocks) {
                json_t *ins = json_array();
                int take = t->blocks - done;
                if (prev[0])
                    json_array_append_new(ins, json_string(prev));
                if (take > 64 - (prev[0] != 0))
                    take = 64 - (prev[0] != 0);
                for (int i = 0; i < take; i++)
                    json_array_append_new(ins, json_string(skips[done + i]));
                done += take;
                if (done == t->blocks && !t->slice) {
                    rc = kx_tcn_name(c, L, -1, NULL, sum, sizeof sum);
                } else {
                    char part_name[48];
                    snprintf(part_name, sizeof part_name,
                             part ? "Add_Skip_Connections_%d" : "Add_Skip_Connections", part);
                    rc = kx_tcn_name(c, L, -1, part_name, sum, sizeof sum);
                }
                if (rc == CVD_OK)
                    rc = kx_tcn_push(c, list, "Add", sum, json_object(), ins);
                else
                    json_decref(ins);
                kx_cpy(prev, sizeof prev, sum);
                part++;
            }
            kx_cpy(in, sizeof in, prev);
        }
    }
    /* return_sequences=False: one frame of a window of fixed length */
    if (rc == CVD_OK && t->slice) {
        char crop[128], fin[128];
        const long T = t->steps, left = t->same ? T / 2 : T - 1;
        rc = kx_tcn_name(c, L, -1, "Slice_Output", crop, sizeof crop);
        if (rc == CVD_OK)
            rc = kx_tcn_name(c, L, -1, NULL, fin, sizeof fin);
        if (rc == CVD_OK)
            rc = kx_tcn_push(
                c, list, "Cropping1D", crop,
                json_pack("{s:[I, I]}", "cropping", (json_int_t)left, (json_int_t)(T - 1 - left)),
                json_pack("[s]", in));
        if (rc == CVD_OK)
            rc = kx_tcn_push(c, list, "Flatten", fin, json_object(), json_pack("[s]", crop));
    }
    free(skips);
    return rc;
}
