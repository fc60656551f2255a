/* SPDX-License-Identifier: Apache-2.0 */
/*
 * modelplot.h - pictures of what a model does (convd-info --plot), computed offline with
 * cvd_model_forward() and drawn on a canvas (canvas.h: PNG through cairo, or SVG).
 *
 * For every input channel (up to 8), with a curve per output channel (up to 8):
 *   impulse response   the output for a unit impulse, less the output for silence, over time
 *                      (ms at the model's rate; frames when it has none), until it stays
 *                      below 1e-3 of its peak. The impulse sits at frame `latency` of a run
 *                      of L frames (a power of 2, at least 1024 and twice the receptive field
 *                      and latency), so a look-ahead (same padding) shows before 0.
 *   magnitude response 20 log10 |H(f)| of that response over log frequency, from 2 fs / L to
 *                      fs / 2 (Hz at the model's rate; cycles per frame without one), H the
 *                      response's discrete-time Fourier transform.
 * A model is nonlinear when its responses to impulses of 0.5, 1 and -0.5 are not in
 * proportion (relative 1e-4). Its responses are then the small-signal ones (an impulse of
 * 0.01, divided by 0.01), and two more panels follow:
 *   level in / out     a sine at the reference frequency (1 kHz, or fs / 48 below 8 kHz or
 *                      without a rate: exactly on an analysis bin) from -60 to 0 dBFS in 3 dB
 *                      steps; the output's fundamental, in dBFS (amplitude 1 = 0 dBFS),
 *                      measured over N frames (about 2048, whole periods) after the model settled
 * (receptive field + latency + 64 frames); harmonics          the output's harmonics 1 to 10 (below
 * fs / 2) for that sine at -6 dBFS, in dBFS, and the THD (their RMS over the fundamental). The
 * plotted numbers are attached to the drawing (SVG data-* attributes) and, when asked, written to a
 * csv (series,x,y). Windowed models, and models that change the frame rate, have no such pictures
 * (CVD_EUNSUPPORTED, saying why).
 */
#ifndef CONVD_MODELPLOT_H
#define CONVD_MODELPLOT_H

#include <stddef.h>

#include "convd_dsp.h"

#define CVD_PLOT_LEVEL_DB (-6.0) /* the harmonics' input level */

/* Draws m's plot into path (.png or .svg); data_path (NULL: none) receives the series as csv.
 * title heads the picture. summary (may be NULL) receives one line saying what was drawn. */
int cvd_model_plot(const cvd_model *m, const char *title, const char *path, const char *data_path,
                   char *summary, size_t summary_cap, cvd_err *err);

#endif
