#!/usr/bin/env bash
# Mounts a real network or cloud filesystem served on 127.0.0.1 only.
#   scripts/netfs-mount.sh KIND MOUNTPOINT
# KIND:
#   sshfs          sshfs on a loopback sshd (throwaway keys)
#   rclone-off     rclone mount of an sftp remote on that sshd, --vfs-cache-mode off
#   rclone-writes  the same with --vfs-cache-mode writes
#   s3fs           s3fs on a bucket of a local S3 server (moto), path-style requests
# Installs what is missing (Debian: openssh-server, sshfs, rclone, s3fs;
# PyPI: moto[server]), starts the server if it is not running, and waits
# until the mount is live. Exits 77 when a tool cannot be installed here.
# What the server received is logged under $CONVEYOR_NETFS_STATE (default
# /tmp/conveyor-netfs): sshd/sshd.log (every sftp request), s3/server.log
# (every S3 request), and the client's log named by `netfs-mount.sh info`.
# Unmount with scripts/netfs-umount.sh MOUNTPOINT; scripts/netfs-stop.sh
# unmounts everything and stops the servers.
#   scripts/netfs-mount.sh info MOUNTPOINT   prints the mount's record
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/netfs-lib.sh"
[ $# -eq 2 ] || { echo "usage: $0 sshfs|rclone-off|rclone-writes|s3fs|info MOUNTPOINT" >&2; exit 2; }
kind=$1
mnt=$(realpath -m "$2")
id=$(printf %s "$mnt" | md5sum | cut -c1-12)
rec=$NETFS_STATE/mounts/$id
if [ "$kind" = info ]; then
    [ -f "$rec" ] || netfs_die "$mnt was not mounted by netfs-mount.sh"
    cat "$rec"; exit 0
fi
mkdir -p "$NETFS_STATE/mounts" "$NETFS_STATE/logs" && chmod 700 "$NETFS_STATE"
# One mount at a time (tests mount in parallel): servers start once. The
# lock's descriptor is closed in every server and client started below.
exec 9>>"$NETFS_STATE/lock"
flock 9
if netfs_is_mounted "$mnt"; then
    if [ -f "$rec" ] && grep -qx "kind=$kind" "$rec"; then
        exit 0 # already mounted as asked
    fi
    netfs_die "$mnt is already a mount point"
fi
[ -f "$rec" ] && "$here/netfs-umount.sh" "$mnt" >/dev/null 2>&1 || true
mkdir -p "$mnt"
log=$NETFS_STATE/logs/$id.log
: > "$log"
case $kind in
sshfs | rclone-off | rclone-writes)
    netfs_sshd
    remote=$NETFS_STATE/remote/$id
    rm -rf "$remote"
    mkdir -p "$remote"
    port=$(cat "$NETFS_STATE/sshd/port")
    if [ "$kind" = sshfs ]; then
        netfs_need sshfs:sshfs fusermount3:fuse3
        # shellcheck disable=SC2046
        sshfs -f -p "$port" $(netfs_ssh_opts) "root@127.0.0.1:$remote" "$mnt" >>"$log" 2>&1 </dev/null 9>&- &
        pid=$!
    else
        netfs_need rclone:rclone fusermount3:fuse3
        conf=$NETFS_STATE/rclone.conf
        echo "[127.0.0.1]:$port $(cut -d' ' -f1,2 "$NETFS_STATE/sshd/host_key.pub")" > "$NETFS_STATE/known_hosts"
        cat > "$conf" <<EOC
[loop]
type = sftp
host = 127.0.0.1
port = $port
user = root
key_file = $NETFS_STATE/sshd/client_key
known_hosts_file = $NETFS_STATE/known_hosts
EOC
        chmod 600 "$conf"
        mode=${kind#rclone-}
        cache=$NETFS_STATE/rclone-cache/$id
        rm -rf "$cache"
        rclone mount "loop:$remote" "$mnt" --config "$conf" --vfs-cache-mode "$mode" \
            --cache-dir "$cache" --log-file "$log" --log-level "${CONVEYOR_RCLONE_LOG:-NOTICE}" \
            --stats 0 >>"$log" 2>&1 </dev/null 9>&- &
        pid=$!
    fi
    ;;
s3fs)
    netfs_need s3fs:s3fs fusermount3:fuse3
    netfs_s3_server
    port=$(cat "$NETFS_STATE/s3/port")
    remote=cv-$id
    python3 - "$port" "$remote" <<'EOP'
import sys, urllib.request, urllib.error
req = urllib.request.Request(f"http://127.0.0.1:{sys.argv[1]}/{sys.argv[2]}", method="PUT")
try:
    urllib.request.urlopen(req).read()
except urllib.error.HTTPError as e:
    if e.code != 409:  # already there
        raise
EOP
    s3fs "$remote" "$mnt" -f -o "url=http://127.0.0.1:$port,use_path_request_style,passwd_file=$NETFS_STATE/s3/passwd,dbglevel=${CONVEYOR_S3FS_LOG:-warn}" >>"$log" 2>&1 </dev/null 9>&- &
    pid=$!
    ;;
*)
    echo "$0: unknown kind $kind (sshfs, rclone-off, rclone-writes, s3fs)" >&2; exit 2 ;;
esac
printf 'kind=%s\nmnt=%s\npid=%s\nremote=%s\nlog=%s\n' "$kind" "$mnt" "$pid" "$remote" "$log" > "$rec"
netfs_wait_mount "$mnt" "$pid" "$log"
