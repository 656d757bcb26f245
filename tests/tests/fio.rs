//! fio with verification under the shim: random 4 KiB writes through the
//! sync (lseek + write) and psync (pwrite) engines, several jobs as threads
//! of one process, with `verify_backlog` so blocks are read back and
//! checked through the still-open descriptor while later writes are still
//! pending. Afterwards fio without the shim checks what reached storage.

mod common;

use common::sum;
use conveyor_tests::{ok, Run, TempDir};
use std::path::Path;

const JOB: &str = "\
[global]
bs=4k
size=8m
rw=randwrite
verify=crc32c
verify_backlog=64
verify_fatal=1
do_verify=1
group_reporting=0

[psync]
ioengine=psync
numjobs=2

[sync]
ioengine=sync
numjobs=2
fsync=64
end_fsync=1
";

/// fio's report must say every job ended without error or verify failure.
fn assert_clean(out: &str, jobs: usize) {
    let lower = out.to_lowercase();
    for bad in [
        "verify:",
        "bad magic",
        "verify failed",
        "mismatch",
        "crc32c: ",
    ] {
        assert!(!lower.contains(bad), "fio reported {bad:?}:\n{out}");
    }
    assert_eq!(
        out.matches("err= 0:").count(),
        jobs,
        "not every job ended with err=0:\n{out}"
    );
}

/// Reads every data file back without the shim, checking each block's
/// header (offset) and crc32c.
fn check_on_storage(dir: &Path, files: &[&str]) {
    for f in files {
        let len = std::fs::metadata(dir.join(f)).map(|m| m.len());
        assert_eq!(len.ok(), Some(8 << 20), "{f}: missing or wrong size");
    }
    let mut args = vec![
        "--rw=read".to_string(),
        "--bs=4k".into(),
        "--size=8m".into(),
        "--ioengine=psync".into(),
        "--verify=crc32c".into(),
        "--verify_only".into(),
        "--verify_fatal=1".into(),
    ];
    for (i, f) in files.iter().enumerate() {
        args.push(format!("--name=check{i}"));
        args.push(format!("--filename={f}"));
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = Run::new("fio", &args, dir).plain();
    ok(&out, "fio read-back without the shim");
    assert_clean(&String::from_utf8_lossy(&out.stdout), files.len());
}

#[test]
fn fio_verify_threads() {
    let dir = TempDir::new("fio");
    std::fs::write(dir.path().join("job.fio"), JOB).unwrap();
    let d = dir.path().to_str().unwrap();
    let (out, counts) = Run::new(
        "fio",
        &["--thread", &format!("--directory={d}"), "job.fio"],
        dir.path(),
    )
    .shimmed(dir.path());
    ok(&out, "fio under the shim");
    assert_clean(&String::from_utf8_lossy(&out.stdout), 4);
    // Every write and every verifying read went through the shim: psync
    // with pwrite/pread, sync with lseek + write/read. 2048 blocks a job.
    let blocks = 2 * 2048;
    assert!(
        sum(&counts, &["pwrite", "pwrite64"]) >= blocks,
        "{counts:?}"
    );
    assert!(sum(&counts, &["pread", "pread64"]) >= blocks, "{counts:?}");
    assert!(sum(&counts, &["write"]) >= blocks, "{counts:?}");
    assert!(
        sum(&counts, &["read", "__read_chk"]) >= blocks,
        "{counts:?}"
    );
    assert!(sum(&counts, &["lseek", "lseek64"]) >= blocks, "{counts:?}");
    assert!(sum(&counts, &["fsync", "fdatasync"]) > 0, "{counts:?}");
    check_on_storage(
        dir.path(),
        &["psync.0.0", "psync.1.0", "sync.0.0", "sync.1.0"],
    );
}

#[test]
fn fio_verify_processes() {
    // Jobs as forked processes: the children pass everything through (a
    // forked child does not manage files); the result must still verify.
    let dir = TempDir::new("fio-proc");
    std::fs::write(dir.path().join("job.fio"), JOB).unwrap();
    let d = dir.path().to_str().unwrap();
    let (out, _) =
        Run::new("fio", &[&format!("--directory={d}"), "job.fio"], dir.path()).shimmed(dir.path());
    ok(&out, "fio (processes) under the shim");
    assert_clean(&String::from_utf8_lossy(&out.stdout), 4);
    check_on_storage(
        dir.path(),
        &["psync.0.0", "psync.1.0", "sync.0.0", "sync.1.0"],
    );
}
