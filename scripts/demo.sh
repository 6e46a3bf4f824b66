#!/usr/bin/env bash
# `make demo`: build a RAFS v6 image from a directory (default
# examples/demo-rootfs), inspect it, unpack it back to a tar and verify the
# tree, export it as an EROFS block image and, as root, mount it with the
# kernel; when nydusd is built, mount it lazily through FUSE as well.
set -euo pipefail
cd "$(dirname "$0")/.."
src="${1:-examples/demo-rootfs}"
bin="${BIN:-$PWD/bin}"
work="$(mktemp -d /tmp/nydus-demo.XXXXXX)"
cleanup() {
  for m in "$work/erofs" "$work/fuse"; do mountpoint -q "$m" 2>/dev/null && umount -l "$m" || true; done
  [ -n "${nydusd_pid:-}" ] && kill "$nydusd_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

step() { printf '\n== %s\n' "$*"; }

step "build: nydus-image create $src"
"$bin/nydus-image" create --type dir-rafs --features blob-toc --blob-dir "$work/blobs" \
  --bootstrap "$work/image.boot" --output-json "$work/output.json" "$src"
cat "$work/output.json"
blob_id="$(sed -n 's/.*"blobs": *\[ *"\([0-9a-f]*\)".*/\1/p' "$work/output.json" | head -1)"
if [ -z "$blob_id" ]; then blob_id="$(ls "$work/blobs" | head -1)"; fi

step "inspect"
"$bin/nydus-image" inspect "$work/image.boot" | head -40
"$bin/nydus-image" check --bootstrap "$work/image.boot" --blob-dir "$work/blobs"

step "unpack to an OCI layer tar and compare with the source"
"$bin/nydus-image" unpack --bootstrap "$work/image.boot" --blob-dir "$work/blobs" --output "$work/layer.tar"
mkdir -p "$work/unpacked"
tar -C "$work/unpacked" -xpf "$work/layer.tar"
diff -r --no-dereference "$src" "$work/unpacked"
echo "unpacked tree equals $src"

step "export --block: one raw EROFS image"
"$bin/nydus-image" export --block --bootstrap "$work/image.boot" --blob-dir "$work/blobs" --output "$work/image.erofs"
if [ "$(id -u)" = 0 ] && grep -qw erofs /proc/filesystems; then
  mkdir -p "$work/erofs"
  mount -t erofs -o ro "$work/image.erofs" "$work/erofs"
  diff -r --no-dereference "$src" "$work/erofs"
  echo "kernel EROFS mount equals $src"
  umount "$work/erofs"
else
  echo "(not root or no EROFS in this kernel: skipping the kernel mount)"
fi

if [ -x "$bin/nydusd" ] && [ "$(id -u)" = 0 ] && [ -e /dev/fuse ]; then
  step "nydusd: mount lazily over FUSE from the localfs backend"
  mkdir -p "$work/fuse" "$work/cache"
  cat > "$work/nydusd.json" <<JSON
{"device":{"backend":{"type":"localfs","config":{"dir":"$work/blobs"}},
 "cache":{"type":"blobcache","config":{"work_dir":"$work/cache"}}},
 "mode":"direct","digest_validate":true,"enable_xattr":true}
JSON
  "$bin/nydusd" --config "$work/nydusd.json" --bootstrap "$work/image.boot" \
    --mountpoint "$work/fuse" --apisock "$work/api.sock" --log-level warn &
  nydusd_pid=$!
  for _ in $(seq 50); do mountpoint -q "$work/fuse" && break; sleep 0.1; done
  diff -r --no-dereference "$src" "$work/fuse"
  echo "nydusd FUSE mount equals $src"
  "$work/fuse/bin/hello" 2>/dev/null || sh "$work/fuse/bin/hello"
  kill -TERM "$nydusd_pid"; wait "$nydusd_pid" || true; nydusd_pid=
fi
step "demo passed"
