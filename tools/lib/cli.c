/* SPDX-License-Identifier: Apache-2.0 */
/* The tools' argument reading and messages (cli.h). */
#include "cli.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *prog = "convd";

void cli_set_prog(const char *name)
{
    prog = name;
}

/* "PROG: MESSAGE" on standard error, without the end of line. */
static void say(const char *fmt, va_list ap)
{
    fprintf(stderr, "%s: ", prog);
    vfprintf(stderr, fmt, ap);
}

int cli_usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    say(fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n(%s --help shows the usage)\n", prog);
    return 2;
}

int cli_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    say(fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return 1;
}

int cli_parse_int(const char *opt, const char *s, long long lo, long long hi, long long *out)
{
    char *end;
    long long v;
    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi)
        return cli_usage_error("%s %s: must be an integer from %lld to %lld", opt, s, lo, hi);
    *out = v;
    return 0;
}

int cli_parse_seconds(const char *opt, const char *s, double *out)
{
    char *end;
    errno = 0;
    *out = strtod(s, &end);
    if (errno || end == s || *end || !(*out >= 0) || *out > 86400)
        return cli_usage_error("%s %s: seconds from 0 to 86400", opt, s);
    return 0;
}

int cli_positional(const char *a, int *only_positionals, const char **pos, int *npos, int max)
{
    if (*only_positionals || a[0] != '-' || strcmp(a, "-") == 0) {
        if (*npos == max) {
            cli_usage_error("too many arguments: '%s'", a);
            return -1;
        }
        pos[(*npos)++] = a;
        return 1;
    }
    if (strcmp(a, "--") == 0) {
        *only_positionals = 1;
        return 1;
    }
    return 0;
}

const char *cli_opt_split(const char *a, char *name, size_t n)
{
    const char *eq = a[0] == '-' && a[1] == '-' ? strchr(a, '=') : NULL;
    snprintf(name, n, "%.*s", eq ? (int)(eq - a) : (int)strlen(a), a);
    return eq ? eq + 1 : NULL;
}

const char *cli_opt_value(int argc, char **argv, int *i, const char *after_eq)
{
    if (after_eq)
        return after_eq;
    if (*i + 1 < argc)
        return argv[++*i];
    cli_usage_error("%s needs a value", argv[*i]);
    return NULL;
}
