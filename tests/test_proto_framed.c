/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The framed protocol's codec (proto/framed.c): round trips, every malformed input class,
 * every split of a byte stream into 1..N byte reads and random splits giving identical
 * results, mutation fuzzing, no allocation per message, the hex dump of docs/PROTOCOL.md.
 *
 * Randomised tests print their seed on failure; rerun with CVD_SEED=<seed>.
 *
 * Long because: it walks every malformed-input class and every split of the stream, one suite
 * over one codec.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <locale.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc_count.h"
#include "convd_proto.h"
#include "proto_util.h"
#include "testutil.h"

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
    cvd_fr_hello h = {1, CVD_ROLE_PROCESS, CVD_FMT_F32LE, 96000, 2, 256, "", "pub", NULL};

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
    cvd_fr_hello h = {1, CVD_ROLE_PROCESS, CVD_FMT_F32LE, 48000, 1, 64, "amp", "", NULL};
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
    cvd_fr_hello h = {1, (uint8_t)role, CVD_FMT_F32LE, 48000, 1, 0, "m", stream, NULL};
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
    b[5] = 3;
    cr_assert_eq(fr_expect_error(CVD_FR_SERVER, b, n, t, sizeof t), CVD_FR_E_UNSUPPORTED_VERSION);
    cr_assert_str_eq(t, "protocol version 3 is not supported; supported versions: 1, 2");
    b[5] = 0;
    cr_assert_eq(fr_expect_error(CVD_FR_SERVER, b, n, t, sizeof t), CVD_FR_E_UNSUPPORTED_VERSION);
    {
        const uint8_t v3[] = {3, 0, 0, 0, CVD_FR_HELLO, 0x03, 0x00}; /* a shorter v3 HELLO */
        EXPECT_ERR(CVD_FR_SERVER, v3, sizeof v3, CVD_FR_E_UNSUPPORTED_VERSION,
                   "supported versions: 1, 2");
    }
    /* a version 1 HELLO read as version 2: its token field is missing */
    n = good_hello(b, 0, "");
    b[5] = 2;
    EXPECT_ERR(CVD_FR_SERVER, b, n, CVD_FR_E_BAD_MESSAGE, "HELLO");
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
    cvd_fr_hello h = {1, 0, CVD_FMT_F32LE, 0, 1, 0, "", "", NULL};
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
    cr_assert_str_eq(cvd_fr_error_name(CVD_FR_E_UNAUTHORIZED), "unauthorized");
    cr_assert_str_eq(cvd_fr_error_name(CVD_FR_E_FORBIDDEN), "forbidden");
    cr_assert_str_eq(cvd_fr_error_name(14), "unknown");
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

/* Version 2: the HELLO's token, byte for byte as docs/PROTOCOL.md lays it out. */
Test(proto_framed, version_2_hello_carries_a_token)
{
    uint8_t buf[4096];
    cvd_bytes b = {buf, 0, sizeof buf};
    cvd_fr_hello h = {.version = 2,
                      .role = CVD_ROLE_PROCESS,
                      .format = CVD_FMT_S16LE,
                      .rate = 48000,
                      .channels = 1,
                      .block = 64,
                      .model = "amp",
                      .stream = "studio-a",
                      .token = "s3cr3t-token"};
    cr_assert_eq(cvd_fr_put_hello(&b, &h, NULL), 0);
    const uint8_t want[] = {/* length 19 + M + S + 2 + T = 19 + 3 + 8 + 2 + 12 */ 44,
                            0,
                            0,
                            0,
                            1,
                            2,
                            0,
                            0,
                            2,
                            0x80,
                            0xbb,
                            0,
                            0,
                            1,
                            0,
                            64,
                            0,
                            0,
                            0,
                            3,
                            0,
                            'a',
                            'm',
                            'p',
                            8,
                            0,
                            's',
                            't',
                            'u',
                            'd',
                            'i',
                            'o',
                            '-',
                            'a',
                            12,
                            0,
                            's',
                            '3',
                            'c',
                            'r',
                            '3',
                            't',
                            '-',
                            't',
                            'o',
                            'k',
                            'e',
                            'n'};
    cr_assert_eq(b.len, sizeof want);
    cr_assert_eq(memcmp(buf, want, sizeof want), 0);
    cvd_fr_decoder *d = NULL;
    cr_assert_eq(cvd_fr_decoder_create(CVD_FR_SERVER, 0, &d, NULL), 0);
    cvd_fr_msg m;
    size_t used = 0;
    cr_assert_eq(cvd_fr_decode(d, buf, b.len, &used, &m, NULL), 1);
    cr_assert_eq(m.hello.version, 2);
    cr_assert_str_eq(m.hello.token, "s3cr3t-token");
    cr_assert_str_eq(m.hello.stream, "studio-a");
    cvd_fr_decoder_destroy(d);

    /* an empty token, and a version 1 HELLO: the decoder gives "" */
    h.token = "";
    b.len = 0;
    cr_assert_eq(cvd_fr_put_hello(&b, &h, NULL), 0);
    cr_assert_eq(b.len, sizeof want - 12);
    cr_assert_eq(cvd_fr_decoder_create(CVD_FR_SERVER, 0, &d, NULL), 0);
    cr_assert_eq(cvd_fr_decode(d, buf, b.len, &used, &m, NULL), 1);
    cr_assert_str_eq(m.hello.token, "");
    cvd_fr_decoder_destroy(d);
    h.version = 1;
    h.token = NULL;
    b.len = 0;
    cr_assert_eq(cvd_fr_put_hello(&b, &h, NULL), 0);
    cr_assert_eq(b.len, sizeof want - 14);
    cr_assert_eq(cvd_fr_decoder_create(CVD_FR_SERVER, 0, &d, NULL), 0);
    cr_assert_eq(cvd_fr_decode(d, buf, b.len, &used, &m, NULL), 1);
    cr_assert_eq(m.hello.version, 1);
    cr_assert_str_eq(m.hello.token, "");
    cvd_fr_decoder_destroy(d);

    /* refusals: a token in version 1, a version nobody speaks, a token too long or not UTF-8 */
    cvd_err err = {0};
    h.token = "x";
    cr_assert_eq(cvd_fr_put_hello(&b, &h, &err), CVD_EINVAL);
    cr_assert(strstr(err.msg, "version 1 has no token"), "%s", err.msg);
    h.version = 3;
    cr_assert_eq(cvd_fr_put_hello(&b, &h, &err), CVD_EINVAL);
    h.version = 2;
    char longtok[CVD_FR_MAX_STRING + 2];
    memset(longtok, 'k', sizeof longtok - 1);
    longtok[sizeof longtok - 1] = '\0';
    h.token = longtok;
    cr_assert_eq(cvd_fr_put_hello(&b, &h, &err), CVD_EINVAL);
    cr_assert(strstr(err.msg, "HELLO token of 1025 bytes"), "%s", err.msg);
    /* a token field with bytes past it, and one cut short */
    h.token = "tok";
    b.len = 0;
    cr_assert_eq(cvd_fr_put_hello(&b, &h, NULL), 0);
    uint8_t bad[128];
    memcpy(bad, buf, b.len);
    bad[0] += 1;
    bad[b.len] = 'x';
    cr_assert_eq(cvd_fr_decoder_create(CVD_FR_SERVER, 0, &d, NULL), 0);
    cr_assert_lt(cvd_fr_decode(d, bad, b.len + 1, &used, &m, &err), 0);
    cr_assert(strstr(err.msg, "unexpected bytes after the token"), "%s", err.msg);
    cvd_fr_decoder_destroy(d);
    memcpy(bad, buf, b.len);
    bad[0] -= 1; /* the last byte of the token outside the message */
    cr_assert_eq(cvd_fr_decoder_create(CVD_FR_SERVER, 0, &d, NULL), 0);
    cr_assert_lt(cvd_fr_decode(d, bad, b.len - 1, &used, &m, &err), 0);
    cr_assert(strstr(err.msg, "token"), "%s", err.msg);
    cvd_fr_decoder_destroy(d);

    /* ACCEPT of either version is read by a client */
    for (int v = 1; v <= 2; v++) {
        cvd_fr_accept a = {(uint16_t)v, CVD_FMT_F32LE, 48000, 1, 1, 64, 0, 1 << 20, "amp"};
        b.len = 0;
        cr_assert_eq(cvd_fr_put_accept(&b, &a, NULL), 0);
        cr_assert_eq(cvd_fr_decoder_create(CVD_FR_CLIENT, 0, &d, NULL), 0);
        cr_assert_eq(cvd_fr_decode(d, buf, b.len, &used, &m, &err), 1, "%s", err.msg);
        cr_assert_eq(m.accept.version, v);
        cvd_fr_decoder_destroy(d);
    }
}
