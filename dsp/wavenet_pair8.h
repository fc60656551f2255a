/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The fused WaveNet layer for 8 channels on AVX-512, included by wavenet.c once.
 *
 * A frame of 8 channels fills half a zmm, so the conv and the 1x1 run on input channel pairs:
 * each FMA takes a pair (x[c], x[c+1]) broadcast to the 8 lane pairs (a 64-bit broadcast, a load
 * with no shuffle) times a weight vector whose lane 2o + q holds W[c + q][o]. A frame's
 * accumulator then holds each output's sum over the even inputs and over the odd ones side by
 * side; one permute pair folds two frames' accumulators into one vector of both frames' sums
 * (frame u in lanes 0-7, u + 1 in lanes 8-15), on which the activation, the head and the
 * residual run 16 lanes at a time. Half the FMAs of the 8-lane kernel, with every lane used.
 * The 1x1 takes a's pairs by a permute of those vectors (P8_A), not through memory.
 *
 * Layers that are not gated take it; gated ones (16 sums a frame) keep the 8-lane kernel.
 * Weights, repacked at load (fused_args):
 *   Wcp  [K][4][16]  lane 2o + q of row (j, p): Wc[j][2p + q][o]
 *   W1p  [4][16]     lane 2o + q of row p: W1[2p + q][o]
 *   bmp  [48]        the bias in the even lanes (odd lanes 0), the mixin likewise, then b1 twice
 */

__attribute__((target("avx512f"), always_inline)) static inline __m512 p8_pair(const float *p)
{
    double d;
    memcpy(&d, p, sizeof d);
    return _mm512_castpd_ps(_mm512_set1_pd(d));
}

/* frame u's pair sums folded into lanes 0-7, frame v's into lanes 8-15 */
__attribute__((target("avx512f"), always_inline)) static inline __m512 p8_fold(__m512 u, __m512 v)
{
    const __m512i ie = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i io = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
    return _mm512_add_ps(_mm512_permutex2var_ps(u, ie, v), _mm512_permutex2var_ps(u, io, v));
}

/* frame u's pair p of a, (a[2p], a[2p + 1]) in every lane pair, permuted from the register that
 * holds frames u and u + 1 (z[u / 2]): a store and a load forwarded from it took longer */
#define P8_A(u, p)                                                                                 \
    _mm512_permutexvar_ps(_mm512_set1_epi64(((long long)((u) % 2 * 8 + 2 * (p) + 1) << 32) |       \
                                            ((u) % 2 * 8 + 2 * (p))),                              \
                          z[(u) / 2])

/* TT frames from t0 (TT a compile-time constant of each inlined copy: 8, 2 or 1) */
__attribute__((target("avx512f"), always_inline)) static inline void p8_tile(const fused_args *A,
                                                                             int t0, const int TT)
{
    const int K = A->K;
    const size_t ts = (size_t)A->d * 8;
    /* independent sums a frame: enough chains in flight for the FMA latency */
    const int NCH = TT >= 8 ? 1 : TT >= 2 ? 2 : 4;
    const int N1 = TT >= 8 ? 1 : 2;
    const int NP = (TT + 1) / 2; /* vectors of two frames */
    float tile[8 * 8] __attribute__((aligned(64)));
    __m512 acc[8][4];

    /* bias and mixin, in the even lanes */
    const __m512 bm = _mm512_loadu_ps(A->bmp), wm = _mm512_loadu_ps(A->bmp + 16);
#pragma GCC unroll 8
    for (int u = 0; u < TT; u++) {
        acc[u][0] = _mm512_fmadd_ps(_mm512_set1_ps(A->cond[t0 + u]), wm, bm);
#pragma GCC unroll 4
        for (int i = 1; i < NCH; i++)
            acc[u][i] = _mm512_setzero_ps();
    }

    /* the dilated conv, on input pairs; the block's own frames (tap K-1) last */
    const float *x0 = A->hwin + (size_t)t0 * 8;
    for (int j = 0; j < K; j++) {
        const float *xr = x0 + (size_t)j * ts;
        const float *wr = A->Wcp + (size_t)j * 64;
#pragma GCC unroll 4
        for (int p = 0; p < 4; p++) {
            const __m512 w = _mm512_loadu_ps(wr + p * 16);
#pragma GCC unroll 8
            for (int u = 0; u < TT; u++)
                acc[u][p % NCH] = _mm512_fmadd_ps(p8_pair(xr + u * 8 + 2 * p), w, acc[u][p % NCH]);
        }
    }
#pragma GCC unroll 8
    for (int u = 0; u < TT; u++) {
        if (NCH == 4)
            acc[u][0] = _mm512_add_ps(_mm512_add_ps(acc[u][0], acc[u][1]),
                                      _mm512_add_ps(acc[u][2], acc[u][3]));
        else if (NCH == 2)
            acc[u][0] = _mm512_add_ps(acc[u][0], acc[u][1]);
    }
    __m512 z[4];
#pragma GCC unroll 4
    for (int q = 0; q < NP; q++)
        z[q] = p8_fold(acc[2 * q][0], 2 * q + 1 < TT ? acc[2 * q + 1][0] : acc[2 * q][0]);

    /* the activation */
    if (A->act_kind == FUSED_TANH) {
#pragma GCC unroll 4
        for (int q = 0; q < NP; q++)
            z[q] = tanh16(z[q]);
    } else {
#pragma GCC unroll 4
        for (int q = 0; q < NP; q++)
            _mm512_store_ps(tile + q * 16, z[q]);
        A->act_tile(A->act, tile, TT, 8, 8);
#pragma GCC unroll 4
        for (int q = 0; q < NP; q++)
            z[q] = _mm512_load_ps(tile + q * 16);
    }

    /* head += a */
    if (A->skip) {
        float *hd = A->head + (size_t)t0 * 8;
#pragma GCC unroll 4
        for (int q = 0; q < NP; q++) {
            if (2 * q + 1 < TT)
                _mm512_storeu_ps(hd + q * 16, _mm512_add_ps(_mm512_loadu_ps(hd + q * 16), z[q]));
            else /* a lone frame: 8 lanes (unmasked, so a later load of it is forwarded) */
                _mm256_storeu_ps(hd + q * 16, _mm256_add_ps(_mm256_loadu_ps(hd + q * 16),
                                                            _mm512_castps512_ps256(z[q])));
        }
    }
    if (A->out == NULL)
        return;

    /* out = h + b1 + W1 a, on pairs of a */
    __m512 r[8][2];
#pragma GCC unroll 8
    for (int u = 0; u < TT; u++)
#pragma GCC unroll 2
        for (int i = 0; i < N1; i++)
            r[u][i] = _mm512_setzero_ps();
#pragma GCC unroll 4
    for (int p = 0; p < 4; p++) {
        const __m512 w = _mm512_loadu_ps(A->W1p + p * 16);
#pragma GCC unroll 8
        for (int u = 0; u < TT; u++)
            r[u][p % N1] = _mm512_fmadd_ps(P8_A(u, p), w, r[u][p % N1]);
    }
    if (N1 == 2)
#pragma GCC unroll 8
        for (int u = 0; u < TT; u++)
            r[u][0] = _mm512_add_ps(r[u][0], r[u][1]);
    const __m512 b1 = _mm512_loadu_ps(A->bmp + 32);
    const float *hc = A->hcur + (size_t)t0 * 8;
    float *o = A->out + (size_t)t0 * 8;
#pragma GCC unroll 4
    for (int q = 0; q < NP; q++) {
        __m512 y =
            _mm512_add_ps(p8_fold(r[2 * q][0], 2 * q + 1 < TT ? r[2 * q + 1][0] : r[2 * q][0]), b1);
        if (2 * q + 1 < TT) {
            if (A->residual)
                y = _mm512_add_ps(y, _mm512_loadu_ps(hc + q * 16));
            _mm512_storeu_ps(o + q * 16, y);
        } else { /* a lone frame: the next layer reads it at once, forwarded from this store */
            __m256 y8 = _mm512_castps512_ps256(y);
            if (A->residual)
                y8 = _mm256_add_ps(y8, _mm256_loadu_ps(hc + q * 16));
            _mm256_storeu_ps(o + q * 16, y8);
        }
    }
}
#undef P8_A

__attribute__((target("avx512f"))) static void fused8p(const fused_args *A, int n)
{
    /* gated layers; and one frame, where the wait on the previous layer dominates, measured
     * no faster on pairs (the fold adds to the chain) */
    if (A->gating != CVD_WN_GATING_NONE || n == 1) {
        fused8(A, n);
        return;
    }
    int t0 = 0;
    for (; t0 + 8 <= n; t0 += 8)
        p8_tile(A, t0, 8);
    for (; t0 + 2 <= n; t0 += 2)
        p8_tile(A, t0, 2);
    if (t0 < n)
        p8_tile(A, t0, 1);
}
