//! fstat, fstat64, __fxstat, __fxstat64, fstatat, fstatat64, statx, stat,
//! stat64, lstat, lstat64, __xstat, __xstat64, __lxstat, __lxstat64: sizes
//! include data the program wrote that is still pending.

use crate::fdtable::is_managed;
use crate::ops::meta::{fstat_size, path_size, statx_size};
use crate::real;
use conveyor_engine::FileKey;
use libc::{c_char, c_int, c_uint};

macro_rules! fstat_hook {
    ($name:ident, $st:ty) => {
        /// # Safety
        /// As for `fstat(2)`.
        #[no_mangle]
        pub unsafe extern "C" fn $name(fd: c_int, buf: *mut $st) -> c_int {
            // SAFETY: the caller's arguments.
            let r = unsafe { real::$name(fd, buf) };
            if r == 0 && is_managed(fd) {
                // SAFETY: the call succeeded, so `buf` points to a filled struct.
                fstat_size(stringify!($name), fd, unsafe { &mut (*buf).st_size });
            }
            r
        }
    };
}
fstat_hook!(fstat, libc::stat);
fstat_hook!(fstat64, libc::stat64);

macro_rules! fxstat_hook {
    ($name:ident, $st:ty) => {
        /// # Safety
        /// As for glibc's old `__fxstat`.
        #[no_mangle]
        pub unsafe extern "C" fn $name(ver: c_int, fd: c_int, buf: *mut $st) -> c_int {
            // SAFETY: the caller's arguments.
            let r = unsafe { real::$name(ver, fd, buf) };
            if r == 0 && is_managed(fd) {
                // SAFETY: the call succeeded, so `buf` points to a filled struct.
                fstat_size(stringify!($name), fd, unsafe { &mut (*buf).st_size });
            }
            r
        }
    };
}
fxstat_hook!(__fxstat, libc::stat);
fxstat_hook!(__fxstat64, libc::stat64);

/// Patches a path stat result.
///
/// # Safety
/// `buf` points to a struct the stat call filled.
macro_rules! patch {
    ($name:expr, $buf:expr) => {{
        let st = &mut *$buf;
        let key = FileKey {
            dev: st.st_dev,
            ino: st.st_ino,
        };
        path_size($name, key, st.st_mode, &mut st.st_size);
    }};
}

macro_rules! stat_hook {
    ($name:ident, $st:ty) => {
        /// # Safety
        /// As for `stat(2)`.
        #[no_mangle]
        pub unsafe extern "C" fn $name(path: *const c_char, buf: *mut $st) -> c_int {
            // SAFETY: the caller's arguments.
            let r = unsafe { real::$name(path, buf) };
            if r == 0 {
                // SAFETY: the call succeeded, so `buf` points to a filled struct.
                unsafe { patch!(stringify!($name), buf) };
            }
            r
        }
    };
}
stat_hook!(stat, libc::stat);
stat_hook!(stat64, libc::stat64);
stat_hook!(lstat, libc::stat);
stat_hook!(lstat64, libc::stat64);

macro_rules! xstat_hook {
    ($name:ident, $st:ty) => {
        /// # Safety
        /// As for glibc's old `__xstat`.
        #[no_mangle]
        pub unsafe extern "C" fn $name(ver: c_int, path: *const c_char, buf: *mut $st) -> c_int {
            // SAFETY: the caller's arguments.
            let r = unsafe { real::$name(ver, path, buf) };
            if r == 0 {
                // SAFETY: the call succeeded, so `buf` points to a filled struct.
                unsafe { patch!(stringify!($name), buf) };
            }
            r
        }
    };
}
xstat_hook!(__xstat, libc::stat);
xstat_hook!(__xstat64, libc::stat64);
xstat_hook!(__lxstat, libc::stat);
xstat_hook!(__lxstat64, libc::stat64);

macro_rules! fstatat_hook {
    ($name:ident, $st:ty) => {
        /// # Safety
        /// As for `fstatat(2)`.
        #[no_mangle]
        pub unsafe extern "C" fn $name(
            dirfd: c_int,
            path: *const c_char,
            buf: *mut $st,
            flags: c_int,
        ) -> c_int {
            // SAFETY: the caller's arguments.
            let r = unsafe { real::$name(dirfd, path, buf, flags) };
            if r == 0 {
                // SAFETY: the call succeeded, so `buf` points to a filled struct.
                unsafe { patch!(stringify!($name), buf) };
            }
            r
        }
    };
}
fstatat_hook!(fstatat, libc::stat);
fstatat_hook!(fstatat64, libc::stat64);

/// # Safety
/// As for `statx(2)`.
#[no_mangle]
pub unsafe extern "C" fn statx(
    dirfd: c_int,
    path: *const c_char,
    flags: c_int,
    mask: c_uint,
    buf: *mut libc::statx,
) -> c_int {
    // SAFETY: the caller's arguments.
    let r = unsafe { real::statx(dirfd, path, flags, mask, buf) };
    if r == 0 && !buf.is_null() {
        // SAFETY: the call succeeded, so `buf` points to a filled struct.
        statx_size("statx", unsafe { &mut *buf });
    }
    r
}
