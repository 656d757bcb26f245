//! read, __read_chk, pread, pread64, __pread_chk, __pread64_chk, readv,
//! preadv, preadv64, preadv2, preadv64v2, write, pwrite, pwrite64, writev,
//! pwritev, pwritev64, pwritev2, pwritev64v2, lseek, lseek64.

use crate::fdtable::is_managed;
use crate::ops::io;
use crate::real;
use libc::{c_int, c_void, iovec, off64_t, off_t, size_t, ssize_t};

/// # Safety
/// As for `read(2)`.
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn read(fd: c_int, buf: *mut c_void, n: size_t) -> ssize_t {
    if !is_managed(fd) {
        // SAFETY: the caller's arguments.
        return unsafe { real::read(fd, buf, n) };
    }
    // SAFETY: as above.
    unsafe { io::read("read", fd, buf, n, None) }
}

/// # Safety
/// As for `__read_chk` (fortified read).
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn __read_chk(
    fd: c_int,
    buf: *mut c_void,
    n: size_t,
    buflen: size_t,
) -> ssize_t {
    if !is_managed(fd) || n > buflen {
        // SAFETY: the caller's arguments; glibc reports the overflow itself.
        return unsafe { real::__read_chk(fd, buf, n, buflen) };
    }
    // SAFETY: `buf` holds `buflen >= n` bytes.
    unsafe { io::read("__read_chk", fd, buf, n, None) }
}

macro_rules! pread_hook {
    ($name:ident, $off:ty) => {
        /// # Safety
        /// As for `pread(2)`.
        #[cfg_attr(not(test), no_mangle)]
        pub unsafe extern "C" fn $name(
            fd: c_int,
            buf: *mut c_void,
            n: size_t,
            off: $off,
        ) -> ssize_t {
            if !is_managed(fd) {
                // SAFETY: the caller's arguments.
                return unsafe { real::$name(fd, buf, n, off) };
            }
            // SAFETY: as above.
            unsafe { io::read(stringify!($name), fd, buf, n, Some(off as off64_t)) }
        }
    };
}
pread_hook!(pread, off_t);
pread_hook!(pread64, off64_t);

macro_rules! pread_chk_hook {
    ($name:ident, $off:ty) => {
        /// # Safety
        /// As for the fortified `pread`.
        #[cfg_attr(not(test), no_mangle)]
        pub unsafe extern "C" fn $name(
            fd: c_int,
            buf: *mut c_void,
            n: size_t,
            off: $off,
            buflen: size_t,
        ) -> ssize_t {
            if !is_managed(fd) || n > buflen {
                // SAFETY: the caller's arguments.
                return unsafe { real::$name(fd, buf, n, off, buflen) };
            }
            // SAFETY: `buf` holds `buflen >= n` bytes.
            unsafe { io::read(stringify!($name), fd, buf, n, Some(off as off64_t)) }
        }
    };
}
pread_chk_hook!(__pread_chk, off_t);
pread_chk_hook!(__pread64_chk, off64_t);

/// # Safety
/// As for `readv(2)`.
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn readv(fd: c_int, iov: *const iovec, cnt: c_int) -> ssize_t {
    if !is_managed(fd) {
        // SAFETY: the caller's arguments.
        return unsafe { real::readv(fd, iov, cnt) };
    }
    // SAFETY: as above.
    unsafe { io::readv("readv", fd, iov, cnt, None) }
}

macro_rules! preadv_hook {
    ($name:ident, $off:ty) => {
        /// # Safety
        /// As for `preadv(2)`.
        #[cfg_attr(not(test), no_mangle)]
        pub unsafe extern "C" fn $name(
            fd: c_int,
            iov: *const iovec,
            cnt: c_int,
            off: $off,
        ) -> ssize_t {
            if !is_managed(fd) {
                // SAFETY: the caller's arguments.
                return unsafe { real::$name(fd, iov, cnt, off) };
            }
            // SAFETY: as above.
            unsafe { io::readv(stringify!($name), fd, iov, cnt, Some(off as off64_t)) }
        }
    };
}
preadv_hook!(preadv, off_t);
preadv_hook!(preadv64, off64_t);

macro_rules! preadv2_hook {
    ($name:ident, $off:ty) => {
        /// # Safety
        /// As for `preadv2(2)`.
        #[cfg_attr(not(test), no_mangle)]
        pub unsafe extern "C" fn $name(
            fd: c_int,
            iov: *const iovec,
            cnt: c_int,
            off: $off,
            flags: c_int,
        ) -> ssize_t {
            if !is_managed(fd) {
                // SAFETY: the caller's arguments.
                return unsafe { real::$name(fd, iov, cnt, off, flags) };
            }
            let at = (off != -1).then_some(off as off64_t);
            // SAFETY: as above.
            unsafe { io::readv(stringify!($name), fd, iov, cnt, at) }
        }
    };
}
preadv2_hook!(preadv2, off_t);
preadv2_hook!(preadv64v2, off64_t);

/// # Safety
/// As for `write(2)`.
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn write(fd: c_int, buf: *const c_void, n: size_t) -> ssize_t {
    if !is_managed(fd) {
        // SAFETY: the caller's arguments.
        return unsafe { real::write(fd, buf, n) };
    }
    // SAFETY: as above.
    unsafe { io::write("write", fd, buf, n, None) }
}

macro_rules! pwrite_hook {
    ($name:ident, $off:ty) => {
        /// # Safety
        /// As for `pwrite(2)`.
        #[cfg_attr(not(test), no_mangle)]
        pub unsafe extern "C" fn $name(
            fd: c_int,
            buf: *const c_void,
            n: size_t,
            off: $off,
        ) -> ssize_t {
            if !is_managed(fd) {
                // SAFETY: the caller's arguments.
                return unsafe { real::$name(fd, buf, n, off) };
            }
            // SAFETY: as above.
            unsafe { io::write(stringify!($name), fd, buf, n, Some(off as off64_t)) }
        }
    };
}
pwrite_hook!(pwrite, off_t);
pwrite_hook!(pwrite64, off64_t);

/// # Safety
/// As for `writev(2)`.
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn writev(fd: c_int, iov: *const iovec, cnt: c_int) -> ssize_t {
    if !is_managed(fd) {
        // SAFETY: the caller's arguments.
        return unsafe { real::writev(fd, iov, cnt) };
    }
    // SAFETY: as above.
    unsafe { io::writev("writev", fd, iov, cnt, None, 0) }
}

macro_rules! pwritev_hook {
    ($name:ident, $off:ty) => {
        /// # Safety
        /// As for `pwritev(2)`.
        #[cfg_attr(not(test), no_mangle)]
        pub unsafe extern "C" fn $name(
            fd: c_int,
            iov: *const iovec,
            cnt: c_int,
            off: $off,
        ) -> ssize_t {
            if !is_managed(fd) {
                // SAFETY: the caller's arguments.
                return unsafe { real::$name(fd, iov, cnt, off) };
            }
            // SAFETY: as above.
            unsafe { io::writev(stringify!($name), fd, iov, cnt, Some(off as off64_t), 0) }
        }
    };
}
pwritev_hook!(pwritev, off_t);
pwritev_hook!(pwritev64, off64_t);

macro_rules! pwritev2_hook {
    ($name:ident, $off:ty) => {
        /// # Safety
        /// As for `pwritev2(2)`.
        #[cfg_attr(not(test), no_mangle)]
        pub unsafe extern "C" fn $name(
            fd: c_int,
            iov: *const iovec,
            cnt: c_int,
            off: $off,
            flags: c_int,
        ) -> ssize_t {
            if !is_managed(fd) {
                // SAFETY: the caller's arguments.
                return unsafe { real::$name(fd, iov, cnt, off, flags) };
            }
            let at = (off != -1).then_some(off as off64_t);
            // SAFETY: as above.
            unsafe { io::writev(stringify!($name), fd, iov, cnt, at, flags) }
        }
    };
}
pwritev2_hook!(pwritev2, off_t);
pwritev2_hook!(pwritev64v2, off64_t);

macro_rules! lseek_hook {
    ($name:ident, $off:ty) => {
        /// # Safety
        /// As for `lseek(2)`.
        #[cfg_attr(not(test), no_mangle)]
        pub unsafe extern "C" fn $name(fd: c_int, off: $off, whence: c_int) -> $off {
            if !is_managed(fd) {
                // SAFETY: the caller's arguments.
                return unsafe { real::$name(fd, off, whence) };
            }
            // SAFETY: as above.
            unsafe { io::lseek(stringify!($name), fd, off as off64_t, whence) as $off }
        }
    };
}
lseek_hook!(lseek, off_t);
lseek_hook!(lseek64, off64_t);
