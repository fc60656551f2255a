/* SPDX-License-Identifier: Apache-2.0 */
/*
 * bench_server: what the daemon costs apart from the model, and how it scales over workers.
 *
 *   0. The floor: a bare epoll echo server in a child process (one epoll_wait, one read and one
 *      write a block), measured by the same client: what the loopback and the system calls
 *      cost on this machine before any server code; the daemon's rows say how far above it
 *      they are ("over floor").
 *   1. Per block: an identity model (one linear Activation: no arithmetic), 1 channel of raw
 *      f32 at 48 kHz in blocks of 64 frames, 1 and then 16 clients each sending a block and
 *      waiting for its output before the next (one block in flight), one worker. Latency per
 *      block, socket to socket: the last byte of the block sent -> the last byte of its output
 *      received, median and p99 in microseconds (the loopback and both processes' system calls
 *      included), and the daemon's CPU time per block. 0 and 1 run twice: first where the
 *      scheduler puts the client and the server, then with all of them on one CPU (the lowest
 *      this process may use), so no block waits for a wake-up across cores (~20 us on a VM).
 *      Under `chrt -f 10` the order on one CPU is fixed (no preemption at wake-up): the floor
 *      and the daemon then compare like for like.
 *   2. Across workers: a cheap sensor model (3 channels at 1 kHz, one causal Conv1D(3, 5):
 *      45 multiply-adds a frame) streamed by 1,000 connections at once in blocks of 16 frames,
 *      each keeping 4 blocks in flight, with 1 and then 2 workers: frames per second (all
 *      connections together; x 1/1000 = how many 1 kHz sensors that is), the daemon's CPU
 *      seconds per second and per frame, and the ratio of 2 workers to 1; with the CPU the
 *      daemon and this client used together, since on a machine of two cores the client's
 *      share is what the daemon cannot have.
 *
 * The models are written to a temporary folder, and build/convd started on them (loadgen.h).
 * The client runs on this machine too: on a machine with few cores it competes with the
 * daemon's workers, which the CPU columns show. Every figure also goes to
 * build/bench/bench_server.json (beside the program).
 *
 *   bench_server [--seconds S] [--connections N] [--json PATH]
 */
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <sys/epoll.h>
#include <stdlib.h>
#include <string.h>

#define PROG "bench_server"
#include "benchutil.h"
#include "loadgen.h"
#include "peak.h" /* bench_cpu_model */

static int write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (f == NULL)
        return -1;
    fputs(text, f);
    return fclose(f);
}

static const char identity_json[] =
    "{\"format\": \"convd-model\", \"version\": 1, \"name\": \"identity\",\n"
    " \"description\": \"bench_server: output = input (no arithmetic)\",\n"
    " \"sample_rate\": 48000, \"input_channels\": 1,\n"
    " \"layers\": [{\"class_name\": \"Activation\", \"name\": \"id\", \"config\": "
    "{\"activation\": \"linear\"}, \"inputs\": [\"input\"]}]}\n";

/* 3 channels at 1 kHz through a causal Conv1D(3, kernel 5): weights [5][3][3] and a bias */
static void sensor_json(char *buf, size_t cap)
{
    int o = snprintf(buf, cap,
                     "{\"format\": \"convd-model\", \"version\": 1, \"name\": \"sensor\",\n"
                     " \"description\": \"bench_server: a cheap 3-axis sensor filter\",\n"
                     " \"sample_rate\": 1000, \"input_channels\": 3,\n"
                     " \"layers\": [{\"class_name\": \"Conv1D\", \"name\": \"c\", \"config\": "
                     "{\"filters\": 3, \"kernel_size\": 5, \"padding\": \"causal\", "
                     "\"activation\": \"linear\"}, \"inputs\": [\"input\"], \"weights\": [[");
    for (int i = 0; i < 5 * 3 * 3; i++)
        o += snprintf(buf + o, cap - (size_t)o, "%s%.3f", i ? ", " : "",
                      (i % 3 == (i / 3) % 3 ? 0.2 : 0.0) + 0.01 * (i % 7));
    snprintf(buf + o, cap - (size_t)o, "], [0, 0, 0]]}]}\n");
}

/* ---- the floor: the cheapest server there is ------------------------------------------------
 * A child process that echoes every byte back (what the identity model does) with one
 * epoll_wait, one read and one write per block: the loopback's and the system calls' own
 * cost on this machine, measured by the same client as the daemon. */
static void echo_exit(int sig)
{
    (void)sig;
    _exit(0);
}

static void echo_serve(int lfd)
{
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = lfd}, evs[64];
    static char buf[1 << 16];
    if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev) < 0)
        _exit(1);
    for (;;) {
        int n = epoll_wait(ep, evs, 64, -1);
        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd;
            if (fd == lfd) {
                int c = accept4(lfd, NULL, NULL, SOCK_NONBLOCK);
                int one = 1;
                if (c < 0)
                    continue;
                setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                ev.events = EPOLLIN;
                ev.data.fd = c;
                if (epoll_ctl(ep, EPOLL_CTL_ADD, c, &ev) < 0)
                    close(c);
                continue;
            }
            ssize_t k = read(fd, buf, sizeof buf);
            if (k > 0) {
                for (ssize_t off = 0; off < k;) { /* a few bytes: the socket takes them */
                    ssize_t w = write(fd, buf + off, (size_t)(k - off));
                    if (w < 0 && errno != EAGAIN && errno != EINTR)
                        break;
                    off += w > 0 ? w : 0;
                }
            } else if (k == 0 || (errno != EAGAIN && errno != EINTR)) {
                close(fd); /* the epoll entry goes with it */
            }
        }
    }
}

/* Starts the echo child (its pid in daemon_pid, so daemon_cpu and stop_daemon apply); the
 * port, or 0. */
static int start_echo(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&a, sizeof a) < 0 || listen(lfd, 64) < 0 ||
        getsockname(lfd, (struct sockaddr *)&a, &al) < 0) {
        if (lfd >= 0)
            close(lfd);
        return 0;
    }
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        signal(SIGTERM, echo_exit);
        echo_serve(lfd);
    }
    close(lfd);
    if (pid < 0)
        return 0;
    daemon_pid = pid;
    return ntohs(a.sin_port);
}

/* a signal of n frames of ch channels */
static float *make_signal(size_t n, int ch)
{
    float *s = malloc(sizeof(float) * n * (size_t)ch);
    if (s == NULL)
        return NULL;
    for (size_t f = 0; f < n; f++)
        for (int c = 0; c < ch; c++)
            s[f * (size_t)ch + (size_t)c] = 0.5f * (float)sin(0.01 * (double)f + (double)c);
    return s;
}

/* The floor and the daemon, 1 and 16 clients, one block in flight each; rows into the JSON
 * record with "one_cpu" saying where they ran. Returns nonzero if a connection failed. */
static int per_block(const options *o, const float *sig, int one_cpu, FILE *js, int *n_cases)
{
    const int nc[2] = {1, 16};
    double floor_p50[2] = {0, 0}, floor_p99[2] = {0, 0};
    int rc = 0;
    int port = start_echo();
    if (port > 0) {
        printf("floor: a bare epoll echo server (one process, one epoll_wait, read and write a "
               "block), same client\n");
        printf("%8s %12s %12s %12s %12s %16s\n", "clients", "blocks", "median us", "p99 us",
               "max us", "server CPU us/blk");
        for (int k = 0; k < 2; k++) {
            result r = run_case(o, port, nc[k], sig, 4096, 1, 1, 0);
            const double cpb = r.blocks && r.daemon_cpu >= 0 ? r.daemon_cpu / (double)r.blocks : -1;
            floor_p50[k] = r.p50;
            floor_p99[k] = r.p99;
            printf("%8d %12zu %12.1f %12.1f %12.1f %16.2f%s\n", nc[k], r.blocks, r.p50 * 1e6,
                   r.p99 * 1e6, r.pmax * 1e6, cpb * 1e6, r.errors ? "  (errors!)" : "");
            fflush(stdout);
            if (js)
                fprintf(js,
                        "%s\n    {\"case\": \"per_block_echo_floor\", \"one_cpu\": %s, "
                        "\"clients\": %d, \"block\": 64, \"blocks\": %zu, \"median_us\": %.2f, "
                        "\"p99_us\": %.2f, \"max_us\": %.2f, \"server_cpu_us_per_block\": %.3f}",
                        (*n_cases)++ ? "," : "", one_cpu ? "true" : "false", nc[k], r.blocks,
                        r.p50 * 1e6, r.p99 * 1e6, r.pmax * 1e6, cpb * 1e6);
        }
        stop_daemon();
    }
    port = start_daemon(o);
    if (port > 0) {
        printf("per block, identity model, raw f32, 1 channel, blocks of 64 frames, one block in "
               "flight per client, 1 worker\n");
        printf("%8s %12s %12s %12s %12s %16s %14s\n", "clients", "blocks", "median us", "p99 us",
               "max us", "daemon CPU us/blk", "over floor us");
        for (int k = 0; k < 2; k++) {
            result r = run_case(o, port, nc[k], sig, 4096, 1, 1, 0);
            const double cpb = r.blocks && r.daemon_cpu >= 0 ? r.daemon_cpu / (double)r.blocks : -1;
            printf("%8d %12zu %12.1f %12.1f %12.1f %16.2f %14.1f%s\n", nc[k], r.blocks, r.p50 * 1e6,
                   r.p99 * 1e6, r.pmax * 1e6, cpb * 1e6,
                   floor_p50[k] > 0 ? (r.p50 - floor_p50[k]) * 1e6 : 0.0,
                   r.errors ? "  (errors!)" : "");
            fflush(stdout);
            rc |= r.errors != 0;
            if (js)
                fprintf(js,
                        "%s\n    {\"case\": \"per_block_identity\", \"one_cpu\": %s, "
                        "\"clients\": %d, \"block\": 64, \"blocks\": %zu, \"median_us\": %.2f, "
                        "\"p99_us\": %.2f, \"max_us\": %.2f, \"daemon_cpu_us_per_block\": %.3f, "
                        "\"floor_median_us\": %.2f, \"floor_p99_us\": %.2f, \"errors\": %d}",
                        (*n_cases)++ ? "," : "", one_cpu ? "true" : "false", nc[k], r.blocks,
                        r.p50 * 1e6, r.p99 * 1e6, r.pmax * 1e6, cpb * 1e6, floor_p50[k] * 1e6,
                        floor_p99[k] * 1e6, r.errors);
        }
    }
    stop_daemon();
    return rc;
}

static void usage(void)
{
    fprintf(stderr, "usage: " PROG " [--seconds S] [--connections N] [--json PATH]\n");
}

int main(int argc, char **argv)
{
    double seconds = 2.0;
    int conns = 1000;
    const char *json_arg = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc) {
            seconds = atof(argv[++i]);
        } else if (strcmp(argv[i], "--connections") == 0 && i + 1 < argc) {
            conns = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--json") == 0 && i + 1 < argc) {
            json_arg = argv[++i];
        } else {
            usage();
            return 2;
        }
    }
    if (seconds <= 0 || conns < 1 || conns > 10000) {
        usage();
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    /* a descriptor per connection */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }

    char cpu[320], when[64], json_path[1024], id_path[600], sn_path[600];
    bench_cpu_model(cpu, sizeof cpu);
    bench_utc(when, sizeof when);
    if (make_tmpdir() < 0) {
        printf(PROG ": mkdtemp: %s: skipped\n", strerror(errno));
        return 0;
    }
    static char sensor[8192];
    sensor_json(sensor, sizeof sensor);
    snprintf(id_path, sizeof id_path, "%s/identity.json", tmpdir);
    snprintf(sn_path, sizeof sn_path, "%s/sensor.json", tmpdir);
    if (write_file(id_path, identity_json) < 0 || write_file(sn_path, sensor) < 0) {
        printf(PROG ": %s: cannot write the models: skipped\n", tmpdir);
        remove(id_path);
        remove(sn_path);
        remove_tmpdir();
        return 0;
    }
    if (json_arg)
        snprintf(json_path, sizeof json_path, "%s", json_arg);
    else
        bench_json_path(json_path, sizeof json_path, argv[0], "bench_server");
    FILE *js = fopen(json_path, "w");
    if (js == NULL)
        fprintf(stderr, PROG ": %s: cannot write the JSON record (tables only)\n", json_path);
    else {
        fprintf(js, "{\n  \"program\": \"bench_server\",\n  \"time\": \"%s\",\n  \"cpu\": ", when);
        bench_json_str(js, cpu);
        fprintf(js, ",\n  \"seconds_per_case\": %g,\n  \"cases\": [", seconds);
    }
    printf(PROG " on %s, %ld CPUs online; loadavg at start:", cpu, sysconf(_SC_NPROCESSORS_ONLN));
    double la[3];
    if (getloadavg(la, 3) == 3)
        printf(" %.2f %.2f %.2f", la[0], la[1], la[2]);
    printf("\n");

    int rc = 0, n_cases = 0;
    /* 1. per block, identity model: the client and the server where the scheduler puts them,
     * then all on one CPU (no wake-up across cores: on a VM that costs ~20 us by itself) */
    float *sig = make_signal(4096, 1);
    options o = {.host = "127.0.0.1",
                 .model = id_path,
                 .seconds = seconds,
                 .block = 64,
                 .window = 1,
                 .workers = 1};
    cpu_set_t all;
    const int have_mask = sched_getaffinity(0, sizeof all, &all) == 0;
    for (int one = 0; sig && one < 2; one++) {
        if (one) {
            cpu_set_t cs;
            int pin = -1;
            for (int c = CPU_SETSIZE - 1; have_mask && c >= 0; c--)
                if (CPU_ISSET(c, &all))
                    pin = c;
            CPU_ZERO(&cs);
            if (pin >= 0)
                CPU_SET(pin, &cs);
            if (pin < 0 || sched_setaffinity(0, sizeof cs, &cs) < 0) {
                printf("\none CPU: sched_setaffinity: %s: skipped\n",
                       pin < 0 ? "no CPU in this process's mask" : strerror(errno));
                break;
            }
            printf("\n== the client, the floor's server and the daemon all on CPU %d (no wake-up "
                   "across cores)\n",
                   pin);
        } else {
            printf("\n== the client and the server on the CPUs the scheduler picks\n");
        }
        rc |= per_block(&o, sig, one, js, &n_cases);
    }
    if (have_mask)
        sched_setaffinity(0, sizeof all, &all);
    free(sig);

    /* 2. frames per second over workers, sensor model */
    int port;
    sig = make_signal(4096, 3);
    double fps[3] = {0, 0, 0}, dcpu[3] = {0, 0, 0}, ccpu[3] = {0, 0, 0};
    for (int workers = 1; sig && workers <= 2; workers++) {
        options s = {.host = "127.0.0.1",
                     .model = sn_path,
                     .seconds = seconds,
                     .block = 16,
                     .window = 4,
                     .workers = workers};
        port = start_daemon(&s);
        if (port <= 0)
            break;
        if (workers == 1)
            printf("\n%d connections, sensor model (3 channels at 1 kHz, Conv1D(3, 5)), raw f32, "
                   "blocks of 16 frames, 4 in flight per connection\n%8s %14s %14s %14s %14s %14s "
                   "%8s\n",
                   conns, "workers", "frames/s", "1 kHz sensors", "daemon CPU/s", "client CPU/s",
                   "dmn CPU us/fr", "errors");
        result r = run_case(&s, port, conns, sig, 4096, 3, 3, 0);
        stop_daemon();
        fps[workers] = r.frames_per_s;
        const double dc = r.elapsed > 0 && r.daemon_cpu >= 0 ? r.daemon_cpu / r.elapsed : -1;
        const double cc = r.elapsed > 0 ? r.client_cpu / r.elapsed : -1;
        dcpu[workers] = dc;
        ccpu[workers] = cc;
        printf("%8d %14.0f %14.0f %14.2f %14.2f %14.3f %8d\n", workers, r.frames_per_s,
               r.frames_per_s / 1000.0, dc, cc,
               r.frames_per_s > 0 && dc >= 0 ? 1e6 * dc / r.frames_per_s : -1.0, r.errors);
        fflush(stdout);
        rc |= r.errors != 0;
        if (js)
            fprintf(
                js,
                "%s\n    {\"case\": \"sensor_connections\", \"connections\": %d, \"workers\": %d, "
                "\"block\": 16, \"frames_per_s\": %.0f, \"daemon_cpu_per_s\": %.3f, "
                "\"client_cpu_per_s\": %.3f, \"errors\": %d}",
                n_cases++ ? "," : "", conns, workers, r.frames_per_s, dc, cc, r.errors);
    }
    if (fps[1] > 0 && fps[2] > 0) {
        printf("2 workers / 1 worker: %.2fx frames per second\n", fps[2] / fps[1]);
        /* the load generator runs here too: what it takes, the daemon cannot have */
        const long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
        printf("with 2 workers the daemon and this client used %.2f + %.2f of %ld CPUs%s\n",
               dcpu[2], ccpu[2], ncpu,
               dcpu[2] + ccpu[2] > 0.9 * (double)ncpu
                   ? ": the machine was full, the ratio is the cores left to the daemon"
                   : "");
    }
    free(sig);
    if (js) {
        fprintf(js, "\n  ],\n  \"two_workers_over_one\": %.3f\n}\n",
                fps[1] > 0 && fps[2] > 0 ? fps[2] / fps[1] : 0.0);
        fclose(js);
        printf("JSON record: %s\n", json_path);
    }
    remove(id_path);
    remove(sn_path);
    remove_tmpdir();
    if (rc)
        printf(PROG ": some connections failed (see above)\n");
    return 0;
}
