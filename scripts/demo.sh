#!/usr/bin/env bash
# Builds conveyor and runs it on real programs: GNU dd copying 64 MiB in
# 4 KiB blocks, and python3 appending a log line by line, each with and
# without the shim, checking the results are identical; then the engine's
# slow-storage benchmark (mock storage sleeping 2 ms per request).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
SO="$PWD/target/release/libconveyor_preload.so"
dir=$(mktemp -d /tmp/conveyor-demo.XXXXXX)
trap 'rm -rf "$dir"' EXIT
head -c $((64 << 20)) /dev/urandom > "$dir/src.bin"

secs() { python3 -c 'import sys,time; t=time.perf_counter(); import subprocess; subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL); print(f"{time.perf_counter()-t:.3f}")' "$@"; }

echo "== dd bs=4k, 64 MiB, $dir (local disk) =="
plain=$(secs dd if="$dir/src.bin" of="$dir/plain.bin" bs=4k)
shim=$(secs env LD_PRELOAD="$SO" CONVEYOR_PATHS="$dir" dd if="$dir/src.bin" of="$dir/shim.bin" bs=4k)
cmp "$dir/plain.bin" "$dir/shim.bin"
echo "without conveyor: ${plain} s   with conveyor: ${shim} s   (outputs identical)"

echo "== python3 appending 200,000 log lines =="
log='import sys
with open(sys.argv[1], "a") as f:
    for i in range(200000):
        f.write(f"line {i}\n"); f.flush()'
plain=$(secs python3 -c "$log" "$dir/plain.log")
shim=$(secs env LD_PRELOAD="$SO" CONVEYOR_PATHS="$dir" python3 -c "$log" "$dir/shim.log")
cmp "$dir/plain.log" "$dir/shim.log"
echo "without conveyor: ${plain} s   with conveyor: ${shim} s   (outputs identical)"

echo "== engine on slow storage (2 ms per request) =="
cargo run --release --quiet -p conveyor-bench
