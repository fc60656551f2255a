/* SPDX-License-Identifier: Apache-2.0 */
/*
 * bench_conv: a streaming Conv1D 16->16, kernel 3, causal, at dilations 1..512 and block
 * sizes 1, 8, 64, 512. Prints ns/frame, GFLOP/s and x real time at 48 kHz, as medians of
 * 7 runs after a warm-up, on thread CPU time, and as fractions of the FMA peak measured in the
 * same run (peak.h). The figures also go into build/bench/bench_conv.json (beside the program).
 *
 *   bench_conv [--isa portable|avx2|avx512] [--frames N] [--json PATH]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "benchutil.h"
#include "convd_dsp.h"
#include "peak.h"

#define RUNS 7

int main(int argc, char **argv)
{
    static const int blocks[] = {1, 8, 64, 512};
    long frames = 1 << 16;
    const char *json_arg = NULL;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--isa") == 0 && i + 1 < argc) {
            if (cvd_isa_force(argv[++i]) < 0) {
                fprintf(stderr, "bench_conv: --isa %s: unknown\n", argv[i]);
                return 2;
            }
        } else if (strcmp(argv[i], "--frames") == 0 && i + 1 < argc) {
            frames = atol(argv[++i]);
        } else if (strcmp(argv[i], "--json") == 0 && i + 1 < argc) {
            json_arg = argv[++i];
        } else {
            fprintf(stderr,
                    "usage: bench_conv [--isa portable|avx2|avx512] [--frames N] [--json PATH]\n");
            return 2;
        }
    }
    const cvd_isa isa = cvd_isa_active();
    bench_peaks peaks;
    char cpu[320], when[64], json_path[1024];
    bench_cpu_model(cpu, sizeof cpu);
    bench_utc(when, sizeof when);
    bench_peaks_measure(&peaks);
    const double pk = peaks.gflops[isa], pw = peaks.gflops[peaks.widest];
    printf("bench_conv on %s\n", cpu);
    bench_peaks_print(stdout, &peaks);
    printf("Conv1D 16->16 k=3 causal, streaming, isa %s, %ld frames a run, median of %d\n",
           cvd_isa_name(isa), frames, RUNS);
    printf("%8s %6s %10s %9s %12s %9s", "dilation", "block", "ns/frame", "GFLOP/s", "x realtime",
           "of peak");
    if (isa != peaks.widest)
        printf(" %9s", "of widest");
    printf("\n");
    if (json_arg)
        snprintf(json_path, sizeof json_path, "%s", json_arg);
    else
        bench_json_path(json_path, sizeof json_path, argv[0], "bench_conv");
    FILE *json = fopen(json_path, "w");
    if (json == NULL)
        fprintf(stderr, "bench_conv: %s: cannot write the JSON record (table only)\n", json_path);
    else {
        fprintf(json, "{\n  \"program\": \"bench_conv\",\n  \"time\": \"%s\",\n  \"cpu\": ", when);
        bench_json_str(json, cpu);
        fprintf(json,
                ",\n  \"isa\": \"%s\",\n  \"widest_isa\": \"%s\",\n  \"layer\": "
                "\"Conv1D 16->16 k=3 causal\",\n  \"runs\": %d,\n  \"frames_per_run\": %ld,\n"
                "  \"peak_gflops\": {",
                cvd_isa_name(isa), cvd_isa_name(peaks.widest), RUNS, frames);
        for (int i = 0; i <= (int)peaks.widest; i++)
            fprintf(json, "%s\"%s\": %.3f", i ? ", " : "", cvd_isa_name((cvd_isa)i),
                    peaks.gflops[i]);
        fprintf(json, "},\n  \"cases\": [");
    }
    int n_cases = 0;

    for (int d = 1; d <= 512; d *= 2) {
        for (size_t b = 0; b < sizeof blocks / sizeof blocks[0]; b++) {
            int block = blocks[b];
            cvd_conv_config cfg;
            cvd_layer *L;
            cvd_err err;
            cvd_conv_config_init(&cfg, CVD_CONV1D);
            cfg.filters = 16;
            cfg.kernel_size = 3;
            cfg.padding = CVD_PAD_CAUSAL;
            cfg.dilation_rate = d;
            if (cvd_layer_create(&cfg, 16, block, &L, &err) < 0) {
                fprintf(stderr, "bench_conv: %s\n", err.msg);
                return 1;
            }
            cvd_layer_init_weights(L, 1);
            float *in = malloc(sizeof(float) * 16 * (size_t)block);
            float *out = malloc(sizeof(float) * 16 * (size_t)cvd_layer_max_out(L));
            cvd_rng r;
            cvd_rng_seed(&r, 7);
            for (int i = 0; i < 16 * block; i++)
                in[i] = (float)(cvd_rng_uniform(&r) - 0.5);
            double t[RUNS];
            long nblocks = frames / block > 0 ? frames / block : 1;
            for (int run = -1; run < RUNS; run++) {
                double t0 = bench_now();
                int no;
                for (long i = 0; i < nblocks; i++)
                    cvd_layer_process(L, in, block, out, &no);
                if (run >= 0)
                    t[run] = bench_now() - t0;
            }
            double sec = bench_median(t, RUNS) / (double)(nblocks * block);
            double flop = 2.0 * cvd_layer_macs_per_frame(L);
            const double gf = flop / sec * 1e-9;
            printf("%8d %6d %10.2f %9.2f %12.1f %9.2f", d, block, sec * 1e9, gf,
                   1.0 / (sec * 48000.0), pk > 0 ? gf / pk : 0);
            if (isa != peaks.widest)
                printf(" %9.2f", pw > 0 ? gf / pw : 0);
            printf("\n");
            if (json)
                fprintf(json,
                        "%s\n    {\"dilation\": %d, \"block\": %d, \"ns_per_frame\": %.3f, "
                        "\"gflops\": %.3f, \"x_realtime\": %.2f, \"fraction_of_isa_peak\": %.4f, "
                        "\"fraction_of_widest_peak\": %.4f}",
                        n_cases++ ? "," : "", d, block, sec * 1e9, gf, 1.0 / (sec * 48000.0),
                        pk > 0 ? gf / pk : 0, pw > 0 ? gf / pw : 0);
            fflush(stdout);
            free(in);
            free(out);
            cvd_layer_destroy(L);
        }
    }
    if (json) {
        fprintf(json, "\n  ]\n}\n");
        fclose(json);
        printf("JSON record: %s\n", json_path);
    }
    return 0;
}
