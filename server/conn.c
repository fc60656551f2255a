/*
 * Connections: one TCP client, one stream with its own model state, on one worker.
 *
 * Reading only appends bytes to a bounded input buffer; the work step, run from the worker's
 * idle handle one block per connection per loop turn, decodes one block's frames, runs the
 * model on it, and queues the encoded output. So a client that sends a lot at once delays
 * the others by at most a block, memory is bounded (a full input buffer stops reading, which
 * stops the client through TCP), and a client that does not read its results stops being
 * processed once its output queue passes queue_limit (and so, in turn, stops being read).
 *
 * Blocks are always `block` frames except the last of a stream, so the output bytes do not
 * depend on how the input was split across reads: they equal convd-run's with --block.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "daemon.h"
#include "log.h"
#include "metrics.h"
#include "convd_proto.h"
#include "pubsub.h"

#define INBUF_BYTES (64 * 1024)

enum { ST_HANDSHAKE = 0, ST_RUN, ST_ENDED };

struct cvd_conn {
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_shutdown_t shut;
    cvd_worker *w;
    cvd_runtime *rt;
    const cvd_conf_listen *lc;
    char peer[96];
    int proto;
    int state;

    /* the stream */
    cvd_model *model;
    cvd_net *net;
    int in_ch, out_ch, block, max_out, fmt;
    float *blk; /* block * in_ch */
    int fill;
    float *obuf; /* max_out * out_ch */
    uint64_t frames_in, frames_out;
    cvd_stream_stats *stats;

    /* input */
    uint8_t *inbuf;
    size_t in_len, in_pos;
    int reading, eof, input_done;
    cvd_raw_decoder *raw;
    cvd_line_decoder *line;
    cvd_fr_decoder *fr;
    const uint8_t *fr_samples; /* DATA frames not yet taken into blocks */
    size_t fr_frames;

    /* framed output */
    uint32_t seq_out;
    uint64_t first_out;
    size_t max_message;
    int end_sent;

    /* fan-out */
    cvd_pub *pub;
    cvd_sub *sub;
    float *subbuf;
    int sub_frames;

    /* output */
    size_t queued;
    int paused;    /* output queue full: no processing until it drains */
    int finishing; /* no more input: close once the queue is empty */
    int shutting;  /* uv_shutdown issued: close when it completes */
    int closing;   /* uv_close issued */
    int handles_open;
    int reason;

    cvd_conn *next, *prev;
    cvd_conn *wnext;
    int in_work;
};

typedef struct wreq {
    uv_write_t req;
    cvd_conn *c;
    size_t len;
    char data[];
} wreq;

static void conn_close(cvd_conn *c, int reason);
static void conn_finish(cvd_conn *c);
static void schedule(cvd_conn *c);

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static const cvd_conf *conf_of(const cvd_conn *c)
{
    return c->rt->conf;
}

/* ---- output ----------------------------------------------------------------------------- */

static void on_written(uv_write_t *req, int status)
{
    wreq *r = (wreq *)req;
    cvd_conn *c = r->c;
    c->queued -= r->len;
    cvd_metrics_queue_bytes(-(int64_t)r->len);
    free(r);
    if (status < 0 && !c->closing) {
        cvd_log_debug("%s: write: %s", c->peer, uv_strerror(status));
        conn_close(c, CVD_DISC_ERROR);
        return;
    }
    if (c->closing)
        return;
    if (c->paused && c->queued <= conf_of(c)->queue_limit / 2) {
        c->paused = 0;
        schedule(c);
    }
    if (c->sub && c->queued <= conf_of(c)->queue_limit / 2)
        schedule(c);
    if (c->finishing && !c->shutting && c->queued == 0)
        conn_finish(c);
}

/* A buffer for n bytes of output, to fill and then send(). */
static wreq *out_alloc(size_t n)
{
    wreq *r = malloc(sizeof *r + n + 1);
    if (r)
        r->len = 0;
    return r;
}

static void out_send(cvd_conn *c, wreq *r)
{
    if (c->closing || c->shutting || r->len == 0) {
        free(r);
        return;
    }
    r->c = c;
    uv_buf_t b = uv_buf_init(r->data, (unsigned)r->len);
    c->queued += r->len;
    cvd_metrics_queue_bytes((int64_t)r->len);
    int rc = uv_write(&r->req, (uv_stream_t *)&c->tcp, &b, 1, on_written);
    if (rc < 0) {
        c->queued -= r->len;
        cvd_metrics_queue_bytes(-(int64_t)r->len);
        free(r);
        conn_close(c, CVD_DISC_ERROR);
    }
}

static void send_bytes(cvd_conn *c, const void *p, size_t n)
{
    wreq *r = out_alloc(n);
    if (r == NULL) {
        conn_close(c, CVD_DISC_ERROR);
        return;
    }
    memcpy(r->data, p, n);
    r->len = n;
    out_send(c, r);
}

/* framed: one message made by `put` into a fresh buffer of cap bytes */
static void send_fr_error(cvd_conn *c, int code, const char *text)
{
    uint8_t buf[CVD_FR_MAX_STRING + 64];
    cvd_bytes b = {buf, 0, sizeof buf};
    if (cvd_fr_put_error(&b, code, text, NULL) == 0)
        send_bytes(c, b.data, b.len);
}

static void send_fr_end(cvd_conn *c)
{
    uint8_t buf[16];
    cvd_bytes b = {buf, 0, sizeof buf};
    if (cvd_fr_put_end(&b, NULL) == 0)
        send_bytes(c, b.data, b.len);
    c->end_sent = 1;
}

static void send_line_error(cvd_conn *c, const char *code, const char *text)
{
    char buf[CVD_LINE_ERROR_MAX + 64];
    size_t n = cvd_line_error(buf, sizeof buf, code, "%s", text);
    send_bytes(c, buf, n);
}

/* Frames out of the model: encoded in the stream's protocol, and published. */
static void emit(cvd_conn *c, const float *y, int n)
{
    const int ch = c->out_ch;
    if (n <= 0 || c->closing)
        return;
    c->frames_out += (uint64_t)n;
    if (c->stats)
        atomic_fetch_add_explicit(&c->stats->frames_out, (unsigned long long)n,
                                  memory_order_relaxed);
    if (c->pub)
        cvd_pub_write(c->pub, y, n);
    if (c->proto == CVD_PROTO_RAW) {
        size_t sb = cvd_sample_bytes(c->fmt);
        wreq *r = out_alloc((size_t)n * ch * sb);
        if (r == NULL)
            goto nomem;
        r->len = cvd_raw_encode((cvd_sample_format)c->fmt, y, (size_t)n, ch, r->data);
        out_send(c, r);
    } else if (c->proto == CVD_PROTO_LINE) {
        size_t cap = (size_t)n * ch * CVD_LINE_VALUE_CHARS + 8, done = 0;
        wreq *r = out_alloc(cap);
        if (r == NULL)
            goto nomem;
        long len = cvd_line_encode(y, (size_t)n, ch, r->data, cap, &done);
        if (len < 0) {
            free(r);
            goto nomem;
        }
        r->len = (size_t)len;
        out_send(c, r);
    } else {
        size_t fb = cvd_sample_bytes(c->fmt) * (size_t)ch;
        size_t per = cvd_fr_max_frames(c->max_message, fb);
        for (int done = 0; done < n && !c->closing;) {
            size_t m = (size_t)(n - done) < per ? (size_t)(n - done) : per;
            size_t cap = cvd_fr_data_size(m, fb);
            wreq *r = out_alloc(cap);
            if (r == NULL)
                goto nomem;
            cvd_bytes b = {(uint8_t *)r->data, 0, cap};
            if (cvd_fr_put_data(&b, c->seq_out++, c->first_out, 0, c->fmt, y + (size_t)done * ch,
                                m, ch, NULL) < 0) {
                free(r);
                conn_close(c, CVD_DISC_ERROR);
                return;
            }
            c->first_out += m;
            r->len = b.len;
            out_send(c, r);
            done += (int)m;
        }
    }
    return;
nomem:
    cvd_log_error("%s: out of memory", c->peer);
    conn_close(c, CVD_DISC_ERROR);
}

/* ---- the model -------------------------------------------------------------------------- */

static int setup_stream(cvd_conn *c, cvd_model *m, int block, cvd_err *err)
{
    int rc = cvd_net_create_hop(m, block, cvd_runtime_model_hop(c->rt, m), &c->net, err);
    if (rc < 0)
        return rc;
    c->model = m;
    c->block = block;
    c->in_ch = cvd_model_in_channels(m);
    c->out_ch = cvd_model_out_channels(m);
    c->max_out = cvd_net_max_out(c->net);
    c->blk = malloc(sizeof(float) * (size_t)block * c->in_ch);
    c->obuf = malloc(sizeof(float) * (size_t)c->max_out * c->out_ch);
    if (c->blk == NULL || c->obuf == NULL)
        return cvd_err_set(err, CVD_ENOMEM, "out of memory");
    return CVD_OK;
}

static void process_block(cvd_conn *c)
{
    int no = 0;
    uint64_t t0 = now_ns();
    int rc = cvd_net_process(c->net, c->blk, c->fill, c->obuf, &no);
    cvd_metrics_block_time(c->stats, now_ns() - t0);
    if (rc < 0) {
        cvd_log_error("%s: model: %s", c->peer, cvd_strerror(rc));
        conn_close(c, CVD_DISC_ERROR);
        return;
    }
    c->fill = 0;
    emit(c, c->obuf, no);
}

static void flush_stream(cvd_conn *c)
{
    int no, more;
    if (c->fill > 0)
        process_block(c);
    do {
        more = cvd_net_flush(c->net, c->obuf, &no);
        if (more < 0) {
            conn_close(c, CVD_DISC_ERROR);
            return;
        }
        emit(c, c->obuf, no);
    } while (more == 1 && !c->closing);
}

/* ---- input ------------------------------------------------------------------------------ */

static int check_finite(cvd_conn *c, const float *x, size_t n_values)
{
    if (conf_of(c)->nonfinite_pass)
        return 1;
    return cvd_find_nonfinite(x, n_values) == n_values;
}

static void refuse_nonfinite(cvd_conn *c)
{
    char msg[160];
    snprintf(msg, sizeof msg, "a NaN or infinite sample near input frame %llu (nonfinite = reject)",
             (unsigned long long)(c->frames_in + (uint64_t)c->fill));
    cvd_metrics_dropped(CVD_DROP_NONFINITE, 1);
    cvd_log_info("%s: %s", c->peer, msg);
    if (c->proto == CVD_PROTO_FRAMED)
        send_fr_error(c, CVD_FR_E_NONFINITE, msg);
    /* raw has no way to say it: the connection closes */
    c->input_done = 1;
    c->reason = CVD_DISC_MALFORMED;
    conn_finish(c);
}

static void handle_hello(cvd_conn *c, const cvd_fr_hello *h);
static int busy(const cvd_conn *c);

/* Takes frames from the input bytes into the block. Returns 1 if the block is full. */
static int fill_block(cvd_conn *c)
{
    /* before the handshake (or for a subscriber) there is no stream: messages only. The
     * channel count is read at every turn: a HELLO in this very call sets it. */
    while ((c->net == NULL || c->fill < c->block) && !busy(c) && !c->input_done) {
        const int ch = c->in_ch;
        const uint8_t *p = c->inbuf + c->in_pos;
        size_t len = c->in_len - c->in_pos;

        if (c->proto == CVD_PROTO_RAW) {
            size_t used = 0;
            if (len == 0)
                break;
            size_t got = cvd_raw_decode(c->raw, p, len, &used, c->blk + (size_t)c->fill * ch,
                                        (size_t)(c->block - c->fill));
            c->in_pos += used;
            if (!check_finite(c, c->blk + (size_t)c->fill * ch, got * (size_t)ch)) {
                refuse_nonfinite(c);
                return 0;
            }
            c->fill += (int)got;
            continue;
        }
        if (c->proto == CVD_PROTO_LINE) {
            cvd_line_result res;
            if (len == 0)
                break;
            cvd_line_decode(c->line, p, len, c->blk + (size_t)c->fill * ch,
                            (size_t)(c->block - c->fill), &res);
            c->in_pos += res.used;
            c->fill += (int)res.frames;
            if (res.error) {
                /* the answers to the lines before it come first */
                if (c->fill > 0)
                    process_block(c);
                cvd_metrics_dropped(CVD_DROP_MALFORMED, 1);
                send_bytes(c, res.error_line, res.error_len);
            }
            if (res.used == 0 && res.frames == 0 && !res.error)
                break;
            continue;
        }
        /* framed: first the frames of the current DATA, then the next message */
        if (c->fr_frames > 0) {
            size_t take = (size_t)(c->block - c->fill);
            if (take > c->fr_frames)
                take = c->fr_frames;
            float *dst = c->blk + (size_t)c->fill * ch;
            cvd_samples_decode(c->fmt, c->fr_samples, take * (size_t)ch, dst);
            if (!check_finite(c, dst, take * (size_t)ch)) {
                refuse_nonfinite(c);
                return 0;
            }
            c->fr_samples += take * (size_t)ch * cvd_sample_bytes(c->fmt);
            c->fr_frames -= take;
            c->fill += (int)take;
            continue;
        }
        if (len == 0)
            break;
        cvd_fr_msg msg;
        cvd_err err = {0};
        size_t used = 0;
        int rc = cvd_fr_decode(c->fr, p, len, &used, &msg, &err);
        c->in_pos += used;
        if (rc < 0) {
            cvd_log_info("%s: %s", c->peer, err.msg);
            cvd_metrics_dropped(CVD_DROP_MALFORMED, 1);
            send_fr_error(c, cvd_fr_decoder_error(c->fr), err.msg);
            c->input_done = 1;
            c->reason = CVD_DISC_MALFORMED;
            conn_finish(c);
            return 0;
        }
        if (rc == 0)
            break;
        switch (msg.type) {
        case CVD_FR_HELLO:
            handle_hello(c, &msg.hello);
            if (c->state != ST_RUN || c->sub)
                return 0;
            break;
        case CVD_FR_DATA:
            c->fr_samples = msg.data.samples;
            c->fr_frames = msg.data.n_frames;
            break;
        case CVD_FR_END:
            c->eof = 1;
            c->input_done = 1;
            break;
        case CVD_FR_PING: {
            uint8_t buf[32];
            cvd_bytes b = {buf, 0, sizeof buf};
            if (cvd_fr_put_pong(&b, msg.token, NULL) == 0)
                send_bytes(c, b.data, b.len);
            break;
        }
        case CVD_FR_BYE:
            c->input_done = 1;
            c->end_sent = 1; /* no END after a BYE: just close */
            c->reason = CVD_DISC_CLOSED;
            conn_finish(c);
            return 0;
        case CVD_FR_ERROR:
            cvd_log_info("%s: the client sent ERROR %d: %s", c->peer, msg.error.code,
                         msg.error.text);
            c->input_done = 1;
            c->reason = CVD_DISC_ERROR;
            conn_finish(c);
            return 0;
        default:
            break;
        }
    }
    return c->net != NULL && c->fill == c->block;
}

/* ---- the work step ---------------------------------------------------------------------- */

static void serve_subscriber(cvd_conn *c);
static void start_reading(cvd_conn *c);

/* The input is over: run the last partial block, flush the model, end the stream. */
static void end_stream(cvd_conn *c)
{
    if (c->proto == CVD_PROTO_LINE && c->state == ST_RUN && c->eof) {
        /* a last line without its newline */
        cvd_line_result res;
        if (c->fill == c->block)
            process_block(c);
        cvd_line_finish(c->line, c->blk + (size_t)c->fill * c->in_ch, &res);
        c->fill += (int)res.frames;
        if (res.error) {
            if (c->fill > 0)
                process_block(c);
            send_bytes(c, res.error_line, res.error_len);
        }
    }
    if (c->state == ST_RUN && c->net) {
        c->frames_in += (uint64_t)c->fill;
        if (c->stats)
            atomic_fetch_add_explicit(&c->stats->frames_in, (unsigned long long)c->fill,
                                      memory_order_relaxed);
        flush_stream(c);
        if (c->proto == CVD_PROTO_RAW && cvd_raw_decoder_pending(c->raw))
            cvd_log_info("%s: the stream ended inside a frame (%zu bytes dropped)", c->peer,
                         cvd_raw_decoder_pending(c->raw));
    }
    if (c->proto == CVD_PROTO_FRAMED && !c->end_sent && c->state != ST_HANDSHAKE)
        send_fr_end(c);
    c->state = ST_ENDED;
    conn_finish(c);
}

static int busy(const cvd_conn *c)
{
    return c->closing || c->shutting || c->finishing;
}

/* One block of work; returns 1 if the connection has more to do right away. */
static int work_one(cvd_conn *c)
{
    if (busy(c))
        return 0;
    if (c->sub) {
        /* a subscriber sends only PING, END, BYE: answer them, then forward frames */
        fill_block(c);
        if (busy(c))
            return 0;
        if (c->input_done) {
            end_stream(c);
            return 0;
        }
        serve_subscriber(c);
    } else {
        if (c->queued > conf_of(c)->queue_limit) {
            c->paused = 1; /* resumed by on_written */
            return 0;
        }
        if (c->state == ST_ENDED)
            return 0;
        if (fill_block(c)) {
            c->frames_in += (uint64_t)c->fill;
            if (c->stats)
                atomic_fetch_add_explicit(&c->stats->frames_in, (unsigned long long)c->fill,
                                          memory_order_relaxed);
            process_block(c);
            return !busy(c);
        }
        if (busy(c))
            return 0;
        if (c->input_done || (c->eof && c->in_pos == c->in_len && c->fr_frames == 0)) {
            end_stream(c);
            return 0;
        }
    }
    /* everything read so far is taken: read more */
    if (c->in_pos == c->in_len)
        c->in_pos = c->in_len = 0;
    start_reading(c);
    return 0;
}

static void queue_work(cvd_worker *w, cvd_conn *c)
{
    if (c->in_work || c->closing)
        return;
    c->in_work = 1;
    c->wnext = NULL;
    if (w->work_tail)
        w->work_tail->wnext = c;
    else
        w->work_head = c;
    w->work_tail = c;
    cvd_worker_schedule(w);
}

static void schedule(cvd_conn *c)
{
    queue_work(c->w, c);
}

void cvd_conn_run_work(cvd_worker *w)
{
    /* one pass over the connections queued now: one block each */
    cvd_conn *head = w->work_head;
    w->work_head = w->work_tail = NULL;
    while (head) {
        cvd_conn *c = head;
        head = c->wnext;
        c->in_work = 0;
        if (work_one(c))
            queue_work(w, c);
    }
}

/* ---- reading ---------------------------------------------------------------------------- */

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    cvd_conn *c = h->data;
    (void)hint;
    if (c->in_pos > 0 && c->in_pos == c->in_len)
        c->in_pos = c->in_len = 0;
    if (c->in_pos > 0) { /* compact: the whole free space is offered to the read */
        memmove(c->inbuf, c->inbuf + c->in_pos, c->in_len - c->in_pos);
        c->in_len -= c->in_pos;
        c->in_pos = 0;
    }
    *buf = uv_buf_init((char *)c->inbuf + c->in_len, (unsigned)(INBUF_BYTES - c->in_len));
}

static void restart_timer(cvd_conn *c);

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    cvd_conn *c = s->data;
    (void)buf;
    if (busy(c))
        return;
    if (n == UV_EOF) {
        uv_read_stop(s);
        c->reading = 0;
        if (c->proto == CVD_PROTO_FRAMED && c->state != ST_ENDED) {
            /* a framed client must END; a plain close ends the connection, no flush */
            cvd_err err = {0};
            if (cvd_fr_decoder_finish(c->fr, &err) < 0 || c->state == ST_HANDSHAKE)
                cvd_log_debug("%s: closed %s", c->peer, err.msg[0] ? err.msg : "before END");
            c->input_done = 1;
            c->end_sent = 1;
            c->reason = CVD_DISC_CLOSED;
            conn_finish(c);
            return;
        }
        c->eof = 1;
        schedule(c);
        return;
    }
    if (n < 0) {
        cvd_log_debug("%s: read: %s", c->peer, uv_strerror((int)n));
        conn_close(c, CVD_DISC_ERROR);
        return;
    }
    c->in_len += (size_t)n;
    if (c->state != ST_HANDSHAKE)
        restart_timer(c); /* idle time counts from the last byte; the handshake's from connect */
    if (c->in_len == INBUF_BYTES && c->in_pos == 0) {
        /* full: stop reading until the work step has taken some */
        uv_read_stop(s);
        c->reading = 0;
    }
    schedule(c);
}

static void start_reading(cvd_conn *c)
{
    if (!c->reading && !busy(c) && !c->eof && !c->input_done && c->in_len < INBUF_BYTES) {
        c->reading = 1;
        uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    }
}

/* ---- timers ----------------------------------------------------------------------------- */

static void on_timeout(uv_timer_t *t)
{
    cvd_conn *c = t->data;
    int handshake = c->proto == CVD_PROTO_FRAMED && c->state == ST_HANDSHAKE;
    cvd_log_info("%s: %s timeout", c->peer, handshake ? "handshake" : "idle");
    if (c->proto == CVD_PROTO_FRAMED)
        send_fr_error(c, CVD_FR_E_TIMEOUT, handshake ? "no HELLO in time" : "idle too long");
    else if (c->proto == CVD_PROTO_LINE)
        send_line_error(c, "timeout", "idle too long");
    c->input_done = 1;
    c->end_sent = 1;
    c->reason = handshake ? CVD_DISC_HANDSHAKE_TIMEOUT : CVD_DISC_IDLE_TIMEOUT;
    conn_finish(c);
}

static void restart_timer(cvd_conn *c)
{
    const cvd_conf *cf = conf_of(c);
    double sec = c->state == ST_HANDSHAKE && c->proto == CVD_PROTO_FRAMED ? cf->handshake_timeout
                                                                          : cf->idle_timeout;
    if (c->sub)
        sec = 0; /* subscribers only listen */
    if (sec <= 0) {
        uv_timer_stop(&c->timer);
        return;
    }
    uv_timer_start(&c->timer, on_timeout, (uint64_t)(sec * 1000.0 + 0.5), 0);
}

/* ---- framed handshake ------------------------------------------------------------------- */

static void fail_hello(cvd_conn *c, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void fail_hello(cvd_conn *c, int code, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    cvd_log_info("%s: HELLO refused: %s", c->peer, msg);
    send_fr_error(c, code, msg);
    c->input_done = 1;
    c->end_sent = 1;
    c->reason = CVD_DISC_MALFORMED;
    conn_finish(c);
}

static void send_accept(cvd_conn *c, int rate, int in_ch, int out_ch, int latency,
                        const char *model)
{
    uint8_t buf[CVD_FR_MAX_STRING + 128];
    cvd_bytes b = {buf, 0, sizeof buf};
    cvd_fr_accept a = {.version = CVD_FR_VERSION,
                       .format = (uint8_t)c->fmt,
                       .rate = (uint32_t)rate,
                       .in_channels = (uint16_t)in_ch,
                       .out_channels = (uint16_t)out_ch,
                       .block = (uint32_t)c->block,
                       .latency = (uint32_t)latency,
                       .max_message = (uint32_t)c->max_message,
                       .model = model};
    if (cvd_fr_put_accept(&b, &a, NULL) == 0)
        send_bytes(c, b.data, b.len);
}

static void handle_hello(cvd_conn *c, const cvd_fr_hello *h)
{
    cvd_err err = {0};
    const cvd_conf *cf = conf_of(c);
    c->fmt = h->format;

    if (h->role == CVD_ROLE_SUBSCRIBE) {
        cvd_pub_info info;
        size_t fb;
        if (h->stream == NULL || h->stream[0] == '\0') {
            fail_hello(c, CVD_FR_E_UNKNOWN_STREAM, "subscribe: no stream named");
            return;
        }
        /* the ring holds what queue_limit allows, at least a few blocks */
        int probe_ch = h->channels ? h->channels : 1;
        fb = (size_t)probe_ch * sizeof(float);
        int frames = (int)(cf->queue_limit / fb);
        if (frames < 4096)
            frames = 4096;
        if (cvd_sub_open(h->stream, frames, cf->slow_disconnect, cvd_worker_wake, c->w, &c->sub,
                         &info, &err) < 0) {
            fail_hello(c, CVD_FR_E_UNKNOWN_STREAM, "subscribe '%s': %s", h->stream, err.msg);
            return;
        }
        if (h->channels && h->channels != info.channels) {
            fail_hello(c, CVD_FR_E_BAD_FORMAT, "stream '%s' has %d channels, not %d", h->stream,
                       info.channels, h->channels);
            return;
        }
        c->out_ch = c->in_ch = info.channels;
        c->block = c->lc->block;
        c->sub_frames = 1024;
        c->subbuf = malloc(sizeof(float) * (size_t)c->sub_frames * info.channels);
        if (c->subbuf == NULL) {
            fail_hello(c, CVD_FR_E_INTERNAL, "out of memory");
            return;
        }
        c->state = ST_RUN;
        c->stats = cvd_metrics_stream(h->stream);
        send_accept(c, info.rate, info.channels, info.channels, info.latency, info.model);
        snprintf(c->peer + strlen(c->peer), sizeof c->peer - strlen(c->peer), " (subscriber)");
        cvd_log_info("%s: subscribed to '%s'", c->peer, h->stream);
        restart_timer(c);
        return;
    }

    /* process: the model */
    cvd_model *m = NULL;
    const char *mname = h->model && h->model[0] ? h->model : c->lc->model;
    if (mname[0] == '\0') {
        fail_hello(c, CVD_FR_E_UNKNOWN_MODEL,
                   "no model named in HELLO, and listener '%s' has no default", c->lc->name);
        return;
    }
    m = cvd_runtime_model(c->rt, mname);
    if (m == NULL) {
        char names[256] = "";
        for (int i = 0; i < cf->n_models && strlen(names) < sizeof names - 70; i++)
            snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s",
                     i ? ", " : "", cf->models[i].name);
        fail_hello(c, CVD_FR_E_UNKNOWN_MODEL, "unknown model '%s' (models: %s)", mname, names);
        return;
    }
    if (h->channels && h->channels != cvd_model_in_channels(m)) {
        fail_hello(c, CVD_FR_E_BAD_FORMAT, "channels %d: model '%s' takes %d", h->channels, mname,
                   cvd_model_in_channels(m));
        return;
    }
    double mrate = cvd_model_sample_rate(m);
    if (h->rate && mrate > 0 && (double)h->rate != mrate) {
        fail_hello(c, CVD_FR_E_BAD_FORMAT, "rate %u: model '%s' runs at %.0f (no resampling)",
                   h->rate, mname, mrate);
        return;
    }
    int block = h->block ? (int)h->block : c->lc->block;
    if (block < 1 || block > 65536) {
        fail_hello(c, CVD_FR_E_BAD_FORMAT, "block %u: must be 1..65536", h->block);
        return;
    }
    if (setup_stream(c, m, block, &err) < 0 ||
        cvd_fr_decoder_set_data_layout(c->fr, c->fmt, c->in_ch, &err) < 0) {
        fail_hello(c, CVD_FR_E_INTERNAL, "%s", err.msg);
        return;
    }
    if (h->stream && h->stream[0]) {
        cvd_pub_info info = {.channels = c->out_ch,
                             .rate = h->rate ? (int)h->rate : (int)mrate,
                             .latency = cvd_model_latency(m)};
        snprintf(info.model, sizeof info.model, "%s", mname);
        if (cvd_pub_open(h->stream, &info, &c->pub, &err) < 0) {
            fail_hello(c, CVD_FR_E_BAD_MESSAGE, "publish: %s", err.msg);
            return;
        }
    }
    c->stats = cvd_metrics_stream(h->stream && h->stream[0] ? h->stream : c->lc->name);
    if (c->stats)
        atomic_fetch_add(&c->stats->clients, 1);
    c->state = ST_RUN;
    send_accept(c, h->rate ? (int)h->rate : (int)mrate, c->in_ch, c->out_ch,
                cvd_model_latency(m), mname);
    cvd_log_debug("%s: model %s, block %d%s%s", c->peer, mname, block,
                  c->pub ? ", publishing as " : "", c->pub ? h->stream : "");
    restart_timer(c);
}

/* ---- subscribers ------------------------------------------------------------------------ */

static void serve_subscriber(cvd_conn *c)
{
    const size_t limit = conf_of(c)->queue_limit;
    if (cvd_sub_overrun(c->sub)) {
        /* slow_subscriber = disconnect: its queue is full, so nothing more can be said */
        cvd_log_info("%s: too slow: its queue is full (slow_subscriber = disconnect)", c->peer);
        conn_close(c, CVD_DISC_SLOW_SUBSCRIBER);
        return;
    }
    while (!busy(c) && c->queued <= limit) {
        uint64_t dropped = 0;
        int state = 0;
        int n = cvd_sub_read(c->sub, c->subbuf, c->sub_frames, &dropped, &state);
        if (n > 0 || dropped > 0) {
            /* frames, or (at the end of the stream) just the count of the last ones lost */
            const int ch = c->out_ch;
            size_t fb = cvd_sample_bytes(c->fmt) * (size_t)ch;
            size_t cap = cvd_fr_data_size((size_t)n, fb);
            c->first_out += dropped;
            wreq *r = out_alloc(cap);
            if (r == NULL) {
                conn_close(c, CVD_DISC_ERROR);
                return;
            }
            cvd_bytes b = {(uint8_t *)r->data, 0, cap};
            uint32_t d32 = dropped > UINT32_MAX ? UINT32_MAX : (uint32_t)dropped;
            if (cvd_fr_put_data(&b, c->seq_out++, c->first_out, d32, c->fmt, c->subbuf,
                                (size_t)n, ch, NULL) < 0) {
                free(r);
                conn_close(c, CVD_DISC_ERROR);
                return;
            }
            c->first_out += (uint64_t)n;
            c->frames_out += (uint64_t)n;
            r->len = b.len;
            out_send(c, r);
        }
        if (state == 2) {
            conn_close(c, CVD_DISC_SLOW_SUBSCRIBER);
            return;
        }
        if (state == 1) { /* the producer ended */
            send_fr_end(c);
            c->reason = CVD_DISC_CLOSED;
            conn_finish(c);
            return;
        }
        if (n == 0 && dropped == 0)
            return;
    }
}

void cvd_conn_wake_all(cvd_worker *w)
{
    for (cvd_conn *c = w->conns; c; c = c->next)
        if (c->sub && !c->closing)
            schedule(c);
}

/* ---- accept, finish, close -------------------------------------------------------------- */

static void on_handle_closed(uv_handle_t *h)
{
    cvd_conn *c = h->data;
    if (--c->handles_open > 0)
        return;
    cvd_worker *w = c->w;
    if (c->in_work) { /* out of the work queue before it is freed */
        cvd_conn **pp = &w->work_head, *last = NULL;
        while (*pp && *pp != c) {
            last = *pp;
            pp = &(*pp)->wnext;
        }
        if (*pp) {
            *pp = c->wnext;
            if (w->work_tail == c)
                w->work_tail = last;
        }
    }
    if (c->prev)
        c->prev->next = c->next;
    else
        w->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    w->n_conns--;
    cvd_net_destroy(c->net);
    cvd_raw_decoder_destroy(c->raw);
    cvd_line_decoder_destroy(c->line);
    cvd_fr_decoder_destroy(c->fr);
    cvd_pub_close(c->pub);
    cvd_sub_close(c->sub);
    if (c->stats && c->state != ST_HANDSHAKE && !c->sub)
        atomic_fetch_sub(&c->stats->clients, 1);
    cvd_runtime_unref(c->rt);
    free(c->blk);
    free(c->obuf);
    free(c->subbuf);
    free(c->inbuf);
    free(c);
    cvd_metrics_clients(-1);
    cvd_worker_maybe_finish(w);
}

static void conn_close(cvd_conn *c, int reason)
{
    if (c->closing)
        return;
    c->closing = 1;
    cvd_metrics_disconnect(reason);
    cvd_log_debug("%s: closed (%llu frames in, %llu out)", c->peer,
                  (unsigned long long)c->frames_in, (unsigned long long)c->frames_out);
    /* out of the work queue: run_work skips closing connections, the list drops them */
    uv_close((uv_handle_t *)&c->tcp, on_handle_closed);
    uv_close((uv_handle_t *)&c->timer, on_handle_closed);
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    cvd_conn *c = req->data;
    (void)status;
    conn_close(c, c->reason);
}

/* Close once everything queued is sent; the end is signalled with a FIN first, so a raw
 * client reading until EOF gets every byte. */
static void conn_finish(cvd_conn *c)
{
    if (c->closing || c->shutting)
        return;
    c->finishing = 1;
    if (c->reading) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->reading = 0;
    }
    uv_timer_stop(&c->timer);
    if (c->queued > 0)
        return; /* on_written calls again */
    c->shutting = 1;
    c->shut.data = c;
    if (uv_shutdown(&c->shut, (uv_stream_t *)&c->tcp, on_shutdown) < 0)
        conn_close(c, c->reason);
}

void cvd_conn_accept(cvd_worker *w, cvd_wlisten *l)
{
    cvd_conn *c = calloc(1, sizeof *c);
    cvd_err err = {0};
    if (c == NULL)
        return;
    c->w = w;
    c->inbuf = malloc(INBUF_BYTES);
    uv_tcp_init(&w->loop, &c->tcp);
    uv_timer_init(&w->loop, &c->timer);
    c->tcp.data = c->timer.data = c;
    c->handles_open = 2;
    c->reason = CVD_DISC_CLOSED;
    /* linked first, so the close path is the same for every failure below */
    c->next = w->conns;
    if (w->conns)
        w->conns->prev = c;
    w->conns = c;
    w->n_conns++;
    cvd_metrics_clients(1);
    if (uv_accept((uv_stream_t *)&l->tcp, (uv_stream_t *)&c->tcp) < 0 || c->inbuf == NULL) {
        conn_close(c, CVD_DISC_ERROR);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    struct sockaddr_storage ss;
    int sl = sizeof ss;
    char host[64] = "?";
    int port = 0;
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &sl) == 0) {
        if (ss.ss_family == AF_INET6) {
            uv_ip6_name((struct sockaddr_in6 *)&ss, host, sizeof host);
            port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
        } else {
            uv_ip4_name((struct sockaddr_in *)&ss, host, sizeof host);
            port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
        }
    }
    snprintf(c->peer, sizeof c->peer, "%s %s:%d", l->name, host, port);

    c->rt = cvd_daemon_runtime(w->d);
    const cvd_conf *cf = c->rt->conf;
    int li = -1;
    for (int i = 0; i < cf->n_listens; i++)
        if (strcmp(cf->listens[i].name, l->name) == 0)
            li = i;
    if (li < 0) { /* the listener went away in a reload just now */
        conn_close(c, CVD_DISC_SHUTDOWN);
        return;
    }
    c->lc = &cf->listens[li];
    c->proto = c->lc->protocol;
    c->max_message = cf->max_message;

    if (cvd_metrics_clients_now() > cf->max_clients) {
        cvd_log_warning("%s: refused: max_clients = %d reached", c->peer, cf->max_clients);
        if (c->proto == CVD_PROTO_FRAMED)
            send_fr_error(c, CVD_FR_E_BUSY, "the server has max_clients connections");
        else if (c->proto == CVD_PROTO_LINE)
            send_line_error(c, "busy", "the server has max_clients connections");
        c->reason = CVD_DISC_MAX_CLIENTS;
        conn_finish(c);
        return;
    }
    if (w->shutting_down) {
        c->reason = CVD_DISC_SHUTDOWN;
        conn_finish(c);
        return;
    }

    int rc = 0;
    if (c->proto == CVD_PROTO_FRAMED) {
        rc = cvd_fr_decoder_create(CVD_FR_SERVER, cf->max_message, &c->fr, &err);
        c->state = ST_HANDSHAKE;
    } else {
        cvd_model *m = cvd_runtime_listener_model(c->rt, li);
        c->fmt = c->proto == CVD_PROTO_RAW ? (int)c->lc->format : CVD_FMT_F32LE;
        rc = setup_stream(c, m, c->lc->block, &err);
        if (rc == 0 && c->proto == CVD_PROTO_RAW)
            rc = cvd_raw_decoder_create((cvd_sample_format)c->fmt, c->in_ch, &c->raw, &err);
        if (rc == 0 && c->proto == CVD_PROTO_LINE)
            rc = cvd_line_decoder_create(c->in_ch, 0,
                                         cf->nonfinite_pass ? CVD_NONFINITE_PASS
                                                            : CVD_NONFINITE_REJECT,
                                         &c->line, &err);
        c->stats = cvd_metrics_stream(l->name);
        if (c->stats)
            atomic_fetch_add(&c->stats->clients, 1);
        c->state = ST_RUN;
    }
    if (rc < 0) {
        cvd_log_error("%s: %s", c->peer, err.msg);
        conn_close(c, CVD_DISC_ERROR);
        return;
    }
    cvd_log_debug("%s: connected (%s)", c->peer, cvd_proto_name(c->lc->protocol));
    restart_timer(c);
    start_reading(c);
}

void cvd_conn_shutdown_all(cvd_worker *w)
{
    for (cvd_conn *c = w->conns; c; c = c->next) {
        if (busy(c))
            continue;
        c->reason = CVD_DISC_SHUTDOWN;
        if (c->state == ST_HANDSHAKE) {
            send_fr_error(c, CVD_FR_E_SHUTTING_DOWN, "the server is stopping");
            conn_finish(c);
        } else if (c->sub) {
            send_fr_end(c);
            conn_finish(c);
        } else {
            /* the input so far is the stream: process what has arrived, flush, end */
            if (c->reading) {
                uv_read_stop((uv_stream_t *)&c->tcp);
                c->reading = 0;
            }
            /* not input_done: what is buffered (bytes, a decoded DATA) is still processed */
            c->eof = 1;
            schedule(c);
        }
    }
}

void cvd_conn_close_all(cvd_worker *w)
{
    for (cvd_conn *c = w->conns; c; c = c->next)
        conn_close(c, CVD_DISC_SHUTDOWN);
}
