#!/usr/bin/env bash
# Build the image the docker-marked tests run in: a minimal Debian bookworm root file system
# made with debootstrap (python3, pytest, coverage, `python` -> python3), imported with
# `docker import`. No image registry is needed, only a Debian mirror.
#
# Does nothing when the image already exists (remove it with `docker rmi` to rebuild).
# Environment: DEBIAN_MIRROR (default http://deb.debian.org/debian).
# Needs root (or password-less sudo) for debootstrap, and a reachable Docker engine.
set -euo pipefail

IMAGE="pytest-orchestrator-test:bookworm"
SUITE="bookworm"
DEBIAN_MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
PACKAGES="python3,python3-pytest,python3-coverage,python-is-python3"

# debootstrap lives in /usr/sbin, which is not on an ordinary user's PATH.
PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"
export PATH

log() { printf 'build-image: %s\n' "$*" >&2; }
die() {
    log "ERROR: $*"
    exit 1
}

total_start=$SECONDS

command -v docker >/dev/null 2>&1 || die "the docker client is not installed (run tests/docker/start-engine.sh)"
if ! docker_error=$(docker info 2>&1 >/dev/null); then
    die "the Docker engine is not reachable (run tests/docker/start-engine.sh): $(printf '%s' "$docker_error" | tail -n 1)"
fi

if docker image inspect "$IMAGE" >/dev/null 2>&1; then
    log "image $IMAGE already exists, reusing it ($(docker image inspect --format '{{.Id}}' "$IMAGE" | cut -c1-19))"
    exit 0
fi

command -v debootstrap >/dev/null 2>&1 || die "debootstrap is not installed (apt-get install debootstrap, or run tests/docker/start-engine.sh)"

SUDO=()
if [[ $EUID -ne 0 ]]; then
    command -v sudo >/dev/null 2>&1 || die "debootstrap needs root: run as root or install sudo"
    SUDO=(sudo -n)
fi

workdir=$(mktemp -d "${TMPDIR:-/tmp}/pytest-orchestrator-image.XXXXXX")
rootfs="$workdir/rootfs"
cleanup() {
    # A failed debootstrap can leave proc/sys mounted inside the root file system: unmount
    # them first, and never let rm cross into another file system.
    if [[ -d $rootfs ]]; then
        local mounts
        mounts=$(awk -v root="$rootfs/" 'index($2, root) == 1 { print $2 }' /proc/mounts | sort -r)
        if [[ -n $mounts ]]; then
            while IFS= read -r mount; do
                "${SUDO[@]}" umount -l "$mount" || true
            done <<<"$mounts"
        fi
    fi
    "${SUDO[@]}" rm -rf --one-file-system "$workdir"
}
trap cleanup EXIT

log "building $IMAGE: debootstrap --variant=minbase $SUITE from $DEBIAN_MIRROR (packages: $PACKAGES)"
step_start=$SECONDS
if ! "${SUDO[@]}" debootstrap --variant=minbase --include="$PACKAGES" \
    "$SUITE" "$rootfs" "$DEBIAN_MIRROR" >"$workdir/debootstrap.log" 2>&1; then
    log "debootstrap failed; last lines of its log:"
    tail -n 30 "$workdir/debootstrap.log" >&2 || true
    if [[ -f $rootfs/debootstrap/debootstrap.log ]]; then
        tail -n 30 "$rootfs/debootstrap/debootstrap.log" >&2 || true
    fi
    die "debootstrap failed"
fi
# Package lists and downloaded .debs are not needed in the image.
"${SUDO[@]}" rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
log "debootstrap took $((SECONDS - step_start)) s"

step_start=$SECONDS
"${SUDO[@]}" tar -c --numeric-owner -C "$rootfs" . |
    docker import \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'CMD ["sleep", "infinity"]' \
        - "$IMAGE" >/dev/null
log "docker import took $((SECONDS - step_start)) s"

step_start=$SECONDS
if ! versions=$(docker run --rm "$IMAGE" python -c \
    'import sys, pytest, coverage; print("Python", sys.version.split()[0], "pytest", pytest.__version__, "coverage", coverage.__version__)'); then
    # Do not leave a broken image behind for the next run to reuse.
    docker rmi "$IMAGE" >/dev/null 2>&1 || true
    die "the new image $IMAGE does not run python with pytest and coverage; removed it"
fi
log "smoke test took $((SECONDS - step_start)) s: $versions"

log "built $IMAGE in $((SECONDS - total_start)) s"
