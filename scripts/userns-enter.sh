#!/usr/bin/env bash
# userns-enter.sh CMD [ARG...]: run CMD as root of a new user namespace,
# with a mount namespace of its own, as Docker's "rootless" setups and
# unprivileged system containers do. Run as real root.
#
# ids 0-65535 inside are USERNS_HOST_ID (default 100000) and up outside.
# The network namespace is the user namespace's own, with loopback up:
# a process there cannot enter the host's network namespace, so dockerd's
# threads, which enter each container's and come back, would otherwise
# stay in a container's. The pid namespace stays the host's. /dev/fuse is
# made openable there (see below).
#
# Before the user namespace is made, every mount but the basics (/, /proc,
# /sys, /dev and what is under them, and top-level mounts such as /tmp) is
# detached from the new mount namespace: a copy of another program's FUSE
# mount there would keep that mount's daemon alive after the other program
# unmounted it (the host's mounts are private, so nothing propagates).
set -euo pipefail
host_id="${USERNS_HOST_ID:-100000}"
[ "$#" -gt 0 ] || { echo "usage: $0 CMD [ARG...]" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "$0: run as root" >&2; exit 1; }
command -v python3 >/dev/null || { echo "$0: python3 is not installed (apt-get install python3)" >&2; exit 1; }

if [ "${USERNS_ENTER_STAGE:-}" != mounts ]; then
  exec env USERNS_ENTER_STAGE=mounts unshare --mount --propagation private --fork -- "$0" "$@"
fi
unset USERNS_ENTER_STAGE

# Detach, deepest first.
awk '{print $5}' /proc/self/mountinfo | sort -r | while read -r m; do
  m="$(printf '%b' "$m")" # mountinfo escapes spaces as \040
  case "$m" in
    / | /proc | /proc/* | /sys | /sys/* | /dev | /dev/*) continue ;;
    /*/*) umount -l "$m" 2>/dev/null || true ;;
  esac
done

# /dev/fuse for the namespace's root: the host's node may be the real
# root's only (0600 where no udev rule makes it 0666); a 0666 node of the
# same device is bound over it in this mount namespace alone.
if [ -c /dev/fuse ]; then
  node="$(mktemp -u /tmp/userns-enter-fuse.XXXXXX)"
  mknod -m 666 "$node" c 10 229 && mount --bind "$node" /dev/fuse
  rm -f "$node"
fi

fifo="$(mktemp -u /tmp/userns-enter.XXXXXX)"
mkfifo "$fifo"
trap 'rm -f "$fifo"' EXIT
# The child makes the user namespace (with mount and network ones), waits
# for its id maps, becomes root there and only then execs: an exec before
# that would drop its capabilities in the namespace.
python3 -c '
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
if libc.unshare(0x10000000 | 0x00020000 | 0x40000000) != 0:  # user, mount, network
    sys.exit("userns-enter: unshare: " + os.strerror(ctypes.get_errno()))
with open(sys.argv[1]) as f:
    if f.read().strip() != "mapped":
        sys.exit("userns-enter: the id maps were not written")
os.setresgid(0, 0, 0)
os.setgroups([])
os.setresuid(0, 0, 0)
if os.spawnvp(os.P_WAIT, "ip", ["ip", "link", "set", "lo", "up"]) != 0:
    sys.exit("userns-enter: ip link set lo up failed")
os.execvp(sys.argv[2], sys.argv[2:])
' "$fifo" "$@" &
child=$!
for _ in $(seq 200); do
  [ "$(readlink "/proc/$child/ns/user" 2>/dev/null)" != "$(readlink /proc/self/ns/user)" ] && break
  sleep 0.05
done
if [ "$(readlink "/proc/$child/ns/user" 2>/dev/null)" = "$(readlink /proc/self/ns/user)" ]; then
  kill "$child" 2>/dev/null || true
  wait "$child" || true
  echo "$0: the child made no user namespace within 10s" >&2
  exit 1
fi
echo "0 $host_id 65536" >"/proc/$child/uid_map"
echo "0 $host_id 65536" >"/proc/$child/gid_map"
# bounded: a child that died never opens the fifo
timeout 10 bash -c 'echo mapped >"$1"' _ "$fifo" || { kill "$child" 2>/dev/null; echo "$0: the child did not take its id maps" >&2; exit 1; }
wait "$child"
