//! Crash-safe write-behind, the shim's side (`CONVEYOR_CRASH_SAFE=on`):
//! the engine keeps its write-behind segments in a shared-memory journal
//! (`conveyor_journal`), and the first time the journal holds data, the
//! shim connects to the flusher (`CONVEYOR_FLUSHER`, a Unix socket
//! `conveyor run` starts) and hands the journal over. Should
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
//! flusher --detach --idle 120`, found next to the shim or in `PATH`.
//!
//! Nothing here is on the write path once connected: `watch` runs when a
//! file is first named in the journal, and costs one `recv` then.

mod spawn;

use crate::backend::{place_high, track, untrack};
use conveyor_engine::journal::{wire, Journal};
use std::os::fd::{BorrowedFd, IntoRawFd};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicPtr, AtomicU64, Ordering};
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

// Milliseconds (of `now_ms`) when `watch` last looked at the connection,
// and before which it does not try to connect again after a failure.
static LOOKED: AtomicU64 = AtomicU64::new(0);
static RETRY_AT: AtomicU64 = AtomicU64::new(0);
// The connection's inode: a descriptor number the program closed and
// reused is never closed by us.
static SOCK_INO: AtomicU64 = AtomicU64::new(0);

/// How often a connected process looks whether its flusher is still there.
const LOOK_EVERY_MS: u64 = 1000;
/// How long after a failure to reach or start a flusher it tries again.
const RETRY_AFTER_MS: u64 = 10_000;

fn now_ms() -> u64 {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    START
        .get_or_init(std::time::Instant::now)
        .elapsed()
        .as_millis() as u64
        + 1
}

/// The engine's `Hooks::watch`, after each buffered write of a file the
/// journal names (the program's thread, no engine lock held): makes sure a
/// flusher has the journal. Connected, it costs a clock read, and a
/// `recv` once a second; after a failure it tries again 10 s later.
pub fn watch() {
    let now = now_ms();
    let fd = SOCK.load(Ordering::Acquire);
    if fd >= 0 {
        if now.saturating_sub(LOOKED.load(Ordering::Relaxed)) < LOOK_EVERY_MS {
            return;
        }
        LOOKED.store(now, Ordering::Relaxed);
        // SAFETY: our connection's number (a closed one fails the recv).
        if !wire::hung_up(unsafe { BorrowedFd::borrow_raw(fd) }) {
            return;
        }
    } else if now < RETRY_AT.load(Ordering::Relaxed) {
        return;
    }
    let _one = CONNECT.lock().unwrap_or_else(|p| p.into_inner());
    let fd = SOCK.load(Ordering::Acquire);
    if fd >= 0 {
        // SAFETY: as above.
        if !wire::hung_up(unsafe { BorrowedFd::borrow_raw(fd) }) {
            return;
        }
        tracing::info!("the flusher went away; handing the journal to another");
        close(fd);
    } else if now < RETRY_AT.load(Ordering::Relaxed) {
        return;
    }
    if connect().is_err() {
        RETRY_AT.store(now + RETRY_AFTER_MS, Ordering::Relaxed);
    }
}

/// Connects to a flusher and hands it the journal (under `CONNECT`).
fn connect() -> Result<(), ()> {
    let shim = crate::state::get().ok_or(())?;
    let journal = journal().ok_or(())?;
    // The one given; else, or when it is gone (killed: its socket is
    // left), the user's own, started here when none listens.
    let own = user_socket();
    let given = shim.flusher.as_ref().map(|p| (p, wire::connect(p)));
    let (path, sock) = match given {
        Some((p, Ok(s))) => (p.clone(), Ok(s)),
        other => {
            if let Some((p, Err(e))) = other {
                tracing::info!(
                    "the flusher at {} cannot be reached ({e}); using the user's own at {}",
                    p.display(),
                    own.display()
                );
            }
            let s = wire::connect(&own).or_else(|_| spawn::flusher(&own));
            (own, s)
        }
    };
    let sock = match sock {
        Ok(s) => s,
        Err(e) => {
            if !SAID.swap(true, Ordering::AcqRel) {
                let msg = format!(
                    "cannot reach the flusher at {} ({e}): pending writes are lost if this process is killed",
                    path.display()
                );
                if shim.crash_safe_asked {
                    tracing::warn!("{msg}");
                } else {
                    tracing::info!("{msg}");
                }
            }
            return Err(());
        }
    };
    let fd = track(place_high(sock.into_raw_fd()));
    if fd < 0 {
        return Err(());
    }
    // SAFETY: `fd` is the connection just made, ours alone.
    match wire::greet(unsafe { BorrowedFd::borrow_raw(fd) }, journal) {
        Ok(()) => {
            SOCK_INO.store(inode(fd), Ordering::Release);
            SOCK.store(fd, Ordering::Release);
            LOOKED.store(now_ms(), Ordering::Relaxed);
            SAID.store(false, Ordering::Release);
            Ok(())
        }
        Err(e) => {
            tracing::warn!("the flusher at {} refused the journal: {e}", path.display());
            SOCK_INO.store(inode(fd), Ordering::Release);
            close(fd);
            Err(())
        }
    }
}

/// The inode of descriptor `fd` (0 if it is not open).
fn inode(fd: i32) -> u64 {
    // SAFETY: a plain C struct fstat fills.
    let mut st: libc::stat64 = unsafe { std::mem::zeroed() };
    // SAFETY: `st` is writable; a bad descriptor only fails.
    if unsafe { crate::real::fstat64(fd, &mut st) } == 0 {
        st.st_ino
    } else {
        0
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

/// Lets go of the connection `fd`, closing it only if the number still
/// is our socket (a program may have closed it and reused the number).
fn close(fd: i32) {
    SOCK.store(-1, Ordering::Release);
    untrack(fd);
    if inode(fd) == SOCK_INO.load(Ordering::Acquire) {
        // SAFETY: our own connection, no longer published.
        unsafe { crate::real::close(fd) };
    }
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
    LOOKED.store(0, Ordering::Relaxed);
    RETRY_AT.store(0, Ordering::Relaxed);
    if let Some(j) = journal() {
        private.retain(|p| *p != j.fd_raw());
        j.detach();
    }
    JOURNAL.store(std::ptr::null_mut(), Ordering::Release);
}
