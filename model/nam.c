/*
 * Neural Amp Modeler .nam files (WaveNet architecture) into a model with one fused WaveNet
 * node. What NeuralAmpModelerCore 0.5.x-0.7.x reads, including the newer per-layer lists
 * (kernel_sizes, activation, gating_mode, secondary_activation) and the layer-array head
 * object. Keys it does not support (post-stack head, bottleneck, FiLM, head1x1, grouped
 * convs, condition DSP, slimmable) are refused by name; so is anything malformed, with
 * the file and the JSON path.
 */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "convd_model.h"

typedef struct nam_ctx {
    const char *file;
    cvd_err *err;
} nam_ctx;

/* "FILE: PATH: reason" */
static int fail(nam_ctx *cx, int code, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int fail(nam_ctx *cx, int code, const char *path, const char *fmt, ...)
{
    char msg[CVD_ERR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (path && *path)
        return cvd_err_set(cx->err, code, "%s: %s: %s", cx->file, path, msg);
    return cvd_err_set(cx->err, code, "%s: %s", cx->file, msg);
}

static const char *type_name(const json_t *v)
{
    if (v == NULL) /* a key that is not there */
        return "missing";
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "an object";
    case JSON_ARRAY:
        return "an array";
    case JSON_STRING:
        return "a string";
    case JSON_INTEGER:
    case JSON_REAL:
        return "a number";
    case JSON_TRUE:
    case JSON_FALSE:
        return "a boolean";
    default:
        return "null";
    }
}

/* A positive integer no larger than `max`. */
static int get_int(nam_ctx *cx, const json_t *v, const char *path, int min, int max, int *out)
{
    if (v == NULL)
        return fail(cx, CVD_EFORMAT, path, "missing");
    if (json_is_real(v) && json_real_value(v) == floor(json_real_value(v)) &&
        fabs(json_real_value(v)) < 1e9) {
        *out = (int)json_real_value(v);
    } else if (json_is_integer(v)) {
        json_int_t i = json_integer_value(v);
        if (i < min || i > max)
            return fail(cx, CVD_EFORMAT, path, "%lld: must be in %d..%d", (long long)i, min, max);
        *out = (int)i;
        return CVD_OK;
    } else {
        return fail(cx, CVD_EFORMAT, path, "must be an integer, not %s", type_name(v));
    }
    if (*out < min || *out > max)
        return fail(cx, CVD_EFORMAT, path, "%d: must be in %d..%d", *out, min, max);
    return CVD_OK;
}

static int get_bool(nam_ctx *cx, const json_t *v, const char *path, int *out)
{
    if (v == NULL)
        return fail(cx, CVD_EFORMAT, path, "missing");
    if (!json_is_boolean(v))
        return fail(cx, CVD_EFORMAT, path, "must be true or false, not %s", type_name(v));
    *out = json_is_true(v);
    return CVD_OK;
}

static int get_float(nam_ctx *cx, const json_t *v, const char *path, float *out)
{
    if (v == NULL)
        return fail(cx, CVD_EFORMAT, path, "missing");
    if (!json_is_number(v))
        return fail(cx, CVD_EFORMAT, path, "must be a number, not %s", type_name(v));
    double d = json_number_value(v);
    if (!isfinite(d) || fabs(d) > 3.4e38)
        return fail(cx, CVD_EFORMAT, path, "%g: not a finite float", d);
    *out = (float)d;
    return CVD_OK;
}

/* An activation: "Tanh", or {"type": "LeakyReLU", "negative_slope": 0.2}, ... */
static int parse_activation(nam_ctx *cx, const json_t *v, const char *path, int channels,
                            cvd_wn_activation *out)
{
    char p[256];
    const char *name;
    int rc;

    if (json_is_string(v)) {
        name = json_string_value(v);
    } else if (json_is_object(v)) {
        const json_t *t = json_object_get(v, "type");
        if (!json_is_string(t))
            return fail(cx, CVD_EFORMAT, path, "an activation object needs a \"type\" string");
        name = json_string_value(t);
    } else {
        return fail(cx, CVD_EFORMAT, path, "an activation must be a name or an object, not %s",
                    type_name(v));
    }
    if (cvd_wn_activation_parse(name, out, NULL) < 0)
        return fail(cx, CVD_EUNSUPPORTED, path,
                    "unknown activation \"%s\" (NAM's are Tanh, Hardtanh, Fasttanh, ReLU, "
                    "LeakyReLU, PReLU, Sigmoid, SiLU, Hardswish, LeakyHardtanh, Softsign)",
                    name);
    if (!json_is_object(v))
        return CVD_OK;
    /* parameters of the object form */
    const char *key;
    json_t *val;
    json_object_foreach((json_t *)v, key, val)
    {
        snprintf(p, sizeof p, "%s.%s", path, key);
        if (strcmp(key, "type") == 0)
            continue;
        if (out->kind == CVD_WN_LEAKY_RELU && strcmp(key, "negative_slope") == 0) {
            if ((rc = get_float(cx, val, p, &out->p[0])) < 0)
                return rc;
        } else if (out->kind == CVD_WN_LEAKY_RELU && strcmp(key, "negative_slopes") == 0) {
            /* PReLU with a slope per channel */
            size_t n = json_array_size(val);
            if (!json_is_array(val) || n == 0)
                return fail(cx, CVD_EFORMAT, p, "must be a non-empty array of numbers");
            if (n > CVD_WN_MAX_SLOPES)
                return fail(cx, CVD_EUNSUPPORTED, p, "%zu slopes: at most %d are supported", n,
                            CVD_WN_MAX_SLOPES);
            if ((int)n != 1 && (int)n != channels)
                return fail(cx, CVD_EFORMAT, p, "%zu slopes for %d channels", n, channels);
            out->kind = CVD_WN_PRELU;
            out->n_slopes = (int)n;
            for (size_t i = 0; i < n; i++) {
                char q[300];
                snprintf(q, sizeof q, "%s[%zu]", p, i);
                if ((rc = get_float(cx, json_array_get(val, i), q, &out->slopes[i])) < 0)
                    return rc;
            }
        } else if (out->kind == CVD_WN_LEAKY_HARDTANH &&
                   (strcmp(key, "min_val") == 0 || strcmp(key, "max_val") == 0 ||
                    strcmp(key, "min_slope") == 0 || strcmp(key, "max_slope") == 0)) {
            int idx = strcmp(key, "min_val") == 0   ? 0
                      : strcmp(key, "max_val") == 0 ? 1
                      : strcmp(key, "min_slope") == 0 ? 2
                                                      : 3;
            if ((rc = get_float(cx, val, p, &out->p[idx])) < 0)
                return rc;
        } else if (out->kind == CVD_WN_KERAS && out->keras == CVD_ACT_HARD_TANH &&
                   (strcmp(key, "min_val") == 0 || strcmp(key, "max_val") == 0)) {
            /* NAM core ignores Hardtanh's limits (always -1..1); so do we */
        } else {
            return fail(cx, CVD_EUNSUPPORTED, p, "parameter \"%s\" of %s is not supported", key,
                        name);
        }
    }
    return CVD_OK;
}

/* A per-layer value: the same for every layer, or a list with one per layer. */
static const json_t *per_layer(nam_ctx *cx, const json_t *v, int l, int n_layers,
                               const char *path, int *rc)
{
    *rc = CVD_OK;
    if (!json_is_array(v))
        return v;
    if ((int)json_array_size(v) != n_layers) {
        *rc = fail(cx, CVD_EFORMAT, path, "has %zu entries, but dilations has %d (one per layer)",
                   json_array_size(v), n_layers);
        return NULL;
    }
    return json_array_get(v, (size_t)l);
}

static int parse_gating(nam_ctx *cx, const json_t *v, const char *path, cvd_wn_gating *out)
{
    const char *s = json_string_value(v);
    if (s && strcmp(s, "none") == 0)
        *out = CVD_WN_GATING_NONE;
    else if (s && strcmp(s, "gated") == 0)
        *out = CVD_WN_GATING_GATED;
    else if (s && strcmp(s, "blended") == 0)
        *out = CVD_WN_GATING_BLENDED;
    else if (s)
        return fail(cx, CVD_EFORMAT, path, "\"%s\": must be \"none\", \"gated\" or \"blended\"",
                    s);
    else
        return fail(cx, CVD_EFORMAT, path, "must be a string, not %s", type_name(v));
    return CVD_OK;
}

/* Keys of a layer array that convd does not support, refused by name when in use. */
static int refuse_unsupported(nam_ctx *cx, const json_t *la, const char *path, int channels)
{
    char p[256];
    const char *key;
    json_t *v;
    static const char *const known[] = {
        "input_size", "condition_size", "channels", "kernel_size", "kernel_sizes",
        "dilations", "activation", "gated", "gating_mode", "secondary_activation",
        "head_size", "head_bias", "head", "bottleneck", "layer1x1", "head1x1",
        "groups_input", "groups_input_mixin", "groups", "slimmable"};

    json_object_foreach((json_t *)la, key, v)
    {
        snprintf(p, sizeof p, "%s.%s", path, key);
        int is_known = 0;
        for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
            is_known |= strcmp(key, known[i]) == 0;
        if (strstr(key, "film") != NULL || strstr(key, "FiLM") != NULL) {
            /* FiLM blocks: fine when absent, false, null or {"active": false} */
            const json_t *act = json_is_object(v) ? json_object_get(v, "active") : NULL;
            if (json_is_false(v) || json_is_null(v) || (json_is_object(v) && json_is_false(act)))
                continue;
            return fail(cx, CVD_EUNSUPPORTED, p, "FiLM conditioning is not supported yet");
        }
        if (!is_known)
            return fail(cx, CVD_EUNSUPPORTED, p, "unknown key \"%s\" is not supported", key);
        if (strcmp(key, "bottleneck") == 0) {
            if (!json_is_null(v) && !(json_is_integer(v) && json_integer_value(v) == channels))
                return fail(cx, CVD_EUNSUPPORTED, p,
                            "a bottleneck (%s) different from channels (%d) is not supported "
                            "yet",
                            json_is_integer(v) ? "set" : type_name(v), channels);
        } else if (strcmp(key, "layer1x1") == 0) {
            const json_t *act = json_object_get(v, "active"), *g = json_object_get(v, "groups");
            if (!json_is_object(v) || (act && !json_is_true(act)) ||
                (g && !(json_is_integer(g) && json_integer_value(g) == 1)))
                return fail(cx, CVD_EUNSUPPORTED, p,
                            "only the default layer1x1 (active, 1 group) is supported");
        } else if (strcmp(key, "head1x1") == 0) {
            const json_t *act = json_is_object(v) ? json_object_get(v, "active") : NULL;
            if (!json_is_null(v) && !(json_is_object(v) && (act == NULL || json_is_false(act))))
                return fail(cx, CVD_EUNSUPPORTED, p, "an active head1x1 is not supported yet");
        } else if (strncmp(key, "groups", 6) == 0) {
            if (!json_is_null(v) && !(json_is_integer(v) && json_integer_value(v) == 1))
                return fail(cx, CVD_EUNSUPPORTED, p, "grouped convolutions are not supported yet");
        } else if (strcmp(key, "slimmable") == 0) {
            if (!json_is_null(v) && !json_is_false(v))
                return fail(cx, CVD_EUNSUPPORTED, p, "slimmable models are not supported");
        }
    }
    return CVD_OK;
}

static int parse_array(nam_ctx *cx, const json_t *la, int idx, cvd_wn_array *a)
{
    char path[128], p[256];
    int rc;

    snprintf(path, sizeof path, "config.layers[%d]", idx);
    if (!json_is_object(la))
        return fail(cx, CVD_EFORMAT, path, "a layer array must be an object, not %s",
                    type_name(la));
    memset(a, 0, sizeof *a);
    a->residual = a->skip = 1;

#define INT_KEY(key, field, max)                                                             \
    do {                                                                                     \
        snprintf(p, sizeof p, "%s.%s", path, key);                                           \
        if ((rc = get_int(cx, json_object_get(la, key), p, 1, max, &a->field)) < 0)          \
            return rc;                                                                       \
    } while (0)
    INT_KEY("input_size", input_size, 4096);
    INT_KEY("condition_size", condition_size, 4096);
    INT_KEY("channels", channels, 4096);
    if ((rc = refuse_unsupported(cx, la, path, a->channels)) < 0)
        return rc;

    /* dilations set the layer count */
    const json_t *dil = json_object_get(la, "dilations");
    snprintf(p, sizeof p, "%s.dilations", path);
    if (!json_is_array(dil) || json_array_size(dil) == 0)
        return fail(cx, CVD_EFORMAT, p, "must be a non-empty array of integers");
    if (json_array_size(dil) > CVD_WN_MAX_LAYERS)
        return fail(cx, CVD_EUNSUPPORTED, p, "%zu layers: at most %d are supported",
                    json_array_size(dil), CVD_WN_MAX_LAYERS);
    a->n_layers = (int)json_array_size(dil);

    /* head: old head_size + head_bias, or the newer {out_channels, kernel_size, bias} */
    const json_t *head = json_object_get(la, "head");
    if (json_is_object(head)) {
        snprintf(p, sizeof p, "%s.head.out_channels", path);
        if ((rc = get_int(cx, json_object_get(head, "out_channels"), p, 1, 4096, &a->head_size)) < 0)
            return rc;
        const json_t *ks = json_object_get(head, "kernel_size");
        int k = 1;
        snprintf(p, sizeof p, "%s.head.kernel_size", path);
        if (ks && (rc = get_int(cx, ks, p, 1, 1024, &k)) < 0)
            return rc;
        if (k != 1)
            return fail(cx, CVD_EUNSUPPORTED, p,
                        "%d: a head kernel larger than 1 is not supported yet", k);
        const json_t *hd = json_object_get(head, "head_dilation");
        snprintf(p, sizeof p, "%s.head.bias", path);
        if ((rc = get_bool(cx, json_object_get(head, "bias"), p, &a->head_bias)) < 0)
            return rc;
        (void)hd; /* irrelevant with a kernel of 1 */
    } else if (head == NULL || json_is_null(head)) {
        INT_KEY("head_size", head_size, 4096);
        snprintf(p, sizeof p, "%s.head_bias", path);
        if ((rc = get_bool(cx, json_object_get(la, "head_bias"), p, &a->head_bias)) < 0)
            return rc;
    } else {
        snprintf(p, sizeof p, "%s.head", path);
        return fail(cx, CVD_EFORMAT, p, "must be an object or null, not %s", type_name(head));
    }
#undef INT_KEY

    /* kernel sizes, activations and gating, per layer or for all */
    const json_t *ks = json_object_get(la, "kernel_sizes");
    const char *ks_key = "kernel_sizes";
    if (ks == NULL) {
        ks = json_object_get(la, "kernel_size");
        ks_key = "kernel_size";
    }
    const json_t *act = json_object_get(la, "activation");
    const json_t *gm = json_object_get(la, "gating_mode");
    const json_t *gated = json_object_get(la, "gated");
    const json_t *sec = json_object_get(la, "secondary_activation");
    if (act == NULL)
        return fail(cx, CVD_EFORMAT, path, "activation: missing");
    if (ks == NULL)
        return fail(cx, CVD_EFORMAT, path, "kernel_size (or kernel_sizes, one per layer): missing");

    for (int l = 0; l < a->n_layers; l++) {
        cvd_wn_layer *ly = &a->layers[l];
        const json_t *e;
        snprintf(p, sizeof p, "%s.dilations[%d]", path, l);
        if ((rc = get_int(cx, json_array_get(dil, (size_t)l), p, 1, 1 << 20, &ly->dilation)) < 0)
            return rc;
        snprintf(p, sizeof p, "%s.%s", path, ks_key);
        if ((e = per_layer(cx, ks, l, a->n_layers, p, &rc)) == NULL)
            return rc;
        if (json_is_array(ks))
            snprintf(p, sizeof p, "%s.%s[%d]", path, ks_key, l);
        if ((rc = get_int(cx, e, p, 1, 1024, &ly->kernel_size)) < 0)
            return rc;

        snprintf(p, sizeof p, "%s.activation", path);
        if ((e = per_layer(cx, act, l, a->n_layers, p, &rc)) == NULL)
            return rc;
        if (json_is_array(act))
            snprintf(p, sizeof p, "%s.activation[%d]", path, l);
        if ((rc = parse_activation(cx, e, p, a->channels, &ly->activation)) < 0)
            return rc;

        ly->gating = CVD_WN_GATING_NONE;
        if (gm != NULL && !json_is_null(gm)) {
            snprintf(p, sizeof p, "%s.gating_mode", path);
            if ((e = per_layer(cx, gm, l, a->n_layers, p, &rc)) == NULL)
                return rc;
            if (json_is_array(gm))
                snprintf(p, sizeof p, "%s.gating_mode[%d]", path, l);
            if ((rc = parse_gating(cx, e, p, &ly->gating)) < 0)
                return rc;
        } else if (gated != NULL) {
            int g = 0;
            snprintf(p, sizeof p, "%s.gated", path);
            if ((rc = get_bool(cx, gated, p, &g)) < 0)
                return rc;
            ly->gating = g ? CVD_WN_GATING_GATED : CVD_WN_GATING_NONE;
        }
        cvd_wn_activation_parse("Sigmoid", &ly->secondary, NULL);
        if (sec != NULL && !json_is_null(sec)) {
            snprintf(p, sizeof p, "%s.secondary_activation", path);
            if ((e = per_layer(cx, sec, l, a->n_layers, p, &rc)) == NULL)
                return rc;
            if (json_is_array(sec))
                snprintf(p, sizeof p, "%s.secondary_activation[%d]", path, l);
            if (json_is_null(e)) {
                if (ly->gating != CVD_WN_GATING_NONE)
                    return fail(cx, CVD_EFORMAT, p,
                                "null, but layer %d is gated or blended and needs one", l);
            } else if ((rc = parse_activation(cx, e, p, a->channels, &ly->secondary)) < 0) {
                return rc;
            }
        }
    }
    return CVD_OK;
}

/* "M.m.p" with 0.5.0 <= version < 0.8.0 */
static int check_version(nam_ctx *cx, const json_t *v)
{
    int M, m, pch, n = 0;
    const char *s = json_string_value(v);
    if (s == NULL)
        return fail(cx, CVD_EFORMAT, "version", "missing or not a string");
    if (sscanf(s, "%d.%d.%d%n", &M, &m, &pch, &n) != 3 || s[n] != '\0')
        return fail(cx, CVD_EUNSUPPORTED, "version",
                    "\"%s\" is not a version of the form M.m.p (0.5.x to 0.7.x are supported)",
                    s);
    if (M != 0 || m < 5 || m > 7)
        return fail(cx, CVD_EUNSUPPORTED, "version",
                    "\"%s\" is not supported (0.5.x to 0.7.x are)", s);
    return CVD_OK;
}

static int build(nam_ctx *cx, const json_t *root, cvd_model **out)
{
    const json_t *cfg, *layers, *weights, *v;
    cvd_wn_config *wn = NULL;
    cvd_model *m = NULL;
    float *w = NULL;
    int rc, in_ch = 1;

    if (!json_is_object(root))
        return fail(cx, CVD_EFORMAT, NULL, "the top level must be a JSON object");
    if ((rc = check_version(cx, json_object_get(root, "version"))) < 0)
        return rc;
    v = json_object_get(root, "architecture");
    if (!json_is_string(v))
        return fail(cx, CVD_EFORMAT, "architecture", "missing or not a string");
    if (strcmp(json_string_value(v), "WaveNet") != 0)
        return fail(cx, CVD_EUNSUPPORTED, "architecture",
                    "\"%s\" is not supported (only WaveNet is)", json_string_value(v));
    cfg = json_object_get(root, "config");
    if (!json_is_object(cfg))
        return fail(cx, CVD_EFORMAT, "config", "missing or not an object");
    v = json_object_get(cfg, "head");
    if (v != NULL && !json_is_null(v))
        return fail(cx, CVD_EUNSUPPORTED, "config.head",
                    "a post-stack head is not supported yet (only null)");
    v = json_object_get(cfg, "condition_dsp");
    if (v != NULL && !json_is_null(v))
        return fail(cx, CVD_EUNSUPPORTED, "config.condition_dsp",
                    "a condition DSP is not supported yet (only null)");
    v = json_object_get(cfg, "in_channels");
    if (v != NULL && (rc = get_int(cx, v, "config.in_channels", 1, 4096, &in_ch)) < 0)
        return rc;
    layers = json_object_get(cfg, "layers");
    if (!json_is_array(layers) || json_array_size(layers) == 0)
        return fail(cx, CVD_EFORMAT, "config.layers", "must be a non-empty array");
    if (json_array_size(layers) > CVD_WN_MAX_ARRAYS)
        return fail(cx, CVD_EUNSUPPORTED, "config.layers", "%zu layer arrays: at most %d",
                    json_array_size(layers), CVD_WN_MAX_ARRAYS);

    wn = calloc(1, sizeof *wn);
    if (wn == NULL)
        return fail(cx, CVD_ENOMEM, NULL, "out of memory");
    wn->n_arrays = (int)json_array_size(layers);
    wn->prewarm = 1;
    for (int i = 0; i < wn->n_arrays; i++)
        if ((rc = parse_array(cx, json_array_get(layers, (size_t)i), i, &wn->arrays[i])) < 0)
            goto done;
    if (wn->arrays[0].input_size != in_ch) {
        rc = fail(cx, CVD_EFORMAT, "config.layers[0].input_size",
                  "%d, but in_channels is %d", wn->arrays[0].input_size, in_ch);
        goto done;
    }
    if ((rc = cvd_wn_config_check(wn, cx->err)) < 0) {
        cvd_err_prefix(cx->err, "%s: config", cx->file);
        goto done;
    }

    /* weights: the exact count the configuration implies */
    weights = json_object_get(root, "weights");
    size_t need = cvd_wn_weight_count(wn), n = json_array_size(weights);
    if (!json_is_array(weights)) {
        rc = fail(cx, CVD_EFORMAT, "weights", "missing or not an array");
        goto done;
    }
    if (n != need) {
        rc = fail(cx, CVD_EFORMAT, "weights",
                  "%zu values given, the configuration needs %zu", n, need);
        goto done;
    }
    w = malloc(sizeof(float) * need);
    if (w == NULL) {
        rc = fail(cx, CVD_ENOMEM, NULL, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        char p[64];
        snprintf(p, sizeof p, "weights[%zu]", i);
        if ((rc = get_float(cx, json_array_get(weights, i), p, &w[i])) < 0)
            goto done;
    }

    if ((rc = cvd_model_create(in_ch, &m, cx->err)) < 0)
        goto done;
    int node = cvd_model_add_wavenet(m, "wavenet", wn, 0, cx->err);
    if (node < 0) {
        rc = node;
        cvd_err_prefix(cx->err, "%s", cx->file);
        goto done;
    }
    if ((rc = cvd_model_set_var(m, node, 0, w, need, cx->err)) < 0)
        goto done;
    v = json_object_get(root, "sample_rate");
    if (json_is_number(v) && json_number_value(v) > 0)
        cvd_model_set_sample_rate(m, json_number_value(v));
    v = json_object_get(root, "metadata");
    if (json_is_object(v)) {
        const json_t *nm = json_object_get(v, "name");
        if (json_is_string(nm))
            cvd_model_set_description(m, json_string_value(nm));
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

int cvd_nam_parse(const char *text, size_t len, const char *name, cvd_model **out,
                  cvd_err *err)
{
    nam_ctx cx = {name ? name : "(nam)", err};
    json_error_t je;
    json_t *root;
    int rc;

    *out = NULL;
    root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    if (root == NULL)
        return fail(&cx, CVD_EFORMAT, NULL, "JSON error at line %d, column %d: %s", je.line,
                    je.column, je.text);
    rc = build(&cx, root, out);
    json_decref(root);
    return rc;
}

int cvd_nam_load(const char *path, cvd_model **out, cvd_err *err)
{
    nam_ctx cx = {path, err};
    FILE *f;
    char *buf = NULL;
    size_t len = 0, cap = 0, r;
    int rc;

    *out = NULL;
    f = fopen(path, "rb");
    if (f == NULL)
        return fail(&cx, CVD_EIO, NULL, "cannot open: %s", strerror(errno));
    for (;;) {
        if (len == cap) {
            size_t ncap = cap ? cap * 2 : 1 << 16;
            char *nb;
            if (ncap > (size_t)1 << 30) {
                fclose(f);
                free(buf);
                return fail(&cx, CVD_EFORMAT, NULL, "larger than 1 GiB: not a model file");
            }
            nb = realloc(buf, ncap);
            if (nb == NULL) {
                fclose(f);
                free(buf);
                return fail(&cx, CVD_ENOMEM, NULL, "out of memory");
            }
            buf = nb;
            cap = ncap;
        }
        r = fread(buf + len, 1, cap - len, f);
        len += r;
        if (r == 0)
            break;
    }
    if (ferror(f)) {
        fclose(f);
        free(buf);
        return fail(&cx, CVD_EIO, NULL, "read error");
    }
    fclose(f);
    rc = cvd_nam_parse(buf, len, path, out, err);
    free(buf);
    return rc;
}
