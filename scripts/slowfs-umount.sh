#!/usr/bin/env bash
# Unmounts a filesystem mounted by slowfs-mount.sh; prints its request
# counters (also in MOUNTPOINT.log).
#   scripts/slowfs-umount.sh MOUNTPOINT
set -euo pipefail
[ $# -eq 1 ] || { echo "usage: $0 MOUNTPOINT" >&2; exit 2; }
mnt=${1%/}
pidfile="$mnt.pid"
if [ -f "$pidfile" ]; then
    pid=$(cat "$pidfile")
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 100); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.05
    done
    rm -f "$pidfile"
fi
if grep -qs " $(realpath "$mnt") fuse" /proc/mounts; then
    fusermount3 -u "$mnt" 2>/dev/null || umount -l "$mnt"
fi
[ -f "$mnt.log" ] && grep -v ' 0$' "$mnt.log" | tail -n +2 || true
