//! Private descriptors of descriptions handed back to the kernel.
//!
//! The kernel drops every POSIX record lock a process holds on a file when
//! the process closes *any* descriptor of that file. So when a description
//! passes through from now on (mmap, fdopen, a shared description at fork
//! or exec) while the program keeps its own descriptor, closing our private
//! descriptors would silently release the program's locks (sqlite's WAL
//! index lost its locks at its first mmap). They are kept here instead,
//! and closed once the program's descriptors of the file are gone and no
//! managed description of it remains: by then the program holds no lock
//! on it that a close could drop.

use crate::backend::RawBackend;
use crate::desc::Desc;
use crate::guard::Inside;
use crate::identity::{fd_key, fstat};
use crate::{real, state};
use conveyor_engine::FileKey;
use libc::c_int;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// Private descriptors kept open for the program's locks.
pub struct Retired {
    /// The program's descriptor that had the description.
    fd: c_int,
    key: FileKey,
    /// Held only to keep the private descriptors open.
    _backend: Arc<RawBackend>,
}

static RETIRED: Mutex<Vec<Retired>> = Mutex::new(Vec::new());
static ANY: AtomicBool = AtomicBool::new(false);

/// Locks the list across `fork`, so the child finds it free.
pub fn hold_for_fork() -> MutexGuard<'static, Vec<Retired>> {
    RETIRED.lock().unwrap_or_else(|e| e.into_inner())
}

/// `d` was managed under `fd` and now passes through: keep its private
/// descriptors open while the program may hold locks through `fd`.
pub fn retire(fd: c_int, d: Arc<Desc>) {
    // A backend that works through the program's own descriptor has
    // nothing of its own to keep open.
    let Some(own) = d.backend.taken() else {
        return;
    };
    let Some(key) = fstat(own).and_then(|st| fd_key(own, &st)) else {
        return;
    };
    d.backend.retain();
    let r = Retired {
        fd,
        key,
        _backend: Arc::clone(&d.backend),
    };
    drop(d);
    match RETIRED.try_lock() {
        Ok(mut v) => {
            v.push(r);
            ANY.store(true, Ordering::Release);
        }
        // Busy (a signal handler interrupted this thread inside `reap`):
        // never close them rather than risk the program's locks.
        Err(_) => std::mem::forget(r),
    }
}

/// True while some private descriptors are kept (cheap: one load).
pub fn any() -> bool {
    ANY.load(Ordering::Relaxed)
}

/// Closes the kept descriptors of files the program no longer has open
/// (`errno` is preserved).
pub fn reap(inside: &Inside) {
    if !ANY.load(Ordering::Acquire) {
        return;
    }
    let saved = real::errno();
    reap_locked(inside);
    real::set_errno(saved);
}

fn reap_locked(inside: &Inside) {
    let Ok(mut v) = RETIRED.try_lock() else {
        return;
    };
    let open =
        |r: &Retired| fstat(r.fd).is_some_and(|st| fd_key(r.fd, &st).is_some_and(|k| k == r.key));
    let engine = state::get().map(|s| s.engine(inside));
    let busy: Vec<FileKey> = v
        .iter()
        .filter(|r| open(r) || engine.is_some_and(|e| e.pending_end(r.key).is_some()))
        .map(|r| r.key)
        .collect();
    let gone: Vec<Retired> = {
        let (keep, gone) = v.drain(..).partition(|r| busy.contains(&r.key));
        *v = keep;
        gone
    };
    ANY.store(!v.is_empty(), Ordering::Release);
    drop(v);
    // Closes the private descriptors (outside the lock).
    drop(gone);
}
