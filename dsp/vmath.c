/*
 * Vectorised tanh and sigmoid, accurate to about 2e-7 relative (a few float ulps), many times
 * cheaper than libm's tanhf/expf a value at a time. The same algorithm in each ISA:
 *
 *   exp(y), y <= 0:  y = n ln2 + r, |r| <= ln2/2; e^r by its Taylor series to r^7
 *                    (error < 1e-8); 2^n through the exponent bits.
 *   tanh(x):         |x| < 0.3125: odd Taylor series to x^11 (error < 1e-8 relative);
 *                    otherwise sign(x) (1 - e) / (1 + e) with e = exp(-2|x|), |x| <= 9.
 *   sigmoid(x):      e = exp(-|x|), s = 1 / (1 + e); x >= 0 ? s : e s.
 */
#include "vmath.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

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
    float a = fabsf(x);
    if (a < TANH_SMALL) {
        float x2 = x * x;
        float p = T11;
        p = p * x2 + T9;
        p = p * x2 + T7;
        p = p * x2 + T5;
        p = p * x2 + T3;
        return x + x * x2 * p;
    }
    if (a > TANH_CLAMP)
        a = TANH_CLAMP;
    float e = exp_neg(-2.0f * a);
    float t = (1.0f - e) / (1.0f + e);
    return x < 0.0f ? -t : t;
}

static inline float sigmoid1(float x)
{
    float a = fabsf(x);
    if (a > SIG_CLAMP)
        a = SIG_CLAMP;
    float e = exp_neg(-a);
    float s = 1.0f / (1.0f + e);
    return x >= 0.0f ? s : e * s;
}

static void tanh_portable(float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        x[i] = isnan(x[i]) ? x[i] : tanh1(x[i]);
}

static void sigmoid_portable(float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
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

__attribute__((target("avx2,fma"))) static void tanh_avx2(float *x, size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(x + i, tanh8(_mm256_loadu_ps(x + i)));
    tanh_portable(x + i, n - i);
}

__attribute__((target("avx2,fma"))) static void sigmoid_avx2(float *x, size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(x + i, sigmoid8(_mm256_loadu_ps(x + i)));
    sigmoid_portable(x + i, n - i);
}

#endif /* CVD_X86 */

void cvd_vtanh(float *x, size_t n)
{
#if CVD_X86 && defined(__GNUC__)
    static int isa = -1;
    if (isa < 0)
        isa = (int)cvd_isa_detect();
    if (isa >= CVD_ISA_AVX512) {
        tanh_avx512(x, n);
        return;
    }
    if (isa >= CVD_ISA_AVX2) {
        tanh_avx2(x, n);
        return;
    }
#endif
    tanh_portable(x, n);
}

void cvd_vsigmoid(float *x, size_t n)
{
#if CVD_X86 && defined(__GNUC__)
    static int isa = -1;
    if (isa < 0)
        isa = (int)cvd_isa_detect();
    if (isa >= CVD_ISA_AVX512) {
        sigmoid_avx512(x, n);
        return;
    }
    if (isa >= CVD_ISA_AVX2) {
        sigmoid_avx2(x, n);
        return;
    }
#endif
    sigmoid_portable(x, n);
}

float cvd_tanh1(float x)
{
    return isnan(x) ? x : tanh1(x);
}

float cvd_sigmoid1(float x)
{
    return isnan(x) ? x : sigmoid1(x);
}
