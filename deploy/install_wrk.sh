#!/bin/sh
# Make sure the HTTP load generator wrk is at /usr/bin/wrk (make bench drives the api
# stages with it). Idempotent: does nothing when it is already installed. Debian package, root.
set -eu

WRK=/usr/bin/wrk

if [ -x "$WRK" ]; then
    exit 0
fi

if [ "$(id -u)" != 0 ]; then
    echo "install_wrk.sh: $WRK is missing and installing it needs root (apt-get install wrk)" >&2
    exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "install_wrk.sh: $WRK is missing and apt-get is not available to install it" >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
log=$(mktemp)
trap 'rm -f "$log"' EXIT
if ! { apt-get update -qq && apt-get install -y -qq wrk; } >"$log" 2>&1; then
    echo "install_wrk.sh: apt-get could not install wrk; last lines of its output:" >&2
    tail -n 20 "$log" >&2
    exit 1
fi

if [ ! -x "$WRK" ]; then
    echo "install_wrk.sh: apt-get succeeded but $WRK is still missing" >&2
    exit 1
fi
