//! copy_file_range, sendfile, sendfile64, splice, mmap, mmap64, fdopen,
//! sendmsg, sendmmsg, fopen, fopen64, freopen, freopen64.

use crate::ops::transfer::{
    after_stream_open, before_map, before_stream_open, copy, pass_through_fd,
};
use crate::real;
use libc::{c_char, c_int, c_uint, c_void, off64_t, off_t, size_t, ssize_t, FILE};

/// # Safety
/// As for `copy_file_range(2)`.
#[cfg_attr(not(test), no_mangle)]
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
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn sendfile(out: c_int, inp: c_int, off: *mut off_t, n: size_t) -> ssize_t {
    // SAFETY: the caller's arguments.
    copy("sendfile", inp, out, || unsafe {
        real::sendfile(out, inp, off, n)
    })
}

/// # Safety
/// As for `sendfile(2)`.
#[cfg_attr(not(test), no_mangle)]
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
#[cfg_attr(not(test), no_mangle)]
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
        #[cfg_attr(not(test), no_mangle)]
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
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn fdopen(fd: c_int, mode: *const c_char) -> *mut FILE {
    if crate::fdtable::is_managed(fd) {
        // SAFETY: the caller's mode string.
        if let Some(f) = unsafe { crate::ops::stream::fdopen(fd, mode) } {
            return f;
        }
    }
    pass_through_fd("fdopen", fd);
    // SAFETY: the caller's arguments.
    unsafe { real::fdopen(fd, mode) }
}

/// Hands every managed descriptor that `msg` passes (`SCM_RIGHTS`) to the
/// kernel: the receiving process shares the description and its offset.
///
/// # Safety
/// `msg` is null or points to a valid `msghdr`, as `sendmsg` requires.
unsafe fn pass_rights(name: &'static str, msg: *const libc::msghdr) {
    // SAFETY: the caller's contract.
    let Some(m) = (unsafe { msg.as_ref() }) else {
        return;
    };
    if m.msg_control.is_null() || m.msg_controllen < std::mem::size_of::<libc::cmsghdr>() {
        return;
    }
    // SAFETY: `m` describes a control buffer of `msg_controllen` bytes;
    // CMSG_FIRSTHDR and CMSG_NXTHDR stay inside it.
    let mut c = unsafe { libc::CMSG_FIRSTHDR(m) };
    // SAFETY: as above; each header was checked by CMSG_NXTHDR.
    while let Some(h) = unsafe { c.as_ref() } {
        if h.cmsg_level == libc::SOL_SOCKET && h.cmsg_type == libc::SCM_RIGHTS {
            // SAFETY: a zero-length payload has CMSG_LEN(0) bytes of header.
            let head = unsafe { libc::CMSG_LEN(0) } as usize;
            let n = h.cmsg_len.saturating_sub(head) / std::mem::size_of::<c_int>();
            // SAFETY: the payload holds `n` descriptors (unaligned reads).
            let data = unsafe { libc::CMSG_DATA(h) }.cast::<c_int>();
            for i in 0..n {
                // SAFETY: `i < n`, inside the payload.
                pass_through_fd(name, unsafe { data.add(i).read_unaligned() });
            }
        }
        // SAFETY: as above.
        c = unsafe { libc::CMSG_NXTHDR(m, c) };
    }
}

/// # Safety
/// As for `sendmsg(2)`.
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn sendmsg(fd: c_int, msg: *const libc::msghdr, flags: c_int) -> ssize_t {
    // SAFETY: the caller's arguments.
    unsafe { pass_rights("sendmsg", msg) };
    // SAFETY: as above.
    unsafe { real::sendmsg(fd, msg, flags) }
}

/// # Safety
/// As for `sendmmsg(2)`.
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn sendmmsg(
    fd: c_int,
    msgs: *mut libc::mmsghdr,
    n: libc::c_uint,
    flags: c_int,
) -> c_int {
    if !msgs.is_null() {
        for i in 0..n as usize {
            // SAFETY: `msgs` points to `n` headers (the caller's contract).
            unsafe { pass_rights("sendmmsg", &(*msgs.add(i)).msg_hdr) };
        }
    }
    // SAFETY: the caller's arguments.
    unsafe { real::sendmmsg(fd, msgs, n, flags) }
}

macro_rules! fopen_hook {
    ($name:ident) => {
        /// # Safety
        /// As for `fopen(3)`.
        #[cfg_attr(not(test), no_mangle)]
        pub unsafe extern "C" fn $name(path: *const c_char, mode: *const c_char) -> *mut FILE {
            // SAFETY: the caller's C strings.
            if let Some(f) = unsafe { crate::ops::stream::fopen(path, mode) } {
                return f;
            }
            // SAFETY: the caller's C string.
            unsafe { before_stream_open(stringify!($name), path) };
            // SAFETY: the caller's arguments.
            let f = unsafe { real::$name(path, mode) };
            if !f.is_null() {
                // SAFETY: `f` is the stream just opened.
                after_stream_open(unsafe { libc::fileno(f) });
            }
            f
        }
    };
}
fopen_hook!(fopen);
fopen_hook!(fopen64);

macro_rules! freopen_hook {
    ($name:ident) => {
        /// # Safety
        /// As for `freopen(3)`.
        #[cfg_attr(not(test), no_mangle)]
        pub unsafe extern "C" fn $name(
            path: *const c_char,
            mode: *const c_char,
            stream: *mut FILE,
        ) -> *mut FILE {
            // SAFETY: the caller's arguments.
            if let Some(f) = unsafe { crate::ops::stream::freopen(path, mode, stream) } {
                return f;
            }
            // SAFETY: the caller's C string.
            unsafe { before_stream_open(stringify!($name), path) };
            // SAFETY: the caller's arguments.
            let f = unsafe { real::$name(path, mode, stream) };
            if !f.is_null() {
                // SAFETY: `f` is the stream just reopened.
                after_stream_open(unsafe { libc::fileno(f) });
            }
            f
        }
    };
}
freopen_hook!(freopen);
freopen_hook!(freopen64);
