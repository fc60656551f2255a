/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The line protocol: one frame per text line, values in the C locale (text.c); bad lines
 * become "!ERR ..." answers (see convd_proto.h and docs/PROTOCOL.md, "Line").
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "convd_proto.h"
#include "proto_internal.h"

#define LINE_QUOTE_MAX 32 /* bytes of a bad field quoted in an error line */

struct cvd_line_decoder {
    int channels;
    size_t max_line;
    cvd_nonfinite_policy nonfinite;
    char *buf; /* the line being assembled: max_line + 2 bytes (a "\r" and a NUL) */
    size_t len;
    int skipping; /* the line passed the limit (already answered): drop it up to its "\n" */
    unsigned long long line; /* number of the line being assembled */
    char err[CVD_LINE_ERROR_MAX];
    size_t err_len;
};

int cvd_line_decoder_create(int channels, size_t max_line, cvd_nonfinite_policy nonfinite,
                            cvd_line_decoder **out, cvd_err *err)
{
    cvd_line_decoder *d;
    *out = NULL;
    if (max_line == 0)
        max_line = CVD_LINE_DEFAULT_MAX;
    if (channels < 1 || channels > CVD_FR_MAX_CHANNELS)
        return cvd_err_set(err, CVD_EINVAL, "line channels %d: must be from 1 to %d", channels,
                           CVD_FR_MAX_CHANNELS);
    if (max_line > CVD_LINE_MAX_LIMIT)
        return cvd_err_set(err, CVD_EINVAL, "line limit %zu: at most %u bytes", max_line,
                           (unsigned)CVD_LINE_MAX_LIMIT);
    if (nonfinite != CVD_NONFINITE_REJECT && nonfinite != CVD_NONFINITE_PASS)
        return cvd_err_set(err, CVD_EINVAL, "NaN/Inf policy %d: unknown", (int)nonfinite);
    if (cvd__c_locale() == (locale_t)0)
        return cvd_err_set(err, CVD_ENOMEM, "line decoder: cannot create the C locale");
    d = calloc(1, sizeof *d);
    if (d == NULL || (d->buf = malloc(max_line + 2)) == NULL) {
        free(d);
        return cvd_err_set(err, CVD_ENOMEM, "line decoder: out of memory (%zu bytes)",
                           max_line + 2);
    }
    d->channels = channels;
    d->max_line = max_line;
    d->nonfinite = nonfinite;
    cvd_line_decoder_reset(d);
    *out = d;
    return 0;
}

void cvd_line_decoder_destroy(cvd_line_decoder *d)
{
    if (d) {
        free(d->buf);
        free(d);
    }
}

void cvd_line_decoder_reset(cvd_line_decoder *d)
{
    d->len = 0;
    d->skipping = 0;
    d->line = 1;
    d->err[0] = '\0';
    d->err_len = 0;
}

unsigned long long cvd_line_number(const cvd_line_decoder *d)
{
    return d->line;
}

static int is_blank(char c)
{
    return c == ' ' || c == '\t';
}

static int is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

/* A whole value: no blanks around it (the caller trims them), nothing after it. */
static int parse_value(const char *s, float *out)
{
    char *end;
    float v;
    int rc;
    if (s[0] == '\0' || is_space(s[0]))
        return CVD_EFORMAT;
    rc = cvd_text_parse_float(s, &end, &v);
    if (rc == CVD_ENOMEM)
        return rc;
    if (rc == CVD_EFORMAT || *end != '\0')
        return CVD_EFORMAT;
    if (rc == CVD_ERANGE)
        return CVD_ERANGE;
    *out = v;
    return 0;
}

int cvd_line_parse_value(const char *s, float *out)
{
    return parse_value(s, out);
}

/* `"text"`, escaped (\" \\ \xNN for anything outside printable ASCII) and cut with "..." */
static void quote(const char *s, size_t n, char *out, size_t cap)
{
    size_t o = 0;
    out[o++] = '"';
    for (size_t i = 0; i < n && i < LINE_QUOTE_MAX; i++) {
        unsigned char c = (unsigned char)s[i];
        if (o + 8 > cap)
            break;
        if (c == '"' || c == '\\') {
            out[o++] = '\\';
            out[o++] = (char)c;
        } else if (c >= 0x20 && c < 0x7f) {
            out[o++] = (char)c;
        } else {
            o += (size_t)snprintf(out + o, cap - o, "\\x%02x", c);
        }
    }
    out[o++] = '"';
    if (n > LINE_QUOTE_MAX && o + 4 <= cap) {
        memcpy(out + o, "...", 3);
        o += 3;
    }
    out[o] = '\0';
}

static void line_err(cvd_line_decoder *d, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

static void line_err(cvd_line_decoder *d, const char *fmt, ...)
{
    va_list ap;
    int n;
    va_start(ap, fmt);
    n = vsnprintf(d->err, sizeof d->err - 1, fmt, ap);
    va_end(ap);
    if (n < 0)
        n = 0;
    if ((size_t)n > sizeof d->err - 2)
        n = (int)(sizeof d->err - 2);
    d->err[n++] = '\n';
    d->err[n] = '\0';
    d->err_len = (size_t)n;
}

/* Parses the complete line in buf[0..n) (its "\n" removed) into frame. 1: a frame, 0: nothing
 * (blank or comment), -1: rejected (d->err set). */
static int parse_line(cvd_line_decoder *d, char *s, size_t n, float *frame)
{
    const unsigned long long ln = d->line;
    const int C = d->channels;
    size_t i = 0, start;
    int field = 1;
    char q[LINE_QUOTE_MAX * 4 + 8];

    if (n > 0 && s[n - 1] == '\r')
        n--;
    if (n > d->max_line) {
        line_err(d, "!ERR line_too_long line %llu: longer than %zu bytes", ln, d->max_line);
        return -1;
    }
    while (i < n && is_blank(s[i]))
        i++;
    if (i == n || s[i] == '#')
        return 0;
    start = 0;
    for (;;) {
        size_t end = start, a, b;
        float v;
        int rc;
        while (end < n && s[end] != ',')
            end++;
        if (field > C) {
            int total = field;
            for (size_t k = end; k < n; k++)
                total += s[k] == ',';
            line_err(d, "!ERR wrong_count line %llu field %d: %d values, expected %d", ln, field,
                     total, C);
            return -1;
        }
        a = start;
        b = end;
        while (a < b && is_blank(s[a]))
            a++;
        while (b > a && is_blank(s[b - 1]))
            b--;
        if (a == b) {
            line_err(d, "!ERR bad_number line %llu field %d: empty field", ln, field);
            return -1;
        }
        if (memchr(s + a, '\0', b - a) != NULL) {
            rc = CVD_EFORMAT; /* the number would end at the NUL, the rest unread */
        } else {
            char saved = s[b];
            s[b] = '\0';
            rc = parse_value(s + a, &v);
            s[b] = saved;
        }
        if (rc == CVD_EFORMAT || rc == CVD_ENOMEM) { /* no C locale: cannot happen here */
            quote(s + a, b - a, q, sizeof q);
            line_err(d, "!ERR bad_number line %llu field %d: %s is not a number", ln, field, q);
            return -1;
        }
        if (rc == CVD_ERANGE) {
            quote(s + a, b - a, q, sizeof q);
            line_err(d,
                     "!ERR out_of_range line %llu field %d: %s is out of range for a 32-bit "
                     "float",
                     ln, field, q);
            return -1;
        }
        if (!isfinite(v) && d->nonfinite == CVD_NONFINITE_REJECT) {
            quote(s + a, b - a, q, sizeof q);
            line_err(d,
                     "!ERR nonfinite line %llu field %d: %s is not finite (NaN and infinity "
                     "are rejected here)",
                     ln, field, q);
            return -1;
        }
        frame[field - 1] = v;
        if (end == n)
            break;
        start = end + 1;
        field++;
    }
    if (field < C) {
        line_err(d, "!ERR wrong_count line %llu field %d: %d value%s, expected %d", ln, field + 1,
                 field, field == 1 ? "" : "s", C);
        return -1;
    }
    return 1;
}

static void line_result(cvd_line_decoder *d, cvd_line_result *res, size_t used, size_t frames,
                        int error)
{
    res->used = used;
    res->frames = frames;
    res->error = error;
    res->error_line = error ? d->err : NULL;
    res->error_len = error ? d->err_len : 0;
}

void cvd_line_decode(cvd_line_decoder *d, const void *data, size_t len, float *out,
                     size_t max_frames, cvd_line_result *res)
{
    const char *in = data;
    const size_t C = (size_t)d->channels, cap = d->max_line + 1; /* content + a "\r" */
    size_t pos = 0, frames = 0;

    while (pos < len && frames < max_frames) {
        const char *nl = memchr(in + pos, '\n', len - pos);
        size_t seg = (nl ? (size_t)(nl - in) : len) - pos;
        int rc;

        if (d->skipping) {
            pos += seg;
            if (nl) {
                pos++;
                d->skipping = 0;
                d->line++;
            }
            continue;
        }
        if (d->len + seg > cap) {
            /* over the limit: answer now, then drop the rest of the line */
            line_err(d, "!ERR line_too_long line %llu: longer than %zu bytes", d->line,
                     d->max_line);
            d->len = 0;
            pos += seg;
            if (nl) {
                pos++;
                d->line++;
            } else {
                d->skipping = 1;
            }
            line_result(d, res, pos, frames, 1);
            return;
        }
        memcpy(d->buf + d->len, in + pos, seg);
        d->len += seg;
        pos += seg;
        if (!nl)
            break;
        pos++; /* the "\n" */
        rc = parse_line(d, d->buf, d->len, out + frames * C);
        d->len = 0;
        d->line++;
        if (rc > 0)
            frames++;
        if (rc < 0) {
            line_result(d, res, pos, frames, 1);
            return;
        }
    }
    line_result(d, res, pos, frames, 0);
}

void cvd_line_finish(cvd_line_decoder *d, float *out, cvd_line_result *res)
{
    int rc = 0;
    const int open_line = d->skipping || d->len > 0;
    if (!d->skipping && d->len > 0)
        rc = parse_line(d, d->buf, d->len, out);
    line_result(d, res, 0, rc > 0 ? 1 : 0, rc < 0);
    d->len = 0;
    d->skipping = 0;
    if (open_line)
        d->line++;
}

long cvd_line_encode(const float *frames, size_t n_frames, int channels, char *out, size_t cap,
                     size_t *frames_done)
{
    return cvd_text_format_frames(frames, n_frames, channels, out, cap, frames_done);
}

size_t cvd_line_error(char *out, size_t cap, const char *code, const char *fmt, ...)
{
    va_list ap;
    locale_t loc = cvd__c_locale(), old = (locale_t)0;
    int n, k;
    if (cap < 2)
        return 0;
    if (loc != (locale_t)0)
        old = uselocale(loc);
    n = snprintf(out, cap - 1, "!ERR %s ", code);
    if (n < 0)
        n = 0;
    if ((size_t)n > cap - 2)
        n = (int)(cap - 2);
    va_start(ap, fmt);
    k = vsnprintf(out + n, cap - 1 - (size_t)n, fmt, ap);
    va_end(ap);
    if (loc != (locale_t)0)
        uselocale(old);
    if (k > 0)
        n += k;
    if ((size_t)n > cap - 2)
        n = (int)(cap - 2);
    for (int i = 0; i < n; i++)
        if (out[i] == '\n' || out[i] == '\r')
            out[i] = ' ';
    out[n++] = '\n';
    out[n] = '\0';
    return (size_t)n;
}
