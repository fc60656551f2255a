/* SPDX-License-Identifier: Apache-2.0 */
/*
 * bench_fuse - NAM's standard WaveNet written in Keras's vocabulary (scripts/gen_keras_nam.py:
 * tests/data/keras/nam/wavenet_a1_standard.keras) against the .nam itself, in the same run:
 * the Keras graph fused (dsp/fuse.c: it runs on the .nam's kernels), and unfused (every node
 * on the general path). Thread CPU time, runs of the three interleaved, median of RUNS; x real
 * time at 48 kHz and the ratio of the fused Keras graph's speed to the .nam's (goal: >= 0.8).
 * Writes build/bench/bench_fuse.json beside the table.
 *
 *   bench_fuse [--seconds S] [--blocks 1,8,64,512] [--json PATH] [KERAS NAM]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "benchutil.h"
#include "convd_dsp.h"
#include "convd_model.h"

#define RUNS 7

enum { NAM = 0, FUSED, UNFUSED, KINDS };
static const char *const kind_name[KINDS] = {".nam", "keras fused", "keras unfused"};

int main(int argc, char **argv)
{
    const char *kpath = "tests/data/keras/nam/wavenet_a1_standard.keras";
    const char *npath = "../shared/models/nam/wavenet_a1_standard.nam";
    const char *json_arg = NULL;
    double seconds = 0.5;
    int blocks[16] = {1, 8, 64, 512}, n_blocks = 4, pos = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc) {
            seconds = atof(argv[++i]);
        } else if (strcmp(argv[i], "--json") == 0 && i + 1 < argc) {
            json_arg = argv[++i];
        } else if (strcmp(argv[i], "--blocks") == 0 && i + 1 < argc) {
            n_blocks = 0;
            for (char *s = argv[++i]; *s && n_blocks < 16;) {
                char *e;
                long v = strtol(s, &e, 10);
                if (e == s || v < 1 || v > 65536) {
                    fprintf(stderr, "bench_fuse: --blocks: a list of sizes, 1..65536\n");
                    return 2;
                }
                blocks[n_blocks++] = (int)v;
                s = *e == ',' ? e + 1 : e;
            }
        } else if (argv[i][0] != '-' && pos < 2) {
            if (pos++ == 0)
                kpath = argv[i];
            else
                npath = argv[i];
        } else {
            fprintf(stderr, "usage: bench_fuse [--seconds S] [--blocks 1,8,64,512] [--json PATH] "
                            "[KERAS NAM]\n");
            return 2;
        }
    }
    if (seconds <= 0)
        seconds = 0.5;
    FILE *probe = fopen(npath, "r");
    if (probe == NULL) {
        printf("bench_fuse: %s is absent: nothing to compare with (skipped)\n", npath);
        return 0;
    }
    fclose(probe);
    cvd_err err;
    cvd_model *km, *nm;
    if (cvd_model_load(kpath, &km, &err) < 0 || cvd_model_load(npath, &nm, &err) < 0) {
        fprintf(stderr, "bench_fuse: %s\n", err.msg);
        return 1;
    }
    if (cvd_model_fused_count(km) != 1) {
        fprintf(stderr, "bench_fuse: %s did not fuse:\n%s", kpath, cvd_model_fusion_report(km));
        return 1;
    }
    char json_path[1024], when[64];
    if (json_arg)
        snprintf(json_path, sizeof json_path, "%s", json_arg);
    else
        bench_json_path(json_path, sizeof json_path, argv[0], "bench_fuse");
    FILE *json = fopen(json_path, "w");
    bench_utc(when, sizeof when);
    if (json)
        fprintf(json,
                "{\n  \"program\": \"bench_fuse\",\n  \"time\": \"%s\",\n  \"isa\": \"%s\","
                "\n  \"sample_rate\": 48000,\n  \"cases\": [",
                when, cvd_isa_name(cvd_isa_active()));
    printf("NAM standard WaveNet: the .nam and its Keras-vocabulary equivalent, same run\n"
           "isa %s, %.1f s of audio a run, runs interleaved, median of %d (thread CPU time)\n",
           cvd_isa_name(cvd_isa_active()), seconds, RUNS);
    printf("%6s %12s %14s %16s %12s %14s\n", "block", ".nam xRT", "keras fused xRT",
           "keras unfused xRT", "fused/.nam", "unfused/.nam");
    for (int b = 0; b < n_blocks; b++) {
        const int block = blocks[b];
        cvd_net *net[KINDS];
        cvd_model_set_fusion(km, 1);
        if (cvd_net_create(nm, block, &net[NAM], &err) < 0 ||
            cvd_net_create(km, block, &net[FUSED], &err) < 0) {
            fprintf(stderr, "bench_fuse: %s\n", err.msg);
            return 1;
        }
        cvd_model_set_fusion(km, 0);
        if (cvd_net_create(km, block, &net[UNFUSED], &err) < 0) {
            fprintf(stderr, "bench_fuse: %s\n", err.msg);
            return 1;
        }
        cvd_model_set_fusion(km, 1);
        float *in = malloc(sizeof(float) * (size_t)block);
        float *out = malloc(sizeof(float) * (size_t)cvd_net_max_out(net[UNFUSED]) + 64);
        cvd_rng r;
        cvd_rng_seed(&r, 3);
        for (int i = 0; i < block; i++)
            in[i] = (float)(0.5 * (cvd_rng_uniform(&r) - 0.5));
        const long frames = (long)(seconds * 48000);
        const long nb = frames / block > 0 ? frames / block : 1;
        double t[KINDS][RUNS], ratio[2][RUNS];
        for (int run = -1; run < RUNS; run++) {
            double tk[KINDS];
            for (int k = 0; k < KINDS; k++) {
                /* the unfused graph is the slow one: a tenth of the audio */
                const long n = k == UNFUSED ? (nb / 10 > 0 ? nb / 10 : 1) : nb;
                double t0 = bench_now();
                int no;
                for (long i = 0; i < n; i++)
                    cvd_net_process(net[k], in, block, out, &no);
                tk[k] = (bench_now() - t0) / (double)(n * block);
            }
            if (run < 0)
                continue;
            for (int k = 0; k < KINDS; k++)
                t[k][run] = tk[k];
            ratio[0][run] = tk[NAM] / tk[FUSED];
            ratio[1][run] = tk[NAM] / tk[UNFUSED];
        }
        double xrt[KINDS];
        for (int k = 0; k < KINDS; k++)
            xrt[k] = 1.0 / (bench_median(t[k], RUNS) * 48000.0);
        const double rf = bench_median(ratio[0], RUNS), ru = bench_median(ratio[1], RUNS);
        printf("%6d %12.1f %14.1f %16.1f %12.2f %14.2f\n", block, xrt[NAM], xrt[FUSED],
               xrt[UNFUSED], rf, ru);
        fflush(stdout);
        if (json)
            fprintf(json,
                    "%s\n    {\"block\": %d, \"x_realtime\": {\"%s\": %.2f, \"%s\": %.2f, "
                    "\"%s\": %.2f}, \"fused_over_nam\": %.3f, \"unfused_over_nam\": %.3f}",
                    b ? "," : "", block, kind_name[NAM], xrt[NAM], kind_name[FUSED], xrt[FUSED],
                    kind_name[UNFUSED], xrt[UNFUSED], rf, ru);
        for (int k = 0; k < KINDS; k++)
            cvd_net_destroy(net[k]);
        free(in);
        free(out);
    }
    if (json) {
        fprintf(json, "\n  ]\n}\n");
        fclose(json);
        printf("JSON record: %s\n", json_path);
    }
    cvd_model_unref(km);
    cvd_model_unref(nm);
    return 0;
}
