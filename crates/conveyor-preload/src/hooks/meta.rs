//! futimens, utimensat, futimes, futimesat, utimes, lutimes, utime, fchmod,
//! fchmodat, chmod, fchown, fchownat, chown, lchown, fsetxattr, setxattr,
//! lsetxattr: metadata that a later data write would change (times, the
//! set-id bits, capabilities) is set after the file's pending data is on
//! storage, whether the call names the file by descriptor or by path.

use crate::desc::Meta;
use crate::ops::behind::{defer_meta, times_of, times_of_timeval};
use crate::ops::meta::{before_meta_fd, before_meta_path};
use crate::real;
use libc::{c_char, c_int, c_void, gid_t, mode_t, size_t, timespec, timeval, uid_t, utimbuf};

macro_rules! by_fd {
    ($name:ident($fd:ident: c_int $(, $a:ident: $t:ty)*)) => {
        /// # Safety
        /// As for the C function of this name.
        #[cfg_attr(not(test), no_mangle)]
        pub unsafe extern "C" fn $name($fd: c_int $(, $a: $t)*) -> c_int {
            before_meta_fd(stringify!($name), $fd);
            // SAFETY: the caller's arguments.
            unsafe { real::$name($fd $(, $a)*) }
        }
    };
}

macro_rules! by_path {
    ($name:ident($path:ident: *const c_char $(, $a:ident: $t:ty)*), follow: $follow:expr) => {
        /// # Safety
        /// As for the C function of this name.
        #[cfg_attr(not(test), no_mangle)]
        pub unsafe extern "C" fn $name($path: *const c_char $(, $a: $t)*) -> c_int {
            // SAFETY: `path` is the caller's C string.
            unsafe { before_meta_path(stringify!($name), libc::AT_FDCWD, $path, $follow) };
            // SAFETY: the caller's arguments.
            unsafe { real::$name($path $(, $a)*) }
        }
    };
}

macro_rules! by_at {
    ($name:ident($dirfd:ident: c_int, $path:ident: *const c_char $(, $a:ident: $t:ty)*), $flags:ident) => {
        /// # Safety
        /// As for the C function of this name.
        #[cfg_attr(not(test), no_mangle)]
        pub unsafe extern "C" fn $name($dirfd: c_int, $path: *const c_char $(, $a: $t)*) -> c_int {
            let follow = $flags & libc::AT_SYMLINK_NOFOLLOW == 0;
            // SAFETY: `path` is null or the caller's C string.
            unsafe { before_meta_path(stringify!($name), $dirfd, $path, follow) };
            // SAFETY: the caller's arguments.
            unsafe { real::$name($dirfd, $path $(, $a)*) }
        }
    };
}

/// Like `by_fd!`, for a change that relaxed close may hold back until the
/// file's data is written (`ops::behind`): `$meta` is the change as the
/// shim keeps it, or `None` when it cannot be kept exactly (the real call
/// then reports the bad argument).
macro_rules! by_fd_deferrable {
    ($name:ident($fd:ident: c_int $(, $a:ident: $t:ty)*), $meta:expr) => {
        /// # Safety
        /// As for the C function of this name.
        #[cfg_attr(not(test), no_mangle)]
        pub unsafe extern "C" fn $name($fd: c_int $(, $a: $t)*) -> c_int {
            if crate::fdtable::is_managed($fd) {
                let meta: Option<Meta> = $meta;
                if meta.is_some_and(|m| defer_meta(stringify!($name), $fd, m)) {
                    return 0;
                }
            }
            before_meta_fd(stringify!($name), $fd);
            // SAFETY: the caller's arguments.
            unsafe { real::$name($fd $(, $a)*) }
        }
    };
}

by_fd_deferrable!(
    futimens(fd: c_int, times: *const timespec),
    // SAFETY: `times` is null or points to two structs, as futimens requires.
    unsafe { times_of(times) }
);
by_fd_deferrable!(
    futimes(fd: c_int, tv: *const timeval),
    // SAFETY: `tv` is null or points to two structs, as futimes requires.
    unsafe { times_of_timeval(tv) }
);
by_fd_deferrable!(fchmod(fd: c_int, mode: mode_t), Some(Meta::Mode(mode)));
by_fd_deferrable!(fchown(fd: c_int, uid: uid_t, gid: gid_t), Some(Meta::Owner(uid, gid)));
by_fd!(fsetxattr(fd: c_int, name: *const c_char, value: *const c_void, size: size_t, flags: c_int));

by_path!(utimes(path: *const c_char, tv: *const timeval), follow: true);
by_path!(lutimes(path: *const c_char, tv: *const timeval), follow: false);
by_path!(utime(path: *const c_char, times: *const utimbuf), follow: true);
by_path!(chmod(path: *const c_char, mode: mode_t), follow: true);
by_path!(chown(path: *const c_char, uid: uid_t, gid: gid_t), follow: true);
by_path!(lchown(path: *const c_char, uid: uid_t, gid: gid_t), follow: false);
by_path!(setxattr(path: *const c_char, name: *const c_char, value: *const c_void, size: size_t, flags: c_int), follow: true);
by_path!(lsetxattr(path: *const c_char, name: *const c_char, value: *const c_void, size: size_t, flags: c_int), follow: false);

by_at!(utimensat(dirfd: c_int, path: *const c_char, times: *const timespec, flags: c_int), flags);
by_at!(fchmodat(dirfd: c_int, path: *const c_char, mode: mode_t, flags: c_int), flags);
by_at!(fchownat(dirfd: c_int, path: *const c_char, uid: uid_t, gid: gid_t, flags: c_int), flags);

/// # Safety
/// As for `futimesat(2)` (no flags: links are followed).
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn futimesat(dirfd: c_int, path: *const c_char, tv: *const timeval) -> c_int {
    // SAFETY: `path` is null or the caller's C string.
    unsafe { before_meta_path("futimesat", dirfd, path, true) };
    // SAFETY: the caller's arguments.
    unsafe { real::futimesat(dirfd, path, tv) }
}
