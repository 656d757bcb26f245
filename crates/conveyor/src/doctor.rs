//! `conveyor doctor PATH...`: would each path be accelerated under the
//! current environment (or the given `--path`s), and why or why not; and
//! can the shim be found and loaded.

use crate::find;
use conveyor_engine::{parse_duration, parse_size};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Lexically normalised absolute path (no `.`, `..`, repeated slashes).
fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for c in p.components() {
        match c {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::Normal(n) => out.push(n),
            _ => {}
        }
    }
    out
}

/// The selected prefixes, resolved as the shim resolves them.
fn prefixes(paths: &[PathBuf]) -> Vec<PathBuf> {
    paths
        .iter()
        .filter(|p| p.is_absolute())
        .map(|p| std::fs::canonicalize(p).unwrap_or_else(|_| normalize(p)))
        .collect()
}

/// Filesystem type of the mount holding `path` (from /proc/self/mountinfo).
fn fs_type(path: &Path) -> String {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut best: Option<(usize, String)> = None;
    for line in info.lines() {
        let f: Vec<&str> = line.split(' ').collect();
        let Some(sep) = f.iter().position(|x| *x == "-") else {
            continue;
        };
        let (Some(mnt), Some(ty)) = (f.get(4), f.get(sep + 1)) else {
            continue;
        };
        let mnt = mnt.replace("\\040", " ");
        if path.starts_with(&mnt) && best.as_ref().is_none_or(|(l, _)| mnt.len() >= *l) {
            let sub = f.get(sep + 2).copied().unwrap_or("");
            let name = if *ty == "fuse" || ty.starts_with("fuse.") {
                format!("{ty} ({sub})")
            } else {
                ty.to_string()
            };
            best = Some((mnt.len(), name));
        }
    }
    best.map_or_else(|| "unknown".into(), |(_, t)| t)
}

fn verdict(path: &Path, prefixes: &[PathBuf]) -> String {
    let shown = path.display();
    let abs = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .unwrap_or_else(|_| PathBuf::from("/"))
            .join(path)
    };
    // Where the file is, or would be created (its directory resolved).
    let real = std::fs::canonicalize(&abs).unwrap_or_else(|_| {
        let parent = abs
            .parent()
            .map(|p| std::fs::canonicalize(p).unwrap_or_else(|_| normalize(p)));
        match (parent, abs.file_name()) {
            (Some(d), Some(n)) => d.join(n),
            _ => normalize(&abs),
        }
    });
    let fs = fs_type(&real);
    let Some(prefix) = prefixes.iter().find(|p| real.starts_with(p)) else {
        return format!(
            "{shown}: not accelerated: {} is not under a CONVEYOR_PATHS entry (filesystem {fs})",
            real.display()
        );
    };
    match std::fs::metadata(&real) {
        Ok(m) if m.is_dir() => {
            format!("{shown}: a directory under {}: the regular files opened in it are accelerated (filesystem {fs})", prefix.display())
        }
        Ok(m) if !m.is_file() => {
            format!("{shown}: not accelerated: not a regular file (only regular files are) (filesystem {fs})")
        }
        Ok(_) => format!(
            "{shown}: accelerated when opened without O_DIRECT, O_SYNC, O_DSYNC or O_PATH (under {}; regular file; filesystem {fs})",
            prefix.display()
        ),
        Err(_) => format!(
            "{shown}: does not exist; a regular file created there is accelerated (under {}; filesystem {fs})",
            prefix.display()
        ),
    }
}

/// Whether the shim loads: runs `true` with it preloaded.
fn loads(shim: &Path) -> Result<(), String> {
    let out = std::process::Command::new("true")
        .env("LD_PRELOAD", shim)
        .env("CONVEYOR_DISABLE", "1")
        .output()
        .map_err(|e| format!("cannot run `true`: {e}"))?;
    let err = String::from_utf8_lossy(&out.stderr);
    if out.status.success() && !err.contains("cannot be preloaded") {
        Ok(())
    } else {
        Err(err.trim().to_string())
    }
}

/// Runs the checks; exit 0 when the shim is usable, 1 when it is not.
pub fn doctor(paths: &[PathBuf], targets: &[PathBuf]) -> ExitCode {
    let mut usable = true;
    match find::shim() {
        Ok(s) => match loads(&s) {
            Ok(()) => println!("shim: {} (loads)", s.display()),
            Err(e) => {
                println!("shim: {} does not load: {e}", s.display());
                usable = false;
            }
        },
        Err(missing) => {
            let l: Vec<String> = missing
                .looked
                .iter()
                .map(|p| p.display().to_string())
                .collect();
            println!(
                "shim: {} not found; looked in: {}; built-in copy: {}",
                find::SHIM,
                l.join(", "),
                missing.embedded
            );
            usable = false;
        }
    }
    let env_paths: Vec<PathBuf> = std::env::var_os("CONVEYOR_PATHS")
        .map(|v| {
            std::env::split_paths(&v)
                .filter(|p| !p.as_os_str().is_empty())
                .collect()
        })
        .unwrap_or_default();
    let selected = if paths.is_empty() {
        env_paths
    } else {
        paths.to_vec()
    };
    if std::env::var("CONVEYOR_DISABLE").is_ok_and(|v| !v.is_empty() && v != "0") {
        println!("CONVEYOR_DISABLE is set: nothing is accelerated");
    }
    for v in [
        "CONVEYOR_WRITE_BUFFER",
        "CONVEYOR_IO_SIZE",
        "CONVEYOR_READ_AHEAD",
        "CONVEYOR_MAX_MEMORY",
    ] {
        if let Ok(val) = std::env::var(v) {
            if let Err(e) = parse_size(&val) {
                println!("{v}: {e}; the shim would pass everything through");
            }
        }
    }
    if let Ok(val) = std::env::var("CONVEYOR_MAX_AGE") {
        if let Err(e) = parse_duration(&val) {
            println!("CONVEYOR_MAX_AGE: {e}; the shim would pass everything through");
        }
    }
    if selected.is_empty() {
        println!("CONVEYOR_PATHS is not set (and no --path given): nothing is accelerated");
    }
    for p in selected.iter().filter(|p| !p.is_absolute()) {
        println!(
            "CONVEYOR_PATHS entry {} is not absolute: the shim ignores it",
            p.display()
        );
    }
    let prefixes = prefixes(&selected);
    for t in targets {
        println!("{}", verdict(t, &prefixes));
    }
    if usable {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
