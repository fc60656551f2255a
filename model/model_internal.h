/* SPDX-License-Identifier: Apache-2.0 */
/* Private to model/: the JSON reading shared by the loaders, the WaveNet config parser shared
 * by .nam files and convd's JSON, and the JSON model builder the Keras loader reuses. */
#ifndef CONVD_MODEL_INTERNAL_H
#define CONVD_MODEL_INTERNAL_H

#include <jansson.h>
#include <stddef.h>

#include "convd_model.h"

/* ---- reading JSON with messages (json_read.c) -------------------------------------------- */

/* Every refusal reads "FILE: WHERE: SUB=VALUE: reason": WHERE the object at fault (e.g.
 * "layers[2] (c1)", or "" at the top), SUB the key path inside it (e.g. "config.strides",
 * "config.layers[0].dilations[3]"), VALUE the value as JSON shows it ('text', 3, [1, 2]; left
 * out when there is none, e.g. a missing key). Empty parts are left out. */
typedef struct cvd_jr {
    const char *file; /* the first part of every message */
    cvd_err *err;     /* where messages go */
} cvd_jr;

#define CVD_JR_REQ 1     /* the key must be present */
#define CVD_JR_LIST1 2   /* [k] is accepted for k (Keras writes tuples) */
#define CVD_JR_NULLDEF 4 /* null means the default */

/* "FILE: WHERE: SUB=VALUE: reason" (no "=VALUE" when v is NULL); returns code. */
int cvd_jr_bad(cvd_jr *r, int code, const char *where, const char *sub, const json_t *v,
               const char *fmt, ...) __attribute__((format(printf, 6, 7)));
/* The library's message already in r->err, after "FILE: WHERE: SUB"; returns code (and sets
 * it in r->err), CVD_EINVAL when code is not negative. */
int cvd_jr_lib(cvd_jr *r, int code, const char *where, const char *sub);
/* v as a message shows it into buf: 'text', 3, 0.5, true, null, [1, 2], "(an array of N)". */
const char *cvd_jr_show(const json_t *v, char *buf, size_t n);
/* "path.key", or "key" when path is ""; cut to fit n. */
void cvd_jr_key(char *buf, size_t n, const char *path, const char *key);
/* 1 if key is in the NULL-terminated list. */
int cvd_jr_in_list(const char *key, const char *const *list);
/* Refuses any key of obj outside `allowed` (and Keras's training-only keys, name, trainable,
 * dtype, *_initializer, *_regularizer, *_constraint, if `training`): "unknown key for WHAT". */
int cvd_jr_check_keys(cvd_jr *r, const char *where, const char *path, json_t *obj,
                      const char *const *allowed, int training, const char *what);

/* Typed getters of obj[key] (obj may be NULL: the key is absent), named path.key in messages.
 * Absent (or null with CVD_JR_NULLDEF): *out = def, an error with CVD_JR_REQ. */
int cvd_jr_int(cvd_jr *r, const char *where, const char *path, json_t *obj, const char *key,
               int flags, long long def, long long lo, long long hi, long long *out);
int cvd_jr_bool(cvd_jr *r, const char *where, const char *path, json_t *obj, const char *key,
                int def, int *out);
int cvd_jr_str(cvd_jr *r, const char *where, const char *path, json_t *obj, const char *key,
               int flags, const char *def, const char **out);
/* A float from a JSON number v (named sub), refused unless finite in float32. */
int cvd_jr_float(cvd_jr *r, const char *where, const char *sub, json_t *v, float *out);

/* A whole regular file of at most max bytes in memory, NUL-terminated; NULL with errno set
 * (EISDIR, EFBIG past max, ...) on failure. */
char *cvd_model_read_file(const char *path, size_t max, size_t *len);

/* ---- the WaveNet config (wavenet_json.c) ------------------------------------------------- */

/* The two spellings of a WaveNet layer array. NAM's (.nam files, as NAM core 0.5-0.7 reads
 * them): input_size, condition_size, channels, activation, head_size and head_bias (or a head
 * object) required; kernel_sizes or kernel_size; gating_mode or gated; NAM's newer optional
 * blocks (bottleneck, layer1x1, head1x1, groups, FiLM, slimmable) accepted in their inactive
 * form and refused by name otherwise. convd's (docs/MODEL_FORMAT.md): only channels, dilations
 * and kernel_size required; gating or gated; activation Tanh, head_bias true, residual and skip
 * true, input_size, condition_size and head_size derived by default. Everything else (the
 * activation forms, per-layer lists, ranges, messages) is one code path. */
typedef enum { CVD_WN_NAM, CVD_WN_CONVD } cvd_wn_dialect;

/* One layer array object (at SUB `path`) into *a; with `prewarm`, a "prewarm" key is allowed
 * beside the array's keys (convd's one-array form). Derived sizes are left 0 for
 * cvd_wn_json_finish. */
int cvd_wn_json_array(cvd_jr *r, cvd_wn_dialect d, const char *where, const char *path, json_t *obj,
                      int prewarm, cvd_wn_array *a);
/* A NAM activation: "Tanh" (or any element-wise Keras name), or {"type": "LeakyReLU",
 * "negative_slope": 0.01}, {"type": "PReLU", "negative_slopes": [one, or one per channel]},
 * {"type": "LeakyHardtanh", "min_val", "max_val", "min_slope", "max_slope"}. */
int cvd_wn_json_activation(cvd_jr *r, const char *where, const char *sub, json_t *v, int channels,
                           cvd_wn_activation *out);
/* After every array of wn is parsed: derives what was left 0 and checks the chain (array 0
 * reads the WaveNet's in_ch channels, array i the residual stream of array i-1 and continues
 * its head; every condition is the input), then the dsp library's checks. `path` names the
 * whole config ("config", "wavenet"); objs[i] is array i's object, named `list`[i]
 * ("config.layers[1]"), or `path` when list is NULL (one array, no list). */
int cvd_wn_json_finish(cvd_jr *r, const char *where, const char *path, const char *list,
                       json_t *const *objs, int in_ch, cvd_wn_config *wn);

/* ---- convd's model JSON (json_model.c) --------------------------------------------------- */

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
