#!/usr/bin/env bash
# Builds conveyor and runs real programs on slow storage (conveyor-slowfs,
# 1 ms per request) with and without the shim, checking that the results are
# byte-for-byte identical:
#   GNU dd writing 16 MiB in 4 KiB blocks (and in 1 MiB blocks: the storage's limit),
#   python3 appending 5,000 log lines, one write each.
# Then the engine's own benchmark (mock storage sleeping 2 ms per request).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
SO="$PWD/target/release/libconveyor_preload.so"
work=$(mktemp -d /tmp/conveyor-demo.XXXXXX)
mnt="$work/slow"
cleanup() { bash scripts/slowfs-umount.sh "$mnt" >/dev/null 2>&1 || true; rm -rf "$work"; }
trap cleanup EXIT
bash scripts/slowfs-mount.sh "$work/backing" "$mnt" --latency-ms 1

now() { date +%s.%N; }
run() { # run LABEL CMD...: prints seconds
    local t0 t1
    t0=$(now); "$@" >/dev/null 2>&1; t1=$(now)
    echo "$t0 $t1" | awk '{printf "%.3f", $2 - $1}'
}
shim() { env LD_PRELOAD="$SO" CONVEYOR_PATHS="$mnt" "$@"; }
ratio() { echo "$1 $2" | awk '{printf "%.1fx", $1 / $2}'; }

echo "== dd writing 16 MiB to slow storage (1 ms per request) =="
a=$(run dd if=/dev/zero of="$mnt/plain4k" bs=4k count=4096)
b=$(run shim dd if=/dev/zero of="$mnt/shim4k" bs=4k count=4096)
c=$(run dd if=/dev/zero of="$mnt/plain1m" bs=1M count=16)
cmp "$mnt/plain4k" "$mnt/shim4k"
echo "bs=4k without conveyor: ${a} s"
echo "bs=4k with conveyor:    ${b} s   ($(ratio "$a" "$b") faster, identical output)"
echo "bs=1M without conveyor: ${c} s   (the storage's limit; conveyor's 4k run is $(ratio "$b" "$c") of it)"

echo "== python3 appending 5,000 log lines, one write each =="
log='import os, sys
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
for i in range(5000):
    os.write(fd, f"line {i}\n".encode())
os.close(fd)'
a=$(run python3 -c "$log" "$mnt/plain.log")
b=$(run shim python3 -c "$log" "$mnt/shim.log")
cmp "$mnt/plain.log" "$mnt/shim.log"
echo "without conveyor: ${a} s   with conveyor: ${b} s   ($(ratio "$a" "$b") faster, identical output)"

echo "== the engine on mock storage sleeping 2 ms per request =="
cargo run --release --quiet -p conveyor-bench -- --local-mib 16
