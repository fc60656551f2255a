/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Template of the fused WaveNet layer kernel, included by wavenet.c once per vector width.
 * The including file defines:
 *   FN            the function's name (FN_tile is defined here for its tiles)
 *   TARGET        the target attribute string
 *   VEC           the vector type, W its lane count
 *   CH            the layer's channel count C: W, or A->C (at most W) with LOAD and STORE
 *                 masked to C lanes
 *   NV            vectors per frame: 1 (C <= W), or 2 (16 channels in two AVX2 vectors)
 *   NTILE, GTILE  the tile, in frames, of a layer that is not gated and of one that is (its
 *                 accumulators are twice as many): what the registers hold
 *   LOAD, STORE, SET1, FMA, ADD, MUL, SUB, TANHV, SIGV   the operations
 *   SPLIT         1 where the registers hold two sums a frame for a tile (AVX-512's 32), else 0
 *   ULOAD, USTORE full-width (never masked) load and store, for the tile's scratch rows: they
 *                 are W floats apart, so a scalar read of a row just written is always
 *                 forwarded from the store (a masked store's never is: a stall each time)
 *
 * One layer, n frames, in tiles of up to NTILE frames held in registers:
 *   z = bias + cond * Wm + sum_j sum_c h[t + j d][c] Wc[j][c]     (Z = C, or 2C gated)
 *   a = act(z) | act(z1) sig(z2) | blend          (tanh and sigmoid in registers)
 *   head += a;  out = (residual ? h : 0) + b1 + W1 a
 * The tile's size and whether the layer is gated are compile-time constants of each inlined
 * copy of the tile, so its accumulators live in registers, never on the stack.
 * Activations other than tanh/sigmoid go through `act_tile`, a scalar pass over the tile.
 */

#define FT_CAT2(a, b) a##b
#define FT_CAT(a, b) FT_CAT2(a, b)
#define TILE FT_CAT(FN, _tile)

/* a frame's channels are NV vectors: v = 0..NV-1 covers channels v W .. v W + W - 1 */
#define FOR_V for (int v = 0; v < NV; v++)

__attribute__((target(TARGET), always_inline)) static inline void
TILE(const fused_args *A, int t0, const int TT, const int gated)
{
    const int C = CH, K = A->K;
    const int Z = gated ? 2 * C : C;
    const int TW = NV * W; /* the tile's row stride */
    const size_t ts = (size_t)A->d * C;
    float tile[8 * NV * W];
    VEC acc[8][NV], acc2[8][NV];

    /* bias and mixin */
    FOR_V
    {
        const VEC bias = LOAD(A->bc + v * W), wm = LOAD(A->Wm + v * W);
        for (int u = 0; u < TT; u++)
            acc[u][v] = FMA(SET1(A->cond[t0 + u]), wm, bias);
        if (gated) {
            const VEC bias2 = LOAD(A->bc + C + v * W), wm2 = LOAD(A->Wm + C + v * W);
            for (int u = 0; u < TT; u++)
                acc2[u][v] = FMA(SET1(A->cond[t0 + u]), wm2, bias2);
        }
    }

    /* the dilated conv */
    const float *x0 = A->hwin + (size_t)t0 * C;
    if (SPLIT && TT > 1 && !gated) {
        /* two sums a frame (even and odd input channels): chains half as long, so a layer's
         * conv, tanh and 1x1 wait less on each other at blocks of 8 */
        VEC bcc[8][NV];
        for (int u = 0; u < TT; u++)
            FOR_V bcc[u][v] = SET1(0.0f);
        for (int j = 0; j < K; j++) {
            const float *xr = x0 + (size_t)j * ts;
            const float *wr = A->Wc + (size_t)j * C * Z;
            int c = 0;
            for (; c + 2 <= C; c += 2) {
                VEC wa[NV], wb[NV];
                FOR_V
                {
                    wa[v] = LOAD(wr + (size_t)c * Z + v * W);
                    wb[v] = LOAD(wr + (size_t)(c + 1) * Z + v * W);
                }
#pragma GCC unroll 8
                for (int u = 0; u < TT; u++) {
                    const VEC ba = SET1(xr[u * C + c]), bb = SET1(xr[u * C + c + 1]);
                    FOR_V
                    {
                        acc[u][v] = FMA(ba, wa[v], acc[u][v]);
                        bcc[u][v] = FMA(bb, wb[v], bcc[u][v]);
                    }
                }
            }
            for (; c < C; c++) {
                VEC wa[NV];
                FOR_V wa[v] = LOAD(wr + (size_t)c * Z + v * W);
#pragma GCC unroll 8
                for (int u = 0; u < TT; u++) {
                    const VEC ba = SET1(xr[u * C + c]);
                    FOR_V acc[u][v] = FMA(ba, wa[v], acc[u][v]);
                }
            }
        }
        for (int u = 0; u < TT; u++)
            FOR_V acc[u][v] = ADD(acc[u][v], bcc[u][v]);
    } else if (TT > 1) {
        for (int j = 0; j < K; j++) {
            const float *xr = x0 + (size_t)j * ts;
            const float *wr = A->Wc + (size_t)j * C * Z;
            for (int c = 0; c < C; c++) {
                VEC w1[NV], w2[NV];
                FOR_V
                {
                    w1[v] = LOAD(wr + (size_t)c * Z + v * W);
                    if (gated)
                        w2[v] = LOAD(wr + (size_t)c * Z + C + v * W);
                }
#pragma GCC unroll 8
                for (int u = 0; u < TT; u++) {
                    const VEC b = SET1(xr[u * C + c]);
                    FOR_V
                    {
                        acc[u][v] = FMA(b, w1[v], acc[u][v]);
                        if (gated)
                            acc2[u][v] = FMA(b, w2[v], acc2[u][v]);
                    }
                }
            }
        }
    } else {
        /* one frame (the end of a block, or blocks of 1): four partial sums so the FMAs do
         * not wait on each other */
        VEC p[4][NV], q[4][NV];
        FOR_V
        {
            p[0][v] = acc[0][v];
            q[0][v] = gated ? acc2[0][v] : SET1(0.0f);
            for (int i = 1; i < 4; i++)
                p[i][v] = q[i][v] = SET1(0.0f);
        }
        for (int j = 0; j < K; j++) {
            const float *xr = x0 + (size_t)j * ts;
            const float *wr = A->Wc + (size_t)j * C * Z;
            int c = 0;
            for (; c + 4 <= C; c += 4) {
#pragma GCC unroll 4
                for (int i = 0; i < 4; i++) {
                    const VEC b = SET1(xr[c + i]);
                    FOR_V
                    {
                        p[i][v] = FMA(b, LOAD(wr + (size_t)(c + i) * Z + v * W), p[i][v]);
                        if (gated)
                            q[i][v] = FMA(b, LOAD(wr + (size_t)(c + i) * Z + C + v * W), q[i][v]);
                    }
                }
            }
            for (; c < C; c++) { /* C not a multiple of 4 */
                const VEC b = SET1(xr[c]);
                FOR_V
                {
                    p[0][v] = FMA(b, LOAD(wr + (size_t)c * Z + v * W), p[0][v]);
                    if (gated)
                        q[0][v] = FMA(b, LOAD(wr + (size_t)c * Z + C + v * W), q[0][v]);
                }
            }
        }
        FOR_V
        {
            acc[0][v] = ADD(ADD(p[0][v], p[1][v]), ADD(p[2][v], p[3][v]));
            if (gated)
                acc2[0][v] = ADD(ADD(q[0][v], q[1][v]), ADD(q[2][v], q[3][v]));
        }
    }

    /* activation (and gate), into acc */
    if (!gated) {
        if (A->act_kind == FUSED_TANH) {
            for (int u = 0; u < TT; u++)
                FOR_V acc[u][v] = TANHV(acc[u][v]);
        } else {
            for (int u = 0; u < TT; u++)
                FOR_V USTORE(tile + u * TW + v * W, acc[u][v]);
            A->act_tile(A->act, tile, TT, C, TW);
            for (int u = 0; u < TT; u++)
                FOR_V acc[u][v] = ULOAD(tile + u * TW + v * W);
        }
    } else {
        /* z1 through the activation, z2 through the secondary */
        VEC act[8][NV], g[8][NV];
        if (A->act_kind == FUSED_TANH) {
            for (int u = 0; u < TT; u++)
                FOR_V act[u][v] = TANHV(acc[u][v]);
        } else {
            for (int u = 0; u < TT; u++)
                FOR_V USTORE(tile + u * TW + v * W, acc[u][v]);
            A->act_tile(A->act, tile, TT, C, TW);
            for (int u = 0; u < TT; u++)
                FOR_V act[u][v] = ULOAD(tile + u * TW + v * W);
        }
        if (A->sec_kind == FUSED_SIGMOID) {
            for (int u = 0; u < TT; u++)
                FOR_V g[u][v] = SIGV(acc2[u][v]);
        } else {
            for (int u = 0; u < TT; u++)
                FOR_V USTORE(tile + u * TW + v * W, acc2[u][v]);
            A->act_tile(A->sec, tile, TT, C, TW);
            for (int u = 0; u < TT; u++)
                FOR_V g[u][v] = ULOAD(tile + u * TW + v * W);
        }
        if (A->gating == CVD_WN_GATING_GATED) {
            for (int u = 0; u < TT; u++)
                FOR_V acc[u][v] = MUL(act[u][v], g[u][v]);
        } else { /* blended: g act + (1 - g) z1 = z1 + g (act - z1) */
            for (int u = 0; u < TT; u++)
                FOR_V acc[u][v] = FMA(g[u][v], SUB(act[u][v], acc[u][v]), acc[u][v]);
        }
    }

    /* head += a */
    if (A->skip) {
        float *hd = A->head + (size_t)t0 * C;
        for (int u = 0; u < TT; u++)
            FOR_V STORE(hd + u * C + v * W, ADD(LOAD(hd + u * C + v * W), acc[u][v]));
    }
    if (A->out == NULL)
        return;

    /* out = h + b1 + W1 a */
    for (int u = 0; u < TT; u++)
        FOR_V USTORE(tile + u * TW + v * W, acc[u][v]);
    const float *hc = A->hcur + (size_t)t0 * C;
    VEC r[8][NV];
    FOR_V
    {
        const VEC b1 = LOAD(A->b1 + v * W);
        for (int u = 0; u < TT; u++)
            r[u][v] = A->residual ? ADD(LOAD(hc + u * C + v * W), b1) : b1;
    }
    if (SPLIT && TT > 1) {
        VEC rb[8][NV];
        for (int u = 0; u < TT; u++)
            FOR_V rb[u][v] = SET1(0.0f);
        int c = 0;
        for (; c + 2 <= C; c += 2) {
            VEC wa[NV], wb[NV];
            FOR_V
            {
                wa[v] = LOAD(A->W1 + (size_t)c * C + v * W);
                wb[v] = LOAD(A->W1 + (size_t)(c + 1) * C + v * W);
            }
#pragma GCC unroll 8
            for (int u = 0; u < TT; u++) {
                const VEC ba = SET1(tile[u * TW + c]), bb = SET1(tile[u * TW + c + 1]);
                FOR_V
                {
                    r[u][v] = FMA(ba, wa[v], r[u][v]);
                    rb[u][v] = FMA(bb, wb[v], rb[u][v]);
                }
            }
        }
        for (; c < C; c++) {
            VEC wa[NV];
            FOR_V wa[v] = LOAD(A->W1 + (size_t)c * C + v * W);
#pragma GCC unroll 8
            for (int u = 0; u < TT; u++) {
                const VEC ba = SET1(tile[u * TW + c]);
                FOR_V r[u][v] = FMA(ba, wa[v], r[u][v]);
            }
        }
        for (int u = 0; u < TT; u++)
            FOR_V r[u][v] = ADD(r[u][v], rb[u][v]);
    } else if (TT > 1) {
        for (int c = 0; c < C; c++) {
            VEC w1[NV];
            FOR_V w1[v] = LOAD(A->W1 + (size_t)c * C + v * W);
#pragma GCC unroll 8
            for (int u = 0; u < TT; u++) {
                const VEC b = SET1(tile[u * TW + c]);
                FOR_V r[u][v] = FMA(b, w1[v], r[u][v]);
            }
        }
    } else {
        VEC p[4][NV];
        FOR_V
        {
            p[0][v] = r[0][v];
            for (int i = 1; i < 4; i++)
                p[i][v] = SET1(0.0f);
        }
        int c = 0;
        for (; c + 4 <= C; c += 4) {
#pragma GCC unroll 4
            for (int i = 0; i < 4; i++) {
                const VEC b = SET1(tile[c + i]);
                FOR_V p[i][v] = FMA(b, LOAD(A->W1 + (size_t)(c + i) * C + v * W), p[i][v]);
            }
        }
        for (; c < C; c++) {
            const VEC b = SET1(tile[c]);
            FOR_V p[0][v] = FMA(b, LOAD(A->W1 + (size_t)c * C + v * W), p[0][v]);
        }
        FOR_V r[0][v] = ADD(ADD(p[0][v], p[1][v]), ADD(p[2][v], p[3][v]));
    }
    float *o = A->out + (size_t)t0 * C;
    for (int u = 0; u < TT; u++)
        FOR_V STORE(o + u * C + v * W, r[u][v]);
}

__attribute__((target(TARGET))) static void FN(const fused_args *A, int n)
{
    int t0 = 0;
    if (A->gating == CVD_WN_GATING_NONE) {
        for (; t0 + NTILE <= n; t0 += NTILE)
            TILE(A, t0, NTILE, 0);
        for (; t0 < n; t0++)
            TILE(A, t0, 1, 0);
    } else {
        for (; t0 + GTILE <= n; t0 += GTILE)
            TILE(A, t0, GTILE, 1);
        for (; t0 < n; t0++)
            TILE(A, t0, 1, 1);
    }
}

#ifdef WAVE
/*
 * The wavefront schedule of a layer array (WAVE, defined by the includer: the group's frames):
 * the block's whole tiles of every layer as a pipeline of tasks, task (l, g) = layer l on frame
 * group g (TT = WAVE frames), in the order (0, 0), (0, 1), ..., (1, 0), ... Each step (WSTEP)
 * runs the tail (tanh, head, 1x1, residual) of task k - 1 beside the conv of task k, in one
 * instruction stream: tanh first, the conv's older taps behind it, the 1x1's channel pairs
 * between the conv's in its last tap. The conv of (l, g) reads layer l - 1's output for group g
 * (and, for dilations below the block, earlier groups), written by the tail of task k - ng one
 * step before or earlier, so a tail's latency chain (tanh, the 1x1, the store) runs beside the
 * next group's conv instead of stalling the next layer. Every layer not gated, tanh, C even.
 * Each frame's sums are those of TILE's form for TT > 1 (the SPLIT form's two sums a frame
 * where SPLIT), its head's in layer order: the same bits as FN layer by layer.
 */
#define WCONV FT_CAT(FN, _wconv)
#define WTAIL FT_CAT(FN, _wtail)
#define WBODY FT_CAT(FN, _wbody)
#define WSTEP FT_CAT(FN, _wstep)
#define WFN FT_CAT(FN, _wave)

/* the conv of TT frames from t0, bias and mixin included, into z */
__attribute__((target(TARGET), always_inline)) static inline void WCONV(const fused_args *A, int t0,
                                                                        const int TT, VEC z[8][NV])
{
    const int C = CH, K = A->K, Z = C;
    const size_t ts = (size_t)A->d * C;
    FOR_V
    {
        const VEC bias = LOAD(A->bc + v * W), wm = LOAD(A->Wm + v * W);
        for (int u = 0; u < TT; u++)
            z[u][v] = FMA(SET1(A->cond[t0 + u]), wm, bias);
    }
    const float *x0 = A->hwin + (size_t)t0 * C;
    if (SPLIT) {
        VEC bcc[8][NV];
        for (int u = 0; u < TT; u++)
            FOR_V bcc[u][v] = SET1(0.0f);
        for (int j = 0; j < K; j++) {
            const float *xr = x0 + (size_t)j * ts;
            const float *wr = A->Wc + (size_t)j * C * Z;
            int c = 0;
            for (; c + 2 <= C; c += 2) {
                VEC wa[NV], wb[NV];
                FOR_V
                {
                    wa[v] = LOAD(wr + (size_t)c * Z + v * W);
                    wb[v] = LOAD(wr + (size_t)(c + 1) * Z + v * W);
                }
#pragma GCC unroll 8
                for (int u = 0; u < TT; u++) {
                    const VEC ba = SET1(xr[u * C + c]), bb = SET1(xr[u * C + c + 1]);
                    FOR_V
                    {
                        z[u][v] = FMA(ba, wa[v], z[u][v]);
                        bcc[u][v] = FMA(bb, wb[v], bcc[u][v]);
                    }
                }
            }
            for (; c < C; c++) {
                VEC wa[NV];
                FOR_V wa[v] = LOAD(wr + (size_t)c * Z + v * W);
#pragma GCC unroll 8
                for (int u = 0; u < TT; u++) {
                    const VEC ba = SET1(xr[u * C + c]);
                    FOR_V z[u][v] = FMA(ba, wa[v], z[u][v]);
                }
            }
        }
        for (int u = 0; u < TT; u++)
            FOR_V z[u][v] = ADD(z[u][v], bcc[u][v]);
    } else {
        for (int j = 0; j < K; j++) {
            const float *xr = x0 + (size_t)j * ts;
            const float *wr = A->Wc + (size_t)j * C * Z;
            for (int c = 0; c < C; c++) {
                VEC w1[NV];
                FOR_V w1[v] = LOAD(wr + (size_t)c * Z + v * W);
#pragma GCC unroll 8
                for (int u = 0; u < TT; u++) {
                    const VEC b = SET1(xr[u * C + c]);
                    FOR_V z[u][v] = FMA(b, w1[v], z[u][v]);
                }
            }
        }
    }
}

/* tanh of z, the head, and out = h + b1 + W1 a, for TT frames from t0 */
__attribute__((target(TARGET), always_inline)) static inline void WTAIL(const fused_args *A, int t0,
                                                                        const int TT, VEC z[8][NV])
{
    const int C = CH;
    const int TW = NV * W;
    float tile[8 * NV * W];
    for (int u = 0; u < TT; u++)
        FOR_V z[u][v] = TANHV(z[u][v]);
    if (A->skip) {
        float *hd = A->head + (size_t)t0 * C;
        for (int u = 0; u < TT; u++)
            FOR_V STORE(hd + u * C + v * W, ADD(LOAD(hd + u * C + v * W), z[u][v]));
    }
    if (A->out == NULL)
        return;
    for (int u = 0; u < TT; u++)
        FOR_V USTORE(tile + u * TW + v * W, z[u][v]);
    const float *hc = A->hcur + (size_t)t0 * C;
    VEC r[8][NV];
    FOR_V
    {
        const VEC b1 = LOAD(A->b1 + v * W);
        for (int u = 0; u < TT; u++)
            r[u][v] = A->residual ? ADD(LOAD(hc + u * C + v * W), b1) : b1;
    }
    if (SPLIT) {
        VEC rb[8][NV];
        for (int u = 0; u < TT; u++)
            FOR_V rb[u][v] = SET1(0.0f);
        int c = 0;
        for (; c + 2 <= C; c += 2) {
            VEC wa[NV], wb[NV];
            FOR_V
            {
                wa[v] = LOAD(A->W1 + (size_t)c * C + v * W);
                wb[v] = LOAD(A->W1 + (size_t)(c + 1) * C + v * W);
            }
#pragma GCC unroll 8
            for (int u = 0; u < TT; u++) {
                const VEC ba = SET1(tile[u * TW + c]), bb = SET1(tile[u * TW + c + 1]);
                FOR_V
                {
                    r[u][v] = FMA(ba, wa[v], r[u][v]);
                    rb[u][v] = FMA(bb, wb[v], rb[u][v]);
                }
            }
        }
        for (; c < C; c++) {
            VEC wa[NV];
            FOR_V wa[v] = LOAD(A->W1 + (size_t)c * C + v * W);
#pragma GCC unroll 8
            for (int u = 0; u < TT; u++) {
                const VEC ba = SET1(tile[u * TW + c]);
                FOR_V r[u][v] = FMA(ba, wa[v], r[u][v]);
            }
        }
        for (int u = 0; u < TT; u++)
            FOR_V r[u][v] = ADD(r[u][v], rb[u][v]);
    } else {
        for (int c = 0; c < C; c++) {
            VEC w1[NV];
            FOR_V w1[v] = LOAD(A->W1 + (size_t)c * C + v * W);
#pragma GCC unroll 8
            for (int u = 0; u < TT; u++) {
                const VEC b = SET1(tile[u * TW + c]);
                FOR_V r[u][v] = FMA(b, w1[v], r[u][v]);
            }
        }
    }
    float *o = A->out + (size_t)t0 * C;
    for (int u = 0; u < TT; u++)
        FOR_V STORE(o + u * C + v * W, r[u][v]);
}

/* one step: the tail of TT frames of Ap from tp (their conv's sums in z) and the conv of TT
 * frames of Ac from tc (into z), side by side: tanh first, the conv's older taps behind it, and
 * the 1x1's channel pairs between the conv's in its last tap, so both chains are in flight */
__attribute__((target(TARGET), always_inline)) static inline void
WSTEP(const fused_args *Ap, int tp, const fused_args *Ac, int tc, const int TT, VEC z[8][NV])
{
    const int C = CH, K = Ac->K, Z = C;
    const int TW = NV * W;
    const size_t ts = (size_t)Ac->d * C;
    float tile[8 * NV * W];
    VEC a[8][NV], r[8][NV], rb[8][NV], bcc[8][NV];
    /* the tail's activation and head */
    for (int u = 0; u < TT; u++)
        FOR_V a[u][v] = TANHV(z[u][v]);
    if (Ap->skip) {
        float *hd = Ap->head + (size_t)tp * C;
        for (int u = 0; u < TT; u++)
            FOR_V STORE(hd + u * C + v * W, ADD(LOAD(hd + u * C + v * W), a[u][v]));
    }
    const int tail = Ap->out != NULL;
    for (int u = 0; u < TT; u++)
        FOR_V USTORE(tile + u * TW + v * W, a[u][v]);
    const float *hc = Ap->hcur + (size_t)tp * C;
    FOR_V
    {
        const VEC b1 = LOAD(Ap->b1 + v * W);
        for (int u = 0; u < TT; u++) {
            r[u][v] = Ap->residual ? ADD(LOAD(hc + u * C + v * W), b1) : b1;
            rb[u][v] = SET1(0.0f);
        }
    }
    /* the conv's bias and mixin */
    FOR_V
    {
        const VEC bias = LOAD(Ac->bc + v * W), wm = LOAD(Ac->Wm + v * W);
        for (int u = 0; u < TT; u++) {
            z[u][v] = FMA(SET1(Ac->cond[tc + u]), wm, bias);
            bcc[u][v] = SET1(0.0f);
        }
    }
    const float *x0 = Ac->hwin + (size_t)tc * C;
    for (int j = 0; j < K; j++) {
        const float *xr = x0 + (size_t)j * ts;
        const float *wr = Ac->Wc + (size_t)j * C * Z;
        if (j == K - 1 && tail)
            break;
        if (SPLIT) {
#pragma GCC unroll 16
            for (int c = 0; c < C; c += 2) {
                VEC wa[NV], wb[NV];
                FOR_V
                {
                    wa[v] = LOAD(wr + (size_t)c * Z + v * W);
                    wb[v] = LOAD(wr + (size_t)(c + 1) * Z + v * W);
                }
#pragma GCC unroll 8
                for (int u = 0; u < TT; u++) {
                    const VEC ba = SET1(xr[u * C + c]), bb = SET1(xr[u * C + c + 1]);
                    FOR_V
                    {
                        z[u][v] = FMA(ba, wa[v], z[u][v]);
                        bcc[u][v] = FMA(bb, wb[v], bcc[u][v]);
                    }
                }
            }
        } else {
#pragma GCC unroll 16
            for (int c = 0; c < C; c++) {
                VEC w1[NV];
                FOR_V w1[v] = LOAD(wr + (size_t)c * Z + v * W);
#pragma GCC unroll 8
                for (int u = 0; u < TT; u++) {
                    const VEC b = SET1(xr[u * C + c]);
                    FOR_V z[u][v] = FMA(b, w1[v], z[u][v]);
                }
            }
        }
    }
    if (tail) {
        /* the conv's last tap with the 1x1's channels between its own */
        const float *xr = x0 + (size_t)(K - 1) * ts;
        const float *wr = Ac->Wc + (size_t)(K - 1) * C * Z;
        if (SPLIT) {
#pragma GCC unroll 16
            for (int c = 0; c < C; c += 2) {
                VEC wa[NV], wb[NV];
                FOR_V
                {
                    wa[v] = LOAD(wr + (size_t)c * Z + v * W);
                    wb[v] = LOAD(wr + (size_t)(c + 1) * Z + v * W);
                }
#pragma GCC unroll 8
                for (int u = 0; u < TT; u++) {
                    const VEC ba = SET1(xr[u * C + c]), bb = SET1(xr[u * C + c + 1]);
                    FOR_V
                    {
                        z[u][v] = FMA(ba, wa[v], z[u][v]);
                        bcc[u][v] = FMA(bb, wb[v], bcc[u][v]);
                    }
                }
                FOR_V
                {
                    wa[v] = LOAD(Ap->W1 + (size_t)c * C + v * W);
                    wb[v] = LOAD(Ap->W1 + (size_t)(c + 1) * C + v * W);
                }
#pragma GCC unroll 8
                for (int u = 0; u < TT; u++) {
                    const VEC ba = SET1(tile[u * TW + c]), bb = SET1(tile[u * TW + c + 1]);
                    FOR_V
                    {
                        r[u][v] = FMA(ba, wa[v], r[u][v]);
                        rb[u][v] = FMA(bb, wb[v], rb[u][v]);
                    }
                }
            }
        } else {
#pragma GCC unroll 16
            for (int c = 0; c < C; c++) {
                VEC w1[NV];
                FOR_V w1[v] = LOAD(wr + (size_t)c * Z + v * W);
#pragma GCC unroll 8
                for (int u = 0; u < TT; u++) {
                    const VEC b = SET1(xr[u * C + c]);
                    FOR_V z[u][v] = FMA(b, w1[v], z[u][v]);
                }
                FOR_V w1[v] = LOAD(Ap->W1 + (size_t)c * C + v * W);
#pragma GCC unroll 8
                for (int u = 0; u < TT; u++) {
                    const VEC b = SET1(tile[u * TW + c]);
                    FOR_V r[u][v] = FMA(b, w1[v], r[u][v]);
                }
            }
        }
    }
    if (SPLIT)
        for (int u = 0; u < TT; u++)
            FOR_V z[u][v] = ADD(z[u][v], bcc[u][v]);
    if (!tail)
        return;
    if (SPLIT)
        for (int u = 0; u < TT; u++)
            FOR_V r[u][v] = ADD(r[u][v], rb[u][v]);
    float *o = Ap->out + (size_t)tp * C;
    for (int u = 0; u < TT; u++)
        FOR_V STORE(o + u * C + v * W, r[u][v]);
}

#define WLAYER(l) ((const fused_args *)((const char *)A0 + (size_t)(l)*stride))

/* the tasks of ng groups of TT frames over L layers */
__attribute__((target(TARGET), always_inline)) static inline void
WBODY(const fused_args *A0, size_t stride, int L, int ng, const int TT)
{
    VEC z[8][NV];
    const int nt = L * ng;
    WCONV(A0, 0, TT, z);
    for (int k = 1; k < nt; k++) {
        const int lp = (k - 1) / ng, gp = (k - 1) - lp * ng;
        const int l = k / ng, g = k - l * ng;
        WSTEP(WLAYER(lp), gp * TT, WLAYER(l), g * TT, TT, z);
    }
    WTAIL(WLAYER(L - 1), (ng - 1) * TT, TT, z);
}

/* L layers (fused_args stride bytes apart, their frames' fields set) over n frames: the
 * frames in whole tiles of NTILE as a wavefront, in groups of NTILE (two or more) or NTILE / 2,
 * then each layer's last frames one by one as FN runs them */
__attribute__((target(TARGET))) static void WFN(const fused_args *A0, size_t stride, int L, int n)
{
    const int m = n / NTILE * NTILE; /* FN's whole tiles: the frames of TILE's TT > 1 form */
    if (m < 2 * WAVE) {              /* one group: layer by layer */
        for (int l = 0; l < L; l++)
            FN(WLAYER(l), n);
        return;
    }
    WBODY(A0, stride, L, m / WAVE, WAVE);
    for (int l = 0; l < L; l++)
        for (int t0 = m; t0 < n; t0++)
            TILE(WLAYER(l), t0, 1, 0);
}

#undef WLAYER
#undef WCONV
#undef WTAIL
#undef WBODY
#undef WSTEP
#undef WFN
#endif

#undef FOR_V
#undef TILE
#undef FT_CAT
#undef FT_CAT2
