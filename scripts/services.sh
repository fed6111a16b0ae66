#!/usr/bin/env bash
# Start (or stop) what the tests and the demo need: a Docker Engine, the offline base images, arm64 emulation
# (scripts/tools.sh: a pinned QEMU registered with binfmt_misc, machine-wide), and two OCI registries on loopback
# (Debian's docker-registry: one open, one with htpasswd auth). Also installs the Debian tools the tests use:
# 7zip (host calibration), skopeo (an outside reader of archives), chromium (the panel's UI tests), prometheus
# (drift monitoring) and openssh-server (a board measured over SSH).
#
#   scripts/services.sh start   install missing Debian packages, start dockerd unless one is reachable,
#                               build the offline base images (cached), start the registries;
#                               writes .run/env to source
#   scripts/services.sh stop    stop only what `start` started
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
run=$root/.run
cache=${EDGEBENCH_CACHE:-$HOME/.cache/edgebench}
dockerd_dir=$cache/dockerd
mkdir -p "$run"

log() { echo "services: $*" >&2; }

need_packages() {
    local missing=()
    command -v dockerd >/dev/null || missing+=(docker.io)
    command -v debootstrap >/dev/null || missing+=(debootstrap)
    command -v docker-registry >/dev/null || missing+=(docker-registry)
    command -v htpasswd >/dev/null || missing+=(apache2-utils)
    command -v skopeo >/dev/null || missing+=(skopeo)
    command -v prometheus >/dev/null || missing+=(prometheus)
    [ -x /usr/sbin/sshd ] || missing+=(openssh-server)  # a stand-in board reached over SSH in the tests
    command -v 7zz >/dev/null || missing+=(7zip)
    command -v chromium >/dev/null || missing+=(chromium)
    if [ ${#missing[@]} -gt 0 ]; then
        log "installing ${missing[*]}"
        if [ "$(id -u)" != 0 ]; then log "need root to apt-get install ${missing[*]}"; return 1; fi
        DEBIAN_FRONTEND=noninteractive apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
}

engine_up() { DOCKER_HOST=$1 docker version --format '{{.Server.Version}}' >/dev/null 2>&1; }

start_dockerd() {
    local sock=unix://$dockerd_dir/docker.sock
    for host in "${DOCKER_HOST:-}" unix:///var/run/docker.sock "$sock"; do
        if [ -n "$host" ] && engine_up "$host"; then
            log "using the Docker Engine at $host"
            echo "export DOCKER_HOST=$host" >>"$run/env"
            return 0
        fi
    done
    if [ "$(id -u)" != 0 ]; then
        log "no Docker Engine reachable and not root: start one and set DOCKER_HOST"
        return 1
    fi
    mkdir -p "$dockerd_dir/data" "$dockerd_dir/exec"
    log "starting dockerd ($sock, data in $dockerd_dir/data)"
    dockerd --storage-driver=overlay2 --iptables=false --ip6tables=false --bridge=none \
        --data-root "$dockerd_dir/data" --exec-root "$dockerd_dir/exec" \
        --host "$sock" --pidfile "$dockerd_dir/docker.pid" >"$run/dockerd.log" 2>&1 &
    echo $! >"$run/dockerd.started"
    for _ in $(seq 1 60); do
        if engine_up "$sock"; then
            echo "export DOCKER_HOST=$sock" >>"$run/env"
            return 0
        fi
        sleep 0.5
    done
    log "dockerd did not come up; its log:"
    tail -20 "$run/dockerd.log" >&2
    return 1
}

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# start_registry NAME [USER PASSWORD]: a registry on a free loopback port, storage and config under .run/
start_registry() {
    local name=$1 user=${2:-} password=${3:-} dir=$run/registry-$1 port auth=""
    port=$(free_port)
    rm -rf "$dir" && mkdir -p "$dir/data"
    if [ -n "$user" ]; then
        htpasswd -Bbn "$user" "$password" >"$dir/htpasswd"
        auth="auth:
  htpasswd:
    realm: edgebench-test
    path: $dir/htpasswd"
    fi
    cat >"$dir/config.yml" <<YAML
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $dir/data
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$port
$auth
YAML
    docker-registry serve "$dir/config.yml" >"$dir/log" 2>&1 &
    echo $! >"$run/registry-$name.started"
    for _ in $(seq 1 40); do
        if python3 -c "import urllib.request, sys
try: urllib.request.urlopen('http://127.0.0.1:$port/v2/', timeout=1)
except urllib.error.HTTPError as e: sys.exit(0 if e.code == 401 else 1)
except OSError: sys.exit(1)" 2>/dev/null; then
            echo "$port"
            return 0
        fi
        sleep 0.25
    done
    log "registry $name did not start; its log:"; tail -5 "$dir/log" >&2
    return 1
}

start_registries() {
    local open_port auth_port password
    password=$(python3 -c 'import secrets; print(secrets.token_urlsafe(18))')
    open_port=$(start_registry open)
    auth_port=$(start_registry auth edgebench-ci "$password")
    log "registries on 127.0.0.1:$open_port (open) and 127.0.0.1:$auth_port (htpasswd)"
    cat >>"$run/env" <<ENV
export EDGEBENCH_TEST_REGISTRY=127.0.0.1:$open_port
export EDGEBENCH_TEST_AUTH_REGISTRY=127.0.0.1:$auth_port
export EDGEBENCH_TEST_REGISTRY_USER=edgebench-ci
export EDGEBENCH_TEST_REGISTRY_PASSWORD=$password
ENV
}

stop_pidfile() {
    local file=$1 pid
    [ -f "$file" ] || return 0
    pid=$(cat "$file")
    rm -f "$file"
    kill "$pid" 2>/dev/null || return 0
    for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.25; done
    kill -9 "$pid" 2>/dev/null || true
}

case "${1:-}" in
    start)
        need_packages
        : >"$run/env"
        start_dockerd
        # shellcheck disable=SC1091
        . "$run/env"
        export DOCKER_HOST
        log "base images (cached; built from Debian packages with debootstrap the first time)"
        scripts/build-base-image.sh amd64 >&2
        scripts/build-base-image.sh arm64 >&2
        # pinned Debian 13 binaries (QEMU user mode, cosign, kustomize, quadlet), and arm64 emulation for the engine
        tools_bin=$(scripts/tools.sh install)
        echo "export PATH=$tools_bin:\$PATH" >>"$run/env"
        scripts/tools.sh register-arm64 || log "arm64 images will be built and inspected, not run"
        start_registries
        ;;
    stop)
        stop_pidfile "$run/registry-open.started"
        stop_pidfile "$run/registry-auth.started"
        stop_pidfile "$run/dockerd.started"
        ;;
    *)
        echo "usage: $0 start|stop" >&2
        exit 2
        ;;
esac
