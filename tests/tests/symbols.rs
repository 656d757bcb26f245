//! Every symbol the shim hooks, reached by its exact exported name and
//! behaving as without the shim: tests/c/symbols.c (compiled here with
//! `_FORTIFY_SOURCE=2` and `_FILE_OFFSET_BITS=64`) calls each name through
//! `dlsym` on files in its working directory and prints what it observes
//! (return values, errno names, offsets, sizes, data digests). It runs once
//! in a directory the shim manages and once in another without the shim:
//! the outputs and the files left behind must be identical, and the shim's
//! test counters must show every hooked name handling a managed descriptor.

use conveyor_tests::slowfs::SlowFs;
use conveyor_tests::{ok, root, tree, Run, TempDir};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Every hooked name the program must reach with a managed descriptor.
const NAMES: &[&str] = &[
    "open",
    "open64",
    "openat",
    "openat64",
    "__open_2",
    "__open64_2",
    "__openat_2",
    "__openat64_2",
    "creat",
    "creat64",
    "read",
    "__read_chk",
    "pread",
    "pread64",
    "__pread_chk",
    "__pread64_chk",
    "readv",
    "preadv",
    "preadv64",
    "preadv2",
    "preadv64v2",
    "write",
    "pwrite",
    "pwrite64",
    "writev",
    "pwritev",
    "pwritev64",
    "pwritev2",
    "pwritev64v2",
    "lseek",
    "lseek64",
    "close",
    "close_range",
    "closefrom",
    "fsync",
    "fdatasync",
    "sync_file_range",
    "syncfs",
    "sync",
    "fstat",
    "fstat64",
    "__fxstat",
    "__fxstat64",
    "fstatat",
    "fstatat64",
    "statx",
    "stat",
    "stat64",
    "lstat",
    "lstat64",
    "__xstat",
    "__xstat64",
    "__lxstat",
    "__lxstat64",
    "ftruncate",
    "ftruncate64",
    "truncate",
    "truncate64",
    "fallocate",
    "fallocate64",
    "posix_fallocate",
    "posix_fallocate64",
    "dup",
    "dup2",
    "dup3",
    "fcntl",
    "fcntl64",
    "copy_file_range",
    "sendfile",
    "sendfile64",
    "splice",
    "mmap",
    "mmap64",
    "fdopen",
    "flock",
    "lockf",
    "lockf64",
];

/// Compiles tests/c/symbols.c into `dir`.
fn compile(dir: &Path) -> PathBuf {
    let src = root().join("tests/c/symbols.c");
    let bin = dir.join("symbols");
    let out = Command::new("cc")
        .args(["-O2", "-D_FORTIFY_SOURCE=2", "-D_FILE_OFFSET_BITS=64", "-o"])
        .arg(&bin)
        .arg(&src)
        .arg("-ldl")
        .output()
        .expect("run cc (Debian: gcc)");
    ok(&out, "compiling tests/c/symbols.c");
    bin
}

/// The first line where `a` and `b` differ, with a little context.
fn first_difference(a: &str, b: &str) -> String {
    let (la, lb): (Vec<&str>, Vec<&str>) = (a.lines().collect(), b.lines().collect());
    let i = la
        .iter()
        .zip(&lb)
        .position(|(x, y)| x != y)
        .unwrap_or(la.len().min(lb.len()));
    let from = i.saturating_sub(8);
    let show = |l: &[&str]| l[from.min(l.len())..(i + 3).min(l.len())].join("\n");
    format!(
        "first difference at line {}\n--- without the shim:\n{}\n--- with the shim:\n{}",
        i + 1,
        show(&la),
        show(&lb)
    )
}

/// Runs the program in `base/plain` without the shim and in `base/shim`
/// with it (and `env`), and compares everything.
fn check(base: &Path, env: &[(&str, &str)]) {
    let bins = TempDir::new("symbols-bin");
    let bin = compile(bins.path());
    let bin = bin.to_str().expect("utf-8 path");
    let (plain_dir, shim_dir) = (base.join("plain"), base.join("shim"));
    for d in [&plain_dir, &shim_dir] {
        std::fs::create_dir_all(d).expect("create run dir");
    }

    let plain = Run::new(bin, &[], &plain_dir).plain();
    ok(&plain, "symbols without the shim");
    let mut run = Run::new(bin, &[], &shim_dir);
    for (k, v) in env {
        run = run.env(k, v);
    }
    let (shim, counts) = run.shimmed(&shim_dir);
    ok(&shim, "symbols under the shim");

    let (a, b) = (
        String::from_utf8_lossy(&plain.stdout),
        String::from_utf8_lossy(&shim.stdout),
    );
    assert!(
        a.contains("== end failures 0"),
        "the program did not finish cleanly without the shim:\n{a}"
    );
    assert!(
        a == b,
        "the program observed something else under the shim; {}",
        first_difference(&a, &b)
    );

    let (ta, tb) = (tree(&plain_dir), tree(&shim_dir));
    let names = |t: &[(String, String, Vec<u8>)]| -> Vec<String> {
        t.iter().map(|(n, k, _)| format!("{n} ({k})")).collect()
    };
    assert_eq!(names(&ta), names(&tb), "different files left behind");
    let differ: Vec<&str> = ta
        .iter()
        .zip(&tb)
        .filter(|(x, y)| x.2 != y.2)
        .map(|(x, _)| x.0.as_str())
        .collect();
    assert!(differ.is_empty(), "file contents differ: {differ:?}");

    let missing: Vec<&str> = NAMES
        .iter()
        .copied()
        .filter(|n| counts.get(*n).copied().unwrap_or(0) == 0)
        .collect();
    assert!(
        missing.is_empty(),
        "hooks never handled a managed descriptor: {missing:?}\ncounts: {counts:?}"
    );
}

/// Local storage, default settings.
#[test]
fn every_symbol_as_without_the_shim() {
    let dir = TempDir::new("symbols");
    check(dir.path(), &[]);
}

/// Buffers far smaller than the writes: back-pressure, direct writes of
/// large pieces, tiny read-ahead windows.
#[test]
fn every_symbol_with_small_buffers() {
    let dir = TempDir::new("symbols-small");
    check(
        dir.path(),
        &[
            ("CONVEYOR_WRITE_BUFFER", "128K"),
            ("CONVEYOR_IO_SIZE", "4K"),
            ("CONVEYOR_READ_AHEAD", "8K"),
            ("CONVEYOR_MAX_MEMORY", "256K"),
        ],
    );
}

/// Slow storage (2 ms per request): written data stays pending long enough
/// for every call to meet it, so ordering mistakes show (both runs on the
/// same filesystem).
#[test]
fn every_symbol_on_slow_storage() {
    let fs = SlowFs::mount(&["--latency-ms", "2"]);
    check(&fs.mnt(), &[]);
}
