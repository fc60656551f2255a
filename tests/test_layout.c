/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The source tree's include rules (scripts/check-includes.sh, docs/ARCHITECTURE.md), its
 * licence lines (scripts/check-spdx.sh) and its long files' reasons
 * (scripts/check-long-files.sh): the tree keeps them, and each check catches each kind of break
 * in a small tree made here. Also: no test logs at warning level, and the suites the TSan pass
 * leaves out start no program.
 */
#include <criterion/criterion.h>
#include <sys/stat.h>

#include "daemon_util.h"
#include "testutil.h"

static void suite_init(void)
{
    du_tmp_make();
    du_deadline(60);
}

static void suite_fini(void)
{
    du_cleanup();
    du_tmp_remove();
}

TestSuite(layout, .init = suite_init, .fini = suite_fini);

/* scripts/NAME on the tree at root */
static du_proc run_script(const char *name, const char *root)
{
    char path[64];
    snprintf(path, sizeof path, "scripts/%s", name);
    const char *argv[] = {"/bin/sh", du_src(path), root, NULL};
    return du_run(argv, 30);
}

/* scripts/NAME passes on this tree */
static void tree_passes(const char *name)
{
    du_proc p = run_script(name, du_src("."));
    cr_assert_eq(p.status, 0, "scripts/%s:\n%s%s", name, p.out, p.err);
    du_proc_free(&p);
}

static du_proc check(const char *root)
{
    return run_script("check-includes.sh", root);
}

Test(layout, the_tree_keeps_the_include_rules)
{
    du_proc p = check(du_src("."));
    cr_assert_eq(p.status, 0, "scripts/check-includes.sh:\n%s%s", p.out, p.err);
    cr_assert(strstr(p.out, "no cycle") != NULL, "%s", p.out);
    du_proc_free(&p);
}

/* Writes root/path with text (folders made). */
static void put(const char *root, const char *path, const char *text)
{
    char full[DU_PATH], dir[DU_PATH];
    snprintf(full, sizeof full, "%s/%s", root, path);
    snprintf(dir, sizeof dir, "%s", full);
    *strrchr(dir, '/') = '\0';
    mkdir(dir, 0755);
    du_write_file(full, text, strlen(text));
}

static void expect_refused(const char *name, const char *want)
{
    char root[DU_PATH];
    snprintf(root, sizeof root, "%s", du_tmp(name));
    du_proc p = check(root);
    cr_assert_eq(p.status, 1, "%s: exit %d:\n%s%s", name, p.status, p.out, p.err);
    cr_assert(strstr(p.out, want) != NULL, "%s: want \"%s\" in:\n%s", name, want, p.out);
    du_proc_free(&p);
}

Test(layout, the_check_catches_a_cycle_a_c_include_and_a_layer_break)
{
    char root[DU_PATH];
    /* a.c -> b.h, b.c -> c.h, c.c -> a.h: a cycle through three modules */
    snprintf(root, sizeof root, "%s", du_tmp("cycle"));
    mkdir(root, 0755);
    put(root, "server/a.h", "int a(void);\n");
    put(root, "server/b.h", "int b(void);\n");
    put(root, "server/c.h", "int c(void);\n");
    put(root, "server/a.c", "#include \"a.h\"\n#include \"b.h\"\n");
    put(root, "server/b.c", "#include \"b.h\"\n#include \"c.h\"\n");
    put(root, "server/c.c", "#include \"c.h\"\n#include \"a.h\"\n");
    expect_refused("cycle", "include cycle");

    snprintf(root, sizeof root, "%s", du_tmp("cinclude"));
    mkdir(root, 0755);
    put(root, "server/codec.c", "int x;\n");
    put(root, "client/client.c", "#define PRIVATE\n#include \"../server/codec.c\"\n");
    expect_refused("cinclude", "includes a .c file");

    snprintf(root, sizeof root, "%s", du_tmp("layers"));
    mkdir(root, 0755);
    put(root, "server/conn.h", "int conn(void);\n");
    put(root, "proto/codec.c", "#include \"conn.h\"\n");
    expect_refused("layers", "proto/ may not depend on server/");
}

Test(layout, every_source_file_names_its_licence)
{
    tree_passes("check-spdx.sh");

    char root[DU_PATH];
    snprintf(root, sizeof root, "%s", du_tmp("spdx"));
    mkdir(root, 0755);
    put(root, "dsp/good.c", "/* SPDX-License-Identifier: Apache-2.0 */\nint good;\n");
    put(root, "dsp/bad.c", "/* no licence named */\nint bad;\n");
    du_proc p = run_script("check-spdx.sh", root);
    cr_assert_eq(p.status, 1, "exit %d:\n%s%s", p.status, p.out, p.err);
    cr_assert(strstr(p.out, "dsp/bad.c") != NULL && strstr(p.out, "dsp/good.c") == NULL, "%s",
              p.out);
    du_proc_free(&p);
}

/* Criterion 2.4 counts every message logged at warning or error level and then exits 1 even
 * when every test passed (runner.c: ok = failed == 0 && errors == 0 && warnings == 0): a
 * test's remark must be cr_log_info, a failure an assertion, a missing tool cr_skip_test */
Test(layout, no_test_logs_at_warning_or_error_level)
{
    const char *argv[] = {"/bin/grep", "-rnE",
                          "cr_log_(w)arn *\\(|cr_log_(e)rror *\\(|CR_LOG_(W)ARNING|CR_LOG_(E)RROR",
                          du_src("tests"), NULL};
    du_proc p = du_run(argv, 30);
    cr_assert_eq(p.status, 1, "a warning or error log makes the runner exit 1 (exit %d):\n%s%s",
                 p.status, p.out, p.err);
    du_proc_free(&p);
}

/* head, then declarations up to `lines` lines in all (malloc'd) */
static char *long_file(const char *head, int lines)
{
    size_t cap = strlen(head) + (size_t)lines * 16 + 1, len = strlen(head);
    char *t = malloc(cap);
    cr_assert_not_null(t);
    memcpy(t, head, len + 1);
    for (int n = du_count(head, "\n"); n < lines; n++)
        len += (size_t)snprintf(t + len, cap - len, "int v%d;\n", n);
    return t;
}

static void put_long(const char *root, const char *path, const char *head, int lines)
{
    char *t = long_file(head, lines);
    put(root, path, t);
    free(t);
}

Test(layout, every_long_source_file_says_why_in_its_opening_comment)
{
    tree_passes("check-long-files.sh");

    /* a small tree: files over and at the limit (1,100 lines), with the marker and without */
    char root[DU_PATH];
    snprintf(root, sizeof root, "%s", du_tmp("long"));
    mkdir(root, 0755);
    const char *spdx = "/* SPDX-License-Identifier: Apache-2.0 */\n";
    char head[512];
    snprintf(head, sizeof head, "%s/*\n * A file.\n *\n * Long because: a reason.\n */\n", spdx);
    put_long(root, "dsp/said.c", head, 1101);
    snprintf(head, sizeof head, "%s/* A file. Long because: a reason on its one line. */\n", spdx);
    put_long(root, "model/said_short.h", head, 1500);
    snprintf(head, sizeof head, "%s/*\n * A file that says nothing of its length.\n */\n", spdx);
    put_long(root, "dsp/silent.c", head, 1101);
    put_long(root, "server/silent.h", head, 2000);
    put_long(root, "tests/at_the_limit.c", head, 1100);
    snprintf(head, sizeof head, "%s/* A file. */\nint x;\n/* Long because: too late. */\n", spdx);
    put_long(root, "tools/later.c", head, 1101);
    snprintf(head, sizeof head,
             "%s#include <stdio.h>\n/* Long because: not an opening comment */\n", spdx);
    put_long(root, "client/code_first.c", head, 1101);
    du_proc p = run_script("check-long-files.sh", root);
    cr_assert_eq(p.status, 1, "exit %d:\n%s%s", p.status, p.out, p.err);
    cr_assert(strstr(p.out, "dsp/silent.c: 1101 lines") != NULL, "%s", p.out);
    cr_assert(strstr(p.out, "server/silent.h: 2000 lines") != NULL, "%s", p.out);
    cr_assert(strstr(p.out, "tools/later.c") != NULL, "%s", p.out);
    cr_assert(strstr(p.out, "client/code_first.c") != NULL, "%s", p.out);
    cr_assert(strstr(p.out, "said") == NULL && strstr(p.out, "at_the_limit") == NULL, "%s", p.out);
    cr_assert(strstr(p.out, "4 of 6 files over 1100 lines") != NULL, "%s", p.out);
    du_proc_free(&p);
}

/* the words of the Makefile's TSAN_SKIP (backslash-continued lines), space-separated */
static void tsan_skip_list(char *out, size_t cap)
{
    char *mk = du_read_file(du_src("Makefile"), NULL);
    cr_assert_not_null(mk);
    const char *p = strstr(mk, "\nTSAN_SKIP := ");
    cr_assert_not_null(p, "no TSAN_SKIP in the Makefile");
    p += strlen("\nTSAN_SKIP := ");
    size_t o = 0;
    for (; *p && !(*p == '\n' && p[-1] != '\\') && o + 1 < cap; p++)
        out[o++] = *p == '\\' || *p == '\n' || *p == '\t' ? ' ' : *p;
    out[o] = '\0';
    free(mk);
}

/* `make test SAN=thread` leaves out the suites in TSAN_SKIP: their tests run in the plain test
 * runner (Criterion cannot run under TSan), so they must start no program, the only code that
 * pass watches. Each such suite exists, and no file defining one starts a program. */
Test(layout, suites_left_out_of_the_tsan_pass_start_no_program)
{
    static const char *const starts[] = {"daemon_util.h", "toolrun.h",   "nats_harness.h",
                                         "CVD_BUILD_DIR", "posix_spawn", "execv",
                                         "popen",         "du_prog("};
    char skip[2048], word[64];
    tsan_skip_list(skip, sizeof skip);
    int words = 0;
    for (const char *w = skip; sscanf(w, "%63s", word) == 1; words++) {
        w = strstr(w, word) + strlen(word);
        char pat[96];
        snprintf(pat, sizeof pat, "(Test|TestSuite)\\(%s,", word);
        const char *argv[] = {"/bin/grep",          "-lE",           pat, "-r",
                              "--include=test_*.c", du_src("tests"), NULL};
        du_proc p = du_run(argv, 30);
        cr_expect_eq(p.status, 0, "TSAN_SKIP names suite %s, which no test file defines", word);
        for (char *f = strtok(p.out, "\n"); f; f = strtok(NULL, "\n")) {
            char *text = du_read_file(f, NULL);
            cr_assert_not_null(text, "%s", f);
            for (size_t i = 0; i < sizeof starts / sizeof starts[0]; i++)
                cr_expect_null(strstr(text, starts[i]),
                               "%s (suite %s, left out of the SAN=thread pass by the Makefile's "
                               "TSAN_SKIP) has %s: a test there may start a program, which that "
                               "pass is for; take %s out of TSAN_SKIP",
                               f, word, starts[i], word);
            free(text);
        }
        du_proc_free(&p);
    }
    cr_expect_gt(words, 10, "TSAN_SKIP: %s", skip);
}
