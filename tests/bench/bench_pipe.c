/* SPDX-License-Identifier: Apache-2.0 */
/*
 * bench_pipe - one WaveNet on one thread and on two (a pipeline of two stages, dsp/pipe.c),
 * in the same run. Blocks back to back (a file, or a stream that is behind): wall time per
 * block, the throughput ratio two threads / one, where the CPU time went (the caller's
 * thread, the stage thread: each thread's own CPU clock; and each stage's computing time a
 * block, waits not counted, against one thread's), and the ceiling: two
 * independent one-thread streams at once over one alone (what the two cores give with no
 * hand-off). Then what limits two threads: the time one hand-off between the two cores takes
 * (a ping-pong of a counter between threads pinned to them, at the start and at the end), the
 * round-trip bound it sets (two blocks take at least stage A + stage B + two hand-offs, see
 * dsp/pipe.c), and each net's block at the median against its mean (the blocks over twice the
 * median, where a core stalled: a pipeline waits for the stalls of both cores). Then paced like an
 * audio callback (a block every block's duration at 48 kHz, for
 * --paced seconds a strategy): the time one process() call takes (median and p99, wall) on
 * one thread and on two, for each way the stage thread can wait between blocks: woken by
 * the caller (FUTEX_WAKE), its own timer (the default), or spinning through the period; with
 * the FUTEX_WAKE calls, the late blocks and the stage thread's CPU time. Runs interleaved,
 * median of RUNS. The machine's load average is printed first: run it on idle cores (or
 * under chrt -f 10, which keeps other processes off them). Writes build/bench/bench_pipe.json
 * beside the table.
 *
 *   bench_pipe [--block 64] [--seconds S] [--paced S] [--spin US] [--margin US] [--json PATH]
 *              [MODEL]
 */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "benchutil.h"
#include "convd_dsp.h"
#include "convd_model.h"

#define RUNS 11

static double wall(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void sleep_until(double t)
{
    struct timespec ts;
    ts.tv_sec = (time_t)t;
    ts.tv_nsec = (long)((t - (double)ts.tv_sec) * 1e9);
    clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
}

/* the machine's own ceiling: two independent one-thread nets, one on each of two threads */
typedef struct {
    cvd_net *net;
    const float *in;
    float *out;
    int block;
    long nb;
    double wall;
} par_job;

static void *par_run(void *arg)
{
    par_job *j = arg;
    int no;
    double w0 = wall();
    for (long i = 0; i < j->nb; i++)
        cvd_net_process(j->net, j->in, j->block, j->out, &no);
    j->wall = wall() - w0;
    return NULL;
}

/* The round trip between the two cores: two threads (one on each CPU) hand a counter back and
 * forth through two cache lines, as the pipe's `posted` and `done` do; the median over batches
 * of the time one hand-off takes (half a round trip). What a pipeline of one block's latency
 * pays twice every two blocks (dsp/pipe.c: the time of two blocks is at least stage A's, stage
 * B's and two hand-offs), and what differs most from one host placement of the virtual CPUs
 * to another. */
#define PP_BATCH 2000
#define PP_BATCHES 9
typedef struct {
    _Alignas(64) _Atomic long ping;
    _Alignas(64) _Atomic long pong;
} pingpong;

static void pin(int cpu)
{
    if (cpu < 0)
        return;
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(cpu, &one);
    sched_setaffinity(0, sizeof one, &one);
}

static void *pong_run(void *arg)
{
    pingpong *q = arg;
    for (long i = 1; i <= (long)PP_BATCH * (PP_BATCHES + 1); i++) {
        while (atomic_load_explicit(&q->ping, memory_order_acquire) != i)
            ;
        atomic_store_explicit(&q->pong, i, memory_order_release);
    }
    return NULL;
}

/* ns a hand-off takes between CPUs a and b (the calling thread is left on a); -1 on failure */
static double handoff_ns(int a, int b)
{
    static pingpong q;
    pthread_t th;
    double batch[PP_BATCHES];
    atomic_store(&q.ping, 0);
    atomic_store(&q.pong, 0);
    pin(a);
    /* the thread starts on its CPU: under chrt -f it could not move there itself while this
     * one spins on the CPU it was created on */
    pthread_attr_t at;
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(b, &one);
    pthread_attr_init(&at);
    pthread_attr_setaffinity_np(&at, sizeof one, &one);
    const int rc = pthread_create(&th, &at, pong_run, &q);
    pthread_attr_destroy(&at);
    if (rc != 0)
        return -1.0;
    long i = 0;
    for (int r = -1; r < PP_BATCHES; r++) {
        const double t0 = wall();
        for (int j = 0; j < PP_BATCH; j++) {
            i++;
            atomic_store_explicit(&q.ping, i, memory_order_release);
            while (atomic_load_explicit(&q.pong, memory_order_acquire) != i)
                ;
        }
        if (r >= 0)
            batch[r] = (wall() - t0) / PP_BATCH / 2 * 1e9;
    }
    pthread_join(th, NULL);
    return bench_median(batch, PP_BATCHES);
}

/* a block's wall time at the median and what the blocks over twice the median took, of all */
static void call_spread(double *v, long n, double *median, double *slow_share)
{
    double total = 0, slow = 0;
    for (long i = 0; i < n; i++)
        total += v[i];
    qsort(v, (size_t)n, sizeof *v, bench_cmp_double);
    *median = v[n / 2];
    for (long i = 0; i < n; i++)
        if (v[i] > 2 * *median)
            slow += v[i];
    *slow_share = total > 0 ? slow / total : 0;
}

int main(int argc, char **argv)
{
    const char *path = "../shared/models/nam/wavenet_a1_standard.nam", *json_arg = NULL;
    int block = 64;
    double seconds = 1.0, paced = 1.0;
    long spin_us = -1, margin_us = -2;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--block") == 0 && i + 1 < argc)
            block = atoi(argv[++i]);
        else if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc)
            seconds = atof(argv[++i]);
        else if (strcmp(argv[i], "--paced") == 0 && i + 1 < argc)
            paced = atof(argv[++i]);
        else if (strcmp(argv[i], "--spin") == 0 && i + 1 < argc)
            spin_us = atol(argv[++i]);
        else if (strcmp(argv[i], "--margin") == 0 && i + 1 < argc)
            margin_us = atol(argv[++i]);
        else if (strcmp(argv[i], "--json") == 0 && i + 1 < argc)
            json_arg = argv[++i];
        else if (argv[i][0] != '-')
            path = argv[i];
        else {
            fprintf(stderr, "usage: bench_pipe [--block 64] [--seconds S] [--paced S] [--spin US] "
                            "[--margin US] [--json PATH] [MODEL]\n");
            return 2;
        }
    }
    if (block < 1 || block > 65536 || seconds <= 0) {
        fprintf(stderr, "bench_pipe: --block 1..65536, --seconds > 0\n");
        return 2;
    }
    FILE *probe = fopen(path, "r");
    if (probe == NULL) {
        printf("bench_pipe: %s is absent (skipped)\n", path);
        return 0;
    }
    fclose(probe);
    cvd_err err;
    cvd_model *m;
    if (cvd_model_load(path, &m, &err) < 0) {
        fprintf(stderr, "bench_pipe: %s\n", err.msg);
        return 1;
    }
    cvd_net *net[2];
    for (int k = 0; k < 2; k++)
        if (cvd_net_create_threads(m, block, 0, k + 1, &net[k], &err) < 0) {
            fprintf(stderr, "bench_pipe: %s\n", err.msg);
            return 1;
        }
    if (cvd_net_threads(net[1]) != 2) {
        fprintf(stderr, "bench_pipe: %s: runs on one thread: %s\n", path,
                cvd_net_threads_note(net[1]));
        return 1;
    }
    const long spin_ns = spin_us >= 0 ? spin_us * 1000 : 100000;
    const long margin_ns = margin_us < -1 ? 150000 : margin_us < 0 ? -1 : margin_us * 1000;
    cvd_net_set_spin(net[1], spin_ns, margin_ns);
    double la[3] = {0, 0, 0};
    FILE *lf = fopen("/proc/loadavg", "r");
    if (lf) {
        if (fscanf(lf, "%lf %lf %lf", &la[0], &la[1], &la[2]) != 3)
            la[0] = la[1] = la[2] = 0;
        fclose(lf);
    }
    const int C = cvd_model_in_channels(m), F = cvd_model_out_channels(m);
    float *in = malloc(sizeof(float) * (size_t)block * C);
    float *out = malloc(sizeof(float) * (size_t)block * F);
    cvd_rng r;
    cvd_rng_seed(&r, 3);
    for (int i = 0; i < block * C; i++)
        in[i] = (float)(0.5 * (cvd_rng_uniform(&r) - 0.5));
    double cost[2];
    cvd_net_pipe_stats(net[1], NULL, NULL, cost);
    const long nb = (long)(seconds * 48000) / block > 0 ? (long)(seconds * 48000) / block : 1;
    printf("%s, blocks of %d, %.1f s of audio a run, runs interleaved, median of %d\n", path, block,
           seconds, RUNS);
    printf("load average before the run: %.2f %.2f %.2f (2 cores: above 0.1 other work shares "
           "them)\n",
           la[0], la[1], la[2]);
    printf("stages: %.0f and %.0f multiply-adds per frame (%.1f%% / %.1f%%)\n", cost[0], cost[1],
           100 * cost[0] / (cost[0] + cost[1]), 100 * cost[1] / (cost[0] + cost[1]));
    /* Back to back, with the caller's thread on each of two cores in turn (the stage thread
     * then takes the other): a virtual machine's cores need not be equally fast (here one
     * ran a thread 15-30% slower than the other while the host was busy), so one thread is
     * timed on each core and the two threads' throughput is taken over the faster core's,
     * for each placement; the figure is their mean. */
    cpu_set_t all;
    int cpus[2] = {-1, -1}, np = 1;
    if (sched_getaffinity(0, sizeof all, &all) == 0) {
        for (int c = 0, f = 0; c < CPU_SETSIZE && f < 2; c++)
            if (CPU_ISSET(c, &all))
                cpus[f++] = c;
        np = cpus[1] >= 0 ? 2 : 1;
    }
    double hand0 = np == 2 ? handoff_ns(cpus[0], cpus[1]) : -1.0;
    if (np == 2)
        sched_setaffinity(0, sizeof all, &all);
    /* every call's wall time, back to back: [k][...] one thread, two */
    const long ncalls = nb * RUNS * np;
    double *calls[2] = {malloc(sizeof(double) * (size_t)ncalls),
                        malloc(sizeof(double) * (size_t)ncalls)};
    long ncall[2] = {0, 0};
    if (calls[0] == NULL || calls[1] == NULL) {
        fprintf(stderr, "bench_pipe: out of memory\n");
        return 1;
    }
    double w[2][RUNS], cc[RUNS], cs[RUNS], ratio[RUNS], c1t[RUNS], cA[RUNS], cB[RUNS];
    double one_on[2][RUNS], r_on[2][RUNS];
    long bw0, bl0, bw1, bl1;
    cvd_net_pipe_stats(net[1], &bw0, &bl0, NULL);
    for (int run = -1; run < RUNS; run++) {
        double t1[2], t2[2], c1[2], tcall = 0, tproc = 0, bA = 0, bB = 0;
        for (int pl = 0; pl < np; pl++) {
            if (np == 2)
                pin(cpus[pl]);
            for (int k = 0; k < 2; k++) {
                int no;
                double busy0[2], busy1[2];
                cvd_net_pipe_busy(net[1], busy0);
                double w0 = wall(), c0 = bench_now(), p0 = cvd_net_pipe_stage_cpu(net[1]);
                if (run < 0) {
                    for (long i = 0; i < nb; i++)
                        cvd_net_process(net[k], in, block, out, &no);
                } else {
                    double *cv = calls[k] + ncall[k], t = w0;
                    for (long i = 0; i < nb; i++) {
                        cvd_net_process(net[k], in, block, out, &no);
                        const double te = wall();
                        cv[i] = te - t;
                        t = te;
                    }
                    ncall[k] += nb;
                }
                const double tw = wall() - w0;
                if (k == 0) {
                    t1[pl] = tw;
                    c1[pl] = bench_now() - c0;
                } else {
                    t2[pl] = tw;
                    tcall += (bench_now() - c0) / tw / np;
                    tproc += (cvd_net_pipe_stage_cpu(net[1]) - p0) / tw / np;
                    cvd_net_pipe_busy(net[1], busy1);
                    bA += (busy1[0] - busy0[0]) / np;
                    bB += (busy1[1] - busy0[1]) / np;
                }
            }
        }
        if (np == 2)
            sched_setaffinity(0, sizeof all, &all);
        if (run < 0)
            continue;
        const int fast = np == 2 && t1[1] < t1[0];
        w[0][run] = t1[fast];
        w[1][run] = 0;
        ratio[run] = 0;
        for (int pl = 0; pl < np; pl++) {
            w[1][run] += t2[pl] / np;
            one_on[pl][run] = t1[pl];
            r_on[pl][run] = t1[fast] / t2[pl];
            ratio[run] += r_on[pl][run] / np;
        }
        cc[run] = tcall; /* the caller's thread busy, of the wall time */
        cs[run] = tproc; /* the stage thread's */
        c1t[run] = c1[fast] / (double)nb;
        cA[run] = bA / (double)nb; /* stage A computing, a block */
        cB[run] = bB / (double)nb;
    }
    cvd_net_pipe_stats(net[1], &bw1, &bl1, NULL);
    const long b2b_late = bl1 - bl0, b2b_wakes = bw1 - bw0, b2b_blocks = nb * (RUNS + 1) * np;
    /* the ceiling: two independent streams at once, each on its own one-thread net; their
     * throughput over one stream alone is what two cores give this model with no hand-off */
    cvd_net *solo = NULL;
    if (cvd_net_create_threads(m, block, 0, 1, &solo, &err) < 0) {
        fprintf(stderr, "bench_pipe: %s\n", err.msg);
        return 1;
    }
    float *out2 = malloc(sizeof(float) * (size_t)block * cvd_model_out_channels(m));
    double ceil_r[RUNS];
    for (int run = -1; run < RUNS; run++) {
        par_job a = {net[0], in, NULL, block, nb, 0}, b = {solo, in, NULL, block, nb, 0};
        a.out = malloc(sizeof(float) * (size_t)block * cvd_model_out_channels(m));
        b.out = out2;
        par_run(&a);
        const double alone = a.wall;
        pthread_t th;
        if (pthread_create(&th, NULL, par_run, &b) != 0) {
            fprintf(stderr, "bench_pipe: pthread_create failed\n");
            return 1;
        }
        par_run(&a);
        pthread_join(th, NULL);
        free(a.out);
        if (run >= 0)
            ceil_r[run] = 2 * alone / (a.wall > b.wall ? a.wall : b.wall);
    }
    const double ceiling = bench_median(ceil_r, RUNS);
    double hand1 = np == 2 ? handoff_ns(cpus[1], cpus[0]) : -1.0;
    if (np == 2)
        sched_setaffinity(0, sizeof all, &all);
    const double hand = hand0 > hand1 ? hand0 : hand1;
    double med1, med2, slow1, slow2;
    call_spread(calls[0], ncall[0], &med1, &slow1);
    call_spread(calls[1], ncall[1], &med2, &slow2);
    free(calls[0]);
    free(calls[1]);
    cvd_net_destroy(solo);
    free(out2);

    const double m1 = bench_median(c1t, RUNS), mA = bench_median(cA, RUNS),
                 mB = bench_median(cB, RUNS);
    const double ideal = m1 / (mA > mB ? mA : mB);
    const double w1 = bench_median(w[0], RUNS), w2 = bench_median(w[1], RUNS);
    const double rt = bench_median(ratio, RUNS), c1 = bench_median(cc, RUNS),
                 c2 = bench_median(cs, RUNS);
    printf("\nback to back      %12s %12s\n", "1 thread", "2 threads");
    printf("us per block      %12.2f %12.2f\n", 1e6 * w1 / (double)nb, 1e6 * w2 / (double)nb);
    printf("x real time       %12.1f %12.1f\n", (double)nb * block / 48000.0 / w1,
           (double)nb * block / 48000.0 / w2);
    printf("throughput 2/1    %12.2f   (median of the runs' ratios)\n", rt);
    double core_us[2] = {0, 0}, core_r[2] = {0, 0};
    for (int pl = 0; pl < np; pl++) {
        core_us[pl] = 1e6 * bench_median(one_on[pl], RUNS) / (double)nb;
        core_r[pl] = bench_median(r_on[pl], RUNS);
    }
    if (np == 2)
        printf(
            "by core           one thread on CPU %d: %.2f us, on CPU %d: %.2f us a block; two "
            "threads,\n                  the caller on CPU %d: %.2fx, on CPU %d: %.2fx (over the "
            "faster core's one thread)\n",
            cpus[0], core_us[0], cpus[1], core_us[1], cpus[0], core_r[0], cpus[1], core_r[1]);
    printf("CPU of wall time  caller thread %.2f, stage thread %.2f (two threads)\n", c1, c2);
    printf("hand-offs         %ld blocks, %ld whose stage A was late, %ld FUTEX_WAKEs\n",
           b2b_blocks, b2b_late, b2b_wakes);
    printf("ceiling 2/1       %12.2f   (two independent one-thread streams at once: what two\n"
           "                                 cores give this model without a hand-off)\n",
           ceiling);
    printf("\nCPU time per block  one thread %.2f us (its thread clock); two threads, computing "
           "(waits not counted):\n                    stage A (the stage thread) %.2f us, stage B "
           "(the caller's) %.2f us: %.1f%% / %.1f%%,\n                    together %.2fx one "
           "thread's (the split's own cost: the hand-off between the cores)\n",
           m1 * 1e6, mA * 1e6, mB * 1e6, 100 * mA / (mA + mB), 100 * mB / (mA + mB),
           (mA + mB) / m1);
    printf("one thread's CPU / the busier stage's: %.2f (what two threads give if neither "
           "waits)\n",
           ideal);
    /* two blocks take at least stage A + stage B + two hand-offs (the caller posts block k + 1
     * only after stage B ran block k - 1, which waited for stage A's block k - 1) */
    const double bound = m1 / (0.5 * (mA + mB) + 1e-9 * (hand > 0 ? hand : 0));
    printf("hand-off between the cores %.0f ns (ping-pong of a counter; %.0f at the start, %.0f at "
           "the end)\n",
           hand, hand0, hand1);
    printf("round-trip bound: one thread's CPU / ((stage A + stage B) / 2 + a hand-off) = %.2f\n",
           bound);
    printf("a block at the median %8.2f %12.2f us: 2/1 %.2f; blocks over twice the median took "
           "%.1f%% / %.1f%% of the time\n",
           med1 * 1e6, med2 * 1e6, med1 / med2, 100 * slow1, 100 * slow2);

    /* paced: one block every block's duration, for each way the stage thread waits */
    static const struct {
        const char *name;
        long spin_ns, margin_ns;
    } modes[] = {{"woken by the caller (FUTEX_WAKE)", 100000, -1},
                 {"its own timer, margin 150 us (default)", 100000, 150000},
                 {"spins through the period", 1000000000L, -1}};
    enum { NMODES = sizeof modes / sizeof modes[0] };
    const double period = (double)block / 48000.0;
    const long npaced = (long)(paced / period);
    double *lat[2];
    double p50[NMODES][2], p99[NMODES][2], stage_cpu[NMODES];
    long wakes[NMODES], late[NMODES];
    lat[0] = malloc(sizeof(double) * (size_t)(npaced + 1));
    lat[1] = malloc(sizeof(double) * (size_t)(npaced + 1));
    memset(p50, 0, sizeof p50);
    memset(p99, 0, sizeof p99);
    for (int md = 0; md < NMODES && npaced > 0; md++) {
        long pw0, pl0, pw1, pl1;
        cvd_net_set_spin(net[1], modes[md].spin_ns, modes[md].margin_ns);
        cvd_net_pipe_stats(net[1], &pw0, &pl0, NULL);
        double t = wall(), p0 = cvd_net_pipe_stage_cpu(net[1]);
        for (long i = 0; i < npaced; i++) {
            for (int k = 0; k < 2; k++) {
                int no;
                double a = wall();
                cvd_net_process(net[k], in, block, out, &no);
                lat[k][i] = wall() - a;
            }
            t += period;
            sleep_until(t);
        }
        double span = wall() - (t - (double)npaced * period);
        stage_cpu[md] = (cvd_net_pipe_stage_cpu(net[1]) - p0) / span;
        cvd_net_pipe_stats(net[1], &pw1, &pl1, NULL);
        wakes[md] = pw1 - pw0;
        late[md] = pl1 - pl0;
        for (int k = 0; k < 2; k++) {
            qsort(lat[k], (size_t)npaced, sizeof(double), bench_cmp_double);
            p50[md][k] = lat[k][npaced / 2];
            p99[md][k] = lat[k][(npaced * 99) / 100];
        }
    }
    cvd_net_set_spin(net[1], spin_ns, margin_ns);
    if (npaced > 0) {
        printf("\npaced (a block every %.0f us, %ld blocks a strategy): one process() call, wall "
               "us;\nthe stage thread's CPU time (share of a core)\n",
               period * 1e6, npaced);
        printf("%-40s %8s %8s %8s %8s %6s %6s %6s\n", "the stage thread waits", "1 p50", "1 p99",
               "2 p50", "2 p99", "wakes", "late", "cpu");
        for (int md = 0; md < NMODES; md++)
            printf("%-40s %8.1f %8.1f %8.1f %8.1f %6ld %6ld %6.2f\n", modes[md].name,
                   p50[md][0] * 1e6, p99[md][0] * 1e6, p50[md][1] * 1e6, p99[md][1] * 1e6,
                   wakes[md], late[md], stage_cpu[md]);
    }
    char json_path[1024], when[64];
    if (json_arg)
        snprintf(json_path, sizeof json_path, "%s", json_arg);
    else
        bench_json_path(json_path, sizeof json_path, argv[0], "bench_pipe");
    FILE *json = fopen(json_path, "w");
    if (json) {
        bench_utc(when, sizeof when);
        fprintf(json,
                "{\n  \"program\": \"bench_pipe\",\n  \"time\": \"%s\",\n  \"model\": ", when);
        bench_json_str(json, path);
        fprintf(json,
                ",\n  \"block\": %d,\n  \"stage_macs\": [%.0f, %.0f],\n"
                "  \"us_per_block\": {\"1\": %.3f, \"2\": %.3f},\n  \"throughput_ratio\": %.3f,\n"
                "  \"cpu_of_wall\": {\"caller\": %.3f, \"stage\": %.3f},\n"
                "  \"two_streams_ratio\": %.3f,\n"
                "  \"by_core\": {\"cpus\": [%d, %d], \"one_thread_us\": [%.3f, %.3f], "
                "\"ratio_caller_on\": [%.3f, %.3f]},\n"
                "  \"cpu_us_per_block\": {\"one_thread\": %.3f, \"stage_a\": %.3f, "
                "\"stage_b\": %.3f}, \"cpu_throughput_ratio\": %.3f,\n"
                "  \"handoff_ns\": [%.1f, %.1f], \"round_trip_bound\": %.3f,\n"
                "  \"median_block_us\": {\"1\": %.3f, \"2\": %.3f}, "
                "\"slow_blocks_share\": {\"1\": %.4f, \"2\": %.4f},\n"
                "  \"load_average\": [%.2f, %.2f, %.2f],\n"
                "  \"handoffs\": {\"blocks\": %ld, \"late\": %ld, \"futex_wakes\": %ld},\n"
                "  \"paced_blocks\": %ld,\n  \"paced\": [\n",
                block, cost[0], cost[1], 1e6 * w1 / (double)nb, 1e6 * w2 / (double)nb, rt, c1, c2,
                ceiling, cpus[0], cpus[1], core_us[0], core_us[1], core_r[0], core_r[1], m1 * 1e6,
                mA * 1e6, mB * 1e6, ideal, hand0, hand1, bound, med1 * 1e6, med2 * 1e6, slow1,
                slow2, la[0], la[1], la[2], b2b_blocks, b2b_late, b2b_wakes, npaced);
        for (int md = 0; md < NMODES; md++) {
            fprintf(json, "    {\"wait\": ");
            bench_json_str(json, modes[md].name);
            fprintf(json,
                    ", \"median_us\": {\"1\": %.2f, \"2\": %.2f}, \"p99_us\": {\"1\": %.2f, "
                    "\"2\": %.2f}, \"futex_wakes\": %ld, \"late\": %ld, \"stage_cpu\": %.3f}%s\n",
                    p50[md][0] * 1e6, p50[md][1] * 1e6, p99[md][0] * 1e6, p99[md][1] * 1e6,
                    wakes[md], late[md], stage_cpu[md], md + 1 < NMODES ? "," : "");
        }
        fprintf(json, "  ]\n}\n");
        fclose(json);
        printf("JSON record: %s\n", json_path);
    }
    free(lat[0]);
    free(lat[1]);
    free(in);
    free(out);
    cvd_net_destroy(net[0]);
    cvd_net_destroy(net[1]);
    cvd_model_unref(m);
    return 0;
}
