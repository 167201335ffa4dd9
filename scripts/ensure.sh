#!/usr/bin/env bash
# Installs or starts what nbpool needs when it is missing, showing progress; or says in one line
# what the user must do. Usage: scripts/ensure.sh [deps] [docker] [redis] [chromium] [bench-tools] [images] [jupyter] [shiny]
#   [compose] [node-image] [redis-image]
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf 'setup: %s\n' "$*" >&2; }
die() { printf 'setup: %s\n' "$*" >&2; exit 1; }

apt_updated=0
apt_install() {
  # $@: Debian packages. Only root on a Debian-like machine can install; others get one clear line.
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    die "missing $*; install it (Debian: sudo apt-get install $*) and run again"
  fi
  if [ "$apt_updated" = 0 ]; then
    say "apt-get update ..."
    apt-get update -qq >/dev/null || die "apt-get update failed"
    apt_updated=1
  fi
  say "installing $* (Debian packages) ..."
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null \
    || die "apt-get install $* failed"
}

ensure_deps() {
  # A linked node_modules belongs to another checkout (a worktree for a before/after bench): npm ci
  # here would empty that one, so it is left as it is.
  if [ -L node_modules ]; then
    say "node_modules is a link to another checkout's; not reinstalling"
  elif [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    say "installing npm dependencies (npm ci) ..."
    npm ci --no-audit --no-fund --loglevel=error >&2
  fi
  if [ ! -f dist/cli/nbpool.js ] || [ -n "$(find cli proxy orchestrator redirector shared -name '*.ts' -newer dist/cli/nbpool.js 2>/dev/null | head -n1)" ]; then
    say "building (tsc) ..."
    npm run -s build >&2
  fi
}

ensure_docker() {
  if docker info >/dev/null 2>&1; then return; fi
  if [ -n "${DOCKER_HOST:-}" ]; then die "no Docker engine answers at DOCKER_HOST=$DOCKER_HOST; start it or unset DOCKER_HOST"; fi
  if ! command -v dockerd >/dev/null; then apt_install docker.io iptables; fi
  command -v docker >/dev/null || die "docker client missing after install"
  if docker info >/dev/null 2>&1; then return; fi
  [ "$(id -u)" = 0 ] || die "the Docker engine is not running; start it (sudo systemctl start docker) and run again"
  say "starting dockerd (log: /var/log/nbpool-dockerd.log) ..."
  nohup dockerd >/var/log/nbpool-dockerd.log 2>&1 &
  for _ in $(seq 1 60); do
    if docker info >/dev/null 2>&1; then say "dockerd is up"; return; fi
    sleep 1
  done
  die "dockerd did not start within 60 s; see /var/log/nbpool-dockerd.log"
}

ensure_redis() { command -v redis-server >/dev/null || apt_install redis-server; }
ensure_chromium() { [ -x /usr/bin/chromium ] || apt_install chromium; }
ensure_compose() { command -v docker-compose >/dev/null || apt_install docker-compose; }
ensure_bench_tools() {
  local missing=()
  command -v wrk >/dev/null || missing+=(wrk)
  command -v nginx >/dev/null || missing+=(nginx-light)
  [ ${#missing[@]} = 0 ] || apt_install "${missing[@]}"
}

for what in "$@"; do
  case "$what" in
    deps) ensure_deps ;;
    docker) ensure_docker ;;
    redis) ensure_redis ;;
    chromium) ensure_chromium ;;
    bench-tools) ensure_bench_tools ;;
    images) bash test/images/build.sh tiny ;;
    jupyter) bash test/images/build.sh jupyter ;;
    shiny) bash test/images/build.sh shiny ;;
    compose) ensure_compose ;;
    node-image) bash deploy/build-node-image.sh >/dev/null ;;
    redis-image) bash deploy/build-redis-image.sh >/dev/null ;;
    *) die "unknown item $what" ;;
  esac
done
