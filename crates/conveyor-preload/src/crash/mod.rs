//! Crash-safe write-behind, the shim's side (`CONVEYOR_CRASH_SAFE=on`):
//! the engine keeps its write-behind segments in a shared-memory journal
//! (`conveyor_journal`), and the first time the journal holds data, the
//! shim connects to the flusher (`CONVEYOR_FLUSHER`, a Unix socket
//! `conveyor run --crash-safe` starts) and hands the journal over. Should
//! the process die, the flusher writes what it acknowledged.
//!
//! The connection is a private descriptor (high, close-on-exec, kept out
//! of the program's close ranges), so it ends exactly when the process
//! does, or execs. A forked child closes its copy (its parent's death
//! must end the connection) and its view of the parent's journal, and
//! connects with a journal of its own when it has data.
//!
//! Without `CONVEYOR_FLUSHER` (a bare `LD_PRELOAD`), the process uses the
//! user's own flusher, `$XDG_RUNTIME_DIR/conveyor-flusher-$UID/socket` (or
//! under `/tmp`), and starts it when none listens (`spawn`): `conveyor
//! flusher --detach --idle 30`, found next to the shim or in `PATH`.
//!
//! Nothing here is on the write path once connected: `watch` runs when a
//! file is first named in the journal, and costs one `recv` then.

mod spawn;

use crate::backend::{place_high, track, untrack};
use conveyor_engine::journal::{wire, Journal};
use std::os::fd::{BorrowedFd, IntoRawFd};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicPtr, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

// The connection to the flusher (-1: none). Changed only under `CONNECT`.
static SOCK: AtomicI32 = AtomicI32::new(-1);
// Serialises connecting. Held across `fork` (`process::fork`).
static CONNECT: Mutex<()> = Mutex::new(());
// Whether "no flusher" was said (once per process).
static SAID: AtomicBool = AtomicBool::new(false);

// The journal of this process's engine (a leaked `Arc`: it lives as long
// as the process), null until the engine made it. Replaced in a forked
// child, where only one thread exists.
static JOURNAL: AtomicPtr<Journal> = AtomicPtr::new(std::ptr::null_mut());

/// The engine's journal maker (`Journaling::Lazy`): a journal for
/// `max_memory` of segments at its first segment, or `None` (said once)
/// where no `memfd` can be had: in-process buffers then.
pub fn make(max_memory: usize) -> Option<Arc<Journal>> {
    let slots = (max_memory / conveyor_engine::journal::SEGMENT).max(2) as u32;
    match Journal::create_placed(slots, |fd| track(place_high(fd))) {
        Ok(j) => {
            let j = Arc::new(j);
            let leaked = Arc::into_raw(Arc::clone(&j)).cast_mut();
            JOURNAL.store(leaked, Ordering::Release);
            Some(j)
        }
        Err(e) => {
            tracing::warn!(
                "CONVEYOR_CRASH_SAFE: no shared memory for the journal ({e}); pending writes are kept in this process and lost if it is killed"
            );
            None
        }
    }
}

fn journal() -> Option<&'static Journal> {
    let p = JOURNAL.load(Ordering::Acquire);
    // SAFETY: a non-null pointer is a leaked `Arc` (`make`), never freed.
    (!p.is_null()).then(|| unsafe { &*p })
}

/// The engine's `Hooks::watch`: makes sure a flusher has the journal.
pub fn watch() {
    let fd = SOCK.load(Ordering::Acquire);
    // SAFETY: `fd` is our private connection, open while SOCK holds it.
    if fd >= 0 && !wire::hung_up(unsafe { BorrowedFd::borrow_raw(fd) }) {
        return;
    }
    let _one = CONNECT.lock().unwrap_or_else(|p| p.into_inner());
    let fd = SOCK.load(Ordering::Acquire);
    if fd >= 0 {
        // SAFETY: as above.
        if !wire::hung_up(unsafe { BorrowedFd::borrow_raw(fd) }) {
            return;
        }
        tracing::warn!("the flusher went away; connecting to it again");
        close(fd);
    }
    let Some(shim) = crate::state::get() else {
        return;
    };
    let Some(journal) = journal() else {
        return;
    };
    // The one given, or the user's own, started here when none listens.
    let (path, own) = match &shim.flusher {
        Some(p) => (p.clone(), false),
        None => (user_socket(), true),
    };
    let sock = match wire::connect(&path) {
        Ok(s) => Ok(s),
        Err(_) if own => spawn::flusher(&path),
        Err(e) => Err(e),
    };
    let sock = match sock {
        Ok(s) => s,
        Err(e) => {
            if !SAID.swap(true, Ordering::AcqRel) {
                tracing::warn!(
                    "cannot reach the flusher at {} ({e}): pending writes are lost if this process is killed",
                    path.display()
                );
            }
            return;
        }
    };
    let fd = track(place_high(sock.into_raw_fd()));
    if fd < 0 {
        return;
    }
    // SAFETY: `fd` is the connection just made, ours alone.
    match wire::greet(unsafe { BorrowedFd::borrow_raw(fd) }, journal) {
        Ok(()) => {
            SOCK.store(fd, Ordering::Release);
            SAID.store(false, Ordering::Release);
        }
        Err(e) => {
            tracing::warn!("the flusher at {} refused the journal: {e}", path.display());
            close(fd);
        }
    }
}

/// The user's own flusher's socket, for programs run without
/// `CONVEYOR_FLUSHER`: in `$XDG_RUNTIME_DIR` (a per-user directory of the
/// session), else in `/tmp`, in a directory of the user's own.
fn user_socket() -> std::path::PathBuf {
    // SAFETY: no arguments.
    let uid = unsafe { libc::geteuid() };
    let base = std::env::var_os("XDG_RUNTIME_DIR")
        .map(std::path::PathBuf::from)
        .filter(|p| p.is_absolute())
        .unwrap_or_else(|| "/tmp".into());
    base.join(format!("conveyor-flusher-{uid}")).join("socket")
}

fn close(fd: i32) {
    SOCK.store(-1, Ordering::Release);
    untrack(fd);
    // SAFETY: our own connection, no longer published.
    unsafe { crate::real::close(fd) };
}

/// Held across `fork`: a child must not find it taken by a thread it does
/// not have.
pub fn hold_for_fork() -> MutexGuard<'static, ()> {
    CONNECT.lock().unwrap_or_else(|p| p.into_inner())
}

/// In a forked child (the only thread; `private` is the list of private
/// descriptors, held): its parent's connection and journal are not its
/// own. The parent's death must end the connection, and nothing the child
/// does may reach the parent's journal.
pub fn in_child(private: &mut Vec<libc::c_int>) {
    let fd = SOCK.swap(-1, Ordering::AcqRel);
    if fd >= 0 {
        private.retain(|p| *p != fd);
        // SAFETY: the parent's connection; nothing in the child uses it.
        unsafe { crate::real::close(fd) };
    }
    SAID.store(false, Ordering::Release);
    if let Some(j) = journal() {
        private.retain(|p| *p != j.fd_raw());
        j.detach();
    }
    JOURNAL.store(std::ptr::null_mut(), Ordering::Release);
}
