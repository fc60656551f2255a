/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Private to the configuration parser (config.c: the text, sections and whole-file checks;
 * config_table.c: the directives, their values and their reference).
 */
#ifndef CONVD_CONFIG_INTERNAL_H
#define CONVD_CONFIG_INTERNAL_H

#include <stddef.h>

#include "convd_dsp.h" /* cvd_err */

/* config.h's types, declared rather than included: config.h is config.c's own header, and
 * config_table.c includes it beside this one, so the modules' includes stay one-way
 * (scripts/check-includes.sh) */
typedef struct cvd_conf cvd_conf;
typedef struct cvd_conf_directive cvd_conf_directive;

/* section kinds; the table's rows name them by these */
enum { SEC_NONE, SEC_SERVER, SEC_MODEL, SEC_LISTEN, SEC_STREAM, SEC_NATS, SEC_COUNT };

/* the most directives one section kind may have */
#define CONF_MAX_KEYS 32

#define NAME_RULE "1 to 64 of A-Z a-z 0-9 _ . -"

struct cvd_conf_parse {
    const char *file; /* FILE in messages */
    const char *dir;  /* relative model paths are joined to it; may be NULL */
    cvd_conf *c;
    cvd_err *err;
    int code;     /* the reported error's code, 0 while there is none */
    int err_line; /* its line (0: none) */

    /* reader() */
    const char *p, *end;
    int lineno;
    char *long_value; /* this line's value, when it did not fit inih's buffer */
    int defaults;     /* 1 while the table's defaults are set: no line is recorded */

    /* the current section */
    int kind, index;
    char label[160]; /* "[listen audio]" for messages */
    int *seen;       /* lines of its directives (by row within the kind), 0 if not */
    int server_line; /* line of [server], 0 if none */
    int (*lines[SEC_COUNT])[CONF_MAX_KEYS]; /* per section of a kind: its directives' lines */
    int cap[SEC_COUNT];
};
typedef struct cvd_conf_parse pstate;

/* Keeps the error with the smallest line (line 0, no line, only when there is no other). */
int cvd_conf_fail(pstate *ps, int code, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Text from the user, cut to fit a message: at most 60 bytes, "..." after a cut. */
typedef struct shown {
    char s[72];
} shown;
shown cvd_conf_show_n(const char *v, size_t n);
int cvd_conf_valid_name_n(const char *s, size_t n);

/* The rows of a section kind, in table order: returns how many, rows[] filled. */
int cvd_conf_rows(int kind, const cvd_conf_directive **rows, int max);
/* The row named `name` in a kind, and its index among the kind's rows; NULL if none. */
const cvd_conf_directive *cvd_conf_row(int kind, const char *name, int *index);
/* Sets one directive of the section struct `sec` from its text (the current line's). */
int cvd_conf_set(pstate *ps, const cvd_conf_directive *d, void *sec, const char *v);
/* Every directive of a new section (struct `sec`) that has a default, set to it. */
void cvd_conf_set_defaults(pstate *ps, int kind, void *sec);

#endif
