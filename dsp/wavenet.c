/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A whole Neural Amp Modeler WaveNet (../shared/NAM_FORMAT.md) as one streaming object.
 *
 * Per layer array, per block of n frames:
 *   h0 = rechannel(x)                          written straight into layer 0's history
 *   layer l: z = conv_K,d(h_l) + bias + mixin(c)    one tile kernel over the history
 *            a = act(z) | act(z1) sec(z2) | blend
 *            head += a
 *            h_{l+1} = h_l + W1 a + b1         written straight into layer l+1's history
 *   head_out = Wh head + bh                    (array i > 0 starts head from array i-1's)
 * Output: the last head_out times the head scale (the last weight of the file).
 *
 * Each history is a linear buffer with room for a chunk of frames after the (K-1)d the conv
 * needs; when full, that tail moves to the front. Weights are repacked at load into the
 * tap-major [k][in][out] layout the tile kernels read.
 *
 * Long because: the kernels are instantiated here once per ISA (AVX-512,
 * AVX2, the portable vectors) from the template wavenet_tm.h, as static functions the object's
 * create and process pick between, so the compiler inlines them into this translation unit;
 * splitting the object from its kernels would export every instance across files.
 */
#include "graph_internal.h"
#include "simd.h"
#include "vmath.h"
#include "vmath_x86.h"
#include "vmath_vec.h"

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- the fused layer kernel ------------------------------------------------------------- */

enum { FUSED_OTHER = 0, FUSED_TANH, FUSED_SIGMOID };

typedef struct fused_args {
    int C, Z, K, d, gating, act_kind, sec_kind, skip, residual;
    unsigned lanes; /* the low C bits set: the masked kernel's lanes */
    const cvd_wn_activation *act, *sec;
    void (*act_tile)(const cvd_wn_activation *, float *, int, int, int);
    const float *hwin; /* the (K-1)d frames before the block, then the block */
    const float *hcur; /* the block's own frames of h */
    const float *cond, *Wc, *bc, *Wm, *W1, *b1;
    const float *Wcp, *W1p, *bmp; /* the pair kernel's weights (wavenet_pair8.h), or NULL */
    float *head;
    float *out; /* h of the next layer, or NULL when nothing reads it */
} fused_args;

typedef void (*fused_fn)(const fused_args *, int);
/* a layer array's layers (fused_args stride bytes apart) as a wavefront (wavenet_fused.h) */
typedef void (*wave_fn)(const fused_args *, size_t, int, int);

static void wn_act(const cvd_wn_activation *a, float *x, int n, int C, int stride);

#ifdef CVD_VMATH_X86
/* AVX-512: 16 lanes; 16 channels, and fewer with loads and stores masked to C lanes */
#define TARGET "avx512f"
#define VEC __m512
#define W 16
#define NV 1
#define NTILE 8
#define GTILE 8
#define SPLIT 1
#define SET1 _mm512_set1_ps
#define ULOAD _mm512_loadu_ps
#define USTORE _mm512_storeu_ps
#define FMA _mm512_fmadd_ps
#define ADD _mm512_add_ps
#define MUL _mm512_mul_ps
#define SUB _mm512_sub_ps
#define TANHV tanh16
#define SIGV sigmoid16
#define FN fused16
#define CH 16
#define LOAD _mm512_loadu_ps
#define STORE _mm512_storeu_ps
#define WAVE 4
#include "wavenet_fused.h"
#undef WAVE
#undef FN
#undef CH
#undef LOAD
#undef STORE
#define FN fused16m
#define CH (A->C)
#define LOAD(p) _mm512_maskz_loadu_ps((__mmask16)A->lanes, (p))
#define STORE(p, v) _mm512_mask_storeu_ps((p), (__mmask16)A->lanes, (v))
#include "wavenet_fused.h"
#undef FN
#undef CH
#undef LOAD
#undef STORE
#undef TARGET
#undef VEC
#undef W
#undef NV
#undef NTILE
#undef GTILE
#undef SPLIT
#undef SET1
#undef ULOAD
#undef USTORE
#undef FMA
#undef ADD
#undef MUL
#undef SUB
#undef TANHV
#undef SIGV

/* AVX2: 8 lanes, 8 channels */
#define TARGET "avx2,fma"
#define VEC __m256
#define W 8
#define NV 1
#define NTILE 8
#define GTILE 4
#define SPLIT 0
#define SET1 _mm256_set1_ps
#define ULOAD _mm256_loadu_ps
#define USTORE _mm256_storeu_ps
#define FMA _mm256_fmadd_ps
#define ADD _mm256_add_ps
#define MUL _mm256_mul_ps
#define SUB _mm256_sub_ps
#define TANHV tanh8
#define SIGV sigmoid8
#define FN fused8
#define CH 8
#define LOAD _mm256_loadu_ps
#define STORE _mm256_storeu_ps
#include "wavenet_fused.h"
#undef FN
#undef CH
/* 16 channels as two vectors a frame: tiles of 4 frames (2 gated) fill the 16 registers */
#undef NV
#undef NTILE
#undef GTILE
#define FN fused16x2
#define CH 16
#define NV 2
#define NTILE 4
#define GTILE 2
#include "wavenet_fused.h"
#undef FN
#undef CH
#undef LOAD
#undef STORE
#undef TARGET
#undef VEC
#undef W
#undef NV
#undef NTILE
#undef GTILE
#undef SPLIT
#undef SET1
#undef ULOAD
#undef USTORE
#undef FMA
#undef ADD
#undef MUL
#undef SUB
#undef TANHV
#undef SIGV

#include "wavenet_pair8.h"

/* y[t][f] = (b[f] +) sum_c x[t][c] W[c][f] for the frame kernels' rechannel and head: the same
 * FMA chain a lane as cvd_gemm_avx2 and cvd_gemm_avx512 (from 0, input channels in order),
 * with the bias added in the register instead of a scalar pass, and no call through the general
 * gemm: at blocks of 1 and 8 its set-up cost more than its arithmetic. Eight frames at a time
 * (eight chains in flight: one frame's chain of Cin FMAs waits on itself). F a multiple of 8,
 * or 1 (scalar chains); b may be NULL. */
__attribute__((target("avx2,fma"))) static void small_mm(const float *x, int Cin, const float *Wt,
                                                         int F, int n, const float *b, float *y)
{
    int t = 0;
    if (F == 1 && Cin % 8 == 0) {
        /* eight frames a ymm, lane u = frame u: each block of 8 input channels transposed
         * (8x8), then one chain of FMAs over the channels in order, each lane the scalar
         * chain below */
        for (; t + 8 <= n; t += 8) {
            const float *xt = x + (size_t)t * Cin;
            __m256 acc = _mm256_setzero_ps();
            for (int c = 0; c < Cin; c += 8) {
                __m256 r[8], q[8];
#pragma GCC unroll 8
                for (int u = 0; u < 8; u++)
                    r[u] = _mm256_loadu_ps(xt + (size_t)u * Cin + c);
#pragma GCC unroll 4
                for (int u = 0; u < 8; u += 2) {
                    q[u] = _mm256_unpacklo_ps(r[u], r[u + 1]);
                    q[u + 1] = _mm256_unpackhi_ps(r[u], r[u + 1]);
                }
                /* r[4k + j]: channels j and j + 4 of frames 4k..4k + 3 in its two halves */
                r[0] = _mm256_shuffle_ps(q[0], q[2], _MM_SHUFFLE(1, 0, 1, 0));
                r[1] = _mm256_shuffle_ps(q[0], q[2], _MM_SHUFFLE(3, 2, 3, 2));
                r[2] = _mm256_shuffle_ps(q[1], q[3], _MM_SHUFFLE(1, 0, 1, 0));
                r[3] = _mm256_shuffle_ps(q[1], q[3], _MM_SHUFFLE(3, 2, 3, 2));
                r[4] = _mm256_shuffle_ps(q[4], q[6], _MM_SHUFFLE(1, 0, 1, 0));
                r[5] = _mm256_shuffle_ps(q[4], q[6], _MM_SHUFFLE(3, 2, 3, 2));
                r[6] = _mm256_shuffle_ps(q[5], q[7], _MM_SHUFFLE(1, 0, 1, 0));
                r[7] = _mm256_shuffle_ps(q[5], q[7], _MM_SHUFFLE(3, 2, 3, 2));
#pragma GCC unroll 4
                for (int j = 0; j < 4; j++) /* channel c + j of the 8 frames */
                    acc = _mm256_fmadd_ps(_mm256_permute2f128_ps(r[j], r[4 + j], 0x20),
                                          _mm256_broadcast_ss(Wt + c + j), acc);
#pragma GCC unroll 4
                for (int j = 0; j < 4; j++) /* channel c + 4 + j */
                    acc = _mm256_fmadd_ps(_mm256_permute2f128_ps(r[j], r[4 + j], 0x31),
                                          _mm256_broadcast_ss(Wt + c + 4 + j), acc);
            }
            if (b)
                acc = _mm256_add_ps(acc, _mm256_broadcast_ss(b));
            _mm256_storeu_ps(y + t, acc);
        }
    }
    if (F == 1) {
        for (; t + 8 <= n; t += 8) {
            const float *xt = x + (size_t)t * Cin;
            __m128 acc[8];
#pragma GCC unroll 8
            for (int u = 0; u < 8; u++)
                acc[u] = _mm_setzero_ps();
            for (int c = 0; c < Cin; c++) {
                const __m128 w = _mm_load_ss(Wt + c);
#pragma GCC unroll 8
                for (int u = 0; u < 8; u++)
                    acc[u] = _mm_fmadd_ss(_mm_load_ss(xt + (size_t)u * Cin + c), w, acc[u]);
            }
#pragma GCC unroll 8
            for (int u = 0; u < 8; u++) {
                if (b)
                    acc[u] = _mm_add_ss(acc[u], _mm_load_ss(b));
                _mm_store_ss(y + t + u, acc[u]);
            }
        }
        for (; t < n; t++) {
            const float *xt = x + (size_t)t * Cin;
            __m128 acc = _mm_setzero_ps();
            for (int c = 0; c < Cin; c++)
                acc = _mm_fmadd_ss(_mm_load_ss(xt + c), _mm_load_ss(Wt + c), acc);
            if (b)
                acc = _mm_add_ss(acc, _mm_load_ss(b));
            _mm_store_ss(y + t, acc);
        }
        return;
    }
    for (; t + 8 <= n; t += 8) {
        const float *xt = x + (size_t)t * Cin;
        float *yt = y + (size_t)t * F;
        for (int f = 0; f < F; f += 8) {
            __m256 acc[8];
#pragma GCC unroll 8
            for (int u = 0; u < 8; u++)
                acc[u] = _mm256_setzero_ps();
            for (int c = 0; c < Cin; c++) {
                const __m256 w = _mm256_loadu_ps(Wt + (size_t)c * F + f);
#pragma GCC unroll 8
                for (int u = 0; u < 8; u++)
                    acc[u] =
                        _mm256_fmadd_ps(_mm256_broadcast_ss(xt + (size_t)u * Cin + c), w, acc[u]);
            }
#pragma GCC unroll 8
            for (int u = 0; u < 8; u++) {
                if (b)
                    acc[u] = _mm256_add_ps(acc[u], _mm256_loadu_ps(b + f));
                _mm256_storeu_ps(yt + (size_t)u * F + f, acc[u]);
            }
        }
    }
    for (; t < n; t++) {
        const float *xt = x + (size_t)t * Cin;
        float *yt = y + (size_t)t * F;
        for (int f = 0; f < F; f += 8) {
            __m256 acc = _mm256_setzero_ps();
            for (int c = 0; c < Cin; c++)
                acc = _mm256_fmadd_ps(_mm256_broadcast_ss(xt + c),
                                      _mm256_loadu_ps(Wt + (size_t)c * F + f), acc);
            if (b)
                acc = _mm256_add_ps(acc, _mm256_loadu_ps(b + f));
            _mm256_storeu_ps(yt + f, acc);
        }
    }
}

/* small_mm for F = 8 on AVX-512: two frames a zmm (frame t in lanes 0-7, t + 1 in 8-15), so
 * eight frames take four FMAs an input channel instead of eight; each lane's chain is
 * small_mm's (from 0, input channels in order, then the bias), so the same bits */
__attribute__((target("avx512f"))) static void
small_mm8_512(const float *x, int Cin, const float *Wt, int n, const float *b, float *y)
{
    int t = 0;
    const __m512 bv =
        b ? _mm512_castpd_ps(_mm512_broadcast_f64x4(_mm256_castps_pd(_mm256_loadu_ps(b))))
          : _mm512_setzero_ps();
    for (; t + 8 <= n; t += 8) {
        const float *xt = x + (size_t)t * Cin;
        __m512 acc[4];
#pragma GCC unroll 4
        for (int u = 0; u < 4; u++)
            acc[u] = _mm512_setzero_ps();
        for (int c = 0; c < Cin; c++) {
            const __m512 w = _mm512_castpd_ps(
                _mm512_broadcast_f64x4(_mm256_castps_pd(_mm256_loadu_ps(Wt + (size_t)c * 8))));
#pragma GCC unroll 4
            for (int u = 0; u < 4; u++) {
                const float *x0 = xt + (size_t)(2 * u) * Cin + c;
                const __m512 xv = _mm512_mask_broadcastss_ps(_mm512_set1_ps(x0[0]), 0xff00,
                                                             _mm_load_ss(x0 + Cin));
                acc[u] = _mm512_fmadd_ps(xv, w, acc[u]);
            }
        }
#pragma GCC unroll 4
        for (int u = 0; u < 4; u++) {
            if (b)
                acc[u] = _mm512_add_ps(acc[u], bv);
            _mm512_storeu_ps(y + (size_t)(t + 2 * u) * 8, acc[u]);
        }
    }
    if (t < n)
        small_mm(x + (size_t)t * Cin, Cin, Wt, 8, n - t, b, y + (size_t)t * 8);
}

/* small_mm, or its AVX-512 form where it has one */
static inline void small_mm_any(int avx512, const float *x, int Cin, const float *Wt, int F, int n,
                                const float *b, float *y)
{
    if (avx512 && F == 8 && n >= 8)
        small_mm8_512(x, Cin, Wt, n, b, y);
    else
        small_mm(x, Cin, Wt, F, n, b, y);
}

/* whether small_mm computes what `g` does for F outputs */
static int small_mm_for(cvd_gemm_fn g, int F)
{
    if (F % 8 == 0)
        return g == cvd_gemm_avx2 || g == cvd_gemm_avx512;
    /* F = 1: the AVX2 gemm's masked lane is the AVX-512 gemm's chain (kernels.c) */
    return F == 1 && (g == cvd_gemm_avx2 || g == cvd_gemm_avx512);
}
#endif

/* ---- the kernels on channel rows (wavenet_tm.h) ----------------------------------------- */

enum {
    TM_MAXG = 24,  /* the most output channels a kernel computes at once */
    TM_PAD = 64,   /* floats after each row: the last vector of a block may run into them */
    TM_TILE = 128, /* frames a layer computes before the next layer: its a rows stay in cache */
    TM_ROOM = 4096 /* floats of a layer's history rows beyond what it keeps, at least */
};

typedef struct tm_layer_args {
    int C, K, d, gating, act_kind, sec_kind, skip, ncond;
    int defer; /* conv_u stores z in the a rows: tanh and head += a left to tanh_rows */
    const cvd_wn_activation *act, *sec;
    void (*act_rows)(const cvd_wn_activation *, float *, int, int, size_t, int);
    const float *h; /* row 0 of the layer's input history, at the tile's first frame */
    size_t hs;      /* history row stride */
    const float *cond;
    size_t cs;
    const float *Wc, *bc, *Wm; /* [K][C][Z], [Z], [ncond][Z] */
    float *a;                  /* the activations' rows */
    size_t as;
    float *head;
    size_t hds;
    float *zs;                  /* scratch for activations applied outside the kernel */
    const struct tm_mm_args *r; /* the fused 1x1 (conv_f kernels): h_{l+1} = h_l + W1 a + b1 */
} tm_layer_args;

/* y[o][t] = b[o] + res[o][t] + sum_c W[c][o] x[c][t], o < F (b and res may be NULL) */
typedef struct tm_mm_args {
    int Cin, F;
    const float *x;
    size_t xs;
    const float *Wt, *b, *res;
    size_t rs;
    float *y;
    size_t ys;
} tm_mm_args;

typedef void (*tm_conv_fn)(const tm_layer_args *, int, int, int);
typedef void (*tm_mm_fn)(const tm_mm_args *, int, int, int);

/* one ISA's kernels, indexed by how many output channels (or gated pairs) they compute */
typedef struct tm_kernels {
    int acc, lanes;
    tm_conv_fn conv_u[TM_MAXG + 1], conv_g[TM_MAXG / 2 + 1];
    tm_conv_fn conv_f[TM_MAXG / 2 + 1]; /* conv_u with the 1x1 fused, where G = C */
    tm_conv_fn conv_h[TM_MAXG / 2 + 1]; /* the second of two groups, 1x1 fused: C = 2G */
    tm_mm_fn mm[TM_MAXG + 1];
    /* a = tanh(z) and head += a over the a rows conv_u stored (defer), or NULL where the
     * kernels keep the tanh in registers */
    void (*tanh_rows)(const tm_layer_args *, int);
} tm_kernels;

#ifdef CVD_VMATH_X86
#define PFX tm512_
#define TM_ATTR __attribute__((target("avx512f")))
#define VEC __m512
#define W 16
#define ACCB 24
#define TM_REGS 32
#define TM_FUSE1 1
#define LOAD _mm512_loadu_ps
#define STORE _mm512_storeu_ps
#define SET1 _mm512_set1_ps
#define FMA _mm512_fmadd_ps
#define ADD _mm512_add_ps
#define MUL _mm512_mul_ps
#define SUB _mm512_sub_ps
#define TANHV tanh16
#define SIGV sigmoid16
#include "wavenet_tm.h"
#undef PFX
#undef TM_ATTR
#undef VEC
#undef W
#undef ACCB
#undef TM_REGS
#undef TM_FUSE1
#undef LOAD
#undef STORE
#undef SET1
#undef FMA
#undef ADD
#undef MUL
#undef SUB
#undef TANHV
#undef SIGV

#define PFX tm256_
#define TM_ATTR __attribute__((target("avx2,fma")))
#define VEC __m256
#define W 8
#define ACCB 12
#define TM_REGS 16
#define TM_FUSE1 1
#define TM_DEFER_TANH 1
#define LOAD _mm256_loadu_ps
#define STORE _mm256_storeu_ps
#define SET1 _mm256_set1_ps
#define FMA _mm256_fmadd_ps
#define ADD _mm256_add_ps
#define MUL _mm256_mul_ps
#define SUB _mm256_sub_ps
#define TANHV tanh8
#define SIGV sigmoid8
#include "wavenet_tm.h"
#undef PFX
#undef TM_ATTR
#undef VEC
#undef W
#undef ACCB
#undef TM_REGS
#undef TM_FUSE1
#undef TM_DEFER_TANH
#undef LOAD
#undef STORE
#undef SET1
#undef FMA
#undef ADD
#undef MUL
#undef SUB
#undef TANHV
#undef SIGV
#endif

/* portable: 4-lane vector extensions (SSE2 on x86-64, NEON on aarch64) */
#define PFX tm4_
#define TM_ATTR
#define VEC cvd_v4f
#define W 4
#if defined(__aarch64__)
#define ACCB 24 /* 32 vector registers */
#define TM_REGS 32
#else
#define ACCB 12
#define TM_REGS 16
#endif
#define LOAD v4_load
#define STORE v4_store
#define SET1 v4_set1
#define FMA(a, b, c) ((a) * (b) + (c))
#define ADD(a, b) ((a) + (b))
#define MUL(a, b) ((a) * (b))
#define SUB(a, b) ((a) - (b))
#define TANHV v4_tanh
#define SIGV v4_sigmoid
#include "wavenet_tm.h"
#undef PFX
#undef TM_ATTR
#undef VEC
#undef W
#undef ACCB
#undef TM_REGS
#undef TM_FUSE1
#undef LOAD
#undef STORE
#undef SET1
#undef FMA
#undef ADD
#undef MUL
#undef SUB
#undef TANHV
#undef SIGV

static const tm_kernels *tm_kernels_for(cvd_isa isa)
{
#ifdef CVD_VMATH_X86
    if (isa >= CVD_ISA_AVX512)
        return &tm512_kernels;
    if (isa >= CVD_ISA_AVX2)
        return &tm256_kernels;
#endif
    (void)isa;
    return &tm4_kernels;
}

static double array_macs(const cvd_wn_array *a);

/* Whether a fused frame kernel (wavenet_fused.h, wavenet_pair8.h) with full vectors takes an
 * array of C channels: 8 or 16 (the masked AVX-512 kernel for 9-15 is slower than the rows
 * from blocks of 8) */
static int wn_frames_full(cvd_isa isa, int C, int cond)
{
#ifdef CVD_VMATH_X86
    if (cond == 1 && isa >= CVD_ISA_AVX2)
        return C == 8 || C == 16;
#endif
    (void)isa;
    (void)C;
    (void)cond;
    return 0;
}

/* Whether the kernels on rows run the model at blocks of max_block: from 16 frames; from 8
 * where most of the work is in arrays no full-vector fused frame kernel takes (same run,
 * block 8, fraction of the ISA's peak, rows vs frames: AVX2 lite 12/6 0.33 vs 0.09, 20/10
 * 0.46 vs 0.11, nano 0.15 vs 0.02; AVX-512 lite 0.21 vs 0.16, nano 0.06 vs 0.02, 20/10 0.22
 * vs 0.22; the standard 16/8 stays on frames: AVX-512 0.44 vs 0.19, AVX2 0.52 vs 0.34) */
static int wn_use_rows(const cvd_wn_config *cfg, int max_block, cvd_isa isa)
{
    if (max_block >= 16)
        return 1;
    if (max_block < 8 || isa < CVD_ISA_AVX2) /* portable: measured no faster on rows */
        return 0;
    double all = 0, unfused = 0;
    for (int i = 0; i < cfg->n_arrays; i++) {
        const double m = array_macs(&cfg->arrays[i]);
        all += m;
        if (!wn_frames_full(isa, cfg->arrays[i].channels, cfg->arrays[i].condition_size))
            unfused += m;
    }
    return unfused > 0.5 * all;
}

static int fused_kind(const cvd_wn_activation *a)
{
    if (a->kind != CVD_WN_KERAS)
        return FUSED_OTHER;
    return a->keras == CVD_ACT_TANH      ? FUSED_TANH
           : a->keras == CVD_ACT_SIGMOID ? FUSED_SIGMOID
                                         : FUSED_OTHER;
}

typedef struct wn_layer {
    const cvd_wn_layer *cfg;
    int K, d, Z;
    float *Wc;              /* [K][C][Z] */
    float *bc;              /* [Z] */
    float *Wm;              /* [cond][Z] */
    float *W1;              /* [C][C]: [in][out] */
    float *b1;              /* [C] */
    float *Wcp, *W1p, *bmp; /* the pair kernel's repacking of Wc, W1 and the biases, or NULL */
    fused_args fa;   /* the fused kernel's arguments, built at create: a call sets its frames' */
    float *hist;     /* this layer's input h: cap frames of C, or C rows of rs floats (rows) */
    float *hist_mem; /* hist's place in the state block (rows start lead floats in) */
    int cap, len, keep, lead;
    size_t rs;
} wn_layer;

/* output channels [o0, o0 + G) computed by one kernel call (G pairs of z1/z2 when gated) */
typedef struct tm_group {
    int o0, G;
} tm_group;

typedef struct tm_plan {
    int n;
    tm_group *g;
} tm_plan;

/* rows: a layer's kernel arguments that stay the same from block to block, set at create
 * (tm_prepare); tm_run_array fills in the histories' and the tile's positions */
typedef struct tm_pre {
    tm_layer_args la;
    tm_mm_args r;
    const tm_plan *p; /* the conv's groups */
    tm_conv_fn f1;    /* one group of all C channels: the conv with the 1x1 fused, or NULL */
    tm_conv_fn fh;    /* two groups of C / 2: the second's conv with the 1x1 fused, or NULL */
    int gated, residual;
    int defer; /* tanh not gated on the groups' path: its tanh in a pass of its own (tanh_rows) */
} tm_pre;

typedef struct wn_array {
    const cvd_wn_array *cfg;
    int in, cond, C, H;
    float *Wr;        /* [in][C] */
    float *Wh;        /* [C][H] */
    float *bh;        /* [H] or NULL */
    wn_layer *layers; /* cfg->n_layers of them */
    cvd_gemm_fn gemm_z, gemm_c, gemm_h;
    int small_c, small_h; /* the rechannel, the head on small_mm (frames, x86) */
    int small512;         /* small_mm8_512 for F = 8 (AVX-512) */
    fused_fn fused;       /* the fused layer kernel for this channel count, or NULL */
    wave_fn wave;         /* its wavefront over the array, where every layer takes it, or NULL */
    /* rows: the groups of the conv (not gated, gated), of an F = C and of an F = H matrix */
    tm_plan pu, pg, pc, ph;
    tm_pre *pre; /* rows: cfg->n_layers of them */
    /* a pipeline's cut inside a layer array (cvd_wavenet_mark_cut): cut_in, the identity
     * rechannel and the head's start are skipped (the stage put h0 and the head in place);
     * cut_out, the identity head is skipped (the head output is the accumulator) */
    int cut_in, cut_out;
} wn_array;

struct cvd_wavenet {
    /* the configuration (about 230 kB): a copy of its own (cfg_own), the model's (a template),
     * or a clone's template's */
    const cvd_wn_config *cfg;
    cvd_wn_config *cfg_own;
    /* a template (cvd_wavenet_create_shared) is held by its model's cache and by each of its
     * clones; a clone (tmpl set) reads the template's weights and plans and copies its
     * prewarmed histories on reset; neither a clone nor a plain WaveNet is shared (refs 1) */
    atomic_int refs;
    cvd_wavenet *tmpl;
    int max_block;
    int n_arrays;
    wn_array arrays[CVD_WN_MAX_ARRAYS];
    float head_scale;
    long prewarm;
    /* everything a stream owns besides the weights, in one block (wn_state_layout): the
     * histories and the scratch; one allocation, given back whole when the stream ends */
    char *state;
    /* scratch, max_block frames each */
    float *z, *a, *t, *head, *head2, *xbuf, *zeros, *outbuf;
    float *condf; /* a stage's condition frames, handed over (cvd_wavenet_stage) */
    size_t state_bytes;
    /* rows ("time-major"): the kernels, and rows of bs floats (max_block + TM_PAD) each:
     * the input (and condition), the head accumulator, the head output, an array's output;
     * the activations of a tile (rows of TM_TILE + TM_PAD) and the kernels' scratch */
    const tm_kernels *tk;
    size_t bs;
    float *condr, *headr, *head2r, *xr, *ar, *zs;
};

/* ---- activations ------------------------------------------------------------------------ */

static const struct {
    const char *nam;
    cvd_wn_act_kind kind;
    cvd_activation keras;
} nam_acts[] = {
    {"Tanh", CVD_WN_KERAS, CVD_ACT_TANH},
    {"Hardtanh", CVD_WN_KERAS, CVD_ACT_HARD_TANH},
    {"Fasttanh", CVD_WN_FASTTANH, CVD_ACT_LINEAR},
    {"ReLU", CVD_WN_KERAS, CVD_ACT_RELU},
    {"LeakyReLU", CVD_WN_LEAKY_RELU, CVD_ACT_LINEAR},
    {"PReLU", CVD_WN_LEAKY_RELU, CVD_ACT_LINEAR},
    {"Sigmoid", CVD_WN_KERAS, CVD_ACT_SIGMOID},
    {"SiLU", CVD_WN_KERAS, CVD_ACT_SILU},
    {"Hardswish", CVD_WN_KERAS, CVD_ACT_HARD_SWISH},
    {"LeakyHardtanh", CVD_WN_LEAKY_HARDTANH, CVD_ACT_LINEAR},
    {"LeakyHardTanh", CVD_WN_LEAKY_HARDTANH, CVD_ACT_LINEAR},
    {"Softsign", CVD_WN_KERAS, CVD_ACT_SOFTSIGN},
};

int cvd_wn_activation_parse(const char *name, cvd_wn_activation *out, cvd_err *err)
{
    memset(out, 0, sizeof *out);
    for (size_t i = 0; name && i < sizeof nam_acts / sizeof nam_acts[0]; i++) {
        if (strcmp(name, nam_acts[i].nam) == 0) {
            out->kind = nam_acts[i].kind;
            out->keras = nam_acts[i].keras;
            if (out->kind == CVD_WN_LEAKY_RELU)
                out->p[0] = 0.01f; /* NAM's default slope */
            if (out->kind == CVD_WN_LEAKY_HARDTANH) {
                out->p[0] = -1.0f;
                out->p[1] = 1.0f;
                out->p[2] = 0.01f;
                out->p[3] = 0.01f;
            }
            return CVD_OK;
        }
    }
    cvd_activation k;
    if (name && cvd_activation_parse(name, &k, NULL) == CVD_OK && !cvd_activation_is_axis(k)) {
        out->kind = CVD_WN_KERAS;
        out->keras = k;
        return CVD_OK;
    }
    return cvd_err_set(err, CVD_EINVAL,
                       "activation '%s': unknown (NAM's are Tanh, Hardtanh, Fasttanh, ReLU, "
                       "LeakyReLU, PReLU, Sigmoid, SiLU, Hardswish, LeakyHardtanh, Softsign)",
                       name ? name : "(null)");
}

const char *cvd_wn_activation_name(const cvd_wn_activation *a)
{
    switch (a->kind) {
    case CVD_WN_FASTTANH:
        return "Fasttanh";
    case CVD_WN_LEAKY_RELU:
        return "LeakyReLU";
    case CVD_WN_PRELU:
        return "PReLU";
    case CVD_WN_LEAKY_HARDTANH:
        return "LeakyHardtanh";
    default:
        for (size_t i = 0; i < sizeof nam_acts / sizeof nam_acts[0]; i++)
            if (nam_acts[i].kind == CVD_WN_KERAS && nam_acts[i].keras == a->keras)
                return nam_acts[i].nam;
        return cvd_activation_name(a->keras);
    }
}

static inline float fasttanh(float x)
{
    const float ax = fabsf(x), x2 = x * x;
    return (
        x *
        (2.45550750702956f + 2.45550750702956f * ax +
         (0.893229853513558f + 0.821226666969744f * ax) * x2) /
        (2.44506634652299f + (2.44506634652299f + x2) * fabsf(x + 0.814642734961073f * x * ax)));
}

/* Applies a to len values of channel ch in place. */
static void act_span(const cvd_wn_activation *a, float *v, int len, int ch)
{
    switch (a->kind) {
    case CVD_WN_KERAS:
        cvd_activation_apply(a->keras, v, (size_t)len);
        break;
    case CVD_WN_FASTTANH:
        for (int i = 0; i < len; i++)
            v[i] = fasttanh(v[i]);
        break;
    case CVD_WN_LEAKY_RELU:
        for (int i = 0; i < len; i++)
            v[i] = v[i] > 0.0f ? v[i] : a->p[0] * v[i];
        break;
    case CVD_WN_PRELU: {
        const float sl = a->slopes[a->n_slopes == 1 ? 0 : ch];
        for (int i = 0; i < len; i++)
            v[i] = v[i] > 0.0f ? v[i] : sl * v[i];
        break;
    }
    case CVD_WN_LEAKY_HARDTANH:
        for (int i = 0; i < len; i++) {
            float y = v[i];
            if (y < a->p[0])
                y = a->p[0] + (y - a->p[0]) * a->p[2];
            else if (y > a->p[1])
                y = a->p[1] + (y - a->p[1]) * a->p[3];
            v[i] = y;
        }
        break;
    }
}

/* Applies a to `rows` rows of len values (row stride `stride`), channels o0, o0 + 1, ... */
static void tm_act_rows(const cvd_wn_activation *a, float *x, int o0, int rows, size_t stride,
                        int len)
{
    for (int r = 0; r < rows; r++)
        act_span(a, x + (size_t)r * stride, len, o0 + r);
}

/* Applies a to n frames of C channels (frame stride `stride`) in place. */
static void wn_act(const cvd_wn_activation *a, float *x, int n, int C, int stride)
{
    if (stride == C && a->kind == CVD_WN_KERAS) {
        cvd_activation_apply(a->keras, x, (size_t)n * C);
        return;
    }
    for (int t = 0; t < n; t++) {
        float *v = x + (size_t)t * stride;
        switch (a->kind) {
        case CVD_WN_KERAS:
            cvd_activation_apply(a->keras, v, (size_t)C);
            break;
        case CVD_WN_FASTTANH:
            for (int c = 0; c < C; c++)
                v[c] = fasttanh(v[c]);
            break;
        case CVD_WN_LEAKY_RELU:
            for (int c = 0; c < C; c++)
                v[c] = v[c] > 0.0f ? v[c] : a->p[0] * v[c];
            break;
        case CVD_WN_PRELU:
            for (int c = 0; c < C; c++)
                v[c] = v[c] > 0.0f ? v[c] : a->slopes[a->n_slopes == 1 ? 0 : c] * v[c];
            break;
        case CVD_WN_LEAKY_HARDTANH:
            for (int c = 0; c < C; c++) {
                float y = v[c];
                if (y < a->p[0])
                    y = a->p[0] + (y - a->p[0]) * a->p[2];
                else if (y > a->p[1])
                    y = a->p[1] + (y - a->p[1]) * a->p[3];
                v[c] = y;
            }
            break;
        }
    }
}

/* ---- configuration ---------------------------------------------------------------------- */

int cvd_wn_in_channels(const cvd_wn_config *cfg)
{
    return cfg->arrays[0].input_size;
}

int cvd_wn_out_channels(const cvd_wn_config *cfg)
{
    return cfg->arrays[cfg->n_arrays - 1].head_size;
}

static int layer_z(const cvd_wn_layer *l, int C)
{
    return l->gating == CVD_WN_GATING_NONE ? C : 2 * C;
}

int cvd_wn_config_check(const cvd_wn_config *cfg, cvd_err *err)
{
    if (cfg->n_arrays < 1 || cfg->n_arrays > CVD_WN_MAX_ARRAYS)
        return cvd_err_set(err, CVD_EINVAL, "layers: %d layer arrays; 1 to %d are supported",
                           cfg->n_arrays, CVD_WN_MAX_ARRAYS);
    for (int i = 0; i < cfg->n_arrays; i++) {
        const cvd_wn_array *a = &cfg->arrays[i];
        const struct {
            const char *name;
            int v;
        } dims[] = {{"input_size", a->input_size},
                    {"condition_size", a->condition_size},
                    {"channels", a->channels},
                    {"head_size", a->head_size}};
        for (size_t k = 0; k < sizeof dims / sizeof dims[0]; k++)
            if (dims[k].v <= 0 || dims[k].v > 4096)
                return cvd_err_set(err, CVD_EINVAL, "layer array %d: %s=%d: must be in 1..4096", i,
                                   dims[k].name, dims[k].v);
        if (a->n_layers < 1 || a->n_layers > CVD_WN_MAX_LAYERS)
            return cvd_err_set(err, CVD_EINVAL,
                               "layer array %d: %d layers (dilations); 1 to %d are supported", i,
                               a->n_layers, CVD_WN_MAX_LAYERS);
        for (int l = 0; l < a->n_layers; l++) {
            const cvd_wn_layer *ly = &a->layers[l];
            if (ly->dilation <= 0 || ly->dilation > (1 << 20))
                return cvd_err_set(err, CVD_EINVAL,
                                   "layer array %d, layer %d: dilation=%d: must be in 1..%d", i, l,
                                   ly->dilation, 1 << 20);
            if (ly->kernel_size <= 0 || ly->kernel_size > 1024)
                return cvd_err_set(err, CVD_EINVAL,
                                   "layer array %d, layer %d: kernel_size=%d: must be in 1..1024",
                                   i, l, ly->kernel_size);
            if ((unsigned)ly->gating > CVD_WN_GATING_BLENDED)
                return cvd_err_set(err, CVD_EINVAL, "layer array %d, layer %d: bad gating %d", i, l,
                                   (int)ly->gating);
            const cvd_wn_activation *acts[2] = {&ly->activation, &ly->secondary};
            for (int k = 0; k < 2; k++) {
                const cvd_wn_activation *ac = acts[k];
                int C = a->channels;
                if (ac->kind == CVD_WN_PRELU && ac->n_slopes != 1 && ac->n_slopes != C)
                    return cvd_err_set(err, CVD_EINVAL,
                                       "layer array %d, layer %d: PReLU has %d slopes for %d "
                                       "channels",
                                       i, l, ac->n_slopes, C);
                if (ac->kind == CVD_WN_KERAS &&
                    ((unsigned)ac->keras >= CVD_ACT_COUNT || cvd_activation_is_axis(ac->keras)))
                    return cvd_err_set(err, CVD_EINVAL,
                                       "layer array %d, layer %d: activation %d is not "
                                       "element-wise",
                                       i, l, (int)ac->keras);
            }
        }
        if (a->condition_size != cfg->arrays[0].input_size)
            return cvd_err_set(err, CVD_EINVAL,
                               "layer array %d: condition_size=%d, but the condition is the "
                               "model input, which has %d channels",
                               i, a->condition_size, cfg->arrays[0].input_size);
        if (i > 0) {
            const cvd_wn_array *p = &cfg->arrays[i - 1];
            if (a->input_size != p->channels)
                return cvd_err_set(err, CVD_EINVAL,
                                   "layer array %d: input_size=%d, but layer array %d has %d "
                                   "channels",
                                   i, a->input_size, i - 1, p->channels);
            if (a->channels != p->head_size)
                return cvd_err_set(err, CVD_EINVAL,
                                   "layer array %d: channels=%d, but the head it continues "
                                   "(layer array %d's head_size) has %d",
                                   i, a->channels, i - 1, p->head_size);
        }
    }
    return CVD_OK;
}

size_t cvd_wn_weight_count(const cvd_wn_config *cfg)
{
    size_t n = 0;
    for (int i = 0; i < cfg->n_arrays; i++) {
        const cvd_wn_array *a = &cfg->arrays[i];
        size_t C = (size_t)a->channels;
        n += C * (size_t)a->input_size;
        for (int l = 0; l < a->n_layers; l++) {
            size_t Z = (size_t)layer_z(&a->layers[l], a->channels);
            n += Z * C * (size_t)a->layers[l].kernel_size + Z; /* conv and bias */
            n += Z * (size_t)a->condition_size;                /* mixin */
            n += C * C + C;                                    /* 1x1 and bias */
        }
        n += (size_t)a->head_size * C + (a->head_bias ? (size_t)a->head_size : 0);
    }
    return n + 1; /* head scale */
}

long cvd_wn_receptive_field(const cvd_wn_config *cfg)
{
    long r = 1;
    for (int i = 0; i < cfg->n_arrays; i++)
        for (int l = 0; l < cfg->arrays[i].n_layers; l++)
            r += (long)(cfg->arrays[i].layers[l].kernel_size - 1) *
                 cfg->arrays[i].layers[l].dilation;
    return r;
}

static double array_macs(const cvd_wn_array *a)
{
    double C = a->channels, m = C * a->input_size + (double)a->head_size * C;
    for (int l = 0; l < a->n_layers; l++) {
        double Z = layer_z(&a->layers[l], a->channels);
        m += Z * C * a->layers[l].kernel_size + Z * a->condition_size + C * C;
    }
    return m;
}

double cvd_wn_macs_per_frame(const cvd_wn_config *cfg)
{
    double m = 0.0;
    for (int i = 0; i < cfg->n_arrays; i++)
        m += array_macs(&cfg->arrays[i]);
    return m;
}

void cvd_wn_init_weights(const cvd_wn_config *cfg, float *w, uint64_t seed)
{
    cvd_rng r;
    size_t pos = 0;
#define FILL(count, fan)                                                                           \
    do {                                                                                           \
        double lim = sqrt(6.0 / (double)(fan));                                                    \
        for (size_t q = 0; q < (size_t)(count); q++)                                               \
            w[pos++] = (float)((2.0 * cvd_rng_uniform(&r) - 1.0) * lim);                           \
    } while (0)
#define ZERO(count)                                                                                \
    do {                                                                                           \
        for (size_t q = 0; q < (size_t)(count); q++)                                               \
            w[pos++] = 0.0f;                                                                       \
    } while (0)
    cvd_rng_seed(&r, seed);
    for (int i = 0; i < cfg->n_arrays; i++) {
        const cvd_wn_array *a = &cfg->arrays[i];
        const int C = a->channels;
        FILL(C * a->input_size, C + a->input_size);
        for (int l = 0; l < a->n_layers; l++) {
            const int Z = layer_z(&a->layers[l], C), K = a->layers[l].kernel_size;
            FILL(Z * C * K, (C + Z) * K);
            ZERO(Z);
            FILL(Z * a->condition_size, Z + a->condition_size);
            FILL(C * C, 2 * C);
            ZERO(C);
        }
        FILL(a->head_size * C, a->head_size + C);
        if (a->head_bias)
            ZERO(a->head_size);
    }
    w[pos++] = 1.0f;
#undef FILL
#undef ZERO
}

/* ---- create ----------------------------------------------------------------------------- */

static void wavenet_free(cvd_wavenet *w)
{
    for (int i = 0; i < w->n_arrays; i++) {
        wn_array *A = &w->arrays[i];
        if (A->cfg == NULL) /* out of memory before this array */
            break;
        if (w->tmpl == NULL) { /* a clone reads its template's weights and plans */
            free(A->Wr);
            free(A->Wh);
            free(A->bh);
            for (int l = 0; A->layers && l < A->cfg->n_layers; l++) {
                wn_layer *Ly = &A->layers[l];
                free(Ly->Wc);
                free(Ly->bc);
                free(Ly->Wm);
                free(Ly->W1);
                free(Ly->b1);
                free(Ly->Wcp);
                free(Ly->W1p);
                free(Ly->bmp);
            }
            free(A->pu.g);
            free(A->pg.g);
            free(A->pc.g);
            free(A->ph.g);
        }
        free(A->layers);
        free(A->pre);
    }
    free(w->state); /* the histories and the scratch */
    free(w->cfg_own);
    cvd_wavenet *t = w->tmpl;
    free(w);
    cvd_wavenet_destroy(t);
}

void cvd_wavenet_destroy(cvd_wavenet *w)
{
    if (w != NULL && atomic_fetch_sub(&w->refs, 1) == 1)
        wavenet_free(w);
}

/* zeroed, on a cache line: the kernels' full-vector loads and stores of aligned rows never
 * split across two lines */
static float *alloc_floats(size_t n, size_t *bytes)
{
    void *p = NULL;
    size_t sz = (n + 1) * sizeof(float);
    sz = (sz + 63) & ~(size_t)63;
    *bytes += sz;
    if (posix_memalign(&p, 64, sz) != 0)
        return NULL;
    memset(p, 0, sz);
    return p;
}

/* n floats at *off in the state block `base` (sized as alloc_floats sizes them: on a cache
 * line, zeroed with the block); with base NULL, only the size is counted */
static float *take_floats(char *base, size_t *off, size_t n)
{
    const size_t o = *off;
    *off += ((n + 1) * sizeof(float) + 63) & ~(size_t)63;
    return base ? (float *)(void *)(base + o) : NULL;
}

/* The state block's layout: every layer's history, then the scratch (and, for a WaveNet that
 * is not a clone, the prewarm's silence and output). With base NULL, only the block's size;
 * then again with the block. */
static size_t wn_state_layout(cvd_wavenet *w, char *base, int maxC, int maxZ, int maxIn)
{
    size_t off = 0;
    const size_t mb = (size_t)w->max_block;
    for (int i = 0; i < w->n_arrays; i++) {
        wn_array *A = &w->arrays[i];
        for (int l = 0; l < A->cfg->n_layers; l++) {
            wn_layer *Ly = &A->layers[l];
            Ly->hist_mem = take_floats(base, &off, Ly->rs * (size_t)A->C + (size_t)Ly->lead);
            Ly->hist = base ? Ly->hist_mem + Ly->lead : NULL;
        }
    }
    if (!w->tmpl) { /* the prewarm's silence and its output (a clone copies its template's) */
        w->zeros = take_floats(base, &off, mb * (size_t)maxIn);
        w->outbuf = take_floats(base, &off, mb * (size_t)maxC);
    }
    if (!w->tk) { /* the scratch of the kernels on frames */
        w->z = take_floats(base, &off, mb * (size_t)maxZ);
        w->a = take_floats(base, &off, mb * (size_t)maxC);
        w->t = take_floats(base, &off, mb * (size_t)maxC);
        w->head = take_floats(base, &off, mb * (size_t)maxC);
        w->head2 = take_floats(base, &off, mb * (size_t)maxC);
        w->xbuf = take_floats(base, &off, mb * (size_t)maxC);
        w->condf = take_floats(base, &off, mb * (size_t)maxIn);
    } else {
        w->condr = take_floats(base, &off, w->bs * (size_t)maxIn);
        w->headr = take_floats(base, &off, w->bs * (size_t)maxC);
        w->head2r = take_floats(base, &off, w->bs * (size_t)maxC);
        w->xr = take_floats(base, &off, w->bs * (size_t)maxC);
        w->ar = take_floats(base, &off, (size_t)(TM_TILE + TM_PAD) * (size_t)maxC);
        w->zs = take_floats(base, &off, (size_t)TM_MAXG * 4 * 16);
    }
    return off;
}

/* the fastest tile kernel for F output channels */
static cvd_gemm_fn pick_gemm(int F)
{
    cvd_isa isa = cvd_isa_active();
    if (F % 16 != 0 && F % 8 == 0 && isa >= CVD_ISA_AVX2)
        return cvd_gemm_select(CVD_ISA_AVX2, F);
    return cvd_gemm_select(isa, F);
}

/* Cuts `total` output channels into groups the kernels `has` (has[G] != 0, G <= maxg): as
 * few as the largest kernel allows, as even as the kernel sizes allow. */
static int tm_split(int total, const unsigned char *has, int maxg, tm_plan *p)
{
    p->g = calloc((size_t)total, sizeof *p->g);
    if (p->g == NULL)
        return -1;
    p->n = 0;
    for (int o = 0; o < total;) {
        int rem = total - o, ng = (rem + maxg - 1) / maxg, G = (rem + ng - 1) / ng;
        while (G > 1 && !has[G])
            G--;
        p->g[p->n].o0 = o;
        p->g[p->n].G = G;
        p->n++;
        o += G;
    }
    return 0;
}

static int tm_plans(const tm_kernels *k, wn_array *A)
{
    unsigned char hu[TM_MAXG + 1] = {0}, hg[TM_MAXG / 2 + 1] = {0}, hm[TM_MAXG + 1] = {0};
    /* the largest groups that still take two vectors of frames (k->acc / 2 accumulators),
     * so that each weight broadcast feeds two FMAs */
    const int mu = k->acc / 2, mg = k->acc / 4;
    for (int G = 1; G <= TM_MAXG; G++) {
        hu[G] = k->conv_u[G] != NULL;
        hm[G] = k->mm[G] != NULL;
        if (G <= TM_MAXG / 2)
            hg[G] = k->conv_g[G] != NULL;
    }
    if (tm_split(A->C, hu, mu, &A->pu) < 0 || tm_split(A->C, hg, mg, &A->pg) < 0 ||
        tm_split(A->C, hm, mu, &A->pc) < 0 || tm_split(A->H, hm, mu, &A->ph) < 0)
        return -1;
    return 0;
}

/* rows: each layer's kernel arguments that do not change from block to block (the weights,
 * strides, activations, the scratch rows and the kernel plan), once at create, so that a
 * block's set-up of a layer is only its positions */
static void tm_prepare(cvd_wavenet *w)
{
    const tm_kernels *k = w->tk;
    for (int i = 0; i < w->n_arrays; i++) {
        wn_array *A = &w->arrays[i];
        const int C = A->C, L = A->cfg->n_layers;
        for (int l = 0; l < L; l++) {
            const wn_layer *Ly = &A->layers[l];
            const cvd_wn_layer *lc = Ly->cfg;
            tm_pre *P = &A->pre[l];
            P->gated = lc->gating != CVD_WN_GATING_NONE;
            P->residual = A->cfg->residual;
            P->p = P->gated ? &A->pg : &A->pu;
            P->la = (tm_layer_args){.C = C,
                                    .K = Ly->K,
                                    .d = Ly->d,
                                    .gating = (int)lc->gating,
                                    .act_kind = fused_kind(&lc->activation),
                                    .sec_kind = fused_kind(&lc->secondary),
                                    .skip = A->cfg->skip || l == L - 1,
                                    .ncond = A->cond,
                                    .act = &lc->activation,
                                    .sec = &lc->secondary,
                                    .act_rows = tm_act_rows,
                                    .hs = Ly->rs,
                                    .cs = w->bs,
                                    .Wc = Ly->Wc,
                                    .bc = Ly->bc,
                                    .Wm = Ly->Wm,
                                    .a = w->ar,
                                    .as = (size_t)TM_TILE + TM_PAD,
                                    .hds = w->bs,
                                    .zs = w->zs,
                                    .r = &P->r};
            P->r = (tm_mm_args){.Cin = C,
                                .F = C,
                                .x = w->ar,
                                .xs = (size_t)TM_TILE + TM_PAD,
                                .Wt = Ly->W1,
                                .b = Ly->b1,
                                .rs = Ly->rs};
            /* one group of all C channels: the 1x1 runs on a in the conv's registers */
            P->f1 = !P->gated && P->p->n == 1 && P->p->g[0].G <= TM_MAXG / 2
                        ? k->conv_f[P->p->g[0].G]
                        : NULL;
            P->fh = !P->gated && !P->f1 && P->p->n == 2 && 2 * P->p->g[0].G == C &&
                            P->p->g[0].G <= TM_MAXG / 2
                        ? k->conv_h[P->p->g[0].G]
                        : NULL;
            P->defer =
                k->tanh_rows && !P->gated && !P->f1 && !P->fh && P->la.act_kind == FUSED_TANH;
        }
    }
}

/* Each layer's fused kernel arguments but for the frames a call gives (hwin, hcur, cond, out):
 * built once here, not per layer per call */
static void fused_prepare(cvd_wavenet *w)
{
    for (int i = 0; i < w->n_arrays; i++) {
        wn_array *A = &w->arrays[i];
        const int C = A->C, L = A->cfg->n_layers;
        for (int l = 0; A->fused && l < L; l++) {
            wn_layer *Ly = &A->layers[l];
            const cvd_wn_layer *lc = Ly->cfg;
            Ly->fa = (fused_args){.C = C,
                                  .lanes = (1u << C) - 1u,
                                  .Z = Ly->Z,
                                  .K = Ly->K,
                                  .d = Ly->d,
                                  .gating = (int)lc->gating,
                                  .act_kind = fused_kind(&lc->activation),
                                  .sec_kind = fused_kind(&lc->secondary),
                                  .skip = A->cfg->skip || l == L - 1,
                                  .residual = A->cfg->residual,
                                  .act = &lc->activation,
                                  .sec = &lc->secondary,
                                  .act_tile = wn_act,
                                  .Wc = Ly->Wc,
                                  .bc = Ly->bc,
                                  .Wm = Ly->Wm,
                                  .W1 = Ly->W1,
                                  .b1 = Ly->b1,
                                  .Wcp = Ly->Wcp,
                                  .W1p = Ly->W1p,
                                  .bmp = Ly->bmp,
                                  .head = w->head};
        }
        /* the wavefront: layers not gated, tanh, on a kernel that has one */
        A->wave = NULL;
#ifdef CVD_VMATH_X86
        if (A->fused == fused16) {
            A->wave = fused16_wave;
            for (int l = 0; l < L; l++)
                if (A->layers[l].fa.gating != CVD_WN_GATING_NONE ||
                    A->layers[l].fa.act_kind != FUSED_TANH)
                    A->wave = NULL;
        }
#endif
    }
}

/* A WaveNet of cfg at max_block; with a template T (made of the same cfg and max_block, under
 * the same ISA), a clone reading T's weights and plans; reset (and prewarmed) with `reset`.
 * With `borrow`, cfg outlives the WaveNet (a model's, for a net that holds the model) and is
 * read where it is, not copied. */
static int wavenet_new(const cvd_wn_config *cfg, int max_block, cvd_wavenet *T, int reset,
                       int borrow, cvd_wavenet **out, cvd_err *err)
{
    cvd_wavenet *w;
    int rc, maxC = 1, maxZ = 1, maxIn = 1;
    size_t st = 0;

    *out = NULL;
    rc = cvd_wn_config_check(cfg, err);
    if (rc < 0)
        return rc;
    if (max_block <= 0 || max_block > (1 << 20))
        return cvd_err_set(err, CVD_EINVAL, "max_block=%d: must be in 1..%d", max_block, 1 << 20);
    w = calloc(1, sizeof *w);
    if (w == NULL)
        return cvd_err_set(err, CVD_ENOMEM, "out of memory");
    atomic_init(&w->refs, 1);
    if (T) {
        atomic_fetch_add(&T->refs, 1);
        w->tmpl = T;
    }
    if (T) {
        w->cfg = T->cfg;
    } else if (borrow) {
        w->cfg = cfg;
    } else {
        w->cfg = w->cfg_own = malloc(sizeof *w->cfg_own);
        if (w->cfg_own == NULL)
            goto nomem;
        *w->cfg_own = *cfg;
        st += sizeof *w->cfg_own;
    }
    st += sizeof *w;
    w->max_block = max_block;
    w->n_arrays = cfg->n_arrays;
    w->head_scale = T ? T->head_scale : 1.0f;
    w->prewarm = cfg->prewarm ? cvd_wn_receptive_field(cfg) : 0;
    /* rows (time-major) for larger blocks (wn_use_rows); frames below */
    if (wn_use_rows(cfg, max_block, cvd_isa_active()))
        w->tk = tm_kernels_for(cvd_isa_active());
    w->bs = (size_t)max_block + TM_PAD;
    for (int i = 0; i < cfg->n_arrays; i++) {
        const cvd_wn_array *ac = &w->cfg->arrays[i];
        wn_array *A = &w->arrays[i];
        const int C = ac->channels;
        A->layers = calloc((size_t)(ac->n_layers > 0 ? ac->n_layers : 1), sizeof *A->layers);
        if (A->layers == NULL)
            goto nomem;
        st += sizeof *A->layers * (size_t)ac->n_layers;
        A->cfg = ac;
        A->in = ac->input_size;
        A->cond = ac->condition_size;
        A->C = C;
        A->H = ac->head_size;
        if (C > maxC)
            maxC = C;
        if (A->H > maxC)
            maxC = A->H;
        if (A->in > maxIn)
            maxIn = A->in;
        if (T) { /* the template's weights and plans, read-only */
            const wn_array *TA = &T->arrays[i];
            A->Wr = TA->Wr;
            A->Wh = TA->Wh;
            A->bh = TA->bh;
            A->pu = TA->pu;
            A->pg = TA->pg;
            A->pc = TA->pc;
            A->ph = TA->ph;
        } else {
            A->Wr = alloc_floats((size_t)A->in * C, &st);
            A->Wh = alloc_floats((size_t)C * A->H, &st);
            A->bh = alloc_floats((size_t)A->H, &st);
        }
        if (!A->Wr || !A->Wh || !A->bh)
            goto nomem;
        A->gemm_c = pick_gemm(C);
        A->gemm_h = pick_gemm(A->H);
#ifdef CVD_VMATH_X86
        A->small_c = small_mm_for(A->gemm_c, C);
        A->small_h = small_mm_for(A->gemm_h, A->H);
        A->small512 = cvd_isa_active() >= CVD_ISA_AVX512;
#endif
        for (int l = 0; l < ac->n_layers; l++) {
            wn_layer *Ly = &A->layers[l];
            Ly->cfg = &ac->layers[l];
            Ly->K = Ly->cfg->kernel_size;
            Ly->d = Ly->cfg->dilation;
            Ly->Z = layer_z(Ly->cfg, C);
            if (Ly->Z > maxZ)
                maxZ = Ly->Z;
            Ly->keep = (Ly->K - 1) * Ly->d;
            int chunk = max_block > Ly->keep ? max_block : Ly->keep;
            if (chunk < 256)
                chunk = 256;
            /* rows of small arrays: room for more blocks between rewinds (each copies keep
             * frames a row): at least TM_ROOM floats a layer beyond keep, and twice keep where
             * C <= 8. Same run, AVX-512, block 64, best of 3 (load 4.4), fraction of the peak:
             * feather 8/4 0.53 -> 0.55, nano 0.33 -> 0.35, standard 0.70 -> 0.70; state
             * feather 346 -> 584 KB, nano 183 -> 441 KB, standard 671 -> 786 KB */
            if (w->tk && chunk < TM_ROOM / C)
                chunk = TM_ROOM / C;
            if (w->tk && C <= 8 && chunk < 2 * Ly->keep)
                chunk = 2 * Ly->keep;
            Ly->cap = Ly->keep + chunk;
            /* rows: each a multiple of 16 floats, and the first new frame after a rewind
             * (position keep) on a 16-float boundary, so that with blocks of a multiple of 16
             * the block's own frames are aligned in every row */
            Ly->lead = 0;
            if (w->tk) {
                Ly->lead = (16 - Ly->keep % 16) % 16;
                Ly->rs = ((size_t)Ly->cap + TM_PAD + 15) & ~(size_t)15;
            } else {
                Ly->rs = (size_t)Ly->cap;
            }
            if (T) {
                const wn_layer *TL = &T->arrays[i].layers[l];
                Ly->Wc = TL->Wc;
                Ly->bc = TL->bc;
                Ly->Wm = TL->Wm;
                Ly->W1 = TL->W1;
                Ly->b1 = TL->b1;
                Ly->Wcp = TL->Wcp;
                Ly->W1p = TL->W1p;
                Ly->bmp = TL->bmp;
            } else {
                Ly->Wc = alloc_floats((size_t)Ly->K * C * Ly->Z, &st);
                Ly->bc = alloc_floats((size_t)Ly->Z, &st);
                Ly->Wm = alloc_floats((size_t)A->cond * Ly->Z, &st);
                Ly->W1 = alloc_floats((size_t)C * C, &st);
                Ly->b1 = alloc_floats((size_t)C, &st);
            }
            if (!Ly->Wc || !Ly->bc || !Ly->Wm || !Ly->W1 || !Ly->b1)
                goto nomem;
        }
        A->gemm_z = pick_gemm(C); /* Z is C or 2C: what suits C suits Z */
        A->fused = NULL;
        if (w->tk && !T && tm_plans(w->tk, A) < 0)
            goto nomem;
        if (w->tk) {
            A->pre = calloc((size_t)(ac->n_layers > 0 ? ac->n_layers : 1), sizeof *A->pre);
            if (A->pre == NULL)
                goto nomem;
            st += sizeof *A->pre * (size_t)ac->n_layers;
        }
#ifdef CVD_VMATH_X86
        /* the fused kernel: a frame's channels in one vector, masked to C lanes for 9..15
         * channels. Below 8 channels the unfused path is faster from blocks of 8 frames on
         * (measured: a masked kernel's vectors are mostly empty), so it keeps them. */
        const cvd_isa isa = cvd_isa_active();
        if (A->cond == 1 && isa >= CVD_ISA_AVX512 && C <= 16)
            A->fused = C == 16 ? fused16 : C == 8 ? fused8p : C > 8 ? fused16m : NULL;
        else if (A->cond == 1 && isa >= CVD_ISA_AVX2 && (C == 8 || C == 16))
            A->fused = C == 8 ? fused8 : fused16x2;
        /* 8 channels on AVX-512: the layers that are not gated run on input pairs */
        for (int l = 0; !T && !w->tk && A->fused == fused8p && l < ac->n_layers; l++) {
            wn_layer *Ly = &A->layers[l];
            if (Ly->Z != C)
                continue;
            Ly->Wcp = alloc_floats((size_t)Ly->K * 64, &st);
            Ly->W1p = alloc_floats(64, &st);
            Ly->bmp = alloc_floats(48, &st);
            if (!Ly->Wcp || !Ly->W1p || !Ly->bmp)
                goto nomem;
        }
#endif
    }
    /* the histories and the scratch: one block */
    const size_t sb = wn_state_layout(w, NULL, maxC, maxZ, maxIn);
    void *blk = NULL;
    if (posix_memalign(&blk, 64, sb) != 0)
        goto nomem;
    memset(blk, 0, sb);
    w->state = blk;
    wn_state_layout(w, w->state, maxC, maxZ, maxIn);
    if (w->tk)
        tm_prepare(w);
    else
        fused_prepare(w);
    st += sb;
    w->state_bytes = st;
    if (reset)
        cvd_wavenet_reset(w);
    *out = w;
    return CVD_OK;
nomem:
    cvd_wavenet_destroy(w);
    return cvd_err_set(err, CVD_ENOMEM, "WaveNet: out of memory");
}

int cvd_wavenet_create(const cvd_wn_config *cfg, int max_block, cvd_wavenet **out, cvd_err *err)
{
    return wavenet_new(cfg, max_block, NULL, 1, 0, out, err);
}

size_t cvd_wavenet_state_bytes(const cvd_wavenet *w)
{
    return w->state_bytes;
}

/* ---- weights ---------------------------------------------------------------------------- */

int cvd_wavenet_set_weights(cvd_wavenet *w, const float *wt, size_t n, cvd_err *err)
{
    size_t need = cvd_wn_weight_count(w->cfg), pos = 0;
    if (w->tmpl)
        return cvd_err_set(err, CVD_ESTATE, "WaveNet: a clone's weights are its template's");
    if (n != need)
        return cvd_err_set(err, CVD_EINVAL, "weights: %zu values, the configuration needs %zu", n,
                           need);
    for (int i = 0; i < w->n_arrays; i++) {
        wn_array *A = &w->arrays[i];
        const int C = A->C, H = A->H;
        /* rechannel [C][in] -> [in][C] */
        for (int o = 0; o < C; o++)
            for (int c = 0; c < A->in; c++)
                A->Wr[(size_t)c * C + o] = wt[pos++];
        for (int l = 0; l < A->cfg->n_layers; l++) {
            wn_layer *Ly = &A->layers[l];
            const int Z = Ly->Z, K = Ly->K;
            /* conv [Z][C][K] -> [K][C][Z] */
            for (int o = 0; o < Z; o++)
                for (int c = 0; c < C; c++)
                    for (int k = 0; k < K; k++)
                        Ly->Wc[((size_t)k * C + c) * Z + o] = wt[pos++];
            for (int o = 0; o < Z; o++)
                Ly->bc[o] = wt[pos++];
            /* mixin [Z][cond] -> [cond][Z] */
            for (int o = 0; o < Z; o++)
                for (int c = 0; c < A->cond; c++)
                    Ly->Wm[(size_t)c * Z + o] = wt[pos++];
            /* 1x1 [C][C] -> [in][out] */
            for (int o = 0; o < C; o++)
                for (int c = 0; c < C; c++)
                    Ly->W1[(size_t)c * C + o] = wt[pos++];
            for (int o = 0; o < C; o++)
                Ly->b1[o] = wt[pos++];
            if (Ly->Wcp) { /* C = Z = 8: wavenet_pair8.h's layout */
                for (int k = 0; k < K; k++)
                    for (int c = 0; c < 8; c++)
                        for (int o = 0; o < 8; o++)
                            Ly->Wcp[(size_t)k * 64 + (c / 2) * 16 + 2 * o + c % 2] =
                                Ly->Wc[((size_t)k * 8 + c) * 8 + o];
                for (int c = 0; c < 8; c++)
                    for (int o = 0; o < 8; o++)
                        Ly->W1p[(c / 2) * 16 + 2 * o + c % 2] = Ly->W1[(size_t)c * 8 + o];
                for (int o = 0; o < 8; o++) {
                    Ly->bmp[2 * o] = Ly->bc[o];
                    Ly->bmp[2 * o + 1] = 0.0f;
                    Ly->bmp[16 + 2 * o] = Ly->Wm[o];
                    Ly->bmp[16 + 2 * o + 1] = 0.0f;
                    Ly->bmp[32 + o] = Ly->bmp[40 + o] = Ly->b1[o];
                }
            }
        }
        /* head [H][C] -> [C][H] */
        for (int o = 0; o < H; o++)
            for (int c = 0; c < C; c++)
                A->Wh[(size_t)c * H + o] = wt[pos++];
        for (int o = 0; o < H; o++)
            A->bh[o] = A->cfg->head_bias ? wt[pos++] : 0.0f;
    }
    w->head_scale = wt[pos++];
    cvd_wavenet_reset(w);
    return CVD_OK;
}

/* ---- processing ------------------------------------------------------------------------- */

/* Room for n more frames in a layer's history: move the needed tail to the front. */
static inline float *hist_room(wn_layer *Ly, int C, int n)
{
    if (Ly->len + n > Ly->cap) {
        memmove(Ly->hist, Ly->hist + (size_t)(Ly->len - Ly->keep) * C,
                sizeof(float) * (size_t)Ly->keep * C);
        Ly->len = Ly->keep;
    }
    return Ly->hist + (size_t)Ly->len * C;
}

static void run_array(cvd_wavenet *w, wn_array *A, const float *x, const float *cond, int n,
                      int first, int last)
{
    const int C = A->C, L = A->cfg->n_layers;
    float *z = w->z, *a = w->a, *t = w->t, *head = w->head;

    /* the head accumulator: zero, or the previous array's head output (in head2) */
    if (A->cut_in) {
        /* a cut (cvd_wavenet_mark_cut): the head starts where the previous array's identity
         * head left it (or the stage put it), h0 is x (x NULL: the stage put it in place) */
        if (x)
            memcpy(hist_room(&A->layers[0], C, n), x, sizeof(float) * (size_t)n * C);
    } else if (first)
        memset(head, 0, sizeof(float) * (size_t)n * C);
    else
        memcpy(head, w->head2, sizeof(float) * (size_t)n * C);

    /* h0 = rechannel(x), into layer 0's history */
    if (!A->cut_in) {
        float *h = hist_room(&A->layers[0], C, n);
#ifdef CVD_VMATH_X86
        if (A->small_c)
            small_mm_any(A->small512, x, A->in, A->Wr, C, n, NULL, h);
        else
#endif
            A->gemm_c(x, (size_t)A->in, 0, 1, A->in, A->Wr, C, n, h, (size_t)C);
    }
    A->layers[0].len += n;

    const int wave = A->wave && n >= 8; /* two groups of 4 frames or more */
    if (wave) {
        /* every layer's frames first (the rewinds are each layer's own), then the wavefront */
        for (int l = 0; l < L; l++) {
            wn_layer *Ly = &A->layers[l];
            fused_args *fa = &Ly->fa;
            fa->hcur = Ly->hist + (size_t)(Ly->len - n) * C;
            fa->hwin = fa->hcur - (size_t)Ly->keep * C;
            fa->cond = cond;
            fa->out = NULL;
            if (!(last && l == L - 1))
                fa->out = l + 1 < L ? hist_room(&A->layers[l + 1], C, n) : w->xbuf;
            if (l + 1 < L)
                A->layers[l + 1].len += n;
        }
        A->wave(&A->layers[0].fa, sizeof(wn_layer), L, n);
    }
    for (int l = 0; !wave && l < L; l++) {
        wn_layer *Ly = &A->layers[l];
        const int Z = Ly->Z;
        const cvd_wn_layer *lc = Ly->cfg;
        /* the n new frames of h_l and the (K-1)d before them */
        const float *hcur = Ly->hist + (size_t)(Ly->len - n) * C;
        const float *hwin = hcur - (size_t)Ly->keep * C;
        const int last_layer = last && l == L - 1;

        if (A->fused) {
            fused_args *fa = &Ly->fa;
            fa->hwin = hwin;
            fa->hcur = hcur;
            fa->cond = cond;
            fa->out = NULL;
            if (!last_layer)
                fa->out = l + 1 < L ? hist_room(&A->layers[l + 1], C, n) : w->xbuf;
            A->fused(fa, n);
            if (l + 1 < L)
                A->layers[l + 1].len += n;
            continue;
        }

        A->gemm_z(hwin, (size_t)C, (size_t)Ly->d * C, Ly->K, C, Ly->Wc, Z, n, z, (size_t)Z);
        /* bias and mixin */
        if (A->cond == 1) {
            for (int f = 0; f < n; f++) {
                float *zf = z + (size_t)f * Z;
                const float cv = cond[f];
                for (int o = 0; o < Z; o++)
                    zf[o] += Ly->bc[o] + cv * Ly->Wm[o];
            }
        } else {
            for (int f = 0; f < n; f++) {
                float *zf = z + (size_t)f * Z;
                for (int o = 0; o < Z; o++) {
                    float s = Ly->bc[o];
                    for (int c = 0; c < A->cond; c++)
                        s += cond[(size_t)f * A->cond + c] * Ly->Wm[(size_t)c * Z + o];
                    zf[o] += s;
                }
            }
        }
        /* activation (and gate) into a */
        if (lc->gating == CVD_WN_GATING_NONE) {
            wn_act(&lc->activation, z, n, C, C);
            memcpy(a, z, sizeof(float) * (size_t)n * C);
        } else {
            /* z frames are [z1 (C) | z2 (C)]; for blended keep z1 before its activation */
            if (lc->gating == CVD_WN_GATING_BLENDED)
                for (int f = 0; f < n; f++)
                    memcpy(t + (size_t)f * C, z + (size_t)f * Z, sizeof(float) * (size_t)C);
            wn_act(&lc->activation, z, n, C, Z);
            wn_act(&lc->secondary, z + C, n, C, Z);
            for (int f = 0; f < n; f++) {
                const float *z1 = z + (size_t)f * Z, *g = z1 + C;
                float *af = a + (size_t)f * C;
                if (lc->gating == CVD_WN_GATING_GATED) {
                    for (int c = 0; c < C; c++)
                        af[c] = z1[c] * g[c];
                } else {
                    const float *raw = t + (size_t)f * C;
                    for (int c = 0; c < C; c++)
                        af[c] = g[c] * z1[c] + (1.0f - g[c]) * raw[c];
                }
            }
        }
        if (A->cfg->skip || l == L - 1)
            for (size_t i = 0; i < (size_t)n * C; i++)
                head[i] += a[i];
        if (last_layer)
            break; /* the last array's residual output feeds nothing */
        /* h_{l+1} = h_l + W1 a + b1, into the next layer's history or the array output */
        float *dst;
        if (l + 1 < L)
            dst = hist_room(&A->layers[l + 1], C, n);
        else
            dst = w->xbuf;
        A->gemm_c(a, (size_t)C, 0, 1, C, Ly->W1, C, n, dst, (size_t)C);
        for (int f = 0; f < n; f++) {
            float *df = dst + (size_t)f * C;
            const float *hf = hcur + (size_t)f * C;
            if (A->cfg->residual)
                for (int c = 0; c < C; c++)
                    df[c] += hf[c] + Ly->b1[c];
            else
                for (int c = 0; c < C; c++)
                    df[c] += Ly->b1[c];
        }
        if (l + 1 < L)
            A->layers[l + 1].len += n;
    }
    /* head output into head2 (the next array's accumulator start, or the model output) */
    if (A->cut_out)
        return; /* an identity head: the stage hands on the accumulator (cvd_wavenet_stage) */
#ifdef CVD_VMATH_X86
    if (A->small_h) {
        small_mm_any(A->small512, head, C, A->Wh, A->H, n, A->bh, w->head2);
        return;
    }
#endif
    A->gemm_h(head, (size_t)C, 0, 1, C, A->Wh, A->H, n, w->head2, (size_t)A->H);
    for (int f = 0; f < n; f++)
        for (int o = 0; o < A->H; o++)
            w->head2[(size_t)f * A->H + o] += A->bh[o];
}

/* ---- processing on rows ------------------------------------------------------------------ */

/* Room for n more frames in a layer's history rows: move each row's needed tail to the front.
 * Returns the position of the first new frame. */
typedef float tm_v4 __attribute__((vector_size(16), aligned(4), may_alias));

static inline size_t tm_hist_room(wn_layer *Ly, int C, int n)
{
    if (Ly->len + n > Ly->cap) {
        const size_t from = (size_t)(Ly->len - Ly->keep), keep = (size_t)Ly->keep;
        for (int c = 0; c < C; c++) {
            float *row = Ly->hist + (size_t)c * Ly->rs;
            if (keep > 256) {
                memmove(row, row + from, sizeof(float) * keep);
                continue;
            }
            /* a short tail (most layers: a memmove call a row cost more than the copy) in
             * chunks of 16 floats, each read whole before it is written, front to back: the
             * destination lies before the source. The last chunk may copy up to 15 floats
             * past keep, from inside the row (len <= cap) to where the new frames go */
            for (size_t i = 0; i < keep; i += 16) {
                const tm_v4 *src = (const tm_v4 *)(row + from + i);
                tm_v4 *dst = (tm_v4 *)(row + i);
                const tm_v4 a = src[0], b = src[1], c4 = src[2], d = src[3];
                dst[0] = a;
                dst[1] = b;
                dst[2] = c4;
                dst[3] = d;
            }
        }
        Ly->len = Ly->keep;
    }
    return (size_t)Ly->len;
}

static void tm_mm_run(const tm_kernels *k, const tm_plan *p, const tm_mm_args *m, int n)
{
    for (int g = 0; g < p->n; g++)
        k->mm[p->g[g].G](m, 0, n, p->g[g].o0);
}

static void tm_run_array(cvd_wavenet *w, wn_array *A, const float *x, int n, int first, int last)
{
    const tm_kernels *k = w->tk;
    const int C = A->C, L = A->cfg->n_layers;
    const size_t bs = w->bs;

    /* the head accumulator: zero, or the previous array's head output; then h0 =
     * rechannel(x), into layer 0's history. A cut (cvd_wavenet_mark_cut): the head starts
     * where the previous array's identity head left it (or the stage put it), h0 is x (x NULL:
     * the stage put it in place) */
    wn_layer *L0 = &A->layers[0];
    if (A->cut_in && x) {
        const size_t at = tm_hist_room(L0, C, n);
        for (int c = 0; c < C; c++)
            memcpy(L0->hist + (size_t)c * L0->rs + at, x + (size_t)c * bs,
                   sizeof(float) * (size_t)n);
    } else if (!A->cut_in) {
        for (int c = 0; c < C; c++) {
            float *hr = w->headr + (size_t)c * bs;
            if (first)
                memset(hr, 0, sizeof(float) * (size_t)n);
            else
                memcpy(hr, w->head2r + (size_t)c * bs, sizeof(float) * (size_t)n);
        }
        tm_mm_args m = {.Cin = A->in,
                        .F = C,
                        .x = x,
                        .xs = bs,
                        .Wt = A->Wr,
                        .y = L0->hist + tm_hist_room(L0, C, n),
                        .ys = L0->rs};
        tm_mm_run(k, &A->pc, &m, n);
    }
    L0->len += n;

    for (int l = 0; l < L; l++) {
        wn_layer *Ly = &A->layers[l];
        tm_pre *P = &A->pre[l];
        const float *hcur = Ly->hist + (Ly->len - n);
        float *dst = NULL;
        if (!(last && l == L - 1)) {
            if (l + 1 < L) {
                wn_layer *Nx = &A->layers[l + 1];
                dst = Nx->hist + tm_hist_room(Nx, C, n);
                P->r.ys = Nx->rs;
            } else {
                dst = w->xr;
                P->r.ys = bs;
            }
        }
        tm_layer_args *la = &P->la;
        tm_mm_args *r = &P->r;
        const tm_plan *p = P->p;
        const tm_conv_fn f1 = dst ? P->f1 : NULL, fh = dst ? P->fh : NULL;
        for (int s = 0; s < n; s += TM_TILE) {
            const int e = n - s < TM_TILE ? n - s : TM_TILE;
            la->h = hcur + s;
            la->cond = w->condr + s;
            la->head = w->headr + s;
            if (f1) {
                r->res = P->residual ? hcur + s : NULL;
                r->y = dst + s;
                f1(la, 0, e, 0);
                continue;
            }
            if (fh) { /* the first half's a into its rows, the second's 1x1 from registers */
                const int G = p->g[0].G;
                k->conv_u[G](la, 0, e, 0);
                r->res = P->residual ? hcur + s : NULL;
                r->y = dst + s;
                fh(la, 0, e, G);
                continue;
            }
            /* from 16 frames (measured slower at 8: the pass's rows are one vector long) */
            la->defer = P->defer && e >= 16;
            for (int g = 0; g < p->n; g++)
                (P->gated ? k->conv_g : k->conv_u)[p->g[g].G](la, 0, e, p->g[g].o0);
            if (la->defer)
                k->tanh_rows(la, e);
            if (dst) { /* h_{l+1} = h_l + W1 a + b1 */
                r->res = P->residual ? hcur + s : NULL;
                r->y = dst + s;
                tm_mm_run(k, &A->pc, r, e);
            }
        }
        if (l + 1 < L)
            A->layers[l + 1].len += n;
    }
    /* the head output (the next array's accumulator start, or the model output) */
    if (A->cut_out)
        return; /* an identity head: the stage hands on the accumulator (cvd_wavenet_stage) */
    tm_mm_args h = {.Cin = C,
                    .F = A->H,
                    .x = w->headr,
                    .xs = bs,
                    .Wt = A->Wh,
                    .b = A->bh,
                    .y = w->head2r,
                    .ys = bs};
    tm_mm_run(k, &A->ph, &h, n);
}

static void tm_process_block(cvd_wavenet *w, const float *in, int n, float *out)
{
    const int nin = w->arrays[0].in;
    const size_t bs = w->bs;
    for (int i = 0; i < nin; i++)
        for (int t = 0; t < n; t++)
            w->condr[(size_t)i * bs + t] = in[(size_t)t * nin + i];
    const float *x = w->condr;
    for (int i = 0; i < w->n_arrays; i++) {
        tm_run_array(w, &w->arrays[i], x, n, i == 0, i == w->n_arrays - 1);
        x = w->xr;
    }
    const int H = w->arrays[w->n_arrays - 1].H;
    for (int o = 0; o < H; o++)
        for (int t = 0; t < n; t++)
            out[(size_t)t * H + o] = w->head2r[(size_t)o * bs + t] * w->head_scale;
}

static void process_block(cvd_wavenet *w, const float *in, int n, float *out)
{
    if (w->tk) {
        tm_process_block(w, in, n, out);
        return;
    }
    const float *x = in;
    for (int i = 0; i < w->n_arrays; i++) {
        run_array(w, &w->arrays[i], x, in, n, i == 0, i == w->n_arrays - 1);
        x = w->xbuf;
    }
    const wn_array *A = &w->arrays[w->n_arrays - 1];
    for (size_t i = 0; i < (size_t)n * A->H; i++)
        out[i] = w->head2[i] * w->head_scale;
}

void cvd_wavenet_process(cvd_wavenet *w, const float *in, int n, float *out)
{
    /* xbuf holds array i's output while array i+1 runs: inputs must not alias it */
    process_block(w, in, n, out);
}

/* ---- pipeline stages (pipe.c) ------------------------------------------------------------ */

int cvd_wavenet_arrays(const cvd_wavenet *w)
{
    return w->n_arrays;
}

size_t cvd_wavenet_handoff_floats(const cvd_wavenet *w, int k)
{
    const wn_array *A = &w->arrays[k - 1];
    return (size_t)w->max_block * (size_t)(w->arrays[0].in + A->C + A->H);
}

void cvd_wavenet_mark_cut(cvd_wavenet *w, int k)
{
    wn_array *A = &w->arrays[k - 1], *B = &w->arrays[k];
    A->cut_out = 1;
    B->cut_in = 1;
}

/* rows (or frames) of n values in and out of a hand-off buffer */
static const float *take_rows(float *dst, size_t stride, int rows, int n, const float *p)
{
    for (int r = 0; r < rows; r++, p += n)
        memcpy(dst + (size_t)r * stride, p, sizeof(float) * (size_t)n);
    return p;
}

/* The hand-off buffer goes to the other core: on x86 it is written with streaming stores,
 * which take no ownership of the lines the other core read last time (the copy into it: 2.6
 * thousand cycles a block of 64 with ordinary stores on two threads, 0.7 so; pipe.c). The
 * caller's release of the buffer must follow an SFENCE (end_put). */
static float *put_rows(float *p, const float *src, size_t stride, int rows, int n)
{
    for (int r = 0; r < rows; r++, p += n) {
        const float *s = src + (size_t)r * stride;
        int t = 0;
#if defined(__SSE2__)
        if (((uintptr_t)p & 15) == 0)
            for (; t + 4 <= n; t += 4)
                _mm_stream_ps(p + t, _mm_loadu_ps(s + t));
#endif
        for (; t < n; t++)
            p[t] = s[t];
    }
    return p;
}

static void end_put(void)
{
#if defined(__SSE2__)
    _mm_sfence();
#endif
}

void cvd_wavenet_stage(cvd_wavenet *w, int a0, int a1, const float *in, int n, float *out)
{
    const int nin = w->arrays[0].in, last = w->n_arrays - 1;
    if (w->tk) {
        const size_t bs = w->bs;
        const float *x = w->condr;
        if (a0 == 0) {
            for (int i = 0; i < nin; i++)
                for (int t = 0; t < n; t++)
                    w->condr[(size_t)i * bs + t] = in[(size_t)t * nin + i];
        } else { /* the condition, the previous array's output and its head's */
            wn_array *B = &w->arrays[a0];
            const float *p = take_rows(w->condr, bs, nin, n, in);
            if (B->cut_in) { /* straight into the first layer's history and the accumulator */
                wn_layer *L0 = &B->layers[0];
                p = take_rows(L0->hist + tm_hist_room(L0, B->C, n), L0->rs, B->C, n, p);
                take_rows(w->headr, bs, B->C, n, p);
                x = NULL;
            } else {
                p = take_rows(w->xr, bs, w->arrays[a0 - 1].C, n, p);
                take_rows(w->head2r, bs, w->arrays[a0 - 1].H, n, p);
                x = w->xr;
            }
        }
        for (int i = a0; i < a1; i++) {
            tm_run_array(w, &w->arrays[i], x, n, i == 0, i == last);
            x = w->xr;
        }
        if (a1 <= last) {
            const wn_array *A = &w->arrays[a1 - 1];
            float *p = put_rows(out, w->condr, bs, nin, n);
            p = put_rows(p, w->xr, bs, A->C, n);
            put_rows(p, A->cut_out ? w->headr : w->head2r, bs, A->H, n);
            end_put();
            return;
        }
        const int H = w->arrays[last].H;
        for (int o = 0; o < H; o++)
            for (int t = 0; t < n; t++)
                out[(size_t)t * H + o] = w->head2r[(size_t)o * bs + t] * w->head_scale;
        return;
    }
    const float *x = in, *cond = in;
    if (a0 > 0) {
        wn_array *B = &w->arrays[a0];
        const size_t C = (size_t)w->arrays[a0 - 1].C, H = (size_t)w->arrays[a0 - 1].H;
        memcpy(w->condf, in, sizeof(float) * (size_t)n * nin);
        if (B->cut_in) { /* straight into the first layer's history and the accumulator */
            memcpy(hist_room(&B->layers[0], B->C, n), in + (size_t)n * nin,
                   sizeof(float) * (size_t)n * C);
            memcpy(w->head, in + (size_t)n * (nin + C), sizeof(float) * (size_t)n * H);
            x = NULL;
        } else {
            memcpy(w->xbuf, in + (size_t)n * nin, sizeof(float) * (size_t)n * C);
            memcpy(w->head2, in + (size_t)n * (nin + C), sizeof(float) * (size_t)n * H);
            x = w->xbuf;
        }
        cond = w->condf;
    }
    for (int i = a0; i < a1; i++) {
        run_array(w, &w->arrays[i], x, cond, n, i == 0, i == last);
        x = w->xbuf;
    }
    if (a1 <= last) {
        const wn_array *A = &w->arrays[a1 - 1];
        const size_t C = (size_t)A->C, H = (size_t)A->H;
        memcpy(out, cond, sizeof(float) * (size_t)n * nin);
        memcpy(out + (size_t)n * nin, w->xbuf, sizeof(float) * (size_t)n * C);
        memcpy(out + (size_t)n * (nin + C), A->cut_out ? w->head : w->head2,
               sizeof(float) * (size_t)n * H);
        return;
    }
    const wn_array *A = &w->arrays[last];
    for (size_t i = 0; i < (size_t)n * A->H; i++)
        out[i] = w->head2[i] * w->head_scale;
}

/* A clone's reset: its template's prewarmed state. Only the keep frames before len are ever
 * read again (the window of the next block, or what a rewind moves to the front). */
static void copy_state(cvd_wavenet *w, const cvd_wavenet *T)
{
    for (int i = 0; i < w->n_arrays; i++) {
        wn_array *A = &w->arrays[i];
        for (int l = 0; l < A->cfg->n_layers; l++) {
            wn_layer *Ly = &A->layers[l];
            const wn_layer *TL = &T->arrays[i].layers[l];
            const size_t from = (size_t)(TL->len - TL->keep);
            Ly->len = TL->len;
            if (w->tk)
                for (int c = 0; c < A->C; c++)
                    memcpy(Ly->hist + (size_t)c * Ly->rs + from,
                           TL->hist + (size_t)c * TL->rs + from, sizeof(float) * (size_t)Ly->keep);
            else
                memcpy(Ly->hist + from * A->C, TL->hist + from * A->C,
                       sizeof(float) * (size_t)Ly->keep * A->C);
        }
    }
}

void cvd_wavenet_reset(cvd_wavenet *w)
{
    if (w->tmpl) {
        copy_state(w, w->tmpl);
        return;
    }
    for (int i = 0; i < w->n_arrays; i++) {
        wn_array *A = &w->arrays[i];
        for (int l = 0; l < A->cfg->n_layers; l++) {
            wn_layer *Ly = &A->layers[l];
            if (w->tk)
                for (int c = 0; c < A->C; c++)
                    memset(Ly->hist + (size_t)c * Ly->rs, 0, sizeof(float) * (size_t)Ly->keep);
            else
                memset(Ly->hist, 0, sizeof(float) * (size_t)Ly->keep * A->C);
            Ly->len = Ly->keep;
        }
    }
    /* NAM's prewarm: the histories take the model's response to silence */
    for (long done = 0; done < w->prewarm; done += w->max_block) {
        int m = w->prewarm - done < w->max_block ? (int)(w->prewarm - done) : w->max_block;
        process_block(w, w->zeros, m, w->outbuf);
    }
}

void cvd_wn_activation_apply(const cvd_wn_activation *a, float *x, int n, int C)
{
    wn_act(a, x, n, C, C);
}

/* ---- templates shared by a model's streams ----------------------------------------------- */

typedef struct cvd_wn_shared {
    const cvd_wn_config *cfg; /* the key: the node's or fusion's configuration, */
    int max_block;            /* the block size */
    cvd_isa isa;              /* and the ISA its kernels were picked for */
    cvd_wavenet *w;           /* prewarmed, never run */
    unsigned long used;       /* when a stream last took it (shared_clock) */
    struct cvd_wn_shared *next;
} cvd_wn_shared;

/* the templates' last uses, in order (read and written under the model's wn_lock) */
static atomic_ulong shared_clock;
/* cvd_net_own_wavenets: this thread's nets get WaveNets of their own */
static _Thread_local int own_wavenets;

void cvd_net_own_wavenets(int own)
{
    own_wavenets = own != 0;
}

static cvd_wavenet *shared_find(cvd_model *m, const cvd_wn_config *cfg, int max_block, cvd_isa isa)
{
    for (cvd_wn_shared *e = m->wn_shared; e; e = e->next)
        if (e->cfg == cfg && e->max_block == max_block && e->isa == isa) {
            atomic_fetch_add(&e->w->refs, 1);
            e->used = atomic_fetch_add(&shared_clock, 1) + 1;
            return e->w;
        }
    return NULL;
}

/* With the model's templates at CVD_WN_SHARED_MAX: the least recently used one, taken out of
 * the list (its clones keep it alive); NULL otherwise. Under wn_lock. */
static cvd_wn_shared *shared_evict(cvd_model *m)
{
    cvd_wn_shared **lru = NULL;
    if (m->n_wn_shared < CVD_WN_SHARED_MAX)
        return NULL;
    for (cvd_wn_shared **p = &m->wn_shared; *p; p = &(*p)->next)
        if (lru == NULL || (*p)->used < (*lru)->used)
            lru = p;
    if (lru == NULL)
        return NULL;
    cvd_wn_shared *e = *lru;
    *lru = e->next;
    m->n_wn_shared--;
    return e;
}

int cvd_wavenet_create_shared(cvd_model *m, const cvd_wn_config *cfg, int fusion, int max_block,
                              cvd_wavenet **out, cvd_err *err)
{
    const cvd_isa isa = cvd_isa_active();
    int rc;
    *out = NULL;
    cvd_wavenet *T = NULL;
    if (!own_wavenets) {
        pthread_mutex_lock(&m->wn_lock);
        T = shared_find(m, cfg, max_block, isa);
        pthread_mutex_unlock(&m->wn_lock);
    }
    if (T == NULL) { /* built and prewarmed here, outside the lock */
        /* the model's configuration: it lives as long as the model (freed with it, or by
         * cvd_model_fuse, which runs at load, before any net), and every net holds the
         * model */
        rc = wavenet_new(cfg, max_block, NULL, 0, 1, &T, err);
        if (rc < 0)
            return rc;
        if (fusion >= 0) {
            const size_t nw = cvd_wn_weight_count(cfg);
            float *wt = malloc(sizeof(float) * nw);
            if (wt == NULL) {
                cvd_wavenet_destroy(T);
                return cvd_err_set(err, CVD_ENOMEM, "out of memory");
            }
            cvd_fusion_weights(m, &m->fusions[fusion], wt);
            rc = cvd_wavenet_set_weights(T, wt, nw, err);
            free(wt);
        } else {
            const cvd_node *nd = NULL;
            for (int i = 0; i < m->n_nodes && nd == NULL; i++)
                if (m->nodes[i].wn == cfg)
                    nd = &m->nodes[i];
            rc = nd ? cvd_wavenet_set_weights(T, nd->wn_weights, nd->wn_nweights, err)
                    : cvd_err_set(err, CVD_EINVAL, "WaveNet: not a configuration of the model");
        }
        if (rc < 0) {
            cvd_wavenet_destroy(T);
            return rc;
        }
        if (own_wavenets) { /* a WaveNet of its own, as asked */
            *out = T;
            return CVD_OK;
        }
        cvd_wn_shared *e = malloc(sizeof *e), *old = NULL;
        int kept = 0;
        pthread_mutex_lock(&m->wn_lock);
        cvd_wavenet *other = shared_find(m, cfg, max_block, isa);
        if (other == NULL && e && T->state_bytes <= CVD_WN_SHARED_BYTES) {
            /* past CVD_WN_SHARED_MAX, the least recently used template makes room: a block
             * size a stream uses now is worth more than one probed once (the daemon's
             * memory figure builds nets at 18 block sizes at load) */
            old = shared_evict(m);
            kept = 1;
            *e = (cvd_wn_shared){
                cfg, max_block, isa, T, atomic_fetch_add(&shared_clock, 1) + 1, m->wn_shared};
            m->wn_shared = e;
            m->n_wn_shared++;
            atomic_fetch_add(&T->refs, 1); /* the cache's, beside ours */
            e = NULL;
        }
        pthread_mutex_unlock(&m->wn_lock);
        free(e);
        if (old) { /* its clones keep it until they end */
            cvd_wavenet_destroy(old->w);
            free(old);
        }
        if (other) { /* another thread's came first */
            cvd_wavenet_destroy(T);
            T = other;
        } else if (!kept) { /* no room: the stream runs the one built */
            *out = T;
            return CVD_OK;
        }
    }
    rc = wavenet_new(cfg, max_block, T, 1, 1, out, err);
    cvd_wavenet_destroy(T); /* the clone holds its own reference */
    return rc;
}

int cvd_wavenet_shared_kept(cvd_model *m, int max_block)
{
    int n = 0;
    pthread_mutex_lock(&m->wn_lock);
    for (const cvd_wn_shared *e = m->wn_shared; e; e = e->next)
        n += e->max_block == max_block;
    pthread_mutex_unlock(&m->wn_lock);
    return n;
}

void cvd_wavenet_shared_flush(cvd_model *m)
{
    pthread_mutex_lock(&m->wn_lock);
    cvd_wn_shared *e = m->wn_shared;
    m->wn_shared = NULL;
    m->n_wn_shared = 0;
    pthread_mutex_unlock(&m->wn_lock);
    while (e) {
        cvd_wn_shared *next = e->next;
        cvd_wavenet_destroy(e->w);
        free(e);
        e = next;
    }
}
