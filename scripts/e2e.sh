#!/usr/bin/env bash
# The end-to-end benchmark: real programs on conveyor's slow test filesystem
# (several latencies, page cache and direct I/O) and on tmpfs, with and
# without the shim (and libeatmydata as a peer), alternating, with medians
# and ratios. Installs what it runs when missing (Debian: fio, sqlite3,
# fuse3, eatmydata, valgrind, make, gcc, git, postmark), builds, then runs
#   cargo run --release -p conveyor-bench --bin e2e -- "$@"
# Results: benches/results/{results.md,results.json,speedup.svg}
# (target/e2e-quick/ with --quick). About 30 minutes on 2 cores before
# the make, git and postmark cases were added; --quick about 2.5 minutes.
# --busy [N] runs N (default 2) CPU-bound processes beside it, to measure
# on a machine that is not idle.
set -euo pipefail
cd "$(dirname "$0")/.."
need=()
for tool in fusermount3:fuse3 fio:fio sqlite3:sqlite3 eatmydata:eatmydata valgrind:valgrind python3:python3 \
    make:make cc:gcc git:git postmark:postmark; do
    command -v "${tool%%:*}" >/dev/null || need+=("${tool#*:}")
done
if [ ${#need[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        export DEBIAN_FRONTEND=noninteractive
        apt-get install -y -qq "${need[@]}" >/dev/null 2>&1 || {
            apt-get update -qq && apt-get install -y -qq "${need[@]}" >/dev/null; }
    else
        echo "$0: install these Debian packages first: ${need[*]}" >&2
        exit 1
    fi
fi
cargo build --release --quiet
exec cargo run --release --quiet -p conveyor-bench --bin e2e -- "$@"
