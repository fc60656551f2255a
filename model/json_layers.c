/* SPDX-License-Identifier: Apache-2.0 */
/*
 * convd's model JSON, pass 3 (json_model.c runs it in topological order): each layer into
 * the model's nodes, its config read with Keras's keys and defaults, then the weights a layer
 * gives inline. The WaveNet layer's config is read by wavenet_json.c.
 */
#include "convd_model.h"
#include "json_model.h"

#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

/* config keys that matter at inference, per class; NULL-terminated */
static const char *const jm_keys_conv[4][11] = {
    [CVD_CONV1D] = {"filters", "kernel_size", "strides", "padding", "data_format", "dilation_rate",
                    "groups", "activation", "use_bias", NULL},
    [CVD_CONV1D_TRANSPOSE] = {"filters", "kernel_size", "strides", "padding", "output_padding",
                              "data_format", "dilation_rate", "activation", "use_bias", NULL},
    [CVD_SEPARABLE_CONV1D] = {"filters", "kernel_size", "strides", "padding", "data_format",
                              "dilation_rate", "depth_multiplier", "activation", "use_bias", NULL},
    [CVD_DEPTHWISE_CONV1D] = {"kernel_size", "strides", "padding", "data_format", "dilation_rate",
                              "depth_multiplier", "activation", "use_bias", NULL},
};
static const char *const jm_keys_dense[] = {
    "units", "activation", "use_bias", "lora_rank", "lora_alpha", "quantization_config", NULL};
static const char *const jm_keys_activation[] = {"activation", NULL};
static const char *const jm_keys_concat[] = {"axis", NULL};
static const char *const jm_keys_dropout[] = {"rate",        "noise_shape", "seed", "stddev",
                                              "data_format", "l1",          "l2",   NULL};
static const char *const jm_keys_batch_norm[] = {"axis",
                                                 "momentum",
                                                 "epsilon",
                                                 "center",
                                                 "scale",
                                                 "renorm",
                                                 "renorm_clipping",
                                                 "renorm_momentum",
                                                 "synchronized",
                                                 "fused",
                                                 "virtual_batch_size",
                                                 "adjustment",
                                                 NULL};
static const char *const jm_keys_layer_norm[] = {"axis",  "epsilon",     "center",
                                                 "scale", "rms_scaling", NULL};
static const char *const jm_keys_rescaling[] = {"scale", "offset", NULL};
static const char *const jm_keys_zero_padding[] = {"padding", "data_format", NULL};
static const char *const jm_keys_cropping[] = {"cropping", NULL};
static const char *const jm_keys_upsampling[] = {"size", NULL};
static const char *const jm_keys_pool[] = {"pool_size", "strides", "padding", "data_format", NULL};
static const char *const jm_keys_global_pool[] = {"data_format", "keepdims", NULL};
static const char *const jm_keys_flatten[] = {"data_format", NULL};
static const char *const jm_keys_reshape[] = {"target_shape", NULL};
static const char *const jm_keys_permute[] = {"dims", NULL};
static const char *const jm_keys_none[] = {NULL};

/* A Keras activation: a name, or null for linear. */
static int jm_activation(jm_ctx *c, const char *where, const char *path, json_t *obj,
                         const char *key, int required, cvd_activation *out)
{
    char sub[256];
    json_t *v = obj ? json_object_get(obj, key) : NULL;
    cvd_jr_key(sub, sizeof sub, path, key);
    *out = CVD_ACT_LINEAR;
    if (v == NULL) {
        if (required)
            return cvd_jr_bad(&c->r, CVD_EFORMAT, where, sub, NULL, "missing (required)");
        return CVD_OK;
    }
    if (json_is_null(v))
        return CVD_OK;
    if (!json_is_string(v))
        return cvd_jr_bad(&c->r, CVD_EFORMAT, where, sub, v,
                          "must be the name of a Keras activation, or null (linear)");
    if (cvd_activation_parse(json_string_value(v), out, &c->e) < 0)
        return cvd_jr_lib(&c->r, CVD_EINVAL, where, path);
    return CVD_OK;
}

/* ---- pass 3: layers into nodes -------------------------------------------------------------- */

static int jm_in_node(const jm_ctx *c, const jm_layer *L, int k)
{
    const jm_layer *I;
    if (L->inputs[k] < 0)
        return 0;
    I = &c->layers[L->inputs[k]];
    return I->last > 0 ? I->last : I->node;
}

/* A layer acting over time in a model whose input has no fixed length. */
static int jm_no_window(jm_ctx *c, const jm_layer *L, const char *key)
{
    char sub[64];
    json_t *v = L->config ? json_object_get(L->config, key) : NULL;
    cvd_jr_key(sub, sizeof sub, L->cfgp, key);
    return cvd_jr_bad(&c->r, CVD_EUNSUPPORTED, L->where, v ? sub : "class_name", v,
                      "acts over the whole time axis (the last axis of a channels_first tensor): "
                      "it needs a window, but the model's input has no fixed length (give the "
                      "InputLayer its steps: batch_shape [null, channels, steps])");
}

static int jm_one_input(jm_ctx *c, const jm_layer *L)
{
    if (L->n_inputs != 1)
        return cvd_jr_bad(&c->r, CVD_EINVAL, L->where, "inputs", json_object_get(L->obj, "inputs"),
                          "%s reads one input, %d given", L->cls_name, L->n_inputs);
    return CVD_OK;
}

/* A layer's data_format: absent or null means the top-level data_format (Keras's
 * image_data_format), or channels_last; it must be the model's. */
static int jm_layer_format(jm_ctx *c, const jm_layer *L, cvd_data_format *out)
{
    const char *s;
    const char *w = L->where, *p = L->cfgp;
    int rc;
    if ((rc = cvd_jr_str(&c->r, w, p, L->config, "data_format", CVD_JR_NULLDEF,
                         c->df_top ? cvd_data_format_name(c->df) : "channels_last", &s)) < 0)
        return rc;
    if (cvd_data_format_parse(s, out, &c->e) < 0)
        return cvd_jr_lib(&c->r, CVD_EINVAL, w, p);
    if (*out != c->df) {
        char sub[64];
        json_t *dv = L->config ? json_object_get(L->config, "data_format") : NULL;
        cvd_jr_key(sub, sizeof sub, p, "data_format");
        return cvd_jr_bad(&c->r, CVD_EUNSUPPORTED, w, sub, dv,
                          "%sthe model's tensors are %s (%s says so); Keras would read time as "
                          "channels across a layer of the other layout",
                          dv == NULL || json_is_null(dv)
                              ? "absent, so channels_last (Keras's default), "
                                "but "
                              : "",
                          cvd_data_format_name(c->df), c->df_from ? c->df_from : "the default");
    }
    return CVD_OK;
}

int jm_add_conv(jm_ctx *c, jm_layer *L)
{
    cvd_conv_config cc;
    const char *s;
    long long v;
    int rc, id, in_ch;
    json_t *cfg = L->config;
    const cvd_layer_kind kind = L->kind;
    const char *w = L->where, *p = L->cfgp;

    if ((rc = jm_one_input(c, L)) < 0)
        return rc;
    if (cfg == NULL)
        return cvd_jr_bad(&c->r, CVD_EFORMAT, w, "config", NULL, "missing (%s needs kernel_size%s)",
                          L->cls_name, kind == CVD_DEPTHWISE_CONV1D ? "" : " and filters");
    if ((rc = cvd_jr_check_keys(&c->r, w, p, cfg, jm_keys_conv[kind], 1, L->cls_name)) < 0)
        return rc;
    cvd_conv_config_init(&cc, kind);
    if (kind != CVD_DEPTHWISE_CONV1D) {
        if ((rc = cvd_jr_int(&c->r, w, p, cfg, "filters", CVD_JR_REQ, 0, 1, INT_MAX, &v)) < 0)
            return rc;
        cc.filters = (int)v;
    }
    if ((rc = cvd_jr_int(&c->r, w, p, cfg, "kernel_size", CVD_JR_REQ | CVD_JR_LIST1, 0, 1, INT_MAX,
                         &v)) < 0)
        return rc;
    cc.kernel_size = (int)v;
    if ((rc = cvd_jr_int(&c->r, w, p, cfg, "strides", CVD_JR_LIST1, 1, 1, INT_MAX, &v)) < 0)
        return rc;
    cc.strides = (int)v;
    if ((rc = cvd_jr_int(&c->r, w, p, cfg, "dilation_rate", CVD_JR_LIST1, 1, 1, INT_MAX, &v)) < 0)
        return rc;
    cc.dilation_rate = (int)v;
    if (kind == CVD_CONV1D) {
        if ((rc = cvd_jr_int(&c->r, w, p, cfg, "groups", 0, 1, 1, INT_MAX, &v)) < 0)
            return rc;
        cc.groups = (int)v;
    }
    if (kind == CVD_DEPTHWISE_CONV1D || kind == CVD_SEPARABLE_CONV1D) {
        if ((rc = cvd_jr_int(&c->r, w, p, cfg, "depth_multiplier", 0, 1, 1, INT_MAX, &v)) < 0)
            return rc;
        cc.depth_multiplier = (int)v;
    }
    if (kind == CVD_CONV1D_TRANSPOSE) {
        rc = cvd_jr_int(&c->r, w, p, cfg, "output_padding", CVD_JR_LIST1 | CVD_JR_NULLDEF, -1, 0,
                        INT_MAX, &v);
        if (rc < 0)
            return rc;
        cc.output_padding = (int)v;
    }
    if ((rc = cvd_jr_str(&c->r, w, p, cfg, "padding", 0, "valid", &s)) < 0)
        return rc;
    if (cvd_padding_parse(s, &cc.padding, &c->e) < 0)
        return cvd_jr_lib(&c->r, CVD_EINVAL, w, p);
    if ((rc = jm_layer_format(c, L, &cc.data_format)) < 0)
        return rc;
    if ((rc = jm_activation(c, w, p, cfg, "activation", 0, &cc.activation)) < 0)
        return rc;
    if ((rc = cvd_jr_bool(&c->r, w, p, cfg, "use_bias", 1, &cc.use_bias)) < 0)
        return rc;

    const int in = jm_in_node(c, L, 0);
    in_ch = cvd_model_node_channels(c->m, in);
    if (cvd_conv_config_check(&cc, in_ch, &c->e) < 0)
        return cvd_jr_lib(&c->r, CVD_EINVAL, w, p);
    /* sizes the library would allocate: refused here, before anything overflows */
    {
        const double k = cc.kernel_size, C = in_ch, dm = cc.depth_multiplier,
                     F = kind == CVD_DEPTHWISE_CONV1D ? C * dm : cc.filters;
        double biggest = 0.0;
        if (F > JM_MAX_CHANNELS || C * dm > JM_MAX_CHANNELS)
            return cvd_jr_bad(&c->r, CVD_EINVAL, w, p, NULL,
                              "%.0f output channels (%d input channels): at most %d", F, in_ch,
                              JM_MAX_CHANNELS);
        switch (kind) {
        case CVD_CONV1D:
            biggest = k * (C / cc.groups) * F;
            break;
        case CVD_CONV1D_TRANSPOSE:
            biggest = k * F * C;
            break;
        case CVD_DEPTHWISE_CONV1D:
            biggest = k * C * dm;
            break;
        case CVD_SEPARABLE_CONV1D:
            biggest = fmax(k * C * dm, C * dm * F);
            break;
        }
        if (biggest > JM_MAX_VALUES)
            return cvd_jr_bad(&c->r, CVD_EINVAL, w, p, NULL,
                              "kernel_size=%d with %d input channels makes a kernel of %.0f "
                              "values: at most %u",
                              cc.kernel_size, in_ch, biggest, JM_MAX_VALUES);
    }
    /* the model's latency in this layer's frames (an int in the library): a chain of
     * large transposed strides would overflow it */
    {
        const long long lat = cvd_model_node_latency(c->m, in), st = cc.strides,
                        ek = (long long)cc.dilation_rate * (cc.kernel_size - 1) + 1;
        const long long worst =
            kind == CVD_CONV1D_TRANSPOSE ? (lat + ek / st + 2) * st : lat + ek + st;
        if (worst > INT_MAX / 2)
            return cvd_jr_bad(&c->r, CVD_EINVAL, w, p, NULL,
                              "strides=%d after %lld frames of latency: the model's latency would "
                              "exceed 2^30 frames",
                              cc.strides, lat);
    }
    /* softmax over the last axis of a channels_first tensor acts over time: the convolution,
     * then the activation over the whole window */
    const cvd_activation act = cc.activation;
    const int over_time = c->df == CVD_CHANNELS_FIRST && cvd_activation_is_axis(act);
    if (over_time) {
        if (c->in_steps <= 0)
            return jm_no_window(c, L, "activation");
        cc.activation = CVD_ACT_LINEAR;
    }
    id = cvd_model_add_conv(c->m, L->name, &cc, in, &c->e);
    if (id < 0)
        return cvd_jr_lib(&c->r, id, w, "");
    L->node = id;
    if (over_time) {
        char nm[JM_MAX_NAME + 1];
        snprintf(nm, sizeof nm, "%.80s.%s", L->name, cvd_activation_name(act));
        int a = cvd_model_add_activation_axis(c->m, nm, act, CVD_AXIS_TIME, id, &c->e);
        if (a < 0)
            return cvd_jr_lib(&c->r, a, w, "");
        L->last = a;
    }
    return CVD_OK;
}

int jm_add_dense(jm_ctx *c, jm_layer *L)
{
    long long units;
    cvd_activation act;
    int use_bias, rc, id, in, in_ch;
    json_t *cfg = L->config, *v;
    const char *w = L->where, *p = L->cfgp;
    if ((rc = jm_one_input(c, L)) < 0)
        return rc;
    if (cfg == NULL)
        return cvd_jr_bad(&c->r, CVD_EFORMAT, w, "config", NULL, "missing (Dense needs units)");
    if ((rc = cvd_jr_check_keys(&c->r, w, p, cfg, jm_keys_dense, 1, "Dense")) < 0)
        return rc;
    if ((rc = cvd_jr_int(&c->r, w, p, cfg, "units", CVD_JR_REQ, 0, 1, JM_MAX_CHANNELS, &units)) < 0)
        return rc;
    if ((rc = jm_activation(c, w, p, cfg, "activation", 0, &act)) < 0)
        return rc;
    if ((rc = cvd_jr_bool(&c->r, w, p, cfg, "use_bias", 1, &use_bias)) < 0)
        return rc;
    v = json_object_get(cfg, "lora_rank");
    if (v != NULL && !json_is_null(v) && !(json_is_integer(v) && json_integer_value(v) == 0))
        return cvd_jr_bad(&c->r, CVD_EUNSUPPORTED, w, "config.lora_rank", v,
                          "LoRA adapters are not supported (merge them into the kernel)");
    v = json_object_get(cfg, "quantization_config");
    if (v != NULL && !json_is_null(v))
        return cvd_jr_bad(&c->r, CVD_EUNSUPPORTED, w, "config.quantization_config", NULL,
                          "quantized layers are not supported");
    in = jm_in_node(c, L, 0);
    if (c->df == CVD_CHANNELS_FIRST && cvd_model_node_rank(c->m, in) == 2)
        return cvd_jr_bad(&c->r, CVD_EUNSUPPORTED, w, "class_name", NULL,
                          "Dense acts on the last axis, which is time in a channels_first model "
                          "(%s)",
                          c->df_from ? c->df_from : "the top-level data_format");
    in_ch = cvd_model_node_channels(c->m, in);
    if ((double)in_ch * (double)units > JM_MAX_VALUES)
        return cvd_jr_bad(&c->r, CVD_EINVAL, w, "config.units", json_object_get(cfg, "units"),
                          "a kernel of %d x %lld values: at most %u", in_ch, units, JM_MAX_VALUES);
    id = cvd_model_add_dense(c->m, L->name, (int)units, act, use_bias, in, &c->e);
    if (id < 0)
        return cvd_jr_lib(&c->r, id, w, "");
    L->node = id;
    return CVD_OK;
}

int jm_add_activation(jm_ctx *c, jm_layer *L)
{
    cvd_activation act;
    int rc, id;
    const char *w = L->where, *p = L->cfgp;
    if ((rc = jm_one_input(c, L)) < 0)
        return rc;
    if (L->config == NULL)
        return cvd_jr_bad(&c->r, CVD_EFORMAT, w, "config", NULL,
                          "missing (Activation needs config.activation)");
    if ((rc = cvd_jr_check_keys(&c->r, w, p, L->config, jm_keys_activation, 1, "Activation")) < 0)
        return rc;
    if ((rc = jm_activation(c, w, p, L->config, "activation", 1, &act)) < 0)
        return rc;
    const int in = jm_in_node(c, L, 0);
    const int over_time = c->df == CVD_CHANNELS_FIRST && cvd_activation_is_axis(act) &&
                          cvd_model_node_rank(c->m, in) == 2;
    if (over_time && c->in_steps <= 0)
        return jm_no_window(c, L, "activation");
    id = cvd_model_add_activation_axis(c->m, L->name, act,
                                       over_time ? CVD_AXIS_TIME : CVD_AXIS_CHANNELS, in, &c->e);
    if (id < 0)
        return cvd_jr_lib(&c->r, id, w, "");
    L->node = id;
    return CVD_OK;
}

int jm_add_merge(jm_ctx *c, jm_layer *L)
{
    int ins[JM_MAX_INPUTS], rc, id;
    const char *w = L->where, *p = L->cfgp;
    const char *const *keys = L->nop == CVD_NODE_CONCATENATE ? jm_keys_concat : jm_keys_none;
    json_t *in_json = json_object_get(L->obj, "inputs");

    if (L->config != NULL &&
        (rc = cvd_jr_check_keys(&c->r, w, p, L->config, keys, 1, L->cls_name)) < 0)
        return rc;
    if (L->nop == CVD_NODE_IDENTITY) {
        if ((rc = jm_one_input(c, L)) < 0)
            return rc;
    } else if (L->nop == CVD_NODE_SUBTRACT && L->n_inputs != 2) {
        return cvd_jr_bad(&c->r, CVD_EINVAL, w, "inputs", in_json,
                          "Subtract takes exactly 2 inputs, %d given", L->n_inputs);
    } else if (L->n_inputs < 2) {
        return cvd_jr_bad(&c->r, CVD_EINVAL, w, "inputs", in_json,
                          "%s takes 2 to %d inputs, %d given%s", L->cls_name, JM_MAX_INPUTS,
                          L->n_inputs,
                          in_json ? ""
                                  : " (without \"inputs\", a layer reads the "
                                    "one listed before it)");
    }
    if (L->nop == CVD_NODE_CONCATENATE) {
        long long axis;
        rc = cvd_jr_int(&c->r, w, p, L->config, "axis", 0, -1, LLONG_MIN, LLONG_MAX, &axis);
        if (rc < 0)
            return rc;
        /* tensors are (batch, steps, channels), or (batch, channels, steps), or vectors */
        const int rank1 = cvd_model_node_rank(c->m, jm_in_node(c, L, 0)) == 1;
        const int ok = rank1                        ? axis == -1 || axis == 1
                       : c->df == CVD_CHANNELS_LAST ? axis == -1 || axis == 2
                                                    : axis == 1 || axis == -2;
        if (!ok) {
            char sub[64];
            cvd_jr_key(sub, sizeof sub, p, "axis");
            return cvd_jr_bad(&c->r, CVD_EUNSUPPORTED, w, sub,
                              L->config ? json_object_get(L->config, "axis") : NULL,
                              "convd concatenates along channels only, which is axis %s in a %s "
                              "model",
                              c->df == CVD_CHANNELS_LAST ? "-1 (or 2)" : "1 (or -2)",
                              cvd_data_format_name(c->df));
        }
    }
    for (int k = 0; k < L->n_inputs; k++)
        ins[k] = jm_in_node(c, L, k);
    id = cvd_model_add_merge(c->m, L->name, L->nop, ins, L->n_inputs, &c->e);
    if (id < 0)
        return cvd_jr_lib(&c->r, id, w, "");
    L->node = id;
    return CVD_OK;
}

/* ---- the other Keras layers ------------------------------------------------------------------ */

/* A number from the config (absent: def). */
static int jm_num(jm_ctx *c, const jm_layer *L, const char *key, double def, double lo, double hi,
                  double *out)
{
    char sub[256];
    json_t *v = L->config ? json_object_get(L->config, key) : NULL;
    cvd_jr_key(sub, sizeof sub, L->cfgp, key);
    *out = def;
    if (v == NULL)
        return CVD_OK;
    if (!json_is_number(v))
        return cvd_jr_bad(&c->r, CVD_EFORMAT, L->where, sub, v, "must be a number");
    *out = json_number_value(v);
    if (!(*out >= lo && *out <= hi))
        return cvd_jr_bad(&c->r, CVD_EINVAL, L->where, sub, v, "must be in [%g, %g]", lo, hi);
    return CVD_OK;
}

/* Keras's axis (an integer, or a list of one) as the axis of convd's tensors: the channels
 * or time; the input's rank and the model's layout say which is which. */
static int jm_axis(jm_ctx *c, const jm_layer *L, int in, long long def, cvd_axis *out)
{
    char sub[256];
    json_t *v = L->config ? json_object_get(L->config, "axis") : NULL, *x = v;
    long long a = def;
    const int rank = cvd_model_node_rank(c->m, in);
    cvd_jr_key(sub, sizeof sub, L->cfgp, "axis");
    if (v != NULL && json_is_array(v)) {
        if (json_array_size(v) != 1)
            return cvd_jr_bad(&c->r, CVD_EUNSUPPORTED, L->where, sub, v,
                              "convd normalises along one axis (the channels, or time)");
        x = json_array_get(v, 0);
    }
    if (x != NULL) {
        if (!json_is_integer(x))
            return cvd_jr_bad(&c->r, CVD_EFORMAT, L->where, sub, v, "must be an integer");
        a = json_integer_value(x);
    }
    if (a < 0)
        a += rank + 1; /* Keras counts the batch axis */
    if (a < 1 || a > rank)
        return cvd_jr_bad(&c->r, CVD_EINVAL, L->where, sub, v,
                          "axis %lld: the tensor (with its batch "
                          "axis) has %d axes%s",
                          v ? (long long)json_integer_value(x) : def, rank + 1,
                          a == 0 ? "; axis 0 is the batch" : "");
    if (rank == 1)
        *out = CVD_AXIS_CHANNELS;
    else if (c->df == CVD_CHANNELS_LAST)
        *out = a == 2 ? CVD_AXIS_CHANNELS : CVD_AXIS_TIME;
    else
        *out = a == 1 ? CVD_AXIS_CHANNELS : CVD_AXIS_TIME;
    if (*out == CVD_AXIS_TIME && c->in_steps <= 0)
        return jm_no_window(c, L, "axis");
    return CVD_OK;
}

/* An integer or [a, b] (Keras's padding and cropping tuples); a single integer is both. */
static int jm_pair(jm_ctx *c, const jm_layer *L, const char *key, int def, int *a, int *b)
{
    char sub[256];
    json_t *v = L->config ? json_object_get(L->config, key) : NULL;
    cvd_jr_key(sub, sizeof sub, L->cfgp, key);
    *a = *b = def;
    if (v == NULL)
        return CVD_OK;
    if (json_is_integer(v)) {
        if (json_integer_value(v) < 0 || json_integer_value(v) > (1 << 24))
            return cvd_jr_bad(&c->r, CVD_EINVAL, L->where, sub, v, "must be in 0..%d", 1 << 24);
        *a = *b = (int)json_integer_value(v);
        return CVD_OK;
    }
    if (!json_is_array(v) || json_array_size(v) != 2)
        return cvd_jr_bad(&c->r, CVD_EFORMAT, L->where, sub, v,
                          "must be an integer or a pair [before, after]");
    for (int k = 0; k < 2; k++) {
        json_t *x = json_array_get(v, (size_t)k);
        if (!json_is_integer(x) || json_integer_value(x) < 0 || json_integer_value(x) > (1 << 24))
            return cvd_jr_bad(&c->r, CVD_EINVAL, L->where, sub, v,
                              "entries must be integers in 0..%d", 1 << 24);
        *(k ? b : a) = (int)json_integer_value(x);
    }
    return CVD_OK;
}

/* Cropping1D and UpSampling1D act on axis 1 of (batch, steps, features), always. */
static int jm_axis1(jm_ctx *c, const jm_layer *L)
{
    return cvd_jr_bad(&c->r, CVD_EUNSUPPORTED, L->where, "class_name", NULL,
                      "%s acts on axis 1, which is the channels in a channels_first model (%s): "
                      "convd's %s acts on time",
                      L->cls_name, c->df_from ? c->df_from : "the top-level data_format",
                      L->cls_name);
}

int jm_add_other(jm_ctx *c, jm_layer *L)
{
    const char *w = L->where, *p = L->cfgp;
    json_t *cfg = L->config;
    int rc, id = -1, in;
    long long v;
    double d;
    static const char *const none[] = {NULL};

    if ((rc = jm_one_input(c, L)) < 0)
        return rc;
    in = jm_in_node(c, L, 0);
    switch (L->op) {
    case JM_IDENTITY: {
        if (cfg && (rc = cvd_jr_check_keys(&c->r, w, p, cfg, jm_keys_dropout, 1, L->cls_name)) < 0)
            return rc;
        /* rates and noise only act in training; Keras checks their range */
        static const char *const rates[] = {"rate", "stddev"};
        for (int k = 0; k < 2; k++)
            if ((rc = jm_num(c, L, rates[k], 0.0, 0.0, 1.0, &d)) < 0)
                return rc;
        id = cvd_model_add_identity(c->m, L->name, L->cls_name, in, &c->e);
        break;
    }
    case JM_BATCH_NORM:
    case JM_LAYER_NORM: {
        int center, scale, rms = 0;
        cvd_axis axis;
        const int bn = L->op == JM_BATCH_NORM;
        if (cfg &&
            (rc = cvd_jr_check_keys(&c->r, w, p, cfg, bn ? jm_keys_batch_norm : jm_keys_layer_norm,
                                    1, L->cls_name)) < 0)
            return rc;
        if ((rc = jm_num(c, L, "epsilon", 1e-3, 0.0, 1e30, &d)) < 0 ||
            (rc = cvd_jr_bool(&c->r, w, p, cfg, "center", 1, &center)) < 0 ||
            (rc = cvd_jr_bool(&c->r, w, p, cfg, "scale", 1, &scale)) < 0 ||
            (!bn && (rc = cvd_jr_bool(&c->r, w, p, cfg, "rms_scaling", 0, &rms)) < 0) ||
            (rc = jm_axis(c, L, in, -1, &axis)) < 0)
            return rc;
        if (bn) {
            json_t *vb = cfg ? json_object_get(cfg, "virtual_batch_size") : NULL;
            if (vb != NULL && !json_is_null(vb))
                return cvd_jr_bad(&c->r, CVD_EUNSUPPORTED, w, "config.virtual_batch_size", vb,
                                  "ghost batch normalisation is not supported");
            id = cvd_model_add_batch_norm(c->m, L->name, axis, (float)d, center, scale, in, &c->e);
        } else {
            id = cvd_model_add_layer_norm(c->m, L->name, axis, (float)d, center, scale, rms, in,
                                          &c->e);
        }
        break;
    }
    case JM_RESCALING: {
        double sc, off;
        if (cfg == NULL)
            return cvd_jr_bad(&c->r, CVD_EFORMAT, w, "config", NULL,
                              "missing (Rescaling needs scale)");
        if ((rc = cvd_jr_check_keys(&c->r, w, p, cfg, jm_keys_rescaling, 1, L->cls_name)) < 0)
            return rc;
        json_t *sv = json_object_get(cfg, "scale"), *ov = json_object_get(cfg, "offset");
        if (sv == NULL)
            return cvd_jr_bad(&c->r, CVD_EFORMAT, w, "config.scale", NULL, "missing (required)");
        if (!json_is_number(sv))
            return cvd_jr_bad(&c->r, CVD_EUNSUPPORTED, w, "config.scale", sv,
                              "convd's Rescaling takes one number");
        if (ov != NULL && !json_is_number(ov))
            return cvd_jr_bad(&c->r, CVD_EUNSUPPORTED, w, "config.offset", ov,
                              "convd's Rescaling takes one number");
        if ((rc = jm_num(c, L, "scale", 1.0, -3e38, 3e38, &sc)) < 0 ||
            (rc = jm_num(c, L, "offset", 0.0, -3e38, 3e38, &off)) < 0)
            return rc;
        id = cvd_model_add_rescaling(c->m, L->name, (float)sc, (float)off, in, &c->e);
        break;
    }
    case JM_PAD_CROP: {
        int a, b;
        const int pad = L->nop == CVD_NODE_ZERO_PADDING;
        cvd_data_format f;
        if (cfg &&
            (rc = cvd_jr_check_keys(&c->r, w, p, cfg, pad ? jm_keys_zero_padding : jm_keys_cropping,
                                    1, L->cls_name)) < 0)
            return rc;
        if (pad && (rc = jm_layer_format(c, L, &f)) < 0)
            return rc;
        if (!pad && c->df == CVD_CHANNELS_FIRST)
            return jm_axis1(c, L);
        if ((rc = jm_pair(c, L, pad ? "padding" : "cropping", 1, &a, &b)) < 0)
            return rc;
        id = cvd_model_add_pad_crop(c->m, L->name, L->nop, a, b, in, &c->e);
        break;
    }
    case JM_UPSAMPLING:
        if (cfg &&
            (rc = cvd_jr_check_keys(&c->r, w, p, cfg, jm_keys_upsampling, 1, L->cls_name)) < 0)
            return rc;
        if (c->df == CVD_CHANNELS_FIRST)
            return jm_axis1(c, L);
        if ((rc = cvd_jr_int(&c->r, w, p, cfg, "size", CVD_JR_LIST1, 2, 1, 1 << 16, &v)) < 0)
            return rc;
        id = cvd_model_add_upsampling(c->m, L->name, (int)v, in, &c->e);
        break;
    case JM_POOL: {
        long long k, st;
        const char *ps;
        cvd_padding pad;
        cvd_data_format f;
        if (cfg && (rc = cvd_jr_check_keys(&c->r, w, p, cfg, jm_keys_pool, 1, L->cls_name)) < 0)
            return rc;
        if ((rc = jm_layer_format(c, L, &f)) < 0 ||
            (rc = cvd_jr_int(&c->r, w, p, cfg, "pool_size", CVD_JR_LIST1, 2, 1, 1 << 20, &k)) < 0 ||
            (rc = cvd_jr_int(&c->r, w, p, cfg, "strides", CVD_JR_LIST1 | CVD_JR_NULLDEF, k, 1,
                             1 << 20, &st)) < 0 ||
            (rc = cvd_jr_str(&c->r, w, p, cfg, "padding", 0, "valid", &ps)) < 0)
            return rc;
        if (cvd_padding_parse(ps, &pad, &c->e) < 0 || pad == CVD_PAD_CAUSAL) {
            if (pad == CVD_PAD_CAUSAL)
                cvd_err_set(&c->e, CVD_EINVAL, "padding='%s': pooling takes valid or same", ps);
            return cvd_jr_lib(&c->r, CVD_EINVAL, w, p);
        }
        id = cvd_model_add_pooling(c->m, L->name, L->nop, (int)k, (int)st, pad, in, &c->e);
        break;
    }
    case JM_GLOBAL_POOL: {
        int keep;
        cvd_data_format f;
        if (cfg &&
            (rc = cvd_jr_check_keys(&c->r, w, p, cfg, jm_keys_global_pool, 1, L->cls_name)) < 0)
            return rc;
        if ((rc = jm_layer_format(c, L, &f)) < 0 ||
            (rc = cvd_jr_bool(&c->r, w, p, cfg, "keepdims", 0, &keep)) < 0)
            return rc;
        if (c->in_steps <= 0)
            return cvd_jr_bad(&c->r, CVD_EUNSUPPORTED, w, "class_name", NULL,
                              "%s pools over the whole window, but the model's input has no fixed "
                              "length (give the InputLayer its steps)",
                              L->cls_name);
        id = cvd_model_add_global_pooling(c->m, L->name, L->nop, keep, in, &c->e);
        break;
    }
    case JM_FLATTEN: {
        const char *fs;
        cvd_data_format f;
        if (cfg && (rc = cvd_jr_check_keys(&c->r, w, p, cfg, jm_keys_flatten, 1, L->cls_name)) < 0)
            return rc;
        if ((rc = cvd_jr_str(&c->r, w, p, cfg, "data_format", CVD_JR_NULLDEF, "channels_last",
                             &fs)) < 0)
            return rc;
        if (cvd_data_format_parse(fs, &f, &c->e) < 0)
            return cvd_jr_lib(&c->r, CVD_EINVAL, w, p);
        if (c->in_steps <= 0 && cvd_model_node_rank(c->m, in) == 2)
            return cvd_jr_bad(&c->r, CVD_EUNSUPPORTED, w, "class_name", NULL,
                              "Flatten flattens the whole window, but the model's input has no "
                              "fixed length (give the InputLayer its steps)");
        id = cvd_model_add_flatten(c->m, L->name, f, in, &c->e);
        break;
    }
    case JM_RESHAPE: {
        json_t *ts = cfg ? json_object_get(cfg, "target_shape") : NULL;
        long dims[2];
        if (cfg && (rc = cvd_jr_check_keys(&c->r, w, p, cfg, jm_keys_reshape, 1, L->cls_name)) < 0)
            return rc;
        if (ts == NULL)
            return cvd_jr_bad(&c->r, CVD_EFORMAT, w, "config.target_shape", NULL,
                              "missing (required)");
        if (!json_is_array(ts) || json_array_size(ts) < 1 || json_array_size(ts) > 2)
            return cvd_jr_bad(&c->r, CVD_EUNSUPPORTED, w, "config.target_shape", ts,
                              "must be a list of 1 or 2 sizes (convd's tensors are vectors or "
                              "(steps, channels))");
        for (size_t k = 0; k < json_array_size(ts); k++) {
            json_t *x = json_array_get(ts, k);
            if (!json_is_integer(x) && !json_is_null(x))
                return cvd_jr_bad(&c->r, CVD_EFORMAT, w, "config.target_shape", ts,
                                  "entries must be integers");
            dims[k] = json_is_null(x) ? -1 : (long)json_integer_value(x);
        }
        if (c->in_steps <= 0)
            return cvd_jr_bad(&c->r, CVD_EUNSUPPORTED, w, "class_name", NULL,
                              "Reshape reshapes the whole window, but the model's input has no "
                              "fixed length (give the InputLayer its steps)");
        id = cvd_model_add_reshape(c->m, L->name, (int)json_array_size(ts), dims, in, &c->e);
        break;
    }
    case JM_PERMUTE: {
        json_t *dv = cfg ? json_object_get(cfg, "dims") : NULL;
        if (cfg && (rc = cvd_jr_check_keys(&c->r, w, p, cfg, jm_keys_permute, 1, L->cls_name)) < 0)
            return rc;
        if (!json_is_array(dv) || json_array_size(dv) != 2 ||
            !json_is_integer(json_array_get(dv, 0)) || !json_is_integer(json_array_get(dv, 1)))
            return cvd_jr_bad(&c->r, CVD_EUNSUPPORTED, w, "config.dims", dv,
                              "must be [1, 2] or [2, 1] (a tensor of steps and channels)");
        const long long a = json_integer_value(json_array_get(dv, 0)),
                        b = json_integer_value(json_array_get(dv, 1));
        if (!((a == 1 && b == 2) || (a == 2 && b == 1)))
            return cvd_jr_bad(&c->r, CVD_EINVAL, w, "config.dims", dv, "must be [1, 2] or [2, 1]");
        if (a == 2 && c->in_steps <= 0)
            return cvd_jr_bad(&c->r, CVD_EUNSUPPORTED, w, "config.dims", dv,
                              "swaps time and channels: it needs the whole window, but the "
                              "model's input has no fixed length (give the InputLayer its steps)");
        id = cvd_model_add_permute(c->m, L->name, a == 2, in, &c->e);
        break;
    }
    default:
        (void)none;
        return cvd_jr_bad(&c->r, CVD_EINVAL, w, "", NULL, "internal error: layer kind %d",
                          (int)L->op);
    }
    if (id < 0)
        return cvd_jr_lib(&c->r, id, w, "");
    L->node = id;
    return CVD_OK;
}

/* ---- WaveNet -------------------------------------------------------------------------------- */

/* The WaveNet config (the shorthand's object or a layer's config) for `in_ch` channels in: one
 * layer array, or {"arrays": [...], "prewarm"}. */
static int jm_wn_config(jm_ctx *c, const jm_layer *L, int in_ch, cvd_wn_config *wn)
{
    static const char *const keys[] = {"arrays", "prewarm", NULL};
    json_t *obj = L->config, *arrays, *objs[CVD_WN_MAX_ARRAYS];
    const char *w = L->where, *p = L->cfgp;
    char sub[256];
    int rc;
    memset(wn, 0, sizeof *wn);
    if (obj == NULL)
        return cvd_jr_bad(&c->r, CVD_EFORMAT, w, "config", NULL, "missing (the WaveNet's arrays)");
    if ((rc = cvd_jr_bool(&c->r, w, p, obj, "prewarm", 0, &wn->prewarm)) < 0)
        return rc;
    arrays = json_object_get(obj, "arrays");
    if (arrays == NULL) {
        wn->n_arrays = 1;
        objs[0] = obj;
        if ((rc = cvd_wn_json_array(&c->r, CVD_WN_CONVD, w, p, obj, 1, &wn->arrays[0])) < 0)
            return rc;
        return cvd_wn_json_finish(&c->r, w, p, NULL, objs, in_ch, wn);
    }
    if ((rc = cvd_jr_check_keys(&c->r, w, p, obj, keys, 0,
                                "a WaveNet with \"arrays\" (array keys go in each array)")) < 0)
        return rc;
    cvd_jr_key(sub, sizeof sub, p, "arrays");
    if (!json_is_array(arrays) || json_array_size(arrays) == 0)
        return cvd_jr_bad(&c->r, CVD_EFORMAT, w, sub, arrays,
                          "must be a non-empty list of layer arrays");
    if (json_array_size(arrays) > CVD_WN_MAX_ARRAYS)
        return cvd_jr_bad(&c->r, CVD_EINVAL, w, sub, arrays, "%zu layer arrays: at most %d",
                          json_array_size(arrays), CVD_WN_MAX_ARRAYS);
    wn->n_arrays = (int)json_array_size(arrays);
    for (int i = 0; i < wn->n_arrays; i++) {
        char ap[300];
        snprintf(ap, sizeof ap, "%s[%d]", sub, i);
        objs[i] = json_array_get(arrays, (size_t)i);
        rc = cvd_wn_json_array(&c->r, CVD_WN_CONVD, w, ap, objs[i], 0, &wn->arrays[i]);
        if (rc < 0)
            return rc;
    }
    return cvd_wn_json_finish(&c->r, w, p, sub, objs, in_ch, wn);
}

int jm_add_wavenet(jm_ctx *c, jm_layer *L)
{
    cvd_wn_config *wn;
    int rc, id, in;
    if ((rc = jm_one_input(c, L)) < 0)
        return rc;
    wn = malloc(sizeof *wn); /* about 230 kB */
    if (wn == NULL)
        return cvd_err_set(&c->e, CVD_ENOMEM, "%s: out of memory", c->file);
    in = jm_in_node(c, L, 0);
    rc = jm_wn_config(c, L, cvd_model_node_channels(c->m, in), wn);
    if (rc == CVD_OK) {
        id = cvd_model_add_wavenet(c->m, L->name, wn, in, &c->e);
        if (id < 0)
            rc = cvd_jr_lib(&c->r, id, L->where, L->cfgp);
        else
            L->node = id;
    }
    free(wn);
    return rc;
}

/* ---- weights ---------------------------------------------------------------------------- */

void jm_shape_text(const int *shape, int rank, char *buf, size_t n)
{
    if (rank == 1)
        snprintf(buf, n, "(%d,)", shape[0]);
    else if (rank == 2)
        snprintf(buf, n, "(%d, %d)", shape[0], shape[1]);
    else
        snprintf(buf, n, "(%d, %d, %d)", shape[0], shape[1], shape[2]);
}

/* Nested arrays of exactly `shape` into out (C order). */
static int jm_nested(jm_ctx *c, const char *where, const char *sub, json_t *v, const int *shape,
                     int rank, float **out)
{
    char esub[300];
    if (rank == 0) {
        int rc = cvd_jr_float(&c->r, where, sub, v, *out);
        (*out)++;
        return rc;
    }
    if (!json_is_array(v) || json_array_size(v) != (size_t)shape[0])
        return cvd_jr_bad(&c->r, CVD_EINVAL, where, sub, v,
                          "must be a list of %d (the shape's next "
                          "dimension)",
                          shape[0]);
    for (int i = 0; i < shape[0]; i++) {
        snprintf(esub, sizeof esub, "%s[%d]", sub, i);
        int rc = jm_nested(c, where, esub, json_array_get(v, (size_t)i), shape + 1, rank - 1, out);
        if (rc < 0)
            return rc;
    }
    return CVD_OK;
}

/* One variable given inline: flat (C order) or nested in its shape. */
static int jm_inline_var(jm_ctx *c, const jm_layer *L, const char *sub, json_t *v, int var)
{
    int shape[3] = {0, 0, 0}, rank, rc = CVD_OK;
    size_t n = cvd_model_var_size(c->m, L->node, var);
    char st[64], esub[300];
    float *buf, *pos;
    rank = cvd_model_var_shape(c->m, L->node, var, shape);
    jm_shape_text(shape, rank, st, sizeof st);
    if (!json_is_array(v))
        return cvd_jr_bad(&c->r, CVD_EFORMAT, L->where, sub, v,
                          "must be a list of numbers (variable %d, shape %s)", var, st);
    buf = malloc(sizeof(float) * (n ? n : 1));
    if (buf == NULL)
        return cvd_err_set(&c->e, CVD_ENOMEM, "%s: out of memory", c->file);
    if (json_array_size(v) > 0 && json_is_array(json_array_get(v, 0)) && rank > 1) {
        pos = buf;
        rc = jm_nested(c, L->where, sub, v, shape, rank, &pos);
    } else if (json_array_size(v) != n) {
        rc = cvd_jr_bad(&c->r, CVD_EINVAL, L->where, sub, v,
                        "%zu values, but variable %d has shape %s: %zu values", json_array_size(v),
                        var, st, n);
    } else {
        for (size_t i = 0; i < n && rc == CVD_OK; i++) {
            snprintf(esub, sizeof esub, "%s[%zu]", sub, i);
            rc = cvd_jr_float(&c->r, L->where, esub, json_array_get(v, i), &buf[i]);
        }
    }
    if (rc == CVD_OK && cvd_model_set_var(c->m, L->node, var, buf, n, &c->e) < 0)
        rc = cvd_jr_lib(&c->r, CVD_EINVAL, L->where, sub);
    free(buf);
    return rc;
}

int jm_inline_weights(jm_ctx *c, const jm_layer *L)
{
    json_t *w = L->weights;
    int nv = L->node > 0 ? cvd_model_var_count(c->m, L->node) : 0, rc;
    char sub[32];
    if (w == NULL)
        return CVD_OK;
    if (!json_is_array(w))
        return cvd_jr_bad(&c->r, CVD_EFORMAT, L->where, "weights", w,
                          "must be a list with one array per variable");
    if (nv == 0) {
        if (json_array_size(w) == 0)
            return CVD_OK;
        return cvd_jr_bad(&c->r, CVD_EINVAL, L->where, "weights", w, "%s has no weights",
                          L->cls_name);
    }
    /* a WaveNet's one variable may be given flat, without the enclosing list */
    if (L->op == JM_WAVENET && !(json_array_size(w) == 1 && json_is_array(json_array_get(w, 0))))
        return jm_inline_var(c, L, "weights", w, 0);
    if (json_array_size(w) != (size_t)nv) {
        char shapes[256] = "";
        size_t len = 0;
        for (int k = 0; k < nv && len < sizeof shapes; k++) {
            int shape[3];
            char st[64];
            int rank = cvd_model_var_shape(c->m, L->node, k, shape);
            jm_shape_text(shape, rank, st, sizeof st);
            len += (size_t)snprintf(shapes + len, sizeof shapes - len, "%s%s", k ? ", " : "", st);
        }
        return cvd_jr_bad(&c->r, CVD_EINVAL, L->where, "weights", w,
                          "%zu variables given, %s has %d: %s", json_array_size(w), L->cls_name, nv,
                          shapes);
    }
    for (int k = 0; k < nv; k++) {
        snprintf(sub, sizeof sub, "weights[%d]", k);
        if ((rc = jm_inline_var(c, L, sub, json_array_get(w, (size_t)k), k)) < 0)
            return rc;
    }
    return CVD_OK;
}
