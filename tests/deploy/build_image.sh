#!/usr/bin/env bash
# Build the service image with podman, offline, from a base image made of Debian's packages.
#
#   tests/deploy/build_image.sh IMAGE
#
# No container registry is reachable here, so the base image (Python 3.11 with venv) is made with
# debootstrap from Debian's packages and imported into podman once; later runs reuse it
# (CDS_TEST_BASE_IMAGE names it). The wheels of deploy/requirements.lock are downloaded on the host
# (whose certificate store trusts the network's TLS proxy; the build's would not) into build/wheels/,
# checked against the lock's hashes, and the image is built with no network at all (PIP_OFFLINE=1).
set -euo pipefail

IMAGE="${1:?usage: build_image.sh IMAGE}"
BASE="${CDS_TEST_BASE_IMAGE:-localhost/dexfree-base:bookworm-python3.11}"
PY="${PYTHON:-python3}"
REPO="$(cd "$(dirname "$0")/../.." && pwd)"
PODMAN=(podman --runtime runc)
ULIMITS=(--ulimit nofile=1024:1024 --ulimit nproc=1024:1024)

say() { echo "build_image: $*" >&2; }

mirror() {
    # The host's own Debian mirror (deb822 sources), else Debian's default.
    local uri
    uri="$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)"
    echo "${uri:-http://deb.debian.org/debian}"
}

if ! "${PODMAN[@]}" image exists "$BASE"; then
    started=$SECONDS
    root="$(mktemp -d /tmp/dexfree-rootfs.XXXXXX)"
    trap 'rm -rf "$root"' EXIT
    say "making the base image $BASE with debootstrap (once; later runs reuse it)"
    debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates bookworm "$root" "$(mirror)" \
        >"$root.log" 2>&1 || { tail -n 30 "$root.log" >&2; exit 1; }
    rm -f "$root.log"
    # The apt lists and caches are of no use in an image.
    rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*
    tar -C "$root" -c . | "${PODMAN[@]}" import - "$BASE" >/dev/null
    rm -rf "$root"
    trap - EXIT
    say "base image made in $((SECONDS - started)) s"
fi

started=$SECONDS
WHEELS="$REPO/build/wheels"
mkdir -p "$WHEELS"
download() {
    "$PY" -m pip download --quiet --disable-pip-version-check --only-binary=:all: --no-deps --require-hashes \
        -r "$REPO/deploy/requirements.lock" -d "$WHEELS" "$@" 2> >(grep -v "is ignored: it is neither" >&2)
}
# The wheels of an earlier run, if they still match the lock; else from the index.
if ! download --no-index --find-links "$WHEELS" 2>/dev/null; then
    download
fi
say "wheels ready in $((SECONDS - started)) s"

started=$SECONDS
"${PODMAN[@]}" build --quiet --format docker --network none "${ULIMITS[@]}" \
    --build-arg BASE_IMAGE="$BASE" --build-arg PIP_OFFLINE=1 \
    -f "$REPO/deploy/Dockerfile" --ignorefile "$REPO/deploy/Dockerfile.dockerignore" \
    -t "$IMAGE" "$REPO" >/dev/null
# The build stage's image and the image this tag had before: dangling now.
"${PODMAN[@]}" image prune --force --filter label=org.dexfree.stage=build >/dev/null
"${PODMAN[@]}" image prune --force --filter label=org.dexfree.image=dex-free-cds >/dev/null
say "image $IMAGE built in $((SECONDS - started)) s"
