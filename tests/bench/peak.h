/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The FMA peak of this core, for the benchmarks to quote their figures against: independent
 * multiply-add chains on each instruction set convd has a path for, timed on thread CPU time.
 *
 *   avx512    16 chains of vfmadd on zmm (16 lanes)
 *   avx2      12 chains of vfmadd on ymm (8 lanes; the 16 registers AVX2 has)
 *   portable  12 chains of a * b + c on 4-lane GCC/Clang vectors, compiled for the baseline the
 *             portable kernels are: SSE2 on x86-64 (a multiply and an add), NEON on aarch64
 *             (fused, as the portable kernels are there)
 *
 * Each is what a CPU with only that instruction set would reach on this core: a figure measured
 * with `--isa avx2` is quoted against the avx2 peak and against the widest. FLOP are counted as
 * two per lane and multiply-add, as the models' FLOP/frame are.
 *
 * On a shared machine (or a VM) the core's speed drifts from second to second, so the benchmarks
 * pair every timed run with a short probe run (peak_once) and quote the median of the ratios:
 * both halves of a pair see the same conditions.
 */
#ifndef CONVD_BENCH_PEAK_H
#define CONVD_BENCH_PEAK_H

#include <stdio.h>
#include <string.h>

#include "benchutil.h"
#include "convd_dsp.h"

#if (defined(__x86_64__) || defined(__i386__)) && defined(__GNUC__)
#include <immintrin.h>
#define BENCH_PEAK_X86 1
#endif

#define PEAK_CHAINS12(OP)                                                                          \
    a0 = OP(a0);                                                                                   \
    a1 = OP(a1);                                                                                   \
    a2 = OP(a2);                                                                                   \
    a3 = OP(a3);                                                                                   \
    a4 = OP(a4);                                                                                   \
    a5 = OP(a5);                                                                                   \
    a6 = OP(a6);                                                                                   \
    a7 = OP(a7);                                                                                   \
    a8 = OP(a8);                                                                                   \
    a9 = OP(a9);                                                                                   \
    a10 = OP(a10);                                                                                 \
    a11 = OP(a11)

typedef float peak_v4 __attribute__((vector_size(16)));

#if defined(__clang__)
#define PEAK_CONTRACT _Pragma("clang fp contract(fast)")
#define PEAK_CONTRACT_ATTR
#elif defined(__GNUC__)
#define PEAK_CONTRACT
#define PEAK_CONTRACT_ATTR __attribute__((optimize("fp-contract=fast")))
#else
#define PEAK_CONTRACT
#define PEAK_CONTRACT_ATTR
#endif

/* FLOP done by `iters` iterations */
PEAK_CONTRACT_ATTR __attribute__((noinline)) static double peak_run_portable(long iters,
                                                                             float *sink)
{
    PEAK_CONTRACT
    const peak_v4 m = {0.9999f, 0.9999f, 0.9999f, 0.9999f}, c = {1e-4f, 1e-4f, 1e-4f, 1e-4f};
    peak_v4 a0 = m * 0.1f, a1 = m * 0.2f, a2 = m * 0.3f, a3 = m * 0.4f, a4 = m * 0.5f,
            a5 = m * 0.6f, a6 = m * 0.7f, a7 = m * 0.8f, a8 = m * 0.9f, a9 = m * 1.0f,
            a10 = m * 1.1f, a11 = m * 1.2f;
#define PEAK_P(x) ((x)*m + c)
    for (long i = 0; i < iters; i++) {
        PEAK_CHAINS12(PEAK_P);
        PEAK_CHAINS12(PEAK_P);
    }
#undef PEAK_P
    peak_v4 s = ((a0 + a1) + (a2 + a3)) + ((a4 + a5) + (a6 + a7)) + ((a8 + a9) + (a10 + a11));
    *sink = s[0] + s[1] + s[2] + s[3];
    return (double)iters * 24 * 4 * 2;
}

#ifdef BENCH_PEAK_X86
__attribute__((target("avx2,fma"), noinline)) static double peak_run_avx2(long iters, float *sink)
{
    const __m256 m = _mm256_set1_ps(0.9999f), c = _mm256_set1_ps(1e-4f);
    __m256 a0 = _mm256_set1_ps(0.1f), a1 = _mm256_set1_ps(0.2f), a2 = _mm256_set1_ps(0.3f),
           a3 = _mm256_set1_ps(0.4f), a4 = _mm256_set1_ps(0.5f), a5 = _mm256_set1_ps(0.6f),
           a6 = _mm256_set1_ps(0.7f), a7 = _mm256_set1_ps(0.8f), a8 = _mm256_set1_ps(0.9f),
           a9 = _mm256_set1_ps(1.0f), a10 = _mm256_set1_ps(1.1f), a11 = _mm256_set1_ps(1.2f);
#define PEAK_F(x) _mm256_fmadd_ps((x), m, c)
    for (long i = 0; i < iters; i++) {
        PEAK_CHAINS12(PEAK_F);
        PEAK_CHAINS12(PEAK_F);
    }
#undef PEAK_F
    __m256 s = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)),
                             _mm256_add_ps(_mm256_add_ps(a4, a5), _mm256_add_ps(a6, a7)));
    s = _mm256_add_ps(s, _mm256_add_ps(_mm256_add_ps(a8, a9), _mm256_add_ps(a10, a11)));
    float t[8];
    _mm256_storeu_ps(t, s);
    *sink = t[0];
    return (double)iters * 24 * 8 * 2;
}

__attribute__((target("avx512f"), noinline)) static double peak_run_avx512(long iters, float *sink)
{
    const __m512 m = _mm512_set1_ps(0.9999f), c = _mm512_set1_ps(1e-4f);
    __m512 a0 = _mm512_set1_ps(0.1f), a1 = _mm512_set1_ps(0.2f), a2 = _mm512_set1_ps(0.3f),
           a3 = _mm512_set1_ps(0.4f), a4 = _mm512_set1_ps(0.5f), a5 = _mm512_set1_ps(0.6f),
           a6 = _mm512_set1_ps(0.7f), a7 = _mm512_set1_ps(0.8f), a8 = _mm512_set1_ps(0.9f),
           a9 = _mm512_set1_ps(1.0f), a10 = _mm512_set1_ps(1.1f), a11 = _mm512_set1_ps(1.2f),
           b0 = _mm512_set1_ps(1.3f), b1 = _mm512_set1_ps(1.4f), b2 = _mm512_set1_ps(1.5f),
           b3 = _mm512_set1_ps(1.6f);
#define PEAK_F(x) _mm512_fmadd_ps((x), m, c)
    for (long i = 0; i < iters; i++) {
        PEAK_CHAINS12(PEAK_F);
        b0 = PEAK_F(b0);
        b1 = PEAK_F(b1);
        b2 = PEAK_F(b2);
        b3 = PEAK_F(b3);
        PEAK_CHAINS12(PEAK_F);
        b0 = PEAK_F(b0);
        b1 = PEAK_F(b1);
        b2 = PEAK_F(b2);
        b3 = PEAK_F(b3);
    }
#undef PEAK_F
    __m512 s = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)),
                             _mm512_add_ps(_mm512_add_ps(a4, a5), _mm512_add_ps(a6, a7)));
    s = _mm512_add_ps(s, _mm512_add_ps(_mm512_add_ps(a8, a9), _mm512_add_ps(a10, a11)));
    s = _mm512_add_ps(s, _mm512_add_ps(_mm512_add_ps(b0, b1), _mm512_add_ps(b2, b3)));
    *sink = _mm512_reduce_add_ps(s);
    return (double)iters * 32 * 16 * 2;
}
#endif

typedef double (*peak_fn)(long, float *);

/* the probe of one ISA, or NULL where this build has none */
static inline peak_fn peak_probe(cvd_isa isa)
{
#ifdef BENCH_PEAK_X86
    if (isa == CVD_ISA_AVX512)
        return peak_run_avx512;
    if (isa == CVD_ISA_AVX2)
        return peak_run_avx2;
#endif
    return isa == CVD_ISA_PORTABLE ? peak_run_portable : NULL;
}

/* iterations of one ISA's probe that take about `seconds` */
static inline long peak_iters(cvd_isa isa, double seconds)
{
    peak_fn f = peak_probe(isa);
    float sink = 0.0f;
    long iters = 1000;
    if (f == NULL || isa > cvd_isa_detect())
        return 0;
    for (;;) {
        double t0 = bench_now();
        f(iters, &sink);
        double dt = bench_now() - t0;
        if (dt > 0.004)
            return (long)((double)iters * seconds / dt) + 1;
        if (iters > (1L << 30))
            return 0; /* 2^30 iterations in 4 ms: the probe did no work; no figure, not a
                       * count of iterations that would run for hours */
        iters *= 4;
    }
}

/* GFLOP/s of one run of `iters` iterations of one ISA's probe (0 where there is none) */
static inline double peak_once(cvd_isa isa, long iters)
{
    peak_fn f = peak_probe(isa);
    float sink = 0.0f;
    if (f == NULL || iters <= 0)
        return 0.0;
    double t0 = bench_now();
    double flop = f(iters, &sink);
    double g = flop / (bench_now() - t0) * 1e-9;
    if (sink == 12345.0f) /* keep the result alive */
        printf(" ");
    return g;
}

/* GFLOP/s of one ISA's probe: the median of `runs` runs of about 20 ms each */
static inline double peak_gflops(cvd_isa isa, int runs)
{
    long iters = peak_iters(isa, 0.02);
    double g[15];
    if (iters <= 0)
        return 0.0;
    if (runs > 15)
        runs = 15;
    for (int r = 0; r < runs; r++)
        g[r] = peak_once(isa, iters);
    return bench_median(g, runs);
}

/* the peaks of every ISA this CPU has ([cvd_isa]; 0 where it has not) */
typedef struct bench_peaks {
    double gflops[3];
    cvd_isa widest;
} bench_peaks;

static inline void bench_peaks_measure(bench_peaks *p)
{
    p->widest = cvd_isa_detect();
    for (int i = 0; i < 3; i++)
        p->gflops[i] = peak_gflops((cvd_isa)i, 7);
}

/* the mean of two measurements (the start and the end of a run) */
static inline void bench_peaks_merge(bench_peaks *p, const bench_peaks *q)
{
    for (int i = 0; i < 3; i++)
        p->gflops[i] = 0.5 * (p->gflops[i] + q->gflops[i]);
}

static inline void bench_peaks_print(FILE *f, const bench_peaks *p)
{
    fprintf(f, "FMA peak of this core (independent chains, median of 7):");
    for (int i = (int)p->widest; i >= 0; i--)
        fprintf(f, " %s %.1f GFLOP/s%s", cvd_isa_name((cvd_isa)i), p->gflops[i], i ? "," : "\n");
}

/* the CPU's model name (and, on x86, its family and model numbers), for the records */
static inline void bench_cpu_model(char *buf, size_t len)
{
    char name[256] = "unknown", fam[32] = "", mod[32] = "";
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (f != NULL) {
        char line[512];
        while (fgets(line, sizeof line, f)) {
            char *v = strchr(line, ':');
            if (v == NULL)
                continue;
            v++;
            while (*v == ' ' || *v == '\t')
                v++;
            v[strcspn(v, "\n")] = 0;
            if (strncmp(line, "model name", 10) == 0 && strcmp(name, "unknown") == 0)
                snprintf(name, sizeof name, "%s", v);
            else if (strncmp(line, "cpu family", 10) == 0 && !fam[0])
                snprintf(fam, sizeof fam, "%s", v);
            else if (strncmp(line, "model\t", 6) == 0 && !mod[0])
                snprintf(mod, sizeof mod, "%s", v);
            else if (strncmp(line, "CPU part", 8) == 0 && !mod[0])
                snprintf(mod, sizeof mod, "%s", v);
        }
        fclose(f);
    }
    if (fam[0])
        snprintf(buf, len, "%s (family %s, model %s)", name, fam, mod);
    else if (mod[0])
        snprintf(buf, len, "%s (part %s)", name, mod);
    else
        snprintf(buf, len, "%s", name);
}

#endif
