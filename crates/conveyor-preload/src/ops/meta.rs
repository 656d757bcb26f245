//! Sizes (every stat name), truncation, allocation, sync, and metadata
//! ordered after data.

use super::{offset, on_fd};
use crate::guard;
use crate::identity::{is_regular, path_key};
use crate::{counts, fdtable, real, state};
use conveyor_engine::{Attrs, Engine, FileKey};
use libc::c_int;

// A stat size includes pending data: the larger of the pending end and
// what storage says. The pending end must be read *before* the real stat:
// data that leaves the pending index is on storage by then, while data
// that left it between a stat and a later look at the index would be
// missed by both (seen as a short fstat of an O_APPEND file).

/// `fstat` of managed `fd` by a stat hook: `stat` is the real call on the
/// caller's buffer, `seen` reads back the attributes it filled and `raise`
/// lifts its size to the pending end. The pending end is read before the
/// call; the program's view of the file tells the engine whether another
/// process changed it.
pub fn stat_fd(
    name: &'static str,
    fd: c_int,
    stat: impl FnOnce() -> c_int,
    seen: impl FnOnce() -> Attrs,
    raise_to: impl FnOnce(u64),
) -> c_int {
    let stat = std::cell::Cell::new(Some(stat));
    let call = || stat.take().map_or(-1, |f| f());
    on_fd(name, fd, call, |d, i| {
        let h = d.handle(i);
        let pending = h.pending_end();
        let r = call();
        if r == 0 {
            h.observe(seen());
            raise_to(pending);
        }
        Ok(r)
    })
}

/// For a stat by path that found file `key` (a regular file when
/// `regular`): if the engine has it, `again` repeats the stat (so that
/// data leaving the pending index in between is counted by one or the
/// other), the attributes it reports (`seen`, if it has them all) tell
/// the engine what the program saw, and `raise_to` lifts the size to the
/// pending end.
pub fn stat_path(
    name: &'static str,
    key: FileKey,
    regular: bool,
    again: impl FnOnce(),
    seen: impl FnOnce() -> Option<Attrs>,
    raise_to: impl FnOnce(u64),
) {
    let Some(shim) = state::get() else { return };
    if !regular {
        return;
    }
    guard::quietly(|i| {
        let engine = shim.engine(i);
        let pending = engine.pending_end(key);
        // A close behind may have finished (and the engine let the file
        // go) between the first stat and here: that stat is looked at
        // again too.
        let behind = super::behind::claims(key, i);
        if pending.is_none() && !behind {
            return;
        }
        counts::hit(name);
        // A close in flight, or metadata held back, is set first: the
        // repeated stat sees it.
        super::behind::settle_file(key, i);
        again();
        if let Some(p) = pending {
            if let Some(a) = seen() {
                engine.observe(key, a);
            }
            raise_to(p);
        }
    });
}

/// `ftruncate` on a managed fd.
pub fn ftruncate(name: &'static str, fd: c_int, len: i64) -> c_int {
    // SAFETY: no memory involved.
    let pass = || unsafe { real::ftruncate64(fd, len) };
    on_fd(name, fd, pass, |d, i| {
        d.handle(i).truncate(offset(len)?).map(|_| 0)
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
    guard::within(|i| {
        let engine = shim.engine(i);
        engine.pending_end(key)?;
        super::behind::settle_file(key, i);
        engine.flush_file(key);
        Some(key)
    })
    .flatten()
}

/// After such a change: cached data and the known size are stale.
pub fn after_path_change(key: Option<FileKey>) {
    if let (Some(k), Some(shim)) = (key, state::get()) {
        guard::quietly(|i| shim.engine(i).invalidate_file(k));
    }
}

/// `fallocate` on a managed fd.
pub fn fallocate(name: &'static str, fd: c_int, mode: c_int, off: i64, len: i64) -> c_int {
    // SAFETY: no memory involved.
    let pass = || unsafe { real::fallocate64(fd, mode, off, len) };
    on_fd(name, fd, pass, |d, i| {
        d.handle(i)
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
    let r = on_fd(name, fd, pass, |d, i| {
        let h = d.handle(i);
        match h.flush() {
            Err(e) if e != conveyor_engine::Errno::HANDED_OVER => return Ok(e.0),
            r => r?,
        }
        let r = pass();
        h.invalidate();
        Ok(r)
    });
    // -1 only from a failure inside the shim itself (a panic: EIO).
    if r < 0 {
        libc::EIO
    } else {
        r
    }
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
    on_fd(name, fd, pass, |d, i| {
        // A barrier for relaxed close: files closed before it are written.
        super::behind::settle_all(i);
        d.handle(i).sync(data_only).map(|_| 0)
    })
}

/// `sync_file_range`: waits for pending data when asked to wait.
pub fn sync_file_range(fd: c_int, off: i64, n: i64, flags: libc::c_uint) -> c_int {
    // SAFETY: no memory involved.
    let call = || unsafe { real::sync_file_range(fd, off, n, flags) };
    let waits = flags & (libc::SYNC_FILE_RANGE_WAIT_AFTER | libc::SYNC_FILE_RANGE_WRITE) != 0;
    super::before_fd("sync_file_range", fd, call, |d, i| {
        if waits {
            d.handle(i).flush()?;
        }
        Ok(())
    })
}

/// `sync`/`syncfs`: every managed file's pending data first.
pub fn sync_all(name: &'static str) {
    if let Some(shim) = state::get() {
        counts::hit(name);
        guard::quietly(|i| {
            super::behind::settle_all(i);
            shim.engine(i).flush_all()
        });
    }
}

/// Writes the pending data of file `key`, if it has any, before a call
/// that sets metadata a later data write would change (times, the set-id
/// bits, capabilities): the data lands first, as without the shim. A
/// deferred write error stays for the file's next write, fsync or close.
fn settle_file(name: &'static str, engine: &Engine, key: FileKey) {
    if engine.pending_end(key).is_some() {
        counts::hit(name);
        engine.flush_file(key);
    }
}

/// Before a metadata change through descriptor `fd`.
pub fn before_meta_fd(name: &'static str, fd: c_int) {
    let Some(shim) = state::get() else { return };
    let d = fdtable::get(fd);
    guard::quietly(|i| {
        let engine = shim.engine(i);
        if let Some(d) = d {
            // The program's call on `fd` is running: its data can go
            // through `fd` itself (and metadata held back before this
            // call, which comes after it).
            return crate::backend::lend(fd, || {
                super::behind::before_op(&d, i);
                settle_file(name, engine, d.key)
            });
        }
        // Another descriptor of a managed file (O_PATH, say): only when
        // data is waiting anywhere, so a program writing nothing pays nothing.
        if !engine.has_pending() {
            return;
        }
        if let Some(st) = crate::identity::fstat(fd).filter(|st| is_regular(st.st_mode)) {
            if let Some(key) = crate::identity::fd_key(fd, &st) {
                settle_file(name, engine, key);
            }
        }
    });
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
    guard::quietly(|i| {
        let engine = shim.engine(i);
        if !engine.has_pending() && !super::behind::any() {
            return;
        }
        // SAFETY: `st` is a plain C struct the call fills.
        let mut st: libc::stat64 = unsafe { std::mem::zeroed() };
        let flags = if follow { 0 } else { libc::AT_SYMLINK_NOFOLLOW };
        // SAFETY: `path` is NUL-terminated (the caller's contract).
        if unsafe { real::fstatat64(dirfd, path, &mut st, flags) } == 0 && is_regular(st.st_mode) {
            // SAFETY: as above.
            if let Some(key) = unsafe { path_key(dirfd, path, st.st_dev, st.st_ino) } {
                super::behind::settle_file(key, i);
                settle_file(name, engine, key);
            }
        }
    });
}
