/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A lock-free single-producer single-consumer ring of floats (C11 atomics): the audio
 * engine's channels to and from the main loop (audio_engine.c). No libuv, no PortAudio.
 */
#ifndef CONVD_SPSC_H
#define CONVD_SPSC_H

#include <stdatomic.h>
#include <stddef.h>

typedef struct cvd_spsc {
    float *buf;
    size_t cap;                      /* floats, a power of two */
    _Alignas(64) atomic_size_t head; /* advanced by the producer only */
    _Alignas(64) atomic_size_t tail; /* advanced by the consumer only */
} cvd_spsc;

/* Room for at least min_floats (allocates: not on the audio thread). */
int cvd_spsc_create(cvd_spsc *r, size_t min_floats);
void cvd_spsc_destroy(cvd_spsc *r);
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

#endif
