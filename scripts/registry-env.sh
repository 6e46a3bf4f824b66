# Debian's docker-registry for the benchmarks and the containerd suite
# (sourced; needs $work, an array pids and bash's set -euo pipefail).
# Defines:
#   free_port                      a free TCP port on 127.0.0.1
#   registry_config FILE ADDR DATA a registry config: storage DATA, listening
#                                  on ADDR, access log on (blob bytes served)
#   reg_mark                       a position in the log $reg_log (default
#                                  $work/registry.log)
#   reg_blob_bytes MARK [REPO]     bytes of blob GETs (200/206) in $reg_log
#                                  since MARK (of REPO only, if given)
#   capped_registry_start RATE     one storage, two registries: one on
#                                  loopback for setup (sets reg_local), one in
#                                  the network namespace $capped_ns at
#                                  10.213.0.2:5000 whose egress is capped at
#                                  RATE with tc tbf (sets reg_remote; its log:
#                                  $work/registry-ns.log)
#   capped_registry_stop           its processes, namespace and link (cleanup)

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

registry_config() {
  cat >"$1" <<YML
version: 0.1
log:
  level: error
  accesslog:
    disabled: false
storage:
  filesystem:
    rootdirectory: $3
  delete:
    enabled: true
http:
  addr: $2
YML
}

reg_mark() { wc -l <"${reg_log:-$work/registry.log}"; }
reg_blob_bytes() {
  tail -n +"$(($1 + 1))" "${reg_log:-$work/registry.log}" |
    awk -v repo="${2:-}" '/"GET \/v2\/[^ ]*\/blobs\/sha256:/ {
      if (repo != "" && index($0, "/v2/" repo "/blobs/") == 0) next
      for (i = 1; i <= NF; i++) if ($i ~ /^HTTP\/1\.[01]"$/) { st = $(i+1); sz = $(i+2) }
      if (st == 200 || st == 206) n += sz } END { print n + 0 }'
}

# wait_registry URL...: up to 10 s for each to answer /v2/.
wait_registry() {
  local u
  for u in "$@"; do
    for _ in $(seq 100); do curl -fsS "http://$u/v2/" >/dev/null 2>&1 && break; sleep 0.1; done
    curl -fsS "http://$u/v2/" >/dev/null 2>&1 || { echo "registry at $u did not start" >&2; return 1; }
  done
}

capped_ns=ndkbench
capped_veth=veth-ndk
capped_registry_start() {
  local rate="$1" lport
  # A fixed address: one capped registry at a time on this machine.
  if ip netns list 2>/dev/null | grep -qw "$capped_ns"; then
    if [ -n "$(ip netns pids "$capped_ns" 2>/dev/null)" ]; then
      echo "network namespace $capped_ns is in use (another benchmark runs)" >&2
      return 1
    fi
    ip netns del "$capped_ns"
  fi
  ip link del "$capped_veth" 2>/dev/null || true
  lport="$(free_port)"
  reg_local="127.0.0.1:$lport"
  reg_remote="10.213.0.2:5000"
  registry_config "$work/registry-lo.yml" "$reg_local" "$work/registry-data"
  registry_config "$work/registry-ns.yml" "$reg_remote" "$work/registry-data"
  docker-registry serve "$work/registry-lo.yml" >"$work/registry-lo.log" 2>&1 &
  pids+=($!)
  ip netns add "$capped_ns"
  capped_up="$(stat -L -c %i "/run/netns/$capped_ns")" # ours, as long as this inode is there
  ip link add "$capped_veth" type veth peer name "$capped_veth-ns"
  ip link set "$capped_veth-ns" netns "$capped_ns"
  ip addr add 10.213.0.1/24 dev "$capped_veth" && ip link set "$capped_veth" up
  ip netns exec "$capped_ns" ip addr add 10.213.0.2/24 dev "$capped_veth-ns"
  ip netns exec "$capped_ns" ip link set "$capped_veth-ns" up
  ip netns exec "$capped_ns" ip link set lo up
  ip netns exec "$capped_ns" tc qdisc add dev "$capped_veth-ns" root tbf rate "$rate" burst 64kb latency 200ms
  # nsenter --net, not ip netns exec: the latter gives the registry a
  # private copy of every mount on the machine, which pins them (a FUSE
  # mount another program unmounts meanwhile stays alive in the copy, and
  # its daemon never sees the unmount) for as long as the registry runs.
  nsenter --net="/run/netns/$capped_ns" docker-registry serve "$work/registry-ns.yml" >"$work/registry-ns.log" 2>&1 &
  pids+=($!)
  wait_registry "$reg_local" "$reg_remote"
}
capped_registry_stop() {
  [ -n "${capped_up:-}" ] || return 0
  # Another script may have replaced the namespace (an older copy deletes
  # it at start): leave that one alone.
  if [ "$(stat -L -c %i "/run/netns/$capped_ns" 2>/dev/null)" = "$capped_up" ]; then
    ip netns pids "$capped_ns" 2>/dev/null | xargs -r kill 2>/dev/null
    ip link del "$capped_veth" 2>/dev/null
    ip netns del "$capped_ns" 2>/dev/null
  fi
  capped_up=""
  return 0
}
