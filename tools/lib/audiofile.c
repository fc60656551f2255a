/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Frames in and out of files: libsndfile formats, raw float32, csv and NumPy's .npy (see
 * audiofile.h). This file holds the formats' names, the open file, the choice of columns csv and
 * npy input share, and opening, reading, writing and closing, which go to the format's own file:
 * audiofile_sndfile.c, audiofile_raw.c, audiofile_csv.c, audiofile_npy.c
 * (audiofile_internal.h).
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

/* ---- formats ---------------------------------------------------------------------------- */

int cvd_af_format_parse(const char *name, cvd_af_format *out)
{
    if (name && strcasecmp(name, "f32") == 0)
        *out = CVD_AF_F32;
    else if (name && strcasecmp(name, "csv") == 0)
        *out = CVD_AF_CSV;
    else if (name && strcasecmp(name, "npy") == 0)
        *out = CVD_AF_NPY;
    else
        return CVD_EINVAL;
    return CVD_OK;
}

const char *cvd_af_format_name(cvd_af_format f)
{
    switch (f) {
    case CVD_AF_SNDFILE:
        return "sndfile";
    case CVD_AF_F32:
        return "f32";
    case CVD_AF_CSV:
        return "csv";
    case CVD_AF_NPY:
        return "npy";
    default:
        return "unknown";
    }
}

/* The extension of path without its dot ("" if none). */
const char *af_extension(const char *path)
{
    const char *slash = strrchr(path, '/'), *dot = strrchr(path, '.');
    if (dot == NULL || (slash && dot < slash) || dot == path || dot[-1] == '/')
        return "";
    return dot + 1;
}

cvd_af_format cvd_af_format_of(const char *path, cvd_af_format given)
{
    const char *ext;
    if (strcmp(path, "-") == 0)
        return given;
    ext = af_extension(path);
    if (strcasecmp(ext, "f32") == 0)
        return CVD_AF_F32;
    if (strcasecmp(ext, "csv") == 0)
        return CVD_AF_CSV;
    if (strcasecmp(ext, "npy") == 0)
        return CVD_AF_NPY;
    if (af_sndfile_major(ext) != 0)
        return CVD_AF_SNDFILE;
    return given != CVD_AF_UNKNOWN ? given : CVD_AF_SNDFILE;
}

/* ---- common ----------------------------------------------------------------------------- */

int af_host_is_little_endian(void)
{
    const uint16_t one = 1;
    unsigned char b;
    memcpy(&b, &one, 1);
    return b == 1;
}

void af_swap_floats(float *x, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char b[4], t;
        memcpy(b, &x[i], 4);
        t = b[0], b[0] = b[3], b[3] = t;
        t = b[1], b[1] = b[2], b[2] = t;
        memcpy(&x[i], b, 4);
    }
}

static cvd_af *af_new(const char *path, int writing, cvd_af_format format, cvd_err *err)
{
    cvd_af *af = calloc(1, sizeof *af);
    if (af == NULL) {
        cvd_err_set(err, CVD_ENOMEM, "%s: out of memory", path);
        return NULL;
    }
    af->writing = writing;
    af->fd = -1;
    af->info.format = format;
    af->info.frames = -1;
    af->name =
        strdup(strcmp(path, "-") == 0 ? (writing ? "standard output" : "standard input") : path);
    if (af->name == NULL) {
        free(af);
        cvd_err_set(err, CVD_ENOMEM, "%s: out of memory", path);
        return NULL;
    }
    return af;
}

static void af_free(cvd_af *af)
{
    free(af->text);
    free(af->line);
    free(af->pending);
    free(af->pending_time);
    free(af->sel);
    for (int k = 0; af->names && k < af->n_fields; k++)
        free(af->names[k]);
    free(af->names);
    free(af->fbuf);
    free(af->fpos);
    free(af->tbuf);
    free(af->toff);
    free(af->rowbuf);
    free(af->mem);
    free(af->name);
    free(af);
}

const cvd_af_info *cvd_af_get_info(const cvd_af *af)
{
    return &af->info;
}

const char *cvd_af_name(const cvd_af *af)
{
    return af->name;
}

const char *cvd_af_channel_name(const cvd_af *af, int c)
{
    if (af->names == NULL || af->sel == NULL || c < 0 || c >= af->info.channels)
        return NULL;
    return af->names[af->sel[c]];
}

const char *cvd_af_time_name(const cvd_af *af)
{
    if (af->writing || af->time_field < 0 || af->sel == NULL)
        return NULL;
    return af->names && af->names[af->time_field][0] ? af->names[af->time_field] : "time";
}

const char *cvd_af_time(const cvd_af *af, long i)
{
    if (af->time_field < 0 || i < 0 || i >= af->n_times)
        return NULL;
    return af->tbuf + af->toff[i];
}

int af_no_c_locale(cvd_af *af, cvd_err *err)
{
    return cvd_err_set(err, CVD_ENOMEM, "%s: cannot create the C locale", af->name);
}

/* ---- columns (csv and npy input) ---------------------------------------------------------- */

/* Keeps the text of the time column of the frame just parsed (or `text`) for cvd_af_time. */
int af_time_push(cvd_af *af, const char *text, cvd_err *err)
{
    size_t l = strlen(text);
    if (af->n_times == af->toff_cap) {
        long nc = af->toff_cap ? af->toff_cap * 2 : 64;
        size_t *no = realloc(af->toff, sizeof *no * (size_t)nc);
        if (no == NULL)
            return cvd_err_set(err, CVD_ENOMEM, "%s: out of memory", af->name);
        af->toff = no;
        af->toff_cap = nc;
    }
    if (af->tbuf_len + l + 1 > af->tbuf_cap) {
        size_t nc = (af->tbuf_cap ? af->tbuf_cap * 2 : 1024) + l + 1;
        char *nb = realloc(af->tbuf, nc);
        if (nb == NULL)
            return cvd_err_set(err, CVD_ENOMEM, "%s: out of memory", af->name);
        af->tbuf = nb;
        af->tbuf_cap = nc;
    }
    memcpy(af->tbuf + af->tbuf_len, text, l + 1);
    af->toff[af->n_times++] = af->tbuf_len;
    af->tbuf_len += l + 1;
    return CVD_OK;
}

/* A column of the file by 1-based index or header name: its 0-based index, or an error. */
static int column_index(cvd_af *af, const char *spec, size_t len, const char *what, cvd_err *err)
{
    char tok[256];
    size_t i = 0;
    while (len > 0 && (*spec == ' ' || *spec == '\t'))
        spec++, len--;
    while (len > 0 && (spec[len - 1] == ' ' || spec[len - 1] == '\t'))
        len--;
    if (len == 0 || len >= sizeof tok)
        return cvd_err_set(err, CVD_EINVAL, "%s: %s: an empty or too long column name", af->name,
                           what);
    memcpy(tok, spec, len);
    tok[len] = '\0';
    while (i < len && tok[i] >= '0' && tok[i] <= '9')
        i++;
    if (i == len) {
        long v = strtol(tok, NULL, 10);
        if (v < 1 || v > af->n_fields || len > 9)
            return cvd_err_set(err, CVD_EINVAL,
                               "%s: %s %s: the file has %d column%s (counted "
                               "from 1)",
                               af->name, what, tok, af->n_fields, af->n_fields == 1 ? "" : "s");
        return (int)v - 1;
    }
    if (af->names == NULL)
        return cvd_err_set(err, CVD_EINVAL,
                           "%s: %s '%s': a name, but the file has no header "
                           "row naming its columns (give the column's index, from 1)",
                           af->name, what, tok);
    for (int k = 0; k < af->n_fields; k++)
        if (strcmp(af->names[k], tok) == 0)
            return k;
    {
        char list[200];
        size_t o = 0;
        list[0] = '\0';
        for (int k = 0; k < af->n_fields && o < sizeof list; k++) {
            int q = snprintf(list + o, sizeof list - o, "%s%s", k ? ", " : "", af->names[k]);
            o += q > 0 ? (size_t)q : 0;
        }
        return cvd_err_set(err, CVD_EINVAL,
                           "%s: %s '%s': no such column (the header on line "
                           "%ld has: %s)",
                           af->name, what, tok, af->header_line, list);
    }
}

/* The channels: the columns asked for, or every column but the time column. */
int af_select_columns(cvd_af *af, const cvd_af_read_opts *o, cvd_err *err)
{
    int n = 0;
    af->time_field = -1;
    if (o && o->time_column) {
        int k = column_index(af, o->time_column, strlen(o->time_column), "time column", err);
        if (k < 0)
            return k;
        af->time_field = k;
    }
    af->sel = malloc(sizeof *af->sel * (size_t)(af->n_fields + 1) * 4);
    if (af->sel == NULL)
        return cvd_err_set(err, CVD_ENOMEM, "%s: out of memory", af->name);
    if (o && o->columns) {
        const char *p = o->columns;
        int cap = (af->n_fields + 1) * 4;
        for (;;) {
            size_t len = strcspn(p, ",");
            const char *dash = memchr(p, '-', len);
            int a, b;
            /* a range "2-5" (of indices; a name may hold a dash) */
            if (dash != NULL && dash > p && strspn(p, "0123456789 \t") == (size_t)(dash - p) &&
                strspn(dash + 1, "0123456789 \t") == len - (size_t)(dash - p) - 1 &&
                len - (size_t)(dash - p) - 1 > 0) {
                if ((a = column_index(af, p, (size_t)(dash - p), "column", err)) < 0)
                    return a;
                if ((b = column_index(af, dash + 1, len - (size_t)(dash - p) - 1, "column", err)) <
                    0)
                    return b;
                if (b < a)
                    return cvd_err_set(err, CVD_EINVAL, "%s: columns %.*s: an empty range",
                                       af->name, (int)len, p);
            } else {
                if ((a = column_index(af, p, len, "column", err)) < 0)
                    return a;
                b = a;
            }
            for (int k = a; k <= b; k++) {
                if (k == af->time_field)
                    return cvd_err_set(err, CVD_EINVAL,
                                       "%s: column %d is the time column, not "
                                       "a channel",
                                       af->name, k + 1);
                if (n == cap)
                    return cvd_err_set(err, CVD_EINVAL, "%s: more than %d columns chosen", af->name,
                                       cap);
                af->sel[n++] = k;
            }
            if (p[len] == '\0')
                break;
            p += len + 1;
        }
    } else {
        for (int k = 0; k < af->n_fields; k++)
            if (k != af->time_field)
                af->sel[n++] = k;
    }
    if (n == 0)
        return cvd_err_set(err, CVD_EINVAL,
                           "%s: no column left for the channels (the only one "
                           "is the time column)",
                           af->name);
    af->info.channels = n;
    af->plain = !(o && (o->columns || o->time_column));
    return CVD_OK;
}
/* ---- reading ------------------------------------------------------------------------------ */

static int open_fd_read(cvd_af *af, const char *path, struct stat *st, cvd_err *err)
{
    int fd = strcmp(path, "-") == 0 ? 0 : open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return cvd_err_set(err, CVD_EIO, "%s: cannot open: %s", af->name, strerror(errno));
    if (fstat(fd, st) != 0) {
        int e = errno;
        if (fd != 0)
            close(fd);
        return cvd_err_set(err, CVD_EIO, "%s: %s", af->name, strerror(e));
    }
    if (S_ISDIR(st->st_mode)) {
        if (fd != 0)
            close(fd);
        return cvd_err_set(err, CVD_EIO, "%s: is a directory", af->name);
    }
    return fd;
}

int cvd_af_open_read(const char *path, cvd_af_format format, int channels, cvd_af **out,
                     cvd_err *err)
{
    return cvd_af_open_read_opts(path, format, channels, NULL, out, err);
}

int cvd_af_open_read_opts(const char *path, cvd_af_format format, int channels,
                          const cvd_af_read_opts *opts, cvd_af **out, cvd_err *err)
{
    const int is_std = strcmp(path, "-") == 0;
    struct stat st;
    cvd_af *af;
    int fd, rc = CVD_OK;

    *out = NULL;
    if (format == CVD_AF_UNKNOWN && !is_std)
        format = cvd_af_format_of(path, CVD_AF_UNKNOWN);
    if (is_std && format != CVD_AF_F32 && format != CVD_AF_CSV && format != CVD_AF_NPY)
        return cvd_err_set(err, CVD_EINVAL,
                           "standard input: its format must be given: f32, csv or npy");
    if (opts && (opts->columns || opts->time_column) && format != CVD_AF_CSV &&
        format != CVD_AF_NPY)
        return cvd_err_set(err, CVD_EINVAL,
                           "%s: columns and a time column can be chosen in csv and npy input "
                           "only",
                           is_std ? "standard input" : path);
    if (format == CVD_AF_F32 && channels <= 0)
        return cvd_err_set(err, CVD_EINVAL,
                           "%s: raw float32 has no header: the channel count must be given",
                           is_std ? "standard input" : path);
    af = af_new(path, 0, format, err);
    if (af == NULL)
        return CVD_ENOMEM;
    af->time_field = -1;
    fd = open_fd_read(af, path, &st, err);
    if (fd < 0) {
        af_free(af);
        return fd;
    }

    if (format == CVD_AF_SNDFILE) {
        rc = af_sndfile_open_read(af, fd, err);
        if (rc < 0)
            goto fail;
        *out = af;
        return CVD_OK;
    }

    af->fp = is_std ? stdin : fdopen(fd, "rb");
    if (af->fp == NULL) {
        rc = cvd_err_set(err, CVD_EIO, "%s: %s", af->name, strerror(errno));
        close(fd);
        goto fail;
    }
    af->own_fp = !is_std;
    if (format == CVD_AF_F32) {
        rc = af_raw_open_read(af, fd, &st, channels, err);
        if (rc < 0)
            goto fail;
    } else if (format == CVD_AF_NPY) {
        rc = af_npy_open_read(af, &st, opts, err);
        if (rc < 0)
            goto fail;
    } else {
        rc = af_csv_open_read(af, channels, opts, err);
        if (rc < 0)
            goto fail;
    }
    *out = af;
    return CVD_OK;

fail:
    cvd_af_close(af, NULL);
    return rc;
}

long cvd_af_read(cvd_af *af, float *frames, long max_frames, cvd_err *err)
{
    const int C = af->info.channels;
    long n = 0;

    if (af->writing)
        return cvd_err_set(err, CVD_ESTATE, "%s: open for writing", af->name);
    af->n_times = 0;
    af->tbuf_len = 0;
    if (max_frames <= 0 || C <= 0)
        return 0;
    switch (af->info.format) {
    case CVD_AF_SNDFILE:
        n = af_sndfile_read(af, frames, max_frames, err);
        if (n < 0)
            return n;
        break;
    case CVD_AF_F32:
        n = af_raw_read(af, frames, max_frames, err);
        if (n < 0)
            return n;
        break;
    case CVD_AF_CSV:
        n = af_csv_read(af, frames, max_frames, err);
        if (n < 0)
            return n;
        break;
    case CVD_AF_NPY:
        n = af_npy_read(af, frames, max_frames, err);
        if (n < 0)
            return n;
        break;
    default:
        return cvd_err_set(err, CVD_EINVAL, "%s: unknown format", af->name);
    }
    af->count += n;
    return n;
}

int cvd_af_open_write(const char *path, cvd_af_format format, int channels, double rate,
                      cvd_af **out, cvd_err *err)
{
    const int is_std = strcmp(path, "-") == 0;
    cvd_af *af;
    int rc = CVD_OK;

    *out = NULL;
    if (format == CVD_AF_UNKNOWN && !is_std)
        format = cvd_af_format_of(path, CVD_AF_UNKNOWN);
    if (is_std && format != CVD_AF_F32 && format != CVD_AF_CSV && format != CVD_AF_NPY)
        return cvd_err_set(err, CVD_EINVAL,
                           "standard output: its format must be given: f32, csv or npy");
    if (channels <= 0)
        return cvd_err_set(err, CVD_EINVAL, "%s: channels=%d: must be >= 1",
                           is_std ? "standard output" : path, channels);
    if (!(rate > 0) || rate > 1e9)
        rate = 48000;
    af = af_new(path, 1, format, err);
    if (af == NULL)
        return CVD_ENOMEM;
    af->info.channels = channels;
    af->info.rate = format == CVD_AF_SNDFILE ? (double)lround(rate) : rate;
    af->info.frames = 0;
    if (format == CVD_AF_SNDFILE) {
        rc = af_sndfile_open_write(af, path, channels, (int)lround(rate), err);
    } else {
        af->fp = is_std ? stdout : fopen(path, "wb");
        af->own_fp = !is_std;
        if (af->fp == NULL)
            rc = cvd_err_set(err, CVD_EIO, "%s: cannot create: %s", af->name, strerror(errno));
        if (rc == CVD_OK && format == CVD_AF_NPY)
            rc = af_npy_open_write(af, err);
    }
    if (rc < 0) {
        cvd_af_close(af, NULL);
        return rc;
    }
    *out = af;
    return CVD_OK;
}

/* One csv field: quoted when it holds a comma, a quote, a leading or trailing space, or
 * starts like a comment. */
int cvd_af_write(cvd_af *af, const float *frames, long n, cvd_err *err)
{
    return cvd_af_write_times(af, frames, NULL, n, err);
}

int cvd_af_write_times(cvd_af *af, const float *frames, const char *const *times, long n,
                       cvd_err *err)
{
    int rc = CVD_OK;

    if (!af->writing)
        return cvd_err_set(err, CVD_ESTATE, "%s: open for reading", af->name);
    if (n <= 0)
        return CVD_OK;
    switch (af->info.format) {
    case CVD_AF_SNDFILE:
        rc = af_sndfile_write(af, frames, n, err);
        break;
    case CVD_AF_F32:
        rc = af_raw_write(af, frames, n, err);
        break;
    case CVD_AF_CSV:
        rc = af_csv_write(af, frames, times, n, err);
        break;
    case CVD_AF_NPY:
        rc = af_npy_write(af, frames, n, err);
        break;
    default:
        rc = cvd_err_set(err, CVD_EINVAL, "%s: unknown format", af->name);
    }
    if (rc == CVD_OK) {
        af->count += n;
        af->info.frames = af->count;
    }
    return rc;
}

int cvd_af_close(cvd_af *af, cvd_err *err)
{
    int rc = CVD_OK;
    if (af == NULL)
        return CVD_OK;
    if (af->writing && af->info.format == CVD_AF_NPY && af->fp)
        rc = af_npy_finish(af, err);
    if (af->snd) {
        int e = af_sndfile_close(af, err);
        if (e < 0)
            rc = e;
    }
    if (af->fd >= 0 && close(af->fd) != 0 && af->writing && rc == CVD_OK)
        rc = cvd_err_set(err, CVD_EIO, "%s: write error: %s", af->name, strerror(errno));
    if (af->fp) {
        if (af->writing && (fflush(af->fp) != 0 || ferror(af->fp)) && rc == CVD_OK)
            rc = cvd_err_set(err, CVD_EIO, "%s: write error: %s", af->name, strerror(errno));
        if (af->own_fp && fclose(af->fp) != 0 && af->writing && rc == CVD_OK)
            rc = cvd_err_set(err, CVD_EIO, "%s: write error: %s", af->name, strerror(errno));
    }
    af_free(af);
    return rc;
}

/* ---- whole files ---------------------------------------------------------------------------- */

int cvd_af_read_all(cvd_af *af, float **frames, long *n, cvd_err *err)
{
    const int C = af->info.channels > 0 ? af->info.channels : 1;
    float *buf = NULL;
    long cap = 0, len = 0;
    int rc = CVD_OK;

    *frames = NULL;
    *n = 0;
    if (af->info.frames > 0 && af->info.frames < LONG_MAX / 2)
        cap = (long)(af->info.frames - af->count) + 1;
    if (cap > 0 && (buf = malloc(sizeof(float) * (size_t)cap * (size_t)C)) == NULL)
        return cvd_err_set(err, CVD_ENOMEM, "%s: out of memory", af->name);
    for (;;) {
        long got;
        if (len == cap) {
            long ncap = cap < 4096 ? 4096 : cap * 2;
            float *nb = realloc(buf, sizeof(float) * (size_t)ncap * (size_t)C);
            if (nb == NULL) {
                rc = cvd_err_set(err, CVD_ENOMEM, "%s: out of memory", af->name);
                break;
            }
            buf = nb;
            cap = ncap;
        }
        got = cvd_af_read(af, buf + (size_t)len * C, cap - len, err);
        if (got < 0) {
            rc = (int)got;
            break;
        }
        if (got == 0)
            break;
        len += got;
    }
    if (rc < 0) {
        free(buf);
        return rc;
    }
    *frames = buf;
    *n = len;
    return CVD_OK;
}

int cvd_af_load(const char *path, cvd_af_format format, int channels, float **frames, long *n,
                cvd_af_info *info, cvd_err *err)
{
    cvd_af *af;
    int rc = cvd_af_open_read(path, format, channels, &af, err);

    *frames = NULL;
    *n = 0;
    if (rc < 0)
        return rc;
    rc = cvd_af_read_all(af, frames, n, err);
    if (rc == CVD_OK && info) {
        *info = af->info;
        info->frames = *n;
    }
    cvd_af_close(af, NULL);
    return rc;
}

int cvd_af_save(const char *path, cvd_af_format format, int channels, double rate,
                const float *frames, long n, cvd_err *err)
{
    cvd_af *af;
    int rc = cvd_af_open_write(path, format, channels, rate, &af, err);
    if (rc < 0)
        return rc;
    rc = cvd_af_write(af, frames, n, err);
    if (rc < 0) {
        cvd_af_close(af, NULL);
        return rc;
    }
    return cvd_af_close(af, err);
}
