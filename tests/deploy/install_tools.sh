#!/usr/bin/env bash
# Install what the deployment tests need from Debian's packages when it is missing: podman and runc
# (the image test), debootstrap (its base image), haproxy (the replicas test). Needs root and apt-get;
# otherwise it says so and the tests skip (or fail under CI) with the reason. Always exits 0.
set -uo pipefail

need=()
command -v podman >/dev/null 2>&1 || need+=(podman)
command -v runc >/dev/null 2>&1 || [ -x /usr/sbin/runc ] || need+=(runc)
command -v debootstrap >/dev/null 2>&1 || [ -x /usr/sbin/debootstrap ] || need+=(debootstrap)
command -v haproxy >/dev/null 2>&1 || [ -x /usr/sbin/haproxy ] || need+=(haproxy)
[ ${#need[@]} -eq 0 ] && exit 0

say() { echo "install_tools: $*" >&2; }
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    say "missing ${need[*]}; installing needs root and apt-get (the tests that need them will say so)"
    exit 0
fi
say "installing ${need[*]} from Debian's packages"
apt-get update -q >/dev/null 2>&1 || say "apt-get update failed"
DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need[@]}" >/dev/null 2>&1 \
    || say "apt-get install ${need[*]} failed (the tests that need them will say so)"
exit 0
