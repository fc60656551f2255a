/* SPDX-License-Identifier: Apache-2.0 */
/*
 * convd_model.h - model files into dsp models (cvd_model, see dsp/convd_dsp.h).
 *
 * Formats, chosen by the file's extension:
 *   .nam    Neural Amp Modeler WaveNet files (../shared/NAM_FORMAT.md)
 *   .json   convd's own model JSON (docs/MODEL_FORMAT.md): Keras-vocabulary layers, or the
 *           WaveNet shorthand; weights inline, in a safetensors file beside it, or seeded.
 *   .keras  Keras 3 model archives; .h5 / .hdf5 Keras 2 full-model files (docs/KERAS.md)
 *   CONFIG.json+WEIGHTS.h5   a Keras model config (model.to_json()) and its weights file
 *   .wav .flac .aiff .aif .ogg   an impulse response (a cabinet IR): one causal Conv1D
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
int cvd_nam_parse(const char *text, size_t len, const char *name, cvd_model **out, cvd_err *err);

/* convd's JSON from a file (a safetensors file it names is read relative to its folder), or
 * from text in memory (`dir` is where relative weight files are looked up; may be NULL). */
int cvd_json_model_load(const char *path, cvd_model **out, cvd_err *err);
int cvd_json_model_parse(const char *text, size_t len, const char *name, const char *dir,
                         cvd_model **out, cvd_err *err);

/* Impulse responses (cabinet IRs) from audio files (libsndfile: WAV, FLAC, AIFF, Ogg): a
 * model with one causal Conv1D without bias whose kernel is the response (long ones run on
 * the FFT path), declaring the rate it runs at. */
#define CVD_IR_MAX_FRAMES (1L << 20) /* 21.8 s at 48 kHz */
#define CVD_IR_MAX_CHANNELS 8

typedef struct cvd_ir_options {
    double rate;     /* Hz to run at (the chain's rate there: the model before it, or the
                      * stream); the file is resampled once at load when its rate differs,
                      * scaled by file rate / rate to keep its frequency response. 0: the
                      * file's rate */
    int normalize;   /* 1 (the default, ir_normalize = yes): scaled to unit energy (the
                      * channel with the most), so white noise keeps its power; 0: as
                      * recorded */
    int in_channels; /* channels it is given (0: 1). Mono in: one output per IR channel (a
                      * stereo IR makes stereo); N in: the IR is mono (the same response on
                      * every channel) or has N channels (one each) */
    long max_frames; /* longest response accepted, after resampling (0: CVD_IR_MAX_FRAMES) */
} cvd_ir_options;

void cvd_ir_options_init(cvd_ir_options *o); /* the defaults above */
/* opt NULL: the defaults. Refusals name the file and the reason. */
int cvd_ir_load(const char *path, const cvd_ir_options *opt, cvd_model **out, cvd_err *err);
/* 1 if cvd_model_load() reads `path` as an impulse response (by its extension). */
int cvd_model_is_ir_path(const char *path);

#ifdef __cplusplus
}
#endif

#endif
