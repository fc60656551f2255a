/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Long convolutions: a uniformly partitioned FFT convolution with a direct first partition.
 *
 * With partitions of B taps, h = h_0 + h_1 z^-B + ... + h_{P-1} z^-(P-1)B. Output frame t of
 * block k (t = kB + u) is
 *
 *   y[t] = (h_0 * x)[t]  +  sum_{p >= 1} (h_p * x)[t - pB]
 *
 * The first term reads inputs t-B+1 .. t and is computed directly as each frame arrives (the
 * "head": B multiply-adds per frame, vectorised over frames). Every other term reads only
 * inputs before kB, so when block k-1 completes the whole tail of block k is computed at once
 * by overlap-save: X_j is the spectrum of input blocks j-1 and j (2B points), H_p that of h_p
 * zero-padded to 2B, and the last B points of IFFT(sum_{p>=1} X_{k-p} H_p) are the tail of
 * block k. Zero added latency, one FFT per input channel and one inverse FFT per output
 * channel every B frames, and (P-1)(B+1) complex multiply-adds per channel pair.
 *
 * Spectra are stored split (real parts, then imaginary parts, each padded to S floats, a
 * multiple of 16), so the complex multiply-adds are plain vector loops; FFTW's guru split
 * interface writes and reads that layout directly.
 */
#include "fftconv.h"

#include <fftw3.h>
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "graph_internal.h"

#if defined(__x86_64__) || defined(__i386__)
#define CVD_X86 1
#include <immintrin.h>
#endif

typedef void (*head_fn)(const float *x, int n, const float *hr, int B, float *y);
typedef void (*cmac_fn)(const float *xr, const float *xi, const float *hr, const float *hi,
                        float *ar, float *ai, int S);

struct cvd_fftconv {
    int C, F, G, Cg, Fg;
    int N; /* taps */
    int B; /* partition: frames per block */
    int P; /* partitions (the first is the head) */
    int S; /* spectrum stride in floats: B + 1 rounded up to 16 */
    fftwf_plan fwd, inv;
    float *xb;      /* C x 2B: the previous block and the current one, per channel */
    float *hr;      /* F x Cg x B: the head's taps, reversed (hr[i] = h[B-1-i]) */
    float *H;       /* F x (P-1) x Cg x 2S: the tail partitions' spectra, scaled by 1/2B */
    float *X;       /* (P-1) x C x 2S: the delay line of input spectra */
    float *acc;     /* 2S */
    float *ttime;   /* 2B: an inverse FFT's output */
    float *tail;    /* F x B: the tail of the current block */
    float *yh;      /* B: one output channel's head */
    float *scratch; /* 2B + taps: set_kernel's padded segment and FIR of one channel pair */
    int pos;        /* frames of the current block received */
    int cur;        /* delay-line slot of the newest spectrum */
    head_fn head;
    cmac_fn cmac;
};

/* ---- FFTW's planner is not thread-safe: one plan at a time in this process -------------- */

static atomic_flag plan_lock = ATOMIC_FLAG_INIT;

static void lock_planner(void)
{
    while (atomic_flag_test_and_set_explicit(&plan_lock, memory_order_acquire))
        ;
}

static void unlock_planner(void)
{
    atomic_flag_clear_explicit(&plan_lock, memory_order_release);
}

/* ---- kernels ------------------------------------------------------------------------------ */

/* y[t] += sum_{i<B} hr[i] x[t-B+1+i] for t < n, as B multiply-adds in order of i. */
static void head_portable(const float *x, int n, const float *hr, int B, float *y)
{
    for (int i = 0; i < B; i++) {
        const float h = hr[i];
        const float *xi = x - B + 1 + i;
        for (int t = 0; t < n; t++)
            y[t] += h * xi[t];
    }
}

static void cmac_portable(const float *xr, const float *xi, const float *hr, const float *hi,
                          float *ar, float *ai, int S)
{
    for (int k = 0; k < S; k++) {
        ar[k] += xr[k] * hr[k] - xi[k] * hi[k];
        ai[k] += xr[k] * hi[k] + xi[k] * hr[k];
    }
}

#if CVD_X86 && defined(__GNUC__)

/* Tiles of 64 frames in four registers; masked loads at the end, so every frame sees the
 * same fused multiply-adds in the same order wherever it falls. */
__attribute__((target("avx512f"))) static void head_avx512(const float *x, int n, const float *hr,
                                                           int B, float *y)
{
    for (int t = 0; t < n; t += 64) {
        __mmask16 m[4];
        __m512 a[4];
        for (int v = 0; v < 4; v++) {
            int left = n - t - 16 * v;
            m[v] = left >= 16 ? (__mmask16)0xffff
                   : left > 0 ? (__mmask16)((1u << left) - 1)
                              : (__mmask16)0;
            a[v] = _mm512_maskz_loadu_ps(m[v], y + t + 16 * v);
        }
        const float *xt = x + t - B + 1;
        if (m[3] == 0xffff) {
            for (int i = 0; i < B; i++) {
                const __m512 h = _mm512_set1_ps(hr[i]);
                a[0] = _mm512_fmadd_ps(h, _mm512_loadu_ps(xt + i), a[0]);
                a[1] = _mm512_fmadd_ps(h, _mm512_loadu_ps(xt + i + 16), a[1]);
                a[2] = _mm512_fmadd_ps(h, _mm512_loadu_ps(xt + i + 32), a[2]);
                a[3] = _mm512_fmadd_ps(h, _mm512_loadu_ps(xt + i + 48), a[3]);
            }
        } else {
            for (int i = 0; i < B; i++) {
                const __m512 h = _mm512_set1_ps(hr[i]);
                for (int v = 0; v < 4; v++)
                    a[v] = _mm512_fmadd_ps(h, _mm512_maskz_loadu_ps(m[v], xt + i + 16 * v), a[v]);
            }
        }
        for (int v = 0; v < 4; v++)
            _mm512_mask_storeu_ps(y + t + 16 * v, m[v], a[v]);
    }
}

__attribute__((target("avx512f"))) static void cmac_avx512(const float *xr, const float *xi,
                                                           const float *hr, const float *hi,
                                                           float *ar, float *ai, int S)
{
    for (int k = 0; k < S; k += 16) {
        const __m512 a = _mm512_load_ps(xr + k), b = _mm512_load_ps(xi + k);
        const __m512 c = _mm512_load_ps(hr + k), d = _mm512_load_ps(hi + k);
        __m512 re = _mm512_load_ps(ar + k), im = _mm512_load_ps(ai + k);
        re = _mm512_fmadd_ps(a, c, re);
        re = _mm512_fnmadd_ps(b, d, re);
        im = _mm512_fmadd_ps(a, d, im);
        im = _mm512_fmadd_ps(b, c, im);
        _mm512_store_ps(ar + k, re);
        _mm512_store_ps(ai + k, im);
    }
}

/* Tiles of 32 frames; the frames after the last whole vector take the same fused
 * multiply-adds one at a time (fmaf rounds exactly as the vector instruction does). */
__attribute__((target("avx2,fma"))) static void head_avx2(const float *x, int n, const float *hr,
                                                          int B, float *y)
{
    int t = 0;
    for (; t + 32 <= n; t += 32) {
        __m256 a0 = _mm256_loadu_ps(y + t), a1 = _mm256_loadu_ps(y + t + 8);
        __m256 a2 = _mm256_loadu_ps(y + t + 16), a3 = _mm256_loadu_ps(y + t + 24);
        const float *xt = x + t - B + 1;
        for (int i = 0; i < B; i++) {
            const __m256 h = _mm256_broadcast_ss(hr + i);
            a0 = _mm256_fmadd_ps(h, _mm256_loadu_ps(xt + i), a0);
            a1 = _mm256_fmadd_ps(h, _mm256_loadu_ps(xt + i + 8), a1);
            a2 = _mm256_fmadd_ps(h, _mm256_loadu_ps(xt + i + 16), a2);
            a3 = _mm256_fmadd_ps(h, _mm256_loadu_ps(xt + i + 24), a3);
        }
        _mm256_storeu_ps(y + t, a0);
        _mm256_storeu_ps(y + t + 8, a1);
        _mm256_storeu_ps(y + t + 16, a2);
        _mm256_storeu_ps(y + t + 24, a3);
    }
    for (; t + 8 <= n; t += 8) {
        __m256 a0 = _mm256_loadu_ps(y + t);
        const float *xt = x + t - B + 1;
        for (int i = 0; i < B; i++)
            a0 = _mm256_fmadd_ps(_mm256_broadcast_ss(hr + i), _mm256_loadu_ps(xt + i), a0);
        _mm256_storeu_ps(y + t, a0);
    }
    for (; t < n; t++) {
        float a = y[t];
        const float *xt = x + t - B + 1;
        for (int i = 0; i < B; i++)
            a = __builtin_fmaf(hr[i], xt[i], a);
        y[t] = a;
    }
}

__attribute__((target("avx2,fma"))) static void cmac_avx2(const float *xr, const float *xi,
                                                          const float *hr, const float *hi,
                                                          float *ar, float *ai, int S)
{
    for (int k = 0; k < S; k += 8) {
        const __m256 a = _mm256_load_ps(xr + k), b = _mm256_load_ps(xi + k);
        const __m256 c = _mm256_load_ps(hr + k), d = _mm256_load_ps(hi + k);
        __m256 re = _mm256_load_ps(ar + k), im = _mm256_load_ps(ai + k);
        re = _mm256_fmadd_ps(a, c, re);
        re = _mm256_fnmadd_ps(b, d, re);
        im = _mm256_fmadd_ps(a, d, im);
        im = _mm256_fmadd_ps(b, c, im);
        _mm256_store_ps(ar + k, re);
        _mm256_store_ps(ai + k, im);
    }
}

#endif /* CVD_X86 */

/* ---- create / destroy --------------------------------------------------------------------- */

/* 64-byte aligned and zeroed (the kernels' aligned loads; FFTW sees one alignment) */
static float *falloc(size_t n)
{
    size_t bytes = (n * sizeof(float) + 127) / 64 * 64;
    float *p = aligned_alloc(64, bytes);
    if (p)
        memset(p, 0, bytes);
    return p;
}

void cvd_fftconv_destroy(cvd_fftconv *fc)
{
    if (fc == NULL)
        return;
    lock_planner();
    if (fc->fwd)
        fftwf_destroy_plan(fc->fwd);
    if (fc->inv)
        fftwf_destroy_plan(fc->inv);
    unlock_planner();
    free(fc->xb);
    free(fc->hr);
    free(fc->H);
    free(fc->X);
    free(fc->acc);
    free(fc->ttime);
    free(fc->tail);
    free(fc->yh);
    free(fc->scratch);
    free(fc);
}

int cvd_fftconv_create(int C, int F, int G, int taps, int B, cvd_isa isa, cvd_fftconv **out,
                       cvd_err *err)
{
    cvd_fftconv *fc;
    *out = NULL;
    if (C <= 0 || F <= 0 || G <= 0 || C % G || F % G || taps <= 0)
        return cvd_err_set(err, CVD_EINVAL,
                           "FFT convolution: %d input and %d output channels in %d groups, "
                           "%d taps: invalid",
                           C, F, G, taps);
    if (B < 16 || B > 4096 || (B & (B - 1)))
        return cvd_err_set(err, CVD_EINVAL,
                           "FFT convolution: partition of %d frames: must be a power of two "
                           "in 16..4096",
                           B);
    fc = calloc(1, sizeof *fc);
    if (fc == NULL)
        return cvd_err_set(err, CVD_ENOMEM, "out of memory");
    fc->C = C;
    fc->F = F;
    fc->G = G;
    fc->Cg = C / G;
    fc->Fg = F / G;
    fc->N = taps;
    fc->B = B;
    fc->P = (taps + B - 1) / B;
    fc->S = (B + 1 + 15) / 16 * 16;
    const size_t S2 = 2 * (size_t)fc->S, tp = (size_t)(fc->P - 1);
    fc->xb = falloc((size_t)C * 2 * B);
    fc->hr = falloc((size_t)F * fc->Cg * B);
    fc->H = falloc(tp ? (size_t)F * tp * fc->Cg * S2 : 16);
    fc->X = falloc(tp ? tp * C * S2 : 16);
    fc->acc = falloc(S2);
    fc->ttime = falloc(2 * (size_t)B);
    fc->tail = falloc((size_t)F * B);
    fc->yh = falloc((size_t)B);
    fc->scratch = falloc((size_t)taps + 2 * (size_t)B);
    if (!fc->xb || !fc->hr || !fc->H || !fc->X || !fc->acc || !fc->ttime || !fc->tail || !fc->yh ||
        !fc->scratch) {
        cvd_fftconv_destroy(fc);
        return cvd_err_set(err, CVD_ENOMEM,
                           "FFT convolution of %d taps, %d x %d channels: out of memory", taps, C,
                           F);
    }
    if (fc->P > 1) {
        /* every array given to the execute functions is 64-byte aligned, as these are */
        fftwf_iodim dim = {.n = 2 * B, .is = 1, .os = 1};
        lock_planner();
        fc->fwd = fftwf_plan_guru_split_dft_r2c(1, &dim, 0, NULL, fc->xb, fc->X, fc->X + fc->S,
                                                FFTW_ESTIMATE | FFTW_PRESERVE_INPUT);
        fc->inv = fftwf_plan_guru_split_dft_c2r(1, &dim, 0, NULL, fc->acc, fc->acc + fc->S,
                                                fc->ttime, FFTW_ESTIMATE | FFTW_DESTROY_INPUT);
        unlock_planner();
        if (fc->fwd == NULL || fc->inv == NULL) {
            cvd_fftconv_destroy(fc);
            return cvd_err_set(err, CVD_ENOMEM, "FFTW could not plan an FFT of %d points", 2 * B);
        }
    }
    fc->head = head_portable;
    fc->cmac = cmac_portable;
#if CVD_X86 && defined(__GNUC__)
    if (isa >= CVD_ISA_AVX512) {
        fc->head = head_avx512;
        fc->cmac = cmac_avx512;
    } else if (isa >= CVD_ISA_AVX2) {
        fc->head = head_avx2;
        fc->cmac = cmac_avx2;
    }
#else
    (void)isa;
#endif
    cvd_fftconv_reset(fc, 0);
    *out = fc;
    return CVD_OK;
}

int cvd_fftconv_partition(const cvd_fftconv *fc)
{
    return fc->B;
}

size_t cvd_fftconv_state_bytes(const cvd_fftconv *fc)
{
    const size_t S2 = 2 * (size_t)fc->S, tp = (size_t)(fc->P - 1);
    return ((size_t)fc->C * 2 * fc->B + tp * fc->C * S2 + S2 + 2 * (size_t)fc->B +
            (size_t)fc->F * fc->B + fc->B) *
           sizeof(float);
}

double cvd_fftconv_flops_per_frame(int C, int F, int G, int taps, int B)
{
    const double pairs = (double)C / G * F, P = (taps + B - 1) / B;
    const double fft = 2.5 * 2 * B * __builtin_log2(2.0 * B); /* a real FFT of 2B points */
    return 2.0 * pairs * B + (8.0 * pairs * (P - 1) * (B + 1) + (C + F) * fft) / B;
}

/* ---- kernel ------------------------------------------------------------------------------- */

void cvd_fftconv_set_kernel(cvd_fftconv *fc, const float *K, int k, int d)
{
    const int B = fc->B, N = fc->N, Cg = fc->Cg, F = fc->F, S = fc->S;
    float *seg = fc->scratch, *h = fc->scratch + 2 * (size_t)B; /* seg: aligned as planned */
    const float scale = 1.0f / (float)(2 * B);

    for (int f = 0; f < F; f++) {
        for (int cl = 0; cl < Cg; cl++) {
            /* the FIR of this channel pair: h[m] applies to x[t - m] */
            memset(h, 0, (size_t)N * sizeof(float));
            for (int j = 0; j < k; j++) {
                long m = (long)(k - 1 - j) * d;
                if (m < N)
                    h[m] = K[((size_t)j * Cg + cl) * F + f];
            }
            float *hr = fc->hr + ((size_t)f * Cg + cl) * B;
            for (int i = 0; i < B; i++)
                hr[i] = B - 1 - i < N ? h[B - 1 - i] : 0.0f;
            for (int p = 1; p < fc->P; p++) {
                int len = N - p * B < B ? N - p * B : B;
                memset(seg, 0, 2 * (size_t)B * sizeof(float));
                for (int i = 0; i < len; i++)
                    seg[i] = h[(size_t)p * B + i] * scale;
                float *Hs = fc->H + (((size_t)f * (fc->P - 1) + (p - 1)) * Cg + cl) * 2 * S;
                fftwf_execute_split_dft_r2c(fc->fwd, seg, Hs, Hs + S);
            }
        }
    }
}

/* ---- streaming ---------------------------------------------------------------------------- */

void cvd_fftconv_reset(cvd_fftconv *fc, long zeros)
{
    const size_t S2 = 2 * (size_t)fc->S, tp = (size_t)(fc->P - 1);
    memset(fc->xb, 0, (size_t)fc->C * 2 * fc->B * sizeof(float));
    if (tp)
        memset(fc->X, 0, tp * fc->C * S2 * sizeof(float));
    memset(fc->tail, 0, (size_t)fc->F * fc->B * sizeof(float));
    fc->pos = (int)(zeros % fc->B);
    fc->cur = 0;
}

/* Block complete: its spectrum into the delay line, the next block's tail, and the block
 * becomes the previous one. */
static void block_done(cvd_fftconv *fc)
{
    const int B = fc->B, C = fc->C, S = fc->S, Cg = fc->Cg, Fg = fc->Fg, T = fc->P - 1;

    if (T > 0) {
        fc->cur = (fc->cur + 1) % T;
        for (int c = 0; c < C; c++) {
            float *Xs = fc->X + ((size_t)fc->cur * C + c) * 2 * S;
            fftwf_execute_split_dft_r2c(fc->fwd, fc->xb + (size_t)c * 2 * B, Xs, Xs + S);
        }
        for (int f = 0; f < fc->F; f++) {
            const int g = f / Fg;
            memset(fc->acc, 0, 2 * (size_t)S * sizeof(float));
            for (int p = 1; p <= T; p++) {
                const int slot = (fc->cur - (p - 1) + T) % T;
                const float *Hp = fc->H + (((size_t)f * T + (p - 1)) * Cg) * 2 * S;
                const float *Xp = fc->X + ((size_t)slot * C + (size_t)g * Cg) * 2 * S;
                for (int cl = 0; cl < Cg; cl++) {
                    const float *Xs = Xp + (size_t)cl * 2 * S, *Hs = Hp + (size_t)cl * 2 * S;
                    fc->cmac(Xs, Xs + S, Hs, Hs + S, fc->acc, fc->acc + S, S);
                }
            }
            fftwf_execute_split_dft_c2r(fc->inv, fc->acc, fc->acc + S, fc->ttime);
            memcpy(fc->tail + (size_t)f * B, fc->ttime + B, (size_t)B * sizeof(float));
        }
    }
    for (int c = 0; c < C; c++) {
        float *xc = fc->xb + (size_t)c * 2 * B;
        memcpy(xc, xc + B, (size_t)B * sizeof(float));
    }
    fc->pos = 0;
}

void cvd_fftconv_process(cvd_fftconv *fc, const float *x, int n, float *y)
{
    const int B = fc->B, C = fc->C, F = fc->F, Cg = fc->Cg, Fg = fc->Fg;

    while (n > 0) {
        const int pos = fc->pos, m = n < B - pos ? n : B - pos;
        for (int c = 0; c < C; c++) {
            float *dst = fc->xb + (size_t)c * 2 * B + B + pos;
            if (x == NULL)
                memset(dst, 0, (size_t)m * sizeof(float));
            else if (C == 1)
                memcpy(dst, x, (size_t)m * sizeof(float));
            else
                for (int t = 0; t < m; t++)
                    dst[t] = x[(size_t)t * C + c];
        }
        for (int f = 0; f < F; f++) {
            const int g = f / Fg;
            float *yh = fc->yh;
            memset(yh, 0, (size_t)m * sizeof(float));
            for (int cl = 0; cl < Cg; cl++)
                fc->head(fc->xb + (size_t)(g * Cg + cl) * 2 * B + B + pos, m,
                         fc->hr + ((size_t)f * Cg + cl) * B, B, yh);
            const float *tl = fc->tail + (size_t)f * B + pos;
            if (F == 1)
                for (int t = 0; t < m; t++)
                    y[t] = yh[t] + tl[t];
            else
                for (int t = 0; t < m; t++)
                    y[(size_t)t * F + f] = yh[t] + tl[t];
        }
        if (x != NULL)
            x += (size_t)m * C;
        y += (size_t)m * F;
        n -= m;
        fc->pos += m;
        if (fc->pos == B)
            block_done(fc);
    }
}

/* ---- when to use it ----------------------------------------------------------------------- */

/*
 * The choice is a cost model with constants measured on the development machine (an AVX-512
 * Xeon-class core) by `bench_longconv --crossover` (which prints the measured ns/frame of the
 * direct form and of every partition next to this model's choice): ns per frame at block 64,
 * fitted by least squares over 1->1, 1->2, 2->2 (groups 2), 4->4 and 16->16 channels and
 * 16..8192 taps (median error 7% on AVX-512, 13% on AVX2, 12% portable). A table, not a calibration
 * at load: the same model file gives the same numbers in every process (the daemon's stream and
 * convd-run compare equal) and loading stays fast; near the switch point both paths cost
 * about the same, so the model's error costs little there.
 */
typedef struct cost_consts {
    double frame;  /* per channel (in + out) and frame: copies, interleaving */
    double head;   /* per multiply-add of the direct first partition */
    double bin;    /* per complex multiply-add of the frequency-domain partitions */
    double fft;    /* per channel, frame and log2 of the FFT size (forward and inverse) */
    double pair;   /* per channel pair and frame: the head's call overhead */
    double direct; /* the SIMD direct form: per tap, input channel and vector of outputs */
    int lanes;     /* output channels per vector of the SIMD direct form */
    double plain;  /* the portable dense form: per tap, input channel and 16 output channels */
    double group;  /* grouped convolutions (portable): per multiply-add */
} cost_consts;

static const cost_consts costs[3] = {
    [CVD_ISA_PORTABLE] = {1.31, 0.121, 0.573, 0.154, 3.06, 0, 1, 3.7, 2.6},
    [CVD_ISA_AVX2] = {1.04, 0.0539, 0.278, 0.280, 3.41, 0.21, 8, 3.7, 2.6},
    [CVD_ISA_AVX512] = {0.75, 0.0215, 0.246, 0.18, 2.21, 0.30, 16, 3.7, 2.6},
};

static double fft_cost(const cost_consts *k, int C, int F, int G, int taps, int B)
{
    const double pairs = (double)(C / G) * F;
    const int P = (taps + B - 1) / B, S = (B + 1 + 15) / 16 * 16;
    double t = k->frame * (C + F) + k->head * pairs * B + k->pair * pairs;
    if (P > 1)
        t += k->bin * pairs * (P - 1) * S / B + k->fft * (C + F) * 2 * log2(2.0 * B);
    return t;
}

static double direct_cost(const cost_consts *k, cvd_isa isa, int C, int F, int G, int taps)
{
    const double Cg = C / G;
    if (G > 1)
        return k->group * taps * Cg * F;
    if (isa == CVD_ISA_AVX512 || (isa == CVD_ISA_AVX2 && F % 8 == 0))
        return k->direct * taps * Cg * ((F + k->lanes - 1) / k->lanes);
    return k->plain * taps * Cg * ((F + 15) / 16);
}

/* The partition the model finds cheapest, and its cost. */
static int best_partition(cvd_isa isa, int C, int F, int G, int taps, double *cost)
{
    const cost_consts *k = &costs[isa];
    int best = 32;
    double bc = fft_cost(k, C, F, G, taps, 32);
    for (int B = 64; B <= 1024; B *= 2) {
        double c = fft_cost(k, C, F, G, taps, B);
        if (c < bc) {
            bc = c;
            best = B;
        }
    }
    *cost = bc;
    return best;
}

static int fft_forced = -1;

int cvd_conv_fft_force(int partition)
{
    if (partition > 0 && (partition < 16 || partition > 4096 || (partition & (partition - 1))))
        return CVD_EINVAL;
    fft_forced = partition < 0 ? -1 : partition;
    return CVD_OK;
}

int cvd_conv_fft_choose(cvd_layer_kind kind, int C, int F, int G, int k, int d, int s)
{
    if (kind == CVD_CONV1D_TRANSPOSE || s != 1 || C <= 0 || F <= 0 || G <= 0 || k <= 0 || d <= 0)
        return 0;
    if (fft_forced >= 0)
        return fft_forced;
    /* the direct form multiplies the k taps, the FFT path the whole dilated extent: a short
     * kernel however dilated (a TCN's k = 3 at d = 512) stays direct */
    if (k < 16) /* below the shortest kernel measured: the direct form */
        return 0;
    const int ek = (k - 1) * d + 1;
    cvd_isa isa = cvd_isa_active();
    double fc, dc = direct_cost(&costs[isa], isa, C, F, G, k);
    int B = best_partition(isa, C, F, G, ek, &fc);
    return fc < dc ? B : 0;
}

int cvd_conv_fft_partition_for(int C, int F, int G, int ek, int s)
{
    return cvd_conv_fft_choose(CVD_CONV1D, C, F, G, ek, 1, s);
}

int cvd_conv_fft_threshold(int C, int F, int G, int s)
{
    if (s != 1 || C <= 0 || F <= 0 || G <= 0)
        return 0;
    /* the costs grow with the taps, the direct form's faster: the first length that
     * switches (to the nearest tap below 64, then within 1/64) */
    for (int ek = 16; ek <= 1 << 24; ek += ek < 64 ? 1 : ek / 64)
        if (cvd_conv_fft_choose(CVD_CONV1D, C, F, G, ek, 1, s) > 0)
            return ek;
    return 0;
}
