/*
 * convd's own model JSON (docs/MODEL_FORMAT.md) into a cvd_model.
 *
 * A file lists layers in Keras's vocabulary (class_name, and a config with Keras's keys),
 * wired together by name, or holds the WaveNet shorthand. Loading runs in passes over the
 * parsed JSON: layer names, inputs, a topological order (layers may be listed in any
 * order), then the nodes are added to the model inputs-first, every weight is seeded, and
 * the weights given inline or in a safetensors file are set over the seeded ones.
 *
 * Every refusal reads "FILE: PATH: reason", PATH naming the value at fault and the value
 * itself, e.g. "drive.json: layers[2] (c1): config.strides=0: must be >= 1"; when the dsp
 * library refuses, its own message follows the path.
 */
#include "convd_model.h"
#include "model_internal.h"

#include <errno.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>

#define JM_FORMAT "convd-model"
#define JM_VERSION 1
#define JM_MAX_LAYERS 65536
#define JM_MAX_NAME 95           /* a node name must fit the model's 96-byte field */
#define JM_MAX_CHANNELS 65536    /* channels of any tensor between layers */
#define JM_MAX_VALUES CVD_MODEL_MAX_PARAMS /* floats in one weight variable (256 MiB) */
#define JM_MAX_INPUTS 64         /* inputs of one merge (the library's limit) */
#define JM_ST_MAX_HEADER (100u << 20)

/* ---- the classes a layer may name ------------------------------------------------------ */

typedef enum jm_op {
    JM_CONV,
    JM_DENSE,
    JM_ACTIVATION,
    JM_MERGE,
    JM_INPUT,
    JM_WAVENET,
    JM_IDENTITY, /* Dropout and the other layers that do nothing at inference */
    JM_BATCH_NORM,
    JM_LAYER_NORM,
    JM_RESCALING,
    JM_PAD_CROP,
    JM_UPSAMPLING,
    JM_POOL,
    JM_GLOBAL_POOL,
    JM_FLATTEN,
    JM_RESHAPE,
    JM_PERMUTE
} jm_op;

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
static const char *const jm_keys_dropout[] = {"rate", "noise_shape", "seed", "stddev",
                                              "data_format", "l1", "l2", NULL};
static const char *const jm_keys_batch_norm[] = {
    "axis",  "momentum", "epsilon",           "center",          "scale",
    "renorm", "renorm_clipping", "renorm_momentum", "synchronized", "fused",
    "virtual_batch_size", "adjustment", NULL};
static const char *const jm_keys_layer_norm[] = {"axis", "epsilon", "center", "scale",
                                                 "rms_scaling", NULL};
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
static const char *const jm_keys_input[] = {"batch_shape", "batch_input_shape", "shape", "sparse",
                                            "ragged",      "optional",          NULL};
static const char *const jm_keys_wn_array[] = {
    "channels", "kernel_size",          "dilations",      "activation", "gated",
    "gating",   "secondary_activation", "head_size",      "head_bias",  "residual",
    "skip",     "input_size",           "condition_size", NULL};
static const char *const jm_keys_layer[] = {"class_name",      "name",         "config",
                                            "inputs",          "weights",      "module",
                                            "registered_name", "build_config", NULL};
static const char *const jm_keys_top[] = {
    "format",         "version",     "name",    "description",  "sample_rate",
    "input_channels", "data_format", "seed",    "weights_file", "layers",
    "output",         "wavenet",     "weights", "metadata",     "input_shape", NULL};

/* ---- state ----------------------------------------------------------------------------- */

typedef struct jm_layer {
    json_t *obj;
    json_t *config;  /* NULL when absent */
    json_t *weights; /* NULL when absent or null */
    const char *cls_name;
    const char *stem;
    jm_op op;
    cvd_node_op nop;
    cvd_layer_kind kind;
    char name[JM_MAX_NAME + 1];
    char where[JM_MAX_NAME + 40]; /* "layers[3] (name)"; "" for the WaveNet shorthand */
    const char *cfgp;             /* "config", or "wavenet" for the shorthand */
    int n_inputs;
    int *inputs;        /* layer indices; -1 is the model input */
    int node;           /* model node once added (the one holding the weights) */
    int last;           /* the node its readers read, when not `node` (an added activation) */
    int state;          /* topological sort: 0 new, 1 on the stack, 2 done */
    int used;           /* the output depends on it */
    unsigned from_file; /* bit per variable set from the safetensors file */
} jm_layer;

typedef struct jm_ctx {
    const char *file;
    const char *dir;
    cvd_err e;
    json_t *root;
    json_t *names; /* layer name -> index */
    int n_layers;
    jm_layer *layers;
    int *order; /* topological order, layer indices */
    int n_order;
    int input_layer; /* index of the InputLayer, or -1 */
    long in_steps;   /* the InputLayer's fixed steps, 0 if none */
    int in_channels;
    int in_channels_given;
    cvd_data_format df;
    int df_top;          /* df comes from the top-level data_format */
    const char *df_from; /* where df was decided, for messages */
    cvd_model *m;
} jm_ctx;

/* ---- messages -------------------------------------------------------------------------- */

/* Appends v to buf as a message shows it: 'text', 3, 0.5, true, null, [1, 2], and
 * "(an array of N)" for long arrays. */
static void jm_show_into(const json_t *v, char *buf, size_t n, int depth)
{
    size_t len = strlen(buf);
    char *p = buf + len;
    n -= len;
    if (n < 2)
        return;
    switch (json_typeof(v)) {
    case JSON_STRING: {
        const char *s = json_string_value(v);
        snprintf(p, n, "'%.60s%s'", s, json_string_length(v) > 60 ? "..." : "");
        break;
    }
    case JSON_INTEGER:
        snprintf(p, n, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        break;
    case JSON_REAL:
        snprintf(p, n, "%.9g", json_real_value(v));
        break;
    case JSON_TRUE:
        snprintf(p, n, "true");
        break;
    case JSON_FALSE:
        snprintf(p, n, "false");
        break;
    case JSON_NULL:
        snprintf(p, n, "null");
        break;
    case JSON_ARRAY:
        if (json_array_size(v) > 8 || depth > 3) {
            snprintf(p, n, "(an array of %zu)", json_array_size(v));
            break;
        }
        snprintf(p, n, "[");
        for (size_t i = 0; i < json_array_size(v); i++) {
            if (i > 0)
                snprintf(buf + strlen(buf), n - (strlen(buf) - len), ", ");
            jm_show_into(json_array_get(v, i), buf, n + len, depth + 1);
        }
        snprintf(buf + strlen(buf), n - (strlen(buf) - len), "]");
        break;
    case JSON_OBJECT: {
        char *d = json_dumps(v, JSON_COMPACT);
        if (d == NULL)
            snprintf(p, n, "(an object)");
        else
            snprintf(p, n, "%.60s%s", d, strlen(d) > 60 ? "..." : "");
        free(d);
        break;
    }
    }
}

static const char *jm_show(const json_t *v, char *buf, size_t n)
{
    buf[0] = '\0';
    if (v == NULL)
        snprintf(buf, n, "(missing)");
    else
        jm_show_into(v, buf, n, 0);
    return buf;
}

/* "FILE: WHERE: SUB" with the empty parts left out. */
static void jm_place(const jm_ctx *c, char *buf, size_t n, const char *where, const char *sub)
{
    snprintf(buf, n, "%s%s%s%s%s", c->file, *where ? ": " : "", where, *sub ? ": " : "", sub);
}

/* "FILE: WHERE: SUB=VALUE: reason" (no "=VALUE" when v is NULL). */
static int jm_bad(jm_ctx *c, int code, const char *where, const char *sub, const json_t *v,
                  const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 6, 7)))
#endif
    ;
static int jm_bad(jm_ctx *c, int code, const char *where, const char *sub, const json_t *v,
                  const char *fmt, ...)
{
    char place[CVD_ERR_MSG_MAX], val[200], reason[CVD_ERR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof reason, fmt, ap);
    va_end(ap);
    jm_place(c, place, sizeof place, where, sub);
    if (v != NULL)
        return cvd_err_set(&c->e, code, "%s=%s: %s", place, jm_show(v, val, sizeof val), reason);
    return cvd_err_set(&c->e, code, "%s: %s", place, reason);
}

/* The library's message (in c->e) after "FILE: WHERE: SUB". */
static int jm_lib(jm_ctx *c, int code, const char *where, const char *sub)
{
    char place[CVD_ERR_MSG_MAX];
    jm_place(c, place, sizeof place, where, sub);
    cvd_err_prefix(&c->e, "%s", place);
    c->e.code = code < 0 ? code : CVD_EINVAL;
    return c->e.code;
}

/* "path.key", or "key" at the top; cut to fit n. */
static void jm_key(char *buf, size_t n, const char *path, const char *key)
{
    size_t len = 0;
    for (const char *parts[3] = {path, *path ? "." : "", key}, **q = parts; q < parts + 3; q++)
        for (const char *s = *q; *s && len + 1 < n; s++)
            buf[len++] = *s;
    buf[len] = '\0';
}

static int jm_in_list(const char *key, const char *const *list)
{
    for (; *list; list++)
        if (strcmp(key, *list) == 0)
            return 1;
    return 0;
}

static int jm_ends_with(const char *s, const char *tail)
{
    size_t n = strlen(s), t = strlen(tail);
    return n >= t && strcmp(s + n - t, tail) == 0;
}

/* Keras keys that only matter for training: accepted and ignored. */
static int jm_training_key(const char *key)
{
    return strcmp(key, "name") == 0 || strcmp(key, "trainable") == 0 || strcmp(key, "dtype") == 0 ||
           jm_ends_with(key, "_initializer") || jm_ends_with(key, "_regularizer") ||
           jm_ends_with(key, "_constraint");
}

/* Refuses any key of obj outside `allowed` (and Keras's training-only keys if `training`). */
static int jm_check_keys(jm_ctx *c, const char *where, const char *path, json_t *obj,
                         const char *const *allowed, int training, const char *what)
{
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v)
    {
        if (jm_in_list(key, allowed) || (training && jm_training_key(key)))
            continue;
        char sub[256];
        jm_key(sub, sizeof sub, path, key);
        if (strcmp(key, "inbound_nodes") == 0)
            return jm_bad(c, CVD_EUNSUPPORTED, where, sub, NULL,
                          "not read by convd: wire layers with \"inputs\": [names]");
        return jm_bad(c, CVD_EUNSUPPORTED, where, sub, NULL, "unknown key for %s", what);
    }
    return CVD_OK;
}

/* ---- typed getters ---------------------------------------------------------------------- */

#define JM_REQ 1     /* the key must be present */
#define JM_LIST1 2   /* [k] is accepted for k (Keras writes tuples) */
#define JM_NULLDEF 4 /* null means the default */

/* An integer in [lo, hi]; *out = def when absent (or null with JM_NULLDEF). */
static int jm_int(jm_ctx *c, const char *where, const char *path, json_t *obj, const char *key,
                  int flags, long long def, long long lo, long long hi, long long *out)
{
    char sub[256];
    json_t *v = obj ? json_object_get(obj, key) : NULL, *x;
    jm_key(sub, sizeof sub, path, key);
    *out = def;
    if (v == NULL || (json_is_null(v) && (flags & JM_NULLDEF))) {
        if (flags & JM_REQ)
            return jm_bad(c, CVD_EFORMAT, where, sub, NULL, "missing (required)");
        return CVD_OK;
    }
    x = v;
    if ((flags & JM_LIST1) && json_is_array(v)) {
        if (json_array_size(v) != 1)
            return jm_bad(c, CVD_EFORMAT, where, sub, v,
                          "must be an integer or a list of one integer (a 1-D layer)");
        x = json_array_get(v, 0);
    }
    if (!json_is_integer(x))
        return jm_bad(c, CVD_EFORMAT, where, sub, v, "must be an integer");
    if (json_integer_value(x) < lo)
        return jm_bad(c, CVD_EINVAL, where, sub, v, "must be >= %lld", lo);
    if (json_integer_value(x) > hi)
        return jm_bad(c, CVD_EINVAL, where, sub, v, "must be <= %lld", hi);
    *out = json_integer_value(x);
    return CVD_OK;
}

static int jm_bool(jm_ctx *c, const char *where, const char *path, json_t *obj, const char *key,
                   int def, int *out)
{
    char sub[256];
    json_t *v = obj ? json_object_get(obj, key) : NULL;
    *out = def;
    if (v == NULL)
        return CVD_OK;
    if (!json_is_boolean(v)) {
        jm_key(sub, sizeof sub, path, key);
        return jm_bad(c, CVD_EFORMAT, where, sub, v, "must be true or false");
    }
    *out = json_is_true(v);
    return CVD_OK;
}

/* A string; *out = def when absent (or null with JM_NULLDEF). */
static int jm_str(jm_ctx *c, const char *where, const char *path, json_t *obj, const char *key,
                  int flags, const char *def, const char **out)
{
    char sub[256];
    json_t *v = obj ? json_object_get(obj, key) : NULL;
    jm_key(sub, sizeof sub, path, key);
    *out = def;
    if (v == NULL || (json_is_null(v) && (flags & JM_NULLDEF))) {
        if (flags & JM_REQ)
            return jm_bad(c, CVD_EFORMAT, where, sub, NULL, "missing (required)");
        return CVD_OK;
    }
    if (!json_is_string(v))
        return jm_bad(c, CVD_EFORMAT, where, sub, v, "must be a string");
    *out = json_string_value(v);
    return CVD_OK;
}

/* A Keras activation: a name, or null for linear. */
static int jm_activation(jm_ctx *c, const char *where, const char *path, json_t *obj,
                         const char *key, int required, cvd_activation *out)
{
    char sub[256];
    json_t *v = obj ? json_object_get(obj, key) : NULL;
    jm_key(sub, sizeof sub, path, key);
    *out = CVD_ACT_LINEAR;
    if (v == NULL) {
        if (required)
            return jm_bad(c, CVD_EFORMAT, where, sub, NULL, "missing (required)");
        return CVD_OK;
    }
    if (json_is_null(v))
        return CVD_OK;
    if (!json_is_string(v))
        return jm_bad(c, CVD_EFORMAT, where, sub, v,
                      "must be the name of a Keras activation, or null (linear)");
    if (cvd_activation_parse(json_string_value(v), out, &c->e) < 0)
        return jm_lib(c, CVD_EINVAL, where, path);
    return CVD_OK;
}

/* A float from a JSON number, refused unless finite in float32. */
static int jm_float(jm_ctx *c, const char *where, const char *sub, json_t *v, float *out)
{
    double d;
    if (!json_is_number(v))
        return jm_bad(c, CVD_EFORMAT, where, sub, v, "must be a number");
    d = json_number_value(v);
    if (!isfinite(d) || fabs(d) > FLT_MAX)
        return jm_bad(c, CVD_EINVAL, where, sub, v, "not a finite float32 value");
    *out = (float)d;
    return CVD_OK;
}

/* ---- files ------------------------------------------------------------------------------- */

/* A whole regular file in memory (NUL-terminated); NULL with errno set on failure. */
static char *jm_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    struct stat st;
    char *buf = NULL;
    if (f == NULL)
        return NULL;
    if (fstat(fileno(f), &st) != 0)
        goto fail;
    if (!S_ISREG(st.st_mode)) {
        errno = S_ISDIR(st.st_mode) ? EISDIR : EINVAL;
        goto fail;
    }
    if ((unsigned long long)st.st_size >= (unsigned long long)SIZE_MAX / 2) {
        errno = EFBIG;
        goto fail;
    }
    buf = malloc((size_t)st.st_size + 1);
    if (buf == NULL) {
        errno = ENOMEM;
        goto fail;
    }
    if (fread(buf, 1, (size_t)st.st_size, f) != (size_t)st.st_size) {
        errno = ferror(f) ? EIO : EINVAL;
        goto fail;
    }
    buf[st.st_size] = '\0';
    *len = (size_t)st.st_size;
    fclose(f);
    return buf;
fail : {
    int e = errno;
    free(buf);
    fclose(f);
    errno = e;
    return NULL;
}
}

/* ---- pass 1: the layer list ---------------------------------------------------------------- */

/* Why a Keras class convd knows of is not supported; NULL for classes it has never heard of. */
const char *cvd_json_unsupported_reason(const char *cls)
{
    static const char *const recurrent[] = {"LSTM", "GRU", "SimpleRNN", "RNN", "Bidirectional",
                                            "ConvLSTM1D", "LSTMCell", "GRUCell", "CuDNNLSTM",
                                            "CuDNNGRU", "StackedRNNCells"};
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
        return jm_bad(c, CVD_EFORMAT, L->where, sub, v, "a layer name must not be empty");
    if (strlen(name) > JM_MAX_NAME)
        return jm_bad(c, CVD_EINVAL, L->where, sub, v, "longer than %d bytes", JM_MAX_NAME);
    if (strcmp(name, "input") == 0 && L->op != JM_INPUT)
        return jm_bad(c, CVD_EINVAL, L->where, sub, v,
                      "the name 'input' is reserved for the model input");
    prev = json_object_get(c->names, name);
    if (prev != NULL)
        return jm_bad(c, CVD_EINVAL, L->where, sub, v, "layers[%d] has that name already",
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
        return jm_bad(c, CVD_EFORMAT, "", "layers", layers, "a model needs at least one layer");
    if (n > JM_MAX_LAYERS)
        return jm_bad(c, CVD_EINVAL, "", "layers", layers, "more than %d layers", JM_MAX_LAYERS);
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
            return jm_bad(c, CVD_EFORMAT, "", L->where, obj, "a layer must be an object");
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
            return jm_bad(c, CVD_EFORMAT, L->where, sub, nm, "must be a string");
        if (nm != NULL)
            snprintf(L->where, sizeof L->where, "layers[%d] (%.*s)", i, JM_MAX_NAME,
                     json_string_value(nm));
        rc = jm_check_keys(c, L->where, "", obj, jm_keys_layer, 0, "a layer");
        if (rc < 0)
            return rc;
        cls = json_object_get(obj, "class_name");
        if (cls == NULL)
            return jm_bad(c, CVD_EFORMAT, L->where, "class_name", NULL, "missing (required)");
        if (!json_is_string(cls))
            return jm_bad(c, CVD_EFORMAT, L->where, "class_name", cls, "must be a string");
        L->cls_name = json_string_value(cls);
        if (L->config != NULL && !json_is_object(L->config))
            return jm_bad(c, CVD_EFORMAT, L->where, "config", L->config, "must be an object");
        L->weights = json_object_get(obj, "weights");
        if (L->weights != NULL && json_is_null(L->weights))
            L->weights = NULL;
        if (!jm_find_class(L, L->cls_name)) {
            const char *why = cvd_json_unsupported_reason(L->cls_name);
            if (why != NULL)
                return jm_bad(c, CVD_EUNSUPPORTED, L->where, "class_name", cls, "%s", why);
            return jm_bad(c, CVD_EUNSUPPORTED, L->where, "class_name", cls,
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
        return jm_bad(c, CVD_EFORMAT, "", "wavenet", wavenet, "must be an object");
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
        return jm_bad(c, CVD_EFORMAT, where, sub, shape,
                      "must be a list of %zu: %s[steps or null, channels]", want,
                      want == 3 ? "[null, " : "");
    /* channels_first models: [..., channels, steps] */
    ch = json_array_get(shape, c->df == CVD_CHANNELS_FIRST ? rank - 2 : rank - 1);
    for (size_t k = 0; k < rank; k++) {
        json_t *d = json_array_get(shape, k);
        if (!json_is_null(d) && !(json_is_integer(d) && json_integer_value(d) > 0))
            return jm_bad(c, CVD_EFORMAT, where, sub, shape,
                          "entries must be positive integers or null");
    }
    json_t *steps = json_array_get(shape, c->df == CVD_CHANNELS_FIRST ? rank - 1 : rank - 2);
    if (json_is_integer(steps)) {
        if (json_integer_value(steps) > (1 << 24))
            return jm_bad(c, CVD_EINVAL, where, sub, shape, "%lld steps: at most %d",
                          (long long)json_integer_value(steps), 1 << 24);
        c->in_steps = (long)json_integer_value(steps);
    }
    if (json_is_integer(ch)) {
        long long v = json_integer_value(ch);
        if (v > JM_MAX_CHANNELS)
            return jm_bad(c, CVD_EINVAL, where, sub, shape, "%lld input channels: at most %d", v,
                          JM_MAX_CHANNELS);
        if (c->in_channels_given && v != c->in_channels)
            return jm_bad(c, CVD_EINVAL, where, sub, shape,
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
            return jm_bad(c, CVD_EINVAL, L->where, "class_name", NULL,
                          "a second InputLayer (%s is the first): a convd model has one input",
                          c->layers[c->input_layer].where);
        c->input_layer = i;
        if (json_object_get(L->obj, "inputs") != NULL)
            return jm_bad(c, CVD_EINVAL, L->where, "inputs", json_object_get(L->obj, "inputs"),
                          "an InputLayer reads nothing");
        if (L->weights != NULL && !(json_is_array(L->weights) && json_array_size(L->weights) == 0))
            return jm_bad(c, CVD_EINVAL, L->where, "weights", L->weights,
                          "an InputLayer has no weights");
        if (L->config == NULL)
            continue;
        rc = jm_check_keys(c, L->where, "config", L->config, jm_keys_input, 1, "InputLayer");
        if (rc < 0)
            return rc;
        for (int k = 0; k < 3; k++) {
            if (json_object_get(L->config, shape_keys[k]) == NULL)
                continue;
            if (shape != NULL)
                return jm_bad(c, CVD_EFORMAT, L->where, "config", NULL, "both %s and %s: give one",
                              key, shape_keys[k]);
            shape = json_object_get(L->config, shape_keys[k]);
            key = shape_keys[k];
        }
        static const char *const false_keys[] = {"sparse", "ragged", "optional"};
        for (int k = 0; k < 3; k++) {
            char sub[64];
            snprintf(sub, sizeof sub, "config.%s", false_keys[k]);
            rc = jm_bool(c, L->where, "config", L->config, false_keys[k], 0, &flag);
            if (rc < 0)
                return rc;
            if (flag)
                return jm_bad(c, CVD_EUNSUPPORTED, L->where, sub, json_true(),
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
        return jm_bad(c, CVD_EFORMAT, "", "input_shape", top,
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
    int rc = jm_str(c, "", "", c->root, "data_format", JM_NULLDEF, NULL, &s);
    if (rc < 0)
        return rc;
    c->df = CVD_CHANNELS_LAST;
    c->df_from = NULL;
    if (s != NULL) {
        if (cvd_data_format_parse(s, &c->df, &c->e) < 0)
            return jm_lib(c, CVD_EINVAL, "", "");
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
                return jm_bad(c, CVD_EFORMAT, L->where, "inputs", in,
                              "must name at least one layer");
            if (n > JM_MAX_INPUTS)
                return jm_bad(c, CVD_EINVAL, L->where, "inputs", in, "%zu inputs: at most %d", n,
                              JM_MAX_INPUTS);
        } else {
            return jm_bad(c, CVD_EFORMAT, L->where, "inputs", in,
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
                return jm_bad(c, CVD_EFORMAT, L->where, sub, v, "must be a layer name");
            if (strcmp(json_string_value(v), "input") == 0) {
                L->inputs[k] = -1;
                continue;
            }
            idx = json_object_get(c->names, json_string_value(v));
            if (idx == NULL)
                return jm_bad(c, CVD_EINVAL, L->where, sub, v,
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
                    return jm_bad(c, CVD_EINVAL, U->where, sub, val, "a cycle: %s", cyc);
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
            return jm_bad(c, CVD_EFORMAT, "", "output", json_object_get(c->root, "output"),
                          "not used with the wavenet shorthand");
        o = 0;
    } else {
        rc = jm_str(c, "", "", c->root, "output", JM_NULLDEF, NULL, &name);
        if (rc < 0)
            return rc;
        if (name == NULL) {
            o = c->n_layers - 1;
        } else {
            idx = json_object_get(c->names, name);
            if (idx == NULL)
                return jm_bad(c, CVD_EINVAL, "", "output", json_object_get(c->root, "output"),
                              "no layer has that name");
            o = (int)json_integer_value(idx);
        }
        if (c->layers[o].op == JM_INPUT)
            return jm_bad(c, CVD_EINVAL, "", "output", json_object_get(c->root, "output"),
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
            return jm_bad(c, CVD_EINVAL, c->layers[i].where, "", NULL,
                          "the output '%s' does not depend on this layer (wire it in, or "
                          "remove it)",
                          c->layers[o].name);
    *out = o;
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
    jm_key(sub, sizeof sub, L->cfgp, key);
    return jm_bad(c, CVD_EUNSUPPORTED, L->where, v ? sub : "class_name", v,
                  "acts over the whole time axis (the last axis of a channels_first tensor): "
                  "it needs a window, but the model's input has no fixed length (give the "
                  "InputLayer its steps: batch_shape [null, channels, steps])");
}

static int jm_one_input(jm_ctx *c, const jm_layer *L)
{
    if (L->n_inputs != 1)
        return jm_bad(c, CVD_EINVAL, L->where, "inputs", json_object_get(L->obj, "inputs"),
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
    if ((rc = jm_str(c, w, p, L->config, "data_format", JM_NULLDEF,
                     c->df_top ? cvd_data_format_name(c->df) : "channels_last", &s)) < 0)
        return rc;
    if (cvd_data_format_parse(s, out, &c->e) < 0)
        return jm_lib(c, CVD_EINVAL, w, p);
    if (*out != c->df) {
        char sub[64];
        json_t *dv = L->config ? json_object_get(L->config, "data_format") : NULL;
        jm_key(sub, sizeof sub, p, "data_format");
        return jm_bad(c, CVD_EUNSUPPORTED, w, sub, dv,
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

static int jm_add_conv(jm_ctx *c, jm_layer *L)
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
        return jm_bad(c, CVD_EFORMAT, w, "config", NULL, "missing (%s needs kernel_size%s)",
                      L->cls_name, kind == CVD_DEPTHWISE_CONV1D ? "" : " and filters");
    if ((rc = jm_check_keys(c, w, p, cfg, jm_keys_conv[kind], 1, L->cls_name)) < 0)
        return rc;
    cvd_conv_config_init(&cc, kind);
    if (kind != CVD_DEPTHWISE_CONV1D) {
        if ((rc = jm_int(c, w, p, cfg, "filters", JM_REQ, 0, 1, INT_MAX, &v)) < 0)
            return rc;
        cc.filters = (int)v;
    }
    if ((rc = jm_int(c, w, p, cfg, "kernel_size", JM_REQ | JM_LIST1, 0, 1, INT_MAX, &v)) < 0)
        return rc;
    cc.kernel_size = (int)v;
    if ((rc = jm_int(c, w, p, cfg, "strides", JM_LIST1, 1, 1, INT_MAX, &v)) < 0)
        return rc;
    cc.strides = (int)v;
    if ((rc = jm_int(c, w, p, cfg, "dilation_rate", JM_LIST1, 1, 1, INT_MAX, &v)) < 0)
        return rc;
    cc.dilation_rate = (int)v;
    if (kind == CVD_CONV1D) {
        if ((rc = jm_int(c, w, p, cfg, "groups", 0, 1, 1, INT_MAX, &v)) < 0)
            return rc;
        cc.groups = (int)v;
    }
    if (kind == CVD_DEPTHWISE_CONV1D || kind == CVD_SEPARABLE_CONV1D) {
        if ((rc = jm_int(c, w, p, cfg, "depth_multiplier", 0, 1, 1, INT_MAX, &v)) < 0)
            return rc;
        cc.depth_multiplier = (int)v;
    }
    if (kind == CVD_CONV1D_TRANSPOSE) {
        rc = jm_int(c, w, p, cfg, "output_padding", JM_LIST1 | JM_NULLDEF, -1, 0, INT_MAX, &v);
        if (rc < 0)
            return rc;
        cc.output_padding = (int)v;
    }
    if ((rc = jm_str(c, w, p, cfg, "padding", 0, "valid", &s)) < 0)
        return rc;
    if (cvd_padding_parse(s, &cc.padding, &c->e) < 0)
        return jm_lib(c, CVD_EINVAL, w, p);
    if ((rc = jm_layer_format(c, L, &cc.data_format)) < 0)
        return rc;
    if ((rc = jm_activation(c, w, p, cfg, "activation", 0, &cc.activation)) < 0)
        return rc;
    if ((rc = jm_bool(c, w, p, cfg, "use_bias", 1, &cc.use_bias)) < 0)
        return rc;

    const int in = jm_in_node(c, L, 0);
    in_ch = cvd_model_node_channels(c->m, in);
    if (cvd_conv_config_check(&cc, in_ch, &c->e) < 0)
        return jm_lib(c, CVD_EINVAL, w, p);
    /* sizes the library would allocate: refused here, before anything overflows */
    {
        const double k = cc.kernel_size, C = in_ch, dm = cc.depth_multiplier,
                     F = kind == CVD_DEPTHWISE_CONV1D ? C * dm : cc.filters;
        double biggest = 0.0;
        if (F > JM_MAX_CHANNELS || C * dm > JM_MAX_CHANNELS)
            return jm_bad(c, CVD_EINVAL, w, p, NULL,
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
            return jm_bad(c, CVD_EINVAL, w, p, NULL,
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
            return jm_bad(c, CVD_EINVAL, w, p, NULL,
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
        return jm_lib(c, id, w, "");
    L->node = id;
    if (over_time) {
        char nm[JM_MAX_NAME + 1];
        snprintf(nm, sizeof nm, "%.80s.%s", L->name, cvd_activation_name(act));
        int a = cvd_model_add_activation_axis(c->m, nm, act, CVD_AXIS_TIME, id, &c->e);
        if (a < 0)
            return jm_lib(c, a, w, "");
        L->last = a;
    }
    return CVD_OK;
}

static int jm_add_dense(jm_ctx *c, jm_layer *L)
{
    long long units;
    cvd_activation act;
    int use_bias, rc, id, in, in_ch;
    json_t *cfg = L->config, *v;
    const char *w = L->where, *p = L->cfgp;
    if ((rc = jm_one_input(c, L)) < 0)
        return rc;
    if (cfg == NULL)
        return jm_bad(c, CVD_EFORMAT, w, "config", NULL, "missing (Dense needs units)");
    if ((rc = jm_check_keys(c, w, p, cfg, jm_keys_dense, 1, "Dense")) < 0)
        return rc;
    if ((rc = jm_int(c, w, p, cfg, "units", JM_REQ, 0, 1, JM_MAX_CHANNELS, &units)) < 0)
        return rc;
    if ((rc = jm_activation(c, w, p, cfg, "activation", 0, &act)) < 0)
        return rc;
    if ((rc = jm_bool(c, w, p, cfg, "use_bias", 1, &use_bias)) < 0)
        return rc;
    v = json_object_get(cfg, "lora_rank");
    if (v != NULL && !json_is_null(v) && !(json_is_integer(v) && json_integer_value(v) == 0))
        return jm_bad(c, CVD_EUNSUPPORTED, w, "config.lora_rank", v,
                      "LoRA adapters are not supported (merge them into the kernel)");
    v = json_object_get(cfg, "quantization_config");
    if (v != NULL && !json_is_null(v))
        return jm_bad(c, CVD_EUNSUPPORTED, w, "config.quantization_config", NULL,
                      "quantized layers are not supported");
    in = jm_in_node(c, L, 0);
    if (c->df == CVD_CHANNELS_FIRST && cvd_model_node_rank(c->m, in) == 2)
        return jm_bad(c, CVD_EUNSUPPORTED, w, "class_name", NULL,
                      "Dense acts on the last axis, which is time in a channels_first model "
                      "(%s)",
                      c->df_from ? c->df_from : "the top-level data_format");
    in_ch = cvd_model_node_channels(c->m, in);
    if ((double)in_ch * (double)units > JM_MAX_VALUES)
        return jm_bad(c, CVD_EINVAL, w, "config.units", json_object_get(cfg, "units"),
                      "a kernel of %d x %lld values: at most %u", in_ch, units, JM_MAX_VALUES);
    id = cvd_model_add_dense(c->m, L->name, (int)units, act, use_bias, in, &c->e);
    if (id < 0)
        return jm_lib(c, id, w, "");
    L->node = id;
    return CVD_OK;
}

static int jm_add_activation(jm_ctx *c, jm_layer *L)
{
    cvd_activation act;
    int rc, id;
    const char *w = L->where, *p = L->cfgp;
    if ((rc = jm_one_input(c, L)) < 0)
        return rc;
    if (L->config == NULL)
        return jm_bad(c, CVD_EFORMAT, w, "config", NULL,
                      "missing (Activation needs config.activation)");
    if ((rc = jm_check_keys(c, w, p, L->config, jm_keys_activation, 1, "Activation")) < 0)
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
        return jm_lib(c, id, w, "");
    L->node = id;
    return CVD_OK;
}

static int jm_add_merge(jm_ctx *c, jm_layer *L)
{
    int ins[JM_MAX_INPUTS], rc, id;
    const char *w = L->where, *p = L->cfgp;
    const char *const *keys = L->nop == CVD_NODE_CONCATENATE ? jm_keys_concat : jm_keys_none;
    json_t *in_json = json_object_get(L->obj, "inputs");

    if (L->config != NULL && (rc = jm_check_keys(c, w, p, L->config, keys, 1, L->cls_name)) < 0)
        return rc;
    if (L->nop == CVD_NODE_IDENTITY) {
        if ((rc = jm_one_input(c, L)) < 0)
            return rc;
    } else if (L->nop == CVD_NODE_SUBTRACT && L->n_inputs != 2) {
        return jm_bad(c, CVD_EINVAL, w, "inputs", in_json,
                      "Subtract takes exactly 2 inputs, %d given", L->n_inputs);
    } else if (L->n_inputs < 2) {
        return jm_bad(c, CVD_EINVAL, w, "inputs", in_json, "%s takes 2 to %d inputs, %d given%s",
                      L->cls_name, JM_MAX_INPUTS, L->n_inputs,
                      in_json ? ""
                              : " (without \"inputs\", a layer reads the "
                                "one listed before it)");
    }
    if (L->nop == CVD_NODE_CONCATENATE) {
        long long axis;
        rc = jm_int(c, w, p, L->config, "axis", 0, -1, LLONG_MIN, LLONG_MAX, &axis);
        if (rc < 0)
            return rc;
        /* tensors are (batch, steps, channels), or (batch, channels, steps), or vectors */
        const int rank1 = cvd_model_node_rank(c->m, jm_in_node(c, L, 0)) == 1;
        const int ok = rank1                       ? axis == -1 || axis == 1
                       : c->df == CVD_CHANNELS_LAST ? axis == -1 || axis == 2
                                                    : axis == 1 || axis == -2;
        if (!ok) {
            char sub[64];
            jm_key(sub, sizeof sub, p, "axis");
            return jm_bad(c, CVD_EUNSUPPORTED, w, sub,
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
        return jm_lib(c, id, w, "");
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
    jm_key(sub, sizeof sub, L->cfgp, key);
    *out = def;
    if (v == NULL)
        return CVD_OK;
    if (!json_is_number(v))
        return jm_bad(c, CVD_EFORMAT, L->where, sub, v, "must be a number");
    *out = json_number_value(v);
    if (!(*out >= lo && *out <= hi))
        return jm_bad(c, CVD_EINVAL, L->where, sub, v, "must be in [%g, %g]", lo, hi);
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
    jm_key(sub, sizeof sub, L->cfgp, "axis");
    if (v != NULL && json_is_array(v)) {
        if (json_array_size(v) != 1)
            return jm_bad(c, CVD_EUNSUPPORTED, L->where, sub, v,
                          "convd normalises along one axis (the channels, or time)");
        x = json_array_get(v, 0);
    }
    if (x != NULL) {
        if (!json_is_integer(x))
            return jm_bad(c, CVD_EFORMAT, L->where, sub, v, "must be an integer");
        a = json_integer_value(x);
    }
    if (a < 0)
        a += rank + 1; /* Keras counts the batch axis */
    if (a < 1 || a > rank)
        return jm_bad(c, CVD_EINVAL, L->where, sub, v, "axis %lld: the tensor (with its batch "
                      "axis) has %d axes%s", v ? (long long)json_integer_value(x) : def,
                      rank + 1, a == 0 ? "; axis 0 is the batch" : "");
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
    jm_key(sub, sizeof sub, L->cfgp, key);
    *a = *b = def;
    if (v == NULL)
        return CVD_OK;
    if (json_is_integer(v)) {
        if (json_integer_value(v) < 0 || json_integer_value(v) > (1 << 24))
            return jm_bad(c, CVD_EINVAL, L->where, sub, v, "must be in 0..%d", 1 << 24);
        *a = *b = (int)json_integer_value(v);
        return CVD_OK;
    }
    if (!json_is_array(v) || json_array_size(v) != 2)
        return jm_bad(c, CVD_EFORMAT, L->where, sub, v,
                      "must be an integer or a pair [before, after]");
    for (int k = 0; k < 2; k++) {
        json_t *x = json_array_get(v, (size_t)k);
        if (!json_is_integer(x) || json_integer_value(x) < 0 ||
            json_integer_value(x) > (1 << 24))
            return jm_bad(c, CVD_EINVAL, L->where, sub, v, "entries must be integers in 0..%d",
                          1 << 24);
        *(k ? b : a) = (int)json_integer_value(x);
    }
    return CVD_OK;
}

/* Cropping1D and UpSampling1D act on axis 1 of (batch, steps, features), always. */
static int jm_axis1(jm_ctx *c, const jm_layer *L)
{
    return jm_bad(c, CVD_EUNSUPPORTED, L->where, "class_name", NULL,
                  "%s acts on axis 1, which is the channels in a channels_first model (%s): "
                  "convd's %s acts on time",
                  L->cls_name, c->df_from ? c->df_from : "the top-level data_format", L->cls_name);
}

static int jm_add_other(jm_ctx *c, jm_layer *L)
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
        if (cfg && (rc = jm_check_keys(c, w, p, cfg, jm_keys_dropout, 1, L->cls_name)) < 0)
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
        if (cfg && (rc = jm_check_keys(c, w, p, cfg, bn ? jm_keys_batch_norm : jm_keys_layer_norm,
                                       1, L->cls_name)) < 0)
            return rc;
        if ((rc = jm_num(c, L, "epsilon", 1e-3, 0.0, 1e30, &d)) < 0 ||
            (rc = jm_bool(c, w, p, cfg, "center", 1, &center)) < 0 ||
            (rc = jm_bool(c, w, p, cfg, "scale", 1, &scale)) < 0 ||
            (!bn && (rc = jm_bool(c, w, p, cfg, "rms_scaling", 0, &rms)) < 0) ||
            (rc = jm_axis(c, L, in, -1, &axis)) < 0)
            return rc;
        if (bn) {
            json_t *vb = cfg ? json_object_get(cfg, "virtual_batch_size") : NULL;
            if (vb != NULL && !json_is_null(vb))
                return jm_bad(c, CVD_EUNSUPPORTED, w, "config.virtual_batch_size", vb,
                              "ghost batch normalisation is not supported");
            id = cvd_model_add_batch_norm(c->m, L->name, axis, (float)d, center, scale, in,
                                          &c->e);
        } else {
            id = cvd_model_add_layer_norm(c->m, L->name, axis, (float)d, center, scale, rms, in,
                                          &c->e);
        }
        break;
    }
    case JM_RESCALING: {
        double sc, off;
        if (cfg == NULL)
            return jm_bad(c, CVD_EFORMAT, w, "config", NULL, "missing (Rescaling needs scale)");
        if ((rc = jm_check_keys(c, w, p, cfg, jm_keys_rescaling, 1, L->cls_name)) < 0)
            return rc;
        json_t *sv = json_object_get(cfg, "scale"), *ov = json_object_get(cfg, "offset");
        if (sv == NULL)
            return jm_bad(c, CVD_EFORMAT, w, "config.scale", NULL, "missing (required)");
        if (!json_is_number(sv))
            return jm_bad(c, CVD_EUNSUPPORTED, w, "config.scale", sv,
                          "convd's Rescaling takes one number");
        if (ov != NULL && !json_is_number(ov))
            return jm_bad(c, CVD_EUNSUPPORTED, w, "config.offset", ov,
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
        if (cfg && (rc = jm_check_keys(c, w, p, cfg, pad ? jm_keys_zero_padding : jm_keys_cropping,
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
        if (cfg && (rc = jm_check_keys(c, w, p, cfg, jm_keys_upsampling, 1, L->cls_name)) < 0)
            return rc;
        if (c->df == CVD_CHANNELS_FIRST)
            return jm_axis1(c, L);
        if ((rc = jm_int(c, w, p, cfg, "size", JM_LIST1, 2, 1, 1 << 16, &v)) < 0)
            return rc;
        id = cvd_model_add_upsampling(c->m, L->name, (int)v, in, &c->e);
        break;
    case JM_POOL: {
        long long k, st;
        const char *ps;
        cvd_padding pad;
        cvd_data_format f;
        if (cfg && (rc = jm_check_keys(c, w, p, cfg, jm_keys_pool, 1, L->cls_name)) < 0)
            return rc;
        if ((rc = jm_layer_format(c, L, &f)) < 0 ||
            (rc = jm_int(c, w, p, cfg, "pool_size", JM_LIST1, 2, 1, 1 << 20, &k)) < 0 ||
            (rc = jm_int(c, w, p, cfg, "strides", JM_LIST1 | JM_NULLDEF, k, 1, 1 << 20, &st)) < 0 ||
            (rc = jm_str(c, w, p, cfg, "padding", 0, "valid", &ps)) < 0)
            return rc;
        if (cvd_padding_parse(ps, &pad, &c->e) < 0 || pad == CVD_PAD_CAUSAL) {
            if (pad == CVD_PAD_CAUSAL)
                cvd_err_set(&c->e, CVD_EINVAL, "padding='%s': pooling takes valid or same", ps);
            return jm_lib(c, CVD_EINVAL, w, p);
        }
        id = cvd_model_add_pooling(c->m, L->name, L->nop, (int)k, (int)st, pad, in, &c->e);
        break;
    }
    case JM_GLOBAL_POOL: {
        int keep;
        cvd_data_format f;
        if (cfg && (rc = jm_check_keys(c, w, p, cfg, jm_keys_global_pool, 1, L->cls_name)) < 0)
            return rc;
        if ((rc = jm_layer_format(c, L, &f)) < 0 ||
            (rc = jm_bool(c, w, p, cfg, "keepdims", 0, &keep)) < 0)
            return rc;
        if (c->in_steps <= 0)
            return jm_bad(c, CVD_EUNSUPPORTED, w, "class_name", NULL,
                          "%s pools over the whole window, but the model's input has no fixed "
                          "length (give the InputLayer its steps)",
                          L->cls_name);
        id = cvd_model_add_global_pooling(c->m, L->name, L->nop, keep, in, &c->e);
        break;
    }
    case JM_FLATTEN: {
        const char *fs;
        cvd_data_format f;
        if (cfg && (rc = jm_check_keys(c, w, p, cfg, jm_keys_flatten, 1, L->cls_name)) < 0)
            return rc;
        if ((rc = jm_str(c, w, p, cfg, "data_format", JM_NULLDEF, "channels_last", &fs)) < 0)
            return rc;
        if (cvd_data_format_parse(fs, &f, &c->e) < 0)
            return jm_lib(c, CVD_EINVAL, w, p);
        if (c->in_steps <= 0 && cvd_model_node_rank(c->m, in) == 2)
            return jm_bad(c, CVD_EUNSUPPORTED, w, "class_name", NULL,
                          "Flatten flattens the whole window, but the model's input has no "
                          "fixed length (give the InputLayer its steps)");
        id = cvd_model_add_flatten(c->m, L->name, f, in, &c->e);
        break;
    }
    case JM_RESHAPE: {
        json_t *ts = cfg ? json_object_get(cfg, "target_shape") : NULL;
        long dims[2];
        if (cfg && (rc = jm_check_keys(c, w, p, cfg, jm_keys_reshape, 1, L->cls_name)) < 0)
            return rc;
        if (ts == NULL)
            return jm_bad(c, CVD_EFORMAT, w, "config.target_shape", NULL, "missing (required)");
        if (!json_is_array(ts) || json_array_size(ts) < 1 || json_array_size(ts) > 2)
            return jm_bad(c, CVD_EUNSUPPORTED, w, "config.target_shape", ts,
                          "must be a list of 1 or 2 sizes (convd's tensors are vectors or "
                          "(steps, channels))");
        for (size_t k = 0; k < json_array_size(ts); k++) {
            json_t *x = json_array_get(ts, k);
            if (!json_is_integer(x) && !json_is_null(x))
                return jm_bad(c, CVD_EFORMAT, w, "config.target_shape", ts,
                              "entries must be integers");
            dims[k] = json_is_null(x) ? -1 : (long)json_integer_value(x);
        }
        if (c->in_steps <= 0)
            return jm_bad(c, CVD_EUNSUPPORTED, w, "class_name", NULL,
                          "Reshape reshapes the whole window, but the model's input has no "
                          "fixed length (give the InputLayer its steps)");
        id = cvd_model_add_reshape(c->m, L->name, (int)json_array_size(ts), dims, in, &c->e);
        break;
    }
    case JM_PERMUTE: {
        json_t *dv = cfg ? json_object_get(cfg, "dims") : NULL;
        if (cfg && (rc = jm_check_keys(c, w, p, cfg, jm_keys_permute, 1, L->cls_name)) < 0)
            return rc;
        if (!json_is_array(dv) || json_array_size(dv) != 2 ||
            !json_is_integer(json_array_get(dv, 0)) || !json_is_integer(json_array_get(dv, 1)))
            return jm_bad(c, CVD_EUNSUPPORTED, w, "config.dims", dv,
                          "must be [1, 2] or [2, 1] (a tensor of steps and channels)");
        const long long a = json_integer_value(json_array_get(dv, 0)),
                        b = json_integer_value(json_array_get(dv, 1));
        if (!((a == 1 && b == 2) || (a == 2 && b == 1)))
            return jm_bad(c, CVD_EINVAL, w, "config.dims", dv, "must be [1, 2] or [2, 1]");
        if (a == 2 && c->in_steps <= 0)
            return jm_bad(c, CVD_EUNSUPPORTED, w, "config.dims", dv,
                          "swaps time and channels: it needs the whole window, but the "
                          "model's input has no fixed length (give the InputLayer its steps)");
        id = cvd_model_add_permute(c->m, L->name, a == 2, in, &c->e);
        break;
    }
    default:
        (void)none;
        return jm_bad(c, CVD_EINVAL, w, "", NULL, "internal error: layer kind %d", (int)L->op);
    }
    if (id < 0)
        return jm_lib(c, id, w, "");
    L->node = id;
    return CVD_OK;
}

/* ---- WaveNet -------------------------------------------------------------------------------- */

/* NAM's activation forms: "Tanh", "tanh", {"type": "LeakyReLU", "negative_slope": 0.1}. */
static int jm_wn_activation(jm_ctx *c, const char *where, const char *sub, json_t *v,
                            cvd_wn_activation *out)
{
    json_t *t;
    const char *type, *key;
    json_t *pv;
    char psub[256];
    int rc;
    if (json_is_string(v)) {
        if (cvd_wn_activation_parse(json_string_value(v), out, &c->e) < 0)
            return jm_lib(c, CVD_EINVAL, where, sub);
        return CVD_OK;
    }
    if (!json_is_object(v))
        return jm_bad(c, CVD_EFORMAT, where, sub, v,
                      "must be an activation name or an object {\"type\": name, ...}");
    t = json_object_get(v, "type");
    snprintf(psub, sizeof psub, "%s.type", sub);
    if (t == NULL)
        return jm_bad(c, CVD_EFORMAT, where, psub, NULL, "missing (required)");
    if (!json_is_string(t))
        return jm_bad(c, CVD_EFORMAT, where, psub, t, "must be an activation name");
    type = json_string_value(t);
    if (cvd_wn_activation_parse(type, out, &c->e) < 0)
        return jm_lib(c, CVD_EINVAL, where, psub);
    json_object_foreach(v, key, pv)
    {
        int slot = -1;
        snprintf(psub, sizeof psub, "%s.%s", sub, key);
        if (strcmp(key, "type") == 0)
            continue;
        if (strcmp(type, "LeakyReLU") == 0 || strcmp(type, "PReLU") == 0) {
            if (strcmp(key, "negative_slope") == 0)
                slot = 0;
        } else if (strcmp(type, "LeakyHardtanh") == 0 || strcmp(type, "LeakyHardTanh") == 0) {
            static const char *const names[] = {"min_val", "max_val", "min_slope", "max_slope"};
            for (int k = 0; k < 4; k++)
                if (strcmp(key, names[k]) == 0)
                    slot = k;
        }
        if (strcmp(type, "PReLU") == 0 && strcmp(key, "negative_slopes") == 0) {
            size_t n = json_array_size(pv);
            if (!json_is_array(pv) || n == 0 || n > CVD_WN_MAX_SLOPES)
                return jm_bad(c, CVD_EFORMAT, where, psub, pv,
                              "must be a list of 1 to %d numbers (one per channel)",
                              CVD_WN_MAX_SLOPES);
            for (size_t k = 0; k < n; k++) {
                char esub[300];
                snprintf(esub, sizeof esub, "%s[%zu]", psub, k);
                if ((rc = jm_float(c, where, esub, json_array_get(pv, k), &out->slopes[k])) < 0)
                    return rc;
            }
            if (n == 1) {
                out->kind = CVD_WN_LEAKY_RELU;
                out->p[0] = out->slopes[0];
            } else {
                out->kind = CVD_WN_PRELU;
                out->n_slopes = (int)n;
            }
            continue;
        }
        if (strcmp(type, "Hardtanh") == 0 &&
            ((strcmp(key, "min_val") == 0 && json_is_number(pv) && json_number_value(pv) == -1) ||
             (strcmp(key, "max_val") == 0 && json_is_number(pv) && json_number_value(pv) == 1)))
            continue;
        if (slot < 0)
            return jm_bad(c, CVD_EUNSUPPORTED, where, psub, pv, "not a parameter of %s", type);
        if ((rc = jm_float(c, where, psub, pv, &out->p[slot])) < 0)
            return rc;
    }
    return CVD_OK;
}

/* A value that may be one for all layers or a list with one per layer. */
static json_t *jm_per_layer(json_t *v, int l, int *is_list)
{
    *is_list = json_is_array(v);
    return *is_list ? json_array_get(v, (size_t)l) : v;
}

static int jm_wn_list_len(jm_ctx *c, const char *where, const char *sub, json_t *v, int n)
{
    if (json_is_array(v) && json_array_size(v) != (size_t)n)
        return jm_bad(c, CVD_EFORMAT, where, sub, v,
                      "a list needs one entry per dilation (%d), it has %zu", n,
                      json_array_size(v));
    return CVD_OK;
}

static int jm_wn_array(jm_ctx *c, const char *where, const char *path, json_t *obj, cvd_wn_array *a,
                       int has_prewarm_key)
{
    static const char *const keys_with_prewarm[] = {
        "channels", "kernel_size",          "dilations",      "activation", "gated",
        "gating",   "secondary_activation", "head_size",      "head_bias",  "residual",
        "skip",     "input_size",           "condition_size", "prewarm",    NULL};
    char sub[256], esub[300];
    long long v;
    int rc, n, is_list;
    json_t *dil, *ks, *act, *gating, *sec;
    if (!json_is_object(obj))
        return jm_bad(c, CVD_EFORMAT, where, path, obj, "a layer array must be an object");
    rc = jm_check_keys(c, where, path, obj, has_prewarm_key ? keys_with_prewarm : jm_keys_wn_array,
                       0, "a WaveNet layer array");
    if (rc < 0)
        return rc;
    if ((rc = jm_int(c, where, path, obj, "channels", JM_REQ, 0, 1, 4096, &v)) < 0)
        return rc;
    a->channels = (int)v;
    jm_key(sub, sizeof sub, path, "dilations");
    dil = json_object_get(obj, "dilations");
    if (dil == NULL)
        return jm_bad(c, CVD_EFORMAT, where, sub, NULL, "missing (required)");
    if (!json_is_array(dil) || json_array_size(dil) == 0)
        return jm_bad(c, CVD_EFORMAT, where, sub, dil, "must be a non-empty list of integers");
    if (json_array_size(dil) > CVD_WN_MAX_LAYERS)
        return jm_bad(c, CVD_EINVAL, where, sub, dil, "%zu layers: at most %d",
                      json_array_size(dil), CVD_WN_MAX_LAYERS);
    n = a->n_layers = (int)json_array_size(dil);
    ks = json_object_get(obj, "kernel_size");
    act = json_object_get(obj, "activation");
    sec = json_object_get(obj, "secondary_activation");
    gating = json_object_get(obj, "gating");
    if (gating != NULL && json_object_get(obj, "gated") != NULL) {
        jm_key(sub, sizeof sub, path, "gated");
        return jm_bad(c, CVD_EFORMAT, where, sub, NULL, "give gated or gating, not both");
    }
    if (ks == NULL) {
        jm_key(sub, sizeof sub, path, "kernel_size");
        return jm_bad(c, CVD_EFORMAT, where, sub, NULL, "missing (required)");
    }
    {
        static const char *const lists[] = {"kernel_size", "activation", "gating",
                                            "secondary_activation"};
        for (int k = 0; k < 4; k++) {
            jm_key(sub, sizeof sub, path, lists[k]);
            if ((rc = jm_wn_list_len(c, where, sub, json_object_get(obj, lists[k]), n)) < 0)
                return rc;
        }
    }
    int gated_all = 0;
    if ((rc = jm_bool(c, where, path, obj, "gated", 0, &gated_all)) < 0)
        return rc;
    for (int l = 0; l < n; l++) {
        cvd_wn_layer *ly = &a->layers[l];
        json_t *x = json_array_get(dil, (size_t)l);
        jm_key(sub, sizeof sub, path, "dilations");
        snprintf(esub, sizeof esub, "%s[%d]", sub, l);
        if (!json_is_integer(x))
            return jm_bad(c, CVD_EFORMAT, where, esub, x, "must be an integer");
        if (json_integer_value(x) < 1 || json_integer_value(x) > (1 << 20))
            return jm_bad(c, CVD_EINVAL, where, esub, x, "must be in 1..%d", 1 << 20);
        ly->dilation = (int)json_integer_value(x);

        x = jm_per_layer(ks, l, &is_list);
        jm_key(sub, sizeof sub, path, "kernel_size");
        if (is_list)
            snprintf(esub, sizeof esub, "%s[%d]", sub, l);
        else
            snprintf(esub, sizeof esub, "%s", sub);
        if (!json_is_integer(x))
            return jm_bad(c, CVD_EFORMAT, where, esub, x,
                          "must be an integer (or a list, one per dilation)");
        if (json_integer_value(x) < 1 || json_integer_value(x) > 1024)
            return jm_bad(c, CVD_EINVAL, where, esub, x, "must be in 1..1024");
        ly->kernel_size = (int)json_integer_value(x);

        jm_key(sub, sizeof sub, path, "activation");
        x = act ? jm_per_layer(act, l, &is_list) : NULL;
        if (x == NULL) {
            cvd_wn_activation_parse("Tanh", &ly->activation, NULL);
        } else {
            if (is_list)
                snprintf(esub, sizeof esub, "%s[%d]", sub, l);
            else
                snprintf(esub, sizeof esub, "%s", sub);
            if ((rc = jm_wn_activation(c, where, esub, x, &ly->activation)) < 0)
                return rc;
        }
        jm_key(sub, sizeof sub, path, "secondary_activation");
        x = sec ? jm_per_layer(sec, l, &is_list) : NULL;
        if (x == NULL) {
            cvd_wn_activation_parse("Sigmoid", &ly->secondary, NULL);
        } else {
            if (is_list)
                snprintf(esub, sizeof esub, "%s[%d]", sub, l);
            else
                snprintf(esub, sizeof esub, "%s", sub);
            if ((rc = jm_wn_activation(c, where, esub, x, &ly->secondary)) < 0)
                return rc;
        }
        ly->gating = gated_all ? CVD_WN_GATING_GATED : CVD_WN_GATING_NONE;
        if (gating != NULL) {
            jm_key(sub, sizeof sub, path, "gating");
            x = jm_per_layer(gating, l, &is_list);
            if (is_list)
                snprintf(esub, sizeof esub, "%s[%d]", sub, l);
            else
                snprintf(esub, sizeof esub, "%s", sub);
            const char *g = json_string_value(x);
            if (g != NULL && strcmp(g, "none") == 0)
                ly->gating = CVD_WN_GATING_NONE;
            else if (g != NULL && strcmp(g, "gated") == 0)
                ly->gating = CVD_WN_GATING_GATED;
            else if (g != NULL && strcmp(g, "blended") == 0)
                ly->gating = CVD_WN_GATING_BLENDED;
            else
                return jm_bad(c, CVD_EINVAL, where, esub, x,
                              "must be \"none\", \"gated\" or \"blended\"");
        }
    }
    if ((rc = jm_int(c, where, path, obj, "head_size", 0, 0, 1, 4096, &v)) < 0)
        return rc;
    a->head_size = (int)v; /* 0: the default, decided by the caller */
    if ((rc = jm_bool(c, where, path, obj, "head_bias", 1, &a->head_bias)) < 0)
        return rc;
    if ((rc = jm_bool(c, where, path, obj, "residual", 1, &a->residual)) < 0)
        return rc;
    if ((rc = jm_bool(c, where, path, obj, "skip", 1, &a->skip)) < 0)
        return rc;
    return CVD_OK;
}

/* The WaveNet config (the shorthand's object or a layer's config) for `in_ch` channels in. */
static int jm_wn_config(jm_ctx *c, const jm_layer *L, int in_ch, cvd_wn_config *wn)
{
    json_t *obj = L->config, *arrays;
    const char *w = L->where, *p = L->cfgp;
    char sub[256];
    int rc;
    memset(wn, 0, sizeof *wn);
    if (obj == NULL)
        return jm_bad(c, CVD_EFORMAT, w, "config", NULL, "missing (the WaveNet's arrays)");
    if ((rc = jm_bool(c, w, p, obj, "prewarm", 0, &wn->prewarm)) < 0)
        return rc;
    arrays = json_object_get(obj, "arrays");
    if (arrays != NULL) {
        static const char *const keys[] = {"arrays", "prewarm", NULL};
        if ((rc = jm_check_keys(c, w, p, obj, keys, 0,
                                "a WaveNet with \"arrays\" (array keys go in each array)")) < 0)
            return rc;
        jm_key(sub, sizeof sub, p, "arrays");
        if (!json_is_array(arrays) || json_array_size(arrays) == 0)
            return jm_bad(c, CVD_EFORMAT, w, sub, arrays,
                          "must be a non-empty list of layer arrays");
        if (json_array_size(arrays) > CVD_WN_MAX_ARRAYS)
            return jm_bad(c, CVD_EINVAL, w, sub, arrays, "%zu layer arrays: at most %d",
                          json_array_size(arrays), CVD_WN_MAX_ARRAYS);
        wn->n_arrays = (int)json_array_size(arrays);
        for (int i = 0; i < wn->n_arrays; i++) {
            char ap[300];
            snprintf(ap, sizeof ap, "%s[%d]", sub, i);
            rc = jm_wn_array(c, w, ap, json_array_get(arrays, (size_t)i), &wn->arrays[i], 0);
            if (rc < 0)
                return rc;
        }
    } else {
        wn->n_arrays = 1;
        if ((rc = jm_wn_array(c, w, p, obj, &wn->arrays[0], 1)) < 0)
            return rc;
    }
    /* what NAM writes and convd derives: input_size, condition_size, the head chain */
    for (int i = 0; i < wn->n_arrays; i++) {
        cvd_wn_array *a = &wn->arrays[i];
        json_t *ao = arrays ? json_array_get(arrays, (size_t)i) : obj;
        char ap[300];
        long long v;
        if (arrays)
            snprintf(ap, sizeof ap, "%s.arrays[%d]", p, i);
        else
            snprintf(ap, sizeof ap, "%s", p);
        a->input_size = i == 0 ? in_ch : wn->arrays[i - 1].channels;
        a->condition_size = in_ch;
        if (a->head_size == 0)
            a->head_size = i + 1 < wn->n_arrays ? wn->arrays[i + 1].channels : 1;
        if ((rc = jm_int(c, w, ap, ao, "input_size", 0, a->input_size, LLONG_MIN, LLONG_MAX, &v)) <
            0)
            return rc;
        if (v != a->input_size) {
            jm_key(sub, sizeof sub, ap, "input_size");
            return jm_bad(c, CVD_EINVAL, w, sub, json_object_get(ao, "input_size"),
                          "must be %d (%s)", a->input_size,
                          i == 0 ? "the channels of the WaveNet's input"
                                 : "the channels of the array before");
        }
        if ((rc = jm_int(c, w, ap, ao, "condition_size", 0, in_ch, LLONG_MIN, LLONG_MAX, &v)) < 0)
            return rc;
        if (v != in_ch) {
            jm_key(sub, sizeof sub, ap, "condition_size");
            return jm_bad(c, CVD_EINVAL, w, sub, json_object_get(ao, "condition_size"),
                          "must be %d (the condition is the WaveNet's input)", in_ch);
        }
        if (i > 0 && a->channels != wn->arrays[i - 1].head_size) {
            jm_key(sub, sizeof sub, ap, "channels");
            return jm_bad(c, CVD_EINVAL, w, sub, json_object_get(ao, "channels"),
                          "must equal arrays[%d].head_size=%d (an array continues the head "
                          "of the one before, as in NAM)",
                          i - 1, wn->arrays[i - 1].head_size);
        }
    }
    if (cvd_wn_config_check(wn, &c->e) < 0)
        return jm_lib(c, CVD_EINVAL, w, p);
    if (cvd_wn_weight_count(wn) > JM_MAX_VALUES)
        return jm_bad(c, CVD_EINVAL, w, p, NULL, "%zu weights: at most %u", cvd_wn_weight_count(wn),
                      JM_MAX_VALUES);
    return CVD_OK;
}

static int jm_add_wavenet(jm_ctx *c, jm_layer *L)
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
            rc = jm_lib(c, id, L->where, L->cfgp);
        else
            L->node = id;
    }
    free(wn);
    return rc;
}

/* ---- weights ---------------------------------------------------------------------------- */

static void jm_shape_text(const int *shape, int rank, char *buf, size_t n)
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
        int rc = jm_float(c, where, sub, v, *out);
        (*out)++;
        return rc;
    }
    if (!json_is_array(v) || json_array_size(v) != (size_t)shape[0])
        return jm_bad(c, CVD_EINVAL, where, sub, v,
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
        return jm_bad(c, CVD_EFORMAT, L->where, sub, v,
                      "must be a list of numbers (variable %d, shape %s)", var, st);
    buf = malloc(sizeof(float) * (n ? n : 1));
    if (buf == NULL)
        return cvd_err_set(&c->e, CVD_ENOMEM, "%s: out of memory", c->file);
    if (json_array_size(v) > 0 && json_is_array(json_array_get(v, 0)) && rank > 1) {
        pos = buf;
        rc = jm_nested(c, L->where, sub, v, shape, rank, &pos);
    } else if (json_array_size(v) != n) {
        rc = jm_bad(c, CVD_EINVAL, L->where, sub, v,
                    "%zu values, but variable %d has shape %s: %zu values", json_array_size(v), var,
                    st, n);
    } else {
        for (size_t i = 0; i < n && rc == CVD_OK; i++) {
            snprintf(esub, sizeof esub, "%s[%zu]", sub, i);
            rc = jm_float(c, L->where, esub, json_array_get(v, i), &buf[i]);
        }
    }
    if (rc == CVD_OK && cvd_model_set_var(c->m, L->node, var, buf, n, &c->e) < 0)
        rc = jm_lib(c, CVD_EINVAL, L->where, sub);
    free(buf);
    return rc;
}

static int jm_inline_weights(jm_ctx *c, const jm_layer *L)
{
    json_t *w = L->weights;
    int nv = L->node > 0 ? cvd_model_var_count(c->m, L->node) : 0, rc;
    char sub[32];
    if (w == NULL)
        return CVD_OK;
    if (!json_is_array(w))
        return jm_bad(c, CVD_EFORMAT, L->where, "weights", w,
                      "must be a list with one array per variable");
    if (nv == 0) {
        if (json_array_size(w) == 0)
            return CVD_OK;
        return jm_bad(c, CVD_EINVAL, L->where, "weights", w, "%s has no weights", L->cls_name);
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
        return jm_bad(c, CVD_EINVAL, L->where, "weights", w, "%zu variables given, %s has %d: %s",
                      json_array_size(w), L->cls_name, nv, shapes);
    }
    for (int k = 0; k < nv; k++) {
        snprintf(sub, sizeof sub, "weights[%d]", k);
        if ((rc = jm_inline_var(c, L, sub, json_array_get(w, (size_t)k), k)) < 0)
            return rc;
    }
    return CVD_OK;
}

/* ---- safetensors ------------------------------------------------------------------------- */

static float jm_half(uint16_t h)
{
    const int s = h >> 15, e = (h >> 10) & 0x1f, m = h & 0x3ff;
    float v;
    if (e == 0)
        v = ldexpf((float)m, -24);
    else if (e == 31)
        v = m ? NAN : INFINITY;
    else
        v = ldexpf((float)(m | 0x400), e - 25);
    return s ? -v : v;
}

static uint64_t jm_le(const unsigned char *p, int n)
{
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

/* Element i of a tensor of `dtype` (2: F16, 3: BF16, 4: F32, 8: F64) as a float; NaN if it
 * does not fit a finite float. */
static float jm_st_value(const unsigned char *p, int dtype)
{
    switch (dtype) {
    case 2:
        return jm_half((uint16_t)jm_le(p, 2));
    case 3: {
        uint32_t u = (uint32_t)jm_le(p, 2) << 16;
        float f;
        memcpy(&f, &u, 4);
        return f;
    }
    case 4: {
        uint32_t u = (uint32_t)jm_le(p, 4);
        float f;
        memcpy(&f, &u, 4);
        return f;
    }
    default: {
        uint64_t u = jm_le(p, 8);
        double d;
        memcpy(&d, &u, 8);
        return isfinite(d) && fabs(d) <= FLT_MAX ? (float)d : NAN;
    }
    }
}

typedef struct jm_range {
    uint64_t begin, end;
    const char *name;
} jm_range;

static int jm_range_cmp(const void *a, const void *b)
{
    const jm_range *x = a, *y = b;
    return x->begin < y->begin ? -1 : x->begin > y->begin ? 1 : 0;
}

/* One tensor "<layer>/<variable>" of the header, checked, converted and set. */
static int jm_st_tensor(jm_ctx *c, const char *wp, const char *tname, json_t *t,
                        const unsigned char *data, uint64_t dlen, jm_range *r)
{
    char sub[300], st[64], ts[160];
    const char *dt, *slash, *key;
    json_t *shape, *offs, *v, *idx;
    int dtype, rank, vshape[3], vrank, var, rc = CVD_OK;
    uint64_t count = 1, b, e;
    jm_layer *L;
    float *buf;

    char fsub[340];
    snprintf(sub, sizeof sub, "tensor '%.160s'", tname);
#define FIELD(f) (snprintf(fsub, sizeof fsub, "%s: %s", sub, f), fsub)
    if (!json_is_object(t))
        return jm_bad(c, CVD_EFORMAT, wp, sub, t, "must be an object {dtype, shape, data_offsets}");
    json_object_foreach(t, key, v)
    {
        if (strcmp(key, "dtype") != 0 && strcmp(key, "shape") != 0 &&
            strcmp(key, "data_offsets") != 0)
            return jm_bad(c, CVD_EFORMAT, wp, sub, NULL, "unknown key '%.60s'", key);
    }
    v = json_object_get(t, "dtype");
    dt = json_string_value(v);
    if (dt == NULL)
        return jm_bad(c, CVD_EFORMAT, wp, FIELD("dtype"), v, "must be a string");
    if (strcmp(dt, "F16") == 0)
        dtype = 2;
    else if (strcmp(dt, "BF16") == 0)
        dtype = 3;
    else if (strcmp(dt, "F32") == 0)
        dtype = 4;
    else if (strcmp(dt, "F64") == 0)
        dtype = 8;
    else
        return jm_bad(c, CVD_EUNSUPPORTED, wp, FIELD("dtype"), v,
                      "not supported (convd reads F32, F64, F16 and BF16)");
    const size_t esize = dtype == 3 ? 2 : (size_t)dtype;
    shape = json_object_get(t, "shape");
    if (!json_is_array(shape) || json_array_size(shape) > 8)
        return jm_bad(c, CVD_EFORMAT, wp, FIELD("shape"), shape,
                      "must be a list of at most 8 sizes");
    rank = (int)json_array_size(shape);
    for (int k = 0; k < rank; k++) {
        json_t *d = json_array_get(shape, (size_t)k);
        if (!json_is_integer(d) || json_integer_value(d) < 0)
            return jm_bad(c, CVD_EFORMAT, wp, FIELD("shape"), shape,
                          "must hold non-negative integers");
        if (json_integer_value(d) > (1LL << 40) ||
            (count *= (uint64_t)json_integer_value(d)) > (1ULL << 40))
            return jm_bad(c, CVD_EINVAL, wp, FIELD("shape"), shape, "too many values");
    }
    offs = json_object_get(t, "data_offsets");
    if (!json_is_array(offs) || json_array_size(offs) != 2 ||
        !json_is_integer(json_array_get(offs, 0)) || !json_is_integer(json_array_get(offs, 1)) ||
        json_integer_value(json_array_get(offs, 0)) < 0 ||
        json_integer_value(json_array_get(offs, 1)) < json_integer_value(json_array_get(offs, 0)))
        return jm_bad(c, CVD_EFORMAT, wp, FIELD("data_offsets"), offs,
                      "must be [begin, end] with 0 <= begin <= end");
    b = (uint64_t)json_integer_value(json_array_get(offs, 0));
    e = (uint64_t)json_integer_value(json_array_get(offs, 1));
    if (e > dlen)
        return jm_bad(c, CVD_EFORMAT, wp, FIELD("data_offsets"), offs,
                      "past the end of the data (%llu bytes): the file is truncated or corrupt",
                      (unsigned long long)dlen);
    if (e - b != count * esize)
        return jm_bad(c, CVD_EFORMAT, wp, FIELD("data_offsets"), offs,
                      "%llu bytes, but %llu values of %s take %llu", (unsigned long long)(e - b),
                      (unsigned long long)count, dt, (unsigned long long)(count * esize));
    r->begin = b;
    r->end = e;
    r->name = tname;

    /* "<layer>/<variable>" */
    slash = strrchr(tname, '/');
    if (slash == NULL || slash[1] == '\0' || strspn(slash + 1, "0123456789") != strlen(slash + 1) ||
        strlen(slash + 1) > 3)
        return jm_bad(c, CVD_EINVAL, wp, sub, NULL,
                      "not a weight name: they are \"<layer name>/<variable index>\"");
    snprintf(ts, sizeof ts, "%.*s", (int)(slash - tname) < 150 ? (int)(slash - tname) : 150, tname);
    var = atoi(slash + 1);
    idx = (size_t)(slash - tname) < sizeof ts - 10 ? json_object_get(c->names, ts) : NULL;
    if (idx == NULL)
        return jm_bad(c, CVD_EINVAL, wp, sub, NULL, "no layer is named '%s'", ts);
    L = &c->layers[json_integer_value(idx)];
    const int nv = L->node > 0 ? cvd_model_var_count(c->m, L->node) : 0;
    if (var >= nv)
        return jm_bad(c, CVD_EINVAL, wp, sub, NULL, "%s (%s) has %d variable%s", L->where,
                      L->cls_name, nv, nv == 1 ? "" : "s");
    if (L->weights != NULL)
        return jm_bad(c, CVD_EINVAL, wp, sub, NULL,
                      "%s has inline weights too: give a layer's weights in one place", L->where);
    vrank = cvd_model_var_shape(c->m, L->node, var, vshape);
    jm_shape_text(vshape, vrank, st, sizeof st);
    int same = vrank == rank;
    for (int k = 0; same && k < rank; k++)
        same = json_integer_value(json_array_get(shape, (size_t)k)) == vshape[k];
    if (!same)
        return jm_bad(c, CVD_EINVAL, wp, FIELD("shape"), shape, "%s variable %d has shape %s",
                      L->where, var, st);

    buf = malloc(sizeof(float) * (count ? count : 1));
    if (buf == NULL)
        return cvd_err_set(&c->e, CVD_ENOMEM, "%s: out of memory", c->file);
    for (uint64_t i = 0; i < count; i++) {
        buf[i] = jm_st_value(data + b + i * esize, dtype);
        if (!isfinite(buf[i])) {
            rc = jm_bad(c, CVD_EINVAL, wp, sub, NULL,
                        "value %llu is not a finite float32 (NaN, infinite or out of range)",
                        (unsigned long long)i);
            break;
        }
    }
    if (rc == CVD_OK && cvd_model_set_var(c->m, L->node, var, buf, (size_t)count, &c->e) < 0)
        rc = jm_lib(c, CVD_EINVAL, wp, sub);
    free(buf);
    L->from_file |= 1u << var;
    return rc;
#undef FIELD
}

static int jm_safetensors(jm_ctx *c, const char *wf)
{
    char path[4096], wp[600];
    size_t len = 0;
    unsigned char *buf;
    json_t *hdr = NULL, *t;
    json_error_t je;
    const char *key;
    jm_range *ranges = NULL;
    size_t nr = 0;
    int rc = CVD_OK;
    uint64_t hl;

    snprintf(wp, sizeof wp, "weights_file '%.500s'", wf);
    /* relative to the JSON file's folder (to the current directory without one) */
    const int relative = wf[0] != '/' && c->dir != NULL && c->dir[0] != '\0';
    const int n = relative ? snprintf(path, sizeof path, "%s/%s", c->dir, wf)
                           : snprintf(path, sizeof path, "%s", wf);
    if (n < 0 || n >= (int)sizeof path)
        return jm_bad(c, CVD_EINVAL, "", wp, NULL, "the path is too long");
    buf = (unsigned char *)jm_read_file(path, &len);
    if (buf == NULL)
        return jm_bad(c, CVD_EIO, "", wp, NULL, "cannot read %s: %s", path, strerror(errno));
    if (len < 8) {
        rc = jm_bad(c, CVD_EFORMAT, "", wp, NULL,
                    "%zu bytes: too short for a safetensors file (truncated?)", len);
        goto done;
    }
    hl = jm_le(buf, 8);
    if (hl > len - 8 || hl > JM_ST_MAX_HEADER) {
        rc = jm_bad(c, CVD_EFORMAT, "", wp, NULL,
                    "the header length %llu exceeds the file's %zu bytes (truncated, or not "
                    "a safetensors file)",
                    (unsigned long long)hl, len);
        goto done;
    }
    hdr = json_loadb((const char *)buf + 8, (size_t)hl, JSON_REJECT_DUPLICATES, &je);
    if (hdr == NULL) {
        rc = jm_bad(c, CVD_EFORMAT, "", wp, NULL, "header: column %d: %s", je.column, je.text);
        goto done;
    }
    if (!json_is_object(hdr)) {
        rc = jm_bad(c, CVD_EFORMAT, "", wp, NULL, "the header is not a JSON object");
        goto done;
    }
    ranges = calloc(json_object_size(hdr) + 1, sizeof *ranges);
    if (ranges == NULL) {
        rc = cvd_err_set(&c->e, CVD_ENOMEM, "%s: out of memory", c->file);
        goto done;
    }
    json_object_foreach(hdr, key, t)
    {
        if (strcmp(key, "__metadata__") == 0) {
            if (!json_is_object(t)) {
                rc = jm_bad(c, CVD_EFORMAT, wp, "__metadata__", t, "must be an object");
                goto done;
            }
            continue;
        }
        rc = jm_st_tensor(c, wp, key, t, buf + 8 + hl, len - 8 - hl, &ranges[nr++]);
        if (rc < 0)
            goto done;
    }
    /* tensors must not share bytes */
    qsort(ranges, nr, sizeof *ranges, jm_range_cmp);
    for (size_t i = 1; i < nr; i++)
        if (ranges[i].begin < ranges[i - 1].end && ranges[i].begin < ranges[i].end) {
            char sub[200];
            snprintf(sub, sizeof sub, "tensor '%.160s'", ranges[i].name);
            rc = jm_bad(c, CVD_EFORMAT, wp, sub, NULL, "its bytes overlap tensor '%.160s'",
                        ranges[i - 1].name);
            goto done;
        }
    /* a layer's variables all come from one place */
    for (int i = 0; i < c->n_layers; i++) {
        const jm_layer *L = &c->layers[i];
        int nv = L->node > 0 ? cvd_model_var_count(c->m, L->node) : 0;
        if (L->from_file == 0)
            continue;
        for (int k = 0; k < nv; k++)
            if (!(L->from_file & (1u << k))) {
                rc = jm_bad(c, CVD_EINVAL, "", wp, NULL,
                            "no tensor '%s/%d', but other variables of %s are given: give "
                            "all of a layer's variables or none",
                            L->name, k, L->where);
                goto done;
            }
    }
done:
    json_decref(hdr);
    free(ranges);
    free(buf);
    return rc;
}

/* ---- the whole file ------------------------------------------------------------------------ */

static int jm_top(jm_ctx *c, uint64_t *seed, const char **weights_file)
{
    json_t *r = c->root, *v;
    long long x;
    const char *s;
    int rc;

    if (!json_is_object(r))
        return jm_bad(c, CVD_EFORMAT, "", "", NULL,
                      "the top level must be an object {\"format\": \"convd-model\", ...}");
    v = json_object_get(r, "format");
    if (v == NULL && json_is_string(json_object_get(r, "class_name")) &&
        json_object_get(r, "config") != NULL)
        return jm_bad(c, CVD_EFORMAT, "", "class_name", json_object_get(r, "class_name"),
                      "a Keras model config (model.to_json()) without weights: give its "
                      "weights file too, as CONFIG.json+WEIGHTS.h5 (or convd-run --weights)");
    if (v == NULL)
        return jm_bad(c, CVD_EFORMAT, "", "format", NULL,
                      "missing: a convd model file starts {\"format\": \"convd-model\", "
                      "\"version\": 1, ...}");
    if (!json_is_string(v) || strcmp(json_string_value(v), JM_FORMAT) != 0)
        return jm_bad(c, CVD_EFORMAT, "", "format", v, "must be \"%s\"", JM_FORMAT);
    v = json_object_get(r, "version");
    if (v == NULL)
        return jm_bad(c, CVD_EFORMAT, "", "version", NULL, "missing (required: %d)", JM_VERSION);
    if (!json_is_integer(v) || json_integer_value(v) != JM_VERSION)
        return jm_bad(c, CVD_EUNSUPPORTED, "", "version", v, "this convd reads version %d only",
                      JM_VERSION);
    if ((rc = jm_check_keys(c, "", "", r, jm_keys_top, 0, "a convd model file")) < 0)
        return rc;
    if ((rc = jm_str(c, "", "", r, "name", JM_NULLDEF, NULL, &s)) < 0)
        return rc;
    if ((rc = jm_str(c, "", "", r, "description", JM_NULLDEF, NULL, &s)) < 0)
        return rc;
    v = json_object_get(r, "sample_rate");
    if (v != NULL && !json_is_null(v) &&
        !(json_is_number(v) && json_number_value(v) > 0 && json_number_value(v) < 1e9))
        return jm_bad(c, CVD_EINVAL, "", "sample_rate", v,
                      "must be a positive number of Hz (or null: unknown)");
    if ((rc = jm_int(c, "", "", r, "input_channels", 0, 1, 1, JM_MAX_CHANNELS, &x)) < 0)
        return rc;
    c->in_channels = (int)x;
    c->in_channels_given = json_object_get(r, "input_channels") != NULL;
    if ((rc = jm_int(c, "", "", r, "seed", 0, 0, 0, LLONG_MAX, &x)) < 0)
        return rc;
    *seed = (uint64_t)x;
    if ((rc = jm_str(c, "", "", r, "weights_file", JM_NULLDEF, NULL, weights_file)) < 0)
        return rc;
    if (*weights_file != NULL && (*weights_file)[0] == '\0')
        return jm_bad(c, CVD_EINVAL, "", "weights_file", json_object_get(r, "weights_file"),
                      "must name a file");
    if (json_object_get(r, "layers") != NULL && json_object_get(r, "wavenet") != NULL)
        return jm_bad(c, CVD_EFORMAT, "", "wavenet", NULL,
                      "give \"layers\" or the \"wavenet\" shorthand, not both");
    if (json_object_get(r, "weights") != NULL && json_object_get(r, "wavenet") == NULL)
        return jm_bad(c, CVD_EFORMAT, "", "weights", NULL,
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
            return jm_bad(c, CVD_EFORMAT, "", "layers", layers, "must be a list of layers");
        rc = jm_read_layers(c, layers);
    } else if (json_object_get(c->root, "wavenet") != NULL) {
        rc = jm_shorthand(c, json_object_get(c->root, "wavenet"));
    } else {
        rc = jm_bad(c, CVD_EFORMAT, "", "layers", NULL,
                    "missing: a model has \"layers\" or the \"wavenet\" shorthand");
    }
    if (rc < 0)
        return rc;
    if ((rc = jm_data_format(c)) < 0 || (rc = jm_input_layer(c)) < 0 ||
        (rc = jm_resolve_inputs(c)) < 0 || (rc = jm_toposort(c)) < 0 ||
        (rc = jm_output(c, &out)) < 0)
        return rc;

    if ((rc = cvd_model_create(c->in_channels, &c->m, &c->e)) < 0)
        return jm_lib(c, rc, "", "input_channels");
    if ((rc = cvd_model_set_data_format(c->m, c->df, &c->e)) < 0 ||
        (rc = cvd_model_set_input_length(c->m, c->in_steps, &c->e)) < 0)
        return jm_lib(c, rc, "", "");
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
    if ((rc = cvd_model_set_output(c->m, c->layers[out].last > 0 ? c->layers[out].last : c->layers[out].node, &c->e)) < 0)
        return jm_lib(c, rc, "", "output");

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
    text = jm_read_file(path, &len);
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
