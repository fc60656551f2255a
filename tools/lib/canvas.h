/* SPDX-License-Identifier: Apache-2.0 */
/*
 * canvas.h - a small 2-D drawing surface for the tools' plots, written as PNG (through cairo)
 * or as plain SVG (written by hand), chosen by the file's extension.
 *
 * Coordinates are pixels, y down. Every call draws with the current colour and line width.
 * cvd_canvas_data() attaches a data series (the numbers a curve was drawn from) to the
 * drawing: an SVG file carries it as data-* attributes of a <g class="series"> element
 * (data-series, data-x, data-y: space-separated %.9g values), so a reader (or a test) gets
 * the plotted numbers back exactly; a PNG has nowhere to put it.
 *
 * Not real-time safe; errors are cvd_err messages naming the file.
 */
#ifndef CONVD_CANVAS_H
#define CONVD_CANVAS_H

#include "convd_dsp.h"

typedef struct cvd_canvas cvd_canvas;

typedef enum cvd_canvas_kind { CVD_CANVAS_PNG, CVD_CANVAS_SVG } cvd_canvas_kind;

/* The kind for a path's extension (.png, .svg; case-insensitive); CVD_EINVAL otherwise. */
int cvd_canvas_kind_of(const char *path, cvd_canvas_kind *out);

/* A w x h canvas (1 to 16384 each) to be written to path by cvd_canvas_finish(). */
int cvd_canvas_create(const char *path, int w, int h, cvd_canvas **out, cvd_err *err);

void cvd_canvas_color(cvd_canvas *c, double r, double g, double b); /* 0..1 */
void cvd_canvas_line_width(cvd_canvas *c, double w);
void cvd_canvas_dash(cvd_canvas *c, int dashed);

/* Everything drawn is clipped to this rectangle until cvd_canvas_unclip(). */
void cvd_canvas_clip(cvd_canvas *c, double x, double y, double w, double h);
void cvd_canvas_unclip(cvd_canvas *c);

void cvd_canvas_line(cvd_canvas *c, double x0, double y0, double x1, double y1);
void cvd_canvas_polyline(cvd_canvas *c, const double *x, const double *y, int n);
void cvd_canvas_rect(cvd_canvas *c, double x, double y, double w, double h, int fill);

/* Text at (x, y) (the baseline), size in pixels; anchor -1 left, 0 centre, 1 right;
 * vertical: rotated a quarter turn counter-clockwise (a y-axis label). */
void cvd_canvas_text(cvd_canvas *c, double x, double y, double size, int anchor, int vertical,
                     int bold, const char *text);

/* The numbers a curve or a set of bars was drawn from (see above). */
void cvd_canvas_data(cvd_canvas *c, const char *name, const double *x, const double *y, int n);

/* Writes the file and frees the canvas (also on error). */
int cvd_canvas_finish(cvd_canvas *c, cvd_err *err);

/* At the end of a program that drew: frees what cairo and fontconfig keep for the process
 * (their caches), so that a leak checker sees none. No canvas may be in use, or made after. */
void cvd_canvas_shutdown(void);

#endif
