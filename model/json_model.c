/* SPDX-License-Identifier: Apache-2.0 */
/*
 * convd's own model JSON (docs/MODEL_FORMAT.md) into a cvd_model.
 *
 * A file lists layers in Keras's vocabulary (class_name, and a config with Keras's keys),
 * wired together by name, or holds the WaveNet shorthand. Loading runs in passes over the
 * parsed JSON: layer names, inputs, a topological order (layers may be listed in any
 * order), then the nodes are added to the model inputs-first, every weight is seeded, and
 * the weights given inline or in a safetensors file are set over the seeded ones.
 *
 * The file's parts: this file reads the top level and the layer list, resolves the wiring and
 * builds (passes 1, 2 and the whole); json_layers.c turns each layer into nodes (pass 3) and
 * sets inline weights; safetensors.c reads a weights file; the WaveNet config is
 * wavenet_json.c's, shared with .nam files.
 *
 * Every refusal reads "FILE: PATH: reason", PATH naming the value at fault and the value
 * itself, e.g. "drive.json: layers[2] (c1): config.strides=0: must be >= 1"; when the dsp
 * library refuses, its own message follows the path.
 */
#include "convd_model.h"
#include "json_model.h"

#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

/* ---- the classes a layer may name ------------------------------------------------------ */

typedef struct jm_class {
    const char *name; /* class_name */
    const char *stem; /* Keras's default layer name */
    jm_op op;
    cvd_node_op node;
} jm_class;

static const jm_class jm_classes[] = {
    {"Dense", "dense", JM_DENSE, CVD_NODE_DENSE},
    {"Activation", "activation", JM_ACTIVATION, CVD_NODE_ACTIVATION},
    {"Add", "add", JM_MERGE, CVD_NODE_ADD},
    {"Subtract", "subtract", JM_MERGE, CVD_NODE_SUBTRACT},
    {"Multiply", "multiply", JM_MERGE, CVD_NODE_MULTIPLY},
    {"Average", "average", JM_MERGE, CVD_NODE_AVERAGE},
    {"Maximum", "maximum", JM_MERGE, CVD_NODE_MAXIMUM},
    {"Minimum", "minimum", JM_MERGE, CVD_NODE_MINIMUM},
    {"Concatenate", "concatenate", JM_MERGE, CVD_NODE_CONCATENATE},
    {"Identity", "identity", JM_MERGE, CVD_NODE_IDENTITY},
    {"InputLayer", "input_layer", JM_INPUT, CVD_NODE_INPUT},
    {"WaveNet", "wavenet", JM_WAVENET, CVD_NODE_WAVENET},
    {"Dropout", "dropout", JM_IDENTITY, CVD_NODE_IDENTITY},
    {"SpatialDropout1D", "spatial_dropout1d", JM_IDENTITY, CVD_NODE_IDENTITY},
    {"GaussianNoise", "gaussian_noise", JM_IDENTITY, CVD_NODE_IDENTITY},
    {"GaussianDropout", "gaussian_dropout", JM_IDENTITY, CVD_NODE_IDENTITY},
    {"AlphaDropout", "alpha_dropout", JM_IDENTITY, CVD_NODE_IDENTITY},
    {"ActivityRegularization", "activity_regularization", JM_IDENTITY, CVD_NODE_IDENTITY},
    {"BatchNormalization", "batch_normalization", JM_BATCH_NORM, CVD_NODE_BATCH_NORM},
    {"LayerNormalization", "layer_normalization", JM_LAYER_NORM, CVD_NODE_LAYER_NORM},
    {"Rescaling", "rescaling", JM_RESCALING, CVD_NODE_RESCALING},
    {"ZeroPadding1D", "zero_padding1d", JM_PAD_CROP, CVD_NODE_ZERO_PADDING},
    {"Cropping1D", "cropping1d", JM_PAD_CROP, CVD_NODE_CROPPING},
    {"UpSampling1D", "up_sampling1d", JM_UPSAMPLING, CVD_NODE_UPSAMPLING},
    {"MaxPooling1D", "max_pooling1d", JM_POOL, CVD_NODE_MAX_POOL},
    {"MaxPool1D", "max_pooling1d", JM_POOL, CVD_NODE_MAX_POOL},
    {"AveragePooling1D", "average_pooling1d", JM_POOL, CVD_NODE_AVG_POOL},
    {"AvgPool1D", "average_pooling1d", JM_POOL, CVD_NODE_AVG_POOL},
    {"GlobalMaxPooling1D", "global_max_pooling1d", JM_GLOBAL_POOL, CVD_NODE_GLOBAL_MAX_POOL},
    {"GlobalMaxPool1D", "global_max_pooling1d", JM_GLOBAL_POOL, CVD_NODE_GLOBAL_MAX_POOL},
    {"GlobalAveragePooling1D", "global_average_pooling1d", JM_GLOBAL_POOL,
     CVD_NODE_GLOBAL_AVG_POOL},
    {"GlobalAvgPool1D", "global_average_pooling1d", JM_GLOBAL_POOL, CVD_NODE_GLOBAL_AVG_POOL},
    {"Flatten", "flatten", JM_FLATTEN, CVD_NODE_FLATTEN},
    {"Reshape", "reshape", JM_RESHAPE, CVD_NODE_RESHAPE},
    {"Permute", "permute", JM_PERMUTE, CVD_NODE_PERMUTE},
};

/* The Keras class a name stands for (aliases: MaxPool1D is MaxPooling1D, ...), NULL if
 * convd does not know it. */
const char *cvd_json_canonical_class(const char *cls)
{
    static const char *const aliases[][2] = {
        {"Convolution1D", "Conv1D"},
        {"Convolution1DTranspose", "Conv1DTranspose"},
        {"SeparableConvolution1D", "SeparableConv1D"},
        {"MaxPool1D", "MaxPooling1D"},
        {"AvgPool1D", "AveragePooling1D"},
        {"GlobalMaxPool1D", "GlobalMaxPooling1D"},
        {"GlobalAvgPool1D", "GlobalAveragePooling1D"},
    };
    cvd_layer_kind kind;
    for (size_t i = 0; i < sizeof aliases / sizeof aliases[0]; i++)
        if (strcmp(cls, aliases[i][0]) == 0)
            return aliases[i][1];
    if (cvd_layer_kind_parse(cls, &kind) == CVD_OK)
        return cls;
    for (size_t i = 0; i < sizeof jm_classes / sizeof jm_classes[0]; i++)
        if (strcmp(cls, jm_classes[i].name) == 0)
            return jm_classes[i].name;
    return NULL;
}

static const char *const jm_conv_stems[] = {"conv1d", "conv1d_transpose", "separable_conv1d",
                                            "depthwise_conv1d"};

static const char *const jm_keys_input[] = {"batch_shape", "batch_input_shape", "shape", "sparse",
                                            "ragged",      "optional",          NULL};
static const char *const jm_keys_layer[] = {"class_name",      "name",         "config",
                                            "inputs",          "weights",      "module",
                                            "registered_name", "build_config", NULL};
static const char *const jm_keys_top[] = {
    "format",      "version",  "name",         "description", "sample_rate", "input_channels",
    "data_format", "seed",     "weights_file", "layers",      "output",      "wavenet",
    "weights",     "metadata", "input_shape",  NULL};

/* ---- pass 1: the layer list ---------------------------------------------------------------- */

/* Why a Keras class convd knows of is not supported; NULL for classes it has never heard of. */
const char *cvd_json_unsupported_reason(const char *cls)
{
    static const char *const recurrent[] = {
        "LSTM",     "GRU",     "SimpleRNN", "RNN",      "Bidirectional",  "ConvLSTM1D",
        "LSTMCell", "GRUCell", "CuDNNLSTM", "CuDNNGRU", "StackedRNNCells"};
    static const char *const models[] = {"Sequential", "Functional", "Model"};
    static const struct {
        const char *cls, *why;
    } other[] = {
        {"Lambda", "a Lambda layer runs Python code, which convd cannot run"},
        {"TimeDistributed", "TimeDistributed wrappers are not supported"},
        {"Embedding", "Embedding layers are not supported (convd's inputs are signals)"},
        {"Attention", "attention layers are not supported"},
        {"MultiHeadAttention", "attention layers are not supported"},
        {"AdditiveAttention", "attention layers are not supported"},
        {"GroupNormalization", "GroupNormalization is not supported"},
        {"UnitNormalization", "UnitNormalization is not supported"},
        {"LeakyReLU", "the LeakyReLU layer is not supported (use activation='leaky_relu')"},
        {"PReLU", "the PReLU layer is not supported"},
        {"ReLU", "the ReLU layer is not supported (use activation='relu')"},
        {"Softmax", "the Softmax layer is not supported (use activation='softmax')"},
        {"ELU", "the ELU layer is not supported (use activation='elu')"},
    };
    for (size_t i = 0; i < sizeof recurrent / sizeof recurrent[0]; i++)
        if (strcmp(cls, recurrent[i]) == 0)
            return "a recurrent layer, which convd does not run (it runs convolutional "
                   "networks: Conv1D and its family, pooling, normalisation, Dense, merges)";
    for (size_t i = 0; i < sizeof models / sizeof models[0]; i++)
        if (strcmp(cls, models[i]) == 0)
            return "a model nested in the model: not supported (save the inner model's layers "
                   "in the outer one)";
    for (size_t i = 0; i < sizeof other / sizeof other[0]; i++)
        if (strcmp(cls, other[i].cls) == 0)
            return other[i].why;
    if (strstr(cls, "2D") != NULL || strstr(cls, "3D") != NULL)
        return "a 2-D or 3-D layer: convd runs 1-D (sequence) models";
    return NULL;
}

static int jm_find_class(jm_layer *L, const char *cls)
{
    cvd_layer_kind kind;
    if (cvd_layer_kind_parse(cls, &kind) == CVD_OK) {
        L->op = JM_CONV;
        L->nop = CVD_NODE_CONV;
        L->kind = kind;
        L->stem = jm_conv_stems[kind];
        return 1;
    }
    for (size_t i = 0; i < sizeof jm_classes / sizeof jm_classes[0]; i++) {
        if (strcmp(cls, jm_classes[i].name) == 0) {
            L->op = jm_classes[i].op;
            L->nop = jm_classes[i].node;
            L->stem = jm_classes[i].stem;
            return 1;
        }
    }
    return 0;
}

static int jm_set_name(jm_ctx *c, jm_layer *L, int index, const char *name, const char *sub,
                       json_t *v)
{
    json_t *prev;
    if (name[0] == '\0')
        return cvd_jr_bad(&c->r, CVD_EFORMAT, L->where, sub, v, "a layer name must not be empty");
    if (strlen(name) > JM_MAX_NAME)
        return cvd_jr_bad(&c->r, CVD_EINVAL, L->where, sub, v, "longer than %d bytes", JM_MAX_NAME);
    if (strcmp(name, "input") == 0 && L->op != JM_INPUT)
        return cvd_jr_bad(&c->r, CVD_EINVAL, L->where, sub, v,
                          "the name 'input' is reserved for the model input");
    prev = json_object_get(c->names, name);
    if (prev != NULL)
        return cvd_jr_bad(&c->r, CVD_EINVAL, L->where, sub, v, "layers[%d] has that name already",
                          (int)json_integer_value(prev));
    if (json_object_set_new(c->names, name, json_integer(index)) != 0)
        return cvd_err_set(&c->e, CVD_ENOMEM, "%s: out of memory", c->file);
    snprintf(L->name, sizeof L->name, "%s", name);
    snprintf(L->where, sizeof L->where, "layers[%d] (%s)", index, name);
    return CVD_OK;
}

/* Class, explicit name and the JSON parts of every layer. */
static int jm_read_layers(jm_ctx *c, json_t *layers)
{
    size_t n = json_array_size(layers);
    if (n == 0)
        return cvd_jr_bad(&c->r, CVD_EFORMAT, "", "layers", layers,
                          "a model needs at least one layer");
    if (n > JM_MAX_LAYERS)
        return cvd_jr_bad(&c->r, CVD_EINVAL, "", "layers", layers, "more than %d layers",
                          JM_MAX_LAYERS);
    c->layers = calloc(n, sizeof *c->layers);
    if (c->layers == NULL)
        return cvd_err_set(&c->e, CVD_ENOMEM, "%s: out of memory", c->file);
    c->n_layers = (int)n;
    for (int i = 0; i < c->n_layers; i++) {
        jm_layer *L = &c->layers[i];
        json_t *obj = json_array_get(layers, (size_t)i), *cls, *nm;
        char sub[64];
        int rc;
        L->node = -1;
        L->obj = obj;
        L->cfgp = "config";
        snprintf(L->where, sizeof L->where, "layers[%d]", i);
        if (!json_is_object(obj))
            return cvd_jr_bad(&c->r, CVD_EFORMAT, "", L->where, obj, "a layer must be an object");
        /* the name first, so that every later message names the layer */
        L->config = json_object_get(obj, "config");
        if (L->config != NULL && json_is_null(L->config))
            L->config = NULL;
        nm = json_object_get(obj, "name");
        snprintf(sub, sizeof sub, "name");
        if (nm == NULL && json_is_object(L->config) &&
            json_is_string(json_object_get(L->config, "name"))) {
            nm = json_object_get(L->config, "name");
            snprintf(sub, sizeof sub, "config.name");
        }
        if (nm != NULL && !json_is_string(nm))
            return cvd_jr_bad(&c->r, CVD_EFORMAT, L->where, sub, nm, "must be a string");
        if (nm != NULL)
            snprintf(L->where, sizeof L->where, "layers[%d] (%.*s)", i, JM_MAX_NAME,
                     json_string_value(nm));
        rc = cvd_jr_check_keys(&c->r, L->where, "", obj, jm_keys_layer, 0, "a layer");
        if (rc < 0)
            return rc;
        cls = json_object_get(obj, "class_name");
        if (cls == NULL)
            return cvd_jr_bad(&c->r, CVD_EFORMAT, L->where, "class_name", NULL,
                              "missing (required)");
        if (!json_is_string(cls))
            return cvd_jr_bad(&c->r, CVD_EFORMAT, L->where, "class_name", cls, "must be a string");
        L->cls_name = json_string_value(cls);
        if (L->config != NULL && !json_is_object(L->config))
            return cvd_jr_bad(&c->r, CVD_EFORMAT, L->where, "config", L->config,
                              "must be an object");
        L->weights = json_object_get(obj, "weights");
        if (L->weights != NULL && json_is_null(L->weights))
            L->weights = NULL;
        if (!jm_find_class(L, L->cls_name)) {
            const char *why = cvd_json_unsupported_reason(L->cls_name);
            if (why != NULL)
                return cvd_jr_bad(&c->r, CVD_EUNSUPPORTED, L->where, "class_name", cls, "%s", why);
            return cvd_jr_bad(&c->r, CVD_EUNSUPPORTED, L->where, "class_name", cls,
                              "unknown layer class (docs/MODEL_FORMAT.md lists the Keras layers "
                              "convd reads)");
        }
        if (nm != NULL) {
            rc = jm_set_name(c, L, i, json_string_value(nm), sub, nm);
            if (rc < 0)
                return rc;
        }
    }
    /* Keras's default names for the unnamed: conv1d, conv1d_1, conv1d_2, ... per class */
    for (int i = 0; i < c->n_layers; i++) {
        jm_layer *L = &c->layers[i];
        char name[JM_MAX_NAME + 1];
        if (L->name[0] != '\0')
            continue;
        for (int k = 0;; k++) {
            if (k == 0)
                snprintf(name, sizeof name, "%s", L->stem);
            else
                snprintf(name, sizeof name, "%s_%d", L->stem, k);
            if (json_object_get(c->names, name) == NULL && strcmp(name, "input") != 0)
                break;
        }
        int rc = jm_set_name(c, L, i, name, "name", NULL);
        if (rc < 0)
            return rc;
    }
    return CVD_OK;
}

/* The WaveNet shorthand as one layer named "wavenet". */
static int jm_shorthand(jm_ctx *c, json_t *wavenet)
{
    jm_layer *L;
    if (!json_is_object(wavenet))
        return cvd_jr_bad(&c->r, CVD_EFORMAT, "", "wavenet", wavenet, "must be an object");
    c->layers = calloc(1, sizeof *c->layers);
    if (c->layers == NULL)
        return cvd_err_set(&c->e, CVD_ENOMEM, "%s: out of memory", c->file);
    c->n_layers = 1;
    L = &c->layers[0];
    L->node = -1;
    L->obj = wavenet;
    L->config = wavenet;
    L->weights = json_object_get(c->root, "weights");
    if (L->weights != NULL && json_is_null(L->weights))
        L->weights = NULL;
    L->cls_name = "WaveNet";
    L->op = JM_WAVENET;
    L->nop = CVD_NODE_WAVENET;
    L->stem = "wavenet";
    L->cfgp = "wavenet";
    snprintf(L->name, sizeof L->name, "wavenet");
    L->where[0] = '\0';
    L->n_inputs = 1;
    L->inputs = malloc(sizeof(int));
    if (L->inputs == NULL || json_object_set_new(c->names, "wavenet", json_integer(0)) != 0)
        return cvd_err_set(&c->e, CVD_ENOMEM, "%s: out of memory", c->file);
    L->inputs[0] = -1;
    return CVD_OK;
}

/* ---- pass 2: the input, the tensors' layout, the wiring ------------------------------------ */

/* Keras's shape of the model input ([batch, steps, channels], or [steps, channels] for
 * want = 2; channels first in a channels_first model): the channels and fixed steps. */
static int jm_shape(jm_ctx *c, const char *where, const char *sub, json_t *shape, size_t want)
{
    size_t rank = json_array_size(shape);
    json_t *ch;
    if (!json_is_array(shape) || rank != want)
        return cvd_jr_bad(&c->r, CVD_EFORMAT, where, sub, shape,
                          "must be a list of %zu: %s[steps or null, channels]", want,
                          want == 3 ? "[null, " : "");
    /* channels_first models: [..., channels, steps] */
    ch = json_array_get(shape, c->df == CVD_CHANNELS_FIRST ? rank - 2 : rank - 1);
    for (size_t k = 0; k < rank; k++) {
        json_t *d = json_array_get(shape, k);
        if (!json_is_null(d) && !(json_is_integer(d) && json_integer_value(d) > 0))
            return cvd_jr_bad(&c->r, CVD_EFORMAT, where, sub, shape,
                              "entries must be positive integers or null");
    }
    json_t *steps = json_array_get(shape, c->df == CVD_CHANNELS_FIRST ? rank - 1 : rank - 2);
    if (json_is_integer(steps)) {
        if (json_integer_value(steps) > (1 << 24))
            return cvd_jr_bad(&c->r, CVD_EINVAL, where, sub, shape, "%lld steps: at most %d",
                              (long long)json_integer_value(steps), 1 << 24);
        c->in_steps = (long)json_integer_value(steps);
    }
    if (json_is_integer(ch)) {
        long long v = json_integer_value(ch);
        if (v > JM_MAX_CHANNELS)
            return cvd_jr_bad(&c->r, CVD_EINVAL, where, sub, shape,
                              "%lld input channels: at most %d", v, JM_MAX_CHANNELS);
        if (c->in_channels_given && v != c->in_channels)
            return cvd_jr_bad(&c->r, CVD_EINVAL, where, sub, shape,
                              "%lld channels, but input_channels is %d", v, c->in_channels);
        c->in_channels = (int)v;
        c->in_channels_given = 1;
    }
    return CVD_OK;
}

/* The InputLayer (at most one): its shape gives the input channels. */
static int jm_input_layer(jm_ctx *c)
{
    c->input_layer = -1;
    for (int i = 0; i < c->n_layers; i++) {
        jm_layer *L = &c->layers[i];
        json_t *shape = NULL;
        const char *key = NULL;
        static const char *const shape_keys[] = {"batch_shape", "batch_input_shape", "shape"};
        int rc, flag;
        if (L->op != JM_INPUT)
            continue;
        if (c->input_layer >= 0)
            return cvd_jr_bad(&c->r, CVD_EINVAL, L->where, "class_name", NULL,
                              "a second InputLayer (%s is the first): a convd model has one input",
                              c->layers[c->input_layer].where);
        c->input_layer = i;
        if (json_object_get(L->obj, "inputs") != NULL)
            return cvd_jr_bad(&c->r, CVD_EINVAL, L->where, "inputs",
                              json_object_get(L->obj, "inputs"), "an InputLayer reads nothing");
        if (L->weights != NULL && !(json_is_array(L->weights) && json_array_size(L->weights) == 0))
            return cvd_jr_bad(&c->r, CVD_EINVAL, L->where, "weights", L->weights,
                              "an InputLayer has no weights");
        if (L->config == NULL)
            continue;
        rc =
            cvd_jr_check_keys(&c->r, L->where, "config", L->config, jm_keys_input, 1, "InputLayer");
        if (rc < 0)
            return rc;
        for (int k = 0; k < 3; k++) {
            if (json_object_get(L->config, shape_keys[k]) == NULL)
                continue;
            if (shape != NULL)
                return cvd_jr_bad(&c->r, CVD_EFORMAT, L->where, "config", NULL,
                                  "both %s and %s: give one", key, shape_keys[k]);
            shape = json_object_get(L->config, shape_keys[k]);
            key = shape_keys[k];
        }
        static const char *const false_keys[] = {"sparse", "ragged", "optional"};
        for (int k = 0; k < 3; k++) {
            char sub[64];
            snprintf(sub, sizeof sub, "config.%s", false_keys[k]);
            rc = cvd_jr_bool(&c->r, L->where, "config", L->config, false_keys[k], 0, &flag);
            if (rc < 0)
                return rc;
            if (flag)
                return cvd_jr_bad(&c->r, CVD_EUNSUPPORTED, L->where, sub, json_true(),
                                  "not supported: the input is a dense sequence");
        }
        if (shape != NULL && !json_is_null(shape)) {
            char sub[64];
            snprintf(sub, sizeof sub, "config.%s", key);
            rc = jm_shape(c, L->where, sub, shape, strcmp(key, "shape") == 0 ? 2 : 3);
            if (rc < 0)
                return rc;
        }
    }
    /* a model without an InputLayer may give Keras's batch shape at the top */
    json_t *top = json_object_get(c->root, "input_shape");
    if (top != NULL && c->input_layer >= 0)
        return cvd_jr_bad(&c->r, CVD_EFORMAT, "", "input_shape", top,
                          "the InputLayer (%s) gives the input's shape: give it once",
                          c->layers[c->input_layer].where);
    if (top != NULL && !json_is_null(top)) {
        int rc = jm_shape(c, "", "input_shape", top, 3);
        if (rc < 0)
            return rc;
    }
    return CVD_OK;
}

/* The layout of the model's tensors in Keras's terms: the top-level data_format, else that
 * of the first convolution that states one. Keras would read time as channels across a
 * layer of the other layout, which convd cannot do: all must agree. */
static int jm_data_format(jm_ctx *c)
{
    const char *s;
    int rc = cvd_jr_str(&c->r, "", "", c->root, "data_format", CVD_JR_NULLDEF, NULL, &s);
    if (rc < 0)
        return rc;
    c->df = CVD_CHANNELS_LAST;
    c->df_from = NULL;
    if (s != NULL) {
        if (cvd_data_format_parse(s, &c->df, &c->e) < 0)
            return cvd_jr_lib(&c->r, CVD_EINVAL, "", "");
        c->df_from = "the top-level data_format";
        c->df_top = 1;
        return CVD_OK;
    }
    for (int i = 0; i < c->n_layers; i++) {
        const jm_layer *L = &c->layers[i];
        json_t *v = L->config ? json_object_get(L->config, "data_format") : NULL;
        cvd_data_format f;
        if ((L->op != JM_CONV && L->op != JM_POOL && L->op != JM_GLOBAL_POOL &&
             L->op != JM_PAD_CROP) ||
            !json_is_string(v) || cvd_data_format_parse(json_string_value(v), &f, NULL) < 0)
            continue;
        c->df = f;
        c->df_from = L->where;
        return CVD_OK;
    }
    return CVD_OK;
}

/* Each layer's inputs as layer indices (-1: the model input). */
static int jm_resolve_inputs(jm_ctx *c)
{
    for (int i = 0; i < c->n_layers; i++) {
        jm_layer *L = &c->layers[i];
        json_t *in = json_object_get(L->obj, "inputs");
        size_t n;
        if (L->op == JM_INPUT || L->inputs != NULL)
            continue;
        if (in == NULL || json_is_null(in)) {
            /* a Sequential chain: the layer listed before, or the model input */
            L->n_inputs = 1;
            L->inputs = malloc(sizeof(int));
            if (L->inputs == NULL)
                return cvd_err_set(&c->e, CVD_ENOMEM, "%s: out of memory", c->file);
            L->inputs[0] = i == 0 || c->layers[i - 1].op == JM_INPUT ? -1 : i - 1;
            continue;
        }
        if (json_is_string(in)) {
            n = 1;
        } else if (json_is_array(in)) {
            n = json_array_size(in);
            if (n == 0)
                return cvd_jr_bad(&c->r, CVD_EFORMAT, L->where, "inputs", in,
                                  "must name at least one layer");
            if (n > JM_MAX_INPUTS)
                return cvd_jr_bad(&c->r, CVD_EINVAL, L->where, "inputs", in,
                                  "%zu inputs: at most %d", n, JM_MAX_INPUTS);
        } else {
            return cvd_jr_bad(&c->r, CVD_EFORMAT, L->where, "inputs", in,
                              "must be a layer name or a list of layer names");
        }
        L->n_inputs = (int)n;
        L->inputs = malloc(sizeof(int) * n);
        if (L->inputs == NULL)
            return cvd_err_set(&c->e, CVD_ENOMEM, "%s: out of memory", c->file);
        for (size_t k = 0; k < n; k++) {
            json_t *v = json_is_string(in) ? in : json_array_get(in, k), *idx;
            char sub[32];
            snprintf(sub, sizeof sub, json_is_string(in) ? "inputs" : "inputs[%zu]", k);
            if (!json_is_string(v))
                return cvd_jr_bad(&c->r, CVD_EFORMAT, L->where, sub, v, "must be a layer name");
            if (strcmp(json_string_value(v), "input") == 0) {
                L->inputs[k] = -1;
                continue;
            }
            idx = json_object_get(c->names, json_string_value(v));
            if (idx == NULL)
                return cvd_jr_bad(&c->r, CVD_EINVAL, L->where, sub, v,
                                  "no layer has that name (the model input is 'input')");
            L->inputs[k] = (int)json_integer_value(idx);
            if (c->layers[L->inputs[k]].op == JM_INPUT)
                L->inputs[k] = -1;
        }
    }
    return CVD_OK;
}

/* The input entry of layer u that names layer v, for messages: its path and value. */
static json_t *jm_input_sub(const jm_ctx *c, int u, int v, char *sub, size_t n)
{
    json_t *in = json_object_get(c->layers[u].obj, "inputs");
    snprintf(sub, n, "inputs");
    if (json_is_array(in))
        for (int k = 0; k < c->layers[u].n_inputs; k++)
            if (c->layers[u].inputs[k] == v) {
                snprintf(sub, n, "inputs[%d]", k);
                return json_array_get(in, (size_t)k);
            }
    return in;
}

/* Depth-first, inputs before the layers that read them, in listing order; refuses cycles. */
static int jm_toposort(jm_ctx *c)
{
    int *stack = malloc(sizeof(int) * (size_t)c->n_layers * 2);
    c->order = malloc(sizeof(int) * (size_t)c->n_layers);
    if (stack == NULL || c->order == NULL) {
        free(stack);
        return cvd_err_set(&c->e, CVD_ENOMEM, "%s: out of memory", c->file);
    }
    c->n_order = 0;
    for (int s = 0; s < c->n_layers; s++) {
        int top = 0;
        if (c->layers[s].state != 0)
            continue;
        stack[0] = s;
        stack[1] = 0;
        c->layers[s].state = 1;
        top = 1;
        while (top > 0) {
            int u = stack[2 * (top - 1)], *k = &stack[2 * (top - 1) + 1];
            jm_layer *U = &c->layers[u];
            if (*k < U->n_inputs) {
                int v = U->inputs[(*k)++];
                if (v < 0 || c->layers[v].state == 2)
                    continue;
                if (c->layers[v].state == 1) {
                    /* the stack from v up to u reads v -> ... -> u -> v backwards */
                    char cyc[CVD_ERR_MSG_MAX], sub[32];
                    size_t len = 0;
                    int from = top - 1;
                    while (stack[2 * from] != v)
                        from--;
                    len += (size_t)snprintf(cyc + len, sizeof cyc - len, "%s", c->layers[v].name);
                    for (int j = top - 1; j >= from && len < sizeof cyc; j--)
                        len += (size_t)snprintf(cyc + len, sizeof cyc - len, " -> %s",
                                                c->layers[stack[2 * j]].name);
                    json_t *val = jm_input_sub(c, u, v, sub, sizeof sub);
                    free(stack);
                    return cvd_jr_bad(&c->r, CVD_EINVAL, U->where, sub, val, "a cycle: %s", cyc);
                }
                c->layers[v].state = 1;
                stack[2 * top] = v;
                stack[2 * top + 1] = 0;
                top++;
            } else {
                U->state = 2;
                c->order[c->n_order++] = u;
                top--;
            }
        }
    }
    free(stack);
    return CVD_OK;
}

/* The output layer, and every layer it depends on; refuses layers that feed nothing. */
static int jm_output(jm_ctx *c, int *out)
{
    const char *name;
    int o, rc;
    json_t *idx;
    if (json_object_get(c->root, "wavenet") != NULL) {
        if (json_object_get(c->root, "output") != NULL)
            return cvd_jr_bad(&c->r, CVD_EFORMAT, "", "output", json_object_get(c->root, "output"),
                              "not used with the wavenet shorthand");
        o = 0;
    } else {
        rc = cvd_jr_str(&c->r, "", "", c->root, "output", CVD_JR_NULLDEF, NULL, &name);
        if (rc < 0)
            return rc;
        if (name == NULL) {
            o = c->n_layers - 1;
        } else {
            idx = json_object_get(c->names, name);
            if (idx == NULL)
                return cvd_jr_bad(&c->r, CVD_EINVAL, "", "output",
                                  json_object_get(c->root, "output"), "no layer has that name");
            o = (int)json_integer_value(idx);
        }
        if (c->layers[o].op == JM_INPUT)
            return cvd_jr_bad(&c->r, CVD_EINVAL, "", "output", json_object_get(c->root, "output"),
                              "%s is the model input: the output must be a layer that computes",
                              c->layers[o].where);
    }
    /* reverse topological order: a layer is used if a used layer reads it */
    c->layers[o].used = 1;
    for (int j = c->n_order - 1; j >= 0; j--) {
        const jm_layer *L = &c->layers[c->order[j]];
        if (!L->used)
            continue;
        for (int k = 0; k < L->n_inputs; k++)
            if (L->inputs[k] >= 0)
                c->layers[L->inputs[k]].used = 1;
    }
    for (int i = 0; i < c->n_layers; i++)
        if (!c->layers[i].used && c->layers[i].op != JM_INPUT)
            return cvd_jr_bad(&c->r, CVD_EINVAL, c->layers[i].where, "", NULL,
                              "the output '%s' does not depend on this layer (wire it in, or "
                              "remove it)",
                              c->layers[o].name);
    *out = o;
    return CVD_OK;
}

/* ---- the whole file ------------------------------------------------------------------------ */

static int jm_top(jm_ctx *c, uint64_t *seed, const char **weights_file)
{
    json_t *root = c->root, *v;
    long long x;
    const char *s;
    int rc;

    if (!json_is_object(root))
        return cvd_jr_bad(&c->r, CVD_EFORMAT, "", "", NULL,
                          "the top level must be an object {\"format\": \"convd-model\", ...}");
    v = json_object_get(root, "format");
    if (v == NULL && json_is_string(json_object_get(root, "class_name")) &&
        json_object_get(root, "config") != NULL)
        return cvd_jr_bad(&c->r, CVD_EFORMAT, "", "class_name", json_object_get(root, "class_name"),
                          "a Keras model config (model.to_json()) without weights: give its "
                          "weights file too, as CONFIG.json+WEIGHTS.h5 (or convd-run --weights)");
    if (v == NULL)
        return cvd_jr_bad(&c->r, CVD_EFORMAT, "", "format", NULL,
                          "missing: a convd model file starts {\"format\": \"convd-model\", "
                          "\"version\": 1, ...}");
    if (!json_is_string(v) || strcmp(json_string_value(v), JM_FORMAT) != 0)
        return cvd_jr_bad(&c->r, CVD_EFORMAT, "", "format", v, "must be \"%s\"", JM_FORMAT);
    v = json_object_get(root, "version");
    if (v == NULL)
        return cvd_jr_bad(&c->r, CVD_EFORMAT, "", "version", NULL, "missing (required: %d)",
                          JM_VERSION);
    if (!json_is_integer(v) || json_integer_value(v) != JM_VERSION)
        return cvd_jr_bad(&c->r, CVD_EUNSUPPORTED, "", "version", v,
                          "this convd reads version %d only", JM_VERSION);
    if ((rc = cvd_jr_check_keys(&c->r, "", "", root, jm_keys_top, 0, "a convd model file")) < 0)
        return rc;
    if ((rc = cvd_jr_str(&c->r, "", "", root, "name", CVD_JR_NULLDEF, NULL, &s)) < 0)
        return rc;
    if ((rc = cvd_jr_str(&c->r, "", "", root, "description", CVD_JR_NULLDEF, NULL, &s)) < 0)
        return rc;
    v = json_object_get(root, "sample_rate");
    if (v != NULL && !json_is_null(v) &&
        !(json_is_number(v) && json_number_value(v) > 0 && json_number_value(v) < 1e9))
        return cvd_jr_bad(&c->r, CVD_EINVAL, "", "sample_rate", v,
                          "must be a positive number of Hz (or null: unknown)");
    if ((rc = cvd_jr_int(&c->r, "", "", root, "input_channels", 0, 1, 1, JM_MAX_CHANNELS, &x)) < 0)
        return rc;
    c->in_channels = (int)x;
    c->in_channels_given = json_object_get(root, "input_channels") != NULL;
    if ((rc = cvd_jr_int(&c->r, "", "", root, "seed", 0, 0, 0, LLONG_MAX, &x)) < 0)
        return rc;
    *seed = (uint64_t)x;
    if ((rc = cvd_jr_str(&c->r, "", "", root, "weights_file", CVD_JR_NULLDEF, NULL, weights_file)) <
        0)
        return rc;
    if (*weights_file != NULL && (*weights_file)[0] == '\0')
        return cvd_jr_bad(&c->r, CVD_EINVAL, "", "weights_file",
                          json_object_get(root, "weights_file"), "must name a file");
    if (json_object_get(root, "layers") != NULL && json_object_get(root, "wavenet") != NULL)
        return cvd_jr_bad(&c->r, CVD_EFORMAT, "", "wavenet", NULL,
                          "give \"layers\" or the \"wavenet\" shorthand, not both");
    if (json_object_get(root, "weights") != NULL && json_object_get(root, "wavenet") == NULL)
        return cvd_jr_bad(&c->r, CVD_EFORMAT, "", "weights", NULL,
                          "top-level weights go with the \"wavenet\" shorthand; a layer's weights "
                          "go in the layer");
    return CVD_OK;
}

static int jm_build(jm_ctx *c)
{
    uint64_t seed = 0;
    const char *wf = NULL, *s;
    json_t *layers;
    int rc, out = 0;

    if ((rc = jm_top(c, &seed, &wf)) < 0)
        return rc;
    c->names = json_object();
    if (c->names == NULL)
        return cvd_err_set(&c->e, CVD_ENOMEM, "%s: out of memory", c->file);
    layers = json_object_get(c->root, "layers");
    if (layers != NULL) {
        if (!json_is_array(layers))
            return cvd_jr_bad(&c->r, CVD_EFORMAT, "", "layers", layers, "must be a list of layers");
        rc = jm_read_layers(c, layers);
    } else if (json_object_get(c->root, "wavenet") != NULL) {
        rc = jm_shorthand(c, json_object_get(c->root, "wavenet"));
    } else {
        rc = cvd_jr_bad(&c->r, CVD_EFORMAT, "", "layers", NULL,
                        "missing: a model has \"layers\" or the \"wavenet\" shorthand");
    }
    if (rc < 0)
        return rc;
    if ((rc = jm_data_format(c)) < 0 || (rc = jm_input_layer(c)) < 0 ||
        (rc = jm_resolve_inputs(c)) < 0 || (rc = jm_toposort(c)) < 0 ||
        (rc = jm_output(c, &out)) < 0)
        return rc;

    if ((rc = cvd_model_create(c->in_channels, &c->m, &c->e)) < 0)
        return cvd_jr_lib(&c->r, rc, "", "input_channels");
    if ((rc = cvd_model_set_data_format(c->m, c->df, &c->e)) < 0 ||
        (rc = cvd_model_set_input_length(c->m, c->in_steps, &c->e)) < 0)
        return cvd_jr_lib(&c->r, rc, "", "");
    for (int j = 0; j < c->n_order; j++) {
        jm_layer *L = &c->layers[c->order[j]];
        switch (L->op) {
        case JM_INPUT:
            L->node = 0;
            rc = CVD_OK;
            break;
        case JM_CONV:
            rc = jm_add_conv(c, L);
            break;
        case JM_DENSE:
            rc = jm_add_dense(c, L);
            break;
        case JM_ACTIVATION:
            rc = jm_add_activation(c, L);
            break;
        case JM_MERGE:
            rc = jm_add_merge(c, L);
            break;
        case JM_WAVENET:
            rc = jm_add_wavenet(c, L);
            break;
        default:
            rc = jm_add_other(c, L);
            break;
        }
        if (rc < 0)
            return rc;
    }
    if ((rc = cvd_model_set_output(
             c->m, c->layers[out].last > 0 ? c->layers[out].last : c->layers[out].node, &c->e)) < 0)
        return cvd_jr_lib(&c->r, rc, "", "output");

    /* every weight seeded first, then what the file gives */
    cvd_model_init_weights(c->m, seed);
    for (int i = 0; i < c->n_layers; i++)
        if (c->layers[i].op != JM_INPUT && (rc = jm_inline_weights(c, &c->layers[i])) < 0)
            return rc;
    if (wf != NULL && (rc = jm_safetensors(c, wf)) < 0)
        return rc;

    json_t *sr = json_object_get(c->root, "sample_rate");
    if (json_is_number(sr))
        cvd_model_set_sample_rate(c->m, json_number_value(sr));
    s = json_string_value(json_object_get(c->root, "description"));
    if (s == NULL)
        s = json_string_value(json_object_get(c->root, "name"));
    if (s != NULL && cvd_model_set_description(c->m, s) < 0)
        return cvd_err_set(&c->e, CVD_ENOMEM, "%s: out of memory", c->file);
    return CVD_OK;
}

/* Builds from c->root (set by the caller) into *out; frees everything but the root. */
static int jm_run(jm_ctx *c, int rc, cvd_model **out, cvd_err *err);

int cvd_json_model_build(json_t *root, const char *file, const char *dir, cvd_model **out,
                         cvd_err *err)
{
    jm_ctx c;
    memset(&c, 0, sizeof c);
    c.file = file ? file : "(model json)";
    c.r.file = c.file;
    c.r.err = &c.e;
    c.dir = dir;
    c.input_layer = -1;
    if (out == NULL)
        return cvd_err_set(err, CVD_EINVAL, "%s: no place for the model (out is NULL)", c.file);
    *out = NULL;
    c.root = json_incref(root);
    return jm_run(&c, jm_build(&c), out, err);
}

int cvd_json_model_parse(const char *text, size_t len, const char *name, const char *dir,
                         cvd_model **out, cvd_err *err)
{
    jm_ctx c;
    json_error_t je;
    int rc;

    memset(&c, 0, sizeof c);
    c.file = name ? name : "(model json)";
    c.r.file = c.file;
    c.r.err = &c.e;
    c.dir = dir;
    c.input_layer = -1;
    if (out == NULL)
        return cvd_err_set(err, CVD_EINVAL, "%s: no place for the model (out is NULL)", c.file);
    *out = NULL;
    if (text == NULL) {
        rc = cvd_err_set(&c.e, CVD_EINVAL, "%s: no text", c.file);
        return jm_run(&c, rc, out, err);
    }
    c.root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    if (c.root == NULL) {
        rc = cvd_err_set(&c.e, CVD_EFORMAT, "%s: line %d, column %d: invalid JSON: %s", c.file,
                         je.line, je.column, je.text);
        return jm_run(&c, rc, out, err);
    }
    return jm_run(&c, jm_build(&c), out, err);
}

static int jm_run(jm_ctx *cp, int rc, cvd_model **out, cvd_err *err)
{
    jm_ctx c = *cp;
    if (rc < 0) {
        cvd_model_unref(c.m);
        c.m = NULL;
        if (c.e.code == 0)
            cvd_err_set(&c.e, rc, "%s: %s", c.file, cvd_strerror(rc));
    }
    for (int i = 0; i < c.n_layers; i++)
        free(c.layers[i].inputs);
    free(c.layers);
    free(c.order);
    json_decref(c.names);
    json_decref(c.root);
    *out = c.m;
    if (err != NULL) {
        if (rc < 0)
            *err = c.e;
        else
            err->code = 0;
    }
    return rc < 0 ? rc : CVD_OK;
}

int cvd_json_model_load(const char *path, cvd_model **out, cvd_err *err)
{
    size_t len = 0;
    char *text, *dir = NULL;
    const char *slash;
    int rc;

    if (out != NULL)
        *out = NULL;
    if (path == NULL)
        return cvd_err_set(err, CVD_EINVAL, "model path is NULL");
    text = cvd_model_read_file(path, SIZE_MAX, &len);
    if (text == NULL)
        return cvd_err_set(err, CVD_EIO, "%s: cannot read: %s", path, strerror(errno));
    slash = strrchr(path, '/');
    if (slash != NULL) {
        size_t n = (size_t)(slash - path);
        dir = malloc(n + 2);
        if (dir == NULL) {
            free(text);
            return cvd_err_set(err, CVD_ENOMEM, "%s: out of memory", path);
        }
        if (n == 0)
            n = 1; /* "/model.json": the root */
        memcpy(dir, path, n);
        dir[n] = '\0';
    }
    rc = cvd_json_model_parse(text, len, path, dir, out, err);
    free(dir);
    free(text);
    return rc;
}
