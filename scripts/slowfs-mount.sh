#!/usr/bin/env bash
# Mounts conveyor's slow test filesystem in the background.
#   scripts/slowfs-mount.sh BACKING_DIR MOUNTPOINT [conveyor-slowfs options...]
# e.g. scripts/slowfs-mount.sh /tmp/backing /tmp/slow --latency-ms 1
# Installs fuse3 (fusermount3) if missing, builds the filesystem, waits until
# the mount is live, and writes the server's pid to MOUNTPOINT.pid.
# Unmount with scripts/slowfs-umount.sh MOUNTPOINT.
set -euo pipefail
[ $# -ge 2 ] || { echo "usage: $0 BACKING_DIR MOUNTPOINT [options]" >&2; exit 2; }
backing=$1 mnt=$2; shift 2
cd "$(dirname "$0")/.."
if ! command -v fusermount3 >/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fuse3 >/dev/null || {
            apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fuse3 >/dev/null; }
    else
        echo "$0: fusermount3 is missing: install Debian's fuse3 package" >&2; exit 1
    fi
fi
cargo build --release --quiet -p conveyor-slowfs
mkdir -p "$backing" "$mnt"
log="${mnt%/}.log"
./target/release/conveyor-slowfs "$@" "$backing" "$mnt" 2>"$log" &
pid=$!
echo "$pid" > "${mnt%/}.pid"
for _ in $(seq 100); do
    if grep -qs " $(realpath "$mnt") fuse" /proc/mounts; then
        exit 0
    fi
    if ! kill -0 "$pid" 2>/dev/null; then
        echo "$0: conveyor-slowfs exited:" >&2; cat "$log" >&2; exit 1
    fi
    sleep 0.05
done
echo "$0: mount did not appear on $mnt" >&2
exit 1
