#!/usr/bin/env bash
# Runs every test: installs what the tests use if it is missing (fuse3 for
# the slow test filesystem, fio, sqlite3, git, python3, gcc), then
#   cargo test --release --workspace
set -euo pipefail
cd "$(dirname "$0")/.."
need=()
for tool in fusermount3:fuse3 fio:fio sqlite3:sqlite3 git:git python3:python3 cc:gcc; do
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
[ -e /dev/fuse ] || { echo "$0: /dev/fuse is missing: the slow test filesystem cannot mount" >&2; exit 1; }
cargo test --release --workspace
