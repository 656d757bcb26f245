//! An in-memory [`Backend`] for tests and benchmarks: adds latency, returns
//! short reads and writes, injects `EINTR` and errors at chosen offsets, and
//! logs every request so tests can count them and check their sizes.

use crate::backend::Backend;
use crate::clock::Clock;
use crate::error::{Errno, Result};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Kind of a logged request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// `pread`.
    Read,
    /// `pwritev`.
    Write,
    /// `append`.
    Append,
    /// `sync`.
    Sync,
    /// `truncate`.
    Truncate,
    /// `allocate`.
    Allocate,
    /// `size`.
    Size,
}

/// One request as the mock saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Request {
    /// What was asked.
    pub op: Op,
    /// Offset (for appends: the end of file when the append landed).
    pub offset: u64,
    /// Bytes asked for.
    pub len: usize,
    /// Bytes done (0 for a failed request).
    pub done: usize,
}

/// An error the mock returns for a request that touches `[from, until)`.
#[derive(Clone, Copy, Debug)]
pub struct Fault {
    /// Which requests fail: `Op::Write` also matches appends.
    pub op: Op,
    /// First offset that fails.
    pub from: u64,
    /// End of the failing range.
    pub until: u64,
    /// The errno returned.
    pub errno: Errno,
    /// How many requests fail before the fault heals (`u32::MAX`: never).
    pub times: u32,
}

/// Settings of a [`MemBackend`].
#[derive(Clone, Debug, Default)]
pub struct MockConfig {
    /// Sleep per read request.
    pub read_latency: Duration,
    /// Sleep per write or append request.
    pub write_latency: Duration,
    /// Sleep per sync, truncate, allocate and size request.
    pub meta_latency: Duration,
    /// At most this many bytes per read or write (short I/O); 0: no limit.
    pub max_io: usize,
    /// Every n-th request fails with `EINTR` before doing anything; 0: never.
    pub eintr_every: u64,
    /// Writes past this size fail with `ENOSPC` (after a short write up to it).
    pub capacity: Option<u64>,
    /// Write requests run one at a time, as FUSE runs writes to one file
    /// (the kernel holds the inode lock); reads still overlap.
    pub serial_writes: bool,
    /// Answers `Backend::defers_background` (a backend whose background
    /// I/O would cost a request).
    pub defers_background: bool,
}

/// A request past the gate, counted until it is done.
struct Passed<'a>(&'a AtomicUsize);

impl Drop for Passed<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The in-memory backend. Data lands when a request completes, after its
/// latency, so concurrent requests overlap as on real storage.
pub struct MemBackend {
    cfg: MockConfig,
    data: Mutex<Vec<u8>>,
    faults: Mutex<Vec<Fault>>,
    log: Mutex<Vec<Request>>,
    writer: Mutex<()>,
    // While true, write and append requests wait before doing anything.
    gate: Mutex<bool>,
    gate_cv: Condvar,
    // Requests waiting at the closed gate now.
    at_gate: AtomicUsize,
    // Write and append requests past the gate and not yet done; raised
    // under the gate's lock, so a closed gate counts every one that passed.
    passed: AtomicUsize,
    calls: AtomicU64,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl MemBackend {
    /// An empty file with the given behaviour.
    pub fn new(cfg: MockConfig) -> MemBackend {
        MemBackend::with_data(cfg, Vec::new())
    }

    /// A file holding `data`.
    pub fn with_data(cfg: MockConfig, data: Vec<u8>) -> MemBackend {
        MemBackend {
            cfg,
            data: Mutex::new(data),
            faults: Mutex::new(Vec::new()),
            log: Mutex::new(Vec::new()),
            writer: Mutex::new(()),
            gate: Mutex::new(false),
            gate_cv: Condvar::new(),
            at_gate: AtomicUsize::new(0),
            passed: AtomicUsize::new(0),
            calls: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            max_in_flight: AtomicUsize::new(0),
        }
    }

    /// Adds a fault.
    pub fn inject(&self, fault: Fault) {
        lock(&self.faults).push(fault);
    }

    /// Removes all faults.
    pub fn heal(&self) {
        lock(&self.faults).clear();
    }

    /// A copy of the stored bytes.
    pub fn contents(&self) -> Vec<u8> {
        lock(&self.data).clone()
    }

    /// Replaces the stored bytes, as another process writing the file would.
    pub fn set_contents(&self, data: Vec<u8>) {
        *lock(&self.data) = data;
    }

    /// Every request so far, in completion order.
    pub fn requests(&self) -> Vec<Request> {
        lock(&self.log).clone()
    }

    /// Forgets the logged requests.
    pub fn clear_requests(&self) {
        lock(&self.log).clear();
    }

    /// Holds every write and append request that starts from now on (and
    /// any that has not passed the gate yet) until [`MemBackend::open_gate`]:
    /// storage then makes progress only when the test lets it.
    pub fn close_gate(&self) {
        *lock(&self.gate) = true;
    }

    /// Lets held and later write requests go on.
    pub fn open_gate(&self) {
        *lock(&self.gate) = false;
        self.gate_cv.notify_all();
    }

    fn pass_gate(&self) -> Passed<'_> {
        let mut closed = lock(&self.gate);
        if *closed {
            self.at_gate.fetch_add(1, Ordering::SeqCst);
            while *closed {
                closed = self.gate_cv.wait(closed).unwrap_or_else(|p| p.into_inner());
            }
            self.at_gate.fetch_sub(1, Ordering::SeqCst);
        }
        self.passed.fetch_add(1, Ordering::SeqCst);
        Passed(&self.passed)
    }

    /// Closes the gate and waits until every write or append request that
    /// passed it is done: storage then holds exactly what it will hold
    /// until the gate opens (a moment of death, for crash tests).
    pub fn settle(&self) {
        self.close_gate();
        while self.passed.load(Ordering::SeqCst) > 0 {
            std::thread::yield_now();
        }
    }

    /// Write and append requests held at the closed gate now.
    pub fn at_gate(&self) -> usize {
        self.at_gate.load(Ordering::SeqCst)
    }

    /// Requests still executing.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::SeqCst)
    }

    /// The most requests that ever executed at once.
    pub fn max_in_flight(&self) -> usize {
        self.max_in_flight.load(Ordering::SeqCst)
    }

    fn begin(&self, latency: Duration) -> Result<()> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        if self.cfg.eintr_every > 0 && n.is_multiple_of(self.cfg.eintr_every) {
            return Err(Errno::EINTR);
        }
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_in_flight.fetch_max(now, Ordering::SeqCst);
        if !latency.is_zero() {
            std::thread::sleep(latency);
        }
        Ok(())
    }

    fn end(&self, req: Request) {
        lock(&self.log).push(req);
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
    }

    fn fault(&self, op: Op, from: u64, len: usize) -> Option<Errno> {
        let mut faults = lock(&self.faults);
        let end = from + len.max(1) as u64;
        for f in faults.iter_mut() {
            let kind = f.op == op || (f.op == Op::Write && op == Op::Append);
            if kind && f.times > 0 && from < f.until && end > f.from {
                if f.times != u32::MAX {
                    f.times -= 1;
                }
                return Some(f.errno);
            }
        }
        None
    }

    fn cap(&self, len: usize) -> usize {
        if self.cfg.max_io > 0 {
            len.min(self.cfg.max_io)
        } else {
            len
        }
    }

    fn write_at(
        &self,
        data: &mut Vec<u8>,
        bufs: &[&[u8]],
        offset: u64,
        limit: usize,
    ) -> Result<usize> {
        let mut want = limit;
        if let Some(cap) = self.cfg.capacity {
            let room = cap.saturating_sub(offset) as usize;
            if room == 0 && want > 0 {
                return Err(Errno::ENOSPC);
            }
            want = want.min(room);
        }
        let start = offset as usize;
        if data.len() < start + want {
            data.resize(start + want, 0);
        }
        let mut pos = start;
        let mut left = want;
        for b in bufs {
            if left == 0 {
                break;
            }
            let n = b.len().min(left);
            data[pos..pos + n].copy_from_slice(&b[..n]);
            pos += n;
            left -= n;
        }
        Ok(want)
    }
}

fn total(bufs: &[&[u8]]) -> usize {
    bufs.iter().map(|b| b.len()).sum()
}

impl Backend for MemBackend {
    fn defers_background(&self) -> bool {
        self.cfg.defers_background
    }

    fn pread(&self, buf: &mut [u8], offset: u64) -> Result<usize> {
        self.begin(self.cfg.read_latency)?;
        let len = self.cap(buf.len());
        let res = match self.fault(Op::Read, offset, len) {
            Some(e) => Err(e),
            None => {
                let data = lock(&self.data);
                let start = (offset as usize).min(data.len());
                let n = (data.len() - start).min(len);
                buf[..n].copy_from_slice(&data[start..start + n]);
                Ok(n)
            }
        };
        self.end(Request {
            op: Op::Read,
            offset,
            len: buf.len(),
            done: *res.as_ref().unwrap_or(&0),
        });
        res
    }

    fn pwritev(&self, bufs: &[&[u8]], offset: u64) -> Result<usize> {
        let _serial = self.cfg.serial_writes.then(|| lock(&self.writer));
        let _passed = self.pass_gate();
        self.begin(self.cfg.write_latency)?;
        let len = total(bufs);
        let res = match self.fault(Op::Write, offset, len) {
            Some(e) => Err(e),
            None => self.write_at(&mut lock(&self.data), bufs, offset, self.cap(len)),
        };
        self.end(Request {
            op: Op::Write,
            offset,
            len,
            done: *res.as_ref().unwrap_or(&0),
        });
        res
    }

    fn append(&self, bufs: &[&[u8]]) -> Result<(usize, Option<u64>)> {
        let _serial = self.cfg.serial_writes.then(|| lock(&self.writer));
        let _passed = self.pass_gate();
        self.begin(self.cfg.write_latency)?;
        let len = total(bufs);
        let mut data = lock(&self.data);
        let offset = data.len() as u64;
        let res = match self.fault(Op::Append, offset, len) {
            Some(e) => Err(e),
            None => self.write_at(&mut data, bufs, offset, self.cap(len)),
        };
        let end = data.len() as u64;
        drop(data);
        self.end(Request {
            op: Op::Append,
            offset,
            len,
            done: *res.as_ref().unwrap_or(&0),
        });
        res.map(|n| (n, Some(end)))
    }

    fn sync(&self, _data_only: bool) -> Result<()> {
        self.begin(self.cfg.meta_latency)?;
        let res = self
            .fault(Op::Sync, 0, u64::MAX as usize)
            .map_or(Ok(()), Err);
        self.end(Request {
            op: Op::Sync,
            offset: 0,
            len: 0,
            done: 0,
        });
        res
    }

    fn truncate(&self, len: u64) -> Result<()> {
        self.begin(self.cfg.meta_latency)?;
        lock(&self.data).resize(len as usize, 0);
        self.end(Request {
            op: Op::Truncate,
            offset: len,
            len: 0,
            done: 0,
        });
        Ok(())
    }

    fn allocate(&self, _mode: i32, offset: u64, len: u64) -> Result<()> {
        self.begin(self.cfg.meta_latency)?;
        let mut data = lock(&self.data);
        let end = (offset + len) as usize;
        if data.len() < end {
            data.resize(end, 0);
        }
        drop(data);
        self.end(Request {
            op: Op::Allocate,
            offset,
            len: len as usize,
            done: 0,
        });
        Ok(())
    }

    fn size(&self) -> Result<u64> {
        self.begin(self.cfg.meta_latency)?;
        let n = lock(&self.data).len() as u64;
        self.end(Request {
            op: Op::Size,
            offset: 0,
            len: 0,
            done: 0,
        });
        Ok(n)
    }
}

/// A clock that moves only when told to ([`ManualClock::advance`]), for
/// tests of the age rules that must not depend on how fast the machine is.
#[derive(Debug)]
pub struct ManualClock {
    base: Instant,
    // Nanoseconds past `base`.
    offset: AtomicU64,
}

impl ManualClock {
    /// A clock standing at the moment it was made.
    pub fn new() -> ManualClock {
        ManualClock {
            base: Instant::now(),
            offset: AtomicU64::new(0),
        }
    }

    /// Moves the clock forward by `d`.
    pub fn advance(&self, d: Duration) {
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.offset.fetch_add(ns, Ordering::SeqCst);
    }
}

impl Default for ManualClock {
    fn default() -> ManualClock {
        ManualClock::new()
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Instant {
        self.base + Duration::from_nanos(self.offset.load(Ordering::SeqCst))
    }
}

/// xorshift64*: a tiny seeded generator, so test data and random choices
/// are the same on every run.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator for `seed` (any value, 0 included).
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// The next 64 bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number below `n` (which must not be 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// Fills `buf` with generated bytes.
    pub fn fill(&mut self, buf: &mut [u8]) {
        for b in buf {
            *b = (self.next_u64() >> 32) as u8;
        }
    }
}

/// `len` bytes generated from `seed`: the same for the same arguments,
/// different for different seeds (test data for the engine's tests, the
/// program tests and the benchmarks).
pub fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    Rng::new(seed).fill(&mut v);
    v
}
