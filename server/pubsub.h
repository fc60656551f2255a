/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Published streams and their subscribers, across threads.
 *
 * A producer (a TCP stream on some worker, or an audio stream) publishes its output frames
 * under a name; subscribers (framed clients on any worker) each get a bounded ring of frames.
 * The producer never waits: when a subscriber's ring is full the frames it cannot take are
 * dropped and counted (the subscriber learns how many with its next frames), or, under the
 * "disconnect" policy, the subscriber is marked to be closed. After writing, the producer
 * calls each subscriber's wake function (a uv_async_send) so its loop drains the ring.
 *
 * Locks: a registry mutex (open/close) and one mutex per subscriber ring, held only to copy
 * frames. Not for audio callbacks (they hand frames to a loop through an SPSC ring first).
 */
#ifndef CONVD_PUBSUB_H
#define CONVD_PUBSUB_H

#include <stddef.h>
#include <stdint.h>

#include "convd_dsp.h"

typedef struct cvd_pub cvd_pub;
typedef struct cvd_sub cvd_sub;

typedef struct cvd_pub_info {
    int channels;
    int rate;
    int latency;
    char model[72];
} cvd_pub_info;

/* Publishes a stream; fails (CVD_ESTATE) if the name is in use. */
int cvd_pub_create(const char *name, const cvd_pub_info *info, cvd_pub **out, cvd_err *err);
/* Fans n frames out to every subscriber. Never blocks on a subscriber. */
void cvd_pub_write(cvd_pub *p, const float *frames, int n);
/* n frames of the stream were lost here (an audio ring that overflowed): every subscriber
 * learns it with its next frames, as for its own drops. */
void cvd_pub_gap(cvd_pub *p, uint64_t n);
/* Ends the stream: subscribers read what is left, then see the end. */
void cvd_pub_destroy(cvd_pub *p);

/* Subscribes to `name` with a ring of ring_frames frames; wake(ctx) is called (from the
 * producer's thread) after frames arrive or the stream ends. disconnect_when_full: mark the
 * subscriber for closing instead of dropping. CVD_EINVAL if no such stream. */
int cvd_sub_create(const char *name, int ring_frames, int disconnect_when_full,
                   void (*wake)(void *ctx), void *ctx, cvd_sub **out, cvd_pub_info *info,
                   cvd_err *err);
/* Up to max frames out; *dropped: frames lost just before them (a gap is reported with the
 * first frames after it, so a read may stop at the gap);
 * returns frames read. *state: 0 streaming, 1 ended (and drained), 2 overrun (disconnect). */
int cvd_sub_read(cvd_sub *s, float *out, int max, uint64_t *dropped, int *state);
void cvd_sub_destroy(cvd_sub *s);
/* 1 once frames were lost under disconnect_when_full: the subscriber is to be closed. */
int cvd_sub_overrun(cvd_sub *s);
/* Number of published streams (for tests and metrics). */
int cvd_pub_count(void);

#endif
