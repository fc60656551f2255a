/* SPDX-License-Identifier: Apache-2.0 */
/* Protocol decoders: framed (server & client side), raw, line. Each input is decoded twice,
 * once in one piece and once in pseudo-random chunks; the transcripts must match (convd_proto.h
 * promises identical results for any split). */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "convd_dsp.h"
#include "convd_proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct tr {
    uint8_t *p;
    size_t n, cap;
} tr;
static void tput(tr *t, const void *d, size_t n)
{
    if (n == 0)
        return;
    if (t->n + n > t->cap) {
        size_t c = t->cap ? t->cap * 2 : 4096;
        while (c < t->n + n)
            c *= 2;
        t->p = realloc(t->p, c);
        t->cap = c;
    }
    memcpy(t->p + t->n, d, n);
    t->n += n;
}
static void tint(tr *t, uint64_t v)
{
    tput(t, &v, 8);
}
static void tstr(tr *t, const char *s)
{
    if (!s)
        s = "(null)";
    tput(t, s, strlen(s) + 1);
}

typedef struct chunker {
    uint32_t s;
    int whole;
} chunker;
static size_t next_chunk(chunker *c, size_t left)
{
    if (c->whole)
        return left;
    c->s = c->s * 1103515245u + 12345u;
    uint32_t r = c->s >> 16;
    size_t k;
    switch (r & 3) {
    case 0:
        k = 1;
        break;
    case 1:
        k = 1 + (r >> 2) % 7;
        break;
    case 2:
        k = 1 + (r >> 2) % 64;
        break;
    default:
        k = 1 + (r >> 2) % 1024;
        break;
    }
    return k < left ? k : left;
}

/* ---- framed ---- */
static void run_fr(int side, int chan_hint, size_t maxmsg, const uint8_t *d, size_t n, chunker ck,
                   tr *t)
{
    cvd_fr_decoder *dec = NULL;
    cvd_err err = {0};
    if (cvd_fr_decoder_create(side, maxmsg, &dec, &err) != 0)
        abort();
    size_t pos = 0;
    int failed = 0;
    while (pos < n && !failed) {
        size_t len = next_chunk(&ck, n - pos);
        const uint8_t *p = d + pos;
        size_t off = 0;
        while (off < len) {
            cvd_fr_msg msg;
            size_t used = 12345678;
            int rc = cvd_fr_decode(dec, p + off, len - off, &used, &msg, &err);
            if (used > len - off) {
                fprintf(stderr, "used %zu > len %zu\n", used, len - off);
                abort();
            }
            off += used;
            if (rc < 0) {
                tint(t, 0xEEEE);
                tint(t, (uint64_t)cvd_fr_decoder_error(dec));
                tstr(t, err.msg);
                if (cvd_fr_decoder_error(dec) == 0) {
                    fprintf(stderr, "failed without code\n");
                    abort();
                }
                failed = 1;
                break;
            }
            if (rc == 0) {
                if (off != len) {
                    fprintf(stderr, "rc 0 but not all used\n");
                    abort();
                }
                break;
            }
            if (used == 0) {
                fprintf(stderr, "message with used == 0\n");
                abort();
            }
            tint(t, (uint64_t)msg.type);
            switch (msg.type) {
            case CVD_FR_HELLO: {
                cvd_fr_hello *h = &msg.hello;
                tint(t, h->version);
                tint(t, h->role);
                tint(t, h->format);
                tint(t, h->rate);
                tint(t, h->channels);
                tint(t, h->block);
                tstr(t, h->model);
                tstr(t, h->stream);
                if (strlen(h->model) > CVD_FR_MAX_STRING || strlen(h->stream) > CVD_FR_MAX_STRING)
                    abort();
                int ch = h->channels ? h->channels : chan_hint;
                if (h->role == CVD_ROLE_PROCESS &&
                    cvd_fr_decoder_set_data_layout(dec, h->format, ch, &err) != 0) {
                    fprintf(stderr, "set_data_layout refused a decoded HELLO: %s\n", err.msg);
                    abort();
                }
                break;
            }
            case CVD_FR_ACCEPT: {
                cvd_fr_accept *a = &msg.accept;
                tint(t, a->version);
                tint(t, a->format);
                tint(t, a->rate);
                tint(t, a->in_channels);
                tint(t, a->out_channels);
                tint(t, a->block);
                tint(t, a->latency);
                tint(t, a->max_message);
                tstr(t, a->model);
                size_t mm = a->max_message;
                if (mm < CVD_FR_MIN_MESSAGE)
                    mm = CVD_FR_MIN_MESSAGE;
                if (mm > (1u << 20))
                    mm = 1u << 20; /* keep memory small */
                if (cvd_fr_decoder_set_max_message(dec, mm, &err) != 0) {
                    fprintf(stderr, "set_max_message after ACCEPT: %s\n", err.msg);
                    abort();
                }
                break;
            }
            case CVD_FR_DATA: {
                cvd_fr_data *m = &msg.data;
                tint(t, m->seq);
                tint(t, m->first_frame);
                tint(t, m->dropped);
                tint(t, m->n_frames);
                tint(t, m->bytes);
                tput(t, m->samples, m->bytes);
                break;
            }
            case CVD_FR_ERROR:
                tint(t, msg.error.code);
                tstr(t, msg.error.text);
                break;
            case CVD_FR_PING:
            case CVD_FR_PONG:
                tint(t, msg.token);
                break;
            case CVD_FR_END:
            case CVD_FR_BYE:
                break;
            default:
                fprintf(stderr, "unexpected type %d\n", msg.type);
                abort();
            }
        }
        pos += len;
    }
    if (!failed) {
        int rc = cvd_fr_decoder_finish(dec, &err);
        tint(t, 0xF1F1);
        tint(t, (uint64_t)(int64_t)rc);
        tint(t, cvd_fr_decoder_pending(dec));
    }
    cvd_fr_decoder_destroy(dec);
}

/* ---- raw ---- */
static void run_raw(int fmt, int ch, size_t maxf, const uint8_t *d, size_t n, chunker ck, tr *t)
{
    cvd_raw_decoder *dec = NULL;
    cvd_err err = {0};
    if (cvd_raw_decoder_create(fmt, ch, &dec, &err) != 0)
        abort();
    float *out = malloc(sizeof(float) * maxf * (size_t)ch);
    size_t pos = 0;
    while (pos < n) {
        size_t len = next_chunk(&ck, n - pos);
        size_t off = 0;
        while (off < len) {
            size_t used = 999999;
            size_t nf = cvd_raw_decode(dec, d + pos + off, len - off, &used, out, maxf);
            if (nf > maxf || used > len - off)
                abort();
            if (nf == 0 && used == 0) {
                fprintf(stderr, "raw: no progress\n");
                abort();
            }
            tput(t, out, nf * (size_t)ch * sizeof(float));
            off += used;
        }
        pos += len;
    }
    tint(t, cvd_raw_decoder_pending(dec));
    if (cvd_raw_decoder_pending(dec) != n % cvd_raw_frame_bytes(dec)) {
        fprintf(stderr, "raw pending %zu, expected %zu\n", cvd_raw_decoder_pending(dec),
                n % cvd_raw_frame_bytes(dec));
        abort();
    }
    free(out);
    cvd_raw_decoder_destroy(dec);
}

/* ---- line ---- */
static void run_line(int ch, size_t max_line, int policy, size_t maxf, const uint8_t *d, size_t n,
                     chunker ck, tr *t)
{
    cvd_line_decoder *dec = NULL;
    cvd_err err = {0};
    if (cvd_line_decoder_create(ch, max_line, policy, &dec, &err) != 0)
        abort();
    float *out = malloc(sizeof(float) * maxf * (size_t)ch);
    size_t pos = 0;
    while (pos < n) {
        size_t len = next_chunk(&ck, n - pos);
        size_t off = 0;
        while (off < len) {
            cvd_line_result res;
            memset(&res, 0xAB, sizeof res);
            cvd_line_decode(dec, d + pos + off, len - off, out, maxf, &res);
            if (res.frames > maxf || res.used > len - off)
                abort();
            if (res.used == 0 && res.frames == 0 && !res.error) {
                fprintf(stderr, "line: no progress\n");
                abort();
            }
            tput(t, out, res.frames * (size_t)ch * sizeof(float));
            if (res.error) {
                if (res.error_line == NULL || strlen(res.error_line) != res.error_len ||
                    res.error_len == 0 || res.error_line[res.error_len - 1] != '\n' ||
                    res.error_len > CVD_LINE_ERROR_MAX) {
                    fprintf(stderr, "bad error line\n");
                    abort();
                }
                tstr(t, res.error_line);
            }
            off += res.used;
        }
        pos += len;
    }
    cvd_line_result res;
    cvd_line_finish(dec, out, &res);
    if (res.frames > 1)
        abort();
    tput(t, out, res.frames * (size_t)ch * sizeof(float));
    if (res.error)
        tstr(t, res.error_line);
    tint(t, cvd_line_number(dec));
    free(out);
    cvd_line_decoder_destroy(dec);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 4)
        return 0;
    const int mode = data[0] & 3;
    const int ch = 1 + (data[1] % 8);
    const uint8_t b2 = data[2];
    const uint32_t seed = data[3] | (size > 4 ? (uint32_t)data[4] << 8 : 0);
    data += 4;
    size -= 4;
    tr a = {0}, b = {0};
    chunker whole = {0, 1}, rnd = {seed * 2654435761u + 1, 0};
    switch (mode) {
    case 0:
    case 1: {
        size_t mm = (b2 & 1) ? CVD_FR_MIN_MESSAGE : 4096;
        run_fr(mode, ch, mm, data, size, whole, &a);
        run_fr(mode, ch, mm, data, size, rnd, &b);
        break;
    }
    case 2: {
        int fmt = (b2 & 1) ? CVD_FMT_S16LE : CVD_FMT_F32LE;
        size_t maxf = 1 + ((b2 >> 1) & 7);
        run_raw(fmt, ch, maxf, data, size, whole, &a);
        run_raw(fmt, ch, maxf, data, size, rnd, &b);
        break;
    }
    default: {
        int policy = b2 & 1;
        size_t maxf = 1 + ((b2 >> 1) & 3);
        size_t max_line = (b2 >> 3) == 0 ? 0 : (size_t)(b2 >> 3) * 3; /* 0 = default 64K */
        run_line(ch, max_line, policy, maxf, data, size, whole, &a);
        run_line(ch, max_line, policy, maxf, data, size, rnd, &b);
        break;
    }
    }
    if (a.n != b.n || memcmp(a.p, b.p, a.n) != 0) {
        fprintf(
            stderr,
            "mode %d: transcript differs between whole and chunked decoding (%zu vs %zu bytes)\n",
            mode, a.n, b.n);
        size_t i = 0;
        while (i < a.n && i < b.n && a.p[i] == b.p[i])
            i++;
        fprintf(stderr, "first difference at byte %zu\n", i);
        abort();
    }
    free(a.p);
    free(b.p);
    return 0;
}
