#!/bin/sh
# Make sure a program or file from Debian packages is installed:
#   install_debian_package.sh PATH PACKAGE [PACKAGE ...]
# `make browser` uses it for Chromium (/usr/bin/chromium, the browser tests drive it),
# `make bench` for wrk (/usr/bin/wrk, the api stages' load) and `make csharp` for Mono
# (/usr/bin/mcs plus the packages the C# SDK compiles against). Idempotent: does nothing
# when PATH is there and every PACKAGE is installed (a second package, e.g. a library
# without a program of its own, is checked with dpkg). Installing needs root and apt-get.
set -eu

if [ $# -lt 2 ]; then
    echo "usage: install_debian_package.sh PATH PACKAGE [PACKAGE ...]" >&2
    exit 2
fi
BIN=$1
shift
me=install_debian_package.sh

installed() {
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"
}

missing=""
for package in "$@"; do
    installed "$package" || missing="$missing $package"
done
if [ -e "$BIN" ] && [ -z "$missing" ]; then
    exit 0
fi
[ -n "$missing" ] || missing=" $*"

if [ "$(id -u)" != 0 ]; then
    echo "$me: $BIN or$missing is missing and installing needs root (apt-get install$missing)" >&2
    exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "$me: $BIN or$missing is missing and apt-get is not available to install them" >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
log=$(mktemp)
trap 'rm -f "$log"' EXIT
# shellcheck disable=SC2086  # $missing is a list of package names
if ! { apt-get update -qq && apt-get install -y -qq $missing; } >"$log" 2>&1; then
    echo "$me: apt-get could not install$missing; last lines of its output:" >&2
    tail -n 20 "$log" >&2
    exit 1
fi

if [ ! -e "$BIN" ]; then
    echo "$me: apt-get installed$missing but $BIN is still missing" >&2
    exit 1
fi
