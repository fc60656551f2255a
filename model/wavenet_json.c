/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The WaveNet config in JSON, for both files that hold one: .nam files (NAM's spelling) and
 * convd's model JSON (the "wavenet" shorthand and WaveNet layers). One parser: the two
 * spellings differ only in which keys exist and which are required (model_internal.h); the
 * activations, per-layer lists, ranges, the array chain and every message are shared.
 */
#include "model_internal.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>

/* the most weights one WaveNet may have (the model's limit, 256 MiB of floats) */
#define WN_MAX_WEIGHTS CVD_MODEL_MAX_PARAMS

static const char *const keys_nam[] = {"input_size",
                                       "condition_size",
                                       "channels",
                                       "kernel_size",
                                       "kernel_sizes",
                                       "dilations",
                                       "activation",
                                       "gated",
                                       "gating_mode",
                                       "secondary_activation",
                                       "head_size",
                                       "head_bias",
                                       "head",
                                       "bottleneck",
                                       "layer1x1",
                                       "head1x1",
                                       "groups_input",
                                       "groups_input_mixin",
                                       "groups",
                                       "slimmable",
                                       NULL};

static const char *const keys_convd[] = {
    "channels", "kernel_size",          "dilations",      "activation", "gated",
    "gating",   "secondary_activation", "head_size",      "head_bias",  "residual",
    "skip",     "input_size",           "condition_size", NULL};

static const char *const keys_convd_prewarm[] = {
    "channels", "kernel_size",          "dilations",      "activation", "gated",
    "gating",   "secondary_activation", "head_size",      "head_bias",  "residual",
    "skip",     "input_size",           "condition_size", "prewarm",    NULL};

/* ---- activations -------------------------------------------------------------------------- */

int cvd_wn_json_activation(cvd_jr *r, const char *where, const char *sub, json_t *v, int channels,
                           cvd_wn_activation *out)
{
    char psub[256];
    const char *type, *key;
    json_t *t, *pv;
    int rc;

    if (json_is_string(v)) {
        if (cvd_wn_activation_parse(json_string_value(v), out, r->err) < 0)
            return cvd_jr_lib(r, CVD_EINVAL, where, sub);
        return CVD_OK;
    }
    if (!json_is_object(v))
        return cvd_jr_bad(r, CVD_EFORMAT, where, sub, v,
                          "must be an activation name or an object {\"type\": name, ...}");
    t = json_object_get(v, "type");
    snprintf(psub, sizeof psub, "%s.type", sub);
    if (t == NULL)
        return cvd_jr_bad(r, CVD_EFORMAT, where, psub, NULL, "missing (required)");
    if (!json_is_string(t))
        return cvd_jr_bad(r, CVD_EFORMAT, where, psub, t, "must be an activation name");
    type = json_string_value(t);
    if (cvd_wn_activation_parse(type, out, r->err) < 0)
        return cvd_jr_lib(r, CVD_EINVAL, where, psub);
    /* the parameters of the object form, by the kind the type names (LeakyReLU and PReLU are
     * one kind, as are LeakyHardtanh and LeakyHardTanh) */
    json_object_foreach(v, key, pv)
    {
        int slot = -1;
        snprintf(psub, sizeof psub, "%s.%s", sub, key);
        if (strcmp(key, "type") == 0)
            continue;
        if (out->kind == CVD_WN_LEAKY_RELU && strcmp(key, "negative_slope") == 0) {
            slot = 0;
        } else if (out->kind == CVD_WN_LEAKY_HARDTANH) {
            static const char *const names[] = {"min_val", "max_val", "min_slope", "max_slope"};
            for (int k = 0; k < 4; k++)
                if (strcmp(key, names[k]) == 0)
                    slot = k;
        } else if (out->kind == CVD_WN_KERAS && out->keras == CVD_ACT_HARD_TANH &&
                   (strcmp(key, "min_val") == 0 || strcmp(key, "max_val") == 0)) {
            /* NAM core's Hardtanh is always -1..1: other limits would give other numbers */
            const double want = strcmp(key, "min_val") == 0 ? -1.0 : 1.0;
            if (json_is_number(pv) && json_number_value(pv) == want)
                continue;
            return cvd_jr_bad(r, CVD_EUNSUPPORTED, where, psub, pv,
                              "not a parameter of %s (NAM's Hardtanh is always -1..1)", type);
        }
        if (out->kind == CVD_WN_LEAKY_RELU && strcmp(key, "negative_slopes") == 0) {
            /* PReLU: one slope, or one per channel */
            size_t n = json_array_size(pv);
            if (!json_is_array(pv) || n == 0 || n > CVD_WN_MAX_SLOPES)
                return cvd_jr_bad(r, CVD_EFORMAT, where, psub, pv,
                                  "must be a list of 1 to %d numbers (one per channel)",
                                  CVD_WN_MAX_SLOPES);
            if (n != 1 && (int)n != channels)
                return cvd_jr_bad(r, CVD_EINVAL, where, psub, NULL,
                                  "a PReLU has one slope or one per channel: %zu slopes for %d "
                                  "channels",
                                  n, channels);
            for (size_t k = 0; k < n; k++) {
                char esub[300];
                snprintf(esub, sizeof esub, "%s[%zu]", psub, k);
                rc = cvd_jr_float(r, where, esub, json_array_get(pv, k), &out->slopes[k]);
                if (rc < 0)
                    return rc;
            }
            if (n == 1) { /* the same arithmetic as LeakyReLU's */
                out->p[0] = out->slopes[0];
            } else {
                out->kind = CVD_WN_PRELU;
                out->n_slopes = (int)n;
            }
            continue;
        }
        if (slot < 0)
            return cvd_jr_bad(r, CVD_EUNSUPPORTED, where, psub, pv, "not a parameter of %s", type);
        if ((rc = cvd_jr_float(r, where, psub, pv, &out->p[slot])) < 0)
            return rc;
    }
    return CVD_OK;
}

/* ---- one layer array ---------------------------------------------------------------------- */

/* NAM's optional blocks: fine in their inactive form, refused by name otherwise. Any other
 * key outside the dialect's list is unknown. */
static int nam_blocks(cvd_jr *r, const char *where, const char *path, json_t *obj, int channels)
{
    char sub[256];
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v)
    {
        cvd_jr_key(sub, sizeof sub, path, key);
        if (strstr(key, "film") != NULL || strstr(key, "FiLM") != NULL) {
            /* FiLM blocks: fine when false, null or {"active": false} */
            const json_t *act = json_is_object(v) ? json_object_get(v, "active") : NULL;
            if (json_is_false(v) || json_is_null(v) || (json_is_object(v) && json_is_false(act)))
                continue;
            return cvd_jr_bad(r, CVD_EUNSUPPORTED, where, sub, NULL,
                              "FiLM conditioning is not supported yet");
        }
        if (!cvd_jr_in_list(key, keys_nam))
            return cvd_jr_bad(r, CVD_EUNSUPPORTED, where, sub, NULL,
                              "unknown key for a NAM layer array");
        if (strcmp(key, "bottleneck") == 0) {
            if (!json_is_null(v) && !(json_is_integer(v) && json_integer_value(v) == channels))
                return cvd_jr_bad(r, CVD_EUNSUPPORTED, where, sub, v,
                                  "a bottleneck different from channels (%d) is not supported "
                                  "yet",
                                  channels);
        } else if (strcmp(key, "layer1x1") == 0) {
            const json_t *act = json_object_get(v, "active"), *g = json_object_get(v, "groups");
            if (!json_is_object(v) || (act && !json_is_true(act)) ||
                (g && !(json_is_integer(g) && json_integer_value(g) == 1)))
                return cvd_jr_bad(r, CVD_EUNSUPPORTED, where, sub, v,
                                  "only the default layer1x1 (active, 1 group) is supported");
        } else if (strcmp(key, "head1x1") == 0) {
            const json_t *act = json_is_object(v) ? json_object_get(v, "active") : NULL;
            if (!json_is_null(v) && !(json_is_object(v) && (act == NULL || json_is_false(act))))
                return cvd_jr_bad(r, CVD_EUNSUPPORTED, where, sub, v,
                                  "an active head1x1 is not supported yet");
        } else if (strncmp(key, "groups", 6) == 0) {
            if (!json_is_null(v) && !(json_is_integer(v) && json_integer_value(v) == 1))
                return cvd_jr_bad(r, CVD_EUNSUPPORTED, where, sub, v,
                                  "grouped convolutions are not supported yet");
        } else if (strcmp(key, "slimmable") == 0) {
            if (!json_is_null(v) && !json_is_false(v))
                return cvd_jr_bad(r, CVD_EUNSUPPORTED, where, sub, v,
                                  "slimmable models are not supported");
        }
    }
    return CVD_OK;
}

/* NAM's head: the newer object {out_channels, kernel_size (1), bias}, or head_size and
 * head_bias. */
static int nam_head(cvd_jr *r, const char *where, const char *path, json_t *obj, cvd_wn_array *a)
{
    char sub[256];
    long long v;
    int rc;
    json_t *head = json_object_get(obj, "head");
    if (head == NULL || json_is_null(head)) {
        if ((rc = cvd_jr_int(r, where, path, obj, "head_size", CVD_JR_REQ, 0, 1, 4096, &v)) < 0)
            return rc;
        a->head_size = (int)v;
        cvd_jr_key(sub, sizeof sub, path, "head_bias");
        if (json_object_get(obj, "head_bias") == NULL)
            return cvd_jr_bad(r, CVD_EFORMAT, where, sub, NULL, "missing (required)");
        return cvd_jr_bool(r, where, path, obj, "head_bias", 1, &a->head_bias);
    }
    cvd_jr_key(sub, sizeof sub, path, "head");
    if (!json_is_object(head))
        return cvd_jr_bad(r, CVD_EFORMAT, where, sub, head, "must be an object or null");
    if ((rc = cvd_jr_int(r, where, sub, head, "out_channels", CVD_JR_REQ, 0, 1, 4096, &v)) < 0)
        return rc;
    a->head_size = (int)v;
    if ((rc = cvd_jr_int(r, where, sub, head, "kernel_size", 0, 1, 1, 1024, &v)) < 0)
        return rc;
    if (v != 1) {
        char ksub[300];
        cvd_jr_key(ksub, sizeof ksub, sub, "kernel_size");
        return cvd_jr_bad(r, CVD_EUNSUPPORTED, where, ksub, json_object_get(head, "kernel_size"),
                          "a head kernel larger than 1 is not supported yet");
    }
    /* head_dilation does not matter with a kernel of 1 */
    if (json_object_get(head, "bias") == NULL) {
        char bsub[300];
        cvd_jr_key(bsub, sizeof bsub, sub, "bias");
        return cvd_jr_bad(r, CVD_EFORMAT, where, bsub, NULL, "missing (required)");
    }
    return cvd_jr_bool(r, where, sub, head, "bias", 1, &a->head_bias);
}

/* A size NAM writes and convd derives: required in NAM's spelling, 0 (derive) when absent in
 * convd's; checked against the derived value in cvd_wn_json_finish. */
static int derived_size(cvd_jr *r, cvd_wn_dialect d, const char *where, const char *path,
                        json_t *obj, const char *key, int *out)
{
    long long v;
    int rc = cvd_jr_int(r, where, path, obj, key, d == CVD_WN_NAM ? CVD_JR_REQ : 0, 0, 1, 4096, &v);
    *out = (int)v;
    return rc;
}

/* The per-layer value of v for layer l (v itself when it is not a list); sub gets its name. */
static json_t *per_layer(json_t *v, int l, const char *key_sub, char *sub, size_t n)
{
    if (json_is_array(v)) {
        snprintf(sub, n, "%s[%d]", key_sub, l);
        return json_array_get(v, (size_t)l);
    }
    snprintf(sub, n, "%s", key_sub);
    return v;
}

int cvd_wn_json_array(cvd_jr *r, cvd_wn_dialect d, const char *where, const char *path, json_t *obj,
                      int prewarm, cvd_wn_array *a)
{
    const int nam = d == CVD_WN_NAM;
    const char *gating_key = nam ? "gating_mode" : "gating";
    const char *ks_key = "kernel_size";
    char sub[256], esub[300];
    long long v;
    int rc, n;
    json_t *dil, *ks, *act, *gating, *gated, *sec, *x;

    if (!json_is_object(obj))
        return cvd_jr_bad(r, CVD_EFORMAT, where, path, obj, "a layer array must be an object");
    memset(a, 0, sizeof *a);
    a->residual = a->skip = 1;
    if (!nam &&
        (rc = cvd_jr_check_keys(r, where, path, obj, prewarm ? keys_convd_prewarm : keys_convd, 0,
                                "a WaveNet layer array")) < 0)
        return rc;
    if ((rc = cvd_jr_int(r, where, path, obj, "channels", CVD_JR_REQ, 0, 1, 4096, &v)) < 0)
        return rc;
    a->channels = (int)v;
    /* NAM's blocks are checked against the channels */
    if (nam && (rc = nam_blocks(r, where, path, obj, a->channels)) < 0)
        return rc;
    if ((rc = derived_size(r, d, where, path, obj, "input_size", &a->input_size)) < 0 ||
        (rc = derived_size(r, d, where, path, obj, "condition_size", &a->condition_size)) < 0)
        return rc;

    /* dilations set the layer count */
    cvd_jr_key(sub, sizeof sub, path, "dilations");
    dil = json_object_get(obj, "dilations");
    if (dil == NULL)
        return cvd_jr_bad(r, CVD_EFORMAT, where, sub, NULL, "missing (required)");
    if (!json_is_array(dil) || json_array_size(dil) == 0)
        return cvd_jr_bad(r, CVD_EFORMAT, where, sub, dil, "must be a non-empty list of integers");
    if (json_array_size(dil) > CVD_WN_MAX_LAYERS)
        return cvd_jr_bad(r, CVD_EINVAL, where, sub, dil, "%zu layers: at most %d",
                          json_array_size(dil), CVD_WN_MAX_LAYERS);
    n = a->n_layers = (int)json_array_size(dil);

    if (nam && json_object_get(obj, "kernel_sizes") != NULL) {
        ks_key = "kernel_sizes";
        if (json_object_get(obj, "kernel_size") != NULL) {
            cvd_jr_key(sub, sizeof sub, path, "kernel_size");
            return cvd_jr_bad(r, CVD_EFORMAT, where, sub, NULL,
                              "give kernel_size or kernel_sizes, not both");
        }
    }
    ks = json_object_get(obj, ks_key);
    act = json_object_get(obj, "activation");
    sec = json_object_get(obj, "secondary_activation");
    gating = json_object_get(obj, gating_key);
    gated = json_object_get(obj, "gated");
    if (gating != NULL && json_is_null(gating))
        gating = NULL;
    if (ks == NULL) {
        cvd_jr_key(sub, sizeof sub, path, "kernel_size");
        return cvd_jr_bad(r, CVD_EFORMAT, where, sub, NULL,
                          nam ? "missing (required; or kernel_sizes, one per layer)"
                              : "missing (required)");
    }
    if (act == NULL && nam) {
        cvd_jr_key(sub, sizeof sub, path, "activation");
        return cvd_jr_bad(r, CVD_EFORMAT, where, sub, NULL, "missing (required)");
    }
    {
        const char *lists[] = {ks_key, "activation", gating_key, "secondary_activation"};
        json_t *vals[] = {ks, act, gating, sec};
        for (int k = 0; k < 4; k++)
            if (json_is_array(vals[k]) && json_array_size(vals[k]) != (size_t)n) {
                cvd_jr_key(sub, sizeof sub, path, lists[k]);
                return cvd_jr_bad(r, CVD_EFORMAT, where, sub, vals[k],
                                  "a list needs one entry per dilation (%d), it has %zu (the "
                                  "layers are the entries of dilations)",
                                  n, json_array_size(vals[k]));
            }
    }
    int gated_all = 0;
    if ((rc = cvd_jr_bool(r, where, path, obj, "gated", 0, &gated_all)) < 0)
        return rc;

    for (int l = 0; l < n; l++) {
        cvd_wn_layer *ly = &a->layers[l];
        x = json_array_get(dil, (size_t)l);
        cvd_jr_key(sub, sizeof sub, path, "dilations");
        snprintf(esub, sizeof esub, "%s[%d]", sub, l);
        if (!json_is_integer(x))
            return cvd_jr_bad(r, CVD_EFORMAT, where, esub, x, "must be an integer");
        if (json_integer_value(x) < 1 || json_integer_value(x) > (1 << 20))
            return cvd_jr_bad(r, CVD_EINVAL, where, esub, x, "must be in 1..%d", 1 << 20);
        ly->dilation = (int)json_integer_value(x);

        cvd_jr_key(sub, sizeof sub, path, ks_key);
        x = per_layer(ks, l, sub, esub, sizeof esub);
        if (!json_is_integer(x))
            return cvd_jr_bad(r, CVD_EFORMAT, where, esub, x,
                              "must be an integer (or a list, one per dilation)");
        if (json_integer_value(x) < 1 || json_integer_value(x) > 1024)
            return cvd_jr_bad(r, CVD_EINVAL, where, esub, x, "must be in 1..1024");
        ly->kernel_size = (int)json_integer_value(x);

        ly->gating = gated_all ? CVD_WN_GATING_GATED : CVD_WN_GATING_NONE;
        if (gating != NULL) {
            cvd_jr_key(sub, sizeof sub, path, gating_key);
            x = per_layer(gating, l, sub, esub, sizeof esub);
            const char *g = json_string_value(x);
            if (g != NULL && strcmp(g, "none") == 0)
                ly->gating = CVD_WN_GATING_NONE;
            else if (g != NULL && strcmp(g, "gated") == 0)
                ly->gating = CVD_WN_GATING_GATED;
            else if (g != NULL && strcmp(g, "blended") == 0)
                ly->gating = CVD_WN_GATING_BLENDED;
            else
                return cvd_jr_bad(r, CVD_EINVAL, where, esub, x,
                                  "must be \"none\", \"gated\" or \"blended\"");
        }

        if (act == NULL) {
            cvd_wn_activation_parse("Tanh", &ly->activation, NULL);
        } else {
            cvd_jr_key(sub, sizeof sub, path, "activation");
            x = per_layer(act, l, sub, esub, sizeof esub);
            if ((rc = cvd_wn_json_activation(r, where, esub, x, a->channels, &ly->activation)) < 0)
                return rc;
        }
        /* the secondary activation (of gated and blended layers): Sigmoid by default; null is
         * "none", which a gated or blended layer cannot have */
        cvd_wn_activation_parse("Sigmoid", &ly->secondary, NULL);
        if (sec != NULL) {
            cvd_jr_key(sub, sizeof sub, path, "secondary_activation");
            x = per_layer(sec, l, sub, esub, sizeof esub);
            if (json_is_null(x)) {
                if (ly->gating != CVD_WN_GATING_NONE)
                    return cvd_jr_bad(r, CVD_EFORMAT, where, esub, x,
                                      "layer %d is gated or blended and needs one", l);
            } else if ((rc = cvd_wn_json_activation(r, where, esub, x, a->channels,
                                                    &ly->secondary)) < 0) {
                return rc;
            }
        }
    }

    /* both spellings of the gating, each valid: which one counts? */
    if (gating != NULL && gated != NULL) {
        cvd_jr_key(sub, sizeof sub, path, "gated");
        return cvd_jr_bad(r, CVD_EFORMAT, where, sub, NULL, "give gated or %s, not both",
                          gating_key);
    }
    if (nam)
        return nam_head(r, where, path, obj, a);
    if ((rc = cvd_jr_int(r, where, path, obj, "head_size", 0, 0, 1, 4096, &v)) < 0)
        return rc;
    a->head_size = (int)v; /* 0: derived */
    if ((rc = cvd_jr_bool(r, where, path, obj, "head_bias", 1, &a->head_bias)) < 0 ||
        (rc = cvd_jr_bool(r, where, path, obj, "residual", 1, &a->residual)) < 0 ||
        (rc = cvd_jr_bool(r, where, path, obj, "skip", 1, &a->skip)) < 0)
        return rc;
    return CVD_OK;
}

/* ---- the chain of arrays ------------------------------------------------------------------ */

int cvd_wn_json_finish(cvd_jr *r, const char *where, const char *path, const char *list,
                       json_t *const *objs, int in_ch, cvd_wn_config *wn)
{
    /* the list's own name in messages about an array before ("arrays", "layers") */
    const char *short_list = list ? strrchr(list, '.') : NULL;
    short_list = short_list ? short_list + 1 : list;
    for (int i = 0; i < wn->n_arrays; i++) {
        cvd_wn_array *a = &wn->arrays[i];
        char ap[300], sub[320];
        const int input = i == 0 ? in_ch : wn->arrays[i - 1].channels;
        if (list)
            snprintf(ap, sizeof ap, "%s[%d]", list, i);
        else
            snprintf(ap, sizeof ap, "%s", path);
        if (a->input_size == 0)
            a->input_size = input;
        if (a->input_size != input) {
            cvd_jr_key(sub, sizeof sub, ap, "input_size");
            return cvd_jr_bad(r, CVD_EINVAL, where, sub, json_object_get(objs[i], "input_size"),
                              "must be %d (%s)", input,
                              i == 0 ? "the channels of the WaveNet's input"
                                     : "the channels of the array before");
        }
        if (a->condition_size == 0)
            a->condition_size = in_ch;
        if (a->condition_size != in_ch) {
            cvd_jr_key(sub, sizeof sub, ap, "condition_size");
            return cvd_jr_bad(r, CVD_EINVAL, where, sub, json_object_get(objs[i], "condition_size"),
                              "must be %d (the condition is the WaveNet's input)", in_ch);
        }
        if (a->head_size == 0)
            a->head_size = i + 1 < wn->n_arrays ? wn->arrays[i + 1].channels : 1;
        if (i > 0 && a->channels != wn->arrays[i - 1].head_size) {
            cvd_jr_key(sub, sizeof sub, ap, "channels");
            return cvd_jr_bad(r, CVD_EINVAL, where, sub, json_object_get(objs[i], "channels"),
                              "must equal %s[%d].head_size=%d (an array continues the head of "
                              "the one before, as in NAM)",
                              short_list, i - 1, wn->arrays[i - 1].head_size);
        }
    }
    if (cvd_wn_config_check(wn, r->err) < 0)
        return cvd_jr_lib(r, CVD_EINVAL, where, path);
    if (cvd_wn_weight_count(wn) > WN_MAX_WEIGHTS)
        return cvd_jr_bad(r, CVD_EINVAL, where, path, NULL, "%zu weights: at most %u",
                          cvd_wn_weight_count(wn), WN_MAX_WEIGHTS);
    return CVD_OK;
}
