#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# No C source file over LIMIT lines (1,100) without a reason: a long file says why it stays
# long in its opening comment (the first comment after the SPDX line), in a sentence that starts
# with the marker "Long because:" (docs/ARCHITECTURE.md). Lists the long files without one and
# exits 1 if there is any.
#
#   scripts/check-long-files.sh [ROOT [LIMIT]]     (defaults: the tree this script is in, 1100)
set -eu
root=${1:-"$(dirname "$0")/.."}
limit=${2:-1100}
cd "$root"
bad=0
long=0
for f in $(find dsp model proto server client tools tests \
        \( -name build -o -name data \) -prune -o -type f -name '*.[ch]' -print 2>/dev/null | sort); do
    lines=$(wc -l < "$f")
    [ "$lines" -gt "$limit" ] || continue
    long=$((long + 1))
    # the opening comment: the first /* ... */ that is not the SPDX line, read up to its end
    if ! awk '
        !started && /^[ \t]*$/ { next }
        !started && /^\/\* SPDX-License-Identifier: .*\*\/[ \t]*$/ { next }
        !started && /^[ \t]*\/\*/ { started = 1 }
        !started { exit 1 }
        { if (index($0, "Long because:")) found = 1 }
        /\*\// { exit found ? 0 : 1 }
        END { exit found ? 0 : 1 }' "$f"; then
        echo "$f: $lines lines, and its opening comment gives no \"Long because:\" reason"
        bad=$((bad + 1))
    fi
done
if [ $bad -gt 0 ]; then
    echo "check-long-files: $bad of $long files over $limit lines say not why"
    exit 1
fi
echo "check-long-files: $long files over $limit lines, each says why"
