#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# The aarch64 build, checked on x86-64: dsp/ (the portable path: GCC vector extensions, which
# are NEON there) and the model loaders that need no Keras libraries (.nam and convd's JSON),
# cross-compiled with Debian's gcc-aarch64-linux-gnu, and their Criterion suites (vmath,
# layers, nam, JSON models, allocation counts) run under qemu-user.
#
#   scripts/test-arm64.sh [CRITERION ARGS...]     e.g. --filter 'nam/*'
#
# Debian's arm64 libcriterion cannot be installed beside the amd64 one (neither is Multi-Arch:
# same), so the arm64 run-time libraries the tests link (Criterion, jansson, FFTW, libsamplerate
# and what they depend on) are fetched with apt-get download and unpacked into build-arm64/sysroot, never
# installed; their headers are the amd64 -dev packages' (the same on both). Keras files need
# libzip and HDF5 besides, and impulse responses libsndfile, so model/keras.c, model/ir.c and
# model/load.c (which reads all formats) stay out of this build: plain C over those libraries,
# nothing in them depends on the CPU.
#
# Speed cannot be measured under qemu; scripts/arm64-insn-count.sh counts the instructions a
# frame of the standard model takes, as a proxy.
set -eu
cd "$(dirname "$0")/.."
OUT=${ARM64_BUILD:-build-arm64}
CC=${ARM64_CC:-aarch64-linux-gnu-gcc}
QEMU=${ARM64_QEMU:-qemu-aarch64}
CROSS=/usr/aarch64-linux-gnu

for tool in "$CC" "$QEMU" apt-get dpkg-deb; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "test-arm64: $tool not found (scripts/install-deps.sh installs gcc-aarch64-linux-gnu" \
            "and qemu-user)" >&2
        exit 1
    fi
done
if ! dpkg --print-foreign-architectures | grep -qx arm64; then
    echo "test-arm64: dpkg has no arm64 architecture to fetch libraries for (scripts/install-deps.sh" \
        "adds it: dpkg --add-architecture arm64 && apt-get update)" >&2
    exit 1
fi

# ---- the arm64 run-time libraries, unpacked ----------------------------------------------
SYSROOT=$OUT/sysroot
LIBDIR=$SYSROOT/usr/lib/aarch64-linux-gnu
ROOTS="libcriterion3:arm64 libjansson4:arm64 libfftw3-single3:arm64 libsamplerate0:arm64"
if [ "$(cat "$SYSROOT/.complete" 2>/dev/null)" != "$ROOTS" ]; then
    rm -rf "$SYSROOT" "$OUT/debs"
    mkdir -p "$SYSROOT" "$OUT/debs"
    # every library they need, less what the cross toolchain's own packages provide
    pkgs=$(apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts \
        --no-breaks --no-replaces --no-enhances $ROOTS | grep '^[a-z]' | sort -u |
        grep -v -E '^(libc6|libgcc-s1|gcc-12-base|libgomp1|libstdc\+\+6):arm64$')
    echo "test-arm64: fetching the arm64 libraries:" $pkgs
    (cd "$OUT/debs" && apt-get download $pkgs)
    for d in "$OUT"/debs/*.deb; do
        dpkg-deb -x "$d" "$SYSROOT"
    done
    echo "$ROOTS" >"$SYSROOT/.complete"
fi

# the amd64 -dev packages' headers, alone (not the rest of /usr/include: that is x86's libc)
INC=$OUT/include
mkdir -p "$INC"
for h in criterion jansson.h jansson_config.h fftw3.h samplerate.h; do
    if [ ! -e "/usr/include/$h" ]; then
        echo "test-arm64: /usr/include/$h not found (libcriterion-dev, libjansson-dev," \
            "libfftw3-dev, libsamplerate0-dev)" >&2
        exit 1
    fi
    ln -sfn "/usr/include/$h" "$INC/$h"
done

# ---- build -------------------------------------------------------------------------------
# -ffp-contract=fast for dsp/ only: the portable kernels' a * b + c become fused multiply-adds
# on aarch64 (GCC's default outside ISO C mode; not -ffast-math), as the Makefile does there
WARN="-Wall -Wextra -Wpedantic -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wvla -Werror"
# -O3 for dsp/ and -O2 for the rest, as the Makefile does
CFLAGS="-std=c11 -g $WARN -D_GNU_SOURCE -Idsp -Imodel -Itests -I$INC"
TESTS="alloc_count test_vmath test_layers test_layers_extra test_nam test_json_model test_alloc"
mkdir -p "$OUT/obj"
objs=""
pids=""
MODEL_SRC=$(ls model/*.c | grep -v -E '^model/(keras|keras_[a-z0-9_]*|ir|load)\.c$')
for f in dsp/*.c $MODEL_SRC; do
    o=$OUT/obj/$(echo "$f" | tr / _ | sed 's/\.c$/.o/')
    extra=-O2
    case "$f" in dsp/*) extra="-O3 -ffp-contract=fast" ;; esac
    "$CC" $CFLAGS $extra -c "$f" -o "$o" &
    pids="$pids $!"
    objs="$objs $o"
done
for t in $TESTS arm64/qemu_exec; do
    o=$OUT/obj/$(basename "$t").o
    # (the test suites without the vectoriser: aarch64 gcc 12 crashes vectorising their fmax
    # reductions, an internal compiler error in vect_transform_reduction)
    "$CC" $CFLAGS -O2 -fno-tree-vectorize -c "tests/$t.c" -o "$o" &
    pids="$pids $!"
    objs="$objs $o"
done
fail=0
for p in $pids; do
    wait "$p" || fail=1
done
[ "$fail" -eq 0 ] || { echo "test-arm64: the build failed" >&2; exit 1; }
BIN=$OUT/convd-tests-arm64
"$CC" -o "$BIN" $objs \
    -Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc,--wrap=aligned_alloc,--wrap=posix_memalign \
    -L"$LIBDIR" -Wl,-rpath-link,"$LIBDIR":"$SYSROOT/lib/aarch64-linux-gnu" -l:libcriterion.so.3 -l:libjansson.so.4 \
    -l:libfftw3f.so.3 -l:libsamplerate.so.0 -lm
echo "test-arm64: built $BIN"

# ---- run under qemu ----------------------------------------------------------------------
# Criterion re-executes its binary for each test: tests/arm64/qemu_exec.c sends that through
# qemu too (CVD_QEMU_EXEC), so no binfmt_misc is needed
LD="$(pwd)/$LIBDIR:$(pwd)/$SYSROOT/lib/aarch64-linux-gnu"
exec env QEMU_LD_PREFIX="$CROSS" LD_LIBRARY_PATH="$LD" CVD_QEMU_EXEC="$(command -v "$QEMU")" \
    "$QEMU" "$BIN" "$@"
