/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The wire codecs of proto/ other than framed (test_proto_framed.c): samples, raw, line and
 * the C-locale text codec.
 *
 *   samples  s16 edge cases (-1, 1, clipping, rounding), f32 bit-exactness, NaN/Inf checks,
 *            the one sample-format parser
 *   raw      partial frames across reads
 *   line     CRLF, blanks, comments, empty lines, errors and their texts, huge lines, NaN/Inf
 *            policy, locale independence, splits
 *   text     the float text codec the line protocol and the tools' csv share
 *
 * Randomised tests print their seed on failure; rerun with CVD_SEED=<seed>.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <locale.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "alloc_count.h"
#include "audiofile.h"
#include "convd_proto.h"
#include "proto_util.h"
#include "testutil.h"

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

/* ==== text: the C-locale float codec ===========================================================
 */

Test(proto_text, parse_float_reports_where_and_why)
{
    char *end;
    float v = -7.0f;
    const char *s = "1.5x";
    cr_assert_eq(cvd_text_parse_float(s, &end, &v), 0);
    cr_assert_eq(v, 1.5f);
    cr_assert_eq(end, s + 3);
    s = "abc";
    v = -7.0f;
    cr_assert_eq(cvd_text_parse_float(s, &end, &v), CVD_EFORMAT);
    cr_assert_eq(end, s);
    cr_assert_eq(v, -7.0f, "a failed parse leaves the value alone");
    s = "-1e39,2";
    cr_assert_eq(cvd_text_parse_float(s, &end, &v), CVD_ERANGE);
    cr_assert(isinf(v) && v < 0);
    cr_assert_eq(*end, ',');
    cr_assert_eq(cvd_text_parse_float("1e-50", NULL, &v), 0, "underflow is not an error");
    cr_assert_eq(v, 0.0f);
    cr_assert_eq(cvd_text_parse_float("1e-40", NULL, &v), 0);
    cr_assert(v > 0 && v < 1.2e-38f, "a subnormal: %g", (double)v);
    cr_assert_eq(cvd_text_parse_float(" \t2", NULL, &v), 0, "leading white space is skipped");
    cr_assert_eq(v, 2.0f);
    cr_assert_eq(cvd_text_parse_float("", &end, &v), CVD_EFORMAT);
}

Test(proto_text, format_frames_fits_whole_frames_only)
{
    const float x[6] = {0.5f, -1.0f, 1e-7f, 3.40282347e38f, -0.0f, 16777216.0f};
    char buf[64];
    size_t done = 99;
    long n = cvd_text_format_frames(x, 3, 2, buf, sizeof buf, &done);
    cr_assert_eq(done, 3);
    cr_assert_eq(n, (long)strlen("0.5,-1\n1.00000001e-07,3.40282347e+38\n-0,16777216\n"));
    cr_assert(memcmp(buf, "0.5,-1\n1.00000001e-07,3.40282347e+38\n-0,16777216\n", (size_t)n) == 0);
    /* room for the first frame and part of the second: one frame */
    n = cvd_text_format_frames(x, 3, 2, buf, 12, &done);
    cr_assert_eq(done, 1);
    cr_assert_eq(n, 7);
    n = cvd_text_format_frames(x, 3, 2, buf, 3, &done);
    cr_assert_eq(n, 0);
    cr_assert_eq(done, 0);
    cr_assert_eq(cvd_text_format_frames(x, 1, 0, buf, sizeof buf, &done), CVD_EINVAL);
    /* the bound the header promises holds for the widest values */
    {
        const float w[4] = {-1.17549435e-38f, -3.40282347e38f, -1.40129846e-45f, -1.23456791e-10f};
        char small[4 * CVD_TEXT_VALUE_CHARS];
        cr_assert_eq(
            cvd_text_format_frames(w, 1, 4, small, sizeof small, &done),
            (long)strlen("-1.17549435e-38,-3.40282347e+38,-1.40129846e-45,-1.23456791e-10\n"));
        cr_assert_eq(done, 1);
    }
}

/* The line protocol prints exactly what the tools' csv writer prints: one codec. */
Test(proto_text, line_encoder_and_csv_files_agree)
{
    char tmpl[] = "/tmp/convd-text-XXXXXX", path[64];
    float x[3 * 50];
    const uint64_t seed = tu_seed();
    cvd_rng r;
    cvd_err e = {0};
    size_t done, len = 0;
    char *line = malloc(sizeof x / sizeof x[0] * CVD_TEXT_VALUE_CHARS);
    int fd = mkstemp(tmpl);
    cr_assert(fd >= 0 && line != NULL);
    close(fd);
    cvd_rng_seed(&r, seed);
    for (size_t i = 0; i < sizeof x / sizeof x[0]; i++)
        x[i] = (float)(cvd_rng_uniform(&r) * 2e6 - 1e6) * (i % 7 ? 1e-9f : 1.0f);
    long n = cvd_line_encode(x, 50, 3, line, sizeof x / sizeof x[0] * CVD_TEXT_VALUE_CHARS, &done);
    cr_assert(n > 0 && done == 50);
    snprintf(path, sizeof path, "%s.csv", tmpl);
    cr_assert_eq(cvd_af_save(path, CVD_AF_CSV, 3, 0, x, 50, &e), 0, "%s", e.msg);
    char *csv = tu_read_file(path, &len);
    cr_assert_not_null(csv);
    cr_assert_eq(len, (size_t)n, "csv %zu bytes, line %ld (seed %llu)", len, n,
                 (unsigned long long)seed);
    cr_assert(memcmp(csv, line, len) == 0, "seed %llu", (unsigned long long)seed);
    unlink(path);
    unlink(tmpl);
    free(csv);
    free(line);
}
