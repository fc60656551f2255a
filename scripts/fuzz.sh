#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Fuzz convd's input parsers with libFuzzer under ASan and UBSan (clang).
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]      (make fuzz FUZZ_SECONDS=60)
#
# Targets (tests/fuzz/fuzz_TARGET.c): nam (.nam files), json (convd model JSON), keras (Keras
# configs with a weights file), conf (convd.conf), proto (the framed, raw and line decoders,
# whole and in random splits). Each runs SECONDS (default 60), seeded from tests/data and
# config/; corpora grow in build-fuzz/corpus/TARGET, and whatever crashes, leaks or hangs is
# kept in build-fuzz/findings/TARGET (the script exits 1 when there is any).
set -eu
cd "$(dirname "$0")/.."
secs=${1:-60}
[ $# -gt 0 ] && shift
targets=${*:-nam json keras conf proto}

if ! command -v clang >/dev/null 2>&1; then
    echo "fuzz.sh: needs clang with libFuzzer (Debian: apt-get install clang)" >&2
    exit 2
fi
out=build-fuzz
mkdir -p "$out/obj"
CC="clang -g -O1 -std=c11 -D_GNU_SOURCE -fno-omit-frame-pointer -Idsp -Imodel -Iproto -Iserver -Iclient \
    -Itools/lib -I/usr/include/hdf5/serial -fsanitize=address,undefined -fno-sanitize-recover=undefined"
LIBS="-ljansson -lzip -L/usr/lib/x86_64-linux-gnu/hdf5/serial -lhdf5 -lhdf5_hl -linih -lsndfile -lfftw3f -lsamplerate -lm -lpthread"

# the library sources, instrumented for coverage
objs=""
for src in dsp/*.c model/*.c proto/*.c server/config.c server/config_table.c server/acl.c \
    server/nats_conf.c server/nats_wire.c; do
    o="$out/obj/$(echo "$src" | tr / _ | sed 's/\.c$/.o/')"
    if [ ! -f "$o" ] || [ "$src" -nt "$o" ]; then
        $CC -fsanitize=fuzzer-no-link -c "$src" -o "$o"
    fi
    objs="$objs $o"
done

seeds() { # TARGET -> the files that seed its corpus
    case $1 in
    nam) ls tests/data/nam/*.nam tests/data/nam/bad/*.nam ;;
    json) ls tests/data/json/*.json config/models/*.json tests/data/tools/graph.json ;;
    keras) ls tests/data/keras/*.json ;;
    conf) ls config/*.conf tests/data/config/*.conf 2>/dev/null || true ;;
    proto) ls tests/data/nam/input_4k.f32 tests/data/tools/*.csv ;;
    esac
}

status=0
for t in $targets; do
    [ -f "tests/fuzz/fuzz_$t.c" ] || { echo "fuzz.sh: no target '$t'" >&2; exit 2; }
    # shellcheck disable=SC2086
    $CC -fsanitize=fuzzer "tests/fuzz/fuzz_$t.c" $objs $LIBS -o "$out/fuzz_$t"
    mkdir -p "$out/corpus/$t" "$out/findings/$t"
    for f in $(seeds "$t"); do cp -n "$f" "$out/corpus/$t/" 2>/dev/null || true; done
    echo "== fuzz_$t: $secs s"
    if ! "$out/fuzz_$t" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
        -max_len=262144 -print_final_stats=1 -artifact_prefix="$out/findings/$t/" \
        "$out/corpus/$t" 2>"$out/fuzz_$t.log"; then
        status=1
    fi
    grep -E "^stat::number_of_executed_units|^stat::peak_rss_mb" "$out/fuzz_$t.log" || true
    if [ -n "$(ls "$out/findings/$t")" ]; then
        echo "fuzz_$t: findings in $out/findings/$t (log: $out/fuzz_$t.log)"
        status=1
    fi
done
exit $status
