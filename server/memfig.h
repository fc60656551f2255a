/* SPDX-License-Identifier: Apache-2.0 */
/*
 * memfig.h - how much memory a stream's model state takes, known before it is built.
 *
 * Building a stream's state (cvd_net_create) allocates memory that grows with the block size
 * the client chose; the daemon refuses a stream that would take the server past
 * max_stream_memory, so it needs the figure first. A model's figure is measured once, when the
 * model is loaded (off every loop): nets built at every block size from 1 to 16 and at two
 * large ones, their state bytes bounded by a line with the steepest slope seen (the slope
 * grows with the block where a layer switches to scratch buffers, and is constant past a few
 * thousand frames) set over every small probe (strides and pooling make the state saw up and
 * down with the block's remainder), so it bounds the real size at every block size from 1 to
 * 65536. tests/test_memfig.c checks that bound on every test model.
 */
#ifndef CONVD_MEMFIG_H
#define CONVD_MEMFIG_H

#include <stddef.h>

#include "convd_dsp.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cvd_memfig {
    size_t base;      /* bytes at block 1 */
    size_t per_frame; /* bytes per frame of block beyond 1 */
    /* the frames one process or flush writes at most (cvd_net_max_out), bounded alike */
    size_t out_base, out_per_frame;
} cvd_memfig;

/* Measures a model's figure (hop: as for cvd_net_create_hop). Builds 18 nets (the largest
 * at 8192 frames): for the loader's thread, not for a loop. */
int cvd_memfig_measure(cvd_model *m, long hop, cvd_memfig *out, cvd_err *err);

/* The bytes a net of the model takes at most at this block size (>= 1). */
size_t cvd_memfig_net_bytes(const cvd_memfig *f, int block);
/* The most output frames one call of such a net writes (its output buffer's size). */
size_t cvd_memfig_max_out(const cvd_memfig *f, int block);

#ifdef __cplusplus
}
#endif

#endif
