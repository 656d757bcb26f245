//! open, open64, openat, openat64, __open_2, __open64_2, __openat_2,
//! __openat64_2, creat, creat64, and the descriptors glibc opens itself
//! for a program: mkstemp, mkostemp, mkstemps, mkostemps (and their `64`
//! names), whose internal open no hook sees (GNU `sed -i` and `sort`
//! write their output to such a file).

use crate::ops::open::{after, before};
use crate::real;
use libc::{c_char, c_int, mode_t};

const CREAT: c_int = libc::O_CREAT | libc::O_WRONLY | libc::O_TRUNC;

macro_rules! open_hook {
    ($name:ident) => {
        /// Hooked open.
        ///
        /// # Safety
        /// As for `open(2)`.
        #[cfg_attr(not(test), no_mangle)]
        pub unsafe extern "C" fn $name(path: *const c_char, flags: c_int, mode: mode_t) -> c_int {
            // SAFETY: the caller's arguments.
            let t = unsafe { before(libc::AT_FDCWD, path, flags) };
            // SAFETY: as above.
            let fd = unsafe { real::$name(path, flags, mode) };
            after(stringify!($name), fd, flags, t)
        }
    };
}

macro_rules! openat_hook {
    ($name:ident) => {
        /// Hooked openat.
        ///
        /// # Safety
        /// As for `openat(2)`.
        #[cfg_attr(not(test), no_mangle)]
        pub unsafe extern "C" fn $name(
            dirfd: c_int,
            path: *const c_char,
            flags: c_int,
            mode: mode_t,
        ) -> c_int {
            // SAFETY: the caller's arguments.
            let t = unsafe { before(dirfd, path, flags) };
            // SAFETY: as above.
            let fd = unsafe { real::$name(dirfd, path, flags, mode) };
            after(stringify!($name), fd, flags, t)
        }
    };
}

macro_rules! open2_hook {
    ($name:ident) => {
        /// Hooked fortified open.
        ///
        /// # Safety
        /// As for `open(2)` without a mode.
        #[cfg_attr(not(test), no_mangle)]
        pub unsafe extern "C" fn $name(path: *const c_char, flags: c_int) -> c_int {
            // SAFETY: the caller's arguments.
            let t = unsafe { before(libc::AT_FDCWD, path, flags) };
            // SAFETY: as above.
            let fd = unsafe { real::$name(path, flags) };
            after(stringify!($name), fd, flags, t)
        }
    };
}

macro_rules! openat2_hook {
    ($name:ident) => {
        /// Hooked fortified openat.
        ///
        /// # Safety
        /// As for `openat(2)` without a mode.
        #[cfg_attr(not(test), no_mangle)]
        pub unsafe extern "C" fn $name(dirfd: c_int, path: *const c_char, flags: c_int) -> c_int {
            // SAFETY: the caller's arguments.
            let t = unsafe { before(dirfd, path, flags) };
            // SAFETY: as above.
            let fd = unsafe { real::$name(dirfd, path, flags) };
            after(stringify!($name), fd, flags, t)
        }
    };
}

macro_rules! creat_hook {
    ($name:ident) => {
        /// Hooked creat.
        ///
        /// # Safety
        /// As for `creat(2)`.
        #[cfg_attr(not(test), no_mangle)]
        pub unsafe extern "C" fn $name(path: *const c_char, mode: mode_t) -> c_int {
            // SAFETY: the caller's arguments.
            let t = unsafe { before(libc::AT_FDCWD, path, CREAT) };
            // SAFETY: as above.
            let fd = unsafe { real::$name(path, mode) };
            after(stringify!($name), fd, CREAT, t)
        }
    };
}

open_hook!(open);
open_hook!(open64);
openat_hook!(openat);
openat_hook!(openat64);
open2_hook!(__open_2);
open2_hook!(__open64_2);
openat2_hook!(__openat_2);
openat2_hook!(__openat64_2);
creat_hook!(creat);
creat_hook!(creat64);

/// The `O_*` flags of a file mkstemp and its kin create.
const TEMP: c_int = libc::O_RDWR | libc::O_CREAT | libc::O_EXCL;

macro_rules! mkstemp_hook {
    ($name:ident($($a:ident: $t:ty),*), $flags:expr) => {
        /// Hooked temporary-file creation.
        ///
        /// # Safety
        /// As for the C function of this name.
        #[cfg_attr(not(test), no_mangle)]
        pub unsafe extern "C" fn $name(template: *mut c_char $(, $a: $t)*) -> c_int {
            // SAFETY: no path to look at before the call (it is made up).
            let t = unsafe { before(libc::AT_FDCWD, std::ptr::null(), 0) };
            // SAFETY: the caller's arguments.
            let fd = unsafe { real::$name(template $(, $a)*) };
            after(stringify!($name), fd, $flags, t)
        }
    };
}

mkstemp_hook!(mkstemp(), TEMP);
mkstemp_hook!(mkstemp64(), TEMP);
mkstemp_hook!(mkostemp(flags: c_int), TEMP | flags);
mkstemp_hook!(mkostemp64(flags: c_int), TEMP | flags);
mkstemp_hook!(mkstemps(suffix: c_int), TEMP);
mkstemp_hook!(mkstemps64(suffix: c_int), TEMP);
mkstemp_hook!(mkostemps(suffix: c_int, flags: c_int), TEMP | flags);
mkstemp_hook!(mkostemps64(suffix: c_int, flags: c_int), TEMP | flags);
