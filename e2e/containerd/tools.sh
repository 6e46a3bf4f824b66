#!/usr/bin/env bash
# Builds (or reuses cached builds of) the outside tools the containerd e2e
# suite drives, from the Go module proxy only: `go mod download -json
# MOD@VER`, a writable copy of the module, `go build` with the module's own
# go.mod. The versions are pinned here; a binary is rebuilt only when its
# cache entry (keyed by module, version and build flags) is missing.
#
# Usage: e2e/containerd/tools.sh CACHE_DIR   (prints nothing but progress;
# the binaries land in CACHE_DIR/bin)
set -euo pipefail
GO="${GO:-go}"
cache="${1:?usage: tools.sh CACHE_DIR}"
mkdir -p "$cache/bin" "$cache/src" "$cache/stamp"

CONTAINERD_VERSION=v2.4.2
NERDCTL_VERSION=v1.7.7
SNAPSHOTTER_VERSION=v0.16.1
CRITOOLS_VERSION=v1.34.0

# build MODULE VERSION TAGS LDFLAGS PKG:BINARY...
build() {
  local mod="$1" ver="$2" tags="$3" ldflags="$4"; shift 4
  local key stamp need=0 b
  key="$(printf '%s@%s tags=%s ldflags=%s %s' "$mod" "$ver" "$tags" "$ldflags" "$*" | sha256sum | cut -c1-16)"
  stamp="$cache/stamp/${mod//\//_}@$ver"
  [ "$(cat "$stamp" 2>/dev/null)" = "$key" ] || need=1
  for b in "$@"; do [ -x "$cache/bin/${b#*:}" ] || need=1; done
  [ "$need" = 1 ] || return 0
  echo "building $mod@$ver ($*)"
  local t0=$SECONDS dir src="$cache/src/${mod//\//_}@$ver"
  dir="$("$GO" mod download -json "$mod@$ver" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')"
  if [ ! -d "$src" ]; then
    rm -rf "$src.tmp"; cp -r "$dir" "$src.tmp"; chmod -R u+w "$src.tmp"; mv "$src.tmp" "$src"
  fi
  for b in "$@"; do
    (cd "$src" && CGO_ENABLED=0 GOFLAGS=-mod=mod "$GO" build -trimpath -tags "$tags" -ldflags "$ldflags" \
      -o "$cache/bin/${b#*:}" "./${b%%:*}")
  done
  echo "$key" >"$stamp"
  echo "built $mod@$ver in $((SECONDS - t0)) s"
}

build github.com/containerd/containerd/v2 "$CONTAINERD_VERSION" "no_btrfs no_devmapper no_zfs" \
  "-s -w -X github.com/containerd/containerd/v2/version.Version=$CONTAINERD_VERSION" \
  cmd/containerd:containerd cmd/ctr:ctr cmd/containerd-shim-runc-v2:containerd-shim-runc-v2
build github.com/containerd/nydus-snapshotter "$SNAPSHOTTER_VERSION" "" \
  "-s -w -X github.com/containerd/nydus-snapshotter/version.Version=$SNAPSHOTTER_VERSION" \
  cmd/containerd-nydus-grpc:containerd-nydus-grpc
build github.com/containerd/nerdctl "$NERDCTL_VERSION" "no_btrfs no_devmapper no_zfs" \
  "-s -w -X github.com/containerd/nerdctl/pkg/version.Version=$NERDCTL_VERSION" \
  cmd/nerdctl:nerdctl
build sigs.k8s.io/cri-tools "$CRITOOLS_VERSION" "" \
  "-s -w -X sigs.k8s.io/cri-tools/pkg/version.Version=$CRITOOLS_VERSION" \
  cmd/crictl:crictl
