#!/usr/bin/env bash
# Unmounts a filesystem mounted by netfs-mount.sh, stops its client, and
# removes what it stored on the server side (the sftp directory; an S3
# bucket lives in the server's memory until netfs-stop.sh).
#   scripts/netfs-umount.sh MOUNTPOINT
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/netfs-lib.sh"
[ $# -eq 1 ] || { echo "usage: $0 MOUNTPOINT" >&2; exit 2; }
mnt=$(realpath -m "$1")
id=$(printf %s "$mnt" | md5sum | cut -c1-12)
rec=$NETFS_STATE/mounts/$id
if netfs_is_mounted "$mnt"; then
    fusermount3 -u "$mnt" 2>/dev/null || fusermount3 -uz "$mnt" 2>/dev/null || umount -l "$mnt" || true
fi
if [ -f "$rec" ]; then
    pid=$(sed -n 's/^pid=//p' "$rec")
    kind=$(sed -n 's/^kind=//p' "$rec")
    remote=$(sed -n 's/^remote=//p' "$rec")
    if [ -n "$pid" ]; then
        for _ in $(seq 100); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.05
        done
        kill -TERM "$pid" 2>/dev/null || true
    fi
    case $kind in
    sshfs | rclone-*) [ -n "$remote" ] && rm -rf "$remote" "$NETFS_STATE/rclone-cache/$id" ;;
    esac
    rm -f "$rec"
fi
