/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Keras model files into cvd_models, read directly (no TensorFlow, no Python):
 *
 *   .keras        Keras 3: a zip archive (libzip) of config.json and model.weights.h5;
 *                 the HDF5 file is opened from memory. Weights are found where Keras writes
 *                 them: layers/<snake_case class name>[_N]/vars/<i>, N counting the layers of
 *                 that class in the model's layer order, whatever the layers are named.
 *   .h5, .hdf5    Keras 2 full models: the root attribute model_config (JSON) and the weights
 *                 under model_weights/<layer>/..., listed by the attributes layer_names and
 *                 weight_names, matched to the model's layers in order as Keras does.
 *   CONFIG+WEIGHTS  a model config (model.to_json(), or a .keras's config.json) with a
 *                 weights file: Keras 2's layout (save_weights to .h5, the root listing the
 *                 layers) or Keras 3's (.weights.h5, layers/.../vars/i).
 *
 * The config (Sequential or Functional, Keras 3's inbound nodes or Keras 2's) is translated
 * into convd's model JSON and built by the shared builder (json_model.c), which knows every
 * layer's arguments; the weights are then read into the model, each dataset's rank, shape and
 * type checked before it is read. HDF5's own error printing is off: its errors become
 * messages. Every refusal names the file, and the layer with its class when one is at fault.
 *
 * This file maps the config onto convd's layers, finds each layer's weights and holds the entry
 * points; keras_h5.c reads files, zip entries and HDF5, keras_tcn.c expands keras-tcn's TCN
 * layer and keras_tcn_weights.c reads its weights (keras_internal.h joins them).
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

/* ---- messages ------------------------------------------------------------------------------ */

int kx_bad(kx_ctx *c, int code, const char *fmt, ...)
{
    char msg[CVD_ERR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return cvd_err_set(&c->e, code, "%s: %s", c->file, msg);
}

int kx_node(const kx_ctx *c, const char *name)
{
    for (int i = 1; i < cvd_model_node_count(c->m); i++)
        if (strcmp(cvd_model_node_name(c->m, i), name) == 0)
            return i;
    return -1;
}

/* ---- the config -------------------------------------------------------------------------------
 */

/* Keras's naming.to_snake_case: drop non-word characters, then "_" before a capital that
 * starts a lower-case run (after any character) and between a lower-case letter and a
 * capital; lower-case. */
static void kx_snake(const char *in, char *out, size_t n)
{
    char a[256], b[512];
    size_t la = 0, lb = 0;
    for (const char *p = in; *p && la + 1 < sizeof a; p++)
        if (isalnum((unsigned char)*p) || *p == '_')
            a[la++] = *p;
    a[la] = '\0';
    /* (.)([A-Z][a-z]+) -> \1_\2, matches not overlapping */
    for (size_t i = 0; i < la && lb + 2 < sizeof b;) {
        if (i + 2 < la + 0 && isupper((unsigned char)a[i + 1]) &&
            islower((unsigned char)a[i + 2])) {
            size_t j = i + 2;
            while (j < la && islower((unsigned char)a[j]))
                j++;
            b[lb++] = a[i];
            b[lb++] = '_';
            for (size_t k = i + 1; k < j && lb + 1 < sizeof b; k++)
                b[lb++] = a[k];
            i = j;
        } else {
            b[lb++] = a[i++];
        }
    }
    b[lb] = '\0';
    /* ([a-z])([A-Z]) -> \1_\2 */
    size_t o = 0;
    for (size_t i = 0; i < lb && o + 2 < n;) {
        if (i + 1 < lb && islower((unsigned char)b[i]) && isupper((unsigned char)b[i + 1])) {
            out[o++] = b[i];
            out[o++] = '_';
            out[o++] = (char)tolower((unsigned char)b[i + 1]);
            i += 2;
        } else {
            out[o++] = (char)tolower((unsigned char)b[i]);
            i++;
        }
    }
    out[o] = '\0';
}

/* The compute dtype of a layer: float32 and the mixed policies compute in float32 here. */
static int kx_dtype(kx_ctx *c, const kx_layer *L, json_t *cfg)
{
    json_t *d = cfg ? json_object_get(cfg, "dtype") : NULL;
    const char *name = NULL, *cls = NULL;
    static const char *const ok[] = {"float32",  "float64",       "float16",
                                     "bfloat16", "mixed_float16", "mixed_bfloat16"};
    if (d == NULL || json_is_null(d))
        return CVD_OK;
    if (json_is_string(d)) {
        name = json_string_value(d);
    } else if (json_is_object(d)) {
        cls = json_string_value(json_object_get(d, "class_name"));
        name = json_string_value(json_object_get(json_object_get(d, "config"), "name"));
        if (cls != NULL && strstr(cls, "Quantized") != NULL)
            return kx_bad(c, CVD_EUNSUPPORTED,
                          "%s%s (%s): dtype policy %s ('%s'): quantized layers are not "
                          "supported",
                          c->lp, L->where, L->cls, cls, name ? name : "?");
    }
    if (name == NULL)
        return kx_bad(c, CVD_EFORMAT, "%s%s (%s): config.dtype: not a dtype or a dtype policy",
                      c->lp, L->where, L->cls);
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
        if (strcmp(name, ok[i]) == 0)
            return CVD_OK;
    return kx_bad(c, CVD_EUNSUPPORTED,
                  "%s%s (%s): dtype '%s': convd computes float32 (it accepts float32, float64, "
                  "float16, bfloat16 and the mixed policies)",
                  c->lp, L->where, L->cls, name);
}

/* A layer call's keyword arguments: training=True keeps training behaviour at inference
 * (dropout active, batch statistics), which convd refuses; mask=None is harmless. */
static int kx_kwargs(kx_ctx *c, const kx_layer *L, json_t *kw)
{
    const char *key;
    json_t *v;
    if (kw == NULL || json_is_null(kw))
        return CVD_OK;
    if (!json_is_object(kw))
        return kx_bad(c, CVD_EFORMAT,
                      "%s%s (%s): inbound node: keyword arguments are not an "
                      "object",
                      c->lp, L->where, L->cls);
    json_object_foreach(kw, key, v)
    {
        if (strcmp(key, "training") == 0) {
            if (json_is_true(v))
                return kx_bad(c, CVD_EUNSUPPORTED,
                              "%s%s (%s) is called with training=True: it behaves as in "
                              "training at inference too (random dropout, batch statistics), "
                              "which convd does not do",
                              c->lp, L->where, L->cls);
            if (!json_is_false(v) && !json_is_null(v))
                return kx_bad(c, CVD_EFORMAT, "%s%s (%s): training must be true or false", c->lp,
                              L->where, L->cls);
            continue;
        }
        if (strcmp(key, "mask") == 0 && json_is_null(v))
            continue;
        return kx_bad(c, CVD_EUNSUPPORTED,
                      "%s%s (%s) is called with the argument '%s', which convd does not "
                      "support",
                      c->lp, L->where, L->cls, key);
    }
    return CVD_OK;
}

/* One reference [name, node_index, tensor_index] to a layer's output. */
static int kx_ref(kx_ctx *c, const kx_layer *L, json_t *name, json_t *ni, json_t *ti,
                  json_t *inputs)
{
    if (!json_is_string(name) || !json_is_integer(ni) || !json_is_integer(ti))
        return kx_bad(c, CVD_EFORMAT,
                      "%s%s (%s): inbound node: a tensor reference is [layer name, node "
                      "index, tensor index]",
                      c->lp, L->where, L->cls);
    if (json_integer_value(ni) != 0 || json_integer_value(ti) != 0)
        return kx_bad(c, CVD_EUNSUPPORTED,
                      "%s%s (%s) reads output %lld of call %lld of layer '%s': shared layers "
                      "(called more than once) and layers with several outputs are not supported",
                      c->lp, L->where, L->cls, (long long)json_integer_value(ti),
                      (long long)json_integer_value(ni), json_string_value(name));
    return json_array_append(inputs, name) == 0 ? CVD_OK : kx_bad(c, CVD_ENOMEM, "out of memory");
}

/* A Keras 3 tensor {"class_name": "__keras_tensor__", "config": {"keras_history": [...]}}. */
static int kx_tensor3(kx_ctx *c, const kx_layer *L, json_t *t, json_t *inputs)
{
    json_t *h = json_object_get(json_object_get(t, "config"), "keras_history");
    const char *cn = json_string_value(json_object_get(t, "class_name"));
    if (!json_is_object(t) || cn == NULL || strcmp(cn, "__keras_tensor__") != 0 ||
        !json_is_array(h) || json_array_size(h) != 3)
        return kx_bad(c, CVD_EUNSUPPORTED,
                      "%s%s (%s): inbound node: an argument that is not a tensor of the "
                      "model (convd runs layers called on tensors only)",
                      c->lp, L->where, L->cls);
    return kx_ref(c, L, json_array_get(h, 0), json_array_get(h, 1), json_array_get(h, 2), inputs);
}

/* The layers a Functional model's layer reads, from its inbound nodes (Keras 3:
 * {"args": [...], "kwargs": {...}}; Keras 2: [[name, node, tensor, kwargs], ...]). */
int kx_inbound(kx_ctx *c, const kx_layer *L, json_t *layer, json_t *copy)
{
    json_t *nodes = json_object_get(layer, "inbound_nodes"), *node, *inputs;
    int rc = CVD_OK;
    if (L->input) {
        if (nodes != NULL && !(json_is_array(nodes) && json_array_size(nodes) == 0))
            return kx_bad(c, CVD_EFORMAT, "%s%s: an InputLayer has no inbound nodes", c->lp,
                          L->where);
        return CVD_OK;
    }
    if (!json_is_array(nodes) || json_array_size(nodes) == 0)
        return kx_bad(c, CVD_EINVAL, "%s%s (%s) is not called on anything (no inbound_nodes)",
                      c->lp, L->where, L->cls);
    if (json_array_size(nodes) > 1)
        return kx_bad(c, CVD_EUNSUPPORTED,
                      "%s%s (%s) is called %zu times (a shared layer): convd runs each layer "
                      "once",
                      c->lp, L->where, L->cls, json_array_size(nodes));
    node = json_array_get(nodes, 0);
    inputs = json_array();
    if (inputs == NULL)
        return kx_bad(c, CVD_ENOMEM, "out of memory");
    if (json_is_object(node)) {
        json_t *args = json_object_get(node, "args");
        if (!json_is_array(args) || json_array_size(args) == 0) {
            json_decref(inputs);
            return kx_bad(c, CVD_EFORMAT, "%s%s (%s): inbound node without args", c->lp, L->where,
                          L->cls);
        }
        for (size_t i = 0; i < json_array_size(args) && rc == CVD_OK; i++) {
            json_t *a = json_array_get(args, i);
            if (json_is_array(a))
                for (size_t k = 0; k < json_array_size(a) && rc == CVD_OK; k++)
                    rc = kx_tensor3(c, L, json_array_get(a, k), inputs);
            else
                rc = kx_tensor3(c, L, a, inputs);
        }
        if (rc == CVD_OK)
            rc = kx_kwargs(c, L, json_object_get(node, "kwargs"));
    } else if (json_is_array(node) && json_array_size(node) > 0) {
        for (size_t i = 0; i < json_array_size(node) && rc == CVD_OK; i++) {
            json_t *e = json_array_get(node, i);
            if (!json_is_array(e) || json_array_size(e) < 3 || json_array_size(e) > 4) {
                rc = kx_bad(c, CVD_EFORMAT,
                            "%s%s (%s): inbound node: an entry is [layer name, node index, "
                            "tensor index, kwargs]",
                            c->lp, L->where, L->cls);
                break;
            }
            rc = kx_ref(c, L, json_array_get(e, 0), json_array_get(e, 1), json_array_get(e, 2),
                        inputs);
            if (rc == CVD_OK && json_array_size(e) == 4)
                rc = kx_kwargs(c, L, json_array_get(e, 3));
        }
    } else {
        rc = kx_bad(c, CVD_EFORMAT,
                    "%s%s (%s): an inbound node must be an object (Keras 3) or "
                    "a list (Keras 2)",
                    c->lp, L->where, L->cls);
    }
    if (rc == CVD_OK && json_object_set_new(copy, "inputs", inputs) != 0)
        return kx_bad(c, CVD_ENOMEM, "out of memory");
    if (rc < 0)
        json_decref(inputs);
    return rc;
}

/* [name, 0, 0], or a list of one of them (input_layers, output_layers). */
static const char *kx_io_name(kx_ctx *c, json_t *v, const char *key, int *rc)
{
    *rc = CVD_OK;
    if (json_is_array(v) && json_array_size(v) == 1 && json_is_array(json_array_get(v, 0)))
        v = json_array_get(v, 0);
    if (json_is_object(v) && json_object_size(v) == 1) { /* a dict of one */
        const char *k;
        json_t *x;
        json_object_foreach(v, k, x) v = x;
    }
    if (json_is_array(v) && json_array_size(v) == 3 && json_is_string(json_array_get(v, 0))) {
        if (json_integer_value(json_array_get(v, 1)) != 0 ||
            json_integer_value(json_array_get(v, 2)) != 0) {
            *rc = kx_bad(c, CVD_EUNSUPPORTED,
                         "%sconfig.%s: a model %s a layer's second output "
                         "or call",
                         c->lp, key, strcmp(key, "input_layers") ? "returns" : "takes");
            return NULL;
        }
        return json_string_value(json_array_get(v, 0));
    }
    *rc = kx_bad(c, CVD_EUNSUPPORTED,
                 "%sconfig.%s: convd runs models with one input and one output", c->lp, key);
    return NULL;
}

/* The class of a config entry: Keras's own layers only. */
static int kx_class(kx_ctx *c, kx_layer *L, json_t *layer)
{
    json_t *cn = json_object_get(layer, "class_name");
    const char *module = json_string_value(json_object_get(layer, "module"));
    const char *reg = json_string_value(json_object_get(layer, "registered_name"));
    const char *cls = json_string_value(cn), *why;
    if (cls == NULL)
        return kx_bad(c, CVD_EFORMAT, "%s%s: class_name: missing or not a string", c->lp, L->where);
    L->cls = cls;
    const int custom = (module != NULL && strncmp(module, "keras", 5) != 0) ||
                       (reg != NULL && strcmp(reg, cls) != 0);
    if (custom)
        return kx_bad(c, CVD_EUNSUPPORTED,
                      "%s%s: class_name='%s': a custom layer (module '%s'%s%s%s), not one of "
                      "Keras's own: convd cannot know what it computes",
                      c->lp, L->where, cls, module ? module : "?", reg ? ", registered as '" : "",
                      reg ? reg : "", reg ? "'" : "");
    L->cls = cvd_json_canonical_class(cls);
    if (L->cls != NULL)
        return CVD_OK;
    L->cls = cls;
    why = cvd_json_unsupported_reason(cls);
    return kx_bad(c, CVD_EUNSUPPORTED, "%s%s: class_name='%s': %s", c->lp, L->where, cls,
                  why ? why
                      : "a layer convd does not support (docs/KERAS.md lists those it "
                        "reads)");
}

/* The Keras model config into convd's model JSON (*out). */
static int kx_translate(kx_ctx *c, json_t *top, json_t **out)
{
    json_t *cfg, *layers, *root = NULL, *list = NULL;
    const char *mcls;
    int functional, rc = CVD_OK, n_inputs = 0;

    *out = NULL;
    if (!json_is_object(top))
        return kx_bad(c, CVD_EFORMAT, "%snot a Keras model config (a JSON object)", c->lp);
    mcls = json_string_value(json_object_get(top, "class_name"));
    if (mcls == NULL)
        return kx_bad(c, CVD_EFORMAT, "%sclass_name: missing (not a Keras model config)", c->lp);
    snprintf(c->model_class, sizeof c->model_class, "%s", mcls);
    if (strcmp(mcls, "Sequential") == 0)
        functional = 0;
    else if (strcmp(mcls, "Functional") == 0 || strcmp(mcls, "Model") == 0)
        functional = 1;
    else
        return kx_bad(c, CVD_EUNSUPPORTED,
                      "%sclass_name='%s': a subclassed or unknown model class; convd reads "
                      "Sequential and Functional models",
                      c->lp, mcls);
    cfg = json_object_get(top, "config");
    layers = json_is_array(cfg) ? cfg : json_object_get(cfg, "layers"); /* Keras 2.0: a list */
    if (!json_is_array(layers) || json_array_size(layers) == 0)
        return kx_bad(c, CVD_EFORMAT, "%sconfig.layers: missing or empty", c->lp);
    if (json_array_size(layers) > 65536)
        return kx_bad(c, CVD_EINVAL, "%sconfig.layers: more than 65536 layers", c->lp);
    if (json_is_string(json_object_get(cfg, "name")))
        snprintf(c->model_name, sizeof c->model_name, "%s",
                 json_string_value(json_object_get(cfg, "name")));
    c->n_layers = (int)json_array_size(layers);
    c->layers = calloc((size_t)c->n_layers, sizeof *c->layers);
    root = json_pack("{s:s, s:i}", "format", "convd-model", "version", 1);
    list = json_array();
    if (c->layers == NULL || root == NULL || list == NULL) {
        rc = kx_bad(c, CVD_ENOMEM, "out of memory");
        goto fail;
    }
    for (int i = 0; i < c->n_layers && rc == CVD_OK; i++) {
        kx_layer *L = &c->layers[i];
        json_t *layer = json_array_get(layers, (size_t)i), *copy, *lc;
        snprintf(L->where, sizeof L->where, "layers[%d]", i);
        if (!json_is_object(layer)) {
            rc = kx_bad(c, CVD_EFORMAT, "%s%s: not an object", c->lp, L->where);
            break;
        }
        lc = json_object_get(layer, "config");
        L->name = json_string_value(json_object_get(layer, "name"));
        if (L->name == NULL)
            L->name = json_string_value(json_object_get(lc, "name"));
        if (L->name != NULL)
            snprintf(L->where, sizeof L->where, "layers[%d] (%.100s)", i, L->name);
        if (kx_is_tcn(layer)) { /* keras-tcn: expanded into convd's layers */
            L->cls = "TCN";
            if (L->name == NULL)
                rc = kx_bad(c, CVD_EFORMAT, "%s%s (TCN): the layer has no name", c->lp, L->where);
            if (rc == CVD_OK)
                rc = kx_dtype(c, L, lc);
            if (rc == CVD_OK)
                rc = kx_tcn_translate(c, L, layer, root, list, functional);
            continue;
        }
        if ((rc = kx_class(c, L, layer)) < 0 || (rc = kx_dtype(c, L, lc)) < 0)
            break;
        if (L->name == NULL) {
            rc =
                kx_bad(c, CVD_EFORMAT, "%s%s (%s): the layer has no name", c->lp, L->where, L->cls);
            break;
        }
        L->input = strcmp(L->cls, "InputLayer") == 0;
        n_inputs += L->input;
        L->renorm = strcmp(L->cls, "BatchNormalization") == 0 &&
                    json_is_true(json_object_get(lc, "renorm"));
        copy = json_deep_copy(layer);
        if (copy == NULL || json_array_append_new(list, copy) != 0) {
            rc = kx_bad(c, CVD_ENOMEM, "out of memory");
            break;
        }
        json_object_del(copy, "inbound_nodes");
        json_object_set_new(copy, "class_name", json_string(L->cls));
        json_object_set_new(copy, "name", json_string(L->name));
        if (functional) {
            rc = kx_inbound(c, L, layer, copy);
        } else if (!L->input) {
            /* Keras 2's Sequential: the first layer carries the input's shape */
            json_t *cc = json_object_get(copy, "config");
            static const char *const keys[] = {"batch_input_shape", "batch_shape"};
            for (int k = 0; k < 2 && json_is_object(cc); k++) {
                json_t *bs = json_object_get(cc, keys[k]);
                if (bs == NULL)
                    continue;
                if (n_inputs == 0 && json_object_get(root, "input_shape") == NULL)
                    json_object_set(root, "input_shape", bs);
                json_object_del(cc, keys[k]);
            }
        }
    }
    if (rc < 0)
        goto fail;
    if (n_inputs > 1) {
        rc = kx_bad(c, CVD_EUNSUPPORTED, "%s%d InputLayers: convd runs models with one input",
                    c->lp, n_inputs);
        goto fail;
    }
    if (!functional && n_inputs == 0 && json_object_get(root, "input_shape") == NULL) {
        json_t *bs = json_object_get(cfg, "build_input_shape");
        if (json_is_array(bs)) {
            json_object_set(root, "input_shape", bs);
        } else {
            rc = kx_bad(c, CVD_EFORMAT,
                        "%sthe model does not say its input's shape (no InputLayer, no "
                        "batch_input_shape): convd needs the input channels",
                        c->lp);
            goto fail;
        }
    }
    if (functional) {
        const char *in = kx_io_name(c, json_object_get(cfg, "input_layers"), "input_layers", &rc);
        if (rc < 0)
            goto fail;
        const char *o = kx_io_name(c, json_object_get(cfg, "output_layers"), "output_layers", &rc);
        if (rc < 0)
            goto fail;
        int found = 0;
        for (int i = 0; i < c->n_layers; i++)
            found |= c->layers[i].input && strcmp(c->layers[i].name, in) == 0;
        if (!found) {
            rc = kx_bad(c, CVD_EINVAL,
                        "%sconfig.input_layers names '%s', which is not the "
                        "model's InputLayer",
                        c->lp, in);
            goto fail;
        }
        json_object_set_new(root, "output", json_string(o));
    }
    json_object_set_new(root, "layers", list);
    *out = root;
    return CVD_OK;
fail:
    json_decref(list);
    json_decref(root);
    return rc;
}

/* Builds c->m from a model config's text. */
static int kx_build(kx_ctx *c, const char *text, size_t len)
{
    snprintf(c->lp, sizeof c->lp, "%s%s", c->label, c->label[0] ? ": " : "");
    json_error_t je;
    json_t *top = json_loadb(text, len, 0, &je), *root = NULL;
    int rc;
    if (top == NULL)
        return kx_bad(c, CVD_EFORMAT, "%s%sline %d, column %d: invalid JSON: %s", c->label,
                      c->label[0] ? ": " : "", je.line, je.column, je.text);
    rc = kx_translate(c, top, &root);
    if (rc == CVD_OK) {
        char full[1200];
        if (c->label[0])
            snprintf(full, sizeof full, "%s: %s", c->file, c->label);
        else
            snprintf(full, sizeof full, "%s", c->file);
        rc = cvd_json_model_build(root, full, NULL, &c->m, &c->e);
    }
    if (rc == CVD_OK) {
        char d[256];
        snprintf(d, sizeof d, "Keras %s '%s'", c->model_class, c->model_name);
        cvd_model_set_description(c->m, d);
    }
    json_decref(root);
    c->top = top; /* kept: the layer list points into it */
    return rc;
}

/* ---- weights -----------------------------------------------------------------------------------
 */

/* Keras 3: layers/<snake_case class>[_N]/vars/<i>. */
static int kx_weights3(kx_ctx *c, hid_t fid, const char *where)
{
    char(*seen)[96] = calloc((size_t)c->n_layers + 1, sizeof *seen);
    int *count = calloc((size_t)c->n_layers + 1, sizeof *count), n_seen = 0, rc = CVD_OK;
    if (seen == NULL || count == NULL) {
        free(seen);
        free(count);
        return kx_bad(c, CVD_ENOMEM, "out of memory");
    }
    for (int i = 0; i < c->n_layers && rc == CVD_OK; i++) {
        const kx_layer *L = &c->layers[i];
        char snake[96], path[KX_MAX_PATH], vpath[KX_MAX_PATH + 16], shown[KX_MAX_PATH + 200];
        int k, nv, node;
        kx_snake(L->cls, snake, sizeof snake);
        for (k = 0; k < n_seen && strcmp(seen[k], snake) != 0; k++)
            ;
        if (k == n_seen)
            snprintf(seen[n_seen++], sizeof seen[0], "%s", snake);
        if (count[k] == 0)
            snprintf(path, sizeof path, "layers/%s/vars", snake);
        else
            snprintf(path, sizeof path, "layers/%s_%d/vars", snake, count[k]);
        count[k]++;
        if (L->input)
            continue;
        if (L->tcn != NULL) {
            path[strlen(path) - 5] = '\0'; /* without "/vars" */
            rc = kx_tcn_weights3(c, fid, where, path, L);
            continue;
        }
        node = kx_node(c, L->name);
        nv = node > 0 ? cvd_model_var_count(c->m, node) : 0;
        snprintf(shown, sizeof shown, "%s%s", where, path);
        int ex = kx_h5_hard(c, fid, path, shown);
        if (ex < 0) {
            rc = ex;
            break;
        }
        /* the variables the file holds for this layer */
        hsize_t held = 0;
        if (ex > 0) {
            H5G_info_t gi;
            if (H5Gget_info_by_name(fid, path, &gi, H5P_DEFAULT) < 0) {
                char h5m[256];
                rc = kx_bad(c, CVD_EFORMAT, "%s: not a group: %s", shown, kx_h5_msg(h5m));
                break;
            }
            held = gi.nlinks;
        }
        if (nv == 0 && held == 0)
            continue;
        if (ex == 0) {
            rc = kx_bad(c, CVD_EFORMAT,
                        "%s: missing: the weights of %s (%s), %d variable%s (Keras writes them "
                        "by class name: is this the model's own weights file?)",
                        shown, L->where, L->cls, nv, nv == 1 ? "" : "s");
            break;
        }
        if (held != (hsize_t)nv + (L->renorm ? 3u : 0u)) {
            rc = kx_bad(c, CVD_EINVAL, "%s: %llu variables, but %s (%s) has %d%s", shown,
                        (unsigned long long)held, L->where, L->cls, nv,
                        L->renorm ? " (and renorm's 3)" : "");
            break;
        }
        for (int v = 0; v < nv && rc == CVD_OK; v++) {
            snprintf(vpath, sizeof vpath, "%s/%d", path, v);
            snprintf(shown, sizeof shown, "%s%s", where, vpath);
            rc = kx_h5_var(c, fid, vpath, shown, L, node, v);
        }
    }
    free(seen);
    free(count);
    return rc;
}

/* Keras 2: the group `g` lists its layers (layer_names), each its weights (weight_names);
 * layers with weights are matched to the model's in order, as Keras's load_weights does. */
static int kx_weights2(kx_ctx *c, hid_t g, const char *gname, const char *where)
{
    char **names = NULL, shown[KX_MAX_PATH + 300];
    int n_names = -1, rc, n_file = 0, n_model = 0;
    int *file_idx = NULL, *model_idx = NULL;
    char ***wn = NULL;
    int *n_wn = NULL;

    snprintf(shown, sizeof shown, "%s%s", where, gname[0] ? gname : "/");
    rc = kx_h5_strings(c, g, "layer_names", shown, &names, &n_names);
    if (rc < 0)
        return rc;
    if (n_names < 0)
        return kx_bad(c, CVD_EFORMAT,
                      "%s: no layer_names attribute: not a Keras weights file (Keras 2 lists its "
                      "layers there; Keras 3 writes layers/<class>/vars)",
                      shown);
    file_idx = calloc((size_t)n_names + 1, sizeof *file_idx);
    model_idx = calloc((size_t)c->n_layers + 1, sizeof *model_idx);
    wn = calloc((size_t)n_names + 1, sizeof *wn);
    n_wn = calloc((size_t)n_names + 1, sizeof *n_wn);
    if (!file_idx || !model_idx || !wn || !n_wn) {
        rc = kx_bad(c, CVD_ENOMEM, "out of memory");
        goto done;
    }
    for (int i = 0; i < n_names && rc == CVD_OK; i++) {
        snprintf(shown, sizeof shown, "%s%s%s%s", where, gname, gname[0] ? "/" : "", names[i]);
        int ex = kx_h5_hard(c, g, names[i], shown);
        if (ex <= 0) {
            rc = ex < 0 ? ex : kx_bad(c, CVD_EFORMAT, "%s: missing (layer_names lists it)", shown);
            break;
        }
        hid_t lg = H5Gopen2(g, names[i], H5P_DEFAULT);
        if (lg < 0) {
            char h5m[256];
            rc = kx_bad(c, CVD_EFORMAT, "%s: not a group: %s", shown, kx_h5_msg(h5m));
            break;
        }
        rc = kx_h5_strings(c, lg, "weight_names", shown, &wn[i], &n_wn[i]);
        H5Gclose(lg);
        if (rc == CVD_OK && n_wn[i] > 0)
            file_idx[n_file++] = i;
    }
    if (rc < 0)
        goto done;
    for (int i = 0; i < c->n_layers; i++) {
        int node = c->layers[i].input ? -1 : kx_node(c, c->layers[i].name);
        if (c->layers[i].tcn != NULL || (node > 0 && cvd_model_var_count(c->m, node) > 0))
            model_idx[n_model++] = i;
    }
    if (n_file != n_model) {
        char fl[200] = "", ml[200] = "";
        size_t o = 0;
        for (int k = 0; k < n_file && o < sizeof fl; k++)
            o += (size_t)snprintf(fl + o, sizeof fl - o, "%s%s", k ? ", " : "", names[file_idx[k]]);
        o = 0;
        for (int k = 0; k < n_model && o < sizeof ml; k++)
            o += (size_t)snprintf(ml + o, sizeof ml - o, "%s%s", k ? ", " : "",
                                  c->layers[model_idx[k]].name);
        rc = kx_bad(c, CVD_EINVAL,
                    "%sweights for %d layers (%s), but the model has %d layers with weights "
                    "(%s): not this model's weights",
                    where, n_file, fl, n_model, ml);
        goto done;
    }
    for (int k = 0; k < n_file && rc == CVD_OK; k++) {
        const int fi = file_idx[k];
        const kx_layer *L = &c->layers[model_idx[k]];
        snprintf(shown, sizeof shown, "%s%s%s%s", where, gname, gname[0] ? "/" : "", names[fi]);
        if (L->tcn != NULL) { /* its variables by name */
            hid_t lg = H5Gopen2(g, names[fi], H5P_DEFAULT);
            if (lg < 0) {
                char h5m[256];
                rc = kx_bad(c, CVD_EFORMAT, "%s: %s", shown, kx_h5_msg(h5m));
                break;
            }
            size_t o = strlen(shown);
            snprintf(shown + o, sizeof shown - o, "/");
            rc = kx_tcn_weights2(c, lg, shown, wn[fi], n_wn[fi], L);
            H5Gclose(lg);
            continue;
        }
        const int node = kx_node(c, L->name), nv = cvd_model_var_count(c->m, node);
        if (n_wn[fi] != nv && !(L->renorm && n_wn[fi] > nv)) {
            rc = kx_bad(c, CVD_EINVAL, "%s: %d weights, but %s (%s) has %d variables", shown,
                        n_wn[fi], L->where, L->cls, nv);
            break;
        }
        hid_t lg = H5Gopen2(g, names[fi], H5P_DEFAULT);
        if (lg < 0) {
            char h5m[256];
            rc = kx_bad(c, CVD_EFORMAT, "%s: %s", shown, kx_h5_msg(h5m));
            break;
        }
        for (int v = 0; v < nv && rc == CVD_OK; v++) {
            snprintf(shown, sizeof shown, "%s%s%s%s/%s", where, gname, gname[0] ? "/" : "",
                     names[fi], wn[fi][v]);
            rc = kx_h5_var(c, lg, wn[fi][v], shown, L, node, v);
        }
        H5Gclose(lg);
    }
done:
    for (int i = 0; wn && i < n_names; i++)
        kx_free_strings(wn[i], n_wn[i]);
    free(wn);
    free(n_wn);
    free(file_idx);
    free(model_idx);
    kx_free_strings(names, n_names);
    return rc;
}

/* The weights of c->m from an HDF5 file in memory, in either layout. */
static int kx_weights(kx_ctx *c, void *buf, size_t len, const char *where, int full_model)
{
    hid_t fid;
    int rc;
    pthread_mutex_lock(&kx_h5_lock);
    rc = kx_h5_open(c, where, buf, len, &fid);
    if (rc == CVD_OK) {
        int k2 = kx_h5_hard(c, fid, "model_weights", where);
        if (k2 < 0) {
            rc = k2;
        } else if (k2 > 0) {
            hid_t g = H5Gopen2(fid, "model_weights", H5P_DEFAULT);
            if (g < 0) {
                char h5m[256];
                rc = kx_bad(c, CVD_EFORMAT, "%smodel_weights: %s", where, kx_h5_msg(h5m));
            } else {
                rc = kx_weights2(c, g, "model_weights", where);
                H5Gclose(g);
            }
        } else if (full_model) {
            rc = kx_bad(c, CVD_EFORMAT, "%sno model_weights group", where);
        } else if (H5Aexists(fid, "layer_names") > 0 || H5Aexists(fid, "layer_names0") > 0) {
            rc = kx_weights2(c, fid, "", where);
        } else {
            H5Eclear2(H5E_DEFAULT);
            rc = kx_weights3(c, fid, where);
        }
        H5Fclose(fid);
    }
    pthread_mutex_unlock(&kx_h5_lock);
    return rc;
}

/* ---- the entry points ------------------------------------------------------------------------ */

static int kx_finish(kx_ctx *c, int rc, cvd_model **out, cvd_err *err)
{
    if (rc < 0) {
        cvd_model_unref(c->m);
        c->m = NULL;
        if (c->e.code == 0)
            cvd_err_set(&c->e, rc, "%s: %s", c->file, cvd_strerror(rc));
        if (err)
            *err = c->e;
    } else {
        /* WaveNets in Keras's vocabulary run on the fused kernels (dsp/fuse.c); without
         * memory for that the model runs unfused */
        cvd_model_fuse(c->m, NULL);
        if (err)
            err->code = 0;
    }
    for (int i = 0; c->layers != NULL && i < c->n_layers; i++)
        kx_tcn_free(c->layers[i].tcn);
    free(c->layers);
    json_decref(c->top);
    *out = c->m;
    return rc < 0 ? rc : CVD_OK;
}

static int kx_load_keras3(kx_ctx *c, const char *path)
{
    int ze = 0, rc;
    zip_t *za = zip_open(path, ZIP_RDONLY | ZIP_CHECKCONS, &ze);
    char *cfg = NULL, *w = NULL, *meta = NULL;
    size_t cl, wl, ml;
    char where[800];

    if (za == NULL) {
        zip_error_t zerr;
        zip_error_init_with_code(&zerr, ze);
        rc = kx_bad(c, ze == ZIP_ER_NOENT || ze == ZIP_ER_OPEN ? CVD_EIO : CVD_EFORMAT, "%s%s",
                    zip_error_strerror(&zerr),
                    ze == ZIP_ER_NOZIP || ze == ZIP_ER_INCONS
                        ? " (a .keras file is a zip archive of config.json and model.weights.h5)"
                        : "");
        zip_error_fini(&zerr);
        return rc;
    }
    snprintf(c->label, sizeof c->label, "config.json");
    rc = kx_zip_entry(c, za, "config.json", KX_MAX_CONFIG, 1, &cfg, &cl);
    if (rc == CVD_OK)
        rc = kx_zip_entry(c, za, "metadata.json", 1 << 20, 0, &meta, &ml);
    if (rc == CVD_OK && zip_name_locate(za, "model.weights.h5", 0) < 0 &&
        zip_name_locate(za, "model.weights.json", 0) >= 0)
        rc = kx_bad(c, CVD_EUNSUPPORTED, "sharded weights (model.weights.json) are not supported");
    if (rc == CVD_OK)
        rc = kx_zip_entry(c, za, "model.weights.h5", KX_MAX_WEIGHTS, 1, &w, &wl);
    zip_discard(za);
    if (rc == CVD_OK)
        rc = kx_build(c, cfg, cl);
    if (rc == CVD_OK) {
        snprintf(where, sizeof where, "model.weights.h5: ");
        rc = kx_weights(c, w, wl, where, 0);
    }
    if (rc == CVD_OK && meta != NULL) { /* the Keras version, for people */
        json_t *mj = json_loadb(meta, ml, 0, NULL);
        const char *v = json_string_value(json_object_get(mj, "keras_version"));
        if (v != NULL) {
            char d[300];
            snprintf(d, sizeof d, "%s (Keras %.40s)", cvd_model_description(c->m), v);
            cvd_model_set_description(c->m, d);
        }
        json_decref(mj);
    }
    free(cfg);
    free(w);
    free(meta);
    return rc;
}

static int kx_load_h5(kx_ctx *c, const char *path)
{
    char *buf = NULL, **cfg = NULL;
    size_t len = 0;
    int n = -1, rc;
    hid_t fid;

    if ((rc = kx_read_file(c, path, KX_MAX_WEIGHTS, &buf, &len)) < 0)
        return rc;
    snprintf(c->label, sizeof c->label, "model_config");
    pthread_mutex_lock(&kx_h5_lock);
    rc = kx_h5_open(c, "", buf, len, &fid);
    if (rc == CVD_OK) {
        rc = kx_h5_strings(c, fid, "model_config", "/", &cfg, &n);
        H5Fclose(fid);
    }
    pthread_mutex_unlock(&kx_h5_lock);
    if (rc == CVD_OK && n < 0)
        rc = kx_bad(c, CVD_EFORMAT,
                    "holds weights only (no model_config attribute): give the model's config "
                    "too, as CONFIG.json+%s (the JSON of model.to_json())",
                    path);
    if (rc == CVD_OK && n != 1)
        rc = kx_bad(c, CVD_EFORMAT, "the model_config attribute is not one text");
    if (rc == CVD_OK)
        rc = kx_build(c, cfg[0], strlen(cfg[0]));
    if (rc == CVD_OK)
        rc = kx_weights(c, buf, len, "", 1);
    kx_free_strings(cfg, n);
    free(buf);
    return rc;
}

static int kx_has_ext(const char *path, const char *ext)
{
    size_t n = strlen(path), e = strlen(ext);
    return n > e && strcasecmp(path + n - e, ext) == 0;
}

int cvd_keras_load(const char *path, cvd_model **out, cvd_err *err)
{
    kx_ctx c;
    int rc;
    memset(&c, 0, sizeof c);
    if (out == NULL)
        return cvd_err_set(err, CVD_EINVAL, "no place for the model (out is NULL)");
    *out = NULL;
    if (path == NULL)
        return cvd_err_set(err, CVD_EINVAL, "model path is NULL");
    c.file = path;
    if (kx_has_ext(path, ".keras"))
        rc = kx_load_keras3(&c, path);
    else
        rc = kx_load_h5(&c, path);
    return kx_finish(&c, rc, out, err);
}

int cvd_keras_load_weights(const char *config_path, const char *weights_path, cvd_model **out,
                           cvd_err *err)
{
    kx_ctx c;
    char *cfg = NULL, *w = NULL;
    size_t cl = 0, wl = 0;
    int rc;
    memset(&c, 0, sizeof c);
    if (out == NULL)
        return cvd_err_set(err, CVD_EINVAL, "no place for the model (out is NULL)");
    *out = NULL;
    if (config_path == NULL || weights_path == NULL)
        return cvd_err_set(err, CVD_EINVAL, "model config or weights path is NULL");
    c.file = config_path;
    rc = kx_read_file(&c, config_path, KX_MAX_CONFIG, &cfg, &cl);
    if (rc == CVD_OK)
        rc = kx_build(&c, cfg, cl);
    if (rc == CVD_OK) {
        c.file = weights_path;
        rc = kx_read_file(&c, weights_path, KX_MAX_WEIGHTS, &w, &wl);
    }
    if (rc == CVD_OK)
        rc = kx_weights(&c, w, wl, "", 0);
    free(cfg);
    free(w);
    return kx_finish(&c, rc, out, err);
}
