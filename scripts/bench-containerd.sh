#!/usr/bin/env bash
# containerd cold-start benchmark (part of `make bench`): an image of
# SIZE_MB (default 512) MiB of random data in 4 layers whose command reads
# one small file, pushed once as an ordinary OCI image and converted by our
# nydusify, served by Debian's docker-registry from a network namespace
# whose egress is capped at RATE (default 100mbit; scripts/registry-env.sh).
# It times `nerdctl run` from the pull to the command's output, cold
# (fresh containerd root and state, fresh snapshotter root and blob cache,
# page cache dropped), in the same run:
#   baseline: containerd's overlayfs snapshotter, the original image;
#   nydus:    nydus-snapshotter v0.16.1 starting our nydusd, the nydus image;
# and prints both times, the bytes the registry served for each and the
# ratio (baseline time / nydus time; target >= 5). ROUNDS=N repeats both,
# interleaved, and the ratio uses the best time of each.
# containerd, nerdctl and the snapshotter come from scripts/containerd-env.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
size_mb="${SIZE_MB:-512}"
rate="${RATE:-100mbit}"
rounds="${ROUNDS:-1}"

if [ "$(id -u)" != 0 ] || [ ! -e /dev/fuse ]; then echo "bench-containerd needs root and /dev/fuse; skipping"; exit 0; fi
for c in ip tc curl python3; do
  command -v "$c" >/dev/null || { echo "bench-containerd: $c is not installed; skipping"; exit 0; }
done

work="$(mktemp -d /tmp/ncb.XXXXXX)" # short: overlay mount data holds every layer path
. scripts/containerd-env.sh
. scripts/registry-env.sh
pids=()
reg_log="$work/registry-ns.log" # what the capped registry served
nerdctl_root=""

fail() {
  echo "bench-containerd FAILED: $*" >&2
  echo "--- snapshotter log (tail)" >&2; tail -20 "$work/sn.log" >&2 2>/dev/null || true
  echo "--- containerd log (tail)" >&2; tail -20 "$work/containerd.log" >&2 2>/dev/null || true
  exit 1
}
nctl() { # nctl SNAPSHOTTER ARGS...: nerdctl against our containerd
  local sn="$1"; shift
  timeout 600 "$tools/nerdctl" --address "$csock" --namespace bench --data-root "$nerdctl_root" \
    --snapshotter "$sn" --hosts-dir "$work/certs.d" --insecure-registry "$@"
}
# ours_left: processes of this run that should be gone: our containerd,
# snapshotter, nydusd, shims and nerdctl (by executable, then by $work in
# the command line; the executable first, as reading the command line of
# an unrelated process stuck in a FUSE page fault would block), one pid a
# line.
ours_left() {
  local p exe
  for p in /proc/[0-9]*; do
    exe="$(readlink "$p/exe" 2>/dev/null)" || continue
    case "$exe" in "$tools"/* | "$bin/nydusd") ;; *) continue ;; esac
    grep -qa -- "$work/" "$p/cmdline" 2>/dev/null && echo "${p#/proc/}"
  done
  return 0
}
cleanup() {
  set +e
  stop_pid "$ctrd_pid"
  stop_pid "$sn_pid"
  for p in $(ours_left); do kill -9 "$p" 2>/dev/null; done
  mounts_under "$work" | awk '{print $1}' | sort -r | while read -r m; do umount -l "$m" 2>/dev/null; done
  for p in "${pids[@]}"; do stop_pid "$p"; done
  capped_registry_stop
  rm -rf "$work"
}
trap cleanup EXIT
containerd_deps
containerd_tools
capped_registry_start "$rate"
echo "registry: $reg_local for setup, $reg_remote behind a $rate cap for the runs"
mkdir -p "$work/certs.d/$reg_remote"
cat >"$work/certs.d/$reg_remote/hosts.toml" <<TOML
server = "http://$reg_remote"
[host."http://$reg_remote"]
  capabilities = ["pull", "resolve"]
TOML

echo "== building a ${size_mb} MiB image (random data in 4 layers; the command reads /etc/greeting)"
src="$work/src"
mkdir -p "$src/base"/{bin,etc,proc,sys,dev,tmp,run}
cp "$(command -v busybox)" "$src/base/bin/"
for c in sh cat; do ln -s busybox "$src/base/bin/$c"; done
echo "entrypoint ran" >"$src/base/etc/greeting"
parts=$(((size_mb + 31) / 32))
for i in $(seq "$parts"); do
  l=$(((i - 1) % 4 + 1))
  mkdir -p "$src/data$l/data"
  head -c 32M /dev/urandom >"$src/data$l/data/part$i"
done
python3 e2e/containerd/pushimage.py --oci "$reg_local" big plain '["cat","/etc/greeting"]' \
  "$src/base" "$src"/data[1-4] || fail "push of the OCI image"
rm -rf "$src"
"$bin/nydusify" convert --log-level warn --source "$reg_local/big:plain" --target "$reg_local/big:nydus" \
  --source-insecure --target-insecure --work-dir "$work" >/dev/null || fail "nydusify convert"
layers() { # layers TAG: total size of the manifest's layers
  curl -fsS -H 'Accept: application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json' \
    "http://$reg_local/v2/big/manifests/$1" | python3 -c 'import json,sys; print(sum(l["size"] for l in json.load(sys.stdin)["layers"]))'
}
plain_bytes="$(layers plain)"
nydus_bytes="$(layers nydus)"
echo "big:plain layers: $plain_bytes bytes; big:nydus layers: $nydus_bytes bytes"

cat >"$work/nydusd.json" <<JSON
{"device":{"backend":{"type":"registry","config":{"timeout":30,"connect_timeout":10,"retry_limit":2}},
  "cache":{"type":"blobcache"}},
 "mode":"direct","digest_validate":false,"iostats_files":false,"enable_xattr":true,"amplify_io":1048576,
 "fs_prefetch":{"enable":false,"threads_count":4,"merging_size":1048576,"prefetch_all":false}}
JSON
nydusd_json="$work/nydusd.json"
metrics_port="$(free_port)"

# cold_run SNAPSHOTTER TAG RUN: one cold pull-and-run; sets run_t (seconds
# to the command's output) and run_bytes (blob bytes the capped registry
# served).
cold_run() {
  local sn="$1" tag="$2" run="$3" out t rc line mark p
  write_containerd_config "$work/c-root-$run" "$work/c-state-$run"
  nerdctl_root="$work/nerdctl-$run"
  [ "$sn" = nydus ] && start_snapshotter dedicated false none "$work/sn-$run"
  start_containerd
  sync
  echo 3 >/proc/sys/vm/drop_caches
  mark="$(reg_mark)"
  out="$(python3 - "$tools/nerdctl" --address "$csock" --namespace bench --data-root "$nerdctl_root" \
    --snapshotter "$sn" --hosts-dir "$work/certs.d" --insecure-registry \
    run --rm --net none "$reg_remote/big:$tag" 2>"$work/run-$run.err" <<'PY'
import subprocess, sys, time
t0 = time.monotonic()
p = subprocess.Popen(["timeout", "600"] + sys.argv[1:], stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
line = p.stdout.readline().rstrip("\n")
dt = time.monotonic() - t0
p.stdout.read()
print(f"{dt:.2f} {p.wait()} {line}")
PY
)" || fail "timing nerdctl run ($sn)"
  read -r t rc line <<<"$out"
  if [ "$rc" != 0 ] || [ "$line" != "entrypoint ran" ]; then
    tr '\r' '\n' <"$work/run-$run.err" | grep -v '^ *$' | tail -5 >&2
    fail "nerdctl run ($sn) exited $rc after printing '$line'"
  fi
  run_t="$t"
  run_bytes="$(reg_blob_bytes "$mark" big)"
  # Teardown: image removed (the snapshotter stops the image's nydusd), the
  # daemons stopped, nothing of this run left.
  nctl "$sn" ps -aq 2>>"$work/nerdctl.log" | xargs -r timeout 60 "$tools/nerdctl" --address "$csock" --namespace bench \
    --data-root "$nerdctl_root" rm -f >/dev/null 2>>"$work/nerdctl.log"
  nctl "$sn" rmi -f "$reg_remote/big:$tag" >/dev/null 2>>"$work/nerdctl.log" || { tail -5 "$work/nerdctl.log"; fail "nerdctl rmi ($sn)"; }
  stop_pid "$ctrd_pid"; ctrd_pid=""
  [ "$sn" = nydus ] && stop_snapshotter
  for _ in $(seq 100); do [ -z "$(ours_left)" ] && break; sleep 0.1; done
  p="$(ours_left)"; [ -z "$p" ] || fail "processes left after the $sn run: $p"
  p="$(mounts_under "$work")"; [ -z "$p" ] || fail "mounts left after the $sn run: $p"
  rm -rf "$work/c-root-$run" "$work/c-state-$run" "$work/nerdctl-$run" "$work/sn-$run"
}

best_o="" best_n=""
for r in $(seq "$rounds"); do
  echo "== round $r: overlayfs snapshotter, original image, registry capped at $rate"
  cold_run overlayfs plain "o$r"; to="$run_t" bo="$run_bytes"
  echo "overlayfs: ${to}s from nerdctl run to the command's output; the registry served $bo bytes"
  echo "== round $r: nydus snapshotter, nydus image, same cap"
  cold_run nydus nydus "n$r"; tn="$run_t" bn="$run_bytes"
  echo "nydus: ${tn}s from nerdctl run to the command's output; the registry served $bn bytes"
  best_o="$(python3 -c "print(min(x for x in [$to, ${best_o:-$to}]))")"
  best_n="$(python3 -c "print(min(x for x in [$tn, ${best_n:-$tn}]))")"
done
echo "clean: no containers, images, nydusd, shims or mounts left after the runs"
python3 -c "print(f'containerd cold start (nerdctl run, pull to output), {$size_mb} MiB image at $rate: overlayfs {$best_o:.2f}s ({$bo} blob bytes served; layers {$plain_bytes}), nydus {$best_n:.2f}s ({$bn} blob bytes served; layers {$nydus_bytes}): nydus is {$best_o/$best_n:.1f}x faster (target >= 5x)')"
