/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Live audio's devices (audio_device.c): the PortAudio calls that are not a stream's, for the
 * manager (audio.c), and convd's --check and --list-devices. Main loop only.
 */
#ifndef CONVD_AUDIO_DEVICE_H
#define CONVD_AUDIO_DEVICE_H

#include <stdio.h>

#include "config.h"
#include "convd_dsp.h"
#include "runtime.h"

/* PortAudio is initialised while referenced: the first ref initialises it (an error names
 * Pa_Initialize's reason), the last unref terminates it. */
int cvd_portaudio_ref(cvd_err *err);
void cvd_portaudio_unref(void);
/* PortAudio's text for an error, the host API's own when it has one. */
const char *cvd_portaudio_error(int pe); /* a PaError */

/* A device as a [stream] names it (input 1: its input, 0: its output): "default", an index,
 * an exact name, or a substring of one name (case-insensitive). Returns the index, or < 0 with
 * err set ("FILE:LINE: input: ..."); *missing is set to 1 when no device matches (list them). */
int cvd_audio_find_device(const cvd_conf *c, const cvd_conf_stream *st, int input, int *missing,
                          cvd_err *err);
/* Every device, one log line each. */
void cvd_audio_log_devices(void);

/* convd --check: finds every stream's devices (prints them; errors with the device list on
 * stderr). Returns 0 when all are found. */
int cvd_audio_check(cvd_runtime *rt, FILE *out);

/* convd --list-devices: the PortAudio version once, then every device, its host API,
 * channels and default rate. The host APIs' own messages (ALSA's, JACK's) while probing go
 * to /dev/null unless verbose. */
int cvd_audio_list_devices(FILE *f, int verbose);

#endif
