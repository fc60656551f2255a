/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The vectorised tanh and sigmoid (dsp/vmath.c) against libm in double precision, on every
 * instruction set this CPU has: a dense sweep of [-20, 20], tiny and huge magnitudes, and the
 * special values (signed zeros, infinities, NaN). Lengths that are not multiples of the vector
 * width check the scalar tails.
 */
#include <criterion/criterion.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "convd_dsp.h"
#include "vmath.h"

/* the bound is 1e-6; measured here 4.3e-7 on every path (AVX-512, AVX2, aarch64 under
 * qemu), and over every float 4.3e-7 (4.9e-7 on x86's portable path, which has no FMA) */
#define TANH_TOL 6e-7
#define SIGMOID_TOL 3e-7 /* measured 1.9e-7 */

static float *sweep(size_t *n_out)
{
    const size_t dense = 400001, small = 64 * 50;
    float *x = malloc(sizeof(float) * (dense + small + 8));
    cr_assert_not_null(x);
    size_t n = 0;
    for (size_t i = 0; i < dense; i++)
        x[n++] = -20.0f + 40.0f * (float)i / (float)(dense - 1);
    for (int e = 0; e < 64; e++) /* 2^-63 .. 2^0, both signs, 25 mantissas each */
        for (int m = 0; m < 25; m++) {
            float v = ldexpf(1.0f + (float)m / 25.0f, -e);
            x[n++] = v;
            x[n++] = -v;
        }
    x[n++] = 1e30f;
    x[n++] = -1e30f;
    x[n++] = 88.5f;
    x[n++] = -88.5f;
    x[n++] = 9.0f;
    x[n++] = -9.0f;
    x[n++] = 8.99999f;
    *n_out = n; /* deliberately not a multiple of 8 or 16 */
    return x;
}

/* relative error; below FLT_MIN (sigmoid's far left tail) the absolute error, in units of
 * FLT_MIN, so a flush to zero there counts as at most 1 */
static double rel(double got, double want)
{
    if (fabs(want) < FLT_MIN)
        return fabs(got - want) / FLT_MIN * 1e-7;
    return fabs(got - want) / fabs(want);
}

static void check(int sigmoid, cvd_isa isa, double tol)
{
    size_t n;
    float *x = sweep(&n);
    float *y = malloc(sizeof(float) * n);
    cr_assert_not_null(y);
    memcpy(y, x, sizeof(float) * n);
    if (sigmoid)
        cvd_vsigmoid_isa(isa, y, n);
    else
        cvd_vtanh_isa(isa, y, n);
    double worst = 0.0;
    float at = 0.0f;
    for (size_t i = 0; i < n; i++) {
        double want = sigmoid ? 1.0 / (1.0 + exp(-(double)x[i])) : tanh((double)x[i]);
        double e = rel(y[i], want);
        if (e > worst) {
            worst = e;
            at = x[i];
        }
        cr_assert(y[i] >= (sigmoid ? 0.0f : -1.0f) && y[i] <= 1.0f,
                  "isa %d: %s(%.9g) = %.9g is out of range", (int)isa, sigmoid ? "sigmoid" : "tanh",
                  x[i], y[i]);
    }
    cr_log_info("isa %d %s: max relative error %.3g at %.9g", (int)isa,
                sigmoid ? "sigmoid" : "tanh", worst, at);
    cr_assert(worst <= tol, "isa %d: %s: max relative error %.3g at x = %.9g (limit %.1g)",
              (int)isa, sigmoid ? "sigmoid" : "tanh", worst, at, tol);
    free(x);
    free(y);
}

static void specials(cvd_isa isa)
{
    float v[19] = {0.0f, -0.0f, INFINITY, -INFINITY, NAN, 1.0f, -1.0f};
    for (int i = 7; i < 19; i++)
        v[i] = (float)(i - 12) * 0.5f;
    float t[19], s[19];
    memcpy(t, v, sizeof v);
    memcpy(s, v, sizeof v);
    cvd_vtanh_isa(isa, t, 19);
    cvd_vsigmoid_isa(isa, s, 19);
    cr_expect(t[0] == 0.0f && !signbit(t[0]), "isa %d: tanh(+0) = %g", (int)isa, t[0]);
    cr_expect(t[1] == 0.0f && signbit(t[1]), "isa %d: tanh(-0) = %g", (int)isa, t[1]);
    cr_expect(t[2] == 1.0f && t[3] == -1.0f, "isa %d: tanh(+-inf) = %g %g", (int)isa, t[2], t[3]);
    cr_expect(isnan(t[4]) && isnan(s[4]), "isa %d: NaN in, %g %g out", (int)isa, t[4], s[4]);
    cr_expect(s[0] == 0.5f && s[1] == 0.5f, "isa %d: sigmoid(+-0) = %g %g", (int)isa, s[0], s[1]);
    cr_expect(s[2] == 1.0f && s[3] == 0.0f, "isa %d: sigmoid(+-inf) = %g %g", (int)isa, s[2], s[3]);
    for (int i = 5; i < 19; i++) {
        cr_expect(rel(t[i], tanh((double)v[i])) <= TANH_TOL, "isa %d: tanh(%g) = %.9g", (int)isa,
                  v[i], t[i]);
        cr_expect(t[i] == -cvd_tanh1(-v[i]) || isa != CVD_ISA_PORTABLE,
                  "portable tanh is not odd at %g", v[i]);
    }
}

static void each_isa(void (*fn)(cvd_isa))
{
    for (int isa = CVD_ISA_PORTABLE; isa <= (int)cvd_isa_detect(); isa++)
        fn((cvd_isa)isa);
}

static void tanh_isa(cvd_isa isa)
{
    check(0, isa, TANH_TOL);
}
static void sigmoid_isa(cvd_isa isa)
{
    check(1, isa, SIGMOID_TOL);
}

Test(vmath, tanh_accuracy_every_isa)
{
    each_isa(tanh_isa);
}
Test(vmath, sigmoid_accuracy_every_isa)
{
    each_isa(sigmoid_isa);
}
Test(vmath, special_values_every_isa)
{
    each_isa(specials);
}

/* A value gives the same bits wherever it falls in a call (in a full vector, in the tail, or
 * alone), so a layer's output does not depend on how its frames were split into calls. */
static void position_free(cvd_isa isa)
{
    enum { N = 37 };
    float x[N], whole[2][N], one[2][N];
    for (int i = 0; i < N; i++)
        x[i] = (float)((i * 7919 % 101) - 50) * (i % 2 ? 0.173f : 0.0113f);
    for (int f = 0; f < 2; f++) {
        memcpy(whole[f], x, sizeof x);
        (f ? cvd_vsigmoid_isa : cvd_vtanh_isa)(isa, whole[f], N);
        for (int i = 0; i < N; i++) {
            one[f][i] = x[i];
            (f ? cvd_vsigmoid_isa : cvd_vtanh_isa)(isa, &one[f][i], 1);
        }
        for (int i = 0; i < N; i++)
            cr_expect(memcmp(&whole[f][i], &one[f][i], sizeof(float)) == 0,
                      "isa %d: %s(%.9g) = %.9g in a call of %d, %.9g alone", (int)isa,
                      f ? "sigmoid" : "tanh", x[i], whole[f][i], N, one[f][i]);
    }
}

Test(vmath, a_value_gives_the_same_bits_wherever_it_falls_in_a_call)
{
    each_isa(position_free);
}

Test(vmath, scalar_matches_portable_vector)
{
    float x[37], y[37];
    for (int i = 0; i < 37; i++)
        x[i] = y[i] = (float)(i - 18) * 0.37f;
    cvd_vtanh_isa(CVD_ISA_PORTABLE, y, 37);
    for (int i = 0; i < 37; i++)
        cr_assert(y[i] == cvd_tanh1(x[i]), "cvd_tanh1(%g) = %.9g, the portable vector gives %.9g",
                  x[i], cvd_tanh1(x[i]), y[i]);
}

/* cvd_isa_force() applies to the activations as to the kernels: a run forced to a path uses
 * that path's tanh and sigmoid (Keras layers apply them through cvd_activation_apply). The
 * portable path has no FMA on x86-64, so its last bits differ from the others' for some
 * values: forcing it must show. */
Test(vmath, a_forced_isa_applies_to_the_activations)
{
    enum { N = 4096 };
    float *x = malloc(sizeof(float) * N), *got = malloc(sizeof(float) * N),
          *want = malloc(sizeof(float) * N);
    cr_assert(x && got && want);
    for (int i = 0; i < N; i++)
        x[i] = (float)((i * 7919 % 4001) - 2000) * 0.00271f;
    for (int isa = CVD_ISA_PORTABLE; isa <= (int)cvd_isa_detect(); isa++) {
        cr_assert_eq(cvd_isa_force(cvd_isa_name((cvd_isa)isa)), 0);
        for (int f = 0; f < 2; f++) {
            const cvd_activation act = f ? CVD_ACT_SIGMOID : CVD_ACT_TANH;
            memcpy(got, x, sizeof(float) * N);
            memcpy(want, x, sizeof(float) * N);
            cvd_activation_apply(act, got, N);
            (f ? cvd_vsigmoid_isa : cvd_vtanh_isa)((cvd_isa)isa, want, N);
            cr_expect(memcmp(got, want, sizeof(float) * N) == 0,
                      "forced to %s, %s does not give that path's bits", cvd_isa_name((cvd_isa)isa),
                      f ? "sigmoid" : "tanh");
        }
    }
    cvd_isa_force("auto");
    free(x);
    free(got);
    free(want);
}
