/*
 * Template of the fused WaveNet layer kernel, included by wavenet.c once per vector width.
 * The including file defines:
 *   FN            the function's name (FN_tile is defined here for its tiles)
 *   TARGET        the target attribute string
 *   VEC           the vector type, W its lane count
 *   CH            the layer's channel count C: W, or A->C (at most W) with LOAD and STORE
 *                 masked to C lanes
 *   GTILE         the tile, in frames, of a gated layer (its accumulators are twice as many)
 *   LOAD, STORE, SET1, FMA, ADD, MUL, SUB, TANHV, SIGV   the operations
 *   ULOAD, USTORE full-width (never masked) load and store, for the tile's scratch rows: they
 *                 are W floats apart, so a scalar read of a row just written is always
 *                 forwarded from the store (a masked store's never is: a stall each time)
 *
 * One layer, n frames, in tiles of up to 8 frames held in registers:
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

__attribute__((target(TARGET), always_inline)) static inline void TILE(const fused_args *A,
                                                                        int t0, const int TT,
                                                                        const int gated)
{
    const int C = CH, K = A->K;
    const int Z = gated ? 2 * C : C;
    const size_t ts = (size_t)A->d * C;
    float tile[8 * 2 * W];
    VEC acc[8], acc2[8];

    /* bias and mixin */
    {
        const VEC bias = LOAD(A->bc), wm = LOAD(A->Wm);
        for (int u = 0; u < TT; u++)
            acc[u] = FMA(SET1(A->cond[t0 + u]), wm, bias);
        if (gated) {
            const VEC bias2 = LOAD(A->bc + C), wm2 = LOAD(A->Wm + C);
            for (int u = 0; u < TT; u++)
                acc2[u] = FMA(SET1(A->cond[t0 + u]), wm2, bias2);
        }
    }

    /* the dilated conv */
    const float *x0 = A->hwin + (size_t)t0 * C;
    if (TT > 1) {
        for (int j = 0; j < K; j++) {
            const float *xr = x0 + (size_t)j * ts;
            const float *wr = A->Wc + (size_t)j * C * Z;
            for (int c = 0; c < C; c++) {
                const VEC w1 = LOAD(wr + (size_t)c * Z);
#pragma GCC unroll 8
                for (int u = 0; u < TT; u++)
                    acc[u] = FMA(SET1(xr[u * C + c]), w1, acc[u]);
                if (gated) {
                    const VEC w2 = LOAD(wr + (size_t)c * Z + C);
#pragma GCC unroll 8
                    for (int u = 0; u < TT; u++)
                        acc2[u] = FMA(SET1(xr[u * C + c]), w2, acc2[u]);
                }
            }
        }
    } else {
        /* one frame (the end of a block, or blocks of 1): four partial sums so the FMAs do
         * not wait on each other */
        VEC p0 = acc[0], p1 = SET1(0.0f), p2 = SET1(0.0f), p3 = SET1(0.0f);
        VEC q0 = gated ? acc2[0] : p1, q1 = p1, q2 = p1, q3 = p1;
        for (int j = 0; j < K; j++) {
            const float *xr = x0 + (size_t)j * ts;
            const float *wr = A->Wc + (size_t)j * C * Z;
            int c = 0;
            for (; c + 4 <= C; c += 4) {
                p0 = FMA(SET1(xr[c]), LOAD(wr + (size_t)c * Z), p0);
                p1 = FMA(SET1(xr[c + 1]), LOAD(wr + (size_t)(c + 1) * Z), p1);
                p2 = FMA(SET1(xr[c + 2]), LOAD(wr + (size_t)(c + 2) * Z), p2);
                p3 = FMA(SET1(xr[c + 3]), LOAD(wr + (size_t)(c + 3) * Z), p3);
                if (gated) {
                    q0 = FMA(SET1(xr[c]), LOAD(wr + (size_t)c * Z + C), q0);
                    q1 = FMA(SET1(xr[c + 1]), LOAD(wr + (size_t)(c + 1) * Z + C), q1);
                    q2 = FMA(SET1(xr[c + 2]), LOAD(wr + (size_t)(c + 2) * Z + C), q2);
                    q3 = FMA(SET1(xr[c + 3]), LOAD(wr + (size_t)(c + 3) * Z + C), q3);
                }
            }
            for (; c < C; c++) { /* C not a multiple of 4 */
                p0 = FMA(SET1(xr[c]), LOAD(wr + (size_t)c * Z), p0);
                if (gated)
                    q0 = FMA(SET1(xr[c]), LOAD(wr + (size_t)c * Z + C), q0);
            }
        }
        acc[0] = ADD(ADD(p0, p1), ADD(p2, p3));
        if (gated)
            acc2[0] = ADD(ADD(q0, q1), ADD(q2, q3));
    }

    /* activation (and gate), into acc */
    if (!gated) {
        if (A->act_kind == FUSED_TANH) {
            for (int u = 0; u < TT; u++)
                acc[u] = TANHV(acc[u]);
        } else {
            for (int u = 0; u < TT; u++)
                USTORE(tile + u * W, acc[u]);
            A->act_tile(A->act, tile, TT, C, W);
            for (int u = 0; u < TT; u++)
                acc[u] = ULOAD(tile + u * W);
        }
    } else {
        /* z1 through the activation, z2 through the secondary */
        VEC act[8], g[8];
        if (A->act_kind == FUSED_TANH) {
            for (int u = 0; u < TT; u++)
                act[u] = TANHV(acc[u]);
        } else {
            for (int u = 0; u < TT; u++)
                USTORE(tile + u * W, acc[u]);
            A->act_tile(A->act, tile, TT, C, W);
            for (int u = 0; u < TT; u++)
                act[u] = ULOAD(tile + u * W);
        }
        if (A->sec_kind == FUSED_SIGMOID) {
            for (int u = 0; u < TT; u++)
                g[u] = SIGV(acc2[u]);
        } else {
            for (int u = 0; u < TT; u++)
                USTORE(tile + u * W, acc2[u]);
            A->act_tile(A->sec, tile, TT, C, W);
            for (int u = 0; u < TT; u++)
                g[u] = ULOAD(tile + u * W);
        }
        if (A->gating == CVD_WN_GATING_GATED) {
            for (int u = 0; u < TT; u++)
                acc[u] = MUL(act[u], g[u]);
        } else { /* blended: g act + (1 - g) z1 = z1 + g (act - z1) */
            for (int u = 0; u < TT; u++)
                acc[u] = FMA(g[u], SUB(act[u], acc[u]), acc[u]);
        }
    }

    /* head += a */
    if (A->skip) {
        float *hd = A->head + (size_t)t0 * C;
        for (int u = 0; u < TT; u++)
            STORE(hd + u * C, ADD(LOAD(hd + u * C), acc[u]));
    }
    if (A->out == NULL)
        return;

    /* out = h + b1 + W1 a */
    for (int u = 0; u < TT; u++)
        USTORE(tile + u * W, acc[u]);
    const VEC b1 = LOAD(A->b1);
    const float *hc = A->hcur + (size_t)t0 * C;
    VEC r[8];
    for (int u = 0; u < TT; u++)
        r[u] = A->residual ? ADD(LOAD(hc + u * C), b1) : b1;
    if (TT > 1) {
        for (int c = 0; c < C; c++) {
            const VEC w1 = LOAD(A->W1 + (size_t)c * C);
#pragma GCC unroll 8
            for (int u = 0; u < TT; u++)
                r[u] = FMA(SET1(tile[u * W + c]), w1, r[u]);
        }
    } else {
        VEC p0 = r[0], p1 = SET1(0.0f), p2 = SET1(0.0f), p3 = SET1(0.0f);
        int c = 0;
        for (; c + 4 <= C; c += 4) {
            p0 = FMA(SET1(tile[c]), LOAD(A->W1 + (size_t)c * C), p0);
            p1 = FMA(SET1(tile[c + 1]), LOAD(A->W1 + (size_t)(c + 1) * C), p1);
            p2 = FMA(SET1(tile[c + 2]), LOAD(A->W1 + (size_t)(c + 2) * C), p2);
            p3 = FMA(SET1(tile[c + 3]), LOAD(A->W1 + (size_t)(c + 3) * C), p3);
        }
        for (; c < C; c++)
            p0 = FMA(SET1(tile[c]), LOAD(A->W1 + (size_t)c * C), p0);
        r[0] = ADD(ADD(p0, p1), ADD(p2, p3));
    }
    float *o = A->out + (size_t)t0 * C;
    for (int u = 0; u < TT; u++)
        STORE(o + u * C, r[u]);
}

__attribute__((target(TARGET))) static void FN(const fused_args *A, int n)
{
    int t0 = 0;
    if (A->gating == CVD_WN_GATING_NONE) {
        for (; t0 + 8 <= n; t0 += 8)
            TILE(A, t0, 8, 0);
        for (; t0 < n; t0++)
            TILE(A, t0, 1, 0);
    } else {
        for (; t0 + GTILE <= n; t0 += GTILE)
            TILE(A, t0, GTILE, 1);
        for (; t0 < n; t0++)
            TILE(A, t0, 1, 1);
    }
}

#undef TILE
#undef FT_CAT
#undef FT_CAT2
