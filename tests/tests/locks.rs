//! Locks as barriers between processes (DESIGN.md section 2): a reader that
//! has a file in its read-ahead cache takes a lock and must then see what
//! another process wrote under its own lock, with `lockf` (POSIX record
//! locks), `flock` and open file description (OFD) locks.
//!
//! Both processes run under the shim and keep their descriptors open, so no
//! `close` publishes anything: only the lock calls do. The file lives on the
//! slow filesystem at 20 ms per request. Without the handling this fails in
//! two ways, each checked by disabling one half: the writer's last writes
//! are still queued when it unlocks (the reader sees some `a`), or the
//! reader serves the range from its read-ahead cache filled before the
//! update (it sees `a` for everything it had prefetched).

mod common;

use common::python;
use conveyor_tests::slowfs::SlowFs;
use conveyor_tests::{read_counts, shim, TempDir};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// One script for both roles; `sys.argv[1]` picks the role and
/// `sys.argv[2]` the lock kind. Each step waits for a line on stdin and
/// answers with a line on stdout, so the test orders the two processes.
const SCRIPT: &str = r#"
import fcntl, os, struct, sys

role, kind = sys.argv[1], sys.argv[2]
BLOCK = 4096
SKIP = 4 * BLOCK            # what the reader reads before the update
fd = os.open("data.bin", os.O_RDWR)

def lock(exclusive):
    if kind == "lockf":
        fcntl.lockf(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
    elif kind == "flock":
        fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
    else:
        t = fcntl.F_WRLCK if exclusive else fcntl.F_RDLCK
        fcntl.fcntl(fd, fcntl.F_OFD_SETLKW, struct.pack("hhqqi4x", t, 0, 0, 0, 0))

def unlock():
    if kind == "lockf":
        fcntl.lockf(fd, fcntl.LOCK_UN)
    elif kind == "flock":
        fcntl.flock(fd, fcntl.LOCK_UN)
    else:
        fcntl.fcntl(fd, fcntl.F_OFD_SETLK, struct.pack("hhqqi4x", fcntl.F_UNLCK, 0, 0, 0, 0))

def say(text):
    sys.stdout.write(text + "\n")
    sys.stdout.flush()

if role == "reader":
    for _ in range(SKIP // BLOCK):
        assert os.read(fd, BLOCK) == b"a" * BLOCK
    say("cached")
    sys.stdin.readline()
    lock(False)
    rest = b""
    while True:
        b = os.read(fd, BLOCK)
        if not b:
            break
        rest += b
    unlock()
    say("saw %d b of %d" % (rest.count(b"b"), len(rest)))
else:
    lock(True)
    # The block the reader reads first is written last, so that without a
    # flush at unlock it is still queued when the reader gets there.
    os.lseek(fd, SKIP + BLOCK, os.SEEK_SET)
    size = os.fstat(fd).st_size
    while os.lseek(fd, 0, os.SEEK_CUR) < size:
        os.write(fd, b"b" * BLOCK)
    os.pwrite(fd, b"b" * BLOCK, SKIP)
    unlock()
    say("written")
    sys.stdin.readline()
"#;

const SIZE: usize = 1 << 20;
const SKIP: usize = 4 * 4096;

fn spawn(dir: &Path, counts: &Path, role: &str, kind: &str) -> Child {
    Command::new(python())
        .args(["-c", SCRIPT, role, kind])
        .current_dir(dir)
        .env("LD_PRELOAD", shim())
        .env("CONVEYOR_MODE", "always")
        .env("CONVEYOR_PATHS", dir)
        .env("CONVEYOR_TEST_COUNTS", counts.join("counts-%p"))
        // Outlives both children, like the counts.
        .env("CONVEYOR_LIVE_DIR", counts.join("live"))
        .env_remove("CONVEYOR_DISABLE")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start python3 under the shim")
}

/// Reads one line the child printed; an empty string when it ended.
fn line(child: &mut Child) -> String {
    let mut s = String::new();
    let out = child.stdout.as_mut().expect("piped stdout");
    BufReader::new(out).read_line(&mut s).expect("read child");
    s.trim().to_string()
}

fn tell(child: &mut Child) {
    let input = child.stdin.as_mut().expect("piped stdin");
    input.write_all(b"go\n").expect("write child");
    input.flush().expect("flush child");
}

fn reader_sees_update(kind: &str) {
    // On slow storage the writer's background flush is still under way
    // when it unlocks, so only the flush at unlock can publish the update.
    let fs = SlowFs::mount(&["--latency-ms", "20"]);
    let mnt = fs.mnt();
    let dir = mnt.as_path();
    let counts = TempDir::new(&format!("locks-counts-{kind}"));
    std::fs::write(dir.join("data.bin"), vec![b'a'; SIZE]).unwrap();

    let mut reader = spawn(dir, counts.path(), "reader", kind);
    assert_eq!(line(&mut reader), "cached", "reader did not start");
    let mut writer = spawn(dir, counts.path(), "writer", kind);
    assert_eq!(line(&mut writer), "written", "writer did not finish");
    tell(&mut reader);
    let saw = line(&mut reader);
    tell(&mut writer);
    assert!(reader.wait().unwrap().success(), "reader failed");
    assert!(writer.wait().unwrap().success(), "writer failed");

    let rest = SIZE - SKIP;
    assert_eq!(
        saw,
        format!("saw {rest} b of {rest}"),
        "{kind}: the reader did not see the update made under the lock"
    );
    let want: Vec<u8> = (0..SIZE)
        .map(|i| if i < SKIP { b'a' } else { b'b' })
        .collect();
    assert!(
        std::fs::read(dir.join("data.bin")).unwrap() == want,
        "{kind}: the file on storage is not the update"
    );
    let c = read_counts(counts.path());
    assert!(
        c.get("write").copied().unwrap_or(0) + c.get("pwrite64").copied().unwrap_or(0)
            >= ((SIZE - SKIP) / 4096) as u64
            && c.get("read").copied().unwrap_or(0) >= 4,
        "{kind}: the reads and writes were not managed: {c:?}"
    );
}

#[test]
fn lockf_publishes_and_refreshes() {
    reader_sees_update("lockf");
}

#[test]
fn flock_publishes_and_refreshes() {
    reader_sees_update("flock");
}

#[test]
fn ofd_lock_publishes_and_refreshes() {
    reader_sees_update("ofd");
}
