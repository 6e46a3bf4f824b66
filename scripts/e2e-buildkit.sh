#!/usr/bin/env bash
# End-to-end suite for the BuildKit exporter (`make e2e`):
#  1. Debian's docker-registry runs on loopback (plus a read-only one that
#     refuses pushes); a busybox base image is pushed to it;
#  2. our buildkitd (bin/buildkit-nydus-exporter) starts with the runc
#     worker; buildx v0.38.2 (go install, cached) talks to it through a
#     remote builder;
#  3. a multi-stage Dockerfile FROM the local registry is built with
#     --output type=nydus,...,push=true: manifest, media types, annotations
#     and config are checked, nydusify check passes, and nydusd mounts the
#     image lazily from the registry; its tree equals --output type=local;
#  4. a rebuild after touching one file converts only the changed layer
#     (the exporter response, written by buildx --metadata-file, counts
#     converted and cached layers; the daemon log agrees);
#  5. docker-runnable=true: one bootstrap layer naming the blobs; mounts too,
#     and dockerd with our graphdriver plugin pulls and runs it;
#  6. bad input (unknown attribute, unreachable registry, denied push)
#     fails with a clear message in buildx's output and leaves no manifest;
#  7. the image, oci and tar exporters still work; type=image with
#     compression=nydus (upstream BuildKit's spelling) pushes the same
#     image as type=nydus.
set -euo pipefail
cd "$(dirname "$0")/.."
work="$(mktemp -d /tmp/nydus-e2e-bk.XXXXXX)"
. scripts/buildkit-env.sh
trap cleanup EXIT
buildkit_preflight e2e-buildkit

step "buildx v0.38.2 (go install, cached)"
setup_buildx

step "registries on loopback; busybox base image"
port="$(free_port)"; start_registry registry "$port" false
roport="$(free_port)"; start_registry readonly "$roport" true
reg="127.0.0.1:$port"
push_base_image

step "our buildkitd"
start_buildkitd nydus-e2e

step "buildx --driver remote over tcp:// with mutual TLS; refused without a client certificate or TLS"
"${buildx[@]}" create --name nydus-e2e-tls --driver remote \
  --driver-opt "cacert=$work/tls/ca.pem,cert=$work/tls/client.pem,key=$work/tls/client-key.pem" \
  "tcp://127.0.0.1:$bk_tls_port" >/dev/null
"${buildx[@]}" inspect --bootstrap nydus-e2e-tls > "$work/inspect-tls.txt" 2>&1 && grep -q 'Status: *running' "$work/inspect-tls.txt" \
  || { cat "$work/inspect-tls.txt"; fail "builder over TLS not running"; }
"${buildx[@]}" create --name nydus-e2e-nocert --driver remote --driver-opt "cacert=$work/tls/ca.pem" \
  "tcp://127.0.0.1:$bk_tls_port" >/dev/null
if timeout 60 "${buildx[@]}" inspect --bootstrap nydus-e2e-nocert > "$work/inspect-nocert.txt" 2>&1 \
  && grep -q 'Status: *running' "$work/inspect-nocert.txt"; then
  fail "a client without a certificate reached buildkitd"
fi
"${buildx[@]}" rm nydus-e2e-tls nydus-e2e-nocert >/dev/null 2>&1 || true
if timeout 30 "$bin/buildkit-nydus-exporter" --root "$work/bk-plain" --addr "tcp://127.0.0.1:$(free_port)" \
  >"$work/bk-plain.log" 2>&1; then
  fail "buildkitd served plain tcp:// without --allow-insecure-tcp"
fi
grep -q 'without TLS' "$work/bk-plain.log" || { cat "$work/bk-plain.log"; fail "no clear error for plain tcp://"; }
echo "TLS builder running; a client without a certificate and a plain tcp:// listener were refused"

step "multi-stage build -> type=nydus,push=true"
ctx="$work/ctx"; mkdir -p "$ctx"
cat > "$ctx/Dockerfile" <<DF
FROM $reg/base:1 AS build
RUN mkdir -p /out && for i in \$(seq 1 200); do echo "line \$i of a generated file" >> /out/generated.txt; done
FROM $reg/base:1
COPY --from=build /out /app
RUN rm /etc/gone && echo "ran in the final stage" > /etc/ran
COPY hello.txt /app/hello.txt
DF
echo "hello v1" > "$ctx/hello.txt"
build() { "${buildx[@]}" build --builder nydus-e2e --progress plain "$@" "$ctx"; }
target="$reg/app:nydus"
build --metadata-file "$work/meta1.json" --output "type=nydus,name=$target,push=true,registry.insecure=true" \
  >"$work/build1.log" 2>&1 || { cat "$work/build1.log"; fail "type=nydus build"; }
grep -q 'converting layer' "$work/build1.log" || fail "no conversion progress in buildx output"
grep -E '^#[0-9]+ (exporting to nydus|computing|converting|layer|pushing nydus)' "$work/build1.log" || true
meta() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).get(sys.argv[2],""))' "$@"; }
[ "$(meta "$work/meta1.json" nydus.layers.converted)" = 4 ] || { cat "$work/meta1.json"; fail "want 4 converted layers (base + 3)"; }
echo "built and pushed $target: $(meta "$work/meta1.json" containerimage.digest)"

step "manifest, media types, annotations, config"
manifest app nydus > "$work/manifest.json"
python3 - "$work/manifest.json" "http://$reg/v2/app/blobs/" <<'PY' || fail "manifest checks"
import json, sys, urllib.request
m = json.load(open(sys.argv[1]))
assert m["mediaType"] == "application/vnd.oci.image.manifest.v1+json", m["mediaType"]
assert m["config"]["mediaType"] == "application/vnd.oci.image.config.v1+json"
layers = m["layers"]
assert len(layers) == 5, len(layers)
for l in layers[:-1]:
    assert l["mediaType"] == "application/vnd.oci.image.layer.nydus.blob.v1", l
    assert l["annotations"] == {"containerd.io/snapshot/nydus-blob": "true"}, l
boot = layers[-1]
assert boot["mediaType"] == "application/vnd.oci.image.layer.v1.tar+gzip", boot
assert boot["annotations"]["containerd.io/snapshot/nydus-bootstrap"] == "true", boot
assert boot["annotations"]["containerd.io/snapshot/nydus-fs-version"] == "6", boot
cfg = json.load(urllib.request.urlopen(sys.argv[2] + m["config"]["digest"]))
diff_ids = cfg["rootfs"]["diff_ids"]
assert len(diff_ids) == len(layers), (diff_ids, layers)
assert diff_ids[:-1] == [l["digest"] for l in layers[:-1]], "a data layer's diff id is its digest"
assert cfg["history"][-1]["comment"] == "Nydus Bootstrap Layer", cfg["history"][-1]
assert cfg["config"]["Env"] == ["PATH=/bin"], cfg["config"]
print("manifest: %d nydus blobs + bootstrap layer; config diff_ids and history as nydusify writes them" % (len(layers) - 1))
PY
"$bin/nydusify" check --log-level warn --target "$target" --work-dir "$work" || fail "nydusify check"
echo "nydusify check passed"

step "nydusd mounts it lazily; tree equals --output type=local"
build --output "type=local,dest=$work/local" >"$work/build-local.log" 2>&1 || { cat "$work/build-local.log"; fail "type=local build"; }
# mount_image TAG: fetch the bootstrap layer, mount with nydusd (registry
# backend, or the backend image/backend.json names), compare with type=local.
mount_image() {
  local tag="$1" nd="$work/mnt-$1" bootd
  mkdir -p "$nd" "$work/fuse"
  bootd="$(manifest app "$tag" | python3 -c 'import json,sys; print(json.load(sys.stdin)["layers"][-1]["digest"])')"
  curl -fsS "http://$reg/v2/app/blobs/$bootd" | tar -xz -C "$nd"
  python3 - "$nd" "$reg" <<'PY'
import json, os, sys
nd, host = sys.argv[1], sys.argv[2]
try:
    backend = json.load(open(os.path.join(nd, "image/backend.json")))
except FileNotFoundError:
    backend = {"type": "registry", "config": {"scheme": "http", "host": host, "repo": "app"}}
backend["config"].update(timeout=5, retry_limit=2)
json.dump({"device": {"backend": backend, "cache": {"type": "blobcache", "config": {"work_dir": os.path.join(nd, "cache")}}},
           "mode": "direct", "digest_validate": True, "enable_xattr": True}, open(os.path.join(nd, "nydusd.json"), "w"))
PY
  "$bin/nydusd" --config "$nd/nydusd.json" --bootstrap "$nd/image/image.boot" --mountpoint "$work/fuse" --log-level warn &
  local np=$!; pids+=("$np")
  for _ in $(seq 100); do mountpoint -q "$work/fuse" && break; sleep 0.1; done
  mountpoint -q "$work/fuse" || fail "nydusd did not mount $tag"
  diff -r --no-dereference "$work/local" "$work/fuse" || fail "nydus image $tag differs from type=local"
  [ ! -e "$work/fuse/etc/gone" ] && [ -f "$work/fuse/etc/ran" ] && [ -f "$work/fuse/app/generated.txt" ] || fail "$tag: build steps missing"
  kill -TERM "$np"; wait "$np" || true
  echo "$tag: lazily mounted tree equals type=local"
}
mount_image nydus

step "rebuild after touching one file converts only that layer"
echo "hello v2" > "$ctx/hello.txt"
build --metadata-file "$work/meta2.json" --output "type=nydus,name=$target,push=true,registry.insecure=true" \
  >"$work/build2.log" 2>&1 || { cat "$work/build2.log"; fail "rebuild"; }
conv="$(meta "$work/meta2.json" nydus.layers.converted)"; cached="$(meta "$work/meta2.json" nydus.layers.cached)"
[ "$conv" = 1 ] && [ "$cached" = 3 ] || { cat "$work/meta2.json"; fail "rebuild converted $conv layers, cached $cached (want 1 and 3)"; }
[ "$(grep -c 'layer converted' "$work/bk.log")" = 5 ] || fail "daemon log: want 5 'layer converted' lines in total"
grep -q 'cached nydus blob' "$work/build2.log" || fail "no cache hits in buildx output"
grep -E '^#[0-9]+ (converting|layer [0-9])' "$work/build2.log" || true
echo "rebuild: $conv layer converted, $cached from the cache"
rm -rf "$work/local"
build --output "type=local,dest=$work/local" >"$work/build-local2.log" 2>&1 || fail "type=local rebuild"
mount_image nydus

step "upstream BuildKit's spelling: type=image,compression=nydus"
build --metadata-file "$work/meta-image.json" \
  --output "type=image,name=$reg/app:image-nydus,push=true,compression=nydus,force-compression=true,oci-mediatypes=true,registry.insecure=true" \
  >"$work/build-image.log" 2>&1 || { cat "$work/build-image.log"; fail "type=image,compression=nydus build"; }
[ "$(meta "$work/meta-image.json" nydus.layers.cached)" = 4 ] || { cat "$work/meta-image.json"; fail "type=image,compression=nydus did not go through the nydus exporter (want 4 cached layers)"; }
[ "$(meta "$work/meta-image.json" containerimage.digest)" = "$(meta "$work/meta2.json" containerimage.digest)" ] ||
  fail "type=image,compression=nydus pushed $(meta "$work/meta-image.json" containerimage.digest), type=nydus $(meta "$work/meta2.json" containerimage.digest)"
"$bin/nydusify" check --log-level warn --target "$reg/app:image-nydus" --work-dir "$work" || fail "nydusify check (type=image,compression=nydus)"
echo "type=image,compression=nydus pushed the same manifest as type=nydus; nydusify check passed"
build --output "type=image,name=$reg/app:image-bad,push=true,compression=nydus,push-by-digest=true,registry.insecure=true" \
  >"$work/build-image-bad.log" 2>&1 && fail "push-by-digest with compression=nydus was accepted"
grep -q 'push-by-digest is not supported with compression=nydus' "$work/build-image-bad.log" || { cat "$work/build-image-bad.log"; fail "no clear error for push-by-digest"; }

step "docker-runnable=true"
build --metadata-file "$work/meta3.json" --output "type=nydus,name=$reg/app:docker,push=true,registry.insecure=true,docker-runnable=true" \
  >"$work/build3.log" 2>&1 || { cat "$work/build3.log"; fail "docker-runnable build"; }
[ "$(meta "$work/meta3.json" nydus.layers.converted)" = 0 ] || fail "docker-runnable export converted layers again"
manifest app docker | python3 -c '
import json, sys
m = json.load(sys.stdin)
assert len(m["layers"]) == 1, m["layers"]
a = m["layers"][0]["annotations"]
assert a["containerd.io/snapshot/nydus-bootstrap"] == "true" and json.loads(a["io.github.gonydus.nydus.blobs"]), a
' || fail "docker-runnable manifest"
"$bin/nydusify" check --log-level warn --target "$reg/app:docker" --work-dir "$work" || fail "nydusify check (docker-runnable)"
mount_image docker

step "the docker-runnable image runs under the Docker graphdriver"
if ! command -v dockerd >/dev/null || ! command -v docker >/dev/null; then
  echo "dockerd is not installed (apt-get install docker.io): skipping the graphdriver run"
elif [ -S /run/docker/plugins/nydus.sock ]; then
  fail "/run/docker/plugins/nydus.sock exists: another nydus graphdriver runs"
else
  echo '{"device":{"backend":{"type":"registry","config":{"timeout":10,"retry_limit":2}}},"mode":"direct","digest_validate":true}' >"$work/gd-nydusd.json"
  "$bin/docker-nydus-graphdriver" --socket /run/docker/plugins/nydus.sock --nydusd "$bin/nydusd" \
    --state-file "$work/gd-state.json" --nydusd-config "$work/gd-nydusd.json" >"$work/gd.log" 2>&1 &
  gdpid=$!; pids+=("$gdpid")
  for _ in $(seq 100); do [ -S /run/docker/plugins/nydus.sock ] && break; sleep 0.05; done
  dockerd --experimental --storage-driver nydus --data-root "$work/droot" --exec-root "$work/dexec" \
    -H "unix://$work/docker.sock" --pidfile "$work/docker.pid" --iptables=false --bridge=none >"$work/dockerd.log" 2>&1 &
  dpid=$!
  D() { timeout 120 docker -H "unix://$work/docker.sock" "$@"; }
  for _ in $(seq 300); do D info >/dev/null 2>&1 && break; sleep 0.1; done
  D pull -q "$reg/app:docker" >/dev/null || { tail "$work/dockerd.log"; fail "docker pull of the docker-runnable image"; }
  got="$(D run --rm --network none "$reg/app:docker" cat /app/hello.txt /etc/ran /app/generated.txt)" || { tail "$work/gd.log"; fail "docker run"; }
  [ "$got" = "$(cat "$work/local/app/hello.txt" "$work/local/etc/ran" "$work/local/app/generated.txt")" ] || fail "docker run printed something else than the build's files"
  D rmi -f "$reg/app:docker" >/dev/null
  kill -TERM "$dpid"; for _ in $(seq 200); do kill -0 "$dpid" 2>/dev/null || break; sleep 0.1; done
  kill -TERM "$gdpid"; wait "$gdpid" 2>/dev/null || true
  echo "docker pull + docker run of the BuildKit-built docker-runnable image print the build's files"
fi

step "bad input: clear errors, no manifest"
no_manifest() { # REGISTRY REPO TAG
  local code
  code="$(curl -s -o /dev/null -w '%{http_code}' -H 'Accept: application/vnd.oci.image.manifest.v1+json' "http://$1/v2/$2/manifests/$3")"
  [ "$code" = 404 ] || fail "manifest $1/$2:$3 exists after a failed export (HTTP $code)"
}
expect_fail() { # WHAT PATTERN OUTPUT-ATTRS
  local what="$1" pat="$2"; shift 2
  if build --output "$@" >"$work/bad.log" 2>&1; then cat "$work/bad.log"; fail "$what: build succeeded"; fi
  grep -Eq "ERROR.*$pat" "$work/bad.log" || { cat "$work/bad.log"; fail "$what: no error matching '$pat' in buildx output"; }
  echo "$what: $(grep -E "ERROR.*$pat" "$work/bad.log" | tail -1 | cut -c1-240)"
}
expect_fail "unknown attribute" 'unknown attribute "compresion"' "type=nydus,name=$reg/app:bad,push=true,compresion=zstd"
no_manifest "$reg" app bad
expect_fail "unreachable registry" '127\.0\.0\.1:1/app' "type=nydus,name=127.0.0.1:1/app:x,push=true,registry.insecure=true"
expect_fail "denied push" "127\.0\.0\.1:$roport/app.*(UNSUPPORTED|read-only|405|denied|not allowed)" \
  "type=nydus,name=127.0.0.1:$roport/app:x,push=true,registry.insecure=true"
no_manifest "127.0.0.1:$roport" app x
[ -z "$(ls "$work/readonly-data" 2>/dev/null)" ] || fail "the read-only registry stored something"

step "the stock exporters still work"
build --output "type=image,name=$reg/app:gzip,push=true,registry.insecure=true" >"$work/build-image.log" 2>&1 \
  || { cat "$work/build-image.log"; fail "type=image"; }
curl -fsS -o /dev/null -H 'Accept: application/vnd.oci.image.index.v1+json' -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
  "http://$reg/v2/app/manifests/gzip" || fail "type=image: nothing pushed"
build --output "type=oci,dest=$work/out-oci.tar" >"$work/build-oci.log" 2>&1 || fail "type=oci"
tar -tf "$work/out-oci.tar" > "$work/out-oci.list" && grep -q '^index.json$' "$work/out-oci.list" || fail "type=oci: no index.json"
build --output "type=tar,dest=$work/out.tar" >"$work/build-tar.log" 2>&1 || fail "type=tar"
tar -tf "$work/out.tar" > "$work/out.list" && grep -q 'app/hello.txt' "$work/out.list" || fail "type=tar: no app/hello.txt"
echo "image, oci, tar and local exporters work"

step "e2e-buildkit passed"
