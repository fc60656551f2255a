/* SPDX-License-Identifier: Apache-2.0 */
/* The config parser: a file that parses must be consistent (every listener's and stream's
 * model index agrees with its name, names are found again); a refusal sets the error. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    memcpy(text, data, size);
    text[size] = '\0';
    cvd_conf *c = (cvd_conf *)(void *)0x1;
    cvd_err err = {0};
    int rc =
        cvd_conf_parse(text, "fuzz.conf", (size & 1) ? "/nonexistent/convd-fuzz" : NULL, &c, &err);
    if (rc == 0) {
        if (c == NULL || c == (void *)0x1)
            abort();
        for (int i = 0; i < c->n_models; i++) {
            if (c->models[i].path == NULL)
                abort();
            (void)strlen(c->models[i].path);
            if (cvd_conf_find_model(c, c->models[i].name) != i) {
                fprintf(stderr, "find_model\n");
                abort();
            }
        }
        for (int i = 0; i < c->n_listens; i++) {
            int k = c->listens[i].model_index;
            if (k < -1 || k >= c->n_models) {
                fprintf(stderr, "listen model_index %d\n", k);
                abort();
            }
            if (k >= 0 && strcmp(c->models[k].name, c->listens[i].model) != 0)
                abort();
        }
        for (int i = 0; i < c->n_streams; i++) {
            int k = c->streams[i].model_index;
            if (k < -1 || k >= c->n_models) {
                fprintf(stderr, "stream model_index %d\n", k);
                abort();
            }
        }
        if (c->n_listens + c->n_streams < 1) {
            fprintf(stderr, "no listener or stream\n");
            abort();
        }
        for (int i = 0; i < c->n_streams; i++)
            (void)cvd_conf_find_stream(c, c->streams[i].name);
        cvd_conf_destroy(c);
    } else {
        if (c != NULL) {
            fprintf(stderr, "out not NULL after refusal\n");
            abort();
        }
        if (err.code != rc || strlen(err.msg) == 0) {
            fprintf(stderr, "err not set\n");
            abort();
        }
    }
    free(text);
    return 0;
}
