# Shared setup of scripts/e2e-buildkit.sh and scripts/bench-buildkit.sh
# (sourced; needs $work and bash's set -euo pipefail): buildx v0.38.2
# installed once with go install, Debian's docker-registry on loopback, a
# busybox base image pushed to it, and our buildkitd
# (bin/buildkit-nydus-exporter) serving on $work/bk.sock.
# Defines: bin, buildx (command array), reg (host:port), pids, cleanup,
# fail, step, free_port, start_registry, blob_push, manifest,
# push_base_image, start_buildkitd.
bin="${BIN:-$PWD/bin}"
cache="${GONYDUS_E2E_CACHE:-${XDG_CACHE_HOME:-${HOME:-/root}/.cache}/gonydus-e2e}"
pids=()
cleanup() {
  set +e
  mountpoint -q "$work/fuse" 2>/dev/null && umount -l "$work/fuse"
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
  # buildkitd's overlay snapshots may still be mounted under its root.
  grep -o " $work/[^ ]*" /proc/self/mounts | sort -r | while read -r m; do umount -l "$m" 2>/dev/null; done
  rm -rf "$work"
}
step() { printf '\n== %s\n' "$*"; }
fail() {
  echo "FAILED: $*" >&2
  [ -f "$work/bk.log" ] && { echo "--- buildkitd log (tail)" >&2; tail -40 "$work/bk.log" >&2; }
  exit 1
}

# buildkit_preflight: exit 0 (skip) without root, /dev/fuse or runc; fail
# without the other tools.
buildkit_preflight() {
  if [ "$(id -u)" != 0 ] || [ ! -e /dev/fuse ]; then
    echo "$1 needs root and /dev/fuse; skipping"; exit 0
  fi
  if ! command -v runc >/dev/null; then
    echo "$1 needs runc (apt-get install runc); skipping"; exit 0
  fi
  for c in docker-registry busybox curl python3; do
    command -v "$c" >/dev/null || fail "$c is not installed"
  done
  [ -x "$bin/buildkit-nydus-exporter" ] || fail "$bin/buildkit-nydus-exporter missing (make build)"
}

# setup_buildx: buildx v0.38.2 as a docker CLI plugin in a private
# DOCKER_CONFIG (the binary alone without a docker CLI).
setup_buildx() {
  if [ ! -x "$cache/bin/buildx" ]; then
    mkdir -p "$cache/bin"
    GOBIN="$cache/bin" go install github.com/docker/buildx/cmd/buildx@v0.38.2
  fi
  export DOCKER_CONFIG="$work/dockercfg"
  mkdir -p "$DOCKER_CONFIG/cli-plugins"
  ln -sf "$cache/bin/buildx" "$DOCKER_CONFIG/cli-plugins/docker-buildx"
  if command -v docker >/dev/null; then buildx=(docker buildx); else buildx=("$cache/bin/buildx"); fi
  "${buildx[@]}" version
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
start_registry() { # NAME PORT READONLY
  cat > "$work/$1.yml" <<YML
version: 0.1
log:
  level: error
storage:
  filesystem:
    rootdirectory: $work/$1-data
  maintenance:
    readonly:
      enabled: $3
http:
  addr: 127.0.0.1:$2
YML
  docker-registry serve "$work/$1.yml" >"$work/$1.log" 2>&1 &
  pids+=("$!")
  for _ in $(seq 100); do curl -fsS "http://127.0.0.1:$2/v2/" >/dev/null 2>&1 && return 0; sleep 0.1; done
  fail "registry $1 did not start"
}
# blob_push REPO FILE: upload FILE as a blob of REPO in $reg, print its digest.
blob_push() {
  local d l s
  d="sha256:$(sha256sum "$2" | cut -d' ' -f1)"
  l="$(curl -fsS -X POST -D - -o /dev/null "http://$reg/v2/$1/blobs/uploads/" | tr -d '\r' | sed -n 's/^Location: //Ip')"
  case "$l" in http*) ;; *) l="http://$reg$l";; esac
  case "$l" in *\?*) s='&';; *) s='?';; esac
  curl -fsS -X PUT --data-binary "@$2" -H 'Content-Type: application/octet-stream' "$l${s}digest=$d" >/dev/null
  echo "$d"
}
# manifest REPO TAG: print an OCI image manifest from $reg.
manifest() { curl -fsS -H 'Accept: application/vnd.oci.image.manifest.v1+json' "http://$reg/v2/$1/manifests/$2"; }

# push_base_image: $reg/base:1, one gzip layer holding busybox (static),
# its applets, /etc/passwd, /etc/motd and /etc/gone.
push_base_image() {
  local rootfs="$work/base-rootfs" diffid cfgd layd c
  mkdir -p "$rootfs"/{bin,etc,tmp,root}
  cp "$(command -v busybox)" "$rootfs/bin/busybox"
  for c in sh echo ls cat mkdir rm touch cp env true seq; do ln -s busybox "$rootfs/bin/$c"; done
  echo "root:x:0:0:root:/root:/bin/sh" > "$rootfs/etc/passwd"
  echo "from the base" > "$rootfs/etc/motd"
  echo "removed by the build" > "$rootfs/etc/gone"
  tar --numeric-owner -C "$rootfs" -cf "$work/base.tar" . && gzip -k "$work/base.tar"
  diffid="sha256:$(sha256sum "$work/base.tar" | cut -d' ' -f1)"
  printf '{"architecture":"amd64","os":"linux","config":{"Env":["PATH=/bin"],"Cmd":["/bin/sh"]},"rootfs":{"type":"layers","diff_ids":["%s"]},"history":[{"created_by":"busybox rootfs"}]}' "$diffid" >"$work/base-config.json"
  cfgd="$(blob_push base "$work/base-config.json")"; layd="$(blob_push base "$work/base.tar.gz")"
  printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"%s","size":%d},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"%s","size":%d}]}' \
    "$cfgd" "$(stat -c %s "$work/base-config.json")" "$layd" "$(stat -c %s "$work/base.tar.gz")" >"$work/base-manifest.json"
  curl -fsS -X PUT -H 'Content-Type: application/vnd.oci.image.manifest.v1+json' --data-binary "@$work/base-manifest.json" \
    "http://$reg/v2/base/manifests/1" >/dev/null
  echo "pushed $reg/base:1"
}

# make_tls_certs DIR: a CA, a server certificate for 127.0.0.1 and a client
# certificate it signs (ca.pem, server.pem/server-key.pem,
# client.pem/client-key.pem), as buildx's remote driver takes them.
make_tls_certs() {
  command -v openssl >/dev/null || fail "openssl is needed for the TLS step (apt-get install openssl)"
  mkdir -p "$1"
  local ec=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
  openssl req -x509 "${ec[@]}" -keyout "$1/ca-key.pem" -out "$1/ca.pem" -days 1 -subj /CN=gonydus-e2e-ca 2>/dev/null
  for who in server client; do
    openssl req "${ec[@]}" -keyout "$1/$who-key.pem" -out "$1/$who.csr" -subj "/CN=$who" 2>/dev/null
    printf 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=%s\n' "$([ $who = server ] && echo serverAuth || echo clientAuth)" > "$1/$who.ext"
    openssl x509 -req -in "$1/$who.csr" -CA "$1/ca.pem" -CAkey "$1/ca-key.pem" -CAcreateserial -days 1 \
      -extfile "$1/$who.ext" -out "$1/$who.pem" 2>/dev/null
  done
}

# start_buildkitd BUILDER: our buildkitd on $work/bk.sock (log $work/bk.log)
# and, with mutual TLS, on tcp://127.0.0.1:$bk_tls_port (certificates in
# $work/tls), registered with buildx as the remote builder BUILDER.
start_buildkitd() {
  make_tls_certs "$work/tls"
  bk_tls_port="$(free_port)"
  cat > "$work/buildkitd.toml" <<TOML
root = "$work/bk"
[grpc]
  address = ["unix://$work/bk.sock", "tcp://127.0.0.1:$bk_tls_port"]
  [grpc.tls]
    cert = "$work/tls/server.pem"
    key = "$work/tls/server-key.pem"
    ca = "$work/tls/ca.pem"
[worker.oci]
  snapshotter = "overlayfs"
  gc = false
[registry."$reg"]
  http = true
  insecure = true
TOML
  "$bin/buildkit-nydus-exporter" --config "$work/buildkitd.toml" --nydus-cache-dir "$work/nydus-cache" >"$work/bk.log" 2>&1 &
  pids+=("$!")
  for _ in $(seq 100); do [ -S "$work/bk.sock" ] && break; sleep 0.1; done
  [ -S "$work/bk.sock" ] || fail "buildkitd did not listen"
  "${buildx[@]}" create --name "$1" --driver remote "unix://$work/bk.sock" >/dev/null
  "${buildx[@]}" inspect --bootstrap "$1" > "$work/inspect.txt" 2>&1 && grep -q 'Status: *running' "$work/inspect.txt" \
    || { cat "$work/inspect.txt"; fail "builder $1 not running"; }
}
