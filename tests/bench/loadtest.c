/* SPDX-License-Identifier: Apache-2.0 */
/*
 * loadtest - the convd daemon under load on loopback: N clients at once streaming a model over
 * the raw protocol in blocks of 64 frames, as fast as the daemon answers.
 *
 *   loadtest [--host H --port P] [--model FILE] [--clients 1,16,256] [--seconds S]
 *            [--block N] [--window W] [--workers N]
 *
 * Without --port it starts build/convd itself (found beside this program's folder, or in
 * CVD_BUILD_DIR) on a temporary configuration: one raw listener on 127.0.0.1, port 0, serving
 * MODEL (default config/models/drive.json if present, else tests/data/nam/wide16_tanh.nam,
 * relative to the working directory: make bench runs from the top of the tree). With --port it
 * connects to a daemon already running (its raw listener must serve MODEL, which is loaded here
 * only for its channel counts and latency).
 *
 * Each client keeps at most W blocks (default 16) beyond the output it has received in flight:
 * full speed, but the latency is the daemon's, not that of a queue the client built. Per block,
 * latency = the time its output block's last byte arrived - the time its last byte was sent.
 * One line per case: frames per second (all clients together, and per client as a multiple of
 * real time at the model's rate), latency p50/p99/max, and errors.
 *
 * Never fails the build: if the daemon or the model cannot be found, it says so and exits 0.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PROG "loadtest"
#include "loadgen.h"

/* ---- main ------------------------------------------------------------------------------- */

static void usage(void)
{
    fprintf(stderr, "usage: " PROG " [--host H --port P] [--model FILE] [--clients 1,16,256]\n"
                    "                [--seconds S] [--block N] [--window W] [--workers N]\n");
}

int main(int argc, char **argv)
{
    options o = {.host = "127.0.0.1",
                 .clients = {1, 16, 256},
                 .n_cases = 3,
                 .seconds = 3,
                 .block = 64,
                 .window = 16,
                 .workers = 0};
    o.model = file_exists("config/models/drive.json") ? "config/models/drive.json"
                                                      : "tests/data/nam/wide16_tanh.nam";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--host") == 0 && v) {
            o.host = v;
            i++;
        } else if (strcmp(a, "--port") == 0 && v) {
            o.port = atoi(v);
            i++;
        } else if (strcmp(a, "--model") == 0 && v) {
            o.model = v;
            i++;
        } else if (strcmp(a, "--seconds") == 0 && v) {
            o.seconds = atof(v);
            i++;
        } else if (strcmp(a, "--block") == 0 && v) {
            o.block = atoi(v);
            i++;
        } else if (strcmp(a, "--window") == 0 && v) {
            o.window = atoi(v);
            i++;
        } else if (strcmp(a, "--workers") == 0 && v) {
            o.workers = atoi(v);
            i++;
        } else if (strcmp(a, "--clients") == 0 && v) {
            o.n_cases = 0;
            for (const char *p = v; *p && o.n_cases < MAX_CASES;) {
                o.clients[o.n_cases++] = atoi(p);
                p = strchr(p, ',');
                if (p == NULL)
                    break;
                p++;
            }
            i++;
        } else {
            usage();
            return 2;
        }
    }
    if (o.block < 1 || o.block > 65536 || o.window < 1 || o.seconds <= 0 || o.n_cases == 0) {
        usage();
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);

    /* the model, for its channels and latency */
    int in_ch = 1, out_ch = 1, latency = 0;
    double rate = 48000;
    cvd_model *m = NULL;
    cvd_err err = {0};
    if (cvd_model_load(o.model, &m, &err) == 0) {
        in_ch = cvd_model_in_channels(m);
        out_ch = cvd_model_out_channels(m);
        latency = cvd_model_latency(m);
        if (cvd_model_sample_rate(m) > 0)
            rate = cvd_model_sample_rate(m);
        cvd_model_unref(m);
    } else if (o.port == 0) {
        printf("loadtest: %s (skipped)\n", err.msg);
        return 0;
    }

    int port = o.port;
    if (port == 0) {
        port = start_daemon(&o);
        if (port == 0) {
            stop_daemon();
            remove_tmpdir();
            return 0;
        }
    }
    /* a signal: 4096 frames of a sine sweep */
    const size_t sig_frames = 4096;
    float *sig = malloc(sizeof(float) * sig_frames * (size_t)in_ch);
    if (sig == NULL)
        return 0;
    for (size_t f = 0; f < sig_frames; f++)
        for (int c = 0; c < in_ch; c++)
            sig[f * (size_t)in_ch + (size_t)c] =
                0.5f * (float)sin(0.001 * (double)f * (double)f / 64.0 + (double)c);

    printf("loadtest: %s (%d -> %d channels, latency %d, %.0f Hz), raw f32le, blocks of %d, "
           "window %d blocks, %s:%d%s\n",
           o.model, in_ch, out_ch, latency, rate, o.block, o.window, o.host, port,
           o.port ? "" : " (started here)");
    for (int k = 0; k < o.n_cases; k++) {
        result r = run_case(&o, port, o.clients[k], sig, sig_frames, in_ch, out_ch, latency);
        printf("clients %4d: %11.0f frames/s (%7.1fx real time per client), latency p50 %7.3f "
               "ms, p99 %7.3f ms, max %7.3f ms (%zu blocks), errors %d\n",
               r.clients, r.frames_per_s, r.frames_per_s / r.clients / rate, r.p50 * 1e3,
               r.p99 * 1e3, r.pmax * 1e3, r.blocks, r.errors);
        fflush(stdout);
    }
    free(sig);
    stop_daemon();
    remove_tmpdir();
    return 0;
}
