//! The private descriptors of each managed file, shared by all its
//! managed descriptions (fewer descriptors and, on slow storage, fewer
//! opens), and their release when the file's last description closes.

use crate::backend::RawBackend;
use crate::desc::Desc;
use crate::guard::Inside;
use conveyor_engine::{Backend, FileKey};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

// (file, backend) pairs; dead backends are dropped as new ones come.
static BACKENDS: Mutex<Vec<(FileKey, Weak<RawBackend>)>> = Mutex::new(Vec::new());

/// A live read-write backend of file `key`, if one exists.
pub fn shared_backend(key: FileKey) -> Option<Arc<RawBackend>> {
    let v = BACKENDS.lock().ok()?;
    v.iter()
        .filter(|(k, _)| *k == key)
        .filter_map(|(_, w)| w.upgrade())
        .find(|b| b.can_read() && b.can_write() && b.is_shareable() && !b.is_released())
}

/// Closes the private descriptors of the description `d` is closing, now,
/// if no other description of its file uses them (`d` is the last handle
/// of the file, and they are not kept for the program's locks). The check
/// and the release happen under the list's lock, so an open that picked
/// the same backend meanwhile either counts as a handle here or sees it
/// released (`manage` then opens a fresh one). The descriptors themselves
/// are closed after the lock is dropped: that close can take a whole
/// upload on a cloud filesystem.
pub fn release_if_last(d: &Desc, inside: &Inside) -> Result<(), conveyor_engine::Errno> {
    let h = d.handle(inside);
    if !h.is_last() || d.backend.is_retained() {
        return Ok(());
    }
    // Outside the lock: a prefetch can take a storage round trip.
    h.quiesce();
    {
        let Ok(mut v) = BACKENDS.lock() else {
            return Ok(());
        };
        if !h.is_last() || d.backend.is_retained() || d.backend.is_released() {
            return Ok(());
        }
        let me = Arc::as_ptr(&d.backend);
        v.retain(|(_, w)| w.as_ptr() != me && w.strong_count() > 0);
        d.backend.mark_released();
    }
    d.backend.release()
}

pub fn remember_backend(key: FileKey, b: &Arc<RawBackend>) {
    if let Ok(mut v) = BACKENDS.lock() {
        v.retain(|(_, w)| w.strong_count() > 0);
        if !v
            .iter()
            .any(|(k, w)| *k == key && w.as_ptr() == Arc::as_ptr(b))
        {
            v.push((key, Arc::downgrade(b)));
        }
    }
}

/// True if `b` was released; asked under the list's lock, so that a
/// release deciding at the same moment has either counted the caller's new
/// handle or marked `b` released before this answers.
pub fn still_released(b: &RawBackend) -> bool {
    let _v = BACKENDS.lock();
    b.is_released()
}

/// The list, locked across `fork`; the child forgets it (the parent's
/// private descriptors are not shared with the child's engine).
pub struct ForkHold(MutexGuard<'static, Vec<(FileKey, Weak<RawBackend>)>>);

/// Locks the list before `fork`.
pub fn hold_for_fork() -> ForkHold {
    ForkHold(BACKENDS.lock().unwrap_or_else(|e| e.into_inner()))
}

impl ForkHold {
    /// In the child: the parent's backends are not the child's.
    pub fn in_child(mut self) {
        self.0.clear();
    }
}
