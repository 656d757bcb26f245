//! Reading files another process wrote (stats reports, live files) as
//! untrusted input: only the caller's own regular files, never through a
//! symbolic link, never more than a size cap.

use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

/// Largest file read: reports list at most a few hundred files.
pub const MAX_BYTES: u64 = 16 << 20;

/// The effective user id of this process.
pub fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// The text of `path` if it is a regular file owned by the caller, not a
/// symbolic link, and at most `MAX_BYTES` long; otherwise what is wrong.
pub fn read(path: &Path) -> Result<String, String> {
    // O_NONBLOCK: a FIFO planted where a file was expected must not hang us.
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) => "is a symbolic link (not followed)".to_string(),
            _ => format!("cannot open: {e}"),
        })?;
    let meta = f.metadata().map_err(|e| format!("cannot stat: {e}"))?;
    if !meta.is_file() {
        return Err("is not a regular file".into());
    }
    if meta.uid() != euid() {
        return Err(format!(
            "is owned by uid {}, not by you (uid {}); only your own files are read",
            meta.uid(),
            euid()
        ));
    }
    if meta.len() > MAX_BYTES {
        return Err(format!(
            "is {} bytes, more than the {MAX_BYTES} a report can be",
            meta.len()
        ));
    }
    let mut bytes = Vec::new();
    f.by_ref()
        .take(MAX_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read: {e}"))?;
    String::from_utf8(bytes).map_err(|_| "is not UTF-8 text".into())
}
