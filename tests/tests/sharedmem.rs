//! A process that maps a selected file shared and writable (sqlite's WAL
//! index, `-shm`) can tell other processes about its writes by storing into
//! that memory, which no hook sees. From that moment nothing of it may be
//! buffered or cached: every file is handed to the kernel and later opens
//! pass through (DESIGN.md section 2, locks and barriers).

mod common;

use common::{python, sum};
use conveyor_tests::slowfs::SlowFs;
use conveyor_tests::{ok, Run, TempDir};

// Writes to `data` under the shim, maps `index` shared and writable, and
// then reads `data` with a raw pread64 system call, which no hook sees:
// what the kernel has is what any other process would find. Without the
// rule, the bytes written before the mapping are still in the shim's buffer
// on slow storage (the raw read is short), and the later writes are
// buffered too.
const SCRIPT: &str = r#"import ctypes, mmap, os, sys
libc = ctypes.CDLL(None, use_errno=True)
SYS_pread64 = 17

def kernel_view(fd, n):
    buf = ctypes.create_string_buffer(n)
    r = libc.syscall(SYS_pread64, fd, buf, ctypes.c_size_t(n), ctypes.c_long(0))
    return buf.raw[:max(r, 0)]

d = os.open("data", os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
for i in range(256):
    os.write(d, bytes([i]) * 16)
before = kernel_view(d, 8192)
i = os.open("index", os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
os.ftruncate(i, 4096)
m = mmap.mmap(i, 4096, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
m[0:4] = b"head"
after_map = kernel_view(d, 8192)
os.write(d, b"tail" * 4)
after_write = kernel_view(d, 8192)
n = os.open("new", os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
os.write(n, b"fresh")
fresh = kernel_view(n, 100)
expect = b"".join(bytes([i]) * 16 for i in range(256))
print("buffered-before-map", len(before) < len(expect))
print("after-map", after_map == expect)
print("after-write", after_write == expect + b"tail" * 4)
print("new-open", fresh == b"fresh")
"#;

#[test]
fn shared_writable_mapping_ends_buffering_in_the_process() {
    // Slow writes keep the data pending long enough to see it buffered.
    let fs = SlowFs::mount(&["--write-ms", "300"]);
    let dir = fs.mnt();
    std::fs::write(dir.join("t.py"), SCRIPT).unwrap();
    let py = python().to_str().unwrap();
    let (out, counts) = Run::new(py, &["t.py"], &dir).shimmed(&dir);
    ok(&out, "python3 mapping a file shared");
    // The first line shows the shim did buffer before the mapping (else the
    // test would prove nothing); the rest that it stopped at the mapping.
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "buffered-before-map True\nafter-map True\nafter-write True\nnew-open True\n"
    );
    assert!(sum(&counts, &["mmap", "mmap64"]) > 0, "{counts:?}");
    // The 256 writes before the mapping were managed, none after it.
    assert_eq!(counts.get("write").copied(), Some(256), "{counts:?}");
}

#[test]
fn private_or_read_only_mappings_keep_buffering() {
    // Only a shared *writable* mapping is a channel to other processes; a
    // program that maps a file to read it keeps its other files buffered.
    let dir = TempDir::new("sharedmem-ro");
    let script = r#"import mmap, os
open("index", "wb").write(b"x" * 4096)
i = os.open("index", os.O_RDONLY)
m = mmap.mmap(i, 4096, mmap.MAP_SHARED, mmap.PROT_READ)
p = mmap.mmap(i, 4096, mmap.MAP_PRIVATE, mmap.PROT_READ | mmap.PROT_WRITE)
d = os.open("data", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
for k in range(100):
    os.write(d, b"y" * 100)
os.close(d)
print(os.path.getsize("data"), m[:1], p[:1])
"#;
    std::fs::write(dir.path().join("t.py"), script).unwrap();
    let py = python().to_str().unwrap();
    let (out, counts) = Run::new(py, &["t.py"], dir.path()).shimmed(dir.path());
    ok(&out, "python3 mapping a file to read");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "10000 b'x' b'x'\n");
    assert!(
        counts.get("write").copied().unwrap_or(0) >= 100,
        "writes after a read-only mapping were not managed: {counts:?}"
    );
}
