/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_packaging.c - where captures live and what installing leaves behind (issue 13):
 * relative model paths are looked up in the models folder first (/var/lib/convd/models, or
 * $CONVD_MODEL_DIR), `make install` then `make uninstall` into a DESTDIR leaves files in the
 * state folder and models added beside the demos untouched, the units (the systemd --user one
 * included) pass `systemd-analyze verify`, and `convd --list-devices` prints its header and
 * the devices only (the host APIs' noise silenced; -v shows it).
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "daemon_util.h"

static void setup(void)
{
    du_tmp_make();
    du_deadline(300);
}

static void teardown(void)
{
    du_tmp_remove();
}

TestSuite(packaging, .init = setup, .fini = teardown);

static int have_program(const char *name)
{
    char cmd[256];
    snprintf(cmd, sizeof cmd, "command -v %s >/dev/null 2>&1", name);
    return system(cmd) == 0;
}

static void mkdirs(const char *path)
{
    char buf[DU_PATH * 2];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *s = buf + 1; *s; s++)
        if (*s == '/') {
            *s = '\0';
            mkdir(buf, 0755);
            *s = '/';
        }
    mkdir(buf, 0755);
}

Test(packaging, relative_model_paths_look_in_the_models_folder_first)
{
    char models[DU_PATH], conf_dir[DU_PATH], path[DU_PATH * 2];
    snprintf(models, sizeof models, "%s", du_tmp("state/models"));
    snprintf(conf_dir, sizeof conf_dir, "%s", du_tmp("etc"));
    mkdirs(models);
    mkdirs(conf_dir);
    snprintf(path, sizeof path, "%s/plexi.nam", models);
    du_write_file(path, "{}", 2);
    snprintf(path, sizeof path, "%s/local.nam", conf_dir);
    du_write_file(path, "{}", 2);
    cr_assert_eq(setenv("CONVD_MODEL_DIR", models, 1), 0);
    const char *text = "[model a]\npath = plexi.nam\n[model b]\npath = local.nam\n"
                       "[model c]\npath = sub/none.nam\n"
                       "[listen l]\naddress = 127.0.0.1:0\nprotocol = raw\nmodel = a\n";
    cvd_conf *c = NULL;
    cvd_err err = {0};
    cr_assert_eq(cvd_conf_parse(text, "t.conf", conf_dir, &c, &err), 0, "%s", err.msg);
    char want[DU_PATH * 2];
    snprintf(want, sizeof want, "%s/plexi.nam", models);
    cr_expect_str_eq(c->models[cvd_conf_find_model(c, "a")].path, want,
                     "a capture in the models folder is found there");
    snprintf(want, sizeof want, "%s/local.nam", conf_dir);
    cr_expect_str_eq(c->models[cvd_conf_find_model(c, "b")].path, want,
                     "not in the models folder: beside the configuration");
    snprintf(want, sizeof want, "%s/sub/none.nam", conf_dir);
    cr_expect_str_eq(c->models[cvd_conf_find_model(c, "c")].path, want,
                     "nowhere: named beside the configuration, for the load error");
    cvd_conf_destroy(c);
    /* without the variable, the state folder the units create */
    unsetenv("CONVD_MODEL_DIR");
    cr_expect_str_eq(CVD_CONF_MODEL_DIR, "/var/lib/convd/models");
}

/* make install then make uninstall (the programs not rebuilt: -o) into a DESTDIR: a capture
 * in the state folder and a model added beside the demos stay, byte for byte; what install
 * put there goes. */
Test(packaging, uninstall_keeps_user_files)
{
    if (!have_program("make"))
        cr_skip_test("make is not installed");
    const char *root = du_tmp("root");
    char state[DU_PATH * 2], user_model[DU_PATH * 2], dest[DU_PATH + 16], build[DU_PATH + 8];
    snprintf(state, sizeof state, "%s/var/lib/convd/models", root);
    mkdirs(state);
    snprintf(state, sizeof state, "%s/var/lib/convd/models/my-amp.nam", root);
    du_write_file(state, "{\"mine\": 1}", 11);
    snprintf(user_model, sizeof user_model, "%s/opt/cvd/share/convd/models", root);
    mkdirs(user_model);
    snprintf(user_model, sizeof user_model, "%s/opt/cvd/share/convd/models/cab.wav", root);
    du_write_file(user_model, "RIFF", 4);
    snprintf(dest, sizeof dest, "DESTDIR=%s", root);
    snprintf(build, sizeof build, "BUILD=%s", du_build_dir());

    char olds[16][DU_PATH + 80];
    int nold = 0;
    snprintf(olds[nold++], sizeof olds[0], "-o%.1000s/convd", du_build_dir());
    DIR *d = opendir("tools");
    cr_assert_not_null(d, "tools/: %s", strerror(errno));
    for (struct dirent *e; (e = readdir(d)) != NULL && nold < 16;) {
        size_t len = strlen(e->d_name);
        if (len > 2 && strcmp(e->d_name + len - 2, ".c") == 0)
            snprintf(olds[nold++], sizeof olds[0], "-o%.1000s/%.*s", du_build_dir(), (int)(len - 2),
                     e->d_name);
    }
    closedir(d);
    for (int pass = 0; pass < 2; pass++) {
        const char *argv[32];
        int k = 0;
        argv[k++] = "/usr/bin/env";
        argv[k++] = "make";
        argv[k++] = "-s";
        argv[k++] = pass == 0 ? "install" : "uninstall";
        argv[k++] = dest;
        argv[k++] = build;
        argv[k++] = "PREFIX=/opt/cvd";
        for (int i = 0; i < nold; i++)
            argv[k++] = olds[i];
        argv[k] = NULL;
        du_proc p = du_run(argv, 240);
        cr_assert_eq(p.status, 0, "make %s failed (%d):\n%s%s", argv[3], p.status, p.out, p.err);
        if (pass == 1)
            cr_expect(strstr(p.out, "/var/lib/convd") != NULL, "uninstall says what it keeps:\n%s",
                      p.out);
        du_proc_free(&p);
        const char *installed[] = {
            "opt/cvd/share/convd/models/drive.json", "opt/cvd/lib/systemd/system/convd.service",
            "opt/cvd/lib/systemd/user/convd.service", "opt/cvd/share/doc/convd/AUDIO.md", NULL};
        for (int i = 0; installed[i]; i++) {
            char path[DU_PATH * 2];
            snprintf(path, sizeof path, "%s/%s", root, installed[i]);
            cr_expect_eq(access(path, F_OK) == 0, pass == 0, "%s: %s after make %s", installed[i],
                         pass == 0 ? "missing" : "still there", argv[3]);
        }
        size_t len = 0;
        char *t = du_read_file(state, &len);
        cr_assert_not_null(t, "make %s removed %s", argv[3], state);
        cr_expect(len == 11 && memcmp(t, "{\"mine\": 1}", 11) == 0, "%s changed", state);
        free(t);
        t = du_read_file(user_model, &len);
        cr_assert_not_null(t, "make %s removed %s, a model added beside the demos", argv[3],
                           user_model);
        free(t);
    }
    /* the user unit and the system units name the state folder */
    char *u = du_read_file(du_src("config/convd-user.service"), NULL);
    cr_assert_not_null(u);
    cr_expect(strstr(u, "StateDirectory=convd convd/models"), "the user unit");
    free(u);
    u = du_read_file(du_src("config/convd.service"), NULL);
    cr_expect(strstr(u, "StateDirectory=convd convd/models"), "convd.service");
    free(u);
    u = du_read_file(du_src("config/convd-audio.service"), NULL);
    cr_expect(strstr(u, "StateDirectory=convd convd/models"), "convd-audio.service");
    free(u);
}

/* A unit as make install writes it, with ExecStart= on this build's daemon (verify checks
 * that the program exists), into folder `dir` as `name`. */
static const char *render_unit(const char *src, const char *dir, const char *name)
{
    char *text = du_read_file(du_src(src), NULL);
    cr_assert_not_null(text, "%s", src);
    du_buf out = {0};
    for (const char *p = text; *p;) {
        if (strncmp(p, "@BINDIR@", 8) == 0) {
            du_buf_printf(&out, "%s", du_build_dir());
            p += 8;
        } else if (strncmp(p, "@DOCDIR@", 8) == 0) {
            du_buf_printf(&out, "/usr/local/share/doc/convd");
            p += 8;
        } else {
            du_buf_add(&out, p++, 1);
        }
    }
    static char path[DU_PATH * 2];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    du_write_file(path, out.p, out.len);
    du_buf_free(&out);
    free(text);
    return path;
}

Test(packaging, units_pass_systemd_analyze_verify)
{
    if (system("systemd-analyze --version >/dev/null 2>&1") != 0)
        cr_skip_test("no systemd-analyze here (apt-get install systemd): units unverified");
    char home[DU_PATH], run[DU_PATH], env_run[DU_PATH + 32], env_home[DU_PATH + 16];
    snprintf(home, sizeof home, "%s", du_tmp("home"));
    snprintf(run, sizeof run, "%s", du_tmp("run"));
    mkdirs(home);
    mkdirs(run);
    chmod(run, 0700);
    snprintf(env_run, sizeof env_run, "XDG_RUNTIME_DIR=%s", run);
    snprintf(env_home, sizeof env_home, "HOME=%s", home);
    static const struct {
        const char *src, *name;
        int user;
    } units[] = {{"config/convd-user.service", "convd.service", 1},
                 {"config/convd.service", "convd.service", 0},
                 {"config/convd-audio.service", "convd-audio.service", 0}};
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        char dir[DU_PATH];
        snprintf(dir, sizeof dir, "%s/u%zu", du_tmp("units"), i);
        mkdirs(dir);
        const char *path = render_unit(units[i].src, dir, units[i].name);
        const char *argv[] = {"/usr/bin/env",
                              env_run,
                              env_home,
                              "systemd-analyze",
                              "verify",
                              "--man=no",
                              units[i].user ? "--user" : "--system",
                              path,
                              NULL};
        du_proc p = du_run(argv, 60);
        if (units[i].user && strstr(p.err, "Failed to initialize manager"))
            cr_skip_test("systemd-analyze --user cannot start a manager here: %s", p.err);
        cr_expect_eq(p.status, 0, "%s: systemd-analyze verify failed (%d):\n%s", units[i].src,
                     p.status, p.err);
        /* warnings (unknown keys, bad values) exit 0 but name the file */
        cr_expect_null(strstr(p.err, units[i].name), "%s: systemd-analyze verify says:\n%s",
                       units[i].src, p.err);
        du_proc_free(&p);
    }
}

/* On this machine (no sound card) the list is the header and the device lines only. */
Test(packaging, list_devices_prints_devices_only)
{
    /* under the sanitizers: the host APIs' modules PortAudio loads here (JACK's, ALSA's
     * plugins, <unknown module> in LeakSanitizer's report) keep allocations at exit, and the
     * report would land on standard error; convd's own leaks under --list-devices are checked
     * by audio/missing_device_is_an_error_that_lists_the_devices, with the test's ALSA devices */
    const char *old = getenv("ASAN_OPTIONS");
    char env[1024];
    snprintf(env, sizeof env, "%s%sdetect_leaks=0", old && *old ? old : "", old && *old ? ":" : "");
    setenv("ASAN_OPTIONS", env, 1);
    const char *argv[] = {du_prog("convd"), "--list-devices", NULL};
    du_proc p = du_run(argv, 60);
    cr_assert_eq(p.status, 0, "convd --list-devices: %d\n%s", p.status, p.err);
    cr_expect_str_eq(p.err, "", "the host APIs' noise reached standard error:\n%s", p.err);
    const char *nl = strchr(p.out, '\n');
    cr_assert_not_null(nl, "no header line:\n%s", p.out);
    char header[512];
    snprintf(header, sizeof header, "%.*s", (int)(nl - p.out), p.out);
    cr_expect_eq(strncmp(header, "PortAudio V", 11), 0, "header: %s", header);
    cr_expect_null(strstr(header + 1, "PortAudio"), "the version is said twice: %s", header);
    const char *c = strstr(header, ": ");
    cr_assert_not_null(c, "header: %s", header);
    int n = atoi(c + 2);
    cr_expect(strstr(header, n == 1 ? " device (" : " devices ("), "header: %s", header);
    int lines = 0;
    for (const char *s = nl + 1; *s; lines++) {
        const char *e = strchr(s, '\n');
        cr_assert_not_null(e, "an unterminated line: %s", s);
        /* "%3d  NAME  [HOST API]  N in, N out, R Hz" */
        int idx = -1, used = 0;
        cr_expect(sscanf(s, "%3d  %n", &idx, &used) == 1 && idx == lines && used > 0,
                  "not a device line: %.*s", (int)(e - s), s);
        cr_expect(strstr(s, " in, ") && strstr(s, " out, ") && strstr(s, " Hz") &&
                      strstr(s, " in, ") < e,
                  "not a device line: %.*s", (int)(e - s), s);
        s = e + 1;
    }
    cr_expect_eq(lines, n, "the header says %d devices, %d lines follow:\n%s", n, lines, p.out);
    du_proc_free(&p);
    /* -v: the same list on standard output */
    const char *argv2[] = {du_prog("convd"), "--list-devices", "-v", NULL};
    p = du_run(argv2, 60);
    cr_assert_eq(p.status, 0, "convd --list-devices -v: %d\n%s", p.status, p.err);
    cr_expect_eq(strncmp(p.out, header, strlen(header)), 0, "-v changed the list:\n%s", p.out);
    du_proc_free(&p);
}
