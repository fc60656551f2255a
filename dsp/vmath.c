/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Vectorised tanh and sigmoid, accurate to 4.9e-7 and 2e-7 relative (a few float ulps), many
 * times cheaper than libm's tanhf/expf a value at a time. The same algorithm in each ISA:
 *
 *   tanh(x):         x P(x^2) / Q(x^2), P and Q of degrees 3 and 4 fitted on [0, 8], Q monic
 *                    (scripts/fit_tanh.py 8 3 4: 2.5e-7 relative in exact arithmetic; over
 *                    every float 4.3e-7 measured with FMA, 4.9e-7 without); x^2 clamped to
 *                    64 (tanh(8) is 1 - 2.3e-7) and the result to [-1, 1]. Two Horner chains
 *                    of 3 and a divide: 8 operations on the FMA pipes a vector (the degree 4/4
 *                    fit before took 10, for 2.9e-7), an add, three min/max and the divide.
 *   exp(y), y <= 0:  y = n ln2 + r, |r| <= ln2/2; e^r by its Taylor series to r^7
 *                    (error < 1e-8); 2^n through the exponent bits.
 *   sigmoid(x):      e = exp(-|x|), s = 1 / (1 + e); x >= 0 ? s : e s.
 *
 * The portable path runs it on 4-lane GCC/Clang vectors (vmath_vec.h: SSE2 on x86-64, NEON on
 * aarch64), the others on AVX2 and AVX-512 registers (vmath_x86.h).
 */
#include "vmath.h"

#include <math.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

#include "vmath_vec.h"
#include "vmath_x86.h"
#ifdef CVD_VMATH_X86
#define CVD_X86 1
#endif

/* ---- portable --------------------------------------------------------------------------- */

static inline float exp_neg(float y) /* y in [-87, 0] */
{
    float n = nearbyintf(y * LOG2E);
    float r = y - n * LN2_HI - n * LN2_LO;
    float p = 1.0f / 5040.0f;
    p = p * r + 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    int32_t bits = ((int32_t)n + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

static inline float tanh1(float x)
{
    float s = x * x;
    s = s > TANH_CLAMP * TANH_CLAMP ? TANH_CLAMP * TANH_CLAMP : s;
    float p = ((TP3 * s + TP2) * s + TP1) * s + TP0;
    float q = ((s + TQ3) * s + TQ2) * s + TQ1;
    q = q * s + TQ0;
    float y = x * p / q;
    return y < -1.0f ? -1.0f : y > 1.0f ? 1.0f : y;
}

static inline float sigmoid1(float x)
{
    if (x < -SIG_CLAMP)
        return 0.0f; /* under FLT_MIN */
    float a = fabsf(x);
    if (a > SIG_CLAMP)
        a = SIG_CLAMP;
    float e = exp_neg(-a);
    float s = 1.0f / (1.0f + e);
    return x >= 0.0f ? s : e * s;
}

/* four values at a time on the portable vectors (vmath_vec.h), the tail one at a time */
static void tanh_portable(float *x, size_t n)
{
    size_t i = 0;
    for (; i + 4 <= n; i += 4)
        v4_store(x + i, v4_tanh(v4_load(x + i)));
    for (; i < n; i++)
        x[i] = isnan(x[i]) ? x[i] : tanh1(x[i]);
}

static void sigmoid_portable(float *x, size_t n)
{
    size_t i = 0;
    for (; i + 4 <= n; i += 4)
        v4_store(x + i, v4_sigmoid(v4_load(x + i)));
    for (; i < n; i++)
        x[i] = isnan(x[i]) ? x[i] : sigmoid1(x[i]);
}

/* ---- AVX-512 ---------------------------------------------------------------------------- */

#if CVD_X86

__attribute__((target("avx512f"))) static void tanh_avx512(float *x, size_t n)
{
    size_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(x + i, tanh16(_mm512_loadu_ps(x + i)));
    if (i < n) {
        __mmask16 m = (__mmask16)((1u << (n - i)) - 1);
        _mm512_mask_storeu_ps(x + i, m, tanh16(_mm512_maskz_loadu_ps(m, x + i)));
    }
}

__attribute__((target("avx512f"))) static void sigmoid_avx512(float *x, size_t n)
{
    size_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(x + i, sigmoid16(_mm512_loadu_ps(x + i)));
    if (i < n) {
        __mmask16 m = (__mmask16)((1u << (n - i)) - 1);
        _mm512_mask_storeu_ps(x + i, m, sigmoid16(_mm512_maskz_loadu_ps(m, x + i)));
    }
}

/* The tail of fewer than 8 through the same 8-lane form, masked: a value gives the same bits
 * wherever it falls in a call (the portable form's last bit can differ from this one's), so
 * what a layer computes does not depend on how its frames were split into calls. */
__attribute__((target("avx2,fma"))) static __m256i tail_mask8(size_t r)
{
    static const int32_t lanes[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};
    return _mm256_loadu_si256((const __m256i *)(lanes + 8 - r));
}

__attribute__((target("avx2,fma"))) static void tanh_avx2(float *x, size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(x + i, tanh8(_mm256_loadu_ps(x + i)));
    if (i < n) {
        __m256i m = tail_mask8(n - i);
        _mm256_maskstore_ps(x + i, m, tanh8(_mm256_maskload_ps(x + i, m)));
    }
}

__attribute__((target("avx2,fma"))) static void sigmoid_avx2(float *x, size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(x + i, sigmoid8(_mm256_loadu_ps(x + i)));
    if (i < n) {
        __m256i m = tail_mask8(n - i);
        _mm256_maskstore_ps(x + i, m, sigmoid8(_mm256_maskload_ps(x + i, m)));
    }
}

#endif /* CVD_X86 */

/* One function per ISA for each; [0] portable, [1] AVX2, [2] AVX-512 (cvd_isa's order). */
typedef void (*vfn)(float *, size_t);
#if CVD_X86 && defined(__GNUC__)
static const vfn tanh_fns[3] = {tanh_portable, tanh_avx2, tanh_avx512};
static const vfn sigmoid_fns[3] = {sigmoid_portable, sigmoid_avx2, sigmoid_avx512};
#else
static const vfn tanh_fns[3] = {tanh_portable, tanh_portable, tanh_portable};
static const vfn sigmoid_fns[3] = {sigmoid_portable, sigmoid_portable, sigmoid_portable};
#endif

/* the best this CPU has, found once (threads racing to find it store the same value) */
static int best_isa(void)
{
    static atomic_int isa = -1;
    int v = atomic_load_explicit(&isa, memory_order_relaxed);
    if (v < 0) {
        v = (int)cvd_isa_detect();
        atomic_store_explicit(&isa, v, memory_order_relaxed);
    }
    return v;
}

static int capped(cvd_isa isa)
{
    int best = best_isa();
    return (int)isa < best ? ((int)isa < 0 ? 0 : (int)isa) : best;
}

/* the active ISA (cvd_isa_force() included), as every kernel chooses: a run forced to AVX2
 * or to the portable path uses that path's tanh too */
void cvd_vtanh(float *x, size_t n)
{
    tanh_fns[capped(cvd_isa_active())](x, n);
}

void cvd_vsigmoid(float *x, size_t n)
{
    sigmoid_fns[capped(cvd_isa_active())](x, n);
}

void cvd_vtanh_isa(cvd_isa isa, float *x, size_t n)
{
    tanh_fns[capped(isa)](x, n);
}

void cvd_vsigmoid_isa(cvd_isa isa, float *x, size_t n)
{
    sigmoid_fns[capped(isa)](x, n);
}

float cvd_tanh1(float x)
{
    return isnan(x) ? x : tanh1(x);
}

float cvd_sigmoid1(float x)
{
    return isnan(x) ? x : sigmoid1(x);
}
