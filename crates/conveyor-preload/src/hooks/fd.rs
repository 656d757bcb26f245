//! close, close_range, closefrom, dup, dup2, dup3, fcntl, fcntl64, flock,
//! lockf, lockf64.

use crate::fdtable::is_managed;
use crate::ops::fd as ops;
use crate::real;
use libc::{c_int, c_uint, c_ulong, off64_t, off_t};

/// # Safety
/// As for `close(2)`.
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn close(fd: c_int) -> c_int {
    if !is_managed(fd) {
        return ops::close_unmanaged(fd);
    }
    ops::close(fd)
}

/// # Safety
/// As for `close_range(2)`.
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn close_range(first: c_uint, last: c_uint, flags: c_int) -> c_int {
    let known = (libc::CLOSE_RANGE_CLOEXEC | libc::CLOSE_RANGE_UNSHARE) as c_int;
    // Only when the kernel will close them (it refuses these arguments).
    if flags & !known == 0 && flags & libc::CLOSE_RANGE_CLOEXEC as c_int == 0 && first <= last {
        ops::close_range("close_range", first, last);
    }
    ops::close_range_real(first, last, flags)
}

/// # Safety
/// As for `closefrom(3)`.
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn closefrom(low: c_int) {
    ops::close_range("closefrom", low.max(0) as c_uint, c_uint::MAX);
    ops::closefrom_real(low);
}

/// # Safety
/// As for `dup(2)`.
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn dup(fd: c_int) -> c_int {
    // SAFETY: the caller's argument.
    let new = unsafe { real::dup(fd) };
    ops::duplicated(fd, new, "dup")
}

/// # Safety
/// As for `dup2(2)`.
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn dup2(old: c_int, new: c_int) -> c_int {
    if old != new {
        ops::before_replace(new);
    }
    // SAFETY: the caller's arguments.
    let r = unsafe { real::dup2(old, new) };
    if old == new {
        return r;
    }
    ops::duplicated(old, r, "dup2")
}

/// # Safety
/// As for `dup3(2)`.
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn dup3(old: c_int, new: c_int, flags: c_int) -> c_int {
    ops::before_replace(new);
    // SAFETY: the caller's arguments.
    let r = unsafe { real::dup3(old, new, flags) };
    ops::duplicated(old, r, "dup3")
}

/// # Safety
/// As for `fcntl(2)`; the optional argument arrives as `arg`.
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn fcntl(fd: c_int, cmd: c_int, arg: c_ulong) -> c_int {
    if !is_managed(fd) && cmd != libc::F_DUPFD && cmd != libc::F_DUPFD_CLOEXEC {
        // SAFETY: the caller's arguments.
        return unsafe { real::fcntl(fd, cmd, arg) };
    }
    // SAFETY: as above.
    unsafe { ops::fcntl("fcntl", fd, cmd, arg) }
}

/// # Safety
/// As for `fcntl(2)`.
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn fcntl64(fd: c_int, cmd: c_int, arg: c_ulong) -> c_int {
    if !is_managed(fd) && cmd != libc::F_DUPFD && cmd != libc::F_DUPFD_CLOEXEC {
        // SAFETY: the caller's arguments.
        return unsafe { real::fcntl64(fd, cmd, arg) };
    }
    // SAFETY: as above.
    unsafe { ops::fcntl("fcntl64", fd, cmd, arg) }
}

/// # Safety
/// As for `flock(2)`.
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn flock(fd: c_int, op: c_int) -> c_int {
    if !is_managed(fd) {
        // SAFETY: the caller's arguments.
        return unsafe { real::flock(fd, op) };
    }
    ops::flock(fd, op)
}

/// # Safety
/// As for `lockf(3)`.
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn lockf(fd: c_int, cmd: c_int, len: off_t) -> c_int {
    if !is_managed(fd) {
        // SAFETY: the caller's arguments.
        return unsafe { real::lockf(fd, cmd, len) };
    }
    ops::lockf("lockf", fd, cmd, len)
}

/// # Safety
/// As for `lockf(3)`.
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn lockf64(fd: c_int, cmd: c_int, len: off64_t) -> c_int {
    if !is_managed(fd) {
        // SAFETY: the caller's arguments.
        return unsafe { real::lockf64(fd, cmd, len) };
    }
    ops::lockf("lockf64", fd, cmd, len)
}
