//! Running one program once: plain, under conveyor, or under libeatmydata,
//! timed from spawn until it has exited.

use crate::cases::Prepared;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

/// How a program runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variant {
    /// No preload.
    Plain,
    /// `LD_PRELOAD=libconveyor_preload.so CONVEYOR_PATHS=<storage>`.
    Conveyor,
    /// `LD_PRELOAD=libeatmydata.so`: fsync and O_SYNC become no-ops, so it
    /// gives up durability; a peer, not an equal.
    EatMyData,
    /// conveyor with `CONVEYOR_CLOSE=relaxed`: `close` returns once the
    /// data is queued (other programs see it at the process's barriers).
    Relaxed,
    /// conveyor with `CONVEYOR_EXECUTOR=uring`: background requests on
    /// io_uring instead of the worker pool.
    Uring,
    /// conveyor with `CONVEYOR_CRASH_SAFE=off`: pending writes in each
    /// process, as before crash-safe write-behind (the default, which
    /// `Conveyor` runs, keeps them in a shared-memory journal the user's
    /// flusher writes if a process dies).
    InProcess,
}

impl Variant {
    /// Name in results.
    pub fn name(self) -> &'static str {
        match self {
            Variant::Plain => "plain",
            Variant::Conveyor => "conveyor",
            Variant::EatMyData => "eatmydata",
            Variant::Relaxed => "relaxed",
            Variant::Uring => "uring",
            Variant::InProcess => "in-process",
        }
    }
}

/// The preload libraries.
pub struct Preloads {
    /// libconveyor_preload.so.
    pub conveyor: PathBuf,
    /// libeatmydata.so, when installed.
    pub eatmydata: Option<PathBuf>,
}

impl Preloads {
    /// Finds the shim beside this executable (target/release) and
    /// libeatmydata in the usual library directories.
    pub fn find(bin_dir: &Path) -> Result<Preloads, String> {
        let conveyor = bin_dir.join("libconveyor_preload.so");
        if !conveyor.exists() {
            return Err(format!(
                "{} is missing: run cargo build --release first",
                conveyor.display()
            ));
        }
        let eatmydata = [
            "/usr/lib/x86_64-linux-gnu/libeatmydata.so",
            "/usr/lib/aarch64-linux-gnu/libeatmydata.so",
            "/usr/lib/libeatmydata.so",
            "/usr/local/lib/libeatmydata.so",
        ]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists());
        Ok(Preloads {
            conveyor,
            eatmydata,
        })
    }
}

/// A program's run: its time and what it printed.
pub struct Ran {
    /// Seconds from spawn to exit.
    pub secs: f64,
    /// Its standard output.
    pub stdout: String,
    /// Its standard error.
    pub stderr: String,
}

/// Runs `p` as `v` with `paths` as CONVEYOR_PATHS (and, with `always`,
/// `CONVEYOR_MODE=always` for every conveyor run: the executors compared
/// on fast storage, where by default the shim steps aside), timed from
/// spawn to exit. A failing program is an error (with its stderr).
pub fn timed(
    p: &Prepared,
    v: Variant,
    pre: &Preloads,
    paths: &Path,
    always: bool,
) -> Result<Ran, String> {
    let mut cmd = Command::new(&p.prog);
    // Output is captured because some checks read it (postmark's report
    // is the only record of what it did).
    cmd.args(&p.args)
        .envs(p.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, _) in std::env::vars_os() {
        if k == "LD_PRELOAD" || k.to_string_lossy().starts_with("CONVEYOR_") {
            cmd.env_remove(k);
        }
    }
    match v {
        Variant::Plain => {}
        Variant::Conveyor => {
            cmd.env("LD_PRELOAD", &pre.conveyor)
                .env("CONVEYOR_PATHS", paths);
        }
        Variant::Relaxed => {
            cmd.env("LD_PRELOAD", &pre.conveyor)
                .env("CONVEYOR_PATHS", paths)
                .env("CONVEYOR_CLOSE", "relaxed");
        }
        Variant::Uring => {
            cmd.env("LD_PRELOAD", &pre.conveyor)
                .env("CONVEYOR_PATHS", paths)
                .env("CONVEYOR_EXECUTOR", "uring");
        }
        Variant::InProcess => {
            cmd.env("LD_PRELOAD", &pre.conveyor)
                .env("CONVEYOR_PATHS", paths)
                .env("CONVEYOR_CRASH_SAFE", "off");
        }
        Variant::EatMyData => {
            let lib = pre
                .eatmydata
                .as_ref()
                .ok_or("libeatmydata is not installed")?;
            cmd.env("LD_PRELOAD", lib);
        }
    }
    if always && v != Variant::Plain && v != Variant::EatMyData {
        cmd.env("CONVEYOR_MODE", "always");
    }
    let t = Instant::now();
    let out = cmd.output().map_err(|e| format!("{}: {e}", p.prog))?;
    let secs = t.elapsed().as_secs_f64();
    if !out.status.success() {
        return Err(format!(
            "{} {} ({}) failed: {}: {}",
            p.prog,
            p.args.join(" "),
            v.name(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(Ran {
        secs,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}
