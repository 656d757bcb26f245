//! fstat, fstat64, __fxstat, __fxstat64, fstatat, fstatat64, statx, stat,
//! stat64, lstat, lstat64, __xstat, __xstat64, __lxstat, __lxstat64: sizes
//! include data the program wrote that is still pending, and what the
//! program sees tells the engine whether another process changed the file.

use crate::fdtable::is_managed;
use crate::identity::{attrs_of, path_key};
use crate::ops::meta::{stat_fd, stat_path};
use crate::real;
use libc::{c_char, c_int, c_uint};

/// Lifts a stat size to `pending`.
fn raise(size: &mut i64, pending: u64) {
    *size = (*size).max(i64::try_from(pending).unwrap_or(i64::MAX));
}

macro_rules! fstat_hook {
    ($name:ident, [$($pre:ident: $pt:ty),*], $st:ty) => {
        /// # Safety
        /// As for the C function of this name.
        #[cfg_attr(not(test), no_mangle)]
        pub unsafe extern "C" fn $name($($pre: $pt,)* fd: c_int, buf: *mut $st) -> c_int {
            // SAFETY: the caller's arguments.
            let call = || unsafe { real::$name($($pre,)* fd, buf) };
            if !is_managed(fd) {
                return call();
            }
            stat_fd(
                stringify!($name),
                fd,
                call,
                // SAFETY: the call succeeded, so `buf` points to a filled struct.
                || attrs_of!(unsafe { &*buf }),
                // SAFETY: as above.
                |p| raise(unsafe { &mut (*buf).st_size }, p),
            )
        }
    };
}
fstat_hook!(fstat, [], libc::stat);
fstat_hook!(fstat64, [], libc::stat64);
fstat_hook!(__fxstat, [ver: c_int], libc::stat);
fstat_hook!(__fxstat64, [ver: c_int], libc::stat64);

/// Patches a path stat result in `buf` (made by `$again`, which repeats
/// the call): see `ops::meta::stat_path`. Should the second call fail or
/// find another file, the first result stays.
macro_rules! patch {
    ($name:expr, $buf:expr, $again:expr, $dirfd:expr, $path:expr) => {{
        // SAFETY: the call succeeded, so `buf` points to a filled struct.
        let first = unsafe { *$buf };
        // SAFETY: `path` is the caller's C string, which the stat accepted.
        let key = unsafe { path_key($dirfd, $path, first.st_dev, first.st_ino) };
        if let Some(key) = key {
            stat_path(
                $name,
                key,
                first.st_mode & libc::S_IFMT == libc::S_IFREG,
                || {
                    let saved = real::errno();
                    // SAFETY: the caller's arguments again; `buf` is theirs.
                    let again = unsafe { $again };
                    // SAFETY: `buf` holds a filled struct.
                    let now = unsafe { *$buf };
                    let other = now.st_dev != first.st_dev || now.st_ino != first.st_ino;
                    if again != 0 || other {
                        // SAFETY: as above.
                        unsafe { *$buf = first };
                    }
                    real::set_errno(saved);
                },
                // SAFETY: `buf` holds a filled struct.
                || Some(attrs_of!(unsafe { &*$buf })),
                // SAFETY: as above.
                |p| raise(unsafe { &mut (*$buf).st_size }, p),
            );
        }
    }};
}

macro_rules! path_hook {
    ($name:ident, [$($pre:ident: $pt:ty),*], [$($post:ident: $qt:ty),*], $st:ty, $dirfd:expr) => {
        /// # Safety
        /// As for the C function of this name.
        #[cfg_attr(not(test), no_mangle)]
        pub unsafe extern "C" fn $name(
            $($pre: $pt,)*
            path: *const c_char,
            buf: *mut $st
            $(, $post: $qt)*
        ) -> c_int {
            // SAFETY: the caller's arguments.
            let r = unsafe { real::$name($($pre,)* path, buf $(, $post)*) };
            if r == 0 {
                patch!(
                    stringify!($name),
                    buf,
                    real::$name($($pre,)* path, buf $(, $post)*),
                    $dirfd,
                    path
                );
            }
            r
        }
    };
}
path_hook!(stat, [], [], libc::stat, libc::AT_FDCWD);
path_hook!(stat64, [], [], libc::stat64, libc::AT_FDCWD);
path_hook!(lstat, [], [], libc::stat, libc::AT_FDCWD);
path_hook!(lstat64, [], [], libc::stat64, libc::AT_FDCWD);
path_hook!(__xstat, [ver: c_int], [], libc::stat, libc::AT_FDCWD);
path_hook!(__xstat64, [ver: c_int], [], libc::stat64, libc::AT_FDCWD);
path_hook!(__lxstat, [ver: c_int], [], libc::stat, libc::AT_FDCWD);
path_hook!(__lxstat64, [ver: c_int], [], libc::stat64, libc::AT_FDCWD);
path_hook!(fstatat, [dirfd: c_int], [flags: c_int], libc::stat, dirfd);
path_hook!(fstatat64, [dirfd: c_int], [flags: c_int], libc::stat64, dirfd);

/// # Safety
/// As for `statx(2)`.
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn statx(
    dirfd: c_int,
    path: *const c_char,
    flags: c_int,
    mask: c_uint,
    buf: *mut libc::statx,
) -> c_int {
    // SAFETY: the caller's arguments.
    let r = unsafe { real::statx(dirfd, path, flags, mask, buf) };
    if r != 0 || buf.is_null() {
        return r;
    }
    // SAFETY: the call succeeded, so `buf` points to a filled struct.
    let first = unsafe { *buf };
    let dev = libc::makedev(first.stx_dev_major, first.stx_dev_minor);
    // SAFETY: `path` is the caller's C string, which statx accepted.
    let Some(key) = (unsafe { path_key(dirfd, path, dev, first.stx_ino) }) else {
        return r;
    };
    let regular = u32::from(first.stx_mode) & libc::S_IFMT == libc::S_IFREG;
    let ns =
        |t: libc::statx_timestamp| i128::from(t.tv_sec) * 1_000_000_000 + i128::from(t.tv_nsec);
    stat_path(
        "statx",
        key,
        regular,
        || {
            let saved = real::errno();
            // SAFETY: the caller's arguments again.
            if unsafe { real::statx(dirfd, path, flags, mask, buf) } != 0
                // SAFETY: `buf` holds a filled struct.
                || unsafe { (*buf).stx_ino } != first.stx_ino
            {
                // SAFETY: as above.
                unsafe { *buf = first };
            }
            real::set_errno(saved);
        },
        || {
            // SAFETY: `buf` holds a filled struct.
            let b = unsafe { &*buf };
            // Fields the caller did not ask for may be missing.
            let all = libc::STATX_SIZE | libc::STATX_MTIME | libc::STATX_CTIME;
            (b.stx_mask & all == all).then(|| conveyor_engine::Attrs {
                size: b.stx_size,
                mtime_ns: ns(b.stx_mtime),
                ctime_ns: ns(b.stx_ctime),
            })
        },
        |p| {
            // SAFETY: `buf` holds a filled struct.
            let b = unsafe { &mut *buf };
            let mut size = i64::try_from(b.stx_size).unwrap_or(i64::MAX);
            raise(&mut size, p);
            b.stx_size = size as u64;
        },
    );
    r
}
