#!/usr/bin/env bash
# Export-time benchmark of the BuildKit exporter (`make bench`): the same
# build exported with --output type=nydus,push=true and with
# --output type=image,push=true (gzip), to Debian's docker-registry on
# loopback, through our buildkitd. The build copies a directory
# (BENCH_DATA, default the Go toolchain's src tree) into one layer plus a
# nonce, so every run exports a new layer: the nydus cache and the
# registry's existing blobs cannot help either side. The export vertex's
# time ("exporting to nydus image" / "exporting to image", every span of
# it summed) is read from buildx's rawjson progress; ROUNDS runs of each, alternating, median
# reported, and the ratio nydus/image printed (target <= 1.2).
set -euo pipefail
cd "$(dirname "$0")/.."
work="$(mktemp -d /tmp/nydus-bench-bk.XXXXXX)"
. scripts/buildkit-env.sh
trap cleanup EXIT
buildkit_preflight bench-buildkit
data="${BENCH_DATA:-$(go env GOROOT)/src}"
rounds="${ROUNDS:-3}"

setup_buildx >/dev/null
reg="127.0.0.1:$(free_port)"; start_registry registry "${reg#*:}" false
push_base_image >/dev/null
start_buildkitd nydus-bench

ctx="$work/ctx"; mkdir -p "$ctx"
cp -a "$data" "$ctx/data"
cat > "$ctx/Dockerfile" <<DF
FROM $reg/base:1
ARG NONCE
RUN --mount=type=bind,source=data,target=/src cp -a /src /data && echo "\$NONCE" > /data/nonce
DF
echo "data: $data ($(du -sh "$ctx/data" | cut -f1), $(find "$ctx/data" -type f | wc -l) files), $rounds rounds each"

# export_seconds OUTPUT: build with a fresh nonce, print the export time.
export_seconds() {
  local log="$work/progress.json"
  "${buildx[@]}" build --builder nydus-bench --provenance=false --progress rawjson \
    --build-arg "NONCE=$RANDOM$RANDOM" --output "$1" "$ctx" 2>"$log" || { tail -20 "$log"; fail "build --output $1"; }
  python3 - "$log" <<'PY'
import json, os, sys
from datetime import datetime
def ts(s):
    s = s.rstrip("Z")
    head, _, frac = s.partition(".")
    return datetime.fromisoformat(head).timestamp() + float("0." + (frac or "0")[:6])
v = {}
for line in open(sys.argv[1]):
    line = line.strip()
    if not line.startswith("{"):
        continue
    st = json.loads(line)
    for x in st.get("vertexes") or []:
        if x.get("started") and x.get("completed"):
            if os.environ.get("BENCH_VERBOSE"):
                print("  vertex %-60s %.3f s" % (x.get("name", "")[:60], ts(x["completed"]) - ts(x["started"])), file=sys.stderr)
            if x.get("name", "").startswith("exporting to "):
                # A vertex may run more than once (the image exporter's
                # push runs in a second span): sum its spans.
                v[(x["digest"], x["started"])] = ts(x["completed"]) - ts(x["started"])
    if os.environ.get("BENCH_VERBOSE"):
        for x in st.get("statuses") or []:
            if x.get("started") and x.get("completed"):
                print("    status %-58s %.3f s" % (x.get("id", "")[:58], ts(x["completed"]) - ts(x["started"])), file=sys.stderr)
if not v:
    sys.exit("no export vertex in the progress stream")
print("%.3f" % sum(v.values()))
PY
}

# Warm up: pull the base image, run the build once.
export_seconds "type=image,name=$reg/bench:warm,push=true,registry.insecure=true" >/dev/null
nydus=(); image=()
for i in $(seq "$rounds"); do
  nydus+=("$(export_seconds "type=nydus,name=$reg/bench:nydus,push=true,registry.insecure=true")")
  image+=("$(export_seconds "type=image,name=$reg/bench:gzip,push=true,registry.insecure=true")")
  echo "round $i: nydus ${nydus[-1]} s, image (gzip) ${image[-1]} s"
done
python3 - "${nydus[*]}" "${image[*]}" <<'PY'
import statistics, sys
n = statistics.median(map(float, sys.argv[1].split()))
g = statistics.median(map(float, sys.argv[2].split()))
print("BenchmarkBuildKitExport: type=nydus %.2f s, type=image,push=true (gzip) %.2f s, ratio %.2fx (target <= 1.2x)" % (n, g, n / g))
PY
