/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tokens.h - the tokens file of a framed listener (`tokens = FILE`): who may do what.
 *
 * One token per line, then what it may do, roles separated by commas:
 *
 *     # the studio's recorder and its players
 *     s3cr3t-token   process,publish=studio-*,subscribe=studio-*
 *     7f1c9e...      subscribe=studio-mix
 *
 *   process          send frames through a model and receive the output (HELLO role 0)
 *   publish=GLOB     process and publish the output under a stream name matching GLOB
 *                    (without `process`, only streams that publish so)
 *   subscribe=GLOB   follow published streams whose names match GLOB (HELLO role 1)
 *
 * GLOB is a shell pattern (fnmatch: `*`, `?`, `[...]`). A token is 1..1024 printable ASCII
 * characters without blanks, not starting with `#`; blank lines and lines starting with `#`
 * are ignored, as is the rest of a line after ` #`. The file must not be readable or writable
 * by every user (mode o-rwx): it is refused otherwise. It is read when the configuration is
 * (start, SIGHUP), never on a connection's path.
 *
 * Lookups compare a SHA-256 of the presented token with every entry's, in time that does not
 * depend on where (or whether) it matches.
 *
 * Errors: "FILE:LINE: reason", "FILE: reason" (CVD_EFORMAT, CVD_EIO).
 */
#ifndef CONVD_TOKENS_H
#define CONVD_TOKENS_H

#include <stddef.h>

#include "convd_dsp.h"

#ifdef __cplusplus
extern "C" {
#endif

#define CVD_TOKEN_MAX 1024 /* bytes: a framed protocol string */

typedef struct cvd_token cvd_token;
typedef struct cvd_tokens cvd_tokens;

/* Reads and checks the file (its mode too). *out is freed with cvd_tokens_destroy. */
int cvd_tokens_load(const char *path, cvd_tokens **out, cvd_err *err);
/* The same from text (no mode check); `name` is FILE in messages. */
int cvd_tokens_parse(const char *text, const char *name, cvd_tokens **out, cvd_err *err);
void cvd_tokens_destroy(cvd_tokens *t); /* NULL is fine */
int cvd_tokens_count(const cvd_tokens *t);

/* The entry of a token (NUL-terminated), or NULL if it is not in the file. */
const cvd_token *cvd_tokens_find(const cvd_tokens *t, const char *token);

/* What an entry may do. */
int cvd_token_may_process(const cvd_token *k);
int cvd_token_may_publish(const cvd_token *k, const char *stream);
int cvd_token_may_subscribe(const cvd_token *k, const char *stream);
/* The line of the file it came from (for logs: "token of line 3"). */
int cvd_token_line(const cvd_token *k);

/* 1 if some entry may publish `stream`: such a name is reserved to the holders of those
 * tokens (clients of listeners without tokens may not publish it). */
int cvd_tokens_claim_publish(const cvd_tokens *t, const char *stream);

#ifdef __cplusplus
}
#endif

#endif
