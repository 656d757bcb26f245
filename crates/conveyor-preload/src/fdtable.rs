//! fd -> managed description: a flat table of atomic pointers indexed by
//! descriptor number, in chunks allocated on first use (so its size follows
//! the descriptors actually managed, never `RLIMIT_NOFILE`).
//!
//! An unmanaged fd costs two atomic loads and no lock. Managed entries are
//! `Arc`s; a reader pins the slot with a counter while it takes its own
//! reference, and a remover waits for pinned readers before dropping the
//! table's reference, so no reader ever sees a freed entry.

use crate::desc::Desc;
use std::ptr;
use std::sync::atomic::{AtomicPtr, AtomicU32, Ordering::SeqCst};
use std::sync::Arc;

const CHUNK: usize = 1024;
const CHUNKS: usize = 1024;
/// Descriptors at or above this are never managed.
pub const MAX_FD: usize = CHUNK * CHUNKS;

struct Slot {
    // Invariant: non-null means the table owns one strong count of the Arc.
    desc: AtomicPtr<Desc>,
    // Readers between loading `desc` and taking their own strong count.
    readers: AtomicU32,
}

type Chunk = [Slot; CHUNK];

static TABLE: [AtomicPtr<Chunk>; CHUNKS] = [const { AtomicPtr::new(ptr::null_mut()) }; CHUNKS];

fn slot(fd: i32) -> Option<&'static Slot> {
    let i = usize::try_from(fd).ok().filter(|i| *i < MAX_FD)?;
    let chunk = TABLE[i / CHUNK].load(SeqCst);
    // SAFETY: chunks are allocated once, never freed, and only published
    // fully initialised (by the compare-exchange in `slot_or_new`).
    unsafe { chunk.as_ref() }.map(|c| &c[i % CHUNK])
}

fn slot_or_new(fd: i32) -> Option<&'static Slot> {
    let i = usize::try_from(fd).ok().filter(|i| *i < MAX_FD)?;
    if let Some(s) = slot(fd) {
        return Some(s);
    }
    let fresh: Box<Chunk> = Box::new(
        [const {
            Slot {
                desc: AtomicPtr::new(ptr::null_mut()),
                readers: AtomicU32::new(0),
            }
        }; CHUNK],
    );
    let fresh = Box::into_raw(fresh);
    if TABLE[i / CHUNK]
        .compare_exchange(ptr::null_mut(), fresh, SeqCst, SeqCst)
        .is_err()
    {
        // SAFETY: `fresh` was never published; another thread's chunk won.
        drop(unsafe { Box::from_raw(fresh) });
    }
    slot(fd)
}

/// True if `fd` is managed: the whole cost of the check for every fd.
#[inline]
pub fn is_managed(fd: i32) -> bool {
    slot(fd).is_some_and(|s| !s.desc.load(SeqCst).is_null())
}

/// The description managed under `fd`.
pub fn get(fd: i32) -> Option<Arc<Desc>> {
    let s = slot(fd)?;
    s.readers.fetch_add(1, SeqCst);
    let p = s.desc.load(SeqCst);
    let out = if p.is_null() {
        None
    } else {
        // SAFETY: `p` came from Arc::into_raw and the table's count keeps it
        // alive: a remover waits for `readers` to drop before releasing it.
        unsafe {
            Arc::increment_strong_count(p);
            Some(Arc::from_raw(p))
        }
    };
    s.readers.fetch_sub(1, SeqCst);
    out
}

/// Manages `fd` as `d`; returns what was there before (a stale entry).
pub fn insert(fd: i32, d: Arc<Desc>) -> Option<Arc<Desc>> {
    let s = slot_or_new(fd)?;
    let old = s.desc.swap(Arc::into_raw(d).cast_mut(), SeqCst);
    release(s, old)
}

/// Stops managing `fd`; returns its description.
pub fn remove(fd: i32) -> Option<Arc<Desc>> {
    let s = slot(fd)?;
    let old = s.desc.swap(ptr::null_mut(), SeqCst);
    release(s, old)
}

fn release(s: &Slot, old: *mut Desc) -> Option<Arc<Desc>> {
    if old.is_null() {
        return None;
    }
    // SAFETY: `old` held the table's strong count, now ours.
    let arc = unsafe { Arc::from_raw(old) };
    // A reader that loaded `old` before the swap takes its count within a
    // few instructions. If it never finishes (a signal handler interrupted
    // it on this very thread), keep the entry alive forever rather than
    // free it under the reader.
    for _ in 0..1_000_000 {
        if s.readers.load(SeqCst) == 0 {
            return Some(arc);
        }
        std::hint::spin_loop();
    }
    let keep = Arc::clone(&arc);
    std::mem::forget(arc);
    Some(keep)
}

/// Every managed fd and its description.
pub fn all() -> Vec<(i32, Arc<Desc>)> {
    let mut out = Vec::new();
    for (ci, c) in TABLE.iter().enumerate() {
        if c.load(SeqCst).is_null() {
            continue;
        }
        for j in 0..CHUNK {
            let fd = (ci * CHUNK + j) as i32;
            if let Some(d) = get(fd) {
                out.push((fd, d));
            }
        }
    }
    out
}

/// Forgets every entry without touching the descriptions (in a forked
/// child, whose copies of them belong to the parent's threads).
pub fn forget_all() {
    for c in TABLE.iter() {
        let chunk = c.load(SeqCst);
        // SAFETY: as in `slot`.
        if let Some(chunk) = unsafe { chunk.as_ref() } {
            for s in chunk.iter() {
                s.desc.store(ptr::null_mut(), SeqCst);
            }
        }
    }
}
