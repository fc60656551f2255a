/* SPDX-License-Identifier: Apache-2.0 */
/*
 * csv files: one frame a line, comma-separated, an optional header row naming the columns,
 * quoted fields, comment lines, a time column kept as text; the columns read as channels are
 * chosen by audiofile.c (af_select_columns). Text is read and written with proto's C-locale
 * codec (cvd_text_parse_float, cvd_text_format_frames: the line protocol's own), so a program
 * that called setlocale(LC_ALL, "") under a locale with a decimal comma still reads and
 * writes "0.5".
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

/* ---- reading ------------------------------------------------------------------------------ */

/* Shows at most 40 characters of a bad field. */
static void field_excerpt(const char *p, char *buf, size_t cap)
{
    size_t n = strlen(p);
    if (n > 40)
        snprintf(buf, cap, "%.37s...", p);
    else
        snprintf(buf, cap, "%s", p);
}

/* Splits a line into fields: af->fbuf holds them NUL-terminated, af->fpos[i] where field i
 * starts. Spaces and tabs around a field are dropped; a field may be quoted ("a, b", "" for
 * a quote). Returns the count, or an error naming the line. */
static int csv_split(cvd_af *af, const char *line, cvd_err *err)
{
    const size_t len = strlen(line);
    const char *p = line;
    size_t o = 0;
    int n = 0;
    if (af->fbuf_cap < len + 1) {
        char *nb = realloc(af->fbuf, len + 1);
        if (nb == NULL)
            return cvd_err_set(err, CVD_ENOMEM, "%s: out of memory", af->name);
        af->fbuf = nb;
        af->fbuf_cap = len + 1;
    }
    for (;;) {
        if (n == af->fpos_cap) {
            int nc = af->fpos_cap ? af->fpos_cap * 2 : 16;
            size_t *np_ = realloc(af->fpos, sizeof *np_ * (size_t)nc);
            if (np_ == NULL)
                return cvd_err_set(err, CVD_ENOMEM, "%s: out of memory", af->name);
            af->fpos = np_;
            af->fpos_cap = nc;
        }
        af->fpos[n++] = o;
        while (*p == ' ' || *p == '\t')
            p++;
        if (*p == '"') {
            p++;
            for (;;) {
                if (*p == '\0')
                    return cvd_err_set(err, CVD_EFORMAT,
                                       "%s: line %ld: field %d: a quote is not closed", af->name,
                                       af->lineno, n);
                if (*p == '"' && p[1] == '"') {
                    af->fbuf[o++] = '"';
                    p += 2;
                } else if (*p == '"') {
                    p++;
                    break;
                } else {
                    af->fbuf[o++] = *p++;
                }
            }
            while (*p == ' ' || *p == '\t')
                p++;
            if (*p != ',' && *p != '\0')
                return cvd_err_set(err, CVD_EFORMAT,
                                   "%s: line %ld: field %d: text after its closing quote", af->name,
                                   af->lineno, n);
        } else {
            const size_t start = o;
            while (*p != ',' && *p != '\0')
                af->fbuf[o++] = *p++;
            while (o > start && (af->fbuf[o - 1] == ' ' || af->fbuf[o - 1] == '\t'))
                o--;
        }
        af->fbuf[o++] = '\0';
        if (*p == '\0')
            break;
        p++; /* the comma */
    }
    return n;
}

static const char *csv_field(const cvd_af *af, int i)
{
    return af->fbuf + af->fpos[i];
}

/* A field as a float32: 0, or -1 (not a number), or -2 (beyond the float32 range). */
static int csv_number(const char *f, float *out)
{
    char *end;
    float v = 0;
    int rc;
    if (*f == '\0' || *f == ' ' || *f == '\t')
        return -1;
    rc = cvd_text_parse_float(f, &end, &v);
    if (rc == CVD_ENOMEM)
        return -3;
    if (end == f || *end != '\0')
        return -1;
    if (rc == CVD_ERANGE)
        return -2;
    *out = v;
    return 0;
}

/* Parses the current line's fields (af->fbuf) into a frame: the selected columns into out,
 * the time column's text kept. Errors name the line and the field. */
static int csv_parse_fields(cvd_af *af, int nf, float *out, cvd_err *err)
{
    char shown[48];
    if (nf != af->n_fields) {
        if (af->plain)
            return cvd_err_set(err, CVD_EFORMAT,
                               "%s: line %ld: %d value%s, expected %d (one per channel, as on "
                               "line %ld)",
                               af->name, af->lineno, nf, nf == 1 ? "" : "s", af->n_fields,
                               af->first_line);
        return cvd_err_set(err, CVD_EFORMAT,
                           "%s: line %ld: %d fields, expected %d (as on line %ld)", af->name,
                           af->lineno, nf, af->n_fields, af->first_line);
    }
    for (int c = 0; c < af->info.channels; c++) {
        const int k = af->sel[c];
        const char *f = csv_field(af, k);
        int rc = csv_number(f, &out[c]);
        if (rc == 0)
            continue;
        if (rc == -3)
            return af_no_c_locale(af, err);
        if (*f == '\0')
            return cvd_err_set(err, CVD_EFORMAT, "%s: line %ld: field %d is empty", af->name,
                               af->lineno, k + 1);
        field_excerpt(f, shown, sizeof shown);
        return cvd_err_set(
            err, CVD_EFORMAT, "%s: line %ld: field %d \"%s\" %s%s", af->name, af->lineno, k + 1,
            shown, rc == -2 ? "is beyond the float32 range" : "is not a number",
            rc == -1 && strchr(f, ';') != NULL ? " (values separated by ';'? convd reads commas)"
            : rc == -1 && af->lineno == 1 && af->header_line == 0
                ? " (a header row? --csv-header says so)"
                : "");
    }
    return CVD_OK;
}

/* The next data line (NUL-terminated, without its end of line), NULL at the end of input;
 * *rc < 0 on a read error. */
static const char *csv_next_line(cvd_af *af, int *rc, cvd_err *err)
{
    *rc = CVD_OK;
    for (;;) {
        ssize_t n;
        const char *p;
        errno = 0;
        n = getline(&af->line, &af->line_cap, af->fp);
        if (n < 0) {
            if (ferror(af->fp))
                *rc = cvd_err_set(err, CVD_EIO, "%s: read error: %s", af->name,
                                  strerror(errno ? errno : EIO));
            return NULL;
        }
        af->lineno++;
        if ((size_t)n != strlen(af->line)) {
            *rc = cvd_err_set(err, CVD_EFORMAT, "%s: line %ld: contains a NUL byte (not text)",
                              af->name, af->lineno);
            return NULL;
        }
        while (n > 0 && (af->line[n - 1] == '\n' || af->line[n - 1] == '\r'))
            af->line[--n] = '\0';
        p = af->line;
        if (af->lineno == 1 && (unsigned char)p[0] == 0xEF && (unsigned char)p[1] == 0xBB &&
            (unsigned char)p[2] == 0xBF)
            p += 3; /* a UTF-8 byte order mark */
        while (*p == ' ' || *p == '\t')
            p++;
        if (*p == '\0' || *p == '#')
            continue;
        return p;
    }
}

int af_csv_open_read(cvd_af *af, int channels, const cvd_af_read_opts *o, cvd_err *err)
{
    int rc, nf;
    const cvd_af_header hmode = o ? o->header : CVD_AF_HEADER_DETECT;
    const char *line = csv_next_line(af, &rc, err);
    if (rc < 0)
        return rc;
    if (line == NULL) { /* no frame at all */
        if (o && (o->columns || o->time_column))
            return cvd_err_set(err, CVD_EFORMAT, "%s: no line at all: no columns to choose from",
                               af->name);
        af->eof = 1;
        af->info.channels = channels > 0 ? channels : 0;
        af->info.frames = 0;
        af->time_field = -1;
        return CVD_OK;
    }
    if ((nf = csv_split(af, line, err)) < 0)
        return nf;
    af->n_fields = nf;
    /* a header row: told so, or no field of the first line is a number */
    int header = hmode == CVD_AF_HEADER_YES;
    if (hmode == CVD_AF_HEADER_DETECT) {
        /* a header: no field starts like a number ("0.5;0.25" is a malformed frame) */
        int numbers = 0, text = 0;
        for (int k = 0; k < nf; k++) {
            const char *f = csv_field(af, k);
            char *end;
            float v;
            if (cvd_text_parse_float(f, &end, &v) == CVD_ENOMEM)
                return af_no_c_locale(af, err);
            numbers += end != f;
            text += f[0] != '\0';
        }
        header = numbers == 0 && text > 0;
    }
    if (header) {
        af->names = calloc((size_t)nf, sizeof *af->names);
        if (af->names == NULL)
            return cvd_err_set(err, CVD_ENOMEM, "%s: out of memory", af->name);
        for (int k = 0; k < nf; k++)
            if ((af->names[k] = strdup(csv_field(af, k))) == NULL)
                return cvd_err_set(err, CVD_ENOMEM, "%s: out of memory", af->name);
        af->header_line = af->lineno;
    }
    if ((rc = af_select_columns(af, o, err)) < 0)
        return rc;
    if (header) { /* the first frame is on a later line */
        line = csv_next_line(af, &rc, err);
        if (rc < 0)
            return rc;
        if (line == NULL) {
            af->eof = 1;
            af->info.frames = 0;
            return CVD_OK;
        }
        if ((nf = csv_split(af, line, err)) < 0)
            return nf;
    }
    af->first_line = af->header_line ? af->header_line : af->lineno;
    af->pending = malloc(sizeof(float) * (size_t)af->info.channels);
    if (af->pending == NULL)
        return cvd_err_set(err, CVD_ENOMEM, "%s: out of memory", af->name);
    if ((rc = csv_parse_fields(af, nf, af->pending, err)) < 0)
        return rc;
    if (af->time_field >= 0 && (af->pending_time = strdup(csv_field(af, af->time_field))) == NULL)
        return cvd_err_set(err, CVD_ENOMEM, "%s: out of memory", af->name);
    af->has_pending = 1;
    return CVD_OK;
}

long af_csv_read(cvd_af *af, float *frames, long max_frames, cvd_err *err)
{
    const int C = af->info.channels;
    long n = 0;
    if (af->has_pending && max_frames > 0) {
        memcpy(frames, af->pending, sizeof(float) * (size_t)C);
        if (af->time_field >= 0) {
            int rc = af_time_push(af, af->pending_time, err);
            if (rc < 0)
                return rc;
        }
        af->has_pending = 0;
        n = 1;
    }
    while (n < max_frames && !af->eof) {
        int rc, nf;
        const char *line = csv_next_line(af, &rc, err);
        if (rc < 0)
            return rc;
        if (line == NULL) {
            af->eof = 1;
            break;
        }
        if ((nf = csv_split(af, line, err)) < 0)
            return nf;
        rc = csv_parse_fields(af, nf, frames + (size_t)n * C, err);
        if (rc == CVD_OK && af->time_field >= 0)
            rc = af_time_push(af, csv_field(af, af->time_field), err);
        if (rc < 0)
            return rc;
        n++;
    }
    return n;
}

static int csv_put_field(FILE *fp, const char *s)
{
    const size_t n = strlen(s);
    if (strpbrk(s, ",\"\r\n") == NULL && s[0] != '#' &&
        !(n > 0 && (s[0] == ' ' || s[0] == '\t' || s[n - 1] == ' ' || s[n - 1] == '\t')))
        return fputs(s, fp) >= 0 ? 0 : -1;
    if (putc('"', fp) == EOF)
        return -1;
    for (; *s; s++)
        if ((*s == '"' && putc('"', fp) == EOF) || putc(*s, fp) == EOF)
            return -1;
    return putc('"', fp) == EOF ? -1 : 0;
}

int cvd_af_set_columns(cvd_af *af, const char *time_name, const char *const *names, cvd_err *err)
{
    int ok = 1;
    if (!af->writing || af->count > 0)
        return cvd_err_set(err, CVD_ESTATE, "%s: columns are named before the first frame",
                           af->name);
    if (af->info.format != CVD_AF_CSV) {
        if (time_name != NULL)
            return cvd_err_set(err, CVD_EINVAL, "%s: a time column goes to csv output only",
                               af->name);
        return CVD_OK;
    }
    af->time_out = time_name != NULL;
    if (time_name != NULL)
        ok = csv_put_field(af->fp, time_name) == 0;
    for (int c = 0; c < af->info.channels && ok; c++)
        ok = (c == 0 && time_name == NULL ? 0
              : putc(',', af->fp) == EOF  ? -1
                                          : 0) == 0 &&
             csv_put_field(af->fp, names && names[c] ? names[c] : "") == 0;
    ok = ok && putc('\n', af->fp) != EOF;
    if (!ok)
        return cvd_err_set(err, CVD_EIO, "%s: write error: %s", af->name, strerror(errno));
    return CVD_OK;
}

int af_csv_write(cvd_af *af, const float *frames, const char *const *times, long n, cvd_err *err)
{
    const int C = af->info.channels;
    /* a chunk holds at least one frame's line */
    const size_t cap =
        (size_t)C * CVD_TEXT_VALUE_CHARS + 1 > 16384 ? (size_t)C * CVD_TEXT_VALUE_CHARS + 1 : 16384;
    if (af->text_cap < cap) {
        char *p = realloc(af->text, cap);
        if (p == NULL)
            return cvd_err_set(err, CVD_ENOMEM, "%s: out of memory", af->name);
        af->text = p;
        af->text_cap = cap;
    }
    for (long t = 0; t < n;) {
        size_t done = 0;
        /* with a time column, one frame at a time after its time field */
        const size_t take = af->time_out ? 1 : (size_t)(n - t);
        long len =
            cvd_text_format_frames(frames + (size_t)t * C, take, C, af->text, af->text_cap, &done);
        if (len == CVD_ENOMEM)
            return af_no_c_locale(af, err);
        if (len < 0 || done == 0)
            return cvd_err_set(err, CVD_EINVAL, "%s: cannot format %d channels", af->name, C);
        if ((af->time_out && (csv_put_field(af->fp, times && times[t] ? times[t] : "") < 0 ||
                              putc(',', af->fp) == EOF)) ||
            fwrite(af->text, 1, (size_t)len, af->fp) != (size_t)len)
            return cvd_err_set(err, CVD_EIO, "%s: write error: %s", af->name, strerror(errno));
        t += (long)done;
    }
    return CVD_OK;
}
