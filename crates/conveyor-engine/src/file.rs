//! Per-file state shared by every handle of one file in the process, and the
//! background jobs (write batches, prefetches) that move its data.
//!
//! Locking: one mutex per file guards all its state; storage requests run
//! without it. Lock order is handle offset, then file; workers take only the
//! file lock. The condvar is notified after every change a waiter may want
//! (a batch or prefetch finished), always after the lock is released.

use crate::age::Ages;
use crate::aimd::Aimd;
use crate::backend::Backend;
use crate::budget::{Budget, Reservation};
use crate::clock::Clock;
use crate::config::Config;
use crate::engine::Attrs;
use crate::error::{Errno, Result};
use crate::pool::Pool;
use crate::read_ahead::{Lookup, Prefetch, ReadAhead, Sizes};
use crate::stats::{nanos, Counters, Recorder};
use crate::write_buffer::{Batch, Put, WriteBuffer};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Instant;

/// Stats rows of closed files kept for the report.
const CLOSED_ROWS: usize = 256;

/// What every file of one engine shares.
pub(crate) struct Shared {
    pub cfg: Config,
    pub pool: Pool,
    pub budget: Arc<Budget>,
    pub totals: Arc<Counters>,
    pub closed: Mutex<VecDeque<(String, Arc<Counters>)>>,
    /// Time for the age rules (real time but in tests).
    pub clock: Arc<dyn Clock>,
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
}

/// One file (inode) as the engine sees it.
pub(crate) struct File {
    pub shared: Arc<Shared>,
    pub name: String,
    pub rec: Recorder,
    // Handles open on the file. A worker finishing a batch may still hold
    // the file for a moment after the last handle closed; gauges count
    // only files with handles.
    pub handles: AtomicUsize,
    st: Mutex<State>,
    cv: Condvar,
}

enum Step {
    Copied(usize),
    Wait,
    Miss,
}

impl File {
    pub fn new(shared: Arc<Shared>, name: &str, backend: Arc<dyn Backend>) -> File {
        let cfg = &shared.cfg;
        let rec = Recorder {
            file: Arc::new(Counters::default()),
            total: Arc::clone(&shared.totals),
        };
        rec.file
            .buffer_limit
            .store(cfg.initial_write_buffer as u64, Relaxed);
        rec.file.inflight_limit.store(1, Relaxed);
        let st = State {
            backend,
            wb: WriteBuffer::new(cfg.initial_write_buffer),
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
        };
        File {
            name: name.to_string(),
            rec,
            handles: AtomicUsize::new(0),
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

    fn sizes(&self) -> Sizes {
        let c = &self.shared.cfg;
        Sizes {
            initial: c.initial_read_ahead,
            max: c.read_ahead,
            io: c.io_size,
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

    // ---- writing ----

    /// Writes `data` at `off`, or appends it when `off` is `None`. Returns
    /// the offset just past the data (`None` for an empty write). A failure
    /// newer than what `seen` has reported is returned instead, checked
    /// under the lock that queues the data, so nothing is queued behind a
    /// failure the caller has not heard of.
    pub fn write(
        self: &Arc<Self>,
        off: Option<u64>,
        data: &[u8],
        seen: &AtomicU64,
    ) -> Result<Option<u64>> {
        let t0 = Instant::now();
        let len = data.len() as u64;
        let res = if data.is_empty() {
            self.take_error(seen).map(|_| None)
        } else if data.len() > self.shared.cfg.write_buffer {
            self.flush();
            self.take_error(seen)
                .and_then(|_| self.write_direct(off, data))
                .map(Some)
        } else {
            self.write_buffered(off, data, seen, self.shared.clock.now())
                .map(Some)
        };
        if res.is_ok() {
            self.rec.add(|c| &c.app_write_bytes, len);
        }
        self.rec.sample(|c| &c.app_write_ns, nanos(t0.elapsed()));
        res
    }

    fn write_buffered(
        self: &Arc<Self>,
        off: Option<u64>,
        data: &[u8],
        seen: &AtomicU64,
        now: Instant,
    ) -> Result<u64> {
        let cfg = &self.shared.cfg;
        let budget = &self.shared.budget;
        let mut st = self.lock();
        report(&st, seen)?;
        // Storage is more than the maximum age behind: nothing more is
        // taken until the old data is written.
        while let Some(below) = overdue(&mut st, now) {
            self.rec.add(|c| &c.buffer_full_waits, 1);
            st = self.drain(st, below);
            report(&st, seen)?;
        }
        let base = match off {
            Some(o) => o,
            None => append_offset(&mut st)?,
        };
        let end = end_of(base, data.len())?;
        let mut done = 0;
        while done < data.len() {
            match st
                .wb
                .put(base + done as u64, &data[done..], off.is_none(), budget)
            {
                Put::Took(n) => done += n,
                Put::Full if st.wb.limit < cfg.write_buffer => {
                    st.wb.limit = (st.wb.limit * 2).min(cfg.write_buffer);
                    self.rec
                        .file
                        .buffer_limit
                        .store(st.wb.limit as u64, Relaxed);
                }
                Put::Full if st.wb.is_idle() => {
                    // The process-wide cap is held by other files and this one
                    // has nothing pending: writing directly keeps order and
                    // guarantees progress.
                    drop(st);
                    let rest = off.map(|_| base + done as u64);
                    self.write_direct(rest, &data[done..])?;
                    return Ok(end);
                }
                Put::Full => {
                    self.rec.add(|c| &c.buffer_full_waits, 1);
                    let n = self.cut(&mut st);
                    if n == 0 {
                        st = self.wait(st);
                    } else {
                        drop(st);
                        self.start(n);
                        st = self.lock();
                    }
                    // What this write queued before a failure was dropped
                    // with everything else: say so rather than go on.
                    report(&st, seen)?;
                }
            }
        }
        let next = st.wb.next_seq();
        st.ages.put(now, next);
        self.rec
            .file
            .buffer_peak
            .fetch_max(st.wb.peak as u64, Relaxed);
        self.rec
            .total
            .buffer_peak
            .fetch_max(budget.used() as u64, Relaxed);
        // An idle flusher starts here; a busy one cuts its next batches when
        // a batch completes, so waking and starting workers stays off the
        // application's write path.
        if st.wb.in_flight() == 0 {
            let n = self.cut(&mut st);
            drop(st);
            self.start(n);
        }
        Ok(end)
    }

    /// Writes straight to storage; the caller has ordered it after pending data.
    fn write_direct(self: &Arc<Self>, off: Option<u64>, data: &[u8]) -> Result<u64> {
        let backend = Arc::clone(&self.lock().backend);
        let mut done = 0;
        let mut end = off.map(|o| o + data.len() as u64);
        while done < data.len() {
            let t = Instant::now();
            let r = match off {
                Some(o) => backend.pwritev(&[&data[done..]], o + done as u64),
                None => backend.append(&[&data[done..]]).map(|(n, e)| {
                    end = e;
                    n
                }),
            };
            match r {
                Ok(0) => return Err(Errno::EIO),
                Ok(n) => {
                    self.rec.add(|c| &c.storage_write_bytes, n as u64);
                    self.rec.sample(|c| &c.write_sizes, n as u64);
                    self.rec.sample(|c| &c.storage_write_ns, nanos(t.elapsed()));
                    done += n;
                }
                Err(Errno::EINTR) => {}
                Err(e) => {
                    self.rec.error(e.0);
                    return Err(e);
                }
            }
        }
        let mut st = self.lock();
        let end = match end {
            Some(e) => e,
            None => retry(|| backend.size())?,
        };
        st.wrote_since_seen = true;
        // Only raise a size already known: `end` says nothing of data past it.
        if let Some(s) = st.stored.as_mut() {
            *s = (*s).max(end);
        }
        st.ra
            .invalidate(&(end.saturating_sub(data.len() as u64)..end));
        Ok(end)
    }

    /// Cuts what can go to storage now into batches and queues them;
    /// returns how many jobs to start for them (with [`File::start`], after
    /// the lock is released).
    fn cut(&self, st: &mut State) -> usize {
        let mut n = 0;
        while let Some(b) = st.wb.next_batch(self.shared.cfg.io_size, st.aimd.limit()) {
            st.ready.push_back(b);
            n += 1;
        }
        n
    }

    /// Submits `n` jobs that write queued batches.
    fn start(self: &Arc<Self>, n: usize) {
        for _ in 0..n {
            let f = Arc::clone(self);
            self.shared.pool.submit(Box::new(move || f.run_ready()));
        }
    }

    /// A worker's job: writes queued batches until none is left (a waiting
    /// thread may have taken this job's batch already).
    fn run_ready(self: Arc<Self>) {
        // Batches this thread queued without starting a job for them.
        let mut owed: usize = 0;
        loop {
            let Some(b) = self.lock().ready.pop_front() else {
                return;
            };
            self.start(owed.saturating_sub(1));
            owed = self.run_batch(b);
        }
    }

    /// Writes a batch, retires it, and queues what can go next; returns how
    /// many batches it queued, for which the caller owes jobs.
    fn run_batch(self: &Arc<Self>, mut b: Batch) -> usize {
        let backend = Arc::clone(&self.lock().backend);
        let t = Instant::now();
        let (written, res) = write_batch(&*backend, &b);
        let ns = nanos(t.elapsed());
        let (seqs, len) = (b.seqs.clone(), b.len as u64);
        // The segments must be unshared before `complete` recycles them.
        b.parts.clear();
        let budget = &self.shared.budget;
        let mut st = self.lock();
        match res {
            Ok(end) => {
                self.rec.add(|c| &c.storage_write_bytes, len);
                self.rec.sample(|c| &c.write_sizes, len);
                self.rec.sample(|c| &c.storage_write_ns, ns);
                if let Some(s) = st.stored.as_mut() {
                    *s = (*s).max(end);
                }
                st.wrote_since_seen = true;
                st.aimd.success(ns);
            }
            Err(e) => {
                st.err_seq += 1;
                st.err = e.0;
                self.rec.error(e.0);
                let lost = st.wb.discard_unissued(budget) + len - written as u64;
                self.rec.add(|c| &c.lost_bytes, lost);
                // Never silent: the program gets the errno at its next
                // write, fsync or close; the log says what was lost.
                tracing::warn!(
                    "background write of {} failed: {e}; {lost} bytes not written; \
the program gets the error at its next write, fsync or close",
                    self.name
                );
                st.aimd.failure();
            }
        }
        let range = st.wb.complete(seqs, budget);
        st.ra.invalidate(&range);
        self.rec
            .file
            .inflight_limit
            .store(st.aimd.limit() as u64, Relaxed);
        let n = self.cut(&mut st);
        drop(st);
        self.cv.notify_all();
        n
    }

    /// Returns once every byte written before the call has reached storage
    /// (or failed; failures are reported through `take_error`).
    pub fn flush(self: &Arc<Self>) {
        let mut st = self.lock();
        let target = st.wb.next_seq();
        st = self.drain(st, target);
        drop(st);
    }

    fn drain<'a>(
        self: &'a Arc<Self>,
        mut st: MutexGuard<'a, State>,
        target: u64,
    ) -> MutexGuard<'a, State> {
        // Batches this thread queued without starting a job for them.
        let mut owed: usize = 0;
        while st.wb.done_below() < target {
            owed += self.cut(&mut st);
            // This thread waits anyway: it writes the next batch itself
            // rather than wait for a worker to wake up and take it, and
            // starts workers for the others.
            match st.ready.pop_front() {
                None => {
                    // Nothing queued is left without a job.
                    owed = 0;
                    st = self.wait(st);
                }
                Some(b) => {
                    drop(st);
                    self.start(owed.saturating_sub(1));
                    owed = self.run_batch(b);
                    st = self.lock();
                }
            }
        }
        if owed > 0 {
            drop(st);
            self.start(owed);
            st = self.lock();
        }
        st
    }

    /// Returns once no request of this file is in flight or queued: no
    /// batch, no prefetch (after a flush, with no other handle left to
    /// write, nothing uses the backend any more).
    pub fn quiesce(&self) {
        let mut st = self.lock();
        while st.prefetching > 0 || st.wb.in_flight() > 0 || !st.ready.is_empty() {
            st = self.wait(st);
        }
    }

    /// Waits for all pending data, then runs `op` on the backend while still
    /// holding the file lock, so no write can slip between the two.
    fn ordered<T>(self: &Arc<Self>, op: impl FnOnce(&mut State) -> Result<T>) -> Result<T> {
        let mut st = self.lock();
        loop {
            let target = st.wb.next_seq();
            st = self.drain(st, target);
            if st.wb.next_seq() == target {
                break;
            }
        }
        let r = op(&mut st);
        st.ra.invalidate_all();
        r
    }

    /// `fsync`/`fdatasync` after draining.
    pub fn sync(self: &Arc<Self>, data_only: bool) -> Result<()> {
        self.flush();
        let backend = Arc::clone(&self.lock().backend);
        retry(|| backend.sync(data_only))
    }

    /// `ftruncate`, ordered after pending writes.
    pub fn truncate(self: &Arc<Self>, len: u64) -> Result<()> {
        self.ordered(|st| {
            retry(|| st.backend.truncate(len))?;
            st.stored = Some(len);
            st.wrote_since_seen = true;
            st.seen = None;
            Ok(())
        })
    }

    /// `fallocate`, ordered after pending writes.
    pub fn allocate(self: &Arc<Self>, mode: i32, off: u64, len: u64) -> Result<()> {
        self.ordered(|st| {
            retry(|| st.backend.allocate(mode, off, len))?;
            st.stored = None;
            st.wrote_since_seen = true;
            Ok(())
        })
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

    // ---- reading ----

    /// Reads at `off` for `handle`: read-ahead data or storage, with pending
    /// writes overlaid.
    pub fn read(self: &Arc<Self>, handle: u64, off: u64, buf: &mut [u8]) -> Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let t0 = Instant::now();
        let end = off.saturating_add(buf.len() as u64);
        let want = (end - off) as usize;
        let sz = self.sizes();
        let mut st = self.lock();
        let now = self.shared.clock.now();
        let cfg = &self.shared.cfg;
        st.ra
            .expire(handle, now, cfg.max_age, cfg.revalidate_after, &sz);
        if st.ra.observe(handle, off, want, &sz) {
            let budget = &self.shared.budget;
            let plans = st.ra.plan(handle, off, want, &sz, now, |n| {
                Reservation::try_new(budget, n)
            });
            if !plans.is_empty() {
                st.prefetching += plans.len();
                drop(st);
                self.prefetch(plans);
                st = self.lock();
            }
        }
        let mut pos = off;
        let mut snooped = false;
        let mut total = 0;
        while pos < end {
            let dst = &mut buf[(pos - off) as usize..want];
            let step = match st.ra.lookup(handle, pos) {
                Lookup::Ready(data) => {
                    let k = data.len().min(dst.len());
                    dst[..k].copy_from_slice(&data[..k]);
                    snooped |= overlay(&st.wb, pos, &mut dst[..k]);
                    Step::Copied(k)
                }
                Lookup::Loading => Step::Wait,
                Lookup::Miss => Step::Miss,
            };
            match step {
                Step::Copied(k) => pos += k as u64,
                Step::Wait => st = self.wait(st),
                Step::Miss => {
                    self.rec.add(|c| &c.read_ahead_misses, 1);
                    let (n, snoop) = match self.read_direct(st, handle, pos, &mut *dst) {
                        Ok(r) => r,
                        // Bytes already copied are the answer, as a short read.
                        Err(_) if pos > off => (0, false),
                        // The program's own read would come after its
                        // writes reached storage; with some still pending
                        // the request can fail where that read would not
                        // (rclone's cache cannot serve a range of a file it
                        // has not been given yet: ENOENT). Write them, then
                        // ask once more: that answer is the program's.
                        Err(_) => {
                            self.flush();
                            self.read_direct(self.lock(), handle, pos, dst)?
                        }
                    };
                    snooped |= snoop;
                    total = (pos - off) as usize + n;
                    break;
                }
            }
            total = (pos - off) as usize;
        }
        if pos >= end {
            self.rec.add(|c| &c.read_ahead_hits, 1);
        }
        if total < want {
            self.lock().ra.ended_at(handle, off + total as u64);
        }
        if snooped {
            self.rec.add(|c| &c.snoop_hits, 1);
        }
        self.rec.add(|c| &c.app_read_bytes, total as u64);
        self.rec.sample(|c| &c.app_read_ns, nanos(t0.elapsed()));
        Ok(total)
    }

    /// Reads `dst.len()` bytes at `pos` from storage and overlays the pending
    /// writes captured before the request (so a write that lands meanwhile
    /// is never missed). Returns the valid length and whether it snooped.
    fn read_direct(
        &self,
        st: MutexGuard<'_, State>,
        handle: u64,
        pos: u64,
        dst: &mut [u8],
    ) -> Result<(usize, bool)> {
        let want = dst.len();
        let end = pos + want as u64;
        let mut pieces: Vec<(usize, usize)> = Vec::new();
        let mut scratch: Vec<u8> = Vec::new();
        for (o, e) in st.wb.index().overlapping(pos, end) {
            pieces.push(((o - pos) as usize, e.len as usize));
            scratch.extend_from_slice(st.wb.bytes(e.seg, e.pos, e.len as usize));
        }
        let pending_end = st.wb.index().end();
        let backend = Arc::clone(&st.backend);
        drop(st);
        let covered = scratch.len();
        let (n, err) = if covered == want {
            (0, None)
        } else {
            self.read_storage(&*backend, dst, pos)
        };
        if n == 0 && covered == 0 {
            if let Some(e) = err {
                return Err(e);
            }
        }
        let valid = if n == want || covered == want {
            want
        } else if err.is_some() {
            n
        } else {
            (pending_end.max(pos + n as u64) - pos).min(want as u64) as usize
        };
        dst[n.min(valid)..valid].fill(0);
        let mut at = 0;
        for (rel, len) in &pieces {
            let k = (*len).min(valid.saturating_sub(*rel));
            dst[*rel..*rel + k].copy_from_slice(&scratch[at..at + k]);
            at += len;
        }
        if n > 0 {
            self.lock().ra.saw_data_until(handle, pos + n as u64);
        }
        Ok((valid, !pieces.is_empty()))
    }

    /// Reads until `buf` is full, end of file, or an error; returns the bytes
    /// read and the error that stopped it, if any.
    fn read_storage(
        &self,
        backend: &dyn Backend,
        buf: &mut [u8],
        off: u64,
    ) -> (usize, Option<Errno>) {
        let mut n = 0;
        while n < buf.len() {
            let t = Instant::now();
            match backend.pread(&mut buf[n..], off + n as u64) {
                Ok(0) => break,
                Ok(k) => {
                    self.rec.add(|c| &c.storage_read_bytes, k as u64);
                    self.rec.sample(|c| &c.read_sizes, (buf.len() - n) as u64);
                    self.rec.sample(|c| &c.storage_read_ns, nanos(t.elapsed()));
                    n += k;
                }
                Err(Errno::EINTR) => {}
                Err(e) => {
                    self.rec.error(e.0);
                    return (n, Some(e));
                }
            }
        }
        (n, None)
    }

    fn prefetch(self: &Arc<Self>, plans: Vec<Prefetch>) {
        for p in plans {
            let f = Arc::clone(self);
            self.shared.pool.submit(Box::new(move || f.run_prefetch(p)));
        }
    }

    fn run_prefetch(self: Arc<Self>, mut p: Prefetch) {
        let backend = Arc::clone(&self.lock().backend);
        p.mem.fill_buffer();
        let (n, err) = self.read_storage(&*backend, &mut p.mem.buf, p.off);
        let mut st = self.lock();
        st.ra.land(p, err.is_none().then_some(n));
        st.prefetching -= 1;
        drop(st);
        self.cv.notify_all();
    }
}

impl Drop for File {
    fn drop(&mut self) {
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

fn end_of(base: u64, len: usize) -> Result<u64> {
    base.checked_add(len as u64)
        .filter(|e| *e <= i64::MAX as u64)
        .ok_or(Errno(libc::EFBIG))
}

/// Where an append issued now lands, as far as this process knows.
fn append_offset(st: &mut State) -> Result<u64> {
    let stored = match st.stored {
        Some(s) => s,
        None => {
            let s = retry(|| st.backend.size())?;
            st.stored = Some(s);
            s
        }
    };
    Ok(stored.max(st.wb.index().end()))
}

/// Copies pending bytes over `dst` (file offset `pos`); true if any.
fn overlay(wb: &WriteBuffer, pos: u64, dst: &mut [u8]) -> bool {
    let mut any = false;
    for (o, e) in wb.index().overlapping(pos, pos + dst.len() as u64) {
        let rel = (o - pos) as usize;
        dst[rel..rel + e.len as usize].copy_from_slice(wb.bytes(e.seg, e.pos, e.len as usize));
        any = true;
    }
    any
}

/// One batch to storage, continuing short writes and retrying `EINTR`.
/// Returns the bytes written and the end offset they reached, or the error
/// that stopped it.
fn write_batch(backend: &dyn Backend, b: &Batch) -> (usize, Result<u64>) {
    let mut done = 0usize;
    let mut end = b.offset + b.len as u64;
    while done < b.len {
        let mut skip = done;
        let mut slices: Vec<&[u8]> = Vec::with_capacity(b.parts.len());
        for (data, r) in &b.parts {
            let s = &data[r.clone()];
            if skip >= s.len() {
                skip -= s.len();
                continue;
            }
            slices.push(&s[skip..]);
            skip = 0;
        }
        let r = if b.append {
            backend.append(&slices).map(|(n, e)| {
                if let Some(e) = e {
                    end = e;
                }
                n
            })
        } else {
            backend.pwritev(&slices, b.offset + done as u64)
        };
        match r {
            Ok(0) => return (done, Err(Errno::EIO)),
            Ok(n) => done += n,
            Err(Errno::EINTR) => {}
            Err(e) => return (done, Err(e)),
        }
    }
    (done, Ok(end))
}

/// The sequence number to drain below when pending data is over the
/// maximum age at `now`.
fn overdue(st: &mut State, now: Instant) -> Option<u64> {
    let (done, next) = (st.wb.done_below(), st.wb.next_seq());
    st.ages.overdue(now, done, next)
}
