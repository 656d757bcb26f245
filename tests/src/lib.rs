//! Helpers for running real programs under `libconveyor_preload.so` and
//! comparing them with the same runs without it.
//!
//! The shim is built once per test binary (`cargo build --release -p
//! conveyor-preload`), so the tests never link the hooks themselves.

pub mod netfs;
pub mod slowfs;
pub mod twin;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// Path of the shim, built on first use.
pub fn shim() -> &'static Path {
    static SHIM: OnceLock<PathBuf> = OnceLock::new();
    SHIM.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "--release", "-p", "conveyor-preload"])
            .current_dir(root())
            .status()
            .expect("run cargo build");
        assert!(status.success(), "building the shim failed");
        let so = root().join("target/release/libconveyor_preload.so");
        assert!(so.exists(), "{} missing after build", so.display());
        so
    })
}

/// The `conveyor` command, built on first use (with the shim next to it).
pub fn conveyor() -> &'static PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        shim();
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

/// A directory removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    /// A fresh directory under the system temp dir.
    pub fn new(tag: &str) -> TempDir {
        static N: AtomicU32 = AtomicU32::new(0);
        let p = std::env::temp_dir().join(format!(
            "conveyor-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("create temp dir");
        TempDir(p)
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Gives a command under the shim a live directory of its own (returned,
/// removed when dropped), so no test leaves `<pid>.live` files of processes
/// it killed in the user's real `/dev/shm/conveyor-$UID`, and no test sees
/// another's. Keep the directory until the command has ended.
pub fn own_live_dir(cmd: &mut Command) -> TempDir {
    let live = TempDir::new("live");
    cmd.env("CONVEYOR_LIVE_DIR", live.path());
    live
}

/// A command to run with or without the shim.
pub struct Run {
    cmd: Command,
    // Held for the command's lifetime (see `own_live_dir`).
    _live: TempDir,
}

impl Run {
    /// `prog args...`, in `dir`.
    pub fn new(prog: &str, args: &[&str], dir: &Path) -> Run {
        let mut cmd = Command::new(prog);
        cmd.args(args).current_dir(dir);
        cmd.env_remove("LD_PRELOAD");
        for v in [
            "CONVEYOR_PATHS",
            "CONVEYOR_DISABLE",
            "CONVEYOR_MODE",
            "CONVEYOR_CLOSE",
            "CONVEYOR_LATE_ERRORS",
            "CONVEYOR_MAX_AGE",
            "CONVEYOR_DEFER_LIMIT",
            "CONVEYOR_LOG",
            "CONVEYOR_LOG_FILE",
            "CONVEYOR_STATS",
            "CONVEYOR_TEST_COUNTS",
        ] {
            cmd.env_remove(v);
        }
        let live = own_live_dir(&mut cmd);
        Run { cmd, _live: live }
    }

    /// Sets an environment variable.
    pub fn env(mut self, k: &str, v: &str) -> Run {
        self.cmd.env(k, v);
        self
    }

    /// Runs without the shim.
    pub fn plain(mut self) -> Output {
        self.cmd.output().expect("run program")
    }

    /// Runs with the shim managing `paths` (in `CONVEYOR_MODE=always`
    /// unless the test set a mode: the tests' temporary directories are on
    /// local disk, which the default mode leaves to the kernel); returns the
    /// output and the managed calls it counted, by hook name.
    pub fn shimmed(mut self, paths: &Path) -> (Output, HashMap<String, u64>) {
        let counts = TempDir::new("counts");
        let file = counts.path().join("counts-%p");
        self.preload(paths).env("CONVEYOR_TEST_COUNTS", &file);
        let out = self.cmd.output().expect("run program under the shim");
        (out, read_counts(counts.path()))
    }

    /// The shim preloaded, managing `paths` (see [`Run::shimmed`]).
    fn preload(&mut self, paths: &Path) -> &mut Command {
        if !self
            .cmd
            .get_envs()
            .any(|(k, v)| k == "CONVEYOR_MODE" && v.is_some())
        {
            self.cmd.env("CONVEYOR_MODE", "always");
        }
        self.cmd
            .env("LD_PRELOAD", shim())
            .env("CONVEYOR_PATHS", paths)
    }

    /// As [`Run::shimmed`], but started with stdin and stdout piped (stderr
    /// too) and returned running, for a test that feeds it, reads it as it
    /// goes, or kills it. Keep the directory returned until it ended.
    pub fn spawn_shimmed(mut self, paths: &Path) -> (std::process::Child, TempDir) {
        self.preload(paths)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let child = self.cmd.spawn().expect("start program under the shim");
        (child, self._live)
    }
}

/// Sums the `name count` lines of every counts file in `dir`.
pub fn read_counts(dir: &Path) -> HashMap<String, u64> {
    let mut m = HashMap::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let text = std::fs::read_to_string(e.path()).unwrap_or_default();
        for line in text.lines() {
            let mut it = line.split_whitespace();
            if let (Some(n), Some(c)) = (it.next(), it.next().and_then(|c| c.parse::<u64>().ok())) {
                *m.entry(n.to_string()).or_insert(0) += c;
            }
        }
    }
    m
}

/// Compiles the C file `src` into `out` with `cc -O2 -pthread` and `extra`
/// flags, failing the test with the compiler's message if it does not build.
pub fn compile_c(src: &Path, out: &Path, extra: &[&str]) {
    let cc = Command::new("cc")
        .args(["-O2", "-pthread"])
        .args(extra)
        .arg("-o")
        .arg(out)
        .arg(src)
        .output()
        .expect("run cc");
    ok(&cc, &format!("compiling {}", src.display()));
}

/// Asserts a run succeeded, showing its stderr otherwise.
pub fn ok(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed: {:?}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Deterministic bytes (the engine's generator: one for every test).
pub use conveyor_engine::mock::pattern;

/// Every file, directory and symlink under `dir`, with contents (files),
/// targets (links) and permission bits, keyed by relative path.
pub fn tree(dir: &Path) -> Vec<(String, String, Vec<u8>)> {
    use std::os::unix::fs::PermissionsExt;
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let mut entries: Vec<_> = std::fs::read_dir(&d).expect("read_dir").flatten().collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let p = e.path();
            let rel = p
                .strip_prefix(dir)
                .expect("prefix")
                .to_string_lossy()
                .into_owned();
            let meta = std::fs::symlink_metadata(&p).expect("metadata");
            let mode = meta.permissions().mode() & 0o777;
            if meta.file_type().is_symlink() {
                let t = std::fs::read_link(&p).expect("readlink");
                out.push((
                    rel,
                    "link".into(),
                    t.to_string_lossy().into_owned().into_bytes(),
                ));
            } else if meta.is_dir() {
                out.push((rel, format!("dir {mode:o}"), Vec::new()));
                stack.push(p);
            } else {
                out.push((
                    rel,
                    format!("file {mode:o}"),
                    std::fs::read(&p).expect("read"),
                ));
            }
        }
    }
    out.sort();
    out
}

/// Copies an executable with `cp` in a child process. A copy made with
/// `std::fs::copy` holds a writable descriptor in this (multi-threaded)
/// test process, which a child forked meanwhile by another test inherits
/// until it execs; running the copy then fails with `ETXTBSY` now and then.
pub fn copy_executable(src: &Path, dst: &Path) {
    let st = Command::new("cp")
        .arg(src)
        .arg(dst)
        .status()
        .expect("run cp");
    assert!(
        st.success(),
        "cp {} {} failed",
        src.display(),
        dst.display()
    );
}
