//! Sizes (every stat name), truncation, allocation and sync.

use super::offset;
use crate::policy::{is_regular, path_key};
use crate::{counts, fdtable, guard, real, state};
use conveyor_engine::{Attrs, FileKey};
use libc::c_int;

// A stat size includes pending data: the larger of the pending end and
// what storage says. The pending end must be read *before* the real stat:
// data that leaves the pending index is on storage by then, while data
// that left it between a stat and a later look at the index would be
// missed by both (seen as a short fstat of an O_APPEND file).

/// End of the pending data of a managed fd's file (before the real fstat).
pub fn fstat_pending(fd: c_int) -> Option<u64> {
    fdtable::get(fd).map(|d| d.handle.pending_end())
}

/// End of the pending data of file `key` if it is open here and regular.
/// A stat by path learns the key from a first real call, so it asks again
/// after this when it gets `Some`.
pub fn path_pending(key: FileKey, mode: u32) -> Option<u64> {
    let shim = state::get()?;
    if !is_regular(mode) {
        return None;
    }
    shim.engine.pending_end(key)
}

/// The attributes of a stat result (any of the stat structs).
macro_rules! attrs_of {
    ($st:expr) => {
        conveyor_engine::Attrs {
            size: u64::try_from($st.st_size).unwrap_or(0),
            mtime_ns: i128::from($st.st_mtime) * 1_000_000_000 + i128::from($st.st_mtime_nsec),
            ctime_ns: i128::from($st.st_ctime) * 1_000_000_000 + i128::from($st.st_ctime_nsec),
        }
    };
}
pub(crate) use attrs_of;

/// The program saw managed `fd`'s file as `a` (its `fstat`): a change
/// that this process's writes do not explain drops the cached data.
pub fn observe_fd(fd: c_int, a: Attrs) {
    if let Some(d) = fdtable::get(fd) {
        let _ = guard::run(|| 0, || Ok(i32::from(d.handle.observe(a))));
    }
}

/// As `observe_fd`, for file `key` seen by path.
pub fn observe_key(key: FileKey, a: Attrs) {
    if let Some(shim) = state::get() {
        let _ = guard::run(
            || 0,
            || {
                shim.engine.observe(key, a);
                Ok(0)
            },
        );
    }
}

/// Raises `size` to `pending` (a managed call of hook `name`).
pub fn raise(name: &'static str, pending: u64, size: &mut i64) {
    counts::hit(name);
    *size = (*size).max(i64::try_from(pending).unwrap_or(i64::MAX));
}

/// `ftruncate` on a managed fd.
pub fn ftruncate(name: &'static str, fd: c_int, len: i64) -> c_int {
    // SAFETY: no memory involved.
    let pass = || unsafe { real::ftruncate64(fd, len) };
    let Some(d) = fdtable::get(fd) else {
        return pass();
    };
    counts::hit(name);
    guard::run(pass, || {
        super::on_desc(fd, &d, || d.handle.truncate(offset(len)?).map(|_| 0))
    })
}

/// Before something changes a file by path (`truncate`, an `O_TRUNC`
/// open of `dirfd`, `path`, whose stat is `st`): its pending data goes
/// first. Returns its key to invalidate after.
///
/// # Safety
/// `path` is NUL-terminated.
pub unsafe fn before_path_change(
    dirfd: c_int,
    path: *const libc::c_char,
    st: Option<libc::stat64>,
) -> Option<FileKey> {
    let shim = state::get()?;
    let st = st.filter(|s| is_regular(s.st_mode))?;
    // SAFETY: `path` is NUL-terminated (the caller's contract).
    let key = unsafe { path_key(dirfd, path, st.st_dev, st.st_ino) }?;
    shim.engine.pending_end(key)?;
    let _ = guard::run(
        || 0,
        || {
            shim.engine.flush_file(key);
            Ok(0)
        },
    );
    Some(key)
}

/// After such a change: cached data and the known size are stale.
pub fn after_path_change(key: Option<FileKey>) {
    if let (Some(k), Some(shim)) = (key, state::get()) {
        shim.engine.invalidate_file(k);
    }
}

/// `fallocate` on a managed fd.
pub fn fallocate(name: &'static str, fd: c_int, mode: c_int, off: i64, len: i64) -> c_int {
    // SAFETY: no memory involved.
    let pass = || unsafe { real::fallocate64(fd, mode, off, len) };
    let Some(d) = fdtable::get(fd) else {
        return pass();
    };
    counts::hit(name);
    guard::run(pass, || {
        d.handle
            .allocate(mode, offset(off)?, offset(len)?)
            .map(|_| 0)
    })
}

/// `posix_fallocate` on a managed fd: pending data first, then glibc's own
/// implementation (which emulates where the filesystem cannot allocate).
/// Returns an error number, not -1.
pub fn posix_fallocate(name: &'static str, fd: c_int, off: i64, len: i64) -> c_int {
    // SAFETY: no memory involved.
    let pass = || unsafe { real::posix_fallocate64(fd, off, len) };
    let Some(d) = fdtable::get(fd) else {
        return pass();
    };
    counts::hit(name);
    if guard::run(|| 0, || d.handle.flush().map(|_| 0)) < 0 {
        return real::errno();
    }
    let r = pass();
    d.handle.invalidate();
    r
}

/// `fsync`/`fdatasync` on a managed fd.
pub fn fsync(name: &'static str, fd: c_int, data_only: bool) -> c_int {
    // SAFETY: no memory involved.
    let pass = || unsafe {
        if data_only {
            real::fdatasync(fd)
        } else {
            real::fsync(fd)
        }
    };
    let Some(d) = fdtable::get(fd) else {
        return pass();
    };
    counts::hit(name);
    guard::run(pass, || d.handle.sync(data_only).map(|_| 0))
}

/// `sync_file_range`: waits for pending data when asked to wait.
pub fn sync_file_range(fd: c_int, off: i64, n: i64, flags: libc::c_uint) -> c_int {
    // SAFETY: no memory involved.
    let pass = || unsafe { real::sync_file_range(fd, off, n, flags) };
    if let Some(d) = fdtable::get(fd) {
        counts::hit("sync_file_range");
        if flags & (libc::SYNC_FILE_RANGE_WAIT_AFTER | libc::SYNC_FILE_RANGE_WRITE) != 0 {
            let r = guard::run(|| 0, || d.handle.flush().map(|_| 0));
            if r < 0 {
                return r;
            }
        }
    }
    pass()
}

/// `sync`/`syncfs`: every managed file's pending data first.
pub fn sync_all(name: &'static str) {
    if let Some(shim) = state::get() {
        counts::hit(name);
        let _ = guard::run(
            || 0,
            || {
                shim.engine.flush_all();
                Ok(0)
            },
        );
    }
}

/// Writes the pending data of file `key`, if it has any, before a call
/// that sets metadata a later data write would change (times, the set-id
/// bits, capabilities): the data lands first, as without the shim. A
/// deferred write error stays for the file's next write, fsync or close.
fn settle_file(name: &'static str, key: FileKey) {
    let Some(shim) = state::get() else { return };
    if shim.engine.pending_end(key).is_none() {
        return;
    }
    counts::hit(name);
    let _ = guard::run(
        || 0,
        || {
            shim.engine.flush_file(key);
            Ok(0)
        },
    );
}

/// Before a metadata change through descriptor `fd`.
pub fn before_meta_fd(name: &'static str, fd: c_int) {
    if let Some(d) = fdtable::get(fd) {
        settle_file(name, d.key);
        return;
    }
    // Another descriptor of a managed file (O_PATH, say): only when data
    // is waiting anywhere, so that a program writing nothing pays nothing.
    let Some(shim) = state::get() else { return };
    if !shim.engine.has_pending() {
        return;
    }
    if let Some(st) = crate::policy::fstat(fd).filter(|st| is_regular(st.st_mode)) {
        if let Some(key) = crate::policy::fd_key(fd, &st) {
            settle_file(name, key);
        }
    }
}

/// Before a metadata change of `path` (relative to `dirfd`; `follow`:
/// symbolic links followed). `path` null means `dirfd` itself.
///
/// # Safety
/// `path` is null or NUL-terminated, as the caller's call requires.
pub unsafe fn before_meta_path(
    name: &'static str,
    dirfd: c_int,
    path: *const libc::c_char,
    follow: bool,
) {
    if path.is_null() {
        return before_meta_fd(name, dirfd);
    }
    let Some(shim) = state::get() else { return };
    if !shim.engine.has_pending() {
        return;
    }
    // SAFETY: `st` is a plain C struct the call fills.
    let mut st: libc::stat64 = unsafe { std::mem::zeroed() };
    let flags = if follow { 0 } else { libc::AT_SYMLINK_NOFOLLOW };
    // SAFETY: `path` is NUL-terminated (the caller's contract).
    if unsafe { real::fstatat64(dirfd, path, &mut st, flags) } == 0 && is_regular(st.st_mode) {
        // SAFETY: as above (a regular file: no link to follow or not).
        if let Some(key) = unsafe { path_key(dirfd, path, st.st_dev, st.st_ino) } {
            settle_file(name, key);
        }
    }
}
