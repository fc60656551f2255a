/* SPDX-License-Identifier: Apache-2.0 */
/* Private to dsp/: tanh and sigmoid on SIMD registers (see vmath.c for the algorithm).
 * Included by vmath.c and by the kernels that apply activations in registers. */
#ifndef CONVD_VMATH_X86_H
#define CONVD_VMATH_X86_H

/* the constants of the algorithm, shared with the portable path */
#define LOG2E 1.44269504088896341f
#define LN2_HI 0.693359375f
#define LN2_LO (-2.12194440e-4f)
/* tanh(x) = x P(x^2) / Q(x^2), a rational fit of degrees 3 and 4 on [0, 8] with Q monic, so
 * Q's Horner chain starts with an add (scripts/fit_tanh.py 8 3 4: 2.5e-7 relative in exact
 * arithmetic); x^2 is clamped to TANH_CLAMP^2 (tanh(8) is 1 - 2.3e-7) and the result to
 * [-1, 1] */
#define TP0 4.054632913e+06f
#define TP1 5.241584166e+05f
#define TP2 1.197303585e+04f
#define TP3 4.642555856e+01f
#define TQ0 4.054633435e+06f
#define TQ1 1.875698256e+06f
#define TQ2 9.659441228e+04f
#define TQ3 9.688308430e+02f
#define TANH_CLAMP 8.0f
#define SIG_CLAMP 87.0f

#if (defined(__x86_64__) || defined(__i386__)) && defined(__GNUC__)
#include <immintrin.h>

#define CVD_VMATH_X86 1

#define VEXP_BODY(P, SET1, FMA, MUL, SUB, ROUND, CVT, ADDI, SLLI, CAST)                            \
    do {                                                                                           \
        P n = ROUND(MUL(y, SET1(LOG2E)));                                                          \
        P r = FMA(n, SET1(-LN2_LO), FMA(n, SET1(-LN2_HI), y));                                     \
        P p = SET1(1.0f / 5040.0f);                                                                \
        p = FMA(p, r, SET1(1.0f / 720.0f));                                                        \
        p = FMA(p, r, SET1(1.0f / 120.0f));                                                        \
        p = FMA(p, r, SET1(1.0f / 24.0f));                                                         \
        p = FMA(p, r, SET1(1.0f / 6.0f));                                                          \
        p = FMA(p, r, SET1(0.5f));                                                                 \
        p = FMA(p, r, SET1(1.0f));                                                                 \
        p = FMA(p, r, SET1(1.0f));                                                                 \
        out = MUL(p, CAST(SLLI(ADDI(CVT(n)), 23)));                                                \
    } while (0)

__attribute__((target("avx512f"))) static inline __m512 exp_neg16(__m512 y)
{
    __m512 out;
#define R16(v) _mm512_roundscale_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)
#define ADD127_16(v) _mm512_add_epi32(v, _mm512_set1_epi32(127))
    VEXP_BODY(__m512, _mm512_set1_ps, _mm512_fmadd_ps, _mm512_mul_ps, _mm512_sub_ps, R16,
              _mm512_cvtps_epi32, ADD127_16, _mm512_slli_epi32, _mm512_castsi512_ps);
    return out;
}

/* AVX-512F has no float and/or (that is DQ): do them on the integer view */
#define AND16(a, b)                                                                                \
    _mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(a), _mm512_castps_si512(b)))
#define ANDNOT16(a, b)                                                                             \
    _mm512_castsi512_ps(_mm512_andnot_si512(_mm512_castps_si512(a), _mm512_castps_si512(b)))
#define OR16(a, b)                                                                                 \
    _mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(a), _mm512_castps_si512(b)))

__attribute__((target("avx512f"))) static inline __m512 tanh16(__m512 x)
{
    /* x^2 clamped to TANH_CLAMP^2, not x to TANH_CLAMP: one operation fewer, and one
     * fewer in the chain blocks of 1 wait on (min returns its second operand when either
     * is NaN: NaN passes through). Past the clamp |x| P / Q only grows with |x|, and the
     * result is clamped to [-1, 1]. 8 operations on the FMA pipes (two multiplies, six
     * FMAs), an add, a divide and three min/max */
    __m512 s = _mm512_min_ps(_mm512_set1_ps(TANH_CLAMP * TANH_CLAMP), _mm512_mul_ps(x, x));
    __m512 p = _mm512_set1_ps(TP3);
    p = _mm512_fmadd_ps(p, s, _mm512_set1_ps(TP2));
    p = _mm512_fmadd_ps(p, s, _mm512_set1_ps(TP1));
    p = _mm512_fmadd_ps(p, s, _mm512_set1_ps(TP0));
    __m512 q = _mm512_add_ps(s, _mm512_set1_ps(TQ3));
    q = _mm512_fmadd_ps(q, s, _mm512_set1_ps(TQ2));
    q = _mm512_fmadd_ps(q, s, _mm512_set1_ps(TQ1));
    q = _mm512_fmadd_ps(q, s, _mm512_set1_ps(TQ0));
    __m512 y = _mm512_div_ps(_mm512_mul_ps(x, p), q);
    return _mm512_min_ps(_mm512_set1_ps(1.0f), _mm512_max_ps(_mm512_set1_ps(-1.0f), y));
}

__attribute__((target("avx512f"))) static inline __m512 sigmoid16(__m512 x)
{
    const __m512 absmask = _mm512_castsi512_ps(_mm512_set1_epi32(0x7fffffff));
    __m512 a = _mm512_min_ps(AND16(x, absmask), _mm512_set1_ps(SIG_CLAMP));
    __m512 e = exp_neg16(_mm512_sub_ps(_mm512_setzero_ps(), a));
    __m512 s = _mm512_div_ps(_mm512_set1_ps(1.0f), _mm512_add_ps(_mm512_set1_ps(1.0f), e));
    __mmask16 neg = _mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_LT_OQ);
    __m512 y = _mm512_mask_mul_ps(s, neg, e, s);
    /* below -87 the value is under FLT_MIN: zero, not exp(-87) */
    y = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(x, _mm512_set1_ps(-SIG_CLAMP), _CMP_NLT_UQ), y);
    __mmask16 nan = _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q);
    return _mm512_mask_blend_ps(nan, y, x);
}

/* ---- AVX2 ------------------------------------------------------------------------------- */

__attribute__((target("avx2,fma"))) static inline __m256 exp_neg8(__m256 y)
{
    __m256 out;
#define R8(v) _mm256_round_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)
#define ADD127_8(v) _mm256_add_epi32(v, _mm256_set1_epi32(127))
    VEXP_BODY(__m256, _mm256_set1_ps, _mm256_fmadd_ps, _mm256_mul_ps, _mm256_sub_ps, R8,
              _mm256_cvtps_epi32, ADD127_8, _mm256_slli_epi32, _mm256_castsi256_ps);
    return out;
}

__attribute__((target("avx2,fma"))) static inline __m256 tanh8(__m256 x)
{
    /* x^2 clamped as in tanh16 */
    __m256 s = _mm256_min_ps(_mm256_set1_ps(TANH_CLAMP * TANH_CLAMP), _mm256_mul_ps(x, x));
    __m256 p = _mm256_set1_ps(TP3);
    p = _mm256_fmadd_ps(p, s, _mm256_set1_ps(TP2));
    p = _mm256_fmadd_ps(p, s, _mm256_set1_ps(TP1));
    p = _mm256_fmadd_ps(p, s, _mm256_set1_ps(TP0));
    __m256 q = _mm256_add_ps(s, _mm256_set1_ps(TQ3));
    q = _mm256_fmadd_ps(q, s, _mm256_set1_ps(TQ2));
    q = _mm256_fmadd_ps(q, s, _mm256_set1_ps(TQ1));
    q = _mm256_fmadd_ps(q, s, _mm256_set1_ps(TQ0));
    __m256 y = _mm256_div_ps(_mm256_mul_ps(x, p), q);
    return _mm256_min_ps(_mm256_set1_ps(1.0f), _mm256_max_ps(_mm256_set1_ps(-1.0f), y));
}

__attribute__((target("avx2,fma"))) static inline __m256 sigmoid8(__m256 x)
{
    const __m256 absmask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    __m256 a = _mm256_min_ps(_mm256_and_ps(x, absmask), _mm256_set1_ps(SIG_CLAMP));
    __m256 e = exp_neg8(_mm256_sub_ps(_mm256_setzero_ps(), a));
    __m256 s = _mm256_div_ps(_mm256_set1_ps(1.0f), _mm256_add_ps(_mm256_set1_ps(1.0f), e));
    __m256 neg = _mm256_cmp_ps(x, _mm256_setzero_ps(), _CMP_LT_OQ);
    __m256 y = _mm256_blendv_ps(s, _mm256_mul_ps(e, s), neg);
    /* below -87 the value is under FLT_MIN: zero, not exp(-87) */
    y = _mm256_andnot_ps(_mm256_cmp_ps(x, _mm256_set1_ps(-SIG_CLAMP), _CMP_LT_OQ), y);
    __m256 nan = _mm256_cmp_ps(x, x, _CMP_UNORD_Q);
    return _mm256_blendv_ps(y, x, nan);
}

#endif
#endif
