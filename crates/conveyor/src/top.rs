//! `conveyor top`: the processes running under the shim now, from the live
//! files in the caller's own directory (`/dev/shm/conveyor-$UID` or
//! `CONVEYOR_LIVE_DIR`). Files of processes that are gone (no such pid, or
//! a pid reused by a later process) are removed; files that are not the
//! caller's or do not parse are skipped with a message.

use crate::live_doc::{self, Live};
use crate::{owned, units, EXIT_SKIPPED};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The directory the shim writes live files to (as the shim chooses it).
pub fn default_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("CONVEYOR_LIVE_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(d);
    }
    let base = if Path::new("/dev/shm").is_dir() {
        PathBuf::from("/dev/shm")
    } else {
        std::env::var_os("TMPDIR")
            .map(PathBuf::from)
            .filter(|t| t.is_absolute())
            .unwrap_or_else(|| PathBuf::from("/tmp"))
    };
    base.join(format!("conveyor-{}", owned::euid()))
}

/// What one look at the directory found.
struct Scan {
    live: Vec<Live>,
    problems: Vec<String>,
    removed: Vec<String>,
}

/// Start time (clock ticks since boot) of a running `pid`, or `None` if
/// there is no such process.
fn start_ticks(pid: i64) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    s.rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(19)?
        .parse()
        .ok()
}

/// Reads a live file; a record being rewritten at that instant is read
/// again before it is called malformed.
fn read_live(path: &Path) -> Result<Live, String> {
    let mut last = String::new();
    for _ in 0..3 {
        match owned::read(path).and_then(|t| live_doc::parse(&t)) {
            Ok(l) => return Ok(l),
            Err(e) => last = e,
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Err(last)
}

/// Checks the directory is the caller's own and not writable by others.
fn check_dir(dir: &Path) -> Result<bool, String> {
    let meta = match std::fs::symlink_metadata(dir) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(format!("{}: {e}", dir.display())),
    };
    if !meta.is_dir() {
        return Err(format!(
            "{} is not a directory (a symbolic link or a file); not read",
            dir.display()
        ));
    }
    if meta.uid() != owned::euid() {
        return Err(format!(
            "{} is owned by uid {}, not by you; not read",
            dir.display(),
            meta.uid()
        ));
    }
    if meta.permissions().mode() & 0o022 != 0 {
        return Err(format!(
            "{} is writable by group or others (mode {:o}); not read",
            dir.display(),
            meta.permissions().mode() & 0o777
        ));
    }
    Ok(true)
}

fn scan(dir: &Path) -> Scan {
    let mut s = Scan {
        live: Vec::new(),
        problems: Vec::new(),
        removed: Vec::new(),
    };
    let Ok(entries) = std::fs::read_dir(dir) else {
        return s;
    };
    for e in entries.flatten() {
        let path = e.path();
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_suffix(".live")
            .and_then(|p| p.parse::<i64>().ok())
        else {
            continue; // not a live file
        };
        let running = start_ticks(pid);
        let gone = |s: &mut Scan, why: &str| {
            if std::fs::remove_file(&path).is_ok() {
                s.removed.push(format!("{name} ({why})"));
            }
        };
        if running.is_none() {
            gone(&mut s, &format!("pid {pid} is gone"));
            continue;
        }
        match read_live(&path) {
            Err(problem) => s
                .problems
                .push(format!("{}: skipped: {problem}", path.display())),
            Ok(l) if l.pid != pid => s.problems.push(format!(
                "{}: skipped: names pid {}, not {pid}",
                path.display(),
                l.pid
            )),
            Ok(l) if l.start_ticks != 0 && running != Some(l.start_ticks) => {
                gone(&mut s, &format!("pid {pid} is a newer process"))
            }
            Ok(l) => s.live.push(l),
        }
    }
    s.live.sort_by_key(|l| l.pid);
    s
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn table(live: &[Live]) -> String {
    use std::fmt::Write;
    let mut s =
        format!(
        "{:>7} {:>4} {:>12} {:>12} {:>12} {:>12} {:>10} {:>5} {:>8} {:>8} {:>6} {:>5}  COMMAND\n",
        "PID", "OPEN", "APP WRITE/s", "STORED/s", "APP READ/s", "FETCHED/s", "BUFFERED", "MEM%",
        "W LAT", "R LAT", "ERRORS", "AGE"
    );
    let now = now_ms();
    for l in live {
        let lat = |ns: u64| {
            if ns == 0 {
                "-".to_string()
            } else {
                units::nanos(ns)
            }
        };
        let mem = if l.memory_cap_bytes == 0 {
            0.0
        } else {
            100.0 * l.memory_used_bytes as f64 / l.memory_cap_bytes as f64
        };
        let errors = if l.errors > 0 {
            format!("{} ({})", l.errors, l.last_errno)
        } else {
            "0".into()
        };
        let mut cmd = l.command.clone();
        if cmd.len() > 60 {
            let mut cut = 57;
            while !cmd.is_char_boundary(cut) {
                cut -= 1;
            }
            cmd.truncate(cut);
            cmd.push_str("...");
        }
        let _ = writeln!(
            s,
            "{:>7} {:>4} {:>12} {:>12} {:>12} {:>12} {:>10} {:>5.1} {:>8} {:>8} {:>6} {:>4}s  {}",
            l.pid,
            l.open_files,
            units::rate(l.app_write_bytes_per_s),
            units::rate(l.storage_write_bytes_per_s),
            units::rate(l.app_read_bytes_per_s),
            units::rate(l.storage_read_bytes_per_s),
            units::bytes(l.write_buffered_bytes),
            mem,
            lat(l.storage_write_recent_ns),
            lat(l.storage_read_recent_ns),
            errors,
            now.saturating_sub(l.refreshed_unix_ms) / 1000,
            cmd.replace(['\n', '\r', '\x1b'], " ")
        );
    }
    if live.is_empty() {
        s.push_str("(no process is using conveyor)\n");
    }
    s
}

/// Shows the processes using the shim: once (`once`), or refreshed every
/// second until interrupted. Exit 0; 1 when the directory is unsafe or a
/// file was skipped (`--once`).
pub fn top(dir: Option<&Path>, once: bool, json: bool) -> ExitCode {
    let dir = dir.map_or_else(default_dir, Path::to_path_buf);
    let exists = match check_dir(&dir) {
        Ok(e) => e,
        Err(msg) => {
            eprintln!("conveyor top: {msg}");
            return ExitCode::from(EXIT_SKIPPED);
        }
    };
    let tty = std::io::IsTerminal::is_terminal(&std::io::stdout());
    loop {
        let s = if exists || dir.is_dir() {
            scan(&dir)
        } else {
            Scan {
                live: Vec::new(),
                problems: Vec::new(),
                removed: Vec::new(),
            }
        };
        for r in &s.removed {
            eprintln!("conveyor top: removed stale {r}");
        }
        for p in &s.problems {
            eprintln!("conveyor top: {p}");
        }
        if json {
            match serde_json::to_string_pretty(&s.live) {
                Ok(t) => println!("{t}"),
                Err(e) => eprintln!("conveyor top: cannot write JSON: {e}"),
            }
        } else {
            if tty && !once {
                // Clear the screen and go home, as top(1) does.
                print!("\x1b[H\x1b[2J");
            }
            print!("{}", table(&s.live));
        }
        if once {
            return if s.problems.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(EXIT_SKIPPED)
            };
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}
