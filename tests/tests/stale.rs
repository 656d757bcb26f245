//! Another process changes a file this process has read ahead: `tail -F`
//! across a truncation (logrotate's `copytruncate`) and a rename rotation,
//! and a static binary (which no preload reaches) overwriting a region
//! between two reads of a preloaded reader. The reader must see what it
//! sees without the shim, on local disk and on the slow filesystem.

mod common;

use common::python;
use conveyor_tests::slowfs::SlowFs;
use conveyor_tests::twin::{differences, report, Twins, PLACES};
use conveyor_tests::{compile_c, root, shim, TempDir};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Waits until `out` holds `want` (`tail` prints it when it notices);
/// gives up after a minute, which only a broken build reaches.
fn wait_for(out: &Path, want: &str, tail: &mut Child) -> String {
    let start = Instant::now();
    loop {
        let text = std::fs::read_to_string(out).unwrap_or_default();
        if text.contains(want) {
            return text;
        }
        if start.elapsed() > Duration::from_secs(60) || tail.try_wait().ok().flatten().is_some() {
            return text;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn tail_f(dir: &Path, shimmed: bool, live: &Path) -> Child {
    let mut c = Command::new("tail");
    c.args(["-n", "+1", "-F", "--sleep-interval=0.1", "log"])
        .current_dir(dir)
        .stdout(std::fs::File::create(dir.join("../out")).expect("out"))
        .stderr(Stdio::null())
        .env_remove("LD_PRELOAD")
        .env_remove("CONVEYOR_PATHS");
    if shimmed {
        // tail is killed: its live file stays in a directory of the test's.
        c.env("LD_PRELOAD", shim())
            .env("CONVEYOR_MODE", "always")
            .env("CONVEYOR_PATHS", dir)
            .env("CONVEYOR_LIVE_DIR", live);
    }
    c.spawn().expect("start tail")
}

/// `tail -F` through truncation and rotation; returns what it printed.
fn follow(dir: &Path, shimmed: bool) -> String {
    std::fs::create_dir_all(dir).expect("dir");
    let log = dir.join("log");
    let lines: String = (1..=50).map(|i| format!("old {i}\n")).collect();
    std::fs::write(&log, &lines).expect("seq");
    let out = dir.join("../out");
    let live = TempDir::new("stale-live");
    let mut tail = tail_f(dir, shimmed, live.path());
    wait_for(&out, "old 50\n", &mut tail);
    // copytruncate: copy, then truncate in place; new lines come at 0.
    std::fs::copy(&log, dir.join("log.1")).expect("copy");
    std::fs::File::create(&log).expect("truncate");
    let append = |s: &str| {
        std::fs::OpenOptions::new()
            .append(true)
            .open(&log)
            .and_then(|mut f| f.write_all(s.as_bytes()))
            .expect("append");
    };
    append("new 1\n");
    wait_for(&out, "new 1\n", &mut tail);
    // Rename rotation: a new file under the old name.
    std::fs::rename(&log, dir.join("log.2")).expect("rename");
    std::fs::write(&log, "fresh 1\n").expect("fresh");
    let text = wait_for(&out, "fresh 1\n", &mut tail);
    let _ = tail.kill();
    let _ = tail.wait();
    text
}

#[test]
fn tail_follows_truncation_and_rotation() {
    for place in PLACES {
        let fs = (place == conveyor_tests::twin::Place::Slow)
            .then(|| SlowFs::mount(&["--latency-ms", "1"]));
        let tmp = TempDir::new("tail");
        let base: PathBuf = fs
            .as_ref()
            .map_or_else(|| tmp.path().to_path_buf(), |f| f.mnt());
        let plain = follow(&base.join("plain/d"), false);
        let shimmed = follow(&base.join("shim/d"), true);
        let want: String = (1..=50)
            .map(|i| format!("old {i}\n"))
            .chain(["new 1\n".to_string(), "fresh 1\n".to_string()])
            .collect();
        assert_eq!(plain, want, "tail without the shim ({place:?})");
        assert_eq!(shimmed, want, "tail under the shim ({place:?})");
    }
}

/// A preloaded reader reads the start of a file (read-ahead caches more),
/// then, told to go on, reads the rest; meanwhile a static binary
/// overwrote a region of it. The reader says when it has read the start
/// and waits for a line on stdin.
const READER: &str = r#"
import os, sys, hashlib
fd = os.open("data", os.O_RDONLY)
first = os.read(fd, 4096)
print("started", flush=True)
sys.stdin.readline()
rest = b""
while True:
    b = os.read(fd, 4096)
    if not b:
        break
    rest += b
print(len(first), len(rest), hashlib.sha256(first + rest).hexdigest(), rest.count(b"Z"))
"#;

#[test]
fn a_static_writer_between_two_reads_is_seen() {
    let bins = TempDir::new("stale-bin");
    let writer = bins.path().join("overwrite");
    compile_c(&root().join("tests/c/overwrite.c"), &writer, &["-static"]);
    let mut failures = Vec::new();
    let live = TempDir::new("stale-live");
    for place in PLACES {
        let t = Twins::new(place, "stale");
        let mut results = Vec::new();
        for (dir, shimmed) in [(&t.plain, false), (&t.shim, true)] {
            std::fs::write(dir.join("data"), vec![b'a'; 1 << 20]).expect("data");
            let mut c = Command::new(python());
            c.args(["-c", READER])
                .current_dir(dir)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .env_remove("LD_PRELOAD");
            if shimmed {
                c.env("LD_PRELOAD", shim())
                    .env("CONVEYOR_MODE", "always")
                    .env("CONVEYOR_PATHS", dir)
                    .env("CONVEYOR_LIVE_DIR", live.path());
            }
            let mut reader = c.spawn().expect("reader");
            let mut out = BufReader::new(reader.stdout.take().expect("stdout"));
            let mut line = String::new();
            out.read_line(&mut line).expect("started");
            assert_eq!(line, "started\n");
            let w = Command::new(&writer)
                .args([
                    dir.join("data").to_str().expect("path"),
                    "65536",
                    "8192",
                    "Z",
                ])
                .env_remove("LD_PRELOAD")
                .status()
                .expect("overwrite");
            assert!(w.success(), "the static writer failed");
            // The reader comes back after a pause, as a follower does.
            std::thread::sleep(Duration::from_millis(300));
            reader
                .stdin
                .take()
                .expect("stdin")
                .write_all(b"go\n")
                .expect("go");
            line.clear();
            out.read_line(&mut line).expect("result");
            let _ = reader.wait();
            results.push(line);
        }
        if results[0] != results[1] {
            failures.push(format!(
                "static writer ({place:?}): plain read {:?}, shim read {:?}",
                results[0], results[1]
            ));
        }
        let _ = differences; // the files themselves are not compared here
    }
    report(&failures);
}
