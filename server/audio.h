/*
 * Live audio: [stream NAME] sections run through PortAudio (docs/AUDIO.md).
 *
 * Two halves that share nothing but atomics and lock-free rings:
 *
 *   the engine   (audio_engine.h) what the PortAudio callback runs (cvd_audio_engine_process): capture, the
 *                model, playback, in one call. It allocates nothing, takes no lock, makes no
 *                system call and never logs. What it has to tell the daemon goes through
 *                single-producer single-consumer rings (cvd_spsc, spsc.h: processed frames to be
 *                published) and atomic counters (status flags, underruns, drops, timing).
 *                A new model arrives as a cvd_net through an atomic pointer exchange between
 *                callbacks; the callback hands the old net back the same way, and the loop
 *                frees it.
 *   the manager  the rest, on the daemon's main loop (cvd_audio_start/reload/stop): devices,
 *                PortAudio calls, publishing (cvd_pub_write), a source subscription for an
 *                output-only stream, metrics, rate-limited log lines, failure detection and
 *                retries with backoff.
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
#include "convd_dsp.h"
#include "runtime.h"

/* ---- the manager: the daemon's side --------------------------------------------------- */

typedef struct cvd_audio cvd_audio;

/* Opens every stream of rt (nothing, and no PortAudio, when it has none: *out is NULL). A
 * device that is missing or refuses the format is an error, logged here (a missing device with
 * the list of the devices there are); *out is then a stopped manager whose timer is closing:
 * run the loop, then cvd_audio_free it. */
int cvd_audio_start(uv_loop_t *loop, cvd_runtime *rt, cvd_audio **out, cvd_err *err);

/* Off the loops (libuv's thread pool, on reload): one net per stream of rt that has a model,
 * built in advance so that the loop only swaps pointers. */
typedef struct cvd_audio_prepared cvd_audio_prepared;
cvd_audio_prepared *cvd_audio_prepare(cvd_runtime *rt, cvd_err *err);
void cvd_audio_prepared_free(cvd_audio_prepared *p);

/* On the loop, after a reload: a stream whose model changed gets the new net between two
 * callbacks (the device keeps running); a stream whose device, rate, channels or block
 * changed is restarted; removed streams stop, new ones start (a device that fails is
 * retried). *a may be NULL (no streams before): it is created. Takes p. */
void cvd_audio_reload(cvd_audio **a, uv_loop_t *loop, cvd_runtime *rt, cvd_audio_prepared *p);

/* Stops every stream (published streams end); the loop handles close. Safe twice. */
void cvd_audio_stop(cvd_audio *a);
/* After the loop has run the close callbacks: frees everything, Pa_Terminate. NULL is fine. */
void cvd_audio_free(cvd_audio *a);
/* Streams running now (for tests and status). */
int cvd_audio_running(const cvd_audio *a);

#endif
