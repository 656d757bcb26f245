//! Per-file state shared by every handle of one file in the process, and the
//! background jobs (write batches, prefetches) that move its data: the
//! state and its locking here, the write path in `write`, the read path in
//! `read`.
//!
//! Locking: one mutex per file guards all its state; storage requests run
//! without it. Lock order is handle offset, then file; workers take only the
//! file lock. The condvar is notified after every change a waiter may want
//! (a batch or prefetch finished), always after the lock is released.

mod read;
mod write;

use crate::age::Ages;
use crate::aimd::{Aimd, Depth};
use crate::backend::Backend;
use crate::budget::{Budget, Reservation};
use crate::clock::Clock;
use crate::config::{Config, Executor};
use crate::engine::Attrs;
use crate::engine::Hooks;
use crate::error::{Errno, Result};
use crate::pool::Pool;
use crate::read_ahead::{Lookup, Prefetch, ReadAhead, Sizes};
use crate::ring::Ring;
use crate::stats::{nanos, Counters, Recorder};
use crate::write_buffer::{Batch, Put, WriteBuffer};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::time::Instant;

/// Stats rows of closed files kept for the report.
const CLOSED_ROWS: usize = 256;

/// What every file of one engine shares.
pub(crate) struct Shared {
    pub cfg: Config,
    pub pool: Pool,
    /// The io_uring executor, set up at the first background request when
    /// `cfg.executor` asks for it (`None`: refused, the pool runs all).
    pub ring: OnceLock<Option<Ring>>,
    pub hooks: Hooks,
    /// Each filesystem's requests in flight and their limit, by device.
    pub depths: Mutex<HashMap<u64, Arc<Depth>>>,
    pub budget: Arc<Budget>,
    /// The next file's number in the journal (from 1).
    pub next_file: AtomicU64,
    pub totals: Arc<Counters>,
    pub closed: Mutex<VecDeque<(String, Arc<Counters>)>>,
    /// Time for the age rules (real time but in tests).
    pub clock: Arc<dyn Clock>,
    /// Files whose small pending data waits for the program's thread.
    pub deferrals: Arc<crate::defer::Deferrals>,
}

impl Shared {
    /// The ring, once set up; sets it up at the first call when the
    /// configuration asks for one. A refusal is said once, at info: the
    /// pool does the work, as it does by default.
    pub fn ring(&self) -> Option<&Ring> {
        if self.cfg.executor != Executor::Uring {
            return None;
        }
        self.ring
            .get_or_init(|| {
                match Ring::new(self.pool.clone(), self.cfg.workers, self.hooks) {
                    Ok(r) => Some(r),
                    Err(e) => {
                        tracing::info!(
                            "io_uring is not available ({e}); background I/O runs on the worker pool"
                        );
                        None
                    }
                }
            })
            .as_ref()
    }

    /// The request depth of filesystem `dev`.
    pub fn depth(&self, dev: u64) -> Arc<Depth> {
        let mut d = self.depths.lock().unwrap_or_else(|p| p.into_inner());
        Arc::clone(
            d.entry(dev)
                .or_insert_with(|| Arc::new(Depth::new(self.cfg.fs_inflight))),
        )
    }
}

struct State {
    backend: Arc<dyn Backend>,
    wb: WriteBuffer,
    ra: ReadAhead,
    // Size of the file on storage as this process knows it (None: not asked yet).
    stored: Option<u64>,
    // Sticky error: `err_seq` counts failures, `err` is the latest errno.
    err_seq: u64,
    err: i32,
    aimd: Aimd,
    // When the pending writes arrived, for the maximum age.
    ages: Ages,
    // The file's attributes as last seen by the program or at open, and
    // whether a write of ours reached storage since (which changes them).
    seen: Option<Attrs>,
    wrote_since_seen: bool,
    // Batches cut but not yet started. Every batch pushed here has a pool
    // job submitted for it; a thread waiting for the data (flush, close,
    // fsync) may take one first and write it itself, sparing the hand-off
    // to a worker, and the job then finds nothing and returns.
    ready: VecDeque<Batch>,
    // Prefetches submitted and not yet landed: their requests use the
    // backend even after the handle that asked for them is gone.
    prefetching: usize,
    // The file's entry in the journal's files table, once it has had
    // pending data there.
    named: Named,
}

/// Whether the journal names the file (for the flusher).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Named {
    /// Not yet: no data of it was in the journal.
    No,
    /// In this entry of the files table.
    Yes(u32),
    /// The table could not take it (full, or the path too long): its data
    /// is not protected, which was said once.
    Failed,
}

/// One file (inode) as the engine sees it.
pub(crate) struct File {
    pub shared: Arc<Shared>,
    pub name: String,
    // The file's number in the journal, and its identity.
    id: u64,
    // Set once the journal names the file (`Named::Yes`): its writes then
    // call `Hooks::watch`, off the lock.
    journaled: AtomicBool,
    key: crate::engine::FileKey,
    pub rec: Recorder,
    // Handles open on the file. A worker finishing a batch may still hold
    // the file for a moment after the last handle closed; gauges count
    // only files with handles.
    pub handles: AtomicUsize,
    // The requests in flight on the file's filesystem.
    depth: Arc<Depth>,
    // Set while the file is on the deferral timer's list.
    deferred: AtomicBool,
    st: Mutex<State>,
    cv: Condvar,
}

enum Step {
    Copied(usize),
    Wait,
    Miss,
    // The end of data storage returned short: the read ends here.
    End,
}

impl File {
    pub fn new(
        shared: Arc<Shared>,
        key: crate::engine::FileKey,
        name: &str,
        backend: Arc<dyn Backend>,
        depth: Arc<Depth>,
    ) -> File {
        let cfg = &shared.cfg;
        let rec = Recorder {
            file: Arc::new(Counters::default()),
            total: Arc::clone(&shared.totals),
        };
        rec.file
            .buffer_limit
            .store(cfg.initial_write_buffer as u64, Relaxed);
        rec.file.inflight_limit.store(1, Relaxed);
        let id = shared.next_file.fetch_add(1, Relaxed);
        let st = State {
            backend,
            wb: WriteBuffer::new(cfg.initial_write_buffer, id),
            ra: ReadAhead::default(),
            stored: None,
            err_seq: 0,
            err: 0,
            aimd: Aimd::new(cfg.max_inflight),
            ages: Ages::new(cfg.max_age),
            seen: None,
            wrote_since_seen: false,
            ready: VecDeque::new(),
            prefetching: 0,
            named: Named::No,
        };
        File {
            id,
            journaled: AtomicBool::new(false),
            key,
            name: name.to_string(),
            rec,
            handles: AtomicUsize::new(0),
            depth,
            deferred: AtomicBool::new(false),
            st: Mutex::new(st),
            cv: Condvar::new(),
            shared,
        }
    }
    fn lock(&self) -> MutexGuard<'_, State> {
        self.st.lock().unwrap_or_else(|p| p.into_inner())
    }
    fn wait<'a>(&self, g: MutexGuard<'a, State>) -> MutexGuard<'a, State> {
        self.cv.wait(g).unwrap_or_else(|p| p.into_inner())
    }
    /// Where the file ends as far as this process knows: storage's size
    /// (as stored, or as last seen when none of our writes landed since)
    /// and pending data; `None` when it does not know.
    fn known_end(st: &State) -> Option<u64> {
        File::storage_end(st).map(|s| s.max(st.wb.index().end()))
    }
    /// Storage's size as this process knows it: as stored, or as last seen
    /// when none of our writes landed since.
    fn storage_end(st: &State) -> Option<u64> {
        match st.stored {
            Some(s) => Some(s),
            None if !st.wrote_since_seen => st.seen.map(|a| a.size),
            None => None,
        }
    }
    fn sizes(&self) -> Sizes {
        let c = &self.shared.cfg;
        Sizes {
            initial: c.initial_read_ahead,
            max: c.read_ahead,
            io: c.io_size,
        }
    }
    /// Takes `backend` for every later request of the file.
    pub fn set_backend(&self, backend: Arc<dyn Backend>) {
        self.lock().backend = backend;
    }
    /// Once the journal holds data of the file: names the file there (the
    /// write then calls `Hooks::watch`, off the lock, before it returns).
    fn protect(&self, st: &mut State) {
        let Some(journal) = self.shared.budget.journal() else {
            return;
        };
        if st.named == Named::No && !st.wb.is_idle() {
            let path = st
                .backend
                .path()
                .unwrap_or_else(|| self.name.as_bytes().to_vec());
            st.named = match journal.name_file(self.id, self.key.dev, self.key.ino, &path) {
                Some(e) => {
                    self.journaled.store(true, Relaxed);
                    Named::Yes(e)
                }
                None => {
                    tracing::warn!(
                        "{}: its pending data is not crash-safe (more than {} files with pending data, or a path longer than {} bytes)",
                        self.name,
                        conveyor_journal::FILES,
                        conveyor_journal::MAX_PATH
                    );
                    Named::Failed
                }
            };
        }
    }

    /// Replaces the backend when a new handle brings one that can do more
    /// (read and write where the old one could do only one), or when no
    /// handle is open: the last one to close may have closed the old
    /// backend's descriptors while a worker still held this file.
    pub fn offer_backend(&self, backend: Arc<dyn Backend>) {
        let mut st = self.lock();
        if self.handles.load(Relaxed) == 0 {
            st.backend = backend;
            return;
        }
        let old = (st.backend.can_read(), st.backend.can_write());
        let new = (backend.can_read(), backend.can_write());
        if new != old && (new.0 || !old.0) && (new.1 || !old.1) {
            st.backend = backend;
        }
    }
    /// End of the pending data (0 when none): `fstat` reports the larger of
    /// this and the stored size.
    pub fn pending_end(&self) -> u64 {
        self.lock().wb.index().end()
    }
    /// True while data written to the file is not yet all on storage.
    pub fn has_pending(&self) -> bool {
        !self.lock().wb.is_idle()
    }
    /// Write-behind memory held now and the file's adaptive limit.
    pub fn buffered(&self) -> (usize, usize) {
        let st = self.lock();
        (st.wb.held(), st.wb.limit)
    }
    /// The current failure count; a new handle starts from it.
    pub fn error_seq(&self) -> u64 {
        self.lock().err_seq
    }
    /// The sticky error, if it is newer than what `seen` has reported.
    pub fn take_error(&self, seen: &AtomicU64) -> Result<()> {
        report(&self.lock(), seen)
    }
    /// Size including pending data.
    pub fn size(&self) -> Result<u64> {
        let (pending, quiet, backend) = {
            let st = self.lock();
            (
                st.wb.index().end(),
                quiet_mark(&st),
                Arc::clone(&st.backend),
            )
        };
        // Read after the pending end: data that left the index is stored.
        let stored = retry(|| backend.size())?;
        let mut st = self.lock();
        // Adopt the answer as the known stored size only if no write of
        // ours was pending or queued around the request: a size read while
        // a batch was half written would place later appends too low.
        if quiet.is_some() && quiet == quiet_mark(&st) {
            st.stored = Some(stored);
        }
        Ok(pending.max(stored))
    }
    /// Something outside the engine changed the file (a truncate by path, a
    /// copy into it): drops cached data and forgets the known size.
    pub fn invalidate(&self) {
        let mut st = self.lock();
        st.ra.invalidate_all();
        st.stored = None;
    }
    /// The program (or the shim at open) saw the file's attributes `a`.
    /// When they differ from what was seen before in a way this process's
    /// own writes do not explain, another process changed the file: cached
    /// data and the known size are dropped. Returns true if they were.
    pub fn observe(&self, a: Attrs) -> bool {
        let mut st = self.lock();
        let ours = st.wrote_since_seen || !st.wb.is_idle();
        let changed = match st.seen {
            None => false,
            Some(old) if old == a => false,
            // Our own writes move the times and grow the file (our own
            // truncation forgets what was seen); a file smaller than what
            // is known to be stored was cut by someone else.
            Some(old) if ours => a.size < st.stored.unwrap_or(old.size).max(old.size),
            Some(_) => true,
        };
        st.seen = Some(a);
        st.wrote_since_seen = false;
        if changed {
            st.ra.invalidate_all();
            st.stored = None;
        }
        changed
    }
    /// Drops cached read-ahead data (another process may change the file).
    pub fn drop_cache(&self) {
        self.lock().ra.invalidate_all();
    }
    /// A handle moved its offset to `off`: leaving its window drops it.
    pub fn seek_hint(&self, handle: u64, off: u64) {
        self.lock().ra.seek(handle, off, &self.sizes());
    }
    /// Forgets the read-ahead state of a closed handle.
    pub fn forget(&self, handle: u64) {
        self.lock().ra.close(handle);
    }
}

impl Drop for File {
    fn drop(&mut self) {
        let named = self.st.get_mut().map(|s| s.named).unwrap_or(Named::No);
        if let (Named::Yes(e), Some(j)) = (named, self.shared.budget.journal()) {
            j.unname_file(e);
        }
        if let Ok(mut closed) = self.shared.closed.lock() {
            if closed.len() >= CLOSED_ROWS {
                closed.pop_front();
            }
            closed.push_back((self.name.clone(), Arc::clone(&self.rec.file)));
        }
    }
}

/// A mark that is equal before and after a storage request only if this
/// file had no pending write at either point and queued none in between.
fn quiet_mark(st: &State) -> Option<u64> {
    st.wb.is_idle().then(|| st.wb.next_seq())
}

/// The sticky error, if it is newer than what `seen` has reported.
fn report(st: &State, seen: &AtomicU64) -> Result<()> {
    if st.err_seq > seen.load(Relaxed) {
        seen.store(st.err_seq, Relaxed);
        return Err(Errno(st.err));
    }
    Ok(())
}

/// Runs a storage request again while it fails with `EINTR`.
fn retry<T>(mut op: impl FnMut() -> Result<T>) -> Result<T> {
    loop {
        match op() {
            Err(Errno::EINTR) => {}
            r => return r,
        }
    }
}
