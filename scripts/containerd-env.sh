# Shared setup of scripts/e2e-containerd.sh and scripts/bench-containerd.sh
# (sourced from the repository root; needs $work, a function fail and
# bash's set -euo pipefail): containerd v2.4.2, nydus-snapshotter v0.16.1,
# nerdctl and crictl built from the Go module proxy by
# e2e/containerd/tools.sh into $cache (default
# ~/.cache/gonydus-e2e/containerd, $CTRD_E2E_CACHE) and reused; our
# commands built into $bin when a source is newer.
# Defines: GO, bin, cache, tools, containerd_deps, containerd_tools,
# nydusd_pids, mounts_under, mount_type, stop_pid, start_snapshotter,
# stop_snapshotter, write_containerd_config, start_containerd; the
# snapshotter's and containerd's sockets ($snsock, $sysock, $csock) and
# state (snroot, sn_pid, sn_count, ctrd_pid).
GO="${GO:-go}"
bin="${BIN:-$PWD/bin}"
cache="${CTRD_E2E_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/gonydus-e2e/containerd}"
tools="$cache/bin"
csock="$work/c.sock"
snsock="$work/sn.sock"
sysock="$work/sys.sock"
snroot=""
sn_pid=""
sn_count=0
ctrd_pid=""
overlayfs_name="${overlayfs_name:-nydus-overlayfs}"

# containerd_deps: apt-get install what is missing of runc, the CNI
# plugins, mount.fuse3, docker-registry and busybox.
containerd_deps() {
  local need_pkgs=()
  command -v runc >/dev/null || need_pkgs+=(runc)
  [ -x /usr/lib/cni/bridge ] || need_pkgs+=(containernetworking-plugins)
  [ -x /sbin/mount.fuse3 ] || need_pkgs+=(fuse3)
  command -v docker-registry >/dev/null || need_pkgs+=(docker-registry)
  command -v busybox >/dev/null || need_pkgs+=(busybox-static)
  [ ${#need_pkgs[@]} -gt 0 ] || return 0
  echo "installing ${need_pkgs[*]}"
  timeout 300 apt-get install -y -qq "${need_pkgs[@]}" >/dev/null || {
    timeout 300 apt-get update -qq && timeout 300 apt-get install -y -qq "${need_pkgs[@]}" >/dev/null; }
}

# containerd_tools: the outside tools (cached) and our commands.
containerd_tools() {
  local t_build=$SECONDS c
  GO="$GO" bash e2e/containerd/tools.sh "$cache"
  for c in nydusd nydus-image nydusify nydus-overlayfs; do
    if stale "$bin/$c"; then
      echo "building our commands into $bin"
      mkdir -p "$bin"
      CGO_ENABLED=0 "$GO" build -trimpath -o "$bin/" ./cmd/nydusd ./cmd/nydus-image ./cmd/nydusify ./cmd/nydus-overlayfs
      break
    fi
  done
  echo "tools ready in $((SECONDS - t_build)) s"
}
stale() { # stale BINARY: missing, or older than a source of the main module
  [ -x "$1" ] || return 0
  [ -n "$(find . -path ./e2e -prune -o \( -name '*.go' -o -name go.mod -o -name go.sum \) -newer "$1" -print -quit)" ]
}

# Our nydusd processes (by executable), one pid a line.
nydusd_pids() { # live ones: an exited, not yet reaped nydusd (state Z) is gone
  local p
  for p in /proc/[0-9]*; do
    [ "$(readlink "$p/exe" 2>/dev/null)" = "$bin/nydusd" ] || continue
    [ "$(awk '{print $3}' "$p/stat" 2>/dev/null)" = Z ] && continue
    echo "${p#/proc/}"
  done
  return 0
}
# mounts_under DIR: "MOUNTPOINT FSTYPE SUPEROPTIONS" of each mount under DIR.
mounts_under() {
  awk -v d="$1" 'index($5, d) == 1 { for (i = 7; $i != "-"; i++); print $5, $(i+1), $(i+3) }' /proc/self/mountinfo
}
mount_type() { mounts_under "$1" | awk -v d="$1" '$1 == d {print $2}'; }

stop_pid() { # stop_pid PID [SIGNAL]: signal and wait (bounded)
  local pid="$1" sig="${2:-TERM}"
  [ -n "$pid" ] || return 0
  kill -"$sig" "$pid" 2>/dev/null || true
  for _ in $(seq 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

# start_snapshotter MODE OVERLAYFS(true|false) RECOVER [ROOT]: the
# snapshotter with nydusd config $nydusd_json, metrics on
# 127.0.0.1:$metrics_port, a fresh root (and log) under $work unless ROOT
# is given.
start_snapshotter() {
  sn_count=$((sn_count + 1))
  snroot="${4:-$work/sn$sn_count-$1}"
  mkdir -p "$snroot"
  cat >"$work/sn.toml" <<TOML
version = 1
root = "$snroot"
address = "$snsock"
daemon_mode = "$1"
cleanup_on_close = false
[system]
enable = true
address = "$sysock"
[daemon]
nydusd_config = "$nydusd_json"
nydusd_path = "$bin/nydusd"
nydusimage_path = "$bin/nydus-image"
fs_driver = "fusedev"
recover_policy = "$3"
threads_number = 4
log_rotation_size = 1
failover_policy = "resend"
[cgroup]
enable = false
[log]
log_to_stdout = false
level = "info"
log_rotation_max_size = 100
[metrics]
address = "127.0.0.1:$metrics_port"
hung_io_interval = "10s"
collect_interval = "5s"
[snapshot]
enable_nydus_overlayfs = $2
nydus_overlayfs_path = "$overlayfs_name"
sync_remove = true
[cache_manager]
disable = false
gc_period = "24h"
TOML
  rm -f "$snsock"
  "$tools/containerd-nydus-grpc" --config "$work/sn.toml" >>"$work/sn.out" 2>&1 &
  sn_pid=$!
  for _ in $(seq 100); do [ -S "$snsock" ] && break; sleep 0.1; done
  [ -S "$snsock" ] || fail "the snapshotter did not start"
  ln -sfn "$snroot/logs/nydus-snapshotter.log" "$work/sn.log"
}
stop_snapshotter() { stop_pid "$sn_pid" "${1:-INT}"; sn_pid=""; }

# write_containerd_config [ROOT STATE]: $work/containerd.toml with the
# snapshotter as the proxy plugin "nydus"; callers append their own
# sections.
write_containerd_config() {
  cat >"$work/containerd.toml" <<TOML
version = 3
root = "${1:-$work/c-root}"
state = "${2:-$work/c-state}"
[grpc]
  address = "$csock"
[ttrpc]
  address = "$csock.ttrpc"
[debug]
  address = "$work/c-debug.sock"
  level = "info"
[proxy_plugins.nydus]
  type = "snapshot"
  address = "$snsock"
TOML
}

start_containerd() {
  # /bin/sh's default PATH plus the tools: nydus-overlayfs must come from
  # a default PATH directory, as on a host with systemd units.
  PATH="$tools:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
    "$tools/containerd" --config "$work/containerd.toml" >>"$work/containerd.log" 2>&1 &
  ctrd_pid=$!
  for _ in $(seq 200); do timeout 60 "$tools/ctr" -a "$csock" version >/dev/null 2>&1 && break; sleep 0.1; done
  timeout 60 "$tools/ctr" -a "$csock" version >/dev/null 2>&1 || fail "containerd did not start"
}
