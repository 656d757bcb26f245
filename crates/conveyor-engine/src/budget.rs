//! Process-wide memory accounting for write-behind segments and read-ahead
//! chunks, and a free list that keeps segment allocation off the write path.

use crate::config::SEGMENT;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// Free segments kept for reuse; beyond this they go back to the allocator.
const FREE_KEEP: usize = 64;
/// Bytes of free read-ahead chunk buffers kept for reuse. Reusing them keeps
/// fresh pages (a page fault and a zeroed page per 4 KiB) off the read path.
const CHUNKS_KEEP: usize = 8 << 20;

/// The process-wide memory cap and the segment free list.
pub(crate) struct Budget {
    cap: usize,
    // Invariant: `used <= cap` after every successful `try_reserve`; it only
    // grows through `try_reserve` and shrinks through `release`.
    used: AtomicUsize,
    free: Mutex<Vec<Vec<u8>>>,
    chunks: Mutex<Vec<Vec<u8>>>,
}

impl Budget {
    pub fn new(cap: usize) -> Budget {
        Budget {
            cap,
            used: AtomicUsize::new(0),
            free: Mutex::new(Vec::new()),
            chunks: Mutex::new(Vec::new()),
        }
    }

    /// Takes `n` bytes of the cap, or returns false when they do not fit.
    pub fn try_reserve(&self, n: usize) -> bool {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| {
                u.checked_add(n).filter(|t| *t <= self.cap)
            })
            .is_ok()
    }

    /// Gives back `n` bytes taken by `try_reserve`.
    pub fn release(&self, n: usize) {
        self.used.fetch_sub(n, Ordering::AcqRel);
    }

    /// Bytes reserved now.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Acquire)
    }

    /// The cap.
    pub fn cap(&self) -> usize {
        self.cap
    }

    /// An empty buffer with `SEGMENT` capacity; the caller has reserved it.
    pub fn segment(&self) -> Vec<u8> {
        let reused = self.free.lock().ok().and_then(|mut f| f.pop());
        reused.unwrap_or_else(|| Vec::with_capacity(SEGMENT))
    }

    /// Returns a segment's buffer (and its reservation).
    pub fn recycle(&self, mut buf: Vec<u8>) {
        buf.clear();
        if buf.capacity() == SEGMENT {
            if let Ok(mut f) = self.free.lock() {
                if f.len() < FREE_KEEP {
                    f.push(buf);
                }
            }
        }
        self.release(SEGMENT);
    }
}

/// Bytes of the budget held by one read-ahead chunk, and the chunk's buffer
/// once it has one; both are given back on drop.
pub(crate) struct Reservation {
    budget: Arc<Budget>,
    bytes: usize,
    /// The chunk's bytes (empty until the prefetch has a buffer).
    pub buf: Vec<u8>,
}

impl Reservation {
    pub fn try_new(budget: &Arc<Budget>, bytes: usize) -> Option<Reservation> {
        // Only a successful reservation may exist: its drop gives the bytes back.
        let budget = Arc::clone(budget);
        budget.try_reserve(bytes).then(|| Reservation {
            budget,
            bytes,
            buf: Vec::new(),
        })
    }

    /// Gives the reservation a buffer of its size. A reused buffer keeps
    /// old contents: the caller uses only what it overwrites.
    pub fn fill_buffer(&mut self) {
        let reused = self.budget.chunks.lock().ok().and_then(|mut c| {
            let i = c.iter().position(|b| b.len() == self.bytes)?;
            Some(c.swap_remove(i))
        });
        self.buf = reused.unwrap_or_else(|| vec![0; self.bytes]);
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let buf = std::mem::take(&mut self.buf);
        if !buf.is_empty() {
            if let Ok(mut c) = self.budget.chunks.lock() {
                let held: usize = c.iter().map(Vec::len).sum();
                if held + buf.len() <= CHUNKS_KEEP {
                    c.push(buf);
                }
            }
        }
        self.budget.release(self.bytes);
    }
}
