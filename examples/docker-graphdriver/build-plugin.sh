#!/usr/bin/env bash
# Builds the managed (v2) plugin from static binaries and creates it:
#   examples/docker-graphdriver/build-plugin.sh [NAME]   (default gonydus/nydus:dev)
# then: docker plugin enable NAME, and start dockerd with
#   --experimental --storage-driver NAME
# (Docker 27: with DOCKERD_DEPRECATED_GRAPHDRIVER_PLUGINS=1 in dockerd's
# environment, see docker.service.d/). The container-layer mode and more
# flags (appended to the entrypoint), before enable:
#   docker plugin set NAME CONTAINER_LAYER=userspace args="--insecure-registry HOST:PORT"
# scripts/e2e-docker.sh (step managed) runs all of this.
set -euo pipefail
cd "$(dirname "$0")"
name="${1:-gonydus/nydus:dev}"
bin="${BIN:-$(cd ../.. && pwd)/bin}"
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
mkdir -p "$out/rootfs"/{run/docker/plugins,var/lib/docker,tmp,dev,proc,sys,etc/nydus,etc/ssl/certs}
install -m 0755 "$bin/docker-nydus-graphdriver" "$bin/nydusd" "$out/rootfs/"
install -m 0644 nydusd-config.fusedev.json "$out/rootfs/etc/nydus/nydusd-config.fusedev.json"
# HTTPS registries: the host's CA bundle.
[ -f /etc/ssl/certs/ca-certificates.crt ] && cp /etc/ssl/certs/ca-certificates.crt "$out/rootfs/etc/ssl/certs/"
cp plugin/config.json "$out/config.json"
docker plugin create "$name" "$out"
