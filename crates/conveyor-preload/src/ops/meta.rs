//! Sizes (every stat name), truncation, allocation and sync.

use super::offset;
use crate::policy::{is_regular, key_of};
use crate::{counts, fdtable, guard, real, state};
use conveyor_engine::FileKey;
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
    guard::run(pass, || d.handle.truncate(offset(len)?).map(|_| 0))
}

/// Before something changes a file by path (`truncate`, an `O_TRUNC`
/// open): its pending data goes first. Returns its key to invalidate after.
pub fn before_path_change(st: Option<libc::stat64>) -> Option<FileKey> {
    let shim = state::get()?;
    let st = st.filter(|s| is_regular(s.st_mode))?;
    let key = key_of(&st);
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
