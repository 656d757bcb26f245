//! Real programs on real network and cloud filesystems (all served on
//! 127.0.0.1 by `scripts/netfs-mount.sh`): sshfs, rclone over sftp with
//! and without its write cache, and s3fs on a local S3 server. Each
//! workload runs once without the shim and once with it on the same
//! mount; what passes without it must pass with it, with the same output
//! and the same files. Where a filesystem cannot do something itself, the
//! workload says so and is skipped there only.
//!
//! Also the bugs these filesystems showed: files stored as zeros and
//! uploaded twice on s3fs (the private descriptor closed after the
//! program's close had returned), and git's `HEAD` served from
//! `HEAD.lock`'s state on rclone (which reuses inode numbers).

mod common;

use conveyor_tests::netfs::NetFs;
use conveyor_tests::{ok, pattern, tree, Run, TempDir};
use std::path::Path;

/// A tree of regular files and directories only (rclone has no symlinks),
/// sizes around page and request boundaries.
fn small_tree(root: &Path, files: usize) {
    for i in 0..files {
        let d = root.join(format!("d{}", i % 4)).join(format!("e{}", i % 3));
        std::fs::create_dir_all(&d).unwrap();
        let len = [0, 1, 511, 4095, 4096, 4097, 65_537, 300_000][i % 8];
        std::fs::write(d.join(format!("f{i}.bin")), pattern(i as u64 + 7, len)).unwrap();
    }
    std::fs::create_dir_all(root.join("empty")).unwrap();
}

/// What the filesystem cannot do itself (checked without the shim).
fn unsupported(fs: &NetFs, what: &str) -> bool {
    let skip = match (fs.kind(), what) {
        // s3fs keeps no hard links, and returns wrong bytes itself in the
        // exerciser (a read after truncations and writes past the end).
        ("s3fs", "hardlink" | "fsx") => true,
        // Without its cache rclone cannot open a file for reading and
        // writing, append, nor write anywhere but at the end (a second
        // writer through an inherited descriptor waits minutes and fails).
        (
            "rclone-off",
            "random-write" | "sqlite" | "git" | "python" | "shell" | "fsx" | "two-handles",
        ) => true,
        _ => false,
    };
    if skip {
        eprintln!(
            "SKIPPED on {}: {what} (the filesystem cannot do it)",
            fs.kind()
        );
    }
    skip
}

const SCRIPTS: &[(&str, &str)] = &[
    (
        "dd",
        "dd if=SRC/d0/e0/f0.bin of=/dev/null 2>/dev/null; \
         head -c 2000000 /dev/urandom > rnd.local 2>/dev/null; \
         dd if=SRC/d1/e1/f1.bin of=one.bin bs=4k 2>/dev/null; \
         dd if=/dev/zero bs=4k count=600 2>/dev/null | tr '\\0' 'z' > z.txt; \
         dd if=z.txt of=z4k.bin bs=4k 2>/dev/null && dd if=z4k.bin of=z1m.bin bs=1M 2>/dev/null && \
         dd if=z1m.bin bs=4k 2>/dev/null | sha256sum && rm -f rnd.local",
    ),
    (
        "cp-tar",
        "cp -r SRC copy && tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -cf t.tar -C SRC . && \
         mkdir x && tar -xf t.tar -C x && tar -cf - -C x . | tar -xf - -C copy && \
         find copy x -type f | sort | xargs sha256sum && sha256sum t.tar",
    ),
    (
        "python",
        r#"PY - <<'EOF'
import os, subprocess
with open('log.txt', 'w') as f:
    for i in range(3000):
        f.write(f'line {i} ' + 'x' * (i % 50) + '\n')
with open('log.txt', 'a') as f:
    f.write('appended\n')
fd = os.open('rw.bin', os.O_RDWR | os.O_CREAT, 0o644)
for i in range(200):
    os.write(fd, bytes([i]) * 4096)
print(os.fstat(fd).st_size, os.stat('rw.bin').st_size)
print(os.pread(fd, 8, 4096 * 100 + 5))
os.close(fd)
with open('child.txt', 'w') as f:
    f.write('parent first\n'); f.flush()
    subprocess.run(['sh', '-c', 'echo child; echo child2'], stdout=f, check=True)
    f.write('parent last\n')
print(open('child.txt').read(), end='')
EOF"#,
    ),
    (
        "pylog",
        r#"PY - <<'EOF'
with open('lines.txt', 'w') as f:
    for i in range(20000):
        f.write(f'{i} ' + 'y' * (i % 60) + '\n')
EOF
wc -l < lines.txt && sha256sum < lines.txt"#,
    ),
    (
        "shell",
        r#"exec 3>sh.txt; echo one >&3; sh -c 'echo two >&3'; echo three >&3; exec 3>&-
for i in $(seq 1 200); do echo "row $i"; done >> sh.txt; wc -l < sh.txt; sha256sum < sh.txt"#,
    ),
    (
        "random-write",
        r#"PY - <<'EOF'
import os
fd = os.open('rand.bin', os.O_RDWR | os.O_CREAT, 0o644)
os.ftruncate(fd, 1 << 20)
for i in range(300):
    off = (i * 7919 * 4096) % (1 << 20)
    os.pwrite(fd, bytes([i % 251]) * 4096, off)
for i in range(0, 1 << 20, 65536):
    os.pread(fd, 65536, i)
os.close(fd)
EOF
sha256sum rand.bin"#,
    ),
    (
        "fsx",
        "for s in 1 5 6; do PY FSX $s fsx$s.bin 1500 || exit 1; done",
    ),
    (
        // Two descriptions of one file, the first closed while the second
        // writes on (past a request's worth, so a worker writes too): the
        // first one's backend, which may serve the file, outlives it.
        "two-handles",
        r#"PY - <<'EOF'
import os
a = os.open('two.bin', os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
os.write(a, b'first ' * 200)
b = os.open('two.bin', os.O_WRONLY)
os.close(a)
os.lseek(b, 1200, 0)
for i in range(600):
    os.write(b, bytes([65 + i % 26]) * 4096)
os.close(b)
EOF
sha256sum two.bin"#,
    ),
    (
        "hardlink",
        "echo data > h1 && ln h1 h2 && echo more >> h2 && cat h1",
    ),
    (
        "sqlite",
        "sqlite3 db.sqlite 'create table t(a integer primary key, b text);' && \
         for j in 1 2 3; do (echo 'begin;'; for i in $(seq 1 100); do echo \"insert into t(b) values('r$j-$i-$(printf %0100d $i)');\"; done; echo 'commit;') | sqlite3 db.sqlite; done && \
         sqlite3 db.sqlite 'create index ib on t(b); update t set b = b || \"u\" where a % 7 = 0; delete from t where a % 11 = 0; pragma integrity_check; select count(*), sum(length(b)) from t;'",
    ),
    (
        "git",
        "git init -q -b main repo && cp -r SRC/d0 repo/ && cd repo && git add -A && \
         git -c user.name=t -c user.email=t@e commit -qm one && echo more > d0/new.txt && \
         git add -A && git -c user.name=t -c user.email=t@e commit -qm two && \
         git checkout -q HEAD~1 && git checkout -q main && git rev-parse HEAD && git fsck --full --strict 2>&1 && git log --format=%s",
    ),
    (
        "fio",
        "fio --name=v --filename=fio.dat --size=2M --bs=4k --rw=randwrite --ioengine=psync \
         --verify=crc32c --do_verify=1 --randrepeat=1 --output=/dev/null && echo verified",
    ),
];

/// Runs `script` in `dir` (with `SRC` and `PY` substituted), plainly or
/// under the shim managing the mount.
fn run(script: &str, dir: &Path, src: &Path, managed: Option<&Path>) -> std::process::Output {
    let script = script
        .replace("SRC", &src.display().to_string())
        .replace("PY", &common::python().display().to_string())
        .replace(
            "FSX",
            &conveyor_tests::root()
                .join("tests/py/fsx.py")
                .display()
                .to_string(),
        );
    let r = Run::new("sh", &["-c", &script], dir)
        .env("LC_ALL", "C")
        .env("GIT_AUTHOR_DATE", "@1700000000 +0000")
        .env("GIT_COMMITTER_DATE", "@1700000000 +0000");
    match managed {
        Some(m) => r.shimmed(m).0,
        None => r.plain(),
    }
}

/// The files a workload left, without what differs between any two runs
/// (git's index and logs carry times and inode numbers; fio's blocks carry
/// times; sqlite's journal may or may not be left).
fn files(dir: &Path) -> Vec<(String, String, Vec<u8>)> {
    tree(dir)
        .into_iter()
        .filter(|(p, _, _)| {
            !(p.starts_with("repo/.git/") && !p.starts_with("repo/.git/objects/")
                || p.starts_with("fio.dat")
                || p.starts_with("db.sqlite"))
        })
        .collect()
}

/// Every workload, plain then under the shim, on one mount of `kind`.
fn programs(kind: &'static str, only: &[&str]) {
    let Some(fs) = NetFs::mount(kind) else { return };
    let src = TempDir::new("netfs-src");
    small_tree(src.path(), 24);
    for (name, script) in SCRIPTS {
        if !only.is_empty() && !only.contains(name) || unsupported(&fs, name) {
            continue;
        }
        let plain = fs.mnt().join(format!("{name}-plain"));
        let shim = fs.mnt().join(format!("{name}-shim"));
        std::fs::create_dir_all(&plain).unwrap();
        std::fs::create_dir_all(&shim).unwrap();
        let a = run(script, &plain, src.path(), None);
        ok(&a, &format!("{name} on {kind} without the shim"));
        let b = run(script, &shim, src.path(), Some(&fs.mnt()));
        ok(&b, &format!("{name} on {kind} with the shim"));
        assert_eq!(
            String::from_utf8_lossy(&a.stdout),
            String::from_utf8_lossy(&b.stdout),
            "{name} on {kind}: output differs with the shim"
        );
        let (fa, fb) = (files(&plain), files(&shim));
        let names = |v: &[(String, String, Vec<u8>)]| -> Vec<String> {
            v.iter()
                .map(|(p, m, data)| {
                    // s3fs itself stores a file cp or tar creates with
                    // mode 0600 or the right one, by chance (seen without
                    // the shim as often as with it): only contents count.
                    if kind == "s3fs" && m.starts_with("file") {
                        format!("{p} file {}", data.len())
                    } else {
                        format!("{p} {m}")
                    }
                })
                .collect()
        };
        assert_eq!(names(&fa), names(&fb), "{name} on {kind}: files differ");
        for ((p, _, x), (_, _, y)) in fa.iter().zip(&fb) {
            assert!(x == y, "{name} on {kind}: {p} differs with the shim");
        }
    }
}

#[test]
fn programs_on_sshfs() {
    programs("sshfs", &[]);
}

#[test]
fn programs_on_s3fs() {
    programs("s3fs", &[]);
}

/// rclone runs the workloads that found its bugs (with its cache: a read
/// of a range of a new file rclone had not been given yet failed with
/// ENOENT where the program's own read, after its writes, would not;
/// without its cache: a
/// second handle made rclone drop the file of a buffered writer that still
/// exited 0, and reads through it failed).
#[test]
fn programs_on_rclone_with_write_cache() {
    programs("rclone-writes", &["git", "python", "random-write", "fsx"]);
}

#[test]
fn programs_on_rclone_without_cache() {
    programs("rclone-off", &["dd", "pylog"]);
}

/// Writes `files` files the way rsync does (small writes to a temp name,
/// close, times and mode by path, rename), then reads every object back
/// from the S3 server itself, past s3fs and its caches. Returns how many
/// PUT requests each file cost.
fn rsync_like(fs: &NetFs, dir: &str, files: usize, shim: bool) -> usize {
    let d = fs.mnt().join(dir);
    std::fs::create_dir_all(&d).unwrap();
    let script = format!(
        r#"import os
for i in range({files}):
    data = bytes([(i * 7 + j) % 251 for j in range(4096)]) * 48
    tmp = '.f%d.tmp' % i
    with open(tmp, 'wb') as f:
        for k in range(0, len(data), 4096):
            f.write(data[k:k + 4096]); f.flush()
    os.utime(tmp, (1700000000, 1700000000))
    os.chmod(tmp, 0o640)
    os.rename(tmp, 'f%d' % i)
"#
    );
    let mark = fs.log_mark();
    // Small data waits for each close however long the machine makes the
    // program take (a background write's duplicate would upload once more).
    let r = Run::new(common::python().to_str().unwrap(), &["-c", &script], &d)
        .env("CONVEYOR_MAX_AGE", "60m")
        .env("CONVEYOR_DEFER_LIMIT", "60m");
    let out = if shim {
        r.shimmed(&fs.mnt()).0
    } else {
        r.plain()
    };
    ok(&out, &format!("rsync-like writer (shim: {shim})"));
    let check = format!(
        r#"import boto3
s3 = boto3.client('s3', endpoint_url='http://127.0.0.1:{port}', aws_access_key_id='conveyor',
    aws_secret_access_key='x', region_name='us-east-1')
bad = []
for i in range({files}):
    want = bytes([(i * 7 + j) % 251 for j in range(4096)]) * 48
    got = s3.get_object(Bucket='{bucket}', Key='{dir}/f%d' % i)['Body'].read()
    if got != want:
        bad.append((i, len(got), got.count(0)))
print(bad)
"#,
        port = fs.s3_port(),
        bucket = fs.remote(),
    );
    let out = Run::new(common::python().to_str().unwrap(), &["-c", &check], &d).plain();
    ok(&out, "reading the objects from the S3 server");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "[]",
        "objects stored wrong (index, length, zero bytes) with shim: {shim}"
    );
    let puts = fs
        .log_since(mark, &format!("\"PUT /{}/{dir}/.f", fs.remote()))
        .len();
    puts / files
}

/// s3fs uploads a file when a descriptor of it is closed. The shim's
/// private descriptor used to be closed after the program's close had
/// returned (sometimes on a worker, racing the program's rename), so files
/// were stored as zeros; and its reopen, moved to a high number, closed a
/// first copy at once, which uploaded the new file empty: two or three
/// uploads per file where the program makes one.
#[test]
fn s3fs_stores_rsync_style_files_whole_and_uploads_each_once() {
    let Some(fs) = NetFs::mount("s3fs") else {
        return;
    };
    let plain = rsync_like(&fs, "plain", 12, false);
    let shim = rsync_like(&fs, "shim", 12, true);
    assert!(
        shim <= plain,
        "{shim} PUT requests per file with the shim, {plain} without"
    );
}

/// rsync itself, on a tree of a few dozen files: every file read back the
/// same as the source.
#[test]
fn s3fs_rsync_tree() {
    let Some(fs) = NetFs::mount("s3fs") else {
        return;
    };
    if std::process::Command::new("rsync")
        .arg("--version")
        .output()
        .is_err()
    {
        panic!("rsync is missing: scripts/test.sh installs it");
    }
    let src = TempDir::new("netfs-rsync");
    small_tree(src.path(), 40);
    for (dir, shim) in [("plain", false), ("shim", true)] {
        let dst = fs.mnt().join(dir);
        let from = format!("{}/", src.path().display());
        let to = format!("{}/", dst.display());
        let r = Run::new("rsync", &["-a", &from, &to], src.path());
        let out = if shim {
            r.shimmed(&fs.mnt()).0
        } else {
            r.plain()
        };
        ok(&out, &format!("rsync (shim: {shim})"));
        assert!(
            tree(src.path()) == tree(&dst),
            "rsync copy differs (shim: {shim})"
        );
    }
}

/// rclone gives a new `HEAD.lock` the inode number of the `HEAD` git just
/// renamed over; with file state keyed by (device, inode) the shim served
/// one for the other and git failed: "cannot lock ref 'HEAD': reference
/// broken".
#[test]
fn rclone_git_checkout_after_clone() {
    let Some(fs) = NetFs::mount("rclone-writes") else {
        return;
    };
    let work = TempDir::new("netfs-git");
    let repo = work.path().join("src");
    let sh = format!(
        "git init -q -b main {r} && cd {r} && echo a > a && git add a && \
         git -c user.name=t -c user.email=t@e commit -qm one && echo b > a && \
         git -c user.name=t -c user.email=t@e commit -qam two",
        r = repo.display()
    );
    ok(
        &Run::new("sh", &["-c", &sh], work.path()).plain(),
        "making the repository",
    );
    for (dir, shim) in [("plain", false), ("shim", true)] {
        let sh = format!(
            "git clone -q --no-local {} {dir} && cd {dir} && git checkout -q HEAD~1 && cat a && git status --short",
            repo.display()
        );
        let r = Run::new("sh", &["-c", &sh], &fs.mnt());
        let out = if shim {
            r.shimmed(&fs.mnt()).0
        } else {
            r.plain()
        };
        ok(
            &out,
            &format!("git clone and checkout on rclone (shim: {shim})"),
        );
        assert_eq!(String::from_utf8_lossy(&out.stdout), "a\n");
    }
}

/// `conveyor doctor` says what the shim learned of each filesystem.
#[test]
fn doctor_names_what_it_found() {
    let checks: &[(&'static str, &str)] = &[
        ("s3fs", "s3fs uploads a file at each close"),
        ("rclone-writes", "files opened write-only accelerated"),
        (
            "rclone-off",
            "not accelerated: the filesystem cannot take it",
        ),
    ];
    for (kind, want) in checks {
        let Some(fs) = NetFs::mount(kind) else { return };
        let f = fs.mnt().join("f");
        std::fs::write(&f, b"x").unwrap();
        let out = std::process::Command::new(conveyor_tests::conveyor())
            .arg("doctor")
            .arg("--path")
            .arg(fs.mnt())
            .arg(&f)
            .output()
            .expect("run conveyor doctor");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains(want), "{kind}: {text}");
    }
}
