/*
 * Live audio: [stream NAME] sections run through PortAudio (docs/AUDIO.md).
 *
 * Two halves that share nothing but atomics and lock-free rings:
 *
 *   the engine   what the PortAudio callback runs (cvd_audio_engine_process): capture, the
 *                model, playback, in one call. It allocates nothing, takes no lock, makes no
 *                system call and never logs. What it has to tell the daemon goes through
 *                single-producer single-consumer rings (cvd_spsc: processed frames to be
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

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <uv.h>

#include "convd_dsp.h"
#include "metrics.h"
#include "runtime.h"

/* ---- a lock-free single-producer single-consumer ring of floats (C11 atomics) ---------- */

typedef struct cvd_spsc {
    float *buf;
    size_t cap; /* floats, a power of two */
    _Alignas(64) atomic_size_t head; /* advanced by the producer only */
    _Alignas(64) atomic_size_t tail; /* advanced by the consumer only */
} cvd_spsc;

/* Room for at least min_floats (allocates: not on the audio thread). */
int cvd_spsc_init(cvd_spsc *r, size_t min_floats);
void cvd_spsc_free(cvd_spsc *r);
/* Consumer side: floats that can be read. Producer side: floats that can be written. */
size_t cvd_spsc_readable(cvd_spsc *r);
size_t cvd_spsc_writable(cvd_spsc *r);
/* Producer: writes a (na floats) then b (nb floats) as one unit, or nothing if they do not fit
 * (returns 0, or 1 when written). Real-time safe. */
int cvd_spsc_write2(cvd_spsc *r, const float *a, size_t na, const float *b, size_t nb);
/* Consumer: reads up to n floats; returns how many. Real-time safe. */
size_t cvd_spsc_read(cvd_spsc *r, float *out, size_t n);
/* Consumer: drops up to n floats; returns how many. */
size_t cvd_spsc_skip(cvd_spsc *r, size_t n);

/* ---- the engine: what the callback runs ------------------------------------------------ */

/* PortAudio's status flag bits (the same values as paInputUnderflow ... paOutputOverflow) */
enum {
    CVD_AUDIO_INPUT_UNDERFLOW = 1,
    CVD_AUDIO_INPUT_OVERFLOW = 2,
    CVD_AUDIO_OUTPUT_UNDERFLOW = 4,
    CVD_AUDIO_OUTPUT_OVERFLOW = 8,
    CVD_AUDIO_PRIMING_OUTPUT = 16
};

typedef struct cvd_audio_engine_config {
    int in_channels;   /* channels of the frames the model takes (0: no input: an output-only
                        * stream) */
    int capture_channels; /* channels the capture device delivers (in_channels, or more) */
    const short *in_map;  /* in_channels capture channels (0-based) feeding them; NULL: the
                           * first in_channels as they are */
    int out_channels;  /* channels the model (or the source) gives, per frame */
    int play_channels; /* channels of the playback device (0: no output); out_channels, or
                        * more when a mono stream plays on every channel of a device */
    const short *out_map; /* playback channels (0-based) the frames' channels play on, one
                           * per channel, or a mono frame on each (the others get silence);
                           * NULL: as above */
    int n_out_map;        /* entries of out_map: out_channels, or any number for mono */
    int block;         /* frames per callback (and the net's max_block) */
    int rate;
    int publish;       /* 1: processed frames go to the publish ring */
    int jitter;        /* output-only: frames buffered before playing (>= 1) */
    long hop;          /* a windowed model's hop ([model] hop; 0: its window length) */
} cvd_audio_engine_config;

/* Counters the callback keeps (atomics, relaxed): read them from any thread. */
typedef struct cvd_audio_counters {
    uint64_t callbacks, frames_in, frames_out;
    uint64_t flags[4];  /* input underflow, input overflow, output underflow, output overflow */
    uint64_t underruns; /* the jitter buffer (output-only) or the model's output ran dry */
    uint64_t ring_dropped; /* processed frames the publish ring (or the playback queue) had no
                            * room for */
    uint64_t swaps;     /* nets swapped in */
    uint64_t block_ns_last, block_ns_max, block_ns_sum;
} cvd_audio_counters;

typedef struct cvd_audio_engine cvd_audio_engine;

/* Builds an engine (all its memory) for a model (NULL: the frames pass unchanged). stats may
 * be NULL; else the callback adds each block's processing time to it (atomics only). */
int cvd_audio_engine_create(const cvd_audio_engine_config *cfg, cvd_model *model,
                            cvd_stream_stats *stats, cvd_audio_engine **out, cvd_err *err);
void cvd_audio_engine_destroy(cvd_audio_engine *e);

/* The callback's whole work: `frames` frames of interleaved float input (in_channels; NULL
 * or ignored for an output-only stream) into `frames` frames of output (play_channels; NULL
 * without output). status: PortAudio's flags. Allocates nothing, takes no lock, makes no
 * system call (clock_gettime(CLOCK_MONOTONIC) is answered by the vDSO, in user space).
 * frames may be any count (it is cut into blocks). */
void cvd_audio_engine_process(cvd_audio_engine *e, const float *in, float *out,
                              unsigned long frames, unsigned long status);

/* Loop side. Reads the next chunk of published frames: returns frames read (0: none), with
 * *dropped the frames the ring lost just before them. buf holds cvd_audio_engine_chunk(). */
int cvd_audio_engine_read(cvd_audio_engine *e, float *buf, uint64_t *dropped);
int cvd_audio_engine_chunk(const cvd_audio_engine *e); /* most frames one chunk holds */
/* Loop side, output-only streams: frames for the jitter buffer; returns how many it took. */
int cvd_audio_engine_feed(cvd_audio_engine *e, const float *frames, int n);
int cvd_audio_engine_feed_room(cvd_audio_engine *e); /* frames feed() takes now */
/* Loop side: the source ended after the frames fed so far: they are played even if fewer than
 * the jitter depth (the short block at the very end is not an underrun). */
void cvd_audio_engine_source_ended(cvd_audio_engine *e);
/* Loop side: hands a new net over, taken by the next callback. Returns CVD_ESTATE while the
 * previous swap is unfinished, CVD_ERANGE when the net does not fit the engine (more
 * output frames or latency than it was built for: restart the stream instead). */
int cvd_audio_engine_swap(cvd_audio_engine *e, cvd_net *net);
/* Loop side: frees a net the callback has handed back (after a swap); 1 if one was freed.
 * With the device stopped (no callback can run), pass idle = 1 to finish a swap at once. */
int cvd_audio_engine_collect(cvd_audio_engine *e, int idle);
void cvd_audio_engine_counters(const cvd_audio_engine *e, cvd_audio_counters *c);
/* The model's latency in frames (0 without a model). */
int cvd_audio_engine_latency(const cvd_audio_engine *e);

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

/* convd --check: finds every stream's devices (prints them; errors with the device list on
 * stderr). Returns 0 when all are found. */
int cvd_audio_check(cvd_runtime *rt, FILE *out);

/* convd --list-devices: every PortAudio device, its host API, channels and default rate. */
int cvd_audio_list_devices(FILE *f);

#endif
