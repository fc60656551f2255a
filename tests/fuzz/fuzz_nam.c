/* SPDX-License-Identifier: Apache-2.0 */
/* .nam text through cvd_nam_parse; a model that loads is streamed (fuzz_common.h). */
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cvd_model *m = NULL;
    cvd_err err = {0};
    /* pass a non-NUL-terminated copy: the API takes (text, len) */
    char *buf = malloc(size ? size : 1);
    memcpy(buf, data, size);
    int rc = cvd_nam_parse(buf, size, "fuzz.nam", &m, &err);
    if (rc == 0 && m) {
        exercise_model(m);
        cvd_model_unref(m);
    } else if (m) {
        fprintf(stderr, "out set on failure\n");
        abort();
    }
    free(buf);
    return 0;
}
