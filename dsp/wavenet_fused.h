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
            for (int j = 0; j < K; j++) {
                const float *xr = x0 + (size_t)j * ts;
                const float *wr = A->Wc + (size_t)j * C * Z;
                for (int c = 0; c < C; c++) {
                    const VEC w1 = LOAD(wr + (size_t)c * Z);
                    for (int u = 0; u < T; u++)
                        acc[u] = FMA(SET1(xr[u * C + c]), w1, acc[u]);
                    if (Z == 2 * C) {
                        const VEC w2 = LOAD(wr + (size_t)c * Z + C);
                        for (int u = 0; u < T; u++)
                            acc2[u] = FMA(SET1(xr[u * C + c]), w2, acc2[u]);
                    }
                }
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
            for (int c = 0; c < C; c++) {
                const VEC w1 = LOAD(A->W1 + (size_t)c * C);
                for (int u = 0; u < T; u++)
                    r[u] = FMA(SET1(tile[u * C + c]), w1, r[u]);
            }
        }
        float *o = A->out + (size_t)t0 * C;
        for (int u = 0; u < T; u++)
            STORE(o + u * C, r[u]);
    }
}
