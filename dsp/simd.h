/* SPDX-License-Identifier: Apache-2.0 */
/* Private to dsp/: the shared dense tile kernel, in each instruction set. */
#ifndef CONVD_SIMD_H
#define CONVD_SIMD_H

#include <stddef.h>

#include "convd_dsp.h"

/* y[t*ys + f] = sum_{j<k} sum_{c<C} x[t*xs + j*ts + c] * W[(j*C + c)*F + f]
 * for t < m, f < F: a dense conv (or, with k = 1, a matrix) over frames whose channels are
 * contiguous. Overwrites y. */
typedef void (*cvd_gemm_fn)(const float *x, size_t xs, size_t ts, int k, int C, const float *W,
                            int F, int m, float *y, size_t ys);

void cvd_gemm_portable(const float *x, size_t xs, size_t ts, int k, int C, const float *W, int F,
                       int m, float *y, size_t ys);
void cvd_gemm_avx2(const float *x, size_t xs, size_t ts, int k, int C, const float *W, int F, int m,
                   float *y, size_t ys);
void cvd_gemm_avx512(const float *x, size_t xs, size_t ts, int k, int C, const float *W, int F,
                     int m, float *y, size_t ys);
/* The fastest kernel for `isa` that handles F output channels. */
cvd_gemm_fn cvd_gemm_select(cvd_isa isa, int F);

#endif
