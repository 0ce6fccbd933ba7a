#!/usr/bin/env bash
# What `make bench` needs from Debian's packages: wrk, the concurrent load tool of bench_hooks.py. Needs
# root and apt-get; otherwise it says so (bench_hooks.py then stops with the same message). Exits 0.
set -uo pipefail
command -v wrk >/dev/null 2>&1 && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "bench: wrk is missing; installing it needs root and apt-get (apt-get install wrk)" >&2
    exit 0
fi
DEBIAN_FRONTEND=noninteractive apt-get install -y -q wrk >/dev/null 2>&1 \
    || { apt-get update -q >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q wrk >/dev/null 2>&1; } \
    || echo "bench: apt-get install wrk failed" >&2
exit 0
