/* SPDX-License-Identifier: Apache-2.0 */
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
        cr_expect_eq(p.status, 0, "%s --version: exit status %d; stderr:\n%s", ps[i].name, p.status,
                     p.err);
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
        cr_expect_not_null(strstr(p.out, CVD_DOCDIR), "%s --help does not name %s:\n%s", ps[i].name,
                           CVD_DOCDIR, p.out);
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

/* ---- helpers: options in a text, rendered manual pages -------------------------------------- */

#define MAX_OPTS 96

typedef struct optlist {
    char opt[MAX_OPTS][48];
    int n;
} optlist;

static int is_word(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_';
}

/* The options a text names: -x or --name after a blank, a comma, '[', ']', '(' or '|' (or at the
 * start of a line), a letter after the dashes. */
static void options_in(const char *t, optlist *o)
{
    o->n = 0;
    for (const char *p = t; *p; p++) {
        if (*p != '-' || (p > t && !strchr(" \t\n,[]|(", p[-1])))
            continue;
        const char *q = p + (p[1] == '-' ? 2 : 1);
        if (!((*q >= 'a' && *q <= 'z') || (*q >= 'A' && *q <= 'Z')))
            continue;
        while (is_word(*q) && *q != '_')
            q++;
        int len = (int)(q - p), dup = 0;
        if (len >= (int)sizeof o->opt[0])
            continue;
        for (int i = 0; i < o->n; i++)
            dup |= (int)strlen(o->opt[i]) == len && strncmp(o->opt[i], p, (size_t)len) == 0;
        if (!dup && o->n < MAX_OPTS)
            snprintf(o->opt[o->n++], sizeof o->opt[0], "%.*s", len, p);
        p = q - 1;
    }
}

/* Whether `word` occurs in t as a whole word (not inside a longer option or name). */
static int has_word(const char *t, const char *word)
{
    size_t n = strlen(word);
    for (const char *p = t; (p = strstr(p, word)) != NULL; p++)
        if ((p == t || !is_word(p[-1])) && !is_word(p[n]))
            return 1;
    return 0;
}

static int have_program(const char *name)
{
    char cmd[256];
    snprintf(cmd, sizeof cmd, "command -v %s >/dev/null 2>&1", name);
    return system(cmd) == 0;
}

/* A manual page as text (mandoc -T ascii, overstrikes removed); malloc'd. */
static char *render(const char *page)
{
    const char *argv[] = {"/usr/bin/env", "mandoc", "-T", "ascii", page, NULL};
    du_proc p = du_run(argv, 60);
    cr_assert_eq(p.status, 0, "mandoc -T ascii %s failed:\n%s", page, p.err);
    char *t = p.out, *w = t;
    for (const char *r = t; *r; r++) {
        if (r[1] == '\b' && r[2] != '\0') /* "x\bx" bold, "_\bx" underline: keep the last */
            continue;
        if (*r == '\b')
            continue;
        *w++ = *r;
    }
    *w = '\0';
    p.out = NULL;
    du_proc_free(&p);
    return t;
}

static void need_mandoc(void)
{
    if (!have_program("mandoc"))
        cr_skip_test("mandoc is not installed (apt-get install mandoc): manual pages unchecked");
}

/* ---- manual pages --------------------------------------------------------------------------- */

TestSuite(man, .init = setup, .fini = teardown);

Test(man, every_program_has_its_page)
{
    prog ps[MAX_PROGS];
    int n = programs(ps);
    for (int i = 0; i < n; i++) {
        char path[128];
        snprintf(path, sizeof path, "man/%.64s.%d", ps[i].name, ps[i].section);
        cr_expect_eq(access(path, R_OK), 0, "%s has no manual page %s", ps[i].name, path);
    }
    cr_expect_eq(access("man/convd.conf.5", R_OK), 0, "man/convd.conf.5 is missing");
}

Test(man, pages_pass_mandoc_lint)
{
    need_mandoc();
    DIR *d = opendir("man");
    struct dirent *e;
    int pages = 0;
    cr_assert_not_null(d, "man/: %s", strerror(errno));
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        if (len < 3 || e->d_name[len - 2] != '.' || e->d_name[len - 1] < '1' ||
            e->d_name[len - 1] > '8')
            continue;
        char path[300];
        snprintf(path, sizeof path, "man/%s", e->d_name);
        const char *argv[] = {"/usr/bin/env", "mandoc", "-T", "lint", "-W", "warning", path, NULL};
        du_proc p = du_run(argv, 60);
        cr_expect(p.status == 0 && p.out[0] == '\0' && p.err[0] == '\0',
                  "mandoc -T lint -W warning %s (status %d):\n%s%s", path, p.status, p.out, p.err);
        du_proc_free(&p);
        pages++;
    }
    closedir(d);
    cr_expect_geq(pages, 5, "%d manual pages in man/", pages);
}

/* Every option a program's --help prints is described in its manual page: a new option
 * without documentation fails here. */
Test(man, every_option_of_help_is_in_the_page)
{
    need_mandoc();
    prog ps[MAX_PROGS];
    int n = programs(ps);
    for (int i = 0; i < n; i++) {
        char path[128];
        optlist o;
        snprintf(path, sizeof path, "man/%.64s.%d", ps[i].name, ps[i].section);
        if (access(path, R_OK) != 0)
            continue; /* every_program_has_its_page says so */
        du_proc h = run1(ps[i].name, "--help");
        options_in(h.out, &o);
        cr_expect_geq(o.n, 3, "%s --help names only %d options", ps[i].name, o.n);
        char *page = render(path);
        for (int k = 0; k < o.n; k++)
            cr_expect(has_word(page, o.opt[k]),
                      "%s --help prints %s, but its manual page %s does not describe it",
                      ps[i].name, o.opt[k], path);
        free(page);
        du_proc_free(&h);
    }
}

/* Every directive docs/CONFIG.md documents, in its section, is in convd.conf(5) in the same
 * section ("name = ..."): a new directive without its manual entry fails here. */
Test(man, every_directive_of_config_md_is_in_convd_conf_5)
{
    need_mandoc();
    char *doc = du_read_file("docs/CONFIG.md", NULL);
    char *page = render("man/convd.conf.5");
    int sections = 0, directives = 0;
    cr_assert_not_null(doc);
    /* "## `[listen NAME]`" headings, then table rows "| `address` | ..." */
    for (char *h = strstr(doc, "\n## `["); h; h = strstr(h + 1, "\n## `[")) {
        char sect[64], head[96];
        const char *b = h + 5, *e = strchr(b, ']');
        cr_assert_not_null(e);
        snprintf(sect, sizeof sect, "%.*s", (int)(e - b + 1), b); /* [listen NAME] */
        snprintf(head, sizeof head, "The %s section", sect);
        const char *ms = strstr(page, head);
        cr_expect_not_null(ms, "docs/CONFIG.md has a %s section; man/convd.conf.5 has no \"%s\"",
                           sect, head);
        sections++;
        if (ms == NULL)
            continue;
        /* the man section runs to the next subsection heading (three spaces, capital) */
        const char *me = ms + strlen(head);
        while ((me = strstr(me, "\n   ")) != NULL && !(me[4] >= 'A' && me[4] <= 'Z'))
            me++;
        size_t mlen = me ? (size_t)(me - ms) : strlen(ms);
        char *mtext = strndup(ms, mlen);
        const char *end = strstr(h + 1, "\n## ");
        for (const char *r = strstr(h, "\n| `"); r && (!end || r < end);
             r = strstr(r + 1, "\n| `")) {
            char name[64], want[80];
            const char *nb = r + 4, *ne = strchr(nb, '`');
            if (ne == NULL || ne - nb >= (long)sizeof name)
                continue;
            snprintf(name, sizeof name, "%.*s", (int)(ne - nb), nb);
            snprintf(want, sizeof want, "%s = ", name);
            cr_expect(has_word(mtext, name) && strstr(mtext, want) != NULL,
                      "docs/CONFIG.md documents '%s' in %s; man/convd.conf.5 does not (add an "
                      "entry \"%s = ...\" to its %s section)",
                      name, sect, name, sect);
            directives++;
        }
        free(mtext);
    }
    cr_expect_geq(sections, 4, "%d sections found in docs/CONFIG.md", sections);
    cr_expect_geq(directives, 30, "%d directives found in docs/CONFIG.md", directives);
    free(page);
    free(doc);
}

/* make install puts the pages, the completion and the license where they belong, with this
 * installation's paths in the pages, and make uninstall removes them (the programs are not
 * rebuilt: -o). */
Test(man, install_and_uninstall)
{
    char root[DU_PATH + 16], build[DU_PATH + 8];
    const char *bd = du_build_dir();
    prog ps[MAX_PROGS];
    int n = programs(ps);
    du_deadline(300);
    if (!have_program("make"))
        cr_skip_test("make is not installed");
    snprintf(root, sizeof root, "DESTDIR=%s", du_tmp("root"));
    snprintf(build, sizeof build, "BUILD=%s", bd);
    for (int pass = 0; pass < 2; pass++) {
        const char *argv[64];
        char olds[MAX_PROGS][DU_PATH + 80];
        int k = 0;
        argv[k++] = "/usr/bin/env";
        argv[k++] = "make";
        argv[k++] = "-s";
        argv[k++] = pass == 0 ? "install" : "uninstall";
        argv[k++] = root;
        argv[k++] = build;
        argv[k++] = "PREFIX=/opt/cvd";
        for (int i = 0; i < n; i++) {
            snprintf(olds[i], sizeof olds[i], "-o%.1000s/%.64s", bd, ps[i].name);
            argv[k++] = olds[i];
        }
        argv[k] = NULL;
        du_proc p = du_run(argv, 240);
        cr_assert_eq(p.status, 0, "make %s failed (%d):\n%s%s", argv[3], p.status, p.out, p.err);
        du_proc_free(&p);
        const char *files[] = {"opt/cvd/share/man/man8/convd.8",
                               "opt/cvd/share/man/man5/convd.conf.5",
                               "opt/cvd/share/bash-completion/completions/convd",
                               "opt/cvd/share/doc/convd/LICENSE", NULL};
        for (int i = 0; files[i]; i++) {
            char path[DU_PATH * 2];
            snprintf(path, sizeof path, "%s/%s", du_tmp("root"), files[i]);
            cr_expect_eq(access(path, F_OK) == 0, pass == 0, "%s: %s after make %s", files[i],
                         pass == 0 ? "missing" : "still there", argv[3]);
        }
        for (int i = 1; i < n; i++) { /* the tools: page and completion (a link to convd's) */
            char path[DU_PATH * 2];
            struct stat st;
            snprintf(path, sizeof path, "%s/opt/cvd/share/man/man1/%s.1", du_tmp("root"),
                     ps[i].name);
            cr_expect_eq(access(path, F_OK) == 0, pass == 0, "%s: %s after make %s", path,
                         pass == 0 ? "missing" : "still there", argv[3]);
            snprintf(path, sizeof path, "%s/opt/cvd/share/bash-completion/completions/%s",
                     du_tmp("root"), ps[i].name);
            cr_expect_eq(lstat(path, &st) == 0, pass == 0, "%s: %s after make %s", path,
                         pass == 0 ? "missing" : "still there", argv[3]);
        }
        if (pass == 0) {
            char path[DU_PATH * 2];
            snprintf(path, sizeof path, "%s/opt/cvd/share/man/man8/convd.8", du_tmp("root"));
            char *t = du_read_file(path, NULL);
            cr_assert_not_null(t);
            cr_expect_not_null(strstr(t, "/opt/cvd/share/doc/convd/"),
                               "the installed convd(8) does not name the installed docs");
            cr_expect_null(strstr(t, "/usr/share/doc/convd"),
                           "the installed convd(8) names /usr/share/doc/convd");
            free(t);
        }
    }
}

/* ---- bash completion ---------------------------------------------------------------------- */

TestSuite(completion, .init = setup, .fini = teardown);

/* Runs the completion for the words (the last one being completed) in folder `cwd`, with
 * CONVD_CONF=conf; returns COMPREPLY, one per line (malloc'd). */
static char *complete(const char *cwd, const char *conf, const char *const *words)
{
    du_buf script = {0};
    du_buf_printf(&script, "source '%s' || exit 9\nPATH='%s':$PATH\ncd '%s' || exit 8\n",
                  du_src("completion/convd"), du_build_dir(), cwd);
    if (conf)
        du_buf_printf(&script, "export CONVD_CONF='%s'\n", conf);
    du_buf_printf(&script, "COMP_WORDS=(");
    int n = 0;
    for (; words[n]; n++)
        du_buf_printf(&script, " '%s'", words[n]);
    du_buf_printf(
        &script, ")\nCOMP_CWORD=%d\n_convd_complete\nprintf '%%s\\n' \"${COMPREPLY[@]}\"\n", n - 1);
    const char *file = du_tmp("complete.sh");
    du_write_file(file, script.p, script.len);
    du_buf_free(&script);
    const char *argv[] = {"/usr/bin/env", "bash", "--norc", "--noprofile", file, NULL};
    du_proc p = du_run(argv, 60);
    cr_assert_eq(p.status, 0, "bash %s: status %d:\n%s", file, p.status, p.err);
    char *out = p.out;
    p.out = NULL;
    du_proc_free(&p);
    return out;
}

static int has_line(const char *t, const char *line)
{
    size_t n = strlen(line);
    for (const char *p = t; (p = strstr(p, line)) != NULL; p++)
        if ((p == t || p[-1] == '\n') && (p[n] == '\n' || p[n] == '\0'))
            return 1;
    return 0;
}

static void need_bash(void)
{
    if (!have_program("bash"))
        cr_skip_test("bash is not installed: the completion is unchecked");
}

Test(completion, every_option_of_every_program)
{
    need_bash();
    prog ps[MAX_PROGS];
    int n = programs(ps);
    for (int i = 0; i < n; i++) {
        optlist o;
        du_proc h = run1(ps[i].name, "--help");
        options_in(h.out, &o);
        const char *words[] = {ps[i].name, "-", NULL};
        char *got = complete(du_tmp(""), NULL, words);
        for (int k = 0; k < o.n; k++)
            cr_expect(has_line(got, o.opt[k]), "%s -<TAB> does not offer %s; it offers:\n%s",
                      ps[i].name, o.opt[k], got);
        free(got);
        du_proc_free(&h);
    }
}

Test(completion, values_and_names_from_the_configuration)
{
    need_bash();
    const char *conf = du_tmp("c.conf");
    const char *text = "[server]\nworkers = 1\n[model amp]\npath = a.nam\n[ model  vib-3 ]\n"
                       "path = v.json\n[stream live]\ninput = none\n[listen x]\n";
    du_write_file(conf, text, strlen(text));
    const char *dir = du_tmp("");
    const char *files[] = {"a.nam", "b.JSON", "c.txt", "d.keras", NULL};
    for (int i = 0; files[i]; i++)
        du_write_file(du_tmp(files[i]), "", 0);
    struct {
        const char *words[6];
        const char *want[4];
        const char *not_want;
    } cases[] = {
        {{"convd", "--log-level", "", NULL}, {"error", "warning", "info", "debug"}, NULL},
        {{"convd-cat", "--wire", "", NULL}, {"f32", "s16", NULL}, NULL},
        {{"convd-cat", "--format", "", NULL}, {"f32", "s16", "csv", NULL}, NULL},
        {{"convd-run", "--format", "", NULL}, {"f32", "csv", NULL}, NULL},
        {{"convd-run", "--block", "", NULL}, {NULL}, "a.nam"},
        {{"convd-run", "--block", "64", "", NULL}, {"a.nam", NULL}, "c.txt"},
        {{"convd-run", "--", "a.nam", "", NULL}, {"c.txt", NULL}, NULL},
        {{"convd-cat", "-m", "", NULL}, {"amp", "vib-3", NULL}, "live"},
        {{"convd-cat", "--subscribe", "", NULL}, {"live", NULL}, "amp"},
        {{"convd-cat", "-c", "/nonexistent", "-m", "", NULL}, {NULL}, "amp"},
        {{"convd-run", "", NULL}, {"a.nam", "b.JSON", "d.keras", NULL}, "c.txt"},
        {{"convd-run", "-q", "a.nam", "", NULL}, {"c.txt", "a.nam", NULL}, NULL},
        {{"convd-info", "", NULL}, {"a.nam", "d.keras", NULL}, "c.txt"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *got = complete(dir, conf, cases[i].words);
        for (int k = 0; k < 4 && cases[i].want[k]; k++)
            cr_expect(has_line(got, cases[i].want[k]), "%s %s<TAB>: no %s in:\n%s",
                      cases[i].words[0], cases[i].words[1], cases[i].want[k], got);
        if (cases[i].not_want)
            cr_expect(!has_line(got, cases[i].not_want), "%s %s<TAB>: %s offered:\n%s",
                      cases[i].words[0], cases[i].words[1], cases[i].not_want, got);
        free(got);
    }
}

/* ---- versions and packaging metadata ------------------------------------------------------ */

/* The version is written in four places: the Makefile (CVD_VERSION), debian/changelog, the
 * Python package's pyproject.toml and its __version__. They agree. */
Test(cli, the_versions_agree)
{
    char want[128];
    char *changelog = du_read_file("debian/changelog", NULL);
    char *pyproject = du_read_file("client/python/pyproject.toml", NULL);
    char *init = du_read_file("client/python/convd/__init__.py", NULL);
    cr_assert(changelog && pyproject && init, "debian/changelog, client/python/pyproject.toml "
                                              "or client/python/convd/__init__.py is missing");
    snprintf(want, sizeof want, "convd (%s)", CVD_VERSION);
    cr_expect_eq(strncmp(changelog, want, strlen(want)), 0,
                 "debian/changelog's first entry is not \"%s\" (the Makefile's VERSION)", want);
    snprintf(want, sizeof want, "\nversion = \"%s\"\n", CVD_VERSION);
    cr_expect_not_null(strstr(pyproject, want), "client/python/pyproject.toml lacks %s", want + 1);
    snprintf(want, sizeof want, "__version__ = \"%s\"", CVD_VERSION);
    cr_expect_not_null(strstr(init, want), "client/python/convd/__init__.py lacks %s", want);
    free(changelog);
    free(pyproject);
    free(init);
}

/* What the build needs (scripts/install-deps.sh's BUILD_PKGS, the test framework aside) is
 * in debian/control's Build-Depends, so the package builds on a clean system. */
Test(cli, debian_build_depends_cover_the_build_packages)
{
    char *deps = du_read_file("scripts/install-deps.sh", NULL);
    char *control = du_read_file("debian/control", NULL);
    cr_assert(deps && control);
    char *b = strstr(deps, "BUILD_PKGS=\"");
    cr_assert_not_null(b, "no BUILD_PKGS=\"...\" in scripts/install-deps.sh");
    b += strlen("BUILD_PKGS=\"");
    char *e = strchr(b, '"');
    cr_assert_not_null(e);
    char *bd = strstr(control, "Build-Depends:");
    cr_assert_not_null(bd, "debian/control has no Build-Depends");
    char *bd_end = strstr(bd, "\n\n");
    char *bdeps = strndup(bd, bd_end ? (size_t)(bd_end - bd) : strlen(bd));
    int n = 0;
    for (char *p = b; p < e;) {
        while (p < e && (*p == ' ' || *p == '\n' || *p == '\t'))
            p++;
        char *q = p;
        while (q < e && !(*q == ' ' || *q == '\n' || *q == '\t'))
            q++;
        if (q > p) {
            char pkg[96];
            snprintf(pkg, sizeof pkg, "%.*s", (int)(q - p), p);
            if (strcmp(pkg, "build-essential") != 0 && strcmp(pkg, "libcriterion-dev") != 0) {
                cr_expect(has_word(bdeps, pkg),
                          "scripts/install-deps.sh builds with %s, debian/control's "
                          "Build-Depends lacks it",
                          pkg);
                n++;
            }
        }
        p = q;
    }
    cr_expect_geq(n, 5);
    free(bdeps);
    free(deps);
    free(control);
}

/* Every option that takes a value ("--block N" in --help) has it skipped when the completion
 * counts operands: after "convd-run OPTION VALUE" the next word is still MODEL (model files
 * only), whatever options are added later. */
Test(completion, options_with_values_are_skipped_when_counting_operands)
{
    need_bash();
    const char *dir = du_tmp("");
    du_write_file(du_tmp("a.nam"), "", 0);
    du_write_file(du_tmp("c.txt"), "", 0);
    const char *progs[] = {"convd-run", "convd-info"};
    int checked = 0;
    for (int k = 0; k < 2; k++) {
        du_proc h = run1(progs[k], "--help");
        optlist o;
        options_in(h.out, &o);
        for (int i = 0; i < o.n; i++) {
            /* "--name N": a blank, then a capital metavariable */
            char pat[64];
            snprintf(pat, sizeof pat, "%s ", o.opt[i]);
            const char *at = strstr(h.out, pat);
            if (at == NULL || !(at[strlen(pat)] >= 'A' && at[strlen(pat)] <= 'Z'))
                continue;
            const char *words[] = {progs[k], o.opt[i], "x", "", NULL};
            char *got = complete(dir, NULL, words);
            cr_expect(has_line(got, "a.nam") && !has_line(got, "c.txt"),
                      "%s %s x <TAB> should offer model files (MODEL), it offers:\n%s", progs[k],
                      o.opt[i], got);
            free(got);
            checked++;
        }
        du_proc_free(&h);
    }
    cr_expect_geq(checked, 3, "only %d options with values found in the --help texts", checked);
}
