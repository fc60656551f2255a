/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_python.c - the Python client's tests (client/python/tests, pytest) as one Criterion
 * test: they start this build's daemon (CONVD_BUILD_DIR: build/ or build-san/), compare its
 * answers with convd-run's, and check the codec byte for byte. Skipped, saying why, where
 * python3 with numpy and pytest is not installed.
 */
#include <criterion/criterion.h>

#include "daemon_util.h"

static void setup(void)
{
    du_tmp_make();
}

static void teardown(void)
{
    du_cleanup();
    du_tmp_remove();
}

TestSuite(python, .init = setup, .fini = teardown);

/* The interpreter: CVD_PYTHON, else Debian's (the one with python3-numpy). */
static const char *python(void)
{
    const char *p = getenv("CVD_PYTHON");
    return p && *p ? p : "/usr/bin/python3";
}

/* The last non-empty line of a text (pytest's summary), in a static buffer. */
static const char *last_line(const char *t)
{
    static char buf[512];
    size_t n = strlen(t);
    while (n > 0 && (t[n - 1] == '\n' || t[n - 1] == '\r'))
        n--;
    size_t b = n;
    while (b > 0 && t[b - 1] != '\n')
        b--;
    snprintf(buf, sizeof buf, "%.*s", (int)(n - b), t + b);
    return buf;
}

Test(python, client_tests_pass)
{
    char build_env[DU_PATH + 32];
    du_deadline(900);
    if (access(python(), X_OK) != 0)
        cr_skip_test("%s not found: the Python client's tests need python3 with numpy and "
                     "pytest (apt-get install python3-numpy python3-pytest)",
                     python());
    {
        const char *argv[] = {python(), "-c", "import numpy, pytest", NULL};
        du_proc p = du_run(argv, 60);
        if (p.status != 0) {
            char why[300];
            snprintf(why, sizeof why, "%s", last_line(p.err));
            du_proc_free(&p);
            cr_skip_test("the Python client's tests need numpy and pytest (apt-get install "
                         "python3-numpy python3-pytest): %s",
                         why);
        }
        du_proc_free(&p);
    }
    snprintf(build_env, sizeof build_env, "CONVD_BUILD_DIR=%s", du_build_dir());
    const char *argv[] = {python(), "-m", "pytest",           "-q",
                          "-rs",    "-p", "no:cacheprovider", "client/python/tests",
                          NULL};
    const char *env[] = {build_env, "PYTHONDONTWRITEBYTECODE=1", "NOTIFY_SOCKET=", NULL};
    const char *out = du_tmp("pytest.out");
    du_spawn_opts o = {.argv = argv, .env_add = env, .out_path = out, .err_path = out, .fd3 = -1};
    int st = 0;
    pid_t pid = du_spawn(&o);
    if (!du_wait_pid(pid, 840, &st)) {
        kill(pid, SIGKILL);
        du_wait_pid(pid, 5, &st);
        char *t = du_read_file(out, NULL);
        cr_assert_fail("pytest still running after 840 s:\n%s", t ? t : "");
    }
    char *t = du_read_file(out, NULL);
    cr_assert_not_null(t);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0,
              "the Python client's tests failed (python3 -m pytest client/python/tests, "
              "CONVD_BUILD_DIR=%s):\n%s",
              du_build_dir(), t);
    /* the summary ("74 passed, 1 skipped in 16.10s") and any skip with its reason */
    cr_log_info("python: %s", last_line(t));
    for (const char *s = strstr(t, "SKIPPED"); s; s = strstr(s + 1, "SKIPPED"))
        cr_log_info("python: %.*s", (int)strcspn(s, "\n"), s);
    free(t);
}
