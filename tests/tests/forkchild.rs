//! A forked child that keeps running (no exec) gets fresh management: files
//! it opens are buffered by an engine and workers of its own, what it
//! inherited passes through, and the parent goes on as before (DESIGN.md
//! section 2, fork). Before this, a child passed everything through: its
//! report then had no file and its 2,000 writes reached storage one by one.

mod common;

use common::python;
use conveyor_tests::slowfs::SlowFs;
use conveyor_tests::{ok, Run};

const SCRIPT: &str = r#"import json, os, sys
W = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
log = os.open("shared.log", W, 0o644)
os.set_inheritable(log, True)          # shared with the child: passes through
own = os.open("parent.dat", W, 0o644)  # O_CLOEXEC: the parent keeps buffering it
os.write(log, b"parent-1\n")
for i in range(500):
    os.write(own, b"p%05d\n" % i)
pid = os.fork()
if pid == 0:
    fd = os.open("child.dat", os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
    for i in range(2000):
        os.write(fd, b"c%05d\n" % i)
    # Read after write inside the child, through another descriptor.
    r = os.open("child.dat", os.O_RDONLY)
    back = b""
    while True:
        b = os.read(r, 5000)
        if not b:
            break
        back += b
    os.write(log, b"child\n")
    os._exit(0 if back == b"".join(b"c%05d\n" % i for i in range(2000)) else 3)
_, status = os.waitpid(pid, 0)
os.write(log, b"parent-2\n")
for i in range(500, 1000):
    os.write(own, b"p%05d\n" % i)
os.close(own)
os.close(log)
rep = json.load(open(sys.argv[1] + "/report-%d.json" % pid))
row = [f for f in rep["files"] if f["path"].endswith("/child.dat")][0]
print("child status", status)
print("child writes", row["app_write_calls"])
print("child requests few", 0 < row["storage_write_requests"] <= 200)
print("child report lists only its own files",
      sorted(os.path.basename(f["path"]) for f in rep["files"]))
"#;

#[test]
fn forked_child_manages_its_own_files() {
    let fs = SlowFs::mount(&["--latency-ms", "1"]);
    let dir = fs.mnt();
    let reports = conveyor_tests::TempDir::new("forkchild-reports");
    std::fs::write(dir.join("t.py"), SCRIPT).unwrap();
    let py = python().to_str().unwrap();
    let rep = reports.path().to_str().unwrap();
    let (out, _) = Run::new(py, &["t.py", rep], &dir)
        .env("CONVEYOR_STATS", &format!("{rep}/report-%p.json"))
        .shimmed(&dir);
    ok(&out, "python3 forking a child that writes");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "child status 0\nchild writes 2000\nchild requests few True\n\
         child report lists only its own files ['child.dat']\n"
    );
    let read = |n: &str| std::fs::read(fs.backing().join(n)).unwrap();
    assert_eq!(read("shared.log"), b"parent-1\nchild\nparent-2\n");
    let parent: Vec<u8> = (0..1000)
        .flat_map(|i| format!("p{i:05}\n").into_bytes())
        .collect();
    assert_eq!(read("parent.dat"), parent);
    let child: Vec<u8> = (0..2000)
        .flat_map(|i| format!("c{i:05}\n").into_bytes())
        .collect();
    assert_eq!(read("child.dat"), child);
}
