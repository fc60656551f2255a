#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# The committed .clang-format kept applied: lists every C file whose formatting differs from
# what clang-format makes of it, and exits 1 if there is any (make format-check; make format
# applies it). .ci/run runs it before the tests.
#
#   scripts/check-format.sh [FILE...]     (default: the files `make format` formats)
set -eu
cd "$(dirname "$0")/.."
command -v clang-format >/dev/null || { echo "check-format: clang-format is not installed (apt-get install clang-format)" >&2; exit 2; }
if [ $# -eq 0 ]; then
    # shellcheck disable=SC2046
    set -- $(ls dsp/*.[ch] model/*.[ch] proto/*.[ch] server/*.[ch] client/*.[ch] tools/*.c \
        tools/lib/*.[ch] tests/*.[ch] tests/bench/*.[ch] 2>/dev/null)
fi
bad=0
for f in "$@"; do
    if ! clang-format --style=file "$f" | cmp -s - "$f"; then
        echo "$f: not as clang-format writes it (make format)"
        bad=$((bad + 1))
    fi
done
if [ $bad -gt 0 ]; then
    echo "check-format: $bad of $# files differ from .clang-format"
    exit 1
fi
echo "check-format: $# files as .clang-format writes them"
