/* SPDX-License-Identifier: Apache-2.0 */
/*
 * daemon_proc.h: the daemon as a child of a benchmark program (the load tests of loadgen.h,
 * reply_latency): where the built convd is, a temporary folder for its configuration and log,
 * starting it with its log in a file, the port a listener logged, stopping it. The including
 * program defines PROG (its name, for messages).
 */
#ifndef CONVD_BENCH_DAEMON_PROC_H
#define CONVD_BENCH_DAEMON_PROC_H

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static pid_t daemon_pid;
static char tmpdir[512];

/* SIGTERM, then SIGKILL after 5 s; says so when the daemon did not exit 0. */
static void stop_daemon(void)
{
    int st;
    if (daemon_pid <= 0)
        return;
    kill(daemon_pid, SIGTERM);
    for (int i = 0; i < 500; i++) {
        if (waitpid(daemon_pid, &st, WNOHANG) == daemon_pid) {
            daemon_pid = 0;
            break;
        }
        sleep_ms(10);
    }
    if (daemon_pid > 0) {
        kill(daemon_pid, SIGKILL);
        waitpid(daemon_pid, &st, 0);
        daemon_pid = 0;
        printf(PROG ": the daemon did not stop within 5 s of SIGTERM (killed)\n");
    } else if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        printf(PROG ": the daemon exited with status 0x%x after SIGTERM\n", st);
    }
}

/* Removes the folder, its convd.conf and convd.log (the program removes what else it wrote). */
static void remove_tmpdir(void)
{
    char p[600];
    if (tmpdir[0] == '\0')
        return;
    snprintf(p, sizeof p, "%s/convd.conf", tmpdir);
    remove(p);
    snprintf(p, sizeof p, "%s/convd.log", tmpdir);
    remove(p);
    rmdir(tmpdir);
}

/* the folder of the daemon's configuration and log (and the models a benchmark writes) */
static int make_tmpdir(void)
{
    const char *base = getenv("TMPDIR");
    snprintf(tmpdir, sizeof tmpdir, "%s/convd-" PROG "-XXXXXX", base && *base ? base : "/tmp");
    if (mkdtemp(tmpdir) == NULL) {
        tmpdir[0] = '\0';
        return -1;
    }
    return 0;
}

/* CVD_BUILD_DIR's convd, else the one beside this program's folder (build/bench/..). */
static const char *daemon_path(void)
{
    static char path[1024];
    const char *env = getenv("CVD_BUILD_DIR");
    if (env && *env) {
        snprintf(path, sizeof path, "%s/convd", env);
        return path;
    }
    char self[900];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n > 0) {
        self[n] = '\0';
        char *slash = strrchr(self, '/');
        if (slash) {
            *slash = '\0'; /* .../build/bench */
            slash = strrchr(self, '/');
            if (slash) {
                *slash = '\0';
                snprintf(path, sizeof path, "%s/convd", self);
                return path;
            }
        }
    }
    return "build/convd";
}

/* Starts `prog -c conf` at log level info (which logs the listeners' ports), its standard
 * error into logp, standard input and output /dev/null; sets daemon_pid. 0, or -1 (said
 * why). */
static int spawn_daemon(const char *prog, const char *conf, const char *logp)
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        printf(PROG ": fork: %s: skipped\n", strerror(errno));
        return -1;
    }
    if (pid == 0) {
        int fd = open(logp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int nul = open("/dev/null", O_RDWR);
        if (fd < 0 || nul < 0)
            _exit(127);
        dup2(nul, 0);
        dup2(nul, 1);
        dup2(fd, 2);
        execl(prog, prog, "-c", conf, "--log-level", "info", (char *)NULL);
        _exit(127);
    }
    daemon_pid = pid;
    return 0;
}

/* 1 when the daemon has exited (said, with logp); daemon_pid is then 0. */
static int daemon_exited_at_start(const char *logp)
{
    int st;
    if (waitpid(daemon_pid, &st, WNOHANG) != daemon_pid)
        return 0;
    daemon_pid = 0;
    printf(PROG ": the daemon exited at start (status 0x%x; see %s)\n", st, logp);
    return 1;
}

/* The port the daemon logged in logp for listener `name` ("listen NAME: 127.0.0.1:PORT"), 0
 * when not (yet). */
static int logged_port(const char *logp, const char *name)
{
    char key[160], line[1024];
    int port = 0;
    FILE *lf = fopen(logp, "r");
    snprintf(key, sizeof key, "listen %s: 127.0.0.1:", name);
    while (lf && port == 0 && fgets(line, sizeof line, lf)) {
        const char *h = strstr(line, key);
        if (h)
            port = atoi(h + strlen(key));
    }
    if (lf)
        fclose(lf);
    return port;
}

#endif
