/* SPDX-License-Identifier: Apache-2.0 */
/* A Keras config (model.to_json()) through cvd_keras_load_weights, with a fixed weights file
 * (tests/data/keras/k2_weights_only.weights.h5, from the top of the tree). The config goes
 * through a file in a temporary folder: the loader reads paths. */
#include "fuzz_common.h"
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char path[96];
    if (!path[0]) {
        char dir[] = "/tmp/convd-fuzz-keras-XXXXXX";
        if (mkdtemp(dir) == NULL)
            abort();
        snprintf(path, sizeof path, "%s/config.json", dir);
    }
    FILE *f = fopen(path, "wb");
    if (!f)
        abort();
    fwrite(data, 1, size, f);
    fclose(f);
    cvd_model *m = NULL;
    cvd_err err = {0};
    int rc = cvd_keras_load_weights(path, "tests/data/keras/k2_weights_only.weights.h5", &m, &err);
    if (rc == 0 && m) {
        exercise_model(m);
        cvd_model_unref(m);
    } else if (m)
        abort();
    return 0;
}
