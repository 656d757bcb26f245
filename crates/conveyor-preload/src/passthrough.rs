//! Files (and processes) that pass through for good: a file handed to the
//! kernel (mapped, `fdopen`ed, opened by a stream, opened `O_DIRECT` or
//! `O_DSYNC`, `O_APPEND` changed) is never managed again in this process,
//! since a buffered description and one the kernel serves directly could
//! not keep each other's order; and after a shared writable mapping of a
//! selected file, nothing is.

use conveyor_engine::FileKey;
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};

// Files handed to the kernel for good (mapped, fdopen'ed, opened O_DIRECT
// or O_DSYNC, O_APPEND changed): a buffered description and one the kernel
// serves directly could not keep each other's order, so none of their
// opens is managed again in this process (a program that maps every file
// it reads keeps one entry per file).
static PASSED: Mutex<Option<HashSet<FileKey>>> = Mutex::new(None);
static ANY_PASSED: AtomicBool = AtomicBool::new(false);

// Set once the process maps a selected file shared and writable (sqlite's
// WAL index, `-shm`): it then tells other processes about its writes
// through memory, at moments no hook sees (a store into the mapping), so
// nothing of it may be buffered or cached any more. Never cleared.
static PASS_ALL: AtomicBool = AtomicBool::new(false);

/// Nothing is managed in this process from now on.
pub fn pass_through_everything() {
    PASS_ALL.store(true, Ordering::Release);
}

/// File `key` passes through from now on.
pub fn pass_through(key: FileKey) {
    if let Ok(mut v) = PASSED.lock() {
        v.get_or_insert_with(HashSet::new).insert(key);
        ANY_PASSED.store(true, Ordering::Release);
    }
}

/// True if file `key` passes through.
pub fn passed(key: FileKey) -> bool {
    ANY_PASSED.load(Ordering::Acquire)
        && PASSED
            .lock()
            .map_or(true, |v| v.as_ref().is_some_and(|v| v.contains(&key)))
}

/// True once nothing is managed in this process any more.
pub fn everything() -> bool {
    PASS_ALL.load(Ordering::Acquire)
}

/// The list of passed-through files, locked across `fork`.
pub struct ForkHold(MutexGuard<'static, Option<HashSet<FileKey>>>);

/// Locks the list before `fork`.
pub fn hold_for_fork() -> ForkHold {
    ForkHold(PASSED.lock().unwrap_or_else(|e| e.into_inner()))
}

impl ForkHold {
    /// In the child: every file it inherited a managed description of
    /// passes through (the kernel serves those descriptions there, and a
    /// buffered one beside them could not keep their order).
    pub fn in_child(mut self, inherited: &[FileKey]) {
        if !inherited.is_empty() {
            self.0
                .get_or_insert_with(HashSet::new)
                .extend(inherited.iter().copied());
            ANY_PASSED.store(true, Ordering::Release);
        }
    }
}
