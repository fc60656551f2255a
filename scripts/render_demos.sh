#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Renders before-and-after files for the two demo models in config/models/.
#
#   scripts/render_demos.sh [OUTDIR]        (default: build/demos at the top of the tree)
#
# Builds build/convd-run if needed, synthesises the test inputs with /usr/bin/python3 and
# numpy (scripts/train_demos.py --make-inputs: a guitar phrase and a noisy 3-axis vibration
# recording, from fixed seeds, different from the training material), runs each model
# through convd-run (streaming, blocks of 64 frames) and prints the figures:
#
#   OUTDIR/drive.in.wav           8 s synthetic DI guitar, 48 kHz mono, 16-bit
#   OUTDIR/drive.out.wav          convd's drive model (float WAV)
#   OUTDIR/drive.ref.wav          the reference chain the model imitates, for comparison
#   OUTDIR/vibration.in.csv       20 s noisy 3-axis vibration at 1 kHz, in g (x,y,z per line)
#   OUTDIR/vibration.out.csv      convd's vibration-denoise model
#   OUTDIR/vibration.clean.csv    the clean signal the input was made from
#   OUTDIR/vibration.{in,out,clean}.wav  the same, 3-channel 16-bit WAV at 1 kHz, scaled by
#                                 the factor in OUTDIR/vibration.scale (for viewers/plots)
#
# Exit status: non-zero if any step fails.
set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUTDIR=${1:-$ROOT/build/demos}
PY=/usr/bin/python3
RUN="$ROOT/build/convd-run"

case "$OUTDIR" in
/*) ;;
*) OUTDIR="$(pwd)/$OUTDIR" ;;
esac

cd "$ROOT"
make -s build/convd-run         # nothing to do when it is up to date
mkdir -p "$OUTDIR"

echo "generating inputs in $OUTDIR"
"$PY" scripts/train_demos.py --make-inputs "$OUTDIR"

echo "running config/models/drive.json"
"$RUN" config/models/drive.json "$OUTDIR/drive.in.wav" "$OUTDIR/drive.out.wav" --quiet
echo "running config/models/vibration-denoise.json"
"$RUN" config/models/vibration-denoise.json "$OUTDIR/vibration.in.csv" "$OUTDIR/vibration.out.csv" --quiet

"$PY" scripts/train_demos.py --report "$OUTDIR"

echo "wrote:"
for f in drive.in.wav drive.out.wav drive.ref.wav \
         vibration.in.csv vibration.out.csv vibration.clean.csv \
         vibration.in.wav vibration.out.wav vibration.clean.wav; do
    printf '  %s (%s bytes)\n' "$OUTDIR/$f" "$(wc -c < "$OUTDIR/$f" | tr -d ' ')"
done
