#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Preset switches under a paced stream, counted: convd plays a stream on jackd's dummy driver
# (48 kHz, 256-frame periods: a deadline every 5.3 ms, as a sound card gives), and convd-ctl
# switches its model N times, alternating two models; after each switch a window of W ms,
# then a quiet window of the same length with no switch. It prints the xruns convd counted
# (convd_audio_xruns_total, every kind) in each window, and the totals: the switches' xruns
# against the machine's own in as much time without a switch.
#
#   scripts/bench-preset-switch.sh [BUILD_DIR] [SWITCHES] [WINDOW_MS] [MODEL_A] [MODEL_B]
#
# Defaults: build, 50 switches, 250 ms windows, tests/data/nam/wide16_tanh.nam and
# tests/data/nam/nano_tanh.nam, crossfade_ms = 50 (both chains run through the fade).
# JACK_RT=1 runs jackd (and so the clients' process threads, convd's callback among them) at
# SCHED_FIFO priority 70, as a real interface is run (root, or an rtprio limit); without it,
# --no-realtime: then a neighbour's burst of work costs xruns in either window.
# Needs jackd2 (jackd, jack_wait) and curl. docs/AUDIO.md quotes its figures.
set -eu
build=${1:-build}
n=${2:-50}
win=${3:-250}
model_a=${4:-tests/data/nam/wide16_tanh.nam}
model_b=${5:-tests/data/nam/nano_tanh.nam}
for tool in jackd jack_wait curl; do
    command -v "$tool" >/dev/null 2>&1 || {
        echo "bench-preset-switch: $tool is not installed (jackd2, curl)" >&2
        exit 2
    }
done
[ -x "$build/convd" ] && [ -x "$build/convd-ctl" ] || {
    echo "bench-preset-switch: no $build/convd or $build/convd-ctl (make first)" >&2
    exit 2
}
abspath() { case $1 in /*) echo "$1" ;; *) echo "$PWD/$1" ;; esac; }
model_a=$(abspath "$model_a")
model_b=$(abspath "$model_b")

tmp=$(mktemp -d)
server="convd-bench-$$"
jack_pid=
convd_pid=
cleanup() {
    [ -n "$convd_pid" ] && kill "$convd_pid" 2>/dev/null && wait "$convd_pid" 2>/dev/null
    [ -n "$jack_pid" ] && kill "$jack_pid" 2>/dev/null && wait "$jack_pid" 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

# ALSA: a null default only (PortAudio probes it; nothing else is opened or logged)
printf 'pcm.!default { type null }\n' >"$tmp/asound.conf"
export ALSA_CONFIG_PATH="$tmp/asound.conf" JACK_DEFAULT_SERVER="$server"

# JACK_RT=1: jackd and its clients' process threads at SCHED_FIFO priority 70 (as a real
# interface is run; needs root or an rtprio limit); default: --no-realtime
rt_flags="--no-realtime"
[ "${JACK_RT:-0}" = 1 ] && rt_flags="-R -P 70"

jackd -n "$server" $rt_flags -d dummy -r 48000 -p 256 >"$tmp/jackd.log" 2>&1 &
jack_pid=$!
i=0
until jack_wait -c -s "$server" 2>/dev/null | grep -qx running; do
    i=$((i + 1))
    if [ $i -gt 100 ]; then
        echo "bench-preset-switch: jackd did not come up:" >&2
        cat "$tmp/jackd.log" >&2
        exit 1
    fi
    sleep 0.1
done

cat >"$tmp/convd.conf" <<EOF
[server]
metrics = 127.0.0.1:0
control_socket = $tmp/ctl.sock
[model a]
path = $model_a
[model b]
path = $model_b
[stream guitar]
input = system
output = system
model = a
block = 256
crossfade_ms = 50
EOF
"$build/convd" -c "$tmp/convd.conf" --workers 1 2>"$tmp/convd.log" &
convd_pid=$!
i=0
until grep -q "stream guitar: latency" "$tmp/convd.log"; do
    i=$((i + 1))
    if [ $i -gt 300 ] || ! kill -0 "$convd_pid" 2>/dev/null; then
        echo "bench-preset-switch: the stream did not start:" >&2
        cat "$tmp/convd.log" >&2
        exit 1
    fi
    sleep 0.1
done
port=$(sed -n 's/.*metrics: http:\/\/127\.0\.0\.1:\([0-9]*\).*/\1/p' "$tmp/convd.log" | head -1)
[ -n "$port" ] || {
    echo "bench-preset-switch: no metrics port in convd's log" >&2
    exit 1
}

xruns() {
    curl -s "http://127.0.0.1:$port/metrics" |
        awk '/^convd_audio_xruns_total\{stream="guitar"/ { s += $NF } END { printf "%d\n", s }'
}
secs=$(awk -v w="$win" 'BEGIN { printf "%.3f", w / 1000 }')

sleep 1.5 # past the start
echo "convd preset switches on jackd's dummy driver (48000 Hz, 256-frame periods), crossfade 50 ms"
echo "models: a = $model_a, b = $model_b; $n switches, windows of $win ms"
echo "load average at the start: $(cut -d' ' -f1-3 /proc/loadavg) ($(nproc) cores)"
echo "switch  to  xruns_after_switch  xruns_quiet_window"
sw_total=0
quiet_total=0
sw_windows=0
quiet_windows=0
k=1
while [ $k -le "$n" ]; do
    to=b
    [ $((k % 2)) -eq 0 ] && to=a
    x0=$(xruns)
    "$build/convd-ctl" -s "$tmp/ctl.sock" set guitar "model=$to" >/dev/null
    sleep "$secs"
    x1=$(xruns)
    sleep "$secs"
    x2=$(xruns)
    sw=$((x1 - x0))
    q=$((x2 - x1))
    sw_total=$((sw_total + sw))
    quiet_total=$((quiet_total + q))
    [ $sw -gt 0 ] && sw_windows=$((sw_windows + 1))
    [ $q -gt 0 ] && quiet_windows=$((quiet_windows + 1))
    printf '%6d  %2s  %18d  %18d\n' "$k" "$to" "$sw" "$q"
    k=$((k + 1))
done
switches=$("$build/convd-ctl" -s "$tmp/ctl.sock" status guitar | sed -n 's/^switches: //p')
echo "total: $sw_total xruns in the $n switch windows ($sw_windows windows with any)," \
    "$quiet_total in the $n quiet windows ($quiet_windows with any); convd counted $switches switches"
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg); one late JACK cycle counts" \
    "twice (input overflow and output underflow)"
