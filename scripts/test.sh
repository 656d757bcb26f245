#!/usr/bin/env bash
# Runs every test: installs what the tests use if it is missing (fuse3 for
# the slow test filesystem, fio, sqlite3, git, python3, gcc, rsync, make,
# postmark (the benchmark's smoke test runs every case), bonnie++; for the
# tests on real network filesystems, all on 127.0.0.1: openssh-server,
# sshfs, rclone, s3fs, and moto's S3 server from PyPI), then runs the
# whole suite twice, once with each executor of background requests and
# each way of keeping pending writes:
#   CONVEYOR_EXECUTOR=pool CONVEYOR_CRASH_SAFE=on cargo test --release --workspace
#   CONVEYOR_EXECUTOR=uring CONVEYOR_CRASH_SAFE=off cargo test --release --workspace
# (every program the tests start under the shim inherits the variables;
# tests/tests/uring.rs checks the ring is used, and what happens where the
# kernel refuses it; tests/tests/crash.rs sets crash safety itself), and
# stops the servers those tests started (scripts/netfs-stop.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
need=()
for tool in fusermount3:fuse3 fio:fio sqlite3:sqlite3 git:git python3:python3 cc:gcc rsync:rsync \
    make:make postmark:postmark bonnie++:bonnie++ \
    sshd:openssh-server ssh:openssh-client sshfs:sshfs rclone:rclone s3fs:s3fs; do
    command -v "${tool%%:*}" >/dev/null || need+=("${tool#*:}")
done
if [ ${#need[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends ca-certificates libc6-dev "${need[@]}" >/dev/null
    else
        echo "$0: the tests need: ${need[*]} (Debian packages); install them and run again" >&2
        exit 1
    fi
fi
if ! python3 -c 'import moto.server, boto3' 2>/dev/null; then
    python3 -m pip install -q 'moto[server]' || { echo "$0: cannot install moto[server] from PyPI" >&2; exit 1; }
fi
[ -e /dev/fuse ] || { echo "$0: /dev/fuse is missing: the slow test filesystem cannot mount" >&2; exit 1; }
trap 'bash scripts/netfs-stop.sh' EXIT
for pass in pool:on uring:off; do
    executor=${pass%%:*} crash_safe=${pass#*:}
    echo "== the whole suite with CONVEYOR_EXECUTOR=$executor CONVEYOR_CRASH_SAFE=$crash_safe" >&2
    CONVEYOR_EXECUTOR=$executor CONVEYOR_CRASH_SAFE=$crash_safe cargo test --release --workspace
done
