//! copy_file_range, sendfile, sendfile64, splice, mmap, mmap64, fdopen.

use crate::ops::transfer::{before_map, copy, hand_over};
use crate::real;
use libc::{c_char, c_int, c_uint, c_void, off64_t, off_t, size_t, ssize_t, FILE};

/// # Safety
/// As for `copy_file_range(2)`.
#[no_mangle]
pub unsafe extern "C" fn copy_file_range(
    fd_in: c_int,
    off_in: *mut off64_t,
    fd_out: c_int,
    off_out: *mut off64_t,
    len: size_t,
    flags: c_uint,
) -> ssize_t {
    // SAFETY: the caller's arguments.
    copy("copy_file_range", fd_in, fd_out, || unsafe {
        real::copy_file_range(fd_in, off_in, fd_out, off_out, len, flags)
    })
}

/// # Safety
/// As for `sendfile(2)`.
#[no_mangle]
pub unsafe extern "C" fn sendfile(out: c_int, inp: c_int, off: *mut off_t, n: size_t) -> ssize_t {
    // SAFETY: the caller's arguments.
    copy("sendfile", inp, out, || unsafe {
        real::sendfile(out, inp, off, n)
    })
}

/// # Safety
/// As for `sendfile(2)`.
#[no_mangle]
pub unsafe extern "C" fn sendfile64(
    out: c_int,
    inp: c_int,
    off: *mut off64_t,
    n: size_t,
) -> ssize_t {
    // SAFETY: the caller's arguments.
    copy("sendfile64", inp, out, || unsafe {
        real::sendfile64(out, inp, off, n)
    })
}

/// # Safety
/// As for `splice(2)`.
#[no_mangle]
pub unsafe extern "C" fn splice(
    fd_in: c_int,
    off_in: *mut off64_t,
    fd_out: c_int,
    off_out: *mut off64_t,
    len: size_t,
    flags: c_uint,
) -> ssize_t {
    // SAFETY: the caller's arguments.
    copy("splice", fd_in, fd_out, || unsafe {
        real::splice(fd_in, off_in, fd_out, off_out, len, flags)
    })
}

macro_rules! mmap_hook {
    ($name:ident, $off:ty) => {
        /// # Safety
        /// As for `mmap(2)`.
        #[no_mangle]
        pub unsafe extern "C" fn $name(
            addr: *mut c_void,
            len: size_t,
            prot: c_int,
            flags: c_int,
            fd: c_int,
            off: $off,
        ) -> *mut c_void {
            before_map(stringify!($name), fd, prot, flags);
            // SAFETY: the caller's arguments.
            unsafe { real::$name(addr, len, prot, flags, fd, off) }
        }
    };
}
mmap_hook!(mmap, off_t);
mmap_hook!(mmap64, off64_t);

/// # Safety
/// As for `fdopen(3)`.
#[no_mangle]
pub unsafe extern "C" fn fdopen(fd: c_int, mode: *const c_char) -> *mut FILE {
    hand_over("fdopen", fd);
    // SAFETY: the caller's arguments.
    unsafe { real::fdopen(fd, mode) }
}
