/* SPDX-License-Identifier: Apache-2.0 */
/* convd model JSON through cvd_json_model_parse; a model that loads is streamed. */
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cvd_model *m = NULL;
    cvd_err err = {0};
    char *buf = malloc(size ? size : 1);
    memcpy(buf, data, size);
    /* no folder: a relative weights file never resolves to anything real */
    int rc = cvd_json_model_parse(buf, size, "fuzz.json", NULL, &m, &err);
    if (rc == 0 && m) {
        exercise_model(m);
        cvd_model_unref(m);
    }
    free(buf);
    return 0;
}
