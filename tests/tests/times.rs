//! Times and modes that programs set on files they have just written must
//! survive the shim: GNU `tar -x` then `make -q`, `gzip`, `gunzip`, `xz`,
//! `cp -p`, `cp -a`, `install -p`, and a program that sets times and modes
//! through its open descriptor, by path and with `AT_FDCWD`, before it
//! closes the file. Compared to the nanosecond with the plain run, on local
//! disk and on the slow filesystem.

mod common;

use common::python;
use conveyor_tests::twin::{differences, report, Twins, PLACES};
use conveyor_tests::{ok, pattern};
use std::fs::{File, FileTimes};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime};

fn at(secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_nanos(123_456_789)
}

fn put(path: &Path, data: &[u8], secs: u64) {
    std::fs::write(path, data).expect("write");
    let f = File::options().write(true).open(path).expect("open");
    f.set_times(
        FileTimes::new()
            .set_modified(at(secs))
            .set_accessed(at(secs)),
    )
    .expect("set times");
}

/// Inputs with fixed times: a small source tree with a Makefile whose
/// target is newer than its inputs, and its tar archive.
fn setup(dir: &Path) {
    let src = dir.join("src");
    std::fs::create_dir_all(src.join("sub")).expect("mkdir");
    put(&src.join("a.c"), &pattern(1, 3000), 1_000_000_000);
    put(&src.join("b.c"), &pattern(2, 70_000), 1_000_000_100);
    put(
        &src.join("sub/big.bin"),
        &pattern(3, 3 << 20),
        1_000_000_200,
    );
    put(&src.join("empty"), b"", 1_000_000_300);
    put(
        &src.join("Makefile"),
        b"prog: a.c b.c\n\tcat a.c b.c > prog\n",
        1_000_000_400,
    );
    put(&src.join("prog"), &pattern(4, 73_000), 1_000_000_500);
    for (d, secs) in [
        (src.join("sub"), 1_000_000_600),
        (src.clone(), 1_000_000_650),
    ] {
        File::open(&d)
            .and_then(|f| f.set_times(FileTimes::new().set_modified(at(secs))))
            .expect("directory times");
    }
    let tar = Command::new("tar")
        .args(["--format=gnu", "-cf", "src.tar", "-C", "src", "."])
        .current_dir(dir)
        .output()
        .expect("tar");
    ok(&tar, "tar -c");
    put(&dir.join("log.txt"), &pattern(5, 500_000), 1_000_000_600);
    let f = File::options()
        .write(true)
        .open(dir.join("src.tar"))
        .expect("open");
    f.set_times(FileTimes::new().set_modified(at(1_000_000_700)))
        .expect("times");
}

const SCRIPT: &str = r#"
set -e
mkdir x && tar -xf src.tar -C x
make -q -C x prog && echo "make -q: up to date" || echo "make -q: would rebuild"
gzip -k log.txt && mkdir un && cp -p log.txt.gz un/ && gunzip un/log.txt.gz
xz -k -T1 log.txt
cp -p src/sub/big.bin cp-p.bin
cp -a src cp-a
mkdir inst && install -p -m 640 src/b.c inst/b.c
"#;

/// Sets times and modes through the open descriptor, by path and with
/// `utimensat(AT_FDCWD)` while data is pending, then closes.
const PY_TIMES: &str = r#"
import os
for i, how in enumerate(["fd", "path", "at", "ns", "chmod"]):
    name = "t-%s" % how
    fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    for k in range(200):
        os.write(fd, b"%05d " % k * 20)
    t = (1_100_000_000 + i, 1_200_000_000 + i)
    if how == "fd":
        os.utime(fd, t)
    elif how == "path":
        os.utime(name, t)
    elif how == "at":
        os.utime(name, t, dir_fd=None, follow_symlinks=False)
    elif how == "ns":
        os.utime(fd, ns=(t[0] * 10**9 + 7, t[1] * 10**9 + 9))
    else:
        os.fchmod(fd, 0o2750)
        os.chmod(name, 0o4750)
        os.utime(fd, t)
    os.close(fd)
"#;

#[test]
fn programs_that_set_times_keep_them() {
    let mut failures = Vec::new();
    for place in PLACES {
        let t = Twins::new(place, "times");
        let (plain, shim) = t.run(setup, "bash", &["-c", SCRIPT], &[]);
        assert!(
            String::from_utf8_lossy(&plain.out.stdout).contains("up to date"),
            "the plain run's make -q must find the tree up to date: {plain:?}"
        );
        failures.extend(differences(
            &plain,
            &shim,
            true,
            &format!("tar, gzip, xz, cp, install ({place:?})"),
        ));
        let py = python().to_str().expect("python path");
        let (plain, shim) = t.run(|_: &Path| {}, py, &["-c", PY_TIMES], &[]);
        failures.extend(differences(
            &plain,
            &shim,
            true,
            &format!("times by fd, path and AT_FDCWD ({place:?})"),
        ));
    }
    report(&failures);
}
