#!/usr/bin/env bash
# Docker pull-to-entrypoint benchmark (part of `make bench`): an image of
# SIZE_MB (default 512) MiB whose entrypoint reads one small file, served
# by Debian's docker-registry from a network namespace whose egress is
# capped at RATE (default 100mbit) with tc tbf. It times `docker pull` +
# `docker run` to the entrypoint's output twice in the same run:
#   baseline: dockerd with the built-in overlay2 driver, the ordinary image;
#   nydus:    dockerd with our graphdriver plugin, the docker-runnable image
#             made by nydusify from the same image, in kernel and in
#             userspace container-layer mode (a data root each);
# and prints the ratio (baseline time / nydus time; target >= 5).
# Then it times an untar of Go's source tree ($GOROOT/src) into a
# container's root (the writes go to the container layer) under overlay2,
# fuse-overlayfs (dockerd's built-in driver, when fuse-overlayfs is
# installed) and the plugin in kernel and userspace container-layer mode,
# and prints userspace / fuse-overlayfs (target <= 1).
# SKIP_PULL=1 runs only the untar part; UNTAR_ROUNDS (default 3) rounds of
# it, each driver once per round, and the ratio of the median times. NYDUS_PLUGIN_NAME (default nydus)
# names the plugin: its socket /run/docker/plugins/$NYDUS_PLUGIN_NAME.sock,
# dockerd's --storage-driver and the driver's home under the data root, so
# the bench can run beside another dockerd using a plugin named nydus.
set -euo pipefail
cd "$(dirname "$0")/.."
bin="${BIN:-$PWD/bin}"
size_mb="${SIZE_MB:-512}"
rate="${RATE:-100mbit}"
rounds="${UNTAR_ROUNDS:-3}"
plugin="${NYDUS_PLUGIN_NAME:-nydus}"
sock_path="/run/docker/plugins/$plugin.sock"

if [ "$(id -u)" != 0 ] || [ ! -e /dev/fuse ]; then echo "bench-docker needs root and /dev/fuse; skipping"; exit 0; fi
for c in dockerd docker docker-registry busybox ip tc; do
  command -v "$c" >/dev/null || { echo "bench-docker: $c is not installed; skipping"; exit 0; }
done
[ -S "$sock_path" ] && { echo "bench-docker: $sock_path exists (another plugin named $plugin runs; set NYDUS_PLUGIN_NAME); skipping"; exit 0; }

. scripts/registry-env.sh
work="$(mktemp -d /tmp/ndb.XXXXXX)"
pids=()
dpid=""
cleanup() {
  set +e
  [ -n "$dpid" ] && { kill -TERM "$dpid"; for _ in $(seq 100); do kill -0 "$dpid" 2>/dev/null || break; sleep 0.1; done; }
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  pkill -f -- "--mountpoint $work/" 2>/dev/null
  grep -o " $work[^ ]*" /proc/self/mountinfo | sort -r | while read -r m; do umount -l "$m" 2>/dev/null; done
  capped_registry_stop
  rm -rf "$work"
}
trap cleanup EXIT
D() { timeout 600 docker -H "unix://$work/docker.sock" "$@"; }

capped_registry_start "$rate"
lport="${reg_local#*:}"
remote="$reg_remote"

start_dockerd() { # driver [data root name]
  dockerd --experimental --storage-driver "$1" --data-root "$work/root-${2:-$1}" --exec-root "$work/exec-$1" \
    -H "unix://$work/docker.sock" --pidfile "$work/docker-$1.pid" --iptables=false --bridge=none \
    --insecure-registry "$remote" --insecure-registry "127.0.0.1:$lport" >"$work/dockerd-$1.log" 2>&1 &
  dpid=$!
  for _ in $(seq 300); do D info >/dev/null 2>&1 && return 0; sleep 0.1; done
  echo "bench-docker: dockerd ($1) did not start"; tail "$work/dockerd-$1.log"; exit 1
}
stop_dockerd() { kill -TERM "$dpid"; for _ in $(seq 200); do kill -0 "$dpid" 2>/dev/null || break; sleep 0.1; done; dpid=""; }

if [ "${SKIP_PULL:-0}" != 1 ]; then
echo "== building a ${size_mb} MiB image (random data; the entrypoint reads /etc/greeting)"
rootfs="$work/rootfs"
mkdir -p "$rootfs"/{bin,etc,proc,sys,dev,tmp,data}
cp "$(command -v busybox)" "$rootfs/bin/"
for c in sh cat; do ln -s busybox "$rootfs/bin/$c"; done
echo "entrypoint ran" >"$rootfs/etc/greeting"
for i in $(seq "$((size_mb / 32))"); do head -c 32M /dev/urandom >"$rootfs/data/part$i"; done
tar --numeric-owner -C "$rootfs" -cf "$work/rootfs.tar" .
start_dockerd overlay2
D import -c 'ENTRYPOINT ["cat", "/etc/greeting"]' "$work/rootfs.tar" "127.0.0.1:$lport/big:plain" >/dev/null
D push "127.0.0.1:$lport/big:plain" >/dev/null
D rmi "127.0.0.1:$lport/big:plain" >/dev/null
"$bin/nydusify" convert --log-level warn --source "127.0.0.1:$lport/big:plain" --target "$remote/big:nydus" \
  --source-insecure --target-insecure --docker-runnable --work-dir "$work" >/dev/null

pull_run() { # image -> seconds from pull to the entrypoint's output
  local t0 out
  t0="$(date +%s.%N)"
  D pull -q "$1" >/dev/null
  out="$(D run --rm --network none "$1")"
  [ "$out" = "entrypoint ran" ] || { echo "bench-docker: entrypoint printed '$out'"; exit 1; }
  python3 -c "import time; print(f'{time.time() - $t0:.2f}')"
}

echo "== baseline: overlay2, ordinary image, registry capped at $rate"
base="$(pull_run "$remote/big:plain")"
stop_dockerd
echo "overlay2: ${base}s from docker pull to the entrypoint's output"

nydusd_base='{"device":{"backend":{"type":"registry","config":{"timeout":30}}},"mode":"direct","digest_validate":true}'
declare -A nyd fetched # container-layer mode -> seconds, bytes nydusd fetched
for mode in kernel userspace; do
  echo "== nydus: graphdriver plugin ($mode container layer), docker-runnable image, same cap, a data root of its own"
  echo "$nydusd_base" >"$work/nydusd-base.json"
  rm -f "$sock_path"
  "$bin/docker-nydus-graphdriver" --socket "$sock_path" --nydusd "$bin/nydusd" --state-file "$work/plugin-state-pull-$mode.json" --runtime-dir "$work/run" \
    --nydusd-config "$work/nydusd-base.json" --insecure-registry "$remote" --container-layer "$mode" >>"$work/plugin.log" 2>&1 &
  ppid=$!
  pids+=("$ppid")
  for _ in $(seq 100); do [ -S "$sock_path" ] && break; sleep 0.05; done
  start_dockerd "$plugin" "$plugin-pull-$mode"
  nyd[$mode]="$(pull_run "$remote/big:nydus")"
  api="$(readlink -f "$(ls "$work"/root-$plugin-pull-$mode/$plugin/*/nydus/api.sock | head -1)")"
  curl -sS --unix-socket "$api" http://unix/api/v1/metrics/backend >"$work/backend-metrics.json" || { echo "bench-docker: nydusd API at $api: no answer"; ls -l "$api"; exit 1; }
  fetched[$mode]="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["read_amount_total"])' "$work/backend-metrics.json")"
  D ps -aq | xargs -r timeout 60 docker -H "unix://$work/docker.sock" rm -f >/dev/null
  D rmi -f "$remote/big:nydus" >/dev/null
  echo "nydus ($mode container layer): ${nyd[$mode]}s from docker pull to the entrypoint's output; nydusd fetched ${fetched[$mode]} bytes of data"

  if [ "$mode" = kernel ]; then
    echo "== zran: the same image as OCI-ref (its gzip layer used as is), bytes fetched to start the entrypoint"
    "$bin/nydusify" convert --log-level warn --source "127.0.0.1:$lport/big:plain" --target "127.0.0.1:$lport/big:zran" \
      --source-insecure --target-insecure --oci-ref --docker-runnable --work-dir "$work" >/dev/null
    D pull -q "127.0.0.1:$lport/big:zran" >/dev/null
    [ "$(D run --rm --network none "127.0.0.1:$lport/big:zran")" = "entrypoint ran" ] || { echo "bench-docker: zran entrypoint failed"; exit 1; }
    zboot="$(D image inspect --format '{{.GraphDriver.Data.NydusBootstrap}}' "127.0.0.1:$lport/big:zran")"
    zfetched="$(curl -sS --unix-socket "$(readlink -f "$(dirname "$zboot")/api.sock")" http://unix/api/v1/metrics/backend | python3 -c 'import json,sys; print(json.load(sys.stdin)["read_amount_total"])')"
    zlayer="$(curl -fsS -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' "http://127.0.0.1:$lport/v2/big/manifests/plain" | python3 -c 'import json,sys; print(sum(l["size"] for l in json.load(sys.stdin)["layers"]))')"
    D rmi -f "127.0.0.1:$lport/big:zran" >/dev/null
    python3 -c "print(f'zran: starting the entrypoint fetched {$zfetched} bytes (its index and the inflate contexts read) of a {$zlayer}-byte gzip layer: {100*$zfetched/$zlayer:.2f}%')"
  fi
  stop_dockerd
  kill -TERM "$ppid" 2>/dev/null; wait "$ppid" 2>/dev/null || true
done
python3 -c "print(f'pull-to-entrypoint, {$size_mb} MiB image at $rate: overlay2 {$base}s, nydus plugin kernel {${nyd[kernel]}}s ({$base/${nyd[kernel]}:.1f}x faster), userspace {${nyd[userspace]}}s ({$base/${nyd[userspace]}:.1f}x faster) (target >= 5x)')"
fi

# ---- untar of Go's source tree in a container, per container layer
plugin_pid=""
stop_plugin() { [ -n "$plugin_pid" ] || return 0; kill -TERM "$plugin_pid"; wait "$plugin_pid" 2>/dev/null || true; plugin_pid=""; }
start_plugin() { # container-layer mode [state tag]
  echo '{"device":{"backend":{"type":"registry","config":{"timeout":30}}},"mode":"direct","digest_validate":true}' >"$work/nydusd-base.json"
  rm -f "$sock_path"
  "$bin/docker-nydus-graphdriver" --socket "$sock_path" --nydusd "$bin/nydusd" --state-file "$work/plugin-state-${2:-$1}.json" --runtime-dir "$work/run" \
    --nydusd-config "$work/nydusd-base.json" --container-layer "$1" >>"$work/plugin.log" 2>&1 &
  plugin_pid=$!
  for _ in $(seq 100); do [ -S "$sock_path" ] && return 0; sleep 0.05; done
  echo "bench-docker: plugin socket did not appear"; exit 1
}
goroot="$(go env GOROOT 2>/dev/null || true)"
if [ -z "$goroot" ] || [ ! -d "$goroot/src" ]; then echo "bench-docker: no Go source tree; untar part skipped"; exit 0; fi
tar -C "$goroot" -cf "$work/gosrc.tar" src
nfiles="$(tar -tf "$work/gosrc.tar" | wc -l)"
tiny="$work/tiny"; mkdir -p "$tiny"/{bin,proc,sys,dev,tmp,etc}
cp "$(command -v busybox)" "$tiny/bin/"; for c in sh tar mkdir true; do ln -sf busybox "$tiny/bin/$c"; done
tar --numeric-owner -C "$tiny" -cf "$work/tiny.tar" .
# The untar container is kept (no --rm) and each driver has a data root of
# its own, so no driver's run follows the deletion of another's 12,802
# files: on an ext4 without a journal (as on the test VM) the inode
# allocator skips inodes freed in the last 60 s (300 s while their inode
# table block is unwritten), testing each one again for every new file,
# which made whichever driver ran next pay for the previous one's clean-up.
untar_run() { # label -> seconds of docker run untarring (minus an empty docker run)
  local t0 t1 t2
  D import -c 'ENV PATH=/bin' "$work/tiny.tar" tiny:1 >/dev/null
  D run --rm --network none tiny:1 true # warm
  t0="$(date +%s.%N)"; D run --rm --network none tiny:1 true; t1="$(date +%s.%N)"
  D run --network none -v "$work/gosrc.tar:/src.tar:ro" tiny:1 sh -c 'mkdir /x && tar -xf /src.tar -C /x' \
    || { echo "bench-docker: untar under $1 failed"; tail "$work"/dockerd-*.log; exit 1; }
  t2="$(date +%s.%N)"
  python3 -c "print(f'{($t2 - $t1) - ($t1 - $t0):.2f}')"
}
echo "== untar of Go's source tree ($(stat -c %s "$work/gosrc.tar") bytes, $nfiles entries) into a container's root, $rounds rounds"
label() { case "$1" in kernel | userspace) echo "nydus plugin, $1 container layer" ;; *) echo "$1" ;; esac; }
drivers=(overlay2)
command -v fuse-overlayfs >/dev/null && drivers+=(fuse-overlayfs)
drivers+=(kernel userspace)
declare -A untar # driver -> its times, one per round
for r in $(seq "$rounds"); do
  # Each round starts one driver further on, so none always runs first.
  for i in $(seq 0 $((${#drivers[@]} - 1))); do
    d="${drivers[$(((i + r - 1) % ${#drivers[@]}))]}"
    case "$d" in
    kernel | userspace) start_plugin "$d" "$d-r$r"; start_dockerd "$plugin" "$plugin-$d-r$r" ;;
    *) start_dockerd "$d" "$d-r$r" ;;
    esac
    t="$(untar_run "$d")"
    stop_dockerd; stop_plugin
    untar[$d]="${untar[$d]:-} $t"
    echo "round $r: $(label "$d"): ${t}s"
  done
done
args=()
for d in "${drivers[@]}"; do args+=("$d=${untar[$d]}"); done
python3 - "${args[@]}" <<'PY'
import statistics, sys
t = {k: [float(x) for x in v.split()] for k, v in (a.split("=", 1) for a in sys.argv[1:])}
med = {k: statistics.median(v) for k, v in t.items()}
names = {"overlay2": "overlay2", "fuse-overlayfs": "fuse-overlayfs", "kernel": "plugin kernel", "userspace": "plugin userspace"}
line = ", ".join(f"{names[k]} {med[k]:.2f}s" for k in t)
if "fuse-overlayfs" in t:
    per = " ".join(f"{u / f:.2f}" for u, f in zip(t["userspace"], t["fuse-overlayfs"]))
    print(f"untar in a container, median of {len(t['overlay2'])} rounds: {line}: userspace/fuse-overlayfs = {med['userspace'] / med['fuse-overlayfs']:.2f} (target <= 1; per round: {per})")
else:
    print(f"untar in a container, median of {len(t['overlay2'])} rounds: {line} (fuse-overlayfs not installed: no comparison)")
PY
