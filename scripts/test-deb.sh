#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Builds the Debian package in a copy of the tree (dpkg-buildpackage -us -uc -b), checks it
# with lintian (no errors), installs it with dpkg, checks what it installed (convd --check on
# the installed configuration, a conffile, manual pages, completion) and purges it.
#
#   scripts/test-deb.sh          run as .ci/run does, after make test
#   KEEP_DEB=DIR scripts/test-deb.sh    also copy the .deb to DIR
#
# It installs into the running system: it refuses to run where convd is installed, or
# /etc/convd exists, rather than touch them. Needs root (or sudo) for dpkg.
set -eu
cd "$(dirname "$0")/.."
top=$(pwd)
start=$(date +%s)
say() { echo "test-deb: $*"; }
fail() { echo "test-deb: FAILED: $*" >&2; exit 1; }

for t in dpkg-buildpackage dh lintian; do
    command -v "$t" >/dev/null 2>&1 ||
        fail "$t not found (apt-get install dpkg-dev debhelper lintian; scripts/install-deps.sh does)"
done
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || fail "not root and no sudo: dpkg -i needs root"
    SUDO=sudo
fi
case "$(dpkg-query -W -f='${Status}' convd 2>/dev/null || true)" in
*installed*|*config-files*) fail "the convd package is already on this system: not touching it" ;;
esac
[ ! -e /etc/convd ] || fail "/etc/convd exists (make install?): not touching it"

version=$(dpkg-parsechangelog -l debian/changelog -S Version)
arch=$(dpkg --print-architecture)
work=$(mktemp -d "${TMPDIR:-/tmp}/convd-deb.XXXXXX")
installed=0
cleanup() {
    if [ "$installed" = 1 ]; then $SUDO dpkg --purge convd >/dev/null 2>&1 || true; fi
    rm -rf "$work"
}
trap cleanup EXIT INT TERM

# the tree as it is (tracked and new files, not ignored ones such as build/)
mkdir "$work/convd-$version"
# (files deleted but not yet committed are skipped)
git ls-files -z --cached --others --exclude-standard |
    tar --null -T - --ignore-failed-read -cf - 2>/dev/null | tar -xf - -C "$work/convd-$version"
[ -f "$work/convd-$version/debian/rules" ] || fail "copying the tree failed"

say "dpkg-buildpackage -us -uc -b (log: build.log)"
t=$(date +%s)
if ! (cd "$work/convd-$version" && DEB_BUILD_OPTIONS="parallel=${JOBS:-2} nocheck" \
        dpkg-buildpackage -us -uc -b) >"$work/build.log" 2>&1; then
    tail -n 60 "$work/build.log" >&2
    fail "dpkg-buildpackage failed"
fi
deb="$work/convd_${version}_${arch}.deb"
[ -f "$deb" ] || fail "no $deb (built: $(ls "$work"/*.deb 2>/dev/null))"
say "built $(basename "$deb") in $(($(date +%s) - t)) s, $(du -k "$deb" | cut -f1) KiB"
[ -z "${KEEP_DEB:-}" ] || cp "$deb" "$KEEP_DEB"/

t=$(date +%s)
lintian --fail-on error --no-tag-display-limit "$deb" >"$work/lintian.log" 2>&1 || {
    cat "$work/lintian.log" >&2
    fail "lintian reports errors"
}
say "lintian: no errors ($(grep -c '^W:' "$work/lintian.log" || true) warnings) in $(($(date +%s) - t)) s"
grep '^[WI]:' "$work/lintian.log" | sed 's/^/test-deb:   /' || true

say "dpkg -i"
$SUDO dpkg -i "$deb" >"$work/dpkg.log" 2>&1 || { cat "$work/dpkg.log" >&2; fail "dpkg -i failed"; }
installed=1
[ "$(command -v convd)" = /usr/bin/convd ] || fail "convd is not /usr/bin/convd"
v=$(/usr/bin/convd --version)
[ "$v" = "convd $version" ] || fail "convd --version says '$v', the package is $version"
for t in $(ls "$top"/tools/*.c | sed 's|.*/||; s|\.c$||'); do
    [ -x "/usr/bin/$t" ] || fail "/usr/bin/$t is missing"
    "/usr/bin/$t" --version >/dev/null || fail "$t --version failed"
done
/usr/bin/convd --check -c /etc/convd/convd.conf >"$work/check.log" 2>&1 || {
    cat "$work/check.log" >&2
    fail "convd --check -c /etc/convd/convd.conf failed"
}
say "convd --check on the installed configuration: $(tail -n 1 "$work/check.log")"
dpkg-query -W -f='${Conffiles}\n' convd | grep -q ' /etc/convd/convd.conf ' ||
    fail "/etc/convd/convd.conf is not a conffile"
for f in /usr/share/man/man8/convd.8.gz /usr/share/man/man5/convd.conf.5.gz \
    /usr/share/man/man1/convd-run.1.gz /usr/share/bash-completion/completions/convd \
    /usr/share/bash-completion/completions/convd-cat /lib/systemd/system/convd.service \
    /lib/systemd/system/convd-audio.service /usr/share/convd/models/drive.json \
    /usr/share/doc/convd/CONFIG.md /usr/share/doc/convd/copyright; do
    [ -e "$f" ] || fail "$f is not installed"
done
/usr/bin/convd --help | grep -q '/usr/share/doc/convd' || fail "convd --help does not name /usr/share/doc/convd"

say "dpkg --purge"
$SUDO dpkg --purge convd >"$work/purge.log" 2>&1 || { cat "$work/purge.log" >&2; fail "dpkg --purge failed"; }
installed=0
[ ! -e /usr/bin/convd ] || fail "/usr/bin/convd is still there after purge"
[ ! -e /etc/convd/convd.conf ] || fail "/etc/convd/convd.conf is still there after purge"
say "ok in $(($(date +%s) - start)) s"
