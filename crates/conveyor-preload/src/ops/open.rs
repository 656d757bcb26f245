//! The open family: decide whether the new descriptor is managed.

use super::meta::{after_path_change, before_path_change};
use crate::{counts, fdtable, guard, policy, real, state};
use conveyor_engine::FileKey;
use libc::{c_char, c_int};

/// Before an open: an `O_TRUNC` open of a file with pending data here
/// waits for that data, so the truncation lands after it.
///
/// # Safety
/// `path` is a NUL-terminated string or null, as the caller's open needs.
pub unsafe fn before(dirfd: c_int, path: *const c_char, flags: c_int) -> Option<FileKey> {
    if flags & libc::O_TRUNC == 0 || path.is_null() {
        return None;
    }
    let shim = state::get()?;
    if !guard::within(|i| shim.engine(i).has_files()).unwrap_or(false) {
        return None;
    }
    // SAFETY: `st` is a plain C struct the call fills.
    let mut st: libc::stat64 = unsafe { std::mem::zeroed() };
    // SAFETY: `path` is NUL-terminated (the caller's contract).
    let ok = unsafe { real::fstatat64(dirfd, path, &mut st, 0) } == 0;
    // SAFETY: as above.
    unsafe { before_path_change(dirfd, path, ok.then_some(st)) }
}

/// After an open returned `fd`: forget whatever stale entry had that
/// number, and manage the new descriptor if policy says so.
pub fn after(name: &'static str, fd: c_int, flags: c_int, truncated: Option<FileKey>) -> c_int {
    if fd < 0 {
        return fd;
    }
    fdtable::remove(fd);
    after_path_change(truncated);
    let Some(shim) = state::get() else { return fd };
    if guard::inside() {
        return fd;
    }
    guard::quietly(|i| {
        if let Some(d) = policy::manage(shim, fd, flags, i) {
            counts::hit(name);
            fdtable::insert(fd, d);
            // From now on a fatal signal has data to write first, and
            // `conveyor top` can see this process.
            crate::process::fatal::ensure_thread();
            crate::live::ensure_started();
        } else if let Some(key) = policy::passed_open(shim, fd, flags) {
            // Served by the kernel directly: so is every other
            // descriptor of the file (flushed first).
            super::pass_through_file(key, i);
        }
        super::retire::reap(i);
    });
    fd
}
