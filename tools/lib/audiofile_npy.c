/* SPDX-License-Identifier: Apache-2.0 */
/*
 * NumPy's .npy files (format 1.0, 2.0, 3.0): a header, a Python dict literal (descr,
 * fortran_order, shape) checked strictly, then the values. Read: little-endian float32 or
 * float64 in C order, shape (frames,) or (frames, columns), the columns chosen as for csv;
 * written: '<f4', shape (frames, channels), the frame count put in the header at the end
 * (rewritten in place, or the whole file kept in memory when the output cannot seek).
 */
#include "audiofile.h"
#include "audiofile_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "convd_proto.h"

#define NPY_MAGIC "\x93NUMPY"
#define NPY_MAX_HEADER 65536

/* Reads exactly n bytes (0), or says how many came before the end (>= 0 short count via *got). */
static int read_exact(cvd_af *af, void *buf, size_t n, size_t *got, cvd_err *err)
{
    *got = fread(buf, 1, n, af->fp);
    if (*got < n && ferror(af->fp))
        return cvd_err_set(err, CVD_EIO, "%s: read error: %s", af->name, strerror(errno));
    return CVD_OK;
}

/* The npy header's dictionary, a Python literal: {'descr': '<f4', 'fortran_order': False,
 * 'shape': (N, C), } in any order, each key once. */
typedef struct npy_header {
    char descr[16];
    int fortran, have_descr, have_fortran, have_shape;
    int rank;
    long long shape[8];
} npy_header;

static void npy_ws(const char **p)
{
    while (**p == ' ' || **p == '\t' || **p == '\n' || **p == '\r')
        (*p)++;
}

/* A quoted Python string into buf (at most cap-1 bytes); 0 or -1. */
static int npy_string(const char **p, char *buf, size_t cap)
{
    char q = **p;
    size_t o = 0;
    if (q != '\'' && q != '"')
        return -1;
    (*p)++;
    while (**p && **p != q) {
        if (o + 1 >= cap || **p == '\\')
            return -1;
        buf[o++] = *(*p)++;
    }
    if (**p != q)
        return -1;
    (*p)++;
    buf[o] = '\0';
    return 0;
}

static int npy_parse_header(const char *text, npy_header *h, char *why, size_t wcap)
{
    const char *p = text;
    memset(h, 0, sizeof *h);
    npy_ws(&p);
    if (*p++ != '{') {
        snprintf(why, wcap, "its header is not a Python dictionary");
        return -1;
    }
    for (;;) {
        char key[32];
        npy_ws(&p);
        if (*p == '}')
            break;
        if (npy_string(&p, key, sizeof key) < 0) {
            snprintf(why, wcap, "its header has a key that is not a quoted name");
            return -1;
        }
        npy_ws(&p);
        if (*p++ != ':') {
            snprintf(why, wcap, "its header has no ':' after '%s'", key);
            return -1;
        }
        npy_ws(&p);
        if (strcmp(key, "descr") == 0 && !h->have_descr) {
            if (npy_string(&p, h->descr, sizeof h->descr) < 0) {
                snprintf(why, wcap, "'descr' is not a simple type string (a structured dtype?)");
                return -1;
            }
            h->have_descr = 1;
        } else if (strcmp(key, "fortran_order") == 0 && !h->have_fortran) {
            if (strncmp(p, "False", 5) == 0)
                h->fortran = 0, p += 5;
            else if (strncmp(p, "True", 4) == 0)
                h->fortran = 1, p += 4;
            else {
                snprintf(why, wcap, "'fortran_order' is not True or False");
                return -1;
            }
            h->have_fortran = 1;
        } else if (strcmp(key, "shape") == 0 && !h->have_shape) {
            if (*p++ != '(') {
                snprintf(why, wcap, "'shape' is not a tuple");
                return -1;
            }
            for (;;) {
                npy_ws(&p);
                if (*p == ')')
                    break;
                if (*p < '0' || *p > '9' || h->rank == 8) {
                    snprintf(why, wcap, "'shape' is not a tuple of sizes");
                    return -1;
                }
                char *end;
                errno = 0;
                long long v = strtoll(p, &end, 10);
                if (errno || v < 0 || v > (1LL << 50)) {
                    snprintf(why, wcap, "'shape' holds a size out of range");
                    return -1;
                }
                h->shape[h->rank++] = v;
                p = end;
                npy_ws(&p);
                if (*p == ',')
                    p++;
                else if (*p != ')') {
                    snprintf(why, wcap, "'shape' is not a tuple of sizes");
                    return -1;
                }
            }
            p++;
            h->have_shape = 1;
        } else {
            snprintf(why, wcap, "its header has the key '%s'%s", key,
                     strcmp(key, "descr") == 0 || strcmp(key, "shape") == 0 ||
                             strcmp(key, "fortran_order") == 0
                         ? " twice"
                         : ", not one of NumPy's (descr, fortran_order, shape)");
            return -1;
        }
        npy_ws(&p);
        if (*p == ',')
            p++;
        else if (*p != '}') {
            snprintf(why, wcap, "its header's entries are not separated by commas");
            return -1;
        }
    }
    p++;
    npy_ws(&p);
    if (*p != '\0') {
        snprintf(why, wcap, "text after its header's dictionary");
        return -1;
    }
    if (!h->have_descr || !h->have_fortran || !h->have_shape) {
        snprintf(why, wcap, "its header lacks '%s'",
                 !h->have_descr     ? "descr"
                 : !h->have_fortran ? "fortran_order"
                                    : "shape");
        return -1;
    }
    return 0;
}

int af_npy_open_read(cvd_af *af, const struct stat *st, const cvd_af_read_opts *o, cvd_err *err)
{
    unsigned char pre[12];
    char *text = NULL, why[160];
    size_t got, hlen, lenbytes;
    npy_header h;
    int rc = CVD_OK;

    if ((rc = read_exact(af, pre, 8, &got, err)) < 0)
        return rc;
    if (got < 8 || memcmp(pre, NPY_MAGIC, 6) != 0)
        return cvd_err_set(err, CVD_EFORMAT,
                           "%s: not a NumPy .npy file (no \\x93NUMPY at its "
                           "start)",
                           af->name);
    if (pre[6] < 1 || pre[6] > 3 || pre[7] != 0)
        return cvd_err_set(err, CVD_EFORMAT,
                           "%s: .npy format version %d.%d: convd reads 1.0, "
                           "2.0 and 3.0",
                           af->name, pre[6], pre[7]);
    lenbytes = pre[6] == 1 ? 2 : 4;
    if ((rc = read_exact(af, pre + 8, lenbytes, &got, err)) < 0)
        return rc;
    if (got < lenbytes)
        return cvd_err_set(err, CVD_EFORMAT, "%s: truncated in its .npy header", af->name);
    hlen = (size_t)pre[8] | (size_t)pre[9] << 8;
    if (lenbytes == 4)
        hlen |= (size_t)pre[10] << 16 | (size_t)pre[11] << 24;
    if (hlen == 0 || hlen > NPY_MAX_HEADER)
        return cvd_err_set(err, CVD_EFORMAT,
                           "%s: a .npy header of %zu bytes (convd reads up to "
                           "%d)",
                           af->name, hlen, NPY_MAX_HEADER);
    text = malloc(hlen + 1);
    if (text == NULL)
        return cvd_err_set(err, CVD_ENOMEM, "%s: out of memory", af->name);
    if ((rc = read_exact(af, text, hlen, &got, err)) < 0)
        goto done;
    if (got < hlen) {
        rc = cvd_err_set(err, CVD_EFORMAT, "%s: truncated in its .npy header", af->name);
        goto done;
    }
    text[hlen] = '\0';
    if (strlen(text) != hlen || text[hlen - 1] != '\n') {
        rc = cvd_err_set(err, CVD_EFORMAT,
                         "%s: its .npy header is not one line of text ending "
                         "in a newline",
                         af->name);
        goto done;
    }
    if (npy_parse_header(text, &h, why, sizeof why) < 0) {
        rc = cvd_err_set(err, CVD_EFORMAT, "%s: not a valid .npy file: %s", af->name, why);
        goto done;
    }
    if (strcmp(h.descr, "<f4") == 0 || strcmp(h.descr, "<f8") == 0) {
        af->npy_item = h.descr[2] - '0';
    } else {
        const int big = h.descr[0] == '>' && (h.descr[1] == 'f');
        rc = cvd_err_set(err, CVD_EUNSUPPORTED,
                         "%s: dtype '%s': convd reads little-endian float32 ('<f4') and float64 "
                         "('<f8')%s",
                         af->name, h.descr,
                         big ? " (this one is big-endian: save it with "
                               "a.astype('<f4'))"
                             : " (convert with a.astype('float32'))");
        goto done;
    }
    if (h.fortran) {
        rc = cvd_err_set(err, CVD_EUNSUPPORTED,
                         "%s: Fortran order (column by column): convd "
                         "reads C order, one frame after the other (save "
                         "np.ascontiguousarray(a))",
                         af->name);
        goto done;
    }
    if (h.rank != 1 && h.rank != 2) {
        rc = cvd_err_set(err, CVD_EUNSUPPORTED,
                         "%s: an array of %d dimension%s: convd reads "
                         "(frames, channels) or (frames,)",
                         af->name, h.rank, h.rank == 1 ? "" : "s");
        goto done;
    }
    af->npy_total = h.shape[0];
    af->n_fields = h.rank == 2 ? (int)(h.shape[1] <= 65536 ? h.shape[1] : 65537) : 1;
    if (af->n_fields < 1 || af->n_fields > 65536) {
        rc = cvd_err_set(err, CVD_EUNSUPPORTED, "%s: shape (%lld, %lld): 1 to 65536 channels",
                         af->name, h.shape[0], h.shape[1]);
        goto done;
    }
    af->info.frames = af->npy_total;
    if (S_ISREG(st->st_mode)) {
        const long long want = af->npy_total * af->n_fields * af->npy_item;
        const long long have = (long long)st->st_size - (long long)(8 + lenbytes + hlen);
        if (have != want) {
            rc = cvd_err_set(err, CVD_EFORMAT,
                             "%s: its header says %lld x %d %s (%lld bytes of data), the file "
                             "holds %lld bytes after the header%s",
                             af->name, af->npy_total, af->n_fields,
                             af->npy_item == 4 ? "float32" : "float64", want, have,
                             have < want ? " (truncated)" : "");
            goto done;
        }
    }
    if (o && o->header == CVD_AF_HEADER_YES) {
        rc = cvd_err_set(err, CVD_EINVAL, "%s: an .npy file has no header row", af->name);
        goto done;
    }
    if ((rc = af_select_columns(af, o, err)) < 0)
        goto done;
    af->rowbuf = malloc((size_t)af->n_fields * (size_t)af->npy_item * 256);
    if (af->rowbuf == NULL)
        rc = cvd_err_set(err, CVD_ENOMEM, "%s: out of memory", af->name);
done:
    free(text);
    return rc;
}

static double le_value(const unsigned char *b, int item)
{
    uint64_t u = 0;
    for (int i = item - 1; i >= 0; i--)
        u = u << 8 | b[i];
    if (item == 4) {
        uint32_t w = (uint32_t)u;
        float f;
        memcpy(&f, &w, 4);
        return f;
    }
    double d;
    memcpy(&d, &u, 8);
    return d;
}

long af_npy_read(cvd_af *af, float *frames, long max_frames, cvd_err *err)
{
    const int F = af->n_fields, C = af->info.channels, item = af->npy_item;
    const size_t row = (size_t)F * (size_t)item;
    long n = 0;
    while (n < max_frames && af->count + n < af->npy_total) {
        long want = max_frames - n, rows;
        size_t got;
        int rc;
        if (want > 256)
            want = 256;
        if (want > af->npy_total - af->count - n)
            want = (long)(af->npy_total - af->count - n);
        if ((rc = read_exact(af, af->rowbuf, row * (size_t)want, &got, err)) < 0)
            return rc;
        rows = (long)(got / row);
        for (long r = 0; r < rows; r++) {
            const unsigned char *b = af->rowbuf + (size_t)r * row;
            for (int c = 0; c < C; c++) {
                double v = le_value(b + (size_t)af->sel[c] * (size_t)item, item);
                if (item == 8 && isfinite(v) && fabs(v) > FLT_MAX)
                    return cvd_err_set(err, CVD_EFORMAT,
                                       "%s: a[%lld, %d] = %g is beyond the "
                                       "float32 range",
                                       af->name, af->count + n + r, af->sel[c], v);
                frames[(size_t)(n + r) * C + c] = (float)v;
            }
            if (af->time_field >= 0) {
                char t[40];
                snprintf(t, sizeof t, item == 4 ? "%.9g" : "%.17g",
                         le_value(b + (size_t)af->time_field * (size_t)item, item));
                for (char *q = t; *q; q++) /* a decimal comma (the locale) made a point */
                    if (*q == ',')
                        *q = '.';
                if ((rc = af_time_push(af, t, err)) < 0)
                    return rc;
            }
        }
        n += rows;
        if (got < row * (size_t)want)
            return cvd_err_set(err, CVD_EFORMAT,
                               "%s: ends after %lld of the %lld frames its "
                               "header says (truncated)",
                               af->name, af->count + n, af->npy_total);
    }
    if (n == 0 && !af->eof) { /* the end: nothing may follow the data */
        unsigned char extra;
        af->eof = 1;
        if (fread(&extra, 1, 1, af->fp) == 1)
            return cvd_err_set(err, CVD_EFORMAT,
                               "%s: more data than its header says (%lld "
                               "frames)",
                               af->name, af->npy_total);
    }
    return n;
}

/* The header of an npy file of n frames x C float32, padded to `size` bytes in all (0: to a
 * multiple of 64); returns its length, or 0 if it does not fit. */
static size_t npy_header_text(char *buf, size_t cap, long long n, int C, size_t size)
{
    char dict[160];
    int dl = snprintf(dict, sizeof dict,
                      "{'descr': '<f4', 'fortran_order': False, 'shape': "
                      "(%lld, %d), }",
                      n, C);
    size_t total = size ? size : ((10 + (size_t)dl + 1 + 63) / 64) * 64;
    if (dl < 0 || 10 + (size_t)dl + 1 > total || total > cap || total - 10 > 65535)
        return 0;
    memcpy(buf, NPY_MAGIC "\x01\x00", 8);
    buf[8] = (char)((total - 10) & 0xff);
    buf[9] = (char)((total - 10) >> 8);
    memcpy(buf + 10, dict, (size_t)dl);
    memset(buf + 10 + dl, ' ', total - 10 - (size_t)dl - 1);
    buf[total - 1] = '\n';
    return total;
}

#define NPY_WRITE_HEADER 128 /* room for any shape: rewritten with the count at the end */

int af_npy_open_write(cvd_af *af, cvd_err *err)
{
    struct stat st;
    char h[NPY_WRITE_HEADER];
    af->npy_seekable =
        fstat(fileno(af->fp), &st) == 0 && S_ISREG(st.st_mode) && ftello(af->fp) == 0;
    if (!af->npy_seekable)
        return CVD_OK; /* a pipe: the frames are kept, and written at the end */
    if (npy_header_text(h, sizeof h, 0, af->info.channels, NPY_WRITE_HEADER) == 0 ||
        fwrite(h, 1, NPY_WRITE_HEADER, af->fp) != NPY_WRITE_HEADER)
        return cvd_err_set(err, CVD_EIO, "%s: write error: %s", af->name, strerror(errno));
    return CVD_OK;
}

static int write_le_floats(cvd_af *af, const float *x, size_t n)
{
    if (af_host_is_little_endian())
        return fwrite(x, sizeof(float), n, af->fp) == n ? 0 : -1;
    for (size_t i = 0; i < n; i++) {
        float v = x[i];
        af_swap_floats(&v, 1);
        if (fwrite(&v, sizeof v, 1, af->fp) != 1)
            return -1;
    }
    return 0;
}

int af_npy_write(cvd_af *af, const float *frames, long n, cvd_err *err)
{
    const size_t vals = (size_t)n * (size_t)af->info.channels;
    if (af->npy_seekable) {
        if (write_le_floats(af, frames, vals) < 0)
            return cvd_err_set(err, CVD_EIO, "%s: write error: %s", af->name, strerror(errno));
        return CVD_OK;
    }
    if (af->mem_len + vals > af->mem_cap) {
        size_t nc = (af->mem_cap ? af->mem_cap * 2 : 65536) + vals;
        float *nb = realloc(af->mem, sizeof(float) * nc);
        if (nb == NULL)
            return cvd_err_set(err, CVD_ENOMEM,
                               "%s: out of memory (an .npy file written to a "
                               "pipe is kept in memory until its end)",
                               af->name);
        af->mem = nb;
        af->mem_cap = nc;
    }
    memcpy(af->mem + af->mem_len, frames, sizeof(float) * vals);
    af->mem_len += vals;
    return CVD_OK;
}

/* The end of an npy output: the header with the frame count. */
int af_npy_finish(cvd_af *af, cvd_err *err)
{
    char h[NPY_WRITE_HEADER];
    const size_t size = af->npy_seekable ? NPY_WRITE_HEADER : 0;
    size_t len = npy_header_text(h, sizeof h, af->count, af->info.channels, size);
    if (len == 0)
        return cvd_err_set(err, CVD_EIO, "%s: the .npy header does not fit", af->name);
    if (af->npy_seekable) {
        if (fflush(af->fp) != 0 || fseeko(af->fp, 0, SEEK_SET) != 0 ||
            fwrite(h, 1, len, af->fp) != len || fseeko(af->fp, 0, SEEK_END) != 0)
            return cvd_err_set(err, CVD_EIO, "%s: write error: %s", af->name, strerror(errno));
        return CVD_OK;
    }
    if (fwrite(h, 1, len, af->fp) != len || write_le_floats(af, af->mem, af->mem_len) < 0)
        return cvd_err_set(err, CVD_EIO, "%s: write error: %s", af->name, strerror(errno));
    return CVD_OK;
}
