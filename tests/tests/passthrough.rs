//! Pass-through: with `CONVEYOR_PATHS` naming one directory, programs that
//! write to pipes, stdout, /dev/null and files in another directory behave
//! exactly as without the shim, and the shim manages none of their calls.

mod common;

use common::{managed_calls, python, sum};
use conveyor_tests::{ok, pattern, Run, TempDir};
use std::path::Path;

/// Runs `prog args` in `dir` with and without the shim (which manages only
/// `managed`); outputs must match and nothing may be managed.
fn same(prog: &str, args: &[&str], dir: &Path, managed: &Path, files: &[&str]) {
    let what = format!("{prog} {}", args.join(" "));
    let plain = Run::new(prog, args, dir).plain();
    ok(&plain, &format!("{what} without the shim"));
    let plain_files: Vec<Vec<u8>> = files
        .iter()
        .map(|f| std::fs::read(dir.join(f)).unwrap())
        .collect();
    for f in files {
        std::fs::remove_file(dir.join(f)).unwrap();
    }
    let (out, counts) = Run::new(prog, args, dir).shimmed(managed);
    ok(&out, &format!("{what} under the shim"));
    assert!(out.stdout == plain.stdout, "{what}: stdout differs");
    assert!(out.stderr == plain.stderr, "{what}: stderr differs");
    for (f, want) in files.iter().zip(&plain_files) {
        let got = std::fs::read(dir.join(f)).unwrap();
        assert!(&got == want, "{what}: {f} differs");
    }
    let managed = managed_calls(&counts);
    assert!(
        managed.is_empty(),
        "{what}: the shim managed calls outside CONVEYOR_PATHS: {managed:?}"
    );
}

#[test]
fn outside_paths_pass_through() {
    let managed = TempDir::new("pt-managed");
    let other = TempDir::new("pt-other");
    let o = other.path();
    std::fs::write(o.join("src.bin"), pattern(3, 3 * 1024 * 1024 + 5)).unwrap();
    let dst = o.join("dst.bin");
    let dst = dst.to_str().unwrap();

    // A control: the same dd into the managed directory is managed, so the
    // counts below can show management.
    let (out, counts) = Run::new(
        "dd",
        &[
            "bs=4k",
            "if=src.bin",
            &format!("of={}/ctl.bin", managed.path().display()),
        ],
        o,
    )
    .shimmed(managed.path());
    ok(&out, "control dd");
    assert!(
        sum(&counts, &["write"]) > 0,
        "control dd not managed: {counts:?}"
    );

    same(
        "dd",
        &["bs=4k", "status=none", "if=src.bin", &format!("of={dst}")],
        o,
        managed.path(),
        &["dst.bin"],
    );
    same(
        "dd",
        &["bs=4k", "status=none", "if=src.bin", "of=/dev/null"],
        o,
        managed.path(),
        &[],
    );
    same(
        "dd",
        &["bs=64k", "status=none", "if=src.bin"],
        o,
        managed.path(),
        &[],
    );
    same(
        "dd",
        &["bs=1k", "count=300", "status=none", "if=/dev/zero"],
        o,
        managed.path(),
        &[],
    );
    same("sh", &["-c", "echo hi | cat"], o, managed.path(), &[]);
    same(
        "sh",
        &[
            "-c",
            "cat src.bin | cat > piped.bin; cat piped.bin > /dev/null; echo done",
        ],
        o,
        managed.path(),
        &["piped.bin"],
    );
    same("cat", &["src.bin"], o, managed.path(), &[]);
    let py = python().to_str().unwrap();
    same(
        py,
        &[
            "-c",
            "import os, sys\n\
             print('hello from python')\n\
             sys.stderr.write('to stderr\\n')\n\
             with open('py.txt', 'w') as f:\n\
             \x20   f.write('line\\n' * 1000)\n\
             fd = os.open('py.bin', os.O_RDWR | os.O_CREAT | os.O_TRUNC)\n\
             os.write(fd, b'x' * 10000); os.pwrite(fd, b'y', 5)\n\
             print(os.pread(fd, 10, 0), os.fstat(fd).st_size)\n\
             os.close(fd)\n\
             with open('/dev/null', 'wb') as n:\n\
             \x20   n.write(b'z' * 100000)\n\
             print(len(open('src.bin', 'rb').read()))\n",
        ],
        o,
        managed.path(),
        &["py.txt", "py.bin"],
    );
    assert!(
        std::fs::read_dir(managed.path()).unwrap().count() == 1,
        "something other than the control wrote into the managed directory"
    );
}

#[test]
fn empty_paths_manage_nothing() {
    // CONVEYOR_PATHS set but empty: nothing is managed even in the cwd.
    let dir = TempDir::new("pt-empty");
    std::fs::write(dir.path().join("src.bin"), pattern(4, 100_000)).unwrap();
    let (out, counts) =
        Run::new("dd", &["bs=4k", "if=src.bin", "of=out.bin"], dir.path()).shimmed(Path::new(""));
    ok(&out, "dd with empty CONVEYOR_PATHS");
    assert!(counts.is_empty(), "{counts:?}");
    assert!(
        std::fs::read(dir.path().join("out.bin")).unwrap()
            == std::fs::read(dir.path().join("src.bin")).unwrap()
    );
}
