/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Template of the WaveNet kernels on channel rows ("time-major"), included by wavenet.c once
 * per instruction set. Each channel's history is a row of consecutive frames, and a vector
 * holds W consecutive frames of one channel, so every vector is full whatever the channel
 * count (2, 6, 12, 20 or 24 channels as well as 8 or 16); a tap of a dilated conv reads a
 * contiguous span of each row.
 *
 * The including file defines:
 *   PFX           the prefix of the functions' names
 *   TM_ATTR       the function attribute that selects the ISA (target(...)), or nothing
 *   VEC, W        the vector type and its lane count
 *   ACCB          how many accumulators a kernel may keep in registers (24 of 32, 12 of 16)
 *   TM_REGS       the vector registers (32 or 16); TM_FUSE1 defined: the conv_f kernels too
 *   LOAD, STORE   unaligned load and store of W floats
 *   SET1, FMA, ADD, MUL, SUB, TANHV, SIGV   the operations (FMA(a, b, c) = a b + c)
 *
 * Two kernels, each for G output channels at a time (G a compile-time constant, so the G x FV
 * accumulators live in registers; FV vectors of W frames each):
 *   conv  z = bias + mixin(cond) + sum_j sum_c Wc[j][c] h[c][t - (K-1-j) d]   (G, or G pairs
 *         of z1/z2 when gated), then the activation (and gate) in registers, a into its rows,
 *         head += a
 *   mm    y = bias + res + sum_c W[c] x[c]: the 1x1 with the residual, the head rechannel and
 *         the array rechannel
 *   conv_f (x86, TM_FUSE1) conv for a layer whose G is all its C channels, with the 1x1 and
 *         the residual done from a in registers, in mm's order (the same sums): no a rows,
 *         no second pass (same run, block 64, fraction of the peak: AVX-512 lite 12/6 0.56 ->
 *         0.65, nano 0.27 -> 0.30; AVX2 nano 0.33 -> 0.39; the others unchanged)
 *   conv_h (x86, TM_FUSE1) where two groups of G cover C = 2G channels (16 and 20 on AVX-512,
 *         8 on AVX2): the first group's conv_u writes its a rows, conv_h computes the second
 *         and then the 1x1 and the residual for all C outputs, a[0..G) from the rows and
 *         a[G..2G) from registers, in mm's order (the same sums): no second pass (same run,
 *         best of 5, fraction of the peak: AVX-512 standard block 64 0.66 -> 0.70, 512 0.68
 *         -> 0.72, 20/10 block 64 0.70 -> 0.75; AVX2 feather 0.55 -> 0.57, standard 0.70 ->
 *         0.72). A body of its own (half_body), so the other kernels compile as before
 *   tanh_rows (AVX2, TM_DEFER_TANH) for a tanh layer not gated on the groups' path (on AVX2 every
 *         channel count above 6 but 8: 10, 12, 16, 20, 24 among NAM's), from tiles of 16 frames:
 *         conv_u stores z in the a rows and this pass applies the tanh and adds a to the head,
 *         the same operations on the same values: in conv_u the tanh of its 12 accumulators (4
 *         of the 16 registers left) spilled (alternated runs, 3 pairs, bench_nam --isa avx2,
 *         fraction of the AVX2 peak at blocks 64 / 512: 24/12 0.78-0.79 / 0.81 -> 0.80-0.81 /
 *         0.82, standard 0.70-0.72 / 0.71-0.72 -> 0.72-0.73 / 0.72, lite 0.66-0.68 / 0.69 ->
 *         0.69 / 0.69-0.70; at blocks of 8 it was slower: 24/12 0.54 -> 0.50).
 *
 * Each weight is a scalar broadcast into a vector (an FMA with a broadcast memory operand on
 * AVX-512). Kernels run in chunks of FV W frames, then single vectors for the block's tail: the
 * last vector may run past the block into the rows' padding (never read as data).
 */

#define TM_CAT2(a, b) a##b
#define TM_CAT(a, b) TM_CAT2(a, b)
/* FV: 4 vectors of frames where 4 G accumulators fit, 2 where 2 G do, else 1. Each weight
 * broadcast then feeds FV FMAs: a broadcast per FMA (FV = 1) holds AVX-512 to about 0.65 of
 * its FMA peak (the loads), two FMAs per broadcast reach about 0.8 */
#define TM_ACCS(G, gated) ((G) * ((gated) ? 2 : 1))
#define TM_FV(G, gated)                                                                            \
    (4 * TM_ACCS(G, gated) <= (ACCB) ? 4 : 2 * TM_ACCS(G, gated) <= (ACCB) ? 2 : 1)

/* the fused 1x1's output channels a pass (TM_REGS registers, G FV of them holding a): the
 * largest divisor of G whose FV accumulators fit beside a and a broadcast */
#define TM_GHF(G, FV, n) ((G) % (n) == 0 && (n) * (FV) <= TM_REGS - 1 - (G) * (FV))
#define TM_GH(G, FV)                                                                               \
    (TM_GHF(G, FV, 6)   ? 6                                                                        \
     : TM_GHF(G, FV, 5) ? 5                                                                        \
     : TM_GHF(G, FV, 4) ? 4                                                                        \
     : TM_GHF(G, FV, 3) ? 3                                                                        \
     : TM_GHF(G, FV, 2) ? 2                                                                        \
                        : 1)
/* the same for the second half's kernel (conv_h): a divisor of 2G whose FV accumulators fit
 * beside the G FV of a in registers, FV of a loaded from its rows and a broadcast */
#define TM_GHHF(G, FV, n) ((2 * (G)) % (n) == 0 && (n) * (FV) <= TM_REGS - 1 - (G + 1) * (FV))
#define TM_GHH(G, FV)                                                                              \
    (TM_GHHF(G, FV, 6)   ? 6                                                                       \
     : TM_GHHF(G, FV, 5) ? 5                                                                       \
     : TM_GHHF(G, FV, 4) ? 4                                                                       \
     : TM_GHHF(G, FV, 3) ? 3                                                                       \
     : TM_GHHF(G, FV, 2) ? 2                                                                       \
                         : 1)

__attribute__((always_inline)) TM_ATTR static inline void
TM_CAT(PFX, conv_body)(const tm_layer_args *A, int t, int o0, const int G, const int FV,
                       const int gated, const int F1)
{
    const int C = A->C, K = A->K, Z = gated ? 2 * C : C;
    const size_t hs = A->hs;
    VEC acc[TM_MAXG][4], acc2[TM_MAXG][4]; /* G x FV of them are used */

    /* bias and mixin */
#pragma GCC unroll 24
    for (int o = 0; o < G; o++) {
        const VEC b = SET1(A->bc[o0 + o]);
#pragma GCC unroll 4
        for (int v = 0; v < FV; v++)
            acc[o][v] = b;
        if (gated) {
            const VEC b2 = SET1(A->bc[C + o0 + o]);
#pragma GCC unroll 4
            for (int v = 0; v < FV; v++)
                acc2[o][v] = b2;
        }
    }
    for (int i = 0; i < A->ncond; i++) {
        VEC cv[4];
        const float *wm = A->Wm + (size_t)i * Z + o0;
#pragma GCC unroll 4
        for (int v = 0; v < FV; v++)
            cv[v] = LOAD(A->cond + (size_t)i * A->cs + t + v * W);
#pragma GCC unroll 24
        for (int o = 0; o < G; o++) {
#pragma GCC unroll 4
            for (int v = 0; v < FV; v++) {
                acc[o][v] = FMA(SET1(wm[o]), cv[v], acc[o][v]);
                if (gated)
                    acc2[o][v] = FMA(SET1(wm[C + o]), cv[v], acc2[o][v]);
            }
        }
    }

    /* the dilated conv: tap j of frame t reads h[t - (K-1-j) d] */
    for (int j = 0; j < K; j++) {
        const float *xr = A->h + t - (ptrdiff_t)(K - 1 - j) * A->d;
        const float *wr = A->Wc + (size_t)j * C * Z + o0;
        for (int c = 0; c < C; c++) {
            VEC xv[4];
#pragma GCC unroll 4
            for (int v = 0; v < FV; v++)
                xv[v] = LOAD(xr + (size_t)c * hs + v * W);
            const float *wc = wr + (size_t)c * Z;
#pragma GCC unroll 24
            for (int o = 0; o < G; o++) {
#pragma GCC unroll 4
                for (int v = 0; v < FV; v++) {
                    acc[o][v] = FMA(SET1(wc[o]), xv[v], acc[o][v]);
                    if (gated)
                        acc2[o][v] = FMA(SET1(wc[C + o]), xv[v], acc2[o][v]);
                }
            }
        }
    }

    /* defer (tanh not gated): z into the a rows, tanh_rows does the rest */
    if (!gated && !F1 && A->defer) {
#pragma GCC unroll 24
        for (int o = 0; o < G; o++) {
            float *ar = A->a + (size_t)(o0 + o) * A->as + t;
#pragma GCC unroll 4
            for (int v = 0; v < FV; v++)
                STORE(ar + v * W, acc[o][v]);
        }
        return;
    }

    /* the activation (and gate) into acc */
    float *zs = A->zs; /* scratch rows of W FV floats, for activations applied outside */
    const int ZW = FV * W;
    if (!gated) {
        if (A->act_kind == FUSED_TANH) {
#pragma GCC unroll 24
            for (int o = 0; o < G; o++)
#pragma GCC unroll 4
                for (int v = 0; v < FV; v++)
                    acc[o][v] = TANHV(acc[o][v]);
        } else {
#pragma GCC unroll 24
            for (int o = 0; o < G; o++)
#pragma GCC unroll 4
                for (int v = 0; v < FV; v++)
                    STORE(zs + o * ZW + v * W, acc[o][v]);
            A->act_rows(A->act, zs, o0, G, (size_t)ZW, ZW);
#pragma GCC unroll 24
            for (int o = 0; o < G; o++)
#pragma GCC unroll 4
                for (int v = 0; v < FV; v++)
                    acc[o][v] = LOAD(zs + o * ZW + v * W);
        }
    } else {
        VEC g[TM_MAXG][4];
        if (A->sec_kind == FUSED_SIGMOID) {
#pragma GCC unroll 24
            for (int o = 0; o < G; o++)
#pragma GCC unroll 4
                for (int v = 0; v < FV; v++)
                    g[o][v] = SIGV(acc2[o][v]);
        } else {
#pragma GCC unroll 24
            for (int o = 0; o < G; o++)
#pragma GCC unroll 4
                for (int v = 0; v < FV; v++)
                    STORE(zs + o * ZW + v * W, acc2[o][v]);
            A->act_rows(A->sec, zs, o0, G, (size_t)ZW, ZW);
#pragma GCC unroll 24
            for (int o = 0; o < G; o++)
#pragma GCC unroll 4
                for (int v = 0; v < FV; v++)
                    g[o][v] = LOAD(zs + o * ZW + v * W);
        }
        /* acc2 now holds act(z1) */
        if (A->act_kind == FUSED_TANH) {
#pragma GCC unroll 24
            for (int o = 0; o < G; o++)
#pragma GCC unroll 4
                for (int v = 0; v < FV; v++)
                    acc2[o][v] = TANHV(acc[o][v]);
        } else {
#pragma GCC unroll 24
            for (int o = 0; o < G; o++)
#pragma GCC unroll 4
                for (int v = 0; v < FV; v++)
                    STORE(zs + o * ZW + v * W, acc[o][v]);
            A->act_rows(A->act, zs, o0, G, (size_t)ZW, ZW);
#pragma GCC unroll 24
            for (int o = 0; o < G; o++)
#pragma GCC unroll 4
                for (int v = 0; v < FV; v++)
                    acc2[o][v] = LOAD(zs + o * ZW + v * W);
        }
        if (A->gating == CVD_WN_GATING_GATED) {
#pragma GCC unroll 24
            for (int o = 0; o < G; o++)
#pragma GCC unroll 4
                for (int v = 0; v < FV; v++)
                    acc[o][v] = MUL(acc2[o][v], g[o][v]);
        } else { /* blended: g act + (1 - g) z1 = z1 + g (act - z1) */
#pragma GCC unroll 24
            for (int o = 0; o < G; o++)
#pragma GCC unroll 4
                for (int v = 0; v < FV; v++)
                    acc[o][v] = FMA(g[o][v], SUB(acc2[o][v], acc[o][v]), acc[o][v]);
        }
    }

    /* a into its rows (unless the 1x1 is fused), head += a */
#pragma GCC unroll 24
    for (int o = 0; o < G; o++) {
        float *ar = A->a + (size_t)(o0 + o) * A->as + t;
        if (!F1)
#pragma GCC unroll 4
            for (int v = 0; v < FV; v++)
                STORE(ar + v * W, acc[o][v]);
        if (A->skip) {
            float *hr = A->head + (size_t)(o0 + o) * A->hds + t;
#pragma GCC unroll 4
            for (int v = 0; v < FV; v++)
                STORE(hr + v * W, ADD(LOAD(hr + v * W), acc[o][v]));
        }
    }
    if (!F1)
        return;

    /* the fused 1x1 (G = C, o0 = 0), from a in registers: the same sums in the same order as
     * mm_body's: y = (res + b) + W1[0] a[0] + W1[1] a[1] + ... */
    const tm_mm_args *M = A->r;
    const int GH = TM_GH(G, FV);
    for (int oh = 0; oh < G; oh += GH) {
        VEC y[TM_MAXG][4];
#pragma GCC unroll 24
        for (int o = 0; o < GH; o++) {
            const VEC b = SET1(M->b ? M->b[oh + o] : 0.0f);
#pragma GCC unroll 4
            for (int v = 0; v < FV; v++)
                y[o][v] = M->res ? ADD(LOAD(M->res + (size_t)(oh + o) * M->rs + t + v * W), b) : b;
        }
#pragma GCC unroll 24
        for (int c = 0; c < G; c++) {
            const float *wc = M->Wt + (size_t)c * M->F + oh;
#pragma GCC unroll 24
            for (int o = 0; o < GH; o++)
#pragma GCC unroll 4
                for (int v = 0; v < FV; v++)
                    y[o][v] = FMA(SET1(wc[o]), acc[c][v], y[o][v]);
        }
#pragma GCC unroll 24
        for (int o = 0; o < GH; o++)
#pragma GCC unroll 4
            for (int v = 0; v < FV; v++)
                STORE(M->y + (size_t)(oh + o) * M->ys + t + v * W, y[o][v]);
    }
}

/* conv_h's tile: conv_body for the second of two groups of G output channels (C = 2G, o0 = G,
 * not gated), then the 1x1 over all C channels with the residual, in mm_body's order (the same
 * sums): y = (res + b) + W1[0] a[0] + ... + W1[C-1] a[C-1], a[0..G) read from the rows the
 * first group's conv_u wrote, a[G..2G) from registers. Kept apart from conv_body so that the
 * other kernels compile as before */
__attribute__((always_inline)) TM_ATTR static inline void
TM_CAT(PFX, half_body)(const tm_layer_args *A, int t, const int G, const int FV)
{
    const int C = A->C, K = A->K, o0 = G;
    const size_t hs = A->hs;
    VEC acc[TM_MAXG][4];
#pragma GCC unroll 24
    for (int o = 0; o < G; o++) {
        const VEC b = SET1(A->bc[o0 + o]);
#pragma GCC unroll 4
        for (int v = 0; v < FV; v++)
            acc[o][v] = b;
    }
    for (int i = 0; i < A->ncond; i++) {
        VEC cv[4];
        const float *wm = A->Wm + (size_t)i * C + o0;
#pragma GCC unroll 4
        for (int v = 0; v < FV; v++)
            cv[v] = LOAD(A->cond + (size_t)i * A->cs + t + v * W);
#pragma GCC unroll 24
        for (int o = 0; o < G; o++)
#pragma GCC unroll 4
            for (int v = 0; v < FV; v++)
                acc[o][v] = FMA(SET1(wm[o]), cv[v], acc[o][v]);
    }
    for (int j = 0; j < K; j++) {
        const float *xr = A->h + t - (ptrdiff_t)(K - 1 - j) * A->d;
        const float *wr = A->Wc + (size_t)j * C * C + o0;
        for (int c = 0; c < C; c++) {
            VEC xv[4];
#pragma GCC unroll 4
            for (int v = 0; v < FV; v++)
                xv[v] = LOAD(xr + (size_t)c * hs + v * W);
            const float *wc = wr + (size_t)c * C;
#pragma GCC unroll 24
            for (int o = 0; o < G; o++)
#pragma GCC unroll 4
                for (int v = 0; v < FV; v++)
                    acc[o][v] = FMA(SET1(wc[o]), xv[v], acc[o][v]);
        }
    }
    const int ZW = FV * W;
    if (A->act_kind == FUSED_TANH) {
#pragma GCC unroll 24
        for (int o = 0; o < G; o++)
#pragma GCC unroll 4
            for (int v = 0; v < FV; v++)
                acc[o][v] = TANHV(acc[o][v]);
    } else {
#pragma GCC unroll 24
        for (int o = 0; o < G; o++)
#pragma GCC unroll 4
            for (int v = 0; v < FV; v++)
                STORE(A->zs + o * ZW + v * W, acc[o][v]);
        A->act_rows(A->act, A->zs, o0, G, (size_t)ZW, ZW);
#pragma GCC unroll 24
        for (int o = 0; o < G; o++)
#pragma GCC unroll 4
            for (int v = 0; v < FV; v++)
                acc[o][v] = LOAD(A->zs + o * ZW + v * W);
    }
    if (A->skip)
#pragma GCC unroll 24
        for (int o = 0; o < G; o++) {
            float *hr = A->head + (size_t)(o0 + o) * A->hds + t;
#pragma GCC unroll 4
            for (int v = 0; v < FV; v++)
                STORE(hr + v * W, ADD(LOAD(hr + v * W), acc[o][v]));
        }

    const tm_mm_args *M = A->r;
    const int GH = TM_GHH(G, FV);
    for (int oh = 0; oh < 2 * G; oh += GH) {
        VEC y[TM_MAXG][4];
#pragma GCC unroll 24
        for (int o = 0; o < GH; o++) {
            const VEC b = SET1(M->b ? M->b[oh + o] : 0.0f);
#pragma GCC unroll 4
            for (int v = 0; v < FV; v++)
                y[o][v] = M->res ? ADD(LOAD(M->res + (size_t)(oh + o) * M->rs + t + v * W), b) : b;
        }
        for (int c = 0; c < G; c++) {
            VEC xv[4];
#pragma GCC unroll 4
            for (int v = 0; v < FV; v++)
                xv[v] = LOAD(A->a + (size_t)c * A->as + t + v * W);
            const float *wc = M->Wt + (size_t)c * M->F + oh;
#pragma GCC unroll 24
            for (int o = 0; o < GH; o++)
#pragma GCC unroll 4
                for (int v = 0; v < FV; v++)
                    y[o][v] = FMA(SET1(wc[o]), xv[v], y[o][v]);
        }
#pragma GCC unroll 24
        for (int c = 0; c < G; c++) {
            const float *wc = M->Wt + (size_t)(G + c) * M->F + oh;
#pragma GCC unroll 24
            for (int o = 0; o < GH; o++)
#pragma GCC unroll 4
                for (int v = 0; v < FV; v++)
                    y[o][v] = FMA(SET1(wc[o]), acc[c][v], y[o][v]);
        }
#pragma GCC unroll 24
        for (int o = 0; o < GH; o++)
#pragma GCC unroll 4
            for (int v = 0; v < FV; v++)
                STORE(M->y + (size_t)(oh + o) * M->ys + t + v * W, y[o][v]);
    }
}

__attribute__((always_inline)) TM_ATTR static inline void
TM_CAT(PFX, mm_body)(const tm_mm_args *M, int t, int o0, const int G, const int FV)
{
    VEC acc[TM_MAXG][4];
#pragma GCC unroll 24
    for (int o = 0; o < G; o++) {
        const VEC b = SET1(M->b ? M->b[o0 + o] : 0.0f);
#pragma GCC unroll 4
        for (int v = 0; v < FV; v++)
            acc[o][v] = M->res ? ADD(LOAD(M->res + (size_t)(o0 + o) * M->rs + t + v * W), b) : b;
    }
    for (int c = 0; c < M->Cin; c++) {
        VEC xv[4];
#pragma GCC unroll 4
        for (int v = 0; v < FV; v++)
            xv[v] = LOAD(M->x + (size_t)c * M->xs + t + v * W);
        const float *wc = M->Wt + (size_t)c * M->F + o0;
#pragma GCC unroll 24
        for (int o = 0; o < G; o++)
#pragma GCC unroll 4
            for (int v = 0; v < FV; v++)
                acc[o][v] = FMA(SET1(wc[o]), xv[v], acc[o][v]);
    }
#pragma GCC unroll 24
    for (int o = 0; o < G; o++)
#pragma GCC unroll 4
        for (int v = 0; v < FV; v++)
            STORE(M->y + (size_t)(o0 + o) * M->ys + t + v * W, acc[o][v]);
}

#ifdef TM_DEFER_TANH
/* a = tanh(z) in place over the C rows of z conv_u stored (defer), head += a: the same
 * operations as conv_body's on the same values, two vectors a step */
TM_ATTR static void TM_CAT(PFX, tanh_rows)(const tm_layer_args *A, int n)
{
    for (int o = 0; o < A->C; o++) {
        float *ar = A->a + (size_t)o * A->as;
        float *hr = A->head + (size_t)o * A->hds;
        int t = 0;
        for (; t + 2 * W <= n; t += 2 * W) {
            const VEC a0 = TANHV(LOAD(ar + t)), a1 = TANHV(LOAD(ar + t + W));
            STORE(ar + t, a0);
            STORE(ar + t + W, a1);
            if (A->skip) {
                STORE(hr + t, ADD(LOAD(hr + t), a0));
                STORE(hr + t + W, ADD(LOAD(hr + t + W), a1));
            }
        }
        for (; t < n; t += W) {
            const VEC a0 = TANHV(LOAD(ar + t));
            STORE(ar + t, a0);
            if (A->skip)
                STORE(hr + t, ADD(LOAD(hr + t), a0));
        }
    }
}
#endif

/* the kernels for one G: frames [t0, t1) in chunks of FV W frames, then of W */
#define TM_KERNELS(G)                                                                              \
    TM_ATTR static void TM_CAT(PFX, TM_CAT(conv_u, G))(const tm_layer_args *A, int t0, int t1,     \
                                                       int o0)                                     \
    {                                                                                              \
        int t = t0;                                                                                \
        if (TM_FV(G, 0) > 1)                                                                       \
            for (; t + TM_FV(G, 0) * W <= t1; t += TM_FV(G, 0) * W)                                \
                TM_CAT(PFX, conv_body)(A, t, o0, G, TM_FV(G, 0), 0, 0);                            \
        for (; t < t1; t += W)                                                                     \
            TM_CAT(PFX, conv_body)(A, t, o0, G, 1, 0, 0);                                          \
    }                                                                                              \
    TM_ATTR static void TM_CAT(PFX, TM_CAT(mm_, G))(const tm_mm_args *M, int t0, int t1, int o0)   \
    {                                                                                              \
        int t = t0;                                                                                \
        if (TM_FV(G, 0) > 1)                                                                       \
            for (; t + TM_FV(G, 0) * W <= t1; t += TM_FV(G, 0) * W)                                \
                TM_CAT(PFX, mm_body)(M, t, o0, G, TM_FV(G, 0));                                    \
        for (; t < t1; t += W)                                                                     \
            TM_CAT(PFX, mm_body)(M, t, o0, G, 1);                                                  \
    }
#define TM_GATED(G)                                                                                \
    TM_ATTR static void TM_CAT(PFX, TM_CAT(conv_g, G))(const tm_layer_args *A, int t0, int t1,     \
                                                       int o0)                                     \
    {                                                                                              \
        int t = t0;                                                                                \
        if (TM_FV(G, 1) > 1)                                                                       \
            for (; t + TM_FV(G, 1) * W <= t1; t += TM_FV(G, 1) * W)                                \
                TM_CAT(PFX, conv_body)(A, t, o0, G, TM_FV(G, 1), 1, 0);                            \
        for (; t < t1; t += W)                                                                     \
            TM_CAT(PFX, conv_body)(A, t, o0, G, 1, 1, 0);                                          \
    }

/* the conv of the second of two groups of G (C = 2G) with the 1x1 fused: the first group's
 * conv_u stores its a rows, this one keeps its own a in registers */
#define TM_HALF(G)                                                                                 \
    TM_ATTR static void TM_CAT(PFX, TM_CAT(conv_h, G))(const tm_layer_args *A, int t0, int t1,     \
                                                       int o0)                                     \
    {                                                                                              \
        int t = t0;                                                                                \
        (void)o0; /* G */                                                                          \
        if (TM_FV(G, 0) > 1)                                                                       \
            for (; t + TM_FV(G, 0) * W <= t1; t += TM_FV(G, 0) * W)                                \
                TM_CAT(PFX, half_body)(A, t, G, TM_FV(G, 0));                                      \
        for (; t < t1; t += W)                                                                     \
            TM_CAT(PFX, half_body)(A, t, G, 1);                                                    \
    }

/* the conv with the 1x1 fused (TM_FUSE1 sets only: x86, where it was measured) */
#define TM_FUSED1(G)                                                                               \
    TM_ATTR static void TM_CAT(PFX, TM_CAT(conv_f, G))(const tm_layer_args *A, int t0, int t1,     \
                                                       int o0)                                     \
    {                                                                                              \
        int t = t0;                                                                                \
        if (TM_FV(G, 0) > 1)                                                                       \
            for (; t + TM_FV(G, 0) * W <= t1; t += TM_FV(G, 0) * W)                                \
                TM_CAT(PFX, conv_body)(A, t, o0, G, TM_FV(G, 0), 0, 1);                            \
        for (; t < t1; t += W)                                                                     \
            TM_CAT(PFX, conv_body)(A, t, o0, G, 1, 0, 1);                                          \
    }

TM_KERNELS(1)
TM_KERNELS(2)
TM_KERNELS(3)
TM_KERNELS(4)
TM_KERNELS(5)
TM_KERNELS(6)
TM_KERNELS(7)
TM_KERNELS(8)
TM_KERNELS(10)
TM_KERNELS(12)
TM_GATED(1)
TM_GATED(2)
TM_GATED(3)
TM_GATED(4)
TM_GATED(5)
TM_GATED(6)
#if ACCB >= 24
TM_KERNELS(16)
TM_KERNELS(20)
TM_KERNELS(24)
TM_GATED(7)
TM_GATED(8)
TM_GATED(10)
TM_GATED(12)
#endif
#ifdef TM_FUSE1
TM_FUSED1(2)
TM_FUSED1(4)
TM_FUSED1(6)
TM_HALF(4)
#if ACCB >= 24
TM_FUSED1(8)
TM_FUSED1(10)
TM_FUSED1(12)
TM_HALF(8)
TM_HALF(10)
#endif
#endif

/* the kernel set, indexed by G (NULL where there is none) */
static const tm_kernels TM_CAT(PFX, kernels) = {
    .acc = ACCB,
    .lanes = W,
#ifdef TM_DEFER_TANH
    .tanh_rows = TM_CAT(PFX, tanh_rows),
#endif
    .conv_u =
        {NULL, TM_CAT(PFX, conv_u1), TM_CAT(PFX, conv_u2), TM_CAT(PFX, conv_u3),
         TM_CAT(PFX, conv_u4), TM_CAT(PFX, conv_u5), TM_CAT(PFX, conv_u6), TM_CAT(PFX, conv_u7),
         TM_CAT(PFX, conv_u8), NULL, TM_CAT(PFX, conv_u10), NULL, TM_CAT(PFX, conv_u12),
#if ACCB >= 24
         [16] = TM_CAT(PFX, conv_u16), [20] = TM_CAT(PFX, conv_u20), [24] = TM_CAT(PFX, conv_u24)
#endif
        },
    .conv_g = {NULL, TM_CAT(PFX, conv_g1), TM_CAT(PFX, conv_g2), TM_CAT(PFX, conv_g3),
               TM_CAT(PFX, conv_g4), TM_CAT(PFX, conv_g5), TM_CAT(PFX, conv_g6),
#if ACCB >= 24
               TM_CAT(PFX, conv_g7),
               TM_CAT(PFX, conv_g8), [10] = TM_CAT(PFX, conv_g10), [12] = TM_CAT(PFX, conv_g12)
#endif
    },
#ifdef TM_FUSE1
    .conv_f = {[2] = TM_CAT(PFX, conv_f2),
               [4] = TM_CAT(PFX, conv_f4),
               [6] = TM_CAT(PFX, conv_f6),
#if ACCB >= 24
               [8] = TM_CAT(PFX, conv_f8),
               [10] = TM_CAT(PFX, conv_f10),
               [12] = TM_CAT(PFX, conv_f12)
#endif
    },
    .conv_h = {[4] = TM_CAT(PFX, conv_h4),
#if ACCB >= 24
               [8] = TM_CAT(PFX, conv_h8),
               [10] = TM_CAT(PFX, conv_h10)
#endif
    },
#endif
    .mm = {NULL, TM_CAT(PFX, mm_1), TM_CAT(PFX, mm_2), TM_CAT(PFX, mm_3), TM_CAT(PFX, mm_4),
           TM_CAT(PFX, mm_5), TM_CAT(PFX, mm_6), TM_CAT(PFX, mm_7), TM_CAT(PFX, mm_8), NULL,
           TM_CAT(PFX, mm_10), NULL, TM_CAT(PFX, mm_12),
#if ACCB >= 24
           [16] = TM_CAT(PFX, mm_16), [20] = TM_CAT(PFX, mm_20), [24] = TM_CAT(PFX, mm_24)
#endif
    },
};

#undef TM_KERNELS
#undef TM_GATED
#undef TM_FUSED1
#undef TM_GH
#undef TM_GHF
#undef TM_GHH
#undef TM_GHHF
#undef TM_HALF
#undef TM_FV
#undef TM_ACCS
#undef TM_CAT
#undef TM_CAT2
