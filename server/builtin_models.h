/* SPDX-License-Identifier: Apache-2.0 */
/* Model files compiled into the daemon (scripts/embed-models.sh, from config/models/). */
#ifndef CONVD_BUILTIN_MODELS_H
#define CONVD_BUILTIN_MODELS_H

#include <stddef.h>

typedef struct cvd_builtin_model {
    const char *name; /* the file's base name: "drive" for config/models/drive.json */
    const char *text; /* its JSON, NUL-terminated */
    size_t len;
} cvd_builtin_model;

/* Terminated by an entry whose name is NULL. */
extern const cvd_builtin_model cvd_builtin_models[];

#endif
