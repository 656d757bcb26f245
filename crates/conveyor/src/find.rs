//! Where the shim is: next to the launcher's own executable (a build tree
//! or `cargo install` with the library copied beside it), then the usual
//! library directories.

use std::path::{Path, PathBuf};

/// The shim's file name.
pub const SHIM: &str = "libconveyor_preload.so";

/// Places searched, in order.
pub fn candidates() -> Vec<PathBuf> {
    let mut v = Vec::new();
    if let Some(dir) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_path_buf))
    {
        v.push(dir.join(SHIM));
        if let Some(prefix) = dir.parent() {
            v.push(prefix.join("lib").join(SHIM));
        }
    }
    for d in ["/usr/local/lib", "/usr/lib", "/usr/lib/x86_64-linux-gnu"] {
        v.push(Path::new(d).join(SHIM));
    }
    v
}

/// The first candidate that exists, or every place looked at.
pub fn shim() -> Result<PathBuf, Vec<PathBuf>> {
    let c = candidates();
    c.iter().find(|p| p.is_file()).cloned().ok_or(c)
}
