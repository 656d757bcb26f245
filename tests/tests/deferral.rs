//! Small data a file's only description holds for the program's own close
//! (so that a small file costs the filesystem no request more) does not
//! wait for ever: a program that writes a little and then waits for
//! another process finds it on storage, as without the shim. Each case
//! waits for an event, never for a time: it fails only if the data never
//! arrives (within a minute), which is what happened before the bound.

use conveyor_tests::slowfs::SlowFs;
use conveyor_tests::{ok, own_live_dir, shim, TempDir};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};

/// `python3 -c script` in `dir`, under the shim managing `dir` when `shim`
/// is set, with pipes for stdin and stdout.
fn python(dir: &Path, script: &str, managed: bool) -> (std::process::Child, TempDir) {
    let mut c = Command::new("python3");
    c.args(["-c", script])
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .env_remove("LD_PRELOAD")
        .env_remove("CONVEYOR_PATHS");
    let live = own_live_dir(&mut c);
    if managed {
        c.env("LD_PRELOAD", shim())
            .env("CONVEYOR_PATHS", dir)
            .env("CONVEYOR_MODE", "always");
    }
    (c.spawn().expect("start python3"), live)
}

/// Waits (up to a minute) until `f` holds.
fn eventually(mut f: impl FnMut() -> bool) -> bool {
    for _ in 0..6000 {
        if f() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    false
}

/// logrotate's `copytruncate` of a log its writer keeps open (no
/// `O_APPEND`): the copy has the lines written before it, and the writer's
/// next line lands past the truncation, after a hole, as without the shim.
fn copytruncate(dir: &Path, managed: bool) -> (Vec<u8>, Vec<u8>) {
    let script = r#"
import os, sys
fd = os.open("x.log", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
for i in range(100):
    os.write(fd, b"line %04d\n" % i)
print("written", flush=True)
sys.stdin.readline()
os.write(fd, b"after\n")
os.close(fd)
"#;
    let (mut child, _live) = python(dir, script, managed);
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line, "written\n");
    let log = dir.join("x.log");
    let seen = eventually(|| std::fs::metadata(&log).map(|m| m.len()).unwrap_or(0) == 1000);
    assert!(
        seen,
        "the writer's lines never reached the file (managed: {managed})"
    );
    std::fs::copy(&log, dir.join("x.log.1")).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&log)
        .unwrap()
        .set_len(0)
        .unwrap();
    child.stdin.take().unwrap().write_all(b"rotated\n").unwrap();
    assert!(child.wait().unwrap().success());
    (
        std::fs::read(dir.join("x.log.1")).unwrap(),
        std::fs::read(&log).unwrap(),
    )
}

#[test]
fn copytruncate_copies_what_was_written() {
    for slow in [false, true] {
        let fs = slow.then(|| SlowFs::mount(&["--latency-ms", "1"]));
        let tmp = TempDir::new("deferral-rotate");
        let base = fs.as_ref().map_or(tmp.path().to_path_buf(), |f| f.mnt());
        let (pd, sd) = (base.join("plain"), base.join("shim"));
        std::fs::create_dir_all(&pd).unwrap();
        std::fs::create_dir_all(&sd).unwrap();
        let plain = copytruncate(&pd, false);
        let shimmed = copytruncate(&sd, true);
        let lines: Vec<u8> = (0..100)
            .flat_map(|i| format!("line {i:04}\n").into_bytes())
            .collect();
        assert!(plain.0 == lines, "plain copy");
        let mut rest = vec![0u8; 1000];
        rest.extend_from_slice(b"after\n");
        assert!(plain.1 == rest, "plain log after rotation");
        assert!(
            shimmed == plain,
            "with the shim (slow: {slow}) the rotated files differ"
        );
    }
}

/// A writer flushes a flag and waits for a process it started before: the
/// process sees the flag.
#[test]
fn a_flag_a_waiting_writer_flushed_is_seen() {
    let script = r#"
import subprocess
p = subprocess.Popen(["sh", "-c", "for i in $(seq 6000); do grep -q go flag 2>/dev/null && { echo seen; exit 0; }; sleep 0.01; done; echo timeout; exit 1"], stdout=subprocess.PIPE)
f = open("flag", "w")
f.write("go\n")
f.flush()
print(p.communicate()[0].decode().strip(), p.returncode)
f.close()
"#;
    for slow in [false, true] {
        let fs = slow.then(|| SlowFs::mount(&["--latency-ms", "1"]));
        let tmp = TempDir::new("deferral-flag");
        let dir = fs.as_ref().map_or(tmp.path().to_path_buf(), |f| f.mnt());
        let (child, _live) = python(&dir, script, true);
        let out = child.wait_with_output().unwrap();
        ok(&out, "flag writer");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "seen 0\n",
            "the waiting process never saw the flag (slow: {slow})"
        );
    }
}
