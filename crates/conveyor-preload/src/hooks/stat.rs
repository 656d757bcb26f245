//! fstat, fstat64, __fxstat, __fxstat64, fstatat, fstatat64, statx, stat,
//! stat64, lstat, lstat64, __xstat, __xstat64, __lxstat, __lxstat64: sizes
//! include data the program wrote that is still pending.

use crate::fdtable::is_managed;
use crate::ops::meta::{attrs_of, fstat_pending, observe_fd, observe_key, path_pending, raise};
use crate::policy::path_key;
use crate::real;
use libc::{c_char, c_int, c_uint};

macro_rules! fstat_hook {
    ($name:ident, $st:ty) => {
        /// # Safety
        /// As for `fstat(2)`.
        #[no_mangle]
        pub unsafe extern "C" fn $name(fd: c_int, buf: *mut $st) -> c_int {
            let pending = if is_managed(fd) {
                fstat_pending(fd)
            } else {
                None
            };
            // SAFETY: the caller's arguments.
            let r = unsafe { real::$name(fd, buf) };
            if let (0, Some(p)) = (r, pending) {
                // SAFETY: the call succeeded, so `buf` points to a filled struct.
                observe_fd(fd, attrs_of!(unsafe { &*buf }));
                // SAFETY: as above.
                raise(stringify!($name), p, unsafe { &mut (*buf).st_size });
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
            let pending = if is_managed(fd) {
                fstat_pending(fd)
            } else {
                None
            };
            // SAFETY: the caller's arguments.
            let r = unsafe { real::$name(ver, fd, buf) };
            if let (0, Some(p)) = (r, pending) {
                // SAFETY: the call succeeded, so `buf` points to a filled struct.
                observe_fd(fd, attrs_of!(unsafe { &*buf }));
                // SAFETY: as above.
                raise(stringify!($name), p, unsafe { &mut (*buf).st_size });
            }
            r
        }
    };
}
fxstat_hook!(__fxstat, libc::stat);
fxstat_hook!(__fxstat64, libc::stat64);

/// Patches a path stat result: if the file is open here, the pending end
/// is read and the stat made again (`$again`), so that data leaving the
/// pending index in between is counted by one or the other. Should the
/// second call fail or find another file, the first result stays.
///
/// # Safety
/// `buf` points to a struct the stat call filled.
macro_rules! patch {
    ($name:expr, $buf:expr, $again:expr, $dirfd:expr, $path:expr) => {{
        let first = *$buf;
        let key = path_key($dirfd, $path, first.st_dev, first.st_ino);
        if let Some((key, p)) = key.and_then(|k| path_pending(k, first.st_mode).map(|p| (k, p))) {
            let saved = real::errno();
            if $again != 0 || (*$buf).st_dev != first.st_dev || (*$buf).st_ino != first.st_ino {
                *$buf = first;
            }
            real::set_errno(saved);
            observe_key(key, attrs_of!(*$buf));
            raise($name, p, &mut (*$buf).st_size);
        }
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
                unsafe {
                    patch!(
                        stringify!($name),
                        buf,
                        real::$name(path, buf),
                        libc::AT_FDCWD,
                        path
                    )
                };
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
                unsafe {
                    patch!(
                        stringify!($name),
                        buf,
                        real::$name(ver, path, buf),
                        libc::AT_FDCWD,
                        path
                    )
                };
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
                unsafe {
                    patch!(
                        stringify!($name),
                        buf,
                        real::$name(dirfd, path, buf, flags),
                        dirfd,
                        path
                    )
                };
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
        // SAFETY: the call succeeded, so `buf` points to a filled struct;
        // as in `patch!`.
        unsafe {
            let first = *buf;
            let dev = libc::makedev(first.stx_dev_major, first.stx_dev_minor);
            let key = path_key(dirfd, path, dev, first.stx_ino);
            let mode = u32::from(first.stx_mode);
            if let Some((key, p)) = key.and_then(|k| path_pending(k, mode).map(|p| (k, p))) {
                let saved = real::errno();
                if real::statx(dirfd, path, flags, mask, buf) != 0
                    || (*buf).stx_ino != first.stx_ino
                {
                    *buf = first;
                }
                real::set_errno(saved);
                let b = &*buf;
                let all = libc::STATX_SIZE | libc::STATX_MTIME | libc::STATX_CTIME;
                if b.stx_mask & all == all {
                    let ns = |t: libc::statx_timestamp| {
                        i128::from(t.tv_sec) * 1_000_000_000 + i128::from(t.tv_nsec)
                    };
                    observe_key(
                        key,
                        conveyor_engine::Attrs {
                            size: b.stx_size,
                            mtime_ns: ns(b.stx_mtime),
                            ctime_ns: ns(b.stx_ctime),
                        },
                    );
                }
                let mut size = i64::try_from((*buf).stx_size).unwrap_or(i64::MAX);
                raise("statx", p, &mut size);
                (*buf).stx_size = size as u64;
            }
        }
    }
    r
}
