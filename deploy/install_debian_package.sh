#!/bin/sh
# Make sure a program from a Debian package is installed: install_debian_package.sh PATH PACKAGE.
# `make browser` uses it for Chromium (/usr/bin/chromium, the browser tests drive it) and
# `make bench` for wrk (/usr/bin/wrk, the api stages' load). Idempotent: does nothing when
# PATH is already there. Installing needs root and apt-get.
set -eu

if [ $# -ne 2 ]; then
    echo "usage: install_debian_package.sh PATH PACKAGE" >&2
    exit 2
fi
BIN=$1
PACKAGE=$2
me=install_debian_package.sh

if [ -x "$BIN" ]; then
    exit 0
fi

if [ "$(id -u)" != 0 ]; then
    echo "$me: $BIN is missing and installing it needs root (apt-get install $PACKAGE)" >&2
    exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "$me: $BIN is missing and apt-get is not available to install $PACKAGE" >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
log=$(mktemp)
trap 'rm -f "$log"' EXIT
if ! { apt-get update -qq && apt-get install -y -qq "$PACKAGE"; } >"$log" 2>&1; then
    echo "$me: apt-get could not install $PACKAGE; last lines of its output:" >&2
    tail -n 20 "$log" >&2
    exit 1
fi

if [ ! -x "$BIN" ]; then
    echo "$me: apt-get installed $PACKAGE but $BIN is still missing" >&2
    exit 1
fi
