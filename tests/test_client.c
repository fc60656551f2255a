/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The client library (client/convd_client.h): a loopback against a small server thread
 * speaking the framed protocol with proto's codec.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "convd_client.h"
#include "convd_proto.h"
#include "proto_util.h"
#include "testutil.h"

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
