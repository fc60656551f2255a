/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The control socket: convd-ctl's way in (docs/AUDIO.md, "Presets live"). A Unix stream socket
 * on the daemon's main loop; a client writes one command line and reads the answer, lines
 * ending with "ok" or "error: WHY", then the daemon closes the connection. Commands:
 *
 *   list                                  one line per audio stream
 *   status [STREAM]                       its settings and counters, "key: value" lines
 *   set STREAM model=NAME[,NAME...]       switch its chain (crossfaded); model=none: unchanged
 *   set STREAM input_gain_db=DB output_gain_db=DB bypass=on|off   (any of them)
 *   gain STREAM [input=DB] [output=DB]    the gains, -60..60 dB
 *   bypass STREAM on|off
 *
 * The socket is mode 0660, in group convd when that group exists; [server] control_socket
 * names it (docs/CONFIG.md), or `auto`: $RUNTIME_DIRECTORY/control.sock under systemd,
 * /run/convd/control.sock for root, $XDG_RUNTIME_DIR/convd/control.sock, or
 * /tmp/convd-UID/control.sock.
 */
#ifndef CONVD_CONTROL_H
#define CONVD_CONTROL_H

#include <stddef.h>
#include <uv.h>

#include "audio.h"
#include "config.h"

typedef struct cvd_control cvd_control;

/* The path `auto` means here (creating its folder when `make_dir`); 0, or -1 if too long. */
int cvd_control_default_path(char *buf, size_t n, int make_dir);

/* Opens the socket when the configuration asks for it (control_socket not none, and a
 * [stream] or an explicit path): *out NULL otherwise. *audio is read at each command (the
 * daemon replaces it on reload). A socket another live daemon holds is left to it (a warning,
 * *out NULL); a stale one is replaced. */
int cvd_control_start(uv_loop_t *loop, const cvd_conf *c, cvd_audio **audio, cvd_control **out,
                      cvd_err *err);
/* Closes the socket and its connections (the loop frees them) and removes its file. */
void cvd_control_stop(cvd_control *ctl);
const char *cvd_control_path(const cvd_control *ctl);

/* One command line, answered into buf (lines, the last "ok" or "error: ..."): for tests, and
 * what a connection runs. */
void cvd_control_exec(cvd_audio *a, const char *line, char *buf, size_t n);

#endif
