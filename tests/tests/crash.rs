//! Crash-safe write-behind (`CONVEYOR_CRASH_SAFE=on`) with real kills, on
//! the slow test filesystem at 5 ms per write request: every write a
//! program was told succeeded is on storage afterwards, byte for byte,
//! however the program died (SIGKILL at a random moment, SIGSEGV,
//! abort(), the OOM killer), for a C writer, Python and dd, and for a
//! whole process tree under `conveyor run`. A flusher killed
//! while programs write costs nothing: they go on and their data lands.
//! Another user can reach neither the flusher nor the journal; a socket a
//! killed flusher left is replaced; where no `memfd` can be had, the
//! program runs with in-process buffers after one warning.
//!
//! The writers (`tests/c/crashwriter.c`, and Python the same way) report
//! each write after it returned, as 16 bytes on stdout: the writer's id
//! and the offset the file reaches. Each 8-byte word of a file is `id <<
//! 48 | offset`, so a byte in the wrong place, a hole or a lost block
//! shows.

use conveyor_tests::slowfs::SlowFs;
use conveyor_tests::{compile_c, conveyor, root, Run, TempDir};
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const MIB: u64 = 1 << 20;
const TOTAL: u64 = 64 * MIB;

/// A tiny seeded generator: the runs are the same every time.
struct Seeded(u64);

impl Seeded {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

fn writer_bin() -> PathBuf {
    static BIN: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BIN.get_or_init(|| {
        let dir = TempDir::new("crashwriter");
        let bin = dir.path().join("crashwriter");
        compile_c(&root().join("tests/c/crashwriter.c"), &bin, &[]);
        // Kept under target (the TempDir goes now); moved into place, as
        // a writer an earlier run left running still uses the old file.
        let kept = root().join("target/crashwriter");
        let next = root().join(format!("target/crashwriter.{}", std::process::id()));
        std::fs::copy(&bin, &next).unwrap();
        std::fs::rename(&next, &kept).unwrap();
        kept
    })
    .clone()
}

/// A flusher on a socket of its own, detached as `conveyor run` starts it;
/// it ends once the programs it served are gone.
struct Flusher {
    dir: TempDir,
}

impl Flusher {
    fn start() -> Flusher {
        Flusher::start_in(private_dir("flusher"))
    }
    /// A flusher on socket `s` of `dir` (which may hold a stale one).
    fn start_in(dir: TempDir) -> Flusher {
        let f = Flusher { dir };
        let st = Command::new(conveyor())
            .args(["flusher", "--detach", "--socket"])
            .arg(f.socket())
            .arg("--log")
            .arg(f.log())
            .status()
            .expect("start the flusher");
        assert!(st.success(), "conveyor flusher: {st}");
        assert!(f.socket().exists(), "the flusher returned before listening");
        f
    }
    fn socket(&self) -> PathBuf {
        self.dir.path().join("s")
    }
    fn log(&self) -> PathBuf {
        self.dir.path().join("log")
    }
    /// Waits until the flusher is done (it removes its socket last, after
    /// writing what the programs left); returns what it said.
    fn done(&self) -> String {
        let t = Instant::now();
        while self.socket().exists() {
            assert!(
                t.elapsed() < Duration::from_secs(120),
                "the flusher did not end; it said: {}",
                std::fs::read_to_string(self.log()).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        std::fs::read_to_string(self.log()).unwrap_or_default()
    }
}

/// A fresh directory closed to others (as the flusher's must be).
fn private_dir(tag: &str) -> TempDir {
    let dir = TempDir::new(tag);
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    dir
}

/// Sends SIGKILL to `target` (a pid, or `-PGID` for a process group);
/// whether it was delivered.
fn kill(target: &str) -> bool {
    Command::new("kill")
        .args(["-KILL", "--", target])
        .status()
        .is_ok_and(|s| s.success())
}

/// Waits (at most 60 s) until `path` holds at least `len` bytes: what a
/// flusher writes while its own end is not awaited. Whether it does.
fn lands(path: &Path, len: u64) -> bool {
    let t = Instant::now();
    while std::fs::metadata(path).map_or(0, |m| m.len()) < len {
        if t.elapsed() > Duration::from_secs(60) {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}

/// The shim's environment for a crash-safe program served by `f`.
fn crash_safe(run: Run, f: &Flusher) -> Run {
    run.env("CONVEYOR_CRASH_SAFE", "on")
        .env("CONVEYOR_FLUSHER", f.socket().to_str().unwrap())
}

/// Reads a writer's reports as they come: the furthest offset per id.
fn reports(child: &mut Child) -> mpsc::Receiver<(u64, u64)> {
    let mut out = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut rec = [0u8; 16];
        while out.read_exact(&mut rec).is_ok() {
            let id = u64::from_le_bytes(rec[..8].try_into().unwrap());
            let end = u64::from_le_bytes(rec[8..].try_into().unwrap());
            if tx.send((id, end)).is_err() {
                return;
            }
        }
    });
    rx
}

/// Waits for `n` reports (or the writer's end); returns the furthest
/// offset reported so far.
fn until(rx: &mpsc::Receiver<(u64, u64)>, n: u64, seen: &mut u64) {
    for _ in 0..n {
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok((_, end)) => *seen = (*seen).max(end),
            Err(_) => return,
        }
    }
}

/// Every report after the kill (written before it) and the status.
fn finish(child: &mut Child, rx: &mpsc::Receiver<(u64, u64)>, seen: &mut u64) -> String {
    let status = child.wait().unwrap();
    while let Ok((_, end)) = rx.recv_timeout(Duration::from_secs(10)) {
        *seen = (*seen).max(end);
    }
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    format!("{status}; stderr: {err}")
}

/// The file holds writer `id`'s words up to at least `reported`, and
/// nothing but its words.
fn check(path: &Path, id: u64, reported: u64, what: &str) {
    let data = std::fs::read(path).unwrap_or_default();
    assert!(
        data.len() as u64 >= reported,
        "{what}: {} holds {} bytes; {reported} were acknowledged",
        path.display(),
        data.len()
    );
    for (i, w) in data.chunks_exact(8).enumerate() {
        let want = id << 48 | (i as u64 * 8);
        let got = u64::from_le_bytes(w.try_into().unwrap());
        assert_eq!(
            got,
            want,
            "{what}: word at byte {} is {got:#x}, not {want:#x}",
            i * 8
        );
    }
}

fn writer(
    fs: &SlowFs,
    f: &Flusher,
    id: u64,
    name: &str,
    die_after: u64,
    how: &str,
) -> (Child, TempDir) {
    let bin = writer_bin();
    let path = fs.mnt().join(name);
    crash_safe(
        Run::new(
            bin.to_str().unwrap(),
            &[
                &id.to_string(),
                path.to_str().unwrap(),
                &TOTAL.to_string(),
                &die_after.to_string(),
                how,
            ],
            &fs.mnt(),
        ),
        f,
    )
    .spawn_shimmed(&fs.mnt())
}

/// How many of a run's bytes the flusher said it wrote.
fn flusher_wrote(said: &str) -> u64 {
    said.lines()
        .filter_map(|l| {
            l.rsplit_once("; wrote ")
                .and_then(|(_, n)| n.trim().parse::<u64>().ok())
        })
        .sum()
}

#[test]
fn sigkill_at_random_moments_loses_no_acknowledged_write() {
    let mut rng = Seeded(0x5eed_0001);
    let mut rescued = 0;
    for run in 0..10 {
        let fs = SlowFs::mount(&["--write-ms", "5"]);
        let f = Flusher::start();
        let (mut child, _keep) = writer(&fs, &f, 1, "out", 0, "wait");
        let rx = reports(&mut child);
        let mut seen = 0;
        until(&rx, 1 + rng.below(TOTAL / 4096 - 1), &mut seen);
        child.kill().unwrap();
        let how = finish(&mut child, &rx, &mut seen);
        let said = f.done();
        check(
            &fs.backing().join("out"),
            1,
            seen,
            &format!("run {run} ({how}; flusher: {said})"),
        );
        rescued += flusher_wrote(&said);
    }
    assert!(
        rescued > 0,
        "no run left anything for the flusher: the kills proved nothing"
    );
}

#[test]
fn a_crash_or_abort_loses_no_acknowledged_write() {
    let mut rng = Seeded(0x5eed_0002);
    for how in ["segv", "abort", "segv", "abort"] {
        let fs = SlowFs::mount(&["--write-ms", "5"]);
        let f = Flusher::start();
        let die_after = 1 + rng.below(TOTAL / 4096 - 1);
        let (mut child, _keep) = writer(&fs, &f, 2, "out", die_after, how);
        let rx = reports(&mut child);
        let mut seen = 0;
        let status = finish(&mut child, &rx, &mut seen);
        assert_eq!(
            seen,
            die_after * 4096,
            "{how}: the writer reported {seen} bytes ({status})"
        );
        let said = f.done();
        check(
            &fs.backing().join("out"),
            2,
            seen,
            &format!("{how} ({status}; flusher: {said})"),
        );
    }
}

/// A memory cgroup (v1 or v2) the test may create, or `None`.
fn memory_cgroup(limit: u64) -> Option<PathBuf> {
    let name = format!("conveyor-crash-{}", std::process::id());
    for (base, file) in [
        ("/sys/fs/cgroup/memory", "memory.limit_in_bytes"),
        ("/sys/fs/cgroup", "memory.max"),
    ] {
        let dir = Path::new(base).join(&name);
        if std::fs::create_dir(&dir).is_ok() {
            if std::fs::write(dir.join(file), limit.to_string()).is_ok() {
                let _ = std::fs::write(dir.join("memory.swappiness"), "0");
                return Some(dir);
            }
            let _ = std::fs::remove_dir(&dir);
        }
    }
    None
}

#[test]
fn the_oom_killer_loses_no_acknowledged_write() {
    let Some(cg) = memory_cgroup(384 * MIB) else {
        eprintln!("no memory cgroup can be made here: the OOM case is not run");
        return;
    };
    let fs = SlowFs::mount(&["--write-ms", "5"]);
    let f = Flusher::start();
    let bin = writer_bin();
    let path = fs.mnt().join("out");
    let script = format!(
        "echo $$ > {}/cgroup.procs && exec {} 3 {} {TOTAL} 5000 oom",
        cg.display(),
        bin.display(),
        path.display()
    );
    let (mut child, _keep) =
        crash_safe(Run::new("sh", &["-c", &script], &fs.mnt()), &f).spawn_shimmed(&fs.mnt());
    let rx = reports(&mut child);
    let mut seen = 0;
    let status = finish(&mut child, &rx, &mut seen);
    let said = f.done();
    let _ = std::fs::remove_dir(&cg);
    assert_eq!(
        seen,
        5000 * 4096,
        "the writer reported {seen} bytes ({status})"
    );
    assert!(
        status.contains("signal: 9"),
        "not killed by the OOM killer: {status}"
    );
    check(
        &fs.backing().join("out"),
        3,
        seen,
        &format!("oom ({status}; flusher: {said})"),
    );
}

/// Python's side of the writers' protocol: `write_forever(fd, id)`
/// writes 4 KiB blocks of `id`'s words and reports each.
const PY_REPORTS: &str = r#"
import os, sys
out = sys.stdout.buffer
def write_forever(fd, id):
    off = 0
    while True:
        block = b"".join(((id << 48) | (off + 8 * k)).to_bytes(8, "little") for k in range(512))
        os.write(fd, block)
        off += len(block)
        out.write(id.to_bytes(8, "little") + off.to_bytes(8, "little"))
        out.flush()
"#;

fn py_writer() -> String {
    format!(
        "{PY_REPORTS}\nwrite_forever(os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644), 4)\n"
    )
}

#[test]
fn python_killed_loses_no_acknowledged_write() {
    let mut rng = Seeded(0x5eed_0004);
    for _ in 0..2 {
        let fs = SlowFs::mount(&["--write-ms", "5"]);
        let f = Flusher::start();
        let path = fs.mnt().join("out");
        let (mut child, _keep) = crash_safe(
            Run::new(
                "python3",
                &["-c", &py_writer(), path.to_str().unwrap()],
                &fs.mnt(),
            ),
            &f,
        )
        .spawn_shimmed(&fs.mnt());
        let rx = reports(&mut child);
        let mut seen = 0;
        until(&rx, 1 + rng.below(4000), &mut seen);
        child.kill().unwrap();
        let how = finish(&mut child, &rx, &mut seen);
        let said = f.done();
        check(
            &fs.backing().join("out"),
            4,
            seen,
            &format!("python ({how}; flusher: {said})"),
        );
    }
}

/// dd copies what the test pours into its stdin; once killed, the file
/// is a prefix of it at least as long as what dd must have written: all
/// that was poured, less what the pipe still held and the block in dd's
/// hands.
#[test]
fn dd_killed_loses_no_acknowledged_write() {
    let mut rng = Seeded(0x5eed_0005);
    for _ in 0..2 {
        let fs = SlowFs::mount(&["--write-ms", "5"]);
        let f = Flusher::start();
        let (mut child, _keep) = crash_safe(
            Run::new("dd", &["of=out", "bs=4k", "status=none"], &fs.mnt()),
            &f,
        )
        .spawn_shimmed(&fs.mnt());
        let mut stdin = child.stdin.take().unwrap();
        let blocks = 1 + rng.below(8000);
        for b in 0..blocks {
            let block: Vec<u8> = (0..512u64)
                .flat_map(|k| (5 << 48 | (b * 4096 + 8 * k)).to_le_bytes())
                .collect();
            stdin.write_all(&block).unwrap();
        }
        // dd has read all but what a pipe holds (64 KiB) and one block.
        child.kill().unwrap();
        let status = child.wait().unwrap();
        let said = f.done();
        let poured = blocks * 4096;
        let floor = poured.saturating_sub(64 * 1024 + 4096);
        check(
            &fs.backing().join("out"),
            5,
            floor,
            &format!("dd ({status}; flusher: {said})"),
        );
    }
}

/// The flusher killed while a program writes: the program notices nothing
/// and goes on; at its next burst it finds the flusher gone and hands its
/// journal to the user's own (started then, here in the test's
/// `XDG_RUNTIME_DIR`), so a kill after that still loses nothing.
#[test]
fn a_killed_flusher_is_replaced_and_costs_the_program_nothing() {
    let fs = SlowFs::mount(&["--write-ms", "5"]);
    let runtime = private_dir("xdg-replaced");
    let f = Flusher::start();
    let bin = writer_bin();
    let path = fs.mnt().join("out");
    let (mut child, _keep) = crash_safe(
        Run::new(
            bin.to_str().unwrap(),
            // Long enough to outlast the flusher's replacement (it is
            // killed before the end).
            &[
                "6",
                path.to_str().unwrap(),
                &(16 * TOTAL).to_string(),
                "0",
                "wait",
            ],
            &fs.mnt(),
        ),
        &f,
    )
    .env("XDG_RUNTIME_DIR", runtime.path().to_str().unwrap())
    .spawn_shimmed(&fs.mnt());
    let rx = reports(&mut child);
    let mut seen = 0;
    until(&rx, 2000, &mut seen);
    let pid = process_with(&f.socket()).expect("the flusher's process");
    assert!(kill(&pid.to_string()));
    let own = runtime
        .path()
        .join(format!("conveyor-flusher-{}", user_id()))
        .join("socket");
    // The writer goes on, and at a burst starts the user's own flusher.
    let t = Instant::now();
    while !own.exists() {
        until(&rx, 100, &mut seen);
        assert!(
            t.elapsed() < Duration::from_secs(60) && seen < 16 * TOTAL,
            "no flusher replaced the killed one"
        );
    }
    until(&rx, 1000, &mut seen);
    child.kill().unwrap();
    let how = finish(&mut child, &rx, &mut seen);
    assert!(
        seen > 3000 * 4096,
        "the writer stopped after the flusher was killed ({how})"
    );
    let out = fs.backing().join("out");
    // `check` below says what is missing, if anything.
    lands(&out, seen);
    let said = std::fs::read_to_string(own.with_file_name("log")).unwrap_or_default();
    if let Some(p) = process_with(&own) {
        kill(&p.to_string());
    }
    check(
        &out,
        6,
        seen,
        &format!("writer after its flusher was killed ({how}; new flusher: {said})"),
    );
}

/// The process whose command line holds `needle` (a flusher's socket).
fn process_with(needle: &Path) -> Option<i32> {
    let needle = needle.as_os_str().as_encoded_bytes();
    std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .find(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| c.windows(needle.len()).any(|w| w == needle))
        })
}

/// `conveyor run` (crash-safe by default) with three writers under a shell, all
/// killed together (SIGKILL to the process group): the flusher the
/// launcher started (in a session of its own) writes what each left.
#[test]
fn a_process_tree_killed_together_loses_no_acknowledged_write() {
    use std::os::unix::process::CommandExt;
    let fs = SlowFs::mount(&["--write-ms", "5"]);
    let tmp = TempDir::new("tree-tmp");
    let bin = writer_bin();
    let script = format!(
        "for i in 7 8 9; do {} $i out$i {TOTAL} 0 wait & done; wait",
        bin.display()
    );
    let mut cmd = Command::new(conveyor());
    let _live = conveyor_tests::own_live_dir(&mut cmd);
    let mut child = cmd
        .args(["run", "--path"])
        .arg(fs.mnt())
        .args(["--", "sh", "-c", &script])
        .current_dir(fs.mnt())
        .env("TMPDIR", tmp.path())
        .env("CONVEYOR_MODE", "always")
        // The default (the suite also runs with CONVEYOR_CRASH_SAFE=off).
        .env_remove("CONVEYOR_CRASH_SAFE")
        .env_remove("CONVEYOR_FLUSHER")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .process_group(0)
        .spawn()
        .unwrap();
    let rx = reports(&mut child);
    let mut seen = std::collections::HashMap::new();
    while seen.len() < 3 || seen.values().any(|e| *e < 8 * MIB) {
        let (id, end) = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("the writers stopped reporting");
        let e = seen.entry(id).or_insert(0);
        *e = (*e).max(end);
    }
    let group = format!("-{}", child.id());
    assert!(kill(&group));
    let status = child.wait().unwrap();
    while let Ok((id, end)) = rx.recv_timeout(Duration::from_secs(10)) {
        let e = seen.entry(id).or_insert(0);
        *e = (*e).max(end);
    }
    // The flusher holds the launcher's stderr until it is done.
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(
        std::fs::read_dir(tmp.path()).unwrap().next().is_none(),
        "the flusher left its directory"
    );
    for (id, end) in seen {
        check(
            &fs.backing().join(format!("out{id}")),
            id,
            end,
            &format!("writer {id} of the tree ({status}; stderr: {err})"),
        );
    }
}

fn root_user() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"))
}

/// Runs Python `code` as uid 65534 (the system's python3: a per-user
/// install may not be readable by that uid).
fn as_nobody(code: &str) -> std::process::Output {
    let out = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "/usr/bin/python3",
            "-c",
        ])
        .arg(format!("print('started', flush=True)\n{code}"))
        .output()
        .expect("run setpriv");
    assert!(
        out.stdout.starts_with(b"started"),
        "python3 did not run as uid 65534: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Another user can neither connect to the flusher (its directory and
/// socket are closed to others, and the flusher checks the peer's uid
/// should they not be) nor open the journal of a running program.
#[test]
fn another_user_reaches_neither_the_flusher_nor_the_journal() {
    if !root_user() {
        eprintln!("not root: no second uid to run as; not run");
        return;
    }
    let fs = SlowFs::mount(&["--write-ms", "5"]);
    let f = Flusher::start();
    let (mut child, _keep) = writer(&fs, &f, 10, "out", 3000, "wait");
    let rx = reports(&mut child);
    let mut seen = 0;
    until(&rx, 3000, &mut seen);
    let journal = std::fs::read_dir(format!("/proc/{}/fd", child.id()))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            std::fs::read_link(p).is_ok_and(|l| l.to_string_lossy().contains("conveyor-journal"))
        })
        .expect("the writer's journal descriptor");
    let connect = format!(
        "import socket; socket.socket(socket.AF_UNIX).connect({:?})",
        f.socket().to_str().unwrap()
    );
    let out = as_nobody(&connect);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("PermissionError"),
        "another user connected to the flusher: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let read = format!("open({:?}, 'rb').read(1)", journal.to_str().unwrap());
    let out = as_nobody(&read);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("PermissionError"),
        "another user read the journal: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Past the directory and the socket's mode, the uid check refuses.
    std::fs::set_permissions(f.dir.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
    std::fs::set_permissions(f.socket(), std::fs::Permissions::from_mode(0o666)).unwrap();
    let greet = format!(
        "import socket\ns = socket.socket(socket.AF_UNIX)\ns.connect({:?})\ntry:\n    s.send(b'CNVYFLS1' + bytes(8))\n    print(s.recv(1))\nexcept ConnectionError as e:\n    print(e)",
        f.socket().to_str().unwrap()
    );
    let out = as_nobody(&greet);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    child.kill().unwrap();
    finish(&mut child, &rx, &mut seen);
    let said = f.done();
    assert!(
        said.contains("refused a connection from uid 65534"),
        "the flusher said: {said}"
    );
    check(
        &fs.backing().join("out"),
        10,
        seen,
        &format!("writer beside another user (flusher: {said})"),
    );
}

/// A socket a killed flusher left behind (nobody listens on it) is
/// replaced by the next flusher, which then serves.
#[test]
fn a_socket_left_by_a_killed_flusher_is_replaced() {
    let dir = private_dir("stale");
    let socket = dir.path().join("s");
    drop(std::os::unix::net::UnixListener::bind(&socket).unwrap());
    assert!(socket.exists());
    let fs = SlowFs::mount(&["--write-ms", "5"]);
    // Its start asserts it listens.
    let f = Flusher::start_in(dir);
    let (mut child, _keep) = writer(&fs, &f, 11, "out", 0, "wait");
    let rx = reports(&mut child);
    let mut seen = 0;
    until(&rx, 2500, &mut seen);
    child.kill().unwrap();
    let how = finish(&mut child, &rx, &mut seen);
    let said = f.done();
    check(
        &fs.backing().join("out"),
        11,
        seen,
        &format!("after a stale socket ({how}; flusher: {said})"),
    );
    assert!(
        flusher_wrote(&said) > 0,
        "the new flusher wrote nothing: {said}"
    );
}

/// Where no `memfd` can be had (a seccomp profile refusing it), crash
/// safety is off with one warning, and the program runs as without it.
#[test]
fn without_a_memfd_the_program_runs_after_one_warning() {
    let dir = TempDir::new("nomemfd");
    let refuse = dir.path().join("refuse");
    compile_c(&root().join("tests/c/refuse.c"), &refuse, &[]);
    let fs = SlowFs::mount(&["--write-ms", "1"]);
    let f = Flusher::start();
    let bin = writer_bin();
    let path = fs.mnt().join("out");
    let (out, _) = crash_safe(
        Run::new(
            refuse.to_str().unwrap(),
            &[
                "memfd_create",
                bin.to_str().unwrap(),
                "12",
                path.to_str().unwrap(),
                &(8 * MIB).to_string(),
                "0",
                "none",
            ],
            &fs.mnt(),
        ),
        &f,
    )
    .shimmed(&fs.mnt());
    conveyor_tests::ok(&out, "the writer without a memfd");
    let err = String::from_utf8_lossy(&out.stderr);
    let said: Vec<&str> = err
        .lines()
        .filter(|l| l.contains("CONVEYOR_CRASH_SAFE"))
        .collect();
    assert_eq!(said.len(), 1, "expected one warning: {err}");
    assert!(
        said[0].contains("no shared memory for the journal"),
        "{err}"
    );
    check(
        &fs.backing().join("out"),
        12,
        8 * MIB,
        "writer without a memfd",
    );
    // Nobody connected: the flusher is stopped by hand.
    let _ = Command::new("pkill")
        .arg("-KILL")
        .arg("-f")
        .arg(f.socket())
        .status();
}

/// Python that connects to the flusher (a first file), forks a child that
/// writes a file of its own and lives on, reports the child's pid (id 0),
/// then writes file `out` as writer 14.
const PY_FORKER: &str = r#"
import time
root = sys.argv[1]
first = os.open(os.path.join(root, "first"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
os.write(first, b"f" * 4096)  # connects to the flusher before the fork
pid = os.fork()
if pid == 0:
    fd = os.open(os.path.join(root, "child"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.write(fd, b"c" * 40960)
    time.sleep(600)
    os._exit(0)
out.write((0).to_bytes(8, "little") + pid.to_bytes(8, "little"))
# Opened after the fork: the child does not share it, so it is buffered.
write_forever(os.open(os.path.join(root, "out"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644), 14)
"#;

/// A forked child that lives on does not keep its parent's connection
/// open: the parent's death ends it, and the flusher writes what the
/// parent left while the child still runs.
#[test]
fn a_living_child_does_not_hold_back_its_parents_data() {
    let fs = SlowFs::mount(&["--write-ms", "5"]);
    let f = Flusher::start();
    let (mut child, _keep) = crash_safe(
        Run::new(
            "python3",
            &[
                "-c",
                &format!("{PY_REPORTS}{PY_FORKER}"),
                fs.mnt().to_str().unwrap(),
            ],
            &fs.mnt(),
        ),
        &f,
    )
    .spawn_shimmed(&fs.mnt());
    let rx = reports(&mut child);
    let (_, forked) = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the child's pid");
    let mut seen = 0;
    until(&rx, 3000, &mut seen);
    child.kill().unwrap();
    // Not `finish`: the forked child holds stderr open.
    let how = child.wait().unwrap().to_string();
    while let Ok((_, end)) = rx.recv_timeout(Duration::from_secs(1)) {
        seen = seen.max(end);
    }
    // The flusher ends only once the child is gone too; the parent's data
    // must land before.
    let out = fs.backing().join("out");
    if !lands(&out, seen) {
        kill(&forked.to_string());
        panic!(
            "the parent's data waited for its child ({how}; flusher: {})",
            f.done()
        );
    }
    kill(&forked.to_string());
    let said = f.done();
    check(
        &out,
        14,
        seen,
        &format!("parent of a living child ({how}; flusher: {said})"),
    );
}

/// With a bare `LD_PRELOAD` (no `CONVEYOR_FLUSHER`), the shim starts the
/// user's own flusher (here in the test's `XDG_RUNTIME_DIR`) unseen: the
/// program's `wait` finds no child, the flusher keeps none of its
/// descriptors (a pipe its reader waits on would stay open), and a kill
/// loses nothing.
#[test]
fn a_bare_preload_starts_the_users_flusher_unseen() {
    let fs = SlowFs::mount(&["--write-ms", "5"]);
    let runtime = private_dir("xdg");
    let script = format!(
        "{PY_REPORTS}
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
os.write(fd, b'')
try:
    os.waitpid(-1, os.WNOHANG)
    sys.stderr.write('a child appeared\\n')
except ChildProcessError:
    pass
write_forever(fd, 15)
"
    );
    let path = fs.mnt().join("out");
    let (mut child, _keep) = Run::new(
        "python3",
        &["-c", &script, path.to_str().unwrap()],
        &fs.mnt(),
    )
    .env("CONVEYOR_CRASH_SAFE", "on")
    .env("XDG_RUNTIME_DIR", runtime.path().to_str().unwrap())
    .spawn_shimmed(&fs.mnt());
    let rx = reports(&mut child);
    let mut seen = 0;
    until(&rx, 3000, &mut seen);
    let dir = runtime
        .path()
        .join(format!("conveyor-flusher-{}", user_id()));
    let socket = dir.join("socket");
    assert!(socket.exists(), "no flusher socket in {}", dir.display());
    let flusher = process_with(&socket).expect("the flusher's process");
    let pipes: Vec<String> = std::fs::read_dir(format!("/proc/{flusher}/fd"))
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .map(|l| l.display().to_string())
        .filter(|l| l.starts_with("pipe:"))
        .collect();
    child.kill().unwrap();
    let how = finish(&mut child, &rx, &mut seen);
    assert!(
        pipes.is_empty(),
        "the flusher kept the program's pipes: {pipes:?}"
    );
    assert!(
        !how.contains("a child appeared"),
        "the program saw the flusher: {how}"
    );
    let out = fs.backing().join("out");
    // `check` below says what is missing, if anything.
    lands(&out, seen);
    let said = std::fs::read_to_string(dir.join("log")).unwrap_or_default();
    kill(&flusher.to_string());
    check(
        &out,
        15,
        seen,
        &format!("bare preload ({how}; flusher: {said})"),
    );
}

/// This user's id, as the shim names its flusher's directory.
fn user_id() -> String {
    let out = Command::new("id").arg("-u").output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}
