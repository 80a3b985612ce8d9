#!/bin/sh
# Make sure a headless-capable Chromium is at /usr/bin/chromium (the browser SDK tests
# drive it). Idempotent: does nothing when it is already installed. Debian package, root.
set -eu

CHROMIUM=/usr/bin/chromium

if [ -x "$CHROMIUM" ]; then
    exit 0
fi

if [ "$(id -u)" != 0 ]; then
    echo "install_chromium.sh: $CHROMIUM is missing and installing it needs root (apt-get install chromium)" >&2
    exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "install_chromium.sh: $CHROMIUM is missing and apt-get is not available to install it" >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
log=$(mktemp)
trap 'rm -f "$log"' EXIT
if ! { apt-get update -qq && apt-get install -y -qq chromium; } >"$log" 2>&1; then
    echo "install_chromium.sh: apt-get could not install chromium; last lines of its output:" >&2
    tail -n 20 "$log" >&2
    exit 1
fi

if [ ! -x "$CHROMIUM" ]; then
    echo "install_chromium.sh: apt-get succeeded but $CHROMIUM is still missing" >&2
    exit 1
fi
