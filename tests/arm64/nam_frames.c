/* SPDX-License-Identifier: Apache-2.0 */
/*
 * nam_frames MODEL BLOCK BLOCKS: loads a .nam file, creates a stream at blocks of BLOCK frames
 * (prewarm included) and processes BLOCKS blocks of a fixed signal. Nothing else: run twice
 * under qemu with instruction tracing (scripts/arm64-insn-count.sh), the difference of the two
 * counts over the difference of frames is the instructions a frame costs.
 */
#include <stdio.h>
#include <stdlib.h>

#include "convd_model.h"

int main(int argc, char **argv)
{
    cvd_model *m;
    cvd_net *net;
    cvd_err err;
    if (argc != 4) {
        fprintf(stderr, "usage: nam_frames MODEL BLOCK BLOCKS\n");
        return 2;
    }
    const int block = atoi(argv[2]);
    const long blocks = atol(argv[3]);
    if (block < 1 || blocks < 0) {
        fprintf(stderr, "nam_frames: bad BLOCK or BLOCKS\n");
        return 2;
    }
    if (cvd_nam_load(argv[1], &m, &err) < 0 || cvd_net_create(m, block, &net, &err) < 0) {
        fprintf(stderr, "nam_frames: %s\n", err.msg);
        return 1;
    }
    float *in = malloc(sizeof(float) * (size_t)block);
    float *out = malloc(sizeof(float) * (size_t)cvd_net_max_out(net) * cvd_model_out_channels(m));
    if (in == NULL || out == NULL)
        return 1;
    for (int i = 0; i < block; i++)
        in[i] = (float)((i * 37 % 101) - 50) * 0.01f;
    int no;
    for (long b = 0; b < blocks; b++)
        cvd_net_process(net, in, block, out, &no);
    cvd_net_destroy(net);
    cvd_model_unref(m);
    free(in);
    free(out);
    return 0;
}
