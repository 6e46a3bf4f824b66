#!/usr/bin/env bash
# nydus-snapshotter converter suite (part of `make e2e`): the tests of
# e2e/snapshotter-converter, a Go module of its own that imports
# nydus-snapshotter v0.16.1's pkg/converter (what nerdctl, BuildKit and
# nydusify run) and drives our nydus-image and nydusd with it: Pack
# (fs-version 6, chunk dictionary), Merge (native and OCI-ref layers),
# Unpack (blob file and the converter's http-proxy stream); the results are
# mounted by the kernel (export --block) and by nydusd and compared with the
# source trees.
#
# Caching: the binaries are built into $BIN (default ./bin, where `make
# build` puts them) only when a Go source, go.mod or go.sum of the main
# module is newer than them; $NYDUS_IMAGE/$NYDUSD override them. Module
# downloads stay in GOMODCACHE and compiled packages in GOCACHE, so a rerun
# with nothing changed only runs the tests. Extra arguments go to go test
# (e.g. -run TestMergeOCIRef -v).
set -euo pipefail
cd "$(dirname "$0")/.."
GO="${GO:-go}"
bin="${BIN:-$PWD/bin}"
nydus_image="${NYDUS_IMAGE:-$bin/nydus-image}"
nydusd="${NYDUSD:-$bin/nydusd}"

stale() { # stale BINARY: missing, or older than a source of the main module
  [ -x "$1" ] || return 0
  [ -n "$(find . -path ./e2e -prune -o \( -name '*.go' -o -name go.mod -o -name go.sum \) -newer "$1" -print -quit)" ]
}
if [ -z "${NYDUS_IMAGE:-}${NYDUSD:-}" ] && { stale "$nydus_image" || stale "$nydusd"; }; then
  echo "building nydus-image and nydusd into $bin"
  mkdir -p "$bin"
  CGO_ENABLED=0 "$GO" build -trimpath -o "$bin/" ./cmd/nydus-image ./cmd/nydusd
fi
for b in "$nydus_image" "$nydusd"; do
  [ -x "$b" ] || { echo "E2E FAILED: $b is not an executable" >&2; exit 1; }
done
if [ "$(id -u)" != 0 ]; then
  echo "note: not root: the tests that mount (kernel EROFS, FUSE) will skip"
fi

cd e2e/snapshotter-converter
NYDUS_IMAGE="$nydus_image" NYDUSD="$nydusd" "$GO" test -count=1 -timeout 10m "$@" .
