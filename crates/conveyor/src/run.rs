//! `conveyor run`: environment for the shim, warnings a user needs, exec.

use crate::{find, EXIT_LAUNCH, EXIT_NOT_RUN};
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// `CMD` resolved through `PATH` as exec would.
fn resolve(cmd: &OsStr) -> Option<PathBuf> {
    let p = Path::new(cmd);
    if cmd.as_bytes().contains(&b'/') {
        return p.is_file().then(|| p.to_path_buf());
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(p))
        .find(|c| c.is_file())
}

/// Why LD_PRELOAD cannot reach this executable, if it cannot.
fn unreachable_reason(exe: &Path) -> Option<String> {
    let meta = std::fs::metadata(exe).ok()?;
    let mode = meta.permissions().mode();
    if mode & 0o6000 != 0 {
        return Some("it is setuid/setgid (the loader ignores LD_PRELOAD for it)".into());
    }
    let bytes = std::fs::read(exe).ok()?;
    if bytes.len() < 64 || &bytes[..4] != b"\x7fELF" {
        return None; // a script: its interpreter is what runs
    }
    // 64-bit little-endian ELF: program headers; no PT_INTERP means static.
    if bytes[4] != 2 || bytes[5] != 1 {
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

/// Settings for the shim beyond the paths.
pub struct Shim<'a> {
    /// `CONVEYOR_STATS`: a JSON file (`%p` = pid) or `-` for stderr.
    pub stats: Option<&'a str>,
    /// `CONVEYOR_LOG`.
    pub log: Option<&'a str>,
    /// `CONVEYOR_LOG_FILE` (`%p` = pid).
    pub log_file: Option<&'a Path>,
}

/// Runs `command` under the shim; returns only if exec failed.
pub fn run(paths: &[PathBuf], shim_cfg: Shim<'_>, command: &[OsString]) -> ExitCode {
    let Shim {
        stats,
        log,
        log_file,
    } = shim_cfg;
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
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
    let mut joined = OsString::new();
    for (i, p) in paths.iter().enumerate() {
        let abs = if p.is_absolute() {
            p.clone()
        } else {
            cwd.join(p)
        };
        if !abs.exists() {
            eprintln!("conveyor: warning: --path {} does not exist (yet); files created under it are accelerated", abs.display());
        }
        if i > 0 {
            joined.push(":");
        }
        joined.push(abs.as_os_str());
    }
    let Some((prog, args)) = command.split_first() else {
        eprintln!("conveyor: no command given");
        return ExitCode::from(2);
    };
    match resolve(prog) {
        None => {
            eprintln!("conveyor: {}: command not found", prog.to_string_lossy());
            return ExitCode::from(EXIT_NOT_RUN);
        }
        Some(exe) => {
            if let Some(why) = unreachable_reason(&exe) {
                eprintln!(
                    "conveyor: warning: {} will run without acceleration: {why}",
                    exe.display()
                );
            }
        }
    }
    let mut preload = OsString::from(shim.as_os_str());
    if let Some(old) = std::env::var_os("LD_PRELOAD").filter(|o| !o.is_empty()) {
        preload.push(":");
        preload.push(old);
    }
    let mut cmd = std::process::Command::new(prog);
    cmd.args(args)
        .env("LD_PRELOAD", preload)
        .env("CONVEYOR_PATHS", joined);
    if let Some(l) = log {
        cmd.env("CONVEYOR_LOG", l);
    }
    if let Some(f) = log_file {
        // Absolute: the command may change directory before it logs.
        cmd.env("CONVEYOR_LOG_FILE", cwd.join(f));
    }
    match stats {
        Some("-") => {
            cmd.env("CONVEYOR_STATS", "stderr");
        }
        Some(f) => {
            let abs = if Path::new(f).is_absolute() {
                PathBuf::from(f)
            } else {
                cwd.join(f)
            };
            cmd.env("CONVEYOR_STATS", abs);
        }
        None => {}
    }
    let err = cmd.exec();
    eprintln!("conveyor: cannot run {}: {err}", prog.to_string_lossy());
    ExitCode::from(if err.kind() == std::io::ErrorKind::NotFound {
        EXIT_NOT_RUN
    } else {
        EXIT_LAUNCH
    })
}
