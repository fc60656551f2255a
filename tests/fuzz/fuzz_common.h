/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fuzz_common.h - shared by the libFuzzer harnesses (scripts/fuzz.sh builds and runs them):
 * a model that loads is run as a net on a few small blocks, a flush and a reset, and the frame
 * counts it reports are checked against its bounds.
 */
#ifndef CONVD_FUZZ_COMMON_H
#define CONVD_FUZZ_COMMON_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "convd_dsp.h"
#include "convd_model.h"

/* Run a parsed model as a streaming/windowed net on a few small blocks. */
static void exercise_model(cvd_model *m)
{
    cvd_err err = {0};
    cvd_net *net = NULL;
    (void)cvd_model_mode(m);
    (void)cvd_model_window(m);
    (void)cvd_model_latency(m);
    (void)cvd_model_receptive_field(m);
    if (cvd_net_create(m, 16, &net, &err) != 0) {
        return;
    }
    int ic = cvd_model_in_channels(m), oc = cvd_model_out_channels(m);
    int mo = cvd_net_max_out(net);
    size_t in_n = (size_t)16 * (size_t)ic;
    size_t out_n = (size_t)(mo > 0 ? mo : 1) * (size_t)(oc > 0 ? oc : 1);
    float *in = calloc(in_n ? in_n : 1, sizeof(float));
    float *out = calloc(out_n, sizeof(float));
    if (in && out) {
        int n_out;
        for (int blk = 0; blk < 6; blk++) {
            int n = (blk == 3) ? 7 : 16;
            for (size_t i = 0; i < in_n; i++)
                in[i] = (blk & 1) ? 1.0f : (blk == 4 ? -0.5f : 0.0f);
            n_out = -1;
            int rc = cvd_net_process(net, in, n, out, &n_out);
            if (rc == 0 && (n_out < 0 || n_out > mo)) {
                fprintf(stderr, "n_out %d out of range (max_out %d)\n", n_out, mo);
                abort();
            }
        }
        n_out = -1;
        int rc = cvd_net_flush(net, out, &n_out);
        if (rc == 0 && (n_out < 0 || n_out > mo)) {
            fprintf(stderr, "flush n_out %d out of range (max_out %d)\n", n_out, mo);
            abort();
        }
        cvd_net_reset(net);
        n_out = -1;
        cvd_net_process(net, in, 16, out, &n_out);
    }
    free(in);
    free(out);
    cvd_net_destroy(net);
}

#endif
