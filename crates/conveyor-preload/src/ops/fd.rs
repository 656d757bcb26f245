//! close, dup, fcntl and locks on managed descriptors.

use super::demote;
use crate::desc::Desc;
use crate::{counts, fdtable, guard, real};
use conveyor_engine::Errno;
use libc::{c_int, c_uint, c_ulong};
use std::sync::Arc;

/// Writes a closing description's pending data (close-to-open), returning a
/// deferred error not yet reported through it.
fn settle(d: &Arc<Desc>) -> Result<(), Errno> {
    d.handle.flush()
}

/// `close` of a managed fd: pending data is written first, the real close
/// always happens, and a deferred write error is returned.
pub fn close(fd: c_int) -> c_int {
    let d = fdtable::remove(fd);
    // SAFETY: closing the program's own descriptor, as it asked.
    let r = unsafe { real::close(fd) };
    let Some(d) = d else { return r };
    counts::hit("close");
    let saved = real::errno();
    let settled = guard::run(|| 0, || settle(&d).map(|_| 0));
    if settled < 0 {
        return -1;
    }
    real::set_errno(saved);
    r
}

/// `close_range` and `closefrom`: managed fds in the range are settled.
pub fn close_range(first: c_uint, last: c_uint) {
    for (fd, d) in fdtable::all() {
        let u = fd as c_uint;
        if u >= first && u <= last {
            counts::hit("close_range");
            fdtable::remove(fd);
            let _ = guard::run(|| 0, || settle(&d).map(|_| 0));
        }
    }
}

/// After a call that made `new` a copy of `old`: `new` shares `old`'s
/// description if that is managed; a stale entry at `new` goes away.
pub fn duplicated(old: c_int, new: c_int, name: &'static str) -> c_int {
    if new < 0 {
        return new;
    }
    fdtable::remove(new);
    if let Some(d) = fdtable::get(old) {
        counts::hit(name);
        fdtable::insert(new, d);
    }
    new
}

/// Before `dup2`/`dup3` onto `new`: the kernel closes `new` silently, so a
/// managed description there is settled first (its errors are lost, as
/// the kernel loses them).
pub fn before_dup_onto(old: c_int, new: c_int) {
    if old != new && fdtable::is_managed(new) {
        if let Some(d) = fdtable::remove(new) {
            let _ = guard::run(|| 0, || settle(&d).map(|_| 0));
        }
    }
}

fn lock_op(fd: c_int, unlock: bool, name: &'static str, call: impl FnOnce() -> c_int) -> c_int {
    let Some(d) = fdtable::get(fd) else {
        return call();
    };
    counts::hit(name);
    if unlock {
        // Releasing a lock publishes what was written under it.
        let _ = guard::run(|| 0, || d.handle.flush().map(|_| 0));
        return call();
    }
    let r = call();
    if r == 0 {
        // Taking a lock: what others wrote before is to be seen now.
        d.handle.drop_cache();
    }
    r
}

/// `fcntl` on a managed fd.
///
/// # Safety
/// As for `fcntl(2)`; `arg` is what the caller passed.
pub unsafe fn fcntl(name: &'static str, fd: c_int, cmd: c_int, arg: c_ulong) -> c_int {
    // SAFETY: the caller's arguments, unchanged.
    let call = || unsafe { real::fcntl(fd, cmd, arg) };
    match cmd {
        libc::F_DUPFD | libc::F_DUPFD_CLOEXEC => duplicated(fd, call(), name),
        libc::F_SETFL => {
            if let Some(d) = fdtable::get(fd) {
                let m = d.handle.mode();
                let flags = arg as c_int;
                let append = flags & libc::O_APPEND != 0;
                if append != m.append || flags & libc::O_DIRECT != 0 {
                    counts::hit(name);
                    let _ = guard::run(|| 0, || demote(fd).map(|_| 0));
                }
            }
            call()
        }
        libc::F_SETLK | libc::F_SETLKW | libc::F_OFD_SETLK | libc::F_OFD_SETLKW => {
            let fl = arg as *const libc::flock;
            // SAFETY: for these commands `arg` points to a struct flock.
            let unlock = !fl.is_null() && unsafe { (*fl).l_type } == libc::F_UNLCK as i16;
            lock_op(fd, unlock, name, call)
        }
        _ => call(),
    }
}

/// `flock` on a managed fd.
pub fn flock(fd: c_int, op: c_int) -> c_int {
    // SAFETY: no memory involved.
    lock_op(fd, op & libc::LOCK_UN != 0, "flock", || unsafe {
        real::flock(fd, op)
    })
}

/// `lockf` on a managed fd.
pub fn lockf(name: &'static str, fd: c_int, cmd: c_int, len: i64) -> c_int {
    // SAFETY: no memory involved.
    let call = || unsafe { real::lockf64(fd, cmd, len) };
    match cmd {
        libc::F_ULOCK => lock_op(fd, true, name, call),
        libc::F_LOCK | libc::F_TLOCK => lock_op(fd, false, name, call),
        _ => call(),
    }
}
