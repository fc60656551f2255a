/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The framed protocol: an incremental decoder that checks everything docs/PROTOCOL.md
 * specifies, and one encoder per message (see convd_proto.h). Nothing here allocates after
 * cvd_fr_decoder_create, blocks, or makes a system call.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "convd_proto.h"
#include "proto_internal.h"

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
    char str[3][CVD_FR_MAX_STRING + 1];
};

const char *cvd_fr_type_name(int type)
{
    static const char *const names[] = {"unknown", "HELLO", "ACCEPT", "DATA", "END",
                                        "PING",    "PONG",  "ERROR",  "BYE"};
    return type >= CVD_FR_HELLO && type <= CVD_FR_BYE ? names[type] : names[0];
}

const char *cvd_fr_error_name(int code)
{
    static const char *const names[] = {"unknown",        "bad_message", "unsupported_version",
                                        "unknown_model",  "bad_format",  "nonfinite",
                                        "too_large",      "timeout",     "busy",
                                        "unknown_stream", "internal",    "shutting_down",
                                        "unauthorized",   "forbidden"};
    return code >= 1 && code <= CVD_FR_E_FORBIDDEN ? names[code] : names[0];
}

/* Length of the valid UTF-8 sequence at s[0..n) (n >= 1), or 0 if it is not one. NUL is not
 * accepted. */
static size_t utf8_seq(const uint8_t *s, size_t n)
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
static size_t utf8_check(const uint8_t *s, size_t n)
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

static int fr_check_max(size_t max_message, cvd_err *err)
{
    if (max_message < CVD_FR_MIN_MESSAGE || max_message > CVD_FR_MAX_MESSAGE_LIMIT)
        return cvd_err_set(err, CVD_EINVAL, "max_message %zu: must be from %u to %u bytes",
                           max_message, (unsigned)CVD_FR_MIN_MESSAGE,
                           (unsigned)CVD_FR_MAX_MESSAGE_LIMIT);
    return 0;
}

void cvd_fr_decoder_reset(cvd_fr_decoder *d)
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
    d->str[0][0] = d->str[1][0] = d->str[2][0] = '\0';
}

int cvd_fr_decoder_create(cvd_fr_side side, size_t max_message, cvd_fr_decoder **out, cvd_err *err)
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

void cvd_fr_decoder_destroy(cvd_fr_decoder *d)
{
    if (d) {
        free(d->buf);
        free(d);
    }
}

size_t cvd_fr_decoder_max_message(const cvd_fr_decoder *d)
{
    return d->max_message;
}

int cvd_fr_decoder_set_max_message(cvd_fr_decoder *d, size_t max_message, cvd_err *err)
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

int cvd_fr_decoder_set_data_layout(cvd_fr_decoder *d, int format, int channels, cvd_err *err)
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

int cvd_fr_decoder_error(const cvd_fr_decoder *d)
{
    return d->failed;
}

size_t cvd_fr_decoder_pending(const cvd_fr_decoder *d)
{
    return d->hdr_have + d->have;
}

int cvd_fr_decoder_finish(const cvd_fr_decoder *d, cvd_err *err)
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
    len = cvd__rd16(r->p + r->pos);
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
        h->version = cvd__rd16(p);
        if (h->version < CVD_FR_VERSION_MIN || h->version > CVD_FR_VERSION)
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
        h->rate = cvd__rd32(p + 4);
        h->channels = cvd__rd16(p + 8);
        h->block = cvd__rd32(p + 10);
        r.pos = FR_HELLO_FIXED;
        d->str[2][0] = '\0';
        if ((rc = fr_get_str(d, &r, d->str[0], "HELLO", "model name", err)) < 0 ||
            (rc = fr_get_str(d, &r, d->str[1], "HELLO", "stream name", err)) < 0 ||
            (h->version >= 2 && (rc = fr_get_str(d, &r, d->str[2], "HELLO", "token", err)) < 0))
            return rc;
        if (r.pos != n)
            return fr_fail(d, CVD_FR_E_BAD_MESSAGE, err, "HELLO: %zu unexpected bytes after the %s",
                           n - r.pos, h->version >= 2 ? "token" : "stream name");
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
        h->token = d->str[2];
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
        a->version = cvd__rd16(p);
        a->format = p[2];
        a->rate = cvd__rd32(p + 3);
        a->in_channels = cvd__rd16(p + 7);
        a->out_channels = cvd__rd16(p + 9);
        a->block = cvd__rd32(p + 11);
        a->latency = cvd__rd32(p + 15);
        a->max_message = cvd__rd32(p + 19);
        r.pos = FR_ACCEPT_FIXED;
        if ((rc = fr_get_str(d, &r, d->str[0], "ACCEPT", "model name", err)) < 0)
            return rc;
        if (r.pos != n)
            return fr_fail(d, CVD_FR_E_BAD_MESSAGE, err,
                           "ACCEPT: %zu unexpected bytes after the model name", n - r.pos);
        if (a->version < CVD_FR_VERSION_MIN || a->version > CVD_FR_VERSION)
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
        m->seq = cvd__rd32(p);
        m->first_frame = cvd__rd64(p + 4);
        m->dropped = cvd__rd32(p + 12);
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
        msg->token = cvd__rd64(p);
        return 1;
    case CVD_FR_ERROR:
        if (n < 2)
            return fr_fail(d, CVD_FR_E_BAD_MESSAGE, err,
                           "ERROR truncated: %zu bytes of payload, at least 4 expected", n);
        msg->error.code = cvd__rd16(p);
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

int cvd_fr_decode(cvd_fr_decoder *d, const void *data, size_t len, size_t *used, cvd_fr_msg *msg,
                  cvd_err *err)
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
            d->need = cvd__rd32(d->hdr);
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
    cvd__wr32(p, (uint32_t)(payload + 1));
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

static uint8_t *fr_put_str(uint8_t *p, const char *s, size_t n)
{
    cvd__wr16(p, (uint16_t)n);
    if (n)
        memcpy(p + 2, s, n);
    return p + 2 + n;
}

int cvd_fr_put_hello(cvd_bytes *b, const cvd_fr_hello *h, cvd_err *err)
{
    size_t ml, sl, tl = 0, tf;
    uint8_t *p;
    int rc;
    if ((rc = fr_str_len(h->model, "HELLO model name", &ml, err)) < 0 ||
        (rc = fr_str_len(h->stream, "HELLO stream name", &sl, err)) < 0 ||
        (rc = fr_str_len(h->token, "HELLO token", &tl, err)) < 0)
        return rc;
    if (h->version < CVD_FR_VERSION_MIN || h->version > CVD_FR_VERSION)
        return cvd_err_set(err, CVD_EINVAL,
                           "HELLO version %u: this code speaks " CVD_FR_VERSIONS_TEXT,
                           (unsigned)h->version);
    if (h->version < 2 && tl > 0)
        return cvd_err_set(err, CVD_EINVAL, "HELLO version %u has no token (version 2 has)",
                           (unsigned)h->version);
    tf = h->version >= 2 ? 2 + tl : 0; /* the token field */
    if (h->role != CVD_ROLE_PROCESS && h->role != CVD_ROLE_SUBSCRIBE)
        return cvd_err_set(err, CVD_EINVAL, "HELLO role %u: must be 0 or 1", h->role);
    if (cvd_sample_bytes(h->format) == 0)
        return cvd_err_set(err, CVD_EINVAL, "HELLO sample format %u: must be 1 or 2", h->format);
    if ((p = fr_begin(b, CVD_FR_HELLO, FR_HELLO_FIXED + 4 + ml + sl + tf, err)) == NULL)
        return CVD_ERANGE;
    cvd__wr16(p, h->version);
    p[2] = h->role;
    p[3] = h->format;
    cvd__wr32(p + 4, h->rate);
    cvd__wr16(p + 8, h->channels);
    cvd__wr32(p + 10, h->block);
    p = fr_put_str(p + FR_HELLO_FIXED, h->model, ml);
    p = fr_put_str(p, h->stream, sl);
    if (h->version >= 2)
        fr_put_str(p, h->token, tl);
    b->len += CVD_FR_HEADER_BYTES + FR_HELLO_FIXED + 4 + ml + sl + tf;
    return 0;
}

int cvd_fr_put_accept(cvd_bytes *b, const cvd_fr_accept *a, cvd_err *err)
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
    cvd__wr16(p, a->version);
    p[2] = a->format;
    cvd__wr32(p + 3, a->rate);
    cvd__wr16(p + 7, a->in_channels);
    cvd__wr16(p + 9, a->out_channels);
    cvd__wr32(p + 11, a->block);
    cvd__wr32(p + 15, a->latency);
    cvd__wr32(p + 19, a->max_message);
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
    cvd__wr32(p, seq);
    cvd__wr64(p + 4, first_frame);
    cvd__wr32(p + 12, dropped);
    return p + FR_DATA_FIXED;
}

int cvd_fr_put_data(cvd_bytes *b, uint32_t seq, uint64_t first_frame, uint32_t dropped, int format,
                    const float *frames, size_t n_frames, int channels, cvd_err *err)
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

int cvd_fr_put_data_bytes(cvd_bytes *b, uint32_t seq, uint64_t first_frame, uint32_t dropped,
                          const void *samples, size_t bytes, cvd_err *err)
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
    cvd__wr64(p, token);
    b->len += CVD_FR_HEADER_BYTES + 8;
    return 0;
}

int cvd_fr_put_end(cvd_bytes *b, cvd_err *err)
{
    return fr_put_empty(b, CVD_FR_END, err);
}

int cvd_fr_put_bye(cvd_bytes *b, cvd_err *err)
{
    return fr_put_empty(b, CVD_FR_BYE, err);
}

int cvd_fr_put_ping(cvd_bytes *b, uint64_t token, cvd_err *err)
{
    return fr_put_token(b, CVD_FR_PING, token, err);
}

int cvd_fr_put_pong(cvd_bytes *b, uint64_t token, cvd_err *err)
{
    return fr_put_token(b, CVD_FR_PONG, token, err);
}

int cvd_fr_put_error(cvd_bytes *b, int code, const char *text, cvd_err *err)
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
    cvd__wr16(p, (uint16_t)code);
    cvd__wr16(p + 2, (uint16_t)n);
    if (n)
        memcpy(p + 4, clean, n);
    b->len += CVD_FR_HEADER_BYTES + 4 + n;
    return 0;
}

size_t cvd_fr_data_size(size_t n_frames, size_t frame_bytes)
{
    return CVD_FR_DATA_HEADER_BYTES + n_frames * frame_bytes;
}

size_t cvd_fr_max_frames(size_t max_message, size_t frame_bytes)
{
    if (frame_bytes == 0 || max_message < 1 + FR_DATA_FIXED)
        return 0;
    return (max_message - 1 - FR_DATA_FIXED) / frame_bytes;
}
