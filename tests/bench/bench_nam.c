/* SPDX-License-Identifier: Apache-2.0 */
/*
 * bench_nam: the NAM standard WaveNet (../shared/models/nam/wavenet_a1_standard.nam, or the
 * file given) streamed at block sizes 1, 8, 64, 512. Prints ns/frame, GFLOP/s and x real
 * time at 48 kHz, medians of 7 runs after a warm-up, on thread CPU time, and each figure as a
 * fraction of the FMA peak measured at the start of the same run (peak.h): the peak of the ISA
 * in use and, when an ISA is forced, of the widest this CPU has. Without a MODEL it then does
 * the same for NAM's other sizes (the trainer's lite 12/6, feather 8/4 and nano 4/2 WaveNets)
 * and for 20/10 and 24/12 (the same layout, random weights), built here as .nam text.
 * Every figure also goes into a JSON record, build/bench/bench_nam.json (beside the program).
 * Block 1 is also quoted against its latency floor on this core (chain.h): the layers' one-frame
 * dependency chains laid end to end, timed in the same run.
 *
 *   bench_nam [--isa portable|avx2|avx512] [--seconds S] [--blocks 1,8,64,512]
 *             [--sizes standard,lite,feather,nano,20,24] [--json PATH] [MODEL]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "benchutil.h"
#include "convd_model.h"
#include "chain.h"
#include "peak.h"

#define RUNS 7

static const int default_blocks[] = {1, 8, 64, 512};

/* the trainer's standard layout with channels c1 then c2: two arrays, kernel 3, dilations
 * 1..512, tanh, not gated, head bias on the second; weights from N(0, 1/fan_in) */
static char *nam_text(int c1, int c2, size_t *len)
{
    const int L = 10, K = 3;
    long n = 0;
    const int in[2] = {1, c1}, ch[2] = {c1, c2}, head[2] = {c2, 1}, hb[2] = {0, 1};
    for (int a = 0; a < 2; a++) {
        n += (long)ch[a] * in[a];
        n += (long)L * (K * ch[a] * ch[a] + ch[a] + ch[a] + ch[a] * ch[a] + ch[a]);
        n += (long)head[a] * ch[a] + (hb[a] ? head[a] : 0);
    }
    n += 1; /* head_scale */
    size_t cap = 1024 + (size_t)n * 16;
    char *t = malloc(cap);
    if (t == NULL)
        return NULL;
    int o = 0;
    o += snprintf(t + o, cap - (size_t)o,
                  "{\"version\": \"0.5.4\", \"architecture\": \"WaveNet\", "
                  "\"sample_rate\": 48000, \"config\": {\"head\": null, \"head_scale\": 0.02, "
                  "\"layers\": [");
    for (int a = 0; a < 2; a++)
        o += snprintf(t + o, cap - (size_t)o,
                      "%s{\"input_size\": %d, \"condition_size\": 1, \"head_size\": %d, "
                      "\"channels\": %d, \"kernel_size\": %d, \"dilations\": "
                      "[1, 2, 4, 8, 16, 32, 64, 128, 256, 512], \"activation\": \"Tanh\", "
                      "\"gated\": false, \"head_bias\": %s}",
                      a ? ", " : "", in[a], head[a], ch[a], K, hb[a] ? "true" : "false");
    o += snprintf(t + o, cap - (size_t)o, "]}, \"weights\": [");
    cvd_rng r;
    cvd_rng_seed(&r, 5);
    for (long i = 0; i < n; i++)
        o += snprintf(t + o, cap - (size_t)o, "%s%.6f", i ? ", " : "",
                      (cvd_rng_uniform(&r) - 0.5) * 0.6);
    o += snprintf(t + o, cap - (size_t)o, "]}");
    *len = (size_t)o;
    return t;
}

typedef struct bench_ctx {
    double seconds;
    const bench_peaks *peaks;
    long probe_iters[3]; /* a probe run of each ISA, about as long as a timed run */
    cvd_isa isa;
    FILE *json;
    int n_cases;
    const int *blocks;
    int n_blocks;
} bench_ctx;

static int bench(bench_ctx *B, cvd_model *m, const char *name, const char *shape)
{
    cvd_err err;
    const double flop = 2.0 * cvd_model_macs_per_frame(m);
    const long frames = (long)(B->seconds * 48000);
    const cvd_isa widest = B->peaks->widest;
    printf("\n%s: %.0f FLOP/frame, isa %s, %.1f s of audio a run, median of %d\n", name, flop,
           cvd_isa_name(B->isa), B->seconds, RUNS);
    printf("%6s %10s %9s %12s %9s", "block", "ns/frame", "GFLOP/s", "x realtime", "of peak");
    if (B->isa != widest)
        printf(" %9s", "of widest");
    printf("\n");
    for (int b = 0; b < B->n_blocks; b++) {
        int block = B->blocks[b];
        cvd_net *net;
        if (cvd_net_create(m, block, &net, &err) < 0) {
            fprintf(stderr, "bench_nam: %s\n", err.msg);
            return 1;
        }
        float *in = malloc(sizeof(float) * (size_t)block);
        float *out =
            malloc(sizeof(float) * (size_t)cvd_net_max_out(net) * cvd_model_out_channels(m));
        if (in == NULL || out == NULL) {
            fprintf(stderr, "bench_nam: out of memory\n");
            return 1;
        }
        cvd_rng r;
        cvd_rng_seed(&r, 3);
        for (int i = 0; i < block; i++)
            in[i] = (float)(cvd_rng_uniform(&r) - 0.5);
        long nblocks = frames / block > 0 ? frames / block : 1;
        /* each timed run is followed by a probe run of the ISA's peak (and the widest's) */
        double t[RUNS], rk[RUNS], rw[RUNS];
        for (int run = -1; run < RUNS; run++) {
            double t0 = bench_now();
            int no;
            for (long i = 0; i < nblocks; i++)
                cvd_net_process(net, in, block, out, &no);
            if (run < 0)
                continue;
            t[run] = bench_now() - t0;
            const double g = flop * (double)(nblocks * block) / t[run] * 1e-9;
            const double gk = peak_once(B->isa, B->probe_iters[B->isa]);
            const double gw = B->isa == widest ? gk : peak_once(widest, B->probe_iters[widest]);
            rk[run] = gk > 0 ? g / gk : 0;
            rw[run] = gw > 0 ? g / gw : 0;
        }
        double sec = bench_median(t, RUNS) / (double)(nblocks * block);
        double gf = flop / sec * 1e-9, xrt = 1.0 / (sec * 48000.0);
        double fk = bench_median(rk, RUNS), fw = bench_median(rw, RUNS);
        printf("%6d %10.1f %9.2f %12.1f %9.2f", block, sec * 1e9, gf, xrt, fk);
        if (B->isa != widest)
            printf(" %9.2f", fw);
        printf("\n");
        /* block 1 against its latency floor, with a probe run beside it */
        double floor_ns = block == 1 ? chain_ns_per_frame(m, B->isa) : 0.0, floor_peak = 0.0;
        if (floor_ns > 0.0) {
            const double gk = peak_once(B->isa, B->probe_iters[B->isa]);
            floor_peak = gk > 0 ? flop / floor_ns / gk : 0.0;
            printf("%6s floor: the layers' one-frame chains take %.1f ns/frame here (at most "
                   "%.1fx real time, %.2f of peak); block 1 runs at %.2f of it\n",
                   "", floor_ns, 1e9 / (floor_ns * 48000.0), floor_peak, floor_ns / (sec * 1e9));
        }
        fflush(stdout);
        if (B->json) {
            fprintf(B->json, "%s\n    {\"model\": ", B->n_cases++ ? "," : "");
            bench_json_str(B->json, name);
            fprintf(B->json, ", \"channels\": ");
            bench_json_str(B->json, shape);
            fprintf(B->json,
                    ", \"flop_per_frame\": %.0f, \"block\": %d, \"ns_per_frame\": %.2f, "
                    "\"gflops\": %.3f, \"x_realtime\": %.2f, \"fraction_of_isa_peak\": %.4f, "
                    "\"fraction_of_widest_peak\": %.4f",
                    flop, block, sec * 1e9, gf, xrt, fk, fw);
            if (floor_ns > 0.0)
                fprintf(B->json,
                        ", \"chain_floor_ns_per_frame\": %.2f, \"chain_floor_fraction_of_peak\": "
                        "%.4f, \"fraction_of_chain_floor\": %.4f",
                        floor_ns, floor_peak, floor_ns / (sec * 1e9));
            fprintf(B->json, "}");
        }
        free(in);
        free(out);
        cvd_net_destroy(net);
    }
    return 0;
}

static void usage(void)
{
    fprintf(stderr,
            "usage: bench_nam [--isa portable|avx2|avx512] [--seconds S] [--blocks 1,8,64,512]\n"
            "                 [--sizes standard,lite,feather,nano,20,24] [--json PATH] [MODEL]\n");
}

int main(int argc, char **argv)
{
    const char *path = NULL, *sizes_arg = NULL, *json_arg = NULL;
    int blocks[16], n_blocks = 0;
    bench_ctx B = {.seconds = 1.0};
    cvd_model *m;
    cvd_err err;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--isa") == 0 && i + 1 < argc) {
            if (cvd_isa_force(argv[++i]) < 0) {
                fprintf(stderr, "bench_nam: --isa %s: unknown\n", argv[i]);
                return 2;
            }
        } else if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc) {
            B.seconds = atof(argv[++i]);
        } else if (strcmp(argv[i], "--blocks") == 0 && i + 1 < argc) {
            n_blocks = bench_parse_blocks(argv[++i], blocks, 16);
            if (n_blocks <= 0) {
                fprintf(stderr, "bench_nam: --blocks %s: a list of sizes, 1..65536\n", argv[i]);
                return 2;
            }
        } else if (strcmp(argv[i], "--sizes") == 0 && i + 1 < argc) {
            sizes_arg = argv[++i];
        } else if (strcmp(argv[i], "--json") == 0 && i + 1 < argc) {
            json_arg = argv[++i];
        } else if (argv[i][0] != '-') {
            path = argv[i];
        } else {
            usage();
            return 2;
        }
    }
    if (n_blocks == 0) {
        for (size_t b = 0; b < sizeof default_blocks / sizeof default_blocks[0]; b++)
            blocks[n_blocks++] = default_blocks[b];
    }
    B.blocks = blocks;
    B.n_blocks = n_blocks;
    B.isa = cvd_isa_active();

    bench_peaks peaks, peaks_end;
    char cpu[320], when[64], json_path[1024];
    bench_cpu_model(cpu, sizeof cpu);
    bench_utc(when, sizeof when);
    bench_peaks_measure(&peaks);
    B.peaks = &peaks;
    for (int i = 0; i <= (int)peaks.widest; i++)
        B.probe_iters[i] = peak_iters((cvd_isa)i, B.seconds / 60.0); /* about a run's length */
    printf("bench_nam on %s; isa %s (this CPU has %s)\n", cpu, cvd_isa_name(B.isa),
           cvd_isa_name(peaks.widest));
    bench_peaks_print(stdout, &peaks);
    printf("\"of peak\": GFLOP/s over the %s peak (each run paired with a probe run)",
           cvd_isa_name(B.isa));
    if (B.isa != peaks.widest)
        printf(" (what a CPU with only %s would have); \"of widest\": over the %s peak",
               cvd_isa_name(B.isa), cvd_isa_name(peaks.widest));
    printf("\n");

    if (json_arg)
        snprintf(json_path, sizeof json_path, "%s", json_arg);
    else
        bench_json_path(json_path, sizeof json_path, argv[0], "bench_nam");
    B.json = fopen(json_path, "w");
    if (B.json == NULL)
        fprintf(stderr, "bench_nam: %s: cannot write the JSON record (tables only)\n", json_path);
    else {
        fprintf(B.json, "{\n  \"program\": \"bench_nam\",\n  \"time\": \"%s\",\n  \"cpu\": ", when);
        bench_json_str(B.json, cpu);
        fprintf(B.json,
                ",\n  \"isa\": \"%s\",\n  \"widest_isa\": \"%s\",\n  \"sample_rate\": 48000,\n"
                "  \"runs\": %d,\n  \"seconds_per_run\": %g,\n  \"timer\": \"thread CPU time, "
                "median\",\n"
                "  \"peak_gflops\": {",
                cvd_isa_name(B.isa), cvd_isa_name(peaks.widest), RUNS, B.seconds);
        for (int i = 0; i <= (int)peaks.widest; i++)
            fprintf(B.json, "%s\"%s\": %.3f", i ? ", " : "", cvd_isa_name((cvd_isa)i),
                    peaks.gflops[i]);
        fprintf(B.json, "},\n  \"cases\": [");
    }

    int rc = 0;
    const int want_std = sizes_arg == NULL || strstr(sizes_arg, "standard") != NULL;
    const char *std_path = path ? path : "../shared/models/nam/wavenet_a1_standard.nam";
    if (want_std) {
        if (cvd_nam_load(std_path, &m, &err) < 0) {
            fprintf(stderr, "bench_nam: %s (skipped)\n", err.msg);
        } else {
            rc =
                bench(&B, m,
                      path ? path : "standard (16/8): ../shared/models/nam/wavenet_a1_standard.nam",
                      path ? "file" : "16/8");
            cvd_model_unref(m);
        }
    }
    static const struct {
        const char *key, *name, *shape;
        int c1, c2;
    } sizes[] = {
        {"lite", "lite (12/6, random weights)", "12/6", 12, 6},
        {"feather", "feather (8/4, random weights)", "8/4", 8, 4},
        {"nano", "nano (4/2, random weights)", "4/2", 4, 2},
        {"20", "20/10 (the standard layout, random weights)", "20/10", 20, 10},
        {"24", "24/12 (the standard layout, random weights)", "24/12", 24, 12},
    };
    for (size_t i = 0; rc == 0 && path == NULL && i < sizeof sizes / sizeof sizes[0]; i++) {
        if (sizes_arg && strstr(sizes_arg, sizes[i].key) == NULL)
            continue;
        size_t len;
        char *t = nam_text(sizes[i].c1, sizes[i].c2, &len);
        if (t == NULL || cvd_nam_parse(t, len, sizes[i].name, &m, &err) < 0) {
            fprintf(stderr, "bench_nam: %s: %s\n", sizes[i].name, t ? err.msg : "out of memory");
            free(t);
            rc = 1;
            break;
        }
        free(t);
        rc = bench(&B, m, sizes[i].name, sizes[i].shape);
        cvd_model_unref(m);
    }

    bench_peaks_measure(&peaks_end);
    printf("\nFMA peak again at the end:");
    for (int i = (int)peaks.widest; i >= 0; i--)
        printf(" %s %.1f GFLOP/s%s", cvd_isa_name((cvd_isa)i), peaks_end.gflops[i], i ? "," : "\n");
    if (B.json) {
        fprintf(B.json, "\n  ],\n  \"peak_gflops_at_end\": {");
        for (int i = 0; i <= (int)peaks.widest; i++)
            fprintf(B.json, "%s\"%s\": %.3f", i ? ", " : "", cvd_isa_name((cvd_isa)i),
                    peaks_end.gflops[i]);
        fprintf(B.json, "}\n}\n");
        fclose(B.json);
        printf("JSON record: %s\n", json_path);
    }
    return rc;
}
