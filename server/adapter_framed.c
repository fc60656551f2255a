/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The framed protocol's adapter (conn.h; docs/PROTOCOL.md, "Framed"): HELLO first (the
 * handshake: a model to process with, or a published stream to follow), then DATA both ways,
 * PING/PONG, END, ERROR and BYE. The peer's FIN without END cuts the stream: nothing is
 * flushed. The server's errors are ERROR messages.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conn.h"
#include "convd_proto.h"
#include "tokens.h"
#include "log.h"
#include "metrics.h"

typedef struct fr_state {
    cvd_fr_decoder *dec;
    int fmt;            /* the session's sample format (HELLO's) */
    size_t max_message; /* the longest message sent or taken */
    uint32_t seq_out;   /* the next DATA's sequence number */
    uint64_t first_out; /* the stream index of the next frame sent */
    int end_sent;       /* END (or something that excludes it) went out */
    int subscriber;
    int version;            /* the session's: the HELLO's */
    int authenticated;      /* a token of the listener's, or a verified client certificate */
    const uint8_t *samples; /* frames of the current DATA not yet taken into blocks */
    size_t frames;
    /* a HELLO's stream, built off the loop: what fr_started needs of the HELLO */
    char stream[CVD_FR_MAX_STRING + 1]; /* the name it publishes under ("": none) */
    char model[1100];                   /* the model, or the listener's chain "amp, cab" */
    int block, rate;                    /* rate: HELLO's (0: none, the models') */
} fr_state;

/* ---- sending ------------------------------------------------------------------------------ */

static void fr_send_error(cvd_conn *c, int code, const char *text)
{
    uint8_t buf[CVD_FR_MAX_STRING + 64];
    cvd_bytes b = {buf, 0, sizeof buf};
    if (cvd_fr_put_error(&b, code, text, NULL) == 0)
        cvd_conn_send(c, b.data, b.len);
}

static void fr_stream_end(cvd_conn *c)
{
    fr_state *s = cvd_conn_state(c);
    uint8_t buf[16];
    cvd_bytes b = {buf, 0, sizeof buf};
    if (s == NULL || s->end_sent || cvd_conn_in_handshake(c))
        return;
    s->end_sent = 1;
    if (cvd_conn_cut(c)) {
        /* the server stops before the client's END (or the publisher's): not a complete
         * stream, so no END: the output so far, then this */
        fr_send_error(c, CVD_FR_E_SHUTTING_DOWN,
                      s->subscriber ? "the server is stopping: the subscription ends here"
                                    : "the server is stopping: the stream was cut here, "
                                      "before your END");
        return;
    }
    if (cvd_fr_put_end(&b, NULL) == 0)
        cvd_conn_send(c, b.data, b.len);
}

static void fr_encode(cvd_conn *c, const float *y, size_t n, uint64_t dropped)
{
    fr_state *s = cvd_conn_state(c);
    const int ch = cvd_conn_out_channels(c);
    const size_t fb = cvd_sample_bytes(s->fmt) * (size_t)ch;
    size_t per = cvd_fr_max_frames(s->max_message, fb), done = 0;
    uint32_t d32 = dropped > UINT32_MAX ? UINT32_MAX : (uint32_t)dropped;
    if (n == 0 && dropped == 0)
        return;
    if (per == 0)
        per = 1; /* refused at HELLO: a frame always fits */
    s->first_out += dropped;
    /* messages of at most max_message; the frames lost go with the first */
    do {
        size_t m = n - done < per ? n - done : per;
        size_t cap = cvd_fr_data_size(m, fb);
        uint8_t *d = cvd_conn_out_begin(c, cap);
        if (d == NULL)
            return;
        cvd_bytes b = {d, 0, cap};
        if (cvd_fr_put_data(&b, s->seq_out++, s->first_out, d32, s->fmt, y + done * (size_t)ch, m,
                            ch, NULL) < 0) {
            cvd_conn_out_commit(c, d, 0);
            cvd_conn_close(c, CVD_DISC_ERROR);
            return;
        }
        d32 = 0;
        s->first_out += m;
        cvd_conn_out_commit(c, d, b.len);
        done += m;
    } while (done < n && !cvd_conn_closing(c));
}

/* ---- the handshake ------------------------------------------------------------------------ */

static void vfail(cvd_conn *c, int code, int reason, const char *fmt, va_list ap)
{
    fr_state *s = cvd_conn_state(c);
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    if (reason == CVD_DISC_UNAUTHORIZED || reason == CVD_DISC_FORBIDDEN ||
        reason == CVD_DISC_MEMORY)
        cvd_conn_log_limited(reason, "%s: HELLO refused: %s", cvd_conn_peer(c), msg);
    else
        cvd_log_info("%s: HELLO refused: %s", cvd_conn_peer(c), msg);
    fr_send_error(c, code, msg);
    s->end_sent = 1;
    cvd_conn_finish(c, reason);
}

static void fail_hello(cvd_conn *c, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void fail_hello(cvd_conn *c, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfail(c, code, CVD_DISC_MALFORMED, fmt, ap);
    va_end(ap);
}

/* A refusal counted by its own reason (CVD_DISC_*): tokens, memory, limits. Returns -1. */
static int refuse_hello(cvd_conn *c, int code, int reason, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int refuse_hello(cvd_conn *c, int code, int reason, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfail(c, code, reason, fmt, ap);
    va_end(ap);
    return -1;
}

static void send_accept(cvd_conn *c, int rate, int in_ch, int out_ch, int latency,
                        const char *model)
{
    fr_state *s = cvd_conn_state(c);
    uint8_t buf[CVD_FR_MAX_STRING + 128];
    cvd_bytes b = {buf, 0, sizeof buf};
    cvd_fr_accept a = {.version = (uint16_t)s->version,
                       .format = (uint8_t)s->fmt,
                       .rate = (uint32_t)rate,
                       .in_channels = (uint16_t)in_ch,
                       .out_channels = (uint16_t)out_ch,
                       .block = (uint32_t)cvd_conn_block(c),
                       .latency = (uint32_t)latency,
                       .max_message = (uint32_t)s->max_message,
                       .model = model};
    if (cvd_fr_put_accept(&b, &a, NULL) == 0)
        cvd_conn_send(c, b.data, b.len);
}

/* 1 if one frame of ch channels fits a DATA under max_message; else the HELLO is refused. */
static int frame_fits(cvd_conn *c, int ch)
{
    fr_state *s = cvd_conn_state(c);
    if (cvd_fr_max_frames(s->max_message, cvd_sample_bytes(s->fmt) * (size_t)ch) > 0)
        return 1;
    fail_hello(c, CVD_FR_E_BAD_FORMAT,
               "a frame of %d channels of %s does not fit in a message of max_message = %zu "
               "bytes",
               ch, cvd_sample_format_name(s->fmt), s->max_message);
    return 0;
}

/* Accepted: messages may now be as long as max_message. */
static void accepted(cvd_conn *c)
{
    fr_state *s = cvd_conn_state(c);
    if (!cvd_conn_in_handshake(c) && s->max_message > cvd_fr_decoder_max_message(s->dec)) {
        cvd_err err = {0};
        if (cvd_fr_decoder_set_max_message(s->dec, s->max_message, &err) < 0) {
            cvd_log_error("%s: %s", cvd_conn_peer(c), err.msg);
            cvd_conn_close(c, CVD_DISC_ERROR);
        }
    }
}

static void subscribe(cvd_conn *c, const cvd_fr_hello *h)
{
    fr_state *s = cvd_conn_state(c);
    const cvd_conf *cf = cvd_conn_conf(c);
    cvd_pub_info info;
    cvd_err err = {0};
    int rc;
    if (h->stream == NULL || h->stream[0] == '\0') {
        fail_hello(c, CVD_FR_E_UNKNOWN_STREAM, "subscribe: no stream named");
        return;
    }
    /* the ring holds what queue_limit allows, at least a few blocks */
    int probe_ch = h->channels ? h->channels : 1;
    int frames = (int)(cf->queue_limit / ((size_t)probe_ch * sizeof(float)));
    if (frames < 4096)
        frames = 4096;
    s->subscriber = 1;
    if ((rc = cvd_conn_subscribe(c, h->stream, frames, &info, &err)) < 0) {
        if (rc == CVD_ENOMEM)
            fail_hello(c, CVD_FR_E_INTERNAL, "out of memory");
        else if (rc == CVD_ERANGE)
            refuse_hello(c, CVD_FR_E_BUSY, CVD_DISC_MEMORY, "%s", err.msg);
        else
            fail_hello(c, CVD_FR_E_UNKNOWN_STREAM, "subscribe '%s': %s", h->stream, err.msg);
        return;
    }
    if (h->channels && h->channels != info.channels) {
        fail_hello(c, CVD_FR_E_BAD_FORMAT, "stream '%s' has %d channels, not %d", h->stream,
                   info.channels, h->channels);
        return;
    }
    if (!frame_fits(c, info.channels))
        return;
    cvd_conn_running(c, CVD_SERIES_STREAM, h->stream);
    send_accept(c, info.rate, info.channels, info.channels, info.latency, info.model);
    cvd_conn_peer_note(c, " (subscriber)");
    cvd_log_info("%s: subscribed to '%s'", cvd_conn_peer(c), h->stream);
}

static void process(cvd_conn *c, const cvd_fr_hello *h)
{
    fr_state *s = cvd_conn_state(c);
    const cvd_conf *cf = cvd_conn_conf(c);
    const cvd_conf_listen *lc = cvd_conn_listener(c);
    cvd_err err = {0};
    const char *mname = h->model && h->model[0] ? h->model : lc->model;
    if (mname[0] == '\0') {
        fail_hello(c, CVD_FR_E_UNKNOWN_MODEL,
                   "no model named in HELLO, and listener '%s' has no default", lc->name);
        return;
    }
    cvd_model *m = cvd_runtime_model(cvd_conn_runtime(c), mname);
    if (m == NULL) {
        /* the list of models is for clients the server knows (a token, a verified client
         * certificate): to others it would be a map of what to ask for */
        if (!s->authenticated) {
            fail_hello(c, CVD_FR_E_UNKNOWN_MODEL, "unknown model '%s'", mname);
            return;
        }
        char names[256] = "";
        for (int i = 0; i < cf->n_models && strlen(names) < sizeof names - 70; i++)
            snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s", i ? ", " : "",
                     cf->models[i].name);
        fail_hello(c, CVD_FR_E_UNKNOWN_MODEL, "unknown model '%s' (models: %s)", mname, names);
        return;
    }
    if (h->channels && h->channels != cvd_model_in_channels(m)) {
        fail_hello(c, CVD_FR_E_BAD_FORMAT, "channels %d: model '%s' takes %d", h->channels, mname,
                   cvd_model_in_channels(m));
        return;
    }
    /* the model HELLO names, or the listener's (a chain: model = amp, cab, run in order) */
    int one = cvd_conf_find_model(cf, mname);
    const int use_chain = !(h->model && h->model[0]) && lc->n_chain > 1;
    const int *idx = use_chain ? lc->chain_index : &one;
    const int nidx = use_chain ? lc->n_chain : 1;
    const cvd_model *last = cvd_conn_runtime(c)->models[idx[nidx - 1]];
    /* HELLO's rate: each model runs at its own, resampled to it and back (the resampler's
     * range: 1000..768000 Hz); a model that runs on windows or changes the frame rate runs
     * at its own rate only */
    double mrate = cvd_model_sample_rate(m);
    int resampled = 0;
    for (int k = 0; k < nidx; k++) {
        const double r = cvd_model_sample_rate(cvd_conn_runtime(c)->models[idx[k]]);
        if (h->rate && r > 0 && r != (double)h->rate)
            resampled = 1;
    }
    if (resampled && !(h->rate >= 1000 && h->rate <= 768000)) {
        fail_hello(c, CVD_FR_E_BAD_FORMAT,
                   "rate %u: model '%s' runs at %.0f Hz; other rates are resampled, from "
                   "1000..768000 Hz",
                   h->rate, mname, mrate);
        return;
    }
    if (resampled && nidx == 1 &&
        (cvd_model_mode(m) != CVD_MODE_STREAMING || cvd_model_rate_ratio(m) != 1.0)) {
        fail_hello(c, CVD_FR_E_BAD_FORMAT,
                   "rate %u: model '%s' runs at %.0f Hz, and it %s: it is not resampled", h->rate,
                   mname, mrate,
                   cvd_model_mode(m) != CVD_MODE_STREAMING ? "runs on whole windows"
                                                           : "changes the frame rate");
        return;
    }
    int block = h->block ? (int)h->block : lc->block;
    if (block < 1 || block > 65536) {
        fail_hello(c, CVD_FR_E_BAD_FORMAT, "block %u: must be 1..65536", h->block);
        return;
    }
    if (h->block > (uint32_t)lc->max_block) {
        refuse_hello(c, CVD_FR_E_BAD_FORMAT, CVD_DISC_MAX_BLOCK,
                     "block %u: this listener takes blocks of at most %d frames (max_block)",
                     h->block, lc->max_block);
        return;
    }
    if (!frame_fits(c, cvd_model_in_channels(m)) || !frame_fits(c, cvd_model_out_channels(last)))
        return;
    snprintf(s->stream, sizeof s->stream, "%s", h->stream ? h->stream : "");
    s->model[0] = '\0';
    for (int k = 0; k < nidx; k++)
        snprintf(s->model + strlen(s->model), sizeof s->model - strlen(s->model), "%s%s",
                 k ? ", " : "", use_chain ? lc->chain[k] : mname);
    s->block = block;
    s->rate = (int)h->rate;
    int rc = cvd_conn_start_chain(c, idx, nidx, h->rate, block, &err);
    if (rc == CVD_ERANGE) {
        refuse_hello(c, CVD_FR_E_BUSY, CVD_DISC_MEMORY, "%s", err.msg);
        return;
    }
    if (rc < 0)
        fail_hello(c, CVD_FR_E_INTERNAL, "%s", err.msg);
    /* fr_started follows once the stream is built */
}

/* The HELLO's stream is built: its rate and latency are known, the client gets ACCEPT. */
static void fr_started(cvd_conn *c)
{
    fr_state *s = cvd_conn_state(c);
    const cvd_conf_listen *lc = cvd_conn_listener(c);
    cvd_err err = {0};
    const int rate = s->rate ? s->rate : (int)lround(cvd_conn_rate(c));
    if (cvd_fr_decoder_set_data_layout(s->dec, s->fmt, cvd_conn_in_channels(c), &err) < 0) {
        fail_hello(c, CVD_FR_E_INTERNAL, "%s", err.msg);
        return;
    }
    if (s->stream[0]) {
        cvd_pub_info info = {
            .channels = cvd_conn_out_channels(c), .rate = rate, .latency = cvd_conn_latency(c)};
        snprintf(info.model, sizeof info.model, "%.71s", s->model);
        if (cvd_conn_publish(c, s->stream, &info, &err) < 0) {
            fail_hello(c, CVD_FR_E_BAD_MESSAGE, "publish: %s", err.msg);
            return;
        }
    }
    if (s->stream[0])
        cvd_conn_running(c, CVD_SERIES_STREAM, s->stream); /* published: the stream's series */
    else
        cvd_conn_running(c, CVD_SERIES_LISTENER, lc->name);
    send_accept(c, rate, cvd_conn_in_channels(c), cvd_conn_out_channels(c), cvd_conn_latency(c),
                s->model);
    cvd_log_debug("%s: model %s, block %d%s%s", cvd_conn_peer(c), s->model, s->block,
                  s->stream[0] ? ", publishing as " : "", s->stream);
    accepted(c);
}

/* Who the client is and what it may do (docs/PROTOCOL.md, "Tokens"). 0, or -1 refused. */
static int authorize(cvd_conn *c, const cvd_fr_hello *h)
{
    fr_state *s = cvd_conn_state(c);
    const cvd_runtime *rt = cvd_conn_runtime(c);
    const cvd_conf *cf = cvd_conn_conf(c);
    const cvd_tokens *toks = rt->tokens[cvd_conn_listener_index(c)];
    const char *stream = h->stream ? h->stream : "";
    const cvd_token *tok = NULL;
    if (toks) {
        if (h->version < 2)
            return refuse_hello(c, CVD_FR_E_UNAUTHORIZED, CVD_DISC_UNAUTHORIZED,
                                "this listener needs a token: send HELLO version 2 with one "
                                "(version 1 has none)");
        if (h->token == NULL || h->token[0] == '\0')
            return refuse_hello(c, CVD_FR_E_UNAUTHORIZED, CVD_DISC_UNAUTHORIZED,
                                "this listener needs a token, and HELLO has none");
        tok = cvd_tokens_find(toks, h->token);
        if (tok == NULL)
            return refuse_hello(c, CVD_FR_E_UNAUTHORIZED, CVD_DISC_UNAUTHORIZED, "unknown token");
        if (h->role == CVD_ROLE_SUBSCRIBE && !cvd_token_may_subscribe(tok, stream))
            return refuse_hello(c, CVD_FR_E_FORBIDDEN, CVD_DISC_FORBIDDEN,
                                "this token may not subscribe to '%s'", stream);
        if (h->role == CVD_ROLE_PROCESS && stream[0] && !cvd_token_may_publish(tok, stream))
            return refuse_hello(c, CVD_FR_E_FORBIDDEN, CVD_DISC_FORBIDDEN,
                                "this token may not publish '%s'", stream);
        if (h->role == CVD_ROLE_PROCESS && !stream[0] && !cvd_token_may_process(tok))
            return refuse_hello(c, CVD_FR_E_FORBIDDEN, CVD_DISC_FORBIDDEN,
                                "this token may not run a model without publishing (no "
                                "'process' role)");
        cvd_log_debug("%s: the token of line %d", cvd_conn_peer(c), cvd_token_line(tok));
    }
    s->authenticated = tok != NULL || cvd_conn_tls_verified(c);
    if (h->role == CVD_ROLE_PROCESS && stream[0]) {
        /* live audio streams' names are the daemon's */
        for (int i = 0; i < cf->n_streams; i++)
            if (cf->streams[i].publish && strcmp(cf->streams[i].name, stream) == 0)
                return refuse_hello(c, CVD_FR_E_FORBIDDEN, CVD_DISC_FORBIDDEN,
                                    "'%s' is a live audio stream of this server: it cannot be "
                                    "published by a client",
                                    stream);
        /* names some token may publish are reserved to the tokens' holders: no client of a
         * listener without tokens may squat them (and feed a [stream] source) */
        if (toks == NULL && cvd_runtime_publish_claimed(rt, stream))
            return refuse_hello(c, CVD_FR_E_FORBIDDEN, CVD_DISC_FORBIDDEN,
                                "'%s' is reserved: only a client with a token that may publish "
                                "it can",
                                stream);
    }
    return 0;
}

static void handle_hello(cvd_conn *c, const cvd_fr_hello *h)
{
    fr_state *s = cvd_conn_state(c);
    s->fmt = h->format;
    s->version = h->version;
    if (authorize(c, h) < 0)
        return;
    if (h->role == CVD_ROLE_SUBSCRIBE)
        subscribe(c, h);
    else
        process(c, h);
    accepted(c); /* a subscriber; a process role's comes once its stream is built */
}

/* ---- the adapter ------------------------------------------------------------------------ */

/* The decoder's limit until HELLO is accepted: a HELLO with its strings at their longest
 * fits (3098 bytes); max_message comes after, for an accepted client only. */
#define HELLO_MAX_MESSAGE 4096

static int fr_open(cvd_conn *c, cvd_err *err)
{
    fr_state *s = calloc(1, sizeof *s);
    if (s == NULL)
        return cvd_err_set(err, CVD_ENOMEM, "out of memory");
    cvd_conn_set_state(c, s);
    s->max_message = cvd_conn_conf(c)->max_message;
    s->fmt = CVD_FMT_F32LE;
    s->version = CVD_FR_VERSION_MIN;
    return CVD_OK; /* the decoder comes with the first bytes */
}

static void fr_close(cvd_conn *c)
{
    fr_state *s = cvd_conn_state(c);
    if (s) {
        cvd_fr_decoder_destroy(s->dec);
        free(s);
    }
}

/* First the frames of the current DATA, then the next message. Before the handshake ends (and
 * for a subscriber) there is no block: messages only. */
static int fr_decode(cvd_conn *c)
{
    fr_state *s = cvd_conn_state(c);
    if (s->dec == NULL) {
        cvd_err err = {0};
        size_t first = s->max_message < HELLO_MAX_MESSAGE ? s->max_message : HELLO_MAX_MESSAGE;
        if (cvd_fr_decoder_create(CVD_FR_SERVER, first, &s->dec, &err) < 0) {
            cvd_log_error("%s: %s", cvd_conn_peer(c), err.msg);
            cvd_conn_close(c, CVD_DISC_ERROR);
            return 0;
        }
    }
    while (cvd_conn_taking(c)) {
        size_t room;
        const uint8_t *p;
        float *dst = cvd_conn_block_space(c, &room);
        if (dst != NULL && room == 0)
            break;
        if (dst != NULL && s->frames > 0) {
            /* the channel count is read here: a HELLO in this very call set it */
            const size_t ch = (size_t)cvd_conn_in_channels(c);
            size_t take = room < s->frames ? room : s->frames;
            cvd_samples_decode(s->fmt, s->samples, take * ch, dst);
            if (!cvd_conn_block_add(c, take))
                return 0;
            s->samples += take * ch * cvd_sample_bytes(s->fmt);
            s->frames -= take;
            continue;
        }
        size_t len = cvd_conn_input(c, &p);
        if (len == 0)
            break;
        cvd_fr_msg msg;
        cvd_err err = {0};
        size_t used = 0;
        int rc = cvd_fr_decode(s->dec, p, len, &used, &msg, &err);
        cvd_conn_consume(c, used);
        if (rc < 0) {
            cvd_log_info("%s: %s", cvd_conn_peer(c), err.msg);
            cvd_metrics_dropped(CVD_DROP_MALFORMED, 1);
            fr_send_error(c, cvd_fr_decoder_error(s->dec), err.msg);
            cvd_conn_finish(c, CVD_DISC_MALFORMED);
            return 0;
        }
        if (rc == 0)
            break;
        cvd_conn_progress(c); /* a whole message */
        switch (msg.type) {
        case CVD_FR_HELLO:
            handle_hello(c, &msg.hello);
            if (cvd_conn_in_handshake(c) || s->subscriber)
                return 0; /* refused, or a subscriber: no block to fill */
            break;
        case CVD_FR_DATA:
            s->samples = msg.data.samples;
            s->frames = msg.data.n_frames;
            break;
        case CVD_FR_END:
            cvd_conn_input_over(c);
            break;
        case CVD_FR_PING: {
            uint8_t buf[32];
            cvd_bytes b = {buf, 0, sizeof buf};
            if (cvd_fr_put_pong(&b, msg.token, NULL) == 0)
                cvd_conn_send(c, b.data, b.len);
            break;
        }
        case CVD_FR_BYE:
            s->end_sent = 1; /* no END after a BYE: just close */
            cvd_conn_finish(c, CVD_DISC_CLOSED);
            return 0;
        case CVD_FR_ERROR:
            cvd_log_info("%s: the client sent ERROR %d: %s", cvd_conn_peer(c), msg.error.code,
                         msg.error.text);
            cvd_conn_finish(c, CVD_DISC_ERROR);
            return 0;
        default:
            break;
        }
    }
    return cvd_conn_block_full(c);
}

/* A framed client ends its input with END; a plain close ends the connection, no flush. */
static int fr_peer_eof(cvd_conn *c)
{
    fr_state *s = cvd_conn_state(c);
    cvd_err err = {0};
    if (s->dec == NULL || cvd_fr_decoder_finish(s->dec, &err) < 0 || cvd_conn_in_handshake(c))
        cvd_log_debug("%s: closed %s", cvd_conn_peer(c), err.msg[0] ? err.msg : "before END");
    s->end_sent = 1;
    return 0;
}

const cvd_adapter cvd_adapter_framed = {
    .name = "framed",
    .handshake = "HELLO",
    .open = fr_open,
    .started = fr_started,
    .close = fr_close,
    .decode = fr_decode,
    .encode = fr_encode,
    .stream_end = fr_stream_end,
    .peer_eof = fr_peer_eof,
    .send_error = fr_send_error,
};
