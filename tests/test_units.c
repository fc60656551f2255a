/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_units.c - the shipped systemd units, as `make install` writes them, scored by
 * `systemd-analyze security --offline=true`: convd.service at most 1.5, convd-audio.service
 * at most 2.0 (the lower, the less a compromised daemon can reach). Skipped where
 * systemd-analyze is not installed (apt-get install systemd).
 */
#include <criterion/criterion.h>

#include "daemon_util.h"

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

TestSuite(units, .init = suite_init, .fini = suite_fini);

/* The unit as `make install` writes it (PREFIX=/usr/local), into the test's folder. */
static const char *render(const char *unit)
{
    char src[DU_PATH];
    snprintf(src, sizeof src, "config/%s", unit);
    char *text = du_read_file(du_src(src), NULL);
    cr_assert_not_null(text);
    du_buf out = {0};
    for (const char *p = text; *p;) {
        if (strncmp(p, "@BINDIR@", 8) == 0) {
            du_buf_printf(&out, "/usr/local/bin");
            p += 8;
        } else if (strncmp(p, "@DOCDIR@", 8) == 0) {
            du_buf_printf(&out, "/usr/local/share/doc/convd");
            p += 8;
        } else {
            du_buf_add(&out, p++, 1);
        }
    }
    const char *path = du_tmp(unit);
    du_write_file(path, out.p, out.len);
    du_buf_free(&out);
    free(text);
    return path;
}

static double exposure(const char *unit)
{
    if (system("systemd-analyze --version >/dev/null 2>&1") != 0)
        cr_skip_test("no systemd-analyze here (apt-get install systemd)");
    const char *path = render(unit);
    const char *argv[] = {
        "/usr/bin/env", "systemd-analyze", "security", "--offline=true", path, NULL};
    du_proc p = du_run(argv, 30);
    if (strstr(p.err, "unrecognized option") || strstr(p.err, "Unknown option"))
        cr_skip_test("this systemd-analyze has no --offline (systemd 250 or later has it)");
    const char *hit = strstr(p.out, "Overall exposure level for");
    cr_assert_not_null(hit, "systemd-analyze gave no score (exit %d):\n%s\n%s", p.status, p.out,
                       p.err);
    const char *colon = strchr(hit, ':');
    cr_assert_not_null(colon);
    double v = strtod(colon + 1, NULL);
    cr_log_info("%s: exposure %.1f", unit, v);
    du_proc_free(&p);
    return v;
}

Test(units, convd_service_exposure_at_most_1_5)
{
    double v = exposure("convd.service");
    cr_assert_leq(v, 1.5, "convd.service: exposure %.1f, more than 1.5", v);
}

Test(units, convd_audio_service_exposure_at_most_2_0)
{
    double v = exposure("convd-audio.service");
    cr_assert_leq(v, 2.0, "convd-audio.service: exposure %.1f, more than 2.0", v);
}

/* The limits the units set are those the docs give (MemoryMax from max_stream_memory). */
Test(units, resource_limits_and_address_lists_are_set)
{
    const char *units[] = {"config/convd.service", "config/convd-audio.service"};
    for (int i = 0; i < 2; i++) {
        char *text = du_read_file(du_src(units[i]), NULL);
        cr_assert_not_null(text);
        const char *need[] = {"\nMemoryMax=",
                              "\nTasksMax=",
                              "\nIPAddressDeny=any",
                              "\nIPAddressAllow=",
                              "\nProtectProc=invisible",
                              "\nLimitNOFILE="};
        for (size_t k = 0; k < sizeof need / sizeof need[0]; k++)
            cr_assert_not_null(strstr(text, need[k]), "%s: no%s", units[i], need[k]);
        free(text);
    }
}
