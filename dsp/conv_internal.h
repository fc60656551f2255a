/* SPDX-License-Identifier: Apache-2.0 */
/* Private to dsp/: the layer object and the kernels that compute it. */
#ifndef CONVD_CONV_INTERNAL_H
#define CONVD_CONV_INTERNAL_H

#include "convd_dsp.h"
#include "simd.h"

struct cvd_layer {
    /* configuration, fixed at create */
    cvd_conv_config cfg;
    cvd_layer_kind kind;
    int C;       /* input channels */
    int F;       /* output channels */
    int Fc;      /* output channels of the core conv (Separable: C * depth_multiplier) */
    int G;       /* groups of the core conv (Depthwise, Separable: C) */
    int k, d, s; /* kernel_size, dilation_rate, strides */
    int ek;      /* dilated extent d(k-1)+1 */
    int P;       /* steady-state left pad of the padded stream (core convs) */
    long c_left; /* Conv1DTranspose: frames cropped from the left of the full output */
    int max_block, max_out, latency;
    int keep;     /* frames of history the next output may still need */
    int chunk;    /* frames appended between rewinds */
    int cap;      /* history capacity in frames: keep + chunk */
    int core_max; /* frames one kernel call computes at most */

    /* weights: Keras variables (vars/0..2), and packed forms for the kernels */
    int nvars, bias_var;
    int var_rank[3], var_shape[3][3];
    size_t var_size[3];
    float *var[3];
    float *wpack; /* core kernel [j][c][f] (Conv1D, Depthwise, Separable: Keras's layout) */
    void (*conv_fn)(const struct cvd_layer *, const float *, int, float *);
    cvd_gemm_fn pw_fn; /* Separable's pointwise stage */
    cvd_isa isa;       /* the ISA active at create: the offline form's (the same bits on each) */
    int kernel_bias;   /* conv_fn adds the bias (and applies relu) itself */

    /* stream state (reset clears it) */
    long nin;  /* real input frames received */
    long nout; /* output frames emitted */
    long pos0; /* stream position of hist frame 0 (padded stream for core convs) */
    int len;   /* frames in hist */
    int finished;
    float *hist;     /* cap * C */
    float *tmp_in;   /* max_block * C: channels_first input as frames */
    float *tmp_core; /* core_max * Fc: depthwise output before the pointwise stage */
    float *tmp_out;  /* max_out * F: channels_first output before transposing */

    /* long kernels (strides 1): the partitioned FFT engine computes the core conv instead of
     * the history and the direct kernels (fftconv.c); NULL when direct */
    struct cvd_fftconv *fft;
    long fed; /* padded positions given to the engine (the left pad counts) */
};

/* kernels.c */
int cvd_kernels_init(struct cvd_layer *L); /* at create: choose kernels, allocate */
/* m core-conv output frames from the padded history at x (frame stride C), into y (Fc wide,
 * frame stride Fc). Output t reads frames t*s + j*d. No bias, no activation. */
void cvd_kernel_conv(const struct cvd_layer *L, const float *x, int m, float *y);
/* m frames of Conv1DTranspose's full output from position p0 on, into y (F wide). */
void cvd_kernel_transpose(const struct cvd_layer *L, long p0, int m, float *y);
/* Separable's pointwise stage: m frames of Fc into F. */
void cvd_kernel_pointwise(const struct cvd_layer *L, const float *x, int m, float *y);

#endif
