#!/usr/bin/env bash
# `make demo`: what Nydus is for. An ordinary image of a real tree (the Go
# toolchain on this machine, or DIR) is pushed to a registry on loopback
# (Debian's docker-registry when installed, else go-containerregistry's in
# process; both behind a counter of the blob bytes served), converted to
# a nydus image by nydusify, and started two ways:
#   - as docker pull does: download and unpack the whole image, then run;
#   - lazily: fetch the small bootstrap, mount with nydusd (registry
#     backend), run from the mount; only what is read is fetched.
# It prints the bytes the registry served and the time to first output of
# each. Then a kernel EROFS export of examples/demo-rootfs, mounted by the
# kernel. Root and /dev/fuse are needed for the mounts.
# DEMO_REGISTRY=go uses go-containerregistry's registry even when Debian's
# is installed.
set -euo pipefail
cd "$(dirname "$0")/.."
GO="${GO:-go}"
bin="${BIN:-$PWD/bin}"
src="${1:-$("$GO" env GOROOT)}"
src="$(cd "$src" && pwd)"
if [ -x "$src/bin/go" ]; then prefix=usr/local/go; else prefix="srv/$(basename "$src")"; fi

work="$(mktemp -d /tmp/nydus-demo.XXXXXX)"
pids=()
cleanup() {
  for m in "$work/mnt" "$work/erofs"; do mountpoint -q "$m" 2>/dev/null && umount -l "$m" || true; done
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$p" 2>/dev/null || true
  done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

step() { printf '\n== %s\n' "$*"; }
fail() { echo "demo: $*" >&2; exit 1; }
ms() { echo $(( $(date +%s%N) / 1000000 )); }
mib() { awk -v b="$1" 'BEGIN { printf "%.1f MiB", b / 1048576 }'; }
secs() { awk -v m="$1" 'BEGIN { printf "%.2f s", m / 1000 }'; }
# wait_for SECONDS WHAT COMMAND...: poll COMMAND every 0.1 s, at most SECONDS.
wait_for() {
  local n=$(( $1 * 10 )) what="$2"; shift 2
  for _ in $(seq "$n"); do "$@" && return 0; sleep 0.1; done
  fail "$what: not within $(( n / 10 )) s"
}

[ "$(id -u)" = 0 ] && [ -e /dev/fuse ] || fail "needs root and /dev/fuse (nydusd mounts FUSE, the export is mounted by the kernel)"
for b in nydusify nydusd nydus-image; do [ -x "$bin/$b" ] || fail "$bin/$b missing: run make build"; done
demoreg="$bin/demoregistry"
[ -x "$demoreg" ] || { "$GO" build -o "$work/demoregistry" ./cmd/internal/demoregistry; demoreg="$work/demoregistry"; }

step "registry on loopback"
debian=()
if [ "${DEMO_REGISTRY:-}" != go ] && command -v docker-registry >/dev/null; then
  mkdir -p "$work/registry"; debian=(-debian "$(command -v docker-registry)" -data "$work/registry")
  echo "Debian's docker-registry, behind a counter of blob bytes"
else
  echo "go-containerregistry's registry, in process, counting blob bytes"
fi
"$demoreg" serve -addr-file "$work/addr" "${debian[@]}" &
pids+=($!)
wait_for 20 "the registry" test -s "$work/addr"
reg="$(cat "$work/addr")"
echo "serving on $reg"
oci="$reg/demo/go:oci"
nydus="$reg/demo/go:nydus"
served() { "$demoreg" stats -addr "$reg" | cut -d' ' -f1; }
reset() { "$demoreg" stats -addr "$reg" -reset; }

step "an ordinary image of $src (at /$prefix), pushed as $oci"
timeout 300 "$demoreg" push -dir "$src" -prefix "$prefix" -ref "$oci"
oci_size="$("$demoreg" size -ref "$oci")"

step "nydusify convert $oci -> $nydus"
t0=$(ms)
timeout 300 "$bin/nydusify" convert --quiet --source "$oci" --target "$nydus" --source-insecure --target-insecure
echo "converted in $(secs $(( $(ms) - t0 )))"
nydus_size="$("$demoreg" size -ref "$nydus")"

# What to run from the image: the Go toolchain's go version, else the
# first lines of a file in the tree.
first_file="$(cd "$src" && find . -type f -size +0 -print -quit)"
run_in() {
  if [ "$prefix" = usr/local/go ]; then timeout 60 "$1/bin/go" version
  else timeout 60 head -c 200 "$1/$first_file"; echo; fi
}

step "as docker pull: download and unpack the whole ordinary image, then run"
reset
mkdir -p "$work/pulled"
t0=$(ms)
timeout 300 "$demoreg" pull -ref "$oci" | tar -C "$work/pulled" -x
out="$(run_in "$work/pulled/$prefix")"
pull_ms=$(( $(ms) - t0 ))
pull_bytes="$(served)"
echo "$out"
rm -rf "$work/pulled"

step "lazily: fetch the bootstrap, mount with nydusd from the registry, run"
reset
mkdir -p "$work/mnt" "$work/cache"
cat >"$work/nydusd.json" <<JSON
{"device":{"backend":{"type":"registry","config":{"scheme":"http","host":"$reg","repo":"demo/go","timeout":10,"connect_timeout":10,"retry_limit":1}},
 "cache":{"type":"blobcache","config":{"work_dir":"$work/cache"}}},
 "mode":"direct","digest_validate":false,"enable_xattr":true}
JSON
t0=$(ms)
timeout 60 "$demoreg" bootstrap -ref "$nydus" -o "$work/image.boot"
"$bin/nydusd" --config "$work/nydusd.json" --bootstrap "$work/image.boot" --mountpoint "$work/mnt" \
  --apisock "$work/api.sock" --log-file "$work/nydusd.log" --log-level warn &
nydusd_pid=$!
pids+=("$nydusd_pid")
wait_for 30 "nydusd mounting $work/mnt" mountpoint -q "$work/mnt"
lazy_out="$(run_in "$work/mnt/$prefix")"
lazy_ms=$(( $(ms) - t0 ))
lazy_bytes="$(served)"
echo "$lazy_out"
want="$(run_in "$src")"
[ "$lazy_out" = "$want" ] && [ "$out" = "$want" ] || fail "printed \"$lazy_out\" lazily, \"$out\" pulled, \"$want\" from $src"
umount "$work/mnt"
wait_for 10 "nydusd exiting after the unmount" bash -c "! kill -0 $nydusd_pid 2>/dev/null"

step "what the registry served"
printf '  %-44s %12s\n' "ordinary image (gzip layers)" "$(mib "$oci_size")" "nydus image (bootstrap and zstd blob)" "$(mib "$nydus_size")"
printf '  %-44s %12s  %s to first output\n' "pull the whole ordinary image, unpack, run:" "$(mib "$pull_bytes")" "$(secs "$pull_ms")" \
  "nydus lazily (bootstrap, mount, run):" "$(mib "$lazy_bytes")" "$(secs "$lazy_ms")"
awk -v l="$lazy_bytes" -v n="$nydus_size" -v p="$pull_bytes" -v lm="$lazy_ms" -v pm="$pull_ms" 'BEGIN {
  printf "  lazy start fetched %.1f%% of the nydus image (%.1f%% of what the full pull fetched), first output %.1fx sooner\n",
    100 * l / n, 100 * l / p, pm / (lm > 0 ? lm : 1) }'
[ "$lazy_bytes" -lt "$nydus_size" ] || fail "the lazy start fetched the whole image ($lazy_bytes of $nydus_size bytes)"

demo_src=examples/demo-rootfs
step "kernel EROFS: nydus-image create $demo_src, export --block, mount -t erofs"
"$bin/nydus-image" create --log-level warn --type dir-rafs --blob-dir "$work/blobs" --bootstrap "$work/demo.boot" "$demo_src"
"$bin/nydus-image" export --block --bootstrap "$work/demo.boot" --blob-dir "$work/blobs" --output "$work/demo.erofs"
if grep -qw erofs /proc/filesystems || modprobe erofs 2>/dev/null; then
  mkdir -p "$work/erofs"
  mount -t erofs -o ro "$work/demo.erofs" "$work/erofs"
  diff -r --no-dereference "$demo_src" "$work/erofs"
  echo "the kernel's EROFS mount of the export equals $demo_src:"
  cat "$work/erofs/etc/os-release"
  umount "$work/erofs"
else
  echo "(no EROFS in this kernel: the export $(stat -c %s "$work/demo.erofs") bytes was not mounted)"
fi
step "demo passed"
