//! The shim on slow storage (conveyor-slowfs at 1 ms per request): data is
//! byte for byte what the program wrote, small writes reach storage as few
//! large requests, and storage errors reach the program as without the shim.

use conveyor_tests::slowfs::SlowFs;
use conveyor_tests::{ok, pattern, Run};

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
/// filesystem sees the same opens, creates, writes and releases as without
/// it, and at most one more flush per file (the shim's duplicate of the
/// program's descriptor closing before the program's own). Counted by the
/// filesystem; the files are compared byte for byte.
#[test]
fn a_managed_small_file_costs_no_open_or_release() {
    const FILES: u64 = 50;
    let fs = SlowFs::mount(&["--latency-ms", "0"]);
    let script = format!(
        "import os\nfor i in range({FILES}):\n    fd = os.open('f%d' % i, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)\n    os.write(fd, b'%d' % i * 700)\n    os.write(fd, b'tail')\n    os.close(fd)\n"
    );
    let mut counts = Vec::new();
    for (dir, shim) in [("plain", false), ("shim", true)] {
        let d = fs.mnt().join(dir);
        std::fs::create_dir(&d).unwrap();
        let before = fs.stats();
        let run = Run::new("python3", &["-c", &script], &d);
        let out = if shim {
            let (out, c) = run.shimmed(&d);
            assert!(
                c.get("write").copied().unwrap_or(0) >= 2 * FILES,
                "the writes were not managed: {c:?}"
            );
            out
        } else {
            run.plain()
        };
        ok(&out, dir);
        let after = fs.stats();
        let op = |k: &str| after.get(k).copied().unwrap_or(0) - before.get(k).copied().unwrap_or(0);
        counts.push([
            op("op.open"),
            op("op.create"),
            op("op.release"),
            op("op.flush"),
            op("op.write"),
        ]);
    }
    for i in 0..FILES {
        let name = format!("f{i}");
        assert_eq!(
            std::fs::read(fs.backing().join("plain").join(&name)).unwrap(),
            std::fs::read(fs.backing().join("shim").join(&name)).unwrap(),
            "{name} differs"
        );
    }
    let [p, s] = [counts[0], counts[1]];
    assert_eq!(
        (s[0], s[1], s[2]),
        (p[0], p[1], p[2]),
        "opens, creates, releases: plain {p:?}, shim {s:?}"
    );
    assert!(
        s[3] <= p[3] + FILES,
        "flushes: plain {}, shim {}",
        p[3],
        s[3]
    );
    assert!(s[4] <= p[4], "writes: plain {}, shim {}", p[4], s[4]);
}
