/* SPDX-License-Identifier: Apache-2.0 */
/* Private to dsp/: long convolutions by uniformly partitioned FFT (FFTW3, single precision). */
#ifndef CONVD_FFTCONV_H
#define CONVD_FFTCONV_H

#include <stddef.h>

#include "convd_dsp.h"

/*
 * A causal multichannel FIR with zero latency, one output frame per input frame:
 *
 *   y[t][f] = sum_{m < taps} sum_{c in group(f)} h[m][c][f] x[t - m][c]      (x[<0] = 0)
 *
 * The first partition (taps 0..B-1) runs directly in the time domain, so output t is ready as
 * soon as input t is; the rest runs as B-tap partitions in the frequency domain (overlap-save
 * with FFTs of 2B points and a frequency-domain delay line), computed once per B frames from
 * the blocks already complete. The result does not depend on how the input is split into
 * calls: every output is the same sequence of operations whatever the call sizes.
 *
 * create() allocates everything and makes the FFTW plans (the planner is serialised by a
 * lock: FFTW's planner is not thread-safe); process() and reset() allocate nothing, take no
 * lock and make no system call (FFTW's execute functions on new arrays are thread-safe).
 */
typedef struct cvd_fftconv cvd_fftconv;

/* C input and F output channels in G groups, `taps` >= 1 taps, partitions of B frames (a power
 * of two, 16..4096), kernels for `isa`. */
int cvd_fftconv_create(int C, int F, int G, int taps, int B, cvd_isa isa, cvd_fftconv **out,
                       cvd_err *err);
void cvd_fftconv_destroy(cvd_fftconv *fc);
/* Keras's kernel (k, C/G, F) with dilation d (tap j reads x[t - (k-1-j) d]); d (k-1) + 1 must
 * equal the taps given at create. Computes the partitions' spectra; allocates nothing. */
void cvd_fftconv_set_kernel(cvd_fftconv *fc, const float *K, int k, int d);
/* n frames of C channels in (NULL: zeros), n frames of F channels out. */
void cvd_fftconv_process(cvd_fftconv *fc, const float *x, int n, float *y);
/* The state after `zeros` frames of zeros from the start (all zero, at that block phase). */
void cvd_fftconv_reset(cvd_fftconv *fc, long zeros);
size_t cvd_fftconv_state_bytes(const cvd_fftconv *fc);
int cvd_fftconv_partition(const cvd_fftconv *fc);
/* Floating-point operations per frame in steady state (head, spectra, FFTs). */
double cvd_fftconv_flops_per_frame(int C, int F, int G, int taps, int B);

/* The partition for a core conv (not Conv1DTranspose) of C -> F channels in G groups, kernel
 * size k, dilation d and strides s: 0 to compute it directly (which costs k taps a frame, the
 * FFT path the extent (k - 1) d + 1). Follows cvd_conv_fft_force(). */
int cvd_conv_fft_choose(cvd_layer_kind kind, int C, int F, int G, int k, int d, int s);

#endif
