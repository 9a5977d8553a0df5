#!/usr/bin/env bash
# Make sure a Docker engine is installed and running, for the docker-marked tests.
#
# - Installs Debian's docker.io, docker-compose (v1) and debootstrap with apt-get when
#   dockerd, docker, docker-compose or debootstrap is missing.
# - Starts dockerd in the background (detached, logging to $DOCKERD_LOG) when `docker info`
#   fails and no dockerd is running yet, then waits up to $DOCKER_WAIT_SECONDS (60) for
#   `docker info` to succeed.
# Idempotent: with everything installed and the engine up it does nothing.
# Runs as root, or as a user with password-less sudo.
set -euo pipefail

DOCKERD_LOG="${DOCKERD_LOG:-/tmp/pytest-orchestrator-dockerd.log}"
DOCKER_WAIT_SECONDS="${DOCKER_WAIT_SECONDS:-60}"

# dockerd and debootstrap live in /usr/sbin, which is not on an ordinary user's PATH.
PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"
export PATH

log() { printf 'start-engine: %s\n' "$*" >&2; }
die() {
    log "ERROR: $*"
    exit 1
}

SUDO=()
if [[ $EUID -ne 0 ]]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO=(sudo -n)
    fi
fi
as_root() {
    if [[ $EUID -ne 0 && ${#SUDO[@]} -eq 0 ]]; then
        die "need root to run '$*' (not root, and sudo is not installed)"
    fi
    "${SUDO[@]}" "$@"
}

# 1. Install what is missing.
missing=()
command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
command -v docker >/dev/null 2>&1 || missing+=(docker.io)
command -v docker-compose >/dev/null 2>&1 || missing+=(docker-compose)
command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
if [[ ${#missing[@]} -gt 0 ]]; then
    mapfile -t packages < <(printf '%s\n' "${missing[@]}" | sort -u)
    log "installing ${packages[*]} with apt-get"
    start=$SECONDS
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${packages[@]}" >/dev/null
    hash -r
    for tool in dockerd docker docker-compose debootstrap; do
        command -v "$tool" >/dev/null 2>&1 || die "$tool is still missing after installing ${packages[*]}"
    done
    log "installed in $((SECONDS - start)) s"
fi

# 2. Start the engine if it does not answer.
if docker info >/dev/null 2>&1; then
    log "docker engine already running ($(docker version --format '{{.Server.Version}}' 2>/dev/null || echo '?'))"
    exit 0
fi

dockerd_pid=""
if pgrep -x dockerd >/dev/null 2>&1; then
    log "dockerd is already running but not answering yet; waiting for it"
else
    if [[ $EUID -ne 0 && ${#SUDO[@]} -eq 0 ]]; then
        die "docker info fails and dockerd must be started as root (not root, and sudo is not installed)"
    fi
    log "starting dockerd in the background (log: $DOCKERD_LOG)"
    extra=()
    if [[ $EUID -ne 0 ]]; then
        # Let the invoking user talk to the socket without being in the docker group.
        extra=(--group "$(id -gn)")
    fi
    : >"$DOCKERD_LOG"
    # setsid + nohup: the daemon outlives this script and the CI step's session.
    as_root nohup setsid dockerd "${extra[@]}" >>"$DOCKERD_LOG" 2>&1 </dev/null &
    dockerd_pid=$!
fi

# 3. Wait for it.
start=$SECONDS
until docker info >/dev/null 2>&1; do
    if [[ -n $dockerd_pid && ! -d /proc/$dockerd_pid ]]; then
        log "dockerd exited; last lines of $DOCKERD_LOG:"
        tail -n 30 "$DOCKERD_LOG" >&2 || true
        die "dockerd failed to start"
    fi
    if ((SECONDS - start >= DOCKER_WAIT_SECONDS)); then
        log "docker info still fails after ${DOCKER_WAIT_SECONDS} s:"
        docker info 2>&1 | tail -n 5 >&2 || true
        if [[ -s $DOCKERD_LOG ]]; then
            log "last lines of $DOCKERD_LOG:"
            tail -n 30 "$DOCKERD_LOG" >&2 || true
        fi
        die "docker engine did not come up"
    fi
    sleep 1
done
log "docker engine up after $((SECONDS - start)) s ($(docker version --format '{{.Server.Version}}' 2>/dev/null || echo '?'))"
