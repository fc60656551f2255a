/*
 * convd_model.h - model files into dsp models (cvd_model, see dsp/convd_dsp.h).
 *
 * Formats, chosen by the file's extension:
 *   .nam    Neural Amp Modeler WaveNet files (../shared/NAM_FORMAT.md)
 *   .json   convd's own model JSON (docs/MODEL_FORMAT.md): Keras-vocabulary layers, or the
 *           WaveNet shorthand; weights inline, in a safetensors file beside it, or seeded.
 *   .keras  Keras 3 model archives; .h5 / .hdf5 Keras 2 full-model files (docs/KERAS.md)
 *   CONFIG.json+WEIGHTS.h5   a Keras model config (model.to_json()) and its weights file
 *
 * Every refusal names the file, the place in it (a JSON path such as
 * "config.layers[0].dilations[3]") and the reason, in err->msg. Loading allocates; it is
 * never real-time safe. Depends on jansson, libzip and HDF5 (the Keras files).
 */
#ifndef CONVD_MODEL_H
#define CONVD_MODEL_H

#include <stddef.h>

#include "convd_dsp.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Loads any supported format, chosen by the extension of path; "A.json+B.h5" (a path that
 * does not exist as it is, '+' before a name ending in .h5 or .hdf5) is a Keras config and its
 * weights. */
int cvd_model_load(const char *path, cvd_model **out, cvd_err *err);

/* Keras files (docs/KERAS.md): a .keras archive (Keras 3) or a .h5 full model (Keras 2). */
int cvd_keras_load(const char *path, cvd_model **out, cvd_err *err);
/* A Keras model config in JSON (model.to_json(), or a .keras's config.json) with a weights
 * file (save_weights: Keras 2's .h5 layout or Keras 3's .weights.h5). */
int cvd_keras_load_weights(const char *config_path, const char *weights_path, cvd_model **out,
                           cvd_err *err);

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
