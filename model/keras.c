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
 */
#include "convd_model.h"
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

#define KX_MAX_CONFIG ((size_t)64 << 20) /* bytes of config JSON */
#define KX_MAX_WEIGHTS ((size_t)4 << 30) /* bytes of an HDF5 weights file */
#define KX_MAX_STRINGS 100000            /* entries of a string attribute */
#define KX_MAX_PATH 1024

/* The serial HDF5 library is not thread-safe: every use is under this lock. */
static pthread_mutex_t kx_h5_lock = PTHREAD_MUTEX_INITIALIZER;

struct kx_tcn;

typedef struct kx_layer {
    const char *name;   /* borrowed from the config */
    const char *cls;    /* the Keras class, aliases resolved */
    char where[160];    /* "layers[3] (conv1d)" */
    int input;          /* an InputLayer */
    int renorm;         /* BatchNormalization(renorm=True): three more variables in the file */
    struct kx_tcn *tcn; /* keras-tcn's TCN layer, expanded into convd's layers (below) */
} kx_layer;

typedef struct kx_ctx {
    const char *file; /* the path the user gave */
    char label[64];   /* where the config is: "config.json", "model_config" */
    char lp[80];      /* the label with ": ", or "" */
    cvd_err e;
    int n_layers;
    kx_layer *layers;
    char model_name[96];
    char model_class[32];
    json_t *top; /* the Keras config (the layers' names point into it) */
    cvd_model *m;
} kx_ctx;

/* ---- messages ------------------------------------------------------------------------------ */

static int kx_bad(kx_ctx *c, int code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
static int kx_bad(kx_ctx *c, int code, const char *fmt, ...)
{
    char msg[CVD_ERR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return cvd_err_set(&c->e, code, "%s: %s", c->file, msg);
}

/* HDF5's most specific message about the last failure (then the stack is cleared). */
static herr_t kx_h5_walk(unsigned n, const H5E_error2_t *e, void *data)
{
    if (n == 0 && e->desc != NULL)
        snprintf((char *)data, 200, "%s", e->desc);
    return 0;
}

static const char *kx_h5_msg(char *buf)
{
    buf[0] = '\0';
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, kx_h5_walk, buf);
    H5Eclear2(H5E_DEFAULT);
    if (buf[0] == '\0')
        snprintf(buf, 200, "HDF5 gave no reason");
    return buf;
}

/* ---- files --------------------------------------------------------------------------------- */

static int kx_read_file(kx_ctx *c, const char *path, size_t max, char **out, size_t *len)
{
    FILE *f = fopen(path, "rb");
    struct stat st;
    char *buf = NULL;
    *out = NULL;
    if (f == NULL)
        return cvd_err_set(&c->e, CVD_EIO, "%s: cannot read: %s", path, strerror(errno));
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(f);
        return cvd_err_set(&c->e, CVD_EIO, "%s: not a regular file", path);
    }
    if ((unsigned long long)st.st_size > max) {
        fclose(f);
        return cvd_err_set(&c->e, CVD_EINVAL, "%s: %lld bytes: larger than convd reads (%zu)", path,
                           (long long)st.st_size, max);
    }
    buf = malloc((size_t)st.st_size + 1);
    if (buf == NULL) {
        fclose(f);
        return cvd_err_set(&c->e, CVD_ENOMEM, "%s: out of memory", path);
    }
    if (fread(buf, 1, (size_t)st.st_size, f) != (size_t)st.st_size) {
        free(buf);
        fclose(f);
        return cvd_err_set(&c->e, CVD_EIO, "%s: read error", path);
    }
    fclose(f);
    buf[st.st_size] = '\0';
    *out = buf;
    *len = (size_t)st.st_size;
    return CVD_OK;
}

/* One entry of the archive, whole, NUL-terminated. */
static int kx_zip_entry(kx_ctx *c, zip_t *za, const char *name, size_t max, int required,
                        char **out, size_t *len)
{
    zip_stat_t st;
    zip_file_t *zf;
    zip_int64_t idx = zip_name_locate(za, name, 0);
    char *buf;
    size_t got = 0;

    *out = NULL;
    *len = 0;
    if (idx < 0) {
        if (!required)
            return CVD_OK;
        return kx_bad(c, CVD_EFORMAT,
                      "no %s in the archive (a Keras 3 .keras file holds config.json and "
                      "model.weights.h5)",
                      name);
    }
    zip_stat_init(&st);
    if (zip_stat_index(za, (zip_uint64_t)idx, 0, &st) < 0 || !(st.valid & ZIP_STAT_SIZE))
        return kx_bad(c, CVD_EFORMAT, "%s: cannot stat the archive entry: %s", name,
                      zip_strerror(za));
    if (st.size > max)
        return kx_bad(c, CVD_EINVAL, "%s: %llu bytes: larger than convd reads (%zu)", name,
                      (unsigned long long)st.size, max);
    buf = malloc((size_t)st.size + 1);
    if (buf == NULL)
        return kx_bad(c, CVD_ENOMEM, "%s: out of memory", name);
    zf = zip_fopen_index(za, (zip_uint64_t)idx, 0);
    if (zf == NULL) {
        free(buf);
        return kx_bad(c, CVD_EFORMAT, "%s: cannot open the archive entry: %s", name,
                      zip_strerror(za));
    }
    while (got < st.size) {
        zip_int64_t n = zip_fread(zf, buf + got, st.size - got);
        if (n < 0) {
            int rc = kx_bad(c, CVD_EFORMAT, "%s: the archive is corrupt: %s", name,
                            zip_file_strerror(zf));
            zip_fclose(zf);
            free(buf);
            return rc;
        }
        if (n == 0)
            break;
        got += (size_t)n;
    }
    if (got != st.size) {
        zip_fclose(zf);
        free(buf);
        return kx_bad(c, CVD_EFORMAT, "%s: %zu of %llu bytes in the archive (truncated)", name, got,
                      (unsigned long long)st.size);
    }
    /* a read at the end makes libzip compare the entry's checksum */
    {
        char extra;
        zip_int64_t n = zip_fread(zf, &extra, 1);
        if (n != 0) {
            int rc = kx_bad(c, CVD_EFORMAT, "%s: the archive is corrupt: %s", name,
                            n < 0 ? zip_file_strerror(zf) : "longer than its directory says");
            zip_fclose(zf);
            free(buf);
            return rc;
        }
    }
    if (zip_fclose(zf) != 0) {
        free(buf);
        return kx_bad(c, CVD_EFORMAT, "%s: the archive is corrupt (checksum)", name);
    }
    buf[got] = '\0';
    *out = buf;
    *len = got;
    return CVD_OK;
}

/* ---- HDF5 ----------------------------------------------------------------------------------- */

/* An HDF5 file from memory (the library keeps its own copy). Call under the lock. */
static int kx_h5_open(kx_ctx *c, const char *what, void *buf, size_t len, hid_t *fid)
{
    char h5m[256];
    static int quiet;
    if (!quiet) {
        H5Eset_auto2(H5E_DEFAULT, NULL, NULL); /* errors become our messages */
        quiet = 1;
    }
    *fid = -1;
    if (len < 8 || memcmp(buf, "\211HDF\r\n\032\n", 8) != 0)
        return kx_bad(c, CVD_EFORMAT, "%snot an HDF5 file (no HDF5 signature)", what);
    *fid = H5LTopen_file_image(buf, len, 0);
    if (*fid < 0)
        return kx_bad(c, CVD_EFORMAT, "%scannot open as HDF5 (truncated or corrupt): %s", what,
                      kx_h5_msg(h5m));
    return CVD_OK;
}

/* 1 if every component of path (relative to loc) is a hard link: no external files, no soft
 * links. 0 if a component is missing; -1 (and c->e) if one is another kind of link. */
static int kx_h5_hard(kx_ctx *c, hid_t loc, const char *path, const char *shown)
{
    char part[KX_MAX_PATH];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof part)
        return kx_bad(c, CVD_EFORMAT, "%s: not a valid HDF5 path", shown);
    for (size_t i = 0; i <= n; i++) {
        if (i < n && path[i] != '/')
            continue;
        if (i == 0)
            continue;
        memcpy(part, path, i);
        part[i] = '\0';
        htri_t ex = H5Lexists(loc, part, H5P_DEFAULT);
        if (ex < 0) {
            char h5m[256];
            return kx_bad(c, CVD_EFORMAT, "%s: cannot look up '%s': %s", shown, part,
                          kx_h5_msg(h5m));
        }
        if (ex == 0)
            return 0;
        H5L_info_t li;
        if (H5Lget_info(loc, part, &li, H5P_DEFAULT) < 0) {
            char h5m[256];
            return kx_bad(c, CVD_EFORMAT, "%s: cannot look up '%s': %s", shown, part,
                          kx_h5_msg(h5m));
        }
        if (li.type != H5L_TYPE_HARD)
            return kx_bad(c, CVD_EUNSUPPORTED,
                          "%s: '%s' is %s link: convd reads only what the file itself holds", shown,
                          part, li.type == H5L_TYPE_SOFT ? "a soft" : "an external");
    }
    return 1;
}

/* The strings of an attribute (Keras splits long ones into NAME0, NAME1, ...). *n = -1 when
 * the attribute does not exist. The list is malloc'd (one block: free it). */
static int kx_h5_read_attr(kx_ctx *c, hid_t obj, const char *name, const char *shown, char ***list,
                           int *n, int *cap);

static int kx_h5_strings(kx_ctx *c, hid_t obj, const char *name, const char *shown, char ***list,
                         int *n)
{
    int cap = 0, rc;
    *list = NULL;
    *n = -1;
    htri_t ex = H5Aexists(obj, name);
    if (ex > 0)
        return kx_h5_read_attr(c, obj, name, shown, list, n, &cap);
    H5Eclear2(H5E_DEFAULT);
    for (int k = 0; k < 1000; k++) {
        char chunk[128];
        snprintf(chunk, sizeof chunk, "%s%d", name, k);
        if (H5Aexists(obj, chunk) <= 0) {
            H5Eclear2(H5E_DEFAULT);
            break;
        }
        if ((rc = kx_h5_read_attr(c, obj, chunk, shown, list, n, &cap)) < 0)
            return rc;
    }
    return CVD_OK;
}

static int kx_push(kx_ctx *c, char ***list, int *n, int *cap, const char *s, size_t len)
{
    char *copy;
    if (*n < 0)
        *n = 0;
    if (*n >= KX_MAX_STRINGS)
        return kx_bad(c, CVD_EINVAL, "more than %d names in an attribute", KX_MAX_STRINGS);
    if (*n == *cap) {
        int nc = *cap ? *cap * 2 : 16;
        char **nl = realloc(*list, sizeof(char *) * (size_t)nc);
        if (nl == NULL)
            return kx_bad(c, CVD_ENOMEM, "out of memory");
        *list = nl;
        *cap = nc;
    }
    copy = malloc(len + 1);
    if (copy == NULL)
        return kx_bad(c, CVD_ENOMEM, "out of memory");
    memcpy(copy, s, len);
    copy[len] = '\0';
    (*list)[(*n)++] = copy;
    return CVD_OK;
}

static void kx_free_strings(char **list, int n)
{
    for (int i = 0; i < n; i++)
        free(list[i]);
    free(list);
}

static int kx_h5_read_attr(kx_ctx *c, hid_t obj, const char *name, const char *shown, char ***list,
                           int *n, int *cap)
{
    char h5m[256];
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT), t = -1, s = -1, mt = -1;
    hsize_t dims[1] = {1};
    int rc = CVD_OK, rank;
    hssize_t count;

    if (a < 0)
        return kx_bad(c, CVD_EFORMAT, "%s: attribute %s: %s", shown, name, kx_h5_msg(h5m));
    t = H5Aget_type(a);
    s = H5Aget_space(a);
    if (t < 0 || s < 0) {
        rc = kx_bad(c, CVD_EFORMAT, "%s: attribute %s: %s", shown, name, kx_h5_msg(h5m));
        goto done;
    }
    rank = H5Sget_simple_extent_ndims(s);
    count = H5Sget_simple_extent_npoints(s);
    if (rank < 0 || rank > 1 || count < 0 || count > KX_MAX_STRINGS) {
        rc = kx_bad(c, CVD_EFORMAT, "%s: attribute %s: not a list of names", shown, name);
        goto done;
    }
    if (rank == 1)
        H5Sget_simple_extent_dims(s, dims, NULL);
    if (count == 0) { /* Keras writes an empty list as a float array */
        if (*n < 0)
            *n = 0;
        goto done;
    }
    if (H5Tget_class(t) != H5T_STRING) {
        rc = kx_bad(c, CVD_EFORMAT, "%s: attribute %s: not text", shown, name);
        goto done;
    }
    mt = H5Tcopy(H5T_C_S1);
    H5Tset_cset(mt, H5Tget_cset(t)); /* ASCII or UTF-8, as written */
    if (H5Tis_variable_str(t) > 0) {
        char **v = calloc((size_t)count, sizeof *v);
        H5Tset_size(mt, H5T_VARIABLE);
        if (v == NULL || H5Aread(a, mt, v) < 0) {
            free(v);
            rc = kx_bad(c, CVD_EFORMAT, "%s: attribute %s: cannot read: %s", shown, name,
                        kx_h5_msg(h5m));
            goto done;
        }
        for (hssize_t i = 0; i < count && rc == CVD_OK; i++)
            rc = kx_push(c, list, n, cap, v[i] ? v[i] : "", v[i] ? strlen(v[i]) : 0);
        H5Dvlen_reclaim(mt, s, H5P_DEFAULT, v);
        free(v);
    } else {
        size_t sz = H5Tget_size(t);
        char *v;
        if (sz == 0 || sz > (1u << 20) || (size_t)count * sz > (64u << 20)) {
            rc = kx_bad(c, CVD_EFORMAT, "%s: attribute %s: strings of %zu bytes", shown, name, sz);
            goto done;
        }
        v = malloc((size_t)count * sz);
        H5Tset_size(mt, sz);
        H5Tset_strpad(mt, H5T_STR_NULLPAD); /* every byte may be text (numpy's |S) */
        if (v == NULL || H5Aread(a, mt, v) < 0) {
            free(v);
            rc = kx_bad(c, CVD_EFORMAT, "%s: attribute %s: cannot read: %s", shown, name,
                        kx_h5_msg(h5m));
            goto done;
        }
        for (hssize_t i = 0; i < count && rc == CVD_OK; i++)
            rc = kx_push(c, list, n, cap, v + (size_t)i * sz, strnlen(v + (size_t)i * sz, sz));
        free(v);
    }
done:
    if (mt >= 0)
        H5Tclose(mt);
    if (s >= 0)
        H5Sclose(s);
    if (t >= 0)
        H5Tclose(t);
    H5Aclose(a);
    return rc;
}

static void kx_shape_text(const int *shape, int rank, char *buf, size_t n)
{
    size_t o = (size_t)snprintf(buf, n, "(");
    for (int k = 0; k < rank && o < n; k++)
        o += (size_t)snprintf(buf + o, n - o, k ? ", %d" : "%d", shape[k]);
    if (o < n)
        snprintf(buf + o, n - o, rank == 1 ? ",)" : ")");
}

static int kx_node(const kx_ctx *c, const char *name)
{
    for (int i = 1; i < cvd_model_node_count(c->m); i++)
        if (strcmp(cvd_model_node_name(c->m, i), name) == 0)
            return i;
    return -1;
}

/* Reads dataset `path` (under loc) into variable `var` of `layer`'s node, checking its
 * rank, shape and type first (into a buffer of that shape instead, when `into` is given). */
static int kx_h5_var_to(kx_ctx *c, hid_t loc, const char *path, const char *shown,
                        const kx_layer *L, int node, int var, float *into)
{
    char h5m[256], want_t[64], got_t[96];
    int shape[3], rank, rc = CVD_OK;
    hid_t d = -1, s = -1, t = -1, pl = -1;
    hsize_t dims[8];
    float *buf = NULL;

    if ((rc = kx_h5_hard(c, loc, path, shown)) <= 0)
        return rc == 0 ? kx_bad(c, CVD_EFORMAT, "%s: missing: the weights of %s (%s)", shown,
                                L->where, L->cls)
                       : rc;
    rc = CVD_OK;
    rank = cvd_model_var_shape(c->m, node, var, shape);
    kx_shape_text(shape, rank, want_t, sizeof want_t);
    H5O_info_t oi;
    if (H5Oget_info_by_name(loc, path, &oi, H5P_DEFAULT) < 0 || oi.type != H5O_TYPE_DATASET)
        return kx_bad(c, CVD_EFORMAT, "%s: not a dataset (%s variable %d, shape %s)", shown,
                      L->where, var, want_t);
    d = H5Dopen2(loc, path, H5P_DEFAULT);
    if (d < 0)
        return kx_bad(c, CVD_EFORMAT, "%s: cannot open: %s", shown, kx_h5_msg(h5m));
    pl = H5Dget_create_plist(d);
    if (pl < 0 || H5Pget_layout(pl) == H5D_VIRTUAL || H5Pget_external_count(pl) != 0) {
        rc = kx_bad(c, CVD_EUNSUPPORTED, "%s: its data is stored outside the file", shown);
        goto done;
    }
    s = H5Dget_space(d);
    int r = s < 0 ? -1 : H5Sget_simple_extent_ndims(s);
    if (r < 0 || r > 8) {
        rc = kx_bad(c, CVD_EFORMAT, "%s: not an array", shown);
        goto done;
    }
    H5Sget_simple_extent_dims(s, dims, NULL);
    {
        int same = r == rank;
        size_t o = (size_t)snprintf(got_t, sizeof got_t, "(");
        for (int k = 0; k < r && o < sizeof got_t; k++) {
            o += (size_t)snprintf(got_t + o, sizeof got_t - o, k ? ", %llu" : "%llu",
                                  (unsigned long long)dims[k]);
            same &= k < rank && dims[k] == (hsize_t)shape[k];
        }
        if (o < sizeof got_t)
            snprintf(got_t + o, sizeof got_t - o, r == 1 ? ",)" : ")");
        if (!same) {
            rc = kx_bad(c, CVD_EINVAL, "%s: shape %s, but %s (%s) variable %d has shape %s", shown,
                        got_t, L->where, L->cls, var, want_t);
            goto done;
        }
    }
    t = H5Dget_type(d);
    if (t < 0 || H5Tget_class(t) != H5T_FLOAT || H5Tget_size(t) > 8) {
        rc = kx_bad(c, CVD_EUNSUPPORTED, "%s: not floating point (%s variable %d)", shown, L->where,
                    var);
        goto done;
    }
    size_t count = cvd_model_var_size(c->m, node, var);
    buf = malloc(sizeof(float) * (count ? count : 1));
    if (buf == NULL) {
        rc = kx_bad(c, CVD_ENOMEM, "%s: out of memory", shown);
        goto done;
    }
    if (count > 0 && H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0) {
        rc = kx_bad(c, CVD_EFORMAT, "%s: cannot read (truncated or corrupt?): %s", shown,
                    kx_h5_msg(h5m));
        goto done;
    }
    for (size_t i = 0; i < count; i++)
        if (!isfinite(buf[i])) {
            rc = kx_bad(c, CVD_EINVAL, "%s: value %zu is not a finite float32", shown, i);
            goto done;
        }
    if (into != NULL) {
        memcpy(into, buf, sizeof(float) * count);
    } else if (cvd_model_set_var(c->m, node, var, buf, count, &c->e) < 0) {
        cvd_err_prefix(&c->e, "%s: %s", c->file, shown);
        rc = c->e.code;
    }
done:
    free(buf);
    if (t >= 0)
        H5Tclose(t);
    if (s >= 0)
        H5Sclose(s);
    if (pl >= 0)
        H5Pclose(pl);
    H5Dclose(d);
    return rc;
}

/* Reads dataset `path` into variable `var` of `node`, checked as above. */
static int kx_h5_var(kx_ctx *c, hid_t loc, const char *path, const char *shown, const kx_layer *L,
                     int node, int var)
{
    return kx_h5_var_to(c, loc, path, shown, L, node, var, NULL);
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
static int kx_inbound(kx_ctx *c, const kx_layer *L, json_t *layer, json_t *copy)
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

/* ---- keras-tcn's TCN layer ------------------------------------------------------------------
 *
 * keras-tcn (github.com/philipperemy/keras-tcn, tcn/tcn.py) is a custom layer, but what it
 * computes is fixed by its config, so convd expands it into its own layers. Per residual
 * block b (nb_stacks x len(dilations) of them, dilation d, F filters):
 *
 *   x1 = in -> Conv1D(F, k, d, padding) [-> norm] -> act [-> SpatialDropout]   (twice)
 *   x1 = act(x1)                                    (Act_Conv_Blocks: the activation again)
 *   x2 = in, or a 1x1 Conv1D(F) when F differs from the block's input channels
 *   out = act(x2 + x1)                              (the next block's input); x1 is the skip
 *
 * then the sum of every block's x1 (use_skip_connections) or the last block's out, and with
 * return_sequences=False the frame at index -1 (causal) or steps // 2 (same). Weight
 * normalization (tensorflow-addons, Keras 2 only) is folded into the kernels at load:
 * kernel = g * v / |v| per filter. Nodes are named <tcn>/residual_block_<b>/<part> after the
 * layers keras-tcn creates; the last one carries the TCN's own name. */

#define KX_TCN_MAX_BLOCKS 4096

typedef struct kx_tcn {
    int blocks, k, norm, wnorm, skip, same, ret_seq, slice;
    int in_ch;                  /* of the TCN's input */
    long steps;                 /* of the TCN's input, -1 when not fixed */
    int *filters, *dil, *match; /* per block; match: a 1x1 matching Conv1D */
    char act[64];
} kx_tcn;

enum { KX_NORM_NONE, KX_NORM_BATCH, KX_NORM_LAYER };

static void kx_tcn_free(kx_tcn *t)
{
    if (t == NULL)
        return;
    free(t->filters);
    free(t->dil);
    free(t->match);
    free(t);
}

/* keras-tcn's class: class_name TCN from module tcn.tcn (or no module: Keras 2). */
static int kx_is_tcn(json_t *layer)
{
    const char *cls = json_string_value(json_object_get(layer, "class_name"));
    const char *module = json_string_value(json_object_get(layer, "module"));
    const char *reg = json_string_value(json_object_get(layer, "registered_name"));
    size_t rl = reg ? strlen(reg) : 0;
    if (cls == NULL || strcmp(cls, "TCN") != 0)
        return 0;
    if (module != NULL && strncmp(module, "tcn", 3) != 0)
        return 0;
    return reg == NULL || strcmp(reg, "TCN") == 0 || (rl > 4 && strcmp(reg + rl - 4, ">TCN") == 0);
}

/* The TCN's node names. part NULL: the TCN's own name. */
static int kx_tcn_name(kx_ctx *c, const kx_layer *L, int block, const char *part, char *buf,
                       size_t n)
{
    int w;
    if (part == NULL)
        w = snprintf(buf, n, "%s", L->name);
    else if (block < 0)
        w = snprintf(buf, n, "%s/%s", L->name, part);
    else
        w = snprintf(buf, n, "%s/residual_block_%d/%s", L->name, block, part);
    if (w < 0 || (size_t)w >= n || w > 95)
        return kx_bad(c, CVD_EINVAL,
                      "%s%s (TCN): the name '%s' is too long for the names of its parts (convd "
                      "names them <name>/residual_block_<i>/<part>, at most 95 bytes)",
                      c->lp, L->where, L->name);
    return CVD_OK;
}

/* A bounded copy of a name (every name here fits: kx_tcn_name checks them). */
static void kx_cpy(char *d, size_t n, const char *src)
{
    size_t l = strnlen(src, n - 1);
    memcpy(d, src, l);
    d[l] = '\0';
}

static int kx_tcn_int(kx_ctx *c, const kx_layer *L, json_t *v, const char *key, long long lo,
                      long long hi, int *out)
{
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi)
        return kx_bad(c, CVD_EINVAL, "%s%s (TCN): config.%s: must be an integer from %lld to %lld",
                      c->lp, L->where, key, lo, hi);
    *out = (int)json_integer_value(v);
    return CVD_OK;
}

static int kx_tcn_bool(kx_ctx *c, const kx_layer *L, json_t *cfg, const char *key, int def,
                       int *out)
{
    json_t *v = json_object_get(cfg, key);
    if (v == NULL || json_is_null(v)) {
        *out = def;
        return CVD_OK;
    }
    if (json_is_boolean(v)) {
        *out = json_is_true(v);
        return CVD_OK;
    }
    if (json_is_integer(v) && (json_integer_value(v) == 0 || json_integer_value(v) == 1)) {
        *out = (int)json_integer_value(v);
        return CVD_OK;
    }
    return kx_bad(c, CVD_EINVAL, "%s%s (TCN): config.%s: must be true or false", c->lp, L->where,
                  key);
}

/* The TCN's config, checked as keras-tcn checks it, with keras-tcn's defaults. */
static int kx_tcn_parse(kx_ctx *c, kx_layer *L, json_t *cfg, kx_tcn **out)
{
    static const char *const keys[] = {"name",
                                       "trainable",
                                       "dtype",
                                       "batch_input_shape",
                                       "batch_shape",
                                       "batch_size",
                                       "nb_filters",
                                       "kernel_size",
                                       "nb_stacks",
                                       "dilations",
                                       "padding",
                                       "use_skip_connections",
                                       "dropout_rate",
                                       "return_sequences",
                                       "activation",
                                       "kernel_initializer",
                                       "use_batch_norm",
                                       "use_layer_norm",
                                       "use_weight_norm",
                                       "go_backwards",
                                       "return_state",
                                       NULL};
    static const int def_dil[] = {1, 2, 4, 8, 16, 32};
    kx_tcn *t = calloc(1, sizeof *t);
    json_t *v, *nf, *dl;
    const char *key;
    int rc, stacks = 1, n_dil, bn, ln, back, dummy;

    *out = NULL;
    if (t == NULL)
        return kx_bad(c, CVD_ENOMEM, "out of memory");
    *out = t;
    if (cfg == NULL || !json_is_object(cfg))
        return kx_bad(c, CVD_EFORMAT, "%s%s (TCN): no config object", c->lp, L->where);
    json_object_foreach(cfg, key, v)
    {
        int known = 0;
        for (int i = 0; keys[i] && !known; i++)
            known = strcmp(key, keys[i]) == 0;
        if (!known)
            return kx_bad(c, CVD_EUNSUPPORTED,
                          "%s%s (TCN): config.%s: not an argument of keras-tcn's TCN that convd "
                          "knows (docs/KERAS.md lists them)",
                          c->lp, L->where, key);
    }
    t->k = 3;
    if ((v = json_object_get(cfg, "kernel_size")) != NULL &&
        (rc = kx_tcn_int(c, L, v, "kernel_size", 1, 65536, &t->k)) < 0)
        return rc;
    if ((v = json_object_get(cfg, "nb_stacks")) != NULL &&
        (rc = kx_tcn_int(c, L, v, "nb_stacks", 1, KX_TCN_MAX_BLOCKS, &stacks)) < 0)
        return rc;
    dl = json_object_get(cfg, "dilations");
    if (dl != NULL && json_is_integer(dl)) /* keras-tcn: dilations=[1] written as 1 */
        n_dil = 1;
    else if (dl == NULL || json_is_null(dl))
        n_dil = 6;
    else if (json_is_array(dl) && json_array_size(dl) > 0 &&
             json_array_size(dl) <= KX_TCN_MAX_BLOCKS)
        n_dil = (int)json_array_size(dl);
    else
        return kx_bad(c, CVD_EINVAL,
                      "%s%s (TCN): config.dilations: must be a list of 1 to %d "
                      "integers",
                      c->lp, L->where, KX_TCN_MAX_BLOCKS);
    if ((long long)stacks * n_dil > KX_TCN_MAX_BLOCKS)
        return kx_bad(c, CVD_EINVAL,
                      "%s%s (TCN): nb_stacks %d x %d dilations: more than %d "
                      "residual blocks",
                      c->lp, L->where, stacks, n_dil, KX_TCN_MAX_BLOCKS);
    t->blocks = stacks * n_dil;
    t->filters = calloc((size_t)t->blocks, sizeof *t->filters);
    t->dil = calloc((size_t)t->blocks, sizeof *t->dil);
    t->match = calloc((size_t)t->blocks, sizeof *t->match);
    if (!t->filters || !t->dil || !t->match)
        return kx_bad(c, CVD_ENOMEM, "out of memory");
    for (int i = 0; i < n_dil; i++) {
        int d = def_dil[i % 6];
        if (dl != NULL && json_is_integer(dl))
            rc = kx_tcn_int(c, L, dl, "dilations", 1, 1 << 24, &d);
        else if (dl != NULL && !json_is_null(dl))
            rc = kx_tcn_int(c, L, json_array_get(dl, (size_t)i), "dilations", 1, 1 << 24, &d);
        else
            rc = CVD_OK;
        if (rc < 0)
            return rc;
        for (int s = 0; s < stacks; s++)
            t->dil[s * n_dil + i] = d;
    }
    nf = json_object_get(cfg, "nb_filters");
    for (int i = 0; i < n_dil; i++) {
        int f = 64;
        if (nf != NULL && json_is_array(nf)) {
            if (json_array_size(nf) != (size_t)n_dil)
                return kx_bad(c, CVD_EINVAL,
                              "%s%s (TCN): config.nb_filters: a list of %zu, but there are %d "
                              "dilations (keras-tcn wants one per dilation)",
                              c->lp, L->where, json_array_size(nf), n_dil);
            rc = kx_tcn_int(c, L, json_array_get(nf, (size_t)i), "nb_filters", 1, 65536, &f);
        } else if (nf != NULL) {
            rc = kx_tcn_int(c, L, nf, "nb_filters", 1, 65536, &f);
        } else {
            rc = CVD_OK;
        }
        if (rc < 0)
            return rc;
        for (int s = 0; s < stacks; s++)
            t->filters[s * n_dil + i] = f;
    }
    v = json_object_get(cfg, "padding");
    if (v == NULL || json_is_null(v))
        t->same = 0;
    else if (json_is_string(v) && strcmp(json_string_value(v), "causal") == 0)
        t->same = 0;
    else if (json_is_string(v) && strcmp(json_string_value(v), "same") == 0)
        t->same = 1;
    else
        return kx_bad(c, CVD_EINVAL,
                      "%s%s (TCN): config.padding: must be 'causal' or 'same' (keras-tcn accepts "
                      "only these)",
                      c->lp, L->where);
    if ((rc = kx_tcn_bool(c, L, cfg, "use_skip_connections", 1, &t->skip)) < 0 ||
        (rc = kx_tcn_bool(c, L, cfg, "return_sequences", 0, &t->ret_seq)) < 0 ||
        (rc = kx_tcn_bool(c, L, cfg, "use_batch_norm", 0, &bn)) < 0 ||
        (rc = kx_tcn_bool(c, L, cfg, "use_layer_norm", 0, &ln)) < 0 ||
        (rc = kx_tcn_bool(c, L, cfg, "use_weight_norm", 0, &t->wnorm)) < 0 ||
        (rc = kx_tcn_bool(c, L, cfg, "go_backwards", 0, &back)) < 0 ||
        (rc = kx_tcn_bool(c, L, cfg, "return_state", 0, &dummy)) < 0 ||
        (rc = kx_tcn_bool(c, L, cfg, "trainable", 1, &dummy)) < 0)
        return rc;
    if (bn + ln + t->wnorm > 1)
        return kx_bad(c, CVD_EINVAL,
                      "%s%s (TCN): use_batch_norm, use_layer_norm and use_weight_norm: only one "
                      "normalization can be specified at once (keras-tcn refuses this too)",
                      c->lp, L->where);
    t->norm = bn ? KX_NORM_BATCH : ln ? KX_NORM_LAYER : KX_NORM_NONE;
    if (back)
        return kx_bad(c, CVD_EUNSUPPORTED,
                      "%s%s (TCN): go_backwards=true: the TCN reads its input reversed in time, "
                      "so every output depends on the input's last frames, which a stream "
                      "does not have yet: convd does not run it",
                      c->lp, L->where);
    if (t->skip) {
        for (int i = 1; i < t->blocks; i++)
            if (t->filters[i] != t->filters[0])
                return kx_bad(c, CVD_EINVAL,
                              "%s%s (TCN): use_skip_connections with nb_filters that are not "
                              "all equal (keras-tcn refuses this too: the skip outputs are "
                              "summed)",
                              c->lp, L->where);
    }
    v = json_object_get(cfg, "dropout_rate");
    if (v != NULL && !json_is_null(v) &&
        (!json_is_number(v) || json_number_value(v) < 0 || json_number_value(v) >= 1))
        return kx_bad(c, CVD_EINVAL,
                      "%s%s (TCN): config.dropout_rate: must be a number from 0 "
                      "to below 1",
                      c->lp, L->where);
    v = json_object_get(cfg, "activation");
    if (v == NULL || json_is_null(v))
        snprintf(t->act, sizeof t->act, "%s", v == NULL ? "relu" : "linear");
    else if (json_is_string(v) && strlen(json_string_value(v)) < sizeof t->act) {
        cvd_activation a;
        cvd_err e2 = {0};
        snprintf(t->act, sizeof t->act, "%s", json_string_value(v));
        if (cvd_activation_parse(t->act, &a, &e2) < 0)
            return kx_bad(c, CVD_EINVAL, "%s%s (TCN): config.activation: %s", c->lp, L->where,
                          e2.msg);
    } else
        return kx_bad(c, CVD_EUNSUPPORTED,
                      "%s%s (TCN): config.activation: must be the name of a Keras activation",
                      c->lp, L->where);
    return CVD_OK;
}

/* Appends {"class_name", "name", "config", "inputs"} to list (config and inputs stolen). */
static int kx_tcn_push(kx_ctx *c, json_t *list, const char *cls, const char *name, json_t *cfg,
                       json_t *inputs)
{
    json_t *o = json_object();
    if (o == NULL || cfg == NULL || inputs == NULL ||
        json_object_set_new(o, "class_name", json_string(cls)) != 0 ||
        json_object_set_new(o, "name", json_string(name)) != 0 ||
        json_object_set_new(o, "config", cfg) != 0 ||
        json_object_set_new(o, "inputs", inputs) != 0 || json_array_append_new(list, o) != 0) {
        json_decref(o);
        return kx_bad(c, CVD_ENOMEM, "out of memory");
    }
    return CVD_OK;
}

static json_t *kx_tcn_conv_cfg(int filters, int k, int d, const char *padding, const char *act)
{
    return json_pack("{s:i, s:i, s:i, s:s, s:s, s:b, s:s}", "filters", filters, "kernel_size", k,
                     "dilation_rate", d, "padding", padding, "activation", act, "use_bias", 1,
                     "data_format", "channels_last");
}

/* relu and linear give the same values applied twice: the second is left out. */
static int kx_tcn_idempotent(const char *act)
{
    return strcmp(act, "relu") == 0 || strcmp(act, "linear") == 0;
}

/* The shape of the model input as translated so far: the InputLayer's or input_shape. */
static int kx_tcn_model_input(json_t *root, json_t *list, int *ch, long *steps)
{
    json_t *shape = NULL;
    for (size_t i = 0; i < json_array_size(list) && shape == NULL; i++) {
        json_t *e = json_array_get(list, i), *cc = json_object_get(e, "config");
        const char *cls = json_string_value(json_object_get(e, "class_name"));
        if (cls == NULL || strcmp(cls, "InputLayer") != 0)
            continue;
        if ((shape = json_object_get(cc, "batch_shape")) == NULL || json_is_null(shape))
            shape = json_object_get(cc, "batch_input_shape");
        if ((shape == NULL || json_is_null(shape)) && json_is_array(json_object_get(cc, "shape"))) {
            json_t *s = json_object_get(cc, "shape");
            if (json_array_size(s) != 2)
                return -1;
            *steps = json_is_integer(json_array_get(s, 0))
                         ? (long)json_integer_value(json_array_get(s, 0))
                         : -1;
            *ch = (int)json_integer_value(json_array_get(s, 1));
            return 0;
        }
    }
    if (shape == NULL || json_is_null(shape))
        shape = json_object_get(root, "input_shape");
    if (!json_is_array(shape) || json_array_size(shape) != 3 ||
        !json_is_integer(json_array_get(shape, 2)))
        return -1;
    *steps = json_is_integer(json_array_get(shape, 1))
                 ? (long)json_integer_value(json_array_get(shape, 1))
                 : -1;
    *ch = (int)json_integer_value(json_array_get(shape, 2));
    return 0;
}

/* The channels and frames of the node `in` that the TCN reads: from the model input's shape,
 * or by building the part of the model it depends on (a probe, discarded). */
static int kx_tcn_input_shape(kx_ctx *c, const kx_layer *L, json_t *root, json_t *list,
                              const char *in, kx_tcn *t)
{
    size_t n = json_array_size(list);
    int is_input = strcmp(in, "input") == 0 || n == 0, rc = CVD_OK, idx = -1;
    for (size_t i = 0; i < n && !is_input; i++) {
        json_t *e = json_array_get(list, i);
        const char *nm = json_string_value(json_object_get(e, "name"));
        const char *cls = json_string_value(json_object_get(e, "class_name"));
        if (nm != NULL && strcmp(nm, in) == 0) {
            is_input = cls != NULL && strcmp(cls, "InputLayer") == 0;
            idx = (int)i;
        }
    }
    if (is_input) {
        if (kx_tcn_model_input(root, list, &t->in_ch, &t->steps) < 0 || t->in_ch < 1)
            return kx_bad(c, CVD_EFORMAT,
                          "%s%s (TCN): the model does not say its input's shape [null, steps, "
                          "channels]: convd needs the channels",
                          c->lp, L->where);
        return CVD_OK;
    }
    if (idx < 0)
        return kx_bad(c, CVD_EINVAL, "%s%s (TCN): its input '%s' is not a layer listed before it",
                      c->lp, L->where, in);
    /* the layers `in` depends on, in the listed order */
    char *need = calloc(n, 1);
    json_t *probe = NULL, *pl = json_array();
    cvd_model *pm = NULL;
    if (need == NULL || pl == NULL) {
        free(need);
        json_decref(pl);
        return kx_bad(c, CVD_ENOMEM, "out of memory");
    }
    need[idx] = 1;
    for (int i = idx; i >= 0; i--) {
        if (!need[i])
            continue;
        json_t *e = json_array_get(list, (size_t)i), *ins = json_object_get(e, "inputs");
        const char *cls = json_string_value(json_object_get(e, "class_name"));
        if (cls != NULL && strcmp(cls, "InputLayer") == 0)
            continue;
        if (ins == NULL) { /* Sequential: the layer listed before */
            if (i > 0)
                need[i - 1] = 1;
            continue;
        }
        for (size_t k = 0; k < json_array_size(ins); k++) {
            const char *nm = json_string_value(json_array_get(ins, k));
            for (int j = 0; nm && j < i; j++) {
                const char *o =
                    json_string_value(json_object_get(json_array_get(list, (size_t)j), "name"));
                if (o != NULL && strcmp(o, nm) == 0)
                    need[j] = 1;
            }
        }
    }
    for (size_t i = 0; i < n; i++)
        if (need[i])
            json_array_append(pl, json_array_get(list, i));
    free(need);
    probe = json_pack("{s:s, s:i, s:o, s:s}", "format", "convd-model", "version", 1, "layers", pl,
                      "output", in);
    if (probe == NULL)
        return kx_bad(c, CVD_ENOMEM, "out of memory");
    if (json_object_get(root, "input_shape") != NULL)
        json_object_set(probe, "input_shape", json_object_get(root, "input_shape"));
    {
        char full[1200];
        snprintf(full, sizeof full, "%s%s%s", c->file, c->label[0] ? ": " : "", c->label);
        rc = cvd_json_model_build(probe, full, NULL, &pm, &c->e);
    }
    json_decref(probe);
    if (rc < 0)
        return rc;
    for (int i = 1; i < cvd_model_node_count(pm); i++)
        if (strcmp(cvd_model_node_name(pm, i), in) == 0) {
            t->in_ch = cvd_model_node_channels(pm, i);
            t->steps = cvd_model_node_frames(pm, i);
            if (cvd_model_node_rank(pm, i) != 2)
                rc = kx_bad(c, CVD_EINVAL,
                            "%s%s (TCN): its input '%s' is not a sequence (steps, channels)", c->lp,
                            L->where, in);
        }
    cvd_model_unref(pm);
    return rc;
}

/* The TCN `layer` (at L) into convd's layers, appended to list. */
static int kx_tcn_translate(kx_ctx *c, kx_layer *L, json_t *layer, json_t *root, json_t *list,
                            int functional)
{
    json_t *cfg = json_object_get(layer, "config");
    kx_tcn *t = NULL;
    char in[128], p[8][128], cur[128], x1[128];
    char(*skips)[128] = NULL;
    int rc = kx_tcn_parse(c, L, cfg, &t);
    L->tcn = t;
    if (rc < 0)
        return rc;
    /* what it reads */
    if (functional) {
        json_t *tmp = json_object();
        if (tmp == NULL)
            return kx_bad(c, CVD_ENOMEM, "out of memory");
        rc = kx_inbound(c, L, layer, tmp);
        json_t *ins = json_object_get(tmp, "inputs");
        if (rc == CVD_OK && json_array_size(ins) != 1)
            rc = kx_bad(c, CVD_EINVAL, "%s%s (TCN) is called on %zu tensors: it takes one", c->lp,
                        L->where, json_array_size(ins));
        if (rc == CVD_OK)
            kx_cpy(in, sizeof in, json_string_value(json_array_get(ins, 0)));
        json_decref(tmp);
        if (rc < 0)
            return rc;
    } else {
        size_t n = json_array_size(list);
        const char *prev =
            n ? json_string_value(json_object_get(json_array_get(list, n - 1), "name")) : NULL;
        kx_cpy(in, sizeof in, prev ? prev : "input");
        if (n == 0 && json_object_get(root, "input_shape") == NULL) {
            /* Keras 2's Sequential: the first layer carries the input's shape */
            json_t *bs = json_object_get(cfg, "batch_input_shape");
            if (bs == NULL)
                bs = json_object_get(cfg, "batch_shape");
            if (bs != NULL)
                json_object_set(root, "input_shape", bs);
        }
    }
    if ((rc = kx_tcn_input_shape(c, L, root, list, in, t)) < 0)
        return rc;
    if (!t->ret_seq && t->steps <= 0 && t->same)
        return kx_bad(c, CVD_EUNSUPPORTED,
                      "%s%s (TCN): return_sequences=false with padding 'same' gives the frame in "
                      "the middle of the input, which needs the input's length: give the "
                      "InputLayer its steps (the model then runs on windows of that length)",
                      c->lp, L->where);
    t->slice = !t->ret_seq && t->steps > 0;
    skips = calloc((size_t)t->blocks, sizeof *skips);
    if (skips == NULL)
        return kx_bad(c, CVD_ENOMEM, "out of memory");
    {
        int ci = t->in_ch;
        const char *pad = t->same ? "same" : "causal";
        const int idem = kx_tcn_idempotent(t->act);
        for (int b = 0; b < t->blocks && rc == CVD_OK; b++) {
            const int F = t->filters[b], last = b == t->blocks - 1;
            static const char *const parts[] = {"conv1D_0",        "norm_0",         "Act_Conv1D_0",
                                                "conv1D_1",        "norm_1",         "Act_Conv1D_1",
                                                "Act_Conv_Blocks", "matching_conv1D"};
            for (int q = 0; q < 8 && rc == CVD_OK; q++)
                rc = kx_tcn_name(c, L, b, parts[q], p[q], sizeof p[q]);
            kx_cpy(cur, sizeof cur, in);
            for (int k = 0; k < 2 && rc == CVD_OK; k++) {
                const char *cn = p[3 * k], *nn = p[3 * k + 1], *an = p[3 * k + 2];
                rc = kx_tcn_push(
                    c, list, "Conv1D", cn,
                    kx_tcn_conv_cfg(F, t->k, t->dil[b], pad, t->norm ? "linear" : t->act),
                    json_pack("[s]", cur));
                kx_cpy(cur, sizeof cur, cn);
                if (rc == CVD_OK && t->norm) {
                    rc = kx_tcn_push(c, list,
                                     t->norm == KX_NORM_BATCH ? "BatchNormalization"
                                                              : "LayerNormalization",
                                     nn, json_pack("{s:i, s:f}", "axis", -1, "epsilon", 1e-3),
                                     json_pack("[s]", cur));
                    if (rc == CVD_OK)
                        rc = kx_tcn_push(c, list, "Activation", an,
                                         json_pack("{s:s}", "activation", t->act),
                                         json_pack("[s]", nn));
                    kx_cpy(cur, sizeof cur, an);
                }
            }
            if (rc == CVD_OK && !idem) {
                rc = kx_tcn_push(c, list, "Activation", p[6],
                                 json_pack("{s:s}", "activation", t->act), json_pack("[s]", cur));
                kx_cpy(cur, sizeof cur, p[6]);
            }
            kx_cpy(x1, sizeof x1, cur);
            snprintf(skips[b], sizeof skips[b], "%s", x1);
            const char *x2 = in;
            t->match[b] = F != ci;
            if (last && t->skip) /* its residual output is not used: only the skip */
                break;
            if (rc == CVD_OK && t->match[b]) {
                rc = kx_tcn_push(c, list, "Conv1D", p[7],
                                 kx_tcn_conv_cfg(F, 1, 1, "same", "linear"), json_pack("[s]", in));
                x2 = p[7];
            }
            char addn[128], outn[128];
            if (rc == CVD_OK)
                rc = kx_tcn_name(c, L, b, "Add_Res", addn, sizeof addn);
            if (rc == CVD_OK)
                rc = last && !t->skip && !t->slice
                         ? kx_tcn_name(c, L, -1, NULL, outn, sizeof outn)
                         : kx_tcn_name(c, L, b, "Act_Res_Block", outn, sizeof outn);
            if (rc == CVD_OK)
                rc = kx_tcn_push(c, list, "Add", addn, json_object(), json_pack("[s, s]", x2, x1));
            if (rc == CVD_OK)
                rc = kx_tcn_push(c, list, "Activation", outn,
                                 json_pack("{s:s}", "activation", t->act), json_pack("[s]", addn));
            kx_cpy(in, sizeof in, outn);
            ci = F;
        }
    }
    /* the skip connections summed (at most 64 inputs per Add) */
    if (rc == CVD_OK && t->skip) {
        char sum[128];
        if (t->blocks == 1) {
            kx_cpy(in, sizeof in, skips[0]);
            if (!t->slice) {
                rc = kx_tcn_name(c, L, -1, NULL, sum, sizeof sum);
                if (rc == CVD_OK)
                    rc = kx_tcn_push(c, list, "Identity", sum, json_object(), json_pack("[s]", in));
                kx_cpy(in, sizeof in, sum);
            }
        } else {
            int done = 0, part = 0;
            char prev[128] = "";
            while (rc == CVD_OK && done < t->blocks) {
                json_t *ins = json_array();
                int take = t->blocks - done;
                if (prev[0])
                    json_array_append_new(ins, json_string(prev));
                if (take > 64 - (prev[0] != 0))
                    take = 64 - (prev[0] != 0);
                for (int i = 0; i < take; i++)
                    json_array_append_new(ins, json_string(skips[done + i]));
                done += take;
                if (done == t->blocks && !t->slice) {
                    rc = kx_tcn_name(c, L, -1, NULL, sum, sizeof sum);
                } else {
                    char part_name[48];
                    snprintf(part_name, sizeof part_name,
                             part ? "Add_Skip_Connections_%d" : "Add_Skip_Connections", part);
                    rc = kx_tcn_name(c, L, -1, part_name, sum, sizeof sum);
                }
                if (rc == CVD_OK)
                    rc = kx_tcn_push(c, list, "Add", sum, json_object(), ins);
                else
                    json_decref(ins);
                kx_cpy(prev, sizeof prev, sum);
                part++;
            }
            kx_cpy(in, sizeof in, prev);
        }
    }
    /* return_sequences=False: one frame of a window of fixed length */
    if (rc == CVD_OK && t->slice) {
        char crop[128], fin[128];
        const long T = t->steps, left = t->same ? T / 2 : T - 1;
        rc = kx_tcn_name(c, L, -1, "Slice_Output", crop, sizeof crop);
        if (rc == CVD_OK)
            rc = kx_tcn_name(c, L, -1, NULL, fin, sizeof fin);
        if (rc == CVD_OK)
            rc = kx_tcn_push(
                c, list, "Cropping1D", crop,
                json_pack("{s:[I, I]}", "cropping", (json_int_t)left, (json_int_t)(T - 1 - left)),
                json_pack("[s]", in));
        if (rc == CVD_OK)
            rc = kx_tcn_push(c, list, "Flatten", fin, json_object(), json_pack("[s]", crop));
    }
    free(skips);
    return rc;
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

/* ---- keras-tcn's weights ----------------------------------------------------------------------
 */

/* A part of a TCN as a layer, for messages: "layers[1] (tcn): residual_block_0/conv1D_0". */
static void kx_tcn_sub(const kx_layer *L, int block, const char *part, const char *cls,
                       kx_layer *sub)
{
    memset(sub, 0, sizeof *sub);
    sub->name = L->name;
    sub->cls = cls;
    snprintf(sub->where, sizeof sub->where, "%.100s: residual_block_%d/%s", L->where, block, part);
}

static int kx_tcn_node(kx_ctx *c, const kx_layer *L, int block, const char *part)
{
    char nm[128];
    if (kx_tcn_name(c, L, block, part, nm, sizeof nm) < 0)
        return -1;
    int node = kx_node(c, nm);
    if (node < 0)
        kx_bad(c, CVD_EINVAL, "%s: no node '%s' (internal)", L->where, nm);
    return node;
}

/* Number of links in the group at path (-1: absent; c->e set and < -1 on error). */
static long kx_h5_count(kx_ctx *c, hid_t fid, const char *path, const char *shown)
{
    int ex = kx_h5_hard(c, fid, path, shown);
    H5G_info_t gi;
    if (ex < 0)
        return -2;
    if (ex == 0)
        return -1;
    if (H5Gget_info_by_name(fid, path, &gi, H5P_DEFAULT) < 0) {
        char h5m[256];
        kx_bad(c, CVD_EFORMAT, "%s: not a group: %s", shown, kx_h5_msg(h5m));
        return -2;
    }
    return (long)gi.nlinks;
}

/* Keras 3: the variables of one part, gpath/<i> for i < the node's count, into `node`. */
static int kx_tcn_group3(kx_ctx *c, hid_t fid, const char *where, const char *gpath,
                         const kx_layer *sub, int node)
{
    char shown[KX_MAX_PATH + 200], vpath[KX_MAX_PATH + 16];
    const int nv = cvd_model_var_count(c->m, node);
    int rc = CVD_OK;
    snprintf(shown, sizeof shown, "%s%s", where, gpath);
    long held = kx_h5_count(c, fid, gpath, shown);
    if (held < -1)
        return c->e.code;
    if (held < 0)
        return kx_bad(c, CVD_EFORMAT, "%s: missing: the weights of %s (%s), %d variables", shown,
                      sub->where, sub->cls, nv);
    if (held != nv)
        return kx_bad(c, CVD_EINVAL, "%s: %ld variables, but %s (%s) has %d", shown, held,
                      sub->where, sub->cls, nv);
    for (int v = 0; v < nv && rc == CVD_OK; v++) {
        snprintf(vpath, sizeof vpath, "%s/%d", gpath, v);
        snprintf(shown, sizeof shown, "%s%s", where, vpath);
        rc = kx_h5_var(c, fid, vpath, shown, sub, node, v);
    }
    return rc;
}

static int kx_suffix_cmp(const void *a, const void *b)
{
    const long x = *(const long *)a, y = *(const long *)b;
    return (x > y) - (x < y);
}

/* Keras 3: where norm layer k of a block is. keras-tcn >= 3.5.5 keeps its norm layers in a
 * list (batch_norm_layers, layer_norm_layers), which Keras saves first: <list>/<class>[_1];
 * older versions only as attributes named after the layer (batch_normalization_7): those,
 * in the order of their numbers. */
static int kx_tcn_norm_path3(kx_ctx *c, hid_t fid, const char *where, const char *block_path,
                             const kx_tcn *t, int k, char *out, size_t n)
{
    const char *list = t->norm == KX_NORM_BATCH ? "batch_norm_layers" : "layer_norm_layers";
    const char *stem = t->norm == KX_NORM_BATCH ? "batch_normalization" : "layer_normalization";
    char shown[KX_MAX_PATH + 200];
    long found[2] = {0, 0}, count;
    int nf = 0;
    if ((size_t)snprintf(out, n, "%s/%s/%s%s/vars", block_path, list, stem, k ? "_1" : "") >= n)
        return kx_bad(c, CVD_EINVAL, "%s%s: path too long", where, block_path);
    out[strlen(out) - 5] = '\0';
    snprintf(shown, sizeof shown, "%s%s", where, out);
    if ((count = kx_h5_count(c, fid, out, shown)) < -1)
        return c->e.code;
    if (count >= 0) {
        out[strlen(out)] = '/'; /* the "/vars" written above */
        return CVD_OK;
    }
    snprintf(shown, sizeof shown, "%s%s", where, block_path);
    if ((count = kx_h5_count(c, fid, block_path, shown)) < 0)
        return count < -1 ? c->e.code : kx_bad(c, CVD_EFORMAT, "%s: missing", shown);
    for (long i = 0; i < count; i++) {
        char name[256];
        ssize_t len = H5Lget_name_by_idx(fid, block_path, H5_INDEX_NAME, H5_ITER_INC, (hsize_t)i,
                                         name, sizeof name, H5P_DEFAULT);
        size_t sl = strlen(stem);
        if (len <= 0 || (size_t)len >= sizeof name || strncmp(name, stem, sl) != 0)
            continue;
        long num = 0;
        if (name[sl] == '_') {
            char *end;
            num = strtol(name + sl + 1, &end, 10);
            if (*end != '\0' || name[sl + 1] == '\0')
                continue;
        } else if (name[sl] != '\0') {
            continue;
        }
        if (nf == 2)
            return kx_bad(c, CVD_EINVAL, "%s: more than two %s groups", shown, stem);
        found[nf++] = num;
    }
    H5Eclear2(H5E_DEFAULT);
    if (nf != 2)
        return kx_bad(c, CVD_EFORMAT,
                      "%s: missing: the weights of the block's two %s layers (%s/%s, or "
                      "%s_N groups)",
                      shown, stem, list, stem, stem);
    qsort(found, 2, sizeof found[0], kx_suffix_cmp);
    int w = found[k] == 0 ? snprintf(out, n, "%s/%s/vars", block_path, stem)
                          : snprintf(out, n, "%s/%s_%ld/vars", block_path, stem, found[k]);
    if (w < 0 || (size_t)w >= n)
        return kx_bad(c, CVD_EINVAL, "%s%s: path too long", where, block_path);
    return CVD_OK;
}

/* Keras 3 (.keras, .weights.h5): layers/tcn[_N]/residual_block_<b>/<part>/vars/<i>, the
 * paths being the attributes keras-tcn sets on its layers. */
static int kx_tcn_weights3(kx_ctx *c, hid_t fid, const char *where, const char *base,
                           const kx_layer *L)
{
    const kx_tcn *t = L->tcn;
    char path[KX_MAX_PATH], bpath[KX_MAX_PATH], shown[KX_MAX_PATH + 200];
    int rc = CVD_OK;
    long count;
    snprintf(shown, sizeof shown, "%s%s", where, base);
    if ((count = kx_h5_count(c, fid, base, shown)) < -1)
        return c->e.code;
    if (count < 0)
        return kx_bad(c, CVD_EFORMAT,
                      "%s: missing: the weights of %s (TCN) (Keras writes them by class name: "
                      "is this the model's own weights file?)",
                      shown, L->where);
    if (t->wnorm)
        return kx_bad(c, CVD_EUNSUPPORTED,
                      "%s%s (TCN): use_weight_norm=true in a Keras 3 file: keras-tcn's weight "
                      "normalization comes from tensorflow-addons, which runs with Keras 2 only; "
                      "convd reads such a model from its Keras 2 .h5 file",
                      c->lp, L->where);
    for (int b = 0; b < t->blocks && rc == CVD_OK; b++) {
        static const char *const convs[] = {"conv1D_0", "conv1D_1", "matching_conv1D"};
        snprintf(bpath, sizeof bpath, "%s/residual_block_%d", base, b);
        for (int q = 0; q < 3 && rc == CVD_OK; q++) {
            kx_layer sub;
            if ((size_t)snprintf(path, sizeof path, "%s/%s/vars", bpath, convs[q]) >= sizeof path)
                return kx_bad(c, CVD_EINVAL, "%s%s: path too long", where, bpath);
            if (q == 2 && !t->match[b]) {
                snprintf(shown, sizeof shown, "%s%s", where, path);
                if ((count = kx_h5_count(c, fid, path, shown)) < -1)
                    return c->e.code;
                if (count > 0)
                    return kx_bad(c, CVD_EINVAL,
                                  "%s: a matching 1x1 convolution, but the block's input has "
                                  "%d channels already (nb_filters): not this model's weights",
                                  shown, t->filters[b]);
                continue;
            }
            kx_tcn_sub(L, b, convs[q], "Conv1D", &sub);
            if (q == 2 && t->skip && b == t->blocks - 1) {
                /* the last block's residual output is not used (only its skip output): its
                 * matching convolution is in the file but not in the model */
                snprintf(shown, sizeof shown, "%s%s", where, path);
                if ((count = kx_h5_count(c, fid, path, shown)) < -1)
                    return c->e.code;
                if (count != 2)
                    return kx_bad(c, CVD_EFORMAT, "%s: %s, but %s (Conv1D) has 2 variables", shown,
                                  count < 0 ? "missing" : "not 2 variables", sub.where);
                continue;
            }
            int node = kx_tcn_node(c, L, b, convs[q]);
            rc = node < 0 ? c->e.code : kx_tcn_group3(c, fid, where, path, &sub, node);
        }
        for (int k = 0; k < 2 && t->norm && rc == CVD_OK; k++) {
            kx_layer sub;
            char part[16];
            snprintf(part, sizeof part, "norm_%d", k);
            kx_tcn_sub(L, b, part,
                       t->norm == KX_NORM_BATCH ? "BatchNormalization" : "LayerNormalization",
                       &sub);
            int node = kx_tcn_node(c, L, b, part);
            if (node < 0)
                return c->e.code;
            rc = kx_tcn_norm_path3(c, fid, where, bpath, t, k, path, sizeof path);
            if (rc == CVD_OK)
                rc = kx_tcn_group3(c, fid, where, path, &sub, node);
        }
    }
    if (rc == CVD_OK) {
        snprintf(bpath, sizeof bpath, "%s/residual_block_%d", base, t->blocks);
        snprintf(shown, sizeof shown, "%s%s", where, bpath);
        if ((count = kx_h5_count(c, fid, bpath, shown)) < -1)
            return c->e.code;
        if (count >= 0)
            return kx_bad(c, CVD_EINVAL,
                          "%s: more residual blocks in the file than %s (TCN) has (%d: nb_stacks "
                          "x dilations): not this model's weights",
                          shown, L->where, t->blocks);
    }
    return rc;
}

/* One flag dataset (tensorflow-addons' `initialized`): 1 true, 0 false. */
static int kx_h5_flag(kx_ctx *c, hid_t loc, const char *path, const char *shown, int *out)
{
    char h5m[256];
    unsigned char buf[16] = {0};
    int rc = CVD_OK;
    hid_t d, s = -1, t = -1;
    if ((rc = kx_h5_hard(c, loc, path, shown)) <= 0)
        return rc == 0 ? kx_bad(c, CVD_EFORMAT, "%s: missing", shown) : rc;
    rc = CVD_OK;
    d = H5Dopen2(loc, path, H5P_DEFAULT);
    if (d < 0)
        return kx_bad(c, CVD_EFORMAT, "%s: cannot open: %s", shown, kx_h5_msg(h5m));
    s = H5Dget_space(d);
    t = H5Dget_type(d);
    if (s < 0 || t < 0 || H5Sget_simple_extent_npoints(s) != 1 || H5Tget_size(t) > sizeof buf ||
        (H5Tget_class(t) != H5T_ENUM && H5Tget_class(t) != H5T_INTEGER)) {
        rc = kx_bad(c, CVD_EFORMAT, "%s: not one boolean", shown);
    } else if (H5Dread(d, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0) {
        rc = kx_bad(c, CVD_EFORMAT, "%s: cannot read: %s", shown, kx_h5_msg(h5m));
    } else {
        *out = 0;
        for (size_t i = 0; i < H5Tget_size(t); i++)
            *out |= buf[i] != 0;
    }
    if (t >= 0)
        H5Tclose(t);
    if (s >= 0)
        H5Sclose(s);
    H5Dclose(d);
    return rc;
}

/* Keras 2 names a TCN's variables by the name scopes keras-tcn opens:
 * [model/]tcn/residual_block_<b>/{conv1D_<k>,matching_conv1D,norm_<k>}/<variable>:0. */
enum { KX_TS_CONV0, KX_TS_CONV1, KX_TS_MATCH, KX_TS_NORM0, KX_TS_NORM1, KX_TS_PARTS };

typedef struct kx_tcn_slots {
    int var[KX_TS_PARTS][4]; /* index into the weight names, -1 absent */
    int g[2], init[2];       /* weight normalization of conv1D_0, conv1D_1 */
} kx_tcn_slots;

static int kx_tcn_var_index(int part, const char *var, int norm)
{
    static const char *const conv[] = {"kernel", "bias"};
    static const char *const bn[] = {"gamma", "beta", "moving_mean", "moving_variance"};
    if (part <= KX_TS_MATCH) {
        for (int i = 0; i < 2; i++)
            if (strcmp(var, conv[i]) == 0)
                return i;
        return -1;
    }
    for (int i = 0; i < (norm == KX_NORM_BATCH ? 4 : 2); i++)
        if (strcmp(var, bn[i]) == 0)
            return i;
    return -1;
}

static int kx_tcn_weights2(kx_ctx *c, hid_t lg, const char *prefix, char **wn, int n_wn,
                           const kx_layer *L)
{
    const kx_tcn *t = L->tcn;
    kx_tcn_slots *sl = calloc((size_t)t->blocks, sizeof *sl);
    char shown[KX_MAX_PATH + 300];
    float *v = NULL, *g = NULL;
    int rc = CVD_OK;
    if (sl == NULL)
        return kx_bad(c, CVD_ENOMEM, "out of memory");
    memset(sl, 0xff, sizeof *sl * (size_t)t->blocks); /* every index -1 */
    for (int i = 0; i < n_wn && rc == CVD_OK; i++) {
        char buf[KX_MAX_PATH], *save = NULL, *seg, *var = NULL;
        int block = -1, part = -1, clone = 0, normseg = -1;
        snprintf(shown, sizeof shown, "%s%s", prefix, wn[i]);
        snprintf(buf, sizeof buf, "%s", wn[i]);
        for (seg = strtok_r(buf, "/", &save); seg; seg = strtok_r(NULL, "/", &save)) {
            char *end;
            if (strncmp(seg, "residual_block_", 15) == 0 && isdigit((unsigned char)seg[15])) {
                long b = strtol(seg + 15, &end, 10);
                if (*end == '\0')
                    block = b < t->blocks ? (int)b : t->blocks;
            } else if (strcmp(seg, "conv1D_0") == 0 || strcmp(seg, "conv1D_1") == 0) {
                part = seg[7] == '0' ? KX_TS_CONV0 : KX_TS_CONV1;
            } else if (strcmp(seg, "matching_conv1D") == 0) {
                part = KX_TS_MATCH;
            } else if (strcmp(seg, "norm_0") == 0 || strcmp(seg, "norm_1") == 0) {
                normseg = seg[5] - '0';
            } else if (strcmp(seg, "data_dep_init") == 0) {
                clone = 1; /* tensorflow-addons' copy of the layer for its data init */
            }
            var = seg;
        }
        if (clone)
            continue;
        if (var != NULL) {
            char *colon = strrchr(var, ':');
            if (colon)
                *colon = '\0';
        }
        if (block < 0 || var == NULL)
            rc = kx_bad(c, CVD_EFORMAT, "%s: not a variable of a residual block of %s (TCN)", shown,
                        L->where);
        else if (block >= t->blocks)
            rc = kx_bad(c, CVD_EINVAL,
                        "%s: more residual blocks in the file than %s (TCN) has (%d: nb_stacks x "
                        "dilations): not this model's weights",
                        shown, L->where, t->blocks);
        if (rc < 0)
            break;
        kx_tcn_slots *s = &sl[block];
        int *slot = NULL;
        if (strcmp(var, "g") == 0 && (part == KX_TS_CONV0 || part == KX_TS_CONV1 || normseg >= 0))
            slot = &s->g[part == KX_TS_CONV0 || part == KX_TS_CONV1 ? part : normseg];
        else if (strcmp(var, "initialized") == 0 &&
                 (part == KX_TS_CONV0 || part == KX_TS_CONV1 || normseg >= 0))
            slot = &s->init[part == KX_TS_CONV0 || part == KX_TS_CONV1 ? part : normseg];
        else if (normseg >= 0 && part < 0 && t->norm &&
                 kx_tcn_var_index(KX_TS_NORM0, var, t->norm) >= 0)
            slot = &s->var[KX_TS_NORM0 + normseg][kx_tcn_var_index(KX_TS_NORM0, var, t->norm)];
        else if (part >= 0 && kx_tcn_var_index(part, var, t->norm) >= 0)
            slot = &s->var[part][kx_tcn_var_index(part, var, t->norm)];
        if (slot == NULL) {
            rc = kx_bad(c, CVD_EINVAL,
                        "%s: not a variable of %s (TCN) as configured (%s%s%s): not this "
                        "model's weights",
                        shown, L->where,
                        t->norm == KX_NORM_BATCH   ? "batch norm"
                        : t->norm == KX_NORM_LAYER ? "layer norm"
                                                   : "no norm",
                        t->wnorm ? ", weight norm" : "", t->match[block] ? ", matching conv" : "");
            break;
        }
        if (*slot >= 0) {
            rc = kx_bad(c, CVD_EINVAL, "%s: %s holds this variable twice", shown, prefix);
            break;
        }
        *slot = i;
    }
    /* every variable the configuration has, and none it does not */
    for (int b = 0; b < t->blocks && rc == CVD_OK; b++) {
        static const char *const parts[] = {"conv1D_0", "conv1D_1", "matching_conv1D", "norm_0",
                                            "norm_1"};
        kx_tcn_slots *s = &sl[b];
        for (int q = 0; q < KX_TS_PARTS && rc == CVD_OK; q++) {
            const int want = q <= KX_TS_CONV1 || (q == KX_TS_MATCH && t->match[b]) ||
                             (q >= KX_TS_NORM0 && t->norm);
            const int nv = q <= KX_TS_MATCH ? 2 : t->norm == KX_NORM_BATCH ? 4 : 2;
            kx_layer sub;
            kx_tcn_sub(L, b, parts[q],
                       q <= KX_TS_MATCH           ? "Conv1D"
                       : t->norm == KX_NORM_BATCH ? "BatchNormalization"
                                                  : "LayerNormalization",
                       &sub);
            for (int k = 0; k < 4; k++) {
                if (!want && s->var[q][k] >= 0) {
                    snprintf(shown, sizeof shown, "%s%s", prefix, wn[s->var[q][k]]);
                    rc = kx_bad(c, CVD_EINVAL,
                                "%s: %s is not part of the model as configured: not this "
                                "model's weights",
                                shown, sub.where);
                    break;
                }
                if (want && k < nv && s->var[q][k] < 0) {
                    rc = kx_bad(c, CVD_EFORMAT,
                                "%s: no weight named %s/%s in weight_names (%s "
                                "(%s) variable %d)",
                                prefix, parts[q],
                                q <= KX_TS_MATCH
                                    ? (k ? "bias" : "kernel")
                                    : (const char *const[]){"gamma", "beta", "moving_mean",
                                                            "moving_variance"}[k],
                                sub.where, sub.cls, k);
                    break;
                }
            }
            if (rc < 0 || !want)
                continue;
            if (q == KX_TS_MATCH && t->skip && b == t->blocks - 1)
                continue; /* not used (the last block's residual output) */
            int node = kx_tcn_node(c, L, b, parts[q]);
            if (node < 0)
                return free(sl), c->e.code;
            for (int k = 0; k < nv && rc == CVD_OK; k++) {
                if (k == 0 && q <= KX_TS_CONV1 && t->wnorm)
                    continue; /* below */
                snprintf(shown, sizeof shown, "%s%s", prefix, wn[s->var[q][k]]);
                rc = kx_h5_var(c, lg, wn[s->var[q][k]], shown, &sub, node, k);
            }
        }
        for (int k = 0; k < 2 && rc == CVD_OK; k++) {
            char part[16];
            snprintf(part, sizeof part, "conv1D_%d", k);
            if (!t->wnorm) {
                if (s->g[k] >= 0 || s->init[k] >= 0) {
                    snprintf(shown, sizeof shown, "%s%s", prefix,
                             wn[s->g[k] >= 0 ? s->g[k] : s->init[k]]);
                    rc = kx_bad(c, CVD_EINVAL,
                                "%s: weight normalization, but %s (TCN) has "
                                "use_weight_norm=false: not this model's weights",
                                shown, L->where);
                }
                continue;
            }
            /* tensorflow-addons' WeightNormalization: kernel = g * v / |v| (l2 over the taps
             * and input channels, tf.nn.l2_normalize's epsilon 1e-12), g per filter */
            kx_layer sub;
            kx_tcn_sub(L, b, part, "Conv1D", &sub);
            const int node = kx_tcn_node(c, L, b, part);
            if (node < 0)
                return free(sl), c->e.code;
            if (s->g[k] < 0) {
                rc = kx_bad(c, CVD_EFORMAT,
                            "%s: no weight named %s/g in weight_names (the "
                            "weight normalization of %s)",
                            prefix, part, sub.where);
                break;
            }
            if (s->init[k] >= 0) {
                int ok = 0;
                snprintf(shown, sizeof shown, "%s%s", prefix, wn[s->init[k]]);
                rc = kx_h5_flag(c, lg, wn[s->init[k]], shown, &ok);
                if (rc == CVD_OK && !ok)
                    rc = kx_bad(c, CVD_EUNSUPPORTED,
                                "%s: false: the weight normalization was never initialised, "
                                "so Keras would set g and the bias from the first batch it "
                                "sees: convd needs a trained model",
                                shown);
                if (rc < 0)
                    break;
            }
            int shape[3];
            cvd_model_var_shape(c->m, node, 0, shape);
            const size_t nk = cvd_model_var_size(c->m, node, 0);
            const int F = shape[2];
            free(v);
            free(g);
            v = malloc(sizeof(float) * nk);
            g = malloc(sizeof(float) * (size_t)F);
            if (v == NULL || g == NULL) {
                rc = kx_bad(c, CVD_ENOMEM, "out of memory");
                break;
            }
            snprintf(shown, sizeof shown, "%s%s", prefix, wn[s->var[k][0]]);
            rc = kx_h5_var_to(c, lg, wn[s->var[k][0]], shown, &sub, node, 0, v);
            snprintf(shown, sizeof shown, "%s%s", prefix, wn[s->g[k]]);
            if (rc == CVD_OK) /* g has the bias's shape (filters,) */
                rc = kx_h5_var_to(c, lg, wn[s->g[k]], shown, &sub, node, 1, g);
            if (rc < 0)
                break;
            for (int f = 0; f < F; f++) {
                double ss = 0.0;
                for (size_t j = (size_t)f; j < nk; j += (size_t)F)
                    ss += (double)v[j] * v[j];
                const double scale = (double)g[f] / sqrt(ss > 1e-12 ? ss : 1e-12);
                for (size_t j = (size_t)f; j < nk; j += (size_t)F)
                    v[j] = (float)(v[j] * scale);
            }
            if (cvd_model_set_var(c->m, node, 0, v, nk, &c->e) < 0) {
                cvd_err_prefix(&c->e, "%s: %s", c->file, shown);
                rc = c->e.code;
            }
        }
    }
    free(v);
    free(g);
    free(sl);
    return rc;
}

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
