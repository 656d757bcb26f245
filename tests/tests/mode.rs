//! `CONVEYOR_MODE`: the default (`auto`) leaves files on fast local storage
//! to the kernel and manages the rest; `always` manages every selected
//! file; `off` none; a bad value is named and changes nothing the program
//! sees. Every run's files are compared byte for byte with the plain run.

mod common;

use common::managed_calls;
use conveyor_tests::slowfs::SlowFs;
use conveyor_tests::{conveyor, ok, Run, TempDir};
use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Output};

// 2,000 lines, one write() each: a run the shim manages counts them.
const WRITER: &str = "import os\n\
fd = os.open('log', os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)\n\
for i in range(2000):\n    os.write(fd, b'line %d\\n' % i)\n\
os.close(fd)\n";

/// Runs the writer in `dir` plainly, then under the shim with `env`, and
/// checks both wrote the same bytes; returns the shim's output and counts.
fn writer(dir: &Path, env: &[(&str, &str)]) -> (Output, HashMap<String, u64>) {
    let plain = Run::new("python3", &["-c", WRITER], dir).plain();
    ok(&plain, "writer without the shim");
    let want = std::fs::read(dir.join("log")).unwrap();
    std::fs::remove_file(dir.join("log")).unwrap();
    let mut run = Run::new("python3", &["-c", WRITER], dir).env("CONVEYOR_LOG", "info");
    for (k, v) in env {
        run = run.env(k, v);
    }
    let (out, counts) = run.shimmed(dir);
    ok(&out, &format!("writer under the shim with {env:?}"));
    assert!(
        std::fs::read(dir.join("log")).unwrap() == want,
        "{env:?}: the file differs from the plain run's"
    );
    (out, counts)
}

fn writes(counts: &HashMap<String, u64>) -> u64 {
    counts.get("write").copied().unwrap_or(0)
}

/// Local disk (the test's temporary directory) and tmpfs: the default
/// mode manages nothing there and says why; `always` manages the writes.
#[test]
fn auto_leaves_fast_local_storage_to_the_kernel() {
    let disk = TempDir::new("mode-local");
    let mut dirs = vec![disk.path().to_path_buf()];
    // /dev/shm is tmpfs on every Linux system that has it.
    let shm = Path::new("/dev/shm");
    let shm_dir = shm.is_dir().then(|| {
        let d = shm.join(format!("conveyor-mode-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    });
    dirs.extend(shm_dir.clone());
    for d in &dirs {
        // Empty is the default, as unset (which `Run` would make `always`).
        for mode in ["", "auto"] {
            let (out, counts) = writer(d, &[("CONVEYOR_MODE", mode)]);
            let managed = managed_calls(&counts);
            assert!(
                managed.is_empty(),
                "{}: mode {mode:?} managed calls on local storage: {managed:?}",
                d.display()
            );
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(
                err.contains("(fast local storage;"),
                "{}: the log does not say why the file was left alone: {err}",
                d.display()
            );
        }
        let (_, counts) = writer(d, &[("CONVEYOR_MODE", "always")]);
        assert!(
            writes(&counts) >= 2000,
            "{}: always did not manage the writes: {counts:?}",
            d.display()
        );
    }
    if let Some(d) = shm_dir {
        std::fs::remove_dir_all(d).unwrap();
    }
}

/// The slow filesystem (FUSE) is managed in the default mode: the writes
/// are the shim's, and storage gets far fewer write requests than the
/// program made.
#[test]
fn auto_manages_slow_storage() {
    let fs = SlowFs::mount(&["--latency-ms", "0"]);
    let d = fs.mnt();
    let before = fs.stats().get("op.write").copied().unwrap_or(0);
    let plain = Run::new("python3", &["-c", WRITER], &d).plain();
    ok(&plain, "writer without the shim");
    let mid = fs.stats().get("op.write").copied().unwrap_or(0);
    std::fs::remove_file(d.join("log")).unwrap();
    let (out, counts) = Run::new("python3", &["-c", WRITER], &d)
        .env("CONVEYOR_MODE", "auto")
        .shimmed(&d);
    ok(&out, "writer under the shim");
    let after = fs.stats().get("op.write").copied().unwrap_or(0);
    assert!(
        writes(&counts) >= 2000,
        "auto did not manage the slow filesystem: {counts:?}"
    );
    assert!(
        after - mid < (mid - before) / 10,
        "write requests: plain {}, shim {}",
        mid - before,
        after - mid
    );
}

/// `off` manages nothing; a bad mode is named with the values it could
/// take, and the program runs and writes as without the shim.
#[test]
fn off_and_a_bad_mode_manage_nothing() {
    let dir = TempDir::new("mode-off");
    let (_, counts) = writer(dir.path(), &[("CONVEYOR_MODE", "off")]);
    assert!(managed_calls(&counts).is_empty(), "off managed: {counts:?}");
    let (out, counts) = writer(dir.path(), &[("CONVEYOR_MODE", "fastest")]);
    assert!(
        managed_calls(&counts).is_empty(),
        "bad mode managed: {counts:?}"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("CONVEYOR_MODE")
            && err.contains("\"fastest\"")
            && err.contains("auto, always or off"),
        "the bad mode is not named with its fix: {err}"
    );
}

fn launcher(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(conveyor());
    c.args(args).current_dir(dir).env_remove("LD_PRELOAD");
    for (k, _) in std::env::vars() {
        if k.starts_with("CONVEYOR_") {
            c.env_remove(k);
        }
    }
    c.env("CONVEYOR_LIVE_DIR", dir.join(".live"));
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("run conveyor")
}

/// `conveyor run --mode` reaches the shim, and `conveyor doctor` says what
/// the default mode does with a path on local storage and what overrides it.
#[test]
fn the_launcher_sets_and_explains_the_mode() {
    let dir = TempDir::new("mode-run");
    let d = dir.path();
    let counts = TempDir::new("mode-counts");
    let file = counts.path().join("c-%p");
    let file = file.to_str().unwrap();
    let script = "import os\nfd = os.open('f', os.O_WRONLY | os.O_CREAT, 0o644)\nos.write(fd, b'x' * 100)\nos.close(fd)\n";
    for (mode, managed) in [("auto", false), ("always", true)] {
        let out = launcher(
            d,
            &[
                "run", "--path", ".", "--mode", mode, "--", "python3", "-c", script,
            ],
            &[("CONVEYOR_TEST_COUNTS", file)],
        );
        ok(&out, &format!("run --mode {mode}"));
        let c = conveyor_tests::read_counts(counts.path());
        assert_eq!(writes(&c) > 0, managed, "run --mode {mode}: counts {c:?}");
        for e in std::fs::read_dir(counts.path()).unwrap().flatten() {
            std::fs::remove_file(e.path()).unwrap();
        }
        assert_eq!(std::fs::read(d.join("f")).unwrap(), vec![b'x'; 100]);
    }
    let bad = launcher(
        d,
        &["run", "--path", ".", "--mode", "fast", "--", "true"],
        &[],
    );
    assert!(!bad.status.success(), "run --mode fast was accepted");
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("auto"),
        "run --mode fast: {}",
        String::from_utf8_lossy(&bad.stderr)
    );

    let doctor = |env: &[(&str, &str)]| {
        let out = launcher(d, &["doctor", "--path", ".", "."], env);
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let text = doctor(&[]);
    assert!(
        text.contains("CONVEYOR_MODE: auto (default)")
            && text.contains("not accelerated in the default mode, which leaves fast local storage to the kernel")
            && text.contains("CONVEYOR_MODE=always accelerates it"),
        "doctor in the default mode: {text}"
    );
    let text = doctor(&[("CONVEYOR_MODE", "always")]);
    assert!(
        text.contains("CONVEYOR_MODE=always: every selected file")
            && !text.contains("not accelerated"),
        "doctor with CONVEYOR_MODE=always: {text}"
    );
    let text = doctor(&[("CONVEYOR_MODE", "sometimes")]);
    assert!(
        text.contains("CONVEYOR_MODE: bad:") && text.contains("expected auto, always or off"),
        "doctor with a bad mode: {text}"
    );
}
