//! The storage interface below the engine: positioned I/O on one file.
//!
//! Implementations make exactly one storage request per call and may return
//! short counts or `EINTR`; the engine continues and retries. The shim
//! implements this trait with the real libc functions on a private
//! descriptor; tests use [`crate::mock::MemBackend`].

use crate::error::{Errno, Result};
use std::fs::File;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::FileExt;

/// Positioned I/O on one open file. Every method is one storage request.
pub trait Backend: Send + Sync + 'static {
    /// Reads up to `buf.len()` bytes at `offset`; `Ok(0)` means end of file.
    fn pread(&self, buf: &mut [u8], offset: u64) -> Result<usize>;
    /// Writes the concatenation of `bufs` at `offset`; may write less.
    fn pwritev(&self, bufs: &[&[u8]], offset: u64) -> Result<usize>;
    /// Appends the concatenation of `bufs` at the file's current end with a
    /// real append write, so concurrent appenders never overwrite each other.
    /// Returns the bytes written and, when known, the end offset they reached.
    fn append(&self, bufs: &[&[u8]]) -> Result<(usize, Option<u64>)>;
    /// `fsync` (`data_only == false`) or `fdatasync`.
    fn sync(&self, data_only: bool) -> Result<()>;
    /// `ftruncate`.
    fn truncate(&self, len: u64) -> Result<()>;
    /// `fallocate(mode, offset, len)`.
    fn allocate(&self, mode: i32, offset: u64, len: u64) -> Result<()>;
    /// The size storage reports (`fstat`'s `st_size`).
    fn size(&self) -> Result<u64>;
    /// Whether reads can succeed (a backend over a write-only descriptor
    /// cannot read). The engine prefers a backend that can do more.
    fn can_read(&self) -> bool {
        true
    }
    /// Whether writes can succeed.
    fn can_write(&self) -> bool {
        true
    }
    /// True while background I/O would cost storage a request the
    /// program's own calls do not (the shim's backend of a file's only
    /// description works through the program's descriptor until a worker
    /// needs one of its own, whose close is one more flush). The engine
    /// then starts no background write for less than a request's worth of
    /// pending data: the program's next flush, close or full request writes
    /// it, on its own thread, and after `Config::defer_limit` without one
    /// a background write does (a program that stops writing must not
    /// leave its data unwritten).
    fn defers_background(&self) -> bool {
        false
    }
    /// A descriptor the io_uring executor may use for this file's
    /// background requests (positioned reads and writes; with `append`,
    /// append writes), open at least as long as the backend lives and is
    /// not released, and never one the program can close meanwhile.
    /// `None` keeps the file's requests on the worker pool.
    fn ring_fd(&self, append: bool) -> Option<RawFd> {
        let _ = append;
        None
    }
    /// The file's path now (absolute), where the flusher finds it should
    /// the process die with data of it in the journal; `None` leaves the
    /// name the file was opened with. The shim reads its descriptor's
    /// link in `/proc/self/fd`, which follows renames made before.
    fn path(&self) -> Option<Vec<u8>> {
        None
    }
}

/// A [`Backend`] over a `std::fs::File`, used by benchmarks and examples
/// that run the engine on real files without the shim.
pub struct FileBackend {
    file: File,
    appender: Option<File>,
}

impl FileBackend {
    /// Wraps `file` (opened for reading and/or writing). `appender`, if
    /// given, is the same file opened with `O_APPEND` for append writes.
    pub fn new(file: File, appender: Option<File>) -> FileBackend {
        FileBackend { file, appender }
    }
}

fn check(ret: isize) -> Result<usize> {
    if ret < 0 {
        Err(Errno(
            std::io::Error::last_os_error()
                .raw_os_error()
                .unwrap_or(libc::EIO),
        ))
    } else {
        Ok(ret as usize)
    }
}

fn iovecs(bufs: &[&[u8]]) -> Vec<libc::iovec> {
    bufs.iter()
        .map(|b| libc::iovec {
            iov_base: b.as_ptr() as *mut libc::c_void,
            iov_len: b.len(),
        })
        .collect()
}

impl Backend for FileBackend {
    fn pread(&self, buf: &mut [u8], offset: u64) -> Result<usize> {
        self.file
            .read_at(buf, offset)
            .map_err(|e| Errno::from_io(&e))
    }

    fn pwritev(&self, bufs: &[&[u8]], offset: u64) -> Result<usize> {
        let iov = iovecs(bufs);
        let off = i64::try_from(offset).map_err(|_| Errno::EOVERFLOW)?;
        // SAFETY: every iovec points into a slice borrowed for this call, the
        // count matches the vector, and the descriptor is owned by `self`.
        let ret =
            unsafe { libc::pwritev(self.file.as_raw_fd(), iov.as_ptr(), iov.len() as i32, off) };
        check(ret)
    }

    fn append(&self, bufs: &[&[u8]]) -> Result<(usize, Option<u64>)> {
        let f = self.appender.as_ref().ok_or(Errno::EBADF)?;
        let iov = iovecs(bufs);
        // SAFETY: as in `pwritev`; `writev` on an O_APPEND descriptor.
        let ret = unsafe { libc::writev(f.as_raw_fd(), iov.as_ptr(), iov.len() as i32) };
        let n = check(ret)?;
        // The private O_APPEND description's offset is the end just written.
        // SAFETY: lseek on a descriptor owned by `self`, no memory involved.
        let end = unsafe { libc::lseek(f.as_raw_fd(), 0, libc::SEEK_CUR) };
        Ok((n, u64::try_from(end).ok()))
    }

    fn sync(&self, data_only: bool) -> Result<()> {
        let r = if data_only {
            self.file.sync_data()
        } else {
            self.file.sync_all()
        };
        r.map_err(|e| Errno::from_io(&e))
    }

    fn truncate(&self, len: u64) -> Result<()> {
        self.file.set_len(len).map_err(|e| Errno::from_io(&e))
    }

    fn allocate(&self, mode: i32, offset: u64, len: u64) -> Result<()> {
        let off = i64::try_from(offset).map_err(|_| Errno::EOVERFLOW)?;
        let len = i64::try_from(len).map_err(|_| Errno::EOVERFLOW)?;
        // SAFETY: fallocate takes only integers and a descriptor owned by `self`.
        let ret = unsafe { libc::fallocate(self.file.as_raw_fd(), mode, off, len) };
        check(ret as isize).map(|_| ())
    }

    fn size(&self) -> Result<u64> {
        self.file
            .metadata()
            .map(|m| m.len())
            .map_err(|e| Errno::from_io(&e))
    }

    fn ring_fd(&self, append: bool) -> Option<RawFd> {
        if append {
            self.appender.as_ref().map(|f| f.as_raw_fd())
        } else {
            Some(self.file.as_raw_fd())
        }
    }
}
