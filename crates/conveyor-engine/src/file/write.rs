//! The write path: buffered and direct writes, batches cut and queued,
//! the one storage loop both use, and the barriers (flush, sync,
//! truncate, allocate) ordered after pending data.

use super::*;
use crate::ring::{IoVecs, Request, Ring};
use io_uring::{opcode, squeue, types};
use std::os::fd::RawFd;

impl File {
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
        } else if data.len() > self.shared.cfg.write_buffer
            || data.len() >= self.shared.cfg.io_size && self.lock().wb.is_idle()
        {
            // A write of a whole request or more has nothing to coalesce
            // with: copying it into the buffer and handing it to a worker
            // only adds a copy and a wake-up (a program writing 1 MiB
            // blocks ran 0.8x on fast storage), so the program's thread
            // writes it from the program's memory, after pending data.
            self.flush();
            self.take_error(seen)
                .and_then(|_| self.write_direct(off, data))
                .map(Some)
        } else {
            let r = self
                .write_buffered(off, data, seen, self.shared.clock.now())
                .map(Some);
            // Off the file's lock, before the write returns: the journal
            // holds data of the file, so a flusher must have it.
            if self.journaled.load(Relaxed) {
                (self.shared.hooks.watch)();
            }
            r
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
        // The data is acknowledged when this returns: with a journal, the
        // flusher must be able to reach the file from now on.
        self.protect(&mut st);
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
        // application's write path. Less than a request's worth waits for
        // the program's own thread where a worker would cost a request.
        if st.wb.in_flight() == 0
            && (st.wb.unissued() >= cfg.io_size || !st.backend.defers_background())
        {
            let n = self.cut(&mut st);
            drop(st);
            self.start(n);
        } else if st.wb.in_flight() == 0 && !self.deferred.swap(true, Relaxed) {
            // Waiting for the program's thread, but not for ever.
            drop(st);
            let at = Instant::now() + cfg.defer_limit;
            self.shared.deferrals.schedule(self, at);
        }
        Ok(end)
    }

    /// Writes straight to storage; the caller has ordered it after pending data.
    fn write_direct(self: &Arc<Self>, off: Option<u64>, data: &[u8]) -> Result<u64> {
        let backend = Arc::clone(&self.lock().backend);
        let t = Instant::now();
        let (done, res) = write_all(&*backend, &[data], off);
        if done > 0 {
            self.rec.add(|c| &c.storage_write_bytes, done as u64);
            self.rec.sample(|c| &c.write_sizes, done as u64);
            self.rec.sample(|c| &c.storage_write_ns, nanos(t.elapsed()));
        }
        let end = match res {
            Ok(end) => end,
            Err(e) => {
                self.rec.error(e.0);
                return Err(e);
            }
        };
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
    /// The deferral timer's turn (`defer`): data that waited for the
    /// program's thread since the write that scheduled it goes to storage
    /// in the background now, unless something already writes it.
    pub(crate) fn deferral_due(self: &Arc<Self>) {
        self.deferred.store(false, Relaxed);
        let mut st = self.lock();
        if st.wb.in_flight() == 0 && st.wb.unissued() > 0 {
            let n = self.cut(&mut st);
            drop(st);
            self.start(n);
        }
    }

    fn cut(&self, st: &mut State) -> usize {
        let mut n = 0;
        loop {
            // One request of the file's own always; more only while its
            // filesystem has room for them.
            let limit = st
                .aimd
                .limit()
                .min(st.wb.in_flight() + self.depth.room())
                .max(1);
            let Some(b) = st.wb.next_batch(self.shared.cfg.io_size, limit) else {
                return n;
            };
            self.depth.begin();
            st.ready.push_back(b);
            n += 1;
        }
    }
    /// Starts `n` jobs that write queued batches: on the ring when there is
    /// one and the backend gives it a descriptor, else on the pool.
    fn start(self: &Arc<Self>, n: usize) {
        if n == 0 {
            return;
        }
        let n = match self.shared.ring() {
            Some(ring) => self.start_on(ring, n),
            None => n,
        };
        for _ in 0..n {
            let f = Arc::clone(self);
            self.shared.pool.submit(Box::new(move || f.run_ready()));
        }
    }
    /// Submits up to `n` queued batches to `ring` with one system call;
    /// returns how many of them still need a pool job (the backend has no
    /// descriptor for the ring).
    fn start_on(self: &Arc<Self>, ring: &Ring, n: usize) -> usize {
        let (backend, batches) = {
            let mut st = self.lock();
            let batches: Vec<Batch> = (0..n).map_while(|_| st.ready.pop_front()).collect();
            (Arc::clone(&st.backend), batches)
        };
        let (mut plain, mut append) = (None, None);
        let mut reqs: Vec<Box<dyn Request>> = Vec::with_capacity(batches.len());
        let mut back = Vec::new();
        for b in batches {
            let slot = if b.append { &mut append } else { &mut plain };
            match *slot.get_or_insert_with(|| backend.ring_fd(b.append)) {
                Some(fd) => reqs.push(Box::new(RingWrite::new(self, b, &backend, fd))),
                None => back.push(b),
            }
        }
        self.rec.add(|c| &c.ring_requests, reqs.len() as u64);
        ring.submit(reqs);
        let owed = back.len();
        if owed > 0 {
            let mut st = self.lock();
            for b in back.into_iter().rev() {
                st.ready.push_front(b);
            }
        }
        owed
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
    fn run_batch(self: &Arc<Self>, b: Batch) -> usize {
        let backend = Arc::clone(&self.lock().backend);
        let t = Instant::now();
        let (written, res) = write_batch(&*backend, &b, 0);
        self.finish_batch(b, written, res, nanos(t.elapsed()))
    }
    /// Retires a batch that wrote `written` bytes in `ns` and ended with
    /// `res` (the end offset it reached, or the error that stopped it),
    /// and queues what can go next; returns how many batches it queued.
    fn finish_batch(
        self: &Arc<Self>,
        mut b: Batch,
        written: usize,
        res: Result<u64>,
        ns: u64,
    ) -> usize {
        self.depth.end(res.is_ok().then_some(ns));
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
}

fn end_of(base: u64, len: usize) -> Result<u64> {
    base.checked_add(len as u64)
        .filter(|e| *e <= i64::MAX as u64)
        .ok_or(Errno(libc::EFBIG))
}

/// Where an append issued now lands, as far as this process knows.
fn append_offset(st: &mut State) -> Result<u64> {
    // The size seen at open (or by the program's last stat) serves while
    // none of our writes landed since: no request more for a file opened
    // only to append a line (the real append lands at the real end anyway).
    let stored = match File::storage_end(st) {
        Some(s) => s,
        None => {
            let s = retry(|| st.backend.size())?;
            st.stored = Some(s);
            s
        }
    };
    Ok(stored.max(st.wb.index().end()))
}

/// One batch to storage from its byte `from` on (see [`write_all`]).
/// Returns the bytes of the batch written (`from` included) and the end
/// offset they reached, or the error that stopped it.
fn write_batch(backend: &dyn Backend, b: &Batch, from: usize) -> (usize, Result<u64>) {
    let parts = skip(&batch_parts(b), from);
    let at = (!b.append).then_some(b.offset + from as u64);
    let (done, res) = write_all(backend, &parts, at);
    let planned = b.offset + b.len as u64;
    (from + done, res.map(|end| end.unwrap_or(planned)))
}

fn batch_parts(b: &Batch) -> Vec<&[u8]> {
    b.parts.iter().map(|(data, r)| &data[r.clone()]).collect()
}

/// `parts` without their first `n` bytes.
fn skip<'a>(parts: &[&'a [u8]], mut n: usize) -> Vec<&'a [u8]> {
    let mut out = Vec::with_capacity(parts.len());
    for s in parts {
        if n >= s.len() {
            n -= s.len();
            continue;
        }
        out.push(&s[n..]);
        n = 0;
    }
    out
}

/// A batch written through the ring (`ring.rs`): continued there after
/// a short count, retired by the reaper.
struct RingWrite {
    file: Arc<File>,
    batch: Batch,
    // Keeps `fd` open until the request is done.
    backend: Arc<dyn Backend>,
    fd: RawFd,
    // Bytes of the batch written so far.
    done: usize,
    // The entry's vector: points into `batch`'s segments.
    iov: IoVecs,
    // When the kernel first got it (not when it was made: time waiting
    // for room in the ring is not the storage's latency).
    started: Option<Instant>,
}

impl RingWrite {
    fn new(file: &Arc<File>, batch: Batch, backend: &Arc<dyn Backend>, fd: RawFd) -> RingWrite {
        RingWrite {
            file: Arc::clone(file),
            batch,
            backend: Arc::clone(backend),
            fd,
            done: 0,
            iov: IoVecs::default(),
            started: None,
        }
    }
}

impl Request for RingWrite {
    fn entry(&mut self) -> squeue::Entry {
        self.started.get_or_insert_with(Instant::now);
        self.iov = IoVecs::new(&skip(&batch_parts(&self.batch), self.done));
        let (iov, count) = self.iov.raw();
        // -1: at the description's offset, which O_APPEND puts at the end.
        let at = if self.batch.append {
            u64::MAX
        } else {
            self.batch.offset + self.done as u64
        };
        opcode::Writev::new(types::Fd(self.fd), iov, count)
            .offset(at)
            .build()
    }

    fn complete(mut self: Box<Self>, res: i32, ring: &Ring) {
        if res == -libc::EINTR || res == -libc::EAGAIN {
            ring.submit(vec![self]);
            return;
        }
        if res > 0 {
            self.done += res as usize;
            if self.done < self.batch.len {
                ring.submit(vec![self]);
                return;
            }
        }
        let planned = self.batch.offset + self.batch.len as u64;
        let res = match res {
            r if r < 0 => Err(Errno(-r)),
            _ if self.done < self.batch.len => Err(Errno::EIO),
            _ if self.batch.append => Ok(crate::ring::position(self.fd).unwrap_or(planned)),
            _ => Ok(planned),
        };
        let ns = self.started.map_or(0, |t| nanos(t.elapsed()));
        let RingWrite {
            file, batch, done, ..
        } = *self;
        let n = file.finish_batch(batch, done, res, ns);
        file.start(n);
    }

    fn run_blocking(self: Box<Self>) {
        let RingWrite {
            file,
            batch,
            backend,
            done,
            started,
            ..
        } = *self;
        let t = Instant::now();
        let (written, res) = write_batch(&*backend, &batch, done);
        let n = file.finish_batch(batch, written, res, nanos(started.unwrap_or(t).elapsed()));
        file.start(n);
    }
}

/// The one storage loop of the write path: writes `parts` (one request
/// each time, as many bytes as storage takes) at `at`, or appends them when
/// `at` is `None`, continuing short writes and retrying `EINTR`. Returns
/// the bytes written and the end offset they reached when it is known (an
/// append may not tell it), or the error that stopped it.
fn write_all(
    backend: &dyn Backend,
    parts: &[&[u8]],
    at: Option<u64>,
) -> (usize, Result<Option<u64>>) {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    let mut done = 0usize;
    let mut end = at.map(|o| o + len as u64);
    while done < len {
        let slices = skip(parts, done);
        let r = match at {
            Some(o) => backend.pwritev(&slices, o + done as u64),
            None => backend.append(&slices).map(|(n, e)| {
                if e.is_some() {
                    end = e;
                }
                n
            }),
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
