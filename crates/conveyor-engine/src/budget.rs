//! Process-wide memory accounting for write-behind segments and read-ahead
//! chunks, and a free list that keeps segment allocation off the write path.
//! With a journal (crash-safe write-behind), segments are its slots.

use crate::config::SEGMENT;
use conveyor_journal::{Journal, Slot};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

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
    // The journal whose slots hold segments, and its free slots (the
    // most recently freed last: its pages are the ones most likely
    // resident), once made. Invariant: a slot is either in the list or
    // owned by one `SegData::Shared`.
    journal: OnceLock<Option<Slots>>,
    // Makes the journal at the first segment (a process that never
    // buffers a write never has one).
    make: Option<Journaling>,
}

/// A journal and its free slots.
type Slots = (Arc<Journal>, Mutex<FreeSlots>);

/// The free slots of a journal: a stack whose top `warm` were freed after
/// use and keep their pages; below them, slots never used or given back.
struct FreeSlots {
    list: Vec<u32>,
    warm: usize,
}

/// Where the engine's journal comes from.
#[derive(Clone)]
pub enum Journaling {
    /// This one.
    Ready(Arc<Journal>),
    /// Made at the first segment by this function, given the memory cap
    /// (`None`: no journal, segments on the heap).
    Lazy(fn(usize) -> Option<Arc<Journal>>),
}

impl Budget {
    pub fn new(cap: usize, journal: Option<Journaling>) -> Budget {
        Budget {
            cap,
            used: AtomicUsize::new(0),
            free: Mutex::new(Vec::new()),
            chunks: Mutex::new(Vec::new()),
            journal: OnceLock::new(),
            make: journal,
        }
    }

    /// The journal and its free slots; made at the first call.
    fn slots(&self) -> Option<&Slots> {
        self.journal
            .get_or_init(|| {
                let j = match self.make.as_ref()? {
                    Journaling::Ready(j) => Arc::clone(j),
                    Journaling::Lazy(make) => make(self.cap)?,
                };
                let free = (0..j.slots()).rev().collect();
                Some((
                    j,
                    Mutex::new(FreeSlots {
                        list: free,
                        warm: 0,
                    }),
                ))
            })
            .as_ref()
    }

    /// The journal segments live in, once one is made.
    pub fn journal(&self) -> Option<&Arc<Journal>> {
        self.journal.get()?.as_ref().map(|(j, _)| j)
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

    /// An empty segment of `SEGMENT` bytes for file `owner` (its number in
    /// the journal); the caller has reserved it. A journal slot when there
    /// is a journal with one free, else heap memory.
    pub fn segment(&self, owner: u64) -> SegData {
        if let Some((j, slots)) = self.slots() {
            let free = slots.lock().ok().and_then(|mut f| {
                f.warm = f.warm.saturating_sub(1);
                f.list.pop()
            });
            if let Some(i) = free {
                return SegData::Shared(Slot::claim(j, i, owner));
            }
        }
        let reused = self.free.lock().ok().and_then(|mut f| f.pop());
        SegData::Heap(reused.unwrap_or_else(|| Vec::with_capacity(SEGMENT)))
    }

    /// Returns a segment (and its reservation).
    pub fn recycle(&self, seg: SegData) {
        match seg {
            SegData::Heap(mut buf) => {
                buf.clear();
                if buf.capacity() == SEGMENT {
                    if let Ok(mut f) = self.free.lock() {
                        if f.len() < FREE_KEEP {
                            f.push(buf);
                        }
                    }
                }
            }
            SegData::Shared(slot) => self.free_slot(slot),
        }
        self.release(SEGMENT);
    }

    /// Frees a journal slot whose data nobody needs any more. Beyond the
    /// `FREE_KEEP` most recently freed, its memory goes back to the system
    /// (as heap segments beyond those go back to the allocator).
    pub fn free_slot(&self, slot: Slot) {
        let i = slot.index();
        drop(slot);
        if let Some((j, slots)) = self.slots() {
            let mut free = slots.lock().unwrap_or_else(|p| p.into_inner());
            if free.warm >= FREE_KEEP {
                // Cold: last in line, so that the warm ones are used first.
                j.release_pages(i);
                free.list.insert(0, i);
            } else {
                free.list.push(i);
                free.warm += 1;
            }
        }
    }
}

/// The bytes of one write-behind segment: heap memory, or a journal slot
/// that also records the segment's extents for the flusher.
pub(crate) enum SegData {
    Heap(Vec<u8>),
    Shared(Slot),
}

impl std::ops::Deref for SegData {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            SegData::Heap(v) => v,
            SegData::Shared(s) => s.data(),
        }
    }
}

impl SegData {
    /// Appends as much of `bytes` as fits in the segment; returns how much.
    pub fn push(&mut self, bytes: &[u8]) -> usize {
        match self {
            SegData::Heap(v) => {
                let n = bytes.len().min(SEGMENT - v.len());
                v.extend_from_slice(&bytes[..n]);
                n
            }
            SegData::Shared(s) => s.push(bytes),
        }
    }

    /// Overwrites bytes already pushed.
    pub fn overwrite(&mut self, pos: usize, bytes: &[u8]) {
        match self {
            SegData::Heap(v) => v[pos..pos + bytes.len()].copy_from_slice(bytes),
            SegData::Shared(s) => s.overwrite(pos, bytes),
        }
    }

    /// Whether extent number `i` of the segment can be recorded (a slot
    /// has room for `RECORDS`; heap memory records nothing).
    pub fn has_record(&self, i: usize) -> bool {
        match self {
            SegData::Heap(_) => true,
            SegData::Shared(_) => i < conveyor_journal::RECORDS,
        }
    }

    /// The journal's record of extent `i` (see `conveyor_journal::Slot`).
    pub fn record(&self, i: usize, seq: u64, off: u64, pos: usize, len: usize, append: bool) {
        if let SegData::Shared(s) = self {
            s.record(i, seq, off, pos, len, append);
        }
    }

    /// Extent `i` now covers `len` bytes.
    pub fn grow(&self, i: usize, len: usize) {
        if let SegData::Shared(s) = self {
            s.grow(i, len);
        }
    }

    /// Extent `i` was handed to storage.
    pub fn issued(&self, i: usize) {
        if let SegData::Shared(s) = self {
            s.issued(i);
        }
    }

    /// Extent `i` is written, or dropped after an error.
    pub fn done(&self, i: usize) {
        if let SegData::Shared(s) = self {
            s.done(i);
        }
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
