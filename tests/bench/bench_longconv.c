/* SPDX-License-Identifier: Apache-2.0 */
/*
 * bench_longconv: long convolutions, direct against the partitioned FFT path.
 *
 *   bench_longconv                 the cabinet IR figures: a 48 kHz IR of 200 ms (9,600 taps)
 *                                  at block 64, both paths, x real time; then the chain amp
 *                                  (the standard .nam, ../shared/models/nam) + that IR as a
 *                                  cvd_chain, beside the amp alone in the same run, and the
 *                                  FMA peak of this core measured in the run
 *   bench_longconv --crossover     ns/frame of the direct form and of the FFT path (each
 *                                  partition) over kernel lengths, for the channel shapes the
 *                                  switch table covers; prints the measured switch points
 *   --isa portable|avx2|avx512     caps the instruction set
 *
 * Thread CPU time, medians of 5 short runs after a warm-up; compare figures of one run only.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sndfile.h>
#include <unistd.h>

#include "benchutil.h"
#include "convd_dsp.h"
#include "convd_model.h"
#include "peak.h"

#define RUNS 5

/* One block through the object under test. */
typedef void (*block_fn)(void *obj, const float *in, int n, float *out);

static void layer_block(void *obj, const float *in, int n, float *out)
{
    int no;
    cvd_layer_process(obj, in, n, out, &no);
}

static void chain_block(void *obj, const float *in, int n, float *out)
{
    int no;
    cvd_chain_process(obj, in, n, out, &no);
}

/* ns per frame of `frames` frames (at least one block) through obj in blocks of `block`: a
 * warm-up run, then the median of RUNS runs. */
static double time_blocks(block_fn fn, void *obj, const float *in, float *out, int block,
                          long frames)
{
    long nblocks = frames / block > 0 ? frames / block : 1;
    double t[RUNS];
    for (int run = -1; run < RUNS; run++) {
        double t0 = bench_now();
        for (long i = 0; i < nblocks; i++)
            fn(obj, in, block, out);
        if (run >= 0)
            t[run] = bench_now() - t0;
    }
    return bench_median(t, RUNS) / (double)(nblocks * block) * 1e9;
}

/* ns per frame of a Conv1D C -> F (G groups), k taps, causal, streamed in blocks of `block`;
 * force: cvd_conv_fft_force's argument. */
static double time_conv(int C, int F, int G, int k, int force, int block, long frames)
{
    cvd_conv_config cfg;
    cvd_layer *L;
    cvd_err err;
    cvd_conv_config_init(&cfg, CVD_CONV1D);
    cfg.filters = F;
    cfg.groups = G;
    cfg.kernel_size = k;
    cfg.padding = CVD_PAD_CAUSAL;
    cvd_conv_fft_force(force);
    if (cvd_layer_create(&cfg, C, block, &L, &err) < 0) {
        fprintf(stderr, "bench_longconv: %s\n", err.msg);
        exit(1);
    }
    cvd_conv_fft_force(-1);
    cvd_layer_init_weights(L, 1);
    float *in = malloc(sizeof(float) * (size_t)C * (size_t)block);
    float *out = malloc(sizeof(float) * (size_t)F * (size_t)cvd_layer_max_out(L));
    cvd_rng r;
    cvd_rng_seed(&r, 7);
    for (int i = 0; i < C * block; i++)
        in[i] = (float)(cvd_rng_uniform(&r) - 0.5);
    double ns = time_blocks(layer_block, L, in, out, block, frames);
    free(in);
    free(out);
    cvd_layer_destroy(L);
    return ns;
}

/* frames a run: enough work to time, little enough to keep the run short */
static long frames_for(double ns_guess)
{
    long f = (long)(4e6 / (ns_guess > 1 ? ns_guess : 1)); /* about 4 ms a run */
    return f < 256 ? 256 : f > 1 << 18 ? 1 << 18 : f;
}

static int crossover(void)
{
    static const struct {
        int C, F, G;
        const char *what;
    } shapes[] = {
        {1, 1, 1, "mono IR (1 -> 1)"},
        {1, 2, 1, "stereo IR on mono (1 -> 2)"},
        {2, 2, 2, "stereo IR (2 -> 2, groups 2)"},
        {4, 4, 1, "4 -> 4"},
        {16, 16, 1, "16 -> 16"},
    };
    static const int taps[] = {16,  24,  32,  48,  64,   96,   128,  192,
                               256, 384, 512, 768, 1024, 2048, 4096, 8192};
    const int block = 64;

    printf("isa %s, block %d, ns/frame (thread CPU time, median of %d)\n",
           cvd_isa_name(cvd_isa_active()), block, RUNS);
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int C = shapes[s].C, F = shapes[s].F, G = shapes[s].G, cross = 0;
        printf("\n%s (switch table: FFT from %d taps)\n%6s %10s", shapes[s].what,
               cvd_conv_fft_threshold(C, F, G, 1), "taps", "direct");
        for (int B = 32; B <= 1024; B *= 2)
            printf(" %8s%-4d", "fft B=", B);
        printf(" %9s %9s\n", "measured", "table");
        for (size_t i = 0; i < sizeof taps / sizeof taps[0]; i++) {
            int k = taps[i], bestB = 0;
            double guess = 1.0 * k * C * F / G / 8 + 20;
            double direct =
                k * C * F / G > 300000 ? NAN : time_conv(C, F, G, k, 0, block, frames_for(guess));
            double best = INFINITY;
            printf("%6d %10.1f", k, direct);
            for (int B = 32; B <= 1024; B *= 2) {
                if (B > 4 * k || (long)k / B * C * F / G > 16384) {
                    printf(" %12s", "-");
                    continue;
                }
                double t = time_conv(C, F, G, k, B, block, frames_for(100));
                printf(" %12.1f", t);
                if (t < best) {
                    best = t;
                    bestB = B;
                }
            }
            int table = cvd_conv_fft_partition_for(C, F, G, k, 1);
            if (!(best < direct))
                printf(" %9s", "direct");
            else
                printf(" %9d", bestB);
            if (table)
                printf(" %9d\n", table);
            else
                printf(" %9s\n", "direct");
            if (!(best < direct))
                cross = 0;
            else if (cross == 0)
                cross = k;
            fflush(stdout);
        }
        printf("measured: FFT from %d taps\n", cross);
    }
    return 0;
}

/* ns per frame of a chain of models at 48 kHz, blocks of `block`, median of RUNS */
static double time_chain(cvd_model **models, int n, int block, long frames)
{
    cvd_chain *c = NULL;
    cvd_err err = {0};
    cvd_chain_config cfg = {.rate = 48000, .max_block = block};
    if (cvd_chain_create(models, NULL, n, &cfg, &c, &err) < 0) {
        fprintf(stderr, "bench_longconv: chain: %s\n", err.msg);
        exit(1);
    }
    const int ci = cvd_chain_in_channels(c), co = cvd_chain_out_channels(c);
    float *in = malloc(sizeof(float) * (size_t)ci * (size_t)block);
    float *out = malloc(sizeof(float) * (size_t)co * (size_t)cvd_chain_max_out(c));
    cvd_rng r;
    cvd_rng_seed(&r, 11);
    for (int i = 0; i < ci * block; i++)
        in[i] = (float)(0.5 * (cvd_rng_uniform(&r) - 0.5));
    double ns = time_blocks(chain_block, c, in, out, block, frames);
    free(in);
    free(out);
    cvd_chain_destroy(c);
    return ns;
}

/* A 200 ms cabinet-like response at 48 kHz (9,600 taps) written as a WAV, loaded with
 * cvd_ir_load as a chain would load it. */
static cvd_model *cab_ir(int k)
{
    char path[] = "/tmp/bench_longconv_XXXXXX.wav";
    int fd = mkstemps(path, 4);
    if (fd < 0) {
        perror("bench_longconv: mkstemps");
        exit(1);
    }
    close(fd);
    SF_INFO si = {.samplerate = 48000, .channels = 1, .format = SF_FORMAT_WAV | SF_FORMAT_FLOAT};
    SNDFILE *f = sf_open(path, SFM_WRITE, &si);
    float *h = malloc(sizeof(float) * (size_t)k);
    cvd_rng r;
    cvd_rng_seed(&r, 5);
    for (int i = 0; i < k; i++) /* decaying noise, a resonance */
        h[i] = (float)(exp(-i / 1500.0) * (cvd_rng_uniform(&r) - 0.5 + sin(i * 0.03)));
    if (f == NULL || sf_writef_float(f, h, k) != k) {
        fprintf(stderr, "bench_longconv: %s: %s\n", path, sf_strerror(f));
        exit(1);
    }
    sf_close(f);
    free(h);
    cvd_model *m = NULL;
    cvd_err err = {0};
    cvd_ir_options o;
    cvd_ir_options_init(&o);
    o.rate = 48000;
    int rc = cvd_ir_load(path, &o, &m, &err);
    unlink(path);
    if (rc < 0) {
        fprintf(stderr, "bench_longconv: %s\n", err.msg);
        exit(1);
    }
    return m;
}

static void chain_figures(int k, int block)
{
    const char *amp_path = "../shared/models/nam/wavenet_a1_standard.nam";
    cvd_model *amp = NULL, *ir = cab_ir(k);
    cvd_err err = {0};
    bench_peaks peaks;
    bench_peaks_measure(&peaks);
    printf("\namp + cabinet IR as one chain (cvd_chain at 48000 Hz), block %d, isa %s, median "
           "of %d\n",
           block, cvd_isa_name(cvd_isa_active()), RUNS);
    bench_peaks_print(stdout, &peaks);
    double t_ir = time_chain(&ir, 1, block, 1 << 16);
    printf("%-34s %10s %12s %14s\n", "", "ns/frame", "x realtime", "vs amp alone");
    if (cvd_nam_load(amp_path, &amp, &err) < 0) {
        printf("%-34s %10.1f %12.1f\n", "IR alone (9,600 taps)", t_ir, 1e9 / (t_ir * 48000.0));
        fprintf(stderr, "bench_longconv: %s (the amp figures skipped)\n", err.msg);
        cvd_model_unref(ir);
        return;
    }
    cvd_model *both[2] = {amp, ir};
    double t_amp = time_chain(&amp, 1, block, 1 << 15);
    double t_both = time_chain(both, 2, block, 1 << 15);
    printf("%-34s %10.1f %12.1f %14.2f\n", "amp alone (standard .nam)", t_amp,
           1e9 / (t_amp * 48000.0), 1.0);
    printf("%-34s %10.1f %12.1f %14.2f\n", "IR alone (9,600 taps)", t_ir, 1e9 / (t_ir * 48000.0),
           t_ir / t_amp);
    printf("%-34s %10.1f %12.1f %14.2f\n", "amp + IR", t_both, 1e9 / (t_both * 48000.0),
           t_both / t_amp);
    const double gflop = 2.0 * (double)cvd_model_macs_per_frame(amp) * 1e-9;
    const double run = gflop / (t_amp * 1e-9); /* GFLOP/s while the amp runs */
    printf("the amp alone computes %.1f GFLOP/s: %.2f of the %s peak measured above\n", run,
           run / peaks.gflops[cvd_isa_active()], cvd_isa_name(cvd_isa_active()));
    cvd_model_unref(amp);
    cvd_model_unref(ir);
}

int main(int argc, char **argv)
{
    int cross = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--isa") == 0 && i + 1 < argc) {
            if (cvd_isa_force(argv[++i]) < 0) {
                fprintf(stderr, "bench_longconv: --isa %s: unknown\n", argv[i]);
                return 2;
            }
        } else if (strcmp(argv[i], "--crossover") == 0) {
            cross = 1;
        } else {
            fprintf(stderr, "usage: bench_longconv [--crossover] [--isa portable|avx2|avx512]\n");
            return 2;
        }
    }
    if (cross)
        return crossover();

    const int k = 9600, block = 64;
    double direct = time_conv(1, 1, 1, k, 0, block, 1 << 13);
    double fft = time_conv(1, 1, 1, k, -1, block, 1 << 16);
    printf("cabinet IR, 9,600 taps (200 ms at 48 kHz), block %d, isa %s, median of %d\n", block,
           cvd_isa_name(cvd_isa_active()), RUNS);
    printf("%-22s %10s %12s\n", "", "ns/frame", "x realtime");
    printf("%-22s %10.1f %12.1f\n", "direct form", direct, 1e9 / (direct * 48000.0));
    printf("%-22s %10.1f %12.1f\n", "automatic (FFT)", fft, 1e9 / (fft * 48000.0));
    printf("the FFT path %.1fx the direct form's speed (same run)\n", direct / fft);
    chain_figures(k, block);
    return 0;
}
