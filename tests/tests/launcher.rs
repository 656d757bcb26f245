//! `conveyor run`: sets up the shim and execs the command, passing its exit
//! status and signal through, and says clearly what it cannot do.

use conveyor_tests::{conveyor, ok, pattern, TempDir};
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{Command, Output};

fn run(
    bin: &PathBuf,
    args: &[&str],
    dir: &std::path::Path,
    counts: Option<&std::path::Path>,
) -> Output {
    let mut c = Command::new(bin);
    c.args(args)
        .current_dir(dir)
        .env_remove("LD_PRELOAD")
        .env_remove("CONVEYOR_PATHS")
        .env("CONVEYOR_MODE", "always")
        .env("CONVEYOR_LIVE_DIR", dir.join(".live"));
    if let Some(f) = counts {
        c.env("CONVEYOR_TEST_COUNTS", f);
    }
    c.output().expect("run conveyor")
}

/// Runs `bin run --path . -- dd` in `dir` with `env` set, and checks that
/// dd's output is identical to its input and its writes were managed.
fn dd_through(bin: &std::path::Path, dir: &std::path::Path, env: &[(&str, &std::path::Path)]) {
    std::fs::write(dir.join("src.bin"), pattern(11, 1 << 20)).unwrap();
    let counts = dir.join("counts");
    let mut c = Command::new(bin);
    c.args([
        "run",
        "--path",
        ".",
        "--",
        "dd",
        "if=src.bin",
        "of=out.bin",
        "bs=4k",
    ])
    .current_dir(dir)
    .env_remove("LD_PRELOAD")
    .env_remove("CONVEYOR_PATHS")
    .env("CONVEYOR_MODE", "always")
    .env("CONVEYOR_LIVE_DIR", dir.join(".live"))
    .env("CONVEYOR_TEST_COUNTS", &counts);
    for (k, v) in env {
        c.env(k, v);
    }
    let out = c.output().expect("run conveyor");
    ok(&out, &format!("{} run dd", bin.display()));
    assert_eq!(
        std::fs::read(dir.join("out.bin")).unwrap(),
        std::fs::read(dir.join("src.bin")).unwrap()
    );
    let text = std::fs::read_to_string(&counts).expect("the shim was not loaded: no counts");
    assert!(
        text.lines().any(|l| l.starts_with("write ")),
        "no managed write: {text}"
    );
}

/// dd through the launcher: identical output, and its writes were managed.
#[test]
fn run_accelerates_a_real_program() {
    let dir = TempDir::new("launch");
    dd_through(conveyor(), dir.path(), &[]);
}

/// The command's exit status and terminating signal are the launcher's.
#[test]
fn exit_status_and_signal_pass_through() {
    let dir = TempDir::new("launch-status");
    let out = run(
        conveyor(),
        &["run", "--path", ".", "--", "sh", "-c", "exit 7"],
        dir.path(),
        None,
    );
    assert_eq!(out.status.code(), Some(7));
    let out = run(
        conveyor(),
        &["run", "--path", ".", "--", "sh", "-c", "kill -TERM $$"],
        dir.path(),
        None,
    );
    assert_eq!(out.status.signal(), Some(15), "{:?}", out.status);
}

/// A command that does not exist: 127 and a message naming it.
#[test]
fn missing_command_is_named() {
    let dir = TempDir::new("launch-missing");
    let out = run(
        conveyor(),
        &["run", "--path", ".", "--", "no-such-command-xyz"],
        dir.path(),
        None,
    );
    assert_eq!(out.status.code(), Some(127));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no-such-command-xyz: command not found"));
}

/// A launcher alone, as `cargo install` leaves it: it unpacks the shim it
/// carries into the user's cache directory (0600 in a 0700 directory) and
/// accelerates dd with it.
#[test]
fn lone_launcher_unpacks_its_embedded_shim() {
    use std::os::unix::fs::PermissionsExt;
    let dir = TempDir::new("launch-lone");
    let lonely = dir.path().join("conveyor");
    conveyor_tests::copy_executable(conveyor(), &lonely);
    let cache = dir.path().join("cache");
    dd_through(&lonely, dir.path(), &[("XDG_CACHE_HOME", &cache)]);
    let unpacked: Vec<_> = std::fs::read_dir(cache.join("conveyor"))
        .unwrap()
        .flatten()
        .collect();
    assert_eq!(unpacked.len(), 1, "{unpacked:?}");
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&unpacked[0].path()), 0o600);
    assert_eq!(mode(&cache.join("conveyor")), 0o700);
}

/// Without the shim beside it or installed, and no place to unpack its own
/// copy, the launcher says where it looked and why the copy did not help.
#[test]
fn missing_shim_lists_where_it_looked() {
    let dir = TempDir::new("launch-noshim");
    let lonely = dir.path().join("conveyor");
    conveyor_tests::copy_executable(conveyor(), &lonely);
    let not_a_dir = dir.path().join("cache-file");
    std::fs::write(&not_a_dir, b"").unwrap();
    let out = Command::new(&lonely)
        .args(["run", "--path", ".", "--", "true"])
        .current_dir(dir.path())
        .env_remove("LD_PRELOAD")
        .env("XDG_CACHE_HOME", &not_a_dir)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(125));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot find libconveyor_preload.so"), "{err}");
    assert!(
        err.contains(
            &dir.path()
                .join("libconveyor_preload.so")
                .display()
                .to_string()
        ),
        "{err}"
    );
    assert!(err.contains("built-in copy: cannot create"), "{err}");
}

/// A static program cannot be reached: a warning, and it still runs.
/// (Setuid programs: `command.rs`.)
#[test]
fn static_programs_get_a_warning() {
    let dir = TempDir::new("launch-static");
    let out = run(
        conveyor(),
        &["run", "--path", ".", "--", "/sbin/ldconfig", "-p"],
        dir.path(),
        None,
    );
    assert!(out.status.success(), "ldconfig -p failed: {:?}", out.status);
    assert!(String::from_utf8_lossy(&out.stderr).contains("statically linked"));
}

/// Bad arguments: a usage error naming the problem, status 2.
#[test]
fn bad_arguments_are_explained() {
    let dir = TempDir::new("launch-args");
    let out = run(conveyor(), &["run", "--", "true"], dir.path(), None);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--path"));
    let out = run(
        conveyor(),
        &["run", "--path", ".", "--log", "loud", "--", "true"],
        dir.path(),
        None,
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("loud"));
}

/// `--stats FILE`: a JSON report whose totals match what dd did; `--stats -`:
/// a table on stderr, even though dd closes its stderr at exit.
#[test]
fn stats_report_at_exit() {
    let dir = TempDir::new("launch-stats");
    std::fs::write(dir.path().join("src.bin"), pattern(12, 3 << 20)).unwrap();
    let out = run(
        conveyor(),
        &[
            "run",
            "--path",
            ".",
            "--stats",
            "report-%p.json",
            "--",
            "dd",
            "if=src.bin",
            "of=out.bin",
            "bs=4k",
        ],
        dir.path(),
        None,
    );
    ok(&out, "conveyor run --stats");
    let report = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .find(|e| e.file_name().to_string_lossy().starts_with("report-"))
        .expect("no report file");
    let check = r#"
import json, sys
r = json.load(open(sys.argv[1]))
assert r["schema"] == "conveyor-stats/1", r["schema"]
t = r["totals"]
assert t["app_write_bytes"] == 3 << 20, t
assert t["app_read_bytes"] == 3 << 20, t
assert t["storage_write_bytes"] == 3 << 20, t
assert 0 < t["storage_write_requests"] < t["app_write_calls"], t
assert t["app_write_calls"] == 768, t
assert t["errors"] == 0 and t["lost_bytes"] == 0, t
paths = sorted(f["path"].rsplit("/", 1)[1] for f in r["files"])
assert paths == ["out.bin", "src.bin"], paths
print("ok")
"#;
    let py = Command::new("python3")
        .arg("-c")
        .arg(check)
        .arg(report.path())
        .output()
        .expect("python3");
    ok(&py, "checking the JSON report");
    let mode = std::os::unix::fs::PermissionsExt::mode(&report.metadata().unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600, "report mode");
    let out = run(
        conveyor(),
        &[
            "run",
            "--path",
            ".",
            "--stats",
            "-",
            "--",
            "dd",
            "if=src.bin",
            "of=out2.bin",
            "bs=4k",
        ],
        dir.path(),
        None,
    );
    ok(&out, "conveyor run --stats -");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("conveyor: stats of pid"), "{err}");
    assert!(
        err.contains("program wrote 3145728 B in 768 calls"),
        "{err}"
    );
}

/// `conveyor doctor`: a verdict with its reason for each kind of path, the
/// filesystem type, and the shim's state.
#[test]
fn doctor_explains_each_path() {
    let dir = TempDir::new("doctor");
    let sel = dir.path().join("sel");
    std::fs::create_dir_all(&sel).unwrap();
    std::fs::write(sel.join("f"), b"x").unwrap();
    let fifo = sel.join("fifo");
    ok(
        &Command::new("mkfifo").arg(&fifo).output().unwrap(),
        "mkfifo",
    );
    let s = |p: &std::path::Path| p.display().to_string();
    let out = Command::new(conveyor())
        .env("CONVEYOR_MODE", "always")
        .args([
            "doctor",
            "--path",
            &s(&sel),
            &s(&sel.join("f")),
            "/etc/hosts",
            &s(&fifo),
            &s(&sel.join("new")),
        ])
        .env("CONVEYOR_IO_SIZE", "12Q")
        .env("CONVEYOR_MAX_AGE", "soon")
        .output()
        .unwrap();
    // The bad settings make it fail.
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    let line = |needle: &str| {
        text.lines()
            .find(|l| l.starts_with(needle))
            .unwrap_or("")
            .to_string()
    };
    assert!(line("shim:").contains("(loads)"), "{text}");
    assert!(
        line(&s(&sel.join("f"))).contains(": accelerated when opened"),
        "{text}"
    );
    assert!(
        line("/etc/hosts").contains("not accelerated: /etc/hosts is not under"),
        "{text}"
    );
    assert!(line(&s(&fifo)).contains("not a regular file"), "{text}");
    assert!(
        line(&s(&sel.join("new")))
            .contains("does not exist; a regular file created there is accelerated"),
        "{text}"
    );
    assert!(
        line("CONVEYOR_IO_SIZE").contains("\"12Q\" is not a size"),
        "{text}"
    );
    assert!(
        line("CONVEYOR_MAX_AGE").contains("\"soon\" is not a duration"),
        "{text}"
    );
    // Nothing selected at all.
    let out = Command::new(conveyor())
        .env("CONVEYOR_MODE", "always")
        .args(["doctor", "/etc/hosts"])
        .env_remove("CONVEYOR_PATHS")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("CONVEYOR_PATHS is not set"));
    // Without the shim: exit 1 and where it looked.
    let lonely = dir.path().join("conveyor");
    conveyor_tests::copy_executable(conveyor(), &lonely);
    let not_a_dir = dir.path().join("cache-file");
    std::fs::write(&not_a_dir, b"").unwrap();
    let out = Command::new(&lonely)
        .args(["doctor", "/etc/hosts"])
        .env("XDG_CACHE_HOME", &not_a_dir)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout)
        .contains("libconveyor_preload.so not found; looked in"));
}

/// On the slow FUSE filesystem, doctor names the filesystem.
#[test]
fn doctor_names_a_fuse_filesystem() {
    let fs = conveyor_tests::slowfs::SlowFs::mount(&[]);
    std::fs::write(fs.backing().join("f"), b"x").unwrap();
    let file = fs.mnt().join("f");
    let out = Command::new(conveyor())
        .env("CONVEYOR_MODE", "always")
        .args(["doctor", &file.display().to_string()])
        .env("CONVEYOR_PATHS", fs.mnt())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("accelerated when opened") && text.contains("filesystem fuse"),
        "{text}"
    );
}
