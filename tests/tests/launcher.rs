//! `conveyor run`: sets up the shim and execs the command, passing its exit
//! status and signal through, and says clearly what it cannot do.

use conveyor_tests::{ok, pattern, root, TempDir};
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::OnceLock;

/// The launcher, built on first use (with the shim next to it).
fn conveyor() -> &'static PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        conveyor_tests::shim();
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let st = Command::new(cargo)
            .args(["build", "--release", "-p", "conveyor"])
            .current_dir(root())
            .status()
            .expect("run cargo build");
        assert!(st.success(), "building conveyor failed");
        root().join("target/release/conveyor")
    })
}

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
        .env_remove("CONVEYOR_PATHS");
    if let Some(f) = counts {
        c.env("CONVEYOR_TEST_COUNTS", f);
    }
    c.output().expect("run conveyor")
}

/// dd through the launcher: identical output, and its writes were managed.
#[test]
fn run_accelerates_a_real_program() {
    let dir = TempDir::new("launch");
    std::fs::write(dir.path().join("src.bin"), pattern(11, 1 << 20)).unwrap();
    let counts = dir.path().join("counts");
    let out = run(
        conveyor(),
        &[
            "run",
            "--path",
            ".",
            "--",
            "dd",
            "if=src.bin",
            "of=out.bin",
            "bs=4k",
        ],
        dir.path(),
        Some(&counts),
    );
    ok(&out, "conveyor run dd");
    assert_eq!(
        std::fs::read(dir.path().join("out.bin")).unwrap(),
        std::fs::read(dir.path().join("src.bin")).unwrap()
    );
    let text = std::fs::read_to_string(&counts).expect("the shim was not loaded: no counts");
    assert!(
        text.lines().any(|l| l.starts_with("write ")),
        "no managed write: {text}"
    );
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

/// Without the shim beside it or installed, the launcher says where it looked.
#[test]
fn missing_shim_lists_where_it_looked() {
    let dir = TempDir::new("launch-noshim");
    let lonely = dir.path().join("conveyor");
    std::fs::copy(conveyor(), &lonely).unwrap();
    let out = run(
        &lonely,
        &["run", "--path", ".", "--", "true"],
        dir.path(),
        None,
    );
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
}

/// Static and setuid programs cannot be reached: a warning, and they still run.
#[test]
fn static_and_setuid_programs_get_a_warning() {
    let dir = TempDir::new("launch-static");
    let out = run(
        conveyor(),
        &["run", "--path", ".", "--", "/sbin/ldconfig", "-p"],
        dir.path(),
        None,
    );
    assert!(out.status.success(), "ldconfig -p failed: {:?}", out.status);
    assert!(String::from_utf8_lossy(&out.stderr).contains("statically linked"));
    let out = run(
        conveyor(),
        &["run", "--path", ".", "--", "/usr/bin/passwd", "--help"],
        dir.path(),
        None,
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("setuid"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
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
