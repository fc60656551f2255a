/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_plot.c - convd-info --plot (tools/lib/modelplot.c, canvas.c; docs/TOOLS.md).
 *
 * The demo models (every config/models JSON file, both nonlinear) and a linear two-channel model
 * (tests/data/tools/plot_linear.json, no rate) are plotted as PNG and as SVG:
 *   the PNG: its signature, its IHDR chunk (13 bytes, CRC checked) giving the size the SVG
 *            says, IEND last; decoded with cairo, it is that size and has drawing on it;
 *   the SVG: well-formed XML (checked by a small parser here), an <svg> root of that size;
 *   the numbers: every series the SVG carries (data-series, data-x, data-y) is recomputed
 *            here from the model (cvd_model_forward) as modelplot.h defines it, with code of
 *            this file's own (direct sums for the Fourier transforms): impulse responses
 *            (1e-6 of the peak), magnitude responses (0.01 dB), level curves (0.01 dB, at a
 *            few levels) and harmonics (0.05 dB, above -100 dBFS);
 *   --plot-data: the same numbers as csv;
 * and the refusals: a windowed model, a file that is not .png or .svg, several models.
 */
#include "toolrun.h"

#include <cairo.h>
#include <dirent.h>

#include "convd_dsp.h"
#include "convd_model.h"

TestSuite(plot, .init = make_tmpdir, .fini = remove_tmpdir);

#define LINEAR "tests/data/tools/plot_linear.json"

/* ---- PNG ------------------------------------------------------------------------------------ */

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint32_t crc32_png(const unsigned char *p, size_t n)
{
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++)
            c = c & 1 ? 0xedb88320u ^ (c >> 1) : c >> 1;
    }
    return c ^ 0xffffffffu;
}

static void check_png(const char *path, int want_w, int want_h)
{
    size_t len = 0;
    const unsigned char *b = (const unsigned char *)tu_read_file(path, &len);
    cr_assert_not_null(b, "%s: not written", path);
    cr_assert_geq(len, 8u + 25u + 12u, "%s: %zu bytes", path, len);
    cr_assert_eq(memcmp(b, "\x89PNG\r\n\x1a\n", 8), 0, "%s: no PNG signature", path);
    cr_assert_eq(be32(b + 8), 13u, "%s: the first chunk is not a 13-byte IHDR", path);
    cr_assert_eq(memcmp(b + 12, "IHDR", 4), 0, "%s: the first chunk is not IHDR", path);
    cr_assert_eq(be32(b + 29), crc32_png(b + 12, 17), "%s: IHDR's CRC is wrong", path);
    cr_expect_eq((int)be32(b + 16), want_w, "%s: width %u", path, be32(b + 16));
    cr_expect_eq((int)be32(b + 20), want_h, "%s: height %u", path, be32(b + 20));
    cr_assert_eq(memcmp(b + len - 8, "IEND", 4), 0, "%s: IEND is not last", path);
    free((void *)b);
    /* it decodes, to that size, with something drawn */
    cairo_surface_t *s = cairo_image_surface_create_from_png(path);
    cr_assert_eq(cairo_surface_status(s), CAIRO_STATUS_SUCCESS, "%s: cairo cannot read it: %s",
                 path, cairo_status_to_string(cairo_surface_status(s)));
    cr_expect_eq(cairo_image_surface_get_width(s), want_w);
    cr_expect_eq(cairo_image_surface_get_height(s), want_h);
    const unsigned char *d = cairo_image_surface_get_data(s);
    const int stride = cairo_image_surface_get_stride(s), h = cairo_image_surface_get_height(s);
    long dark = 0, colour = 0;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < cairo_image_surface_get_width(s); x++) {
            const unsigned char *px = d + (size_t)y * stride + 4 * (size_t)x;
            dark += px[0] < 128 && px[1] < 128 && px[2] < 128;
            colour += abs(px[0] - px[2]) > 60; /* a curve, not grey */
        }
    cr_expect_gt(dark, 2000, "%s: hardly any text or frames drawn (%ld dark pixels)", path, dark);
    cr_expect_gt(colour, 500, "%s: hardly any curve drawn (%ld coloured pixels)", path, colour);
    cairo_surface_destroy(s);
}

/* ---- SVG: well-formed XML, and its series ---------------------------------------------------- */

static int name_start(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_' || c == ':';
}

static int name_char(char c)
{
    return name_start(c) || (c >= '0' && c <= '9') || c == '-' || c == '.';
}

/* An entity at p ("&amp;" ...): its length, 0 if not one. */
static size_t entity(const char *p)
{
    static const char *const ents[] = {"&amp;", "&lt;", "&gt;", "&quot;", "&apos;"};
    for (size_t i = 0; i < 5; i++)
        if (strncmp(p, ents[i], strlen(ents[i])) == 0)
            return strlen(ents[i]);
    if (p[1] == '#') {
        size_t n = 2;
        while (p[n] && p[n] != ';' && n < 10)
            n++;
        return p[n] == ';' && n > 2 ? n + 1 : 0;
    }
    return 0;
}

/* Checks that text is one well-formed XML document; returns the root element's start. */
static const char *check_xml(const char *text, const char *what)
{
    const char *p = text, *root = NULL;
    char stack[64][64];
    int depth = 0, roots = 0;
    while (*p) {
        if (*p != '<') {
            if (*p == '&') {
                size_t e = entity(p);
                cr_assert_gt(e, 0u, "%s: a bare '&' at %ld", what, (long)(p - text));
                p += e;
                continue;
            }
            cr_assert(depth > 0 || *p == '\n' || *p == ' ' || *p == '\r' || *p == '\t',
                      "%s: text outside the root at %ld", what, (long)(p - text));
            p++;
            continue;
        }
        if (strncmp(p, "<?", 2) == 0) {
            const char *e = strstr(p, "?>");
            cr_assert_not_null(e, "%s: an unclosed <?", what);
            p = e + 2;
            continue;
        }
        if (strncmp(p, "<!--", 4) == 0) {
            const char *e = strstr(p + 4, "-->");
            cr_assert_not_null(e, "%s: an unclosed comment", what);
            p = e + 3;
            continue;
        }
        int closing = p[1] == '/';
        const char *n = p + 1 + closing;
        cr_assert(name_start(*n), "%s: a tag without a name at %ld", what, (long)(p - text));
        size_t nl = 0;
        while (name_char(n[nl]))
            nl++;
        cr_assert_lt(nl, 64u);
        const char *q = n + nl;
        if (closing) {
            while (*q == ' ' || *q == '\n')
                q++;
            cr_assert_eq(*q, '>', "%s: a malformed end tag", what);
            cr_assert_gt(depth, 0, "%s: </%.*s> closes nothing", what, (int)nl, n);
            depth--;
            cr_assert(strlen(stack[depth]) == nl && strncmp(stack[depth], n, nl) == 0,
                      "%s: </%.*s> closes <%s>", what, (int)nl, n, stack[depth]);
            p = q + 1;
            continue;
        }
        if (depth == 0) {
            roots++;
            root = p;
        }
        /* attributes: name="value", each name once */
        char seen[32][48];
        int ns = 0;
        for (;;) {
            while (*q == ' ' || *q == '\n' || *q == '\t' || *q == '\r')
                q++;
            if (*q == '>' || (q[0] == '/' && q[1] == '>'))
                break;
            cr_assert(name_start(*q), "%s: <%.*s>: a malformed attribute at %ld", what, (int)nl, n,
                      (long)(q - text));
            size_t al = 0;
            while (name_char(q[al]))
                al++;
            for (int k = 0; k < ns; k++)
                cr_assert(!(strlen(seen[k]) == al && strncmp(seen[k], q, al) == 0),
                          "%s: <%.*s>: attribute %.*s twice", what, (int)nl, n, (int)al, q);
            if (ns < 32 && al < 48)
                snprintf(seen[ns++], sizeof seen[0], "%.*s", (int)al, q);
            q += al;
            cr_assert(q[0] == '=' && (q[1] == '"' || q[1] == '\''),
                      "%s: <%.*s>: an attribute without a quoted value", what, (int)nl, n);
            const char quote = q[1];
            q += 2;
            while (*q && *q != quote) {
                cr_assert_neq(*q, '<', "%s: '<' in an attribute value", what);
                if (*q == '&') {
                    size_t e = entity(q);
                    cr_assert_gt(e, 0u, "%s: a bare '&' in an attribute", what);
                    q += e;
                } else {
                    q++;
                }
            }
            cr_assert_eq(*q, quote, "%s: an unterminated attribute value", what);
            q++;
        }
        if (*q == '/') {
            p = q + 2;
        } else {
            cr_assert_lt(depth, 64);
            snprintf(stack[depth++], sizeof stack[0], "%.*s", (int)nl, n);
            p = q + 1;
        }
    }
    cr_assert_eq(depth, 0, "%s: <%s> is not closed", what, depth ? stack[depth - 1] : "");
    cr_assert_eq(roots, 1, "%s: %d root elements", what, roots);
    return root;
}

static double attr_num(const char *elem, const char *name)
{
    char key[64];
    snprintf(key, sizeof key, " %s=\"", name);
    const char *p = strstr(elem, key);
    cr_assert_not_null(p, "no %s attribute", name);
    return strtod(p + strlen(key), NULL);
}

typedef struct series {
    char name[64];
    int n;
    double *x, *y;
} series;

static double *numbers(const char *p, int *n)
{
    int cap = 64;
    double *v = malloc(sizeof *v * (size_t)cap);
    *n = 0;
    while (*p && *p != '"') {
        char *end;
        if (*n == cap)
            v = realloc(v, sizeof *v * (size_t)(cap *= 2));
        v[(*n)++] = strtod(p, &end);
        cr_assert(end != p, "a data attribute holds something else: %.20s", p);
        p = end;
        while (*p == ' ')
            p++;
    }
    return v;
}

/* Every <g class="series"> of an SVG. */
static series *svg_series(const char *svg, int *count)
{
    series *s = NULL;
    int n = 0;
    for (const char *p = strstr(svg, "<g class=\"series\""); p;
         p = strstr(p + 1, "<g class=\"series\"")) {
        const char *nm = strstr(p, "data-series=\""), *x = strstr(p, "data-x=\""),
                   *y = strstr(p, "data-y=\"");
        cr_assert(nm && x && y);
        s = realloc(s, sizeof *s * (size_t)(n + 1));
        const char *e = strchr(nm + 13, '"');
        snprintf(s[n].name, sizeof s[n].name, "%.*s", (int)(e - nm - 13), nm + 13);
        int nx, ny;
        s[n].x = numbers(x + 8, &nx);
        s[n].y = numbers(y + 8, &ny);
        cr_assert_eq(nx, ny, "%s: %d x, %d y", s[n].name, nx, ny);
        s[n].n = nx;
        n++;
    }
    *count = n;
    return s;
}

static void free_series(series *s, int n)
{
    for (int i = 0; i < n; i++)
        free(s[i].x), free(s[i].y);
    free(s);
}

/* ---- the numbers, recomputed ------------------------------------------------------------------
 */

typedef struct ref {
    cvd_model *m;
    int cin, cout;
    double rate, fs;
    long p, rf;
} ref;

static float *forward_impulse(const ref *r, int ch, double a, long n)
{
    float *x = calloc((size_t)n * r->cin, sizeof *x), *y = NULL;
    long n_out;
    cvd_err err = {0};
    if (a != 0)
        x[(size_t)r->p * r->cin + ch] = (float)a;
    cr_assert_eq(cvd_model_forward(r->m, x, n, &y, &n_out, &err), 0, "%s", err.msg);
    cr_assert_eq(n_out, n);
    free(x);
    return y;
}

/* The reference sine's analysis (modelplot.h): bin k of N frames after S frames. */
static void sine_plan(const ref *r, long *N, long *k, long *S)
{
    const double f_ref = r->rate >= 8000 ? 1000.0 : r->fs / 48, period = r->fs / f_ref;
    if (fabs(period - round(period)) < 1e-9 && period >= 2 && period <= 2048) {
        const long P = lround(period);
        *N = P * ((2048 + P - 1) / P);
        *k = *N / P;
    } else {
        *N = 2048;
        *k = lround(f_ref * 2048 / r->fs);
    }
    *S = r->rf + cvd_model_latency(r->m) + 64;
}

/* dBFS of bins k*m (m = 1..nm) of output channel j for a sine of amplitude a on channel ch. */
static void sine_levels(const ref *r, int ch, double a, int j, int nm, double *db)
{
    long N, k, S;
    sine_plan(r, &N, &k, &S);
    const long n = S + N;
    float *x = calloc((size_t)n * r->cin, sizeof *x), *y = NULL;
    long n_out;
    cvd_err err = {0};
    for (long t = 0; t < n; t++)
        x[(size_t)t * r->cin + ch] = (float)(a * sin(2 * M_PI * (double)k * (double)t / (double)N));
    cr_assert_eq(cvd_model_forward(r->m, x, n, &y, &n_out, &err), 0, "%s", err.msg);
    for (int m = 1; m <= nm; m++) {
        double re = 0, im = 0;
        for (long t = 0; t < N; t++) {
            const double v = y[(size_t)(S + t) * r->cout + j];
            re += v * cos(2 * M_PI * (double)(k * m) * (double)t / (double)N);
            im -= v * sin(2 * M_PI * (double)(k * m) * (double)t / (double)N);
        }
        const double amp = 2 * sqrt(re * re + im * im) / (double)N;
        db[m - 1] = 20 * log10(amp > 1e-12 ? amp : 1e-12);
    }
    free(x);
    free(y);
}

/* Checks every series of an SVG against the model; returns 1 if it was drawn as nonlinear. */
static int check_series(const char *model, const char *svg, int want_nonlinear)
{
    ref r = {0};
    cvd_err err = {0};
    int n, nonlinear = 0, checked[4] = {0};
    cr_assert_eq(cvd_model_load(model, &r.m, &err), 0, "%s", err.msg);
    r.cin = cvd_model_in_channels(r.m);
    r.cout = cvd_model_out_channels(r.m);
    r.rate = cvd_model_sample_rate(r.m);
    r.fs = r.rate > 0 ? r.rate : 1;
    r.p = cvd_model_latency(r.m);
    r.rf = cvd_model_receptive_field(r.m);
    series *s = svg_series(svg, &n);
    for (int q = 0; q < n; q++)
        nonlinear |= strncmp(s[q].name, "level ", 6) == 0;
    cr_assert_eq(nonlinear, want_nonlinear, "%s: drawn as %slinear", model, nonlinear ? "non" : "");
    /* our own linearity check: impulses of 0.5, 1, -0.5 */
    {
        const long L = r.p + r.rf + 64;
        float *y0 = forward_impulse(&r, 0, 0, L), *y1 = forward_impulse(&r, 0, 0.5, L),
              *y2 = forward_impulse(&r, 0, 1.0, L), *ym = forward_impulse(&r, 0, -0.5, L);
        double e = 0, sc = 0;
        for (long v = 0; v < L * r.cout; v++) {
            const double d1 = y1[v] - y0[v];
            sc = fmax(sc, fabs(d1));
            e = fmax(e, fmax(fabs(y2[v] - y0[v] - 2 * d1), fabs(ym[v] - y0[v] + d1)));
        }
        cr_expect_eq(e > 1e-4 * sc + 1e-7, nonlinear, "%s: linearity: error %g of %g", model, e,
                     sc);
        free(y0), free(y1), free(y2), free(ym);
    }
    const double amp = nonlinear ? 0.01 : 1.0;
    for (int q = 0; q < n; q++) {
        const series *S = &s[q];
        int i, j;
        char kind[16];
        cr_assert_eq(sscanf(S->name, "%15s in%d out%d", kind, &i, &j), 3, "%s", S->name);
        cr_assert(i >= 0 && i < r.cin && j >= 0 && j < r.cout, "%s", S->name);
        if (strcmp(kind, "impulse") == 0 || strcmp(kind, "magnitude") == 0) {
            /* h[n] for n from -p to the receptive field, at amplitude `amp` */
            const long L = r.p + r.rf + r.p + 2;
            float *y0 = forward_impulse(&r, i, 0, L), *y1 = forward_impulse(&r, i, amp, L);
            double *h = malloc(sizeof *h * (size_t)L), peak = 1e-30;
            for (long t = 0; t < L; t++) {
                h[t] = ((double)y1[(size_t)t * r.cout + j] - y0[(size_t)t * r.cout + j]) / amp;
                peak = fmax(peak, fabs(h[t]));
            }
            if (kind[0] == 'i') {
                for (int v = 0; v < S->n; v++) {
                    const long t = lround(S->x[v] * (r.rate > 0 ? r.rate / 1000 : 1)) + r.p;
                    const double want = t >= 0 && t < L ? h[t] : 0.0;
                    cr_assert_leq(fabs(S->y[v] - want), 1e-6 * peak + 1e-9,
                                  "%s: %s at %g: %.9g, want %.9g", model, S->name, S->x[v], S->y[v],
                                  want);
                }
                cr_assert_leq(S->x[0], 0.0, "%s: the impulse response starts after the impulse",
                              S->name);
                checked[0]++;
            } else {
                cr_assert_eq(S->n, 240);
                cr_assert(fabs(S->x[S->n - 1] - r.fs / 2) < 1e-6 * r.fs, "%s: ends at %g", S->name,
                          S->x[S->n - 1]);
                for (int v = 0; v < S->n; v++) {
                    double re = 0, im = 0;
                    for (long t = 0; t < L; t++) {
                        const double ph = 2 * M_PI * S->x[v] * (double)(t - r.p) / r.fs;
                        re += h[t] * cos(ph);
                        im -= h[t] * sin(ph);
                    }
                    const double a = sqrt(re * re + im * im);
                    const double want = 20 * log10(a > 1e-12 ? a : 1e-12);
                    if (want > -100)
                        cr_assert_leq(fabs(S->y[v] - want), 0.01,
                                      "%s: %s at %g: %.6g dB, want %.6g", model, S->name, S->x[v],
                                      S->y[v], want);
                }
                checked[1]++;
            }
            free(h), free(y0), free(y1);
        } else if (strcmp(kind, "level") == 0) {
            cr_assert_eq(S->n, 21);
            for (int v = 0; v < S->n; v += 5) { /* -60, -45, -30, -15, 0 dBFS */
                double db;
                cr_assert_float_eq(S->x[v], -60.0 + 3 * v, 1e-9);
                sine_levels(&r, i, pow(10, S->x[v] / 20), j, 1, &db);
                if (db > -100)
                    cr_assert_leq(fabs(S->y[v] - db), 0.01, "%s: %s at %g dBFS: %g, want %g", model,
                                  S->name, S->x[v], S->y[v], db);
            }
            checked[2]++;
        } else if (strcmp(kind, "harmonics") == 0) {
            double db[10];
            cr_assert(S->n >= 1 && S->n <= 10);
            sine_levels(&r, i, pow(10, -6.0 / 20), j, S->n, db);
            for (int m = 0; m < S->n; m++) {
                cr_assert_float_eq(S->x[m], m + 1.0, 1e-9);
                if (db[m] > -100)
                    cr_assert_leq(fabs(S->y[m] - db[m]), 0.05, "%s: %s H%d: %g, want %g", model,
                                  S->name, m + 1, S->y[m], db[m]);
            }
            checked[3]++;
        } else {
            cr_assert_fail("%s: unknown series %s", model, S->name);
        }
    }
    const int pairs = (r.cin < 8 ? r.cin : 8) * (r.cout < 8 ? r.cout : 8);
    cr_expect_eq(checked[0], pairs, "%s: %d impulse responses", model, checked[0]);
    cr_expect_eq(checked[1], pairs, "%s: %d magnitude responses", model, checked[1]);
    cr_expect_eq(checked[2], nonlinear ? pairs : 0);
    cr_expect_eq(checked[3], nonlinear ? pairs : 0);
    free_series(s, n);
    cvd_model_unref(r.m);
    return nonlinear;
}

/* Plots model as SVG and PNG (the same picture) and checks both, and the numbers. */
static void plot_model(const char *model, int want_nonlinear)
{
    char svg_path[PATH_CAP], png_path[PATH_CAP], csv_path[PATH_CAP];
    snprintf(svg_path, sizeof svg_path, "%s", tmp("p.svg"));
    snprintf(png_path, sizeof png_path, "%s", tmp("p.png"));
    snprintf(csv_path, sizeof csv_path, "%s", tmp("p.csv"));
    proc p = RUN("convd-info", model, "--plot", svg_path, "--plot-data", csv_path);
    expect_status(&p, 0, model);
    cr_expect_not_null(strstr(p.out, "plot "), "%s: no plot line:\n%s", model, p.out);
    proc_free(&p);
    p = RUN("convd-info", "--plot", png_path, model);
    expect_status(&p, 0, model);
    proc_free(&p);
    char *svg = tu_read_file(svg_path, NULL);
    cr_assert_not_null(svg, "%s: no SVG", model);
    const char *root = check_xml(svg, svg_path);
    cr_assert_eq(strncmp(root, "<svg ", 5), 0, "%s: the root is not <svg>", svg_path);
    const int w = (int)attr_num(root, "width"), h = (int)attr_num(root, "height");
    cr_expect_eq(w, 1000);
    cr_expect_gt(h, 300);
    check_png(png_path, w, h);
    /* titles and axes are labelled */
    cr_expect_not_null(strstr(svg, "impulse response"), "%s", model);
    cr_expect_not_null(strstr(svg, "magnitude (dB)"), "%s", model);
    cr_expect_not_null(strstr(svg, "amplitude"), "%s", model);
    cr_expect_not_null(strstr(svg, "frequency ("), "%s", model);
    if (want_nonlinear) {
        cr_expect_not_null(strstr(svg, "input level (dBFS)"), "%s", model);
        cr_expect_not_null(strstr(svg, "THD") || strstr(svg, "harmonics of"), "%s", model);
    }
    check_series(model, svg, want_nonlinear);
    /* --plot-data: the same numbers */
    char *csv = tu_read_file(csv_path, NULL);
    cr_assert_not_null(csv);
    cr_expect_eq(strncmp(csv, "series,x,y\n", 11), 0);
    cr_expect_not_null(strstr(csv, "impulse in0 out0,"), "%.80s", csv);
    cr_expect_not_null(strstr(csv, "magnitude in0 out0,"));
    if (want_nonlinear)
        cr_expect_not_null(strstr(csv, "harmonics in0 out0,1,"));
    free(csv);
    free(svg);
}

static int is_json(const struct dirent *d)
{
    const size_t n = strlen(d->d_name);
    return n > 5 && strcmp(d->d_name + n - 5, ".json") == 0;
}

Test(plot, demo_models, .timeout = 600)
{
    struct dirent **list;
    int n = scandir("config/models", &list, is_json, alphasort);
    cr_assert_geq(n, 2, "config/models: %d models", n);
    for (int i = 0; i < n; i++) {
        char path[PATH_CAP];
        snprintf(path, sizeof path, "config/models/%s", list[i]->d_name);
        plot_model(path, 1); /* drive and vibration-denoise are both nonlinear */
        free(list[i]);
    }
    free(list);
}

Test(plot, linear_model_without_rate)
{
    plot_model(LINEAR, 0);
    char *svg = tu_read_file(tmp("p.svg"), NULL);
    cr_expect_not_null(strstr(svg, "time (frames)"));
    cr_expect_not_null(strstr(svg, "cycles per frame"));
    cr_expect_not_null(strstr(svg, "linear"));
    cr_expect_not_null(strstr(svg, "(in 1)"), "two input channels: a row each");
    cr_expect_not_null(strstr(svg, ">out 1</text>"), "two output channels: a legend");
    free(svg);
}

Test(plot, refusals)
{
    proc p = RUN("convd-info", "tests/data/keras/k3_seq_classifier.keras", "--plot", tmp("w.png"));
    cr_expect_eq(p.status, 1);
    cr_expect_not_null(strstr(p.err, "windowed model"), "%s", p.err);
    cr_expect(!file_exists(tmp("w.png")));
    proc_free(&p);
    p = RUN("convd-info", LINEAR, "--plot", tmp("w.jpg"));
    cr_expect_eq(p.status, 2);
    cr_expect_not_null(strstr(p.err, ".png or a .svg"), "%s", p.err);
    proc_free(&p);
    p = RUN("convd-info", LINEAR, LINEAR, "--plot", tmp("w.png"));
    cr_expect_eq(p.status, 2);
    cr_expect_not_null(strstr(p.err, "one MODEL"), "%s", p.err);
    proc_free(&p);
    p = RUN("convd-info", LINEAR, "--plot-data", tmp("w.csv"));
    cr_expect_eq(p.status, 2);
    proc_free(&p);
    p = RUN("convd-info", LINEAR, "--plot", "/nonexistent-dir/p.svg");
    cr_expect_eq(p.status, 1);
    cr_expect_not_null(strstr(p.err, "/nonexistent-dir/p.svg"), "%s", p.err);
    proc_free(&p);
}
