/*
 * convd_model.h - model files into dsp models (cvd_model, see dsp/convd_dsp.h).
 *
 * Formats, chosen by the file's extension:
 *   .nam    Neural Amp Modeler WaveNet files (../shared/NAM_FORMAT.md)
 *   .json   convd's own model JSON (docs/MODEL_FORMAT.md): Keras-vocabulary layers, or the
 *           WaveNet shorthand; weights inline, in a safetensors file beside it, or seeded.
 *
 * Every refusal names the file, the place in it (a JSON path such as
 * "config.layers[0].dilations[3]") and the reason, in err->msg. Loading allocates; it is
 * never real-time safe. Depends on jansson.
 */
#ifndef CONVD_MODEL_H
#define CONVD_MODEL_H

#include <stddef.h>

#include "convd_dsp.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Loads any supported format, chosen by the extension of path. */
int cvd_model_load(const char *path, cvd_model **out, cvd_err *err);

/* .nam from a file, or from text in memory (`name` is used in messages). */
int cvd_nam_load(const char *path, cvd_model **out, cvd_err *err);
int cvd_nam_parse(const char *text, size_t len, const char *name, cvd_model **out,
                  cvd_err *err);

/* convd's JSON from a file (a safetensors file it names is read relative to its folder), or
 * from text in memory (`dir` is where relative weight files are looked up; may be NULL). */
int cvd_json_model_load(const char *path, cvd_model **out, cvd_err *err);
int cvd_json_model_parse(const char *text, size_t len, const char *name, const char *dir,
                         cvd_model **out, cvd_err *err);

#ifdef __cplusplus
}
#endif

#endif
