/*
 * The wire protocols (server/protocol.h) and the client library (client/convd_client.h).
 *
 *   samples  s16 edge cases (-1, 1, clipping, rounding), f32 bit-exactness, NaN/Inf checks
 *   framed   round trips, every malformed input class, every split of a byte stream into 1..N
 *            byte reads and random splits giving identical results, mutation fuzzing, no
 *            allocation per message, the hex dump of docs/PROTOCOL.md
 *   raw      partial frames across reads
 *   line     CRLF, blanks, comments, empty lines, errors and their texts, huge lines, NaN/Inf
 *            policy, locale independence, splits
 *   client   a loopback against a small server thread speaking the framed protocol
 *
 * Randomised tests print their seed on failure; rerun with CVD_SEED=<seed>.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdarg.h>
#include <locale.h>
#include <math.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "alloc_count.h"
#include "convd_client.h"
#include "protocol.h"
#include "testutil.h"

/* ---- a growable byte vector --------------------------------------------------------------- */

typedef struct vbuf {
    uint8_t *p;
    size_t n, cap;
} vbuf;

static void vb_add(vbuf *v, const void *data, size_t n)
{
    if (v->n + n > v->cap) {
        size_t c = v->cap ? v->cap : 256;
        while (c < v->n + n)
            c *= 2;
        v->p = realloc(v->p, c);
        cr_assert_not_null(v->p);
        v->cap = c;
    }
    if (data != NULL && n > 0)
        memcpy(v->p + v->n, data, n);
    v->n += n;
}

static void vb_printf(vbuf *v, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void vb_printf(vbuf *v, const char *fmt, ...)
{
    char tmp[2048];
    va_list ap;
    int n;
    va_start(ap, fmt);
    n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    vb_add(v, tmp, (size_t)(n < (int)sizeof tmp ? n : (int)sizeof tmp - 1));
}

static void vb_free(vbuf *v)
{
    free(v->p);
    memset(v, 0, sizeof *v);
}

/* A cvd_bytes over a vbuf's spare room (at least `room` bytes). */
static cvd_bytes vb_bytes(vbuf *v, size_t room)
{
    cvd_bytes b;
    if (v->cap - v->n < room) {
        size_t keep = v->n;
        vb_add(v, NULL, room);
        v->n = keep;
    }
    b.data = v->p;
    b.len = v->n;
    b.cap = v->cap;
    return b;
}

static uint32_t f2u(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static float u2f(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* ==== samples ============================================================================== */

Test(proto_samples, s16_edges)
{
    struct {
        float in;
        int out;
    } cases[] = {
        {0.0f, 0},
        {-0.0f, 0},
        {-1.0f, -32768},
        {1.0f, 32767},
        {32767.0f / 32768.0f, 32767},
        {32766.5f / 32768.0f, 32767}, /* a tie: away from zero */
        {-32767.5f / 32768.0f, -32768},
        {2.0f, 32767},
        {-2.0f, -32768},
        {1e30f, 32767},
        {-1e30f, -32768},
        {0.5f / 32768.0f, 1}, /* ties away from zero, not to even */
        {-0.5f / 32768.0f, -1},
        {1.5f / 32768.0f, 2},
        {2.5f / 32768.0f, 3},
        {-2.5f / 32768.0f, -3},
        {0.49999997f / 32768.0f, 0},
        {0.50000006f / 32768.0f, 1},
        {0.75f / 32768.0f, 1},
        {1e-45f, 0},
        {-1e-45f, 0},
        {0.5f, 16384},
        {-0.5f, -16384},
        {0.25f + 0.5f / 32768.0f, 8193},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        cr_assert_eq(cvd_s16_from_float(cases[i].in), cases[i].out,
                     "case %zu: %.9g -> %d, expected %d", i, (double)cases[i].in,
                     cvd_s16_from_float(cases[i].in), cases[i].out);
    cr_assert_eq(cvd_s16_from_float(INFINITY), 32767);
    cr_assert_eq(cvd_s16_from_float(-INFINITY), -32768);
    cr_assert_eq(cvd_s16_from_float(NAN), 0);
    cr_assert_eq(cvd_s16_to_float(-32768), -1.0f);
    cr_assert_eq(cvd_s16_to_float(32767), 32767.0f / 32768.0f);
    cr_assert_eq(cvd_s16_to_float(1), 1.0f / 32768.0f);
}

Test(proto_samples, s16_every_value_round_trips)
{
    uint8_t in[2], out[2];
    float f;
    for (int v = -32768; v <= 32767; v++) {
        in[0] = (uint8_t)(v & 0xff);
        in[1] = (uint8_t)((v >> 8) & 0xff);
        cvd_samples_decode(CVD_FMT_S16LE, in, 1, &f);
        cr_assert_eq(f, (float)v / 32768.0f);
        cvd_samples_encode(CVD_FMT_S16LE, &f, 1, out);
        cr_assert(out[0] == in[0] && out[1] == in[1], "s16 %d does not round-trip", v);
    }
}

Test(proto_samples, s16_matches_the_rule_on_random_floats)
{
    const uint64_t seed = tu_seed();
    cvd_rng r;
    cvd_rng_seed(&r, seed);
    for (int i = 0; i < 200000; i++) {
        float y = (float)(cvd_rng_uniform(&r) * 2.4 - 1.2);
        double c = y < -1.0 ? -1.0 : y > 32767.0 / 32768.0 ? 32767.0 / 32768.0 : y;
        long want = lround(c * 32768.0); /* C's round: halves away from zero */
        cr_assert_eq(cvd_s16_from_float(y), want, "seed %llu: %.9g", (unsigned long long)seed,
                     (double)y);
    }
}

Test(proto_samples, f32le_layout_and_bit_exact)
{
    const uint32_t bits[] = {0x3f800000u, 0x80000000u, 0x00000001u, 0x7f800000u,
                             0xff800000u, 0x7fc00001u, 0xffbfffffu, 0x12345678u};
    uint8_t wire[4 * 8];
    float f[8], back[8];
    for (int i = 0; i < 8; i++)
        f[i] = u2f(bits[i]);
    cvd_samples_encode(CVD_FMT_F32LE, f, 8, wire);
    cr_assert(wire[0] == 0x00 && wire[1] == 0x00 && wire[2] == 0x80 && wire[3] == 0x3f,
              "1.0f is 00 00 80 3f little-endian");
    cr_assert(wire[28] == 0x78 && wire[31] == 0x12);
    cvd_samples_decode(CVD_FMT_F32LE, wire, 8, back);
    for (int i = 0; i < 8; i++)
        cr_assert_eq(f2u(back[i]), bits[i], "sample %d: bits %08x", i, f2u(back[i]));
    /* unaligned buffers */
    uint8_t odd[33];
    cvd_samples_encode(CVD_FMT_F32LE, f, 8, odd + 1);
    cr_assert_eq(memcmp(odd + 1, wire, 32), 0);
    cvd_samples_decode(CVD_FMT_F32LE, odd + 1, 8, back);
    cr_assert_eq(f2u(back[7]), bits[7]);
}

Test(proto_samples, nonfinite_search)
{
    float x[5] = {0, 1, -2, 3e38f, 1e-45f};
    uint8_t w[20];
    cr_assert_eq(cvd_find_nonfinite(x, 5), 5);
    x[3] = NAN;
    cr_assert_eq(cvd_find_nonfinite(x, 5), 3);
    x[1] = -INFINITY;
    cr_assert_eq(cvd_find_nonfinite(x, 5), 1);
    cvd_samples_encode(CVD_FMT_F32LE, x, 5, w);
    cr_assert_eq(cvd_f32le_find_nonfinite(w, 5), 1);
    cr_assert_eq(cvd_f32le_find_nonfinite(w, 1), 1);
}

Test(proto_samples, format_names)
{
    cvd_sample_format f;
    cr_assert_eq(cvd_sample_format_parse("F32", &f), 0);
    cr_assert_eq(f, CVD_FMT_F32LE);
    cr_assert_eq(cvd_sample_format_parse("s16le", &f), 0);
    cr_assert_eq(f, CVD_FMT_S16LE);
    cr_assert_eq(cvd_sample_format_parse("u8", &f), CVD_EINVAL);
    cr_assert_str_eq(cvd_sample_format_name(CVD_FMT_S16LE), "s16le");
    cr_assert_eq(cvd_sample_bytes(CVD_FMT_F32LE), 4);
    cr_assert_eq(cvd_sample_bytes(CVD_FMT_S16LE), 2);
    cr_assert_eq(cvd_sample_bytes(0), 0);
    cr_assert_eq(cvd_sample_bytes(3), 0);
}

/* ==== framed: helpers ====================================================================== */

/* Appends a decoded message to v in canonical form: re-encoded. */
static void canon(vbuf *v, const cvd_fr_msg *m)
{
    cvd_bytes b =
        vb_bytes(v, 2 * CVD_FR_MAX_STRING + 64 + (m->type == CVD_FR_DATA ? m->data.bytes : 0));
    int rc = -1;
    switch (m->type) {
    case CVD_FR_HELLO:
        rc = cvd_fr_put_hello(&b, &m->hello, NULL);
        break;
    case CVD_FR_ACCEPT:
        rc = cvd_fr_put_accept(&b, &m->accept, NULL);
        break;
    case CVD_FR_DATA:
        rc = cvd_fr_put_data_bytes(&b, m->data.seq, m->data.first_frame, m->data.dropped,
                                   m->data.samples, m->data.bytes, NULL);
        break;
    case CVD_FR_END:
        rc = cvd_fr_put_end(&b, NULL);
        break;
    case CVD_FR_BYE:
        rc = cvd_fr_put_bye(&b, NULL);
        break;
    case CVD_FR_PING:
        rc = cvd_fr_put_ping(&b, m->token, NULL);
        break;
    case CVD_FR_PONG:
        rc = cvd_fr_put_pong(&b, m->token, NULL);
        break;
    case CVD_FR_ERROR:
        rc = cvd_fr_put_error(&b, m->error.code, m->error.text, NULL);
        break;
    }
    cr_assert_eq(rc, 0, "re-encoding a decoded %s", cvd_fr_type_name(m->type));
    v->n = b.len;
}

typedef struct split {
    cvd_rng *rng;  /* random chunk sizes (0 included) if not NULL */
    size_t chunk;  /* else this fixed size */
    size_t maxrnd; /* largest random chunk */
} split;

static size_t next_chunk(split *s)
{
    if (s->rng == NULL)
        return s->chunk;
    return (size_t)tu_randint(s->rng, s->maxrnd + 1);
}

/* Decodes s[0..n) fed in chunks; the canonical result (messages re-encoded, then a line for
 * an error: its offset, code and text, and for a truncated end) goes to out. */
static void fr_run(cvd_fr_side side, size_t max_message, const uint8_t *s, size_t n, split *sp,
                   vbuf *out)
{
    cvd_fr_decoder *d;
    size_t pos = 0;
    cvd_err e = {0};
    cr_assert_eq(cvd_fr_decoder_create(side, max_message, &d, &e), 0, "%s", e.msg);
    while (pos < n) {
        size_t k = next_chunk(sp), off = 0;
        if (k > n - pos)
            k = n - pos;
        for (;;) {
            cvd_fr_msg m;
            size_t used;
            int rc = cvd_fr_decode(d, s + pos + off, k - off, &used, &m, &e);
            cr_assert_leq(used, k - off);
            off += used;
            if (rc < 0) {
                vb_printf(out, "\nERR@%zu code %d: %s\n", pos + off, cvd_fr_decoder_error(d),
                          e.msg);
                /* sticky */
                cr_assert_eq(cvd_fr_decode(d, s, n, &used, &m, NULL), CVD_EFORMAT);
                cr_assert_eq(used, 0);
                cvd_fr_decoder_destroy(d);
                return;
            }
            if (rc == 0) {
                cr_assert_eq(off, k);
                break;
            }
            canon(out, &m);
            if (side == CVD_FR_SERVER && m.type == CVD_FR_HELLO && m.hello.role == CVD_ROLE_PROCESS)
                cr_assert_eq(cvd_fr_decoder_set_data_layout(
                                 d, m.hello.format, m.hello.channels ? m.hello.channels : 1, NULL),
                             0);
        }
        pos += k;
    }
    if (cvd_fr_decoder_finish(d, &e) < 0)
        vb_printf(out, "\nEOF: %s\n", e.msg);
    cvd_fr_decoder_destroy(d);
}

/* Decodes expecting an error; returns the ERROR code and copies the text. */
static int fr_expect_error(cvd_fr_side side, const uint8_t *s, size_t n, char *text,
                           size_t text_cap)
{
    vbuf out = {0};
    split sp = {NULL, n ? n : 1, 0};
    const char *e;
    int code = 0;
    fr_run(side, 0, s, n, &sp, &out);
    vb_add(&out, "", 1);
    e = memmem(out.p, out.n, "\nERR@", 5); /* out holds binary messages first */
    cr_assert_not_null(e, "no error decoding %zu bytes", n);
    e = strstr(e, "code ");
    code = atoi(e + 5);
    e = strchr(e, ':') + 2;
    snprintf(text, text_cap, "%s", e);
    if (strchr(text, '\n'))
        *strchr(text, '\n') = '\0';
    vb_free(&out);
    return code;
}

static void put_ok(int rc, const cvd_err *e)
{
    cr_assert_eq(rc, 0, "encoding: %s", e->msg);
}

/* A client's session: HELLO (f32le, channels ch), DATA x3, PING, PONG, END, BYE. */
static void client_stream(vbuf *v, int format, int ch, cvd_rng *r)
{
    cvd_fr_hello h = {.version = CVD_FR_VERSION,
                      .role = CVD_ROLE_PROCESS,
                      .format = (uint8_t)format,
                      .rate = 48000,
                      .channels = (uint16_t)ch,
                      .block = 64,
                      .model = "amp \xc3\xa9t\xc3\xa9",
                      .stream = "room-1"};
    cvd_err e = {0};
    cvd_bytes b = vb_bytes(v, 4096);
    uint64_t first = 0;
    put_ok(cvd_fr_put_hello(&b, &h, &e), &e);
    v->n = b.len;
    for (uint32_t seq = 0; seq < 3; seq++) {
        size_t nf = seq == 1 ? 0 : 1 + (size_t)tu_randint(r, 40);
        float x[41 * 8];
        for (size_t i = 0; i < nf * (size_t)ch; i++)
            x[i] = (float)(cvd_rng_uniform(r) * 2 - 1);
        b = vb_bytes(v, 4096);
        put_ok(cvd_fr_put_data(&b, seq, first, 0, format, x, nf, ch, &e), &e);
        v->n = b.len;
        first += nf;
    }
    b = vb_bytes(v, 4096);
    put_ok(cvd_fr_put_ping(&b, 0x0102030405060708u, &e), &e);
    put_ok(cvd_fr_put_pong(&b, 42, &e), &e);
    put_ok(cvd_fr_put_end(&b, &e), &e);
    put_ok(cvd_fr_put_ping(&b, 7, &e), &e);
    put_ok(cvd_fr_put_bye(&b, &e), &e);
    v->n = b.len;
}

/* A server's answer to a subscriber: ACCEPT, DATA (with a drop), PING, ERROR, END, BYE. */
static void server_stream(vbuf *v, cvd_rng *r)
{
    cvd_fr_accept a = {CVD_FR_VERSION, CVD_FMT_S16LE, 44100, 1, 2, 128, 17, 1 << 20, "nam/amp"};
    cvd_err e = {0};
    cvd_bytes b = vb_bytes(v, 4096);
    uint64_t first = 1000;
    put_ok(cvd_fr_put_accept(&b, &a, &e), &e);
    v->n = b.len;
    for (uint32_t seq = 0; seq < 4; seq++) {
        size_t nf = 1 + (size_t)tu_randint(r, 30);
        uint32_t dropped = seq == 2 ? 77 : 0;
        float x[31 * 2];
        for (size_t i = 0; i < nf * 2; i++)
            x[i] = (float)(cvd_rng_uniform(r) * 2 - 1);
        first += dropped;
        b = vb_bytes(v, 4096);
        put_ok(cvd_fr_put_data(&b, seq, first, dropped, CVD_FMT_S16LE, x, nf, 2, &e), &e);
        v->n = b.len;
        first += nf;
    }
    b = vb_bytes(v, 4096);
    put_ok(cvd_fr_put_ping(&b, 99, &e), &e);
    put_ok(cvd_fr_put_error(&b, CVD_FR_E_TIMEOUT, "slow reader", &e), &e);
    put_ok(cvd_fr_put_end(&b, &e), &e);
    put_ok(cvd_fr_put_bye(&b, &e), &e);
    v->n = b.len;
}

/* ==== framed: round trips ================================================================== */

Test(proto_framed, round_trip_every_message)
{
    vbuf v = {0};
    cvd_fr_decoder *d;
    cvd_fr_msg m;
    cvd_err e = {0};
    size_t used, pos = 0;
    const float x[4] = {0.5f, -0.25f, 1e-3f, -1.0f};
    cvd_bytes b = vb_bytes(&v, 4096);
    cvd_fr_hello h = {1, CVD_ROLE_PROCESS, CVD_FMT_F32LE, 96000, 2, 256, "", "pub"};

    put_ok(cvd_fr_put_hello(&b, &h, &e), &e);
    put_ok(cvd_fr_put_data(&b, 0, 0, 0, CVD_FMT_F32LE, x, 2, 2, &e), &e);
    put_ok(cvd_fr_put_ping(&b, UINT64_MAX, &e), &e);
    put_ok(cvd_fr_put_error(&b, 65535, "odd", &e), &e);
    put_ok(cvd_fr_put_end(&b, &e), &e);
    v.n = b.len;
    cr_assert_eq(cvd_fr_decoder_create(CVD_FR_SERVER, 0, &d, &e), 0);
    cr_assert_eq(cvd_fr_decoder_max_message(d), CVD_FR_DEFAULT_MAX_MESSAGE);

    cr_assert_eq(cvd_fr_decode(d, v.p, v.n, &used, &m, &e), 1);
    pos += used;
    cr_assert_eq(m.type, CVD_FR_HELLO);
    cr_assert_eq(m.hello.version, 1);
    cr_assert_eq(m.hello.role, CVD_ROLE_PROCESS);
    cr_assert_eq(m.hello.format, CVD_FMT_F32LE);
    cr_assert_eq(m.hello.rate, 96000);
    cr_assert_eq(m.hello.channels, 2);
    cr_assert_eq(m.hello.block, 256);
    cr_assert_str_eq(m.hello.model, "");
    cr_assert_str_eq(m.hello.stream, "pub");
    cr_assert_eq(used, 5 + 14 + 2 + 2 + 3);

    /* DATA before the server accepted */
    {
        cvd_fr_decoder *d2;
        cvd_fr_msg m2;
        size_t u2;
        cr_assert_eq(cvd_fr_decoder_create(CVD_FR_SERVER, 0, &d2, &e), 0);
        cr_assert_eq(cvd_fr_decode(d2, v.p, v.n, &u2, &m2, &e), 1);
        cr_assert_eq(cvd_fr_decode(d2, v.p + u2, v.n - u2, &u2, &m2, &e), CVD_EFORMAT);
        cr_assert(strstr(e.msg, "DATA before the session was accepted"), "%s", e.msg);
        cvd_fr_decoder_destroy(d2);
    }

    cr_assert_eq(cvd_fr_decoder_set_data_layout(d, CVD_FMT_F32LE, 2, &e), 0);
    cr_assert_eq(cvd_fr_decode(d, v.p + pos, v.n - pos, &used, &m, &e), 1, "%s", e.msg);
    pos += used;
    cr_assert_eq(m.type, CVD_FR_DATA);
    cr_assert_eq(m.data.n_frames, 2);
    cr_assert_eq(m.data.bytes, 16);
    {
        float y[4];
        cvd_samples_decode(CVD_FMT_F32LE, m.data.samples, 4, y);
        cr_assert_eq(memcmp(x, y, sizeof x), 0);
    }
    cr_assert_eq(cvd_fr_decode(d, v.p + pos, v.n - pos, &used, &m, &e), 1);
    pos += used;
    cr_assert_eq(m.type, CVD_FR_PING);
    cr_assert_eq(m.token, UINT64_MAX);
    cr_assert_eq(cvd_fr_decode(d, v.p + pos, v.n - pos, &used, &m, &e), 1);
    pos += used;
    cr_assert_eq(m.type, CVD_FR_ERROR);
    cr_assert_eq(m.error.code, 65535);
    cr_assert_str_eq(m.error.text, "odd");
    cr_assert_eq(cvd_fr_decode(d, v.p + pos, v.n - pos, &used, &m, &e), 1);
    pos += used;
    cr_assert_eq(m.type, CVD_FR_END);
    cr_assert_eq(pos, v.n);
    cr_assert_eq(cvd_fr_decode(d, v.p + pos, 0, &used, &m, &e), 0);
    cr_assert_eq(cvd_fr_decoder_finish(d, &e), 0);
    cvd_fr_decoder_destroy(d);
    vb_free(&v);
}

Test(proto_framed, round_trip_client_side)
{
    vbuf v = {0}, out = {0};
    cvd_rng r;
    split sp = {NULL, 1 << 30, 0};
    cvd_rng_seed(&r, tu_seed());
    server_stream(&v, &r);
    fr_run(CVD_FR_CLIENT, 0, v.p, v.n, &sp, &out);
    cr_assert_eq(out.n, v.n, "decoding then re-encoding gives the same bytes");
    cr_assert_eq(memcmp(out.p, v.p, v.n), 0);
    vb_free(&v);
    vb_free(&out);
}

/* The exchange shown in docs/PROTOCOL.md, byte for byte. */
Test(proto_framed, documented_hex_dump)
{
    static const uint8_t hello[] = {0x16, 0x00, 0x00, 0x00, 0x01, 0x01, 0x00, 0x00, 0x01,
                                    0x80, 0xbb, 0x00, 0x00, 0x01, 0x00, 0x40, 0x00, 0x00,
                                    0x00, 0x03, 0x00, 0x61, 0x6d, 0x70, 0x00, 0x00};
    static const uint8_t accept[] = {0x1d, 0x00, 0x00, 0x00, 0x02, 0x01, 0x00, 0x01, 0x80,
                                     0xbb, 0x00, 0x00, 0x01, 0x00, 0x01, 0x00, 0x40, 0x00,
                                     0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x10,
                                     0x00, 0x03, 0x00, 0x61, 0x6d, 0x70};
    static const uint8_t data[] = {0x19, 0x00, 0x00, 0x00, 0x03, 0x00, 0x00, 0x00, 0x00, 0x00,
                                   0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
                                   0x00, 0x00, 0x00, 0x00, 0x3f, 0x00, 0x00, 0x80, 0xbe};
    static const uint8_t end[] = {0x01, 0x00, 0x00, 0x00, 0x04};
    uint8_t buf[128];
    cvd_bytes b = {buf, 0, sizeof buf};
    cvd_fr_hello h = {1, CVD_ROLE_PROCESS, CVD_FMT_F32LE, 48000, 1, 64, "amp", ""};
    cvd_fr_accept a = {1, CVD_FMT_F32LE, 48000, 1, 1, 64, 2, 1u << 20, "amp"};
    const float x[2] = {0.5f, -0.25f};
    cvd_err e = {0};

    put_ok(cvd_fr_put_hello(&b, &h, &e), &e);
    cr_assert_eq(b.len, sizeof hello);
    cr_assert_eq(memcmp(buf, hello, sizeof hello), 0);
    b.len = 0;
    put_ok(cvd_fr_put_accept(&b, &a, &e), &e);
    cr_assert_eq(b.len, sizeof accept);
    cr_assert_eq(memcmp(buf, accept, sizeof accept), 0);
    b.len = 0;
    put_ok(cvd_fr_put_data(&b, 0, 0, 0, CVD_FMT_F32LE, x, 2, 1, &e), &e);
    cr_assert_eq(b.len, sizeof data);
    cr_assert_eq(memcmp(buf, data, sizeof data), 0);
    b.len = 0;
    put_ok(cvd_fr_put_end(&b, &e), &e);
    cr_assert_eq(memcmp(buf, end, sizeof end), 0);
}

/* ==== framed: splits ======================================================================= */

static void check_splits(cvd_fr_side side, const uint8_t *s, size_t n, uint64_t seed,
                         const char *what)
{
    vbuf ref = {0};
    split whole = {NULL, n ? n : 1, 0};
    cvd_rng r;
    fr_run(side, 0, s, n, &whole, &ref);
    for (size_t chunk = 1; chunk <= n; chunk++) {
        vbuf out = {0};
        split sp = {NULL, chunk, 0};
        fr_run(side, 0, s, n, &sp, &out);
        cr_assert(out.n == ref.n && memcmp(out.p, ref.p, ref.n) == 0,
                  "%s: reads of %zu bytes decode differently from one read", what, chunk);
        vb_free(&out);
    }
    cvd_rng_seed(&r, seed);
    for (int t = 0; t < 300; t++) {
        vbuf out = {0};
        split sp = {&r, 0, 1 + (size_t)tu_randint(&r, 3 * n / 2 + 1)};
        fr_run(side, 0, s, n, &sp, &out);
        cr_assert(out.n == ref.n && memcmp(out.p, ref.p, ref.n) == 0,
                  "%s: random split %d (seed %llu) decodes differently", what, t,
                  (unsigned long long)seed);
        vb_free(&out);
    }
    vb_free(&ref);
}

Test(proto_framed, every_split_gives_the_same_messages)
{
    const uint64_t seed = tu_seed();
    cvd_rng r;
    vbuf c = {0}, s = {0};
    cvd_rng_seed(&r, seed);
    client_stream(&c, CVD_FMT_F32LE, 3, &r);
    client_stream(&s, CVD_FMT_S16LE, 1, &r);
    check_splits(CVD_FR_SERVER, c.p, c.n, seed, "client stream f32le");
    check_splits(CVD_FR_SERVER, s.p, s.n, seed + 1, "client stream s16le");
    vb_free(&s);
    server_stream(&s, &r);
    check_splits(CVD_FR_CLIENT, s.p, s.n, seed + 2, "server stream");
    vb_free(&c);
    vb_free(&s);
}

/* Valid streams, mutated (bytes flipped, inserted, deleted), decoded whole and in random
 * splits: never a crash (run under ASan), and always the same result, error included. */
Test(proto_framed, mutation_fuzz_is_split_independent)
{
    const uint64_t seed = tu_seed();
    cvd_rng r;
    cvd_rng_seed(&r, seed);
    for (int t = 0; t < 400; t++) {
        vbuf v = {0}, ref = {0};
        const cvd_fr_side side = t % 2 ? CVD_FR_CLIENT : CVD_FR_SERVER;
        split whole = {NULL, 1 << 30, 0};
        int muts = 1 + (int)tu_randint(&r, 4);
        if (side == CVD_FR_SERVER)
            client_stream(&v, 1 + (int)tu_randint(&r, 2), 1 + (int)tu_randint(&r, 3), &r);
        else
            server_stream(&v, &r);
        for (int k = 0; k < muts && v.n > 1; k++) {
            size_t at = (size_t)tu_randint(&r, v.n);
            switch (tu_randint(&r, 3)) {
            case 0:
                v.p[at] ^= (uint8_t)(1u << tu_randint(&r, 8));
                break;
            case 1:
                v.p[at] = (uint8_t)tu_randint(&r, 256);
                break;
            default:
                memmove(v.p + at, v.p + at + 1, v.n - at - 1);
                v.n--;
                break;
            }
        }
        fr_run(side, CVD_FR_MIN_MESSAGE, v.p, v.n, &whole, &ref);
        for (int s = 0; s < 4; s++) {
            vbuf out = {0};
            split sp = {&r, 0, 1 + (size_t)tu_randint(&r, 64)};
            fr_run(side, CVD_FR_MIN_MESSAGE, v.p, v.n, &sp, &out);
            cr_assert(out.n == ref.n && memcmp(out.p, ref.p, ref.n) == 0,
                      "mutation %d (seed %llu): split-dependent result", t,
                      (unsigned long long)seed);
            vb_free(&out);
        }
        vb_free(&v);
        vb_free(&ref);
    }
}

Test(proto_framed, random_bytes_never_crash)
{
    const uint64_t seed = tu_seed();
    cvd_rng r;
    uint8_t junk[4096];
    cvd_rng_seed(&r, seed);
    for (int t = 0; t < 2000; t++) {
        size_t n = (size_t)tu_randint(&r, sizeof junk);
        vbuf out = {0};
        split sp = {&r, 0, 1 + (size_t)tu_randint(&r, 100)};
        for (size_t i = 0; i < n; i++)
            junk[i] = (uint8_t)cvd_rng_next(&r);
        if (t % 3 == 0 && n >= 5) { /* a plausible header: small length, valid type */
            junk[0] = (uint8_t)tu_randint(&r, 64);
            junk[1] = junk[2] = junk[3] = 0;
            junk[4] = (uint8_t)(1 + tu_randint(&r, 8));
        }
        fr_run(t % 2 ? CVD_FR_CLIENT : CVD_FR_SERVER, CVD_FR_MIN_MESSAGE, junk, n, &sp, &out);
        vb_free(&out);
    }
}

/* ==== framed: malformed input, class by class ============================================== */

/* A message from raw parts: type, payload. */
static size_t msg(uint8_t *out, int type, const void *payload, size_t n)
{
    out[0] = (uint8_t)(n + 1);
    out[1] = (uint8_t)((n + 1) >> 8);
    out[2] = (uint8_t)((n + 1) >> 16);
    out[3] = (uint8_t)((n + 1) >> 24);
    out[4] = (uint8_t)type;
    if (n)
        memcpy(out + 5, payload, n);
    return 5 + n;
}

static size_t good_hello(uint8_t *out, int role, const char *stream)
{
    cvd_bytes b = {out, 0, 4096};
    cvd_fr_hello h = {1, (uint8_t)role, CVD_FMT_F32LE, 48000, 1, 0, "m", stream};
    cr_assert_eq(cvd_fr_put_hello(&b, &h, NULL), 0);
    return b.len;
}

static size_t good_accept(uint8_t *out)
{
    cvd_bytes b = {out, 0, 4096};
    cvd_fr_accept a = {1, CVD_FMT_F32LE, 48000, 1, 2, 0, 0, 65536, "m"};
    cr_assert_eq(cvd_fr_put_accept(&b, &a, NULL), 0);
    return b.len;
}

static size_t data_msg(uint8_t *out, uint32_t seq, uint64_t first, uint32_t dropped,
                       size_t sample_bytes)
{
    uint8_t zeros[64] = {0};
    cvd_bytes b = {out, 0, 4096};
    cr_assert_eq(cvd_fr_put_data_bytes(&b, seq, first, dropped, zeros, sample_bytes, NULL), 0);
    return b.len;
}

#define EXPECT_ERR(side, buf, n, code_, needle)                                                    \
    do {                                                                                           \
        char t_[512];                                                                              \
        int c_ = fr_expect_error(side, buf, n, t_, sizeof t_);                                     \
        cr_assert_eq(c_, code_, "error code %d, expected %d (%s)", c_, code_, t_);                 \
        cr_assert(strstr(t_, needle) != NULL, "error text \"%s\" lacks \"%s\"", t_, needle);       \
    } while (0)

Test(proto_framed_malformed, zero_length)
{
    const uint8_t z[] = {0, 0, 0, 0};
    EXPECT_ERR(CVD_FR_SERVER, z, 4, CVD_FR_E_BAD_MESSAGE, "length 0");
}

Test(proto_framed_malformed, too_large_fails_on_the_length_alone)
{
    cvd_fr_decoder *d;
    cvd_fr_msg m;
    size_t used;
    cvd_err e = {0};
    uint8_t h[4] = {0x01, 0x10, 0x00, 0x00}; /* 4097 > 4096 */
    cr_assert_eq(cvd_fr_decoder_create(CVD_FR_SERVER, 4096, &d, &e), 0);
    cr_assert_eq(cvd_fr_decode(d, h, 3, &used, &m, &e), 0);
    cr_assert_eq(cvd_fr_decode(d, h + 3, 1, &used, &m, &e), CVD_EFORMAT);
    cr_assert_eq(cvd_fr_decoder_error(d), CVD_FR_E_TOO_LARGE);
    cr_assert(strstr(e.msg, "4097") && strstr(e.msg, "4096"), "%s", e.msg);
    cvd_fr_decoder_destroy(d);
    /* exactly the limit is fine (the payload is then judged on its own) */
    h[0] = 0x00;
    cr_assert_eq(cvd_fr_decoder_create(CVD_FR_SERVER, 4096, &d, &e), 0);
    cr_assert_eq(cvd_fr_decode(d, h, 4, &used, &m, &e), 0);
    cr_assert_eq(cvd_fr_decoder_pending(d), 4);
    cr_assert_eq(cvd_fr_decoder_finish(d, &e), CVD_EFORMAT);
    cvd_fr_decoder_destroy(d);
    {
        const uint8_t huge[] = {0xff, 0xff, 0xff, 0xff, 1};
        EXPECT_ERR(CVD_FR_CLIENT, huge, 5, CVD_FR_E_TOO_LARGE, "larger than the limit");
    }
}

Test(proto_framed_malformed, unknown_type)
{
    uint8_t b[16];
    const int types[] = {0, 9, 0x7f, 0xff};
    for (int i = 0; i < 4; i++) {
        size_t n = msg(b, types[i], "abc", 3);
        EXPECT_ERR(CVD_FR_SERVER, b, n, CVD_FR_E_BAD_MESSAGE, "unknown message type");
        EXPECT_ERR(CVD_FR_CLIENT, b, n, CVD_FR_E_BAD_MESSAGE, "unknown message type");
    }
}

Test(proto_framed_malformed, truncated_payloads)
{
    uint8_t b[256], p[64] = {0};
    size_t n;
    /* HELLO shorter than its fixed part */
    p[0] = 1;
    n = msg(b, CVD_FR_HELLO, p, 10);
    EXPECT_ERR(CVD_FR_SERVER, b, n, CVD_FR_E_BAD_MESSAGE, "HELLO truncated");
    n = msg(b, CVD_FR_HELLO, p, 1);
    EXPECT_ERR(CVD_FR_SERVER, b, n, CVD_FR_E_BAD_MESSAGE, "HELLO truncated");
    /* a string longer than what is left */
    n = good_hello(b, 0, "");
    b[5 + 14] = 200; /* model name length */
    EXPECT_ERR(CVD_FR_SERVER, b, n, CVD_FR_E_BAD_MESSAGE, "only");
    /* the second string's length missing */
    n = good_hello(b, 0, "");
    b[0] -= 2;
    EXPECT_ERR(CVD_FR_SERVER, b, n - 2, CVD_FR_E_BAD_MESSAGE, "HELLO truncated: 17 bytes");
    n = msg(b, CVD_FR_HELLO,
            "\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"
            "\x01\x00m\x00",
            18);
    EXPECT_ERR(CVD_FR_SERVER, b, n, CVD_FR_E_BAD_MESSAGE, "stream name's length is missing");
    /* PING with 7 bytes, DATA with less than its header, ERROR without its string */
    n = good_hello(b, 0, "");
    n += msg(b + n, CVD_FR_PING, p, 7);
    EXPECT_ERR(CVD_FR_SERVER, b, n, CVD_FR_E_BAD_MESSAGE, "PING with 7 bytes");
    n = good_accept(b);
    n += msg(b + n, CVD_FR_DATA, p, 15);
    EXPECT_ERR(CVD_FR_CLIENT, b, n, CVD_FR_E_BAD_MESSAGE, "DATA truncated");
    n = msg(b, CVD_FR_ERROR, p, 1);
    EXPECT_ERR(CVD_FR_CLIENT, b, n, CVD_FR_E_BAD_MESSAGE, "ERROR truncated");
    n = msg(b, CVD_FR_ERROR,
            "\x05\x00\x09\x00"
            "abc",
            7);
    EXPECT_ERR(CVD_FR_CLIENT, b, n, CVD_FR_E_BAD_MESSAGE, "ERROR truncated");
    n = msg(b, CVD_FR_ACCEPT, p, 20);
    EXPECT_ERR(CVD_FR_CLIENT, b, n, CVD_FR_E_BAD_MESSAGE, "ACCEPT truncated");
    /* the connection ends inside a message */
    {
        char t[256];
        vbuf out = {0};
        split sp = {NULL, 1, 0};
        n = good_hello(b, 0, "");
        fr_run(CVD_FR_SERVER, 0, b, n - 1, &sp, &out);
        vb_add(&out, "", 1);
        cr_assert(strstr((char *)out.p, "EOF: the connection ended inside a HELLO message"), "%s",
                  (char *)out.p);
        vb_free(&out);
        fr_run(CVD_FR_SERVER, 0, b, 2, &sp, &out);
        vb_add(&out, "", 1);
        cr_assert(strstr((char *)out.p, "length field (2 of 4 bytes)"), "%s", (char *)out.p);
        vb_free(&out);
        (void)t;
    }
}

Test(proto_framed_malformed, sizes_that_do_not_match)
{
    uint8_t b[512], p[16] = {0};
    size_t n;
    /* DATA: 1 channel f32 = 4-byte frames; 6 bytes of samples */
    n = good_hello(b, 0, "");
    n += data_msg(b + n, 0, 0, 0, 6);
    EXPECT_ERR(CVD_FR_SERVER, b, n, CVD_FR_E_BAD_MESSAGE, "not a whole number of frames");
    /* client side: ACCEPT says 2 out channels f32 = 8-byte frames */
    n = good_accept(b);
    n += data_msg(b + n, 0, 0, 0, 12);
    EXPECT_ERR(CVD_FR_CLIENT, b, n, CVD_FR_E_BAD_MESSAGE, "8 bytes each: 2 channels of f32le");
    n = good_accept(b);
    n += data_msg(b + n, 0, 5, 0, 16);
    n += data_msg(b + n, 1, 7, 0, 16);
    n += data_msg(b + n, 2, 9, 0, 0);
    n += msg(b + n, CVD_FR_END, NULL, 0);
    {
        vbuf out = {0};
        split sp = {NULL, 1, 0};
        fr_run(CVD_FR_CLIENT, 0, b, n, &sp, &out);
        vb_add(&out, "", 1);
        cr_assert_null(memmem(out.p, out.n, "ERR@", 4), "an error");
        vb_free(&out);
    }
    /* payloads where there are none, and too long ones */
    n = good_hello(b, 0, "");
    n += msg(b + n, CVD_FR_END, p, 1);
    EXPECT_ERR(CVD_FR_SERVER, b, n, CVD_FR_E_BAD_MESSAGE, "END with 1 bytes of payload");
    n = good_hello(b, 0, "");
    n += msg(b + n, CVD_FR_BYE, p, 3);
    EXPECT_ERR(CVD_FR_SERVER, b, n, CVD_FR_E_BAD_MESSAGE, "BYE with 3 bytes");
    n = good_hello(b, 0, "");
    n += msg(b + n, CVD_FR_PONG, p, 9);
    EXPECT_ERR(CVD_FR_SERVER, b, n, CVD_FR_E_BAD_MESSAGE, "PONG with 9 bytes");
    /* trailing bytes after the last string */
    n = good_hello(b, 0, "");
    b[0] += 1;
    b[n++] = 'x';
    EXPECT_ERR(CVD_FR_SERVER, b, n, CVD_FR_E_BAD_MESSAGE, "1 unexpected bytes after the stream");
    n = good_accept(b);
    b[0] += 2;
    b[n++] = 0;
    b[n++] = 0;
    EXPECT_ERR(CVD_FR_CLIENT, b, n, CVD_FR_E_BAD_MESSAGE, "2 unexpected bytes after the model");
    n = msg(b, CVD_FR_ERROR,
            "\x01\x00\x01\x00"
            "ab",
            6);
    EXPECT_ERR(CVD_FR_CLIENT, b, n, CVD_FR_E_BAD_MESSAGE, "1 unexpected bytes after the text");
}

Test(proto_framed_malformed, order_and_direction)
{
    uint8_t b[512], tok[8] = {0};
    size_t n;
    /* HELLO after HELLO */
    n = good_hello(b, 0, "");
    n += good_hello(b + n, 0, "");
    EXPECT_ERR(CVD_FR_SERVER, b, n, CVD_FR_E_BAD_MESSAGE, "HELLO after HELLO");
    /* DATA / END / PING before HELLO */
    n = data_msg(b, 0, 0, 0, 4);
    EXPECT_ERR(CVD_FR_SERVER, b, n, CVD_FR_E_BAD_MESSAGE, "DATA before HELLO");
    n = msg(b, CVD_FR_END, NULL, 0);
    EXPECT_ERR(CVD_FR_SERVER, b, n, CVD_FR_E_BAD_MESSAGE, "END before HELLO");
    n = msg(b, CVD_FR_PING, tok, 8);
    EXPECT_ERR(CVD_FR_SERVER, b, n, CVD_FR_E_BAD_MESSAGE, "PING before HELLO");
    /* wrong direction */
    n = good_accept(b);
    EXPECT_ERR(CVD_FR_SERVER, b, n, CVD_FR_E_BAD_MESSAGE, "ACCEPT from a client");
    n = good_hello(b, 0, "");
    EXPECT_ERR(CVD_FR_CLIENT, b, n, CVD_FR_E_BAD_MESSAGE, "HELLO from a server");
    /* client side: DATA before ACCEPT, ACCEPT after ACCEPT */
    n = data_msg(b, 0, 0, 0, 8);
    EXPECT_ERR(CVD_FR_CLIENT, b, n, CVD_FR_E_BAD_MESSAGE, "DATA before ACCEPT");
    n = good_accept(b);
    n += good_accept(b + n);
    EXPECT_ERR(CVD_FR_CLIENT, b, n, CVD_FR_E_BAD_MESSAGE, "ACCEPT after ACCEPT");
    /* after END and after BYE */
    n = good_accept(b);
    n += msg(b + n, CVD_FR_END, NULL, 0);
    n += data_msg(b + n, 0, 0, 0, 8);
    EXPECT_ERR(CVD_FR_CLIENT, b, n, CVD_FR_E_BAD_MESSAGE, "DATA after END");
    n = good_accept(b);
    n += msg(b + n, CVD_FR_END, NULL, 0);
    n += msg(b + n, CVD_FR_END, NULL, 0);
    EXPECT_ERR(CVD_FR_CLIENT, b, n, CVD_FR_E_BAD_MESSAGE, "END after END");
    n = good_hello(b, 0, "");
    n += msg(b + n, CVD_FR_BYE, NULL, 0);
    n += msg(b + n, CVD_FR_PING, tok, 8);
    EXPECT_ERR(CVD_FR_SERVER, b, n, CVD_FR_E_BAD_MESSAGE, "PING after BYE");
    /* a subscriber sending DATA */
    n = good_hello(b, 1, "live");
    n += data_msg(b + n, 0, 0, 0, 4);
    EXPECT_ERR(CVD_FR_SERVER, b, n, CVD_FR_E_BAD_MESSAGE, "DATA from a subscriber");
    /* allowed: ERROR or BYE first; PING, PONG, ERROR after END */
    {
        vbuf out = {0};
        split sp = {NULL, 3, 0};
        n = msg(b, CVD_FR_ERROR, "\x07\x00\x00\x00", 4);
        n += msg(b + n, CVD_FR_BYE, NULL, 0);
        fr_run(CVD_FR_CLIENT, 0, b, n, &sp, &out);
        n = good_hello(b, 0, "");
        n += msg(b + n, CVD_FR_END, NULL, 0);
        n += msg(b + n, CVD_FR_PING, tok, 8);
        n += msg(b + n, CVD_FR_PONG, tok, 8);
        n += msg(b + n, CVD_FR_BYE, NULL, 0);
        fr_run(CVD_FR_SERVER, 0, b, n, &sp, &out);
        vb_add(&out, "", 1);
        cr_assert_null(memmem(out.p, out.n, "ERR@", 4), "an error");
        vb_free(&out);
    }
}

Test(proto_framed_malformed, sequence_and_frame_indices)
{
    uint8_t b[512];
    size_t n;
    n = good_hello(b, 0, "");
    n += data_msg(b + n, 1, 0, 0, 4);
    EXPECT_ERR(CVD_FR_SERVER, b, n, CVD_FR_E_BAD_MESSAGE, "sequence number 1, expected 0");
    n = good_hello(b, 0, "");
    n += data_msg(b + n, 0, 0, 0, 8);
    n += data_msg(b + n, 2, 2, 0, 4);
    EXPECT_ERR(CVD_FR_SERVER, b, n, CVD_FR_E_BAD_MESSAGE, "sequence number 2, expected 1");
    n = good_hello(b, 0, "");
    n += data_msg(b + n, 0, 0, 0, 8);
    n += data_msg(b + n, 1, 3, 0, 4);
    EXPECT_ERR(CVD_FR_SERVER, b, n, CVD_FR_E_BAD_MESSAGE, "first frame 3, expected 2");
    n = good_hello(b, 0, "");
    n += data_msg(b + n, 0, 5, 0, 4);
    EXPECT_ERR(CVD_FR_SERVER, b, n, CVD_FR_E_BAD_MESSAGE, "first frame 5, expected 0");
    n = good_hello(b, 0, "");
    n += data_msg(b + n, 0, 0, 3, 4);
    EXPECT_ERR(CVD_FR_SERVER, b, n, CVD_FR_E_BAD_MESSAGE, "dropped is 3");
    /* client side: the first index is free, then index = previous end + dropped */
    n = good_accept(b);
    n += data_msg(b + n, 0, 100, 0, 8);
    n += data_msg(b + n, 1, 106, 5, 8);
    n += data_msg(b + n, 2, 108, 0, 8);
    EXPECT_ERR(CVD_FR_CLIENT, b, n, CVD_FR_E_BAD_MESSAGE, "DATA 2: first frame 108, expected 107");
}

Test(proto_framed_malformed, field_values)
{
    uint8_t b[512];
    size_t n;
    char t[512];
    /* version: only the version is read; the text names the versions spoken */
    n = good_hello(b, 0, "");
    b[5] = 2;
    cr_assert_eq(fr_expect_error(CVD_FR_SERVER, b, n, t, sizeof t), CVD_FR_E_UNSUPPORTED_VERSION);
    cr_assert_str_eq(t, "protocol version 2 is not supported; supported versions: 1");
    {
        const uint8_t v2[] = {3, 0, 0, 0, CVD_FR_HELLO, 0x02, 0x00}; /* a shorter v2 HELLO */
        EXPECT_ERR(CVD_FR_SERVER, v2, sizeof v2, CVD_FR_E_UNSUPPORTED_VERSION,
                   "supported versions: 1");
    }
    n = good_hello(b, 0, "");
    b[5] = 0;
    EXPECT_ERR(CVD_FR_SERVER, b, n, CVD_FR_E_UNSUPPORTED_VERSION, "version 0");
    /* role, format */
    n = good_hello(b, 0, "");
    b[7] = 2;
    EXPECT_ERR(CVD_FR_SERVER, b, n, CVD_FR_E_BAD_MESSAGE, "role 2 unknown");
    n = good_hello(b, 0, "");
    b[8] = 3;
    EXPECT_ERR(CVD_FR_SERVER, b, n, CVD_FR_E_BAD_FORMAT, "sample format 3 unknown");
    n = good_hello(b, 0, "");
    b[8] = 0;
    EXPECT_ERR(CVD_FR_SERVER, b, n, CVD_FR_E_BAD_FORMAT, "sample format 0 unknown");
    n = good_hello(b, 1, "");
    EXPECT_ERR(CVD_FR_SERVER, b, n, CVD_FR_E_BAD_MESSAGE, "subscribe without a stream name");
    /* ACCEPT fields */
    n = good_accept(b);
    b[7] = 9;
    EXPECT_ERR(CVD_FR_CLIENT, b, n, CVD_FR_E_BAD_FORMAT, "sample format 9");
    n = good_accept(b);
    b[5 + 9] = 0; /* out channels */
    EXPECT_ERR(CVD_FR_CLIENT, b, n, CVD_FR_E_BAD_FORMAT, "0 output channels");
    n = good_accept(b);
    b[5 + 19] = 0; /* max_message 65536 -> 0 */
    b[5 + 21] = 0;
    EXPECT_ERR(CVD_FR_CLIENT, b, n, CVD_FR_E_BAD_MESSAGE, "below the minimum");
    n = good_accept(b);
    b[5] = 7;
    EXPECT_ERR(CVD_FR_CLIENT, b, n, CVD_FR_E_UNSUPPORTED_VERSION, "version 7");
}

Test(proto_framed_malformed, strings)
{
    uint8_t b[4096];
    size_t n;
    const char *bad[] = {"a\xff",   "\xc3", "\xc0\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80",
                         "\xe2\x82"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        size_t len = strlen(bad[i]);
        n = good_hello(b, 0, "");
        /* replace the model name "m" by bad[i] */
        memmove(b + 5 + 14 + 2 + len, b + 5 + 14 + 3, 2);
        memcpy(b + 5 + 14 + 2, bad[i], len);
        b[5 + 14] = (uint8_t)len;
        n = n - 1 + len;
        b[0] = (uint8_t)(n - 4);
        EXPECT_ERR(CVD_FR_SERVER, b, n, CVD_FR_E_BAD_MESSAGE, "model name is not UTF-8");
    }
    /* a NUL inside */
    n = msg(b, CVD_FR_ERROR,
            "\x01\x00\x03\x00"
            "a\0b",
            7);
    EXPECT_ERR(CVD_FR_CLIENT, b, n, CVD_FR_E_BAD_MESSAGE, "text is not UTF-8");
    /* too long */
    {
        uint8_t p[2 + 2 + 1100];
        memset(p, 'a', sizeof p);
        p[0] = 1;
        p[1] = 0;
        p[2] = (uint8_t)(1025 & 0xff);
        p[3] = (uint8_t)(1025 >> 8);
        n = msg(b, CVD_FR_ERROR, p, 4 + 1025);
        EXPECT_ERR(CVD_FR_CLIENT, b, n, CVD_FR_E_BAD_MESSAGE, "text of 1025 bytes, at most 1024");
    }
    /* valid multi-byte text passes */
    {
        vbuf out = {0};
        split sp = {NULL, 1, 0};
        cvd_bytes bb = {b, 0, sizeof b};
        cr_assert_eq(cvd_fr_put_error(&bb, 3, "mod\xc3\xa8le \xe2\x82\xac \xf0\x9f\x8e\xb8", NULL),
                     0);
        fr_run(CVD_FR_CLIENT, 0, b, bb.len, &sp, &out);
        cr_assert_eq(out.n, bb.len);
        vb_free(&out);
    }
}

/* ==== framed: encoders ===================================================================== */

Test(proto_framed, encoders_refuse_without_touching_the_buffer)
{
    uint8_t buf[64];
    cvd_bytes b = {buf, 3, sizeof buf};
    cvd_err e = {0};
    char longs[1100];
    float x[32] = {0};
    cvd_fr_hello h = {1, 0, CVD_FMT_F32LE, 0, 1, 0, "", ""};
    memset(buf, 0xaa, sizeof buf);
    cr_assert_eq(cvd_fr_put_data(&b, 0, 0, 0, CVD_FMT_F32LE, x, 16, 1, &e), CVD_ERANGE);
    cr_assert_eq(b.len, 3);
    cr_assert_eq(cvd_fr_put_data(&b, 0, 0, 0, CVD_FMT_F32LE, x, 8, 1, &e), 0);
    cr_assert_eq(b.len, 3 + 21 + 32);
    cr_assert_eq(cvd_fr_put_end(&b, &e), 0);
    cr_assert_eq(b.len, 61);
    cr_assert_eq(cvd_fr_put_bye(&b, &e), CVD_ERANGE);
    cr_assert(strstr(e.msg, "BYE of 5 bytes: only 3 bytes left"), "%s", e.msg);
    cr_assert_eq(b.len, 61);
    b.len = 0;
    memset(longs, 'x', sizeof longs - 1);
    longs[sizeof longs - 1] = '\0';
    h.model = longs;
    cr_assert_eq(cvd_fr_put_hello(&b, &h, &e), CVD_EINVAL);
    cr_assert(strstr(e.msg, "model name of 1099 bytes"), "%s", e.msg);
    h.model = "\xff";
    cr_assert_eq(cvd_fr_put_hello(&b, &h, &e), CVD_EINVAL);
    h.model = NULL;
    h.format = 7;
    cr_assert_eq(cvd_fr_put_hello(&b, &h, &e), CVD_EINVAL);
    cr_assert_eq(cvd_fr_put_data(&b, 0, 0, 0, 3, x, 1, 1, &e), CVD_EINVAL);
    cr_assert_eq(cvd_fr_put_data(&b, 0, 0, 0, CVD_FMT_F32LE, x, 1, 0, &e), CVD_EINVAL);
    cr_assert_eq(b.len, 0);
    cr_assert_eq(cvd_fr_data_size(10, 8), 101);
    cr_assert_eq(cvd_fr_max_frames(4096, 8), (4096 - 17) / 8);
    cr_assert_eq(cvd_fr_max_frames(16, 8), 0);
}

Test(proto_framed, error_text_is_cleaned_and_cut)
{
    uint8_t buf[2048];
    cvd_bytes b = {buf, 0, sizeof buf};
    char text[1200];
    cvd_fr_decoder *d;
    cvd_fr_msg m;
    size_t used;
    /* invalid bytes become '?' */
    cr_assert_eq(cvd_fr_put_error(&b, 10, "bad \xff byte \xc3", NULL), 0);
    cr_assert_eq(cvd_fr_decoder_create(CVD_FR_CLIENT, 0, &d, NULL), 0);
    cr_assert_eq(cvd_fr_decode(d, buf, b.len, &used, &m, NULL), 1);
    cr_assert_str_eq(m.error.text, "bad ? byte ?");
    /* cut at 1024 bytes, at a character boundary (1023 'a' then a 2-byte character) */
    memset(text, 'a', 1023);
    memcpy(text + 1023, "\xc3\xa9zzz", 6);
    b.len = 0;
    cr_assert_eq(cvd_fr_put_error(&b, 10, text, NULL), 0);
    cr_assert_eq(cvd_fr_decode(d, buf, b.len, &used, &m, NULL), 1);
    cr_assert_eq(strlen(m.error.text), 1023);
    cr_assert_eq(cvd_fr_put_error(&b, 70000, "x", NULL), CVD_EINVAL);
    cvd_fr_decoder_destroy(d);
    cr_assert_str_eq(cvd_fr_error_name(CVD_FR_E_SHUTTING_DOWN), "shutting_down");
    cr_assert_str_eq(cvd_fr_error_name(12), "unknown");
    cr_assert_str_eq(cvd_fr_type_name(CVD_FR_BYE), "BYE");
}

Test(proto_framed, decoder_arguments)
{
    cvd_fr_decoder *d;
    cvd_err e = {0};
    cr_assert_eq(cvd_fr_decoder_create(CVD_FR_SERVER, 100, &d, &e), CVD_EINVAL);
    cr_assert_null(d);
    cr_assert(strstr(e.msg, "max_message 100"), "%s", e.msg);
    cr_assert_eq(cvd_fr_decoder_create(CVD_FR_SERVER, CVD_FR_MAX_MESSAGE_LIMIT + 1, &d, &e),
                 CVD_EINVAL);
    cr_assert_eq(cvd_fr_decoder_create((cvd_fr_side)5, 0, &d, &e), CVD_EINVAL);
    cr_assert_eq(cvd_fr_decoder_create(CVD_FR_SERVER, 0, &d, &e), 0);
    cr_assert_eq(cvd_fr_decoder_set_data_layout(d, 5, 1, &e), CVD_EINVAL);
    cr_assert_eq(cvd_fr_decoder_set_data_layout(d, CVD_FMT_S16LE, 0, &e), CVD_EINVAL);
    cr_assert_eq(cvd_fr_decoder_set_max_message(d, 8192, &e), 0);
    cr_assert_eq(cvd_fr_decoder_max_message(d), 8192);
    cvd_fr_decoder_destroy(d);
    cvd_fr_decoder_destroy(NULL);
}

Test(proto_framed, reset_starts_a_new_connection)
{
    uint8_t b[256];
    size_t n = good_hello(b, 0, ""), used;
    cvd_fr_decoder *d;
    cvd_fr_msg m;
    cr_assert_eq(cvd_fr_decoder_create(CVD_FR_SERVER, 0, &d, NULL), 0);
    cr_assert_eq(cvd_fr_decode(d, b, n, &used, &m, NULL), 1);
    cr_assert_eq(cvd_fr_decode(d, b, n, &used, &m, NULL), CVD_EFORMAT);
    cvd_fr_decoder_reset(d);
    cr_assert_eq(cvd_fr_decoder_error(d), 0);
    cr_assert_eq(cvd_fr_decode(d, b, n, &used, &m, NULL), 1);
    cvd_fr_decoder_destroy(d);
}

Test(proto_framed, no_allocation_per_message)
{
    cvd_fr_decoder *d;
    uint8_t *buf = malloc(1 << 20);
    float x[256 * 2], y[256 * 2];
    cvd_bytes b = {buf, 0, 1 << 20};
    size_t n, pos = 0, used;
    long before;
    cvd_fr_msg m;
    int got = 0;
    for (int i = 0; i < 512; i++)
        x[i] = (float)i / 512.0f;
    n = good_hello(buf, 0, "");
    cr_assert_eq(cvd_fr_decoder_create(CVD_FR_SERVER, 0, &d, NULL), 0);
    cr_assert_eq(cvd_fr_decoder_set_data_layout(d, CVD_FMT_S16LE, 2, NULL), 0);
    cr_assert_eq(cvd_fr_decode(d, buf, n, &used, &m, NULL), 1);
    before = alloc_count();
    b.len = 0;
    for (uint32_t i = 0; i < 1000; i++)
        cr_assert_eq(cvd_fr_put_data(&b, i, 256ull * i, 0, CVD_FMT_S16LE, x, 256, 2, NULL), 0);
    cr_assert_eq(cvd_fr_put_ping(&b, 1, NULL), 0);
    while (pos < b.len) {
        size_t k = b.len - pos < 777 ? b.len - pos : 777;
        size_t off = 0;
        while (off < k) {
            int rc = cvd_fr_decode(d, buf + pos + off, k - off, &used, &m, NULL);
            cr_assert_geq(rc, 0);
            off += used;
            if (rc == 1 && m.type == CVD_FR_DATA) {
                cvd_samples_decode(CVD_FMT_S16LE, m.data.samples, m.data.n_frames * 2, y);
                got++;
            }
        }
        pos += k;
    }
    cr_assert_eq(alloc_count(), before, "decoding and encoding allocated");
    cr_assert_eq(got, 1000);
    cvd_fr_decoder_destroy(d);
    free(buf);
}

/* ==== raw ================================================================================== */

static void raw_run(int format, int ch, const uint8_t *s, size_t n, split *sp, size_t max_frames,
                    float *out, size_t *n_out, size_t *pending)
{
    cvd_raw_decoder *d;
    size_t pos = 0, got = 0;
    cr_assert_eq(cvd_raw_decoder_create((cvd_sample_format)format, ch, &d, NULL), 0);
    while (pos < n) {
        size_t k = next_chunk(sp), off = 0;
        if (k > n - pos)
            k = n - pos;
        while (off < k) {
            size_t used;
            size_t f = cvd_raw_decode(d, s + pos + off, k - off, &used, out + got * (size_t)ch,
                                      max_frames);
            cr_assert(used > 0 || f > 0, "no progress");
            off += used;
            got += f;
        }
        pos += k;
    }
    *n_out = got;
    *pending = cvd_raw_decoder_pending(d);
    cvd_raw_decoder_destroy(d);
}

Test(proto_raw, any_split_gives_the_same_frames)
{
    const uint64_t seed = tu_seed();
    cvd_rng r;
    cvd_rng_seed(&r, seed);
    for (int format = 1; format <= 2; format++) {
        const int ch = 3;
        const size_t frames = 50, sb = cvd_sample_bytes(format);
        float x[50 * 3], ref[51 * 3], y[51 * 3];
        uint8_t wire[50 * 3 * 4 + 3];
        size_t nw, nref, ny, pend;
        for (size_t i = 0; i < frames * ch; i++)
            x[i] = (float)(cvd_rng_uniform(&r) * 2.2 - 1.1);
        nw = cvd_raw_encode((cvd_sample_format)format, x, frames, ch, wire);
        cr_assert_eq(nw, frames * ch * sb);
        wire[nw++] = 0x11; /* a trailing partial frame */
        {
            split whole = {NULL, nw, 0};
            raw_run(format, ch, wire, nw, &whole, 1000, ref, &nref, &pend);
        }
        cr_assert_eq(nref, frames);
        cr_assert_eq(pend, 1);
        for (size_t i = 0; i < frames * ch; i++)
            cr_assert_eq(ref[i], format == 1 ? x[i] : cvd_s16_to_float(cvd_s16_from_float(x[i])));
        for (size_t chunk = 1; chunk <= nw; chunk++) {
            for (size_t mf = 1; mf <= 3; mf += 2) {
                split sp = {NULL, chunk, 0};
                raw_run(format, ch, wire, nw, &sp, mf, y, &ny, &pend);
                cr_assert_eq(ny, frames, "chunk %zu", chunk);
                cr_assert_eq(pend, 1);
                cr_assert_eq(memcmp(y, ref, frames * ch * sizeof(float)), 0, "chunk %zu", chunk);
            }
        }
        for (int t = 0; t < 200; t++) {
            split sp = {&r, 0, 1 + (size_t)tu_randint(&r, 40)};
            raw_run(format, ch, wire, nw, &sp, 1 + (size_t)tu_randint(&r, 60), y, &ny, &pend);
            cr_assert_eq(ny, frames);
            cr_assert_eq(memcmp(y, ref, frames * ch * sizeof(float)), 0, "seed %llu",
                         (unsigned long long)seed);
        }
    }
}

Test(proto_raw, arguments_and_reset)
{
    cvd_raw_decoder *d;
    cvd_err e = {0};
    uint8_t w[3] = {1, 2, 3};
    float f[2];
    size_t used;
    cr_assert_eq(cvd_raw_decoder_create((cvd_sample_format)0, 1, &d, &e), CVD_EINVAL);
    cr_assert_eq(cvd_raw_decoder_create(CVD_FMT_F32LE, 0, &d, &e), CVD_EINVAL);
    cr_assert_eq(cvd_raw_decoder_create(CVD_FMT_S16LE, 2, &d, &e), 0);
    cr_assert_eq(cvd_raw_frame_bytes(d), 4);
    cr_assert_eq(cvd_raw_decode(d, w, 3, &used, f, 0), 0);
    cr_assert_eq(used, 0, "no room: nothing consumed");
    cr_assert_eq(cvd_raw_decode(d, w, 3, &used, f, 1), 0);
    cr_assert_eq(used, 3);
    cr_assert_eq(cvd_raw_decoder_pending(d), 3);
    cvd_raw_decoder_reset(d);
    cr_assert_eq(cvd_raw_decoder_pending(d), 0);
    cvd_raw_decoder_destroy(d);
}

/* ==== line ================================================================================= */

/* Decodes text fed in chunks; the result (frames as "%a" values, error lines as they are)
 * goes to out as text. max_frames per call as given. */
static void line_run(int ch, size_t max_line, cvd_nonfinite_policy pol, const char *s, size_t n,
                     split *sp, size_t max_frames, vbuf *out)
{
    cvd_line_decoder *d;
    cvd_line_result res;
    float *f = malloc(sizeof(float) * (size_t)ch * max_frames);
    size_t pos = 0;
    cr_assert_eq(cvd_line_decoder_create(ch, max_line, pol, &d, NULL), 0);
    while (pos < n) {
        size_t k = next_chunk(sp), off = 0;
        if (k > n - pos)
            k = n - pos;
        while (off < k) {
            cvd_line_decode(d, s + pos + off, k - off, f, max_frames, &res);
            cr_assert(res.used > 0 || res.frames > 0 || res.error, "no progress");
            cr_assert_leq(res.frames, max_frames);
            off += res.used;
            for (size_t i = 0; i < res.frames * (size_t)ch; i++)
                vb_printf(out, "%a%c", (double)f[i], (i + 1) % (size_t)ch ? ' ' : '\n');
            if (res.error) {
                cr_assert_eq(strlen(res.error_line), res.error_len);
                cr_assert_eq(res.error_line[res.error_len - 1], '\n');
                vb_add(out, res.error_line, res.error_len);
            }
        }
        pos += k;
    }
    cvd_line_finish(d, f, &res);
    for (size_t i = 0; i < res.frames * (size_t)ch; i++)
        vb_printf(out, "%a%c", (double)f[i], (i + 1) % (size_t)ch ? ' ' : '\n');
    if (res.error)
        vb_add(out, res.error_line, res.error_len);
    vb_add(out, "", 1);
    out->n--;
    cvd_line_decoder_destroy(d);
    free(f);
}

static char *line_all(int ch, cvd_nonfinite_policy pol, const char *s)
{
    vbuf out = {0};
    split sp = {NULL, 1 << 30, 0};
    line_run(ch, 0, pol, s, strlen(s), &sp, 64, &out);
    return (char *)out.p;
}

#define LINE_EQ(ch, pol, in, expect)                                                               \
    do {                                                                                           \
        char *got_ = line_all(ch, pol, in);                                                        \
        cr_assert_str_eq(got_, expect, "input:\n%s", in);                                          \
        free(got_);                                                                                \
    } while (0)

Test(proto_line, frames_blanks_comments_crlf)
{
    LINE_EQ(2, CVD_NONFINITE_REJECT, "1,2\n", "0x1p+0 0x1p+1\n");
    LINE_EQ(2, CVD_NONFINITE_REJECT, "  0.5 ,\t-0.25  \r\n", "0x1p-1 -0x1p-2\n");
    LINE_EQ(1, CVD_NONFINITE_REJECT, "# header\n\n\r\n   \n\t# indented comment\n3\n",
            "0x1.8p+1\n");
    LINE_EQ(1, CVD_NONFINITE_REJECT, "1\n2", "0x1p+0\n0x1p+1\n"); /* last line without "\n" */
    LINE_EQ(1, CVD_NONFINITE_REJECT, "1e-3\n+4\n-0\n0x1p-3\n.5\n5.\n1E2\n",
            "0x1.0624dep-10\n0x1p+2\n-0x0p+0\n0x1p-3\n0x1p-1\n0x1.4p+2\n0x1.9p+6\n");
    LINE_EQ(1, CVD_NONFINITE_REJECT, "1e-50\n", "0x0p+0\n"); /* below float's range: 0 */
    LINE_EQ(1, CVD_NONFINITE_REJECT, "", "");
    LINE_EQ(3, CVD_NONFINITE_REJECT, "1,2,3\r\n\r\n4,5,6\r\n",
            "0x1p+0 0x1p+1 0x1.8p+1\n0x1p+2 0x1.4p+2 0x1.8p+2\n");
}

Test(proto_line, errors_name_line_and_field)
{
    LINE_EQ(2, CVD_NONFINITE_REJECT, "1,2\n# c\n3,1.2x\n5,6\n",
            "0x1p+0 0x1p+1\n!ERR bad_number line 3 field 2: \"1.2x\" is not a number\n"
            "0x1.4p+2 0x1.8p+2\n");
    LINE_EQ(2, CVD_NONFINITE_REJECT, "1,2,3\n",
            "!ERR wrong_count line 1 field 3: 3 values, expected 2\n");
    LINE_EQ(2, CVD_NONFINITE_REJECT, "1,2,3,4\n",
            "!ERR wrong_count line 1 field 3: 4 values, expected 2\n");
    LINE_EQ(3, CVD_NONFINITE_REJECT, "7\n",
            "!ERR wrong_count line 1 field 2: 1 value, expected 3\n");
    LINE_EQ(3, CVD_NONFINITE_REJECT, "7,8\n",
            "!ERR wrong_count line 1 field 3: 2 values, expected 3\n");
    LINE_EQ(2, CVD_NONFINITE_REJECT, "1,\n", "!ERR bad_number line 1 field 2: empty field\n");
    LINE_EQ(2, CVD_NONFINITE_REJECT, ",1\n", "!ERR bad_number line 1 field 1: empty field\n");
    LINE_EQ(1, CVD_NONFINITE_REJECT, "1 2\n",
            "!ERR bad_number line 1 field 1: \"1 2\" is not a number\n");
    LINE_EQ(1, CVD_NONFINITE_REJECT, "0,5\n",
            "!ERR wrong_count line 1 field 2: 2 values, expected 1\n");
    LINE_EQ(1, CVD_NONFINITE_REJECT, "1\r2\n",
            "!ERR bad_number line 1 field 1: \"1\\x0d2\" is not a number\n");
    LINE_EQ(1, CVD_NONFINITE_REJECT, "\"q\\\xc3\xa9\n",
            "!ERR bad_number line 1 field 1: \"\\\"q\\\\\\xc3\\xa9\" is not a number\n");
    LINE_EQ(1, CVD_NONFINITE_REJECT, "1e39\n",
            "!ERR out_of_range line 1 field 1: \"1e39\" is out of range for a 32-bit float\n");
    LINE_EQ(1, CVD_NONFINITE_REJECT, "-3.5e38\n",
            "!ERR out_of_range line 1 field 1: \"-3.5e38\" is out of range for a 32-bit float\n");
    LINE_EQ(1, CVD_NONFINITE_REJECT, "\v1\n",
            "!ERR bad_number line 1 field 1: \"\\x0b1\" is not a number\n");
    /* a NUL byte inside a field (found by fuzzing: "0.5\0junk" was read as 0.5) */
    {
        static const char nul_in[] = "0.5\0junk\n\0\n2\n";
        vbuf out = {0};
        split sp = {NULL, 1 << 30, 0};
        line_run(1, 0, CVD_NONFINITE_REJECT, nul_in, sizeof nul_in - 1, &sp, 64, &out);
        cr_assert_str_eq((char *)out.p,
                         "!ERR bad_number line 1 field 1: \"0.5\\x00junk\" is not a number\n"
                         "!ERR bad_number line 2 field 1: \"\\x00\" is not a number\n"
                         "0x1p+1\n");
        free(out.p);
    }
    /* long fields are cut in the message */
    LINE_EQ(1, CVD_NONFINITE_REJECT, "123456789012345678901234567890123456789x\n",
            "!ERR bad_number line 1 field 1: \"12345678901234567890123456789012\"... is not a "
            "number\n");
    /* the stream goes on after bad lines, line numbers count every line */
    LINE_EQ(1, CVD_NONFINITE_REJECT, "a\n\n#\nb\n1\n",
            "!ERR bad_number line 1 field 1: \"a\" is not a number\n"
            "!ERR bad_number line 4 field 1: \"b\" is not a number\n0x1p+0\n");
    /* an error on a last line without "\n" */
    LINE_EQ(1, CVD_NONFINITE_REJECT, "1\nz",
            "0x1p+0\n!ERR bad_number line 2 field 1: \"z\" is not a number\n");
}

Test(proto_line, nonfinite_policy)
{
    LINE_EQ(2, CVD_NONFINITE_REJECT, "nan,1\n",
            "!ERR nonfinite line 1 field 1: \"nan\" is not finite (NaN and infinity are "
            "rejected here)\n");
    LINE_EQ(2, CVD_NONFINITE_REJECT, "1, -Infinity\n",
            "!ERR nonfinite line 1 field 2: \"-Infinity\" is not finite (NaN and infinity are "
            "rejected here)\n");
    LINE_EQ(3, CVD_NONFINITE_PASS, "inf,-INF,1\n", "inf -inf 0x1p+0\n");
    {
        char *got = line_all(1, CVD_NONFINITE_PASS, "NaN\n-nan\nnan(123)\n");
        int count = 0;
        for (char *p = got; (p = strstr(p, "nan")) != NULL; p++)
            count++;
        cr_assert_eq(count, 3, "%s", got);
        free(got);
    }
}

Test(proto_line, long_lines)
{
    const size_t max = 100;
    char *s = malloc(4 * 1024 * 1024);
    char *expect = malloc(4096);
    vbuf out = {0};
    split whole = {NULL, 1 << 30, 0};
    size_t n = 0;
    /* exactly max bytes (a number and blanks), also with CRLF: fine */
    s[n++] = '1';
    memset(s + n, ' ', max - 1);
    n += max - 1;
    s[n++] = '\n';
    s[n++] = '2';
    memset(s + n, ' ', max - 1);
    n += max - 1;
    s[n++] = '\r';
    s[n++] = '\n';
    /* max + 1: rejected */
    s[n++] = '3';
    memset(s + n, ' ', max);
    n += max;
    s[n++] = '\n';
    /* max + 1 and then a "\r": rejected too */
    s[n++] = '4';
    memset(s + n, ' ', max);
    n += max;
    s[n++] = '\r';
    s[n++] = '\n';
    /* 3 MiB */
    memset(s + n, '5', 3 * 1024 * 1024);
    n += 3 * 1024 * 1024;
    s[n++] = '\n';
    s[n++] = '6';
    s[n++] = '\n';
    line_run(1, max, CVD_NONFINITE_REJECT, s, n, &whole, 8, &out);
    snprintf(expect, 4096,
             "0x1p+0\n0x1p+1\n!ERR line_too_long line 3: longer than 100 bytes\n"
             "!ERR line_too_long line 4: longer than 100 bytes\n"
             "!ERR line_too_long line 5: longer than 100 bytes\n0x1.8p+2\n");
    cr_assert_str_eq((char *)out.p, expect);
    /* the same fed byte by byte (not the 3 MiB line: too slow), and in chunks */
    for (size_t chunk = 1; chunk <= 7; chunk += 3) {
        vbuf o2 = {0};
        split sp = {NULL, chunk == 1 ? 1 : 65536 + chunk, 0};
        line_run(1, max, CVD_NONFINITE_REJECT, s, chunk == 1 ? 4 * max : n, &sp, 1, &o2);
        if (chunk != 1)
            cr_assert_str_eq((char *)o2.p, expect);
        vb_free(&o2);
    }
    /* the error comes as soon as the limit is passed, before the line's end */
    {
        cvd_line_decoder *d;
        cvd_line_result res;
        float f[1];
        cr_assert_eq(cvd_line_decoder_create(1, max, CVD_NONFINITE_REJECT, &d, NULL), 0);
        memset(s, '7', 1000);
        cvd_line_decode(d, s, 1000, f, 1, &res);
        cr_assert_eq(res.error, 1);
        cr_assert_eq(res.used, 1000);
        cvd_line_decode(d, s, 1000, f, 1, &res);
        cr_assert_eq(res.error, 0, "one answer per line");
        cvd_line_decode(d, "\n8\n", 3, f, 1, &res);
        cr_assert_eq(res.frames, 1);
        cr_assert_eq(f[0], 8.0f);
        cr_assert_eq(cvd_line_number(d), 3);
        cvd_line_decoder_destroy(d);
    }
    vb_free(&out);
    free(s);
    free(expect);
}

Test(proto_line, every_split_gives_the_same_answers)
{
    const uint64_t seed = tu_seed();
    const char *text = "# a comment\r\n1, 2\n\n3,x\r\n  4 ,5  \r\n6\n7,8,9\nnan,1\n"
                       "1e39,2\n0x1p3,-0\n\t \n"
                       "123456789012345678901234567890,1\n9,9";
    const size_t n = strlen(text);
    vbuf ref = {0};
    split whole = {NULL, n, 0};
    cvd_rng r;
    line_run(2, 24, CVD_NONFINITE_REJECT, text, n, &whole, 64, &ref);
    cr_assert(strstr((char *)ref.p, "line_too_long line 12"), "%s", (char *)ref.p);
    for (size_t chunk = 1; chunk <= n; chunk++)
        for (size_t mf = 1; mf <= 2; mf++) {
            vbuf out = {0};
            split sp = {NULL, chunk, 0};
            line_run(2, 24, CVD_NONFINITE_REJECT, text, n, &sp, mf, &out);
            cr_assert_str_eq((char *)out.p, (char *)ref.p, "reads of %zu bytes", chunk);
            vb_free(&out);
        }
    cvd_rng_seed(&r, seed);
    for (int t = 0; t < 500; t++) {
        vbuf out = {0};
        split sp = {&r, 0, 1 + (size_t)tu_randint(&r, 30)};
        line_run(2, 24, CVD_NONFINITE_REJECT, text, n, &sp, 1 + (size_t)tu_randint(&r, 4), &out);
        cr_assert_str_eq((char *)out.p, (char *)ref.p, "random split %d, seed %llu", t,
                         (unsigned long long)seed);
        vb_free(&out);
    }
    vb_free(&ref);
}

static void encode_eq(const float *x, size_t n, int ch, const char *expect)
{
    char out[512];
    size_t done;
    long k = cvd_line_encode(x, n, ch, out, sizeof out, &done);
    cr_assert_geq(k, 0);
    cr_assert_eq(done, n);
    out[k] = '\0';
    cr_assert_str_eq(out, expect);
}

Test(proto_line, encoder_prints_percent_9g)
{
    const float a[] = {0.1f, 1.0f, -0.0f, 1e-45f, -3.40282347e38f, 0.5f, 1234567.0f, 1e-7f};
    const float b[] = {NAN, INFINITY, -INFINITY};
    encode_eq(a, 2, 2, "0.100000001,1\n-0,1.40129846e-45\n");
    encode_eq(a + 4, 4, 1, "-3.40282347e+38\n0.5\n1234567\n1.00000001e-07\n");
    encode_eq(b + 1, 1, 2, "inf,-inf\n");
    {
        char out[64];
        size_t done;
        long k = cvd_line_encode(b, 1, 1, out, sizeof out, &done);
        cr_assert(k == 4 && strncmp(out, "nan\n", 4) == 0);
    }
    /* as many whole frames as fit */
    {
        char out[10];
        size_t done;
        cr_assert_eq(cvd_line_encode(a + 5, 3, 1, out, sizeof out, &done), 4);
        cr_assert_eq(done, 1);
        cr_assert_eq(cvd_line_encode(a, 1, 1, out, 5, &done), 0);
        cr_assert_eq(done, 0);
    }
}

Test(proto_line, print_then_parse_is_exact)
{
    const uint64_t seed = tu_seed();
    cvd_rng r;
    char buf[64];
    cvd_rng_seed(&r, seed);
    for (int i = 0; i < 200000; i++) {
        uint32_t u = (uint32_t)cvd_rng_next(&r);
        float x = u2f(u), y;
        size_t done;
        long k;
        if (!isfinite(x))
            continue;
        k = cvd_line_encode(&x, 1, 1, buf, sizeof buf, &done);
        cr_assert(k > 1 && k <= CVD_LINE_VALUE_CHARS);
        buf[k - 1] = '\0';
        cr_assert_eq(cvd_line_parse_value(buf, &y), 0, "%s", buf);
        cr_assert_eq(f2u(y), u, "seed %llu: %08x printed as %s reads back as %08x",
                     (unsigned long long)seed, u, buf, f2u(y));
    }
}

Test(proto_line, server_error_lines)
{
    char out[64];
    size_t n = cvd_line_error(out, sizeof out, "shutting_down", "the server stops in %d s\n", 5);
    cr_assert_str_eq(out, "!ERR shutting_down the server stops in 5 s \n");
    cr_assert_eq(n, strlen(out));
    n = cvd_line_error(out, 17, "internal", "%s", "a long message that is cut");
    cr_assert_eq(n, 16);
    cr_assert_str_eq(out, "!ERR internal a\n");
}

Test(proto_line, decoder_arguments)
{
    cvd_line_decoder *d;
    cvd_err e = {0};
    cr_assert_eq(cvd_line_decoder_create(0, 0, CVD_NONFINITE_PASS, &d, &e), CVD_EINVAL);
    cr_assert_eq(cvd_line_decoder_create(1, CVD_LINE_MAX_LIMIT + 1, CVD_NONFINITE_PASS, &d, &e),
                 CVD_EINVAL);
    cr_assert_eq(cvd_line_decoder_create(1, 0, (cvd_nonfinite_policy)9, &d, &e), CVD_EINVAL);
    cr_assert_eq(cvd_line_decoder_create(1, 0, CVD_NONFINITE_PASS, &d, &e), 0);
    cvd_line_decoder_destroy(d);
}

/* A locale with a decimal comma must change neither parsing nor printing. Uses the first of
 * a few such locales that is installed (LOCPATH is honoured); says so if none is. */
Test(proto_line, locale_independent)
{
    const char *used = tu_comma_locale();
    char buf[64];
    if (used == NULL) {
        /* info, not warn: Criterion's exit status counts warnings as failures */
        cr_log_info("no decimal-comma locale (none installed, localedef failed): the locale "
                    "test runs in the C locale only");
    } else {
        snprintf(buf, sizeof buf, "%.1f", 0.5);
        cr_assert_str_eq(buf, "0,5", "%s is active", used);
    }
    {
        cvd_line_decoder *d;
        cvd_line_result res;
        float f[4];
        const char *text = "0.5,-1.25e-1\n0,5\n";
        cr_assert_eq(cvd_line_decoder_create(2, 0, CVD_NONFINITE_REJECT, &d, NULL), 0);
        cvd_line_decode(d, text, strlen(text), f, 2, &res);
        cr_assert_eq(res.frames, 2);
        cr_assert_eq(res.error, 0);
        cr_assert(f[0] == 0.5f && f[1] == -0.125f && f[2] == 0.0f && f[3] == 5.0f);
        cvd_line_decoder_destroy(d);
    }
    {
        const float x[2] = {0.5f, -1234.5f};
        encode_eq(x, 1, 2, "0.5,-1234.5\n");
    }
    {
        float y;
        cr_assert_eq(cvd_line_parse_value("2.75", &y), 0);
        cr_assert_eq(y, 2.75f);
        cr_assert_eq(cvd_line_parse_value("2,75", &y), CVD_EFORMAT);
    }
    cr_assert_eq(cvd_line_error(buf, sizeof buf, "x", "%.2f", 0.5), 12);
    cr_assert_str_eq(buf, "!ERR x 0.50\n");
    setlocale(LC_ALL, "C");
}

/* ==== client loopback ====================================================================== */

/*
 * A tiny server speaking the framed protocol with the codec, one connection:
 *   model "gain2"  channels N (HELLO's, default 1) -> N: y = 2x, held back 3 frames
 *                  (latency 3) until END
 *   model "split"  1 -> 2: (x, -x)
 *   stream "live"  (subscribe) 3 DATA of 10 frames, 5 dropped before the second, then END
 *   anything else  ERROR 3
 * modes: 0 normal, 1 garbage after the first output, 2 close after the first DATA,
 *        3 ERROR 2 to HELLO.
 */
typedef struct tsrv {
    int lfd, fd;
    int mode;
    char port[16];
    pthread_t th;
    size_t max_in_frames; /* largest DATA received */
    uint64_t frames_in;
    int got_bye, pings;
} tsrv;

static int send_all(int fd, const void *p, size_t n)
{
    const uint8_t *b = p;
    while (n > 0) {
        ssize_t k = send(fd, b, n, MSG_NOSIGNAL);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return -1;
        b += k;
        n -= (size_t)k;
    }
    return 0;
}

static void *tsrv_main(void *arg)
{
    tsrv *s = arg;
    cvd_fr_decoder *d = NULL;
    uint8_t *in = malloc(65536), *out = malloc(1 << 21);
    float *x = malloc(sizeof(float) * (1 << 18)), *held = malloc(sizeof(float) * (1 << 20));
    size_t n_held = 0;
    int model = 0, ch = 1, och = 1, fmt = CVD_FMT_F32LE, done = 0;
    uint32_t oseq = 0;
    uint64_t oframe = 0;
    const int latency = 3;

    if (s->fd < 0)
        s->fd = accept(s->lfd, NULL, NULL);
    if (s->fd < 0 || cvd_fr_decoder_create(CVD_FR_SERVER, 1 << 20, &d, NULL) < 0)
        goto out;
    while (!done) {
        ssize_t n = recv(s->fd, in, 65536, 0);
        size_t off = 0;
        if (n <= 0)
            break;
        while (off < (size_t)n && !done) {
            cvd_fr_msg m;
            cvd_err e = {0};
            size_t used;
            cvd_bytes b = {out, 0, 1 << 21};
            int rc = cvd_fr_decode(d, in + off, (size_t)n - off, &used, &m, &e);
            off += used;
            if (rc < 0) {
                cvd_fr_put_error(&b, cvd_fr_decoder_error(d), e.msg, NULL);
                cvd_fr_put_bye(&b, NULL);
                send_all(s->fd, out, b.len);
                done = 1;
                break;
            }
            if (rc == 0)
                break;
            switch (m.type) {
            case CVD_FR_HELLO: {
                cvd_fr_accept a = {1,       m.hello.format, 48000, 1, 1, 0, (uint32_t)latency,
                                   1 << 20, m.hello.model};
                fmt = m.hello.format;
                if (s->mode == 3) {
                    cvd_fr_put_error(&b, CVD_FR_E_UNSUPPORTED_VERSION,
                                     "protocol version 1 is not supported; supported versions: 2",
                                     NULL);
                    cvd_fr_put_bye(&b, NULL);
                    done = 1;
                } else if (m.hello.role == CVD_ROLE_SUBSCRIBE) {
                    if (strcmp(m.hello.stream, "live") != 0) {
                        cvd_fr_put_error(&b, CVD_FR_E_UNKNOWN_STREAM, "no stream named that", NULL);
                        done = 1;
                    } else {
                        float f[10];
                        a.model = "live-model";
                        a.latency = 0;
                        cvd_fr_put_accept(&b, &a, NULL);
                        for (int k = 0; k < 3; k++) {
                            for (int i = 0; i < 10; i++)
                                f[i] = (float)(k * 100 + i) / 1024.0f;
                            if (k == 1)
                                oframe += 5;
                            cvd_fr_put_data(&b, (uint32_t)k, oframe, k == 1 ? 5 : 0, fmt, f, 10, 1,
                                            NULL);
                            oframe += 10;
                        }
                        cvd_fr_put_end(&b, NULL);
                        cvd_fr_put_bye(&b, NULL);
                        done = 1;
                    }
                } else if (strcmp(m.hello.model, "gain2") == 0) {
                    model = 1;
                    ch = och = m.hello.channels ? m.hello.channels : 1;
                } else if (strcmp(m.hello.model, "split") == 0) {
                    if (m.hello.channels > 1) {
                        cvd_fr_put_error(&b, CVD_FR_E_BAD_FORMAT, "model split takes 1 channel",
                                         NULL);
                        done = 1;
                    } else {
                        model = 2;
                        ch = 1;
                        och = 2;
                    }
                } else {
                    char t[256];
                    snprintf(t, sizeof t, "no model named '%s'", m.hello.model);
                    cvd_fr_put_error(&b, CVD_FR_E_UNKNOWN_MODEL, t, NULL);
                    cvd_fr_put_bye(&b, NULL);
                    done = 1;
                }
                if (model) {
                    a.in_channels = (uint16_t)ch;
                    a.out_channels = (uint16_t)och;
                    cvd_fr_put_accept(&b, &a, NULL);
                    cvd_fr_decoder_set_data_layout(d, fmt, ch, NULL);
                }
                break;
            }
            case CVD_FR_DATA: {
                size_t nf = m.data.n_frames;
                if (nf > s->max_in_frames)
                    s->max_in_frames = nf;
                s->frames_in += nf;
                cvd_samples_decode(fmt, m.data.samples, nf * (size_t)ch, x);
                for (size_t i = 0; i < nf; i++)
                    for (int c = 0; c < och; c++)
                        held[(n_held + i) * (size_t)och + (size_t)c] =
                            model == 1 ? 2 * x[i * (size_t)ch + (size_t)c] : (c ? -x[i] : x[i]);
                n_held += nf;
                if (n_held > (size_t)latency) {
                    size_t go = n_held - (size_t)latency;
                    cvd_fr_put_data(&b, oseq++, oframe, 0, fmt, held, go, och, NULL);
                    oframe += go;
                    memmove(held, held + go * (size_t)och,
                            sizeof(float) * (size_t)latency * (size_t)och);
                    n_held = (size_t)latency;
                }
                if (s->mode == 1) {
                    memcpy(out + b.len,
                           "\x05\x00\x00\x00\x2a"
                           "junk",
                           9);
                    b.len += 9;
                }
                if (s->mode == 2) {
                    send_all(s->fd, out, b.len);
                    b.len = 0;
                    done = 1;
                }
                break;
            }
            case CVD_FR_END:
                if (n_held)
                    cvd_fr_put_data(&b, oseq++, oframe, 0, fmt, held, n_held, och, NULL);
                n_held = 0;
                cvd_fr_put_end(&b, NULL);
                cvd_fr_put_bye(&b, NULL);
                break;
            case CVD_FR_PING:
                s->pings++;
                cvd_fr_put_pong(&b, m.token, NULL);
                break;
            case CVD_FR_BYE:
                s->got_bye = 1;
                done = 1;
                break;
            default:
                break;
            }
            if (b.len && send_all(s->fd, out, b.len) < 0)
                done = 1;
        }
    }
out:
    if (s->fd >= 0) {
        shutdown(s->fd, SHUT_WR);
        /* wait for the client to hang up, so that nothing it sends is refused */
        while (recv(s->fd, in, 65536, 0) > 0)
            ;
        close(s->fd);
    }
    cvd_fr_decoder_destroy(d);
    free(in);
    free(out);
    free(x);
    free(held);
    return NULL;
}

static void tsrv_start(tsrv *s, int mode)
{
    struct sockaddr_in a;
    socklen_t al = sizeof a;
    memset(s, 0, sizeof *s);
    s->mode = mode;
    s->fd = -1;
    s->lfd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert_geq(s->lfd, 0);
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(bind(s->lfd, (struct sockaddr *)&a, sizeof a), 0);
    cr_assert_eq(listen(s->lfd, 4), 0);
    cr_assert_eq(getsockname(s->lfd, (struct sockaddr *)&a, &al), 0);
    snprintf(s->port, sizeof s->port, "%u", (unsigned)ntohs(a.sin_port));
    cr_assert_eq(pthread_create(&s->th, NULL, tsrv_main, s), 0);
}

static void tsrv_join(tsrv *s)
{
    pthread_join(s->th, NULL);
    if (s->lfd >= 0)
        close(s->lfd);
}

static cvd_client *connect_ok(tsrv *s)
{
    cvd_client *c;
    cvd_err e = {0};
    cr_assert_eq(cvd_client_connect("127.0.0.1", s->port, 10000, &c, &e), 0, "%s", e.msg);
    return c;
}

/* Streams n frames in random pieces, reading what is ready in between; returns the frames
 * received (after END) in *y. */
static size_t stream_through(cvd_client *c, cvd_rng *r, const float *x, size_t n, int ich, int och,
                             float *y)
{
    cvd_err e = {0};
    size_t pos = 0, got = 0;
    long k;
    while (pos < n) {
        size_t piece = 1 + (size_t)tu_randint(r, 300);
        if (piece > n - pos)
            piece = n - pos;
        cr_assert_eq(cvd_client_send(c, x + pos * (size_t)ich, piece, &e), 0, "%s", e.msg);
        pos += piece;
        while ((k = cvd_client_recv(c, y + got * (size_t)och, 1 + (size_t)tu_randint(r, 50), 0,
                                    &e)) > 0)
            got += (size_t)k;
        cr_assert_geq(k, 0, "%s", e.msg);
    }
    cr_assert_eq(cvd_client_end(c, &e), 0, "%s", e.msg);
    while ((k = cvd_client_recv(c, y + got * (size_t)och, 64, -1, &e)) > 0)
        got += (size_t)k;
    cr_assert_eq(k, 0, "%s", e.msg);
    cr_assert(cvd_client_done(c));
    return got;
}

Test(proto_client, process_stream_f32_and_s16)
{
    const uint64_t seed = tu_seed();
    cvd_rng r;
    cvd_rng_seed(&r, seed);
    for (int fmt = 1; fmt <= 2; fmt++) {
        tsrv s;
        cvd_client *c;
        cvd_client_request h;
        cvd_client_accept acc;
        cvd_client_stats st;
        cvd_err e = {0};
        const size_t n = 5000;
        float *x = malloc(sizeof(float) * n * 2), *y = malloc(sizeof(float) * n * 2);
        size_t got;
        double rtt = -1;
        tsrv_start(&s, 0);
        c = connect_ok(&s);
        cvd_client_request_init(&h);
        h.format = fmt;
        h.model = "gain2";
        h.channels = 2;
        h.block = 100;
        cr_assert_eq(cvd_client_hello(c, &h, &acc, &e), 0, "%s", e.msg);
        cr_assert_eq(acc.in_channels, 2);
        cr_assert_eq(acc.out_channels, 2);
        cr_assert_eq(acc.latency, 3);
        cr_assert_eq(acc.format, fmt);
        cr_assert_str_eq(acc.model, "gain2");
        cr_assert_str_eq(cvd_client_accepted(c)->model, "gain2");
        cr_assert_eq(cvd_client_ping(c, &rtt, &e), 0, "%s", e.msg);
        cr_assert_geq(rtt, 0.0);
        for (size_t i = 0; i < n * 2; i++)
            x[i] = (float)(cvd_rng_uniform(&r) * 1.2 - 0.6);
        got = stream_through(c, &r, x, n, 2, 2, y);
        cr_assert_eq(got, n);
        for (size_t i = 0; i < n * 2; i++) {
            float want = fmt == 1 ? 2 * x[i]
                                  : cvd_s16_to_float(cvd_s16_from_float(
                                        2 * cvd_s16_to_float(cvd_s16_from_float(x[i]))));
            cr_assert_eq(y[i], want, "format %d sample %zu (seed %llu)", fmt, i,
                         (unsigned long long)seed);
        }
        cvd_client_get_stats(c, &st);
        cr_assert_eq(st.frames_sent, n);
        cr_assert_eq(st.frames_received, n);
        cr_assert_eq(st.next_frame, n);
        cvd_client_close(c);
        tsrv_join(&s);
        cr_assert_leq(s.max_in_frames, 100, "HELLO's block is respected");
        cr_assert_eq(s.frames_in, n);
        cr_assert_eq(s.pings, 1);
        free(x);
        free(y);
    }
}

Test(proto_client, channels_from_the_server_and_bytes_api)
{
    tsrv s;
    cvd_client *c;
    cvd_client_request h;
    cvd_client_accept acc;
    cvd_err e = {0};
    int16_t in[4] = {1000, -2000, 32767, -32768}, out[8];
    long k;
    size_t got = 0;
    tsrv_start(&s, 0);
    c = connect_ok(&s);
    cvd_client_request_init(&h);
    h.format = CVD_CLIENT_S16LE;
    h.model = "split"; /* channels 0: the model's */
    cr_assert_eq(cvd_client_hello(c, &h, &acc, &e), 0, "%s", e.msg);
    cr_assert_eq(acc.in_channels, 1);
    cr_assert_eq(acc.out_channels, 2);
    cr_assert_eq(cvd_client_send_bytes(c, in, 4, &e), 0, "%s", e.msg);
    cr_assert_eq(cvd_client_end(c, &e), 0, "%s", e.msg);
    while ((k = cvd_client_recv_bytes(c, out + 2 * got, 4 - got, -1, &e)) > 0)
        got += (size_t)k;
    cr_assert_eq(k, 0, "%s", e.msg);
    cr_assert_eq(got, 4);
    cr_assert_eq(out[0], 1000);
    cr_assert_eq(out[1], -1000);
    cr_assert_eq(out[4], 32767);
    cr_assert_eq(out[5], -32767);
    cr_assert_eq(out[6], -32768);
    cr_assert_eq(out[7], 32767, "-(-1) clips to 32767");
    cr_assert_eq(cvd_client_send(c, NULL, 0, &e), CVD_ESTATE);
    cr_assert(strstr(e.msg, "send after END"), "%s", e.msg);
    cvd_client_close(c);
    tsrv_join(&s);
}

Test(proto_client, big_send_without_reading_does_not_deadlock)
{
    tsrv s;
    cvd_client *c;
    cvd_client_request h;
    cvd_err e = {0};
    const size_t n = 1 << 20; /* 4 MiB each way: more than the socket buffers */
    float *x = calloc(n, sizeof(float)), *y = malloc(sizeof(float) * n);
    size_t got = 0;
    long k;
    for (size_t i = 0; i < n; i++)
        x[i] = (float)(i % 1000) / 1000.0f;
    tsrv_start(&s, 0);
    c = connect_ok(&s);
    cvd_client_request_init(&h);
    h.model = "gain2";
    cr_assert_eq(cvd_client_hello(c, &h, NULL, &e), 0, "%s", e.msg);
    cr_assert_eq(cvd_client_send(c, x, n, &e), 0, "%s", e.msg);
    cr_assert_eq(cvd_client_end(c, &e), 0, "%s", e.msg);
    while ((k = cvd_client_recv(c, y + got, n - got, -1, &e)) > 0)
        got += (size_t)k;
    cr_assert_eq(k, 0, "%s", e.msg);
    cr_assert_eq(got, n);
    for (size_t i = 0; i < n; i += 4099)
        cr_assert_eq(y[i], 2 * x[i]);
    cvd_client_close(c);
    tsrv_join(&s);
    free(x);
    free(y);
}

Test(proto_client, subscribe_counts_dropped_frames)
{
    tsrv s;
    cvd_client *c;
    cvd_client_accept acc;
    cvd_client_stats st;
    cvd_err e = {0};
    float y[64];
    size_t got = 0;
    long k;
    tsrv_start(&s, 0);
    c = connect_ok(&s);
    cr_assert_eq(cvd_client_subscribe(c, "live", CVD_CLIENT_F32LE, &acc, &e), 0, "%s", e.msg);
    cr_assert_str_eq(acc.model, "live-model");
    while ((k = cvd_client_recv(c, y + got, 7, -1, &e)) > 0)
        got += (size_t)k;
    cr_assert_eq(k, 0, "%s", e.msg);
    cr_assert_eq(got, 30);
    cr_assert_eq(y[10], 100.0f / 1024.0f);
    cvd_client_get_stats(c, &st);
    cr_assert_eq(st.frames_dropped, 5);
    cr_assert_eq(st.next_frame, 35);
    cr_assert_eq(cvd_client_send(c, y, 1, &e), CVD_ESTATE);
    cvd_client_close(c);
    tsrv_join(&s);
}

Test(proto_client, refusals_become_clear_errors)
{
    tsrv s;
    cvd_client *c;
    cvd_client_request h;
    cvd_err e = {0};
    tsrv_start(&s, 0);
    c = connect_ok(&s);
    cvd_client_request_init(&h);
    h.model = "nope";
    cr_assert_eq(cvd_client_hello(c, &h, NULL, &e), CVD_EIO);
    cr_assert(strstr(e.msg, "the server refused: unknown_model (3): no model named 'nope'"), "%s",
              e.msg);
    cr_assert(strstr(e.msg, "127.0.0.1:"), "%s", e.msg);
    cr_assert_eq(cvd_client_server_error(c), CVD_FR_E_UNKNOWN_MODEL);
    /* sticky */
    cr_assert_eq(cvd_client_end(c, &e), CVD_EIO);
    cr_assert(strstr(e.msg, "unknown_model"), "%s", e.msg);
    cvd_client_close(c);
    tsrv_join(&s);

    tsrv_start(&s, 0);
    c = connect_ok(&s);
    cr_assert_eq(cvd_client_subscribe(c, "dead", CVD_CLIENT_F32LE, NULL, &e), CVD_EIO);
    cr_assert(strstr(e.msg, "unknown_stream (9)"), "%s", e.msg);
    cvd_client_close(c);
    tsrv_join(&s);

    tsrv_start(&s, 3);
    c = connect_ok(&s);
    cvd_client_request_init(&h);
    cr_assert_eq(cvd_client_hello(c, &h, NULL, &e), CVD_EUNSUPPORTED);
    cr_assert(strstr(e.msg, "unsupported_version (2)"), "%s", e.msg);
    cvd_client_close(c);
    tsrv_join(&s);

    tsrv_start(&s, 0);
    c = connect_ok(&s);
    cvd_client_request_init(&h);
    h.model = "split";
    h.channels = 2;
    cr_assert_eq(cvd_client_hello(c, &h, NULL, &e), CVD_EIO);
    cr_assert(strstr(e.msg, "bad_format (4): model split takes 1 channel"), "%s", e.msg);
    cvd_client_close(c);
    tsrv_join(&s);
}

Test(proto_client, broken_servers)
{
    tsrv s;
    cvd_client *c;
    cvd_client_request h;
    cvd_err e = {0};
    float x[8] = {0}, y[64];
    long k;
    /* garbage after the first output */
    tsrv_start(&s, 1);
    c = connect_ok(&s);
    cvd_client_request_init(&h);
    h.model = "gain2";
    cr_assert_eq(cvd_client_hello(c, &h, NULL, &e), 0, "%s", e.msg);
    k = cvd_client_send(c, x, 8, &e);
    while (k == 0 && (k = cvd_client_recv(c, y, 64, -1, &e)) > 0)
        k = 0;
    cr_assert_eq(k, CVD_EFORMAT);
    cr_assert(strstr(e.msg, "protocol error in what the server sent: unknown message type 42"),
              "%s", e.msg);
    cvd_client_close(c);
    tsrv_join(&s);
    /* closes in the middle of the stream */
    tsrv_start(&s, 2);
    c = connect_ok(&s);
    cr_assert_eq(cvd_client_hello(c, &h, NULL, &e), 0, "%s", e.msg);
    cr_assert_eq(cvd_client_send(c, x, 8, &e), 0, "%s", e.msg);
    while ((k = cvd_client_recv(c, y, 64, -1, &e)) > 0)
        ;
    cr_assert_eq(k, CVD_EIO);
    cr_assert(strstr(e.msg, "the server closed the connection before the end of the stream"), "%s",
              e.msg);
    cvd_client_close(c);
    tsrv_join(&s);
}

Test(proto_client, connection_refused_names_the_address)
{
    struct sockaddr_in a;
    socklen_t al = sizeof a;
    cvd_client *c;
    cvd_err e = {0};
    char want[64];
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    cr_assert_eq(getsockname(fd, (struct sockaddr *)&a, &al), 0);
    close(fd); /* a port nobody listens on */
    {
        char port[16];
        snprintf(port, sizeof port, "%u", (unsigned)ntohs(a.sin_port));
        cr_assert_eq(cvd_client_connect("127.0.0.1", port, 2000, &c, &e), CVD_EIO);
    }
    cr_assert_null(c);
    snprintf(want, sizeof want, "connect 127.0.0.1:%u: Connection refused",
             (unsigned)ntohs(a.sin_port));
    cr_assert_str_eq(e.msg, want);
    cr_assert_eq(cvd_client_connect("no-such-host.invalid", "7401", 2000, &c, &e), CVD_EIO);
    cr_assert(strstr(e.msg, "connect no-such-host.invalid:7401: "), "%s", e.msg);
    cr_assert_eq(cvd_client_connect("127.0.0.1", "notaport", 2000, &c, &e), CVD_EIO);
    cr_assert(strstr(e.msg, "connect 127.0.0.1:notaport: "), "%s", e.msg);
}

Test(proto_client, over_a_socketpair)
{
    int sv[2];
    tsrv s;
    cvd_client *c;
    cvd_client_request h;
    cvd_client_accept acc;
    cvd_err e = {0};
    float x[5] = {0.1f, 0.2f, 0.3f, 0.4f, 0.5f}, y[5];
    size_t got = 0;
    long k;
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    memset(&s, 0, sizeof s);
    s.lfd = -1;
    s.fd = sv[1];
    cr_assert_eq(pthread_create(&s.th, NULL, tsrv_main, &s), 0);
    cr_assert_eq(cvd_client_from_fd(sv[0], "pair", &c, &e), 0, "%s", e.msg);
    cr_assert_str_eq(cvd_client_peer(c), "pair");
    cr_assert_eq(cvd_client_fd(c), sv[0]);
    cvd_client_request_init(&h);
    h.model = "gain2";
    cr_assert_eq(cvd_client_hello(c, &h, &acc, &e), 0, "%s", e.msg);
    cr_assert_eq(cvd_client_hello(c, &h, &acc, &e), CVD_ESTATE);
    /* before the latency is filled, nothing comes */
    cr_assert_eq(cvd_client_send(c, x, 3, &e), 0, "%s", e.msg);
    cr_assert_eq(cvd_client_recv(c, y, 5, 50, &e), 0);
    cr_assert_eq(cvd_client_done(c), 0);
    cr_assert_eq(cvd_client_send(c, x + 3, 2, &e), 0, "%s", e.msg);
    cr_assert_eq(cvd_client_end(c, &e), 0, "%s", e.msg);
    while ((k = cvd_client_recv(c, y + got, 5 - got, -1, &e)) > 0)
        got += (size_t)k;
    cr_assert_eq(got, 5);
    for (int i = 0; i < 5; i++)
        cr_assert_eq(y[i], 2 * x[i]);
    cvd_client_close(c);
    pthread_join(s.th, NULL);
}

Test(proto_client, misuse_is_refused)
{
    cvd_client *c;
    cvd_client_request h;
    cvd_err e = {0};
    int sv[2];
    float y[1];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    cr_assert_eq(cvd_client_from_fd(sv[0], NULL, &c, &e), 0);
    cr_assert_eq(cvd_client_send(c, y, 1, &e), CVD_ESTATE);
    cr_assert(strstr(e.msg, "server: send before the session was accepted"), "%s", e.msg);
    cr_assert_eq(cvd_client_recv(c, y, 1, 0, &e), CVD_ESTATE);
    cr_assert_eq(cvd_client_ping(c, NULL, &e), CVD_ESTATE);
    cvd_client_request_init(&h);
    h.format = 3;
    cr_assert_eq(cvd_client_hello(c, &h, NULL, &e), CVD_EINVAL);
    cvd_client_request_init(&h);
    h.role = CVD_CLIENT_SUBSCRIBE;
    cr_assert_eq(cvd_client_hello(c, &h, NULL, &e), CVD_EINVAL);
    cr_assert(strstr(e.msg, "stream name is missing"), "%s", e.msg);
    /* a silent server: the timeout names the wait */
    cvd_client_set_timeout(c, 100);
    cvd_client_request_init(&h);
    cr_assert_eq(cvd_client_hello(c, &h, NULL, &e), CVD_EIO);
    cr_assert(strstr(e.msg, "timed out after 100 ms waiting for ACCEPT"), "%s", e.msg);
    cvd_client_close(c);
    close(sv[1]);
    cvd_client_close(NULL);
}
