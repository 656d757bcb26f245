//! The shim's log: `CONVEYOR_LOG_FILE` receives its warnings (one line
//! each, never through a symbolic link), and a flood of warnings from one
//! place is cut down to a burst and a count of what was suppressed.

use conveyor_tests::slowfs::SlowFs;
use conveyor_tests::{conveyor, ok, Run, TempDir};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// The shim's lines in a log file (a prefix of time and pid, then
/// `conveyor[PID]: LEVEL: message`).
fn log_lines(file: &Path) -> Vec<String> {
    std::fs::read_to_string(file)
        .unwrap_or_else(|e| panic!("{}: {e}", file.display()))
        .lines()
        .map(str::to_string)
        .collect()
}

/// A bad setting is reported in the log file named by CONVEYOR_LOG_FILE
/// (`%p` = pid), created 0600, and not on stderr.
#[test]
fn bad_value_is_logged_to_the_log_file() {
    let dir = TempDir::new("logs-file");
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("in.txt"), "hello\n").unwrap();
    let template = dir.path().join("log-%p.txt");
    let (out, _) = Run::new("cat", &["in.txt"], &data)
        .env("CONVEYOR_IO_SIZE", "lots")
        .env("CONVEYOR_LOG_FILE", template.to_str().unwrap())
        .shimmed(&data);
    ok(&out, "cat");
    assert_eq!(out.stdout, b"hello\n");
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("conveyor"),
        "the message went to stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let logs: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().contains("log-"))
        .collect();
    assert_eq!(logs.len(), 1, "{logs:?}");
    let name = logs[0].file_name().unwrap().to_string_lossy().into_owned();
    let pid = name.trim_start_matches("log-").trim_end_matches(".txt");
    assert!(pid.parse::<u32>().is_ok(), "{name}: %p not expanded");
    let mode = std::fs::metadata(&logs[0]).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "log file mode {mode:o}");
    let lines = log_lines(&logs[0]);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].contains(&format!("conveyor[{pid}]: error: CONVEYOR_IO_SIZE"))
            && lines[0].contains("expected a byte count"),
        "{}",
        lines[0]
    );
}

/// A symbolic link where the log file should be is not followed: its
/// target stays untouched, and the message says so on stderr along with
/// the warning itself.
#[test]
fn log_file_symlink_is_not_followed() {
    let dir = TempDir::new("logs-link");
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("in.txt"), "hello\n").unwrap();
    let target = dir.path().join("victim");
    std::fs::write(&target, "precious\n").unwrap();
    let link = dir.path().join("planted.log");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let (out, _) = Run::new("cat", &["in.txt"], &data)
        .env("CONVEYOR_READ_AHEAD", "lots")
        .env("CONVEYOR_LOG_FILE", link.to_str().unwrap())
        .shimmed(&data);
    ok(&out, "cat");
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "precious\n");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("CONVEYOR_LOG_FILE: cannot open") && err.contains("logging to stderr"),
        "{err}"
    );
    assert!(err.contains("CONVEYOR_READ_AHEAD"), "{err}");
}

/// Writes and fsyncs 4 KiB 200 times on storage where every write fails;
/// prints how many iterations saw EIO.
const FLOOD_PY: &str = r#"
import os, sys
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
n = 0
for i in range(200):
    try:
        os.write(fd, b"x" * 4096)
        os.fsync(fd)
    except OSError as e:
        if e.errno == 5:
            n += 1
print(n)
"#;

/// 200 background write failures: each is logged or counted in a
/// "suppressed K similar messages" line (nothing lost), but far fewer than
/// 200 lines are written. No timing is assumed: a burst of 10 and one line
/// a second would need over three minutes to write them all.
#[test]
fn a_flood_of_warnings_is_rate_limited() {
    let fs = SlowFs::mount(&["--eio-prob", "1.0", "--seed", "5"]);
    let dir = TempDir::new("logs-flood");
    let script = dir.path().join("flood.py");
    std::fs::write(&script, FLOOD_PY).unwrap();
    let log = dir.path().join("flood.log");
    let (out, counts) = Run::new("python3", &[script.to_str().unwrap(), "f.bin"], &fs.mnt())
        .env("CONVEYOR_LOG_FILE", log.to_str().unwrap())
        .shimmed(&fs.mnt());
    ok(&out, "flood.py");
    assert!(
        counts.get("fsync").copied().unwrap_or(0) >= 1,
        "not managed: {counts:?}"
    );
    let failures: u64 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    assert_eq!(failures, 200, "every iteration should see EIO");
    let lines = log_lines(&log);
    let written = lines
        .iter()
        .filter(|l| l.contains("warn: background write of") && l.contains("failed"))
        .count() as u64;
    let suppressed: u64 = lines
        .iter()
        .filter_map(|l| l.split_once("warn: suppressed "))
        .map(|(_, rest)| {
            rest.split(' ')
                .next()
                .and_then(|n| n.parse::<u64>().ok())
                .unwrap_or_else(|| panic!("bad suppressed line: {rest}"))
        })
        .sum();
    assert!(
        (10..100).contains(&written),
        "{written} lines written: {lines:?}"
    );
    assert_eq!(written + suppressed, failures, "{lines:?}");
}

/// `conveyor run --log info --log-file F` (relative, `%p`): the file gets
/// the managed file's info line under the command's pid.
#[test]
fn run_log_options_reach_the_shim() {
    let dir = TempDir::new("logs-run");
    std::fs::create_dir_all(dir.path().join("data")).unwrap();
    let out = std::process::Command::new(conveyor())
        .env("CONVEYOR_MODE", "always")
        .args([
            "run",
            "--log",
            "info",
            "--log-file",
            "run-%p.log",
            "--path",
            "data",
        ])
        .args(["--", "dd", "if=/dev/zero", "of=data/z", "bs=4k", "count=4"])
        .current_dir(dir.path())
        .env_remove("LD_PRELOAD")
        .env("CONVEYOR_LIVE_DIR", dir.path().join("live"))
        .output()
        .unwrap();
    ok(&out, "conveyor run dd");
    let logs: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    assert_eq!(logs.len(), 1, "{logs:?}");
    let lines = log_lines(&logs[0]);
    assert!(
        lines
            .iter()
            .any(|l| l.contains("]: info: managing ") && l.contains("/data/z (fd ")),
        "{lines:?}"
    );
}
