/* SPDX-License-Identifier: Apache-2.0 */
/*
 * convd-ctl: switch a running daemon's audio streams live, over its control socket (a Unix
 * socket, docs/AUDIO.md): list the streams, show one's status, switch its model or chain
 * (crossfaded), set its gains, bypass it.
 *
 *   convd-ctl list
 *   convd-ctl status [STREAM]
 *   convd-ctl set STREAM model=amp,cab
 *   convd-ctl gain STREAM input=-3 output=+2
 *   convd-ctl bypass STREAM on|off
 *
 * The socket: -s PATH, else $CONVD_CONTROL_SOCKET, else where the daemon puts it by default
 * ($RUNTIME_DIRECTORY/control.sock under systemd: /run/convd/control.sock).
 *
 * Exit status: 0 success, 1 the daemon refused or could not be reached, 2 a usage error.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "cli.h"
#include "convd_version.h"

#define PROG "convd-ctl"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: " PROG " [-s SOCKET] COMMAND [ARGS]\n"
            "\n"
            "Switches a running convd's live audio streams ([stream NAME]) while they play:\n"
            "\n"
            "  list                            the streams: state, models, gains, bypass\n"
            "  status [STREAM]                 settings and counters of one stream (or all)\n"
            "  set STREAM model=NAME[,NAME]    another model or chain of [model]s of the\n"
            "                                  running configuration, crossfaded (the\n"
            "                                  stream's crossfade_ms); model=none: unchanged\n"
            "  set STREAM input_gain_db=DB output_gain_db=DB bypass=on|off   (any of them)\n"
            "  gain STREAM [input=DB] [output=DB]   gains before and after the models\n"
            "  bypass STREAM on|off            the input plays unprocessed (faded)\n"
            "\n"
            "  -s, --socket PATH     the daemon's control socket (default: $CONVD_CONTROL_SOCKET,\n"
            "                        else the daemon's default: /run/convd/control.sock for\n"
            "                        the service, $XDG_RUNTIME_DIR/convd/control.sock for a\n"
            "                        user's daemon)\n"
            "  --timeout SECONDS     wait for the answer at most this long (default 10)\n"
            "  --help                this text\n"
            "  --version             the version\n"
            "\n"
            "Exit status: 0 success, 1 the daemon refused or could not be reached, 2 usage error.\n"
            "Documentation: " PROG "(1); " CVD_DOCDIR "/AUDIO.md\n");
}

/* the daemon's default (server/control.c's cvd_control_default_path, without creating) */
static int default_path(char *buf, size_t n)
{
    const char *rd = getenv("RUNTIME_DIRECTORY"), *xdg = getenv("XDG_RUNTIME_DIR");
    int r;
    if (rd && rd[0] == '/')
        r = snprintf(buf, n, "%.*s/control.sock", (int)strcspn(rd, ":"), rd);
    else if (geteuid() == 0)
        r = snprintf(buf, n, "/run/convd/control.sock");
    else if (xdg && xdg[0] == '/')
        r = snprintf(buf, n, "%s/convd/control.sock", xdg);
    else
        r = snprintf(buf, n, "/tmp/convd-%u/control.sock", (unsigned)geteuid());
    if (r >= 0 && (size_t)r < n && access(buf, F_OK) != 0 && geteuid() != 0) {
        /* a user asking the system service */
        snprintf(buf, n, "/run/convd/control.sock");
    }
    return r < 0 || (size_t)r >= n ? -1 : 0;
}

int main(int argc, char **argv)
{
    cli_set_prog(PROG);
    const char *sock = getenv("CONVD_CONTROL_SOCKET");
    double timeout = 10;
    char path[108], line[4096];
    size_t len = 0;
    int i = 1;

    for (; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0) {
            usage(stdout);
            return 0;
        }
        if (strcmp(a, "--version") == 0) {
            printf(PROG " %s\n", CVD_VERSION);
            return 0;
        }
        if (strcmp(a, "-s") == 0 || strcmp(a, "--socket") == 0 || strcmp(a, "--timeout") == 0) {
            if (i + 1 >= argc)
                return cli_usage_error("%s needs a value", a);
            if (a[1] == 's' || a[2] == 's')
                sock = argv[++i];
            else {
                char *end;
                timeout = strtod(argv[++i], &end);
                if (*end || !(timeout > 0) || timeout > 3600)
                    return cli_usage_error("--timeout %s: seconds, more than 0 and at most 3600",
                                           argv[i]);
            }
            continue;
        }
        if (strncmp(a, "--socket=", 9) == 0) {
            sock = a + 9;
            continue;
        }
        if (a[0] == '-' && a[1] != '\0' && !(a[1] >= '0' && a[1] <= '9'))
            return cli_usage_error("unknown option %s", a);
        break;
    }
    if (i >= argc)
        return cli_usage_error("a command is needed (list, status, set, gain, bypass)");
    static const char *const cmds[] = {"list", "status", "set", "gain", "bypass"};
    int known = 0;
    for (size_t k = 0; k < sizeof cmds / sizeof cmds[0]; k++)
        known |= strcmp(argv[i], cmds[k]) == 0;
    if (!known)
        return cli_usage_error("unknown command '%s' (list, status, set, gain, bypass)", argv[i]);
    for (; i < argc; i++) {
        size_t l = strlen(argv[i]);
        if (strchr(argv[i], '\n') || len + l + 2 > sizeof line)
            return cli_usage_error("the command is too long (4095 bytes at most, one line)");
        memcpy(line + len, argv[i], l);
        len += l;
        line[len++] = i + 1 < argc ? ' ' : '\n';
    }
    if (sock == NULL || sock[0] == '\0') {
        if (default_path(path, sizeof path) < 0)
            return cli_usage_error("the default socket path is too long: use -s PATH");
        sock = path;
    }
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(sock) >= sizeof sa.sun_path)
        return cli_usage_error("-s %s: longer than a Unix socket's path (%zu bytes)", sock,
                               sizeof sa.sun_path - 1);
    memcpy(sa.sun_path, sock, strlen(sock) + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
        int e = errno;
        fprintf(stderr, PROG ": %s: %s%s\n", sock, strerror(e),
                e == ENOENT || e == ECONNREFUSED
                    ? " (is convd running with a [stream]? its log names its control socket)"
                : e == EACCES ? " (the socket is for root and group convd)"
                              : "");
        return 1;
    }
    struct timeval tv = {(time_t)timeout, (suseconds_t)((timeout - (double)(time_t)timeout) * 1e6)};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    for (size_t off = 0; off < len;) {
        ssize_t w = write(fd, line + off, len - off);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            fprintf(stderr, PROG ": %s: %s\n", sock, strerror(errno));
            close(fd);
            return 1;
        }
        off += (size_t)w;
    }
    /* the answer: lines, the last "ok" or "error: ..." */
    char *ans = NULL;
    size_t an = 0, cap = 0;
    for (;;) {
        if (an + 4096 + 1 > cap) {
            cap = cap ? cap * 2 : 8192;
            char *p = realloc(ans, cap);
            if (p == NULL) {
                fprintf(stderr, PROG ": out of memory\n");
                free(ans);
                close(fd);
                return 1;
            }
            ans = p;
        }
        ssize_t r = read(fd, ans + an, 4096);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            fprintf(stderr, PROG ": %s: %s\n", sock,
                    errno == EAGAIN || errno == EWOULDBLOCK ? "no answer in time"
                                                            : strerror(errno));
            free(ans);
            close(fd);
            return 1;
        }
        if (r == 0)
            break;
        an += (size_t)r;
    }
    close(fd);
    if (ans == NULL) {
        fprintf(stderr, PROG ": %s: the daemon closed without an answer\n", sock);
        return 1;
    }
    ans[an] = '\0';
    /* the last line says how it went */
    while (an > 0 && ans[an - 1] == '\n')
        ans[--an] = '\0';
    char *last = strrchr(ans, '\n');
    char *tail = last ? last + 1 : ans;
    int status;
    if (strcmp(tail, "ok") == 0) {
        *tail = '\0';
        fputs(ans, stdout);
        status = 0;
    } else if (strncmp(tail, "error: ", 7) == 0) {
        *tail = '\0';
        fputs(ans, stdout);
        fprintf(stderr, PROG ": %s\n", tail + 7);
        status = 1;
    } else {
        fprintf(stderr, PROG ": %s: an answer cut short:\n%s\n", sock, ans);
        status = 1;
    }
    free(ans);
    return status;
}
