//! Relaxed close (`CONVEYOR_CLOSE=relaxed`, `conveyor run --relaxed-close`)
//! on the slow test filesystem: `close` returns before the data is written,
//! yet the files, their modes and their times are byte for byte and
//! nanosecond for nanosecond those of the plain run; within the process
//! every stat and read sees what was written; a child sees it; and an
//! error that arrives after `close` returned fails `conveyor run`.

use conveyor_tests::slowfs::SlowFs;
use conveyor_tests::{conveyor, ok, own_live_dir, pattern, Run, TempDir};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// Every regular file under `dir`: relative name, size, mode, mtime (s, ns)
/// and contents.
fn files(dir: &Path) -> Vec<(String, u64, u32, i64, i64, Vec<u8>)> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let m = std::fs::symlink_metadata(e.path()).unwrap();
            if m.is_dir() {
                todo.push(e.path());
            } else if m.is_file() {
                let name = e.path().strip_prefix(dir).unwrap().display().to_string();
                let data = std::fs::read(e.path()).unwrap();
                out.push((name, m.size(), m.mode(), m.mtime(), m.mtime_nsec(), data));
            }
        }
    }
    out.sort();
    out
}

/// GNU tar sets each file's times, owner and mode through its descriptor
/// right before closing it: under relaxed close all of it waits for the
/// data in the background, and the extracted tree is the plain run's.
#[test]
fn tar_closes_behind_and_extracts_the_same_tree() {
    const FILES: usize = 120;
    let fs = SlowFs::mount(&["--latency-ms", "1"]);
    let src = TempDir::new("relaxed-src");
    for i in 0..FILES {
        let d = src.path().join(format!("d{}", i % 6));
        std::fs::create_dir_all(&d).unwrap();
        let f = d.join(format!("f{i}"));
        std::fs::write(&f, pattern(i as u64, 500 + i * 131)).unwrap();
        let mode = if i % 3 == 0 { 0o755 } else { 0o640 };
        std::fs::set_permissions(&f, std::os::unix::fs::PermissionsExt::from_mode(mode)).unwrap();
    }
    let tarball = src.path().join("t.tar");
    let made = std::process::Command::new("tar")
        .args(["--mtime=2021-03-04 05:06:07.123456789", "-cf"])
        .arg(&tarball)
        .arg("-C")
        .arg(src.path())
        .args((0..6).map(|i| format!("d{i}")))
        .output()
        .unwrap();
    ok(&made, "tar -c");
    let tarball = tarball.display().to_string();
    let plain_dir = fs.mnt().join("plain");
    let shim_dir = fs.mnt().join("shim");
    std::fs::create_dir(&plain_dir).unwrap();
    std::fs::create_dir(&shim_dir).unwrap();
    ok(
        &Run::new("tar", &["-xf", &tarball], &plain_dir).plain(),
        "tar -x plain",
    );
    let before = fs.stats();
    let (out, counts) = Run::new("tar", &["-xf", &tarball], &shim_dir)
        .env("CONVEYOR_CLOSE", "relaxed")
        .shimmed(&shim_dir);
    ok(&out, "tar -x with relaxed close");
    let after = fs.stats();
    let closed_behind = counts.get("close_behind").copied().unwrap_or(0);
    assert!(
        closed_behind >= FILES as u64,
        "only {closed_behind} of {FILES} files closed behind: {counts:?}"
    );
    // Times, owner and mode were held back on the descriptor (not set
    // before close with the data written first).
    for name in ["futimens", "fchmod"] {
        assert!(
            counts.get(name).copied().unwrap_or(0) >= FILES as u64,
            "{name} was not held back: {counts:?}"
        );
    }
    let op = |k: &str| after.get(k).copied().unwrap_or(0) - before.get(k).copied().unwrap_or(0);
    assert!(
        op("op.write") <= FILES as u64,
        "{} write requests for {FILES} small files (want one each at most)",
        op("op.write")
    );
    let (p, s) = (files(&plain_dir), files(&shim_dir));
    assert_eq!(p.len(), FILES);
    for (a, b) in p.iter().zip(&s) {
        assert!(
            a == b,
            "{} differs: plain (size, mode, mtime) {:?}, relaxed {:?}",
            a.0,
            (a.1, a.2, a.3, a.4),
            (b.1, b.2, b.3, b.4)
        );
    }
}

/// Within the process nothing is relaxed: after a file closed behind, a
/// stat by path, a read through a new descriptor, an `O_TRUNC` reopen and
/// a child (`cat`) all see what was written, with the mode and times set
/// through the descriptor. Compared line for line with the plain run.
#[test]
fn a_file_closed_behind_is_seen_whole_by_the_process_and_its_children() {
    let fs = SlowFs::mount(&["--latency-ms", "1"]);
    let script = r#"
import hashlib, os, subprocess
for i in range(12):
    name = 'f%d' % i
    fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    for j in range(40):
        os.write(fd, b'%d-%d ' % (i, j) * 20)
    os.fchmod(fd, 0o640 + (i % 2) * 0o100)
    os.utime(fd, ns=(1_600_000_000_123_456_789 + i, 1_500_000_000_987_654_321 + i))
    os.close(fd)
    st = os.stat(name)
    print(name, st.st_size, oct(st.st_mode), st.st_mtime_ns, st.st_atime_ns)
    with open(name, 'rb') as f:
        print(hashlib.sha256(f.read()).hexdigest())
    if i % 4 == 0:
        out = subprocess.run(['cat', name], capture_output=True, check=True).stdout
        print('child', hashlib.sha256(out).hexdigest())
    if i % 3 == 0:
        fd = os.open(name, os.O_WRONLY | os.O_TRUNC)
        os.write(fd, b'rewritten %d\n' % i)
        os.close(fd)
        print(name, os.stat(name).st_size, open(name, 'rb').read())
"#;
    let mut outs = Vec::new();
    for (dir, relaxed) in [("plain", false), ("shim", true)] {
        let d = fs.mnt().join(dir);
        std::fs::create_dir(&d).unwrap();
        let run = Run::new("python3", &["-c", script], &d);
        let out = if relaxed {
            let (out, counts) = run.env("CONVEYOR_CLOSE", "relaxed").shimmed(&d);
            assert!(
                counts.get("close_behind").copied().unwrap_or(0) >= 12,
                "the files did not close behind: {counts:?}"
            );
            out
        } else {
            run.plain()
        };
        ok(&out, &format!("python ({dir})"));
        outs.push(String::from_utf8(out.stdout).unwrap());
    }
    assert_eq!(
        outs[0], outs[1],
        "relaxed close changed what the program saw"
    );
    let (p, s) = (
        files(&fs.mnt().join("plain")),
        files(&fs.mnt().join("shim")),
    );
    assert_eq!(p.len(), 12);
    for (a, b) in p.iter().zip(&s) {
        // The rewritten files (every third) got the time of their rewrite.
        let rewritten = a.0[1..].parse::<usize>().unwrap() % 3 == 0;
        let key = |f: &(String, u64, u32, i64, i64, Vec<u8>)| {
            let t = if rewritten { (0, 0) } else { (f.3, f.4) };
            (f.0.clone(), f.1, f.2, t, f.5.clone())
        };
        assert!(key(a) == key(b), "{} differs on storage", a.0);
    }
}

/// A full disk met after `close` returned: the program cannot be told, so
/// `conveyor run --relaxed-close` says what was lost, the stats report
/// counts it, and the exit status is 1 although the program exited 0.
#[test]
fn an_error_after_close_fails_the_run() {
    let fs = SlowFs::mount(&["--latency-ms", "1", "--enospc-after", "1000000"]);
    let stats = TempDir::new("relaxed-stats");
    let report = stats.path().join("r.json");
    // Four files of 400 KB in 4 KiB writes: each stays below one request's
    // worth, so its data is written only once it is closed; the third
    // fills the disk.
    let script = "import os\nfor i in range(4):\n    fd = os.open('f%d' % i, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)\n    for j in range(100):\n        os.write(fd, b'x' * 4000)\n    os.close(fd)\nprint('closed all')\n";
    let mut cmd = std::process::Command::new(conveyor());
    cmd.args(["run", "--relaxed-close", "--mode", "always", "--path"])
        .arg(fs.mnt())
        .arg("--stats")
        .arg(&report)
        .args(["--", "python3", "-c", script])
        .current_dir(fs.mnt())
        .env_remove("CONVEYOR_PATHS")
        .env_remove("LD_PRELOAD");
    let _live = own_live_dir(&mut cmd);
    let out = cmd.output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "closed all\n",
        "the program's closes returned an error: {err}"
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "conveyor run's status; stderr: {err}"
    );
    assert!(
        err.contains("after close returned") && err.contains("No space left on device"),
        "stderr does not name the lost data: {err}"
    );
    let json = std::fs::read_to_string(&report).unwrap();
    assert!(
        !json.contains("\"late_errors\":0"),
        "the report counts no late error: {json}"
    );
    // Without the option the same program, through the same shim, is told
    // at its close, as without conveyor.
    drop(fs);
    let fs = SlowFs::mount(&["--latency-ms", "0", "--enospc-after", "1000000"]);
    let (out, _) = Run::new("python3", &["-c", script], &fs.mnt()).shimmed(&fs.mnt());
    assert!(!out.status.success(), "close did not report the full disk");
    assert!(String::from_utf8_lossy(&out.stderr).contains("No space left on device"));
}

/// Files unlinked while open or right after their close, on the slow
/// filesystem (which refuses `fstat` and metadata of an unlinked open file,
/// as some FUSE filesystems do): Python's `TemporaryFile` (create, unlink,
/// write, close) and files whose mode and times were held back, removed
/// at once. The run is the plain run's: status 0, no error, the same
/// files left.
#[test]
fn files_removed_while_closing_behind_are_no_error() {
    let fs = SlowFs::mount(&["--latency-ms", "1"]);
    let script = r#"
import os, tempfile
for i in range(10):
    f = tempfile.TemporaryFile(dir=".")
    f.write(b"x" * 100)
    f.flush()
    f.close()
for i in range(20):
    name = "f%d" % i
    fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.write(fd, b"data %d\n" % i)
    os.utime(fd, ns=(1_500_000_000_000_000_000, 1_500_000_000_000_000_000))
    os.fchmod(fd, 0o640)
    os.close(fd)
    if i % 2:
        os.unlink(name)
print("ok")
"#;
    let mut runs = Vec::new();
    for (dir, relaxed) in [("plain", false), ("shim", true)] {
        let d = fs.mnt().join(dir);
        std::fs::create_dir(&d).unwrap();
        let out = if relaxed {
            let mut cmd = std::process::Command::new(conveyor());
            cmd.args(["run", "--relaxed-close", "--mode", "always", "--path"])
                .arg(&d)
                .args(["--", "python3", "-c", script])
                .current_dir(&d)
                .env_remove("CONVEYOR_PATHS")
                .env_remove("LD_PRELOAD")
                .env("CONVEYOR_DEFER_LIMIT", "1ms");
            let _live = own_live_dir(&mut cmd);
            cmd.output().unwrap()
        } else {
            Run::new("python3", &["-c", script], &d).plain()
        };
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{dir}: {err}");
        assert!(!err.contains("conveyor"), "{dir}: the shim said: {err}");
        runs.push((out.stdout, files(&d)));
    }
    assert!(runs[0] == runs[1], "the runs differ");
}
