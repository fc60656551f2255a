/* SPDX-License-Identifier: Apache-2.0 */
/*
 * bench_build: what a stream of a model costs to build beside what it costs to run: for each
 * block size, the thread CPU time of cvd_chain_create (one model, as the daemon builds a
 * connection's stream), of cvd_chain_reset, and of processing 4,800 frames (a soak client's
 * stream) at that block, medians of RUNS; and the stream's state bytes (cvd_chain_state_bytes).
 * The first build of each block size is timed apart (it may fill what later builds share).
 *
 *   bench_build [--blocks 1,64,512,4096] [MODEL]   (default: ../shared's NAM standard)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "benchutil.h"
#include "convd_model.h"

#define RUNS 15
#define FRAMES 4800

int main(int argc, char **argv)
{
    const char *path = "../shared/models/nam/wavenet_a1_standard.nam";
    int blocks[16] = {1, 64, 512, 4096}, n_blocks = 4;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--blocks") == 0 && i + 1 < argc) {
            n_blocks = 0;
            for (char *s = argv[++i], *e; *s && n_blocks < 16; s = *e ? e + 1 : e) {
                long v = strtol(s, &e, 10);
                if (e == s || v < 1 || v > 65536) {
                    fprintf(stderr, "bench_build: --blocks: a list of sizes, 1..65536\n");
                    return 2;
                }
                blocks[n_blocks++] = (int)v;
            }
        } else if (argv[i][0] == '-') {
            fprintf(stderr, "usage: bench_build [--blocks 1,64,512,4096] [MODEL]\n");
            return 2;
        } else {
            path = argv[i];
        }
    }
    cvd_err err;
    cvd_model *m;
    if (cvd_model_load(path, &m, &err) < 0) {
        fprintf(stderr, "bench_build: %s: %s\n", path, err.msg);
        return 1;
    }
    printf("bench_build: %s, thread CPU time, median of %d (first build apart)\n", path, RUNS);
    printf("%6s %12s %10s %10s %12s %12s\n", "block", "first build", "build", "reset",
           "4800 frames", "state bytes");
    float *in = calloc(65536, sizeof(float)), *out = NULL;
    if (in == NULL)
        return 1;
    cvd_rng r;
    cvd_rng_seed(&r, 3);
    for (int i = 0; i < 65536; i++)
        in[i] = (float)(cvd_rng_uniform(&r) - 0.5);
    for (int b = 0; b < n_blocks; b++) {
        const int block = blocks[b];
        cvd_chain_config cc = {.max_block = block};
        double tb[RUNS], tr[RUNS], tp[RUNS], first = 0;
        size_t bytes = 0;
        for (int run = -1; run < RUNS; run++) {
            cvd_chain *c;
            double t0 = bench_now();
            if (cvd_chain_create(&m, NULL, 1, &cc, &c, &err) < 0) {
                fprintf(stderr, "bench_build: block %d: %s\n", block, err.msg);
                return 1;
            }
            double t1 = bench_now();
            cvd_chain_reset(c);
            double t2 = bench_now();
            if (out == NULL || run < 0) {
                free(out);
                out = malloc(sizeof(float) * (size_t)cvd_chain_max_out(c) *
                             (size_t)cvd_model_out_channels(m));
                if (out == NULL)
                    return 1;
            }
            for (int done = 0; done < FRAMES;) {
                int n = FRAMES - done < block ? FRAMES - done : block, no;
                cvd_chain_process(c, in + done, n, out, &no);
                done += n;
            }
            double t3 = bench_now();
            bytes = cvd_chain_state_bytes(c);
            cvd_chain_destroy(c);
            if (run < 0) {
                first = t1 - t0;
                continue;
            }
            tb[run] = t1 - t0;
            tr[run] = t2 - t1;
            tp[run] = t3 - t2;
        }
        printf("%6d %9.3f ms %7.3f ms %7.3f ms %9.3f ms %12zu\n", block, first * 1e3,
               bench_median(tb, RUNS) * 1e3, bench_median(tr, RUNS) * 1e3,
               bench_median(tp, RUNS) * 1e3, bytes);
        fflush(stdout);
    }
    free(in);
    free(out);
    cvd_model_unref(m);
    return 0;
}
