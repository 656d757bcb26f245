//! `conveyor run`: environment for the shim, every mistake caught before
//! the command starts, warnings a user needs, then exec (or, for
//! `--summary` and `--progress`, a child the launcher waits for).

use crate::cli::RunArgs;
use crate::settings::{self, Origin};
use crate::{find, supervise, EXIT_LAUNCH, EXIT_NOT_EXECUTABLE, EXIT_NOT_FOUND, EXIT_USAGE};
use std::ffi::{OsStr, OsString};
use std::io::IsTerminal;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// What became of looking the command up, as a shell would.
enum Resolved {
    /// An executable file.
    Exe(PathBuf),
    /// Nothing by that name (127).
    NotFound(String),
    /// Found, but it cannot be run (126).
    NotRunnable(String),
}

fn executable(p: &Path) -> bool {
    let Ok(c) = std::ffi::CString::new(p.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: `c` is a NUL-terminated path.
    unsafe { libc::access(c.as_ptr(), libc::X_OK) == 0 }
}

/// `CMD` resolved through `PATH` as the shell does: a name with a slash is
/// used as it is; otherwise the first executable regular file in `PATH`,
/// and if there is none but a file that is not executable, that one is
/// named (the shell's "permission denied", 126).
fn resolve(cmd: &OsStr) -> Resolved {
    let shown = cmd.to_string_lossy();
    let p = Path::new(cmd);
    if cmd.as_bytes().contains(&b'/') {
        return match std::fs::metadata(p) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Resolved::NotFound(format!("{shown}: no such file or directory"))
            }
            Err(e) => Resolved::NotRunnable(format!("{shown}: {e}")),
            Ok(m) if m.is_dir() => Resolved::NotRunnable(format!("{shown}: is a directory")),
            Ok(_) if !executable(p) => Resolved::NotRunnable(format!(
                "{shown}: permission denied (the file is not executable)"
            )),
            Ok(_) => Resolved::Exe(p.to_path_buf()),
        };
    }
    let mut not_executable = None;
    if let Some(path) = std::env::var_os("PATH") {
        for c in std::env::split_paths(&path).map(|d| d.join(p)) {
            if !c.is_file() {
                continue;
            }
            if executable(&c) {
                return Resolved::Exe(c);
            }
            not_executable.get_or_insert(c);
        }
    }
    match not_executable {
        Some(c) => Resolved::NotRunnable(format!(
            "{shown}: permission denied ({} is not executable)",
            c.display()
        )),
        None => Resolved::NotFound(format!("{shown}: command not found")),
    }
}

/// True if `path` is on a filesystem mounted `nosuid` (where the loader
/// ignores setuid bits and file capabilities).
fn nosuid(path: &Path) -> bool {
    let Ok(c) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: statvfs fills a zeroed struct from a NUL-terminated path.
    unsafe {
        let mut s: libc::statvfs = std::mem::zeroed();
        libc::statvfs(c.as_ptr(), &mut s) == 0 && s.f_flag & libc::ST_NOSUID != 0
    }
}

/// True if `path` carries file capabilities.
fn has_capabilities(path: &Path) -> bool {
    let Ok(c) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: asks only for the size of an attribute of a NUL-terminated path.
    unsafe {
        libc::getxattr(
            c.as_ptr(),
            c"security.capability".as_ptr(),
            std::ptr::null_mut(),
            0,
        ) > 0
    }
}

/// Why LD_PRELOAD cannot reach this executable, if it cannot: a static
/// binary, or one the kernel starts in secure-execution mode (AT_SECURE),
/// where the loader ignores LD_PRELOAD: the effective uid or gid it gets
/// differs from the real one, or it gains file capabilities. A setuid
/// binary run by its owner (root running a setuid-root one) is not in that
/// mode, and is accelerated.
fn unreachable_reason(exe: &Path) -> Option<String> {
    let meta = std::fs::metadata(exe).ok()?;
    let mut head = [0u8; 64];
    let n = std::io::Read::read(&mut std::fs::File::open(exe).ok()?, &mut head).ok()?;
    if n < 64 || &head[..4] != b"\x7fELF" {
        return None; // a script: its interpreter is what runs
    }
    // SAFETY: these have no preconditions and cannot fail.
    let (ruid, euid, rgid, egid) = unsafe {
        (
            libc::getuid(),
            libc::geteuid(),
            libc::getgid(),
            libc::getegid(),
        )
    };
    if ruid != euid || rgid != egid {
        return Some(
            "conveyor runs with an effective uid or gid different from the real one, \
so the loader runs every program it starts in secure-execution mode and ignores LD_PRELOAD"
                .into(),
        );
    }
    let mode = meta.permissions().mode();
    // Root gains nothing from file capabilities: no secure execution then.
    let caps = ruid != 0 && has_capabilities(exe);
    if (mode & 0o6000 != 0 || caps) && !nosuid(exe) {
        if mode & 0o4000 != 0 && meta.uid() != ruid {
            return Some(format!(
                "it is setuid to uid {} and you are uid {ruid}: the loader runs it in \
secure-execution mode and ignores LD_PRELOAD",
                meta.uid()
            ));
        }
        if mode & 0o2000 != 0 && meta.gid() != rgid {
            return Some(format!(
                "it is setgid to gid {} and your gid is {rgid}: the loader runs it in \
secure-execution mode and ignores LD_PRELOAD",
                meta.gid()
            ));
        }
        if caps {
            return Some(
                "it has file capabilities: the loader runs it in secure-execution mode and \
ignores LD_PRELOAD"
                    .into(),
            );
        }
    }
    static_reason(exe)
}

/// "statically linked" if the ELF file has no program interpreter.
fn static_reason(exe: &Path) -> Option<String> {
    let bytes = std::fs::read(exe).ok()?;
    // 64-bit little-endian ELF: program headers; no PT_INTERP means static.
    if bytes.len() < 64 || bytes[4] != 2 || bytes[5] != 1 {
        return None;
    }
    let u64_at = |o: usize| {
        bytes
            .get(o..o + 8)
            .map(|b| u64::from_le_bytes(b.try_into().unwrap_or([0; 8])))
    };
    let u16_at = |o: usize| {
        bytes
            .get(o..o + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
    };
    let phoff = u64_at(0x20)? as usize;
    let phentsize = u16_at(0x36)? as usize;
    let phnum = u16_at(0x38)? as usize;
    let interp = (0..phnum).any(|i| {
        let at = phoff + i * phentsize;
        bytes
            .get(at..at + 4)
            .map(|t| u32::from_le_bytes([t[0], t[1], t[2], t[3]]))
            == Some(3)
    });
    (!interp).then(|| "it is statically linked (LD_PRELOAD needs the dynamic loader)".into())
}

fn usage(msg: &str) -> ExitCode {
    eprintln!("conveyor run: {msg}");
    ExitCode::from(EXIT_USAGE)
}

/// Runs the command under the shim. Returns only when the command could
/// not be started, or (with `--summary`/`--progress`) with its status.
pub fn run(a: RunArgs) -> ExitCode {
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
    let absolute = |p: &Path| {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            cwd.join(p)
        }
    };
    // The variables the launcher sets, which win over the environment.
    let mut set: Vec<(&'static str, OsString, Origin)> = Vec::new();
    let env_paths = std::env::var_os("CONVEYOR_PATHS").filter(|v| !v.is_empty());
    if a.paths.is_empty() {
        if env_paths.is_none() {
            return usage(
                "no directory selected: give --path DIR (repeatable), or export CONVEYOR_PATHS",
            );
        }
    } else {
        let mut joined = OsString::new();
        for (i, p) in a.paths.iter().enumerate() {
            let abs = absolute(p);
            if !abs.exists() {
                eprintln!("conveyor: warning: --path {} does not exist (yet); files created under it are accelerated", abs.display());
            }
            if i > 0 {
                joined.push(":");
            }
            joined.push(abs.as_os_str());
        }
        if let Some(env) = env_paths.filter(|e| *e != joined) {
            eprintln!(
                "conveyor: --path wins: files under {} are accelerated; CONVEYOR_PATHS={} from the environment is not used",
                joined.to_string_lossy(),
                env.to_string_lossy()
            );
        }
        set.push(("CONVEYOR_PATHS", joined, Origin::Option("--path")));
    }
    if let Some(m) = &a.mode {
        set.push(("CONVEYOR_MODE", m.into(), Origin::Option("--mode")));
    }
    if let Some(e) = &a.executor {
        set.push(("CONVEYOR_EXECUTOR", e.into(), Origin::Option("--executor")));
    }
    if a.no_crash_safe {
        set.push((
            "CONVEYOR_CRASH_SAFE",
            "off".into(),
            Origin::Option("--no-crash-safe"),
        ));
    }
    if a.relaxed_close {
        set.push((
            "CONVEYOR_CLOSE",
            "relaxed".into(),
            Origin::Option("--relaxed-close"),
        ));
    }
    if let Some(l) = &a.log {
        set.push(("CONVEYOR_LOG", l.into(), Origin::Option("--log")));
    }
    if let Some(f) = &a.log_file {
        // Absolute: the command may change directory before it logs.
        set.push((
            "CONVEYOR_LOG_FILE",
            absolute(f).into(),
            Origin::Option("--log-file"),
        ));
    }
    match a.stats.as_deref() {
        Some("-") => set.push(("CONVEYOR_STATS", "stderr".into(), Origin::Option("--stats"))),
        Some(f) => set.push((
            "CONVEYOR_STATS",
            absolute(Path::new(f)).into(),
            Origin::Option("--stats"),
        )),
        None => {}
    }
    let summary_dir = if a.summary {
        if let Some(env) = std::env::var_os("CONVEYOR_STATS").filter(|v| !v.is_empty()) {
            eprintln!(
                "conveyor: --summary wins: it collects the reports itself; CONVEYOR_STATS={} from the environment is not used",
                env.to_string_lossy()
            );
        }
        let d = match supervise::PrivateDir::for_option("--summary") {
            Ok(d) => d,
            Err(code) => return code,
        };
        set.push((
            "CONVEYOR_STATS",
            d.path().join("report-%p.json").into(),
            Origin::Option("--summary"),
        ));
        Some(d)
    } else {
        None
    };

    let lookup = |name: &str| {
        set.iter()
            .find(|(k, _, _)| *k == name)
            .map(|(_, v, o)| (v.clone(), *o))
            .or_else(|| settings::from_env(name))
    };
    let verdicts = settings::check(&lookup);
    let problems: Vec<&str> = verdicts
        .iter()
        .filter_map(|v| v.problem.as_deref())
        .collect();
    if !problems.is_empty() {
        for p in &problems {
            eprintln!("conveyor run: {p}");
        }
        eprintln!(
            "conveyor run: not started: fix or unset {} (`conveyor doctor` shows every setting)",
            if problems.len() == 1 {
                "that setting"
            } else {
                "those settings"
            }
        );
        return ExitCode::from(EXIT_USAGE);
    }
    for v in &verdicts {
        for n in &v.notes {
            if v.value
                .as_ref()
                .is_some_and(|(_, o)| *o == Origin::Environment)
            {
                eprintln!("conveyor: warning: {n}");
            }
        }
    }
    for u in settings::unknown() {
        eprintln!("conveyor: warning: {u}");
    }
    if verdicts
        .iter()
        .any(|v| v.name == "CONVEYOR_DISABLE" && v.meaning.starts_with("set"))
    {
        eprintln!("conveyor: warning: CONVEYOR_DISABLE is set: the shim manages nothing");
    }

    let shim = match find::shim() {
        Ok(s) => s,
        Err(missing) => {
            eprintln!("conveyor: cannot find {}; looked for:", find::SHIM);
            for p in missing.looked {
                eprintln!("  {}", p.display());
            }
            eprintln!("conveyor: built-in copy: {}", missing.embedded);
            eprintln!("conveyor: build it with `cargo build --release`, or copy it next to the conveyor binary");
            return ExitCode::from(EXIT_LAUNCH);
        }
    };
    let Some((prog, args)) = a.command.split_first() else {
        return usage("no command given");
    };
    let exe = match resolve(prog) {
        Resolved::NotFound(msg) => {
            eprintln!("conveyor: {msg}");
            return ExitCode::from(EXIT_NOT_FOUND);
        }
        Resolved::NotRunnable(msg) => {
            eprintln!("conveyor: {msg}");
            return ExitCode::from(EXIT_NOT_EXECUTABLE);
        }
        Resolved::Exe(exe) => exe,
    };
    if let Some(why) = unreachable_reason(&exe) {
        eprintln!(
            "conveyor: warning: {} will run without acceleration: {why}",
            exe.display()
        );
    }
    let mut preload = OsString::from(shim.as_os_str());
    if let Some(old) = std::env::var_os("LD_PRELOAD").filter(|o| !o.is_empty()) {
        preload.push(":");
        preload.push(old);
    }
    let mut cmd = std::process::Command::new(prog);
    cmd.args(args).env("LD_PRELOAD", preload);
    for (k, v, _) in &set {
        cmd.env(k, v);
    }
    let crash_safe = lookup("CONVEYOR_CRASH_SAFE")
        .map_or(Ok(true), |(v, _)| {
            conveyor_fskind::parse_crash_safe(&v.to_string_lossy())
        })
        .unwrap_or(false);
    if crash_safe && std::env::var_os("CONVEYOR_FLUSHER").is_none_or(|v| v.is_empty()) {
        match start_flusher() {
            Ok(socket) => {
                cmd.env("CONVEYOR_FLUSHER", socket);
            }
            Err(e) => {
                eprintln!("conveyor: cannot start the flusher: {e}");
                return ExitCode::from(EXIT_LAUNCH);
            }
        }
    }
    let progress = a.progress && std::io::stderr().is_terminal();
    if progress && std::env::var_os("CONVEYOR_LIVE_DIR").is_some_and(|d| d == "off") {
        eprintln!("conveyor: warning: --progress has nothing to show: CONVEYOR_LIVE_DIR=off turns the live files off");
    }
    // Relaxed close: errors after a close returned are written here, and
    // turned into the exit status once the command ends.
    let late_dir = if a.relaxed_close {
        let d = match supervise::PrivateDir::for_option("--relaxed-close") {
            Ok(d) => d,
            Err(code) => return code,
        };
        cmd.env("CONVEYOR_LATE_ERRORS", d.path().join("late-%p"));
        Some(d)
    } else {
        None
    };
    if summary_dir.is_some() || progress || late_dir.is_some() {
        return supervise::run(cmd, prog, summary_dir, progress, late_dir);
    }
    let err = cmd.exec();
    cannot_run(prog, &err)
}

/// Starts `conveyor flusher` for the command's process tree, with its
/// socket in a fresh private directory; returns the socket once it
/// listens. The flusher runs in a session of its own, ends once this
/// process (the command, after the exec) is gone and no program is
/// connected, and removes the directory; its messages (what it wrote for
/// a killed process) go to this stderr.
fn start_flusher() -> Result<PathBuf, String> {
    let dir = supervise::PrivateDir::named("conveyor-flusher").map_err(|e| e.to_string())?;
    let socket = dir.path().join("socket");
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let status = std::process::Command::new(exe)
        .arg("flusher")
        .arg("--socket")
        .arg(&socket)
        .arg("--detach")
        .arg("--watch")
        .arg(std::process::id().to_string())
        .env_remove("LD_PRELOAD")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .status()
        .map_err(|e| e.to_string())?;
    if !status.success() {
        return Err(format!("conveyor flusher exited with {status}"));
    }
    dir.keep();
    Ok(socket)
}

/// Says why the command could not be started; the shell's status for it.
pub fn cannot_run(prog: &OsStr, err: &std::io::Error) -> ExitCode {
    let why = if err.kind() == std::io::ErrorKind::NotFound {
        format!("{err} (its interpreter or loader is missing)")
    } else {
        err.to_string()
    };
    eprintln!("conveyor: cannot run {}: {why}", prog.to_string_lossy());
    ExitCode::from(EXIT_NOT_EXECUTABLE)
}
