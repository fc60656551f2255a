#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# The proxy for the aarch64 build's speed, which only ARM hardware can measure: the aarch64
# instructions one frame of a .nam model costs, counted by qemu-user: it logs each translation
# block as it is translated (its instructions) and each time it executes (unchained, so every
# execution is logged); the count is the sum over executions. The program
# (tests/arm64/nam_frames.c) runs
# twice, for B1 and B2 blocks; the difference of the counts over (B2 - B1) BLOCK frames leaves
# out loading, prewarm and exit. Build first with scripts/test-arm64.sh (build-arm64/).
#
#   scripts/arm64-insn-count.sh [MODEL [BLOCK [B1 B2]]]
#   (default: ../shared/models/nam/wavenet_a1_standard.nam, blocks of 64, 4 and 20 blocks)
set -eu
cd "$(dirname "$0")/.."
MODEL=${1:-../shared/models/nam/wavenet_a1_standard.nam}
BLOCK=${2:-64}
B1=${3:-4}
B2=${4:-20}
OUT=${ARM64_BUILD:-build-arm64}
CC=${ARM64_CC:-aarch64-linux-gnu-gcc}
QEMU=${ARM64_QEMU:-qemu-aarch64}
SYSROOT=$OUT/sysroot
LIBDIR=$SYSROOT/usr/lib/aarch64-linux-gnu
if [ ! -f "$SYSROOT/.complete" ] || [ ! -f "$OUT/obj/dsp_wavenet.o" ]; then
    echo "arm64-insn-count: run scripts/test-arm64.sh first (it builds $OUT)" >&2
    exit 1
fi
BIN=$OUT/nam_frames
"$CC" -std=c11 -O2 -g -D_GNU_SOURCE -Idsp -Imodel -I"$OUT/include" tests/arm64/nam_frames.c \
    "$OUT"/obj/dsp_*.o "$OUT"/obj/model_*.o -o "$BIN" \
    -L"$LIBDIR" -Wl,-rpath-link,"$LIBDIR":"$SYSROOT/lib/aarch64-linux-gnu" -l:libjansson.so.4 \
    -l:libfftw3f.so.3 -l:libsamplerate.so.0 -lm
LD="$(pwd)/$LIBDIR:$(pwd)/$SYSROOT/lib/aarch64-linux-gnu"
count() {
    env QEMU_LD_PREFIX=/usr/aarch64-linux-gnu LD_LIBRARY_PATH="$LD" \
        "$QEMU" -d in_asm,exec,nochain -D /dev/stdout "$BIN" "$MODEL" "$BLOCK" "$1" |
        awk '
        function norm(a) { sub(/^0x/, "", a); sub(/:$/, "", a); sub(/^0+/, "", a); return a }
        /^IN:/ { inb = 1; n = 0; start = ""; next }
        inb && /^0x[0-9a-f]+:/ { if (start == "") start = norm($1); n++; next }
        inb { if (start != "") cnt[start] = n; inb = 0 }
        /^Trace/ { split($0, f, "/"); total += cnt[norm(f[2])] }
        END { printf "%.0f\n", total }'
}
n1=$(count "$B1")
n2=$(count "$B2")
frames=$(((B2 - B1) * BLOCK))
echo "$MODEL, blocks of $BLOCK: $(((n2 - n1) / frames)) aarch64 instructions a frame" \
    "($((n2 - n1)) over $frames frames; qemu-user $($QEMU --version | head -1 | awk '{print $3}'))"
