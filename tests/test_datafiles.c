/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_datafiles.c - data as people have it (tools/lib/audiofile.c, convd-run; docs/TOOLS.md):
 * csv with a header row (detected or --csv-header), columns chosen by index, range or name
 * (--columns), a time column passed through to the output (--time-column), a header line on
 * csv output naming the output channels; NumPy's .npy read (files numpy.save wrote:
 * tests/data/tools/npy/, from scripts/gen_datafile_cases.py) and written (checked byte by
 * byte against NumPy's format), refused clearly when it is not float32/float64 C-order
 * (frames, channels); a warning and exit status 1 when the input is too short for one
 * output; the summary's rate phrased for sensors when nothing says the data is audio.
 */
#include "toolrun.h"

#include <float.h>

#include "audiofile.h"
#include "convd_dsp.h"
#include "convd_model.h"

TestSuite(datafiles, .init = make_tmpdir, .fini = remove_tmpdir);

#define GRAPH "tests/data/tools/graph.json" /* 2 channels in, 3 out ("out"), 44100 Hz */
#define CLASSIFIER "tests/data/keras/k3_seq_classifier.keras" /* 2 in, windows of 16, 4 out */
#define NPY "tests/data/tools/npy/"

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f, "%s: %s", path, strerror(errno));
    cr_assert_eq(fputs(text, f) >= 0, 1);
    cr_assert_eq(fclose(f), 0);
}

/* A csv of n frames of 2 channels (x[t] = sin, cos of t), with an optional header line and
 * time column ("t" then the values), for the models with 2 inputs. */
static void write_sensor_csv(const char *path, long n, const char *header, int with_time)
{
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    if (header)
        fprintf(f, "%s\n", header);
    for (long t = 0; t < n; t++) {
        if (with_time)
            fprintf(f, "2026-01-01T00:00:%02ld.%03ld,", t / 10, (t % 10) * 100);
        fprintf(f, "%.9g,%.9g\n", sin(0.3 * (double)t), cos(0.17 * (double)t));
    }
    cr_assert_eq(fclose(f), 0);
}

static void sensor_frames(float *x, long n)
{
    for (long t = 0; t < n; t++) {
        x[2 * t] = (float)sin(0.3 * (double)t);
        x[2 * t + 1] = (float)cos(0.17 * (double)t);
    }
}

/* The lines of a text, split in place. */
static int lines_of(char *text, char **lines, int cap)
{
    int n = 0;
    for (char *save = NULL, *l = strtok_r(text, "\n", &save); l && n < cap;
         l = strtok_r(NULL, "\n", &save))
        lines[n++] = l;
    return n;
}

/* Reads a csv output: its header line into *header (malloc'd), the values after `skip`
 * leading fields of each line into floats. */
static float *read_csv_output(const char *path, int skip, char **header, long *rows, int *cols)
{
    char *text = tu_read_file(path, NULL), *save = NULL, *line;
    long cap = 1024, n = 0;
    float *y = malloc(sizeof(float) * (size_t)cap);
    cr_assert_not_null(text, "%s: not written", path);
    *cols = -1;
    *rows = 0;
    line = strtok_r(text, "\n", &save);
    cr_assert_not_null(line, "%s: empty", path);
    *header = strdup(line);
    for (line = strtok_r(NULL, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char *p = line;
        int c = 0;
        for (int k = 0; k < skip; k++) {
            if (*p == '"') { /* a quoted field */
                p++;
                while (*p && !(*p == '"' && p[1] != '"'))
                    p += *p == '"' ? 2 : 1;
                p++;
            } else {
                p += strcspn(p, ",");
            }
            cr_assert_eq(*p, ',', "%s: line %ld: no field after the time", path, *rows + 2);
            p++;
        }
        for (;;) {
            char *end;
            if (n == cap)
                y = realloc(y, sizeof(float) * (size_t)(cap *= 2));
            y[n++] = strtof(p, &end);
            cr_assert(end != p, "%s: line %ld: not a number: %s", path, *rows + 2, p);
            c++;
            if (*end != ',')
                break;
            p = end + 1;
        }
        cr_assert(*cols < 0 || *cols == c, "%s: ragged output", path);
        *cols = c;
        (*rows)++;
    }
    free(text);
    return y;
}

/* The output of GRAPH offline on frames x (through the library), n_out frames of 3. */
static float *graph_offline(const float *x, long n, long *n_out)
{
    cvd_model *m = NULL;
    cvd_err err = {0};
    float *y = NULL;
    cr_assert_eq(cvd_model_load(GRAPH, &m, &err), 0, "%s", err.msg);
    cr_assert_eq(cvd_model_forward(m, x, n, &y, n_out, &err), 0, "%s", err.msg);
    cvd_model_unref(m);
    return y;
}

/* ---- csv: header rows, columns, the time column ----------------------------------------- */

Test(datafiles, csv_header_detected_and_output_header)
{
    const char *in = tmp("h.csv"), *plain = tmp("plain.csv"), *out = tmp("o.csv"),
               *out2 = tmp("o2.csv");
    char *h1, *h2;
    long r1, r2, ny;
    int c1, c2;
    write_sensor_csv(in, 50, "accel x, \"accel, y\"", 0);
    write_sensor_csv(plain, 50, NULL, 0);
    proc p = RUN("convd-run", GRAPH, in, out);
    expect_status(&p, 0, "a header row");
    proc_free(&p);
    p = RUN("convd-run", GRAPH, plain, out2);
    expect_status(&p, 0, "no header row");
    proc_free(&p);
    float *a = read_csv_output(out, 0, &h1, &r1, &c1), *b = read_csv_output(out2, 0, &h2, &r2, &c2);
    cr_expect_str_eq(h1, "out_0,out_1,out_2", "the output's header names its channels");
    cr_expect_str_eq(h2, "out_0,out_1,out_2");
    cr_assert_eq(r1, 50, "the header row is not a frame: %ld rows", r1);
    cr_assert_eq(r2, 50);
    cr_assert_eq(c1, 3);
    float x[100];
    sensor_frames(x, 50);
    float *want = graph_offline(x, 50, &ny);
    cr_assert_eq(ny, 50);
    cr_expect_leq(max_abs_diff(a, want, 150), 1e-6, "with a header row");
    cr_expect_leq(max_abs_diff(b, want, 150), 1e-6, "without");
    /* --no-csv-header: no header line out, and a header row in is refused as data */
    proc q = RUN("convd-run", GRAPH, plain, out2, "--no-csv-header");
    expect_status(&q, 0, "--no-csv-header");
    char *text = tu_read_file(out2, NULL);
    cr_expect(text[0] == '-' || (text[0] >= '0' && text[0] <= '9'), "a header line: %.30s", text);
    free(text);
    proc_free(&q);
    q = RUN("convd-run", GRAPH, in, out2, "--no-csv-header");
    cr_expect_eq(q.status, 1);
    cr_expect_not_null(strstr(q.err, "line 1: field 1 \"accel x\" is not a number"), "%s", q.err);
    proc_free(&q);
    free(a), free(b), free(h1), free(h2), free(want);
}

Test(datafiles, csv_header_forced_for_numeric_names)
{
    const char *in = tmp("n.csv"), *out = tmp("o.csv");
    char *h;
    long rows;
    int cols;
    write_sensor_csv(in, 20, "1,2", 0);
    proc p = RUN("convd-run", GRAPH, in, out); /* "1,2" reads as a frame */
    expect_status(&p, 0, "numeric first line");
    free(read_csv_output(out, 0, &h, &rows, &cols));
    cr_expect_eq(rows, 21, "detected as data: %ld frames", rows);
    free(h);
    proc_free(&p);
    p = RUN("convd-run", GRAPH, in, out, "--csv-header", "--columns", "2,1");
    expect_status(&p, 0, "--csv-header");
    free(read_csv_output(out, 0, &h, &rows, &cols));
    cr_expect_eq(rows, 20, "--csv-header: %ld frames", rows);
    free(h);
    proc_free(&p);
    /* a first line that starts like a number is not a header: a malformed frame */
    write_text(in, "0.5;0.25\n");
    cvd_af *af = NULL;
    cvd_err err = {0};
    cr_assert_lt(cvd_af_open_read(in, CVD_AF_CSV, 0, &af, &err), 0);
    cr_expect_not_null(strstr(err.msg, "separated by ';'"), "%s", err.msg);
}

Test(datafiles, csv_columns_by_index_range_and_name)
{
    const char *in = tmp("c.csv"), *swapped = tmp("s.csv");
    FILE *f = fopen(in, "w"), *g = fopen(swapped, "w");
    cr_assert(f && g);
    fprintf(f, "id,temp,note,hum\n");
    fprintf(g, "hum,temp\n");
    for (int t = 0; t < 30; t++) {
        fprintf(f, "%d,%.9g,\"ok, %d\",%.9g\n", t, 20 + sin(t), t, 40 + cos(t));
        fprintf(g, "%.9g,%.9g\n", 40 + cos(t), 20 + sin(t));
    }
    fclose(f), fclose(g);
    const char *specs[] = {"hum,temp", "4,2", "4,2-2", "hum , temp"};
    char *want_text = NULL;
    for (size_t i = 0; i < sizeof specs / sizeof specs[0]; i++) {
        const char *out = tmp("o.csv");
        proc p = RUN("convd-run", GRAPH, in, out, "--columns", specs[i]);
        expect_status(&p, 0, specs[i]);
        char *text = tu_read_file(out, NULL);
        if (want_text == NULL) {
            proc q = RUN("convd-run", GRAPH, swapped, tmp("w.csv"));
            expect_status(&q, 0, "the same columns in a file of their own");
            want_text = tu_read_file(tmp("w.csv"), NULL);
            proc_free(&q);
        }
        cr_expect_str_eq(text, want_text, "--columns %s", specs[i]);
        free(text);
        proc_free(&p);
    }
    free(want_text);
    /* the library: names of the channels chosen */
    cvd_af *af = NULL;
    cvd_err err = {0};
    cvd_af_read_opts o = {CVD_AF_HEADER_DETECT, "temp,4", NULL};
    cr_assert_eq(cvd_af_open_read_opts(in, CVD_AF_UNKNOWN, 0, &o, &af, &err), 0, "%s", err.msg);
    cr_expect_eq(cvd_af_get_info(af)->channels, 2);
    cr_expect_str_eq(cvd_af_channel_name(af, 0), "temp");
    cr_expect_str_eq(cvd_af_channel_name(af, 1), "hum");
    float x[8];
    cr_assert_eq(cvd_af_read(af, x, 4, &err), 4);
    cr_expect_float_eq(x[0], 20.0f, 1e-6);
    cr_expect_float_eq(x[7], (float)(40 + cos(3)), 1e-6);
    cvd_af_close(af, NULL);
}

static void expect_refused(const char *in, const char *const *args, int status, const char *f1,
                           const char *f2)
{
    const char *argv[16];
    int n = 0;
    argv[n++] = GRAPH;
    argv[n++] = in;
    argv[n++] = tmp("never.csv");
    for (; *args; args++)
        argv[n++] = *args;
    argv[n] = NULL;
    proc p = run_argv("convd-run", NULL, argv);
    cr_expect_eq(p.status, status, "%s %s: exit status %d, want %d; stderr:\n%s", argv[3],
                 argv[4] ? argv[4] : "", p.status, status, p.err);
    cr_expect_not_null(strstr(p.err, f1), "lacks \"%s\":\n%s", f1, p.err);
    if (f2)
        cr_expect_not_null(strstr(p.err, f2), "lacks \"%s\":\n%s", f2, p.err);
    cr_expect(!file_exists(tmp("never.csv")), "an output was left behind");
    proc_free(&p);
}

Test(datafiles, csv_column_errors_are_clear)
{
    char in[PATH_CAP], plain[PATH_CAP], three[PATH_CAP]; /* tmp()'s buffers are reused */
    snprintf(in, sizeof in, "%s", tmp("c.csv"));
    snprintf(plain, sizeof plain, "%s", tmp("p.csv"));
    snprintf(three, sizeof three, "%s", tmp("three.csv"));
    write_sensor_csv(in, 10, "time,x,y", 1);
    write_sensor_csv(plain, 10, NULL, 0);
    write_text(three, "a,b,c\n1,2,3\n");
    expect_refused(in, (const char *const[]){"--columns", "x,z", "--time-column", "time", NULL}, 1,
                   "column 'z': no such column", "time, x, y");
    expect_refused(in, (const char *const[]){"--columns", "2,9", NULL}, 1, "column 9",
                   "the file has 3 columns");
    expect_refused(plain, (const char *const[]){"--columns", "x", NULL}, 1, "column 'x'",
                   "no header row");
    expect_refused(in, (const char *const[]){"--columns", "1-2", "--time-column", "1", NULL}, 1,
                   "column 1 is the time column", NULL);
    expect_refused(in, (const char *const[]){"--columns", "3-2", NULL}, 1, "an empty range", NULL);
    expect_refused(three, (const char *const[]){NULL}, 1, "3 channels", "the model takes 2");
    expect_refused(in, (const char *const[]){NULL}, 1,
                   "field 1 \"2026-01-01T00:00:00.000\" is "
                   "not a number",
                   NULL);
    expect_refused(in, (const char *const[]){"--columns", "x", "--time-column", "time", NULL}, 1,
                   "1 channel chosen (--columns)", "the model takes 2");
    /* usage errors: options that do not apply */
    expect_refused(NPY "values.f32", (const char *const[]){"--columns", "1,2", NULL}, 2,
                   "--columns", "csv and npy input");
    proc p = RUN("convd-run", GRAPH, in, tmp("o.f32"), "--time-column", "time");
    cr_expect_eq(p.status, 2, "--time-column to f32: %s", p.err);
    cr_expect_not_null(strstr(p.err, "the time column goes to a csv output"), "%s", p.err);
    proc_free(&p);
    p = RUN("convd-run", GRAPH, in, tmp("o.csv"), "--csv-header", "--no-csv-header");
    cr_expect_eq(p.status, 2);
    proc_free(&p);
}

/* The time column: each output line starts with the text of the input frame it lines up with
 * (streaming: the same frame, latency or not); a window's record with its last frame's. */
Test(datafiles, time_column_passes_through)
{
    const char *in = tmp("t.csv"), *out = tmp("o.csv");
    char *h, *text, *lines[64];
    long rows;
    int cols;
    write_sensor_csv(in, 40, "when,x,y", 1);
    const char *blocks[] = {"1", "7", "64"};
    for (int b = 0; b < 3; b++) {
        proc p = RUN("convd-run", GRAPH, in, out, "--time-column", "when", "--block", blocks[b]);
        expect_status(&p, 0, "--time-column");
        proc_free(&p);
        float *y = read_csv_output(out, 1, &h, &rows, &cols);
        cr_expect_str_eq(h, "when,out_0,out_1,out_2");
        cr_assert_eq(rows, 40);
        cr_assert_eq(cols, 3);
        float x[80];
        long ny;
        sensor_frames(x, 40);
        float *want = graph_offline(x, 40, &ny);
        cr_expect_leq(max_abs_diff(y, want, 120), 1e-6, "the values, beside the time column");
        text = tu_read_file(out, NULL);
        cr_assert_eq(lines_of(text, lines, 64), 41);
        for (int t = 0; t < 40; t++) {
            char stamp[64];
            snprintf(stamp, sizeof stamp, "2026-01-01T00:00:%02d.%03d,", t / 10, (t % 10) * 100);
            cr_expect_eq(strncmp(lines[t + 1], stamp, strlen(stamp)), 0,
                         "--block %s: line %d: \"%s\", want it to start with %s", blocks[b], t + 2,
                         lines[t + 1], stamp);
        }
        free(text), free(y), free(h), free(want);
    }
    /* the same offline */
    proc p = RUN("convd-run", GRAPH, in, out, "--time-column", "1", "--offline");
    expect_status(&p, 0, "--time-column offline");
    text = tu_read_file(out, NULL);
    cr_assert_eq(lines_of(text, lines, 64), 41);
    cr_expect_eq(strncmp(lines[40], "2026-01-01T00:00:03.900,", 24), 0, "%s", lines[40]);
    free(text);
    proc_free(&p);
    /* a windowed model: windows of 16 frames, hop 4: record k has frame 4k + 15's time */
    p = RUN("convd-run", CLASSIFIER, in, out, "--time-column", "when", "--hop", "4");
    expect_status(&p, 0, "--time-column, windowed");
    text = tu_read_file(out, NULL);
    int n = lines_of(text, lines, 64);
    cr_expect_str_eq(lines[0], "when,dense_1_0,dense_1_1,dense_1_2,dense_1_3");
    cr_assert_eq(n, 1 + (40 - 16) / 4 + 1, "%d lines", n);
    for (int k = 0; k + 1 < n; k++) {
        char stamp[64];
        const int t = 4 * k + 15;
        snprintf(stamp, sizeof stamp, "2026-01-01T00:00:%02d.%03d,", t / 10, (t % 10) * 100);
        cr_expect_eq(strncmp(lines[k + 1], stamp, strlen(stamp)), 0, "record %d: %s, want %s", k,
                     lines[k + 1], stamp);
    }
    free(text);
    proc_free(&p);
    /* a time text that needs quotes keeps them */
    write_text(in, "when,x,y\n\"Jan 1, 00:00\",0.5,0.25\n");
    p = RUN("convd-run", GRAPH, in, out, "--time-column", "when");
    expect_status(&p, 0, "a quoted time");
    text = tu_read_file(out, NULL);
    cr_expect_eq(strncmp(text, "when,out_0,out_1,out_2\n\"Jan 1, 00:00\",", 38), 0, "%s", text);
    free(text);
    proc_free(&p);
}

/* ---- npy ------------------------------------------------------------------------------------ */

static float *load_npy(const char *path, long *n, int *C, const cvd_af_read_opts *o)
{
    cvd_af *af = NULL;
    cvd_err err = {0};
    float *x = NULL;
    cr_assert_eq(cvd_af_open_read_opts(path, CVD_AF_UNKNOWN, 0, o, &af, &err), 0, "%s: %s", path,
                 err.msg);
    cr_assert_eq(cvd_af_get_info(af)->format, CVD_AF_NPY);
    *C = cvd_af_get_info(af)->channels;
    cr_assert_eq(cvd_af_read_all(af, &x, n, &err), 0, "%s: %s", path, err.msg);
    cvd_af_close(af, NULL);
    return x;
}

/* Files numpy.save wrote: float32, float64 (rounded as NumPy rounds), one channel, format
 * 2.0, columns chosen, a float64 time column passed through with all its digits. */
Test(datafiles, npy_numpy_files_read)
{
    long n, nv;
    int C;
    float *want = read_f32(NPY "values.f32", &nv), *want8 = read_f32(NPY "f8_round.f32", &nv);
    float *x = load_npy(NPY "f4_2d.npy", &n, &C, NULL);
    cr_assert(n == 40 && C == 2, "f4_2d: %ld x %d", n, C);
    cr_expect_eq(memcmp(x, want, sizeof(float) * 80), 0, "f4_2d: not the same floats");
    free(x);
    x = load_npy(NPY "f8_2d.npy", &n, &C, NULL);
    cr_assert(n == 40 && C == 2);
    cr_expect_eq(memcmp(x, want8, sizeof(float) * 80), 0, "f8_2d: not rounded as NumPy rounds");
    free(x);
    x = load_npy(NPY "f4_1d.npy", &n, &C, NULL);
    cr_assert(n == 40 && C == 1, "f4_1d: %ld x %d", n, C);
    for (int t = 0; t < 40; t++)
        cr_expect_eq(x[t], want[2 * t]);
    free(x);
    x = load_npy(NPY "f8_1d_v2.npy", &n, &C, NULL);
    cr_assert(n == 40 && C == 1, "f8_1d_v2: %ld x %d", n, C);
    for (int t = 0; t < 40; t++)
        cr_expect_eq(x[t], want8[2 * t + 1]);
    free(x);
    cvd_af_read_opts o = {CVD_AF_HEADER_DETECT, "2", NULL};
    x = load_npy(NPY "f4_2d.npy", &n, &C, &o);
    cr_assert(n == 40 && C == 1);
    cr_expect_eq(x[5], want[11]);
    free(x);
    /* the time column: 1.7e9 + 0.25 t, every digit kept (float32 would lose them) */
    cvd_af *af = NULL;
    cvd_err err = {0};
    cvd_af_read_opts ot = {CVD_AF_HEADER_DETECT, NULL, "1"};
    cr_assert_eq(cvd_af_open_read_opts(NPY "time_f8.npy", CVD_AF_UNKNOWN, 0, &ot, &af, &err), 0,
                 "%s", err.msg);
    cr_expect_eq(cvd_af_get_info(af)->channels, 2);
    cr_expect_str_eq(cvd_af_time_name(af), "time");
    float y[24];
    cr_assert_eq(cvd_af_read(af, y, 12, &err), 12);
    cr_expect_str_eq(cvd_af_time(af, 0), "1700000000");
    cr_expect_str_eq(cvd_af_time(af, 3), "1700000000.75");
    cr_expect_float_eq(y[2 * 3], (float)sin(3.0), 1e-7);
    cvd_af_close(af, NULL);
    free(want), free(want8);
}

Test(datafiles, npy_refusals_name_the_problem)
{
    static const struct {
        const char *file, *f1, *f2;
    } cases[] = {
        {"be_f4.npy", "dtype '>f4'", "big-endian"},
        {"i2.npy", "dtype '<i2'", "float32"},
        {"complex.npy", "dtype '<c8'", NULL},
        {"fortran.npy", "Fortran order", "np.ascontiguousarray"},
        {"three_d.npy", "3 dimensions", "(frames, channels)"},
        {"struct.npy", "not a valid .npy file", "structured"},
        {"big_f8.npy", "a[7, 1] = 1e+300", "float32 range"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char path[256];
        float *x;
        long n;
        cvd_err err = {0};
        snprintf(path, sizeof path, NPY "%s", cases[i].file);
        cr_expect_lt(cvd_af_load(path, CVD_AF_UNKNOWN, 0, &x, &n, NULL, &err), 0, "%s loaded",
                     path);
        cr_expect_not_null(strstr(err.msg, path), "%s", err.msg);
        cr_expect_not_null(strstr(err.msg, cases[i].f1), "%s: lacks %s", err.msg, cases[i].f1);
        if (cases[i].f2)
            cr_expect_not_null(strstr(err.msg, cases[i].f2), "%s: lacks %s", err.msg, cases[i].f2);
    }
    /* hand-made headers: truncated data, data past the end, a bad magic, keys */
    static const struct {
        const char *head;
        int data_values; /* float32 values after the header */
        const char *f1;
    } made[] = {
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (4, 2), }", 7, "(truncated)"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (4, 2), }", 9, "holds 36 bytes"},
        {"{'descr': '<f4', 'shape': (4, 2), }", 8, "lacks 'fortran_order'"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (4, 2), 'x': 1}", 8, "'x'"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (4, 2), 'shape': (4, 2)}", 8, "twice"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': 8, }", 8, "not a tuple"},
        {"{'descr': '<f4' 'fortran_order': False, 'shape': (4, 2), }", 8, "commas"},
        {"['<f4', False, (4, 2)]", 8, "not a Python dictionary"},
    };
    for (size_t i = 0; i < sizeof made / sizeof made[0]; i++) {
        const char *path = tmp("made.npy");
        FILE *f = fopen(path, "wb");
        char head[256];
        size_t hl = (size_t)snprintf(head, sizeof head, "%s", made[i].head);
        while ((10 + hl + 1) % 64)
            head[hl++] = ' ';
        head[hl++] = '\n';
        fwrite("\x93NUMPY\x01\x00", 1, 8, f);
        fputc((int)(hl & 0xff), f);
        fputc((int)(hl >> 8), f);
        fwrite(head, 1, hl, f);
        for (int k = 0; k < made[i].data_values; k++) {
            float v = (float)k;
            fwrite(&v, 4, 1, f); /* little-endian hosts only run these tests' expectations */
        }
        fclose(f);
        float *x;
        long n;
        cvd_err err = {0};
        cr_expect_lt(cvd_af_load(path, CVD_AF_UNKNOWN, 0, &x, &n, NULL, &err), 0, "%s loaded",
                     made[i].head);
        cr_expect_not_null(strstr(err.msg, made[i].f1), "%s: %s: lacks %s", made[i].head, err.msg,
                           made[i].f1);
    }
    write_text(tmp("nomagic.npy"), "PK\x03\x04 not numpy");
    proc p = RUN("convd-run", GRAPH, tmp("nomagic.npy"), tmp("o.f32"));
    cr_expect_eq(p.status, 1);
    cr_expect_not_null(strstr(p.err, "not a NumPy .npy file"), "%s", p.err);
    proc_free(&p);
}

/* Parses an npy file convd wrote, as NumPy's format says: magic, version 1.0, header length,
 * a header naming '<f4', C order and the shape, 64-byte alignment, the data. */
static float *parse_written_npy(const char *bytes, size_t len, long *rows, int *cols)
{
    cr_assert_geq(len, 10u);
    cr_assert_eq(memcmp(bytes, "\x93NUMPY\x01\x00", 8), 0, "magic and version 1.0");
    const size_t hl = (unsigned char)bytes[8] | (size_t)(unsigned char)bytes[9] << 8;
    cr_assert_eq((10 + hl) % 64, 0u, "the data starts 64-byte aligned");
    cr_assert_leq(10 + hl, len);
    char *h = strndup(bytes + 10, hl);
    cr_assert_eq(h[hl - 1], '\n');
    cr_assert_not_null(strstr(h, "'descr': '<f4'"), "%s", h);
    cr_assert_not_null(strstr(h, "'fortran_order': False"), "%s", h);
    const char *sh = strstr(h, "'shape': (");
    cr_assert_not_null(sh, "%s", h);
    cr_assert_eq(sscanf(sh, "'shape': (%ld, %d)", rows, cols), 2, "%s", h);
    cr_assert_eq(len - 10 - hl, (size_t)*rows * (size_t)*cols * 4, "data size");
    float *y = malloc(len - 10 - hl + 4);
    memcpy(y, bytes + 10 + hl, len - 10 - hl);
    free(h);
    return y;
}

Test(datafiles, npy_written_as_numpy_reads_it)
{
    long nv, rows, n_off;
    int cols;
    float *x = read_f32(NPY "values.f32", &nv);
    float *want = graph_offline(x, 40, &n_off);
    const char *out = tmp("o.npy");
    proc p = RUN("convd-run", GRAPH, NPY "f4_2d.npy", out, "--block", "3");
    expect_status(&p, 0, "npy in, npy out");
    proc_free(&p);
    size_t len = 0;
    char *bytes = tu_read_file(out, &len);
    float *y = parse_written_npy(bytes, len, &rows, &cols);
    cr_expect(rows == 40 && cols == 3, "shape (%ld, %d)", rows, cols);
    cr_expect_leq(max_abs_diff(y, want, 120), 1e-6);
    free(y), free(bytes);
    /* to a pipe: no seeking back, the same bytes in the end */
    p = RUN("convd-run", GRAPH, NPY "f8_2d.npy", "-", "--format", "npy");
    expect_status(&p, 0, "npy to standard output");
    y = parse_written_npy(p.out, p.out_len, &rows, &cols);
    cr_expect(rows == 40 && cols == 3);
    free(y);
    proc_free(&p);
    /* and from a pipe */
    p = RUN_IN("convd-run", NPY "f4_2d.npy", GRAPH, "-", tmp("p.npy"), "--format", "npy");
    expect_status(&p, 0, "npy from standard input");
    bytes = tu_read_file(tmp("p.npy"), &len);
    y = parse_written_npy(bytes, len, &rows, &cols);
    cr_expect_leq(max_abs_diff(y, want, 120), 1e-6);
    free(y), free(bytes), free(want), free(x);
    proc_free(&p);
    /* an empty output: shape (0, 3) */
    write_text(tmp("empty.csv"), "x,y\n");
    p = RUN("convd-run", GRAPH, tmp("empty.csv"), tmp("e.npy"));
    expect_status(&p, 0, "no frames");
    bytes = tu_read_file(tmp("e.npy"), &len);
    free(parse_written_npy(bytes, len, &rows, &cols));
    cr_expect(rows == 0 && cols == 3);
    free(bytes);
    proc_free(&p);
    /* the library's own round trip */
    float z[6] = {1, -2, 3.5f, FLT_MAX, -0.0f, 1e-30f}, *back;
    long nb;
    cvd_err err = {0};
    cr_assert_eq(cvd_af_save(tmp("rt.npy"), CVD_AF_UNKNOWN, 2, 0, z, 3, &err), 0, "%s", err.msg);
    cr_assert_eq(cvd_af_load(tmp("rt.npy"), CVD_AF_UNKNOWN, 0, &back, &nb, NULL, &err), 0);
    cr_expect_eq(nb, 3);
    cr_expect_eq(memcmp(back, z, sizeof z), 0);
    free(back);
}

/* ---- too short, and the rate ----------------------------------------------------------------- */

Test(datafiles, short_input_warns_and_fails)
{
    const char *in = tmp("s.csv"), *out = tmp("o.csv");
    write_sensor_csv(in, 10, "x,y", 0);
    proc p = RUN("convd-run", CLASSIFIER, in, out);
    cr_expect_eq(p.status, 1, "exit status %d", p.status);
    cr_expect_not_null(strstr(p.err, "warning"), "%s", p.err);
    cr_expect_not_null(strstr(p.err, "10 frames, shorter than the model's window of 16 frames"),
                       "%s", p.err);
    cr_expect(!file_exists(out), "an empty output was left");
    proc_free(&p);
    /* exactly one window: one record */
    write_sensor_csv(in, 16, "x,y", 0);
    p = RUN("convd-run", CLASSIFIER, in, out, "--offline");
    expect_status(&p, 0, "one window");
    proc_free(&p);
    /* a streaming model with a valid convolution: fewer frames than its receptive field */
    write_text(tmp("valid.json"),
               "{\"format\": \"convd-model\", \"version\": 1, \"input_channels\": 2, \"seed\": 1,"
               " \"layers\": [{\"class_name\": \"Conv1D\", \"config\": {\"filters\": 1, "
               "\"kernel_size\": 5}}]}");
    write_sensor_csv(in, 3, NULL, 0);
    p = RUN("convd-run", tmp("valid.json"), in, out);
    cr_expect_eq(p.status, 1);
    cr_expect_not_null(strstr(p.err, "3 frames, fewer than the model needs for one output frame"),
                       "%s", p.err);
    cr_expect_not_null(strstr(p.err, "receptive field is 5 frames"), "%s", p.err);
    proc_free(&p);
}

Test(datafiles, rate_phrased_for_sensors)
{
    const char *in = tmp("s.csv"), *out = tmp("o.csv");
    write_sensor_csv(in, 64, "x,y", 0);
    /* a sensor model (no rate), csv: no seconds of audio, no assumed 48 kHz */
    proc p = RUN("convd-run", CLASSIFIER, in, out);
    expect_status(&p, 0, "sensor model");
    cr_expect_not_null(strstr(p.err, "rate unknown"), "%s", p.err);
    cr_expect_not_null(strstr(p.err, "frames/s"), "%s", p.err);
    cr_expect_null(strstr(p.err, "audio"), "%s", p.err);
    cr_expect_null(strstr(p.err, "assumed"), "%s", p.err);
    cr_expect_null(strstr(p.err, "48000"), "%s", p.err);
    proc_free(&p);
    /* the model declares its rate: seconds at that rate, not "of audio" */
    p = RUN("convd-run", GRAPH, in, out);
    expect_status(&p, 0, "a model with a rate");
    cr_expect_not_null(
        strstr(p.err, "64 frames in, 64 out; 0.001 s at 44100 Hz (the model's rate)"), "%s", p.err);
    cr_expect_null(strstr(p.err, "audio"), "%s", p.err);
    proc_free(&p);
    /* convd-info: no rate, no assumed one */
    p = RUN("convd-info", CLASSIFIER);
    expect_status(&p, 0, "convd-info");
    cr_expect_not_null(strstr(p.out, "the rate is unknown (at 1000 frames/s:"), "%s", p.out);
    cr_expect_null(strstr(p.out, "assumed"), "%s", p.out);
    proc_free(&p);
}
