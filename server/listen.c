/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The daemon's listening sockets (listen.h).
 */
#include "listen.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "log.h"

typedef struct lsock {
    unsigned id; /* unique for the daemon's life */
    char name[CVD_CONF_NAME_MAX + 1];
    char host[CVD_CONF_HOST_MAX];
    int port;       /* as configured (0 = any) */
    int bound_port; /* the real port */
    int family;
    int fd;
    int activated; /* handed over by systemd: never closed here */
} lsock;

typedef struct activated_fd {
    int fd;
    char name[CVD_CONF_NAME_MAX + 1];
    int used;
} activated_fd;

struct cvd_listen_set {
    lsock *socks; /* in the config's listener order */
    cvd_listen_fd *fds;
    int n;
    unsigned next_id;
    activated_fd *activated;
    int n_activated;
};

static int take_activated_fds(cvd_listen_set *s, cvd_err *err)
{
    char **names = NULL;
    int n = sd_listen_fds_with_names(1, &names);
    if (n <= 0)
        return CVD_OK;
    s->activated = calloc((size_t)n, sizeof *s->activated);
    for (int i = 0; i < n && s->activated; i++) {
        s->activated[i].fd = SD_LISTEN_FDS_START + i;
        snprintf(s->activated[i].name, sizeof s->activated[i].name, "%s",
                 names && names[i] ? names[i] : "");
        s->n_activated++;
        cvd_log_info("socket activation: fd %d named '%s'", s->activated[i].fd,
                     s->activated[i].name);
    }
    for (int i = 0; names && i < n; i++)
        free(names[i]);
    free(names);
    if (s->activated == NULL)
        return cvd_err_set(err, CVD_ENOMEM, "socket activation: out of memory");
    return CVD_OK;
}

int cvd_listen_set_create(cvd_listen_set **out, cvd_err *err)
{
    cvd_listen_set *s = calloc(1, sizeof *s);
    int rc;
    *out = NULL;
    if (s == NULL)
        return cvd_err_set(err, CVD_ENOMEM, "out of memory");
    if ((rc = take_activated_fds(s, err)) < 0) {
        free(s);
        return rc;
    }
    *out = s;
    return CVD_OK;
}

static void close_sock(const lsock *k)
{
    if (!k->activated)
        close(k->fd);
}

void cvd_listen_set_destroy(cvd_listen_set *s)
{
    if (s == NULL)
        return;
    for (int k = 0; k < s->n; k++)
        close_sock(&s->socks[k]);
    free(s->socks);
    free(s->fds);
    free(s->activated);
    free(s);
}

static int bound_port(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
        return -1;
    if (ss.ss_family == AF_INET)
        return ntohs(((struct sockaddr_in *)&ss)->sin_port);
    return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
}

static int open_sock(lsock *s, cvd_err *err)
{
    struct sockaddr_storage ss;
    socklen_t len;
    int one = 1, fd;

    memset(&ss, 0, sizeof ss);
    if (s->family == AF_INET6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        a->sin6_family = AF_INET6;
        a->sin6_port = htons((uint16_t)s->port);
        inet_pton(AF_INET6, s->host, &a->sin6_addr); /* the config made it canonical */
        len = sizeof *a;
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        a->sin_family = AF_INET;
        a->sin_port = htons((uint16_t)s->port);
        inet_pton(AF_INET, s->host, &a->sin_addr);
        len = sizeof *a;
    }
    fd = socket(s->family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return cvd_err_set(err, CVD_EIO, "listen %s: socket: %s", s->name, strerror(errno));
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0)
        cvd_log_warning("listen %s: SO_REUSEADDR: %s", s->name, strerror(errno));
    if (s->family == AF_INET6 && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one) < 0)
        cvd_log_warning("listen %s: IPV6_V6ONLY: %s", s->name, strerror(errno));
    if (bind(fd, (struct sockaddr *)&ss, len) < 0 || listen(fd, 511) < 0) {
        int e = errno;
        close(fd);
        return cvd_err_set(err, CVD_EIO, "listen %s: %s%s%s:%d: %s", s->name,
                           s->family == AF_INET6 ? "[" : "", s->host,
                           s->family == AF_INET6 ? "]" : "", s->port, strerror(e));
    }
    s->fd = fd;
    s->bound_port = bound_port(fd);
    return CVD_OK;
}

int cvd_listen_set_sync(cvd_listen_set *s, const cvd_conf *c, cvd_err *err)
{
    lsock *ns = calloc((size_t)c->n_listens + 1, sizeof *ns);
    cvd_listen_fd *nf = calloc((size_t)c->n_listens + 1, sizeof *nf);
    int *kept = calloc((size_t)s->n + 1, sizeof *kept);
    int *opened = calloc((size_t)c->n_listens + 1, sizeof *opened); /* 1 opened, 2 systemd's */
    int *act = calloc((size_t)c->n_listens + 1, sizeof *act);       /* which systemd socket */
    int rc = CVD_OK, i;

    if (ns == NULL || nf == NULL || kept == NULL || opened == NULL || act == NULL) {
        rc = cvd_err_set(err, CVD_ENOMEM, "out of memory");
        goto out;
    }
    for (i = 0; i < c->n_listens; i++) {
        const cvd_conf_listen *l = &c->listens[i];
        lsock *k = &ns[i];
        int found = 0;
        for (int o = 0; o < s->n; o++) {
            const lsock *old = &s->socks[o];
            if (!kept[o] && strcmp(old->name, l->name) == 0 && strcmp(old->host, l->host) == 0 &&
                old->port == l->port && old->family == l->family) {
                *k = *old;
                kept[o] = 1;
                found = 1;
                break;
            }
        }
        if (found)
            continue;
        snprintf(k->name, sizeof k->name, "%s", l->name);
        snprintf(k->host, sizeof k->host, "%s", l->host);
        k->port = l->port;
        k->family = l->family;
        k->id = ++s->next_id;
        for (int a = 0; a < s->n_activated; a++) {
            if (!s->activated[a].used && strcmp(s->activated[a].name, l->name) == 0) {
                s->activated[a].used = 1;
                k->fd = s->activated[a].fd;
                k->activated = 1;
                k->bound_port = bound_port(k->fd);
                opened[i] = 2;
                act[i] = a;
                found = 1;
                break;
            }
        }
        if (!found) {
            if ((rc = open_sock(k, err)) < 0) {
                cvd_err_prefix(err, "%s:%d", c->file, l->line);
                break;
            }
            opened[i] = 1;
        }
    }
    if (rc < 0) { /* undo: close what was opened here, give systemd's back */
        for (int k = 0; k < i; k++) {
            if (opened[k] == 1)
                close(ns[k].fd);
            else if (opened[k] == 2)
                s->activated[act[k]].used = 0;
        }
        goto out;
    }
    /* the old sockets not kept: ours close now, the workers close their copies */
    for (int o = 0; o < s->n; o++)
        if (!kept[o])
            close_sock(&s->socks[o]);
    for (i = 0; i < c->n_listens; i++) {
        nf[i].id = ns[i].id;
        snprintf(nf[i].name, sizeof nf[i].name, "%s", ns[i].name);
        nf[i].fd = ns[i].fd;
    }
    free(s->socks);
    free(s->fds);
    s->socks = ns;
    s->fds = nf;
    s->n = c->n_listens;
    ns = NULL;
    nf = NULL;
out:
    free(ns);
    free(nf);
    free(kept);
    free(opened);
    free(act);
    return rc;
}

int cvd_listen_set_fds(const cvd_listen_set *s, const cvd_listen_fd **fds)
{
    *fds = s->fds;
    return s->n;
}

int cvd_listen_set_port(const cvd_listen_set *s, int i)
{
    return i >= 0 && i < s->n ? s->socks[i].bound_port : -1;
}
