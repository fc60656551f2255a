/*
 * test_docs.c - what users read and type: every program's --help and --version, the manual
 * pages (mandoc -T lint; every option --help prints is in the page; every directive of
 * docs/CONFIG.md is in convd.conf(5)), bash completion, and what `make install` puts where.
 *
 * The programs are convd and one per tools/NAME.c, found in the source tree, so a new tool is
 * checked (and needs its manual page) as soon as it exists.
 */
#include <criterion/criterion.h>
#include <dirent.h>

#include "convd_version.h"
#include "daemon_util.h"

#define MAX_PROGS 32

typedef struct prog {
    char name[64];
    int section; /* of its manual page: 8 for the daemon, 1 for the tools */
} prog;

static int cmp_prog(const void *a, const void *b)
{
    return strcmp(((const prog *)a)->name, ((const prog *)b)->name);
}

/* convd and every tools/NAME.c */
static int programs(prog *out)
{
    int n = 0;
    DIR *d = opendir("tools");
    struct dirent *e;
    cr_assert_not_null(d, "tools/: %s (run the tests from the top of the tree)", strerror(errno));
    snprintf(out[n].name, sizeof out[n].name, "convd");
    out[n++].section = 8;
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        if (len < 3 || strcmp(e->d_name + len - 2, ".c") != 0 || len - 2 >= sizeof out[n].name)
            continue;
        cr_assert_lt(n, MAX_PROGS);
        snprintf(out[n].name, sizeof out[n].name, "%.*s", (int)(len - 2), e->d_name);
        out[n++].section = 1;
    }
    closedir(d);
    qsort(out, (size_t)n, sizeof *out, cmp_prog);
    cr_assert_geq(n, 4, "convd and at least three tools expected, found %d", n);
    return n;
}

static du_proc run1(const char *name, const char *arg)
{
    const char *argv[] = {du_prog(name), arg, NULL};
    return du_run(argv, 30);
}

static void setup(void)
{
    du_tmp_make();
}

static void teardown(void)
{
    du_cleanup();
    du_tmp_remove();
}

TestSuite(cli, .init = setup, .fini = teardown);

Test(cli, every_program_prints_its_version)
{
    prog ps[MAX_PROGS];
    int n = programs(ps);
    for (int i = 0; i < n; i++) {
        char want[256];
        du_proc p = run1(ps[i].name, "--version");
        snprintf(want, sizeof want, "%.64s %s\n", ps[i].name, CVD_VERSION);
        cr_expect_eq(p.status, 0, "%s --version: exit status %d; stderr:\n%s", ps[i].name,
                     p.status, p.err);
        cr_expect_str_eq(p.out, want, "%s --version printed \"%s\"", ps[i].name, p.out);
        cr_expect_str_eq(p.err, "", "%s --version wrote to stderr:\n%s", ps[i].name, p.err);
        du_proc_free(&p);
    }
}

Test(cli, every_program_has_help_naming_the_installed_docs)
{
    prog ps[MAX_PROGS];
    int n = programs(ps);
    for (int i = 0; i < n; i++) {
        char usage[256], man[256];
        du_proc p = run1(ps[i].name, "--help");
        snprintf(usage, sizeof usage, "usage: %.64s", ps[i].name);
        snprintf(man, sizeof man, "%.64s(%d)", ps[i].name, ps[i].section);
        cr_expect_eq(p.status, 0, "%s --help: exit status %d", ps[i].name, p.status);
        cr_expect_eq(strncmp(p.out, usage, strlen(usage)), 0,
                     "%s --help does not start with \"%s\":\n%s", ps[i].name, usage, p.out);
        cr_expect_not_null(strstr(p.out, CVD_DOCDIR), "%s --help does not name %s:\n%s",
                           ps[i].name, CVD_DOCDIR, p.out);
        cr_expect_not_null(strstr(p.out, man), "%s --help does not name its manual page %s",
                           ps[i].name, man);
        cr_expect_null(strstr(p.out, "docs/"),
                       "%s --help names a folder of the source tree (docs/), absent once "
                       "installed:\n%s",
                       ps[i].name, p.out);
        cr_expect_not_null(strstr(p.out, "--version"), "%s --help does not list --version",
                           ps[i].name);
        cr_expect_str_eq(p.err, "", "%s --help wrote to stderr:\n%s", ps[i].name, p.err);
        du_proc_free(&p);
    }
}

/* An option that takes a value, given without one, is a usage error that says so. */
Test(cli, a_missing_value_is_named)
{
    static const char *const cases[][3] = {
        {"convd", "-c", "-c needs a value"},
        {"convd", "--config", "--config needs a value"},
        {"convd", "--workers", "--workers needs a value"},
        {"convd", "--log-level", "--log-level needs a value"},
        {"convd-run", "--block", "--block needs a value"},
        {"convd-cat", "--port", "--port needs a value"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        du_proc p = run1(cases[i][0], cases[i][1]);
        cr_expect_eq(p.status, 2, "%s %s: exit status %d, want 2 (usage error)", cases[i][0],
                     cases[i][1], p.status);
        cr_expect_not_null(strstr(p.err, cases[i][2]), "%s %s: stderr lacks \"%s\":\n%s",
                           cases[i][0], cases[i][1], cases[i][2], p.err);
        du_proc_free(&p);
    }
}

Test(cli, an_unknown_option_is_a_usage_error)
{
    prog ps[MAX_PROGS];
    int n = programs(ps);
    for (int i = 0; i < n; i++) {
        du_proc p = run1(ps[i].name, "--no-such-option");
        cr_expect_eq(p.status, 2, "%s --no-such-option: exit status %d, want 2", ps[i].name,
                     p.status);
        cr_expect_not_null(strstr(p.err, "--no-such-option"),
                           "%s: the error does not name the option:\n%s", ps[i].name, p.err);
        cr_expect_str_eq(p.out, "", "%s --no-such-option wrote to stdout", ps[i].name);
        du_proc_free(&p);
    }
}
