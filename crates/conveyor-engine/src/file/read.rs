//! The read path: read-ahead windows, direct reads with pending writes
//! overlaid, and prefetches.

use super::*;

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

    /// Prefetches run on the pool with either executor: on the kernel
    /// this was measured on (6.18), an io_uring read of a FUSE file opened
    /// for direct I/O that crosses the end of the file reports the whole
    /// length asked for, with whatever the buffer held beyond the end
    /// (`pread` on the same descriptor answers short, as it should), and
    /// prefetches on the ring were no faster anywhere measured
    /// (docs/performance.md).
    fn prefetch(self: &Arc<Self>, plans: Vec<Prefetch>) {
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
        let valid = err.is_none().then_some(n);
        self.depth.end(valid.map(|_| nanos(t.elapsed())));
        let mut st = self.lock();
        st.ra.land(p, valid);
        st.prefetching -= 1;
        drop(st);
        self.cv.notify_all();
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
