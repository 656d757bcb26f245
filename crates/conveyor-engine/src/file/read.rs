//! The read path: read-ahead windows, direct reads with pending writes
//! overlaid, and prefetches.

use super::*;
use crate::ring::{Request, Ring};
use io_uring::{opcode, squeue, types};
use std::os::fd::RawFd;

impl File {
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
            let end = File::known_end(&st);
            // As many chunks as the filesystem has room for, and the one
            // under the reader, which the plain read would ask for too.
            let mut room = self.depth.room() + 1;
            let mut plans = st.ra.plan(handle, off, want, &sz, now, end, |n| {
                room = room.checked_sub(1)?;
                Reservation::try_new(budget, n)
            });
            if !plans.is_empty() {
                st.prefetching += plans.len();
                for _ in &plans {
                    self.depth.begin();
                }
                drop(st);
                // The chunk under the reader is waited for anyway: this
                // thread reads it, sparing a hand-off (and, in the shim,
                // a private descriptor for a small file read once).
                let first = plans
                    .first()
                    .is_some_and(|p| p.off <= off)
                    .then(|| plans.remove(0));
                self.prefetch(plans);
                if let Some(p) = first {
                    Arc::clone(self).run_prefetch(p);
                }
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
                // Bytes copied already are the answer, as the kernel's
                // short read at end of file, when the file is known to end
                // there (no pending data, nothing landed past it); a read
                // starting there asks.
                Lookup::End if pos > off && File::known_end(&st).is_some_and(|e| e <= pos) => {
                    Step::End
                }
                Lookup::End | Lookup::Miss => Step::Miss,
            };
            match step {
                Step::Copied(k) => pos += k as u64,
                Step::End => {
                    total = (pos - off) as usize;
                    drop(st);
                    break;
                }
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
        let known_end = File::known_end(&st);
        let backend = Arc::clone(&st.backend);
        drop(st);
        let covered = scratch.len();
        let (n, err) = if covered == want {
            (0, None)
        } else {
            self.read_storage(&*backend, dst, pos, known_end)
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
            let mut st = self.lock();
            st.ra.saw_data_until(handle, pos + n as u64);
            // Storage has data this far: a file that grew is known to.
            if let Some(e) = File::storage_end(&st) {
                st.stored = Some(e.max(pos + n as u64));
            }
        }
        Ok((valid, !pieces.is_empty()))
    }

    /// Reads until `buf` is full, end of file, or an error; returns the bytes
    /// read and the error that stopped it, if any. A short answer that
    /// reaches `known_end` (where the file ends, as far as this process
    /// knows) is taken as the end, as the kernel's short read is: asking
    /// again would cost a request that answers nothing.
    fn read_storage(
        &self,
        backend: &dyn Backend,
        buf: &mut [u8],
        off: u64,
        known_end: Option<u64>,
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
                    if n < buf.len() && known_end.is_some_and(|e| off + n as u64 >= e) {
                        break;
                    }
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
        if plans.is_empty() {
            return;
        }
        let (backend, known_end) = {
            let st = self.lock();
            (Arc::clone(&st.backend), File::known_end(&st))
        };
        if let Some((ring, fd)) = self
            .shared
            .ring()
            .and_then(|r| Some((r, backend.ring_fd(false)?)))
        {
            let reqs: Vec<Box<dyn Request>> = plans
                .into_iter()
                .map(|mut p| {
                    p.mem.fill_buffer();
                    Box::new(RingRead {
                        file: Arc::clone(self),
                        p,
                        backend: Arc::clone(&backend),
                        fd,
                        n: 0,
                        known_end,
                        started: None,
                    }) as Box<dyn Request>
                })
                .collect();
            self.rec.add(|c| &c.ring_requests, reqs.len() as u64);
            ring.submit(reqs, false);
            return;
        }
        for p in plans {
            let f = Arc::clone(self);
            self.shared.pool.submit(Box::new(move || f.run_prefetch(p)));
        }
    }
    fn run_prefetch(self: Arc<Self>, mut p: Prefetch) {
        let (backend, known_end) = {
            let st = self.lock();
            (Arc::clone(&st.backend), File::known_end(&st))
        };
        p.mem.fill_buffer();
        let t = Instant::now();
        let (n, err) = self.read_storage(&*backend, &mut p.mem.buf, p.off, known_end);
        self.land_prefetch(p, err.is_none().then_some(n), nanos(t.elapsed()));
    }
    /// A prefetch is done: `valid` bytes (`None`: it failed) after `ns`.
    fn land_prefetch(&self, p: Prefetch, valid: Option<usize>, ns: u64) {
        self.depth.end(valid.map(|_| ns));
        let mut st = self.lock();
        st.ra.land(p, valid);
        st.prefetching -= 1;
        drop(st);
        self.cv.notify_all();
    }
}

/// A prefetch read through the ring (`ring.rs`).
struct RingRead {
    file: Arc<File>,
    // Its buffer is filled before the first entry and not touched until
    // the prefetch lands.
    p: Prefetch,
    // Keeps `fd` open until the request is done.
    backend: Arc<dyn Backend>,
    fd: RawFd,
    // Bytes read so far.
    n: usize,
    known_end: Option<u64>,
    // When the kernel first got it (see `RingWrite`).
    started: Option<Instant>,
}

impl Request for RingRead {
    fn entry(&mut self) -> squeue::Entry {
        self.started.get_or_insert_with(Instant::now);
        let rest = &mut self.p.mem.buf[self.n..];
        opcode::Read::new(types::Fd(self.fd), rest.as_mut_ptr(), rest.len() as u32)
            .offset(self.p.off + self.n as u64)
            .build()
    }

    fn complete(mut self: Box<Self>, res: i32, ring: &Ring) {
        if res == -libc::EINTR || res == -libc::EAGAIN || res == -libc::ECANCELED {
            ring.submit(vec![self], false);
            return;
        }
        let ns = self.started.map_or(0, |t| nanos(t.elapsed()));
        let rec = &self.file.rec;
        if res < 0 {
            rec.error(-res);
            let RingRead { file, p, .. } = *self;
            file.land_prefetch(p, None, ns);
            return;
        }
        if res > 0 {
            rec.add(|c| &c.storage_read_bytes, res as u64);
            rec.sample(|c| &c.read_sizes, (self.p.mem.buf.len() - self.n) as u64);
            rec.sample(|c| &c.storage_read_ns, ns);
            self.n += res as usize;
            let at = self.p.off + self.n as u64;
            // Short of the end as far as this process knows: ask for the
            // rest, as the blocking loop does.
            if self.n < self.p.mem.buf.len() && self.known_end.is_none_or(|e| at < e) {
                ring.submit(vec![self], false);
                return;
            }
        }
        let RingRead { file, p, n, .. } = *self;
        file.land_prefetch(p, Some(n), ns);
    }

    fn run_blocking(self: Box<Self>) {
        let RingRead {
            file,
            mut p,
            backend,
            n,
            known_end,
            started,
            ..
        } = *self;
        let t = Instant::now();
        let (k, err) =
            file.read_storage(&*backend, &mut p.mem.buf[n..], p.off + n as u64, known_end);
        let valid = err.is_none().then_some(n + k);
        file.land_prefetch(p, valid, nanos(started.unwrap_or(t).elapsed()));
    }
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
