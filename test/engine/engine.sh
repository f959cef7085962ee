#!/usr/bin/env bash
# Docker Engine 29 for mynet's tests, beside (never instead of) the host's
# own dockerd.
#
#   engine.sh build              build the binaries once, cached by version
#   engine.sh start [ARGS...]    start dockerd ARGS in the engine's namespace
#   engine.sh restart            stop it and start it again with the same ARGS
#   engine.sh run CMD [ARGS...]  run CMD in the engine's namespace, with
#                                DOCKER_HOST and the MYNET_E2E_* settings
#   engine.sh join CMD [ARGS...] run CMD in dockerd's own network and mount
#                                namespaces (where its containers' network
#                                namespaces are mounted), with DOCKER_HOST
#   engine.sh stop               stop it and remove all it made
#
# Build: dockerd and docker-proxy from github.com/moby/moby/v2 (the Engine
# with API 1.56), containerd and its runc shim from containerd/v2, runc from
# opencontainers/runc with seccomp (Debian's runc 1.1 fails under Engine 29:
# "namespace time does not exist"). Nothing but the Go module proxy and
# Debian's libseccomp-dev is needed. The binaries go to $ENGINE_CACHE, keyed
# by the three versions, so a second run costs nothing.
#
# Run: the engine lives in its own network namespace ($NS), with its own data
# root, exec root, socket, pidfile and log, so it never mixes with the host's
# dockerd: its bridges, iptables or nftables rules and FORWARD policy are in
# that namespace only, and the host looks the same after `stop`. Its mount
# namespace has a sysfs of its own network namespace and the host's cgroups.
# dockerd starts and supervises its own containerd. Tests run in the same
# namespace (`run`), where loopback, the bridges and the containers are the
# engine's.
set -euo pipefail

MOBY_VERSION=v2.0.0-beta.24
CONTAINERD_VERSION=v2.3.5
RUNC_VERSION=v1.3.3
ENGINE_VERSION=29.0.0-moby.${MOBY_VERSION#v}
ENGINE_CACHE=${ENGINE_CACHE:-/var/cache/mynet-engines}
BIN=$ENGINE_CACHE/engine29-moby-$MOBY_VERSION-containerd-$CONTAINERD_VERSION-runc-$RUNC_VERSION
# Every engine has a plugin directory of its own (/run/docker/plugins in
# its mount namespaces is $RUN/plugins), so each dockerd finds only its own
# mynet, and a mynet run beside it (make test runs the Engine 29 passes
# beside the host engine's) never takes the host's socket. ENGINE_ID makes
# one of several engines, each a host of a cluster (the two-host tests,
# test/e2e/twohosts): its own names. ENGINE_NS runs it in a network
# namespace the caller made (and deletes).
NAME=engine29${ENGINE_ID:+-$ENGINE_ID}
# ENGINE_DEBIAN=1 runs Debian's dockerd instead (the docker.io package,
# 20.10, which make test installs; its containerd and runc from /usr/bin):
# an engine older than 29, for a cluster that mixes engines. Nothing to
# build.
if [ -n "${ENGINE_DEBIAN:-}" ]; then
  BIN=/usr/sbin
  ENGINE_VERSION=$("$BIN/dockerd" --version | sed -n 's/^Docker version \([^,]*\),.*/\1/p')
  NAME=engine20${ENGINE_ID:+-$ENGINE_ID}
fi
NS=${ENGINE_NS:-mynet-e2e-$NAME}
RUN=/run/mynet-e2e-$NAME
DATA=/var/lib/mynet-e2e-$NAME
LOG=/var/log/mynet-e2e-$NAME.log
SOCK=$RUN/docker.sock
PIDFILE=$RUN/docker.pid
DOCKER=/usr/bin/docker
GO=${GO:-$(command -v go || echo /usr/local/go/bin/go)}
HERE=$(cd "$(dirname "$0")" && pwd)

log() { echo "engine: $*" >&2; }

have_build() {
  [ -z "${ENGINE_DEBIAN:-}" ] || { [ -x "$BIN/dockerd" ] && return; log "no $BIN/dockerd: apt-get install docker.io"; exit 1; }
  [ -x "$BIN/dockerd" ] && [ -x "$BIN/runc" ] && [ -x "$BIN/containerd" ] &&
    [ -x "$BIN/containerd-shim-runc-v2" ] && [ -x "$BIN/docker-proxy" ]
}

# build builds once: a second caller (make test builds in the background
# while other steps run) waits on the lock and finds the binaries there.
# The lock's descriptor is closed before anything is started from here, so
# no daemon keeps it.
build() {
  have_build && return
  mkdir -p "$ENGINE_CACHE"
  exec 9>"$ENGINE_CACHE/.lock"
  if ! flock -n 9; then
    log "waiting for the Engine 29 build under way"
    flock 9
  fi
  have_build || build_into_cache
  exec 9>&-
}

# build_into_cache is a subshell, not a function body in braces: its
# temporary directory and the EXIT trap that removes it end with it. (A
# RETURN trap set in a function is not local to it in bash: it fired again
# each time a later function returned, after `local tmp` was gone, and
# killed the script under set -u.)
build_into_cache() (
  dpkg-query -W -f='${Status}' libseccomp-dev 2>/dev/null | grep -q 'install ok installed' || {
    log "installing libseccomp-dev (runc's seccomp)"
    # Waits for another apt (make test's deps step runs beside this build).
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq libseccomp-dev >/dev/null ||
      { apt-get -o DPkg::Lock::Timeout=300 update -qq &&
        DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq libseccomp-dev >/dev/null; }
  }
  start=$SECONDS
  mkdir -p "$ENGINE_CACHE"
  tmp=$(mktemp -d "$ENGINE_CACHE/.build-XXXXXX")
  trap 'chmod -R u+w "$tmp" 2>/dev/null; rm -rf "$tmp"' EXIT
  log "building Engine 29 into $BIN (about 5 minutes on 2 cores)"
  GOBIN=$tmp/bin CGO_ENABLED=0 "$GO" install -trimpath \
    -ldflags "-X github.com/moby/moby/v2/dockerversion.Version=$ENGINE_VERSION" \
    "github.com/moby/moby/v2/cmd/dockerd@$MOBY_VERSION" "github.com/moby/moby/v2/cmd/docker-proxy@$MOBY_VERSION"
  GOBIN=$tmp/bin CGO_ENABLED=0 "$GO" install -trimpath \
    -ldflags "-X github.com/containerd/containerd/v2/version.Version=$CONTAINERD_VERSION" \
    "github.com/containerd/containerd/v2/cmd/containerd@$CONTAINERD_VERSION" \
    "github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2@$CONTAINERD_VERSION"
  # runc's go.mod replaces opencontainers/selinux by a copy in its tree
  # that the module zip leaves out, so go install refuses it: build its
  # source as the main module, with that replacement dropped.
  src=$("$GO" mod download -json "github.com/opencontainers/runc@$RUNC_VERSION" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
  cp -r "$src" "$tmp/runc" && chmod -R u+w "$tmp/runc"
  (cd "$tmp/runc" && "$GO" mod edit -dropreplace github.com/opencontainers/selinux &&
    CGO_ENABLED=1 "$GO" build -mod=mod -trimpath -tags seccomp -ldflags "-X main.version=${RUNC_VERSION#v}" -o "$tmp/bin/runc" .)
  rm -rf "$BIN" && mv "$tmp/bin" "$BIN"
  have_build || { log "the build left no complete set of binaries in $BIN"; exit 1; }
  log "built in $((SECONDS - start)) s: $(cd "$BIN" && echo *)"
)

running() { [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; }

# inns runs a command in the engine's network namespace, in a mount
# namespace of its own whose /sys belongs to that network namespace. It
# execs (each step does), so the command has the caller's process ID: a
# signal to the caller's process reaches it. Call it last.
#
# The namespace receives the host's mounts (slave) and shares its own
# within itself (rshared), as a systemd host's /, and $RUN (where dockerd's
# exec root is) is a mount of its own, as /run, a tmpfs, is on such a
# host: a managed plugin's rslave bind of dockerd's exec root then
# receives the containers' sandboxes dockerd mounts after the plugin
# started. (runc makes the mount that holds a container's root private in
# the container; an exec root on that same mount, the plugin's root being
# a directory under the data root, would receive nothing.) Nothing goes
# back to the host.
inns() {
  local plugins=$RUN/plugins
  # shellcheck disable=SC2016 # the script's $cg and $@ are the inner bash's
  MYNET_ENGINE_PLUGINS=$plugins MYNET_ENGINE_RUN=$RUN exec nsenter --net="/run/netns/$NS" unshare --mount --propagation slave -- bash -c '
    set -e
    mount --bind "$MYNET_ENGINE_RUN" "$MYNET_ENGINE_RUN"
    cg=$(mktemp -d)
    mount --rbind /sys/fs/cgroup "$cg"
    umount -l /sys
    mount -t sysfs sysfs /sys
    mount --rbind "$cg" /sys/fs/cgroup
    umount -l "$cg" && rmdir "$cg"
    if [ -n "$MYNET_ENGINE_PLUGINS" ]; then
      mkdir -p /run/docker/plugins
      mount --bind "$MYNET_ENGINE_PLUGINS" /run/docker/plugins
    fi
    unset MYNET_ENGINE_PLUGINS MYNET_ENGINE_RUN
    mount --make-rshared /
    exec "$@"' inns "$@"
}

start_dockerd() {
  # The FORWARD policy and the bridges dockerd makes are the namespace's.
  mkdir -p "$RUN" "$DATA"
  mkdir -p "$RUN/plugins"
  echo "$BIN" >"$RUN/bin"
  : >"$RUN/args"
  [ $# -eq 0 ] || printf '%s\n' "$@" >"$RUN/args"
  log "starting Engine $ENGINE_VERSION in netns $NS ${*:+with $*} (log: $LOG)"
  setsid bash -c "$(declare -f inns); NS=$NS; RUN=$RUN; ENGINE_ID=${ENGINE_ID:-}; PATH=$BIN:\$PATH; export PATH; inns dockerd \
    --data-root $DATA --exec-root $RUN/exec --pidfile $PIDFILE -H unix://$SOCK \"\$@\"" dockerd "$@" \
    >>"$LOG" 2>&1 </dev/null &
  for _ in $(seq 1 120); do
    DOCKER_HOST=unix://$SOCK "$DOCKER" info >/dev/null 2>&1 && return
    sleep 0.5
  done
  log "dockerd did not come up; last lines of its log:"
  tail -n 30 "$LOG" >&2
  return 1
}

stop_dockerd() {
  running || return 0
  local pid
  pid=$(cat "$PIDFILE")
  kill "$pid"
  for _ in $(seq 1 120); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.25
  done
  log "dockerd $pid did not stop within 30 s"
  return 1
}

start() {
  build
  if running; then
    log "already running (pid $(cat "$PIDFILE")); stop it first"
    return 1
  fi
  [ -e "/run/netns/$NS" ] || ip netns add "$NS"
  ip -n "$NS" link set lo up
  case " $* " in
    *" --firewall-backend=nftables "*)
      # With nftables dockerd leaves forwarding to the host (and refuses
      # IPv6 networks without it), as the host's firewall owner would.
      ip netns exec "$NS" sh -c 'echo 1 >/proc/sys/net/ipv4/ip_forward &&
        echo 1 >/proc/sys/net/ipv6/conf/all/forwarding && echo 1 >/proc/sys/net/ipv6/conf/default/forwarding' ;;
  esac
  : >"$LOG"
  start_dockerd "$@"
  # The tests' busybox image, in this engine too.
  DOCKER_HOST=unix://$SOCK MYNET_E2E_SKIP_HOST_DEPS=1 bash "$HERE/../e2e/setup.sh"
}

restart() {
  local args=()
  local a
  # The binaries it was started from, even if that was another cache.
  [ ! -f "$RUN/bin" ] || BIN=$(cat "$RUN/bin")
  if [ -f "$RUN/args" ]; then
    while IFS= read -r a; do [ -z "$a" ] || args+=("$a"); done <"$RUN/args"
  fi
  stop_dockerd
  start_dockerd ${args[@]+"${args[@]}"}
}

stop() {
  stop_dockerd
  # What dockerd left in its namespace goes with it (a caller's namespace
  # is the caller's to delete).
  [ -n "${ENGINE_NS:-}" ] || [ ! -e "/run/netns/$NS" ] || ip netns del "$NS"
  rm -rf "$RUN" "$DATA"
}

run() {
  running || { log "not running (engine.sh start)"; return 1; }
  DOCKER_HOST=unix://$SOCK \
    MYNET_E2E_ENGINE="Engine $ENGINE_VERSION $(tr '\n' ' ' <"$RUN/args")" \
    MYNET_E2E_DOCKERD_LOG=$LOG \
    MYNET_E2E_RESTART_DOCKERD="bash $HERE/engine.sh restart" \
    inns "$@"
}

# join runs a command where dockerd runs: a mynet there opens the
# containers' sandboxes by the paths Docker gives (Join's SandboxKey). A
# restarted dockerd has a mount namespace of its own: join again.
join() {
  running || { log "not running (engine.sh start)"; return 1; }
  DOCKER_HOST=unix://$SOCK exec nsenter --target "$(cat "$PIDFILE")" --mount --net -- "$@"
}

case ${1:-} in
  build) build; echo "$BIN" ;;
  start) shift; start "$@" ;;
  restart) restart ;;
  run) shift; run "$@" ;;
  join) shift; join "$@" ;;
  stop) stop ;;
  *) echo "usage: $0 build | start [DOCKERD-ARGS...] | restart | run CMD... | join CMD... | stop" >&2; exit 2 ;;
esac
