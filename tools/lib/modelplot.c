/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Pictures of what a model does: impulse and magnitude responses, and for nonlinear models a
 * level curve and harmonics (see modelplot.h).
 */
#include "modelplot.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "canvas.h"

#define MAX_SHOWN 8 /* input and output channels drawn */
#define N_FREQ 240  /* points of a magnitude response */
#define N_LEVELS 21 /* -60 .. 0 dBFS in 3 dB steps */
#define N_HARM 10
#define SMALL_IMPULSE 0.01
#define LINEAR_TOL 1e-4

typedef struct plot {
    const cvd_model *m;
    int cin, cout, ci, co; /* channels, and those shown */
    double rate, fs;       /* the model's rate (0: unknown); fs: rate or 1 (cycles/frame) */
    long lat, rf;
    long L, p; /* impulse run length, impulse position */
    int nonlinear;
    double amp;                        /* the impulse the responses are for */
    double *h;                         /* [ci][co][L]: response at frame n - p */
    double freq[N_FREQ], *mag;         /* [ci][co][N_FREQ] dB */
    long N, k, S;                      /* sine analysis: frames, bin, settling frames */
    double f0;                         /* the reference frequency (Hz, or cycles/frame) */
    double lev_in[N_LEVELS], *lev_out; /* [ci][co][N_LEVELS] */
    int nh;
    double *harm, *thd; /* [ci][co][N_HARM] dBFS; [ci][co] ratio */
    FILE *data;         /* --plot-data */
} plot;

#define AT(p, i, j) ((size_t)(i) * (size_t)(p)->co + (size_t)(j))

/* ---- analysis ---------------------------------------------------------------------------------
 */

/* The model on n frames where input channel ch carries x (the others silence); y: n frames. */
static int run(plot *pl, int ch, const double *x, long n, float **y, cvd_err *err)
{
    float *in = calloc((size_t)n * (size_t)pl->cin, sizeof *in);
    long n_out = 0;
    int rc;
    *y = NULL;
    if (in == NULL)
        return cvd_err_set(err, CVD_ENOMEM, "out of memory");
    for (long t = 0; x && t < n; t++)
        in[(size_t)t * pl->cin + ch] = (float)x[t];
    rc = cvd_model_forward(pl->m, in, n, y, &n_out, err);
    free(in);
    if (rc == CVD_OK && n_out != n) {
        free(*y);
        *y = NULL;
        rc = cvd_err_set(err, CVD_ESTATE, "%ld frames out for %ld in", n_out, n);
    }
    return rc;
}

static int impulse(plot *pl, int ch, double a, float **y, cvd_err *err)
{
    double *x = calloc((size_t)pl->L, sizeof *x);
    int rc;
    if (x == NULL)
        return cvd_err_set(err, CVD_ENOMEM, "out of memory");
    x[pl->p] = a;
    rc = run(pl, ch, x, pl->L, y, err);
    free(x);
    return rc;
}

/* Linear? Responses to impulses of 0.5, 1 and -0.5 in proportion, every channel. */
static int check_linear(plot *pl, const float *y0, cvd_err *err)
{
    for (int i = 0; i < pl->cin; i++) {
        float *y1, *y2, *ym;
        int rc = impulse(pl, i, 0.5, &y1, err);
        if (rc == CVD_OK)
            rc = impulse(pl, i, 1.0, &y2, err);
        if (rc == CVD_OK)
            rc = impulse(pl, i, -0.5, &ym, err);
        if (rc < 0)
            return rc;
        double s = 1e-30, e = 0;
        for (size_t v = 0; v < (size_t)pl->L * pl->cout; v++) {
            const double d1 = (double)y1[v] - y0[v], d2 = (double)y2[v] - y0[v],
                         dm = (double)ym[v] - y0[v];
            s = fmax(s, fabs(d1));
            e = fmax(e, fmax(fabs(d2 - 2 * d1), fabs(d1 + dm)));
        }
        free(y1), free(y2), free(ym);
        if (e > LINEAR_TOL * s + 1e-7)
            pl->nonlinear = 1;
    }
    return CVD_OK;
}

static int responses(plot *pl, cvd_err *err)
{
    float *y0 = NULL;
    int rc = run(pl, 0, NULL, pl->L, &y0, err);
    if (rc == CVD_OK)
        rc = check_linear(pl, y0, err);
    pl->amp = pl->nonlinear ? SMALL_IMPULSE : 1.0;
    for (int i = 0; i < pl->ci && rc == CVD_OK; i++) {
        float *y;
        if ((rc = impulse(pl, i, pl->amp, &y, err)) < 0)
            break;
        for (int j = 0; j < pl->co; j++) {
            double *h = pl->h + AT(pl, i, j) * (size_t)pl->L;
            for (long t = 0; t < pl->L; t++)
                h[t] =
                    ((double)y[(size_t)t * pl->cout + j] - y0[(size_t)t * pl->cout + j]) / pl->amp;
            /* |H(f)| at log-spaced frequencies: sum h e^{-i w t} with a rotating phasor (the
             * impulse's position p only turns the phase) */
            double *mag = pl->mag + AT(pl, i, j) * N_FREQ;
            for (int q = 0; q < N_FREQ; q++) {
                const double w = 2 * M_PI * pl->freq[q] / pl->fs;
                const double cw = cos(w), sw = sin(w);
                double re = 0, im = 0, cr = 1, ci = 0; /* e^{-i w t} */
                for (long t = 0; t < pl->L; t++) {
                    re += h[t] * cr;
                    im += h[t] * ci;
                    const double nr = cr * cw + ci * sw;
                    ci = ci * cw - cr * sw;
                    cr = nr;
                }
                const double a = sqrt(re * re + im * im);
                mag[q] = 20 * log10(a > 1e-12 ? a : 1e-12);
            }
        }
        free(y);
    }
    free(y0);
    return rc;
}

/* Amplitude of bin b over y[S .. S+N) of output channel j. */
static double bin_amp(const plot *pl, const float *y, int j, long b)
{
    double re = 0, im = 0;
    for (long t = 0; t < pl->N; t++) {
        const double ph = 2 * M_PI * (double)((b * t) % pl->N) / (double)pl->N;
        const double v = y[(size_t)(pl->S + t) * pl->cout + j];
        re += v * cos(ph);
        im -= v * sin(ph);
    }
    return 2 * sqrt(re * re + im * im) / (double)pl->N;
}

static int sine_run(plot *pl, int ch, double a, float **y, cvd_err *err)
{
    const long n = pl->S + pl->N;
    double *x = malloc(sizeof *x * (size_t)n);
    int rc;
    if (x == NULL)
        return cvd_err_set(err, CVD_ENOMEM, "out of memory");
    for (long t = 0; t < n; t++)
        x[t] = a * sin(2 * M_PI * (double)((pl->k * t) % pl->N) / (double)pl->N);
    rc = run(pl, ch, x, n, y, err);
    free(x);
    return rc;
}

static int nonlinear_curves(plot *pl, cvd_err *err)
{
    int rc = CVD_OK;
    for (int i = 0; i < pl->ci && rc == CVD_OK; i++) {
        for (int l = 0; l < N_LEVELS && rc == CVD_OK; l++) {
            float *y;
            if ((rc = sine_run(pl, i, pow(10, pl->lev_in[l] / 20), &y, err)) < 0)
                break;
            for (int j = 0; j < pl->co; j++) {
                const double a = bin_amp(pl, y, j, pl->k);
                pl->lev_out[AT(pl, i, j) * N_LEVELS + (size_t)l] =
                    20 * log10(a > 1e-12 ? a : 1e-12);
            }
            free(y);
        }
        float *y;
        if (rc < 0 || (rc = sine_run(pl, i, pow(10, CVD_PLOT_LEVEL_DB / 20), &y, err)) < 0)
            break;
        for (int j = 0; j < pl->co; j++) {
            double *hm = pl->harm + AT(pl, i, j) * N_HARM, fund = 0, rest = 0;
            for (int m = 1; m <= pl->nh; m++) {
                const double a = bin_amp(pl, y, j, pl->k * m);
                hm[m - 1] = 20 * log10(a > 1e-12 ? a : 1e-12);
                if (m == 1)
                    fund = a;
                else
                    rest += a * a;
            }
            pl->thd[AT(pl, i, j)] = fund > 0 ? sqrt(rest) / fund : 0;
        }
        free(y);
    }
    return rc;
}

/* ---- drawing ----------------------------------------------------------------------------------
 */

#define W 1000
#define PW 420 /* panel */
#define PH 250
#define ROW 330
#define TOP 70

static const double palette[MAX_SHOWN][3] = {
    {0.12, 0.47, 0.71}, {0.84, 0.15, 0.16}, {0.17, 0.63, 0.17}, {1.00, 0.50, 0.05},
    {0.58, 0.40, 0.74}, {0.55, 0.34, 0.29}, {0.89, 0.47, 0.76}, {0.50, 0.50, 0.50}};

typedef struct panel {
    double x, y, w, h;     /* the plotting area */
    double x0, x1, y0, y1; /* data ranges */
    int xlog;
} panel;

static double px(const panel *p, double v)
{
    if (p->xlog)
        return p->x + p->w * (log10(v) - log10(p->x0)) / (log10(p->x1) - log10(p->x0));
    return p->x + p->w * (v - p->x0) / (p->x1 - p->x0);
}

static double py(const panel *p, double v)
{
    return p->y + p->h * (1 - (v - p->y0) / (p->y1 - p->y0));
}

static double nice_step(double span)
{
    const double raw = span / 5, mag = pow(10, floor(log10(raw))), f = raw / mag;
    return mag * (f < 1.5 ? 1 : f < 3.5 ? 2 : f < 7.5 ? 5 : 10);
}

static void tick_label(char *buf, size_t cap, double v, double step)
{
    if (fabs(v) < step * 1e-6)
        v = 0;
    if (fabs(v) >= 1000 && fmod(v, 1000) == 0)
        snprintf(buf, cap, "%gk", v / 1000);
    else
        snprintf(buf, cap, "%g", v);
}

static void draw_frame(cvd_canvas *c, panel *p, const char *title, const char *xlabel,
                       const char *ylabel)
{
    char t[32];
    cvd_canvas_color(c, 0.97, 0.97, 0.97);
    cvd_canvas_rect(c, p->x, p->y, p->w, p->h, 1);
    cvd_canvas_line_width(c, 1);
    /* x grid and ticks */
    if (p->xlog) {
        for (double dec = pow(10, floor(log10(p->x0))); dec <= p->x1; dec *= 10)
            for (int m = 1; m < 10; m++) {
                const double v = dec * m;
                if (v < p->x0 * 0.9999 || v > p->x1 * 1.0001)
                    continue;
                cvd_canvas_color(c, m == 1 ? 0.78 : 0.89, m == 1 ? 0.78 : 0.89,
                                 m == 1 ? 0.78 : 0.89);
                cvd_canvas_line(c, px(p, v), p->y, px(p, v), p->y + p->h);
                if (m == 1 || (m == 2 || m == 5)) {
                    tick_label(t, sizeof t, v, v);
                    cvd_canvas_color(c, 0.2, 0.2, 0.2);
                    cvd_canvas_text(c, px(p, v), p->y + p->h + 15, 11, 0, 0, 0, t);
                }
            }
    } else {
        const double st = nice_step(p->x1 - p->x0);
        for (double v = ceil(p->x0 / st) * st; v <= p->x1 + st * 1e-9; v += st) {
            cvd_canvas_color(c, 0.85, 0.85, 0.85);
            cvd_canvas_line(c, px(p, v), p->y, px(p, v), p->y + p->h);
            tick_label(t, sizeof t, v, st);
            cvd_canvas_color(c, 0.2, 0.2, 0.2);
            cvd_canvas_text(c, px(p, v), p->y + p->h + 15, 11, 0, 0, 0, t);
        }
    }
    const double st = nice_step(p->y1 - p->y0);
    for (double v = ceil(p->y0 / st) * st; v <= p->y1 + st * 1e-9; v += st) {
        cvd_canvas_color(c, 0.85, 0.85, 0.85);
        cvd_canvas_line(c, p->x, py(p, v), p->x + p->w, py(p, v));
        tick_label(t, sizeof t, v, st);
        cvd_canvas_color(c, 0.2, 0.2, 0.2);
        cvd_canvas_text(c, p->x - 6, py(p, v) + 4, 11, 1, 0, 0, t);
    }
    cvd_canvas_color(c, 0.3, 0.3, 0.3);
    cvd_canvas_rect(c, p->x, p->y, p->w, p->h, 0);
    cvd_canvas_color(c, 0, 0, 0);
    cvd_canvas_text(c, p->x + p->w / 2, p->y - 8, 13, 0, 0, 1, title);
    cvd_canvas_text(c, p->x + p->w / 2, p->y + p->h + 32, 12, 0, 0, 0, xlabel);
    cvd_canvas_text(c, p->x - 44, p->y + p->h / 2, 12, 0, 1, 0, ylabel);
}

static void draw_trace(plot *pl, cvd_canvas *c, const panel *p, int j, const char *name,
                       const double *x, const double *y, int n)
{
    double *xs = malloc(sizeof *xs * (size_t)n), *ys = malloc(sizeof *ys * (size_t)n);
    if (xs && ys) {
        for (int i = 0; i < n; i++) {
            xs[i] = px(p, x[i]);
            ys[i] = py(p, y[i] < p->y0 ? p->y0 - (p->y1 - p->y0) : y[i]);
        }
        cvd_canvas_clip(c, p->x, p->y, p->w, p->h);
        cvd_canvas_color(c, palette[j][0], palette[j][1], palette[j][2]);
        cvd_canvas_line_width(c, 1.6);
        cvd_canvas_polyline(c, xs, ys, n);
        cvd_canvas_unclip(c);
        cvd_canvas_line_width(c, 1);
    }
    cvd_canvas_data(c, name, x, y, n);
    if (pl->data)
        for (int i = 0; i < n; i++)
            fprintf(pl->data, "%s,%.9g,%.9g\n", name, x[i], y[i]);
    free(xs);
    free(ys);
}

static void legend(const plot *pl, cvd_canvas *c, const panel *p)
{
    char t[32];
    if (pl->co < 2)
        return;
    for (int j = 0; j < pl->co; j++) {
        const double y = p->y + 14 + 14 * j;
        cvd_canvas_color(c, palette[j][0], palette[j][1], palette[j][2]);
        cvd_canvas_line_width(c, 2);
        cvd_canvas_line(c, p->x + p->w - 58, y - 4, p->x + p->w - 44, y - 4);
        cvd_canvas_line_width(c, 1);
        cvd_canvas_color(c, 0.1, 0.1, 0.1);
        snprintf(t, sizeof t, "out %d", j);
        cvd_canvas_text(c, p->x + p->w - 40, y, 11, -1, 0, 0, t);
    }
}

static void range_of(const double *v, size_t n, double *lo, double *hi)
{
    *lo = INFINITY, *hi = -INFINITY;
    for (size_t i = 0; i < n; i++)
        if (isfinite(v[i])) {
            *lo = fmin(*lo, v[i]);
            *hi = fmax(*hi, v[i]);
        }
    if (!isfinite(*lo))
        *lo = -1, *hi = 1;
}

static void draw_input(plot *pl, cvd_canvas *c, int i, double top)
{
    char title[160], name[64], sfx[24] = "";
    if (pl->ci > 1)
        snprintf(sfx, sizeof sfx, " (in %d)", i);
    /* the impulse response: from the impulse's frame - p to where it has died away (below
     * 1e-3 of its peak for good), with a margin, at least 32 frames */
    long t_end = 0;
    {
        double peak = 0;
        for (int j = 0; j < pl->co; j++)
            for (long t = 0; t < pl->L; t++)
                peak = fmax(peak, fabs(pl->h[AT(pl, i, j) * (size_t)pl->L + (size_t)t]));
        for (int j = 0; j < pl->co; j++)
            for (long t = 0; t < pl->L; t++)
                if (fabs(pl->h[AT(pl, i, j) * (size_t)pl->L + (size_t)t]) > 1e-3 * peak &&
                    t - pl->p > t_end)
                    t_end = t - pl->p;
        t_end += t_end / 8 + 8;
        if (t_end < 32)
            t_end = 32;
    }
    if (t_end > pl->L - pl->p - 1)
        t_end = pl->L - pl->p - 1;
    const int n = (int)(t_end + pl->p + 1);
    double *tx = malloc(sizeof *tx * (size_t)n);
    if (tx == NULL)
        return;
    for (int t = 0; t < n; t++)
        tx[t] = (double)(t - pl->p) * (pl->rate > 0 ? 1000.0 / pl->rate : 1.0);
    panel p = {70, top, PW, PH, tx[0], tx[n - 1], 0, 0, 0};
    if (p.x1 <= p.x0)
        p.x1 = p.x0 + 1;
    double lo = INFINITY, hi = -INFINITY;
    for (int j = 0; j < pl->co; j++) {
        double a, b;
        range_of(pl->h + AT(pl, i, j) * (size_t)pl->L, (size_t)n, &a, &b);
        lo = fmin(lo, a), hi = fmax(hi, b);
    }
    lo = fmin(lo, 0), hi = fmax(hi, 0);
    if (hi - lo < 1e-12)
        hi = lo + 1;
    p.y0 = lo - 0.06 * (hi - lo);
    p.y1 = hi + 0.06 * (hi - lo);
    snprintf(title, sizeof title, "%simpulse response%s", pl->nonlinear ? "small-signal " : "",
             sfx);
    draw_frame(c, &p, title, pl->rate > 0 ? "time (ms)" : "time (frames)", "amplitude");
    for (int j = 0; j < pl->co; j++) {
        snprintf(name, sizeof name, "impulse in%d out%d", i, j);
        draw_trace(pl, c, &p, j, name, tx, pl->h + AT(pl, i, j) * (size_t)pl->L, n);
    }
    legend(pl, c, &p);
    free(tx);

    /* the magnitude response */
    panel q = {70 + PW + 80, top, PW, PH, pl->freq[0], pl->freq[N_FREQ - 1], 0, 0, 1};
    range_of(pl->mag + AT(pl, i, 0) * N_FREQ, (size_t)pl->co * N_FREQ, &lo, &hi);
    q.y1 = 10 * ceil((hi + 1) / 10);
    q.y0 = fmax(q.y1 - 80, 10 * floor((lo - 1) / 10));
    if (q.y1 - q.y0 < 20)
        q.y0 = q.y1 - 20;
    snprintf(title, sizeof title, "%smagnitude response%s", pl->nonlinear ? "small-signal " : "",
             sfx);
    draw_frame(c, &q, title, pl->rate > 0 ? "frequency (Hz)" : "frequency (cycles per frame)",
               "magnitude (dB)");
    for (int j = 0; j < pl->co; j++) {
        snprintf(name, sizeof name, "magnitude in%d out%d", i, j);
        draw_trace(pl, c, &q, j, name, pl->freq, pl->mag + AT(pl, i, j) * N_FREQ, N_FREQ);
    }
    legend(pl, c, &q);
    if (!pl->nonlinear)
        return;

    /* level in / out at the reference frequency, and unity for reference */
    char fq[48];
    if (pl->rate > 0)
        snprintf(fq, sizeof fq, "%.4g Hz", pl->f0);
    else
        snprintf(fq, sizeof fq, "%.4g cycles/frame", pl->f0);
    panel r = {70, top + ROW, PW, PH, -60, 0, 0, 0, 0};
    range_of(pl->lev_out + AT(pl, i, 0) * N_LEVELS, (size_t)pl->co * N_LEVELS, &lo, &hi);
    r.y0 = 10 * floor(fmin(lo, -60) / 10);
    r.y1 = 10 * ceil(fmax(hi, 0) / 10);
    if (r.y1 - r.y0 > 120)
        r.y0 = r.y1 - 120;
    snprintf(title, sizeof title, "level at %s%s", fq, sfx);
    draw_frame(c, &r, title, "input level (dBFS)", "output level (dBFS)");
    cvd_canvas_clip(c, r.x, r.y, r.w, r.h);
    cvd_canvas_color(c, 0.55, 0.55, 0.55);
    cvd_canvas_dash(c, 1);
    cvd_canvas_line(c, px(&r, -60), py(&r, -60), px(&r, 0), py(&r, 0));
    cvd_canvas_dash(c, 0);
    cvd_canvas_unclip(c);
    for (int j = 0; j < pl->co; j++) {
        snprintf(name, sizeof name, "level in%d out%d", i, j);
        draw_trace(pl, c, &r, j, name, pl->lev_in, pl->lev_out + AT(pl, i, j) * N_LEVELS, N_LEVELS);
    }
    legend(pl, c, &r);

    /* harmonics at CVD_PLOT_LEVEL_DB: bars side by side per output channel */
    panel s = {70 + PW + 80, top + ROW, PW, PH, 0.4, pl->nh + 0.6, 0, 0, 0};
    range_of(pl->harm + AT(pl, i, 0) * N_HARM, (size_t)pl->co * N_HARM, &lo, &hi);
    s.y1 = 10 * ceil((hi + 1) / 10);
    s.y0 = fmax(10 * floor((lo - 5) / 10), s.y1 - 140);
    if (pl->co == 1)
        snprintf(title, sizeof title, "harmonics of %s at %g dBFS: THD %.3g%%%s", fq,
                 CVD_PLOT_LEVEL_DB, 100 * pl->thd[AT(pl, i, 0)], sfx);
    else
        snprintf(title, sizeof title, "harmonics of %s at %g dBFS%s", fq, CVD_PLOT_LEVEL_DB, sfx);
    draw_frame(c, &s, title, "harmonic", "level (dBFS)");
    double hx[N_HARM];
    for (int m = 0; m < pl->nh; m++)
        hx[m] = m + 1;
    const double bw = 0.8 / pl->co;
    for (int j = 0; j < pl->co; j++) {
        const double *hm = pl->harm + AT(pl, i, j) * N_HARM;
        cvd_canvas_clip(c, s.x, s.y, s.w, s.h);
        cvd_canvas_color(c, palette[j][0], palette[j][1], palette[j][2]);
        for (int m = 0; m < pl->nh; m++) {
            const double x0 = px(&s, m + 1 - 0.4 + bw * j), x1 = px(&s, m + 1 - 0.4 + bw * (j + 1));
            const double yv = py(&s, fmax(hm[m], s.y0)), yb = py(&s, s.y0);
            cvd_canvas_rect(c, x0, yv, x1 - x0 - 1, yb - yv, 1);
        }
        cvd_canvas_unclip(c);
        snprintf(name, sizeof name, "harmonics in%d out%d", i, j);
        cvd_canvas_data(c, name, hx, hm, pl->nh);
        if (pl->data)
            for (int m = 0; m < pl->nh; m++)
                fprintf(pl->data, "%s,%d,%.9g\n", name, m + 1, hm[m]);
    }
    legend(pl, c, &s);
}

/* ---- the whole ----------------------------------------------------------------------------------
 */

static long next_pow2(long v)
{
    long p = 1;
    while (p < v)
        p <<= 1;
    return p;
}

int cvd_model_plot(const cvd_model *m, const char *title, const char *path, const char *data_path,
                   char *summary, size_t summary_cap, cvd_err *err)
{
    plot pl;
    cvd_canvas *c = NULL;
    int rc;
    char line[320];

    memset(&pl, 0, sizeof pl);
    pl.m = m;
    if (cvd_model_mode(m) == CVD_MODE_WINDOWED)
        return cvd_err_set(err, CVD_EUNSUPPORTED,
                           "a windowed model (%s) gives one record per window, not a signal: it "
                           "has no impulse or frequency response to plot",
                           cvd_model_mode_reason(m));
    if (cvd_model_rate_ratio(m) != 1.0)
        return cvd_err_set(err, CVD_EUNSUPPORTED,
                           "the model changes the frame rate (x%g: strides or upsampling): its "
                           "responses are not plotted",
                           cvd_model_rate_ratio(m));
    pl.cin = cvd_model_in_channels(m);
    pl.cout = cvd_model_out_channels(m);
    pl.ci = pl.cin < MAX_SHOWN ? pl.cin : MAX_SHOWN;
    pl.co = pl.cout < MAX_SHOWN ? pl.cout : MAX_SHOWN;
    pl.rate = cvd_model_sample_rate(m);
    pl.fs = pl.rate > 0 ? pl.rate : 1.0;
    pl.lat = cvd_model_latency(m);
    pl.rf = cvd_model_receptive_field(m);
    pl.p = pl.lat;
    pl.L = next_pow2(2 * (pl.rf + pl.lat));
    if (pl.L < 1024)
        pl.L = 1024;
    if (pl.L > 65536)
        return cvd_err_set(err, CVD_EUNSUPPORTED,
                           "a receptive field of %ld frames (and latency %ld): longer than the "
                           "plots' 32768 frames",
                           pl.rf, pl.lat);
    for (int q = 0; q < N_FREQ; q++) {
        const double lo = log10(2 * pl.fs / (double)pl.L), hi = log10(pl.fs / 2);
        pl.freq[q] = pow(10, lo + (hi - lo) * q / (N_FREQ - 1));
    }
    pl.h = calloc((size_t)pl.ci * pl.co * (size_t)pl.L, sizeof *pl.h);
    pl.mag = calloc((size_t)pl.ci * pl.co * N_FREQ, sizeof *pl.mag);
    pl.lev_out = calloc((size_t)pl.ci * pl.co * N_LEVELS, sizeof *pl.lev_out);
    pl.harm = calloc((size_t)pl.ci * pl.co * N_HARM, sizeof *pl.harm);
    pl.thd = calloc((size_t)pl.ci * pl.co, sizeof *pl.thd);
    if (!pl.h || !pl.mag || !pl.lev_out || !pl.harm || !pl.thd) {
        rc = cvd_err_set(err, CVD_ENOMEM, "out of memory");
        goto done;
    }
    if ((rc = responses(&pl, err)) < 0)
        goto done;
    if (pl.nonlinear) {
        /* the reference sine: 1 kHz (fs/48 below 8 kHz or without a rate), on a bin of N */
        const double f_ref = pl.rate >= 8000 ? 1000.0 : pl.fs / 48;
        const double period = pl.fs / f_ref;
        if (fabs(period - round(period)) < 1e-9 && period >= 2 && period <= 2048) {
            const long P = lround(period);
            pl.N = P * ((2048 + P - 1) / P);
            pl.k = pl.N / P;
        } else {
            pl.N = 2048;
            pl.k = lround(f_ref * (double)pl.N / pl.fs);
            if (pl.k < 1)
                pl.k = 1;
        }
        pl.f0 = (double)pl.k * pl.fs / (double)pl.N;
        pl.S = pl.rf + pl.lat + 64;
        pl.nh = 0;
        while (pl.nh < N_HARM && (pl.nh + 1) * pl.k < pl.N / 2)
            pl.nh++;
        for (int l = 0; l < N_LEVELS; l++)
            pl.lev_in[l] = -60.0 + 3.0 * l;
        if ((rc = nonlinear_curves(&pl, err)) < 0)
            goto done;
    }
    if (data_path != NULL) {
        pl.data = fopen(data_path, "w");
        if (pl.data == NULL) {
            rc = cvd_err_set(err, CVD_EIO, "%s: cannot create: %s", data_path, strerror(errno));
            goto done;
        }
        fputs("series,x,y\n", pl.data);
    }
    {
        const int h = TOP + pl.ci * ROW * (pl.nonlinear ? 2 : 1) + 10;
        if ((rc = cvd_canvas_create(path, W, h, &c, err)) < 0)
            goto done;
        cvd_canvas_color(c, 0, 0, 0);
        cvd_canvas_text(c, W / 2.0, 24, 16, 0, 0, 1, title);
        if (pl.rate > 0)
            snprintf(line, sizeof line, "%g Hz, %d in, %d out; %s", pl.rate, pl.cin, pl.cout,
                     pl.nonlinear ? "nonlinear: responses to a small impulse (0.01)" : "linear");
        else
            snprintf(line, sizeof line,
                     "rate unknown (frequencies in cycles per frame), %d in, "
                     "%d out; %s",
                     pl.cin, pl.cout,
                     pl.nonlinear ? "nonlinear: responses to a small impulse (0.01)" : "linear");
        if (pl.ci < pl.cin || pl.co < pl.cout) {
            size_t o = strlen(line);
            snprintf(line + o, sizeof line - o, "; channels 0-%d of each shown", MAX_SHOWN - 1);
        }
        cvd_canvas_color(c, 0.25, 0.25, 0.25);
        cvd_canvas_text(c, W / 2.0, 46, 12, 0, 0, 0, line);
        for (int i = 0; i < pl.ci; i++)
            draw_input(&pl, c, i, TOP + 20 + (double)i * ROW * (pl.nonlinear ? 2 : 1));
        rc = cvd_canvas_finish(c, err);
        c = NULL;
        if (rc == CVD_OK && summary)
            snprintf(summary, summary_cap, "%s: %d x %d pixels: impulse and magnitude response%s",
                     path, W, h,
                     pl.nonlinear ? "s at small signal; nonlinear: level in/out and harmonics "
                                    "of a sine"
                                  : "s");
        if (rc == CVD_OK && summary && pl.nonlinear) {
            size_t o = strlen(summary);
            snprintf(summary + o, summary_cap - o, " at %.4g %s (THD %.3g%% at %g dBFS)", pl.f0,
                     pl.rate > 0 ? "Hz" : "cycles/frame", 100 * pl.thd[0], CVD_PLOT_LEVEL_DB);
        }
    }
done:
    if (c)
        cvd_canvas_finish(c, NULL);
    if (pl.data && fclose(pl.data) != 0 && rc == CVD_OK)
        rc = cvd_err_set(err, CVD_EIO, "%s: write error: %s", data_path, strerror(errno));
    free(pl.h);
    free(pl.mag);
    free(pl.lev_out);
    free(pl.harm);
    free(pl.thd);
    return rc;
}
