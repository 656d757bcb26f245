//! The shim on slow storage (conveyor-slowfs at 1 ms per request): data is
//! byte for byte what the program wrote, small writes reach storage as few
//! large requests, and storage errors reach the program as without the shim.

use conveyor_tests::slowfs::SlowFs;
use conveyor_tests::{ok, pattern, Run, TempDir};

/// dd writing 4 MiB in 4 KiB blocks through the shim reaches the filesystem
/// as a handful of large writes (without it: 1,024 writes of 4 KiB).
#[test]
fn small_writes_reach_storage_coalesced() {
    let fs = SlowFs::mount(&["--latency-ms", "1"]);
    let src = fs.backing().join("src.bin");
    std::fs::write(&src, pattern(5, 4 << 20)).unwrap();
    let before = fs.stats();
    let (out, counts) = Run::new(
        "dd",
        &["bs=4k", &format!("if={}", src.display()), "of=out.bin"],
        &fs.mnt(),
    )
    .shimmed(&fs.mnt());
    ok(&out, "dd under the shim on slowfs");
    let after = fs.stats();
    assert!(std::fs::read(fs.backing().join("out.bin")).unwrap() == std::fs::read(&src).unwrap());
    let writes = after["op.write"] - before["op.write"];
    assert!(
        counts["write"] >= 1024,
        "dd's writes were not managed: {counts:?}"
    );
    assert!(
        writes <= 16,
        "{writes} write requests reached storage for 4 MiB (want a few of up to 1 MiB)"
    );
    assert!(
        after.get("write_size.1048576").copied().unwrap_or(0) >= 2,
        "no 1 MiB writes: {after:?}"
    );
}

/// Sequential 4 KiB reads through the shim reach the filesystem as large
/// reads, and return exactly the file.
#[test]
fn small_reads_served_from_large_requests() {
    let fs = SlowFs::mount(&["--latency-ms", "1", "--direct-io"]);
    let data = pattern(6, 3 << 20);
    std::fs::write(fs.backing().join("in.bin"), &data).unwrap();
    let before = fs.stats();
    let (out, _) =
        Run::new("dd", &["bs=4k", "if=in.bin", "of=/dev/stdout"], &fs.mnt()).shimmed(&fs.mnt());
    ok(&out, "dd read under the shim");
    assert!(out.stdout == data, "read data differs");
    let reads = fs.stats()["op.read"] - before["op.read"];
    assert!(
        reads <= 32,
        "{reads} read requests for 3 MiB in direct-io mode (want far fewer than 768)"
    );
}

/// A full disk: dd fails with "No space left on device" under the shim as
/// it does without it, and what reached storage is a prefix of the data.
#[test]
fn enospc_reaches_the_program() {
    let fs = SlowFs::mount(&["--enospc-after", "1000000"]);
    let src = fs.backing().join("src.bin");
    std::fs::write(&src, pattern(7, 3 << 20)).unwrap();
    let s = src.display().to_string();
    let plain = Run::new(
        "dd",
        &["bs=4k", &format!("if={s}"), "of=plain.bin"],
        &fs.mnt(),
    )
    .plain();
    assert!(!plain.status.success(), "dd without the shim should fail");
    drop(fs);
    let fs = SlowFs::mount(&["--enospc-after", "1000000"]);
    let src = fs.backing().join("src.bin");
    std::fs::write(&src, pattern(7, 3 << 20)).unwrap();
    let (out, _) = Run::new(
        "dd",
        &["bs=4k", &format!("if={}", src.display()), "of=shim.bin"],
        &fs.mnt(),
    )
    .shimmed(&fs.mnt());
    assert!(
        !out.status.success(),
        "dd under the shim succeeded on a full disk"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("No space left on device"), "dd's error: {err}");
    let stored = std::fs::read(fs.backing().join("shim.bin")).unwrap();
    let want = std::fs::read(&src).unwrap();
    assert!(
        stored.len() <= 1_000_000 && want.starts_with(&stored),
        "stored data is not a prefix"
    );
}

/// Small files written once, as tar and cp write them: under the shim the
/// filesystem sees the same opens, creates, flushes, getattrs, setattrs
/// and releases as without it, and no more writes (the shim writes through
/// the program's own descriptor at close, and before a metadata change
/// through it, as tar's `fchmod` and `futimens`: a duplicate of it would
/// close with one more flush). Counted by the filesystem, for a Python
/// writer and for GNU tar; the files are compared byte for byte.
#[test]
fn a_managed_small_file_costs_no_request_more() {
    const FILES: u64 = 50;
    // Names and attributes kept for the whole test: no getattr count
    // depends on how long a program took.
    let fs = SlowFs::mount(&["--latency-ms", "0", "--attr-ttl-ms", "3600000"]);
    let script = format!(
        "import os\nfor i in range({FILES}):\n    fd = os.open('f%d' % i, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)\n    os.write(fd, b'%d' % i * 700)\n    os.write(fd, b'tail')\n    os.close(fd)\n"
    );
    let src = TempDir::new("small-src");
    for i in 0..FILES as usize {
        std::fs::write(
            src.path().join(format!("f{i}")),
            pattern(i as u64, 1000 + i * 300),
        )
        .unwrap();
    }
    let tarball = src.path().join("files.tar");
    let names: Vec<String> = (0..FILES).map(|i| format!("f{i}")).collect();
    let mut tar_args = vec![
        "-cf".to_string(),
        tarball.display().to_string(),
        "-C".into(),
    ];
    tar_args.push(src.path().display().to_string());
    tar_args.extend(names.iter().cloned());
    let made = std::process::Command::new("tar")
        .args(&tar_args)
        .output()
        .unwrap();
    ok(&made, "tar -c");
    let tarball = tarball.display().to_string();
    let programs: [(&str, Vec<&str>); 2] = [
        ("python3", vec!["-c", &script]),
        ("tar", vec!["-xf", &tarball]),
    ];
    for (prog, args) in programs {
        let mut counts = Vec::new();
        for (dir, shim) in [("plain", false), ("shim", true)] {
            let d = fs.mnt().join(format!("{prog}-{dir}"));
            std::fs::create_dir(&d).unwrap();
            let before = fs.stats();
            // Small data waits for each close however long the machine
            // makes the program take (no background write, whose
            // duplicate would count a flush).
            let run = Run::new(prog, &args, &d)
                .env("CONVEYOR_MAX_AGE", "60m")
                .env("CONVEYOR_DEFER_LIMIT", "60m");
            let out = if shim {
                let (out, c) = run.shimmed(&d);
                assert!(
                    c.get("write").copied().unwrap_or(0) >= FILES,
                    "{prog}: the writes were not managed: {c:?}"
                );
                out
            } else {
                run.plain()
            };
            ok(&out, &format!("{prog} {dir}"));
            let after = fs.stats();
            let op =
                |k: &str| after.get(k).copied().unwrap_or(0) - before.get(k).copied().unwrap_or(0);
            counts.push([
                op("op.open"),
                op("op.create"),
                op("op.release"),
                op("op.flush"),
                op("op.getattr"),
                op("op.setattr"),
                op("op.write"),
            ]);
        }
        for name in &names {
            let file = |dir: &str| {
                let p = fs.backing().join(format!("{prog}-{dir}")).join(name);
                (std::fs::read(&p).unwrap(), std::fs::metadata(&p).unwrap())
            };
            let ((pd, pm), (sd, sm)) = (file("plain"), file("shim"));
            assert!(pd == sd, "{prog}: {name} differs");
            use std::os::unix::fs::MetadataExt;
            if prog != "tar" {
                continue;
            }
            // tar sets each file's mode and times after writing it.
            assert_eq!(
                (pm.mode(), pm.mtime(), pm.mtime_nsec()),
                (sm.mode(), sm.mtime(), sm.mtime_nsec()),
                "{prog}: {name}: mode and mtime differ"
            );
        }
        let [p, s] = [counts[0], counts[1]];
        assert_eq!(
            s[..6],
            p[..6],
            "{prog}: opens, creates, releases, flushes, getattrs, setattrs: plain {p:?}, shim {s:?}"
        );
        assert!(
            s[6] <= p[6],
            "{prog}: writes: plain {}, shim {}",
            p[6],
            s[6]
        );
    }
}

/// A small file's description works through the program's own descriptor
/// until the shim needs one of its own: every way the program's number can
/// go while the description lives on (a `dup` then `close` of the first,
/// `dup2` over it, enough data for a background write, a `fork`) keeps the
/// data, byte for byte as the plain run; and a number closed behind the
/// shim's back (a raw system call) and reused for another file never gets
/// the first file's data. On the slow filesystem and on local disk.
#[test]
fn the_programs_own_descriptor_is_never_used_after_it_goes() {
    let script = r#"
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
def w(fd, data):
    assert os.write(fd, data) == len(data)
# dup, close the first, write through the copy.
a = os.open("a", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
w(a, b"a1 " * 1000)
a2 = os.dup(a)
os.close(a)
w(a2, b"a2 " * 1000)
os.close(a2)
# dup2 over a descriptor with pending data.
b = os.open("b", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
w(b, b"b1 " * 1000)
c = os.open("c", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
w(c, b"c1 " * 1000)
os.dup2(c, b)
w(b, b"c2 " * 1000)
os.close(b)
os.close(c)
# More than a request of small writes: a worker writes the first batches.
d = os.open("d", os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
for i in range(700):
    w(d, b"%04d" % i * 1024)
os.lseek(d, 0, 0)
assert os.read(d, 8) == b"00000000"
os.close(d)
# fork with pending data; both write after.
e = os.open("e", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
w(e, b"parent " * 100)
pid = os.fork()
if pid == 0:
    os.pwrite(e, b"child", 5000)
    os._exit(0)
os.waitpid(pid, 0)
w(e, b"again " * 10)
os.close(e)
# Closed behind the shim's back, the number reused for another file.
f = os.open("f", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
w(f, b"f" * 100)
libc.syscall(3, f)   # SYS_close on x86_64
g = os.open("g", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
assert g == f
w(g, b"g" * 50)
os.close(g)
"#;
    let fs = SlowFs::mount(&["--latency-ms", "0"]);
    let local = TempDir::new("own-fd");
    for (base, what) in [
        (fs.mnt(), "slow filesystem"),
        (local.path().to_path_buf(), "local disk"),
    ] {
        let (plain, shim) = (base.join("plain"), base.join("shim"));
        std::fs::create_dir(&plain).unwrap();
        std::fs::create_dir(&shim).unwrap();
        ok(&Run::new("python3", &["-c", script], &plain).plain(), what);
        let (out, counts) = Run::new("python3", &["-c", script], &shim).shimmed(&shim);
        ok(&out, &format!("{what}, under the shim"));
        assert!(
            counts.get("write").copied().unwrap_or(0) > 700,
            "{what}: {counts:?}"
        );
        for name in ["a", "b", "c", "d", "e", "g"] {
            assert!(
                std::fs::read(plain.join(name)).unwrap() == std::fs::read(shim.join(name)).unwrap(),
                "{what}: {name} differs from the plain run's"
            );
        }
        // `f` lost its data with its number (the shim cannot write through a
        // descriptor that is gone); never into `g`, checked above.
        assert!(std::fs::read(shim.join("f"))
            .unwrap()
            .iter()
            .all(|b| *b == b'f'));
    }
}

/// Small files read once to the end, as `cat`, compilers and `make` read
/// them: under the shim the filesystem gets the same reads (one that
/// returns the file, one at the end) and the same opens, flushes, getattrs
/// and releases as without it. With direct I/O, so every read the program
/// or the shim makes reaches the filesystem; the output is compared byte
/// for byte.
#[test]
fn a_small_file_read_once_costs_no_request_more() {
    const FILES: usize = 20;
    // Names and attributes kept for the whole test (see above).
    let fs = SlowFs::mount(&[
        "--latency-ms",
        "0",
        "--direct-io",
        "--attr-ttl-ms",
        "3600000",
    ]);
    let mut counts = Vec::new();
    let mut outputs = Vec::new();
    // The mount's root is known to the kernel before either run.
    std::fs::metadata(fs.mnt()).unwrap();
    for (dir, shim) in [("plain", false), ("shim", true)] {
        let back = fs.backing().join(dir);
        std::fs::create_dir(&back).unwrap();
        let mut names = Vec::new();
        for i in 0..FILES {
            std::fs::write(
                back.join(format!("f{i}")),
                pattern(i as u64, 1000 + i * 250),
            )
            .unwrap();
            names.push(format!("f{i}"));
        }
        let args: Vec<&str> = names.iter().map(String::as_str).collect();
        let d = fs.mnt().join(dir);
        let before = fs.stats();
        let run = Run::new("cat", &args, &d);
        let out = if shim {
            let (out, c) = run.shimmed(&d);
            assert!(
                c.get("read").copied().unwrap_or(0) >= 2 * FILES as u64,
                "{c:?}"
            );
            out
        } else {
            run.plain()
        };
        ok(&out, &format!("cat, {dir}"));
        outputs.push(out.stdout);
        let after = fs.stats();
        let op = |k: &str| after.get(k).copied().unwrap_or(0) - before.get(k).copied().unwrap_or(0);
        counts.push([
            op("op.open"),
            op("op.read"),
            op("op.flush"),
            op("op.getattr"),
            op("op.release"),
        ]);
    }
    assert!(outputs[0] == outputs[1], "cat's output differs");
    assert_eq!(
        counts[1], counts[0],
        "opens, reads, flushes, getattrs, releases: shim vs plain"
    );
}

/// A file reopened to append a line (postmark's appends, a log reopened
/// per message) works through the program's own appending descriptor: no
/// open, flush or release more than without the shim (a reopen of its own
/// cost one of each, and a flush more). The shim's `fstat` of the new
/// descriptor may cost a getattr where the kernel's attributes of the file
/// expired, at most one per open.
#[test]
fn a_file_reopened_to_append_costs_no_open_more() {
    const FILES: u64 = 30;
    let fs = SlowFs::mount(&["--latency-ms", "0", "--attr-ttl-ms", "3600000"]);
    let script = format!(
        "import os\nfor i in range({FILES}):\n    fd = os.open('f%d' % i, os.O_WRONLY | os.O_APPEND)\n    os.write(fd, b'appended %d\\n' % i)\n    os.close(fd)\n"
    );
    let mut counts = Vec::new();
    for (dir, shim) in [("plain", false), ("shim", true)] {
        let d = fs.mnt().join(dir);
        std::fs::create_dir(&d).unwrap();
        for i in 0..FILES {
            std::fs::write(d.join(format!("f{i}")), pattern(i, 300)).unwrap();
        }
        let before = fs.stats();
        let run = Run::new("python3", &["-c", &script], &d)
            .env("CONVEYOR_MAX_AGE", "60m")
            .env("CONVEYOR_DEFER_LIMIT", "60m");
        let out = if shim {
            let (out, c) = run.shimmed(&d);
            assert!(c.get("write").copied().unwrap_or(0) >= FILES, "{c:?}");
            out
        } else {
            run.plain()
        };
        ok(&out, &format!("appender, {dir}"));
        let after = fs.stats();
        let op = |k: &str| after.get(k).copied().unwrap_or(0) - before.get(k).copied().unwrap_or(0);
        counts.push([
            op("op.open"),
            op("op.flush"),
            op("op.release"),
            op("op.write"),
            op("op.getattr"),
        ]);
    }
    for i in 0..FILES {
        let f = |dir: &str| std::fs::read(fs.backing().join(dir).join(format!("f{i}"))).unwrap();
        assert!(f("plain") == f("shim"), "f{i} differs");
    }
    let (p, s) = (counts[0], counts[1]);
    assert_eq!(
        &s[..3],
        &p[..3],
        "opens, flushes, releases: shim {s:?} vs plain {p:?}"
    );
    assert!(s[3] <= p[3], "writes: shim {s:?} vs plain {p:?}");
    assert!(s[4] <= p[4] + FILES, "getattrs: shim {s:?} vs plain {p:?}");
}
