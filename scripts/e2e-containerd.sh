#!/usr/bin/env bash
# containerd end-to-end suite (part of `make e2e`): containerd v2.4.2 with
# nydus-snapshotter v0.16.1 as a proxy snapshotter starts our nydusd,
# builds with our nydus-image and mounts through our nydus-overlayfs;
# nerdctl v1.7.7, ctr and crictl drive it; images are converted by our
# nydusify into Debian's docker-registry on loopback.
#  1. dedicated and shared daemon modes: nerdctl pull/run/rm/rmi, two
#     images at once, a small read of a large image moves a small fraction
#     of it (bytes counted in the registry's access log);
#  2. enable_nydus_overlayfs = true: containerd -> mount.fuse3 -> our
#     nydus-overlayfs from /bin/sh's default PATH; mount(8) of the
#     snapshotter's mount in kernel and userspace overlay modes;
#  6. ctr snapshot ls/usage, metrics collection and state polling leave no
#     error lines in the snapshotter's log;
#  4. zran (--oci-ref), docker-runnable, prefetch table and the
#     snapshotter's prefetch list (--prefetch-files), nerdctl image convert
#     --nydus --oci with our nydus-image;
#  5. CRI: crictl pull/runp/create/start/exec/logs with Debian's CNI plugins;
#  3. recovery with recover_policy = "restart": snapshotter restart, kill -9
#     nydusd, kill both;
#  7. failover with the snapshotter's shipped recovery settings
#     (recover_policy = "failover", failover_policy = "resend"), dedicated
#     and shared: running containers read on, with every byte right,
#     across kill -9 of their nydusd.
# Each case checks container output and that removal leaves no mounts,
# nydusd processes or cache files.
#
# The outside tools are built from the Go module proxy by
# e2e/containerd/tools.sh into $CTRD_E2E_CACHE (default
# ~/.cache/gonydus-e2e/containerd) and reused. CASES="1 2" runs a subset.
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$PWD"
cases="${CASES:-1 2 6 4 5 3 7}"

if [ "$(id -u)" != 0 ] || [ ! -e /dev/fuse ]; then
  echo "containerd e2e needs root and /dev/fuse; skipping"; exit 0
fi
work="$(mktemp -d /tmp/nct.XXXXXX)" # short: overlay mount data holds every layer path
. scripts/containerd-env.sh
. scripts/registry-env.sh
pids=()
helper_links=() # links we made in /usr/local/bin
displaced=()    # helpers that were there (e.g. from make install), moved aside until the end
bridge=nde2e0
t_start=$SECONDS

step() { printf '\n== [%ss] %s\n' "$((SECONDS - t_start))" "$*"; }
fail() {
  echo "E2E FAILED: $*" >&2
  echo "--- snapshotter log (tail)"; tail -30 "$work/sn.log" 2>/dev/null || true
  echo "--- containerd log (tail)"; tail -20 "$work/containerd.log" 2>/dev/null || true
  for f in "$snroot"/logs/*/nydusd.log; do [ -f "$f" ] && { echo "--- $f (tail)"; tail -10 "$f"; }; done 2>/dev/null
  if [ -n "${CTRD_E2E_LOGS:-}" ]; then # keep the logs
    mkdir -p "$CTRD_E2E_LOGS" && cp -r "$work"/*.log "$work"/sn.out "$CTRD_E2E_LOGS/" 2>/dev/null
    for d in "$work"/sn[0-9]*; do cp -r "$d/logs" "$CTRD_E2E_LOGS/${d##*/}-logs" 2>/dev/null; done
  fi
  exit 1
}
Nt() { local t="$1"; shift; timeout "$t" "$tools/nerdctl" --address "$csock" --namespace e2e --data-root "$work/nerdctl" \
  --snapshotter nydus --hosts-dir "$work/certs.d" --insecure-registry \
  --cni-path /usr/lib/cni --cni-netconfpath "$work/cni-nerdctl" "$@"; }
N() { Nt 180 "$@"; }
CTR() { timeout 60 "$tools/ctr" -a "$csock" "$@"; }
CRI() { timeout 120 "$tools/crictl" --config "$work/crictl.yaml" "$@"; }

# abort_fuse_under DIR: end the kernel connection of every FUSE mount
# under DIR, so that nothing stays blocked on a daemon that is gone.
abort_fuse_under() {
  mountpoint -q /sys/fs/fuse/connections || mount -t fusectl none /sys/fs/fuse/connections 2>/dev/null
  awk -v d="$1" 'index($5, d) == 1 { for (i = 7; $i != "-"; i++); if ($(i+1) ~ /^fuse/) { split($3, mm, ":"); print mm[2] } }' /proc/self/mountinfo |
    while read -r c; do [ -e "/sys/fs/fuse/connections/$c/abort" ] && echo 1 >"/sys/fs/fuse/connections/$c/abort"; done
  return 0
}

cleanup() {
  set +e
  [ -n "${case7_running:-}" ] && abort_fuse_under "$work"
  if [ -n "$ctrd_pid" ]; then
    for ns in e2e k8s.io; do
      "$tools/nerdctl" --address "$csock" --namespace "$ns" --data-root "$work/nerdctl" ps -aq 2>/dev/null |
        xargs -r timeout 60 "$tools/nerdctl" --address "$csock" --namespace "$ns" --data-root "$work/nerdctl" rm -f >/dev/null 2>&1
    done
    CRI rmp -af >/dev/null 2>&1
  fi
  stop_pid "$ctrd_pid"
  stop_pid "$sn_pid"
  for p in "${pids[@]}"; do stop_pid "$p"; done
  for p in $(nydusd_pids); do grep -qa -- "$work" "/proc/$p/cmdline" && kill -9 "$p"; done
  # Shims and containers of our containerd (their sockets live under $work).
  for p in /proc/[0-9]*; do
    grep -qa -- "$work" "$p/cmdline" 2>/dev/null && kill -9 "${p#/proc/}" 2>/dev/null
  done
  mounts_under "$work" | awk '{print $1}' | sort -r | while read -r m; do umount -l "$m" 2>/dev/null; done
  for l in "${helper_links[@]}"; do [ -L "$l" ] && [ "$(readlink "$l")" = "$bin/nydus-overlayfs" ] && rm -f "$l"; done
  for l in "${displaced[@]}"; do [ -e "$l" ] || mv -f "$work/displaced/$(basename "$l")" "$l"; done
  ip link del "$bridge" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
containerd_deps
containerd_tools

# ---------------------------------------------------------------- registry
step "docker-registry on loopback"
reg="127.0.0.1:$(free_port)"
registry_config "$work/registry.yml" "$reg" "$work/registry-data"
docker-registry serve "$work/registry.yml" >"$work/registry.log" 2>&1 &
pids+=("$!")
for _ in $(seq 100); do curl -fsS "http://$reg/v2/" >/dev/null 2>&1 && break; sleep 0.1; done
curl -fsS "http://$reg/v2/" >/dev/null || fail "registry did not start"
mkdir -p "$work/certs.d/$reg"
cat >"$work/certs.d/$reg/hosts.toml" <<TOML
server = "http://$reg"
[host."http://$reg"]
  capabilities = ["pull", "resolve", "push"]
  skip_verify = true
TOML

manifest() { curl -fsS -H 'Accept: application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json' "http://$reg/v2/$1/manifests/$2"; }
layer_sizes() { # layer_sizes REPO TAG: total size of the manifest's layers
  manifest "$1" "$2" | python3 -c 'import json,sys; print(sum(l["size"] for l in json.load(sys.stdin)["layers"]))'
}

# ------------------------------------------------------------------ images
step "source images (busybox; a large one with 64 MiB of data) and nydusify conversions"
mkroot() {
  mkdir -p "$1"/{bin,tmp,etc,proc,sys,dev,data,run,var}
  cp "$(command -v busybox)" "$1/bin/"
  for c in sh echo ls cat sleep md5sum wc head id true mkdir rm touch env test; do ln -sf busybox "$1/bin/$c"; done
  echo root:x:0:0:root:/:/bin/sh >"$1/etc/passwd"
  echo root:x:0: >"$1/etc/group"
}
mkroot "$work/src/small"
echo hello >"$work/src/small/etc/greeting"
mkroot "$work/src/big"
mkdir -p "$work/src/big2/data/blobs"
for i in $(seq 16); do head -c 4M /dev/urandom >"$work/src/big2/data/blobs/f$i"; done
echo small-file-of-a-big-image >"$work/src/big2/data/small.txt"
big_files="$(for i in $(seq 16); do printf '/data/blobs/f%s ' "$i"; done)"
big_md5="$(cd "$work/src/big2" && cat ${big_files//\/data/data} | md5sum | cut -d' ' -f1)"
mkroot "$work/src/pause"
python3 e2e/containerd/pushimage.py "$reg" small plain '["/bin/sh"]' "$work/src/small"
python3 e2e/containerd/pushimage.py "$reg" big plain '["/bin/sh"]' "$work/src/big" "$work/src/big2"
python3 e2e/containerd/pushimage.py "$reg" pause e2e '["/bin/sh","-c","trap \"exit 0\" TERM INT; while :; do sleep 1; done"]' "$work/src/pause"
for img in small big; do
  "$bin/nydusify" convert --log-level warn --source "$reg/$img:plain" --target "$reg/$img:nydus" --work-dir "$work" ||
    fail "nydusify convert $img"
done
big_blob_bytes="$(layer_sizes big nydus)"
echo "big:nydus layers hold $big_blob_bytes bytes"

# ------------------------------------------------------ snapshotter + containerd
cat >"$work/nydusd.json" <<JSON
{"device":{"backend":{"type":"registry","config":{"timeout":5,"connect_timeout":5,"retry_limit":2}},
  "cache":{"type":"blobcache"}},
 "mode":"direct","digest_validate":false,"iostats_files":false,"enable_xattr":true,"amplify_io":1048576,
 "fs_prefetch":{"enable":false,"threads_count":4,"merging_size":1048576,"prefetch_all":false}}
JSON
sed 's/"enable":false,"threads_count":4,"merging_size":1048576,"prefetch_all":false/"enable":true,"threads_count":4,"merging_size":1048576,"prefetch_all":false/' \
  "$work/nydusd.json" >"$work/nydusd-prefetch.json"
nydusd_json="$work/nydusd.json"
metrics_port="$(free_port)"

mkdir -p "$work/cni" "$work/cni-nerdctl" "$work/pods"
cat >"$work/cni/10-e2e.conflist" <<JSON
{"cniVersion":"1.0.0","name":"e2e","plugins":[
 {"type":"bridge","bridge":"$bridge","isGateway":true,"ipMasq":false,
  "ipam":{"type":"host-local","ranges":[[{"subnet":"10.231.77.0/24"}]],"dataDir":"$work/cni-ipam"}},
 {"type":"loopback"}]}
JSON
write_containerd_config
cat >>"$work/containerd.toml" <<TOML
[plugins."io.containerd.cri.v1.images"]
  snapshotter = "nydus"
  disable_snapshot_annotations = false
  [plugins."io.containerd.cri.v1.images".pinned_images]
    sandbox = "$reg/pause:e2e"
  [plugins."io.containerd.cri.v1.images".registry]
    config_path = "$work/certs.d"
[plugins."io.containerd.cri.v1.runtime"]
  # The sandbox's oom_score_adj -998 is refused on hosts where root may
  # not lower it (runc: "failed to update /proc/self/oom_score_adj").
  restrict_oom_score_adj = true
  [plugins."io.containerd.cri.v1.runtime".containerd]
    default_runtime_name = "runc"
    [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      snapshotter = "nydus"
  [plugins."io.containerd.cri.v1.runtime".cni]
    bin_dirs = ["/usr/lib/cni"]
    conf_dir = "$work/cni"
[plugins."io.containerd.grpc.v1.cri"]
  disable_tcp_service = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
TOML
cat >"$work/crictl.yaml" <<YML
runtime-endpoint: unix://$csock
image-endpoint: unix://$csock
timeout: 60
YML
# assert_clean WHAT: no containers, images, nydus snapshots, mounts,
# nydusd instances or cache files are left.
assert_clean() {
  local left m p n
  left="$(N ps -aq)"; [ -z "$left" ] || fail "$1: containers left: $left"
  left="$(N images -q)"; [ -z "$left" ] || fail "$1: images left: $left"
  # containerd's garbage collector removes the snapshots soon after rmi.
  for _ in $(seq 100); do
    n="$(CTR -n e2e snapshot --snapshotter nydus ls | tail -n +2 | wc -l)"
    [ "$n" = 0 ] && [ -z "$(mounts_under "$snroot/snapshots")" ] && break
    sleep 0.2
  done
  [ "$n" = 0 ] || fail "$1: $n nydus snapshots left"
  m="$(mounts_under "$work" | grep -v "^$snroot/mnt " || true)"
  [ -z "$m" ] || fail "$1: mounts left: $m"
  # A nydusd whose mount was just removed (the userspace overlay's, after
  # its unmount) exits on its own: give it a few seconds.
  for _ in $(seq 50); do
    n=0
    for p in $(nydusd_pids); do
      grep -qa -- "$snroot/mnt" "/proc/$p/cmdline" 2>/dev/null && [ "$(mounts_under "$snroot/mnt" | wc -l)" = 1 ] && continue
      n=$((n + 1))
    done
    [ "$n" = 0 ] && break
    sleep 0.1
  done
  for p in $(nydusd_pids); do
    if [ "$(mounts_under "$snroot/mnt" | wc -l)" = 1 ] && grep -qa -- "$snroot/mnt" "/proc/$p/cmdline"; then
      # The shared daemon stays, with no image attached.
      n="$(curl -fsS --unix-socket "$(ls "$snroot"/socket/*/api.sock | head -1)" http://unix/api/v1/daemon |
        python3 -c 'import json,sys; print(len(json.load(sys.stdin).get("backend_collection") or {}))')"
      [ "$n" = 0 ] || fail "$1: the shared nydusd still serves $n images"
      continue
    fi
    fail "$1: nydusd $p left: $(tr '\0' ' ' <"/proc/$p/cmdline")"
  done
  left="$(find "$snroot/cache" -type f 2>/dev/null | head -5)"
  [ -z "$left" ] || fail "$1: cache files left: $left"
  echo "clean: no containers, images, snapshots, mounts, nydusd instances or cache files left"
}

start_containerd
echo "containerd $(CTR version | awk '/Version/ {print $2; exit}') ready"

# ------------------------------------------------------------------ case 1
case1() { # case1 MODE
  local mode="$1" out mark bytes n
  step "case 1 ($mode): pull, run, two images at once, lazy read, rm, rmi"
  start_snapshotter "$mode" false none
  N pull -q "$reg/small:nydus" >/dev/null || fail "nerdctl pull small:nydus"
  out="$(N run --rm --net none "$reg/small:nydus" cat /etc/greeting)" || fail "nerdctl run small:nydus"
  [ "$out" = hello ] || fail "small:nydus printed '$out'"
  mark="$(reg_mark)"
  N pull -q "$reg/big:nydus" >/dev/null || fail "nerdctl pull big:nydus"
  out="$(N run --rm --net none "$reg/big:nydus" cat /data/small.txt)" || fail "nerdctl run big:nydus"
  [ "$out" = small-file-of-a-big-image ] || fail "big:nydus printed '$out'"
  bytes="$(reg_blob_bytes "$mark" big)"
  echo "pull + run reading one small file of big:nydus: the registry served $bytes of $big_blob_bytes bytes"
  [ "$bytes" -gt 0 ] && [ "$bytes" -lt $((big_blob_bytes / 10)) ] || fail "not lazy: $bytes of $big_blob_bytes bytes"
  N run -d --name one --net none "$reg/small:nydus" sleep 600 >/dev/null || fail "run -d small"
  N run -d --name two --net none "$reg/big:nydus" sleep 600 >/dev/null || fail "run -d big"
  [ "$(N exec one cat /etc/greeting)" = hello ] || fail "exec in one"
  [ "$(N exec two sh -c "cat $big_files | md5sum" | cut -d' ' -f1)" = "$big_md5" ] || fail "big data read in two"
  n="$(nydusd_pids | wc -l)"
  echo "two containers of two images run; $n nydusd processes; $(find "$snroot/cache" -type f | wc -l) cache files"
  [ -n "$(find "$snroot/cache" -type f)" ] || fail "no cache files under $snroot/cache while images run"
  if [ "$mode" = dedicated ]; then [ "$n" = 2 ] || fail "dedicated mode: $n nydusd processes, want 2"
  else [ "$n" = 1 ] || fail "shared mode: $n nydusd processes, want 1"; fi
  N rm -f one two >/dev/null || fail "nerdctl rm"
  N rmi "$reg/small:nydus" "$reg/big:nydus" >/dev/null || fail "nerdctl rmi"
  assert_clean "case 1 ($mode)"
  check_sn_log "case 1 ($mode)"
  stop_snapshotter
}

# ------------------------------------------------------------------ case 2
# install_helper [NAME]: /usr/local/bin/NAME -> our nydus-overlayfs.
install_helper() {
  local l="/usr/local/bin/${1:-nydus-overlayfs}"
  if [ -e "$l" ] || [ -L "$l" ]; then
    [ "$(readlink -f "$l")" = "$(readlink -f "$bin/nydus-overlayfs")" ] && return 0
    # Another helper (an installed release, or make install of another
    # tree): set it aside so that the binary under test is the one mount(8)
    # runs; cleanup puts it back.
    mkdir -p "$work/displaced"
    mv -f "$l" "$work/displaced/$(basename "$l")" || fail "cannot set $l aside"
    displaced+=("$l")
    echo "set $l aside until the end of the suite"
  fi
  ln -s "$bin/nydus-overlayfs" "$l"
  helper_links+=("$l")
}
remove_helper() { # remove_helper [NAME]: only a link we made
  local l="/usr/local/bin/${1:-nydus-overlayfs}" i
  for i in "${!helper_links[@]}"; do
    [ "${helper_links[$i]}" = "$l" ] && { rm -f "$l"; unset 'helper_links[i]'; }
  done
  return 0
}

case2() {
  local out m key cmd id
  step "case 2: enable_nydus_overlayfs = true: containerd -> mount.fuse3 -> nydus-overlayfs on the default PATH"
  install_helper
  start_snapshotter dedicated true none
  N pull -q "$reg/small:nydus" >/dev/null || fail "nerdctl pull small:nydus"
  N run -d --name ov --net none "$reg/small:nydus" sleep 600 >/dev/null || fail "nerdctl run with nydus-overlayfs"
  [ "$(N exec ov cat /etc/greeting)" = hello ] || fail "exec in the nydus-overlayfs container"
  m="$(mounts_under "$work/c-state/" | awk -v s="lowerdir=$snroot/" '$2 == "overlay" && index($3, s) {print $1}')"
  [ -n "$m" ] || fail "no kernel overlay over the nydusd mount for the container's rootfs"
  echo "container rootfs: kernel overlay at $m (lower under $snroot) made by nydus-overlayfs"
  N rm -f ov >/dev/null
  remove_helper
  if out="$(N run --rm --net none "$reg/small:nydus" true 2>&1)"; then
    fail "a container started without nydus-overlayfs on the default PATH: the helper was not what mounted"
  fi
  echo "$out" | grep -q 'nydus-overlayfs' || fail "without the helper: unexpected error: $out"
  echo "without the helper on the default PATH the mount fails: $(echo "$out" | grep -o 'nydus-overlayfs[^"]*not found' | head -1)"
  N rm -f "$(N ps -aq)" >/dev/null 2>&1 || true
  install_helper

  # mount(8) with the snapshotter's own mount, both overlay modes.
  id="$(N create --name m8 --net none "$reg/small:nydus" true | tail -1)" || fail "nerdctl create"
  key="$(CTR -n e2e containers info "$id" | python3 -c 'import json,sys; print(json.load(sys.stdin)["SnapshotKey"])')"
  mkdir -p "$work/m8"
  cmd="$(CTR -n e2e snapshots --snapshotter nydus mounts "$work/m8" "$key")"
  echo "$cmd" | grep -q '^mount -t fuse.nydus-overlayfs overlay ' || fail "snapshotter mount: $cmd"
  env -i /bin/sh -c "$cmd" || fail "mount(8) of the snapshotter's fuse.nydus-overlayfs mount"
  [ "$(mount_type "$work/m8")" = overlay ] || fail "mount(8): not a kernel overlay"
  [ "$(cat "$work/m8/etc/greeting")" = hello ] || fail "mount(8) kernel mode: content"
  echo written >"$work/m8/tmp/new" || fail "mount(8) kernel mode: write"
  umount "$work/m8" || fail "umount (kernel mode)"
  env -i /bin/sh -c "$cmd,nydus.overlay=userspace" || fail "mount(8) in userspace overlay mode"
  case "$(mount_type "$work/m8")" in fuse.*) ;; *) fail "userspace mode: a $(mount_type "$work/m8") mount";; esac
  [ "$(cat "$work/m8/etc/greeting")" = hello ] || fail "userspace mode: content"
  [ "$(cat "$work/m8/tmp/new")" = written ] || fail "userspace mode: the upper dir written in kernel mode"
  umount "$work/m8" || fail "umount (userspace mode)"
  for _ in $(seq 50); do [ "$(nydusd_pids | wc -l)" = 1 ] && break; sleep 0.1; done
  echo "mount(8) -> mount.fuse3 -> nydus-overlayfs: kernel overlay and nydusd's userspace overlay both serve the image"
  N rm m8 >/dev/null || fail "nerdctl rm m8"
  N rmi "$reg/small:nydus" >/dev/null || fail "nerdctl rmi"
  assert_clean "case 2"
  check_sn_log "case 2"
  stop_snapshotter
  remove_helper

  # Userspace overlay under containerd: nydus_overlayfs_path names the
  # helper's nydus-overlayfs-userspace link; nydusd serves the rootfs with
  # its writable overlay.
  step "case 2: userspace overlay mode under containerd (nydus_overlayfs_path = \"nydus-overlayfs-userspace\")"
  install_helper nydus-overlayfs-userspace
  overlayfs_name=nydus-overlayfs-userspace
  start_snapshotter dedicated true none
  N pull -q "$reg/small:nydus" >/dev/null || fail "nerdctl pull small:nydus"
  N run -d --name us --net none "$reg/small:nydus" sleep 600 >/dev/null || fail "nerdctl run in userspace overlay mode"
  out="$(N exec us sh -c 'echo w >/tmp/w; cat /tmp/w /etc/greeting; rm /etc/greeting; test -e /etc/greeting && echo present || echo gone')" ||
    fail "exec in the userspace overlay container"
  [ "$out" = "w
hello
gone" ] || fail "userspace overlay: write, read and delete printed '$out'"
  m="$(mounts_under "$work/c-state/" | awk '$1 ~ /\/rootfs$/ {print $2}')"
  case "$m" in fuse.*) ;; *) fail "userspace mode: the container rootfs is a '$m' mount";; esac
  echo "container rootfs: a $m mount served by nydusd's writable overlay: write, read and delete work"
  [ "$(nydusd_pids | wc -l)" = 2 ] || fail "userspace mode: $(nydusd_pids | wc -l) nydusd processes, want 2 (image + overlay)"
  N rm -f us >/dev/null || fail "nerdctl rm us"
  N rmi "$reg/small:nydus" >/dev/null || fail "nerdctl rmi"
  assert_clean "case 2 (userspace)"
  check_sn_log "case 2 (userspace)"
  stop_snapshotter
  overlayfs_name=nydus-overlayfs
  remove_helper nydus-overlayfs-userspace
}

# check_sn_log WHAT: no error lines in the snapshotter's log.
check_sn_log() {
  local errs
  errs="$(grep -hE 'level=(error|fatal|panic)' "$snroot"/logs/*.log 2>/dev/null || true)"
  if [ -n "$errs" ]; then
    echo "$errs" | tail -20
    fail "$1: $(echo "$errs" | wc -l) error lines in the snapshotter's log"
  fi
  echo "snapshotter log: $(cat "$snroot"/logs/*.log 2>/dev/null | wc -l) lines, no error lines"
}

# ------------------------------------------------------------------ case 6
case6() {
  local n out
  step "case 6: ctr snapshot ls/usage, metrics collection, daemon state polling"
  start_snapshotter dedicated false none
  N pull -q "$reg/big:nydus" >/dev/null || fail "nerdctl pull big:nydus"
  N run -d --name s6 --net none "$reg/big:nydus" sh -c 'cat /data/small.txt; sleep 600' >/dev/null || fail "run s6"
  CTR -n e2e snapshot --snapshotter nydus ls | tee "$work/snap-ls.txt"
  grep -q Committed "$work/snap-ls.txt" && grep -q Active "$work/snap-ls.txt" || fail "ctr snapshot ls"
  CTR -n e2e snapshot --snapshotter nydus usage | tee "$work/snap-usage.txt"
  [ "$(tail -n +2 "$work/snap-usage.txt" | wc -l)" -ge 3 ] || fail "ctr snapshot usage"
  curl -fsS --unix-socket "$sysock" http://unix/api/v1/daemons >"$work/daemons.json" || fail "snapshotter system API"
  python3 - "$work/daemons.json" <<'PY' || fail "daemon state via the snapshotter"
import json, sys
ds = json.load(open(sys.argv[1]))
assert len(ds) == 1, ds
d = ds[0]
print("snapshotter sees daemon", d["id"], "pid", d["pid"], "rss", d["memory_rss_kb"], "KiB, read_data_kb",
      d["read_data_kb"], "(from nydusd's metrics), instances", len(d["instances"]))
assert d["read_data_kb"] > 0 and len(d["instances"]) == 1, d
PY
  # The collector polls nydusd's /api/v1/metrics every collect_interval (5 s).
  for _ in $(seq 40); do
    curl -fsS "http://127.0.0.1:$metrics_port/v1/metrics" >"$work/metrics.txt" 2>/dev/null || true
    grep -q '^nydusd_total_read_bytes{.*} [1-9]' "$work/metrics.txt" && break
    sleep 0.5
  done
  grep -E '^nydusd_(total_read_bytes|read_hits|read_errors|cumulative_read_block_bytes_count|read_latency_microseconds_count|lifetime_event_counts)' "$work/metrics.txt"
  grep -q '^nydusd_total_read_bytes{.*} [1-9]' "$work/metrics.txt" || fail "the snapshotter collected no read bytes from nydusd"
  grep -q '^nydusd_cumulative_read_block_bytes_count{.*} [1-9]' "$work/metrics.txt" || fail "no read size histogram collected"
  N rm -f s6 >/dev/null
  N rmi "$reg/big:nydus" >/dev/null || fail "nerdctl rmi"
  assert_clean "case 6"
  check_sn_log "case 6"
  stop_snapshotter
}

# ------------------------------------------------------------------ case 4
# wait_bytes MARK REPO MIN: the registry served at least MIN blob bytes of
# REPO since MARK (bounded: 30 s); prints the count.
wait_bytes() {
  local b=0
  for _ in $(seq 60); do
    b="$(reg_blob_bytes "$1" "$2")"
    [ "$b" -ge "$3" ] && break
    sleep 0.5
  done
  echo "$b"
}
case4() {
  local out mark bytes gz pid
  step "case 4: zran, docker-runnable, prefetch table, the snapshotter's prefetch list, nerdctl image convert"
  start_snapshotter dedicated false none
  # zran: the nydus image references the original gzip layers.
  "$bin/nydusify" convert --log-level warn --source "$reg/big:plain" --target "$reg/big:zran" --oci-ref --work-dir "$work" ||
    fail "nydusify convert --oci-ref"
  gz="$(layer_sizes big plain)"
  mark="$(reg_mark)"
  N pull -q "$reg/big:zran" >/dev/null || fail "nerdctl pull big:zran"
  out="$(N run --rm --net none "$reg/big:zran" cat /data/small.txt)" || fail "nerdctl run big:zran"
  [ "$out" = small-file-of-a-big-image ] || fail "big:zran printed '$out'"
  bytes="$(reg_blob_bytes "$mark" big)"
  echo "zran: pull + small read served $bytes bytes; the gzip layers hold $gz"
  [ "$bytes" -gt 0 ] && [ "$bytes" -lt $((gz / 4)) ] || fail "zran not lazy: $bytes of $gz bytes"
  [ "$(N run --rm --net none "$reg/big:zran" sh -c "cat $big_files | md5sum" | cut -d' ' -f1)" = "$big_md5" ] ||
    fail "zran: big data content"
  N rmi "$reg/big:zran" >/dev/null || fail "rmi big:zran"

  # The docker-runnable layout.
  "$bin/nydusify" convert --log-level warn --source "$reg/small:plain" --target "$reg/small:dr" --docker-runnable --work-dir "$work" ||
    fail "nydusify convert --docker-runnable"
  out="$(N run --rm --net none "$reg/small:dr" cat /etc/greeting)" || fail "nerdctl run small:dr"
  [ "$out" = hello ] || fail "small:dr printed '$out'"
  echo "docker-runnable image runs under the snapshotter"
  N rmi "$reg/small:dr" >/dev/null || fail "rmi small:dr"

  # nerdctl's own conversion with our nydus-image, pushed and run.
  N pull -q "$reg/small:plain" >/dev/null || fail "pull small:plain"
  N image convert --nydus --oci --nydus-builder-path "$bin/nydus-image" "$reg/small:plain" "$reg/small:nconv" >/dev/null ||
    fail "nerdctl image convert --nydus --oci"
  N push -q "$reg/small:nconv" >/dev/null || fail "nerdctl push small:nconv"
  N rmi "$reg/small:nconv" "$reg/small:plain" >/dev/null || fail "rmi"
  grep -q 'nydus' <<<"$(manifest small nconv)" || fail "the converted image has no nydus layers"
  out="$(N run --rm --net none "$reg/small:nconv" cat /etc/greeting)" || fail "nerdctl run small:nconv"
  [ "$out" = hello ] || fail "small:nconv printed '$out'"
  echo "nerdctl image convert --nydus --oci (our nydus-image) -> push -> run: ok"
  N rmi "$reg/small:nconv" >/dev/null || fail "rmi small:nconv"
  assert_clean "case 4 (lazy)"
  check_sn_log "case 4 (lazy)"
  stop_snapshotter

  # Prefetch: fs_prefetch enabled in the nydusd configuration.
  nydusd_json="$work/nydusd-prefetch.json"
  start_snapshotter dedicated false none
  # An image with a prefetch table: nydusd prefetches the listed file.
  echo /data/blobs/f3 | "$bin/nydusify" convert --log-level warn --source "$reg/big:plain" --target "$reg/big:pf" \
    --prefetch-patterns --work-dir "$work" || fail "nydusify convert --prefetch-patterns"
  mark="$(reg_mark)"
  N run -d --name pf --net none "$reg/big:pf" sleep 600 >/dev/null || fail "nerdctl run big:pf"
  bytes="$(wait_bytes "$mark" big $((4 << 20)))"
  echo "prefetch table (/data/blobs/f3, 4 MiB): the registry served $bytes bytes without a read"
  [ "$bytes" -ge $((4 << 20)) ] && [ "$bytes" -lt $((big_blob_bytes / 2)) ] || fail "prefetch table: $bytes bytes"
  N rm -f pf >/dev/null; N rmi "$reg/big:pf" >/dev/null || fail "rmi big:pf"

  # The snapshotter's prefetch list (what its NRI plugin sends) reaches
  # nydusd as --prefetch-files.
  curl -fsS --unix-socket "$sysock" -X PUT http://unix/api/v1/prefetch \
    -d "[{\"image\":\"$reg/big:nydus\",\"prefetch\":\"/data/blobs/f5 /data/blobs/f6\"}]" || fail "PUT /api/v1/prefetch"
  N pull -q "$reg/big:nydus" >/dev/null || fail "pull big:nydus"
  mark="$(reg_mark)"
  N run -d --name pl --net none "$reg/big:nydus" sleep 600 >/dev/null || fail "nerdctl run big:nydus"
  pid="$(nydusd_pids | head -1)"
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -o -- '--prefetch-files [^-]*' || fail "nydusd started without --prefetch-files"
  bytes="$(wait_bytes "$mark" big $((8 << 20)))"
  echo "prefetch list (f5, f6: 8 MiB): the registry served $bytes bytes without a read"
  [ "$bytes" -ge $((8 << 20)) ] && [ "$bytes" -lt $((big_blob_bytes / 2)) ] || fail "prefetch list: $bytes bytes"
  N rm -f pl >/dev/null; N rmi "$reg/big:nydus" >/dev/null || fail "rmi big:nydus"

  assert_clean "case 4"
  check_sn_log "case 4"
  stop_snapshotter
  nydusd_json="$work/nydusd.json"
}

# ------------------------------------------------------------------ case 5
case5() {
  local pod cid out ip
  step "case 5: CRI: crictl pull, runp (CNI bridge + loopback), create, start, exec, logs"
  start_snapshotter dedicated false none
  CRI pull "$reg/small:nydus" >/dev/null || fail "crictl pull"
  cat >"$work/pod.json" <<JSON
{"metadata":{"name":"e2e-pod","namespace":"default","uid":"e2e-uid-1","attempt":0},"log_directory":"$work/pods","linux":{}}
JSON
  cat >"$work/ctr.json" <<JSON
{"metadata":{"name":"greeter"},"image":{"image":"$reg/small:nydus"},
 "command":["/bin/sh","-c","cat /etc/greeting; sleep 600"],"log_path":"greeter.log","linux":{}}
JSON
  pod="$(CRI runp "$work/pod.json")" || fail "crictl runp"
  ip="$(CRI inspectp "$pod" | python3 -c 'import json,sys; print(json.load(sys.stdin)["status"]["network"]["ip"])')"
  case "$ip" in 10.231.77.*) ;; *) fail "pod IP '$ip' is not from the bridge's range";; esac
  cid="$(CRI create "$pod" "$work/ctr.json" "$work/pod.json")" || fail "crictl create"
  CRI start "$cid" >/dev/null || fail "crictl start"
  [ "$(CRI exec "$cid" cat /etc/greeting)" = hello ] || fail "crictl exec"
  for _ in $(seq 50); do out="$(CRI logs "$cid" 2>&1)"; [ "$out" = hello ] && break; sleep 0.2; done
  [ "$out" = hello ] || fail "crictl logs: '$out'"
  echo "pod $pod (IP $ip), container $cid: exec and logs print hello"
  CRI stop -t 2 "$cid" >/dev/null; CRI rm "$cid" >/dev/null || fail "crictl rm"
  CRI stopp "$pod" >/dev/null; CRI rmp "$pod" >/dev/null || fail "crictl rmp"
  CRI rmi "$reg/small:nydus" >/dev/null || fail "crictl rmi"
  # The pinned sandbox image (tag, digest and id references): kubelet never removes it.
  CTR -n k8s.io images ls -q | xargs -r timeout 60 "$tools/ctr" -a "$csock" -n k8s.io images rm --sync >/dev/null ||
    fail "ctr images rm (sandbox image)"
  for _ in $(seq 50); do [ "$(CTR -n k8s.io snapshot --snapshotter nydus ls | tail -n +2 | wc -l)" = 0 ] && break; sleep 0.2; done
  [ "$(CTR -n k8s.io snapshot --snapshotter nydus ls | tail -n +2 | wc -l)" = 0 ] || fail "CRI snapshots left: $(CTR -n k8s.io snapshot --snapshotter nydus ls; CTR -n k8s.io images ls -q; CRI ps -a; CRI pods)"
  assert_clean "case 5"
  check_sn_log "case 5"
  stop_snapshotter
}

# ------------------------------------------------------------------ case 3
# wait_new_nydusd OLD_PIDS: a nydusd not in OLD_PIDS runs (bounded: 30 s).
wait_new_nydusd() {
  local p
  for _ in $(seq 150); do
    for p in $(nydusd_pids); do
      case " $1 " in *" $p "*) ;; *) echo "$p"; return 0 ;; esac
    done
    sleep 0.2
  done
  return 1
}
case3() {
  local old new out root
  step "case 3: recovery with recover_policy = \"restart\""
  start_snapshotter dedicated false restart
  root="$snroot"
  N pull -q "$reg/small:nydus" >/dev/null && N pull -q "$reg/big:nydus" >/dev/null || fail "pull"
  N run -d --name r1 --net none "$reg/small:nydus" sleep 600 >/dev/null || fail "run r1"
  old="$(nydusd_pids | tr '\n' ' ')"
  stop_snapshotter INT
  start_snapshotter dedicated false restart "$root"
  [ "$(N exec r1 cat /etc/greeting)" = hello ] || fail "r1 after a snapshotter restart"
  [ "$(nydusd_pids | tr '\n' ' ')" = "$old" ] || fail "nydusd changed across a snapshotter restart: $old -> $(nydusd_pids | tr '\n' ' ')"
  out="$(N run --rm --net none "$reg/small:nydus" cat /etc/greeting)" || fail "new container after a snapshotter restart"
  [ "$out" = hello ] || fail "after a snapshotter restart: '$out'"
  echo "snapshotter restarted: the running container and its nydusd ($old) stayed; a new container runs"

  old="$(nydusd_pids | tr '\n' ' ')"
  kill -9 $old
  new="$(wait_new_nydusd "$old")" || fail "nydusd was not restarted after kill -9"
  for _ in $(seq 50); do out="$(N run --rm --net none "$reg/small:nydus" cat /etc/greeting 2>&1)" && break; sleep 0.2; done
  [ "$out" = hello ] || fail "new container after kill -9 nydusd: '$out'"
  echo "kill -9 nydusd ($old): restarted as $new; a new container prints hello"

  N create --name r2 --net none "$reg/small:nydus" cat /etc/greeting >/dev/null || fail "create r2"
  N create --name r3 --net none "$reg/big:nydus" cat /data/small.txt >/dev/null || fail "create r3"
  old="$(nydusd_pids | tr '\n' ' ')"
  kill -9 $old
  stop_snapshotter KILL
  start_snapshotter dedicated false restart "$root"
  # The restarted snapshotter recovers its daemons before containerd's
  # proxy reaches it: retry a refused connection for a few seconds.
  for i in $(seq 20); do
    out="$(N start -a r2 2>"$work/start-r2.err")" && break
    grep -q 'connection refused' "$work/start-r2.err" || break
    sleep 0.5
  done
  [ -n "$out" ] || { cat "$work/start-r2.err"; fail "start r2 after killing both"; }
  [ "$i" = 1 ] || echo "start r2: the snapshotter answered after $i tries"
  [ "$out" = hello ] || fail "r2 printed '$out'"
  out="$(N start -a r3)" || fail "start r3 after killing both"
  [ "$out" = small-file-of-a-big-image ] || fail "r3 printed '$out'"
  echo "killed the snapshotter and nydusd ($old), restarted the snapshotter: stopped containers start and print"
  N rm -f r1 r2 r3 >/dev/null
  N rmi "$reg/small:nydus" "$reg/big:nydus" >/dev/null || fail "rmi"
  assert_clean "case 3"
  echo "snapshotter log after the kills (errors about the killed processes are expected):"
  cat "$snroot"/logs/*.log | grep -E 'level=(error|fatal)' | cut -c1-300 || true
  stop_snapshotter
}

# ------------------------------------------------------------------ case 7
case7() { # case7 MODE
  local mode="$1" old new n0 n i t0 reads out
  step "case 7 ($mode): recover_policy = \"failover\", failover_policy = \"resend\": containers run on across kill -9 of nydusd"
  case7_running=1 # a failed takeover leaves readers blocked: cleanup aborts the connections
  start_snapshotter "$mode" false failover
  N pull -q "$reg/small:nydus" >/dev/null && N pull -q "$reg/big:nydus" >/dev/null || fail "pull"
  for i in $(seq 16); do echo "$(md5sum <"$work/src/big2/data/blobs/f$i" | cut -d' ' -f1) /data/blobs/f$i"; done >"$work/f-md5.txt"
  # The reader reads every big file in each pass and logs "PASS MD5 FILE"
  # to its upper dir (MD5 is ERR when the read fails).
  N run -d --name f1 --net none "$reg/big:nydus" sh -c \
    'i=0; while :; do for f in /data/blobs/f*; do m=$(md5sum $f) || m=ERR; echo "$i ${m%% *} $f" >>/tmp/reads; done; i=$((i+1)); sleep 0.2; done' >/dev/null ||
    fail "run f1"
  N run -d --name f2 --net none "$reg/small:nydus" sleep 600 >/dev/null || fail "run f2"
  reads="$(find "$snroot/snapshots" -path '*/fs/tmp/reads' | head -1)"
  for _ in $(seq 150); do [ -n "$reads" ] && [ "$(wc -l <"$reads")" -ge 32 ] && break; sleep 0.2; reads="$(find "$snroot/snapshots" -path '*/fs/tmp/reads' | head -1)"; done
  [ -n "$reads" ] && [ "$(wc -l <"$reads")" -ge 32 ] || fail "the reader did not read two passes"
  # reads_right WHAT: the reader made 3 more passes within 60 s and every
  # read so far gave the right md5.
  reads_right() {
    n0="$(wc -l <"$reads")"
    for _ in $(seq 300); do n="$(wc -l <"$reads")"; [ "$n" -ge $((n0 + 48)) ] && break; sleep 0.2; done
    [ "$n" -ge $((n0 + 48)) ] || fail "$1: the container's reader is stuck ($n0 -> $n reads in 60 s)"
    awk 'NR == FNR { want[$2] = $1; next } $2 != want[$3] { print "read " FNR ": " $3 ": " $2 " want " want[$3]; bad = 1 } END { exit bad }' \
      "$work/f-md5.txt" "$reads" || fail "$1: wrong or failed reads"
    [ "$(Nt 60 exec f2 cat /etc/greeting)" = hello ] || fail "$1: f2 does not read"
    echo "$1: the reader went on ($n0 -> $n reads, all right); f2 reads"
  }
  reads_right "before"
  # The FUSE connections (device numbers) of the snapshots' mounts: a
  # failover keeps them; a restart would mount anew.
  fuse_devs() { awk -v d="$snroot/" 'index($5, d) == 1 { for (i = 7; $i != "-"; i++); if ($(i+1) ~ /^fuse/) print $5, $3 }' /proc/self/mountinfo | sort; }
  fuse_devs >"$work/devs-before.txt"
  [ -s "$work/devs-before.txt" ] || fail "no nydusd FUSE mounts under $snroot"
  old="$(nydusd_pids | tr '\n' ' ')"
  echo "killing nydusd $old"
  t0=$SECONDS
  kill -9 $old
  new="$(wait_new_nydusd "$old")" || fail "no new nydusd after kill -9 of $old"
  echo "a new nydusd ($new) runs $((SECONDS - t0)) s after the kill"
  sync; echo 1 >/proc/sys/vm/drop_caches # reads go to the new daemon
  reads_right "after kill -9"
  echo "nydusd $old killed: now $(nydusd_pids | tr '\n' ' ')"
  fuse_devs | diff "$work/devs-before.txt" - || fail "the FUSE mounts changed across the kill: not a failover"
  echo "the same FUSE connections serve: $(tr '\n' ' ' <"$work/devs-before.txt")"
  for i in 1 2; do [ "$(N inspect --format '{{.State.Status}}' "f$i")" = running ] || fail "f$i stopped"; done
  out="$(N run --rm --net none "$reg/small:nydus" cat /etc/greeting)" || fail "a new container after the failover"
  [ "$out" = hello ] || fail "a new container after the failover printed '$out'"
  # A second kill: the failover repeats.
  old="$(nydusd_pids | tr '\n' ' ')"
  kill -9 $old
  wait_new_nydusd "$old" >/dev/null || fail "no new nydusd after the second kill -9 of $old"
  sync; echo 1 >/proc/sys/vm/drop_caches
  reads_right "after a second kill -9"
  fuse_devs | diff "$work/devs-before.txt" - || fail "the FUSE mounts changed across the second kill"
  N rm -f f1 f2 >/dev/null || fail "nerdctl rm"
  N rmi "$reg/small:nydus" "$reg/big:nydus" >/dev/null || fail "rmi"
  assert_clean "case 7 ($mode)"
  echo "snapshotter log after the kills (errors about the killed processes are expected):"
  cat "$snroot"/logs/*.log | grep -E 'level=(error|fatal)' | cut -c1-300 || true
  stop_snapshotter
  case7_running=""
}

for c in $cases; do
  case "$c" in
  1) case1 dedicated; case1 shared ;;
  2) case2 ;;
  6) case6 ;;
  4) case4 ;;
  5) case5 ;;
  3) case3 ;;
  7) case7 dedicated; case7 shared ;;
  *) echo "case $c: not written yet"; exit 1 ;;
  esac
done
echo
echo "containerd e2e passed in $((SECONDS - t_start)) s (cases: $cases)"
