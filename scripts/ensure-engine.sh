#!/usr/bin/env bash
# Make sure a local Docker Engine is running, is a single-node swarm manager, and has
# the integration-test image. Idempotent: on a machine where all of this already
# holds it changes nothing.
#
# Designed for CI machines and developer boxes WITHOUT systemd (containers, microVMs):
# dockerd is started by hand in the background. On a machine with systemd you would
# normally run `systemctl start docker` yourself first; this script then only checks.
#
# Findings on the reference machine (Debian bookworm, docker.io 20.10, cgroup v1 hybrid
# layout, iptables 1.8.9 with the nf_tables backend, ext4 root):
#   * plain `dockerd` works: no cgroup, iptables or storage flags are needed;
#   * storage driver overlay2 is picked automatically (vfs also works, but is slow);
#   * dockerd starts its own containerd when none runs at /run/containerd;
#   * no IPVS in the kernel, so the swarm ingress routing mesh cannot work: test
#     stacks must not publish ports (the errors about net.ipv4.vs.* in the log are
#     expected and harmless); overlay networks over 127.0.0.1 do work.
# If dockerd dies on start because of iptables (e.g. no nf_tables/legacy support in a
# nested container), it is retried once with --iptables=false: the tests only need
# container-to-nothing networking, so losing NAT/port publishing is acceptable there.
#
# Environment:
#   COMPOSESECRETS_DOCKERD_LOG       dockerd log file (default /var/log/composesecrets-dockerd.log)
#   COMPOSESECRETS_ENGINE_TIMEOUT    seconds to wait for the daemon (default 60)
#   COMPOSESECRETS_DOCKERD_ARGS      extra dockerd arguments (word-split), e.g. "--storage-driver vfs"
#   COMPOSESECRETS_SKIP_TEST_IMAGES  set to 1 to skip scripts/build-test-images.sh
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
log_file="${COMPOSESECRETS_DOCKERD_LOG:-/var/log/composesecrets-dockerd.log}"
timeout="${COMPOSESECRETS_ENGINE_TIMEOUT:-60}"

say() { printf 'ensure-engine: %s\n' "$*" >&2; }
die() { say "ERROR: $*"; exit 1; }

as_root() {
    if [[ "$(id -u)" -eq 0 ]]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo -n "$@"
    else
        die "need root (or passwordless sudo) to run: $*"
    fi
}

engine_up() { docker info >/dev/null 2>&1; }

show_log_tail() {
    if [[ -r "$log_file" ]]; then
        say "last lines of $log_file (gRPC chatter omitted):"
        grep -v 'module=grpc' "$log_file" | tail -n 25 >&2 || true
    fi
}

install_packages() {
    say "installing $* with apt-get"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >&2
}

dockerd_pid() {
    # The pid dockerd wrote for itself, if that process is still alive.
    local pid
    pid="$(cat /var/run/docker.pid 2>/dev/null || true)"
    if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null \
        && [[ "$(cat "/proc/$pid/comm" 2>/dev/null || true)" == dockerd ]]; then
        printf '%s\n' "$pid"
    fi
}

# Wait for `docker info`; fails early when the given dockerd pid exits.
wait_for_engine() {
    local pid="$1" waited=0
    while ! engine_up; do
        if [[ -n "$pid" ]] && ! kill -0 "$pid" 2>/dev/null; then
            return 2
        fi
        if ((waited >= timeout)); then
            return 1
        fi
        sleep 1
        waited=$((waited + 1))
    done
}

start_dockerd() {
    local -a args=("$@")
    if [[ -n "${COMPOSESECRETS_DOCKERD_ARGS:-}" ]]; then
        # shellcheck disable=SC2206  # word splitting is intended
        args+=(${COMPOSESECRETS_DOCKERD_ARGS})
    fi
    as_root mkdir -p "$(dirname "$log_file")"
    say "starting dockerd${args[*]:+ ${args[*]}} (log: $log_file)"
    # setsid + nohup: the daemon survives the end of this script and of its session.
    # shellcheck disable=SC2016  # expanded by the inner sh, on purpose
    as_root sh -c 'printf "\n=== %s starting dockerd %s\n" "$(date -u +%FT%TZ)" "$*" >>"$0"
        setsid nohup dockerd "$@" >>"$0" 2>&1 </dev/null &
        echo $!' "$log_file" "${args[@]}"
}

ensure_daemon() {
    if engine_up; then
        say "Docker Engine already answering ($(docker version --format '{{.Server.Version}}' 2>/dev/null || echo '?'))"
        return 0
    fi
    if [[ -n "${DOCKER_HOST:-}" && "${DOCKER_HOST}" != unix:///var/run/docker.sock \
        && "${DOCKER_HOST}" != unix:///run/docker.sock ]]; then
        die "DOCKER_HOST=${DOCKER_HOST} does not answer; this script only starts a local daemon"
    fi

    command -v docker >/dev/null 2>&1 || install_packages docker.io busybox-static
    if ! command -v dockerd >/dev/null 2>&1; then
        install_packages docker.io busybox-static
        # A package postinst may have started the daemon through an init script.
        if engine_up; then
            say "Docker Engine started by the package"
            return 0
        fi
    fi

    local pid rc=0 log_start
    log_start="$(stat -c %s "$log_file" 2>/dev/null || echo 0)"
    pid="$(dockerd_pid)"
    if [[ -n "$pid" ]]; then
        say "dockerd already running (pid $pid), waiting for it to answer"
    else
        pid="$(start_dockerd)"
    fi
    wait_for_engine "$pid" || rc=$?
    if ((rc == 2)) && tail -c "+$((log_start + 1))" "$log_file" 2>/dev/null \
        | grep -qiE 'iptables|nf_tables|nat chain'; then
        say "dockerd exited with an iptables error; retrying once with --iptables=false"
        show_log_tail
        rc=0
        pid="$(start_dockerd --iptables=false)"
        wait_for_engine "$pid" || rc=$?
    fi
    case "$rc" in
        0) say "Docker Engine is up ($(docker version --format '{{.Server.Version}}'))" ;;
        2) show_log_tail; die "dockerd (pid $pid) exited during start-up" ;;
        *) show_log_tail; die "Docker Engine did not answer within ${timeout}s" ;;
    esac
}

ensure_swarm() {
    local state control waited=0
    while :; do
        state="$(docker info --format '{{.Swarm.LocalNodeState}}')"
        [[ "$state" != pending ]] && break
        ((waited >= timeout)) && die "swarm state still 'pending' after ${timeout}s"
        sleep 1
        waited=$((waited + 1))
    done
    case "$state" in
        active)
            control="$(docker info --format '{{.Swarm.ControlAvailable}}')"
            [[ "$control" == true ]] \
                || die "this node is in a swarm but is not a manager; run 'docker swarm leave' first"
            say "swarm already active (manager)"
            ;;
        inactive)
            say "initialising a single-node swarm on 127.0.0.1"
            docker swarm init --advertise-addr 127.0.0.1 --listen-addr 127.0.0.1:2377 >/dev/null
            [[ "$(docker info --format '{{.Swarm.LocalNodeState}}')" == active ]] \
                || die "docker swarm init did not leave an active swarm"
            ;;
        *)
            die "unexpected swarm state '$state' (locked or error); fix it by hand"
            ;;
    esac
}

ensure_daemon
ensure_swarm
if [[ "${COMPOSESECRETS_SKIP_TEST_IMAGES:-0}" != 1 ]]; then
    "$here/build-test-images.sh" >/dev/null
fi
say "ready"
