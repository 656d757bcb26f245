//! A handle: what one open file description is to the engine. It carries
//! the offset and access mode that `dup`'ed descriptors share, and how much
//! of the file's sticky error it has already reported.

use crate::error::{Errno, Result};
use crate::file::File;
use crate::stats::Snapshot;
use std::io::SeekFrom;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard};

/// Access mode of a handle, from the flags it was opened with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mode {
    /// Opened for reading.
    pub read: bool,
    /// Opened for writing.
    pub write: bool,
    /// Every write appends (`O_APPEND`).
    pub append: bool,
}

impl Mode {
    /// Read only.
    pub const READ: Mode = Mode {
        read: true,
        write: false,
        append: false,
    };
    /// Write only.
    pub const WRITE: Mode = Mode {
        read: false,
        write: true,
        append: false,
    };
    /// Read and write.
    pub const READ_WRITE: Mode = Mode {
        read: true,
        write: true,
        append: false,
    };
    /// Write only, appending.
    pub const APPEND: Mode = Mode {
        read: false,
        write: true,
        append: true,
    };
}

/// An open file description managed by the engine. Share it (e.g. in an
/// `Arc`) between descriptors that `dup` made: they share its offset.
pub struct Handle {
    file: Arc<File>,
    id: u64,
    mode: Mode,
    // The file offset. Held for the whole of a read or write that uses it,
    // as the kernel holds f_pos_lock, so concurrent users never interleave.
    pos: Mutex<u64>,
    // Failure count of the file already reported through this handle.
    err_seen: AtomicU64,
    // True once the description is handed to the caller (`hand_over`). Every
    // data operation holds it shared, so the hand-over waits for those in
    // progress and every later one answers `Errno::HANDED_OVER`.
    gate: RwLock<bool>,
}

impl Handle {
    pub(crate) fn new(file: Arc<File>, id: u64, mode: Mode) -> Handle {
        let err_seen = AtomicU64::new(file.error_seq());
        file.handles.fetch_add(1, Ordering::Relaxed);
        Handle {
            file,
            id,
            mode,
            pos: Mutex::new(0),
            err_seen,
            gate: RwLock::new(false),
        }
    }

    /// Shared hold on the gate for one data operation.
    fn enter(&self) -> Result<RwLockReadGuard<'_, bool>> {
        let g = self.gate.read().unwrap_or_else(|p| p.into_inner());
        if *g {
            Err(Errno::HANDED_OVER)
        } else {
            Ok(g)
        }
    }

    /// Ends the engine's part in this description: waits for the operations
    /// in progress, writes the file's pending data, and calls `take` with
    /// the offset (to set the kernel's) before any later operation can run;
    /// those all answer `Errno::HANDED_OVER` and are the caller's to do.
    /// Returns a write error not yet reported through this handle.
    pub fn hand_over(&self, take: impl FnOnce(u64)) -> Result<()> {
        let mut g = self.gate.write().unwrap_or_else(|p| p.into_inner());
        if *g {
            return Ok(());
        }
        self.file.flush();
        take(*self.pos());
        *g = true;
        self.file.take_error(&self.err_seen)
    }

    fn pos(&self) -> MutexGuard<'_, u64> {
        self.pos.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn readable(&self) -> Result<()> {
        if self.mode.read {
            Ok(())
        } else {
            Err(Errno::EBADF)
        }
    }

    fn writable(&self) -> Result<()> {
        if self.mode.write {
            Ok(())
        } else {
            Err(Errno::EBADF)
        }
    }

    /// The access mode.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The file's display name, as given to `Engine::open`.
    pub fn name(&self) -> &str {
        &self.file.name
    }

    /// `read`: at the offset, which advances by what was read.
    pub fn read(&self, buf: &mut [u8]) -> Result<usize> {
        self.readable()?;
        let _g = self.enter()?;
        let mut pos = self.pos();
        let n = self.file.read(self.id, *pos, buf)?;
        *pos += n as u64;
        Ok(n)
    }

    /// `pread`: at `off`; the offset does not move.
    pub fn pread(&self, buf: &mut [u8], off: u64) -> Result<usize> {
        self.readable()?;
        let _g = self.enter()?;
        self.file.read(self.id, off, buf)
    }

    /// `write`: at the offset (at the end of file for append handles); the
    /// offset moves past the data. Reports a background failure first.
    pub fn write(&self, buf: &[u8]) -> Result<usize> {
        self.writable()?;
        let _g = self.enter()?;
        let mut pos = self.pos();
        let at = if self.mode.append { None } else { Some(*pos) };
        *pos = self.file.write(at, buf, &self.err_seen)?.unwrap_or(*pos);
        Ok(buf.len())
    }

    /// `pwrite`: at `off`, or at the end of file for append handles (as
    /// Linux does); the offset does not move.
    pub fn pwrite(&self, buf: &[u8], off: u64) -> Result<usize> {
        self.writable()?;
        let _g = self.enter()?;
        let at = if self.mode.append { None } else { Some(off) };
        self.file.write(at, buf, &self.err_seen)?;
        Ok(buf.len())
    }

    /// `lseek` with `SEEK_SET`, `SEEK_CUR` or `SEEK_END` (the size includes
    /// pending data). Leaving the read-ahead window drops it.
    pub fn seek(&self, to: SeekFrom) -> Result<u64> {
        let _g = self.enter()?;
        let mut pos = self.pos();
        let target = match to {
            SeekFrom::Start(n) => Some(n),
            SeekFrom::Current(d) => pos.checked_add_signed(d),
            SeekFrom::End(d) => self.file.size()?.checked_add_signed(d),
        };
        let target = target
            .filter(|t| *t <= i64::MAX as u64)
            .ok_or(Errno::EINVAL)?;
        *pos = target;
        self.file.seek_hint(self.id, target);
        Ok(target)
    }

    /// The offset.
    pub fn position(&self) -> u64 {
        *self.pos()
    }

    /// Sets the offset without any check (the shim mirrors a kernel offset).
    pub fn set_position(&self, off: u64) {
        *self.pos() = off;
    }

    /// Waits until every byte written to the file before the call is on
    /// storage; returns a background failure not yet reported here.
    pub fn flush(&self) -> Result<()> {
        self.file.flush();
        self.file.take_error(&self.err_seen)
    }

    /// `fsync` (`data_only == false`) or `fdatasync`: flush, then the
    /// backend's sync, whose result is the truth.
    pub fn sync(&self, data_only: bool) -> Result<()> {
        self.flush()?;
        self.file.sync(data_only)
    }

    /// `ftruncate`, after pending writes (`EINVAL` if not open for writing,
    /// as Linux answers).
    pub fn truncate(&self, len: u64) -> Result<()> {
        if !self.mode.write {
            return Err(Errno::EINVAL);
        }
        let _g = self.enter()?;
        self.file.truncate(len)
    }

    /// `fallocate`, after pending writes.
    pub fn allocate(&self, mode: i32, off: u64, len: u64) -> Result<()> {
        self.writable()?;
        let _g = self.enter()?;
        self.file.allocate(mode, off, len)
    }

    /// The file size including pending data (for `fstat` and `SEEK_END`).
    pub fn size(&self) -> Result<u64> {
        self.file.size()
    }

    /// End of the file's pending data (0 when none): `fstat` reports the
    /// larger of this and what storage says, without a second request.
    pub fn pending_end(&self) -> u64 {
        self.file.pending_end()
    }

    /// The program (or the shim, at open) saw the file's attributes: when
    /// they changed in a way this process's writes do not explain (another
    /// process wrote, truncated or rewrote the file), cached data and the
    /// known size are dropped. Returns true if they were.
    pub fn observe(&self, a: crate::Attrs) -> bool {
        self.file.observe(a)
    }

    /// Drops read-ahead data of the file (a lock was taken, or another
    /// program may have changed it).
    pub fn drop_cache(&self) {
        self.file.drop_cache();
    }

    /// Something outside the engine changed the file: drops its cached data
    /// and what the engine knew of its size.
    pub fn invalidate(&self) {
        self.file.invalidate();
    }

    /// This file's statistics.
    pub fn stats(&self, reset: bool) -> Snapshot {
        self.file.rec.file.snapshot(reset)
    }

    /// True when no other handle (description) of the file is open.
    pub fn is_last(&self) -> bool {
        self.file.handles.load(Ordering::Relaxed) == 1
    }

    /// Waits until no storage request of the file is in flight (writes or
    /// prefetches), so that its backend can be closed now: filesystems that
    /// commit a file when its last descriptor closes (s3fs uploads the
    /// object, rclone transfers it) must see that close before the
    /// program's own close returns.
    pub fn quiesce(&self) {
        self.file.quiesce();
    }

    /// `close`: waits for the file's pending data and returns a background
    /// failure not yet reported through this handle.
    pub fn close(self) -> Result<()> {
        self.file.flush();
        self.file.take_error(&self.err_seen)
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.file.handles.fetch_sub(1, Ordering::Relaxed);
        self.file.forget(self.id);
    }
}
