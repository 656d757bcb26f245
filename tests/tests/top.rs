//! `conveyor top`: a running writer under the shim appears with its
//! figures (from the live file its shim refreshes), disappears when it
//! exits, and its file is removed once it is killed; directories another
//! user could tamper with are refused by the shim and by top.

use conveyor_tests::slowfs::SlowFs;
use conveyor_tests::{conveyor, ok, shim, TempDir};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Writes 64 KiB every 10 ms to argv[1] until argv[2] exists; forks a
/// child first (whose pid it prints) that waits for the same file. With a
/// third argument it also runs `system` and `posix_spawn` after its first
/// write. The
/// file is opened after the fork: a description open at a fork is shared
/// with the child, and passes through from then on.
const WRITER_PY: &str = r#"
import os, sys, time
child = os.fork()
if child == 0:
    while not os.path.exists(sys.argv[2]):
        time.sleep(0.05)
    os._exit(0)
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
os.write(fd, b"y" * 65536)
if len(sys.argv) > 3:
    # Programs this one starts beside itself: it stays in top.
    os.system("true")
    os.waitpid(os.posix_spawn("/bin/true", ["true"], os.environ), 0)
print(child, flush=True)
while not os.path.exists(sys.argv[2]):
    os.write(fd, b"y" * 65536)
    time.sleep(0.01)
os.close(fd)
os.waitpid(child, 0)
"#;

/// Generous bound for anything a loaded machine must get done.
const PATIENCE: Duration = Duration::from_secs(120);

fn top(live: &Path, args: &[&str]) -> Output {
    Command::new(conveyor())
        .env("CONVEYOR_MODE", "always")
        .arg("top")
        .args(args)
        .arg("--dir")
        .arg(live)
        .env_remove("LD_PRELOAD")
        .output()
        .expect("run conveyor top")
}

/// The writer under the shim. Dropping it ends it and its child, so a
/// failed assertion leaves no process behind.
struct Writer {
    child: Child,
    forked: u32,
    stop: PathBuf,
}

impl Writer {
    fn start(dir: &Path, data: &Path, live: &Path, stop: &Path) -> Writer {
        Writer::start_with(dir, data, live, stop, &[])
    }

    fn start_with(dir: &Path, data: &Path, live: &Path, stop: &Path, extra: &[&str]) -> Writer {
        let script = dir.join("writer.py");
        std::fs::write(&script, WRITER_PY).unwrap();
        let mut child = Command::new("python3")
            .arg(&script)
            .arg(data.join("out.bin"))
            .arg(stop)
            .args(extra)
            .env("LD_PRELOAD", shim())
            .env("CONVEYOR_MODE", "always")
            .env("CONVEYOR_PATHS", data)
            .env("CONVEYOR_LIVE_DIR", live)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the writer");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let forked = line
            .trim()
            .parse()
            .expect("the writer prints its child's pid");
        Writer {
            child,
            forked,
            stop: stop.to_path_buf(),
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        let _ = std::fs::write(&self.stop, "");
        let _ = self.child.kill();
        let _ = self.child.wait();
        // The forked child keeps running in the slow filesystem's
        // neighbourhood: wait until it is gone (or a zombie).
        let stat = format!("/proc/{}/stat", self.forked);
        let t = Instant::now();
        while std::fs::read_to_string(&stat).is_ok_and(|s| !s.contains(") Z "))
            && t.elapsed() < PATIENCE
        {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Polls `top --once --json` until `pid` shows bytes written by the
/// program and bytes its shim stored (the live file is refreshed once a
/// second, so one refresh may come before the first batch lands).
fn wait_in_top(live: &Path, pid: u32) -> Value {
    let t = Instant::now();
    loop {
        let out = top(live, &["--once", "--json"]);
        ok(&out, "top --once --json");
        let all: Value = serde_json::from_slice(&out.stdout).expect("top --json is JSON");
        if let Some(p) = all.as_array().unwrap().iter().find(|p| {
            p["pid"] == pid
                && p["app_write_bytes"].as_u64() > Some(65536)
                && p["storage_write_bytes"].as_u64() > Some(0)
        }) {
            return p.clone();
        }
        assert!(t.elapsed() < PATIENCE, "pid {pid} never in top: {all}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A writer on slow storage is in `top` with its pid, command and figures
/// (its forked child, which manages nothing, is not); its file goes away
/// when it exits normally, and a killed writer's file is removed by top.
#[test]
fn top_shows_a_running_writer() {
    let fs = SlowFs::mount(&["--latency-ms", "2"]);
    let dir = TempDir::new("top");
    let live = dir.path().join("live");
    let data = fs.mnt();

    // Normal exit: the file disappears with the process.
    let stop = dir.path().join("stop-1");
    let mut w = Writer::start(dir.path(), &data, &live, &stop);
    let (pid, forked) = (w.pid(), w.forked);
    let p = wait_in_top(&live, pid);
    assert_eq!(p["schema"], "conveyor-live/1");
    assert_eq!(p["open_files"], 1, "{p}");
    assert!(p["command"].as_str().unwrap().contains("writer.py"), "{p}");
    assert!(p["storage_write_bytes"].as_u64().unwrap() > 0, "{p}");
    assert!(p["memory_cap_bytes"].as_u64().unwrap() > 0, "{p}");
    assert_eq!(p["errors"], 0);
    assert!(
        !live.join(format!("{forked}.live")).exists(),
        "the forked child wrote a live file"
    );
    let mode = std::fs::metadata(&live).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o700, "live dir mode {mode:o}");
    let file_mode = std::fs::metadata(live.join(format!("{pid}.live")))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(file_mode & 0o777, 0o600);
    // The table has a row for it.
    let out = top(&live, &["--once"]);
    ok(&out, "top --once");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("    PID OPEN"), "{text}");
    assert!(
        text.lines()
            .any(|l| l.trim_start().starts_with(&format!("{pid} ")) && l.contains("python3")),
        "{text}"
    );
    std::fs::write(&stop, "").unwrap();
    assert!(w.child.wait().unwrap().success());
    assert!(
        !live.join(format!("{pid}.live")).exists(),
        "left after exit"
    );

    // SIGKILL: the file stays until top sees the pid is gone.
    let stop = dir.path().join("stop-2");
    let mut w = Writer::start(dir.path(), &data, &live, &stop);
    let pid = w.pid();
    wait_in_top(&live, pid);
    w.child.kill().unwrap();
    w.child.wait().unwrap();
    let file = live.join(format!("{pid}.live"));
    assert!(file.exists(), "a killed process cannot remove its file");
    let out = top(&live, &["--once"]);
    ok(&out, "top --once after the kill");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("removed stale {pid}.live (pid {pid} is gone)")),
        "{err}"
    );
    assert!(!file.exists());
    assert!(!String::from_utf8_lossy(&out.stdout).contains(&format!(" {pid} ")));
}

/// A writer that runs `system` and `posix_spawn` (programs beside it, not
/// in its place) is still in `top` while it writes on.
#[test]
fn top_still_shows_a_writer_after_system_and_posix_spawn() {
    let fs = SlowFs::mount(&["--latency-ms", "2"]);
    let dir = TempDir::new("top-spawn");
    let live = dir.path().join("live");
    let stop = dir.path().join("stop");
    let mut w = Writer::start_with(dir.path(), &fs.mnt(), &live, &stop, &["spawn"]);
    let pid = w.pid();
    let p = wait_in_top(&live, pid);
    assert_eq!(p["open_files"], 1, "{p}");
    std::fs::write(&stop, "").unwrap();
    assert!(w.child.wait().unwrap().success());
}

/// Malformed files of running pids are skipped with a message (exit 1)
/// and kept; files of pids that do not exist are removed.
#[test]
fn top_skips_malformed_and_cleans_dead() {
    let dir = TempDir::new("top-bad");
    let live = dir.path().join("live");
    std::fs::create_dir(&live).unwrap();
    std::fs::set_permissions(&live, std::fs::Permissions::from_mode(0o700)).unwrap();
    let me = std::process::id();
    std::fs::write(
        live.join(format!("{me}.live")),
        "{\"schema\":\"conveyor-live/1\",",
    )
    .unwrap();
    // Above the kernel's largest pid (2^22).
    std::fs::write(live.join("99999999.live"), "whatever").unwrap();
    std::fs::write(live.join("notes.txt"), "not a live file").unwrap();
    let out = top(&live, &["--once"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("{me}.live: skipped: not valid JSON")),
        "{err}"
    );
    assert!(err.contains("removed stale 99999999.live"), "{err}");
    assert!(live.join(format!("{me}.live")).exists());
    assert!(!live.join("99999999.live").exists());
    assert!(live.join("notes.txt").exists());
    assert!(String::from_utf8_lossy(&out.stdout).contains("(no process is using conveyor)"));
}

/// A live directory that is a planted symlink, or writable by others, is
/// not used: the shim writes nothing there (one warning; the program runs
/// and its data is written) and top refuses to read it.
#[test]
fn unsafe_live_directories_are_refused() {
    let dir = TempDir::new("top-unsafe");
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let elsewhere = dir.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    std::fs::set_permissions(&elsewhere, std::fs::Permissions::from_mode(0o700)).unwrap();
    let link = dir.path().join("planted");
    std::os::unix::fs::symlink(&elsewhere, &link).unwrap();
    let open = dir.path().join("open");
    std::fs::create_dir(&open).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
    for (live, why) in [
        (&link, "is a symbolic link"),
        (&open, "is writable by group or others"),
    ] {
        let out = Command::new("dd")
            .args(["if=/dev/zero", "of=out.bin", "bs=64k", "count=16"])
            .current_dir(&data)
            .env("LD_PRELOAD", shim())
            .env("CONVEYOR_MODE", "always")
            .env("CONVEYOR_PATHS", &data)
            .env("CONVEYOR_LIVE_DIR", live)
            .output()
            .unwrap();
        ok(&out, "dd");
        assert_eq!(
            std::fs::metadata(data.join("out.bin")).unwrap().len(),
            1 << 20
        );
        let err = String::from_utf8_lossy(&out.stderr);
        let warnings: Vec<&str> = err
            .lines()
            .filter(|l| l.contains("live stats are off"))
            .collect();
        assert_eq!(warnings.len(), 1, "{err}");
        assert!(warnings[0].contains(why), "{err}");
        let out = top(live, &["--once"]);
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("not read"));
    }
    assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 0);
    assert_eq!(std::fs::read_dir(&open).unwrap().count(), 0);
}

/// `top --help` shows an example and the exit statuses.
#[test]
fn top_help() {
    let out = Command::new(conveyor())
        .env("CONVEYOR_MODE", "always")
        .args(["top", "--help"])
        .output()
        .unwrap();
    ok(&out, "top --help");
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(
        help.contains("Example:") && help.contains("Exit status"),
        "{help}"
    );
}
