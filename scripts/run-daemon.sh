#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# `make run`: start convd in the foreground on its built-in default configuration (the demo
# models compiled into it, on 127.0.0.1), after printing how to talk to it.
#   scripts/run-daemon.sh BUILD_DIR
set -eu
build=${1:-build}
demo="$build/demo"
mkdir -p "$demo"
# a few seconds of plucked guitar-like notes to stream through the drive model
if [ ! -f "$demo/guitar.wav" ] && command -v sox >/dev/null 2>&1; then
    notes=""
    for n in E2 A2 D3 G3 B3 E4; do
        sox -n -r 48000 -c 1 -b 16 "$demo/note-$n.wav" synth 0.7 pluck "$n" gain -6
        notes="$notes $demo/note-$n.wav"
    done
    # shellcheck disable=SC2086
    sox $notes "$demo/guitar.wav"
    # shellcheck disable=SC2086
    rm -f $notes
fi
cat <<TXT
convd: starting on the built-in default configuration (Ctrl-C stops it).

  drive model, raw float32 mono 48 kHz on 127.0.0.1:7400. Stream a WAV file through it:

    sox $demo/guitar.wav -t f32 -c 1 -r 48000 - | nc -N 127.0.0.1 7400 | sox -t f32 -c 1 -r 48000 - $demo/guitar-drive.wav

  framed protocol (HELLO/ACCEPT, subscriptions) on 127.0.0.1:7401:

    $build/convd-cat -p 7401 $demo/guitar.wav $demo/guitar-framed.wav

  vibration denoiser, one frame of 3 numbers per text line, on 127.0.0.1:7402:

    printf '0.1,0.2,0.3\n0.2,0.1,0.0\n' | nc -N 127.0.0.1 7402

  metrics: http://127.0.0.1:9400/metrics

TXT
exec "$build/convd" --builtin-config
