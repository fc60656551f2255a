/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The inner loops of the Conv1D family, with explicit SIMD chosen at run time.
 *
 * Layout: frames with their channels contiguous. A tile computes T output frames by 16 (or 8)
 * output channels: for every (tap, input channel) it loads one row of weights and does T
 * independent FMAs against broadcast inputs, so the FMA pipes stay busy and every dilated tap
 * reads a contiguous span of the history.
 *
 * Paths: AVX-512F and AVX2+FMA (any channel count, masked tails), and portable C on GCC/Clang
 * 4-lane vectors (no intrinsics: SSE2 on x86-64, NEON on aarch64), which is always correct and is
 * what the others are tested against.
 */
#include "conv_internal.h"
#include "simd.h"
#include "vmath_vec.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#define CVD_X86 1
#include <immintrin.h>
#endif

/* ---- ISA selection ---------------------------------------------------------------------- */

static int isa_forced = -1;

cvd_isa cvd_isa_detect(void)
{
#if CVD_X86 && defined(__GNUC__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f"))
        return CVD_ISA_AVX512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        return CVD_ISA_AVX2;
#endif
    return CVD_ISA_PORTABLE;
}

/* called in process() too (the activations choose their path per call): the CPU's best is
 * found once (threads racing to find it store the same value) */
cvd_isa cvd_isa_active(void)
{
    static atomic_int detected = -1;
    int best = atomic_load_explicit(&detected, memory_order_relaxed);
    if (best < 0) {
        best = (int)cvd_isa_detect();
        atomic_store_explicit(&detected, best, memory_order_relaxed);
    }
    if (isa_forced >= 0 && isa_forced < best)
        return (cvd_isa)isa_forced;
    return (cvd_isa)best;
}

int cvd_isa_force(const char *name)
{
    if (name == NULL || strcmp(name, "auto") == 0)
        isa_forced = -1;
    else if (strcmp(name, "portable") == 0)
        isa_forced = CVD_ISA_PORTABLE;
    else if (strcmp(name, "avx2") == 0)
        isa_forced = CVD_ISA_AVX2;
    else if (strcmp(name, "avx512") == 0)
        isa_forced = CVD_ISA_AVX512;
    else
        return CVD_EINVAL;
    return CVD_OK;
}

const char *cvd_isa_name(cvd_isa isa)
{
    switch (isa) {
    case CVD_ISA_AVX512:
        return "avx512";
    case CVD_ISA_AVX2:
        return "avx2";
    default:
        return "portable";
    }
}

/* ---- portable --------------------------------------------------------------------------- */

/* y[t][f] = sum_j sum_c x[t*xs + j*ts][c] W[j][c][f], for a dense (ungrouped) weight block:
 * the shared shape of Conv1D (G = 1), the separable pointwise stage and the 1x1 convs.
 * On 4-lane GCC/Clang vectors (SSE2 on x86-64, NEON on aarch64): tiles of T frames by NV
 * vectors of output channels, each weight vector loaded once for T frames; the channels past
 * the last multiple of 4 one at a time. */
__attribute__((always_inline)) static inline void gemm_v4_tile(const float *x, size_t xs, size_t ts,
                                                               int k, int C, const float *W, int F,
                                                               int f, const int T, const int NV,
                                                               float *y, size_t ys)
{
    cvd_v4f acc[4][2];
#pragma GCC unroll 4
    for (int u = 0; u < T; u++)
#pragma GCC unroll 2
        for (int v = 0; v < NV; v++)
            acc[u][v] = v4_set1(0.0f);
    for (int j = 0; j < k; j++) {
        const float *xr = x + (size_t)j * ts;
        const float *Wj = W + (size_t)j * C * F + f;
        for (int c = 0; c < C; c++) {
            cvd_v4f w[2];
#pragma GCC unroll 2
            for (int v = 0; v < NV; v++)
                w[v] = v4_load(Wj + (size_t)c * F + 4 * v);
#pragma GCC unroll 4
            for (int u = 0; u < T; u++) {
                const cvd_v4f b = v4_set1(xr[(size_t)u * xs + c]);
#pragma GCC unroll 2
                for (int v = 0; v < NV; v++)
                    acc[u][v] = acc[u][v] + b * w[v];
            }
        }
    }
#pragma GCC unroll 4
    for (int u = 0; u < T; u++)
#pragma GCC unroll 2
        for (int v = 0; v < NV; v++)
            v4_store(y + (size_t)u * ys + f + 4 * v, acc[u][v]);
}

void cvd_gemm_portable(const float *x, size_t xs, size_t ts, int k, int C, const float *W, int F,
                       int m, float *y, size_t ys)
{
    int f = 0;
    for (; f + 8 <= F; f += 8) {
        int t = 0;
        for (; t + 4 <= m; t += 4)
            gemm_v4_tile(x + (size_t)t * xs, xs, ts, k, C, W, F, f, 4, 2, y + (size_t)t * ys, ys);
        for (; t < m; t++)
            gemm_v4_tile(x + (size_t)t * xs, xs, ts, k, C, W, F, f, 1, 2, y + (size_t)t * ys, ys);
    }
    for (; f + 4 <= F; f += 4) {
        int t = 0;
        for (; t + 4 <= m; t += 4)
            gemm_v4_tile(x + (size_t)t * xs, xs, ts, k, C, W, F, f, 4, 1, y + (size_t)t * ys, ys);
        for (; t < m; t++)
            gemm_v4_tile(x + (size_t)t * xs, xs, ts, k, C, W, F, f, 1, 1, y + (size_t)t * ys, ys);
    }
    if (f == F)
        return;
    for (int t = 0; t < m; t++) { /* the last F % 4 channels */
        float *yt = y + (size_t)t * ys;
        for (int g = f; g < F; g++)
            yt[g] = 0.0f;
        for (int j = 0; j < k; j++) {
            const float *xr = x + (size_t)t * xs + (size_t)j * ts;
            const float *Wj = W + (size_t)j * C * F;
            for (int c = 0; c < C; c++) {
                const float xv = xr[c];
                const float *w = Wj + (size_t)c * F;
                for (int g = f; g < F; g++)
                    yt[g] += xv * w[g];
            }
        }
    }
}

static void conv_grouped_portable(const cvd_layer *L, const float *x, int m, float *y)
{
    const int C = L->C, Fc = L->Fc, G = L->G, Cg = C / G, Fg = Fc / G, k = L->k;
    const size_t xs = (size_t)L->s * C, ts = (size_t)L->d * C;
    const float *K = L->wpack;

    for (int t = 0; t < m; t++) {
        float *yt = y + (size_t)t * Fc;
        memset(yt, 0, (size_t)Fc * sizeof(float));
        for (int j = 0; j < k; j++) {
            const float *xr = x + (size_t)t * xs + (size_t)j * ts;
            const float *Kj = K + (size_t)j * Cg * Fc;
            for (int g = 0; g < G; g++) {
                float *yg = yt + (size_t)g * Fg;
                for (int c = 0; c < Cg; c++) {
                    const float xv = xr[g * Cg + c];
                    const float *w = Kj + (size_t)c * Fc + (size_t)g * Fg;
                    for (int f = 0; f < Fg; f++)
                        yg[f] += xv * w[f];
                }
            }
        }
    }
}

static void conv_dense_portable(const cvd_layer *L, const float *x, int m, float *y)
{
    cvd_gemm_portable(x, (size_t)L->s * L->C, (size_t)L->d * L->C, L->k, L->C, L->wpack, L->Fc, m,
                      y, (size_t)L->Fc);
}

/* ---- x86 SIMD --------------------------------------------------------------------------- */

#if CVD_X86 && defined(__GNUC__)

/* EPI: what is done to a vector of sums before its store (GEMM_PLAIN: nothing; the Conv1D
 * path's conv_epilogue adds the bias and applies relu) */
#define GEMM_TILE_AVX512(T, EPI)                                                                   \
    do {                                                                                           \
        __m512 acc[T];                                                                             \
        _Pragma("GCC unroll 8") for (int u = 0; u < (T); u++) acc[u] = _mm512_setzero_ps();        \
        for (int j = 0; j < k; j++) {                                                              \
            const float *xr = x + (size_t)t * xs + (size_t)j * ts;                                 \
            const float *w = W + (size_t)j * C * F + f;                                            \
            for (int c = 0; c < C; c++) {                                                          \
                __m512 wv = _mm512_maskz_loadu_ps(mask, w + (size_t)c * F);                        \
                _Pragma("GCC unroll 8") for (int u = 0; u < (T); u++) acc[u] =                     \
                    _mm512_fmadd_ps(_mm512_set1_ps(xr[(size_t)u * xs + c]), wv, acc[u]);           \
            }                                                                                      \
        }                                                                                          \
        _Pragma("GCC unroll 8") for (int u = 0; u < (T); u++)                                      \
            _mm512_mask_storeu_ps(y + (size_t)(t + u) * ys + f, mask, EPI(acc[u]));                \
    } while (0)
#define GEMM_PLAIN(v) (v)
/* every group of 16 output channels (the last masked), the frames in tiles of 8, 4 and 1 */
#define GEMM_ROWS_AVX512(EPI)                                                                      \
    for (int f = 0; f < F; f += 16) {                                                              \
        const __mmask16 mask = F - f >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (F - f)) - 1); \
        int t = 0;                                                                                 \
        for (; t + 8 <= m; t += 8)                                                                 \
            GEMM_TILE_AVX512(8, EPI);                                                              \
        for (; t + 4 <= m; t += 4)                                                                 \
            GEMM_TILE_AVX512(4, EPI);                                                              \
        for (; t < m; t++)                                                                         \
            GEMM_TILE_AVX512(1, EPI);                                                              \
    }

__attribute__((target("avx512f"))) void cvd_gemm_avx512(const float *x, size_t xs, size_t ts, int k,
                                                        int C, const float *W, int F, int m,
                                                        float *y, size_t ys)
{
    GEMM_ROWS_AVX512(GEMM_PLAIN)
}

/* LD and ST: full-width, or masked to the last F % 8 channels (masked loads and stores touch
 * nothing past the mask); the same FMA chain a lane either way */
#define GEMM_TILE_AVX2(T, LD, ST)                                                                  \
    do {                                                                                           \
        __m256 acc[T];                                                                             \
        _Pragma("GCC unroll 8") for (int u = 0; u < (T); u++) acc[u] = _mm256_setzero_ps();        \
        for (int j = 0; j < k; j++) {                                                              \
            const float *xr = x + (size_t)t * xs + (size_t)j * ts;                                 \
            const float *w = W + (size_t)j * C * F + f;                                            \
            for (int c = 0; c < C; c++) {                                                          \
                __m256 wv = LD(w + (size_t)c * F);                                                 \
                _Pragma("GCC unroll 8") for (int u = 0; u < (T); u++) acc[u] =                     \
                    _mm256_fmadd_ps(_mm256_broadcast_ss(&xr[(size_t)u * xs + c]), wv, acc[u]);     \
            }                                                                                      \
        }                                                                                          \
        _Pragma("GCC unroll 8") for (int u = 0; u < (T); u++)                                      \
            ST(y + (size_t)(t + u) * ys + f, acc[u]);                                              \
    } while (0)
#define AVX2_LD(p) _mm256_loadu_ps(p)
#define AVX2_ST(p, v) _mm256_storeu_ps(p, v)
#define AVX2_MLD(p) _mm256_maskload_ps(p, mask)
#define AVX2_MST(p, v) _mm256_maskstore_ps(p, mask, v)
/* the m frames of one group of output channels, in tiles of 8, 4 and 1 */
#define GEMM_FRAMES_AVX2(LD, ST)                                                                   \
    do {                                                                                           \
        int t = 0;                                                                                 \
        for (; t + 8 <= m; t += 8)                                                                 \
            GEMM_TILE_AVX2(8, LD, ST);                                                             \
        for (; t + 4 <= m; t += 4)                                                                 \
            GEMM_TILE_AVX2(4, LD, ST);                                                             \
        for (; t < m; t++)                                                                         \
            GEMM_TILE_AVX2(1, LD, ST);                                                             \
    } while (0)

/* Any F: eight output channels a ymm, the last F % 8 masked. Each lane's sum is the same FMA
 * chain as cvd_gemm_avx512's (from 0, taps then input channels in order), so the two give the
 * same bits. */
__attribute__((target("avx2,fma"))) void cvd_gemm_avx2(const float *x, size_t xs, size_t ts, int k,
                                                       int C, const float *W, int F, int m,
                                                       float *y, size_t ys)
{
    int f = 0;
    for (; f + 8 <= F; f += 8)
        GEMM_FRAMES_AVX2(AVX2_LD, AVX2_ST);
    if (f < F) {
        const __m256i mask =
            _mm256_cmpgt_epi32(_mm256_set1_epi32(F - f), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
        GEMM_FRAMES_AVX2(AVX2_MLD, AVX2_MST);
    }
}

/* One output frame, up to four 16-channel groups at a time: cvd_gemm_avx512's one-frame tile
 * runs one chain of k*C multiply-adds per group after the other, latency-bound at small blocks
 * (block 1: a frame a call); here the groups' chains run side by side, each output's terms in
 * the same order (the same sums, the last group masked as there). */
#define FRAME_GROUPS_AVX512(NG)                                                                    \
    do {                                                                                           \
        __m512 acc[NG];                                                                            \
        __mmask16 mk[NG];                                                                          \
        _Pragma("GCC unroll 4") for (int u = 0; u < (NG); u++)                                     \
        {                                                                                          \
            const int fu = f + 16 * u;                                                             \
            mk[u] = F - fu >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (F - fu)) - 1);          \
            acc[u] = _mm512_setzero_ps();                                                          \
        }                                                                                          \
        for (int j = 0; j < k; j++) {                                                              \
            const float *xr = x + (size_t)j * ts;                                                  \
            const float *w = W + (size_t)j * C * F + f;                                            \
            for (int c = 0; c < C; c++, w += F) {                                                  \
                const __m512 xv = _mm512_set1_ps(xr[c]);                                           \
                _Pragma("GCC unroll 4") for (int u = 0; u < (NG); u++) acc[u] =                    \
                    _mm512_fmadd_ps(xv, _mm512_maskz_loadu_ps(mk[u], w + 16 * u), acc[u]);         \
            }                                                                                      \
        }                                                                                          \
        _Pragma("GCC unroll 4") for (int u = 0; u < (NG); u++) _mm512_mask_storeu_ps(              \
            y + f + 16 * u, mk[u], conv_epilogue(acc[u], bias, f + 16 * u, mk[u], relu));          \
    } while (0)

/* A Conv1D's bias and relu on a vector of sums before it is stored (finish_frames' pass
 * otherwise): sum + b, then max(v, 0), which is v > 0 ? v : 0 for NaN and -0 too; the same
 * operations on the same values as that pass */
__attribute__((target("avx512f"))) static inline __m512 conv_epilogue(__m512 v, const float *bias,
                                                                      int f, __mmask16 mk, int relu)
{
    if (bias != NULL)
        v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(mk, bias + f));
    if (relu)
        v = _mm512_max_ps(v, _mm512_setzero_ps());
    return v;
}

__attribute__((target("avx512f"))) static void gemm_frame_avx512(const float *x, size_t ts, int k,
                                                                 int C, const float *W, int F,
                                                                 float *y, const float *bias,
                                                                 int relu)
{
    int f = 0;
    for (; F - f > 48; f += 64)
        FRAME_GROUPS_AVX512(4);
    if (F - f > 32)
        FRAME_GROUPS_AVX512(3);
    else if (F - f > 16)
        FRAME_GROUPS_AVX512(2);
    else if (F - f > 0)
        FRAME_GROUPS_AVX512(1);
}

/* cvd_gemm_avx512's tiles (the same sums) with the bias and relu applied before the store */
#define CONV_EPI512(v) conv_epilogue(v, bias, f, mask, relu)
__attribute__((target("avx512f"))) static void
conv_gemm_avx512(const float *x, size_t xs, size_t ts, int k, int C, const float *W, int F, int m,
                 float *y, const float *bias, int relu)
{
    const size_t ys = (size_t)F;
    GEMM_ROWS_AVX512(CONV_EPI512)
}

static void conv_dense_avx512(const cvd_layer *L, const float *x, int m, float *y)
{
    const size_t xs = (size_t)L->s * L->C, ts = (size_t)L->d * L->C;
    /* the bias (and relu) here when finish_frames leaves them to the kernel */
    const float *bias = L->kernel_bias ? L->var[L->bias_var] : NULL;
    const int relu = L->kernel_bias && L->cfg.activation == CVD_ACT_RELU;
    if (m < 4 && L->Fc > 16) {
        /* fewer frames than the 4-frame tile and several channel groups: their chains at once */
        for (int t = 0; t < m; t++)
            gemm_frame_avx512(x + (size_t)t * xs, ts, L->k, L->C, L->wpack, L->Fc,
                              y + (size_t)t * L->Fc, bias, relu);
        return;
    }
    if (L->kernel_bias) {
        conv_gemm_avx512(x, xs, ts, L->k, L->C, L->wpack, L->Fc, m, y, bias, relu);
        return;
    }
    cvd_gemm_avx512(x, (size_t)L->s * L->C, (size_t)L->d * L->C, L->k, L->C, L->wpack, L->Fc, m, y,
                    (size_t)L->Fc);
}

/* The same on AVX2: up to four 8-channel groups' chains side by side (F a multiple of 8; other
 * counts through cvd_gemm_avx2, whose tail is masked) */
#define FRAME_GROUPS_AVX2(NG)                                                                      \
    do {                                                                                           \
        __m256 acc[NG];                                                                            \
        _Pragma("GCC unroll 4") for (int u = 0; u < (NG); u++) acc[u] = _mm256_setzero_ps();       \
        for (int j = 0; j < k; j++) {                                                              \
            const float *xr = x + (size_t)j * ts;                                                  \
            const float *w = W + (size_t)j * C * F + f;                                            \
            for (int c = 0; c < C; c++, w += F) {                                                  \
                const __m256 xv = _mm256_broadcast_ss(&xr[c]);                                     \
                _Pragma("GCC unroll 4") for (int u = 0; u < (NG); u++) acc[u] =                    \
                    _mm256_fmadd_ps(xv, _mm256_loadu_ps(w + 8 * u), acc[u]);                       \
            }                                                                                      \
        }                                                                                          \
        _Pragma("GCC unroll 4") for (int u = 0; u < (NG); u++)                                     \
            _mm256_storeu_ps(y + f + 8 * u, conv_epilogue8(acc[u], bias, f + 8 * u, relu));        \
    } while (0)

/* conv_epilogue's AVX2 form: + b, then max(v, 0) */
__attribute__((target("avx2,fma"))) static inline __m256 conv_epilogue8(__m256 v, const float *bias,
                                                                        int f, int relu)
{
    if (bias != NULL)
        v = _mm256_add_ps(v, _mm256_loadu_ps(bias + f));
    if (relu)
        v = _mm256_max_ps(v, _mm256_setzero_ps());
    return v;
}

/* cvd_gemm_avx2's tiles (the same sums) with the bias and relu before the store; F a multiple
 * of 8 */
#define CONV_ST8(p, v) _mm256_storeu_ps(p, conv_epilogue8(v, bias, f, relu))
__attribute__((target("avx2,fma"))) static void conv_gemm_avx2(const float *x, size_t xs, size_t ts,
                                                               int k, int C, const float *W, int F,
                                                               int m, float *y, const float *bias,
                                                               int relu)
{
    const size_t ys = (size_t)F;
    for (int f = 0; f < F; f += 8)
        GEMM_FRAMES_AVX2(AVX2_LD, CONV_ST8);
}

__attribute__((target("avx2,fma"))) static void gemm_frame_avx2(const float *x, size_t ts, int k,
                                                                int C, const float *W, int F,
                                                                float *y, const float *bias,
                                                                int relu)
{
    int f = 0;
    for (; F - f >= 32; f += 32)
        FRAME_GROUPS_AVX2(4);
    if (F - f == 24)
        FRAME_GROUPS_AVX2(3);
    else if (F - f == 16)
        FRAME_GROUPS_AVX2(2);
    else if (F - f == 8)
        FRAME_GROUPS_AVX2(1);
}

static void conv_dense_avx2(const cvd_layer *L, const float *x, int m, float *y)
{
    const size_t xs = (size_t)L->s * L->C, ts = (size_t)L->d * L->C;
    const float *bias = L->kernel_bias ? L->var[L->bias_var] : NULL;
    const int relu = L->kernel_bias && L->cfg.activation == CVD_ACT_RELU;
    if (m < 4 && L->Fc > 8 && L->Fc % 8 == 0) {
        for (int t = 0; t < m; t++)
            gemm_frame_avx2(x + (size_t)t * xs, ts, L->k, L->C, L->wpack, L->Fc,
                            y + (size_t)t * L->Fc, bias, relu);
        return;
    }
    if (L->kernel_bias) {
        conv_gemm_avx2(x, xs, ts, L->k, L->C, L->wpack, L->Fc, m, y, bias, relu);
        return;
    }
    cvd_gemm_avx2(x, (size_t)L->s * L->C, (size_t)L->d * L->C, L->k, L->C, L->wpack, L->Fc, m, y,
                  (size_t)L->Fc);
}

#endif /* CVD_X86 */

cvd_gemm_fn cvd_gemm_select(cvd_isa isa, int F)
{
#if CVD_X86 && defined(__GNUC__)
    /* 8 output channels fill a ymm; a zmm would run half empty */
    if (isa >= CVD_ISA_AVX2 && F % 16 != 0 && F % 8 == 0)
        return cvd_gemm_avx2;
    if (isa >= CVD_ISA_AVX512)
        return cvd_gemm_avx512;
    if (isa >= CVD_ISA_AVX2)
        return cvd_gemm_avx2;
#else
    (void)isa;
    (void)F;
#endif
    return cvd_gemm_portable;
}

/* ---- layer entry points ----------------------------------------------------------------- */

int cvd_kernels_init(cvd_layer *L)
{
    cvd_isa isa = cvd_isa_active();

    L->conv_fn = L->G == 1 ? conv_dense_portable : conv_grouped_portable;
#if CVD_X86 && defined(__GNUC__)
    if (L->G == 1 && L->kind != CVD_CONV1D_TRANSPOSE) {
        if (isa >= CVD_ISA_AVX512) {
            L->conv_fn = conv_dense_avx512;
            /* a Conv1D or Dense with a bias on the direct path: its bias (and relu) in the
             * kernel's registers instead of a pass over the output */
            L->kernel_bias = L->kind != CVD_SEPARABLE_CONV1D && L->fft == NULL && L->bias_var >= 0;
        } else if (isa >= CVD_ISA_AVX2) {
            L->conv_fn = conv_dense_avx2;
            L->kernel_bias = L->kind != CVD_SEPARABLE_CONV1D && L->fft == NULL &&
                             L->bias_var >= 0 && L->Fc % 8 == 0;
        }
    }
#endif
    L->pw_fn = cvd_gemm_select(isa, L->F);
    return CVD_OK;
}

void cvd_kernel_conv(const cvd_layer *L, const float *x, int m, float *y)
{
    L->conv_fn(L, x, m, y);
}

void cvd_kernel_pointwise(const cvd_layer *L, const float *x, int m, float *y)
{
    L->pw_fn(x, (size_t)L->Fc, 0, 1, L->Fc, L->var[1], L->F, m, y, (size_t)L->F);
}

void cvd_kernel_transpose(const cvd_layer *L, long p0, int m, float *y)
{
    const int C = L->C, F = L->F, k = L->k, d = L->d, s = L->s;
    const float *K = L->wpack; /* [j][c][f] */

    for (int t = 0; t < m; t++) {
        const long p = p0 + t;
        float *yt = y + (size_t)t * F;
        memset(yt, 0, (size_t)F * sizeof(float));
        for (int j = 0; j < k; j++) {
            const long q = p - (long)j * d;
            if (q < 0 || q % s != 0)
                continue;
            const long i = q / s;
            if (i >= L->nin || i < L->pos0) /* past the input: zeros (the flush) */
                continue;
            const float *xr = L->hist + (size_t)(i - L->pos0) * C;
            const float *Kj = K + (size_t)j * C * F;
            for (int c = 0; c < C; c++) {
                const float xv = xr[c];
                const float *w = Kj + (size_t)c * F;
                for (int f = 0; f < F; f++)
                    yt[f] += xv * w[f];
            }
        }
    }
}
