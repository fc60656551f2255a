/* SPDX-License-Identifier: Apache-2.0 */
/*
 * net_util.h - what the network tests share (tests/test_limits.c, tests/test_security.c): the
 * suites' set-up, a configuration of the test models with listeners on 127.0.0.1, and plain
 * TCP clients bound to a source address (127.0.0.2, ::1, ...) to test who is admitted.
 * Include after daemon_util.h.
 */
#ifndef CONVD_NET_UTIL_H
#define CONVD_NET_UTIL_H

#include <arpa/inet.h>
#include <signal.h>

#include "daemon_util.h"

#define NAM_K "tests/data/nam/k1_relu_1ch.nam" /* 1 -> 1 channel, latency 0, cheap */
#define NAM_W "tests/data/nam/wide16_tanh.nam" /* 1 -> 1, latency 0 */
#define JSON_G "tests/data/tools/graph.json"   /* 2 -> 3 channels, latency 2 */
#define INPUT "tests/data/nam/input_4k.f32"    /* 4096 floats in [-1, 1] */

/* the suites' .init and .fini: a temporary folder, a deadline, daemons cleaned up after */
DU_FN void nu_suite_init(void)
{
    signal(SIGPIPE, SIG_IGN);
    du_tmp_make();
    du_deadline(120);
}

DU_FN void nu_suite_fini(void)
{
    du_cleanup();
    du_tmp_remove();
}

/* A configuration: metrics on 127.0.0.1, the [server] lines given, models k, w and g, then
 * the listeners (nu_listener). Free it. */
DU_FN char *nu_conf_text(const char *server, const char *listeners)
{
    du_buf b = {0};
    du_buf_printf(&b, "[server]\nmetrics = 127.0.0.1:0\n%s\n", server ? server : "");
    du_buf_printf(&b, "[model k]\npath = %s\n", du_src(NAM_K));
    du_buf_printf(&b, "[model w]\npath = %s\n", du_src(NAM_W));
    du_buf_printf(&b, "[model g]\npath = %s\n", du_src(JSON_G));
    du_buf_printf(&b, "%s", listeners);
    return (char *)b.p;
}

/* A listener on 127.0.0.1 (port 0: du_daemon_port gives it) with model k, and extra lines. */
DU_FN void nu_listener(du_buf *b, const char *name, const char *protocol, const char *extra)
{
    du_buf_printf(b, "[listen %s]\naddress = 127.0.0.1:0\nprotocol = %s\nmodel = k\n%s\n", name,
                  protocol, extra ? extra : "");
}

/* A plain TCP client bound to the source address `from` (IPv4 or IPv6, as host is; NULL: any)
 * connecting to host:port; the fd, or -errno of the bind or connect that failed. */
DU_FN int nu_connect_from(const char *from, const char *host, int port)
{
    struct sockaddr_storage src, dst;
    memset(&src, 0, sizeof src);
    memset(&dst, 0, sizeof dst);
    int v6 = strchr(host, ':') != NULL;
    socklen_t len = v6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
    if (v6) {
        struct sockaddr_in6 *s = (struct sockaddr_in6 *)&src, *d = (struct sockaddr_in6 *)&dst;
        s->sin6_family = d->sin6_family = AF_INET6;
        if (from)
            inet_pton(AF_INET6, from, &s->sin6_addr);
        inet_pton(AF_INET6, host, &d->sin6_addr);
        d->sin6_port = htons((uint16_t)port);
    } else {
        struct sockaddr_in *s = (struct sockaddr_in *)&src, *d = (struct sockaddr_in *)&dst;
        s->sin_family = d->sin_family = AF_INET;
        if (from)
            inet_pton(AF_INET, from, &s->sin_addr);
        inet_pton(AF_INET, host, &d->sin_addr);
        d->sin_port = htons((uint16_t)port);
    }
    int fd = socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert_geq(fd, 0);
    if (from && bind(fd, (struct sockaddr *)&src, len) < 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    if (connect(fd, (struct sockaddr *)&dst, len) < 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    return fd;
}

/* The same from an IPv4 source to 127.0.0.1:port, which must connect. */
DU_FN int nu_connect_ok(const char *from, int port)
{
    int fd = nu_connect_from(from, "127.0.0.1", port);
    cr_assert_geq(fd, 0, "connect from %s: %s", from, strerror(-fd));
    return fd;
}

#endif
