/*
 * bench_nam: the NAM standard WaveNet (../shared/models/nam/wavenet_a1_standard.nam, or the
 * file given) streamed at block sizes 1, 8, 64, 512. Prints ns/frame, GFLOP/s and x real
 * time at 48 kHz, medians of 7 runs after a warm-up, on thread CPU time.
 *
 *   bench_nam [--isa portable|avx2|avx512] [--seconds S] [MODEL]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "benchutil.h"
#include "convd_model.h"

#define RUNS 7

int main(int argc, char **argv)
{
    static const int blocks[] = {1, 8, 64, 512};
    const char *path = "../shared/models/nam/wavenet_a1_standard.nam";
    double seconds = 1.0;
    cvd_model *m;
    cvd_err err;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--isa") == 0 && i + 1 < argc) {
            if (cvd_isa_force(argv[++i]) < 0) {
                fprintf(stderr, "bench_nam: --isa %s: unknown\n", argv[i]);
                return 2;
            }
        } else if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc) {
            seconds = atof(argv[++i]);
        } else if (argv[i][0] != '-') {
            path = argv[i];
        } else {
            fprintf(stderr, "usage: bench_nam [--isa portable|avx2|avx512] [--seconds S] [MODEL]\n");
            return 2;
        }
    }
    if (cvd_nam_load(path, &m, &err) < 0) {
        fprintf(stderr, "bench_nam: %s (skipped)\n", err.msg);
        return 0;
    }
    double flop = 2.0 * cvd_model_macs_per_frame(m);
    long frames = (long)(seconds * 48000);
    printf("%s: %.0f FLOP/frame, isa %s, %.1f s of audio a run, median of %d\n", path, flop,
           cvd_isa_name(cvd_isa_active()), seconds, RUNS);
    printf("%6s %10s %9s %12s\n", "block", "ns/frame", "GFLOP/s", "x realtime");
    for (size_t b = 0; b < sizeof blocks / sizeof blocks[0]; b++) {
        int block = blocks[b];
        cvd_net *net;
        if (cvd_net_create(m, block, &net, &err) < 0) {
            fprintf(stderr, "bench_nam: %s\n", err.msg);
            return 1;
        }
        float *in = malloc(sizeof(float) * (size_t)block);
        float *out = malloc(sizeof(float) * (size_t)cvd_net_max_out(net) * cvd_model_out_channels(m));
        cvd_rng r;
        cvd_rng_seed(&r, 3);
        for (int i = 0; i < block; i++)
            in[i] = (float)(cvd_rng_uniform(&r) - 0.5);
        long nblocks = frames / block;
        double t[RUNS];
        for (int run = -1; run < RUNS; run++) {
            double t0 = bench_now();
            int no;
            for (long i = 0; i < nblocks; i++)
                cvd_net_process(net, in, block, out, &no);
            if (run >= 0)
                t[run] = bench_now() - t0;
        }
        double sec = bench_median(t, RUNS) / (double)(nblocks * block);
        printf("%6d %10.1f %9.2f %12.1f\n", block, sec * 1e9, flop / sec * 1e-9,
               1.0 / (sec * 48000.0));
        fflush(stdout);
        free(in);
        free(out);
        cvd_net_destroy(net);
    }
    cvd_model_unref(m);
    return 0;
}
