/*
 * The wire protocols as pure code (see protocol.h and docs/PROTOCOL.md).
 *
 * Sections: samples, framed, raw, line. The first two are also compiled into the client
 * library, privately (CVD_PROTO_PRIVATE, see protocol.h), so they must not depend on the last
 * two. Nothing here allocates after a create, blocks, or makes a system call.
 */
#include "protocol.h"

#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#ifndef CVD_PROTO_PRIVATE
#include <locale.h>
#include <pthread.h>
#endif

#if defined(__GNUC__)
#define CVD_PROTO_HELPER static __attribute__((unused))
#else
#define CVD_PROTO_HELPER static
#endif

/* ==== little-endian fields ================================================================= */

CVD_PROTO_HELPER uint16_t rd16(const uint8_t *p)
{
    return (uint16_t)(p[0] | (unsigned)p[1] << 8);
}

CVD_PROTO_HELPER uint32_t rd32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

CVD_PROTO_HELPER uint64_t rd64(const uint8_t *p)
{
    return (uint64_t)rd32(p) | (uint64_t)rd32(p + 4) << 32;
}

CVD_PROTO_HELPER void wr16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

CVD_PROTO_HELPER void wr32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

CVD_PROTO_HELPER void wr64(uint8_t *p, uint64_t v)
{
    wr32(p, (uint32_t)v);
    wr32(p + 4, (uint32_t)(v >> 32));
}

/* ==== samples ============================================================================== */

CVD_PROTO_API int cvd_sample_format_parse(const char *name, cvd_sample_format *out)
{
    if (name == NULL)
        return CVD_EINVAL;
    if (strcasecmp(name, "f32") == 0 || strcasecmp(name, "f32le") == 0 ||
        strcasecmp(name, "float") == 0)
        *out = CVD_FMT_F32LE;
    else if (strcasecmp(name, "s16") == 0 || strcasecmp(name, "s16le") == 0 ||
             strcasecmp(name, "int16") == 0)
        *out = CVD_FMT_S16LE;
    else
        return CVD_EINVAL;
    return CVD_OK;
}

CVD_PROTO_API const char *cvd_sample_format_name(int format)
{
    return format == CVD_FMT_F32LE ? "f32le" : format == CVD_FMT_S16LE ? "s16le" : "invalid";
}

CVD_PROTO_API size_t cvd_sample_bytes(int format)
{
    return format == CVD_FMT_F32LE ? 4 : format == CVD_FMT_S16LE ? 2 : 0;
}

CVD_PROTO_API float cvd_s16_to_float(int16_t x)
{
    return (float)x * (1.0f / 32768.0f);
}

CVD_PROTO_API int16_t cvd_s16_from_float(float y)
{
    double v;
    long r;
    if (y != y)
        return 0;
    if (y <= -1.0f)
        return -32768;
    if (y >= 32767.0f / 32768.0f)
        return 32767;
    /* exact: y has 24 significant bits, |v| < 32768, and v + 0.5 needs at most 40 */
    v = (double)y * 32768.0;
    r = v >= 0 ? (long)(v + 0.5) : -(long)(-v + 0.5);
    return (int16_t)r;
}

CVD_PROTO_API void cvd_samples_decode(int format, const void *in, size_t n, float *out)
{
    const uint8_t *p = in;
    if (format == CVD_FMT_F32LE) {
        for (size_t i = 0; i < n; i++) {
            uint32_t u = rd32(p + 4 * i);
            memcpy(&out[i], &u, sizeof u);
        }
    } else if (format == CVD_FMT_S16LE) {
        for (size_t i = 0; i < n; i++) {
            int v = rd16(p + 2 * i);
            out[i] = (float)(v >= 32768 ? v - 65536 : v) * (1.0f / 32768.0f);
        }
    }
}

CVD_PROTO_API void cvd_samples_encode(int format, const float *in, size_t n, void *out)
{
    uint8_t *p = out;
    if (format == CVD_FMT_F32LE) {
        for (size_t i = 0; i < n; i++) {
            uint32_t u;
            memcpy(&u, &in[i], sizeof u);
            wr32(p + 4 * i, u);
        }
    } else if (format == CVD_FMT_S16LE) {
        for (size_t i = 0; i < n; i++)
            wr16(p + 2 * i, (uint16_t)cvd_s16_from_float(in[i]));
    }
}

CVD_PROTO_API size_t cvd_find_nonfinite(const float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i]))
            return i;
    return n;
}

CVD_PROTO_API size_t cvd_f32le_find_nonfinite(const void *samples, size_t n)
{
    const uint8_t *p = samples;
    for (size_t i = 0; i < n; i++)
        if ((rd32(p + 4 * i) & 0x7f800000u) == 0x7f800000u)
            return i;
    return n;
}

/* ==== framed protocol ====================================================================== */

#define FR_HELLO_FIXED 14  /* version, role, format, rate, channels, block */
#define FR_ACCEPT_FIXED 23 /* version, format, rate, in, out, block, latency, max_message */
#define FR_DATA_FIXED 16   /* seq, first frame, dropped */
#define FR_ERR_TEXT 200    /* bytes of a decoder error message */

enum { FR_START = 0, FR_OPEN, FR_ENDED, FR_CLOSED };

struct cvd_fr_decoder {
    cvd_fr_side side;
    size_t max_message;
    uint8_t *buf; /* the message being assembled: type + payload (max_message bytes) */
    uint8_t hdr[4];
    size_t hdr_have; /* bytes of the length field read (4: reading the body) */
    size_t need;     /* the length field */
    size_t have;     /* body bytes in buf */
    int state;
    int role;        /* server side: the HELLO's */
    int data_format; /* DATA layout; frame_bytes 0 = not known yet */
    int data_channels;
    size_t frame_bytes;
    int data_seen;
    uint32_t next_seq;
    uint64_t next_frame;
    int failed; /* the ERROR code of the failure; 0 while healthy */
    cvd_err fail;
    char str[2][CVD_FR_MAX_STRING + 1];
};

CVD_PROTO_API const char *cvd_fr_type_name(int type)
{
    static const char *const names[] = {"unknown", "HELLO", "ACCEPT", "DATA", "END",
                                        "PING",    "PONG",  "ERROR",  "BYE"};
    return type >= CVD_FR_HELLO && type <= CVD_FR_BYE ? names[type] : names[0];
}

CVD_PROTO_API const char *cvd_fr_error_name(int code)
{
    static const char *const names[] = {"unknown",        "bad_message", "unsupported_version",
                                        "unknown_model",  "bad_format",  "nonfinite",
                                        "too_large",      "timeout",     "busy",
                                        "unknown_stream", "internal",    "shutting_down"};
    return code >= 1 && code <= CVD_FR_E_SHUTTING_DOWN ? names[code] : names[0];
}

/* Length of the valid UTF-8 sequence at s[0..n) (n >= 1), or 0 if it is not one. NUL is not
 * accepted. */
CVD_PROTO_HELPER size_t utf8_seq(const uint8_t *s, size_t n)
{
    uint32_t c;
    size_t k;
    if (s[0] == 0)
        return 0;
    if (s[0] < 0x80)
        return 1;
    if (s[0] >= 0xc2 && s[0] <= 0xdf)
        k = 2, c = s[0] & 0x1fu;
    else if (s[0] >= 0xe0 && s[0] <= 0xef)
        k = 3, c = s[0] & 0x0fu;
    else if (s[0] >= 0xf0 && s[0] <= 0xf4)
        k = 4, c = s[0] & 0x07u;
    else
        return 0;
    if (n < k)
        return 0;
    for (size_t i = 1; i < k; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        c = c << 6 | (s[i] & 0x3fu);
    }
    if ((k == 3 && (c < 0x800 || (c >= 0xd800 && c <= 0xdfff))) ||
        (k == 4 && (c < 0x10000 || c > 0x10ffff)))
        return 0;
    return k;
}

/* Offset of the first byte that is not valid UTF-8 (or NUL) in s[0..n), or n. */
CVD_PROTO_HELPER size_t utf8_check(const uint8_t *s, size_t n)
{
    size_t i = 0, k;
    while (i < n) {
        if ((k = utf8_seq(s + i, n - i)) == 0)
            return i;
        i += k;
    }
    return n;
}

static int fr_fail(cvd_fr_decoder *d, int code, cvd_err *err, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5), unused))
#endif
    ;

static int fr_fail(cvd_fr_decoder *d, int code, cvd_err *err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    d->fail.code = CVD_EFORMAT;
    vsnprintf(d->fail.msg, sizeof d->fail.msg, fmt, ap);
    va_end(ap);
    d->failed = code;
    if (err)
        *err = d->fail;
    return CVD_EFORMAT;
}

CVD_PROTO_HELPER int fr_check_max(size_t max_message, cvd_err *err)
{
    if (max_message < CVD_FR_MIN_MESSAGE || max_message > CVD_FR_MAX_MESSAGE_LIMIT)
        return cvd_err_set(err, CVD_EINVAL, "max_message %zu: must be from %u to %u bytes",
                           max_message, (unsigned)CVD_FR_MIN_MESSAGE,
                           (unsigned)CVD_FR_MAX_MESSAGE_LIMIT);
    return 0;
}

CVD_PROTO_API void cvd_fr_decoder_reset(cvd_fr_decoder *d)
{
    d->hdr_have = d->need = d->have = 0;
    d->state = FR_START;
    d->role = CVD_ROLE_PROCESS;
    d->data_format = 0;
    d->data_channels = 0;
    d->frame_bytes = 0;
    d->data_seen = 0;
    d->next_seq = 0;
    d->next_frame = 0;
    d->failed = 0;
    memset(&d->fail, 0, sizeof d->fail);
    d->str[0][0] = d->str[1][0] = '\0';
}

CVD_PROTO_API int cvd_fr_decoder_create(cvd_fr_side side, size_t max_message, cvd_fr_decoder **out,
                                        cvd_err *err)
{
    cvd_fr_decoder *d;
    int rc;
    *out = NULL;
    if (max_message == 0)
        max_message = CVD_FR_DEFAULT_MAX_MESSAGE;
    if ((rc = fr_check_max(max_message, err)) < 0)
        return rc;
    if (side != CVD_FR_SERVER && side != CVD_FR_CLIENT)
        return cvd_err_set(err, CVD_EINVAL, "side %d: must be CVD_FR_SERVER or CVD_FR_CLIENT",
                           (int)side);
    d = calloc(1, sizeof *d);
    if (d == NULL || (d->buf = malloc(max_message)) == NULL) {
        free(d);
        return cvd_err_set(err, CVD_ENOMEM, "framed decoder: out of memory (%zu bytes)",
                           max_message);
    }
    d->side = side;
    d->max_message = max_message;
    cvd_fr_decoder_reset(d);
    *out = d;
    return 0;
}

CVD_PROTO_API void cvd_fr_decoder_destroy(cvd_fr_decoder *d)
{
    if (d) {
        free(d->buf);
        free(d);
    }
}

CVD_PROTO_API size_t cvd_fr_decoder_max_message(const cvd_fr_decoder *d)
{
    return d->max_message;
}

CVD_PROTO_API int cvd_fr_decoder_set_max_message(cvd_fr_decoder *d, size_t max_message,
                                                 cvd_err *err)
{
    uint8_t *nb;
    int rc;
    if ((rc = fr_check_max(max_message, err)) < 0)
        return rc;
    if (d->hdr_have != 0)
        return cvd_err_set(err, CVD_ESTATE, "max_message can change only between messages");
    if (max_message == d->max_message)
        return 0;
    nb = realloc(d->buf, max_message);
    if (nb == NULL)
        return cvd_err_set(err, CVD_ENOMEM, "framed decoder: out of memory (%zu bytes)",
                           max_message);
    d->buf = nb;
    d->max_message = max_message;
    return 0;
}

CVD_PROTO_API int cvd_fr_decoder_set_data_layout(cvd_fr_decoder *d, int format, int channels,
                                                 cvd_err *err)
{
    if (cvd_sample_bytes(format) == 0)
        return cvd_err_set(err, CVD_EINVAL, "sample format %d: must be 1 (f32le) or 2 (s16le)",
                           format);
    if (channels < 1 || channels > CVD_FR_MAX_CHANNELS)
        return cvd_err_set(err, CVD_EINVAL, "channels %d: must be from 1 to %d", channels,
                           CVD_FR_MAX_CHANNELS);
    d->data_format = format;
    d->data_channels = channels;
    d->frame_bytes = cvd_sample_bytes(format) * (size_t)channels;
    return 0;
}

CVD_PROTO_API int cvd_fr_decoder_error(const cvd_fr_decoder *d)
{
    return d->failed;
}

CVD_PROTO_API size_t cvd_fr_decoder_pending(const cvd_fr_decoder *d)
{
    return d->hdr_have + d->have;
}

CVD_PROTO_API int cvd_fr_decoder_finish(const cvd_fr_decoder *d, cvd_err *err)
{
    if (d->hdr_have == 0)
        return 0;
    if (d->hdr_have < 4)
        return cvd_err_set(err, CVD_EFORMAT,
                           "the connection ended inside a message's length field (%zu of 4 "
                           "bytes)",
                           d->hdr_have);
    return cvd_err_set(err, CVD_EFORMAT,
                       "the connection ended inside a %s message (%zu of %zu bytes)",
                       cvd_fr_type_name(d->have ? d->buf[0] : 0), d->have + 4, d->need + 4);
}

/* Is a message of this type acceptable now? Checked as soon as the type byte arrives. */
static int fr_check_type(cvd_fr_decoder *d, int type, cvd_err *err)
{
    const char *name = cvd_fr_type_name(type);
    const int server = d->side == CVD_FR_SERVER;
    if (type < CVD_FR_HELLO || type > CVD_FR_BYE)
        return fr_fail(d, CVD_FR_E_BAD_MESSAGE, err,
                       "unknown message type %d (types are 1 to 8: HELLO ... BYE)", type);
    if (server && type == CVD_FR_ACCEPT)
        return fr_fail(d, CVD_FR_E_BAD_MESSAGE, err, "ACCEPT from a client (servers send it)");
    if (!server && type == CVD_FR_HELLO)
        return fr_fail(d, CVD_FR_E_BAD_MESSAGE, err, "HELLO from a server (clients send it)");
    if (d->state == FR_CLOSED)
        return fr_fail(d, CVD_FR_E_BAD_MESSAGE, err, "%s after BYE", name);
    if (d->state == FR_START) {
        if (type == CVD_FR_ERROR || type == CVD_FR_BYE || type == CVD_FR_HELLO ||
            type == CVD_FR_ACCEPT)
            return 0;
        return fr_fail(d, CVD_FR_E_BAD_MESSAGE, err,
                       server ? "%s before HELLO (a client's first message is HELLO)"
                              : "%s before ACCEPT (a server's first message is ACCEPT or "
                                "ERROR)",
                       name);
    }
    if (type == CVD_FR_HELLO || type == CVD_FR_ACCEPT)
        return fr_fail(d, CVD_FR_E_BAD_MESSAGE, err, "%s after %s", name, name);
    if (type == CVD_FR_DATA) {
        if (server && d->role == CVD_ROLE_SUBSCRIBE)
            return fr_fail(d, CVD_FR_E_BAD_MESSAGE, err,
                           "DATA from a subscriber (subscribers only receive)");
        if (d->state == FR_ENDED)
            return fr_fail(d, CVD_FR_E_BAD_MESSAGE, err, "DATA after END");
        if (d->frame_bytes == 0)
            return fr_fail(d, CVD_FR_E_BAD_MESSAGE, err,
                           "DATA before the session was accepted (wait for ACCEPT)");
    }
    if (type == CVD_FR_END && d->state == FR_ENDED)
        return fr_fail(d, CVD_FR_E_BAD_MESSAGE, err, "END after END");
    return 0;
}

/* A cursor over a payload. */
typedef struct fr_reader {
    const uint8_t *p;
    size_t n, pos;
} fr_reader;

/* Reads a string into dst (NUL-terminated); what names it in messages. */
static int fr_get_str(cvd_fr_decoder *d, fr_reader *r, char *dst, const char *msgname,
                      const char *what, cvd_err *err)
{
    size_t len, bad;
    if (r->n - r->pos < 2)
        return fr_fail(d, CVD_FR_E_BAD_MESSAGE, err,
                       "%s truncated: the %s's length is missing (payload of %zu bytes)", msgname,
                       what, r->n);
    len = rd16(r->p + r->pos);
    r->pos += 2;
    if (len > CVD_FR_MAX_STRING)
        return fr_fail(d, CVD_FR_E_BAD_MESSAGE, err, "%s: %s of %zu bytes, at most %d allowed",
                       msgname, what, len, CVD_FR_MAX_STRING);
    if (len > r->n - r->pos)
        return fr_fail(d, CVD_FR_E_BAD_MESSAGE, err,
                       "%s truncated: %s of %zu bytes, only %zu bytes left in the payload", msgname,
                       what, len, r->n - r->pos);
    if ((bad = utf8_check(r->p + r->pos, len)) != len)
        return fr_fail(d, CVD_FR_E_BAD_MESSAGE, err,
                       "%s: %s is not UTF-8 text (byte %zu is 0x%02x)", msgname, what, bad,
                       r->p[r->pos + bad]);
    memcpy(dst, r->p + r->pos, len);
    dst[len] = '\0';
    r->pos += len;
    return 0;
}

static int fr_parse(cvd_fr_decoder *d, cvd_fr_msg *msg, cvd_err *err)
{
    const int type = d->buf[0];
    const char *name = cvd_fr_type_name(type);
    fr_reader r = {d->buf + 1, d->have - 1, 0};
    const uint8_t *p = r.p;
    const size_t n = r.n;
    int rc;

    memset(msg, 0, sizeof *msg);
    msg->type = type;
    switch (type) {
    case CVD_FR_HELLO: {
        cvd_fr_hello *h = &msg->hello;
        if (n < 2)
            return fr_fail(d, CVD_FR_E_BAD_MESSAGE, err,
                           "HELLO truncated: %zu bytes of payload, at least %d expected", n,
                           FR_HELLO_FIXED + 4);
        h->version = rd16(p);
        if (h->version != CVD_FR_VERSION)
            return fr_fail(
                d, CVD_FR_E_UNSUPPORTED_VERSION, err,
                "protocol version %u is not supported; supported versions: " CVD_FR_VERSIONS_TEXT,
                (unsigned)h->version);
        if (n < FR_HELLO_FIXED + 4)
            return fr_fail(d, CVD_FR_E_BAD_MESSAGE, err,
                           "HELLO truncated: %zu bytes of payload, at least %d expected", n,
                           FR_HELLO_FIXED + 4);
        h->role = p[2];
        h->format = p[3];
        h->rate = rd32(p + 4);
        h->channels = rd16(p + 8);
        h->block = rd32(p + 10);
        r.pos = FR_HELLO_FIXED;
        if ((rc = fr_get_str(d, &r, d->str[0], "HELLO", "model name", err)) < 0 ||
            (rc = fr_get_str(d, &r, d->str[1], "HELLO", "stream name", err)) < 0)
            return rc;
        if (r.pos != n)
            return fr_fail(d, CVD_FR_E_BAD_MESSAGE, err,
                           "HELLO: %zu unexpected bytes after the stream name", n - r.pos);
        if (h->role != CVD_ROLE_PROCESS && h->role != CVD_ROLE_SUBSCRIBE)
            return fr_fail(d, CVD_FR_E_BAD_MESSAGE, err,
                           "HELLO: role %u unknown (0 process, 1 subscribe)", h->role);
        if (cvd_sample_bytes(h->format) == 0)
            return fr_fail(d, CVD_FR_E_BAD_FORMAT, err,
                           "HELLO: sample format %u unknown (1 f32le, 2 s16le)", h->format);
        if (h->role == CVD_ROLE_SUBSCRIBE && d->str[1][0] == '\0')
            return fr_fail(d, CVD_FR_E_BAD_MESSAGE, err, "HELLO: subscribe without a stream name");
        h->model = d->str[0];
        h->stream = d->str[1];
        d->role = h->role;
        d->state = FR_OPEN;
        return 1;
    }
    case CVD_FR_ACCEPT: {
        cvd_fr_accept *a = &msg->accept;
        if (n < FR_ACCEPT_FIXED + 2)
            return fr_fail(d, CVD_FR_E_BAD_MESSAGE, err,
                           "ACCEPT truncated: %zu bytes of payload, at least %d expected", n,
                           FR_ACCEPT_FIXED + 2);
        a->version = rd16(p);
        a->format = p[2];
        a->rate = rd32(p + 3);
        a->in_channels = rd16(p + 7);
        a->out_channels = rd16(p + 9);
        a->block = rd32(p + 11);
        a->latency = rd32(p + 15);
        a->max_message = rd32(p + 19);
        r.pos = FR_ACCEPT_FIXED;
        if ((rc = fr_get_str(d, &r, d->str[0], "ACCEPT", "model name", err)) < 0)
            return rc;
        if (r.pos != n)
            return fr_fail(d, CVD_FR_E_BAD_MESSAGE, err,
                           "ACCEPT: %zu unexpected bytes after the model name", n - r.pos);
        if (a->version != CVD_FR_VERSION)
            return fr_fail(d, CVD_FR_E_UNSUPPORTED_VERSION, err,
                           "ACCEPT: protocol version %u, this client speaks " CVD_FR_VERSIONS_TEXT,
                           (unsigned)a->version);
        if (cvd_sample_bytes(a->format) == 0)
            return fr_fail(d, CVD_FR_E_BAD_FORMAT, err,
                           "ACCEPT: sample format %u unknown (1 f32le, 2 s16le)", a->format);
        if (a->in_channels == 0 || a->out_channels == 0)
            return fr_fail(d, CVD_FR_E_BAD_FORMAT, err,
                           "ACCEPT: %u input and %u output channels (at least 1 each)",
                           (unsigned)a->in_channels, (unsigned)a->out_channels);
        if (a->max_message < CVD_FR_MIN_MESSAGE)
            return fr_fail(d, CVD_FR_E_BAD_MESSAGE, err,
                           "ACCEPT: max_message %u is below the minimum %d",
                           (unsigned)a->max_message, CVD_FR_MIN_MESSAGE);
        a->model = d->str[0];
        cvd_fr_decoder_set_data_layout(d, a->format, a->out_channels, NULL);
        d->state = FR_OPEN;
        return 1;
    }
    case CVD_FR_DATA: {
        cvd_fr_data *m = &msg->data;
        size_t bytes;
        uint64_t expect;
        if (n < FR_DATA_FIXED)
            return fr_fail(d, CVD_FR_E_BAD_MESSAGE, err,
                           "DATA truncated: %zu bytes of payload, at least %d expected", n,
                           FR_DATA_FIXED);
        m->seq = rd32(p);
        m->first_frame = rd64(p + 4);
        m->dropped = rd32(p + 12);
        bytes = n - FR_DATA_FIXED;
        if (bytes % d->frame_bytes != 0)
            return fr_fail(d, CVD_FR_E_BAD_MESSAGE, err,
                           "DATA: %zu bytes of samples is not a whole number of frames (%zu "
                           "bytes each: %d channel%s of %s)",
                           bytes, d->frame_bytes, d->data_channels,
                           d->data_channels == 1 ? "" : "s",
                           cvd_sample_format_name(d->data_format));
        if (d->data_seen ? m->seq != d->next_seq : m->seq != 0)
            return fr_fail(d, CVD_FR_E_BAD_MESSAGE, err, "DATA: sequence number %lu, expected %lu",
                           (unsigned long)m->seq, (unsigned long)(d->data_seen ? d->next_seq : 0));
        if (d->side == CVD_FR_SERVER && m->dropped != 0)
            return fr_fail(d, CVD_FR_E_BAD_MESSAGE, err,
                           "DATA: dropped is %lu in a client's DATA (must be 0)",
                           (unsigned long)m->dropped);
        expect = d->next_frame + m->dropped;
        if ((d->data_seen || d->side == CVD_FR_SERVER) && m->first_frame != expect)
            return fr_fail(d, CVD_FR_E_BAD_MESSAGE, err,
                           "DATA %lu: first frame %llu, expected %llu", (unsigned long)m->seq,
                           (unsigned long long)m->first_frame, (unsigned long long)expect);
        m->samples = p + FR_DATA_FIXED;
        m->bytes = bytes;
        m->n_frames = bytes / d->frame_bytes;
        d->data_seen = 1;
        d->next_seq = m->seq + 1u;
        d->next_frame = m->first_frame + m->n_frames;
        return 1;
    }
    case CVD_FR_END:
    case CVD_FR_BYE:
        if (n != 0)
            return fr_fail(d, CVD_FR_E_BAD_MESSAGE, err,
                           "%s with %zu bytes of payload (it has none)", name, n);
        d->state = type == CVD_FR_END ? FR_ENDED : FR_CLOSED;
        return 1;
    case CVD_FR_PING:
    case CVD_FR_PONG:
        if (n != 8)
            return fr_fail(d, CVD_FR_E_BAD_MESSAGE, err,
                           "%s with %zu bytes of payload (8 expected: the token)", name, n);
        msg->token = rd64(p);
        return 1;
    case CVD_FR_ERROR:
        if (n < 2)
            return fr_fail(d, CVD_FR_E_BAD_MESSAGE, err,
                           "ERROR truncated: %zu bytes of payload, at least 4 expected", n);
        msg->error.code = rd16(p);
        r.pos = 2;
        if ((rc = fr_get_str(d, &r, d->str[0], "ERROR", "text", err)) < 0)
            return rc;
        if (r.pos != n)
            return fr_fail(d, CVD_FR_E_BAD_MESSAGE, err,
                           "ERROR: %zu unexpected bytes after the text", n - r.pos);
        msg->error.text = d->str[0];
        return 1;
    default:
        return fr_fail(d, CVD_FR_E_INTERNAL, err, "internal: unchecked type %d", type);
    }
}

CVD_PROTO_API int cvd_fr_decode(cvd_fr_decoder *d, const void *data, size_t len, size_t *used,
                                cvd_fr_msg *msg, cvd_err *err)
{
    const uint8_t *in = data;
    size_t pos = 0;
    int rc;

    *used = 0;
    msg->type = 0;
    if (d->failed) {
        if (err)
            *err = d->fail;
        return CVD_EFORMAT;
    }
    while (pos < len) {
        if (d->hdr_have < 4) {
            size_t take = 4 - d->hdr_have;
            if (take > len - pos)
                take = len - pos;
            memcpy(d->hdr + d->hdr_have, in + pos, take);
            d->hdr_have += take;
            pos += take;
            if (d->hdr_have < 4)
                break;
            d->need = rd32(d->hdr);
            d->have = 0;
            if (d->need == 0) {
                *used = pos;
                return fr_fail(d, CVD_FR_E_BAD_MESSAGE, err,
                               "message length 0 (at least 1: the type)");
            }
            if (d->need > d->max_message) {
                *used = pos;
                return fr_fail(d, CVD_FR_E_TOO_LARGE, err,
                               "message of %zu bytes, larger than the limit of %zu", d->need,
                               d->max_message);
            }
            continue;
        }
        {
            size_t take = d->need - d->have;
            if (take > len - pos)
                take = len - pos;
            memcpy(d->buf + d->have, in + pos, take);
            if (d->have == 0 && (rc = fr_check_type(d, d->buf[0], err)) < 0) {
                *used = pos;
                return rc;
            }
            d->have += take;
            pos += take;
        }
        if (d->have == d->need) {
            d->hdr_have = 0;
            *used = pos;
            rc = fr_parse(d, msg, err);
            d->need = 0;
            return rc < 0 ? rc : 1;
        }
    }
    *used = pos;
    return 0;
}

/* -- encoders -- */

/* Reserves a message of `payload` bytes of payload: writes the length and type, returns where
 * the payload goes, or NULL (CVD_ERANGE set) if it does not fit. */
static uint8_t *fr_begin(cvd_bytes *b, int type, size_t payload, cvd_err *err)
{
    uint8_t *p;
    if (payload > (size_t)UINT32_MAX - 1) {
        cvd_err_set(err, CVD_ERANGE, "%s: payload of %zu bytes is too large for the protocol",
                    cvd_fr_type_name(type), payload);
        return NULL;
    }
    if (b->len > b->cap || b->cap - b->len < CVD_FR_HEADER_BYTES + payload) {
        cvd_err_set(err, CVD_ERANGE, "%s of %zu bytes: only %zu bytes left in the buffer",
                    cvd_fr_type_name(type), CVD_FR_HEADER_BYTES + payload,
                    b->len <= b->cap ? b->cap - b->len : 0);
        return NULL;
    }
    p = b->data + b->len;
    wr32(p, (uint32_t)(payload + 1));
    p[4] = (uint8_t)type;
    return p + CVD_FR_HEADER_BYTES;
}

/* A string argument's length, checked. */
static int fr_str_len(const char *s, const char *what, size_t *len, cvd_err *err)
{
    size_t n = s ? strlen(s) : 0, bad;
    if (n > CVD_FR_MAX_STRING)
        return cvd_err_set(err, CVD_EINVAL, "%s of %zu bytes: at most %d allowed", what, n,
                           CVD_FR_MAX_STRING);
    if ((bad = utf8_check((const uint8_t *)s, n)) != n)
        return cvd_err_set(err, CVD_EINVAL, "%s is not UTF-8 text (byte %zu)", what, bad);
    *len = n;
    return 0;
}

CVD_PROTO_HELPER uint8_t *fr_put_str(uint8_t *p, const char *s, size_t n)
{
    wr16(p, (uint16_t)n);
    if (n)
        memcpy(p + 2, s, n);
    return p + 2 + n;
}

CVD_PROTO_API int cvd_fr_put_hello(cvd_bytes *b, const cvd_fr_hello *h, cvd_err *err)
{
    size_t ml, sl;
    uint8_t *p;
    int rc;
    if ((rc = fr_str_len(h->model, "HELLO model name", &ml, err)) < 0 ||
        (rc = fr_str_len(h->stream, "HELLO stream name", &sl, err)) < 0)
        return rc;
    if (h->role != CVD_ROLE_PROCESS && h->role != CVD_ROLE_SUBSCRIBE)
        return cvd_err_set(err, CVD_EINVAL, "HELLO role %u: must be 0 or 1", h->role);
    if (cvd_sample_bytes(h->format) == 0)
        return cvd_err_set(err, CVD_EINVAL, "HELLO sample format %u: must be 1 or 2", h->format);
    if ((p = fr_begin(b, CVD_FR_HELLO, FR_HELLO_FIXED + 4 + ml + sl, err)) == NULL)
        return CVD_ERANGE;
    wr16(p, h->version);
    p[2] = h->role;
    p[3] = h->format;
    wr32(p + 4, h->rate);
    wr16(p + 8, h->channels);
    wr32(p + 10, h->block);
    p = fr_put_str(p + FR_HELLO_FIXED, h->model, ml);
    fr_put_str(p, h->stream, sl);
    b->len += CVD_FR_HEADER_BYTES + FR_HELLO_FIXED + 4 + ml + sl;
    return 0;
}

CVD_PROTO_API int cvd_fr_put_accept(cvd_bytes *b, const cvd_fr_accept *a, cvd_err *err)
{
    size_t ml;
    uint8_t *p;
    int rc;
    if ((rc = fr_str_len(a->model, "ACCEPT model name", &ml, err)) < 0)
        return rc;
    if (cvd_sample_bytes(a->format) == 0)
        return cvd_err_set(err, CVD_EINVAL, "ACCEPT sample format %u: must be 1 or 2", a->format);
    if (a->in_channels == 0 || a->out_channels == 0)
        return cvd_err_set(err, CVD_EINVAL, "ACCEPT channels %u -> %u: at least 1 each",
                           (unsigned)a->in_channels, (unsigned)a->out_channels);
    if ((p = fr_begin(b, CVD_FR_ACCEPT, FR_ACCEPT_FIXED + 2 + ml, err)) == NULL)
        return CVD_ERANGE;
    wr16(p, a->version);
    p[2] = a->format;
    wr32(p + 3, a->rate);
    wr16(p + 7, a->in_channels);
    wr16(p + 9, a->out_channels);
    wr32(p + 11, a->block);
    wr32(p + 15, a->latency);
    wr32(p + 19, a->max_message);
    fr_put_str(p + FR_ACCEPT_FIXED, a->model, ml);
    b->len += CVD_FR_HEADER_BYTES + FR_ACCEPT_FIXED + 2 + ml;
    return 0;
}

static uint8_t *fr_data_begin(cvd_bytes *b, uint32_t seq, uint64_t first_frame, uint32_t dropped,
                              size_t bytes, cvd_err *err)
{
    uint8_t *p = fr_begin(b, CVD_FR_DATA, FR_DATA_FIXED + bytes, err);
    if (p == NULL)
        return NULL;
    wr32(p, seq);
    wr64(p + 4, first_frame);
    wr32(p + 12, dropped);
    return p + FR_DATA_FIXED;
}

CVD_PROTO_API int cvd_fr_put_data(cvd_bytes *b, uint32_t seq, uint64_t first_frame,
                                  uint32_t dropped, int format, const float *frames,
                                  size_t n_frames, int channels, cvd_err *err)
{
    const size_t sb = cvd_sample_bytes(format);
    size_t n;
    uint8_t *p;
    if (sb == 0)
        return cvd_err_set(err, CVD_EINVAL, "DATA sample format %d: must be 1 or 2", format);
    if (channels < 1 || channels > CVD_FR_MAX_CHANNELS)
        return cvd_err_set(err, CVD_EINVAL, "DATA channels %d: must be from 1 to %d", channels,
                           CVD_FR_MAX_CHANNELS);
    if (n_frames > (SIZE_MAX / 8) / (size_t)channels)
        return cvd_err_set(err, CVD_ERANGE, "DATA of %zu frames: too large", n_frames);
    n = n_frames * (size_t)channels;
    if ((p = fr_data_begin(b, seq, first_frame, dropped, n * sb, err)) == NULL)
        return CVD_ERANGE;
    cvd_samples_encode(format, frames, n, p);
    b->len += CVD_FR_DATA_HEADER_BYTES + n * sb;
    return 0;
}

CVD_PROTO_API int cvd_fr_put_data_bytes(cvd_bytes *b, uint32_t seq, uint64_t first_frame,
                                        uint32_t dropped, const void *samples, size_t bytes,
                                        cvd_err *err)
{
    uint8_t *p = fr_data_begin(b, seq, first_frame, dropped, bytes, err);
    if (p == NULL)
        return CVD_ERANGE;
    if (bytes)
        memcpy(p, samples, bytes);
    b->len += CVD_FR_DATA_HEADER_BYTES + bytes;
    return 0;
}

static int fr_put_empty(cvd_bytes *b, int type, cvd_err *err)
{
    if (fr_begin(b, type, 0, err) == NULL)
        return CVD_ERANGE;
    b->len += CVD_FR_HEADER_BYTES;
    return 0;
}

static int fr_put_token(cvd_bytes *b, int type, uint64_t token, cvd_err *err)
{
    uint8_t *p = fr_begin(b, type, 8, err);
    if (p == NULL)
        return CVD_ERANGE;
    wr64(p, token);
    b->len += CVD_FR_HEADER_BYTES + 8;
    return 0;
}

CVD_PROTO_API int cvd_fr_put_end(cvd_bytes *b, cvd_err *err)
{
    return fr_put_empty(b, CVD_FR_END, err);
}

CVD_PROTO_API int cvd_fr_put_bye(cvd_bytes *b, cvd_err *err)
{
    return fr_put_empty(b, CVD_FR_BYE, err);
}

CVD_PROTO_API int cvd_fr_put_ping(cvd_bytes *b, uint64_t token, cvd_err *err)
{
    return fr_put_token(b, CVD_FR_PING, token, err);
}

CVD_PROTO_API int cvd_fr_put_pong(cvd_bytes *b, uint64_t token, cvd_err *err)
{
    return fr_put_token(b, CVD_FR_PONG, token, err);
}

CVD_PROTO_API int cvd_fr_put_error(cvd_bytes *b, int code, const char *text, cvd_err *err)
{
    uint8_t clean[CVD_FR_MAX_STRING];
    size_t n = 0, tl = text ? strlen(text) : 0, i = 0;
    uint8_t *p;
    if (code < 0 || code > 0xffff)
        return cvd_err_set(err, CVD_EINVAL, "ERROR code %d: must be from 0 to 65535", code);
    while (i < tl) {
        size_t k = utf8_seq((const uint8_t *)text + i, tl - i);
        if (k == 0) {
            if (n + 1 > sizeof clean)
                break;
            clean[n++] = '?';
            i++;
        } else {
            if (n + k > sizeof clean)
                break;
            memcpy(clean + n, text + i, k);
            n += k;
            i += k;
        }
    }
    if ((p = fr_begin(b, CVD_FR_ERROR, 4 + n, err)) == NULL)
        return CVD_ERANGE;
    wr16(p, (uint16_t)code);
    wr16(p + 2, (uint16_t)n);
    if (n)
        memcpy(p + 4, clean, n);
    b->len += CVD_FR_HEADER_BYTES + 4 + n;
    return 0;
}

CVD_PROTO_API size_t cvd_fr_data_size(size_t n_frames, size_t frame_bytes)
{
    return CVD_FR_DATA_HEADER_BYTES + n_frames * frame_bytes;
}

CVD_PROTO_API size_t cvd_fr_max_frames(size_t max_message, size_t frame_bytes)
{
    if (frame_bytes == 0 || max_message < 1 + FR_DATA_FIXED)
        return 0;
    return (max_message - 1 - FR_DATA_FIXED) / frame_bytes;
}

#ifndef CVD_PROTO_PRIVATE

/* ==== raw protocol ========================================================================= */

struct cvd_raw_decoder {
    int format;
    int channels;
    size_t frame_bytes;
    size_t have;       /* bytes of an incomplete frame in partial */
    uint8_t partial[]; /* frame_bytes */
};

int cvd_raw_decoder_create(cvd_sample_format format, int channels, cvd_raw_decoder **out,
                           cvd_err *err)
{
    cvd_raw_decoder *d;
    size_t sb = cvd_sample_bytes((int)format);
    *out = NULL;
    if (sb == 0)
        return cvd_err_set(err, CVD_EINVAL,
                           "raw sample format %d: must be 1 (f32le) or 2 "
                           "(s16le)",
                           (int)format);
    if (channels < 1 || channels > CVD_FR_MAX_CHANNELS)
        return cvd_err_set(err, CVD_EINVAL, "raw channels %d: must be from 1 to %d", channels,
                           CVD_FR_MAX_CHANNELS);
    d = malloc(sizeof *d + sb * (size_t)channels);
    if (d == NULL)
        return cvd_err_set(err, CVD_ENOMEM, "raw decoder: out of memory");
    d->format = (int)format;
    d->channels = channels;
    d->frame_bytes = sb * (size_t)channels;
    d->have = 0;
    *out = d;
    return 0;
}

void cvd_raw_decoder_destroy(cvd_raw_decoder *d)
{
    free(d);
}

void cvd_raw_decoder_reset(cvd_raw_decoder *d)
{
    d->have = 0;
}

size_t cvd_raw_decoder_pending(const cvd_raw_decoder *d)
{
    return d->have;
}

size_t cvd_raw_frame_bytes(const cvd_raw_decoder *d)
{
    return d->frame_bytes;
}

size_t cvd_raw_decode(cvd_raw_decoder *d, const void *data, size_t len, size_t *used, float *out,
                      size_t max_frames)
{
    const uint8_t *in = data;
    const size_t fb = d->frame_bytes, C = (size_t)d->channels;
    size_t pos = 0, nf = 0, whole;

    *used = 0;
    if (max_frames == 0)
        return 0;
    if (d->have > 0) {
        size_t take = fb - d->have;
        if (take > len)
            take = len;
        memcpy(d->partial + d->have, in, take);
        d->have += take;
        pos = take;
        if (d->have < fb) {
            *used = pos;
            return 0;
        }
        cvd_samples_decode(d->format, d->partial, C, out);
        d->have = 0;
        nf = 1;
    }
    whole = (len - pos) / fb;
    if (whole > max_frames - nf)
        whole = max_frames - nf;
    cvd_samples_decode(d->format, in + pos, whole * C, out + nf * C);
    pos += whole * fb;
    nf += whole;
    if (nf < max_frames && pos < len) { /* less than a frame left: keep it */
        memcpy(d->partial, in + pos, len - pos);
        d->have = len - pos;
        pos = len;
    }
    *used = pos;
    return nf;
}

size_t cvd_raw_encode(cvd_sample_format format, const float *frames, size_t n_frames, int channels,
                      void *out)
{
    size_t n = n_frames * (size_t)(channels > 0 ? channels : 0);
    cvd_samples_encode((int)format, frames, n, out);
    return n * cvd_sample_bytes((int)format);
}

/* ==== line protocol ======================================================================== */

static pthread_once_t c_locale_once = PTHREAD_ONCE_INIT;
static locale_t c_locale_obj;

static void c_locale_init(void)
{
    c_locale_obj = newlocale(LC_ALL_MASK, "C", (locale_t)0);
}

/* The C locale, as an object (never freed: it lives as long as the process). */
static locale_t c_locale(void)
{
    pthread_once(&c_locale_once, c_locale_init);
    return c_locale_obj;
}

#define LINE_QUOTE_MAX 32 /* bytes of a bad field quoted in an error line */

struct cvd_line_decoder {
    int channels;
    size_t max_line;
    cvd_nonfinite_policy nonfinite;
    locale_t loc;
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
    if (c_locale() == (locale_t)0)
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
    d->loc = c_locale();
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

static int parse_value_l(const char *s, float *out, locale_t loc)
{
    char *end;
    float v;
    if (s[0] == '\0' || is_space(s[0]))
        return CVD_EFORMAT;
    errno = 0;
    v = strtof_l(s, &end, loc);
    if (end == s || *end != '\0')
        return CVD_EFORMAT;
    if (errno == ERANGE && isinf(v))
        return CVD_ERANGE; /* finite text, too large for a float */
    *out = v;              /* underflow: the nearest float (0 or subnormal) */
    return 0;
}

int cvd_line_parse_value(const char *s, float *out)
{
    locale_t loc = c_locale();
    if (loc == (locale_t)0)
        return CVD_ENOMEM;
    return parse_value_l(s, out, loc);
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
            rc = parse_value_l(s + a, &v, d->loc);
            s[b] = saved;
        }
        if (rc == CVD_EFORMAT) {
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
    locale_t loc = c_locale(), old;
    size_t pos = 0, f;
    *frames_done = 0;
    if (loc == (locale_t)0)
        return CVD_ENOMEM;
    if (channels < 1)
        return CVD_EINVAL;
    old = uselocale(loc);
    for (f = 0; f < n_frames; f++) {
        size_t p = pos;
        int c;
        for (c = 0; c < channels; c++) {
            char tmp[32];
            int k =
                snprintf(tmp, sizeof tmp, "%.9g", (double)frames[f * (size_t)channels + (size_t)c]);
            if (k < 0 || (size_t)k + 1 > cap - p)
                break;
            memcpy(out + p, tmp, (size_t)k);
            p += (size_t)k;
            out[p++] = c + 1 < channels ? ',' : '\n';
        }
        if (c < channels)
            break;
        pos = p;
    }
    uselocale(old);
    *frames_done = f;
    return (long)pos;
}

size_t cvd_line_error(char *out, size_t cap, const char *code, const char *fmt, ...)
{
    va_list ap;
    locale_t loc = c_locale(), old = (locale_t)0;
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

#endif /* !CVD_PROTO_PRIVATE */
