//! Calls that move data inside the kernel or expose the file another way
//! (`copy_file_range`, `sendfile`, `splice`, `mmap`, `fdopen`).
//!
//! The kernel-copy calls stay exact without passing the file through:
//! pending data is written and kernel offsets set first, and afterwards the
//! engine takes the new kernel offsets back and forgets what it cached of a
//! file the kernel wrote. After `mmap`, `fdopen`, a stream's open or a
//! descriptor sent to another process, the file passes through.

use super::{pass_through_file_of, pass_through_process, sync_kernel_offset};
use crate::guard::{self, Inside};
use crate::{counts, fdtable, identity, passthrough, real};
use libc::c_int;

/// Before a kernel copy involving `fd`: flushed, kernel offset set.
fn prepare(name: &'static str, fd: c_int, inside: &Inside) {
    if let Some(d) = fdtable::get(fd) {
        counts::hit(name);
        sync_kernel_offset(fd, &d, inside);
        let _ = crate::backend::lend(fd, || d.handle(inside).flush());
    }
}

/// After it: the engine adopts the kernel offset; a written file's cache
/// and known size are dropped.
fn finish(fd: c_int, written: bool, inside: &Inside) {
    if let Some(d) = fdtable::get(fd) {
        let h = d.handle(inside);
        // SAFETY: lseek on the program's descriptor; no memory involved.
        let pos = unsafe { real::lseek64(fd, 0, libc::SEEK_CUR) };
        if pos >= 0 {
            h.set_position(pos as u64);
            d.set_kernel_pos(pos as u64);
        }
        if written {
            h.invalidate();
        }
    }
}

/// Runs a kernel copy from `fd_in` to `fd_out` exactly.
pub fn copy(
    name: &'static str,
    fd_in: c_int,
    fd_out: c_int,
    call: impl FnOnce() -> isize,
) -> isize {
    let managed = fdtable::is_managed(fd_in) || fdtable::is_managed(fd_out);
    if !managed {
        return call();
    }
    guard::quietly(|i| {
        prepare(name, fd_in, i);
        prepare(name, fd_out, i);
    });
    let saved = real::errno();
    let r = call();
    let err = real::errno();
    guard::quietly(|i| {
        finish(fd_in, false, i);
        finish(fd_out, true, i);
    });
    real::set_errno(if r < 0 { err } else { saved });
    r
}

/// Before `mmap` of `fd` with `prot` and `flags`: a managed fd goes to the
/// kernel. A shared writable mapping of a selected file ends all
/// management in the process: programs that share such memory (sqlite's
/// WAL index) announce their writes to other processes by storing into
/// it, without any call the shim could treat as a barrier, so a buffered
/// write or cached read anywhere in the process could be seen stale.
pub fn before_map(name: &'static str, fd: c_int, prot: c_int, flags: c_int) {
    if flags & libc::MAP_ANONYMOUS != 0 {
        return;
    }
    let shared = flags & libc::MAP_SHARED != 0 && prot & libc::PROT_WRITE != 0;
    match crate::state::get() {
        Some(shim) if shared && identity::selected(shim, fd) => {
            counts::hit(name);
            guard::quietly(pass_through_process);
        }
        _ => pass_through_fd(name, fd),
    }
}

/// Before `fdopen` of a managed fd (or `mmap`, or sending it to another
/// process): its file passes through.
pub fn pass_through_fd(name: &'static str, fd: c_int) {
    if fdtable::is_managed(fd) {
        counts::hit(name);
        guard::quietly(|i| {
            let _ = crate::backend::lend(fd, || pass_through_file_of(fd, i));
        });
    }
}

/// Before glibc opens `path` for a stream (`fopen`, `freopen`): the stream
/// will read and write through internal calls no hook sees, so the file,
/// if this process manages it, goes to the kernel first (pending data
/// written, every descriptor of it passed through).
///
/// # Safety
/// `path` is null or NUL-terminated.
pub unsafe fn before_stream_open(name: &'static str, path: *const libc::c_char) {
    let Some(shim) = crate::state::get() else {
        return;
    };
    if path.is_null() || !guard::within(|i| shim.engine(i).has_files()).unwrap_or(false) {
        return;
    }
    // SAFETY: `st` is a plain C struct the call fills.
    let mut st: libc::stat64 = unsafe { std::mem::zeroed() };
    // SAFETY: `path` is NUL-terminated (the caller's contract).
    if unsafe { real::fstatat64(libc::AT_FDCWD, path, &mut st, 0) } != 0
        || !identity::is_regular(st.st_mode)
    {
        return;
    }
    // SAFETY: as above.
    let Some(key) = (unsafe { identity::path_key(libc::AT_FDCWD, path, st.st_dev, st.st_ino) })
    else {
        return;
    };
    guard::quietly(|i| {
        if shim.engine(i).pending_end(key).is_some() {
            counts::hit(name);
            super::pass_through_file(key, i);
        }
    });
}

/// After a stream opened descriptor `fd`: a stale entry of that number is
/// forgotten, and a selected file passes through from now on, so no
/// descriptor opened later buffers beside the stream.
pub fn after_stream_open(fd: c_int) {
    if fd < 0 {
        return;
    }
    fdtable::remove(fd);
    let Some(shim) = crate::state::get() else {
        return;
    };
    let Some(st) = identity::fstat(fd) else {
        return;
    };
    let auto = shim.mode == crate::settings::Mode::Auto;
    if auto && crate::fskind::known_fast(st.st_dev) {
        // Nothing there is managed: no path lookup, nothing to remember.
        return;
    }
    if identity::selected(shim, fd) {
        if auto && guard::within(|_| crate::fskind::learn(st.st_dev, None).fast) == Some(true) {
            return;
        }
        if let Some(key) = identity::fd_key(fd, &st) {
            passthrough::pass_through(key);
        }
    }
}
