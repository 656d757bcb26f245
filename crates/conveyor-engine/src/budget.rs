//! Process-wide memory accounting for write-behind segments and read-ahead
//! chunks, and a free list that keeps segment allocation off the write path.

use crate::config::SEGMENT;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// Free segments kept for reuse; beyond this they go back to the allocator.
const FREE_KEEP: usize = 64;

/// The process-wide memory cap and the segment free list.
pub(crate) struct Budget {
    cap: usize,
    // Invariant: `used <= cap` after every successful `try_reserve`; it only
    // grows through `try_reserve` and shrinks through `release`.
    used: AtomicUsize,
    free: Mutex<Vec<Vec<u8>>>,
}

impl Budget {
    pub fn new(cap: usize) -> Budget {
        Budget {
            cap,
            used: AtomicUsize::new(0),
            free: Mutex::new(Vec::new()),
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

/// Bytes of the budget held by one read-ahead chunk; given back on drop.
pub(crate) struct Reservation {
    budget: Arc<Budget>,
    bytes: usize,
}

impl Reservation {
    pub fn try_new(budget: &Arc<Budget>, bytes: usize) -> Option<Reservation> {
        budget.try_reserve(bytes).then(|| Reservation {
            budget: Arc::clone(budget),
            bytes,
        })
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.budget.release(self.bytes);
    }
}
