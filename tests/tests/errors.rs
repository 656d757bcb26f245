//! Storage errors on conveyor-slowfs reach the program under the shim as
//! they do without it: every write failing with EIO, fsync after failed
//! writes, and short writes (which must be continued, not lost).

mod common;

use common::python;
use conveyor_tests::slowfs::SlowFs;
use conveyor_tests::{ok, pattern, Run};

/// Every write fails (`--eio-prob 1.0`): dd fails with "Input/output
/// error" under the shim as it does without it. Breaking it: a shim that
/// acknowledges the buffered writes and drops the background error (dd
/// exits 0), or reports another error.
#[test]
fn dd_fails_when_every_write_fails() {
    let fs = SlowFs::mount(&["--eio-prob", "1.0", "--seed", "3"]);
    // The source lives outside the mount (reads there fail too).
    let src = fs.backing().join("src.bin");
    std::fs::write(&src, pattern(21, 2 << 20)).unwrap();
    let ifile = format!("if={}", src.display());
    let plain = Run::new("dd", &["bs=4k", &ifile, "of=plain.bin"], &fs.mnt()).plain();
    assert!(!plain.status.success(), "plain dd should fail");
    let perr = String::from_utf8_lossy(&plain.stderr);
    assert!(perr.contains("Input/output error"), "plain dd: {perr}");
    let (out, counts) =
        Run::new("dd", &["bs=4k", &ifile, "of=shim.bin"], &fs.mnt()).shimmed(&fs.mnt());
    assert!(
        !out.status.success(),
        "dd under the shim succeeded although every write failed"
    );
    assert_eq!(out.status.code(), plain.status.code());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("Input/output error"), "dd's error: {err}");
    assert!(
        counts.get("write").copied().unwrap_or(0) >= 1,
        "dd's writes were not managed: {counts:?}"
    );
    // Nothing reached storage.
    assert_eq!(
        std::fs::read(fs.backing().join("shim.bin")).unwrap().len(),
        0
    );
}

/// Writes 1 MiB in 64 KiB chunks, fsyncs and closes, reporting the first
/// call that fails with its errno.
const FSYNC_PY: &str = r#"
import os, sys
stage = "open"
try:
    fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    stage = "write"
    for i in range(16):
        os.write(fd, bytes([i]) * 65536)
    stage = "fsync"
    os.fsync(fd)
    stage = "close"
    os.close(fd)
except OSError as e:
    print("failed at", stage, "errno", e.errno, flush=True)
    sys.exit(1)
print("no error", flush=True)
"#;

/// Every write fails: the program sees EIO (errno 5) at a write, at fsync
/// or at close, and exits with the error as without the shim. Breaking it:
/// "no error" (the deferred error dropped), or another errno.
#[test]
fn fsync_after_failed_writes_reports_eio() {
    let fs = SlowFs::mount(&["--eio-prob", "1.0", "--seed", "4"]);
    let script = fs.backing().join("fsync.py");
    std::fs::write(&script, FSYNC_PY).unwrap();
    let py = python().to_str().unwrap().to_string();
    let s = script.to_str().unwrap();
    let plain = Run::new(&py, &[s, "plain.bin"], &fs.mnt()).plain();
    assert_eq!(plain.stdout, b"failed at write errno 5\n");
    assert_eq!(plain.status.code(), Some(1));
    let (out, counts) = Run::new(&py, &[s, "shim.bin"], &fs.mnt()).shimmed(&fs.mnt());
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    eprintln!("under the shim: {text}");
    assert!(
        [
            "failed at write errno 5\n",
            "failed at fsync errno 5\n",
            "failed at close errno 5\n"
        ]
        .contains(&text.as_str()),
        "under the shim: {text:?}, stderr {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), plain.status.code());
    assert!(
        counts.get("write").copied().unwrap_or(0) >= 1,
        "writes were not managed: {counts:?}"
    );
}

/// Every write stores at most half of what it is given
/// (`--short-writes`): dd and python copies on storage are byte for byte
/// the input. Breaking it: the flusher treating a short pwrite as complete
/// (holes or a short file) or failing.
#[test]
fn short_writes_are_continued() {
    let fs = SlowFs::mount(&["--short-writes"]);
    let data = pattern(22, (3 << 20) + 12_345);
    let src = fs.backing().join("src.bin");
    std::fs::write(&src, &data).unwrap();
    let ifile = format!("if={}", src.display());
    let plain = Run::new("dd", &["bs=4k", &ifile, "of=plain.bin"], &fs.mnt()).plain();
    ok(&plain, "plain dd with short writes");
    assert!(std::fs::read(fs.backing().join("plain.bin")).unwrap() == data);
    let before = fs.stats();
    let (out, counts) =
        Run::new("dd", &["bs=4k", &ifile, "of=shim.bin"], &fs.mnt()).shimmed(&fs.mnt());
    ok(&out, "dd under the shim with short writes");
    assert!(
        counts.get("write").copied().unwrap_or(0) >= 700,
        "dd's writes were not managed: {counts:?}"
    );
    let stored = std::fs::read(fs.backing().join("shim.bin")).unwrap();
    assert_eq!(stored.len(), data.len(), "dd copy length");
    assert!(stored == data, "dd copy differs");
    let after = fs.stats();
    eprintln!(
        "write requests under the shim: {}",
        after["op.write"] - before["op.write"]
    );

    // python: unbuffered writes of odd sizes, some larger than 1 MiB.
    let prog =
        "import os,sys\nd=open(sys.argv[1],'rb').read()\nfd=os.open('py.bin',os.O_WRONLY|os.O_CREAT|os.O_TRUNC,0o644)\n\
         i=0\nn=1\nwhile i<len(d):\n    k=min(n,len(d)-i)\n    w=os.write(fd,d[i:i+k])\n    i+=w\n    n=(n*7+13)%(1536*1024)+1\nos.close(fd)\n";
    let py = python().to_str().unwrap().to_string();
    let (out, counts) =
        Run::new(&py, &["-c", prog, src.to_str().unwrap()], &fs.mnt()).shimmed(&fs.mnt());
    ok(&out, "python under the shim with short writes");
    assert!(
        counts.get("write").copied().unwrap_or(0) >= 5,
        "python's writes were not managed: {counts:?}"
    );
    let stored = std::fs::read(fs.backing().join("py.bin")).unwrap();
    assert_eq!(stored.len(), data.len(), "python copy length");
    assert!(stored == data, "python copy differs");
}
