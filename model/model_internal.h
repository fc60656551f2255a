/* Private to model/: the JSON model builder, shared by convd's JSON and the Keras loaders. */
#ifndef CONVD_MODEL_INTERNAL_H
#define CONVD_MODEL_INTERNAL_H

#include <jansson.h>

#include "convd_model.h"

/* Builds a model from a parsed convd model JSON (docs/MODEL_FORMAT.md). Messages start with
 * `file`; weight files named in it are looked up in `dir` (may be NULL). root is borrowed. */
int cvd_json_model_build(json_t *root, const char *file, const char *dir, cvd_model **out,
                         cvd_err *err);
/* The Keras class a class name stands for (aliases resolved), NULL if convd does not read
 * it. */
const char *cvd_json_canonical_class(const char *cls);
/* Why a Keras class convd knows of is not supported, NULL for classes it does not know. */
const char *cvd_json_unsupported_reason(const char *cls);

#endif
