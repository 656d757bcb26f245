//! Which opens are managed: regular files whose canonical path (as the
//! kernel resolved it: symlinks, `..`, relative paths and dirfds included)
//! lies under `CONVEYOR_PATHS`, opened without `O_PATH`, `O_DIRECT`,
//! `O_SYNC` or `O_DSYNC`.

use crate::backend::RawBackend;
use crate::desc::Desc;
use crate::real;
use crate::state::Shim;
use conveyor_engine::{FileKey, Mode};
use libc::c_int;
use std::sync::Arc;

/// Flags whose semantics buffering would break: left to the kernel.
const PASS_FLAGS: c_int = libc::O_PATH | libc::O_DIRECT | libc::O_DSYNC;

/// `fstat` of a descriptor through the real function.
pub fn fstat(fd: c_int) -> Option<libc::stat64> {
    // SAFETY: `st` is a plain C struct the call fills.
    let mut st: libc::stat64 = unsafe { std::mem::zeroed() };
    // SAFETY: `st` is valid for writing.
    (unsafe { real::fstat64(fd, &mut st) } == 0).then_some(st)
}

/// The identity of a stat result.
pub fn key_of(st: &libc::stat64) -> FileKey {
    FileKey {
        dev: st.st_dev,
        ino: st.st_ino,
    }
}

/// True for a regular file.
pub fn is_regular(mode: u32) -> bool {
    mode & libc::S_IFMT == libc::S_IFREG
}

/// The path the kernel has for `fd`.
fn fd_path(fd: c_int) -> Option<Vec<u8>> {
    let link = format!("/proc/self/fd/{fd}\0");
    let mut buf = vec![0u8; 4096];
    // SAFETY: `link` is NUL-terminated and `buf` is writable for its length.
    let n = unsafe { libc::readlink(link.as_ptr().cast(), buf.as_mut_ptr().cast(), buf.len()) };
    if n <= 0 || n as usize >= buf.len() {
        return None;
    }
    buf.truncate(n as usize);
    Some(buf)
}

/// The managed description for a descriptor the program just opened with
/// `flags`, or `None` if it is not to be managed.
pub fn manage(shim: &Shim, fd: c_int, flags: c_int) -> Option<Arc<Desc>> {
    if flags & PASS_FLAGS != 0 {
        return None;
    }
    let st = fstat(fd)?;
    if !is_regular(st.st_mode) {
        return None;
    }
    let path = fd_path(fd)?;
    if !shim.selects(&path) {
        return None;
    }
    let backend = Arc::new(RawBackend::open(fd, flags)?);
    let acc = flags & libc::O_ACCMODE;
    let mode = Mode {
        read: acc == libc::O_RDONLY || acc == libc::O_RDWR,
        write: acc == libc::O_WRONLY || acc == libc::O_RDWR,
        append: flags & libc::O_APPEND != 0,
    };
    let key = key_of(&st);
    let name = String::from_utf8_lossy(&path);
    let handle = shim.engine.open(key, &name, backend.clone(), mode);
    Some(Arc::new(Desc { handle, backend }))
}
