/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The processing of one live audio stream, as its callback runs it: input gain, a chain of
 * models (cvd_chain in fixed mode: each model at its own rate between resamplers, exactly n
 * frames out for n in), output gain, an optional soft limiter; bypass; and preset switches
 * that crossfade from the running chain to a new one.
 *
 * Threads: the callback (cvd_audio_proc_process) and one controlling thread (the daemon's main
 * loop: everything else). They share atomics only:
 *   - a new chain is handed over through an atomic pointer (swap); the callback takes it at
 *     the start of a block and, for the crossfade's length, runs both chains on the same
 *     input and mixes them along a raised-cosine envelope (old * cos^2, new * sin^2: the
 *     weights add to 1, and the envelope's steepest step per frame is pi / (2 * frames));
 *     then it hands the old chain back through another atomic pointer, and the controlling
 *     thread frees it (collect). One swap at a time: swap says CVD_ESTATE until the previous
 *     one is collected.
 *   - gains and bypass are atomics the callback reads once a block; a gain change ramps
 *     linearly across one block, a bypass fades like a preset switch.
 * The callback allocates nothing, takes no lock and makes no system call.
 */
#ifndef CONVD_AUDIO_PROC_H
#define CONVD_AUDIO_PROC_H

#include <stdatomic.h>
#include <stdint.h>

#include "convd_dsp.h"

typedef struct cvd_audio_proc cvd_audio_proc;

typedef struct cvd_audio_proc_config {
    int in_channels;  /* frames in (>= 1) */
    int out_channels; /* frames out: every chain's output channels */
    int block;        /* most frames a process call takes (every chain's max_block) */
    double rate;      /* the stream's rate in Hz (the limiter's release, the fade's length) */
    int crossfade;    /* frames a preset switch or a bypass fades over (0: at once) */
    int limit;        /* 1: a soft limiter on the output */
} cvd_audio_proc_config;

/* chain (taken over, NULL: the input passes through) must be in fixed mode with the config's
 * channels and max_block >= block. in_gain and out_gain (linear) belong to that chain (its
 * models' level calibration: cvd_input_gain_db / cvd_output_gain_db without the user's
 * gains). */
int cvd_audio_proc_create(const cvd_audio_proc_config *cfg, cvd_chain *chain, float in_gain,
                          float out_gain, cvd_audio_proc **out, cvd_err *err);
/* Frees the proc and every chain it holds (no callback may run). NULL is fine. */
void cvd_audio_proc_destroy(cvd_audio_proc *p);

/* The callback: n <= block frames of in_channels into n frames of out_channels. */
void cvd_audio_proc_process(cvd_audio_proc *p, const float *x, int n, float *y);

/* Controlling thread. A new chain (taken over on success; NULL: pass-through) with its level
 * gains: the callback fades to it. CVD_ESTATE: the previous swap is not collected yet;
 * CVD_EINVAL: its channels or block do not fit (the chain is not taken). */
int cvd_audio_proc_swap(cvd_audio_proc *p, cvd_chain *chain, float in_gain, float out_gain);
/* Frees the chain a finished swap handed back: 1 when the swap is complete (or none was open),
 * 0 while the callback is still fading. idle = 1: no callback runs (the device is stopped):
 * the swap completes here at once. */
int cvd_audio_proc_collect(cvd_audio_proc *p, int idle);
/* 1 while a swap is open (handed over, not yet collected). */
int cvd_audio_proc_swapping(const cvd_audio_proc *p);
/* The user's gains in dB (the stream's input_gain_db and output_gain_db, or convd-ctl's). */
void cvd_audio_proc_set_gains(cvd_audio_proc *p, double in_db, double out_db);
void cvd_audio_proc_get_gains(const cvd_audio_proc *p, double *in_db, double *out_db);
/* Bypass: the input plays unprocessed (the chain keeps running, so leaving bypass is clean). */
void cvd_audio_proc_set_bypass(cvd_audio_proc *p, int on);
int cvd_audio_proc_bypass(const cvd_audio_proc *p);
/* Frames the current chain delays the stream by (its fixed latency; the newest chain once a
 * swap is handed over). */
int cvd_audio_proc_latency(const cvd_audio_proc *p);
int cvd_audio_proc_crossfade(const cvd_audio_proc *p);
uint64_t cvd_audio_proc_swaps(const cvd_audio_proc *p);     /* swaps the callback took */
uint64_t cvd_audio_proc_fades(const cvd_audio_proc *p);     /* crossfades finished */
float cvd_audio_proc_limiter_gain(const cvd_audio_proc *p); /* 1 without a limiter */

#endif
