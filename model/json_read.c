/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Reading JSON with messages that say where: the typed getters every JSON loader of model/
 * uses (convd's model JSON, .nam files, the WaveNet config, safetensors headers), so that a
 * refusal always reads "FILE: WHERE: SUB=VALUE: reason" (model_internal.h).
 */
#include "model_internal.h"

#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ---- messages -------------------------------------------------------------------------- */

/* Appends v to buf as a message shows it: 'text', 3, 0.5, true, null, [1, 2], and
 * "(an array of N)" for long arrays. */
static void show_into(const json_t *v, char *buf, size_t n, int depth)
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
            show_into(json_array_get(v, i), buf, n + len, depth + 1);
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

const char *cvd_jr_show(const json_t *v, char *buf, size_t n)
{
    buf[0] = '\0';
    if (v == NULL)
        snprintf(buf, n, "(missing)");
    else
        show_into(v, buf, n, 0);
    return buf;
}

/* "FILE: WHERE: SUB" with the empty parts left out. */
static void place(const cvd_jr *r, char *buf, size_t n, const char *where, const char *sub)
{
    snprintf(buf, n, "%s%s%s%s%s", r->file, *where ? ": " : "", where, *sub ? ": " : "", sub);
}

int cvd_jr_bad(cvd_jr *r, int code, const char *where, const char *sub, const json_t *v,
               const char *fmt, ...)
{
    char at[CVD_ERR_MSG_MAX], val[200], reason[CVD_ERR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof reason, fmt, ap);
    va_end(ap);
    place(r, at, sizeof at, where, sub);
    if (v != NULL)
        return cvd_err_set(r->err, code, "%s=%s: %s", at, cvd_jr_show(v, val, sizeof val), reason);
    return cvd_err_set(r->err, code, "%s: %s", at, reason);
}

int cvd_jr_lib(cvd_jr *r, int code, const char *where, const char *sub)
{
    char at[CVD_ERR_MSG_MAX];
    place(r, at, sizeof at, where, sub);
    cvd_err_prefix(r->err, "%s", at);
    code = code < 0 ? code : CVD_EINVAL;
    if (r->err != NULL)
        r->err->code = code;
    return code;
}

/* "path.key", or "key" at the top; cut to fit n. */
void cvd_jr_key(char *buf, size_t n, const char *path, const char *key)
{
    size_t len = 0;
    for (const char *parts[3] = {path, *path ? "." : "", key}, **q = parts; q < parts + 3; q++)
        for (const char *s = *q; *s && len + 1 < n; s++)
            buf[len++] = *s;
    buf[len] = '\0';
}

int cvd_jr_in_list(const char *key, const char *const *list)
{
    for (; *list; list++)
        if (strcmp(key, *list) == 0)
            return 1;
    return 0;
}

static int ends_with(const char *s, const char *tail)
{
    size_t n = strlen(s), t = strlen(tail);
    return n >= t && strcmp(s + n - t, tail) == 0;
}

/* Keras keys that only matter for training: accepted and ignored. */
static int training_key(const char *key)
{
    return strcmp(key, "name") == 0 || strcmp(key, "trainable") == 0 || strcmp(key, "dtype") == 0 ||
           ends_with(key, "_initializer") || ends_with(key, "_regularizer") ||
           ends_with(key, "_constraint");
}

/* Refuses any key of obj outside `allowed` (and Keras's training-only keys if `training`). */
int cvd_jr_check_keys(cvd_jr *r, const char *where, const char *path, json_t *obj,
                      const char *const *allowed, int training, const char *what)
{
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v)
    {
        if (cvd_jr_in_list(key, allowed) || (training && training_key(key)))
            continue;
        char sub[256];
        cvd_jr_key(sub, sizeof sub, path, key);
        if (strcmp(key, "inbound_nodes") == 0)
            return cvd_jr_bad(r, CVD_EUNSUPPORTED, where, sub, NULL,
                              "not read by convd: wire layers with \"inputs\": [names]");
        return cvd_jr_bad(r, CVD_EUNSUPPORTED, where, sub, NULL, "unknown key for %s", what);
    }
    return CVD_OK;
}

/* ---- typed getters ---------------------------------------------------------------------- */

#define CVD_JR_REQ 1     /* the key must be present */
#define CVD_JR_LIST1 2   /* [k] is accepted for k (Keras writes tuples) */
#define CVD_JR_NULLDEF 4 /* null means the default */

/* An integer in [lo, hi]; *out = def when absent (or null with CVD_JR_NULLDEF). */
int cvd_jr_int(cvd_jr *r, const char *where, const char *path, json_t *obj, const char *key,
               int flags, long long def, long long lo, long long hi, long long *out)
{
    char sub[256];
    json_t *v = obj ? json_object_get(obj, key) : NULL, *x;
    cvd_jr_key(sub, sizeof sub, path, key);
    *out = def;
    if (v == NULL || (json_is_null(v) && (flags & CVD_JR_NULLDEF))) {
        if (flags & CVD_JR_REQ)
            return cvd_jr_bad(r, CVD_EFORMAT, where, sub, NULL, "missing (required)");
        return CVD_OK;
    }
    x = v;
    if ((flags & CVD_JR_LIST1) && json_is_array(v)) {
        if (json_array_size(v) != 1)
            return cvd_jr_bad(r, CVD_EFORMAT, where, sub, v,
                              "must be an integer or a list of one integer (a 1-D layer)");
        x = json_array_get(v, 0);
    }
    if (!json_is_integer(x))
        return cvd_jr_bad(r, CVD_EFORMAT, where, sub, v, "must be an integer");
    if (json_integer_value(x) < lo)
        return cvd_jr_bad(r, CVD_EINVAL, where, sub, v, "must be >= %lld", lo);
    if (json_integer_value(x) > hi)
        return cvd_jr_bad(r, CVD_EINVAL, where, sub, v, "must be <= %lld", hi);
    *out = json_integer_value(x);
    return CVD_OK;
}

int cvd_jr_bool(cvd_jr *r, const char *where, const char *path, json_t *obj, const char *key,
                int def, int *out)
{
    char sub[256];
    json_t *v = obj ? json_object_get(obj, key) : NULL;
    *out = def;
    if (v == NULL)
        return CVD_OK;
    if (!json_is_boolean(v)) {
        cvd_jr_key(sub, sizeof sub, path, key);
        return cvd_jr_bad(r, CVD_EFORMAT, where, sub, v, "must be true or false");
    }
    *out = json_is_true(v);
    return CVD_OK;
}

/* A string; *out = def when absent (or null with CVD_JR_NULLDEF). */
int cvd_jr_str(cvd_jr *r, const char *where, const char *path, json_t *obj, const char *key,
               int flags, const char *def, const char **out)
{
    char sub[256];
    json_t *v = obj ? json_object_get(obj, key) : NULL;
    cvd_jr_key(sub, sizeof sub, path, key);
    *out = def;
    if (v == NULL || (json_is_null(v) && (flags & CVD_JR_NULLDEF))) {
        if (flags & CVD_JR_REQ)
            return cvd_jr_bad(r, CVD_EFORMAT, where, sub, NULL, "missing (required)");
        return CVD_OK;
    }
    if (!json_is_string(v))
        return cvd_jr_bad(r, CVD_EFORMAT, where, sub, v, "must be a string");
    *out = json_string_value(v);
    return CVD_OK;
}

/* A float from a JSON number, refused unless finite in float32. */
int cvd_jr_float(cvd_jr *r, const char *where, const char *sub, json_t *v, float *out)
{
    double d;
    if (!json_is_number(v))
        return cvd_jr_bad(r, CVD_EFORMAT, where, sub, v, "must be a number");
    d = json_number_value(v);
    if (!isfinite(d) || fabs(d) > FLT_MAX)
        return cvd_jr_bad(r, CVD_EINVAL, where, sub, v, "not a finite float32 value");
    *out = (float)d;
    return CVD_OK;
}

/* ---- files ------------------------------------------------------------------------------- */

char *cvd_model_read_file(const char *path, size_t max, size_t *len)
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
    if ((unsigned long long)st.st_size >= (unsigned long long)SIZE_MAX / 2 ||
        (unsigned long long)st.st_size > (unsigned long long)max) {
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
