/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A drawing surface for plots: PNG through cairo's image surface, SVG written by hand
 * (see canvas.h).
 */
#include "canvas.h"

#include <cairo.h>
#include <fontconfig/fontconfig.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct cvd_canvas {
    cvd_canvas_kind kind;
    char *path;
    int w, h;
    double r, g, b, lw;
    int dashed;
    /* PNG */
    cairo_surface_t *surf;
    cairo_t *cr;
    /* SVG: the document so far */
    char *buf;
    size_t len;
    FILE *mem;
    int clip_open, n_clips;
    int failed; /* out of memory while writing the SVG */
};

int cvd_canvas_kind_of(const char *path, cvd_canvas_kind *out)
{
    const char *dot = path ? strrchr(path, '.') : NULL;
    if (dot && strcasecmp(dot, ".png") == 0)
        *out = CVD_CANVAS_PNG;
    else if (dot && strcasecmp(dot, ".svg") == 0)
        *out = CVD_CANVAS_SVG;
    else
        return CVD_EINVAL;
    return CVD_OK;
}

/* A number for SVG: always a decimal point, whatever the locale. */
static const char *num(char *buf, size_t cap, double v)
{
    if (!isfinite(v))
        v = 0;
    snprintf(buf, cap, "%.2f", v);
    for (char *p = buf; *p; p++)
        if (*p == ',')
            *p = '.';
    /* "12.00" -> "12" */
    char *dot = strchr(buf, '.');
    if (dot) {
        char *e = buf + strlen(buf) - 1;
        while (e > dot && *e == '0')
            *e-- = '\0';
        if (e == dot)
            *e = '\0';
    }
    return buf;
}

static void svg_escape(FILE *f, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '&':
            fputs("&amp;", f);
            break;
        case '<':
            fputs("&lt;", f);
            break;
        case '>':
            fputs("&gt;", f);
            break;
        case '"':
            fputs("&quot;", f);
            break;
        case '\'':
            fputs("&apos;", f);
            break;
        default:
            if ((unsigned char)*s >= 0x20 || *s == '\t')
                fputc(*s, f);
        }
    }
}

static void svg_stroke(cvd_canvas *c)
{
    fprintf(c->mem, " stroke=\"#%02x%02x%02x\"", (int)lround(c->r * 255), (int)lround(c->g * 255),
            (int)lround(c->b * 255));
    char w[32];
    fprintf(c->mem, " stroke-width=\"%s\"", num(w, sizeof w, c->lw));
    if (c->dashed)
        fputs(" stroke-dasharray=\"5,4\"", c->mem);
}

int cvd_canvas_create(const char *path, int w, int h, cvd_canvas **out, cvd_err *err)
{
    cvd_canvas *c;
    cvd_canvas_kind kind;
    *out = NULL;
    if (cvd_canvas_kind_of(path, &kind) < 0)
        return cvd_err_set(err, CVD_EINVAL, "%s: a plot is written as .png or .svg",
                           path ? path : "(null)");
    if (w < 1 || h < 1 || w > 16384 || h > 16384)
        return cvd_err_set(err, CVD_EINVAL, "%s: a plot of %d x %d pixels (1 to 16384 each)", path,
                           w, h);
    c = calloc(1, sizeof *c);
    if (c == NULL || (c->path = strdup(path)) == NULL) {
        free(c);
        return cvd_err_set(err, CVD_ENOMEM, "%s: out of memory", path);
    }
    c->kind = kind;
    c->w = w;
    c->h = h;
    c->lw = 1;
    if (kind == CVD_CANVAS_PNG) {
        c->surf = cairo_image_surface_create(CAIRO_FORMAT_RGB24, w, h);
        c->cr = c->surf ? cairo_create(c->surf) : NULL;
        if (c->cr == NULL || cairo_status(c->cr) != CAIRO_STATUS_SUCCESS) {
            const char *why = c->cr ? cairo_status_to_string(cairo_status(c->cr)) : "no memory";
            if (c->cr)
                cairo_destroy(c->cr);
            if (c->surf)
                cairo_surface_destroy(c->surf);
            free(c->path);
            free(c);
            return cvd_err_set(err, CVD_ENOMEM, "%s: cairo: %s", path, why);
        }
        cairo_set_source_rgb(c->cr, 1, 1, 1);
        cairo_paint(c->cr);
        cairo_select_font_face(c->cr, "sans-serif", CAIRO_FONT_SLANT_NORMAL,
                               CAIRO_FONT_WEIGHT_NORMAL);
        cairo_set_line_join(c->cr, CAIRO_LINE_JOIN_ROUND);
    } else {
        c->mem = open_memstream(&c->buf, &c->len);
        if (c->mem == NULL) {
            free(c->path);
            free(c);
            return cvd_err_set(err, CVD_ENOMEM, "%s: out of memory", path);
        }
        fprintf(c->mem,
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                "<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" width=\"%d\" "
                "height=\"%d\" viewBox=\"0 0 %d %d\" font-family=\"DejaVu Sans, sans-serif\">\n"
                "<rect x=\"0\" y=\"0\" width=\"%d\" height=\"%d\" fill=\"#ffffff\"/>\n",
                w, h, w, h, w, h);
    }
    *out = c;
    return CVD_OK;
}

void cvd_canvas_color(cvd_canvas *c, double r, double g, double b)
{
    c->r = r, c->g = g, c->b = b;
    if (c->cr)
        cairo_set_source_rgb(c->cr, r, g, b);
}

void cvd_canvas_line_width(cvd_canvas *c, double w)
{
    c->lw = w;
    if (c->cr)
        cairo_set_line_width(c->cr, w);
}

void cvd_canvas_dash(cvd_canvas *c, int dashed)
{
    static const double pattern[] = {5, 4};
    c->dashed = dashed;
    if (c->cr)
        cairo_set_dash(c->cr, pattern, dashed ? 2 : 0, 0);
}

void cvd_canvas_clip(cvd_canvas *c, double x, double y, double w, double h)
{
    char a[32], b[32], cc[32], d[32];
    cvd_canvas_unclip(c);
    if (c->cr) {
        cairo_save(c->cr);
        cairo_rectangle(c->cr, x, y, w, h);
        cairo_clip(c->cr);
    } else {
        c->n_clips++;
        fprintf(c->mem,
                "<clipPath id=\"clip%d\"><rect x=\"%s\" y=\"%s\" width=\"%s\" height=\"%s\"/>"
                "</clipPath>\n<g clip-path=\"url(#clip%d)\">\n",
                c->n_clips, num(a, sizeof a, x), num(b, sizeof b, y), num(cc, sizeof cc, w),
                num(d, sizeof d, h), c->n_clips);
    }
    c->clip_open = 1;
}

void cvd_canvas_unclip(cvd_canvas *c)
{
    if (!c->clip_open)
        return;
    if (c->cr) {
        cairo_restore(c->cr); /* also restores the colour, width and dash: set them again */
        cairo_set_source_rgb(c->cr, c->r, c->g, c->b);
        cairo_set_line_width(c->cr, c->lw);
        cvd_canvas_dash(c, c->dashed);
    } else {
        fputs("</g>\n", c->mem);
    }
    c->clip_open = 0;
}

void cvd_canvas_line(cvd_canvas *c, double x0, double y0, double x1, double y1)
{
    double x[2] = {x0, x1}, y[2] = {y0, y1};
    cvd_canvas_polyline(c, x, y, 2);
}

void cvd_canvas_polyline(cvd_canvas *c, const double *x, const double *y, int n)
{
    char a[32], b[32];
    if (n < 2)
        return;
    if (c->cr) {
        cairo_new_path(c->cr);
        cairo_move_to(c->cr, x[0], y[0]);
        for (int i = 1; i < n; i++)
            cairo_line_to(c->cr, x[i], y[i]);
        cairo_stroke(c->cr);
        return;
    }
    fputs("<polyline fill=\"none\"", c->mem);
    svg_stroke(c);
    fputs(" points=\"", c->mem);
    for (int i = 0; i < n; i++)
        fprintf(c->mem, "%s%s,%s", i ? " " : "", num(a, sizeof a, x[i]), num(b, sizeof b, y[i]));
    fputs("\"/>\n", c->mem);
}

void cvd_canvas_rect(cvd_canvas *c, double x, double y, double w, double h, int fill)
{
    char a[32], b[32], cc[32], d[32];
    if (c->cr) {
        cairo_new_path(c->cr);
        cairo_rectangle(c->cr, x, y, w, h);
        if (fill)
            cairo_fill(c->cr);
        else
            cairo_stroke(c->cr);
        return;
    }
    fprintf(c->mem, "<rect x=\"%s\" y=\"%s\" width=\"%s\" height=\"%s\"", num(a, sizeof a, x),
            num(b, sizeof b, y), num(cc, sizeof cc, w), num(d, sizeof d, h));
    if (fill)
        fprintf(c->mem, " fill=\"#%02x%02x%02x\"", (int)lround(c->r * 255), (int)lround(c->g * 255),
                (int)lround(c->b * 255));
    else {
        fputs(" fill=\"none\"", c->mem);
        svg_stroke(c);
    }
    fputs("/>\n", c->mem);
}

void cvd_canvas_text(cvd_canvas *c, double x, double y, double size, int anchor, int vertical,
                     int bold, const char *text)
{
    char a[32], b[32], s[32];
    if (c->cr) {
        cairo_text_extents_t te;
        cairo_save(c->cr);
        cairo_select_font_face(c->cr, "sans-serif", CAIRO_FONT_SLANT_NORMAL,
                               bold ? CAIRO_FONT_WEIGHT_BOLD : CAIRO_FONT_WEIGHT_NORMAL);
        cairo_set_font_size(c->cr, size);
        cairo_text_extents(c->cr, text, &te);
        cairo_translate(c->cr, x, y);
        if (vertical)
            cairo_rotate(c->cr, -M_PI / 2);
        cairo_move_to(c->cr, anchor < 0 ? 0 : anchor == 0 ? -te.x_advance / 2 : -te.x_advance, 0);
        cairo_show_text(c->cr, text);
        cairo_restore(c->cr);
        return;
    }
    fprintf(c->mem, "<text x=\"%s\" y=\"%s\" font-size=\"%s\"", num(a, sizeof a, x),
            num(b, sizeof b, y), num(s, sizeof s, size));
    if (anchor >= 0)
        fprintf(c->mem, " text-anchor=\"%s\"", anchor == 0 ? "middle" : "end");
    if (bold)
        fputs(" font-weight=\"bold\"", c->mem);
    if (vertical)
        fprintf(c->mem, " transform=\"rotate(-90 %s %s)\"", a, b);
    fprintf(c->mem, " fill=\"#%02x%02x%02x\">", (int)lround(c->r * 255), (int)lround(c->g * 255),
            (int)lround(c->b * 255));
    svg_escape(c->mem, text);
    fputs("</text>\n", c->mem);
}

void cvd_canvas_data(cvd_canvas *c, const char *name, const double *x, const double *y, int n)
{
    if (c->cr)
        return;
    fputs("<g class=\"series\" data-series=\"", c->mem);
    svg_escape(c->mem, name);
    for (int k = 0; k < 2; k++) {
        const double *v = k ? y : x;
        fprintf(c->mem, "\" data-%c=\"", k ? 'y' : 'x');
        for (int i = 0; i < n; i++) {
            char t[40];
            snprintf(t, sizeof t, "%.9g", isfinite(v[i]) ? v[i] : 0.0);
            for (char *p = t; *p; p++)
                if (*p == ',')
                    *p = '.';
            fprintf(c->mem, "%s%s", i ? " " : "", t);
        }
    }
    fputs("\"/>\n", c->mem);
}

int cvd_canvas_finish(cvd_canvas *c, cvd_err *err)
{
    int rc = CVD_OK;
    if (c == NULL)
        return CVD_OK;
    cvd_canvas_unclip(c);
    if (c->cr) {
        cairo_status_t st = cairo_status(c->cr);
        cairo_destroy(c->cr);
        if (st == CAIRO_STATUS_SUCCESS)
            st = cairo_surface_write_to_png(c->surf, c->path);
        if (st != CAIRO_STATUS_SUCCESS)
            rc = cvd_err_set(err, CVD_EIO, "%s: cannot write the PNG: %s", c->path,
                             st == CAIRO_STATUS_WRITE_ERROR ? strerror(errno)
                                                            : cairo_status_to_string(st));
        cairo_surface_destroy(c->surf);
    } else {
        fputs("</svg>\n", c->mem);
        if (fclose(c->mem) != 0 || c->buf == NULL) {
            rc = cvd_err_set(err, CVD_ENOMEM, "%s: out of memory", c->path);
        } else {
            FILE *f = fopen(c->path, "wb");
            if (f == NULL) {
                rc = cvd_err_set(err, CVD_EIO, "%s: cannot create: %s", c->path, strerror(errno));
            } else {
                int ok = fwrite(c->buf, 1, c->len, f) == c->len;
                ok &= fclose(f) == 0;
                if (!ok)
                    rc = cvd_err_set(err, CVD_EIO, "%s: write error: %s", c->path, strerror(errno));
            }
        }
        free(c->buf);
    }
    free(c->path);
    free(c);
    return rc;
}

void cvd_canvas_shutdown(void)
{
    cairo_debug_reset_static_data();
    FcFini();
}
