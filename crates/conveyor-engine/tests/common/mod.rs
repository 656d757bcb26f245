//! Helpers of the engine's scenario tests (each scenario file includes
//! this module and uses part of it).
#![allow(dead_code, unused_imports)]

pub use conveyor_engine::mock::{pattern, Fault, MemBackend, MockConfig, Op, Request, Rng};
pub use conveyor_engine::{Attrs, Backend, Config, Engine, Errno, FileKey, Handle, Mode, Result};
pub use std::io::SeekFrom;
pub use std::sync::atomic::{AtomicUsize, Ordering};
pub use std::sync::{Arc, Condvar, Mutex};
pub use std::thread;
pub use std::time::{Duration, Instant};

pub const K: usize = 1 << 10;
pub const M: usize = 1 << 20;
pub const BLOCK: usize = 4096;

/// A backend over the real file `path` (created if missing): one
/// read-write descriptor, and one `O_APPEND` for append writes.
pub fn file_backend(path: &std::path::Path) -> Arc<conveyor_engine::FileBackend> {
    let open = |append: bool| {
        std::fs::OpenOptions::new()
            .read(!append)
            .write(true)
            .append(append)
            .create(true)
            .truncate(false)
            .open(path)
            .expect("open")
    };
    Arc::new(conveyor_engine::FileBackend::new(
        open(false),
        Some(open(true)),
    ))
}

pub fn key(ino: u64) -> FileKey {
    FileKey { dev: 1, ino }
}

pub fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

pub fn open(e: &Engine, ino: u64, b: &Arc<impl Backend>, mode: Mode) -> Handle {
    e.open(
        key(ino),
        &format!("file-{ino}"),
        Arc::clone(b) as Arc<dyn Backend>,
        mode,
    )
}

pub fn mem(cfg: MockConfig) -> Arc<MemBackend> {
    Arc::new(MemBackend::new(cfg))
}

pub fn mem_with(cfg: MockConfig, data: Vec<u8>) -> Arc<MemBackend> {
    Arc::new(MemBackend::with_data(cfg, data))
}

/// A file whose every 4 KiB block is distinguishable: it starts with its
/// block index and `tag`, and the rest depends on both.
pub fn blocks(len: usize, tag: u64) -> Vec<u8> {
    let mut v = vec![0u8; len];
    for (i, blk) in v.chunks_mut(BLOCK).enumerate() {
        let mut r = Rng::new((i as u64) << 16 ^ tag);
        r.fill(blk);
        let hdr = [(i as u64).to_le_bytes(), tag.to_le_bytes()].concat();
        let n = hdr.len().min(blk.len());
        blk[..n].copy_from_slice(&hdr[..n]);
    }
    v
}

/// `base` with `data` written at `off` (extending it if needed).
pub fn overlaid(base: &[u8], off: usize, data: &[u8]) -> Vec<u8> {
    let mut v = base.to_vec();
    if v.len() < off + data.len() {
        v.resize(off + data.len(), 0);
    }
    v[off..off + data.len()].copy_from_slice(data);
    v
}

pub fn count(reqs: &[Request], op: Op) -> usize {
    reqs.iter().filter(|r| r.op == op).count()
}

/// preads exactly `len` bytes at `off` (the engine never returns a short
/// count before end of file, so one call must do).
pub fn pread_exact(h: &Handle, off: u64, len: usize) -> Vec<u8> {
    let mut buf = vec![0u8; len];
    assert_eq!(h.pread(&mut buf, off), Ok(len), "pread {len} at {off}");
    buf
}

/// Polls `cond` until it holds or `limit` passes (for setup and liveness
/// checks only, never for a timing assertion).
pub fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let t = Instant::now();
    while !cond() {
        if t.elapsed() > limit {
            return false;
        }
        thread::sleep(Duration::from_micros(200));
    }
    true
}

/// Which requests a [`Gated`] backend holds while closed.
#[derive(Clone, Copy)]
pub enum Hold {
    /// Every write and append, before it touches storage.
    Writes,
    /// Every read starting below the offset, before it touches storage.
    ReadsBelow(u64),
    /// Every read starting at or past the offset, after it has read
    /// storage: its (by then possibly outdated) answer is held back.
    RepliesFrom(u64),
}

/// A gate that holds chosen storage requests until the test opens it, so
/// "not yet on storage" is a fact rather than a timing bet.
pub struct Gated {
    inner: Arc<MemBackend>,
    hold: Hold,
    open: Mutex<bool>,
    cv: Condvar,
    waiting: AtomicUsize,
}

impl Gated {
    pub fn new(inner: Arc<MemBackend>, hold: Hold) -> Arc<Gated> {
        Arc::new(Gated {
            inner,
            hold,
            open: Mutex::new(false),
            cv: Condvar::new(),
            waiting: AtomicUsize::new(0),
        })
    }

    pub fn open(&self) {
        *self.open.lock().unwrap() = true;
        self.cv.notify_all();
    }

    /// Requests being held now.
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::SeqCst)
    }

    pub fn pass(&self) {
        self.waiting.fetch_add(1, Ordering::SeqCst);
        let mut g = self.open.lock().unwrap();
        while !*g {
            g = self.cv.wait(g).unwrap();
        }
        self.waiting.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Backend for Gated {
    fn pread(&self, buf: &mut [u8], offset: u64) -> Result<usize> {
        match self.hold {
            Hold::ReadsBelow(b) if offset < b => {
                self.pass();
                self.inner.pread(buf, offset)
            }
            Hold::RepliesFrom(b) if offset >= b => {
                let r = self.inner.pread(buf, offset);
                self.pass();
                r
            }
            _ => self.inner.pread(buf, offset),
        }
    }
    fn pwritev(&self, bufs: &[&[u8]], offset: u64) -> Result<usize> {
        if matches!(self.hold, Hold::Writes) {
            self.pass();
        }
        self.inner.pwritev(bufs, offset)
    }
    fn append(&self, bufs: &[&[u8]]) -> Result<(usize, Option<u64>)> {
        if matches!(self.hold, Hold::Writes) {
            self.pass();
        }
        self.inner.append(bufs)
    }
    fn sync(&self, data_only: bool) -> Result<()> {
        self.inner.sync(data_only)
    }
    fn truncate(&self, len: u64) -> Result<()> {
        self.inner.truncate(len)
    }
    fn allocate(&self, mode: i32, offset: u64, len: u64) -> Result<()> {
        self.inner.allocate(mode, offset, len)
    }
    fn size(&self) -> Result<u64> {
        self.inner.size()
    }
}

/// Reads through `h` from its offset to end of file in `chunk`-sized
/// reads, giving up (with a failure) after `max_reads` non-empty reads.
pub fn read_to_eof(h: &Handle, chunk: usize, max_reads: usize) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = vec![0u8; chunk];
    for _ in 0..=max_reads {
        let n = h.read(&mut buf).unwrap();
        if n == 0 {
            return got;
        }
        got.extend_from_slice(&buf[..n]);
    }
    panic!(
        "no end of file after {max_reads} reads ({} bytes)",
        got.len()
    );
}
