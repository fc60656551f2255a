/* SPDX-License-Identifier: Apache-2.0 */
/* cvd_model_load: the format by the file's extension. */
#include "convd_model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

static int has_ext(const char *path, const char *ext)
{
    size_t n = strlen(path), e = strlen(ext);
    return n > e && strcasecmp(path + n - e, ext) == 0;
}

int cvd_model_is_ir_path(const char *path)
{
    static const char *const exts[] = {".wav", ".flac", ".aiff", ".aif", ".ogg"};
    for (size_t i = 0; path && i < sizeof exts / sizeof exts[0]; i++)
        if (has_ext(path, exts[i]))
            return 1;
    return 0;
}

int cvd_model_load(const char *path, cvd_model **out, cvd_err *err)
{
    struct stat st;
    const char *plus;
    *out = NULL;
    if (path == NULL)
        return cvd_err_set(err, CVD_EINVAL, "model path is NULL");
    /* CONFIG+WEIGHTS, unless a file has that very name */
    plus = strrchr(path, '+');
    if (plus != NULL && plus != path && (has_ext(plus + 1, ".h5") || has_ext(plus + 1, ".hdf5")) &&
        stat(path, &st) != 0) {
        size_t n = (size_t)(plus - path);
        char *cfg = malloc(n + 1);
        int rc;
        if (cfg == NULL)
            return cvd_err_set(err, CVD_ENOMEM, "%s: out of memory", path);
        memcpy(cfg, path, n);
        cfg[n] = '\0';
        rc = cvd_keras_load_weights(cfg, plus + 1, out, err);
        free(cfg);
        return rc;
    }
    if (has_ext(path, ".nam"))
        return cvd_nam_load(path, out, err);
    if (has_ext(path, ".json"))
        return cvd_json_model_load(path, out, err);
    if (has_ext(path, ".keras") || has_ext(path, ".h5") || has_ext(path, ".hdf5"))
        return cvd_keras_load(path, out, err);
    if (cvd_model_is_ir_path(path))
        return cvd_ir_load(path, NULL, out, err);
    return cvd_err_set(err, CVD_EUNSUPPORTED,
                       "%s: unknown model format (the extension must be .nam, .json, .keras, .h5 "
                       "or .hdf5, CONFIG.json+WEIGHTS.h5, or an impulse response: .wav, .flac, "
                       ".aiff, .aif, .ogg)",
                       path);
}
