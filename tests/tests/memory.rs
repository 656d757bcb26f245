//! Memory stays bounded by CONVEYOR_MAX_MEMORY while 8 threads write 1,000
//! files at once on slow storage: writers wait, none fails, every byte
//! arrives. The bound checked is the cap plus a fixed overhead stated here.

use conveyor_tests::slowfs::SlowFs;
use conveyor_tests::{ok, Run};

/// Peak RSS allowed above the cap: the interpreter itself (~10 MiB), the
/// engine's free lists (4 MiB of segments, 8 MiB of read-ahead buffers),
/// 16 worker stacks, and per-file bookkeeping for 1,000 files.
const OVERHEAD_MIB: u64 = 48;
const CAP_MIB: u64 = 32;

const SCRIPT: &str = r#"
import os, sys, threading, hashlib
root, per_file = sys.argv[1], int(sys.argv[2])
files = [os.open(os.path.join(root, f"f{i:04}"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644) for i in range(1000)]
block = bytes(range(256)) * 16  # 4 KiB
errors = []
def writer(t):
    try:
        for k in range(per_file // len(block)):
            for i in range(t, 1000, 8):
                os.write(files[i], block)
    except OSError as e:
        errors.append(e)
threads = [threading.Thread(target=writer, args=(t,)) for t in range(8)]
for t in threads: t.start()
for t in threads: t.join()
for fd in files: os.close(fd)
hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM")][0].split()[1]
print("errors", len(errors))
for e in errors[:4]: print("error", repr(e))
print("hwm_kib", hwm)
"#;

#[test]
fn thousand_files_eight_threads_under_the_cap() {
    let fs = SlowFs::mount(&["--write-ms", "0.2"]);
    let per_file = 256 * 1024;
    let cmd = format!(
        "ulimit -n 4096 && exec python3 -c '{}' {} {}",
        SCRIPT.replace('\'', "'\\''"),
        fs.mnt().display(),
        per_file
    );
    let (out, counts) = Run::new("sh", &["-c", &cmd], &fs.mnt())
        .env("CONVEYOR_MAX_MEMORY", &format!("{CAP_MIB}M"))
        .shimmed(&fs.mnt());
    ok(&out, "the writer under the shim");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("errors 0"),
        "a writer failed: {text}\nstderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("{text}");
    let hwm_kib: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("hwm_kib "))
        .and_then(|v| v.trim().parse().ok())
        .expect("no VmHWM line");
    assert!(
        hwm_kib < (CAP_MIB + OVERHEAD_MIB) * 1024,
        "peak RSS {hwm_kib} KiB over {CAP_MIB} MiB cap + {OVERHEAD_MIB} MiB overhead"
    );
    // The writes went through the engine (not around it) ...
    assert!(
        counts.get("write").copied().unwrap_or(0) >= 1000 * 64,
        "writes not managed: {counts:?}"
    );
    // ... and every file is complete on storage.
    let block: Vec<u8> = (0..=255u8).cycle().take(4096).collect();
    for i in 0..1000 {
        let data = std::fs::read(fs.backing().join(format!("f{i:04}"))).unwrap();
        assert_eq!(data.len(), per_file, "file {i} is {} bytes", data.len());
        assert!(
            data.chunks(4096).all(|c| c == block.as_slice()),
            "file {i} content differs"
        );
    }
}
