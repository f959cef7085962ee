#!/usr/bin/env bash
# Makes this host ready to run mynet: installs Docker (docker.io) and
# iptables from Debian's packages when they are missing, plus any packages
# named as arguments, and starts dockerd when it is not running (through
# systemd where systemd runs, otherwise in the background with its log in
# $DOCKERD_LOG). Runs as root; safe to run again: every step checks first.
# Used by `make run` and, with the test tools added, by `make test`.
# --no-docker (first): only the packages named, neither Docker nor dockerd
# (make lint's shellcheck).
set -euo pipefail
docker=yes
if [ "${1:-}" = --no-docker ]; then docker=no; shift; fi

DOCKER=/usr/bin/docker   # the engine's own client, not a newer one elsewhere on PATH
DOCKERD_LOG=${DOCKERD_LOG:-/var/log/mynet-test-dockerd.log}
log() { echo "host-deps: $*" >&2; }

if [ "$(id -u)" != 0 ]; then
  log "run me as root (for example: sudo make run)"; exit 1
fi

need=()
if [ $docker = yes ]; then
  { command -v dockerd >/dev/null 2>&1 && [ -x "$DOCKER" ]; } || need+=(docker.io)
  { command -v iptables >/dev/null 2>&1 && command -v iptables-save >/dev/null 2>&1; } || need+=(iptables)
fi
for pkg in "$@"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  log "installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # Wait for another apt (make test builds Engine 29 beside this step,
  # which may install its own package) rather than fail on its lock.
  apt-get -o DPkg::Lock::Timeout=300 update -qq
  apt-get -o DPkg::Lock::Timeout=300 install -y -qq "${need[@]}" >/dev/null
fi

[ $docker = yes ] || exit 0
if ! "$DOCKER" info >/dev/null 2>&1; then
  if [ -d /run/systemd/system ] && systemctl list-unit-files docker.service >/dev/null 2>&1; then
    log "starting docker.service"
    systemctl start docker.service
  else
    log "starting dockerd (log: $DOCKERD_LOG)"
    # setsid: dockerd must outlive this script and not share its process group.
    setsid dockerd >"$DOCKERD_LOG" 2>&1 < /dev/null &
  fi
  for _ in $(seq 1 60); do
    "$DOCKER" info >/dev/null 2>&1 && break
    sleep 0.5
  done
  if ! "$DOCKER" info >/dev/null 2>&1; then
    log "dockerd did not come up; last lines of its log:"
    tail -n 30 "$DOCKERD_LOG" >&2 2>/dev/null || journalctl -u docker.service -n 30 >&2 || true
    exit 1
  fi
fi
log "ready: Docker $("$DOCKER" version --format '{{.Server.Version}}')"
