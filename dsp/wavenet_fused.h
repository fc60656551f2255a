/*
 * Template of the fused WaveNet layer kernel, included by wavenet.c once per vector width.
 * The including file defines:
 *   FN            the function's name
 *   TARGET        the target attribute string
 *   VEC           the vector type; W its lane count, which is the layer's channel count C
 *   LOAD, STORE, SET1, FMA, ADD, MUL, SUB, TANHV, SIGV   the operations
 *
 * One layer, n frames, in tiles of up to 8 frames held in registers:
 *   z = bias + cond * Wm + sum_j sum_c h[t + j d][c] Wc[j][c]     (Z = C, or 2C gated)
 *   a = act(z) | act(z1) sig(z2) | blend          (tanh and sigmoid in registers)
 *   head += a;  out = (residual ? h : 0) + b1 + W1 a
 * Activations other than tanh/sigmoid go through `act_tile`, a scalar pass over the tile.
 */

__attribute__((target(TARGET))) static void FN(const fused_args *A, int n)
{
    const int C = W, Z = A->Z, K = A->K;
    const size_t ts = (size_t)A->d * C;
    float tile[8 * 2 * W];

    for (int t0 = 0; t0 < n; t0 += 8) {
        const int T = n - t0 < 8 ? n - t0 : 8;
        VEC acc[8], acc2[8];
        const VEC bias = LOAD(A->bc);
        const VEC wm = LOAD(A->Wm);
        VEC bias2 = bias, wm2 = wm;
        if (Z == 2 * C) {
            bias2 = LOAD(A->bc + C);
            wm2 = LOAD(A->Wm + C);
        }
        for (int u = 0; u < 8; u++) {
            if (u < T) {
                const VEC cv = SET1(A->cond[t0 + u]);
                acc[u] = FMA(cv, wm, bias);
                acc2[u] = FMA(cv, wm2, bias2);
            }
        }
        const float *x0 = A->hwin + (size_t)t0 * C;
        if (T == 8) {
            for (int j = 0; j < K; j++) {
                const float *xr = x0 + (size_t)j * ts;
                const float *wr = A->Wc + (size_t)j * C * Z;
                for (int c = 0; c < C; c++) {
                    const VEC w1 = LOAD(wr + (size_t)c * Z);
#pragma GCC unroll 8
                    for (int u = 0; u < 8; u++)
                        acc[u] = FMA(SET1(xr[u * C + c]), w1, acc[u]);
                    if (Z == 2 * C) {
                        const VEC w2 = LOAD(wr + (size_t)c * Z + C);
#pragma GCC unroll 8
                        for (int u = 0; u < 8; u++)
                            acc2[u] = FMA(SET1(xr[u * C + c]), w2, acc2[u]);
                    }
                }
            }
        } else {
            /* a short tile (the end of a block, or blocks of 1): one frame at a time, with
             * four partial sums so the FMAs do not wait on each other */
            for (int u = 0; u < T; u++) {
                VEC p1 = SET1(0.0f), p2 = SET1(0.0f), p3 = SET1(0.0f);
                VEC q1 = SET1(0.0f), q2 = SET1(0.0f), q3 = SET1(0.0f);
                VEC p0 = acc[u], q0 = acc2[u];
                for (int j = 0; j < K; j++) {
                    const float *xr = x0 + (size_t)u * C + (size_t)j * ts;
                    const float *wr = A->Wc + (size_t)j * C * Z;
                    for (int c = 0; c < C; c += 4) {
                        p0 = FMA(SET1(xr[c]), LOAD(wr + (size_t)c * Z), p0);
                        p1 = FMA(SET1(xr[c + 1]), LOAD(wr + (size_t)(c + 1) * Z), p1);
                        p2 = FMA(SET1(xr[c + 2]), LOAD(wr + (size_t)(c + 2) * Z), p2);
                        p3 = FMA(SET1(xr[c + 3]), LOAD(wr + (size_t)(c + 3) * Z), p3);
                        if (Z == 2 * C) {
                            q0 = FMA(SET1(xr[c]), LOAD(wr + (size_t)c * Z + C), q0);
                            q1 = FMA(SET1(xr[c + 1]), LOAD(wr + (size_t)(c + 1) * Z + C), q1);
                            q2 = FMA(SET1(xr[c + 2]), LOAD(wr + (size_t)(c + 2) * Z + C), q2);
                            q3 = FMA(SET1(xr[c + 3]), LOAD(wr + (size_t)(c + 3) * Z + C), q3);
                        }
                    }
                }
                acc[u] = ADD(ADD(p0, p1), ADD(p2, p3));
                acc2[u] = ADD(ADD(q0, q1), ADD(q2, q3));
            }
        }

        /* activation (and gate), into acc */
        if (A->gating == CVD_WN_GATING_NONE && A->act_kind == FUSED_TANH) {
            for (int u = 0; u < T; u++)
                acc[u] = TANHV(acc[u]);
        } else if (A->gating == CVD_WN_GATING_NONE) {
            for (int u = 0; u < T; u++)
                STORE(tile + u * C, acc[u]);
            A->act_tile(A->act, tile, T, C, C);
            for (int u = 0; u < T; u++)
                acc[u] = LOAD(tile + u * C);
        } else {
            /* z1 through the activation, z2 through the secondary */
            for (int u = 0; u < T; u++) {
                STORE(tile + u * 2 * C, acc[u]);
                STORE(tile + u * 2 * C + C, acc2[u]);
            }
            if (A->act_kind == FUSED_TANH) {
                for (int u = 0; u < T; u++)
                    STORE(tile + u * 2 * C, TANHV(acc[u]));
            } else {
                A->act_tile(A->act, tile, T, C, 2 * C);
            }
            if (A->sec_kind == FUSED_SIGMOID) {
                for (int u = 0; u < T; u++)
                    STORE(tile + u * 2 * C + C, SIGV(acc2[u]));
            } else {
                A->act_tile(A->sec, tile + C, T, C, 2 * C);
            }
            for (int u = 0; u < T; u++) {
                const VEC g = LOAD(tile + u * 2 * C + C);
                const VEC act = LOAD(tile + u * 2 * C);
                if (A->gating == CVD_WN_GATING_GATED)
                    acc[u] = MUL(act, g);
                else /* blended: g act + (1 - g) z1 = z1 + g (act - z1) */
                    acc[u] = FMA(g, SUB(act, acc[u]), acc[u]);
            }
        }

        /* head += a */
        float *hd = A->head + (size_t)t0 * C;
        if (A->skip)
            for (int u = 0; u < T; u++)
                STORE(hd + u * C, ADD(LOAD(hd + u * C), acc[u]));
        if (A->out == NULL)
            continue;
        /* out = h + b1 + W1 a */
        for (int u = 0; u < T; u++)
            STORE(tile + u * C, acc[u]);
        const VEC b1 = LOAD(A->b1);
        const float *hc = A->hcur + (size_t)t0 * C;
        VEC r[8];
        for (int u = 0; u < T; u++)
            r[u] = A->residual ? ADD(LOAD(hc + u * C), b1) : b1;
        if (T == 8) {
            for (int c = 0; c < C; c++) {
                const VEC w1 = LOAD(A->W1 + (size_t)c * C);
#pragma GCC unroll 8
                for (int u = 0; u < 8; u++)
                    r[u] = FMA(SET1(tile[u * C + c]), w1, r[u]);
            }
        } else {
            for (int u = 0; u < T; u++) {
                VEC p0 = r[u], p1 = SET1(0.0f), p2 = SET1(0.0f), p3 = SET1(0.0f);
                const float *au = tile + u * C;
                for (int c = 0; c < C; c += 4) {
                    p0 = FMA(SET1(au[c]), LOAD(A->W1 + (size_t)c * C), p0);
                    p1 = FMA(SET1(au[c + 1]), LOAD(A->W1 + (size_t)(c + 1) * C), p1);
                    p2 = FMA(SET1(au[c + 2]), LOAD(A->W1 + (size_t)(c + 2) * C), p2);
                    p3 = FMA(SET1(au[c + 3]), LOAD(A->W1 + (size_t)(c + 3) * C), p3);
                }
                r[u] = ADD(ADD(p0, p1), ADD(p2, p3));
            }
        }
        float *o = A->out + (size_t)t0 * C;
        for (int u = 0; u < T; u++)
            STORE(o + u * C, r[u]);
    }
}
