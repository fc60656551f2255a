/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The line protocol's adapter (conn.h; docs/PROTOCOL.md, "Line"): one frame per text line
 * both ways, the listener's model from the first byte. A bad line is answered by its
 * "!ERR ..." line, after the output of the lines before it; the server's own errors are
 * "!ERR <code> <text>" lines too. The peer's FIN ends the input; a last line without its
 * newline still counts.
 */
#include <stdlib.h>

#include "conn.h"
#include "convd_proto.h"
#include "log.h"
#include "metrics.h"

typedef struct line_state {
    cvd_line_decoder *dec;
} line_state;

static int line_open(cvd_conn *c, cvd_err *err)
{
    line_state *s = calloc(1, sizeof *s);
    if (s == NULL)
        return cvd_err_set(err, CVD_ENOMEM, "out of memory");
    cvd_conn_set_state(c, s);
    return CVD_OK; /* the stream comes with the first bytes (line_decode) */
}

/* The decoder, once the stream runs. */
static int line_decoder(cvd_conn *c, void *state, cvd_err *err)
{
    line_state *s = state;
    return cvd_line_decoder_create(
        cvd_conn_in_channels(c), 0,
        cvd_conn_conf(c)->nonfinite_pass ? CVD_NONFINITE_PASS : CVD_NONFINITE_REJECT, &s->dec, err);
}

static void line_close(cvd_conn *c)
{
    line_state *s = cvd_conn_state(c);
    if (s) {
        cvd_line_decoder_destroy(s->dec);
        free(s);
    }
}

/* A rejected line: the output of the lines before it first, then its answer. */
static void answer(cvd_conn *c, const cvd_line_result *res)
{
    cvd_conn_block_flush(c);
    cvd_conn_send(c, res->error_line, res->error_len);
}

static int line_decode(cvd_conn *c)
{
    line_state *s = cvd_conn_state(c);
    if (!cvd_adapter_first_bytes(c, s->dec != NULL, line_decoder, s))
        return 0;
    while (cvd_conn_taking(c)) {
        size_t room;
        const uint8_t *p;
        cvd_line_result res;
        float *dst = cvd_conn_block_space(c, &room);
        size_t len = cvd_conn_input(c, &p);
        if (room == 0 || len == 0)
            break;
        /* the decoder applied the NaN/Inf policy already: block_add never refuses here */
        cvd_line_decode(s->dec, p, len, dst, room, &res);
        cvd_conn_consume(c, res.used);
        if (!cvd_conn_block_add(c, res.frames))
            return 0;
        if (res.error) {
            cvd_metrics_dropped(CVD_DROP_MALFORMED, 1);
            answer(c, &res);
        }
        if (res.used == 0 && res.frames == 0 && !res.error)
            break;
    }
    return cvd_conn_block_full(c);
}

static void line_encode(cvd_conn *c, const float *y, size_t n, uint64_t dropped)
{
    const int ch = cvd_conn_out_channels(c);
    const size_t cap = n * (size_t)ch * CVD_LINE_VALUE_CHARS + 8;
    size_t done = 0;
    (void)dropped; /* line has no way to say it */
    if (n == 0)
        return;
    char *d = cvd_conn_out_begin(c, cap);
    if (d == NULL)
        return;
    long len = cvd_line_encode(y, n, ch, d, cap, &done);
    if (len < 0) {
        cvd_conn_out_commit(c, d, 0);
        cvd_log_error("%s: out of memory", cvd_conn_peer(c));
        cvd_conn_close(c, CVD_DISC_ERROR);
        return;
    }
    cvd_conn_out_commit(c, d, (size_t)len);
}

/* The input ended: a last line without its "\n". */
static void line_input_end(cvd_conn *c)
{
    line_state *s = cvd_conn_state(c);
    cvd_line_result res;
    size_t room;
    float *dst = cvd_conn_block_space(c, &room);
    if (room == 0) {
        cvd_conn_block_flush(c);
        dst = cvd_conn_block_space(c, &room);
    }
    if (dst == NULL || room == 0)
        return; /* closing: the model failed */
    cvd_line_finish(s->dec, dst, &res);
    cvd_conn_block_add(c, res.frames);
    if (res.error)
        answer(c, &res);
}

/* The server stopped before the client's end of input: said after the output of what came. */
static void line_stream_end(cvd_conn *c)
{
    line_state *s = cvd_conn_state(c);
    char buf[CVD_LINE_ERROR_MAX + 64];
    if (!cvd_conn_cut(c) || s->dec == NULL)
        return;
    size_t n = cvd_line_error(buf, sizeof buf, cvd_fr_error_name(CVD_FR_E_SHUTTING_DOWN),
                              "the server stopped: the stream was cut before line %llu",
                              cvd_line_number(s->dec));
    cvd_conn_send(c, buf, n);
}

static int line_peer_eof(cvd_conn *c)
{
    (void)c;
    return 1; /* the FIN is line's end of input */
}

static void line_send_error(cvd_conn *c, int code, const char *text)
{
    char buf[CVD_LINE_ERROR_MAX + 64];
    size_t n = cvd_line_error(buf, sizeof buf, cvd_fr_error_name(code), "%s", text);
    cvd_conn_send(c, buf, n);
}

const cvd_adapter cvd_adapter_line = {
    .name = "line",
    .open = line_open,
    .close = line_close,
    .decode = line_decode,
    .encode = line_encode,
    .input_end = line_input_end,
    .stream_end = line_stream_end,
    .peer_eof = line_peer_eof,
    .send_error = line_send_error,
};
