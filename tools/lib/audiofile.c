/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Frames in and out of files: libsndfile formats, raw float32, csv and NumPy's .npy (see
 * audiofile.h).
 *
 * Text is read and written with proto's C-locale codec (cvd_text_parse_float,
 * cvd_text_format_frames: the line protocol's own), so a program that called
 * setlocale(LC_ALL, "") under a locale with a decimal comma still reads and writes "0.5".
 */
#include "audiofile.h"

#include <errno.h>
#include <fcntl.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <sndfile.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "convd_proto.h"

struct cvd_af {
    int writing;
    cvd_af_info info;
    char *name;   /* for messages */
    int fd;       /* sndfile: our descriptor (libsndfile does not close it); else -1 */
    SNDFILE *snd; /* CVD_AF_SNDFILE */
    FILE *fp;     /* CVD_AF_F32, CVD_AF_CSV */
    int own_fp;   /* 0 for stdin/stdout */
    char *text;   /* csv writing: one chunk of lines */
    size_t text_cap;
    /* csv reading */
    char *line;
    size_t line_cap;
    long lineno;     /* of the last line read */
    long first_line; /* the line that set the channel count */
    float *pending;  /* the first frame, read at open to learn the channel count */
    char *pending_time;
    int has_pending;
    int eof;
    long long count; /* frames read or written so far */
    /* csv and npy reading: the file's columns, the channels chosen among them */
    int n_fields;     /* columns per line (frame) */
    int *sel;         /* the column of each channel */
    int time_field;   /* the time column, -1 none */
    int plain;        /* every column a channel, in order (csv messages say "values") */
    char **names;     /* the header row's names, NULL without one */
    long header_line; /* its line */
    char *fbuf;       /* the fields of the current line, unquoted */
    size_t fbuf_cap;
    size_t *fpos;
    int fpos_cap;
    char *tbuf; /* the time column's text of the frames of the last read */
    size_t tbuf_len, tbuf_cap, *toff;
    long n_times, toff_cap;
    /* npy */
    int npy_item; /* reading: 4 or 8 bytes per value */
    long long npy_total;
    unsigned char *rowbuf;
    int npy_seekable; /* writing: the header is rewritten at the end; else kept in memory */
    float *mem;
    size_t mem_len, mem_cap;
    /* csv writing */
    int time_out; /* a time column first */
};

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
static const char *extension(const char *path)
{
    const char *slash = strrchr(path, '/'), *dot = strrchr(path, '.');
    if (dot == NULL || (slash && dot < slash) || dot == path || dot[-1] == '/')
        return "";
    return dot + 1;
}

/* libsndfile's major format for an extension (0: none). Headerless RAW is left out: its
 * ".raw" says nothing about the sample format. */
static int sndfile_major(const char *ext)
{
    SF_FORMAT_INFO fi;
    int count = 0;

    if (*ext == '\0')
        return 0;
    if (strcasecmp(ext, "aif") == 0 || strcasecmp(ext, "aifc") == 0)
        return SF_FORMAT_AIFF;
    if (strcasecmp(ext, "ogg") == 0 || strcasecmp(ext, "opus") == 0)
        return SF_FORMAT_OGG;
    if (strcasecmp(ext, "wave") == 0)
        return SF_FORMAT_WAV;
    sf_command(NULL, SFC_GET_FORMAT_MAJOR_COUNT, &count, sizeof count);
    for (int i = 0; i < count; i++) {
        fi.format = i;
        if (sf_command(NULL, SFC_GET_FORMAT_MAJOR, &fi, sizeof fi) != 0 || fi.extension == NULL)
            continue;
        if ((fi.format & SF_FORMAT_TYPEMASK) == SF_FORMAT_RAW)
            continue;
        if (strcasecmp(ext, fi.extension) == 0)
            return fi.format & SF_FORMAT_TYPEMASK;
    }
    return 0;
}

int cvd_af_sndfile_writable(const char *path)
{
    return sndfile_major(extension(path)) != 0;
}

cvd_af_format cvd_af_format_of(const char *path, cvd_af_format given)
{
    const char *ext;
    if (strcmp(path, "-") == 0)
        return given;
    ext = extension(path);
    if (strcasecmp(ext, "f32") == 0)
        return CVD_AF_F32;
    if (strcasecmp(ext, "csv") == 0)
        return CVD_AF_CSV;
    if (strcasecmp(ext, "npy") == 0)
        return CVD_AF_NPY;
    if (sndfile_major(ext) != 0)
        return CVD_AF_SNDFILE;
    return given != CVD_AF_UNKNOWN ? given : CVD_AF_SNDFILE;
}

/* ---- common ----------------------------------------------------------------------------- */

static int host_is_little_endian(void)
{
    const uint16_t one = 1;
    unsigned char b;
    memcpy(&b, &one, 1);
    return b == 1;
}

static void swap_floats(float *x, size_t n)
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

static int no_c_locale(cvd_af *af, cvd_err *err)
{
    return cvd_err_set(err, CVD_ENOMEM, "%s: cannot create the C locale", af->name);
}

/* ---- csv reading ------------------------------------------------------------------------- */

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
            return no_c_locale(af, err);
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

/* Keeps the text of the time column of the frame just parsed (or `text`) for cvd_af_time. */
static int time_push(cvd_af *af, const char *text, cvd_err *err)
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
static int csv_select(cvd_af *af, const cvd_af_read_opts *o, cvd_err *err)
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

static int csv_open_read(cvd_af *af, int channels, const cvd_af_read_opts *o, cvd_err *err)
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
                return no_c_locale(af, err);
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
    if ((rc = csv_select(af, o, err)) < 0)
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

static long csv_read(cvd_af *af, float *frames, long max_frames, cvd_err *err)
{
    const int C = af->info.channels;
    long n = 0;
    if (af->has_pending && max_frames > 0) {
        memcpy(frames, af->pending, sizeof(float) * (size_t)C);
        if (af->time_field >= 0) {
            int rc = time_push(af, af->pending_time, err);
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
            rc = time_push(af, csv_field(af, af->time_field), err);
        if (rc < 0)
            return rc;
        n++;
    }
    return n;
}

/* ---- npy ------------------------------------------------------------------------------------ */

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

static int npy_open_read(cvd_af *af, const struct stat *st, const cvd_af_read_opts *o, cvd_err *err)
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
    if ((rc = csv_select(af, o, err)) < 0)
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

static long npy_read(cvd_af *af, float *frames, long max_frames, cvd_err *err)
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
                if ((rc = time_push(af, t, err)) < 0)
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

static int npy_open_write(cvd_af *af, cvd_err *err)
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
    if (host_is_little_endian())
        return fwrite(x, sizeof(float), n, af->fp) == n ? 0 : -1;
    for (size_t i = 0; i < n; i++) {
        float v = x[i];
        swap_floats(&v, 1);
        if (fwrite(&v, sizeof v, 1, af->fp) != 1)
            return -1;
    }
    return 0;
}

static int npy_write(cvd_af *af, const float *frames, long n, cvd_err *err)
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
static int npy_finish(cvd_af *af, cvd_err *err)
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
        SF_INFO si;
        memset(&si, 0, sizeof si);
        af->fd = fd;
        af->snd = sf_open_fd(fd, SFM_READ, &si, SF_FALSE);
        if (af->snd == NULL) {
            rc = cvd_err_set(err, CVD_EFORMAT,
                             "%s: not an audio file libsndfile can read (%s); raw float32 and "
                             "text need the extension .f32 or .csv",
                             af->name, sf_strerror(NULL));
        } else if (si.channels <= 0) {
            rc = cvd_err_set(err, CVD_EFORMAT, "%s: %d channels", af->name, si.channels);
        } else {
            af->info.channels = si.channels;
            af->info.rate = si.samplerate;
            af->info.frames =
                si.frames >= 0 && si.frames < (sf_count_t)LLONG_MAX / 2 ? (long long)si.frames : -1;
        }
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
        af->info.channels = channels;
        if (S_ISREG(st.st_mode)) {
            off_t pos = lseek(fd, 0, SEEK_CUR);
            long long bytes = (long long)st.st_size - (pos > 0 ? (long long)pos : 0);
            long long fb = 4LL * channels;
            if (bytes % fb != 0) {
                rc = cvd_err_set(err, CVD_EFORMAT,
                                 "%s: %lld bytes is not a whole number of frames of float32 x "
                                 "%d channel%s (%lld bytes each)",
                                 af->name, bytes, channels, channels == 1 ? "" : "s", fb);
                goto fail;
            }
            af->info.frames = bytes / fb;
        }
    } else if (format == CVD_AF_NPY) {
        rc = npy_open_read(af, &st, opts, err);
        if (rc < 0)
            goto fail;
    } else {
        rc = csv_open_read(af, channels, opts, err);
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
    case CVD_AF_SNDFILE: {
        sf_count_t got = sf_readf_float(af->snd, frames, (sf_count_t)max_frames);
        if (got < 0)
            return cvd_err_set(err, CVD_EIO, "%s: read error: %s", af->name, sf_strerror(af->snd));
        n = (long)got;
        break;
    }
    case CVD_AF_F32: {
        const size_t fb = sizeof(float) * (size_t)C;
        size_t got = fread(frames, 1, fb * (size_t)max_frames, af->fp);
        if (ferror(af->fp))
            return cvd_err_set(err, CVD_EIO, "%s: read error: %s", af->name, strerror(errno));
        if (got % fb != 0)
            return cvd_err_set(err, CVD_EFORMAT,
                               "%s: ends inside a frame: %lld bytes is not a whole number of "
                               "frames of float32 x %d channel%s (%zu bytes each)",
                               af->name, (long long)(af->count * (long long)fb + (long long)got), C,
                               C == 1 ? "" : "s", fb);
        n = (long)(got / fb);
        if (!host_is_little_endian())
            swap_floats(frames, (size_t)n * C);
        break;
    }
    case CVD_AF_CSV:
        n = csv_read(af, frames, max_frames, err);
        if (n < 0)
            return n;
        break;
    case CVD_AF_NPY:
        n = npy_read(af, frames, max_frames, err);
        if (n < 0)
            return n;
        break;
    default:
        return cvd_err_set(err, CVD_EINVAL, "%s: unknown format", af->name);
    }
    af->count += n;
    return n;
}

/* ---- writing ------------------------------------------------------------------------------ */

static int sndfile_open_write(cvd_af *af, const char *path, int channels, int rate, cvd_err *err)
{
    static const int subtypes[] = {SF_FORMAT_FLOAT,  SF_FORMAT_PCM_24, SF_FORMAT_PCM_16,
                                   SF_FORMAT_VORBIS, SF_FORMAT_OPUS,   SF_FORMAT_MPEG_LAYER_III};
    const char *ext = extension(path);
    int major = sndfile_major(ext);
    SF_INFO si;

    if (major == 0)
        return cvd_err_set(err, CVD_EUNSUPPORTED,
                           "%s: unknown output format (use an audio extension such as .wav, "
                           ".flac, .aiff, .ogg, or .f32 for raw float32, .csv for text)",
                           af->name);
    memset(&si, 0, sizeof si);
    si.channels = channels;
    si.samplerate = rate;
    for (size_t i = 0; i < sizeof subtypes / sizeof subtypes[0]; i++) {
        int sub = subtypes[i];
        if (major == SF_FORMAT_OGG && strcasecmp(ext, "opus") == 0 && sub == SF_FORMAT_VORBIS)
            continue;
        si.format = major | sub;
        if (sf_format_check(&si))
            break;
        si.format = 0;
    }
    if (si.format == 0)
        return cvd_err_set(err, CVD_EUNSUPPORTED,
                           "%s: libsndfile cannot write this format with %d channel%s at %d Hz",
                           af->name, channels, channels == 1 ? "" : "s", rate);
    af->fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
    if (af->fd < 0)
        return cvd_err_set(err, CVD_EIO, "%s: cannot create: %s", af->name, strerror(errno));
    af->snd = sf_open_fd(af->fd, SFM_WRITE, &si, SF_FALSE);
    if (af->snd == NULL)
        return cvd_err_set(err, CVD_EIO, "%s: libsndfile cannot write it: %s", af->name,
                           sf_strerror(NULL));
    /* integer formats: clip overs instead of wrapping around */
    sf_command(af->snd, SFC_SET_CLIPPING, NULL, SF_TRUE);
    return CVD_OK;
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
        rc = sndfile_open_write(af, path, channels, (int)lround(rate), err);
    } else {
        af->fp = is_std ? stdout : fopen(path, "wb");
        af->own_fp = !is_std;
        if (af->fp == NULL)
            rc = cvd_err_set(err, CVD_EIO, "%s: cannot create: %s", af->name, strerror(errno));
        if (rc == CVD_OK && format == CVD_AF_NPY)
            rc = npy_open_write(af, err);
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

static int csv_write(cvd_af *af, const float *frames, const char *const *times, long n,
                     cvd_err *err)
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
            return no_c_locale(af, err);
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

int cvd_af_write(cvd_af *af, const float *frames, long n, cvd_err *err)
{
    return cvd_af_write_times(af, frames, NULL, n, err);
}

int cvd_af_write_times(cvd_af *af, const float *frames, const char *const *times, long n,
                       cvd_err *err)
{
    const int C = af->info.channels;
    int rc = CVD_OK;

    if (!af->writing)
        return cvd_err_set(err, CVD_ESTATE, "%s: open for reading", af->name);
    if (n <= 0)
        return CVD_OK;
    switch (af->info.format) {
    case CVD_AF_SNDFILE:
        if (sf_writef_float(af->snd, frames, (sf_count_t)n) != (sf_count_t)n)
            rc = cvd_err_set(err, CVD_EIO, "%s: write error: %s", af->name, sf_strerror(af->snd));
        break;
    case CVD_AF_F32:
        if (host_is_little_endian()) {
            if (fwrite(frames, sizeof(float) * (size_t)C, (size_t)n, af->fp) != (size_t)n)
                rc = cvd_err_set(err, CVD_EIO, "%s: write error: %s", af->name, strerror(errno));
        } else {
            for (long t = 0; t < n * C && rc == CVD_OK; t++) {
                float v = frames[t];
                swap_floats(&v, 1);
                if (fwrite(&v, sizeof v, 1, af->fp) != 1)
                    rc =
                        cvd_err_set(err, CVD_EIO, "%s: write error: %s", af->name, strerror(errno));
            }
        }
        break;
    case CVD_AF_CSV:
        rc = csv_write(af, frames, times, n, err);
        break;
    case CVD_AF_NPY:
        rc = npy_write(af, frames, n, err);
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
        rc = npy_finish(af, err);
    if (af->snd) {
        int e = sf_close(af->snd);
        if (e != 0 && af->writing)
            rc = cvd_err_set(err, CVD_EIO, "%s: cannot finish the file: %s", af->name,
                             sf_error_number(e));
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
