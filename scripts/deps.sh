#!/usr/bin/env bash
# scripts/deps.sh [test|demo|e2e|bench|lint|all]: the one dependency step that
# `make test`, `make demo`, `make e2e`, `make bench`, `make lint` and .ci/run
# run first.
#
# It checks for the programs the set needs (by the commands each Debian
# package provides). As root with apt-get it installs the missing packages
# (one `apt-get update`, then `apt-get install --no-install-recommends`).
# Otherwise it names what is missing and the command that installs it, and
# carries on: the tests that need a missing program skip and say which.
# With GONYDUS_STRICT=1 (CI) anything still missing afterwards is an error.
#
# lint and all also want golangci-lint at GOLANGCI_LINT_VERSION (no Debian
# package has it): when LINTBIN, `go env GOPATH`/bin and PATH (looked at in
# that order, as make lint does) lack that version, it is built with
# `go install` into LINTBIN (default ~/.cache/gonydus/bin), as any user.
set -uo pipefail

set_name="${1:-all}"

# package -> the commands whose presence means it is installed
declare -A provides=(
  [fuse3]="fusermount3 mount.fuse3"
  [erofs-utils]="mkfs.erofs fsck.erofs dump.erofs"
  [zstd]="zstd"
  [lz4]="lz4"
  [gzip]="gzip"
  [attr]="getfattr setfattr"
  [fuse-overlayfs]="fuse-overlayfs"
  [bindfs]="bindfs"
  [docker-registry]="docker-registry"
  [docker.io]="dockerd docker"
  [busybox-static]="busybox"
  [runc]="runc"
  [python3]="python3"
  [procps]="pgrep"
  [curl]="curl"
  [iproute2]="ip tc"
)

# what each set needs, and why (shown when it is missing)
declare -A why=(
  [fuse3]="go-fuse mounts through fusermount3; nydus-overlayfs runs under mount.fuse3"
  [erofs-utils]="fsck.erofs/dump.erofs check our images (outside oracle)"
  [zstd]="zstd layers in the e2e suite"
  [lz4]="lz4 blobs in the e2e suite"
  [gzip]="gzip -dc is the baseline of the zran benchmarks"
  [attr]="getfattr/setfattr for xattr checks"
  [fuse-overlayfs]="baseline of the overlay benchmarks"
  [bindfs]="a FUSE home kernel overlayfs refuses as upper dir (auto container-layer mode: graphdriver and overlay tests, docker e2e)"
  [docker-registry]="a local registry for convert, nydusify and e2e"
  [docker.io]="dockerd and the docker CLI for convert, graphdriver and e2e"
  [busybox-static]="a static shell for the e2e containers"
  [runc]="the OCI runtime for BuildKit and containerd runs"
  [python3]="the real-zlib (ctypes) oracle of the zran tests; e2e helpers"
  [procps]="pgrep in the nydus-overlayfs tests"
  [curl]="registry calls in the e2e suite"
  [iproute2]="network namespaces: loopback of the docker e2e's user namespace, the benchmarks' capped registry (tc)"
)
base="fuse3 erofs-utils zstd lz4 gzip attr fuse-overlayfs bindfs docker-registry docker.io busybox-static runc python3 procps"
case "$set_name" in
  test) packages="$base" ;;
  demo) packages="fuse3" ;;
  e2e | bench | all) packages="$base curl iproute2" ;;
  lint) packages="" ;;
  *) echo "usage: $0 [test|demo|e2e|bench|lint|all]" >&2; exit 2 ;;
esac

say() { echo "deps.sh ($set_name): $*"; }

# golangci_lint: finds golangci-lint $GOLANGCI_LINT_VERSION or go-installs it
# into $LINTBIN; returns non-zero when it still has none.
golangci_lint() {
  local version="${GOLANGCI_LINT_VERSION:-v2.15.0}"
  local bin="${LINTBIN:-${XDG_CACHE_HOME:-$HOME/.cache}/gonydus/bin}"
  local go="${GO:-go}" gopath found d
  gopath="$("$go" env GOPATH 2>/dev/null)"
  found="$(PATH="$bin:${gopath:+$gopath/bin:}$PATH" command -v golangci-lint 2>/dev/null)"
  if [ -n "$found" ] && "$found" version 2>/dev/null | grep -q "version ${version#v} "; then
    say "golangci-lint $version: $found"
    return 0
  fi
  [ -n "$found" ] && say "golangci-lint at $found is not $version"
  say "installing golangci-lint $version into $bin (go install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$version)"
  mkdir -p "$bin" || return 1
  SECONDS=0
  if GOBIN="$bin" "$go" install "github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$version"; then
    say "installed golangci-lint $version as $bin/golangci-lint (${SECONDS}s)"
    return 0
  fi
  say "go install of golangci-lint $version failed"
  return 1
}

lint_ok=1
case "$set_name" in
  lint | all) golangci_lint || lint_ok=0 ;;
esac
if [ "$lint_ok" = 0 ] && [ "${GONYDUS_STRICT:-}" = 1 ]; then
  say "GONYDUS_STRICT=1 and golangci-lint is missing" >&2
  exit 1
fi
[ "$set_name" = lint ] && { [ "$lint_ok" = 1 ] || exit 1; exit 0; }

# have CMD: in PATH or in the sbin/bin directories a non-root PATH lacks
have() {
  command -v "$1" >/dev/null 2>&1 && return 0
  local d
  for d in /usr/local/sbin /usr/local/bin /usr/sbin /usr/bin /sbin /bin; do
    [ -x "$d/$1" ] && return 0
  done
  return 1
}

# check [show]: sets missing to the packages of $packages with a command
# absent; with show, says which commands each one lacks
missing=()
check() {
  missing=()
  local p c absent
  for p in $packages; do
    absent=""
    for c in ${provides[$p]}; do have "$c" || absent="$absent $c"; done
    [ -z "$absent" ] && continue
    missing+=("$p")
    if [ "${1:-}" = show ]; then say "missing${absent} (package $p: ${why[$p]})"; fi
  done
}

check show
if [ ${#missing[@]} -eq 0 ]; then
  say "all present: $packages"
  exit 0
fi

install_cmd="apt-get install -y --no-install-recommends ${missing[*]}"
if [ "$(id -u)" != 0 ]; then
  say "not root, so installing nothing. To get them, as root: apt-get update && $install_cmd"
elif ! command -v apt-get >/dev/null 2>&1; then
  say "no apt-get on this machine: install the equivalents of: ${missing[*]}"
else
  say "installing: ${missing[*]}"
  SECONDS=0
  log="$(mktemp)"
  export DEBIAN_FRONTEND=noninteractive
  if apt-get update -qq >"$log" 2>&1 && apt-get install -y -qq --no-install-recommends "${missing[@]}" >>"$log" 2>&1; then
    say "installed: ${missing[*]} (${SECONDS}s)"
  else
    say "apt-get failed (last lines below); carrying on without them"
    tail -n 15 "$log" | sed 's/^/    /'
  fi
  rm -f "$log"
  check show
  [ ${#missing[@]} -eq 0 ] && say "all present now: $packages"
fi

if [ ${#missing[@]} -gt 0 ]; then
  if [ "${GONYDUS_STRICT:-}" = 1 ]; then
    say "GONYDUS_STRICT=1 and still missing: ${missing[*]}" >&2
    exit 1
  fi
  say "still missing: ${missing[*]}; the tests and steps that need them skip and say so"
fi
exit 0
