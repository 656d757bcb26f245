//! fsync, fdatasync, sync_file_range, syncfs, sync, ftruncate, ftruncate64,
//! truncate, truncate64, fallocate, fallocate64, posix_fallocate,
//! posix_fallocate64.

use crate::fdtable::is_managed;
use crate::ops::meta;
use crate::real;
use libc::{c_char, c_int, c_uint, off64_t, off_t};

/// # Safety
/// As for `fsync(2)`.
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn fsync(fd: c_int) -> c_int {
    if !is_managed(fd) {
        // SAFETY: the caller's argument.
        return unsafe { real::fsync(fd) };
    }
    meta::fsync("fsync", fd, false)
}

/// # Safety
/// As for `fdatasync(2)`.
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn fdatasync(fd: c_int) -> c_int {
    if !is_managed(fd) {
        // SAFETY: the caller's argument.
        return unsafe { real::fdatasync(fd) };
    }
    meta::fsync("fdatasync", fd, true)
}

/// # Safety
/// As for `sync_file_range(2)`.
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn sync_file_range(
    fd: c_int,
    off: off64_t,
    n: off64_t,
    flags: c_uint,
) -> c_int {
    meta::sync_file_range(fd, off, n, flags)
}

/// # Safety
/// As for `syncfs(2)`.
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn syncfs(fd: c_int) -> c_int {
    meta::sync_all("syncfs");
    // SAFETY: the caller's argument.
    unsafe { real::syncfs(fd) }
}

/// # Safety
/// As for `sync(2)`.
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn sync() {
    meta::sync_all("sync");
    // SAFETY: no arguments.
    unsafe { real::sync() }
}

macro_rules! ftruncate_hook {
    ($name:ident, $off:ty) => {
        /// # Safety
        /// As for `ftruncate(2)`.
        #[cfg_attr(not(test), no_mangle)]
        pub unsafe extern "C" fn $name(fd: c_int, len: $off) -> c_int {
            if !is_managed(fd) {
                // SAFETY: the caller's arguments.
                return unsafe { real::$name(fd, len) };
            }
            meta::ftruncate(stringify!($name), fd, len as i64)
        }
    };
}
ftruncate_hook!(ftruncate, off_t);
ftruncate_hook!(ftruncate64, off64_t);

macro_rules! truncate_hook {
    ($name:ident, $off:ty) => {
        /// # Safety
        /// As for `truncate(2)`.
        #[cfg_attr(not(test), no_mangle)]
        pub unsafe extern "C" fn $name(path: *const c_char, len: $off) -> c_int {
            // SAFETY: the caller's path; the real stat only reads it.
            let key = unsafe { crate::ops::open::truncating(libc::AT_FDCWD, path, libc::O_TRUNC) };
            // SAFETY: the caller's arguments.
            let r = unsafe { real::$name(path, len) };
            meta::after_path_change(key);
            if key.is_some() {
                crate::counts::hit(stringify!($name));
            }
            r
        }
    };
}
truncate_hook!(truncate, off_t);
truncate_hook!(truncate64, off64_t);

macro_rules! fallocate_hook {
    ($name:ident, $off:ty) => {
        /// # Safety
        /// As for `fallocate(2)`.
        #[cfg_attr(not(test), no_mangle)]
        pub unsafe extern "C" fn $name(fd: c_int, mode: c_int, off: $off, len: $off) -> c_int {
            if !is_managed(fd) {
                // SAFETY: the caller's arguments.
                return unsafe { real::$name(fd, mode, off, len) };
            }
            meta::fallocate(stringify!($name), fd, mode, off as i64, len as i64)
        }
    };
}
fallocate_hook!(fallocate, off_t);
fallocate_hook!(fallocate64, off64_t);

macro_rules! posix_fallocate_hook {
    ($name:ident, $off:ty) => {
        /// # Safety
        /// As for `posix_fallocate(3)`.
        #[cfg_attr(not(test), no_mangle)]
        pub unsafe extern "C" fn $name(fd: c_int, off: $off, len: $off) -> c_int {
            if !is_managed(fd) {
                // SAFETY: the caller's arguments.
                return unsafe { real::$name(fd, off, len) };
            }
            meta::posix_fallocate(stringify!($name), fd, off as i64, len as i64)
        }
    };
}
posix_fallocate_hook!(posix_fallocate, off_t);
posix_fallocate_hook!(posix_fallocate64, off64_t);
