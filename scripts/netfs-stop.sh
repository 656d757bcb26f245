#!/usr/bin/env bash
# Unmounts every filesystem netfs-mount.sh mounted and stops the loopback
# sshd and S3 server it started. Safe to run when nothing is running.
#   scripts/netfs-stop.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/netfs-lib.sh"
for rec in "$NETFS_STATE"/mounts/*; do
    [ -f "$rec" ] || continue
    "$here/netfs-umount.sh" "$(sed -n 's/^mnt=//p' "$rec")" || true
done
for p in "$NETFS_STATE/sshd/pid" "$NETFS_STATE/s3/pid"; do
    if netfs_alive "$p"; then
        pid=$(cat "$p")
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 100); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.05
        done
    fi
    rm -f "$p"
done
