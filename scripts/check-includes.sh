#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# The source tree's include rules (docs/ARCHITECTURE.md), checked:
#
#   1. no file includes a .c file;
#   2. no include cycle between modules: a module is a folder's file stem (server/conn.c and
#      server/conn.h are server/conn), and an edge goes from a file's module to the module of
#      every header of the tree it includes ("x.h" found in dsp/ model/ proto/ server/ client/
#      tools/lib/ or tools/);
#   3. the layers: dsp/ includes only dsp/; model/ dsp/ and model/; proto/ dsp/ and proto/;
#      client/ dsp/, proto/ and client/ (never server/); tools/ anything but server/.
#
#   scripts/check-includes.sh [ROOT]     (make check-includes; ROOT defaults to the tree)
#
# Prints every violation and exits 1 if there is any.
set -eu
root=${1:-$(dirname "$0")/..}
cd "$root"
dirs="dsp model proto server client tools/lib tools"
status=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

files=$(for d in $dirs; do ls "$d"/*.c "$d"/*.h 2>/dev/null || true; done)
[ -n "$files" ] || { echo "check-includes: no source files under $root" >&2; exit 2; }
# the tree's headers, in the -I order of the Makefile: the first of a name wins
headers=$(for d in dsp model proto tools/lib server client tools; do ls "$d"/*.h 2>/dev/null || true; done)

# one pass: the .c includes and layer breaks (printed), and the module
# edges (FROM TO) for tsort
# shellcheck disable=SC2086
awk -v headers="$headers" -v edges="$tmp/edges" '
function dir_of(p) { sub(/\/[^\/]*$/, "", p); return p }
function base_of(p) { sub(/^.*\//, "", p); return p }
function stem_of(p) { p = base_of(p); sub(/\.[ch]$/, "", p); return p }
function allowed(from, to) {
    if (from == "server") return 1
    if (from == to) return 1
    if (to == "dsp") return 1
    if (from == "model") return 0
    if (from == "proto") return 0
    if (from == "client") return to == "proto"
    if (from ~ /^tools/) return to == "model" || to == "proto" || to == "client" || to ~ /^tools/
    return 0
}
BEGIN {
    n = split(headers, hs, "\n")
    for (i = 1; i <= n; i++)
        if (hs[i] != "" && !(base_of(hs[i]) in hdir))
            hdir[base_of(hs[i])] = dir_of(hs[i])
    printf "" > edges
}
/^[ \t]*#[ \t]*include[ \t]*"/ {
    inc = $0
    sub(/^[^"]*"/, "", inc)
    sub(/".*$/, "", inc)
    if (inc ~ /\.c$/) {
        printf "%s: includes a .c file: %s\n", FILENAME, inc
        bad = 1
        next
    }
    name = base_of(inc)
    if (!(name in hdir))
        next # a system or generated header
    from = dir_of(FILENAME)
    to = hdir[name]
    if (!allowed(from, to)) {
        printf "%s: includes %s/%s: %s/ may not depend on %s/\n", FILENAME, to, name, from, to
        bad = 1
    }
    a = from "/" stem_of(FILENAME)
    b = to "/" stem_of(name)
    if (a != b)
        print a, b > edges
}
END { exit bad }
' $files || status=1

if ! tsort "$tmp/edges" >/dev/null 2>"$tmp/tsort"; then
    echo "include cycle between modules:"
    grep -v "input contains a loop" "$tmp/tsort" | sed 's/^tsort: /  /'
    status=1
fi
[ $status -eq 0 ] && echo "check-includes: $(echo "$files" | wc -l) files, $(sort -u "$tmp/edges" | wc -l) module edges: no .c include, no cycle, layers kept"
exit $status
