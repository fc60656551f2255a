/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Connections: one client, one stream with its own model state (or one subscription), on one
 * worker (conn.h). What the bytes mean is the adapter's; this file has no branch on the
 * protocol.
 *
 * Reading only appends bytes to a bounded input buffer; the work step, run from the worker's
 * run queue one block per connection per loop turn, has the adapter decode one block's frames,
 * runs the model on it, and queues the encoded output. So a client that sends a lot at once
 * delays the others by at most a block, memory is bounded (a full input buffer stops reading,
 * which stops the client through TCP), and a client that does not read its results stops being
 * processed once its output queue passes queue_limit (and so, in turn, stops being read).
 *
 * Under `blocking = fixed` (raw's default) blocks are always `block` frames except the last of
 * a stream, so the cuts do not depend on how the input was split across reads: the output
 * equals convd-run's with --block, bit for bit. Under `blocking = eager` (line's and framed's)
 * the work step also runs a partial block once every byte that has arrived is decoded, so a
 * reply leaves as soon as the input that completes it is in; the model's output does not
 * depend on where blocks are cut, so the numbers are the same.
 *
 * Bytes in and out go through the connection's transport (transport.h) only: io_* below.
 *
 * Long because: it is the connection's whole life (byte stream, output, model, memory, timers,
 * subscribers, close), the protocols already moved out to the adapters.
 */
#include <stdarg.h>
#include <stdatomic.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <netinet/in.h>
#include <unistd.h>

#include "acl.h"
#include "conn.h"
#include "log.h"
#include "uv_check.h"
#include "metrics.h"
#include "transport.h"
#include "worker.h"

#define INBUF_BYTES (64 * 1024)

enum { ST_HANDSHAKE = 0, ST_RUN, ST_ENDED };

struct cvd_conn {
    cvd_worker_member member; /* the worker's: its list and run queue */
    cvd_worker *w;
    cvd_transport *tr;
    uv_timer_t timer;
    cvd_runtime *rt;
    const cvd_conf_listen *lc;
    const cvd_adapter *ad;
    void *ad_state;
    char peer[128];
    int state;
    int li;                       /* the listener's index in the runtime's config */
    struct sockaddr_storage addr; /* the client's address */
    int addr_counted;             /* counted in the per-address table (cvd_peer_acquire) */
    size_t mem;                   /* the stream's memory figure, reserved in the total */
    int cut;                      /* the server stopped before the client's end of input */

    /* the stream (built off the loop: `building` while it is) */
    cvd_model *model;
    cvd_chain *net; /* the model, or models in order, resampled to each one's rate */
    int idx[CVD_CHAIN_MAX_MODELS], n_idx; /* which: the runtime's models */
    double rate;                          /* the stream's rate (0: the models' own) */
    int latency;                          /* frames the chain holds back */
    int one_to_one; /* every model gives a frame per frame: as many frames out as in (a
                     * resampler pair's round trip may round up by one at the end) */
    int building;
    uv_work_t build_req;
    struct {
        cvd_chain *net;
        float *blk, *obuf;
        int rc;
        cvd_err err;
    } built;
    int in_ch, out_ch, block, max_out;
    float *blk; /* block * in_ch */
    int fill;
    float *obuf; /* max_out * out_ch */
    uint64_t frames_in, frames_out;
    cvd_stream_stats *stats;

    /* input */
    uint8_t *inbuf;
    size_t in_len, in_pos;
    int reading, eof, input_done;

    /* fan-out */
    cvd_pub *pub;
    cvd_sub *sub;
    float *subbuf;
    int sub_frames;

    /* output (queued in the transport) */
    int paused;    /* output queue full: no processing until it drains */
    int finishing; /* no more input: close once the queue is empty */
    int shutting;  /* the transport finishes: it closes once the output is sent */
    int closing;   /* closing issued */
    int handles_open;
    int reason;
};

static void conn_close(cvd_conn *c, int reason);
static void conn_finish(cvd_conn *c);
static void schedule(cvd_conn *c);
static void start_reading(cvd_conn *c);
static void restart_timer(cvd_conn *c);
static void on_handle_closed(cvd_conn *c);

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

static int busy(const cvd_conn *c)
{
    return c->closing || c->shutting || c->finishing;
}

/* ---- the byte stream: every read and write of the connection goes through here ----------- */

/* Output bytes the client has not taken yet. */
static size_t queued(const cvd_conn *c)
{
    return c->tr ? cvd_transport_queued(c->tr) : 0;
}

static void io_read_stop(cvd_conn *c)
{
    if (c->reading) {
        c->reading = 0;
        cvd_transport_read_stop(c->tr);
    }
}

static void start_reading(cvd_conn *c)
{
    if (!c->reading && !busy(c) && !c->eof && !c->input_done && c->in_len < INBUF_BYTES) {
        c->reading = 1;
        cvd_transport_read_start(c->tr); /* a failure comes back as on_io_error */
    }
}

static void on_io_written(void *ctx)
{
    cvd_conn *c = ctx;
    if (c->closing)
        return;
    if (c->paused) /* the client reads: it makes progress, even while its input waits */
        restart_timer(c);
    if (c->paused && queued(c) <= conf_of(c)->queue_limit / 2) {
        c->paused = 0;
        schedule(c);
    }
    if (c->sub && queued(c) <= conf_of(c)->queue_limit / 2)
        schedule(c);
}

/* The first read of every connection on this thread lands here: a connection gets its own
 * input buffer only once bytes have come, not for a read that finds the client's end or a
 * reset (a connect-close flood would otherwise cost INBUF_BYTES a connection until each
 * close is seen). The read callback follows the alloc at once, on this thread. */
static _Thread_local uint8_t first_read[INBUF_BYTES];

static void on_io_alloc(void *ctx, char **buf, size_t *cap)
{
    cvd_conn *c = ctx;
    if (c->inbuf == NULL) {
        *buf = (char *)first_read;
        *cap = INBUF_BYTES;
        return;
    }
    if (c->in_pos > 0 && c->in_pos == c->in_len)
        c->in_pos = c->in_len = 0;
    if (c->in_pos > 0) { /* compact: the whole free space is offered to the read */
        memmove(c->inbuf, c->inbuf + c->in_pos, c->in_len - c->in_pos);
        c->in_len -= c->in_pos;
        c->in_pos = 0;
    }
    *buf = (char *)c->inbuf + c->in_len;
    *cap = INBUF_BYTES - c->in_len;
}

static void on_io_read(void *ctx, size_t n)
{
    cvd_conn *c = ctx;
    if (busy(c))
        return;
    if (c->inbuf == NULL) { /* the first bytes: a connection costs nothing until then */
        c->inbuf = malloc(INBUF_BYTES);
        if (c->inbuf == NULL) {
            cvd_log_error("%s: out of memory", c->peer);
            conn_close(c, CVD_DISC_ERROR);
            return;
        }
        memcpy(c->inbuf, first_read, n);
        c->in_pos = c->in_len = 0;
    }
    c->in_len += n;
    /* idle time counts from the last whole frame or message (cvd_conn_progress), not from
     * the last byte: a client that dribbles bytes makes no progress */
    if (c->in_len == INBUF_BYTES && c->in_pos == 0)
        io_read_stop(c); /* full: stop reading until the work step has taken some */
    schedule(c);
}

static void on_io_eof(void *ctx, int clean)
{
    cvd_conn *c = ctx;
    (void)clean; /* an unclean TLS end is counted by the transport; the input ends alike */
    if (busy(c))
        return;
    c->reading = 0;
    if (c->state != ST_ENDED && !c->ad->peer_eof(c)) {
        /* the protocol's own end never came: the stream is cut, nothing flushed */
        c->input_done = 1;
        c->reason = CVD_DISC_CLOSED;
        conn_finish(c);
        return;
    }
    c->eof = 1;
    schedule(c);
}

/* conn.h: a warning at most once a second per kind (a flood must not flood the log); the
 * metrics count every event. */
void cvd_conn_log_limited(int kind, const char *fmt, ...)
{
    static atomic_llong last_ms[CVD_DISC_COUNT];
    static atomic_ulong since[CVD_DISC_COUNT];
    struct timespec ts;
    char msg[512];
    va_list ap;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    long long now = (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    long long last = atomic_load(&last_ms[kind]);
    if (last != 0 && now - last < 1000) {
        atomic_fetch_add(&since[kind], 1);
        return;
    }
    if (!atomic_compare_exchange_strong(&last_ms[kind], &last, now)) {
        atomic_fetch_add(&since[kind], 1);
        return;
    }
    unsigned long more = atomic_exchange(&since[kind], 0);
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (more)
        cvd_log_warning("%s (and %lu more such refusals since the last line)", msg, more);
    else
        cvd_log_warning("%s", msg);
}

static void on_io_error(void *ctx, int what, const char *msg)
{
    cvd_conn *c = ctx;
    int reason = what == CVD_TR_WRITE_TIMEOUT                             ? CVD_DISC_WRITE_TIMEOUT
                 : what == CVD_TR_TLS || what == CVD_TR_HANDSHAKE_TIMEOUT ? CVD_DISC_TLS
                                                                          : CVD_DISC_ERROR;
    if (what == CVD_TR_READ || what == CVD_TR_WRITE)
        cvd_log_debug("%s: %s", c->peer, msg);
    else
        cvd_conn_log_limited(reason, "%s: %s", c->peer, msg);
    conn_close(c, reason);
}

/* The transport has closed (after a finish, or a close): the connection goes. */
static void on_io_closed(void *ctx)
{
    cvd_conn *c = ctx;
    c->tr = NULL;
    conn_close(c, c->reason); /* a finish ends here: counted, the timer closed */
    on_handle_closed(c);
}

static const cvd_transport_cbs io_cbs = {
    .alloc = on_io_alloc,
    .read = on_io_read,
    .eof = on_io_eof,
    .error = on_io_error,
    .written = on_io_written,
    .closed = on_io_closed,
};

/* ---- output ----------------------------------------------------------------------------- */

void *cvd_conn_out_begin(cvd_conn *c, size_t cap)
{
    if (c->closing || c->tr == NULL)
        return NULL;
    void *d = cvd_transport_buf(c->tr, cap);
    if (d == NULL) {
        cvd_log_error("%s: out of memory", c->peer);
        conn_close(c, CVD_DISC_ERROR);
    }
    return d;
}

void cvd_conn_out_commit(cvd_conn *c, void *data, size_t len)
{
    /* takes data back whatever happens; a failure comes back as on_io_error */
    cvd_transport_send(c->tr, data, len);
}

void cvd_conn_send(cvd_conn *c, const void *p, size_t n)
{
    void *d = cvd_conn_out_begin(c, n);
    if (d == NULL)
        return;
    memcpy(d, p, n);
    cvd_conn_out_commit(c, d, n);
}

/* Frames out of the model: published, and encoded in the stream's protocol. */
static void emit(cvd_conn *c, const float *y, int n)
{
    if (n <= 0 || c->closing)
        return;
    c->frames_out += (uint64_t)n;
    if (c->stats)
        atomic_fetch_add_explicit(&c->stats->frames_out, (unsigned long long)n,
                                  memory_order_relaxed);
    if (c->pub)
        cvd_pub_write(c->pub, y, n);
    c->ad->encode(c, y, (size_t)n, 0);
}

/* ---- the model -------------------------------------------------------------------------- */

/* ---- memory: every stream's figure, reserved in a process-wide total --------------------- */

static atomic_ullong reserved; /* bytes: the open streams' figures */

/* What a stream holds besides its model and block buffers: the input buffer, the output it
 * may queue (queue_limit, and one block's output past it), a decoder's message, a TLS
 * session. */
static size_t stream_extra(const cvd_conn *c)
{
    const cvd_conf *cf = conf_of(c);
    size_t b = INBUF_BYTES + cf->queue_limit + cf->max_message + 8192;
    if (c->tr && cvd_transport_tls(c->tr))
        b += cvd_tls_session_bytes();
    return b;
}

/* Reserves `need` bytes under max_stream_memory; CVD_ERANGE (with the reason) if they do not
 * fit. */
static int reserve(cvd_conn *c, size_t need, cvd_err *err)
{
    const unsigned long long limit = conf_of(c)->max_stream_memory;
    unsigned long long cur = atomic_load(&reserved);
    do {
        if (cur + need > limit)
            return cvd_err_set(err, CVD_ERANGE,
                               "no room for this stream: it needs %.1f MiB and the open streams "
                               "take %.1f of max_stream_memory = %.1f MiB",
                               (double)need / 1048576.0, (double)cur / 1048576.0,
                               (double)limit / 1048576.0);
    } while (!atomic_compare_exchange_weak(&reserved, &cur, cur + need));
    c->mem += need;
    cvd_metrics_stream_memory((int64_t)need);
    return CVD_OK;
}

static void release(cvd_conn *c)
{
    if (c->mem == 0)
        return;
    atomic_fetch_sub(&reserved, c->mem);
    cvd_metrics_stream_memory(-(int64_t)c->mem);
    c->mem = 0;
}

/* ---- the stream, built off the loop ------------------------------------------------------ */

/* On libuv's thread pool: the chain (its nets and resamplers) and its buffers (the costly
 * part of a stream: milliseconds for a big model, which the worker's loop does not spend).
 * Touches c->built only. */
static void build_work(uv_work_t *req)
{
    cvd_conn *c = req->data;
    c->built.rc = cvd_runtime_chain(c->rt, c->idx, c->n_idx, c->rate, c->block, 0,
                                    c->n_idx == 1 ? cvd_runtime_model_hop(c->rt, c->model) : 0,
                                    &c->built.net, &c->built.err);
    if (c->built.rc < 0)
        return;
    c->built.blk = malloc(sizeof(float) * (size_t)c->block * (size_t)c->in_ch);
    c->built.obuf =
        malloc(sizeof(float) * (size_t)cvd_chain_max_out(c->built.net) * (size_t)c->out_ch);
    if (c->built.blk == NULL || c->built.obuf == NULL)
        c->built.rc = cvd_err_set(&c->built.err, CVD_ENOMEM, "out of memory");
}

static void build_done(uv_work_t *req, int status)
{
    cvd_conn *c = req->data;
    c->building = 0;
    if (status == 0 && c->built.rc == 0 && !c->closing) {
        c->net = c->built.net;
        c->blk = c->built.blk;
        c->obuf = c->built.obuf;
        c->max_out = cvd_chain_max_out(c->net);
        c->latency = (int)ceil(cvd_chain_latency(c->net) - 1e-9);
        memset(&c->built, 0, sizeof c->built);
        if (c->ad->started)
            c->ad->started(c); /* framed: ACCEPT, now that the latency is known */
        if (!c->closing)
            schedule(c); /* the input that waited for it */
    } else {
        cvd_chain_destroy(c->built.net);
        free(c->built.blk);
        free(c->built.obuf);
        if (!c->closing) {
            cvd_log_error("%s: %s", c->peer, status < 0 ? uv_strerror(status) : c->built.err.msg);
            if (c->ad->send_error)
                c->ad->send_error(c, CVD_FR_E_INTERNAL, "the stream could not be built");
            c->input_done = 1;
            c->reason = CVD_DISC_ERROR;
            conn_finish(c);
        }
    }
    memset(&c->built, 0, sizeof c->built);
    on_handle_closed(c); /* the build held the connection like a handle */
}

int cvd_conn_start_chain(cvd_conn *c, const int *idx, int n, double rate, int block, cvd_err *err)
{
    int rc;
    if (n < 1 || n > CVD_CHAIN_MAX_MODELS)
        return cvd_err_set(err, CVD_EINVAL, "a chain of %d models: 1..%d", n, CVD_CHAIN_MAX_MODELS);
    cvd_model *m = c->rt->models[idx[0]];
    const cvd_model *last = c->rt->models[idx[n - 1]];
    /* a model that declares a rate other than the stream's is resampled, within the
     * resampler's range; a stream at a rate no model contradicts runs unresampled at any rate
     * (sensors at 100 Hz) */
    int resampled = 0;
    for (int k = 0; k < n; k++) {
        const double mr = cvd_model_sample_rate(c->rt->models[idx[k]]);
        if (rate != 0 && mr > 0 && mr != rate)
            resampled = 1;
    }
    if (resampled && !(rate >= 1000 && rate <= 768000))
        return cvd_err_set(err, CVD_EINVAL,
                           "rate %g Hz: the models run at another rate, and resampling takes "
                           "1000..768000 Hz",
                           rate);
    if (!resampled && !(rate >= 1000 && rate <= 768000))
        rate = 0; /* the models' own rate, whatever it is called */
    c->model = m;
    c->block = block;
    c->rate = rate;
    c->n_idx = n;
    memcpy(c->idx, idx, sizeof(int) * (size_t)n);
    c->in_ch = cvd_model_in_channels(m);
    c->out_ch = cvd_model_out_channels(last);
    c->latency = cvd_model_latency(m); /* the chain's, once built */
    c->one_to_one = 1;
    /* the figure, before anything is built (memfig.h): each model's state at the block it
     * gets (the stream's, scaled to the model's rate), the block and output buffers, an
     * encoded block's output, and what every stream holds; a resampler (libsamplerate's
     * best sinc: its filter table is shared, its state a few blocks) is counted at 64 KiB
     * and two blocks of floats */
    double cur = rate;
    for (int k = 0; cur == 0 && k < n; k++)
        cur = cvd_model_sample_rate(c->rt->models[idx[k]]);
    const double srate = cur;
    size_t need = 0, max_out = (size_t)block;
    for (int k = 0; k < n; k++) {
        cvd_model *mk = c->rt->models[idx[k]];
        const cvd_memfig *f = cvd_runtime_memfig(c->rt, mk);
        double mr = cvd_model_sample_rate(mk);
        if (mr == 0)
            mr = cur;
        if (cvd_model_rate_ratio(mk) != 1.0 || cvd_model_mode(mk) != CVD_MODE_STREAMING)
            c->one_to_one = 0;
        const size_t rs_bytes =
            65536 + 2 * sizeof(float) * (max_out + 16) * (size_t)cvd_model_in_channels(mk);
        if (mr != cur && cur != 0) {
            need += rs_bytes;
            max_out = (size_t)ceil((double)(max_out + 2) * mr / cur) + 2;
        }
        const int kb = max_out > 65536 ? 65536 : (int)max_out;
        need += f ? cvd_memfig_net_bytes(f, kb) : 0;
        max_out = f ? cvd_memfig_max_out(f, kb) : max_out;
        need += sizeof(float) * max_out * (size_t)cvd_model_out_channels(mk);
        cur = mr;
    }
    if (cur != srate && cur != 0 && srate != 0) {
        need += 65536 + 2 * sizeof(float) * (max_out + 16) * (size_t)c->out_ch;
        max_out = (size_t)ceil((double)(max_out + 2) * srate / cur) + 2;
    }
    need += sizeof(float) * (size_t)block * (size_t)c->in_ch +
            max_out * (size_t)c->out_ch * (sizeof(float) + CVD_LINE_VALUE_CHARS) + stream_extra(c);
    if ((rc = reserve(c, need, err)) < 0)
        return rc;
    c->building = 1;
    c->handles_open++;
    c->build_req.data = c;
    if (uv_queue_work(cvd_worker_loop(c->w), &c->build_req, build_work, build_done) < 0) {
        build_work(&c->build_req); /* no thread pool: here, then */
        build_done(&c->build_req, 0);
    }
    return CVD_OK;
}

/* Runs the block's frames through the model and sends what comes out. */
static void process_block(cvd_conn *c)
{
    int no = 0;
    c->frames_in += (uint64_t)c->fill;
    if (c->stats)
        atomic_fetch_add_explicit(&c->stats->frames_in, (unsigned long long)c->fill,
                                  memory_order_relaxed);
    uint64_t t0 = now_ns();
    int rc = cvd_chain_process(c->net, c->blk, c->fill, c->obuf, &no);
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
        more = cvd_chain_flush(c->net, c->obuf, &no);
        if (more < 0) {
            conn_close(c, CVD_DISC_ERROR);
            return;
        }
        if (c->one_to_one && c->frames_out + (uint64_t)no > c->frames_in)
            no = (int)(c->frames_in - c->frames_out);
        emit(c, c->obuf, no);
    } while (more == 1 && !c->closing);
}

/* ---- input, for the adapters ------------------------------------------------------------ */

size_t cvd_conn_input(const cvd_conn *c, const uint8_t **p)
{
    if (c->inbuf == NULL) { /* nothing has come yet */
        *p = NULL;
        return 0;
    }
    *p = c->inbuf + c->in_pos;
    return c->in_len - c->in_pos;
}

void cvd_conn_consume(cvd_conn *c, size_t n)
{
    c->in_pos += n;
}

int cvd_conn_taking(const cvd_conn *c)
{
    return !busy(c) && !c->input_done && !c->building;
}

void cvd_conn_progress(cvd_conn *c)
{
    if (c->state == ST_RUN && !busy(c))
        restart_timer(c);
}

int cvd_conn_cut(const cvd_conn *c)
{
    return c->cut;
}

int cvd_conn_tls_verified(const cvd_conn *c)
{
    const cvd_tls *t = c->tr ? cvd_transport_tls(c->tr) : NULL;
    return t && c->rt->tls[c->li] && cvd_tls_ctx_verifies_peer(c->rt->tls[c->li]) &&
           cvd_tls_handshake_done(t);
}

int cvd_conn_listener_index(const cvd_conn *c)
{
    return c->li;
}

void cvd_conn_refuse(cvd_conn *c, int code, int reason, const char *msg)
{
    cvd_conn_log_limited(reason, "%s: refused: %s", c->peer, msg);
    if (c->ad->send_error)
        c->ad->send_error(c, code, msg);
    c->input_done = 1;
    c->reason = reason;
    conn_finish(c);
}

int cvd_conn_closing(const cvd_conn *c)
{
    return c->closing;
}

float *cvd_conn_block_space(cvd_conn *c, size_t *frames)
{
    if (c->net == NULL) {
        *frames = 0;
        return NULL;
    }
    *frames = (size_t)(c->block - c->fill);
    return c->blk + (size_t)c->fill * (size_t)c->in_ch;
}

int cvd_conn_block_full(const cvd_conn *c)
{
    return c->net != NULL && c->fill == c->block;
}

void cvd_conn_block_flush(cvd_conn *c)
{
    if (c->net != NULL && c->fill > 0 && !c->closing)
        process_block(c);
}

int cvd_conn_block_add(cvd_conn *c, size_t n)
{
    const float *x = c->blk + (size_t)c->fill * (size_t)c->in_ch;
    const size_t values = n * (size_t)c->in_ch;
    if (!conf_of(c)->nonfinite_pass && cvd_find_nonfinite(x, values) != values) {
        char msg[160];
        snprintf(msg, sizeof msg,
                 "a NaN or infinite sample near input frame %llu (nonfinite = reject)",
                 (unsigned long long)(c->frames_in + (uint64_t)c->fill));
        cvd_metrics_dropped(CVD_DROP_NONFINITE, 1);
        cvd_log_info("%s: %s", c->peer, msg);
        if (c->ad->send_error)
            c->ad->send_error(c, CVD_FR_E_NONFINITE, msg);
        c->input_done = 1;
        c->reason = CVD_DISC_MALFORMED;
        conn_finish(c);
        return 0;
    }
    c->fill += (int)n;
    if (n > 0)
        cvd_conn_progress(c); /* whole frames: the client makes progress */
    return 1;
}

void cvd_conn_input_over(cvd_conn *c)
{
    c->eof = 1;
    c->input_done = 1;
}

/* ---- the work step ---------------------------------------------------------------------- */

static void serve_subscriber(cvd_conn *c);

/* The input is over: run the last partial block, flush the model, end the stream. */
static void end_stream(cvd_conn *c)
{
    if (c->state == ST_RUN && c->eof && c->ad->input_end)
        c->ad->input_end(c);
    if (c->state == ST_RUN && c->net)
        flush_stream(c);
    if (c->ad->stream_end && !c->closing)
        c->ad->stream_end(c);
    c->state = ST_ENDED;
    conn_finish(c);
}

/* One block of work; returns 1 if the connection has more to do right away. */
static int work_one(cvd_conn *c)
{
    if (busy(c) || c->building) /* build_done schedules it again */
        return 0;
    if (c->sub) {
        /* a subscriber sends only the protocol's messages: answer them, then forward frames */
        c->ad->decode(c);
        if (busy(c))
            return 0;
        if (c->input_done) {
            end_stream(c);
            return 0;
        }
        serve_subscriber(c);
    } else {
        if (queued(c) > conf_of(c)->queue_limit) {
            c->paused = 1; /* resumed by on_io_written */
            return 0;
        }
        if (c->state == ST_ENDED)
            return 0;
        if (c->ad->decode(c)) {
            process_block(c);
            return !busy(c);
        }
        if (busy(c))
            return 0;
        if (c->input_done || (c->eof && c->in_pos == c->in_len)) {
            end_stream(c);
            return 0;
        }
        if (c->lc->eager && c->fill > 0) {
            /* blocking = eager: everything that has arrived is in the block; run it now, so
             * that a reply does not wait for input that may never come */
            process_block(c);
            if (busy(c))
                return 0;
        }
    }
    /* everything read so far is taken: read more */
    if (c->in_pos == c->in_len)
        c->in_pos = c->in_len = 0;
    start_reading(c);
    return 0;
}

static void schedule(cvd_conn *c)
{
    if (!c->closing)
        cvd_worker_queue(c->w, &c->member);
}

/* ---- timers ----------------------------------------------------------------------------- */

static void on_timeout(uv_timer_t *t)
{
    cvd_conn *c = t->data;
    const int handshake = c->state == ST_HANDSHAKE && c->ad->handshake;
    cvd_log_info("%s: %s timeout", c->peer, handshake ? "handshake" : "idle");
    if (c->ad->send_error) {
        char text[64];
        snprintf(text, sizeof text, handshake ? "no %s in time" : "idle too long",
                 c->ad->handshake);
        c->ad->send_error(c, CVD_FR_E_TIMEOUT, text);
    }
    c->input_done = 1;
    c->reason = handshake ? CVD_DISC_HANDSHAKE_TIMEOUT : CVD_DISC_IDLE_TIMEOUT;
    conn_finish(c);
}

static void timer_stop(cvd_conn *c)
{
    CVD_UV_CHECK(uv_timer_stop(&c->timer));
}

static void restart_timer(cvd_conn *c)
{
    const cvd_conf *cf = conf_of(c);
    double sec =
        c->state == ST_HANDSHAKE && c->ad->handshake ? cf->handshake_timeout : cf->idle_timeout;
    if (c->sub)
        sec = 0; /* subscribers only listen */
    if (sec <= 0) {
        timer_stop(c);
        return;
    }
    CVD_UV_CHECK(uv_timer_start(&c->timer, on_timeout, (uint64_t)(sec * 1000.0 + 0.5), 0));
}

/* ---- the handshake, for the adapters ---------------------------------------------------- */

void cvd_conn_set_state(cvd_conn *c, void *state)
{
    c->ad_state = state;
}

void *cvd_conn_state(const cvd_conn *c)
{
    return c->ad_state;
}

const char *cvd_conn_peer(const cvd_conn *c)
{
    return c->peer;
}

void cvd_conn_peer_note(cvd_conn *c, const char *note)
{
    size_t n = strlen(c->peer);
    snprintf(c->peer + n, sizeof c->peer - n, "%s", note);
}

const cvd_conf *cvd_conn_conf(const cvd_conn *c)
{
    return c->rt->conf;
}

const cvd_conf_listen *cvd_conn_listener(const cvd_conn *c)
{
    return c->lc;
}

cvd_runtime *cvd_conn_runtime(const cvd_conn *c)
{
    return c->rt;
}

cvd_model *cvd_conn_listener_model(const cvd_conn *c)
{
    return cvd_runtime_listener_model(c->rt, (int)(c->lc - c->rt->conf->listens));
}

int cvd_conn_in_handshake(const cvd_conn *c)
{
    return c->state == ST_HANDSHAKE;
}

int cvd_conn_block(const cvd_conn *c)
{
    return c->block;
}

int cvd_conn_latency(const cvd_conn *c)
{
    return c->latency;
}

double cvd_conn_rate(const cvd_conn *c)
{
    if (c->net && cvd_chain_rate(c->net) > 0)
        return cvd_chain_rate(c->net);
    return c->rate;
}

int cvd_conn_in_channels(const cvd_conn *c)
{
    return c->in_ch;
}

int cvd_conn_out_channels(const cvd_conn *c)
{
    return c->out_ch;
}

int cvd_conn_publish(cvd_conn *c, const char *name, const cvd_pub_info *info, cvd_err *err)
{
    return cvd_pub_create(name, info, &c->pub, err);
}

int cvd_conn_subscribe(cvd_conn *c, const char *name, int ring_frames, cvd_pub_info *info,
                       cvd_err *err)
{
    int rc = cvd_sub_create(name, ring_frames, conf_of(c)->slow_disconnect, cvd_worker_wake, c->w,
                            &c->sub, info, err);
    if (rc < 0)
        return rc;
    c->out_ch = c->in_ch = info->channels;
    c->block = c->lc->block;
    c->sub_frames = 1024;
    /* its figure: the ring, the buffer it is read into, and what every stream holds */
    const size_t need =
        sizeof(float) * (size_t)info->channels * ((size_t)ring_frames + (size_t)c->sub_frames) +
        stream_extra(c);
    if ((rc = reserve(c, need, err)) < 0) {
        cvd_sub_destroy(c->sub);
        c->sub = NULL;
        return rc;
    }
    c->subbuf = malloc(sizeof(float) * (size_t)c->sub_frames * (size_t)info->channels);
    if (c->subbuf == NULL)
        return cvd_err_set(err, CVD_ENOMEM, "out of memory");
    return CVD_OK;
}

void cvd_conn_running(cvd_conn *c, int kind, const char *stats_name)
{
    c->state = ST_RUN;
    c->stats = cvd_metrics_series(kind, stats_name);
    if (c->stats && !c->sub)
        atomic_fetch_add(&c->stats->clients, 1);
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
    while (!busy(c) && queued(c) <= limit) {
        uint64_t dropped = 0;
        int state = 0;
        int n = cvd_sub_read(c->sub, c->subbuf, c->sub_frames, &dropped, &state);
        if (n > 0 || dropped > 0) {
            /* frames, or (at the end of the stream) just the count of the last ones lost */
            c->frames_out += (uint64_t)n;
            c->ad->encode(c, c->subbuf, (size_t)n, dropped);
        }
        if (state == 2) {
            conn_close(c, CVD_DISC_SLOW_SUBSCRIBER);
            return;
        }
        if (state == 1) { /* the producer ended */
            if (c->ad->stream_end && !c->closing)
                c->ad->stream_end(c);
            c->reason = CVD_DISC_CLOSED;
            conn_finish(c);
            return;
        }
        if (n == 0 && dropped == 0)
            return;
    }
}

/* ---- accept, finish, close -------------------------------------------------------------- */

/* "HOST:PORT" ("?:0" for a family other than IPv4 and IPv6) */
static void sockaddr_name(const struct sockaddr *sa, char *buf, size_t cap)
{
    char host[64] = "?";
    int port = 0, rc = 0;
    if (sa && sa->sa_family == AF_INET6) {
        rc = uv_ip6_name((const struct sockaddr_in6 *)sa, host, sizeof host);
        port = ntohs(((const struct sockaddr_in6 *)sa)->sin6_port);
    } else if (sa && sa->sa_family == AF_INET) {
        rc = uv_ip4_name((const struct sockaddr_in *)sa, host, sizeof host);
        port = ntohs(((const struct sockaddr_in *)sa)->sin_port);
    }
    if (rc < 0) /* cannot happen with room for any address */
        snprintf(host, sizeof host, "?");
    snprintf(buf, cap, "%s:%d", host, port);
}

static cvd_conn *of_member(cvd_worker_member *m)
{
    return (cvd_conn *)((char *)m - offsetof(cvd_conn, member));
}

static void on_handle_closed(cvd_conn *c)
{
    if (--c->handles_open > 0)
        return;
    cvd_worker_remove(c->w, &c->member);
    if (c->ad && c->ad->close)
        c->ad->close(c);
    cvd_chain_destroy(c->net);
    cvd_pub_destroy(c->pub);
    cvd_sub_destroy(c->sub);
    if (c->stats && c->state != ST_HANDSHAKE && !c->sub)
        atomic_fetch_sub(&c->stats->clients, 1);
    release(c);
    if (c->addr_counted)
        cvd_peer_release((struct sockaddr *)&c->addr);
    cvd_runtime_unref(c->rt);
    free(c->blk);
    free(c->obuf);
    free(c->subbuf);
    free(c->inbuf);
    free(c);
    cvd_metrics_clients(-1);
}

static void on_timer_closed(uv_handle_t *h)
{
    on_handle_closed(h->data);
}

void cvd_conn_close(cvd_conn *c, int reason)
{
    conn_close(c, reason);
}

static void conn_close(cvd_conn *c, int reason)
{
    if (c->closing)
        return;
    c->closing = 1;
    c->reading = 0;
    cvd_metrics_disconnect(reason);
    cvd_log_debug("%s: closed (%llu frames in, %llu out)", c->peer,
                  (unsigned long long)c->frames_in, (unsigned long long)c->frames_out);
    /* out of the run queue: the work step skips closing connections, the close drops them */
    if (c->tr)
        cvd_transport_close(c->tr); /* on_io_closed follows */
    uv_close((uv_handle_t *)&c->timer, on_timer_closed);
}

/* Close once everything queued is sent; the end is signalled with a FIN first, so a raw
 * client reading until EOF gets every byte. The transport closes itself then (on_io_closed). */
static void conn_finish(cvd_conn *c)
{
    if (c->closing || c->shutting)
        return;
    c->finishing = 1;
    c->shutting = 1;
    io_read_stop(c);
    timer_stop(c);
    cvd_transport_finish(c->tr);
}

void cvd_conn_finish(cvd_conn *c, int reason)
{
    c->input_done = 1;
    c->reason = reason;
    conn_finish(c);
}

/* the worker's calls */

static int member_run(cvd_worker_member *m)
{
    return work_one(of_member(m));
}

static void member_wake(cvd_worker_member *m)
{
    cvd_conn *c = of_member(m);
    if (c->sub && !c->closing)
        schedule(c); /* subscriber rings may have frames */
}

static void member_shutdown(cvd_worker_member *m)
{
    cvd_conn *c = of_member(m);
    if (busy(c))
        return;
    c->reason = CVD_DISC_SHUTDOWN;
    if (c->state == ST_HANDSHAKE) {
        if (c->ad->send_error)
            c->ad->send_error(c, CVD_FR_E_SHUTTING_DOWN, "the server is stopping");
        conn_finish(c);
    } else if (c->sub) {
        c->cut = 1; /* its publisher did not end: the stream is cut here */
        if (c->ad->stream_end)
            c->ad->stream_end(c);
        conn_finish(c);
    } else {
        /* the input so far is the stream: process what has arrived, flush, end; unless the
         * client's end of input had come, the stream is cut, and the adapter says so */
        if (!c->input_done && !c->eof)
            c->cut = 1;
        io_read_stop(c);
        /* not input_done: what is buffered (bytes, a decoded message) is still processed */
        c->eof = 1;
        schedule(c);
    }
}

static void member_exit(cvd_worker_member *m)
{
    conn_close(of_member(m), CVD_DISC_SHUTDOWN);
}

static const cvd_worker_member_ops member_ops = {
    .run = member_run,
    .wake = member_wake,
    .shutdown = member_shutdown,
    .exit = member_exit,
};

void cvd_conn_accept(cvd_worker *w, int fd, const struct sockaddr *peer, const char *listener)
{
    cvd_runtime *rt = cvd_worker_runtime(w);
    const cvd_conf *cf = rt->conf;
    cvd_err err = {0};
    char addr[96];
    int rc, li = -1;

    for (int i = 0; i < cf->n_listens; i++)
        if (strcmp(cf->listens[i].name, listener) == 0)
            li = i;
    sockaddr_name(peer, addr, sizeof addr);
    if (li < 0) { /* the listener went away in a reload just now */
        close(fd);
        cvd_metrics_disconnect(CVD_DISC_SHUTDOWN);
        cvd_runtime_unref(rt);
        return;
    }
    /* who may connect: others are closed here, before anything is spent on them */
    if (!cvd_acl_allows(&cf->listens[li].allow, peer)) {
        close(fd);
        cvd_metrics_disconnect(CVD_DISC_NOT_ALLOWED);
        cvd_conn_log_limited(CVD_DISC_NOT_ALLOWED, "listen %s: %s refused: not in allow", listener,
                             addr);
        cvd_runtime_unref(rt);
        return;
    }

    cvd_conn *c = calloc(1, sizeof *c);
    if (c == NULL) {
        close(fd);
        cvd_log_error("listen %s: out of memory", listener);
        cvd_runtime_unref(rt);
        return;
    }
    c->w = w;
    c->rt = rt;
    c->li = li;
    c->lc = &cf->listens[li];
    c->member.ops = &member_ops;
    c->reason = CVD_DISC_CLOSED;
    memcpy(&c->addr, peer,
           peer->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in));
    snprintf(c->peer, sizeof c->peer, "%s %s", listener, addr);
    CVD_UV_CHECK(uv_timer_init(cvd_worker_loop(w), &c->timer));
    c->timer.data = c;
    c->handles_open = 2;
    /* a member first, so the close path is the same for every failure below */
    cvd_worker_add(w, &c->member);
    cvd_metrics_clients(1);
    cvd_metrics_stream_memory_limit(cf->max_stream_memory);
    const cvd_transport_opts topts = {.tls = rt->tls[li],
                                      .write_timeout = cf->write_timeout,
                                      .handshake_timeout = cf->handshake_timeout};
    if (cvd_transport_open(cvd_worker_loop(w), fd, &topts, &io_cbs, c, &c->tr, &err) < 0) {
        cvd_log_warning("%s: %s", c->peer, err.msg);
        c->handles_open = 1; /* no transport to close */
        conn_close(c, CVD_DISC_ERROR);
        return;
    }
    c->ad = cvd_adapter_find(c->lc->protocol);
    if (c->ad == NULL) { /* the config parser knows a protocol this table does not: a bug */
        cvd_log_error("%s: no adapter for protocol %d", c->peer, (int)c->lc->protocol);
        conn_close(c, CVD_DISC_ERROR);
        return;
    }

    if (cvd_metrics_clients_now() > cf->max_clients) {
        cvd_conn_log_limited(CVD_DISC_MAX_CLIENTS, "%s: refused: max_clients = %d reached", c->peer,
                             cf->max_clients);
        if (c->ad->send_error)
            c->ad->send_error(c, CVD_FR_E_BUSY, "the server has max_clients connections");
        c->reason = CVD_DISC_MAX_CLIENTS;
        conn_finish(c);
        return;
    }
    rc = cvd_peer_acquire(peer, cf->max_clients_per_address);
    c->addr_counted = rc == 1;
    if (rc == 0) {
        cvd_conn_log_limited(CVD_DISC_PER_ADDRESS,
                             "%s: refused: max_clients_per_address = %d reached", c->peer,
                             cf->max_clients_per_address);
        if (c->ad->send_error)
            c->ad->send_error(c, CVD_FR_E_BUSY,
                              "this address has max_clients_per_address connections");
        c->reason = CVD_DISC_PER_ADDRESS;
        conn_finish(c);
        return;
    }
    if (cvd_worker_stopping(w)) {
        c->reason = CVD_DISC_SHUTDOWN;
        conn_finish(c);
        return;
    }
    if ((rc = c->ad->open(c, &err)) < 0) {
        cvd_log_error("%s: %s", c->peer, err.msg);
        conn_close(c, CVD_DISC_ERROR);
        return;
    }
    cvd_log_debug("%s: connected (%s%s)", c->peer, c->ad->name, topts.tls ? ", TLS" : "");
    restart_timer(c);
    start_reading(c);
}
