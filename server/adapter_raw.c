/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The raw protocol's adapter (conn.h; docs/PROTOCOL.md, "Raw"): bare samples in the
 * listener's format both ways, the listener's model from the first byte (its stream is built
 * when the first bytes come, not at accept). No handshake, no
 * messages, no words for errors: a refusal is a close. The peer's FIN ends the input, and a
 * trailing incomplete frame is dropped (logged).
 */
#include <stdlib.h>

#include "conn.h"
#include "convd_proto.h"
#include "log.h"
#include "metrics.h"

typedef struct raw_state {
    cvd_raw_decoder *dec;
    cvd_sample_format fmt;
} raw_state;

static int raw_open(cvd_conn *c, cvd_err *err)
{
    raw_state *s = calloc(1, sizeof *s);
    if (s == NULL)
        return cvd_err_set(err, CVD_ENOMEM, "out of memory");
    cvd_conn_set_state(c, s);
    s->fmt = cvd_conn_listener(c)->format;
    return CVD_OK; /* the stream comes with the first bytes (raw_decode) */
}

/* The decoder, once the stream runs. */
static int raw_decoder(cvd_conn *c, void *state, cvd_err *err)
{
    raw_state *s = state;
    return cvd_raw_decoder_create(s->fmt, cvd_conn_in_channels(c), &s->dec, err);
}

static void raw_close(cvd_conn *c)
{
    raw_state *s = cvd_conn_state(c);
    if (s) {
        cvd_raw_decoder_destroy(s->dec);
        free(s);
    }
}

static int raw_decode(cvd_conn *c)
{
    raw_state *s = cvd_conn_state(c);
    if (!cvd_adapter_first_bytes(c, s->dec != NULL, raw_decoder, s))
        return 0;
    while (cvd_conn_taking(c)) {
        size_t room, used = 0;
        const uint8_t *p;
        float *dst = cvd_conn_block_space(c, &room);
        size_t len = cvd_conn_input(c, &p);
        if (room == 0 || len == 0)
            break;
        size_t got = cvd_raw_decode(s->dec, p, len, &used, dst, room);
        cvd_conn_consume(c, used);
        if (!cvd_conn_block_add(c, got))
            return 0;
    }
    return cvd_conn_block_full(c);
}

static void raw_encode(cvd_conn *c, const float *y, size_t n, uint64_t dropped)
{
    raw_state *s = cvd_conn_state(c);
    const int ch = cvd_conn_out_channels(c);
    (void)dropped; /* raw has no way to say it */
    if (n == 0)
        return;
    void *d = cvd_conn_out_begin(c, n * (size_t)ch * cvd_sample_bytes(s->fmt));
    if (d == NULL)
        return;
    cvd_conn_out_commit(c, d, cvd_raw_encode(s->fmt, y, n, ch, d));
}

static void raw_stream_end(cvd_conn *c)
{
    raw_state *s = cvd_conn_state(c);
    if (s->dec && cvd_raw_decoder_pending(s->dec))
        cvd_log_info("%s: the stream ended inside a frame (%zu bytes dropped)", cvd_conn_peer(c),
                     cvd_raw_decoder_pending(s->dec));
}

static int raw_peer_eof(cvd_conn *c)
{
    (void)c;
    return 1; /* the FIN is raw's end of input */
}

const cvd_adapter cvd_adapter_raw = {
    .name = "raw",
    .open = raw_open,
    .close = raw_close,
    .decode = raw_decode,
    .encode = raw_encode,
    .stream_end = raw_stream_end,
    .peer_eof = raw_peer_eof,
};
