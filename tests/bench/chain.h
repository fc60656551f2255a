/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The latency floor of a WaveNet at block 1, for bench_nam to quote block 1 against.
 *
 * At block 1 the layers form one chain: layer l + 1's current tap needs layer l's output of
 * the same frame, which needs layer l's activation, which needs layer l's current tap. So one
 * frame costs at least the sum over the layers of
 *
 *   the store of h and the broadcasts of its C values, the current tap's C FMAs in 4 chains
 *   (as the kernels' one-frame path has them), 2 adds, tanh (the kernels' own, division
 *   included), the store of a and its broadcasts, the 1x1's C FMAs in 4 chains on top of
 *   h + b1, 2 adds
 *
 * however many FMA pipes the core has: the older taps, the mixin, the biases and the head do
 * not wait on this frame's chain, so they are left out (the out-of-order core overlaps them).
 * chain_ns_per_frame() times exactly that sequence, layer after layer, for a model's arrays on
 * one ISA's vectors: a kernel that adds in the kernels' order cannot run a frame faster on this
 * core (more partial sums, another order of additions, shorten each chain by an FMA or two of
 * latency and add a level of adds; the tanh, the stores and the broadcasts stay). Models with
 * gated layers or other activations get no floor (0).
 */
#ifndef CONVD_BENCH_CHAIN_H
#define CONVD_BENCH_CHAIN_H

#include <stdio.h>
#include <stdlib.h>

#include "benchutil.h"
#include "convd_dsp.h"

#if (defined(__x86_64__) || defined(__i386__)) && defined(__GNUC__)
#include "vmath_x86.h" /* the kernels' own tanh16 and tanh8, so the floor has their latency */
#define CHAIN_X86 1
#endif

#define CHAIN_MAXV 3 /* vectors a frame: up to 48 channels on AVX-512, 24 on AVX2 */
#define CHAIN_LAYERS 20

#ifdef CHAIN_X86
/* One layer's one-frame chain on NV vectors of W lanes, C channels, per layer weights
 * wc[l] and w1[l] (C rows of NV W floats). x: h in NV vectors. */
#define CHAIN_LAYER(VEC, W, LOAD, STORE, SET1, FMA, ADD, TANH)                                     \
    do {                                                                                           \
        VEC p[4][CHAIN_MAXV], r[4][CHAIN_MAXV], a[CHAIN_MAXV];                                     \
        _Pragma("GCC unroll 3") for (int v = 0; v < NV; v++)                                       \
        {                                                                                          \
            STORE(hs + v * W, x[v]);                                                               \
            p[0][v] = pre[v];                                                                      \
            p[1][v] = p[2][v] = p[3][v] = SET1(0.0f);                                              \
        }                                                                                          \
        int c = 0;                                                                                 \
        for (; c + 4 <= C; c += 4)                                                                 \
            _Pragma("GCC unroll 4") for (int i = 0; i < 4; i++)                                    \
                _Pragma("GCC unroll 3") for (int v = 0; v < NV; v++) p[i][v] =                     \
                    FMA(SET1(hs[c + i]), LOAD(wc + (size_t)(c + i) * S + v * W), p[i][v]);         \
        for (; c < C; c++)                                                                         \
            _Pragma("GCC unroll 3") for (int v = 0; v < NV; v++) p[0][v] =                         \
                FMA(SET1(hs[c]), LOAD(wc + (size_t)c * S + v * W), p[0][v]);                       \
        _Pragma("GCC unroll 3") for (int v = 0; v < NV; v++)                                       \
        {                                                                                          \
            a[v] = TANH(ADD(ADD(p[0][v], p[1][v]), ADD(p[2][v], p[3][v])));                        \
            STORE(as + v * W, a[v]);                                                               \
            r[0][v] = ADD(x[v], b1[v]);                                                            \
            r[1][v] = r[2][v] = r[3][v] = SET1(0.0f);                                              \
        }                                                                                          \
        for (c = 0; c + 4 <= C; c += 4)                                                            \
            _Pragma("GCC unroll 4") for (int i = 0; i < 4; i++)                                    \
                _Pragma("GCC unroll 3") for (int v = 0; v < NV; v++) r[i][v] =                     \
                    FMA(SET1(as[c + i]), LOAD(w1 + (size_t)(c + i) * S + v * W), r[i][v]);         \
        for (; c < C; c++)                                                                         \
            _Pragma("GCC unroll 3") for (int v = 0; v < NV; v++) r[0][v] =                         \
                FMA(SET1(as[c]), LOAD(w1 + (size_t)c * S + v * W), r[0][v]);                       \
        _Pragma("GCC unroll 3") for (int v = 0; v < NV; v++) x[v] =                                \
            ADD(ADD(r[0][v], r[1][v]), ADD(r[2][v], r[3][v]));                                     \
    } while (0)

/* `frames` frames of n_layers layers of C channels; weights: 2 n_layers C x S floats */
#define CHAIN_RUN(NAME, TARGET, VEC, W, LOAD, STORE, SET1, FMA, ADD, TANH)                         \
    __attribute__((target(TARGET), always_inline)) static inline float NAME##_nv(                  \
        const float *wts, int C, int n_layers, long frames, const int NV)                          \
    {                                                                                              \
        const int S = NV * W;                                                                      \
        float hs[CHAIN_MAXV * W] __attribute__((aligned(64)));                                     \
        float as[CHAIN_MAXV * W] __attribute__((aligned(64)));                                     \
        VEC x[CHAIN_MAXV], pre[CHAIN_MAXV], b1[CHAIN_MAXV];                                        \
        _Pragma("GCC unroll 3") for (int v = 0; v < NV; v++)                                       \
        {                                                                                          \
            x[v] = SET1(0.1f);                                                                     \
            pre[v] = SET1(0.05f);                                                                  \
            b1[v] = SET1(-0.01f);                                                                  \
        }                                                                                          \
        for (long f = 0; f < frames; f++)                                                          \
            for (int l = 0; l < n_layers; l++) {                                                   \
                const float *wc = wts + (size_t)(2 * l) * C * S, *w1 = wc + (size_t)C * S;         \
                CHAIN_LAYER(VEC, W, LOAD, STORE, SET1, FMA, ADD, TANH);                            \
            }                                                                                      \
        _Pragma("GCC unroll 3") for (int v = 0; v < NV; v++) STORE(hs + v * W, x[v]);              \
        return hs[0];                                                                              \
    }                                                                                              \
    __attribute__((target(TARGET), noinline)) static float NAME(const float *wts, int C,           \
                                                                int n_layers, long frames)         \
    {                                                                                              \
        const int nv = (C + W - 1) / W;                                                            \
        if (nv <= 1)                                                                               \
            return NAME##_nv(wts, C, n_layers, frames, 1);                                         \
        if (nv == 2)                                                                               \
            return NAME##_nv(wts, C, n_layers, frames, 2);                                         \
        return NAME##_nv(wts, C, n_layers, frames, 3);                                             \
    }

CHAIN_RUN(chain_avx512, "avx512f", __m512, 16, _mm512_load_ps, _mm512_store_ps, _mm512_set1_ps,
          _mm512_fmadd_ps, _mm512_add_ps, tanh16)
CHAIN_RUN(chain_avx2, "avx2,fma", __m256, 8, _mm256_load_ps, _mm256_store_ps, _mm256_set1_ps,
          _mm256_fmadd_ps, _mm256_add_ps, tanh8)
#endif

/* ns one frame of C-channel layers' chain takes, per layer, on isa's vectors (0: none) */
static inline double chain_ns_per_layer(cvd_isa isa, int C)
{
#ifdef CHAIN_X86
    const int W = isa == CVD_ISA_AVX512 ? 16 : 8;
    float (*run)(const float *, int, int, long) = isa == CVD_ISA_AVX512 ? chain_avx512
                                                  : isa == CVD_ISA_AVX2 ? chain_avx2
                                                                        : NULL;
    if (run == NULL || isa > cvd_isa_detect() || C < 1 || C > CHAIN_MAXV * W)
        return 0.0;
    const size_t S = (size_t)((C + W - 1) / W) * W, n = 2 * CHAIN_LAYERS * (size_t)C * S;
    float *wts = aligned_alloc(64, (sizeof(float) * n + 63) / 64 * 64);
    if (wts == NULL)
        return 0.0;
    cvd_rng rng;
    cvd_rng_seed(&rng, 11);
    for (size_t i = 0; i < n; i++) /* |W a| stays about 1: tanh neither saturates nor vanishes */
        wts[i] = (float)((cvd_rng_uniform(&rng) - 0.5) * 2.0 / C);
    long frames = 256;
    float sink = 0.0f;
    for (;;) { /* about 20 ms a run */
        double t0 = bench_now();
        sink += run(wts, C, CHAIN_LAYERS, frames);
        double dt = bench_now() - t0;
        if (dt > 0.005 || frames > (1L << 24)) {
            frames = (long)((double)frames * 0.02 / (dt > 1e-6 ? dt : 1e-6)) + 1;
            break;
        }
        frames *= 4;
    }
    double t[5];
    for (int i = 0; i < 5; i++) {
        double t0 = bench_now();
        sink += run(wts, C, CHAIN_LAYERS, frames);
        t[i] = (bench_now() - t0) / ((double)frames * CHAIN_LAYERS);
    }
    free(wts);
    if (sink == 12345.0f) /* keep the result alive */
        printf(" ");
    return bench_median(t, 5) * 1e9;
#else
    (void)isa;
    (void)C;
    return 0.0;
#endif
}

/* The floor of a whole model: its WaveNet's layers laid end to end, each array's rechannel
 * left out (0 if the model is not one non-gated tanh WaveNet or the ISA has no probe). */
static inline double chain_ns_per_frame(const cvd_model *m, cvd_isa isa)
{
    const cvd_wn_config *cfg = NULL;
    for (int i = 0; i < cvd_model_node_count(m) && cfg == NULL; i++)
        if (cvd_model_node_op(m, i) == CVD_NODE_WAVENET)
            cfg = cvd_model_node_wavenet(m, i);
    if (cfg == NULL)
        return 0.0;
    double ns = 0.0;
    for (int a = 0; a < cfg->n_arrays; a++) {
        const cvd_wn_array *A = &cfg->arrays[a];
        for (int l = 0; l < A->n_layers; l++) {
            const cvd_wn_activation *act = &A->layers[l].activation;
            if (A->layers[l].gating != CVD_WN_GATING_NONE || act->kind != CVD_WN_KERAS ||
                act->keras != CVD_ACT_TANH)
                return 0.0;
        }
        double per = chain_ns_per_layer(isa, A->channels);
        if (per <= 0.0)
            return 0.0;
        ns += per * A->n_layers;
    }
    return ns;
}

#endif
