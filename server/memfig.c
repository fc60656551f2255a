/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A model's memory figure (memfig.h).
 */
#include "memfig.h"

/* The probes: every block from 1 to SMALL (a layer with strides or pooling gives a state
 * that saws up and down with the block's remainder), and two large blocks whose difference
 * gives the slope where it is steepest. */
#define SMALL 16
#define PROBE_A 4096
#define PROBE_B 8192

static int state_at(cvd_model *m, long hop, int block, size_t *bytes, size_t *max_out, cvd_err *err)
{
    cvd_net *n = NULL;
    int rc = cvd_net_create_hop(m, block, hop, &n, err);
    if (rc < 0)
        return rc;
    *bytes = cvd_net_state_bytes(n);
    *max_out = (size_t)cvd_net_max_out(n);
    cvd_net_destroy(n);
    return CVD_OK;
}

/* The lowest line of slope `slope` through (b - 1, v[b]) over every b of 1..n. */
static size_t base_over(const size_t *v, int n, size_t slope)
{
    size_t base = 0;
    for (int b = 1; b <= n; b++) {
        size_t rise = slope * (size_t)(b - 1);
        if (v[b] > rise && v[b] - rise > base)
            base = v[b] - rise;
    }
    return base;
}

static size_t slope_up(size_t lo, size_t hi, int blo, int bhi)
{
    return hi > lo ? (hi - lo + (size_t)(bhi - blo) - 1) / (size_t)(bhi - blo) : 0;
}

int cvd_memfig_measure(cvd_model *m, long hop, cvd_memfig *f, cvd_err *err)
{
    size_t small[SMALL + 1], out[SMALL + 1], ba = 0, bb = 0, oa = 0, ob = 0;
    int rc = CVD_OK;
    /* every probe's WaveNets with weights of their own: the most a stream can take (a stream
     * whose block has a template shares its weights), and the model's templates stay for the
     * block sizes streams use */
    cvd_net_own_wavenets(1);
    for (int b = 1; b <= SMALL && rc == CVD_OK; b++)
        rc = state_at(m, hop, b, &small[b], &out[b], err);
    if (rc == CVD_OK)
        rc = state_at(m, hop, PROBE_A, &ba, &oa, err);
    if (rc == CVD_OK)
        rc = state_at(m, hop, PROBE_B, &bb, &ob, err);
    cvd_net_own_wavenets(0);
    if (rc < 0)
        return rc;
    /* the steepest slope seen, rounded up; then the lowest line of that slope over every
     * small probe (and so over the large ones) */
    size_t s1 = slope_up(small[SMALL], ba, SMALL, PROBE_A), s2 = slope_up(ba, bb, PROBE_A, PROBE_B);
    f->per_frame = s1 > s2 ? s1 : s2;
    f->base = base_over(small, SMALL, f->per_frame);
    s1 = slope_up(out[SMALL], oa, SMALL, PROBE_A);
    s2 = slope_up(oa, ob, PROBE_A, PROBE_B);
    f->out_per_frame = s1 > s2 ? s1 : s2;
    f->out_base = base_over(out, SMALL, f->out_per_frame);
    return CVD_OK;
}

size_t cvd_memfig_net_bytes(const cvd_memfig *f, int block)
{
    if (block < 1)
        block = 1;
    return f->base + f->per_frame * (size_t)(block - 1);
}

size_t cvd_memfig_max_out(const cvd_memfig *f, int block)
{
    if (block < 1)
        block = 1;
    return f->out_base + f->out_per_frame * (size_t)(block - 1);
}
