//! Hooks called from a program's signal handler (DESIGN.md section 2, never
//! break the host program): a timer fires every 100 us while the main
//! thread writes and reads a managed file, and the handler itself writes
//! and reads managed files. Every handler byte must land, in order, and no
//! call may hang or see stale data. The handler is an SA_SIGINFO one and
//! checks its siginfo; the program checks that `sigaction` shows it the
//! action it installed.
//!
//! Without the handling this failed in two ways: a handler that ran while
//! its thread was inside the shim passed by the engine (bytes of `sig.log`
//! lost, `pread` of `main.dat` found nothing yet on storage), and a handler
//! delivered to one of the shim's worker threads waited forever for a lock
//! that thread held (the program hung).

use conveyor_tests::slowfs::SlowFs;
use conveyor_tests::{compile_c, ok, Run, TempDir};
use std::path::Path;

/// Runs the program with and without the shim: `records` records of 512
/// bytes, a timer every `interval_us`.
fn run(dir: &Path, bin: &Path, records: u32, interval_us: u32) {
    let bin = bin.to_str().unwrap();
    let d = dir.to_str().unwrap();
    let plain_dir = dir.join("plain");
    let shim_dir = dir.join("shim");
    for p in [&plain_dir, &shim_dir] {
        std::fs::create_dir_all(p).unwrap();
    }
    let (n, us) = (records.to_string(), interval_us.to_string());
    let plain = Run::new(bin, &["plain", &n, &us], dir).plain();
    ok(&plain, "signal handler program without the shim");
    let (out, counts) = Run::new("timeout", &["120", bin, "shim", &n, &us], dir).shimmed(dir);
    ok(
        &out,
        &format!("signal handler program under the shim in {d}"),
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.ends_with(", bad 0\n"), "{text}");
    assert!(
        counts.get("write").copied().unwrap_or(0) >= u64::from(records),
        "the writes were not managed: {counts:?}"
    );
    assert_eq!(
        std::fs::read(plain_dir.join("main.dat")).unwrap(),
        std::fs::read(shim_dir.join("main.dat")).unwrap(),
        "main.dat differs from the run without the shim"
    );
}

fn build(dir: &Path) -> std::path::PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("c/sighandler.c");
    let bin = dir.join("sighandler");
    compile_c(&src, &bin, &[]);
    bin
}

#[test]
fn signal_handler_io_on_local_disk() {
    let bins = TempDir::new("sighandler-bin");
    let bin = build(bins.path());
    let dir = TempDir::new("sighandler");
    run(dir.path(), &bin, 20000, 100);
}

#[test]
fn signal_handler_io_on_slow_storage() {
    let bins = TempDir::new("sighandler-bin");
    let bin = build(bins.path());
    // Fewer records and a slower timer: without the shim every write costs
    // a storage request, and the comparison run must stay short.
    let fs = SlowFs::mount(&["--latency-ms", "1"]);
    run(&fs.mnt(), &bin, 1500, 3000);
}

/// Runs `sigmeta` (a handler writing the file the main thread asks about)
/// under the shim; it must finish (a hang is the failure this catches)
/// and find the file as it wrote it.
fn run_meta(dir: &Path, loops: u32) {
    let bins = TempDir::new("sigmeta-bin");
    let bin = bins.path().join("sigmeta");
    compile_c(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("c/sigmeta.c"),
        &bin,
        &[],
    );
    let mut cmd = std::process::Command::new(&bin);
    cmd.arg(dir)
        .arg(loops.to_string())
        .env("LD_PRELOAD", conveyor_tests::shim())
        .env("CONVEYOR_MODE", "always")
        .env("CONVEYOR_PATHS", dir)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let _live = conveyor_tests::own_live_dir(&mut cmd);
    let mut child = cmd.spawn().expect("start sigmeta");
    // Bounded only so that a hang ends the test instead of CI: a healthy
    // run takes well under a second per thousand loops.
    let limit = std::time::Instant::now() + std::time::Duration::from_secs(300);
    loop {
        if let Some(st) = child.try_wait().expect("wait") {
            let out = child.wait_with_output().expect("output");
            assert!(
                st.success(),
                "sigmeta failed: {st}\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
            return;
        }
        if std::time::Instant::now() > limit {
            let _ = child.kill();
            panic!("sigmeta hung: a signal handler's write waited for its own thread");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn handler_writes_while_main_asks_about_the_file_on_local_disk() {
    let dir = TempDir::new("sigmeta");
    run_meta(dir.path(), 20000);
}

#[test]
fn handler_writes_while_main_asks_about_the_file_on_slow_storage() {
    let fs = SlowFs::mount(&["--latency-ms", "1"]);
    run_meta(&fs.mnt(), 300);
}
