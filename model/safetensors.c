/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Weights from a safetensors file named by convd's model JSON ("weights_file"): the header's
 * tensors "<layer name>/<variable index>" (F32, F64, F16, BF16), checked against the model's
 * variables (shape, finite values, no overlap, all of a layer's variables or none) and set.
 */
#include "convd_model.h"
#include "json_model.h"

#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#define JM_ST_MAX_HEADER (100u << 20)

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
        return cvd_jr_bad(&c->r, CVD_EFORMAT, wp, sub, t,
                          "must be an object {dtype, shape, data_offsets}");
    json_object_foreach(t, key, v)
    {
        if (strcmp(key, "dtype") != 0 && strcmp(key, "shape") != 0 &&
            strcmp(key, "data_offsets") != 0)
            return cvd_jr_bad(&c->r, CVD_EFORMAT, wp, sub, NULL, "unknown key '%.60s'", key);
    }
    v = json_object_get(t, "dtype");
    dt = json_string_value(v);
    if (dt == NULL)
        return cvd_jr_bad(&c->r, CVD_EFORMAT, wp, FIELD("dtype"), v, "must be a string");
    if (strcmp(dt, "F16") == 0)
        dtype = 2;
    else if (strcmp(dt, "BF16") == 0)
        dtype = 3;
    else if (strcmp(dt, "F32") == 0)
        dtype = 4;
    else if (strcmp(dt, "F64") == 0)
        dtype = 8;
    else
        return cvd_jr_bad(&c->r, CVD_EUNSUPPORTED, wp, FIELD("dtype"), v,
                          "not supported (convd reads F32, F64, F16 and BF16)");
    const size_t esize = dtype == 3 ? 2 : (size_t)dtype;
    shape = json_object_get(t, "shape");
    if (!json_is_array(shape) || json_array_size(shape) > 8)
        return cvd_jr_bad(&c->r, CVD_EFORMAT, wp, FIELD("shape"), shape,
                          "must be a list of at most 8 sizes");
    rank = (int)json_array_size(shape);
    for (int k = 0; k < rank; k++) {
        json_t *d = json_array_get(shape, (size_t)k);
        if (!json_is_integer(d) || json_integer_value(d) < 0)
            return cvd_jr_bad(&c->r, CVD_EFORMAT, wp, FIELD("shape"), shape,
                              "must hold non-negative integers");
        if (json_integer_value(d) > (1LL << 40) ||
            (count *= (uint64_t)json_integer_value(d)) > (1ULL << 40))
            return cvd_jr_bad(&c->r, CVD_EINVAL, wp, FIELD("shape"), shape, "too many values");
    }
    offs = json_object_get(t, "data_offsets");
    if (!json_is_array(offs) || json_array_size(offs) != 2 ||
        !json_is_integer(json_array_get(offs, 0)) || !json_is_integer(json_array_get(offs, 1)) ||
        json_integer_value(json_array_get(offs, 0)) < 0 ||
        json_integer_value(json_array_get(offs, 1)) < json_integer_value(json_array_get(offs, 0)))
        return cvd_jr_bad(&c->r, CVD_EFORMAT, wp, FIELD("data_offsets"), offs,
                          "must be [begin, end] with 0 <= begin <= end");
    b = (uint64_t)json_integer_value(json_array_get(offs, 0));
    e = (uint64_t)json_integer_value(json_array_get(offs, 1));
    if (e > dlen)
        return cvd_jr_bad(&c->r, CVD_EFORMAT, wp, FIELD("data_offsets"), offs,
                          "past the end of the data (%llu bytes): the file is truncated or corrupt",
                          (unsigned long long)dlen);
    if (e - b != count * esize)
        return cvd_jr_bad(&c->r, CVD_EFORMAT, wp, FIELD("data_offsets"), offs,
                          "%llu bytes, but %llu values of %s take %llu",
                          (unsigned long long)(e - b), (unsigned long long)count, dt,
                          (unsigned long long)(count * esize));
    r->begin = b;
    r->end = e;
    r->name = tname;

    /* "<layer>/<variable>" */
    slash = strrchr(tname, '/');
    if (slash == NULL || slash[1] == '\0' || strspn(slash + 1, "0123456789") != strlen(slash + 1) ||
        strlen(slash + 1) > 3)
        return cvd_jr_bad(&c->r, CVD_EINVAL, wp, sub, NULL,
                          "not a weight name: they are \"<layer name>/<variable index>\"");
    snprintf(ts, sizeof ts, "%.*s", (int)(slash - tname) < 150 ? (int)(slash - tname) : 150, tname);
    var = atoi(slash + 1);
    idx = (size_t)(slash - tname) < sizeof ts - 10 ? json_object_get(c->names, ts) : NULL;
    if (idx == NULL)
        return cvd_jr_bad(&c->r, CVD_EINVAL, wp, sub, NULL, "no layer is named '%s'", ts);
    L = &c->layers[json_integer_value(idx)];
    const int nv = L->node > 0 ? cvd_model_var_count(c->m, L->node) : 0;
    if (var >= nv)
        return cvd_jr_bad(&c->r, CVD_EINVAL, wp, sub, NULL, "%s (%s) has %d variable%s", L->where,
                          L->cls_name, nv, nv == 1 ? "" : "s");
    if (L->weights != NULL)
        return cvd_jr_bad(&c->r, CVD_EINVAL, wp, sub, NULL,
                          "%s has inline weights too: give a layer's weights in one place",
                          L->where);
    vrank = cvd_model_var_shape(c->m, L->node, var, vshape);
    jm_shape_text(vshape, vrank, st, sizeof st);
    int same = vrank == rank;
    for (int k = 0; same && k < rank; k++)
        same = json_integer_value(json_array_get(shape, (size_t)k)) == vshape[k];
    if (!same)
        return cvd_jr_bad(&c->r, CVD_EINVAL, wp, FIELD("shape"), shape,
                          "%s variable %d has shape %s", L->where, var, st);

    buf = malloc(sizeof(float) * (count ? count : 1));
    if (buf == NULL)
        return cvd_err_set(&c->e, CVD_ENOMEM, "%s: out of memory", c->file);
    for (uint64_t i = 0; i < count; i++) {
        buf[i] = jm_st_value(data + b + i * esize, dtype);
        if (!isfinite(buf[i])) {
            rc = cvd_jr_bad(&c->r, CVD_EINVAL, wp, sub, NULL,
                            "value %llu is not a finite float32 (NaN, infinite or out of range)",
                            (unsigned long long)i);
            break;
        }
    }
    if (rc == CVD_OK && cvd_model_set_var(c->m, L->node, var, buf, (size_t)count, &c->e) < 0)
        rc = cvd_jr_lib(&c->r, CVD_EINVAL, wp, sub);
    free(buf);
    L->from_file |= 1u << var;
    return rc;
#undef FIELD
}

int jm_safetensors(jm_ctx *c, const char *wf)
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
        return cvd_jr_bad(&c->r, CVD_EINVAL, "", wp, NULL, "the path is too long");
    buf = (unsigned char *)cvd_model_read_file(path, SIZE_MAX, &len);
    if (buf == NULL)
        return cvd_jr_bad(&c->r, CVD_EIO, "", wp, NULL, "cannot read %s: %s", path,
                          strerror(errno));
    if (len < 8) {
        rc = cvd_jr_bad(&c->r, CVD_EFORMAT, "", wp, NULL,
                        "%zu bytes: too short for a safetensors file (truncated?)", len);
        goto done;
    }
    hl = jm_le(buf, 8);
    if (hl > len - 8 || hl > JM_ST_MAX_HEADER) {
        rc = cvd_jr_bad(&c->r, CVD_EFORMAT, "", wp, NULL,
                        "the header length %llu exceeds the file's %zu bytes (truncated, or not "
                        "a safetensors file)",
                        (unsigned long long)hl, len);
        goto done;
    }
    hdr = json_loadb((const char *)buf + 8, (size_t)hl, JSON_REJECT_DUPLICATES, &je);
    if (hdr == NULL) {
        rc = cvd_jr_bad(&c->r, CVD_EFORMAT, "", wp, NULL, "header: column %d: %s", je.column,
                        je.text);
        goto done;
    }
    if (!json_is_object(hdr)) {
        rc = cvd_jr_bad(&c->r, CVD_EFORMAT, "", wp, NULL, "the header is not a JSON object");
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
                rc = cvd_jr_bad(&c->r, CVD_EFORMAT, wp, "__metadata__", t, "must be an object");
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
            rc = cvd_jr_bad(&c->r, CVD_EFORMAT, wp, sub, NULL, "its bytes overlap tensor '%.160s'",
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
                rc = cvd_jr_bad(&c->r, CVD_EINVAL, "", wp, NULL,
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
