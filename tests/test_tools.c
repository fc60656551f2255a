/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_tools.c - the command-line tools, run as programs, and tools/lib/audiofile.c.
 *
 * The programs are found beside this test binary (build/ or build-san/), or in CVD_BUILD_DIR
 * when set; they run through posix_spawn with their standard streams redirected to files in a
 * temporary folder. Every tests/data/nam model must reproduce its reference output through
 * convd-run at several block sizes and offline; ../shared/models/nam/wavenet_a1_standard.nam
 * too when ../shared is there (the test is skipped with a note otherwise).
 *
 * Long because: it runs every tool's options and errors as programs, and audiofile.c's formats
 * directly, in one suite sharing its runner.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <locale.h>
#include <math.h>
#include <sndfile.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "audiofile.h"
#include "convd_dsp.h"
#include "convd_model.h"
#include "testutil.h"

#define NAM_DIR "tests/data/nam"
#define TOOLS_DATA "tests/data/tools"
#define INPUT_4K NAM_DIR "/input_4k.f32"
#define SHARED_NAM "../shared/models/nam"
#define STANDARD SHARED_NAM "/wavenet_a1_standard.nam"
#define STANDARD_IN SHARED_NAM "/signal_2s_48k.f32"
#define STANDARD_OUT SHARED_NAM "/wavenet_a1_standard.out.f32"
#define TOL 1e-4
#define PATH_CAP 1024

#include "toolrun.h"

TestSuite(tools, .init = make_tmpdir, .fini = remove_tmpdir);

/* n frames of C channels of a deterministic audio-range signal (|x| < 1). */
static float *test_frames_audio(long n, int C)
{
    float *x = malloc(sizeof(float) * (size_t)n * (size_t)C);
    cvd_rng r;
    cvd_rng_seed(&r, tu_seed());
    for (long i = 0; i < n * C; i++)
        x[i] = (float)(0.6 * sin(0.01 * (double)i * (1 + i % C)) +
                       0.3 * (cvd_rng_uniform(&r) * 2 - 1));
    return x;
}

/* Compares a float32 output file with a reference; returns the max abs error (INFINITY when
 * the lengths differ or a file is missing). */
static double compare_f32(const char *got_path, const char *ref_path, long *n_got, long *n_ref)
{
    long ng = -1, nr = -1;
    float *g = read_f32(got_path, &ng), *r = read_f32(ref_path, &nr);
    double e = g && r && ng == nr ? max_abs_diff(g, r, ng) : INFINITY;
    if (n_got)
        *n_got = ng;
    if (n_ref)
        *n_ref = nr;
    free(g);
    free(r);
    return e;
}

/* ---- the tests/data/nam models ------------------------------------------------------------ */

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The names (without .nam) of the .nam files in tests/data/nam, sorted; *n of them. */
static char **nam_models(int *n)
{
    DIR *d = opendir(NAM_DIR);
    struct dirent *e;
    char **names = NULL;
    int cap = 0;
    *n = 0;
    cr_assert_not_null(d, "%s: %s", NAM_DIR, strerror(errno));
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        if (len <= 4 || strcmp(e->d_name + len - 4, ".nam") != 0)
            continue;
        if (*n == cap) {
            cap = cap ? cap * 2 : 32;
            names = realloc(names, sizeof *names * (size_t)cap);
        }
        names[*n] = strndup(e->d_name, len - 4);
        (*n)++;
    }
    closedir(d);
    qsort(names, (size_t)*n, sizeof *names, cmp_str);
    cr_assert_geq(*n, 16, "%s holds %d .nam files, expected at least 16", NAM_DIR, *n);
    return names;
}

static void free_names(char **names, int n)
{
    for (int i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

/* Every tests/data/nam model through convd-run with `mode` ("--block N" or "--offline"). */
static void nam_models_reproduce(const char *opt, const char *val)
{
    int n, bad = 0;
    char **names = nam_models(&n);
    for (int i = 0; i < n; i++) {
        char model[PATH_CAP], ref[PATH_CAP];
        const char *out = tmp("out.f32");
        long ng, nr;
        fmt_path(model, sizeof model, NAM_DIR "/%s.nam", names[i]);
        fmt_path(ref, sizeof ref, NAM_DIR "/%s.out.f32", names[i]);
        proc p = val ? RUN("convd-run", model, INPUT_4K, out, opt, val, "--quiet")
                     : RUN("convd-run", model, INPUT_4K, out, opt, "--quiet");
        cr_expect_eq(p.status, 0, "%s %s %s: exit status %d; stderr:\n%s", names[i], opt,
                     val ? val : "", p.status, p.err);
        cr_expect_eq(p.err[0], '\0', "%s: --quiet, but stderr says:\n%s", names[i], p.err);
        double e = compare_f32(out, ref, &ng, &nr);
        cr_expect(ng == nr, "%s %s %s: %ld samples out, the reference has %ld", names[i], opt,
                  val ? val : "", ng, nr);
        cr_expect(e <= TOL, "%s %s %s: max abs error %.3g > %g", names[i], opt, val ? val : "", e,
                  TOL);
        bad += p.status != 0 || !(e <= TOL);
        proc_free(&p);
        unlink(out);
    }
    cr_expect_eq(bad, 0, "%d of %d models differ from their reference (%s %s)", bad, n, opt,
                 val ? val : "");
    free_names(names, n);
}

Test(tools, nam_models_block_1)
{
    nam_models_reproduce("--block", "1");
}

Test(tools, nam_models_block_7)
{
    nam_models_reproduce("--block", "7");
}

Test(tools, nam_models_block_64)
{
    nam_models_reproduce("--block", "64");
}

Test(tools, nam_models_block_4096)
{
    nam_models_reproduce("--block", "4096");
}

Test(tools, nam_models_offline)
{
    nam_models_reproduce("--offline", NULL);
}

/* ---- the shared standard model ------------------------------------------------------------ */

static void standard_model(const char *opt, const char *val)
{
    const char *out = tmp("standard.f32");
    long ng, nr;
    if (!file_exists(STANDARD) || !file_exists(STANDARD_IN) || !file_exists(STANDARD_OUT)) {
        fprintf(stderr, "tools: note: %s (or its signal or reference) is absent: skipped\n",
                STANDARD);
        remove_tmpdir(); /* a skipped test does not reach .fini */
        cr_skip_test("%s is absent (../shared is not beside the checkout)", STANDARD);
    }
    proc p = val ? RUN("convd-run", STANDARD, STANDARD_IN, out, opt, val, "-q")
                 : RUN("convd-run", STANDARD, STANDARD_IN, out, opt, "-q");
    expect_status(&p, 0, "convd-run on the standard model");
    double e = compare_f32(out, STANDARD_OUT, &ng, &nr);
    fprintf(stderr, "tools: %s %s %s: %ld samples, max abs error %.3g vs NAM core\n",
            "wavenet_a1_standard", opt, val ? val : "", ng, e);
    cr_assert_eq(ng, 96000, "%ld samples out, want 96000", ng);
    cr_assert_eq(nr, 96000);
    cr_assert(e <= TOL, "max abs error %.3g > %g", e, TOL);
    proc_free(&p);
}

Test(tools, standard_model_block_1)
{
    standard_model("--block", "1");
}

Test(tools, standard_model_block_64)
{
    standard_model("--block", "64");
}

Test(tools, standard_model_block_512)
{
    standard_model("--block", "512");
}

/* two threads: the same file as one (a pipeline of two stages, one block apart) */
Test(tools, standard_model_two_threads)
{
    const char *out = tmp("standard2.f32");
    long ng, nr;
    if (!file_exists(STANDARD) || !file_exists(STANDARD_IN) || !file_exists(STANDARD_OUT)) {
        remove_tmpdir();
        cr_skip_test("%s is absent (../shared is not beside the checkout)", STANDARD);
    }
    proc p = RUN("convd-run", STANDARD, STANDARD_IN, out, "--block", "64", "--threads", "2", "-q");
    expect_status(&p, 0, "convd-run --threads 2 on the standard model");
    double e = compare_f32(out, STANDARD_OUT, &ng, &nr);
    cr_assert_eq(ng, 96000, "%ld samples out, want 96000", ng);
    cr_assert(e <= TOL, "max abs error %.3g > %g", e, TOL);
    proc_free(&p);
    proc q = RUN("convd-run", STANDARD, STANDARD_IN, tmp("standard1.f32"), "--block", "64", "-q");
    expect_status(&q, 0, "convd-run --threads 1");
    size_t l1 = 0, l2 = 0;
    char *b1 = tu_read_file(tmp("standard1.f32"), &l1), *b2 = tu_read_file(out, &l2);
    cr_assert(b1 && b2 && l1 == l2 && memcmp(b1, b2, l1) == 0,
              "--threads 2 wrote other bytes than one thread");
    free(b1);
    free(b2);
    proc_free(&q);
    proc r = RUN("convd-run", STANDARD, STANDARD_IN, out, "--threads", "3", "-q");
    expect_status(&r, 2, "convd-run --threads 3");
    proc_free(&r);
}

Test(tools, standard_model_offline)
{
    standard_model("--offline", NULL);
}

/* ---- formats through convd-run ----------------------------------------------------------- */

#define MODEL NAM_DIR "/nano_tanh.nam"
#define MODEL_REF NAM_DIR "/nano_tanh.out.f32"

/* Writes a WAV file with libsndfile directly (not through the code under test). */
static void write_wav(const char *path, const float *x, long frames, int channels, int rate,
                      int subtype)
{
    SF_INFO si = {0};
    si.samplerate = rate;
    si.channels = channels;
    si.format = SF_FORMAT_WAV | subtype;
    SNDFILE *s = sf_open(path, SFM_WRITE, &si);
    cr_assert_not_null(s, "%s: %s", path, sf_strerror(NULL));
    cr_assert_eq(sf_writef_float(s, x, frames), frames);
    cr_assert_eq(sf_close(s), 0);
}

Test(tools, wav_in_wav_out_keeps_rate_and_channels)
{
    long n, nr;
    float *x = read_f32(INPUT_4K, &n), *ref = read_f32(MODEL_REF, &nr);
    const char *in = tmp("in.wav"), *out = tmp("out.wav");
    SF_INFO si = {0};

    cr_assert(x && ref);
    /* at the model's rate (another rate is resampled: tests/test_run_chain.c) */
    write_wav(in, x, n, 1, 48000, SF_FORMAT_FLOAT);
    proc p = RUN("convd-run", MODEL, in, out);
    expect_status(&p, 0, "wav in, wav out");
    /* the summary line, and nothing resampled */
    cr_expect_not_null(strstr(p.err, "4096 frames in, 4096 out"), "stderr:\n%s", p.err);
    cr_expect_not_null(strstr(p.err, "48000 Hz"), "stderr:\n%s", p.err);
    cr_expect_null(strstr(p.err, "resample"), "stderr:\n%s", p.err);

    SNDFILE *s = sf_open(out, SFM_READ, &si);
    cr_assert_not_null(s, "%s: %s", out, sf_strerror(NULL));
    cr_expect_eq(si.samplerate, 48000, "output at %d Hz, want the input's 48000", si.samplerate);
    cr_expect_eq(si.channels, 1);
    cr_expect_eq(si.format, SF_FORMAT_WAV | SF_FORMAT_FLOAT, "format 0x%x, want float WAV",
                 si.format);
    cr_assert_eq(si.frames, nr);
    float *y = malloc(sizeof(float) * (size_t)nr);
    cr_assert_eq(sf_readf_float(s, y, nr), nr);
    sf_close(s);
    double e = max_abs_diff(y, ref, nr);
    cr_expect(e <= TOL, "wav: max abs error %.3g", e);
    free(x), free(ref), free(y);
    proc_free(&p);
}

Test(tools, pcm16_wav_input_is_read_as_float)
{
    long n = 0;
    float *x = read_f32(INPUT_4K, &n);
    const char *in = tmp("in16.wav"), *out = tmp("out16.f32");
    write_wav(in, x, n, 1, 48000, SF_FORMAT_PCM_16);
    proc p = RUN("convd-run", MODEL, in, out, "-q");
    expect_status(&p, 0, "16-bit wav in");
    long ng, nr;
    double e = compare_f32(out, MODEL_REF, &ng, &nr);
    cr_expect_eq(ng, nr);
    /* 16-bit quantisation of the input moves the output a little, not more */
    cr_expect(e < 0.01, "16-bit input: max abs error %.3g", e);
    free(x);
    proc_free(&p);
}

/* The reference input as csv, with a comment and a blank line, as a person might write it. */
static void write_input_csv(const char *path)
{
    long n;
    float *x = read_f32(INPUT_4K, &n);
    FILE *f = fopen(path, "w");
    cr_assert(x && f);
    fprintf(f, "# input_4k.f32 as text\n\n");
    for (long i = 0; i < n; i++)
        fprintf(f, "%.9g\n", (double)x[i]);
    fclose(f);
    free(x);
}

/* Parses a one-column csv output into floats, after its header line naming the column. */
static float *parse_csv_column(const char *text, long *n)
{
    long cap = 1024;
    float *y = malloc(sizeof(float) * (size_t)cap);
    const char *p = text;
    *n = 0;
    cr_assert(strncmp(p, "wavenet\n", 8) == 0, "csv output: no header naming the output: %.40s", p);
    p += 8;
    while (*p) {
        char *end;
        double v = strtod(p, &end);
        cr_assert(end != p && (*end == '\n'), "csv output line %ld malformed: %.40s", *n + 1, p);
        if (*n == cap)
            y = realloc(y, sizeof(float) * (size_t)(cap *= 2));
        y[(*n)++] = (float)v;
        p = end + 1;
    }
    return y;
}

Test(tools, csv_in_csv_out)
{
    const char *in = tmp("in.csv"), *out = tmp("out.csv");
    long nr, ny;
    float *ref = read_f32(MODEL_REF, &nr);
    write_input_csv(in);
    proc p = RUN("convd-run", MODEL, in, out, "--block", "33");
    expect_status(&p, 0, "csv in, csv out");
    char *text = tu_read_file(out, NULL);
    cr_assert_not_null(text);
    float *y = parse_csv_column(text, &ny);
    cr_assert_eq(ny, nr, "%ld csv lines, want %ld", ny, nr);
    double e = max_abs_diff(y, ref, nr);
    cr_expect(e <= TOL, "csv: max abs error %.3g", e);
    /* raw input has no rate: the model's (48000) is used */
    cr_expect_not_null(strstr(p.err, "at 48000 Hz"), "stderr:\n%s", p.err);
    free(text), free(y), free(ref);
    proc_free(&p);
}

Test(tools, stdin_stdout_f32)
{
    proc p = RUN_IN("convd-run", INPUT_4K, "--format", "f32", MODEL, "-", "-");
    expect_status(&p, 0, "f32 through stdin and stdout");
    cr_assert_eq(p.out_len, 4096u * 4, "%zu bytes on stdout, want %d", p.out_len, 4096 * 4);
    /* the bytes on stdout are little-endian float32: read them back as a file */
    const char *got = tmp("stdout.f32");
    FILE *f = fopen(got, "wb");
    cr_assert_eq(fwrite(p.out, 1, p.out_len, f), p.out_len);
    fclose(f);
    double e = compare_f32(got, MODEL_REF, NULL, NULL);
    cr_expect(e <= TOL, "stdin/stdout f32: max abs error %.3g", e);
    cr_expect_not_null(strstr(p.err, "4096 frames in, 4096 out"), "stderr:\n%s", p.err);
    proc_free(&p);
}

Test(tools, stdin_stdout_csv)
{
    const char *in = tmp("in.csv");
    long nr, ny;
    write_input_csv(in);
    proc p = RUN_IN("convd-run", in, MODEL, "-", "-", "--format=csv", "--block=5", "--quiet");
    expect_status(&p, 0, "csv through stdin and stdout");
    cr_expect_eq(p.err[0], '\0', "--quiet, but stderr says:\n%s", p.err);
    float *ref = read_f32(MODEL_REF, &nr);
    float *y = parse_csv_column(p.out, &ny);
    cr_assert_eq(ny, nr);
    cr_expect(max_abs_diff(y, ref, nr) <= TOL);
    free(y), free(ref);
    proc_free(&p);
}

Test(tools, stdin_f32_to_wav_file)
{
    const char *out = tmp("from_stdin.wav");
    SF_INFO si = {0};
    proc p = RUN_IN("convd-run", INPUT_4K, MODEL, "-", out, "--format", "f32");
    expect_status(&p, 0, "f32 stdin to a wav file");
    SNDFILE *s = sf_open(out, SFM_READ, &si);
    cr_assert_not_null(s);
    cr_expect_eq(si.samplerate, 48000); /* the model's rate */
    cr_expect_eq(si.frames, 4096);
    sf_close(s);
    proc_free(&p);
}

Test(tools, options_before_and_after_positionals)
{
    static const char *const forms[][8] = {
        {"--block", "7", "-q", MODEL, INPUT_4K, "@", NULL},
        {MODEL, "--offline", INPUT_4K, "--quiet", "@", NULL},
        {MODEL, INPUT_4K, "@", "--block=64", "-q", NULL},
        {"-q", MODEL, INPUT_4K, "--block", "3", "@", NULL},
        {"-q", "--", MODEL, INPUT_4K, "@", NULL},
    };
    for (size_t i = 0; i < sizeof forms / sizeof forms[0]; i++) {
        const char *args[9];
        const char *out = tmp("opt.f32");
        int k = 0;
        for (; forms[i][k]; k++)
            args[k] = strcmp(forms[i][k], "@") == 0 ? out : forms[i][k];
        args[k] = NULL;
        proc p = run_argv("convd-run", NULL, args);
        expect_status(&p, 0, "options in another order");
        cr_expect_eq(p.err[0], '\0', "form %zu: quiet, but stderr says:\n%s", i, p.err);
        double e = compare_f32(out, MODEL_REF, NULL, NULL);
        cr_expect(e <= TOL, "form %zu: max abs error %.3g", i, e);
        proc_free(&p);
        unlink(out);
    }
}

Test(tools, help_exits_0)
{
    proc p = RUN("convd-run", "--help");
    expect_status(&p, 0, "--help");
    cr_expect_not_null(strstr(p.out, "usage: convd-run MODEL INPUT OUTPUT"), "%s", p.out);
    proc_free(&p);
    p = RUN("convd-run", MODEL, "-h");
    expect_status(&p, 0, "-h");
    proc_free(&p);
    p = RUN("convd-info", "--help");
    expect_status(&p, 0, "convd-info --help");
    cr_expect_not_null(strstr(p.out, "usage: convd-info"));
    proc_free(&p);
}

Test(tools, usage_errors_exit_2)
{
    static const char *const cases[][7] = {
        {"-q", NULL},
        {MODEL, NULL},
        {MODEL, INPUT_4K, NULL},
        {MODEL, INPUT_4K, "@", "extra", NULL},
        {MODEL, INPUT_4K, "@", "--block", "0", NULL},
        {MODEL, INPUT_4K, "@", "--block", "abc", NULL},
        {MODEL, INPUT_4K, "@", "--block", "2000000", NULL},
        {MODEL, INPUT_4K, "@", "--block", NULL},
        {MODEL, INPUT_4K, "@", "--format", "wav", NULL},
        {MODEL, INPUT_4K, "@", "--bogus", NULL},
        {MODEL, "-", "@", NULL},      /* stdin without --format */
        {MODEL, INPUT_4K, "-", NULL}, /* stdout without --format */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *args[8];
        const char *out = tmp("never.f32");
        int k = 0;
        for (; cases[i][k]; k++)
            args[k] = strcmp(cases[i][k], "@") == 0 ? out : cases[i][k];
        args[k] = NULL;
        proc p = run_argv("convd-run", NULL, args);
        cr_expect_eq(p.status, 2, "case %zu: exit status %d, want 2; stderr:\n%s", i, p.status,
                     p.err);
        cr_expect_eq(strncmp(p.err, "convd-run: ", 11), 0, "case %zu: stderr:\n%s", i, p.err);
        cr_expect(!file_exists(out), "case %zu: a usage error created the output", i);
        proc_free(&p);
    }
    proc p = run_argv("convd-info", NULL, (const char *const[]){NULL});
    cr_expect_eq(p.status, 2, "convd-info without a model: %d", p.status);
    proc_free(&p);
    p = RUN("convd-info", "--bogus", MODEL);
    cr_expect_eq(p.status, 2);
    proc_free(&p);
}

/* convd-run fails with status 1, a message starting "convd-run: " that contains `names`
 * (and `also` if not NULL), and leaves no output file behind. */
static void expect_runtime_error(const char *what, const char *names, const char *also,
                                 const char *const *args, const char *out)
{
    proc p = run_argv("convd-run", NULL, args);
    cr_expect_eq(p.status, 1, "%s: exit status %d, want 1; stderr:\n%s", what, p.status, p.err);
    cr_expect_eq(strncmp(p.err, "convd-run: ", 11), 0, "%s: stderr:\n%s", what, p.err);
    cr_expect_not_null(strstr(p.err, names), "%s: the message does not name %s:\n%s", what, names,
                       p.err);
    if (also)
        cr_expect_not_null(strstr(p.err, also), "%s: the message lacks \"%s\":\n%s", what, also,
                           p.err);
    if (out)
        cr_expect(!file_exists(out), "%s: a failed run left %s behind", what, out);
    proc_free(&p);
}

Test(tools, runtime_errors_exit_1)
{
    const char *out = tmp("err_out.f32");
    const char *missing_in = tmp("missing.wav");
    const char *stereo = tmp("stereo.wav"), *odd = tmp("odd.f32");
    float x[16] = {0};
    write_wav(stereo, x, 8, 2, 48000, SF_FORMAT_FLOAT);
    write_f32(odd, x, 3);
    FILE *f = fopen(odd, "ab");
    fputc(0, f); /* 13 bytes: not whole float32 frames */
    fclose(f);

    expect_runtime_error("missing model", "no_such_model.nam", NULL,
                         (const char *const[]){"no_such_model.nam", INPUT_4K, out, NULL}, out);
    expect_runtime_error("missing input", missing_in, "No such file",
                         (const char *const[]){MODEL, missing_in, out, NULL}, out);
    expect_runtime_error("output folder missing", "/nonexistent-dir/out.f32", NULL,
                         (const char *const[]){MODEL, INPUT_4K, "/nonexistent-dir/out.f32", NULL},
                         NULL);
    expect_runtime_error("stereo wav into a mono model", stereo, "2 channels, the model takes 1",
                         (const char *const[]){MODEL, stereo, out, NULL}, out);
    expect_runtime_error("two-column csv into a mono model", TOOLS_DATA "/two_channels.csv",
                         "2 channels, the model takes 1",
                         (const char *const[]){MODEL, TOOLS_DATA "/two_channels.csv", out, NULL},
                         out);
    expect_runtime_error("malformed csv line", TOOLS_DATA "/bad_number.csv", "line 5",
                         (const char *const[]){MODEL, TOOLS_DATA "/bad_number.csv", out, NULL},
                         out);
    expect_runtime_error(
        "malformed csv names the field", TOOLS_DATA "/bad_number.csv", "\"0.4x\"",
        (const char *const[]){MODEL, TOOLS_DATA "/bad_number.csv", out, "--offline", NULL}, out);
    expect_runtime_error("f32 of a partial frame", odd, "13 bytes",
                         (const char *const[]){MODEL, odd, out, NULL}, out);
    expect_runtime_error(
        "a model the loader refuses", "bad/truncated_json.nam", NULL,
        (const char *const[]){NAM_DIR "/bad/truncated_json.nam", INPUT_4K, out, NULL}, out);
    expect_runtime_error("an output extension nothing writes", "out.xyz", NULL,
                         (const char *const[]){MODEL, INPUT_4K, tmp("out.xyz"), NULL},
                         tmp("out.xyz"));
    expect_runtime_error("output over the input", INPUT_4K, "input",
                         (const char *const[]){MODEL, INPUT_4K, INPUT_4K, NULL}, NULL);
    cr_assert(file_exists(INPUT_4K), "the input was destroyed");
}

Test(tools, write_error_keeps_what_is_not_a_regular_file)
{
    struct stat st;
    const char *link = tmp("full.f32");
    if (stat("/dev/full", &st) != 0 || !S_ISCHR(st.st_mode)) {
        fprintf(stderr, "tools: note: no /dev/full: the write error test is skipped\n");
        remove_tmpdir(); /* a skipped test does not reach .fini */
        cr_skip_test("no /dev/full");
    }
    /* through a symbolic link, so that a regression removes the link, never the device */
    cr_assert_eq(symlink("/dev/full", link), 0, "symlink: %s", strerror(errno));
    proc p = RUN("convd-run", MODEL, INPUT_4K, link);
    cr_expect_eq(p.status, 1, "exit status %d; stderr:\n%s", p.status, p.err);
    cr_expect_not_null(strstr(p.err, "full.f32: write error"), "stderr:\n%s", p.err);
    cr_expect_eq(lstat(link, &st), 0, "the failed run removed the output link");
    proc_free(&p);
}

Test(tools, malformed_stdin_csv_names_standard_input)
{
    proc p = RUN_IN("convd-run", TOOLS_DATA "/bad_number.csv", MODEL, "-", "-", "--format", "csv");
    cr_expect_eq(p.status, 1, "exit status %d; stderr:\n%s", p.status, p.err);
    cr_expect_not_null(strstr(p.err, "standard input: line 5"), "stderr:\n%s", p.err);
    proc_free(&p);
}

/* ---- convd-info ----------------------------------------------------------------------------- */

/* The value after "  key" on its own line of convd-info's output, trimmed ("" if absent). */
static const char *info_value(const char *out, const char *key, char *buf, size_t cap)
{
    size_t klen = strlen(key);
    buf[0] = '\0';
    for (const char *line = out; line && *line;) {
        const char *eol = strchr(line, '\n');
        size_t len = eol ? (size_t)(eol - line) : strlen(line);
        const char *p = line;
        while (*p == ' ' && p < line + len)
            p++;
        if ((size_t)(line + len - p) > klen && strncmp(p, key, klen) == 0 && p[klen] == ' ') {
            p += klen;
            while (*p == ' ')
                p++;
            snprintf(buf, cap, "%.*s", (int)(line + len - p), p);
            return buf;
        }
        line = eol ? eol + 1 : NULL;
    }
    return buf;
}

/* 13802 -> "13,802" (how convd-info prints counts). */
static void with_commas(long long v, char *buf, size_t cap)
{
    char raw[32];
    size_t n, o = 0;
    snprintf(raw, sizeof raw, "%lld", v);
    n = strlen(raw);
    for (size_t i = 0; i < n && o + 2 < cap; i++) {
        if (i > 0 && (n - i) % 3 == 0)
            buf[o++] = ',';
        buf[o++] = raw[i];
    }
    buf[o] = '\0';
}

Test(tools, info_every_nam_model)
{
    int n;
    char **names = nam_models(&n);
    for (int i = 0; i < n; i++) {
        char path[PATH_CAP], v[256], want[64];
        cvd_model *m;
        cvd_err err;
        fmt_path(path, sizeof path, NAM_DIR "/%s.nam", names[i]);
        proc p = RUN("convd-info", path);
        cr_expect_eq(p.status, 0, "%s: exit status %d; stderr:\n%s", names[i], p.status, p.err);
        cr_expect_not_null(strstr(p.out, path), "%s: the output does not name the file", names[i]);
        cr_expect_not_null(strstr(p.out, "InputLayer"), "%s: no input row", names[i]);
        /* the figures agree with the library's */
        cr_assert_eq(cvd_model_load(path, &m, &err), 0, "%s: %s", path, err.msg);
        if (cvd_model_node_op(m, 1) == CVD_NODE_WAVENET) { /* ConvNet, Linear: layer rows */
            cr_expect_not_null(strstr(p.out, "WaveNet"), "%s: no WaveNet row", names[i]);
            cr_expect_not_null(strstr(p.out, "dilations"), "%s: no dilations", names[i]);
        }
        with_commas((long long)cvd_model_param_count(m), want, sizeof want);
        cr_expect_str_eq(info_value(p.out, "parameters", v, sizeof v), want, "%s", names[i]);
        with_commas(cvd_model_receptive_field(m), want, sizeof want);
        cr_expect_eq(strncmp(info_value(p.out, "receptive field", v, sizeof v), want, strlen(want)),
                     0, "%s: receptive field \"%s\", want %s", names[i], v, want);
        snprintf(want, sizeof want, "%d", cvd_model_in_channels(m));
        cr_expect_str_eq(info_value(p.out, "input channels", v, sizeof v), want);
        cr_expect_not_null(
            strstr(info_value(p.out, "state per stream", v, sizeof v), "blocks of up to 64 frames"),
            "%s: state per stream \"%s\"", names[i], v);
        cr_expect_not_null(strstr(info_value(p.out, "sample rate", v, sizeof v), "48000 Hz"),
                           "%s: sample rate \"%s\"", names[i], v);
        cvd_model_unref(m);
        proc_free(&p);
    }
    free_names(names, n);
}

Test(tools, info_standard_model)
{
    char v[256];
    if (!file_exists(STANDARD)) {
        fprintf(stderr, "tools: note: %s is absent: skipped\n", STANDARD);
        remove_tmpdir(); /* a skipped test does not reach .fini */
        cr_skip_test("%s is absent (../shared is not beside the checkout)", STANDARD);
    }
    proc p = RUN("convd-info", STANDARD);
    expect_status(&p, 0, "convd-info on the standard model");
    cr_expect_str_eq(info_value(p.out, "parameters", v, sizeof v), "13,802");
    cr_expect_str_eq(info_value(p.out, "input channels", v, sizeof v), "1");
    cr_expect_str_eq(info_value(p.out, "output channels", v, sizeof v), "1");
    /* 1 + sum over both arrays of (K-1) d = 1 + 2 * 2 * (1 + 2 + ... + 512) */
    cr_expect_str_eq(info_value(p.out, "receptive field", v, sizeof v), "4,093 frames");
    cr_expect_str_eq(info_value(p.out, "latency", v, sizeof v), "0 frames");
    /* the file declares no rate: said plainly, with how to give it */
    cr_expect_str_eq(info_value(p.out, "sample rate", v, sizeof v),
                     "unknown (the file does not declare it)");
    cr_expect_not_null(strstr(p.out, "convd-run --model-rate R"), "%s", p.out);
    cr_expect_not_null(strstr(info_value(p.out, "multiply-adds", v, sizeof v),
                              "at 48000 Hz, NAM's usual rate (the file gives none)"),
                       "multiply-adds \"%s\"", v);
    cr_expect_not_null(strstr(p.out, "channels 16, head 8 (no bias)"), "%s", p.out);
    cr_expect_not_null(strstr(p.out, "channels 8, head 1 (with bias)"), "%s", p.out);
    cr_expect_not_null(strstr(p.out, "1 2 4 8 16 32 64 128 256 512"), "%s", p.out);
    cr_expect_not_null(strstr(p.out, "Tanh (all 10 layers)"), "%s", p.out);
    cr_expect_not_null(strstr(p.out, "none (all 10 layers)"), "%s", p.out);
    proc_free(&p);
}

Test(tools, info_several_models_one_missing)
{
    proc p = RUN("convd-info", MODEL, "no_such_model.nam", NAM_DIR "/k1_relu_1ch.nam");
    cr_expect_eq(p.status, 1, "exit status %d", p.status);
    cr_expect_not_null(strstr(p.out, MODEL), "the first model is not shown:\n%s", p.out);
    cr_expect_not_null(strstr(p.out, "k1_relu_1ch.nam"), "the third model is not shown");
    cr_expect_not_null(strstr(p.err, "convd-info: "), "stderr:\n%s", p.err);
    cr_expect_not_null(strstr(p.err, "no_such_model.nam"), "stderr:\n%s", p.err);
    proc_free(&p);
    p = RUN("convd-info", "--block", "512", NAM_DIR "/k1_relu_1ch.nam");
    expect_status(&p, 0, "convd-info --block 512");
    char v[256];
    cr_expect_not_null(
        strstr(info_value(p.out, "state per stream", v, sizeof v), "blocks of up to 512 frames"),
        "\"%s\"", v);
    proc_free(&p);
}

/* ---- a graph model (convd JSON) ------------------------------------------------------ */

/* A graph with latency (tests/data/tools/graph.json): streamed at any block size, the frames
 * (flushed tail included) equal the offline computation; WAV keeps the rate; 2 in, 3 out. */
#define GRAPH TOOLS_DATA "/graph.json"

Test(tools, graph_model_stream_equals_offline)
{
    const long n = 1500;
    float *x = test_frames_audio(n, 2), *ref, *y;
    const char *in = tmp("g_in.wav"), *off = tmp("g_off.wav"), *str = tmp("g_str.wav");
    long nref, ny;
    cvd_af_info info;
    cvd_err err = {0};

    write_wav(in, x, n, 2, 22050, SF_FORMAT_FLOAT);
    proc p = RUN("convd-run", GRAPH, in, off, "--offline", "-q");
    expect_status(&p, 0, "the graph model offline");
    proc_free(&p);
    cr_assert_eq(cvd_af_load(off, CVD_AF_UNKNOWN, 0, &ref, &nref, &info, &err), 0, "%s", err.msg);
    cr_expect_eq(nref, n, "same padding: %ld frames out of %ld", nref, n);
    cr_expect_eq(info.channels, 3);
    cr_expect_eq(info.rate, 22050.0);
    static const char *const blocks[] = {"1", "2", "5", "64", "4096"};
    for (size_t b = 0; b < sizeof blocks / sizeof blocks[0]; b++) {
        p = RUN("convd-run", GRAPH, in, str, "--block", blocks[b], "-q");
        expect_status(&p, 0, "the graph model streamed");
        proc_free(&p);
        cr_assert_eq(cvd_af_load(str, CVD_AF_UNKNOWN, 0, &y, &ny, &info, &err), 0, "%s", err.msg);
        cr_expect_eq(ny, nref, "block %s: %ld frames, offline %ld", blocks[b], ny, nref);
        cr_expect_eq(info.channels, 3);
        double e = ny == nref ? max_abs_diff(y, ref, ny * 3) : INFINITY;
        cr_expect(e <= 1e-5, "block %s: stream vs offline max abs %.3g", blocks[b], e);
        free(y);
    }
    /* a mono file for a two-channel model */
    write_wav(in, x, n, 1, 22050, SF_FORMAT_FLOAT);
    p = RUN("convd-run", GRAPH, in, str);
    cr_expect_eq(p.status, 1);
    cr_expect_not_null(strstr(p.err, "1 channel, the model takes 2"), "%s", p.err);
    proc_free(&p);
    free(x), free(ref);
}

Test(tools, info_graph_model)
{
    char v[256];
    proc p = RUN("convd-info", GRAPH);
    expect_status(&p, 0, "convd-info on the graph model");
    cr_expect_not_null(strstr(p.out, "\"two channels in"), "no description:\n%s", p.out);
    for (const char *const *w = (const char *const[]){"Conv1D", "Add", "Dense", "InputLayer",
                                                      "c1, c2", "kernel 5, same, tanh",
                                                      "dilation 2, causal", "units 3, relu", NULL};
         *w; w++)
        cr_expect_not_null(strstr(p.out, *w), "no \"%s\" in:\n%s", *w, p.out);
    cr_expect_str_eq(info_value(p.out, "input channels", v, sizeof v), "2");
    cr_expect_str_eq(info_value(p.out, "output channels", v, sizeof v), "3");
    cr_expect_str_eq(info_value(p.out, "latency", v, sizeof v), "2 frames");
    cr_expect_str_eq(info_value(p.out, "sample rate", v, sizeof v), "44100 Hz");
    /* 1 + (5-1) + (3-1)*2 */
    cr_expect_eq(strncmp(info_value(p.out, "receptive field", v, sizeof v), "9 frames", 8), 0,
                 "\"%s\"", v);
    cr_expect_eq(strstr(p.out, "WaveNet '"), NULL, "a WaveNet section for a graph");
    proc_free(&p);
}

/* ---- tools/lib/audiofile.c --------------------------------------------------------------- */

Test(tools, af_format_of)
{
    cvd_af_format f;
    cr_expect_eq(cvd_af_format_of("-", CVD_AF_UNKNOWN), CVD_AF_UNKNOWN);
    cr_expect_eq(cvd_af_format_of("-", CVD_AF_CSV), CVD_AF_CSV);
    cr_expect_eq(cvd_af_format_of("a.f32", CVD_AF_UNKNOWN), CVD_AF_F32);
    cr_expect_eq(cvd_af_format_of("dir/a.F32", CVD_AF_CSV), CVD_AF_F32);
    cr_expect_eq(cvd_af_format_of("a.csv", CVD_AF_F32), CVD_AF_CSV);
    cr_expect_eq(cvd_af_format_of("a.wav", CVD_AF_F32), CVD_AF_SNDFILE);
    cr_expect_eq(cvd_af_format_of("a.WAV", CVD_AF_UNKNOWN), CVD_AF_SNDFILE);
    cr_expect_eq(cvd_af_format_of("a.flac", CVD_AF_UNKNOWN), CVD_AF_SNDFILE);
    cr_expect_eq(cvd_af_format_of("a.aiff", CVD_AF_UNKNOWN), CVD_AF_SNDFILE);
    cr_expect_eq(cvd_af_format_of("a.aif", CVD_AF_UNKNOWN), CVD_AF_SNDFILE);
    cr_expect_eq(cvd_af_format_of("a.ogg", CVD_AF_UNKNOWN), CVD_AF_SNDFILE);
    cr_expect_eq(cvd_af_format_of("a.raw", CVD_AF_F32), CVD_AF_F32);
    cr_expect_eq(cvd_af_format_of("a.bin", CVD_AF_UNKNOWN), CVD_AF_SNDFILE);
    cr_expect_eq(cvd_af_format_of("dir.wav/noext", CVD_AF_CSV), CVD_AF_CSV);
    cr_expect(cvd_af_sndfile_writable("x.wav"));
    cr_expect(cvd_af_sndfile_writable("x.flac"));
    cr_expect(!cvd_af_sndfile_writable("x.xyz"));
    cr_expect(!cvd_af_sndfile_writable("x.raw"));
    cr_expect_eq(cvd_af_format_parse("f32", &f), 0);
    cr_expect_eq(f, CVD_AF_F32);
    cr_expect_eq(cvd_af_format_parse("CSV", &f), 0);
    cr_expect_eq(f, CVD_AF_CSV);
    cr_expect_lt(cvd_af_format_parse("wav", &f), 0);
    cr_expect_lt(cvd_af_format_parse(NULL, &f), 0);
}

/* n frames of C channels of a deterministic signal with awkward values. */
static float *test_frames(long n, int C)
{
    float *x = malloc(sizeof(float) * (size_t)n * (size_t)C);
    cvd_rng r;
    cvd_rng_seed(&r, tu_seed());
    for (long i = 0; i < n * C; i++) {
        double u = cvd_rng_uniform(&r) * 2 - 1;
        x[i] = (float)(i % 7 == 0 ? u * 1e-30 : i % 11 == 0 ? u * 3e5 : u);
    }
    if (n * C > 3) {
        x[0] = 0.1f;
        x[1] = -0.0f;
        x[2] = 1.17549435e-38f; /* FLT_MIN */
        x[3] = 3.40282347e38f;  /* FLT_MAX */
    }
    return x;
}

static void roundtrip(const char *name, cvd_af_format fmt, int C, long n)
{
    float *x = test_frames(n, C), *y;
    const char *path = tmp(name);
    cvd_af_info info;
    cvd_err err = {0};
    long got;
    cr_assert_eq(cvd_af_save(path, fmt, C, 44100, x, n, &err), 0, "%s: %s", name, err.msg);
    cr_assert_eq(cvd_af_load(path, fmt, C, &y, &got, &info, &err), 0, "%s: %s", name, err.msg);
    cr_assert_eq(got, n, "%s: %ld frames back, want %ld", name, got, n);
    cr_expect_eq(info.channels, C);
    cr_expect_eq(info.frames, n);
    if (fmt == CVD_AF_SNDFILE)
        cr_expect_eq(info.rate, 44100.0);
    else
        cr_expect_eq(info.rate, 0.0);
    for (long i = 0; i < n * C; i++)
        cr_assert(memcmp(&x[i], &y[i], 4) == 0, "%s: value %ld: %.9g back as %.9g", name, i,
                  (double)x[i], (double)y[i]);
    free(x), free(y);
}

Test(tools, af_f32_roundtrip_exact)
{
    roundtrip("rt.f32", CVD_AF_F32, 3, 1001);
    roundtrip("rt1.f32", CVD_AF_F32, 1, 5);
}

Test(tools, af_csv_roundtrip_exact)
{
    roundtrip("rt.csv", CVD_AF_CSV, 3, 1001);
    roundtrip("rt1.csv", CVD_AF_CSV, 1, 5);
    /* what %.9g wrote */
    float x[2] = {0.1f, -2.5f};
    cvd_err err;
    cr_assert_eq(cvd_af_save(tmp("two.csv"), CVD_AF_CSV, 2, 0, x, 1, &err), 0);
    char *t = tu_read_file(tmp("two.csv"), NULL);
    cr_expect_str_eq(t, "0.100000001,-2.5\n");
    free(t);
}

Test(tools, af_wav_roundtrip_float)
{
    roundtrip("rt.wav", CVD_AF_SNDFILE, 2, 777);
    /* the writer chose 32-bit float WAV */
    SF_INFO si = {0};
    SNDFILE *s = sf_open(tmp("rt.wav"), SFM_READ, &si);
    cr_assert_not_null(s);
    cr_expect_eq(si.format, SF_FORMAT_WAV | SF_FORMAT_FLOAT);
    cr_expect_eq(si.samplerate, 44100);
    sf_close(s);
}

Test(tools, af_flac_and_aiff)
{
    float x[2 * 100];
    float *y;
    long n;
    cvd_af_info info;
    cvd_err err = {0};
    for (int i = 0; i < 200; i++)
        x[i] = (float)sin(0.05 * i) * 0.5f;
    cr_assert_eq(cvd_af_save(tmp("a.flac"), CVD_AF_SNDFILE, 2, 96000, x, 100, &err), 0, "%s",
                 err.msg);
    cr_assert_eq(cvd_af_load(tmp("a.flac"), CVD_AF_UNKNOWN, 0, &y, &n, &info, &err), 0, "%s",
                 err.msg);
    cr_expect_eq(n, 100);
    cr_expect_eq(info.channels, 2);
    cr_expect_eq(info.rate, 96000.0);
    cr_expect(max_abs_diff(x, y, 200) < 1e-6, "flac (24-bit) error %.3g", max_abs_diff(x, y, 200));
    free(y);
    cr_assert_eq(cvd_af_save(tmp("a.aiff"), CVD_AF_UNKNOWN, 2, 22050, x, 100, &err), 0, "%s",
                 err.msg);
    cr_assert_eq(cvd_af_load(tmp("a.aiff"), CVD_AF_UNKNOWN, 0, &y, &n, &info, &err), 0);
    cr_expect_eq(n, 100);
    cr_expect_eq(max_abs_diff(x, y, 200), 0.0);
    free(y);
}

Test(tools, af_streaming_reads_in_blocks)
{
    static const cvd_af_format fmts[] = {CVD_AF_F32, CVD_AF_CSV, CVD_AF_SNDFILE};
    static const char *const names[] = {"blk.f32", "blk.csv", "blk.wav"};
    const long n = 1000;
    const int C = 2;
    float *x = test_frames(n, C);
    for (int f = 0; f < 3; f++) {
        cvd_af *af;
        cvd_err err = {0};
        float buf[2 * 37];
        long pos = 0, got;
        cr_assert_eq(cvd_af_save(tmp(names[f]), fmts[f], C, 48000, x, n, &err), 0);
        cr_assert_eq(cvd_af_open_read(tmp(names[f]), fmts[f], C, &af, &err), 0, "%s", err.msg);
        cr_expect_eq(cvd_af_get_info(af)->frames, fmts[f] == CVD_AF_CSV ? -1 : n);
        while ((got = cvd_af_read(af, buf, 37, &err)) > 0) {
            cr_assert_leq(got, 37);
            cr_assert_leq(pos + got, n);
            cr_assert(memcmp(buf, x + pos * C, sizeof(float) * (size_t)got * C) == 0,
                      "%s: frames %ld..%ld differ", names[f], pos, pos + got);
            pos += got;
        }
        cr_expect_eq(got, 0, "%s: %s", names[f], err.msg);
        cr_expect_eq(pos, n, "%s: %ld frames", names[f], pos);
        cr_expect_eq(cvd_af_read(af, buf, 37, &err), 0, "reading after the end");
        cr_expect_eq(cvd_af_close(af, &err), 0);
    }
    free(x);
}

Test(tools, af_csv_comments_blank_lines_spaces_crlf)
{
    static const float want[] = {0.5f, -0.25f, 1e-3f, 2.0f, -1.0f, 0.0f, 0.125f, 0.75f};
    float *y;
    long n;
    cvd_af_info info;
    cvd_err err = {0};
    cr_assert_eq(
        cvd_af_load(TOOLS_DATA "/two_channels.csv", CVD_AF_UNKNOWN, 0, &y, &n, &info, &err), 0,
        "%s", err.msg);
    cr_assert_eq(n, 4);
    cr_expect_eq(info.channels, 2);
    for (int i = 0; i < 8; i++)
        cr_expect_eq(y[i], want[i], "value %d: %g, want %g", i, (double)y[i], (double)want[i]);
    free(y);
}

/* Loading `text` as csv fails with a message containing every needle. */
static void csv_refused(const char *text, const char *n1, const char *n2, const char *n3)
{
    const char *needles[3] = {n1, n2, n3};
    const char *path = tmp("bad.csv");
    FILE *f = fopen(path, "wb");
    float *y = NULL;
    long n;
    cvd_err err = {0};
    fputs(text, f);
    fclose(f);
    int rc = cvd_af_load(path, CVD_AF_CSV, 0, &y, &n, NULL, &err);
    cr_expect_lt(rc, 0, "accepted: %s", text);
    cr_expect_null(y);
    cr_expect_eq(strncmp(err.msg, path, strlen(path)), 0,
                 "the message does not start with "
                 "the file: %s",
                 err.msg);
    for (int i = 0; i < 3; i++)
        if (needles[i])
            cr_expect_not_null(strstr(err.msg, needles[i]), "message \"%s\" lacks \"%s\"", err.msg,
                               needles[i]);
}

Test(tools, af_csv_malformed_lines)
{
    csv_refused("1\n2\nx\n", "line 3", "field 1", "\"x\"");
    csv_refused("# c\n\n1,2\n3,4,5\n", "line 4", "3 values, expected 2", "line 3");
    csv_refused("1,2\n3\n", "line 2", "1 value, expected 2", NULL);
    csv_refused("1,,2\n", "line 1", "field 2 is empty", NULL);
    csv_refused("1,2,\n", "line 1", "field 3 is empty", NULL);
    csv_refused("0.5\n1 2\n", "line 2", "\"1 2\"", NULL);
    csv_refused("0.5;0.25\n", "line 1", "\"0.5;0.25\"", NULL);
    csv_refused("1e39\n", "line 1", "float32 range", NULL);
    csv_refused("1,2\n3,0.1.2\n", "line 2", "field 2", "\"0.1.2\"");

    float *y;
    long n;
    cvd_err err = {0};
    cr_assert_lt(cvd_af_load(TOOLS_DATA "/bad_field.csv", CVD_AF_UNKNOWN, 0, &y, &n, NULL, &err),
                 0);
    cr_expect_not_null(strstr(err.msg, "bad_field.csv: line 6: field 2 \"abc\""), "%s", err.msg);
}

Test(tools, af_csv_empty_file)
{
    const char *path = tmp("empty.csv");
    FILE *f = fopen(path, "w");
    float *y;
    long n;
    cvd_af_info info;
    cvd_err err = {0};
    fputs("# nothing but a comment\n\n", f);
    fclose(f);
    cr_assert_eq(cvd_af_load(path, CVD_AF_CSV, 3, &y, &n, &info, &err), 0, "%s", err.msg);
    cr_expect_eq(n, 0);
    cr_expect_eq(info.channels, 3, "an empty csv takes the channel count given");
    free(y);
}

Test(tools, af_csv_ignores_the_locale)
{
    const char *got = tu_comma_locale();
    if (got == NULL) {
        fprintf(stderr, "tools: note: no locale with a decimal comma (none installed, no "
                        "localedef): the csv locale test is skipped\n");
        remove_tmpdir(); /* a skipped test does not reach .fini */
        cr_skip_test("no locale with a decimal comma");
    }
    /* the process's own formatting uses the comma now */
    char probe[16];
    snprintf(probe, sizeof probe, "%.1f", 0.5);
    cr_assert_str_eq(probe, "0,5", "the locale %s is not in effect", got);

    float x[3] = {0.5f, -1.25f, 3e-5f}, *y;
    long n;
    cvd_err err;
    cr_assert_eq(cvd_af_save(tmp("loc.csv"), CVD_AF_CSV, 3, 0, x, 1, &err), 0);
    char *t = tu_read_file(tmp("loc.csv"), NULL);
    cr_expect_str_eq(t, "0.5,-1.25,2.99999992e-05\n", "under %s", got);
    free(t);
    cr_assert_eq(cvd_af_load(tmp("loc.csv"), CVD_AF_CSV, 0, &y, &n, NULL, &err), 0, "%s", err.msg);
    cr_expect_eq(n, 1);
    cr_expect(memcmp(x, y, sizeof x) == 0);
    free(y);
    cr_assert_eq(cvd_af_load(TOOLS_DATA "/two_channels.csv", CVD_AF_CSV, 0, &y, &n, NULL, &err), 0,
                 "%s", err.msg);
    cr_expect_eq(y[0], 0.5f);
    cr_expect_eq(y[2], 1e-3f);
    free(y);
    setlocale(LC_ALL, "C");
}

Test(tools, af_f32_size_not_whole_frames)
{
    const char *path = tmp("odd.f32");
    float x[5] = {1, 2, 3, 4, 5}, *y = NULL;
    long n;
    cvd_af *af;
    cvd_err err = {0};
    write_f32(path, x, 5); /* 20 bytes: 2 frames of 2 channels and a half */
    cr_expect_lt(cvd_af_load(path, CVD_AF_F32, 2, &y, &n, NULL, &err), 0);
    cr_expect_null(y);
    cr_expect_not_null(strstr(err.msg, "odd.f32: 20 bytes is not a whole number of frames"), "%s",
                       err.msg);
    cr_expect_not_null(strstr(err.msg, "2 channels"), "%s", err.msg);
    /* whole frames of 1 or 5 channels */
    cr_expect_eq(cvd_af_load(path, CVD_AF_F32, 5, &y, &n, NULL, &err), 0);
    cr_expect_eq(n, 1);
    free(y);
    /* raw float32 needs a channel count */
    cr_expect_lt(cvd_af_open_read(path, CVD_AF_F32, 0, &af, &err), 0);
    cr_expect_null(af);
    cr_expect_not_null(strstr(err.msg, "channel count"), "%s", err.msg);
}

Test(tools, af_errors_name_the_file)
{
    cvd_af *af = NULL;
    cvd_err err = {0};
    const char *missing = tmp("missing.wav");
    cr_expect_lt(cvd_af_open_read(missing, CVD_AF_UNKNOWN, 1, &af, &err), 0);
    cr_expect_null(af);
    cr_expect_eq(strncmp(err.msg, missing, strlen(missing)), 0, "%s", err.msg);
    cr_expect_not_null(strstr(err.msg, "No such file"), "%s", err.msg);

    /* a text file is not audio */
    cr_expect_lt(cvd_af_open_read(NAM_DIR "/README.md", CVD_AF_UNKNOWN, 1, &af, &err), 0);
    cr_expect_not_null(strstr(err.msg, "README.md: not an audio file"), "%s", err.msg);

    /* a folder */
    cr_expect_lt(cvd_af_open_read(tmpdir, CVD_AF_CSV, 1, &af, &err), 0);
    cr_expect_not_null(strstr(err.msg, "is a directory"), "%s", err.msg);

    /* writing */
    cr_expect_lt(cvd_af_open_write(tmp("x.xyz"), CVD_AF_UNKNOWN, 1, 48000, &af, &err), 0);
    cr_expect_not_null(strstr(err.msg, "x.xyz: unknown output format"), "%s", err.msg);
    cr_expect(!file_exists(tmp("x.xyz")));
    cr_expect_lt(cvd_af_open_write("/nonexistent-dir/x.wav", CVD_AF_UNKNOWN, 1, 48000, &af, &err),
                 0);
    cr_expect_not_null(strstr(err.msg, "/nonexistent-dir/x.wav"), "%s", err.msg);
    cr_expect_lt(cvd_af_open_write(tmp("x.f32"), CVD_AF_F32, 0, 48000, &af, &err), 0);

    /* standard streams need f32 or csv */
    cr_expect_lt(cvd_af_open_read("-", CVD_AF_UNKNOWN, 1, &af, &err), 0);
    cr_expect_not_null(strstr(err.msg, "standard input"), "%s", err.msg);
    cr_expect_lt(cvd_af_open_write("-", CVD_AF_SNDFILE, 1, 48000, &af, &err), 0);
    cr_expect_not_null(strstr(err.msg, "standard output"), "%s", err.msg);
}

Test(tools, af_reads_standard_input)
{
    float *y;
    long n;
    cvd_af_info info;
    cvd_err err = {0};
    cr_assert_not_null(freopen(TOOLS_DATA "/two_channels.csv", "rb", stdin));
    cr_assert_eq(cvd_af_load("-", CVD_AF_CSV, 0, &y, &n, &info, &err), 0, "%s", err.msg);
    cr_expect_eq(n, 4);
    cr_expect_eq(info.channels, 2);
    free(y);
    cr_assert_not_null(freopen(INPUT_4K, "rb", stdin));
    cr_assert_eq(cvd_af_load("-", CVD_AF_F32, 1, &y, &n, &info, &err), 0, "%s", err.msg);
    cr_expect_eq(n, 4096);
    free(y);
    cr_assert_not_null(freopen(TOOLS_DATA "/bad_number.csv", "rb", stdin));
    cr_expect_lt(cvd_af_load("-", CVD_AF_CSV, 0, &y, &n, &info, &err), 0);
    cr_expect_not_null(strstr(err.msg, "standard input: line 5: field 1 \"0.4x\""), "%s", err.msg);
}
