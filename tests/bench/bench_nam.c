/*
 * bench_nam: the NAM standard WaveNet (../shared/models/nam/wavenet_a1_standard.nam, or the
 * file given) streamed at block sizes 1, 8, 64, 512. Prints ns/frame, GFLOP/s and x real
 * time at 48 kHz, medians of 7 runs after a warm-up, on thread CPU time. Without a MODEL it
 * then does the same for NAM's other sizes (the trainer's lite 12/6, feather 8/4 and nano
 * 4/2 WaveNets: same layout, random weights), built here as .nam text.
 *
 *   bench_nam [--isa portable|avx2|avx512] [--seconds S] [MODEL]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "benchutil.h"
#include "convd_model.h"

#define RUNS 7

static const int blocks[] = {1, 8, 64, 512};

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
    o += snprintf(t + o, cap - (size_t)o, "{\"version\": \"0.5.4\", \"architecture\": \"WaveNet\", "
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

static int bench(cvd_model *m, const char *name, double seconds)
{
    cvd_err err;
    double flop = 2.0 * cvd_model_macs_per_frame(m);
    long frames = (long)(seconds * 48000);
    printf("%s: %.0f FLOP/frame, isa %s, %.1f s of audio a run, median of %d\n", name, flop,
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
    return 0;
}

int main(int argc, char **argv)
{
    const char *path = NULL;
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
    const char *std_path = path ? path : "../shared/models/nam/wavenet_a1_standard.nam";
    if (cvd_nam_load(std_path, &m, &err) < 0) {
        fprintf(stderr, "bench_nam: %s (skipped)\n", err.msg);
    } else {
        int rc = bench(m, std_path, seconds);
        cvd_model_unref(m);
        if (rc)
            return rc;
    }
    if (path)
        return 0;
    static const struct { const char *name; int c1, c2; } sizes[] = {
        {"lite WaveNet (12/6, random weights)", 12, 6},
        {"feather WaveNet (8/4, random weights)", 8, 4},
        {"nano WaveNet (4/2, random weights)", 4, 2},
    };
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t len;
        char *t = nam_text(sizes[i].c1, sizes[i].c2, &len);
        if (t == NULL || cvd_nam_parse(t, len, sizes[i].name, &m, &err) < 0) {
            fprintf(stderr, "bench_nam: %s: %s\n", sizes[i].name, t ? err.msg : "out of memory");
            free(t);
            return 1;
        }
        free(t);
        int rc = bench(m, sizes[i].name, seconds);
        cvd_model_unref(m);
        if (rc)
            return rc;
    }
    return 0;
}
