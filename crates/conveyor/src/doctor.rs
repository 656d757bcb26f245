//! `conveyor doctor PATH...`: would each path be accelerated under the
//! current environment (or the given `--path`s), and why or why not; every
//! `CONVEYOR_*` setting in effect, with its default; and can the shim be
//! found and loaded.

use crate::settings::{self, Origin};
use crate::{find, EXIT_SKIPPED};
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

/// What storage the shim would find at `path`.
struct Storage {
    /// The filesystem type (with the FUSE source), and what the shim does
    /// differently there.
    shown: String,
    /// Every file there passes through, whatever the mode.
    passed: bool,
    /// Fast local storage: passed through in the default mode.
    local: bool,
}

/// The filesystem holding `path` (from /proc/self/mountinfo), as the shim
/// would classify it (`conveyor_fskind`, the shim's own rules).
fn storage(path: &Path) -> Storage {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let Some(m) = conveyor_fskind::mount_at(&info, path) else {
        return Storage {
            shown: "unknown".into(),
            passed: false,
            local: false,
        };
    };
    let kind = conveyor_fskind::learn(&m);
    let name = if m.fstype == "fuse" || m.fstype.starts_with("fuse.") {
        format!("{} ({})", m.fstype, m.source)
    } else {
        m.fstype.clone()
    };
    Storage {
        shown: name + &fs_note(&m, kind),
        passed: kind.pass_through,
        local: kind.local,
    }
}

/// What the shim does differently on a filesystem of `kind`.
fn fs_note(m: &conveyor_fskind::Mount, kind: conveyor_fskind::Kind) -> String {
    if kind.local {
        return "; fast local storage, served by the kernel's page cache".into();
    }
    match m.fstype.as_str() {
        "fuse.s3fs" => {
            "; s3fs uploads a file at each close: the shim writes through the program's own \
descriptor (or a duplicate of it, closed before the program's close returns), so no upload is added; files \
opened write-only are accelerated, and a file opened for reading passes through (s3fs reads ahead itself)"
                .into()
        }
        "fuse.rclone" => {
            match conveyor_fskind::rclone_mode_for(&m.point, &conveyor_fskind::rclone_cmdlines()) {
                Some(mode) if !kind.pass_through => format!(
                    "; rclone --vfs-cache-mode {mode}: files opened write-only accelerated, told \
apart by path (rclone makes inode numbers up), written through the program's own descriptor or a \
duplicate of it; a file opened for reading passes through"
                ),
                Some(mode) => format!(
                    "; rclone --vfs-cache-mode {mode}: without its write cache rclone takes no \
second handle and no out-of-order write, so files there pass through"
                ),
                None => "; no rclone process serving it found: assumed without its write cache, \
so files there pass through"
                    .into(),
            }
        }
        _ => String::new(),
    }
}

fn verdict(path: &Path, prefixes: &[PathBuf], always: bool) -> String {
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
    let st = storage(&real);
    let (fs, passed) = (st.shown.as_str(), st.passed);
    let Some(prefix) = prefixes.iter().find(|p| real.starts_with(p)) else {
        return format!(
            "{shown}: not accelerated: {} is not under a CONVEYOR_PATHS entry (filesystem {fs})",
            real.display()
        );
    };
    if passed {
        return format!(
            "{shown}: not accelerated: the filesystem cannot take it (under {}; filesystem {fs})",
            prefix.display()
        );
    }
    if st.local && !always {
        return format!(
            "{shown}: not accelerated in the default mode, which leaves fast local storage to \
the kernel (under {}; filesystem {fs}); CONVEYOR_MODE=always accelerates it",
            prefix.display()
        );
    }
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

/// Runs the checks; exit 0 when the shim is usable and every setting
/// valid, 1 when not.
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
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
    let given: Vec<PathBuf> = paths.iter().map(|p| cwd.join(p)).collect();
    let joined = std::env::join_paths(&given).unwrap_or_default();
    let lookup = |name: &str| {
        if name == "CONVEYOR_PATHS" && !given.is_empty() {
            return Some((joined.clone(), Origin::Option("--path")));
        }
        settings::from_env(name)
    };
    let mut bad = false;
    for v in settings::check(&lookup) {
        let line = match (&v.value, &v.problem) {
            (_, Some(p)) => {
                bad = true;
                format!("{}: bad: {p}", v.name)
            }
            (Some((val, Origin::Option(o))), None) => {
                format!("{}={val} (from {o}): {}", v.name, v.meaning)
            }
            (Some((val, Origin::Environment)), None) => format!("{}={val}: {}", v.name, v.meaning),
            (None, None) => format!("{}: {}", v.name, v.meaning),
        };
        println!("{line}");
        for n in &v.notes {
            println!("{n}");
        }
    }
    if let Some(env) =
        std::env::var_os("CONVEYOR_PATHS").filter(|e| !e.is_empty() && !given.is_empty())
    {
        println!(
            "--path wins: CONVEYOR_PATHS={} from the environment is not used here",
            env.to_string_lossy()
        );
    }
    for u in settings::unknown() {
        println!("{u}");
    }
    let selected: Vec<PathBuf> = if given.is_empty() {
        std::env::var_os("CONVEYOR_PATHS")
            .map(|v| {
                std::env::split_paths(&v)
                    .filter(|p| !p.as_os_str().is_empty())
                    .collect()
            })
            .unwrap_or_default()
    } else {
        given.clone()
    };
    if selected.is_empty() {
        println!("CONVEYOR_PATHS is not set (and no --path given): nothing is accelerated");
    }
    let prefixes = prefixes(&selected);
    let always = lookup("CONVEYOR_MODE").is_some_and(|(v, _)| {
        conveyor_fskind::Mode::parse(&v.to_string_lossy()) == Ok(conveyor_fskind::Mode::Always)
    });
    for t in targets {
        println!("{}", verdict(t, &prefixes, always));
    }
    if usable && !bad {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_SKIPPED)
    }
}
