//! The io_uring executor (`CONVEYOR_EXECUTOR=uring`) under real programs
//! on the slow test filesystem: their files are byte for byte those of
//! plain runs, the writes went through the ring (the report counts them)
//! and the reads did not (prefetches stay on the pool: see
//! `reads_of_a_direct_io_file_end_where_it_does`), a forked child does not
//! keep its parent's ring, and where the
//! kernel refuses io_uring (here: a seccomp filter, as containers set) the
//! pool does the work after one line at info. The whole suite also runs
//! with `CONVEYOR_EXECUTOR=uring` (scripts/test.sh).

use conveyor_engine::io_uring_available;
use conveyor_tests::slowfs::SlowFs;
use conveyor_tests::{compile_c, ok, pattern, root, Run, TempDir};
use serde_json::Value;
use std::path::Path;

/// The totals of the one report the run wrote in `dir`.
fn totals(dir: &Path) -> Value {
    let mut reports: Vec<Value> = std::fs::read_dir(dir)
        .expect("reports")
        .flatten()
        .map(|e| serde_json::from_slice(&std::fs::read(e.path()).unwrap()).expect("JSON report"))
        .collect();
    assert_eq!(reports.len(), 1, "one process, one report");
    reports.remove(0)["totals"].clone()
}

#[test]
fn programs_on_the_ring_write_and_read_what_plain_runs_do() {
    let fs = SlowFs::mount(&["--latency-ms", "1"]);
    let mnt = fs.mnt();
    let input = TempDir::new("uring-input");
    let src = input.path().join("in.bin");
    std::fs::write(&src, pattern(11, 6 << 20)).unwrap();
    let reports = TempDir::new("uring-reports");
    let stats = format!("{}/r-%p.json", reports.path().display());
    // dd in 4 KiB writes: batches on the ring.
    let dst = mnt.join("out.bin");
    let (out, _) = Run::new(
        "dd",
        &[
            &format!("if={}", src.display()),
            &format!("of={}", dst.display()),
            "bs=4k",
            "status=none",
        ],
        &mnt,
    )
    .env("CONVEYOR_EXECUTOR", "uring")
    .env("CONVEYOR_STATS", &stats)
    .shimmed(&mnt);
    ok(&out, "dd to the slow filesystem on the ring");
    assert!(
        std::fs::read(fs.backing().join("out.bin")).unwrap() == std::fs::read(&src).unwrap(),
        "dd's copy differs"
    );
    let t = totals(reports.path());
    let wrote = t["ring_requests"].as_u64().expect("ring_requests");
    // cat reads it back: prefetches on the pool.
    for e in std::fs::read_dir(reports.path()).unwrap().flatten() {
        std::fs::remove_file(e.path()).unwrap();
    }
    let (out, _) = Run::new("cat", &["out.bin"], &mnt)
        .env("CONVEYOR_EXECUTOR", "uring")
        .env("CONVEYOR_STATS", &stats)
        .shimmed(&mnt);
    ok(&out, "cat from the slow filesystem on the ring");
    assert!(
        out.stdout == std::fs::read(&src).unwrap(),
        "cat's output differs"
    );
    let read = totals(reports.path())["ring_requests"].as_u64().unwrap();
    assert_eq!(read, 0, "a prefetch of cat's went through the ring");
    if io_uring_available() {
        assert!(wrote > 0, "no write of dd's went through the ring");
    } else {
        assert_eq!(wrote, 0);
    }
}

/// A FUSE file opened for direct I/O (no page cache, as network
/// filesystems without client caching): reads end where the file ends.
/// On Linux 6.18 an io_uring read crossing the end of such a file reports
/// the whole length asked for; with prefetches on the ring, `cat` printed
/// 176 KiB past the end of a 50 MiB file.
#[test]
fn reads_of_a_direct_io_file_end_where_it_does() {
    let fs = SlowFs::mount(&["--latency-ms", "0", "--direct-io"]);
    let mnt = fs.mnt();
    // Not a multiple of any chunk or page size.
    let want = pattern(13, (5 << 20) + 1234);
    std::fs::write(fs.backing().join("in.bin"), &want).unwrap();
    let (out, _) = Run::new("cat", &["in.bin"], &mnt)
        .env("CONVEYOR_EXECUTOR", "uring")
        .shimmed(&mnt);
    ok(&out, "cat of a direct-I/O file");
    assert_eq!(out.stdout.len(), want.len(), "cat read past the end");
    assert!(out.stdout == want, "cat's output differs");
    let script = "import sys\nf = open('in.bin', 'rb')\nn = 0\nwhile True:\n    b = f.read(4096)\n    if not b: break\n    sys.stdout.buffer.write(b)\n";
    let (out, _) = Run::new("python3", &["-c", script], &mnt)
        .env("CONVEYOR_EXECUTOR", "uring")
        .shimmed(&mnt);
    ok(&out, "python3 reading a direct-I/O file in 4 KiB reads");
    assert!(out.stdout == want, "python3's reads differ");
}

/// A forked child finds no io_uring descriptor of its parent's, writes
/// through a ring of its own, and both files are whole.
#[test]
fn a_forked_child_gets_a_ring_of_its_own() {
    let fs = SlowFs::mount(&["--latency-ms", "1"]);
    let mnt = fs.mnt();
    let script = r#"
import os
def rings():
    n = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink("/proc/self/fd/" + fd) == "anon_inode:[io_uring]":
                n += 1
        except OSError:
            pass
    return n
with open("parent.dat", "wb") as f:
    # More than a request's worth: written in the background, on the ring.
    for i in range(200000):
        f.write(b"p%06d\n" % i)
    f.flush()
    before = rings()
    pid = os.fork()
    if pid == 0:
        inherited = rings()
        with open("child.dat", "wb") as c:
            for i in range(3000):
                c.write(b"c%05d\n" % i)
                c.flush()
        print("child inherited", inherited, flush=True)
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    for i in range(200000, 203000):
        f.write(b"p%06d\n" % i)
        f.flush()
print("parent rings", before, "child status", status)
"#;
    let (out, _) = Run::new("python3", &["-c", script], &mnt)
        .env("CONVEYOR_EXECUTOR", "uring")
        .shimmed(&mnt);
    ok(&out, "python3 forking on the ring");
    let want_rings = usize::from(io_uring_available());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("child inherited 0\nparent rings {want_rings} child status 0\n")
    );
    let read = |n: &str| std::fs::read(fs.backing().join(n)).unwrap();
    let parent: Vec<u8> = (0..203000)
        .flat_map(|i| format!("p{i:06}\n").into_bytes())
        .collect();
    let child: Vec<u8> = (0..3000)
        .flat_map(|i| format!("c{i:05}\n").into_bytes())
        .collect();
    assert!(read("parent.dat") == parent, "parent's file differs");
    assert!(read("child.dat") == child, "child's file differs");
}

#[test]
fn a_refused_ring_leaves_the_work_to_the_pool_with_one_line() {
    let dir = TempDir::new("noring");
    let bin = dir.path().join("refuse");
    compile_c(&root().join("tests/c/refuse.c"), &bin, &[]);
    let fs = SlowFs::mount(&["--latency-ms", "1"]);
    let mnt = fs.mnt();
    let src = dir.path().join("in.bin");
    std::fs::write(&src, pattern(12, 3 << 20)).unwrap();
    let reports = TempDir::new("noring-reports");
    let (out, _) = Run::new(
        bin.to_str().unwrap(),
        &[
            "io_uring_setup",
            "dd",
            &format!("if={}", src.display()),
            "of=out.bin",
            "bs=4k",
            "status=none",
        ],
        &mnt,
    )
    .env("CONVEYOR_EXECUTOR", "uring")
    .env("CONVEYOR_LOG", "info")
    .env(
        "CONVEYOR_STATS",
        &format!("{}/r-%p.json", reports.path().display()),
    )
    .shimmed(&mnt);
    ok(&out, "dd with io_uring refused");
    let err = String::from_utf8_lossy(&out.stderr);
    let said: Vec<&str> = err
        .lines()
        .filter(|l| l.contains("io_uring is not available"))
        .collect();
    assert_eq!(said.len(), 1, "one line says why: {err}");
    assert!(
        said[0].contains("Operation not permitted") && said[0].contains("worker pool"),
        "{}",
        said[0]
    );
    assert_eq!(totals(reports.path())["ring_requests"].as_u64(), Some(0));
    assert!(
        std::fs::read(fs.backing().join("out.bin")).unwrap() == std::fs::read(&src).unwrap(),
        "dd's copy differs"
    );
}

/// The kernel cancels the requests a thread left in its io_uring workers
/// when the thread exits (`ECANCELED`), and programs end threads all the
/// time. Threads here each write a file and end at once, while a batch
/// they started may still wait for the kernel; every byte must arrive.
/// (Without the fix this failed about one run in three; the engine's
/// `ring::tests` hold the same case deterministically.)
#[test]
fn writes_of_a_thread_that_ended_still_arrive() {
    let fs = SlowFs::mount(&["--write-ms", "5"]);
    let mnt = fs.mnt();
    let script = r#"
import os, sys, threading
root = sys.argv[1]
block = bytes(range(256)) * 16
def writer(i):
    fd = os.open(os.path.join(root, f"t{i}"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    fds.append(fd)
    for _ in range(4):
        os.write(fd, block * 128)
fds = []
for round in range(16):
    threads = [threading.Thread(target=writer, args=(round * 2 + t,)) for t in range(2)]
    for t in threads: t.start()
    for t in threads: t.join()
for fd in fds: os.close(fd)
"#;
    let (out, _) = Run::new("python3", &["-c", script, &mnt.display().to_string()], &mnt)
        .env("CONVEYOR_EXECUTOR", "uring")
        .shimmed(&mnt);
    ok(&out, "threads writing on the ring");
    let block: Vec<u8> = (0..=255u8).cycle().take(4096).collect();
    for i in 0..32 {
        let data = std::fs::read(fs.backing().join(format!("t{i}"))).unwrap();
        assert_eq!(data.len(), 512 * 4096, "file t{i} is {} bytes", data.len());
        assert!(
            data.chunks(4096).all(|c| c == block.as_slice()),
            "file t{i} differs"
        );
    }
}
