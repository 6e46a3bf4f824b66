#!/usr/bin/env bash
# End-to-end suite (`make e2e`): real binaries against real components.
#  1. nydus-image builds an image from examples/demo-rootfs;
#  2. Debian's docker-registry is started on loopback and the blob pushed;
#  3. nydusd mounts the image lazily from the registry (FUSE), the tree is
#     compared with the source, and the HTTP API is queried;
#  4. nydusify converts an OCI image pushed to the registry (both layouts),
#     checks both, and nydusd mounts both lazily (the docker-runnable one
#     with the backend its bootstrap layer's image/backend.json names);
#  5. nydusd restarts over the same cache and serves everything without
#     touching the registry (it is stopped first);
#  6. the same image is exported to an EROFS block image and mounted by
#     the kernel; both mounts must match;
#  7. mount -t fuse.nydus-overlayfs (util-linux -> mount.fuse3 -> helper):
#     mode 1 (kernel overlayfs over the nydusd mount) and mode 2
#     (nydus.overlay=userspace: nydusd's writable overlay);
#  8. mode 2 failover and live upgrade: a writer, an open file and
#     copy-ups go on across kill -9 of nydusd (the helper's keeper hands
#     the FUSE connection to a new one) and `nydus-overlayfs upgrade`;
#     everything written is in the upper dir, which kernel overlayfs then
#     mounts and reads as its own.
# E2E_STEPS chooses: main is 4-7, failover is 8; 1-3 always run. The
# default is "main failover".
set -euo pipefail
cd "$(dirname "$0")/.."
bin="${BIN:-$PWD/bin}"
src="${1:-examples/demo-rootfs}"
GO="${GO:-go}"
steps=" ${E2E_STEPS:-main failover} "
want() { case "$steps" in *" $1 "*) return 0 ;; esac; return 1; }
work="$(mktemp -d /tmp/nydus-e2e.XXXXXX)"
pids=()
cleanup() {
  [ -e "$work/stop-writer" ] || touch "$work/stop-writer" 2>/dev/null || true
  # A failed takeover leaves callers blocked: end the connection first.
  if grep -q " $work/merged fuse" /proc/mounts 2>/dev/null; then
    mountpoint -q /sys/fs/fuse/connections || mount -t fusectl none /sys/fs/fuse/connections 2>/dev/null || true
    c="$(awk -v m="$work/merged" '$5 == m {split($3, d, ":"); print d[2]}' /proc/self/mountinfo | tail -1)"
    [ -n "$c" ] && echo 1 >"/sys/fs/fuse/connections/$c/abort" 2>/dev/null || true
  fi
  for m in "$work/merged" "$work/fuse" "$work/nfuse" "$work/erofs"; do mountpoint -q "$m" 2>/dev/null && umount -l "$m" || true; done
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
step() { printf '\n== %s\n' "$*"; }
fail() { echo "E2E FAILED: $*" >&2; exit 1; }

if [ "$(id -u)" != 0 ] || [ ! -e /dev/fuse ]; then
  echo "e2e needs root and /dev/fuse; skipping"; exit 0
fi
command -v docker-registry >/dev/null || fail "docker-registry is not installed (apt-get install docker-registry)"

step "build the image"
"$bin/nydus-image" create --log-level warn --features blob-toc --blob-dir "$work/blobs" \
  --bootstrap "$work/image.boot" --output-json "$work/out.json" "$src"
blob="$(ls "$work/blobs" | grep -E '^[0-9a-f]{64}$' | head -1)"
[ -n "$blob" ] || fail "no blob written"

step "start docker-registry on loopback and push the blob"
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
cat > "$work/registry.yml" <<YML
version: 0.1
log:
  level: error
storage:
  filesystem:
    rootdirectory: $work/registry-data
http:
  addr: 127.0.0.1:$port
YML
docker-registry serve "$work/registry.yml" >"$work/registry.log" 2>&1 &
regpid=$!; pids+=("$regpid")
for _ in $(seq 100); do curl -fsS "http://127.0.0.1:$port/v2/" >/dev/null 2>&1 && break; sleep 0.1; done
loc="$(curl -fsS -X POST -D - -o /dev/null "http://127.0.0.1:$port/v2/demo/blobs/uploads/" | tr -d '\r' | sed -n 's/^Location: //Ip')"
case "$loc" in http*) ;; *) loc="http://127.0.0.1:$port$loc";; esac
case "$loc" in *\?*) sep='&';; *) sep='?';; esac
curl -fsS -X PUT --data-binary "@$work/blobs/$blob" -H 'Content-Type: application/octet-stream' "$loc${sep}digest=sha256:$blob" >/dev/null
grep -q '200' <<<"$(curl -fsS -I "http://127.0.0.1:$port/v2/demo/blobs/sha256:$blob")" || fail "blob not in the registry"
echo "pushed $blob"

cat > "$work/nydusd.json" <<JSON
{"device":{"backend":{"type":"registry","config":{"scheme":"http","host":"127.0.0.1:$port","repo":"demo","timeout":5,"retry_limit":2}},
 "cache":{"type":"blobcache","config":{"work_dir":"$work/cache"}}},
 "mode":"direct","digest_validate":true,"enable_xattr":true,"iostats_files":true}
JSON
start_nydusd() {
  mkdir -p "$work/fuse"
  "$bin/nydusd" --config "$work/nydusd.json" --bootstrap "$work/image.boot" --mountpoint "$work/fuse" \
    --apisock "$work/api.sock" --log-level warn &
  nydusd_pid=$!; pids+=("$nydusd_pid")
  for _ in $(seq 100); do mountpoint -q "$work/fuse" && return 0; sleep 0.1; done
  fail "nydusd did not mount"
}
stop_nydusd() { kill -TERM "$nydusd_pid"; wait "$nydusd_pid" || true; ! mountpoint -q "$work/fuse" || fail "still mounted after SIGTERM"; }

step "nydusd: lazy mount from the registry"
start_nydusd
diff -r --no-dereference "$src" "$work/fuse" || fail "FUSE mount differs from the source"
echo "mounted tree equals $src"
grep -q '"state":"RUNNING"' <<<"$(curl -fsS --unix-socket "$work/api.sock" http://unix/api/v1/daemon)" || fail "daemon not RUNNING"
curl -fsS --unix-socket "$work/api.sock" http://unix/api/v1/metrics/backend | tee "$work/backend.json"; echo
grep -q '"read_count":0,' "$work/backend.json" && fail "no registry reads recorded"
grep -q '^nydusd_up 1' <<<"$(curl -fsS --unix-socket "$work/api.sock" http://unix/metrics)" || fail "no Prometheus metrics"
[ "$(stat -c %a "$work/api.sock")" = 600 ] || fail "API socket is not 0600"
stop_nydusd

if want main; then
step "nydusify: OCI image in the registry -> Nydus image (both layouts) -> check -> lazy mount"
# blob_push REPO FILE: upload FILE as a blob of REPO, print its digest.
blob_push() {
  local d l s
  d="sha256:$(sha256sum "$2" | cut -d' ' -f1)"
  l="$(curl -fsS -X POST -D - -o /dev/null "http://127.0.0.1:$port/v2/$1/blobs/uploads/" | tr -d '\r' | sed -n 's/^Location: //Ip')"
  case "$l" in http*) ;; *) l="http://127.0.0.1:$port$l";; esac
  case "$l" in *\?*) s='&';; *) s='?';; esac
  curl -fsS -X PUT --data-binary "@$2" -H 'Content-Type: application/octet-stream' "$l${s}digest=$d" >/dev/null
  echo "$d"
}
tar --numeric-owner -C "$src" -cf "$work/oci-layer.tar" . && gzip -k "$work/oci-layer.tar"
diffid="sha256:$(sha256sum "$work/oci-layer.tar" | cut -d' ' -f1)"
printf '{"architecture":"amd64","os":"linux","config":{"Cmd":["/bin/sh"]},"rootfs":{"type":"layers","diff_ids":["%s"]}}' "$diffid" >"$work/oci-config.json"
cfgd="$(blob_push demo-oci "$work/oci-config.json")"; layd="$(blob_push demo-oci "$work/oci-layer.tar.gz")"
printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"%s","size":%d},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"%s","size":%d}]}' \
  "$cfgd" "$(stat -c %s "$work/oci-config.json")" "$layd" "$(stat -c %s "$work/oci-layer.tar.gz")" >"$work/oci-manifest.json"
curl -fsS -X PUT -H 'Content-Type: application/vnd.oci.image.manifest.v1+json' --data-binary "@$work/oci-manifest.json" \
  "http://127.0.0.1:$port/v2/demo-oci/manifests/latest" >/dev/null
ref="127.0.0.1:$port/demo-oci"
for layout in nydus docker; do
  nflags=(); [ "$layout" = docker ] && nflags=(--docker-runnable)
  "$bin/nydusify" convert --log-level warn --source "$ref:latest" --target "$ref:$layout" --work-dir "$work" "${nflags[@]}" \
    || fail "nydusify convert ($layout layout)"
  "$bin/nydusify" check --log-level warn --source "$ref:latest" --target "$ref:$layout" --work-dir "$work" \
    || fail "nydusify check ($layout layout)"
done
# Mount both: the docker-runnable bootstrap layer's image/backend.json is the
# nydusd backend section as is (what the graphdriver does with it).
for layout in nydus docker; do
  bootd="$(curl -fsS -H 'Accept: application/vnd.oci.image.manifest.v1+json' "http://127.0.0.1:$port/v2/demo-oci/manifests/$layout" \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["layers"][-1]["digest"])')"
  nd="$work/nydusify/$layout"; mkdir -p "$nd" "$work/nfuse"
  curl -fsS "http://127.0.0.1:$port/v2/demo-oci/blobs/$bootd" | tar -xz -C "$nd"
  python3 - "$nd" "127.0.0.1:$port" <<'PY'
import json, os, sys
nd, host = sys.argv[1], sys.argv[2]
try:
    backend = json.load(open(os.path.join(nd, "image/backend.json")))
except FileNotFoundError:
    backend = {"type": "registry", "config": {"scheme": "http", "host": host, "repo": "demo-oci"}}
backend["config"].update(timeout=5, retry_limit=2)
json.dump({"device": {"backend": backend, "cache": {"type": "blobcache", "config": {"work_dir": os.path.join(nd, "cache")}}},
           "mode": "direct", "digest_validate": True, "enable_xattr": True}, open(os.path.join(nd, "nydusd.json"), "w"))
PY
  [ "$layout" = docker ] && { [ -f "$nd/image/backend.json" ] || fail "docker-runnable bootstrap layer has no image/backend.json"; }
  "$bin/nydusd" --config "$nd/nydusd.json" --bootstrap "$nd/image/image.boot" --mountpoint "$work/nfuse" --log-level warn &
  nfpid=$!; pids+=("$nfpid")
  for _ in $(seq 100); do mountpoint -q "$work/nfuse" && break; sleep 0.1; done
  mountpoint -q "$work/nfuse" || fail "nydusd did not mount the converted image ($layout layout)"
  diff -r --no-dereference "$src" "$work/nfuse" || fail "converted image ($layout layout) differs from the source"
  kill -TERM "$nfpid"; wait "$nfpid" || true
done
echo "nydusify images pass check; both layouts mount lazily and equal $src"

step "zran: an OCI-ref image runs lazily under nydusd from its original gzip layer"
zsrc="$(go env GOROOT 2>/dev/null || echo /usr/local/go)/src/cmd"
tar --numeric-owner -C "$zsrc" -cf "$work/zran-layer.tar" . && gzip -6 -k "$work/zran-layer.tar"
zdiff="sha256:$(sha256sum "$work/zran-layer.tar" | cut -d' ' -f1)"
printf '{"architecture":"amd64","os":"linux","config":{},"rootfs":{"type":"layers","diff_ids":["%s"]}}' "$zdiff" >"$work/zran-config.json"
zcfg="$(blob_push demo-zran "$work/zran-config.json")"; zlay="$(blob_push demo-zran "$work/zran-layer.tar.gz")"
zsize="$(stat -c %s "$work/zran-layer.tar.gz")"
printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"%s","size":%d},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"%s","size":%d}]}' \
  "$zcfg" "$(stat -c %s "$work/zran-config.json")" "$zlay" "$zsize" >"$work/zran-manifest.json"
curl -fsS -X PUT -H 'Content-Type: application/vnd.oci.image.manifest.v1+json' --data-binary "@$work/zran-manifest.json" \
  "http://127.0.0.1:$port/v2/demo-zran/manifests/latest" >/dev/null
zref="127.0.0.1:$port/demo-zran"
"$bin/nydusify" convert --log-level warn --oci-ref --source "$zref:latest" --target "$zref:ref" --work-dir "$work" >/dev/null || fail "nydusify convert --oci-ref"
"$bin/nydusify" check --log-level warn --source "$zref:latest" --target "$zref:ref" --work-dir "$work" || fail "nydusify check (oci-ref)"
zman="$(curl -fsS -H 'Accept: application/vnd.oci.image.manifest.v1+json' "http://127.0.0.1:$port/v2/demo-zran/manifests/ref")"
zboot="$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["layers"][-1]["digest"])' "$zman")"
zmeta="$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["layers"][0]["size"])' "$zman")"
mkdir -p "$work/zran" "$work/zfuse"
curl -fsS "http://127.0.0.1:$port/v2/demo-zran/blobs/$zboot" | tar -xz -C "$work/zran" image/image.boot
sed "s/\"repo\":\"demo\"/\"repo\":\"demo-zran\"/; s#$work/cache#$work/zran/cache#" "$work/nydusd.json" >"$work/zran/nydusd.json"
"$bin/nydusd" --config "$work/zran/nydusd.json" --bootstrap "$work/zran/image/image.boot" --mountpoint "$work/zfuse" \
  --apisock "$work/zran/api.sock" --log-level warn &
zpid=$!; pids+=("$zpid")
for _ in $(seq 100); do mountpoint -q "$work/zfuse" && break; sleep 0.1; done
mountpoint -q "$work/zfuse" || fail "nydusd did not mount the zran image"
zread() { curl -fsS --unix-socket "$work/zran/api.sock" http://unix/api/v1/metrics/backend | python3 -c 'import json,sys; print(json.load(sys.stdin)["read_amount_total"])'; }
one="$(cd "$zsrc" && find . -type f -name '*.go' | sort | sed -n 100p)"
cmp "$zsrc/$one" "$work/zfuse/$one" || fail "zran: $one differs"
first="$(zread)"
echo "reading $one fetched $first bytes (RAFS blob $zmeta bytes, gzip layer $zsize bytes)"
# A cold chunk read fetches its inflate context from the start: at most
# 2 MiB + the chunk's compressed bytes + 64 KiB (asserted in storage's tests).
[ "$first" -le $((zmeta + (3 << 20) + (64 << 10))) ] && [ "$first" -lt $((zsize / 4)) ] || fail "zran: one small file fetched $first bytes"
diff -r --no-dereference "$zsrc" "$work/zfuse" || fail "zran image differs from its layer's tree"
all="$(zread)"
echo "reading every file fetched $all bytes"
# Each inflate context is fetched once (neighbouring contexts overlap a little).
[ "$all" -le $((zmeta + zsize + zsize / 10)) ] || fail "zran: reading everything fetched $all bytes: contexts fetched more than once"
kill -TERM "$zpid"; wait "$zpid" || true
echo "zran image equals its layer; reads fetched only the ranges they needed"

step "restart over the same cache with the registry stopped"
kill "$regpid"; wait "$regpid" 2>/dev/null || true
start_nydusd
diff -r --no-dereference "$src" "$work/fuse" || fail "restarted mount differs (cache not reused?)"
echo "restarted nydusd served everything from its cache"
stop_nydusd

step "kernel EROFS oracle"
"$bin/nydus-image" export --log-level warn --block --bootstrap "$work/image.boot" --blob-dir "$work/blobs" --output "$work/image.erofs"
mkdir -p "$work/erofs"
mount -t erofs -o loop,ro "$work/image.erofs" "$work/erofs"
diff -r --no-dereference "$src" "$work/erofs" || fail "kernel mount differs"
umount "$work/erofs"
echo "kernel EROFS mount equals $src"

step "nydus-overlayfs through mount(8): overlay on the nydusd mount"
# mount(8) strips PATH: the helper must be installed on /bin/sh's default PATH.
install -m 0755 "$bin/nydus-overlayfs" /usr/local/bin/nydus-overlayfs
start_nydusd
mkdir -p "$work/upper" "$work/owork" "$work/merged"
extra="$(printf '{"source":"%s","config":"{}","snapshotdir":"%s","fs_version":"v6"}' "$work/image.boot" "$work" | base64 -w0)"
(cd / && mount -t fuse.nydus-overlayfs overlay "$work/merged" \
  -o "lowerdir=$work/fuse,upperdir=$work/upper,workdir=$work/owork,extraoption=$extra")
grep " $work/merged " /proc/self/mountinfo | grep -q ' - overlay overlay ' || fail "not an overlay mount"
diff -r --no-dereference "$src" "$work/merged" || fail "overlay over nydusd differs from the source"
echo changed > "$work/merged/etc/new-file"
[ "$(cat "$work/upper/etc/new-file")" = changed ] || fail "write did not land in the upper dir"
umount "$work/merged"
stop_nydusd
echo "container-style overlay over the lazy image works"

step "nydus-overlayfs mode 2 through mount(8): nydusd's writable overlay over the cached image"
install -m 0755 "$bin/nydusd" /usr/local/bin/nydusd # the helper starts the nydusd beside it
rm -rf "$work/upper2" "$work/owork2" && mkdir -p "$work/upper2" "$work/owork2" "$work/snap2"
cfgjson="$(tr -d '\n' <"$work/nydusd.json")" # the registry is stopped by now: blobs come from the warm cache
extra="$(python3 -c 'import json,sys; print(json.dumps({"source":sys.argv[1],"config":sys.argv[2],"snapshotdir":sys.argv[3],"fs_version":"v6"}))' \
  "$work/image.boot" "$cfgjson" "$work/snap2" | base64 -w0)"
(cd / && mount -t fuse.nydus-overlayfs overlay "$work/merged" \
  -o "lowerdir=$work/lower-unused,upperdir=$work/upper2,workdir=$work/owork2,extraoption=$extra,nydus.overlay=userspace") \
  || fail "mode 2 mount: $(tail -3 "$work/snap2/nydus-overlayfs/nydusd.log" 2>/dev/null)"
grep " $work/merged " /proc/self/mountinfo | grep -q ' - fuse\.' || fail "mode 2 is not a FUSE mount"
diff -r --no-dereference "$src" "$work/merged" || fail "userspace overlay differs from the source"
echo changed > "$work/merged/etc/new-file"
[ "$(cat "$work/upper2/etc/new-file")" = changed ] || fail "mode 2: write did not land in the upper dir"
umount "$work/merged"
for _ in $(seq 100); do pgrep -f -- "--mountpoint $work/merged" >/dev/null || break; sleep 0.1; done
pgrep -f -- "--mountpoint $work/merged" >/dev/null && fail "nydusd still runs after umount"
echo "mode 2 mounts nydusd's writable overlay; umount ends it"
fi # main

if want failover; then
step "nydus-overlayfs mode 2: writes go on across kill -9 of nydusd and a live upgrade, all in the upper dir"
install -m 0755 "$bin/nydus-overlayfs" /usr/local/bin/nydus-overlayfs
install -m 0755 "$bin/nydusd" /usr/local/bin/nydusd
CGO_ENABLED=0 "$GO" build -trimpath -ldflags "-X main.version=e2e-upgraded" -o "$work/nydusd-upgraded" ./cmd/nydusd || fail "build the second nydusd"
rm -rf "$work/upper3" "$work/owork3" && mkdir -p "$work/upper3" "$work/owork3" "$work/snap3" "$work/merged"
cfgjson="$(tr -d '\n' <"$work/nydusd.json")"
extra="$(python3 -c 'import json,sys; print(json.dumps({"source":sys.argv[1],"config":sys.argv[2],"snapshotdir":sys.argv[3],"fs_version":"v6"}))' \
  "$work/image.boot" "$cfgjson" "$work/snap3" | base64 -w0)"
(cd / && mount -t fuse.nydus-overlayfs overlay "$work/merged" \
  -o "lowerdir=$work/lower-unused,upperdir=$work/upper3,workdir=$work/owork3,extraoption=$extra,nydus.overlay=userspace") \
  || fail "mode 2 mount: $(tail -3 "$work/snap3/nydus-overlayfs/nydusd.log" 2>/dev/null)"
ctl="/run/nydus-overlayfs/$(printf %s "$work/merged" | sha256sum | cut -c1-16).ctl"
[ -S "$ctl" ] || fail "the mode 2 nydusd is not supervised: no keeper control socket $ctl"
kstatus() { curl -fsS --max-time 30 --unix-socket "$ctl" http://keeper/status | python3 -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }
mlog() { tail -5 "$work/snap3/nydus-overlayfs/nydusd.log" 2>/dev/null; }
[ "$(kstatus state_bytes)" -gt 0 ] || fail "the keeper holds no state: nydusd did not hand over its FUSE descriptor (sendfd): $(mlog)"
# A writer that runs across everything: one new file every 20 ms.
mkdir "$work/merged/w"
(
  i=0
  while [ ! -e "$work/stop-writer" ]; do
    i=$((i + 1))
    echo "$i" >"$work/merged/w/$i" 2>>"$work/writer.err" || echo "write $i failed" >>"$work/writer.err"
    sleep 0.02
  done
  echo "$i" >"$work/writer.count"
) &
writer=$!
exec 7>"$work/merged/held" # an open upper file, written through the same descriptor all along
echo before >&7
echo before >>"$work/merged/etc/os-release" # a copy-up of a lower file (etc/motd links to the README removed next)
rm "$work/merged/usr/share/doc/demo/README"
# wait_failovers N: the keeper has done N failovers (bounded: 30 s).
wait_failovers() {
  for _ in $(seq 300); do [ "$(kstatus failovers 2>/dev/null)" = "$1" ] && return 0; sleep 0.1; done
  fail "no failover within 30 s (the keeper reports $(kstatus failovers 2>/dev/null) failovers): $(mlog)"
}
sleep 0.5
old="$(kstatus pid)"
kill -9 "$old"
wait_failovers 1
took() { grep -h 'failover done' "$work/snap3/nydus-overlayfs/nydusd.log" | tail -1 | grep -o 'took=[^ ]*'; }
echo "kill -9 nydusd $old: nydusd $(kstatus pid) took over (keeper: $(took))"
echo afterkill >&7 || fail "write to the open file after the failover"
echo afterkill >>"$work/merged/etc/os-release" || fail "append after the failover"
echo afterkill >"$work/merged/etc/new-after-kill" || fail "create after the failover"
cmp <(head -c "$(stat -c %s "$src/usr/share/doc/demo/numbers.txt")" "$work/merged/usr/share/doc/demo/numbers.txt") "$src/usr/share/doc/demo/numbers.txt" ||
  fail "read of a lower file after the failover"
sleep 0.5
"$bin/nydus-overlayfs" upgrade --nydusd "$work/nydusd-upgraded" || fail "nydus-overlayfs upgrade: $(mlog)"
[ "$(readlink "/proc/$(kstatus pid)/exe")" = "$work/nydusd-upgraded" ] || fail "after the upgrade nydusd $(kstatus pid) is not the upgraded binary"
echo "upgraded: nydusd $(kstatus pid) runs $(kstatus nydusd)"
echo upgraded >&7 || fail "write to the open file after the upgrade"
echo upgraded >>"$work/merged/etc/os-release" || fail "append after the upgrade"
sleep 0.5
old="$(kstatus pid)"
kill -9 "$old"
wait_failovers 2
echo "kill -9 nydusd $old: nydusd $(kstatus pid) took over (keeper: $(took))"
echo again >&7 || fail "write to the open file after the second failover"
sleep 0.5
touch "$work/stop-writer"
for _ in $(seq 300); do kill -0 "$writer" 2>/dev/null || break; sleep 0.1; done
kill -0 "$writer" 2>/dev/null && fail "the writer is stuck"
exec 7>&-
[ ! -s "$work/writer.err" ] || fail "writes failed: $(head -5 "$work/writer.err")"
count="$(cat "$work/writer.count")"
echo "the writer wrote $count files across two kills and an upgrade, no error"
umount "$work/merged" || fail "umount of the mode 2 mount"
for _ in $(seq 100); do pgrep -f -- "--mountpoint $work/merged" >/dev/null || break; sleep 0.1; done
pgrep -f -- "--mountpoint $work/merged" >/dev/null && fail "nydusd or its keeper still runs after umount"
# Everything is in the upper dir ...
[ "$(ls "$work/upper3/w" | wc -l)" = "$count" ] || fail "the upper dir holds $(ls "$work/upper3/w" | wc -l) of the writer's $count files"
for i in $(seq "$count"); do [ "$(cat "$work/upper3/w/$i")" = "$i" ] || fail "upper w/$i holds '$(cat "$work/upper3/w/$i")'"; done
[ "$(cat "$work/upper3/held")" = "before
afterkill
upgraded
again" ] || fail "the open file in the upper dir holds '$(cat "$work/upper3/held")'"
# ... and kernel overlayfs reads it as its own, over the image.
start_nydusd
mount -t overlay overlay -o "lowerdir=$work/fuse,upperdir=$work/upper3,workdir=$work/owork3" "$work/merged" || fail "kernel overlayfs refuses the upper dir"
[ "$(cat "$work/merged/etc/os-release")" = "$(cat "$src/etc/os-release")
before
afterkill
upgraded" ] || fail "kernel overlayfs: etc/os-release reads '$(cat "$work/merged/etc/os-release")'"
[ "$(cat "$work/merged/etc/new-after-kill")" = afterkill ] || fail "kernel overlayfs: etc/new-after-kill"
[ -e "$work/merged/usr/share/doc/demo/README" ] && fail "kernel overlayfs: the deleted README is back (no whiteout)"
[ "$(ls "$work/merged/w" | wc -l)" = "$count" ] || fail "kernel overlayfs: w/ holds $(ls "$work/merged/w" | wc -l) files"
cmp "$work/merged/bin/hello" "$src/bin/hello" || fail "kernel overlayfs: bin/hello"
umount "$work/merged"
stop_nydusd
echo "mode 2: writes before, during and after two kills and an upgrade are all in the upper dir, which kernel overlayfs reads"
fi # failover

step "e2e passed"
