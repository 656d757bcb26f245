//! The shim carried inside the launcher (built by `build.rs`), unpacked on
//! first use into the user's cache directory. It serves setups where
//! nothing put the library beside the command or in a library directory,
//! such as `cargo install`, which installs no libraries.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::PathBuf;

/// The shim's bytes; empty when the build could not make it.
const BYTES: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/libconveyor_preload.so"));

/// `$XDG_CACHE_HOME/conveyor`, else `$HOME/.cache/conveyor`.
pub fn cache_dir() -> Option<PathBuf> {
    let abs = |v: std::ffi::OsString| Some(PathBuf::from(v)).filter(|p| p.is_absolute());
    std::env::var_os("XDG_CACHE_HOME")
        .and_then(abs)
        .or_else(|| {
            std::env::var_os("HOME")
                .and_then(abs)
                .map(|h| h.join(".cache"))
        })
        .map(|c| c.join("conveyor"))
}

/// FNV-1a: names the unpacked file after its content, so launchers of
/// different builds never use each other's shim.
fn fnv1a(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Where the embedded shim would be unpacked (for messages).
pub fn target() -> Option<PathBuf> {
    cache_dir().map(|d| d.join(format!("libconveyor_preload-{:016x}.so", fnv1a(BYTES))))
}

/// The unpacked shim, written now if it is not there yet, or why not.
pub fn unpack() -> Result<PathBuf, String> {
    if BYTES.is_empty() {
        return Err("this conveyor was built without an embedded copy".into());
    }
    let (Some(dir), Some(path)) = (cache_dir(), target()) else {
        return Err("neither XDG_CACHE_HOME nor HOME is an absolute directory".into());
    };
    let shown = dir.display();
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .map_err(|e| format!("cannot create {shown}: {e}"))?;
    // The library is loaded into every program run: only a directory of
    // the user's own that nobody else can write to is trusted with it.
    let md = fs::symlink_metadata(&dir).map_err(|e| format!("{shown}: {e}"))?;
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    if !md.is_dir() || md.uid() != me || md.mode() & 0o022 != 0 {
        return Err(format!(
            "{shown} is not a directory of yours closed to others (a symlink, another owner, or group/world writable)"
        ));
    }
    if fs::symlink_metadata(&path).is_ok_and(|m| m.is_file() && m.uid() == me)
        && fs::read(&path).is_ok_and(|b| b == BYTES)
    {
        return Ok(path);
    }
    let tmp = dir.join(format!(".unpack-{}", std::process::id()));
    let _ = fs::remove_file(&tmp);
    let written = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&tmp)
        .and_then(|mut f| f.write_all(BYTES).and_then(|_| f.sync_all()))
        .and_then(|_| fs::rename(&tmp, &path));
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(format!("cannot write {}: {e}", path.display()));
    }
    Ok(path)
}
