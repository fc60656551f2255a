#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Installs the system packages convd needs to build, test and run, on Debian 12.
# Installs only what is missing; uses sudo when not root. Safe to run again.
#
#   scripts/install-deps.sh            install what is missing
#   scripts/install-deps.sh --check    list what is missing, exit 1 if anything is
#   scripts/install-deps.sh --quiet    say nothing when nothing is missing
set -eu

# Build and run time: the C toolchain and the libraries the daemon links.
BUILD_PKGS="build-essential pkg-config libcriterion-dev libuv1-dev portaudio19-dev
libjansson-dev libinih-dev libsystemd-dev libsndfile1-dev libzip-dev libhdf5-dev libssl-dev
libcairo2-dev libfontconfig-dev libfftw3-dev libsamplerate0-dev libnats-dev"
# Tests and `make run`'s printed example: audio loopback through ALSA plugin devices, and
# jackd2's dummy driver for a paced audio device (xruns); sox and nc (OpenBSD's, for -N) to
# stream a WAV file through the daemon by hand.
TEST_PKGS="libasound2-plugins alsa-utils jackd2 sox netcat-openbsd"
# TLS tests: throwaway certificates (openssl), and the documented TLS pipes (socat)
TEST_PKGS="$TEST_PKGS openssl socat"
# the units' hardening score (systemd-analyze security --offline=true)
TEST_PKGS="$TEST_PKGS systemd"
# The Python client's tests (pytest; pip and setuptools to check it installs).
TEST_PKGS="$TEST_PKGS python3-pytest python3-pip python3-setuptools"
# The manual pages' check (mandoc -T lint)
TEST_PKGS="$TEST_PKGS mandoc"
# make format-check in .ci/run: the tree as the committed .clang-format writes it (clang-format 14)
TEST_PKGS="$TEST_PKGS clang-format"
# The Debian package's test (scripts/test-deb.sh, in CI): dpkg-buildpackage, dh, lintian
TEST_PKGS="$TEST_PKGS dpkg-dev debhelper lintian"
# The aarch64 build's tests (scripts/test-arm64.sh): the cross compiler and qemu-user; the
# arm64 libraries the tests link are fetched with apt-get download (never installed), which
# needs dpkg's arm64 architecture (added below)
TEST_PKGS="$TEST_PKGS gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user"
# the NATS transport's tests (a real cluster on 127.0.0.1) and scripts/nats-cluster.sh
TEST_PKGS="$TEST_PKGS nats-server"
# Scripts only (golden data, model import, demo training); never used by the daemon.
SCRIPT_PKGS="python3 python3-numpy python3-h5py python3-torch"

PKGS="$BUILD_PKGS $TEST_PKGS $SCRIPT_PKGS"

mode=install
case "${1:-}" in
--check) mode=check ;;
--quiet) mode=quiet ;;
"") ;;
*) echo "usage: $0 [--check|--quiet]" >&2; exit 2 ;;
esac

missing=""
for p in $PKGS; do
    st=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
    case "$st" in
    *"install ok installed"*) ;;
    *) missing="$missing $p" ;;
    esac
done

# apt-get download of arm64 packages (scripts/test-arm64.sh) needs their package lists
need_arm64=0
if command -v dpkg >/dev/null 2>&1 && ! dpkg --print-foreign-architectures | grep -qx arm64; then
    need_arm64=1
fi

if [ -z "$missing" ] && [ "$need_arm64" -eq 0 ]; then
    [ "$mode" = install ] && echo "install-deps: everything is installed"
    exit 0
fi
if [ "$mode" = check ]; then
    [ -n "$missing" ] && echo "install-deps: missing:$missing"
    [ "$need_arm64" -eq 1 ] && echo "install-deps: dpkg has no arm64 architecture (for the aarch64 tests' libraries)"
    exit 1
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-deps: apt-get not found; install these by hand:$missing" >&2
    exit 1
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO=sudo
    else
        echo "install-deps: not root and no sudo; install these as root:$missing" >&2
        exit 1
    fi
fi
if [ "$need_arm64" -eq 1 ]; then
    echo "install-deps: adding dpkg's arm64 architecture (nothing arm64 is installed)"
    $SUDO dpkg --add-architecture arm64
fi
if [ -z "$missing" ]; then
    $SUDO apt-get update -qq
    exit 0
fi
echo "install-deps: installing:$missing"
case " $missing " in
*" jackd2 "*)
    # jackd2 asks whether to allow real-time priority to the audio group: no (the tests run
    # jackd with --no-realtime; docs/AUDIO.md says how to set up a real interface)
    if command -v debconf-set-selections >/dev/null 2>&1; then
        echo 'jackd2 jackd/tweak_rt_limits boolean false' | $SUDO debconf-set-selections
    fi
    ;;
esac
$SUDO apt-get update -qq
# shellcheck disable=SC2086
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing
