//! Sizes (every stat name), truncation, allocation and sync.

use super::offset;
use crate::policy::{is_regular, key_of};
use crate::{counts, fdtable, guard, real, state};
use conveyor_engine::FileKey;
use libc::c_int;

/// Raises a stat size to include pending data of a managed fd.
pub fn fstat_size(name: &'static str, fd: c_int, size: &mut i64) {
    if let Some(d) = fdtable::get(fd) {
        counts::hit(name);
        let pending = d.handle.pending_end();
        *size = (*size).max(i64::try_from(pending).unwrap_or(i64::MAX));
    }
}

/// Raises a stat-by-path size when the file has pending data here.
pub fn path_size(name: &'static str, key: FileKey, mode: u32, size: &mut i64) {
    let Some(shim) = state::get() else { return };
    if !is_regular(mode) {
        return;
    }
    if let Some(p) = shim.engine.pending_end(key) {
        counts::hit(name);
        *size = (*size).max(i64::try_from(p).unwrap_or(i64::MAX));
    }
}

/// `statx` result: raises its size.
pub fn statx_size(name: &'static str, sx: &mut libc::statx) {
    let key = FileKey {
        dev: libc::makedev(sx.stx_dev_major, sx.stx_dev_minor),
        ino: sx.stx_ino,
    };
    let mut size = sx.stx_size as i64;
    path_size(name, key, u32::from(sx.stx_mode), &mut size);
    sx.stx_size = size as u64;
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
