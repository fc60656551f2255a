/*
 * convd-demo: what `make run` shows until the daemon exists. Builds a WaveNet-style stack of
 * causal dilated Conv1D layers (16 channels, kernel 3, dilations 1..512, tanh), streams one
 * second of a 48 kHz test signal through it in blocks of 64 frames, checks the stream against
 * the offline computation of the whole second, and prints the figures.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "convd_dsp.h"

#define NL 10
#define CH 16
#define BLOCK 64
#define RATE 48000

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int main(void)
{
    cvd_layer *L[NL + 2];
    cvd_err err;
    cvd_conv_config c;
    int n = RATE;
    int nlayers = 0;

    /* 1 -> 16 input layer, ten dilated layers, 16 -> 1 output layer */
    for (int i = 0; i < NL + 2; i++) {
        cvd_conv_config_init(&c, CVD_CONV1D);
        c.padding = CVD_PAD_CAUSAL;
        c.filters = i == NL + 1 ? 1 : CH;
        c.kernel_size = (i == 0 || i == NL + 1) ? 1 : 3;
        c.dilation_rate = (i == 0 || i == NL + 1) ? 1 : 1 << (i - 1);
        c.activation = i == NL + 1 ? CVD_ACT_LINEAR : CVD_ACT_TANH;
        if (cvd_layer_create(&c, i == 0 ? 1 : CH, BLOCK, &L[i], &err) < 0) {
            fprintf(stderr, "convd-demo: %s\n", err.msg);
            return 1;
        }
        cvd_layer_init_weights(L[i], 100 + (uint64_t)i);
        nlayers++;
    }

    float *x = malloc(sizeof(float) * (size_t)n);
    for (int t = 0; t < n; t++) /* a decaying pluck at 110 Hz with its harmonics */
        x[t] = (float)(0.8 * exp(-3.0 * t / RATE) *
                       (sin(2 * M_PI * 110 * t / RATE) + 0.3 * sin(2 * M_PI * 330 * t / RATE)));

    /* streamed, block by block */
    float *y = malloc(sizeof(float) * (size_t)n);
    float *a = malloc(sizeof(float) * BLOCK * CH), *b = malloc(sizeof(float) * BLOCK * CH * 2);
    int done = 0;
    double t0 = now();
    for (int pos = 0; pos < n; pos += BLOCK) {
        int m = n - pos < BLOCK ? n - pos : BLOCK, no = m;
        memcpy(a, x + pos, sizeof(float) * (size_t)m);
        for (int i = 0; i < nlayers; i++) {
            cvd_layer_process(L[i], a, no, b, &no);
            memcpy(a, b, sizeof(float) * (size_t)no * cvd_layer_out_channels(L[i]));
        }
        memcpy(y + done, a, sizeof(float) * (size_t)no);
        done += no;
    }
    double elapsed = now() - t0;

    /* offline, the whole second at once */
    float *u = malloc(sizeof(float) * (size_t)n * CH), *v = malloc(sizeof(float) * (size_t)n * CH);
    long nu = n;
    memcpy(u, x, sizeof(float) * (size_t)n);
    for (int i = 0; i < nlayers; i++) {
        cvd_layer_forward(L[i], u, nu, v, &nu, NULL);
        memcpy(u, v, sizeof(float) * (size_t)nu * cvd_layer_out_channels(L[i]));
    }
    double maxerr = 0, peak = 0;
    for (int t = 0; t < n; t++) {
        maxerr = fmax(maxerr, fabs((double)y[t] - u[t]));
        peak = fmax(peak, fabs((double)u[t]));
    }

    double macs = 0;
    int rf = 1;
    for (int i = 0; i < nlayers; i++) {
        macs += cvd_layer_macs_per_frame(L[i]);
        rf += (cvd_layer_config(L[i])->kernel_size - 1) * cvd_layer_config(L[i])->dilation_rate;
    }
    printf("convd-demo: the daemon is not built yet; this shows the layer library.\n\n");
    printf("  network      %d causal Conv1D layers, %d channels, kernel 3, dilations 1..512, "
           "tanh\n", nlayers, CH);
    printf("  receptive    %d frames (%.1f ms at %d Hz), %.0f multiply-adds per frame\n", rf,
           1000.0 * rf / RATE, RATE, macs);
    printf("  streamed     %d frames in blocks of %d: %d frames out, %.1fx real time (%s)\n", n,
           BLOCK, done, (double)n / RATE / elapsed, cvd_isa_name(cvd_isa_active()));
    printf("  offline      the same second computed whole: max |stream - offline| = %.3g "
           "(peak %.3g)\n", maxerr, peak);
    for (int i = 0; i < nlayers; i++)
        cvd_layer_destroy(L[i]);
    free(x), free(y), free(a), free(b), free(u), free(v);
    return maxerr <= 1e-5 * fmax(1.0, peak) ? 0 : 1;
}
