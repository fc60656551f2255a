/*
 * bench_conv: a streaming Conv1D 16->16, kernel 3, causal, at dilations 1..512 and block
 * sizes 1, 8, 64, 512. Prints ns/frame, GFLOP/s and x real time at 48 kHz, as medians of
 * 7 runs after a warm-up, on thread CPU time.
 *
 *   bench_conv [--isa portable|avx2|avx512] [--frames N]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "benchutil.h"
#include "convd_dsp.h"

#define RUNS 7

int main(int argc, char **argv)
{
    static const int blocks[] = {1, 8, 64, 512};
    long frames = 1 << 16;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--isa") == 0 && i + 1 < argc) {
            if (cvd_isa_force(argv[++i]) < 0) {
                fprintf(stderr, "bench_conv: --isa %s: unknown\n", argv[i]);
                return 2;
            }
        } else if (strcmp(argv[i], "--frames") == 0 && i + 1 < argc) {
            frames = atol(argv[++i]);
        } else {
            fprintf(stderr, "usage: bench_conv [--isa portable|avx2|avx512] [--frames N]\n");
            return 2;
        }
    }
    printf("Conv1D 16->16 k=3 causal, streaming, isa %s, %ld frames a run, median of %d\n",
           cvd_isa_name(cvd_isa_active()), frames, RUNS);
    printf("%8s %6s %10s %9s %12s\n", "dilation", "block", "ns/frame", "GFLOP/s", "x realtime");

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
            printf("%8d %6d %10.2f %9.2f %12.1f\n", d, block, sec * 1e9, flop / sec * 1e-9,
                   1.0 / (sec * 48000.0));
            fflush(stdout);
            free(in);
            free(out);
            cvd_layer_destroy(L);
        }
    }
    return 0;
}
