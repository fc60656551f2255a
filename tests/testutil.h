/* SPDX-License-Identifier: Apache-2.0 */
/* Helpers shared by the tests: seeds, random integers, files, generated case lists. */
#ifndef CONVD_TESTUTIL_H
#define CONVD_TESTUTIL_H

#include <criterion/criterion.h>
#include <fcntl.h>
#include <ftw.h>
#include <locale.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "convd_dsp.h"

/* Uniform integer in [0, n). */
static inline uint64_t tu_randint(cvd_rng *r, uint64_t n)
{
    return n ? cvd_rng_next(r) % n : 0;
}

/* The base seed of a randomised test: CVD_SEED from the environment, or a fixed default so
 * that runs repeat. Printed in every failure message. */
static inline uint64_t tu_seed(void)
{
    const char *s = getenv("CVD_SEED");
    return s ? strtoull(s, NULL, 0) : 20261121u;
}

/* Reads a whole file; returns malloc'd bytes (NUL-terminated) or NULL. */
static inline char *tu_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    long n;
    if (f == NULL)
        return NULL;
    if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0) {
        buf = malloc((size_t)n + 1);
        if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
            free(buf);
            buf = NULL;
        }
        if (buf) {
            buf[n] = '\0';
            if (len)
                *len = (size_t)n;
        }
    }
    fclose(f);
    return buf;
}

/* A generator's cases.txt (a case name first on each line) against the cases the tests
 * run: every listed case is run, and nothing else is. */
static inline void tu_check_cases_listed(const char *cases_txt, const char *const *names, size_t n)
{
    char *text = tu_read_file(cases_txt, NULL), *line, *save = NULL;
    size_t count = 0;
    cr_assert_not_null(text, "cannot read %s", cases_txt);
    for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char nm[128];
        int known = 0;
        if (sscanf(line, "%127s", nm) != 1)
            continue;
        for (size_t i = 0; i < n; i++)
            known |= strcmp(nm, names[i]) == 0;
        cr_assert(known, "cases.txt lists %s, which no test runs: add CASE(%s)", nm, nm);
        count++;
    }
    cr_assert_eq(count, n);
    free(text);
}

static inline int tu_rm_entry(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
    (void)sb;
    (void)type;
    (void)ftw;
    return remove(path);
}

/* Removes a folder and everything in it. */
static inline void tu_rm_tree(const char *dir)
{
    nftw(dir, tu_rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* Sets LC_ALL to a locale whose decimal point is a comma: an installed one, or de_DE
 * compiled by localedef into a fresh temporary folder (LOCPATH), so locale tests bite even
 * where no such locale is installed. Returns its description, or NULL if neither works. */
static inline const char *tu_comma_locale(void)
{
    extern char **environ;
    static const char *const names[] = {"de_DE.UTF-8", "de_DE.utf8", "fr_FR.UTF-8", "fr_FR.utf8"};
    static char dir[] = "/tmp/convd-locale-XXXXXX";
    char out[sizeof dir + 16];
    posix_spawn_file_actions_t fa;
    pid_t pid;
    int st = 0;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (setlocale(LC_ALL, names[i]) != NULL && localeconv()->decimal_point[0] == ',')
            return names[i];
    if (mkdtemp(dir) == NULL)
        return NULL;
    snprintf(out, sizeof out, "%s/de_DE.UTF-8", dir);
    const char *argv[] = {"localedef", "-i", "de_DE", "-f", "UTF-8", out, NULL};
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    int rc = posix_spawnp(&pid, "localedef", &fa, NULL, (char *const *)argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0 || waitpid(pid, &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st) > 1)
        return NULL; /* localedef exits 1 for warnings, with the locale written */
    setenv("LOCPATH", dir, 1);
    const char *got = NULL;
    if (setlocale(LC_ALL, "de_DE.UTF-8") != NULL && localeconv()->decimal_point[0] == ',')
        got = "de_DE.UTF-8 (compiled by localedef)";
    tu_rm_tree(dir); /* loaded (glibc maps the files): the folder can go */
    return got;
}

#endif
