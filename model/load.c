/* cvd_model_load: the format by the file's extension. */
#include "convd_model.h"

#include <string.h>
#include <strings.h>

static int has_ext(const char *path, const char *ext)
{
    size_t n = strlen(path), e = strlen(ext);
    return n > e && strcasecmp(path + n - e, ext) == 0;
}

int cvd_model_load(const char *path, cvd_model **out, cvd_err *err)
{
    *out = NULL;
    if (has_ext(path, ".nam"))
        return cvd_nam_load(path, out, err);
    if (has_ext(path, ".json"))
        return cvd_json_model_load(path, out, err);
    return cvd_err_set(err, CVD_EUNSUPPORTED,
                       "%s: unknown model format (the extension must be .nam or .json)", path);
}
