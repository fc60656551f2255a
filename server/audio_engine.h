/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The live-audio engine: what a PortAudio callback runs (cvd_audio_engine_process), and the
 * loop side's calls to it (see audio.h for the two halves). It includes neither PortAudio nor
 * libuv: the flags below have PortAudio's values (checked in audio.c), the device and the
 * loop are the manager's (audio.c).
 */
#ifndef CONVD_AUDIO_ENGINE_H
#define CONVD_AUDIO_ENGINE_H

#include <stddef.h>
#include <stdint.h>

#include "audio_proc.h"
#include "convd_dsp.h"
#include "metrics.h"

/* PortAudio's status flag bits (the same values as paInputUnderflow ... paOutputOverflow) */
enum {
    CVD_AUDIO_INPUT_UNDERFLOW = 1,
    CVD_AUDIO_INPUT_OVERFLOW = 2,
    CVD_AUDIO_OUTPUT_UNDERFLOW = 4,
    CVD_AUDIO_OUTPUT_OVERFLOW = 8,
    CVD_AUDIO_PRIMING_OUTPUT = 16
};

typedef struct cvd_audio_engine_config {
    int in_channels;      /* channels of the frames the model takes (0: no input: an output-only
                           * stream) */
    int capture_channels; /* channels the capture device delivers (in_channels, or more) */
    const short *in_map;  /* in_channels capture channels (0-based) feeding them; NULL: the
                           * first in_channels as they are */
    int out_channels;     /* channels the model (or the source) gives, per frame */
    int play_channels;    /* channels of the playback device (0: no output); out_channels, or
                           * more when a mono stream plays on every channel of a device */
    const short *out_map; /* playback channels (0-based) the frames' channels play on, one
                           * per channel, or a mono frame on each (the others get silence);
                           * NULL: as above */
    int n_out_map;        /* entries of out_map: out_channels, or any number for mono */
    int block;            /* frames per callback (and the net's max_block) */
    int rate;
    int publish;   /* 1: processed frames go to the publish ring */
    int jitter;    /* output-only: frames buffered before playing (>= 1) */
    long hop;      /* a windowed model's hop ([model] hop; 0: its window length) */
    int crossfade; /* frames a model swap fades over (cvd_audio_engine_create) */
} cvd_audio_engine_config;

/* Counters the callback keeps (atomics, relaxed): read them from any thread. */
typedef struct cvd_audio_counters {
    uint64_t callbacks, frames_in, frames_out;
    uint64_t flags[4];     /* input underflow, input overflow, output underflow, output overflow */
    uint64_t underruns;    /* the jitter buffer (output-only) or the model's output ran dry */
    uint64_t ring_dropped; /* processed frames the publish ring (or the playback queue) had no
                            * room for */
    uint64_t swaps;        /* nets swapped in */
    uint64_t block_ns_last, block_ns_max, block_ns_sum;
} cvd_audio_counters;

typedef struct cvd_audio_engine cvd_audio_engine;

/* Builds an engine (all its memory) for a model (NULL: the frames pass unchanged). stats may
 * be NULL; else the callback adds each block's processing time to it (atomics only). */
int cvd_audio_engine_create(const cvd_audio_engine_config *cfg, cvd_model *model,
                            cvd_stream_stats *stats, cvd_audio_engine **out, cvd_err *err);
/* A model that streams frame by frame runs as a chain of one (resampled when it declares
 * another rate than cfg->rate) in a cvd_audio_proc; a windowed one runs on its own.
 * An engine around a stream's processing (taken over, also on failure): a chain of models,
 * gains, limiter, crossfades. Not for output-only streams. */
int cvd_audio_engine_create_proc(const cvd_audio_engine_config *cfg, cvd_audio_proc *proc,
                                 cvd_stream_stats *stats, cvd_audio_engine **out, cvd_err *err);
/* The engine's processing (NULL for a windowed model or an output-only stream): gains,
 * bypass and swaps from the loop (audio_proc.h's rules). */
cvd_audio_proc *cvd_audio_engine_proc(cvd_audio_engine *e);
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
/* Loop side: at least the frames published and not read yet (0 without publishing): a loop
 * turn reads no more than this, so an unpaced device cannot keep the loop. */
size_t cvd_audio_engine_backlog(const cvd_audio_engine *e);
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
/* The same for an engine with a cvd_audio_proc: a new chain (taken over on success), faded
 * to over the proc's crossfade. CVD_ESTATE, or CVD_ERANGE when it does not fit. */
int cvd_audio_engine_swap_chain(cvd_audio_engine *e, cvd_chain *chain, float in_gain,
                                float out_gain);
/* Loop side: frees a net the callback has handed back (after a swap); 1 if one was freed.
 * With the device stopped (no callback can run), pass idle = 1 to finish a swap at once. */
int cvd_audio_engine_collect(cvd_audio_engine *e, int idle);
void cvd_audio_engine_counters(const cvd_audio_engine *e, cvd_audio_counters *c);
/* Callbacks run so far (the counters' first field alone: the loop's health check). */
uint64_t cvd_audio_engine_callbacks(const cvd_audio_engine *e);
/* The model's latency in frames (0 without a model). */
int cvd_audio_engine_latency(const cvd_audio_engine *e);

#ifdef CVD_TEST_HOOKS
/* Test builds (convd-testhooks): 1 when the callback just run is the one
 * CONVD_TEST_FAIL_CALLBACK=N names, so the device callback aborts the stream. */
int cvd_audio_engine_test_failed(const cvd_audio_engine *e);
#endif

#endif
