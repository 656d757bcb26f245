//! The shim's storage backend: positioned I/O through the real libc
//! functions on private `O_CLOEXEC` descriptors, so background workers never
//! use a descriptor number the program can close or reuse.
//!
//! A file's only description works through the program's own descriptor
//! until a thread other than the program's, in a call on that descriptor,
//! needs it ([`RawBackend::lent`]): only then is a private duplicate taken.
//! A small file written and closed costs the filesystem nothing more than
//! without the shim (a duplicate's close is one more `FLUSH` on FUSE).

use crate::real;
use conveyor_engine::{Backend, Errno, Result};
use libc::c_int;
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};

// `fd` of a lent backend before its duplicate is taken.
const NOT_TAKEN: c_int = -2;

thread_local! {
    // The program's descriptor the calling thread is in a call on (-1:
    // none): the one thread that may use it directly, since the program
    // cannot close it while its own call on it runs.
    static LENT: Cell<c_int> = const { Cell::new(-1) };
}

/// Runs `f` with the program's descriptor `fd` lent to this thread: a
/// lent backend of it does its I/O through `fd` itself.
pub fn lend<R>(fd: c_int, f: impl FnOnce() -> R) -> R {
    let prev = LENT.with(|c| c.replace(fd));
    let r = f();
    LENT.with(|c| c.set(prev));
    r
}

// The program's descriptor a lent backend works through.
struct Lent {
    fd: c_int,
    // What it was at the start: checked on the duplicate, so a descriptor
    // number the program closed behind the shim's back (a raw system call)
    // and reused for another file is never written.
    dev: u64,
    ino: u64,
    // Serialises taking the duplicate.
    taking: Mutex<()>,
    // The program opened it `O_APPEND`: its appends go through it (or the
    // duplicate, which shares the flag), with no appender of their own.
    append: bool,
}

impl Lent {
    // True if descriptor `fd` refers to the file the program opened.
    fn is_the_file(&self, fd: c_int) -> bool {
        // The identity the kernel holds, without asking the filesystem: no
        // request, and an answer for a file unlinked while open, whose
        // stat some FUSE filesystems refuse (ENOENT).
        // SAFETY: a plain C struct the call fills.
        let mut sx: libc::statx = unsafe { std::mem::zeroed() };
        // SAFETY: an empty C string with AT_EMPTY_PATH names `fd` itself;
        // `sx` is valid for writing.
        let r = unsafe {
            real::statx(
                fd,
                c"".as_ptr(),
                libc::AT_EMPTY_PATH | libc::AT_STATX_DONT_SYNC,
                libc::STATX_INO,
                &mut sx,
            )
        };
        if r == 0 {
            let dev = libc::makedev(sx.stx_dev_major, sx.stx_dev_minor);
            return dev == self.dev && sx.stx_ino == self.ino;
        }
        crate::identity::fstat(fd).is_some_and(|st| st.st_dev == self.dev && st.st_ino == self.ino)
    }
}

// Every private descriptor open now. The program cannot know them, so a
// range it closes (`close_range`, `closefrom`) never includes them.
static PRIVATE: Mutex<Vec<c_int>> = Mutex::new(Vec::new());

/// Records a new private descriptor (passes `fd` on, `-1` included).
pub fn track(fd: c_int) -> c_int {
    if fd >= 0 {
        if let Ok(mut v) = PRIVATE.lock() {
            v.push(fd);
        }
    }
    fd
}

pub fn untrack(fd: c_int) {
    if let Ok(mut v) = PRIVATE.lock() {
        if let Some(i) = v.iter().position(|p| *p == fd) {
            v.swap_remove(i);
        }
    }
}

/// Locks the list across `fork` (the child then finds it free); the
/// descriptors stay open in the child and stay protected there.
pub fn hold_for_fork() -> MutexGuard<'static, Vec<c_int>> {
    PRIVATE.lock().unwrap_or_else(|e| e.into_inner())
}

/// The private descriptors open now, in ascending order.
pub fn private_fds() -> Vec<c_int> {
    let mut v = PRIVATE.lock().map(|v| v.clone()).unwrap_or_default();
    v.sort_unstable();
    v
}

/// Private descriptors of one file.
pub struct RawBackend {
    // -1 once released; `NOT_TAKEN` while a lent backend has no duplicate.
    fd: AtomicI32,
    // Set for a backend that works through the program's descriptor until
    // a duplicate is needed.
    lent: Option<Lent>,
    read: bool,
    write: bool,
    // Opened on the first append: a description with O_APPEND of its own.
    appender: OnceLock<c_int>,
    // Closed by `release`; no request uses it afterwards.
    released: AtomicBool,
    // Kept open for the program's locks (`ops::retire`): never released.
    retained: AtomicBool,
    // A reopen, which other descriptions of the file may use too; a
    // duplicate of one description's descriptor serves only that one (it
    // keeps the description, and its flock locks, alive).
    shareable: bool,
}

fn last() -> Errno {
    Errno(real::errno())
}

fn proc_path(fd: c_int) -> [u8; 32] {
    let mut b = [0u8; 32];
    let s = format!("/proc/self/fd/{fd}");
    b[..s.len()].copy_from_slice(s.as_bytes());
    b
}

/// Lowest number for private descriptors: high, so the program's own opens
/// still get the numbers they would get without the shim, and a program
/// that `dup2`s onto a small number it believes free does not hit ours.
fn high_base() -> c_int {
    static BASE: OnceLock<c_int> = OnceLock::new();
    *BASE.get_or_init(|| {
        // SAFETY: a plain C struct the call fills.
        let mut r: libc::rlimit = unsafe { std::mem::zeroed() };
        // SAFETY: `r` is writable.
        let cur = if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) } == 0 {
            r.rlim_cur
        } else {
            1024
        };
        let cur = c_int::try_from(cur).unwrap_or(c_int::MAX);
        if cur > 2048 {
            1024
        } else {
            cur * 3 / 4
        }
    })
}

/// Moves a freshly opened private descriptor to a high number (the low
/// copy is closed; it is the only descriptor of its description). With no
/// high number free (a low RLIMIT_NOFILE) it is closed and -1 returned: a
/// private descriptor never takes a number the program would get, so the
/// shim rather leaves the file to the kernel.
pub fn place_high(fd: c_int) -> c_int {
    if fd < 0 || fd >= high_base() {
        return fd;
    }
    let high = dup_high(fd);
    // SAFETY: closes the low copy of our own descriptor.
    unsafe { real::close(fd) };
    high
}

/// A duplicate of `fd` at a high number, or -1.
pub fn dup_high(fd: c_int) -> c_int {
    // SAFETY: duplicates a descriptor; no memory involved.
    unsafe { real::fcntl(fd, libc::F_DUPFD_CLOEXEC, high_base() as libc::c_ulong) }
}

impl RawBackend {
    /// Private descriptors for the file the program opened as `fd` with
    /// `flags`, which other descriptions of the file may share. Reopens it
    /// read-write through `/proc/self/fd` (a new description, so the
    /// program's offset and `O_APPEND` are not shared); if that is refused,
    /// falls back to a duplicate of the program's descriptor with its
    /// access mode. `None` if neither works. With `single_handle` (see
    /// `fskind`) only the duplicate is tried.
    pub fn open(fd: c_int, flags: c_int, single_handle: bool) -> Option<RawBackend> {
        if !single_handle {
            let path = proc_path(fd);
            // SAFETY: `path` is NUL-terminated; real open only reads it.
            let rw = track(place_high(unsafe {
                real::open(path.as_ptr().cast(), libc::O_RDWR | libc::O_CLOEXEC, 0)
            }));
            if rw >= 0 {
                return Some(RawBackend::new(rw, true, true, true));
            }
        }
        RawBackend::dup_of(fd, flags)
    }

    /// A duplicate of the program's descriptor `fd` (opened with `flags`)
    /// at a high number, with its access mode: no open and no release for
    /// the filesystem, only a flush when it closes (before the program's
    /// own close). The engine does only positioned I/O through it, so the
    /// shared offset does not matter; it holds the program's description
    /// (and its `flock` locks), so it serves that description alone and is
    /// closed with it. `None` for `O_APPEND`, where a positioned write
    /// would append.
    pub fn dup_of(fd: c_int, flags: c_int) -> Option<RawBackend> {
        if flags & libc::O_APPEND != 0 {
            return None;
        }
        let acc = flags & libc::O_ACCMODE;
        let dup = track(dup_high(fd));
        (dup >= 0)
            .then(|| RawBackend::new(dup, acc != libc::O_WRONLY, acc != libc::O_RDONLY, false))
    }

    /// A backend for the only description of a file, which the program
    /// opened as `fd` with `flags` (`st` its status then): it works through
    /// `fd` in the program's own calls on it and takes a duplicate (as
    /// [`RawBackend::dup_of`]) the first time another thread needs it, or
    /// [`RawBackend::take`] is called. An `O_APPEND` description appends
    /// through them too (a real append write on the program's own
    /// description, which is where the program's `write` would append):
    /// no reopen, so a file opened to append a few lines (postmark, a log
    /// reopened per message) costs no open, flush and release more.
    pub fn lent(fd: c_int, flags: c_int, st: &libc::stat64) -> Option<RawBackend> {
        let acc = flags & libc::O_ACCMODE;
        let mut b = RawBackend::new(
            NOT_TAKEN,
            acc != libc::O_WRONLY,
            acc != libc::O_RDONLY,
            false,
        );
        b.lent = Some(Lent {
            fd,
            dev: st.st_dev,
            ino: st.st_ino,
            taking: Mutex::new(()),
            append: flags & libc::O_APPEND != 0,
        });
        Some(b)
    }

    /// Takes the private duplicate of a lent backend now (before the
    /// program's descriptor may go while the description lives on: the
    /// program duplicated it). Returns the descriptor, -1 if it failed.
    pub fn take(&self) -> c_int {
        let fd = self.fd.load(Ordering::Acquire);
        let Some(lent) = &self.lent else { return fd };
        if fd != NOT_TAKEN {
            return fd;
        }
        let _one = lent.taking.lock().unwrap_or_else(|e| e.into_inner());
        let fd = self.fd.load(Ordering::Acquire);
        if fd != NOT_TAKEN || self.is_released() {
            return if fd == NOT_TAKEN { -1 } else { fd };
        }
        let dup = dup_high(lent.fd);
        if dup < 0 {
            // No high number free (a low RLIMIT_NOFILE): no duplicate now;
            // `fd` falls back to the program's descriptor.
            return -1;
        }
        let fd = if lent.is_the_file(dup) {
            track(dup)
        } else {
            // SAFETY: our own duplicate, just made, of another file.
            unsafe { real::close(dup) };
            tracing::warn!(
                "descriptor {} was closed without the shim seeing it; its pending data cannot be written",
                lent.fd
            );
            -1
        };
        self.fd.store(fd, Ordering::Release);
        fd
    }

    /// The private descriptor, if one is open (a lent backend may not have
    /// taken one).
    pub fn taken(&self) -> Option<c_int> {
        Some(self.fd.load(Ordering::Acquire)).filter(|fd| *fd >= 0)
    }

    fn new(fd: c_int, read: bool, write: bool, shareable: bool) -> RawBackend {
        RawBackend {
            shareable,
            lent: None,
            fd: AtomicI32::new(fd),
            read,
            write,
            appender: OnceLock::new(),
            released: AtomicBool::new(false),
            retained: AtomicBool::new(false),
        }
    }

    /// The descriptor to use now (also for `SEEK_DATA`/`SEEK_HOLE`
    /// queries): the private one; for a lent backend without one, the
    /// program's own in the program's call on it, else a duplicate taken
    /// now. -1 once released.
    pub fn fd(&self) -> c_int {
        let fd = self.fd.load(Ordering::Acquire);
        match &self.lent {
            Some(lent) if fd == NOT_TAKEN => {
                if LENT.with(Cell::get) == lent.fd && !self.is_released() {
                    return lent.fd;
                }
                match self.take() {
                    -1 if self.fd.load(Ordering::Acquire) == NOT_TAKEN => {
                        // No number for a duplicate: the program's own
                        // descriptor, while it still is this file's (its
                        // hooked close and `dup2` over it wait for requests
                        // in flight before the number goes).
                        if lent.is_the_file(lent.fd) && !self.is_released() {
                            lent.fd
                        } else {
                            -1
                        }
                    }
                    fd => fd,
                }
            }
            _ => fd,
        }
    }

    /// True if other descriptions of the file may use it.
    pub fn is_shareable(&self) -> bool {
        self.shareable
    }

    /// True once `release` closed the descriptors.
    pub fn is_released(&self) -> bool {
        self.released.load(Ordering::Acquire)
    }

    /// From now on no new description shares these descriptors (`release`
    /// follows).
    pub fn mark_released(&self) {
        self.released.store(true, Ordering::Release);
    }

    /// Marks the descriptors as needed for the program's locks: `release`
    /// leaves them open.
    pub fn retain(&self) {
        self.retained.store(true, Ordering::Release);
    }

    /// True when `retain` was called.
    pub fn is_retained(&self) -> bool {
        self.retained.load(Ordering::Acquire)
    }

    /// Closes the private descriptors now, in the calling thread, rather
    /// than whenever the last reference goes (a worker may hold one a
    /// moment longer). The caller makes sure no request is in flight and
    /// none will be issued. Returns the first close error: on filesystems
    /// that commit a file at its last close (s3fs uploads it, rclone
    /// transfers it), that is where the data can still fail.
    pub fn release(&self) -> Result<()> {
        self.released.store(true, Ordering::Release);
        let main = {
            // Not while a duplicate is being taken: it would stay open.
            let _one = self.lent.as_ref().map(|l| l.taking.lock());
            self.fd.swap(-1, Ordering::AcqRel)
        };
        if main < 0 {
            return Ok(());
        }
        let mut res = Ok(());
        for fd in [Some(main), self.appender.get().copied()]
            .into_iter()
            .flatten()
            .filter(|fd| *fd >= 0)
        {
            untrack(fd);
            // SAFETY: closing descriptors this backend owns; nothing uses
            // them any more (the caller's contract).
            if unsafe { real::close(fd) } < 0 && res.is_ok() {
                res = Err(last());
            }
        }
        res
    }

    /// Opens the append descriptor now (for a handle that will append),
    /// false if that is not possible.
    pub fn ensure_appender(&self) -> bool {
        self.append_fd().is_ok()
    }

    fn append_fd(&self) -> Result<c_int> {
        if self.is_released() {
            return Err(Errno::EBADF);
        }
        if self.lent.as_ref().is_some_and(|l| l.append) {
            // The program's own appending description.
            let fd = self.fd();
            return if fd < 0 { Err(Errno::EBADF) } else { Ok(fd) };
        }
        let fd = *self.appender.get_or_init(|| {
            let path = proc_path(self.take());
            // SAFETY: `path` is NUL-terminated.
            track(place_high(unsafe {
                real::open(
                    path.as_ptr().cast(),
                    libc::O_WRONLY | libc::O_APPEND | libc::O_CLOEXEC,
                    0,
                )
            }))
        });
        if fd < 0 {
            Err(Errno::EBADF)
        } else {
            Ok(fd)
        }
    }
}

fn iov(bufs: &[&[u8]]) -> Vec<libc::iovec> {
    bufs.iter()
        .map(|b| libc::iovec {
            iov_base: b.as_ptr() as *mut _,
            iov_len: b.len(),
        })
        .collect()
}

fn ret(r: isize) -> Result<usize> {
    if r < 0 {
        Err(last())
    } else {
        Ok(r as usize)
    }
}

fn ok(r: c_int) -> Result<()> {
    if r < 0 {
        Err(last())
    } else {
        Ok(())
    }
}

fn off(o: u64) -> Result<i64> {
    i64::try_from(o).map_err(|_| Errno::EOVERFLOW)
}

impl Backend for RawBackend {
    fn pread(&self, buf: &mut [u8], offset: u64) -> Result<usize> {
        // SAFETY: `buf` is a live mutable buffer of `buf.len()` bytes.
        ret(unsafe { real::pread64(self.fd(), buf.as_mut_ptr().cast(), buf.len(), off(offset)?) })
    }

    fn pwritev(&self, bufs: &[&[u8]], offset: u64) -> Result<usize> {
        let v = iov(bufs);
        let cnt = v.len().min(libc::UIO_MAXIOV as usize) as c_int;
        // SAFETY: every iovec points into a slice borrowed for this call.
        ret(unsafe { real::pwritev64(self.fd(), v.as_ptr(), cnt, off(offset)?) })
    }

    fn append(&self, bufs: &[&[u8]]) -> Result<(usize, Option<u64>)> {
        let fd = self.append_fd()?;
        let v = iov(bufs);
        let cnt = v.len().min(libc::UIO_MAXIOV as usize) as c_int;
        // SAFETY: as in `pwritev`.
        let n = ret(unsafe { real::writev(fd, v.as_ptr(), cnt) })?;
        // SAFETY: no memory involved.
        let end = unsafe { real::lseek64(fd, 0, libc::SEEK_CUR) };
        Ok((n, u64::try_from(end).ok()))
    }

    fn sync(&self, data_only: bool) -> Result<()> {
        let fd = self.fd();
        // SAFETY: no memory involved.
        ok(unsafe {
            if data_only {
                real::fdatasync(fd)
            } else {
                real::fsync(fd)
            }
        })
    }

    fn truncate(&self, len: u64) -> Result<()> {
        // SAFETY: no memory involved.
        ok(unsafe { real::ftruncate64(self.fd(), off(len)?) })
    }

    fn allocate(&self, mode: i32, offset: u64, len: u64) -> Result<()> {
        // SAFETY: no memory involved.
        ok(unsafe { real::fallocate64(self.fd(), mode, off(offset)?, off(len)?) })
    }

    fn size(&self) -> Result<u64> {
        let fd = self.fd();
        // SAFETY: `st` is a plain C struct the call fills.
        let mut st: libc::stat64 = unsafe { std::mem::zeroed() };
        // SAFETY: `st` is valid for writing.
        ok(unsafe { real::fstat64(fd, &mut st) })?;
        Ok(st.st_size as u64)
    }

    fn can_read(&self) -> bool {
        self.read
    }

    fn can_write(&self) -> bool {
        self.write
    }

    fn defers_background(&self) -> bool {
        self.lent.is_some() && self.fd.load(Ordering::Acquire) == NOT_TAKEN
    }

    // A private descriptor, never the program's: a request on the ring
    // outlives the call that submitted it, and the program may close its
    // descriptor as soon as its own call returns. A lent backend takes
    // its duplicate here, as its first request on a worker would.
    fn path(&self) -> Option<Vec<u8>> {
        // Only a descriptor open now, without taking one: the program's
        // own in its call on it, else the private one.
        let fd = match (self.taken(), &self.lent) {
            (Some(fd), _) => fd,
            (None, Some(l)) if LENT.with(Cell::get) == l.fd && !self.is_released() => l.fd,
            _ => return None,
        };
        crate::identity::fd_path(fd)
    }

    fn ring_fd(&self, append: bool) -> Option<c_int> {
        if self.is_released() {
            return None;
        }
        let fd = if append && !self.lent.as_ref().is_some_and(|l| l.append) {
            self.append_fd().ok()?
        } else {
            self.take()
        };
        (fd >= 0).then_some(fd)
    }
}

impl Drop for RawBackend {
    fn drop(&mut self) {
        if self.is_released() {
            return;
        }
        for fd in [self.taken(), self.appender.get().copied()]
            .into_iter()
            .flatten()
        {
            if fd >= 0 {
                untrack(fd);
                // SAFETY: closing descriptors this backend owns (never the
                // program's: `taken` is the private one or nothing).
                unsafe { real::close(fd) };
            }
        }
    }
}
