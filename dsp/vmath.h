/* SPDX-License-Identifier: Apache-2.0 */
/* Private to dsp/: vectorised transcendental functions (see vmath.c for accuracy). */
#ifndef CONVD_VMATH_H
#define CONVD_VMATH_H

#include <stddef.h>

#include "convd_dsp.h"

/* In place, n values; under 5e-7 (tanh) and 2e-7 (sigmoid) relative error; NaN stays NaN.
 * Real-time safe. On the active instruction set (cvd_isa_active(): cvd_isa_force() applies,
 * as to the kernels); the _isa forms take the instruction set to use (capped at what the CPU
 * has), for tests of each path. */
void cvd_vtanh(float *x, size_t n);
void cvd_vsigmoid(float *x, size_t n);
void cvd_vtanh_isa(cvd_isa isa, float *x, size_t n);
void cvd_vsigmoid_isa(cvd_isa isa, float *x, size_t n);
/* The same algorithms, one value (for tests and scalar tails). */
float cvd_tanh1(float x);
float cvd_sigmoid1(float x);

#endif
