/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Live audio: [stream NAME] sections run through PortAudio (docs/AUDIO.md).
 *
 * Two halves that share nothing but atomics and lock-free rings:
 *
 *   the engine   (audio_engine.h) what the PortAudio callback runs (cvd_audio_engine_process):
 * capture, the model, playback, in one call. It allocates nothing, takes no lock, makes no system
 * call and never logs. What it has to tell the daemon goes through single-producer single-consumer
 * rings (cvd_spsc, spsc.h: processed frames to be published) and atomic counters (status flags,
 * underruns, drops, timing). A new model arrives as a cvd_net through an atomic pointer exchange
 * between callbacks; the callback hands the old net back the same way, and the loop frees it. the
 * manager  the rest, on the daemon's main loop (cvd_audio_start/reload/stop): devices, PortAudio
 * calls, publishing (cvd_pub_write), a source subscription for an output-only stream, metrics,
 * rate-limited log lines, failure detection and retries with backoff.
 *
 * The loop polls the engines with a uv_timer (every 1 to 5 ms, by the smallest block) rather
 * than being woken by the callback: uv_async_send is lock-free and async-signal-safe, but it
 * writes to an eventfd, a system call on the audio thread, and a paced device's callback comes
 * every block anyway. The rings hold half a second and more, so a late loop turn costs the
 * subscribers a little latency, never the speakers a glitch.
 */
#ifndef CONVD_AUDIO_H
#define CONVD_AUDIO_H

#include <stdio.h>
#include <uv.h>

#include "audio_device.h" /* cvd_audio_check, cvd_audio_list_devices */
#include "audio_engine.h"
#include "config.h"
#include "convd_dsp.h"
#include "runtime.h"

/* ---- the manager: the daemon's side --------------------------------------------------- */

typedef struct cvd_audio cvd_audio;

/* Opens every stream of rt (nothing, and no PortAudio, when it has none: *out is NULL). A
 * device that is missing or refuses the format is an error, logged here (a missing device with
 * the list of the devices there are); *out is then a stopped manager whose timer is closing:
 * run the loop, then cvd_audio_destroy it. */
int cvd_audio_start(uv_loop_t *loop, cvd_runtime *rt, cvd_audio **out, cvd_err *err);

/* Off the loops (libuv's thread pool, on reload): one net per stream of rt that has a model,
 * built in advance so that the loop only swaps pointers. */
typedef struct cvd_audio_prepared cvd_audio_prepared;
cvd_audio_prepared *cvd_audio_prepared_create(cvd_runtime *rt, cvd_err *err);
void cvd_audio_prepared_destroy(cvd_audio_prepared *p);

/* On the loop, after a reload: a stream whose model changed gets the new net between two
 * callbacks (the device keeps running); a stream whose device, rate, channels or block
 * changed is restarted; removed streams stop, new ones start (a device that fails is
 * retried). *a may be NULL (no streams before): it is created. Takes p. */
void cvd_audio_reload(cvd_audio **a, uv_loop_t *loop, cvd_runtime *rt, cvd_audio_prepared *p);

/* Stops every stream (published streams end); the loop handles close. Safe twice. */
void cvd_audio_stop(cvd_audio *a);
/* After the loop has run the close callbacks: frees everything, Pa_Terminate. NULL is fine. */
void cvd_audio_destroy(cvd_audio *a);
/* Streams running now (for tests and status). */
int cvd_audio_running(const cvd_audio *a);

/* ---- control (convd-ctl through server/control.c): on the main loop ------------------- */

typedef struct cvd_audio_status {
    char name[CVD_CONF_NAME_MAX + 1];
    int running;
    int rate, block, in_ch, out_ch;
    char model[1100];  /* the chain running: "amp, cab", or "none" */
    int latency;       /* frames the models and resamplers delay the stream by */
    double latency_ms; /* capture to playback: the devices' buffering and that */
    double input_gain_db, output_gain_db;
    int bypass, limit, crossfade_ms;
    int chain;     /* 1: its models, gains and bypass can be switched */
    int switching; /* a switch is handed over and not yet collected */
    float limiter_gain;
    uint64_t callbacks, xruns, underruns, swaps;
} cvd_audio_status;

int cvd_audio_count(const cvd_audio *a);                  /* streams (NULL: 0) */
int cvd_audio_find(const cvd_audio *a, const char *name); /* index, or -1 */
void cvd_audio_status_of(cvd_audio *a, int i, cvd_audio_status *st);
/* Switches stream i to the models named in list ("amp, cab", or "none"), [model]s of the
 * running configuration: the chain is built here (off the audio thread) and handed over; the
 * callback crossfades. The chain stays until the next switch, or a reload that changes the
 * stream's own model. msg: what happened (logged), or why not. */
int cvd_audio_set_chain(cvd_audio *a, int i, const char *list, char *msg, size_t n);
/* Gains in dB (-60..60), those with set_* = 1; ramped over a block. */
int cvd_audio_set_gains(cvd_audio *a, int i, int set_in, double in_db, int set_out, double out_db,
                        char *msg, size_t n);
/* Bypass: the input plays unprocessed (faded like a switch). */
int cvd_audio_set_bypass(cvd_audio *a, int i, int on, char *msg, size_t n);

#endif
