/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What the command-line tools share in reading their arguments and saying what went wrong:
 * messages that start with the program's name, usage errors (exit status 2) and runtime
 * errors (1), integer and seconds values, and options spelled "--name VALUE" or
 * "--name=VALUE".
 */
#ifndef CONVD_CLI_H
#define CONVD_CLI_H

#include <stddef.h>

/* The program's name, the first word of every message: each tool sets it first in main. */
void cli_set_prog(const char *prog);

/* "PROG: MESSAGE" and "(PROG --help shows the usage)" on standard error; returns 2. */
int cli_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* "PROG: MESSAGE" on standard error; returns 1. */
int cli_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* s, a whole decimal integer from lo to hi, into *out and 0; else the usage error
 * "OPT S: must be an integer from LO to HI" and 2. */
int cli_parse_int(const char *opt, const char *s, long long lo, long long hi, long long *out);
/* s, seconds from 0 to 86400, into *out and 0; else the usage error
 * "OPT S: seconds from 0 to 86400" and 2. */
int cli_parse_seconds(const char *opt, const char *s, double *out);

/* Sorts argument a: 1 when it is a positional one (after "--", "-" itself, or anything not
 * starting with '-'), kept in pos[*npos] (max of them), or the "--" that ends the options; 0
 * when it is an option; -1 after the usage error "too many arguments: 'A'". */
int cli_positional(const char *a, int *only_positionals, const char **pos, int *npos, int max);

/* An option with a value, a = argv[i]: its name into name ("--name" of "--name=VALUE"; a
 * itself otherwise, and for one-dash options). Returns what follows the '=', NULL if none. */
const char *cli_opt_split(const char *a, char *name, size_t n);
/* The value of option argv[*i]: `after_eq` when it had one, else the next argument (*i moves
 * on to it). NULL, after the usage error "ARG needs a value", when there is none. */
const char *cli_opt_value(int argc, char **argv, int *i, const char *after_eq);

#endif
