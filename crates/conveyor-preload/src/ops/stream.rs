//! stdio streams of selected files get write-behind and read-ahead.
//!
//! glibc's `fopen` opens through an internal `__open`, and its streams read
//! and write through internal calls no hook sees, so a stream cannot be
//! managed from underneath. Instead `fopen` of a file under the selected
//! paths opens the descriptor through the shim's own open (which decides,
//! as for any open, whether the file is managed) and, when it is, wraps it
//! in a cookie stream (`stream.c`) whose reads, writes, seeks and close are
//! the hooked `read`, `write`, `lseek64` and `close` on that descriptor.
//! glibc keeps everything else: the buffer, `ungetc`,
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
//! `freopen` of glibc's own stream (stdout, say) keeps that stream, and its
//! file passes through (a `FILE` cannot change its kind in place);
//! `freopen` of a stream made here is done here, on the same descriptor
//! number, since glibc's would turn the cookie stream into a file stream.
//! The stream's buffer is the size glibc gives a stream of that file. A
//! cookie stream has no wide-character side, so a program whose executable
//! imports a wide stream function (`fwprintf`, `fputwc`...: `imports`)
//! keeps glibc's streams altogether.

use crate::{fdtable, state};
use libc::{c_char, c_int, FILE};
use std::ffi::CStr;

extern "C" {
    // ops/stream.c: a cookie stream on `fd` whose fileno is `fd`, `rw` a
    // mode as `cookie_mode` makes it, with glibc's buffer for `blksize`.
    fn conveyor_stream(fd: c_int, rw: *const c_char, blksize: libc::c_long) -> *mut FILE;
    // ops/stream.c: a stream of ours after freopen moved a file onto its
    // descriptor.
    fn conveyor_stream_reset(f: *mut FILE, rw: *const c_char);
    // ops/stream.c: the function a stream of ours calls as it closes.
    fn conveyor_stream_on_close(hook: extern "C" fn(c_int, *mut FILE));
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

/// The mode `fopencookie` reads for open flags `flags` (it understands a
/// `+` only as the second character, where `fopen` takes it anywhere).
fn cookie_mode(flags: c_int) -> &'static CStr {
    let plus = flags & libc::O_ACCMODE == libc::O_RDWR;
    match (
        flags & libc::O_APPEND != 0,
        flags & libc::O_CREAT != 0,
        plus,
    ) {
        (true, _, false) => c"a",
        (true, _, true) => c"a+",
        (false, true, false) => c"w",
        (false, true, true) => c"w+",
        (false, false, false) => c"r",
        (false, false, true) => c"r+",
    }
}

// The streams this module made, with their descriptors (removed as they
// close): `freopen` of one must not reach glibc's, which would reopen a
// cookie stream as a file stream of its own and crash.
static STREAMS: std::sync::Mutex<Vec<(c_int, usize)>> = std::sync::Mutex::new(Vec::new());

/// A cookie stream on managed `fd` for open flags `flags`, remembered.
fn make_stream(fd: c_int, flags: c_int) -> *mut FILE {
    // SAFETY: stores a function pointer; every stream made below reports
    // its close to it.
    unsafe { conveyor_stream_on_close(stream_closed) };
    let blksize = crate::identity::fstat(fd).map_or(0, |s| s.st_blksize);
    // SAFETY: a descriptor of the program's that the shim manages, and a
    // static mode string.
    let f = unsafe { conveyor_stream(fd, cookie_mode(flags).as_ptr(), blksize) };
    if !f.is_null() {
        crate::guard::quietly(|_| {
            if let Ok(mut v) = STREAMS.lock() {
                v.push((fd, f as usize));
            }
        });
    }
    f
}

/// Called by a stream of ours as it closes (`stream.c`).
extern "C" fn stream_closed(fd: c_int, f: *mut FILE) {
    crate::guard::quietly(|_| {
        if let Ok(mut v) = STREAMS.lock() {
            v.retain(|e| *e != (fd, f as usize));
        }
    });
}

fn is_ours(f: *mut FILE) -> Option<c_int> {
    crate::guard::within(|_| {
        let v = STREAMS.lock().ok()?;
        v.iter().find(|e| e.1 == f as usize).map(|e| e.0)
    })
    .flatten()
}

/// `freopen` of a stream this module made: the new file is opened as
/// `fopen` opens one and moved onto the stream's descriptor (as glibc
/// keeps a reopened stream's descriptor number), and the stream starts
/// afresh on it. `None` for any other stream (glibc's `freopen` runs).
///
/// # Safety
/// `path` is null or NUL-terminated, `mode` NUL-terminated, `stream` a
/// stream, as `freopen` requires.
pub unsafe fn freopen(
    path: *const c_char,
    mode: *const c_char,
    stream: *mut FILE,
) -> Option<*mut FILE> {
    if stream.is_null() || mode.is_null() || crate::guard::inside() {
        return None;
    }
    let old = is_ours(stream)?;
    // SAFETY: the caller's stream, whose buffered data goes first.
    unsafe { libc::fflush(stream) };
    // SAFETY: NUL-terminated (the caller's contract).
    let flags = open_flags(unsafe { CStr::from_ptr(mode) }.to_bytes());
    let proc_path;
    let path = if path.is_null() {
        // The same file again, with the new mode.
        proc_path = std::ffi::CString::new(format!("/proc/self/fd/{old}")).ok()?;
        proc_path.as_ptr()
    } else {
        path
    };
    // SAFETY: `path` is NUL-terminated.
    let opened = flags.map(|flags| (unsafe { open_as_fopen("freopen", path, flags) }, flags));
    let Some((new, flags)) = opened.filter(|(fd, _)| *fd >= 0) else {
        // As glibc: the stream's file is closed, and the call fails.
        let e = if flags.is_none() {
            libc::EINVAL
        } else {
            crate::real::errno()
        };
        super::fd::close(old);
        crate::real::set_errno(e);
        return Some(std::ptr::null_mut());
    };
    if new != old {
        super::fd::before_replace(old);
        let cloexec = flags & libc::O_CLOEXEC;
        // SAFETY: both descriptors are the program's; `old` is replaced.
        let r = unsafe { crate::real::dup3(new, old, cloexec) };
        super::fd::duplicated(new, r, "freopen");
        super::fd::close(new);
        if r < 0 {
            return Some(std::ptr::null_mut());
        }
    }
    // SAFETY: our stream, and a static mode string.
    unsafe { conveyor_stream_reset(stream, cookie_mode(flags).as_ptr()) };
    Some(stream)
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

/// Opens `path` for a stream (`name`: `fopen` or `freopen`), as the open
/// hook opens a file (the shim decides whether it is managed), with
/// `fopen`'s permissions; a stream opened "a" starts at the end, as
/// glibc's does, so `ftell` before the first write says where it lands.
///
/// # Safety
/// `path` is NUL-terminated.
unsafe fn open_as_fopen(name: &'static str, path: *const c_char, flags: c_int) -> c_int {
    // SAFETY: the caller's contract.
    let opening = unsafe { super::open::before(libc::AT_FDCWD, path, flags) };
    // SAFETY: as above; the flags and mode fopen would use.
    let fd = unsafe { crate::real::open64(path, flags, 0o666) };
    let fd = super::open::after(name, fd, flags, opening);
    if fd >= 0 && flags & libc::O_APPEND != 0 && flags & libc::O_ACCMODE == libc::O_WRONLY {
        // SAFETY: the descriptor just opened; no memory involved.
        unsafe { super::io::lseek(name, fd, 0, libc::SEEK_END) };
    }
    fd
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
    // SAFETY: the caller's C string.
    let fd = unsafe { open_as_fopen("fopen", path, flags) };
    if fd < 0 {
        return Some(std::ptr::null_mut());
    }
    // A program that uses wide-character streams keeps glibc's (read once,
    // for the first managed stream: no cost where nothing is managed).
    if fdtable::is_managed(fd) && !wide_ok() {
        crate::guard::quietly(|i| {
            let _ = super::pass_through_file_of(fd, i);
        });
    }
    let f = if fdtable::is_managed(fd) {
        make_stream(fd, flags)
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

/// True when the program imports no wide-character stream function, so
/// a cookie stream (which has no wide side) serves it as glibc's would.
fn wide_ok() -> bool {
    // Read inside the shim: its open of the executable passes through.
    crate::guard::within(|_| crate::imports::uses_wide_streams()) == Some(false)
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
    if !wide_ok() {
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
    Some(make_stream(fd, flags))
}
