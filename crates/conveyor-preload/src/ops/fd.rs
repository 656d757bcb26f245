//! close, dup, fcntl and locks on managed descriptors.

use super::{before_fd, pass_through_file_of};
use crate::desc::Desc;
use crate::guard::{self, Inside};
use crate::{counts, fdtable, real};
use conveyor_engine::Errno;
use libc::{c_int, c_uint, c_ulong};
use std::sync::Arc;

/// Writes a closing description's pending data (close-to-open) and, when
/// nothing else holds it and it was the file's last description, closes
/// the private descriptors too; then lets go of it, inside the shim (the
/// last reference ends the engine's handle, which takes the file's lock).
/// Returns a deferred write error not yet reported through it, or the
/// error of that close.
fn settle(d: Arc<Desc>, inside: &Inside) -> Result<(), Errno> {
    if !d.handle(inside).is_last() {
        // Another description of the file stays open, and the file may
        // be served by this one's backend: one that works through the
        // program's descriptor takes a duplicate before that closes.
        d.backend.take();
    }
    let flushed = d.handle(inside).flush();
    super::behind::apply_meta(&d, inside);
    // Another fd of the description, or a call still running on it, keeps
    // using the backend.
    let released = if Arc::strong_count(&d) == 1 {
        crate::registry::release_if_last(&d, inside)
    } else {
        Ok(())
    };
    drop(d);
    flushed.and(released)
}

/// `close` of a descriptor the shim does not manage. When private
/// descriptors are kept for a file handed to the kernel (`retire`), the
/// program's close may be the last of that file: they are closed right
/// after it, so a duplicate of the program's description never outlives
/// the program's own descriptor (and its `flock` locks with it).
pub fn close_unmanaged(fd: c_int) -> c_int {
    // SAFETY: closing the program's own descriptor, as it asked.
    let r = unsafe { real::close(fd) };
    if super::retire::any() {
        let saved = real::errno();
        guard::quietly(super::retire::reap);
        real::set_errno(saved);
    }
    r
}

/// `close` of a managed fd. Before the program's descriptor is closed, its
/// pending data is written and the shim's private descriptors of the file
/// are closed (when no other description uses them): filesystems that
/// commit a file when a descriptor closes (s3fs uploads the object, rclone
/// transfers it) then see the data and the closes in the order the plain
/// program would produce, all before `close` returns, and none of them
/// races the program's next `rename` or `chmod` of the path. The real
/// close always happens; a deferred write error is returned.
pub fn close(fd: c_int) -> c_int {
    let Some(d) = fdtable::remove(fd) else {
        // SAFETY: closing the program's own descriptor, as it asked.
        return unsafe { real::close(fd) };
    };
    counts::hit("close");
    let d = match super::behind::close(fd, d) {
        Ok(r) => return r,
        Err(d) => d,
    };
    let settled = guard::settle(|i| crate::backend::lend(fd, || settle(d, i)));
    // SAFETY: closing the program's own descriptor, as it asked.
    let r = unsafe { real::close(fd) };
    let saved = real::errno();
    guard::quietly(super::retire::reap);
    match settled {
        Err(e) => {
            real::set_errno(e.0);
            -1
        }
        Ok(()) => {
            real::set_errno(saved);
            r
        }
    }
}

/// `close_range` and `closefrom` (`name`): managed fds in the range are
/// settled.
pub fn close_range(name: &'static str, first: c_uint, last: c_uint) {
    for (fd, d) in fdtable::all() {
        let u = fd as c_uint;
        if u >= first && u <= last {
            counts::hit(name);
            fdtable::remove(fd);
            guard::quietly(|i| {
                let _ = crate::backend::lend(fd, || settle(d, i));
            });
        }
    }
}

/// Before `dup2`/`dup3` onto `new`, which the kernel then closes silently:
/// a managed description there that works through `new` itself takes its
/// private duplicate first (it is settled after the call).
pub fn before_replace(new: c_int) {
    if let Some(d) = fdtable::get(new) {
        guard::quietly(|i| {
            if d.backend.take() < 0 {
                // No duplicate could be had: what is pending goes through
                // `new` now, before the number changes.
                let _ = crate::backend::lend(new, || d.handle(i).flush());
            }
        });
    }
}

/// The parts of `first..=last` between the shim's private descriptors
/// (ascending), or `None` when none of them lies in it.
fn gaps(first: c_uint, last: c_uint) -> Option<Vec<(c_uint, c_uint)>> {
    let keep: Vec<c_uint> = crate::backend::private_fds()
        .into_iter()
        .filter_map(|f| c_uint::try_from(f).ok())
        .filter(|f| (first..=last).contains(f))
        .collect();
    if keep.is_empty() {
        return None;
    }
    let mut out = Vec::new();
    let mut lo = first;
    for k in keep {
        if k > lo {
            out.push((lo, k - 1));
        }
        // A descriptor number is below c_uint::MAX.
        lo = k + 1;
    }
    if lo <= last {
        out.push((lo, last));
    }
    Some(out)
}

/// The real `close_range`, leaving the shim's private descriptors open:
/// the program cannot know them, so no range it closes includes them.
pub fn close_range_real(first: c_uint, last: c_uint, flags: c_int) -> c_int {
    let Some(gaps) = gaps(first, last) else {
        // SAFETY: the caller's arguments.
        return unsafe { real::close_range(first, last, flags) };
    };
    for (lo, hi) in gaps {
        // SAFETY: closes only the program's descriptors.
        let r = unsafe { real::close_range(lo, hi, flags) };
        if r < 0 {
            return r;
        }
    }
    0
}

/// The real `closefrom`, leaving the shim's private descriptors open.
pub fn closefrom_real(low: c_int) {
    let Some(gaps) = gaps(low.max(0) as c_uint, c_uint::MAX) else {
        // SAFETY: the caller's argument.
        return unsafe { real::closefrom(low) };
    };
    for (lo, hi) in gaps {
        if hi == c_uint::MAX {
            // SAFETY: closes only the program's descriptors (above every
            // private one).
            unsafe { real::closefrom(lo as c_int) };
            continue;
        }
        // SAFETY: as above, below a private one.
        if unsafe { real::close_range(lo, hi, 0) } < 0 {
            for fd in lo..=hi {
                // SAFETY: as above (a kernel without close_range).
                unsafe { real::close(fd as c_int) };
            }
        }
    }
}

/// After a call that made `new` a copy of `old`: `new` shares `old`'s
/// description if that is managed. A description that was managed at `new`
/// (`dup2`/`dup3` close it silently) is settled, its errors lost as the
/// kernel loses them. Nothing changes when the call failed: `new` is then
/// still what it was.
pub fn duplicated(old: c_int, new: c_int, name: &'static str) -> c_int {
    if new < 0 {
        return new;
    }
    let d = fdtable::get(old);
    if let Some(d) = d.as_ref().filter(|_| new <= crate::policy::LAST_STD_FD) {
        // A standard stream's number: stdio and shell builtins will write
        // and read it where no hook sees them (bash's `{ echo; } > f`), at
        // the kernel's offset, from now on.
        guard::quietly(|i| crate::backend::lend(old, || super::expose(old, d, i)));
    }
    if new == 1 && d.is_some() {
        // A selected file moved onto stdout (`sort -o`).
        super::stream::widen_stdout();
    }
    let replaced = match &d {
        Some(d) => {
            counts::hit(name);
            // Two of the program's descriptors now share the description:
            // `old` may close while `new` lives on.
            guard::quietly(|_| {
                d.backend.take();
            });
            fdtable::insert(new, Arc::clone(d))
        }
        None => fdtable::remove(new),
    };
    if let Some(r) = replaced {
        if !d.is_some_and(|d| Arc::ptr_eq(&d, &r)) {
            guard::quietly(|i| {
                let _ = settle(r, i);
            });
        }
    }
    new
}

fn lock_op(fd: c_int, unlock: bool, name: &'static str, call: impl FnOnce() -> c_int) -> c_int {
    if unlock {
        // Releasing a lock publishes what was written under it (and, with
        // relaxed close, what every file closed before it).
        return before_fd(name, fd, call, |d, i| {
            super::behind::settle_all(i);
            d.handle(i).flush()
        });
    }
    let Some(d) = fdtable::get(fd) else {
        return call();
    };
    counts::hit(name);
    // A lock is a barrier for relaxed close, and a description that held
    // one closes as the program's close does (the duplicate's later close
    // would release the program's locks at another moment).
    d.set_locked();
    guard::quietly(super::behind::settle_all);
    let r = call();
    if r == 0 {
        // Taking a lock: what others wrote before is to be seen now.
        guard::quietly(|i| d.handle(i).drop_cache());
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
            let flags = arg as c_int;
            before_fd(name, fd, call, |d, i| {
                let append = flags & libc::O_APPEND != 0;
                if append != d.handle(i).mode().append || flags & libc::O_DIRECT != 0 {
                    let _ = pass_through_file_of(fd, i);
                }
                Ok(())
            })
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
