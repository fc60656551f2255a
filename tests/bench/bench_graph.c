/* SPDX-License-Identifier: Apache-2.0 */
/*
 * bench_graph - models that run node by node on the general graph path (dsp/net.c, plan.c,
 * conv.c, kernels.c, ops.c, activation.c): keras-tcn TCNs, sensor convolution stacks, and NAM's
 * standard WaveNet written in Keras with fusion off (bench_fuse's model). Thread CPU time,
 * each timed run paired with a run of the FMA peak probe (peak.h), median of RUNS; ns/frame,
 * frames/s, x real time where the model has a rate (audio: 48 kHz), GFLOP/s from the model's
 * multiply-add count and the fraction of the active ISA's peak. Writes
 * build/bench/bench_graph.json beside the table.
 *
 *   bench_graph [--isa portable|avx2|avx512] [--seconds S] [--blocks 1,8,64] [--json PATH]
 *               [--only NAME] [--write-models DIR] [--no-probe]
 *
 * --write-models DIR writes the generated models' JSON to DIR/NAME.json (for convd-run and
 * convd-info) and runs nothing; --no-probe leaves out the probe runs (for perf record: the
 * fraction of peak is then not printed).
 *
 * The models (skipped, saying so, where a file is absent):
 *   tcn-real        ../shared/models/keras/IrtantiCarona_tcn_model.keras: keras-tcn, 64 filters,
 *                   kernel 3, dilations 1..32, windows of 60 frames (the default hop: 60)
 *   tcn16-k3        keras-tcn's layout in convd JSON (seeded weights): 1 input, 16 filters,
 *                   kernel 3, dilations 1..32, matching 1x1, skips summed, Dense 1
 *   tcn32-k2-imu    the same with 6 inputs (an IMU), 32 filters, kernel 2
 *   convstack-3ch   a plain causal Conv1D stack: 3 inputs (vibration), 3 x (kernel 5, 32
 *                   filters, relu), Dense 1
 *   wavenet-keras   tests/data/keras/nam/wavenet_a1_standard.keras unfused (48 kHz)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "benchutil.h"
#include "convd_dsp.h"
#include "convd_model.h"
#include "peak.h"

#define RUNS 7

/* keras-tcn's TCN (use_skip_connections, causal, relu, no norm) then Dense 1, as convd JSON */
static char *tcn_json(int in_ch, int filters, int k, int n_dil, size_t *len)
{
    size_t cap = 16384;
    char *t = malloc(cap);
    if (t == NULL)
        return NULL;
    int o = snprintf(t, cap,
                     "{\"format\": \"convd-model\", \"version\": 1, \"input_channels\": %d, "
                     "\"seed\": 7, \"layers\": [\n",
                     in_ch);
    char prev[32] = "input";
    for (int b = 0; b < n_dil; b++) {
        const int d = 1 << b;
        o += snprintf(t + o, cap - (size_t)o,
                      " {\"class_name\": \"Conv1D\", \"name\": \"b%d_c0\", \"inputs\": \"%s\", "
                      "\"config\": {\"filters\": %d, \"kernel_size\": %d, \"dilation_rate\": %d, "
                      "\"padding\": \"causal\", \"activation\": \"relu\"}},\n"
                      " {\"class_name\": \"Conv1D\", \"name\": \"b%d_c1\", \"inputs\": \"b%d_c0\", "
                      "\"config\": {\"filters\": %d, \"kernel_size\": %d, \"dilation_rate\": %d, "
                      "\"padding\": \"causal\", \"activation\": \"relu\"}},\n",
                      b, prev, filters, k, d, b, b, filters, k, d);
        if (b == n_dil - 1)
            break; /* keras-tcn: the last block's residual sum feeds nothing */
        char res[32];
        if (b == 0 && in_ch != filters) {
            o += snprintf(t + o, cap - (size_t)o,
                          " {\"class_name\": \"Conv1D\", \"name\": \"b0_match\", \"inputs\": "
                          "\"%s\", \"config\": {\"filters\": %d, \"kernel_size\": 1, "
                          "\"padding\": \"same\"}},\n",
                          prev, filters);
            snprintf(res, sizeof res, "b0_match");
        } else {
            snprintf(res, sizeof res, "%s", prev);
        }
        o += snprintf(t + o, cap - (size_t)o,
                      " {\"class_name\": \"Add\", \"name\": \"b%d_add\", \"inputs\": [\"%s\", "
                      "\"b%d_c1\"]},\n"
                      " {\"class_name\": \"Activation\", \"name\": \"b%d_act\", \"inputs\": "
                      "\"b%d_add\", \"config\": {\"activation\": \"relu\"}},\n",
                      b, res, b, b, b);
        snprintf(prev, sizeof prev, "b%d_act", b);
    }
    o += snprintf(t + o, cap - (size_t)o,
                  " {\"class_name\": \"Add\", \"name\": \"skips\", "
                  "\"inputs\": [");
    for (int b = 0; b < n_dil; b++)
        o += snprintf(t + o, cap - (size_t)o, "%s\"b%d_c1\"", b ? ", " : "", b);
    o += snprintf(t + o, cap - (size_t)o,
                  "]},\n {\"class_name\": \"Dense\", \"name\": \"head\", \"inputs\": \"skips\", "
                  "\"config\": {\"units\": 1}}\n]}\n");
    *len = (size_t)o;
    return t;
}

/* a plain causal Conv1D stack then Dense 1 */
static char *stack_json(int in_ch, int filters, int k, int layers, size_t *len)
{
    size_t cap = 4096;
    char *t = malloc(cap);
    if (t == NULL)
        return NULL;
    int o = snprintf(t, cap,
                     "{\"format\": \"convd-model\", \"version\": 1, \"input_channels\": %d, "
                     "\"seed\": 9, \"layers\": [\n",
                     in_ch);
    for (int l = 0; l < layers; l++)
        o += snprintf(t + o, cap - (size_t)o,
                      " {\"class_name\": \"Conv1D\", \"name\": \"c%d\", \"config\": {\"filters\": "
                      "%d, \"kernel_size\": %d, \"padding\": \"causal\", \"activation\": "
                      "\"relu\"}},\n",
                      l, filters, k);
    o += snprintf(t + o, cap - (size_t)o,
                  " {\"class_name\": \"Dense\", \"name\": \"head\", \"config\": {\"units\": 1}}\n"
                  "]}\n");
    *len = (size_t)o;
    return t;
}

typedef struct bench_ctx {
    double seconds;
    const bench_peaks *peaks;
    long probe_iters[3];
    cvd_isa isa;
    FILE *json;
    int n_cases;
    const int *blocks;
    int n_blocks;
    int no_probe;
} bench_ctx;

static int bench(bench_ctx *B, cvd_model *m, const char *name, long hop, double audio_rate)
{
    cvd_err err;
    const double flop = 2.0 * cvd_model_macs_per_frame(m);
    const double rate = cvd_model_sample_rate(m) > 0 ? cvd_model_sample_rate(m) : audio_rate;
    const int C = cvd_model_in_channels(m), O = cvd_model_out_channels(m);
    /* about `seconds` of a 48 kHz stream's work at the standard WaveNet's cost (26,640 FLOP a
     * frame), so that every model's runs take about as long */
    const double fpf = flop > 1000 ? flop : 1000;
    const long frames = (long)(B->seconds * 48000 * 26640.0 / fpf) + 1;
    printf("\n%s: %.0f FLOP/frame, %d -> %d channels, %s, isa %s, median of %d\n", name, flop, C, O,
           rate > 0 ? "audio" : "no rate (sensor: frames/s)", cvd_isa_name(B->isa), RUNS);
    printf("%6s %10s %12s %10s %9s %9s\n", "block", "ns/frame", "frames/s", "x realtime", "GFLOP/s",
           "of peak");
    for (int b = 0; b < B->n_blocks; b++) {
        const int block = B->blocks[b];
        cvd_net *net;
        if (cvd_net_create_hop(m, block, hop, &net, &err) < 0) {
            fprintf(stderr, "bench_graph: %s: %s\n", name, err.msg);
            return 1;
        }
        float *in = malloc(sizeof(float) * (size_t)block * (size_t)C);
        float *out = malloc(sizeof(float) * ((size_t)cvd_net_max_out(net) + 1) * (size_t)O);
        if (in == NULL || out == NULL) {
            fprintf(stderr, "bench_graph: out of memory\n");
            return 1;
        }
        cvd_rng r;
        cvd_rng_seed(&r, 3);
        for (long i = 0; i < (long)block * C; i++)
            in[i] = (float)(cvd_rng_uniform(&r) - 0.5);
        const long nblocks = frames / block > 0 ? frames / block : 1;
        double t[RUNS], rk[RUNS];
        for (int run = -1; run < RUNS; run++) {
            double t0 = bench_now();
            int no;
            for (long i = 0; i < nblocks; i++)
                cvd_net_process(net, in, block, out, &no);
            if (run < 0)
                continue;
            t[run] = bench_now() - t0;
            const double g = flop * (double)(nblocks * block) / t[run] * 1e-9;
            const double gk = B->no_probe ? 0 : peak_once(B->isa, B->probe_iters[B->isa]);
            rk[run] = gk > 0 ? g / gk : 0;
        }
        const double sec = bench_median(t, RUNS) / (double)(nblocks * block);
        const double gf = flop / sec * 1e-9, fk = bench_median(rk, RUNS);
        const double xrt = rate > 0 ? 1.0 / (sec * rate) : 0;
        printf("%6d %10.1f %12.0f ", block, sec * 1e9, 1.0 / sec);
        if (rate > 0)
            printf("%10.1f", xrt);
        else
            printf("%10s", "-");
        printf(" %9.2f %9.3f\n", gf, fk);
        fflush(stdout);
        if (B->json) {
            fprintf(B->json, "%s\n    {\"model\": ", B->n_cases++ ? "," : "");
            bench_json_str(B->json, name);
            fprintf(B->json,
                    ", \"flop_per_frame\": %.0f, \"sample_rate\": %.0f, \"block\": %d, "
                    "\"ns_per_frame\": %.2f, \"frames_per_second\": %.0f, \"x_realtime\": %.2f, "
                    "\"gflops\": %.3f, \"fraction_of_isa_peak\": %.4f}",
                    flop, rate, block, sec * 1e9, 1.0 / sec, xrt, gf, fk);
        }
        free(in);
        free(out);
        cvd_net_destroy(net);
    }
    return 0;
}

static int file_exists(const char *path)
{
    FILE *f = fopen(path, "r");
    if (f)
        fclose(f);
    return f != NULL;
}

int main(int argc, char **argv)
{
    const char *json_arg = NULL, *only = NULL, *write_dir = NULL;
    int blocks[16] = {1, 8, 64}, n_blocks = 3;
    bench_ctx B = {.seconds = 0.5};
    cvd_err err;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--isa") == 0 && i + 1 < argc) {
            if (cvd_isa_force(argv[++i]) < 0) {
                fprintf(stderr, "bench_graph: --isa %s: unknown\n", argv[i]);
                return 2;
            }
        } else if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc) {
            B.seconds = atof(argv[++i]);
        } else if (strcmp(argv[i], "--blocks") == 0 && i + 1 < argc) {
            n_blocks = bench_parse_blocks(argv[++i], blocks, 16);
            if (n_blocks <= 0) {
                fprintf(stderr, "bench_graph: --blocks %s: a list of sizes, 1..65536\n", argv[i]);
                return 2;
            }
        } else if (strcmp(argv[i], "--json") == 0 && i + 1 < argc) {
            json_arg = argv[++i];
        } else if (strcmp(argv[i], "--only") == 0 && i + 1 < argc) {
            only = argv[++i];
        } else if (strcmp(argv[i], "--no-probe") == 0) {
            B.no_probe = 1;
        } else if (strcmp(argv[i], "--write-models") == 0 && i + 1 < argc) {
            write_dir = argv[++i];
        } else {
            fprintf(stderr, "usage: bench_graph [--isa portable|avx2|avx512] [--seconds S] "
                            "[--blocks 1,8,64] [--json PATH] [--only NAME] "
                            "[--write-models DIR] [--no-probe]\n");
            return 2;
        }
    }
    if (B.seconds <= 0)
        B.seconds = 0.5;
    B.blocks = blocks;
    B.n_blocks = n_blocks;
    B.isa = cvd_isa_active();

    struct {
        const char *name, *path;
        int kind; /* 0 file, 1 tcn json, 2 stack json */
        int in_ch, filters, k, n, fusion_off;
        long hop;
        double rate; /* audio: x real time at this rate where the file has none */
    } cases[] = {
        {"tcn-real", "../shared/models/keras/IrtantiCarona_tcn_model.keras", 0, 0, 0, 0, 0, 0, 0,
         0},
        {"tcn16-k3", NULL, 1, 1, 16, 3, 6, 0, 0, 0},
        {"tcn32-k2-imu", NULL, 1, 6, 32, 2, 6, 0, 0, 0},
        {"convstack-3ch", NULL, 2, 3, 32, 5, 3, 0, 0, 0},
        {"wavenet-keras", "tests/data/keras/nam/wavenet_a1_standard.keras", 0, 0, 0, 0, 0, 1, 0,
         48000},
    };
    if (write_dir) {
        for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
            if (cases[c].kind == 0)
                continue;
            size_t len;
            char *text =
                cases[c].kind == 1
                    ? tcn_json(cases[c].in_ch, cases[c].filters, cases[c].k, cases[c].n, &len)
                    : stack_json(cases[c].in_ch, cases[c].filters, cases[c].k, cases[c].n, &len);
            char path[1024];
            snprintf(path, sizeof path, "%s/%s.json", write_dir, cases[c].name);
            FILE *f = text ? fopen(path, "w") : NULL;
            if (f == NULL || fwrite(text, 1, len, f) != len || fclose(f) != 0) {
                fprintf(stderr, "bench_graph: cannot write %s\n", path);
                free(text);
                return 1;
            }
            printf("%s\n", path);
            free(text);
        }
        return 0;
    }
    bench_peaks peaks;
    memset(&peaks, 0, sizeof peaks);
    peaks.widest = cvd_isa_detect();
    if (!B.no_probe)
        bench_peaks_measure(&peaks);
    B.peaks = &peaks;
    for (int i = 0; i <= (int)peaks.widest; i++)
        B.probe_iters[i] = peak_iters((cvd_isa)i, 0.01);
    char cpu[256], when[64], json_path[1024];
    bench_cpu_model(cpu, sizeof cpu);
    bench_utc(when, sizeof when);
    printf("bench_graph: the general graph path, one thread, %s\n", cpu);
    bench_peaks_print(stdout, &peaks);
    printf("\"of peak\": GFLOP/s over the %s peak (each run paired with a probe run)\n",
           cvd_isa_name(B.isa));
    if (json_arg)
        snprintf(json_path, sizeof json_path, "%s", json_arg);
    else
        bench_json_path(json_path, sizeof json_path, argv[0], "bench_graph");
    B.json = fopen(json_path, "w");
    if (B.json) {
        fprintf(B.json,
                "{\n  \"program\": \"bench_graph\",\n  \"time\": \"%s\",\n  \"cpu\": ", when);
        bench_json_str(B.json, cpu);
        fprintf(B.json,
                ",\n  \"isa\": \"%s\",\n  \"runs\": %d,\n  \"peak_gflops\": %.2f,\n"
                "  \"cases\": [",
                cvd_isa_name(B.isa), RUNS, peaks.gflops[B.isa]);
    }

    int rc = 0;
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        if (only && strcmp(only, cases[c].name) != 0)
            continue;
        cvd_model *m = NULL;
        if (cases[c].kind == 0) {
            if (!file_exists(cases[c].path)) {
                printf("\n%s: %s is absent (skipped)\n", cases[c].name, cases[c].path);
                continue;
            }
            if (cvd_model_load(cases[c].path, &m, &err) < 0) {
                fprintf(stderr, "bench_graph: %s\n", err.msg);
                rc = 1;
                continue;
            }
        } else {
            size_t len;
            char *text =
                cases[c].kind == 1
                    ? tcn_json(cases[c].in_ch, cases[c].filters, cases[c].k, cases[c].n, &len)
                    : stack_json(cases[c].in_ch, cases[c].filters, cases[c].k, cases[c].n, &len);
            if (text == NULL || cvd_json_model_parse(text, len, cases[c].name, ".", &m, &err) < 0) {
                fprintf(stderr, "bench_graph: %s: %s\n", cases[c].name,
                        text ? err.msg : "no memory");
                free(text);
                rc = 1;
                continue;
            }
            free(text);
        }
        if (cases[c].fusion_off)
            cvd_model_set_fusion(m, 0);
        if (bench(&B, m, cases[c].name, cases[c].hop, cases[c].rate) != 0)
            rc = 1;
        cvd_model_unref(m);
    }
    if (B.json) {
        fprintf(B.json, "\n  ]\n}\n");
        fclose(B.json);
        printf("\nJSON record: %s\n", json_path);
    }
    return rc;
}
