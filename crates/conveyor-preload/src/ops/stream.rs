//! stdio streams of selected files get write-behind and read-ahead.
//!
//! glibc's `fopen` opens through an internal `__open`, and its streams read
//! and write through internal calls no hook sees, so a stream cannot be
//! managed from underneath. Instead `fopen` of a file under the selected
//! paths opens the descriptor through the shim's own open (which decides,
//! as for any open, whether the file is managed) and, when it is, wraps it
//! in a cookie stream (`stream.c`) whose reads, writes, seeks and close are
//! the hooked `read`, `write`, `lseek64` and `close` on that descriptor.
//! glibc keeps everything else: the buffer (its default size), `ungetc`,
//! `setvbuf`, `ftell` arithmetic, locking, `fflush(NULL)`, the flush at
//! exit; `fileno` is the descriptor, so the program's own calls on it are
//! ordered with the stream's flushes exactly as without the shim. An error
//! of a write reaches the stream as a failed write does (`ferror`,
//! `fflush`, `fclose` with `errno`).
//!
//! `fdopen` of a managed descriptor makes the same stream. Anything else
//! opens as before: a path no selected prefix covers (lexically, after the
//! working directory; a symbolic link into the selected paths is not
//! followed here, and its stream passes its file through, as before), a
//! mode glibc treats specially (`,ccs=`), a file the shim does not manage.
//! `freopen` keeps the stream glibc has (a `FILE` cannot change its kind in
//! place), and its file passes through. A cookie stream has no
//! wide-character side, so a program whose executable imports a wide
//! stream function (`fwprintf`, `fputwc`...: `imports`) keeps glibc's
//! streams altogether.

use crate::{fdtable, state};
use libc::{c_char, c_int, FILE};
use std::ffi::CStr;

extern "C" {
    // ops/stream.c: a cookie stream on `fd` whose fileno is `fd`.
    fn conveyor_stream(fd: c_int, mode: *const c_char) -> *mut FILE;
    // ops/stream.c: a `size`-byte buffer for stdout if it is untouched.
    fn conveyor_widen_stdout(size: usize) -> c_int;
}

/// `CONVEYOR_STDOUT_BUFFER` (off by default): when descriptor 1 is a
/// selected regular file (redirected by the shell, or moved there by the
/// program, as `sort -o` does) and the program has not used stdout or set
/// its buffering yet, stdout gets a buffer of that size instead of
/// glibc's 4 KiB, so each of its writes (which glibc makes with calls no
/// hook sees) carries that much. Off by default because it changes when
/// stdout's bytes reach the file relative to other writers of the same
/// file (see docs/reference.md#stdout-buffer).
pub fn widen_stdout() {
    let Some(shim) = state::get() else { return };
    let Some(size) = shim.stdout_buffer else {
        return;
    };
    let Some(st) = crate::identity::fstat(1).filter(|s| crate::identity::is_regular(s.st_mode))
    else {
        return;
    };
    if !crate::identity::selected(shim, 1) {
        return;
    }
    let auto = shim.mode == crate::settings::Mode::Auto;
    if auto && crate::guard::within(|_| crate::fskind::learn(st.st_dev, None).fast) != Some(false) {
        return;
    }
    // SAFETY: stdout is glibc's own stream; the helper only sets its buffer.
    if unsafe { conveyor_widen_stdout(size) } == 1 {
        crate::counts::hit("stdout_buffer");
        tracing::info!("stdout has a buffer of {size} bytes (CONVEYOR_STDOUT_BUFFER)");
    }
}

/// The `open` flags of an `fopen` mode, as glibc reads it; `None` for a
/// mode this module leaves to glibc (invalid, or with `,ccs=`).
pub fn open_flags(mode: &[u8]) -> Option<c_int> {
    if mode.contains(&b',') {
        return None;
    }
    let (mut acc, mut extra) = match mode.first()? {
        b'r' => (libc::O_RDONLY, 0),
        b'w' => (libc::O_WRONLY, libc::O_CREAT | libc::O_TRUNC),
        b'a' => (libc::O_WRONLY, libc::O_CREAT | libc::O_APPEND),
        _ => return None,
    };
    // glibc looks at six characters after the first.
    for c in mode.iter().skip(1).take(6) {
        match c {
            b'+' => acc = libc::O_RDWR,
            b'x' => extra |= libc::O_EXCL,
            b'e' => extra |= libc::O_CLOEXEC,
            _ => {}
        }
    }
    Some(acc | extra)
}

/// True if `path` (relative ones after the working directory), without
/// following links, lies under a selected prefix: only then does `fopen`
/// take the shim's path.
fn lexically_selected(path: &[u8]) -> bool {
    let Some(shim) = state::get() else {
        return false;
    };
    let abs = if path.first() == Some(&b'/') {
        path.to_vec()
    } else {
        let Ok(cwd) = std::env::current_dir() else {
            return false;
        };
        let mut p = std::os::unix::ffi::OsStrExt::as_bytes(cwd.as_os_str()).to_vec();
        p.push(b'/');
        p.extend_from_slice(path);
        p
    };
    let norm = crate::settings::normalize(&abs);
    shim.selects(&norm) || crate::policy::under(&shim.named_paths, &norm)
}

/// What `fopen` does: `Some(stream)` (or null with `errno`) when the shim
/// opened it, `None` when glibc's own `fopen` is to run.
///
/// # Safety
/// `path` and `mode` are NUL-terminated, as `fopen` requires.
pub unsafe fn fopen(path: *const c_char, mode: *const c_char) -> Option<*mut FILE> {
    if path.is_null() || mode.is_null() || crate::guard::inside() {
        return None;
    }
    // SAFETY: NUL-terminated (the caller's contract).
    let (p, m) = unsafe { (CStr::from_ptr(path), CStr::from_ptr(mode)) };
    let flags = open_flags(m.to_bytes())?;
    if !lexically_selected(p.to_bytes()) {
        return None;
    }
    // Read once, inside the shim (its open passes straight through).
    if crate::guard::within(|_| crate::imports::uses_wide_streams()) != Some(false) {
        return None;
    }
    // The program's open, as the open hook does it (the shim decides
    // whether the file is managed), with fopen's permissions.
    // SAFETY: the caller's C string.
    let opening = unsafe { super::open::before(libc::AT_FDCWD, path, flags) };
    // SAFETY: as above; the flags and mode fopen would use.
    let fd = unsafe { crate::real::open64(path, flags, 0o666) };
    let fd = super::open::after("fopen", fd, flags, opening);
    if fd < 0 {
        return Some(std::ptr::null_mut());
    }
    let append_only = flags & libc::O_APPEND != 0 && flags & libc::O_ACCMODE == libc::O_WRONLY;
    if append_only {
        // As glibc's fopen: a stream opened "a" starts at the end, so
        // `ftell` before the first write says where it will land.
        // SAFETY: the descriptor just opened; no memory involved.
        unsafe { super::io::lseek("fopen", fd, 0, libc::SEEK_END) };
    }
    let f = if fdtable::is_managed(fd) {
        // SAFETY: a descriptor of ours and the caller's mode string.
        unsafe { conveyor_stream(fd, mode) }
    } else {
        // Not managed: the stream glibc's fopen would have made, on the
        // same descriptor, and its file passes through (no later
        // descriptor may buffer beside it).
        super::transfer::after_stream_open(fd);
        // SAFETY: as above.
        unsafe { crate::real::fdopen(fd, mode) }
    };
    if f.is_null() {
        let saved = crate::real::errno();
        super::fd::close(fd);
        crate::real::set_errno(saved);
    }
    Some(f)
}

/// What `fdopen` does with managed descriptor `fd`: a stream on it that
/// keeps it managed, or `None` when the mode asks what a stream of it
/// cannot keep exactly (an access the descriptor lacks, or `a` on a
/// descriptor without `O_APPEND`, where glibc sets `O_APPEND` itself).
///
/// # Safety
/// `mode` is NUL-terminated, as `fdopen` requires.
pub unsafe fn fdopen(fd: c_int, mode: *const c_char) -> Option<*mut FILE> {
    if mode.is_null() || crate::guard::inside() {
        return None;
    }
    let d = fdtable::get(fd)?;
    if crate::guard::within(|_| crate::imports::uses_wide_streams()) != Some(false) {
        return None;
    }
    // SAFETY: NUL-terminated (the caller's contract).
    let flags = open_flags(unsafe { CStr::from_ptr(mode) }.to_bytes())?;
    let want_read = flags & libc::O_ACCMODE != libc::O_WRONLY;
    let want_write = flags & libc::O_ACCMODE != libc::O_RDONLY;
    let have = crate::guard::within(|i| d.handle(i).mode())?;
    if want_read && !have.read
        || want_write && !have.write
        || flags & libc::O_APPEND != 0 && !have.append
    {
        return None;
    }
    crate::counts::hit("fdopen");
    // SAFETY: the program's managed descriptor and its mode string.
    Some(unsafe { conveyor_stream(fd, mode) })
}
