/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Neural Amp Modeler .nam files into a model. What NeuralAmpModelerCore 0.5.x-0.7.x reads of
 * the Linear (an impulse response: one causal Conv1D, a long one on the FFT path) and
 * ConvNet (dilated Conv1D blocks, batch norm, NAM's activations, prewarmed) architectures,
 * and of the WaveNet architecture (one fused WaveNet node), including the newer per-layer lists
 * (kernel_sizes, activation, gating_mode, secondary_activation) and the layer-array head
 * object; the layer arrays are read by the WaveNet parser convd's JSON shares
 * (wavenet_json.c). Keys it does not support (post-stack head, bottleneck, FiLM, head1x1,
 * grouped convs, condition DSP, slimmable) are refused by name; so is anything malformed, with
 * the file and the JSON path: "FILE: config.layers[0].channels=-5: must be >= 1".
 *
 * An architecture is a row of `architectures` below and a function that builds the model from
 * the file's config and weights.
 */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "convd_model.h"
#include "model_internal.h"

/* A .nam file's weights: the flat list, exactly `need` finite floats. */
static int nam_weights(cvd_jr *r, json_t *root, size_t need, float **out)
{
    json_t *weights = json_object_get(root, "weights");
    size_t n = json_array_size(weights);
    int rc;
    *out = NULL;
    if (!json_is_array(weights))
        return cvd_jr_bad(r, CVD_EFORMAT, "", "weights", NULL, "missing or not an array");
    if (n != need)
        return cvd_jr_bad(r, CVD_EFORMAT, "", "weights", NULL,
                          "%zu values given, the configuration needs %zu", n, need);
    float *w = malloc(sizeof(float) * (need ? need : 1));
    if (w == NULL)
        return cvd_jr_bad(r, CVD_ENOMEM, "", "", NULL, "out of memory");
    for (size_t i = 0; i < n; i++) {
        char sub[64];
        snprintf(sub, sizeof sub, "weights[%zu]", i);
        if ((rc = cvd_jr_float(r, "", sub, json_array_get(weights, i), &w[i])) < 0) {
            free(w);
            return rc;
        }
    }
    *out = w;
    return CVD_OK;
}

/* ---- WaveNet ------------------------------------------------------------------------------ */

static int nam_wavenet(cvd_jr *r, json_t *root, json_t *cfg, cvd_model **out)
{
    json_t *layers, *v, *objs[CVD_WN_MAX_ARRAYS];
    cvd_wn_config *wn = NULL;
    cvd_model *m = NULL;
    float *w = NULL;
    long long in_ch;
    int rc;

    v = json_object_get(cfg, "head");
    if (v != NULL && !json_is_null(v))
        return cvd_jr_bad(r, CVD_EUNSUPPORTED, "", "config.head", NULL,
                          "a post-stack head is not supported yet (only null)");
    v = json_object_get(cfg, "condition_dsp");
    if (v != NULL && !json_is_null(v))
        return cvd_jr_bad(r, CVD_EUNSUPPORTED, "", "config.condition_dsp", NULL,
                          "a condition DSP is not supported yet (only null)");
    if ((rc = cvd_jr_int(r, "", "config", cfg, "in_channels", 0, 1, 1, 4096, &in_ch)) < 0)
        return rc;
    layers = json_object_get(cfg, "layers");
    if (!json_is_array(layers) || json_array_size(layers) == 0)
        return cvd_jr_bad(r, CVD_EFORMAT, "", "config.layers", layers,
                          "must be a non-empty list of layer arrays");
    if (json_array_size(layers) > CVD_WN_MAX_ARRAYS)
        return cvd_jr_bad(r, CVD_EUNSUPPORTED, "", "config.layers", layers,
                          "%zu layer arrays: at most %d", json_array_size(layers),
                          CVD_WN_MAX_ARRAYS);

    wn = calloc(1, sizeof *wn); /* about 230 kB */
    if (wn == NULL)
        return cvd_jr_bad(r, CVD_ENOMEM, "", "", NULL, "out of memory");
    wn->n_arrays = (int)json_array_size(layers);
    wn->prewarm = 1; /* NAM core prewarms on every reset */
    for (int i = 0; i < wn->n_arrays; i++) {
        char path[64];
        snprintf(path, sizeof path, "config.layers[%d]", i);
        objs[i] = json_array_get(layers, (size_t)i);
        if ((rc = cvd_wn_json_array(r, CVD_WN_NAM, "", path, objs[i], 0, &wn->arrays[i])) < 0)
            goto done;
    }
    if ((rc = cvd_wn_json_finish(r, "", "config", "config.layers", objs, (int)in_ch, wn)) < 0)
        goto done;

    /* weights: the exact count the configuration implies */
    const size_t need = cvd_wn_weight_count(wn);
    if ((rc = nam_weights(r, root, need, &w)) < 0)
        goto done;
    if ((rc = cvd_model_create((int)in_ch, &m, r->err)) < 0)
        goto done;
    int node = cvd_model_add_wavenet(m, "wavenet", wn, 0, r->err);
    if (node < 0) {
        rc = cvd_jr_lib(r, node, "", "config");
        goto done;
    }
    if ((rc = cvd_model_set_var(m, node, 0, w, need, r->err)) < 0) {
        rc = cvd_jr_lib(r, rc, "", "weights");
        goto done;
    }
    *out = m;
    m = NULL;
    rc = CVD_OK;
done:
    cvd_model_unref(m);
    free(wn);
    free(w);
    return rc;
}

/* ---- Linear ------------------------------------------------------------------------------- */

/* NAM's "Linear": an impulse response of receptive_field taps, weights[m] on x[t - m] (NAM
 * core's rule; NAM's trainer builds it as a correlating torch Conv1d, so NAM core plays a
 * trained Linear time-reversed: files are played here as NAM core plays them), plus a bias.
 * A causal Conv1D with the taps reversed into Keras's order (oldest first); with several
 * channels, each through the same response (groups). A long one runs on the FFT path. */
static int nam_linear(cvd_jr *r, json_t *root, json_t *cfg, cvd_model **out)
{
    static const char *const keys[] = {"receptive_field", "bias",           "in_channels",
                                       "out_channels",    "implementation", NULL};
    static const char *const impls[] = {"auto", "direct",          "legacy",          "old",
                                        "fft",  "partitioned_fft", "partitioned-fft", NULL};
    long long R, cin, cout;
    int bias, rc;
    const char *impl;
    float *w = NULL, *K = NULL, *b = NULL;
    cvd_model *m = NULL;

    if ((rc = cvd_jr_check_keys(r, "", "config", cfg, keys, 0, "a Linear model")) < 0)
        return rc;
    if ((rc = cvd_jr_int(r, "", "config", cfg, "receptive_field", CVD_JR_REQ, 0, 1, 1 << 22, &R)) <
            0 ||
        (rc = cvd_jr_bool(r, "", "config", cfg, "bias", -1, &bias)) < 0 ||
        (rc = cvd_jr_int(r, "", "config", cfg, "in_channels", 0, 1, 1, 64, &cin)) < 0 ||
        (rc = cvd_jr_int(r, "", "config", cfg, "out_channels", 0, 1, 1, 64, &cout)) < 0 ||
        (rc = cvd_jr_str(r, "", "config", cfg, "implementation", 0, "auto", &impl)) < 0)
        return rc;
    if (bias < 0)
        return cvd_jr_bad(r, CVD_EFORMAT, "", "config.bias", NULL, "missing (true or false)");
    if (!cvd_jr_in_list(impl, impls))
        return cvd_jr_bad(r, CVD_EFORMAT, "", "config.implementation",
                          json_object_get(cfg, "implementation"),
                          "must be auto, direct or fft (how NAM core computes it)");
    if (cin != cout)
        return cvd_jr_bad(r, CVD_EUNSUPPORTED, "", "config.out_channels",
                          json_object_get(cfg, "out_channels"),
                          "%lld input channels: a Linear model with a different count out is "
                          "not supported (NAM core zeroes or drops the extra channels)",
                          cin);
    const size_t need = (size_t)R + (bias ? 1 : 0);
    if ((rc = nam_weights(r, root, need, &w)) < 0)
        return rc;
    K = malloc(sizeof(float) * (size_t)R * (size_t)cin);
    b = malloc(sizeof(float) * (size_t)cin);
    if (K == NULL || b == NULL) {
        rc = cvd_jr_bad(r, CVD_ENOMEM, "", "", NULL, "out of memory");
        goto done;
    }
    for (long long j = 0; j < R; j++)
        for (long long c = 0; c < cin; c++)
            K[j * cin + c] = w[R - 1 - j];
    for (long long c = 0; c < cin; c++)
        b[c] = bias ? w[R] : 0.0f;
    cvd_conv_config c;
    cvd_conv_config_init(&c, CVD_CONV1D);
    c.filters = (int)cin;
    c.groups = (int)cin;
    c.kernel_size = (int)R;
    c.padding = CVD_PAD_CAUSAL;
    c.use_bias = bias;
    if ((rc = cvd_model_create((int)cin, &m, r->err)) < 0)
        goto done;
    int node = cvd_model_add_conv(m, "linear", &c, 0, r->err);
    if (node < 0) {
        rc = cvd_jr_lib(r, node, "", "config");
        goto done;
    }
    if ((rc = cvd_model_set_var(m, node, 0, K, (size_t)R * cin, r->err)) < 0 ||
        (bias && (rc = cvd_model_set_var(m, node, 1, b, (size_t)cin, r->err)) < 0)) {
        rc = cvd_jr_lib(r, rc, "", "weights");
        goto done;
    }
    *out = m;
    m = NULL;
    rc = CVD_OK;
done:
    cvd_model_unref(m);
    free(w);
    free(K);
    free(b);
    return rc;
}

/* ---- ConvNet ------------------------------------------------------------------------------ */

/* NAM's "ConvNet": blocks of a causal Conv1D of kernel 2 and dilation d (bias unless batch
 * norm), batch norm (inference form), an activation; then a 1x1 head. Weights in the
 * trainer's order: per block the conv weight (C, Cin/groups, 2) in C order, its bias, or the
 * batch norm's running_mean, running_var, weight, bias and eps; then the head's weight
 * (out, C) and bias (out). NAM core prewarms it with 1 + sum(dilations) frames of silence. */
static int nam_convnet(cvd_jr *r, json_t *root, json_t *cfg, cvd_model **out)
{
    static const char *const keys[] = {"channels", "dilations",   "batchnorm",    "activation",
                                       "groups",   "in_channels", "out_channels", NULL};
    long long C, G, cin, cout;
    int bn, rc, nd;
    json_t *dl;
    int dil[CVD_WN_MAX_LAYERS];
    cvd_wn_activation act;
    float *w = NULL, *K = NULL;
    cvd_model *m = NULL;
    char sub[64];

    if ((rc = cvd_jr_check_keys(r, "", "config", cfg, keys, 0, "a ConvNet model")) < 0)
        return rc;
    if ((rc = cvd_jr_int(r, "", "config", cfg, "channels", CVD_JR_REQ, 0, 1, 1024, &C)) < 0 ||
        (rc = cvd_jr_bool(r, "", "config", cfg, "batchnorm", -1, &bn)) < 0 ||
        (rc = cvd_jr_int(r, "", "config", cfg, "groups", 0, 1, 1, 1024, &G)) < 0 ||
        (rc = cvd_jr_int(r, "", "config", cfg, "in_channels", 0, 1, 1, 1024, &cin)) < 0 ||
        (rc = cvd_jr_int(r, "", "config", cfg, "out_channels", 0, 1, 1, 1024, &cout)) < 0)
        return rc;
    if (bn < 0)
        return cvd_jr_bad(r, CVD_EFORMAT, "", "config.batchnorm", NULL, "missing (true or false)");
    dl = json_object_get(cfg, "dilations");
    if (!json_is_array(dl) || json_array_size(dl) == 0)
        return cvd_jr_bad(r, CVD_EFORMAT, "", "config.dilations", dl,
                          "must be a non-empty list of dilations, one per block");
    if (json_array_size(dl) > CVD_WN_MAX_LAYERS)
        return cvd_jr_bad(r, CVD_EUNSUPPORTED, "", "config.dilations", dl, "%zu blocks: at most %d",
                          json_array_size(dl), CVD_WN_MAX_LAYERS);
    nd = (int)json_array_size(dl);
    long prewarm = 1;
    for (int i = 0; i < nd; i++) {
        json_t *v = json_array_get(dl, (size_t)i);
        snprintf(sub, sizeof sub, "config.dilations[%d]", i);
        if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > 1 << 20)
            return cvd_jr_bad(r, CVD_EFORMAT, "", sub, v, "must be an integer in 1..%d", 1 << 20);
        dil[i] = (int)json_integer_value(v);
        prewarm += dil[i];
    }
    if (C % G != 0 || cin % G != 0)
        return cvd_jr_bad(r, CVD_EFORMAT, "", "config.groups", json_object_get(cfg, "groups"),
                          "must divide the channels (%lld) and the input channels (%lld)", C, cin);
    if ((rc = cvd_wn_json_activation(r, "", "config.activation", json_object_get(cfg, "activation"),
                                     (int)C, &act)) < 0)
        return rc;

    /* the weights the configuration implies */
    size_t need = (size_t)(cout * C + cout);
    for (int i = 0; i < nd; i++)
        need += (size_t)(C * ((i ? C : cin) / G) * 2) + (size_t)(bn ? 4 * C + 1 : C);
    if ((rc = nam_weights(r, root, need, &w)) < 0)
        return rc;
    K = malloc(sizeof(float) * (size_t)(2 * C * (C > cin ? C : cin) + cout * C + 1));
    if (K == NULL) {
        rc = cvd_jr_bad(r, CVD_ENOMEM, "", "", NULL, "out of memory");
        goto done;
    }
    if ((rc = cvd_model_create((int)cin, &m, r->err)) < 0)
        goto done;
    const float *p = w;
    int prev = 0;
    for (int i = 0; i < nd; i++) {
        const long long ci = i ? C : cin, cg = ci / G;
        char name[32];
        cvd_conv_config c;
        cvd_conv_config_init(&c, CVD_CONV1D);
        c.filters = (int)C;
        c.groups = (int)G;
        c.kernel_size = 2;
        c.dilation_rate = dil[i];
        c.padding = CVD_PAD_CAUSAL;
        c.use_bias = !bn;
        snprintf(name, sizeof name, "block%d_conv", i);
        snprintf(sub, sizeof sub, "config.dilations[%d]", i);
        int conv = cvd_model_add_conv(m, name, &c, prev, r->err);
        if (conv < 0) {
            rc = cvd_jr_lib(r, conv, "", sub);
            goto done;
        }
        /* torch (C, ci/G, 2) -> Keras (2, ci/G, C) */
        for (long long o = 0; o < C; o++)
            for (long long k = 0; k < cg; k++)
                for (int j = 0; j < 2; j++)
                    K[((size_t)j * cg + k) * C + o] = p[(o * cg + k) * 2 + j];
        p += C * cg * 2;
        if ((rc = cvd_model_set_var(m, conv, 0, K, (size_t)(2 * cg * C), r->err)) < 0)
            goto weights;
        if (!bn) {
            if ((rc = cvd_model_set_var(m, conv, 1, p, (size_t)C, r->err)) < 0)
                goto weights;
            p += C;
            prev = conv;
        } else {
            /* Keras's variables: gamma, beta, moving_mean, moving_variance */
            snprintf(name, sizeof name, "block%d_batchnorm", i);
            int bnn =
                cvd_model_add_batch_norm(m, name, CVD_AXIS_CHANNELS, p[4 * C], 1, 1, conv, r->err);
            if (bnn < 0) {
                rc = cvd_jr_lib(r, bnn, "", sub);
                goto done;
            }
            if ((rc = cvd_model_set_var(m, bnn, 0, p + 2 * C, (size_t)C, r->err)) < 0 ||
                (rc = cvd_model_set_var(m, bnn, 1, p + 3 * C, (size_t)C, r->err)) < 0 ||
                (rc = cvd_model_set_var(m, bnn, 2, p, (size_t)C, r->err)) < 0 ||
                (rc = cvd_model_set_var(m, bnn, 3, p + C, (size_t)C, r->err)) < 0)
                goto weights;
            p += 4 * C + 1;
            prev = bnn;
        }
        snprintf(name, sizeof name, "block%d_%s", i, cvd_wn_activation_name(&act));
        prev = cvd_model_add_nam_activation(m, name, &act, prev, r->err);
        if (prev < 0) {
            rc = cvd_jr_lib(r, prev, "", "config.activation");
            goto done;
        }
    }
    /* the head: a Dense C -> out, kernel (C, out) from torch's (out, C) */
    int head = cvd_model_add_dense(m, "head", (int)cout, CVD_ACT_LINEAR, 1, prev, r->err);
    if (head < 0) {
        rc = cvd_jr_lib(r, head, "", "config");
        goto done;
    }
    for (long long o = 0; o < cout; o++)
        for (long long k = 0; k < C; k++)
            K[k * cout + o] = p[o * C + k];
    p += cout * C;
    if ((rc = cvd_model_set_var(m, head, 0, K, (size_t)(C * cout), r->err)) < 0 ||
        (rc = cvd_model_set_var(m, head, 1, p, (size_t)cout, r->err)) < 0)
        goto weights;
    if ((rc = cvd_model_set_prewarm(m, prewarm, r->err)) < 0) {
        rc = cvd_jr_lib(r, rc, "", "config");
        goto done;
    }
    *out = m;
    m = NULL;
    rc = CVD_OK;
    goto done;
weights:
    rc = cvd_jr_lib(r, rc, "", "weights");
done:
    cvd_model_unref(m);
    free(w);
    free(K);
    return rc;
}

/* ---- the file ----------------------------------------------------------------------------- */

static const struct {
    const char *name;
    int (*build)(cvd_jr *r, json_t *root, json_t *config, cvd_model **out);
} architectures[] = {
    {"WaveNet", nam_wavenet},
    {"ConvNet", nam_convnet},
    {"Linear", nam_linear},
};

/* "M.m.p" with 0.5.0 <= version < 0.8.0 */
static int check_version(cvd_jr *r, const json_t *v)
{
    int M, m, pch, n = 0;
    const char *s = json_string_value(v);
    if (s == NULL)
        return cvd_jr_bad(r, CVD_EFORMAT, "", "version", NULL, "missing or not a string");
    if (sscanf(s, "%d.%d.%d%n", &M, &m, &pch, &n) != 3 || s[n] != '\0')
        return cvd_jr_bad(r, CVD_EUNSUPPORTED, "", "version", NULL,
                          "\"%s\" is not a version of the form M.m.p (0.5.x to 0.7.x are "
                          "supported)",
                          s);
    if (M != 0 || m < 5 || m > 7)
        return cvd_jr_bad(r, CVD_EUNSUPPORTED, "", "version", NULL,
                          "\"%s\" is not supported (0.5.x to 0.7.x are)", s);
    return CVD_OK;
}

/* metadata[key]: a number (kept), absent or null (none, as NAM core reads it). */
static int nam_level(cvd_jr *r, json_t *meta, const char *key, int *has, double *out)
{
    json_t *v = json_object_get(meta, key);
    char sub[64];
    *has = 0;
    if (v == NULL || json_is_null(v))
        return CVD_OK;
    snprintf(sub, sizeof sub, "metadata.%s", key);
    if (!json_is_number(v))
        return cvd_jr_bad(r, CVD_EFORMAT, "", sub, v, "must be a number (dB) or null");
    *out = json_number_value(v);
    if (!isfinite(*out) || fabs(*out) > 1000)
        return cvd_jr_bad(r, CVD_EFORMAT, "", sub, v, "not a level in dB");
    *has = 1;
    return CVD_OK;
}

/* The calibration NAM's plugin uses: loudness (dB), input_level_dbu, output_level_dbu. */
static int nam_levels(cvd_jr *r, json_t *meta, cvd_model *m)
{
    cvd_levels lv;
    int rc;
    memset(&lv, 0, sizeof lv);
    if ((rc = nam_level(r, meta, "loudness", &lv.has_loudness, &lv.loudness)) < 0 ||
        (rc = nam_level(r, meta, "input_level_dbu", &lv.has_input_level, &lv.input_level_dbu)) <
            0 ||
        (rc = nam_level(r, meta, "output_level_dbu", &lv.has_output_level, &lv.output_level_dbu)) <
            0)
        return rc;
    cvd_model_set_levels(m, &lv);
    return CVD_OK;
}

static int build(cvd_jr *r, json_t *root, cvd_model **out)
{
    json_t *v, *cfg;
    const char *arch;
    size_t a = 0;
    int rc;

    if (!json_is_object(root))
        return cvd_jr_bad(r, CVD_EFORMAT, "", "", NULL, "the top level must be a JSON object");
    if ((rc = check_version(r, json_object_get(root, "version"))) < 0)
        return rc;
    v = json_object_get(root, "architecture");
    if (!json_is_string(v))
        return cvd_jr_bad(r, CVD_EFORMAT, "", "architecture", NULL, "missing or not a string");
    arch = json_string_value(v);
    while (a < sizeof architectures / sizeof architectures[0] &&
           strcmp(arch, architectures[a].name) != 0)
        a++;
    if (a == sizeof architectures / sizeof architectures[0]) {
        if (strcmp(arch, "LSTM") == 0)
            return cvd_jr_bad(r, CVD_EUNSUPPORTED, "", "architecture", NULL,
                              "\"LSTM\" is not supported: a recurrent network does not run "
                              "in convd, whose engine is convolutional (WaveNet, ConvNet and "
                              "Linear files load)");
        return cvd_jr_bad(r, CVD_EUNSUPPORTED, "", "architecture", NULL,
                          "\"%s\" is not supported (WaveNet, ConvNet and Linear are)", arch);
    }
    cfg = json_object_get(root, "config");
    if (!json_is_object(cfg))
        return cvd_jr_bad(r, CVD_EFORMAT, "", "config", NULL, "missing or not an object");
    if ((rc = architectures[a].build(r, root, cfg, out)) < 0)
        return rc;

    v = json_object_get(root, "sample_rate");
    if (json_is_number(v) && json_number_value(v) > 0)
        cvd_model_set_sample_rate(*out, json_number_value(v));
    v = json_object_get(root, "metadata");
    if (json_is_object(v)) {
        const json_t *nm = json_object_get(v, "name");
        if (json_is_string(nm) && cvd_model_set_description(*out, json_string_value(nm)) < 0) {
            cvd_model_unref(*out);
            *out = NULL;
            return cvd_jr_bad(r, CVD_ENOMEM, "", "", NULL, "out of memory");
        }
        if ((rc = nam_levels(r, v, *out)) < 0) {
            cvd_model_unref(*out);
            *out = NULL;
            return rc;
        }
    }
    return CVD_OK;
}

int cvd_nam_parse(const char *text, size_t len, const char *name, cvd_model **out, cvd_err *err)
{
    cvd_err e = {0};
    cvd_jr r = {name ? name : "(nam)", &e};
    json_error_t je;
    json_t *root;
    int rc;

    *out = NULL;
    root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    if (root == NULL) {
        rc = cvd_jr_bad(&r, CVD_EFORMAT, "", "", NULL, "JSON error at line %d, column %d: %s",
                        je.line, je.column, je.text);
    } else {
        rc = build(&r, root, out);
        json_decref(root);
    }
    if (err != NULL)
        *err = e;
    return rc;
}

int cvd_nam_load(const char *path, cvd_model **out, cvd_err *err)
{
    cvd_jr r = {path, err};
    size_t len = 0;
    int rc;

    *out = NULL;
    char *buf = cvd_model_read_file(path, (size_t)1 << 30, &len);
    if (buf == NULL && errno == EFBIG)
        return cvd_jr_bad(&r, CVD_EFORMAT, "", "", NULL, "larger than 1 GiB: not a model file");
    if (buf == NULL)
        return cvd_jr_bad(&r, CVD_EIO, "", "", NULL, "cannot open: %s", strerror(errno));
    rc = cvd_nam_parse(buf, len, path, out, err);
    free(buf);
    return rc;
}
