/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The Keras loader's file side: a whole file or one entry of a .keras zip archive (libzip) in
 * memory, an HDF5 file opened from memory, string attributes (Keras splits long ones), links
 * checked to be hard links (no external files), and datasets read into a model's variables
 * after their rank, shape and type are checked. HDF5's errors become messages (kx_h5_msg);
 * every HDF5 call is made under kx_h5_lock, as the serial library requires.
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

/* The serial HDF5 library is not thread-safe: every use is under this lock. */
pthread_mutex_t kx_h5_lock = PTHREAD_MUTEX_INITIALIZER;

/* HDF5's most specific message about the last failure (then the stack is cleared). */
static herr_t kx_h5_walk(unsigned n, const H5E_error2_t *e, void *data)
{
    if (n == 0 && e->desc != NULL)
        snprintf((char *)data, 200, "%s", e->desc);
    return 0;
}

const char *kx_h5_msg(char *buf)
{
    buf[0] = '\0';
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, kx_h5_walk, buf);
    H5Eclear2(H5E_DEFAULT);
    if (buf[0] == '\0')
        snprintf(buf, 200, "HDF5 gave no reason");
    return buf;
}

/* ---- files --------------------------------------------------------------------------------- */

int kx_read_file(kx_ctx *c, const char *path, size_t max, char **out, size_t *len)
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
int kx_zip_entry(kx_ctx *c, zip_t *za, const char *name, size_t max, int required, char **out,
                 size_t *len)
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
int kx_h5_open(kx_ctx *c, const char *what, void *buf, size_t len, hid_t *fid)
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
int kx_h5_hard(kx_ctx *c, hid_t loc, const char *path, const char *shown)
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

int kx_h5_strings(kx_ctx *c, hid_t obj, const char *name, const char *shown, char ***list, int *n)
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

void kx_free_strings(char **list, int n)
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

/* Reads dataset `path` (under loc) into variable `var` of `layer`'s node, checking its
 * rank, shape and type first (into a buffer of that shape instead, when `into` is given). */
int kx_h5_var_to(kx_ctx *c, hid_t loc, const char *path, const char *shown, const kx_layer *L,
                 int node, int var, float *into)
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
int kx_h5_var(kx_ctx *c, hid_t loc, const char *path, const char *shown, const kx_layer *L,
              int node, int var)
{
    return kx_h5_var_to(c, loc, path, shown, L, node, var, NULL);
}

/* Number of links in the group at path (-1: absent; c->e set and < -1 on error). */
long kx_h5_count(kx_ctx *c, hid_t fid, const char *path, const char *shown)
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

/* One flag dataset (tensorflow-addons' `initialized`): 1 true, 0 false. */
int kx_h5_flag(kx_ctx *c, hid_t loc, const char *path, const char *shown, int *out)
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
