//! Data written and not closed is on storage when the program replaces
//! itself with exec (execl, execlp and execle, which glibc runs through an
//! internal execve no hook sees) and when it ends by returning from main,
//! exit, _exit or _Exit.

use conveyor_tests::{compile_c, ok, root, Run, TempDir};
use std::path::PathBuf;

/// Compiles tests/c/exec_pending.c; returns the work dir, the binary and
/// the managed data dir inside it.
fn build(tag: &str) -> (TempDir, PathBuf, PathBuf) {
    let dir = TempDir::new(tag);
    let bin = dir.path().join("exec_pending");
    let src = root().join("tests/c/exec_pending.c");
    compile_c(&src, &bin, &[]);
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    (dir, bin, data)
}

#[test]
fn exec_family_writes_pending_data_first() {
    let (dir, bin, data) = build("exec");
    for form in ["l", "p", "e"] {
        let file = data.join(format!("f-{form}"));
        let (out, counts) = Run::new(
            bin.to_str().unwrap(),
            &[file.to_str().unwrap(), form],
            dir.path(),
        )
        .shimmed(&data);
        ok(&out, "exec_pending under the shim");
        // Without the hooks cat would find the file empty: every write was
        // still buffered when the process image was replaced.
        assert_eq!(
            out.stdout.len(),
            16_000,
            "execl{form}: cat saw {} bytes",
            out.stdout.len()
        );
        assert_eq!(std::fs::read(&file).unwrap().len(), 16_000);
        assert!(
            counts.get("write").copied().unwrap_or(0) >= 1000,
            "writes were not managed: {counts:?}"
        );
    }
}

#[test]
fn every_exit_path_writes_pending_data() {
    let (dir, bin, data) = build("exit");
    for form in ["r", "x", "_", "E"] {
        let file = data.join(format!("f-{form}"));
        let (out, counts) = Run::new(
            bin.to_str().unwrap(),
            &[file.to_str().unwrap(), form],
            dir.path(),
        )
        .shimmed(&data);
        ok(&out, "exec_pending under the shim");
        let len = std::fs::read(&file).unwrap().len();
        assert_eq!(
            len, 16_000,
            "ending with {form:?} left {len} bytes on storage"
        );
        assert!(
            counts.get("write").copied().unwrap_or(0) >= 1000,
            "writes were not managed: {counts:?}"
        );
    }
}

/// A fatal signal with its default action writes pending data first and
/// still ends the process by that signal; `SIG_DFL` looks as it should to
/// the program; a program's own handler runs as without the shim.
#[test]
fn fatal_signals_write_pending_data_and_keep_their_status() {
    use std::os::unix::process::ExitStatusExt;
    let (dir, bin, data) = build("signal");
    for form in ["t", "d", "h"] {
        let file = data.join(format!("f-{form}"));
        let args = [file.to_str().unwrap(), form];
        let plain_file = dir.path().join(format!("plain-{form}"));
        let plain = Run::new(
            bin.to_str().unwrap(),
            &[plain_file.to_str().unwrap(), form],
            dir.path(),
        )
        .plain();
        let (out, counts) = Run::new(bin.to_str().unwrap(), &args, dir.path()).shimmed(&data);
        assert_eq!(
            out.status.signal(),
            plain.status.signal(),
            "{form}: {:?} vs {:?}",
            out.status,
            plain.status
        );
        assert_eq!(out.status.code(), plain.status.code(), "{form}");
        assert_eq!(out.stdout, plain.stdout, "{form}: stdout differs");
        let len = std::fs::read(&file).unwrap().len();
        // Without the signal handling the pending writes die with the process.
        assert_eq!(len, 16_000, "{form}: {len} bytes on storage");
        assert!(
            counts.get("write").copied().unwrap_or(0) >= 1000,
            "writes were not managed: {counts:?}"
        );
    }
}

/// A forked child that keeps running dies of SIGTERM as without the shim.
/// Breaking it: the child's handler waiting for a flushing thread it does
/// not have (`timeout` turns a hang into a failure here). Before the fix the
/// child handed the signal through the inherited pipe to the *parent's*
/// thread, which flushed the parent and wrote its stats report early; this
/// test does not see that, the fix removes it by construction.
#[test]
fn fatal_signal_in_a_forked_child() {
    let (dir, bin, data) = build("forksig");
    let file = data.join("f");
    let args = ["20", bin.to_str().unwrap(), file.to_str().unwrap(), "f"];
    let plain_file = dir.path().join("plain-f");
    let plain = Run::new(
        "timeout",
        &[
            "20",
            bin.to_str().unwrap(),
            plain_file.to_str().unwrap(),
            "f",
        ],
        dir.path(),
    )
    .plain();
    let (out, _) = Run::new("timeout", &args, dir.path()).shimmed(&data);
    ok(&plain, "plain run");
    ok(&out, "run under the shim (a timeout means the child hung)");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "child signal 15\n");
    assert_eq!(out.stdout, plain.stdout);
    assert_eq!(std::fs::read(&file).unwrap().len(), 16_000);
}
