/* SPDX-License-Identifier: Apache-2.0 */
/* Private to dsp/: the portable path's 4-lane vectors (GCC/Clang vector extensions, no
 * intrinsics: SSE2 on x86-64, NEON on aarch64, whatever 16-byte vectors a target has) and
 * tanh and sigmoid on them, the same algorithm as the x86 paths (vmath.c). */
#ifndef CONVD_VMATH_VEC_H
#define CONVD_VMATH_VEC_H

#include <stdint.h>

#include "vmath_x86.h" /* the algorithm's constants (the intrinsics only on x86) */

typedef float cvd_v4f __attribute__((vector_size(16)));
typedef int32_t cvd_v4i __attribute__((vector_size(16)));
/* the same, at any float's address */
typedef float cvd_v4f_u __attribute__((vector_size(16), aligned(4), may_alias));

static inline cvd_v4f v4_load(const float *p)
{
    return *(const cvd_v4f_u *)p;
}

static inline void v4_store(float *p, cvd_v4f v)
{
    *(cvd_v4f_u *)p = v;
}

static inline cvd_v4f v4_set1(float s)
{
    return (cvd_v4f){s, s, s, s};
}

/* m ? a : b, lane by lane (m all ones or all zeros) */
static inline cvd_v4f v4_sel(cvd_v4i m, cvd_v4f a, cvd_v4f b)
{
    return (cvd_v4f)(((cvd_v4i)a & m) | ((cvd_v4i)b & ~m));
}

/* e^y for y in [-87, 0]: y = n ln2 + r, e^r by Taylor to r^7, 2^n through the exponent */
static inline cvd_v4f v4_exp_neg(cvd_v4f y)
{
    /* round to nearest (even) by the 1.5 2^23 trick: |y log2 e| < 2^22 */
    const cvd_v4f magic = v4_set1(12582912.0f);
    cvd_v4f n = (y * LOG2E + magic) - magic;
    cvd_v4f r = (y - n * LN2_HI) - n * LN2_LO;
    cvd_v4f p = v4_set1(1.0f / 5040.0f);
    p = p * r + 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    cvd_v4i bits = (__builtin_convertvector(n, cvd_v4i) + 127) << 23;
    return p * (cvd_v4f)bits;
}

/* tanh: x P(x^2) / Q(x^2), x^2 clamped to TANH_CLAMP^2, the result to [-1, 1]; NaN stays NaN
 * (every comparison with it is false, so no clamp replaces it) */
static inline cvd_v4f v4_tanh(cvd_v4f x)
{
    const cvd_v4f c2 = v4_set1(TANH_CLAMP * TANH_CLAMP);
    cvd_v4f s = x * x;
    s = v4_sel(s > c2, c2, s);
    cvd_v4f p = v4_set1(TP3);
    p = p * s + TP2;
    p = p * s + TP1;
    p = p * s + TP0;
    cvd_v4f q = s + TQ3;
    q = q * s + TQ2;
    q = q * s + TQ1;
    q = q * s + TQ0;
    cvd_v4f y = x * p / q;
    const cvd_v4f one = v4_set1(1.0f), mone = v4_set1(-1.0f);
    y = v4_sel(y < mone, mone, y);
    return v4_sel(y > one, one, y);
}

/* sigmoid: e = exp(-|x|), s = 1 / (1 + e), x >= 0 ? s : e s; 0 below -SIG_CLAMP */
static inline cvd_v4f v4_sigmoid(cvd_v4f x)
{
    const cvd_v4f clamp = v4_set1(SIG_CLAMP);
    cvd_v4f a = (cvd_v4f)((cvd_v4i)x & 0x7fffffff);
    a = v4_sel(a > clamp, clamp, a);
    cvd_v4f e = v4_exp_neg(-a);
    cvd_v4f s = 1.0f / (1.0f + e);
    cvd_v4f y = v4_sel(x >= 0.0f, s, e * s);
    return v4_sel(x < -SIG_CLAMP, v4_set1(0.0f), y);
}

#endif
