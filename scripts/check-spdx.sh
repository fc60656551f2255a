#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Every source file names its licence (LICENSE: Apache-2.0) with an SPDX-License-Identifier
# line near its top: the C sources and headers, the Python and shell scripts, the Python
# client. Lists the files without one and exits 1 if there is any.
#
#   scripts/check-spdx.sh [ROOT]     (default: the tree this script is in)
set -eu
root=${1:-"$(dirname "$0")/.."}
cd "$root"
bad=0
n=0
for f in $(find dsp model proto server client tools tests scripts \
        \( -name build -o -name __pycache__ -o -name '*.egg-info' -o -name data \) -prune -o \
        -type f \( -name '*.[ch]' -o -name '*.py' -o -name '*.sh' \) -print 2>/dev/null | sort); do
    n=$((n + 1))
    if ! head -n 5 "$f" | grep -q 'SPDX-License-Identifier: '; then
        echo "$f: no SPDX-License-Identifier line in its first 5 lines"
        bad=$((bad + 1))
    fi
done
if [ $bad -gt 0 ]; then
    echo "check-spdx: $bad of $n source files name no licence"
    exit 1
fi
echo "check-spdx: $n source files name their licence"
