//! Where the shim is: next to the launcher's own executable (a build tree,
//! or an install with the library copied beside it), then the usual library
//! directories, then the copy embedded in the launcher (unpacked into the
//! user's cache directory).

use crate::embedded;
use std::path::{Path, PathBuf};

/// The shim's file name.
pub const SHIM: &str = "libconveyor_preload.so";

/// No usable shim: every place looked at, and why the embedded copy could
/// not be used.
pub struct Missing {
    /// Files looked for, in order.
    pub looked: Vec<PathBuf>,
    /// Why the embedded copy is not available.
    pub embedded: String,
}

/// Places searched, in order, before the embedded copy.
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

/// The first candidate that exists, else the unpacked embedded copy.
pub fn shim() -> Result<PathBuf, Missing> {
    let mut looked = candidates();
    if let Some(p) = looked.iter().find(|p| p.is_file()) {
        return Ok(p.clone());
    }
    match embedded::unpack() {
        Ok(p) => Ok(p),
        Err(why) => {
            looked.extend(embedded::target());
            Err(Missing {
                looked,
                embedded: why,
            })
        }
    }
}
