//! A python3 script exercising what a program may observe of its own
//! files (DESIGN.md section 2): seeks from every origin, os.pread/pwrite,
//! append modes, truncation of pending data, sizes by fd and by path while
//! data is pending, dup/dup2/dup3/F_DUPFD sharing offsets, readv/writev,
//! reads through another fd of a file being written, SEEK_DATA/SEEK_HOLE,
//! mmap and sendfile of a file with pending data. It prints every
//! observation; under the shim it must print exactly what it prints
//! without it and leave identical files.

mod common;

use common::{python, sum};
use conveyor_tests::{ok, tree, Run, TempDir};
use std::collections::HashMap;
use std::process::Output;

const SCRIPT: &str = r##"import fcntl, hashlib, mmap, os, random, shutil, sys

def show(*a):
    print(*a, flush=True)

def h(b):
    return hashlib.sha256(bytes(b)).hexdigest()[:16]

def data(n, seed):
    return random.Random(seed).randbytes(n)

def whole(path):
    # Read through a fresh descriptor of the same file.
    fd = os.open(path, os.O_RDONLY)
    out = bytearray()
    while True:
        b = os.read(fd, 65536)
        if not b:
            break
        out += b
    os.close(fd)
    return bytes(out)

def sizes(tag, path, fd):
    show(tag, "fstat", os.fstat(fd).st_size, "stat", os.stat(path).st_size,
         "lstat", os.lstat(path).st_size, "getsize", os.path.getsize(path))

# 1. seek: SEEK_SET, SEEK_CUR, SEEK_END, past the end, holes.
model = bytearray(data(10000, 1))
f = open("seek.bin", "w+b", buffering=0)
show("seek write", f.write(model))
show("seek set", f.seek(0, os.SEEK_SET), h(f.read(10)))
show("seek cur", f.seek(100, os.SEEK_CUR), f.tell(), h(f.read(33)), f.tell())
show("seek cur back", f.seek(-50, os.SEEK_CUR), h(f.read(50)))
show("seek end", f.seek(-50, os.SEEK_END), h(f.read(100)), f.tell())
show("seek past end", f.seek(4096, os.SEEK_END), f.write(b"X"), f.tell())
sizes("seek sizes", "seek.bin", f.fileno())
model += bytes(4096) + b"X"
show("seek hole", f.seek(9990), h(f.read(200)))
show("seek read eof", f.seek(0, os.SEEK_END), f.read(10), f.tell())
show("seek lseek end", os.lseek(f.fileno(), 0, os.SEEK_END))
show("seek same", whole("seek.bin") == bytes(model), h(whole("seek.bin")))
try:
    f.seek(-1, os.SEEK_SET)
except OSError as e:
    show("seek negative", e.errno)
f.close()

# 2. os.pread / os.pwrite: positioned, the offset stays where it was.
fd = os.open("p.bin", os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
model = bytearray(data(65536, 2))
show("pwrite", os.pwrite(fd, model, 0))
show("pwrite mid", os.pwrite(fd, b"abc", 5000))
model[5000:5003] = b"abc"
show("pwrite far", os.pwrite(fd, b"Z" * 10, 70000))
model += bytes(70000 - len(model)) + b"Z" * 10
show("pread", h(os.pread(fd, 20, 4990)), h(os.pread(fd, 100, 69950)),
     os.pread(fd, 10, 70005), os.pread(fd, 10, 80000))
show("offset after p*", os.lseek(fd, 0, os.SEEK_CUR))
sizes("p sizes", "p.bin", fd)
show("p other fd", whole("p.bin") == bytes(model))
show("p read", h(os.read(fd, 1000)), os.lseek(fd, 0, os.SEEK_CUR))
# Many small positioned writes backwards, then read through another fd.
for i in range(200):
    off = 60000 - i * 256
    os.pwrite(fd, bytes([i]) * 100, off)
    model[off:off + 100] = bytes([i]) * 100
g = os.open("p.bin", os.O_RDONLY)
ok = all(os.pread(g, 100, 60000 - i * 256) == bytes([i]) * 100 for i in range(200))
show("p small backwards via other fd", ok, h(os.pread(g, 100000, 0)))
os.close(g)
os.close(fd)
show("p closed", whole("p.bin") == bytes(model))

# 3. append: 'ab' (buffered and unbuffered) and os.O_APPEND.
with open("log.txt", "ab") as f:
    for i in range(100):
        f.write(b"buffered line %d\n" % i)
    show("ab tell", f.tell())
a = open("log.txt", "ab", buffering=0)
fd = os.open("log.txt", os.O_WRONLY | os.O_APPEND)
os.lseek(fd, 0, os.SEEK_SET)
for i in range(50):
    a.write(b"unbuffered %d\n" % i)
    os.write(fd, b"o_append %d\n" % i)
show("append offsets", a.tell(), os.lseek(fd, 0, os.SEEK_CUR))
show("append pwrite ignores offset", os.pwrite(fd, b"PW\n", 0))
sizes("append sizes", "log.txt", fd)
show("append read", h(whole("log.txt")), whole("log.txt")[:30])
a.close()
os.close(fd)
show("append lines", len(whole("log.txt").splitlines()))

# 4. truncate: f.truncate, os.ftruncate, os.truncate, with pending data.
f = open("t.bin", "w+b", buffering=0)
model = bytearray(data(50000, 4))
f.write(model)
show("truncate shrink", f.truncate(1000), f.tell())
sizes("truncate sizes", "t.bin", f.fileno())
del model[1000:]
f.write(b"Q")  # at 50000: a hole after the truncation
model += bytes(49000) + b"Q"
show("truncate hole", whole("t.bin") == bytes(model), os.fstat(f.fileno()).st_size)
os.ftruncate(f.fileno(), 70000)
model += bytes(70000 - len(model))
show("ftruncate grow", os.fstat(f.fileno()).st_size, whole("t.bin") == bytes(model))
f.seek(69990)
f.write(b"tail-bytes-over-the-end")
model[69990:] = b"tail-bytes-over-the-end"
os.ftruncate(f.fileno(), 70005)
del model[70005:]
show("ftruncate cut pending", os.fstat(f.fileno()).st_size, whole("t.bin") == bytes(model),
     f.tell())
os.pwrite(f.fileno(), b"before path truncate", 100)
model[100:120] = b"before path truncate"
os.truncate("t.bin", 110)
del model[110:]
show("path truncate", os.fstat(f.fileno()).st_size, whole("t.bin") == bytes(model),
     f.seek(0), h(f.read()))
f.close()

# 5. dup, dup2, dup3 (dup2 with inheritable=False), F_DUPFD: shared offsets.
fd = os.open("d.bin", os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
os.write(fd, b"hello")
fd2 = os.dup(fd)
os.write(fd2, b" world")
show("dup offsets", os.lseek(fd, 0, os.SEEK_CUR), os.lseek(fd2, 0, os.SEEK_CUR))
os.lseek(fd2, 0, os.SEEK_SET)
show("dup read", os.read(fd, 5), os.lseek(fd2, 0, os.SEEK_CUR))
os.close(fd)
os.write(fd2, b"!")
fd3 = os.dup2(fd2, 50)
fd4 = os.dup2(fd2, 51, inheritable=False)
fd5 = fcntl.fcntl(fd2, fcntl.F_DUPFD, 100)
os.write(fd3, b"[3]")
os.write(fd4, b"[4]")
os.write(fd5, b"[5]")
show("dup2 offsets", fd3, fd4, fd5 >= 100, os.lseek(fd2, 0, os.SEEK_CUR),
     os.lseek(fd3, 0, os.SEEK_END), os.lseek(fd4, 0, os.SEEK_CUR))
sizes("dup sizes", "d.bin", fd5)
show("dup content", whole("d.bin"))
# dup2 onto a managed fd with pending data: that file keeps its data.
other = os.open("other.bin", os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
os.write(other, b"pending in other")
os.dup2(fd2, other)
os.write(other, b"(via other)")
for x in (fd2, fd3, fd4, fd5, other):
    os.close(x)
show("dup2 onto", whole("other.bin"), whole("d.bin"))

# 6. readv / writev / preadv / pwritev.
fd = os.open("v.bin", os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
big = data(200000, 6)
show("writev", os.writev(fd, [b"ab", b"", b"cdef", big, b"end"]),
     os.lseek(fd, 0, os.SEEK_CUR))
os.lseek(fd, 1, os.SEEK_SET)
bufs = [bytearray(3), bytearray(10), bytearray(300000)]
show("readv", os.readv(fd, bufs), bytes(bufs[0]), bytes(bufs[1]), h(bufs[2]),
     os.lseek(fd, 0, os.SEEK_CUR))
show("pwritev", os.pwritev(fd, [b"PQ", b"RS"], 3), os.lseek(fd, 0, os.SEEK_CUR))
bufs = [bytearray(4), bytearray(4)]
show("preadv", os.preadv(fd, bufs, 0), bytes(bufs[0]), bytes(bufs[1]))
show("readv eof", os.readv(fd, [bytearray(10)]))
sizes("v sizes", "v.bin", fd)
show("v other fd", h(whole("v.bin")))
os.close(fd)

# 7. A writer and a reader of one file interleaved (read-ahead must see
#    every write made before each read), in small pieces.
w = open("rw.bin", "wb", buffering=0)
r = open("rw.bin", "rb", buffering=0)
got = bytearray()
want = bytearray()
for i in range(2000):
    piece = data(1 + (i * 37) % 3000, 1000 + i)
    w.write(piece)
    want += piece
    if i % 3 == 0:
        got += r.read(4096)
while True:
    b = r.read(65536)
    if not b:
        break
    got += b
show("interleaved", len(want), got == want, h(got))
sizes("interleaved sizes", "rw.bin", w.fileno())
w.close()
r.close()

# 8. SEEK_DATA / SEEK_HOLE after pending writes.
fd = os.open("sparse.bin", os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
os.pwrite(fd, b"D" * 4096, 1 << 20)
os.pwrite(fd, b"E" * 4096, 4 << 20)
try:
    show("seek_data", os.lseek(fd, 0, os.SEEK_DATA), os.lseek(fd, 1 << 20, os.SEEK_HOLE),
         os.lseek(fd, (1 << 20) + 8192, os.SEEK_DATA))
except OSError as e:
    show("seek_data error", e.errno)
show("sparse size", os.fstat(fd).st_size)
os.close(fd)

# 9. Handing a file with pending data to the kernel: sendfile and mmap (a
# shared writable mapping, after which nothing is managed in the process).
src = open("c.src", "wb", buffering=0)
src.write(data(300001, 10))
shutil.copyfile("c.src", "c.dst")
show("copyfile", h(whole("c.dst")), os.stat("c.dst").st_size)
src.close()
fd = os.open("m.bin", os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
os.write(fd, data(20000, 9))
os.write(fd, b"mapped-tail")
m = mmap.mmap(fd, 0)
show("mmap", len(m), h(m[:]), m[-11:])
m[0:4] = b"MMAP"
m.flush()
m.close()
os.write(fd, b"+after")
show("mmap after", os.lseek(fd, 0, os.SEEK_CUR), whole("m.bin")[:4], whole("m.bin")[-17:])
os.close(fd)

# 10. Everything as it ends up.
for name in sorted(os.listdir(".")):
    show("final", name, os.stat(name).st_size, h(whole(name)))
"##;

/// Files left by a run, as `conveyor_tests::tree` lists them.
type Tree = Vec<(String, String, Vec<u8>)>;

fn run(shim: bool, env: &[(&str, &str)]) -> (Output, HashMap<String, u64>, Tree) {
    let dir = TempDir::new(if shim { "py-shim" } else { "py-plain" });
    let mut r = Run::new(python().to_str().unwrap(), &["-c", SCRIPT], dir.path());
    for (k, v) in env {
        r = r.env(k, v);
    }
    let (out, counts) = if shim {
        r.shimmed(dir.path())
    } else {
        (r.plain(), HashMap::new())
    };
    ok(&out, &format!("python script (shim: {shim}, env: {env:?})"));
    let t = tree(dir.path());
    (out, counts, t)
}

fn compare(env: &[(&str, &str)]) {
    let (plain, _, plain_tree) = run(false, &[]);
    let (out, counts, shim_tree) = run(true, env);
    let p = String::from_utf8_lossy(&plain.stdout);
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(p.lines().count() > 60, "script printed too little:\n{p}");
    assert!(
        !p.contains(" False"),
        "the plain run contradicts the script's model:\n{p}"
    );
    for (a, b) in p.lines().zip(s.lines()) {
        assert_eq!(b, a, "first differing line under the shim ({env:?})");
    }
    assert_eq!(s, p, "stdout differs under the shim ({env:?})");
    assert_eq!(plain_tree.len(), shim_tree.len(), "different files");
    for (a, b) in plain_tree.iter().zip(&shim_tree) {
        assert_eq!((&b.0, &b.1), (&a.0, &a.1));
        assert!(b.2 == a.2, "{} differs under the shim ({env:?})", a.0);
    }
    // The script's calls really went through the shim.
    for family in [
        &["write"][..],
        &["read"],
        &["pread", "pread64"],
        &["pwrite", "pwrite64"],
        &["lseek", "lseek64"],
        &["readv"],
        &["writev"],
        &["preadv", "preadv64", "preadv2", "preadv64v2"],
        &["pwritev", "pwritev64", "pwritev2", "pwritev64v2"],
        &["ftruncate", "ftruncate64"],
        &["truncate", "truncate64"],
        &["fstat", "fstat64", "__fxstat64", "statx"],
        &[
            "stat",
            "stat64",
            "fstatat",
            "fstatat64",
            "statx",
            "__xstat64",
        ],
        &["dup2", "dup3"],
        &["fcntl", "fcntl64"],
        &["mmap", "mmap64"],
        &["sendfile", "sendfile64", "copy_file_range"],
    ] {
        assert!(
            sum(&counts, family) > 0,
            "no managed {family:?}: {counts:?}"
        );
    }
}

#[test]
fn python_file_semantics() {
    compare(&[]);
}

#[test]
fn python_file_semantics_tiny_buffers() {
    // Buffers smaller than most writes: back-pressure, direct large writes
    // and read-ahead windows shorter than the reads.
    compare(&[
        ("CONVEYOR_WRITE_BUFFER", "8K"),
        ("CONVEYOR_READ_AHEAD", "4K"),
        ("CONVEYOR_IO_SIZE", "4K"),
        ("CONVEYOR_MAX_MEMORY", "64K"),
    ]);
}
