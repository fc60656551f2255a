/*
 * Neural Amp Modeler .nam files into a model. What NeuralAmpModelerCore 0.5.x-0.7.x reads of
 * the WaveNet architecture (one fused WaveNet node), including the newer per-layer lists
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

/* ---- the file ----------------------------------------------------------------------------- */

static const struct {
    const char *name;
    int (*build)(cvd_jr *r, json_t *root, json_t *config, cvd_model **out);
} architectures[] = {
    {"WaveNet", nam_wavenet},
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
        (rc = nam_level(r, meta, "input_level_dbu", &lv.has_input_level,
                        &lv.input_level_dbu)) < 0 ||
        (rc = nam_level(r, meta, "output_level_dbu", &lv.has_output_level,
                        &lv.output_level_dbu)) < 0)
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
    if (a == sizeof architectures / sizeof architectures[0])
        return cvd_jr_bad(r, CVD_EUNSUPPORTED, "", "architecture", NULL,
                          "\"%s\" is not supported (only WaveNet is)", arch);
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
