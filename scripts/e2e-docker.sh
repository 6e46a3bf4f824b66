#!/usr/bin/env bash
# End-to-end suite of the Docker graphdriver plugin (part of `make e2e`):
# Debian's dockerd 20.10 runs with --experimental --storage-driver nydus
# against our plugin, images come from Debian's docker-registry on
# loopback. NYDUS_PLUGIN_NAME (default nydus) names the plugin: its
# socket /run/docker/plugins/$NYDUS_PLUGIN_NAME.sock, dockerd's
# --storage-driver and the driver home <data-root>/$NYDUS_PLUGIN_NAME; the
# plugin's runtime dir (nydusd API and keeper sockets) is under the
# suite's work dir, so two suites with different names never share
# anything.
#  1. an ordinary image: import, run, diff, commit, push;
#  2. nydusify converts it (docker-runnable layout) and checks it;
#  3. docker pull of the nydus image fetches only the bootstrap layer;
#     docker run reads lazily and fetches only what it reads;
#  4. docker export equals the source rootfs; commit and a classic
#     docker build FROM the nydus image work;
#  4b. docker save | docker load, and a push to another repository and a
#     pull back, keep the nydus layer byte for byte (registry bytes
#     compared) and the image lazy;
#  5. containers survive a plugin restart and a dockerd restart;
#  5b. container-layer modes: the same work in a container in kernel,
#     userspace and auto mode (auto mounts kernel overlayfs on this
#     ordinary home) gives the same docker diff, export, cp and commit,
#     for an ordinary and a nydus image; a container made in userspace
#     mode keeps running across a plugin restart in kernel mode and is
#     mounted with overlayfs at its next start;
#  6. bad input (a corrupt bootstrap layer, a missing blob, an unreachable
#     registry) fails clearly and leaves no mount behind;
#  6b. failover and live upgrade: a running container's reads and
#     writes go on across kill -9 of its image's nydusd (the plugin's
#     keeper hands the FUSE connection to a new one) and across
#     `docker-nydus-graphdriver upgrade` to another nydusd binary;
#  6c. the managed (v2) plugin: a dockerd of its own (data root, exec
#     root, socket under the work dir) runs build-plugin.sh (docker plugin
#     create), docker plugin set (the run's container layer, args) and
#     enable on vfs, restarts with --experimental --storage-driver
#     <plugin>, pulls and runs the ordinary and the nydus image (lazily,
#     nydusd in the plugin's container, its FUSE mount under the
#     propagated mount), removes them, disables and removes the plugin on
#     vfs: no mounts or processes left;
#  7. docker rm/rmi leave no mounts, nydusd or userspace overlay processes
#     or layer dirs.
# E2E_CONTAINER_LAYER=kernel|userspace|auto runs the whole suite with
# that container-layer mode (default kernel). E2E_PLUGIN_HOME=bindfs puts
# the driver home on a bindfs (FUSE passthrough) mount, which kernel
# overlayfs refuses as upper dir ("upper fs missing required features":
# a FUSE upper needs RENAME_WHITEOUT, which bindfs lacks); the suite
# checks that refusal first, then runs with E2E_CONTAINER_LAYER=auto or
# userspace. Every container root the plugin mounts (each mount of a
# read-write layer's merged dir, seen by findmnt --poll) must be
# fuse.nydus-overlay in userspace mode and in auto mode on bindfs,
# overlay in kernel mode and in auto mode on an ordinary home.
# E2E_USERNS=1 runs all of it (registry, plugin, nydusd, bindfs, dockerd
# --rootless, its containerd and containers) as root of a user namespace
# (ids 0-65535 -> 100000-165535) with its own mount and network
# namespaces (scripts/userns-enter.sh), as in a rootless or unprivileged
# system container: there kernel overlayfs mounts on an ordinary home
# (Linux >= 5.11) and is refused on the bindfs home, so auto mode is
# checked both ways.
# E2E_DOCKER_STEPS="main modes failover managed" (the default) chooses
# the steps after the pull of the nydus image: main is 3-5 and 6, modes
# is 5b, failover is 6b, managed is 6c; 1, 2 and 7 always run. modes
# needs an ordinary home.
set -euo pipefail
cd "$(dirname "$0")/.."
bin="${BIN:-$PWD/bin}"
GO="${GO:-go}"
steps=" ${E2E_DOCKER_STEPS:-main modes failover managed} "
want() { case "$steps" in *" $1 "*) return 0 ;; esac; return 1; }
name="${NYDUS_PLUGIN_NAME:-nydus}"
case "$name" in "" | */* | *[!A-Za-z0-9._-]*) echo "E2E FAILED: NYDUS_PLUGIN_NAME=$name: want a plugin name ([A-Za-z0-9._-])" >&2; exit 1 ;; esac
sock_path="/run/docker/plugins/$name.sock"

if [ "$(id -u)" != 0 ] || [ ! -e /dev/fuse ]; then
  echo "docker e2e needs root and /dev/fuse; skipping"; exit 0
fi
for c in dockerd docker docker-registry busybox; do
  command -v "$c" >/dev/null || { echo "E2E FAILED: $c is not installed (apt-get install docker.io docker-registry busybox-static)" >&2; exit 1; }
done

# E2E_USERNS=1: the whole suite (registry, plugin, nydusd, dockerd
# --rootless, containers) runs as root of a user namespace with a mount
# namespace of its own (scripts/userns-enter.sh). Run as real root, this
# stage builds what the suite would build with go (no go cache in there)
# and serves drop_caches (not writable in there) through two fifos.
userns="${E2E_USERNS:-}"
if [ -n "$userns" ] && [ -z "${NYDUS_E2E_IN_USERNS:-}" ]; then
  outer="$(mktemp -d /tmp/ndk-outer.XXXXXX)"
  chmod 755 "$outer"
  trap 'kill "${drop_pid:-}" 2>/dev/null; rm -rf "$outer"' EXIT
  CGO_ENABLED=0 "$GO" build -trimpath -ldflags "-X main.version=e2e-upgraded" -o "$outer/nydusd-upgraded" ./cmd/nydusd
  mkfifo -m 622 "$outer/drop" && mkfifo -m 644 "$outer/dropped"
  while :; do
    read -r _ <"$outer/drop" || break
    sync; echo 1 >/proc/sys/vm/drop_caches
    echo done >"$outer/dropped"
  done &
  drop_pid=$!
  mkdir -p /etc/docker # dockerd's key.json dir, a tmpfs in the namespace
  set +e
  NYDUS_E2E_IN_USERNS=1 E2E_NYDUSD_UPGRADED="$outer/nydusd-upgraded" E2E_DROP_FIFOS="$outer/drop $outer/dropped" \
    bash scripts/userns-enter.sh bash scripts/e2e-docker.sh
  rc=$?
  exit "$rc"
fi
dockerd_opts=()
if [ -n "${NYDUS_E2E_IN_USERNS:-}" ]; then
  read -r _ outside_id _ </proc/self/uid_map
  [ "$outside_id" != 0 ] || { echo "E2E FAILED: E2E_USERNS=1 but root here is the host's root (uid_map: $(cat /proc/self/uid_map))" >&2; exit 1; }
  echo "in a user namespace: root here is uid $outside_id outside"
  # /run (plugin sockets, containerd's shim sockets) and /etc/docker
  # (dockerd's key.json) of the host belong to the host's root.
  mount -t tmpfs -o mode=755 tmpfs /run && mkdir -p /run/docker/plugins
  mount -t tmpfs -o mode=755 tmpfs /etc/docker
  # Rootless mode: no cgroup path for containers on cgroup v1, whose
  # hierarchies belong to the host's root.
  dockerd_opts+=(--rootless)
fi
# drop_caches: the kernel's clean caches, so that reads go to the daemon.
drop_caches() {
  if [ -n "${E2E_DROP_FIFOS:-}" ]; then
    local f=($E2E_DROP_FIFOS)
    timeout 30 bash -c 'echo drop >"$1" && read -r _ <"$2"' _ "${f[0]}" "${f[1]}" || fail "drop_caches through $E2E_DROP_FIFOS"
  else
    sync; echo 1 >/proc/sys/vm/drop_caches
  fi
}

work="$(mktemp -d /tmp/ndk.XXXXXX)" # short: overlay mount data holds every layer path
[ -z "${NYDUS_E2E_IN_USERNS:-}" ] || export DOCKER_CONFIG="$work/docker-cli"
root="$work/root"
home="$root/$name"
run_dir="$work/run" # the plugin's --runtime-dir
pids=()
plugin_mode="${E2E_CONTAINER_LAYER:-kernel}"
home_fs="${E2E_PLUGIN_HOME:-}"
bindfs_pid=""
home_mounts=0 # mounts under the data root that are not the plugin's (bindfs)
# want_root: the file system of every container root in this run.
case "$plugin_mode/$home_fs" in
  kernel/ | auto/) want_root=overlay ;;
  userspace/ | userspace/bindfs | auto/bindfs) want_root=fuse.nydus-overlay; home_mounts=${home_fs:+1} ;;
  *) echo "E2E FAILED: E2E_CONTAINER_LAYER=$plugin_mode E2E_PLUGIN_HOME=$home_fs: want kernel, userspace or auto, and a home of '' or bindfs (with userspace or auto)" >&2; exit 1 ;;
esac
home_mounts="${home_mounts:-0}"
if [ -n "$home_fs" ] && want modes; then
  echo "E2E_PLUGIN_HOME=$home_fs: step modes (5b) runs kernel mode, which this home refuses; skipping it"
  steps="${steps/ modes / }"
fi
if [ -n "${NYDUS_E2E_IN_USERNS:-}" ] && want managed; then
  echo "E2E_USERNS=1: step managed (6c) has not been made to run in a user namespace; skipping it"
  steps="${steps/ managed / }"
fi
plugin_pid=""
dockerd_pid=""
D() { timeout 120 docker -H "unix://$work/docker.sock" "$@"; }
step() { printf '\n== %s\n' "$*"; }
fail() {
  echo "E2E FAILED: $*" >&2
  echo "--- plugin log (tail)"; tail -20 "$work/plugin.log" 2>/dev/null || true
  echo "--- dockerd log (tail)"; tail -20 "$work/dockerd.log" 2>/dev/null || true
  echo "--- registry log (tail)"; tail -5 "$work/registry.log" 2>/dev/null || true
  exit 1
}
stop_dockerd() {
  [ -n "$dockerd_pid" ] || return 0
  kill -TERM "$dockerd_pid" 2>/dev/null || true
  for _ in $(seq 200); do kill -0 "$dockerd_pid" 2>/dev/null || break; sleep 0.1; done
  dockerd_pid=""
}
# The managed step's dockerd (its own data root, exec root and socket).
mdockerd_pid=""
mname=""
stop_mdockerd() {
  [ -n "$mdockerd_pid" ] || return 0
  kill -TERM "$mdockerd_pid" 2>/dev/null || true
  for _ in $(seq 300); do kill -0 "$mdockerd_pid" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$mdockerd_pid" 2>/dev/null && kill -KILL "$mdockerd_pid" 2>/dev/null
  mdockerd_pid=""
}
stop_plugin() {
  [ -n "$plugin_pid" ] || return 0
  kill -TERM "$plugin_pid" 2>/dev/null || true
  wait "$plugin_pid" 2>/dev/null || true
  plugin_pid=""
}
cleanup() {
  set +e
  if [ -n "$dockerd_pid" ]; then
    D ps -aq | xargs -r timeout 60 docker -H "unix://$work/docker.sock" rm -f >/dev/null 2>&1
  fi
  stop_dockerd
  if [ -n "$mdockerd_pid" ]; then
    timeout 60 docker -H "unix://$work/mdocker.sock" ps -aq | xargs -r timeout 60 docker -H "unix://$work/mdocker.sock" rm -f >/dev/null 2>&1
  fi
  stop_mdockerd
  [ -n "$mname" ] && pkill -f -- "/var/lib/docker/$mname/" 2>/dev/null # the managed plugin's nydusd
  pkill -f -- "$work/mexec/" 2>/dev/null # its dockerd's containerd and shims
  stop_plugin
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  pkill -f -- "--mountpoint $home/" 2>/dev/null
  pkill -f -- "userspace-overlay $home/" 2>/dev/null
  grep -o " $work[^ ]*" /proc/self/mountinfo | sort -r | while read -r m; do umount -l "$m" 2>/dev/null; done
  if [ -n "$bindfs_pid" ]; then
    kill "$bindfs_pid" 2>/dev/null
    for _ in $(seq 100); do kill -0 "$bindfs_pid" 2>/dev/null || break; sleep 0.1; done
  fi
  rm -rf "$work"
}
trap cleanup EXIT

start_plugin() {
  "$bin/docker-nydus-graphdriver" --socket "$sock_path" --nydusd "$bin/nydusd" --runtime-dir "$run_dir" \
    --state-file "$work/plugin-state.json" --nydusd-config "$work/nydusd-base.json" --log-level info \
    --container-layer "$plugin_mode" \
    >>"$work/plugin.log" 2>&1 &
  plugin_pid=$!
  for _ in $(seq 100); do [ -S "$sock_path" ] && return 0; sleep 0.05; done
  fail "plugin socket did not appear"
}
start_dockerd() {
  dockerd --experimental --storage-driver "$name" --data-root "$root" --exec-root "$work/exec" \
    -H "unix://$work/docker.sock" --pidfile "$work/docker.pid" --iptables=false --bridge=none ${dockerd_opts[@]+"${dockerd_opts[@]}"} \
    >>"$work/dockerd.log" 2>&1 &
  dockerd_pid=$!
  for _ in $(seq 300); do D info >/dev/null 2>&1 && break; sleep 0.1; done
  # grep reads all of it: with -q, docker info could die of SIGPIPE under pipefail
  D info 2>/dev/null | grep -x " *Storage Driver: $name" >/dev/null || fail "dockerd did not start with the $name storage driver"
}

# listing DIR: a container tree's metadata, one line a file.
listing() { (cd "$1" && find . \( -path ./proc -o -path ./sys -o -path ./dev -o -name .dockerenv -o -path ./etc/hostname -o -path ./etc/hosts -o -path ./etc/resolv.conf -o -path ./etc/mtab \) -prune -o -printf '%p %y %m %U:%G %s %n %l\n' | sort); }
# root_fstype CONTAINER: the file system of a running container's root.
root_fstype() {
  findmnt -n -o FSTYPE --mountpoint "$(D inspect --format '{{.GraphDriver.Data.MergedDir}}' "$1")"
}
# check_roots WHAT: every container root mounted since the last check
# (a read-write layer's merged dir: userspace mounts, and overlay mounts
# with an upper dir; a nydus layer's own view is a read-only overlay) is
# $want_root; there was at least one.
check_roots() {
  local n bad
  sleep 0.3 # findmnt --poll sees the last mounts
  tail -n +"$((roots_from + 1))" "$work/mounts.log" >"$work/mounts.window"
  roots_from="$(wc -l <"$work/mounts.log")"
  read -r n bad < <(awk -v h="$home/" -v want="$want_root" '
    $1 == "mount" && index($2, h) == 1 && $2 ~ /\/merged$/ {
      if ($3 == "overlay" && $4 !~ /(^|,)upperdir=/) next
      n++; if ($3 != want) { bad++; print $3 " " $2 >"/dev/stderr" } }
    END { print n + 0, bad + 0 }' "$work/mounts.window")
  [ "$bad" = 0 ] || fail "$1: $bad of $n container roots are not $want_root (list above)"
  [ "$n" -gt 0 ] || fail "$1: no container root mount seen"
  echo "$1: $n container roots mounted, all $want_root"
}
# skip_roots: mounts until now are not checked (a step that sets modes itself).
skip_roots() { sleep 0.3; roots_from="$(wc -l <"$work/mounts.log")"; }

step "docker-registry on loopback"
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
reg="127.0.0.1:$port"
cat >"$work/registry.yml" <<YML
version: 0.1
log:
  level: info
storage:
  filesystem:
    rootdirectory: $work/registry-data
  delete:
    enabled: true
http:
  addr: $reg
YML
docker-registry serve "$work/registry.yml" >"$work/registry.log" 2>&1 &
regpid=$!; pids+=("$regpid")
for _ in $(seq 100); do curl -fsS "http://$reg/v2/" >/dev/null 2>&1 && break; sleep 0.1; done

# Credentials, cache and validation settings come from the plugin's
# nydusd config; the registry and repository from each image.
cat >"$work/nydusd-base.json" <<JSON
{"device":{"backend":{"type":"registry","config":{"timeout":5,"connect_timeout":5,"retry_limit":1}},"cache":{"type":"blobcache"}},
 "mode":"direct","digest_validate":true,"enable_xattr":true}
JSON

step "plugin and dockerd --experimental --storage-driver $name, container layer $plugin_mode${home_fs:+, home on $home_fs}"
[ -S "$sock_path" ] && fail "$sock_path exists: another plugin named $name is running (set NYDUS_PLUGIN_NAME)"
if [ "$home_fs" = bindfs ]; then
  command -v bindfs >/dev/null || fail "bindfs is not installed (apt-get install bindfs)"
  # dockerd binds a data root that is not on a shared mount over itself,
  # which would hide a mount made inside it first; on a shared mount (as
  # under systemd) it leaves it alone.
  mkdir -p "$root" "$work/home-src"
  mount --bind "$root" "$root" && mount --make-shared "$root" || fail "cannot make $root a shared mount"
  mkdir -p "$home"
  # No attribute cache: bindfs shows each name of a hard-linked file as
  # its own FUSE inode, whose cached link count goes stale.
  bindfs -f -o attr_timeout=0,entry_timeout=0 "$work/home-src" "$home" >"$work/bindfs.log" 2>&1 &
  bindfs_pid=$!
  for _ in $(seq 100); do mountpoint -q "$home" && break; sleep 0.05; done
  mountpoint -q "$home" || fail "bindfs did not mount $home: $(cat "$work/bindfs.log")"
  # The refusal auto mode must meet: kernel overlayfs with its upper dir
  # on this home.
  mkdir -p "$home/probe/l" "$home/probe/u" "$home/probe/w" "$home/probe/m"
  if mount -t overlay overlay -o "lowerdir=$home/probe/l,upperdir=$home/probe/u,workdir=$home/probe/w" "$home/probe/m" 2>"$work/probe.err"; then
    umount "$home/probe/m"
    fail "this kernel mounts overlayfs with its upper dir on bindfs ($(findmnt -n -o FSTYPE "$home")): no refusal for auto mode to meet"
  fi
  why="$(dmesg 2>/dev/null | grep -o 'overlayfs: upper fs.*' | tail -2 | paste -sd';' -)" || why="" # no dmesg in a user namespace
  echo "home on bindfs ($(findmnt -n -o FSTYPE "$home")): kernel overlayfs refuses it as upper dir: ${why:-$(tr '\n' ' ' <"$work/probe.err")}"
  rm -rf "$home/probe"
fi
# Every mount and unmount in this mount namespace, for check_roots.
stdbuf -oL findmnt --poll --raw -n -o ACTION,TARGET,FSTYPE,FS-OPTIONS >"$work/mounts.log" 2>&1 &
pids+=("$!")
roots_from=0
sleep 0.2
start_plugin
start_dockerd
D info | grep -A4 'Storage Driver'

step "an ordinary image: import, run, diff, commit, push"
rootfs="$work/rootfs"
mkdir -p "$rootfs"/{bin,tmp,etc,proc,sys,dev,data}
cp "$(command -v busybox)" "$rootfs/bin/"
for c in sh echo ls cat mkdir rm touch sleep env id true wc head md5sum; do ln -s busybox "$rootfs/bin/$c"; done
echo hello >"$rootfs/etc/greeting"
chmod 0640 "$rootfs/etc/greeting"
ln "$rootfs/etc/greeting" "$rootfs/etc/greeting.link"
head -c 48M /dev/urandom >"$rootfs/data/big"
big_md5="$(md5sum <"$rootfs/data/big" | cut -d' ' -f1)"
tar --numeric-owner -C "$rootfs" -cf "$work/rootfs.tar" .
D import -c 'CMD ["/bin/sh"]' -c 'ENV PATH=/bin' "$work/rootfs.tar" app:plain >/dev/null
[ "$(D run --rm --network none app:plain cat /etc/greeting)" = hello ] || fail "docker run of an ordinary image"
D run --name edit --network none app:plain sh -c 'echo x >/tmp/new; rm /etc/greeting.link' >/dev/null
D diff edit | tee "$work/diff.txt"
grep -qx 'A /tmp/new' "$work/diff.txt" && grep -qx 'D /etc/greeting.link' "$work/diff.txt" || fail "docker diff"
D commit edit app:edited >/dev/null
[ "$(D run --rm --network none app:edited sh -c 'cat /tmp/new; ls /etc/greeting.link 2>&1 | wc -l')" = "x
1" ] || fail "committed image does not carry the changes"
D rm edit >/dev/null
D tag app:plain "$reg/app:plain"
D push "$reg/app:plain" >/dev/null || fail "docker push"
echo "ordinary images work through the plugin"

step "nydusify: convert to the docker-runnable layout and check"
"$bin/nydusify" convert --log-level warn --source "$reg/app:plain" --target "$reg/app:nydus" --docker-runnable --work-dir "$work" \
  || fail "nydusify convert --docker-runnable"
"$bin/nydusify" check --log-level warn --source "$reg/app:plain" --target "$reg/app:nydus" --work-dir "$work" \
  || fail "nydusify check"
manifest="$(curl -fsS -H 'Accept: application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json' "http://$reg/v2/app/manifests/nydus")"
nlayers="$(python3 -c 'import json,sys; print(len(json.loads(sys.argv[1])["layers"]))' "$manifest")"
[ "$nlayers" = 1 ] || fail "docker-runnable manifest has $nlayers layers"
bootd="$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["layers"][0]["digest"])' "$manifest")"
blobs="$(python3 -c 'import json,sys; m=json.loads(sys.argv[1])["layers"][0]["annotations"]; print(" ".join(b["digest"] for b in json.loads(m["io.github.gonydus.nydus.blobs"])))' "$manifest")"
[ -n "$blobs" ] || fail "no data blobs annotated"
echo "bootstrap layer $bootd, data blobs $blobs"

step "docker pull fetches only the bootstrap layer"
mark="$(wc -l <"$work/registry.log")"
D pull "$reg/app:nydus" >/dev/null || fail "docker pull of the nydus image"
tail -n +"$((mark + 1))" "$work/registry.log" | grep -o '"GET /v2/app/blobs/sha256:[0-9a-f]*' | sort -u >"$work/pull-gets.txt" || true
cat "$work/pull-gets.txt"
grep -q "${bootd}" "$work/pull-gets.txt" || fail "the bootstrap layer was not fetched"
for b in $blobs; do grep -q "$b" "$work/pull-gets.txt" && fail "docker pull fetched data blob $b"; done
echo "pull fetched the bootstrap only"

if want main; then
step "docker run reads lazily"
[ "$(D run --rm --network none "$reg/app:nydus" cat /etc/greeting)" = hello ] || fail "docker run of the nydus image"
probe='ls -ln /etc /data /bin | grep -v -e hostname -e hosts -e resolv.conf -e mtab -e ^total; id; md5sum /etc/greeting'
D run --rm --network none "$reg/app:plain" sh -c "$probe" >"$work/plain.out"
D run --rm --network none "$reg/app:nydus" sh -c "$probe" >"$work/nydus.out"
diff "$work/plain.out" "$work/nydus.out" || fail "the nydus image prints something else than the original"
# fetched IMAGE: bytes the image's nydusd fetched from the registry.
fetched() {
  local boot api
  boot="$(D image inspect --format '{{.GraphDriver.Data.NydusBootstrap}}' "$1")"
  [ -f "$boot" ] || fail "$1 has no nydus bootstrap layer ($boot)"
  api="$(readlink -f "$(dirname "$boot")/api.sock")" # a short path under $run_dir
  curl -fsS --unix-socket "$api" http://unix/api/v1/metrics/backend | python3 -c 'import json,sys; print(json.load(sys.stdin)["read_amount_total"])'
}
fetched="$(fetched "$reg/app:nydus")"
echo "fetched $fetched bytes to run busybox and read small files (image holds a 48 MiB file)"
[ "$fetched" -gt 0 ] && [ "$fetched" -lt $((8 << 20)) ] || fail "fetched $fetched bytes: not lazy"
[ "$(D run --rm --network none "$reg/app:nydus" md5sum /data/big | cut -d' ' -f1)" = "$big_md5" ] || fail "big file content"

step "zran: an OCI-ref docker-runnable image runs from the original gzip layer"
"$bin/nydusify" convert --log-level warn --source "$reg/app:plain" --target "$reg/app:zran" --oci-ref --docker-runnable --work-dir "$work" \
  || fail "nydusify convert --oci-ref --docker-runnable"
"$bin/nydusify" check --log-level warn --source "$reg/app:plain" --target "$reg/app:zran" --work-dir "$work" || fail "nydusify check (oci-ref)"
gzlayer="$(curl -fsS -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' "http://$reg/v2/app/manifests/plain" \
  | python3 -c 'import json,sys; l=json.load(sys.stdin)["layers"]; print(l[0]["digest"], l[0]["size"])')"
gzsize="${gzlayer#* }"; gzlayer="${gzlayer% *}"
mark="$(wc -l <"$work/registry.log")"
D pull "$reg/app:zran" >/dev/null || fail "docker pull of the zran image"
grep -q "GET /v2/app/blobs/$gzlayer" <<<"$(tail -n +"$((mark + 1))" "$work/registry.log")" && fail "docker pull fetched the gzip layer"
D run --rm --network none "$reg/app:zran" sh -c "$probe" >"$work/zran.out"
diff "$work/plain.out" "$work/zran.out" || fail "the zran image prints something else than the original"
zfetched="$(fetched "$reg/app:zran")"
echo "zran: fetched $zfetched bytes (index and the ranges read) of a $gzsize-byte gzip layer"
[ "$zfetched" -gt 0 ] && [ "$zfetched" -lt $((gzsize / 4)) ] || fail "zran run fetched $zfetched of $gzsize bytes: not lazy"
[ "$(D run --rm --network none "$reg/app:zran" md5sum /data/big | cut -d' ' -f1)" = "$big_md5" ] || fail "zran: big file content"

step "docker save | docker load and a push to another repository keep the nydus image lazy"
boot_sha="$(curl -fsS "http://$reg/v2/app/blobs/$bootd" | gunzip | sha256sum | cut -d' ' -f1)"
D save "$reg/app:nydus" -o "$work/saved.tar" || fail "docker save of the nydus image"
mkdir -p "$work/saved"; tar -x -C "$work/saved" -f "$work/saved.tar"
saved_layer="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[0]["Layers"][0])' "$work/saved/manifest.json")"
saved_sha="$(sha256sum <"$work/saved/$saved_layer" | cut -d' ' -f1)"
echo "saved layer sha256:$saved_sha, registry bootstrap layer (uncompressed) sha256:$boot_sha, saved size $(stat -c %s "$work/saved.tar")"
[ "$saved_sha" = "$boot_sha" ] || fail "docker save: the nydus layer is not the original bootstrap layer"
D tag "$reg/app:nydus" "$reg/other:nydus"
D push "$reg/other:nydus" >/dev/null || fail "docker push of the nydus image to another repository"
pushed_layer="$(curl -fsS -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' "http://$reg/v2/other/manifests/nydus" \
  | python3 -c 'import json,sys; l=json.load(sys.stdin)["layers"]; print(len(l), l[0]["digest"])')"
[ "${pushed_layer%% *}" = 1 ] || fail "pushed manifest has ${pushed_layer%% *} layers"
pushed_sha="$(curl -fsS "http://$reg/v2/other/blobs/${pushed_layer#* }" | gunzip | sha256sum | cut -d' ' -f1)"
[ "$pushed_sha" = "$boot_sha" ] || fail "pushed layer uncompresses to sha256:$pushed_sha, not the bootstrap layer"
D rmi "$reg/app:nydus" "$reg/other:nydus" >/dev/null
D image inspect "$reg/app:nydus" >/dev/null 2>&1 && fail "image still present after rmi"
D load -i "$work/saved.tar" >/dev/null || fail "docker load of the saved nydus image"
[ "$(D run --rm --network none "$reg/app:nydus" cat /etc/greeting)" = hello ] || fail "run after docker load"
lfetched="$(fetched "$reg/app:nydus")"
echo "after docker load: fetched $lfetched bytes"
[ "$lfetched" -gt 0 ] && [ "$lfetched" -lt $((8 << 20)) ] || fail "after docker load fetched $lfetched bytes: not lazy"
D pull "$reg/other:nydus" >/dev/null || fail "docker pull of the pushed copy"
[ "$(D run --rm --network none "$reg/other:nydus" md5sum /data/big | cut -d' ' -f1)" = "$big_md5" ] || fail "pulled copy: big file content"
echo "save/load and push/pull keep the bootstrap layer byte for byte and the image lazy"

step "docker export equals the source rootfs; commit and build FROM the nydus image"
D create --name ex "$reg/app:nydus" >/dev/null
mkdir -p "$work/exported"
D export ex | tar -x -C "$work/exported"
D rm ex >/dev/null
diff <(listing "$rootfs") <(listing "$work/exported") || fail "docker export differs from the source (metadata)"
diff -r --no-dereference -x proc -x sys -x dev -x .dockerenv -x hostname -x hosts -x resolv.conf -x mtab "$rootfs" "$work/exported" \
  || fail "docker export differs from the source (content)"
D run --name nedit --network none "$reg/app:nydus" sh -c 'echo y >/data/added; rm /etc/greeting' >/dev/null
D commit nedit app:nydus-edited >/dev/null
D rm nedit >/dev/null
[ "$(D run --rm --network none app:nydus-edited sh -c 'cat /data/added; cat /etc/greeting 2>&1 | wc -l; cat /etc/greeting.link')" = "y
1
hello" ] || fail "commit of a container of the nydus image"
mkdir -p "$work/build"
printf 'FROM %s\nRUN echo built >/built && rm /data/big\nCMD ["cat", "/built"]\n' "$reg/app:nydus" >"$work/build/Dockerfile"
DOCKER_BUILDKIT=0 D build -q -t app:built "$work/build" >/dev/null 2>"$work/build.err" || { cat "$work/build.err"; fail "classic docker build FROM the nydus image"; }
[ "$(D run --rm --network none app:built)" = built ] || fail "built image"
[ "$(D run --rm --network none app:built sh -c 'ls /data | wc -l')" = 0 ] || fail "built image still has /data/big"
echo "export, commit and build work"

step "containers survive a plugin restart and a dockerd restart"
D run -d --name long --network none "$reg/app:nydus" sleep 1000 >/dev/null
[ "$(root_fstype long)" = "$want_root" ] || fail "the container root is $(root_fstype long), want $want_root"
stop_plugin
start_plugin
[ "$(D exec long cat /etc/greeting)" = hello ] || fail "running container after a plugin restart"
[ "$(root_fstype long)" = "$want_root" ] || fail "after a plugin restart the container root is $(root_fstype long), want $want_root"
[ "$(D run --rm --network none "$reg/app:nydus" cat /etc/greeting.link)" = hello ] || fail "new container after a plugin restart"
stop_dockerd
start_dockerd
D start long >/dev/null || fail "docker start after a dockerd restart"
[ "$(D exec long cat /etc/greeting)" = hello ] || fail "container after a dockerd restart"
[ "$(root_fstype long)" = "$want_root" ] || fail "after a dockerd restart the container root is $(root_fstype long), want $want_root"
D rm -f long >/dev/null
echo "plugin and dockerd restarts keep containers runnable"
check_roots "steps 1-5"
fi # main

if want modes; then

step "container-layer modes: the same work in kernel, auto and userspace mode"
cl_work='echo x >/tmp/new; rm /etc/greeting.link; mkdir -p /data/d; echo z >/data/d/z; rm /bin/true; chmod 600 /etc/greeting; touch /etc/greeting; sleep 1000'
saved_mode="$plugin_mode"
for m in kernel auto userspace; do # userspace last: clr below is made in userspace mode
  stop_plugin; plugin_mode="$m"; start_plugin
  for img in app:plain "$reg/app:nydus"; do
    tag="$m-$(echo "$img" | tr -c 'a-z0-9\n' _)"
    D run -d --name cl --network none "$img" sh -c "$cl_work" >/dev/null
    for _ in $(seq 100); do D exec cl ls /data/d/z >/dev/null 2>&1 && break; sleep 0.1; done
    fst="$(root_fstype cl)"
    want=overlay; [ "$m" = userspace ] && want=fuse.nydus-overlay # auto: kernel overlayfs mounts on this home
    [ "$fst" = "$want" ] || fail "$m mode: container root of $img is $fst, want $want"
    D diff cl | sort >"$work/cl-diff-$tag.txt"
    D cp cl:/data/d/z - | tar -xO >"$work/cl-cp-$tag.txt"
    D stop -t 1 cl >/dev/null
    mkdir -p "$work/cl-export-$tag"
    D export cl | tar -x -C "$work/cl-export-$tag"
    listing "$work/cl-export-$tag" >"$work/cl-export-$tag.txt"
    D commit cl "cl:$tag" >/dev/null
    D rm cl >/dev/null
    D run --rm --network none "cl:$tag" sh -c 'cat /tmp/new /data/d/z; ls /bin/true /etc/greeting.link 2>&1 | wc -l; cat /etc/greeting' >"$work/cl-commit-$tag.txt"
    D rmi "cl:$tag" >/dev/null
  done
done
for img in app:plain "$reg/app:nydus"; do
  t="$(echo "$img" | tr -c 'a-z0-9\n' _)"
  for what in diff cp export commit; do
    for m in userspace auto; do
      diff "$work/cl-$what-kernel-$t.txt" "$work/cl-$what-$m-$t.txt" || fail "docker $what of $img differs between kernel and $m mode"
    done
  done
  echo "$img, docker diff in every mode:"; cat "$work/cl-diff-userspace-$t.txt"
done
grep -qx 'D /bin/true' "$work/cl-diff-userspace-app_plain.txt" || fail "userspace mode: docker diff lacks the deletion"
[ "$(cat "$work/cl-commit-userspace-app_plain.txt")" = "x
z
2
hello" ] || fail "userspace mode: commit lost changes: $(cat "$work/cl-commit-userspace-app_plain.txt")"
# A container made in userspace mode, the plugin restarted in kernel mode.
D run -d --name clr --network none "$reg/app:nydus" sh -c 'echo u >/tmp/u; sleep 1000' >/dev/null
for _ in $(seq 100); do D exec clr ls /tmp/u >/dev/null 2>&1 && break; sleep 0.1; done
stop_plugin; plugin_mode=kernel; start_plugin
[ "$(root_fstype clr)" = fuse.nydus-overlay ] || fail "the restarted plugin did not keep the userspace root"
[ "$(D exec clr cat /tmp/u /etc/greeting)" = "u
hello" ] || fail "userspace container after a plugin restart in kernel mode"
D exec clr sh -c 'echo k >/tmp/k'
D stop -t 1 clr >/dev/null
pgrep -f -- "userspace-overlay $home/" && fail "userspace overlay process left after docker stop"
D start clr >/dev/null
[ "$(root_fstype clr)" = overlay ] || fail "restarted container not on kernel overlayfs in kernel mode"
[ "$(D exec clr cat /tmp/u /tmp/k)" = "u
k" ] || fail "files written in userspace mode, read in kernel mode"
D rm -f clr >/dev/null
stop_plugin; plugin_mode="$saved_mode"; start_plugin
echo "kernel, userspace and auto container layers give the same diff, cp, export and commit"
skip_roots # this step set the modes itself and checked each root
fi # modes

if want failover; then
step "failover and live upgrade: a running container's reads and writes go on across kill -9 of its nydusd and an upgrade"
# The container reads 1 MiB slices of /data/big in turn (the page cache
# is dropped after each event, so reads reach nydusd) and logs each
# slice's md5 to its upper dir; a failed read logs ERR.
for i in $(seq 0 47); do
  dd if="$rootfs/data/big" bs=1M skip="$i" count=1 2>/dev/null | md5sum | cut -d' ' -f1
done >"$work/slices.md5"
D run -d --name fo --network none "$reg/app:nydus" sh -c \
  'i=0; while :; do s=$((i % 48)); m=$(busybox dd if=/data/big bs=1M skip=$s count=1 2>/dev/null | md5sum) || m=ERR; echo "$i $s ${m%% *}" >>/tmp/progress; i=$((i+1)); sleep 0.05; done' >/dev/null
[ "$(root_fstype fo)" = "$want_root" ] || fail "the container root is $(root_fstype fo), want $want_root"
boot="$(D image inspect --format '{{.GraphDriver.Data.NydusBootstrap}}' "$reg/app:nydus")"
api="$(readlink -f "$(dirname "$boot")/api.sock")"
ctl="${api%.sock}.ctl"
[ -S "$ctl" ] || fail "no keeper control socket $ctl beside the API socket $api: nydusd is not supervised"
nlog() { echo; tail -5 "$(dirname "$boot")/nydusd.log"; } # the layer's nydusd and keeper log
kstatus() { curl -fsS --max-time 30 --unix-socket "$ctl" http://keeper/status | python3 -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }
[ "$(kstatus state_bytes)" -gt 0 ] || fail "the keeper holds no state: nydusd did not hand over its FUSE descriptor (sendfd): $(nlog)"
progress() { D exec fo sh -c 'wc -l </tmp/progress'; }
# goes_on WHAT: the reader makes 20 more reads within 30 s, none failed,
# and every slice read so far has the right md5.
goes_on() {
  local n0 n
  n0="$(progress)" || fail "$1: docker exec failed"
  for _ in $(seq 300); do n="$(progress)"; [ "$n" -ge $((n0 + 20)) ] && break; sleep 0.1; done
  [ "$n" -ge $((n0 + 20)) ] || fail "$1: the container's reader is stuck ($n0 -> $n reads in 30 s): $(nlog)"
  D exec fo cat /tmp/progress >"$work/progress.txt"
  awk 'NR == FNR { want[NR - 1] = $1; next } $3 != want[$2] { print "read " $1 ": slice " $2 ": " $3 " want " want[$2]; bad = 1 }
    END { exit bad }' "$work/slices.md5" "$work/progress.txt" || fail "$1: wrong or failed reads"
  echo "$1: the reader went on ($n0 -> $n reads, all right)"
}
# writes WHAT: a write that copies a lower file up (reading it through
# nydusd) and a fresh file both land.
writes() {
  [ "$(D exec fo sh -c "echo $1 >>/etc/greeting; echo $1 >/tmp/$1; busybox tail -n 1 /etc/greeting; cat /tmp/$1")" = "$1
$1" ] || fail "$1: writes in the container"
}
for _ in $(seq 100); do [ "$(progress 2>/dev/null || echo 0)" -ge 60 ] && break; sleep 0.1; done
goes_on "before"
writes before

# took: how long the keeper's last failover took, from its log line.
took() { grep -h 'failover done' "$(dirname "$boot")/nydusd.log" | tail -1 | grep -o 'took=[^ ]*'; }
old="$(kstatus pid)"
kill -9 "$old"
for _ in $(seq 300); do [ "$(kstatus failovers 2>/dev/null)" = 1 ] && break; sleep 0.1; done
[ "$(kstatus failovers)" = 1 ] || fail "kill -9 nydusd $old: no failover within 30 s: $(nlog)"
drop_caches
new="$(kstatus pid)"
echo "kill -9 nydusd $old: nydusd $new took over (keeper: $(took), exit seen to RUNNING and state handed over)"
kill -0 "$new" || fail "the new nydusd $new does not run"
goes_on "after kill -9"
writes afterkill
[ "$(D exec fo md5sum /data/big | cut -d' ' -f1)" = "$big_md5" ] || fail "after kill -9: /data/big reads wrong"
[ "$(D inspect --format '{{.State.Running}} {{.RestartCount}}' fo)" = "true 0" ] || fail "the container did not keep running"

step "live upgrade: docker-nydus-graphdriver upgrade --nydusd (another build)"
if [ -n "${E2E_NYDUSD_UPGRADED:-}" ]; then
  cp "$E2E_NYDUSD_UPGRADED" "$work/nydusd-upgraded" || fail "copy the second nydusd"
else
  CGO_ENABLED=0 "$GO" build -trimpath -ldflags "-X main.version=e2e-upgraded" -o "$work/nydusd-upgraded" ./cmd/nydusd || fail "build the second nydusd"
fi
"$bin/docker-nydus-graphdriver" upgrade --runtime-dir "$run_dir" --nydusd "$work/nydusd-upgraded" | tee "$work/upgrade.out" || fail "docker-nydus-graphdriver upgrade: $(nlog)"
drop_caches
[ "$(kstatus nydusd)" = "$work/nydusd-upgraded" ] || fail "the keeper reports $(kstatus nydusd), not the upgraded binary"
up="$(kstatus pid)"
[ "$up" != "$new" ] || fail "upgrade: the same nydusd ($new) still serves"
kill -0 "$new" 2>/dev/null && fail "upgrade: the old nydusd $new still runs"
[ "$(readlink "/proc/$up/exe")" = "$work/nydusd-upgraded" ] || fail "upgrade: pid $up is not the upgraded binary"
ver="$(curl -fsS --unix-socket "$api" http://unix/api/v1/daemon | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["version"]["git_commit"], d["state"])')"
[ "$ver" = "e2e-upgraded RUNNING" ] || fail "upgrade: the API socket answers '$ver'"
echo "upgraded: nydusd $new -> $up ($ver)"
goes_on "after the upgrade"
writes afterupgrade

old="$up"
kill -9 "$old"
for _ in $(seq 300); do [ "$(kstatus failovers 2>/dev/null)" = 2 ] && break; sleep 0.1; done
[ "$(kstatus failovers)" = 2 ] || fail "kill -9 of the upgraded nydusd $old: no failover within 30 s: $(nlog)"
echo "kill -9 of the upgraded nydusd $old: nydusd $(kstatus pid) took over (keeper: $(took))"
drop_caches
[ "$(readlink "/proc/$(kstatus pid)/exe")" = "$work/nydusd-upgraded" ] || fail "failover after the upgrade went back to the old binary"
goes_on "after kill -9 of the upgraded nydusd"
[ "$(D exec fo sh -c 'cat /etc/greeting /tmp/before /tmp/afterkill /tmp/afterupgrade')" = "hello
before
afterkill
afterupgrade
before
afterkill
afterupgrade" ] || fail "the container's files after failover and upgrade"
D rm -f fo >/dev/null
echo "failover and live upgrade: the container ran on, every read right"
check_roots "failover"
fi # failover

if want managed; then
step "managed plugin: build-plugin.sh (docker plugin create), enable, dockerd --storage-driver <plugin>, container layer $plugin_mode"
# A dockerd of its own (data root, exec root, socket) creates and enables
# the v2 plugin on vfs, then restarts on it; the plugin runs in its own
# container (host network: the registry is on loopback), with its home
# under the propagated mount <data-root>/plugins/<id>/propagated-mount.
m_t0="$EPOCHREALTIME"
# The plugin's container layer is the run's (its home is ordinary: auto mounts overlayfs).
m_want=overlay; [ "$plugin_mode" = userspace ] && m_want=fuse.nydus-overlay
mname="gonydus/$(printf %s "$name" | tr A-Z a-z | tr -c 'a-z0-9\n' - | sed 's/^-*//; s/-*$//')-managed-$$:e2e" # a tagged reference, as build-plugin.sh's default
mroot="$work/mroot"
mlog="$work/mdockerd.log"
DM() { timeout 120 docker -H "unix://$work/mdocker.sock" "$@"; }
mfail() { echo "--- managed dockerd log (tail, with the plugin's output)"; tail -30 "$mlog" 2>/dev/null; fail "managed plugin: $*"; }
start_mdockerd() {
  dockerd "$@" --data-root "$mroot" --exec-root "$work/mexec" -H "unix://$work/mdocker.sock" --pidfile "$work/mdocker.pid" \
    --iptables=false --bridge=none >>"$mlog" 2>&1 &
  mdockerd_pid=$!
  for _ in $(seq 600); do DM info >/dev/null 2>&1 && return 0; kill -0 "$mdockerd_pid" 2>/dev/null || break; sleep 0.1; done
  mfail "dockerd $* did not start"
}
start_mdockerd --storage-driver vfs
DOCKER_HOST="unix://$work/mdocker.sock" BIN="$bin" timeout 300 bash examples/docker-graphdriver/build-plugin.sh "$mname" >/dev/null \
  || mfail "build-plugin.sh $mname"
# The settings: the container-layer mode and more flags (appended to the entrypoint).
DM plugin set "$mname" CONTAINER_LAYER="$plugin_mode" args="--insecure-registry $reg --log-level info" || mfail "docker plugin set"
DM plugin enable --timeout 60 "$mname" >/dev/null || mfail "docker plugin enable"
plugin_id="$(DM plugin inspect --format '{{.Id}}' "$mname")"
[ "$(DM plugin inspect --format '{{.Enabled}} {{.Config.Interface.Types}} {{.Config.Network.Type}} {{.Config.PropagatedMount}}' "$mname")" = \
  "true [docker.graphdriver/1.0] host /var/lib/docker" ] || mfail "plugin inspect: $(DM plugin inspect "$mname")"
stop_mdockerd
start_mdockerd --experimental --storage-driver "$mname"
DM info 2>/dev/null | grep -x " *Storage Driver: $mname" >/dev/null || mfail "dockerd did not start with the $mname storage driver"
echo "dockerd runs on the managed plugin $mname (id ${plugin_id:0:12})"
pgrep -f -- "^/docker-nydus-graphdriver --socket /run/docker/plugins/nydus.sock .* --insecure-registry $reg --log-level info\$" >/dev/null \
  || mfail "the plugin's process lacks its args setting: $(pgrep -af -- '^/docker-nydus-graphdriver ')"
prop="$mroot/plugins/$plugin_id/propagated-mount"
# hostpath P: where the host sees the plugin's path P (under its propagated mount).
hostpath() { case "$1" in /var/lib/docker/*) echo "$prop/${1#/var/lib/docker/}" ;; *) echo "$mroot/plugins/$plugin_id/rootfs$1" ;; esac; }
# (a mount in the plugin's container shows up once for each peer of the
# shared propagated mount on the host)
mroot_fstype() { findmnt -n -o FSTYPE --mountpoint "$(hostpath "$(DM inspect --format '{{.GraphDriver.Data.MergedDir}}' "$1")")" | sort -u | paste -sd' ' -; }

DM pull "$reg/app:plain" >/dev/null || mfail "docker pull of the ordinary image"
[ "$(DM run --rm --network none "$reg/app:plain" cat /etc/greeting)" = hello ] || mfail "docker run of an ordinary image"
DM run -d --name mplain --network none "$reg/app:plain" sleep 1000 >/dev/null || mfail "docker run -d of an ordinary image"
[ "$(mroot_fstype mplain)" = "$m_want" ] || mfail "the ordinary container's root is '$(mroot_fstype mplain)', want $m_want"
DM rm -f mplain >/dev/null

mark="$(wc -l <"$work/registry.log")"
DM pull "$reg/app:nydus" >/dev/null || mfail "docker pull of the nydus image"
tail -n +"$((mark + 1))" "$work/registry.log" | grep -o '"GET /v2/app/blobs/sha256:[0-9a-f]*' | sort -u >"$work/mpull-gets.txt" || true
for b in $blobs; do grep -q "$b" "$work/mpull-gets.txt" && mfail "docker pull fetched data blob $b"; done
DM run -d --name mnydus --network none "$reg/app:nydus" sleep 1000 >/dev/null || mfail "docker run -d of the nydus image: $(DM logs mnydus 2>&1 | tail -3)"
[ "$(DM exec mnydus cat /etc/greeting)" = hello ] || mfail "reading the nydus image in a container"
[ "$(mroot_fstype mnydus)" = "$m_want" ] || mfail "the nydus container's root is '$(mroot_fstype mnydus)', want $m_want"
# The image's nydus mount: nydusd, started by the plugin in its container,
# serves a FUSE mount the host sees under the propagated mount.
mboot="$(DM image inspect --format '{{.GraphDriver.Data.NydusBootstrap}}' "$reg/app:nydus")"
[ -f "$(hostpath "$mboot")" ] || mfail "no nydus bootstrap at $mboot (host $(hostpath "$mboot"))"
nmounts="$(findmnt -rn -o TARGET,FSTYPE | awk -v p="$prop/$mname/" 'index($1, p) == 1 && $2 ~ /^fuse/' | tee "$work/mfuse.txt" | wc -l)"
[ "$nmounts" -ge 1 ] || mfail "no FUSE (nydusd) mount under the plugin's home $prop/$mname"
echo "nydus mounts: $(cat "$work/mfuse.txt" | paste -sd';' -)"
npid="$(pgrep -f -- "--mountpoint /var/lib/docker/$mname/" | head -1)"
[ -n "$npid" ] || mfail "no nydusd process of the plugin"
[ "$(readlink "/proc/$npid/ns/mnt")" != "$(readlink /proc/self/ns/mnt)" ] || mfail "nydusd $npid runs in the host's mount namespace, not the plugin's"
mapi="$(hostpath "$(readlink "$(hostpath "$(dirname "$mboot")")/api.sock")")"
# (relative: the host path is longer than a socket address)
mfetched="$(cd "$(dirname "$mapi")" && curl -fsS --max-time 30 --unix-socket "./$(basename "$mapi")" http://unix/api/v1/metrics/backend | python3 -c 'import json,sys; print(json.load(sys.stdin)["read_amount_total"])')" \
  || mfail "nydusd API $mapi"
echo "nydusd $npid (in the plugin's container) fetched $mfetched bytes to start busybox and read /etc/greeting (the image holds 48 MiB)"
[ "$mfetched" -gt 0 ] && [ "$mfetched" -lt $((8 << 20)) ] || mfail "fetched $mfetched bytes: not lazy"
[ "$(DM exec mnydus md5sum /data/big | cut -d' ' -f1)" = "$big_md5" ] || mfail "big file content"
DM rm -f mnydus >/dev/null
DM images -q | sort -u | xargs -r timeout 60 docker -H "unix://$work/mdocker.sock" rmi -f >/dev/null || mfail "docker rmi"
[ -z "$(DM images -aq)" ] || mfail "images left after rmi: $(DM images -a)"
pgrep -f -- "--mountpoint /var/lib/docker/$mname/" && mfail "nydusd processes left after rmi"
n="$(grep -c " $prop/" /proc/self/mountinfo || true)"
[ "$n" = 0 ] || { grep " $prop/" /proc/self/mountinfo; mfail "$n mounts under the plugin's home after rm and rmi"; }
# Disable and remove: on a dockerd that does not use the plugin.
stop_mdockerd
start_mdockerd --storage-driver vfs
DM plugin disable "$mname" >/dev/null || mfail "docker plugin disable"
DM plugin rm "$mname" >/dev/null || mfail "docker plugin rm"
[ -z "$(DM plugin ls -q)" ] || mfail "plugins left: $(DM plugin ls)"
[ -e "/run/docker/plugins/$plugin_id" ] && mfail "the plugin's socket dir /run/docker/plugins/$plugin_id is left"
stop_mdockerd
pgrep -f -- "/var/lib/docker/$mname/" && mfail "plugin processes left"
pgrep -f -- "$work/mexec/" && mfail "containerd or shim processes of the managed dockerd left"
n="$(grep -c " $mroot" /proc/self/mountinfo || true)"
[ "$n" = 0 ] || { grep " $mroot" /proc/self/mountinfo; mfail "$n mounts under the managed dockerd's data root left"; }
echo "managed plugin: created, enabled, ran an ordinary and a nydus image (lazily), disabled and removed, nothing left ($(awk -v a="$m_t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }') s)"
fi # managed

no_stuck_mounts() {
  local n
  n="$(grep -c " $root/" /proc/self/mountinfo || true)"
  [ "$n" -le "$1" ] || { grep " $root/" /proc/self/mountinfo; fail "$2: $n mounts under the data root"; }
}

if want main; then

step "bad input fails clearly"
mkdir -p "$work/bad/image"
head -c 8192 /dev/urandom >"$work/bad/image/image.boot"
tar -C "$work/bad" -cf "$work/bad.tar" image
if D import "$work/bad.tar" bad:1 >/dev/null 2>"$work/bad.err"; then fail "a corrupt bootstrap layer was accepted"; fi
cat "$work/bad.err"
grep -q 'not a valid RAFS v6 image' "$work/bad.err" || fail "corrupt bootstrap: unclear error"
# A missing blob: an image whose only blob is deleted from the registry.
echo gone >"$rootfs/etc/gone"
tar --numeric-owner -C "$rootfs" -cf "$work/gone.tar" .
D import -c 'ENV PATH=/bin' "$work/gone.tar" "$reg/app:gone-src" >/dev/null
D push "$reg/app:gone-src" >/dev/null
"$bin/nydusify" convert --log-level warn --source "$reg/app:gone-src" --target "$reg/app:gone" --docker-runnable --work-dir "$work" >/dev/null
D pull "$reg/app:gone" >/dev/null
gone_blobs="$(curl -fsS -H 'Accept: application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json' "http://$reg/v2/app/manifests/gone" \
  | python3 -c 'import json,sys; m=json.load(sys.stdin)["layers"][0]["annotations"]; print(" ".join(b["digest"] for b in json.loads(m["io.github.gonydus.nydus.blobs"])))')"
for b in $gone_blobs; do curl -fsS -X DELETE "http://$reg/v2/app/blobs/$b" >/dev/null || fail "cannot delete blob $b"; done
mounts_before="$(grep -c " $root/" /proc/self/mountinfo || true)"
if D run --name gone --network none "$reg/app:gone" cat /etc/gone >"$work/gone.out" 2>&1; then fail "a run with a missing blob succeeded"; fi
cat "$work/gone.out"
grep -qiE 'input/output error|I/O error' "$work/gone.out" || fail "missing blob: unclear error"
D rm -f gone >/dev/null 2>&1 || true
no_stuck_mounts "$((mounts_before + 1))" "after a missing blob" # the image's own nydusd mount may stay until rmi
# An unreachable registry: stop it, then run an image whose data was never fetched.
echo unreachable >"$rootfs/etc/unreachable"
tar --numeric-owner -C "$rootfs" -cf "$work/unr.tar" .
D import -c 'ENV PATH=/bin' "$work/unr.tar" "$reg/app:unr-src" >/dev/null
D push "$reg/app:unr-src" >/dev/null
"$bin/nydusify" convert --log-level warn --source "$reg/app:unr-src" --target "$reg/app:unr" --docker-runnable --work-dir "$work" >/dev/null
D pull "$reg/app:unr" >/dev/null
kill "$regpid"; wait "$regpid" 2>/dev/null || true
if D run --name unr --network none "$reg/app:unr" cat /etc/unreachable >"$work/unr.out" 2>&1; then fail "a run with the registry down succeeded"; fi
cat "$work/unr.out"
grep -qiE 'input/output error|I/O error' "$work/unr.out" || fail "unreachable registry: unclear error"
D rm -f unr >/dev/null 2>&1 || true
echo "bad input gives clear errors"
check_roots "bad input"
fi # main

step "docker rm / rmi leave nothing behind"
D ps -aq | xargs -r timeout 60 docker -H "unix://$work/docker.sock" rm -f >/dev/null
for _ in 1 2 3 4 5; do # children before parents
  D images -aq | sort -u | xargs -r timeout 60 docker -H "unix://$work/docker.sock" rmi -f >/dev/null 2>&1 || true
done
[ -z "$(D images -aq)" ] || fail "images left after rmi: $(D images -a)"
no_stuck_mounts "$home_mounts" "after rm and rmi"
pgrep -f -- "--mountpoint $home/" && fail "nydusd processes left after rmi"
pgrep -f -- "userspace-overlay $home/" && fail "userspace overlay processes left after rmi"
left="$(ls "$home" | grep -v '^l$' || true)"
[ -z "$left" ] || fail "layer dirs left after rmi: $left"
[ -z "$(ls "$home/l")" ] || fail "short links left after rmi"
echo "no mounts, nydusd processes or layer dirs left"

step "docker e2e passed"
